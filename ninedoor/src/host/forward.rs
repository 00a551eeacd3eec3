//! [`BridgeForward`]: the [`GpuForward`] hook that sends `/gpu` requests to
//! real GPU bridges over Secure9P TCP (mutual TLS when the host has a TLS
//! identity), one [`Link`](super::link) per bridge.
//!
//! The hook runs with the engine locked, so it only routes: it looks the
//! GPU up (which bridge, and that bridge's id for it) and hands the request
//! to the link's task, returning `None`; the link completes it later. A GPU
//! with no route answers `EHOSTUNREACH` at once.
//!
//! Several bridges may number their GPUs alike (`0`, `1`, …): a bridge
//! given as `PREFIX=HOST:PORT` has its GPU `0` installed as `PREFIX-0`;
//! a GPU whose id another bridge holds already is refused (and logged),
//! the rest of its bridge served.
//!
//! Links come and go while the host runs: a `bridge` command of
//! `/queen/ctl` makes the hive queue a [`BridgeEvent`], which the engine
//! hands to [`GpuForward::bridges_changed`]; an added bridge gets a new
//! link task, a removed one loses its routes and its queue, and its task
//! completes what it still holds with `EHOSTUNREACH` and ends.

use crate::bridge::failed;
use crate::host::engine::{GpuForward, HiveEngine};
use crate::host::error::HostError;
use crate::host::key::load_key;
use crate::host::link::Link;
use crate::host::settings::GpuSettings;
use crate::{BridgeEvent, GpuClosed, GpuRequest};
use secure9p_core::{Completion, FsError};
use secure9p_transport::server::Shared;
use secure9p_transport::tls::TlsClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Locks a std mutex, taking over a poisoned one (each holder leaves the
/// data whole between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub use crate::bridge::BridgeTarget;

impl BridgeTarget {
    /// The host part of the address: the name the bridge's TLS certificate
    /// must carry (`[::1]:5650` gives `::1`).
    pub fn host(&self) -> &str {
        secure9p_transport::tls::server_name_of(&self.addr)
    }
}

/// Where a GPU's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The link's number.
    pub(crate) link: usize,
    /// The bridge's id of the GPU.
    pub(crate) remote: String,
}

/// The routes by local GPU id, shared by the hook and the links.
pub(crate) type Routes = Arc<Mutex<HashMap<String, Route>>>;

/// What the hook hands a link.
#[derive(Debug)]
pub(crate) enum LinkJob {
    /// A request, with the bridge's id of its GPU.
    Request { request: GpuRequest, remote: String },
    /// The open was clunked: its bridge fid can go.
    Close { open: u64 },
}

/// One running link: its job queue and its task. Dropping the queue stops
/// the link once it has completed what it holds.
#[derive(Debug)]
struct LinkSlot {
    target: BridgeTarget,
    jobs: mpsc::UnboundedSender<LinkJob>,
    task: tokio::task::JoinHandle<()>,
}

/// What a new link needs; set when the links start (the engine exists).
#[derive(Debug, Clone)]
struct Starter {
    key: [u8; 32],
    timeout: Duration,
    tls: Option<TlsClient>,
    runtime: tokio::runtime::Handle,
    /// Weak: the engine holds the hook, which holds this.
    shared: Weak<Shared<HiveEngine>>,
}

/// The running links by number, shared by the hook (which starts and
/// stops them when the Queen adds or removes a bridge) and the host (which
/// stops them all at shutdown).
#[derive(Debug, Default)]
pub(crate) struct Links {
    slots: HashMap<usize, LinkSlot>,
    next: usize,
    starter: Option<Starter>,
}

/// [`Links`], shared.
pub(crate) type SharedLinks = Arc<Mutex<Links>>;

impl Links {
    /// Starts a link to `target`; `None` before the links were started.
    fn start(&mut self, target: BridgeTarget, routes: &Routes) -> Option<usize> {
        let starter = self.starter.clone()?;
        let shared = starter.shared.upgrade()?;
        let index = self.next;
        self.next += 1;
        let (jobs, rx) = mpsc::unbounded_channel();
        let link = Link::new(
            index,
            target.clone(),
            starter.key,
            shared,
            routes.clone(),
            starter.timeout,
            starter.tls,
        );
        let task = starter.runtime.spawn(link.run(rx));
        self.slots.insert(index, LinkSlot { target, jobs, task });
        Some(index)
    }
}

/// Stops every link at once (the host is shutting down: nobody waits for
/// their answers).
pub(crate) fn stop_all(links: &SharedLinks) {
    for (_, slot) in lock(links).slots.drain() {
        slot.task.abort();
    }
}

/// The hook. Requests queue on unbounded channels: what they hold is
/// bounded by the hive's own limits (in-flight requests per session,
/// sessions per runner).
#[derive(Debug)]
pub struct BridgeForward {
    routes: Routes,
    links: SharedLinks,
}

