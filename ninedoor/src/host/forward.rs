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
//! given as `PREFIX=HOST:PORT` has its GPU `0` installed as `PREFIX-0`.

use crate::bridge::failed;
use crate::host::engine::{GpuForward, HiveEngine};
use crate::host::error::HostError;
use crate::host::key::load_key;
use crate::host::link::Link;
use crate::host::settings::GpuSettings;
use crate::{GpuClosed, GpuRequest};
use secure9p_core::{Completion, FsError};
use secure9p_transport::server::Shared;
use secure9p_transport::tls::TlsClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Locks a std mutex, taking over a poisoned one (each holder leaves the
/// data whole between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a bridge is: `[PREFIX=]HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeTarget {
    /// Put before the bridge's GPU ids (`PREFIX-<id>`) in `/gpu`.
    pub prefix: Option<String>,
    /// `host:port`.
    pub addr: String,
}

impl std::fmt::Display for BridgeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.prefix {
            Some(p) => write!(f, "{p}={}", self.addr),
            None => f.write_str(&self.addr),
        }
    }
}

impl std::str::FromStr for BridgeTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (prefix, addr) = match s.split_once('=') {
            Some((p, a)) => (Some(p), a),
            None => (None, s),
        };
        if let Some(p) = prefix {
            let ok = !p.is_empty()
                && p.len() <= 16
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(format!(
                    "bridge prefix {p:?} is not 1 to 16 of [A-Za-z0-9_]"
                ));
            }
        }
        let port = addr.rsplit_once(':').map(|(_, p)| p);
        if addr.is_empty() || port.is_none_or(|p| p.parse::<u16>().is_err()) {
            return Err(format!("bridge address {addr:?} is not HOST:PORT"));
        }
        Ok(BridgeTarget {
            prefix: prefix.map(String::from),
            addr: addr.to_owned(),
        })
    }
}

impl BridgeTarget {
    /// The host part of the address: the name the bridge's TLS certificate
    /// must carry (`[::1]:5650` gives `::1`).
    pub fn host(&self) -> &str {
        secure9p_transport::tls::server_name_of(&self.addr)
    }

    /// The id in `/gpu` of the bridge's GPU `remote`.
    pub fn local_id(&self, remote: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}-{remote}"),
            None => remote.to_owned(),
        }
    }
}

/// Where a GPU's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The link's index.
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

/// The hook. Requests queue on unbounded channels: what they hold is
/// bounded by the hive's own limits (in-flight requests per session,
/// sessions per runner).
#[derive(Debug)]
pub struct BridgeForward {
    routes: Routes,
    links: Vec<mpsc::UnboundedSender<LinkJob>>,
}

impl GpuForward for BridgeForward {
    fn forward(&mut self, request: GpuRequest) -> Option<Completion> {
        let route = lock(&self.routes).get(&request.gpu).cloned();
        let Some(tx) = route.as_ref().and_then(|r| self.links.get(r.link)) else {
            return Some(failed(&request.op, FsError::Unreachable));
        };
        let remote = route.map(|r| r.remote).unwrap_or_default();
        match tx.send(LinkJob::Request { request, remote }) {
            Ok(()) => None,
            Err(mpsc::error::SendError(job)) => match job {
                LinkJob::Request { request, .. } => Some(failed(&request.op, FsError::Unreachable)),
                LinkJob::Close { .. } => None,
            },
        }
    }

    fn closed(&mut self, closed: &[GpuClosed]) {
        let routes = lock(&self.routes);
        for c in closed {
            if let Some(tx) = routes.get(&c.gpu).and_then(|r| self.links.get(r.link)) {
                let _ = tx.send(LinkJob::Close { open: c.open });
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
    jobs: Vec<mpsc::UnboundedReceiver<LinkJob>>,
    tls: Option<TlsClient>,
}

impl Bridges {
    /// Checks the settings and loads the bridge key; `None` without bridges.
    pub(crate) fn plan(
        settings: &GpuSettings,
        tls: Option<TlsClient>,
    ) -> Result<Option<(Bridges, BridgeForward)>, HostError> {
        if settings.bridges.is_empty() {
            return Ok(None);
        }
        let targets = settings
            .bridges
            .iter()
            .map(|s| s.parse::<BridgeTarget>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(HostError::Bridge)?;
        let Some(key_file) = &settings.key_file else {
            return Err(HostError::Bridge(String::from(
                "GPU bridges need a bridge key (--gpu-bridge-key FILE, the file each bridge \
                 reads with --ticket-key-file)",
            )));
        };
        let key = load_key(key_file)?;
        let routes = Routes::default();
        let (senders, jobs) = targets.iter().map(|_| mpsc::unbounded_channel()).unzip();
        Ok(Some((
            Bridges {
                targets,
                key,
                timeout: Duration::from_secs(settings.timeout_s.max(1)),
                routes: routes.clone(),
                jobs,
                tls,
            },
            BridgeForward {
                routes,
                links: senders,
            },
        )))
    }

    /// Starts one link task per bridge.
    pub(crate) fn start(
        self,
        shared: &Arc<Shared<HiveEngine>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.targets
            .into_iter()
            .zip(self.jobs)
            .enumerate()
            .map(|(index, (target, jobs))| {
                let link = Link::new(
                    index,
                    target,
                    self.key,
                    shared.clone(),
                    self.routes.clone(),
                    self.timeout,
                    self.tls.clone(),
                );
                tokio::spawn(link.run(jobs))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::BridgeTarget;

    #[test]
    fn bridge_targets_parse() {
        let t: BridgeTarget = "127.0.0.1:5650".parse().unwrap();
        assert_eq!(
            (t.prefix.clone(), t.addr.as_str()),
            (None, "127.0.0.1:5650")
        );
        assert_eq!(t.host(), "127.0.0.1");
        let t: BridgeTarget = "[::1]:5650".parse().unwrap();
        assert_eq!(t.host(), "::1");
        let t: BridgeTarget = "h1=gpu-host:5650".parse().unwrap();
        assert_eq!(t.prefix.as_deref(), Some("h1"));
        assert_eq!(t.local_id("0"), "h1-0");
        assert_eq!(t.to_string(), "h1=gpu-host:5650");
        for bad in ["", "host", "host:x", "=h:1", "a-b=h:1", "h:99999"] {
            assert!(bad.parse::<BridgeTarget>().is_err(), "{bad}");
        }
    }
}
