//! The binaries end to end on 127.0.0.1: `ninedoor` serving, `cohsh` as the
//! Queen and as workers, `worker-heartbeat` appending until it is killed,
//! and the `cohesix-hive` demo. Exit codes are part of the interface.

mod common;

use common::{DEADLINE, NineDoor, Proc, run};
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some` or `within` passes.
fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(start.elapsed() < within, "condition not met in {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_spawned_worker_beats_until_the_queen_kills_it_and_its_ticket_dies() {
    let hive = NineDoor::start(&[]);

    // The Queen spawns w1; its ticket alone is on stdout.
    let spawn = hive.queen(&["spawn", "heartbeat", "w1"]);
    assert_eq!(spawn.code, Some(0), "{spawn:?}");
    let ticket = spawn.stdout.trim().to_owned();
    assert!(
        ticket.starts_with("c9t1.") && !ticket.contains('\n'),
        "{ticket}"
    );
    assert!(
        spawn.stderr.contains("spawned worker-heartbeat w1"),
        "{spawn:?}"
    );

    // The worker, its ticket from the environment, its id from the ticket.
    let mut worker = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_worker-heartbeat"))
            .args(["--addr", &hive.addr, "--interval-ms", "100"])
            .env("COHESIX_TICKET", &ticket),
    );

    // Its heartbeats arrive, in order.
    let telemetry = eventually(DEADLINE, || {
        let cat = hive.queen(&["cat", "/worker/w1/telemetry"]);
        assert_eq!(cat.code, Some(0), "{cat:?}");
        (cat.stdout.lines().count() >= 3).then_some(cat.stdout)
    });
    for (n, line) in telemetry.lines().take(3).enumerate() {
        let (ts, rest) = line.split_once(' ').expect("ts and text");
        assert!(ts.parse::<u64>().is_ok(), "{line}");
        assert_eq!(rest, format!("heartbeat seq={}", n + 1));
    }
    let workers = hive.queen(&["--json", "workers"]);
    let workers: serde_json::Value = serde_json::from_str(&workers.stdout).unwrap();
    assert_eq!(workers[0]["id"], "w1");
    assert!(workers[0]["telemetry_bytes"].as_u64().unwrap() > 0);

    // The Queen kills it: the worker notices by itself and says why.
    let kill = hive.queen(&["kill", "w1"]);
    assert_eq!(kill.code, Some(0), "{kill:?}");
    assert!(kill.stdout.starts_with("killed w1"), "{kill:?}");
    let (status, err) = worker.wait(DEADLINE);
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(err.contains("ticket revoked"), "{err}");

    // Its ticket is refused from now on, and its files are gone.
    let refused = hive.with_ticket(&ticket, &["ls", "/"]);
    assert_eq!(refused.code, Some(4), "{refused:?}");
    assert!(refused.stderr.contains("ticket revoked"), "{refused:?}");
    let gone = hive.queen(&["cat", "/worker/w1/telemetry"]);
    assert_eq!(gone.code, Some(3), "{gone:?}");
    assert!(gone.stderr.contains("no such file: /worker/w1/telemetry"));

    let log = hive.queen(&["cat", "/log/queen.log"]).stdout;
    for event in ["spawn", "kill", "ticket-revoked", "ticket-refused"] {
        assert!(
            log.lines().any(|l| l.split(' ').nth(1) == Some(event)),
            "no {event} in\n{log}"
        );
    }
    assert!(!log.contains(&ticket), "ticket text in the log");

    // SIGTERM stops the hive cleanly and removes its ticket file.
    hive.proc.terminate();
    let mut nd = hive;
    let (status, _) = nd.proc.wait(DEADLINE);
    assert_eq!(status.code(), Some(0));
    assert!(!nd.ticket_file.exists());
}

#[test]
fn exit_codes_and_messages_say_what_went_wrong() {
    let hive = NineDoor::start(&[]);
    let w1 = hive
        .queen(&["spawn", "heartbeat", "w1"])
        .stdout
        .trim()
        .to_owned();
    hive.queen(&["spawn", "heartbeat", "w2"]);
    let worker = |args: &[&str]| hive.with_ticket(&w1, args);
    // The same claims under a MAC that differs in its last digit.
    let forged = match w1.strip_suffix('0') {
        Some(rest) => format!("{rest}1"),
        None => format!("{}0", &w1[..w1.len() - 1]),
    };
    // (command, exit code, a piece of stderr)
    let cases: Vec<(common::Run, i32, &str)> = vec![
        (hive.queen(&["ls", "/"]), 0, ""),
        (hive.queen(&["frobnicate"]), 1, "unrecognized subcommand"),
        (hive.queen(&["echo", "a", "b", "c"]), 1, "usage: cohsh echo"),
        (
            worker(&["cat", "/queen/ctl"]),
            2,
            "permission denied: /queen needs the queen role (on the way to /queen/ctl)",
        ),
        (
            worker(&["echo", "forged", ">", "/worker/w2/telemetry"]),
            2,
            "belongs to worker w2, not to this ticket's worker w1",
        ),
        (
            hive.queen(&["write", "/worker/w1/telemetry", "hi"]),
            2,
            "is appended by worker w1 only",
        ),
        (
            hive.queen(&["cat", "/worker/w9/telemetry"]),
            3,
            "no such file: /worker/w9/telemetry",
        ),
        (hive.queen(&["kill", "w9"]), 3, "no such worker: w9"),
        (
            hive.queen(&["write", "/queen/ctl", r#"{"cmd":"kill","id":"w9"}"#]),
            3,
            "the hive refused the command: file does not exist (ENOENT)",
        ),
        (hive.with_ticket("garbage", &["ls"]), 4, "ticket refused"),
        (hive.with_ticket(&forged, &["ls"]), 4, "ticket rejected"),
        (
            run(Command::new(env!("CARGO_BIN_EXE_cohsh")).args([
                "--addr",
                "127.0.0.1:1",
                "--ticket",
                &w1,
                "ls",
            ])),
            5,
            "cannot reach the hive at 127.0.0.1:1",
        ),
        (
            hive.queen(&["echo", "{not json", ">", "/queen/ctl"]),
            6,
            "the hive refused the command",
        ),
        (hive.queen(&["spawn", "heartbeat", "w1"]), 6, "file exists"),
    ];
    for (n, (got, code, says)) in cases.iter().enumerate() {
        assert_eq!(got.code, Some(*code), "case {n}: {got:?}");
        assert!(got.stderr.contains(says), "case {n}: {got:?}");
    }

    // A worker appends to its own telemetry with echo; the Queen reads it.
    assert_eq!(
        worker(&["echo", "hello from w1", ">", "/worker/w1/telemetry"]).code,
        Some(0)
    );
    assert_eq!(
        worker(&["echo", "again", "/worker/w1/telemetry"]).code,
        Some(0)
    );
    let cat = hive.queen(&["cat", "/worker/w1/telemetry"]);
    assert_eq!(cat.stdout, "hello from w1\nagain\n");

    // JSON where it is asked for.
    let json = |args: &[&str]| -> serde_json::Value {
        let r = hive.queen(args);
        assert_eq!(r.code, Some(0), "{r:?}");
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {r:?}"))
    };
    let ls = json(&["ls", "--json", "/"]);
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["proc", "queen", "log", "worker", "gpu"]);
    assert_eq!(ls[0]["type"], "dir");
    let stat = json(&["--json", "stat", "/worker/w1/telemetry"]);
    assert_eq!(
        (stat["type"].as_str(), stat["size"].as_u64()),
        (Some("append"), Some(20))
    );
    let spawned = json(&["--json", "spawn", "heartbeat"]);
    assert_eq!(spawned["spawned"], "w3");
    assert!(spawned["ticket"].as_str().unwrap().starts_with("c9t1."));
    let budget = json(&["--json", "budget", "--ops", "7"]);
    assert_eq!(budget["ops"], 7);
    let boot = hive.queen(&["cat", "/proc/boot"]).stdout;
    assert!(boot.contains("worker.ops 7\n"), "{boot}");
}

#[test]
fn tail_f_follows_a_growing_file_until_stopped() {
    let hive = NineDoor::start(&[]);
    let w1 = hive
        .queen(&["spawn", "heartbeat", "w1"])
        .stdout
        .trim()
        .to_owned();
    assert_eq!(
        hive.with_ticket(&w1, &["write", "/worker/w1/telemetry", "one"])
            .code,
        Some(0)
    );
    let mut tail = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_cohsh"))
            .args(["--addr", &hive.addr, "--ticket-file"])
            .arg(&hive.ticket_file)
            .args(["tail", "-f", "--poll-ms", "50", "/worker/w1/telemetry"]),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = tail.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "one");
    for text in ["two", "three"] {
        assert_eq!(
            hive.with_ticket(&w1, &["write", "/worker/w1/telemetry", text])
                .code,
            Some(0)
        );
        assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), text);
    }
    tail.terminate();
    let (status, err) = tail.wait(DEADLINE);
    assert_eq!(status.code(), Some(0), "{err}");
}

/// `cohesix-hive` with the workspace's `gpu-bridge-host` as its bridge.
fn demo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cohesix-hive"));
    cmd.arg("--gpu-bridge-bin")
        .arg(common::gpu_bridge_bin())
        .args(args);
    cmd
}

/// The lines after the one that starts with `header`.
fn after<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(1)
        .collect()
}

#[test]
fn the_hive_demo_runs_a_gpu_job_beside_the_heartbeats_and_prints_the_next_commands() {
    let demo = run(&mut demo(&["--once", "--interval-ms", "100"]));
    assert_eq!(demo.code, Some(0), "{demo:?}");
    let out = &demo.stdout;
    assert!(
        out.starts_with("console    http://127.0.0.1:"),
        "the console's URL comes first:\n{out}"
    );
    for want in [
        "bridge     gpu-bridge-host --mock serving 1 mock GPU on 127.0.0.1:",
        "NineDoor   serving the hive on 127.0.0.1:",
        "           mirroring /gpu from the bridge at 127.0.0.1:",
        "queen      spawned heartbeat worker w1 through /queen/ctl",
        "gpu 0      Cohesix Mock GPU (16384 MiB, 16 SMs), mirrored from the bridge as /gpu/0",
        "queen      leased gpu 0 to GPU worker g1 through /queen/ctl",
        "           bridge: OK LEASE granted holder=g1 mem_mb=256 ",
        "           bridge: QUEUED demo-vadd priority=0 position=1\n",
        "worker g1  checked all 8 sums against its own: right",
        "$ cohsh cat /worker/w1/telemetry",
        " heartbeat seq=3\n",
        " spawn role=queen subject=queen ",
        " worker=g1 worker-role=worker-gpu ",
        " gpu-complete ",
        "kill w1",
        "console    stopped",
        "NineDoor   stopped",
        "bridge     stopped",
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    let sums: Vec<f32> = (1..=8).map(|i| 11.0 * i as f32).collect();

    // The job's status lines, in order, end in OK with the sums.
    let status = after(out, "$ cohsh gpu status 0 -f");
    assert!(status[0].starts_with("QUEUED demo-vadd "), "{out}");
    assert_eq!(status[1], "RUNNING demo-vadd", "{out}");
    let ok: Vec<&str> = status[2].split(' ').collect();
    assert_eq!(&ok[..2], ["OK", "demo-vadd"], "{out}");
    assert_eq!(ok[2].len(), 64, "sha256 of the output: {out}");
    let shown: Vec<f32> = ok[3..].iter().map(|w| w.parse().unwrap()).collect();
    assert_eq!(shown, sums);

    // The result the GPU worker read is the sums, in full.
    let result = after(out, "$ cohsh gpu result 0 --job demo-vadd");
    let result: serde_json::Value = serde_json::from_str(result[0]).unwrap();
    assert_eq!(result["job_id"], "demo-vadd");
    assert_eq!(result["kernel"], "vadd");
    assert_eq!(result["len"], 8);
    assert_eq!(result["sha256"], ok[2]);
    assert_eq!(common::result_values(&result), sums);

    // The printed commands name the real address and ticket files, the
    // GPU worker's among them.
    let hint = out
        .lines()
        .find(|l| l.contains(" ls /worker"))
        .expect("an ls hint");
    let addr = hint
        .split("--addr ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(addr.parse::<std::net::SocketAddr>().is_ok(), "{hint}");
    assert!(
        hint.contains("--ticket-file /") && hint.contains("queen.ticket"),
        "{hint}"
    );
    for gpu in [
        "queen.ticket gpu list",
        "g1.ticket gpu submit 0 /",
        "g1.ticket gpu status 0 -f",
        "g1.ticket gpu result 0",
        "queen.ticket gpu release 0",
    ] {
        assert!(
            out.lines().any(|l| l.contains(addr) && l.contains(gpu)),
            "no {gpu:?} hint in\n{out}"
        );
    }
    let lines = out.lines().filter(|l| !l.contains(" heartbeat seq="));
    assert!(lines.count() < 50, "keep the demo short:\n{out}");
}

#[test]
fn the_hive_demo_without_a_gpu_shows_heartbeats_only() {
    let demo = run(Command::new(env!("CARGO_BIN_EXE_cohesix-hive")).args([
        "--once",
        "--no-gpu",
        "--interval-ms",
        "100",
    ]));
    assert_eq!(demo.code, Some(0), "{demo:?}");
    let out = &demo.stdout;
    assert!(out.contains(" heartbeat seq=3\n"), "{out}");
    assert!(out.contains(" ls /worker"), "{out}");
    assert!(!out.contains("bridge") && !out.contains("gpu"), "{out}");
}

#[test]
fn the_hive_demo_fails_clearly_without_its_bridge_binary() {
    let missing = run(Command::new(env!("CARGO_BIN_EXE_cohesix-hive")).args([
        "--once",
        "--gpu-bridge-bin",
        "/nonexistent/gpu-bridge-host",
    ]));
    assert_eq!(missing.code, Some(6), "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("/nonexistent/gpu-bridge-host not found")
            && missing.stderr.contains("--no-gpu"),
        "{missing:?}"
    );
    assert!(!missing.stdout.contains("NineDoor"), "{missing:?}");
}

#[test]
fn ctrl_c_stops_the_hive_demo_and_its_bridge() {
    let mut demo = Proc::spawn(&mut demo(&["--interval-ms", "100"]));
    let stdout = demo.child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    while out
        .last()
        .is_none_or(|l: &String| l != "Serving until Ctrl-C.")
    {
        out.push(rx.recv_timeout(DEADLINE).expect("the demo reaches serving"));
    }
    let bridge_pid = out
        .iter()
        .find_map(|l| l.split("(pid ").nth(1))
        .and_then(|p| p.strip_suffix(')'))
        .expect("the bridge's pid");
    let cmdline = |pid: &str| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline(bridge_pid)).contains("gpu-bridge-host"),
        "{out:?}"
    );
    let dir = out
        .iter()
        .find_map(|l| l.split_whitespace().find(|w| w.ends_with("queen.ticket")))
        .map(|t| std::path::PathBuf::from(t).parent().unwrap().to_owned())
        .expect("the demo's directory");
    assert!(dir.join("bridge.key").exists());

    let sent = Command::new("kill")
        .args(["-INT", &demo.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let (status, err) = demo.wait(DEADLINE);
    assert_eq!(status.code(), Some(0), "{err}");
    let rest: Vec<String> = rx.iter().collect();
    assert_eq!(
        rest,
        [
            "console    stopped",
            "NineDoor   stopped",
            "bridge     stopped"
        ],
        "{err}"
    );
    // The bridge was reaped (its pid is gone, or another program's) and
    // the keys and tickets are gone with the directory.
    assert!(
        !String::from_utf8_lossy(&cmdline(bridge_pid)).contains("gpu-bridge-host"),
        "bridge {bridge_pid} still running"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}
