//! Capability tickets: minted, verified, refused (forged, altered, expired,
//! revoked, wrong role) with the right errno at attach, revocation and
//! expiry reaching fids already open, the text fitting an `aname`, and the
//! secret part never reaching the audit sink.

mod common;

use common::{AuditLog, Wire};
use proptest::prelude::*;
use secure9p_core::codec::{Dialect, Fid, Frame, LOpenFlags, Tag, Tattach};
use secure9p_core::{
    AppendLog, Claims, CtlFile, FsError, MAX_CLAIM_LEN, MIN_CLIENT_MSIZE, Namespace, Ops, Role,
    RulePolicy, Server, ServerConfig, StaticFile, TicketAuthority, TicketError, TicketId,
};

const KEY: [u8; 32] = [0x42; 32];
const OTHER_KEY: [u8; 32] = [0x43; 32];
const NOW: u64 = 1_000;

const EKEYEXPIRED: u32 = 127;
const EKEYREVOKED: u32 = 128;
const EKEYREJECTED: u32 = 129;
const EACCES: u32 = 13;
const EBADF: u32 = 9;

fn claims(role: Role, subject: &str, expires: u64) -> Claims {
    Claims {
        role,
        subject: subject.into(),
        expires,
        scope: String::new(),
    }
}

fn queen(expires: u64) -> Claims {
    claims(Role::Queen, "queen", expires)
}

fn mint(id: u8, c: &Claims) -> String {
    TicketAuthority::new(KEY).mint([id; 32], c).unwrap()
}

/// The MAC: the last 64 hex digits of a ticket's text.
fn mac_of(text: &str) -> &str {
    text.rsplit_once('.').unwrap().1
}

fn policy() -> RulePolicy {
    RulePolicy::new()
        .allow(Role::Queen, "/proc/boot", Ops::READ)
        .allow(Role::Queen, "/queen/ctl", Ops::WRITE)
        .allow(Role::Queen, "/worker/*/telemetry", Ops::READ)
        .allow(
            Role::WorkerHeartbeat,
            "/worker/{subject}/telemetry",
            Ops::WRITE,
        )
}

fn namespace() -> Namespace {
    let mut ns = Namespace::new();
    let p = ns.mkdir_all("/proc", 0o555).unwrap();
    ns.add_file(p, "boot", Box::new(StaticFile::new("boot\n")))
        .unwrap();
    let q = ns.mkdir_all("/queen", 0o755).unwrap();
    ns.add_file(
        q,
        "ctl",
        Box::new(CtlFile::new(64, |_, _| Ok(b"ok".to_vec()))),
    )
    .unwrap();
    let w = ns.mkdir_all("/worker/w1", 0o755).unwrap();
    ns.add_file(w, "telemetry", Box::new(AppendLog::new(1024, 256)))
        .unwrap();
    ns
}

/// A 9P2000.L session of a ticket-checking server with no anonymous access.
fn connect(audit: &AuditLog) -> Wire {
    let server = Server::new(namespace(), policy(), ServerConfig::default())
        .with_tickets(TicketAuthority::new(KEY))
        .with_audit(audit.clone());
    let mut w = Wire::connect(server, 8192, Dialect::Linux);
    w.now = NOW;
    w
}

fn attach_errno(w: &mut Wire, fid: u32, aname: &str) -> u32 {
    w.attach(fid, aname).err().map_or(0, FsError::errno)
}

fn open_read(w: &mut Wire, fid: u32, newfid: u32, path: &[&str]) -> Result<Vec<u8>, FsError> {
    w.walk(fid, newfid, path)?;
    w.lopen(newfid, LOpenFlags::empty())?;
    w.read(newfid, 0, 100)
}

