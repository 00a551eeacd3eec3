//! The bridge's behaviour through its host-side API, with time injected
//! through a manual clock: lease caps, expiry, renewal, arbitration, job
//! validation, timeouts, scheduling order, status lines and CPU results.

mod common;

use common::*;
use gpu_bridge::{
    BridgeError, CpuExecutor, EDQUOT, ExecOutput, JobDescriptor, StatusLine, Workload,
    output_bytes, ptx, sha256_hex,
};
use secure9p_core::FsError;

#[test]
fn a_job_needs_a_lease() {
    let (bridge, _) = bridge(1);
    let err = bridge
        .submit("0", vadd_job("j1").to_json().as_bytes(), &queen())
        .unwrap_err();
    assert!(matches!(err, BridgeError::NoLease(_)), "{err}");
    assert_eq!(err.fs_error(), FsError::NotPermitted);
}

#[test]
fn lease_caps_bound_what_jobs_may_use() {
    let (bridge, _) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=2 streams=1 ttl_s=60");
    let mut job = vadd_job("big");
    job.mem_mb = 3;
    let err = bridge
        .submit("0", job.to_json().as_bytes(), &queen())
        .unwrap_err();
    assert_eq!(
        err,
        BridgeError::OverCap {
            what: "mem_mb",
            asked: 3,
            cap: 2
        }
    );
    assert_eq!(err.fs_error(), FsError::Errno(EDQUOT));
    let mut job = vadd_job("wide");
    job.streams = 2;
    let err = bridge
        .submit("0", job.to_json().as_bytes(), &queen())
        .unwrap_err();
    assert_eq!(err.reason(), "CAP");
    // Nothing refused reached the queue.
    assert!(status(&bridge).is_empty());
    assert!(
        bridge
            .submit("0", vadd_job("fits").to_json().as_bytes(), &queen())
            .is_ok()
    );
}

#[test]
fn scheduler_orders_by_priority_within_the_lease_caps() {
    let (bridge, _) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=3 streams=2 ttl_s=60");
    for (id, priority, mem_mb) in [("low", 1, 1), ("high", 5, 2), ("mid", 3, 1)] {
        let mut j = vadd_job(id);
        j.priority = priority;
        j.mem_mb = mem_mb;
        bridge
            .submit("0", j.to_json().as_bytes(), &queen())
            .unwrap();
    }
    // Both caps together admit high (2 MiB) and mid (1 MiB); low waits.
    let first = bridge
        .with_gpu(0, |g, cx| g.dispatch(cx.now, cx.log, usize::MAX))
        .unwrap();
    let ids: Vec<_> = first.iter().map(|d| d.job.job_id.as_str()).collect();
    assert_eq!(ids, ["high", "mid"]);
    let again = bridge
        .with_gpu(0, |g, cx| g.dispatch(cx.now, cx.log, usize::MAX))
        .unwrap();
    assert!(again.is_empty());
    // Finishing high frees its stream and memory: low may start.
    let high = &first[0];
    bridge.with_gpu(0, |g, cx| {
        g.complete(high.ticket, "test", Ok(output(vec![1.0])), cx.now)
    });
    let next = bridge
        .with_gpu(0, |g, cx| g.dispatch(cx.now, cx.log, usize::MAX))
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].job.job_id, "low");
}

fn output(values: Vec<f32>) -> ExecOutput {
    ExecOutput {
        values,
        device_time: None,
        max_abs_err: None,
    }
}

#[test]
fn expiry_drains_queued_jobs_and_refuses_later_writes() {
    let (bridge, clock) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=64 ttl_s=10");
    for id in ["j1", "j2"] {
        let mut j = vadd_job(id);
        j.timeout_ms = 60_000;
        bridge
            .submit("0", j.to_json().as_bytes(), &worker("w1"))
            .unwrap();
    }
    clock.advance(9_999);
    assert!(
        bridge
            .submit("0", vadd_job("j3").to_json().as_bytes(), &worker("w1"))
            .is_ok()
    );
    clock.advance(1);
    // The next operation applies the timer: nothing has to sleep.
    let err = bridge
        .submit("0", vadd_job("j4").to_json().as_bytes(), &worker("w1"))
        .unwrap_err();
    assert_eq!(err.fs_error(), FsError::NotPermitted);
    assert_eq!(
        states(&bridge),
        pairs(&[
            ("QUEUED", "j1"),
            ("QUEUED", "j2"),
            ("QUEUED", "j3"),
            ("ERR EXPIRED", "j1"),
            ("ERR EXPIRED", "j2"),
            ("ERR EXPIRED", "j3"),
        ])
    );
    let err = bridge.renew("0", b"RENEW", &worker("w1")).unwrap_err();
    assert_eq!(err.fs_error(), FsError::NotPermitted);
    let log = bridge.log_lines().join("\n");
    assert!(
        log.contains("by=timer lease-end holder=w1 lease_id=1 why=EXPIRED drained=3"),
        "{log}"
    );
}

