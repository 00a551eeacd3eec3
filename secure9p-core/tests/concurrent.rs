//! `Server::handle_concurrent` against `Server::handle_replies`.
//!
//! Arbitrary sequences of requests (walks into allowed and refused
//! directories, opens, small and large reads, writes, getattr, readdir,
//! clunks of open and unopened fids, flushes, removes, deferred reads and
//! their completions) go to two servers built alike: one answers every
//! request through `handle_replies`, the other as the runners drive it,
//! through `handle_concurrent` first and `handle_replies` only where that
//! declines. Every reply (buffer and shared tail apart), every outcome and
//! the two audit logs must be the same.
//!
//! Then the point of it: sessions on several threads served through one
//! `&Server` at once, each reply checked, and a declined request leaving
//! no trace.

mod common;

use common::{AuditLog, Slow, raw_frame, split_frames};
use proptest::prelude::*;
use secure9p_core::codec::{
    self, DecodeConfig, Dialect, Fid, GetattrMask, LOpenFlags, Msg, MsgType, Tag, WalkNames,
};
use secure9p_core::{
    Completion, GeneratedFile, MemFile, Namespace, Ops, Outcome, Principal, Replies, Role,
    RulePolicy, Server, ServerConfig, SessionId, StaticFile, Token, ZeroFile,
};
use std::sync::Arc;

const MSIZE: u32 = 128 * 1024;
const NOW: u64 = 1_700_000_000;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// `/pub` (open to the anonymous role) with files of every kind the engine
/// reads concurrently or not, `/secret` (refused: walking into it is
/// audited).
fn server(audit: AuditLog) -> Server {
    let mut ns = Namespace::new();
    let public = ns.mkdir_all("/pub", 0o755).expect("mkdir");
    let sub = ns.mkdir_all("/pub/sub", 0o755).expect("mkdir");
    let secret = ns.mkdir_all("/secret", 0o700).expect("mkdir");
    let add = |ns: &mut Namespace, dir, name: &str, node: Box<dyn secure9p_core::Node>| {
        ns.add_file(dir, name, node).expect("add");
    };
    add(
        &mut ns,
        public,
        "f",
        Box::new(MemFile::new(pattern(100_000, 7), 400_000)),
    );
    add(
        &mut ns,
        public,
        "s",
        Box::new(StaticFile::new(pattern(5_000, 3))),
    );
    add(
        &mut ns,
        public,
        "g",
        Box::new(GeneratedFile::new(|ctx| ctx.path.as_bytes().to_vec())),
    );
    add(&mut ns, public, "z", Box::new(ZeroFile));
    add(&mut ns, public, "slow", Box::<Slow>::default());
    add(
        &mut ns,
        sub,
        "h",
        Box::new(MemFile::new(Vec::new(), 50_000)),
    );
    add(&mut ns, secret, "x", Box::new(StaticFile::new("no")));
    let policy = RulePolicy::new().allow(Role::Anonymous, "/pub/**", Ops::all());
    let config = ServerConfig {
        anonymous: Some(Principal::anonymous(Role::Anonymous, "guest")),
        ..ServerConfig::default()
    };
    Server::new(ns, policy, config).with_audit(audit)
}

const PATHS: &[&[&str]] = &[
    &[],
    &["pub"],
    &["pub", "f"],
    &["pub", "s"],
    &["pub", "g"],
    &["pub", "z"],
    &["pub", "slow"],
    &["pub", "sub", "h"],
    &["pub", "nope"],
    &["secret"],
    &["secret", "x"],
    &["pub", "..", "secret"],
    &[".."],
    &["pub", "."],
];

