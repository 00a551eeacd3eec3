//! One whole run: sample the server's memory, set up every connection in
//! batches, start the load on all of them at once, wait for the last reply
//! and summarise. Failed connections are counted as errors, not fatal: a
//! server that refuses some of 1,000 connections is a result too.

use crate::config::LoadConfig;
use crate::memwatch::MemWatch;
use crate::report::{Outcome, Report};
use crate::session::Session;
use crate::tally::Recorder;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Runs the load `cfg` describes (already validated) and reports on it.
pub async fn run(cfg: LoadConfig) -> Report {
    let cfg = Arc::new(cfg);
    let watch = cfg.server_pid.map(MemWatch::start);
    let rec = Arc::new(Recorder::default());

    let setup_start = Instant::now();
    let batch = Arc::new(Semaphore::new(cfg.connect_batch));
    let mut connecting = JoinSet::new();
    for id in 0..cfg.connections {
        let (cfg, batch) = (cfg.clone(), batch.clone());
        connecting.spawn(async move {
            let _slot = batch.acquire_owned().await;
            (id, Session::establish(&cfg).await)
        });
    }
    let mut sessions = Vec::with_capacity(cfg.connections);
    while let Some(joined) = connecting.join_next().await {
        match joined {
            Ok((id, Ok(s))) => sessions.push((id, s)),
            Ok((id, Err(e))) => rec.shard(id).error(e.kind()),
            Err(e) => rec.shard(0).error(format!("setup task: {e}")),
        }
    }
    let setup = setup_start.elapsed();
    let (msize, large_chunk) = sessions
        .first()
        .map_or((0, 0), |(_, s)| (s.msize(), s.large_chunk()));
    let connected = sessions.len();

    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut load = JoinSet::new();
    for (id, s) in sessions {
        let (cfg, rec) = (cfg.clone(), rec.clone());
        load.spawn(async move {
            let r = s.drive(id, &cfg, deadline, &rec).await;
            if let Err(e) = &r {
                rec.shard(id).error(e.kind());
            }
            r.is_err()
        });
    }
    let mut connections_lost = 0;
    while let Some(joined) = load.join_next().await {
        match joined {
            Ok(false) => {}
            Ok(true) => connections_lost += 1,
            Err(e) => {
                connections_lost += 1;
                rec.shard(0).error(format!("load task: {e}"));
            }
        }
    }
    let elapsed = start.elapsed();
    let server_memory = match watch {
        Some(w) => w.finish().await,
        None => None,
    };
    let out = Outcome {
        tally: rec.total(),
        msize,
        large_chunk,
        connected,
        connections_lost,
        setup,
        elapsed,
        server_memory,
    };
    Report::new(&cfg, &out)
}
