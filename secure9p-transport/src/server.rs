//! Socket runners: serve a 9P engine over TCP or Unix sockets.
//!
//! One task per connection reads frames, hands each to the engine under a
//! short lock and queues the replies for that connection's writer task.
//! Deferred requests are answered later through [`Shared::complete`], from
//! any task, so the replies of one connection can go out of order. Every
//! limit is configuration with a safe default ([`ServeConfig`]): connection
//! cap, idle timeout, partial-frame (slow sender) timeout, a bounded write
//! queue that pushes back on a slow reader, and graceful shutdown that
//! cancels pending work and sends what is queued before closing.

use crate::framing::NinePCodec;
use bytes::BytesMut;
use secure9p_core::{Completion, FsServer, Outcome, Server, SessionError, SessionId, Token};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

/// A 9P engine the runners can serve: [`Server`] itself, or a wrapper
/// around it (NineDoor's hive) that adds its own handling.
pub trait Engine: Send + 'static {
    /// Opens a session for a new connection.
    fn open_session(&mut self) -> SessionId;
    /// Closes a session: its pending work is cancelled, its fids clunked.
    fn close_session(&mut self, sid: SessionId);
    /// Handles one request frame; replies due now are appended to `out`.
    fn handle(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, SessionError>;
    /// Finishes a deferred request; returns the session its reply is for.
    fn complete(
        &mut self,
        token: Token,
        result: Completion,
        out: &mut Vec<u8>,
    ) -> Option<SessionId>;
    /// The msize the session negotiated (the engine's cap before that).
    fn msize(&self, sid: SessionId) -> u32;
}

impl Engine for Server {
    fn open_session(&mut self) -> SessionId {
        Server::open_session(self)
    }
    fn close_session(&mut self, sid: SessionId) {
        Server::close_session(self, sid);
    }
    fn handle(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, SessionError> {
        Server::handle(self, sid, frame, now, out)
    }
    fn complete(
        &mut self,
        token: Token,
        result: Completion,
        out: &mut Vec<u8>,
    ) -> Option<SessionId> {
        Server::complete(self, token, result, out)
    }
    fn msize(&self, sid: SessionId) -> u32 {
        Server::msize(self, sid).unwrap_or(self.config().max_msize)
    }
}

impl Engine for FsServer {
    fn open_session(&mut self) -> SessionId {
        FsServer::open_session(self)
    }
    fn close_session(&mut self, sid: SessionId) {
        FsServer::close_session(self, sid);
    }
    fn handle(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, SessionError> {
        FsServer::handle(self, sid, frame, now, out)
    }
    fn complete(
        &mut self,
        token: Token,
        result: Completion,
        out: &mut Vec<u8>,
    ) -> Option<SessionId> {
        FsServer::complete(self, token, result, out)
    }
    fn msize(&self, sid: SessionId) -> u32 {
        FsServer::msize(self, sid).unwrap_or(self.config().max_msize)
    }
}

/// Limits of a runner.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Most connections served at once; further ones are closed at accept.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A frame must arrive whole within this time of its first byte: a slow
    /// sender is closed instead of holding a buffer open.
    pub frame_timeout: Duration,
    /// Reply batches queued per connection before reading stops (backpressure
    /// on a client that does not read its replies).
    pub write_queue: usize,
}

/// Default connection cap: far above a hive's needs, far below fd limits.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default idle timeout: long enough for a `tail -f` that polls.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default partial-frame timeout.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames already queued for a socket are joined into one write up to this
/// many bytes: one system call (on TLS one record, whose plaintext is at
/// most 16 KiB) for many small replies instead of one each. Measured with
/// s9p-load (4 connections x 16 in flight, small requests): 2.5 times the
/// requests per second, plain and TLS alike.
const JOIN_BYTES: usize = 16 * 1024;

/// Appends to `buf` the frames already waiting in `rx` while the whole
/// stays within [`JOIN_BYTES`]; returns the first one that did not fit (a
/// large reply), to go out in the next write without a copy.
pub(crate) fn join_queued(rx: &mut mpsc::Receiver<Vec<u8>>, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    while buf.len() < JOIN_BYTES {
        let more = rx.try_recv().ok()?;
        if buf.len() + more.len() > JOIN_BYTES {
            return Some(more);
        }
        buf.extend_from_slice(&more);
    }
    None
}

/// Default reply batches queued per connection.
pub const DEFAULT_WRITE_QUEUE: usize = 64;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            write_queue: DEFAULT_WRITE_QUEUE,
        }
    }
}