#[derive(Debug, Clone)]
enum Op {
    Attach { fid: u32 },
    Walk { fid: u32, newfid: u32, path: usize },
    Open { fid: u32, flags: u8 },
    Read { fid: u32, offset: u64, count: u32 },
    Write { fid: u32, offset: u64, len: usize },
    Getattr { fid: u32 },
    Readdir { fid: u32, offset: u64, count: u32 },
    Clunk { fid: u32 },
    Statfs { fid: u32 },
    Fsync { fid: u32 },
    Remove { fid: u32 },
    Flush { oldtag: u16 },
    Complete { which: usize, len: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let fid = 0u32..5;
    prop_oneof![
        1 => fid.clone().prop_map(|fid| Op::Attach { fid }),
        4 => (fid.clone(), fid.clone(), 0..PATHS.len())
            .prop_map(|(fid, newfid, path)| Op::Walk { fid, newfid, path }),
        3 => (fid.clone(), 0u8..3).prop_map(|(fid, flags)| Op::Open { fid, flags }),
        5 => (
            fid.clone(),
            prop_oneof![Just(0u64), 0u64..120_000],
            prop_oneof![Just(0u32), 1u32..5_000, Just(4096), 16_384u32..140_000],
        )
            .prop_map(|(fid, offset, count)| Op::Read { fid, offset, count }),
        2 => (fid.clone(), 0u64..60_000, 0usize..30_000)
            .prop_map(|(fid, offset, len)| Op::Write { fid, offset, len }),
        3 => fid.clone().prop_map(|fid| Op::Getattr { fid }),
        2 => (fid.clone(), 0u64..12, 0u32..400)
            .prop_map(|(fid, offset, count)| Op::Readdir { fid, offset, count }),
        3 => fid.clone().prop_map(|fid| Op::Clunk { fid }),
        1 => fid.clone().prop_map(|fid| Op::Statfs { fid }),
        1 => fid.clone().prop_map(|fid| Op::Fsync { fid }),
        1 => fid.clone().prop_map(|fid| Op::Remove { fid }),
        1 => (1u16..6).prop_map(|oldtag| Op::Flush { oldtag }),
        1 => (0usize..4, 0usize..200).prop_map(|(which, len)| Op::Complete { which, len }),
    ]
}

fn frame(tag: u16, op: &Op, data: &[u8]) -> Option<Vec<u8>> {
    let tag = Tag(tag);
    Some(match *op {
        Op::Attach { fid } => raw_frame(
            tag,
            codec::Tattach {
                fid: Fid(fid),
                afid: Fid::NOFID,
                uname: "guest",
                aname: "",
                n_uname: Some(0),
            },
        ),
        Op::Walk { fid, newfid, path } => raw_frame(
            tag,
            codec::Twalk {
                fid: Fid(fid),
                newfid: Fid(newfid),
                wnames: WalkNames::new(PATHS[path]).expect("short"),
            },
        ),
        Op::Open { fid, flags } => raw_frame(
            tag,
            codec::Tlopen {
                fid: Fid(fid),
                flags: match flags {
                    0 => LOpenFlags::empty(),
                    1 => LOpenFlags::RDWR,
                    _ => LOpenFlags::DIRECTORY,
                },
            },
        ),
        Op::Read { fid, offset, count } => raw_frame(
            tag,
            codec::Tread {
                fid: Fid(fid),
                offset,
                count,
            },
        ),
        Op::Write { fid, offset, .. } => raw_frame(
            tag,
            codec::Twrite {
                fid: Fid(fid),
                offset,
                data,
            },
        ),
        Op::Getattr { fid } => raw_frame(
            tag,
            codec::Tgetattr {
                fid: Fid(fid),
                request_mask: GetattrMask::BASIC,
            },
        ),
        Op::Readdir { fid, offset, count } => raw_frame(
            tag,
            codec::Treaddir {
                fid: Fid(fid),
                offset,
                count,
            },
        ),
        Op::Clunk { fid } => raw_frame(tag, codec::Tclunk { fid: Fid(fid) }),
        Op::Statfs { fid } => raw_frame(tag, codec::Tstatfs { fid: Fid(fid) }),
        Op::Fsync { fid } => raw_frame(
            tag,
            codec::Tfsync {
                fid: Fid(fid),
                datasync: 0,
            },
        ),
        Op::Remove { fid } => raw_frame(tag, codec::Tremove { fid: Fid(fid) }),
        Op::Flush { oldtag } => raw_frame(
            tag,
            codec::Tflush {
                oldtag: Tag(oldtag),
            },
        ),
        Op::Complete { .. } => return None,
    })
}

/// One server and its session, driven one of the two ways.
struct Side {
    server: Server,
    sid: SessionId,
    audit: AuditLog,
    concurrent: bool,
    /// Requests `handle_concurrent` answered.
    answered: usize,
    pending: Vec<Token>,
}

impl Side {
    fn new(concurrent: bool) -> Side {
        let audit = AuditLog::default();
        let mut server = server(audit.clone());
        let sid = server.open_session();
        let mut side = Side {
            server,
            sid,
            audit,
            concurrent,
            answered: 0,
            pending: Vec::new(),
        };
        let version = raw_frame(
            Tag::NOTAG,
            codec::Tversion {
                msize: MSIZE,
                version: Dialect::Linux.version(),
            },
        );
        side.send(&version);
        side
    }

