//! What the interop tests share: the memfs server on an ephemeral loopback
//! port, peers' commands run with a time limit (never hanging a test), and
//! a temp dir and child processes that clean up after themselves even when
//! an assertion fails.
//!
//! A peer that is not installed makes its test print one `SKIP:` line and
//! pass; `scripts/setup.sh` installs them all, so in CI they run.

use secure9p_core::{MemFile, Server, ServerConfig};
use secure9p_transport::memfs;
use secure9p_transport::server::{Running, ServeConfig, Shared, serve};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The repository root (the workspace holds the scripts).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

/// Prints the line a skipped test leaves in the output.
pub fn skip(why: &str) {
    println!("SKIP: {why}");
}

/// `name` on PATH or in the sbin directories Debian puts daemons in (not on
/// a normal user's PATH).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The effective uid of this process (from procfs: no libc binding needed).
pub fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// A loopback port nobody listens on right now (for a peer server that
/// cannot be handed a listening socket).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("addr").port()
}

/// Waits until something accepts on `addr`; says why not if `child` exits
/// first or `limit` passes.
pub fn wait_listening(addr: SocketAddr, limit: Duration, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the server exited ({status}) before listening on {addr}"
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing listens on {addr} after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory named after `tag`.
    pub fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("secure9p-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped on drop (a failed assertion must not
/// leave a peer server running).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished command left.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr, lossily decoded.
    pub stderr: String,
}

impl Finished {
    /// stdout, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` to completion with piped output; kills it and panics (with
/// what it printed so far) if it runs past `limit`. Blocking: call it from
/// [`run_async`] while a server runs on the tokio runtime.
pub fn run(mut cmd: Command, limit: Duration) -> Finished {
    let shown = format!("{cmd:?}");
    let mut child = ChildGuard(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {shown}: {e}")),
    );
    // Drain both pipes on threads so a chatty child never blocks on a full
    // pipe while we wait for it.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.0.stdout.take().expect("stdout piped")));
    let err = drain(Box::new(child.0.stderr.take().expect("stderr piped")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!("{shown} ran past {limit:?}; stdout:\n{stdout}\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
    }
}

/// [`run`] on tokio's blocking pool, so servers on the runtime keep serving.
pub async fn run_async(cmd: Command, limit: Duration) -> Finished {
    tokio::task::spawn_blocking(move || run(cmd, limit))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// The memfs example server on 127.0.0.1 (an ephemeral port).
pub struct Memfs {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The engine, to look at the tree after a peer changed it.
    pub shared: Arc<Shared<Server>>,
    /// The runner, to shut it down.
    pub running: Running,
}

impl Memfs {
    /// Serves `files` under the attach name `export` (plus `ctl/{zero,null}`).
    pub async fn start(export: &str, files: &[(&str, Vec<u8>)]) -> Memfs {
        let server = memfs::server(export, files, ServerConfig::default()).expect("memfs tree");
        let shared = Shared::new(server);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let running = serve(listener, shared.clone(), ServeConfig::default());
        Memfs {
            addr,
            shared,
            running,
        }
    }

    /// The contents of the exported file at `path` (relative to the export).
    pub fn contents(&self, path: &str) -> Vec<u8> {
        self.shared.with_engine(|s| {
            let id = s
                .namespace()
                .resolve(&format!("/export/{path}"))
                .unwrap_or_else(|| panic!("{path} is in the tree"));
            s.namespace_mut()
                .node_as::<MemFile>(id)
                .expect("a MemFile")
                .data()
                .to_vec()
        })
    }
}

/// `len` deterministic bytes that no simple pattern bug reproduces
/// (xorshift64*, fixed seed): a transfer that drops, repeats or reorders a
/// chunk changes the digest.
pub fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
