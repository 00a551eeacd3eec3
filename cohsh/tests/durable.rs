//! Nothing acknowledged is lost across restarts: a real `ninedoor
//! --state-dir` is `kill -9`ed at random points 25 times while a Queen
//! drives `spawn`, `kill`, `lease` and `release` through `cohsh` and two
//! heartbeat workers append; afterwards every command that was answered
//! with success is in the audit log and in the restored hive, no log line
//! is torn or written twice, the live worker has reconnected by itself and
//! the killed one stays refused. Real binaries on 127.0.0.1.

mod common;

use common::{Bridge, DEADLINE, Proc, bridge_key, eventually, first_line, ninedoor_bin, run};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Restarts of the crash test.
const CRASHES: usize = 25;

/// A ninedoor on a fixed state directory and ticket file.
struct Hive {
    proc: Proc,
    addr: String,
}

fn start_hive(listen: &str, state: &Path, ticket: &Path, bridge: &str, key: &Path) -> Hive {
    start_hive_with(listen, state, ticket, Some((bridge, key)))
}

fn ninedoor_cmd(listen: &str, state: &Path, ticket: &Path) -> Command {
    let mut cmd = Command::new(ninedoor_bin());
    cmd.args(["--listen", listen, "--ticket-file"])
        .arg(ticket)
        .arg("--state-dir")
        .arg(state);
    cmd
}

fn start_hive_with(
    listen: &str,
    state: &Path,
    ticket: &Path,
    bridge: Option<(&str, &Path)>,
) -> Hive {
    let mut cmd = ninedoor_cmd(listen, state, ticket);
    if let Some((addr, key)) = bridge {
        cmd.args(["--gpu-bridge", addr, "--gpu-bridge-key"])
            .arg(key);
    }
    let mut proc = Proc::spawn(&mut cmd);
    let first = first_line(&mut proc, "ninedoor");
    let addr = first
        .strip_prefix("ninedoor listening on tcp ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .trim()
        .to_owned();
    Hive { proc, addr }
}

fn cohsh(addr: &str, ticket: &Path, args: &[&str]) -> common::Run {
    run(Command::new(env!("CARGO_BIN_EXE_cohsh"))
        .args(["--addr", addr, "--timeout-s", "3", "--ticket-file"])
        .arg(ticket)
        .args(args))
}

/// Every line of every audit file, oldest file first; panics on a file
/// that does not end in a whole line.
fn audit_lines(state: &Path) -> Vec<String> {
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(state)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_owned();
            let n = match name.strip_prefix("queen.log") {
                Some("") => 0,
                Some(rest) => rest.strip_prefix('.')?.parse().ok()?,
                None => return None,
            };
            Some((n, p))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut lines = Vec::new();
    for (_, p) in files {
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends in a partial line",
            p.display()
        );
        lines.extend(text.lines().map(str::to_owned));
    }
    lines
}

/// A small xorshift, seeded from the clock (printed, so a failure can be
/// replayed by reading it).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Debug, Default)]
struct Acked {
    spawned: BTreeSet<String>,
    /// Spawned, then a kill was tried (answered or not).
    kill_tried: BTreeSet<String>,
    killed: BTreeSet<String>,
    leased: BTreeSet<String>,
    released: BTreeSet<String>,
}

