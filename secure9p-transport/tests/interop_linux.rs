//! The Linux kernel's 9P client (v9fs, booted under QEMU by
//! `scripts/linux-client/run.sh`) against the memfs server running in this
//! test on 127.0.0.1: `ls -la`, `cat`, `stat`, two `>>` appends, the
//! SHA-256 of a 4 MiB file read at msize 512 KiB, and the msize the mount
//! negotiated. The guest's output is checked line by line and the appended
//! lines are checked in the server's own tree.
//!
//! Where QEMU or the kernel cannot be had, run.sh exits 77 with a `SKIP:`
//! line; the test prints it and passes. Run it alone with
//! `cargo test -p secure9p-transport --test interop_linux -- --nocapture`.

#[allow(dead_code)] // each interop test binary uses a part of the helpers
mod interop_common;

use interop_common::{Memfs, TempDir, pseudo_random, repo_root, run_async, sha256_hex, skip};
use std::process::Command;
use std::time::{Duration, Instant};

const HELLO: &str = "hello from secure9p over the Linux v9fs client\n";
/// Large enough that the kernel reads it in many msize-sized `Tread`s.
const BIG_LEN: usize = 4 * 1024 * 1024;
/// What the guest asks for; the server's cap is above it, so this is what
/// the mount must end up with (the reply is min(client, server)).
const MSIZE: u32 = 512 * 1024;
/// QEMU's own limit for the whole guest run, boot included (a boot takes
/// about 7 s under TCG; the 4 MiB read a few more).
const GUEST_TIMEOUT_S: u64 = 240;

/// Each step prints a `@@ name` header, so the test can cut the output into
/// sections and pin each check on its own step.
const GUEST_SCRIPT: &str = r#"
echo "@@ ls"; ls -la /mnt
echo "@@ cat"; cat /mnt/hello.txt
echo "@@ stat"; stat -c 'name=%n size=%s type=%F' /mnt/big.bin
echo "@@ nested"; cat /mnt/dir/nested.txt
echo "@@ append"
echo "first line" >> /mnt/log.txt
echo "second line" >> /mnt/log.txt
cat /mnt/log.txt
echo "@@ sha256"; sha256sum /mnt/big.bin
echo "@@ mounts"; cat /proc/mounts | grep 9p
echo "@@ done"
"#;

/// The guest's output between the harness's BEGIN/END markers, cut at the
/// `@@ name` headers: (name, lines).
fn sections(stdout: &str) -> Vec<(String, Vec<String>)> {
    let body = stdout
        .split_once("=== GUEST BEGIN ===\n")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no GUEST BEGIN in:\n{stdout}"));
    let body = body
        .split_once("=== GUEST END")
        .map_or(body, |(inside, _)| inside);
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in body.lines() {
        match line.strip_prefix("@@ ") {
            Some(name) => out.push((name.to_string(), Vec::new())),
            None => {
                if let Some((_, lines)) = out.last_mut() {
                    lines.push(line.to_string());
                }
            }
        }
    }
    out
}

