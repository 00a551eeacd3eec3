//! The seL4 system reaches a GPU bridge, in the simulator with the image's
//! own PD code: NineDoor's bridge link runs over its ring pair to the
//! network PD, whose bridge connection reaches the real `gpu-bridge`
//! Secure9P server (in memory, mock GPU, CPU executor). `/gpu` lists the
//! bridge's GPUs; the Queen leases GPU 0 and the gpuworker PD's `vadd`
//! reaches `OK` with the right sums (its bad-hash job refused); a host
//! client as that GPU worker submits too, a heartbeat worker is refused;
//! the bridge going away answers `EHOSTUNREACH` while heartbeats go on and
//! its return brings a second job to `OK`; hostile bridges lose the link
//! without hanging a request or faulting a PD.

mod common;

use cohesix_pds::wiring::GPU_PASS_MARKER;
use cohesix_pds::{BRIDGE_KEY_AT, NineDoorPd, encode_bridge_key, vadd_descriptor};
use cohesix_sim::hive::HiveSim;
use cohesix_sim::{BridgePeer, PdState};
use common::{Host, SEED};
use gpu_bridge::{CpuExecutor, GpuBridge, ManualClock, MockSource, ServeOptions};
use ninedoor::secure9p_core::codec::{Fid, LOpenFlags, Msg, Tclunk, Tlopen, Tread, Twrite};
use ninedoor::secure9p_core::{FsError, Server, SessionId, TicketAuthority};
use std::sync::Arc;

const BRIDGE_KEY: [u8; 32] = [0x5a; 32];

/// The real bridge: its server, driven frame by frame, and the bridge
/// itself (to run queued jobs with its CPU executor).
struct RealBridge {
    server: Server,
    session: Option<SessionId>,
    pending: Vec<u8>,
}

impl BridgePeer for RealBridge {
    fn connect(&mut self) -> bool {
        self.session = Some(self.server.open_session());
        self.pending.clear();
        true
    }

    fn send(&mut self, bytes: &[u8]) -> Vec<u8> {
        let Some(session) = self.session else {
            return Vec::new();
        };
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while self.pending.len() >= 4 {
            let n = u32::from_le_bytes(self.pending[..4].try_into().unwrap()) as usize;
            if self.pending.len() < n {
                break;
            }
            let frame: Vec<u8> = self.pending.drain(..n).collect();
            // The bridge's clock is not the image's: tickets are checked
            // at the image's boot epoch, where the hive minted them.
            let _ = self
                .server
                .handle(session, &frame, cohesix_pds::BOOT_EPOCH + 60, &mut out);
        }
        out
    }

    fn close(&mut self) {
        if let Some(s) = self.session.take() {
            self.server.close_session(s);
        }
    }
}

