//! Arbitrary sequences of frames into a server engine over a sample
//! Cohesix-shaped namespace (role policy, tickets, append rings, a control
//! file, a deferring node). The engine must answer every frame with replies
//! or a framing error, never panic, keep its tables within their limits,
//! and keep serving a well-formed session afterwards. Half of the frames
//! go through `handle_replies`, where a read of 16 KiB or more of
//! `/queen/big` (a writable `MemFile`) is a shared slice of the file; half
//! of those through `handle_concurrent` first, as the runners serve them
//! (a request it declines must have left nothing behind).
//!
//! Input layout: a sequence of records `len[2] op[1] bytes[len]`. `op`
//! picks what to do with the bytes: feed them as a frame to session A or B,
//! complete or drop the oldest deferred request, revoke a ticket, or close
//! and reopen a session. Sessions A and B start versioned and attached (the
//! Queen and a heartbeat worker) so the fuzzer reaches deep states quickly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use secure9p_codec::{Dialect, Fid, Frame, Msg, Tag, Tattach, Tversion};
use secure9p_core::{
    AppendLog, Claims, Completion, CtlFile, FsError, Handle, Io, IoCtx, MemFile, Namespace, Node,
    NodeAttr, NodeKind, Ops, Outcome, Replies, Role, RulePolicy, Server, ServerConfig, StaticFile,
    TicketAuthority, Token,
};

const NOW: u64 = 1_000;
const KEY: [u8; 32] = [7; 32];
/// Large enough for a shared read (`SHARE_MIN`, 16 KiB) of `/queen/big`.
const MSIZE: u32 = 32 * 1024;

/// Reads are answered later by the fuzz input.
struct Deferring;

impl Node for Deferring {
    fn kind(&self) -> NodeKind {
        NodeKind::File
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr { mode: 0o666, ..NodeAttr::default() }
    }
    fn read(&mut self, _: &IoCtx<'_>, _: &mut Handle, _: u64, _: u32, _: &mut Vec<u8>) -> Io<()> {
        Io::Defer
    }
    fn write(&mut self, _: &IoCtx<'_>, _: &mut Handle, _: u64, _: &[u8]) -> Io<u32> {
        Io::Defer
    }
}

fn ticket(t: &TicketAuthority, id: u8, role: Role, subject: &str, scope: &str) -> String {
    let claims = Claims {
        role,
        subject: subject.into(),
        expires: NOW + 100,
        scope: scope.into(),
    };
    t.mint([id; 32], &claims).expect("claims are encodable")
}

fn server(tickets: TicketAuthority) -> Server {
    let mut ns = Namespace::new();
    let proc_ = ns.mkdir_all("/proc", 0o555).expect("mkdir");
    ns.add_file(proc_, "boot", Box::new(StaticFile::new("cohesix fuzz\n"))).expect("add");
    let queen = ns.mkdir_all("/queen", 0o755).expect("mkdir");
    ns.add_file(queen, "ctl", Box::new(CtlFile::new(256, |_, cmd: &[u8]| {
        if cmd.starts_with(b"ok") { Ok(b"done\n".to_vec()) } else { Err(FsError::Invalid) }
    })))
    .expect("add");
    ns.add_file(queen, "slow", Box::new(Deferring)).expect("add");
    let big: Vec<u8> = (0..24 * 1024u32).map(|i| i as u8).collect();
    ns.add_file(queen, "big", Box::new(MemFile::new(big, 64 * 1024))).expect("add");
    let log = ns.mkdir_all("/log", 0o755).expect("mkdir");
    ns.add_file(log, "queen.log", Box::new(AppendLog::new(512, 128))).expect("add");
    for w in ["w1", "w2"] {
        let dir = ns.mkdir_all(&format!("/worker/{w}"), 0o755).expect("mkdir");
        ns.add_file(dir, "telemetry", Box::new(AppendLog::new(256, 64))).expect("add");
    }
    let policy = RulePolicy::new()
        .allow(Role::Queen, "/**", Ops::all())
        .allow(Role::WorkerHeartbeat, "/worker/{subject}/telemetry", Ops::WRITE);
    let config = ServerConfig {
        max_fids: 32,
        max_inflight: 4,
        max_msize: MSIZE,
        ..ServerConfig::default()
    };
    Server::new(ns, policy, config).with_tickets(tickets)
}

