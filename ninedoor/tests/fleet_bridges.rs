//! Many bridges, one hive, for real: `gpu-bridge-host --mock` processes on
//! 127.0.0.1 ports, a NineDoor host in process. "Any GPU" placement across
//! three bridges (least loaded first, the choice said, a refusing bridge
//! passed over, a killed bridge's GPUs skipped, an unsatisfiable request
//! refused); a bridge added and removed at run time; duplicate GPU ids
//! across two bridges refused while the first bridge serves on; losing one
//! bridge costs its GPUs only.

mod tcp_client;

use tcp_client::Client;

fn run<F: std::future::Future<Output = ()>>(test: F) {
    tcp_client::run_within(DEADLINE, test);
}

use ninedoor::host::{GpuSettings, Host, HostConfig};
use ninedoor::secure9p_core::FsError;
use ninedoor::secure9p_core::codec::LOpenFlags;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// No test may run longer than this.
const DEADLINE: Duration = Duration::from_secs(90);

/// The `gpu-bridge-host` binary, built beside this crate's (a no-op when
/// fresh) with the same cargo, target directory and profile.
fn bridge_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let ninedoor = Path::new(env!("CARGO_BIN_EXE_ninedoor"));
        let profile_dir = ninedoor.parent().expect("binary directory");
        let target_dir = profile_dir.parent().expect("target directory");
        let mut build = Command::new(env!("CARGO"));
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "gpu-bridge",
                "--bin",
                "gpu-bridge-host",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(
            status.success(),
            "building gpu-bridge-host failed: {status}"
        );
        profile_dir.join("gpu-bridge-host")
    })
}

/// A `gpu-bridge-host --mock` process; killed when dropped.
struct Bridge {
    child: Child,
    addr: String,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bridge {
    /// Starts one with `gpus` mock GPUs on a free 127.0.0.1 port.
    fn start(gpus: usize, key: &Path) -> Bridge {
        let mut child = Command::new(bridge_bin())
            .args(["--mock", "--gpus", &gpus.to_string()])
            .args(["--listen", "127.0.0.1:0", "--ticket-key-file"])
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gpu-bridge-host starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let first = rx
            .recv_timeout(DEADLINE)
            .expect("gpu-bridge-host prints its address");
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_owned();
        Bridge { child, addr }
    }
}

/// A bridge key file (mode 0600) in a fresh directory.
fn key_dir() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("bridge.key");
    std::fs::write(&key, [0x5au8; 32]).expect("key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    (dir, key)
}

/// A hive linked to `bridges`.
async fn hive(dir: &TempDir, key: &Path, bridges: Vec<String>) -> Host {
    let config = HostConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ticket_file: Some(dir.path().join("queen.ticket")),
        gpu: GpuSettings {
            bridges,
            key_file: Some(key.to_path_buf()),
            ..GpuSettings::default()
        },
        ..HostConfig::default()
    };
    Host::start(&config).await.expect("host starts")
}

/// Waits until `check` holds.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < DEADLINE, "{what}: never");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn lease(gpu: &str, worker: &str, mem_mb: u32) -> String {
    format!(r#"{{"cmd":"lease","gpu":"{gpu}","worker":"{worker}","mem_mb":{mem_mb},"ttl_s":60}}"#)
}

