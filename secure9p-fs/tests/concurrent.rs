//! `FsServer::handle_concurrent` against `FsServer::handle_replies`, over
//! both providers of this crate.
//!
//! Arbitrary sequences of requests (attaches, walks, opens, small and large
//! reads, reads that wait, writes, truncations, getattr, readdir, clunks,
//! flushes of waiting and finished tags, extended attributes set and read)
//! go to two servers over trees alike: one answers every request through
//! `handle_replies`, the other as the runners drive it, through
//! `handle_concurrent` first and `handle_replies` only where that
//! declines. Every outcome and every reply must be the same (an
//! `Rgetattr`'s times apart: the providers stamp changes with the host's
//! clock), and a declined request must have appended nothing.
//!
//! Then sessions on several threads read and getattr through one shared
//! `&FsServer` at once, each reply checked.

mod common;

use common::{MSIZE, encode};
use proptest::prelude::*;
use secure9p_core::bytes::Bytes;
use secure9p_core::codec::{
    self, DecodeConfig, Dialect, Fid, Frame, GetattrMask, LOpenFlags, Msg, SetattrValid, Tag,
    WalkNames,
};
use secure9p_core::codec::{DirEntryWriter, Qid};
use secure9p_core::{
    Attr, Caller, Filesystem, FsError, FsServer, Io, Obj, Outcome, Replies, ServerConfig,
    SessionId, SetAttr,
};
use secure9p_fs::{DirExport, ExportOptions, Limits, MemFs};
use std::path::Path;

const NOW: u64 = 1_700_000_000;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// The tree both providers serve: a small file, one larger than the
/// engine's sharing threshold, an empty one, a directory with a file.
fn tree(dir: &Path) {
    std::fs::write(dir.join("a"), pattern(5_000, 1)).expect("write a");
    std::fs::write(dir.join("big"), pattern(100_000, 2)).expect("write big");
    std::fs::write(dir.join("empty"), b"").expect("write empty");
    std::fs::create_dir(dir.join("d")).expect("mkdir d");
    std::fs::write(dir.join("d/b"), pattern(300, 3)).expect("write d/b");
}

const PATHS: &[&[&str]] = &[
    &[],
    &["a"],
    &["big"],
    &["empty"],
    &["d"],
    &["d", "b"],
    &["d", ".."],
    &["nope"],
    &[".."],
];

const XATTRS: &[&str] = &["user.t", "", "user.none"];

#[derive(Debug, Clone)]
enum Op {
    Attach { fid: u32 },
    Walk { fid: u32, newfid: u32, path: usize },
    Open { fid: u32, flags: u8 },
    Read { fid: u32, offset: u64, count: u32 },
    Write { fid: u32, offset: u64, len: usize },
    Truncate { fid: u32, size: u64 },
    Getattr { fid: u32 },
    Readdir { fid: u32, offset: u64, count: u32 },
    Clunk { fid: u32 },
    Flush { oldtag: u16 },
    Xattrwalk { fid: u32, newfid: u32, name: usize },
    SetXattr { fid: u32 },
}

/// An offset at which [`Deferring`] has every read wait.
const DEFER_AT: u64 = 7_777_777;

fn op() -> impl Strategy<Value = Op> {
    let fid = 0u32..6;
    prop_oneof![
        1 => fid.clone().prop_map(|fid| Op::Attach { fid }),
        4 => (fid.clone(), fid.clone(), 0..PATHS.len())
            .prop_map(|(fid, newfid, path)| Op::Walk { fid, newfid, path }),
        3 => (fid.clone(), 0u8..3).prop_map(|(fid, flags)| Op::Open { fid, flags }),
        6 => (
            fid.clone(),
            prop_oneof![4 => Just(0u64), 8 => 0u64..120_000, 1 => Just(DEFER_AT)],
            prop_oneof![Just(0u32), 1u32..5_000, Just(4096), 16_384u32..140_000],
        )
            .prop_map(|(fid, offset, count)| Op::Read { fid, offset, count }),
        2 => (fid.clone(), 0u64..60_000, 0usize..30_000)
            .prop_map(|(fid, offset, len)| Op::Write { fid, offset, len }),
        1 => (fid.clone(), 0u64..120_000).prop_map(|(fid, size)| Op::Truncate { fid, size }),
        4 => fid.clone().prop_map(|fid| Op::Getattr { fid }),
        1 => (fid.clone(), 0u64..8, 0u32..400)
            .prop_map(|(fid, offset, count)| Op::Readdir { fid, offset, count }),
        3 => fid.clone().prop_map(|fid| Op::Clunk { fid }),
        1 => (1u16..6).prop_map(|oldtag| Op::Flush { oldtag }),
        2 => (fid.clone(), fid.clone(), 0..XATTRS.len())
            .prop_map(|(fid, newfid, name)| Op::Xattrwalk { fid, newfid, name }),
        1 => fid.prop_map(|fid| Op::SetXattr { fid }),
    ]
}

