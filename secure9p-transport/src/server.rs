//! Socket runners: serve a 9P engine over TCP or Unix sockets.
//!
//! One task per connection reads frames, hands each to the engine under a
//! short lock and queues the replies for that connection's writer task.
//! The lock is a reader-writer lock: what an engine can answer through
//! `&self` ([`Engine::handle_concurrent`]: for [`Server`], reads, getattr,
//! walks and the like) is answered under the shared side, so connections
//! proceed in parallel; the rest takes the engine exclusively, one request
//! at a time.
//! Deferred requests are answered later through [`Shared::complete`], from
//! any task, so the replies of one connection can go out of order. Every
//! limit is configuration with a safe default ([`ServeConfig`]): connection
//! cap, idle timeout, partial-frame (slow sender) timeout, a bounded write
//! queue that pushes back on a slow reader, and graceful shutdown that
//! cancels pending work and sends what is queued before closing.
//!
//! An engine shared with [`Shared::observed`] is measured as it is served
//! (see [`crate::observe`]): each request frame is counted by its type
//! byte when decoded, and its connection's writer matches each reply it
//! wrote to the request of the same tag, for the latency and the error
//! count. Without an observer none of that runs.

use crate::framing::{NinePCodec, write_frame_vectored};
use crate::observe::{self, Observer};
use bytes::{Bytes, BytesMut};
use secure9p_core::{
    Completion, FsServer, Outcome, Replies, Server, SessionError, SessionId, Token,
};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

