//! Limits and broken requests: each case gets its documented errno (or, for
//! lost framing, `SessionError::Framing`), never a panic, and each is
//! followed by a request that succeeds, proving the session still works.

mod common;

use common::{Slow, Wire, raw_frame};
use secure9p_core::codec::{
    self, CodecError, Dialect, Fid, GetattrMask, HEADER_LEN, LOpenFlags, Msg, MsgType, Tag,
    WalkNames,
};
use secure9p_core::{
    AllowAll, Claims, Completion, FsError, Namespace, Outcome, Principal, Role, Server,
    ServerConfig, SessionError, StaticFile, TicketAuthority,
};

const HELLO: &[u8] = b"hi\n";

fn namespace() -> Namespace {
    let mut ns = Namespace::new();
    let root = ns.root();
    ns.add_file(root, "hello", Box::new(StaticFile::new(HELLO)))
        .unwrap();
    ns.mkdir(root, "dir", 0o755).unwrap();
    ns.add_file(root, "slow", Box::<Slow>::default()).unwrap();
    ns
}

fn config() -> ServerConfig {
    ServerConfig {
        anonymous: Some(Principal::anonymous(Role::Anonymous, "guest")),
        ..ServerConfig::default()
    }
}

/// A 9P2000.L session over `config`, attached as fid 0.
fn session(config: ServerConfig, msize: u32) -> Wire {
    let mut w = Wire::connect(
        Server::new(namespace(), AllowAll, config),
        msize,
        Dialect::Linux,
    );
    w.attach(0, "").unwrap();
    w
}

/// The proof of life after each case: a fresh fid reads `/hello`.
fn still_usable(w: &mut Wire) {
    let fid = 4_000_000 + w.client.in_flight() as u32 + w.server().fid_count(w.sid) as u32;
    w.walk(0, fid, &["hello"]).expect("walk after the case");
    w.lopen(fid, LOpenFlags::empty())
        .expect("open after the case");
    assert_eq!(w.read(fid, 0, 100).expect("read after the case"), HELLO);
    w.clunk(fid).expect("clunk after the case");
}

fn getattr_frame(tag: Tag, fid: u32) -> Vec<u8> {
    raw_frame(
        tag,
        codec::Tgetattr {
            fid: Fid(fid),
            request_mask: GetattrMask::BASIC,
        },
    )
}

// ---- tables ----

#[test]
fn a_full_fid_table_refuses_with_emfile() {
    let mut w = session(
        ServerConfig {
            max_fids: 4,
            ..config()
        },
        8192,
    );
    for fid in 1..4 {
        w.walk(0, fid, &[]).unwrap();
    }
    assert_eq!(w.walk(0, 4, &["hello"]), Err(FsError::TooManyFids));
    assert_eq!(w.walk(0, 4, &["hello"]).err().map(FsError::errno), Some(24));
    assert_eq!(w.attach(5, ""), Err(FsError::TooManyFids));
    assert_eq!(w.server().fid_count(w.sid), 4);
    // Walking a fid onto itself needs no new slot.
    assert_eq!(w.walk(3, 3, &["hello"]).unwrap().len(), 1);
    w.lopen(3, LOpenFlags::empty()).unwrap();
    assert_eq!(w.read(3, 0, 10).unwrap(), HELLO);
    // A clunk frees a slot.
    w.clunk(1).unwrap();
    still_usable(&mut w);
    w.walk(0, 4, &[]).unwrap();
    assert_eq!(w.server().fid_count(w.sid), 4);
}

