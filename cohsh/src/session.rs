//! A ticket-holding session with the hive over `secure9p-transport`'s
//! client: connect (TCP, mutual TLS over TCP, or a Unix socket), attach with the ticket in `aname`,
//! then file operations by path. Every call has a deadline, and every error
//! comes back as a [`Failure`] that names the path and the exit code.
//!
//! Walks go one name at a time: a multi-name walk that stops part-way only
//! says "not found", while the hive's answer to the one name that failed
//! says why (`EACCES` for a path the role may not see).

use crate::exit::{self, Failure, Op};
use crate::ticket::{Presented, TicketInfo};
use ninedoor::host::TlsArgs;
use ninedoor::secure9p_core::FsError;
use ninedoor::secure9p_core::codec::{Fid, LOpenFlags, Msg, QidType, Rgetattr, Twalk, WalkNames};
use secure9p_transport::client::{CallError, Connection, connect_tcp, connect_unix};
use secure9p_transport::tls::{Identity, TlsClient, server_name_of};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// The msize asked for: large enough that a telemetry ring comes back in a
/// read or two, small enough for any 9P server.
pub const MSIZE: u32 = 128 * 1024;

/// The msize asked for to submit GPU jobs: a job descriptor travels in one
/// write, and the bridge takes up to 1 MiB.
pub const JOB_MSIZE: u32 = 1024 * 1024 + 24;

/// The default hive address (the `ninedoor` default).
pub const DEFAULT_ADDR: &str = "127.0.0.1:5640";

/// Where the hive is, and how long to wait for it.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The hive's TCP address.
    #[arg(long, value_name = "HOST:PORT", env = "COHESIX_ADDR", default_value = DEFAULT_ADDR, global = true)]
    pub addr: String,
    /// Connect over this Unix socket instead of TCP.
    #[arg(long, value_name = "PATH", global = true)]
    pub unix: Option<PathBuf>,
    /// Seconds to wait for the hive to answer each request.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, global = true)]
    pub timeout_s: f64,
    /// Mutual TLS to the hive (`ninedoor cert client`).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The name the hive's TLS certificate must carry [default: the host of --addr].
    #[arg(long, value_name = "NAME", global = true)]
    pub tls_server_name: Option<String>,
}

impl TargetArgs {
    /// The target named by the flags (TLS files read here, so a bad one is
    /// a usage error before anything is sent).
    pub fn target(&self) -> Result<Target, Failure> {
        let files = self.tls.files().map_err(Failure::usage)?;
        match (&self.unix, files) {
            (Some(p), None) => Ok(Target::Unix(p.clone())),
            (Some(_), Some(_)) => Err(Failure::usage(
                "--tls-* is for TCP; the Unix socket is local and mode 0600",
            )),
            (None, None) => Ok(Target::Tcp(self.addr.clone())),
            (None, Some(files)) => {
                let client = Identity::load(&files)
                    .and_then(|id| TlsClient::new(&id))
                    .map_err(|e| Failure::usage(format!("tls: {e}")))?;
                let server_name = match &self.tls_server_name {
                    Some(n) => n.clone(),
                    None => server_name_of(&self.addr).to_string(),
                };
                Ok(Target::Tls(TlsTarget {
                    addr: self.addr.clone(),
                    server_name,
                    client,
                }))
            }
        }
    }

    /// The per-request deadline (at least 10 ms, at most a day).
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s.clamp(0.01, 86_400.0))
    }
}

/// A hive's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
    /// `host:port` over mutual TLS.
    Tls(TlsTarget),
}

/// A hive reached over mutual TLS.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    /// `host:port`.
    pub addr: String,
    /// The name its certificate must carry.
    pub server_name: String,
    /// This host's connector (its certificate, the CA).
    pub client: TlsClient,
}

impl PartialEq for TlsTarget {
    fn eq(&self, other: &Self) -> bool {
        (&self.addr, &self.server_name) == (&other.addr, &other.server_name)
    }
}

impl Eq for TlsTarget {}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(a) => f.write_str(a),
            Target::Tls(t) if t.server_name == server_name_of(&t.addr) => {
                write!(f, "tls:{}", t.addr)
            }
            Target::Tls(t) => write!(f, "tls:{} ({})", t.addr, t.server_name),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name.
    pub name: String,
    /// Whether it is a directory.
    pub dir: bool,
}

/// An attached session.
#[derive(Debug)]
pub struct Session {
    conn: Connection,
    root: Fid,
    target: Target,
    who: Option<TicketInfo>,
    timeout: Duration,
}

impl Session {
    /// Connects to `target` and attaches with `ticket`.
    pub async fn connect(
        target: &Target,
        ticket: &Presented,
        timeout: Duration,
    ) -> Result<Session, Failure> {
        Session::connect_with(target, ticket, timeout, MSIZE).await
    }

