//! A warm session allocates nothing on the hot paths: `Tread`, `Twrite`,
//! `Tgetattr` and `Tclunk` through both engines ([`FsServer`] over
//! [`MemFs`], the `s9p-memfs` server, and [`Server`] over a [`Namespace`],
//! NineDoor's engine), with the reply buffer reused as a transport reuses it;
//! and a large read of an unchanged file, whose payload is a shared slice
//! of the file (the replies' tail), allocates nothing either. The
//! [`Server`] is checked twice: through `handle`, and as the runners
//! drive it, through `handle_concurrent` first (the reads, the getattr and
//! the clunk of an unopened fid are answered there) and `handle_replies`
//! for what that leaves.
//!
//! A counting global allocator counts the allocations made on this test's
//! thread while a request is handled; the requests are encoded before the
//! count starts. Each path is checked by message kind, so a failure names
//! the path that allocated.

mod common;

use common::{MSIZE, Wire, encode};
use secure9p_core::codec::{
    Dialect, Fid, GetattrMask, LOpenFlags, Msg, Tattach, Tclunk, Tgetattr, Tlcreate, Tlopen, Tread,
    Tversion, Twalk, Twrite, WalkNames,
};
use secure9p_core::{
    AllowAll, MemFile, Namespace, Principal, Replies, Role, SHARE_MIN, Server, ServerConfig,
    SessionId,
};
use secure9p_fs::MemFs;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Whether this thread's allocations are being counted.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Allocations (and reallocations) counted on this thread.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting the allocations of threads that ask.
struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds `GlobalAlloc`'s contract; the counters are const-initialised
// thread-locals of `Copy` types, so touching them never allocates or
// re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout (see the impl's comment).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: `ptr` and `layout` come from this allocator, which is the
        // system allocator's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn note() {
    // `try_with`: a thread being torn down has no locals left to count in.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

/// The allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(|n| n.get())
}

/// One engine under test, seen only through its `handle`.
trait Engine {
    fn handle(&mut self, frame: &[u8], out: &mut Vec<u8>);
    fn handle_replies(&mut self, frame: &[u8], out: &mut Replies);
}

impl Engine for Wire {
    fn handle(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        self.server
            .handle(self.sid, frame, 1_700_000_000, out)
            .expect("session stays up");
    }
    fn handle_replies(&mut self, frame: &[u8], out: &mut Replies) {
        self.server
            .handle_replies(self.sid, frame, 1_700_000_000, out)
            .expect("session stays up");
    }
}

struct Ns {
    server: Server,
    sid: SessionId,
}

/// [`Ns`] driven as the runners drive it: `handle_concurrent` first,
/// `handle_replies` when it declines; counts what it answered.
struct Concurrent {
    ns: Ns,
    answered: u64,
}

impl Engine for Concurrent {
    fn handle(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        let mut replies = Replies::from(std::mem::take(out));
        self.handle_replies(frame, &mut replies);
        *out = replies.into_vec();
    }
    fn handle_replies(&mut self, frame: &[u8], out: &mut Replies) {
        let Ns { server, sid } = &mut self.ns;
        match server.handle_concurrent(*sid, frame, 1_700_000_000, out) {
            Some(r) => {
                r.expect("session stays up");
                self.answered += 1;
            }
            None => self.ns.handle_replies(frame, out),
        }
    }
}

/// A [`Wire`] (an `FsServer`) driven concurrent-first, like [`Concurrent`].
struct FsConcurrent {
    wire: Wire,
    answered: u64,
}

impl Engine for FsConcurrent {
    fn handle(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        let mut replies = Replies::from(std::mem::take(out));
        self.handle_replies(frame, &mut replies);
        *out = replies.into_vec();
    }
    fn handle_replies(&mut self, frame: &[u8], out: &mut Replies) {
        let w = &mut self.wire;
        match w.server.handle_concurrent(w.sid, frame, 1_700_000_000, out) {
            Some(r) => {
                r.expect("session stays up");
                self.answered += 1;
            }
            None => w.handle_replies(frame, out),
        }
    }
}

