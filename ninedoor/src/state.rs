//! The hive's durable state: what a restarted hive must know to be the hive
//! it was (the live workers, the revoked tickets that have not expired yet,
//! the spawn budget and the next fresh worker number). The hive hands it
//! out ([`Hive::take_state`](crate::Hive::take_state)) and takes it back
//! ([`Hive::restore`](crate::Hive::restore)); storing it is the embedder's
//! job (the host daemon keeps it in a database), so nothing here does I/O.
//! Ticket texts are never part of it: a worker keeps its own ticket, the
//! hive its id.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use secure9p_core::{Role, TicketId};

/// One live worker as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Its role.
    pub role: Role,
    /// Its ticket's id.
    pub ticket: TicketId,
    /// When its ticket expires, unix seconds.
    pub expires: u64,
    /// Its ticket's scope.
    pub scope: String,
    /// The GPU it holds a lease of (a worker spawned by `lease`).
    pub lease: Option<String>,
}

/// The defaults of later spawns, as the `budget` command sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnBudget {
    /// The lifetime of tickets minted by later spawns, seconds.
    pub ticket_ttl_s: u64,
    /// The operation budget of later heartbeat workers (`None`: unlimited).
    pub ops: Option<u64>,
}

/// Everything a restarted hive needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HiveState {
    /// The live workers, by id.
    pub workers: BTreeMap<String, WorkerRecord>,
    /// Revoked ticket ids, with the time each ticket expires (after which
    /// it is refused anyway and need not be kept).
    pub revoked: BTreeMap<[u8; 32], u64>,
    /// The spawn budget, once a `budget` command set one (until then the
    /// configuration's, which may change between runs).
    pub budget: Option<SpawnBudget>,
    /// The number the next fresh `w<N>` id starts looking from.
    pub next_worker: u64,
}

/// What [`Hive::restore`](crate::Hive::restore) starts from.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// The state stored last (empty for a new hive).
    pub state: HiveState,
    /// The tail of the stored audit log, whole lines each ending in `\n`,
    /// oldest first, to refill `/log/queen.log` with (not logged again).
    pub history: Vec<String>,
}

/// What changed in the durable state since the hive last handed it out
/// ([`Hive::take_changes`](crate::Hive::take_changes)): only the workers
/// and revocations touched, so recording a command costs what it changed,
/// not the size of the hive (a hive that killed ten thousand workers keeps
/// ten thousand revocations until their tickets expire).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateChange {
    /// The workers and revocations listed are the whole state: any other
    /// is gone (after a restore dropped some).
    pub whole: bool,
    /// Workers touched: `Some` is the record now, `None` a worker gone.
    pub workers: BTreeMap<String, Option<WorkerRecord>>,
    /// Revocations touched: `Some` is the ticket's expiry, `None` a
    /// revocation no longer kept.
    pub revoked: BTreeMap<[u8; 32], Option<u64>>,
    /// The spawn budget now (as [`HiveState::budget`]).
    pub budget: Option<SpawnBudget>,
    /// The next fresh worker number now.
    pub next_worker: u64,
}

impl StateChange {
    /// The whole of `state`, as one change.
    pub fn whole(state: HiveState) -> Self {
        StateChange {
            whole: true,
            workers: state
                .workers
                .into_iter()
                .map(|(id, w)| (id, Some(w)))
                .collect(),
            revoked: state
                .revoked
                .into_iter()
                .map(|(id, e)| (id, Some(e)))
                .collect(),
            budget: state.budget,
            next_worker: state.next_worker,
        }
    }

    /// Applies it to `state`.
    pub fn apply_to(&self, state: &mut HiveState) {
        if self.whole {
            state.workers.clear();
            state.revoked.clear();
        }
        for (id, w) in &self.workers {
            match w {
                Some(w) => state.workers.insert(id.clone(), w.clone()),
                None => state.workers.remove(id),
            };
        }
        for (id, e) in &self.revoked {
            match e {
                Some(e) => state.revoked.insert(*id, *e),
                None => state.revoked.remove(id),
            };
        }
        state.budget = self.budget;
        state.next_worker = self.next_worker;
    }

    /// Adds `later` after it: the two as one change.
    pub fn then(&mut self, later: StateChange) {
        if later.whole {
            *self = later;
            return;
        }
        self.workers.extend(later.workers);
        self.revoked.extend(later.revoked);
        self.budget = later.budget;
        self.next_worker = later.next_worker;
    }
}
