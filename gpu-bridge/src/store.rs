//! The bridge's state directory (`gpu-bridge-host --state-dir DIR`):
//! `bridge.redb` (mode 0600, in a directory made 0700), a
//! [redb](https://docs.rs/redb) database, the crate NineDoor keeps its hive
//! in, with four tables:
//!
//! - `leases`: GPU id → the active lease (terms, `lease_id`, absolute
//!   `granted_ms` and `expires_ms`), the waiting requests in order, and the
//!   last `lease_id` granted;
//! - `jobs`: (GPU id, n) → one job record: `job_id`, holder (the lease's
//!   holder when it was accepted), state, the result's SHA-256 and its
//!   status lines; the last [`JOB_RECORDS`] finished ones are kept;
//! - `status`: (GPU id, n) → one line of `/gpu/<id>/status`, as much as the
//!   ring holds ([`STATUS_RING`] bytes), to refill it after a restart;
//! - `meta`: the layout's format number.
//!
//! **Durable before it is answered.** [`BridgeStore::record`] runs under
//! the bridge's lock after every operation on a GPU: it compares the lease
//! book with the one stored, takes the status lines appended since, and
//! commits what changed in one redb transaction with immediate durability
//! (checksummed copy-on-write: a crash leaves the previous commit). Only
//! then is the lock released, so no reply, status line or lease view is
//! seen before it is on disk. A commit that fails (a full disk, a file
//! size limit, a read-only file system) fails the write that caused it
//! with that errno; the change stays in memory, is retried with the next
//! operation, and every control write is refused until a commit succeeds
//! again. Reads never wait for the disk.
//!
//! **After a restart** the leases are back with their absolute expiry (one
//! that expired while the bridge was down is dropped with a log line, and
//! the first waiting request is granted), the status ring holds its lines
//! again, and every job that was not finished gets its final line: `ERR
//! INTERRUPTED <job> holder=<h> was running …` or `… was queued …`.
//! Queued jobs are refused, not re-queued: their payload (up to 700 KiB
//! inline, or an artefact the restarted bridge may have staged
//! differently) is not stored, their `timeout_ms` counted from acceptance,
//! and a job run late, after its holder may have resubmitted it, is worse
//! than a clear refusal the holder can act on.
//!
//! **Never start over state it cannot read.** A database that cannot be
//! opened, holds another format or a record that does not decode is
//! refused with a message naming the file, and left as it is. One that was
//! not closed cleanly (the bridge was killed mid-commit) is repaired by
//! redb on open, which keeps its last complete commit and drops the torn
//! one; that is said in a log line.

use crate::error::BridgeError;
use crate::gpu::GpuState;
use crate::lease::{ActiveLease, GpuLease, LeaseBook};
use crate::limits::STATUS_RING;
use crate::log::EventLog;
use gpu_contract::StatusLine;
use redb::{Database, ReadableTable, TableDefinition};
use secure9p_core::FsError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The database's file name in the state directory.
pub const STATE_FILE: &str = "bridge.redb";

/// Finished job records kept per GPU (the oldest is dropped first): a few
/// times what the status ring shows, about 250 KiB of records.
pub const JOB_RECORDS: usize = 1024;

/// The layout this code writes; another is refused, not guessed at.
const FORMAT: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const JOBS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("jobs");
const LINES: TableDefinition<(&str, u64), &str> = TableDefinition::new("status");

/// Why a state directory could not be opened or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The directory or the file could not be made or opened.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The path is there and is not a directory.
    #[error("{}: exists and is not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The database cannot be read: it is left as it is.
    #[error(
        "{}: {why}; refusing to start over state that cannot be read (restore the file from a \
         backup, or move it away to start with no leases and no job records)",
        path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The restored state could not be written back (the first commit).
    #[error("{}: cannot record the start: {why}", path.display())]
    Unrecorded {
        /// The database file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Why a commit failed: the errno the write it carried fails with, and what
/// to tell the operator.
#[derive(Debug, Clone)]
pub(crate) struct StoreFailed {
    errno: FsError,
    why: String,
}

impl StoreFailed {
    fn errno_of(e: &std::io::Error) -> FsError {
        e.raw_os_error()
            .and_then(|n| u32::try_from(n).ok())
            .map_or(FsError::Io, FsError::from_errno)
    }

    fn of(e: impl Into<redb::Error>) -> StoreFailed {
        let e: redb::Error = e.into();
        let errno = match &e {
            redb::Error::Io(io) => StoreFailed::errno_of(io),
            _ => FsError::Io,
        };
        StoreFailed {
            errno,
            why: e.to_string(),
        }
    }
}

/// One job as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    /// Its id.
    pub(crate) job_id: String,
    /// The lease's holder when it was accepted.
    pub(crate) holder: String,
    /// `QUEUED`, `RUNNING`, `OK` or `ERR`.
    pub(crate) state: String,
    /// The SHA-256 of its output, once `OK`.
    #[serde(default)]
    pub(crate) sha256: Option<String>,
    /// Its status lines, oldest first.
    pub(crate) lines: Vec<String>,
}

