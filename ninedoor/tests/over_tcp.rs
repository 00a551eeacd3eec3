//! The hive served by `ninedoor::host` on real TCP sockets on 127.0.0.1,
//! driven by `secure9p-transport`'s client: the role × path × operation
//! table, hostile and refused input (each refused with its errno, logged,
//! and every other session still served), and bounded memory.
//!
//! Every test runs under a deadline so a hang fails instead of blocking.

use ninedoor::host::{HiveSettings, Host, HostConfig};
use ninedoor::secure9p_core::FsError;
use ninedoor::secure9p_core::codec::{Fid, LOpenFlags, Msg, Twalk, WalkNames};
use secure9p_transport::client::{CallError, Connection, connect_tcp};
use std::future::Future;
use std::time::Duration;
use tempfile::TempDir;

/// No test may run longer than this.
const DEADLINE: Duration = Duration::from_secs(60);

fn run<F: Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            tokio::time::timeout(DEADLINE, test)
                .await
                .expect("test deadline");
        });
}

/// A hive on an ephemeral port with its ticket file in a temp dir.
struct Served {
    host: Host,
    _dir: TempDir,
}

async fn serve(hive: HiveSettings) -> Served {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = HostConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ticket_file: Some(dir.path().join("queen.ticket")),
        hive,
        ..HostConfig::default()
    };
    let host = Host::start(&config).await.expect("host starts");
    Served { host, _dir: dir }
}

fn fs(e: CallError) -> FsError {
    match e {
        CallError::Fs(e) => e,
        other => panic!("not an errno: {other}"),
    }
}

/// A client attached with `ticket`.
struct Client {
    conn: Connection,
    root: Fid,
}

impl Client {
    async fn attach(served: &Served, ticket: &str) -> Result<Client, FsError> {
        let conn = connect_tcp(served.host.tcp_addr(), 64 * 1024)
            .await
            .expect("connect");
        let root = conn.attach("test", ticket).await.map_err(fs)?;
        Ok(Client { conn, root })
    }

    async fn queen(served: &Served) -> Client {
        let ticket = std::fs::read_to_string(served.host.ticket_path()).expect("ticket file");
        Client::attach(served, ticket.trim())
            .await
            .expect("queen attaches")
    }

    /// A new fid at `path`, one name per walk so the errno is the hive's
    /// answer for the name that failed.
    async fn walk(&self, path: &str) -> Result<Fid, FsError> {
        let fid = self.conn.walk(self.root, "").await.map_err(fs)?;
        for name in path.split('/').filter(|s| !s.is_empty()) {
            let step = self
                .conn
                .call(Twalk {
                    fid,
                    newfid: fid,
                    wnames: WalkNames::new(&[name]).expect("one name"),
                })
                .await
                .map_err(fs)
                .and_then(|rep| match rep.result() {
                    Ok(Msg::Rwalk(w)) if w.wqids.len() == 1 => Ok(()),
                    Ok(_) => Err(FsError::NotFound),
                    Err(e) => Err(fs(e)),
                });
            if let Err(e) = step {
                let _ = self.conn.clunk(fid).await;
                return Err(e);
            }
        }
        Ok(fid)
    }

    async fn open(&self, path: &str, flags: LOpenFlags) -> Result<Fid, FsError> {
        let fid = self.walk(path).await?;
        match self.conn.lopen(fid, flags).await {
            Ok(_) => Ok(fid),
            Err(e) => {
                let _ = self.conn.clunk(fid).await;
                Err(fs(e))
            }
        }
    }

    /// Reads a file, or lists a directory.
    async fn read(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let fid = self.open(path, LOpenFlags::empty()).await?;
        let dir = self.conn.getattr(fid).await.map_err(fs)?.qid().ty.bits() & 0x80 != 0;
        let r = if dir {
            self.conn.readdir(fid).await.map(|names| {
                names
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .into_bytes()
            })
        } else {
            self.conn.read_to_end(fid, 0).await
        };
        let _ = self.conn.clunk(fid).await;
        r.map_err(fs)
    }

