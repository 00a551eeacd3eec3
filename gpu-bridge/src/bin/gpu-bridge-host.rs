//! `gpu-bridge-host`: discovers GPUs (NVML, or `--mock`), prints their
//! descriptors (`--list`), runs the executor self-test (`--selftest`), or
//! serves `/gpu/<id>/…` over Secure9P TCP (`--listen`) with one worker
//! thread per GPU running jobs on its best executor. With `--tls-cert/
//! --tls-key/--tls-ca` it serves mutual TLS (NineDoor dials it with its own
//! certificate); plain TCP on a non-loopback address is refused unless
//! `--insecure-plain-tcp` is given. With `--state-dir DIR` its leases and
//! job records survive a restart (the crate README, "State directory").
//!
//! Exit status: 0 success, 1 a self-test case failed or serving failed, 2
//! bad usage, 3 no NVML (or another discovery failure).

// jemalloc, giving freed memory back to the OS (host-alloc's README); the
// runtime below is its own, whose idle workers hand their caches back.
use clap::Parser;
use gpu_bridge::{BridgeConfig, ServeOptions};
use gpu_bridge::{
    DiscoveryError, GpuBridge, GpuSource, MockSource, NvmlSource, SystemClock, best_executors,
    fallback_executor, selftest,
};
use secure9p_core::TicketAuthority;
use secure9p_transport::server::{ServeConfig, Shared, serve};
use secure9p_transport::tls::{self, Identity, TlsServer};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// GPU bridge host for Cohesix: discovers GPUs, enforces leases, runs jobs
/// and serves each GPU as files over Secure9P.
#[derive(Debug, Parser)]
#[command(version, about)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["list", "selftest", "listen"]))]
struct Cli {
    /// Use deterministic synthetic GPUs instead of NVML.
    #[arg(long)]
    mock: bool,
    /// How many mock GPUs (with --mock).
    #[arg(long, default_value_t = 1, requires = "mock")]
    gpus: usize,
    /// Print one JSON descriptor per GPU (what NineDoor installs) and exit.
    #[arg(long)]
    list: bool,
    /// Run vadd, matmul and a PTX job through the best executor of each
    /// GPU (CUDA where built in and present) and compare with the CPU
    /// reference.
    #[arg(long)]
    selftest: bool,
    /// Serve /gpu over Secure9P TCP on ADDR (host:port; port 0 picks one).
    /// The address bound is printed as `listening on <addr>`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Verify tickets with the 32-byte key in this file (32 bytes or 64
    /// hex digits, mode 0600): the key NineDoor's --gpu-bridge-key names.
    #[arg(long, value_name = "PATH", requires = "listen")]
    ticket_key_file: Option<std::path::PathBuf>,
    /// Admit clients without a ticket, with the queen's rights (development
    /// only).
    #[arg(long, requires = "listen")]
    anonymous: bool,
    /// Serve mutual TLS with this certificate, PEM (`ninedoor cert server`).
    #[arg(long, value_name = "FILE", requires = "listen")]
    tls_cert: Option<PathBuf>,
    /// Its private key, PEM, mode 0600.
    #[arg(long, value_name = "FILE", requires = "listen")]
    tls_key: Option<PathBuf>,
    /// The CA clients' certificates must chain to (`ninedoor cert ca`).
    #[arg(long, value_name = "FILE", requires = "listen")]
    tls_ca: Option<PathBuf>,
    /// Serve plain TCP on a non-loopback --listen anyway: tickets cross the
    /// network in clear (only on a network you trust).
    #[arg(long, requires = "listen")]
    insecure_plain_tcp: bool,
    /// Stage a payload file as artefact NAME (repeatable).
    #[arg(long, value_name = "NAME=PATH")]
    stage: Vec<String>,
    /// Keep leases and job records in DIR (made 0700 if missing), so they
    /// survive a restart: each change is on disk before its write is
    /// answered.
    #[arg(long, value_name = "DIR", requires = "listen")]
    state_dir: Option<PathBuf>,
    /// Read the telemetry interval, hold-down and XID policy from this TOML
    /// file (see the README, "Health"); the flags below override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Time between telemetry readings of each GPU, ms (default 1000).
    #[arg(long, value_name = "MS")]
    telemetry_interval_ms: Option<u64>,
    /// Time a quarantined GPU waits before each re-probe, ms (default 60000).
    #[arg(long, value_name = "MS")]
    hold_down_ms: Option<u64>,
}

