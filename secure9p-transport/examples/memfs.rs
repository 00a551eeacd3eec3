//! The example in-memory 9P2000.L server as a command: serves
//! [`secure9p_transport::memfs`] over TCP (and a Unix socket if asked),
//! filled with a host directory's regular files or a small demo set.
//!
//! ```text
//! cargo run -p secure9p-transport --example memfs -- --listen 127.0.0.1:5640 \
//!     [--unix /tmp/memfs.sock] [--export /srv] [--dir HOSTDIR]
//! mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,aname=/srv 127.0.0.1 /mnt
//! ```
//!
//! With `--tls-cert/--tls-key/--tls-ca` the TCP listener serves mutual TLS
//! (what `s9p-load --tls-*` measures against plain TCP).
//!
//! Files are copied into memory once at start; writes change only the copy.
//! Ctrl-C stops accepting, closes every connection and exits.

use clap::Parser;
use secure9p_core::ServerConfig;
use secure9p_transport::memfs;
use secure9p_transport::server::{ServeConfig, Shared, serve};
use secure9p_transport::tls::{self, Identity, TlsServer};
use std::io;
use std::path::{Path, PathBuf};

// jemalloc, giving freed memory back (host-alloc's README); `main` runs
// on its runtime, whose idle workers hand their caches back.

/// Most bytes `--dir` loads in all: the whole tree lives in memory, so a
/// mistaken `--dir /` fails at start instead of eating the host's memory.
const MAX_LOAD_BYTES: u64 = 256 * 1024 * 1024;
/// Most regular files `--dir` loads.
const MAX_LOAD_FILES: usize = 10_000;

#[derive(Debug, Parser)]
#[command(about = "Serve an in-memory file tree over 9P2000.L (Secure9P example)")]
struct Args {
    /// TCP address to listen on.
    #[arg(long, default_value = "127.0.0.1:5640")]
    listen: String,
    /// Also listen on this Unix socket path (removed again on exit).
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Attach name the tree is exported under (`ctl` is taken: it holds
    /// `zero` and `null` for diodload).
    #[arg(long, default_value = "/srv")]
    export: String,
    /// Load this host directory's regular files (recursively, symlinks
    /// skipped) instead of the demo set.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Serve TCP over mutual TLS with this certificate (and --tls-key, --tls-ca).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key, mode 0600.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// The CA clients' certificates must chain to.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
}

fn demo_files() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "hello.txt".into(),
            b"hello from the Secure9P memfs example\n".to_vec(),
        ),
        (
            "README".into(),
            b"An in-memory tree: read, write and append to the files here.\n".to_vec(),
        ),
        ("log.txt".into(), Vec::new()),
        ("dir/nested.txt".into(), b"nested\n".to_vec()),
    ]
}

/// Reads every regular file under `root` into memory, with paths relative
/// to it, within [`MAX_LOAD_BYTES`] and [`MAX_LOAD_FILES`].
fn load_dir(root: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut todo = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = todo.pop() {
        let mut entries = std::fs::read_dir(&dir)?.collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                eprintln!("memfs: skipping {:?}: not UTF-8", entry.path());
                continue;
            };
            let rel = format!("{prefix}{name}");
            // symlink_metadata: a link is neither followed nor served.
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                todo.push((entry.path(), format!("{rel}/")));
            } else if meta.is_file() {
                total += meta.len();
                if total > MAX_LOAD_BYTES || files.len() >= MAX_LOAD_FILES {
                    return Err(io::Error::other(format!(
                        "{} holds more than {MAX_LOAD_FILES} files or {MAX_LOAD_BYTES} bytes",
                        root.display()
                    )));
                }
                files.push((rel, std::fs::read(entry.path())?));
            }
        }
    }
    Ok(files)
}

fn main() -> std::process::ExitCode {
    cohesix_host_alloc::block_on("memfs", async {
        match run(Args::parse()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("memfs: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.export == "ctl" {
        return Err("--export ctl: that attach name holds zero and null".into());
    }
    let files = match &args.dir {
        Some(dir) => load_dir(dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?,
        None => demo_files(),
    };
    let (paths, contents): (Vec<String>, Vec<Vec<u8>>) = files.into_iter().unzip();
    let files: Vec<(&str, Vec<u8>)> = paths.iter().map(String::as_str).zip(contents).collect();
    let server = memfs::server(&args.export, &files, ServerConfig::default())
        .map_err(|e| format!("building the tree: {e}"))?;
    drop(files);
    let shared = Shared::new(server);

    let tcp = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", args.listen))?;
    println!(
        "memfs: serving 9P2000.L on tcp {} (aname {}; aname ctl holds zero and null)",
        tcp.local_addr()?,
        args.export
    );
    let identity = Identity::from_flags(
        args.tls_cert.as_deref(),
        args.tls_key.as_deref(),
        args.tls_ca.as_deref(),
    )?;
    let mut runners = match identity {
        Some(identity) => {
            let acceptor = TlsServer::new(&identity)?;
            println!("memfs: tcp is mutual TLS 1.3");
            vec![tls::serve(
                tcp,
                acceptor,
                shared.clone(),
                ServeConfig::default(),
            )]
        }
        None => vec![serve(tcp, shared.clone(), ServeConfig::default())],
    };
    if let Some(path) = &args.unix {
        let unix = tokio::net::UnixListener::bind(path)
            .map_err(|e| format!("listen on {}: {e}", path.display()))?;
        println!("memfs: serving 9P2000.L on unix {}", path.display());
        runners.push(serve(unix, shared.clone(), ServeConfig::default()));
    }

    tokio::signal::ctrl_c().await?;
    println!("memfs: shutting down");
    for running in runners {
        running.shutdown().await;
    }
    if let Some(path) = &args.unix {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
