//! Hostile frames: whatever bytes arrive behind a well-formed header, the
//! server answers each with exactly one reply frame carrying the request's
//! tag (or defers it), never panics, and afterwards still serves a valid
//! session from version to read.

mod common;

use common::{Slow, Wire, raw_frame};
use proptest::prelude::*;
use secure9p_core::codec::{
    self, Dialect, Fid, GetattrMask, HEADER_LEN, Header, LOpenFlags, OpenMode, Tag, WalkNames,
};
use secure9p_core::{
    AppendLog, Ops, Outcome, Principal, Role, RulePolicy, Server, ServerConfig, StaticFile,
};

const HELLO: &[u8] = b"hi\n";

fn server() -> Server {
    let mut ns = secure9p_core::Namespace::new();
    let root = ns.root();
    ns.add_file(root, "hello", Box::new(StaticFile::new(HELLO)))
        .unwrap();
    ns.add_file(root, "log", Box::new(AppendLog::new(256, 64)))
        .unwrap();
    ns.add_file(root, "slow", Box::<Slow>::default()).unwrap();
    let dir = ns.mkdir(root, "dir", 0o755).unwrap();
    ns.add_file(dir, "a", Box::new(StaticFile::new("a")))
        .unwrap();
    let config = ServerConfig {
        max_fids: 16,
        max_inflight: 4,
        anonymous: Some(Principal::anonymous(Role::Anonymous, "guest")),
        ..ServerConfig::default()
    };
    // Everything but remove, so that the files the proof of life reads
    // survive whatever the hostile frames ask.
    let policy =
        RulePolicy::new().allow(Role::Anonymous, "/**", Ops::WALK | Ops::READ | Ops::WRITE);
    Server::new(ns, policy, config)
}

/// A session with fids to aim at: 0 the root, 1 `/hello` open for reading,
/// 2 `/dir` open, 3 `/log` open for writing, 4 `/slow` open.
fn target(dialect: Dialect) -> Wire {
    let mut w = Wire::connect(server(), 8192, dialect);
    w.attach(0, "").unwrap();
    for (fid, name, write) in [
        (1, "hello", false),
        (2, "dir", false),
        (3, "log", true),
        (4, "slow", true),
    ] {
        w.walk(0, fid, &[name]).unwrap();
        let r = match dialect {
            Dialect::Linux => w.call(codec::Tlopen {
                fid: Fid(fid),
                flags: if write {
                    LOpenFlags::RDWR
                } else {
                    LOpenFlags::empty()
                },
            }),
            Dialect::Base => w.call(codec::Topen {
                fid: Fid(fid),
                mode: if write {
                    OpenMode::RDWR
                } else {
                    OpenMode::empty()
                },
            }),
        };
        r.result().unwrap();
    }
    w
}

/// Feeds one hostile frame; checks the answer is one reply with its tag.
fn feed(w: &mut Wire, frame: &[u8]) {
    let tag = Header::peek(frame).unwrap().tag;
    let (outcome, replies) = w
        .send_raw(frame)
        .expect("a well-framed request never ends the session");
    match outcome {
        Outcome::Replied => {
            assert_eq!(replies.len(), 1, "one reply per request");
            assert_eq!(replies[0].tag(), tag, "the reply carries the request's tag");
        }
        Outcome::Deferred { .. } => assert!(replies.is_empty()),
    }
}

/// The proof of life: a whole valid session, from version to read.
fn serves_a_valid_session(mut w: Wire) {
    let cancelled = w.server().close_session(w.sid);
    assert!(cancelled.len() <= 4, "bounded by max_inflight");
    let mut fresh = w.another(8192, Dialect::Linux);
    fresh.attach(0, "").unwrap();
    fresh.walk(0, 1, &["dir", "a"]).unwrap();
    fresh.lopen(1, LOpenFlags::empty()).unwrap();
    assert_eq!(fresh.read(1, 0, 10).unwrap(), b"a");
    // And the hostile session's own number is gone for good.
    assert!(
        w.send_raw(&raw_frame(Tag(1), codec::Tclunk { fid: Fid(0) }))
            .is_err()
    );
}

/// Same session, re-versioned: the engine's state survived the frames.
fn recovers_in_place(w: &mut Wire) {
    w.version(Dialect::Linux)
        .0
        .expect("version after hostile frames");
    w.attach(0, "").unwrap();
    w.walk(0, 1, &["hello"]).unwrap();
    w.lopen(1, LOpenFlags::empty()).unwrap();
    assert_eq!(w.read(1, 0, 10).unwrap(), HELLO);
}

