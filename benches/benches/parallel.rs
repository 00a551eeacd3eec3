//! Sessions on several threads through one engine, without sockets: what
//! the runners' lock lets through. Each thread drives its own warm session
//! of one engine holding a file of 1 MiB, open: the namespace [`Server`]
//! (a `MemFile`; groups `parallel/…`) and the file server [`FsServer`]
//! over `MemFs` (groups `parallel-fs/…`), in bursts of 16 requests per lock
//! as a connection's batch goes, two ways:
//!
//! - `mutex`: the engine behind one `Mutex`, every request through
//!   `handle_replies` (the runners before sessions were served in
//!   parallel);
//! - `rwlock`: the engine behind one `RwLock`, every request through
//!   `handle_concurrent` under its shared side (the runners now; these
//!   requests never need the exclusive side).
//!
//! with 1 and 2 threads (`threads/1`, `threads/2`), for `Tgetattr` and for
//! `Tread` of 4 KiB. The throughput is requests per second over all
//! threads; the ratio of 2 threads to 1 is what parallel sessions buy (at
//! most 2 on two cores). Every reply is checked before timing.
//!
//! Run: `cargo bench -p secure9p-benches --bench parallel`.

mod common;

use common::{NOW, check, frame};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use secure9p_codec::{Fid, GetattrMask, LOpenFlags, Msg, Tgetattr, Tread};
use secure9p_core::{AllowAll, FsServer, MemFile, Namespace, Outcome, Replies, Server, SessionId};
use secure9p_transport::server::Engine;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

const MSIZE: u32 = 65_536;
/// Requests handled under one lock: a connection's burst of 16 in flight.
const BURST: u64 = 16;

fn contents() -> Vec<u8> {
    (0..1 << 20).map(|i| (i % 251) as u8).collect()
}

/// The namespace engine with `/f`, and `sessions` sessions holding it open.
fn server(sessions: usize) -> (Server, Vec<SessionId>) {
    let mut ns = Namespace::new();
    let root = ns.root();
    ns.add_file(root, "f", Box::new(MemFile::new(contents(), 1 << 20)))
        .expect("add f");
    let mut server = Server::new(ns, AllowAll, common::anonymous());
    let sids = (0..sessions)
        .map(|_| common::open_f(&mut server, MSIZE, LOpenFlags::empty()))
        .collect();
    (server, sids)
}

/// The file server over `MemFs` with `/f` (written through a session of
/// its own first), and `sessions` sessions holding it open.
fn fs_server(sessions: usize) -> (FsServer, Vec<SessionId>) {
    let (mut s, _) = common::memfs_with_f(&contents(), MSIZE);
    let sids = (0..sessions)
        .map(|_| common::open_f(&mut s, MSIZE, LOpenFlags::empty()))
        .collect();
    (s, sids)
}

/// How a thread reaches the engine.
#[derive(Clone, Copy)]
enum Locking {
    Mutex,
    RwLock,
}

/// Runs `per_thread` requests on each session's own thread; the time of
/// the slowest.
fn run<E: Engine + Sync>(
    locking: Locking,
    server: &Mutex<E>,
    shared: &RwLock<E>,
    sids: &[SessionId],
    request: &[u8],
    per_thread: u64,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for &sid in sids {
            scope.spawn(move || {
                let mut out = Replies::new();
                let mut done = 0;
                while done < per_thread {
                    let burst = BURST.min(per_thread - done);
                    match locking {
                        Locking::Mutex => {
                            let mut e = server.lock().expect("not poisoned");
                            for _ in 0..burst {
                                out.clear();
                                e.handle_replies(sid, request, NOW, &mut out).expect("up");
                            }
                        }
                        Locking::RwLock => {
                            let e = shared.read().expect("not poisoned");
                            for _ in 0..burst {
                                out.clear();
                                let r = e.handle_concurrent(sid, request, NOW, &mut out);
                                assert_eq!(r, Some(Ok(Outcome::Replied)));
                            }
                        }
                    }
                    done += burst;
                }
            });
        }
    });
    start.elapsed()
}

fn parallel(c: &mut Criterion) {
    engine_groups(c, "parallel", server);
    engine_groups(c, "parallel-fs", fs_server);
}

/// The groups of one engine, built by `make`.
fn engine_groups<E: Engine + Send + Sync>(
    c: &mut Criterion,
    prefix: &str,
    make: fn(usize) -> (E, Vec<SessionId>),
) {
    let getattr = frame(
        10,
        Msg::Tgetattr(Tgetattr {
            fid: Fid(1),
            request_mask: GetattrMask::BASIC,
        }),
    );
    let read = frame(
        11,
        Msg::Tread(Tread {
            fid: Fid(1),
            offset: 0,
            count: 4096,
        }),
    );
    for (what, request) in [("Tgetattr", &getattr), ("Tread 4 KiB", &read)] {
        let mut g = c.benchmark_group(format!("{prefix}/{what}"));
        g.throughput(Throughput::Elements(1));
        for threads in [1usize, 2] {
            let (mut s, sids) = make(threads);
            // Each reply checked once, both ways.
            for &sid in &sids {
                let mut out = Replies::new();
                s.handle_replies(sid, request, NOW, &mut out).expect("up");
                check(&out.into_vec(), MSIZE);
                let mut out = Replies::new();
                let r = s.handle_concurrent(sid, request, NOW, &mut out);
                assert_eq!(r, Some(Ok(Outcome::Replied)));
                check(&out.into_vec(), MSIZE);
            }
            let mutex = Mutex::new(s);
            let (s, sids2) = make(threads);
            let rwlock = RwLock::new(s);
            assert_eq!(sids, sids2);
            for (name, locking) in [("mutex", Locking::Mutex), ("rwlock", Locking::RwLock)] {
                g.bench_function(BenchmarkId::new(name, format!("threads/{threads}")), |b| {
                    b.iter_custom(|iters| {
                        let per_thread = iters.div_ceil(threads as u64);
                        run(locking, &mutex, &rwlock, &sids, request, per_thread)
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, parallel);
criterion_main!(benches);
