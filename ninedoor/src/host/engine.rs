//! [`HiveEngine`]: the hive as a transport [`Engine`], and the hook that
//! sends `/gpu` requests to a GPU bridge. Everything here runs with the
//! engine locked, so it must never block: a bridge takes a request and
//! answers later through [`Shared::complete`](secure9p_transport::server::Shared::complete).

use crate::host::daemon::unix_now;
use crate::host::durable::{Batch, Recorder};
use crate::{BridgeEvent, GpuClosed, GpuRequest, Handled, Hive};
use secure9p_core::{Completion, FsError, Outcome, SessionError, SessionId, Token};
use secure9p_transport::server::Engine;
use std::collections::{HashMap, VecDeque};

/// Tokens of held replies have this bit set, so they never meet the
/// engine's own (which count up from 1).
const HELD_TOKEN: u64 = 1 << 63;
/// `Rlerror`'s message type.
const RLERROR: u8 = 7;

/// Where forwarded `/gpu/<id>/…` requests go.
///
/// Called with the engine locked: hand the request to a task (a channel
/// send) and return `None`, then finish it with
/// [`Shared::complete`](secure9p_transport::server::Shared::complete) when
/// the bridge answers; or return `Some` to answer at once.
pub trait GpuForward: Send + Sync + 'static {
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

    /// Bridges added or removed through `/queen/ctl` (only once the hive
    /// was told [`Hive::allow_bridge_changes`]): start or stop their links.
    fn bridges_changed(&mut self, events: &[BridgeEvent]) {
        let _ = events;
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
    held: Option<Held>,
}

/// Replies held until what their requests logged is durable (a state
/// directory is in use): per session in order, so a connection never sees
/// a later reply (an `Rflush` among them) before an earlier one.
struct Held {
    recorder: Recorder,
    next: u64,
    queues: HashMap<SessionId, VecDeque<HeldReply>>,
    owners: HashMap<Token, SessionId>,
}

struct HeldReply {
    token: Option<Token>,
    bytes: Vec<u8>,
    done: Option<Result<(), FsError>>,
}

/// `reply` with its first frame replaced by an `Rlerror(e)` of the same
/// tag (the frames after it, if any, kept).
fn refused(reply: &[u8], e: FsError) -> Vec<u8> {
    let (Some(size), Some(tag)) = (reply.get(..4), reply.get(5..7)) else {
        return Vec::new();
    };
    let size = size
        .try_into()
        .map(u32::from_le_bytes)
        .map_or(reply.len(), |n| n as usize);
    let mut out = Vec::with_capacity(reply.len());
    out.extend_from_slice(&11u32.to_le_bytes());
    out.push(RLERROR);
    out.extend_from_slice(tag);
    out.extend_from_slice(&e.errno().to_le_bytes());
    out.extend_from_slice(reply.get(size..).unwrap_or(&[]));
    out
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
            held: None,
        }
    }

    /// Serves `hive` with a durable log: every reply whose request logged
    /// something is held until `recorder`'s writer has recorded it.
    pub(crate) fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.held = Some(Held {
            recorder,
            next: 0,
            queues: HashMap::new(),
            owners: HashMap::new(),
        });
        self
    }

    /// Queues what the hive logged (and its state, if it changed) on its
    /// own, outside any request, to be recorded.
    pub(crate) fn record_pending(&mut self) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        let lines = self.hive.take_journal();
        let state = self.hive.take_changes();
        if !lines.is_empty() || state.is_some() {
            held.recorder.send(Batch {
                lines,
                state,
                release: None,
            });
        }
    }

    /// Tells readers of `/log/queen.log` that a group was not recorded.
    pub(crate) fn note_unrecorded(&mut self, why: &str) {
        self.hive.note(unix_now(), "audit-unrecorded", why);
    }

    /// After a reply for `sid` was put in `out`: holds it back if its
    /// request logged something (until the writer recorded that) or if an
    /// earlier reply of the session is still held.
    fn hold(&mut self, sid: SessionId, out: &mut Vec<u8>) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        let lines = self.hive.take_journal();
        let state = self.hive.take_changes();
        let queue = held.queues.entry(sid).or_default();
        if lines.is_empty() && state.is_none() {
            if !queue.is_empty() {
                queue.push_back(HeldReply {
                    token: None,
                    bytes: std::mem::take(out),
                    done: Some(Ok(())),
                });
            }
            return;
        }
        let token = Token(HELD_TOKEN | held.next);
        held.next = held.next.wrapping_add(1) & !HELD_TOKEN;
        let sent = held.recorder.send(Batch {
            lines,
            state,
            release: Some(token),
        });
        queue.push_back(HeldReply {
            token: Some(token),
            bytes: std::mem::take(out),
            done: (!sent).then_some(Err(FsError::Io)),
        });
        held.owners.insert(token, sid);
        if !sent {
            release(queue, out);
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

    /// Hands the hook the bridges added or removed by the last request.
    fn report_bridges(&mut self) {
        let events = self.hive.take_bridge_events();
        if !events.is_empty() {
            self.bridge.bridges_changed(&events);
        }
    }

    /// Forwards what the hive asks of its bridges on its own (an "any GPU"
    /// lease asking its next candidate). One the hook answers at once is
    /// completed here, which may ask the next; each ask uses a candidate
    /// up, so this ends. Returns the session of a request it finished.
    fn forward_own(&mut self, now: u64, out: &mut Vec<u8>) -> Option<SessionId> {
        let mut finished = None;
        loop {
            let requests = self.hive.take_forwards();
            if requests.is_empty() {
                return finished;
            }
            for request in requests {
                let token = request.token;
                if let Some(result) = self.bridge.forward(request) {
                    finished = self.hive.complete(token, result, now, out).or(finished);
                }
            }
        }
    }

    /// Tells the hook which forwarded opens were clunked.
    fn report_closed(&mut self) {
        let closed = self.hive.take_gpu_closed();
        if !closed.is_empty() {
            self.bridge.closed(&closed);
        }
    }
}

