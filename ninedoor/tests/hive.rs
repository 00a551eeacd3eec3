//! The hive end to end through 9P frames: the Queen, workers, `/queen/ctl`,
//! the audit log, kill and revocation, rings.

mod common;

use common::{Conn, NOW, Queen, hive, hive_with, journaled_hive, worker};
use ninedoor::secure9p_core::FsError;
use ninedoor::secure9p_core::codec::LOpenFlags;
use ninedoor::{HiveConfig, HiveError, HiveState, StateChange};

#[test]
fn queen_reads_boot_spawns_a_worker_and_reads_its_telemetry() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);

    let boot = q.conn.cat(&mut hive, q.root, "/proc/boot").unwrap();
    let boot = String::from_utf8(boot).unwrap();
    assert!(boot.starts_with("Cohesix NineDoor "), "{boot}");
    for key in [
        "version ninedoor/",
        "msize.max ",
        "fids.max ",
        "ctl.line.max 4096",
        "log.ring.bytes ",
        "telemetry.ring.bytes ",
        "workers.live 0",
        "provider queen /queen",
        "provider gpu /gpu",
    ] {
        assert!(
            boot.contains(key),
            "{key:?} missing from /proc/boot:\n{boot}"
        );
    }

    let ticket = q.spawn(&mut hive, "w1");
    assert!(ticket.starts_with("c9t1."));
    let (mut w1, root) = worker(&mut hive, &ticket);
    let tel = w1
        .open_path(&mut hive, root, "/worker/w1/telemetry", LOpenFlags::WRONLY)
        .unwrap();
    for beat in ["beat 1\n", "beat 2\n", "beat 3\n"] {
        assert_eq!(
            w1.write(&mut hive, tel, beat.as_bytes()).unwrap(),
            beat.len() as u32
        );
    }

    let seen = q
        .conn
        .cat(&mut hive, q.root, "/worker/w1/telemetry")
        .unwrap();
    assert_eq!(seen, b"beat 1\nbeat 2\nbeat 3\n");
    assert_eq!(q.conn.list(&mut hive, q.root, "/worker").unwrap(), ["w1"]);
    let boot = q.conn.cat(&mut hive, q.root, "/proc/boot").unwrap();
    assert!(String::from_utf8(boot).unwrap().contains("workers.live 1"));

    let log = q.log(&mut hive);
    assert!(log.contains(" spawn role=queen subject=queen "), "{log}");
    assert!(
        log.contains(" ctl-accepted role=queen subject=queen "),
        "{log}"
    );
    assert!(
        log.contains(" ticket-accepted role=worker-heartbeat subject=w1 "),
        "{log}"
    );
}

#[test]
fn every_log_line_has_the_documented_shape() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);
    q.spawn(&mut hive, "w1");
    let _ = q.command(&mut hive, "nonsense");
    let log = q.log(&mut hive);
    assert!(log.ends_with('\n'));
    for line in log.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert!(f.len() >= 5, "{line}");
        assert!(f[0].parse::<u64>().is_ok(), "{line}");
        assert!(f[2].starts_with("role="), "{line}");
        assert!(f[3].starts_with("subject="), "{line}");
        let ticket = f[4].strip_prefix("ticket=").expect(line);
        assert!(
            ticket == "-" || (ticket.len() == 16 && ticket.bytes().all(|b| b.is_ascii_hexdigit())),
            "{line}"
        );
    }
}

#[test]
fn a_heartbeat_worker_is_confined_to_its_telemetry() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);
    let t1 = q.spawn(&mut hive, "w1");
    q.spawn(&mut hive, "w2");
    let (mut w1, root) = worker(&mut hive, &t1);

    // What it sees: one path down to its own file.
    assert_eq!(w1.list(&mut hive, root, "/").unwrap(), ["worker"]);
    assert_eq!(w1.list(&mut hive, root, "/worker").unwrap(), ["w1"]);
    assert_eq!(
        w1.list(&mut hive, root, "/worker/w1").unwrap(),
        ["telemetry"]
    );

    // What it cannot reach.
    for path in [
        "/queen",
        "/queen/ctl",
        "/log",
        "/proc",
        "/gpu",
        "/worker/w2",
    ] {
        assert_eq!(
            w1.walk(&mut hive, root, path).err(),
            Some(FsError::AccessDenied),
            "{path}"
        );
    }
    // Its own telemetry is append-only for it.
    assert_eq!(
        w1.open_path(&mut hive, root, "/worker/w1/telemetry", LOpenFlags::empty())
            .err(),
        Some(FsError::AccessDenied)
    );
    assert_eq!(
        w1.open_path(&mut hive, root, "/worker/w1/telemetry", LOpenFlags::RDWR)
            .err(),
        Some(FsError::AccessDenied)
    );

    let log = q.log(&mut hive);
    for path in ["/queen", "/log", "/worker/w2"] {
        let want = "denied role=worker-heartbeat subject=w1 ";
        assert!(
            log.lines().any(|l| l.contains(want)
                && l.contains(&format!(" path={path} "))
                && l.ends_with("errno=EACCES")),
            "no denial of {path} in:\n{log}"
        );
    }
}

