//! The sans-IO bridge link (`ninedoor::bridge::BridgeLink`) between a real
//! hive and a real GPU bridge server (`gpu-bridge`'s Secure9P service),
//! both driven in memory on one simulated clock: the listing installs the
//! bridge's GPUs, the Queen leases through `/queen/ctl`, a GPU worker
//! submits a `vadd` and reads its status and result through NineDoor, the
//! bridge going away answers `EHOSTUNREACH` and its return brings the GPUs
//! back; and a hostile bridge (garbage, a reply to an unknown tag, an
//! oversized frame, silence) loses the link without hanging a request.

mod common;

use common::{Conn, Queen, hive};
use gpu_bridge::{CpuExecutor, GpuBridge, ManualClock, MockSource, ServeOptions};
use ninedoor::bridge::mirror::Mirror;
use ninedoor::bridge::{BridgeLink, LinkConfig, LinkEvent};
use ninedoor::secure9p_core::codec::{Fid, LOpenFlags};
use ninedoor::secure9p_core::{FsError, Server, SessionId, TicketAuthority};
use ninedoor::{Handled, Hive};
use std::sync::Arc;

const BRIDGE_KEY: [u8; 32] = [0x3c; 32];
/// The simulated clock's start, unix ms (the hive's tickets are minted at
/// `common::hive()`'s time, so the link's clock runs from there).
const START_MS: u64 = common::NOW * 1000;

/// How the simulated bridge end behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// The real bridge server.
    Bridge,
    /// Nothing listens: connections fail.
    Away,
    /// Connections succeed; every frame is answered with these bytes.
    Hostile(&'static [u8]),
    /// Connections succeed; nothing is ever answered.
    Silent,
    /// The real bridge, but frames wait in `World::held` until released.
    Held,
}

struct World {
    hive: Hive,
    link: BridgeLink,
    gb: GpuBridge,
    clock: Arc<ManualClock>,
    bridge: Server,
    session: Option<SessionId>,
    peer: Peer,
    now: u64,
    notes: Vec<String>,
    /// Replies the hive produced for completed requests, by nobody read.
    out: Vec<u8>,
    /// Frames for the bridge held back ([`Peer::Held`]).
    held: Vec<Vec<u8>>,
    /// Every completion the link gave, by token.
    completed: Vec<u64>,
    /// Health changes the link reported: (gpu, health, was).
    healths: Vec<(String, String, Option<String>)>,
}

fn world() -> World {
    let clock = Arc::new(ManualClock::new(START_MS));
    let gb = GpuBridge::new(Box::new(MockSource::new(1).unwrap()), clock.clone());
    let bridge = gpu_bridge::server(
        &gb,
        ServeOptions {
            tickets: Some(TicketAuthority::new(BRIDGE_KEY)),
            anonymous: false,
        },
    )
    .unwrap();
    let mut ids = 0u8;
    let mirror = Mirror::new(BRIDGE_KEY, move || {
        ids = ids.wrapping_add(1);
        [ids; 32]
    });
    World {
        hive: hive(),
        link: BridgeLink::new(LinkConfig::default(), mirror, START_MS),
        gb,
        clock,
        bridge,
        session: None,
        peer: Peer::Bridge,
        now: START_MS,
        notes: Vec::new(),
        out: Vec::new(),
        held: Vec::new(),
        completed: Vec::new(),
        healths: Vec::new(),
    }
}