#[test]
fn nothing_acknowledged_is_lost_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let key = bridge_key(dir.path());
    let bridge = Bridge::start("127.0.0.1:0", &key);
    let state = dir.path().join("state");
    let ticket = dir.path().join("queen.ticket");
    let mut hive = start_hive("127.0.0.1:0", &state, &ticket, &bridge.addr, &key);
    let addr = hive.addr.clone();
    eventually(DEADLINE, "gpu 0 installed", || {
        let ls = cohsh(&addr, &ticket, &["ls", "/gpu"]);
        (ls.stdout.trim() == "0/").then_some(())
    });

    // Two heartbeat workers; the Queen kills h2 before the crashes begin.
    let mut workers = BTreeMap::new();
    for id in ["h1", "h2"] {
        let spawned = cohsh(&addr, &ticket, &["spawn", "heartbeat", id]);
        assert_eq!(spawned.code, Some(0), "{spawned:?}");
        let text = spawned.stdout.trim().to_owned();
        let proc = Proc::spawn(
            Command::new(env!("CARGO_BIN_EXE_worker-heartbeat"))
                .args(["--addr", &addr, "--ticket", &text])
                .args(["--interval-ms", "50", "--reconnect-s", "30"]),
        );
        workers.insert(id, (text, proc));
    }
    let killed = cohsh(&addr, &ticket, &["kill", "h2"]);
    assert_eq!(killed.code, Some(0), "{killed:?}");
    let (h2_ticket, mut h2) = workers.remove("h2").unwrap();
    let (status, err) = h2.wait(DEADLINE);
    assert_eq!(
        status.code(),
        Some(4),
        "h2 ends on its revoked ticket: {err}"
    );

    // The Queen's client: spawn/kill pairs and leases until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, addr, ticket) = (stop.clone(), addr.clone(), ticket.clone());
        std::thread::spawn(move || {
            let mut acked = Acked::default();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if n.is_multiple_of(3) {
                    let g = format!("g{n}");
                    let lease = cohsh(
                        &addr,
                        &ticket,
                        &[
                            "gpu", "lease", "0", "--mem-mb", "64", "--ttl-s", "60", "--worker", &g,
                        ],
                    );
                    if lease.code == Some(0) {
                        acked.leased.insert(g.clone());
                        let rel = cohsh(&addr, &ticket, &["gpu", "release", "0", "--worker", &g]);
                        if rel.code == Some(0) {
                            acked.released.insert(g);
                        }
                    }
                    continue;
                }
                let x = format!("x{n}");
                if cohsh(&addr, &ticket, &["spawn", "heartbeat", &x]).code == Some(0) {
                    acked.spawned.insert(x.clone());
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    acked.kill_tried.insert(x.clone());
                    if cohsh(&addr, &ticket, &["kill", &x]).code == Some(0) {
                        acked.killed.insert(x);
                    }
                }
            }
            acked
        })
    };

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("crash points seeded with {seed}");
    let mut rng = Rng(seed);
    let started = std::time::Instant::now();
    for _ in 0..CRASHES {
        std::thread::sleep(Duration::from_millis(50 + rng.below(300)));
        hive.proc.child.kill().unwrap();
        hive.proc.child.wait().unwrap();
        hive = start_hive(&addr, &state, &ticket, &bridge.addr, &key);
    }
    eprintln!("{CRASHES} crashes in {:?}", started.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let acked = client.join().unwrap();
    assert!(
        !acked.spawned.is_empty() && !acked.killed.is_empty(),
        "the client got commands through between the crashes: {acked:?}"
    );

    // One last restart, so the state checked is the state read back.
    hive.proc.child.kill().unwrap();
    hive.proc.child.wait().unwrap();
    let hive = start_hive(&addr, &state, &ticket, &bridge.addr, &key);

    // The log: whole, well-formed lines; every minted or spawned ticket once.
    let lines = audit_lines(&state);
    let mut once = BTreeSet::new();
    for l in &lines {
        let mut words = l.split(' ');
        let ts = words.next().unwrap_or("");
        let event = words.next().unwrap_or("");
        assert!(
            !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()),
            "bad line {l:?}"
        );
        assert!(!event.is_empty() && l.contains(" role="), "bad line {l:?}");
        if matches!(event, "spawn" | "kill" | "ticket-minted") {
            assert!(once.insert(l.clone()), "line written twice: {l:?}");
        }
    }
    let has = |event: &str, worker: &str| {
        let field = format!(" worker={worker} ");
        lines
            .iter()
            .any(|l| l.split(' ').nth(1) == Some(event) && l.contains(&field))
    };
    for x in &acked.spawned {
        assert!(has("spawn", x), "acknowledged spawn of {x} not in the log");
    }
    for x in &acked.killed {
        assert!(has("kill", x), "acknowledged kill of {x} not in the log");
    }
    for g in &acked.leased {
        assert!(has("spawn", g), "acknowledged lease to {g} not in the log");
    }
    for g in &acked.released {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(" release ") && l.contains(&format!("holder={g} "))),
            "acknowledged release of {g} not in the log"
        );
    }

    // The state: spawned and not killed are there; killed are not.
    let ls = cohsh(&hive.addr, &ticket, &["ls", "/worker"]);
    assert_eq!(ls.code, Some(0), "{ls:?}");
    let live: BTreeSet<&str> = ls.stdout.lines().map(|l| l.trim_end_matches('/')).collect();
    assert!(live.contains("h1") && !live.contains("h2"), "{live:?}");
    for x in &acked.spawned {
        if acked.killed.contains(x) {
            assert!(!live.contains(x.as_str()), "killed {x} came back: {live:?}");
        } else if !acked.kill_tried.contains(x) {
            assert!(live.contains(x.as_str()), "spawned {x} was lost: {live:?}");
        }
    }

    // h1 reconnected by itself and appends to the restarted hive; h2's
    // ticket stays refused.
    eventually(DEADLINE, "h1 heartbeats after the last restart", || {
        let cat = cohsh(&hive.addr, &ticket, &["cat", "/worker/h1/telemetry"]);
        cat.stdout.contains("heartbeat seq=").then_some(())
    });
    let (_, h1) = workers.get_mut("h1").unwrap();
    assert!(h1.child.try_wait().unwrap().is_none(), "h1 still runs");
    let refused = run(Command::new(env!("CARGO_BIN_EXE_cohsh"))
        .args(["--addr", &hive.addr, "--ticket", &h2_ticket])
        .args(["cat", "/worker/h2/telemetry"]));
    assert_eq!(refused.code, Some(4), "{refused:?}");
    assert!(refused.stderr.contains("revoked"), "{refused:?}");
}

