//! `/worker/<id>/telemetry`: a bounded append-only ring per worker, with
//! the worker's op budget. The ring keeps memory bounded however much a
//! worker writes; a reader that fell behind is told what it missed.

use crate::log::{self, Line, SharedLog, Who};
use crate::worker::RingUsage;
use alloc::vec::Vec;
use secure9p_core::{AppendLog, FsError, Handle, Io, IoCtx, Node, NodeAttr, NodeKind};

/// One worker's telemetry file.
#[derive(Debug)]
pub(crate) struct Telemetry {
    ring: AppendLog,
    /// Appends left (`None`: unlimited).
    ops_left: Option<u64>,
    /// Whether the exhaustion was logged (once, so a looping worker cannot
    /// flood the audit log).
    exhausted_logged: bool,
    log: SharedLog,
}

impl Telemetry {
    /// A ring of `capacity` bytes taking appends of at most `max_write`, with
    /// `ops` appends allowed.
    pub(crate) fn new(capacity: usize, max_write: usize, ops: Option<u64>, log: SharedLog) -> Self {
        Telemetry {
            ring: AppendLog::new(capacity, max_write),
            ops_left: ops,
            exhausted_logged: false,
            log,
        }
    }

    /// How full the ring is.
    pub(crate) fn usage(&self) -> RingUsage {
        RingUsage {
            held: self.ring.len(),
            capacity: self.ring.capacity(),
            end: self.ring.end(),
        }
    }
}

impl Node for Telemetry {
    fn kind(&self) -> NodeKind {
        NodeKind::Append
    }

    fn attr(&self) -> NodeAttr {
        self.ring.attr()
    }

    fn read(
        &mut self,
        ctx: &IoCtx<'_>,
        handle: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        self.ring.read(ctx, handle, offset, count, out)
    }

    fn write(&mut self, ctx: &IoCtx<'_>, handle: &mut Handle, offset: u64, data: &[u8]) -> Io<u32> {
        if self.ops_left == Some(0) {
            if !self.exhausted_logged {
                self.exhausted_logged = true;
                log::append(
                    &self.log,
                    Line::new(ctx.now, "budget-exhausted", Who::of(ctx.principal))
                        .field("path", ctx.path),
                );
            }
            return Io::Ready(Err(FsError::NoSpace));
        }
        let io = self.ring.write(ctx, handle, offset, data);
        if let (Io::Ready(Ok(_)), Some(left)) = (&io, self.ops_left.as_mut()) {
            *left = left.saturating_sub(1);
        }
        io
    }
}