fn section<'a>(all: &'a [(String, Vec<String>)], name: &str) -> &'a [String] {
    all.iter()
        .find(|(n, _)| n == name)
        .map(|(_, lines)| lines.as_slice())
        .unwrap_or_else(|| panic!("the guest printed no `@@ {name}` section"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_v9fs_client_lists_reads_appends_and_hashes() {
    let started = Instant::now();
    let big = pseudo_random(BIG_LEN);
    let big_sha = sha256_hex(&big);
    let files = [
        ("hello.txt", HELLO.as_bytes().to_vec()),
        ("log.txt", Vec::new()),
        ("big.bin", big),
        ("dir/nested.txt", b"nested\n".to_vec()),
    ];
    let server = Memfs::start("/srv", &files).await;

    let tmp = TempDir::new("interop-linux");
    let guest = tmp.path().join("guest.sh");
    std::fs::write(&guest, GUEST_SCRIPT).expect("write guest script");
    let mut cmd = Command::new(repo_root().join("scripts/linux-client/run.sh"));
    cmd.arg("--port")
        .arg(server.addr.port().to_string())
        .arg("--opts")
        .arg(format!("aname=/srv,msize={MSIZE},uname=root"))
        .arg("--timeout")
        .arg(GUEST_TIMEOUT_S.to_string())
        .arg(&guest);
    // run.sh's own timeout kills QEMU; this one only catches a hung script.
    let done = run_async(cmd, Duration::from_secs(GUEST_TIMEOUT_S + 120)).await;
    let stdout = done.text();
    println!(
        "--- run.sh stdout ---\n{stdout}--- run.sh stderr ---\n{}",
        done.stderr
    );

    if done.status.code() == Some(77) {
        let why = stdout
            .lines()
            .find_map(|l| l.strip_prefix("SKIP: "))
            .unwrap_or("run.sh exited 77");
        skip(&format!("Linux v9fs interop: {why}"));
        server.running.shutdown().await;
        return;
    }
    assert_eq!(
        done.status.code(),
        Some(0),
        "run.sh failed: {}",
        done.status
    );
    assert!(stdout.contains("=== MOUNT OK ==="), "the mount failed");
    assert!(
        stdout.contains("=== GUEST END rc=0 ==="),
        "a guest command failed"
    );
    assert!(stdout.contains("=== UMOUNT rc=0 ==="), "umount failed");
    let all = sections(&stdout);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ls", "cat", "stat", "nested", "append", "sha256", "mounts", "done"
        ],
        "every step ran, in order"
    );

    // `ls -la`: every name, with big.bin's size and dir as a directory.
    let ls = section(&all, "ls");
    let entry = |name: &str| -> Vec<&str> {
        ls.iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.last() == Some(&name))
            .unwrap_or_else(|| panic!("ls -la lists no {name}: {ls:#?}"))
    };
    for name in ["big.bin", "dir", "hello.txt", "log.txt", ".", ".."] {
        entry(name);
    }
    assert_eq!(entry("big.bin")[4], BIG_LEN.to_string(), "big.bin size");
    assert_eq!(entry("hello.txt")[4], HELLO.len().to_string());
    assert!(entry("dir")[0].starts_with('d'), "dir is a directory");
    assert!(entry("hello.txt")[0].starts_with("-rw-r--r--"));

    assert_eq!(section(&all, "cat"), [HELLO.trim_end()]);
    assert_eq!(
        section(&all, "stat"),
        [format!(
            "name=/mnt/big.bin size={BIG_LEN} type=regular file"
        )]
    );
    assert_eq!(section(&all, "nested"), ["nested"]);
    assert_eq!(section(&all, "append"), ["first line", "second line"]);

    // The whole 4 MiB came through unchanged.
    let sha = section(&all, "sha256");
    assert_eq!(sha, [format!("{big_sha}  /mnt/big.bin")], "sha256sum");

    // The mount negotiated what the guest asked for: 512 KiB.
    let mounts = section(&all, "mounts");
    assert_eq!(mounts.len(), 1, "one 9p mount: {mounts:?}");
    let fields: Vec<&str> = mounts[0].split_whitespace().collect();
    assert_eq!(fields[1..3], ["/mnt", "9p"], "{}", mounts[0]);
    let msize: u32 = fields[3]
        .split(',')
        .find_map(|o| o.strip_prefix("msize="))
        .unwrap_or_else(|| panic!("no msize in {}", mounts[0]))
        .parse()
        .expect("msize is a number");
    assert!(msize >= 512 * 1024, "msize {msize} below 512 KiB");
    assert_eq!(msize, MSIZE, "min(client, server)");
    assert!(fields[3].split(',').any(|o| o == "aname=/srv"));

    // The server holds what the guest appended.
    assert_eq!(server.contents("log.txt"), b"first line\nsecond line\n");
    assert_eq!(server.contents("hello.txt"), HELLO.as_bytes(), "untouched");
    assert_eq!(
        server
            .running
            .stats()
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the guest had exactly one connection"
    );
    server.running.shutdown().await;
    println!(
        "interop_linux: passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
