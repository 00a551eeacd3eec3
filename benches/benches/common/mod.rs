//! What the engine benches share: frames, checked calls, and a warm
//! session of a namespace server holding `/f` open as fid 1.

// Each bench uses its own part of it.
#![allow(dead_code)]

use secure9p_codec::{
    DecodeConfig, Dialect, Fid, Frame, LOpenFlags, Msg, Tag, Tattach, Tlcreate, Tlopen, Tversion,
    Twalk, Twrite, WalkNames,
};
use secure9p_core::{FsServer, Outcome, Principal, Role, ServerConfig, SessionId};
use secure9p_fs::MemFs;
// The runners' view of an engine: both entry points, for either engine.
use secure9p_transport::server::Engine;

/// The time every request is handled at.
pub const NOW: u64 = 1_700_000_000;

/// `msg` encoded under `tag`.
pub fn frame(tag: u16, msg: Msg<'_>) -> Vec<u8> {
    let f = Frame { tag: Tag(tag), msg };
    let mut out = vec![0u8; f.encoded_len()];
    let n = f.encode(&mut out).expect("encode");
    out.truncate(n);
    out
}

/// The reply must be one frame and not an error.
pub fn check(reply: &[u8], msize: u32) {
    let f = Frame::decode(reply, DecodeConfig::new(Dialect::Linux, msize)).expect("a reply");
    assert!(
        !matches!(f.msg, Msg::Rlerror(_)),
        "request failed: {:?}",
        f.msg
    );
}

/// Sends `frame` and returns the one reply, which must not be an error.
pub fn ok(e: &mut impl Engine, sid: SessionId, f: &[u8], msize: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let outcome = e.handle(sid, f, NOW, &mut out).expect("session stays up");
    assert_eq!(outcome, Outcome::Replied);
    check(&out, msize);
    out
}

/// A walk of `names` from `fid` to `newfid`.
pub fn walk<'a>(fid: u32, newfid: u32, names: &'a [&'a str]) -> Twalk<'a> {
    Twalk {
        fid: Fid(fid),
        newfid: Fid(newfid),
        wnames: WalkNames::new(names).expect("a short walk"),
    }
}

/// Version and attach (fid 0 is the root).
pub fn start(e: &mut impl Engine, sid: SessionId, msize: u32) {
    let version = Tversion {
        msize,
        version: Dialect::Linux.version(),
    };
    ok(e, sid, &frame(0xffff, Msg::Tversion(version)), msize);
    let attach = Tattach {
        fid: Fid(0),
        afid: Fid::NOFID,
        uname: "bench",
        aname: "",
        n_uname: Some(0),
    };
    ok(e, sid, &frame(1, Msg::Tattach(attach)), msize);
}

/// Anonymous attaches allowed, everything else the defaults.
pub fn anonymous() -> ServerConfig {
    ServerConfig {
        anonymous: Some(Principal::anonymous(Role::Anonymous, "guest")),
        ..ServerConfig::default()
    }
}

/// A new session of `s` (either engine, its tree holding `/f`) with `/f`
/// open as fid 1.
pub fn open_f(s: &mut impl Engine, msize: u32, flags: LOpenFlags) -> SessionId {
    let sid = s.open_session();
    start(s, sid, msize);
    ok(s, sid, &frame(3, Msg::Twalk(walk(0, 1, &["f"]))), msize);
    let open = Tlopen { fid: Fid(1), flags };
    ok(s, sid, &frame(4, Msg::Tlopen(open)), msize);
    sid
}

/// A file server over `MemFs` holding `/f` with `data`, written through a
/// session (returned) that keeps it open read-write as fid 1.
pub fn memfs_with_f(data: &[u8], msize: u32) -> (FsServer, SessionId) {
    let mut s = FsServer::new(MemFs::default(), ServerConfig::default());
    let sid = s.open_session();
    start(&mut s, sid, msize);
    ok(&mut s, sid, &frame(3, Msg::Twalk(walk(0, 1, &[]))), msize);
    let create = Tlcreate {
        fid: Fid(1),
        name: "f",
        flags: LOpenFlags::RDWR,
        mode: 0o644,
        gid: 0,
    };
    ok(&mut s, sid, &frame(4, Msg::Tlcreate(create)), msize);
    let chunk = (msize / 2) as usize;
    for (i, part) in data.chunks(chunk).enumerate() {
        let w = Twrite {
            fid: Fid(1),
            offset: (i * chunk) as u64,
            data: part,
        };
        ok(&mut s, sid, &frame(5, Msg::Twrite(w)), msize);
    }
    (s, sid)
}
