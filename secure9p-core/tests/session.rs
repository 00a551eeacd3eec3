//! The life of a session, client engine against server engine in memory:
//! version, attach (ticket in `aname` and through an auth fid), walk, open,
//! read, write, readdir, getattr, clunk, remove, statfs, a base 9P2000
//! session, and deferred requests with their completion, flush and teardown.
//! Each test states one rule of `SECURE9P.md` and fails if it changes.

mod common;

use common::{AuditLog, Reply, Slow, Wire, raw_frame};
use secure9p_core::codec::{
    self, DMAPPEND, DMDIR, Dialect, DirEntries, Fid, LOpenFlags, Msg, MsgType, OpenMode, Qid,
    QidType, Stats, Tag, WalkNames,
};
use secure9p_core::{
    AllowAll, AppendLog, Claims, Completion, CtlFile, FsError, MIN_CLIENT_MSIZE, Namespace, NodeId,
    Outcome, Principal, Role, Server, ServerConfig, StaticFile, TicketAuthority, Token,
};

const KEY: [u8; 32] = [7; 32];
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const HELLO: &[u8] = b"hi\n";
/// Entries of `/dir`, in the order they were added.
const DIR_ENTRIES: [&str; 10] = ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9"];

fn big() -> Vec<u8> {
    (0..20_000u32).map(|i| (i % 251) as u8).collect()
}

/// The nodes a test may want to reach behind the server's back.
struct Ids {
    dir: NodeId,
    slow: NodeId,
}

/// `/hello` (static), `/big` (20 000 bytes), `/log` (append-only), `/ctl`
/// (control: `ok <cmd>`, refuses `bad`), `/dir/e0..e9`, `/slow` (defers).
fn tree() -> (Namespace, Ids) {
    let mut ns = Namespace::new();
    let root = ns.root();
    ns.add_file(root, "hello", Box::new(StaticFile::new(HELLO)))
        .unwrap();
    ns.add_file(root, "big", Box::new(StaticFile::new(big())))
        .unwrap();
    ns.add_file(root, "log", Box::new(AppendLog::new(4096, 512)))
        .unwrap();
    let ctl = CtlFile::new(64, |_, cmd| {
        if cmd == b"bad" {
            Err(FsError::Invalid)
        } else {
            Ok([b"ok ".as_slice(), cmd].concat())
        }
    });
    ns.add_file(root, "ctl", Box::new(ctl)).unwrap();
    let dir = ns.mkdir(root, "dir", 0o755).unwrap();
    for name in DIR_ENTRIES {
        ns.add_file(dir, name, Box::new(StaticFile::new(name)))
            .unwrap();
    }
    let slow = ns.add_file(root, "slow", Box::<Slow>::default()).unwrap();
    (ns, Ids { dir, slow })
}

fn anonymous() -> ServerConfig {
    ServerConfig {
        anonymous: Some(Principal::anonymous(Role::Anonymous, "guest")),
        ..ServerConfig::default()
    }
}

fn server(config: ServerConfig) -> Server {
    Server::new(tree().0, AllowAll, config)
}

/// A 9P2000.L session at msize 8192, attached anonymously as fid 0.
fn attached() -> Wire {
    let mut w = Wire::connect(server(anonymous()), 8192, Dialect::Linux);
    w.attach(0, "").expect("anonymous attach");
    w
}

fn queen_claims(expires: u64) -> Claims {
    Claims {
        role: Role::Queen,
        subject: "queen".into(),
        expires,
        scope: String::new(),
    }
}

fn rdonly() -> LOpenFlags {
    LOpenFlags::empty()
}

/// Walks fid 0 to `path` as `fid` and opens it with `flags`.
fn open(w: &mut Wire, fid: u32, path: &[&str], flags: LOpenFlags) -> Result<Qid, FsError> {
    w.walk(0, fid, path)?;
    w.lopen(fid, flags)
}

fn slow(w: &Wire, id: NodeId) -> (Vec<Token>, Vec<Token>, usize) {
    let mut s = w.server();
    let node = s.namespace_mut().node_as::<Slow>(id).expect("slow node");
    (node.deferred.clone(), node.cancelled.clone(), node.clunks)
}

/// One `Treaddir`: the entries as (name, cookie, type, qid) and the bytes used.
fn readdir(w: &mut Wire, fid: u32, offset: u64, count: u32) -> Result<Listing, FsError> {
    let r = w.call(codec::Treaddir {
        fid: Fid(fid),
        offset,
        count,
    });
    let Msg::Rreaddir(d) = r.result()? else {
        panic!("unexpected {r:?}");
    };
    assert!(d.data.len() <= count as usize, "never more than asked");
    let entries = DirEntries::new(d.data)
        .map(|e| {
            let e = e.expect("whole entries only");
            (e.name.to_string(), e.offset, e.ty, e.qid)
        })
        .collect();
    Ok(Listing {
        entries,
        bytes: d.data.len(),
    })
}

struct Listing {
    entries: Vec<(String, u64, u8, Qid)>,
    bytes: usize,
}

impl Listing {
    fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.0.as_str()).collect()
    }
}

fn names_of(list: &[(String, u64, u8, Qid)]) -> Vec<&str> {
    list.iter().map(|e| e.0.as_str()).collect()
}

// ---- version ----

#[test]
fn version_negotiates_the_smaller_msize() {
    for (client, cap, want) in [
        (8192, 65_536, 8192),
        (1 << 20, 16_384, 16_384),
        (MIN_CLIENT_MSIZE, 8192, MIN_CLIENT_MSIZE),
        (9000, 9000, 9000),
    ] {
        let config = ServerConfig {
            max_msize: cap,
            ..anonymous()
        };
        let mut w = Wire::new(server(config), client);
        let (verdict, reply) = w.version(Dialect::Linux);
        verdict.expect("accepted");
        let Msg::Rversion(v) = reply.msg() else {
            panic!("unexpected {reply:?}");
        };
        assert_eq!(
            (v.msize, v.version),
            (want, "9P2000.L"),
            "client {client} cap {cap}"
        );
        assert_eq!(reply.tag(), Tag::NOTAG);
        assert_eq!(w.client.msize(), want);
        assert_eq!(w.server().msize(w.sid), Some(want));
        assert_eq!(w.server().dialect(w.sid), Some(Dialect::Linux));
    }
}

