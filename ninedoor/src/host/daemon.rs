//! [`Host`]: a hive served on TCP (and optionally a Unix socket) by the
//! transport's runners, with its Queen ticket written to a file only its
//! owner can read and renewed at half its lifetime. It owns the sockets and
//! files it created and removes them at [`Host::shutdown`].

use crate::host::audit_files::AuditFiles;
use crate::host::durable::{self, Batch, Recorder};
use crate::host::engine::{GpuForward, HiveEngine, NoBridge};
use crate::host::error::HostError;
use crate::host::forward::{self, Bridges};
use crate::host::key::{OsIds, load_key, random_key, write_new_key};
use crate::host::settings::HostConfig;
use crate::host::state_db::StateDb;
use crate::host::ticket_file::{default_ticket_path, remove_if_holds, write_ticket};
use crate::{Hive, Restored, StateChange};
use secure9p_transport::observe::Observer;
use secure9p_transport::server::{Running, Shared, serve};
use secure9p_transport::tls::{self, Identity, TlsClient, TlsServer};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The real clock, unix seconds (what the hive is given as `now`).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A running NineDoor host.
#[derive(Debug)]
pub struct Host {
    shared: Arc<Shared<HiveEngine>>,
    tcp: Running,
    tcp_addr: SocketAddr,
    tls: bool,
    unix: Option<(Running, PathBuf)>,
    ticket_path: PathBuf,
    renew: tokio::task::JoinHandle<()>,
    /// The GPU bridge links (configured and added at run time).
    bridges: Option<forward::SharedLinks>,
    /// With a state directory: `SIGXFSZ` caught, so a file size limit makes
    /// a write fail with `EFBIG` (and its request refused) instead of
    /// killing the hive.
    _xfsz: Option<tokio::signal::unix::Signal>,
}

/// What a state directory brings to the start.
struct Opened {
    files: AuditFiles,
    db: StateDb,
    restored: Restored,
    torn: u64,
}

/// `SIGXFSZ` on Linux.
const SIGXFSZ: i32 = 25;

/// Opens `dir`: creates it (0700) if missing, cuts a torn log record, reads
/// the database (refusing a corrupt one) and the log's tail.
fn open_state(dir: &Path, config: &HostConfig, now: u64) -> Result<Opened, HostError> {
    let bad = |why: String| HostError::State {
        path: dir.to_path_buf(),
        why,
    };
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(bad("exists and is not a directory".into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| HostError::file("state directory", dir, e))?;
        }
        Err(e) => return Err(HostError::file("state directory", dir, e)),
    }
    let (files, opened) = AuditFiles::open(dir, config.state.log_max_bytes, config.state.log_keep)
        .map_err(|e| HostError::file("audit log", &dir.join("queen.log"), e))?;
    let (db, state) = StateDb::open(dir)?;
    // Most of the ring for the old tail; the rest for this start's lines.
    let room = config.hive.log_capacity / 4 * 3;
    let mut history = files
        .tail(room)
        .map_err(|e| HostError::file("audit log", &files.path(), e))?;
    if !history.is_empty() {
        history.push(format!(
            "{now} audit-history role=- subject=- ticket=- why=\"the lines above are the last of {}; all of them, and older ones in {}, are on disk\"\n",
            files.path().display(),
            files.older()
        ));
    }
    Ok(Opened {
        files,
        db,
        restored: Restored { state, history },
        torn: opened.torn,
    })
}

/// The hive key of a state directory: `dir/hive.key`, made (0600) on the
/// first start so tickets outlive restarts.
fn state_key(dir: &Path) -> Result<[u8; 32], HostError> {
    let path = dir.join("hive.key");
    if !path.exists() {
        return write_new_key(&path);
    }
    load_key(&path)
}

impl Host {
    /// Starts serving, with the GPU bridges of `config.gpu` (each connected
    /// in the background, reconnected when it goes away; its GPUs appear
    /// under `/gpu` once it answers), or with none (`/gpu` requests fail
    /// with `EHOSTUNREACH`). With a bridge key the Queen can add and remove
    /// bridges through `/queen/ctl` (not kept across a restart). Must be
    /// called inside a tokio runtime.
    pub async fn start(config: &HostConfig) -> Result<Host, HostError> {
        let identity = load_identity(config)?;
        let dialer = identity.as_ref().map(TlsClient::new).transpose()?;
        match Bridges::plan(&config.gpu, dialer)? {
            Some((bridges, forward)) => {
                let mut host = Host::start_tls(config, forward, identity.as_ref()).await?;
                host.bridges = Some(bridges.start(&host.shared));
                Ok(host)
            }
            None => Host::start_tls(config, NoBridge, identity.as_ref()).await,
        }
    }

