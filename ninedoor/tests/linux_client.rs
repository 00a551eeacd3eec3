//! The Linux kernel's 9P client (booted under QEMU by
//! `scripts/linux-client/run.sh`) mounts NineDoor as the Queen, with her
//! ticket in `aname`: it lists `/`, reads `/proc/boot` and `/log/queen.log`,
//! and spawns a worker by appending a command to `/queen/ctl` with `echo`.
//!
//! Where QEMU or the kernel cannot be had, run.sh exits 77 with a `SKIP:`
//! line, which this test prints before passing.

use ninedoor::host::{Host, HostConfig};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

const GUEST_TIMEOUT_S: u64 = 240;

const GUEST_SCRIPT: &str = r#"
echo "@@ ls"; ls /mnt
echo "@@ boot"; cat /mnt/proc/boot
echo "@@ ctl"
echo '{"cmd":"spawn","role":"heartbeat","id":"lx1"}' >> /mnt/queen/ctl
echo "ctl rc=$?"
echo '{"cmd":"nonsense"}' >> /mnt/queen/ctl
echo "bad ctl rc=$?"
echo "@@ workers"; ls /mnt/worker
echo "@@ log"; cat /mnt/log/queen.log
echo "@@ done"
"#;

/// The lines printed after the guest's `@@ name` header, up to the next one.
fn section<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("@@ {name}");
    stdout
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.starts_with("@@ ") && !l.starts_with("=== "))
        .collect()
}

#[test]
fn linux_v9fs_client_mounts_ninedoor_as_the_queen() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = HostConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ticket_file: Some(dir.path().join("queen.ticket")),
            ..HostConfig::default()
        };
        let host = Host::start(&config).await.expect("host starts");
        let ticket = host.queen_ticket();
        let guest = dir.path().join("guest.sh");
        std::fs::write(&guest, GUEST_SCRIPT).expect("guest script");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cmd = tokio::process::Command::new(root.join("scripts/linux-client/run.sh"));
        cmd.arg("--port")
            .arg(host.tcp_addr().port().to_string())
            .arg("--opts")
            .arg(format!("aname={ticket},uname=queen,msize=262144"))
            .arg("--timeout")
            .arg(GUEST_TIMEOUT_S.to_string())
            .arg(&guest)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(GUEST_TIMEOUT_S + 120), cmd.output())
            .await
            .expect("run.sh finishes")
            .expect("run.sh starts");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        println!(
            "--- run.sh stdout ---\n{stdout}--- run.sh stderr ---\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.code() == Some(77) {
            let why = stdout
                .lines()
                .find(|l| l.starts_with("SKIP:"))
                .unwrap_or("SKIP: run.sh exited 77");
            println!("{why}");
            host.shutdown().await;
            return;
        }
        assert_eq!(out.status.code(), Some(0), "run.sh failed");
        assert!(stdout.contains("=== MOUNT OK ==="), "the mount failed");
        assert!(stdout.contains("=== GUEST END rc=0 ==="));

        let mut listing = section(&stdout, "ls");
        listing.sort_unstable();
        assert_eq!(listing, ["gpu", "log", "proc", "queen", "worker"]);
        let boot = section(&stdout, "boot");
        assert!(
            boot.first()
                .is_some_and(|l| l.starts_with("Cohesix NineDoor")),
            "{boot:?}"
        );
        let ctl = section(&stdout, "ctl");
        assert!(ctl.contains(&"ctl rc=0"), "{ctl:?}");
        // A refused command fails the write: echo reports an error.
        assert!(
            ctl.iter()
                .any(|l| l.starts_with("bad ctl rc=") && *l != "bad ctl rc=0"),
            "{ctl:?}"
        );
        assert_eq!(section(&stdout, "workers"), ["lx1"]);
        let log = section(&stdout, "log").join("\n");
        assert!(
            log.contains("spawn role=queen") && log.contains("worker=lx1"),
            "{log}"
        );
        assert!(log.contains("ctl-refused"), "{log}");
        assert!(!log.contains("c9t1."), "no ticket text in the log");

        let workers = host.shared().with_engine(|e| {
            e.hive()
                .workers()
                .into_iter()
                .map(|w| w.id)
                .collect::<Vec<_>>()
        });
        assert_eq!(workers, ["lx1"]);
        host.shutdown().await;
    });
}