#[test]
fn version_strings_choose_the_dialect_or_unknown() {
    for (asked, answered, dialect) in [
        ("9P2000.L", "9P2000.L", Some(Dialect::Linux)),
        ("9P2000", "9P2000", Some(Dialect::Base)),
        // version(5): the text before the first '.' names the protocol.
        ("9P2000.u", "9P2000", Some(Dialect::Base)),
        ("9P2000.L.x", "9P2000", Some(Dialect::Base)),
        ("9P2000garbage", "unknown", None),
        ("9P1999", "unknown", None),
        ("", "unknown", None),
        ("9p2000.L", "unknown", None),
    ] {
        let mut w = Wire::new(server(anonymous()), 8192);
        let reply = w.call_raw(&raw_frame(
            Tag::NOTAG,
            codec::Tversion {
                msize: 8192,
                version: asked,
            },
        ));
        let Msg::Rversion(v) = reply.msg() else {
            panic!("unexpected {reply:?}");
        };
        assert_eq!(v.version, answered, "{asked:?}");
        assert_eq!(v.msize, 8192);
        assert_eq!(w.server().dialect(w.sid), dialect, "{asked:?}");
    }
}

#[test]
fn an_unknown_version_leaves_the_session_waiting_for_version() {
    let mut w = Wire::new(server(anonymous()), 8192);
    let reply = w.call_raw(&raw_frame(
        Tag::NOTAG,
        codec::Tversion {
            msize: 8192,
            version: "9P3000",
        },
    ));
    assert!(matches!(reply.msg(), Msg::Rversion(v) if v.version == "unknown"));
    // Anything but Tversion is a protocol error until a version is agreed.
    let attach = raw_frame(
        Tag(1),
        codec::Tattach {
            fid: Fid(0),
            afid: Fid::NOFID,
            uname: "u",
            aname: "",
            n_uname: Some(0),
        },
    );
    let refused = w.call_raw(&attach);
    assert_eq!((refused.tag(), refused.errno()), (Tag(1), 71));
    assert_eq!(w.server().fid_count(w.sid), 0);
    // A good version then opens the session.
    w.version(Dialect::Linux).0.expect("accepted");
    w.attach(0, "").expect("attach after version");
}

#[test]
fn version_below_the_minimum_msize_is_refused() {
    let mut w = Wire::new(server(anonymous()), MIN_CLIENT_MSIZE - 1);
    let (verdict, reply) = w.version(Dialect::Linux);
    assert!(verdict.is_err(), "the client engine refuses `unknown`");
    assert!(matches!(reply.msg(), Msg::Rversion(v) if v.version == "unknown"));
    assert_eq!(w.server().dialect(w.sid), None);

    let mut w = Wire::new(server(anonymous()), MIN_CLIENT_MSIZE);
    w.version(Dialect::Linux)
        .0
        .expect("the minimum itself is fine");
    w.attach(0, "").expect("usable");
}

#[test]
fn a_new_version_aborts_everything_the_session_had() {
    let (ns, ids) = tree();
    let mut w = Wire::connect(Server::new(ns, AllowAll, anonymous()), 8192, Dialect::Linux);
    w.attach(0, "").unwrap();
    open(&mut w, 1, &["slow"], rdonly()).unwrap();
    let (_, outcome, _) = w.send(codec::Tread {
        fid: Fid(1),
        offset: 0,
        count: 10,
    });
    let Outcome::Deferred { token, .. } = outcome else {
        panic!("deferred");
    };
    w.version(Dialect::Linux).0.expect("accepted");
    assert_eq!(w.server().fid_count(w.sid), 0);
    assert_eq!(w.server().pending_count(w.sid), 0);
    assert_eq!(w.getattr(0), Err(FsError::BadFid));
    let (_, cancelled, clunks) = slow(&w, ids.slow);
    assert_eq!((cancelled, clunks), (vec![token], 1));
    let (sid, frames) = w.complete(token, Completion::Read(Ok(b"late".to_vec())));
    assert_eq!((sid, frames.len()), (None, 0));
}

// ---- attach ----

#[test]
fn attach_with_a_ticket_in_aname() {
    let tickets = TicketAuthority::new(KEY);
    let text = tickets.mint([1; 32], &queen_claims(5_000)).unwrap();
    let id = tickets.verify(&text, 0).unwrap().id;
    let audit = AuditLog::default();
    let server = server(ServerConfig::default())
        .with_tickets(tickets)
        .with_audit(audit.clone());
    let mut w = Wire::connect(server, 8192, Dialect::Linux);

    // No ticket, no anonymous principal: refused.
    assert_eq!(w.attach(0, ""), Err(FsError::AccessDenied));
    // With the ticket in aname, Tauth says "no auth needed" (ENOENT).
    let r = w.call(codec::Tauth {
        afid: Fid(9),
        uname: "queen",
        aname: &text,
        n_uname: Some(0),
    });
    assert_eq!(r.errno(), 2);
    let qid = w.attach(0, &text).expect("attach with ticket");
    assert!(qid.ty.contains(QidType::DIR));
    let root_qid = {
        let s = w.server();
        s.namespace().qid(s.namespace().root()).unwrap()
    };
    assert_eq!(qid, root_qid);
    assert_eq!(w.read_file(1, &["hello"]), HELLO);
    let accepted: Vec<_> = audit
        .events()
        .into_iter()
        .filter(|e| e.debug.contains("TicketAccepted"))
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].ticket, Some(id));
    assert_eq!(accepted[0].role, Some(Role::Queen));
}

#[test]
fn attach_through_an_auth_fid() {
    let tickets = TicketAuthority::new(KEY);
    let text = tickets.mint([2; 32], &queen_claims(5_000)).unwrap();
    let audit = AuditLog::default();
    let server = server(ServerConfig::default())
        .with_tickets(tickets)
        .with_audit(audit.clone());
    let mut w = Wire::connect(server, 8192, Dialect::Linux);

    let r = w.call(codec::Tauth {
        afid: Fid(50),
        uname: "queen",
        aname: "",
        n_uname: Some(0),
    });
    let Msg::Rauth(a) = r.result().expect("an auth fid is opened") else {
        panic!("unexpected {r:?}");
    };
    assert!(a.aqid.ty.contains(QidType::AUTH));
    // An auth fid is for writing the ticket only.
    assert_eq!(w.walk(50, 51, &[]), Err(FsError::BadFid));
    assert_eq!(w.lopen(50, rdonly()), Err(FsError::BadFid));
    assert_eq!(w.read(50, 0, 10), Err(FsError::BadFid));
    // The ticket may arrive in pieces, with the newline `echo` adds.
    let (head, tail) = text.split_at(40);
    assert_eq!(w.write(50, 0, head.as_bytes()), Ok(40));
    let tail = format!("{tail}\n");
    assert_eq!(w.write(50, 40, tail.as_bytes()), Ok(tail.len() as u32));
    let qid = w.attach_afid(0, Fid(50), "").expect("attach with the afid");
    assert!(qid.ty.contains(QidType::DIR));
    assert_eq!(w.read_file(1, &["hello"]), HELLO);
    assert!(
        audit
            .events()
            .iter()
            .any(|e| e.role == Some(Role::Queen) && e.debug.contains("TicketAccepted"))
    );
    w.clunk(50).expect("the auth fid is clunked like any fid");

    // Garbage written to an auth fid is a rejected ticket.
    w.call(codec::Tauth {
        afid: Fid(60),
        uname: "x",
        aname: "",
        n_uname: Some(0),
    })
    .result()
    .unwrap();
    w.write(60, 0, b"c9t1.not-a-ticket").unwrap();
    assert_eq!(w.attach_afid(2, Fid(60), ""), Err(FsError::TicketRejected));
    // An afid that is not an auth fid cannot stand in for one.
    assert_eq!(w.attach_afid(2, Fid(0), ""), Err(FsError::BadFid));
    assert_eq!(w.attach_afid(2, Fid(77), ""), Err(FsError::BadFid));
}

