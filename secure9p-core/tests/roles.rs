//! The role matrix: every role × every path × every operation of a
//! Cohesix-shaped namespace, through the real engine over frames (each
//! principal attaches with a minted ticket in `aname`), with the errno each
//! cell must give written out below. A changed cell fails the test; so does a
//! denial that does not reach the audit sink with the ticket's id.

mod common;

use common::{AuditLog, Wire};
use secure9p_core::codec::{self, Dialect, DirEntries, Fid, LOpenFlags, Msg, QidType};
use secure9p_core::{
    AppendLog, Claims, CtlFile, FsError, Namespace, Op, Ops, Role, RulePolicy, Server,
    ServerConfig, StaticFile, TicketAuthority, TicketId,
};

const KEY: [u8; 32] = [0x5a; 32];
const EXPIRES: u64 = 1_000_000;

/// The principals of the matrix: two heartbeat workers and two GPU workers
/// show that `{subject}` and `{scope}` are the principal's own, not fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Queen,
    /// Heartbeat worker `w1`.
    W1,
    /// Heartbeat worker `w2`.
    W2,
    /// GPU worker leased GPU 0.
    Gpu0,
    /// GPU worker leased GPU 1 (which this host does not have).
    Gpu1,
}

use Who::*;

const WHO: [Who; 5] = [Queen, W1, W2, Gpu0, Gpu1];

impl Who {
    fn claims(self) -> Claims {
        let (role, subject, scope) = match self {
            Queen => (Role::Queen, "queen", ""),
            W1 => (Role::WorkerHeartbeat, "w1", ""),
            W2 => (Role::WorkerHeartbeat, "w2", ""),
            Gpu0 => (Role::WorkerGpu, "gpu-worker-7", "0"),
            Gpu1 => (Role::WorkerGpu, "gpu-worker-8", "1"),
        };
        Claims {
            role,
            subject: subject.into(),
            expires: EXPIRES,
            scope: scope.into(),
        }
    }

    fn ticket_id(self) -> [u8; 32] {
        [self as u8 + 1; 32]
    }
}

const PATHS: [&str; 7] = [
    "/proc/boot",
    "/queen/ctl",
    "/log/queen.log",
    "/worker/w1/telemetry",
    "/worker/w2/telemetry",
    "/gpu/0/info",
    "/gpu/0/job",
];

/// The operations of a cell, in the columns' order.
const OPS: [&str; 4] = ["walk", "open-read", "open-write", "remove"];

/// The truth: errno of (who, path) for walk, open-read, open-write, remove.
/// An operation behind a refused walk carries the walk's errno. 13 is EACCES.
#[rustfmt::skip]
const MATRIX: [(Who, &str, [u32; 4]); 35] = [
    //  who    path                     walk rd  wr  rm
    (Queen, "/proc/boot",           [ 0,  0, 13, 13]),
    (Queen, "/queen/ctl",           [ 0, 13,  0, 13]),
    (Queen, "/log/queen.log",       [ 0,  0, 13, 13]),
    (Queen, "/worker/w1/telemetry", [ 0,  0, 13,  0]),
    (Queen, "/worker/w2/telemetry", [ 0,  0, 13,  0]),
    (Queen, "/gpu/0/info",          [ 0,  0, 13, 13]),
    (Queen, "/gpu/0/job",           [ 0,  0, 13, 13]),

    (W1,    "/proc/boot",           [13, 13, 13, 13]),
    (W1,    "/queen/ctl",           [13, 13, 13, 13]),
    (W1,    "/log/queen.log",       [13, 13, 13, 13]),
    (W1,    "/worker/w1/telemetry", [ 0, 13,  0, 13]),
    (W1,    "/worker/w2/telemetry", [13, 13, 13, 13]),
    (W1,    "/gpu/0/info",          [13, 13, 13, 13]),
    (W1,    "/gpu/0/job",           [13, 13, 13, 13]),

    (W2,    "/proc/boot",           [13, 13, 13, 13]),
    (W2,    "/queen/ctl",           [13, 13, 13, 13]),
    (W2,    "/log/queen.log",       [13, 13, 13, 13]),
    (W2,    "/worker/w1/telemetry", [13, 13, 13, 13]),
    (W2,    "/worker/w2/telemetry", [ 0, 13,  0, 13]),
    (W2,    "/gpu/0/info",          [13, 13, 13, 13]),
    (W2,    "/gpu/0/job",           [13, 13, 13, 13]),

    (Gpu0,  "/proc/boot",           [13, 13, 13, 13]),
    (Gpu0,  "/queen/ctl",           [13, 13, 13, 13]),
    (Gpu0,  "/log/queen.log",       [13, 13, 13, 13]),
    (Gpu0,  "/worker/w1/telemetry", [13, 13, 13, 13]),
    (Gpu0,  "/worker/w2/telemetry", [13, 13, 13, 13]),
    (Gpu0,  "/gpu/0/info",          [ 0,  0, 13, 13]),
    (Gpu0,  "/gpu/0/job",           [ 0, 13,  0, 13]),

    (Gpu1,  "/proc/boot",           [13, 13, 13, 13]),
    (Gpu1,  "/queen/ctl",           [13, 13, 13, 13]),
    (Gpu1,  "/log/queen.log",       [13, 13, 13, 13]),
    (Gpu1,  "/worker/w1/telemetry", [13, 13, 13, 13]),
    (Gpu1,  "/worker/w2/telemetry", [13, 13, 13, 13]),
    (Gpu1,  "/gpu/0/info",          [13, 13, 13, 13]),
    (Gpu1,  "/gpu/0/job",           [13, 13, 13, 13]),
];

