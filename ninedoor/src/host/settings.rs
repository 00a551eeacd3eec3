//! The host's configuration: built-in defaults that are safe on a laptop
//! (loopback only, a fresh key, the hive library's limits), overridden by an
//! optional TOML file, overridden by command-line flags. Unknown keys in the
//! file are refused, so a typo never silently leaves a default in force.
//!
//! ```toml
//! listen = "127.0.0.1:5640"          # TCP; "127.0.0.1:0" picks a free port
//! unix = "/run/cohesix/ninedoor.sock" # optional
//! ticket_file = "/run/user/1000/cohesix/queen.ticket"
//! key_file = "/etc/cohesix/hive.key"  # optional: 32 bytes or 64 hex, mode 0600
//! insecure_plain_tcp = false          # plain TCP on a non-loopback listen: refused
//!
//! [hive]
//! ticket_ttl_s = 3600
//! telemetry_capacity = 16384
//!
//! [serve]
//! max_connections = 1024
//! idle_timeout_s = 300
//!
//! [state]                           # optional: nothing is lost across restarts
//! dir = "/var/lib/cohesix"            # audit log, hive.redb, hive.key (all 0600)
//! log_max_bytes = 8388608             # rotate queen.log past this
//! log_keep = 8                        # rotated files kept
//!
//! [gpu]
//! bridges = ["127.0.0.1:5650"]        # or "PREFIX=HOST:PORT", repeatable
//! key_file = "/etc/cohesix/bridge.key" # shared with each bridge's --ticket-key-file
//!
//! [tls]                               # mutual TLS on the listener and the bridge links
//! cert = "/etc/cohesix/queen.pem"     # `ninedoor cert server`
//! key = "/etc/cohesix/queen.key"      # mode 0600
//! ca = "/etc/cohesix/ca.pem"          # `ninedoor cert ca`
//! ```
//!
//! `ninedoor --print-config` prints every key with its value in force.

use crate::HiveConfig;
use crate::host::error::HostError;
use secure9p_transport::server::ServeConfig;
use secure9p_transport::tls::TlsFiles;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default TCP address: loopback only, so a hive is never exposed to
/// the network without the operator asking for it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5640";

/// Everything the host needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// TCP address to serve on (port 0: any free port, printed at start).
    pub listen: SocketAddr,
    /// A Unix socket to serve on as well (created mode 0600, removed at exit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unix: Option<PathBuf>,
    /// Where the Queen's ticket is written (default: see
    /// [`default_ticket_path`](crate::host::default_ticket_path)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_file: Option<PathBuf>,
    /// The hive key (default: 32 fresh random bytes, so tickets die with the
    /// process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Serve plain TCP on a non-loopback `listen` anyway (tickets cross the
    /// network in clear). Without it, such a listener needs [`tls`](Self::tls).
    pub insecure_plain_tcp: bool,
    /// The hive's limits.
    pub hive: HiveSettings,
    /// The socket runners' limits.
    pub serve: ServeSettings,
    /// The GPU bridges whose GPUs the hive mirrors under `/gpu`.
    pub gpu: GpuSettings,
    /// Where the audit log and the hive's state outlive the process.
    pub state: StateSettings,
    /// Mutual TLS on the TCP listener and on the links to GPU bridges (the
    /// Unix socket stays plain: it is local and mode 0600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
}

/// The host's TLS files, as the config file spells them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// This host's certificate (it serves and dials the bridges with it).
    pub cert: PathBuf,
    /// Its private key, mode 0600.
    pub key: PathBuf,
    /// The CA every peer's certificate must chain to.
    pub ca: PathBuf,
}

impl TlsSettings {
    /// The files for `secure9p_transport::tls`.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: self.ca.clone(),
        }
    }
}

impl From<TlsFiles> for TlsSettings {
    fn from(f: TlsFiles) -> Self {
        TlsSettings {
            cert: f.cert,
            key: f.key,
            ca: f.ca,
        }
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5640)),
            unix: None,
            ticket_file: None,
            key_file: None,
            insecure_plain_tcp: false,
            hive: HiveSettings::default(),
            serve: ServeSettings::default(),
            gpu: GpuSettings::default(),
            state: StateSettings::default(),
            tls: None,
        }
    }
}

/// Default size at which `queen.log` is rotated: 8 MiB is some 60,000
/// events, days of a busy hive, and quick to read back for the ring.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Default number of rotated audit files kept (with the active one, at most
/// 72 MiB on disk at the default size).
pub const DEFAULT_LOG_KEEP: u32 = 8;

/// The state directory (see `docs/hive.md`, "The state directory").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSettings {
    /// The directory (created mode 0700): `queen.log*`, `hive.redb` and,
    /// unless `key_file` is given, `hive.key`. Without one the log and the
    /// state live only in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Rotate `queen.log` once it would grow past this many bytes.
    pub log_max_bytes: u64,
    /// Rotated audit files kept (`queen.log.1` newest … oldest).
    pub log_keep: u32,
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            dir: None,
            log_max_bytes: DEFAULT_LOG_MAX_BYTES,
            log_keep: DEFAULT_LOG_KEEP,
        }
    }
}

/// Default deadline of one call to a GPU bridge: a bridge answers in
/// microseconds; one that takes this long is treated as gone. Shorter than
/// `cohsh`'s own 10 s, so a client hears `ETIMEDOUT` rather than nothing.
pub const DEFAULT_BRIDGE_TIMEOUT_S: u64 = 5;

