//! The hive's state on disk: `hive.redb` in the state directory (mode
//! 0600), a [redb](https://docs.rs/redb) database with three tables:
//! `workers` (id → JSON record), `revoked` (ticket id → expiry) and `meta`
//! (format, budget, next worker number). Each commit writes only what
//! changed since the last one and is durable when it returns (redb's
//! checksummed copy-on-write commit: a crash leaves the previous commit).
//!
//! A database that cannot be opened or holds a record that does not decode
//! is refused with a message naming the file: the hive never starts empty
//! over state it could not read.

use crate::host::error::HostError;
use crate::host::key::parse_hex_key;
use crate::{HiveState, SpawnBudget, WorkerRecord};
use redb::{Database, ReadableTable, TableDefinition};
use secure9p_core::{FsError, Role, TicketId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The database's file name.
pub(crate) const DB_NAME: &str = "hive.redb";
/// The layout this code writes; another is refused, not guessed at.
const FORMAT: u64 = 1;

const WORKERS: TableDefinition<&str, &[u8]> = TableDefinition::new("workers");
const REVOKED: TableDefinition<&[u8], u64> = TableDefinition::new("revoked");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct StoredWorker {
    role: String,
    ticket: String,
    expires: u64,
    scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone, Copy)]
struct StoredBudget {
    ticket_ttl_s: u64,
    ops: Option<u64>,
}

/// Why a commit failed: the errno the requests it carried are refused
/// with, and what to tell the operator.
#[derive(Debug)]
pub(crate) struct StoreFailed {
    /// `ENOSPC` for a full disk, `EFBIG` past a file size limit, ...
    pub(crate) errno: FsError,
    /// What went wrong.
    pub(crate) why: String,
}

impl StoreFailed {
    fn of(e: impl Into<redb::Error>) -> StoreFailed {
        let e: redb::Error = e.into();
        let errno = match &e {
            redb::Error::Io(io) => crate::host::durable::errno_of(io),
            _ => FsError::Io,
        };
        StoreFailed {
            errno,
            why: e.to_string(),
        }
    }

    fn encode(why: &str) -> StoreFailed {
        StoreFailed {
            errno: FsError::Io,
            why: format!("not encodable: {why}"),
        }
    }
}

