//! The `/queen/ctl` node. A command changes the namespace and the ticket
//! authority, which a node cannot reach from inside `Node::write`, so every
//! write is deferred: the node parks the bytes under the request's token and
//! the hive runs them (`Hive::handle`) and completes the write before it
//! returns, so the writer sees an ordinary synchronous answer.
//!
//! Each open of the file gets a serial number, kept in its handle; the reply
//! of the last write through that fid (a spawned worker's ticket, say) is
//! kept under the serial, readable through that fid only, and dropped when
//! the fid is clunked or the next write starts.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use secure9p_core::{
    FsError, Handle, Io, IoCtx, Node, NodeAttr, NodeKind, Principal, Token, slice_at,
};

/// A parked write.
#[derive(Debug)]
pub(crate) struct CtlRequest {
    /// The serial of the open fid it came through.
    pub(crate) open: u64,
    /// Who wrote it.
    pub(crate) principal: Principal,
    /// The bytes written.
    pub(crate) data: Vec<u8>,
}

/// The `/queen/ctl` node.
#[derive(Debug, Default)]
pub(crate) struct QueenCtl {
    next_open: u64,
    /// Open serial → the reply to its last write.
    replies: BTreeMap<u64, Vec<u8>>,
    pending: BTreeMap<Token, CtlRequest>,
    /// Writes taken by the hive and waiting for a GPU bridge.
    on_bridge: BTreeSet<Token>,
    /// Of those, the ones flushed (or whose session closed) meanwhile.
    cancelled: BTreeSet<Token>,
}

fn serial(h: &Handle) -> Option<u64> {
    <[u8; 8]>::try_from(h.data.as_slice())
        .ok()
        .map(u64::from_le_bytes)
}

impl QueenCtl {
    /// Takes the write parked under `token`.
    pub(crate) fn take(&mut self, token: Token) -> Option<CtlRequest> {
        self.pending.remove(&token)
    }

    /// Notes that the write taken under `token` waits for a bridge, so a
    /// flush meanwhile is remembered (see [`QueenCtl::was_cancelled`]).
    pub(crate) fn on_bridge(&mut self, token: Token) {
        self.on_bridge.insert(token);
    }

    /// Whether the bridge-bound write under `token` was flushed or its
    /// session closed; forgets it either way.
    pub(crate) fn was_cancelled(&mut self, token: Token) -> bool {
        self.on_bridge.remove(&token);
        self.cancelled.remove(&token)
    }

    /// Whether the bridge-bound write under `token` was flushed or its
    /// session closed (it stays remembered).
    pub(crate) fn is_cancelled(&self, token: Token) -> bool {
        self.cancelled.contains(&token)
    }

    /// Whether the fid with serial `open` is still open.
    pub(crate) fn is_open(&self, open: u64) -> bool {
        self.replies.contains_key(&open)
    }

    /// Sets the reply the fid with serial `open` reads next (if still open).
    pub(crate) fn set_reply(&mut self, open: u64, reply: Vec<u8>) {
        if let Some(slot) = self.replies.get_mut(&open) {
            *slot = reply;
        }
    }
}

impl Node for QueenCtl {
    fn kind(&self) -> NodeKind {
        NodeKind::Control
    }

    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o600,
            ..NodeAttr::default()
        }
    }

    fn open(&mut self, _: &IoCtx<'_>, handle: &mut Handle) -> Result<(), FsError> {
        let open = self.next_open;
        self.next_open = self.next_open.wrapping_add(1);
        handle.data = Vec::from(open.to_le_bytes());
        self.replies.insert(open, Vec::new());
        Ok(())
    }

    fn read(
        &mut self,
        _: &IoCtx<'_>,
        handle: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        let reply = serial(handle).and_then(|s| self.replies.get(&s));
        if let Some(reply) = reply {
            out.extend_from_slice(slice_at(reply, offset, count));
        }
        Io::Ready(Ok(()))
    }

    fn write(&mut self, ctx: &IoCtx<'_>, handle: &mut Handle, _: u64, data: &[u8]) -> Io<u32> {
        let Some(open) = serial(handle) else {
            return Io::Ready(Err(FsError::BadFid));
        };
        // A stale reply (an earlier ticket) must not outlive a new command.
        self.set_reply(open, Vec::new());
        self.pending.insert(
            ctx.token,
            CtlRequest {
                open,
                principal: ctx.principal.clone(),
                data: Vec::from(data),
            },
        );
        Io::Defer
    }

    fn clunk(&mut self, handle: &mut Handle) {
        if let Some(open) = serial(handle) {
            self.replies.remove(&open);
        }
    }

    fn cancel(&mut self, token: Token) {
        self.pending.remove(&token);
        if self.on_bridge.remove(&token) {
            self.cancelled.insert(token);
        }
    }
}
