//! Worker placement for embedders that run each worker in a place of its
//! own (the seL4 image's pool of worker PDs): how many workers of each role
//! fit, and the spawns and kills the embedder must act on.
//!
//! The hive decides and records; the embedder starts and stops. With slots
//! set for a role, a `spawn` beyond them is refused before anything is
//! created (`ENOSPC`, logged like any refused command), and every spawn and
//! kill is queued as a [`WorkerEvent`] for [`Hive::take_worker_events`]
//! (crate::Hive::take_worker_events). Nothing is queued for a hive whose
//! embedder never set slots (the host daemon), so the queue cannot grow
//! unread.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use secure9p_core::Role;

/// A worker the embedder must start or stop.
#[derive(Clone, PartialEq, Eq)]
pub enum WorkerEvent {
    /// A worker was spawned: give it `ticket` and start it.
    Spawned {
        /// Its id.
        id: String,
        /// Its role.
        role: Role,
        /// Its ticket text (secret: never logged, never in `Debug`).
        ticket: String,
    },
    /// A worker was killed: its ticket is revoked and its files are gone;
    /// stop it.
    Killed {
        /// Its id.
        id: String,
    },
}

impl core::fmt::Debug for WorkerEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WorkerEvent::Spawned { id, role, .. } => f
                .debug_struct("Spawned")
                .field("id", id)
                .field("role", role)
                .finish_non_exhaustive(),
            WorkerEvent::Killed { id } => f.debug_struct("Killed").field("id", id).finish(),
        }
    }
}

/// Slots per role and the events not yet taken.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    slots: Vec<(Role, usize)>,
    events: VecDeque<WorkerEvent>,
}

impl Placement {
    /// Sets the slots of `role`.
    pub(crate) fn set(&mut self, role: Role, slots: usize) {
        match self.slots.iter_mut().find(|(r, _)| *r == role) {
            Some(entry) => entry.1 = slots,
            None => self.slots.push((role, slots)),
        }
    }

    /// The slots of `role`, if the embedder places workers of it.
    pub(crate) fn slots(&self, role: Role) -> Option<usize> {
        self.slots.iter().find(|(r, _)| *r == role).map(|(_, n)| *n)
    }

    /// Queues `event` if the embedder places workers at all.
    pub(crate) fn push(&mut self, event: WorkerEvent) {
        if !self.slots.is_empty() {
            self.events.push_back(event);
        }
    }

    /// The events queued since the last call, oldest first.
    pub(crate) fn take(&mut self) -> Vec<WorkerEvent> {
        self.events.drain(..).collect()
    }
}