/// A 9P engine the runners can serve: [`Server`] itself, or a wrapper
/// around it (NineDoor's hive) that adds its own handling. It is `Sync`
/// because connections on different threads may read it at once
/// ([`handle_concurrent`](Engine::handle_concurrent)).
pub trait Engine: Send + Sync + 'static {
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
    /// [`handle`](Engine::handle) into [`Replies`], whose tail an engine
    /// may set to a shared read payload that the runner then writes
    /// without copying it ([`FsServer`] does). The default appends to the
    /// replies' buffer.
    fn handle_replies(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Result<Outcome, SessionError> {
        self.handle(sid, frame, now, out.buf())
    }
    /// Handles one request through `&self` if it needs no more than that,
    /// under the shared side of the runners' lock, beside other
    /// connections' requests; `None` (the default) sends it to
    /// [`handle_replies`](Engine::handle_replies) under the exclusive side,
    /// and must mean that nothing was changed or appended to `out`.
    fn handle_concurrent(
        &self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Option<Result<Outcome, SessionError>> {
        let _ = (sid, frame, now, out);
        None
    }
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
    fn handle_replies(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Result<Outcome, SessionError> {
        Server::handle_replies(self, sid, frame, now, out)
    }
    fn handle_concurrent(
        &self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Option<Result<Outcome, SessionError>> {
        Server::handle_concurrent(self, sid, frame, now, out)
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
    fn handle_replies(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Result<Outcome, SessionError> {
        FsServer::handle_replies(self, sid, frame, now, out)
    }
    fn handle_concurrent(
        &self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Replies,
    ) -> Option<Result<Outcome, SessionError>> {
        FsServer::handle_concurrent(self, sid, frame, now, out)
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
    join_with(rx, buf, &mut None, |v| (v, None)).map(|(v, _)| v)
}

/// [`join_queued`] over queue items that `open` turns into their bytes and
/// shared tail. An item with a tail whose buffer fits is joined and ends
/// the write: its tail is left in `tail`, to go out after `buf` in the
/// same vectored write.
fn join_with<T>(
    rx: &mut mpsc::Receiver<T>,
    buf: &mut Vec<u8>,
    tail: &mut Option<Bytes>,
    mut open: impl FnMut(T) -> (Vec<u8>, Option<Bytes>),
) -> Option<(Vec<u8>, Option<Bytes>)> {
    while buf.len() < JOIN_BYTES && tail.is_none() {
        let (more, more_tail) = open(rx.try_recv().ok()?);
        if buf.len() + more.len() > JOIN_BYTES {
            return Some((more, more_tail));
        }
        buf.extend_from_slice(&more);
        *tail = more_tail;
    }
    None
}

/// A shared payload (a large read's data) goes to the socket at most this
/// many bytes per write, the writer yielding to the runtime between writes:
/// one connection's 1 MiB replies then do not hold a worker thread for a
/// whole megabyte's copy while other connections' requests wait on it.
/// Measured (`loadgen/neighbor-compare.sh`, `loadgen/RESULTS.md`): beside
/// one connection of 16 reads of 1 MiB in flight, three connections of
/// small requests had a p99 of 5-8 ms unchunked and 1.3-1.5 ms in 512 KiB
/// pieces, with the bulk connection's own speed alone unchanged (smaller
/// pieces cut it: 2.0 GB/s at 128 KiB, 3 GB/s at 256 KiB, 4 GB/s at 512).
const SHARED_CHUNK: usize = 512 * 1024;

/// Writes `head` and then `payload`, the payload in writes of at most
/// [`SHARED_CHUNK`] with a yield between them (the first piece goes out
/// with `head` in one vectored write).
async fn write_shared<W: AsyncWrite + Unpin>(
    w: &mut W,
    head: &[u8],
    payload: &[u8],
) -> io::Result<()> {
    let (first, mut rest) = payload.split_at(payload.len().min(SHARED_CHUNK));
    write_frame_vectored(w, head, first).await?;
    while !rest.is_empty() {
        tokio::task::yield_now().await;
        let (chunk, more) = rest.split_at(rest.len().min(SHARED_CHUNK));
        w.write_all(chunk).await?;
        rest = more;
    }
    Ok(())
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
    engine: RwLock<E>,
    routes: Mutex<HashMap<SessionId, mpsc::Sender<Queued>>>,
    observer: Option<Arc<Observer>>,
}

/// What a connection's writer is given: whole reply frames, and with an
/// observer the request just decoded (its reply may be among the bytes,
/// or come later, or, when the engine defers it, even just before).
struct Queued {
    bytes: Vec<u8>,
    /// A shared payload that follows `bytes` (the end of an `Rread`),
    /// boxed: items sit in the channel's blocks of 32, allocated with the
    /// channel, so every byte here costs each connection 32, idle or not.
    tail: Option<Box<Bytes>>,
    started: Vec<Started>,
}

/// A request decoded on an observed connection.
#[derive(Clone, Copy)]
struct Started {
    tag: u16,
    slot: u8,
    at: std::time::Instant,
}

/// Requests a writer keeps until their replies are written: more than any
/// engine keeps in flight on one connection (flushed requests whose reply
/// never comes stay until their tag is used again). Beyond it, requests
/// are still counted but not timed.
const TIMED_MAX: usize = 256;

/// One entry of a writer's [`Timing`]: a request waiting for its reply,
/// or (`answered`, with the error flag) a reply written before the request
/// it answers reached the writer (a deferred reply completed at once).
#[derive(Clone, Copy)]
struct Pending {
    tag: u16,
    slot: u8,
    at: std::time::Instant,
    answered: Option<bool>,
}

/// A writer's matching of replies to requests, by tag (one connection's
/// tags are unique among its requests in flight).
struct Timing {
    observer: Arc<Observer>,
    pending: Vec<Pending>,
}

impl Timing {
    fn new(observer: Arc<Observer>) -> Self {
        Timing {
            observer,
            pending: Vec::with_capacity(16),
        }
    }

    fn push(&mut self, p: Pending) {
        if self.pending.len() < TIMED_MAX {
            self.pending.push(p);
        }
    }

    /// A request reached the writer.
    fn started(&mut self, s: Started) {
        match self.pending.iter().position(|p| p.tag == s.tag) {
            Some(i) => match self.pending[i].answered {
                Some(error) => {
                    let p = self.pending.swap_remove(i);
                    let elapsed = p.at.saturating_duration_since(s.at);
                    self.observer.replied(s.slot, elapsed, error);
                }
                // The tag's last request was flushed: this one replaces it.
                None => {
                    self.pending[i] = Pending {
                        tag: s.tag,
                        slot: s.slot,
                        at: s.at,
                        answered: None,
                    };
                }
            },
            None => self.push(Pending {
                tag: s.tag,
                slot: s.slot,
                at: s.at,
                answered: None,
            }),
        }
    }

    /// `buf`'s frames were written.
    fn written(&mut self, buf: &[u8]) {
        let now = std::time::Instant::now();
        let mut at = 0usize;
        while let Some(h) = buf.get(at..at + 7) {
            let size = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let (ty, tag) = (h[4], u16::from_le_bytes([h[5], h[6]]));
            let error = observe::is_error_reply(ty);
            let waiting = self
                .pending
                .iter()
                .position(|p| p.tag == tag && p.answered.is_none());
            match waiting {
                Some(i) => {
                    let p = self.pending.swap_remove(i);
                    self.observer
                        .replied(p.slot, now.saturating_duration_since(p.at), error);
                }
                None => self.push(Pending {
                    tag,
                    slot: 0,
                    at: now,
                    answered: Some(error),
                }),
            }
            if size < 7 {
                break;
            }
            at += size;
        }
    }
}

/// A queue item's bytes and tail, after noting its requests in `timing`.
fn open_queued(timing: &mut Option<Timing>, q: Queued) -> (Vec<u8>, Option<Bytes>) {
    if let Some(t) = timing.as_mut() {
        for s in q.started {
            t.started(s);
        }
    }
    (q.bytes, q.tail.map(|t| *t))
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

/// The engine for requests it answers through `&self`.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // Poisoning is ignored as in `lock`.
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// The engine to itself.
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
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
            engine: RwLock::new(engine),
            routes: Mutex::new(HashMap::new()),
            observer: None,
        })
    }

    /// Shares `engine`, measured by `observer` on every runner that
    /// serves it (give several the same observer to add them up).
    pub fn observed(engine: E, observer: Arc<Observer>) -> Arc<Self> {
        Arc::new(Shared {
            engine: RwLock::new(engine),
            routes: Mutex::new(HashMap::new()),
            observer: Some(observer),
        })
    }

    /// The observer, if the engine is [`observed`](Shared::observed).
    pub fn observer(&self) -> Option<&Arc<Observer>> {
        self.observer.as_ref()
    }

    /// Runs `f` with the engine locked (to add nodes, revoke tickets, ...).
    /// Keep it short: every connection waits for the lock.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut E) -> R) -> R {
        f(&mut write(&self.engine))
    }

    /// Finishes a deferred request and sends its reply to its connection.
    /// Returns false if the request was flushed or its connection closed.
    pub fn complete(&self, token: Token, result: Completion) -> bool {
        let mut out = Vec::new();
        let Some(sid) = write(&self.engine).complete(token, result, &mut out) else {
            return false;
        };
        self.send(sid, out)
    }

    /// Finishes many deferred requests under one lock of the engine (a
    /// group commit releasing its replies) and sends each connection its
    /// replies in one piece, in the order given. Returns how many
    /// connections were sent replies.
    pub fn complete_all(&self, results: impl IntoIterator<Item = (Token, Completion)>) -> usize {
        let mut replies: HashMap<SessionId, Vec<u8>> = HashMap::new();
        {
            let mut engine = write(&self.engine);
            // Which connection a reply goes to is known only once it is
            // made: each is made here, then moved to its connection's.
            let mut out = Vec::new();
            for (token, result) in results {
                if let Some(sid) = engine.complete(token, result, &mut out) {
                    replies.entry(sid).or_default().extend_from_slice(&out);
                }
                out.clear();
            }
        }
        let mut sent = 0;
        for (sid, out) in replies {
            if !out.is_empty() && self.send(sid, out) {
                sent += 1;
            }
        }
        sent
    }

    /// Queues bytes (whole frames) for the connection of session `sid`.
    fn send(&self, sid: SessionId, out: Vec<u8>) -> bool {
        let tx = lock(&self.routes).get(&sid).cloned();
        match tx {
            // A full queue drops the connection's reply rather than block a
            // completing task; the connection then times out on the client.
            Some(tx) => tx
                .try_send(Queued {
                    bytes: out,
                    tail: None,
                    started: Vec::new(),
                })
                .is_ok(),
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
                        if let Some(o) = shared.observer() {
                            o.refused();
                        }
                        drop(stream);
                        continue;
                    };
                    task_stats.accepted.fetch_add(1, Ordering::Relaxed);
                    if let Some(o) = shared.observer() {
                        o.accepted();
                    }
                    let (shared, config, stats, mut stop) = (shared.clone(), config.clone(), task_stats.clone(), stop.clone());
                    let handshake = handshake.clone();
                    conns.spawn(async move {
                        stats.open.fetch_add(1, Ordering::Relaxed);
                        let upgraded = tokio::select! {
                            _ = stop.changed() => None,
                            s = handshake.handshake(stream, &config, &stats) => s,
                        };
                        let observer = shared.observer().cloned();
                        if let Some(stream) = upgraded {
                            connection(stream, shared, &config, &stats, stop).await;
                        }
                        if let Some(o) = observer {
                            o.closed();
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
    let observer = shared.observer().cloned();
    if let Some(o) = &observer {
        o.accepted();
    }
    connection(stream, shared, config, &Stats::default(), stop).await;
    if let Some(o) = observer {
        o.closed();
    }
}

enum Closed {
    Eof,
    Io,
    Timeout,
    Framing,
    Shutdown,
}

/// A connection's read buffer while it has traffic: room for a burst of
/// small requests in one read (a larger frame reserves its own length).
const READ_BUF: usize = 8 * 1024;
/// What an idle connection's read buffer shrinks to: enough for the next
/// request's header and a small frame. See [`IDLE_SHRINK`].
const READ_BUF_IDLE: usize = 256;
/// A connection whose read buffer has been empty this long gives its
/// memory back (down to [`READ_BUF_IDLE`]), so that a thousand idle
/// connections (mounts, Queen sessions) hold a few KiB each, not 8 KiB
/// plus whatever their largest frame grew it to. The next bytes that
/// arrive restore [`READ_BUF`].
const IDLE_SHRINK: Duration = Duration::from_secs(1);

/// Most requests of one connection handled under one lock of the engine
/// (while their replies stay within [`JOIN_BYTES`]): a burst costs one lock
/// and one reply buffer, and the other connections wait at most a batch.
const BATCH_FRAMES: usize = 32;

/// What one batch of a connection's frames came to.
struct Batch {
    /// The replies due now, whole frames (a shared read payload last).
    out: Replies,
    /// The requests decoded, when observed.
    started: Vec<Started>,
    /// Frames handled.
    frames: usize,
    /// The batch stopped at its bound with frames possibly left in the buffer.
    more: bool,
    /// Framing broke (or the engine ended the session): close after `out`.
    broken: bool,
}

/// Handles the whole frames at the front of `buf`, up to a batch, under one
/// lock of the engine: its shared side, left for the exclusive side only
/// for a request that needs it (and taken again after it).
fn handle_batch<E: Engine>(
    shared: &Shared<E>,
    sid: SessionId,
    codec: &mut NinePCodec,
    buf: &mut BytesMut,
    observer: Option<&Observer>,
) -> Batch {
    let mut batch = Batch {
        out: Replies::new(),
        started: Vec::new(),
        frames: 0,
        more: false,
        broken: false,
    };
    let now = unix_now();
    let mut engine = read(&shared.engine);
    loop {
        // A shared payload ends the batch: it goes out after the frames
        // before it, uncopied, in one vectored write.
        if batch.frames == BATCH_FRAMES || batch.out.len() >= JOIN_BYTES || batch.out.has_tail() {
            batch.more = true;
            break;
        }
        let frame = match codec.decode(buf) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => {
                batch.broken = true;
                break;
            }
        };
        batch.frames += 1;
        if let Some(o) = observer {
            // The codec hands out whole frames of at least 7 bytes.
            let slot = observe::slot_of(frame.get(4).copied().unwrap_or(0));
            o.request(slot);
            batch.started.push(Started {
                tag: frame
                    .get(5..7)
                    .map_or(0, |t| u16::from_le_bytes([t[0], t[1]])),
                slot,
                at: std::time::Instant::now(),
            });
        }
        let result = match engine.handle_concurrent(sid, &frame, now, &mut batch.out) {
            Some(r) => r,
            None => {
                // Released first: a reader waiting to write would wait on itself.
                drop(engine);
                let mut exclusive = write(&shared.engine);
                let r = exclusive.handle_replies(sid, &frame, now, &mut batch.out);
                // Only a request handled exclusively (`Tversion`) changes it.
                codec.set_msize(exclusive.msize(sid));
                drop(exclusive);
                engine = read(&shared.engine);
                r
            }
        };
        if result.is_err() {
            batch.broken = true;
            break;
        }
    }
    batch
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
    let (tx, mut rx) = mpsc::channel::<Queued>(config.write_queue.max(1));
    lock(&shared.routes).insert(sid, tx.clone());
    let observer = shared.observer().cloned();
    let mut timing = observer.clone().map(Timing::new);
    let writer = tokio::spawn(async move {
        let mut next = rx.recv().await.map(|q| open_queued(&mut timing, q));
        while let Some((mut buf, mut tail)) = next.take() {
            next = join_with(&mut rx, &mut buf, &mut tail, |q| {
                open_queued(&mut timing, q)
            });
            // The flush matters on TLS: a write can return with records
            // still buffered in rustls, which only a flush (or the next
            // write) puts on the wire. On a plain socket it is a no-op.
            // (An observed request deferred by the engine comes with no
            // bytes: nothing to write.)
            if !buf.is_empty() || tail.is_some() {
                let wrote = match &tail {
                    // Boxed: its state would otherwise sit in every
                    // connection's writer task, idle or not.
                    Some(payload) => Box::pin(write_shared(&mut wr, &buf, payload)).await,
                    None => wr.write_all(&buf).await,
                };
                if wrote.is_err() || wr.flush().await.is_err() {
                    break;
                }
                if let Some(t) = timing.as_mut() {
                    t.written(&buf);
                }
            }
            if next.is_none() {
                next = rx.recv().await.map(|q| open_queued(&mut timing, q));
            }
        }
        let _ = wr.shutdown().await;
    });

    let mut codec = NinePCodec::new(shared.with_engine(|e| e.msize(sid)));
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let mut frame_started: Option<Instant> = None;
    // The deadline of a wait cut short to shrink the buffer: the wait that
    // follows keeps it (the shrink does not extend the idle timeout).
    let mut resume: Option<Instant> = None;
    // The buffer was shrunk for idleness; the next bytes restore it.
    let mut shrunk = false;
    let closed = 'conn: loop {
        // The frames already read are handled a batch at a time, under one
        // lock of the engine, their replies in one buffer for the writer.
        loop {
            let batch = handle_batch(&shared, sid, &mut codec, &mut buf, observer.as_deref());
            if (!batch.out.is_empty() || !batch.started.is_empty())
                && tx
                    .send({
                        let (bytes, tail) = batch.out.into_parts();
                        Queued {
                            bytes,
                            tail: tail.map(Box::new),
                            started: batch.started,
                        }
                    })
                    .await
                    .is_err()
            {
                break 'conn Closed::Io;
            }
            if batch.broken {
                break 'conn Closed::Framing;
            }
            if batch.frames > 0 {
                frame_started = None;
            }
            if !batch.more {
                break;
            }
        }
        if buf.is_empty() {
            frame_started = None;
        } else if frame_started.is_none() {
            frame_started = Some(Instant::now());
        }
        let deadline = resume.take().unwrap_or_else(|| match frame_started {
            Some(t) => t + config.frame_timeout,
            None => Instant::now() + config.idle_timeout,
        });
        // (An empty buffer's `capacity` is what is left after the frames
        // split off it, not what it holds: `shrunk` says whether it holds
        // a large allocation still.)
        let shrink_at = (buf.is_empty() && !shrunk)
            .then(|| Instant::now() + IDLE_SHRINK)
            .filter(|at| *at < deadline);
        tokio::select! {
            _ = stop.changed() => break Closed::Shutdown,
            r = tokio::time::timeout_at(shrink_at.unwrap_or(deadline), rd.read_buf(&mut buf)) => match r {
                Err(_) if shrink_at.is_some() => {
                    // Idle: nothing was read (read_buf is cancel safe).
                    buf = BytesMut::with_capacity(READ_BUF_IDLE);
                    shrunk = true;
                    resume = Some(deadline);
                }
                Err(_) => break Closed::Timeout,
                Ok(Ok(0)) => break Closed::Eof,
                Ok(Ok(_)) => {
                    if shrunk {
                        buf.reserve(READ_BUF.saturating_sub(buf.len()));
                        shrunk = false;
                    }
                }
                Ok(Err(_)) => break Closed::Io,
            },
        }
    };
    match closed {
        Closed::Timeout => {
            stats.timed_out.fetch_add(1, Ordering::Relaxed);
            if let Some(o) = &observer {
                o.timed_out();
            }
        }
        Closed::Framing => {
            stats.framing_errors.fetch_add(1, Ordering::Relaxed);
            if let Some(o) = &observer {
                o.framing_error();
            }
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
