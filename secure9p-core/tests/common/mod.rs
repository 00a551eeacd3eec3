//! The in-memory harness the engine tests share: a `Client` engine and a
//! `Server` session joined by byte buffers, with time as a plain number. It
//! moves bytes and checks framing; it never interprets a reply for the test.
//!
//! Every reply the server emits is split into frames, each checked to be a
//! whole, well-formed reply within the session's msize; replies to requests
//! built by the client engine also pass through `Client::receive`, so the
//! tag matching of the client is exercised on every call.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use secure9p_core::codec::{
    self, DecodeConfig, Dialect, Fid, Frame, Header, LOpenFlags, Msg, MsgType, Qid, Tag, WalkNames,
};
use secure9p_core::{
    Audit, AuditEvent, AuditKind, Client, ClientError, Completion, FsError, Handle, Io, IoCtx,
    Node, NodeAttr, NodeKind, Op, Outcome, Role, Server, SessionError, SessionId, TicketId, Token,
};
use std::cell::{RefCell, RefMut};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// One reply frame, owned.
#[derive(Clone)]
pub struct Reply {
    bytes: Vec<u8>,
    cfg: DecodeConfig,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.msg())
    }
}

impl Reply {
    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The decoded reply (panics if the server sent a malformed frame).
    pub fn msg(&self) -> Msg<'_> {
        Frame::decode(&self.bytes, self.cfg)
            .expect("the server only sends well-formed frames")
            .msg
    }

    /// The reply's tag.
    pub fn tag(&self) -> Tag {
        Header::peek(&self.bytes).expect("whole frame").tag
    }

    /// The reply, or the error it carries.
    pub fn result(&self) -> Result<Msg<'_>, FsError> {
        match self.msg() {
            Msg::Rlerror(e) => Err(FsError::from_errno(e.ecode)),
            Msg::Rerror(e) => Err(FsError::from_message(e.ename)),
            m => Ok(m),
        }
    }

    /// The errno the reply carries; 0 for a success reply.
    pub fn errno(&self) -> u32 {
        match self.result() {
            Ok(_) => 0,
            Err(e) => e.errno(),
        }
    }

    /// The reply's message type.
    pub fn ty(&self) -> MsgType {
        self.msg().msg_type()
    }
}

/// Splits a server's output into whole frames, checking each is one.
pub fn split_frames(mut bytes: &[u8], cfg: DecodeConfig) -> Vec<Reply> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let h = Header::peek(bytes).expect("output starts with a frame header");
        let (frame, rest) = bytes.split_at(h.size as usize);
        let f = Frame::decode(frame, cfg).expect("output frame decodes");
        assert!(
            !f.msg.msg_type().is_request(),
            "server sent a request: {:?}",
            f.msg
        );
        frames.push(Reply {
            bytes: frame.to_vec(),
            cfg,
        });
        bytes = rest;
    }
    frames
}

/// Encodes `msg` under `tag`, whatever the message is (requests, replies,
/// oversized frames): the raw material of hostile-input tests.
pub fn raw_frame<'m>(tag: Tag, msg: impl Into<Msg<'m>>) -> Vec<u8> {
    let frame = Frame::new(tag, msg);
    let mut buf = vec![0u8; frame.encoded_len()];
    let n = frame.encode(&mut buf).expect("encodes");
    buf.truncate(n);
    buf
}

/// One client session of a (possibly shared) server.
pub struct Wire {
    server: Rc<RefCell<Server>>,
    /// The server session.
    pub sid: SessionId,
    /// The client engine.
    pub client: Client,
    /// The time passed to the server, unix seconds.
    pub now: u64,
}

impl Wire {
    /// A session of `server` whose client will propose `msize`; nothing sent yet.
    pub fn new(server: Server, msize: u32) -> Wire {
        let server = Rc::new(RefCell::new(server));
        let sid = server.borrow_mut().open_session();
        Wire {
            server,
            sid,
            client: Client::new(msize),
            now: 1_000,
        }
    }

    /// A session of `server` that has negotiated `dialect` at `msize`.
    pub fn connect(server: Server, msize: u32, dialect: Dialect) -> Wire {
        let mut w = Wire::new(server, msize);
        let (result, reply) = w.version(dialect);
        result.expect("version accepted");
        assert_eq!(reply.ty(), MsgType::Rversion);
        w
    }

    /// Another session of the same server, negotiated like `connect`.
    pub fn another(&self, msize: u32, dialect: Dialect) -> Wire {
        let sid = self.server.borrow_mut().open_session();
        let mut w = Wire {
            server: Rc::clone(&self.server),
            sid,
            client: Client::new(msize),
            now: self.now,
        };
        w.version(dialect).0.expect("version accepted");
        w
    }