/// Counters of a runner.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed at accept because the cap was reached.
    pub refused: AtomicU64,
    /// Connections closed for idling or for a slow partial frame.
    pub timed_out: AtomicU64,
    /// Connections closed because framing broke (oversize frame, garbage).
    pub framing_errors: AtomicU64,
    /// Connections open now (a TLS peer from its accept, handshake included).
    pub open: AtomicU64,
    /// TLS peers refused before reaching the engine: not TLS, no or a bad
    /// client certificate, a handshake aborted or stalled past the
    /// partial-frame timeout (always 0 on plain runners).
    pub handshake_failures: AtomicU64,
}

/// An engine shared by every connection of one or more runners.
pub struct Shared<E> {
    engine: Mutex<E>,
    routes: Mutex<HashMap<SessionId, mpsc::Sender<Vec<u8>>>>,
}

impl<E> std::fmt::Debug for Shared<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the engine half-updated in
    // a way later requests could exploit (each call is a whole request), so
    // keep serving rather than poison every connection.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<E: Engine> Shared<E> {
    /// Shares `engine`.
    pub fn new(engine: E) -> Arc<Self> {
        Arc::new(Shared {
            engine: Mutex::new(engine),
            routes: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `f` with the engine locked (to add nodes, revoke tickets, ...).
    /// Keep it short: every connection waits for the lock.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut E) -> R) -> R {
        f(&mut lock(&self.engine))
    }

    /// Finishes a deferred request and sends its reply to its connection.
    /// Returns false if the request was flushed or its connection closed.
    pub fn complete(&self, token: Token, result: Completion) -> bool {
        let mut out = Vec::new();
        let Some(sid) = lock(&self.engine).complete(token, result, &mut out) else {
            return false;
        };
        self.send(sid, out)
    }

    /// Queues bytes (whole frames) for the connection of session `sid`.
    fn send(&self, sid: SessionId, out: Vec<u8>) -> bool {
        let tx = lock(&self.routes).get(&sid).cloned();
        match tx {
            // A full queue drops the connection's reply rather than block a
            // completing task; the connection then times out on the client.
            Some(tx) => tx.try_send(out).is_ok(),
            None => false,
        }
    }
}

/// A running server: its address, counters and shutdown switch.
#[derive(Debug)]
pub struct Running {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<Stats>,
}

impl Running {
    /// The runner's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops accepting, closes every connection (pending work cancelled,
    /// queued replies sent) and waits until all are gone.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// A listener the runner can accept from.
pub trait Listener: Send + 'static {
    /// The connection type.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// Accepts one connection.
    fn accept(&mut self) -> impl std::future::Future<Output = io::Result<Self::Stream>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        let (s, _) = tokio::net::TcpListener::accept(self).await?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        let (s, _) = tokio::net::UnixListener::accept(self).await?;
        Ok(s)
    }
}

/// What turns an accepted stream into the one 9P runs over, inside the
/// connection's own task (so a slow peer never holds up accepting): nothing
/// on plain sockets, the TLS handshake in `tls`. `None` closes the
/// connection before it reaches the engine.
pub(crate) trait Handshake<S>: Clone + Send + Sync + 'static {
    /// The stream the 9P connection runs over.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// Runs the handshake; must end by itself (a deadline from `config`).
    fn handshake(
        &self,
        stream: S,
        config: &ServeConfig,
        stats: &Stats,
    ) -> impl std::future::Future<Output = Option<Self::Stream>> + Send;
}

/// No handshake: 9P straight on the accepted stream.
#[derive(Clone, Copy)]
struct Plain;

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Handshake<S> for Plain {
    type Stream = S;
    async fn handshake(&self, stream: S, _: &ServeConfig, _: &Stats) -> Option<S> {
        Some(stream)
    }
}

/// Serves `shared` on `listener` until [`Running::shutdown`].
pub fn serve<E: Engine, L: Listener>(
    listener: L,
    shared: Arc<Shared<E>>,
    config: ServeConfig,
) -> Running {
    serve_with(listener, Plain, shared, config)
}

/// Serves `shared` on `listener`, each connection after `handshake`.
pub(crate) fn serve_with<E: Engine, L: Listener, H: Handshake<L::Stream>>(
    mut listener: L,
    handshake: H,
    shared: Arc<Shared<E>>,
    config: ServeConfig,
) -> Running {
    let (shutdown, mut stop) = watch::channel(false);
    let stats = Arc::new(Stats::default());
    let task_stats = stats.clone();
    let task = tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(config.max_connections));
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok(s) => s,
                        // Out of fds and the like: back off instead of spinning.
                        Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
                    };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        task_stats.refused.fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                        continue;
                    };
                    task_stats.accepted.fetch_add(1, Ordering::Relaxed);
                    let (shared, config, stats, mut stop) = (shared.clone(), config.clone(), task_stats.clone(), stop.clone());
                    let handshake = handshake.clone();
                    conns.spawn(async move {
                        stats.open.fetch_add(1, Ordering::Relaxed);
                        let upgraded = tokio::select! {
                            _ = stop.changed() => None,
                            s = handshake.handshake(stream, &config, &stats) => s,
                        };
                        if let Some(stream) = upgraded {
                            connection(stream, shared, &config, &stats, stop).await;
                        }
                        stats.open.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
            }
        }
        while conns.join_next().await.is_some() {}
    });
    Running {
        shutdown,
        task,
        stats,
    }
}

