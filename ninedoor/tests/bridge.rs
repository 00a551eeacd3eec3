//! NineDoor's forwarder against a real GPU bridge (`gpu-bridge`, served in
//! process over TCP on 127.0.0.1 with a ticket key): mirror tickets carry
//! each requester's identity, so the bridge itself refuses a GPU worker
//! that does not hold the lease; prefixed bridges translate GPU ids both
//! ways; and each hive fid's bridge fid is closed with it, so a busy hive
//! never runs out of fids on its bridge.

mod tcp_client;

use tcp_client::Client;

fn run<F: std::future::Future<Output = ()>>(test: F) {
    tcp_client::run_within(DEADLINE, test);
}

use gpu_bridge::{GpuBridge, MockSource, ServeOptions, SystemClock};
use ninedoor::host::{GpuSettings, Host, HostConfig};
use ninedoor::secure9p_core::codec::LOpenFlags;
use ninedoor::secure9p_core::{FsError, TicketAuthority};
use secure9p_transport::server::{Running, ServeConfig, Shared, serve};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// No test may run longer than this.
const DEADLINE: Duration = Duration::from_secs(60);
/// The key NineDoor and the bridge share (not the hive's).
const BRIDGE_KEY: [u8; 32] = [0x3c; 32];

/// A mock bridge with one GPU, served on an ephemeral port.
async fn bridge() -> (Running, String) {
    let source = MockSource::new(1).expect("mock gpu");
    let bridge = GpuBridge::new(Box::new(source), Arc::new(SystemClock));
    let server = gpu_bridge::server(
        &bridge,
        ServeOptions {
            tickets: Some(TicketAuthority::new(BRIDGE_KEY)),
            anonymous: false,
        },
    )
    .expect("bridge namespace");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    (
        serve(listener, Shared::new(server), ServeConfig::default()),
        addr,
    )
}

/// A hive forwarding to `bridges`, and its temp dir.
async fn hive(bridges: Vec<String>) -> (Host, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("bridge.key");
    std::fs::write(&key, BRIDGE_KEY).expect("key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = HostConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ticket_file: Some(dir.path().join("queen.ticket")),
        gpu: GpuSettings {
            bridges,
            key_file: Some(key),
            ..GpuSettings::default()
        },
        ..HostConfig::default()
    };
    (Host::start(&config).await.expect("host starts"), dir)
}

/// Waits until the hive has installed `gpu`.
async fn installed(queen: &Client, gpu: &str) {
    let start = Instant::now();
    while queen.cat(&format!("gpu/{gpu}/info")).await.is_err() {
        assert!(start.elapsed() < DEADLINE, "gpu {gpu} never installed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_bridge_enforces_its_lease_on_the_identity_ninedoor_forwards() {
    run(async {
        let (_bridge, addr) = bridge().await;
        let (host, _dir) = hive(vec![format!("h1={addr}")]).await;
        let queen = Client::attach(&host, &host.queen_ticket()).await;
        installed(&queen, "h1-0").await;
        let info: serde_json::Value =
            serde_json::from_slice(&queen.cat("gpu/h1-0/info").await.expect("info")).unwrap();
        assert_eq!(info["id"], "h1-0");

        // The lease goes to g1; g9 is a GPU worker of the same GPU that
        // holds no lease.
        let leased = queen
            .command(r#"{"cmd":"lease","gpu":"h1-0","worker":"g1","mem_mb":64,"ttl_s":60}"#)
            .await;
        assert!(
            leased["lease"]
                .as_str()
                .is_some_and(|l| l.starts_with("OK LEASE granted holder=g1 ")),
            "{leased}"
        );
        let g9 = queen
            .command(r#"{"cmd":"spawn","role":"gpu","id":"g9","gpu":"h1-0"}"#)
            .await;
        let g1 = Client::attach(&host, leased["ticket"].as_str().unwrap()).await;
        let g9 = Client::attach(&host, g9["ticket"].as_str().unwrap()).await;

        let job = gpu_bridge::JobDescriptor::inline(
            "j1",
            &gpu_bridge::Workload::Vadd {
                a: vec![1.0, 2.0],
                b: vec![3.0, 4.0],
            },
        )
        .to_json();
        let (written, reply) = g9.exchange("gpu/h1-0/job", job.as_bytes()).await;
        assert_eq!(written, Err(FsError::NotPermitted), "{reply}");
        assert!(reply.starts_with("ERR EPERM "), "{reply}");
        let (written, reply) = g1.exchange("gpu/h1-0/job", job.as_bytes()).await;
        assert!(written.is_ok(), "{reply}");
        assert_eq!(reply, "QUEUED j1 priority=0 position=1\n");

        // The holder renews its own lease; the other worker may not.
        let (written, _) = g9.exchange("gpu/h1-0/lease", b"RENEW 30").await;
        assert_eq!(written, Err(FsError::NotPermitted));
        let (written, reply) = g1.exchange("gpu/h1-0/lease", b"RENEW 30").await;
        assert!(written.is_ok(), "{reply}");
        assert!(reply.contains(r#""holder":"g1""#), "{reply}");
    });
}

#[test]
fn every_hive_fid_gives_its_bridge_fid_back() {
    run(async {
        let (_bridge, addr) = bridge().await;
        let (host, _dir) = hive(vec![addr]).await;
        let queen = Client::attach(&host, &host.queen_ticket()).await;
        installed(&queen, "0").await;
        // More opens than NineDoor may hold on one bridge connection: each
        // is closed on the bridge when its hive fid is clunked.
        for n in 0..1_100 {
            let stats = queen.cat("gpu/0/stats").await;
            assert!(stats.is_ok(), "open {n}: {stats:?}");
        }
        // Opens left open when a session ends are closed too.
        for _ in 0..3 {
            let other = Client::attach(&host, &host.queen_ticket()).await;
            for _ in 0..400 {
                let fid = other.conn.walk(other.root, "gpu/0/result").await.unwrap();
                other.conn.lopen(fid, LOpenFlags::empty()).await.unwrap();
                other.conn.read(fid, 0, 64).await.unwrap();
            }
            drop(other);
        }
        let start = Instant::now();
        while queen.cat("gpu/0/lease").await.is_err() {
            assert!(
                start.elapsed() < DEADLINE,
                "bridge fids were never given back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}
