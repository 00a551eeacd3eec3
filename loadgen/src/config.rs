//! What one load run does: the server, the session parameters, the files
//! and the shape of the load. Checked once by [`LoadConfig::validate`];
//! everything after trusts it.

use crate::mix::{Mix, Op};
use secure9p_transport::tls::TlsClient;
use std::net::SocketAddr;
use std::time::Duration;

/// Default bytes of one small read: one page, what a `stat`-then-read of a
/// small config file costs a client.
pub const DEFAULT_SMALL_READ: u32 = 4096;
/// Default msize: what diod caps it at, so runs against diod and against
/// other servers compare like with like.
pub const DEFAULT_MSIZE: u32 = 65536;
/// Default seconds a connection with requests in flight waits for the next
/// reply before it gives up on the server: far above any healthy latency,
/// short enough that a hung server does not hang the run.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default connections set up at once: bounds the SYN backlog and the
/// server's accept queue during a 1,000-connection ramp.
pub const DEFAULT_CONNECT_BATCH: usize = 64;

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Tree to attach.
    pub aname: String,
    /// User name sent in `Tattach`.
    pub uname: String,
    /// Numeric user id sent in `Tattach` (`u32::MAX`: none, use `uname`).
    pub n_uname: u32,
    /// msize proposed in `Tversion`.
    pub msize: u32,
    /// Concurrent connections.
    pub connections: usize,
    /// Requests each connection keeps in flight.
    pub pipeline: usize,
    /// How long requests are issued.
    pub duration: Duration,
    /// The operations and their weights.
    pub mix: Mix,
    /// Path of the small file under the attach root (needed by small-read).
    pub small_file: Option<String>,
    /// Path of the large file under the attach root (needed by large-read).
    pub large_file: Option<String>,
    /// Bytes of one small read (capped at msize − 11).
    pub small_read: u32,
    /// Bytes of one large read (default msize − 24, as Linux asks; capped
    /// at msize − 11).
    pub large_chunk: Option<u32>,
    /// How long a connection waits for a reply before giving up.
    pub reply_timeout: Duration,
    /// Connections set up at once.
    pub connect_batch: usize,
    /// Process whose memory is sampled during the run.
    pub server_pid: Option<u32>,
    /// Mutual TLS to the server: the connector and the name its
    /// certificate must carry (`None`: plain TCP).
    pub tls: Option<(TlsClient, String)>,
}

impl LoadConfig {
    /// A run of the default mix with one connection, one request in flight
    /// and the default msize, against `addr`/`aname`.
    pub fn new(addr: SocketAddr, aname: impl Into<String>) -> Self {
        LoadConfig {
            addr,
            aname: aname.into(),
            uname: "root".into(),
            n_uname: 0,
            msize: DEFAULT_MSIZE,
            connections: 1,
            pipeline: 1,
            duration: Duration::from_secs(10),
            mix: Mix::default(),
            small_file: None,
            large_file: None,
            small_read: DEFAULT_SMALL_READ,
            large_chunk: None,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            connect_batch: DEFAULT_CONNECT_BATCH,
            server_pid: None,
            tls: None,
        }
    }

    /// Checks that the run can be made: a file for every read in the mix
    /// (getattr asks the small file, else the large one, else the attach
    /// root), and no zero counts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.connections == 0 {
            return Err(ConfigError::Zero("--connections"));
        }
        if self.pipeline == 0 {
            return Err(ConfigError::Zero("--pipeline"));
        }
        if self.connect_batch == 0 {
            return Err(ConfigError::Zero("--connect-batch"));
        }
        if self.small_read == 0 {
            return Err(ConfigError::Zero("--small-read"));
        }
        if self.large_chunk == Some(0) {
            return Err(ConfigError::Zero("--large-chunk"));
        }
        if self.mix.uses(Op::SmallRead) && self.small_file.is_none() {
            return Err(ConfigError::MissingFile(Op::SmallRead, "--small-file"));
        }
        if self.mix.uses(Op::LargeRead) && self.large_file.is_none() {
            return Err(ConfigError::MissingFile(Op::LargeRead, "--large-file"));
        }
        Ok(())
    }
}

/// Why a run cannot be made as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A count that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// An operation in the mix has no file to work on.
    #[error("the mix sends {0} but no {1} was given")]
    MissingFile(Op, &'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> LoadConfig {
        let mut c = LoadConfig::new("127.0.0.1:564".parse().unwrap(), "/srv");
        c.small_file = Some("small".into());
        c.large_file = Some("large".into());
        c
    }

    /// What a case changes in a complete configuration.
    type Change = fn(&mut LoadConfig);

    #[test]
    fn validation_names_what_is_missing() {
        let cases: [(&str, Change, Result<(), ConfigError>); 8] = [
            ("complete", |_| {}, Ok(())),
            (
                "no connections",
                |c| c.connections = 0,
                Err(ConfigError::Zero("--connections")),
            ),
            (
                "no pipeline",
                |c| c.pipeline = 0,
                Err(ConfigError::Zero("--pipeline")),
            ),
            (
                "zero chunk",
                |c| c.large_chunk = Some(0),
                Err(ConfigError::Zero("--large-chunk")),
            ),
            (
                "small read without small file",
                |c| c.small_file = None,
                Err(ConfigError::MissingFile(Op::SmallRead, "--small-file")),
            ),
            (
                "large read without large file",
                |c| c.large_file = None,
                Err(ConfigError::MissingFile(Op::LargeRead, "--large-file")),
            ),
            (
                "getattr only, on the large file",
                |c| {
                    c.mix = "getattr=1".parse().unwrap();
                    c.small_file = None;
                },
                Ok(()),
            ),
            (
                "getattr with no file: the attach root",
                |c| {
                    c.mix = "getattr=1".parse().unwrap();
                    c.small_file = None;
                    c.large_file = None;
                },
                Ok(()),
            ),
        ];
        for (name, change, want) in cases {
            let mut c = base();
            change(&mut c);
            assert_eq!(c.validate(), want, "{name}");
        }
    }
}
