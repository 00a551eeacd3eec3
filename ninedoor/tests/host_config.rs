//! The host side's files and flags: config defaults and parsing, the
//! ticket file (0600, atomic, never through a symlink), key files, the Unix
//! socket, and the `ninedoor` binary's start-up line, signals and exit codes.

use ninedoor::HiveConfig;
use ninedoor::host::{Host, HostConfig, HostError, load_key, read_ticket, write_ticket};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn defaults_are_loopback_and_the_hive_librarys_limits() {
    let c = HostConfig::default();
    assert_eq!(c.listen.to_string(), ninedoor::host::DEFAULT_LISTEN);
    assert!(c.listen.ip().is_loopback());
    assert_eq!(c.hive.to_hive_config(), HiveConfig::default());
    assert_eq!((c.unix, c.key_file, c.ticket_file), (None, None, None));
}

#[test]
fn a_config_file_overrides_only_what_it_names_and_refuses_typos() {
    let path = Path::new("ninedoor.toml");
    let c = HostConfig::from_toml(
        "listen = \"127.0.0.1:0\"\nunix = \"/tmp/nd.sock\"\n[hive]\nticket_ttl_s = 5\nworker_ops = 10\n[serve]\nidle_timeout_s = 7\n",
        path,
    )
    .unwrap();
    assert_eq!(c.listen.port(), 0);
    assert_eq!(c.unix.as_deref(), Some(Path::new("/tmp/nd.sock")));
    let hive = c.hive.to_hive_config();
    assert_eq!(hive.ticket_ttl_s, 5);
    assert_eq!(hive.worker_ops, Some(10));
    assert_eq!(hive.max_workers, HiveConfig::default().max_workers);
    assert_eq!(
        c.serve.to_serve_config().idle_timeout,
        Duration::from_secs(7)
    );
    // What --print-config prints reads back as the same configuration.
    assert_eq!(HostConfig::from_toml(&c.to_toml(), path).unwrap(), c);

    for (text, names) in [
        ("listne = \"127.0.0.1:1\"", "listne"),
        ("[hive]\nticket_tll_s = 5", "ticket_tll_s"),
        ("listen = \"not an address\"", "listen"),
        ("[hive]\nticket_ttl_s = -1", "ticket_ttl_s"),
    ] {
        let e = HostConfig::from_toml(text, path).unwrap_err().to_string();
        assert!(
            e.starts_with("config ninedoor.toml: ") && e.contains(names),
            "{e}"
        );
    }
}