#[test]
fn tauth_without_tickets_says_no_auth_needed() {
    let mut w = Wire::connect(server(anonymous()), 8192, Dialect::Linux);
    let r = w.call(codec::Tauth {
        afid: Fid(1),
        uname: "u",
        aname: "",
        n_uname: Some(0),
    });
    assert_eq!(
        r.errno(),
        2,
        "diod and Linux read ENOENT as 'attach directly'"
    );
    assert_eq!(w.server().fid_count(w.sid), 0);
    w.attach(0, "").unwrap();
}

impl Wire {
    /// Walks fid 0 to `path` as `fid`, opens, reads it whole, clunks.
    fn read_file(&mut self, fid: u32, path: &[&str]) -> Vec<u8> {
        open(self, fid, path, rdonly()).expect("open");
        let data = self.read(fid, 0, 65_536).expect("read");
        self.clunk(fid).expect("clunk");
        data
    }
}

// ---- walk ----

#[test]
fn walk_whole_and_partial() {
    let mut w = attached();
    let root_qid = w.getattr(0).unwrap().0;
    let qids = w.walk(0, 1, &["dir", "e3"]).expect("whole walk");
    assert_eq!(qids.len(), 2);
    assert!(qids[0].ty.contains(QidType::DIR));
    assert!(!qids[1].ty.contains(QidType::DIR));
    assert_eq!(
        w.getattr(1).unwrap().0,
        qids[1],
        "newfid stands for the last name"
    );

    // A walk that fails after the first name: Rwalk with the qids walked,
    // and newfid is not created.
    let partial = w.walk(0, 2, &["dir", "nope", "e3"]).expect("partial");
    assert_eq!(partial, vec![qids[0]]);
    assert_eq!(w.getattr(2), Err(FsError::BadFid));
    let through_file = w.walk(0, 2, &["hello", "x"]).expect("partial");
    assert_eq!(through_file.len(), 1);
    assert_eq!(w.getattr(2), Err(FsError::BadFid));
    assert_eq!(w.server().fid_count(w.sid), 2);

    // A walk that fails at the first name is an error.
    assert_eq!(w.walk(0, 2, &["nope"]), Err(FsError::NotFound));
    assert_eq!(w.walk(1, 2, &["x"]), Err(FsError::NotDir));
    assert_eq!(w.getattr(2), Err(FsError::BadFid));

    // A fid walked onto itself moves; a partial walk leaves it alone.
    w.walk(0, 3, &[]).expect("clone");
    assert_eq!(w.getattr(3).unwrap().0, root_qid);
    assert_eq!(w.walk(3, 3, &["dir", "nope"]).unwrap().len(), 1);
    assert_eq!(w.getattr(3).unwrap().0, root_qid);
    w.walk(3, 3, &["dir"]).unwrap();
    assert_eq!(w.getattr(3).unwrap().0, qids[0]);

    // newfid already in use (and not fid itself) is refused.
    assert_eq!(w.walk(0, 1, &["hello"]), Err(FsError::BadFid));
    assert_eq!(
        w.getattr(1).unwrap().0,
        qids[1],
        "the old fid 1 is untouched"
    );
}

#[test]
fn dotdot_at_the_root_stays_at_the_root() {
    let mut w = attached();
    let root_qid = w.getattr(0).unwrap().0;
    let qids = w.walk(0, 1, &["..", "..", ".."]).unwrap();
    assert_eq!(qids, vec![root_qid; 3]);
    let qids = w.walk(0, 2, &["dir", "..", "..", "dir", "e0"]).unwrap();
    assert_eq!(qids[1], root_qid);
    assert_eq!(qids[2], root_qid);
    assert_eq!(qids.len(), 5);
    w.walk(0, 3, &["dir"]).unwrap();
    assert_eq!(w.walk(3, 4, &[".."]).unwrap(), vec![root_qid]);
}

#[test]
fn walk_refuses_names_with_a_slash_or_empty() {
    let mut w = attached();
    assert_eq!(w.walk(0, 1, &["dir/e0"]), Err(FsError::Invalid));
    assert_eq!(w.walk(0, 1, &["/"]), Err(FsError::Invalid));
    assert_eq!(w.walk(0, 1, &[""]), Err(FsError::Invalid));
    assert_eq!(w.walk(0, 1, &["dir", "../hello"]).unwrap().len(), 1);
    assert_eq!(w.getattr(1), Err(FsError::BadFid));
}

// ---- open ----

#[test]
fn lopen_enforces_the_kind_of_file() {
    let mut w = attached();
    use LOpenFlags as F;
    for (name, flags, want) in [
        ("hello", F::WRONLY, Err(FsError::AccessDenied)),
        ("hello", F::RDWR, Err(FsError::AccessDenied)),
        ("hello", F::TRUNC, Err(FsError::AccessDenied)),
        ("hello", F::DIRECTORY, Err(FsError::NotDir)),
        ("dir", F::WRONLY, Err(FsError::IsDir)),
        ("dir", F::RDWR, Err(FsError::IsDir)),
        ("dir", F::TRUNC, Err(FsError::IsDir)),
        ("hello", F::empty(), Ok(())),
        // O_DIRECT and friends are masked off, not refused.
        ("hello", F::DIRECT | F::NOATIME | F::LARGEFILE, Ok(())),
        ("dir", F::DIRECTORY, Ok(())),
        ("log", F::WRONLY | F::APPEND, Ok(())),
        ("log", F::RDWR, Ok(())),
        ("ctl", F::RDWR, Ok(())),
    ] {
        let walked = w.walk(0, 1, &[name]).unwrap();
        let got = w.lopen(1, flags);
        assert_eq!(got.map(|_| ()), want, "{name} {flags:?}");
        if let Ok(qid) = got {
            assert_eq!(qid, walked[0], "Rlopen carries the file's qid");
            assert_eq!(w.lopen(1, flags), Err(FsError::BadFid), "opened twice");
        }
        w.clunk(1).unwrap();
    }
}