    /// Opens `path` read-write (ctl) or write-only and writes `data`; for
    /// ctl returns the reply read back through the same fid.
    async fn write(&self, path: &str, data: &[u8]) -> Result<Vec<u8>, FsError> {
        let ctl = path.ends_with("/ctl");
        let flags = if ctl {
            LOpenFlags::RDWR
        } else {
            LOpenFlags::WRONLY
        };
        let fid = self.open(path, flags).await?;
        let r = async {
            self.conn.write(fid, 0, data).await?;
            if ctl {
                self.conn.read_to_end(fid, 0).await
            } else {
                Ok(Vec::new())
            }
        }
        .await;
        let _ = self.conn.clunk(fid).await;
        r.map_err(fs)
    }

    async fn ctl(&self, line: &str) -> Result<serde_json::Value, FsError> {
        let reply = self.write("/queen/ctl", line.as_bytes()).await?;
        Ok(serde_json::from_slice(&reply).expect("JSON reply"))
    }

    async fn spawn(&self, id: &str) -> String {
        let reply = self
            .ctl(&format!(
                r#"{{"cmd":"spawn","role":"heartbeat","id":"{id}"}}"#
            ))
            .await
            .expect("spawn");
        reply["ticket"].as_str().expect("ticket").to_owned()
    }

    /// A directory's names, space-separated.
    async fn ls(&self, path: &str) -> String {
        String::from_utf8(self.read(path).await.expect("ls")).expect("names")
    }

    async fn log(&self) -> String {
        String::from_utf8(self.read("/log/queen.log").await.expect("log")).expect("UTF-8 log")
    }
}

/// `ok` or the errno's name.
fn outcome(r: Result<(), FsError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(FsError::AccessDenied) => "EACCES",
        Err(FsError::NotPermitted) => "EPERM",
        Err(FsError::NotFound) => "ENOENT",
        Err(FsError::IsDir) => "EISDIR",
        Err(e) => panic!("unexpected errno {e:?}"),
    }
}

