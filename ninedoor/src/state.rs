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
