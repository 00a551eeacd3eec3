//! The `/queen/ctl` language: one JSON object a line, tagged by `cmd`, parsed
//! strictly (unknown commands, unknown or duplicate fields, trailing bytes
//! and over-long lines are refused). The types are public so a client such
//! as `cohsh` builds lines from the same schema the hive parses.

use alloc::format;
use alloc::string::String;
use serde::{Deserialize, Serialize};
use serde_json::error::Category;

/// One `/queen/ctl` command.
///
/// ```
/// use ninedoor::{Command, SpawnRole};
/// let line = br#"{"cmd":"spawn","role":"heartbeat","id":"w1"}"#;
/// let cmd: Command = serde_json::from_slice(line).unwrap();
/// assert_eq!(cmd, Command::Spawn { role: SpawnRole::Heartbeat, id: Some("w1".into()), gpu: None });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Command {
    /// Starts a worker: mints its ticket (subject = `id`) and, for a
    /// heartbeat worker, creates `/worker/<id>/telemetry`. The reply (read
    /// back from the same fid) carries the ticket.
    Spawn {
        /// The worker's role.
        role: SpawnRole,
        /// Its id (`[A-Za-z0-9_-]`, at most 64); generated as `w<N>` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// For a GPU worker: the installed GPU it may use (its ticket's scope).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gpu: Option<String>,
    },
    /// Stops a worker: revokes its ticket (closing every fid opened under it)
    /// and removes `/worker/<id>`.
    Kill {
        /// The worker's id.
        id: String,
    },
    /// Sets the defaults of later spawns; at least one field is required.
    Budget {
        /// Lifetime of later workers' tickets, seconds (1 to the configured maximum).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket_ttl_s: Option<u64>,
        /// Telemetry appends each later worker may make; 0 means unlimited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ops: Option<u64>,
    },
    /// Leases a GPU on its bridge to a new GPU worker: writes `LEASE
    /// holder=<worker> …` to the bridge's `/gpu/<gpu>/ctl` and, when the
    /// bridge grants (or queues) it, spawns the worker with a ticket scoped
    /// to the GPU. The reply carries the ticket (as `spawn`'s does), the
    /// GPU and the bridge's answer. Runs alone in its write.
    ///
    /// With `"gpu":"any"` the hive chooses: the least loaded GPU whose
    /// bridge link is up and that has `mem_mb` MiB free (see
    /// `docs/hive.md`, "Any GPU"), the next one if its bridge refuses (at
    /// most [`MAX_PLACEMENT_TRIES`](crate::MAX_PLACEMENT_TRIES) in all);
    /// `ENOSPC` when none can take it.
    Lease {
        /// The installed GPU, or `any`.
        gpu: String,
        /// The new worker's id, the lease's holder; generated as `w<N>` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<String>,
        /// Memory cap of the holder's jobs, MiB (at most the GPU's memory).
        mem_mb: u32,
        /// Stream cap (the bridge's default, 1, when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        streams: Option<u32>,
        /// The lease's lifetime, seconds (the holder renews it through `lease`).
        ttl_s: u32,
        /// Priority against other leases (the bridge's default, 0, when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<u8>,
    },
    /// Ends a GPU's active lease (`RELEASE` on the bridge), or withdraws
    /// `worker`'s waiting request; a GPU worker the hive spawned for the
    /// lease ended is killed (its ticket revoked). Runs alone in its write.
    Release {
        /// The GPU.
        gpu: String,
        /// Withdraw this holder's lease or waiting request rather than
        /// whichever lease is active.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<String>,
    },
    /// Adds or removes a GPU bridge at run time (exactly one of the two):
    /// `add` links a new bridge (`[PREFIX=]HOST:PORT`, as in the host's
    /// `[gpu] bridges`; its GPUs appear under `/gpu` once it lists them);
    /// `remove` (`HOST:PORT`) stops a bridge's link, takes its GPUs out of
    /// `/gpu` and kills the GPU workers scoped to them. Refused with
    /// `EOPNOTSUPP` where links are fixed (the seL4 image).
    Bridge {
        /// The bridge to link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        add: Option<String>,
        /// The bridge to drop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remove: Option<String>,
    },
}

/// The role a spawned worker gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpawnRole {
    /// A heartbeat worker: appends to its own `/worker/<id>/telemetry`.
    Heartbeat,
    /// A GPU worker: uses `/gpu/<gpu>` only.
    Gpu,
}

/// Why a command was refused: the errno that fails the write and a reason
/// for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) errno: secure9p_core::FsError,
    pub(crate) why: String,
}

impl Refusal {
    pub(crate) fn new(errno: secure9p_core::FsError, why: impl Into<String>) -> Self {
        Refusal {
            errno,
            why: why.into(),
        }
    }
}

/// Parses one line (without its newline), at most `max` bytes.
pub(crate) fn parse_line(line: &[u8], max: usize) -> Result<Command, Refusal> {
    use secure9p_core::FsError;
    if line.len() > max {
        return Err(Refusal::new(
            FsError::TooBig,
            format!("line of {} bytes exceeds {max}", line.len()),
        ));
    }
    serde_json::from_slice(line).map_err(|e| {
        let what = match e.classify() {
            Category::Data => "invalid command",
            Category::Io | Category::Syntax | Category::Eof => "malformed JSON",
        };
        Refusal::new(FsError::Invalid, format!("{what}: {e}"))
    })
}

impl Command {
    /// The command's name, as in its `cmd` field.
    pub const fn name(&self) -> &'static str {
        match self {
            Command::Spawn { .. } => "spawn",
            Command::Kill { .. } => "kill",
            Command::Budget { .. } => "budget",
            Command::Lease { .. } => "lease",
            Command::Release { .. } => "release",
            Command::Bridge { .. } => "bridge",
        }
    }

    /// Whether the command runs on a GPU bridge (and so alone in its write:
    /// its answer comes back later).
    pub const fn on_bridge(&self) -> bool {
        matches!(self, Command::Lease { .. } | Command::Release { .. })
    }
}