/// Each role's view of the namespace over TCP: walk, read (a directory:
/// list it), write (one append; `budget` for `/queen/ctl`). The seeds'
/// permissions, literally: the Queen reads everything and writes only
/// `/queen/ctl`; a heartbeat worker reaches nothing but its own telemetry,
/// which it may append to and not read. Directories refuse writes with
/// `EISDIR` before any policy is asked.
/// Outcomes of walk, read and write, in that order.
type Grants = [&'static str; 3];

const TABLE: &[(&str, Grants, Grants, Grants)] = &[
    // path                  queen: walk read write     w1                              w2
    (
        "/",
        ["ok", "ok", "EISDIR"],
        ["ok", "ok", "EISDIR"],
        ["ok", "ok", "EISDIR"],
    ),
    (
        "/proc/boot",
        ["ok", "ok", "EACCES"],
        ["EACCES"; 3],
        ["EACCES"; 3],
    ),
    (
        "/proc/transport",
        ["ok", "ok", "EACCES"],
        ["EACCES"; 3],
        ["EACCES"; 3],
    ),
    (
        "/queen/ctl",
        ["ok", "ok", "ok"],
        ["EACCES"; 3],
        ["EACCES"; 3],
    ),
    (
        "/log/queen.log",
        ["ok", "ok", "EACCES"],
        ["EACCES"; 3],
        ["EACCES"; 3],
    ),
    (
        "/worker/w1/telemetry",
        ["ok", "ok", "EACCES"],
        ["ok", "EACCES", "ok"],
        ["EACCES"; 3],
    ),
    (
        "/worker/w2/telemetry",
        ["ok", "ok", "EACCES"],
        ["EACCES"; 3],
        ["ok", "EACCES", "ok"],
    ),
    ("/gpu", ["ok", "ok", "EISDIR"], ["EACCES"; 3], ["EACCES"; 3]),
];

#[test]
fn each_role_gets_exactly_the_seeds_permissions_over_tcp() {
    run(async {
        let served = serve(HiveSettings::default()).await;
        let queen = Client::queen(&served).await;
        let w1 = queen.spawn("w1").await;
        let w2 = queen.spawn("w2").await;
        let w1 = Client::attach(&served, &w1).await.expect("w1 attaches");
        let w2 = Client::attach(&served, &w2).await.expect("w2 attaches");
        let mut failures = Vec::new();
        for (path, q, c1, c2) in TABLE {
            for (who, client, want) in [("queen", &queen, q), ("w1", &w1, c1), ("w2", &w2, c2)] {
                let payload: &[u8] = if *path == "/queen/ctl" {
                    br#"{"cmd":"budget","ops":0}"#
                } else {
                    b"table heartbeat\n"
                };
                let walk = match client.walk(path).await {
                    Ok(fid) => client.conn.clunk(fid).await.map_err(fs),
                    Err(e) => Err(e),
                };
                let got = [
                    outcome(walk),
                    outcome(client.read(path).await.map(drop)),
                    outcome(client.write(path, payload).await.map(drop)),
                ];
                if got != *want {
                    failures.push(format!("{who} {path}: got {got:?}, want {want:?}"));
                }
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));

        // What each role sees when it lists.
        assert_eq!(queen.ls("/").await, "proc queen log worker gpu");
        assert_eq!(queen.ls("/worker").await, "w1 w2");
        assert_eq!(w1.ls("/").await, "worker");
        assert_eq!(w1.ls("/worker").await, "w1");
        assert_eq!(w2.ls("/worker").await, "w2");

        // The appends that were allowed landed where they should.
        let t1 = queen
            .read("/worker/w1/telemetry")
            .await
            .expect("w1 telemetry");
        assert_eq!(t1, b"table heartbeat\n");
    });
}

/// The Queen's reading of `/proc/transport`.
async fn transport(queen: &Client) -> secure9p_transport::observe::Snapshot {
    let text = String::from_utf8(queen.read("/proc/transport").await.expect("queen reads"))
        .expect("utf-8");
    secure9p_transport::observe::Snapshot::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// `/proc/transport`: the runners' own figures, for the Queen. What a
/// worker does on its own connection shows in them: the server counts
/// every request it decodes, not only the Queen's.
#[test]
fn the_queen_reads_the_transports_figures_and_they_count_every_clients_requests() {
    use secure9p_transport::observe::Snapshot;
    run(async {
        let served = serve(HiveSettings::default()).await;
        let queen = Client::queen(&served).await;
        let ticket = queen.spawn("w1").await;
        let writes = |s: &Snapshot| {
            s.ops
                .iter()
                .find(|o| o.op == "Twrite")
                .map_or((0, 0), |o| (o.requests, o.errors))
        };
        let before = transport(&queen).await;
        assert!(before.connections.accepted >= 1, "{before:?}");
        assert!(before.connections.open >= 1, "{before:?}");
        assert!(
            before
                .ops
                .iter()
                .any(|o| o.op == "Tattach" && o.replies >= 1),
            "{}",
            before.render()
        );
        let (w_before, _) = writes(&before);

        let w1 = Client::attach(&served, &ticket).await.expect("w1 attaches");
        for n in 0..5 {
            let line = format!("heartbeat seq={n}\n");
            w1.write("/worker/w1/telemetry", line.as_bytes())
                .await
                .expect("append");
        }
        // A refused one is an error reply in the figures.
        assert_eq!(
            w1.write("/worker/w2/telemetry", b"x\n").await.map(drop),
            Err(FsError::AccessDenied)
        );
        assert_eq!(
            w1.read("/proc/transport").await.map(drop),
            Err(FsError::AccessDenied),
            "the Queen's file alone"
        );

        // Requests are counted when decoded, so w1's are in already; error
        // replies when written, which may come just after w1 read them.
        let walk_errors = |s: &Snapshot| {
            s.ops
                .iter()
                .find(|o| o.op == "Twalk")
                .map_or(0, |o| o.errors)
        };
        let mut after = transport(&queen).await;
        while walk_errors(&after) < walk_errors(&before) + 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            after = transport(&queen).await;
        }
        assert_eq!(writes(&after).0, w_before + 5, "{}", after.render());
        assert!(
            after.connections.accepted > before.connections.accepted,
            "w1 connected"
        );
    });
}

/// Bad input over TCP: each refused with its errno and logged, and the
/// hive keeps serving every other session.
#[test]
fn bad_input_is_refused_logged_and_everyone_else_is_still_served() {
    run(async {
        let served = serve(HiveSettings::default()).await;
        let queen = Client::queen(&served).await;
        let w1 = Client::attach(&served, &queen.spawn("w1").await)
            .await
            .expect("w1");
        queen.spawn("w2").await;
        let tel = w1
            .open("/worker/w1/telemetry", LOpenFlags::WRONLY)
            .await
            .expect("w1 opens its telemetry");
        let oversized = format!(
            r#"{{"cmd":"spawn","role":"heartbeat","id":"w9","pad":"{}"}}"#,
            "x".repeat(5000)
        );
        // (what, who, path, data, errno, a line the log must then hold)
        type Case<'a> = (&'a str, &'a Client, &'a str, &'a [u8], FsError, &'a str);
        let cases: &[Case<'_>] = &[
            (
                "malformed JSON",
                &queen,
                "/queen/ctl",
                br#"{"cmd":"spawn","#,
                FsError::Invalid,
                "ctl-refused role=queen subject=queen",
            ),
            (
                "unknown verb",
                &queen,
                "/queen/ctl",
                br#"{"cmd":"explode","id":"w1"}"#,
                FsError::Invalid,
                "errno=EINVAL why=\"invalid command",
            ),
            (
                "unknown field",
                &queen,
                "/queen/ctl",
                br#"{"cmd":"kill","id":"w1","force":true}"#,
                FsError::Invalid,
                "unknown field",
            ),
            (
                "oversized line",
                &queen,
                "/queen/ctl",
                oversized.as_bytes(),
                FsError::TooBig,
                "errno=EFBIG why=\"line of 5053 bytes exceeds 4096\"",
            ),
            (
                "kill of no such worker",
                &queen,
                "/queen/ctl",
                br#"{"cmd":"kill","id":"w7"}"#,
                FsError::NotFound,
                "cmd=kill errno=ENOENT why=\"no worker w7\"",
            ),
            (
                "worker writes another worker's telemetry",
                &w1,
                "/worker/w2/telemetry",
                b"forged\n",
                FsError::AccessDenied,
                "denied role=worker-heartbeat subject=w1",
            ),
            (
                "worker writes /queen/ctl",
                &w1,
                "/queen/ctl",
                br#"{"cmd":"kill","id":"w2"}"#,
                FsError::AccessDenied,
                "op=walk path=/queen errno=EACCES",
            ),
        ];
        for (what, who, path, data, errno, logged) in cases {
            assert_eq!(who.write(path, data).await.err(), Some(*errno), "{what}");
            let log = queen.log().await;
            assert!(log.contains(logged), "{what}: no {logged:?} in\n{log}");
            // Everyone else is still served: the Queen reads, w1 appends.
            assert!(queen.read("/proc/boot").await.is_ok(), "{what}");
            w1.conn
                .write(tel, 0, format!("after {what}\n").as_bytes())
                .await
                .unwrap_or_else(|e| panic!("w1 after {what}: {e}"));
        }
        // Nothing changed: still w1 and w2, w2's telemetry untouched.
        assert_eq!(queen.ls("/worker").await, "w1 w2");
        assert_eq!(queen.read("/worker/w2/telemetry").await.unwrap(), b"");

        // A connection that sends garbage framing is dropped; nobody else is.
        {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut raw = tokio::net::TcpStream::connect(served.host.tcp_addr())
                .await
                .unwrap();
            raw.write_all(&[0xff, 0xff, 0xff, 0x7f, 100, 0, 0])
                .await
                .unwrap();
            let mut buf = [0u8; 64];
            let closed = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf)).await;
            assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        }
        assert!(queen.read("/proc/boot").await.is_ok());

        // An expired ticket: budget a 1 s lifetime, spawn, wait it out (≤ 2 s).
        let budget = queen
            .ctl(r#"{"cmd":"budget","ticket_ttl_s":1}"#)
            .await
            .unwrap();
        assert_eq!(budget["ticket_ttl_s"], 1);
        let reply = queen
            .ctl(r#"{"cmd":"spawn","role":"heartbeat","id":"w3"}"#)
            .await
            .unwrap();
        let w3_ticket = reply["ticket"].as_str().unwrap().to_owned();
        let expires = reply["expires"].as_u64().unwrap();
        let w3 = Client::attach(&served, &w3_ticket)
            .await
            .expect("w3 before expiry");
        let w3_tel = w3
            .open("/worker/w3/telemetry", LOpenFlags::WRONLY)
            .await
            .unwrap();
        while ninedoor::host::unix_now() < expires {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            w3.conn.write(w3_tel, 0, b"late\n").await.err().map(fs),
            Some(FsError::TicketExpired)
        );
        assert_eq!(
            Client::attach(&served, &w3_ticket).await.err(),
            Some(FsError::TicketExpired)
        );
        let log = queen.log().await;
        assert!(
            log.lines()
                .any(|l| l.contains("ticket-refused") && l.ends_with("errno=EKEYEXPIRED")),
            "{log}"
        );
        // The Queen and w1 carry on.
        assert!(queen.read("/proc/boot").await.is_ok());
        w1.conn.write(tel, 0, b"still here\n").await.unwrap();
        let t1 = String::from_utf8(queen.read("/worker/w1/telemetry").await.unwrap()).unwrap();
        assert!(t1.ends_with("still here\n"), "{t1}");
        served.host.shutdown().await;
    });
}