impl JobRecord {
    fn finished(&self) -> bool {
        matches!(self.state.as_str(), "OK" | "ERR")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredActive {
    lease: GpuLease,
    lease_id: u64,
    granted_ms: u64,
    expires_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
struct StoredLeases {
    active: Option<StoredActive>,
    waiting: Vec<GpuLease>,
    last_id: u64,
}

impl StoredLeases {
    fn of(book: &LeaseBook) -> StoredLeases {
        StoredLeases {
            active: book.active().map(|a| StoredActive {
                lease: a.lease.clone(),
                lease_id: a.lease_id,
                granted_ms: a.granted_ms,
                expires_ms: a.expires_ms,
            }),
            waiting: book.waiting().cloned().collect(),
            last_id: book.last_id(),
        }
    }

    fn book(&self) -> LeaseBook {
        let active = self.active.as_ref().map(|a| ActiveLease {
            lease: a.lease.clone(),
            lease_id: a.lease_id,
            granted_ms: a.granted_ms,
            expires_ms: a.expires_ms,
        });
        LeaseBook::restored(active, self.waiting.clone(), self.last_id)
    }
}

/// One write of a commit.
#[derive(Debug)]
enum Op {
    Leases(String, Vec<u8>),
    Line(String, u64, String),
    DropLine(String, u64),
    Job(String, u64, Vec<u8>),
    DropJob(String, u64),
}

/// What is stored of one GPU (to write only what changed).
#[derive(Debug, Clone, Default)]
struct Held {
    id: String,
    leases: StoredLeases,
    /// The status ring's offset up to which its lines are stored.
    status_end: u64,
    next_line: u64,
    /// Keys and lengths of the stored lines, oldest first.
    lines: VecDeque<(u64, usize)>,
    line_bytes: usize,
    next_job: u64,
    /// Unfinished jobs by id: their key and record.
    open: BTreeMap<String, (u64, JobRecord)>,
    /// Keys of finished records, oldest first.
    finished: VecDeque<u64>,
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl Held {
    /// Takes the lease book and the status bytes appended since the last
    /// commit; returns the writes that store them.
    fn advance(&mut self, leases: StoredLeases, appended: &[u8], holder: &str) -> Vec<Op> {
        let mut ops = Vec::new();
        if leases != self.leases {
            ops.push(Op::Leases(self.id.clone(), json(&leases)));
            self.leases = leases;
        }
        for line in appended.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = String::from_utf8_lossy(line).into_owned();
            let key = self.next_line;
            self.next_line += 1;
            self.lines.push_back((key, line.len() + 1));
            self.line_bytes += line.len() + 1;
            self.job_line(&line, holder, &mut ops);
            ops.push(Op::Line(self.id.clone(), key, line));
        }
        while self.line_bytes > STATUS_RING {
            let Some((key, len)) = self.lines.pop_front() else {
                break;
            };
            self.line_bytes -= len;
            ops.push(Op::DropLine(self.id.clone(), key));
        }
        while self.finished.len() > JOB_RECORDS {
            if let Some(key) = self.finished.pop_front() {
                ops.push(Op::DropJob(self.id.clone(), key));
            }
        }
        ops
    }

    /// Updates the record of the job `line` is about.
    fn job_line(&mut self, line: &str, holder: &str, ops: &mut Vec<Op>) {
        // Lines of another shape are kept for the ring, not for a record.
        let Ok(parsed) = line.parse::<StatusLine>() else {
            return;
        };
        let id = parsed.job_id().to_owned();
        let fresh = |this: &mut Held| {
            this.next_job += 1;
            let record = JobRecord {
                job_id: id.clone(),
                holder: holder.to_owned(),
                state: String::new(),
                sha256: None,
                lines: Vec::new(),
            };
            (this.next_job, record)
        };
        let (key, mut record) = match (&parsed, self.open.remove(&id)) {
            (StatusLine::Queued { .. }, _) | (_, None) => fresh(self),
            (_, Some(open)) => open,
        };
        record.state = parsed.state().to_owned();
        if let StatusLine::Ok { sha256, .. } = &parsed {
            record.sha256 = Some(sha256.clone());
        }
        record.lines.push(line.to_owned());
        ops.push(Op::Job(self.id.clone(), key, json(&record)));
        if record.finished() {
            self.finished.push_back(key);
        } else {
            self.open.insert(id, (key, record));
        }
    }
}

/// What one GPU's stored state brings back.
#[derive(Debug, Default)]
struct Restored {
    lines: Vec<String>,
    open: Vec<JobRecord>,
}

/// The open state directory of a bridge.
pub(crate) struct BridgeStore {
    /// `None` after a failed commit: redb refuses every later one after an
    /// I/O error, so the next commit opens the file again.
    db: Option<Database>,
    path: PathBuf,
    /// By GPU index.
    held: Vec<Held>,
    /// A commit failed and none succeeded since (said once in the log).
    failing: bool,
}

impl std::fmt::Debug for BridgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Makes `dir` (0700) if it is missing; refuses a path that is not a
/// directory.
fn prepare(dir: &Path) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StateError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io),
        Err(e) => Err(io(e)),
    }
}