/// The frames of `op` (several for a `SetXattr`: a walk to a spare fid,
/// `Txattrcreate`, the value, the clunk that sets it).
fn frames(tag: u16, op: &Op) -> Vec<Vec<u8>> {
    let one = |msg: Msg<'_>| vec![encode(tag, msg)];
    let fid = Fid;
    match *op {
        Op::Attach { fid: f } => one(Msg::Tattach(codec::Tattach {
            fid: fid(f),
            afid: Fid::NOFID,
            uname: "u",
            aname: "",
            n_uname: Some(0),
        })),
        Op::Walk {
            fid: f,
            newfid,
            path,
        } => one(Msg::Twalk(codec::Twalk {
            fid: fid(f),
            newfid: fid(newfid),
            wnames: WalkNames::new(PATHS[path]).expect("short"),
        })),
        Op::Open { fid: f, flags } => one(Msg::Tlopen(codec::Tlopen {
            fid: fid(f),
            flags: match flags {
                0 => LOpenFlags::empty(),
                1 => LOpenFlags::RDWR,
                _ => LOpenFlags::DIRECTORY,
            },
        })),
        Op::Read {
            fid: f,
            offset,
            count,
        } => one(Msg::Tread(codec::Tread {
            fid: fid(f),
            offset,
            count,
        })),
        Op::Write {
            fid: f,
            offset,
            len,
        } => {
            let data = pattern(len, offset as u8);
            one(Msg::Twrite(codec::Twrite {
                fid: fid(f),
                offset,
                data: &data,
            }))
        }
        Op::Truncate { fid: f, size } => one(Msg::Tsetattr(
            &codec::Tsetattr::new()
                .with_fid(fid(f))
                .with_valid(SetattrValid::SIZE)
                .with_size(size),
        )),
        Op::Getattr { fid: f } => one(Msg::Tgetattr(codec::Tgetattr {
            fid: fid(f),
            request_mask: GetattrMask::BASIC,
        })),
        Op::Readdir {
            fid: f,
            offset,
            count,
        } => one(Msg::Treaddir(codec::Treaddir {
            fid: fid(f),
            offset,
            count,
        })),
        Op::Clunk { fid: f } => one(Msg::Tclunk(codec::Tclunk { fid: fid(f) })),
        Op::Flush { oldtag } => one(Msg::Tflush(codec::Tflush {
            oldtag: Tag(oldtag),
        })),
        Op::Xattrwalk {
            fid: f,
            newfid,
            name,
        } => one(Msg::Txattrwalk(codec::Txattrwalk {
            fid: fid(f),
            newfid: fid(newfid),
            name: XATTRS[name],
        })),
        Op::SetXattr { fid: f } => vec![
            encode(
                tag,
                Msg::Twalk(codec::Twalk {
                    fid: fid(f),
                    newfid: fid(9),
                    wnames: WalkNames::new(&[]).expect("none"),
                }),
            ),
            encode(
                tag,
                Msg::Txattrcreate(codec::Txattrcreate {
                    fid: fid(9),
                    name: "user.t",
                    attr_size: 5,
                    flags: 0,
                }),
            ),
            encode(
                tag,
                Msg::Twrite(codec::Twrite {
                    fid: fid(9),
                    offset: 0,
                    data: b"hello",
                }),
            ),
            encode(tag, Msg::Tclunk(codec::Tclunk { fid: fid(9) })),
        ],
    }
}

/// A provider whose reads at [`DEFER_AT`] wait (completed by nobody: a
/// flush or the session's end cancels them), so that tags are in flight.
struct Deferring<F>(F);

