//! The bridge over real TCP sockets on the loopback: in process through
//! the transport's runner, and the `gpu-bridge-host --listen` binary with
//! its own worker threads, both driven by the transport's client.

mod common;

use common::*;
use gpu_bridge::{ServeOptions, StatusLine, server};
use secure9p_core::codec::LOpenFlags;
use secure9p_transport::client::{Connection, connect_tcp};
use secure9p_transport::server::{ServeConfig, Shared, serve};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MSIZE: u32 = 64 * 1024;

async fn write(
    conn: &Connection,
    root: secure9p_core::codec::Fid,
    path: &str,
    data: &[u8],
) -> String {
    let fid = conn.walk(root, path).await.unwrap();
    conn.lopen(fid, LOpenFlags::RDWR).await.unwrap();
    conn.write(fid, 0, data).await.unwrap();
    let reply = conn.read_to_end(fid, 0).await.unwrap();
    conn.clunk(fid).await.unwrap();
    String::from_utf8(reply).unwrap()
}

async fn cat(conn: &Connection, root: secure9p_core::codec::Fid, path: &str) -> String {
    let fid = conn.walk(root, path).await.unwrap();
    conn.lopen(fid, LOpenFlags::empty()).await.unwrap();
    let text = conn.read_to_end(fid, 0).await.unwrap();
    conn.clunk(fid).await.unwrap();
    String::from_utf8(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_over_tcp_in_process() {
    let (bridge, _) = bridge(1);
    let srv = server(
        &bridge,
        ServeOptions {
            tickets: None,
            anonymous: true,
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = serve(listener, Shared::new(srv), ServeConfig::default());

    let conn = connect_tcp(addr, MSIZE).await.unwrap();
    let root = conn.attach("dev", "").await.unwrap();
    let reply = write(
        &conn,
        root,
        "gpu/0/ctl",
        b"LEASE holder=w1 mem_mb=64 ttl_s=60",
    )
    .await;
    assert!(reply.starts_with("OK LEASE granted"), "{reply}");
    let reply = write(
        &conn,
        root,
        "gpu/0/job",
        vadd_job("tcp-1").to_json().as_bytes(),
    )
    .await;
    assert_eq!(reply, "QUEUED tcp-1 priority=0 position=1\n");
    let b = bridge.clone();
    tokio::task::spawn_blocking(move || b.run_ready(0, &mut gpu_bridge::CpuExecutor))
        .await
        .unwrap();
    let status = cat(&conn, root, "gpu/0/status").await;
    let last: StatusLine = status.lines().last().unwrap().parse().unwrap();
    assert!(
        matches!(last, StatusLine::Ok { ref job_id, .. } if job_id == "tcp-1"),
        "{status}"
    );
    running.shutdown().await;
}

/// Kills the child when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_binary_serves_and_runs_jobs() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_gpu-bridge-host"))
            .args([
                "--mock",
                "--gpus",
                "2",
                "--listen",
                "127.0.0.1:0",
                "--anonymous",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();

    let conn = connect_tcp(addr.as_str(), MSIZE).await.unwrap();
    let root = conn.attach("dev", "").await.unwrap();
    let info = cat(&conn, root, "gpu/1/info").await;
    assert!(info.contains("\"id\":\"1\""), "{info}");
    write(
        &conn,
        root,
        "gpu/1/ctl",
        b"LEASE holder=w1 mem_mb=64 ttl_s=60",
    )
    .await;
    let matmul = gpu_bridge::Workload::Matmul {
        m: 2,
        k: 2,
        n: 2,
        a: vec![1.0, 2.0, 3.0, 4.0],
        b: vec![5.0, 6.0, 7.0, 8.0],
    };
    let job = gpu_bridge::JobDescriptor::inline("bin-1", &matmul);
    write(&conn, root, "gpu/1/job", job.to_json().as_bytes()).await;
    // The host's own worker runs it; poll for the outcome, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = cat(&conn, root, "gpu/1/status").await;
        if status
            .lines()
            .any(|l| l.starts_with("OK ") || l.starts_with("ERR "))
        {
            break status;
        }
        assert!(Instant::now() < deadline, "no outcome in time: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let states: Vec<&str> = status
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(states, ["QUEUED", "RUNNING", "OK"], "{status}");
    assert!(
        status.lines().last().unwrap().ends_with(" 19 22 43 50"),
        "{status}"
    );
}
