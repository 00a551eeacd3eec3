//! The whole hive — device PD, NineDoor, two heartbeat workers, timer — booted in
//! the simulator from `boards/qemu_virt_aarch64.system`, driven from the host end of the
//! device PD's console by a 9P client, as the Queen and as a worker.

use cohesix_drivers::pl031::Pl031;
use cohesix_pds::wiring::{HEARTBEATS, MSIZE, PASS_MARKER};
use cohesix_pds::{BOOT_EPOCH, DevicePd, MAX_HOST_SESSIONS, NineDoorPd, Page, TimerPd, boot_hive};
use cohesix_sim::HostPipe;
use cohesix_sim::hive::{HiveSim, HostLink};
use ninedoor::secure9p_core::codec::{
    Dialect, GetattrMask, LOpenFlags, Msg, Tgetattr, Tlopen, Tread, Twrite,
};
use ninedoor::secure9p_core::{Client, FsError};

mod common;

use common::{Host, SEED, booted};

#[test]
fn hive_boots_and_workers_heartbeat() {
    let hive = booted();
    let console = hive.sim.console();
    assert!(console.contains("ninedoor: hive up"), "{console}");
    assert!(console.contains(PASS_MARKER), "{console}");
    assert!(!console.contains("failed"), "{console}");
    // Never a ticket on the console.
    assert!(!console.contains("c9t1."), "{console}");
}

#[test]
fn queen_reads_proc_boot_and_worker_telemetry() {
    let mut hive = booted();
    let queen = hive.queen_ticket().expect("queen ticket");
    let mut host = Host::connect(&mut hive);
    let root = host
        .attach(&mut hive, "queen", &queen)
        .expect("queen attaches");

    let boot = host.read_all(&mut hive, root, "/proc/boot").unwrap();
    assert!(boot.contains("workers"), "{boot}");

    for (id, pd) in [("w1", "worker1"), ("w2", "worker2")] {
        let t = host
            .read_all(&mut hive, root, &format!("/worker/{id}/telemetry"))
            .unwrap();
        assert!(t.contains(&format!("boot {id} pd={pd}")), "{t}");
        for seq in 1..=HEARTBEATS {
            assert!(t.contains(&format!("heartbeat {id} seq={seq} ")), "{t}");
        }
        // Each worker tried the other's files and was refused.
        assert!(t.contains("telemetry: refused EACCES"), "{t}");
    }

    let log = host.read_all(&mut hive, root, "/log/queen.log").unwrap();
    assert!(log.contains("spawn"), "{log}");
    assert!(log.contains("denied"), "{log}");
}

#[test]
fn the_image_builders_queen_ticket_opens_the_booted_hive() {
    // What `cargo xtask run` hands cohsh: the Queen's ticket of the hive
    // built from the image's seed on the host.
    let queen = boot_hive(&SEED, BOOT_EPOCH)
        .unwrap()
        .queen_ticket()
        .to_owned();
    let mut hive = booted();
    let mut host = Host::connect(&mut hive);
    let root = host.attach(&mut hive, "queen", &queen).expect("attaches");
    let boot = host.read_all(&mut hive, root, "/proc/boot").unwrap();
    assert!(boot.contains("workers.live 2"), "{boot}");
    // Another seed's Queen is a stranger.
    let other = boot_hive(&[7; 64], BOOT_EPOCH)
        .unwrap()
        .queen_ticket()
        .to_owned();
    let mut stranger = Host::connect(&mut hive);
    assert_eq!(
        stranger.attach(&mut hive, "queen", &other),
        Err(FsError::TicketRejected)
    );
}

#[test]
fn the_console_and_the_network_pd_carry_separate_sessions() {
    let mut hive = booted();
    let queen = hive.queen_ticket().unwrap();
    let mut console = Host::connect(&mut hive);
    let mut tcp = Host::connect_via(&mut hive, HostLink::Net);
    // The same fid numbers on both links: two sessions, no clash.
    let c = console.attach(&mut hive, "queen", &queen).unwrap();
    let t = tcp.attach(&mut hive, "queen", &queen).unwrap();
    assert_eq!(c, t);
    let boot = tcp.read_all(&mut hive, t, "/proc/boot").unwrap();
    assert!(boot.contains("workers.live 2"), "{boot}");
    let telemetry = tcp.read_all(&mut hive, t, "/worker/w2/telemetry").unwrap();
    assert!(telemetry.contains("heartbeat w2 seq=1 "), "{telemetry}");
    // Clunking on one link leaves the other's fid alone.
    console
        .rpc(
            &mut hive,
            ninedoor::secure9p_core::codec::Tclunk { fid: c },
            |_| (),
        )
        .unwrap();
    assert!(tcp.read_all(&mut hive, t, "/proc/boot").is_ok());
    assert!(hive.net.take().is_empty());
}

