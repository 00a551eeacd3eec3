//! The files of `/gpu/<id>/` as `secure9p_core` nodes over a [`GpuBridge`].
//!
//! | file | kind | read | write |
//! |---|---|---|---|
//! | `info` | read-only | descriptor + live readings + health, JSON | — |
//! | `ctl` | control | the state line, then the last reply | one command; refused → errno, reply `ERR …` |
//! | `lease` | control | the lease and waiting list, JSON | a renewal |
//! | `job` | append-only | the last reply of this fid | one JSON job descriptor |
//! | `status` | read-only ring | job status lines, absolute offsets | — |
//! | `stats` | read-only | health, telemetry, lease usage, occupancy, counters, recent jobs, JSON | — |
//! | `result` | read-only | one JSON line per recent result, full output | — |
//!
//! Snapshots (`info`, `lease`, `stats`, `result`, `ctl`) are taken at open,
//! so one open reads one consistent view. A refused write leaves
//! `ERR <REASON> <why>` for the same fid to read, since an errno alone
//! cannot say which field was wrong.

use crate::bridge::GpuBridge;
use crate::log::Actor;
use gpu_contract::Access;
use secure9p_core::{
    FsError, Handle, Io, IoCtx, Namespace, Node, NodeAttr, NodeId, NodeKind, slice_at,
};

pub use gpu_contract::GpuFile;

/// The node kind of a file.
const fn kind(file: GpuFile) -> NodeKind {
    match file.access() {
        Access::Control => NodeKind::Control,
        Access::Append => NodeKind::Append,
        Access::ReadOnly => NodeKind::ReadOnly,
    }
}

/// One file of one GPU.
#[derive(Debug)]
pub struct GpuNode {
    bridge: GpuBridge,
    gpu: usize,
    file: GpuFile,
}

impl GpuNode {
    /// The node of `file` of GPU `gpu` (an index into the bridge's GPUs).
    pub fn new(bridge: GpuBridge, gpu: usize, file: GpuFile) -> Self {
        GpuNode { bridge, gpu, file }
    }

    fn snapshot(&self) -> Vec<u8> {
        let file = self.file;
        self.bridge
            .with_gpu(self.gpu, |g, cx| match file {
                GpuFile::Info => g.info_json(cx.source.kind()),
                GpuFile::Ctl => g.ctl_line(cx.now),
                GpuFile::Lease => g.lease_json(cx.now),
                GpuFile::Stats => g.stats_json(cx.now),
                GpuFile::Result => g.results_text(),
                GpuFile::Job | GpuFile::Status => String::new(),
            })
            .unwrap_or_default()
            .into_bytes()
    }
}

impl Node for GpuNode {
    fn kind(&self) -> NodeKind {
        kind(self.file)
    }

    fn attr(&self) -> NodeAttr {
        let mut attr = if self.file == GpuFile::Status {
            self.bridge
                .with_gpu(self.gpu, |g, _| g.status().attr())
                .unwrap_or_default()
        } else {
            NodeAttr::default()
        };
        attr.mode = self.file.mode();
        attr
    }

    fn open(&mut self, ctx: &IoCtx<'_>, handle: &mut Handle) -> Result<(), FsError> {
        self.bridge.seen(self.gpu, ctx.principal);
        handle.data = self.snapshot();
        Ok(())
    }

    fn read(
        &mut self,
        ctx: &IoCtx<'_>,
        handle: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        if self.file == GpuFile::Status {
            return self
                .bridge
                .with_gpu(self.gpu, |g, _| {
                    g.status().read(ctx, handle, offset, count, out)
                })
                .unwrap_or(Io::Ready(Err(FsError::NotFound)));
        }
        out.extend_from_slice(slice_at(&handle.data, offset, count));
        Io::Ready(Ok(()))
    }

    fn write(&mut self, ctx: &IoCtx<'_>, handle: &mut Handle, _: u64, data: &[u8]) -> Io<u32> {
        let actor = Actor::of(ctx.principal);
        let result = match self.file {
            GpuFile::Ctl => self.bridge.control_at(self.gpu, data, &actor),
            GpuFile::Lease => self.bridge.renew_at(self.gpu, data, &actor),
            GpuFile::Job => self.bridge.submit_at(self.gpu, data, &actor),
            GpuFile::Info | GpuFile::Status | GpuFile::Stats | GpuFile::Result => {
                return Io::Ready(Err(FsError::AccessDenied));
            }
        };
        match result {
            Ok(reply) => {
                handle.data = reply.into_bytes();
                Io::Ready(u32::try_from(data.len()).map_err(|_| FsError::TooBig))
            }
            Err(e) => {
                handle.data = e.reply_line().into_bytes();
                Io::Ready(Err(e.fs_error()))
            }
        }
    }
}

impl GpuBridge {
    /// Adds `<id>/{info,ctl,lease,job,status,stats,result}` for every GPU
    /// under directory `dir` of `ns`.
    pub fn install(&self, ns: &mut Namespace, dir: NodeId) -> Result<(), FsError> {
        for (index, desc) in self.descriptors().iter().enumerate() {
            let gpu_dir = ns.mkdir(dir, &desc.id, 0o755)?;
            for file in GpuFile::ALL {
                ns.add_file(
                    gpu_dir,
                    file.name(),
                    Box::new(GpuNode::new(self.clone(), index, file)),
                )?;
            }
        }
        Ok(())
    }

    /// A namespace holding `/gpu/<id>/…` for every GPU.
    pub fn namespace(&self) -> Result<Namespace, FsError> {
        let mut ns = Namespace::new();
        let root = ns.root();
        let gpu = ns.mkdir(root, "gpu", 0o755)?;
        self.install(&mut ns, gpu)?;
        Ok(ns)
    }
}
