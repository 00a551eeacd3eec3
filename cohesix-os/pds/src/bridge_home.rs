//! The bridge link's home in the NineDoor PD: the same `no_std`
//! `ninedoor::bridge::BridgeLink` the host daemon drives over tokio, here
//! driven over the bridge ring pair to the network PD, which owns the
//! outbound TCP connection ([`bridge_ring`](crate::bridge_ring)). This
//! module only moves bytes and time: ring entries into the link (the
//! stream cut into frames), the link's frames and connection wishes out,
//! its completions into the hive, its GPUs installed.

use crate::bridge_ring::{self, CLOSE, CONNECT, DATA, MAX_DATA};
use crate::frames::FrameAssembler;
use crate::link::Link;
use crate::seed::{SEED_LEN, SeedIds};
use alloc::format;
use alloc::vec::Vec;
use cohesix_abi::Context;
use ninedoor::bridge::mirror::Mirror;
use ninedoor::bridge::{BridgeLink, LinkConfig, LinkEvent};
use ninedoor::secure9p_core::SessionId;
use ninedoor::{GpuRequest, Hive};

/// The msize NineDoor asks of the bridge from inside the image: a job
/// descriptor of the hive's own msize fits with room to spare, and a frame
/// being reassembled never takes much of the PD's heap.
pub const IMAGE_BRIDGE_MSIZE: u32 = 64 * 1024;

/// A reply the hive made for a completed request, for its session.
pub(crate) type Reply = (SessionId, Vec<u8>);

/// The link, its ring pair and the stream being cut into frames.
pub(crate) struct BridgeHome {
    link: BridgeLink,
    ring: Link,
    stream: FrameAssembler,
    entry: Vec<u8>,
    frame: Vec<u8>,
    out: Vec<u8>,
    /// The bridge's GPUs installed so far.
    gpus: Vec<alloc::string::String>,
}

