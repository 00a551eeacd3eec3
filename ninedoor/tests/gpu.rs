//! `/gpu/<id>/…`: installing descriptors, `info` served locally, the other
//! files forwarded to the embedder and completed, GPU workers confined.

mod common;

use common::{Conn, Queen, hive, worker};
use ninedoor::secure9p_core::codec::{LOpenFlags, Msg, Tread, Twrite};
use ninedoor::secure9p_core::{Completion, FsError, Role};
use ninedoor::{GpuDescriptor, GpuFile, GpuOp, GpuOrigin, Handled, Hive, HiveError};

fn descriptor(id: &str, uuid: &str) -> GpuDescriptor {
    GpuDescriptor {
        id: id.to_owned(),
        name: "NVIDIA H100 80GB HBM3".to_owned(),
        uuid: uuid.to_owned(),
        memory_mb: 81_559,
        sm_count: Some(132),
        driver_version: "550.54.15".to_owned(),
        runtime_version: "12.4".to_owned(),
    }
}

fn gpus() -> Vec<GpuDescriptor> {
    vec![
        descriptor("GPU-0", "GPU-5d3cbb1e-0000-4a2f-8b57-000000000000"),
        descriptor("GPU-1", "GPU-5d3cbb1e-0000-4a2f-8b57-000000000001"),
    ]
}

fn installed() -> (Hive, Queen) {
    let mut hive = hive();
    hive.install_gpu_nodes(&gpus()).unwrap();
    let q = Queen::attach(&mut hive);
    (hive, q)
}

#[test]
fn gpu_nodes_are_installed_from_descriptors() {
    let (mut hive, mut q) = installed();
    assert_eq!(
        q.conn.list(&mut hive, q.root, "/gpu").unwrap(),
        ["GPU-0", "GPU-1"]
    );
    assert_eq!(
        q.conn.list(&mut hive, q.root, "/gpu/GPU-0").unwrap(),
        ["info", "ctl", "lease", "job", "status", "stats", "result"]
    );
    let info = q.conn.cat(&mut hive, q.root, "/gpu/GPU-1/info").unwrap();
    assert!(info.ends_with(b"\n"));
    let back: GpuDescriptor = serde_json::from_slice(&info).unwrap();
    assert_eq!(back, gpus()[1]);
    let boot = q.conn.cat(&mut hive, q.root, "/proc/boot").unwrap();
    assert!(
        String::from_utf8(boot)
            .unwrap()
            .contains("provider gpu /gpu GPU-0 GPU-1\n")
    );
    let log = q.log(&mut hive);
    assert!(
        log.contains(" gpu-installed role=- subject=- ticket=- gpu=GPU-0 "),
        "{log}"
    );
}

#[test]
fn bad_or_duplicate_descriptors_install_nothing() {
    let (mut hive, mut q) = installed();
    let again = hive.install_gpu_nodes(&[descriptor("GPU-2", "u2"), descriptor("GPU-0", "u0")]);
    assert_eq!(again, Err(HiveError::GpuExists("GPU-0".to_owned())));
    let twice = hive.install_gpu_nodes(&[descriptor("GPU-3", "u3"), descriptor("GPU-3", "u3")]);
    assert_eq!(twice, Err(HiveError::GpuExists("GPU-3".to_owned())));
    for bad in ["", "a/b", "..", "GPU 4", &"x".repeat(65)] {
        let r = hive.install_gpu_nodes(&[descriptor("GPU-5", "u5"), descriptor(bad, "u")]);
        assert_eq!(r, Err(HiveError::BadGpuId { id: bad.to_owned() }));
    }
    assert_eq!(
        q.conn.list(&mut hive, q.root, "/gpu").unwrap(),
        ["GPU-0", "GPU-1"]
    );
}

