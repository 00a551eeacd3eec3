//! `/gpu/<id>/…`: installing descriptors, `info` served locally, the other
//! files forwarded to the embedder and completed, GPU workers confined.

mod common;

use common::{Conn, Queen, hive, worker};
use ninedoor::secure9p_core::codec::{LOpenFlags, Msg, Tread, Twrite};
use ninedoor::secure9p_core::{Completion, FsError, Role};
use ninedoor::{GpuDescriptor, GpuFile, GpuOp, Handled, Hive, HiveError};

fn descriptor(id: &str, uuid: &str) -> GpuDescriptor {
    GpuDescriptor {
        id: id.to_owned(),
        name: "NVIDIA H100 80GB HBM3".to_owned(),
        uuid: uuid.to_owned(),
        memory_mb: 81_559,
        sm_count: 132,
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
        ["info", "ctl", "lease", "job", "status", "stats"]
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
        ["info", "lease", "job", "status", "stats"]
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
        ("/gpu/GPU-0/job", LOpenFlags::empty()),
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