/// Opens (or creates, mode 0600) the database; says whether redb had to
/// repair it (it was not closed cleanly).
fn open_db(path: &Path) -> Result<(Database, bool), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Created empty with its mode first: redb makes an empty file a new
    // database and never widens the mode of an existing one.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = repaired.clone();
    // redb asserts on some malformed headers; a file that makes it panic
    // is as unreadable as one it refuses.
    let opened = std::panic::catch_unwind(|| {
        Database::builder()
            .set_repair_callback(move |_| flag.store(true, Ordering::Relaxed))
            .create(path)
    });
    let corrupt = |why: String| StateError::Corrupt {
        path: path.to_path_buf(),
        why,
    };
    match opened {
        Ok(Ok(db)) => Ok((db, repaired.load(Ordering::Relaxed))),
        // The disk, not the file (an errno: a full disk is not corruption;
        // redb says a malformed file with an `io::Error` of no errno).
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(source))))
            if source.raw_os_error().is_some() =>
        {
            Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(Err(e)) => Err(corrupt(format!("unreadable database: {e}"))),
        Err(_) => Err(corrupt("unreadable database (redb gave up on it)".into())),
    }
}

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// What is stored of one GPU, and what it brings back.
type HeldGpu = (Held, Restored);

/// Reads what `db` holds of the GPUs `ids`; also the GPU ids it holds
/// leases of that are not among them.
fn read(db: &Database, ids: &[String]) -> Result<(Vec<HeldGpu>, Vec<String>), String> {
    let txn = db.begin_read().map_err(text)?;
    let empty = || {
        ids.iter()
            .map(|id| {
                let held = Held {
                    id: id.clone(),
                    ..Held::default()
                };
                (held, Restored::default())
            })
            .collect()
    };
    match txn.open_table(META) {
        Ok(meta) => match meta.get("format").map_err(text)? {
            Some(f) if f.value() == FORMAT => {}
            Some(f) => {
                return Err(format!(
                    "format {}, this gpu-bridge reads {FORMAT}",
                    f.value()
                ));
            }
            None => return Err("no format number".into()),
        },
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((empty(), Vec::new())),
        Err(e) => return Err(e.to_string()),
    }
    let leases = txn.open_table(LEASES).map_err(text)?;
    let jobs = txn.open_table(JOBS).map_err(text)?;
    let lines = txn.open_table(LINES).map_err(text)?;
    let mut out = Vec::new();
    for id in ids {
        let mut held = Held {
            id: id.clone(),
            ..Held::default()
        };
        let mut restored = Restored::default();
        if let Some(v) = leases.get(id.as_str()).map_err(text)? {
            held.leases = serde_json::from_slice(v.value())
                .map_err(|e| format!("leases of gpu {id}: {e}"))?;
        }
        let range = (id.as_str(), 0u64)..=(id.as_str(), u64::MAX);
        for item in jobs.range(range.clone()).map_err(text)? {
            let (k, v) = item.map_err(text)?;
            let key = k.value().1;
            let record: JobRecord = serde_json::from_slice(v.value())
                .map_err(|e| format!("job record {key} of gpu {id}: {e}"))?;
            held.next_job = key;
            if record.finished() {
                held.finished.push_back(key);
            } else {
                restored.open.push(record.clone());
                held.open.insert(record.job_id.clone(), (key, record));
            }
        }
        for item in lines.range(range).map_err(text)? {
            let (k, v) = item.map_err(text)?;
            let (key, line) = (k.value().1, v.value().to_owned());
            held.next_line = key + 1;
            held.lines.push_back((key, line.len() + 1));
            held.line_bytes += line.len() + 1;
            restored.lines.push(line);
        }
        out.push((held, restored));
    }
    let mut unknown = Vec::new();
    for item in leases.iter().map_err(text)? {
        let (k, _) = item.map_err(text)?;
        if !ids.iter().any(|id| id == k.value()) {
            unknown.push(k.value().to_owned());
        }
    }
    Ok((out, unknown))
}

