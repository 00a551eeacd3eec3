//! Fuzzes `FsServer`, the complete file server engine, over `MemFs` (the
//! writable in-memory tree of `secure9p-fs`, bounded in bytes and inodes):
//! sequences of frames of two sessions, interleaved with session
//! close/reopen. The engine must answer every frame with replies or a
//! framing error, never panic, keep its fid table within its limit, and
//! keep serving a well-formed session afterwards. Half of the frames go
//! through `handle_concurrent` first, as the runners serve them: a request
//! it declines must have appended nothing, and one it answers must get the
//! same bytes from `handle_replies` right after (what it answers changes
//! nothing, so the second sees what the first saw).
//!
//! Input layout: records `len[2] op[1] bytes[len]`. `op` picks what to do
//! with the bytes: feed them as a frame to session A or B (exclusively, or
//! concurrent-first), or close and reopen a session. Both sessions start
//! versioned and attached (fid 0 is the root) over a tree with a directory
//! and a file larger than the engine's sharing threshold.

#![no_main]

use libfuzzer_sys::fuzz_target;
use secure9p_codec::{Dialect, Fid, Frame, LOpenFlags, Msg, Tag, Tattach, Tlcreate, Tversion, Twalk, WalkNames, Twrite};
use secure9p_core::{FsServer, Replies, ServerConfig, SessionId};
use secure9p_fs::{Limits, MemFs};

const NOW: u64 = 1_000;
/// Large enough for a shared read (`SHARE_MIN`, 16 KiB).
const MSIZE: u32 = 32 * 1024;

fn frame(tag: u16, msg: Msg<'_>) -> Vec<u8> {
    let f = Frame { tag: Tag(tag), msg };
    let mut out = vec![0; f.encoded_len()];
    let _ = f.encode(&mut out);
    out
}

fn setup(s: &mut FsServer) -> SessionId {
    let sid = s.open_session();
    let mut out = Vec::new();
    let v = frame(0xffff, Msg::Tversion(Tversion { msize: MSIZE, version: Dialect::Linux.version() }));
    let _ = s.handle(sid, &v, NOW, &mut out);
    let a = frame(1, Msg::Tattach(Tattach { fid: Fid(0), afid: Fid::NOFID, uname: "f", aname: "", n_uname: Some(0) }));
    let _ = s.handle(sid, &a, NOW, &mut out);
    sid
}

/// The tree: `/d` and `/big` (24 KiB), written through a session of its own.
fn server() -> FsServer {
    let limits = Limits { max_bytes: 1 << 20, max_inodes: 256 };
    let config = ServerConfig { max_fids: 32, max_inflight: 4, max_msize: MSIZE, ..ServerConfig::default() };
    let mut s = FsServer::new(MemFs::new(limits), config);
    let sid = setup(&mut s);
    let mut out = Vec::new();
    let names: [&str; 0] = [];
    let steps = [
        frame(2, Msg::Twalk(Twalk { fid: Fid(0), newfid: Fid(1), wnames: WalkNames::new(&names).expect("none") })),
        frame(3, Msg::Tlcreate(Tlcreate { fid: Fid(1), name: "big", flags: LOpenFlags::RDWR, mode: 0o666, gid: 0 })),
    ];
    for f in &steps {
        let _ = s.handle(sid, f, NOW, &mut out);
    }
    let big: Vec<u8> = (0..24 * 1024u32).map(|i| i as u8).collect();
    for (i, part) in big.chunks(8 * 1024).enumerate() {
        let w = frame(4, Msg::Twrite(Twrite { fid: Fid(1), offset: (i * 8 * 1024) as u64, data: part }));
        let _ = s.handle(sid, &w, NOW, &mut out);
    }
    let mkdir = frame(5, Msg::Tmkdir(secure9p_codec::Tmkdir { dfid: Fid(0), name: "d", mode: 0o777, gid: 0 }));
    let _ = s.handle(sid, &mkdir, NOW, &mut out);
    s.close_session(sid);
    s
}

fuzz_target!(|data: &[u8]| {
    let mut s = server();
    let mut sessions = [setup(&mut s), setup(&mut s)];
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((head, tail)) = rest.split_first_chunk::<3>() {
        let len = usize::from(u16::from_le_bytes([head[0], head[1]])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        out.clear();
        match head[2] % 8 {
            0..=5 => {
                let sid = sessions[usize::from(head[2] % 2)];
                let mut replies = Replies::from(std::mem::take(&mut out));
                let concurrent = if head[2] % 8 >= 2 {
                    s.handle_concurrent(sid, bytes, NOW, &mut replies)
                } else {
                    None
                };
                let handled = match concurrent {
                    Some(r) => {
                        let mut again = Replies::new();
                        let r2 = s.handle_replies(sid, bytes, NOW, &mut again);
                        assert_eq!(r, r2, "both entry points agree on the outcome");
                        let (a, b) = (replies.into_vec(), again.into_vec());
                        assert_eq!(a, b, "both entry points give the same bytes");
                        out = a;
                        r
                    }
                    None => {
                        assert!(replies.is_empty(), "a declined request appended nothing");
                        let r = s.handle_replies(sid, bytes, NOW, &mut replies);
                        out = replies.into_vec();
                        r
                    }
                };
                if let Ok(secure9p_core::Outcome::Replied) = handled {
                    assert!(!out.is_empty(), "a reply is due");
                }
            }
            _ => {
                let i = usize::from(bytes.first().copied().unwrap_or(0) % 2);
                s.close_session(sessions[i]);
                sessions[i] = setup(&mut s);
            }
        }
        for sid in sessions {
            assert!(s.fid_count(sid) <= 32);
        }
    }
    // A fresh, well-formed session still works at the end.
    let sid = s.open_session();
    out.clear();
    let v = frame(0xffff, Msg::Tversion(Tversion { msize: MSIZE, version: "9P2000.L" }));
    let _ = s.handle(sid, &v, NOW, &mut out);
    assert!(!out.is_empty());
});
