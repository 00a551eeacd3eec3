//! Many bridges, one hive, sans-IO: a bridge's GPUs installed one by one
//! (a duplicate or malformed id refused and logged, the rest served),
//! "any GPU" leases placed least loaded first and moved on when a bridge
//! refuses, and the `bridge` command refused where links are fixed.

mod common;

use common::{Queen, hive};
use ninedoor::bridge::BridgeTarget;
use ninedoor::secure9p_core::codec::Msg;
use ninedoor::secure9p_core::{Completion, FsError};
use ninedoor::{GpuDescriptor, GpuOp, GpuRequest, Hive};

fn descriptor(id: &str) -> GpuDescriptor {
    GpuDescriptor {
        id: id.to_owned(),
        name: "Cohesix Mock GPU".to_owned(),
        uuid: format!("GPU-{id}"),
        memory_mb: 16_384,
        sm_count: Some(16),
        driver_version: "mock-1.0".to_owned(),
        runtime_version: "12.0".to_owned(),
    }
}

fn target(s: &str) -> BridgeTarget {
    s.parse().unwrap()
}

#[test]
fn a_bridge_listing_is_installed_gpu_by_gpu_and_each_refusal_is_logged_once() {
    let mut hive = hive();
    let (a, b) = (target("a=10.0.0.1:5650"), target("10.0.0.2:5650"));
    assert!(hive.add_configured_bridge(&a));
    assert!(hive.add_configured_bridge(&b));
    assert!(!hive.add_configured_bridge(&target("x=10.0.0.2:5650")));

    let listing = [
        descriptor("0"),
        descriptor("1"),
        descriptor("0"),
        descriptor("x y"),
    ];
    let done = hive.install_bridge_gpus(&a, &listing);
    let routes = [
        ("a-0".to_owned(), "0".to_owned()),
        ("a-1".into(), "1".into()),
    ];
    assert_eq!(done.routes, routes);
    assert_eq!(done.refused.len(), 2, "{:?}", done.refused);
    assert!(
        done.refused[0].contains("listed twice"),
        "{:?}",
        done.refused
    );
    assert!(
        done.refused[1].contains("not 1 to 64"),
        "{:?}",
        done.refused
    );

    // Another bridge listing an id taken, or the reserved `any`: those
    // GPUs only are refused.
    let done =
        hive.install_bridge_gpus(&b, &[descriptor("a-0"), descriptor("any"), descriptor("2")]);
    assert_eq!(done.routes, [("2".to_owned(), "2".to_owned())]);
    assert!(
        done.refused[0].contains("installed already (from 10.0.0.1:5650)"),
        "{:?}",
        done.refused
    );
    assert!(done.refused[1].contains("reserved"), "{:?}", done.refused);

    // A relisting (a reconnection) routes what is installed and logs no
    // refusal twice; a bridge the hive does not know installs nothing.
    let again = hive.install_bridge_gpus(&a, &listing);
    assert_eq!(again.routes, routes);
    let unknown = hive.install_bridge_gpus(&target("10.0.0.9:1"), &[descriptor("9")]);
    assert_eq!(unknown.routes, []);

    let mut q = Queen::attach(&mut hive);
    assert_eq!(
        q.conn.list(&mut hive, q.root, "/gpu").unwrap(),
        ["a-0", "a-1", "2"]
    );
    let log = q.log(&mut hive);
    assert_eq!(
        log.matches(" gpu-refused role=- subject=- ticket=- bridge=10.0.0.1:5650 gpu=a-0 why=\"listed twice by this bridge\"").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches(" gpu-refused ").count(), 4, "{log}");
    assert!(
        log.contains(" bridge=10.0.0.2:5650 gpu=a-0 why=\"gpu a-0 is installed already (from 10.0.0.1:5650); give each bridge a prefix (PREFIX=HOST:PORT)\""),
        "{log}"
    );
    let bridges = hive.bridges();
    assert_eq!(bridges[0].1, ["a-0", "a-1"]);
    assert_eq!(bridges[1].1, ["2"]);
}