/// Queen reads `/proc/boot`, writes `/queen/ctl`, reads its log and every
/// worker's telemetry (and may remove a dead worker's), reads all of
/// `/gpu`; a heartbeat worker appends to its own telemetry only; a GPU
/// worker reads its GPU's `info` and appends to its `job` only.
fn policy() -> RulePolicy {
    RulePolicy::new()
        .allow(Role::Queen, "/proc/boot", Ops::READ)
        .allow(Role::Queen, "/queen/ctl", Ops::WRITE)
        .allow(Role::Queen, "/log/queen.log", Ops::READ)
        .allow(Role::Queen, "/worker/*/telemetry", Ops::READ | Ops::REMOVE)
        .allow(Role::Queen, "/gpu/**", Ops::READ)
        .allow(
            Role::WorkerHeartbeat,
            "/worker/{subject}/telemetry",
            Ops::WRITE,
        )
        .allow(Role::WorkerGpu, "/gpu/{scope}/info", Ops::READ)
        .allow(Role::WorkerGpu, "/gpu/{scope}/job", Ops::WRITE)
}

fn namespace() -> Namespace {
    let mut ns = Namespace::new();
    let proc_ = ns.mkdir_all("/proc", 0o555).unwrap();
    ns.add_file(proc_, "boot", Box::new(StaticFile::new("cohesix boot\n")))
        .unwrap();
    let queen = ns.mkdir_all("/queen", 0o755).unwrap();
    let ctl = CtlFile::new(256, |_, cmd| Ok([b"ok ".as_slice(), cmd].concat()));
    ns.add_file(queen, "ctl", Box::new(ctl)).unwrap();
    let log = ns.mkdir_all("/log", 0o755).unwrap();
    ns.add_file(log, "queen.log", Box::new(AppendLog::new(4096, 512)))
        .unwrap();
    for w in ["w1", "w2"] {
        let dir = ns.mkdir_all(&format!("/worker/{w}"), 0o755).unwrap();
        ns.add_file(dir, "telemetry", Box::new(AppendLog::new(4096, 512)))
            .unwrap();
    }
    let gpu = ns.mkdir_all("/gpu/0", 0o755).unwrap();
    ns.add_file(gpu, "info", Box::new(StaticFile::new("model=H100\n")))
        .unwrap();
    ns.add_file(gpu, "job", Box::new(AppendLog::new(4096, 512)))
        .unwrap();
    ns
}

fn server(ns: Namespace, audit: &AuditLog) -> Server {
    Server::new(ns, policy(), ServerConfig::default())
        .with_tickets(TicketAuthority::new(KEY))
        .with_audit(audit.clone())
}

fn ticket(who: Who) -> String {
    TicketAuthority::new(KEY)
        .mint(who.ticket_id(), &who.claims())
        .unwrap()
}

/// A fresh world with `who` attached as fid 0 through a ticket in `aname`.
fn attach(who: Who, ns: Namespace, audit: &AuditLog) -> Wire {
    let mut w = Wire::connect(server(ns, audit), 8192, Dialect::Linux);
    w.attach(0, &ticket(who))
        .unwrap_or_else(|e| panic!("{who:?} attaches: {e:?}"));
    w
}

