//! The NineDoor PD: the hive, served over a ring pair to each host-facing
//! PD (the console and the network: the host, the Queen) and one to each
//! worker slot, and the parent of the worker PDs.
//!
//! The workers are a pool of child PDs ([`wiring::ninedoor::SLOTS`]),
//! stopped while free. The hive decides, this PD starts and stops: a
//! `spawn` that the hive accepts binds a free slot to the new worker (its
//! rings are reset, its ticket kept for its ticket call, the PD restarted
//! at its entry point); a `kill` stops the PD and frees its slot. A worker
//! that faults is caught here: the fault goes to `/log/queen.log`, its
//! ticket is revoked (closing its fids), and it is restarted with a fresh
//! ticket, at most [`RESTART_LIMIT`] times in [`RESTART_WINDOW_S`] seconds;
//! after that it is left stopped until the Queen kills it.
//!
//! At `init` it builds the hive from the boot seed, initialises the host
//! links' rings (it owns them all), stops every slot, and spawns the boot
//! workers the way a Queen would: a local session attaches with the
//! Queen's ticket and writes `spawn` commands to `/queen/ctl`. A worker
//! fetches its ticket with a protected call on its channel. After that
//! NineDoor moves frames: every frame popped from a link goes to
//! `Hive::handle` under that link's session and the reply is pushed back.
//! It never prints a ticket.

use crate::bridge_home::{BridgeHome, Reply};
use crate::frames;
use crate::link::{Link, LinkError};
use crate::mux::{self, ConnId};
use crate::seed::{FaultKnob, SEED_LEN, SEED_PAGE_LEN, SeedIds, boot_epoch, bridge_key, hive_key};
use crate::ticket::{self, Handover};
use crate::wiring::{self, HEARTBEATS, MSIZE, PASS_MARKER, SlotKind, SlotSpec, WORKER_IDS, call};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use cohesix_abi::{Channel, Child, Context, Fault, Handler, MsgInfo, REFUSED, Regions, Window};
use core::sync::atomic::AtomicU32;
use ninedoor::secure9p_core::codec::{
    Dialect, Fid, LOpenFlags, Msg, Tattach, Tclunk, Tlopen, Tread, Twalk, Twrite, WalkNames,
};
use ninedoor::secure9p_core::{Client, Completion, FsError, Role, SessionId};
use ninedoor::{Handled, Hive, HiveConfig, WorkerEvent};

/// Unix time the hive's clock reads at boot when the seed page carries no
/// epoch (`cohsix_pds::boot_epoch`; `cargo xtask run` writes the time it
/// built the image). A PD has no wall clock; the hive's clock is the epoch
/// plus uptime.
pub const BOOT_EPOCH: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// The hive NineDoor builds at boot from the image's seed at time `now`.
///
/// Whoever holds the seed holds the hive's key: the image builder (`cargo
/// xtask run`) calls this with the seed it wrote and [`BOOT_EPOCH`] to get
/// the Queen's ticket for the host (`Hive::queen_ticket`), the same ticket
/// id NineDoor mints first. The ticket never leaves the image.
pub fn boot_hive(seed: &[u8; SEED_LEN], now: u64) -> Result<Hive, String> {
    if seed.iter().all(|b| *b == 0) {
        return Err(String::from(
            "ninedoor: boot seed region is all zero; refusing a predictable hive key\n",
        ));
    }
    let config = HiveConfig {
        max_msize: MSIZE,
        ..HiveConfig::default()
    };
    Hive::new(config, hive_key(seed), SeedIds::new(*seed), now)
        .map_err(|e| format!("ninedoor: hive: {e}\n"))
}

/// Sessions one host link may hold open (its PD bounds its connections
/// lower; this bounds what NineDoor keeps whatever the PD does).
pub const MAX_HOST_SESSIONS: usize = 16;

/// Restarts a faulting worker gets within [`RESTART_WINDOW_S`]; at the
/// next fault in that window it is left stopped.
pub const RESTART_LIMIT: u32 = 3;

/// The window of [`RESTART_LIMIT`], seconds of hive time.
pub const RESTART_WINDOW_S: u64 = 60;