/// The open database and what it holds (to write only changes).
pub(crate) struct StateDb {
    db: Database,
    path: PathBuf,
    held: HiveState,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl StateDb {
    /// Opens (or creates, mode 0600) `dir/hive.redb` and reads it whole.
    pub(crate) fn open(dir: &Path) -> Result<(StateDb, HiveState), HostError> {
        let path = dir.join(DB_NAME);
        let corrupt = |why: String| HostError::State {
            path: path.clone(),
            why: format!(
                "{why}; refusing to start over state that cannot be read \
                 (restore the file from a backup, or move it away to start an empty hive)"
            ),
        };
        // Created empty with its mode first: redb makes an empty file a new
        // database, and never widens the mode of an existing one.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| HostError::file("state database", &path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| HostError::file("state database", &path, e))?;
        let db =
            Database::create(&path).map_err(|e| corrupt(format!("unreadable database: {e}")))?;
        let state = read(&db).map_err(corrupt)?;
        let held = state.clone();
        Ok((StateDb { db, path, held }, state))
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `state`, durably when this returns `Ok`. On error nothing of
    /// it is stored (the previous commit stands).
    pub(crate) fn store(&mut self, state: &HiveState) -> Result<(), StoreFailed> {
        if *state == self.held {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(StoreFailed::of)?;
        {
            let mut workers = txn.open_table(WORKERS).map_err(StoreFailed::of)?;
            for id in self.held.workers.keys() {
                if !state.workers.contains_key(id) {
                    workers.remove(id.as_str()).map_err(StoreFailed::of)?;
                }
            }
            for (id, w) in &state.workers {
                if self.held.workers.get(id) == Some(w) {
                    continue;
                }
                let stored = StoredWorker {
                    role: w.role.name().to_owned(),
                    ticket: hex(&w.ticket.0),
                    expires: w.expires,
                    scope: w.scope.clone(),
                    lease: w.lease.clone(),
                };
                let bytes = serde_json::to_vec(&stored)
                    .map_err(|e| StoreFailed::encode(&format!("worker {id}: {e}")))?;
                workers
                    .insert(id.as_str(), bytes.as_slice())
                    .map_err(StoreFailed::of)?;
            }
            let mut revoked = txn.open_table(REVOKED).map_err(StoreFailed::of)?;
            for id in self.held.revoked.keys() {
                if !state.revoked.contains_key(id) {
                    revoked.remove(id.as_slice()).map_err(StoreFailed::of)?;
                }
            }
            for (id, expires) in &state.revoked {
                if self.held.revoked.get(id) != Some(expires) {
                    revoked
                        .insert(id.as_slice(), *expires)
                        .map_err(StoreFailed::of)?;
                }
            }
            let mut meta = txn.open_table(META).map_err(StoreFailed::of)?;
            meta.insert("format", FORMAT.to_le_bytes().as_slice())
                .map_err(StoreFailed::of)?;
            meta.insert("next_worker", state.next_worker.to_le_bytes().as_slice())
                .map_err(StoreFailed::of)?;
            match state.budget {
                Some(b) => {
                    let stored = StoredBudget {
                        ticket_ttl_s: b.ticket_ttl_s,
                        ops: b.ops,
                    };
                    let bytes = serde_json::to_vec(&stored)
                        .map_err(|e| StoreFailed::encode(&format!("budget: {e}")))?;
                    meta.insert("budget", bytes.as_slice())
                        .map_err(StoreFailed::of)?;
                }
                None => {
                    meta.remove("budget").map_err(StoreFailed::of)?;
                }
            }
        }
        txn.commit().map_err(StoreFailed::of)?;
        self.held = state.clone();
        Ok(())
    }
}

fn u64_of(bytes: &[u8], what: &str) -> Result<u64, String> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_le_bytes)
        .map_err(|_| format!("meta {what} is {} bytes, not 8", bytes.len()))
}

/// Reads the whole state; a record that does not decode is an error.
fn read(db: &Database) -> Result<HiveState, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let mut state = HiveState {
        next_worker: 1,
        ..HiveState::default()
    };
    match txn.open_table(META) {
        Ok(meta) => {
            for item in meta.iter().map_err(|e| e.to_string())? {
                let (k, v) = item.map_err(|e| e.to_string())?;
                match k.value() {
                    "format" => {
                        let f = u64_of(v.value(), "format")?;
                        if f != FORMAT {
                            return Err(format!("format {f}, this ninedoor reads {FORMAT}"));
                        }
                    }
                    "next_worker" => state.next_worker = u64_of(v.value(), "next_worker")?,
                    "budget" => {
                        let b: StoredBudget = serde_json::from_slice(v.value())
                            .map_err(|e| format!("meta budget: {e}"))?;
                        state.budget = Some(SpawnBudget {
                            ticket_ttl_s: b.ticket_ttl_s,
                            ops: b.ops,
                        });
                    }
                    other => return Err(format!("unknown meta key {other:?}")),
                }
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(state),
        Err(e) => return Err(e.to_string()),
    }
    let workers = txn.open_table(WORKERS).map_err(|e| e.to_string())?;
    for item in workers.iter().map_err(|e| e.to_string())? {
        let (k, v) = item.map_err(|e| e.to_string())?;
        let id = k.value().to_owned();
        let w: StoredWorker =
            serde_json::from_slice(v.value()).map_err(|e| format!("worker {id:?}: {e}"))?;
        let role =
            Role::from_name(&w.role).ok_or_else(|| format!("worker {id:?}: role {:?}", w.role))?;
        let ticket = parse_hex_key(&w.ticket).ok_or_else(|| format!("worker {id:?}: ticket id"))?;
        state.workers.insert(
            id,
            WorkerRecord {
                role,
                ticket: TicketId(ticket),
                expires: w.expires,
                scope: w.scope,
                lease: w.lease,
            },
        );
    }
    let revoked = txn.open_table(REVOKED).map_err(|e| e.to_string())?;
    let mut held = BTreeMap::new();
    for item in revoked.iter().map_err(|e| e.to_string())? {
        let (k, v) = item.map_err(|e| e.to_string())?;
        let id = <[u8; 32]>::try_from(k.value())
            .map_err(|_| format!("revoked ticket id of {} bytes", k.value().len()))?;
        held.insert(id, v.value());
    }
    state.revoked = held;
    Ok(state)
}
