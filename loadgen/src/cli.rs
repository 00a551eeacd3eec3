//! What the crate's command lines share: seconds from a flag, a
//! single-threaded runtime, a report as one JSON line.

use serde::Serialize;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// `s` seconds, or a one-line error naming `flag`.
pub fn seconds(flag: &str, s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{flag} {s} is not a number of seconds"))
}

/// Runs `work` to completion on a current-thread runtime; if the runtime
/// cannot start, says so as `tool` and gives the exit code 1.
pub fn block_on<F: Future>(tool: &str, work: F) -> Result<F::Output, ExitCode> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Ok(runtime.block_on(work)),
        Err(e) => {
            eprintln!("{tool}: starting the runtime: {e}");
            Err(ExitCode::from(1))
        }
    }
}

/// Prints `report` as one JSON line; `Err` (exit code 1, said as `tool`)
/// if it cannot be encoded.
pub fn print_json<T: Serialize>(tool: &str, report: &T) -> Result<(), ExitCode> {
    match serde_json::to_string(report) {
        Ok(line) => {
            println!("{line}");
            Ok(())
        }
        Err(e) => {
            eprintln!("{tool}: the report is not encodable: {e}");
            Err(ExitCode::from(1))
        }
    }
}

/// The server and the attach, as every tool's command line takes them.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Server address (host:port).
    #[arg(long)]
    pub addr: SocketAddr,
    /// Tree to attach (diod: the exported directory).
    #[arg(long)]
    pub aname: String,
    /// User name in Tattach.
    #[arg(long, default_value = "root")]
    pub uname: String,
}
