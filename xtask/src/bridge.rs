//! The GPU bridge of `cargo xtask run`: a `gpu-bridge-host --mock` started
//! on a loopback port with a fresh bridge key (the same key goes into the
//! image's seed page), or one the user runs (`--gpu-bridge HOST:PORT
//! --gpu-bridge-key FILE`, say on a GPU host built with `--features
//! cuda`), and the checks of the image's `/gpu` against it.

use crate::run::{
    Console, Host, Via, cohsh, cohsh_status, cohsh_status_as, random, seq_of, write_private,
};
use crate::{Failure, workspace};
use cohesix_pds::wiring::GPU_PASS_MARKER;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the image may take to list the bridge's GPUs after boot.
const GPUS_WAIT: Duration = Duration::from_secs(30);
/// How long a GPU worker's job may take to reach `OK`.
const JOB_WAIT: Duration = Duration::from_secs(45);
/// How soon `/gpu` must answer `EHOSTUNREACH` once the bridge is gone.
const LOSS_WAIT: Duration = Duration::from_secs(5);

/// The bridge the image's `guestfwd` reaches.
pub(crate) struct Bridge {
    /// `host:port` on the host.
    pub(crate) addr: String,
    /// The key it verifies tickets with.
    pub(crate) key: [u8; 32],
    /// The mock bridge this run started (its binary, key file and
    /// process); `None` for the user's own bridge.
    mock: Option<Mock>,
}

struct Mock {
    bin: PathBuf,
    key_file: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A key file: 32 bytes, or 64 hex digits.
fn read_key(path: &Path) -> Result<[u8; 32], Failure> {
    let bytes =
        std::fs::read(path).map_err(|e| Failure::missing(format!("{}: {e}", path.display())))?;
    if let Ok(k) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(k);
    }
    let text = String::from_utf8_lossy(&bytes);
    let hex = text.trim();
    let mut key = [0u8; 32];
    if hex.len() != 64 {
        return Err(Failure::missing(format!(
            "{}: not 32 bytes or 64 hex digits",
            path.display()
        )));
    }
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| Failure::missing(format!("{}: not 64 hex digits", path.display())))?;
    }
    Ok(key)
}

impl Bridge {
    /// The user's bridge at `addr`, verifying with the key in `key_file`.
    pub(crate) fn external(addr: &str, key_file: &Path) -> Result<Bridge, Failure> {
        Ok(Bridge {
            addr: addr.to_owned(),
            key: read_key(key_file)?,
            mock: None,
        })
    }

