//! The heartbeat worker: attaches with its ticket, opens its
//! `/worker/<id>/telemetry` for appending and writes
//! `<unix-ts> heartbeat seq=<n>` every interval, until it is stopped, until
//! it has written `--count` beats, or until the hive refuses it: a revoked
//! or expired ticket ends it with exit code 4 and says which.
//!
//! When the Queen kills a worker the hive closes every fid opened under its
//! ticket, so the next append fails with `EBADF`; the worker then attaches
//! again with the same ticket to learn why (`EKEYREVOKED`), rather than
//! guessing.
//!
//! When the connection is lost (the hive restarted, or crashed), the worker
//! reconnects by itself with the same ticket, backing off from
//! [`FIRST_BACKOFF`] to [`MAX_BACKOFF`], for up to `--reconnect-s`
//! seconds, and carries on counting: a hive with a state directory knows
//! it again after a restart, and one that killed it refuses its ticket,
//! which ends it as before.

use crate::exit::{Exit, Failure, Op};
use crate::session::{Session, TargetArgs};
use crate::ticket::{Presented, TicketArgs, TicketInfo};
use clap::Parser;
use ninedoor::host::unix_now;
use ninedoor::secure9p_core::FsError;
use ninedoor::secure9p_core::codec::{Fid, LOpenFlags};
use secure9p_transport::client::CallError;
use std::process::ExitCode;
use std::time::Duration;

/// A Cohesix heartbeat worker: appends a heartbeat line to its telemetry
/// file every interval until its ticket is revoked or expires.
#[derive(Debug, Parser)]
#[command(name = "worker-heartbeat", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    ticket: TicketArgs,
    /// The worker id [default: the ticket's subject].
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Milliseconds between heartbeats.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    interval_ms: u64,
    /// Stop (exit 0) after this many heartbeats [default: run until stopped].
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Print each heartbeat line on stdout.
    #[arg(long, short)]
    verbose: bool,
    /// Seconds to keep trying to reconnect after the connection is lost
    /// (0: exit with status 5 at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    reconnect_s: u64,
}

const AFTER_HELP: &str = "\
The ticket comes from --ticket, --ticket-file or COHESIX_TICKET (`cohsh spawn heartbeat`
prints one). Exit status: 0 stopped (signal or --count), 1 usage, 2 permission denied,
3 no such worker, 4 ticket refused, expired or revoked, 5 connection lost, 6 other.

Example:
  export COHESIX_TICKET=$(cohsh spawn heartbeat w1)
  worker-heartbeat --interval-ms 500";

/// Shortest interval accepted: a worker must not flood its own ring.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// First wait before reconnecting: a restarting hive is back in well
/// under a second.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What a heartbeat worker needs.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Its ticket.
    pub ticket: Presented,
    /// Its id (the telemetry file is `/worker/<id>/telemetry`).
    pub id: String,
    /// Time between heartbeats.
    pub interval: Duration,
    /// Heartbeats to write before stopping (`None`: until stopped).
    pub count: Option<u64>,
}

impl Worker {
    /// The telemetry path.
    pub fn path(&self) -> String {
        format!("/worker/{}/telemetry", self.id)
    }
}

/// Attaches and appends heartbeats to an opened telemetry fid.
pub struct Beating {
    session: Session,
    fid: Fid,
    worker: Worker,
    seq: u64,
}

