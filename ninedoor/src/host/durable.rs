//! The group-commit writer of a state directory: one thread that owns the
//! audit files and the state database, takes batches (the log lines and
//! the latest state of one or more requests), writes them, flushes once
//! for all of them, and only then lets their replies go, all of them under
//! one lock of the engine.
//!
//! **Group commit.** The writer takes the first batch waiting, then every
//! other batch already queued, up to [`MAX_GROUP_EVENTS`] log lines; while
//! the group has fewer requests than the last group released, it waits up
//! to [`GATHER`] (0.5 ms) for them (those clients answer at once, and a
//! group that waits for them saves each a flush), never when the last group
//! was one request alone. It appends their lines to `queen.log` and, if the
//! state changed, one delta line to the state journal
//! ([`StateDb::append`]), then `fdatasync`s the two files side by side
//! (two threads, so the group waits for one flush, not two in a row); the
//! database itself is committed only at checkpoints, every
//! [`CHECKPOINT_RECORDS`](crate::host::state_db::CHECKPOINT_RECORDS)
//! groups. A lone request pays one flush; many concurrent ones share it.
//!
//! **Never acknowledge what was not recorded.** If the append, the `fsync`
//! or the commit fails (a full disk, a file size limit, a read-only
//! directory), the log is cut back to where the group started and every
//! control request of the group (one that changed the state or logged a
//! `ctl-` event) is answered with the errno instead of its reply; the state
//! is kept and written with the next group that succeeds. Reads, which log
//! nothing, keep being answered, and so are attaches: their lines stay in
//! the ring and wait in memory (at most [`MAX_GROUP_EVENTS`]) for the next
//! group that succeeds, so a Queen can still look at a hive whose disk is
//! full.

use crate::StateChange;
use crate::host::audit_files::AuditFiles;
use crate::host::engine::HiveEngine;
use crate::host::state_db::StateDb;
use secure9p_core::{Completion, FsError, Token};
use secure9p_transport::server::Shared;
use std::sync::Weak;
use std::sync::mpsc;

/// Most log lines one `fsync` covers (a bound on one group's memory and on
/// how long its first request waits behind the others).
pub const MAX_GROUP_EVENTS: usize = 4096;

/// Longest a group waits for the requests of the connections the last
/// group released (it never waits when the last group was a lone request).
const GATHER: std::time::Duration = std::time::Duration::from_micros(500);

/// How often the writer, idle, pulls events the hive logged on its own.
const IDLE_PULL: std::time::Duration = std::time::Duration::from_secs(1);

/// What one request (or one event outside any request) left to record.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Its log lines, each ending in `\n`.
    pub(crate) lines: Vec<String>,
    /// What of the hive's state it changed, if anything.
    pub(crate) state: Option<StateChange>,
    /// The held reply to release once recorded (none for events the hive
    /// logged on its own: a renewed Queen ticket, a GPU installed).
    pub(crate) release: Option<Token>,
}

impl Batch {
    /// Whether its request must be refused if it cannot be recorded: it
    /// changed the state or ran (or tried) a control write.
    fn strict(&self) -> bool {
        self.state.is_some()
            || self
                .lines
                .iter()
                .any(|l| l.split(' ').nth(1).is_some_and(|e| e.starts_with("ctl-")))
    }
}

/// The errno a failed write of the state directory answers with.
pub(crate) fn errno_of(e: &std::io::Error) -> FsError {
    match e.raw_os_error() {
        Some(28 | 122) => FsError::NoSpace,
        Some(27) => FsError::TooBig,
        Some(1 | 13 | 30) => FsError::AccessDenied,
        _ => FsError::Io,
    }
}

/// Starts the writer thread over `files` and `db`; it completes held
/// replies through `shared` and ends when every sender is gone.
pub(crate) fn start(
    files: AuditFiles,
    db: StateDb,
    rx: mpsc::Receiver<Batch>,
    shared: Weak<Shared<HiveEngine>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ninedoor-audit".into())
        .spawn(move || {
            Writer {
                files,
                db,
                unstored: None,
                backlog: Vec::new(),
            }
            .run(rx, shared)
        })
}

/// Writes `batch` at once, before serving starts (a directory that cannot
/// take it stops the start), and checkpoints the state.
pub(crate) fn record_now(
    files: &mut AuditFiles,
    db: &mut StateDb,
    batch: Batch,
) -> Result<(), String> {
    let bytes: Vec<u8> = batch.lines.concat().into_bytes();
    files
        .append(&bytes)
        .and_then(|_| files.sync())
        .map_err(|e| format!("{}: {e}", files.path().display()))?;
    if let Some(state) = &batch.state {
        db.store(state)
            .map_err(|e| format!("{}: {}", db.path().display(), e.why))?;
    }
    Ok(())
}