#[test]
fn any_gpu_placement_across_three_bridges() {
    let (dir, key) = key_dir();
    let a = Bridge::start(1, &key);
    let b = Bridge::start(1, &key);
    let mut c = Bridge::start(2, &key);
    run(async {
        let targets = vec![
            format!("a={}", a.addr),
            format!("b={}", b.addr),
            format!("c={}", c.addr),
        ];
        let host = hive(&dir, &key, targets).await;
        let queen = Client::attach(&host, &host.queen_ticket()).await;
        until("four GPUs installed", || async {
            queen.ls("gpu").await == ["a-0", "b-0", "c-0", "c-1"]
        })
        .await;

        // c-0 is full on its bridge (one active lease, eight waiting) by
        // leases the hive did not place, so it looks idle to the hive.
        for n in 0..9 {
            let line = format!("LEASE holder=x{n} mem_mb=64 ttl_s=60\n");
            let (written, reply) = queen.exchange("gpu/c-0/ctl", line.as_bytes()).await;
            assert!(written.is_ok(), "{reply}");
        }
        queen.command(&lease("a-0", "e1", 1024)).await;
        queen.command(&lease("b-0", "e2", 1024)).await;

        // Least loaded: c-0 and c-1 hold nothing, c-0 first by id; its
        // bridge refuses (EBUSY), so the hive asks c-1, and says so.
        let placed = queen.command(&lease("any", "p1", 512)).await;
        assert_eq!(placed["gpu"], "c-1", "{placed}");
        assert_eq!(placed["spawned"], "p1");
        assert!(
            placed["lease"]
                .as_str()
                .is_some_and(|l| l.starts_with("OK LEASE granted holder=p1 ")),
            "{placed}"
        );
        let log = queen.log().await;
        assert!(
            log.contains(" lease-placed role=queen subject=queen "),
            "{log}"
        );
        assert!(
            log.contains(" gpu=c-0 leases=0 free_mb=16384 mem_mb=512 candidates=4"),
            "{log}"
        );
        assert!(
            log.contains(" gpu=c-0 next=c-1 worker=p1 why=\"ERR "),
            "{log}"
        );

        // Bridge c dies: its GPUs are unreachable, the others serve on, and
        // placement passes c's GPUs over.
        let _ = c.child.kill();
        let _ = c.child.wait();
        until("c's GPUs unreachable", || async {
            queen.cat("gpu/c-1/info").await == Err(FsError::Unreachable)
        })
        .await;
        assert!(queen.cat("gpu/a-0/info").await.is_ok());
        assert!(queen.cat("gpu/b-0/stats").await.is_ok());
        let placed = queen.command(&lease("any", "p2", 512)).await;
        assert_eq!(placed["gpu"], "a-0", "{placed}");
        let log = queen.log().await;
        assert!(
            log.contains(" gpu=a-0 leases=1 free_mb=15360 mem_mb=512 candidates=2"),
            "{log}"
        );
        assert_eq!(
            queen.refused(&lease("c-0", "p3", 64)).await,
            FsError::Unreachable
        );

        // No GPU left with 16,000 MiB free.
        assert_eq!(
            queen.refused(&lease("any", "p4", 16_000)).await,
            FsError::NoSpace
        );
        let log = queen.log().await;
        assert!(
            log.contains(" cmd=lease errno=ENOSPC why=\"no GPU has 16000 MiB free and a bridge link up: 4 installed, 2 unreachable, 2 with less free\""),
            "{log}"
        );
        host.shutdown().await;
    });
}