/// Applies `--config`, `--telemetry-interval-ms` and `--hold-down-ms`.
fn configure(cli: &Cli, bridge: &GpuBridge) -> Result<(), String> {
    let base = match &cli.config {
        Some(path) => BridgeConfig::load(path).map_err(|e| format!("--config {e}"))?,
        None => BridgeConfig::default(),
    };
    let config = base
        .with_overrides(cli.telemetry_interval_ms, cli.hold_down_ms)
        .map_err(|e| e.to_string())?;
    bridge.configure(&config);
    Ok(())
}

/// Revokes on `shared`'s server the tickets a quarantine names (closing
/// their fids), on a thread of its own: never under the bridge's lock.
fn start_revoker(bridge: &GpuBridge, shared: Arc<Shared<secure9p_core::Server>>) {
    let (tx, rx) = std::sync::mpsc::channel::<secure9p_core::TicketId>();
    bridge.set_revoker(tx);
    let spawned = std::thread::Builder::new()
        .name(String::from("revoker"))
        .spawn(move || {
            for id in rx {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let fids = shared.with_engine(|s| s.revoke(id, now));
                eprintln!("gpu-bridge-host: quarantine revoked ticket {id}: {fids} fids closed");
            }
        });
    if let Err(e) = spawned {
        eprintln!("gpu-bridge-host: starting the revoker: {e}; quarantines close no fids");
    }
}

/// Starts NVML's event loop (XID, ECC, lost GPUs), where there is one.
fn watch_events(bridge: &GpuBridge, stop: Arc<AtomicBool>) -> Option<std::thread::JoinHandle<()>> {
    match bridge.spawn_events(stop)? {
        Ok(handle) => Some(handle),
        Err(e) => {
            eprintln!("gpu-bridge-host: {e}; XID and ECC events are not heard");
            None
        }
    }
}

/// `SIGXFSZ` on Linux.
const SIGXFSZ: i32 = 25;

/// Restores and keeps `--state-dir`, if given. Catches `SIGXFSZ` first, so
/// a file size limit makes a commit fail with `EFBIG` (and its write
/// refused) instead of killing the bridge; the handler lives as long as
/// the value returned. Must run inside the runtime.
fn keep_state(
    cli: &Cli,
    bridge: &GpuBridge,
) -> Result<Option<tokio::signal::unix::Signal>, String> {
    let Some(dir) = &cli.state_dir else {
        return Ok(None);
    };
    let xfsz = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))
        .map_err(|e| format!("catching SIGXFSZ: {e}"))?;
    bridge
        .keep_state(dir)
        .map_err(|e| format!("--state-dir {e}"))?;
    Ok(Some(xfsz))
}

/// Reads the ticket key: 32 bytes, or 64 hex digits. Like NineDoor (and ssh
/// with private keys), a file group or others may read is refused:
/// whoever reads it can mint tickets this bridge accepts.
fn read_key(path: &std::path::Path) -> Result<[u8; 32], String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: readable by group or others (mode {mode:04o}); chmod 600 it",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(key);
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{}: expected 32 bytes or 64 hex digits", path.display()))?;
    let hex = text.trim();
    let mut key = [0u8; 32];
    let pairs = hex.as_bytes().chunks(2);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{}: expected 32 bytes or 64 hex digits",
            path.display()
        ));
    }
    for (slot, pair) in key.iter_mut().zip(pairs) {
        let pair = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
        *slot = u8::from_str_radix(pair, 16).map_err(|e| e.to_string())?;
    }
    Ok(key)
}

/// The TLS acceptor of `--tls-*`, if given (all three or none).
fn tls_acceptor(cli: &Cli) -> Result<Option<TlsServer>, String> {
    let flags = (
        cli.tls_cert.as_deref(),
        cli.tls_key.as_deref(),
        cli.tls_ca.as_deref(),
    );
    let Some(identity) = Identity::from_flags(flags.0, flags.1, flags.2)? else {
        return Ok(None);
    };
    let acceptor = TlsServer::new(&identity).map_err(|e| e.to_string())?;
    Ok(Some(
        acceptor.with_log(|line| eprintln!("gpu-bridge-host: {line}")),
    ))
}