// ---- read and write ----

#[test]
fn reads_at_offsets() {
    let mut w = attached();
    let big = big();
    open(&mut w, 1, &["big"], rdonly()).unwrap();
    assert_eq!(w.read(1, 0, 100).unwrap(), &big[..100]);
    assert_eq!(w.read(1, 5_000, 300).unwrap(), &big[5_000..5_300]);
    assert_eq!(w.read(1, 19_990, 100).unwrap(), &big[19_990..]);
    assert_eq!(w.read(1, 20_000, 100).unwrap(), b"");
    assert_eq!(w.read(1, 1 << 40, 100).unwrap(), b"");
    assert_eq!(w.read(1, 7, 0).unwrap(), b"");
    // Reads need a fid opened for reading.
    w.walk(0, 2, &["big"]).unwrap();
    assert_eq!(w.read(2, 0, 10), Err(FsError::BadFid));
    open(&mut w, 3, &["log"], LOpenFlags::WRONLY).unwrap();
    assert_eq!(w.read(3, 0, 10), Err(FsError::BadFid));
    assert_eq!(w.read(99, 0, 10), Err(FsError::BadFid));
    // A directory is read with readdir in 9P2000.L.
    open(&mut w, 4, &["dir"], rdonly()).unwrap();
    assert_eq!(w.read(4, 0, 10), Err(FsError::IsDir));
}

#[test]
fn read_count_is_capped_so_rread_fits_msize() {
    let mut w = Wire::connect(server(anonymous()), 4096, Dialect::Linux);
    w.attach(0, "").unwrap();
    open(&mut w, 1, &["big"], rdonly()).unwrap();
    for (offset, count) in [(0, u32::MAX), (0, 4096), (0, 4086), (100, 1 << 20)] {
        let r = w.call(codec::Tread {
            fid: Fid(1),
            offset,
            count,
        });
        assert_eq!(
            r.bytes().len(),
            4096,
            "Rread of count {count} is exactly msize"
        );
        let Msg::Rread(d) = r.msg() else {
            panic!("unexpected {r:?}");
        };
        let o = offset as usize;
        assert_eq!(d.data, &big()[o..o + 4096 - 11]);
    }
    let r = w.call(codec::Tread {
        fid: Fid(1),
        offset: 0,
        count: 4085,
    });
    assert_eq!(r.bytes().len(), 4096);
}

#[test]
fn append_only_writes_ignore_the_offset() {
    let mut w = attached();
    open(&mut w, 1, &["log"], LOpenFlags::RDWR).unwrap();
    assert_eq!(w.write(1, 999, b"one\n"), Ok(4));
    assert_eq!(w.write(1, 0, b"two\n"), Ok(4));
    assert_eq!(w.read(1, 0, 100).unwrap(), b"one\ntwo\n");
    assert_eq!(w.read(1, 4, 100).unwrap(), b"two\n");
    let (qid, mode, size) = w.getattr(1).unwrap();
    assert!(qid.ty.contains(QidType::APPEND));
    assert_eq!((mode, size), (S_IFREG | 0o644, 8));
    // Larger than the log's max write: EFBIG, nothing appended.
    assert_eq!(w.write(1, 0, &[b'x'; 513]), Err(FsError::TooBig));
    assert_eq!(w.getattr(1).unwrap().2, 8);
    // Writes need a fid opened for writing.
    open(&mut w, 2, &["log"], rdonly()).unwrap();
    assert_eq!(w.write(2, 0, b"x"), Err(FsError::BadFid));
    open(&mut w, 3, &["dir"], rdonly()).unwrap();
    assert_eq!(w.write(3, 0, b"x"), Err(FsError::BadFid));
}

#[test]
fn control_writes_are_commands_with_replies() {
    let mut w = attached();
    open(&mut w, 1, &["ctl"], LOpenFlags::RDWR).unwrap();
    assert_eq!(w.write(1, 0, b"start"), Ok(5));
    assert_eq!(w.read(1, 0, 100).unwrap(), b"ok start");
    assert_eq!(w.write(1, 0, b"bad"), Err(FsError::Invalid));
    assert_eq!(
        w.read(1, 0, 100).unwrap(),
        b"ok start",
        "a refused command keeps the last reply"
    );
    // The reply belongs to the fid that wrote the command.
    open(&mut w, 2, &["ctl"], LOpenFlags::RDWR).unwrap();
    assert_eq!(w.read(2, 0, 100).unwrap(), b"");
}

// ---- readdir ----

#[test]
fn readdir_lists_dot_dotdot_and_children_with_cookies() {
    let mut w = attached();
    let dir_qid = open(&mut w, 1, &["dir"], rdonly()).unwrap();
    let root_qid = w.getattr(0).unwrap().0;
    let all = readdir(&mut w, 1, 0, 8192).unwrap();
    let mut want = vec![".", ".."];
    want.extend(DIR_ENTRIES);
    assert_eq!(all.names(), want);
    assert_eq!(all.entries[0].3, dir_qid);
    assert_eq!(all.entries[1].3, root_qid);
    assert!(all.entries[..2].iter().all(|e| e.2 == 4), "DT_DIR");
    assert!(all.entries[2..].iter().all(|e| e.2 == 8), "DT_REG");
    let cookies: Vec<u64> = all.entries.iter().map(|e| e.1).collect();
    assert!(
        cookies.windows(2).all(|p| p[0] < p[1]),
        "cookies increase: {cookies:?}"
    );
    assert!(!cookies.contains(&0), "0 means 'from the start'");
    // The end: an empty reply.
    let last = *cookies.last().unwrap();
    assert_eq!(readdir(&mut w, 1, last, 8192).unwrap().bytes, 0);
}

#[test]
fn readdir_resumes_from_every_entry() {
    let mut w = attached();
    open(&mut w, 1, &["dir"], rdonly()).unwrap();
    let all = readdir(&mut w, 1, 0, 8192).unwrap().entries;
    for (i, entry) in all.iter().enumerate() {
        let rest = readdir(&mut w, 1, entry.1, 8192).unwrap();
        assert_eq!(rest.entries, all[i + 1..], "resume after {:?}", entry.0);
    }
}