#[test]
fn a_bridge_added_and_removed_at_run_time() {
    let (dir, key) = key_dir();
    let a = Bridge::start(1, &key);
    let b = Bridge::start(2, &key);
    run(async {
        let host = hive(&dir, &key, vec![format!("a={}", a.addr)]).await;
        let queen = Client::attach(&host, &host.queen_ticket()).await;
        until("a's GPU installed", || async {
            queen.ls("gpu").await == ["a-0"]
        })
        .await;

        let added = queen
            .command(&format!(r#"{{"cmd":"bridge","add":"b={}"}}"#, b.addr))
            .await;
        assert_eq!(added["bridge"], "added");
        assert_eq!(added["bridges"], 2);
        until("b's GPUs installed", || async {
            queen.ls("gpu").await == ["a-0", "b-0", "b-1"]
        })
        .await;
        let again = format!(r#"{{"cmd":"bridge","add":"{}"}}"#, b.addr);
        assert_eq!(queen.refused(&again).await, FsError::Exists);

        // A worker leases b-1 and holds a fid open on it; the Queen holds
        // one on b-0's info.
        let leased = queen.command(&lease("b-1", "g1", 256)).await;
        let g1 = Client::attach(&host, leased["ticket"].as_str().unwrap()).await;
        let status = g1.conn.walk(g1.root, "gpu/b-1/status").await.unwrap();
        g1.conn.lopen(status, LOpenFlags::empty()).await.unwrap();
        let info = queen.conn.walk(queen.root, "gpu/b-0/info").await.unwrap();
        queen.conn.lopen(info, LOpenFlags::empty()).await.unwrap();
        assert!(queen.conn.read(info, 0, 4096).await.is_ok());

        let removed = queen
            .command(&format!(r#"{{"cmd":"bridge","remove":"{}"}}"#, b.addr))
            .await;
        assert_eq!(removed["bridge"], "removed");
        assert_eq!(removed["gpus_removed"], serde_json::json!(["b-0", "b-1"]));
        assert_eq!(removed["workers_killed"], serde_json::json!(["g1"]));
        assert_eq!(queen.ls("gpu").await, ["a-0"]);
        // Open fids on the gone GPUs end with an error; the killed
        // worker's ticket is revoked.
        assert!(queen.conn.read(info, 0, 4096).await.is_err());
        assert!(g1.conn.read(status, 0, 4096).await.is_err());
        assert!(g1.cat("gpu/b-1/info").await.is_err());
        assert_eq!(
            queen.refused(&lease("b-0", "g2", 64)).await,
            FsError::NotFound
        );
        let gone = format!(r#"{{"cmd":"bridge","remove":"{}"}}"#, b.addr);
        assert_eq!(queen.refused(&gone).await, FsError::NotFound);

        // The bridge that stays serves on.
        let placed = queen.command(&lease("any", "g3", 64)).await;
        assert_eq!(placed["gpu"], "a-0");
        let log = queen.log().await;
        for event in [
            " bridge-added ",
            " gpu-removed ",
            " bridge-removed ",
            " kill ",
        ] {
            assert!(log.contains(event), "{event}: {log}");
        }
        assert!(log.contains(" workers-killed=1"), "{log}");

        // Added back, its GPUs return.
        queen
            .command(&format!(r#"{{"cmd":"bridge","add":"b={}"}}"#, b.addr))
            .await;
        until("b's GPUs back", || async {
            queen.ls("gpu").await == ["a-0", "b-0", "b-1"]
        })
        .await;
        host.shutdown().await;
    });
}

#[test]
fn duplicate_gpu_ids_across_two_bridges_are_refused_and_the_first_serves_on() {
    let (dir, key) = key_dir();
    let first = Bridge::start(1, &key);
    let second = Bridge::start(2, &key);
    run(async {
        // Neither has a prefix: both list GPU "0".
        let host = hive(&dir, &key, vec![first.addr.clone()]).await;
        let queen = Client::attach(&host, &host.queen_ticket()).await;
        until("the first bridge's GPU", || async {
            queen.ls("gpu").await == ["0"]
        })
        .await;
        queen
            .command(&format!(r#"{{"cmd":"bridge","add":"{}"}}"#, second.addr))
            .await;
        until("the second bridge's GPU 1", || async {
            queen.ls("gpu").await == ["0", "1"]
        })
        .await;
        let log = queen.log().await;
        let refused = format!(
            " gpu-refused role=- subject=- ticket=- bridge={} gpu=0 why=\"gpu 0 is installed already (from {}); give each bridge a prefix (PREFIX=HOST:PORT)\"",
            second.addr, first.addr
        );
        assert!(log.contains(&refused), "{log}");

        // GPU 0 is still the first bridge's: a lease there is granted by
        // it, and losing the second bridge does not touch it.
        let leased = queen.command(&lease("0", "g1", 64)).await;
        assert!(
            leased["lease"]
                .as_str()
                .is_some_and(|l| l.starts_with("OK LEASE granted holder=g1 ")),
            "{leased}"
        );
        drop(second);
        until("GPU 1 unreachable", || async {
            queen.cat("gpu/1/info").await == Err(FsError::Unreachable)
        })
        .await;
        assert!(queen.cat("gpu/0/info").await.is_ok());
        let g1 = Client::attach(&host, leased["ticket"].as_str().unwrap()).await;
        let (renewed, reply) = g1.exchange("gpu/0/lease", b"RENEW 30").await;
        assert!(renewed.is_ok(), "{reply}");
        host.shutdown().await;
    });
}
