//! Why a TLS identity could not be loaded or a TLS config built. Never
//! holds key bytes: paths and rustls' own messages only.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A TLS setup error (at start, never per connection).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A private key file other users can read.
    #[error("{}: private key readable by group or others (mode {mode:04o}); chmod 600 it", path.display())]
    KeyMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A PEM file that holds nothing usable of what it should.
    #[error("{what}: {why}")]
    Pem {
        /// Which file (its path, or "certificate" for PEM given in memory).
        what: String,
        /// What was wrong with it.
        why: String,
    },
    /// rustls refused the certificate, key or CA (e.g. a key that does not
    /// match its certificate).
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the CA.
    #[error("tls client verifier: {0}")]
    Verifier(String),
    /// A plain-TCP listener on an address other hosts can reach, without
    /// the operator's explicit `--insecure-plain-tcp`.
    #[error(
        "refusing plain TCP on {0}: not a loopback address, so tickets would cross the network in clear; \
         give --tls-cert, --tls-key and --tls-ca (or --insecure-plain-tcp on a network you trust)"
    )]
    PlainOnNetwork(SocketAddr),
    /// The server name to verify is neither a DNS name nor an IP address.
    #[error("tls server name {0:?} is neither a DNS name nor an IP address")]
    ServerName(String),
}
