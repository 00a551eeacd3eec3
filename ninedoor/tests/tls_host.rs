//! NineDoor's host on mutual TLS over 127.0.0.1, with certificates made by
//! `ninedoor::host::cert_files` (what `ninedoor cert` runs): the `[tls]`
//! config section, a TLS client served and a plain one refused before the
//! engine, the secure-by-default rule, and a third-party TLS peer:
//! `openssl s_client` (Debian's `openssl`) carries a real `Tversion` with
//! the client certificate and gets nothing without it.

use ninedoor::host::cert_files::{make_ca, make_leaf};
use ninedoor::host::{Host, HostConfig, HostError};
use ninedoor::secure9p_core::codec::{Frame, MsgType, Tag, Tversion};
use secure9p_transport::client::connect_tcp;
use secure9p_transport::tls::certs::Usage;
use secure9p_transport::tls::{Identity, TlsClient, TlsError, TlsFiles};
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// No test may run longer than this.
const DEADLINE: Duration = Duration::from_secs(60);
const MSIZE: u32 = 64 * 1024;
/// An `Rversion` of `9P2000.L`, in bytes.
const RVERSION_LEN: usize = 7 + 4 + 2 + 8;

fn run<F: Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            tokio::time::timeout(DEADLINE, test)
                .await
                .expect("test deadline");
        });
}

/// A CA, the Queen's server certificate (`queen.hive.test`, 127.0.0.1)
/// and an operator's client certificate, in `dir`.
fn pki(dir: &Path) -> PathBuf {
    let pki = dir.join("pki");
    make_ca(&pki, 1).expect("ca");
    let also = ["127.0.0.1".to_string()];
    make_leaf(&pki, Usage::Server, "queen.hive.test", &also, 1).expect("server");
    make_leaf(&pki, Usage::Client, "operator", &[], 1).expect("client");
    pki
}

fn files(pki: &Path, name: &str) -> TlsFiles {
    TlsFiles {
        cert: pki.join(format!("{name}.pem")),
        key: pki.join(format!("{name}.key")),
        ca: pki.join("ca.pem"),
    }
}

/// A TLS host from a config file that names the Queen's files in `[tls]`.
async fn tls_host(dir: &Path, pki: &Path) -> Host {
    let queen = files(pki, "queen.hive.test");
    let text = format!(
        "listen = \"127.0.0.1:0\"\nticket_file = {:?}\n\n[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
        dir.join("queen.ticket"),
        queen.cert,
        queen.key,
        queen.ca
    );
    let path = dir.join("ninedoor.toml");
    std::fs::write(&path, text).expect("config");
    let config = HostConfig::load(&path).expect("config parses");
    assert_eq!(config.tls.as_ref().map(|t| t.files()), Some(queen));
    let again = HostConfig::from_toml(&config.to_toml(), &path).expect("printed config parses");
    assert_eq!(again, config, "--print-config round trip keeps [tls]");
    let host = Host::start(&config).await.expect("host starts");
    assert!(host.tls());
    host
}

#[test]
fn a_tls_hive_serves_tls_clients_and_refuses_plain_ones() {
    run(async {
        let dir = tempfile::tempdir().expect("dir");
        let pki = pki(dir.path());
        let host = tls_host(dir.path(), &pki).await;
        let client = TlsClient::new(&Identity::load(&files(&pki, "operator")).expect("identity"))
            .expect("client");
        let conn = client
            .connect(host.tcp_addr(), "queen.hive.test", MSIZE)
            .await
            .expect("served over TLS");
        let root = conn
            .attach("queen", &host.queen_ticket())
            .await
            .expect("the ticket still authorises");
        let boot = conn.walk(root, "proc/boot").await.expect("walk");
        conn.lopen(boot, ninedoor::secure9p_core::codec::LOpenFlags::empty())
            .await
            .expect("open");
        assert!(!conn.read_to_end(boot, 0).await.expect("read").is_empty());
        // TLS authenticates the host, not the principal: a forged ticket is
        // still refused over a good TLS connection.
        assert!(conn.attach("queen", "c9t1.forged").await.is_err());

        assert!(
            connect_tcp(host.tcp_addr(), MSIZE).await.is_err(),
            "plain 9P is refused"
        );
        refusals_reach(&host, 1).await;
        conn.read_to_end(boot, 0).await.expect("still served");
        drop(conn);
        host.shutdown().await;
    });
}