    /// The server, for its own API (`complete`, `revoke`, the namespace).
    pub fn server(&self) -> RefMut<'_, Server> {
        self.server.borrow_mut()
    }

    /// How replies of this session are decoded now.
    pub fn cfg(&self) -> DecodeConfig {
        let s = self.server.borrow();
        DecodeConfig::new(
            s.dialect(self.sid).unwrap_or(Dialect::Linux),
            s.msize(self.sid).unwrap_or(u32::MAX),
        )
    }

    /// Feeds raw bytes to the session; returns the outcome and the frames
    /// emitted (not passed through the client engine).
    pub fn send_raw(&mut self, frame: &[u8]) -> Result<(Outcome, Vec<Reply>), SessionError> {
        let mut out = Vec::new();
        let outcome = self
            .server
            .borrow_mut()
            .handle(self.sid, frame, self.now, &mut out)?;
        if matches!(outcome, Outcome::Deferred { .. }) {
            assert!(out.is_empty(), "a deferred request emits nothing");
        }
        Ok((outcome, split_frames(&out, self.cfg())))
    }

    /// Sends a raw frame that must be answered at once by exactly one frame.
    pub fn call_raw(&mut self, frame: &[u8]) -> Reply {
        let (outcome, mut frames) = self.send_raw(frame).expect("session alive");
        assert_eq!(outcome, Outcome::Replied);
        assert_eq!(frames.len(), 1, "one reply per request");
        frames.remove(0)
    }

    /// Passes replies through the client engine (tag matching, type check).
    fn receive(&mut self, frames: &[Reply]) {
        for f in frames {
            self.client
                .receive(f.bytes())
                .expect("the client engine accepts the reply");
        }
    }

    /// Sends `msg` under a fresh client tag; returns the tag, the outcome
    /// and the frames emitted now.
    pub fn send<'m>(&mut self, msg: impl Into<Msg<'m>>) -> (Tag, Outcome, Vec<Reply>) {
        let mut req = Vec::new();
        let tag = self.client.request(msg, &mut req).expect("client encodes");
        let (outcome, frames) = self.send_raw(&req).expect("session alive");
        self.receive(&frames);
        (tag, outcome, frames)
    }

    /// Sends `msg` and returns its one, immediate reply.
    pub fn call<'m>(&mut self, msg: impl Into<Msg<'m>>) -> Reply {
        let (tag, outcome, mut frames) = self.send(msg);
        assert_eq!(outcome, Outcome::Replied, "answered at once");
        assert_eq!(frames.len(), 1, "exactly one reply");
        let reply = frames.remove(0);
        assert_eq!(reply.tag(), tag, "the reply carries the request's tag");
        reply
    }

    /// Sends `Tflush(oldtag)` through the client engine; returns the frames.
    pub fn flush(&mut self, oldtag: Tag) -> (Tag, Vec<Reply>) {
        let mut req = Vec::new();
        let tag = self.client.flush(oldtag, &mut req).expect("client encodes");
        let (outcome, frames) = self.send_raw(&req).expect("session alive");
        assert_eq!(outcome, Outcome::Replied);
        self.receive(&frames);
        (tag, frames)
    }

    /// Completes a deferred request; returns the session it answered and
    /// the frames emitted (passed through the client engine).
    pub fn complete(
        &mut self,
        token: Token,
        result: Completion,
    ) -> (Option<SessionId>, Vec<Reply>) {
        let mut out = Vec::new();
        let sid = self.server.borrow_mut().complete(token, result, &mut out);
        let frames = split_frames(&out, self.cfg());
        if sid == Some(self.sid) {
            self.receive(&frames);
        }
        (sid, frames)
    }

    /// `Tversion` for `dialect`: the client engine's verdict and the reply.
    pub fn version(&mut self, dialect: Dialect) -> (Result<(), ClientError>, Reply) {
        let mut req = Vec::new();
        self.client.version(dialect, &mut req).expect("encodes");
        let mut frames = self.send_raw(&req).expect("session alive").1;
        assert_eq!(frames.len(), 1);
        let reply = frames.remove(0);
        let verdict = self.client.receive(reply.bytes()).map(|_| ());
        (verdict, reply)
    }

    /// `Tattach` of `fid` without an auth fid, `aname` as given.
    pub fn attach(&mut self, fid: u32, aname: &str) -> Result<Qid, FsError> {
        self.attach_afid(fid, Fid::NOFID, aname)
    }

    /// `Tattach` of `fid` with auth fid `afid`.
    pub fn attach_afid(&mut self, fid: u32, afid: Fid, aname: &str) -> Result<Qid, FsError> {
        let n_uname = match self.client.dialect() {
            Dialect::Linux => Some(0),
            Dialect::Base => None,
        };
        let r = self.call(codec::Tattach {
            fid: Fid(fid),
            afid,
            uname: "tester",
            aname,
            n_uname,
        });
        match r.result()? {
            Msg::Rattach(a) => Ok(a.qid),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// `Twalk`; `Ok` holds the qids of a whole or partial walk.
    pub fn walk(&mut self, fid: u32, newfid: u32, names: &[&str]) -> Result<Vec<Qid>, FsError> {
        let r = self.call(codec::Twalk {
            fid: Fid(fid),
            newfid: Fid(newfid),
            wnames: WalkNames::new(names).expect("at most 16 names"),
        });
        match r.result()? {
            Msg::Rwalk(w) => Ok(w.wqids.iter().collect()),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// `Tlopen`.
    pub fn lopen(&mut self, fid: u32, flags: LOpenFlags) -> Result<Qid, FsError> {
        let r = self.call(codec::Tlopen {
            fid: Fid(fid),
            flags,
        });
        match r.result()? {
            Msg::Rlopen(o) => {
                assert_eq!(o.iounit, 0, "iounit 0: the client uses msize");
                Ok(o.qid)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// `Tread`, answered at once.
    pub fn read(&mut self, fid: u32, offset: u64, count: u32) -> Result<Vec<u8>, FsError> {
        let r = self.call(codec::Tread {
            fid: Fid(fid),
            offset,
            count,
        });
        match r.result()? {
            Msg::Rread(d) => Ok(d.data.to_vec()),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// `Twrite`, answered at once.
    pub fn write(&mut self, fid: u32, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let r = self.call(codec::Twrite {
            fid: Fid(fid),
            offset,
            data,
        });
        match r.result()? {
            Msg::Rwrite(w) => Ok(w.count),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// `Tclunk`.
    pub fn clunk(&mut self, fid: u32) -> Result<(), FsError> {
        let r = self.call(codec::Tclunk { fid: Fid(fid) });
        r.result()
            .map(|m| assert_eq!(m.msg_type(), MsgType::Rclunk))
    }

    /// `Tremove`.
    pub fn remove(&mut self, fid: u32) -> Result<(), FsError> {
        let r = self.call(codec::Tremove { fid: Fid(fid) });
        r.result()
            .map(|m| assert_eq!(m.msg_type(), MsgType::Rremove))
    }

    /// `Tgetattr` asking for the basic attributes; returns (qid, mode, size).
    pub fn getattr(&mut self, fid: u32) -> Result<(Qid, u32, u64), FsError> {
        let r = self.call(codec::Tgetattr {
            fid: Fid(fid),
            request_mask: codec::GetattrMask::BASIC,
        });
        match r.result()? {
            Msg::Rgetattr(a) => Ok((a.qid(), a.mode(), a.size())),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// One audit record, owned, with its Debug text kept to look for secrets in.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The ticket id the event names.
    pub ticket: Option<TicketId>,
    /// The role.
    pub role: Option<Role>,
    /// The subject.
    pub subject: String,
    /// For a denial: the operation, path and error.
    pub denied: Option<(Op, String, FsError)>,
    /// `format!("{:?}", event)` of the event as the engine gave it.
    pub debug: String,
}

/// An audit sink that keeps every event, shareable with the test.
#[derive(Debug, Clone, Default)]
pub struct AuditLog(Arc<Mutex<Vec<Recorded>>>);

impl AuditLog {
    /// The events so far.
    pub fn events(&self) -> Vec<Recorded> {
        self.0.lock().expect("not poisoned").clone()
    }

    /// Forgets the events so far.
    pub fn clear(&self) {
        self.0.lock().expect("not poisoned").clear();
    }

    /// The denials so far.
    pub fn denials(&self) -> Vec<Recorded> {
        self.events()
            .into_iter()
            .filter(|e| e.denied.is_some())
            .collect()
    }
}

impl Audit for AuditLog {
    fn record(&mut self, event: &AuditEvent<'_>) {
        let denied = match &event.kind {
            AuditKind::Denied { op, path, error } => Some((*op, path.to_string(), *error)),
            _ => None,
        };
        self.0.lock().expect("not poisoned").push(Recorded {
            ticket: event.ticket,
            role: event.role,
            subject: event.subject.to_string(),
            denied,
            debug: format!("{event:?}"),
        });
    }
}

/// A file whose reads and writes are always deferred, as a `/gpu` file
/// living on another host is: it records each token it was handed, each
/// cancellation and each clunk, for the test to inspect through
/// `Namespace::node_as`.
#[derive(Debug, Default)]
pub struct Slow {
    /// Tokens of the reads and writes deferred, in order.
    pub deferred: Vec<Token>,
    /// Tokens cancelled (flush, teardown, refusal), in order.
    pub cancelled: Vec<Token>,
    /// Open handles clunked.
    pub clunks: usize,
}

impl Node for Slow {
    fn kind(&self) -> NodeKind {
        NodeKind::File
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o644,
            ..NodeAttr::default()
        }
    }
    fn read(&mut self, ctx: &IoCtx<'_>, _: &mut Handle, _: u64, _: u32, _: &mut Vec<u8>) -> Io<()> {
        self.deferred.push(ctx.token);
        Io::Defer
    }
    fn write(&mut self, ctx: &IoCtx<'_>, _: &mut Handle, _: u64, _: &[u8]) -> Io<u32> {
        self.deferred.push(ctx.token);
        Io::Defer
    }
    fn clunk(&mut self, _: &mut Handle) {
        self.clunks += 1;
    }
    fn cancel(&mut self, token: Token) {
        self.cancelled.push(token);
    }
}
