//! The demo's GPU bridge: a real `gpu-bridge-host --mock` child process on
//! 127.0.0.1 (a free port), verifying tickets with a fresh bridge key that
//! NineDoor is given too. The child must never outlive the demo: it is
//! killed and reaped when its [`MockBridge`] drops, whichever way the demo
//! ends (Ctrl-C, SIGTERM, a failure, or the end of `--once`).

use crate::exit::{Exit, Failure};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bridge binary, as `gpu-bridge`'s Cargo.toml names it.
const BIN: &str = "gpu-bridge-host";

/// How long the bridge may take to print `listening on <addr>`: it binds at
/// once, so this long means it is stuck.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// How long a `cargo build` of the bridge runs before the demo says it is
/// building (a fresh build takes a few seconds, so quiet below that).
const BUILD_NOTICE_AFTER: Duration = Duration::from_secs(1);

/// A child process that is killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn failed(what: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Other, what.to_string())
}

/// What to run as the bridge: `explicit` if given; under `cargo run` the
/// workspace's `gpu-bridge-host`, built (a no-op when fresh) beside this
/// binary with the same profile; else the one beside this binary; else
/// `gpu-bridge-host` from `PATH`.
pub async fn program(explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let Ok(exe) = std::env::current_exe() else {
        return Ok(PathBuf::from(BIN));
    };
    let sibling = exe.with_file_name(BIN);
    let cargo = std::env::var_os("CARGO");
    let package = std::env::var_os("CARGO_MANIFEST_DIR");
    if let (Some(cargo), Some(package)) = (cargo, package) {
        build(&cargo, Path::new(&package), &exe).await?;
        return Ok(sibling);
    }
    Ok(if sibling.exists() {
        sibling
    } else {
        PathBuf::from(BIN)
    })
}

/// `cargo build -q -p gpu-bridge --bin gpu-bridge-host` into the target
/// directory and profile `exe` was built in.
async fn build(cargo: &OsStr, package: &Path, exe: &Path) -> Result<(), Failure> {
    let profile_dir = exe.parent().unwrap_or(Path::new("."));
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "gpu-bridge", "--bin", BIN])
        .current_dir(package)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let mut child = Reaped(
        cmd.spawn()
            .map_err(|e| failed(format!("cannot run cargo to build {BIN}: {e}")))?,
    );
    let started = Instant::now();
    let mut noticed = false;
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(failed(format!("building {BIN}: {e}"))),
        }
        if !noticed && started.elapsed() >= BUILD_NOTICE_AFTER {
            noticed = true;
            println!("bridge     building {BIN} (cargo build -p gpu-bridge)...");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if !status.success() {
        return Err(failed(format!(
            "building {BIN} failed ({status}); --no-gpu runs the hive without a GPU bridge"
        )));
    }
    Ok(())
}

/// Writes a fresh bridge key to `path`: 64 hex digits, created mode 0600
/// (both NineDoor and the bridge refuse a key others may read).
pub fn write_key(path: &Path) -> Result<(), Failure> {
    ninedoor::host::write_new_key(path)
        .map(|_| ())
        .map_err(|e| failed(format!("bridge key: {e}")))
}

/// A running `gpu-bridge-host --mock`; killed when dropped.
pub struct MockBridge {
    child: Reaped,
    addr: String,
}

impl MockBridge {
    /// Starts `program --mock --listen 127.0.0.1:0 --ticket-key-file key`,
    /// its stderr (the bridge's log) into `log`, and waits for the address
    /// it bound.
    pub async fn start(program: &Path, key: &Path, log: &Path) -> Result<MockBridge, Failure> {
        let log_file = std::fs::File::create(log)
            .map_err(|e| failed(format!("bridge log {}: {e}", log.display())))?;
        let mut child = Command::new(program)
            .args(["--mock", "--listen", "127.0.0.1:0", "--ticket-key-file"])
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| not_started(program, &e))?;
        let stdout = child.stdout.take();
        let mut child = Reaped(child);
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Reads the first line for us, then drains the rest so the bridge
        // never blocks on a full pipe; ends when the bridge does.
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let first = tokio::time::timeout(START_DEADLINE, rx).await;
        let addr = match first {
            Ok(Ok(Some(line))) => line.strip_prefix("listening on ").map(str::to_owned),
            Err(_) => {
                return Err(failed(format!(
                    "{} printed no address within {START_DEADLINE:?}",
                    program.display()
                )));
            }
            Ok(_) => None,
        };
        let Some(addr) = addr else {
            let status = child
                .0
                .wait()
                .map_or_else(|e| e.to_string(), |s| s.to_string());
            let why = std::fs::read_to_string(log).unwrap_or_default();
            let why = why.lines().last().unwrap_or("no message");
            return Err(failed(format!(
                "{} did not start ({status}): {why}",
                program.display()
            )));
        };
        Ok(MockBridge { child, addr })
    }

    /// The address it serves on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

fn not_started(program: &Path, e: &std::io::Error) -> Failure {
    if e.kind() != std::io::ErrorKind::NotFound {
        return failed(format!("cannot start {}: {e}", program.display()));
    }
    let hint = "build it with `cargo build -p gpu-bridge`, pass --gpu-bridge-bin PATH, \
                or run with --no-gpu";
    if program.components().count() > 1 {
        failed(format!("{} not found: {hint}", program.display()))
    } else {
        failed(format!(
            "{BIN} not found beside cohesix-hive or on PATH: {hint}"
        ))
    }
}