#[test]
fn readdir_cookies_survive_changes_between_calls() {
    let (ns, ids) = tree();
    let mut w = Wire::connect(Server::new(ns, AllowAll, anonymous()), 8192, Dialect::Linux);
    w.attach(0, "").unwrap();
    open(&mut w, 1, &["dir"], rdonly()).unwrap();
    let all = readdir(&mut w, 1, 0, 8192).unwrap().entries;
    // A buffer that holds `.`, `..`, e0, e1, e2 exactly.
    let five: usize = all[..5].iter().map(|e| 13 + 8 + 1 + 2 + e.0.len()).sum();
    let first = readdir(&mut w, 1, 0, five as u32).unwrap();
    assert_eq!(first.names(), [".", "..", "e0", "e1", "e2"]);
    assert_eq!(first.bytes, five);

    // Between calls: one listed entry and one unlisted entry go, one comes.
    {
        let mut s = w.server();
        let ns = s.namespace_mut();
        let e1 = ns.lookup(ids.dir, "e1").unwrap();
        let e5 = ns.lookup(ids.dir, "e5").unwrap();
        ns.remove(e1).unwrap();
        ns.remove(e5).unwrap();
        ns.add_file(ids.dir, "late", Box::new(StaticFile::new("l")))
            .unwrap();
    }
    let e2_cookie = first.entries[4].1;
    let rest = readdir(&mut w, 1, e2_cookie, 8192).unwrap();
    assert_eq!(
        rest.names(),
        ["e3", "e4", "e6", "e7", "e8", "e9", "late"],
        "the rest, less what went, plus what came"
    );
    // Surviving entries keep their cookies.
    for e in &rest.entries {
        if let Some(old) = all.iter().find(|a| a.0 == e.0) {
            assert_eq!(old.1, e.1, "{}", e.0);
        }
    }
    // A cookie of an entry since removed still resumes after it.
    let e1_cookie = first.entries[3].1;
    let after_e1 = readdir(&mut w, 1, e1_cookie, 8192).unwrap();
    assert_eq!(after_e1.names()[0], "e2");
}

#[test]
fn readdir_never_sends_a_partial_entry() {
    let mut w = attached();
    open(&mut w, 1, &["dir"], rdonly()).unwrap();
    let all = readdir(&mut w, 1, 0, 8192).unwrap();
    let largest = all
        .entries
        .iter()
        .map(|e| 13 + 8 + 1 + 2 + e.0.len())
        .max()
        .unwrap();
    let smallest = 13 + 8 + 1 + 2 + 1;
    for count in 0..=all.bytes as u32 + 3 {
        // `readdir` checks that the bytes parse as whole entries.
        let first = readdir(&mut w, 1, 0, count).unwrap();
        if (count as usize) < smallest {
            assert_eq!(first.bytes, 0, "count {count}");
        }
        if count as usize >= largest {
            // Resuming with this buffer size lists everything exactly once.
            let mut seen = first.entries.clone();
            let mut offset = seen.last().map_or(0, |e| e.1);
            loop {
                let next = readdir(&mut w, 1, offset, count).unwrap();
                if next.bytes == 0 {
                    break;
                }
                offset = next.entries.last().unwrap().1;
                seen.extend(next.entries);
            }
            assert_eq!(names_of(&seen), all.names(), "count {count}");
        }
    }
}

#[test]
fn readdir_is_capped_at_msize() {
    let mut ns = Namespace::new();
    let root = ns.root();
    let dir = ns.mkdir(root, "many", 0o755).unwrap();
    for i in 0..200 {
        let name = format!("{i:03}-{}", "n".repeat(60));
        ns.add_file(dir, &name, Box::new(StaticFile::new("")))
            .unwrap();
    }
    let mut w = Wire::connect(Server::new(ns, AllowAll, anonymous()), 4096, Dialect::Linux);
    w.attach(0, "").unwrap();
    open(&mut w, 1, &["many"], rdonly()).unwrap();
    let mut offset = 0;
    let mut names = Vec::new();
    let mut pages = Vec::new();
    loop {
        let r = w.call(codec::Treaddir {
            fid: Fid(1),
            offset,
            count: u32::MAX,
        });
        assert!(r.bytes().len() <= 4096, "Rreaddir fits msize");
        let Msg::Rreaddir(d) = r.msg() else {
            panic!("unexpected {r:?}");
        };
        if d.data.is_empty() {
            break;
        }
        pages.push(r.bytes().len());
        for e in DirEntries::new(d.data) {
            let e = e.unwrap();
            offset = e.offset;
            names.push(e.name.to_string());
        }
    }
    assert_eq!(names.len(), 202);
    let (_, full) = pages.split_last().unwrap();
    assert!(full.len() >= 3);
    assert!(
        full.iter().all(|&n| n > 4096 - 100),
        "pages are filled: {pages:?}"
    );
}

#[test]
fn readdir_needs_an_open_directory() {
    let mut w = attached();
    w.walk(0, 1, &["dir"]).unwrap();
    assert_eq!(readdir(&mut w, 1, 0, 8192).err(), Some(FsError::BadFid));
    open(&mut w, 2, &["hello"], rdonly()).unwrap();
    assert_eq!(readdir(&mut w, 2, 0, 8192).err(), Some(FsError::NotDir));
}

// ---- getattr, statfs, stat ----

#[test]
fn getattr_of_files_and_directories() {
    let mut w = attached();
    let walked = w.walk(0, 1, &["hello"]).unwrap();
    let r = w.call(codec::Tgetattr {
        fid: Fid(1),
        request_mask: codec::GetattrMask::BASIC,
    });
    let Msg::Rgetattr(a) = r.msg() else {
        panic!("unexpected {r:?}");
    };
    assert_eq!(a.qid(), walked[0]);
    assert_eq!((a.mode(), a.size(), a.nlink()), (S_IFREG | 0o444, 3, 1));
    assert!(a.valid().contains(codec::GetattrMask::BASIC));
    let (qid, mode, _) = w.getattr(0).unwrap();
    assert!(qid.ty.contains(QidType::DIR));
    assert_eq!(mode, S_IFDIR | 0o755);
    w.walk(0, 2, &["big"]).unwrap();
    assert_eq!(w.getattr(2).unwrap().2, 20_000);
    assert_eq!(w.getattr(42), Err(FsError::BadFid));
}

#[test]
fn statfs_reports_a_9p_file_system() {
    let mut w = attached();
    let r = w.call(codec::Tstatfs { fid: Fid(0) });
    let Msg::Rstatfs(s) = r.msg() else {
        panic!("unexpected {r:?}");
    };
    assert_eq!((s.ty(), s.bsize(), s.namelen()), (0x0102_1997, 4096, 255));
    let r = w.call(codec::Tstatfs { fid: Fid(8) });
    assert_eq!(r.errno(), 9);
}

// ---- clunk and remove ----