impl Engine for Ns {
    fn handle(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        self.server
            .handle(self.sid, frame, 1_700_000_000, out)
            .expect("session stays up");
    }
    fn handle_replies(&mut self, frame: &[u8], out: &mut Replies) {
        self.server
            .handle_replies(self.sid, frame, 1_700_000_000, out)
            .expect("session stays up");
    }
}

/// Sends `frame` with `out` emptied (its capacity kept); the reply must be a
/// success and the call must not allocate.
fn no_alloc(engine: &mut impl Engine, what: &str, frame: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let n = allocations(|| engine.handle(frame, out));
    let reply = common::Reply(out.clone());
    assert_eq!(reply.errno(), 0, "{what} failed: {:?}", reply.msg());
    assert_eq!(n, 0, "{what} on a warm session allocated {n} times");
}

/// Sends `frame` expecting success, allocations allowed (setting up).
fn setup(engine: &mut impl Engine, frame: &[u8]) {
    let mut out = Vec::new();
    engine.handle(frame, &mut out);
    assert_eq!(common::Reply(out).errno(), 0, "setup request failed");
}

/// The hot paths of a warm session on `engine`: fid 1 is an open file, the
/// root is fid 0. Runs each request a few times (the first may warm a
/// buffer), then counts.
fn hot_paths(engine: &mut impl Engine) {
    let payload = [0x5au8; 4096];
    let write = encode(
        10,
        Msg::Twrite(Twrite {
            fid: Fid(1),
            offset: 0,
            data: &payload,
        }),
    );
    let read = encode(
        11,
        Msg::Tread(Tread {
            fid: Fid(1),
            offset: 0,
            count: 4096,
        }),
    );
    let getattr = encode(
        12,
        Msg::Tgetattr(Tgetattr {
            fid: Fid(1),
            request_mask: GetattrMask::BASIC,
        }),
    );
    let walk = encode(
        13,
        Msg::Twalk(Twalk {
            fid: Fid(0),
            newfid: Fid(2),
            wnames: WalkNames::new(&["f"]).expect("one name"),
        }),
    );
    let clunk = encode(14, Msg::Tclunk(Tclunk { fid: Fid(2) }));

    // A reply buffer as big as the largest reply, as a transport keeps one.
    let mut out = Vec::with_capacity(MSIZE as usize);
    for _ in 0..3 {
        out.clear();
        engine.handle(&write, &mut out);
        out.clear();
        engine.handle(&read, &mut out);
        out.clear();
        engine.handle(&getattr, &mut out);
    }
    for round in 0..100 {
        no_alloc(engine, "Twrite 4 KiB", &write, &mut out);
        no_alloc(engine, "Tread 4 KiB", &read, &mut out);
        assert_eq!(
            out.get(out.len() - payload.len()..),
            Some(&payload[..]),
            "round {round}: the read returns what was written"
        );
        no_alloc(engine, "Tgetattr", &getattr, &mut out);
        // A fresh fid each round (walking allocates its state); only the
        // clunk is counted.
        setup(engine, &walk);
        no_alloc(engine, "Tclunk", &clunk, &mut out);
    }
    shared_reads(engine);
}

/// Large reads of a file that does not change: after the first (which
/// turns the file's vector into a shared buffer), each is a header in the
/// replies' buffer and a slice of the file as their tail, and allocates
/// nothing.
fn shared_reads(engine: &mut impl Engine) {
    let len = 3 * SHARE_MIN as usize;
    let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    setup(
        engine,
        &encode(
            20,
            Msg::Twrite(Twrite {
                fid: Fid(1),
                offset: 0,
                data: &payload,
            }),
        ),
    );
    let read = encode(
        21,
        Msg::Tread(Tread {
            fid: Fid(1),
            offset: 0,
            count: len as u32,
        }),
    );
    let mut out = Replies::new();
    engine.handle_replies(&read, &mut out);
    out.clear();
    engine.handle_replies(&read, &mut out);
    for round in 0..100 {
        out.clear();
        let n = allocations(|| engine.handle_replies(&read, &mut out));
        assert_eq!(n, 0, "a shared Tread of {len} bytes allocated {n} times");
        assert_eq!(
            out.head().len(),
            11,
            "round {round}: only the header is in the buffer"
        );
        let tail = out.tail().expect("the payload is shared");
        assert!(tail[..] == payload[..], "round {round}: the file's bytes");
    }
}