fn names(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Walks fid 1 from the root one name at a time (so a refusal yields its
/// errno, not a partial Rwalk); returns the errno of the first refusal, 0 if
/// none. Cross-checks a one-message walk of the same names as fid 2: whole
/// when the steps all pass, partial or an error otherwise.
fn walk(w: &mut Wire, path: &str) -> u32 {
    let names = names(path);
    let stepwise = (|| {
        w.walk(0, 1, &[])?;
        for name in &names {
            w.walk(1, 1, &[name])?;
        }
        Ok::<(), FsError>(())
    })();
    let at_once = w.walk(0, 2, &names);
    match (&stepwise, &at_once) {
        (Ok(()), Ok(qids)) => assert_eq!(qids.len(), names.len(), "{path}"),
        (Err(_), Ok(qids)) => assert!(qids.len() < names.len(), "{path}: {qids:?}"),
        (Err(_), Err(_)) => {}
        (Ok(()), Err(e)) => panic!("{path}: stepwise walk passed, whole walk {e:?}"),
    }
    if at_once.as_ref().is_ok_and(|q| q.len() == names.len()) {
        w.clunk(2).unwrap();
    }
    stepwise.err().map_or(0, FsError::errno)
}

/// The errno of one cell, in a fresh world.
fn cell(who: Who, path: &str, op: &str, audit: &AuditLog) -> u32 {
    let mut w = attach(who, namespace(), audit);
    audit.clear();
    let walked = walk(&mut w, path);
    if walked != 0 || op == "walk" {
        return walked;
    }
    let result = match op {
        "open-read" => w.lopen(1, LOpenFlags::empty()).map(drop),
        "open-write" => w.lopen(1, LOpenFlags::WRONLY).map(drop),
        "remove" => {
            let r = w.remove(1);
            // What the engine says it removed is gone, and nothing else.
            let gone = w.server().namespace().resolve(path).is_none();
            assert_eq!(gone, r.is_ok(), "{who:?} remove {path}");
            r
        }
        other => unreachable!("no operation {other}"),
    };
    result.err().map_or(0, FsError::errno)
}

#[test]
fn the_matrix_covers_every_role_and_path_once() {
    for who in WHO {
        for path in PATHS {
            let rows = MATRIX
                .iter()
                .filter(|(w, p, _)| *w == who && *p == path)
                .count();
            assert_eq!(rows, 1, "{who:?} {path}");
        }
    }
}

#[test]
fn role_matrix() {
    let audit = AuditLog::default();
    let mut wrong = Vec::new();
    for (who, path, row) in MATRIX {
        let id = TicketId(who.ticket_id());
        for (op, want) in OPS.into_iter().zip(row) {
            let got = cell(who, path, op, &audit);
            if got != want {
                wrong.push(format!(
                    "{who:?} {op} {path}: errno {got}, table says {want}"
                ));
            }
            // Every refusal here is the policy's (or the kind's), and each
            // reaches the audit sink with the ticket's id; a success leaves
            // no denial behind.
            let denials = audit.denials();
            if got == 0 {
                assert!(denials.is_empty(), "{who:?} {op} {path}: {denials:?}");
                continue;
            }
            assert!(
                !denials.is_empty(),
                "{who:?} {op} {path}: denial not audited"
            );
            for d in &denials {
                assert_eq!(d.ticket, Some(id), "{who:?} {op} {path}");
                assert_eq!(d.role, Some(who.claims().role));
                assert_eq!(d.subject, who.claims().subject);
                let (_, denied_path, error) = d.denied.clone().unwrap();
                assert_eq!(error, FsError::AccessDenied);
                assert!(
                    path.starts_with(&denied_path),
                    "the denial names {denied_path}, on the way to {path}"
                );
            }
        }
    }
    assert!(wrong.is_empty(), "cells changed:\n{}", wrong.join("\n"));
}

#[test]
fn denials_name_the_operation() {
    let audit = AuditLog::default();
    for (who, path, op, want_op, want_path) in [
        (W1, "/proc/boot", "walk", Op::Walk, "/proc"),
        (W1, "/worker/w2/telemetry", "walk", Op::Walk, "/worker/w2"),
        (
            W1,
            "/worker/w1/telemetry",
            "open-read",
            Op::Read,
            "/worker/w1/telemetry",
        ),
        (
            Queen,
            "/log/queen.log",
            "open-write",
            Op::Write,
            "/log/queen.log",
        ),
        // Writing a read-only file is refused by its kind, audited the same way.
        (Queen, "/proc/boot", "open-write", Op::Write, "/proc/boot"),
        (Gpu0, "/gpu/0/job", "remove", Op::Remove, "/gpu/0/job"),
    ] {
        assert_eq!(cell(who, path, op, &audit), 13);
        let denials = audit.denials();
        let (got_op, got_path, _) = denials.last().unwrap().denied.clone().unwrap();
        assert_eq!(
            (got_op, got_path.as_str()),
            (want_op, want_path),
            "{who:?} {op} {path}"
        );
    }
}

/// Lists a directory (walked from fid 0) with one large `Treaddir`.
fn list(w: &mut Wire, path: &str) -> Result<Vec<String>, FsError> {
    w.walk(0, 9, &names(path))?;
    w.lopen(9, LOpenFlags::empty())?;
    let r = w.call(codec::Treaddir {
        fid: Fid(9),
        offset: 0,
        count: 8192,
    });
    let Msg::Rreaddir(d) = r.result()? else {
        panic!("unexpected {r:?}");
    };
    let names = DirEntries::new(d.data)
        .map(|e| e.unwrap().name.to_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    w.clunk(9).unwrap();
    Ok(names)
}

#[test]
fn listings_show_only_what_a_role_may_walk() {
    let audit = AuditLog::default();
    for (who, dir, want) in [
        (Queen, "/", &["proc", "queen", "log", "worker", "gpu"][..]),
        (Queen, "/worker", &["w1", "w2"]),
        (W1, "/", &["worker"]),
        (W1, "/worker", &["w1"]),
        (W1, "/worker/w1", &["telemetry"]),
        (W2, "/worker", &["w2"]),
        (Gpu0, "/", &["gpu"]),
        (Gpu0, "/gpu", &["0"]),
        (Gpu0, "/gpu/0", &["info", "job"]),
        (Gpu1, "/gpu", &[]),
    ] {
        let mut w = attach(who, namespace(), &audit);
        assert_eq!(list(&mut w, dir).unwrap(), want, "{who:?} lists {dir}");
    }
    // Listing is not a denial: nothing hidden is audited.
    assert!(audit.denials().is_empty(), "{:?}", audit.denials());
}

#[test]
fn granted_operations_do_what_they_say() {
    let audit = AuditLog::default();
    let mut ns = namespace();
    let mut w = attach(W1, std::mem::take(&mut ns), &audit);
    w.walk(0, 1, &names("/worker/w1/telemetry")).unwrap();
    w.lopen(1, LOpenFlags::WRONLY | LOpenFlags::APPEND).unwrap();
    assert_eq!(w.write(1, 0, b"beat 1\n"), Ok(7));
    let id = TicketId(Queen.ticket_id());
    let mut q = w.another(8192, Dialect::Linux);
    q.attach(0, &ticket(Queen)).unwrap();
    q.walk(0, 1, &names("/worker/w1/telemetry")).unwrap();
    q.lopen(1, LOpenFlags::empty()).unwrap();
    assert_eq!(q.read(1, 0, 100).unwrap(), b"beat 1\n");

    // A control write by the Queen is audited with her ticket and the outcome.
    audit.clear();
    q.walk(0, 2, &names("/queen/ctl")).unwrap();
    q.lopen(2, LOpenFlags::WRONLY).unwrap();
    assert_eq!(q.write(2, 0, b"spawn heartbeat w3"), Ok(18));
    let events = audit.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].ticket, Some(id));
    assert!(events[0].debug.contains("ControlWrite"), "{events:?}");
    assert!(events[0].debug.contains("/queen/ctl"), "{events:?}");
}

#[test]
fn a_role_scoped_root_hides_what_lies_above() {
    let audit = AuditLog::default();
    let mut ns = namespace();
    let gpu = ns.resolve("/gpu").unwrap();
    ns.set_root_for(Role::WorkerGpu, gpu).unwrap();
    let gpu_qid = ns.qid(gpu).unwrap();
    let mut w = attach(Gpu0, ns, &audit);
    assert_eq!(w.getattr(0).unwrap().0, gpu_qid, "attached at /gpu");

    // `..` at the role's root stays there; paths are checked as absolute.
    let qids = w.walk(0, 1, &["..", "0", "info"]).unwrap();
    assert_eq!(qids[0], gpu_qid);
    assert_eq!(qids.len(), 3);
    w.lopen(1, LOpenFlags::empty()).unwrap();
    assert_eq!(w.read(1, 0, 100).unwrap(), b"model=H100\n");
    // The policy is asked before the lookup: a name outside the grant is
    // refused whether or not it exists, so existence cannot be probed.
    assert_eq!(w.walk(0, 2, &["proc"]), Err(FsError::AccessDenied));
    assert_eq!(
        w.walk(0, 2, &["..", "proc"]).unwrap(),
        vec![gpu_qid],
        "partial"
    );

    // readdir's `..` of the root is the root itself.
    w.lopen(0, LOpenFlags::empty()).unwrap();
    let r = w.call(codec::Treaddir {
        fid: Fid(0),
        offset: 0,
        count: 8192,
    });
    let Msg::Rreaddir(d) = r.msg() else {
        panic!("unexpected {r:?}");
    };
    let entries: Vec<_> = DirEntries::new(d.data).map(|e| e.unwrap()).collect();
    assert_eq!(entries[1].name, "..");
    assert_eq!(entries[1].qid, gpu_qid);
    assert!(entries[1].qid.ty.contains(QidType::DIR));
    assert_eq!(entries.len(), 3, "., .., 0");

    // Other roles still attach at the tree's root.
    let mut q = w.another(8192, Dialect::Linux);
    q.attach(0, &ticket(Queen)).unwrap();
    assert_eq!(q.walk(0, 1, &["proc", "boot"]).unwrap().len(), 2);
}
