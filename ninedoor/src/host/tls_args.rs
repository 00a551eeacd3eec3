//! [`TlsArgs`]: the `--tls-cert/--tls-key/--tls-ca` flags, the same on
//! every host binary that links to NineDoor (`ninedoor`, `cohsh`,
//! `worker-heartbeat`), given all three or none.

use secure9p_transport::tls::TlsFiles;
use std::path::PathBuf;

/// Mutual TLS flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct TlsArgs {
    /// This host's TLS certificate, PEM (`ninedoor cert server|client`).
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// Its private key, PEM, mode 0600.
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_key: Option<PathBuf>,
    /// The CA the peer's certificate must chain to (`ninedoor cert ca`).
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The three files, if given; an error names the missing ones.
    pub fn files(&self) -> Result<Option<TlsFiles>, String> {
        TlsFiles::from_flags(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_ca.as_deref(),
        )
    }
}
