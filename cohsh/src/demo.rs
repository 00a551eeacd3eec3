//! `cohesix-hive`: the whole hive on localhost in one command. It starts a
//! mock GPU bridge (`gpu-bridge-host --mock`, a child process, with a fresh
//! bridge key) and NineDoor in-process on 127.0.0.1 (free ports, the Queen's
//! ticket in a temporary directory) mirroring the bridge's GPU into `/gpu`.
//! As the Queen it spawns a heartbeat worker through `/queen/ctl` and runs
//! that worker in-process over TCP; while it beats, the Queen leases GPU 0
//! to GPU worker `g1`, which submits a `vadd` job, follows its status lines
//! to `OK` and checks the result against its own sums. Then it shows the
//! heartbeats and the audit log, prints the `cohsh` commands to try next,
//! and serves until Ctrl-C (or `--demo-seconds`), reporting if the worker
//! is killed. Everything goes through the same sockets and files a real
//! deployment uses; only the hive's processes are folded into one. The
//! bridge child never outlives the demo. The operator console
//! ([`crate::console`]) serves beside it; its URL is the first line printed.

use crate::console::{ConsoleConfig, Listening};
use crate::exit::{Exit, Failure};
use crate::gpu::GpuVerb;
use crate::heartbeat::{self, Worker, stop_signal};
use crate::session::{Session, Target};
use crate::ticket::Presented;
use bridge::MockBridge;
use clap::Parser;
use ninedoor::host::{Host, HostConfig, read_ticket, write_ticket};
use ninedoor::{Command, SpawnRole};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod bridge;
mod job;

/// The mock bridge's GPU the demo leases.
const GPU: &str = "0";
/// The GPU worker the Queen leases it to.
const GPU_WORKER: &str = "g1";
/// The lease's memory cap, MiB: ample for the demo's jobs.
const LEASE_MEM_MB: u32 = 256;
/// The lease's lifetime, seconds: as long as g1's ticket lives (the hive's
/// default `ticket_ttl_s`), so the printed GPU commands work that long.
const LEASE_TTL_S: u32 = 3600;
/// Audit log lines shown: enough for the GPU lease and job.
const LOG_LINES: usize = 8;
/// How long NineDoor may take to reach the bridge and install its GPU (it
/// retries from 100 ms on; a local bridge answers at once).
const GPU_APPEARS_WITHIN: Duration = Duration::from_secs(10);
/// How long the job may take to reach `OK` or `ERR`: its own `timeout_ms`
/// (10 s) plus slack, so a stuck bridge fails the demo rather than hangs it.
const JOB_ENDS_WITHIN: Duration = Duration::from_secs(20);

/// Run a Cohesix hive on localhost: a mock GPU bridge, NineDoor, the Queen,
/// one heartbeat worker and a GPU worker running a job, then print the
/// cohsh commands to try.
#[derive(Debug, Parser)]
#[command(name = "cohesix-hive", version)]
pub struct Cli {
    /// TCP address for NineDoor (port 0: a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The heartbeat worker's id.
    #[arg(long, value_name = "ID", default_value = "w1")]
    worker_id: String,
    /// Milliseconds between heartbeats.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    interval_ms: u64,
    /// Heartbeats to wait for before showing the telemetry.
    #[arg(long, value_name = "N", default_value_t = 3)]
    beats: u64,
    /// Keep serving this many seconds after the demo, then exit
    /// [default: until Ctrl-C].
    #[arg(long, value_name = "SECONDS")]
    demo_seconds: Option<u64>,
    /// Exit right after showing the demo (same as --demo-seconds 0).
    #[arg(long)]
    once: bool,
    /// Run without the mock GPU bridge (no /gpu, no GPU job).
    #[arg(long)]
    no_gpu: bool,
    /// The gpu-bridge-host to run as the mock bridge [default: under
    /// `cargo run`, the workspace's, built if needed; else the one beside
    /// this binary; else from PATH].
    #[arg(long, value_name = "PATH", conflicts_with = "no_gpu")]
    gpu_bridge_bin: Option<PathBuf>,
    /// Where to serve the operator console (`cohesix-console`; port 0: a
    /// free port). Its URL is the first line printed.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    console: SocketAddr,
    /// Run without the operator console.
    #[arg(long, conflicts_with = "console")]
    no_console: bool,
}