#[test]
fn mint_then_verify_round_trips() {
    let tickets = TicketAuthority::new(KEY);
    let c = Claims {
        role: Role::WorkerGpu,
        subject: "gpu-worker_7".into(),
        expires: 1_700_000_000,
        scope: "/gpu/0".into(),
    };
    let text = tickets.mint([9; 32], &c).unwrap();
    assert!(TicketAuthority::looks_like_ticket(&text));
    let t = tickets.verify(&text, 1_699_999_999).unwrap();
    assert_eq!(t.id, TicketId([9; 32]));
    assert_eq!(t.claims, c);
    // Minting is deterministic: same key, id and claims, same text.
    assert_eq!(tickets.mint([9; 32], &c).unwrap(), text);
    // The id shows in logs as its first 8 bytes.
    assert_eq!(t.id.to_string(), "0909090909090909");
}

#[test]
fn claims_the_text_cannot_carry_are_refused_at_mint() {
    let tickets = TicketAuthority::new(KEY);
    let long = "x".repeat(MAX_CLAIM_LEN + 1);
    for subject in ["a.b", "a b", "a,b", "a=b", "ü", "a\nb", long.as_str()] {
        let c = claims(Role::Queen, subject, 10);
        assert_eq!(
            tickets.mint([1; 32], &c),
            Err(TicketError::BadClaim),
            "{subject:?}"
        );
        let c = Claims {
            scope: subject.into(),
            ..claims(Role::Queen, "q", 10)
        };
        assert_eq!(
            tickets.mint([1; 32], &c),
            Err(TicketError::BadClaim),
            "{subject:?}"
        );
    }
}

#[test]
fn a_forged_ticket_is_rejected() {
    let forged = TicketAuthority::new(OTHER_KEY)
        .mint([1; 32], &queen(5_000))
        .unwrap();
    assert_eq!(
        TicketAuthority::new(KEY).verify(&forged, NOW),
        Err(TicketError::BadSignature)
    );
    let audit = AuditLog::default();
    let mut w = connect(&audit);
    assert_eq!(attach_errno(&mut w, 0, &forged), EKEYREJECTED);
    assert_eq!(w.server().fid_count(w.sid), 0);
    let refused = audit.events();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].debug.contains("TicketRefused"), "{refused:?}");
    // The session is still usable with a genuine ticket.
    assert_eq!(attach_errno(&mut w, 0, &mint(1, &queen(5_000))), 0);
}

/// `text` with its `field`-th dot-separated part changed by one character.
fn alter(text: &str, field: usize) -> String {
    let mut parts: Vec<String> = text.split('.').map(String::from).collect();
    let part = &mut parts[field];
    let c = part.pop().unwrap();
    part.push(match c {
        '0' => '1',
        'a' => 'b',
        'n' => 'm',
        _ => '0',
    });
    parts.join(".")
}

#[test]
fn a_ticket_altered_in_any_claim_is_rejected() {
    let c = Claims {
        scope: "lease-3".into(),
        ..claims(Role::WorkerHeartbeat, "w1", 5_000)
    };
    let text = mint(1, &c);
    let audit = AuditLog::default();
    let mut w = connect(&audit);
    // c9t1 . id . role . subject . expiry . scope . mac
    for (field, what) in [
        (1, "id"),
        (2, "role"),
        (3, "subject"),
        (4, "expiry"),
        (5, "scope"),
        (6, "mac"),
    ] {
        let altered = alter(&text, field);
        assert_ne!(altered, text);
        assert!(
            TicketAuthority::new(KEY).verify(&altered, NOW).is_err(),
            "{what} altered"
        );
        assert_eq!(
            attach_errno(&mut w, 0, &altered),
            EKEYREJECTED,
            "{what} altered"
        );
    }
    // Raising the expiry, the most tempting edit, is caught by the MAC.
    let extended = text.replace(".5000.", ".9999999999.");
    assert_eq!(
        TicketAuthority::new(KEY).verify(&extended, NOW),
        Err(TicketError::BadSignature)
    );
    // Promoting oneself to Queen likewise.
    let promoted = text.replace(".worker-heartbeat.", ".queen.");
    assert_eq!(attach_errno(&mut w, 0, &promoted), EKEYREJECTED);
    assert_eq!(
        attach_errno(&mut w, 0, &text),
        0,
        "the original still works"
    );
}