#[test]
fn replies_meant_for_a_connection_that_ended_never_reach_the_next() {
    let mut hive = booted();
    let queen = hive.queen_ticket().unwrap();
    let mut old = Host::connect_via(&mut hive, HostLink::Net);
    let root = old.attach(&mut hive, "queen", &queen).unwrap();
    // The old host asks for attributes; the network PD hands the request
    // to NineDoor, and before NineDoor has answered the host is gone ...
    let mut req = Vec::new();
    old.client
        .request(
            Tgetattr {
                fid: root,
                request_mask: GetattrMask::BASIC,
            },
            &mut req,
        )
        .unwrap();
    hive.net.send(&req);
    hive.sim.raise_irq("net", 1).unwrap();
    assert!(hive.sim.step(), "the network PD runs");
    // ... leaving half a request behind, too.
    hive.net.send(&req[..5]);
    hive.sim.raise_irq("net", 1).unwrap();
    assert!(hive.sim.step());
    let new_conn = hive.net.reconnect();
    assert_eq!(new_conn, 1);
    // A new host: its Tversion is answered with exactly one Rversion (the
    // connect helper fails on anything else), not the old Rgetattr first.
    let mut new = Host::connect_via(&mut hive, HostLink::Net);
    let dropped = hive
        .sim
        .handler::<DevicePd<HostPipe>>("net")
        .unwrap()
        .stale_replies_dropped();
    assert_eq!(dropped, 1);
    assert!(
        hive.sim
            .console()
            .contains("connection 0 ended; 5 bytes of a frame dropped")
    );
    let t = new.attach(&mut hive, "queen", &queen).unwrap();
    let boot = new.read_all(&mut hive, t, "/proc/boot").unwrap();
    assert!(boot.contains("workers.live 2"), "{boot}");
}

#[test]
fn each_host_connection_is_its_own_session_and_ends_with_it() {
    let mut hive = booted();
    let queen = hive.queen_ticket().unwrap();
    let sessions = |hive: &HiveSim| {
        hive.sim
            .handler::<NineDoorPd>("ninedoor")
            .unwrap()
            .host_sessions()
    };
    let first = hive.net.current();
    let mut a = Host::connect_on(&mut hive, HostLink::Net, first);
    let second = hive.net.open();
    let mut b = Host::connect_on(&mut hive, HostLink::Net, second);
    assert_eq!(sessions(&hive), 2);
    // The same fid numbers on both connections, as different users.
    let fa = a.attach(&mut hive, "queen", &queen).unwrap();
    let fb = b.attach(&mut hive, "queen", &queen).unwrap();
    assert_eq!(fa, fb);
    let own = b.walk(&mut hive, fb, "/worker/w1/telemetry").unwrap();
    let boot = a.read_all(&mut hive, fa, "/proc/boot").unwrap();
    assert!(boot.contains("workers.live 2"), "{boot}");
    // A ends: its session closes in NineDoor, B's fids live on.
    hive.net.close(first);
    hive.sim.raise_irq("net", 1).unwrap();
    hive.sim.run_until_idle(10_000).unwrap();
    assert_eq!(sessions(&hive), 1);
    assert_eq!(
        hive.sim
            .handler::<DevicePd<HostPipe>>("net")
            .unwrap()
            .connections(),
        1
    );
    b.rpc(
        &mut hive,
        Tlopen {
            fid: own,
            flags: LOpenFlags::empty(),
        },
        |_| (),
    )
    .unwrap();
    let t = b.read_all(&mut hive, fb, "/worker/w1/telemetry").unwrap();
    assert!(t.contains("heartbeat w1"), "{t}");
}

#[test]
fn a_host_link_holds_a_bounded_number_of_sessions() {
    let mut hive = booted();
    let mut hosts = Vec::new();
    for _ in 0..MAX_HOST_SESSIONS {
        let conn = hive.host.open();
        hosts.push(Host::connect_on(&mut hive, HostLink::Console, conn));
    }
    // Connection 0 was open from the start but never spoke: the link has
    // its maximum, and one more connection gets no session and no answer.
    let extra = hive.host.open();
    let mut req = Vec::new();
    Client::new(MSIZE)
        .version(Dialect::Linux, &mut req)
        .unwrap();
    let reply = hive.exchange_on(HostLink::Console, extra, &req).unwrap();
    assert!(reply.is_empty());
    assert!(hive.sim.console().contains("sessions open"));
    // When one ends, the next is served.
    hive.host.close(hosts[0].conn);
    hive.sim.raise_irq("device", 1).unwrap();
    hive.sim.run_until_idle(10_000).unwrap();
    let again = hive.host.open();
    Host::connect_on(&mut hive, HostLink::Console, again);
}

