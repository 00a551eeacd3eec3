//! [`Link`]: NineDoor's side of one GPU bridge. Two tasks share it:
//!
//! - *maintain* connects (with backoff while the bridge is away), lists the
//!   bridge's GPUs as NineDoor's own bridge identity, installs the new ones
//!   in the hive (`install_gpu_nodes`) with a route to this link, then
//!   probes the connection until it dies and starts over;
//! - *dispatch* takes the forwarded requests: the requests of one open go,
//!   in order, to one task that holds that open's fid on the bridge (opened
//!   on first use, reopened after a reconnect, clunked when the hive's fid
//!   is); each `lease`/`release` command runs on a fid of its own and hands
//!   the bridge's reply to the hive.
//!
//! Every request is completed exactly once, through the engine's
//! `Shared::complete`; while no connection is up that happens at once with
//! `EHOSTUNREACH`. Nothing here blocks the engine: it is locked only to
//! install GPUs and to complete requests.

use crate::host::daemon::unix_now;
use crate::host::engine::HiveEngine;
use crate::host::forward::{BridgeTarget, LinkJob, Route, Routes, lock};
use crate::host::mirror::{Mirror, OWN_TICKET_TTL_S};
use crate::host::remote::{OpenFid, Remote};
use crate::{GpuDescriptor, GpuOp, GpuOrigin, GpuRequest};
use secure9p_core::codec::{Fid, LOpenFlags};
use secure9p_core::{Completion, FsError};
use secure9p_transport::server::Shared;
use secure9p_transport::tls::TlsClient;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The msize asked of a bridge: its own cap (1 MiB of payload), so a job
/// descriptor of up to the bridge's 1 MiB write limit fits one write.
pub(crate) const BRIDGE_MSIZE: u32 = 1024 * 1024 + 24;
/// First wait before reconnecting to a bridge that went away.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts: how late, at worst, GPUs
/// come back after their bridge does.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often an idle connection is probed, so a bridge that went away is
/// noticed (and reconnected) without waiting for a client to ask.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The most GPUs taken from one bridge's listing.
pub(crate) const MAX_BRIDGE_GPUS: usize = 64;
/// The most bytes read back as a command's reply (one line).
const MAX_COMMAND_REPLY: u32 = 4096;
/// The most bytes of one `info` file read at listing (one JSON line).
const MAX_INFO: usize = 64 * 1024;

/// What NineDoor reads of a bridge's `info` (the descriptor's fields; the
/// live readings beside them, and its `id`, which names the directory the
/// file was read from anyway, are not kept).
#[derive(Debug, Deserialize)]
struct BridgeInfo {
    name: String,
    uuid: String,
    memory_mb: u64,
    #[serde(default)]
    sm_count: Option<u32>,
    driver_version: String,
    runtime_version: String,
}

/// One bridge, shared by its tasks.
pub(crate) struct Link {
    index: usize,
    target: BridgeTarget,
    mirror: Arc<Mirror>,
    shared: Arc<Shared<HiveEngine>>,
    routes: Routes,
    timeout: Duration,
    tls: Option<TlsClient>,
    current: std::sync::Mutex<Option<Arc<Remote>>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("index", &self.index)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The completion that fails `op` with `e`.
pub(crate) fn failed(op: &GpuOp, e: FsError) -> Completion {
    match op {
        GpuOp::Read { .. } => Completion::Read(Err(e)),
        GpuOp::Write { .. } => Completion::Write(Err(e)),
    }
}

impl Link {
    pub(crate) fn new(
        index: usize,
        target: BridgeTarget,
        mirror: Arc<Mirror>,
        shared: Arc<Shared<HiveEngine>>,
        routes: Routes,
        timeout: Duration,
        tls: Option<TlsClient>,
    ) -> Arc<Link> {
        Arc::new(Link {
            index,
            target,
            mirror,
            shared,
            routes,
            timeout,
            tls,
            current: std::sync::Mutex::new(None),
        })
    }

    /// Runs the link until the task is aborted.
    pub(crate) async fn run(self: Arc<Self>, jobs: mpsc::UnboundedReceiver<LinkJob>) {
        tokio::join!(self.clone().maintain(), self.dispatch(jobs));
    }

    /// The live connection, if any.
    fn current(&self) -> Option<Arc<Remote>> {
        lock(&self.current).clone().filter(|r| !r.is_dead())
    }

    fn say(&self, what: &str) {
        eprintln!("ninedoor: gpu bridge {}: {what}", self.target);
    }

