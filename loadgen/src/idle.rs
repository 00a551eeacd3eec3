//! What idle connections cost a server, and whether it gives the memory
//! back: the `s9p-idle` tool. Each round opens N sessions (Tversion and
//! Tattach, nothing else), holds them idle, reads the server's RSS, closes
//! them all and reads it again once the server has settled. Memory is read
//! from `/proc/PID/status`, so the server must run on this machine.

use crate::config::LoadConfig;
use crate::memwatch::parse_status;
use crate::mix::{Mix, Op};
use crate::session::{LoadError, Session};
use serde::Serialize;
use std::time::Duration;

/// One idle-memory run.
#[derive(Debug, Clone)]
pub struct IdleConfig {
    /// Where and how each session connects (address, attach, msize, TLS);
    /// its mix and files are not used.
    pub load: LoadConfig,
    /// Sessions opened per round.
    pub connections: usize,
    /// Rounds (open, hold, close, settle).
    pub rounds: usize,
    /// How long the sessions are left idle before the server's RSS is read.
    pub hold: Duration,
    /// How long after the last close the server's RSS is read.
    pub settle: Duration,
    /// The server process.
    pub server_pid: u32,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum IdleError {
    /// The server's `/proc/PID/status` could not be read.
    #[error("server pid {0}: no /proc/{0}/status with VmRSS (is it running here?)")]
    NoServer(u32),
    /// A session could not be set up.
    #[error("session {index} of round {round}: {source}")]
    Session {
        /// The round (from 1).
        round: usize,
        /// The session (from 1).
        index: usize,
        /// Why.
        #[source]
        source: LoadError,
    },
}

/// One round's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleRound {
    /// Server RSS with every session open and idle, KiB.
    pub idle_rss_kib: u64,
    /// (idle RSS − the base) / sessions, bytes.
    pub bytes_per_connection: u64,
    /// Server RSS after every session closed and `settle` passed, KiB.
    pub closed_rss_kib: u64,
    /// `closed_rss_kib` / the base.
    pub closed_over_base: f64,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleReport {
    /// Sessions per round.
    pub connections: usize,
    /// Seconds held idle, and seconds settled after closing.
    pub hold_secs: f64,
    /// See [`IdleConfig::settle`].
    pub settle_secs: f64,
    /// Server RSS before the first session, KiB.
    pub base_rss_kib: u64,
    /// The rounds, in order.
    pub rounds: Vec<IdleRound>,
}

fn rss_kib(pid: u32) -> Result<u64, IdleError> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .as_deref()
        .and_then(parse_status)
        .map(|s| s.rss_kib)
        .ok_or(IdleError::NoServer(pid))
}

/// Runs the rounds; each round opens its sessions one after another.
pub async fn run(cfg: &IdleConfig) -> Result<IdleReport, IdleError> {
    let mut load = cfg.load.clone();
    // getattr alone opens no file: a session is Tversion + Tattach.
    load.mix = Mix::only(Op::Getattr);
    let base = rss_kib(cfg.server_pid)?;
    let mut rounds = Vec::with_capacity(cfg.rounds);
    for round in 1..=cfg.rounds {
        let mut sessions = Vec::with_capacity(cfg.connections);
        for index in 1..=cfg.connections {
            let s = Session::establish(&load)
                .await
                .map_err(|source| IdleError::Session {
                    round,
                    index,
                    source,
                })?;
            sessions.push(s);
        }
        tokio::time::sleep(cfg.hold).await;
        let idle = rss_kib(cfg.server_pid)?;
        drop(sessions);
        tokio::time::sleep(cfg.settle).await;
        let closed = rss_kib(cfg.server_pid)?;
        rounds.push(IdleRound {
            idle_rss_kib: idle,
            bytes_per_connection: idle.saturating_sub(base) * 1024 / cfg.connections.max(1) as u64,
            closed_rss_kib: closed,
            closed_over_base: closed as f64 / base.max(1) as f64,
        });
    }
    Ok(IdleReport {
        connections: cfg.connections,
        hold_secs: cfg.hold.as_secs_f64(),
        settle_secs: cfg.settle.as_secs_f64(),
        base_rss_kib: base,
        rounds,
    })
}

impl std::fmt::Display for IdleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} idle sessions per round, held {:.1} s, read {:.1} s after closing; server RSS at the start {} KiB",
            self.connections, self.hold_secs, self.settle_secs, self.base_rss_kib
        )?;
        for (i, r) in self.rounds.iter().enumerate() {
            writeln!(
                f,
                "  round {}: idle RSS {} KiB ({} B per connection); closed RSS {} KiB ({:.2} of the start)",
                i + 1,
                r.idle_rss_kib,
                r.bytes_per_connection,
                r.closed_rss_kib,
                r.closed_over_base
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_each_round() {
        let report = IdleReport {
            connections: 1000,
            hold_secs: 3.0,
            settle_secs: 3.0,
            base_rss_kib: 5000,
            rounds: vec![IdleRound {
                idle_rss_kib: 11000,
                bytes_per_connection: 6144,
                closed_rss_kib: 5300,
                closed_over_base: 1.06,
            }],
        };
        let text = report.to_string();
        assert!(text.contains("1000 idle sessions"), "{text}");
        assert!(
            text.contains("round 1: idle RSS 11000 KiB (6144 B per connection); closed RSS 5300 KiB (1.06 of the start)"),
            "{text}"
        );
    }
}