#[test]
fn attaches_without_a_valid_ticket_are_refused_and_logged() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);
    let mut c = Conn::open(&mut hive);
    assert_eq!(c.attach(&mut hive, "").err(), Some(FsError::AccessDenied));
    let mut forged = hive.queen_ticket().to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_eq!(
        c.attach(&mut hive, &forged).err(),
        Some(FsError::TicketRejected)
    );
    let log = q.log(&mut hive);
    assert!(
        log.contains("ticket-refused role=- subject=test ticket=- errno=EACCES"),
        "{log}"
    );
    assert!(
        log.contains("ticket-refused role=- subject=- ticket=- errno=EKEYREJECTED"),
        "{log}"
    );
}

/// Bad `/queen/ctl` input: the write fails with the errno, nothing changes,
/// and the log says why.
#[test]
fn bad_ctl_input_fails_with_its_errno_and_is_logged() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);
    q.spawn(&mut hive, "w1");
    let long = format!(
        r#"{{"cmd":"spawn","role":"heartbeat","id":"w9","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let cases: &[(&str, FsError, &str)] = &[
        ("{not json", FsError::Invalid, "malformed JSON"),
        (
            r#"{"cmd":"launch","id":"w2"}"#,
            FsError::Invalid,
            "unknown variant",
        ),
        (
            r#"{"cmd":"kill","id":"w1","force":true}"#,
            FsError::Invalid,
            "unknown field",
        ),
        (
            r#"{"cmd":"kill","id":"w1","id":"w1"}"#,
            FsError::Invalid,
            "duplicate field",
        ),
        (r#"{"cmd":"kill"}"#, FsError::Invalid, "missing field"),
        (
            r#"{"cmd":"kill","id":"w1"} trailing"#,
            FsError::Invalid,
            "trailing",
        ),
        (r#"{"role":"heartbeat"}"#, FsError::Invalid, "missing field"),
        (&long, FsError::TooBig, "exceeds 4096"),
        (
            r#"{"cmd":"kill","id":"w7"}"#,
            FsError::NotFound,
            "no worker w7",
        ),
        (
            r#"{"cmd":"kill","id":"../log"}"#,
            FsError::Invalid,
            "is not 1 to 64",
        ),
        (
            r#"{"cmd":"spawn","role":"heartbeat","id":"w1"}"#,
            FsError::Exists,
            "worker w1 exists",
        ),
        (
            r#"{"cmd":"spawn","role":"heartbeat","id":"a b"}"#,
            FsError::Invalid,
            "is not 1 to 64",
        ),
        (
            r#"{"cmd":"spawn","role":"queen"}"#,
            FsError::Invalid,
            "unknown variant",
        ),
        (
            r#"{"cmd":"spawn","role":"heartbeat","gpu":"GPU-0"}"#,
            FsError::Invalid,
            "takes no gpu",
        ),
        (
            r#"{"cmd":"spawn","role":"gpu","id":"g1"}"#,
            FsError::Invalid,
            "needs a gpu",
        ),
        (
            r#"{"cmd":"spawn","role":"gpu","id":"g1","gpu":"GPU-9"}"#,
            FsError::NotFound,
            "not installed",
        ),
        (
            r#"{"cmd":"budget"}"#,
            FsError::Invalid,
            "needs ticket_ttl_s or ops",
        ),
        (
            r#"{"cmd":"budget","ticket_ttl_s":0}"#,
            FsError::Invalid,
            "outside 1..=",
        ),
        (
            r#"{"cmd":"budget","ticket_ttl_s":-5}"#,
            FsError::Invalid,
            "invalid command",
        ),
        ("\n  \n", FsError::Invalid, "no command"),
    ];
    for (input, errno, why) in cases {
        let before = q.log(&mut hive).lines().count();
        assert_eq!(q.command(&mut hive, input).err(), Some(*errno), "{input}");
        let log = q.log(&mut hive);
        let refused: Vec<&str> = log
            .lines()
            .skip(before)
            .filter(|l| l.contains(" ctl-refused role=queen subject=queen "))
            .collect();
        assert_eq!(refused.len(), 1, "{input}: {log}");
        let name = match errno {
            FsError::Invalid => "EINVAL",
            FsError::TooBig => "EFBIG",
            FsError::NotFound => "ENOENT",
            FsError::Exists => "EEXIST",
            _ => unreachable!(),
        };
        assert!(
            refused[0].contains(&format!("errno={name} why=\"")) && refused[0].contains(why),
            "{input}: {}",
            refused[0]
        );
    }
    // Nothing changed: w1 alone.
    let ids: Vec<String> = hive.workers().into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["w1"]);
}

