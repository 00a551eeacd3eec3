//! [`Remote`]: one live Secure9P connection to a GPU bridge, with the fids
//! NineDoor holds on it: one attach per forwarded principal (under its
//! mirror ticket, see [`mirror`](super::mirror)) and one fid per open of a
//! forwarded file. Every call has a deadline; a connection that closes,
//! breaks the protocol or misses a deadline is marked dead at once, so the
//! link reconnects and later requests fail fast with `EHOSTUNREACH`
//! instead of waiting on it. The socket itself is watched too: the moment
//! the bridge closes it or it fails (a bridge killed mid-session), the
//! connection is marked dead, without waiting for a call to time out.

use crate::host::daemon::unix_now;
use crate::host::mirror::Mirror;
use crate::{GpuFile, GpuRequest};
use secure9p_core::codec::{Dialect, Fid, IOHDRSZ, LOpenFlags};
use secure9p_core::{FsError, TicketId};
use secure9p_transport::client::{CallError, Connection};
use secure9p_transport::tls::TlsClient;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

/// Requests NineDoor keeps in flight on one bridge connection: below the
/// bridge's per-session limit (64 by default), so a burst queues here
/// instead of being refused there with `EAGAIN`.
pub(crate) const MAX_BRIDGE_INFLIGHT: usize = 48;
/// Fids NineDoor holds on one bridge connection (attaches and opens):
/// below the bridge's per-session limit (1024 by default). Past it, opening
/// another forwarded file fails with `EMFILE`.
pub(crate) const MAX_BRIDGE_FIDS: usize = 960;

/// An attach under one principal's mirror ticket.
#[derive(Debug, Clone, Copy)]
struct Attached {
    fid: Fid,
    expires: u64,
}

/// Whether a connection is alive, shared with its socket.
#[derive(Debug, Default)]
pub(crate) struct Health {
    dead: AtomicBool,
    /// Woken when the connection is marked dead.
    lost: Notify,
}

impl Health {
    fn kill(&self) {
        self.dead.store(true, Ordering::Release);
        // Every waiter: a `Notified` created before this is woken even if
        // not yet polled, and `Remote::lost` checks the flag after creating
        // its own, so none sleeps through it.
        self.lost.notify_waiters();
    }
}

