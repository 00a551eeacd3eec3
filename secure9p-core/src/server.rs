//! The server engine: bytes of one request in, bytes of replies out, for many
//! sessions; no sockets, threads or clocks (time is an argument).
//!
//! Rules it keeps (see `SECURE9P.md`): `version` first, then `auth`/`attach`;
//! fids and in-flight tags bounded per session; a clunked or removed fid
//! loses all of its state; a deferred request is answered through
//! [`Server::complete`], and `Rflush` for it goes out only once it has been
//! dropped; closing a session cancels all of its pending work. Every policy
//! refusal and ticket event is audited. Nothing here panics on input.

use crate::audit::{Audit, AuditEvent, AuditKind, NoAudit};
use crate::config::{MAX_AUTH_WRITE, MIN_CLIENT_MSIZE, ServerConfig};
use crate::error::FsError;
use crate::namespace::{FIRST_CHILD_COOKIE, Namespace, NodeId};
use crate::node::{Access, Handle, Io, IoCtx, NodeKind, Token};
use crate::policy::{AccessPolicy, Op};
use crate::replies::{self, Replies, SHARE_MIN};
use crate::role::Principal;
use crate::ticket::{TicketAuthority, TicketId};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use secure9p_codec::{
    self as codec, CodecError, DecodeConfig, Dialect, DirEntry, DirEntryWriter, Fid, Frame,
    GetattrMask, Header, LOpenFlags, Msg, MsgType, Qid, QidType, RREAD_HEADER_LEN, Stat, StatRef,
    Tag, WalkQids,
};

/// Names one session of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The reply was appended to `out`.
    Replied,
    /// A node deferred the request; finish it with [`Server::complete`].
    Deferred {
        /// The completion token.
        token: Token,
        /// The node that deferred.
        node: NodeId,
    },
}

/// The result a deferred operation completes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Bytes read (at most the count asked for; extra bytes are dropped).
    Read(Result<Vec<u8>, FsError>),
    /// Bytes written.
    Write(Result<u32, FsError>),
}

/// Errors that end a session: the transport must close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No such session (closed, or never opened).
    #[error("unknown session")]
    UnknownSession,
    /// The bytes are not a frame at all (no readable header, or a size field
    /// that disagrees with the bytes given): framing is lost.
    #[error("framing lost: {0}")]
    Framing(CodecError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    AwaitVersion,
    Ready { dialect: Dialect, msize: u32 },
}

impl State {
    /// The dialect and msize requests are decoded with and answered in
    /// (9P2000.L and the server's cap before `version`).
    pub(crate) fn limits(self, max_msize: u32) -> (Dialect, u32) {
        match self {
            State::AwaitVersion => (Dialect::Linux, max_msize),
            State::Ready { dialect, msize } => (dialect, msize),
        }
    }
}

/// A fid of a session. Dropping it drops every piece of its state.
struct FidEntry {
    node: NodeId,
    /// The root this fid's attach landed in (`..` stops here).
    root: NodeId,
    /// Shared, so the read and write paths borrow it without copying.
    path: Arc<str>,
    principal: Arc<Principal>,
    open: Option<Handle>,
    auth: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingKind {
    Read { count: u32 },
    Write,
}

struct Pending {
    token: Token,
    node: NodeId,
    kind: PendingKind,
    /// The ticket the request was made under: revoking it cancels the request.
    ticket: Option<TicketId>,
}

struct Session {
    state: State,
    fids: BTreeMap<Fid, FidEntry>,
    /// Strict mode: every new fid number must exceed this.
    fid_high_water: Option<u32>,
    pending: BTreeMap<Tag, Pending>,
}

impl Session {
    fn new() -> Self {
        Session {
            state: State::AwaitVersion,
            fids: BTreeMap::new(),
            fid_high_water: None,
            pending: BTreeMap::new(),
        }
    }

    fn fid(&self, ctx: Ctx, fid: Fid) -> Result<&FidEntry, FsError> {
        let f = self.fids.get(&fid).ok_or(FsError::BadFid)?;
        if f.principal.expires.is_some_and(|exp| ctx.now >= exp) {
            return Err(FsError::TicketExpired);
        }
        Ok(f)
    }

    fn fid_mut(&mut self, ctx: Ctx, fid: Fid) -> Result<&mut FidEntry, FsError> {
        self.fid(ctx, fid)?;
        self.fids.get_mut(&fid).ok_or(FsError::BadFid)
    }

    /// Checks that `fid` may be bound to a new fid now.
    fn check_new_fid(&self, config: &ServerConfig, fid: Fid) -> Result<(), FsError> {
        // NOFID means "no fid" (Tattach.afid): binding it would make a fid
        // the protocol cannot name, and in strict mode would raise the
        // high-water mark to u32::MAX, refusing every later fid.
        if fid == Fid::NOFID || self.fids.contains_key(&fid) {
            return Err(FsError::BadFid);
        }
        if config.strict_fids && self.fid_high_water.is_some_and(|hw| fid.0 <= hw) {
            return Err(FsError::BadFid);
        }
        if self.fids.len() >= config.max_fids {
            return Err(FsError::TooManyFids);
        }
        Ok(())
    }

    fn bind_fid(&mut self, fid: Fid, entry: FidEntry) {
        self.fid_high_water = Some(self.fid_high_water.map_or(fid.0, |hw| hw.max(fid.0)));
        self.fids.insert(fid, entry);
    }

    /// `fid` and its open handle, if it was opened for reading (`write`:
    /// for writing).
    fn open_handle(
        &self,
        ctx: Ctx,
        fid: Fid,
        write: bool,
    ) -> Result<(&FidEntry, &Handle), FsError> {
        let f = self.fid(ctx, fid)?;
        match &f.open {
            Some(h) if (write && h.access.write) || (!write && h.access.read) => Ok((f, h)),
            _ => Err(FsError::BadFid),
        }
    }

    /// Takes the handle out of an open fid so the node can use it while the
    /// engine is borrowed; `put_handle` returns it.
    fn take_handle(
        &mut self,
        ctx: Ctx,
        fid: Fid,
        write: bool,
    ) -> Result<(NodeId, Arc<str>, Arc<Principal>, Handle), FsError> {
        self.open_handle(ctx, fid, write)?;
        let f = self.fids.get_mut(&fid).ok_or(FsError::BadFid)?;
        let h = f.open.take().ok_or(FsError::BadFid)?;
        Ok((f.node, f.path.clone(), f.principal.clone(), h))
    }

    fn put_handle(&mut self, fid: Fid, h: Handle) {
        if let Some(f) = self.fids.get_mut(&fid) {
            f.open = Some(h);
        }
    }
}

/// The parts of a server that requests served without exclusive access
/// read ([`Server::handle_concurrent`]): the tree and the policy. The
/// exclusive path answers these requests through the same functions, so
/// both answer alike.
#[derive(Clone, Copy)]
struct View<'a> {
    ns: &'a Namespace,
    policy: &'a dyn AccessPolicy,
}

/// A policy refusal met where the server was only viewed, for the audit
/// (which needs the server exclusively: a concurrent request that meets
/// one is handled again on the exclusive path, which records it).
struct Denial {
    who: Arc<Principal>,
    op: Op,
    path: String,
    error: FsError,
}