fn frame(tag: u16, msg: Msg<'_>) -> Vec<u8> {
    let f = Frame { tag: Tag(tag), msg };
    let mut out = vec![0; f.encoded_len()];
    let _ = f.encode(&mut out);
    out
}

fn setup(s: &mut Server, aname: &str) -> secure9p_core::SessionId {
    let sid = s.open_session();
    let mut out = Vec::new();
    let v = frame(0xffff, Msg::Tversion(Tversion { msize: MSIZE, version: Dialect::Linux.version() }));
    let _ = s.handle(sid, &v, NOW, &mut out);
    let a = frame(1, Msg::Tattach(Tattach { fid: Fid(0), afid: Fid::NOFID, uname: "f", aname, n_uname: Some(0) }));
    let _ = s.handle(sid, &a, NOW, &mut out);
    sid
}

fuzz_target!(|data: &[u8]| {
    let tickets = TicketAuthority::new(KEY);
    let queen = ticket(&tickets, 1, Role::Queen, "queen", "");
    let worker = ticket(&tickets, 2, Role::WorkerHeartbeat, "w1", "/worker/w1");
    let mut s = server(tickets);
    let mut sessions = [setup(&mut s, &queen), setup(&mut s, &worker)];
    let mut deferred: Vec<Token> = Vec::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut now = NOW;
    while let Some((head, tail)) = rest.split_first_chunk::<3>() {
        let len = usize::from(u16::from_le_bytes([head[0], head[1]])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        out.clear();
        match head[2] % 8 {
            0..=3 => {
                let sid = sessions[usize::from(head[2] % 2)];
                let handled = if head[2] % 8 >= 2 {
                    let mut replies = Replies::from(std::mem::take(&mut out));
                    // op 3: as the runners serve it, `&self` first.
                    let concurrent = if head[2] % 8 == 3 {
                        s.handle_concurrent(sid, bytes, now, &mut replies)
                    } else {
                        None
                    };
                    let h = concurrent.unwrap_or_else(|| {
                        assert!(replies.is_empty(), "a declined request appended nothing");
                        s.handle_replies(sid, bytes, now, &mut replies)
                    });
                    out = replies.into_vec();
                    h
                } else {
                    s.handle(sid, bytes, now, &mut out)
                };
                match handled {
                    Ok(Outcome::Deferred { token, .. }) => deferred.push(token),
                    Ok(Outcome::Replied) => assert!(!out.is_empty(), "a reply is due"),
                    Err(_) => {}
                }
            }
            4 => {
                if !deferred.is_empty() {
                    let t = deferred.remove(0);
                    let result = if bytes.first().is_some_and(|b| b % 2 == 0) {
                        Completion::Read(Ok(bytes.to_vec()))
                    } else {
                        Completion::Write(Ok(bytes.len() as u32))
                    };
                    let _ = s.complete(t, result, &mut out);
                }
            }
            5 => {
                let id = bytes.first().copied().unwrap_or(1);
                s.revoke(secure9p_core::TicketId([id; 32]), now);
            }
            6 => {
                let i = usize::from(bytes.first().copied().unwrap_or(0) % 2);
                s.close_session(sessions[i]);
                sessions[i] = setup(&mut s, if i == 0 { &queen } else { &worker });
            }
            _ => now = now.saturating_add(u64::from(bytes.first().copied().unwrap_or(0))),
        }
        for sid in sessions {
            assert!(s.fid_count(sid) <= 32);
            assert!(s.pending_count(sid) <= 4);
        }
    }
    // A fresh, well-formed session still works at the end.
    let sid = s.open_session();
    out.clear();
    let v = frame(0xffff, Msg::Tversion(Tversion { msize: MSIZE, version: "9P2000.L" }));
    let _ = s.handle(sid, &v, NOW, &mut out);
    assert!(!out.is_empty());
});