/// A socket (TCP, or TLS over it) that marks its connection dead at end of
/// stream or on an error.
struct Watched<S> {
    inner: S,
    health: Arc<Health>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                self.health.kill();
            }
            Poll::Ready(Err(_)) => self.health.kill(),
            _ => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Err(_)) = &polled {
            self.health.kill();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One connection to a bridge.
pub(crate) struct Remote {
    conn: Connection,
    timeout: Duration,
    health: Arc<Health>,
    inflight: Semaphore,
    fids: AtomicUsize,
    attaches: tokio::sync::Mutex<HashMap<TicketId, Attached>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("dead", &self.is_dead())
            .field("fids", &self.fids.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A fid NineDoor opened on a bridge for one open of a forwarded file.
#[derive(Debug)]
pub(crate) struct OpenFid {
    pub(crate) remote: Arc<Remote>,
    pub(crate) fid: Fid,
}

impl OpenFid {
    /// Clunks the fid (if its connection is still alive).
    pub(crate) async fn close(self) {
        let _ = self.remote.call(self.remote.conn.clunk(self.fid)).await;
        self.remote.fids.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a forwarded file is opened on the bridge: reads of the read-only
/// files, reads and writes of the others (the bridge keeps a write's reply
/// for the same fid to read back).
fn open_flags(file: GpuFile) -> LOpenFlags {
    if file.read_only() {
        LOpenFlags::empty()
    } else {
        LOpenFlags::RDWR
    }
}

impl Remote {
    /// Connects to `addr` and negotiates 9P2000.L with `msize`, all within
    /// `timeout`, which then bounds every call.
    /// Connects to `addr`, over TLS verifying the bridge's certificate
    /// names `tls.1` when `tls` is given.
    pub(crate) async fn connect(
        addr: &str,
        msize: u32,
        timeout: Duration,
        tls: Option<(&TlsClient, &str)>,
    ) -> Result<Arc<Remote>, String> {
        let health = Arc::new(Health::default());
        let connect = async {
            let health = health.clone();
            match tls {
                Some((client, name)) => {
                    let inner = client.connect_stream(addr, name).await?;
                    Connection::over(Watched { inner, health }, msize, Dialect::Linux).await
                }
                None => {
                    let inner = TcpStream::connect(addr).await?;
                    inner.set_nodelay(true)?;
                    Connection::over(Watched { inner, health }, msize, Dialect::Linux).await
                }
            }
        };
        let conn = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
            Err(_) => return Err(format!("no answer within {timeout:?}")),
        };
        Ok(Arc::new(Remote {
            conn,
            timeout,
            health,
            inflight: Semaphore::new(MAX_BRIDGE_INFLIGHT),
            fids: AtomicUsize::new(0),
            attaches: tokio::sync::Mutex::new(HashMap::new()),
        }))
    }

    /// Resolves when the connection is marked dead (at once if it is).
    pub(crate) async fn lost(&self) {
        let notified = self.health.lost.notified();
        if !self.is_dead() {
            notified.await;
        }
    }

    /// The connection.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Whether the connection was given up.
    pub(crate) fn is_dead(&self) -> bool {
        self.health.dead.load(Ordering::Acquire)
    }

    /// Gives the connection up.
    pub(crate) fn kill(&self) {
        self.health.kill();
    }

    /// Runs one call under the deadline and the in-flight cap. The
    /// bridge's errno comes back as it is; a lost connection is
    /// `EHOSTUNREACH`, a missed deadline `ETIMEDOUT`, a protocol error
    /// `EIO`, and each of those kills the connection.
    pub(crate) async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, FsError> {
        if self.is_dead() {
            return Err(FsError::Unreachable);
        }
        let _permit = self
            .inflight
            .acquire()
            .await
            .map_err(|_| FsError::Unreachable)?;
        let call = async {
            tokio::select! {
                r = call => Some(r),
                () = self.lost() => None,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(None) => Err(FsError::Unreachable),
            Ok(Some(Ok(v))) => Ok(v),
            Ok(Some(Err(CallError::Fs(e)))) => Err(e),
            Ok(Some(Err(CallError::Closed | CallError::Io(_)))) => {
                self.kill();
                Err(FsError::Unreachable)
            }
            Ok(Some(Err(_))) => {
                self.kill();
                Err(FsError::Io)
            }
            Err(_) => {
                self.kill();
                Err(FsError::TimedOut)
            }
        }
    }

    /// The attach of `request`'s principal, made with its mirror ticket on
    /// first use. Attaches whose ticket has expired are clunked on the way.
    async fn attach_for(
        &self,
        mirror: &Mirror,
        request: &GpuRequest,
        remote_gpu: &str,
    ) -> Result<Fid, FsError> {
        let id = request.ticket.ok_or(FsError::AccessDenied)?;
        let now = unix_now();
        let mut attaches = self.attaches.lock().await;
        if let Some(a) = attaches.get(&id).filter(|a| a.expires > now) {
            return Ok(a.fid);
        }
        let expired: Vec<TicketId> = attaches
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for old in expired {
            if let Some(a) = attaches.remove(&old) {
                let _ = self.call(self.conn.clunk(a.fid)).await;
                self.fids.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.reserve_fid()?;
        let minted = match mirror.of(request, remote_gpu) {
            Ok(m) => m,
            Err(e) => {
                self.fids.fetch_sub(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        match self
            .call(self.conn.attach(&request.subject, &minted.text))
            .await
        {
            Ok(fid) => {
                attaches.insert(
                    id,
                    Attached {
                        fid,
                        expires: minted.claims.expires,
                    },
                );
                Ok(fid)
            }
            Err(e) => {
                self.fids.fetch_sub(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn reserve_fid(&self) -> Result<(), FsError> {
        let held = self.fids.fetch_add(1, Ordering::Relaxed);
        if held >= MAX_BRIDGE_FIDS {
            self.fids.fetch_sub(1, Ordering::Relaxed);
            return Err(FsError::TooManyFids);
        }
        Ok(())
    }

    /// Opens `/gpu/<remote_gpu>/<file>` on the bridge as `request`'s principal.
    pub(crate) async fn open(
        self: &Arc<Self>,
        mirror: &Mirror,
        request: &GpuRequest,
        remote_gpu: &str,
    ) -> Result<OpenFid, FsError> {
        let root = self.attach_for(mirror, request, remote_gpu).await?;
        self.reserve_fid()?;
        let path = format!("gpu/{remote_gpu}/{}", request.file.name());
        let fid = match self.call(self.conn.walk(root, &path)).await {
            Ok(fid) => fid,
            Err(e) => {
                self.fids.fetch_sub(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let open = OpenFid {
            remote: self.clone(),
            fid,
        };
        match self
            .call(self.conn.lopen(fid, open_flags(request.file)))
            .await
        {
            Ok(_) => Ok(open),
            Err(e) => {
                open.close().await;
                Err(e)
            }
        }
    }

    /// Reads at most `count` bytes at `offset` (fewer if the connection's
    /// msize is smaller: a short read is a read).
    pub(crate) async fn read(&self, fid: Fid, offset: u64, count: u32) -> Result<Vec<u8>, FsError> {
        let count = count.min(self.conn.msize().saturating_sub(IOHDRSZ));
        self.call(self.conn.read(fid, offset, count))
            .await
            .map(|b| b.to_vec())
    }

    /// Writes `data` at `offset` in one write (`EFBIG` if it cannot fit one
    /// message: a job descriptor or command must arrive whole).
    pub(crate) async fn write(&self, fid: Fid, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        if data.len() > self.conn.msize().saturating_sub(IOHDRSZ) as usize {
            return Err(FsError::TooBig);
        }
        self.call(self.conn.write(fid, offset, data)).await
    }
}