#[test]
fn the_in_flight_cap_refuses_with_eagain_until_a_slot_frees() {
    let mut w = session(
        ServerConfig {
            max_inflight: 1,
            ..config()
        },
        8192,
    );
    w.walk(0, 1, &["slow"]).unwrap();
    w.lopen(1, LOpenFlags::RDWR).unwrap();
    let read = codec::Tread {
        fid: Fid(1),
        offset: 0,
        count: 10,
    };
    let (tag, outcome, _) = w.send(read);
    assert!(matches!(outcome, Outcome::Deferred { .. }));
    let r = w.call(read);
    assert_eq!(r.errno(), 11);
    let r = w.call(codec::Twrite {
        fid: Fid(1),
        offset: 0,
        data: b"x",
    });
    assert_eq!(r.errno(), 11, "writes share the cap");
    assert_eq!(w.server().pending_count(w.sid), 1);
    still_usable(&mut w);
    // Flushing the pending request frees the slot.
    w.flush(tag);
    let (_, outcome, _) = w.send(read);
    let Outcome::Deferred { token, .. } = outcome else {
        panic!("accepted once the slot is free");
    };
    let (_, frames) = w.complete(token, Completion::Read(Ok(b"done".to_vec())));
    assert!(matches!(frames[0].msg(), Msg::Rread(d) if d.data == b"done"));
    still_usable(&mut w);
}

// ---- frames ----

#[test]
fn a_frame_larger_than_msize_gets_emsgsize() {
    let mut w = session(config(), 4096);
    w.walk(0, 1, &["dir"]).unwrap();
    let big = vec![b'x'; 5000];
    let frame = raw_frame(
        Tag(9),
        codec::Twrite {
            fid: Fid(1),
            offset: 0,
            data: &big,
        },
    );
    let r = w.call_raw(&frame);
    assert_eq!((r.tag(), r.errno()), (Tag(9), 90));
    // One byte over is over; exactly msize is fine (and reaches the fid).
    let at_limit = vec![b'x'; 4096 - 23];
    for (len, want) in [(at_limit.len() + 1, 90), (at_limit.len(), 9)] {
        let data = vec![b'x'; len];
        let frame = raw_frame(
            Tag(10),
            codec::Twrite {
                fid: Fid(1),
                offset: 0,
                data: &data,
            },
        );
        assert_eq!(frame.len(), 23 + len);
        assert_eq!(
            w.call_raw(&frame).errno(),
            want,
            "frame of {} bytes",
            frame.len()
        );
    }
    still_usable(&mut w);
}

#[test]
fn a_walk_of_seventeen_names_is_einval() {
    let mut w = session(config(), 8192);
    let names = [".."; 16];
    let sixteen = raw_frame(
        Tag(3),
        codec::Twalk {
            fid: Fid(0),
            newfid: Fid(1),
            wnames: WalkNames::new(&names).unwrap(),
        },
    );
    // The codec cannot even build 17; add the 17th name by hand.
    let mut seventeen = sixteen.clone();
    let nwname = HEADER_LEN + 8;
    seventeen[nwname..nwname + 2].copy_from_slice(&17u16.to_le_bytes());
    seventeen.extend_from_slice(&2u16.to_le_bytes());
    seventeen.extend_from_slice(b"..");
    let size = seventeen.len() as u32;
    seventeen[..4].copy_from_slice(&size.to_le_bytes());
    let r = w.call_raw(&seventeen);
    assert_eq!((r.tag(), r.errno()), (Tag(3), 22));
    assert_eq!(w.server().fid_count(w.sid), 1, "no newfid");
    // Sixteen is the limit, not an error.
    let r = w.call_raw(&sixteen);
    assert!(matches!(r.msg(), Msg::Rwalk(q) if q.wqids.len() == 16));
    still_usable(&mut w);
}

/// Message types whose body is empty: a bare header decodes as one of them.
const EMPTY_BODIED: [u8; 11] = [21, 27, 33, 51, 71, 75, 77, 109, 121, 123, 127];

#[test]
fn every_type_byte_gets_an_error_reply_with_its_tag() {
    let mut w = session(config(), 8192);
    for ty in 0..=u8::MAX {
        let tag = Tag(1000 + u16::from(ty));
        let mut frame = (HEADER_LEN as u32).to_le_bytes().to_vec();
        frame.push(ty);
        frame.extend_from_slice(&tag.0.to_le_bytes());
        let r = w.call_raw(&frame);
        let want = match MsgType::from_u8(ty) {
            // EOPNOTSUPP: not a 9P message at all, or a request this
            // engine does not serve (whatever its body).
            None => 95,
            Some(t) if t.is_request() && !secure9p_core::Server::serves(t) => 95,
            // EPROTO: a reply where a request belongs.
            Some(_) if EMPTY_BODIED.contains(&ty) => 71,
            // EBADMSG: a known request (or reply) without its body.
            Some(_) => 74,
        };
        assert_eq!(r.ty(), MsgType::Rlerror, "type {ty}");
        assert_eq!((r.tag(), r.errno()), (tag, want), "type {ty}");
    }
    still_usable(&mut w);
}

