//! The NineDoor PD: the hive, served over a ring pair to the device PD
//! (the host, the Queen) and one to each heartbeat worker.
//!
//! At `init` it builds the hive from the boot seed, initialises every ring
//! (it owns them all), and spawns the workers the way a Queen would: a
//! local session attaches with the Queen's ticket, writes `spawn` commands
//! to `/queen/ctl` and reads each worker's ticket back from the same fid.
//! A worker fetches its ticket with a protected call on its channel. After
//! that NineDoor only moves frames: every frame popped from a link goes to
//! `Hive::handle` under that link's session and the reply is pushed back.
//! It never prints a ticket.

use crate::frames;
use crate::link::{Link, LinkError};
use crate::mux::{self, ConnId};
use crate::seed::{SEED_LEN, SeedIds, hive_key};
use crate::ticket;
use crate::wiring::{self, HEARTBEATS, MSIZE, PASS_MARKER, WORKER_IDS, call};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use cohesix_abi::{Channel, Context, Handler, MsgInfo, REFUSED, Regions, Window};
use core::sync::atomic::AtomicU32;
use ninedoor::secure9p_core::codec::{
    Dialect, Fid, LOpenFlags, Msg, Tattach, Tclunk, Tlopen, Tread, Twalk, Twrite, WalkNames,
};
use ninedoor::secure9p_core::{Client, Completion, FsError, SessionId};
use ninedoor::{Handled, Hive, HiveConfig};

/// Unix time the hive's clock reads at boot. A PD has no wall clock; the
/// hive only needs a clock that moves forward (ticket lifetimes, log
/// stamps), so boot time is pinned to this date and uptime added.
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

/// Smallest telemetry line a worker appends (`heartbeat w1 seq=1\n`), for
/// the pass check: bytes a worker must have written once done.
const MIN_LINE: u64 = 16;