/// Far more telemetry than a ring holds, over TCP: the hive holds at most
/// the capacity, and a reader from offset 0 is told what it missed.
#[test]
fn telemetry_memory_stays_bounded_and_readers_are_told_what_they_missed() {
    const CAP: usize = 1024;
    run(async {
        let served = serve(HiveSettings {
            telemetry_capacity: CAP,
            telemetry_max_write: 256,
            log_capacity: 2048,
            ..HiveSettings::default()
        })
        .await;
        let queen = Client::queen(&served).await;
        let w1 = Client::attach(&served, &queen.spawn("w1").await)
            .await
            .unwrap();
        let tel = w1
            .open("/worker/w1/telemetry", LOpenFlags::WRONLY)
            .await
            .unwrap();
        let mut written = Vec::new();
        for i in 0..600u32 {
            let line = format!("1700000000 heartbeat seq={i:05}\n");
            w1.conn.write(tel, 0, line.as_bytes()).await.unwrap();
            written.extend_from_slice(line.as_bytes());
        }
        assert!(written.len() > 10 * CAP);
        let usage = served
            .host
            .shared()
            .with_engine(|e| e.hive().workers()[0].telemetry)
            .expect("a heartbeat worker has telemetry");
        assert_eq!(usage.capacity, CAP);
        assert_eq!(usage.held, CAP);
        assert_eq!(usage.end, written.len() as u64);
        assert!(
            String::from_utf8(queen.read("/proc/boot").await.unwrap())
                .unwrap()
                .contains(&format!("telemetry.ring.bytes {CAP}\n"))
        );

        let got = queen.read("/worker/w1/telemetry").await.unwrap();
        let missed = written.len() - CAP;
        let notice = format!("# missed {missed} bytes\n");
        assert!(
            got.starts_with(notice.as_bytes()),
            "{}",
            String::from_utf8_lossy(&got[..64.min(got.len())])
        );
        assert_eq!(&got[notice.len()..], &written[missed..]);

        // The audit log is a ring too: flood it with denials.
        for _ in 0..200 {
            assert_eq!(w1.walk("/log").await.err(), Some(FsError::AccessDenied));
        }
        let log_usage = served.host.shared().with_engine(|e| e.hive().log_usage());
        assert!(
            log_usage.held <= 2048 && log_usage.end > 2048,
            "{log_usage:?}"
        );
        assert!(queen.log().await.starts_with("# missed "));
    });
}