#[test]
fn a_write_of_several_lines_runs_all_or_stops_at_the_first_refusal() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);
    // One unparsable line: none run.
    let bad = "{\"cmd\":\"spawn\",\"role\":\"heartbeat\",\"id\":\"a\"}\n{oops\n";
    assert_eq!(q.command(&mut hive, bad).err(), Some(FsError::Invalid));
    assert!(hive.workers().is_empty());
    // Two good lines: both run, both replies come back.
    let two = "{\"cmd\":\"spawn\",\"role\":\"heartbeat\",\"id\":\"a\"}\r\n{\"cmd\":\"spawn\",\"role\":\"heartbeat\",\"id\":\"b\"}\n";
    let reply = q.command(&mut hive, two).unwrap();
    assert_eq!(reply.lines().count(), 2);
    assert_eq!(hive.workers().len(), 2);
    // A refused second command: the first took effect and its reply (the
    // ticket) is still readable from the fid although the write failed.
    let mixed = "{\"cmd\":\"spawn\",\"role\":\"heartbeat\",\"id\":\"c\"}\n{\"cmd\":\"kill\",\"id\":\"zz\"}\n";
    assert_eq!(q.command(&mut hive, mixed).err(), Some(FsError::NotFound));
    let reply = q.conn.read_all(&mut hive, q.ctl).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(v["spawned"], "c");
    assert_eq!(hive.workers().len(), 3);
}

#[test]
fn a_ctl_reply_is_private_to_its_fid_and_replaced_by_the_next_write() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);
    let other = q
        .conn
        .open_path(&mut hive, q.root, "/queen/ctl", LOpenFlags::RDWR)
        .unwrap();
    let ticket = q.spawn(&mut hive, "w1");
    assert!(q.conn.read_all(&mut hive, other).unwrap().is_empty());
    // A failed write clears the previous reply: the ticket is not re-read.
    assert!(q.command(&mut hive, "{").is_err());
    let after = q.conn.read_all(&mut hive, q.ctl).unwrap();
    assert!(after.is_empty());
    assert!(!ticket.is_empty());
    // Write-only opens get nothing back at all (and need no read right).
    let wo = q
        .conn
        .open_path(&mut hive, q.root, "/queen/ctl", LOpenFlags::WRONLY)
        .unwrap();
    assert!(
        q.conn
            .write(&mut hive, wo, br#"{"cmd":"budget","ops":0}"#)
            .is_ok()
    );
}