impl<F: Filesystem> Filesystem for Deferring<F> {
    fn attach(&mut self, c: &Caller, aname: &str) -> Result<(Obj, Qid), FsError> {
        self.0.attach(c, aname)
    }
    fn walk(&mut self, c: &Caller, dir: Obj, name: &str) -> Result<(Obj, Qid), FsError> {
        self.0.walk(c, dir, name)
    }
    fn walk_parent(&mut self, c: &Caller, dir: Obj) -> Result<(Obj, Qid), FsError> {
        self.0.walk_parent(c, dir)
    }
    fn clone_obj(&mut self, obj: Obj) -> Result<Obj, FsError> {
        self.0.clone_obj(obj)
    }
    fn release(&mut self, obj: Obj) {
        self.0.release(obj)
    }
    fn getattr(&mut self, c: &Caller, obj: Obj) -> Result<Attr, FsError> {
        self.0.getattr(c, obj)
    }
    fn try_getattr(&self, c: &Caller, obj: Obj) -> Option<Result<Attr, FsError>> {
        self.0.try_getattr(c, obj)
    }
    fn setattr(&mut self, c: &Caller, obj: Obj, set: &SetAttr) -> Result<(), FsError> {
        self.0.setattr(c, obj, set)
    }
    fn open(&mut self, c: &Caller, obj: Obj, flags: u32) -> Result<Qid, FsError> {
        self.0.open(c, obj, flags)
    }
    fn read(&mut self, c: &Caller, obj: Obj, offset: u64, buf: &mut [u8]) -> Io<usize> {
        if offset == DEFER_AT {
            return Io::Defer;
        }
        self.0.read(c, obj, offset, buf)
    }
    fn read_shared(
        &mut self,
        c: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
    ) -> Option<Result<Bytes, FsError>> {
        (offset != DEFER_AT)
            .then(|| self.0.read_shared(c, obj, offset, count))
            .flatten()
    }
    fn try_read(
        &self,
        c: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        (offset != DEFER_AT)
            .then(|| self.0.try_read(c, obj, offset, count, out))
            .flatten()
    }
    fn try_read_shared(
        &self,
        c: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
    ) -> Option<Result<Bytes, FsError>> {
        (offset != DEFER_AT)
            .then(|| self.0.try_read_shared(c, obj, offset, count))
            .flatten()
    }
    fn write(&mut self, c: &Caller, obj: Obj, offset: u64, data: &[u8]) -> Io<u32> {
        self.0.write(c, obj, offset, data)
    }
    fn readdir(
        &mut self,
        c: &Caller,
        obj: Obj,
        offset: u64,
        out: &mut DirEntryWriter<'_>,
    ) -> Result<(), FsError> {
        self.0.readdir(c, obj, offset, out)
    }
    fn xattr_get(&mut self, c: &Caller, obj: Obj, name: &str) -> Result<Vec<u8>, FsError> {
        self.0.xattr_get(c, obj, name)
    }
    fn xattr_set(
        &mut self,
        c: &Caller,
        obj: Obj,
        name: &str,
        value: &[u8],
        flags: u32,
        remove: bool,
    ) -> Result<(), FsError> {
        self.0.xattr_set(c, obj, name, value, flags, remove)
    }
}

/// A server over `fs` with one session after `version`, attached as fid 0,
/// and (so that random requests meet open fids often) `big` open
/// read-write as fid 1, `a` read-only as fid 2, `d` as fid 3.
fn serve(fs: impl Filesystem + 'static) -> (FsServer, SessionId) {
    let mut server = FsServer::new(fs, ServerConfig::default());
    let sid = session(&mut server);
    (server, sid)
}