/// Serves one connection of `shared` over `stream` until it closes, times
/// out or the stop signal comes (for callers that accept connections
/// themselves, such as a QEMU socket or a test duplex).
pub async fn serve_connection<E: Engine, S>(stream: S, shared: Arc<Shared<E>>, config: &ServeConfig)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (_keep, stop) = watch::channel(false);
    connection(stream, shared, config, &Stats::default(), stop).await;
}

enum Closed {
    Eof,
    Io,
    Timeout,
    Framing,
    Shutdown,
}

async fn connection<E: Engine, S>(
    stream: S,
    shared: Arc<Shared<E>>,
    config: &ServeConfig,
    stats: &Stats,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let sid = shared.with_engine(|e| e.open_session());
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(config.write_queue.max(1));
    lock(&shared.routes).insert(sid, tx.clone());
    let writer = tokio::spawn(async move {
        let mut next = rx.recv().await;
        while let Some(mut buf) = next.take() {
            next = join_queued(&mut rx, &mut buf);
            // The flush matters on TLS: a write can return with records
            // still buffered in rustls, which only a flush (or the next
            // write) puts on the wire. On a plain socket it is a no-op.
            if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                break;
            }
            if next.is_none() {
                next = rx.recv().await;
            }
        }
        let _ = wr.shutdown().await;
    });

    let mut codec = NinePCodec::new(shared.with_engine(|e| e.msize(sid)));
    let mut buf = BytesMut::with_capacity(8192);
    let mut frame_started: Option<Instant> = None;
    let closed = 'conn: loop {
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => break 'conn Closed::Framing,
            };
            let mut out = Vec::new();
            let (result, msize) = shared.with_engine(|e| {
                let r = e.handle(sid, &frame, unix_now(), &mut out);
                (r, e.msize(sid))
            });
            codec.set_msize(msize);
            if !out.is_empty() && tx.send(out).await.is_err() {
                break 'conn Closed::Io;
            }
            if result.is_err() {
                break 'conn Closed::Framing;
            }
            frame_started = None;
        }
        if buf.is_empty() {
            frame_started = None;
        } else if frame_started.is_none() {
            frame_started = Some(Instant::now());
        }
        let deadline = match frame_started {
            Some(t) => t + config.frame_timeout,
            None => Instant::now() + config.idle_timeout,
        };
        tokio::select! {
            _ = stop.changed() => break Closed::Shutdown,
            r = tokio::time::timeout_at(deadline, rd.read_buf(&mut buf)) => match r {
                Err(_) => break Closed::Timeout,
                Ok(Ok(0)) => break Closed::Eof,
                Ok(Ok(_)) => {}
                Ok(Err(_)) => break Closed::Io,
            },
        }
    };
    match closed {
        Closed::Timeout => {
            stats.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        Closed::Framing => {
            stats.framing_errors.fetch_add(1, Ordering::Relaxed);
        }
        Closed::Eof | Closed::Io | Closed::Shutdown => {}
    }
    lock(&shared.routes).remove(&sid);
    shared.with_engine(|e| e.close_session(sid));
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::{JOIN_BYTES, join_queued};
    use tokio::sync::mpsc;

    #[test]
    fn queued_frames_are_joined_in_order_and_a_large_one_waits_for_its_own_write() {
        let (tx, mut rx) = mpsc::channel(8);
        for frame in [vec![1u8; 10], vec![2; 20], vec![3; JOIN_BYTES], vec![4; 5]] {
            tx.try_send(frame).expect("queued");
        }
        let mut buf = vec![0u8; 3];
        let large = join_queued(&mut rx, &mut buf).expect("the large frame comes back");
        let mut want = vec![0u8; 3];
        want.extend([1u8; 10]);
        want.extend([2u8; 20]);
        assert_eq!(buf, want);
        assert_eq!(large, vec![3u8; JOIN_BYTES]);
        let mut rest = large;
        assert_eq!(
            join_queued(&mut rx, &mut rest),
            None,
            "already full: nothing joined"
        );
        let mut last = rx.try_recv().expect("the small one is still queued");
        assert_eq!(join_queued(&mut rx, &mut last), None);
        assert_eq!(last, vec![4u8; 5]);
    }
}