impl std::fmt::Debug for Beating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beating")
            .field("id", &self.worker.id)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Beating {
    /// Attaches with the worker's ticket and opens its telemetry for appending.
    pub async fn start(
        target: &crate::session::Target,
        timeout: Duration,
        worker: Worker,
    ) -> Result<Beating, Failure> {
        let session = Session::connect(target, &worker.ticket, timeout).await?;
        let fid = match session.open(&worker.path(), LOpenFlags::WRONLY).await {
            Ok(fid) => fid,
            Err(f) => {
                // The Queen may have killed this worker between the attach
                // and the open (its fids closed under it: EBADF): attach
                // again to learn why, as a failed append does.
                let probe = session
                    .timed("/", Op::Attach, async {
                        session.conn().attach(&worker.id, &worker.ticket.text).await
                    })
                    .await;
                return Err(match probe {
                    Ok(again) => {
                        session.clunk(again).await;
                        f
                    }
                    Err(refused) => refused,
                });
            }
        };
        Ok(Beating {
            session,
            fid,
            worker,
            seq: 0,
        })
    }

    /// Heartbeats written so far.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Appends the next heartbeat; returns its line.
    pub async fn beat(&mut self) -> Result<String, Failure> {
        let seq = self.seq + 1;
        let line = format!("{} heartbeat seq={seq}\n", unix_now());
        let path = self.worker.path();
        let write = self.session.conn().write(self.fid, 0, line.as_bytes());
        let Ok(written) = tokio::time::timeout(self.session.timeout(), write).await else {
            return Err(crate::exit::timed_out(
                self.session.target(),
                self.session.timeout(),
            ));
        };
        match written {
            Ok(_) => {
                self.seq = seq;
                Ok(line)
            }
            Err(CallError::Fs(FsError::BadFid | FsError::NotFound)) => Err(self.why_closed().await),
            Err(e) => Err(self.explain(self.session.failure(e, &path, Op::Write))),
        }
    }

    /// The hive closed the telemetry fid: attach again to learn why.
    async fn why_closed(&self) -> Failure {
        let probe = self
            .session
            .timed("/", Op::Attach, async {
                self.session
                    .conn()
                    .attach(&self.worker.id, &self.worker.ticket.text)
                    .await
            })
            .await;
        match probe {
            Ok(fid) => {
                self.session.clunk(fid).await;
                Failure::new(
                    Exit::Other,
                    format!(
                        "the hive closed {} although the ticket is still valid",
                        self.worker.path()
                    ),
                )
            }
            Err(f) => self.explain(f),
        }
    }

    /// Says what a ticket refusal means for a worker.
    fn explain(&self, mut f: Failure) -> Failure {
        let n = self.seq;
        if f.message.starts_with("ticket revoked") {
            f.message =
                format!("ticket revoked: the queen killed this worker (after {n} heartbeats)");
        } else if f.message.starts_with("ticket expired") {
            f.message = format!("{} (after {n} heartbeats)", f.message);
        }
        f
    }

    /// Clunks the telemetry fid.
    pub async fn stop(self) {
        self.session.clunk(self.fid).await;
        self.session.clunk(self.session.root()).await;
    }
}

/// Runs `worker` until its count is reached (`Ok(seq)`) or it is refused;
/// `on_beat` sees every line written.
pub async fn run(
    target: &crate::session::Target,
    timeout: Duration,
    worker: Worker,
    on_beat: impl FnMut(u64, &str),
) -> Result<u64, Failure> {
    run_reconnecting(target, timeout, worker, Duration::ZERO, on_beat).await
}

/// [`run`], reconnecting for up to `reconnect` whenever the connection is
/// lost (see the module docs).
pub async fn run_reconnecting(
    target: &crate::session::Target,
    timeout: Duration,
    worker: Worker,
    reconnect: Duration,
    mut on_beat: impl FnMut(u64, &str),
) -> Result<u64, Failure> {
    let interval = worker.interval.max(MIN_INTERVAL);
    let count = worker.count;
    let mut beating = Beating::start(target, timeout, worker).await?;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let line = match beating.beat().await {
            Ok(line) => line,
            Err(f) if f.exit == Exit::Connection && !reconnect.is_zero() => {
                beating = reconnected(target, timeout, beating, reconnect, f).await?;
                continue;
            }
            Err(f) => return Err(f),
        };
        on_beat(beating.seq(), &line);
        if count.is_some_and(|c| beating.seq() >= c) {
            let n = beating.seq();
            beating.stop().await;
            return Ok(n);
        }
    }
}

