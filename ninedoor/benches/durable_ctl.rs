//! `/queen/ctl` commands per second and audit events per second with the
//! durable log (`--state-dir`: group commit, `fsync` before each reply)
//! against the in-memory hive, side by side in one run: the same in-process
//! host on 127.0.0.1, `CONNECTIONS` Queen connections each alternating
//! `spawn` and `kill` of its own worker for `SECONDS`. Not run in CI:
//!
//! ```sh
//! cargo bench -p ninedoor --features std --bench durable_ctl
//! ```
//!
//! Set `DURABLE_CTL_DIR` to put the state directory on another disk
//! (default: a temp dir under the system's).

use ninedoor::host::{HostConfig, NoBridge};
use secure9p_transport::client::{CallError, connect_tcp};
use std::path::Path;
use std::time::{Duration, Instant};

/// Concurrent Queen connections (each keeps one write in flight), unless
/// `DURABLE_CTL_CONNECTIONS` says otherwise: group commit shares one
/// `fsync` among the writes in flight, so this is what it has to share.
const CONNECTIONS: usize = 32;
/// Seconds of load per mode.
const SECONDS: u64 = 5;

struct Measured {
    commands: u64,
    elapsed: Duration,
}

async fn load(addr: std::net::SocketAddr, ticket: &str, conn: usize, until: Instant) -> u64 {
    let Ok(c) = connect_tcp(addr, 64 * 1024).await else {
        return 0;
    };
    let Ok(root) = c.attach("queen", ticket).await else {
        return 0;
    };
    let open = async {
        let fid = c.walk(root, "queen/ctl").await?;
        c.lopen(fid, ninedoor::secure9p_core::codec::LOpenFlags::WRONLY)
            .await?;
        Ok::<_, CallError>(fid)
    };
    let Ok(ctl) = open.await else {
        return 0;
    };
    let spawn = format!("{{\"cmd\":\"spawn\",\"role\":\"heartbeat\",\"id\":\"b{conn}\"}}\n");
    let kill = format!("{{\"cmd\":\"kill\",\"id\":\"b{conn}\"}}\n");
    let mut n = 0u64;
    while Instant::now() < until {
        let line = if n.is_multiple_of(2) { &spawn } else { &kill };
        if c.write(ctl, 0, line.as_bytes()).await.is_err() {
            break;
        }
        n += 1;
    }
    n
}

fn connections() -> usize {
    std::env::var("DURABLE_CTL_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(CONNECTIONS)
}

async fn measure(state: Option<&Path>, tmp: &Path, name: &str) -> Measured {
    let mut config = HostConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        ticket_file: Some(tmp.join(format!("{name}.ticket"))),
        ..HostConfig::default()
    };
    config.hive.max_workers = connections();
    config.state.dir = state.map(Path::to_path_buf);
    let host = ninedoor::host::Host::start_with(&config, NoBridge)
        .await
        .expect("host starts");
    let ticket = host.queen_ticket();
    let addr = host.tcp_addr();
    let start = Instant::now();
    let until = start + Duration::from_secs(SECONDS);
    let tasks: Vec<_> = (0..connections())
        .map(|i| {
            let t = ticket.clone();
            tokio::spawn(async move { load(addr, &t, i, until).await })
        })
        .collect();
    let mut commands = 0;
    for t in tasks {
        commands += t.await.unwrap_or(0);
    }
    let elapsed = start.elapsed();
    host.shutdown().await;
    Measured { commands, elapsed }
}

fn main() {
    let base = std::env::var_os("DURABLE_CTL_DIR").map(std::path::PathBuf::from);
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let state = tmp.path().join("state");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let memory = rt.block_on(measure(None, tmp.path(), "memory"));
    let durable = rt.block_on(measure(Some(&state), tmp.path(), "durable"));
    let lines = std::fs::read_dir(&state)
        .expect("state dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("queen.log"))
        .map(|e| {
            std::fs::read(e.path())
                .map(|b| b.iter().filter(|c| **c == b'\n').count())
                .unwrap_or(0)
        })
        .sum::<usize>() as f64;
    // Events per command, from the durable log (the same lines in memory).
    let per = lines / durable.commands.max(1) as f64;
    let rate = |m: &Measured| m.commands as f64 / m.elapsed.as_secs_f64();
    let (mr, dr) = (rate(&memory), rate(&durable));
    println!(
        "durable_ctl: {} connections x {SECONDS} s, spawn/kill, state dir {}",
        connections(),
        state.display()
    );
    println!(
        "in-memory  {:>9.0} ctl commands/s  {:>9.0} audit events/s",
        mr,
        mr * per
    );
    println!(
        "durable    {:>9.0} ctl commands/s  {:>9.0} audit events/s  ({lines} lines on disk, {per:.2} per command)",
        dr,
        dr * per
    );
    println!("ratio      {:.2} of in-memory", dr / mr);
}