impl BridgeStore {
    /// Opens the state directory `dir` (made 0700 if missing), restores
    /// what it holds into `gpus` (see the module docs), says so in `log`,
    /// and records the restored state before returning.
    pub(crate) fn restore(
        dir: &Path,
        gpus: &mut [GpuState],
        log: &mut EventLog,
        now: u64,
    ) -> Result<BridgeStore, StateError> {
        prepare(dir)?;
        let path = dir.join(STATE_FILE);
        let (db, repaired) = open_db(&path)?;
        let ids: Vec<String> = gpus.iter().map(|g| g.descriptor().id.clone()).collect();
        let (read, unknown) = read(&db, &ids).map_err(|why| StateError::Corrupt {
            path: path.clone(),
            why,
        })?;
        if repaired {
            log.record(
                now,
                "-",
                None,
                &format!(
                    "state {} was not closed cleanly (the bridge was killed or crashed): redb repaired it \
                     and kept its last complete commit (one the stop cut short was never acknowledged and is dropped)",
                    path.display()
                ),
            );
        }
        for id in &unknown {
            log.record(
                now,
                id,
                None,
                &format!(
                    "state holds gpu {id}, which this bridge does not have; its records are kept as they are"
                ),
            );
        }
        let mut held = Vec::new();
        for (gpu, (mut h, restored)) in gpus.iter_mut().zip(read) {
            restore_gpu(gpu, &mut h, restored, log, now);
            held.push(h);
        }
        let mut store = BridgeStore {
            db: Some(db),
            path: path.clone(),
            held,
            failing: false,
        };
        let mut ops = Vec::new();
        let mut next = store.held.clone();
        for (gpu, h) in gpus.iter_mut().zip(next.iter_mut()) {
            ops.extend(diff(h, gpu));
        }
        store
            .commit(ops)
            .map_err(|e| StateError::Unrecorded { path, why: e.why })?;
        store.held = next;
        Ok(store)
    }

    /// Stores what changed on GPU `index` since the last commit, durably
    /// when this returns `Ok`. A failure is said in `log` once (and its
    /// end once), and is the error every control write gets until then.
    pub(crate) fn record(
        &mut self,
        index: usize,
        gpu: &mut GpuState,
        log: &mut EventLog,
        now: u64,
    ) -> Result<(), BridgeError> {
        let Some(held) = self.held.get(index) else {
            return Ok(());
        };
        if !changed(held, gpu) {
            return Ok(());
        }
        let mut next = held.clone();
        let ops = diff(&mut next, gpu);
        let id = next.id.clone();
        match self.commit(ops) {
            Ok(()) => {
                if let Some(slot) = self.held.get_mut(index) {
                    *slot = next;
                }
                if self.failing {
                    self.failing = false;
                    log.record(
                        now,
                        &id,
                        None,
                        &format!("state {} records again", self.path.display()),
                    );
                }
                Ok(())
            }
            Err(e) => {
                if !self.failing {
                    self.failing = true;
                    log.record(
                        now,
                        &id,
                        None,
                        &format!(
                            "state not recorded in {}: {}; control writes are refused until it records again",
                            self.path.display(),
                            e.why
                        ),
                    );
                }
                Err(BridgeError::NotRecorded {
                    errno: e.errno,
                    why: e.why,
                })
            }
        }
    }