/// Attaches again after the connection was `lost`, backing off, for up to
/// `within`; keeps the heartbeat count. A refusal other than a lost
/// connection (a revoked ticket) ends the worker.
async fn reconnected(
    target: &crate::session::Target,
    timeout: Duration,
    old: Beating,
    within: Duration,
    lost: Failure,
) -> Result<Beating, Failure> {
    let Beating { worker, seq, .. } = old;
    eprintln!(
        "worker-heartbeat {}: {lost}; reconnecting for up to {} s",
        worker.id,
        within.as_secs()
    );
    let deadline = tokio::time::Instant::now() + within;
    let mut backoff = FIRST_BACKOFF;
    loop {
        tokio::time::sleep(backoff).await;
        match Beating::start(target, timeout, worker.clone()).await {
            Ok(mut b) => {
                b.seq = seq;
                eprintln!(
                    "worker-heartbeat {}: reconnected after {seq} heartbeats",
                    b.worker.id
                );
                return Ok(b);
            }
            Err(f) if f.exit == Exit::Connection && tokio::time::Instant::now() < deadline => {
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(mut f) => {
                if f.message.starts_with("ticket revoked") {
                    f.message = format!(
                        "ticket revoked: the queen killed this worker (after {seq} heartbeats)"
                    );
                }
                return Err(f);
            }
        }
    }
}

/// The worker's id: `--id`, else the ticket's subject. A Queen's or GPU
/// worker's ticket is refused up front: it cannot append to telemetry.
fn worker_id(cli_id: Option<&str>, ticket: &Presented) -> Result<String, Failure> {
    let info = TicketInfo::parse(&ticket.text);
    if let Some(role) = info
        .as_ref()
        .map(|i| i.role.as_str())
        .filter(|r| *r != "worker-heartbeat")
    {
        return Err(Failure::usage(format!(
            "the ticket from {} is a {role} ticket; a heartbeat worker needs the ticket `cohsh spawn heartbeat` prints",
            ticket.from
        )));
    }
    match (cli_id, info) {
        (Some(id), _) => Ok(id.to_owned()),
        (None, Some(info)) => Ok(info.subject),
        (None, None) => Err(Failure::usage(format!(
            "the ticket from {} is not a Cohesix ticket; pass --id to try it anyway",
            ticket.from
        ))),
    }
}

/// Waits for Ctrl-C or SIGTERM (the handler installed at the call).
pub use ninedoor::host::stop_signal;

/// `worker-heartbeat`'s entry point.
pub fn main() -> ExitCode {
    let (cli, runtime) = match crate::exit::start::<Cli>("worker-heartbeat") {
        Ok(started) => started,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let prelude = cli
            .ticket
            .resolve(false)
            .and_then(|t| worker_id(cli.id.as_deref(), &t).map(|id| (t, id)));
        let (ticket, id) = match prelude {
            Ok(p) => p,
            Err(f) => {
                eprintln!("worker-heartbeat: {f}");
                return f.exit.code();
            }
        };
        let worker = Worker {
            ticket,
            id: id.clone(),
            interval: Duration::from_millis(cli.interval_ms),
            count: cli.count,
        };
        let reconnect = Duration::from_secs(cli.reconnect_s);
        let target = match cli.target.target() {
            Ok(t) => t,
            Err(f) => {
                eprintln!("worker-heartbeat: {f}");
                return f.exit.code();
            }
        };
        let stop = stop_signal();
        eprintln!(
            "worker-heartbeat {id}: appending to {} at {target} every {} ms",
            worker.path(),
            worker.interval.max(MIN_INTERVAL).as_millis()
        );
        let verbose = cli.verbose;
        let beats = run_reconnecting(
            &target,
            cli.target.timeout(),
            worker,
            reconnect,
            |_, line| {
                if verbose {
                    print!("{line}");
                }
            },
        );
        tokio::select! {
            r = beats => match r {
                Ok(n) => {
                    eprintln!("worker-heartbeat {id}: done after {n} heartbeats");
                    Exit::Ok.code()
                }
                Err(f) => {
                    eprintln!("worker-heartbeat {id}: {f}; exiting");
                    f.exit.code()
                }
            },
            () = stop => {
                eprintln!("worker-heartbeat {id}: stopped by signal");
                Exit::Ok.code()
            }
        }
    })
}