/// Smallest telemetry line a worker appends (`heartbeat w1 seq=1\n`), for
/// the pass check: bytes a worker must have written once done.
const MIN_LINE: u64 = 16;

/// The worker a slot runs.
struct Bound {
    id: String,
    ticket: String,
    /// When it faulted, hive seconds, within the restart window.
    faults: VecDeque<u64>,
    /// Out of restarts: left stopped until the Queen kills it.
    given_up: bool,
    /// A GPU worker's GPU (its ticket's scope).
    gpu: Option<String>,
}

/// A worker slot: a child PD and the worker bound to it, if any.
struct Slot {
    spec: SlotSpec,
    rx: &'static [AtomicU32],
    tx: &'static [AtomicU32],
    bound: Option<Bound>,
}

impl Slot {
    /// Whether the slot runs a worker that may be served.
    fn live(&self) -> bool {
        self.bound.as_ref().is_some_and(|b| !b.given_up)
    }
}

struct Peer {
    link: Link,
    /// A worker's one session; a host link's session per connection.
    sessions: BTreeMap<ConnId, SessionId>,
    /// A host link: entries carry a connection id ([`mux`]).
    host: bool,
    /// The slot behind a worker link.
    slot: Option<Slot>,
}

impl Peer {
    fn host(link: Link) -> Peer {
        Peer {
            link,
            sessions: BTreeMap::new(),
            host: true,
            slot: None,
        }
    }
}

/// The NineDoor protection domain.
pub struct NineDoorPd {
    seed: &'static [AtomicU32],
    /// Unix time at uptime 0 (the seed page's epoch, or [`BOOT_EPOCH`]).
    epoch: u64,
    knob: Option<FaultKnob>,
    hive: Option<Hive>,
    peers: Vec<Peer>,
    /// The bridge ring pair until the hive is up, then the link on it (if
    /// the image has a bridge key).
    bridge_ring: Option<Link>,
    bridge: Option<BridgeHome>,
    replies: Vec<Reply>,
    frame: Vec<u8>,
    out: Vec<u8>,
    /// A reply with its connection id, for a host link.
    entry: Vec<u8>,
    passed: bool,
}

impl core::fmt::Debug for NineDoorPd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NineDoorPd")
            .field("hive", &self.hive)
            .field("passed", &self.passed)
            .finish_non_exhaustive()
    }
}

