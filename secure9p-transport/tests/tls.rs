//! Mutual TLS over real loopback sockets with certificates made at test
//! time: a good client is served; every bad peer (plain 9P, garbage, no
//! client certificate, another CA's, an expired one, a stalled handshake) is
//! refused with its own log line, never reaches the engine, and the good
//! connection keeps being served; the client refuses a wrong server name
//! and a server from another CA.

use secure9p_core::codec::{Dialect, Fid, LOpenFlags};
use secure9p_core::{Completion, Outcome, Server, ServerConfig, SessionError, SessionId, Token};
use secure9p_transport::client::{CallError, Connection, connect_tcp};
use secure9p_transport::memfs;
use secure9p_transport::server::{Engine, Running, ServeConfig, Shared};
use secure9p_transport::tls::certs::{Authority, Pair, Usage, Validity};
use secure9p_transport::tls::{self, Identity, TlsClient, TlsError, TlsFiles, TlsServer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const MSIZE: u32 = 64 * 1024;
/// Long enough never to fire by accident, short enough to end a broken test.
const WAIT: Duration = Duration::from_secs(20);
const SERVER_NAME: &str = "queen.hive.test";

/// The memfs server, counting the sessions opened: a refused TLS peer must
/// never get one.
struct Counted {
    inner: Server,
    sessions: Arc<AtomicUsize>,
}

impl Engine for Counted {
    fn open_session(&mut self) -> SessionId {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        self.inner.open_session()
    }
    fn close_session(&mut self, sid: SessionId) {
        self.inner.close_session(sid);
    }
    fn handle(
        &mut self,
        sid: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, SessionError> {
        Engine::handle(&mut self.inner, sid, frame, now, out)
    }
    fn complete(
        &mut self,
        token: Token,
        result: Completion,
        out: &mut Vec<u8>,
    ) -> Option<SessionId> {
        Engine::complete(&mut self.inner, token, result, out)
    }
    fn msize(&self, sid: SessionId) -> u32 {
        Engine::msize(&self.inner, sid)
    }
}

fn valid() -> Validity {
    Validity::days(1)
}

fn identity(pair: &Pair, ca: &Authority) -> Identity {
    Identity::from_pem(
        pair.cert_pem.as_bytes(),
        pair.key_pem.as_bytes(),
        ca.cert_pem().as_bytes(),
    )
    .expect("identity")
}

fn client_of(ca: &Authority, signer: &Authority, validity: Validity) -> TlsClient {
    let pair = signer
        .issue(Usage::Client, &["operator".to_string()], validity)
        .expect("client cert");
    TlsClient::new(&identity(&pair, ca)).expect("client")
}

/// A TLS hive on 127.0.0.1 and one good client connection with a file open.
struct Fixture {
    ca: Authority,
    addr: SocketAddr,
    running: Running,
    refusals: mpsc::UnboundedReceiver<String>,
    sessions: Arc<AtomicUsize>,
    good: Connection,
    file: Fid,
    /// Sessions the engine should have opened by `finish`.
    served: usize,
}

impl Fixture {
    async fn start(config: ServeConfig) -> Fixture {
        let ca = Authority::new(valid()).expect("ca");
        let server_pair = ca
            .issue(
                Usage::Server,
                &[SERVER_NAME.to_string(), "127.0.0.1".to_string()],
                valid(),
            )
            .expect("server cert");
        let (tx, refusals) = mpsc::unbounded_channel();
        let acceptor = TlsServer::new(&identity(&server_pair, &ca))
            .expect("acceptor")
            .with_log(move |line| {
                let _ = tx.send(line.to_string());
            });
        let sessions = Arc::new(AtomicUsize::new(0));
        let inner = memfs::server(
            "/srv",
            &[("hello.txt", b"hello, tls\n".to_vec())],
            ServerConfig::default(),
        )
        .expect("tree");
        let shared = Shared::new(Counted {
            inner,
            sessions: sessions.clone(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let running = tls::serve(listener, acceptor, shared, config);
        let good = client_of(&ca, &ca, valid())
            .connect(addr, SERVER_NAME, MSIZE)
            .await
            .expect("good client served");
        let root = good.attach("guest", "/srv").await.expect("attach");
        let file = good.walk(root, "hello.txt").await.expect("walk");
        good.lopen(file, LOpenFlags::empty()).await.expect("open");
        Fixture {
            ca,
            addr,
            running,
            refusals,
            sessions,
            good,
            file,
            served: 1,
        }
    }

    /// The next refusal line.
    async fn refusal(&mut self) -> String {
        let line = tokio::time::timeout(WAIT, self.refusals.recv())
            .await
            .expect("a refusal is logged")
            .expect("log open");
        eprintln!("{line}");
        line
    }

    /// The good connection is still served, no refused peer got a session,
    /// and `refused` handshakes were counted; then shuts down cleanly.
    async fn finish(self, refused: u64) {
        assert_eq!(
            self.good
                .read_to_end(self.file, 0)
                .await
                .expect("good connection still served"),
            b"hello, tls\n"
        );
        assert_eq!(
            self.sessions.load(Ordering::SeqCst),
            self.served,
            "only good clients reached the engine"
        );
        assert_eq!(
            self.running
                .stats()
                .handshake_failures
                .load(Ordering::Relaxed),
            refused
        );
        drop(self.good);
        tokio::time::timeout(WAIT, self.running.shutdown())
            .await
            .expect("shutdown ends");
    }
}

/// True once the server has closed `stream` (after any bytes it sent).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn mutual_tls_serves_file_verbs_and_many_clients() {
    let mut f = Fixture::start(ServeConfig::default()).await;
    let clients = (0..4).map(|_| client_of(&f.ca, &f.ca, valid()));
    for (i, client) in clients.enumerate() {
        // The name in the certificate, or its IP address.
        let name = if i % 2 == 0 { SERVER_NAME } else { "127.0.0.1" };
        let conn = client.connect(f.addr, name, MSIZE).await.expect("served");
        let root = conn.attach("guest", "/srv").await.expect("attach");
        let file = conn.walk(root, "hello.txt").await.expect("walk");
        conn.lopen(file, LOpenFlags::empty()).await.expect("open");
        assert_eq!(
            conn.read_to_end(file, 0).await.expect("read"),
            b"hello, tls\n"
        );
    }
    f.served = 5;
    f.finish(0).await;
}

#[tokio::test]
async fn large_reads_at_a_1_mib_msize_arrive_whole() {
    // Replies bigger than the socket and TLS buffers: every record must
    // reach the wire, not wait in rustls for a write that never comes.
    let ca = Authority::new(valid()).expect("ca");
    let names = [SERVER_NAME.to_string()];
    let server_pair = ca.issue(Usage::Server, &names, valid()).expect("cert");
    let big: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
    // The default max msize is 1 MiB + 24.
    let inner =
        memfs::server("/srv", &[("big.bin", big.clone())], ServerConfig::default()).expect("tree");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsServer::new(&identity(&server_pair, &ca)).expect("acceptor");
    let running = tls::serve(
        listener,
        acceptor,
        Shared::new(inner),
        ServeConfig::default(),
    );
    let conn = client_of(&ca, &ca, valid())
        .connect(addr, SERVER_NAME, 1024 * 1024 + 24)
        .await
        .expect("served");
    let root = conn.attach("guest", "/srv").await.expect("attach");
    let file = conn.walk(root, "big.bin").await.expect("walk");
    conn.lopen(file, LOpenFlags::empty()).await.expect("open");
    let reads = (0..4).map(|_| {
        let conn = conn.clone();
        tokio::spawn(async move { conn.read_to_end(file, 0).await })
    });
    for read in reads.collect::<Vec<_>>() {
        let got = tokio::time::timeout(WAIT, read)
            .await
            .expect("no reply stuck in a TLS buffer")
            .expect("task")
            .expect("read");
        assert!(got == big, "6 MB read back whole");
    }
    drop(conn);
    running.shutdown().await;
}

#[tokio::test]
async fn plain_9p_client_on_the_tls_port_is_refused() {
    let mut f = Fixture::start(ServeConfig::default()).await;
    assert!(
        connect_tcp(f.addr, MSIZE).await.is_err(),
        "a plain Tversion gets no Rversion"
    );
    let line = f.refusal().await;
    assert!(line.starts_with("tls: refused 127.0.0.1:"), "{line}");
    assert!(line.contains("not a TLS 1.3 ClientHello"), "{line}");
    f.finish(1).await;
}

#[tokio::test]
async fn random_bytes_instead_of_a_client_hello_are_refused() {
    let mut f = Fixture::start(ServeConfig::default()).await;
    // Garbage, and garbage inside a well-formed handshake record header.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut noise = || {
        (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    let garbage = noise();
    let mut record = vec![0x16, 0x03, 0x01, 0x01, 0x00];
    record.extend_from_slice(&noise()[..256]);
    for bytes in [garbage, record] {
        let mut raw = TcpStream::connect(f.addr).await.expect("connect");
        raw.write_all(&bytes).await.expect("send");
        assert!(closed_by_server(&mut raw).await, "closed");
        let line = f.refusal().await;
        assert!(line.starts_with("tls: refused 127.0.0.1:"), "{line}");
    }
    f.finish(2).await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let mut f = Fixture::start(ServeConfig::default()).await;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(f.ca.cert_pem().as_bytes()) {
        roots.add(c.expect("ca pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("tls13")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(f.addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).expect("name");
    // TLS 1.3: the client finishes its half before the server judges its
    // (empty) certificate, so the refusal shows on the first 9P exchange.
    let result = match tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        Ok(stream) => Connection::over(stream, MSIZE, Dialect::Linux)
            .await
            .map(|_| ()),
        Err(e) => Err(CallError::Io(e)),
    };
    assert!(
        matches!(&result, Err(CallError::Io(e)) if e.to_string().contains("CertificateRequired")),
        "no Rversion without a client certificate: {result:?}"
    );
    let line = f.refusal().await;
    assert!(line.contains("no client certificate presented"), "{line}");
    f.finish(1).await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let mut f = Fixture::start(ServeConfig::default()).await;
    let other = Authority::new(valid()).expect("other ca");
    // Signed by another CA, though it trusts the right one for the server.
    let client = client_of(&f.ca, &other, valid());
    // The server's alert reaches the client as the reason its call failed.
    let err = client
        .connect(f.addr, SERVER_NAME, MSIZE)
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, CallError::Io(e) if e.to_string().contains("UnknownCA")),
        "{err}"
    );
    let line = f.refusal().await;
    assert!(line.contains("client certificate refused"), "{line}");
    assert!(line.contains("UnknownIssuer"), "{line}");
    f.finish(1).await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let mut f = Fixture::start(ServeConfig::default()).await;
    // 2020-01-01 .. 2021-01-01.
    let expired = Validity {
        not_before: 1_577_836_800,
        not_after: 1_609_459_200,
    };
    let client = client_of(&f.ca, &f.ca, expired);
    let err = client
        .connect(f.addr, SERVER_NAME, MSIZE)
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, CallError::Io(e) if e.to_string().contains("CertificateExpired")),
        "{err}"
    );
    let line = f.refusal().await;
    assert!(line.contains("client certificate refused"), "{line}");
    assert!(line.to_lowercase().contains("expired"), "{line}");
    f.finish(1).await;
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

#[tokio::test]
async fn the_client_refuses_a_wrong_server_name() {
    let mut f = Fixture::start(ServeConfig::default()).await;
    let client = client_of(&f.ca, &f.ca, valid());
    let err = client
        .connect_stream(f.addr, "bridge.hive.test")
        .await
        .expect_err("the server's certificate does not name bridge.hive.test");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err}"
    );
    let line = f.refusal().await;
    assert!(line.contains("the client aborted the handshake"), "{line}");
    f.finish(1).await;
}

#[tokio::test]
async fn the_client_refuses_a_server_from_another_ca() {
    let mut f = Fixture::start(ServeConfig::default()).await;
    let other = Authority::new(valid()).expect("other ca");
    // A client that trusts only another CA (its own certificate is fine).
    let pair =
        f.ca.issue(Usage::Client, &["operator".to_string()], valid())
            .expect("cert");
    let client = TlsClient::new(
        &Identity::from_pem(
            pair.cert_pem.as_bytes(),
            pair.key_pem.as_bytes(),
            other.cert_pem().as_bytes(),
        )
        .expect("identity"),
    )
    .expect("client");
    let err = client
        .connect_stream(f.addr, SERVER_NAME)
        .await
        .expect_err("unknown issuer");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err}"
    );
    let line = f.refusal().await;
    assert!(line.contains("the client aborted the handshake"), "{line}");
    f.finish(1).await;
}

