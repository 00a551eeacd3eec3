//! `gpu-scale`: a scale run of the hive's GPU side with the real binaries
//! over real TCP on 127.0.0.1. One `ninedoor`, many `gpu-bridge-host
//! --mock` processes (each with a prefix, all sharing one bridge key), and
//! the Queen leasing and releasing GPUs through `/queen/ctl`. It measures
//! what the operator sees (`cohsh ls /gpu`, `cohsh gpu top --once`), lease
//! latency at several fleet sizes, NineDoor's memory per bridge, and what
//! a `kill -9` of some bridges costs the rest of the fleet.
//!
//! Unlike the rest of the crate this harness writes: it drives a hive of
//! its own, started and stopped by the run, never one it did not start.
//! Every child process is killed and reaped when its handle drops (also on
//! an error or a panic), and everything binds 127.0.0.1 only. It is a
//! tool, not a test: nothing in CI runs it.

pub mod config;
pub mod procs;
pub mod queen;
pub mod report;
pub mod run;
pub mod timing;

pub use config::ScaleConfig;
pub use report::ScaleReport;
pub use run::run;

use std::path::PathBuf;
use std::time::Duration;

/// Why a scale run stopped before its report.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The configuration cannot make a run.
    #[error("{0}")]
    Config(String),
    /// A binary the run needs is not where it was looked for.
    #[error(
        "{0}: not found; build the binaries first: cargo build --release -p ninedoor -p cohsh -p gpu-bridge"
    )]
    MissingBinary(PathBuf),
    /// A file of the run's own (key, config, logs) could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A child process did not come up.
    #[error("{name} did not start: {why}")]
    Start {
        /// The process (`ninedoor`, `bridge h7`).
        name: String,
        /// Why, with the tail of its log.
        why: String,
    },
    /// Waiting for the hive timed out.
    #[error("{what}: nothing after {after:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// The Queen's connection to NineDoor failed (not a refusal: those are
    /// measured).
    #[error("queen session: {0}")]
    Queen(String),
}
