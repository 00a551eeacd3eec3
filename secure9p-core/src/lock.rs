//! POSIX advisory byte-range locks (`fcntl(F_SETLK)` semantics) for the
//! [`FsServer`](crate::FsServer) engine, which keeps them for every provider.
//!
//! A lock belongs to an owner (session, client id, process id) and covers
//! bytes `start..=end` of one file. An owner's locks never conflict with each
//! other: a new lock of an owner replaces what it already held over that
//! range (splitting and merging as `fcntl` does); unlocking a range may
//! split a lock in two. Two locks of different owners conflict when they
//! overlap and at least one is a write lock. Releasing an owner's locks on
//! a file (when a fid it locked through is clunked, as `close(2)` does)
//! removes them all. Memory is bounded: a table refuses new locks past its
//! cap with `ENOLCK`.

use crate::error::FsError;
use crate::server::SessionId;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Most locks one table holds (all files, all owners): bounds what clients
/// can make the server keep. `ENOLCK` beyond it.
pub const MAX_LOCKS: usize = 4096;

/// A lock's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockKind {
    /// Shared (`F_RDLCK`).
    Read,
    /// Exclusive (`F_WRLCK`).
    Write,
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockOwner {
    /// The session it came through.
    pub session: SessionId,
    /// The client's id string (`Tlock.client_id`).
    pub client: String,
    /// The client's process id.
    pub pid: u32,
}

/// One held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// Its holder.
    pub owner: LockOwner,
    /// Its kind.
    pub kind: LockKind,
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive; `u64::MAX` for "to the end of the file").
    pub end: u64,
}

/// The last byte of a `start`/`length` range (length 0: to the end).
pub fn range_end(start: u64, length: u64) -> u64 {
    if length == 0 {
        u64::MAX
    } else {
        start.saturating_add(length - 1)
    }
}

/// The locks of every file, keyed by the file's qid path.
#[derive(Debug, Default)]
pub struct LockTable {
    files: BTreeMap<u64, Vec<Lock>>,
    count: usize,
}

impl LockTable {
    /// An empty table.
    pub fn new() -> Self {
        LockTable::default()
    }

    /// Locks held in all.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no lock is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first lock of another owner on `file` that conflicts with a
    /// `kind` lock over `start..=end` (what `F_GETLK` reports).
    pub fn conflict(
        &self,
        file: u64,
        owner: &LockOwner,
        kind: LockKind,
        start: u64,
        end: u64,
    ) -> Option<&Lock> {
        self.files.get(&file)?.iter().find(|l| {
            l.owner != *owner
                && l.start <= end
                && start <= l.end
                && (kind == LockKind::Write || l.kind == LockKind::Write)
        })
    }

    /// Takes a lock (`kind` is `Some`) or unlocks (`None`) `start..=end` of
    /// `file` for `owner`. A conflict is `EAGAIN` and changes nothing.
    pub fn set(
        &mut self,
        file: u64,
        owner: &LockOwner,
        kind: Option<LockKind>,
        start: u64,
        end: u64,
    ) -> Result<(), FsError> {
        if end < start {
            return Err(FsError::Invalid);
        }
        if let Some(k) = kind
            && self.conflict(file, owner, k, start, end).is_some()
        {
            return Err(FsError::Again);
        }
        let locks = self.files.get(&file).map_or(&[][..], Vec::as_slice);
        let before = locks.len();
        // Cut the owner's locks out of the range, keeping what lies outside.
        let mut kept = Vec::with_capacity(locks.len() + 1);
        for l in locks {
            if l.owner != *owner || l.end < start || end < l.start {
                kept.push(l.clone());
                continue;
            }
            if l.start < start {
                kept.push(Lock {
                    end: start - 1,
                    ..l.clone()
                });
            }
            if end < l.end {
                kept.push(Lock {
                    start: end + 1,
                    ..l.clone()
                });
            }
        }
        if let Some(kind) = kind {
            // Merge with the owner's adjacent locks of the same kind.
            let (mut s, mut e) = (start, end);
            kept.retain(|l| {
                let adjacent = l.owner == *owner
                    && l.kind == kind
                    && (l.end.checked_add(1) == Some(s) || e.checked_add(1) == Some(l.start));
                if adjacent {
                    s = s.min(l.start);
                    e = e.max(l.end);
                }
                !adjacent
            });
            kept.push(Lock {
                owner: owner.clone(),
                kind,
                start: s,
                end: e,
            });
        }
        let after = kept.len();
        if after > before && self.count + (after - before) > MAX_LOCKS {
            return Err(FsError::NoLocks);
        }
        self.count = self.count + after - before;
        if kept.is_empty() {
            self.files.remove(&file);
        } else {
            self.files.insert(file, kept);
        }
        Ok(())
    }

    /// Drops every lock `owner` holds on `file`.
    pub fn release(&mut self, file: u64, owner: &LockOwner) {
        if let Some(locks) = self.files.get_mut(&file) {
            let before = locks.len();
            locks.retain(|l| l.owner != *owner);
            self.count -= before - locks.len();
            if locks.is_empty() {
                self.files.remove(&file);
            }
        }
    }

    /// Drops every lock taken through `session` (the session closed).
    pub fn release_session(&mut self, session: SessionId) {
        let mut removed = 0;
        self.files.retain(|_, locks| {
            let before = locks.len();
            locks.retain(|l| l.owner.session != session);
            removed += before - locks.len();
            !locks.is_empty()
        });
        self.count -= removed;
    }

    /// The locks on `file`, in no particular order.
    pub fn locks(&self, file: u64) -> &[Lock] {
        self.files.get(&file).map_or(&[], Vec::as_slice)
    }
}