/// Moves the held replies at the front of `queue` that are recorded (or
/// refused) to `out`, in order.
fn release(queue: &mut VecDeque<HeldReply>, out: &mut Vec<u8>) {
    while let Some(front) = queue.front() {
        let Some(done) = front.done else {
            break;
        };
        let Some(h) = queue.pop_front() else {
            break;
        };
        match done {
            Ok(()) => out.extend_from_slice(&h.bytes),
            Err(e) => out.extend_from_slice(&refused(&h.bytes, e)),
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
        if let Some(held) = self.held.as_mut() {
            held.queues.remove(&sid);
        }
        self.record_pending();
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
        self.report_bridges();
        let request = match handled {
            Ok(Handled::Replied) => {
                self.hold(sid, out);
                return Ok(Outcome::Replied);
            }
            Ok(Handled::Forward(request)) => request,
            Err(e) => {
                // The connection closes: what was logged is recorded
                // without a reply to wait for it.
                self.record_pending();
                return Err(e);
            }
        };
        let token = request.token;
        let ns = self.hive.server().namespace();
        let node = ns
            .resolve(&format!("/gpu/{}/{}", request.gpu, request.file.name()))
            .unwrap_or_else(|| ns.root());
        match self.bridge.forward(request) {
            Some(result) => {
                self.hive.complete(token, result, now, out);
                self.forward_own(now, out);
                self.hold(sid, out);
                Ok(Outcome::Replied)
            }
            None => {
                // Logged (the forward line) but not answered: recorded
                // before the bridge's answer can be.
                self.hold(sid, out);
                Ok(Outcome::Deferred { token, node })
            }
        }
    }

    fn complete(
        &mut self,
        token: Token,
        result: Completion,
        out: &mut Vec<u8>,
    ) -> Option<SessionId> {
        if token.0 & HELD_TOKEN != 0 {
            let held = self.held.as_mut()?;
            let sid = held.owners.remove(&token)?;
            let queue = held.queues.get_mut(&sid)?;
            let done = match result {
                Completion::Write(r) => r.map(|_| ()),
                Completion::Read(r) => r.map(|_| ()),
            };
            if let Some(h) = queue.iter_mut().find(|h| h.token == Some(token)) {
                h.done = Some(done);
            }
            release(queue, out);
            return Some(sid);
        }
        let now = unix_now();
        let sid = self.hive.complete(token, result, now, out);
        let sid = self.forward_own(now, out).or(sid);
        match sid {
            Some(sid) => self.hold(sid, out),
            None => self.record_pending(),
        }
        sid
    }

    fn msize(&self, sid: SessionId) -> u32 {
        self.hive
            .server()
            .msize(sid)
            .unwrap_or(self.hive.config().max_msize)
    }
}