impl World {
    /// Moves frames and events until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(event) = self.link.poll_event() {
                moved = true;
                self.on_event(event);
            }
            while let Some(frame) = self.link.poll_transmit() {
                moved = true;
                self.deliver(&frame);
            }
            if !moved {
                return;
            }
        }
        panic!("the link never settled");
    }

    fn on_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Connect => match self.peer {
                Peer::Away => self.link.disconnected(self.now),
                _ => {
                    self.session = Some(self.bridge.open_session());
                    self.link.connected(self.now);
                }
            },
            LinkEvent::Disconnect => {
                if let Some(s) = self.session.take() {
                    self.bridge.close_session(s);
                }
            }
            LinkEvent::Gpus(gpus) => {
                let fresh: Vec<_> = gpus
                    .into_iter()
                    .filter(|g| !self.installed(&g.id))
                    .collect();
                self.hive.install_gpu_nodes(&fresh).unwrap();
                self.hive.set_gpu_reachable("0", true);
            }
            LinkEvent::Complete {
                token,
                result,
                reply,
            } => {
                self.completed.push(token.0);
                if let Some(r) = reply {
                    self.hive.set_gpu_reply(token, &r);
                }
                self.hive
                    .complete(token, result, self.now / 1000, &mut self.out);
            }
            LinkEvent::Note(line) => self.notes.push(line),
            LinkEvent::Health { gpu, health, was } => {
                self.hive
                    .set_gpu_health(&gpu, &health, was.as_deref(), self.now / 1000);
                self.healths.push((gpu, health, was));
            }
            LinkEvent::Lost => self.hive.set_gpu_reachable("0", false),
        }
    }

    fn installed(&self, gpu: &str) -> bool {
        self.hive
            .server()
            .namespace()
            .resolve(&format!("/gpu/{gpu}"))
            .is_some()
    }

    fn deliver(&mut self, frame: &[u8]) {
        let Some(session) = self.session else {
            return;
        };
        match self.peer {
            Peer::Held => self.held.push(frame.to_vec()),
            Peer::Bridge => {
                let mut out = Vec::new();
                if self
                    .bridge
                    .handle(session, frame, self.now / 1000, &mut out)
                    .is_err()
                {
                    self.link.disconnected(self.now);
                    return;
                }
                let mut rest = &out[..];
                while rest.len() >= 4 {
                    let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                    let (one, tail) = rest.split_at(n);
                    self.link.received(one, self.now);
                    rest = tail;
                }
            }
            Peer::Hostile(bytes) => self.link.received(bytes, self.now),
            Peer::Silent | Peer::Away => {}
        }
    }

    /// Hands the held frames to the bridge, in order.
    fn release(&mut self) {
        self.peer = Peer::Bridge;
        for frame in std::mem::take(&mut self.held) {
            self.deliver(&frame);
        }
        self.settle();
    }

    /// Advances the clock by `ms` in steps of 100 ms, settling each.
    fn pass(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + 100).min(end);
            self.clock.set(self.now);
            self.link.tick(self.now);
            self.settle();
        }
    }

    /// Runs what the hive asks of the bridge for one request.
    fn handled(&mut self, handled: Handled) {
        self.take_closed();
        if let Handled::Forward(request) = handled {
            let remote = request.gpu.clone();
            self.link.forward(request, &remote, self.now);
        }
        self.settle();
    }

    fn take_closed(&mut self) {
        for closed in self.hive.take_gpu_closed() {
            self.link.close_open(closed.open, self.now);
        }
    }
}

/// A hive client whose requests go through the world.
struct Client {
    conn: Conn,
    root: Fid,
}

impl Client {
    fn attach(w: &mut World, ticket: &str) -> Client {
        let mut conn = Conn::open(&mut w.hive);
        let root = conn.attach(&mut w.hive, ticket).expect("attach");
        Client { conn, root }
    }

    /// One request that may be forwarded: sent, run through the link and
    /// the bridge, and its reply taken.
    fn call<'m, T>(
        &mut self,
        w: &mut World,
        msg: impl Into<ninedoor::secure9p_core::codec::Msg<'m>>,
        f: impl FnOnce(ninedoor::secure9p_core::codec::Msg<'_>) -> T,
    ) -> Result<T, FsError> {
        let handled = self.conn.send(&mut w.hive, msg);
        let forwarded = matches!(handled, Handled::Forward(_));
        w.handled(handled);
        if forwarded {
            self.conn.rep = std::mem::take(&mut w.out);
        }
        self.conn.finish(f)
    }

    fn open(&mut self, w: &mut World, path: &str, flags: LOpenFlags) -> Result<Fid, FsError> {
        let fid = self.conn.walk(&mut w.hive, self.root, path)?;
        self.conn.lopen(&mut w.hive, fid, flags)?;
        Ok(fid)
    }

    fn read(&mut self, w: &mut World, fid: Fid) -> Result<String, FsError> {
        use ninedoor::secure9p_core::codec::{Msg, Tread};
        let data = self.call(
            w,
            Tread {
                fid,
                offset: 0,
                count: 60_000,
            },
            |m| match m {
                Msg::Rread(r) => r.data.to_vec(),
                other => panic!("{other:?}"),
            },
        )?;
        Ok(String::from_utf8(data).unwrap())
    }