/// A sans-IO 9P2000.L / 9P2000 server over a [`Namespace`].
pub struct Server {
    ns: Namespace,
    policy: Box<dyn AccessPolicy>,
    audit: Box<dyn Audit>,
    tickets: Option<TicketAuthority>,
    config: ServerConfig,
    /// Each session behind its own lock, taken only by
    /// [`handle_concurrent`](Server::handle_concurrent) (`&self`); the
    /// `&mut self` paths reach a session without locking.
    sessions: BTreeMap<SessionId, spin::Mutex<Session>>,
    tokens: BTreeMap<Token, (SessionId, Tag)>,
    next_session: u64,
    next_token: u64,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("sessions", &self.sessions.len())
            .field("pending", &self.tokens.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where a reply goes and in which dialect.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    pub(crate) sid: SessionId,
    pub(crate) tag: Tag,
    pub(crate) dialect: Dialect,
    pub(crate) msize: u32,
    pub(crate) now: u64,
}

pub(crate) fn encode_into(out: &mut Vec<u8>, tag: Tag, msg: Msg<'_>) {
    // Appended in place, each byte written once; a frame that cannot be
    // encoded leaves `out` as it was.
    let _ = Frame { tag, msg }.encode_to(out);
}

pub(crate) fn error_msg(dialect: Dialect, e: FsError) -> Msg<'static> {
    match dialect {
        Dialect::Linux => Msg::Rlerror(codec::Rlerror { ecode: e.errno() }),
        Dialect::Base => Msg::Rerror(codec::Rerror { ename: e.message() }),
    }
}

pub(crate) fn reply_error(out: &mut Vec<u8>, ctx: Ctx, e: FsError) {
    encode_into(out, ctx.tag, error_msg(ctx.dialect, e));
}

pub(crate) fn codec_errno(e: CodecError) -> FsError {
    match e {
        CodecError::TooLarge { .. } => FsError::MessageTooLong,
        CodecError::UnknownType(_) => FsError::NotSupported,
        CodecError::TooManyWalkElements(_) => FsError::Invalid,
        _ => FsError::BadMessage,
    }
}

fn access_of_lopen(flags: LOpenFlags) -> Access {
    let flags = flags & LOpenFlags::SUPPORTED;
    Access {
        read: flags.reads(),
        write: matches!(flags.access_mode(), 1 | 2),
        truncate: flags.contains(LOpenFlags::TRUNC),
    }
}

fn access_of_open(mode: codec::OpenMode) -> Access {
    Access {
        read: mode.reads(),
        write: matches!(mode.access_mode(), 1 | 2),
        truncate: mode.contains(codec::OpenMode::TRUNC),
    }
}

fn join(path: &str, name: &str) -> String {
    let mut p = String::from(path.trim_end_matches('/'));
    p.push('/');
    p.push_str(name);
    p
}

fn parent_path(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => String::from("/"),
        Some((head, _)) => String::from(head),
    }
}

/// What a `Tversion` negotiates against the server's `max_msize`: the
/// dialect (`None`: answer "unknown") and the msize.
pub(crate) fn negotiate(v: &codec::Tversion<'_>, max_msize: u32) -> (Option<Dialect>, u32) {
    // version(5): the text before the first '.' names the protocol, so
    // "9P2000.u" is answered "9P2000" but "9P2000garbage" is unknown.
    let dialect = if v.version == "9P2000.L" {
        Some(Dialect::Linux)
    } else if v.version.split('.').next() == Some("9P2000") {
        Some(Dialect::Base)
    } else {
        None
    };
    let dialect = dialect.filter(|_| v.msize >= MIN_CLIENT_MSIZE);
    (dialect, v.msize.min(max_msize))
}

/// Ends an `Rread` whose data (at most `count` bytes of it kept) follows
/// the room left for its header at `start` of `out`.
pub(crate) fn finish_rread(
    out: &mut Vec<u8>,
    start: usize,
    tag: Tag,
    count: u32,
) -> Result<(), FsError> {
    out.truncate(start + RREAD_HEADER_LEN + count as usize);
    let len = out.len() - start - RREAD_HEADER_LEN;
    let header = codec::rread_header(tag, len).map_err(|_| FsError::Io)?;
    if let Some(dst) = out.get_mut(start..start + RREAD_HEADER_LEN) {
        dst.copy_from_slice(&header);
    }
    Ok(())
}

/// A request frame once its header and body are checked.
pub(crate) enum Request<'f> {
    /// Answered already: an error reply is in `out`.
    Answered,
    /// A `Tversion`, which resets the session.
    Version(Ctx, codec::Tversion<'f>),
    /// Any other request, to be dispatched.
    Msg(Ctx, Msg<'f>),
}

/// What the request checks read of a session, and where the two engines'
/// checks differ.
pub(crate) trait SessionState {
    /// Before or after `version`.
    fn state(&self) -> State;
    /// Whether a request with this tag is waiting for its reply.
    fn in_flight(&self, tag: Tag) -> bool;
    /// Whether the engine serves requests of a type: one it does not is
    /// `EOPNOTSUPP` before its body is decoded.
    fn serves(ty: MsgType) -> bool;
    /// Whether the engine's `handle_concurrent` may answer requests of a
    /// type (the others are declined before the frame is looked at).
    fn serves_now(ty: MsgType) -> bool;
    /// The errno of a body that does not decode.
    fn errno(e: CodecError) -> FsError;
}

impl SessionState for Session {
    fn state(&self) -> State {
        self.state
    }
    fn in_flight(&self, tag: Tag) -> bool {
        self.pending.contains_key(&tag)
    }
    fn serves(ty: MsgType) -> bool {
        Server::serves(ty)
    }
    fn serves_now(ty: MsgType) -> bool {
        View::serves_now(ty)
    }
    fn errno(e: CodecError) -> FsError {
        codec_errno(e)
    }
}

/// Checks a frame of session `s` the way every request is checked: framing,
/// a type the engine serves, a body the session's dialect decodes, a
/// request after `version`, a tag not in flight. What fails is answered in
/// `out` (or ends the session, for framing).
pub(crate) fn prepare<'f, S: SessionState>(
    s: &S,
    config: &ServerConfig,
    sid: SessionId,
    frame: &'f [u8],
    now: u64,
    out: &mut Vec<u8>,
) -> Result<Request<'f>, SessionError> {
    let state = s.state();
    let (dialect, msize) = state.limits(config.max_msize);
    let header = Header::peek(frame).map_err(SessionError::Framing)?;
    if header.size as usize != frame.len() {
        return Err(SessionError::Framing(CodecError::SizeMismatch {
            declared: header.size,
            actual: frame.len(),
        }));
    }
    let ctx = Ctx {
        sid,
        tag: header.tag,
        dialect,
        msize,
        now,
    };
    // A request this engine does not serve is EOPNOTSUPP whatever its
    // body: decoding it first would answer a body this dialect cannot
    // parse (the Linux client's `Twstat` fallback of `rename(2)`) with
    // EBADMSG, which `mv` reports as "Bad message".
    if let Some(ty) = MsgType::from_u8(header.ty)
        && ty.is_request()
        && !S::serves(ty)
        && state != State::AwaitVersion
    {
        reply_error(out, ctx, FsError::NotSupported);
        return Ok(Request::Answered);
    }
    let decoded = match Frame::decode(frame, DecodeConfig::new(dialect, msize)) {
        Ok(f) => f,
        Err(e) => {
            reply_error(out, ctx, S::errno(e));
            return Ok(Request::Answered);
        }
    };
    if !decoded.msg.msg_type().is_request() {
        reply_error(out, ctx, FsError::Protocol);
        return Ok(Request::Answered);
    }
    if let Msg::Tversion(v) = decoded.msg {
        return Ok(Request::Version(ctx, v));
    }
    if state == State::AwaitVersion {
        reply_error(out, ctx, FsError::Protocol);
        return Ok(Request::Answered);
    }
    if s.in_flight(ctx.tag) {
        reply_error(out, ctx, FsError::Invalid);
        return Ok(Request::Answered);
    }
    Ok(Request::Msg(ctx, decoded.msg))
}