#[test]
fn spawn_generates_ids_and_budget_sets_later_defaults() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);
    let r1 = q
        .command(&mut hive, r#"{"cmd":"spawn","role":"heartbeat"}"#)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r1).unwrap();
    assert_eq!(v["spawned"], "w1");
    assert_eq!(v["role"], "worker-heartbeat");
    assert_eq!(v["scope"], "/worker/w1");
    assert_eq!(v["expires"], NOW + 3600);
    q.spawn(&mut hive, "w2");
    let r3 = q
        .command(&mut hive, r#"{"cmd":"spawn","role":"heartbeat"}"#)
        .unwrap();
    assert!(r3.contains(r#""spawned":"w3""#), "{r3}");

    let b = q
        .command(&mut hive, r#"{"cmd":"budget","ticket_ttl_s":60,"ops":2}"#)
        .unwrap();
    assert_eq!(b, "{\"ticket_ttl_s\":60,\"ops\":2}\n");
    let boot = String::from_utf8(q.conn.cat(&mut hive, q.root, "/proc/boot").unwrap()).unwrap();
    assert!(
        boot.contains("ticket.ttl_s 60\n") && boot.contains("worker.ops 2\n"),
        "{boot}"
    );

    let t4 = q.spawn(&mut hive, "w4");
    let w4 = hive.workers().into_iter().find(|w| w.id == "w4").unwrap();
    assert_eq!(w4.expires, NOW + 60);
    let (mut c, root) = worker(&mut hive, &t4);
    let tel = c
        .open_path(&mut hive, root, "/worker/w4/telemetry", LOpenFlags::WRONLY)
        .unwrap();
    assert!(c.write(&mut hive, tel, b"1\n").is_ok());
    assert!(c.write(&mut hive, tel, b"2\n").is_ok());
    for _ in 0..3 {
        assert_eq!(
            c.write(&mut hive, tel, b"3\n").err(),
            Some(FsError::NoSpace)
        );
    }
    let log = q.log(&mut hive);
    assert_eq!(
        log.matches(" budget-exhausted role=worker-heartbeat subject=w4 ")
            .count(),
        1,
        "{log}"
    );

    // The ticket lapses with its budget.
    c.now = NOW + 60;
    assert_eq!(
        c.write(&mut hive, tel, b"late\n").err(),
        Some(FsError::TicketExpired)
    );
    let mut again = Conn::open(&mut hive);
    again.now = NOW + 61;
    assert_eq!(
        again.attach(&mut hive, &t4).err(),
        Some(FsError::TicketExpired)
    );
}

#[test]
fn the_worker_limit_holds() {
    let mut hive = hive_with(HiveConfig {
        max_workers: 2,
        ..HiveConfig::default()
    });
    let mut q = Queen::attach(&mut hive);
    q.spawn(&mut hive, "a");
    q.spawn(&mut hive, "b");
    assert_eq!(
        q.command(&mut hive, r#"{"cmd":"spawn","role":"heartbeat"}"#)
            .err(),
        Some(FsError::NoSpace)
    );
    q.command(&mut hive, r#"{"cmd":"kill","id":"a"}"#).unwrap();
    q.spawn(&mut hive, "c");
}

#[test]
fn kill_revokes_the_ticket_closes_fids_and_removes_the_worker() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);
    let t1 = q.spawn(&mut hive, "w1");
    let (mut w1, root) = worker(&mut hive, &t1);
    let tel = w1
        .open_path(&mut hive, root, "/worker/w1/telemetry", LOpenFlags::WRONLY)
        .unwrap();
    w1.write(&mut hive, tel, b"alive\n").unwrap();
    let watching = q
        .conn
        .open_path(
            &mut hive,
            q.root,
            "/worker/w1/telemetry",
            LOpenFlags::empty(),
        )
        .unwrap();

    let reply = q.command(&mut hive, r#"{"cmd":"kill","id":"w1"}"#).unwrap();
    assert_eq!(reply, "{\"killed\":\"w1\",\"fids_closed\":2}\n");

    // Its fids are gone, its ticket is refused, its files are gone.
    assert_eq!(
        w1.write(&mut hive, tel, b"still?\n").err(),
        Some(FsError::BadFid)
    );
    let mut again = Conn::open(&mut hive);
    assert_eq!(
        again.attach(&mut hive, &t1).err(),
        Some(FsError::TicketRevoked)
    );
    assert_eq!(
        q.conn.walk(&mut hive, q.root, "/worker/w1").err(),
        Some(FsError::NotFound)
    );
    assert!(
        q.conn
            .list(&mut hive, q.root, "/worker")
            .unwrap()
            .is_empty()
    );
    // The Queen's own fid on the removed file finds nothing.
    assert_eq!(
        q.conn.read(&mut hive, watching, 0, 100).err(),
        Some(FsError::NotFound)
    );
    assert!(hive.workers().is_empty());

    // A new w1 is a new worker with a new ticket; the old one stays dead.
    let t1b = q.spawn(&mut hive, "w1");
    assert_ne!(t1, t1b);
    assert_eq!(
        again.attach(&mut hive, &t1).err(),
        Some(FsError::TicketRevoked)
    );
    let (mut w1b, root_b) = worker(&mut hive, &t1b);
    let tel_b = w1b
        .open_path(
            &mut hive,
            root_b,
            "/worker/w1/telemetry",
            LOpenFlags::WRONLY,
        )
        .unwrap();
    w1b.write(&mut hive, tel_b, b"reborn\n").unwrap();
    assert_eq!(
        q.conn
            .cat(&mut hive, q.root, "/worker/w1/telemetry")
            .unwrap(),
        b"reborn\n"
    );

    let log = q.log(&mut hive);
    assert!(log.contains(" kill role=queen subject=queen "), "{log}");
    assert!(log.contains(" worker=w1 "), "{log}");
    assert!(
        log.contains(" ticket-revoked role=- subject=- ticket="),
        "{log}"
    );
    assert!(log.contains(" fids=2"), "{log}");
    assert!(
        log.contains("ticket-refused role=- subject=- ticket=- errno=EKEYREVOKED"),
        "{log}"
    );
}

#[test]
fn the_log_never_holds_ticket_text() {
    let mut hive = hive();
    let queen_ticket = hive.queen_ticket().to_owned();
    let mut q = Queen::attach(&mut hive);
    let mut tickets = vec![queen_ticket.clone()];
    for id in ["w1", "w2", "w3"] {
        tickets.push(q.spawn(&mut hive, id));
    }
    let t = tickets[1].clone();
    // Ticket text thrown at every place that logs a client's words.
    for line in [
        format!(r#"{{"cmd":"kill","id":"{t}"}}"#),
        format!(r#"{{"cmd":"{t}"}}"#),
        format!(r#"{{"cmd":"kill","{t}":1}}"#),
        format!(r#"{{"cmd":"spawn","role":"{t}"}}"#),
        t.clone(),
    ] {
        assert!(q.command(&mut hive, &line).is_err());
    }
    let (mut w1, root) = worker(&mut hive, &tickets[1]);
    assert!(w1.walk(&mut hive, root, &format!("/worker/{t}")).is_err());
    assert!(w1.walk(&mut hive, root, &format!("/{t}")).is_err());
    q.command(&mut hive, r#"{"cmd":"kill","id":"w2"}"#).unwrap();
    let mut c = Conn::open(&mut hive);
    assert!(c.attach(&mut hive, &tickets[2]).is_err());
    assert!(hive.renew_queen_ticket(NOW + 5).is_ok());
    tickets.push(hive.queen_ticket().to_owned());

    let log = q.log(&mut hive);
    assert!(log.contains("[ticket]"), "redaction not exercised:\n{log}");
    for ticket in &tickets {
        assert!(
            !log.contains(ticket.as_str()),
            "ticket text in the log:\n{log}"
        );
        let (signed, mac) = ticket.rsplit_once('.').unwrap();
        assert!(!log.contains(mac), "a ticket MAC in the log:\n{log}");
        let id_hex = signed.split('.').nth(1).unwrap();
        assert!(!log.contains(id_hex), "a full ticket id in the log:\n{log}");
        assert!(
            log.contains(&id_hex[..16]),
            "ticket id prefix absent:\n{log}"
        );
    }
    // Nor does the hive's Debug output.
    let debug = format!("{hive:?}");
    for ticket in &tickets {
        assert!(!debug.contains(ticket.as_str()));
    }
}

#[test]
fn telemetry_and_log_rings_stay_bounded_and_report_what_was_missed() {
    const CAP: usize = 1024;
    let mut hive = hive_with(HiveConfig {
        telemetry_capacity: CAP,
        telemetry_max_write: 256,
        log_capacity: 2048,
        ..HiveConfig::default()
    });
    let mut q = Queen::attach(&mut hive);
    let t1 = q.spawn(&mut hive, "w1");
    let (mut w1, root) = worker(&mut hive, &t1);
    let tel = w1
        .open_path(&mut hive, root, "/worker/w1/telemetry", LOpenFlags::WRONLY)
        .unwrap();
    let mut written = Vec::new();
    for i in 0..500u32 {
        let line = format!("heartbeat {i:05} load=0.{:02}\n", i % 100);
        w1.write(&mut hive, tel, line.as_bytes()).unwrap();
        written.extend_from_slice(line.as_bytes());
        let usage = hive.workers()[0].telemetry.unwrap();
        assert!(usage.held <= CAP);
    }
    assert_eq!(
        w1.write(&mut hive, tel, &[b'x'; 257]).err(),
        Some(FsError::TooBig)
    );
    let usage = hive.workers()[0].telemetry.unwrap();
    assert_eq!(usage.held, CAP);
    assert_eq!(usage.end, written.len() as u64);

    let got = q
        .conn
        .cat(&mut hive, q.root, "/worker/w1/telemetry")
        .unwrap();
    let missed = written.len() - CAP;
    let notice = format!("# missed {missed} bytes\n");
    assert!(
        got.starts_with(notice.as_bytes()),
        "{}",
        String::from_utf8_lossy(&got[..40])
    );
    assert_eq!(&got[notice.len()..], &written[missed..]);

    // Denials flood the log; it stays within its ring.
    for _ in 0..100 {
        let _ = w1.walk(&mut hive, root, "/log");
    }
    assert!(hive.log_usage().held <= 2048);
    assert!(hive.log_usage().end > 2048);
    let log = q.log(&mut hive);
    assert!(log.starts_with("# missed "), "{log}");
}

#[test]
fn renewing_the_queen_ticket_keeps_old_sessions() {
    let mut hive = hive();
    let old = hive.queen_ticket().to_owned();
    let mut q = Queen::attach(&mut hive);
    let new = hive.renew_queen_ticket(NOW + 10).unwrap().to_owned();
    assert_ne!(old, new);
    assert!(hive.queen_ticket_expires() == NOW + 10 + 24 * 3600);
    q.spawn(&mut hive, "w1");
    let mut c = Conn::open(&mut hive);
    assert!(c.attach(&mut hive, &new).is_ok());
}

#[test]
fn unworkable_configs_are_refused() {
    let bad = [
        HiveConfig {
            max_msize: 1024,
            ..HiveConfig::default()
        },
        HiveConfig {
            log_capacity: 10,
            ..HiveConfig::default()
        },
        HiveConfig {
            telemetry_max_write: 1 << 20,
            ..HiveConfig::default()
        },
        HiveConfig {
            ticket_ttl_s: 0,
            ..HiveConfig::default()
        },
        HiveConfig {
            max_ctl_line: 16,
            ..HiveConfig::default()
        },
        HiveConfig {
            worker_ops: Some(0),
            ..HiveConfig::default()
        },
    ];
    for config in bad {
        let r = ninedoor::Hive::new(config.clone(), [1; 32], || [9; 32], NOW);
        assert!(matches!(r, Err(HiveError::Config { .. })), "{config:?}");
    }
    // An id source that repeats itself is caught at the second ticket.
    let mut hive = ninedoor::Hive::new(HiveConfig::default(), [1; 32], || [9; 32], NOW).unwrap();
    assert_eq!(
        hive.renew_queen_ticket(NOW).err(),
        Some(HiveError::IdReused)
    );
    let mut q = Queen::attach(&mut hive);
    assert_eq!(
        q.command(&mut hive, r#"{"cmd":"spawn","role":"heartbeat"}"#)
            .err(),
        Some(FsError::Io)
    );
    assert!(hive.workers().is_empty());
    let ls = q.conn.list(&mut hive, q.root, "/worker").unwrap();
    assert!(ls.is_empty(), "{ls:?}");
}

#[test]
fn state_changes_carry_only_what_each_command_touched_and_add_up_to_the_state() {
    let mut hive = journaled_hive();
    let mut q = Queen::attach(&mut hive);
    // What an embedder storing the changes holds.
    let mut stored = HiveState::default();
    if let Some(c) = hive.take_changes() {
        c.apply_to(&mut stored);
    }
    for i in 0..30 {
        let id = format!("w{i}");
        q.spawn(&mut hive, &id);
        let spawned = hive.take_changes().expect("a spawn changes the state");
        assert!(!spawned.whole);
        assert_eq!(spawned.workers.keys().collect::<Vec<_>>(), [&id]);
        assert!(spawned.revoked.is_empty(), "{spawned:?}");
        spawned.apply_to(&mut stored);
        if i % 3 != 0 {
            q.command(&mut hive, &format!(r#"{{"cmd":"kill","id":"{id}"}}"#))
                .expect("kill");
            let killed = hive.take_changes().expect("a kill changes the state");
            // The worker gone and its one revocation: never the others'.
            assert_eq!(killed.workers.get(&id), Some(&None));
            assert_eq!(killed.workers.len(), 1);
            assert_eq!(killed.revoked.len(), 1, "{killed:?}");
            killed.apply_to(&mut stored);
        }
    }
    assert_eq!(hive.take_changes(), None, "reads change nothing");
    // Composed in order, the changes are the state.
    assert_eq!(stored, hive.state());
    assert_eq!(stored.workers.len(), 10);
    assert_eq!(stored.revoked.len(), 20);
    let mut composed = StateChange::whole(HiveState::default());
    composed.then(StateChange::whole(stored.clone()));
    let mut again = HiveState::default();
    composed.apply_to(&mut again);
    assert_eq!(again, stored);
}
