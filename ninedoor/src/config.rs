//! The limits of a hive. Every number bounds memory or time a client can
//! make the hive spend; each default says why it is that number.

use crate::error::HiveError;
use secure9p_core::codec::MIN_MSIZE;
use secure9p_core::{DEFAULT_MAX_FIDS, DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_MSIZE};

/// Default `/log/queen.log` ring: 64 KiB holds several hundred audit lines,
/// enough for an operator's `tail` to catch up, small enough for a
/// protection domain.
pub const DEFAULT_LOG_CAPACITY: usize = 64 * 1024;
/// Default ring of each `/worker/<id>/telemetry`: 16 KiB is minutes of
/// heartbeats; 64 workers × 16 KiB keeps all telemetry within 1 MiB.
pub const DEFAULT_TELEMETRY_CAPACITY: usize = 16 * 1024;
/// Default largest single telemetry append: one page, a generous line.
pub const DEFAULT_TELEMETRY_MAX_WRITE: usize = 4096;
/// Default longest `/queen/ctl` command line: a page, far above any
/// well-formed command, so parsing cost stays bounded.
pub const DEFAULT_MAX_CTL_LINE: usize = 4096;
/// Default lifetime of a spawned worker's ticket: one hour, until the Queen
/// sets another with the `budget` command.
pub const DEFAULT_TICKET_TTL_S: u64 = 3600;
/// Default longest ticket lifetime the `budget` command may set: one week,
/// so no ticket outlives a maintenance window by accident.
pub const DEFAULT_MAX_TICKET_TTL_S: u64 = 7 * 24 * 3600;
/// Default lifetime of the Queen's ticket: one day; the host renews it with
/// [`Hive::renew_queen_ticket`](crate::Hive::renew_queen_ticket).
pub const DEFAULT_QUEEN_TICKET_TTL_S: u64 = 24 * 3600;
/// Default most live workers: bounds the telemetry rings and the tickets a
/// runaway Queen script can mint.
pub const DEFAULT_MAX_WORKERS: usize = 64;
/// Longest worker or GPU id: ids are path segments and ticket claims, so
/// they use `[A-Za-z0-9_-]` only; 64 fits an NVIDIA `GPU-<uuid>` name.
pub const MAX_ID_LEN: usize = 64;

/// The smallest `/queen/ctl` line limit accepted: a spawn command must fit.
const MIN_CTL_LINE: usize = 128;
/// The smallest log ring accepted: a few audit lines must fit whole.
const MIN_LOG_CAPACITY: usize = 1024;

/// Configuration of a [`Hive`](crate::Hive). [`HiveConfig::default`] is safe
/// for a protection domain; [`Hive::new`](crate::Hive::new) refuses values
/// that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveConfig {
    /// The largest msize negotiated with a client (at least 4096, what the
    /// Linux client requires).
    pub max_msize: u32,
    /// Most fids one session may hold.
    pub max_fids: usize,
    /// Most deferred requests one session may have in flight: `/gpu`
    /// forwards, and a `/queen/ctl` write for the moment it is run (at least 1).
    pub max_inflight: usize,
    /// Refuse any reuse of a fid number within a session (for Cohesix-native
    /// clients; the Linux client recycles numbers, so off by default).
    pub strict_fids: bool,
    /// Bytes `/log/queen.log` keeps; older lines are dropped and a reader
    /// that fell behind is told how much it missed.
    pub log_capacity: usize,
    /// Bytes each `/worker/<id>/telemetry` ring keeps.
    pub telemetry_capacity: usize,
    /// Largest single telemetry append (a larger write fails with `EFBIG`);
    /// at most `telemetry_capacity`.
    pub telemetry_max_write: usize,
    /// Longest `/queen/ctl` command line, newline excluded (a longer one
    /// fails the write with `EFBIG`).
    pub max_ctl_line: usize,
    /// Lifetime of spawned workers' tickets until the Queen's `budget`
    /// command sets another, in seconds.
    pub ticket_ttl_s: u64,
    /// The longest lifetime `budget` may set, in seconds.
    pub max_ticket_ttl_s: u64,
    /// Lifetime of the Queen's ticket, in seconds.
    pub queen_ticket_ttl_s: u64,
    /// Telemetry appends a spawned worker may make (`None`: unlimited) until
    /// the Queen's `budget` command sets another; an exhausted worker's
    /// writes fail with `ENOSPC`.
    pub worker_ops: Option<u64>,
    /// Most live workers; a spawn beyond it fails with `ENOSPC`.
    pub max_workers: usize,
}

impl Default for HiveConfig {
    fn default() -> Self {
        HiveConfig {
            max_msize: DEFAULT_MAX_MSIZE,
            max_fids: DEFAULT_MAX_FIDS,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            strict_fids: false,
            log_capacity: DEFAULT_LOG_CAPACITY,
            telemetry_capacity: DEFAULT_TELEMETRY_CAPACITY,
            telemetry_max_write: DEFAULT_TELEMETRY_MAX_WRITE,
            max_ctl_line: DEFAULT_MAX_CTL_LINE,
            ticket_ttl_s: DEFAULT_TICKET_TTL_S,
            max_ticket_ttl_s: DEFAULT_MAX_TICKET_TTL_S,
            queen_ticket_ttl_s: DEFAULT_QUEEN_TICKET_TTL_S,
            worker_ops: None,
            max_workers: DEFAULT_MAX_WORKERS,
        }
    }
}

fn bad(field: &'static str, why: &'static str) -> HiveError {
    HiveError::Config { field, why }
}

impl HiveConfig {
    /// Refuses values a hive cannot work with.
    pub(crate) fn validate(&self) -> Result<(), HiveError> {
        if self.max_msize < MIN_MSIZE {
            return Err(bad(
                "max_msize",
                "below 4096, which the Linux client refuses",
            ));
        }
        if self.max_fids == 0 {
            return Err(bad("max_fids", "must be at least 1"));
        }
        if self.max_inflight == 0 {
            // `/queen/ctl` writes are deferred too: they need one slot.
            return Err(bad("max_inflight", "must be at least 1"));
        }
        if self.log_capacity < MIN_LOG_CAPACITY {
            return Err(bad("log_capacity", "below 1024 bytes"));
        }
        if self.telemetry_capacity == 0 {
            return Err(bad("telemetry_capacity", "must be at least 1"));
        }
        if self.telemetry_max_write == 0 || self.telemetry_max_write > self.telemetry_capacity {
            return Err(bad(
                "telemetry_max_write",
                "must be between 1 and telemetry_capacity",
            ));
        }
        if self.max_ctl_line < MIN_CTL_LINE {
            return Err(bad(
                "max_ctl_line",
                "below 128 bytes, a spawn would not fit",
            ));
        }
        if self.max_ticket_ttl_s == 0 {
            return Err(bad("max_ticket_ttl_s", "must be at least 1"));
        }
        if self.ticket_ttl_s == 0 || self.ticket_ttl_s > self.max_ticket_ttl_s {
            return Err(bad(
                "ticket_ttl_s",
                "must be between 1 and max_ticket_ttl_s",
            ));
        }
        if self.queen_ticket_ttl_s == 0 {
            return Err(bad("queen_ticket_ttl_s", "must be at least 1"));
        }
        if self.worker_ops == Some(0) {
            return Err(bad(
                "worker_ops",
                "Some(0) would refuse every append; use None",
            ));
        }
        Ok(())
    }
}
