//! The socket runners over real loopback sockets: file verbs end to end,
//! pipelining, deferred replies answered out of order, flush, and every
//! limit closing only the connection that broke it; and their observer:
//! every request counted by its type, each reply matched to its request
//! for the latency histogram and the error count (deferred, failed and
//! flushed requests included), two runners adding up into one observer,
//! and connections accepted, open and refused.

use secure9p_core::codec::{self, Fid, LOpenFlags, Msg, Tag};
use secure9p_core::{
    AllowAll, Completion, FsError, Handle, Io, IoCtx, MemFile, Namespace, Node, NodeAttr, NodeKind,
    Principal, Role, Server, ServerConfig, Token,
};
use secure9p_transport::client::{CallError, Connection, connect_tcp, connect_unix};
use secure9p_transport::memfs;
use secure9p_transport::observe::{Observer, OpSnapshot, Snapshot};
use secure9p_transport::server::{ServeConfig, Shared, serve};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};

const MSIZE: u32 = 64 * 1024;

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("hello.txt", b"hello, world\n".to_vec()),
        ("dir/nested.txt", b"nested\n".to_vec()),
        (
            "big.bin",
            (0..300_000u32).map(|i| (i % 251) as u8).collect(),
        ),
    ]
}

async fn start(
    config: ServeConfig,
) -> (
    std::net::SocketAddr,
    Arc<Shared<Server>>,
    secure9p_transport::server::Running,
) {
    let server = memfs::server("/srv", &files(), ServerConfig::default()).expect("tree");
    let shared = Shared::new(server);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let running = serve(listener, shared.clone(), config);
    (addr, shared, running)
}

async fn open(conn: &Connection, root: Fid, path: &str, flags: LOpenFlags) -> Fid {
    let fid = conn.walk(root, path).await.expect("walk");
    conn.lopen(fid, flags).await.expect("open");
    fid
}

