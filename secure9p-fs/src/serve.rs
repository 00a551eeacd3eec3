//! What `s9p-memfs` and `s9p-export` share: listen on TCP (plain or mutual
//! TLS, the same `--tls-*` files as the other servers) and optionally a Unix
//! socket, serve an [`FsServer`] until Ctrl-C, then shut down gracefully.

use secure9p_core::FsServer;
use secure9p_transport::server::{ServeConfig, Shared, serve};
use secure9p_transport::tls::{self, Identity, TlsServer};
use std::path::{Path, PathBuf};

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The TCP address.
    pub tcp: String,
    /// A Unix socket path as well (removed again on exit).
    pub unix: Option<PathBuf>,
    /// Mutual TLS on TCP: certificate, key, CA (all three or none).
    pub tls: (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>),
}

/// Serves `server` as `name` until Ctrl-C.
pub async fn run(
    name: &str,
    server: FsServer,
    listen: &Listen,
) -> Result<(), Box<dyn std::error::Error>> {
    let shared = Shared::new(server);
    let tcp = tokio::net::TcpListener::bind(&listen.tcp)
        .await
        .map_err(|e| format!("listen on {}: {e}", listen.tcp))?;
    println!("{name}: serving 9P2000.L on tcp {}", tcp.local_addr()?);
    let (cert, key, ca) = &listen.tls;
    let identity = Identity::from_flags(cert.as_deref(), key.as_deref(), ca.as_deref())?;
    let mut runners = match identity {
        Some(identity) => {
            let acceptor = TlsServer::new(&identity)?;
            println!("{name}: tcp is mutual TLS 1.3");
            vec![tls::serve(
                tcp,
                acceptor,
                shared.clone(),
                ServeConfig::default(),
            )]
        }
        None => vec![serve(tcp, shared.clone(), ServeConfig::default())],
    };
    if let Some(path) = &listen.unix {
        let unix = tokio::net::UnixListener::bind(path)
            .map_err(|e| format!("listen on {}: {e}", path.display()))?;
        println!("{name}: serving 9P2000.L on unix {}", path.display());
        runners.push(serve(unix, shared.clone(), ServeConfig::default()));
    }
    tokio::signal::ctrl_c().await?;
    println!("{name}: shutting down");
    for running in runners {
        running.shutdown().await;
    }
    if let Some(path) = &listen.unix {
        remove_socket(path);
    }
    Ok(())
}

fn remove_socket(path: &Path) {
    let _ = std::fs::remove_file(path);
}