#[test]
fn the_ticket_file_is_private_atomic_and_never_written_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/cohesix/queen.ticket");
    write_ticket(&path, "c9t1.first").unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(read_ticket(&path).unwrap(), "c9t1.first");
    write_ticket(&path, "c9t1.second").unwrap();
    assert_eq!(read_ticket(&path).unwrap(), "c9t1.second");

    // A symlink planted at the path is replaced, its target left alone.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let planted = dir.path().join("planted.ticket");
    symlink(&victim, &planted).unwrap();
    write_ticket(&planted, "c9t1.third").unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&planted).unwrap().is_file());
    assert_eq!(mode(&planted), 0o600);
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn key_files_must_be_private_and_32_bytes_or_64_hex_digits() {
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str, bytes: &[u8], mode: u32| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    assert_eq!(load_key(&key("raw", &[7; 32], 0o600)).unwrap(), [7; 32]);
    let hex = format!("{}\n", "ab".repeat(32));
    assert_eq!(
        load_key(&key("hex", hex.as_bytes(), 0o400)).unwrap(),
        [0xab; 32]
    );
    let open = load_key(&key("open", &[7; 32], 0o644)).unwrap_err();
    assert!(open.to_string().contains("chmod 600"), "{open}");
    let short = load_key(&key("short", &[7; 31], 0o600)).unwrap_err();
    assert!(short.to_string().contains("found 31 bytes"), "{short}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_unix_socket_serves_the_queen_and_everything_is_removed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nd.sock");
    let ticket = dir.path().join("queen.ticket");
    let config = HostConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        unix: Some(sock.clone()),
        ticket_file: Some(ticket.clone()),
        ..HostConfig::default()
    };
    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let host = Host::start(&config).await.unwrap();
            assert_eq!(mode(&sock), 0o600);
            // A second host may not take over a live socket.
            let again = HostConfig {
                ticket_file: Some(dir.path().join("other.ticket")),
                ..config.clone()
            };
            assert!(matches!(
                Host::start(&again).await,
                Err(HostError::SocketInUse(_))
            ));
            let conn = secure9p_transport::client::connect_unix(&sock, 8192)
                .await
                .unwrap();
            let root = conn
                .attach("queen", &read_ticket(&ticket).unwrap())
                .await
                .unwrap();
            let boot = conn.walk(root, "proc/boot").await.unwrap();
            conn.lopen(boot, Default::default()).await.unwrap();
            let text = conn.read_to_end(boot, 0).await.unwrap();
            assert!(text.starts_with(b"Cohesix NineDoor "));
            host.shutdown().await;
            assert!(!sock.exists() && !ticket.exists());
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_failed_start_leaves_no_ticket_file() {
    let dir = tempfile::tempdir().unwrap();
    let ticket = dir.path().join("queen.ticket");
    runtime().block_on(async {
        let busy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = HostConfig {
            listen: busy.local_addr().unwrap(),
            ticket_file: Some(ticket.clone()),
            ..HostConfig::default()
        };
        let e = Host::start(&config).await.unwrap_err();
        assert!(
            e.to_string().starts_with("cannot listen on 127.0.0.1:"),
            "{e}"
        );
        assert!(!ticket.exists());
    });
}

/// A child process killed if the test ends first.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn wait_for_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < within, "still running after {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_binary_prints_its_address_first_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ticket = dir.path().join("queen.ticket");
    let mut nd = Proc(
        Command::new(env!("CARGO_BIN_EXE_ninedoor"))
            .args(["--listen", "127.0.0.1:0", "--ticket-file"])
            .arg(&ticket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(nd.0.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr = first
        .strip_prefix("ninedoor listening on tcp ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .trim();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let mut second = String::new();
    out.read_line(&mut second).unwrap();
    assert!(second.contains(&ticket.display().to_string()), "{second}");
    assert_eq!(mode(&ticket), 0o600);
    assert!(read_ticket(&ticket).unwrap().starts_with("c9t1."));

    let term = Command::new("kill")
        .args(["-TERM", &nd.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = nd.wait_for_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(!ticket.exists(), "the ticket file outlived its hive");
}

#[test]
fn the_binary_exits_1_on_bad_flags_and_2_when_it_cannot_start() {
    let run = |args: &[&str]| {
        let mut p = Proc(
            Command::new(env!("CARGO_BIN_EXE_ninedoor"))
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        p.wait_for_exit(Duration::from_secs(10)).code()
    };
    assert_eq!(run(&["--frobnicate"]), Some(1));
    assert_eq!(run(&["--listen", "nowhere"]), Some(1));
    assert_eq!(run(&["--config", "/nonexistent/ninedoor.toml"]), Some(1));
    assert_eq!(
        run(&["--key-file", "/nonexistent/key", "--listen", "127.0.0.1:0"]),
        Some(2)
    );
    assert_eq!(run(&["--print-config"]), Some(0));
    // `cert` takes its own flags only: a serving flag before it would be
    // silently ignored, so it is refused, and nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().to_str().unwrap();
    assert_eq!(
        run(&["--tls-cert", "queen.pem", "cert", "ca", "--dir", pki]),
        Some(1)
    );
    assert!(!dir.path().join("ca.pem").exists());
    assert_eq!(run(&["cert", "ca", "--dir", pki]), Some(0));
    assert!(dir.path().join("ca.pem").exists());
}