#[test]
fn unknown_type_bytes_with_bodies_are_eopnotsupp() {
    let mut w = session(config(), 8192);
    for ty in [0u8, 1, 6, 99, 106, 128, 200, 255] {
        let mut frame = 20u32.to_le_bytes().to_vec();
        frame.push(ty);
        frame.extend_from_slice(&7u16.to_le_bytes());
        frame.extend_from_slice(&[0xAB; 13]);
        let r = w.call_raw(&frame);
        assert_eq!((r.tag(), r.errno()), (Tag(7), 95), "type {ty}");
        still_usable(&mut w);
    }
}

#[test]
fn requests_the_engine_does_not_serve_are_eopnotsupp() {
    let mut w = session(config(), 8192);
    let r = w.call_raw(&raw_frame(
        Tag(2),
        codec::Tmkdir {
            dfid: Fid(0),
            name: "new",
            mode: 0o755,
            gid: 0,
        },
    ));
    assert_eq!((r.tag(), r.errno()), (Tag(2), 95));
    let r = w.call_raw(&raw_frame(Tag(3), codec::Treadlink { fid: Fid(0) }));
    assert_eq!((r.tag(), r.errno()), (Tag(3), 95));
    still_usable(&mut w);
}

#[test]
fn a_reply_sent_as_a_request_is_eproto() {
    let mut w = session(config(), 8192);
    let replies = [
        raw_frame(Tag(1), codec::Rclunk {}),
        raw_frame(Tag(2), codec::Rread { data: b"data" }),
        raw_frame(Tag(3), codec::Rlerror { ecode: 5 }),
        raw_frame(
            Tag(4),
            codec::Rversion {
                msize: 8192,
                version: "9P2000.L",
            },
        ),
        raw_frame(Tag(5), codec::Rflush {}),
    ];
    for (i, frame) in replies.iter().enumerate() {
        let r = w.call_raw(frame);
        assert_eq!((r.tag(), r.errno()), (Tag(i as u16 + 1), 71));
        still_usable(&mut w);
    }
    // A 9P2000 session says so in words.
    let mut b = Wire::connect(
        Server::new(namespace(), AllowAll, config()),
        8192,
        Dialect::Base,
    );
    let r = b.call_raw(&replies[0]);
    assert!(
        matches!(r.msg(), Msg::Rerror(e) if e.ename == "protocol error"),
        "{r:?}"
    );
}

#[test]
fn lost_framing_is_a_session_error() {
    let mut w = session(config(), 8192);
    let good = getattr_frame(Tag(1), 0);
    // Size field larger, then smaller, than the bytes given.
    let mut longer = good.clone();
    longer.push(0);
    let mut shorter = good.clone();
    shorter.pop();
    for (bytes, want) in [
        (
            &longer[..],
            CodecError::SizeMismatch {
                declared: good.len() as u32,
                actual: good.len() + 1,
            },
        ),
        (
            &shorter[..],
            CodecError::SizeMismatch {
                declared: good.len() as u32,
                actual: good.len() - 1,
            },
        ),
        (&good[..3], CodecError::ShortHeader { got: 3 }),
        (&[], CodecError::ShortHeader { got: 0 }),
        (&[6, 0, 0, 0, 24, 1, 0][..], CodecError::SizeBelowHeader(6)),
    ] {
        assert_eq!(w.send_raw(bytes).err(), Some(SessionError::Framing(want)));
        // Nothing was emitted, and the engine lost nothing: the transport
        // closes the connection, but a well-framed request still works.
        still_usable(&mut w);
    }
    let r = w.call_raw(&good);
    assert_eq!(r.ty(), MsgType::Rgetattr);
}

