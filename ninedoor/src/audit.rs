//! The engine's audit sink: turns every `AuditEvent` into a line of
//! `/log/queen.log` as it happens. It must never block or fail (the engine
//! calls it inline) and never writes ticket text, only ticket ids.
//!
//! Control writes reported as accepted are held back: the engine records a
//! deferred write as accepted before anyone has run it, so the hive, which
//! knows the outcome, writes that line itself (see `Hive::handle`).

use crate::log::{self, HeldControl, Line, SharedLog, Who};
use alloc::string::String;
use secure9p_core::{Audit, AuditEvent, AuditKind};

/// Writes audit events to the shared log.
pub(crate) struct AuditSink {
    log: SharedLog,
}

impl AuditSink {
    /// A sink writing to `log`.
    pub(crate) fn new(log: SharedLog) -> Self {
        AuditSink { log }
    }
}

impl Audit for AuditSink {
    fn record(&mut self, event: &AuditEvent<'_>) {
        let who = Who {
            role: event.role,
            subject: event.subject,
            ticket: event.ticket,
        };
        let line = match &event.kind {
            AuditKind::ControlWrite {
                path,
                result: Ok(()),
            } => {
                log::hold(
                    &self.log,
                    HeldControl {
                        at: event.at,
                        role: event.role,
                        subject: String::from(event.subject),
                        ticket: event.ticket,
                        path: String::from(*path),
                    },
                );
                return;
            }
            AuditKind::ControlWrite {
                path,
                result: Err(e),
            } => Line::new(event.at, "ctl-refused", who)
                .field("path", path)
                .errno(*e),
            AuditKind::Denied { op, path, error } => Line::new(event.at, "denied", who)
                .field("op", op.name())
                .field("path", path)
                .errno(*error),
            AuditKind::TicketAccepted => Line::new(event.at, "ticket-accepted", who),
            AuditKind::TicketRefused { error } => {
                Line::new(event.at, "ticket-refused", who).errno(*error)
            }
            AuditKind::TicketRevoked { fids } => {
                Line::new(event.at, "ticket-revoked", who).num("fids", *fids as u64)
            }
            _ => Line::new(event.at, "audit", who).field("kind", "unknown"),
        };
        log::append(&self.log, line);
    }
}
