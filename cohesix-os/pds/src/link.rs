//! A ring pair between two PDs: one ring each way over two shared regions,
//! signalled over one channel. Attaching is lazy (Microkit does not order
//! the `init`s of different PDs, so a peer may run before the rings' owner
//! has initialised them), and frames that find the outgoing ring full wait
//! in a bounded backlog instead of being dropped.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use cohesix_abi::{Channel, Context};
use core::cell::Cell;
use core::fmt;
use core::sync::atomic::AtomicU32;
use secure9p_transport::ring::{self, Consumer, Notify, Producer, RingError};

/// Frames a link holds back while its outgoing ring is full. A side that
/// has this many waiting stops taking new input (backpressure).
pub const BACKLOG: usize = 16;

/// Why a link failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// A region is missing from this PD's mappings.
    NoRegion(&'static str),
    /// The ring refused (a corrupt peer, a frame too large).
    Ring(RingError),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NoRegion(s) => write!(f, "no region mapped at symbol {s}"),
            LinkError::Ring(e) => write!(f, "ring: {e}"),
        }
    }
}

impl From<RingError> for LinkError {
    fn from(e: RingError) -> Self {
        LinkError::Ring(e)
    }
}

/// Raised by either ring's notify hook; turned into one Microkit
/// notification when the handler finishes with the link.
#[derive(Clone, Default)]
struct Wake(Rc<Cell<bool>>);

impl Notify for Wake {
    fn notify(&self) {
        self.0.set(true);
    }
}

struct Attached {
    rx: Consumer<'static, Wake>,
    tx: Producer<'static, Wake>,
}

/// One side of a ring pair.
pub struct Link {
    channel: Channel,
    rx_region: &'static [AtomicU32],
    tx_region: &'static [AtomicU32],
    wake: Wake,
    rings: Option<Attached>,
    backlog: VecDeque<Vec<u8>>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("channel", &self.channel)
            .field("attached", &self.rings.is_some())
            .field("backlog", &self.backlog.len())
            .finish()
    }
}

impl Link {
    /// A link over `rx_region` (popped) and `tx_region` (pushed), not yet
    /// attached.
    pub fn new(
        channel: Channel,
        rx_region: &'static [AtomicU32],
        tx_region: &'static [AtomicU32],
    ) -> Link {
        Link {
            channel,
            rx_region,
            tx_region,
            wake: Wake::default(),
            rings: None,
            backlog: VecDeque::new(),
        }
    }

    /// The link of `spec` over the regions the `.system` file maps into
    /// this PD (not yet attached).
    pub fn mapped(
        regions: &dyn cohesix_abi::Regions,
        spec: crate::wiring::LinkSpec,
    ) -> Result<Link, LinkError> {
        let rx = regions
            .region(spec.rx)
            .ok_or(LinkError::NoRegion(spec.rx))?;
        let tx = regions
            .region(spec.tx)
            .ok_or(LinkError::NoRegion(spec.tx))?;
        Ok(Link::new(spec.channel, rx, tx))
    }

    /// [`Link::mapped`] for a ring pair only some boards wire (the network
    /// PD's, the bridge's): `None` when the `.system` file maps neither
    /// region, an error when it maps only one.
    pub fn optional(
        regions: &dyn cohesix_abi::Regions,
        spec: crate::wiring::LinkSpec,
    ) -> Result<Option<Link>, LinkError> {
        if regions.region(spec.rx).is_none() && regions.region(spec.tx).is_none() {
            return Ok(None);
        }
        Link::mapped(regions, spec).map(Some)
    }

    /// The channel to the peer.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// Initialises both rings (the owner's job, once, before the peer can
    /// attach) and attaches this side.
    pub fn init_rings(&mut self) -> Result<(), LinkError> {
        ring::init(self.rx_region)?;
        ring::init(self.tx_region)?;
        self.attach().map(|_| ())
    }

    /// Attaches if not yet attached. `Ok(false)`: the owner has not
    /// initialised the rings yet; try again after its notification.
    pub fn attach(&mut self) -> Result<bool, LinkError> {
        if self.rings.is_some() {
            return Ok(true);
        }
        let rx = match Consumer::attach(self.rx_region, self.wake.clone()) {
            Ok(rx) => rx,
            Err(RingError::NotInitialised { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let tx = match Producer::attach(self.tx_region, self.wake.clone()) {
            Ok(tx) => tx,
            Err(RingError::NotInitialised { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        self.rings = Some(Attached { rx, tx });
        Ok(true)
    }

    /// Whether both rings are attached.
    pub fn is_attached(&self) -> bool {
        self.rings.is_some()
    }

    /// The largest frame the outgoing ring can hold (0 before attaching).
    pub fn max_frame_len(&self) -> usize {
        self.rings.as_ref().map_or(0, |r| r.tx.max_frame_len())
    }

    /// Pops the next incoming frame into `buf` (cleared first).
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> Result<bool, LinkError> {
        let Some(rings) = self.rings.as_mut() else {
            return Ok(false);
        };
        let Some(len) = rings.rx.peek_len()? else {
            return Ok(false);
        };
        buf.clear();
        buf.resize(len, 0);
        Ok(rings.rx.pop(buf)?.is_some())
    }

    /// Pushes `frame`, behind any backlog; if the ring is full it joins the
    /// backlog. Fails only for a frame the ring can never hold, a corrupt
    /// ring, or a link not attached.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        self.flush()?;
        if self.backlog.is_empty() {
            let rings = self
                .rings
                .as_mut()
                .ok_or(LinkError::Ring(RingError::NotInitialised { found: 0 }))?;
            match rings.tx.push(frame) {
                Ok(()) => return Ok(()),
                Err(RingError::Full { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.backlog.push_back(frame.to_vec());
        Ok(())
    }

    /// Pushes what the backlog holds until the ring is full again.
    pub fn flush(&mut self) -> Result<(), LinkError> {
        let Some(rings) = self.rings.as_mut() else {
            return Ok(());
        };
        while let Some(frame) = self.backlog.front() {
            match rings.tx.push(frame) {
                Ok(()) => {
                    self.backlog.pop_front();
                }
                Err(RingError::Full { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Whether this side should stop taking input until the backlog drains.
    pub fn congested(&self) -> bool {
        self.backlog.len() >= BACKLOG
    }

    /// Frames waiting for room in the outgoing ring.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Signals the peer if a push or pop since the last call asked for it.
    pub fn signal(&self, ctx: &mut dyn Context) {
        if self.wake.0.replace(false) {
            ctx.notify(self.channel);
        }
    }

    /// Signals the peer unconditionally (e.g. "rings ready").
    pub fn poke(&self, ctx: &mut dyn Context) {
        self.wake.0.set(false);
        ctx.notify(self.channel);
    }
}