#[test]
fn every_single_character_change_is_refused() {
    let text = mint(3, &queen(5_000));
    let audit = AuditLog::default();
    let mut w = connect(&audit);
    for (i, c) in text.char_indices() {
        let swapped = match c {
            '0' => '1',
            '.' => '_',
            _ => '0',
        };
        let mut altered = text.clone();
        altered.replace_range(i..i + 1, &swapped.to_string());
        assert!(
            TicketAuthority::new(KEY).verify(&altered, NOW).is_err(),
            "at {i}"
        );
        // Inside the prefix the aname no longer looks like a ticket: it is a
        // plain attach, refused because this server admits no anonymous user.
        let want = if i < 5 { EACCES } else { EKEYREJECTED };
        assert_eq!(attach_errno(&mut w, 0, &altered), want, "at {i}: {altered}");
    }
    assert_eq!(w.server().fid_count(w.sid), 0);
}

#[test]
fn an_expired_ticket_is_refused() {
    let text = mint(1, &queen(2_000));
    let tickets = TicketAuthority::new(KEY);
    assert!(tickets.verify(&text, 1_999).is_ok());
    assert_eq!(tickets.verify(&text, 2_000), Err(TicketError::Expired));
    assert_eq!(tickets.verify(&text, u64::MAX), Err(TicketError::Expired));
    let audit = AuditLog::default();
    let mut w = connect(&audit);
    for (now, want) in [(1_999, 0), (2_000, EKEYEXPIRED), (2_001, EKEYEXPIRED)] {
        w.now = now;
        assert_eq!(
            attach_errno(&mut w, 10 + now as u32, &text),
            want,
            "now {now}"
        );
    }
}

#[test]
fn a_revoked_ticket_is_refused() {
    let text = mint(1, &queen(5_000));
    let mut tickets = TicketAuthority::new(KEY);
    let id = tickets.verify(&text, NOW).unwrap().id;
    tickets.revoke(id);
    assert!(tickets.is_revoked(&id));
    assert_eq!(tickets.verify(&text, NOW), Err(TicketError::Revoked));
    // Expiry is reported before revocation: both are final.
    assert_eq!(tickets.verify(&text, 6_000), Err(TicketError::Expired));

    let audit = AuditLog::default();
    let mut w = connect(&audit);
    assert_eq!(w.server().revoke(id, NOW), 0, "nothing was open");
    assert_eq!(attach_errno(&mut w, 0, &text), EKEYREVOKED);
    // Through an auth fid too.
    w.call(secure9p_core::codec::Tauth {
        afid: Fid(50),
        uname: "queen",
        aname: "",
        n_uname: Some(0),
    })
    .result()
    .unwrap();
    w.write(50, 0, text.as_bytes()).unwrap();
    assert_eq!(
        w.attach_afid(1, Fid(50), "").err().map(FsError::errno),
        Some(EKEYREVOKED)
    );
}

#[test]
fn a_worker_ticket_cannot_reach_queen_paths() {
    let audit = AuditLog::default();
    let mut w = connect(&audit);
    let worker = mint(2, &claims(Role::WorkerHeartbeat, "w1", 5_000));
    w.attach(0, &worker).unwrap();
    assert_eq!(w.walk(0, 1, &["queen"]), Err(FsError::AccessDenied));
    assert_eq!(w.walk(0, 1, &["proc", "boot"]), Err(FsError::AccessDenied));
    assert_eq!(
        w.walk(0, 1, &["worker", "w1", "telemetry"]).unwrap().len(),
        3
    );
    assert_eq!(w.lopen(1, LOpenFlags::empty()), Err(FsError::AccessDenied));
    w.clunk(1).unwrap();
    w.walk(0, 1, &["worker", "w1", "telemetry"]).unwrap();
    w.lopen(1, LOpenFlags::WRONLY).unwrap();
    assert_eq!(w.write(1, 0, b"beat\n"), Ok(5));
    // The same session with a Queen ticket gets the Queen's rights: the
    // principal belongs to the attach, not to the connection.
    w.attach(10, &mint(3, &queen(5_000))).unwrap();
    assert_eq!(
        open_read(&mut w, 10, 11, &["proc", "boot"]).unwrap(),
        b"boot\n"
    );
    assert_eq!(w.walk(0, 12, &["proc"]), Err(FsError::AccessDenied));
    let ids: Vec<_> = audit.denials().iter().map(|d| d.ticket).collect();
    assert!(ids.iter().all(|t| *t == Some(TicketId([2; 32]))), "{ids:?}");
    assert_eq!(ids.len(), 4);
}