/// A new session of `server` set up as [`serve`] describes.
fn session(server: &mut FsServer) -> SessionId {
    let sid = server.open_session();
    let mut steps = vec![
        encode(
            1,
            Msg::Tversion(codec::Tversion {
                msize: MSIZE,
                version: Dialect::Linux.version(),
            }),
        ),
        frames(1, &Op::Attach { fid: 0 }).remove(0),
    ];
    for (fid, path, flags) in [(1, 2, 1), (2, 1, 0), (3, 4, 2)] {
        let walk = Op::Walk {
            fid: 0,
            newfid: fid,
            path,
        };
        steps.extend(frames(1, &walk));
        steps.extend(frames(1, &Op::Open { fid, flags }));
    }
    for frame in steps {
        let mut out = Vec::new();
        server.handle(sid, &frame, NOW, &mut out).expect("up");
        let reply = Frame::decode(&out, DecodeConfig::new(Dialect::Linux, MSIZE)).expect("reply");
        assert!(!matches!(reply.msg, Msg::Rlerror(_)), "setup failed");
    }
    sid
}

/// The reply bytes with an `Rgetattr`'s times zeroed: the providers stamp
/// changes with the host's clock, so two trees changed alike differ there.
fn untimed(mut bytes: Vec<u8>) -> Vec<u8> {
    const RGETATTR: u8 = 25;
    // size[4] type[1] tag[2] valid[8] qid[13] mode uid gid[4 each]
    // nlink rdev size blksize blocks[8 each], then the three times.
    const TIMES: std::ops::Range<usize> = 80..128;
    if bytes.get(4) == Some(&RGETATTR)
        && let Some(times) = bytes.get_mut(TIMES)
    {
        times.fill(0);
    }
    bytes
}

/// Two servers over trees alike: `a` answers every request through
/// `handle_replies`, `b` as the runners drive it, `handle_concurrent`
/// first and `handle_replies` only where that declines.
struct Pair {
    a: (FsServer, SessionId),
    b: (FsServer, SessionId),
}

impl Pair {
    /// Sends `frame` to both; their outcomes and replies must agree, and a
    /// request `b` declined concurrently must have appended nothing.
    /// Whether `b` answered it concurrently.
    fn send(&mut self, frame: &[u8]) -> Result<bool, TestCaseError> {
        let ((a, sa), (b, sb)) = (&mut self.a, &mut self.b);
        let mut out_a = Replies::new();
        let ra = a.handle_replies(*sa, frame, NOW, &mut out_a);
        let mut out_b = Replies::new();
        let (rb, answered) = match b.handle_concurrent(*sb, frame, NOW, &mut out_b) {
            Some(r) => (r, true),
            None => {
                prop_assert!(out_b.is_empty(), "a declined request appended nothing");
                (b.handle_replies(*sb, frame, NOW, &mut out_b), false)
            }
        };
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(untimed(out_a.into_vec()), untimed(out_b.into_vec()));
        Ok(answered)
    }

    fn run(&mut self, ops: &[(Op, u16)]) -> Result<usize, TestCaseError> {
        let mut answered = 0;
        for (op, tag) in ops {
            for frame in frames(*tag, op) {
                answered += usize::from(self.send(&frame)?);
            }
        }
        Ok(answered)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn memfs_concurrent_answers_are_the_exclusive_answers(
        ops in proptest::collection::vec((op(), 1u16..6), 1..60)
    ) {
        agree(|dir| MemFs::load_dir(dir, Limits::default()).expect("load"), &ops)?;
    }

    /// Both servers export the same directory: every change the requests
    /// make (writes and truncations of fixed bytes, an extended attribute
    /// set to one value) gives the same tree when made twice.
    #[test]
    fn export_concurrent_answers_are_the_exclusive_answers(
        ops in proptest::collection::vec((op(), 1u16..6), 1..60)
    ) {
        agree(|dir| DirExport::new(dir, ExportOptions::default()).expect("export"), &ops)?;
    }
}

/// Runs `ops` on a [`Pair`] of servers over `make`'s provider of one tree.
fn agree<F: Filesystem + 'static>(
    make: impl Fn(&Path) -> F,
    ops: &[(Op, u16)],
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    tree(dir.path());
    let mut pair = Pair {
        a: serve(Deferring(make(dir.path()))),
        b: serve(Deferring(make(dir.path()))),
    };
    pair.run(ops).map(drop)
}

