//! `connect`: a pipelined 9P client over TCP or Unix sockets, driving the
//! sans-IO `secure9p_core::Client` engine. Many requests may be in
//! flight at once; a reader task hands each reply to the caller waiting on
//! its tag. File verbs (`attach`, `walk`, `open`, `read`, `write`, `readdir`,
//! ...) are thin wrappers over [`Connection::call`].

use crate::framing::{FrameError, NinePCodec};
use bytes::{Bytes, BytesMut};
use secure9p_core::codec::{
    self, CodecError, DecodeConfig, Dialect, DirEntries, Fid, Frame, GetattrMask, LOpenFlags, Msg,
    Qid, Tag, WalkNames,
};
use secure9p_core::{Client, ClientError, FsError};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Decoder;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The server answered with an error.
    #[error("{0}")]
    Fs(#[from] FsError),
    /// The client engine refused the request or the reply.
    #[error("protocol: {0}")]
    Client(#[from] ClientError),
    /// A reply could not be decoded.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// The reply was not of the expected kind.
    #[error("unexpected reply {0}")]
    Unexpected(&'static str),
    /// The connection is gone.
    #[error("connection closed")]
    Closed,
    /// Connecting failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// One reply frame, owned.
#[derive(Debug, Clone)]
pub struct Response {
    frame: Bytes,
    cfg: DecodeConfig,
}

impl Response {
    /// The reply message, borrowing from the frame.
    pub fn msg(&self) -> Result<Msg<'_>, CallError> {
        Ok(Frame::decode(&self.frame, self.cfg)?.msg)
    }

    /// The reply, or the error it carries.
    pub fn result(&self) -> Result<Msg<'_>, CallError> {
        match self.msg()? {
            Msg::Rlerror(e) => Err(FsError::from_errno(e.ecode).into()),
            Msg::Rerror(e) => Err(FsError::from_message(e.ename).into()),
            m => Ok(m),
        }
    }

    /// The whole frame.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }
}

/// A request in flight, from [`Connection::start`].
pub struct PendingReply {
    /// The request's tag.
    pub tag: Tag,
    rx: oneshot::Receiver<Bytes>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PendingReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReply")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl PendingReply {
    /// Waits for the reply (`CallError::Closed` if it was flushed and will never come).
    pub async fn wait(self) -> Result<Response, CallError> {
        let frame = self.rx.await.map_err(|_| self.inner.gone())?;
        let cfg = lock(&self.inner.client).decode_config();
        Ok(Response { frame, cfg })
    }
}

type Waiters = HashMap<Tag, oneshot::Sender<Bytes>>;

struct Inner {
    client: Mutex<Client>,
    waiters: Mutex<Waiters>,
    tx: mpsc::Sender<Vec<u8>>,
    /// Why reading broke, if it failed rather than reached end of stream
    /// (a TLS server refusing this client's certificate after the
    /// handshake says so in an alert, which lands here).
    broken: Mutex<Option<(io::ErrorKind, String)>>,
}

impl Inner {
    /// The error for a call whose reply will never come.
    fn gone(&self) -> CallError {
        match &*lock(&self.broken) {
            Some((kind, why)) => CallError::Io(io::Error::new(*kind, why.clone())),
            None => CallError::Closed,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A client connection. Cheap to clone; all clones share the session.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

/// Connects over TCP and negotiates 9P2000.L with `msize`.
pub async fn connect_tcp(
    addr: impl tokio::net::ToSocketAddrs,
    msize: u32,
) -> Result<Connection, CallError> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Connection::over(s, msize, Dialect::Linux).await
}

/// Connects over a Unix socket and negotiates 9P2000.L with `msize`.
#[cfg(unix)]
pub async fn connect_unix(
    path: impl AsRef<std::path::Path>,
    msize: u32,
) -> Result<Connection, CallError> {
    let s = tokio::net::UnixStream::connect(path).await?;
    Connection::over(s, msize, Dialect::Linux).await
}

impl Connection {
    /// Runs the client over any byte stream and negotiates `dialect`.
    pub async fn over<S>(stream: S, msize: u32, dialect: Dialect) -> Result<Connection, CallError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (rd, mut wr) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
        tokio::spawn(async move {
            let mut next = rx.recv().await;
            while let Some(mut buf) = next.take() {
                next = crate::server::join_queued(&mut rx, &mut buf);
                // On TLS a write can leave records in rustls' buffer: the
                // flush sends them (a no-op on a plain socket).
                if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
                if next.is_none() {
                    next = rx.recv().await;
                }
            }
            let _ = wr.shutdown().await;
        });
        let inner = Arc::new(Inner {
            client: Mutex::new(Client::new(msize)),
            waiters: Mutex::new(HashMap::new()),
            tx,
            broken: Mutex::new(None),
        });
        tokio::spawn(read_loop(rd, Arc::downgrade(&inner), msize));
        let conn = Connection { inner };
        let mut out = Vec::new();
        let tag = lock(&conn.inner.client).version(dialect, &mut out)?;
        let rep = conn.send_and_wait(tag, out).await?;
        match rep.msg()? {
            Msg::Rversion(v) if v.version == dialect.version() => Ok(conn),
            _ => Err(CallError::Client(ClientError::VersionRefused)),
        }
    }

    /// The negotiated msize.
    pub fn msize(&self) -> u32 {
        lock(&self.inner.client).msize()
    }

    /// A fresh fid number.
    pub fn alloc_fid(&self) -> Fid {
        lock(&self.inner.client).alloc_fid()
    }

    /// Returns a fid number after its clunk.
    pub fn free_fid(&self, fid: Fid) {
        lock(&self.inner.client).free_fid(fid)
    }

    async fn send_and_wait(&self, tag: Tag, out: Vec<u8>) -> Result<Response, CallError> {
        let rx = {
            let (stx, srx) = oneshot::channel();
            lock(&self.inner.waiters).insert(tag, stx);
            srx
        };
        self.inner
            .tx
            .send(out)
            .await
            .map_err(|_| CallError::Closed)?;
        let frame = rx.await.map_err(|_| self.inner.gone())?;
        let cfg = lock(&self.inner.client).decode_config();
        Ok(Response { frame, cfg })
    }

    /// Sends one request and waits for its reply. Calls may be issued
    /// concurrently from many tasks: they are pipelined on the connection.
    pub async fn call<'m>(&self, msg: impl Into<Msg<'m>>) -> Result<Response, CallError> {
        let mut out = Vec::new();
        let tag = lock(&self.inner.client).request(msg, &mut out)?;
        self.send_and_wait(tag, out).await
    }

    /// Sends a request without waiting: returns its tag (to flush it) and a
    /// [`PendingReply`] to await.
    pub async fn start<'m>(&self, msg: impl Into<Msg<'m>>) -> Result<PendingReply, CallError> {
        let mut out = Vec::new();
        let tag = lock(&self.inner.client).request(msg, &mut out)?;
        let (stx, srx) = oneshot::channel();
        lock(&self.inner.waiters).insert(tag, stx);
        self.inner
            .tx
            .send(out)
            .await
            .map_err(|_| CallError::Closed)?;
        Ok(PendingReply {
            tag,
            rx: srx,
            inner: self.inner.clone(),
        })
    }

    /// Flushes request `oldtag`; returns once `Rflush` arrives.
    pub async fn flush(&self, oldtag: Tag) -> Result<(), CallError> {
        let mut out = Vec::new();
        let tag = lock(&self.inner.client).flush(oldtag, &mut out)?;
        let rep = self.send_and_wait(tag, out).await?;
        // The flushed request gets no reply now: wake its waiter with nothing.
        lock(&self.inner.waiters).remove(&oldtag);
        match rep.result()? {
            Msg::Rflush(_) => Ok(()),
            _ => Err(CallError::Unexpected("Tflush")),
        }
    }

    /// Attaches a new fid to the tree `aname` as `uname` (no numeric uid).
    pub async fn attach(&self, uname: &str, aname: &str) -> Result<Fid, CallError> {
        self.attach_as(uname, aname, u32::MAX).await
    }

    /// Attaches a new fid to the tree `aname` as `uname` with the numeric
    /// uid `n_uname` (`u32::MAX` for none): servers that map users, such as
    /// diod, go by the number.
    pub async fn attach_as(
        &self,
        uname: &str,
        aname: &str,
        n_uname: u32,
    ) -> Result<Fid, CallError> {
        let fid = self.alloc_fid();
        let r = self
            .call(codec::Tattach {
                fid,
                afid: Fid::NOFID,
                uname,
                aname,
                n_uname: Some(n_uname),
            })
            .await;
        self.expect_fid(fid, r, |m| matches!(m, Msg::Rattach(_)))
    }

    fn expect_fid(
        &self,
        fid: Fid,
        r: Result<Response, CallError>,
        ok: impl Fn(&Msg<'_>) -> bool,
    ) -> Result<Fid, CallError> {
        let good = match &r {
            Ok(rep) => rep.result().map(|m| ok(&m)),
            Err(_) => Ok(false),
        };
        match (r, good) {
            (Ok(_), Ok(true)) => Ok(fid),
            (Err(e), _) | (Ok(_), Err(e)) => {
                self.free_fid(fid);
                Err(e)
            }
            (Ok(_), Ok(false)) => {
                self.free_fid(fid);
                Err(CallError::Unexpected("reply"))
            }
        }
    }

    /// Walks from `fid` along `path` (split on `/`, 16 names per message) to a new fid.
    pub async fn walk(&self, fid: Fid, path: &str) -> Result<Fid, CallError> {
        let names: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let newfid = self.alloc_fid();
        let mut from = fid;
        let mut chunks: Vec<&[&str]> = names.chunks(codec::MAX_WALK_ELEMENTS).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let wnames = WalkNames::new(chunk)?;
            let rep = match self
                .call(codec::Twalk {
                    fid: from,
                    newfid,
                    wnames,
                })
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    self.release_walk(from, fid, newfid).await;
                    return Err(e);
                }
            };
            let walked = match rep.result() {
                Ok(Msg::Rwalk(w)) => w.wqids.len(),
                Ok(_) => usize::MAX,
                Err(e) => {
                    self.release_walk(from, fid, newfid).await;
                    return Err(e);
                }
            };
            if walked != chunk.len() {
                self.release_walk(from, fid, newfid).await;
                return Err(FsError::NotFound.into());
            }
            from = newfid;
        }
        Ok(newfid)
    }

    async fn release_walk(&self, from: Fid, start: Fid, newfid: Fid) {
        if from != start {
            let _ = self.clunk(newfid).await;
        } else {
            self.free_fid(newfid);
        }
    }

    /// Opens `fid` with Linux open flags; returns its qid and iounit.
    pub async fn lopen(&self, fid: Fid, flags: LOpenFlags) -> Result<(Qid, u32), CallError> {
        match self.call(codec::Tlopen { fid, flags }).await?.result()? {
            Msg::Rlopen(r) => Ok((r.qid, r.iounit)),
            _ => Err(CallError::Unexpected("Tlopen")),
        }
    }

    /// Reads at most `count` bytes at `offset`.
    pub async fn read(&self, fid: Fid, offset: u64, count: u32) -> Result<Bytes, CallError> {
        let rep = self.call(codec::Tread { fid, offset, count }).await?;
        let range = match rep.result()? {
            Msg::Rread(r) => {
                let base = rep.frame.as_ptr() as usize;
                let start = r.data.as_ptr() as usize - base;
                start..start + r.data.len()
            }
            _ => return Err(CallError::Unexpected("Tread")),
        };
        Ok(rep.frame.slice(range))
    }

    /// Reads the whole file from `offset` to its end.
    pub async fn read_to_end(&self, fid: Fid, mut offset: u64) -> Result<Vec<u8>, CallError> {
        // msize - IOHDRSZ (24), not msize - the 11-byte Rread header: diod
        // refuses with EIO a count above msize - IOHDRSZ, and the Linux
        // client never asks for more either.
        let chunk = self.msize().saturating_sub(codec::IOHDRSZ);
        let mut all = Vec::new();
        loop {
            let data = self.read(fid, offset, chunk).await?;
            if data.is_empty() {
                return Ok(all);
            }
            offset += data.len() as u64;
            all.extend_from_slice(&data);
        }
    }

    /// Writes `data` at `offset`; returns the bytes taken.
    pub async fn write(&self, fid: Fid, offset: u64, data: &[u8]) -> Result<u32, CallError> {
        match self
            .call(codec::Twrite { fid, offset, data })
            .await?
            .result()?
        {
            Msg::Rwrite(r) => Ok(r.count),
            _ => Err(CallError::Unexpected("Twrite")),
        }
    }

    /// Lists a directory opened for reading: (name, qid) pairs without `.` and `..`.
    pub async fn readdir(&self, fid: Fid) -> Result<Vec<(String, Qid)>, CallError> {
        // Same bound as `read_to_end`, which every server accepts.
        let count = self.msize().saturating_sub(codec::IOHDRSZ);
        let mut offset = 0;
        let mut all = Vec::new();
        loop {
            let rep = self.call(codec::Treaddir { fid, offset, count }).await?;
            let Msg::Rreaddir(r) = rep.result()? else {
                return Err(CallError::Unexpected("Treaddir"));
            };
            if r.data.is_empty() {
                return Ok(all);
            }
            for e in DirEntries::new(r.data) {
                let e = e?;
                offset = e.offset;
                if e.name != "." && e.name != ".." {
                    all.push((e.name.to_string(), e.qid));
                }
            }
        }
    }

    /// The attributes of `fid`.
    pub async fn getattr(&self, fid: Fid) -> Result<codec::Rgetattr, CallError> {
        match self
            .call(codec::Tgetattr {
                fid,
                request_mask: GetattrMask::BASIC,
            })
            .await?
            .result()?
        {
            Msg::Rgetattr(r) => Ok(*r),
            _ => Err(CallError::Unexpected("Tgetattr")),
        }
    }

    /// Clunks `fid` and frees its number.
    pub async fn clunk(&self, fid: Fid) -> Result<(), CallError> {
        let r = self.call(codec::Tclunk { fid }).await;
        self.free_fid(fid);
        match r?.result()? {
            Msg::Rclunk(_) => Ok(()),
            _ => Err(CallError::Unexpected("Tclunk")),
        }
    }
}