#[test]
fn every_tick_of_the_timer_adds_a_heartbeat() {
    let mut hive = booted();
    let rtc = hive.sim.region("rtc").expect("rtc region");
    let word = |i: usize| rtc[i].load(std::sync::atomic::Ordering::Relaxed);
    // init started the RTC, armed the match one second on, unmasked it.
    assert_eq!((word(0x0c / 4), word(0x04 / 4), word(0x10 / 4)), (1, 1, 1));
    for _ in 0..3 {
        hive.tick().unwrap();
    }
    assert_eq!(
        hive.sim
            .handler::<TimerPd<Pl031<Page>>>("timer")
            .unwrap()
            .ticks(),
        3
    );
    assert!(hive.sim.refusals().is_empty(), "{:?}", hive.sim.refusals());
    let queen = hive.queen_ticket().unwrap();
    let mut host = Host::connect(&mut hive);
    let root = host.attach(&mut hive, "queen", &queen).unwrap();
    for id in ["w1", "w2"] {
        let t = host
            .read_all(&mut hive, root, &format!("/worker/{id}/telemetry"))
            .unwrap();
        let beats: Vec<&str> = t.lines().filter(|l| l.starts_with("heartbeat")).collect();
        assert_eq!(beats.len() as u32, HEARTBEATS + 3, "{t}");
        for seq in HEARTBEATS + 1..=HEARTBEATS + 3 {
            assert!(t.contains(&format!("heartbeat {id} seq={seq} ")), "{t}");
        }
        // The tick's lines come after the probe's report.
        let probe = t.find("probe ").unwrap();
        let last = t.find(&format!("seq={} ", HEARTBEATS + 1)).unwrap();
        assert!(probe < last, "{t}");
    }
}

#[test]
fn worker_ticket_cannot_touch_another_worker() {
    let mut hive = booted();
    let queen = hive.queen_ticket().unwrap();
    let mut host = Host::connect(&mut hive);
    let root = host.attach(&mut hive, "queen", &queen).unwrap();
    // The Queen spawns a worker w3 from the host and reads its ticket back
    // from the ctl fid, then attaches with it in a second session.
    let ctl = host.walk(&mut hive, root, "/queen/ctl").unwrap();
    host.rpc(
        &mut hive,
        Tlopen {
            fid: ctl,
            flags: LOpenFlags::RDWR,
        },
        |_| (),
    )
    .unwrap();
    let spawn = br#"{"cmd":"spawn","role":"heartbeat","id":"w3"}"#;
    host.rpc(
        &mut hive,
        Twrite {
            fid: ctl,
            offset: 0,
            data: spawn,
        },
        |_| (),
    )
    .unwrap();
    let reply = host
        .rpc(
            &mut hive,
            Tread {
                fid: ctl,
                offset: 0,
                count: 4096,
            },
            |m| match m {
                Msg::Rread(r) => r.data.to_vec(),
                _ => Vec::new(),
            },
        )
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    let ticket = reply["ticket"].as_str().unwrap().to_owned();

    let mut w3 = Host::connect(&mut hive);
    let wroot = w3.attach(&mut hive, "w3", &ticket).expect("w3 attaches");
    // Its own telemetry: writable.
    let own = w3.walk(&mut hive, wroot, "/worker/w3/telemetry").unwrap();
    w3.rpc(
        &mut hive,
        Tlopen {
            fid: own,
            flags: LOpenFlags::WRONLY,
        },
        |_| (),
    )
    .unwrap();
    w3.rpc(
        &mut hive,
        Twrite {
            fid: own,
            offset: 0,
            data: b"heartbeat w3\n",
        },
        |_| (),
    )
    .unwrap();
    // Another worker's: refused, and so is the Queen's control file.
    assert_eq!(
        w3.walk(&mut hive, wroot, "/worker/w1/telemetry"),
        Err(FsError::AccessDenied)
    );
    assert_eq!(
        w3.walk(&mut hive, wroot, "/queen/ctl"),
        Err(FsError::AccessDenied)
    );
}

#[test]
fn a_bad_ticket_is_refused_and_hostile_bytes_do_not_wedge_the_device() {
    let mut hive = booted();
    let mut host = Host::connect(&mut hive);
    assert!(
        host.attach(&mut hive, "queen", "c9t1.not-a-ticket")
            .is_err()
    );
    // A size prefix above msize: the stream cannot be resynchronised, so
    // the device PD closes the connection (and NineDoor its session); a
    // fresh connection works at once.
    let back = hive.exchange(&u32::MAX.to_le_bytes()).unwrap();
    assert!(back.is_empty());
    assert!(
        hive.sim.console().contains(
            "device: connection 0: frame size 4294967295 outside 7..=8192; connection closed"
        ),
        "{}",
        hive.sim.console()
    );
    assert!(hive.host.closed_by_device(0));
    let queen = hive.queen_ticket().unwrap();
    hive.host.open();
    let mut again = Host::connect(&mut hive);
    again
        .attach(&mut hive, "queen", &queen)
        .expect("attach after garbage");
}

#[test]
fn boot_without_a_seed_refuses_to_make_a_hive() {
    let hive = HiveSim::boot([0; 64]).expect("the system still boots");
    assert!(hive.sim.console().contains("boot seed region is all zero"));
    assert!(hive.queen_ticket().is_none());
}
