//! Audit: every control write, denial and ticket event is reported to an
//! [`Audit`] sink with the ticket id (never the ticket text). NineDoor routes
//! these to `/log/queen.log`.

use crate::error::FsError;
use crate::policy::Op;
use crate::role::Role;
use crate::ticket::TicketId;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditKind<'a> {
    /// An operation was refused by the policy.
    Denied {
        /// The operation.
        op: Op,
        /// The path.
        path: &'a str,
        /// The error returned.
        error: FsError,
    },
    /// A write to a control file, accepted or refused.
    ControlWrite {
        /// The control file.
        path: &'a str,
        /// The outcome.
        result: Result<(), FsError>,
    },
    /// An attach with a valid ticket.
    TicketAccepted,
    /// An attach whose ticket was refused.
    TicketRefused {
        /// Why.
        error: FsError,
    },
    /// A ticket was revoked; `fids` fids were closed.
    TicketRevoked {
        /// How many fids were closed.
        fids: usize,
    },
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent<'a> {
    /// When, in the engine's time (unix seconds as passed in).
    pub at: u64,
    /// The role of the principal, if known.
    pub role: Option<Role>,
    /// Its subject (empty if unknown).
    pub subject: &'a str,
    /// The ticket's id, if any.
    pub ticket: Option<TicketId>,
    /// What happened.
    pub kind: AuditKind<'a>,
}

/// Receives audit records. It must not block: the engine calls it inline.
pub trait Audit: Send + Sync {
    /// Records one event.
    fn record(&mut self, event: &AuditEvent<'_>);
}

/// Drops every record.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAudit;

impl Audit for NoAudit {
    fn record(&mut self, _: &AuditEvent<'_>) {}
}
