//! Workers as the hive tracks them: id rules, the registry record and the
//! public view of one worker.

use crate::state::WorkerRecord;
use alloc::string::String;
use secure9p_core::{NodeId, Role, TicketId};

/// How full a bounded ring is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingUsage {
    /// Bytes held now (never more than `capacity`).
    pub held: usize,
    /// The ring's capacity in bytes.
    pub capacity: usize,
    /// Absolute offset one past the last byte ever written.
    pub end: u64,
}

/// A live worker, as [`Hive::workers`](crate::Hive::workers) reports it
/// (never with its ticket text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its id (the ticket's subject).
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its ticket's id.
    pub ticket: TicketId,
    /// When its ticket expires, unix seconds.
    pub expires: u64,
    /// Its ticket's scope (`/worker/<id>`, or the GPU id).
    pub scope: String,
    /// Its telemetry ring, for a heartbeat worker.
    pub telemetry: Option<RingUsage>,
    /// The GPU it holds a lease of, for a GPU worker spawned by `lease`.
    pub lease: Option<String>,
}

/// The registry record of a worker.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) role: Role,
    pub(crate) ticket: TicketId,
    pub(crate) expires: u64,
    pub(crate) scope: String,
    /// `/worker/<id>`, if it has one.
    pub(crate) dir: Option<NodeId>,
    /// `/worker/<id>/telemetry`, if it has one.
    pub(crate) telemetry: Option<NodeId>,
    /// The GPU whose lease it was spawned for, if any.
    pub(crate) lease: Option<String>,
}

impl Worker {
    /// What of it survives a restart.
    pub(crate) fn record(&self) -> WorkerRecord {
        WorkerRecord {
            role: self.role,
            ticket: self.ticket,
            expires: self.expires,
            scope: self.scope.clone(),
            lease: self.lease.clone(),
        }
    }
}

/// Whether `id` may name a worker or a GPU: a path segment and a ticket
/// claim, so `[A-Za-z0-9_-]` only, 1 to [`MAX_ID_LEN`](crate::MAX_ID_LEN) bytes.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= crate::MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
