//! The hive's state on disk, in the state directory (both files mode 0600):
//!
//! - `hive.redb`, a [redb](https://docs.rs/redb) database with three
//!   tables: `workers` (id → JSON record), `revoked` (ticket id → expiry)
//!   and `meta` (format, budget, next worker number): the checkpoint;
//! - `hive.journal`, one JSON line per group commit that changed the state:
//!   what changed since the line before (workers put and gone, revocations
//!   added and dropped, the budget, the next worker number).
//!
//! **One flush per group.** A redb commit costs several times an
//! `fdatasync` of an appended line (its copy-on-write pages, its header),
//! so a group appends its delta to the journal, and the writer flushes the
//! journal and `queen.log` together ([`StateDb::sync`]), not one after the
//! other. Every [`CHECKPOINT_RECORDS`] records (or [`CHECKPOINT_BYTES`])
//! the state is committed to redb, durably, and only then is the journal
//! emptied: a crash at any point leaves the checkpoint plus a journal that
//! brings it up to the last group that was flushed.
//!
//! **Opening** reads the checkpoint and applies the journal's lines in
//! order. A torn last line (a group the crash cut short: never
//! acknowledged) is cut off with a log line; a database that cannot be
//! opened, or a record or whole journal line that does not decode, is
//! refused with a message naming the file: the hive never starts empty
//! over state it could not read.

use crate::host::audit_files::whole_prefix;
use crate::host::error::HostError;
use crate::host::key::parse_hex_key;
use crate::{HiveState, SpawnBudget, StateChange, WorkerRecord};
use redb::{Database, ReadableTable, TableDefinition};
use secure9p_core::{FsError, Role, TicketId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The database's file name.
pub(crate) const DB_NAME: &str = "hive.redb";
/// The journal's file name.
pub(crate) const JOURNAL_NAME: &str = "hive.journal";
/// Journal records between two checkpoints: a checkpoint (a redb commit,
/// ~10 ms on a virtio disk) every 1024 groups costs about 1 % of them,
/// and a restart applies at most this many lines.
pub(crate) const CHECKPOINT_RECORDS: u64 = 1024;
/// Journal bytes that force a checkpoint sooner (a hive of many workers
/// changing at once writes long lines).
pub(crate) const CHECKPOINT_BYTES: u64 = 8 << 20;
/// The layout this code writes; another is refused, not guessed at.
const FORMAT: u64 = 1;

const WORKERS: TableDefinition<&str, &[u8]> = TableDefinition::new("workers");
const REVOKED: TableDefinition<&[u8], u64> = TableDefinition::new("revoked");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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

/// What one journal line says changed.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Delta {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    put: BTreeMap<String, StoredWorker>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gone: Vec<String>,
    /// Ticket id (hex) → expiry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    revoke: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unrevoke: Vec<String>,
    budget: Option<StoredBudget>,
    next_worker: u64,
}

fn stored_worker(w: &WorkerRecord) -> StoredWorker {
    StoredWorker {
        role: w.role.name().to_owned(),
        ticket: hex(&w.ticket.0),
        expires: w.expires,
        scope: w.scope.clone(),
        lease: w.lease.clone(),
    }
}

fn worker_of(id: &str, w: StoredWorker) -> Result<WorkerRecord, String> {
    let role =
        Role::from_name(&w.role).ok_or_else(|| format!("worker {id:?}: role {:?}", w.role))?;
    let ticket = parse_hex_key(&w.ticket).ok_or_else(|| format!("worker {id:?}: ticket id"))?;
    Ok(WorkerRecord {
        role,
        ticket: TicketId(ticket),
        expires: w.expires,
        scope: w.scope,
        lease: w.lease,
    })
}

fn budget_of(b: StoredBudget) -> SpawnBudget {
    SpawnBudget {
        ticket_ttl_s: b.ticket_ttl_s,
        ops: b.ops,
    }
}

impl Delta {
    /// What changed from `from` to `to`.
    fn between(from: &HiveState, to: &HiveState) -> Delta {
        Delta {
            put: to
                .workers
                .iter()
                .filter(|(id, w)| from.workers.get(*id) != Some(w))
                .map(|(id, w)| (id.clone(), stored_worker(w)))
                .collect(),
            gone: from
                .workers
                .keys()
                .filter(|id| !to.workers.contains_key(*id))
                .cloned()
                .collect(),
            revoke: to
                .revoked
                .iter()
                .filter(|(id, e)| from.revoked.get(*id) != Some(e))
                .map(|(id, e)| (hex(id), *e))
                .collect(),
            unrevoke: from
                .revoked
                .keys()
                .filter(|id| !to.revoked.contains_key(*id))
                .map(|id| hex(id))
                .collect(),
            budget: to.budget.map(|b| StoredBudget {
                ticket_ttl_s: b.ticket_ttl_s,
                ops: b.ops,
            }),
            next_worker: to.next_worker,
        }
    }

