//! s9p-load's whole run against the example memfs server over real TCP on
//! 127.0.0.1, plain and over mutual TLS: every operation of the mix
//! completes, nothing errs. No timing
//! is asserted (performance lives in RESULTS.md, not in tests).

use s9p_load::LoadConfig;
use s9p_load::mix::Op;
use secure9p_core::ServerConfig;
use secure9p_transport::memfs;
use secure9p_transport::server::{ServeConfig, Shared, serve};
use secure9p_transport::tls::certs::{Authority, Usage, Validity};
use secure9p_transport::tls::{self, Identity, TlsClient, TlsServer};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_against_memfs_completes_every_operation_without_errors() {
    let large: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    let files = [("small", vec![7u8; 4096]), ("dir/large", large)];
    let server = memfs::server("/srv", &files, ServerConfig::default()).expect("tree");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = serve(listener, Shared::new(server), ServeConfig::default());

    let mut cfg = LoadConfig::new(addr, "/srv");
    cfg.connections = 4;
    cfg.pipeline = 4;
    cfg.duration = Duration::from_secs(1);
    cfg.msize = 65536;
    cfg.small_file = Some("small".into());
    cfg.large_file = Some("dir/large".into());
    cfg.server_pid = Some(std::process::id());
    cfg.validate().unwrap();
    let report = s9p_load::run(cfg).await;

    assert_eq!(report.errors, Default::default(), "{report}");
    assert_eq!(report.connected, 4, "{report}");
    assert_eq!(report.connections_lost, 0, "{report}");
    assert_eq!(report.msize, 65536);
    assert_eq!(report.ops.len(), Op::ALL.len());
    for op in &report.ops {
        assert!(op.requests > 0, "{} never completed: {report}", op.op);
    }
    let small = &report.ops[Op::SmallRead.index()];
    assert_eq!(small.bytes, small.requests * 4096, "small reads are whole");
    let large = &report.ops[Op::LargeRead.index()];
    assert!(large.bytes > 0 && large.bytes <= large.requests * (65536 - 11));
    assert!(report.server_memory.is_some_and(|m| m.peak_rss_kib > 0));
    running.shutdown().await;
}

#[tokio::test]
async fn a_missing_file_is_counted_as_a_setup_error_not_a_hang() {
    let server =
        memfs::server("/srv", &[("small", vec![1; 10])], ServerConfig::default()).expect("tree");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = serve(listener, Shared::new(server), ServeConfig::default());

    let mut cfg = LoadConfig::new(addr, "/srv");
    cfg.connections = 2;
    cfg.duration = Duration::from_millis(100);
    cfg.mix = "small-read=1".parse().unwrap();
    cfg.small_file = Some("nope/small".into());
    let report = s9p_load::run(cfg).await;

    assert_eq!(report.connected, 0);
    assert_eq!(report.requests, 0);
    assert_eq!(
        report.errors.into_iter().collect::<Vec<_>>(),
        [("walk: errno 2 (file does not exist)".to_string(), 2)]
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_over_mutual_tls_completes_every_operation_without_errors() {
    let ca = Authority::new(Validity::days(1)).expect("ca");
    let identity = |usage, name: &str| {
        let pair = ca
            .issue(usage, &[name.to_string()], Validity::days(1))
            .expect("cert");
        Identity::from_pem(
            pair.cert_pem.as_bytes(),
            pair.key_pem.as_bytes(),
            ca.cert_pem().as_bytes(),
        )
        .expect("identity")
    };
    let large: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
    let files = [("small", vec![7u8; 4096]), ("large", large)];
    let server = memfs::server("/srv", &files, ServerConfig::default()).expect("tree");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsServer::new(&identity(Usage::Server, "127.0.0.1")).expect("acceptor");
    let running = tls::serve(
        listener,
        acceptor,
        Shared::new(server),
        ServeConfig::default(),
    );

    let mut cfg = LoadConfig::new(addr, "/srv");
    cfg.connections = 2;
    cfg.pipeline = 8;
    cfg.duration = Duration::from_millis(500);
    // 1 MiB reads: replies far larger than one TLS record.
    cfg.msize = 1024 * 1024 + 24;
    cfg.small_file = Some("small".into());
    cfg.large_file = Some("large".into());
    let client = TlsClient::new(&identity(Usage::Client, "load")).expect("client");
    cfg.tls = Some((client, "127.0.0.1".into()));
    cfg.validate().unwrap();
    let report = s9p_load::run(cfg).await;

    assert!(report.tls);
    assert_eq!(report.errors, Default::default(), "{report}");
    assert_eq!(
        (report.connected, report.connections_lost),
        (2, 0),
        "{report}"
    );
    assert_eq!(report.msize, 1024 * 1024 + 24);
    for op in &report.ops {
        assert!(op.requests > 0, "{} never completed: {report}", op.op);
    }
    let large = &report.ops[Op::LargeRead.index()];
    assert!(
        large.bytes > 1024 * 1024,
        "whole 1 MiB reads arrived: {report}"
    );
    assert_eq!(
        running
            .stats()
            .handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_run_opens_and_closes_its_sessions_each_round_and_says_what_failed() {
    use s9p_load::idle::{IdleConfig, IdleError, run};
    let server =
        memfs::server("/srv", &[("small", vec![1; 10])], ServerConfig::default()).expect("tree");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = serve(listener, Shared::new(server), ServeConfig::default());

    let mut cfg = IdleConfig {
        load: LoadConfig::new(addr, "/srv"),
        connections: 20,
        rounds: 2,
        hold: Duration::from_millis(50),
        settle: Duration::from_millis(50),
        server_pid: std::process::id(),
    };
    let report = run(&cfg).await.expect("idle run");
    assert_eq!(report.connections, 20);
    assert_eq!(report.rounds.len(), 2, "{report}");
    assert!(report.base_rss_kib > 0);
    for r in &report.rounds {
        assert!(r.idle_rss_kib > 0 && r.closed_rss_kib > 0, "{report}");
    }
    assert!(report.to_string().contains("round 2:"), "{report}");

    // An attach the server refuses names the round and the session.
    cfg.load.aname = String::from("/nope");
    match run(&cfg).await {
        Err(IdleError::Session { round, index, .. }) => assert_eq!((round, index), (1, 1)),
        other => panic!("expected a session error, got {other:?}"),
    }
    running.shutdown().await;
}