    fn write(&mut self, w: &mut World, fid: Fid, data: &[u8]) -> Result<u32, FsError> {
        use ninedoor::secure9p_core::codec::{Msg, Twrite};
        self.call(
            w,
            Twrite {
                fid,
                offset: 0,
                data,
            },
            |m| match m {
                Msg::Rwrite(r) => r.count,
                other => panic!("{other:?}"),
            },
        )
    }

    fn cat(&mut self, w: &mut World, path: &str) -> Result<String, FsError> {
        let fid = self.open(w, path, LOpenFlags::empty())?;
        let text = self.read(w, fid);
        self.conn.clunk(&mut w.hive, fid);
        w.take_closed();
        w.settle();
        text
    }

    /// A `/queen/ctl` command run on the bridge (lease, release).
    fn command(&mut self, w: &mut World, line: &str) -> Result<serde_json::Value, FsError> {
        let fid = self.open(w, "/queen/ctl", LOpenFlags::RDWR)?;
        let written = self.write(w, fid, line.as_bytes());
        let reply = self.conn.read_all(&mut w.hive, fid).unwrap_or_default();
        self.conn.clunk(&mut w.hive, fid);
        written?;
        Ok(serde_json::from_slice(&reply).expect("json reply"))
    }
}

fn up() -> (World, Client) {
    let mut w = world();
    w.pass(200);
    assert!(w.link.is_up(), "notes: {:?}", w.notes);
    let ticket = w.hive.queen_ticket().to_owned();
    let q = Client::attach(&mut w, &ticket);
    (w, q)
}

#[test]
fn the_listing_installs_the_bridges_gpus_and_info_is_served_locally() {
    let (mut w, mut q) = up();
    assert!(w.installed("0"));
    assert!(
        w.notes.iter().any(|n| n == "connected, gpus 0"),
        "{:?}",
        w.notes
    );
    let info = q.cat(&mut w, "/gpu/0/info").unwrap();
    assert!(info.contains("\"id\":\"0\""), "{info}");
    // A forwarded file: stats come from the bridge.
    let stats = q.cat(&mut w, "/gpu/0/stats").unwrap();
    assert!(!stats.is_empty());
    assert_eq!(w.link.in_flight(), 0);
    // Only NineDoor's own attach is held once the opens are closed.
    assert_eq!(w.link.fids(), 1);
}

#[test]
fn a_leased_gpu_worker_runs_a_vadd_through_the_link() {
    let (mut w, mut q) = up();
    let leased = q
        .command(
            &mut w,
            r#"{"cmd":"lease","gpu":"0","worker":"g1","mem_mb":64,"ttl_s":60}"#,
        )
        .unwrap();
    assert!(
        leased["lease"]
            .as_str()
            .is_some_and(|l| l.starts_with("OK LEASE granted holder=g1 ")),
        "{leased}"
    );
    let mut g1 = Client::attach(&mut w, leased["ticket"].as_str().unwrap());
    let job = gpu_bridge::JobDescriptor::inline(
        "j1",
        &gpu_bridge::Workload::Vadd {
            a: vec![1.0, 2.0, 3.0],
            b: vec![10.0, 20.0, 30.0],
        },
    )
    .to_json();
    let fid = g1.open(&mut w, "/gpu/0/job", LOpenFlags::RDWR).unwrap();
    assert_eq!(g1.write(&mut w, fid, job.as_bytes()), Ok(job.len() as u32));
    let queued = g1.read(&mut w, fid).unwrap();
    assert_eq!(queued, "QUEUED j1 priority=0 position=1\n");
    let status = g1.cat(&mut w, "/gpu/0/status").unwrap();
    assert!(status.contains("QUEUED j1"), "{status}");
    // The bridge runs it (its CPU executor), then NineDoor shows the end.
    w.gb.run_ready(0, &mut CpuExecutor);
    let status = g1.cat(&mut w, "/gpu/0/status").unwrap();
    assert!(
        status.contains("RUNNING j1") && status.contains("OK j1"),
        "{status}"
    );
    let result = g1.cat(&mut w, "/gpu/0/result").unwrap();
    assert!(result.contains("\"j1\""), "{result}");
    // A heartbeat worker's ticket never reaches /gpu at all.
    let hb = Queen::attach(&mut w.hive).spawn(&mut w.hive, "w1");
    let mut hb = Client::attach(&mut w, &hb);
    assert_eq!(hb.cat(&mut w, "/gpu/0/info"), Err(FsError::AccessDenied));
}

