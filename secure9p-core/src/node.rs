//! The `Node` trait (what a file does), the `Handle` (the state of one open
//! fid) and `Io` (an answer now, or later). Directories belong to the
//! [`Namespace`](crate::Namespace); files are `Box<dyn Node>` inside it.
//!
//! A node never sees the wire: it gets the principal, the path, the time and
//! a completion [`Token`], and answers [`Io::Ready`] or [`Io::Defer`]. A
//! deferred operation is finished by the embedder with
//! [`Server::complete`](crate::Server::complete).

use crate::error::FsError;
use crate::role::Principal;
use alloc::vec::Vec;
use core::any::Any;

/// What kind of file a node is; the engine enforces the kind's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A plain file: reads and writes at offsets.
    File,
    /// Read-only: opening for write is refused with `EACCES`.
    ReadOnly,
    /// Append-only: the offset of a write is ignored and each write is atomic.
    Append,
    /// A control file: each write is a command; the write fails with the
    /// command's errno when refused; reads return the last reply of this fid.
    Control,
}

/// Attributes of a file node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeAttr {
    /// Permission bits (`0o644`...), without the file-type bits.
    pub mode: u32,
    /// Size in bytes (for an append-only ring, the absolute end offset).
    pub size: u64,
    /// Modification time, unix seconds.
    pub mtime: u64,
    /// Bumped on every change (the qid version).
    pub version: u32,
}

/// A completion token: names one deferred request across the whole server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub u64);

/// How a fid was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// Opened for reading.
    pub read: bool,
    /// Opened for writing.
    pub write: bool,
    /// Opened with truncate.
    pub truncate: bool,
}

/// The per-open state of a fid, owned by the engine and handed to the node
/// on every call. Clunk drops it; nothing survives into a reused fid number.
#[derive(Debug, Default)]
pub struct Handle {
    /// How the fid was opened.
    pub access: Access,
    /// Bytes the node keeps for this open (a generated snapshot, the last
    /// control reply).
    pub data: Vec<u8>,
    /// Added to the client's offset to get the node's absolute offset (an
    /// append-only ring uses it after telling a reader what it missed).
    pub skew: u64,
    /// Bytes this reader missed because a ring overwrote them.
    pub missed: u64,
}

/// The context of one operation.
#[derive(Debug, Clone, Copy)]
pub struct IoCtx<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// The absolute path of the file.
    pub path: &'a str,
    /// The time, unix seconds.
    pub now: u64,
    /// The token that completes this request if the node defers it.
    pub token: Token,
}

/// An answer now or later.
#[derive(Debug, PartialEq, Eq)]
pub enum Io<T> {
    /// The answer.
    Ready(Result<T, FsError>),
    /// The node will answer later through [`Server::complete`](crate::Server::complete)
    /// with the token of the [`IoCtx`].
    Defer,
}

/// A file. Implementations must be cheap and must not block: a slow answer
/// is deferred.
///
/// Nodes are `Sync` because reads may run on many threads at once: a node
/// that implements [`try_read`](Node::try_read) is read through `&self`
/// while the engine serves other sessions in parallel
/// ([`Server::handle_concurrent`](crate::Server::handle_concurrent)).
pub trait Node: Any + Send + Sync {
    /// The kind of file.
    fn kind(&self) -> NodeKind;

    /// Its attributes.
    fn attr(&self) -> NodeAttr;

    /// Called when a fid opens the file (after the engine's checks).
    fn open(&mut self, ctx: &IoCtx<'_>, handle: &mut Handle) -> Result<(), FsError> {
        let _ = (ctx, handle);
        Ok(())
    }

    /// Reads at most `count` bytes at `offset`, appending them to `out`.
    fn read(
        &mut self,
        ctx: &IoCtx<'_>,
        handle: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()>;

    /// Reads at most `count` bytes at `offset` as a shared slice of the
    /// node's own buffer, for a node that keeps its contents in
    /// [`Bytes`](bytes::Bytes) ([`MemFile`](crate::MemFile) does): the
    /// engine then sends the slice without copying it into a reply (asked
    /// only for reads of at least [`SHARE_MIN`](crate::SHARE_MIN) bytes).
    /// `None`, the default, has the engine call [`read`](Node::read).
    fn read_shared(
        &mut self,
        ctx: &IoCtx<'_>,
        handle: &mut Handle,
        offset: u64,
        count: u32,
    ) -> Option<Result<bytes::Bytes, FsError>> {
        let _ = (ctx, handle, offset, count);
        None
    }

    /// Reads like [`read`](Node::read), but through `&self`, for a node
    /// whose reads change nothing (not even the handle): the engine then
    /// serves the read beside other sessions' requests instead of taking
    /// the whole server for it. `None`, the default, means "not without
    /// exclusive access": nothing may have been appended to `out`, and the
    /// engine calls [`read`](Node::read) (or
    /// [`read_shared`](Node::read_shared)) instead. A read that would defer
    /// must answer `None`.
    fn try_read(
        &self,
        ctx: &IoCtx<'_>,
        handle: &Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        let _ = (ctx, handle, offset, count, out);
        None
    }

    /// [`read_shared`](Node::read_shared) through `&self` (see
    /// [`try_read`](Node::try_read)); asked first for reads of at least
    /// [`SHARE_MIN`](crate::SHARE_MIN) bytes. `None`, the default, goes on
    /// to [`try_read`](Node::try_read).
    fn try_read_shared(
        &self,
        ctx: &IoCtx<'_>,
        handle: &Handle,
        offset: u64,
        count: u32,
    ) -> Option<Result<bytes::Bytes, FsError>> {
        let _ = (ctx, handle, offset, count);
        None
    }

    /// Writes `data` at `offset` (ignored by append-only files); returns the
    /// bytes taken.
    fn write(&mut self, ctx: &IoCtx<'_>, handle: &mut Handle, offset: u64, data: &[u8]) -> Io<u32> {
        let _ = (ctx, handle, offset, data);
        Io::Ready(Err(FsError::AccessDenied))
    }

    /// Truncates or extends the file to `size` bytes (`Tsetattr` with a
    /// size); files that cannot change size refuse with `EPERM`.
    fn set_size(&mut self, size: u64, now: u64) -> Result<(), FsError> {
        let _ = (size, now);
        Err(FsError::NotPermitted)
    }

    /// Called when the fid is clunked or removed, or its session closes.
    fn clunk(&mut self, handle: &mut Handle) {
        let _ = handle;
    }

    /// A deferred request of this node was flushed or its session closed.
    fn cancel(&mut self, token: Token) {
        let _ = token;
    }
}

/// The part of `data` a read at `offset` for `count` bytes returns.
pub fn slice_at(data: &[u8], offset: u64, count: u32) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = start.saturating_add(count as usize).min(data.len());
    data.get(start..end).unwrap_or(&[])
}