    /// Starts serving, forwarding `/gpu` requests to `bridge` (and ignoring
    /// `config.gpu`): builds the
    /// hive (key from `key_file` or the OS), binds the listeners, and only
    /// then writes the Queen's ticket file, so a failed start leaves none.
    pub async fn start_with(
        config: &HostConfig,
        bridge: impl GpuForward,
    ) -> Result<Host, HostError> {
        let identity = load_identity(config)?;
        Host::start_tls(config, bridge, identity.as_ref()).await
    }

    async fn start_tls(
        config: &HostConfig,
        bridge: impl GpuForward,
        identity: Option<&Identity>,
    ) -> Result<Host, HostError> {
        tls::check_listener(config.listen, identity.is_some(), config.insecure_plain_tcp)?;
        let acceptor = identity
            .map(TlsServer::new)
            .transpose()?
            .map(|a| a.with_log(|line| eprintln!("ninedoor: {line}")));
        let ticket_path = match &config.ticket_file {
            Some(p) => p.clone(),
            None => default_ticket_path().ok_or(HostError::NoTicketPath)?,
        };
        let now = unix_now();
        let key = match &config.key_file {
            Some(p) => Some(load_key(p)?),
            None => None,
        };
        let (hive, opened) = match &config.state.dir {
            Some(dir) => {
                let mut opened = open_state(dir, config, now)?;
                let key = match key {
                    Some(k) => k,
                    None => state_key(dir)?,
                };
                let restored = std::mem::take(&mut opened.restored);
                let mut hive = Hive::restore(
                    config.hive.to_hive_config(),
                    key,
                    OsIds::default(),
                    now,
                    restored,
                )?;
                if opened.torn > 0 {
                    let why = format!(
                        "cut {} bytes of a torn last record from {} (a write the crash interrupted; never acknowledged)",
                        opened.torn,
                        opened.files.path().display()
                    );
                    eprintln!("ninedoor: {why}");
                    hive.log_event(now, "audit-torn", &why);
                }
                let first = Batch {
                    lines: hive.take_journal(),
                    // The whole state once at start, changes after it.
                    state: {
                        let _ = hive.take_changes();
                        Some(StateChange::whole(hive.state()))
                    },
                    release: None,
                };
                durable::record_now(&mut opened.files, &mut opened.db, first).map_err(|why| {
                    HostError::State {
                        path: dir.clone(),
                        why: format!("cannot record the start: {why}"),
                    }
                })?;
                (hive, Some(opened))
            }
            None => {
                let key = match key {
                    Some(k) => k,
                    None => random_key()?,
                };
                let hive = Hive::new(config.hive.to_hive_config(), key, OsIds::default(), now)?;
                (hive, None)
            }
        };
        // The runners' own figures, for the Queen in /proc/transport.
        let observer = Arc::new(Observer::new());
        let mut hive = hive;
        let shown = observer.clone();
        hive.install_transport_file(move || shown.snapshot().render().into_bytes())?;
        let ticket = hive.queen_ticket().to_owned();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| HostError::bind(config.listen, e))?;
        let tcp_addr = listener
            .local_addr()
            .map_err(|e| HostError::bind(config.listen, e))?;
        let unix = match &config.unix {
            Some(path) => Some((bind_unix(path)?, path.clone())),
            None => None,
        };
        if let Err(e) = write_ticket(&ticket_path, &ticket) {
            if let Some((_, path)) = &unix {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
        let (shared, xfsz) = match opened {
            Some(opened) => {
                let (recorder, rx) = Recorder::new();
                let engine = HiveEngine::new(hive, bridge).with_recorder(recorder);
                let shared = Shared::observed(engine, observer);
                durable::start(opened.files, opened.db, rx, Arc::downgrade(&shared))
                    .map_err(|e| HostError::file("audit writer thread", &ticket_path, e))?;
                let xfsz =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))
                        .ok();
                (shared, xfsz)
            }
            None => (
                Shared::observed(HiveEngine::new(hive, bridge), observer),
                None,
            ),
        };
        let serve_config = config.serve.to_serve_config();
        let tcp = match acceptor {
            Some(acceptor) => tls::serve(listener, acceptor, shared.clone(), serve_config.clone()),
            None => serve(listener, shared.clone(), serve_config.clone()),
        };
        let unix = unix.map(|(l, path)| (serve(l, shared.clone(), serve_config), path));
        let renew = tokio::spawn(renew_queen(
            shared.clone(),
            ticket_path.clone(),
            config.hive.queen_ticket_ttl_s,
        ));
        Ok(Host {
            shared,
            tcp,
            tcp_addr,
            tls: identity.is_some(),
            unix,
            ticket_path,
            renew,
            bridges: None,
            _xfsz: xfsz,
        })
    }

    /// The TCP address bound (the real port when `listen` asked for port 0).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Whether the TCP listener speaks mutual TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The TCP runner's counters (TLS refusals among them).
    pub fn tcp_stats(&self) -> &secure9p_transport::server::Stats {
        self.tcp.stats()
    }

    /// The Unix socket served, if any.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix.as_ref().map(|(_, p)| p.as_path())
    }

    /// The Queen's ticket file.
    pub fn ticket_path(&self) -> &Path {
        &self.ticket_path
    }

    /// The Queen's current ticket (for an in-process Queen; others read the file).
    pub fn queen_ticket(&self) -> String {
        self.shared
            .with_engine(|e| e.hive().queen_ticket().to_owned())
    }

    /// When the Queen's current ticket expires, unix seconds.
    pub fn queen_ticket_expires(&self) -> u64 {
        self.shared.with_engine(|e| e.hive().queen_ticket_expires())
    }

    /// The engine every connection shares: to inspect or change the hive
    /// (`with_engine`), or to finish forwarded `/gpu` requests (`complete`).
    pub fn shared(&self) -> &Arc<Shared<HiveEngine>> {
        &self.shared
    }

    /// Stops accepting, closes every connection (pending work cancelled),
    /// and removes the Unix socket and the ticket file (if it still holds
    /// this hive's ticket: the key dies with the process, so would the ticket).
    pub async fn shutdown(self) {
        self.renew.abort();
        if let Some(links) = &self.bridges {
            forward::stop_all(links);
        }
        let ticket = self.queen_ticket();
        self.tcp.shutdown().await;
        if let Some((running, path)) = self.unix {
            running.shutdown().await;
            let _ = std::fs::remove_file(path);
        }
        remove_if_holds(&self.ticket_path, &ticket);
    }
}