/// A hive with one spawned worker, stopped with `kill -9`: its state
/// directory, ticket file and the worker's ticket.
fn hive_with_w1(dir: &Path) -> (PathBuf, PathBuf) {
    let state = dir.join("state");
    let ticket = dir.join("queen.ticket");
    let mut hive = start_hive_with("127.0.0.1:0", &state, &ticket, None);
    let spawned = cohsh(&hive.addr, &ticket, &["spawn", "heartbeat", "w1"]);
    assert_eq!(spawned.code, Some(0), "{spawned:?}");
    hive.proc.child.kill().unwrap();
    hive.proc.child.wait().unwrap();
    (state, ticket)
}

#[test]
fn a_torn_last_record_is_cut_with_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let (state, ticket) = hive_with_w1(dir.path());
    let log = state.join("queen.log");
    let whole = std::fs::read(&log).unwrap();
    // A write the crash cut short: no newline.
    let mut torn = whole.clone();
    torn.extend_from_slice(b"1800000000 spawn role=queen subj");
    std::fs::write(&log, &torn).unwrap();

    let hive = start_hive_with("127.0.0.1:0", &state, &ticket, None);
    let ls = cohsh(&hive.addr, &ticket, &["ls", "/worker"]);
    assert_eq!(ls.stdout.trim(), "w1/", "{ls:?}");
    let after = std::fs::read(&log).unwrap();
    assert!(after.starts_with(&whole), "whole lines are kept");
    let text = String::from_utf8(after).unwrap();
    assert!(!text.lines().any(|l| l.ends_with(" subj")), "{text}");
    assert!(text.ends_with('\n'));
    let cut = text
        .lines()
        .find(|l| l.contains(" audit-torn "))
        .unwrap_or_else(|| panic!("no audit-torn line in {text}"));
    assert!(cut.contains("cut 32 bytes"), "{cut}");
    let ring = cohsh(&hive.addr, &ticket, &["cat", "/log/queen.log"]);
    assert!(ring.stdout.contains(" audit-torn "), "{ring:?}");
    assert!(ring.stdout.contains(" audit-history "), "{ring:?}");
}

#[test]
fn a_corrupt_database_refuses_to_start_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (state, ticket) = hive_with_w1(dir.path());
    let db = state.join("hive.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    for (i, b) in bytes.iter_mut().take(4096).enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();

    let mut proc = Proc::spawn(&mut ninedoor_cmd("127.0.0.1:0", &state, &ticket));
    let (status, err) = proc.wait(DEADLINE);
    assert!(!status.success(), "a corrupt database is refused: {err}");
    assert!(
        err.contains("hive.redb") && err.contains("refusing to start"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "never reset");
}

#[test]
fn a_state_dir_that_is_a_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, b"not a directory").unwrap();
    let mut proc = Proc::spawn(&mut ninedoor_cmd(
        "127.0.0.1:0",
        &state,
        &dir.path().join("queen.ticket"),
    ));
    let (status, err) = proc.wait(DEADLINE);
    assert!(!status.success());
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn a_write_the_disk_refuses_fails_the_control_write_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (state, ticket) = hive_with_w1(dir.path());
    let hive = start_hive_with("127.0.0.1:0", &state, &ticket, None);
    // A file size limit of one byte on the running hive: every append to
    // its log now fails with EFBIG, as a full disk fails with ENOSPC.
    let limited = Command::new("prlimit")
        .args(["--pid", &hive.proc.child.id().to_string(), "--fsize=1:1"])
        .status()
        .expect("prlimit runs");
    assert!(limited.success());

    let spawned = cohsh(&hive.addr, &ticket, &["spawn", "heartbeat", "w2"]);
    assert_ne!(spawned.code, Some(0), "{spawned:?}");
    assert!(spawned.stderr.contains("EFBIG"), "{spawned:?}");
    assert!(
        !spawned.stdout.contains("c9t1."),
        "no ticket handed out: {spawned:?}"
    );
    // Reads log nothing and are answered.
    let boot = cohsh(&hive.addr, &ticket, &["cat", "/proc/boot"]);
    assert_eq!(boot.code, Some(0), "{boot:?}");
    let ring = cohsh(&hive.addr, &ticket, &["cat", "/log/queen.log"]);
    assert!(ring.stdout.contains(" audit-unrecorded "), "{ring:?}");
    drop(hive);

    // What was refused was not recorded; what was acknowledged was.
    let hive = start_hive_with("127.0.0.1:0", &state, &ticket, None);
    let ls = cohsh(&hive.addr, &ticket, &["ls", "/worker"]);
    assert_eq!(ls.stdout.trim(), "w1/", "{ls:?}");
    let log = std::fs::read_to_string(state.join("queen.log")).unwrap();
    assert!(!log.contains(" worker=w2 "), "{log}");
}
