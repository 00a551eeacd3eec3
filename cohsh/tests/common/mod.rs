//! Running the real binaries: `cohsh`, `worker-heartbeat` and
//! `cohesix-hive` are this crate's (`CARGO_BIN_EXE_*`); `ninedoor` and
//! `gpu-bridge-host` are other crates', so they are built on first use with
//! the same cargo, target directory and profile (a no-op when they are
//! fresh), then found beside this crate's binaries. Every child is killed
//! when its handle drops, and every wait has a deadline.
#![allow(dead_code)]

use gpu_bridge::{JobDescriptor, Workload};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one child may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Builds binary `bin` of workspace package `package` (with `features`)
/// beside this crate's binaries and returns its path.
fn workspace_bin(package: &str, bin: &str, features: &[&str]) -> PathBuf {
    let cohsh = Path::new(env!("CARGO_BIN_EXE_cohsh"));
    let profile_dir = cohsh.parent().expect("binary directory");
    let target_dir = profile_dir.parent().expect("target directory");
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", package]);
    for f in features {
        build.args(["--features", f]);
    }
    build
        .args(["--bin", bin, "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building {bin} failed: {status}");
    let path = profile_dir.join(bin);
    assert!(path.exists(), "no {bin} binary at {}", path.display());
    path
}

/// The `ninedoor` binary, built for this test run if needed.
pub fn ninedoor_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("ninedoor", "ninedoor", &["std"]))
}

/// The `gpu-bridge-host` binary, built for this test run if needed.
pub fn gpu_bridge_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("gpu-bridge", "gpu-bridge-host", &[]))
}

/// Reads `proc`'s first stdout line (within [`DEADLINE`]) and keeps
/// draining the rest, so the child never blocks on a full pipe.
pub fn first_line(proc: &mut Proc, what: &str) -> String {
    let stdout = proc.child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = tx.send(first);
        for _ in lines {}
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} prints its address"))
}

/// A child process, killed when dropped.
pub struct Proc {
    pub child: Child,
    stderr: Option<mpsc::Receiver<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `cmd` with stdout piped and stderr collected.
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("child starts");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = tx.send(s);
        });
        Proc {
            child,
            stderr: Some(rx),
        }
    }

    /// Waits for the exit (killing it after `within`); returns the status
    /// and everything it wrote to stderr.
    pub fn wait(&mut self, within: Duration) -> (ExitStatus, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!("child still running after {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = self
            .stderr
            .take()
            .and_then(|rx| rx.recv_timeout(Duration::from_secs(5)).ok())
            .unwrap_or_default();
        (status, err)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -TERM failed");
    }
}

/// A `ninedoor` on an ephemeral port with its ticket file in a temp dir.
pub struct NineDoor {
    pub proc: Proc,
    pub addr: String,
    pub ticket_file: PathBuf,
    pub dir: tempfile::TempDir,
}

impl NineDoor {
    /// Starts it and reads the bound address from its first stdout line.
    pub fn start(extra: &[&str]) -> NineDoor {
        let dir = tempfile::tempdir().expect("temp dir");
        let ticket_file = dir.path().join("queen.ticket");
        let mut proc = Proc::spawn(
            Command::new(ninedoor_bin())
                .args(["--listen", "127.0.0.1:0", "--ticket-file"])
                .arg(&ticket_file)
                .args(extra),
        );
        let first = first_line(&mut proc, "ninedoor");
        let addr = first
            .strip_prefix("ninedoor listening on tcp ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_owned();
        NineDoor {
            proc,
            addr,
            ticket_file,
            dir,
        }
    }

    /// `cohsh --addr <it> --ticket-file <queen's>` plus `args`.
    pub fn queen(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cohsh"));
        cmd.args(["--addr", &self.addr, "--ticket-file"])
            .arg(&self.ticket_file)
            .args(args);
        run(&mut cmd)
    }

    /// `cohsh --addr <it> --ticket <ticket>` plus `args`.
    pub fn with_ticket(&self, ticket: &str, args: &[&str]) -> Run {
        run(Command::new(env!("CARGO_BIN_EXE_cohsh"))
            .args(["--addr", &self.addr, "--ticket", ticket])
            .args(args))
    }
}

/// A `gpu-bridge-host --mock` serving on TCP, verifying tickets with a key file.
pub struct Bridge {
    pub proc: Proc,
    pub addr: String,
}

impl Bridge {
    /// Starts it on `listen` (`127.0.0.1:0`, or the address of a bridge
    /// that stopped) and reads the bound address from its first line.
    pub fn start(listen: &str, key: &Path) -> Bridge {
        Bridge::start_with(listen, key, &[])
    }

    /// [`Bridge::start`] with `extra` flags (`--tls-*`).
    pub fn start_with(listen: &str, key: &Path, extra: &[&str]) -> Bridge {
        let mut proc = Proc::spawn(
            Command::new(gpu_bridge_bin())
                .args(["--mock", "--listen", listen, "--ticket-key-file"])
                .arg(key)
                .args(extra),
        );
        let first = first_line(&mut proc, "gpu-bridge-host");
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_owned();
        Bridge { proc, addr }
    }
}

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end (under [`DEADLINE`]).
pub fn run(cmd: &mut Command) -> Run {
    let mut proc = Proc::spawn(cmd.env_remove("COHESIX_TICKET").env_remove("COHESIX_ADDR"));
    let mut out = proc.child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let (status, stderr) = proc.wait(DEADLINE);
    Run {
        code: status.code(),
        stdout: reader.join().unwrap_or_default(),
        stderr,
    }
}

/// Polls `f` until it returns `Some` or `within` passes.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bridge key: 64 hex digits, mode 0600.
pub fn bridge_key(dir: &Path) -> PathBuf {
    let path = dir.join("bridge.key");
    let hex: String = (0u8..32)
        .map(|i| format!("{:02x}", i.wrapping_mul(37) ^ 0x5c))
        .collect();
    std::fs::write(&path, hex).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A vadd job file; returns its path and the sums the GPU must produce.
pub fn vadd_job(dir: &Path, id: &str, n: usize) -> (PathBuf, Vec<f32>) {
    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let b: Vec<f32> = (0..n).map(|i| 1000.0 - (i % 97) as f32).collect();
    let expected = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let job = JobDescriptor::inline(id, &Workload::Vadd { a, b });
    let path = dir.join(format!("{id}.json"));
    std::fs::write(&path, job.to_json()).unwrap();
    (path, expected)
}

pub fn ok(run: Run) -> Run {
    assert_eq!(run.code, Some(0), "{run:?}");
    run
}

/// The values of a `cohsh gpu result` (its JSON `values`).
pub fn result_values(result: &serde_json::Value) -> Vec<f32> {
    result["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}
