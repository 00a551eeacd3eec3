//! `BridgeError`: why the bridge refused a control command, a lease renewal
//! or a job. Each error names the value that was wrong, maps to one errno
//! (what the 9P write fails with) and to one reason token (what the status
//! and reply lines say after `ERR`).

use secure9p_core::FsError;

/// `EDQUOT` ("disk quota exceeded"): the closest errno to "over the lease's
/// cap", which is what Linux's `strerror` shows a shell user.
pub const EDQUOT: u32 = 122;

/// Why the bridge refused something. Messages never carry ticket text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The bytes are not valid UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
    /// A write was larger than the file takes.
    #[error("write of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The bytes written.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A control command was not understood.
    #[error("bad command: {0}")]
    BadCommand(String),
    /// A lease request or renewal was malformed or out of range.
    #[error("bad lease: {0}")]
    BadLease(String),
    /// A job descriptor broke the schema or a limit.
    #[error("bad job: {0}")]
    BadJob(String),
    /// The payload's SHA-256 differs from the declared `bytes_hash`.
    #[error("bytes_hash mismatch: declared {declared}, payload hashes to {actual}")]
    HashMismatch {
        /// The hash the job declared.
        declared: String,
        /// The hash of the bytes received.
        actual: String,
    },
    /// The payload's length differs from the declared `bytes_len`.
    #[error("bytes_len mismatch: declared {declared}, payload is {actual} bytes")]
    LengthMismatch {
        /// The length the job declared.
        declared: u64,
        /// The length of the bytes received.
        actual: u64,
    },
    /// A job asks for more than the lease grants.
    #[error("{what} {asked} exceeds the lease's cap of {cap}")]
    OverCap {
        /// `mem_mb` or `streams`.
        what: &'static str,
        /// What the job asked for.
        asked: u64,
        /// What the lease allows.
        cap: u64,
    },
    /// No lease is active on this GPU, or it has expired.
    #[error("no active lease on gpu {0}")]
    NoLease(String),
    /// The writer is not the holder of the active lease.
    #[error("{who} is not the lease holder ({holder})")]
    NotHolder {
        /// Who wrote.
        who: String,
        /// Who holds the lease.
        holder: String,
    },
    /// The GPU is leased to someone with equal or higher priority and the
    /// waiting list is full.
    #[error("gpu {gpu} is busy: {detail}")]
    Busy {
        /// The GPU.
        gpu: String,
        /// Why.
        detail: String,
    },
    /// A job with this id is already queued or running.
    #[error("job {0} is already queued or running")]
    DuplicateJob(String),
    /// The job queue is full.
    #[error("job queue of gpu {gpu} is full ({max} jobs)")]
    QueueFull {
        /// The GPU.
        gpu: String,
        /// The queue's capacity.
        max: usize,
    },
    /// A staged artefact named by a job does not exist.
    #[error("no staged artefact named {0}")]
    NoArtefact(String),
    /// The GPU is quarantined: it takes no lease until a re-probe passes.
    #[error("gpu {gpu} is quarantined ({reason})")]
    Quarantined {
        /// The GPU.
        gpu: String,
        /// Why.
        reason: String,
    },
    /// The change could not be recorded in the state directory (a full
    /// disk, a file size limit, a read-only file system), so it is not
    /// acknowledged.
    #[error("not recorded in the state directory: {why}")]
    NotRecorded {
        /// The errno the write failed with on disk.
        errno: FsError,
        /// What the database said.
        why: String,
    },
}

impl BridgeError {
    /// The errno a 9P write fails with.
    pub fn fs_error(&self) -> FsError {
        match self {
            BridgeError::NotText
            | BridgeError::BadCommand(_)
            | BridgeError::BadLease(_)
            | BridgeError::BadJob(_)
            | BridgeError::LengthMismatch { .. } => FsError::Invalid,
            BridgeError::TooLarge { .. } => FsError::TooBig,
            BridgeError::HashMismatch { .. } => FsError::BadMessage,
            BridgeError::OverCap { .. } => FsError::Errno(EDQUOT),
            BridgeError::NoLease(_) | BridgeError::NotHolder { .. } => FsError::NotPermitted,
            BridgeError::Busy { .. } => FsError::Busy,
            BridgeError::DuplicateJob(_) => FsError::Exists,
            BridgeError::QueueFull { .. } => FsError::Again,
            BridgeError::NoArtefact(_) => FsError::NotFound,
            BridgeError::Quarantined { .. } => FsError::Io,
            BridgeError::NotRecorded { errno, .. } => *errno,
        }
    }

    /// The reason token of reply lines (`ERR <REASON> …`).
    pub fn reason(&self) -> &'static str {
        match self {
            BridgeError::NotText => "ENCODING",
            BridgeError::TooLarge { .. } => "TOOLARGE",
            BridgeError::BadCommand(_) => "COMMAND",
            BridgeError::BadLease(_) => "LEASE",
            BridgeError::BadJob(_) => "SCHEMA",
            BridgeError::HashMismatch { .. } => "HASH",
            BridgeError::LengthMismatch { .. } => "LENGTH",
            BridgeError::OverCap { .. } => "CAP",
            BridgeError::NoLease(_) | BridgeError::NotHolder { .. } => "EPERM",
            BridgeError::Busy { .. } => "BUSY",
            BridgeError::DuplicateJob(_) => "DUPLICATE",
            BridgeError::QueueFull { .. } => "QUEUEFULL",
            BridgeError::NoArtefact(_) => "ARTEFACT",
            BridgeError::Quarantined { .. } => "QUARANTINED",
            BridgeError::NotRecorded { .. } => "UNRECORDED",
        }
    }

    /// The reply line a refused write leaves for its fid to read.
    pub fn reply_line(&self) -> String {
        format!("ERR {} {}\n", self.reason(), self)
    }
}
