//! The client side: [`TlsClient`], a rustls connector presenting this
//! host's certificate and verifying the server's against the CA and the
//! name dialled, and [`TlsClient::connect`], the 9P client over it.

use crate::client::{CallError, Connection};
use crate::tls::{
    ClientTlsStream, Identity, SEND_BUFFER_LIMIT, SOCKET_READ_BUFFER, TlsError, VERSIONS, provider,
};
use rustls::pki_types::ServerName;
use secure9p_core::codec::Dialect;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::TlsConnector;

/// Default bound on connecting and the handshake, the runners' default
/// partial-frame timeout's order of magnitude but shorter: a client has a
/// person or a retry loop waiting.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS connector for clients.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// A connector presenting `identity`'s certificate and trusting only
    /// `identity`'s CA for servers.
    pub fn new(identity: &Identity) -> Result<TlsClient, TlsError> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)?
            .with_root_certificates(identity.root_store()?)
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Bounds connecting plus the handshake by `timeout` instead.
    pub fn with_timeout(mut self, timeout: Duration) -> TlsClient {
        self.timeout = timeout;
        self
    }

    /// Connects over TCP and runs the handshake, verifying that the server's
    /// certificate names `server_name` (a DNS name or an IP address).
    pub async fn connect_stream(
        &self,
        addr: impl ToSocketAddrs,
        server_name: &str,
    ) -> io::Result<ClientTlsStream> {
        let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                TlsError::ServerName(server_name.to_string()),
            )
        })?;
        let dial = async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let buffered = tokio::io::BufReader::with_capacity(SOCKET_READ_BUFFER, tcp);
            let mut tls = self.connector.connect(name, buffered).await?;
            tls.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
            Ok(tls)
        };
        match tokio::time::timeout(self.timeout, dial).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "tls handshake with {server_name} not done within {:?}",
                    self.timeout
                ),
            )),
        }
    }

    /// Connects, runs the handshake and negotiates 9P2000.L with `msize`:
    /// [`crate::client::connect_tcp`] over TLS.
    pub async fn connect(
        &self,
        addr: impl ToSocketAddrs,
        server_name: &str,
        msize: u32,
    ) -> Result<Connection, CallError> {
        let stream = self.connect_stream(addr, server_name).await?;
        Connection::over(stream, msize, Dialect::Linux).await
    }
}