#[tokio::test]
async fn file_verbs_over_tcp() {
    let (addr, shared, running) = start(ServeConfig::default()).await;
    let conn = connect_tcp(addr, MSIZE).await.expect("connect");
    assert_eq!(conn.msize(), MSIZE);
    let root = conn.attach("guest", "/srv").await.expect("attach");

    let mut names: Vec<String> = {
        let d = open(&conn, root, "", LOpenFlags::DIRECTORY).await;
        conn.readdir(d)
            .await
            .expect("readdir")
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    names.sort();
    assert_eq!(names, ["big.bin", "dir", "hello.txt"]);

    let f = open(&conn, root, "hello.txt", LOpenFlags::RDWR).await;
    assert_eq!(
        conn.read_to_end(f, 0).await.expect("read"),
        b"hello, world\n"
    );
    assert_eq!(conn.write(f, 13, b"more\n").await.expect("write"), 5);
    assert_eq!(conn.getattr(f).await.expect("getattr").size(), 18);
    conn.clunk(f).await.expect("clunk");

    let big = open(&conn, root, "big.bin", LOpenFlags::empty()).await;
    let data = conn.read_to_end(big, 0).await.expect("read big");
    assert_eq!(data, files()[2].1);

    assert!(matches!(
        conn.walk(root, "missing").await,
        Err(CallError::Fs(FsError::NotFound))
    ));
    let contents = shared.with_engine(|s| {
        let id = s.namespace().resolve("/export/hello.txt").expect("file");
        s.namespace_mut()
            .node_as::<MemFile>(id)
            .expect("memfile")
            .data()
            .to_vec()
    });
    assert_eq!(contents, b"hello, world\nmore\n");
    running.shutdown().await;
}

#[tokio::test]
async fn many_requests_in_flight_on_one_connection() {
    let (addr, _shared, running) = start(ServeConfig::default()).await;
    let conn = connect_tcp(addr, MSIZE).await.expect("connect");
    let root = conn.attach("guest", "/srv").await.expect("attach");
    let f = open(&conn, root, "big.bin", LOpenFlags::empty()).await;
    let reads = (0..64u64).map(|i| {
        let conn = conn.clone();
        async move { (i, conn.read(f, i * 4096, 4096).await) }
    });
    let mut set = tokio::task::JoinSet::new();
    for r in reads {
        set.spawn(r);
    }
    let results = set.join_all().await;
    let want = &files()[2].1;
    for (i, r) in results {
        let got = r.expect("read");
        let start = (i * 4096) as usize;
        assert_eq!(&got[..], &want[start..start + 4096], "chunk {i}");
    }
    running.shutdown().await;
}

/// Large reads go out as a shared slice of the file after their header (one
/// vectored write); small replies queued around them must keep their own
/// bytes, and a write landing while large replies are in flight must not
/// change a reply already made.
#[tokio::test]
async fn shared_large_reads_interleave_with_small_replies_and_writes() {
    let (addr, _shared, running) = start(ServeConfig::default()).await;
    let conn = connect_tcp(addr, MSIZE).await.expect("connect");
    let root = conn.attach("guest", "/srv").await.expect("attach");
    let big = open(&conn, root, "big.bin", LOpenFlags::RDWR).await;
    let small = open(&conn, root, "hello.txt", LOpenFlags::empty()).await;
    let want = files()[2].1.clone();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..48u64 {
        let conn = conn.clone();
        set.spawn(async move {
            match i % 3 {
                0 => (
                    i,
                    conn.read(big, i * 5000, 60_000).await.map(|b| b.to_vec()),
                ),
                1 => (i, conn.read(small, 0, 4096).await.map(|b| b.to_vec())),
                _ => (
                    i,
                    conn.getattr(big)
                        .await
                        .map(|a| a.size().to_le_bytes().to_vec()),
                ),
            }
        });
    }
    let results = set.join_all().await;
    for (i, r) in results {
        let got = r.expect("reply");
        match i % 3 {
            0 => {
                let at = (i * 5000) as usize;
                assert_eq!(got.len(), 60_000, "read {i}");
                assert!(
                    got == want[at..at + 60_000],
                    "read {i} has the file's bytes"
                );
            }
            1 => assert_eq!(got, b"hello, world\n", "small read {i}"),
            _ => assert_eq!(got, (want.len() as u64).to_le_bytes(), "getattr {i}"),
        }
    }
    // Reads in flight while the file changes: each gets either the old or
    // the new bytes of its range, never a mix torn by the write.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16u64 {
        let conn = conn.clone();
        set.spawn(async move { (i, conn.read(big, 0, 40_000).await) });
    }
    assert_eq!(
        conn.write(big, 0, &[0xEE; 40_000]).await.expect("write"),
        40_000
    );
    for (i, r) in set.join_all().await {
        let got = r.expect("read");
        assert!(
            got[..] == want[..40_000] || got.iter().all(|b| *b == 0xEE),
            "read {i} is whole: old or new"
        );
    }
    let after = conn.read(big, 0, 40_000).await.expect("read");
    assert!(after.iter().all(|b| *b == 0xEE), "the write took");
    running.shutdown().await;
}