#[test]
fn no_ticket_and_no_anonymous_access_is_refused() {
    let audit = AuditLog::default();
    let mut w = connect(&audit);
    assert_eq!(attach_errno(&mut w, 0, ""), EACCES);
    assert_eq!(attach_errno(&mut w, 0, "/worker/w1"), EACCES);
    assert_eq!(audit.events().len(), 2, "both refusals audited");
}

#[test]
fn revocation_closes_the_tickets_fids_and_only_those() {
    let audit = AuditLog::default();
    let mut a = connect(&audit);
    let mut b = a.another(8192, Dialect::Linux);
    b.now = NOW;
    let revoked = mint(1, &queen(5_000));
    let kept = mint(2, &queen(5_000));
    // Session a: fids 0, 1 under the doomed ticket, fids 10, 11 under the other.
    a.attach(0, &revoked).unwrap();
    assert_eq!(
        open_read(&mut a, 0, 1, &["proc", "boot"]).unwrap(),
        b"boot\n"
    );
    a.attach(10, &kept).unwrap();
    open_read(&mut a, 10, 11, &["proc", "boot"]).unwrap();
    // Session b: fids 0, 1 under the doomed ticket, fid 5 under the other.
    b.attach(0, &revoked).unwrap();
    open_read(&mut b, 0, 1, &["proc", "boot"]).unwrap();
    b.attach(5, &kept).unwrap();

    let id = TicketId([1; 32]);
    audit.clear();
    assert_eq!(a.server().revoke(id, NOW), 4);
    for w in [&mut a, &mut b] {
        assert_eq!(w.read(1, 0, 100).err().map(FsError::errno), Some(EBADF));
        assert_eq!(w.getattr(0).err().map(FsError::errno), Some(EBADF));
        assert_eq!(
            w.walk(0, 2, &["proc"]).err().map(FsError::errno),
            Some(EBADF)
        );
        assert_eq!(attach_errno(w, 20, &revoked), EKEYREVOKED);
    }
    assert_eq!(a.server().fid_count(a.sid), 2);
    assert_eq!(a.server().fid_count(b.sid), 1);
    // The other ticket's fids work on, and its holder can keep attaching.
    assert_eq!(a.read(11, 0, 100).unwrap(), b"boot\n");
    assert_eq!(
        open_read(&mut a, 10, 12, &["proc", "boot"]).unwrap(),
        b"boot\n"
    );
    assert_eq!(
        open_read(&mut b, 5, 6, &["proc", "boot"]).unwrap(),
        b"boot\n"
    );
    assert_eq!(attach_errno(&mut b, 30, &kept), 0);
    // The revocation is audited with its id and the fids it closed.
    let events = audit.events();
    let rev = events
        .iter()
        .find(|e| e.debug.contains("TicketRevoked"))
        .expect("revocation audited");
    assert_eq!(rev.ticket, Some(id));
    assert!(rev.debug.contains("fids: 4"), "{rev:?}");
}