    /// [`Session::connect`], asking for `msize`.
    pub async fn connect_with(
        target: &Target,
        ticket: &Presented,
        timeout: Duration,
        msize: u32,
    ) -> Result<Session, Failure> {
        let who = TicketInfo::parse(&ticket.text);
        let connect = async {
            match target {
                Target::Tcp(a) => connect_tcp(a.as_str(), msize).await,
                Target::Unix(p) => connect_unix(p, msize).await,
                Target::Tls(t) => {
                    t.client
                        .connect(t.addr.as_str(), &t.server_name, msize)
                        .await
                }
            }
        };
        let conn = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(exit::call_failure(e, "/", Op::Attach, None, target)),
            Err(_) => return Err(exit::timed_out(target, timeout)),
        };
        let uname = who.as_ref().map_or("cohsh", |w| w.subject.as_str());
        let attach = conn.attach(uname, &ticket.text);
        let root = match tokio::time::timeout(timeout, attach).await {
            Ok(Ok(fid)) => fid,
            Ok(Err(e)) => {
                let mut f = exit::call_failure(e, "/", Op::Attach, who.as_ref(), target);
                if f.exit == exit::Exit::Ticket {
                    f.message = format!("{} (ticket from {})", f.message, ticket.from);
                }
                return Err(f);
            }
            Err(_) => return Err(exit::timed_out(target, timeout)),
        };
        Ok(Session {
            conn,
            root,
            target: target.clone(),
            who,
            timeout,
        })
    }

    /// The connection (for calls this type does not wrap).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The attached root fid.
    pub fn root(&self) -> Fid {
        self.root
    }

    /// What the session's ticket claims, if it could be read.
    pub fn who(&self) -> Option<&TicketInfo> {
        self.who.as_ref()
    }

    /// The per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The hive's address.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Runs one call under the deadline, mapping its error for `path`.
    pub async fn timed<T>(
        &self,
        path: &str,
        op: Op,
        call: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|e| self.failure(e, path, op)),
            Err(_) => Err(exit::timed_out(&self.target, self.timeout)),
        }
    }

    /// Maps a call error on `path`.
    pub fn failure(&self, e: CallError, path: &str, op: Op) -> Failure {
        exit::call_failure(e, path, op, self.who.as_ref(), &self.target)
    }

    /// A new fid at `path`, walked one name at a time from the root.
    pub async fn walk(&self, path: &str) -> Result<Fid, Failure> {
        let fid = self
            .timed(path, Op::Walk, self.conn.walk(self.root, ""))
            .await?;
        let mut at = String::new();
        for name in path.split('/').filter(|s| !s.is_empty()) {
            at.push('/');
            at.push_str(name);
            let wnames = [name];
            let call = async {
                let rep = self
                    .conn
                    .call(Twalk {
                        fid,
                        newfid: fid,
                        wnames: WalkNames::new(&wnames)?,
                    })
                    .await?;
                match rep.result()? {
                    Msg::Rwalk(w) if w.wqids.len() == 1 => Ok(()),
                    _ => Err(CallError::Fs(FsError::NotFound)),
                }
            };
            let step = match tokio::time::timeout(self.timeout, call).await {
                Ok(r) => r,
                Err(_) => return Err(exit::timed_out(&self.target, self.timeout)),
            };
            if let Err(e) = step {
                self.clunk(fid).await;
                let mut f = self.failure(e, &at, Op::Walk);
                if at != path && f.exit == exit::Exit::Permission {
                    f.message = format!("{} (on the way to {path})", f.message);
                }
                if f.exit == exit::Exit::NotFound {
                    f.message = format!("no such file: {path}");
                }
                return Err(f);
            }
        }
        Ok(fid)
    }

    /// Clunks `fid`, ignoring errors (the fid is gone either way).
    pub async fn clunk(&self, fid: Fid) {
        let _ = tokio::time::timeout(self.timeout, self.conn.clunk(fid)).await;
    }

    /// Opens `path` with `flags`; the failure says which operation was refused.
    pub async fn open(&self, path: &str, flags: LOpenFlags) -> Result<Fid, Failure> {
        let fid = self.walk(path).await?;
        let op = if flags.intersects(LOpenFlags::WRONLY | LOpenFlags::RDWR) {
            Op::Write
        } else {
            Op::Read
        };
        match self.timed(path, op, self.conn.lopen(fid, flags)).await {
            Ok(_) => Ok(fid),
            Err(f) => {
                self.clunk(fid).await;
                Err(f)
            }
        }
    }

    /// The whole file.
    pub async fn read_all(&self, path: &str) -> Result<Vec<u8>, Failure> {
        let fid = self.open(path, LOpenFlags::empty()).await?;
        let data = self
            .timed(path, Op::Read, self.conn.read_to_end(fid, 0))
            .await;
        self.clunk(fid).await;
        data
    }

    /// What a read of an open fid returns at `offset` (at most one reply).
    pub async fn read_at(&self, path: &str, fid: Fid, offset: u64) -> Result<Vec<u8>, Failure> {
        let count = self.conn.msize().saturating_sub(11);
        self.timed(path, Op::Read, self.conn.read(fid, offset, count))
            .await
            .map(|b| b.to_vec())
    }

    /// A directory's entries (only those this ticket may see).
    pub async fn list(&self, path: &str) -> Result<Vec<Entry>, Failure> {
        let fid = self.open(path, LOpenFlags::empty()).await?;
        let listed = self.timed(path, Op::Read, self.conn.readdir(fid)).await;
        self.clunk(fid).await;
        Ok(listed?
            .into_iter()
            .map(|(name, qid)| Entry {
                name,
                dir: qid.ty.contains(QidType::DIR),
            })
            .collect())
    }

    /// The attributes of `path`.
    pub async fn stat(&self, path: &str) -> Result<Rgetattr, Failure> {
        let fid = self.walk(path).await?;
        let attr = self.timed(path, Op::Read, self.conn.getattr(fid)).await;
        self.clunk(fid).await;
        attr
    }

    /// Writes `data` to `path` in one write (appended, for the hive's
    /// append-only files). A control file (`…/ctl`) is opened read-write and
    /// the reply to the write is read back through the same fid and returned.
    pub async fn write(&self, path: &str, data: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
        let ctl = path.ends_with("/ctl");
        let flags = if ctl {
            LOpenFlags::RDWR
        } else {
            LOpenFlags::WRONLY
        };
        let most = self.conn.msize().saturating_sub(23) as usize;
        if data.len() > most {
            return Err(Failure::new(
                exit::Exit::Other,
                format!(
                    "{path}: {} bytes exceed one write of {most} bytes",
                    data.len()
                ),
            ));
        }
        let fid = self.open(path, flags).await?;
        let result = async {
            self.timed(path, Op::Write, self.conn.write(fid, 0, data))
                .await?;
            if ctl {
                self.timed(path, Op::Read, self.conn.read_to_end(fid, 0))
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        }
        .await;
        self.clunk(fid).await;
        result
    }

    /// Writes `data` to a file that answers each write (a ctl file, a GPU's
    /// `job`) through one read-write fid, and reads the answer back, which
    /// the file keeps for that fid whether the write succeeded or not.
    /// Returns the answer, or the failure and the answer (empty if none).
    pub async fn exchange(&self, path: &str, data: &[u8]) -> Result<Vec<u8>, (Failure, Vec<u8>)> {
        let most = self.conn.msize().saturating_sub(23) as usize;
        if data.len() > most {
            let f = Failure::new(
                exit::Exit::Other,
                format!(
                    "{path}: {} bytes exceed one write of {most} bytes",
                    data.len()
                ),
            );
            return Err((f, Vec::new()));
        }
        let fid = self
            .open(path, LOpenFlags::RDWR)
            .await
            .map_err(|f| (f, Vec::new()))?;
        let written = self
            .timed(path, Op::Write, self.conn.write(fid, 0, data))
            .await;
        let reply = self
            .timed(path, Op::Read, self.conn.read_to_end(fid, 0))
            .await;
        self.clunk(fid).await;
        match (written, reply) {
            (Ok(_), Ok(reply)) => Ok(reply),
            (Ok(_), Err(f)) => Err((f, Vec::new())),
            (Err(f), reply) => Err((f, reply.unwrap_or_default())),
        }
    }

    /// Runs one `/queen/ctl` command and returns its JSON reply. A command
    /// a GPU bridge refused says what the bridge answered.
    pub async fn command(&self, command: &ninedoor::Command) -> Result<serde_json::Value, Failure> {
        let mut line = serde_json::to_vec(command)
            .map_err(|e| Failure::new(exit::Exit::Other, format!("command not encodable: {e}")))?;
        line.push(b'\n');
        let reply = match self.exchange("/queen/ctl", &line).await {
            Ok(reply) => reply,
            Err((mut f, reply)) => {
                let refused: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
                if let Some(bridge) = refused["bridge"].as_str().filter(|b| !b.is_empty()) {
                    f.message = format!("{}; the GPU bridge answered: {bridge}", f.message);
                }
                return Err(f);
            }
        };
        serde_json::from_slice(&reply).map_err(|e| {
            Failure::new(
                exit::Exit::Other,
                format!("/queen/ctl: the reply is not JSON: {e}"),
            )
        })
    }
}