fn listen(cli: &Cli, addr: &str, bridge: &GpuBridge) -> ExitCode {
    let tickets = match &cli.ticket_key_file {
        Some(path) => match read_key(path) {
            Ok(key) => Some(TicketAuthority::new(key)),
            Err(e) => {
                eprintln!("gpu-bridge-host: --ticket-key-file {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let acceptor = match tls_acceptor(cli) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gpu-bridge-host: {e}");
            return ExitCode::from(2);
        }
    };
    if tickets.is_none() && !cli.anonymous {
        eprintln!(
            "gpu-bridge-host: no client could attach: give --ticket-key-file, or --anonymous for development"
        );
        return ExitCode::from(2);
    }
    let server = match gpu_bridge::server(
        bridge,
        ServeOptions {
            tickets,
            anonymous: cli.anonymous,
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gpu-bridge-host: building the namespace: {e}");
            return ExitCode::from(1);
        }
    };
    bridge.set_log_sink(Box::new(|line| eprintln!("{line}")));
    // Its idle workers hand their allocator caches back (host-alloc).
    let runtime = match cohesix_host_alloc::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gpu-bridge-host: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let _xfsz = match runtime.block_on(async { keep_state(cli, bridge) }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("gpu-bridge-host: {e}");
            return ExitCode::from(1);
        }
    };
    let (executors, notes) = best_executors(&bridge.descriptors(), cli.mock);
    for note in &notes {
        eprintln!("gpu-bridge-host: {note}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let workers = match bridge.spawn_workers(executors, stop.clone()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("gpu-bridge-host: starting workers: {e}");
            return ExitCode::from(1);
        }
    };
    let events = watch_events(bridge, stop.clone());
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        tls::check_listener(bound, acceptor.is_some(), cli.insecure_plain_tcp)
            .map_err(std::io::Error::other)?;
        println!("listening on {bound}");
        let (shared, config) = (Shared::new(server), ServeConfig::default());
        start_revoker(bridge, shared.clone());
        let running = match acceptor {
            Some(acceptor) => {
                println!("tls: mutual TLS 1.3, clients' certificates from the --tls-ca");
                tls::serve(listener, acceptor, shared, config)
            }
            None => serve(listener, shared, config),
        };
        tokio::signal::ctrl_c().await?;
        eprintln!("gpu-bridge-host: shutting down");
        running.shutdown().await;
        Ok::<(), std::io::Error>(())
    });
    stop.store(true, Ordering::Relaxed);
    bridge.wake_workers();
    for w in workers.into_iter().chain(events) {
        let _ = w.join();
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpu-bridge-host: --listen {addr}: {e}");
            ExitCode::from(1)
        }
    }
}

fn discover(cli: &Cli) -> Result<Box<dyn GpuSource>, DiscoveryError> {
    if cli.mock {
        return Ok(Box::new(MockSource::new(cli.gpus)?));
    }
    Ok(Box::new(NvmlSource::open()?))
}

fn stage(bridge: &GpuBridge, specs: &[String]) -> Result<(), String> {
    for spec in specs {
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| format!("--stage {spec:?}: expected NAME=PATH"))?;
        let bytes = std::fs::read(path).map_err(|e| format!("--stage {name}: {path}: {e}"))?;
        bridge
            .stage(name, bytes)
            .map_err(|e| format!("--stage {name}: {e}"))?;
    }
    Ok(())
}

fn run_selftest(cli: &Cli, source: Result<Box<dyn GpuSource>, DiscoveryError>) -> ExitCode {
    let (gpus, mock) = match source {
        Ok(s) => (s.gpus().to_vec(), cli.mock),
        Err(e) => {
            eprintln!("gpu-bridge-host: {e}; self-testing the CPU executor only");
            (Vec::new(), true)
        }
    };
    let (mut executors, notes) = if gpus.is_empty() {
        let (executor, note) = fallback_executor();
        (vec![executor], vec![format!("no GPU discovered: {note}")])
    } else {
        best_executors(&gpus, mock)
    };
    for note in &notes {
        println!("# {note}");
    }
    let mut passed = true;
    for executor in &mut executors {
        let report = selftest(executor.as_mut());
        for line in &report.lines {
            println!("{line}");
        }
        passed &= report.passed;
    }
    println!("selftest {}", if passed { "PASSED" } else { "FAILED" });
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let source = discover(&cli);
    if cli.selftest {
        return run_selftest(&cli, source);
    }
    let source = match source {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gpu-bridge-host: {e}");
            if matches!(e, DiscoveryError::NoNvml(_)) {
                eprintln!("gpu-bridge-host: use --mock for synthetic GPUs");
            }
            return ExitCode::from(3);
        }
    };
    let bridge = GpuBridge::new(source, Arc::new(SystemClock));
    if let Err(e) = configure(&cli, &bridge) {
        eprintln!("gpu-bridge-host: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = stage(&bridge, &cli.stage) {
        eprintln!("gpu-bridge-host: {e}");
        return ExitCode::from(2);
    }
    if let Some(addr) = &cli.listen {
        return listen(&cli, addr, &bridge);
    }
    let mut out = std::io::stdout().lock();
    for d in bridge.descriptors() {
        if writeln!(out, "{}", d.to_json()).is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