/// A bridge that answers every write with the same bytes (or nothing).
struct Hostile(&'static [u8]);

impl BridgePeer for Hostile {
    fn connect(&mut self) -> bool {
        true
    }
    fn send(&mut self, _: &[u8]) -> Vec<u8> {
        self.0.to_vec()
    }
    fn close(&mut self) {}
}

fn real_bridge() -> (Box<RealBridge>, GpuBridge) {
    let clock = Arc::new(ManualClock::new(cohesix_pds::BOOT_EPOCH * 1000));
    let gb = GpuBridge::new(Box::new(MockSource::new(1).unwrap()), clock);
    let server = gpu_bridge::server(
        &gb,
        ServeOptions {
            tickets: Some(TicketAuthority::new(BRIDGE_KEY)),
            anonymous: false,
        },
    )
    .unwrap();
    let peer = Box::new(RealBridge {
        server,
        session: None,
        pending: Vec::new(),
    });
    (peer, gb)
}

/// The seed page with the bridge key after the seed.
fn page() -> Vec<u8> {
    let mut page = vec![0u8; BRIDGE_KEY_AT];
    page[..SEED.len()].copy_from_slice(&SEED);
    page.extend(encode_bridge_key(&BRIDGE_KEY));
    page
}

fn ticks(hive: &mut HiveSim, n: usize) {
    for _ in 0..n {
        hive.tick().expect("tick");
    }
}

fn bridge_up(hive: &HiveSim) -> bool {
    hive.sim
        .handler::<NineDoorPd>("ninedoor")
        .is_some_and(NineDoorPd::bridge_up)
}

/// A hive whose bridge is up, and the Queen attached over the console.
fn booted_with_bridge() -> (HiveSim, GpuBridge, Host, Fid) {
    let mut hive = HiveSim::boot_page(&page()).expect("boots");
    let (peer, gb) = real_bridge();
    hive.net.set_bridge(peer);
    ticks(&mut hive, 2);
    assert!(bridge_up(&hive), "{}", hive.sim.console());
    let ticket = hive.queen_ticket().unwrap();
    let mut q = Host::connect(&mut hive);
    let root = q.attach(&mut hive, "queen", &ticket).expect("queen");
    (hive, gb, q, root)
}

/// Opens `path`, writes `data`, reads the fid's reply back, clunks.
fn exchange(
    h: &mut Host,
    hive: &mut HiveSim,
    root: Fid,
    path: &str,
    data: &[u8],
) -> (Result<u32, FsError>, String) {
    let fid = h.walk(hive, root, path).expect("walk");
    h.rpc(
        hive,
        Tlopen {
            fid,
            flags: LOpenFlags::RDWR,
        },
        |_| (),
    )
    .expect("open");
    let written = h.rpc(
        hive,
        Twrite {
            fid,
            offset: 0,
            data,
        },
        |m| match m {
            Msg::Rwrite(w) => w.count,
            other => panic!("{other:?}"),
        },
    );
    let reply = h
        .rpc(
            hive,
            Tread {
                fid,
                offset: 0,
                count: 4096,
            },
            |m| match m {
                Msg::Rread(r) => String::from_utf8_lossy(r.data).into_owned(),
                other => panic!("{other:?}"),
            },
        )
        .unwrap_or_default();
    h.rpc(hive, Tclunk { fid }, |_| ()).expect("clunk");
    (written, reply)
}

fn lease(q: &mut Host, hive: &mut HiveSim, root: Fid) -> serde_json::Value {
    let reply = q
        .ctl(
            hive,
            root,
            r#"{"cmd":"lease","gpu":"0","worker":"g1","mem_mb":64,"ttl_s":600}"#,
        )
        .expect("lease");
    serde_json::from_str(&reply).expect("json")
}

#[test]
fn the_pd_vadd_descriptor_is_one_the_bridge_validates() {
    assert!(
        gpu_bridge::validate(
            vadd_descriptor("j", false).as_bytes(),
            &gpu_bridge::Artefacts::default()
        )
        .is_ok()
    );
    assert!(
        gpu_bridge::validate(
            vadd_descriptor("j", true).as_bytes(),
            &gpu_bridge::Artefacts::default()
        )
        .is_err()
    );
}

#[test]
fn gpu_nodes_come_from_the_bridge_and_the_gpu_worker_pd_runs_a_vadd() {
    let (mut hive, gb, mut q, root) = booted_with_bridge();
    let listing = q.read_all(&mut hive, root, "/proc/boot").unwrap();
    assert!(listing.contains("provider gpu /gpu 0"), "{listing}");
    let info = q.read_all(&mut hive, root, "/gpu/0/info").unwrap();
    assert!(info.contains("Mock"), "{info}");
    assert_eq!(hive.sim.state("gpuworker").unwrap(), PdState::Stopped);

    let leased = lease(&mut q, &mut hive, root);
    assert!(
        leased["lease"]
            .as_str()
            .is_some_and(|l| l.starts_with("OK LEASE granted holder=g1 ")),
        "{leased}"
    );
    assert_eq!(hive.sim.state("gpuworker").unwrap(), PdState::Running);
    ticks(&mut hive, 1);
    let console = hive.sim.console().to_owned();
    assert!(console.contains("gpuworker: gpu 0 info "), "{console}");
    assert!(
        console.contains("gpuworker: bad job refused as it must be"),
        "{console}"
    );
    assert!(
        console.contains("gpuworker: job submitted: QUEUED pd-vadd"),
        "{console}"
    );
    // The bridge runs the job; the PD sees it through and checks it.
    gb.run_ready(0, &mut CpuExecutor);
    ticks(&mut hive, 2);
    let console = hive.sim.console();
    assert!(
        console.contains("gpuworker: status OK pd-vadd"),
        "{console}"
    );
    assert!(
        console.contains(&format!(
            "{GPU_PASS_MARKER} job pd-vadd OK on gpu 0, all 8 sums right"
        )),
        "{console}"
    );
    // No PD faulted on the way.
    assert!(!console.contains("fault"), "{console}");
}

#[test]
fn the_host_works_the_gpu_as_the_leased_worker_and_a_heartbeat_worker_is_refused() {
    let (mut hive, gb, mut q, root) = booted_with_bridge();
    let leased = lease(&mut q, &mut hive, root);
    let ticket = leased["ticket"].as_str().unwrap().to_owned();
    let mut g1 = Host::connect_via(&mut hive, cohesix_sim::hive::HostLink::Net);
    let groot = g1.attach(&mut hive, "g1", &ticket).expect("g1 attaches");
    let (written, reply) = exchange(
        &mut g1,
        &mut hive,
        groot,
        "/gpu/0/job",
        vadd_descriptor("host-job", false).as_bytes(),
    );
    assert!(written.is_ok(), "{reply}");
    assert!(reply.starts_with("QUEUED host-job"), "{reply}");
    gb.run_ready(0, &mut CpuExecutor);
    let status = g1.read_all(&mut hive, groot, "/gpu/0/status").unwrap();
    assert!(status.contains("OK host-job"), "{status}");
    // w1's ticket (a heartbeat worker's) reaches nothing under /gpu.
    let w1 = q
        .ctl(
            &mut hive,
            root,
            r#"{"cmd":"spawn","role":"heartbeat","id":"w9"}"#,
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&w1).unwrap();
    let mut hb = Host::connect_via(&mut hive, cohesix_sim::hive::HostLink::Net);
    let hroot = hb
        .attach(&mut hive, "w9", v["ticket"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        hb.walk(&mut hive, hroot, "/gpu/0/info"),
        Err(FsError::AccessDenied)
    );
}

/// The last heartbeat `seq=` of `id`.
fn last_seq(q: &mut Host, hive: &mut HiveSim, root: Fid, id: &str) -> u64 {
    let t = q
        .read_all(hive, root, &format!("/worker/{id}/telemetry"))
        .unwrap();
    t.lines()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("seq=")))
        .filter_map(|n| n.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Opens `path` and reads it once: the error of whichever failed.
fn read_once(q: &mut Host, hive: &mut HiveSim, root: Fid, path: &str) -> Result<(), FsError> {
    let fid = q.walk(hive, root, path)?;
    q.rpc(
        hive,
        Tlopen {
            fid,
            flags: LOpenFlags::empty(),
        },
        |_| (),
    )?;
    q.rpc(
        hive,
        Tread {
            fid,
            offset: 0,
            count: 100,
        },
        |_| (),
    )
}

#[test]
fn losing_the_bridge_answers_ehostunreach_and_its_return_runs_a_second_job() {
    let (mut hive, gb, mut q, root) = booted_with_bridge();
    let leased = lease(&mut q, &mut hive, root);
    ticks(&mut hive, 1);
    gb.run_ready(0, &mut CpuExecutor);
    ticks(&mut hive, 2);
    assert!(hive.sim.console().contains(GPU_PASS_MARKER));

    let before = last_seq(&mut q, &mut hive, root, "w1");
    hive.net.drop_bridge();
    ticks(&mut hive, 1);
    assert!(!bridge_up(&hive));
    assert_eq!(
        read_once(&mut q, &mut hive, root, "/gpu/0/stats"),
        Err(FsError::Unreachable)
    );
    assert_eq!(
        read_once(&mut q, &mut hive, root, "/gpu/0/info"),
        Err(FsError::Unreachable),
        "info while the bridge is away"
    );
    // The heartbeats never paused.
    ticks(&mut hive, 3);
    assert!(last_seq(&mut q, &mut hive, root, "w1") >= before + 4);
    // It comes back: the link reconnects by itself and the GPU is there.
    let (peer, gb2) = real_bridge();
    hive.net.set_bridge(peer);
    ticks(&mut hive, 3);
    assert!(bridge_up(&hive), "{}", hive.sim.console());
    assert!(
        hive.sim
            .console()
            .contains("ninedoor: gpu bridge: connection lost"),
        "{}",
        hive.sim.console()
    );
    // A restarted bridge knows no lease (its state is in memory): the
    // Queen kills the old GPU worker, which frees the GPU slot, and leases
    // GPU 0 to a new one; the gpuworker PD restarts for it and its job
    // reaches OK on the new bridge.
    assert!(leased["ticket"].is_string());
    q.ctl(&mut hive, root, r#"{"cmd":"kill","id":"g1"}"#)
        .expect("kill g1");
    assert_eq!(hive.sim.state("gpuworker").unwrap(), PdState::Stopped);
    let again = q
        .ctl(
            &mut hive,
            root,
            r#"{"cmd":"lease","gpu":"0","worker":"g2","mem_mb":64,"ttl_s":600}"#,
        )
        .expect("lease g2");
    assert!(again.contains("OK LEASE granted holder=g2 "), "{again}");
    ticks(&mut hive, 1);
    gb2.run_ready(0, &mut CpuExecutor);
    ticks(&mut hive, 2);
    let console = hive.sim.console();
    assert_eq!(console.matches(GPU_PASS_MARKER).count(), 2, "{console}");
}

#[test]
fn hostile_bridges_lose_the_link_and_the_hive_is_untouched() {
    let garbage: &'static [u8] = b"\x07\x00\x00\x00\xff\x01\x00";
    let unknown_tag: &'static [u8] = b"\x0b\x00\x00\x00\x7b\x39\x30\x00\x00\x00\x00";
    let oversized: &'static [u8] = b"\xff\xff\xff\x7f\x75\x01\x00\x00\x00\x00\x00";
    for (what, bytes) in [
        ("garbage", garbage),
        ("unknown tag", unknown_tag),
        ("oversized", oversized),
        ("silent", &b""[..]),
    ] {
        let mut hive = HiveSim::boot_page(&page()).expect("boots");
        hive.net.set_bridge(Box::new(Hostile(bytes)));
        let ticket = hive.queen_ticket().unwrap();
        let mut q = Host::connect(&mut hive);
        let root = q.attach(&mut hive, "queen", &ticket).unwrap();
        let before = last_seq(&mut q, &mut hive, root, "w1");
        // Ten seconds of a bridge that never sets up: no GPU, no hang.
        ticks(&mut hive, 10);
        assert!(!bridge_up(&hive), "{what}");
        assert_eq!(
            q.walk(&mut hive, root, "/gpu/0"),
            Err(FsError::NotFound),
            "{what}"
        );
        let console = hive.sim.console();
        assert!(
            console.contains("ninedoor: gpu bridge: "),
            "{what}: {console}"
        );
        assert!(!console.contains("MON|ERROR"), "{what}: {console}");
        // Several attempts, backing off, not one per tick.
        let (_, connects) = hive.net.bridge_state();
        assert!((2..=10).contains(&connects), "{what}: {connects} connects");
        assert!(
            last_seq(&mut q, &mut hive, root, "w1") >= before + 10,
            "{what}"
        );
        assert!(q.read_all(&mut hive, root, "/proc/boot").is_ok(), "{what}");
    }
}
