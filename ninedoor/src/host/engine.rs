//! [`HiveEngine`]: the hive as a transport [`Engine`], and the hook that
//! sends `/gpu` requests to a GPU bridge. Everything here runs with the
//! engine locked, so it must never block: a bridge takes a request and
//! answers later through [`Shared::complete`](secure9p_transport::server::Shared::complete).

use crate::host::daemon::unix_now;
use crate::{GpuClosed, GpuRequest, Handled, Hive};
use secure9p_core::{Completion, FsError, Outcome, SessionError, SessionId, Token};
use secure9p_transport::server::Engine;

/// Where forwarded `/gpu/<id>/…` requests go.
///
/// Called with the engine locked: hand the request to a task (a channel
/// send) and return `None`, then finish it with
/// [`Shared::complete`](secure9p_transport::server::Shared::complete) when
/// the bridge answers; or return `Some` to answer at once.
pub trait GpuForward: Send + 'static {
    /// Takes one forwarded request.
    fn forward(&mut self, request: GpuRequest) -> Option<Completion>;

    /// The requests of a closed session (or a flushed one) that the bridge
    /// should drop; their answers would be discarded anyway.
    fn cancel(&mut self, tokens: &[Token]) {
        let _ = tokens;
    }

    /// Opens of forwarded files that were clunked: whatever the hook holds
    /// for them on the bridge (a fid) can go once their requests are done.
    fn closed(&mut self, closed: &[GpuClosed]) {
        let _ = closed;
    }
}

/// No bridge attached: every forwarded request fails at once with
/// `EHOSTUNREACH`, so a client never waits on a GPU that is not there.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBridge;

impl GpuForward for NoBridge {
    fn forward(&mut self, request: GpuRequest) -> Option<Completion> {
        Some(match request.op {
            crate::GpuOp::Read { .. } => Completion::Read(Err(FsError::Unreachable)),
            crate::GpuOp::Write { .. } => Completion::Write(Err(FsError::Unreachable)),
        })
    }
}

/// A [`Hive`] served by the transport's runners, with its GPU bridge hook.
pub struct HiveEngine {
    hive: Hive,
    bridge: Box<dyn GpuForward>,
}

impl std::fmt::Debug for HiveEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HiveEngine")
            .field("hive", &self.hive)
            .finish_non_exhaustive()
    }
}

impl HiveEngine {
    /// Serves `hive`, forwarding `/gpu` requests to `bridge`.
    pub fn new(hive: Hive, bridge: impl GpuForward) -> Self {
        HiveEngine {
            hive,
            bridge: Box::new(bridge),
        }
    }

    /// The hive.
    pub fn hive(&self) -> &Hive {
        &self.hive
    }

    /// The hive, to change (install GPUs, renew the Queen's ticket).
    pub fn hive_mut(&mut self) -> &mut Hive {
        &mut self.hive
    }

    /// Replaces the GPU bridge hook.
    pub fn set_bridge(&mut self, bridge: impl GpuForward) {
        self.bridge = Box::new(bridge);
    }

    /// Tells the hook which forwarded opens were clunked.
    fn report_closed(&mut self) {
        let closed = self.hive.take_gpu_closed();
        if !closed.is_empty() {
            self.bridge.closed(&closed);
        }
    }
}

impl Engine for HiveEngine {
    fn open_session(&mut self) -> SessionId {
        self.hive.open_session()
    }

    fn close_session(&mut self, sid: SessionId) {
        let tokens = self.hive.close_session(sid);
        if !tokens.is_empty() {
            self.bridge.cancel(&tokens);
        }
        self.report_closed();
    }

    fn handle(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, SessionError> {
        let handled = self.hive.handle(sid, frame, now, out);
        self.report_closed();
        let request = match handled? {
            Handled::Replied => return Ok(Outcome::Replied),
            Handled::Forward(request) => request,
        };
        let token = request.token;
        let ns = self.hive.server().namespace();
        let node = ns
            .resolve(&format!("/gpu/{}/{}", request.gpu, request.file.name()))
            .unwrap_or_else(|| ns.root());
        match self.bridge.forward(request) {
            Some(result) => {
                self.hive.complete(token, result, now, out);
                Ok(Outcome::Replied)
            }
            None => Ok(Outcome::Deferred { token, node }),
        }
    }

    fn complete(
        &mut self,
        token: Token,
        result: Completion,
        out: &mut Vec<u8>,
    ) -> Option<SessionId> {
        self.hive.complete(token, result, unix_now(), out)
    }

    fn msize(&self, sid: SessionId) -> u32 {
        self.hive
            .server()
            .msize(sid)
            .unwrap_or(self.hive.config().max_msize)
    }
}
