//! Mutual TLS over TCP (feature `tls`): the runners of [`server`](crate::server)
//! behind a rustls acceptor, and the client of [`client`](crate::client)
//! behind a rustls connector.
//!
//! The profile is fixed, not configurable: TLS 1.3 only, rustls' `ring`
//! provider and its default TLS 1.3 suites and groups, rustls' own
//! certificate verification (webpki). The server requires a client
//! certificate that chains to its configured CA; the client verifies the
//! server's certificate against its CA and the name it dialled. TLS
//! authenticates hosts; 9P tickets still authorise principals, so a peer
//! that passes TLS only reaches the engine, not any file.
//!
//! The handshake runs in the connection's own task, bounded by the runner's
//! partial-frame timeout, so a peer that stalls, speaks plain 9P or sends
//! garbage is refused (one log line, [`Stats::handshake_failures`](crate::server::Stats))
//! without holding up anyone else, and never reaches the engine. This
//! module holds no crypto of its own.

mod acceptor;
#[cfg(feature = "tls-certs")]
pub mod certs;
mod connector;
mod error;
mod identity;

pub use acceptor::{LogSink, TlsServer, serve};
pub use connector::{DEFAULT_HANDSHAKE_TIMEOUT, TlsClient};
pub use error::TlsError;
pub use identity::{Identity, TlsFiles};

/// A client's TLS connection: rustls over a read-buffered TCP socket.
pub type ClientTlsStream =
    tokio_rustls::client::TlsStream<tokio::io::BufReader<tokio::net::TcpStream>>;

/// Socket bytes read at once under rustls. rustls asks for 4 KiB at a time
/// (one record is at most ~16 KiB); without a buffer below it, a 1 MiB
/// reply costs hundreds of read system calls instead of a few dozen.
const SOCKET_READ_BUFFER: usize = 64 * 1024;

/// Ciphertext rustls may queue per connection before a write waits for the
/// socket: one whole reply at the default largest msize (1 MiB + 24) plus
/// its record overhead. rustls' own default (64 KiB) splits a 1 MiB reply
/// into sixteen writes; measured here, queueing it whole moves 1 MiB reads
/// about 15 % faster. The plain path holds such a reply in memory too.
const SEND_BUFFER_LIMIT: usize = 1024 * 1024 + 64 * 1024;

use std::net::SocketAddr;
use std::sync::Arc;

/// The name a client verifies by default: the host part of `host:port`
/// (`[::1]:5640` gives `::1`, a bare host is itself).
pub fn server_name_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The secure-by-default rule for a listener: plain TCP only on a loopback
/// address (where the Linux kernel's v9fs client, which has no TLS, and the
/// tests run), unless the operator said `insecure_plain_tcp`. A TLS
/// listener may bind anywhere.
pub fn check_listener(
    addr: SocketAddr,
    tls: bool,
    insecure_plain_tcp: bool,
) -> Result<(), TlsError> {
    if tls || insecure_plain_tcp || addr.ip().to_canonical().is_loopback() {
        Ok(())
    } else {
        Err(TlsError::PlainOnNetwork(addr))
    }
}

/// The one crypto provider every TLS config is built with.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 only: every peer we talk to is ours, and 1.2's renegotiation,
/// static-RSA and CBC corners are attack surface we do not need.
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