/// How to run `cohsh` from here: through cargo when cargo ran this demo
/// (so the command builds a fresh `cohsh`), else the binary beside this
/// one, else `cohsh` from `PATH`.
fn cohsh_invocation() -> String {
    if std::env::var_os("CARGO").is_some() {
        return "cargo run -q -p cohsh --bin cohsh --".to_owned();
    }
    let sibling = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("cohsh"))
        .filter(|p| p.exists());
    match sibling {
        Some(path) => std::env::current_dir()
            .ok()
            .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
            .unwrap_or(path)
            .display()
            .to_string(),
        None => "cohsh".to_owned(),
    }
}

/// The last `n` lines of `text`.
fn tail_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

fn failed(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Other, format!("{what}: {e}"))
}

impl Cli {
    async fn run(self) -> Result<(), Failure> {
        let console = match self.no_console {
            true => None,
            false => {
                let bound = Listening::bind(self.console)
                    .await
                    .map_err(|e| failed("console", e))?;
                println!(
                    "console    {}  (log in with the queen ticket; /metrics for Prometheus)",
                    bound.url()
                );
                Some(bound)
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("cohesix-hive-")
            .tempdir()
            .map_err(|e| failed("temporary directory", e))?;
        let ticket_path: PathBuf = dir.path().join("queen.ticket");
        let mut config = HostConfig {
            listen: self.listen,
            ticket_file: Some(ticket_path.clone()),
            ..HostConfig::default()
        };
        // The audit log and hive state on disk, as a real hive keeps them.
        config.state.dir = Some(dir.path().join("state"));
        let bridge = if self.no_gpu {
            None
        } else {
            let started = tokio::select! {
                b = self.start_bridge(dir.path()) => b?,
                () = stop_signal() => return Ok(()),
            };
            config.gpu.bridges = vec![started.addr().to_owned()];
            config.gpu.key_file = Some(dir.path().join("bridge.key"));
            Some(started)
        };
        let host = Host::start(&config)
            .await
            .map_err(|e| failed("NineDoor did not start", e))?;
        let addr = host.tcp_addr();
        println!("NineDoor   serving the hive on {addr}");
        println!(
            "           queen ticket in {} (mode 0600)",
            ticket_path.display()
        );
        if let Some(b) = &bridge {
            println!("           mirroring /gpu from the bridge at {}", b.addr());
        }
        let console = match console {
            Some(bound) => {
                let mut config = ConsoleConfig::new(Target::Tcp(addr.to_string()));
                config.scrape_ticket_file = Some(ticket_path.clone());
                Some(bound.serve(&config))
            }
            None => None,
        };
        let shown = tokio::select! {
            shown = self.show(&host, &ticket_path, dir.path(), bridge.is_some()) => Some(shown),
            () = stop_signal() => None,
        };
        let worker = match shown {
            Some(Ok(w)) => w,
            Some(Err(f)) => {
                host.shutdown().await;
                return Err(f);
            }
            None => {
                host.shutdown().await;
                println!("NineDoor   stopped");
                return Ok(());
            }
        };
        self.print_next(
            &addr.to_string(),
            &ticket_path,
            dir.path(),
            bridge.is_some(),
        );
        let wait = match (self.once, self.demo_seconds) {
            (true, _) => Some(0),
            (false, s) => s,
        };
        match wait {
            Some(0) => {}
            Some(s) => println!("\nServing for {s} s (Ctrl-C stops it sooner)."),
            None => println!("\nServing until Ctrl-C."),
        }
        let deadline = async {
            match wait {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
        };
        let id = &self.worker_id;
        let mut worker = worker;
        let mut worker_running = true;
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                () = stop_signal() => break,
                ended = &mut worker, if worker_running => {
                    worker_running = false;
                    match ended {
                        Ok(Err(f)) => println!("worker {id}  {f}; exiting"),
                        Ok(Ok(n)) => println!("worker {id}  stopped after {n} heartbeats"),
                        Err(_) => println!("worker {id}  stopped"),
                    }
                }
            }
        }
        worker.abort();
        if let Some(c) = console {
            c.shutdown().await;
            println!("console    stopped");
        }
        host.shutdown().await;
        println!("NineDoor   stopped");
        if let Some(b) = bridge {
            drop(b);
            println!("bridge     stopped");
        }
        drop(dir);
        Ok(())
    }

    /// Writes a bridge key into `dir` and starts the mock bridge with it.
    async fn start_bridge(&self, dir: &Path) -> Result<MockBridge, Failure> {
        let key = dir.join("bridge.key");
        bridge::write_key(&key)?;
        let program = bridge::program(self.gpu_bridge_bin.as_deref()).await?;
        let started = MockBridge::start(&program, &key, &dir.join("bridge.log")).await?;
        println!(
            "bridge     gpu-bridge-host --mock serving 1 mock GPU on {} (pid {})",
            started.addr(),
            started.pid()
        );
        println!(
            "           bridge key in {} (mode 0600), its log in {}",
            key.display(),
            dir.join("bridge.log").display()
        );
        Ok(started)
    }

    /// The commands to try next, against the hive at `addr`.
    fn print_next(&self, addr: &str, ticket_path: &Path, dir: &Path, gpu: bool) {
        let cohsh = cohsh_invocation();
        let c = format!(
            "{cohsh} --addr {addr} --ticket-file {}",
            ticket_path.display()
        );
        let id = &self.worker_id;
        println!("\nNext, in another terminal:");
        println!("  {c} tail -f /worker/{id}/telemetry");
        println!("  {c} ls /worker");
        println!("  {c} spawn heartbeat w2");
        println!("  {c} kill {id}      # the worker stops: ticket revoked");
        println!("  {c} tail -n 5 /log/queen.log");
        if !gpu {
            return;
        }
        let g = format!(
            "{cohsh} --addr {addr} --ticket-file {}",
            dir.join(format!("{GPU_WORKER}.ticket")).display()
        );
        let job = dir.join("vadd.json");
        println!("  {c} gpu list");
        println!("  {g} gpu submit {GPU} {}", job.display());
        println!("  {g} gpu status {GPU} -f");
        println!("  {g} gpu result {GPU}");
        println!("  {c} gpu release {GPU}      # {GPU_WORKER} is killed: ticket revoked");
    }

    /// Spawns the worker as the Queen, runs it, runs the GPU job (with
    /// `gpu`) while it beats, shows its heartbeats and the log; returns
    /// the running worker.
    async fn show(
        &self,
        host: &Host,
        ticket_path: &Path,
        dir: &Path,
        gpu: bool,
    ) -> Result<tokio::task::JoinHandle<Result<u64, Failure>>, Failure> {
        let target = Target::Tcp(host.tcp_addr().to_string());
        let timeout = Duration::from_secs(10);
        let queen = Presented {
            text: read_ticket(ticket_path).map_err(|e| failed("queen ticket", e))?,
            from: ticket_path.display().to_string(),
        };
        let queen = Session::connect(&target, &queen, timeout).await?;
        let reply = queen
            .command(&Command::Spawn {
                role: SpawnRole::Heartbeat,
                id: Some(self.worker_id.clone()),
                gpu: None,
            })
            .await?;
        let ticket = reply["ticket"]
            .as_str()
            .ok_or_else(|| failed("spawn", "the reply has no ticket"))?
            .to_owned();
        let id = &self.worker_id;
        println!(
            "queen      spawned heartbeat worker {id} through /queen/ctl (ticket id {})",
            reply["ticket_id"].as_str().unwrap_or("?")
        );
        let worker = Worker {
            ticket: Presented {
                text: ticket,
                from: "/queen/ctl".to_owned(),
            },
            id: id.clone(),
            interval: Duration::from_millis(self.interval_ms),
            count: None,
        };
        println!(
            "worker {id}  appending a heartbeat to {} every {} ms",
            worker.path(),
            self.interval_ms
        );
        let (beats_tx, mut beats) = tokio::sync::watch::channel(0u64);
        let beating = target.clone();
        let worker = tokio::spawn(async move {
            heartbeat::run(&beating, timeout, worker, move |seq, _| {
                let _ = beats_tx.send(seq);
            })
            .await
        });
        if gpu && let Err(f) = gpu_job(&queen, &target, dir).await {
            worker.abort();
            return Err(f);
        }
        let want = self.beats.max(1);
        let patience = Duration::from_millis(self.interval_ms.saturating_mul(want)) + timeout;
        let arrived = tokio::time::timeout(patience, beats.wait_for(|n| *n >= want)).await;
        if !matches!(arrived, Ok(Ok(_))) {
            return Err(match worker.await {
                Ok(Err(f)) => f,
                _ => failed(
                    "worker",
                    format!("no {want} heartbeats within {patience:?}"),
                ),
            });
        }
        let path = format!("/worker/{id}/telemetry");
        let telemetry = queen.read_all(&path).await?;
        println!("\n$ cohsh cat {path}");
        print!("{}", String::from_utf8_lossy(&telemetry));
        let log = queen.read_all("/log/queen.log").await?;
        let log = String::from_utf8_lossy(&log);
        println!("\n$ cohsh tail -n {LOG_LINES} /log/queen.log");
        for line in tail_lines(&log, LOG_LINES) {
            println!("{line}");
        }
        queen.clunk(queen.root()).await;
        Ok(worker)
    }
}

/// Waits for the bridge's GPU under `/gpu` (NineDoor reaches the bridge in
/// the background) and returns its descriptor.
async fn gpu_appears(queen: &Session) -> Result<Value, Failure> {
    let since = std::time::Instant::now();
    loop {
        let listed = queen.list("/gpu").await?;
        if listed.iter().any(|e| e.dir && e.name == GPU) {
            break;
        }
        if since.elapsed() > GPU_APPEARS_WITHIN {
            return Err(failed(
                "GPU bridge",
                format!("gpu {GPU} did not appear under /gpu within {GPU_APPEARS_WITHIN:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let path = format!("/gpu/{GPU}/info");
    let info = queen.read_all(&path).await?;
    serde_json::from_slice(&info).map_err(|e| failed(&path, format!("not a JSON descriptor: {e}")))
}

/// The Queen leases the GPU to the GPU worker, which submits the demo's
/// `vadd`, follows its status to the end, and checks the result. Leaves
/// the worker's ticket and the job file in `dir` for the next commands.
async fn gpu_job(queen: &Session, target: &Target, dir: &Path) -> Result<(), Failure> {
    let info = gpu_appears(queen).await?;
    println!(
        "gpu {GPU}      {} ({} MiB, {} SMs), mirrored from the bridge as /gpu/{GPU}",
        info["name"].as_str().unwrap_or("?"),
        info["memory_mb"].as_u64().unwrap_or(0),
        info["sm_count"].as_u64().unwrap_or(0),
    );
    let reply = queen
        .command(&Command::Lease {
            gpu: GPU.to_owned(),
            worker: Some(GPU_WORKER.to_owned()),
            mem_mb: LEASE_MEM_MB,
            streams: None,
            ttl_s: LEASE_TTL_S,
            priority: None,
        })
        .await?;
    let ticket = reply["ticket"]
        .as_str()
        .ok_or_else(|| failed("lease", "the reply has no ticket"))?;
    println!(
        "queen      leased gpu {GPU} to GPU worker {GPU_WORKER} through /queen/ctl (ticket id {})",
        reply["ticket_id"].as_str().unwrap_or("?")
    );
    println!(
        "           bridge: {}",
        reply["lease"].as_str().unwrap_or("?")
    );
    let ticket_file = dir.join(format!("{GPU_WORKER}.ticket"));
    write_ticket(&ticket_file, ticket).map_err(|e| failed("GPU worker ticket", e))?;
    std::fs::write(dir.join("vadd.json"), job::DESCRIPTOR).map_err(|e| failed("job file", e))?;
    let ticket = Presented {
        text: ticket.to_owned(),
        from: ticket_file.display().to_string(),
    };
    let worker = Session::connect(target, &ticket, queen.timeout()).await?;
    let path = format!("/gpu/{GPU}/job");
    let queued = worker
        .exchange(&path, job::DESCRIPTOR.as_bytes())
        .await
        .map_err(|(mut f, reply)| {
            let reply = String::from_utf8_lossy(&reply);
            if !reply.trim().is_empty() {
                f.message = format!("{}; the bridge answered: {}", f.message, reply.trim());
            }
            f
        })?;
    println!(
        "worker {GPU_WORKER}  appended a vadd of {} + {} floats to {path} (payload inline, with its SHA-256)",
        job::A.len(),
        job::B.len(),
    );
    println!(
        "           bridge: {}",
        String::from_utf8_lossy(&queued).trim()
    );
    println!("\n$ cohsh gpu status {GPU} -f      # as {GPU_WORKER}");
    let follow = GpuVerb::Status {
        gpu: GPU.to_owned(),
        follow: true,
        job: Some(job::JOB_ID.to_owned()),
        poll_ms: 50,
    };
    let status = Session::connect(target, &ticket, queen.timeout()).await?;
    let followed = crate::gpu::run(follow, status, target, &ticket, false);
    tokio::time::timeout(JOB_ENDS_WITHIN, followed)
        .await
        .map_err(|_| {
            failed(
                "GPU job",
                format!("{} did not end within {JOB_ENDS_WITHIN:?}", job::JOB_ID),
            )
        })??;
    println!(
        "\n$ cohsh gpu result {GPU} --job {}      # as {GPU_WORKER}",
        job::JOB_ID
    );
    let results = worker.read_all(&format!("/gpu/{GPU}/result")).await?;
    let results = String::from_utf8_lossy(&results);
    let line = results
        .lines()
        .find(|l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|v| v["job_id"].as_str() == Some(job::JOB_ID))
        })
        .ok_or_else(|| failed("GPU job", format!("no result for {}", job::JOB_ID)))?;
    println!("{line}");
    let result: Value = serde_json::from_str(line).map_err(|e| failed("GPU result", e))?;
    check_sums(&result)?;
    worker.clunk(worker.root()).await;
    Ok(())
}

/// Compares a result's values with the demo's own sums, element by element.
fn check_sums(result: &Value) -> Result<(), Failure> {
    let expected = job::expected();
    let got: Vec<Option<f64>> = result["values"]
        .as_array()
        .map(|v| v.iter().map(Value::as_f64).collect())
        .unwrap_or_default();
    if got.len() != expected.len() {
        return Err(failed(
            "GPU result",
            format!("{} values, expected {}", got.len(), expected.len()),
        ));
    }
    for (i, (g, want)) in got.iter().zip(&expected).enumerate() {
        if *g != Some(f64::from(*want)) {
            return Err(failed(
                "GPU result",
                format!("element {i} is {g:?}, expected {want}"),
            ));
        }
    }
    println!(
        "worker {GPU_WORKER}  checked all {} sums against its own: right",
        expected.len()
    );
    Ok(())
}

/// `cohesix-hive`'s entry point.
pub fn main() -> ExitCode {
    crate::exit::entry("cohesix-hive", Cli::run)
}