#[test]
fn clunk_forgets_everything_and_the_number_can_be_rebound() {
    let mut w = attached();
    open(&mut w, 5, &["ctl"], LOpenFlags::RDWR).unwrap();
    w.write(5, 0, b"go").unwrap();
    assert_eq!(w.read(5, 0, 100).unwrap(), b"ok go");
    assert_eq!(w.server().fid_count(w.sid), 2);
    w.clunk(5).unwrap();
    assert_eq!(w.server().fid_count(w.sid), 1);
    assert_eq!(w.read(5, 0, 100), Err(FsError::BadFid));
    assert_eq!(w.getattr(5), Err(FsError::BadFid));
    assert_eq!(w.clunk(5), Err(FsError::BadFid), "a second clunk");
    // Default mode: the number is bound again by a walk, and inherits nothing.
    w.walk(0, 5, &["ctl"]).unwrap();
    assert_eq!(w.read(5, 0, 100), Err(FsError::BadFid), "not open");
    w.lopen(5, LOpenFlags::RDWR).unwrap();
    assert_eq!(w.read(5, 0, 100).unwrap(), b"", "no earlier control reply");
    w.clunk(5).unwrap();
    w.walk(0, 5, &["hello"]).unwrap();
    w.lopen(5, rdonly()).unwrap();
    assert_eq!(w.read(5, 0, 100).unwrap(), HELLO);
}

#[test]
fn remove_deletes_the_file_and_the_fid() {
    let mut w = attached();
    open(&mut w, 1, &["dir"], rdonly()).unwrap();
    let qid = w.walk(0, 2, &["dir", "e4"]).unwrap()[1];
    w.remove(2).unwrap();
    assert_eq!(w.getattr(2), Err(FsError::BadFid), "remove clunks the fid");
    assert_eq!(w.walk(0, 3, &["dir", "e4"]).unwrap().len(), 1, "gone");
    let listed = readdir(&mut w, 1, 0, 8192).unwrap();
    assert!(!listed.names().contains(&"e4"));
    assert!(listed.entries.iter().all(|e| e.3 != qid));
    // The number is free again.
    w.walk(0, 2, &["dir", "e5"]).unwrap();
}

#[test]
fn remove_refuses_the_root_and_non_empty_directories_but_clunks() {
    let mut w = attached();
    w.walk(0, 1, &[]).unwrap();
    assert_eq!(w.remove(1), Err(FsError::NotPermitted));
    assert_eq!(
        w.getattr(1),
        Err(FsError::BadFid),
        "clunked whatever the outcome"
    );
    w.walk(0, 2, &["dir"]).unwrap();
    assert_eq!(w.remove(2), Err(FsError::NotEmpty));
    assert_eq!(w.getattr(2), Err(FsError::BadFid));
    assert_eq!(
        w.walk(0, 3, &["dir", "e0"]).unwrap().len(),
        2,
        "nothing removed"
    );
    assert_eq!(w.remove(77), Err(FsError::BadFid));
}

#[test]
fn an_emptied_directory_can_be_removed() {
    let mut w = attached();
    for (i, name) in DIR_ENTRIES.iter().enumerate() {
        w.walk(0, 10 + i as u32, &["dir", name]).unwrap();
        w.remove(10 + i as u32).unwrap();
    }
    w.walk(0, 1, &["dir"]).unwrap();
    w.remove(1).unwrap();
    assert_eq!(w.walk(0, 2, &["dir"]), Err(FsError::NotFound));
}

// ---- base 9P2000 ----

fn base_session() -> Wire {
    let mut w = Wire::connect(server(anonymous()), 8192, Dialect::Base);
    w.attach(0, "").expect("attach without n_uname");
    w
}

fn topen(w: &mut Wire, fid: u32, mode: OpenMode) -> Reply {
    w.call(codec::Topen {
        fid: Fid(fid),
        mode,
    })
}

#[test]
fn base_session_reads_a_directory_as_stats() {
    let mut w = base_session();
    let r = topen(&mut w, 0, OpenMode::empty());
    let Msg::Ropen(o) = r.msg() else {
        panic!("unexpected {r:?}");
    };
    assert!(o.qid.ty.contains(QidType::DIR));
    let r = w.call(codec::Tread {
        fid: Fid(0),
        offset: 0,
        count: 8192,
    });
    let Msg::Rread(d) = r.msg() else {
        panic!("unexpected {r:?}");
    };
    let stats: Vec<_> = Stats::new(d.data)
        .map(|s| s.expect("whole stats"))
        .collect();
    let names: Vec<&str> = stats.iter().map(|s| s.name).collect();
    assert_eq!(names, ["hello", "big", "log", "ctl", "dir", "slow"]);
    let by_name = |n: &str| stats.iter().find(|s| s.name == n).unwrap();
    assert_eq!(by_name("hello").length, 3);
    assert_eq!(by_name("hello").mode, 0o444);
    assert_eq!(by_name("dir").mode, DMDIR | 0o755);
    assert_eq!(by_name("log").mode, DMAPPEND | 0o644);
    assert!(by_name("dir").qid.ty.contains(QidType::DIR));
    // The next read continues at the end: nothing more.
    let r = w.call(codec::Tread {
        fid: Fid(0),
        offset: d.data.len() as u64,
        count: 8192,
    });
    assert!(matches!(r.msg(), Msg::Rread(d) if d.data.is_empty()));
}

#[test]
fn base_directory_reads_in_small_pieces_hold_whole_stats() {
    let mut w = base_session();
    topen(&mut w, 0, OpenMode::empty()).result().unwrap();
    let mut names = Vec::new();
    let mut offset = 0u64;
    loop {
        let r = w.call(codec::Tread {
            fid: Fid(0),
            offset,
            count: 120,
        });
        let Msg::Rread(d) = r.msg() else {
            panic!("unexpected {r:?}");
        };
        if d.data.is_empty() {
            break;
        }
        assert!(d.data.len() <= 120);
        for s in Stats::new(d.data) {
            names.push(s.expect("whole stats").name.to_string());
        }
        offset += d.data.len() as u64;
    }
    assert_eq!(names, ["hello", "big", "log", "ctl", "dir", "slow"]);
    // 9P2000 directory reads continue where the last stopped, or restart at 0.
    let r = w.call(codec::Tread {
        fid: Fid(0),
        offset: 5,
        count: 120,
    });
    assert!(matches!(r.msg(), Msg::Rerror(e) if e.ename == "invalid argument"));
    let r = w.call(codec::Tread {
        fid: Fid(0),
        offset: 0,
        count: 120,
    });
    assert!(matches!(r.msg(), Msg::Rread(d) if !d.data.is_empty()));
}

