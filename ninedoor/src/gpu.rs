//! `/gpu/<id>/…`: GPUs mirrored from a bridge host. `info` is served here
//! from the bridge's descriptor; the other files are forwarded: their nodes
//! park each read or write under the request's token and answer
//! `Io::Defer`, and the hive hands the request to the embedder as a
//! [`GpuRequest`] to send to the bridge and finish with
//! [`Hive::complete`](crate::Hive::complete). NineDoor enforces roles; the
//! bridge enforces leases and hardware policy.
//!
//! Every open of a forwarded file gets a number unique in the hive
//! ([`GpuOrigin::Fid`]), so an embedder can give each open its own fid on
//! the bridge (snapshots taken at open, the reply to a fid's last write)
//! and close it when the hive's fid is clunked ([`GpuClosed`]).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use gpu_contract::Access;
use secure9p_core::{FsError, Handle, Io, IoCtx, Node, NodeAttr, NodeKind, Role, TicketId, Token};
use spin::Mutex;

pub use gpu_contract::{GpuDescriptor, GpuFile};

/// The node kind of a forwarded file.
const fn kind(file: GpuFile) -> NodeKind {
    match file.access() {
        Access::Control => NodeKind::Control,
        Access::Append => NodeKind::Append,
        Access::ReadOnly => NodeKind::ReadOnly,
    }
}

/// What a forwarded request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuOp {
    /// Read at most `count` bytes at `offset`; complete with `Completion::Read`.
    Read {
        /// The offset.
        offset: u64,
        /// The most bytes to return (already capped to the session's msize).
        count: u32,
    },
    /// Write `data` at `offset`; complete with `Completion::Write`.
    Write {
        /// The offset (ignored by append-only `job`).
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
}

/// Where a forwarded request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuOrigin {
    /// A read or write through an open fid of the file. `open` is unique in
    /// the hive: every request of one open carries it, in the order the
    /// client sent them, until a [`GpuClosed`] with it says the fid was
    /// clunked. Give each open one fid on the bridge, so that what the
    /// bridge keeps per fid (a snapshot taken at open, the reply to the
    /// fid's last write) means the same through NineDoor.
    Fid {
        /// The open's number.
        open: u64,
    },
    /// A `/queen/ctl` command (`lease`, `release`) the hive runs on the
    /// bridge as the Queen: write `op`'s bytes through a fresh fid, read
    /// that fid's reply back, hand it to
    /// [`Hive::set_gpu_reply`](crate::Hive::set_gpu_reply), then complete
    /// the write as usual.
    Command,
}

/// An open of a forwarded file that was clunked (or whose session closed):
/// its bridge fid, if it has one, can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuClosed {
    /// The GPU's id.
    pub gpu: String,
    /// The file.
    pub file: GpuFile,
    /// The open, as in [`GpuOrigin::Fid`].
    pub open: u64,
}

/// A request for the bridge: forward it, then finish it with
/// [`Hive::complete`](crate::Hive::complete) and `token`.
///
/// The requester's claims (role, subject, scope, expiry, ticket id) come
/// with it, so a forwarder can act on the bridge as exactly that principal
/// (NineDoor's host side re-mints them as a bridge ticket) and the bridge
/// can enforce its leases by subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRequest {
    /// The completion token.
    pub token: Token,
    /// The GPU's id.
    pub gpu: String,
    /// The file.
    pub file: GpuFile,
    /// The operation.
    pub op: GpuOp,
    /// The requester's role.
    pub role: Role,
    /// The requester's subject (a worker id, `queen`).
    pub subject: String,
    /// The requester's ticket id.
    pub ticket: Option<TicketId>,
    /// The requester's ticket scope (a GPU worker's: its GPU's id).
    pub scope: String,
    /// When the requester's ticket expires, unix seconds.
    pub expires: Option<u64>,
    /// Which open it came through, or the hive's own command.
    pub origin: GpuOrigin,
}

/// The open numbers of every forwarded file and the opens clunked since the
/// embedder last asked, shared by the hive's GPU nodes.
#[derive(Debug, Default)]
pub(crate) struct GpuOpens {
    next: u64,
    closed: Vec<GpuClosed>,
}

/// [`GpuOpens`], shared.
pub(crate) type SharedOpens = Arc<Mutex<GpuOpens>>;

/// Takes the opens clunked since the last call.
pub(crate) fn take_closed(opens: &SharedOpens) -> Vec<GpuClosed> {
    core::mem::take(&mut opens.lock().closed)
}

/// A forwarded file's node.
#[derive(Debug)]
pub(crate) struct GpuNode {
    gpu: String,
    file: GpuFile,
    opens: SharedOpens,
    /// Opens that forwarded something: only their clunks are reported.
    forwarded: BTreeSet<u64>,
    pending: BTreeMap<Token, GpuRequest>,
}

