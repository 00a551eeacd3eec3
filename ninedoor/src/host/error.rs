//! `HostError`: why the host could not start or keep its files. Each says
//! which file or address and what was wrong with it, never a key or ticket.

use crate::HiveError;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the host side failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The config file could not be read or parsed.
    #[error("config {path}: {why}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// The hive refused the configuration.
    #[error("hive: {0}")]
    Hive(#[from] HiveError),
    /// The key file is unusable.
    #[error("key file {path}: {why}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// The OS random number generator failed.
    #[error("OS random number generator: {0}")]
    Rng(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another server already answers on the Unix socket.
    #[error("unix socket {0} is in use by a running server")]
    SocketInUse(PathBuf),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    File {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The GPU bridge settings cannot work.
    #[error("gpu bridge: {0}")]
    Bridge(String),
    /// No ticket file path was given and none can be derived (neither
    /// `XDG_RUNTIME_DIR` nor `HOME` is set).
    #[error("no ticket file path: set --ticket-file, XDG_RUNTIME_DIR or HOME")]
    NoTicketPath,
    /// The TLS files are unusable, or plain TCP was refused on a network
    /// address.
    #[error("{0}")]
    Tls(#[from] secure9p_transport::tls::TlsError),
    /// The state directory cannot be used: a corrupt database, a file
    /// where the directory should be, a torn record that cannot be cut.
    #[error("state {path}: {why}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What was wrong, and what to do about it.
        why: String,
    },
    /// A certificate could not be made (`ninedoor cert`).
    #[error("{0}")]
    Cert(String),
}

impl HostError {
    pub(crate) fn file(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        HostError::File {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn bind(addr: SocketAddr, source: std::io::Error) -> Self {
        HostError::Bind {
            addr: addr.to_string(),
            source,
        }
    }
}
