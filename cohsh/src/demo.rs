//! `cohesix-hive`: the whole hive on localhost in one command. It starts
//! NineDoor in-process on 127.0.0.1 (a free port, the Queen's ticket in a
//! temporary directory), spawns a heartbeat worker through `/queen/ctl` as
//! the Queen, runs that worker in-process over TCP, shows its heartbeats
//! arriving and the audit log, and prints the `cohsh` commands to try next.
//! Then it serves until Ctrl-C (or `--demo-seconds`), reporting if the
//! worker is killed. Everything goes through the same sockets and files a
//! real deployment uses; only the processes are folded into one.

use crate::exit::{Exit, Failure};
use crate::heartbeat::{self, Worker, stop_signal};
use crate::session::{Session, Target};
use crate::ticket::Presented;
use clap::Parser;
use ninedoor::host::{Host, HostConfig, read_ticket};
use ninedoor::{Command, SpawnRole};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Run a Cohesix hive on localhost: NineDoor, the Queen and one heartbeat
/// worker, then print the cohsh commands to try.
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
        let dir = tempfile::Builder::new()
            .prefix("cohesix-hive-")
            .tempdir()
            .map_err(|e| failed("temporary directory", e))?;
        let ticket_path: PathBuf = dir.path().join("queen.ticket");
        let config = HostConfig {
            listen: self.listen,
            ticket_file: Some(ticket_path.clone()),
            ..HostConfig::default()
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
        let shown = self.show(&host, &ticket_path).await;
        let worker = match shown {
            Ok(w) => w,
            Err(f) => {
                host.shutdown().await;
                return Err(f);
            }
        };
        let c = format!(
            "{} --addr {addr} --ticket-file {}",
            cohsh_invocation(),
            ticket_path.display()
        );
        let id = &self.worker_id;
        println!("\nNext, in another terminal:");
        println!("  {c} tail -f /worker/{id}/telemetry");
        println!("  {c} ls /worker");
        println!("  {c} spawn heartbeat w2");
        println!("  {c} kill {id}      # the worker stops: ticket revoked");
        println!("  {c} tail -n 5 /log/queen.log");
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
        host.shutdown().await;
        println!("NineDoor   stopped");
        drop(dir);
        Ok(())
    }

    /// Spawns the worker as the Queen, runs it, shows its heartbeats and
    /// the log; returns the running worker.
    async fn show(
        &self,
        host: &Host,
        ticket_path: &Path,
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
        let worker = tokio::spawn(async move {
            heartbeat::run(&target, timeout, worker, move |seq, _| {
                let _ = beats_tx.send(seq);
            })
            .await
        });
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
        println!("\n$ cohsh tail -n 5 /log/queen.log");
        for line in tail_lines(&log, 5) {
            println!("{line}");
        }
        queen.clunk(queen.root()).await;
        Ok(worker)
    }
}

/// `cohesix-hive`'s entry point.
pub fn main() -> ExitCode {
    crate::exit::entry("cohesix-hive", Cli::run)
}
