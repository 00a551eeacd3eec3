//! The engine of a complete file server: every 9P2000.L request (and the
//! 9P2000 ones Plan 9 clients send) dispatched to a [`Filesystem`]. Sans-IO
//! like [`Server`](crate::Server): bytes of one request in, bytes of replies
//! out, time as an argument, no sockets or threads.
//!
//! The engine keeps what every provider would otherwise write again: the
//! session (version, msize, dialect), the bounded fid and tag tables, flush
//! and deferred replies, open modes, extended-attribute fids, and POSIX
//! byte-range locks (a [`LockTable`]; a fid's locks go when it is clunked).
//! It checks names ([`check_name`]) before a provider sees them, so a
//! provider never gets `/`, NUL, `.`, `..` or an over-long name. Nothing
//! here panics on input; a request that fails leaves the session usable.

use crate::config::ServerConfig;
use crate::error::FsError;
use crate::fs::{Attr, Caller, Filesystem, Obj, SetAttr, SetTime, Timespec, check_name, file_type};
use crate::lock::{LockKind, LockOwner, LockTable, range_end};
use crate::namespace::NodeId;
use crate::node::{Io, Token};
use crate::replies::{self, Replies, SHARE_MIN};
use crate::server::{
    Completion, Ctx, Outcome, Request, SessionError, SessionId, SessionState, State, encode_into,
    error_msg, finish_rread, negotiate, prepare, serve_concurrent,
};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use secure9p_codec::{
    self as codec, CodecError, Dialect, DirEntryWriter, Fid, GetattrMask, LOpenFlags, LockStatus,
    LockType, Msg, MsgType, OpenMode, Qid, QidType, RREAD_HEADER_LEN, SetattrValid, Stat, StatRef,
    Tag, WalkQids,
};

/// Largest extended attribute value a client may set or read (Linux's
/// `XATTR_SIZE_MAX`): bounds the buffer an xattr fid holds.
pub const MAX_XATTR_SIZE: u64 = 64 * 1024;

/// `E2BIG`: an extended attribute larger than [`MAX_XATTR_SIZE`].
const E2BIG: FsError = FsError::Errno(7);
/// The magic `statfs(2)` reports for a 9P mount.
const V9FS_MAGIC: u32 = 0x0102_1997;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    read: bool,
    write: bool,
}

enum Xattr {
    /// A value (or list) read by `Txattrwalk`, served by reads.
    Read(Vec<u8>),
    /// A value being written after `Txattrcreate`, set at clunk.
    Write {
        name: String,
        flags: u32,
        size: u64,
        buf: Vec<u8>,
    },
}

struct FsFid {
    obj: Obj,
    qid: Qid,
    uid: u32,
    /// The last name walked (for a 9P2000 `Rstat`).
    name: String,
    open: Option<Open>,
    xattr: Option<Xattr>,
    /// Owners that took locks through this fid: clunking it drops their
    /// locks on the file, as `close(2)` does.
    lockers: Vec<LockOwner>,
    /// 9P2000 directory reads: the cookie of the last entry sent and the
    /// byte offset reached.
    dir_cookie: u64,
    dir_offset: u64,
}

#[derive(Debug, Clone, Copy)]
enum PendingKind {
    Read { count: u32 },
    Write,
}

struct Pending {
    token: Token,
    kind: PendingKind,
}

struct Session {
    state: State,
    fids: BTreeMap<Fid, FsFid>,
    pending: BTreeMap<Tag, Pending>,
}

impl Session {
    fn new(state: State) -> Self {
        Session {
            state,
            fids: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }
}

/// A sans-IO 9P2000.L / 9P2000 server over a [`Filesystem`].
pub struct FsServer {
    fs: Box<dyn Filesystem>,
    config: ServerConfig,
    /// Each session behind its own lock, so that requests of different
    /// sessions can be answered at once through
    /// [`handle_concurrent`](FsServer::handle_concurrent); the `&mut self`
    /// paths reach it with `get_mut`.
    sessions: BTreeMap<SessionId, spin::Mutex<Session>>,
    tokens: BTreeMap<Token, (SessionId, Tag)>,
    locks: LockTable,
    next_session: u64,
    next_token: u64,
}

impl core::fmt::Debug for FsServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FsServer")
            .field("sessions", &self.sessions.len())
            .field("pending", &self.tokens.len())
            .field("locks", &self.locks.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The engine's errno for a frame that does not decode; a name with NUL
/// or invalid UTF-8 can name no file here, so it is `EINVAL`.
fn codec_errno(e: CodecError) -> FsError {
    match e {
        CodecError::NulInString(_) | CodecError::InvalidUtf8(_) => FsError::Invalid,
        e => crate::server::codec_errno(e),
    }
}

fn ts(t: Timespec) -> (u64, u64) {
    (t.sec, t.nsec)
}

fn set_time(
    valid: SetattrValid,
    any: SetattrValid,
    set: SetattrValid,
    sec: u64,
    nsec: u64,
) -> Option<SetTime> {
    if !valid.contains(any) {
        return None;
    }
    Some(if valid.contains(set) {
        SetTime::At(Timespec { sec, nsec })
    } else {
        SetTime::Now
    })
}

fn lock_kind(t: LockType) -> Result<Option<LockKind>, FsError> {
    match t {
        LockType::RDLCK => Ok(Some(LockKind::Read)),
        LockType::WRLCK => Ok(Some(LockKind::Write)),
        LockType::UNLCK => Ok(None),
        _ => Err(FsError::Invalid),
    }
}

/// 9P2000 open mode as Linux open flags.
fn lflags_of_open(mode: OpenMode) -> u32 {
    let mut f = u32::from(mode.access_mode() & 3);
    if f == 3 {
        f = 0;
    }
    if mode.contains(OpenMode::TRUNC) {
        f |= LOpenFlags::TRUNC.bits();
    }
    f
}

fn open_of(flags: u32) -> Open {
    let acc = flags & codec::L_ACCMODE;
    Open {
        read: acc == 0 || acc == 2,
        write: acc == 1 || acc == 2,
    }
}

impl SessionState for Session {
    fn state(&self) -> State {
        self.state
    }
    fn in_flight(&self, tag: Tag) -> bool {
        self.pending.contains_key(&tag)
    }
    /// Every request type: what the file server does not support is
    /// `EOPNOTSUPP` from `dispatch`.
    fn serves(_: MsgType) -> bool {
        true
    }
    fn serves_now(ty: MsgType) -> bool {
        matches!(ty, MsgType::Tgetattr | MsgType::Tread | MsgType::Tflush)
    }
    fn errno(e: CodecError) -> FsError {
        codec_errno(e)
    }
}

/// The file a fid names (open or not; not an xattr fid): its handle, qid
/// and user.
fn file_of(s: &Session, fid: Fid) -> Result<(Obj, Qid, u32), FsError> {
    let f = s.fids.get(&fid).ok_or(FsError::BadFid)?;
    if f.xattr.is_some() {
        return Err(FsError::BadFid);
    }
    Ok((f.obj, f.qid, f.uid))
}

fn caller_of(ctx: Ctx, uid: u32, token: Token) -> Caller {
    Caller {
        session: ctx.sid,
        uid,
        now: ctx.now,
        token,
    }
}

/// What a `Tread` of a fid reads, once the fid is checked.
enum ReadFrom<'s> {
    /// An extended attribute's value, held by the fid.
    Xattr(&'s [u8]),
    /// A directory (stat entries in 9P2000; `EISDIR` in 9P2000.L).
    Dir,
    /// A file: the provider reads it.
    File(Obj, u32),
}

fn read_from(s: &Session, fid: Fid) -> Result<ReadFrom<'_>, FsError> {
    let f = s.fids.get(&fid).ok_or(FsError::BadFid)?;
    if !f.open.is_some_and(|o| o.read) {
        return Err(FsError::BadFid);
    }
    Ok(match &f.xattr {
        Some(Xattr::Read(value)) => ReadFrom::Xattr(value),
        _ if f.qid.ty.contains(QidType::DIR) => ReadFrom::Dir,
        _ => ReadFrom::File(f.obj, f.uid),
    })
}

impl FsServer {
    /// A server over `fs`, with the fid, tag and msize limits of `config`
    /// (its `anonymous` and `strict_fids` are not used: every attach is the
    /// numeric user it names, and fid numbers may be reused after clunk).
    pub fn new(fs: impl Filesystem + 'static, config: ServerConfig) -> Self {
        FsServer {
            fs: Box::new(fs),
            config,
            sessions: BTreeMap::new(),
            tokens: BTreeMap::new(),
            locks: LockTable::new(),
            next_session: 1,
            next_token: 1,
        }
    }