fn region(regions: &dyn Regions, symbol: &'static str) -> Result<&'static [AtomicU32], LinkError> {
    regions.region(symbol).ok_or(LinkError::NoRegion(symbol))
}

/// Sends the reply frames in `bytes` to connection `conn` of `p` (a host
/// link wraps each in its connection id, in `entry`).
fn send_replies(
    p: &mut Peer,
    conn: ConnId,
    bytes: &[u8],
    entry: &mut Vec<u8>,
    ctx: &mut dyn Context,
) {
    for reply in frames::split(bytes) {
        let sent = if p.host {
            mux::wrap(conn, reply, entry);
            p.link.send(entry)
        } else {
            p.link.send(reply)
        };
        if let Err(e) = sent {
            ctx.debug(&format!(
                "ninedoor: {}: reply dropped: {e}\n",
                p.link.channel()
            ));
        }
    }
}

/// What went wrong while spawning the boot workers.
fn spawn_error(what: &str, e: impl core::fmt::Display) -> String {
    format!("ninedoor: spawning workers: {what}: {e}\n")
}

impl NineDoorPd {
    /// The PD over the regions the `.system` file maps into it.
    pub fn new(regions: &dyn Regions) -> Result<NineDoorPd, LinkError> {
        let mut peers = Vec::new();
        peers.push(Peer::host(Link::mapped(regions, wiring::ninedoor::DEVICE)?));
        for spec in wiring::ninedoor::SLOTS {
            let (rx, tx) = (
                region(regions, spec.link.rx)?,
                region(regions, spec.link.tx)?,
            );
            peers.push(Peer {
                link: Link::new(spec.link.channel, rx, tx),
                sessions: BTreeMap::new(),
                host: false,
                slot: Some(Slot {
                    spec,
                    rx,
                    tx,
                    bound: None,
                }),
            });
        }
        // The network PD and the bridge link exist on boards with a network
        // card (QEMU `virt`); the ZCU102 image has the console only.
        if let Some(net) = Link::optional(regions, wiring::ninedoor::NET)? {
            peers.push(Peer::host(net));
        }
        Ok(NineDoorPd {
            seed: region(regions, wiring::ninedoor::SEED)?,
            epoch: BOOT_EPOCH,
            knob: None,
            hive: None,
            peers,
            bridge_ring: Link::optional(regions, wiring::ninedoor::BRIDGE)?,
            bridge: None,
            replies: Vec::new(),
            frame: Vec::new(),
            out: Vec::new(),
            entry: Vec::new(),
            passed: false,
        })
    }

    /// Sessions open for host connections, over both host links.
    pub fn host_sessions(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| p.host)
            .map(|p| p.sessions.len())
            .sum()
    }

    /// The hive, once `init` has run (for the simulator's tests: the host
    /// Queen's ticket comes from here, as it would from the host daemon).
    pub fn hive(&self) -> Option<&Hive> {
        self.hive.as_ref()
    }

    fn now(&self, ctx: &dyn Context) -> u64 {
        self.epoch + ctx.uptime_ms() / 1000
    }

    /// The bridge link's clock: unix milliseconds on the boot epoch.
    fn now_ms(&self, ctx: &dyn Context) -> u64 {
        self.epoch * 1000 + ctx.uptime_ms()
    }

    /// Reads the boot epoch from the seed page, before anything tells time.
    fn read_epoch(&mut self) {
        let mut page = [0u8; SEED_PAGE_LEN];
        if Window::new(self.seed).read(0, &mut page).is_ok() {
            self.epoch = boot_epoch(&page).unwrap_or(BOOT_EPOCH);
        }
    }

    /// Whether the bridge link is up (for the simulator's tests).
    pub fn bridge_up(&self) -> bool {
        self.bridge.as_ref().is_some_and(BridgeHome::is_up)
    }

    fn build_hive(&mut self, now: u64) -> Result<Hive, String> {
        let mut page = [0u8; SEED_PAGE_LEN];
        Window::new(self.seed)
            .read(0, &mut page)
            .map_err(|e| format!("ninedoor: boot seed: {e}\n"))?;
        self.knob = FaultKnob::parse(&page);
        let mut seed = [0u8; SEED_LEN];
        seed.copy_from_slice(&page[..SEED_LEN]);
        let mut hive = boot_hive(&seed, now)?;
        for (role, kind) in [
            (Role::WorkerHeartbeat, SlotKind::Heartbeat),
            (Role::WorkerGpu, SlotKind::Gpu),
        ] {
            let slots = wiring::ninedoor::SLOTS
                .iter()
                .filter(|s| s.kind == kind)
                .count();
            hive.set_worker_slots(role, slots);
        }
        if let (Some(key), Some(ring)) = (bridge_key(&page), self.bridge_ring.take()) {
            self.bridge = Some(BridgeHome::new(ring, key, seed, now.saturating_mul(1000)));
        }
        Ok(hive)
    }

    /// Moves the bridge link's bytes and events, and sends the hive's
    /// replies to the requests it completed to their sessions' peers.
    fn drive_bridge(&mut self, ctx: &mut dyn Context) {
        let now_ms = self.now_ms(ctx);
        let (Some(hive), Some(bridge)) = (self.hive.as_mut(), self.bridge.as_mut()) else {
            return;
        };
        bridge.close_opens(hive, now_ms);
        bridge.drive(hive, now_ms, ctx, &mut self.replies);
        for (session, bytes) in core::mem::take(&mut self.replies) {
            let owner = self.peers.iter_mut().find_map(|p| {
                let conn = p.sessions.iter().find(|(_, s)| **s == session)?.0;
                Some((*conn, p))
            });
            let Some((conn, p)) = owner else {
                continue;
            };
            send_replies(p, conn, &bytes, &mut self.entry, ctx);
            p.link.signal(ctx);
        }
    }

    /// Spawns the boot workers through `/queen/ctl` as the Queen; the
    /// spawns bind slots like any other ([`NineDoorPd::place`]).
    fn spawn_workers(&mut self, now: u64) -> Result<(), String> {
        let Some(hive) = self.hive.as_mut() else {
            return Err(String::from("ninedoor: no hive\n"));
        };
        let queen = String::from(hive.queen_ticket());
        let session = hive.open_session();
        let mut q = LocalQueen {
            hive,
            session,
            client: Client::new(MSIZE),
            now,
            req: Vec::new(),
            rep: Vec::new(),
        };
        let result = q.spawn(&queen);
        q.hive.close_session(session);
        result
    }

    /// Acts on the hive's spawns and kills: binds a free slot of the
    /// worker's kind and restarts its PD, or stops the PD of a killed
    /// worker and frees its slot.
    fn place(&mut self, ctx: &mut dyn Context) {
        let Some(hive) = self.hive.as_mut() else {
            return;
        };
        for event in hive.take_worker_events() {
            match event {
                WorkerEvent::Spawned { id, role, ticket } => {
                    let kind = match role {
                        Role::WorkerHeartbeat => SlotKind::Heartbeat,
                        Role::WorkerGpu => SlotKind::Gpu,
                        _ => {
                            ctx.debug(&format!(
                                "ninedoor: worker {id}: no slot kind for role {}\n",
                                role.name()
                            ));
                            continue;
                        }
                    };
                    let free = self.peers.iter_mut().find(|p| {
                        p.slot
                            .as_ref()
                            .is_some_and(|s| s.spec.kind == kind && s.bound.is_none())
                    });
                    let Some(peer) = free else {
                        // The hive counts slots, so this is a bug, not a load.
                        ctx.debug(&format!("ninedoor: worker {id}: no free slot\n"));
                        continue;
                    };
                    let child = peer.slot.as_ref().map(|s| s.spec.child);
                    let gpu = (kind == SlotKind::Gpu)
                        .then(|| hive.workers().into_iter().find(|w| w.id == id))
                        .flatten()
                        .map(|w| w.scope);
                    if let Some(slot) = peer.slot.as_mut() {
                        slot.bound = Some(Bound {
                            id,
                            ticket,
                            faults: VecDeque::new(),
                            given_up: false,
                            gpu,
                        });
                    }
                    Self::reset_slot(hive, peer, ctx);
                    if let Some(child) = child {
                        ctx.pd_restart(child);
                    }
                }
                WorkerEvent::Killed { id } => {
                    let peer = self.peers.iter_mut().find(|p| {
                        p.slot
                            .as_ref()
                            .and_then(|s| s.bound.as_ref())
                            .is_some_and(|b| b.id == id)
                    });
                    if let Some(peer) = peer {
                        if let Some(slot) = peer.slot.as_mut() {
                            ctx.pd_stop(slot.spec.child);
                            slot.bound = None;
                        }
                        Self::close_sessions(hive, peer);
                    }
                }
            }
        }
    }

    fn close_sessions(hive: &mut Hive, peer: &mut Peer) {
        for (_, session) in core::mem::take(&mut peer.sessions) {
            hive.close_session(session);
        }
    }

    /// Gives a slot's PD fresh rings and no session (it is stopped, or
    /// about to be restarted).
    fn reset_slot(hive: &mut Hive, peer: &mut Peer, ctx: &mut dyn Context) {
        Self::close_sessions(hive, peer);
        let Some(slot) = peer.slot.as_ref() else {
            return;
        };
        peer.link = Link::new(slot.spec.link.channel, slot.rx, slot.tx);
        if let Err(e) = peer.link.init_rings() {
            ctx.debug(&format!("ninedoor: {}: {e}\n", peer.link.channel()));
        }
    }

    /// Serves what `peer` has sent, until its ring is empty or the way
    /// back is congested.
    fn serve(&mut self, peer: usize, ctx: &mut dyn Context) {
        let now = self.now(ctx);
        let now_ms = self.now_ms(ctx);
        let (Some(hive), Some(p)) = (self.hive.as_mut(), self.peers.get_mut(peer)) else {
            return;
        };
        if p.slot.as_ref().is_some_and(|s| !s.live()) {
            // A slot with no worker (or one left stopped): nothing to serve.
            return;
        }
        if let Err(e) = p.link.flush() {
            ctx.debug(&format!("ninedoor: {}: {e}\n", p.link.channel()));
        }
        while !p.link.congested() {
            match p.link.recv(&mut self.frame) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    ctx.debug(&format!("ninedoor: {}: {e}\n", p.link.channel()));
                    break;
                }
            }
            // A worker's link is one session; a host link's entries name
            // their connection, and the id alone ends it.
            let (conn, frame) = if p.host {
                match mux::unwrap(&self.frame) {
                    Some((conn, [])) => {
                        if let Some(session) = p.sessions.remove(&conn) {
                            hive.close_session(session);
                        }
                        continue;
                    }
                    Some(entry) => entry,
                    None => continue,
                }
            } else {
                (0, &self.frame[..])
            };
            if !p.sessions.contains_key(&conn) && p.sessions.len() >= MAX_HOST_SESSIONS {
                ctx.debug(&format!(
                    "ninedoor: {}: connection {conn} refused: {MAX_HOST_SESSIONS} sessions open\n",
                    p.link.channel()
                ));
                continue;
            }
            let session = *p
                .sessions
                .entry(conn)
                .or_insert_with(|| hive.open_session());
            self.out.clear();
            match hive.handle(session, frame, now, &mut self.out) {
                Ok(Handled::Replied) => {}
                Ok(Handled::Forward(request)) => match self.bridge.as_mut() {
                    Some(bridge) => bridge.forward(request, now_ms),
                    None => {
                        // An image without a bridge key: /gpu is unreachable.
                        let result = match request.op {
                            ninedoor::GpuOp::Read { .. } => {
                                Completion::Read(Err(FsError::Unreachable))
                            }
                            ninedoor::GpuOp::Write { .. } => {
                                Completion::Write(Err(FsError::Unreachable))
                            }
                        };
                        hive.complete(request.token, result, now, &mut self.out);
                        // An "any GPU" lease asks its next candidate,
                        // unreachable as well, until it has none left.
                        let mut again = hive.take_forwards();
                        while let Some(next) = again.pop() {
                            let result = Completion::Write(Err(FsError::Unreachable));
                            hive.complete(next.token, result, now, &mut self.out);
                            again.extend(hive.take_forwards());
                        }
                    }
                },
                Err(e) => {
                    // Framing lost: the session is over, and a host's
                    // connection with it (its PD closes it on this entry).
                    ctx.debug(&format!(
                        "ninedoor: {}: connection {conn}: session closed: {e}\n",
                        p.link.channel()
                    ));
                    hive.close_session(session);
                    p.sessions.remove(&conn);
                    if p.host {
                        mux::wrap(conn, &[], &mut self.entry);
                        if let Err(e) = p.link.send(&self.entry) {
                            ctx.debug(&format!("ninedoor: {}: {e}\n", p.link.channel()));
                        }
                    }
                    continue;
                }
            }
            send_replies(p, conn, &self.out, &mut self.entry, ctx);
        }
        p.link.signal(ctx);
    }

    /// Prints the pass marker once every worker has appended its boot line
    /// and all its heartbeats.
    fn check_pass(&mut self, ctx: &mut dyn Context) {
        let Some(hive) = self.hive.as_ref() else {
            return;
        };
        if self.passed {
            return;
        }
        let want = MIN_LINE * u64::from(HEARTBEATS + 1);
        let workers = hive.workers();
        let done = WORKER_IDS.iter().all(|id| {
            workers
                .iter()
                .any(|w| w.id == *id && w.telemetry.is_some_and(|t| t.end >= want))
        });
        if done {
            self.passed = true;
            ctx.debug(PASS_MARKER);
            ctx.debug("\n");
        }
    }
}

