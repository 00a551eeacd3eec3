//! The engines without sockets: requests per second through
//! `Server::handle` (NineDoor's namespace engine, a `MemFile`) and
//! `FsServer::handle` (the file server engine over `MemFs`), per message
//! kind, on a warm session with the reply buffer reused as the runners
//! reuse it. Large reads run twice: through `handle` (the payload copied
//! into the reply) and through `handle_replies` (the payload a shared slice
//! of the file, as the runners send it).
//!
//! Every request's reply is checked once before it is timed (a success of
//! the right type, the read's bytes), so the bench cannot time an error
//! path by mistake.
//!
//! Run: `cargo bench -p secure9p-benches --bench engine`.

mod common;

use common::{NOW, frame, walk};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use secure9p_codec::{Fid, GetattrMask, LOpenFlags, Msg, Tclunk, Tgetattr, Tread, Twrite};
use secure9p_core::{AllowAll, FsServer, MemFile, Namespace, Replies, Server, SessionId};
// The runners' view of an engine: both entry points, for either engine.
use secure9p_transport::server::Engine;
use std::hint::black_box;

const MSIZE: u32 = 1024 * 1024 + 24;
/// The file both engines serve: 1 MiB, so every read below is whole.
const FILE_LEN: usize = 1 << 20;

/// Sends `frame` and returns the one reply, which must not be an error.
fn ok(e: &mut impl Engine, sid: SessionId, f: &[u8]) -> Vec<u8> {
    common::ok(e, sid, f, MSIZE)
}

fn contents() -> Vec<u8> {
    (0..FILE_LEN).map(|i| (i % 251) as u8).collect()
}

/// A namespace server with `/f` (a 1 MiB `MemFile`); fid 1 is `/f`, open
/// read-write.
fn namespace_server() -> (Server, SessionId) {
    let mut ns = Namespace::new();
    let root = ns.root();
    ns.add_file(root, "f", Box::new(MemFile::new(contents(), 2 * FILE_LEN)))
        .expect("add f");
    let mut s = Server::new(ns, AllowAll, common::anonymous());
    let sid = common::open_f(&mut s, MSIZE, LOpenFlags::RDWR);
    (s, sid)
}

/// A file server over `MemFs` with `/f` written to 1 MiB; fid 1 is `/f`,
/// open read-write.
fn fs_server() -> (FsServer, SessionId) {
    common::memfs_with_f(&contents(), MSIZE)
}

fn read(tag: u16, count: u32) -> Vec<u8> {
    frame(
        tag,
        Msg::Tread(Tread {
            fid: Fid(1),
            offset: 0,
            count,
        }),
    )
}

/// One engine's group: each message kind on its warm session.
fn engine_group(c: &mut Criterion, name: &str, e: &mut impl Engine, sid: SessionId) {
    let mut g = c.benchmark_group(format!("engine/{name}"));
    g.throughput(Throughput::Elements(1));
    let payload = vec![0x5au8; 4096];
    let getattr = frame(
        10,
        Msg::Tgetattr(Tgetattr {
            fid: Fid(1),
            request_mask: GetattrMask::BASIC,
        }),
    );
    let write = frame(
        11,
        Msg::Twrite(Twrite {
            fid: Fid(1),
            offset: 0,
            data: &payload,
        }),
    );
    let walk_names = ["f"];
    let walk_root = [];
    let twalk = frame(
        12,
        Msg::Twalk(walk(
            0,
            2,
            if name == "namespace" {
                &walk_names
            } else {
                &walk_root
            },
        )),
    );
    let clunk = frame(13, Msg::Tclunk(Tclunk { fid: Fid(2) }));
    // The write puts 4 KiB of 0x5a at offset 0: the reads below see it.
    ok(e, sid, &write);
    let want = {
        let mut w = contents();
        w[..4096].fill(0x5a);
        w
    };
    let mut out = Vec::with_capacity(MSIZE as usize);
    for (what, f) in [("Tgetattr", &getattr), ("Twrite-4KiB", &write)] {
        ok(e, sid, f);
        g.bench_function(BenchmarkId::new(what, "handle"), |b| {
            b.iter(|| {
                out.clear();
                black_box(e.handle(sid, black_box(f), NOW, &mut out)).ok()
            })
        });
    }
    ok(e, sid, &twalk);
    ok(e, sid, &clunk);
    g.bench_function(BenchmarkId::new("Twalk+Tclunk", "handle"), |b| {
        b.iter(|| {
            out.clear();
            let _ = e.handle(sid, black_box(&twalk), NOW, &mut out);
            out.clear();
            black_box(e.handle(sid, black_box(&clunk), NOW, &mut out)).ok()
        })
    });
    for (size, label) in [(4096u32, "4KiB"), (64 * 1024, "64KiB"), (1 << 20, "1MiB")] {
        let f = read(20, size);
        let data = ok(e, sid, &f);
        assert!(
            data[11..] == want[..size as usize],
            "the read returns the file"
        );
        let what = format!("Tread-{label}");
        g.bench_function(BenchmarkId::new(&what, "handle"), |b| {
            b.iter(|| {
                out.clear();
                black_box(e.handle(sid, black_box(&f), NOW, &mut out)).ok()
            })
        });
        let mut replies = Replies::new();
        e.handle_replies(sid, &f, NOW, &mut replies)
            .expect("session stays up");
        assert!(
            replies.clone().into_vec() == data,
            "both paths give one frame"
        );
        g.bench_function(BenchmarkId::new(&what, "handle_replies"), |b| {
            b.iter(|| {
                replies.clear();
                black_box(e.handle_replies(sid, black_box(&f), NOW, &mut replies)).ok()
            })
        });
    }
    g.finish();
}

fn engines(c: &mut Criterion) {
    let (mut s, sid) = namespace_server();
    engine_group(c, "namespace", &mut s, sid);
    let (mut s, sid) = fs_server();
    engine_group(c, "fs", &mut s, sid);
}

criterion_group!(benches, engines);
criterion_main!(benches);
