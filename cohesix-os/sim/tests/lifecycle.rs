//! Workers live and die as child PDs of NineDoor, in the simulator with the
//! image's own PD code: `spawn` binds a free slot and restarts its PD,
//! `kill` stops it and frees the slot, the pool has a bound, a faulting
//! worker is restarted a bounded number of times and then left stopped,
//! and hostile framing closes only the connection that sent it.

mod common;

use cohesix_pds::{FaultKnob, RESTART_LIMIT};
use cohesix_sim::PdState;
use cohesix_sim::hive::{HiveSim, HostLink};
use common::{Host, SEED, booted};
use ninedoor::secure9p_core::FsError;
use ninedoor::secure9p_core::codec::Fid;

/// The Queen, attached over the console.
fn queen(hive: &mut HiveSim) -> (Host, Fid) {
    let ticket = hive.queen_ticket().expect("queen ticket");
    let mut q = Host::connect(hive);
    let root = q.attach(hive, "queen", &ticket).expect("queen attaches");
    (q, root)
}

/// The highest heartbeat `seq=` in `/worker/<id>/telemetry`.
fn last_seq(q: &mut Host, hive: &mut HiveSim, root: Fid, id: &str) -> u64 {
    let text = q
        .read_all(hive, root, &format!("/worker/{id}/telemetry"))
        .unwrap_or_else(|e| panic!("{id}'s telemetry: {e:?}"));
    text.lines()
        .filter(|l| l.starts_with("heartbeat "))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("seq=")))
        .filter_map(|n| n.parse().ok())
        .max()
        .unwrap_or(0)
}

fn ticks(hive: &mut HiveSim, n: usize) {
    for _ in 0..n {
        hive.tick().expect("tick");
    }
}