#[test]
fn a_quarantine_on_the_bridge_reaches_the_audit_log_and_any_gpu_placement() {
    let (mut w, mut q) = up();
    assert!(w.healths.is_empty(), "{:?}", w.healths);
    let quiet_fids = w.link.fids();
    // An XID the bridge's policy quarantines for.
    let queen = gpu_bridge::Actor::local(ninedoor::secure9p_core::Role::Queen, "queen");
    let reply = w.gb.control("0", b"FAULT XID 79", &queen).unwrap();
    assert!(reply.contains("action=quarantine"), "{reply}");
    // Within one health interval the link reads it from info.
    w.pass(LinkConfig::default().health_ms + 1_000);
    assert_eq!(
        w.healths,
        [(
            "0".to_string(),
            "quarantined (xid 79)".to_string(),
            Some("ok".to_string())
        )]
    );
    let log = q.cat(&mut w, "/log/queen.log").unwrap();
    assert!(
        log.contains(" gpu-health role=- subject=- ticket=- gpu=0 bridge=- health=quarantined was=ok why=\"quarantined (xid 79)\""),
        "{log}"
    );
    // "any GPU" passes it over.
    let refused = q.command(
        &mut w,
        r#"{"cmd":"lease","gpu":"any","worker":"p1","mem_mb":64,"ttl_s":60}"#,
    );
    assert_eq!(refused.err(), Some(FsError::NoSpace));
    let log = q.cat(&mut w, "/log/queen.log").unwrap();
    assert!(log.contains(", 1 quarantined\""), "{log}");
    // The rounds give their fids back, and the same health is not
    // reported twice.
    w.pass(LinkConfig::default().health_ms * 2);
    assert_eq!(w.healths.len(), 1, "{:?}", w.healths);
    assert_eq!(w.link.fids(), quiet_fids);
    assert!(w.link.is_up());
    // The hold-down (60 s) passes: re-admitted, and said.
    w.pass(60_000);
    assert_eq!(w.healths.len(), 2, "{:?}", w.healths);
    assert_eq!(w.healths[1].1, "ok");
    let log = q.cat(&mut w, "/log/queen.log").unwrap();
    assert!(log.contains(" health=ok was=quarantined "), "{log}");
}

#[test]
fn a_bridge_that_goes_away_answers_ehostunreach_and_its_return_restores_the_gpus() {
    let (mut w, mut q) = up();
    let fid = q.open(&mut w, "/gpu/0/stats", LOpenFlags::empty()).unwrap();
    assert!(q.read(&mut w, fid).is_ok());
    // The bridge dies: the transport says so.
    w.peer = Peer::Away;
    if let Some(s) = w.session.take() {
        w.bridge.close_session(s);
    }
    w.link.disconnected(w.now);
    w.settle();
    assert!(!w.link.is_up());
    assert_eq!(q.read(&mut w, fid), Err(FsError::Unreachable));
    // info is NineDoor's copy, but a GPU whose bridge is gone is not
    // there to describe.
    assert_eq!(q.cat(&mut w, "/gpu/0/info"), Err(FsError::Unreachable));
    // Reconnection attempts back off: a few in 3 s, not one per tick.
    w.pass(3_000);
    assert!(!w.link.is_up());
    // Back: within the longest backoff the link is up again, and the fid
    // opened before the loss is reopened on its next use.
    w.peer = Peer::Bridge;
    w.pass(2_500);
    assert!(w.link.is_up(), "{:?}", w.notes);
    assert!(q.read(&mut w, fid).is_ok());
    assert!(q.cat(&mut w, "/gpu/0/info").is_ok());
    assert!(
        w.notes.iter().any(|n| n.starts_with("connection lost")),
        "{:?}",
        w.notes
    );
}