#[tokio::test]
async fn a_stalled_handshake_is_closed_at_the_partial_frame_timeout() {
    let mut f = Fixture::start(ServeConfig {
        frame_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    })
    .await;
    let mut silent = TcpStream::connect(f.addr).await.expect("silent");
    let mut half = TcpStream::connect(f.addr).await.expect("half");
    // The first bytes of a handshake record, then nothing.
    half.write_all(&[0x16, 0x03, 0x01]).await.expect("partial");
    assert!(closed_by_server(&mut silent).await && closed_by_server(&mut half).await);
    for _ in 0..2 {
        let line = f.refusal().await;
        assert!(line.contains("stalled"), "{line}");
    }
    f.finish(2).await;
}

#[tokio::test]
async fn shutdown_ends_a_handshake_in_progress() {
    let f = Fixture::start(ServeConfig::default()).await;
    let mut stalled = TcpStream::connect(f.addr).await.expect("stalled");
    stalled
        .write_all(&[0x16, 0x03, 0x01])
        .await
        .expect("partial");
    // Wait until the runner holds it (its accept has counted it).
    while f.running.stats().accepted.load(Ordering::Relaxed) < 2 {
        tokio::task::yield_now().await;
    }
    let Fixture { running, good, .. } = f;
    drop(good);
    tokio::time::timeout(WAIT, running.shutdown())
        .await
        .expect("shutdown does not wait out the 30 s handshake timeout");
    assert!(closed_by_server(&mut stalled).await);
}

