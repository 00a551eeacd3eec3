//! `s9p-export DIR`: a host directory over 9P2000.L, every path resolved
//! beneath DIR (`openat2` with `RESOLVE_BENEATH`).
//!
//! ```text
//! s9p-export /srv/share --listen 127.0.0.1:5642 [--read-only] [--squash UID:GID]
//! mount -t 9p -o trans=tcp,port=5642,version=9p2000.L 127.0.0.1 /mnt
//! ```

// jemalloc, giving freed memory back to the OS (host-alloc's README).
use clap::Parser;
use secure9p_core::{FsServer, ServerConfig};
use secure9p_fs::perm::Users;
use secure9p_fs::serve::{Listen, run};
use secure9p_fs::{DirExport, ExportOptions, export};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(about = "Export a directory over 9P2000.L, confined beneath it (Secure9P)")]
struct Args {
    /// The directory to export.
    dir: PathBuf,
    /// TCP address to listen on.
    #[arg(long, default_value = "127.0.0.1:5642")]
    listen: String,
    /// Also listen on this Unix socket path.
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Refuse every change (EROFS).
    #[arg(long)]
    read_only: bool,
    /// Treat every user as UID:GID (and create files owned by them).
    #[arg(long, value_parser = parse_ids)]
    squash: Option<(u32, u32)>,
    /// Most file descriptors one session may hold (EMFILE past it).
    #[arg(long, default_value_t = export::DEFAULT_MAX_FDS_PER_SESSION)]
    max_fds: usize,
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

fn parse_ids(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').ok_or("expected UID:GID")?;
    let n = |x: &str| x.parse::<u32>().map_err(|e| format!("{x}: {e}"));
    Ok((n(u)?, n(g)?))
}

fn main() -> std::process::ExitCode {
    // On host-alloc's runtime: idle workers hand their allocator caches back.
    cohesix_host_alloc::block_on("s9p-export", serve())
}

async fn serve() -> std::process::ExitCode {
    let args = Args::parse();
    // The modes clients ask for are the modes files get: the client applied
    // its own umask already (diod clears its umask too).
    rustix::process::umask(rustix::fs::Mode::empty());
    let options = ExportOptions {
        read_only: args.read_only,
        squash: args.squash,
        max_fds_per_session: args.max_fds,
        users: Users::from_system(),
    };
    let fs = match DirExport::new(&args.dir, options) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("s9p-export: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let config = ServerConfig {
        max_fids: args.max_fds,
        ..ServerConfig::default()
    };
    let listen = Listen {
        tcp: args.listen,
        unix: args.unix,
        tls: (args.tls_cert, args.tls_key, args.tls_ca),
    };
    match run("s9p-export", FsServer::new(fs, config), &listen).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s9p-export: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