/// Type bytes of every request, so generated frames reach the decoders.
const REQUESTS: [u8; 36] = [
    8, 12, 14, 16, 18, 20, 22, 24, 26, 30, 32, 40, 50, 52, 54, 70, 72, 74, 76, 100, 102, 104, 106,
    108, 110, 112, 114, 116, 118, 120, 122, 124, 126, 7, 101, 117,
];

fn type_byte() -> impl Strategy<Value = u8> {
    prop_oneof![3 => proptest::sample::select(REQUESTS.to_vec()), 1 => any::<u8>()]
}

/// A body that often starts with a fid the session holds, so hostile
/// frames reach the engine's handlers and not only the decoder.
fn body() -> impl Strategy<Value = Vec<u8>> {
    (0u32..6, proptest::collection::vec(any::<u8>(), 0..96)).prop_map(|(fid, rest)| {
        let mut b = fid.to_le_bytes().to_vec();
        b.extend(rest);
        b
    })
}

fn frame(ty: u8, tag: u16, body: &[u8]) -> Vec<u8> {
    let mut f = ((HEADER_LEN + body.len()) as u32).to_le_bytes().to_vec();
    f.push(ty);
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(body);
    f
}

/// Valid requests of the target session, to be mutated.
fn valid_requests() -> Vec<Vec<u8>> {
    let names = ["dir", "a"];
    vec![
        raw_frame(
            Tag(1),
            codec::Twalk {
                fid: Fid(0),
                newfid: Fid(9),
                wnames: WalkNames::new(&names).unwrap(),
            },
        ),
        raw_frame(
            Tag(2),
            codec::Tread {
                fid: Fid(1),
                offset: 0,
                count: 100,
            },
        ),
        raw_frame(
            Tag(3),
            codec::Twrite {
                fid: Fid(3),
                offset: 0,
                data: b"line\n",
            },
        ),
        raw_frame(
            Tag(4),
            codec::Treaddir {
                fid: Fid(2),
                offset: 0,
                count: 512,
            },
        ),
        raw_frame(
            Tag(5),
            codec::Tgetattr {
                fid: Fid(1),
                request_mask: GetattrMask::BASIC,
            },
        ),
        raw_frame(
            Tag(6),
            codec::Tlopen {
                fid: Fid(0),
                flags: LOpenFlags::empty(),
            },
        ),
        raw_frame(
            Tag(7),
            codec::Tattach {
                fid: Fid(8),
                afid: Fid::NOFID,
                uname: "u",
                aname: "",
                n_uname: Some(0),
            },
        ),
        raw_frame(Tag(8), codec::Tflush { oldtag: Tag(1) }),
        raw_frame(Tag(9), codec::Tclunk { fid: Fid(2) }),
        raw_frame(Tag(10), codec::Tremove { fid: Fid(1) }),
        raw_frame(
            Tag(11),
            codec::Tversion {
                msize: 8192,
                version: "9P2000.L",
            },
        ),
        raw_frame(
            Tag(12),
            codec::Tread {
                fid: Fid(4),
                offset: 0,
                count: 10,
            },
        ),
        raw_frame(Tag(13), codec::Tstatfs { fid: Fid(0) }),
        raw_frame(
            Tag(14),
            codec::Tfsync {
                fid: Fid(3),
                datasync: 0,
            },
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_break_the_server(
        frames in proptest::collection::vec((type_byte(), any::<u16>(), body()), 1..12),
        base in any::<bool>(),
    ) {
        let mut w = target(if base { Dialect::Base } else { Dialect::Linux });
        for (ty, tag, body) in &frames {
            feed(&mut w, &frame(*ty, *tag, body));
        }
        recovers_in_place(&mut w);
        serves_a_valid_session(w);
    }

    #[test]
    fn mutated_valid_requests_never_break_the_server(
        picks in proptest::collection::vec(
            (any::<proptest::sample::Index>(), proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..4)),
            1..12,
        ),
    ) {
        let valid = valid_requests();
        let mut w = target(Dialect::Linux);
        for (which, flips) in &picks {
            let mut f = which.get(&valid).clone();
            // Mutate anything after the size field, so framing holds.
            for (at, byte) in flips {
                let i = 4 + at.index(f.len() - 4);
                f[i] = *byte;
            }
            feed(&mut w, &f);
        }
        recovers_in_place(&mut w);
        serves_a_valid_session(w);
    }
}
