//! [`Link`]: the host's home for one GPU bridge's link. The link itself is
//! the `no_std` state machine [`crate::bridge::BridgeLink`] (the seL4
//! image's NineDoor PD runs the same one); this task only moves its bytes
//! and time: it makes the TCP (or mutual-TLS) connection when the link asks
//! for one, reads whole frames off it, writes the link's frames to it,
//! wakes the link at its next deadline, hands it the hive's forwarded
//! requests and closed opens, and carries out what the link says:
//! installing the bridge's GPUs (with a route to this link) and completing
//! requests through the engine.

use crate::GpuDescriptor;
use crate::bridge::mirror::Mirror;
use crate::bridge::{BridgeLink, LinkConfig, LinkEvent};
use crate::host::daemon::unix_now;
use crate::host::engine::HiveEngine;
use crate::host::forward::{BridgeTarget, LinkJob, Route, Routes, lock};
use crate::host::key::OsIds;
use secure9p_core::codec::HEADER_LEN;
use secure9p_transport::server::Shared;
use secure9p_transport::tls::TlsClient;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Frames read ahead of the link.
const READ_AHEAD: usize = 64;
/// How long the task sleeps when the link has no deadline at all.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// A byte stream to a bridge: TCP, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}
type BoxStream = Box<dyn Stream>;

/// Unix time in milliseconds: the link's clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One live connection. Its frames are read by a task of its own, so that
/// waiting for the next one (beside the hive's requests and the link's
/// deadline) never loses half of one.
struct Conn {
    writer: WriteHalf<BoxStream>,
    frames: mpsc::Receiver<Result<Vec<u8>, String>>,
    reader: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Conn {
    fn new(stream: BoxStream, max: u32) -> Conn {
        let (rd, writer) = tokio::io::split(stream);
        let (tx, frames) = mpsc::channel(READ_AHEAD);
        let reader = tokio::spawn(read_frames(rd, max, tx));
        Conn {
            writer,
            frames,
            reader,
        }
    }
}

/// Reads whole frames of at most `max` bytes; the first error (the bridge
/// closing, a size outside `7..=max`) ends the stream with its reason.
async fn read_frames(
    mut rd: ReadHalf<BoxStream>,
    max: u32,
    tx: mpsc::Sender<Result<Vec<u8>, String>>,
) {
    loop {
        let mut size = [0u8; 4];
        if let Err(e) = rd.read_exact(&mut size).await {
            let _ = tx.send(Err(format!("connection closed ({e})"))).await;
            return;
        }
        let n = u32::from_le_bytes(size);
        if (n as usize) < HEADER_LEN || n > max {
            let why = format!("frame of {n} bytes outside {HEADER_LEN}..={max}");
            let _ = tx.send(Err(why)).await;
            return;
        }
        let mut frame = vec![0u8; n as usize];
        frame[..4].copy_from_slice(&size);
        if let Err(e) = rd.read_exact(&mut frame[4..]).await {
            let _ = tx
                .send(Err(format!("connection closed mid-frame ({e})")))
                .await;
            return;
        }
        if tx.send(Ok(frame)).await.is_err() {
            return;
        }
    }
}

/// What woke the task.
enum Wake {
    Job(Option<LinkJob>),
    Frame(Option<Result<Vec<u8>, String>>),
    Connected(Result<BoxStream, String>),
    Tick,
}

/// A connection attempt in progress.
struct Connecting {
    task: JoinHandle<()>,
    done: oneshot::Receiver<Result<BoxStream, String>>,
}

impl Drop for Connecting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn next_frame(conn: &mut Option<Conn>) -> Option<Result<Vec<u8>, String>> {
    match conn {
        Some(c) => c.frames.recv().await,
        None => std::future::pending().await,
    }
}

async fn connect_done(connecting: &mut Option<Connecting>) -> Result<BoxStream, String> {
    match connecting {
        Some(c) => (&mut c.done)
            .await
            .unwrap_or_else(|_| Err(String::from("connection attempt dropped"))),
        None => std::future::pending().await,
    }
}

/// One bridge's task.
pub(crate) struct Link {
    index: usize,
    target: BridgeTarget,
    key: [u8; 32],
    shared: Arc<Shared<HiveEngine>>,
    routes: Routes,
    config: LinkConfig,
    tls: Option<TlsClient>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("index", &self.index)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(
        index: usize,
        target: BridgeTarget,
        key: [u8; 32],
        shared: Arc<Shared<HiveEngine>>,
        routes: Routes,
        timeout: Duration,
        tls: Option<TlsClient>,
    ) -> Link {
        let config = LinkConfig {
            timeout_ms: timeout.as_millis() as u64,
            ..LinkConfig::default()
        };
        Link {
            index,
            target,
            key,
            shared,
            routes,
            config,
            tls,
        }
    }

    fn say(&self, what: &str) {
        eprintln!("ninedoor: gpu bridge {}: {what}", self.target);
    }