/// Either engine's `handle_concurrent`: declines a type the engine does not
/// serve now or a session busy on another thread, checks the frame under
/// the session's lock, and hands the request to `answer`, which appends
/// its reply to `out` (`None`: declined, having appended nothing; an error
/// is answered in place of whatever it appended).
pub(crate) fn serve_concurrent<'f, S: SessionState>(
    sessions: &BTreeMap<SessionId, spin::Mutex<S>>,
    config: &ServerConfig,
    sid: SessionId,
    frame: &'f [u8],
    now: u64,
    out: &mut Replies,
    answer: impl FnOnce(&mut S, Ctx, Msg<'f>, &mut Replies) -> Option<Result<(), FsError>>,
) -> Option<Result<Outcome, SessionError>> {
    let ty = MsgType::from_u8(*frame.get(4)?)?;
    if !S::serves_now(ty) {
        return None;
    }
    let Some(session) = sessions.get(&sid) else {
        return Some(Err(SessionError::UnknownSession));
    };
    let mut s = session.try_lock()?;
    let start = out.len();
    let (ctx, msg) = match prepare(&*s, config, sid, frame, now, out.buf()) {
        Err(e) => return Some(Err(e)),
        Ok(Request::Answered) => return Some(Ok(Outcome::Replied)),
        Ok(Request::Version(..)) => return None,
        Ok(Request::Msg(ctx, msg)) => (ctx, msg),
    };
    if let Err(e) = answer(&mut s, ctx, msg, out)? {
        out.truncate(start);
        reply_error(out.buf(), ctx, e);
    }
    Some(Ok(Outcome::Replied))
}

/// `S_IFDIR` and `S_IFREG` of `stat(2)`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
/// `d_type` values of directory entries.
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;
/// The magic `statfs(2)` reports for a 9P mount.
const V9FS_MAGIC: u32 = 0x0102_1997;
/// This server's one `Rstatfs`: no blocks or inodes to count, names of at
/// most the namespace's limit.
const STATFS: codec::Rstatfs = codec::Rstatfs::new()
    .with_ty(V9FS_MAGIC)
    .with_bsize(4096)
    .with_namelen(crate::namespace::MAX_NAME_LEN as u32);

impl Server {
    /// A server over `ns`, checking every operation with `policy`.
    pub fn new(ns: Namespace, policy: impl AccessPolicy + 'static, config: ServerConfig) -> Self {
        Server {
            ns,
            policy: Box::new(policy),
            audit: Box::new(NoAudit),
            tickets: None,
            config,
            sessions: BTreeMap::new(),
            tokens: BTreeMap::new(),
            next_session: 1,
            next_token: 1,
        }
    }

    /// Sends audit records to `audit`.
    pub fn with_audit(mut self, audit: impl Audit + 'static) -> Self {
        self.audit = Box::new(audit);
        self
    }

    /// Verifies tickets with `tickets`.
    pub fn with_tickets(mut self, tickets: TicketAuthority) -> Self {
        self.tickets = Some(tickets);
        self
    }

    /// The tree served.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// The tree served, to add or remove nodes while serving.
    pub fn namespace_mut(&mut self) -> &mut Namespace {
        &mut self.ns
    }