#[test]
fn base_session_errors_are_strings() {
    let mut w = base_session();
    let r = w.call(codec::Twalk {
        fid: Fid(0),
        newfid: Fid(1),
        wnames: WalkNames::new(&["missing"]).unwrap(),
    });
    assert!(
        matches!(r.msg(), Msg::Rerror(e) if e.ename == "file does not exist"),
        "{r:?}"
    );
    w.walk(0, 1, &["hello"]).unwrap();
    let r = topen(&mut w, 1, OpenMode::WRITE);
    assert!(
        matches!(r.msg(), Msg::Rerror(e) if e.ename == "permission denied"),
        "{r:?}"
    );
    let r = w.call(codec::Tclunk { fid: Fid(9) });
    assert!(
        matches!(r.msg(), Msg::Rerror(e) if e.ename == "unknown fid"),
        "{r:?}"
    );
    // Tstat of a file.
    let r = w.call(codec::Tstat { fid: Fid(1) });
    let Msg::Rstat(s) = r.msg() else {
        panic!("unexpected {r:?}");
    };
    let stat = s.stat.get();
    assert_eq!((stat.name, stat.length), ("hello", 3));
    topen(&mut w, 1, OpenMode::empty()).result().unwrap();
    assert_eq!(w.read(1, 1, 10).unwrap(), b"i\n");
}

// ---- deferred requests ----

/// A Linux session over `config` with `/slow` open for read and write as fid 1.
fn slow_session(config: ServerConfig) -> (Wire, NodeId) {
    let (ns, ids) = tree();
    let mut w = Wire::connect(Server::new(ns, AllowAll, config), 8192, Dialect::Linux);
    w.attach(0, "").unwrap();
    open(&mut w, 1, &["slow"], LOpenFlags::RDWR).unwrap();
    (w, ids.slow)
}

fn deferred_read(w: &mut Wire, count: u32) -> (Tag, Token) {
    let (tag, outcome, frames) = w.send(codec::Tread {
        fid: Fid(1),
        offset: 0,
        count,
    });
    assert!(frames.is_empty(), "nothing is sent for a deferred request");
    match outcome {
        Outcome::Deferred { token, .. } => (tag, token),
        Outcome::Replied => panic!("expected a deferred read"),
    }
}

#[test]
fn a_deferred_read_completes_later() {
    let (mut w, slow_id) = slow_session(anonymous());
    let (tag, outcome, _) = w.send(codec::Tread {
        fid: Fid(1),
        offset: 0,
        count: 4,
    });
    let Outcome::Deferred { token, node } = outcome else {
        panic!("deferred");
    };
    assert_eq!(node, slow_id);
    assert_eq!(slow(&w, slow_id).0, vec![token], "the node got the token");
    assert_eq!(w.server().pending(token), Some((w.sid, tag)));
    assert_eq!(w.server().pending_count(w.sid), 1);
    assert_eq!(w.client.in_flight(), 1);

    // Meanwhile the session serves other requests.
    open(&mut w, 2, &["hello"], rdonly()).unwrap();
    assert_eq!(w.read(2, 0, 10).unwrap(), HELLO);

    // More than asked for is cut to the count.
    let (sid, frames) = w.complete(token, Completion::Read(Ok(b"later!".to_vec())));
    assert_eq!(sid, Some(w.sid));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].tag(), tag);
    assert!(matches!(frames[0].msg(), Msg::Rread(d) if d.data == b"late"));
    assert_eq!(w.server().pending_count(w.sid), 0);
    assert_eq!(w.server().pending(token), None);
    assert_eq!(w.client.in_flight(), 0);
    // A token completes once.
    let (sid, frames) = w.complete(token, Completion::Read(Ok(b"again".to_vec())));
    assert_eq!((sid, frames.len()), (None, 0));
}

#[test]
fn deferred_errors_and_writes_complete_too() {
    let (mut w, _) = slow_session(anonymous());
    let (tag, token) = deferred_read(&mut w, 10);
    let (_, frames) = w.complete(token, Completion::Read(Err(FsError::Unreachable)));
    assert_eq!((frames[0].tag(), frames[0].errno()), (tag, 113));

    let (tag, outcome, _) = w.send(codec::Twrite {
        fid: Fid(1),
        offset: 0,
        data: b"job 1",
    });
    let Outcome::Deferred { token, .. } = outcome else {
        panic!("deferred");
    };
    let (_, frames) = w.complete(token, Completion::Write(Ok(5)));
    assert_eq!(frames[0].tag(), tag);
    assert!(matches!(frames[0].msg(), Msg::Rwrite(r) if r.count == 5));

    // A completion of the wrong kind is an I/O error, not a wrong reply.
    let (tag, token) = deferred_read(&mut w, 10);
    let (_, frames) = w.complete(token, Completion::Write(Ok(3)));
    assert_eq!((frames[0].tag(), frames[0].errno()), (tag, 5));
}

#[test]
fn flushing_a_deferred_request_cancels_it() {
    let (mut w, slow_id) = slow_session(anonymous());
    let (tag, token) = deferred_read(&mut w, 10);
    let (flush_tag, frames) = w.flush(tag);
    // Only the Rflush: the original was dropped, so it gets no reply.
    assert_eq!(frames.len(), 1);
    assert_eq!(
        (frames[0].tag(), frames[0].ty()),
        (flush_tag, MsgType::Rflush)
    );
    assert_eq!(slow(&w, slow_id).1, vec![token], "the node heard cancel");
    assert_eq!(w.server().pending_count(w.sid), 0);
    assert_eq!(w.client.in_flight(), 0, "Rflush freed the old tag");
    // A late completion is dropped: no session, no bytes.
    let (sid, frames) = w.complete(token, Completion::Read(Ok(b"late".to_vec())));
    assert_eq!((sid, frames.len()), (None, 0));
    // The old tag is free again.
    let r = w.call_raw(&raw_frame(
        tag,
        codec::Tgetattr {
            fid: Fid(1),
            request_mask: codec::GetattrMask::BASIC,
        },
    ));
    assert_eq!((r.tag(), r.ty()), (tag, MsgType::Rgetattr));
    // Flushing a tag with nothing in flight is answered at once.
    let r = w.call(codec::Tflush { oldtag: Tag(4000) });
    assert_eq!(r.ty(), MsgType::Rflush);
}

