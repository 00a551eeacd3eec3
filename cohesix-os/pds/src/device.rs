//! The device PD: carries 9P between the host and NineDoor. Bytes from the
//! [`HostPort`] (the virtio console or a TCP port on hardware, a pipe in
//! the simulator)
//! are cut into frames and pushed into the ring to NineDoor; frames NineDoor
//! pushes back are written to the port. It never interprets a frame beyond
//! its size prefix (and, after a new host connection, the type and tag of
//! the first request and of the replies, to drop the replies that were
//! meant for the connection that ended), and it holds at most one ring's
//! worth of backlog before it stops reading the host (the host then sees
//! flow control, not loss).

use crate::frames::FrameAssembler;
use crate::link::{Link, LinkError};
use crate::wiring::{self, MSIZE};
use alloc::format;
use alloc::vec::Vec;
use cohesix_abi::{Channel, Context, Handler, Regions};
use ninedoor::secure9p_core::codec::MsgType;

/// Bytes read from the host per port call.
const CHUNK: usize = 512;

/// The host side of the device PD: a byte stream, polled.
pub trait HostPort {
    /// Reads what has arrived (at most `buf.len()` bytes) without waiting;
    /// 0 when nothing has.
    fn read(&mut self, buf: &mut [u8]) -> usize;
    /// Writes all of `data` to the host.
    fn write(&mut self, data: &[u8]);
    /// Called when the port's IRQ fires, before reading: acknowledge the
    /// device (the PD then acknowledges the IRQ with the kernel).
    fn interrupt(&mut self) {}
    /// Whether a new host connection has begun since the last call (a TCP
    /// port); the PD then drops any partial frame the last one left. A
    /// byte stream without connections (the console) never says so.
    fn take_reconnect(&mut self) -> bool {
        false
    }
}

/// After a new host connection: which replies from NineDoor still belong
/// to the connection that ended. NineDoor answers a link's requests in
/// order, so everything before the answer to the new connection's first
/// request is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stale {
    /// Every reply is the current connection's.
    No,
    /// The new connection has sent no whole request yet: all stale.
    UntilFirst,
    /// Stale until the reply to the first request (its tag; its type, or
    /// an error).
    UntilReply {
        /// The first request's type plus one.
        rtype: u8,
        /// Its tag.
        tag: [u8; 2],
    },
}

/// What any request may be answered with instead of its own reply.
const ERROR_REPLIES: [u8; 2] = [MsgType::Rlerror as u8, MsgType::Rerror as u8];

/// The device protection domain.
pub struct DevicePd<P: HostPort> {
    port: P,
    link: Link,
    inbound: FrameAssembler,
    frame: Vec<u8>,
    chunk: [u8; CHUNK],
    stale: Stale,
    dropped: u64,
}

impl<P: HostPort> core::fmt::Debug for DevicePd<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DevicePd")
            .field("link", &self.link)
            .field("pending", &self.inbound.pending())
            .finish_non_exhaustive()
    }
}

impl<P: HostPort> DevicePd<P> {
    /// The PD over `port` and the regions the `.system` file maps into it.
    pub fn new(port: P, regions: &dyn Regions) -> Result<DevicePd<P>, LinkError> {
        let spec = wiring::device::NINEDOOR;
        let rx = regions
            .region(spec.rx)
            .ok_or(LinkError::NoRegion(spec.rx))?;
        let tx = regions
            .region(spec.tx)
            .ok_or(LinkError::NoRegion(spec.tx))?;
        Ok(DevicePd {
            port,
            link: Link::new(spec.channel, rx, tx),
            inbound: FrameAssembler::new(MSIZE as usize),
            frame: Vec::new(),
            chunk: [0; CHUNK],
            stale: Stale::No,
            dropped: 0,
        })
    }

    /// The port (for the simulator's tests).
    pub fn port(&self) -> &P {
        &self.port
    }

    /// Replies dropped because the connection they answered had ended.
    pub fn stale_replies_dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether `reply` still belongs to a connection that has ended; once
    /// the new connection's first answer passes, nothing is stale.
    fn is_stale(&mut self, reply: &[u8]) -> bool {
        match self.stale {
            Stale::No => false,
            Stale::UntilFirst => true,
            Stale::UntilReply { rtype, tag } => {
                let answers = reply.get(5..7) == Some(&tag[..])
                    && reply
                        .get(4)
                        .is_some_and(|t| *t == rtype || ERROR_REPLIES.contains(t));
                if answers {
                    self.stale = Stale::No;
                }
                !answers
            }
        }
    }

    /// Host → NineDoor: reads the port while the ring takes frames.
    fn pump_in(&mut self, ctx: &mut dyn Context) {
        if !self.link.is_attached() {
            return;
        }
        while !self.link.congested() {
            match self.inbound.next_frame() {
                Ok(Some(frame)) => {
                    if self.stale == Stale::UntilFirst
                        && let (Some(t), Some(tag)) = (
                            frame.get(4),
                            frame.get(5..7).and_then(|t| <[u8; 2]>::try_from(t).ok()),
                        )
                    {
                        self.stale = Stale::UntilReply {
                            rtype: t.wrapping_add(1),
                            tag,
                        };
                    }
                    if let Err(e) = self.link.send(&frame) {
                        ctx.debug(&format!("device: frame dropped: {e}\n"));
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    ctx.debug(&format!("device: host stream: {e}; bytes dropped\n"));
                    continue;
                }
            }
            let n = self.port.read(&mut self.chunk);
            if self.port.take_reconnect() {
                // These bytes start a new connection's stream.
                let stale = self.inbound.pending();
                if stale > 0 {
                    ctx.debug(&format!(
                        "device: new host connection; {stale} bytes of the last one dropped\n"
                    ));
                }
                self.inbound = FrameAssembler::new(MSIZE as usize);
                self.stale = Stale::UntilFirst;
            }
            if n == 0 {
                break;
            }
            self.inbound.push(&self.chunk[..n]);
        }
    }

    /// NineDoor → host.
    fn pump_out(&mut self, ctx: &mut dyn Context) {
        loop {
            match self.link.recv(&mut self.frame) {
                Ok(true) => {
                    let frame = core::mem::take(&mut self.frame);
                    if self.is_stale(&frame) {
                        self.dropped += 1;
                    } else {
                        self.port.write(&frame);
                    }
                    self.frame = frame;
                }
                Ok(false) => break,
                Err(e) => {
                    ctx.debug(&format!("device: {e}\n"));
                    break;
                }
            }
        }
    }

    fn pump(&mut self, ctx: &mut dyn Context) {
        match self.link.attach() {
            Ok(_) => {}
            Err(e) => ctx.debug(&format!("device: {e}\n")),
        }
        if let Err(e) = self.link.flush() {
            ctx.debug(&format!("device: {e}\n"));
        }
        self.pump_out(ctx);
        self.pump_in(ctx);
        self.link.signal(ctx);
    }
}

impl<P: HostPort> Handler for DevicePd<P> {
    fn init(&mut self, ctx: &mut dyn Context) {
        self.pump(ctx);
    }

    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        if ch == wiring::device::IRQ {
            self.port.interrupt();
            self.pump(ctx);
            ctx.irq_ack(ch);
        } else if ch == self.link.channel() || ch == wiring::device::TICK {
            self.pump(ctx);
        }
    }
}