    /// What `change` changes in `held`: only the entries it touched.
    fn of_change(held: &HiveState, change: &StateChange) -> Delta {
        let mut d = Delta {
            put: BTreeMap::new(),
            gone: Vec::new(),
            revoke: BTreeMap::new(),
            unrevoke: Vec::new(),
            budget: change.budget.map(|b| StoredBudget {
                ticket_ttl_s: b.ticket_ttl_s,
                ops: b.ops,
            }),
            next_worker: change.next_worker,
        };
        for (id, w) in &change.workers {
            match w {
                Some(w) if held.workers.get(id) != Some(w) => {
                    d.put.insert(id.clone(), stored_worker(w));
                }
                None if held.workers.contains_key(id) => d.gone.push(id.clone()),
                _ => {}
            }
        }
        for (id, e) in &change.revoked {
            match e {
                Some(e) if held.revoked.get(id) != Some(e) => {
                    d.revoke.insert(hex(id), *e);
                }
                None if held.revoked.contains_key(id) => d.unrevoke.push(hex(id)),
                _ => {}
            }
        }
        d
    }

    /// Whether applying it to `held` would leave it as it is.
    fn changes_nothing(&self, held: &HiveState) -> bool {
        self.put.is_empty()
            && self.gone.is_empty()
            && self.revoke.is_empty()
            && self.unrevoke.is_empty()
            && self.budget.map(budget_of) == held.budget
            && self.next_worker == held.next_worker
    }

    /// Applies it to `state`.
    fn apply(self, state: &mut HiveState) -> Result<(), String> {
        for id in self.gone {
            state.workers.remove(&id);
        }
        for (id, w) in self.put {
            let w = worker_of(&id, w)?;
            state.workers.insert(id, w);
        }
        let ticket = |h: &str| parse_hex_key(h).ok_or_else(|| format!("ticket id {h:?}"));
        for h in self.unrevoke {
            state.revoked.remove(&ticket(&h)?);
        }
        for (h, e) in self.revoke {
            state.revoked.insert(ticket(&h)?, e);
        }
        state.budget = self.budget.map(budget_of);
        state.next_worker = self.next_worker;
        Ok(())
    }
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

    fn journal(e: &std::io::Error, path: &Path) -> StoreFailed {
        StoreFailed {
            errno: crate::host::durable::errno_of(e),
            why: format!("{}: {e}", path.display()),
        }
    }
}