/// Reads replies and hands each to its waiter. It holds the connection only
/// weakly: when the last `Connection` (and `PendingReply`) is dropped, the
/// writer task ends and shuts the socket's write half, the server closes, and
/// this loop ends, so a dropped connection does not linger.
async fn read_loop<R: AsyncRead + Unpin>(mut rd: R, weak: Weak<Inner>, msize: u32) {
    let mut codec = NinePCodec::new(msize);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'outer: loop {
        let Some(inner) = weak.upgrade() else {
            break;
        };
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(FrameError::Io(_)) | Err(_) => break 'outer,
            };
            let tag = {
                let mut client = lock(&inner.client);
                match client.receive(&frame) {
                    Ok(rep) => rep.tag,
                    // A reply nobody waits for (a flushed request answered
                    // anyway) is dropped; anything else breaks the session.
                    Err(ClientError::UnknownTag(_)) => continue,
                    Err(_) => break 'outer,
                }
            };
            if let Some(w) = lock(&inner.waiters).remove(&tag) {
                let _ = w.send(frame);
            }
        }
        drop(inner);
        match rd.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                if let Some(inner) = weak.upgrade() {
                    *lock(&inner.broken) = Some((e.kind(), e.to_string()));
                }
                break;
            }
        }
    }
    // Wake every waiter: the connection is gone.
    if let Some(inner) = weak.upgrade() {
        lock(&inner.waiters).clear();
    }
}
