//! A GPU end to end over real TCP on 127.0.0.1: `gpu-bridge-host --mock`
//! verifying tickets with a bridge key, `ninedoor --gpu-bridge` sharing
//! that key, and `cohsh gpu …` as the Queen, as the GPU worker she leased
//! the GPU to, and as a heartbeat worker. The bridge is killed and
//! restarted on the same port while the hive keeps serving.

mod common;

use common::{Bridge, DEADLINE, NineDoor, bridge_key, eventually, ok, result_values, vadd_job};
use std::time::{Duration, Instant};

#[test]
fn a_leased_gpu_runs_a_job_through_the_hive_and_survives_its_bridge_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let key = bridge_key(dir.path());
    let bridge = Bridge::start("127.0.0.1:0", &key);
    let bridge_addr = bridge.addr.clone();
    let key_arg = key.to_str().unwrap();
    let hive = NineDoor::start(&["--gpu-bridge", &bridge_addr, "--gpu-bridge-key", key_arg]);

    // GPU 0 appears once NineDoor has reached the bridge and listed it.
    eventually(DEADLINE, "gpu 0 installed", || {
        let ls = hive.queen(&["ls", "/gpu"]);
        (ls.stdout.trim() == "0/").then_some(())
    });
    let list = ok(hive.queen(&["--json", "gpu", "list"]));
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list[0]["id"], "0");
    assert_eq!(list[0]["name"], "Cohesix Mock GPU");
    assert_eq!(list[0]["sm_count"], 16);
    let table = ok(hive.queen(&["gpu", "list"]));
    assert!(
        table.stdout.starts_with("0\tCohesix Mock GPU\t16384 MiB"),
        "{table:?}"
    );

    // The Queen leases GPU 0 to g1: the bridge grants, the hive spawns g1.
    let lease = ok(hive.queen(&[
        "gpu", "lease", "0", "--mem-mb", "256", "--ttl-s", "60", "--worker", "g1",
    ]));
    let g1 = lease.stdout.trim().to_owned();
    assert!(g1.starts_with("c9t1.") && !g1.contains('\n'), "{lease:?}");
    assert!(
        lease
            .stderr
            .contains("leased gpu 0 to g1 (bridge: OK LEASE granted holder=g1 mem_mb=256"),
        "{lease:?}"
    );

    // g1 submits a vadd job and follows it to its end.
    let (job, expected) = vadd_job(dir.path(), "vadd-1", 1000);
    let job = job.to_str().unwrap();
    let submit = ok(hive.with_ticket(&g1, &["gpu", "submit", "0", job]));
    assert_eq!(submit.stdout.trim(), "vadd-1");
    assert!(
        submit.stderr.contains("QUEUED vadd-1 priority=0"),
        "{submit:?}"
    );
    let status = ok(hive.with_ticket(&g1, &["gpu", "status", "0", "-f", "--job", "vadd-1"]));
    let lines: Vec<&str> = status.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{status:?}");
    assert!(lines[0].starts_with("QUEUED vadd-1 "), "{status:?}");
    assert_eq!(lines[1], "RUNNING vadd-1");
    let words: Vec<&str> = lines[2].split(' ').collect();
    assert_eq!(&words[..2], ["OK", "vadd-1"], "{status:?}");
    assert_eq!(words[2].len(), 64, "sha256 of the output: {status:?}");
    let shown: Vec<f32> = words[3..].iter().map(|w| w.parse().unwrap()).collect();
    assert_eq!(shown, expected[..8]);

    // The full output reaches the worker, and it is the sums.
    let result = ok(hive.with_ticket(&g1, &["gpu", "result", "0", "--job", "vadd-1"]));
    let result: serde_json::Value = serde_json::from_str(result.stdout.trim()).unwrap();
    assert_eq!(result["len"], 1000);
    assert_eq!(result["truncated"], false);
    assert_eq!(result_values(&result), expected);

    // `gpu top` shows the GPU healthy, leased to g1, with the job's GPU
    // time charged to the lease.
    let top = ok(hive.queen(&["gpu", "top", "--once"]));
    let lines: Vec<&str> = top.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{top:?}");
    assert!(lines[0].starts_with("GPU "), "{top:?}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..3], ["0", "ok", "g1"], "{top:?}");
    assert!(row[4].ends_with("/16384"), "{top:?}");
    assert!(row[9].parse::<f64>().is_ok(), "{top:?}");
    let top = ok(hive.queen(&["--json", "gpu", "top", "--once"]));
    let top: serde_json::Value = serde_json::from_str(top.stdout.trim()).unwrap();
    assert_eq!(top[0]["gpu_id"], "0");
    assert_eq!(top[0]["lease"]["jobs"], 1, "{top}");

    // g1 is confined to its GPU's worker files.
    let ctl = hive.with_ticket(&g1, &["cat", "/gpu/0/ctl"]);
    assert_eq!(ctl.code, Some(2), "{ctl:?}");

    // A heartbeat worker is refused on /gpu.
    let hb = ok(hive.queen(&["spawn", "heartbeat", "w1"]))
        .stdout
        .trim()
        .to_owned();
    for args in [
        &["ls", "/gpu"][..],
        &["cat", "/gpu/0/status"],
        &["gpu", "submit", "0", job],
    ] {
        let refused = hive.with_ticket(&hb, args);
        assert_eq!(refused.code, Some(2), "{args:?}: {refused:?}");
        assert!(refused.stderr.contains("permission denied"), "{refused:?}");
    }

    // Releasing the lease kills g1 (its ticket is revoked).
    let release = ok(hive.queen(&["gpu", "release", "0"]));
    assert!(
        release
            .stdout
            .contains("released gpu 0 (bridge: OK RELEASE holder=g1")
            && release.stdout.contains("killed g1"),
        "{release:?}"
    );
    let revoked = hive.with_ticket(&g1, &["gpu", "status", "0"]);
    assert_eq!(revoked.code, Some(4), "{revoked:?}");

    // A short lease: g2's jobs are taken until it expires, then refused
    // by the bridge with EPERM.
    let leased_at = Instant::now();
    let lease = ok(hive.queen(&[
        "gpu", "lease", "0", "--mem-mb", "64", "--ttl-s", "2", "--worker", "g2",
    ]));
    let g2 = lease.stdout.trim().to_owned();
    let (early, _) = vadd_job(dir.path(), "early", 8);
    ok(hive.with_ticket(&g2, &["gpu", "submit", "0", early.to_str().unwrap()]));
    std::thread::sleep(Duration::from_millis(2_300).saturating_sub(leased_at.elapsed()));
    let (late, _) = vadd_job(dir.path(), "late", 8);
    let late = hive.with_ticket(&g2, &["gpu", "submit", "0", late.to_str().unwrap()]);
    assert_eq!(late.code, Some(2), "{late:?}");
    assert!(
        late.stderr.contains("(EPERM)") && late.stderr.contains("no active lease"),
        "{late:?}"
    );

    // The bridge dies: its files answer EHOSTUNREACH, the rest of the hive
    // carries on.
    drop(bridge);
    let down = eventually(DEADLINE, "bridge loss noticed", || {
        let r = hive.queen(&["cat", "/gpu/0/lease"]);
        (r.code != Some(0)).then_some(r)
    });
    assert_eq!(down.code, Some(6), "{down:?}");
    assert!(down.stderr.contains("EHOSTUNREACH"), "{down:?}");
    ok(hive.queen(&["cat", "/proc/boot"]));
    ok(hive.queen(&["spawn", "heartbeat", "w2"]));
    let no_lease = hive.queen(&["gpu", "lease", "0", "--worker", "g3"]);
    assert_eq!(no_lease.code, Some(6), "{no_lease:?}");

    // It comes back on the same port; NineDoor reconnects by itself and
    // the GPU can be leased again (a restarted bridge remembers no lease).
    let _bridge = Bridge::start(&bridge_addr, &key);
    let lease = eventually(DEADLINE, "bridge back", || {
        let r = hive.queen(&["cat", "/gpu/0/lease"]);
        (r.code == Some(0)).then_some(r)
    });
    assert!(lease.stdout.contains(r#""active":null"#), "{lease:?}");
    let g3 = ok(hive.queen(&["gpu", "lease", "0", "--worker", "g3"])).stdout;
    let (again, _) = vadd_job(dir.path(), "again", 16);
    ok(hive.with_ticket(g3.trim(), &["gpu", "submit", "0", again.to_str().unwrap()]));
    ok(hive.with_ticket(g3.trim(), &["gpu", "status", "0", "-f", "--job", "again"]));

    // The audit log tells it, with ticket ids and never ticket text.
    let log = ok(hive.queen(&["cat", "/log/queen.log"])).stdout;
    for needle in [
        " gpu-installed role=- subject=- ticket=- gpu=0 ",
        " path=/gpu/0/ctl op=lease ",
        " worker=g1 worker-role=worker-gpu ",
        " lease=granted ",
        " release role=queen subject=queen ",
        " denied role=worker-heartbeat subject=w1 ",
        " gpu-complete ",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    assert!(!log.contains("c9t1."), "{log}");
}

#[test]
fn ninedoor_refuses_a_bridge_without_a_bridge_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = common::Proc::spawn(
        std::process::Command::new(common::ninedoor_bin())
            .args(["--listen", "127.0.0.1:0", "--ticket-file"])
            .arg(dir.path().join("queen.ticket"))
            .args(["--gpu-bridge", "127.0.0.1:9"]),
    );
    let (status, err) = proc.wait(DEADLINE);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--gpu-bridge-key"), "{err}");
    assert!(!dir.path().join("queen.ticket").exists());
}