/// The host's TLS identity, if `config.tls` names one.
fn load_identity(config: &HostConfig) -> Result<Option<Identity>, HostError> {
    Ok(config
        .tls
        .as_ref()
        .map(|t| Identity::load(&t.files()))
        .transpose()?)
}

/// Binds a Unix socket at `path`, mode 0600. A socket file left by a server
/// that died is replaced; a live server's socket, or anything that is not a
/// socket, is left alone and refused.
fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, HostError> {
    let addr = path.display().to_string();
    let bind_err = |e| HostError::Bind {
        addr: addr.clone(),
        source: e,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(bind_err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(HostError::SocketInUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(listener)
}

/// Renews the Queen's ticket at half its lifetime and rewrites the file, so
/// a long-running hive never locks its operator out.
async fn renew_queen(shared: Arc<Shared<HiveEngine>>, path: PathBuf, ttl_s: u64) {
    let period = Duration::from_secs((ttl_s / 2).max(1));
    loop {
        tokio::time::sleep(period).await;
        let renewed = shared.with_engine(|e| {
            let renewed = e
                .hive_mut()
                .renew_queen_ticket(unix_now())
                .map(str::to_owned);
            e.record_pending();
            renewed
        });
        let written = match renewed {
            Ok(ticket) => write_ticket(&path, &ticket).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = written {
            eprintln!("ninedoor: renewing the queen ticket failed: {e}");
        }
    }
}
