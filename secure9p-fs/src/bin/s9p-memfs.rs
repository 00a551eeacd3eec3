//! `s9p-memfs`: a writable in-memory 9P2000.L file system over TCP.
//!
//! ```text
//! s9p-memfs --listen 127.0.0.1:5641 [--dir HOSTDIR] [--max-bytes N] [--max-inodes N]
//! mount -t 9p -o trans=tcp,port=5641,version=9p2000.L 127.0.0.1 /mnt
//! ```

// jemalloc, giving freed memory back to the OS (host-alloc's README).
use clap::Parser;
use secure9p_core::{FsServer, ServerConfig};
use secure9p_fs::perm::Users;
use secure9p_fs::serve::{Listen, run};
use secure9p_fs::{Limits, MemFs, memfs};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(about = "Serve a writable in-memory file system over 9P2000.L (Secure9P)")]
struct Args {
    /// TCP address to listen on.
    #[arg(long, default_value = "127.0.0.1:5641")]
    listen: String,
    /// Also listen on this Unix socket path.
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Start with a copy of this host directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Most bytes the tree holds (ENOSPC past it).
    #[arg(long, default_value_t = memfs::DEFAULT_MAX_BYTES)]
    max_bytes: u64,
    /// Most inodes the tree holds (ENOSPC past it).
    #[arg(long, default_value_t = memfs::DEFAULT_MAX_INODES)]
    max_inodes: u64,
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

fn main() -> std::process::ExitCode {
    // On host-alloc's runtime: idle workers hand their allocator caches back.
    cohesix_host_alloc::block_on("s9p-memfs", serve())
}

async fn serve() -> std::process::ExitCode {
    let args = Args::parse();
    let limits = Limits {
        max_bytes: args.max_bytes,
        max_inodes: args.max_inodes,
    };
    let fs = match &args.dir {
        Some(dir) => match MemFs::load_dir(dir, limits) {
            Ok(fs) => fs,
            Err(e) => {
                eprintln!("s9p-memfs: --dir: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => MemFs::new(limits),
    };
    let fs = fs.with_users(Users::from_system());
    let listen = Listen {
        tcp: args.listen,
        unix: args.unix,
        tls: (args.tls_cert, args.tls_key, args.tls_ca),
    };
    match run(
        "s9p-memfs",
        FsServer::new(fs, ServerConfig::default()),
        &listen,
    )
    .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s9p-memfs: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