impl GpuForward for BridgeForward {
    fn forward(&mut self, request: GpuRequest) -> Option<Completion> {
        let route = lock(&self.routes).get(&request.gpu).cloned();
        let links = lock(&self.links);
        let Some((slot, route)) = route.and_then(|r| Some((links.slots.get(&r.link)?, r))) else {
            return Some(failed(&request.op, FsError::Unreachable));
        };
        let job = LinkJob::Request {
            request,
            remote: route.remote,
        };
        match slot.jobs.send(job) {
            Ok(()) => None,
            Err(mpsc::error::SendError(job)) => match job {
                LinkJob::Request { request, .. } => Some(failed(&request.op, FsError::Unreachable)),
                LinkJob::Close { .. } => None,
            },
        }
    }

    fn closed(&mut self, closed: &[GpuClosed]) {
        let routes = lock(&self.routes);
        let links = lock(&self.links);
        for c in closed {
            if let Some(slot) = routes.get(&c.gpu).and_then(|r| links.slots.get(&r.link)) {
                let _ = slot.jobs.send(LinkJob::Close { open: c.open });
            }
        }
    }

    fn bridges_changed(&mut self, events: &[BridgeEvent]) {
        let mut links = lock(&self.links);
        for event in events {
            match event {
                BridgeEvent::Add(target) => {
                    if links.start(target.clone(), &self.routes).is_none() {
                        eprintln!(
                            "ninedoor: gpu bridge {target}: link not started (host stopping)"
                        );
                    }
                }
                BridgeEvent::Remove(target) => {
                    let index = links
                        .slots
                        .iter()
                        .find(|(_, s)| s.target.addr == target.addr)
                        .map(|(i, _)| *i);
                    let Some(index) = index else {
                        continue;
                    };
                    lock(&self.routes).retain(|_, r| r.link != index);
                    // Its queue closes: the task completes what it holds
                    // with EHOSTUNREACH and ends.
                    links.slots.remove(&index);
                    eprintln!("ninedoor: gpu bridge {target}: removed; link stopping");
                }
            }
        }
    }
}

/// The bridges to start once the engine exists: built before it (the hook
/// goes into the engine), started after (the links complete through it).
pub(crate) struct Bridges {
    targets: Vec<BridgeTarget>,
    /// The bridge key: each link mints mirror tickets with it.
    key: [u8; 32],
    timeout: Duration,
    routes: Routes,
    links: SharedLinks,
    tls: Option<TlsClient>,
}

impl Bridges {
    /// Checks the settings and loads the bridge key; `None` without
    /// bridges or a bridge key. With a key and no bridges the hook starts
    /// with no links, and the Queen can add bridges through `/queen/ctl`.
    pub(crate) fn plan(
        settings: &GpuSettings,
        tls: Option<TlsClient>,
    ) -> Result<Option<(Bridges, BridgeForward)>, HostError> {
        if settings.bridges.is_empty() && settings.key_file.is_none() {
            return Ok(None);
        }
        let targets = settings
            .bridges
            .iter()
            .map(|s| s.parse::<BridgeTarget>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(HostError::Bridge)?;
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|o| o.addr == t.addr) {
                return Err(HostError::Bridge(format!(
                    "bridge {} is given twice",
                    t.addr
                )));
            }
        }
        let Some(key_file) = &settings.key_file else {
            return Err(HostError::Bridge(String::from(
                "GPU bridges need a bridge key (--gpu-bridge-key FILE, the file each bridge \
                 reads with --ticket-key-file)",
            )));
        };
        let key = load_key(key_file)?;
        let routes = Routes::default();
        let links = SharedLinks::default();
        Ok(Some((
            Bridges {
                targets,
                key,
                timeout: Duration::from_secs(settings.timeout_s.max(1)),
                routes: routes.clone(),
                links: links.clone(),
                tls,
            },
            BridgeForward { routes, links },
        )))
    }

    /// Tells the hive its bridges (and that more may be added), then
    /// starts one link task per bridge. Must be called inside the runtime.
    pub(crate) fn start(self, shared: &Arc<Shared<HiveEngine>>) -> SharedLinks {
        shared.with_engine(|e| {
            let hive = e.hive_mut();
            hive.allow_bridge_changes();
            for t in &self.targets {
                hive.add_configured_bridge(t);
            }
        });
        let mut links = lock(&self.links);
        links.starter = Some(Starter {
            key: self.key,
            timeout: self.timeout,
            tls: self.tls.clone(),
            runtime: tokio::runtime::Handle::current(),
            shared: Arc::downgrade(shared),
        });
        for target in self.targets {
            links.start(target, &self.routes);
        }
        drop(links);
        self.links
    }
}

#[cfg(test)]
mod tests {
    use super::BridgeTarget;

    #[test]
    fn a_bridge_target_names_its_host() {
        let t: BridgeTarget = "127.0.0.1:5650".parse().unwrap();
        assert_eq!(t.host(), "127.0.0.1");
        let t: BridgeTarget = "[::1]:5650".parse().unwrap();
        assert_eq!(t.host(), "::1");
        let t: BridgeTarget = "h1=gpu-host:5650".parse().unwrap();
        assert_eq!(t.host(), "gpu-host");
    }
}