#[test]
fn closing_a_session_cancels_its_pending_work() {
    let (mut w, slow_id) = slow_session(anonymous());
    let other = w.another(8192, Dialect::Linux);
    let (_, t1) = deferred_read(&mut w, 10);
    let (_, t2) = deferred_read(&mut w, 10);
    let mut cancelled = w.server().close_session(w.sid);
    cancelled.sort();
    let mut want = vec![t1, t2];
    want.sort();
    assert_eq!(cancelled, want);
    let (_, mut heard, clunks) = slow(&w, slow_id);
    heard.sort();
    assert_eq!(heard, want, "the node heard cancel for each");
    assert_eq!(clunks, 1, "the open fid was clunked");
    for t in want {
        let (sid, frames) = w.complete(t, Completion::Read(Ok(b"x".to_vec())));
        assert_eq!((sid, frames.len()), (None, 0));
    }
    let mut out = Vec::new();
    let frame = raw_frame(Tag(1), codec::Tclunk { fid: Fid(0) });
    assert_eq!(
        w.server().handle(w.sid, &frame, 0, &mut out),
        Err(secure9p_core::SessionError::UnknownSession)
    );
    assert!(out.is_empty());
    assert!(
        w.server().close_session(w.sid).is_empty(),
        "closing twice is harmless"
    );
    assert_eq!(
        w.server().dialect(other.sid),
        Some(Dialect::Linux),
        "others live on"
    );
}

#[test]
fn a_duplicate_in_flight_tag_is_refused() {
    let (mut w, _) = slow_session(anonymous());
    let (tag, token) = deferred_read(&mut w, 10);
    let dup = raw_frame(
        tag,
        codec::Tgetattr {
            fid: Fid(0),
            request_mask: codec::GetattrMask::BASIC,
        },
    );
    let r = w.call_raw(&dup);
    assert_eq!((r.tag(), r.errno()), (tag, 22));
    assert_eq!(
        w.server().pending(token),
        Some((w.sid, tag)),
        "the original lives"
    );
    let (_, frames) = w.complete(token, Completion::Read(Ok(b"ok".to_vec())));
    assert!(matches!(frames[0].msg(), Msg::Rread(d) if d.data == b"ok"));
    // Once answered, the tag is free.
    let r = w.call_raw(&dup);
    assert_eq!(r.ty(), MsgType::Rgetattr);
}

#[test]
fn the_in_flight_limit_refuses_with_eagain() {
    let config = ServerConfig {
        max_inflight: 2,
        ..anonymous()
    };
    let (mut w, slow_id) = slow_session(config);
    let (_, t1) = deferred_read(&mut w, 10);
    let (_, _t2) = deferred_read(&mut w, 10);
    let r = w.call(codec::Tread {
        fid: Fid(1),
        offset: 0,
        count: 10,
    });
    assert_eq!(r.errno(), 11);
    let (deferred, cancelled, _) = slow(&w, slow_id);
    assert_eq!(deferred.len(), 3);
    assert_eq!(
        cancelled,
        vec![deferred[2]],
        "the refused request was cancelled"
    );
    assert_eq!(w.server().pending_count(w.sid), 2);
    // The session goes on: immediate requests work, and a completion frees a slot.
    open(&mut w, 2, &["hello"], rdonly()).unwrap();
    assert_eq!(w.read(2, 0, 10).unwrap(), HELLO);
    let (sid, _) = w.complete(t1, Completion::Read(Ok(vec![])));
    assert_eq!(sid, Some(w.sid));
    let (_, t3) = deferred_read(&mut w, 10);
    assert_eq!(w.server().pending(t3).map(|p| p.0), Some(w.sid));
}

#[test]
fn an_open_directory_can_be_walked_to_a_new_fid_but_not_onto_itself() {
    // diod's `diodls -l` walks each listed name from the directory it reads.
    let mut w = attached();
    open(&mut w, 1, &["dir"], rdonly()).unwrap();
    let qids = w.walk(1, 2, &["e3"]).unwrap();
    assert_eq!(qids.len(), 1);
    w.lopen(2, rdonly()).unwrap();
    assert_eq!(w.read(2, 0, 10).unwrap(), b"e3");
    // The open fid keeps its handle: it still reads its directory.
    assert!(readdir(&mut w, 1, 0, 4096).is_ok());
    assert_eq!(w.walk(1, 1, &["e3"]), Err(FsError::BadFid));
}

#[test]
fn dot_names_the_directory_itself() {
    let mut w = attached();
    let dir = w.walk(0, 1, &["dir"]).unwrap()[0];
    let qids = w.walk(1, 2, &["."]).unwrap();
    assert_eq!(qids, vec![dir]);
}

#[test]
fn an_aname_that_names_no_export_is_refused_where_exports_exist() {
    let (mut ns, ids) = tree();
    ns.set_mount("/srv", ids.dir).unwrap();
    let mut w = Wire::connect(Server::new(ns, AllowAll, anonymous()), 8192, Dialect::Linux);
    assert_eq!(w.attach(0, "/nope"), Err(FsError::NotFound));
    // The export lands in its directory; an empty aname takes the role's root.
    let srv = w.attach(1, "/srv").unwrap();
    assert!(srv.ty.contains(QidType::DIR));
    assert_eq!(w.walk(1, 2, &["e0"]).unwrap().len(), 1);
    w.attach(3, "").unwrap();
    assert_eq!(w.walk(3, 4, &["hello"]).unwrap().len(), 1);
}

#[test]
fn setattr_size_truncates_plain_files_and_is_refused_on_read_only_ones() {
    let (mut ns, _) = tree();
    let root = ns.root();
    ns.add_file(
        root,
        "mem",
        Box::new(secure9p_core::MemFile::new("abcdef", 64)),
    )
    .unwrap();
    let mut w = Wire::connect(Server::new(ns, AllowAll, anonymous()), 8192, Dialect::Linux);
    w.attach(0, "").unwrap();
    let setattr = |fid: u32, size: u64| {
        codec::Tsetattr::new()
            .with_fid(Fid(fid))
            .with_valid(codec::SetattrValid::SIZE | codec::SetattrValid::MTIME)
            .with_size(size)
    };
    w.walk(0, 1, &["mem"]).unwrap();
    assert!(w.call(&setattr(1, 2)).result().is_ok());
    assert_eq!(w.getattr(1).unwrap().2, 2);
    w.lopen(1, rdonly()).unwrap();
    assert_eq!(w.read(1, 0, 64).unwrap(), b"ab");
    assert_eq!(
        w.call(&setattr(1, 65)).result().unwrap_err(),
        FsError::TooBig
    );
    w.walk(0, 2, &["hello"]).unwrap();
    assert_eq!(
        w.call(&setattr(2, 0)).result().unwrap_err(),
        FsError::AccessDenied
    );
    // Truncating an append-only file is accepted and changes nothing.
    w.walk(0, 3, &["log"]).unwrap();
    assert!(w.call(&setattr(3, 0)).result().is_ok());
}