impl Handler for NineDoorPd {
    fn init(&mut self, ctx: &mut dyn Context) {
        self.read_epoch();
        let now = self.now(ctx);
        match self.build_hive(now) {
            Ok(hive) => self.hive = Some(hive),
            Err(e) => {
                ctx.debug(&e);
                return;
            }
        }
        for p in &mut self.peers {
            match &p.slot {
                // Free slots never run: the PDs of spawned workers are
                // restarted as their slots are bound.
                Some(slot) => ctx.pd_stop(slot.spec.child),
                None => {
                    if let Err(e) = p.link.init_rings() {
                        ctx.debug(&format!("ninedoor: {}: {e}\n", p.link.channel()));
                    }
                }
            }
        }
        match self.bridge.as_mut() {
            Some(bridge) => bridge.init(ctx),
            None => {
                ctx.debug("ninedoor: no bridge key in the seed page: /gpu answers EHOSTUNREACH\n")
            }
        }
        if let Err(e) = self.spawn_workers(now) {
            ctx.debug(&e);
        }
        self.place(ctx);
        self.drive_bridge(ctx);
        // Rings ready: wake the host PDs, which may have waited for them.
        for p in self.peers.iter().filter(|p| p.host) {
            p.link.poke(ctx);
        }
        ctx.debug("ninedoor: hive up\n");
    }

    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        let now_ms = self.now_ms(ctx);
        if let Some(peer) = self.peers.iter().position(|p| p.link.channel() == ch) {
            self.serve(peer, ctx);
            self.place(ctx);
            self.check_pass(ctx);
        } else if let Some(bridge) = self.bridge.as_mut() {
            if ch == bridge.channel() {
                bridge.take_ring(now_ms, ctx);
            } else if ch == wiring::ninedoor::TICK {
                bridge.tick(now_ms);
            }
        }
        self.drive_bridge(ctx);
    }

    fn protected(&mut self, ch: Channel, msg: MsgInfo, ctx: &mut dyn Context) -> MsgInfo {
        let bound = self
            .peers
            .iter()
            .find(|p| p.link.channel() == ch)
            .and_then(|p| p.slot.as_ref());
        let Some(slot) = bound else {
            return MsgInfo::new(REFUSED, 0);
        };
        match (msg.label(), &slot.bound) {
            (call::TICKET, Some(b)) if !b.given_up => {
                let fault_after = self
                    .knob
                    .as_ref()
                    .filter(|k| k.worker == b.id)
                    .map(|k| k.after_beats);
                let handover = Handover {
                    id: b.id.clone(),
                    ticket: b.ticket.clone(),
                    fault_after,
                    gpu: b.gpu.clone(),
                };
                ticket::put(ctx, handover.encode().as_bytes()).unwrap_or(MsgInfo::new(REFUSED, 0))
            }
            (call::TICKET, _) => MsgInfo::new(call::NOT_READY, 0),
            _ => MsgInfo::new(REFUSED, 0),
        }
    }

    fn fault(&mut self, child: Child, fault: Fault, ctx: &mut dyn Context) -> bool {
        let now = self.now(ctx);
        let (Some(hive), Some(peer)) = (
            self.hive.as_mut(),
            self.peers
                .iter_mut()
                .find(|p| p.slot.as_ref().is_some_and(|s| s.spec.child == child)),
        ) else {
            ctx.debug(&format!("ninedoor: fault of unknown {child}: {fault}\n"));
            return false;
        };
        let pd = format!("slot {}", child.id());
        let Some(bound) = peer.slot.as_mut().and_then(|s| s.bound.as_mut()) else {
            ctx.debug(&format!(
                "ninedoor: {pd} faulted with no worker: {fault}; stopped\n"
            ));
            ctx.pd_stop(child);
            return false;
        };
        let id = bound.id.clone();
        let what = format!("{fault}");
        if let Err(e) = hive.worker_fault(&id, &what, now) {
            ctx.debug(&format!("ninedoor: worker {id}: {e}\n"));
        }
        bound
            .faults
            .retain(|t| now.saturating_sub(*t) < RESTART_WINDOW_S);
        bound.faults.push_back(now);
        let attempt = bound.faults.len() as u32;
        if attempt > RESTART_LIMIT {
            bound.given_up = true;
            let why = format!(
                "{RESTART_LIMIT} restarts in {RESTART_WINDOW_S} s spent; left stopped until killed"
            );
            ctx.debug(&format!("ninedoor: worker {id} ({pd}): {what}; {why}\n"));
            if let Err(e) = hive.worker_stopped(&id, &why, now) {
                ctx.debug(&format!("ninedoor: worker {id}: {e}\n"));
            }
            ctx.pd_stop(child);
            Self::close_sessions(hive, peer);
            return false;
        }
        match hive.restart_worker(&id, attempt, RESTART_LIMIT, now) {
            Ok(ticket) => {
                bound.ticket = ticket;
                ctx.debug(&format!(
                    "ninedoor: worker {id} ({pd}): {what}; restart {attempt} of {RESTART_LIMIT}\n"
                ));
                Self::reset_slot(hive, peer, ctx);
                ctx.pd_restart(child);
            }
            Err(e) => {
                ctx.debug(&format!("ninedoor: worker {id}: not restarted: {e}\n"));
                ctx.pd_stop(child);
            }
        }
        false
    }
}