    /// The ticket authority, if any.
    pub fn tickets(&self) -> Option<&TicketAuthority> {
        self.tickets.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Opens a session (one per connection).
    pub fn open_session(&mut self) -> SessionId {
        let sid = SessionId(self.next_session);
        self.next_session += 1;
        self.sessions.insert(sid, spin::Mutex::new(Session::new()));
        sid
    }

    /// The msize negotiated by a session (the server's cap before `version`).
    pub fn msize(&self, sid: SessionId) -> Option<u32> {
        match self.sessions.get(&sid)?.lock().state {
            State::AwaitVersion => Some(self.config.max_msize),
            State::Ready { msize, .. } => Some(msize),
        }
    }

    /// The dialect a session negotiated.
    pub fn dialect(&self, sid: SessionId) -> Option<Dialect> {
        match self.sessions.get(&sid)?.lock().state {
            State::AwaitVersion => None,
            State::Ready { dialect, .. } => Some(dialect),
        }
    }

    /// Fids a session holds.
    pub fn fid_count(&self, sid: SessionId) -> usize {
        self.sessions.get(&sid).map_or(0, |s| s.lock().fids.len())
    }

    /// Deferred requests a session has in flight.
    pub fn pending_count(&self, sid: SessionId) -> usize {
        self.sessions
            .get(&sid)
            .map_or(0, |s| s.lock().pending.len())
    }

    /// Closes a session: cancels its pending work (each node hears
    /// [`Node::cancel`](crate::Node::cancel)) and clunks its fids. Returns the
    /// cancelled tokens.
    pub fn close_session(&mut self, sid: SessionId) -> Vec<Token> {
        let Some(session) = self.sessions.remove(&sid) else {
            return Vec::new();
        };
        self.drop_session_state(&mut session.into_inner())
    }

    fn drop_session_state(&mut self, session: &mut Session) -> Vec<Token> {
        let mut cancelled = Vec::new();
        for (_, p) in core::mem::take(&mut session.pending) {
            self.tokens.remove(&p.token);
            if let Some(n) = self.ns.node_mut(p.node) {
                n.cancel(p.token);
            }
            cancelled.push(p.token);
        }
        for (_, fid) in core::mem::take(&mut session.fids) {
            self.release_fid(fid);
        }
        cancelled
    }

    fn release_fid(&mut self, mut fid: FidEntry) {
        if let (Some(h), Some(n)) = (fid.open.as_mut(), self.ns.node_mut(fid.node)) {
            n.clunk(h);
        }
    }

    /// Revokes a ticket: it never verifies again, and every fid opened under
    /// it, in every session, is closed. Returns how many fids were closed.
    pub fn revoke(&mut self, id: TicketId, now: u64) -> usize {
        if let Some(t) = self.tickets.as_mut() {
            t.revoke(id);
        }
        let mut closed = Vec::new();
        let mut cancelled = Vec::new();
        for session in self.sessions.values_mut() {
            let session = session.get_mut();
            // Deferred requests made under the ticket are dropped too: no
            // reply goes out for them after the revocation.
            session.pending.retain(|_, p| {
                let keep = p.ticket != Some(id);
                if !keep {
                    cancelled.push((p.token, p.node));
                }
                keep
            });
            let doomed: Vec<Fid> = session
                .fids
                .iter()
                .filter(|(_, f)| f.principal.ticket == Some(id))
                .map(|(k, _)| *k)
                .collect();
            for k in doomed {
                if let Some(f) = session.fids.remove(&k) {
                    closed.push(f);
                }
            }
        }
        let n = closed.len();
        for (token, node) in cancelled {
            self.tokens.remove(&token);
            if let Some(node) = self.ns.node_mut(node) {
                node.cancel(token);
            }
        }
        for f in closed {
            self.release_fid(f);
        }
        self.audit.record(&AuditEvent {
            at: now,
            role: None,
            subject: "",
            ticket: Some(id),
            kind: AuditKind::TicketRevoked { fids: n },
        });
        n
    }

    /// Handles one request frame of session `sid` at time `now`, appending the
    /// reply (if any is due now) to `out`. A payload a node shares
    /// ([`Node::read_shared`](crate::Node::read_shared)) is copied into
    /// `out`; the runners use [`handle_replies`](Server::handle_replies) to
    /// send it without that copy.
    pub fn handle(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, SessionError> {
        replies::into_vec(out, |r| self.handle_replies(sid, frame, now, r))
    }

    /// [`handle`](Server::handle) into [`Replies`]: a large read a node
    /// shares leaves its payload as the replies' tail, uncopied.
    pub fn handle_replies(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Result<Outcome, SessionError> {
        let (_, config, s) = self.split(sid).map_err(|_| SessionError::UnknownSession)?;
        let (ctx, msg) = match prepare(s, config, sid, frame, now, out.buf())? {
            Request::Answered => return Ok(Outcome::Replied),
            Request::Version(ctx, v) => {
                self.version(ctx, v, out.buf());
                return Ok(Outcome::Replied);
            }
            Request::Msg(ctx, msg) => (ctx, msg),
        };
        let start = out.len();
        // A read gets the replies themselves (its payload may be their
        // tail); `dispatch` answers every other request into the buffer.
        let result = match msg {
            Msg::Tread(m) => self.read(ctx, m.fid, m.offset, m.count, out),
            msg => self.dispatch(ctx, msg, out.buf()),
        };
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                out.truncate(start);
                reply_error(out.buf(), ctx, e);
                Ok(Outcome::Replied)
            }
        }
    }

    /// Handles one request of session `sid` through `&self`, beside other
    /// sessions' requests on other threads, if it needs no more than a view
    /// of the server: `Tgetattr`, `Tstat`, `Tstatfs`, `Tfsync`, `Twalk`,
    /// `Treaddir`, `Tclunk` of a fid that is not open, `Tflush` of a tag
    /// with nothing pending, and `Tread` of a node that reads through
    /// [`Node::try_read`](crate::Node::try_read). The answer is the one
    /// [`handle_replies`](Server::handle_replies) would give.
    ///
    /// `None` means the request needs [`handle_replies`](Server::handle_replies)
    /// (`&mut self`): nothing was changed or appended to `out`. So does a
    /// walk that meets a policy refusal (its audit record needs the whole
    /// server), and a session another thread is handling now.
    pub fn handle_concurrent(
        &self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Option<Result<Outcome, SessionError>> {
        let view = self.view();
        serve_concurrent(
            &self.sessions,
            &self.config,
            sid,
            frame,
            now,
            out,
            |s, ctx, msg, out| view.dispatch_now(s, &self.config, ctx, msg, out),
        )
    }

    fn version(&mut self, ctx: Ctx, v: codec::Tversion<'_>, out: &mut Vec<u8>) {
        // A new version aborts everything the session had.
        if let Some(s) = self.sessions.remove(&ctx.sid) {
            self.drop_session_state(&mut s.into_inner());
        }
        let mut session = Session::new();
        let (dialect, msize) = negotiate(&v, self.config.max_msize);
        let reply = match dialect {
            Some(d) => {
                session.state = State::Ready { dialect: d, msize };
                codec::Rversion {
                    msize,
                    version: d.version(),
                }
            }
            _ => codec::Rversion {
                msize,
                version: "unknown",
            },
        };
        self.sessions.insert(ctx.sid, spin::Mutex::new(session));
        encode_into(out, ctx.tag, Msg::Rversion(reply));
    }

    fn session(&mut self, sid: SessionId) -> Result<&mut Session, FsError> {
        self.sessions
            .get_mut(&sid)
            .map(spin::Mutex::get_mut)
            .ok_or(FsError::Protocol)
    }

    fn view(&self) -> View<'_> {
        View {
            ns: &self.ns,
            policy: &*self.policy,
        }
    }

    /// The view, the configuration and session `sid`, borrowed at once.
    fn split(
        &mut self,
        sid: SessionId,
    ) -> Result<(View<'_>, &ServerConfig, &mut Session), FsError> {
        let s = self
            .sessions
            .get_mut(&sid)
            .map(spin::Mutex::get_mut)
            .ok_or(FsError::Protocol)?;
        let view = View {
            ns: &self.ns,
            policy: &*self.policy,
        };
        Ok((view, &self.config, s))
    }

    fn fid(&mut self, ctx: Ctx, fid: Fid) -> Result<&FidEntry, FsError> {
        self.session(ctx.sid)?.fid(ctx, fid)
    }

    fn fid_mut(&mut self, ctx: Ctx, fid: Fid) -> Result<&mut FidEntry, FsError> {
        self.session(ctx.sid)?.fid_mut(ctx, fid)
    }

    /// Checks that `fid` may be bound to a new fid now.
    fn check_new_fid(&mut self, ctx: Ctx, fid: Fid) -> Result<(), FsError> {
        let (_, config, s) = self.split(ctx.sid)?;
        s.check_new_fid(config, fid)
    }

    fn bind_fid(&mut self, ctx: Ctx, fid: Fid, entry: FidEntry) -> Result<(), FsError> {
        self.session(ctx.sid)?.bind_fid(fid, entry);
        Ok(())
    }

    /// Records that `who` was refused `op` on `path`; returns the error.
    fn deny(&mut self, ctx: Ctx, who: &Principal, op: Op, path: &str, error: FsError) -> FsError {
        self.audit.record(&AuditEvent {
            at: ctx.now,
            role: Some(who.role),
            subject: &who.subject,
            ticket: who.ticket,
            kind: AuditKind::Denied { op, path, error },
        });
        error
    }

    fn check(&mut self, ctx: Ctx, who: &Principal, op: Op, path: &str) -> Result<(), FsError> {
        self.policy
            .check(who, op, path)
            .map_err(|error| self.deny(ctx, who, op, path, error))
    }

    fn dispatch(&mut self, ctx: Ctx, msg: Msg<'_>, out: &mut Vec<u8>) -> Result<Outcome, FsError> {
        let replied = Ok(Outcome::Replied);
        match msg {
            Msg::Tauth(m) => self.auth(ctx, m, out).and(replied),
            Msg::Tattach(m) => self.attach(ctx, m, out).and(replied),
            Msg::Tflush(m) => {
                self.flush(ctx, m.oldtag);
                encode_into(out, ctx.tag, Msg::Rflush(codec::Rflush {}));
                replied
            }
            Msg::Twalk(m) => self.walk(ctx, m, out).and(replied),
            Msg::Tlopen(m) => {
                let qid = self.open(
                    ctx,
                    m.fid,
                    access_of_lopen(m.flags),
                    m.flags.contains(LOpenFlags::DIRECTORY),
                )?;
                encode_into(out, ctx.tag, Msg::Rlopen(codec::Rlopen { qid, iounit: 0 }));
                replied
            }
            Msg::Topen(m) => {
                let qid = self.open(ctx, m.fid, access_of_open(m.mode), false)?;
                encode_into(out, ctx.tag, Msg::Ropen(codec::Ropen { qid, iounit: 0 }));
                replied
            }
            Msg::Twrite(m) => self.write(ctx, m.fid, m.offset, m.data, out),
            Msg::Treaddir(m) => {
                let (view, _, s) = self.split(ctx.sid)?;
                view.readdir(s, ctx, m, out).and(replied)
            }
            Msg::Tgetattr(m) => {
                let (view, _, s) = self.split(ctx.sid)?;
                view.getattr(s, ctx, m, out).and(replied)
            }
            Msg::Tstat(m) => {
                let (view, _, s) = self.split(ctx.sid)?;
                view.stat(s, ctx, m.fid, out).and(replied)
            }
            Msg::Tstatfs(m) => {
                self.fid(ctx, m.fid)?;
                encode_into(out, ctx.tag, Msg::Rstatfs(&STATFS));
                replied
            }
            Msg::Tfsync(m) => {
                self.fid(ctx, m.fid)?;
                encode_into(out, ctx.tag, Msg::Rfsync(codec::Rfsync {}));
                replied
            }
            Msg::Tclunk(m) => {
                let entry = self
                    .session(ctx.sid)?
                    .fids
                    .remove(&m.fid)
                    .ok_or(FsError::BadFid)?;
                self.release_fid(entry);
                encode_into(out, ctx.tag, Msg::Rclunk(codec::Rclunk {}));
                replied
            }
            Msg::Tremove(m) => self.remove(ctx, m.fid, out).and(replied),
            Msg::Tsetattr(m) => self.setattr(ctx, m, out).and(replied),
            _ => Err(FsError::NotSupported),
        }
    }

    fn auth(&mut self, ctx: Ctx, m: codec::Tauth<'_>, out: &mut Vec<u8>) -> Result<(), FsError> {
        // No auth needed (no tickets, or the ticket rides in aname): ENOENT,
        // the answer diod's client library and Linux take as "attach directly".
        if self.tickets.is_none() || TicketAuthority::looks_like_ticket(m.aname) {
            return Err(FsError::NotFound);
        }
        self.check_new_fid(ctx, m.afid)?;
        let principal = Arc::new(Principal::anonymous(crate::Role::Anonymous, m.uname));
        let root = self.ns.root();
        self.bind_fid(
            ctx,
            m.afid,
            FidEntry {
                node: root,
                root,
                path: Arc::from(""),
                principal,
                open: None,
                auth: Some(Vec::new()),
            },
        )?;
        let aqid = Qid {
            ty: QidType::AUTH,
            version: 0,
            path: u64::from(m.afid.0),
        };
        encode_into(out, ctx.tag, Msg::Rauth(codec::Rauth { aqid }));
        Ok(())
    }

    fn verify_ticket(&mut self, ctx: Ctx, text: &str) -> Result<Principal, FsError> {
        let Some(tickets) = self.tickets.as_ref() else {
            return Err(FsError::AccessDenied);
        };
        match tickets.verify(text.trim(), ctx.now) {
            Ok(t) => {
                let p = Principal {
                    role: t.claims.role,
                    subject: t.claims.subject,
                    scope: t.claims.scope,
                    ticket: Some(t.id),
                    expires: Some(t.claims.expires),
                };
                self.audit.record(&AuditEvent {
                    at: ctx.now,
                    role: Some(p.role),
                    subject: &p.subject,
                    ticket: p.ticket,
                    kind: AuditKind::TicketAccepted,
                });
                Ok(p)
            }
            Err(e) => {
                let error = FsError::from(e);
                self.audit.record(&AuditEvent {
                    at: ctx.now,
                    role: None,
                    subject: "",
                    ticket: None,
                    kind: AuditKind::TicketRefused { error },
                });
                Err(error)
            }
        }
    }

    fn attach(
        &mut self,
        ctx: Ctx,
        m: codec::Tattach<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), FsError> {
        self.check_new_fid(ctx, m.fid)?;
        let principal = if m.afid != Fid::NOFID {
            let written = {
                let afid = self.fid(ctx, m.afid)?;
                afid.auth.clone().ok_or(FsError::BadFid)?
            };
            let text = core::str::from_utf8(&written).map_err(|_| FsError::TicketRejected)?;
            self.verify_ticket(ctx, text)?
        } else if TicketAuthority::looks_like_ticket(m.aname) {
            self.verify_ticket(ctx, m.aname)?
        } else if let Some(anon) = self.config.anonymous.clone() {
            anon
        } else {
            let error = FsError::AccessDenied;
            self.audit.record(&AuditEvent {
                at: ctx.now,
                role: None,
                subject: m.uname,
                ticket: None,
                kind: AuditKind::TicketRefused { error },
            });
            return Err(error);
        };
        // An aname that names an export lands there. On a server with
        // exports, any other path-like aname is refused as diod refuses an
        // unexported one; an empty aname, "/" or a ticket takes the role's root.
        let root = match self.ns.mount(m.aname) {
            Some(dir) => dir,
            None if self.ns.has_mounts()
                && !matches!(m.aname, "" | "/")
                && !TicketAuthority::looks_like_ticket(m.aname) =>
            {
                return Err(FsError::NotFound);
            }
            None => self.ns.root_for(principal.role),
        };
        let path: Arc<str> = self.ns.path_of(root).ok_or(FsError::NotFound)?.into();
        self.check(ctx, &principal, Op::Walk, &path)?;
        let qid = self.ns.qid(root).ok_or(FsError::NotFound)?;
        self.bind_fid(
            ctx,
            m.fid,
            FidEntry {
                node: root,
                root,
                path,
                principal: Arc::new(principal),
                open: None,
                auth: None,
            },
        )?;
        encode_into(out, ctx.tag, Msg::Rattach(codec::Rattach { qid }));
        Ok(())
    }

    fn flush(&mut self, ctx: Ctx, oldtag: Tag) {
        let Some(p) = self
            .sessions
            .get_mut(&ctx.sid)
            .and_then(|s| s.get_mut().pending.remove(&oldtag))
        else {
            return;
        };
        self.tokens.remove(&p.token);
        if let Some(n) = self.ns.node_mut(p.node) {
            n.cancel(p.token);
        }
    }

    fn walk(&mut self, ctx: Ctx, m: codec::Twalk<'_>, out: &mut Vec<u8>) -> Result<(), FsError> {
        let mut denied = None;
        let (view, config, s) = self.split(ctx.sid)?;
        let r = view.walk(s, config, ctx, m, out, &mut denied);
        if let Some(d) = denied {
            self.deny(ctx, &d.who, d.op, &d.path, d.error);
        }
        r
    }

    fn open(&mut self, ctx: Ctx, fid: Fid, access: Access, want_dir: bool) -> Result<Qid, FsError> {
        let (node, path, principal) = {
            let f = self.fid(ctx, fid)?;
            if f.open.is_some() || f.auth.is_some() {
                return Err(FsError::BadFid);
            }
            (f.node, f.path.clone(), f.principal.clone())
        };
        let qid = self.ns.qid(node).ok_or(FsError::NotFound)?;
        let mut handle = Handle {
            access,
            ..Handle::default()
        };
        if self.ns.is_dir(node) {
            if access.write || access.truncate {
                return Err(FsError::IsDir);
            }
            self.check(ctx, &principal, Op::Walk, &path)?;
        } else {
            if want_dir {
                return Err(FsError::NotDir);
            }
            let kind = self
                .ns
                .node(node)
                .map(|n| n.kind())
                .ok_or(FsError::NotFound)?;
            if kind == NodeKind::ReadOnly && (access.write || access.truncate) {
                return Err(self.deny(ctx, &principal, Op::Write, &path, FsError::AccessDenied));
            }
            if access.read {
                self.check(ctx, &principal, Op::Read, &path)?;
            }
            if access.write || access.truncate {
                self.check(ctx, &principal, Op::Write, &path)?;
            }
            let ioctx = IoCtx {
                principal: &principal,
                path: &path,
                now: ctx.now,
                token: Token(0),
            };
            self.ns
                .node_mut(node)
                .ok_or(FsError::NotFound)?
                .open(&ioctx, &mut handle)?;
        }
        self.fid_mut(ctx, fid)?.open = Some(handle);
        Ok(qid)
    }

    /// Records a request a node deferred under `token` (the token its
    /// `IoCtx` carried). If the session's in-flight table is full the node is
    /// told to cancel and the request fails with `EAGAIN`.
    fn defer(
        &mut self,
        ctx: Ctx,
        node: NodeId,
        token: Token,
        kind: PendingKind,
        ticket: Option<TicketId>,
    ) -> Result<Outcome, FsError> {
        self.next_token += 1;
        let max = self.config.max_inflight;
        let s = self.session(ctx.sid)?;
        if s.pending.len() >= max {
            if let Some(n) = self.ns.node_mut(node) {
                n.cancel(token);
            }
            return Err(FsError::Again);
        }
        s.pending.insert(
            ctx.tag,
            Pending {
                token,
                node,
                kind,
                ticket,
            },
        );
        self.tokens.insert(token, (ctx.sid, ctx.tag));
        Ok(Outcome::Deferred { token, node })
    }

    fn put_handle(&mut self, ctx: Ctx, fid: Fid, h: Handle) {
        if let Ok(s) = self.session(ctx.sid) {
            s.put_handle(fid, h);
        }
    }

    fn read(
        &mut self,
        ctx: Ctx,
        fid: Fid,
        offset: u64,
        count: u32,
        out: &mut Replies,
    ) -> Result<Outcome, FsError> {
        let (view, _, s) = self.split(ctx.sid)?;
        if let Some(r) = view.read_now(s, ctx, fid, offset, count, out) {
            return r.map(|()| Outcome::Replied);
        }
        // The node needs itself for this read (it may defer, or share its
        // contents first).
        let max = ctx.msize.saturating_sub(RREAD_HEADER_LEN as u32);
        let count = count.min(max);
        let (node, path, principal, mut h) = self.session(ctx.sid)?.take_handle(ctx, fid, false)?;
        let token = Token(self.next_token);
        let ioctx = IoCtx {
            principal: &principal,
            path: &path,
            now: ctx.now,
            token,
        };
        if count >= SHARE_MIN {
            let shared = match self.ns.node_mut(node) {
                Some(n) => n.read_shared(&ioctx, &mut h, offset, count),
                None => Some(Err(FsError::NotFound)),
            };
            if let Some(shared) = shared {
                self.put_handle(ctx, fid, h);
                out.push_rread(ctx.tag, shared?, count)?;
                return Ok(Outcome::Replied);
            }
        }
        let out = out.buf();
        let start = out.len();
        out.resize(start + RREAD_HEADER_LEN, 0);
        let io = match self.ns.node_mut(node) {
            Some(n) => n.read(&ioctx, &mut h, offset, count, out),
            None => Io::Ready(Err(FsError::NotFound)),
        };
        self.put_handle(ctx, fid, h);
        match io {
            Io::Ready(Ok(())) => {
                finish_rread(out, start, ctx.tag, count).map(|()| Outcome::Replied)
            }
            Io::Ready(Err(e)) => {
                out.truncate(start);
                Err(e)
            }
            Io::Defer => {
                out.truncate(start);
                self.defer(
                    ctx,
                    node,
                    token,
                    PendingKind::Read { count },
                    principal.ticket,
                )
            }
        }
    }

    fn write(
        &mut self,
        ctx: Ctx,
        fid: Fid,
        offset: u64,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Outcome, FsError> {
        if let Some(buf) = self.fid_mut(ctx, fid)?.auth.as_mut() {
            // An auth fid collects the ticket text the attach will verify.
            if buf.len() + data.len() > MAX_AUTH_WRITE {
                return Err(FsError::TooBig);
            }
            buf.extend_from_slice(data);
            let count = u32::try_from(data.len()).map_err(|_| FsError::TooBig)?;
            encode_into(out, ctx.tag, Msg::Rwrite(codec::Rwrite { count }));
            return Ok(Outcome::Replied);
        }
        let (node, path, principal, mut h) = self.session(ctx.sid)?.take_handle(ctx, fid, true)?;
        let token = Token(self.next_token);
        let ioctx = IoCtx {
            principal: &principal,
            path: &path,
            now: ctx.now,
            token,
        };
        let (io, kind) = match self.ns.node_mut(node) {
            Some(n) => (n.write(&ioctx, &mut h, offset, data), Some(n.kind())),
            None => (Io::Ready(Err(FsError::NotFound)), None),
        };
        self.put_handle(ctx, fid, h);
        if kind == Some(NodeKind::Control) {
            let result = match &io {
                Io::Ready(r) => r.map(|_| ()),
                Io::Defer => Ok(()),
            };
            self.audit.record(&AuditEvent {
                at: ctx.now,
                role: Some(principal.role),
                subject: &principal.subject,
                ticket: principal.ticket,
                kind: AuditKind::ControlWrite {
                    path: &path,
                    result,
                },
            });
        }
        match io {
            Io::Ready(Ok(count)) => {
                encode_into(out, ctx.tag, Msg::Rwrite(codec::Rwrite { count }));
                Ok(Outcome::Replied)
            }
            Io::Ready(Err(e)) => Err(e),
            Io::Defer => self.defer(ctx, node, token, PendingKind::Write, principal.ticket),
        }
    }

    /// Only sizes and times can be set. Times are accepted and ignored (the
    /// nodes keep their own); a size goes to the node's `set_size` after the
    /// policy's write check. Truncating an append-only or control file (what
    /// `echo >` asks) is a no-op.
    fn setattr(&mut self, ctx: Ctx, m: &codec::Tsetattr, out: &mut Vec<u8>) -> Result<(), FsError> {
        let (node, path, principal) = {
            let f = self.fid(ctx, m.fid())?;
            (f.node, f.path.clone(), f.principal.clone())
        };
        let settable = codec::SetattrValid::SIZE
            | codec::SetattrValid::ATIME
            | codec::SetattrValid::MTIME
            | codec::SetattrValid::CTIME
            | codec::SetattrValid::ATIME_SET
            | codec::SetattrValid::MTIME_SET;
        if !settable.contains(m.valid()) || self.ns.is_dir(node) {
            return Err(FsError::NotPermitted);
        }
        if m.valid().contains(codec::SetattrValid::SIZE) {
            self.check(ctx, &principal, Op::Write, &path)?;
            let n = self.ns.node_mut(node).ok_or(FsError::NotFound)?;
            match n.kind() {
                NodeKind::Append | NodeKind::Control => {}
                NodeKind::ReadOnly => return Err(FsError::AccessDenied),
                NodeKind::File => n.set_size(m.size(), ctx.now)?,
            }
        }
        encode_into(out, ctx.tag, Msg::Rsetattr(codec::Rsetattr {}));
        Ok(())
    }

    fn remove(&mut self, ctx: Ctx, fid: Fid, out: &mut Vec<u8>) -> Result<(), FsError> {
        // Remove clunks the fid whatever the outcome.
        let entry = self
            .session(ctx.sid)?
            .fids
            .remove(&fid)
            .ok_or(FsError::BadFid)?;
        let (node, path, principal) = (entry.node, entry.path.clone(), entry.principal.clone());
        self.release_fid(entry);
        if principal.expires.is_some_and(|e| ctx.now >= e) {
            return Err(FsError::TicketExpired);
        }
        self.check(ctx, &principal, Op::Remove, &path)?;
        // `Namespace::remove` takes a whole subtree (the host side uses it
        // to retire a worker); a client's remove is rmdir(2), which must
        // refuse a directory that still has entries. (The tree's root is
        // left to `Namespace::remove`, which refuses it with EPERM.)
        if node != self.ns.root() && self.ns.is_dir(node) && !self.ns.list(node, 0)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.ns.remove(node)?;
        encode_into(out, ctx.tag, Msg::Rremove(codec::Rremove {}));
        Ok(())
    }

    /// Finishes a deferred request: appends its reply to `out` and returns
    /// the session it belongs to (`None` if the request was flushed, its
    /// session closed, or the token is unknown: the result is then dropped).
    pub fn complete(
        &mut self,
        token: Token,
        result: Completion,
        out: &mut Vec<u8>,
    ) -> Option<SessionId> {
        let (sid, tag) = self.tokens.remove(&token)?;
        let session = self.sessions.get_mut(&sid)?.get_mut();
        let pending = session.pending.remove(&tag)?;
        let (dialect, _) = session.state.limits(0);
        let msg = match (pending.kind, result) {
            (PendingKind::Read { count }, Completion::Read(Ok(data))) => {
                let len = data.len().min(count as usize);
                let data = data.get(..len).unwrap_or(&[]);
                let start = out.len();
                encode_into(out, tag, Msg::Rread(codec::Rread { data }));
                if out.len() == start {
                    encode_into(out, tag, error_msg(dialect, FsError::Io));
                }
                return Some(sid);
            }
            (PendingKind::Write, Completion::Write(Ok(count))) => {
                Msg::Rwrite(codec::Rwrite { count })
            }
            (_, Completion::Read(Err(e)) | Completion::Write(Err(e))) => error_msg(dialect, e),
            _ => error_msg(dialect, FsError::Io),
        };
        encode_into(out, tag, msg);
        Some(sid)
    }

    /// The session and tag a pending token answers.
    pub fn pending(&self, token: Token) -> Option<(SessionId, Tag)> {
        self.tokens.get(&token).copied()
    }

    /// Whether a frame type is one this engine serves (else `EOPNOTSUPP`).
    pub fn serves(ty: MsgType) -> bool {
        matches!(
            ty,
            MsgType::Tversion
                | MsgType::Tauth
                | MsgType::Tattach
                | MsgType::Tflush
                | MsgType::Twalk
                | MsgType::Tlopen
                | MsgType::Topen
                | MsgType::Tread
                | MsgType::Twrite
                | MsgType::Treaddir
                | MsgType::Tgetattr
                | MsgType::Tsetattr
                | MsgType::Tstat
                | MsgType::Tstatfs
                | MsgType::Tclunk
                | MsgType::Tremove
                | MsgType::Tfsync
        )
    }
}

impl View<'_> {
    /// Whether a request of this type may be served by
    /// [`dispatch_now`](View::dispatch_now).
    fn serves_now(ty: MsgType) -> bool {
        matches!(
            ty,
            MsgType::Tgetattr
                | MsgType::Tstat
                | MsgType::Tstatfs
                | MsgType::Tfsync
                | MsgType::Twalk
                | MsgType::Treaddir
                | MsgType::Tclunk
                | MsgType::Tflush
                | MsgType::Tread
        )
    }

    /// Answers what a view of the server and the session suffice for;
    /// `None` (nothing changed, nothing appended) for the rest.
    fn dispatch_now(
        self,
        s: &mut Session,
        config: &ServerConfig,
        ctx: Ctx,
        msg: Msg<'_>,
        out: &mut Replies,
    ) -> Option<Result<(), FsError>> {
        Some(match msg {
            Msg::Tread(m) => return self.read_now(s, ctx, m.fid, m.offset, m.count, out),
            Msg::Tgetattr(m) => self.getattr(s, ctx, m, out.buf()),
            Msg::Tstat(m) => self.stat(s, ctx, m.fid, out.buf()),
            Msg::Treaddir(m) => self.readdir(s, ctx, m, out.buf()),
            Msg::Tstatfs(m) => s.fid(ctx, m.fid).map(|_| {
                encode_into(out.buf(), ctx.tag, Msg::Rstatfs(&STATFS));
            }),
            Msg::Tfsync(m) => s.fid(ctx, m.fid).map(|_| {
                encode_into(out.buf(), ctx.tag, Msg::Rfsync(codec::Rfsync {}));
            }),
            Msg::Twalk(m) => {
                let start = out.len();
                let mut denied = None;
                let r = self.walk(s, config, ctx, m, out.buf(), &mut denied);
                if denied.is_some() {
                    // The refusal is audited on the exclusive path.
                    out.truncate(start);
                    return None;
                }
                r
            }
            // An open fid's node hears the clunk (`&mut`); a pending
            // request's node hears the flush.
            Msg::Tclunk(m) => match s.fids.get(&m.fid) {
                Some(f) if f.open.is_some() => return None,
                Some(_) => {
                    s.fids.remove(&m.fid);
                    encode_into(out.buf(), ctx.tag, Msg::Rclunk(codec::Rclunk {}));
                    Ok(())
                }
                None => Err(FsError::BadFid),
            },
            Msg::Tflush(m) if !s.pending.contains_key(&m.oldtag) => {
                encode_into(out.buf(), ctx.tag, Msg::Rflush(codec::Rflush {}));
                Ok(())
            }
            _ => return None,
        })
    }

    /// A read served through `&self`: the node's [`try_read`](crate::Node::try_read)
    /// (or its shared form), a directory's stats. `None` when the node
    /// needs itself for it: nothing was changed or appended then.
    fn read_now(
        self,
        s: &mut Session,
        ctx: Ctx,
        fid: Fid,
        offset: u64,
        count: u32,
        out: &mut Replies,
    ) -> Option<Result<(), FsError>> {
        let max = ctx.msize.saturating_sub(RREAD_HEADER_LEN as u32);
        let count = count.min(max);
        let (f, h) = match s.open_handle(ctx, fid, false) {
            Ok(found) => found,
            Err(e) => return Some(Err(e)),
        };
        if self.ns.is_dir(f.node) {
            if ctx.dialect == Dialect::Linux {
                return Some(Err(FsError::IsDir));
            }
            // `open_handle` found the fid open: its handle is there.
            let f = s.fids.get_mut(&fid)?;
            let h = f.open.as_mut()?;
            let (node, path, principal) = (f.node, &f.path, &f.principal);
            let out = out.buf();
            return Some(self.read_dir_stats(node, path, principal, h, offset, count, out, ctx));
        }
        let Some(node) = self.ns.node(f.node) else {
            return Some(Err(FsError::NotFound));
        };
        let ioctx = IoCtx {
            principal: &f.principal,
            path: &f.path,
            now: ctx.now,
            token: Token(0),
        };
        if count >= SHARE_MIN
            && let Some(shared) = node.try_read_shared(&ioctx, h, offset, count)
        {
            return Some(shared.and_then(|data| out.push_rread(ctx.tag, data, count)));
        }
        let out = out.buf();
        let start = out.len();
        out.resize(start + RREAD_HEADER_LEN, 0);
        let r = node.try_read(&ioctx, h, offset, count, out);
        match r {
            Some(Ok(())) => Some(finish_rread(out, start, ctx.tag, count)),
            _ => {
                out.truncate(start);
                r
            }
        }
    }

    /// Walks `m.fid`; a policy refusal on the way is left in `denied` for
    /// the audit.
    fn walk(
        self,
        s: &mut Session,
        config: &ServerConfig,
        ctx: Ctx,
        m: codec::Twalk<'_>,
        out: &mut Vec<u8>,
        denied: &mut Option<Denial>,
    ) -> Result<(), FsError> {
        let (start, root, start_path, principal) = {
            let f = s.fid(ctx, m.fid)?;
            // walk(5) says an opened fid may not be walked, but diod and
            // QEMU allow it to a new fid, and diod's own tools rely on that
            // (`diodls -l` walks each name from the directory it reads).
            // The new fid starts unopened and the open one keeps its handle,
            // so nothing is shared. Walking an open fid onto itself would
            // drop its handle, so that stays refused.
            if f.auth.is_some() || (f.open.is_some() && m.newfid == m.fid) {
                return Err(FsError::BadFid);
            }
            (f.node, f.root, f.path.clone(), f.principal.clone())
        };
        if m.newfid != m.fid {
            s.check_new_fid(config, m.newfid)?;
        }
        let mut node = start;
        let mut path = start_path;
        // The codec caps a walk at 16 names, so the qids fit this array.
        let mut qids = [Qid::default(); codec::MAX_WALK_ELEMENTS];
        let mut walked = 0usize;
        for (i, name) in m.wnames.iter().enumerate() {
            let step = if !self.ns.is_dir(node) {
                Err(FsError::NotDir)
            } else if name.contains('/') || name.is_empty() {
                Err(FsError::Invalid)
            } else if name == "." {
                // Readdir lists ".", so a client that walks each listed name
                // (`diodls -l`) must find it: it names the directory itself,
                // as on diod and any POSIX-backed server.
                Ok((node, path.clone()))
            } else if name == ".." {
                if node == root {
                    Ok((node, path.clone()))
                } else {
                    let parent = self.ns.parent(node).ok_or(FsError::NotFound)?;
                    Ok((parent, Arc::from(parent_path(&path))))
                }
            } else {
                // The policy is asked before the lookup, so a principal
                // cannot tell a name it may not see from one that is absent.
                let next_path = join(&path, name);
                match self.policy.check(&principal, Op::Walk, &next_path) {
                    Ok(()) => self
                        .ns
                        .lookup(node, name)
                        .ok_or(FsError::NotFound)
                        .map(|next| (next, Arc::from(next_path))),
                    Err(error) => {
                        *denied = Some(Denial {
                            who: principal.clone(),
                            op: Op::Walk,
                            path: next_path,
                            error,
                        });
                        Err(error)
                    }
                }
            };
            match step {
                Ok((next, next_path)) => {
                    node = next;
                    path = next_path;
                    let slot = qids.get_mut(walked).ok_or(FsError::Invalid)?;
                    *slot = self.ns.qid(node).ok_or(FsError::NotFound)?;
                    walked += 1;
                }
                Err(e) if i == 0 => return Err(e),
                Err(_) => {
                    let wqids = WalkQids::new(qids.get(..walked).unwrap_or(&[]))
                        .map_err(|_| FsError::Invalid)?;
                    encode_into(out, ctx.tag, Msg::Rwalk(codec::Rwalk { wqids }));
                    return Ok(());
                }
            }
        }
        let entry = FidEntry {
            node,
            root,
            path,
            principal,
            open: None,
            auth: None,
        };
        if m.newfid == m.fid {
            s.fids.insert(m.fid, entry);
        } else {
            s.bind_fid(m.newfid, entry);
        }
        let wqids =
            WalkQids::new(qids.get(..walked).unwrap_or(&[])).map_err(|_| FsError::Invalid)?;
        encode_into(out, ctx.tag, Msg::Rwalk(codec::Rwalk { wqids }));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn read_dir_stats(
        self,
        node: NodeId,
        path: &str,
        principal: &Principal,
        h: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
        ctx: Ctx,
    ) -> Result<(), FsError> {
        // 9P2000 directory reads continue where the last one stopped: the
        // handle keeps the byte offset reached (`skew`) and the last cookie
        // sent (`missed` is reused as that cookie).
        if offset == 0 {
            h.skew = 0;
            h.missed = 0;
        } else if offset != h.skew {
            return Err(FsError::Invalid);
        }
        let mut buf = alloc::vec![0u8; count as usize];
        let mut used = 0usize;
        for child in self.ns.list(node, h.missed)? {
            let child_path = join(path, &child.name);
            if self.policy.check(principal, Op::Walk, &child_path).is_err() {
                h.missed = child.cookie;
                continue;
            }
            let st = self.stat_of(child.id, &child.name)?;
            let Some(dst) = buf.get_mut(used..) else {
                break;
            };
            match st.encode(dst) {
                Ok(n) => {
                    used += n;
                    h.missed = child.cookie;
                }
                Err(_) => break,
            }
        }
        h.skew += used as u64;
        let data = buf.get(..used).unwrap_or(&[]);
        encode_into(out, ctx.tag, Msg::Rread(codec::Rread { data }));
        Ok(())
    }

    fn readdir(
        self,
        s: &Session,
        ctx: Ctx,
        m: codec::Treaddir,
        out: &mut Vec<u8>,
    ) -> Result<(), FsError> {
        let (node, root, path, principal) = {
            let f = s.fid(ctx, m.fid)?;
            if !f.open.as_ref().is_some_and(|h| h.access.read) {
                return Err(FsError::BadFid);
            }
            (f.node, f.root, f.path.clone(), f.principal.clone())
        };
        if !self.ns.is_dir(node) {
            return Err(FsError::NotDir);
        }
        let max = ctx.msize.saturating_sub(RREAD_HEADER_LEN as u32);
        let mut buf = alloc::vec![0u8; m.count.min(max) as usize];
        let mut w = DirEntryWriter::new(&mut buf);
        let mut full = false;
        let dot_qid = self.ns.qid(node).ok_or(FsError::NotFound)?;
        // `..` of the attach root is the root itself, as walking `..` there
        // stays put: a role-scoped root shows nothing of what lies above it.
        let parent = if node == root {
            node
        } else {
            self.ns.parent(node).ok_or(FsError::NotFound)?
        };
        let dotdot_qid = self.ns.qid(parent).ok_or(FsError::NotFound)?;
        for (cookie, name, qid) in [(1, ".", dot_qid), (2, "..", dotdot_qid)] {
            if m.offset < cookie && !full {
                full = !w
                    .push(&DirEntry {
                        qid,
                        offset: cookie,
                        ty: DT_DIR,
                        name,
                    })
                    .map_err(|_| FsError::Invalid)?;
            }
        }
        if !full {
            for child in self.ns.list(node, m.offset.max(FIRST_CHILD_COOKIE - 1))? {
                let child_path = join(&path, &child.name);
                if self
                    .policy
                    .check(&principal, Op::Walk, &child_path)
                    .is_err()
                {
                    continue;
                }
                let qid = self.ns.qid(child.id).ok_or(FsError::NotFound)?;
                let ty = if qid.ty.contains(QidType::DIR) {
                    DT_DIR
                } else {
                    DT_REG
                };
                let pushed = w
                    .push(&DirEntry {
                        qid,
                        offset: child.cookie,
                        ty,
                        name: &child.name,
                    })
                    .map_err(|_| FsError::Invalid)?;
                if !pushed {
                    break;
                }
            }
        }
        let data = w.finish();
        encode_into(out, ctx.tag, Msg::Rreaddir(codec::Rreaddir { data }));
        Ok(())
    }

    fn attr_of(self, node: NodeId) -> Result<(Qid, u32, u64, u64), FsError> {
        let qid = self.ns.qid(node).ok_or(FsError::NotFound)?;
        if let Some(mode) = self.ns.dir_mode(node) {
            return Ok((qid, S_IFDIR | mode, 0, 0));
        }
        let attr = self.ns.node(node).ok_or(FsError::NotFound)?.attr();
        Ok((qid, S_IFREG | (attr.mode & 0o777), attr.size, attr.mtime))
    }

    fn getattr(
        self,
        s: &Session,
        ctx: Ctx,
        m: codec::Tgetattr,
        out: &mut Vec<u8>,
    ) -> Result<(), FsError> {
        let node = s.fid(ctx, m.fid)?.node;
        let (qid, mode, size, mtime) = self.attr_of(node)?;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        encode_into(
            out,
            ctx.tag,
            Msg::Rgetattr(
                &codec::Rgetattr::new()
                    // What was asked, of what this server fills.
                    .with_valid(m.request_mask & GetattrMask::BASIC)
                    .with_qid(qid)
                    .with_mode(mode)
                    .with_nlink(nlink)
                    .with_size(size)
                    .with_blksize(4096)
                    .with_blocks(size.div_ceil(512))
                    .with_atime_sec(mtime)
                    .with_mtime_sec(mtime)
                    .with_ctime_sec(mtime),
            ),
        );
        Ok(())
    }

    fn stat_of<'n>(self, node: NodeId, name: &'n str) -> Result<Stat<'n>, FsError> {
        let (qid, mode, size, mtime) = self.attr_of(node)?;
        let dir = mode & S_IFDIR != 0;
        let mut perm = mode & 0o777;
        if dir {
            perm |= codec::DMDIR;
        }
        if qid.ty.contains(QidType::APPEND) {
            perm |= codec::DMAPPEND;
        }
        let mtime = u32::try_from(mtime).unwrap_or(u32::MAX);
        Ok(Stat {
            ty: 0,
            dev: 0,
            qid,
            mode: perm,
            atime: mtime,
            mtime,
            length: if dir { 0 } else { size },
            name: if name.is_empty() { "/" } else { name },
            uid: "cohesix",
            gid: "cohesix",
            muid: "cohesix",
        })
    }

    fn stat(self, s: &Session, ctx: Ctx, fid: Fid, out: &mut Vec<u8>) -> Result<(), FsError> {
        let node = s.fid(ctx, fid)?.node;
        let name = String::from(self.ns.name(node).unwrap_or(""));
        let stat = self.stat_of(node, &name)?;
        encode_into(
            out,
            ctx.tag,
            Msg::Rstat(codec::Rstat {
                stat: StatRef::new(&stat),
            }),
        );
        Ok(())
    }
}