    /// A mock bridge to start on a free loopback port, with a fresh key
    /// written 0600 in `stage`.
    pub(crate) fn mock(stage: &Path) -> Result<Bridge, Failure> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args([
                "build",
                "-q",
                "-p",
                "gpu-bridge",
                "--bin",
                "gpu-bridge-host",
            ])
            .status()
            .map_err(|e| Failure::new(format!("building gpu-bridge-host: {e}")))?;
        if !status.success() {
            return Err(Failure::new(format!(
                "building gpu-bridge-host failed ({status})"
            )));
        }
        let target = crate::target_dir();
        let mut key = [0u8; 32];
        random(&mut key)?;
        let key_file = stage.join("bridge.key");
        write_private(&key_file, &key)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Failure::new(format!("no free loopback port: {e}")))?
            .port();
        Ok(Bridge {
            addr: format!("127.0.0.1:{port}"),
            key,
            mock: Some(Mock {
                bin: target.join("debug").join("gpu-bridge-host"),
                key_file,
                log: stage.join("bridge.log"),
                child: None,
            }),
        })
    }

    /// Starts the mock bridge (nothing for the user's) and waits until it
    /// accepts connections.
    pub(crate) fn start(&mut self) -> Result<(), Failure> {
        let Some(m) = self.mock.as_mut() else {
            return Ok(());
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(|e| Failure::new(format!("{}: {e}", m.log.display())))?;
        let err = log
            .try_clone()
            .map_err(|e| Failure::new(format!("{}: {e}", m.log.display())))?;
        let child = Command::new(&m.bin)
            .args(["--mock", "--listen", &self.addr, "--ticket-key-file"])
            .arg(&m.key_file)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| Failure::new(format!("starting {}: {e}", m.bin.display())))?;
        println!(
            "gpu bridge: gpu-bridge-host --mock on {} (pid {}, log {})",
            self.addr,
            child.id(),
            m.log.display()
        );
        m.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&self.addr).is_err() {
            if Instant::now() > deadline {
                return Err(Failure::new(format!(
                    "the mock bridge does not listen on {}",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Kills the mock bridge (as a crash would).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.mock.as_mut().and_then(|m| m.child.take()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `xtask relay HOST:PORT`: QEMU's `guestfwd=…-cmd:` runs this for each
/// connection the guest makes to the bridge address, its stdio being that
/// connection. It copies both ways to the bridge and exits when either side
/// closes, so the guest sees the bridge go away (a `guestfwd` to a chardev
/// would keep the guest's connection open after the bridge died, and not
/// reconnect when it came back). Its stdio is the guest's connection, so it
/// prints nothing: a bridge that is down is an exit, which the guest sees
/// as the connection closing.
pub(crate) fn relay(addr: &str) -> std::process::ExitCode {
    use std::io::{Read, Write};
    let Ok(stream) = std::net::TcpStream::connect(addr) else {
        return std::process::ExitCode::FAILURE;
    };
    let _ = stream.set_nodelay(true);
    let Ok(mut up) = stream.try_clone() else {
        return std::process::ExitCode::FAILURE;
    };
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if up.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = up.shutdown(std::net::Shutdown::Both);
        std::process::exit(0);
    });
    let mut down = stream;
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match down.read(&mut buf) {
            Ok(0) | Err(_) => return std::process::ExitCode::SUCCESS,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return std::process::ExitCode::SUCCESS;
                }
            }
        }
    }
}

fn fail(what: String) -> Failure {
    Failure::new(format!("gpu: {what}"))
}

/// Waits until `ok` holds, checking every 250 ms, at most `wait`; how long
/// it took.
fn wait_for(wait: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if ok() {
            return Some(started.elapsed());
        }
        if started.elapsed() > wait {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Leases GPU 0 to `worker` as the Queen over TCP; its ticket's file.
fn lease(host: &Host, worker: &str) -> Result<PathBuf, Failure> {
    let (ok, ticket, err) = cohsh_status(
        host,
        Via::Tcp,
        &[
            "gpu", "lease", "0", "--worker", worker, "--mem-mb", "64", "--ttl-s", "600",
        ],
        Some("<ticket>"),
    )?;
    if !ok || ticket.trim().is_empty() {
        return Err(fail(format!("lease of gpu 0 to {worker} refused: {err}")));
    }
    let file = host.stage.join(format!("{worker}.ticket"));
    write_private(&file, ticket.trim().as_bytes())?;
    Ok(file)
}

/// A heartbeat worker's ticket reaches nothing under `/gpu`: a slot is
/// freed (w5 killed) for a fresh heartbeat worker whose ticket is tried.
fn heartbeat_refused(host: &Host) -> Result<(), Failure> {
    cohsh(host, Via::Tcp, &["kill", "w5"])?;
    let (ok, ticket, err) = cohsh_status(
        host,
        Via::Tcp,
        &["spawn", "heartbeat", "w6"],
        Some("<ticket>"),
    )?;
    if !ok {
        return Err(fail(format!("spawn w6: {err}")));
    }
    let file = host.stage.join("w6.ticket");
    write_private(&file, ticket.trim().as_bytes())?;
    let (ok, _, err) = cohsh_status_as(host, Via::Tcp, &file, &["cat", "/gpu/0/info"], None)?;
    if ok || !(err.contains("EACCES") || err.contains("permission denied")) {
        return Err(fail(format!(
            "a heartbeat worker's ticket was not refused on /gpu: {err}"
        )));
    }
    println!("xtask run: a heartbeat worker's ticket is refused on /gpu (EACCES)");
    Ok(())
}

/// Waits for the gpuworker PD's pass line after console line `mark`.
fn gpu_worker_passes(console: &Console, mark: usize, worker: &str) -> Result<(), Failure> {
    let took = wait_for(JOB_WAIT, || {
        !console.since(mark, GPU_PASS_MARKER).is_empty()
            || !console.since(mark, "result wrong").is_empty()
    });
    let passed = console.since(mark, GPU_PASS_MARKER);
    match (took, passed.first()) {
        (Some(t), Some(line)) => {
            println!(
                "xtask run: {worker}'s job in the gpuworker PD passed after {} ms: {line}",
                t.as_millis()
            );
            Ok(())
        }
        _ => Err(fail(format!(
            "no {GPU_PASS_MARKER:?} for {worker} within {}s",
            JOB_WAIT.as_secs()
        ))),
    }
}

/// The image's `/gpu` against the bridge: GPUs listed, the gpuworker PD's
/// job `OK`, a host `cohsh gpu submit` as the leased worker `OK`, a
/// heartbeat worker refused; then (for the mock bridge, which this run
/// controls) the bridge killed — `/gpu/0/info`
/// `EHOSTUNREACH` within [`LOSS_WAIT`] while the heartbeats go on — and
/// started again, after which a second lease's job reaches `OK`.
pub(crate) fn gpu_session(
    host: &Host,
    console: &Console,
    bridge: &mut Bridge,
) -> Result<(), Failure> {
    let listed = wait_for(GPUS_WAIT, || {
        cohsh(host, Via::Tcp, &["ls", "/gpu"])
            .is_ok_and(|l| l.lines().any(|n| n.trim_end_matches('/') == "0"))
    });
    if listed.is_none() {
        return Err(fail(format!(
            "/gpu did not list the bridge's GPU 0 within {}s",
            GPUS_WAIT.as_secs()
        )));
    }
    cohsh(host, Via::Tcp, &["gpu", "list"])?;
    cohsh(host, Via::Tcp, &["cat", "/gpu/0/info"])?;
    heartbeat_refused(host)?;

    let mark = console.mark();
    let g1 = lease(host, "g1")?;
    gpu_worker_passes(console, mark, "g1")?;

    // The host, as the leased worker, over TCP into the image.
    let job = host.stage.join("vadd.json");
    std::fs::write(&job, cohesix_pds::vadd_descriptor("host-vadd", false))
        .map_err(|e| fail(format!("{}: {e}", job.display())))?;
    let job = job.display().to_string();
    let (ok, _, err) = cohsh_status_as(host, Via::Tcp, &g1, &["gpu", "submit", "0", &job], None)?;
    if !ok {
        return Err(fail(format!("cohsh gpu submit as g1: {err}")));
    }
    let follow = ["gpu", "status", "0", "-f", "--job", "host-vadd"];
    let (ok, status, err) = cohsh_status_as(host, Via::Tcp, &g1, &follow, None)?;
    if !ok || !status.lines().any(|l| l.starts_with("OK host-vadd")) {
        return Err(fail(format!("host-vadd did not reach OK: {err}")));
    }
    cohsh_status_as(
        host,
        Via::Tcp,
        &g1,
        &["gpu", "result", "0", "--job", "host-vadd"],
        None,
    )?;

    if bridge.mock.is_none() {
        println!("xtask run: the bridge is yours: its loss and return are not tried");
        return Ok(());
    }
    let w2_before = seq_of(host, "w2")?;
    let mark = console.mark();
    bridge.stop();
    println!("xtask run: gpu bridge killed");
    let gone = wait_for(LOSS_WAIT, || {
        cohsh_status_as(host, Via::Tcp, &g1, &["cat", "/gpu/0/info"], None)
            .is_ok_and(|(ok, _, err)| !ok && err.contains("EHOSTUNREACH"))
    });
    let Some(took) = gone else {
        return Err(fail(format!(
            "/gpu/0/info did not answer EHOSTUNREACH within {}s of the bridge's death",
            LOSS_WAIT.as_secs()
        )));
    };
    println!(
        "xtask run: /gpu/0/info answers EHOSTUNREACH {} ms after the bridge died",
        took.as_millis()
    );
    std::thread::sleep(Duration::from_secs(2));
    let w2_after = seq_of(host, "w2")?;
    if w2_after <= w2_before {
        return Err(fail(format!(
            "w2 stopped beating while the bridge was away ({w2_before:?} then {w2_after:?})"
        )));
    }
    bridge.start()?;
    let back = wait_for(GPUS_WAIT, || {
        !console
            .since(mark, "ninedoor: gpu bridge: connected")
            .is_empty()
    });
    if back.is_none() {
        return Err(fail(format!(
            "the link did not come back within {}s of the bridge's restart",
            GPUS_WAIT.as_secs()
        )));
    }
    // The restarted bridge remembers no lease: g1 goes, g2 is leased.
    cohsh(host, Via::Tcp, &["kill", "g1"])?;
    let mark = console.mark();
    lease(host, "g2")?;
    gpu_worker_passes(console, mark, "g2")?;
    println!("xtask run: gpu bridge lost and back; a second job reached OK");
    Ok(())
}