/// The open number kept in a handle.
fn open_of(h: &Handle) -> Option<u64> {
    <[u8; 8]>::try_from(h.data.as_slice())
        .ok()
        .map(u64::from_le_bytes)
}

impl GpuNode {
    /// The node of `file` of GPU `gpu`.
    pub(crate) fn new(gpu: &str, file: GpuFile, opens: SharedOpens) -> Self {
        GpuNode {
            gpu: String::from(gpu),
            file,
            opens,
            forwarded: BTreeSet::new(),
            pending: BTreeMap::new(),
        }
    }

    /// Takes the request parked under `token`.
    pub(crate) fn take(&mut self, token: Token) -> Option<GpuRequest> {
        self.pending.remove(&token)
    }

    fn park(&mut self, ctx: &IoCtx<'_>, handle: &Handle, op: GpuOp) -> Io<()> {
        let Some(open) = open_of(handle) else {
            return Io::Ready(Err(FsError::BadFid));
        };
        self.forwarded.insert(open);
        let p = ctx.principal;
        self.pending.insert(
            ctx.token,
            GpuRequest {
                token: ctx.token,
                gpu: self.gpu.clone(),
                file: self.file,
                op,
                role: p.role,
                subject: p.subject.clone(),
                ticket: p.ticket,
                scope: p.scope.clone(),
                expires: p.expires,
                origin: GpuOrigin::Fid { open },
            },
        );
        Io::Defer
    }
}

impl Node for GpuNode {
    fn kind(&self) -> NodeKind {
        kind(self.file)
    }

    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: self.file.mode(),
            ..NodeAttr::default()
        }
    }

    fn open(&mut self, _: &IoCtx<'_>, handle: &mut Handle) -> Result<(), FsError> {
        let mut opens = self.opens.lock();
        let open = opens.next;
        opens.next = opens.next.wrapping_add(1);
        handle.data = Vec::from(open.to_le_bytes());
        Ok(())
    }

    fn read(
        &mut self,
        ctx: &IoCtx<'_>,
        handle: &mut Handle,
        offset: u64,
        count: u32,
        _: &mut Vec<u8>,
    ) -> Io<()> {
        self.park(ctx, handle, GpuOp::Read { offset, count })
    }

    fn write(&mut self, ctx: &IoCtx<'_>, handle: &mut Handle, offset: u64, data: &[u8]) -> Io<u32> {
        if self.file.read_only() {
            return Io::Ready(Err(FsError::AccessDenied));
        }
        let op = GpuOp::Write {
            offset,
            data: Vec::from(data),
        };
        match self.park(ctx, handle, op) {
            Io::Defer => Io::Defer,
            Io::Ready(r) => Io::Ready(r.map(|()| 0)),
        }
    }

    fn clunk(&mut self, handle: &mut Handle) {
        if let Some(open) = open_of(handle).filter(|o| self.forwarded.remove(o)) {
            self.opens.lock().closed.push(GpuClosed {
                gpu: self.gpu.clone(),
                file: self.file,
                open,
            });
        }
    }

    fn cancel(&mut self, token: Token) {
        self.pending.remove(&token);
    }
}

/// The `info` file's contents: the descriptor as one JSON line.
pub(crate) fn info_text(d: &GpuDescriptor) -> Vec<u8> {
    let mut text = serde_json::to_vec(d).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Whether a GPU's bridge link is up, shared by its `info` node and the
/// hive.
pub(crate) type Reachable = Arc<core::sync::atomic::AtomicBool>;

/// `/gpu/<id>/info`: NineDoor's copy of the bridge's descriptor (a
/// [`StaticFile`](secure9p_core::StaticFile)), readable while the GPU's
/// bridge link is up and `EHOSTUNREACH` while it is down (a GPU whose
/// bridge is gone is not there to describe).
pub(crate) struct InfoNode {
    file: secure9p_core::StaticFile,
    reachable: Reachable,
}

impl core::fmt::Debug for InfoNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InfoNode").finish_non_exhaustive()
    }
}

impl InfoNode {
    pub(crate) fn new(d: &GpuDescriptor, reachable: Reachable) -> Self {
        InfoNode {
            file: secure9p_core::StaticFile::new(info_text(d)),
            reachable,
        }
    }
}

impl Node for InfoNode {
    fn kind(&self) -> NodeKind {
        self.file.kind()
    }
    fn attr(&self) -> NodeAttr {
        self.file.attr()
    }
    fn read(
        &mut self,
        cx: &IoCtx<'_>,
        h: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        if !self.reachable.load(core::sync::atomic::Ordering::Acquire) {
            return Io::Ready(Err(FsError::Unreachable));
        }
        self.file.read(cx, h, offset, count, out)
    }
}