/// A Queen session inside the PD, answered synchronously by the hive.
struct LocalQueen<'h> {
    hive: &'h mut Hive,
    session: SessionId,
    client: Client,
    now: u64,
    req: Vec<u8>,
    rep: Vec<u8>,
}

impl LocalQueen<'_> {
    /// Attaches as the Queen and spawns [`WORKER_IDS`] through
    /// `/queen/ctl`.
    fn spawn(&mut self, queen: &str) -> Result<(), String> {
        self.version()?;
        let root = self.client.alloc_fid();
        let ctl = self.client.alloc_fid();
        self.call(Tattach {
            fid: root,
            afid: Fid::NOFID,
            uname: "queen",
            aname: queen,
            n_uname: Some(0),
        })?;
        let names = ["queen", "ctl"];
        self.call(Twalk {
            fid: root,
            newfid: ctl,
            wnames: WalkNames::new(&names).map_err(|e| spawn_error("walk", e))?,
        })?;
        self.call(Tlopen {
            fid: ctl,
            flags: LOpenFlags::RDWR,
        })?;
        for id in WORKER_IDS {
            let line = format!(r#"{{"cmd":"spawn","role":"heartbeat","id":"{id}"}}"#);
            self.call(Twrite {
                fid: ctl,
                offset: 0,
                data: line.as_bytes(),
            })?;
            let reply = self.read(ctl)?;
            let value: serde_json::Value =
                serde_json::from_slice(&reply).map_err(|e| spawn_error("reply", e))?;
            if value["spawned"].as_str() != Some(id) {
                return Err(spawn_error("reply", "not the worker asked for"));
            }
        }
        self.call(Tclunk { fid: ctl })?;
        self.call(Tclunk { fid: root })?;
        Ok(())
    }

    fn exchange(&mut self) -> Result<(), String> {
        self.rep.clear();
        let handled = self
            .hive
            .handle(self.session, &self.req, self.now, &mut self.rep)
            .map_err(|e| spawn_error("session", e))?;
        self.req.clear();
        if handled != Handled::Replied {
            return Err(spawn_error("request", "not answered"));
        }
        Ok(())
    }

    fn version(&mut self) -> Result<(), String> {
        self.client
            .version(Dialect::Linux, &mut self.req)
            .map_err(|e| spawn_error("version", e))?;
        self.exchange()?;
        self.client
            .receive(&self.rep)
            .map_err(|e| spawn_error("version", e))?;
        Ok(())
    }

    fn call<'m>(&mut self, msg: impl Into<Msg<'m>>) -> Result<(), String> {
        self.client
            .request(msg, &mut self.req)
            .map_err(|e| spawn_error("request", e))?;
        self.exchange()?;
        let reply = self
            .client
            .receive(&self.rep)
            .map_err(|e| spawn_error("reply", e))?;
        reply.into_result().map_err(|e| spawn_error("refused", e))?;
        Ok(())
    }

    fn read(&mut self, fid: Fid) -> Result<Vec<u8>, String> {
        self.client
            .request(
                Tread {
                    fid,
                    offset: 0,
                    count: MSIZE - 64,
                },
                &mut self.req,
            )
            .map_err(|e| spawn_error("read", e))?;
        self.exchange()?;
        let reply = self
            .client
            .receive(&self.rep)
            .map_err(|e| spawn_error("read", e))?;
        match reply.into_result() {
            Ok(Msg::Rread(r)) => Ok(r.data.to_vec()),
            Ok(_) => Err(spawn_error("read", "not an Rread")),
            Err(e) => Err(spawn_error("read", e)),
        }
    }
}