#[test]
fn a_ticket_expiring_mid_session_stops_its_fids() {
    let audit = AuditLog::default();
    let mut w = connect(&audit);
    w.attach(0, &mint(1, &queen(2_000))).unwrap();
    assert_eq!(
        open_read(&mut w, 0, 1, &["proc", "boot"]).unwrap(),
        b"boot\n"
    );
    w.walk(0, 2, &["queen", "ctl"]).unwrap();
    w.lopen(2, LOpenFlags::WRONLY).unwrap();
    w.attach(10, &mint(2, &queen(9_000))).unwrap();
    open_read(&mut w, 10, 11, &["proc", "boot"]).unwrap();

    w.now = 2_000;
    let expired = Some(EKEYEXPIRED);
    assert_eq!(w.read(1, 0, 100).err().map(FsError::errno), expired);
    assert_eq!(w.write(2, 0, b"x").err().map(FsError::errno), expired);
    assert_eq!(w.getattr(0).err().map(FsError::errno), expired);
    assert_eq!(w.walk(0, 3, &["proc"]).err().map(FsError::errno), expired);
    assert_eq!(w.remove(2).err().map(FsError::errno), expired);
    // Clunk still frees what the expired ticket held.
    w.clunk(1).unwrap();
    assert_eq!(w.server().fid_count(w.sid), 3, "fids 0, 10, 11");
    // The other ticket's fids are unaffected.
    assert_eq!(w.read(11, 0, 100).unwrap(), b"boot\n");
    assert_eq!(
        open_read(&mut w, 10, 12, &["proc", "boot"]).unwrap(),
        b"boot\n"
    );
}

#[test]
fn the_longest_ticket_fits_an_aname_at_the_smallest_msize() {
    let long = "a".repeat(MAX_CLAIM_LEN);
    let c = Claims {
        role: Role::WorkerHeartbeat,
        subject: long.clone(),
        expires: u64::MAX,
        scope: long,
    };
    let text = TicketAuthority::new(KEY).mint([0xff; 32], &c).unwrap();
    // Mount options split on ',' and '='; shells and logs on whitespace.
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b)),
        "{text}"
    );
    let attach = Frame::new(
        Tag(0),
        Tattach {
            fid: Fid(0),
            afid: Fid::NOFID,
            uname: "worker",
            aname: &text,
            n_uname: Some(0),
        },
    );
    assert!(
        attach.encoded_len() <= MIN_CLIENT_MSIZE as usize,
        "{}",
        attach.encoded_len()
    );

    let server = Server::new(namespace(), policy(), ServerConfig::default())
        .with_tickets(TicketAuthority::new(KEY));
    let mut w = Wire::connect(server, MIN_CLIENT_MSIZE, Dialect::Linux);
    w.attach(0, &text).expect("attach at the smallest msize");
}

#[test]
fn the_mac_never_reaches_the_audit_sink() {
    let audit = AuditLog::default();
    let mut w = connect(&audit);
    let good = mint(1, &queen(2_000));
    let worker = mint(2, &claims(Role::WorkerHeartbeat, "w1", 5_000));
    let forged = TicketAuthority::new(OTHER_KEY)
        .mint([3; 32], &queen(5_000))
        .unwrap();
    // Accepted, refused (forged, expired, revoked), denied, control write,
    // revoked with fids open: one of every kind of event.
    w.attach(0, &good).unwrap();
    w.walk(0, 1, &["queen", "ctl"]).unwrap();
    w.lopen(1, LOpenFlags::WRONLY).unwrap();
    w.write(1, 0, b"spawn").unwrap();
    w.attach(2, &worker).unwrap();
    assert!(w.walk(2, 3, &["proc"]).is_err());
    assert!(w.attach(4, &forged).is_err());
    w.server().revoke(TicketId([2; 32]), NOW);
    assert!(w.attach(4, &worker).is_err());
    w.now = 3_000;
    assert!(w.attach(4, &good).is_err());

    let events = audit.events();
    for kind in [
        "TicketAccepted",
        "TicketRefused",
        "Denied",
        "ControlWrite",
        "TicketRevoked",
    ] {
        assert!(events.iter().any(|e| e.debug.contains(kind)), "no {kind}");
    }
    for text in [&good, &worker, &forged] {
        let mac = mac_of(text);
        let id_hex = text.split('.').nth(1).unwrap();
        for e in &events {
            assert!(!e.debug.contains(mac), "MAC in {e:?}");
            assert!(!e.debug.contains(id_hex), "whole id in {e:?}");
        }
    }
    // Nor does the authority's Debug show its key.
    let shown = format!("{:?}", TicketAuthority::new(KEY));
    assert!(!shown.contains("42") && !shown.contains("66"), "{shown}");
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Queen),
        Just(Role::WorkerHeartbeat),
        Just(Role::WorkerGpu),
        Just(Role::Anonymous),
    ]
}

