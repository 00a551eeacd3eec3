//! The ZCU102 image's system in the simulator: the same hive as on QEMU
//! `virt` (same NineDoor, workers and checks), reached over the UART PD's
//! one stream and ticked by the TTC timer PD; nothing of the network side
//! is mapped or signalled.

mod common;

use cohesix_drivers::cadence_ttc::Ttc;
use cohesix_pds::wiring::{PASS_MARKER, WORKER_IDS};
use cohesix_pds::{Page, TimerPd};
use cohesix_sim::Board;
use cohesix_sim::hive::HiveSim;
use common::{Host, SEED};

/// The last `seq=` of a telemetry text's heartbeat lines.
fn last_seq(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .filter(|l| l.starts_with("heartbeat "))
        .filter_map(|l| {
            l.split("seq=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .next()
}

#[test]
fn the_zcu102_hive_boots_heartbeats_and_serves_the_uart_link() {
    let mut hive = HiveSim::boot_board(Board::Zcu102, &SEED).expect("zcu102 boots");
    assert_eq!(hive.board, Board::Zcu102);
    assert!(
        hive.sim.console().contains(PASS_MARKER),
        "{}",
        hive.sim.console()
    );
    let queen = hive.queen_ticket().expect("queen ticket");
    let mut host = Host::connect(&mut hive);
    let root = host
        .attach(&mut hive, "queen", &queen)
        .expect("queen attaches");
    let boot = host.read_all(&mut hive, root, "/proc/boot").unwrap();
    assert!(boot.contains("workers"), "{boot}");

    let seqs: Vec<Option<u64>> = WORKER_IDS
        .iter()
        .map(|id| {
            last_seq(
                &host
                    .read_all(&mut hive, root, &format!("/worker/{id}/telemetry"))
                    .unwrap(),
            )
        })
        .collect();
    assert!(seqs.iter().all(Option::is_some), "{seqs:?}");
    for _ in 0..3 {
        hive.tick().unwrap();
    }
    for (id, before) in WORKER_IDS.iter().zip(&seqs) {
        let text = host
            .read_all(&mut hive, root, &format!("/worker/{id}/telemetry"))
            .unwrap();
        assert_eq!(last_seq(&text), before.map(|s| s + 3), "{id}: {text}");
    }
    let timer = hive
        .sim
        .handler::<TimerPd<Ttc<Page>>>("timer")
        .expect("the TTC timer PD");
    assert_eq!((timer.ticks(), timer.spurious()), (3, 0));
    // The nominal clock was kept: the simulated interval is exactly 1 s.
    assert_eq!(timer.source().clock_hz(), 100_000_000);

    // The lifecycle is the same: spawn a third worker into a free slot.
    let reply = host
        .ctl(
            &mut hive,
            root,
            r#"{"cmd":"spawn","role":"heartbeat","id":"w3"}"#,
        )
        .expect("spawn w3");
    assert!(reply.contains("w3"), "{reply}");
    hive.tick().unwrap();
    hive.tick().unwrap();
    let w3 = host
        .read_all(&mut hive, root, "/worker/w3/telemetry")
        .unwrap();
    assert!(w3.contains("heartbeat w3 seq="), "{w3}");

    // The timer asked before signalling the network PD this board lacks,
    // and nothing else was refused.
    assert!(hive.sim.refusals().is_empty(), "{:?}", hive.sim.refusals());
}

#[test]
fn a_spurious_ttc_interrupt_is_no_tick() {
    let mut hive = HiveSim::boot_board(Board::Zcu102, &SEED).expect("zcu102 boots");
    hive.sim.raise_irq("timer", 0).unwrap();
    hive.sim
        .run_until_idle(cohesix_sim::hive::MAX_STEPS)
        .unwrap();
    let timer = hive.sim.handler::<TimerPd<Ttc<Page>>>("timer").unwrap();
    assert_eq!((timer.ticks(), timer.spurious()), (0, 1));
}