#[test]
fn renewals_extend_the_lease() {
    let (bridge, clock) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=64 ttl_s=10");
    clock.advance(9_000);
    let view = bridge.renew("0", b"RENEW 10\n", &worker("w1")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(v["active"]["expires_ms"], T0 + 19_000);
    assert_eq!(v["active"]["remaining_ms"], 10_000);
    clock.advance(9_000);
    assert!(
        bridge
            .submit("0", vadd_job("j1").to_json().as_bytes(), &worker("w1"))
            .is_ok()
    );
    // Another worker may not renew someone else's lease.
    let err = bridge.renew("0", b"RENEW", &worker("w2")).unwrap_err();
    assert!(matches!(err, BridgeError::NotHolder { .. }), "{err}");
    // A renewal with the lease's own TTL, by JSON.
    bridge.renew("0", br#"{}"#, &worker("w1")).unwrap();
    clock.advance(9_999);
    assert!(bridge.renew("0", b"", &queen()).is_ok());
    clock.advance(10_000);
    assert_eq!(
        bridge
            .renew("0", b"RENEW", &worker("w1"))
            .unwrap_err()
            .fs_error(),
        FsError::NotPermitted
    );
}

#[test]
fn holders_arbitrate_by_priority() {
    let (bridge, _) = bridge(1);
    let reply = lease(&bridge, "holder=w1 mem_mb=64 ttl_s=60 priority=1");
    assert!(reply.starts_with("OK LEASE granted holder=w1"), "{reply}");
    bridge
        .submit("0", vadd_job("j1").to_json().as_bytes(), &worker("w1"))
        .unwrap();
    // Equal priority waits.
    let reply = lease(
        &bridge,
        r#"{"holder":"w2","mem_mb":64,"ttl_s":60,"priority":1}"#,
    );
    assert_eq!(reply, "QUEUED LEASE holder=w2 priority=1 position=1\n");
    // Higher priority preempts; the preempted holder's queue is drained.
    let reply = lease(&bridge, "holder=w3 mem_mb=64 ttl_s=60 priority=5");
    assert!(
        reply.starts_with("OK LEASE preempted=w1 holder=w3"),
        "{reply}"
    );
    assert_eq!(
        states(&bridge),
        pairs(&[("QUEUED", "j1"), ("ERR PREEMPTED", "j1")])
    );
    let err = bridge
        .submit("0", vadd_job("j2").to_json().as_bytes(), &worker("w1"))
        .unwrap_err();
    assert_eq!(err.fs_error(), FsError::NotPermitted);
    // Releasing hands the GPU to the waiting request.
    let reply = bridge.control("0", b"RELEASE", &queen()).unwrap();
    assert_eq!(reply, "OK RELEASE holder=w3 drained=0 next=w2\n");
    assert!(
        bridge
            .submit("0", vadd_job("j3").to_json().as_bytes(), &worker("w2"))
            .is_ok()
    );
    // A full waiting list answers EBUSY.
    for i in 0..gpu_bridge::limits::MAX_WAITING_LEASES {
        lease(&bridge, &format!("holder=x{i} mem_mb=1 ttl_s=1"));
    }
    let err = bridge
        .control("0", b"LEASE holder=late mem_mb=1 ttl_s=1", &queen())
        .unwrap_err();
    assert_eq!(err.fs_error(), FsError::Busy);
}

#[test]
fn only_the_holder_submits() {
    let (bridge, _) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=64 ttl_s=60");
    let err = bridge
        .submit("0", vadd_job("j1").to_json().as_bytes(), &worker("w2"))
        .unwrap_err();
    assert_eq!(
        err,
        BridgeError::NotHolder {
            who: "w2".into(),
            holder: "w1".into()
        }
    );
    assert!(
        bridge
            .submit("0", vadd_job("j1").to_json().as_bytes(), &worker("w1"))
            .is_ok()
    );
    // The queen acts for the holder; duplicate ids are refused.
    let err = bridge
        .submit("0", vadd_job("j1").to_json().as_bytes(), &queen())
        .unwrap_err();
    assert_eq!(err.fs_error(), FsError::Exists);
}

#[test]
fn hash_and_length_mismatches_are_refused() {
    let (bridge, _) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=64 ttl_s=60");
    let mut j = vadd_job("j1");
    j.bytes_hash = sha256_hex(b"something else");
    let err = bridge
        .submit("0", j.to_json().as_bytes(), &queen())
        .unwrap_err();
    assert!(matches!(err, BridgeError::HashMismatch { .. }), "{err}");
    assert_eq!(err.fs_error(), FsError::BadMessage);
    let mut j = vadd_job("j1");
    j.bytes_len -= 1;
    let err = bridge
        .submit("0", j.to_json().as_bytes(), &queen())
        .unwrap_err();
    assert!(matches!(err, BridgeError::LengthMismatch { .. }), "{err}");
    assert_eq!(err.fs_error(), FsError::Invalid);
    assert!(status(&bridge).is_empty());
    let log = bridge.log_lines().join("\n");
    assert!(log.contains("job refused -> ERR HASH"), "{log}");
    assert!(log.contains("job refused -> ERR LENGTH"), "{log}");
}

#[test]
fn timeouts_fail_queued_and_running_jobs() {
    let (bridge, clock) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=64 streams=1 ttl_s=600");
    let mut running = vadd_job("slow");
    running.timeout_ms = 100;
    let mut waiting = vadd_job("waits");
    waiting.timeout_ms = 50;
    bridge
        .submit("0", running.to_json().as_bytes(), &queen())
        .unwrap();
    bridge
        .submit("0", waiting.to_json().as_bytes(), &queen())
        .unwrap();
    let dispatched = bridge
        .with_gpu(0, |g, cx| g.dispatch(cx.now, cx.log, usize::MAX))
        .unwrap();
    assert_eq!(dispatched.len(), 1);
    assert_eq!(dispatched[0].budget.as_millis(), 100);
    clock.advance(50);
    bridge.with_gpu(0, |_, _| ());
    clock.advance(50);
    bridge.with_gpu(0, |_, _| ());
    // The executor answers late: its result is dropped, not reported.
    let ticket = dispatched[0].ticket;
    bridge.with_gpu(0, |g, cx| {
        g.complete(ticket, "cpu", Ok(output(vec![1.0])), cx.now)
    });
    assert_eq!(
        states(&bridge),
        pairs(&[
            ("QUEUED", "slow"),
            ("QUEUED", "waits"),
            ("RUNNING", "slow"),
            ("ERR TIMEOUT", "waits"),
            ("ERR TIMEOUT", "slow"),
        ])
    );
    let totals = bridge.with_gpu(0, |g, _| g.totals()).unwrap();
    assert_eq!((totals.timeouts, totals.late, totals.ok), (2, 1, 0));
}

#[test]
fn a_job_goes_queued_running_ok_with_real_results() {
    let (bridge, _) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=64 ttl_s=60");
    let reply = bridge
        .submit("0", vadd_job("v1").to_json().as_bytes(), &worker("w1"))
        .unwrap();
    assert_eq!(reply, "QUEUED v1 priority=0 position=1\n");
    let matmul = Workload::Matmul {
        m: 2,
        k: 3,
        n: 2,
        a: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        b: vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0],
    };
    let job = JobDescriptor::inline("m1", &matmul);
    bridge
        .submit("0", job.to_json().as_bytes(), &worker("w1"))
        .unwrap();
    assert_eq!(bridge.run_ready(0, &mut CpuExecutor), 2);
    let vadd_out = [11.0, 22.0, 33.0, 0.0];
    let matmul_out = [58.0, 64.0, 139.0, 154.0];
    assert_eq!(
        status(&bridge),
        vec![
            StatusLine::Queued {
                job_id: "v1".into(),
                priority: 0,
                position: 1
            },
            StatusLine::Queued {
                job_id: "m1".into(),
                priority: 0,
                position: 2
            },
            StatusLine::Running {
                job_id: "v1".into()
            },
            StatusLine::Ok {
                job_id: "v1".into(),
                sha256: sha256_hex(&output_bytes(&vadd_out)),
                values: vadd_out.to_vec(),
            },
            StatusLine::Running {
                job_id: "m1".into()
            },
            StatusLine::Ok {
                job_id: "m1".into(),
                sha256: sha256_hex(&output_bytes(&matmul_out)),
                values: matmul_out.to_vec(),
            },
        ]
    );
    let results = bridge
        .with_gpu(0, |g, _| g.results().cloned().collect::<Vec<_>>())
        .unwrap();
    assert_eq!(results[1].values, matmul_out);
    assert_eq!(results[1].executor, "cpu");
    assert_eq!((results[1].len, results[1].truncated), (4, false));
}

#[test]
fn the_cpu_executor_refuses_ptx() {
    let (bridge, _) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=64 ttl_s=60");
    let job = JobDescriptor::inline(
        "p1",
        &Workload::Ptx {
            ptx: ptx::VADD.into(),
            entry: ptx::VADD_ENTRY.into(),
            a: vec![1.0],
            b: vec![2.0],
            check: None,
        },
    );
    bridge
        .submit("0", job.to_json().as_bytes(), &queen())
        .unwrap();
    bridge.run_ready(0, &mut CpuExecutor);
    let last = status(&bridge).pop().unwrap();
    assert!(
        matches!(&last, StatusLine::Err { reason, .. } if reason == "UNSUPPORTED"),
        "{last}"
    );
}

#[test]
fn reset_drains_everything() {
    let (bridge, _) = bridge(1);
    lease(&bridge, "holder=w1 mem_mb=64 ttl_s=60");
    lease(&bridge, "holder=w2 mem_mb=64 ttl_s=60");
    for id in ["a", "b"] {
        bridge
            .submit("0", vadd_job(id).to_json().as_bytes(), &queen())
            .unwrap();
    }
    let running = bridge
        .with_gpu(0, |g, cx| g.dispatch(cx.now, cx.log, 1))
        .unwrap();
    let reply = bridge.control("0", b"RESET", &queen()).unwrap();
    assert_eq!(
        reply,
        "OK RESET drained=1 abandoned=1 lease=w1 waiting_dropped=1\n"
    );
    assert_eq!(
        states(&bridge),
        pairs(&[
            ("QUEUED", "a"),
            ("QUEUED", "b"),
            ("RUNNING", "a"),
            ("ERR RESET", "b"),
            ("ERR RESET", "a"),
        ])
    );
    // The abandoned job's late result is ignored; the GPU is idle.
    let t = running[0].ticket;
    bridge.with_gpu(0, |g, cx| {
        g.complete(t, "cpu", Ok(output(vec![0.0])), cx.now)
    });
    assert_eq!(status(&bridge).len(), 5);
    let line = bridge.with_gpu(0, |g, cx| g.ctl_line(cx.now)).unwrap();
    assert_eq!(line, "IDLE gpu=0 running=0 waiting=0\n");
    let err = bridge.control("0", b"PRIORITY 3", &queen()).unwrap_err();
    assert_eq!(err.fs_error(), FsError::NotPermitted);
}

#[test]
fn every_control_action_is_logged_with_its_actor() {
    let (bridge, _) = bridge(1);
    let w1 = gpu_bridge::Actor {
        ticket: Some(secure9p_core::TicketId([0xab; 32])),
        ..worker("w1")
    };
    lease(&bridge, "holder=w1 mem_mb=64 ttl_s=60");
    bridge.control("0", b"PRIORITY 9", &queen()).unwrap();
    let _ = bridge.control("0", b"FLY", &queen());
    bridge.renew("0", b"RENEW", &w1).unwrap();
    bridge.control("0", b"RELEASE", &queen()).unwrap();
    let log = bridge.log_lines();
    let want = [
        "by=queen:queen ticket=- ctl LEASE holder=w1 priority=0 -> OK LEASE granted holder=w1",
        "by=queen:queen ticket=- ctl PRIORITY 9 -> OK PRIORITY 9",
        "by=queen:queen ticket=- ctl unparsable -> ERR COMMAND",
        "by=worker-gpu:w1 ticket=abababababababab renew -> OK holder=w1",
        "by=queen:queen ticket=- lease-end holder=w1 lease_id=1 why=RELEASED drained=0",
        "by=queen:queen ticket=- ctl RELEASE holder=- -> OK RELEASE holder=w1",
    ];
    assert_eq!(log.len(), want.len(), "{log:#?}");
    for (line, want) in log.iter().zip(want) {
        assert!(line.contains(want), "{line}\n  lacks {want}");
        assert!(line.starts_with(&format!("t={T0} gpu=0 ")), "{line}");
    }
}