#[test]
fn identity_files_need_all_three_flags_and_a_private_key() {
    use std::os::unix::fs::PermissionsExt;
    let err = TlsFiles::from_flags(Some("c.pem".as_ref()), None, None).expect_err("partial");
    assert!(err.contains("missing --tls-key, --tls-ca"), "{err}");
    assert_eq!(TlsFiles::from_flags(None, None, None), Ok(None));

    let ca = Authority::new(valid()).expect("ca");
    let pair = ca
        .issue(Usage::Server, &["localhost".to_string()], valid())
        .expect("cert");
    let dir = tempfile::tempdir().expect("dir");
    let files = TlsFiles {
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
        ca: dir.path().join("ca.pem"),
    };
    std::fs::write(&files.cert, &pair.cert_pem).expect("write");
    std::fs::write(&files.key, &pair.key_pem).expect("write");
    std::fs::write(&files.ca, ca.cert_pem()).expect("write");
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(
        Identity::load(&files),
        Err(TlsError::KeyMode { mode: 0o644, .. })
    ));
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let id = Identity::load(&files).expect("loads");
    TlsServer::new(&id).expect("a server config");

    // A key that is not the certificate's is refused when the config is built.
    let other = ca
        .issue(Usage::Server, &["localhost".to_string()], valid())
        .expect("cert");
    let mismatched = Identity::from_pem(
        pair.cert_pem.as_bytes(),
        other.key_pem.as_bytes(),
        ca.cert_pem().as_bytes(),
    )
    .expect("parses");
    assert!(TlsServer::new(&mismatched).is_err());
    // Not PEM at all.
    assert!(matches!(
        Identity::from_pem(b"nope", pair.key_pem.as_bytes(), ca.cert_pem().as_bytes()),
        Err(TlsError::Pem { .. })
    ));
    // A CA re-loaded from its PEM pair signs certificates its clients accept;
    // with another CA's key it is refused.
    let reloaded = Authority::from_pem(ca.cert_pem(), &ca.key_pem()).expect("reload");
    reloaded
        .issue(Usage::Client, &["w1".to_string()], valid())
        .expect("issue");
    let stranger = Authority::new(valid()).expect("other");
    assert!(Authority::from_pem(ca.cert_pem(), &stranger.key_pem()).is_err());
}