/// The sequence a reader runs: open `big` as fid 1, one large read (which
/// lets MemFs share the file's buffer), then reads and getattrs that must
/// all be answered through `&self`.
#[test]
fn reads_and_getattrs_of_an_open_file_are_answered_concurrently() {
    let dir = tempfile::tempdir().expect("tempdir");
    tree(dir.path());
    let memfs = || MemFs::load_dir(dir.path(), Limits::default()).expect("load");
    let export = || DirExport::new(dir.path(), ExportOptions::default()).expect("export");
    let pairs = [
        (
            "memfs",
            Pair {
                a: serve(memfs()),
                b: serve(memfs()),
            },
        ),
        (
            "export",
            Pair {
                a: serve(export()),
                b: serve(export()),
            },
        ),
    ];
    for (name, mut pair) in pairs {
        let setup = [
            Op::Walk {
                fid: 0,
                newfid: 4,
                path: 2,
            },
            Op::Open { fid: 4, flags: 0 },
            Op::Read {
                fid: 4,
                offset: 0,
                count: 60_000,
            },
        ];
        pair.run(&setup.map(|op| (op, 1))).expect("setup");
        let reads = [
            Op::Read {
                fid: 4,
                offset: 10,
                count: 4_096,
            },
            Op::Read {
                fid: 4,
                offset: 50_000,
                count: 60_000,
            },
            Op::Getattr { fid: 4 },
            Op::Getattr { fid: 0 },
            Op::Flush { oldtag: 3 },
        ];
        let want = reads.len();
        let answered = pair.run(&reads.map(|op| (op, 2))).expect("reads");
        assert_eq!(answered, want, "{name}: all answered through &self");
    }
}

/// Four sessions, each on its own thread, read and getattr `big` through one
/// `&FsServer` at once; every request is answered without the server to
/// itself and every reply is the file's bytes.
#[test]
fn sessions_on_several_threads_are_served_through_one_shared_fs_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    tree(dir.path());
    let want = pattern(100_000, 2);
    let memfs = MemFs::load_dir(dir.path(), Limits::default()).expect("load");
    let export = DirExport::new(dir.path(), ExportOptions::default()).expect("export");
    let servers: [(&str, FsServer); 2] = [
        ("memfs", FsServer::new(memfs, ServerConfig::default())),
        ("export", FsServer::new(export, ServerConfig::default())),
    ];
    for (name, mut server) in servers {
        // Each session holds `big` open as fid 1; one large read first
        // (MemFs then shares the file's buffer).
        let sids: Vec<SessionId> = (0..4)
            .map(|_| {
                let sid = session(&mut server);
                let read = Op::Read {
                    fid: 1,
                    offset: 0,
                    count: 60_000,
                };
                let mut out = Vec::new();
                server
                    .handle(sid, &frames(1, &read)[0], NOW, &mut out)
                    .expect("up");
                sid
            })
            .collect();
        let server = &server;
        std::thread::scope(|scope| {
            for (t, &sid) in sids.iter().enumerate() {
                let want = &want;
                scope.spawn(move || {
                    let cfg = DecodeConfig::new(Dialect::Linux, MSIZE);
                    let mut out = Replies::new();
                    for i in 0..2_000u64 {
                        let offset = (i * 4_099 + t as u64 * 977) % 100_000;
                        let count = if i % 3 == 0 { 40_000 } else { 4_096 };
                        for op in [
                            Op::Read {
                                fid: 1,
                                offset,
                                count,
                            },
                            Op::Getattr { fid: 1 },
                        ] {
                            out.clear();
                            let frame = &frames((i % 60_000) as u16 + 1, &op)[0];
                            let outcome = server
                                .handle_concurrent(sid, frame, NOW, &mut out)
                                .expect("answered without the server to itself")
                                .expect("up");
                            assert_eq!(outcome, Outcome::Replied);
                            let bytes = std::mem::take(&mut out).into_vec();
                            let reply = Frame::decode(&bytes, cfg).expect("one reply");
                            match (&op, reply.msg) {
                                (Op::Read { .. }, Msg::Rread(r)) => {
                                    let start = offset as usize;
                                    let end = (start + count as usize).min(want.len());
                                    assert!(r.data == &want[start..end], "{name} {t} read {i}");
                                }
                                (Op::Getattr { .. }, Msg::Rgetattr(g)) => {
                                    assert_eq!(g.size(), 100_000, "{name}");
                                }
                                (op, msg) => panic!("{name}: {op:?} answered {msg:?}"),
                            }
                        }
                    }
                });
            }
        });
    }
}