proptest! {
    #[test]
    fn verify_never_panics(text in any::<String>(), now in any::<u64>()) {
        let tickets = TicketAuthority::new(KEY);
        let _ = tickets.verify(&text, now);
        let prefixed = format!("c9t1.{text}");
        prop_assert!(tickets.verify(&prefixed, now).is_err());
    }

    #[test]
    fn verify_never_panics_on_ticket_shaped_text(
        parts in proptest::collection::vec("[0-9a-f.]{0,70}|[a-z-]{0,20}|[0-9]{0,25}", 0..9),
        now in any::<u64>(),
    ) {
        let text = format!("c9t1.{}", parts.join("."));
        prop_assert!(TicketAuthority::new(KEY).verify(&text, now).is_err());
    }

    #[test]
    fn mint_verify_round_trip(
        id in any::<[u8; 32]>(),
        role in role(),
        subject in "[A-Za-z0-9_/-]{0,128}",
        scope in "[A-Za-z0-9_/-]{0,128}",
        expires in 1..u64::MAX,
        before in any::<u64>(),
    ) {
        let tickets = TicketAuthority::new(KEY);
        let c = Claims { role, subject, expires, scope };
        let text = tickets.mint(id, &c).unwrap();
        let now = before % expires;
        let t = tickets.verify(&text, now).unwrap();
        prop_assert_eq!(t.id, TicketId(id));
        prop_assert_eq!(t.claims, c);
        prop_assert_eq!(tickets.verify(&text, expires), Err(TicketError::Expired));
        prop_assert_eq!(
            TicketAuthority::new(OTHER_KEY).verify(&text, now),
            Err(TicketError::BadSignature)
        );
    }
}

#[test]
fn revoking_a_ticket_cancels_its_deferred_requests() {
    let mut ns = namespace();
    let q = ns.resolve("/queen").unwrap();
    let slow = ns
        .add_file(q, "slow", Box::<common::Slow>::default())
        .unwrap();
    let policy = policy().allow(Role::Queen, "/queen/slow", Ops::READ);
    let server =
        Server::new(ns, policy, ServerConfig::default()).with_tickets(TicketAuthority::new(KEY));
    let mut w = Wire::connect(server, 8192, Dialect::Linux);
    w.now = NOW;
    w.attach(0, &mint(9, &queen(NOW + 100))).unwrap();
    w.walk(0, 1, &["queen", "slow"]).unwrap();
    w.lopen(1, LOpenFlags::empty()).unwrap();
    let (_, outcome, frames) = w.send(secure9p_core::codec::Tread {
        fid: Fid(1),
        offset: 0,
        count: 10,
    });
    let secure9p_core::Outcome::Deferred { token, .. } = outcome else {
        panic!("deferred: {frames:?}")
    };
    assert_eq!(w.server().revoke(TicketId([9; 32]), NOW), 2);
    // The node heard the cancellation and a late answer goes nowhere.
    let cancelled = w
        .server()
        .namespace_mut()
        .node_as::<common::Slow>(slow)
        .unwrap()
        .cancelled
        .clone();
    assert_eq!(cancelled, vec![token]);
    let (sid, late) = w.complete(token, secure9p_core::Completion::Read(Ok(b"late".to_vec())));
    assert_eq!((sid, late.len()), (None, 0));
    let sid = w.sid;
    assert_eq!(w.server().pending_count(sid), 0);
}
