//! Worker placement for embedders that run workers in places of their own
//! (the seL4 image's PD slots): slots per role bound `spawn`, spawns and
//! kills come out as events, and a worker that faults loses its ticket and
//! may be given a fresh one.

mod common;

use common::{Queen, hive, worker};
use ninedoor::WorkerEvent;
use ninedoor::secure9p_core::{FsError, Role};

#[test]
fn without_slots_no_events_are_queued_and_spawns_are_unbounded_by_them() {
    let mut h = hive();
    let mut q = Queen::attach(&mut h);
    for id in ["a", "b", "c"] {
        q.spawn(&mut h, id);
    }
    q.command(&mut h, r#"{"cmd":"kill","id":"a"}"#).unwrap();
    assert!(h.take_worker_events().is_empty());
}

#[test]
fn slots_bound_spawns_of_their_role_and_events_name_each_spawn_and_kill() {
    let mut h = hive();
    h.set_worker_slots(Role::WorkerHeartbeat, 2);
    let mut q = Queen::attach(&mut h);
    let t1 = q.spawn(&mut h, "w1");
    q.spawn(&mut h, "w2");
    let third = q.command(&mut h, r#"{"cmd":"spawn","role":"heartbeat","id":"w3"}"#);
    assert_eq!(third, Err(FsError::NoSpace));
    assert!(
        q.log(&mut h)
            .contains("no free worker-heartbeat slot: all 2 are in use")
    );
    q.command(&mut h, r#"{"cmd":"kill","id":"w1"}"#).unwrap();
    q.spawn(&mut h, "w3");
    let events = h.take_worker_events();
    assert_eq!(events.len(), 4, "{events:?}");
    match &events[0] {
        WorkerEvent::Spawned { id, role, ticket } => {
            assert_eq!((id.as_str(), *role), ("w1", Role::WorkerHeartbeat));
            assert_eq!(ticket, &t1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        events[2],
        WorkerEvent::Killed {
            id: String::from("w1")
        }
    );
    assert!(matches!(&events[3], WorkerEvent::Spawned { id, .. } if id == "w3"));
    // Debug never shows a ticket.
    assert!(!format!("{events:?}").contains(&t1));
    assert!(h.take_worker_events().is_empty(), "taken once");
}

#[test]
fn a_fault_revokes_the_ticket_and_a_restart_mints_a_fresh_one() {
    let mut h = hive();
    h.set_worker_slots(Role::WorkerHeartbeat, 1);
    let mut q = Queen::attach(&mut h);
    let old = q.spawn(&mut h, "w1");
    let (mut w, root) = worker(&mut h, &old);
    let fid = w
        .open_path(
            &mut h,
            root,
            "/worker/w1/telemetry",
            ninedoor::secure9p_core::codec::LOpenFlags::WRONLY,
        )
        .unwrap();
    let now = 1_767_225_700;
    assert_eq!(h.worker_fault("w1", "vm-fault at 0x10", now), Ok(2));
    // Its fids are gone and its ticket no longer attaches.
    assert!(w.write(&mut h, fid, b"heartbeat\n").is_err());
    let mut again = common::Conn::open(&mut h);
    assert!(again.attach(&mut h, &old).is_err());
    // Still registered: its files stay for the Queen.
    assert!(h.workers().iter().any(|w| w.id == "w1"));

    let fresh = h.restart_worker("w1", 1, 3, now).expect("restart");
    assert_ne!(fresh, old);
    let (mut w2, root2) = worker(&mut h, &fresh);
    let fid2 = w2
        .open_path(
            &mut h,
            root2,
            "/worker/w1/telemetry",
            ninedoor::secure9p_core::codec::LOpenFlags::WRONLY,
        )
        .unwrap();
    w2.write(&mut h, fid2, b"heartbeat w1 seq=1\n").unwrap();
    h.worker_stopped("w1", "restart budget spent", now).unwrap();

    let log = q.log(&mut h);
    for want in [
        "worker-fault role=- subject=- ticket=- worker=w1 worker-role=worker-heartbeat",
        "why=\"vm-fault at 0x10\"",
        "worker-restart",
        "attempt=1 limit=3",
        "worker-stopped",
    ] {
        assert!(log.contains(want), "{want}: {log}");
    }
    assert!(
        !log.contains(&fresh) && !log.contains(&old),
        "no ticket text in the log"
    );
    for unknown in [
        h.worker_fault("nobody", "x", now).err(),
        h.restart_worker("nobody", 1, 3, now).err(),
        h.worker_stopped("nobody", "x", now).err(),
    ] {
        assert_eq!(
            unknown,
            Some(ninedoor::HiveError::NoWorker(String::from("nobody")))
        );
    }
}
