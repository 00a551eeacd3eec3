//! `/gpu/<id>/…`: GPUs mirrored from a bridge host. `info` is served here
//! from the bridge's descriptor; the other files are forwarded: their nodes
//! park each read or write under the request's token and answer
//! `Io::Defer`, and the hive hands the request to the embedder as a
//! [`GpuRequest`] to send to the bridge and finish with
//! [`Hive::complete`](crate::Hive::complete). NineDoor enforces roles; the
//! bridge enforces leases and hardware policy.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use secure9p_core::{FsError, Handle, Io, IoCtx, Node, NodeAttr, NodeKind, Role, TicketId, Token};
use serde::{Deserialize, Serialize};

/// A GPU as the bridge describes it (`gpu-bridge-host --mock --list`
/// prints these); `info` shows it as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuDescriptor {
    /// The id used in paths and GPU workers' ticket scopes (`[A-Za-z0-9_-]`,
    /// at most 64 bytes).
    pub id: String,
    /// The product name.
    pub name: String,
    /// The GPU's UUID.
    pub uuid: String,
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// The driver version.
    pub driver_version: String,
    /// The CUDA runtime version.
    pub runtime_version: String,
}

/// A forwarded file of `/gpu/<id>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuFile {
    /// `ctl`: `LEASE`, `RELEASE`, `PRIORITY <n>`, `RESET`; a status line back.
    Ctl,
    /// `lease`: the active lease; writes renew it.
    Lease,
    /// `job`: append-only JSON job descriptors.
    Job,
    /// `status`: job status lines.
    Status,
    /// `stats`: utilisation and recent job summaries.
    Stats,
}

impl GpuFile {
    /// Every forwarded file, in the order they are listed.
    pub const ALL: [GpuFile; 5] = [
        GpuFile::Ctl,
        GpuFile::Lease,
        GpuFile::Job,
        GpuFile::Status,
        GpuFile::Stats,
    ];

    /// The file's name.
    pub const fn name(self) -> &'static str {
        match self {
            GpuFile::Ctl => "ctl",
            GpuFile::Lease => "lease",
            GpuFile::Job => "job",
            GpuFile::Status => "status",
            GpuFile::Stats => "stats",
        }
    }

    const fn kind(self) -> NodeKind {
        match self {
            GpuFile::Ctl | GpuFile::Lease => NodeKind::Control,
            GpuFile::Job => NodeKind::Append,
            GpuFile::Status | GpuFile::Stats => NodeKind::ReadOnly,
        }
    }

    const fn mode(self) -> u32 {
        match self {
            GpuFile::Ctl | GpuFile::Lease => 0o600,
            GpuFile::Job => 0o644,
            GpuFile::Status | GpuFile::Stats => 0o444,
        }
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

/// A request for the bridge: forward it, then finish it with
/// [`Hive::complete`](crate::Hive::complete) and `token`.
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
}

/// A forwarded file's node.
#[derive(Debug)]
pub(crate) struct GpuNode {
    gpu: String,
    file: GpuFile,
    pending: BTreeMap<Token, GpuRequest>,
}

impl GpuNode {
    /// The node of `file` of GPU `gpu`.
    pub(crate) fn new(gpu: &str, file: GpuFile) -> Self {
        GpuNode {
            gpu: String::from(gpu),
            file,
            pending: BTreeMap::new(),
        }
    }

    /// Takes the request parked under `token`.
    pub(crate) fn take(&mut self, token: Token) -> Option<GpuRequest> {
        self.pending.remove(&token)
    }

    fn park(&mut self, ctx: &IoCtx<'_>, op: GpuOp) {
        self.pending.insert(
            ctx.token,
            GpuRequest {
                token: ctx.token,
                gpu: self.gpu.clone(),
                file: self.file,
                op,
                role: ctx.principal.role,
                subject: ctx.principal.subject.clone(),
                ticket: ctx.principal.ticket,
            },
        );
    }
}

impl Node for GpuNode {
    fn kind(&self) -> NodeKind {
        self.file.kind()
    }

    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: self.file.mode(),
            ..NodeAttr::default()
        }
    }

    fn read(
        &mut self,
        ctx: &IoCtx<'_>,
        _: &mut Handle,
        offset: u64,
        count: u32,
        _: &mut Vec<u8>,
    ) -> Io<()> {
        self.park(ctx, GpuOp::Read { offset, count });
        Io::Defer
    }

    fn write(&mut self, ctx: &IoCtx<'_>, _: &mut Handle, offset: u64, data: &[u8]) -> Io<u32> {
        if matches!(self.file, GpuFile::Status | GpuFile::Stats) {
            return Io::Ready(Err(FsError::AccessDenied));
        }
        self.park(
            ctx,
            GpuOp::Write {
                offset,
                data: Vec::from(data),
            },
        );
        Io::Defer
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
