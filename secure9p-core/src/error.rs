//! `FsError`: the one error of the engine and of every node. Each maps to a
//! Linux errno (for `Rlerror`) and to a Plan 9 style string (for `Rerror`).

/// A file-system error, as a client will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// `EPERM`: the operation is not permitted to this principal.
    #[error("operation not permitted")]
    NotPermitted,
    /// `ENOENT`: no such file.
    #[error("file does not exist")]
    NotFound,
    /// `EINTR`: the request was interrupted.
    #[error("interrupted")]
    Interrupted,
    /// `EIO`: an I/O error (a provider failed).
    #[error("i/o error")]
    Io,
    /// `EBADF`: the fid is unknown or in the wrong state.
    #[error("unknown fid")]
    BadFid,
    /// `EAGAIN`: try again (a table is momentarily full).
    #[error("resource temporarily unavailable")]
    Again,
    /// `ENOMEM`: a bounded table or buffer is exhausted.
    #[error("out of memory")]
    NoMemory,
    /// `EACCES`: permission denied.
    #[error("permission denied")]
    AccessDenied,
    /// `EBUSY`: the resource is busy.
    #[error("device or resource busy")]
    Busy,
    /// `EEXIST`: the file exists.
    #[error("file exists")]
    Exists,
    /// `ENOTDIR`: not a directory.
    #[error("not a directory")]
    NotDir,
    /// `EISDIR`: is a directory.
    #[error("is a directory")]
    IsDir,
    /// `EINVAL`: an invalid argument.
    #[error("invalid argument")]
    Invalid,
    /// `EMFILE`: the session's fid table is full.
    #[error("too many open fids")]
    TooManyFids,
    /// `EFBIG`: a write is larger than the file accepts.
    #[error("file too large")]
    TooBig,
    /// `ENOSPC`: no space left.
    #[error("no space left")]
    NoSpace,
    /// `ENAMETOOLONG`: a name is too long.
    #[error("name too long")]
    NameTooLong,
    /// `ENOTEMPTY`: the directory is not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// `EPROTO`: the request breaks the protocol.
    #[error("protocol error")]
    Protocol,
    /// `EBADMSG`: the request could not be decoded.
    #[error("bad message")]
    BadMessage,
    /// `EMSGSIZE`: the frame exceeds msize.
    #[error("message too long")]
    MessageTooLong,
    /// `EOPNOTSUPP`: the operation is not supported here.
    #[error("operation not supported")]
    NotSupported,
    /// `ETIMEDOUT`: a deferred operation timed out.
    #[error("timed out")]
    TimedOut,
    /// `ECANCELED`: the operation was cancelled.
    #[error("operation cancelled")]
    Cancelled,
    /// `EHOSTUNREACH`: the provider behind the file is unreachable.
    #[error("provider unreachable")]
    Unreachable,
    /// `EKEYREJECTED`: the ticket was refused.
    #[error("ticket rejected")]
    TicketRejected,
    /// `EKEYEXPIRED`: the ticket has expired.
    #[error("ticket expired")]
    TicketExpired,
    /// `EKEYREVOKED`: the ticket was revoked.
    #[error("ticket revoked")]
    TicketRevoked,
    /// `EXDEV`: a link or rename across file systems.
    #[error("cross-device link")]
    CrossDevice,
    /// `EROFS`: the file system is read-only.
    #[error("read-only file system")]
    ReadOnly,
    /// `EMLINK`: too many links.
    #[error("too many links")]
    TooManyLinks,
    /// `ERANGE`: a result does not fit the buffer asked for.
    #[error("result out of range")]
    Range,
    /// `ENOLCK`: no lock available (the lock table is full).
    #[error("no locks available")]
    NoLocks,
    /// `ELOOP`: too many symbolic links, or a symbolic link where none may be.
    #[error("too many levels of symbolic links")]
    Loop,
    /// `ENODATA`: no such extended attribute.
    #[error("no data available")]
    NoData,
    /// Any other errno, as a provider reported it.
    #[error("errno {0}")]
    Errno(u32),
}

impl FsError {
    /// The Linux errno of this error.
    pub const fn errno(self) -> u32 {
        match self {
            FsError::NotPermitted => 1,
            FsError::NotFound => 2,
            FsError::Interrupted => 4,
            FsError::Io => 5,
            FsError::BadFid => 9,
            FsError::Again => 11,
            FsError::NoMemory => 12,
            FsError::AccessDenied => 13,
            FsError::Busy => 16,
            FsError::Exists => 17,
            FsError::NotDir => 20,
            FsError::IsDir => 21,
            FsError::Invalid => 22,
            FsError::TooManyFids => 24,
            FsError::TooBig => 27,
            FsError::NoSpace => 28,
            FsError::NameTooLong => 36,
            FsError::NotEmpty => 39,
            FsError::Protocol => 71,
            FsError::BadMessage => 74,
            FsError::MessageTooLong => 90,
            FsError::NotSupported => 95,
            FsError::TimedOut => 110,
            FsError::Cancelled => 125,
            FsError::Unreachable => 113,
            FsError::TicketExpired => 127,
            FsError::TicketRevoked => 128,
            FsError::TicketRejected => 129,
            FsError::CrossDevice => 18,
            FsError::ReadOnly => 30,
            FsError::TooManyLinks => 31,
            FsError::Range => 34,
            FsError::NoLocks => 37,
            FsError::Loop => 40,
            FsError::NoData => 61,
            FsError::Errno(e) => e,
        }
    }