#[test]
fn requests_before_version_are_eproto() {
    let mut w = Wire::new(Server::new(namespace(), AllowAll, config()), 8192);
    let r = w.call_raw(&getattr_frame(Tag(1), 0));
    assert_eq!((r.tag(), r.errno()), (Tag(1), 71));
    w.version(Dialect::Linux).0.unwrap();
    w.attach(0, "").unwrap();
    still_usable(&mut w);
}

// ---- fid numbers ----

#[test]
fn strict_mode_refuses_any_reuse_of_a_fid_number() {
    let mut w = session(
        ServerConfig {
            strict_fids: true,
            ..config()
        },
        8192,
    );
    w.walk(0, 10, &["hello"]).unwrap();
    w.clunk(10).unwrap();
    // The clunked number, and every number at or below the high-water mark.
    for fid in [10, 1, 5, 9] {
        assert_eq!(
            w.walk(0, fid, &["hello"]),
            Err(FsError::BadFid),
            "fid {fid}"
        );
        assert_eq!(
            w.walk(0, fid, &["hello"]).err().map(FsError::errno),
            Some(9)
        );
    }
    assert_eq!(w.attach(7, ""), Err(FsError::BadFid));
    // Above it is fine, and raises the mark.
    w.walk(0, 11, &["hello"]).unwrap();
    w.walk(0, 20, &[]).unwrap();
    assert_eq!(w.walk(0, 15, &[]), Err(FsError::BadFid));
    w.attach(21, "").unwrap();
    // A fid walked onto itself keeps its number: that is not a reuse.
    w.walk(20, 20, &["dir"]).unwrap();
    // Refused numbers never became fids.
    assert_eq!(w.server().fid_count(w.sid), 4, "0, 11, 20, 21");
    let fid = 100;
    w.walk(0, fid, &["hello"]).unwrap();
    w.lopen(fid, LOpenFlags::empty()).unwrap();
    assert_eq!(w.read(fid, 0, 10).unwrap(), HELLO);
}

#[test]
fn default_mode_lets_clunked_numbers_be_bound_again() {
    let mut w = session(config(), 8192);
    w.walk(0, 10, &["hello"]).unwrap();
    w.clunk(10).unwrap();
    w.walk(0, 10, &["dir"]).unwrap();
    assert!(w.getattr(10).unwrap().0.ty.contains(codec::QidType::DIR));
    w.walk(0, 5, &[]).unwrap();
    w.clunk(0).unwrap();
    w.attach(0, "").unwrap();
    still_usable(&mut w);
}

#[test]
fn nofid_is_never_bound() {
    let mut w = session(config(), 8192);
    let nofid = Fid::NOFID.0;
    assert_eq!(w.walk(0, nofid, &["hello"]), Err(FsError::BadFid));
    assert_eq!(w.attach(nofid, ""), Err(FsError::BadFid));
    assert_eq!(w.server().fid_count(w.sid), 1);

    let server = Server::new(namespace(), AllowAll, ServerConfig::default())
        .with_tickets(TicketAuthority::new([1; 32]));
    let mut t = Wire::connect(server, 8192, Dialect::Linux);
    let r = t.call(codec::Tauth {
        afid: Fid::NOFID,
        uname: "u",
        aname: "",
        n_uname: Some(0),
    });
    assert_eq!(r.errno(), 9);
    // An attach with afid NOFID is a plain attach, as the protocol means.
    let ticket = TicketAuthority::new([1; 32])
        .mint(
            [2; 32],
            &Claims {
                role: Role::Queen,
                subject: "q".into(),
                expires: u64::MAX,
                scope: String::new(),
            },
        )
        .unwrap();
    t.attach(0, &ticket).unwrap();
    still_usable(&mut t);
    // In strict mode a refused NOFID does not raise the high-water mark.
    let mut s = session(
        ServerConfig {
            strict_fids: true,
            ..config()
        },
        8192,
    );
    assert_eq!(s.walk(0, nofid, &[]), Err(FsError::BadFid));
    still_usable(&mut s);
}