struct Peer {
    link: Link,
    /// A worker's one session; a host link's session per connection.
    sessions: BTreeMap<ConnId, SessionId>,
    /// A host link: entries carry a connection id ([`mux`]).
    host: bool,
    /// The worker's id and ticket text (workers only).
    worker: Option<(&'static str, Option<String>)>,
}

impl Peer {
    fn host(link: Link) -> Peer {
        Peer {
            link,
            sessions: BTreeMap::new(),
            host: true,
            worker: None,
        }
    }
}

/// The NineDoor protection domain.
pub struct NineDoorPd {
    seed: &'static [AtomicU32],
    hive: Option<Hive>,
    peers: Vec<Peer>,
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

fn link(regions: &dyn Regions, spec: wiring::LinkSpec) -> Result<Link, LinkError> {
    Ok(Link::new(
        spec.channel,
        region(regions, spec.rx)?,
        region(regions, spec.tx)?,
    ))
}

/// What went wrong while spawning the boot workers.
fn spawn_error(what: &str, e: impl core::fmt::Display) -> String {
    format!("ninedoor: spawning workers: {what}: {e}\n")
}

impl NineDoorPd {
    /// The PD over the regions the `.system` file maps into it.
    pub fn new(regions: &dyn Regions) -> Result<NineDoorPd, LinkError> {
        let mut peers = Vec::new();
        peers.push(Peer::host(link(regions, wiring::ninedoor::DEVICE)?));
        for (spec, id) in wiring::ninedoor::WORKERS.into_iter().zip(WORKER_IDS) {
            peers.push(Peer {
                link: link(regions, spec)?,
                sessions: BTreeMap::new(),
                host: false,
                worker: Some((id, None)),
            });
        }
        peers.push(Peer::host(link(regions, wiring::ninedoor::NET)?));
        Ok(NineDoorPd {
            seed: region(regions, wiring::ninedoor::SEED)?,
            hive: None,
            peers,
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

    fn now(ctx: &dyn Context) -> u64 {
        BOOT_EPOCH + ctx.uptime_ms() / 1000
    }

    fn build_hive(&mut self, now: u64) -> Result<Hive, String> {
        let mut seed = [0u8; SEED_LEN];
        Window::new(self.seed)
            .read(0, &mut seed)
            .map_err(|e| format!("ninedoor: boot seed: {e}\n"))?;
        boot_hive(&seed, now)
    }

    /// Spawns the boot workers through `/queen/ctl` as the Queen and keeps
    /// their tickets for the ticket call.
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
        let tickets = result?;
        let workers = self.peers.iter_mut().filter_map(|p| p.worker.as_mut());
        for ((_, slot), ticket) in workers.zip(tickets) {
            *slot = Some(ticket);
        }
        Ok(())
    }

    /// Serves what `peer` has sent, until its ring is empty or the way
    /// back is congested.
    fn serve(&mut self, peer: usize, ctx: &mut dyn Context) {
        let now = Self::now(ctx);
        let (Some(hive), Some(p)) = (self.hive.as_mut(), self.peers.get_mut(peer)) else {
            return;
        };
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
                Ok(Handled::Forward(request)) => {
                    // No GPU bridge inside the image: /gpu is unreachable.
                    let result = match request.op {
                        ninedoor::GpuOp::Read { .. } => Completion::Read(Err(FsError::Unreachable)),
                        ninedoor::GpuOp::Write { .. } => {
                            Completion::Write(Err(FsError::Unreachable))
                        }
                    };
                    hive.complete(request.token, result, now, &mut self.out);
                }
                Err(e) => {
                    // Framing lost: start the peer over with a fresh session.
                    ctx.debug(&format!(
                        "ninedoor: {}: session closed: {e}\n",
                        p.link.channel()
                    ));
                    hive.close_session(session);
                    p.sessions.remove(&conn);
                }
            }
            for reply in frames::split(&self.out) {
                let sent = if p.host {
                    mux::wrap(conn, reply, &mut self.entry);
                    p.link.send(&self.entry)
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
        let now = Self::now(ctx);
        match self.build_hive(now) {
            Ok(hive) => self.hive = Some(hive),
            Err(e) => {
                ctx.debug(&e);
                return;
            }
        }
        for p in &mut self.peers {
            if let Err(e) = p.link.init_rings() {
                ctx.debug(&format!("ninedoor: {}: {e}\n", p.link.channel()));
            }
        }
        if let Err(e) = self.spawn_workers(now) {
            ctx.debug(&e);
        }
        // Rings ready, tickets ready: wake every peer that waited for them.
        for p in &self.peers {
            p.link.poke(ctx);
        }
        ctx.debug("ninedoor: hive up\n");
    }

    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        if let Some(peer) = self.peers.iter().position(|p| p.link.channel() == ch) {
            self.serve(peer, ctx);
            self.check_pass(ctx);
        }
    }

    fn protected(&mut self, ch: Channel, msg: MsgInfo, ctx: &mut dyn Context) -> MsgInfo {
        let worker = self
            .peers
            .iter()
            .find(|p| p.link.channel() == ch)
            .and_then(|p| p.worker.as_ref());
        match (msg.label(), worker) {
            (call::TICKET, Some((id, Some(ticket)))) => {
                let bytes = format!("{id}\n{ticket}");
                ticket::put(ctx, bytes.as_bytes()).unwrap_or(MsgInfo::new(REFUSED, 0))
            }
            (call::TICKET, Some((_, None))) => MsgInfo::new(call::NOT_READY, 0),
            _ => MsgInfo::new(REFUSED, 0),
        }
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
    /// Attaches as the Queen, spawns [`WORKER_IDS`] through `/queen/ctl`
    /// and returns their tickets, in order.
    fn spawn(&mut self, queen: &str) -> Result<Vec<String>, String> {
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
        let mut tickets = Vec::new();
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
            let ticket = value["ticket"]
                .as_str()
                .ok_or_else(|| spawn_error("reply", "no ticket"))?;
            tickets.push(String::from(ticket));
        }
        self.call(Tclunk { fid: ctl })?;
        self.call(Tclunk { fid: root })?;
        Ok(tickets)
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