    /// Handles `frame`: the outcome, the reply buffer and the shared tail.
    fn send(&mut self, frame: &[u8]) -> (Outcome, Vec<u8>, Option<Vec<u8>>) {
        let mut out = Replies::new();
        let concurrent = if self.concurrent {
            self.server
                .handle_concurrent(self.sid, frame, NOW, &mut out)
        } else {
            None
        };
        let outcome = match concurrent {
            Some(r) => {
                self.answered += 1;
                r
            }
            None => {
                assert!(out.is_empty(), "a declined request appended nothing");
                self.server.handle_replies(self.sid, frame, NOW, &mut out)
            }
        }
        .expect("the session stays up");
        if let Outcome::Deferred { token, .. } = outcome {
            self.pending.push(token);
        }
        (outcome, out.head().to_vec(), out.tail().map(|t| t.to_vec()))
    }

    fn complete(&mut self, which: usize, len: usize) -> Option<(Option<SessionId>, Vec<u8>)> {
        if self.pending.is_empty() {
            return None;
        }
        let token = self.pending.remove(which % self.pending.len());
        let mut out = Vec::new();
        let sid = self
            .server
            .complete(token, Completion::Read(Ok(pattern(len, 1))), &mut out);
        Some((sid, out))
    }
}

fn audit_lines(log: &AuditLog) -> Vec<String> {
    log.events().into_iter().map(|e| e.debug).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn concurrent_answers_are_the_exclusive_answers(
        ops in proptest::collection::vec((op(), 1u16..6), 1..60)
    ) {
        let mut a = Side::new(false);
        let mut b = Side::new(true);
        for (i, (op, tag)) in ops.iter().enumerate() {
            if let Op::Complete { which, len } = *op {
                prop_assert_eq!(a.complete(which, len), b.complete(which, len), "step {}", i);
                continue;
            }
            let data = match *op {
                Op::Write { len, offset, .. } => pattern(len, offset as u8),
                _ => Vec::new(),
            };
            let frame = frame(*tag, op, &data).expect("a request");
            let ra = a.send(&frame);
            let rb = b.send(&frame);
            prop_assert_eq!(ra, rb, "step {}: {:?}", i, op);
        }
        prop_assert_eq!(audit_lines(&a.audit), audit_lines(&b.audit));
    }
}

/// A session attached and holding `/pub/f` open for reading as fid 1, its
/// contents shared (one large read done exclusively).
fn open_reader(server: &mut Server) -> SessionId {
    let sid = server.open_session();
    let mut call = |frame: Vec<u8>| {
        let mut out = Replies::new();
        server
            .handle_replies(sid, &frame, NOW, &mut out)
            .expect("up");
        let reply = split_frames(&out.into_vec(), DecodeConfig::new(Dialect::Linux, MSIZE));
        assert_eq!(reply.len(), 1);
        assert_eq!(reply[0].errno(), 0, "setup: {:?}", reply[0].msg());
    };
    call(raw_frame(
        Tag::NOTAG,
        codec::Tversion {
            msize: MSIZE,
            version: Dialect::Linux.version(),
        },
    ));
    let ops = [
        Op::Attach { fid: 0 },
        Op::Walk {
            fid: 0,
            newfid: 1,
            path: 2,
        },
        Op::Open { fid: 1, flags: 0 },
        Op::Read {
            fid: 1,
            offset: 0,
            count: 65_536,
        },
    ];
    for op in &ops {
        call(frame(1, op, &[]).expect("a request"));
    }
    sid
}

#[test]
fn sessions_on_several_threads_are_served_through_one_shared_server() {
    let mut server = server(AuditLog::default());
    let sids: Vec<SessionId> = (0..4).map(|_| open_reader(&mut server)).collect();
    let server = Arc::new(server);
    let want = pattern(100_000, 7);
    std::thread::scope(|scope| {
        for (t, &sid) in sids.iter().enumerate() {
            let (server, want) = (&server, &want);
            scope.spawn(move || {
                let cfg = DecodeConfig::new(Dialect::Linux, MSIZE);
                let mut out = Replies::new();
                for i in 0..2_000u64 {
                    let offset = (i * 4_099 + t as u64 * 977) % 100_000;
                    let count = if i % 3 == 0 { 40_000 } else { 4_096 };
                    let requests = [
                        Op::Read {
                            fid: 1,
                            offset,
                            count,
                        },
                        Op::Getattr { fid: 1 },
                    ];
                    for op in &requests {
                        out.clear();
                        let frame = frame((i % 60_000) as u16 + 1, op, &[]).expect("a request");
                        let outcome = server
                            .handle_concurrent(sid, &frame, NOW, &mut out)
                            .expect("answered without the server to itself")
                            .expect("up");
                        assert_eq!(outcome, Outcome::Replied);
                        let bytes = std::mem::take(&mut out).into_vec();
                        let reply = split_frames(&bytes, cfg);
                        assert_eq!(reply.len(), 1);
                        match (op, reply[0].msg()) {
                            (Op::Read { .. }, Msg::Rread(r)) => {
                                let start = offset as usize;
                                let end = (start + count as usize).min(want.len());
                                assert!(r.data == &want[start..end], "thread {t} read {i}");
                            }
                            (Op::Getattr { .. }, Msg::Rgetattr(g)) => {
                                assert_eq!(g.size(), 100_000);
                            }
                            (op, msg) => panic!("{op:?} answered {msg:?}"),
                        }
                    }
                }
            });
        }
    });
}

#[test]
fn a_declined_request_leaves_no_trace_and_is_audited_when_handled() {
    let audit = AuditLog::default();
    let mut server = server(audit.clone());
    let sid = open_reader(&mut server);
    let cfg = DecodeConfig::new(Dialect::Linux, MSIZE);
    let mut out = Replies::new();
    // A walk into the refused directory: its refusal must be audited,
    // which the shared side cannot do.
    let walk = frame(
        7,
        &Op::Walk {
            fid: 0,
            newfid: 3,
            path: 9,
        },
        &[],
    )
    .expect("a request");
    assert!(
        server
            .handle_concurrent(sid, &walk, NOW, &mut out)
            .is_none()
    );
    assert!(out.is_empty());
    assert!(audit.denials().is_empty());
    server
        .handle_replies(sid, &walk, NOW, &mut out)
        .expect("up");
    let reply = split_frames(&std::mem::take(&mut out).into_vec(), cfg);
    assert_eq!(reply[0].errno(), 13, "EACCES");
    assert_eq!(audit.denials().len(), 1);
    // A write and a clunk of an open fid need the node: declined too.
    for op in [
        Op::Write {
            fid: 1,
            offset: 0,
            len: 1,
        },
        Op::Clunk { fid: 1 },
        Op::Open { fid: 0, flags: 2 },
    ] {
        let frame = frame(8, &op, b"x").expect("a request");
        assert!(
            server
                .handle_concurrent(sid, &frame, NOW, &mut out)
                .is_none(),
            "{op:?}"
        );
        assert!(out.is_empty());
    }
    // What the shared side answers, it answers; an error is a reply too.
    for (op, ty) in [
        (Op::Getattr { fid: 1 }, MsgType::Rgetattr),
        (Op::Getattr { fid: 4 }, MsgType::Rlerror),
        (Op::Statfs { fid: 0 }, MsgType::Rstatfs),
        (Op::Flush { oldtag: 3 }, MsgType::Rflush),
    ] {
        out.clear();
        let frame = frame(9, &op, &[]).expect("a request");
        server
            .handle_concurrent(sid, &frame, NOW, &mut out)
            .expect("answered")
            .expect("up");
        let reply = split_frames(&std::mem::take(&mut out).into_vec(), cfg);
        assert_eq!(reply[0].ty(), ty, "{op:?}");
    }
}