#[test]
fn plain_tcp_on_a_network_address_needs_the_operator_to_say_so() {
    run(async {
        let dir = tempfile::tempdir().expect("dir");
        let config = HostConfig {
            listen: "0.0.0.0:0".parse().expect("addr"),
            ticket_file: Some(dir.path().join("queen.ticket")),
            ..HostConfig::default()
        };
        // Refused before anything is bound or written.
        let err = Host::start(&config).await.expect_err("refused");
        assert!(
            matches!(err, HostError::Tls(TlsError::PlainOnNetwork(a)) if a == config.listen),
            "{err}"
        );
        assert!(err.to_string().contains("--insecure-plain-tcp"), "{err}");
        assert!(!dir.path().join("queen.ticket").exists());
        // Loopback stays plain by default (the Linux v9fs client has no TLS).
        let loopback = HostConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..config.clone()
        };
        let host = Host::start(&loopback).await.expect("plain on loopback");
        assert!(!host.tls());
        host.shutdown().await;
        // `::ffff:127.0.0.1` is loopback too; `::` is not.
        let v6: std::net::SocketAddr = "[::]:0".parse().expect("addr");
        assert!(secure9p_transport::tls::check_listener(v6, false, false).is_err());
        assert!(secure9p_transport::tls::check_listener(v6, false, true).is_ok());
        let mapped: std::net::SocketAddr = "[::ffff:127.0.0.1]:0".parse().expect("addr");
        assert!(secure9p_transport::tls::check_listener(mapped, false, false).is_ok());
    });
}

/// Waits until the host has counted `n` refused handshakes (the refused
/// client can see the door close before the server has counted it).
async fn refusals_reach(host: &Host, n: u64) {
    while host.tcp_stats().handshake_failures.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        host.tcp_stats().handshake_failures.load(Ordering::Relaxed),
        n
    );
}

/// A Tversion frame, as any 9P client sends first.
fn tversion() -> Vec<u8> {
    let mut out = vec![0u8; 64];
    let n = Frame::new(
        Tag::NOTAG,
        Tversion {
            msize: MSIZE,
            version: "9P2000.L",
        },
    )
    .encode(&mut out)
    .expect("encode");
    out.truncate(n);
    out
}

/// Runs `openssl s_client` to `addr` with `extra` flags, writes `input`,
/// and returns what came back on stdout until the server closed or
/// `want` bytes arrived (then it is killed), and its stderr.
fn s_client(
    addr: std::net::SocketAddr,
    extra: &[&Path],
    flags: &[&str],
    input: &[u8],
    want: usize,
) -> (Vec<u8>, String) {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &addr.to_string(),
        "-tls1_3",
        "-quiet",
        "-verify_return_error",
    ])
    .args([
        "-servername",
        "queen.hive.test",
        "-verify_hostname",
        "queen.hive.test",
    ])
    .args(flags);
    for pair in extra.chunks(2) {
        cmd.arg(pair[0]).arg(pair[1]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (scripts/setup.sh installs Debian's openssl)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write to s_client");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < want {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    // Bounded: a reader that never finishes fails the test, not CI.
    let start = std::time::Instant::now();
    while !reader.is_finished() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    let got = reader.join().expect("reader");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (got, err)
}

#[test]
fn openssl_s_client_carries_a_tversion_and_is_refused_without_a_certificate() {
    run(async {
        let dir = tempfile::tempdir().expect("dir");
        let pki = pki(dir.path());
        let host = tls_host(dir.path(), &pki).await;
        let addr = host.tcp_addr();
        let op = files(&pki, "operator");
        let ca = op.ca.clone();
        let with_cert = [
            Path::new("-cert"),
            &op.cert,
            Path::new("-key"),
            &op.key,
            Path::new("-CAfile"),
            &ca,
        ];
        let (reply, err) = tokio::task::spawn_blocking({
            let with_cert: Vec<PathBuf> = with_cert.iter().map(|p| p.to_path_buf()).collect();
            move || {
                let refs: Vec<&Path> = with_cert.iter().map(PathBuf::as_path).collect();
                s_client(addr, &refs, &[], &tversion(), RVERSION_LEN)
            }
        })
        .await
        .expect("s_client");
        // size[4] Rversion tag[2] msize[4] version[s]: the whole reply.
        assert_eq!(
            reply.len(),
            RVERSION_LEN,
            "an Rversion through openssl: {reply:?} {err}"
        );
        assert_eq!(&reply[..4], &(RVERSION_LEN as u32).to_le_bytes());
        assert_eq!(reply[4], MsgType::Rversion as u8, "{reply:?}");
        assert_eq!(&reply[5..7], &Tag::NOTAG.0.to_le_bytes());
        assert_eq!(&reply[7..11], &MSIZE.to_le_bytes(), "the msize asked for");
        assert_eq!(&reply[11..13], &8u16.to_le_bytes());
        assert_eq!(&reply[13..], b"9P2000.L");
        refusals_reach(&host, 0).await;

        // Without a client certificate: the server refuses it, no reply.
        let ca_only = [Path::new("-CAfile"), &ca];
        let (reply, err) = tokio::task::spawn_blocking({
            let ca_only: Vec<PathBuf> = ca_only.iter().map(|p| p.to_path_buf()).collect();
            move || {
                let refs: Vec<&Path> = ca_only.iter().map(PathBuf::as_path).collect();
                s_client(addr, &refs, &[], &tversion(), RVERSION_LEN)
            }
        })
        .await
        .expect("s_client");
        assert!(reply.is_empty(), "no 9P without a certificate: {reply:?}");
        assert!(
            err.to_lowercase().contains("alert"),
            "openssl saw the refusal: {err}"
        );
        refusals_reach(&host, 1).await;
        host.shutdown().await;
    });
}