    /// Runs the link until the hive's side of its job queue closes.
    pub(crate) async fn run(self, mut jobs: mpsc::UnboundedReceiver<LinkJob>) {
        let mirror = Mirror::new(self.key, OsIds::default());
        let mut link = BridgeLink::new(self.config.clone(), mirror, now_ms());
        let mut conn: Option<Conn> = None;
        let mut connecting: Option<Connecting> = None;
        loop {
            self.drain(&mut link, &mut conn, &mut connecting).await;
            let wait = link.next_timeout().map_or(IDLE_WAKE, |t| {
                Duration::from_millis(t.saturating_sub(now_ms()))
            });
            let wake = tokio::select! {
                job = jobs.recv() => Wake::Job(job),
                frame = next_frame(&mut conn) => Wake::Frame(frame),
                stream = connect_done(&mut connecting) => Wake::Connected(stream),
                () = tokio::time::sleep(wait) => Wake::Tick,
            };
            let now = now_ms();
            match wake {
                Wake::Job(None) => {
                    // The bridge was removed (or the host is stopping):
                    // what the link holds completes with EHOSTUNREACH.
                    link.disconnected(now);
                    self.drain(&mut link, &mut conn, &mut connecting).await;
                    return;
                }
                Wake::Job(Some(LinkJob::Request { request, remote })) => {
                    link.forward(request, &remote, now);
                }
                Wake::Job(Some(LinkJob::Close { open })) => link.close_open(open, now),
                Wake::Frame(Some(Ok(frame))) => link.received(&frame, now),
                Wake::Frame(gone) => {
                    if let Some(Err(why)) = gone {
                        self.say(&why);
                    }
                    conn = None;
                    link.disconnected(now);
                }
                Wake::Connected(stream) => {
                    connecting = None;
                    match stream {
                        Ok(s) => {
                            conn = Some(Conn::new(s, self.config.msize));
                            link.connected(now);
                        }
                        Err(why) => {
                            self.say(&why);
                            link.disconnected(now);
                        }
                    }
                }
                Wake::Tick => link.tick(now),
            }
        }
    }

    /// Carries out the link's events and sends its frames until it has
    /// nothing more to say.
    async fn drain(
        &self,
        link: &mut BridgeLink,
        conn: &mut Option<Conn>,
        connecting: &mut Option<Connecting>,
    ) {
        loop {
            let mut moved = false;
            while let Some(event) = link.poll_event() {
                moved = true;
                match event {
                    LinkEvent::Connect => *connecting = Some(self.connect()),
                    LinkEvent::Disconnect => {
                        *conn = None;
                        *connecting = None;
                    }
                    LinkEvent::Gpus(gpus) => self.install(&gpus),
                    LinkEvent::Lost => self.reachable(false),
                    LinkEvent::Complete {
                        token,
                        result,
                        reply,
                    } => {
                        if let Some(reply) = reply {
                            self.shared
                                .with_engine(|e| e.hive_mut().set_gpu_reply(token, &reply));
                        }
                        self.shared.complete(token, result);
                    }
                    LinkEvent::Note(line) => self.say(&line),
                    LinkEvent::Health { gpu, health, was } => {
                        self.health(&gpu, &health, was.as_deref());
                    }
                }
            }
            while let Some(frame) = link.poll_transmit() {
                moved = true;
                let Some(c) = conn.as_mut() else {
                    break;
                };
                if let Err(e) = c.writer.write_all(&frame).await {
                    self.say(&format!("write failed: {e}"));
                    *conn = None;
                    link.disconnected(now_ms());
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Starts a connection attempt (the link bounds how long it may take).
    fn connect(&self) -> Connecting {
        let (tx, done) = oneshot::channel();
        let addr = self.target.addr.clone();
        let host = self.target.host().to_owned();
        let tls = self.tls.clone();
        let task = tokio::spawn(async move {
            let stream: Result<BoxStream, String> = async {
                match tls {
                    Some(client) => {
                        let s = client
                            .connect_stream(addr.as_str(), &host)
                            .await
                            .map_err(|e| format!("cannot connect: {e}"))?;
                        Ok(Box::new(s) as BoxStream)
                    }
                    None => {
                        let s = TcpStream::connect(addr.as_str())
                            .await
                            .map_err(|e| format!("cannot connect: {e}"))?;
                        let _ = s.set_nodelay(true);
                        Ok(Box::new(s) as BoxStream)
                    }
                }
            }
            .await;
            let _ = tx.send(stream);
        });
        Connecting { task, done }
    }

    /// Marks every GPU routed to this link reachable or not.
    fn reachable(&self, up: bool) {
        let ours: Vec<String> = lock(&self.routes)
            .iter()
            .filter(|(_, r)| r.link == self.index)
            .map(|(local, _)| local.clone())
            .collect();
        self.shared.with_engine(|e| {
            for gpu in &ours {
                e.hive_mut().set_gpu_reachable(gpu, up);
            }
        });
    }

    /// Tells the hive (and its log) a GPU of this bridge changed health.
    fn health(&self, remote: &str, health: &str, was: Option<&str>) {
        let local = lock(&self.routes)
            .iter()
            .find(|(_, r)| r.link == self.index && r.remote == remote)
            .map(|(local, _)| local.clone());
        let Some(local) = local else {
            return;
        };
        self.say(&format!(
            "gpu {local}: health {} -> {health}",
            was.unwrap_or("-")
        ));
        self.shared.with_engine(|e| {
            e.hive_mut().set_gpu_health(&local, health, was, unix_now());
            e.record_pending();
        });
    }

    /// Installs the bridge's GPUs not yet installed (the hive refuses,
    /// and logs, a duplicate or malformed id: that GPU only), routes every
    /// GPU this bridge serves to this link, and marks them reachable; all
    /// under one engine lock, so no request finds a GPU without its route.
    fn install(&self, gpus: &[GpuDescriptor]) {
        let done = self.shared.with_engine(|e| {
            let hive = e.hive_mut();
            let done = hive.install_bridge_gpus(&self.target, gpus);
            let mut routes = lock(&self.routes);
            for (local, remote) in &done.routes {
                routes.insert(
                    local.clone(),
                    Route {
                        link: self.index,
                        remote: remote.clone(),
                    },
                );
                hive.set_gpu_reachable(local, true);
            }
            done
        });
        for line in &done.refused {
            self.say(line);
        }
    }
}