#[test]
fn descriptors_parse_strictly() {
    let json = serde_json::to_string(&gpus()[0]).unwrap();
    assert_eq!(
        serde_json::from_str::<GpuDescriptor>(&json).unwrap(),
        gpus()[0]
    );
    let extra = json.replacen('{', r#"{"mig":true,"#, 1);
    assert!(serde_json::from_str::<GpuDescriptor>(&extra).is_err());
}

#[test]
fn queen_ctl_writes_and_reads_are_forwarded_and_completed() {
    let (mut hive, mut q) = installed();
    let ctl = q
        .conn
        .open_path(&mut hive, q.root, "/gpu/GPU-0/ctl", LOpenFlags::RDWR)
        .unwrap();
    let Handled::Forward(req) = q.conn.send(
        &mut hive,
        Twrite {
            fid: ctl,
            offset: 0,
            data: b"LEASE\n",
        },
    ) else {
        panic!("not forwarded")
    };
    assert!(q.conn.rep.is_empty());
    assert_eq!(req.gpu, "GPU-0");
    assert_eq!(req.file, GpuFile::Ctl);
    assert_eq!(
        req.op,
        GpuOp::Write {
            offset: 0,
            data: b"LEASE\n".to_vec()
        }
    );
    assert_eq!(req.role, Role::Queen);
    assert_eq!(req.subject, "queen");
    assert_eq!(req.ticket, Some(hive.queen_ticket_id()));
    let n = q
        .conn
        .complete(
            &mut hive,
            req.token,
            Completion::Write(Ok(6)),
            |m| match m {
                Msg::Rwrite(r) => r.count,
                other => panic!("{other:?}"),
            },
        )
        .unwrap();
    assert_eq!(n, 6);

    // A refusal from the bridge reaches the client as its errno.
    let Handled::Forward(req) = q.conn.send(
        &mut hive,
        Twrite {
            fid: ctl,
            offset: 0,
            data: b"RESET\n",
        },
    ) else {
        panic!("not forwarded")
    };
    let r = q.conn.complete(
        &mut hive,
        req.token,
        Completion::Write(Err(FsError::Busy)),
        |_| (),
    );
    assert_eq!(r, Err(FsError::Busy));

    let stats = q
        .conn
        .open_path(&mut hive, q.root, "/gpu/GPU-1/stats", LOpenFlags::empty())
        .unwrap();
    let Handled::Forward(req) = q.conn.send(
        &mut hive,
        Tread {
            fid: stats,
            offset: 7,
            count: 100,
        },
    ) else {
        panic!("not forwarded")
    };
    assert_eq!((req.gpu.as_str(), req.file), ("GPU-1", GpuFile::Stats));
    assert_eq!(
        req.op,
        GpuOp::Read {
            offset: 7,
            count: 100
        }
    );
    let data = q
        .conn
        .complete(
            &mut hive,
            req.token,
            Completion::Read(Ok(b"util 42%\n".to_vec())),
            |m| match m {
                Msg::Rread(r) => r.data.to_vec(),
                other => panic!("{other:?}"),
            },
        )
        .unwrap();
    assert_eq!(data, b"util 42%\n");

    let log = q.log(&mut hive);
    let forward = format!(
        " gpu-forward role=queen subject=queen ticket={} path=/gpu/GPU-0/ctl op=write bytes=6 token=",
        hive.queen_ticket_id()
    );
    assert_eq!(log.matches(&forward).count(), 2, "{log}");
    assert!(log.contains(" result=ok bytes=6"), "{log}");
    assert!(log.contains(" result=refused errno=EBUSY"), "{log}");
    // Reads are not logged.
    assert!(!log.contains("GPU-1/stats"), "{log}");
}

#[test]
fn a_gpu_worker_uses_only_its_gpu() {
    let (mut hive, mut q) = installed();
    let reply = q
        .command(
            &mut hive,
            r#"{"cmd":"spawn","role":"gpu","id":"g1","gpu":"GPU-0"}"#,
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(v["role"], "worker-gpu");
    assert_eq!(v["scope"], "GPU-0");
    // No worker directory for a GPU worker.
    assert!(
        q.conn
            .list(&mut hive, q.root, "/worker")
            .unwrap()
            .is_empty()
    );
    let ticket = v["ticket"].as_str().unwrap().to_owned();
    let (mut g1, root) = worker(&mut hive, &ticket);

    assert_eq!(g1.list(&mut hive, root, "/").unwrap(), ["gpu"]);
    assert_eq!(g1.list(&mut hive, root, "/gpu").unwrap(), ["GPU-0"]);
    assert_eq!(
        g1.list(&mut hive, root, "/gpu/GPU-0").unwrap(),
        ["info", "lease", "job", "status", "stats", "result"]
    );
    let info = g1.cat(&mut hive, root, "/gpu/GPU-0/info").unwrap();
    assert_eq!(
        serde_json::from_slice::<GpuDescriptor>(&info).unwrap(),
        gpus()[0]
    );

    for path in ["/gpu/GPU-1", "/gpu/GPU-0/ctl", "/worker", "/queen", "/log"] {
        assert_eq!(
            g1.walk(&mut hive, root, path).err(),
            Some(FsError::AccessDenied),
            "{path}"
        );
    }
    for (path, flags) in [
        ("/gpu/GPU-0/stats", LOpenFlags::WRONLY),
        ("/gpu/GPU-0/status", LOpenFlags::RDWR),
        ("/gpu/GPU-0/info", LOpenFlags::WRONLY),
        ("/gpu/GPU-0/result", LOpenFlags::WRONLY),
    ] {
        assert_eq!(
            g1.open_path(&mut hive, root, path, flags).err(),
            Some(FsError::AccessDenied),
            "{path}"
        );
    }

    let job = g1
        .open_path(
            &mut hive,
            root,
            "/gpu/GPU-0/job",
            LOpenFlags::WRONLY | LOpenFlags::APPEND,
        )
        .unwrap();
    let Handled::Forward(req) = g1.send(
        &mut hive,
        Twrite {
            fid: job,
            offset: 0,
            data: br#"{"kernel":"vadd"}"#,
        },
    ) else {
        panic!("not forwarded")
    };
    assert_eq!(
        (req.file, req.role, req.subject.as_str()),
        (GpuFile::Job, Role::WorkerGpu, "g1")
    );
    g1.complete(&mut hive, req.token, Completion::Write(Ok(17)), |_| ())
        .unwrap();

    let lease = g1
        .open_path(&mut hive, root, "/gpu/GPU-0/lease", LOpenFlags::RDWR)
        .unwrap();
    let Handled::Forward(req) = g1.send(
        &mut hive,
        Twrite {
            fid: lease,
            offset: 0,
            data: b"renew\n",
        },
    ) else {
        panic!("not forwarded")
    };
    assert_eq!(req.file, GpuFile::Lease);
    g1.complete(&mut hive, req.token, Completion::Write(Ok(6)), |_| ())
        .unwrap();

    let log = q.log(&mut hive);
    assert!(
        log.contains(" gpu-forward role=worker-gpu subject=g1 ")
            && log.contains(" path=/gpu/GPU-0/lease op=write bytes=6 "),
        "{log}"
    );
}

#[test]
fn flushed_or_abandoned_forwards_are_dropped() {
    let (mut hive, mut q) = installed();
    let ctl = q
        .conn
        .open_path(&mut hive, q.root, "/gpu/GPU-0/ctl", LOpenFlags::WRONLY)
        .unwrap();
    let Handled::Forward(req) = q.conn.send(
        &mut hive,
        Twrite {
            fid: ctl,
            offset: 0,
            data: b"PRIORITY 3\n",
        },
    ) else {
        panic!("not forwarded")
    };
    let tag = q.conn.last_tag;
    assert_eq!(hive.server().pending_count(q.conn.session), 1);
    q.conn.flush(&mut hive, tag);
    assert_eq!(hive.server().pending_count(q.conn.session), 0);
    let mut out = Vec::new();
    assert_eq!(
        hive.complete(req.token, Completion::Write(Ok(11)), common::NOW, &mut out),
        None
    );
    assert!(out.is_empty());
    let log = q.log(&mut hive);
    assert!(
        log.contains(&format!(
            " gpu-complete role=- subject=- ticket=- token={} result=dropped",
            req.token.0
        )),
        "{log}"
    );

    // A session that closes with a forward in flight hands its token back.
    let mut other = Conn::open(&mut hive);
    let ticket = hive.queen_ticket().to_owned();
    let root = other.attach(&mut hive, &ticket).unwrap();
    let status = other
        .open_path(&mut hive, root, "/gpu/GPU-1/status", LOpenFlags::empty())
        .unwrap();
    let Handled::Forward(req) = other.send(
        &mut hive,
        Tread {
            fid: status,
            offset: 0,
            count: 64,
        },
    ) else {
        panic!("not forwarded")
    };
    assert_eq!(hive.close_session(other.session), vec![req.token]);
    assert_eq!(
        hive.complete(
            req.token,
            Completion::Read(Ok(b"OK\n".to_vec())),
            common::NOW,
            &mut out
        ),
        None
    );
}

#[test]
fn a_ctl_write_refused_by_the_in_flight_limit_is_logged_as_refused() {
    let mut hive = common::hive_with(ninedoor::HiveConfig {
        max_inflight: 1,
        ..ninedoor::HiveConfig::default()
    });
    hive.install_gpu_nodes(&gpus()).unwrap();
    let mut q = Queen::attach(&mut hive);
    let status = q
        .conn
        .open_path(&mut hive, q.root, "/gpu/GPU-0/status", LOpenFlags::empty())
        .unwrap();
    let Handled::Forward(req) = q.conn.send(
        &mut hive,
        Tread {
            fid: status,
            offset: 0,
            count: 64,
        },
    ) else {
        panic!("not forwarded")
    };
    // The session's one slot is taken: the ctl write cannot be parked.
    let spawn = r#"{"cmd":"spawn","role":"heartbeat","id":"w1"}"#;
    assert_eq!(q.command(&mut hive, spawn).err(), Some(FsError::Again));
    assert!(hive.workers().is_empty());
    q.conn
        .complete(
            &mut hive,
            req.token,
            Completion::Read(Ok(Vec::new())),
            |_| (),
        )
        .unwrap();
    let log = q.log(&mut hive);
    assert!(
        log.contains(" ctl-refused role=queen subject=queen ")
            && log
                .contains(" path=/queen/ctl errno=EAGAIN why=\"in-flight request limit reached\""),
        "{log}"
    );
    assert!(!log.contains("ctl-accepted"), "{log}");
    // With the slot free again the same command runs.
    q.command(&mut hive, spawn).unwrap();
}

/// Answers a forwarded command as the bridge would: its reply line, then
/// the write's result; returns the `/queen/ctl` write's result and reply.
fn answer(
    hive: &mut Hive,
    q: &mut Queen,
    req: &ninedoor::GpuRequest,
    result: Result<u32, FsError>,
    bridge_reply: &str,
) -> (Result<u32, FsError>, serde_json::Value) {
    hive.set_gpu_reply(req.token, bridge_reply.as_bytes());
    let written = q
        .conn
        .complete(hive, req.token, Completion::Write(result), |m| match m {
            Msg::Rwrite(r) => r.count,
            other => panic!("{other:?}"),
        });
    let reply = q.conn.read_all(hive, q.ctl).unwrap();
    let reply = if reply.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&reply).unwrap()
    };
    (written, reply)
}