/// The open database and journal, and what they hold (to write only
/// changes).
pub(crate) struct StateDb {
    db: Database,
    path: PathBuf,
    /// What the checkpoint holds.
    checkpoint: HiveState,
    journal: File,
    journal_path: PathBuf,
    /// Bytes and records in the journal.
    journal_len: u64,
    journal_records: u64,
    /// What the checkpoint and the journal hold together.
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
        let checkpoint = read(&db).map_err(corrupt)?;
        let journal_path = dir.join(JOURNAL_NAME);
        let bad_journal = |why: String| HostError::State {
            path: journal_path.clone(),
            why: format!(
                "{why}; refusing to start over state that cannot be read \
                 (restore the state directory from a backup, or move it away to start an empty hive)"
            ),
        };
        let io = |e| HostError::file("state journal", &journal_path, e);
        let mut journal = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&journal_path)
            .map_err(io)?;
        let size = journal.metadata().map_err(io)?.len();
        let whole = whole_prefix(&mut journal, size).map_err(io)?;
        if whole < size {
            // A group the crash cut short: never acknowledged.
            journal
                .set_len(whole)
                .and_then(|()| journal.sync_all())
                .map_err(io)?;
            eprintln!(
                "ninedoor: cut {} bytes of a torn last record from {} (a write the crash interrupted; never acknowledged)",
                size - whole,
                journal_path.display()
            );
        }
        let mut state = checkpoint.clone();
        let mut records = 0u64;
        journal.seek(SeekFrom::Start(0)).map_err(io)?;
        for (n, line) in std::io::BufReader::new(&journal).lines().enumerate() {
            let line = line.map_err(|e| bad_journal(format!("line {}: {e}", n + 1)))?;
            let delta: Delta = serde_json::from_str(&line)
                .map_err(|e| bad_journal(format!("line {}: {e}", n + 1)))?;
            delta
                .apply(&mut state)
                .map_err(|e| bad_journal(format!("line {}: {e}", n + 1)))?;
            records += 1;
        }
        std::fs::set_permissions(&journal_path, std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        let db = StateDb {
            db,
            path,
            checkpoint,
            journal,
            journal_path,
            journal_len: whole,
            journal_records: records,
            held: state.clone(),
        };
        Ok((db, state))
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends what changed from the state held to `state` to the journal,
    /// without flushing it ([`StateDb::sync`] does); returns the journal's
    /// length before, to [`StateDb::cut`] back to. On error nothing of it
    /// is appended.
    pub(crate) fn append(&mut self, change: &StateChange) -> Result<u64, StoreFailed> {
        let before = self.journal_len;
        let delta = if change.whole {
            let mut to = HiveState::default();
            change.apply_to(&mut to);
            Delta::between(&self.held, &to)
        } else {
            Delta::of_change(&self.held, change)
        };
        if delta.changes_nothing(&self.held) {
            return Ok(before);
        }
        let mut line =
            serde_json::to_vec(&delta).map_err(|e| StoreFailed::encode(&e.to_string()))?;
        line.push(b'\n');
        if let Err(e) = self.journal.write_all(&line) {
            let _ = self.journal.set_len(before);
            return Err(StoreFailed::journal(&e, &self.journal_path));
        }
        self.journal_len += line.len() as u64;
        self.journal_records += 1;
        change.apply_to(&mut self.held);
        Ok(before)
    }

    /// Makes the appended journal lines durable.
    pub(crate) fn sync(&mut self) -> Result<(), StoreFailed> {
        self.journal
            .sync_data()
            .map_err(|e| StoreFailed::journal(&e, &self.journal_path))
    }

    /// Cuts the journal back to `len` bytes (the lines of a group that
    /// failed), durably, and forgets them: the state held goes back to what
    /// is stored, and `state` is what is to be appended again.
    pub(crate) fn cut(&mut self, len: u64) -> Result<(), StoreFailed> {
        if len >= self.journal_len {
            return Ok(());
        }
        self.journal
            .set_len(len)
            .and_then(|()| self.journal.sync_data())
            .map_err(|e| StoreFailed::journal(&e, &self.journal_path))?;
        self.journal_len = len;
        self.reread()
    }

    /// The state the checkpoint and journal hold, read back (after a cut).
    fn reread(&mut self) -> Result<(), StoreFailed> {
        let mut state = self.checkpoint.clone();
        let mut records = 0;
        let bad = |why: String| StoreFailed {
            errno: FsError::Io,
            why,
        };
        self.journal
            .seek(SeekFrom::Start(0))
            .map_err(|e| StoreFailed::journal(&e, &self.journal_path))?;
        for line in std::io::BufReader::new(&self.journal).lines() {
            let line = line.map_err(|e| StoreFailed::journal(&e, &self.journal_path))?;
            let delta: Delta = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
            delta.apply(&mut state).map_err(bad)?;
            records += 1;
        }
        self.held = state;
        self.journal_records = records;
        Ok(())
    }

    /// Whether the journal is long enough for a checkpoint.
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.journal_records >= CHECKPOINT_RECORDS || self.journal_len >= CHECKPOINT_BYTES
    }

    /// Commits the state held to the database, durably, then empties the
    /// journal. On error the journal stays as it is (it still holds every
    /// change since the last checkpoint).
    pub(crate) fn checkpoint(&mut self) -> Result<(), StoreFailed> {
        let state = self.held.clone();
        self.commit(&state)?;
        self.journal
            .set_len(0)
            .and_then(|()| self.journal.sync_data())
            .map_err(|e| StoreFailed::journal(&e, &self.journal_path))?;
        self.journal_len = 0;
        self.journal_records = 0;
        Ok(())
    }

    /// Stores `change` at once, durably when this returns `Ok`: appended,
    /// flushed and checkpointed.
    pub(crate) fn store(&mut self, change: &StateChange) -> Result<(), StoreFailed> {
        self.append(change)?;
        self.sync()?;
        self.checkpoint()
    }

    /// Commits `state` to the database (only what differs from the
    /// checkpoint), durably when this returns `Ok`. On error nothing of it
    /// is stored (the previous commit stands).
    fn commit(&mut self, state: &HiveState) -> Result<(), StoreFailed> {
        if *state == self.checkpoint {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(StoreFailed::of)?;
        {
            let mut workers = txn.open_table(WORKERS).map_err(StoreFailed::of)?;
            for id in self.checkpoint.workers.keys() {
                if !state.workers.contains_key(id) {
                    workers.remove(id.as_str()).map_err(StoreFailed::of)?;
                }
            }
            for (id, w) in &state.workers {
                if self.checkpoint.workers.get(id) == Some(w) {
                    continue;
                }
                let stored = stored_worker(w);
                let bytes = serde_json::to_vec(&stored)
                    .map_err(|e| StoreFailed::encode(&format!("worker {id}: {e}")))?;
                workers
                    .insert(id.as_str(), bytes.as_slice())
                    .map_err(StoreFailed::of)?;
            }
            let mut revoked = txn.open_table(REVOKED).map_err(StoreFailed::of)?;
            for id in self.checkpoint.revoked.keys() {
                if !state.revoked.contains_key(id) {
                    revoked.remove(id.as_slice()).map_err(StoreFailed::of)?;
                }
            }
            for (id, expires) in &state.revoked {
                if self.checkpoint.revoked.get(id) != Some(expires) {
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
        self.checkpoint = state.clone();
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
                        state.budget = Some(budget_of(b));
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
        let w = worker_of(&id, w)?;
        state.workers.insert(id, w);
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