    async fn maintain(self: Arc<Self>) {
        let mut backoff = MIN_BACKOFF;
        let mut last_failure: Option<String> = None;
        loop {
            match self.connect().await {
                Ok((remote, own, gpus)) => {
                    backoff = MIN_BACKOFF;
                    last_failure = None;
                    self.say(&format!("connected, gpus {}", gpus.join(" ")));
                    *lock(&self.current) = Some(remote.clone());
                    self.watch(&remote, own).await;
                    *lock(&self.current) = None;
                    self.say("connection lost; /gpu files answer EHOSTUNREACH until it is back");
                }
                Err(why) => {
                    if last_failure.as_deref() != Some(why.as_str()) {
                        self.say(&format!(
                            "{why}; retrying every {} s at most",
                            MAX_BACKOFF.as_secs_f32()
                        ));
                        last_failure = Some(why);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Connects, attaches as NineDoor, lists and installs the GPUs. Returns
    /// the connection, NineDoor's attach (fid, expiry) and the local ids of
    /// the bridge's GPUs.
    async fn connect(&self) -> Result<(Arc<Remote>, (Fid, u64), Vec<String>), String> {
        let tls = self.tls.as_ref().map(|c| (c, self.target.host()));
        let remote = Remote::connect(&self.target.addr, BRIDGE_MSIZE, self.timeout, tls).await?;
        let own = self.attach_own(&remote).await.map_err(|e| {
            format!("attach refused ({e}): is its --ticket-key-file the key of --gpu-bridge-key?")
        })?;
        let gpus = self
            .list(&remote, own.0)
            .await
            .map_err(|e| format!("listing its GPUs failed: {e}"))?;
        let installed = self.install(&gpus);
        Ok((remote, own, installed))
    }

    async fn attach_own(&self, remote: &Remote) -> Result<(Fid, u64), FsError> {
        let own = self.mirror.own(unix_now())?;
        let fid = remote
            .call(
                remote
                    .conn()
                    .attach(crate::host::mirror::NINEDOOR_SUBJECT, &own.text),
            )
            .await?;
        Ok((fid, own.claims.expires))
    }

    /// The bridge's descriptors, from `/gpu` and each `/gpu/<id>/info`.
    async fn list(&self, remote: &Remote, root: Fid) -> Result<Vec<GpuDescriptor>, FsError> {
        let conn = remote.conn();
        let dir = remote.call(conn.walk(root, "gpu")).await?;
        let listed = match remote.call(conn.lopen(dir, LOpenFlags::empty())).await {
            Ok(_) => remote.call(conn.readdir(dir)).await,
            Err(e) => Err(e),
        };
        let _ = remote.call(conn.clunk(dir)).await;
        let mut gpus = Vec::new();
        for (name, _) in listed?.into_iter().take(MAX_BRIDGE_GPUS) {
            let fid = remote
                .call(conn.walk(root, &format!("gpu/{name}/info")))
                .await?;
            let text = match remote.call(conn.lopen(fid, LOpenFlags::empty())).await {
                Ok(_) => remote.call(conn.read(fid, 0, MAX_INFO as u32)).await,
                Err(e) => Err(e),
            };
            let _ = remote.call(conn.clunk(fid)).await;
            let info: BridgeInfo =
                serde_json::from_slice(&text?).map_err(|_| FsError::BadMessage)?;
            gpus.push(GpuDescriptor {
                id: name,
                name: info.name,
                uuid: info.uuid,
                memory_mb: info.memory_mb,
                sm_count: info.sm_count,
                driver_version: info.driver_version,
                runtime_version: info.runtime_version,
            });
        }
        Ok(gpus)
    }

    /// Routes and installs the GPUs not yet installed; returns the local
    /// ids of every GPU of this bridge that is routed here.
    fn install(&self, gpus: &[GpuDescriptor]) -> Vec<String> {
        let mut ours = Vec::new();
        for d in gpus {
            let local = self.target.local_id(&d.id);
            let known = lock(&self.routes).get(&local).cloned();
            match known {
                Some(r) if r.link == self.index => {
                    ours.push(local);
                    continue;
                }
                Some(_) => {
                    self.say(&format!(
                        "gpu {local} is another bridge's; give each bridge a prefix (PREFIX=HOST:PORT)"
                    ));
                    continue;
                }
                None => {}
            }
            // The route first, so a request for the new files finds its way.
            lock(&self.routes).insert(
                local.clone(),
                Route {
                    link: self.index,
                    remote: d.id.clone(),
                },
            );
            let mut desc = d.clone();
            desc.id = local.clone();
            let installed = self
                .shared
                .with_engine(|e| e.hive_mut().install_gpu_nodes(std::slice::from_ref(&desc)));
            match installed {
                Ok(()) => ours.push(local),
                Err(e) => {
                    lock(&self.routes).remove(&local);
                    self.say(&format!("gpu {} not installed: {e}", d.id));
                }
            }
        }
        ours
    }

    /// Probes the connection until it dies, renewing NineDoor's own attach
    /// at half its lifetime.
    async fn watch(&self, remote: &Remote, mut own: (Fid, u64)) {
        loop {
            tokio::select! {
                () = remote.lost() => {}
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
            if remote.is_dead() {
                return;
            }
            if unix_now().saturating_add(OWN_TICKET_TTL_S / 2) >= own.1 {
                match self.attach_own(remote).await {
                    Ok(fresh) => {
                        let _ = remote.call(remote.conn().clunk(own.0)).await;
                        own = fresh;
                    }
                    Err(_) => remote.kill(),
                }
                continue;
            }
            if remote.call(remote.conn().getattr(own.0)).await.is_err() {
                remote.kill();
            }
        }
    }

    async fn dispatch(self: Arc<Self>, mut jobs: mpsc::UnboundedReceiver<LinkJob>) {
        let mut opens: HashMap<u64, mpsc::UnboundedSender<(GpuRequest, String)>> = HashMap::new();
        let mut tasks = JoinSet::new();
        while let Some(job) = jobs.recv().await {
            while tasks.try_join_next().is_some() {}
            match job {
                LinkJob::Request { request, remote } => match request.origin {
                    GpuOrigin::Fid { open } => {
                        let tx = opens.entry(open).or_insert_with(|| {
                            let (tx, rx) = mpsc::unbounded_channel();
                            tasks.spawn(self.clone().serve_open(rx));
                            tx
                        });
                        if let Err(mpsc::error::SendError((request, _))) =
                            tx.send((request, remote))
                        {
                            let done = failed(&request.op, FsError::Unreachable);
                            self.shared.complete(request.token, done);
                        }
                    }
                    GpuOrigin::Command => {
                        tasks.spawn(self.clone().run_command(request, remote));
                    }
                },
                // Dropping the sender lets the open's task finish what is
                // queued, clunk its bridge fid and end.
                LinkJob::Close { open } => {
                    opens.remove(&open);
                }
            }
        }
    }

    /// Serves the requests of one open, in order, on one bridge fid.
    async fn serve_open(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<(GpuRequest, String)>) {
        let mut held: Option<OpenFid> = None;
        while let Some((request, remote_gpu)) = rx.recv().await {
            let done = match self.on_open(&mut held, &request, &remote_gpu).await {
                Ok(c) => c,
                Err(e) => failed(&request.op, e),
            };
            self.shared.complete(request.token, done);
        }
        if let Some(h) = held {
            h.close().await;
        }
    }

    async fn on_open(
        &self,
        held: &mut Option<OpenFid>,
        request: &GpuRequest,
        remote_gpu: &str,
    ) -> Result<Completion, FsError> {
        let remote = self.current().ok_or(FsError::Unreachable)?;
        if let Some(h) = held.take_if(|h| !Arc::ptr_eq(&h.remote, &remote)) {
            // Opened on a connection that has since been replaced.
            h.close().await;
        }
        let fid = match held {
            Some(h) => h.fid,
            None => {
                let h = remote.open(&self.mirror, request, remote_gpu).await?;
                let fid = h.fid;
                *held = Some(h);
                fid
            }
        };
        Ok(match &request.op {
            GpuOp::Read { offset, count } => {
                Completion::Read(remote.read(fid, *offset, *count).await)
            }
            GpuOp::Write { offset, data } => {
                Completion::Write(remote.write(fid, *offset, data).await)
            }
        })
    }

    /// Runs a `lease`/`release` on a fid of its own: the write, then the
    /// reply the bridge left for that fid, handed to the hive.
    async fn run_command(self: Arc<Self>, request: GpuRequest, remote_gpu: String) {
        let (result, reply) = match self.command(&request, &remote_gpu).await {
            Ok(done) => done,
            Err(e) => (Err(e), Vec::new()),
        };
        self.shared
            .with_engine(|e| e.hive_mut().set_gpu_reply(request.token, &reply));
        self.shared
            .complete(request.token, Completion::Write(result));
    }

    async fn command(
        &self,
        request: &GpuRequest,
        remote_gpu: &str,
    ) -> Result<(Result<u32, FsError>, Vec<u8>), FsError> {
        let GpuOp::Write { data, .. } = &request.op else {
            return Err(FsError::Invalid);
        };
        let remote = self.current().ok_or(FsError::Unreachable)?;
        let h = remote.open(&self.mirror, request, remote_gpu).await?;
        let written = remote.write(h.fid, 0, data).await;
        let reply = remote
            .read(h.fid, 0, MAX_COMMAND_REPLY)
            .await
            .unwrap_or_default();
        h.close().await;
        Ok((written, reply))
    }
}