struct Writer {
    files: AuditFiles,
    db: StateDb,
    /// Changes whose commit failed, to store with the next group.
    unstored: Option<StateChange>,
    /// Lines of answered requests (attaches) a failed group left, written
    /// first by the next one.
    backlog: Vec<String>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Batch>, shared: Weak<Shared<HiveEngine>>) {
        // Replies the last group let go.
        let mut released = 0usize;
        loop {
            let first = match rx.recv_timeout(IDLE_PULL) {
                Ok(b) => b,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Events no request waits for (a renewed ticket, a GPU
                    // installed by a bridge link) are pulled now and then.
                    match shared.upgrade() {
                        Some(s) => s.with_engine(HiveEngine::record_pending),
                        None => return,
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut events = first.lines.len();
            let mut group = vec![first];
            // Whatever is queued, and then, for a moment, the requests of
            // the connections the last group released: they come back at
            // once, and sharing this flush beats each waiting for the next.
            let gather_until = std::time::Instant::now() + GATHER;
            while events < MAX_GROUP_EVENTS {
                let next = match rx.try_recv() {
                    Ok(b) => Some(b),
                    Err(mpsc::TryRecvError::Empty) if group.len() < released => {
                        let left =
                            gather_until.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            None
                        } else {
                            rx.recv_timeout(left).ok()
                        }
                    }
                    Err(_) => None,
                };
                let Some(b) = next else { break };
                events += b.lines.len();
                group.push(b);
            }
            let strict: Vec<bool> = group.iter().map(Batch::strict).collect();
            let result = self.record(&mut group);
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if let Err(e) = result {
                let why = format!(
                    "{} events not recorded in {}: {e}; their requests were refused",
                    events,
                    self.files.path().display()
                );
                eprintln!("ninedoor: {why}");
                shared.with_engine(|engine| engine.note_unrecorded(&why));
            }
            let mut replies = Vec::with_capacity(group.len());
            for (b, strict) in group.iter_mut().zip(strict) {
                let answer = match result {
                    Err(e) if strict => Err(e),
                    Err(_) => {
                        let room = MAX_GROUP_EVENTS.saturating_sub(self.backlog.len());
                        let n = b.lines.len().min(room);
                        self.backlog.extend(b.lines.drain(..n));
                        Ok(0)
                    }
                    Ok(()) => Ok(0),
                };
                if let Some(token) = b.release {
                    replies.push((token, Completion::Write(answer)));
                }
            }
            // One lock of the engine for the whole group's replies.
            released = replies.len();
            shared.complete_all(replies);
        }
    }

    /// Writes and flushes one group (and checkpoints when one is due).
    fn record(&mut self, group: &mut [Batch]) -> Result<(), FsError> {
        let mut bytes = self.backlog.concat().into_bytes();
        for b in group.iter() {
            for l in &b.lines {
                bytes.extend_from_slice(l.as_bytes());
            }
        }
        for change in group.iter_mut().filter_map(|b| b.state.take()) {
            match self.unstored.as_mut() {
                Some(u) => u.then(change),
                None => self.unstored = Some(change),
            }
        }
        let start = self.files.append(&bytes).map_err(|e| errno_of(&e))?;
        let journal = match &self.unstored {
            Some(state) => match self.db.append(state) {
                Ok(at) => Some(at),
                Err(e) => {
                    eprintln!("ninedoor: state {}: {}", self.db.path().display(), e.why);
                    let _ = self.files.cut(start);
                    return Err(e.errno);
                }
            },
            None => None,
        };
        let (files, db) = (&mut self.files, &mut self.db);
        let (logged, stored) = match journal {
            Some(_) => std::thread::scope(|s| {
                let log = s.spawn(|| files.sync());
                let stored = db.sync();
                let logged = log
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("log flush thread failed")));
                (logged, stored)
            }),
            None => (files.sync(), Ok(())),
        };
        let failed = match (logged, stored) {
            (Ok(()), Ok(())) => None,
            (Err(e), _) => Some(errno_of(&e)),
            (Ok(()), Err(e)) => {
                eprintln!("ninedoor: state {}: {}", self.db.path().display(), e.why);
                Some(e.errno)
            }
        };
        if let Some(errno) = failed {
            let _ = self.files.cut(start);
            if let Some(at) = journal {
                let _ = self.db.cut(at);
            }
            return Err(errno);
        }
        self.unstored = None;
        self.backlog.clear();
        if self.db.checkpoint_due()
            && let Err(e) = self.db.checkpoint()
        {
            // The journal still holds every change: nothing is lost, the
            // next group tries again.
            eprintln!(
                "ninedoor: checkpoint of {}: {}",
                self.db.path().display(),
                e.why
            );
        }
        Ok(())
    }
}

/// The sending side the engine holds.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<Batch>,
}

impl Recorder {
    /// A recorder and the receiver its writer takes.
    pub(crate) fn new() -> (Recorder, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel();
        (Recorder { tx }, rx)
    }

    /// Queues a batch; false if the writer is gone.
    pub(crate) fn send(&self, batch: Batch) -> bool {
        self.tx.send(batch).is_ok()
    }
}