/// Replies larger than the writer's piece size (512 KiB) leave in pieces,
/// with other replies of the connection queued meanwhile: every byte
/// arrives, in order, at a 1 MiB msize.
#[tokio::test]
async fn one_mib_replies_go_out_in_pieces_whole_and_in_order() {
    let data: Vec<u8> = (0..3_500_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let server = memfs::server(
        "/srv",
        &[("huge.bin", data.clone())],
        ServerConfig::default(),
    )
    .expect("tree");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let running = serve(listener, Shared::new(server), ServeConfig::default());
    let conn = connect_tcp(addr, 1024 * 1024 + 24).await.expect("connect");
    let root = conn.attach("guest", "/srv").await.expect("attach");
    let f = open(&conn, root, "huge.bin", LOpenFlags::empty()).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let conn = conn.clone();
        set.spawn(async move {
            let at = i * 300_000;
            (
                at,
                conn.read(f, at, 1024 * 1024).await,
                conn.getattr(f).await,
            )
        });
    }
    for (at, read, attr) in set.join_all().await {
        let got = read.expect("read");
        let at = at as usize;
        let end = (at + 1024 * 1024).min(data.len());
        assert!(got[..] == data[at..end], "the read at {at} is whole");
        assert_eq!(attr.expect("getattr").size(), data.len() as u64);
    }
    assert!(conn.read_to_end(f, 0).await.expect("read all") == data);
    running.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn file_verbs_over_unix_socket() {
    let dir = std::env::temp_dir().join(format!("s9p-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("9p.sock");
    let _ = std::fs::remove_file(&path);
    let server = memfs::server("/srv", &files(), ServerConfig::default()).expect("tree");
    let shared = Shared::new(server);
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let running = serve(listener, shared, ServeConfig::default());
    let conn = secure9p_transport::client::connect_unix(&path, MSIZE)
        .await
        .expect("connect");
    let root = conn.attach("guest", "/srv").await.expect("attach");
    let f = open(&conn, root, "dir/nested.txt", LOpenFlags::empty()).await;
    assert_eq!(conn.read_to_end(f, 0).await.expect("read"), b"nested\n");
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Connects, then waits until the server closes the socket; true if it did
/// within `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn connection_cap_refuses_only_the_extra_connection() {
    let (addr, _shared, running) = start(ServeConfig {
        max_connections: 2,
        ..ServeConfig::default()
    })
    .await;
    let a = connect_tcp(addr, MSIZE).await.expect("first");
    let b = connect_tcp(addr, MSIZE).await.expect("second");
    let mut third = TcpStream::connect(addr).await.expect("tcp connect");
    assert!(
        closed_by_server(&mut third, Duration::from_secs(5)).await,
        "third connection closed"
    );
    assert_eq!(
        running
            .stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    for conn in [&a, &b] {
        let root = conn.attach("guest", "/srv").await.expect("still served");
        conn.clunk(root).await.expect("clunk");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn idle_and_slow_sender_timeouts_close_only_the_offender() {
    let config = ServeConfig {
        idle_timeout: Duration::from_millis(300),
        frame_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    let (addr, _shared, running) = start(config).await;
    let mut idle = TcpStream::connect(addr).await.expect("idle");
    let mut slow = TcpStream::connect(addr).await.expect("slow");
    // Half a header, then nothing: a slow sender.
    slow.write_all(&[0x13, 0, 0]).await.expect("partial");
    let busy = connect_tcp(addr, MSIZE).await.expect("busy");
    let root = busy.attach("guest", "/srv").await.expect("attach");
    // Keep the good connection busy while the others time out.
    let keep = async {
        for _ in 0..10 {
            busy.getattr(root).await.expect("busy connection served");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (idle_closed, slow_closed, ()) = tokio::join!(
        closed_by_server(&mut idle, Duration::from_secs(5)),
        closed_by_server(&mut slow, Duration::from_secs(5)),
        keep
    );
    assert!(idle_closed && slow_closed);
    assert!(
        running
            .stats()
            .timed_out
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    busy.getattr(root)
        .await
        .expect("still served after the others closed");
    running.shutdown().await;
}

/// An idle connection's read buffer shrinks after a second (to 256 B); the
/// frames after that, small and far larger than the buffer, are served,
/// and an idle connection still times out.
#[tokio::test]
async fn a_connection_idle_past_its_buffer_shrink_is_served_whole_frames_again() {
    let config = ServeConfig {
        idle_timeout: Duration::from_secs(3),
        ..ServeConfig::default()
    };
    let (addr, _shared, running) = start(config).await;
    let conn = connect_tcp(addr, MSIZE).await.expect("connect");
    let root = conn.attach("guest", "/srv").await.expect("attach");
    let f = open(&conn, root, "hello.txt", LOpenFlags::RDWR).await;
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i % 253) as u8).collect();
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(
            conn.write(f, 0, &payload)
                .await
                .expect("large write after idle"),
            payload.len() as u32,
            "round {round}"
        );
        assert_eq!(conn.getattr(f).await.expect("getattr").size(), 60_000);
        let back = conn.read_to_end(f, 0).await.expect("read back");
        assert_eq!(back, payload, "round {round}");
    }
    let mut idle = TcpStream::connect(addr).await.expect("idle");
    assert!(closed_by_server(&mut idle, Duration::from_secs(10)).await);
    running.shutdown().await;
}

#[tokio::test]
async fn oversized_frame_is_refused_from_its_header() {
    let (addr, _shared, running) = start(ServeConfig::default()).await;
    let good = connect_tcp(addr, MSIZE).await.expect("good");
    let mut bad = TcpStream::connect(addr).await.expect("bad");
    // A Tversion, then a header announcing a 100 MiB frame: nothing more is sent.
    let mut v = vec![0u8; 64];
    let n = codec::Frame::new(
        Tag::NOTAG,
        codec::Tversion {
            msize: 8192,
            version: "9P2000.L",
        },
    )
    .encode(&mut v)
    .expect("encode");
    bad.write_all(&v[..n]).await.expect("version");
    bad.write_all(&(100u32 << 20).to_le_bytes())
        .await
        .expect("header");
    let mut reply = vec![0u8; 64];
    let got = bad.read(&mut reply).await.expect("rversion");
    assert!(got > 7, "Rversion came back");
    assert!(
        closed_by_server(&mut bad, Duration::from_secs(5)).await,
        "closed without reading the body"
    );
    let root = good
        .attach("guest", "/srv")
        .await
        .expect("other connection fine");
    good.clunk(root).await.expect("clunk");
    running.shutdown().await;
}

/// A file whose reads are answered later, by the test, through `Shared::complete`.
#[derive(Default)]
struct Slow {
    tokens: Arc<Mutex<Vec<Token>>>,
    cancelled: Arc<Mutex<Vec<Token>>>,
}

impl Node for Slow {
    fn kind(&self) -> NodeKind {
        NodeKind::ReadOnly
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o444,
            ..NodeAttr::default()
        }
    }
    fn read(&mut self, ctx: &IoCtx<'_>, _: &mut Handle, _: u64, _: u32, _: &mut Vec<u8>) -> Io<()> {
        self.tokens.lock().expect("lock").push(ctx.token);
        Io::Defer
    }
    fn cancel(&mut self, token: Token) {
        self.cancelled.lock().expect("lock").push(token);
    }
}

/// A server with a `slow` file (reads deferred) and a `fast` MemFile,
/// served anonymously on an ephemeral loopback port (measured by
/// `observer`, if given).
struct SlowServer {
    addr: std::net::SocketAddr,
    shared: Arc<Shared<Server>>,
    running: secure9p_transport::server::Running,
    tokens: Arc<Mutex<Vec<Token>>>,
    cancelled: Arc<Mutex<Vec<Token>>>,
}

async fn slow_server(observer: Option<Arc<Observer>>) -> SlowServer {
    let slow = Slow::default();
    let (tokens, cancelled) = (slow.tokens.clone(), slow.cancelled.clone());
    let mut ns = Namespace::new();
    let root = ns.root();
    ns.add_file(root, "slow", Box::new(slow)).expect("slow");
    ns.add_file(root, "fast", Box::new(MemFile::new("fast", 64)))
        .expect("fast");
    let config = ServerConfig {
        anonymous: Some(Principal::anonymous(Role::Anonymous, "t")),
        ..ServerConfig::default()
    };
    let server = Server::new(ns, AllowAll, config);
    let shared = match observer {
        Some(o) => Shared::observed(server, o),
        None => Shared::new(server),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let running = serve(listener, shared.clone(), ServeConfig::default());
    SlowServer {
        addr,
        shared,
        running,
        tokens,
        cancelled,
    }
}

#[tokio::test]
async fn deferred_replies_go_out_of_order_and_flush_waits_for_the_drop() {
    let SlowServer {
        addr,
        shared,
        running,
        tokens,
        cancelled,
    } = slow_server(None).await;

    let conn = connect_tcp(addr, MSIZE).await.expect("connect");
    let r = conn.attach("t", "").await.expect("attach");
    let s = open(&conn, r, "slow", LOpenFlags::empty()).await;
    let f = open(&conn, r, "fast", LOpenFlags::empty()).await;

    // Two slow reads in flight; a fast read is answered before either.
    let first = conn
        .start(codec::Tread {
            fid: s,
            offset: 0,
            count: 10,
        })
        .await
        .expect("send");
    let second = conn
        .start(codec::Tread {
            fid: s,
            offset: 0,
            count: 10,
        })
        .await
        .expect("send");
    assert_eq!(&conn.read(f, 0, 10).await.expect("fast")[..], b"fast");
    let (t1, t2) = {
        let t = tokens.lock().expect("lock");
        assert_eq!(t.len(), 2, "both slow reads deferred");
        (t[0], t[1])
    };

    // Complete the second first: replies leave in completion order.
    assert!(shared.complete(t2, Completion::Read(Ok(b"two".to_vec()))));
    match second.wait().await.expect("second").result().expect("ok") {
        Msg::Rread(r) => assert_eq!(r.data, b"two"),
        other => panic!("unexpected {other:?}"),
    }

    // Flush the first: Rflush only after the engine dropped it; completing it
    // later sends nothing.
    let first_tag = first.tag;
    conn.flush(first_tag).await.expect("flush");
    assert_eq!(cancelled.lock().expect("lock").as_slice(), &[t1]);
    assert!(!shared.complete(t1, Completion::Read(Ok(b"late".to_vec()))));
    assert!(matches!(first.wait().await, Err(CallError::Closed)));

    // The connection keeps working.
    assert_eq!(&conn.read(f, 0, 10).await.expect("fast")[..], b"fast");
    running.shutdown().await;
}

#[tokio::test]
async fn shutdown_cancels_pending_work_and_closes_connections() {
    let SlowServer {
        addr,
        shared,
        running,
        cancelled,
        ..
    } = slow_server(None).await;
    let conn = connect_tcp(addr, MSIZE).await.expect("connect");
    let r = conn.attach("t", "").await.expect("attach");
    let s = open(&conn, r, "slow", LOpenFlags::empty()).await;
    let pending = conn
        .start(codec::Tread {
            fid: s,
            offset: 0,
            count: 10,
        })
        .await
        .expect("send");
    // Let the request reach the engine before stopping.
    conn.getattr(r).await.expect("getattr");
    running.shutdown().await;
    assert_eq!(
        cancelled.lock().expect("lock").len(),
        1,
        "pending read cancelled"
    );
    assert!(matches!(pending.wait().await, Err(CallError::Closed)));
    assert_eq!(
        shared.with_engine(|s| s.pending_count(secure9p_core::SessionId(1))),
        0
    );
}

#[tokio::test]
async fn dropping_the_last_connection_handle_closes_the_socket() {
    let (addr, _shared, running) = start(ServeConfig::default()).await;
    let conn = connect_tcp(addr, MSIZE).await.expect("connect");
    let root = conn.attach("guest", "/srv").await.expect("attach");
    conn.getattr(root).await.expect("served");
    let open_now = || {
        running
            .stats()
            .open
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(open_now(), 1);
    drop(conn);
    // The server sees the close and ends the session without an idle timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while open_now() != 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        open_now(),
        0,
        "connection closed after the handle was dropped"
    );
    running.shutdown().await;
}

/// How long a test waits for an observer's figure to show (a writer
/// records a reply just after writing it, so the client may see it first).
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `observer` until `ok` holds, or fails with the last snapshot.
async fn until(observer: &Observer, what: &str, ok: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let start = Instant::now();
    loop {
        let s = observer.snapshot();
        if ok(&s) {
            return s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: never, last\n{}",
            s.render()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn op<'a>(s: &'a Snapshot, name: &str) -> &'a OpSnapshot {
    s.ops
        .iter()
        .find(|o| o.op == name)
        .unwrap_or_else(|| panic!("no {name} in\n{}", s.render()))
}

fn all_answered(s: &Snapshot) -> bool {
    s.ops.iter().all(|o| o.replies == o.requests)
}

#[tokio::test]
async fn deferred_replies_are_timed_when_they_go_out_and_a_flushed_request_never_is() {
    let observer = Arc::new(Observer::new());
    let SlowServer {
        addr,
        shared,
        running,
        tokens,
        ..
    } = slow_server(Some(observer.clone())).await;

    let conn = connect_tcp(addr, MSIZE).await.expect("connect");
    let r = conn.attach("t", "").await.expect("attach");
    let s = conn.walk(r, "slow").await.expect("walk");
    conn.lopen(s, LOpenFlags::empty()).await.expect("open");
    let read = codec::Tread {
        fid: s,
        offset: 0,
        count: 10,
    };
    let failing = conn.start(read).await.expect("send");
    let flushed = conn.start(read).await.expect("send");
    let answered = conn.start(read).await.expect("send");
    let start = Instant::now();
    while tokens.lock().expect("lock").len() < 3 {
        assert!(start.elapsed() < DEADLINE, "the reads were not deferred");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t: Vec<Token> = tokens.lock().expect("lock").clone();
    let s1 = until(&observer, "the open answered", |s| {
        op(s, "Tlopen").replies == 1
    })
    .await;
    let tread = op(&s1, "Tread");
    assert_eq!((tread.requests, tread.replies), (3, 0), "all deferred");

    assert!(shared.complete(t[0], Completion::Read(Err(FsError::Io))));
    assert!(matches!(
        failing.wait().await.expect("reply").result(),
        Err(CallError::Fs(FsError::Io))
    ));
    conn.flush(flushed.tag).await.expect("flush");
    assert!(shared.complete(t[2], Completion::Read(Ok(b"late".to_vec()))));
    answered.wait().await.expect("reply").result().expect("ok");

    let s2 = until(&observer, "the completed reads timed", |s| {
        op(s, "Tread").replies == 2 && op(s, "Tflush").replies == 1
    })
    .await;
    let tread = op(&s2, "Tread");
    assert_eq!(
        (tread.requests, tread.replies, tread.errors),
        (3, 2, 1),
        "the flushed read is counted, never timed\n{}",
        s2.render()
    );
    running.shutdown().await;
}

#[tokio::test]
async fn requests_are_counted_by_type_and_each_reply_timed_and_errors_counted() {
    let files = [("hello.txt", b"hello\n".to_vec())];
    let server = memfs::server("/srv", &files, ServerConfig::default()).expect("tree");
    let observer = Arc::new(Observer::new());
    let shared = Shared::observed(server, observer.clone());
    assert!(shared.observer().is_some());
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.sock");
    let unix = UnixListener::bind(&path).expect("bind unix");
    let on_tcp = serve(tcp, shared.clone(), ServeConfig::default());
    let on_unix = serve(unix, shared.clone(), ServeConfig::default());

    let conn = connect_tcp(addr, MSIZE).await.expect("connect");
    let root = conn.attach("guest", "/srv").await.expect("attach");
    let f = conn.walk(root, "hello.txt").await.expect("walk");
    assert!(matches!(
        conn.walk(root, "missing").await,
        Err(CallError::Fs(FsError::NotFound))
    ));
    conn.lopen(f, LOpenFlags::empty()).await.expect("open");
    assert_eq!(&conn.read(f, 0, 64).await.expect("read")[..], b"hello\n");
    conn.clunk(f).await.expect("clunk");
    // A second client, on the other runner of the same engine.
    let other = connect_unix(&path, MSIZE).await.expect("connect unix");
    other.attach("guest", "/srv").await.expect("attach");

    let s = until(&observer, "every reply timed", |s| {
        all_answered(s) && op(s, "Tattach").replies == 2
    })
    .await;
    let got: Vec<(&str, u64, u64)> = s
        .ops
        .iter()
        .map(|o| (o.op.as_str(), o.requests, o.errors))
        .collect();
    assert_eq!(
        got,
        [
            ("Tlopen", 1, 0),
            ("Tversion", 2, 0),
            ("Tattach", 2, 0),
            ("Twalk", 2, 1),
            ("Tread", 1, 0),
            ("Tclunk", 1, 0),
        ],
        "by type byte order\n{}",
        s.render()
    );
    for o in &s.ops {
        assert_eq!(o.buckets.len(), s.bounds_us.len() + 1, "{}", o.op);
        assert_eq!(o.buckets.last(), Some(&o.replies), "{}", o.op);
        assert!(o.buckets.is_sorted(), "{}: cumulative", o.op);
        assert!(o.sum_ns > 0, "{}: took some time", o.op);
    }
    assert_eq!((s.connections.accepted, s.connections.open), (2, 2));
    assert_eq!(Snapshot::parse(&s.render()), Ok(s.clone()));

    drop((conn, other));
    until(&observer, "both closed", |s| s.connections.open == 0).await;
    on_tcp.shutdown().await;
    on_unix.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_counted_refused() {
    let server = memfs::server("/srv", &[], ServerConfig::default()).expect("tree");
    let observer = Arc::new(Observer::new());
    let shared = Shared::observed(server, observer.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = ServeConfig {
        max_connections: 1,
        ..ServeConfig::default()
    };
    let running = serve(listener, shared, config);
    let kept = connect_tcp(addr, MSIZE).await.expect("connect");
    let mut extra = TcpStream::connect(addr).await.expect("tcp connect");
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(DEADLINE, extra.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    let s = until(&observer, "one refused", |s| s.connections.refused == 1).await;
    assert_eq!((s.connections.accepted, s.connections.open), (1, 1));
    drop(kept);
    until(&observer, "none open", |s| s.connections.open == 0).await;
    running.shutdown().await;
}
