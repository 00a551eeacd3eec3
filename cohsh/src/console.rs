//! `cohesix-console`: the operator's web console and `/metrics`.
//!
//! A host process that is a Secure9P client of the hive as the Queen, like
//! `cohsh`: everything it shows it reads from the namespace (`/proc/boot`,
//! `/worker/*/telemetry`, `/gpu/*/{info,lease,status,stats}`,
//! `/log/queen.log`) and everything it does is one line written to
//! `/queen/ctl` or one job written to a GPU's `job` file, through the same
//! [`Session`](crate::session::Session) the CLI uses. There is no second
//! control protocol, so it works against the host daemon and the seL4
//! image alike.
//!
//! - [`hive`]: one Queen's view of the hive, refreshed once a second
//!   (reconnecting by itself when the hive goes away and comes back).
//! - [`access`]: login with the Queen's ticket, kept server-side behind an
//!   HttpOnly, SameSite=Strict session cookie; a CSRF token per session.
//! - [`action`]: the operator's actions as `/queen/ctl` lines and GPU jobs.
//! - [`page`]: the HTML, with the heartbeat charts as server-rendered SVG.
//! - [`metrics`]: the Prometheus text exposition of the same view.
//! - [`http`]: the axum routes, the live stream (server-sent events) and
//!   the security headers.
//!
//! It must never show or log a ticket: tickets live only in memory, in
//! the [`hive::View`] that uses them.
//!
//! ```no_run
//! use cohsh::console::{Console, ConsoleConfig};
//! use cohsh::session::Target;
//! # async fn run() -> Result<(), cohsh::console::ConsoleError> {
//! let console = Console::start(ConsoleConfig::new(Target::Tcp("127.0.0.1:5640".into()))).await?;
//! println!("console    {}", console.url());
//! console.shutdown().await;
//! # Ok(()) }
//! ```

pub mod access;
pub mod action;
pub mod hive;
pub mod http;
pub mod metrics;
pub mod page;

use crate::session::Target;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The console's default address: loopback only, so it is not on the
/// network unless the operator says so.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5680";

/// Why the console did not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How to run a console.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Where to serve HTTP.
    pub listen: SocketAddr,
    /// The hive.
    pub target: Target,
    /// The per-request deadline towards the hive.
    pub timeout: Duration,
    /// A file holding a Queen ticket for `/metrics` (a scraper does not
    /// log in), read again whenever the console reconnects (a restarted
    /// hive writes a new ticket); without one, `/metrics` reports the view
    /// of the most recent operator.
    pub scrape_ticket_file: Option<PathBuf>,
}

impl ConsoleConfig {
    /// Defaults: [`DEFAULT_LISTEN`], a 10 s deadline, no scrape ticket.
    pub fn new(target: Target) -> Self {
        ConsoleConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5680))),
            target,
            timeout: Duration::from_secs(10),
            scrape_ticket_file: None,
        }
    }
}

/// A running console.
#[derive(Debug)]
pub struct Console {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A console's socket, bound but not yet serving: its URL can be printed
/// before the hive it will show is up (`cohesix-hive` does). Browsers that
/// come early wait in the listen queue.
#[derive(Debug)]
pub struct Listening {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl Listening {
    /// Binds `listen`.
    pub async fn bind(listen: SocketAddr) -> Result<Listening, ConsoleError> {
        let bind_error = |source| ConsoleError::Bind {
            addr: listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Listening { listener, addr })
    }

    /// The console's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves the console of `config` (its `listen` is ignored: this
    /// socket is already bound) until [`Console::shutdown`].
    pub fn serve(self, config: &ConsoleConfig) -> Console {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let app = Arc::new(http::App::new(config, stopped.clone()));
        let router = http::router(app.clone());
        let listener = self.listener;
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await;
            app.close();
        });
        Console {
            addr: self.addr,
            stop,
            task,
        }
    }
}

impl Console {
    /// Binds `config.listen` and serves until [`Console::shutdown`].
    pub async fn start(config: ConsoleConfig) -> Result<Console, ConsoleError> {
        Ok(Listening::bind(config.listen).await?.serve(&config))
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The console's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops serving (open live streams end) and waits until it has.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serve the Cohesix operator console: a live web page of the hive and
/// Prometheus `/metrics`, as a Secure9P client of the hive. Operators log
/// in with the Queen's ticket.
#[derive(Debug, clap::Parser)]
#[command(name = "cohesix-console", version)]
pub struct Cli {
    /// Where to serve HTTP (loopback by default: the console acts as the
    /// Queen for whoever logs in).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The hive.
    #[command(flatten)]
    target: crate::session::TargetArgs,
    /// A Queen ticket file for `/metrics`, so a scraper need not log in
    /// [default: `/metrics` shows the last operator's view].
    #[arg(long, value_name = "PATH")]
    metrics_ticket_file: Option<std::path::PathBuf>,
}

impl Cli {
    async fn run(self) -> Result<(), crate::exit::Failure> {
        let config = ConsoleConfig {
            listen: self.listen,
            target: self.target.target()?,
            timeout: self.target.timeout(),
            scrape_ticket_file: self.metrics_ticket_file.clone(),
        };
        let console = Console::start(config)
            .await
            .map_err(|e| crate::exit::Failure::new(crate::exit::Exit::Other, e.to_string()))?;
        println!("console    {}", console.url());
        crate::heartbeat::stop_signal().await;
        console.shutdown().await;
        Ok(())
    }
}

/// `cohesix-console`'s entry point.
pub fn main() -> std::process::ExitCode {
    crate::exit::entry("cohesix-console", Cli::run)
}
