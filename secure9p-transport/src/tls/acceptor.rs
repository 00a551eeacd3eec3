//! The server side: [`TlsServer`] (a rustls acceptor that requires a client
//! certificate from the configured CA) and [`serve`], the plain runner with
//! the handshake in front. A refused peer is logged in one line and closed;
//! it never reaches the engine.

use crate::server::{Engine, Handshake, Running, ServeConfig, Shared, Stats, serve_with};
use crate::tls::{Identity, SEND_BUFFER_LIMIT, SOCKET_READ_BUFFER, TlsError, VERSIONS, provider};
use rustls::server::WebPkiClientVerifier;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where refusal lines go (one line each, no trailing newline).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// A TLS acceptor for the runners.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
    log: LogSink,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

impl TlsServer {
    /// An acceptor presenting `identity`'s certificate and requiring every
    /// client to present one that chains to `identity`'s CA. Refusals are
    /// written to stderr until [`TlsServer::with_log`] says otherwise.
    pub fn new(identity: &Identity) -> Result<TlsServer, TlsError> {
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(identity.root_store()?),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(VERSIONS)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            log: Arc::new(|line| eprintln!("{line}")),
        })
    }

    /// Sends refusal lines to `log` instead of stderr.
    pub fn with_log(mut self, log: impl Fn(&str) + Send + Sync + 'static) -> TlsServer {
        self.log = Arc::new(log);
        self
    }

    fn refuse(&self, stats: &Stats, peer: &str, why: &str) {
        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
        (self.log)(&format!("tls: refused {peer}: {why}"));
    }
}

impl Handshake<TcpStream> for TlsServer {
    type Stream = TlsStream<BufReader<TcpStream>>;

    async fn handshake(
        &self,
        stream: TcpStream,
        config: &ServeConfig,
        stats: &Stats,
    ) -> Option<TlsStream<BufReader<TcpStream>>> {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "unknown peer".to_string(), |a| a.to_string());
        // The handshake is the first frame of a TLS connection: it must be
        // done within the partial-frame timeout, or it holds a slot open.
        match tokio::time::timeout(
            config.frame_timeout,
            self.acceptor
                .accept(BufReader::with_capacity(SOCKET_READ_BUFFER, stream)),
        )
        .await
        {
            Ok(Ok(mut tls)) => {
                tls.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
                Some(tls)
            }
            Ok(Err(e)) => {
                self.refuse(stats, &peer, &refusal(&e));
                None
            }
            Err(_) => {
                let secs = config.frame_timeout.as_secs_f64();
                self.refuse(
                    stats,
                    &peer,
                    &format!("handshake not done within {secs} s (stalled)"),
                );
                None
            }
        }
    }
}

/// One phrase saying why a handshake failed, from the server's side.
fn refusal(e: &io::Error) -> String {
    use rustls::Error as R;
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<R>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => "closed during the handshake".to_string(),
            _ => format!("handshake i/o: {e}"),
        };
    };
    match tls {
        R::InvalidMessage(_)
        | R::InappropriateMessage { .. }
        | R::InappropriateHandshakeMessage { .. } => {
            format!("not a TLS 1.3 ClientHello (plain TCP or garbage?): {tls}")
        }
        R::NoCertificatesPresented => "no client certificate presented".to_string(),
        R::InvalidCertificate(_) => format!("client certificate refused: {tls}"),
        R::AlertReceived(alert) => {
            format!(
                "the client aborted the handshake with alert {alert:?} (it refused our certificate?)"
            )
        }
        R::PeerIncompatible(_) => format!("no TLS 1.3 parameters in common: {tls}"),
        _ => tls.to_string(),
    }
}

/// Serves `shared` on `listener` over TLS until [`Running::shutdown`]:
/// [`crate::server::serve`] with every connection's handshake first.
pub fn serve<E: Engine>(
    listener: TcpListener,
    tls: TlsServer,
    shared: Arc<Shared<E>>,
    config: ServeConfig,
) -> Running {
    serve_with(listener, tls, shared, config)
}