impl core::fmt::Debug for BridgeHome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BridgeHome")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl BridgeHome {
    /// A link minting under `key`, its own ticket ids drawn from the boot
    /// seed under a domain of their own, over `ring`.
    pub(crate) fn new(ring: Link, key: [u8; 32], seed: [u8; SEED_LEN], now_ms: u64) -> Self {
        let ids = SeedIds::with_domain(seed, b"cohesix bridge ticket id v1");
        let config = LinkConfig {
            msize: IMAGE_BRIDGE_MSIZE,
            ..LinkConfig::default()
        };
        BridgeHome {
            link: BridgeLink::new(config, Mirror::new(key, ids), now_ms),
            ring,
            stream: FrameAssembler::new(IMAGE_BRIDGE_MSIZE as usize),
            entry: Vec::new(),
            frame: Vec::new(),
            out: Vec::new(),
            gpus: Vec::new(),
        }
    }

    /// Initialises the ring pair (NineDoor owns it) and wakes the network PD.
    pub(crate) fn init(&mut self, ctx: &mut dyn Context) {
        if let Err(e) = self.ring.init_rings() {
            ctx.debug(&format!("ninedoor: bridge ring: {e}\n"));
        }
        self.ring.poke(ctx);
    }

    /// The ring's channel.
    pub(crate) fn channel(&self) -> cohesix_abi::Channel {
        self.ring.channel()
    }

    /// Whether the link serves requests now.
    pub(crate) fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Forwards a request of the hive (GPU ids are the bridge's own here).
    pub(crate) fn forward(&mut self, request: GpuRequest, now_ms: u64) {
        let gpu = request.gpu.clone();
        self.link.forward(request, &gpu, now_ms);
    }

    /// Tells the link of the hive's opens clunked since the last call.
    pub(crate) fn close_opens(&mut self, hive: &mut Hive, now_ms: u64) {
        for closed in hive.take_gpu_closed() {
            self.link.close_open(closed.open, now_ms);
        }
    }

    /// The timer's tick.
    pub(crate) fn tick(&mut self, now_ms: u64) {
        self.link.tick(now_ms);
    }

    /// Takes what the network PD sent: the connection's state and its
    /// bytes, cut into frames for the link.
    pub(crate) fn take_ring(&mut self, now_ms: u64, ctx: &mut dyn Context) {
        if let Err(e) = self.ring.flush() {
            ctx.debug(&format!("ninedoor: bridge ring: {e}\n"));
        }
        loop {
            match self.ring.recv(&mut self.entry) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    ctx.debug(&format!("ninedoor: bridge ring: {e}\n"));
                    return;
                }
            }
            match bridge_ring::parse(&self.entry) {
                Some((CONNECT, _)) => {
                    self.stream = FrameAssembler::new(IMAGE_BRIDGE_MSIZE as usize);
                    self.link.connected(now_ms);
                }
                Some((DATA, bytes)) => {
                    self.stream.push(bytes);
                    loop {
                        match self.stream.next_frame() {
                            Ok(Some(frame)) => self.link.received(&frame, now_ms),
                            Ok(None) => break,
                            Err(e) => {
                                // A stream that cannot be resynchronised:
                                // the link is lost, the connection closed.
                                ctx.debug(&format!("ninedoor: gpu bridge: {e}; link closed\n"));
                                self.stream = FrameAssembler::new(IMAGE_BRIDGE_MSIZE as usize);
                                self.send(CLOSE, &[]);
                                self.link.disconnected(now_ms);
                                break;
                            }
                        }
                    }
                }
                Some((CLOSE, _)) => self.link.disconnected(now_ms),
                _ => ctx.debug("ninedoor: bridge ring: an entry of no known kind\n"),
            }
        }
    }

    fn send(&mut self, kind: u8, payload: &[u8]) {
        bridge_ring::entry(kind, payload, &mut self.frame);
        // The ring's backlog holds what does not fit now.
        let _ = self.ring.send(&self.frame);
    }

    /// Carries out what the link says, until it says nothing more: the
    /// hive's replies to completed requests are returned for their
    /// sessions.
    pub(crate) fn drive(
        &mut self,
        hive: &mut Hive,
        now_ms: u64,
        ctx: &mut dyn Context,
        replies: &mut Vec<Reply>,
    ) {
        let now = now_ms / 1000;
        loop {
            let mut moved = false;
            while let Some(event) = self.link.poll_event() {
                moved = true;
                match event {
                    LinkEvent::Connect => self.send(CONNECT, &[]),
                    LinkEvent::Disconnect => self.send(CLOSE, &[]),
                    LinkEvent::Gpus(gpus) => {
                        let fresh: Vec<_> =
                            gpus.into_iter().filter(|g| !has_gpu(hive, &g.id)).collect();
                        if let Err(e) = hive.install_gpu_nodes(&fresh) {
                            ctx.debug(&format!("ninedoor: gpu bridge: gpus not installed: {e}\n"));
                        }
                        for g in fresh {
                            self.gpus.push(g.id);
                        }
                        for g in &self.gpus {
                            hive.set_gpu_reachable(g, true);
                        }
                    }
                    LinkEvent::Lost => {
                        for g in &self.gpus {
                            hive.set_gpu_reachable(g, false);
                        }
                    }
                    LinkEvent::Complete {
                        token,
                        result,
                        reply,
                    } => {
                        if let Some(r) = reply {
                            hive.set_gpu_reply(token, &r);
                        }
                        self.out.clear();
                        if let Some(session) = hive.complete(token, result, now, &mut self.out) {
                            replies.push((session, core::mem::take(&mut self.out)));
                        }
                        // An "any GPU" lease that was refused asks its
                        // next candidate.
                        for request in hive.take_forwards() {
                            self.forward(request, now_ms);
                        }
                    }
                    LinkEvent::Note(line) => ctx.debug(&format!("ninedoor: gpu bridge: {line}\n")),
                    LinkEvent::Health { gpu, health, .. } => {
                        ctx.debug(&format!(
                            "ninedoor: gpu bridge: gpu {gpu}: health {health}\n"
                        ));
                    }
                }
            }
            while let Some(frame) = self.link.poll_transmit() {
                moved = true;
                for piece in frame.chunks(MAX_DATA) {
                    self.send(DATA, piece);
                }
            }
            if !moved {
                break;
            }
        }
        self.ring.signal(ctx);
    }
}

/// Whether `/gpu/<id>` is installed already (a reconnection lists every
/// GPU again).
fn has_gpu(hive: &Hive, id: &str) -> bool {
    hive.server()
        .namespace()
        .resolve(&format!("/gpu/{id}"))
        .is_some()
}