    /// Writes `ops` in one transaction, durable when it returns `Ok`; on
    /// error nothing of it is stored.
    fn commit(&mut self, ops: Vec<Op>) -> Result<(), StoreFailed> {
        let result = self.try_commit(ops);
        if result.is_err() {
            self.db = None;
        }
        result
    }

    fn try_commit(&mut self, ops: Vec<Op>) -> Result<(), StoreFailed> {
        let db = match self.db.take() {
            Some(db) => db,
            None => open_db(&self.path)
                .map(|(db, _)| db)
                .map_err(|e| StoreFailed {
                    errno: match &e {
                        StateError::Io { source, .. } => StoreFailed::errno_of(source),
                        _ => FsError::Io,
                    },
                    why: e.to_string(),
                })?,
        };
        let db = self.db.insert(db);
        let txn = db.begin_write().map_err(StoreFailed::of)?;
        {
            let mut meta = txn.open_table(META).map_err(StoreFailed::of)?;
            meta.insert("format", FORMAT).map_err(StoreFailed::of)?;
            let mut leases = txn.open_table(LEASES).map_err(StoreFailed::of)?;
            let mut jobs = txn.open_table(JOBS).map_err(StoreFailed::of)?;
            let mut lines = txn.open_table(LINES).map_err(StoreFailed::of)?;
            for op in &ops {
                match op {
                    Op::Leases(gpu, bytes) => {
                        leases.insert(gpu.as_str(), bytes.as_slice()).map(drop)
                    }
                    Op::Line(gpu, key, line) => {
                        lines.insert((gpu.as_str(), *key), line.as_str()).map(drop)
                    }
                    Op::DropLine(gpu, key) => lines.remove((gpu.as_str(), *key)).map(drop),
                    Op::Job(gpu, key, bytes) => jobs
                        .insert((gpu.as_str(), *key), bytes.as_slice())
                        .map(drop),
                    Op::DropJob(gpu, key) => jobs.remove((gpu.as_str(), *key)).map(drop),
                }
                .map_err(StoreFailed::of)?;
            }
        }
        txn.commit().map_err(StoreFailed::of)
    }
}

/// Whether `gpu` has anything `held` lacks.
fn changed(held: &Held, gpu: &mut GpuState) -> bool {
    gpu.status().end() != held.status_end || StoredLeases::of(gpu.leases()) != held.leases
}

/// Advances `held` to `gpu`; returns the writes that store the change.
fn diff(held: &mut Held, gpu: &mut GpuState) -> Vec<Op> {
    let leases = StoredLeases::of(gpu.leases());
    let holder = leases
        .active
        .as_ref()
        .map_or_else(|| String::from("-"), |a| a.lease.holder.clone());
    let ring = gpu.status();
    let from = held.status_end.max(ring.base());
    let mut bytes = Vec::new();
    ring.read_at(from, u32::MAX, &mut bytes);
    // Lines the ring dropped before they were stored: skip the partial one.
    if from > held.status_end {
        let whole = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..whole);
    }
    held.status_end = ring.end();
    held.advance(leases, &bytes, &holder)
}