#[test]
fn the_bridge_command_is_refused_where_links_are_fixed_and_checked_where_not() {
    let mut hive = hive();
    let mut q = Queen::attach(&mut hive);
    let add = r#"{"cmd":"bridge","add":"h3=127.0.0.1:5652"}"#;
    assert_eq!(q.command(&mut hive, add).err(), Some(FsError::NotSupported));
    let log = q.log(&mut hive);
    assert!(
        log.contains(" cmd=bridge errno=EOPNOTSUPP why=\"this NineDoor's bridge links are fixed"),
        "{log}"
    );
    assert!(hive.take_bridge_events().is_empty());

    hive.allow_bridge_changes();
    for (line, errno) in [
        (r#"{"cmd":"bridge"}"#, FsError::Invalid),
        (
            r#"{"cmd":"bridge","add":"a:1","remove":"a:1"}"#,
            FsError::Invalid,
        ),
        (r#"{"cmd":"bridge","add":"no-port"}"#, FsError::Invalid),
        (r#"{"cmd":"bridge","add":"a-b=h:1"}"#, FsError::Invalid),
        (
            r#"{"cmd":"bridge","remove":"127.0.0.1:5652"}"#,
            FsError::NotFound,
        ),
    ] {
        assert_eq!(q.command(&mut hive, line).err(), Some(errno), "{line}");
    }
    let reply: serde_json::Value =
        serde_json::from_str(&q.command(&mut hive, add).unwrap()).unwrap();
    assert_eq!(reply["bridge"], "added");
    assert_eq!(reply["target"], "h3=127.0.0.1:5652");
    assert_eq!(
        hive.take_bridge_events(),
        [ninedoor::BridgeEvent::Add(target("h3=127.0.0.1:5652"))]
    );
    let again = r#"{"cmd":"bridge","add":"127.0.0.1:5652"}"#;
    assert_eq!(q.command(&mut hive, again).err(), Some(FsError::Exists));

    let done = hive.install_bridge_gpus(&target("h3=127.0.0.1:5652"), &[descriptor("0")]);
    assert_eq!(done.routes.len(), 1);
    let remove = r#"{"cmd":"bridge","remove":"127.0.0.1:5652"}"#;
    let reply: serde_json::Value =
        serde_json::from_str(&q.command(&mut hive, remove).unwrap()).unwrap();
    assert_eq!(reply["bridge"], "removed");
    assert_eq!(reply["gpus_removed"], serde_json::json!(["h3-0"]));
    assert_eq!(
        hive.take_bridge_events(),
        [ninedoor::BridgeEvent::Remove(target("h3=127.0.0.1:5652"))]
    );
    assert!(q.conn.list(&mut hive, q.root, "/gpu").unwrap().is_empty());
    let log = q.log(&mut hive);
    assert!(
        log.contains(" bridge-added role=queen subject=queen "),
        "{log}"
    );
    assert!(
        log.contains(" gpu-removed role=- subject=- ticket=- gpu=h3-0 bridge=127.0.0.1:5652"),
        "{log}"
    );
    assert!(
        log.contains(" bridge-removed role=queen subject=queen "),
        "{log}"
    );
}

/// Answers a forwarded command as the bridge would (the hive's reply, if
/// one is due, lands in the Queen's connection).
fn bridge_says(
    hive: &mut Hive,
    q: &mut Queen,
    req: &GpuRequest,
    result: Result<u32, FsError>,
    line: &str,
) -> Option<ninedoor::secure9p_core::SessionId> {
    hive.set_gpu_reply(req.token, line.as_bytes());
    q.conn.rep.clear();
    hive.complete(req.token, Completion::Write(result), 0, &mut q.conn.rep)
}

/// The `/queen/ctl` write's result, and its reply, once answered.
fn ctl_answer(hive: &mut Hive, q: &mut Queen) -> (Result<u32, FsError>, serde_json::Value) {
    let written = q.conn.finish(|m| match m {
        Msg::Rwrite(r) => r.count,
        other => panic!("{other:?}"),
    });
    let reply = q.conn.read_all(hive, q.ctl).unwrap();
    (
        written,
        serde_json::from_slice(&reply).unwrap_or(serde_json::Value::Null),
    )
}

fn granted(holder: &str) -> String {
    format!(
        "OK LEASE granted holder={holder} mem_mb=512 streams=1 ttl_s=60 priority=0 lease_id=1 expires_ms=1\n"
    )
}

#[test]
fn any_gpu_goes_to_the_least_loaded_says_which_and_moves_on_when_refused() {
    let mut hive = hive();
    hive.install_gpu_nodes(&[descriptor("g0"), descriptor("g1"), descriptor("g2")])
        .unwrap();
    let mut q = Queen::attach(&mut hive);

    // g0 carries a lease of 1024 MiB.
    let line = r#"{"cmd":"lease","gpu":"g0","worker":"e1","mem_mb":1024,"ttl_s":60}"#;
    let req = q.forwarded(&mut hive, line);
    assert!(bridge_says(&mut hive, &mut q, &req, Ok(1), &granted("e1")).is_some());
    let (_, reply) = ctl_answer(&mut hive, &mut q);
    assert_eq!(reply["gpu"], "g0");

    // g1 and g2 hold nothing: g1 first (ties go by id); its bridge refuses,
    // so the same lease line asks g2, under the same token.
    let any = r#"{"cmd":"lease","gpu":"any","worker":"p1","mem_mb":512,"ttl_s":60}"#;
    let first = q.forwarded(&mut hive, any);
    assert_eq!(first.gpu, "g1");
    let busy = "ERR BUSY 8 lease requests wait already\n";
    assert_eq!(
        bridge_says(&mut hive, &mut q, &first, Err(FsError::Busy), busy),
        None
    );
    let next = hive.take_forwards();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].gpu.as_str(), next[0].token), ("g2", first.token));
    assert_eq!(next[0].op, first.op);
    assert!(
        matches!(&next[0].op, GpuOp::Write { data, .. } if data.starts_with(b"LEASE holder=p1 mem_mb=512 "))
    );
    assert!(bridge_says(&mut hive, &mut q, &next[0], Ok(1), &granted("p1")).is_some());
    let (written, reply) = ctl_answer(&mut hive, &mut q);
    assert_eq!(written, Ok(any.len() as u32));
    assert_eq!(
        (reply["spawned"].as_str(), reply["gpu"].as_str()),
        (Some("p1"), Some("g2"))
    );

    // g1's bridge goes away: the least loaded of g0 (1024 MiB) and g2
    // (512 MiB) is g2.
    hive.set_gpu_reachable("g1", false);
    let any2 = r#"{"cmd":"lease","gpu":"any","worker":"p2","mem_mb":512,"ttl_s":60}"#;
    let req = q.forwarded(&mut hive, any2);
    assert_eq!(req.gpu, "g2");
    let queued = "QUEUED LEASE holder=p2 priority=0 position=1\n";
    assert!(bridge_says(&mut hive, &mut q, &req, Ok(1), queued).is_some());
    let (written, reply) = ctl_answer(&mut hive, &mut q);
    assert!(written.is_ok());
    assert_eq!(
        (reply["gpu"].as_str(), reply["lease"].as_str()),
        (Some("g2"), Some(queued.trim_end()))
    );

    // No GPU has 16,000 MiB free and a link up; nor does one refused by
    // every candidate get placed.
    let big = r#"{"cmd":"lease","gpu":"any","mem_mb":16000,"ttl_s":60}"#;
    assert_eq!(q.command(&mut hive, big).err(), Some(FsError::NoSpace));
    hive.set_gpu_reachable("g2", false);
    let last = r#"{"cmd":"lease","gpu":"any","worker":"p3","mem_mb":64,"ttl_s":60}"#;
    let req = q.forwarded(&mut hive, last);
    assert_eq!(req.gpu, "g0");
    assert!(bridge_says(&mut hive, &mut q, &req, Err(FsError::Busy), busy).is_some());
    assert!(hive.take_forwards().is_empty());
    let (written, reply) = ctl_answer(&mut hive, &mut q);
    assert_eq!(written, Err(FsError::Busy));
    assert_eq!(reply["refused"], "lease");
    assert!(hive.workers().iter().all(|w| w.id != "p3"));

    let log = q.log(&mut hive);
    assert!(
        log.contains(" lease-placed role=queen subject=queen "),
        "{log}"
    );
    assert!(
        log.contains(" gpu=g1 leases=0 free_mb=16384 mem_mb=512 candidates=3"),
        "{log}"
    );
    assert!(
        log.contains(" lease-retry role=queen subject=queen "),
        "{log}"
    );
    assert!(
        log.contains(" gpu=g1 next=g2 worker=p1 why=\"ERR BUSY 8 lease requests wait already\""),
        "{log}"
    );
    assert!(
        log.contains(" gpu=g2 leases=1 free_mb=15872 mem_mb=512 candidates=2"),
        "{log}"
    );
    assert!(log.contains(" cmd=lease errno=ENOSPC why=\"no GPU has 16000 MiB free and a bridge link up: 3 installed, 1 unreachable, 2 with less free\""), "{log}");
    assert!(
        log.contains(" lease-unplaced role=queen subject=queen "),
        "{log}"
    );
}