#[test]
fn a_lease_runs_on_the_bridge_and_spawns_its_holder() {
    let (mut hive, mut q) = installed();
    let line = r#"{"cmd":"lease","gpu":"GPU-0","worker":"g1","mem_mb":512,"streams":2,"ttl_s":60,"priority":3}"#;
    let req = q.forwarded(&mut hive, line);
    assert_eq!(
        (req.gpu.as_str(), req.file, req.origin),
        ("GPU-0", GpuFile::Ctl, GpuOrigin::Command)
    );
    assert_eq!(
        req.op,
        GpuOp::Write {
            offset: 0,
            data: b"LEASE holder=g1 mem_mb=512 ttl_s=60 streams=2 priority=3\n".to_vec()
        }
    );
    assert_eq!((req.role, req.subject.as_str()), (Role::Queen, "queen"));
    assert_eq!(req.ticket, Some(hive.queen_ticket_id()));
    assert_eq!(req.expires, Some(hive.queen_ticket_expires()));

    // While the bridge thinks, the holder's id is taken.
    let mut other = Queen::attach(&mut hive);
    assert_eq!(
        other
            .command(&mut hive, r#"{"cmd":"spawn","role":"heartbeat","id":"g1"}"#)
            .err(),
        Some(FsError::Exists)
    );

    let granted = "OK LEASE granted holder=g1 mem_mb=512 streams=2 ttl_s=60 priority=3 lease_id=1 expires_ms=60000\n";
    let (written, reply) = answer(&mut hive, &mut q, &req, Ok(59), granted);
    assert_eq!(written, Ok(line.len() as u32));
    assert_eq!(reply["spawned"], "g1");
    assert_eq!(reply["role"], "worker-gpu");
    assert_eq!(reply["scope"], "GPU-0");
    assert_eq!(reply["gpu"], "GPU-0");
    assert_eq!(reply["lease"], granted.trim_end());
    let ticket = reply["ticket"].as_str().unwrap().to_owned();
    let g1 = hive.workers().into_iter().find(|w| w.id == "g1").unwrap();
    assert_eq!(
        (g1.role, g1.lease.as_deref()),
        (Role::WorkerGpu, Some("GPU-0"))
    );

    // The holder's ticket reaches its GPU's job file, and its requests
    // carry its own claims for the bridge to check against the lease.
    let (mut w, root) = common::worker(&mut hive, &ticket);
    let job = w
        .open_path(&mut hive, root, "/gpu/GPU-0/job", LOpenFlags::RDWR)
        .unwrap();
    let Handled::Forward(req) = w.send(
        &mut hive,
        Twrite {
            fid: job,
            offset: 0,
            data: b"{}",
        },
    ) else {
        panic!("not forwarded")
    };
    assert_eq!(
        (req.role, req.subject.as_str(), req.scope.as_str()),
        (Role::WorkerGpu, "g1", "GPU-0")
    );
    assert_eq!(req.ticket, Some(g1.ticket));
    assert_eq!(req.expires, Some(g1.expires));

    let log = q.log(&mut hive);
    assert!(
        log.contains(" gpu-forward role=queen subject=queen ")
            && log.contains(" path=/gpu/GPU-0/ctl op=lease token="),
        "{log}"
    );
    assert!(
        log.contains(" spawn role=queen subject=queen ")
            && log.contains(" worker=g1 worker-role=worker-gpu ")
            && log.contains(" lease=granted why=\"OK LEASE granted holder=g1 "),
        "{log}"
    );
    assert!(!log.contains("c9t1."), "{log}");
}

#[test]
fn a_lease_the_bridge_refuses_spawns_nobody_and_says_why() {
    let (mut hive, mut q) = installed();
    let line = r#"{"cmd":"lease","gpu":"GPU-1","worker":"g1","mem_mb":999999,"ttl_s":60}"#;
    let req = q.forwarded(&mut hive, line);
    let refusal = "ERR BADLEASE mem_mb 999999 exceeds the gpu's 81559\n";
    let (written, reply) = answer(&mut hive, &mut q, &req, Err(FsError::Invalid), refusal);
    assert_eq!(written, Err(FsError::Invalid));
    assert_eq!(reply["refused"], "lease");
    assert_eq!(reply["bridge"], refusal.trim_end());
    assert!(hive.workers().is_empty());
    let log = q.log(&mut hive);
    assert!(
        log.contains(" ctl-refused role=queen subject=queen ")
            && log.contains(" cmd=lease gpu=GPU-1 errno=EINVAL why=\"bridge: ERR BADLEASE "),
        "{log}"
    );

    // The id is free again; an unreachable bridge fails the command too.
    let req = q.forwarded(&mut hive, line);
    let (written, _) = answer(&mut hive, &mut q, &req, Err(FsError::Unreachable), "");
    assert_eq!(written, Err(FsError::Unreachable));
    assert!(hive.workers().is_empty());
}

#[test]
fn lease_and_release_are_checked_before_they_reach_a_bridge() {
    let (mut hive, mut q) = installed();
    q.command(&mut hive, r#"{"cmd":"spawn","role":"heartbeat","id":"w1"}"#)
        .unwrap();
    for (line, errno) in [
        (
            r#"{"cmd":"lease","gpu":"GPU-9","worker":"g1","mem_mb":1,"ttl_s":1}"#,
            FsError::NotFound,
        ),
        (
            r#"{"cmd":"lease","gpu":"GPU-0","worker":"w1","mem_mb":1,"ttl_s":1}"#,
            FsError::Exists,
        ),
        (
            r#"{"cmd":"lease","gpu":"GPU-0","worker":"a/b","mem_mb":1,"ttl_s":1}"#,
            FsError::Invalid,
        ),
        (
            r#"{"cmd":"lease","gpu":"GPU-0","mem_mb":1}"#,
            FsError::Invalid,
        ),
        (r#"{"cmd":"release","gpu":"GPU-9"}"#, FsError::NotFound),
        (
            "{\"cmd\":\"release\",\"gpu\":\"GPU-0\"}\n{\"cmd\":\"kill\",\"id\":\"w1\"}",
            FsError::Invalid,
        ),
    ] {
        assert_eq!(q.command(&mut hive, line).err(), Some(errno), "{line}");
    }
    assert_eq!(hive.workers().len(), 1);
}

#[test]
fn a_release_kills_the_holder_the_hive_spawned() {
    let (mut hive, mut q) = installed();
    let lease = r#"{"cmd":"lease","gpu":"GPU-0","mem_mb":64,"ttl_s":60}"#;
    let req = q.forwarded(&mut hive, lease);
    let GpuOp::Write { data, .. } = &req.op else {
        panic!("{req:?}")
    };
    assert!(data.starts_with(b"LEASE holder=w1 "), "{data:?}");
    let (_, reply) = answer(
        &mut hive,
        &mut q,
        &req,
        Ok(10),
        "QUEUED LEASE holder=w1 priority=0 position=1\n",
    );
    assert_eq!(reply["spawned"], "w1");
    let ticket = reply["ticket"].as_str().unwrap().to_owned();
    let (mut w1, root) = common::worker(&mut hive, &ticket);
    w1.walk(&mut hive, root, "/gpu/GPU-0/job").unwrap();

    let req = q.forwarded(&mut hive, r#"{"cmd":"release","gpu":"GPU-0"}"#);
    assert_eq!(
        req.op,
        GpuOp::Write {
            offset: 0,
            data: b"RELEASE\n".to_vec()
        }
    );
    let (written, reply) = answer(
        &mut hive,
        &mut q,
        &req,
        Ok(8),
        "OK RELEASE holder=w1 drained=0 next=-\n",
    );
    assert!(written.is_ok());
    assert_eq!(reply["released"], "GPU-0");
    assert_eq!(reply["killed"], "w1");
    assert!(hive.workers().is_empty());
    // Its fids are closed and its ticket refused.
    assert_eq!(
        w1.walk(&mut hive, root, "/gpu/GPU-0/job").err(),
        Some(FsError::BadFid)
    );
    let mut again = Conn::open(&mut hive);
    assert_eq!(
        again.attach(&mut hive, &ticket).err(),
        Some(FsError::TicketRevoked)
    );

    // A release that ended someone else's lease kills nobody.
    let req = q.forwarded(
        &mut hive,
        r#"{"cmd":"release","gpu":"GPU-0","worker":"x9"}"#,
    );
    let (_, reply) = answer(&mut hive, &mut q, &req, Ok(8), "OK RELEASE withdrawn=x9\n");
    assert_eq!(reply["killed"], serde_json::Value::Null);
}

#[test]
fn each_open_of_a_forwarded_file_is_numbered_and_its_clunk_reported() {
    let (mut hive, mut q) = installed();
    let open = |hive: &mut Hive, q: &mut Queen, path: &str| {
        let fid = q
            .conn
            .open_path(hive, q.root, path, LOpenFlags::empty())
            .unwrap();
        let Handled::Forward(req) = q.conn.send(
            hive,
            Tread {
                fid,
                offset: 0,
                count: 10,
            },
        ) else {
            panic!("not forwarded")
        };
        q.conn
            .complete(hive, req.token, Completion::Read(Ok(Vec::new())), |_| ())
            .unwrap();
        (fid, req.origin)
    };
    let (a, origin_a) = open(&mut hive, &mut q, "/gpu/GPU-0/status");
    let (_, origin_b) = open(&mut hive, &mut q, "/gpu/GPU-0/status");
    assert_ne!(origin_a, origin_b);
    let GpuOrigin::Fid { open: number } = origin_a else {
        panic!("{origin_a:?}")
    };
    // A second read through the same fid is the same open.
    let Handled::Forward(again) = q.conn.send(
        &mut hive,
        Tread {
            fid: a,
            offset: 0,
            count: 10,
        },
    ) else {
        panic!("not forwarded")
    };
    assert_eq!(again.origin, origin_a);
    q.conn
        .complete(
            &mut hive,
            again.token,
            Completion::Read(Ok(Vec::new())),
            |_| (),
        )
        .unwrap();
    assert!(hive.take_gpu_closed().is_empty());
    q.conn.clunk(&mut hive, a);
    assert_eq!(
        hive.take_gpu_closed(),
        [ninedoor::GpuClosed {
            gpu: "GPU-0".into(),
            file: GpuFile::Status,
            open: number
        }]
    );
    // An open that forwarded nothing has nothing to close; a closed
    // session reports the opens it held.
    let quiet = q
        .conn
        .open_path(&mut hive, q.root, "/gpu/GPU-1/stats", LOpenFlags::empty())
        .unwrap();
    q.conn.clunk(&mut hive, quiet);
    assert!(hive.take_gpu_closed().is_empty());
    hive.close_session(q.conn.session);
    let closed = hive.take_gpu_closed();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(
        GpuOrigin::Fid {
            open: closed[0].open
        },
        origin_b
    );
}

#[test]
fn a_lease_flushed_while_the_bridge_thinks_spawns_nobody() {
    let (mut hive, mut q) = installed();
    let line = r#"{"cmd":"lease","gpu":"GPU-0","worker":"g1","mem_mb":64,"ttl_s":60}"#;
    let req = q.forwarded(&mut hive, line);
    let tag = q.conn.last_tag;
    q.conn.flush(&mut hive, tag);
    hive.set_gpu_reply(req.token, b"OK LEASE granted holder=g1\n");
    let mut out = Vec::new();
    assert_eq!(
        hive.complete(req.token, Completion::Write(Ok(10)), common::NOW, &mut out),
        None
    );
    assert!(hive.workers().is_empty());
    let log = q.log(&mut hive);
    assert!(
        log.contains(" ctl-refused role=queen subject=queen ")
            && log.contains(" cmd=lease gpu=GPU-0 errno=ECANCELED "),
        "{log}"
    );
    // The id was given back.
    let req = q.forwarded(&mut hive, line);
    let (written, reply) = answer(
        &mut hive,
        &mut q,
        &req,
        Ok(10),
        "OK LEASE granted holder=g1\n",
    );
    assert!(written.is_ok());
    assert_eq!(reply["spawned"], "g1");
}