#[test]
fn a_silent_bridge_loses_the_link_within_the_timeout_and_requests_complete() {
    let (mut w, mut q) = up();
    w.peer = Peer::Silent;
    let fid = q.open(&mut w, "/gpu/0/stats", LOpenFlags::empty()).unwrap();
    use ninedoor::secure9p_core::codec::Tread;
    let handled = q.conn.send(
        &mut w.hive,
        Tread {
            fid,
            offset: 0,
            count: 100,
        },
    );
    assert!(matches!(handled, Handled::Forward(_)));
    w.handled(handled);
    // Nothing yet: the request waits on the bridge.
    assert!(w.out.is_empty());
    w.pass(LinkConfig::default().timeout_ms + 200);
    q.conn.rep = std::mem::take(&mut w.out);
    assert_eq!(q.conn.finish(|_| ()), Err(FsError::TimedOut));
    assert!(!w.link.is_up());
    assert!(
        w.notes.iter().any(|n| n.contains("unanswered")),
        "{:?}",
        w.notes
    );
}

#[test]
fn hostile_bridges_lose_the_link_and_never_hang_a_request() {
    // Garbage, a well-formed reply to a tag nobody sent, and a frame whose
    // size claims more than the msize.
    let garbage: &'static [u8] = b"\x07\x00\x00\x00\xff\x01\x00";
    let unknown_tag: &'static [u8] = b"\x0b\x00\x00\x00\x7b\x39\x30\x00\x00\x00\x00";
    let oversized: &'static [u8] = b"\xff\xff\xff\x7f\x75\x01\x00\x00\x00\x00\x00";
    for (what, bytes) in [
        ("garbage", garbage),
        ("unknown tag", unknown_tag),
        ("oversized", oversized),
    ] {
        let (mut w, mut q) = up();
        let fid = q.open(&mut w, "/gpu/0/stats", LOpenFlags::empty()).unwrap();
        w.peer = Peer::Hostile(bytes);
        assert_eq!(q.read(&mut w, fid), Err(FsError::Unreachable), "{what}");
        assert!(!w.link.is_up(), "{what}");
        assert_eq!(w.link.in_flight(), 0, "{what}");
        assert!(
            w.notes.iter().any(|n| n.starts_with("bad reply")),
            "{what}: {:?}",
            w.notes
        );
        // The rest of the hive is untouched.
        assert!(q.cat(&mut w, "/proc/boot").is_ok(), "{what}");
        // And the link comes back once the bridge behaves.
        w.peer = Peer::Bridge;
        w.pass(2_500);
        assert!(w.link.is_up(), "{what}");
        assert!(q.read(&mut w, fid).is_ok(), "{what}");
    }
}

#[test]
fn a_hive_fid_clunked_gives_its_bridge_fid_back() {
    let (mut w, mut q) = up();
    for _ in 0..50 {
        q.cat(&mut w, "/gpu/0/stats").unwrap();
    }
    assert_eq!(w.link.fids(), 1, "only NineDoor's own attach is left");
}

#[test]
fn a_cancelled_request_completes_once_queued_or_in_flight() {
    use ninedoor::secure9p_core::codec::Tread;
    let (mut w, mut q) = up();
    let fid = q.open(&mut w, "/gpu/0/stats", LOpenFlags::empty()).unwrap();
    // The first read opens the bridge's fid for this open.
    q.read(&mut w, fid).unwrap();
    w.completed.clear();
    w.peer = Peer::Held;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let Handled::Forward(request) = q.conn.send(
            &mut w.hive,
            Tread {
                fid,
                offset: 0,
                count: 100,
            },
        ) else {
            panic!("not forwarded");
        };
        tokens.push(request.token);
        w.handled(Handled::Forward(request));
    }
    // One open's requests go in order: the first is on the wire, the
    // second waits behind it.
    assert_eq!(w.held.len(), 1);
    w.link.cancel(tokens[1], w.now);
    w.settle();
    assert_eq!(w.completed, [tokens[1].0], "the queued one at once");
    // The one in flight is flushed on the bridge.
    w.link.cancel(tokens[0], w.now);
    w.settle();
    assert_eq!(w.held.len(), 2, "a Tflush follows the Tread");
    w.release();
    assert_eq!(w.completed, [tokens[1].0, tokens[0].0], "each exactly once");
    assert!(w.link.is_up());
    assert_eq!(w.link.in_flight(), 0);
}