fn gpu0() -> ninedoor::GpuDescriptor {
    ninedoor::GpuDescriptor {
        id: "GPU-0".into(),
        name: "Mock GPU".into(),
        uuid: "GPU-00000000-0000-0000-0000-000000000000".into(),
        memory_mb: 1024,
        sm_count: Some(8),
        driver_version: "mock".into(),
        runtime_version: "mock".into(),
    }
}

/// Without a bridge, forwarded `/gpu` files fail at once with
/// `EHOSTUNREACH`; with one plugged into the hook, requests reach it and
/// its later answers reach the client.
#[test]
fn gpu_requests_fail_unreachable_without_a_bridge_and_reach_one_through_the_hook() {
    run(async {
        let served = serve(HiveSettings::default()).await;
        served
            .host
            .shared()
            .with_engine(|e| e.hive_mut().install_gpu_nodes(&[gpu0()]))
            .unwrap();
        let queen = Client::queen(&served).await;
        assert!(queen.read("/gpu/GPU-0/info").await.is_ok());
        assert_eq!(
            queen.read("/gpu/GPU-0/status").await.err(),
            Some(FsError::Unreachable)
        );
        assert_eq!(
            queen.write("/gpu/GPU-0/ctl", b"RESET\n").await.err(),
            Some(FsError::Unreachable)
        );

        // A bridge that answers later, from its own task.
        struct Bridge(tokio::sync::mpsc::UnboundedSender<ninedoor::GpuRequest>);
        impl ninedoor::host::GpuForward for Bridge {
            fn forward(
                &mut self,
                request: ninedoor::GpuRequest,
            ) -> Option<ninedoor::secure9p_core::Completion> {
                let _ = self.0.send(request);
                None
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        served
            .host
            .shared()
            .with_engine(|e| e.set_bridge(Bridge(tx)));
        let shared = served.host.shared().clone();
        tokio::spawn(async move {
            use ninedoor::secure9p_core::Completion;
            while let Some(r) = rx.recv().await {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let result = match r.op {
                    ninedoor::GpuOp::Read { offset: 0, .. } => {
                        Completion::Read(Ok(b"OK\n".to_vec()))
                    }
                    ninedoor::GpuOp::Read { .. } => Completion::Read(Ok(Vec::new())),
                    ninedoor::GpuOp::Write { data, .. } => Completion::Write(Ok(data.len() as u32)),
                };
                shared.complete(r.token, result);
            }
        });
        assert_eq!(queen.read("/gpu/GPU-0/status").await.unwrap(), b"OK\n");
        assert!(queen.write("/gpu/GPU-0/ctl", b"RESET\n").await.is_ok());
        let log = queen.log().await;
        assert!(
            log.contains("gpu-forward role=queen subject=queen"),
            "{log}"
        );
        assert!(
            log.contains("gpu-complete role=- subject=- ticket=- token="),
            "{log}"
        );
    });
}