    /// The error an errno stands for (unknown numbers stay [`FsError::Errno`]).
    pub const fn from_errno(errno: u32) -> FsError {
        match errno {
            1 => FsError::NotPermitted,
            2 => FsError::NotFound,
            4 => FsError::Interrupted,
            5 => FsError::Io,
            9 => FsError::BadFid,
            11 => FsError::Again,
            12 => FsError::NoMemory,
            13 => FsError::AccessDenied,
            16 => FsError::Busy,
            17 => FsError::Exists,
            20 => FsError::NotDir,
            21 => FsError::IsDir,
            22 => FsError::Invalid,
            24 => FsError::TooManyFids,
            27 => FsError::TooBig,
            28 => FsError::NoSpace,
            36 => FsError::NameTooLong,
            39 => FsError::NotEmpty,
            71 => FsError::Protocol,
            74 => FsError::BadMessage,
            90 => FsError::MessageTooLong,
            95 => FsError::NotSupported,
            110 => FsError::TimedOut,
            113 => FsError::Unreachable,
            125 => FsError::Cancelled,
            127 => FsError::TicketExpired,
            128 => FsError::TicketRevoked,
            129 => FsError::TicketRejected,
            18 => FsError::CrossDevice,
            30 => FsError::ReadOnly,
            31 => FsError::TooManyLinks,
            34 => FsError::Range,
            37 => FsError::NoLocks,
            40 => FsError::Loop,
            61 => FsError::NoData,
            e => FsError::Errno(e),
        }
    }

    /// The error a 9P2000 `Rerror` string stands for (the inverse of
    /// [`FsError::message`]; unknown strings become [`FsError::Io`]).
    pub fn from_message(msg: &str) -> FsError {
        ALL.iter()
            .copied()
            .find(|e| e.message() == msg)
            .unwrap_or(FsError::Io)
    }

    /// The string sent in a 9P2000 `Rerror`.
    pub const fn message(self) -> &'static str {
        match self {
            FsError::NotPermitted => "operation not permitted",
            FsError::NotFound => "file does not exist",
            FsError::Interrupted => "interrupted",
            FsError::Io => "i/o error",
            FsError::BadFid => "unknown fid",
            FsError::Again => "resource temporarily unavailable",
            FsError::NoMemory => "out of memory",
            FsError::AccessDenied => "permission denied",
            FsError::Busy => "device or resource busy",
            FsError::Exists => "file exists",
            FsError::NotDir => "not a directory",
            FsError::IsDir => "is a directory",
            FsError::Invalid => "invalid argument",
            FsError::TooManyFids => "too many open fids",
            FsError::TooBig => "file too large",
            FsError::NoSpace => "no space left",
            FsError::NameTooLong => "name too long",
            FsError::NotEmpty => "directory not empty",
            FsError::Protocol => "protocol error",
            FsError::BadMessage => "bad message",
            FsError::MessageTooLong => "message too long",
            FsError::NotSupported => "operation not supported",
            FsError::TimedOut => "timed out",
            FsError::Cancelled => "operation cancelled",
            FsError::Unreachable => "provider unreachable",
            FsError::TicketRejected => "ticket rejected",
            FsError::TicketExpired => "ticket expired",
            FsError::TicketRevoked => "ticket revoked",
            FsError::CrossDevice => "cross-device link",
            FsError::ReadOnly => "read-only file system",
            FsError::TooManyLinks => "too many links",
            FsError::Range => "result out of range",
            FsError::NoLocks => "no locks available",
            FsError::Loop => "too many levels of symbolic links",
            FsError::NoData => "no data available",
            FsError::Errno(_) => "i/o error",
        }
    }
}

const ALL: [FsError; 35] = [
    FsError::NotPermitted,
    FsError::NotFound,
    FsError::Interrupted,
    FsError::Io,
    FsError::BadFid,
    FsError::Again,
    FsError::NoMemory,
    FsError::AccessDenied,
    FsError::Busy,
    FsError::Exists,
    FsError::NotDir,
    FsError::IsDir,
    FsError::Invalid,
    FsError::TooManyFids,
    FsError::TooBig,
    FsError::NoSpace,
    FsError::NameTooLong,
    FsError::NotEmpty,
    FsError::Protocol,
    FsError::BadMessage,
    FsError::MessageTooLong,
    FsError::NotSupported,
    FsError::TimedOut,
    FsError::Cancelled,
    FsError::Unreachable,
    FsError::TicketRejected,
    FsError::TicketExpired,
    FsError::TicketRevoked,
    FsError::CrossDevice,
    FsError::ReadOnly,
    FsError::TooManyLinks,
    FsError::Range,
    FsError::NoLocks,
    FsError::Loop,
    FsError::NoData,
];