    /// The provider, to inspect or change between requests.
    pub fn filesystem(&mut self) -> &mut dyn Filesystem {
        self.fs.as_mut()
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The locks held now.
    pub fn locks(&self) -> &LockTable {
        &self.locks
    }

    /// Opens a session (one per connection).
    pub fn open_session(&mut self) -> SessionId {
        let sid = SessionId(self.next_session);
        self.next_session += 1;
        self.sessions
            .insert(sid, spin::Mutex::new(Session::new(State::AwaitVersion)));
        sid
    }

    /// The msize negotiated by a session (the server's cap before `version`).
    pub fn msize(&self, sid: SessionId) -> Option<u32> {
        match self.sessions.get(&sid)?.lock().state {
            State::AwaitVersion => Some(self.config.max_msize),
            State::Ready { msize, .. } => Some(msize),
        }
    }

    /// Fids a session holds.
    pub fn fid_count(&self, sid: SessionId) -> usize {
        self.sessions.get(&sid).map_or(0, |s| s.lock().fids.len())
    }

    /// Closes a session: cancels its pending work, releases its fids and
    /// drops its locks. Returns the cancelled tokens.
    pub fn close_session(&mut self, sid: SessionId) -> Vec<Token> {
        let Some(session) = self.sessions.remove(&sid) else {
            return Vec::new();
        };
        self.drop_session(sid, session.into_inner())
    }

    fn drop_session(&mut self, sid: SessionId, session: Session) -> Vec<Token> {
        let mut cancelled = Vec::new();
        for (_, p) in session.pending {
            self.tokens.remove(&p.token);
            self.fs.cancel(p.token);
            cancelled.push(p.token);
        }
        for (_, f) in session.fids {
            self.fs.release(f.obj);
        }
        self.locks.release_session(sid);
        cancelled
    }

    /// Handles one request frame of session `sid` at time `now`, appending
    /// the reply (if any is due now) to `out`. A payload the file system
    /// shares ([`Filesystem::read_shared`]) is copied into `out`; the
    /// runners use [`handle_replies`](FsServer::handle_replies) to send it
    /// without that copy.
    pub fn handle(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, SessionError> {
        replies::into_vec(out, |r| self.handle_replies(sid, frame, now, r))
    }

    /// [`handle`](FsServer::handle) into [`Replies`]: a large read the file
    /// system shares leaves its payload as the replies' tail, uncopied.
    pub fn handle_replies(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Result<Outcome, SessionError> {
        let s = self
            .sessions
            .get_mut(&sid)
            .ok_or(SessionError::UnknownSession)?
            .get_mut();
        let (ctx, msg) = match prepare(s, &self.config, sid, frame, now, out.buf())? {
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
            Ok(o) => Ok(o),
            Err(e) => {
                out.truncate(start);
                encode_into(out.buf(), ctx.tag, error_msg(ctx.dialect, e));
                Ok(Outcome::Replied)
            }
        }
    }

    /// Handles one request of session `sid` through `&self`, beside other
    /// sessions' requests on other threads, if it needs no more than a view
    /// of the server and the provider answers it now: `Tgetattr`
    /// ([`Filesystem::try_getattr`]), `Tread` of a file
    /// ([`Filesystem::try_read_shared`], [`Filesystem::try_read`]) or of an
    /// extended attribute, and `Tflush` of a tag with nothing pending. The
    /// answer is the one [`handle_replies`](FsServer::handle_replies) would
    /// give.
    ///
    /// `None` means the request needs [`handle_replies`](FsServer::handle_replies)
    /// (`&mut self`): nothing was changed or appended to `out`. So does a
    /// request of a session another thread is handling now.
    pub fn handle_concurrent(
        &self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Option<Result<Outcome, SessionError>> {
        serve_concurrent(
            &self.sessions,
            &self.config,
            sid,
            frame,
            now,
            out,
            |s, ctx, msg, out| match msg {
                Msg::Tgetattr(m) => match file_of(s, m.fid) {
                    Err(e) => Some(Err(e)),
                    Ok((obj, _, uid)) => {
                        let caller = caller_of(ctx, uid, Token(self.next_token));
                        let attr = self.fs.try_getattr(&caller, obj)?;
                        Some(attr.map(|a| {
                            let reply = Msg::Rgetattr(&rgetattr(&a, m.request_mask));
                            encode_into(out.buf(), ctx.tag, reply);
                        }))
                    }
                },
                Msg::Tread(m) => self.read_now(s, ctx, &m, out),
                Msg::Tflush(m) if !s.pending.contains_key(&m.oldtag) => {
                    encode_into(out.buf(), ctx.tag, Msg::Rflush(codec::Rflush {}));
                    Some(Ok(()))
                }
                _ => None,
            },
        )
    }

    fn version(&mut self, ctx: Ctx, v: codec::Tversion<'_>, out: &mut Vec<u8>) {
        if let Some(s) = self.sessions.remove(&ctx.sid) {
            self.drop_session(ctx.sid, s.into_inner());
        }
        let (dialect, msize) = negotiate(&v, self.config.max_msize);
        let (state, version) = match dialect {
            Some(d) => (State::Ready { dialect: d, msize }, d.version()),
            _ => (State::AwaitVersion, "unknown"),
        };
        self.sessions
            .insert(ctx.sid, spin::Mutex::new(Session::new(state)));
        encode_into(
            out,
            ctx.tag,
            Msg::Rversion(codec::Rversion { msize, version }),
        );
    }

    fn session(&mut self, sid: SessionId) -> Result<&mut Session, FsError> {
        self.sessions
            .get_mut(&sid)
            .map(spin::Mutex::get_mut)
            .ok_or(FsError::Protocol)
    }

    fn fid(&mut self, ctx: Ctx, fid: Fid) -> Result<&mut FsFid, FsError> {
        self.session(ctx.sid)?
            .fids
            .get_mut(&fid)
            .ok_or(FsError::BadFid)
    }

    /// A fid that names a file (open or not), not an xattr fid.
    fn file(&mut self, ctx: Ctx, fid: Fid) -> Result<(Obj, Qid, u32), FsError> {
        file_of(self.session(ctx.sid)?, fid)
    }

    /// A fid that names an unopened directory (for creating in it).
    fn dir(&mut self, ctx: Ctx, fid: Fid) -> Result<(Obj, u32), FsError> {
        let f = self.fid(ctx, fid)?;
        if f.xattr.is_some() {
            return Err(FsError::BadFid);
        }
        if !f.qid.ty.contains(QidType::DIR) {
            return Err(FsError::NotDir);
        }
        Ok((f.obj, f.uid))
    }

    fn check_new_fid(&mut self, ctx: Ctx, fid: Fid) -> Result<(), FsError> {
        let max = self.config.max_fids;
        if fid == Fid::NOFID {
            return Err(FsError::BadFid);
        }
        let s = self.session(ctx.sid)?;
        if s.fids.contains_key(&fid) {
            return Err(FsError::BadFid);
        }
        if s.fids.len() >= max {
            return Err(FsError::TooManyFids);
        }
        Ok(())
    }

    fn caller(&self, ctx: Ctx, uid: u32) -> Caller {
        caller_of(ctx, uid, Token(self.next_token))
    }

    fn bind(&mut self, ctx: Ctx, fid: Fid, entry: FsFid) -> Result<(), FsError> {
        match self.session(ctx.sid) {
            Ok(s) => {
                s.fids.insert(fid, entry);
                Ok(())
            }
            Err(e) => {
                self.fs.release(entry.obj);
                Err(e)
            }
        }
    }

    fn new_fid(obj: Obj, qid: Qid, uid: u32, name: String) -> FsFid {
        FsFid {
            obj,
            qid,
            uid,
            name,
            open: None,
            xattr: None,
            lockers: Vec::new(),
            dir_cookie: 0,
            dir_offset: 0,
        }
    }

    fn dispatch(&mut self, ctx: Ctx, msg: Msg<'_>, out: &mut Vec<u8>) -> Result<Outcome, FsError> {
        let done = Ok(Outcome::Replied);
        let reply = |out: &mut Vec<u8>, m: Msg<'_>| encode_into(out, ctx.tag, m);
        match msg {
            // No auth: the diod/Linux answer for "attach directly".
            Msg::Tauth(_) => Err(FsError::NotFound),
            Msg::Tattach(m) => {
                if m.afid != Fid::NOFID {
                    return Err(FsError::BadFid);
                }
                self.check_new_fid(ctx, m.fid)?;
                let uid = m.n_uname.unwrap_or(u32::MAX);
                let caller = self.caller(ctx, uid);
                let (obj, qid) = self.fs.attach(&caller, m.aname)?;
                self.bind(ctx, m.fid, Self::new_fid(obj, qid, uid, String::from("/")))?;
                reply(out, Msg::Rattach(codec::Rattach { qid }));
                done
            }
            Msg::Tflush(m) => {
                if let Some(p) = self
                    .sessions
                    .get_mut(&ctx.sid)
                    .and_then(|s| s.get_mut().pending.remove(&m.oldtag))
                {
                    self.tokens.remove(&p.token);
                    self.fs.cancel(p.token);
                }
                reply(out, Msg::Rflush(codec::Rflush {}));
                done
            }
            Msg::Twalk(m) => self.walk(ctx, m, out).and(done),
            Msg::Tlopen(m) => {
                let flags = (m.flags & LOpenFlags::SUPPORTED).bits();
                let qid = self.open(ctx, m.fid, flags)?;
                reply(out, Msg::Rlopen(codec::Rlopen { qid, iounit: 0 }));
                done
            }
            Msg::Topen(m) => {
                let qid = self.open(ctx, m.fid, lflags_of_open(m.mode))?;
                reply(out, Msg::Ropen(codec::Ropen { qid, iounit: 0 }));
                done
            }
            Msg::Tlcreate(m) => {
                let flags = (m.flags & LOpenFlags::SUPPORTED).bits();
                let qid = self.create(ctx, m.fid, m.name, flags, m.mode, m.gid)?;
                reply(out, Msg::Rlcreate(codec::Rlcreate { qid, iounit: 0 }));
                done
            }
            Msg::Tcreate(m) => {
                let qid = self.create9(ctx, m)?;
                reply(out, Msg::Rcreate(codec::Rcreate { qid, iounit: 0 }));
                done
            }
            Msg::Twrite(m) => self.write(ctx, m.fid, m.offset, m.data, out),
            Msg::Tclunk(m) => {
                let r = self.clunk(ctx, m.fid);
                r?;
                reply(out, Msg::Rclunk(codec::Rclunk {}));
                done
            }
            Msg::Tremove(m) => {
                let f = self
                    .session(ctx.sid)?
                    .fids
                    .remove(&m.fid)
                    .ok_or(FsError::BadFid)?;
                let caller = self.caller(ctx, f.uid);
                let r = self.fs.remove(&caller, f.obj);
                self.forget(f);
                r?;
                reply(out, Msg::Rremove(codec::Rremove {}));
                done
            }
            Msg::Tgetattr(m) => {
                let (obj, _, uid) = self.file(ctx, m.fid)?;
                let caller = self.caller(ctx, uid);
                let a = self.fs.getattr(&caller, obj)?;
                reply(out, Msg::Rgetattr(&rgetattr(&a, m.request_mask)));
                done
            }
            Msg::Tsetattr(m) => {
                let (obj, _, uid) = self.file(ctx, m.fid())?;
                let writer = self.fid(ctx, m.fid())?.open.is_some_and(|o| o.write);
                let v = m.valid();
                let set = SetAttr {
                    mode: v.contains(SetattrValid::MODE).then_some(m.mode() & 0o7777),
                    uid: v.contains(SetattrValid::UID).then_some(m.uid()),
                    gid: v.contains(SetattrValid::GID).then_some(m.gid()),
                    size: v.contains(SetattrValid::SIZE).then_some(m.size()),
                    atime: set_time(
                        v,
                        SetattrValid::ATIME,
                        SetattrValid::ATIME_SET,
                        m.atime_sec(),
                        m.atime_nsec(),
                    ),
                    mtime: set_time(
                        v,
                        SetattrValid::MTIME,
                        SetattrValid::MTIME_SET,
                        m.mtime_sec(),
                        m.mtime_nsec(),
                    ),
                    ctime: v.contains(SetattrValid::CTIME),
                    writer,
                };
                let caller = self.caller(ctx, uid);
                self.fs.setattr(&caller, obj, &set)?;
                reply(out, Msg::Rsetattr(codec::Rsetattr {}));
                done
            }
            Msg::Tstat(m) => {
                let (obj, _, uid) = self.file(ctx, m.fid)?;
                let name = self.fid(ctx, m.fid)?.name.clone();
                let caller = self.caller(ctx, uid);
                let a = self.fs.getattr(&caller, obj)?;
                let stat = stat_of(&a, &name);
                reply(
                    out,
                    Msg::Rstat(codec::Rstat {
                        stat: StatRef::new(&stat),
                    }),
                );
                done
            }
            Msg::Twstat(m) => self.wstat(ctx, m).map(|()| {
                reply(out, Msg::Rwstat(codec::Rwstat {}));
                Outcome::Replied
            }),
            Msg::Treaddir(m) => self.readdir(ctx, m, out).and(done),
            Msg::Tstatfs(m) => {
                let (obj, _, uid) = self.file(ctx, m.fid)?;
                let caller = self.caller(ctx, uid);
                let s = self.fs.statfs(&caller, obj)?;
                reply(
                    out,
                    Msg::Rstatfs(
                        &codec::Rstatfs::new()
                            .with_ty(V9FS_MAGIC)
                            .with_bsize(s.bsize)
                            .with_blocks(s.blocks)
                            .with_bfree(s.bfree)
                            .with_bavail(s.bavail)
                            .with_files(s.files)
                            .with_ffree(s.ffree)
                            .with_namelen(s.namelen),
                    ),
                );
                done
            }
            Msg::Tmkdir(m) => {
                check_name(m.name)?;
                let (dir, uid) = self.dir(ctx, m.dfid)?;
                let caller = self.caller(ctx, uid);
                let qid = self.fs.mkdir(&caller, dir, m.name, m.mode, m.gid)?;
                reply(out, Msg::Rmkdir(codec::Rmkdir { qid }));
                done
            }
            Msg::Tsymlink(m) => {
                check_name(m.name)?;
                if m.symtgt.is_empty() {
                    return Err(FsError::NotFound);
                }
                let (dir, uid) = self.dir(ctx, m.fid)?;
                let caller = self.caller(ctx, uid);
                let qid = self.fs.symlink(&caller, dir, m.name, m.symtgt, m.gid)?;
                reply(out, Msg::Rsymlink(codec::Rsymlink { qid }));
                done
            }
            Msg::Tmknod(m) => {
                check_name(m.name)?;
                let (dir, uid) = self.dir(ctx, m.dfid)?;
                let caller = self.caller(ctx, uid);
                let qid = self
                    .fs
                    .mknod(&caller, dir, m.name, m.mode, m.major, m.minor, m.gid)?;
                reply(out, Msg::Rmknod(codec::Rmknod { qid }));
                done
            }
            Msg::Tlink(m) => {
                check_name(m.name)?;
                let (dir, uid) = self.dir(ctx, m.dfid)?;
                let (target, tqid, _) = self.file(ctx, m.fid)?;
                if tqid.ty.contains(QidType::DIR) {
                    return Err(FsError::NotPermitted);
                }
                let caller = self.caller(ctx, uid);
                self.fs.link(&caller, dir, target, m.name)?;
                reply(out, Msg::Rlink(codec::Rlink {}));
                done
            }
            Msg::Trename(m) => {
                check_name(m.name)?;
                let (obj, _, uid) = self.file(ctx, m.fid)?;
                let (dir, _) = self.dir(ctx, m.dfid)?;
                let caller = self.caller(ctx, uid);
                self.fs.rename(&caller, obj, Some(dir), m.name)?;
                reply(out, Msg::Rrename(codec::Rrename {}));
                done
            }
            Msg::Trenameat(m) => {
                check_name(m.oldname)?;
                check_name(m.newname)?;
                let (olddir, uid) = self.dir(ctx, m.olddirfid)?;
                let (newdir, _) = self.dir(ctx, m.newdirfid)?;
                let caller = self.caller(ctx, uid);
                self.fs
                    .renameat(&caller, olddir, m.oldname, newdir, m.newname)?;
                reply(out, Msg::Rrenameat(codec::Rrenameat {}));
                done
            }
            Msg::Tunlinkat(m) => {
                check_name(m.name)?;
                let (dir, uid) = self.dir(ctx, m.dirfid)?;
                let caller = self.caller(ctx, uid);
                self.fs.unlinkat(&caller, dir, m.name, m.flags)?;
                reply(out, Msg::Runlinkat(codec::Runlinkat {}));
                done
            }
            Msg::Treadlink(m) => {
                let (obj, _, uid) = self.file(ctx, m.fid)?;
                let caller = self.caller(ctx, uid);
                let target = self.fs.readlink(&caller, obj)?;
                reply(out, Msg::Rreadlink(codec::Rreadlink { target: &target }));
                done
            }
            Msg::Tfsync(m) => {
                let (obj, _, uid) = self.file(ctx, m.fid)?;
                let caller = self.caller(ctx, uid);
                self.fs.fsync(&caller, obj, m.datasync != 0)?;
                reply(out, Msg::Rfsync(codec::Rfsync {}));
                done
            }
            Msg::Tlock(m) => {
                let status = self.lock(ctx, m)?;
                reply(out, Msg::Rlock(codec::Rlock { status }));
                done
            }
            Msg::Tgetlock(m) => self.getlock(ctx, m, out).and(done),
            Msg::Txattrwalk(m) => {
                let (obj, qid, uid) = self.file(ctx, m.fid)?;
                self.check_new_fid(ctx, m.newfid)?;
                let caller = self.caller(ctx, uid);
                let value = self.fs.xattr_get(&caller, obj, m.name)?;
                if value.len() as u64 > MAX_XATTR_SIZE && !m.name.is_empty() {
                    return Err(E2BIG);
                }
                let size = value.len() as u64;
                let copy = self.fs.clone_obj(obj)?;
                let mut f = Self::new_fid(copy, qid, uid, String::new());
                f.xattr = Some(Xattr::Read(value));
                f.open = Some(Open {
                    read: true,
                    write: false,
                });
                self.bind(ctx, m.newfid, f)?;
                reply(out, Msg::Rxattrwalk(codec::Rxattrwalk { size }));
                done
            }
            Msg::Txattrcreate(m) => {
                if m.attr_size > MAX_XATTR_SIZE {
                    return Err(E2BIG);
                }
                if m.name.is_empty() || m.name.len() > crate::namespace::MAX_NAME_LEN {
                    return Err(if m.name.is_empty() {
                        FsError::Invalid
                    } else {
                        FsError::Range
                    });
                }
                let f = self.fid(ctx, m.fid)?;
                if f.xattr.is_some() || f.open.is_some() {
                    return Err(FsError::BadFid);
                }
                f.xattr = Some(Xattr::Write {
                    name: String::from(m.name),
                    flags: m.flags,
                    size: m.attr_size,
                    buf: Vec::new(),
                });
                f.open = Some(Open {
                    read: false,
                    write: true,
                });
                reply(out, Msg::Rxattrcreate(codec::Rxattrcreate {}));
                done
            }
            _ => Err(FsError::NotSupported),
        }
    }

    fn forget(&mut self, f: FsFid) {
        for owner in &f.lockers {
            self.locks.release(f.qid.path, owner);
        }
        self.fs.release(f.obj);
    }

    fn clunk(&mut self, ctx: Ctx, fid: Fid) -> Result<(), FsError> {
        let mut f = self
            .session(ctx.sid)?
            .fids
            .remove(&fid)
            .ok_or(FsError::BadFid)?;
        let r = match f.xattr.take() {
            Some(Xattr::Write {
                name,
                flags,
                size,
                buf,
            }) => {
                let caller = self.caller(ctx, f.uid);
                if buf.len() as u64 != size {
                    // Fewer bytes than announced: nothing is set.
                    Err(FsError::Invalid)
                } else {
                    self.fs
                        .xattr_set(&caller, f.obj, &name, &buf, flags, size == 0)
                }
            }
            _ => Ok(()),
        };
        self.forget(f);
        r
    }

    fn walk(&mut self, ctx: Ctx, m: codec::Twalk<'_>, out: &mut Vec<u8>) -> Result<(), FsError> {
        let (start, start_qid, uid, start_name) = {
            let f = self.fid(ctx, m.fid)?;
            if f.xattr.is_some() || (f.open.is_some() && m.newfid == m.fid) {
                return Err(FsError::BadFid);
            }
            (f.obj, f.qid, f.uid, f.name.clone())
        };
        if m.newfid != m.fid {
            self.check_new_fid(ctx, m.newfid)?;
        }
        let caller = self.caller(ctx, uid);
        let mut qids = [Qid::default(); codec::MAX_WALK_ELEMENTS];
        let mut walked = 0usize;
        // `at` is a handle of ours (to release) once the first step is taken.
        let mut at: Option<(Obj, Qid)> = None;
        let mut name = start_name;
        let mut failed = None;
        for (i, wname) in m.wnames.iter().enumerate() {
            let (obj, qid) = at.unwrap_or((start, start_qid));
            let step = if !qid.ty.contains(QidType::DIR) {
                Err(FsError::NotDir)
            } else if wname == "." {
                self.fs.clone_obj(obj).map(|o| (o, qid))
            } else if wname == ".." {
                self.fs.walk_parent(&caller, obj)
            } else {
                check_name(wname).and_then(|()| self.fs.walk(&caller, obj, wname))
            };
            match step {
                Ok(next) => {
                    if let Some((old, _)) = at.replace(next) {
                        self.fs.release(old);
                    }
                    if let Some(slot) = qids.get_mut(i) {
                        *slot = next.1;
                    }
                    walked = i + 1;
                    name = String::from(wname);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            if let Some((o, _)) = at {
                self.fs.release(o);
            }
            if walked == 0 {
                return Err(e);
            }
            let wqids =
                WalkQids::new(qids.get(..walked).unwrap_or(&[])).map_err(|_| FsError::Invalid)?;
            encode_into(out, ctx.tag, Msg::Rwalk(codec::Rwalk { wqids }));
            return Ok(());
        }
        let (obj, qid) = match at {
            Some(x) => x,
            None => (self.fs.clone_obj(start)?, start_qid),
        };
        let entry = Self::new_fid(obj, qid, uid, name);
        if m.newfid == m.fid {
            let old = self.session(ctx.sid)?.fids.insert(m.fid, entry);
            if let Some(old) = old {
                self.forget(old);
            }
        } else {
            self.bind(ctx, m.newfid, entry)?;
        }
        let wqids =
            WalkQids::new(qids.get(..walked).unwrap_or(&[])).map_err(|_| FsError::Invalid)?;
        encode_into(out, ctx.tag, Msg::Rwalk(codec::Rwalk { wqids }));
        Ok(())
    }

    fn open(&mut self, ctx: Ctx, fid: Fid, flags: u32) -> Result<Qid, FsError> {
        let (obj, qid, uid) = {
            let f = self.fid(ctx, fid)?;
            if f.open.is_some() || f.xattr.is_some() {
                return Err(FsError::BadFid);
            }
            (f.obj, f.qid, f.uid)
        };
        let open = open_of(flags);
        if qid.ty.contains(QidType::DIR) && open.write {
            return Err(FsError::IsDir);
        }
        let caller = self.caller(ctx, uid);
        let qid = self.fs.open(&caller, obj, flags)?;
        let f = self.fid(ctx, fid)?;
        f.open = Some(open);
        f.qid = qid;
        Ok(qid)
    }

    fn create(
        &mut self,
        ctx: Ctx,
        fid: Fid,
        name: &str,
        flags: u32,
        mode: u32,
        gid: u32,
    ) -> Result<Qid, FsError> {
        check_name(name)?;
        let (dir, uid) = self.dir(ctx, fid)?;
        if self.fid(ctx, fid)?.open.is_some() {
            return Err(FsError::BadFid);
        }
        let caller = self.caller(ctx, uid);
        let (obj, qid) = self.fs.create(&caller, dir, name, flags, mode, gid)?;
        // The fid now stands for the new, open file.
        let f = self.fid(ctx, fid)?;
        let old = core::mem::replace(&mut f.obj, obj);
        f.qid = qid;
        f.name = String::from(name);
        f.open = Some(open_of(flags));
        self.fs.release(old);
        Ok(qid)
    }

    fn create9(&mut self, ctx: Ctx, m: codec::Tcreate<'_>) -> Result<Qid, FsError> {
        if m.perm & codec::DMDIR == 0 {
            let flags = lflags_of_open(m.mode) | LOpenFlags::CREAT.bits() | LOpenFlags::EXCL.bits();
            return self.create(ctx, m.fid, m.name, flags, m.perm & 0o777, u32::MAX);
        }
        check_name(m.name)?;
        let (dir, uid) = self.dir(ctx, m.fid)?;
        if self.fid(ctx, m.fid)?.open.is_some() {
            return Err(FsError::BadFid);
        }
        let caller = self.caller(ctx, uid);
        self.fs
            .mkdir(&caller, dir, m.name, m.perm & 0o777, u32::MAX)?;
        let (obj, _) = self.fs.walk(&caller, dir, m.name)?;
        let qid = match self.fs.open(&caller, obj, 0) {
            Ok(q) => q,
            Err(e) => {
                self.fs.release(obj);
                return Err(e);
            }
        };
        let f = self.fid(ctx, m.fid)?;
        let old = core::mem::replace(&mut f.obj, obj);
        f.qid = qid;
        f.name = String::from(m.name);
        f.open = Some(Open {
            read: true,
            write: false,
        });
        self.fs.release(old);
        Ok(qid)
    }

    fn wstat(&mut self, ctx: Ctx, m: codec::Twstat<'_>) -> Result<(), FsError> {
        let (obj, _, uid) = self.file(ctx, m.fid)?;
        let st = m.stat.get();
        let set = SetAttr {
            mode: (st.mode != u32::MAX).then_some(st.mode & 0o777),
            size: (st.length != u64::MAX).then_some(st.length),
            mtime: (st.mtime != u32::MAX).then_some(SetTime::At(Timespec {
                sec: u64::from(st.mtime),
                nsec: 0,
            })),
            atime: (st.atime != u32::MAX).then_some(SetTime::At(Timespec {
                sec: u64::from(st.atime),
                nsec: 0,
            })),
            ..SetAttr::default()
        };
        let caller = self.caller(ctx, uid);
        if set != SetAttr::default() {
            self.fs.setattr(&caller, obj, &set)?;
        }
        let current = self.fid(ctx, m.fid)?.name.clone();
        if !st.name.is_empty() && st.name != current {
            check_name(st.name)?;
            self.fs.rename(&caller, obj, None, st.name)?;
            self.fid(ctx, m.fid)?.name = String::from(st.name);
        }
        Ok(())
    }

    fn read(
        &mut self,
        ctx: Ctx,
        fid: Fid,
        offset: u64,
        count: u32,
        out: &mut Replies,
    ) -> Result<Outcome, FsError> {
        let max = ctx.msize.saturating_sub(RREAD_HEADER_LEN as u32);
        let count = count.min(max);
        let (obj, uid) = match read_from(self.session(ctx.sid)?, fid)? {
            ReadFrom::Xattr(value) => {
                let data = crate::node::slice_at(value, offset, count);
                encode_into(out.buf(), ctx.tag, Msg::Rread(codec::Rread { data }));
                return Ok(Outcome::Replied);
            }
            ReadFrom::Dir => {
                return match ctx.dialect {
                    Dialect::Base => self.read_dir_stats(ctx, fid, offset, count, out.buf()),
                    Dialect::Linux => Err(FsError::IsDir),
                };
            }
            ReadFrom::File(obj, uid) => (obj, uid),
        };
        let caller = self.caller(ctx, uid);
        if count >= SHARE_MIN
            && let Some(r) = self.fs.read_shared(&caller, obj, offset, count)
        {
            out.push_rread(ctx.tag, r?, count)?;
            return Ok(Outcome::Replied);
        }
        let out = out.buf();
        let start = out.len();
        out.resize(start + RREAD_HEADER_LEN + count as usize, 0);
        let io = match out.get_mut(start + RREAD_HEADER_LEN..) {
            Some(buf) => self.fs.read(&caller, obj, offset, buf),
            None => Io::Ready(Err(FsError::Io)),
        };
        match io {
            Io::Ready(Ok(n)) => {
                finish_rread(out, start, ctx.tag, n.min(count as usize) as u32)?;
                Ok(Outcome::Replied)
            }
            Io::Ready(Err(e)) => {
                out.truncate(start);
                Err(e)
            }
            Io::Defer => {
                out.truncate(start);
                self.defer(ctx, caller.token, PendingKind::Read { count })
            }
        }
    }

    /// A `Tread` answered through `&self` if the provider reads the file
    /// now ([`Filesystem::try_read_shared`], [`Filesystem::try_read`]):
    /// `None` (nothing appended) when it declines, or for a 9P2000
    /// directory read, which moves the fid's cursor.
    fn read_now(
        &self,
        s: &Session,
        ctx: Ctx,
        m: &codec::Tread,
        out: &mut Replies,
    ) -> Option<Result<(), FsError>> {
        let max = ctx.msize.saturating_sub(RREAD_HEADER_LEN as u32);
        let count = m.count.min(max);
        let (obj, uid) = match read_from(s, m.fid) {
            Err(e) => return Some(Err(e)),
            Ok(ReadFrom::Xattr(value)) => {
                let data = crate::node::slice_at(value, m.offset, count);
                encode_into(out.buf(), ctx.tag, Msg::Rread(codec::Rread { data }));
                return Some(Ok(()));
            }
            Ok(ReadFrom::Dir) => {
                return match ctx.dialect {
                    Dialect::Base => None,
                    Dialect::Linux => Some(Err(FsError::IsDir)),
                };
            }
            Ok(ReadFrom::File(obj, uid)) => (obj, uid),
        };
        let caller = caller_of(ctx, uid, Token(self.next_token));
        if count >= SHARE_MIN
            && let Some(r) = self.fs.try_read_shared(&caller, obj, m.offset, count)
        {
            return Some(r.and_then(|data| out.push_rread(ctx.tag, data, count)));
        }
        let out = out.buf();
        let start = out.len();
        out.extend_from_slice(&[0; RREAD_HEADER_LEN]);
        match self.fs.try_read(&caller, obj, m.offset, count, out) {
            Some(Ok(())) => Some(finish_rread(out, start, ctx.tag, count)),
            other => {
                out.truncate(start);
                other
            }
        }
    }

    fn read_dir_stats(
        &mut self,
        ctx: Ctx,
        fid: Fid,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, FsError> {
        let (obj, uid, mut cookie, reached) = {
            let f = self.fid(ctx, fid)?;
            (f.obj, f.uid, f.dir_cookie, f.dir_offset)
        };
        if offset == 0 {
            cookie = 0;
        } else if offset != reached {
            return Err(FsError::Invalid);
        }
        let caller = self.caller(ctx, uid);
        let mut list = alloc::vec![0u8; count.max(512) as usize];
        let mut w = DirEntryWriter::new(&mut list);
        self.fs.readdir(&caller, obj, cookie, &mut w)?;
        let list = w.finish();
        let mut buf = alloc::vec![0u8; count as usize];
        let mut used = 0usize;
        for e in codec::DirEntries::new(list) {
            let Ok(e) = e else { break };
            if e.name == "." || e.name == ".." {
                cookie = e.offset;
                continue;
            }
            let Ok((child, _)) = self.fs.walk(&caller, obj, e.name) else {
                cookie = e.offset;
                continue;
            };
            let attr = self.fs.getattr(&caller, child);
            self.fs.release(child);
            let Ok(attr) = attr else {
                cookie = e.offset;
                continue;
            };
            let st = stat_of(&attr, e.name);
            match buf.get_mut(used..).map(|dst| st.encode(dst)) {
                Some(Ok(n)) => {
                    used += n;
                    cookie = e.offset;
                }
                _ => break,
            }
        }
        let f = self.fid(ctx, fid)?;
        f.dir_cookie = cookie;
        f.dir_offset = offset + used as u64;
        let data = buf.get(..used).unwrap_or(&[]);
        encode_into(out, ctx.tag, Msg::Rread(codec::Rread { data }));
        Ok(Outcome::Replied)
    }

    fn write(
        &mut self,
        ctx: Ctx,
        fid: Fid,
        offset: u64,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Outcome, FsError> {
        let f = self.fid(ctx, fid)?;
        if !f.open.is_some_and(|o| o.write) {
            return Err(FsError::BadFid);
        }
        let count = u32::try_from(data.len()).map_err(|_| FsError::TooBig)?;
        if let Some(Xattr::Write { size, buf, .. }) = &mut f.xattr {
            if offset != buf.len() as u64 || buf.len() as u64 + u64::from(count) > *size {
                return Err(FsError::Invalid);
            }
            buf.extend_from_slice(data);
            encode_into(out, ctx.tag, Msg::Rwrite(codec::Rwrite { count }));
            return Ok(Outcome::Replied);
        }
        let (obj, uid) = (f.obj, f.uid);
        let caller = self.caller(ctx, uid);
        match self.fs.write(&caller, obj, offset, data) {
            Io::Ready(Ok(count)) => {
                encode_into(out, ctx.tag, Msg::Rwrite(codec::Rwrite { count }));
                Ok(Outcome::Replied)
            }
            Io::Ready(Err(e)) => Err(e),
            Io::Defer => self.defer(ctx, caller.token, PendingKind::Write),
        }
    }

    fn readdir(&mut self, ctx: Ctx, m: codec::Treaddir, out: &mut Vec<u8>) -> Result<(), FsError> {
        let f = self.fid(ctx, m.fid)?;
        if f.xattr.is_some() || !f.open.is_some_and(|o| o.read) {
            return Err(FsError::BadFid);
        }
        if !f.qid.ty.contains(QidType::DIR) {
            return Err(FsError::NotDir);
        }
        let (obj, uid) = (f.obj, f.uid);
        let caller = self.caller(ctx, uid);
        let max = ctx.msize.saturating_sub(RREAD_HEADER_LEN as u32);
        let mut buf = alloc::vec![0u8; m.count.min(max) as usize];
        let mut w = DirEntryWriter::new(&mut buf);
        self.fs.readdir(&caller, obj, m.offset, &mut w)?;
        let data = w.finish();
        encode_into(out, ctx.tag, Msg::Rreaddir(codec::Rreaddir { data }));
        Ok(())
    }

    fn lock_target(&mut self, ctx: Ctx, fid: Fid) -> Result<u64, FsError> {
        let f = self.fid(ctx, fid)?;
        // Locks need an open file, as fcntl needs an open descriptor.
        if f.xattr.is_some() || f.open.is_none() {
            return Err(FsError::BadFid);
        }
        Ok(f.qid.path)
    }

    fn lock(&mut self, ctx: Ctx, m: codec::Tlock<'_>) -> Result<LockStatus, FsError> {
        let file = self.lock_target(ctx, m.fid)?;
        let kind = lock_kind(m.lock_type)?;
        let owner = LockOwner {
            session: ctx.sid,
            client: String::from(m.client_id),
            pid: m.proc_id,
        };
        let end = range_end(m.start, m.length);
        match self.locks.set(file, &owner, kind, m.start, end) {
            Ok(()) => {
                if kind.is_some() {
                    let f = self.fid(ctx, m.fid)?;
                    if !f.lockers.contains(&owner) {
                        f.lockers.push(owner);
                    }
                }
                Ok(LockStatus::SUCCESS)
            }
            // The Linux client retries a blocking lock that answers BLOCKED
            // and turns it into EAGAIN for a non-blocking one.
            Err(FsError::Again) => Ok(LockStatus::BLOCKED),
            Err(FsError::NoLocks) => Ok(LockStatus::ERROR),
            Err(e) => Err(e),
        }
    }

    fn getlock(
        &mut self,
        ctx: Ctx,
        m: codec::Tgetlock<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), FsError> {
        let file = self.lock_target(ctx, m.fid)?;
        let owner = LockOwner {
            session: ctx.sid,
            client: String::from(m.client_id),
            pid: m.proc_id,
        };
        let Some(kind) = lock_kind(m.lock_type)? else {
            return Err(FsError::Invalid);
        };
        let end = range_end(m.start, m.length);
        let reply = match self.locks.conflict(file, &owner, kind, m.start, end) {
            Some(l) => codec::Rgetlock {
                lock_type: match l.kind {
                    LockKind::Read => LockType::RDLCK,
                    LockKind::Write => LockType::WRLCK,
                },
                start: l.start,
                length: if l.end == u64::MAX {
                    0
                } else {
                    l.end - l.start + 1
                },
                proc_id: l.owner.pid,
                client_id: &l.owner.client,
            },
            None => codec::Rgetlock {
                lock_type: LockType::UNLCK,
                start: m.start,
                length: m.length,
                proc_id: m.proc_id,
                client_id: m.client_id,
            },
        };
        encode_into(out, ctx.tag, Msg::Rgetlock(reply));
        Ok(())
    }

    fn defer(&mut self, ctx: Ctx, token: Token, kind: PendingKind) -> Result<Outcome, FsError> {
        self.next_token += 1;
        let max = self.config.max_inflight;
        let s = self.session(ctx.sid)?;
        if s.pending.len() >= max {
            self.fs.cancel(token);
            return Err(FsError::Again);
        }
        s.pending.insert(ctx.tag, Pending { token, kind });
        self.tokens.insert(token, (ctx.sid, ctx.tag));
        Ok(Outcome::Deferred {
            token,
            node: NodeId::NONE,
        })
    }

    /// Finishes a deferred read or write: appends its reply to `out` and
    /// returns its session (`None` if it was flushed or its session closed).
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
        match (pending.kind, result) {
            (PendingKind::Read { count }, Completion::Read(Ok(data))) => {
                let data = data.get(..data.len().min(count as usize)).unwrap_or(&[]);
                encode_into(out, tag, Msg::Rread(codec::Rread { data }));
            }
            (PendingKind::Write, Completion::Write(Ok(count))) => {
                encode_into(out, tag, Msg::Rwrite(codec::Rwrite { count }));
            }
            (_, Completion::Read(Err(e)) | Completion::Write(Err(e))) => {
                encode_into(out, tag, error_msg(dialect, e));
            }
            _ => encode_into(out, tag, error_msg(dialect, FsError::Io)),
        }
        Some(sid)
    }
}

fn rgetattr(a: &Attr, mask: GetattrMask) -> codec::Rgetattr {
    let (atime_sec, atime_nsec) = ts(a.atime);
    let (mtime_sec, mtime_nsec) = ts(a.mtime);
    let (ctime_sec, ctime_nsec) = ts(a.ctime);
    codec::Rgetattr::new()
        .with_valid(mask & GetattrMask::BASIC)
        .with_qid(a.qid)
        .with_mode(a.mode)
        .with_uid(a.uid)
        .with_gid(a.gid)
        .with_nlink(a.nlink)
        .with_rdev(a.rdev)
        .with_size(a.size)
        .with_blksize(a.blksize)
        .with_blocks(a.blocks)
        .with_atime_sec(atime_sec)
        .with_atime_nsec(atime_nsec)
        .with_mtime_sec(mtime_sec)
        .with_mtime_nsec(mtime_nsec)
        .with_ctime_sec(ctime_sec)
        .with_ctime_nsec(ctime_nsec)
}

fn stat_of<'n>(a: &Attr, name: &'n str) -> Stat<'n> {
    let dir = a.mode & file_type::S_IFMT == file_type::S_IFDIR;
    let mut mode = a.mode & 0o777;
    if dir {
        mode |= codec::DMDIR;
    }
    Stat {
        ty: 0,
        dev: 0,
        qid: a.qid,
        mode,
        atime: u32::try_from(a.atime.sec).unwrap_or(u32::MAX),
        mtime: u32::try_from(a.mtime.sec).unwrap_or(u32::MAX),
        length: if dir { 0 } else { a.size },
        name: if name.is_empty() { "/" } else { name },
        uid: "",
        gid: "",
        muid: "",
    }
}