/// Puts one GPU's restored state in place and ends its unfinished jobs.
fn restore_gpu(
    gpu: &mut GpuState,
    held: &mut Held,
    restored: Restored,
    log: &mut EventLog,
    now: u64,
) {
    let id = held.id.clone();
    gpu.restore_leases(held.leases.book());
    let ring = gpu.status();
    for line in &restored.lines {
        ring.append(format!("{line}\n").as_bytes(), now / 1000);
    }
    held.status_end = ring.end();
    if held.leases == StoredLeases::default() && restored.lines.is_empty() {
        return;
    }
    let lease = match &held.leases.active {
        Some(a) => format!(
            "lease of {} lease_id={} expires_ms={}",
            a.lease.holder, a.lease_id, a.expires_ms
        ),
        None => String::from("no active lease"),
    };
    log.record(
        now,
        &id,
        None,
        &format!(
            "state restored: {lease}, {} waiting, {} status lines, {} unfinished jobs interrupted",
            held.leases.waiting.len(),
            restored.lines.len(),
            restored.open.len()
        ),
    );
    if let Some(a) = held.leases.active.as_ref().filter(|a| now >= a.expires_ms) {
        log.record(
            now,
            &id,
            None,
            &format!(
                "state lease of {} lease_id={} expired at {} ms while the bridge was down; dropped",
                a.lease.holder, a.lease_id, a.expires_ms
            ),
        );
    }
    for job in restored.open {
        let was = if job.state == "RUNNING" {
            "was running when the bridge stopped; its outcome is unknown, resubmit it"
        } else {
            "was queued when the bridge stopped and is not re-queued; resubmit it"
        };
        let line = StatusLine::Err {
            reason: String::from("INTERRUPTED"),
            job_id: job.job_id,
            detail: format!("holder={} {was}", job.holder),
        };
        gpu.status()
            .append(format!("{line}\n").as_bytes(), now / 1000);
    }
    // A lease that expired while the bridge was down ends now.
    gpu.tick(now, log);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, GpuBridge, JobDescriptor, ManualClock, MockSource, Workload};
    use secure9p_core::Role;

    const T0: u64 = 1_700_000_000_000;

    fn bridge_on(dir: &Path, clock: &Arc<ManualClock>) -> GpuBridge {
        let bridge = GpuBridge::new(Box::new(MockSource::new(1).unwrap()), clock.clone());
        bridge.keep_state(dir).unwrap();
        bridge
    }

    fn job(id: &str) -> Vec<u8> {
        let w = Workload::Vadd {
            a: vec![1.0, 2.0],
            b: vec![3.0, 4.0],
        };
        JobDescriptor::inline(id, &w).to_json().into_bytes()
    }

    fn queen() -> Actor {
        Actor::local(Role::Queen, "queen")
    }

    /// The job records stored, oldest first (the bridge must be gone).
    fn records(dir: &Path) -> Vec<JobRecord> {
        let db = Database::open(dir.join(STATE_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        let jobs = txn.open_table(JOBS).unwrap();
        jobs.iter()
            .unwrap()
            .map(|i| serde_json::from_slice(i.unwrap().1.value()).unwrap())
            .collect()
    }

    #[test]
    fn leases_and_job_records_survive_and_unfinished_jobs_are_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let clock = Arc::new(ManualClock::new(T0));
        let bridge = bridge_on(&state, &clock);
        let granted = bridge
            .control(
                "0",
                b"LEASE holder=w1 mem_mb=64 streams=4 ttl_s=60",
                &queen(),
            )
            .unwrap();
        bridge
            .control("0", b"LEASE holder=w2 mem_mb=64 ttl_s=30", &queen())
            .unwrap();
        let w1 = Actor::local(Role::WorkerGpu, "w1");
        bridge.submit("0", &job("done"), &w1).unwrap();
        bridge.run_ready(0, &mut crate::CpuExecutor);
        bridge.submit("0", &job("running"), &w1).unwrap();
        bridge.submit("0", &job("queued"), &w1).unwrap();
        let running = bridge
            .with_gpu(0, |g, cx| g.dispatch(cx.now, cx.log, 1))
            .unwrap();
        assert_eq!(running.len(), 1);
        let before = bridge.status_text("0");
        drop(bridge);

        clock.advance(5_000);
        let bridge = bridge_on(&state, &clock);
        let status = bridge.status_text("0");
        assert!(status.starts_with(&before), "{status}");
        let added: Vec<&str> = status[before.len()..].lines().collect();
        assert_eq!(added.len(), 2, "{status}");
        assert!(
            added[0].starts_with("ERR INTERRUPTED running holder=w1 was running"),
            "{added:?}"
        );
        assert!(
            added[1].starts_with("ERR INTERRUPTED queued holder=w1 was queued"),
            "{added:?}"
        );
        // The lease keeps its absolute expiry and id; the waiting request stays.
        let lease = bridge.with_gpu(0, |g, cx| g.lease_json(cx.now)).unwrap();
        let expires = granted
            .split(' ')
            .find_map(|w| w.strip_prefix("expires_ms="))
            .unwrap()
            .trim();
        assert!(
            lease.contains(&format!("\"expires_ms\":{expires}")),
            "{lease}"
        );
        assert!(lease.contains("\"lease_id\":1"), "{lease}");
        assert!(lease.contains("\"holder\":\"w2\""), "{lease}");
        assert!(
            bridge
                .log_lines()
                .iter()
                .any(|l| l.contains("state restored"))
        );
        // A finished id may be used again; the interrupted ones are finished.
        bridge.submit("0", &job("running"), &w1).unwrap();
        drop(bridge);

        let records = records(&state);
        let summary: Vec<(&str, &str, &str)> = records
            .iter()
            .map(|r| (r.job_id.as_str(), r.holder.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("done", "w1", "OK"),
                ("running", "w1", "ERR"),
                ("queued", "w1", "ERR"),
                ("running", "w1", "QUEUED"),
            ]
        );
        assert_eq!(records[0].lines.len(), 3);
        assert!(records[0].sha256.as_ref().is_some_and(|h| h.len() == 64));
    }

    #[test]
    fn a_lease_that_expired_while_down_is_dropped_with_a_log_line() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let bridge = bridge_on(dir.path(), &clock);
        bridge
            .control("0", b"LEASE holder=w1 mem_mb=64 ttl_s=10", &queen())
            .unwrap();
        bridge
            .control("0", b"LEASE holder=w2 mem_mb=64 ttl_s=10", &queen())
            .unwrap();
        drop(bridge);
        clock.advance(20_000);
        let bridge = bridge_on(dir.path(), &clock);
        let log = bridge.log_lines();
        assert!(
            log.iter()
                .any(|l| l.contains("lease of w1 lease_id=1 expired at")),
            "{log:?}"
        );
        // The waiting request is granted, its TTL from now.
        let active = bridge
            .with_gpu(0, |g, _| g.leases().active().cloned())
            .unwrap()
            .unwrap();
        assert_eq!(active.lease.holder, "w2");
        assert_eq!(active.lease_id, 2);
        assert_eq!(active.expires_ms, T0 + 30_000);
    }

    #[test]
    fn files_are_private_and_a_corrupt_database_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let clock = Arc::new(ManualClock::new(T0));
        drop(bridge_on(&state, &clock));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        let file = state.join(STATE_FILE);
        assert_eq!(mode(&file), 0o600);

        let mut bytes = std::fs::read(&file).unwrap();
        for (i, b) in bytes.iter_mut().take(4096).enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0x5a;
        }
        std::fs::write(&file, &bytes).unwrap();
        let bridge = GpuBridge::new(Box::new(MockSource::new(1).unwrap()), clock.clone());
        let err = bridge.keep_state(&state).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("refusing to start"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), bytes, "never reset");

        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        let err = bridge.keep_state(&dir.path().join("plain")).unwrap_err();
        assert!(matches!(err, StateError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn a_record_that_does_not_decode_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        drop(bridge_on(dir.path(), &clock));
        {
            let db = Database::open(dir.path().join(STATE_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(LEASES)
                .unwrap()
                .insert("0", b"{\"active\":7}".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let bridge = GpuBridge::new(Box::new(MockSource::new(1).unwrap()), clock);
        let err = bridge.keep_state(dir.path()).unwrap_err().to_string();
        assert!(err.contains("leases of gpu 0"), "{err}");
    }

    #[test]
    fn the_status_lines_and_finished_records_stay_bounded() {
        let mut held = Held {
            id: "0".into(),
            ..Held::default()
        };
        let mut dropped = (0, 0);
        for n in 0..(JOB_RECORDS + 2000) {
            let text = format!("QUEUED j{n} priority=0 position=1\nERR RESET j{n} gpu reset\n");
            for op in held.advance(StoredLeases::default(), text.as_bytes(), "w1") {
                match op {
                    Op::DropLine(..) => dropped.0 += 1,
                    Op::DropJob(..) => dropped.1 += 1,
                    _ => {}
                }
            }
        }
        assert!(held.line_bytes <= STATUS_RING);
        assert_eq!(held.finished.len(), JOB_RECORDS);
        assert_eq!(dropped.1, 2000);
        assert_eq!(held.lines.len() + dropped.0, 2 * (JOB_RECORDS + 2000));
        assert!(held.open.is_empty());
    }
}
