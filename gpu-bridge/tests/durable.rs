//! Nothing acknowledged is lost across restarts of `gpu-bridge-host
//! --state-dir`: the real binary is `kill -9`ed at random points while a
//! client leases a mock GPU and submits jobs (quick ones and a slow matmul,
//! so jobs are running and queued when it dies), and restarted; afterwards
//! every acknowledged job is in `/gpu/0/status` once, with one final line,
//! the ones that were running or queued `ERR INTERRUPTED`, and the lease
//! kept its id and absolute expiry. Also: a corrupt database refuses to
//! start and is left alone, and a write the disk refuses fails with its
//! errno while reads go on. Real binary on 127.0.0.1.

use gpu_bridge::{JobDescriptor, StatusLine, Workload};
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use secure9p_core::FsError;
use secure9p_core::codec::LOpenFlags;
use secure9p_transport::client::{CallError, connect_tcp};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Restarts of the crash test.
const CRASHES: usize = 12;
/// Jobs the crash test's client submits at most: all of their lines fit
/// the 64 KiB status ring, so every one of them can be checked there.
const MAX_JOBS: usize = 150;
const MSIZE: u32 = 64 * 1024;
const DEADLINE: Duration = Duration::from_secs(20);

/// A running `gpu-bridge-host --mock --anonymous --state-dir`.
struct Bridge {
    child: std::process::Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bridge {
    fn start(listen: &str, state: &Path, payloads: &Path) -> Bridge {
        let mut child = command(listen, state, payloads)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {}", stderr.lock().unwrap()))
            .to_owned();
        Bridge {
            child,
            addr,
            stderr,
        }
    }

    fn kill_9(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) until its stderr says `what`.
    fn says(&self, what: &str) {
        let start = Instant::now();
        loop {
            let err = self.stderr.lock().unwrap().clone();
            if err.contains(what) {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "never said {what:?}: {err}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn command(listen: &str, state: &Path, payloads: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-bridge-host"));
    cmd.args(["--mock", "--listen", listen, "--anonymous", "--state-dir"])
        .arg(state)
        .arg("--stage")
        .arg(format!("quick={}", payloads.join("quick").display()))
        .arg("--stage")
        .arg(format!("slow={}", payloads.join("slow").display()));
    cmd
}

/// The staged payloads: a 4-element vadd and a 256³ matmul (16.7 M
/// multiply-adds on the CPU executor: long enough to be running when the
/// bridge is killed).
fn workloads() -> [(&'static str, Workload); 2] {
    let slow = Workload::Matmul {
        m: 256,
        k: 256,
        n: 256,
        a: (0..256 * 256).map(|i| (i % 7) as f32).collect(),
        b: (0..256 * 256).map(|i| (i % 5) as f32).collect(),
    };
    let quick = Workload::Vadd {
        a: vec![1.0, 2.0, 3.0, 4.0],
        b: vec![5.0, 6.0, 7.0, 8.0],
    };
    [("quick", quick), ("slow", slow)]
}

fn payloads(dir: &Path) -> PathBuf {
    let at = dir.join("payloads");
    std::fs::create_dir_all(&at).unwrap();
    for (name, w) in workloads() {
        std::fs::write(at.join(name), w.encode()).unwrap();
    }
    at
}

/// One job naming a staged payload.
fn job(id: &str, payload: &str) -> Vec<u8> {
    let w = workloads()
        .into_iter()
        .find(|(n, _)| *n == payload)
        .unwrap()
        .1;
    let mut d = JobDescriptor::inline(id, &w);
    d.payload_b64 = None;
    d.artefact = Some(payload.to_owned());
    d.timeout_ms = 60_000;
    d.to_json().into_bytes()
}

/// A fresh connection for each call, so a bridge killed between calls only
/// fails the call it killed.
struct Client {
    rt: tokio::runtime::Runtime,
}

impl Client {
    fn new() -> Client {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Client { rt }
    }

    /// Writes `data` to `path` once; the reply line, or why it failed.
    fn write(&self, addr: &str, path: &str, data: &[u8]) -> Result<String, CallError> {
        self.rt.block_on(async {
            let call = async {
                let conn = connect_tcp(addr, MSIZE).await?;
                let root = conn.attach("dev", "").await?;
                let fid = conn.walk(root, path).await?;
                conn.lopen(fid, LOpenFlags::RDWR).await?;
                conn.write(fid, 0, data).await?;
                let reply = conn.read_to_end(fid, 0).await?;
                Ok(String::from_utf8_lossy(&reply).into_owned())
            };
            tokio::time::timeout(Duration::from_secs(3), call)
                .await
                .unwrap_or(Err(CallError::Unexpected("timed out")))
        })
    }

    fn cat(&self, addr: &str, path: &str) -> Result<String, CallError> {
        self.rt.block_on(async {
            let conn = connect_tcp(addr, MSIZE).await?;
            let root = conn.attach("dev", "").await?;
            let fid = conn.walk(root, path).await?;
            conn.lopen(fid, LOpenFlags::empty()).await?;
            let text = conn.read_to_end(fid, 0).await?;
            Ok(String::from_utf8_lossy(&text).into_owned())
        })
    }
}

fn expires_of(reply: &str) -> u64 {
    reply
        .split_whitespace()
        .find_map(|w| w.strip_prefix("expires_ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no expires_ms in {reply:?}"))
}

/// The status lines of each job, in order.
fn by_job(status: &str) -> BTreeMap<String, Vec<StatusLine>> {
    let mut jobs: BTreeMap<String, Vec<StatusLine>> = BTreeMap::new();
    for l in status.lines() {
        let line: StatusLine = l.parse().unwrap_or_else(|e| panic!("{e}"));
        jobs.entry(line.job_id().to_owned()).or_default().push(line);
    }
    jobs
}

fn interrupted(line: &StatusLine, was: &str) -> bool {
    matches!(line, StatusLine::Err { reason, detail, .. }
        if reason == "INTERRUPTED" && detail.contains(&format!("holder=w1 was {was}")))
}

#[derive(Debug, Default)]
struct Acked {
    jobs: BTreeSet<String>,
    /// The expiry of the last lease write answered.
    expires: u64,
}

#[test]
fn nothing_acknowledged_is_lost_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = payloads(dir.path());
    let state = dir.path().join("state");
    let mut bridge = Bridge::start("127.0.0.1:0", &state, &payloads);
    let addr = bridge.addr.clone();
    let c = Client::new();
    let granted = c
        .write(
            &addr,
            "gpu/0/ctl",
            b"LEASE holder=w1 mem_mb=1024 streams=4 ttl_s=3600",
        )
        .unwrap();
    assert!(granted.contains("lease_id=1 "), "{granted}");

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, addr) = (stop.clone(), addr.clone());
        std::thread::spawn(move || {
            let c = Client::new();
            let mut acked = Acked {
                expires: expires_of(&granted),
                ..Acked::default()
            };
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < MAX_JOBS {
                n += 1;
                if n % 10 == 0 {
                    // The holder asks again: same lease, new expiry.
                    let ttl = 3000 + n;
                    let spec = format!("LEASE holder=w1 mem_mb=1024 streams=4 ttl_s={ttl}");
                    if let Ok(reply) = c.write(&addr, "gpu/0/ctl", spec.as_bytes()) {
                        acked.expires = expires_of(&reply);
                    }
                    continue;
                }
                let (id, payload) = (format!("j{n}"), if n % 4 == 0 { "slow" } else { "quick" });
                match c.write(&addr, "gpu/0/job", &job(&id, payload)) {
                    Ok(reply) => {
                        assert!(reply.starts_with(&format!("QUEUED {id} ")), "{reply}");
                        acked.jobs.insert(id);
                    }
                    // Refused or cut off by a kill: not acknowledged.
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            acked
        })
    };

    // Crash points from a seeded generator (printed, to replay a failure).
    let seed: [u8; 16] = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos())
        .to_le_bytes();
    eprintln!("crash points seeded with {seed:?}");
    let mut rng = TestRng::from_seed(RngAlgorithm::XorShift, &seed);
    for _ in 0..CRASHES {
        std::thread::sleep(Duration::from_millis(50 + rng.random_range(0..250)));
        bridge.kill_9();
        bridge = Bridge::start(&addr, &state, &payloads);
    }
    stop.store(true, Ordering::Relaxed);
    let acked = client.join().unwrap();
    assert!(
        acked.jobs.len() >= 10,
        "the client got jobs through between the crashes: {acked:?}"
    );

    // One more restart ends what the client left queued; then a last kill
    // with a slow job certainly running and two queued behind it.
    bridge.kill_9();
    bridge = Bridge::start(&addr, &state, &payloads);
    for i in 0..3 {
        let reply = c
            .write(&addr, "gpu/0/job", &job(&format!("last{i}"), "slow"))
            .unwrap();
        assert!(reply.starts_with("QUEUED "), "{reply}");
    }
    let start = Instant::now();
    while !c
        .cat(&addr, "gpu/0/status")
        .unwrap()
        .contains("RUNNING last0")
    {
        assert!(start.elapsed() < DEADLINE, "last0 never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    bridge.kill_9();
    let bridge = Bridge::start(&addr, &state, &payloads);
    bridge.says("was not closed cleanly");

    // Every job once: QUEUED, maybe RUNNING, one final line, nothing after.
    let status = c.cat(&addr, "gpu/0/status").unwrap();
    let jobs = by_job(&status);
    for (id, lines) in &jobs {
        let states: Vec<&str> = lines.iter().map(StatusLine::state).collect();
        assert!(
            states == ["QUEUED", "OK"]
                || states == ["QUEUED", "ERR"]
                || states == ["QUEUED", "RUNNING", "OK"]
                || states == ["QUEUED", "RUNNING", "ERR"],
            "{id}: {states:?}\n{status}"
        );
        let last = lines.last().unwrap();
        if matches!(last, StatusLine::Err { reason, .. } if reason == "INTERRUPTED") {
            let was = if states.len() == 3 {
                "running"
            } else {
                "queued"
            };
            assert!(interrupted(last, was), "{id}: {last}");
        } else {
            assert!(matches!(last, StatusLine::Ok { .. }), "{id}: {last}");
        }
    }
    for id in &acked.jobs {
        assert!(
            jobs.contains_key(id),
            "acknowledged {id} was lost\n{status}"
        );
    }
    let last: Vec<&StatusLine> = (0..3)
        .map(|i| jobs[&format!("last{i}")].last().unwrap())
        .collect();
    let running = last.iter().filter(|l| interrupted(l, "running")).count();
    assert_eq!(running, 1, "one job was running at the last kill: {last:?}");
    assert!(
        last.iter().all(|l| matches!(l, StatusLine::Ok { .. })
            || interrupted(l, "running")
            || interrupted(l, "queued")),
        "{last:?}"
    );

    // The lease: the same grant, its expiry at least the last one answered.
    let lease: serde_json::Value =
        serde_json::from_str(&c.cat(&addr, "gpu/0/lease").unwrap()).unwrap();
    let active = &lease["active"];
    assert_eq!(active["holder"], "w1", "{lease}");
    assert_eq!(active["lease_id"], 1, "{lease}");
    let expires = active["expires_ms"].as_u64().unwrap();
    assert!(expires >= acked.expires, "{expires} < {}", acked.expires);
    // Later jobs are accepted under it.
    let reply = c.write(&addr, "gpu/0/job", &job("after", "quick")).unwrap();
    assert!(reply.starts_with("QUEUED after "), "{reply}");
}

#[test]
fn a_corrupt_database_refuses_to_start_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = payloads(dir.path());
    let state = dir.path().join("state");
    Bridge::start("127.0.0.1:0", &state, &payloads).kill_9();
    let db = state.join(gpu_bridge::STATE_FILE);
    let mut bytes = std::fs::read(&db).unwrap();
    for (i, b) in bytes.iter_mut().take(4096).enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let out = command("127.0.0.1:0", &state, &payloads).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bridge.redb") && err.contains("refusing to start"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "never listened");
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "never reset");
}

#[test]
fn a_write_the_disk_refuses_fails_with_its_errno_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = payloads(dir.path());
    let state = dir.path().join("state");
    let bridge = Bridge::start("127.0.0.1:0", &state, &payloads);
    let c = Client::new();
    let addr = bridge.addr.clone();
    c.write(&addr, "gpu/0/ctl", b"LEASE holder=w1 mem_mb=64 ttl_s=600")
        .unwrap();
    c.write(&addr, "gpu/0/job", &job("kept", "quick")).unwrap();
    // A file size limit of one byte on the running bridge: every write to
    // its database now fails with EFBIG, as a full disk fails with ENOSPC.
    let limited = Command::new("prlimit")
        .args(["--pid", &bridge.child.id().to_string(), "--fsize=1:1"])
        .status()
        .expect("prlimit runs");
    assert!(limited.success());

    let refused = c.write(&addr, "gpu/0/job", &job("refused", "quick"));
    assert!(
        matches!(refused, Err(CallError::Fs(FsError::TooBig))),
        "{refused:?}"
    );
    let ctl = c.write(&addr, "gpu/0/ctl", b"LEASE holder=w1 mem_mb=64 ttl_s=900");
    assert!(
        matches!(ctl, Err(CallError::Fs(FsError::TooBig))),
        "{ctl:?}"
    );
    // Reads are answered.
    let lease = c.cat(&addr, "gpu/0/lease").unwrap();
    assert!(lease.contains("\"holder\":\"w1\""), "{lease}");
    assert!(c.cat(&addr, "gpu/0/info").is_ok());
    bridge.says("state not recorded in");
    drop(bridge);

    // What was refused was not recorded; what was acknowledged was.
    let bridge = Bridge::start("127.0.0.1:0", &state, &payloads);
    let status = c.cat(&bridge.addr, "gpu/0/status").unwrap();
    assert!(status.contains("QUEUED kept "), "{status}");
    assert!(!status.contains("refused"), "{status}");
    let lease = c.cat(&bridge.addr, "gpu/0/lease").unwrap();
    assert!(lease.contains("\"ttl_s\":600"), "{lease}");
}