fn spawn(q: &mut Host, hive: &mut HiveSim, root: Fid, id: &str) -> Result<String, FsError> {
    q.ctl(
        hive,
        root,
        &format!(r#"{{"cmd":"spawn","role":"heartbeat","id":"{id}"}}"#),
    )
}

#[test]
fn free_slots_are_stopped_until_a_spawn_binds_one_and_its_telemetry_grows() {
    let mut hive = booted();
    assert_eq!(hive.sim.state("worker1").unwrap(), PdState::Running);
    assert_eq!(hive.sim.state("worker2").unwrap(), PdState::Running);
    for free in ["worker3", "worker4"] {
        assert_eq!(hive.sim.state(free).unwrap(), PdState::Stopped);
    }
    let idle = hive.sim.entries("worker3").unwrap();
    ticks(&mut hive, 2);
    assert_eq!(
        hive.sim.entries("worker3").unwrap(),
        idle,
        "a free slot ran"
    );

    let (mut q, root) = queen(&mut hive);
    let reply = spawn(&mut q, &mut hive, root, "w3").expect("spawn w3");
    assert!(reply.contains(r#""spawned":"w3""#), "{reply}");
    assert_eq!(hive.sim.state("worker3").unwrap(), PdState::Running);
    let text = q.read_all(&mut hive, root, "/worker/w3/telemetry").unwrap();
    assert!(text.contains("boot w3 pd=worker3"), "{text}");
    let before = last_seq(&mut q, &mut hive, root, "w3");
    ticks(&mut hive, 3);
    let after = last_seq(&mut q, &mut hive, root, "w3");
    assert_eq!(after, before + 3, "one heartbeat per tick");
}

#[test]
fn kill_stops_the_pd_and_a_later_spawn_reuses_its_slot() {
    let mut hive = booted();
    let (mut q, root) = queen(&mut hive);
    let reply = q
        .ctl(&mut hive, root, r#"{"cmd":"kill","id":"w1"}"#)
        .expect("kill w1");
    assert!(reply.contains(r#""killed":"w1""#), "{reply}");
    assert_eq!(hive.sim.state("worker1").unwrap(), PdState::Stopped);
    assert_eq!(
        q.walk(&mut hive, root, "/worker/w1"),
        Err(FsError::NotFound)
    );

    // worker1 runs no more; w2 goes on beating.
    let stopped_at = hive.sim.entries("worker1").unwrap();
    let w2 = last_seq(&mut q, &mut hive, root, "w2");
    ticks(&mut hive, 4);
    assert_eq!(hive.sim.entries("worker1").unwrap(), stopped_at);
    assert_eq!(last_seq(&mut q, &mut hive, root, "w2"), w2 + 4);
    let console = hive.sim.console();
    assert!(!console.contains("worker1: step"), "{console}");

    // The slot is free again: the next spawn takes it (the first free).
    spawn(&mut q, &mut hive, root, "w9").expect("spawn w9");
    assert_eq!(hive.sim.state("worker1").unwrap(), PdState::Running);
    let text = q.read_all(&mut hive, root, "/worker/w9/telemetry").unwrap();
    assert!(text.contains("boot w9 pd=worker1"), "{text}");
    ticks(&mut hive, 2);
    assert!(last_seq(&mut q, &mut hive, root, "w9") >= 2 + 3);
    // The id that was killed may come back too, into another free slot.
    spawn(&mut q, &mut hive, root, "w1").expect("spawn w1 again");
    let text = q.read_all(&mut hive, root, "/worker/w1/telemetry").unwrap();
    assert!(text.contains("boot w1 pd=worker3"), "{text}");
}

#[test]
fn a_spawn_beyond_the_pool_fails_with_enospc_and_is_logged() {
    let mut hive = booted();
    let (mut q, root) = queen(&mut hive);
    spawn(&mut q, &mut hive, root, "w3").expect("slot 3");
    spawn(&mut q, &mut hive, root, "w4").expect("slot 4");
    assert_eq!(spawn(&mut q, &mut hive, root, "w5"), Err(FsError::NoSpace));
    assert_eq!(
        q.walk(&mut hive, root, "/worker/w5"),
        Err(FsError::NotFound)
    );
    let log = q.read_all(&mut hive, root, "/log/queen.log").unwrap();
    assert!(
        log.contains("no free worker-heartbeat slot: all 4 are in use"),
        "{log}"
    );
    // Every slot runs its worker.
    for pd in ["worker1", "worker2", "worker3", "worker4"] {
        assert_eq!(hive.sim.state(pd).unwrap(), PdState::Running, "{pd}");
    }
    // Freeing one makes room.
    q.ctl(&mut hive, root, r#"{"cmd":"kill","id":"w3"}"#)
        .expect("kill w3");
    spawn(&mut q, &mut hive, root, "w5").expect("w5 after a kill");
}

/// A hive whose seed page makes worker `wf` fault one tick after its
/// boot script.
fn faulty_hive() -> HiveSim {
    let mut page = SEED.to_vec();
    page.extend(
        FaultKnob {
            worker: "wf".into(),
            after_beats: 1,
        }
        .encode(),
    );
    HiveSim::boot_page(&page).expect("boots")
}

#[test]
fn a_faulting_worker_is_restarted_then_left_stopped_and_the_hive_keeps_serving() {
    let mut hive = faulty_hive();
    let (mut q, root) = queen(&mut hive);
    let w1 = last_seq(&mut q, &mut hive, root, "w1");
    spawn(&mut q, &mut hive, root, "wf").expect("spawn wf");
    assert_eq!(hive.sim.state("worker3").unwrap(), PdState::Running);

    let rounds = 16;
    ticks(&mut hive, rounds);
    let log = q.read_all(&mut hive, root, "/log/queen.log").unwrap();
    let faults: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("worker-fault") && l.contains("worker=wf"))
        .collect();
    assert_eq!(faults.len(), RESTART_LIMIT as usize + 1, "{log}");
    assert!(faults[0].contains("vm-fault at 0x10"), "{}", faults[0]);
    for attempt in 1..=RESTART_LIMIT {
        assert!(
            log.lines().any(|l| l.contains("worker-restart")
                && l.contains("worker=wf")
                && l.contains(&format!("attempt={attempt} limit={RESTART_LIMIT}"))),
            "restart {attempt}: {log}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.contains("worker-stopped") && l.contains("worker=wf")),
        "{log}"
    );
    assert_eq!(hive.sim.state("worker3").unwrap(), PdState::Stopped);
    let console = hive.sim.console();
    assert!(
        console.contains("ninedoor: worker wf (slot 3): vm-fault at 0x10"),
        "{console}"
    );
    assert!(
        console.contains(&format!("restart {RESTART_LIMIT} of {RESTART_LIMIT}")),
        "{console}"
    );
    assert!(console.contains("left stopped until killed"), "{console}");

    // Stopped for good: more ticks run nothing there.
    let stopped_at = hive.sim.entries("worker3").unwrap();
    ticks(&mut hive, 3);
    assert_eq!(hive.sim.entries("worker3").unwrap(), stopped_at);
    // The rest of the hive never paused: w1 beat on every tick.
    assert_eq!(
        last_seq(&mut q, &mut hive, root, "w1"),
        w1 + rounds as u64 + 3
    );
    // wf's files stay for the Queen until she kills it; then the slot is free.
    let text = q.read_all(&mut hive, root, "/worker/wf/telemetry").unwrap();
    assert!(text.contains("boot wf pd=worker3"), "{text}");
    q.ctl(&mut hive, root, r#"{"cmd":"kill","id":"wf"}"#)
        .expect("kill wf");
    spawn(&mut q, &mut hive, root, "w7").expect("the slot is free again");
    ticks(&mut hive, 2);
    assert!(last_seq(&mut q, &mut hive, root, "w7") >= 3 + 2);
}

#[test]
fn a_restarted_worker_starts_clean_with_a_fresh_ticket() {
    let mut hive = faulty_hive();
    let (mut q, root) = queen(&mut hive);
    spawn(&mut q, &mut hive, root, "wf").expect("spawn wf");
    let tickets = |hive: &HiveSim| -> Vec<String> {
        let nd = hive
            .sim
            .handler::<cohesix_pds::NineDoorPd>("ninedoor")
            .expect("ninedoor");
        nd.hive()
            .expect("hive")
            .workers()
            .into_iter()
            .filter(|w| w.id == "wf")
            .map(|w| format!("{}", w.ticket))
            .collect()
    };
    let first = tickets(&hive);
    ticks(&mut hive, 3);
    let second = tickets(&hive);
    assert_eq!(first.len(), 1);
    assert_ne!(first, second, "the restart minted a new ticket");
    let text = q.read_all(&mut hive, root, "/worker/wf/telemetry").unwrap();
    // The restarted PD ran its whole script again from its entry point.
    assert_eq!(text.matches("boot wf pd=worker3").count(), 2, "{text}");
}

#[test]
fn hostile_framing_over_tcp_closes_only_that_connection() {
    let mut hive = booted();
    let ticket = hive.queen_ticket().unwrap();
    let mut good = Host::connect_via(&mut hive, HostLink::Net);
    let root = good.attach(&mut hive, "queen", &ticket).expect("attach");
    let hostile: [(&str, Vec<u8>); 3] = [
        ("size 3", vec![3, 0, 0, 0, 100, 0, 0]),
        ("size 2^31-1", (i32::MAX as u32).to_le_bytes().to_vec()),
        (
            "random bytes",
            (0..64u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ];
    for (what, bytes) in hostile {
        let bad = hive.net.open();
        let back = hive.exchange_on(HostLink::Net, bad, &bytes).unwrap();
        assert!(back.is_empty(), "{what}: {back:?}");
        assert!(hive.net.closed_by_device(bad), "{what}: not closed");
        let line = format!("net: connection {bad}: frame size ");
        assert!(
            hive.sim.console().contains(&line),
            "{what}: {}",
            hive.sim.console()
        );
        // The well-behaved connection carries on, and a new one is served.
        good.read_all(&mut hive, root, "/proc/boot")
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let fresh = hive.net.open();
        let mut next = Host::connect_on(&mut hive, HostLink::Net, fresh);
        next.attach(&mut hive, "queen", &ticket)
            .unwrap_or_else(|e| panic!("{what}: fresh connection: {e:?}"));
    }
    // Their sessions are gone from NineDoor: only the good ones remain.
    let nd = hive
        .sim
        .handler::<cohesix_pds::NineDoorPd>("ninedoor")
        .unwrap();
    assert_eq!(nd.host_sessions(), 1 + 3, "the good one and the fresh ones");
}
