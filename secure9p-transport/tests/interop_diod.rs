//! Debian's diod, both ways round, over loopback TCP:
//! - our client (`Connection`) against the `diod` server exporting a temp
//!   dir: attach, walk, read, write (seen in the host file), readdir,
//!   getattr (sizes match the host), clunk, and diod's smaller msize;
//! - diod's clients against our memfs server: `diodcat` prints exactly the
//!   contents, `diodls` lists exactly the names, `diodls -l` shows the
//!   sizes, a missing file makes `diodcat` fail, and `diodload` copies
//!   `ctl/zero` to `ctl/null` at a nonzero rate.
//!
//! Without diod's binaries each test prints a `SKIP:` line and passes
//! (`scripts/setup.sh` installs Debian's `diod`, so CI runs them).

#[allow(dead_code)] // each interop test binary uses a part of the helpers
mod interop_common;

use interop_common::{
    ChildGuard, Finished, Memfs, TempDir, euid, find_tool, free_port, pseudo_random, run_async,
    skip, wait_listening,
};
use secure9p_core::FsError;
use secure9p_core::codec::{IOHDRSZ, LOpenFlags, QidType};
use secure9p_transport::client::{CallError, Connection, connect_tcp};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What our client proposes; diod answers with its own cap.
const CLIENT_MSIZE: u32 = 1024 * 1024 + 24;
/// diod 1.0.24's largest msize.
const DIOD_MSIZE: u32 = 64 * 1024;
/// Limit for one diod client command (they also get `-t` where they take it).
const TOOL_LIMIT: Duration = Duration::from_secs(30);

/// Everything a directory listing of `conn`'s `path` holds, sorted.
async fn list(conn: &Connection, root: secure9p_core::codec::Fid, path: &str) -> Vec<String> {
    let dir = conn.walk(root, path).await.expect("walk to directory");
    let (qid, _) = conn
        .lopen(dir, LOpenFlags::DIRECTORY)
        .await
        .expect("open directory");
    assert!(qid.ty.contains(QidType::DIR), "{path} opens as a directory");
    let mut names: Vec<String> = conn
        .readdir(dir)
        .await
        .expect("readdir")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    conn.clunk(dir).await.expect("clunk directory");
    names.sort();
    names
}

