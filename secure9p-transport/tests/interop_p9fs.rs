//! The pure-Python p9fs client (PyPI `p9fs` 0.0.4, its own py9p inside)
//! against the memfs server running in this test: `ls`, `cat` of every
//! file, `info` sizes, and a file overwritten over several Twrites and read
//! back, checked both in what p9fs reports and in the server's tree.
//!
//! `scripts/setup.sh` installs p9fs into `target/p9venv`; without that venv
//! the test prints a `SKIP:` line and passes.

#[allow(dead_code)] // each interop test binary uses a part of the helpers
mod interop_common;

use interop_common::{Memfs, repo_root, run_async, sha256_hex, skip};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const HELLO: &str = "hello from secure9p, read by p9fs\n";

/// What `scripts/p9fs-client.py --write` writes: the same 800 lines.
fn payload() -> Vec<u8> {
    (0..800)
        .flat_map(|i| format!("line {i:05} written by p9fs\n").into_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p9fs_lists_reads_and_writes_memfs() {
    let python = repo_root().join("target/p9venv/bin/python");
    if !python.is_file() {
        skip(&format!(
            "p9fs interop: no venv at {} (scripts/setup.sh installs p9fs==0.0.4 there)",
            python.display()
        ));
        return;
    }
    let started = Instant::now();
    let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let files = [
        ("hello.txt", HELLO.as_bytes().to_vec()),
        ("binary.bin", binary.clone()),
        ("target.txt", b"to be overwritten\n".to_vec()),
        ("dir/nested.txt", b"nested\n".to_vec()),
    ];
    let server = Memfs::start("/srv", &files).await;

    let mut cmd = Command::new(&python);
    cmd.arg(repo_root().join("scripts/p9fs-client.py"))
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .arg("/srv")
        .args(["--write", "target.txt"]);
    let done = run_async(cmd, Duration::from_secs(60)).await;
    let stdout = done.text();
    println!("--- p9fs-client.py ---\n{stdout}{}", done.stderr);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("p9fs-client.py printed no JSON ({e}): {stdout}"));
    assert!(
        done.status.success() && report.get("error").is_none(),
        "p9fs failed: {report:#}"
    );

    // p9fs asks for 8 KiB and gets it.
    assert_eq!(report["msize"], 8192);
    assert_eq!(
        report["ls"],
        serde_json::json!(["binary.bin", "dir", "hello.txt", "target.txt"])
    );

    // Every file as p9fs read it, before the write.
    let f = &report["files"];
    assert_eq!(f["hello.txt"]["text"], HELLO);
    assert_eq!(f["hello.txt"]["size"], HELLO.len());
    assert_eq!(f["binary.bin"]["size"], binary.len());
    assert_eq!(f["binary.bin"]["len"], binary.len());
    assert_eq!(f["binary.bin"]["sha256"], sha256_hex(&binary));
    assert_eq!(f["target.txt"]["text"], "to be overwritten\n");

    // The write: p9fs reads back what it wrote, and so does the server.
    let want = payload();
    let w = &report["write"];
    assert_eq!(w["path"], "target.txt");
    assert_eq!(w["wrote"], want.len());
    assert_eq!(w["size_after"], want.len(), "info after the write");
    assert_eq!(w["read_back_equal"], true);
    assert_eq!(w["sha256"], sha256_hex(&want));
    assert!(
        server.contents("target.txt") == want,
        "the server holds what p9fs wrote"
    );

    server.running.shutdown().await;
    println!(
        "interop_p9fs: passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