/// The GPU bridges NineDoor forwards `/gpu` to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuSettings {
    /// Bridges as `HOST:PORT`, or `PREFIX=HOST:PORT` to install their GPU
    /// `<id>` as `PREFIX-<id>` (for several bridges that number GPUs alike).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<String>,
    /// The bridge key: 32 bytes or 64 hex digits, mode 0600; the file each
    /// bridge is started with (`--ticket-key-file`), never the hive key.
    /// NineDoor signs a bridge ticket per forwarded principal with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Deadline of one call to a bridge, seconds.
    pub timeout_s: u64,
}

impl Default for GpuSettings {
    fn default() -> Self {
        GpuSettings {
            bridges: Vec::new(),
            key_file: None,
            timeout_s: DEFAULT_BRIDGE_TIMEOUT_S,
        }
    }
}

/// [`HiveConfig`] as the config file spells it (see its fields for why each
/// default is what it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HiveSettings {
    /// Largest msize negotiated (at least 4096).
    pub max_msize: u32,
    /// Most fids per session.
    pub max_fids: usize,
    /// Most deferred requests per session.
    pub max_inflight: usize,
    /// Refuse any reuse of a fid number within a session.
    pub strict_fids: bool,
    /// Bytes `/log/queen.log` keeps.
    pub log_capacity: usize,
    /// Bytes each telemetry ring keeps.
    pub telemetry_capacity: usize,
    /// Largest single telemetry append.
    pub telemetry_max_write: usize,
    /// Longest `/queen/ctl` line.
    pub max_ctl_line: usize,
    /// Lifetime of spawned workers' tickets, seconds.
    pub ticket_ttl_s: u64,
    /// Longest lifetime the `budget` command may set, seconds.
    pub max_ticket_ttl_s: u64,
    /// Lifetime of the Queen's ticket, seconds (the host renews it at half
    /// time and rewrites the ticket file).
    pub queen_ticket_ttl_s: u64,
    /// Telemetry appends per worker; 0 means unlimited.
    pub worker_ops: u64,
    /// Most live workers.
    pub max_workers: usize,
}

impl Default for HiveSettings {
    fn default() -> Self {
        HiveSettings::from(&HiveConfig::default())
    }
}

impl From<&HiveConfig> for HiveSettings {
    fn from(c: &HiveConfig) -> Self {
        HiveSettings {
            max_msize: c.max_msize,
            max_fids: c.max_fids,
            max_inflight: c.max_inflight,
            strict_fids: c.strict_fids,
            log_capacity: c.log_capacity,
            telemetry_capacity: c.telemetry_capacity,
            telemetry_max_write: c.telemetry_max_write,
            max_ctl_line: c.max_ctl_line,
            ticket_ttl_s: c.ticket_ttl_s,
            max_ticket_ttl_s: c.max_ticket_ttl_s,
            queen_ticket_ttl_s: c.queen_ticket_ttl_s,
            worker_ops: c.worker_ops.unwrap_or(0),
            max_workers: c.max_workers,
        }
    }
}

impl HiveSettings {
    /// The hive configuration (checked by `Hive::new`).
    pub fn to_hive_config(&self) -> HiveConfig {
        HiveConfig {
            max_msize: self.max_msize,
            max_fids: self.max_fids,
            max_inflight: self.max_inflight,
            strict_fids: self.strict_fids,
            log_capacity: self.log_capacity,
            telemetry_capacity: self.telemetry_capacity,
            telemetry_max_write: self.telemetry_max_write,
            max_ctl_line: self.max_ctl_line,
            ticket_ttl_s: self.ticket_ttl_s,
            max_ticket_ttl_s: self.max_ticket_ttl_s,
            queen_ticket_ttl_s: self.queen_ticket_ttl_s,
            worker_ops: (self.worker_ops != 0).then_some(self.worker_ops),
            max_workers: self.max_workers,
        }
    }
}

/// [`ServeConfig`] as the config file spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// Most connections at once.
    pub max_connections: usize,
    /// A connection silent this long is closed, seconds.
    pub idle_timeout_s: u64,
    /// A frame must arrive whole within this time of its first byte, seconds.
    pub frame_timeout_s: u64,
    /// Reply batches queued per connection before reading stops.
    pub write_queue: usize,
}

impl Default for ServeSettings {
    fn default() -> Self {
        let c = ServeConfig::default();
        ServeSettings {
            max_connections: c.max_connections,
            idle_timeout_s: c.idle_timeout.as_secs(),
            frame_timeout_s: c.frame_timeout.as_secs(),
            write_queue: c.write_queue,
        }
    }
}

impl ServeSettings {
    /// The runners' configuration (zero timeouts and limits are raised to
    /// one: a zero would close every connection at once).
    pub fn to_serve_config(&self) -> ServeConfig {
        ServeConfig {
            max_connections: self.max_connections.max(1),
            idle_timeout: Duration::from_secs(self.idle_timeout_s.max(1)),
            frame_timeout: Duration::from_secs(self.frame_timeout_s.max(1)),
            write_queue: self.write_queue.max(1),
        }
    }
}

impl HostConfig {
    /// Parses a config file's text (`path` names it in errors).
    pub fn from_toml(text: &str, path: &Path) -> Result<HostConfig, HostError> {
        let config: HostConfig = toml::from_str(text).map_err(|e| HostError::Config {
            path: path.to_path_buf(),
            why: e.to_string().trim_end().replace('\n', " "),
        })?;
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<HostConfig, HostError> {
        let text = std::fs::read_to_string(path).map_err(|e| HostError::Config {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        HostConfig::from_toml(&text, path)
    }

    /// The configuration as a config file would say it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}