/// Connects to a diod that has just started listening. diod can reset a
/// connection that arrives while it is still starting up (seen once in CI
/// right after the listening probe), so a reset or refusal is retried for a
/// few seconds; any other error, or a reset after that, fails the test.
async fn connect_when_ready(addr: SocketAddr) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match connect_tcp(addr, CLIENT_MSIZE).await {
            Ok(conn) => return conn,
            Err(CallError::Io(e))
                if Instant::now() < deadline
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused
                    ) =>
            {
                eprintln!("diod not ready yet ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("connect to diod at {addr}: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_against_diod() {
    let Some(diod) = find_tool("diod") else {
        skip("diod interop: no `diod` binary (Debian package diod; scripts/setup.sh installs it)");
        return;
    };
    let started = Instant::now();
    let tmp = TempDir::new("interop-diod");
    let export = tmp.path().join("export");
    let host = |p: &str| export.join(p);
    std::fs::create_dir_all(host("sub")).expect("mkdir");
    let hello = b"hello from the host, served by diod\n".to_vec();
    let big = pseudo_random(300_000);
    std::fs::write(host("hello.txt"), &hello).expect("write");
    std::fs::write(host("big.bin"), &big).expect("write");
    std::fs::write(host("data.txt"), b"0123456789\n").expect("write");
    std::fs::write(host("upload.bin"), b"").expect("write");
    std::fs::write(host("sub/inner.txt"), b"inner\n").expect("write");

    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = std::fs::File::create(tmp.path().join("diod.log")).expect("log file");
    let mut child = ChildGuard(
        Command::new(&diod)
            .args(["-f", "-n", "-L", "stderr", "-l"])
            .arg(addr.to_string())
            .arg("-e")
            .arg(&export)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start diod"),
    );
    let log_path = tmp.path().join("diod.log");
    let diod_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    if let Err(why) = wait_listening(addr, Duration::from_secs(10), &mut child.0) {
        panic!(
            "diod did not start: {why}\n--- diod log ---\n{}",
            diod_log()
        );
    }

    let conn = connect_when_ready(addr).await;
    assert_eq!(conn.msize(), DIOD_MSIZE, "diod answers with its cap");
    // diod (with -n) maps the attach to the numeric uid: ours, so the files
    // this test made are ours to read and write.
    let uid = euid();
    let uname = if uid == 0 {
        "root".to_string()
    } else {
        std::env::var("USER").unwrap_or_default()
    };
    let export_name = export.to_str().expect("UTF-8 temp path");
    let root = conn
        .attach_as(&uname, export_name, uid)
        .await
        .expect("attach to diod's export");

    // Read: small, and larger than one msize (several Treads).
    for (path, want) in [("hello.txt", &hello), ("big.bin", &big)] {
        let f = conn.walk(root, path).await.expect("walk");
        let (qid, _) = conn.lopen(f, LOpenFlags::empty()).await.expect("lopen");
        assert!(!qid.ty.contains(QidType::DIR));
        assert_eq!(&conn.read_to_end(f, 0).await.expect("read"), want, "{path}");
        let attr = conn.getattr(f).await.expect("getattr");
        let on_host = std::fs::metadata(host(path)).expect("stat").len();
        assert_eq!(attr.size(), on_host, "{path}: getattr size = host size");
        assert_eq!(attr.qid(), qid, "{path}: one qid for walk, open, getattr");
        conn.clunk(f).await.expect("clunk");
    }

    // Write at offsets: the host file changes.
    let f = conn.walk(root, "data.txt").await.expect("walk");
    conn.lopen(f, LOpenFlags::RDWR).await.expect("lopen rdwr");
    assert_eq!(conn.write(f, 0, b"ABCDE").await.expect("write"), 5);
    assert_eq!(conn.write(f, 11, b"tail\n").await.expect("append"), 5);
    let want = b"ABCDE56789\ntail\n";
    assert_eq!(std::fs::read(host("data.txt")).expect("read host"), want);
    assert_eq!(conn.read_to_end(f, 0).await.expect("read back"), want);
    assert_eq!(
        conn.getattr(f).await.expect("getattr").size(),
        want.len() as u64
    );
    conn.clunk(f).await.expect("clunk");

    // A write of several msize-sized Twrites, truncating first.
    let f = conn.walk(root, "upload.bin").await.expect("walk");
    conn.lopen(f, LOpenFlags::WRONLY | LOpenFlags::TRUNC)
        .await
        .expect("lopen wronly|trunc");
    // diod takes at most msize - IOHDRSZ bytes per Twrite.
    let chunk = (conn.msize() - IOHDRSZ) as usize;
    let mut at = 0;
    while at < big.len() {
        let end = (at + chunk).min(big.len());
        let n = conn
            .write(f, at as u64, &big[at..end])
            .await
            .expect("write");
        assert!(n > 0, "diod took no bytes at {at}");
        at += n as usize;
    }
    conn.clunk(f).await.expect("clunk");
    assert_eq!(std::fs::read(host("upload.bin")).expect("read host"), big);

    // Readdir: exactly the names on the host.
    assert_eq!(
        list(&conn, root, "").await,
        ["big.bin", "data.txt", "hello.txt", "sub", "upload.bin"]
    );
    assert_eq!(list(&conn, root, "sub").await, ["inner.txt"]);

    // A missing name is ENOENT; a clunked fid is gone.
    assert!(matches!(
        conn.walk(root, "missing.txt").await,
        Err(CallError::Fs(FsError::NotFound))
    ));
    let f = conn
        .walk(root, "sub/inner.txt")
        .await
        .expect("walk two names");
    conn.clunk(f).await.expect("clunk");
    assert!(conn.getattr(f).await.is_err(), "a clunked fid is unknown");
    conn.clunk(root).await.expect("clunk root");

    println!("--- diod log ---\n{}", diod_log());
    println!(
        "interop_diod (our client -> diod): passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Runs one of diod's client tools against `addr` with `args`.
async fn diod_tool(tool: &Path, addr: SocketAddr, args: &[&str]) -> Finished {
    let mut cmd = Command::new(tool);
    cmd.arg("-s").arg(addr.to_string()).args(args);
    let done = run_async(cmd, TOOL_LIMIT).await;
    println!(
        "$ {} {args:?} -> {}\n{}{}",
        tool.display(),
        done.status,
        done.text(),
        done.stderr
    );
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diod_clients_against_memfs() {
    let tools: Option<Vec<_>> = ["diodcat", "diodls", "diodload"]
        .iter()
        .map(|t| find_tool(t))
        .collect();
    let Some(tools) = tools else {
        skip(
            "diod interop: no diodcat/diodls/diodload (Debian package diod; scripts/setup.sh installs it)",
        );
        return;
    };
    let (diodcat, diodls, diodload) = (&tools[0], &tools[1], &tools[2]);
    let started = Instant::now();
    let hello = b"hello from secure9p memfs\n".to_vec();
    let big = pseudo_random(300_000);
    let files = [
        ("hello.txt", hello.clone()),
        ("big.bin", big.clone()),
        ("log.txt", Vec::new()),
        ("dir/nested.txt", b"nested\n".to_vec()),
    ];
    let server = Memfs::start("/srv", &files).await;
    let addr = server.addr;
    let srv = ["-t", "10", "-a", "/srv"];

    // diodcat prints exactly the bytes: one small file, one spanning many
    // 64 KiB reads, and two files in one session.
    let with_srv = |more: &[&'static str]| [&srv[..], more].concat();
    let cat = |names: &[&'static str]| {
        let args = with_srv(names);
        async move { diod_tool(diodcat, addr, &args).await }
    };
    let done = cat(&["hello.txt"]).await;
    assert!(done.status.success());
    assert_eq!(done.stdout, hello);
    let done = cat(&["big.bin"]).await;
    assert!(done.status.success());
    assert!(
        done.stdout == big,
        "diodcat big.bin differs ({} bytes)",
        done.stdout.len()
    );
    let done = cat(&["hello.txt", "dir/nested.txt"]).await;
    assert!(done.status.success());
    assert_eq!(done.stdout, [&hello[..], b"nested\n"].concat());

    // A missing file: rc 1 and a message naming it.
    let done = cat(&["missing.txt"]).await;
    assert_eq!(
        done.status.code(),
        Some(1),
        "diodcat of a missing file fails"
    );
    assert!(done.stdout.is_empty());
    assert!(
        done.stderr.contains("missing.txt") && done.stderr.contains("No such file"),
        "diodcat says why: {}",
        done.stderr
    );

    // diodls: exactly the names, without . and ..
    let ls = |extra: &[&'static str]| {
        let args = with_srv(extra);
        async move { diod_tool(diodls, addr, &args).await }
    };
    let sorted_lines = |d: &Finished| {
        let mut v: Vec<String> = d.text().lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let done = ls(&[]).await;
    assert!(done.status.success());
    assert_eq!(
        sorted_lines(&done),
        ["big.bin", "dir", "hello.txt", "log.txt"]
    );
    let done = ls(&["dir"]).await;
    assert!(done.status.success());
    assert_eq!(sorted_lines(&done), ["nested.txt"]);

    // diodls -l: ls-style lines (mode nlink user group size date name) for
    // every entry including . and .., with the sizes of the tree. It walks
    // each name from the directory fid it is reading.
    let done = ls(&["-l"]).await;
    assert!(done.status.success(), "diodls -l: {}", done.stderr);
    assert!(
        done.stderr.is_empty(),
        "diodls -l complained: {}",
        done.stderr
    );
    let text = done.text();
    let long: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let entry = |name: &str| {
        long.iter()
            .find(|f| f.last() == Some(&name))
            .unwrap_or_else(|| panic!("diodls -l lists no {name}:\n{text}"))
    };
    assert_eq!(long.len(), 6, "., .. and four names:\n{text}");
    for (name, size) in [
        ("hello.txt", hello.len()),
        ("big.bin", big.len()),
        ("log.txt", 0),
    ] {
        assert!(entry(name)[0].starts_with('-'), "{name} is a file");
        assert_eq!(entry(name)[4], size.to_string(), "{name} size");
    }
    for name in [".", "..", "dir"] {
        assert!(entry(name)[0].starts_with('d'), "{name} is a directory");
    }

    // diodload: threads copying ctl/zero to ctl/null for 2 s.
    let done = diod_tool(diodload, addr, &["-n", "4", "-r", "2"]).await;
    assert!(done.status.success());
    let out = format!("{}{}", done.text(), done.stderr);
    // "diodload: N ops/s, R rMB/s, W wMB/s" (it exits 0 even on failure).
    let rates: Vec<u64> = out
        .lines()
        .find_map(|l| l.strip_prefix("diodload: "))
        .unwrap_or_else(|| panic!("no diodload rate line in:\n{out}"))
        .split(", ")
        .map(|f| {
            f.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unparsable diodload field {f:?} in:\n{out}"))
        })
        .collect();
    assert_eq!(rates.len(), 3, "ops/s, rMB/s, wMB/s: {out}");
    assert!(rates[0] > 0, "diodload ran no operations: {out}");
    assert!(
        rates[1] > 0 && rates[2] > 0,
        "diodload moved no data: {out}"
    );
    assert_eq!(
        server
            .running
            .stats()
            .framing_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no diod client broke framing"
    );

    server.running.shutdown().await;
    println!(
        "interop_diod (diod clients -> memfs): passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
