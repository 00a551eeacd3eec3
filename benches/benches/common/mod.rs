//! What the engine benches share: frames, checked calls, and a warm
//! session of a namespace server holding `/f` open as fid 1.

// Each bench uses its own part of it.
#![allow(dead_code)]

use secure9p_codec::{
    DecodeConfig, Dialect, Fid, Frame, LOpenFlags, Msg, Tag, Tattach, Tlopen, Tversion, Twalk,
    WalkNames,
};
use secure9p_core::{Outcome, Principal, Role, Server, ServerConfig, SessionId};
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

/// A new session of `s` (a namespace holding `/f`) with `/f` open as fid 1.
pub fn open_f(s: &mut Server, msize: u32, flags: LOpenFlags) -> SessionId {
    let sid = s.open_session();
    start(s, sid, msize);
    ok(s, sid, &frame(3, Msg::Twalk(walk(0, 1, &["f"]))), msize);
    let open = Tlopen { fid: Fid(1), flags };
    ok(s, sid, &frame(4, Msg::Tlopen(open)), msize);
    sid
}