/// An `FsServer` over a `MemFs` holding `f`, open read-write as fid 1 (the
/// root is fid 0).
fn warm_memfs() -> Wire {
    let mut w = Wire::new(MemFs::default());
    w.attach(0, 0);
    w.walk(0, 1, &[]).expect("clone the root fid");
    let created = w.call(Tlcreate {
        fid: Fid(1),
        name: "f",
        flags: LOpenFlags::RDWR,
        mode: 0o644,
        gid: 0,
    });
    assert_eq!(created.errno(), 0, "create f");
    w
}

#[test]
fn fs_server_over_memfs_allocates_nothing_on_a_warm_session() {
    hot_paths(&mut warm_memfs());
}

#[test]
fn fs_server_over_memfs_allocates_nothing_when_served_concurrently() {
    let mut e = FsConcurrent {
        wire: warm_memfs(),
        answered: 0,
    };
    hot_paths(&mut e);
    // 100 counted reads and getattrs and 100 shared reads besides the
    // warm-up, all answered through `&self` (writes and clunks are not).
    assert!(
        e.answered >= 300,
        "only {} requests were answered concurrently",
        e.answered
    );
}

#[test]
fn namespace_server_allocates_nothing_on_a_warm_session() {
    let mut e = warm_namespace_server();
    hot_paths(&mut e);
}

#[test]
fn namespace_server_allocates_nothing_when_served_concurrently() {
    let mut e = Concurrent {
        ns: warm_namespace_server(),
        answered: 0,
    };
    hot_paths(&mut e);
    // 100 counted rounds of a read, a getattr and a clunk, and 100 shared
    // reads, besides the warm-up: all of them answered through `&self`.
    assert!(
        e.answered >= 400,
        "only {} requests were answered concurrently",
        e.answered
    );
}

/// A namespace server with one file `f`, its session attached (fid 0, the
/// root) and `f` open read-write as fid 1.
fn warm_namespace_server() -> Ns {
    let mut ns = Namespace::new();
    let root = ns.root();
    ns.add_file(root, "f", Box::new(MemFile::new(Vec::new(), 1 << 20)))
        .expect("add f");
    let config = ServerConfig {
        anonymous: Some(Principal::anonymous(Role::Anonymous, "guest")),
        ..ServerConfig::default()
    };
    let mut server = Server::new(ns, AllowAll, config);
    let sid = server.open_session();
    let mut e = Ns { server, sid };
    setup(
        &mut e,
        &encode(
            0xffff,
            Msg::Tversion(Tversion {
                msize: MSIZE,
                version: Dialect::Linux.version(),
            }),
        ),
    );
    setup(
        &mut e,
        &encode(
            1,
            Msg::Tattach(Tattach {
                fid: Fid(0),
                afid: Fid::NOFID,
                uname: "guest",
                aname: "",
                n_uname: Some(0),
            }),
        ),
    );
    setup(
        &mut e,
        &encode(
            2,
            Msg::Twalk(Twalk {
                fid: Fid(0),
                newfid: Fid(1),
                wnames: WalkNames::new(&["f"]).expect("one name"),
            }),
        ),
    );
    setup(
        &mut e,
        &encode(
            3,
            Msg::Tlopen(Tlopen {
                fid: Fid(1),
                flags: LOpenFlags::RDWR,
            }),
        ),
    );
    e
}
