//! Health, telemetry and per-lease attribution on mock GPUs, through the
//! bridge's 9P files with time injected by a manual clock: the readings
//! move with the jobs a GPU runs; a lease's usage is what its jobs did; an
//! injected XID quarantines the GPU (the lease ends, queued jobs end
//! `ERR GPU-FAULT`, new leases are refused) until a re-probe after the
//! hold-down passes; the policy's other verdicts (ignore, fail the job).

mod common;

use common::*;
use gpu_bridge::{
    BridgeConfig, CpuExecutor, ExecError, ExecOutput, Executor, GpuBridge, MOCK_BUSY_POWER_W,
    ManualClock, ServeOptions, ValidatedJob, server,
};
use secure9p_core::FsError;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Device time each job of [`TimedExecutor`] reports.
const JOB_MS: u64 = 40;
/// Wall time each job of [`TimedExecutor`] takes on the manual clock.
const WALL_MS: u64 = 100;

/// The CPU executor, on a clock that moves [`WALL_MS`] per job, reporting
/// [`JOB_MS`] of device time per job (as the CUDA executor measures one).
struct TimedExecutor(Arc<ManualClock>);

impl Executor for TimedExecutor {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn execute(&mut self, job: &ValidatedJob, budget: Duration) -> Result<ExecOutput, ExecError> {
        self.0.advance(WALL_MS);
        let mut out = CpuExecutor.execute(job, budget)?;
        out.device_time = Some(Duration::from_millis(JOB_MS));
        Ok(out)
    }
}

fn session(bridge: &GpuBridge) -> Session {
    let srv = server(
        bridge,
        ServeOptions {
            tickets: None,
            anonymous: true,
        },
    )
    .unwrap();
    Session::attach(srv, "dev", "").unwrap()
}

fn json(s: &mut Session, path: &str) -> Value {
    let text = s.cat(path).unwrap();
    serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

fn configured(gpus: usize, hold_down_ms: u64) -> (GpuBridge, Arc<ManualClock>) {
    let (bridge, clock) = bridge(gpus);
    bridge.configure(&BridgeConfig {
        telemetry_interval_ms: 1_000,
        hold_down_ms,
        ..BridgeConfig::default()
    });
    (bridge, clock)
}

fn submit(bridge: &GpuBridge, id: &str, mem_mb: u32) {
    let mut job = vadd_job(id);
    job.mem_mb = mem_mb;
    bridge
        .submit("0", job.to_json().as_bytes(), &worker("w1"))
        .unwrap();
}

#[test]
fn telemetry_moves_with_the_jobs_and_a_lease_is_charged_what_its_jobs_did() {
    let (bridge, clock) = configured(1, 5_000);
    let mut s = session(&bridge);

    let idle = json(&mut s, "gpu/0/stats");
    assert_eq!(idle["gpu_id"], "0");
    assert_eq!(idle["health"], "ok", "{idle}");
    assert_eq!(idle["util_gpu_pct"], 0, "{idle}");
    assert_eq!(idle["mem_used_mib"], 0, "{idle}");
    assert_eq!(idle["mem_total_mib"], 16_384, "{idle}");
    let idle_temp = idle["temp_c"].as_u64().unwrap();
    let idle_energy = idle["energy_mj"].as_u64().unwrap();
    for field in [
        "util_mem_pct",
        "mem_free_mib",
        "temp_slowdown_c",
        "power_w",
        "power_limit_w",
        "clock_sm_mhz",
        "clock_mem_mhz",
        "throttle",
        "ecc_volatile_corrected",
        "ecc_volatile_uncorrected",
        "processes",
    ] {
        assert!(!idle[field].is_null(), "{field} missing: {idle}");
    }

    lease(&bridge, "holder=w1 mem_mb=8 streams=1 ttl_s=600");
    for (id, mem) in [("j1", 1), ("j2", 3), ("j3", 2)] {
        submit(&bridge, id, mem);
    }
    let mut exec = TimedExecutor(clock.clone());
    assert_eq!(bridge.run_ready(0, &mut exec), 3);
    assert_eq!(
        states(&bridge)
            .into_iter()
            .filter(|(state, _)| state == "OK")
            .count(),
        3
    );

    // The next reading (one interval on) saw the GPU busy for 120 ms.
    clock.advance(1_000);
    let busy = json(&mut s, "gpu/0/stats");
    let util = busy["util_gpu_pct"].as_u64().unwrap();
    assert!(util > 0, "{busy}");
    assert!(busy["temp_c"].as_u64().unwrap() > idle_temp, "{busy}");
    let energy = busy["energy_mj"].as_u64().unwrap();
    assert_eq!(
        energy - idle_energy,
        MOCK_BUSY_POWER_W * 3 * JOB_MS,
        "{busy}"
    );

    // The lease was charged exactly its three jobs: count, device time,
    // the largest memory any of them held, and the energy of their device
    // time at the mock's busy power.
    let lease = json(&mut s, "gpu/0/lease");
    let usage = &lease["active"]["usage"];
    assert_eq!(usage["holder"], "w1", "{lease}");
    assert_eq!(usage["jobs"], 3, "{lease}");
    assert_eq!(usage["gpu_time_us"], 3 * JOB_MS * 1_000, "{lease}");
    assert_eq!(usage["peak_mem_mib"], 3, "{lease}");
    assert_eq!(
        usage["energy_mj"],
        MOCK_BUSY_POWER_W * 3 * JOB_MS,
        "{lease}"
    );
    // The stats line carries the same figures.
    assert_eq!(&busy["lease"], usage, "{busy}");

    // Idle again: the reading after another interval falls back.
    clock.advance(1_000);
    let rested = json(&mut s, "gpu/0/stats");
    assert_eq!(rested["util_gpu_pct"], 0, "{rested}");
    assert_eq!(rested["energy_mj"], busy["energy_mj"], "{rested}");
}

#[test]
fn an_xid_quarantines_the_gpu_until_a_re_probe_after_the_hold_down() {
    let (bridge, clock) = configured(2, 5_000);
    let mut s = session(&bridge);
    lease(&bridge, "holder=w1 mem_mb=64 streams=1 ttl_s=600");
    submit(&bridge, "q1", 1);
    submit(&bridge, "q2", 1);

    let (written, reply) = s.write_file("gpu/0/ctl", b"FAULT XID 79");
    assert!(written.is_ok(), "{reply}");
    assert_eq!(reply, "OK FAULT xid 79 action=quarantine\n");

    // Both queued jobs ended ERR GPU-FAULT (the status file is their
    // history), the lease is gone, and the
    // GPU refuses new leases while it is quarantined.
    assert_eq!(
        states(&bridge),
        pairs(&[
            ("QUEUED", "q1"),
            ("QUEUED", "q2"),
            ("ERR GPU-FAULT", "q1"),
            ("ERR GPU-FAULT", "q2")
        ])
    );
    let lease_now = json(&mut s, "gpu/0/lease");
    assert!(lease_now["active"].is_null(), "{lease_now}");
    let info = json(&mut s, "gpu/0/info");
    let health = info["health"].as_str().unwrap();
    assert!(health.starts_with("quarantined ("), "{info}");
    assert!(health.contains("79"), "{info}");
    let (refused, reply) = s.write_file("gpu/0/ctl", b"LEASE holder=w2 mem_mb=64 ttl_s=60");
    assert_eq!(refused, Err(FsError::Io), "{reply}");
    assert!(reply.starts_with("ERR QUARANTINED "), "{reply}");
    // GPU 1 is not touched.
    assert_eq!(json(&mut s, "gpu/1/info")["health"], "ok");
    let (granted, reply) = s.write_file("gpu/1/ctl", b"LEASE holder=w3 mem_mb=64 ttl_s=60");
    assert!(granted.is_ok(), "{reply}");

    // Still out just before the hold-down ends; an XID leaves nothing
    // broken behind, so the re-probe at its end passes and the GPU
    // leases again.
    clock.advance(4_999);
    assert!(
        json(&mut s, "gpu/0/info")["health"]
            .as_str()
            .unwrap()
            .starts_with("quarantined")
    );
    clock.advance(1);
    assert_eq!(json(&mut s, "gpu/0/info")["health"], "ok");
    let (granted, reply) = s.write_file("gpu/0/ctl", b"LEASE holder=w2 mem_mb=64 ttl_s=60");
    assert!(granted.is_ok(), "{reply}");
    assert!(reply.starts_with("OK LEASE granted holder=w2 "), "{reply}");

    // A lost GPU is still lost when the hold-down ends: the re-probe
    // fails and it stays out for another hold-down; once it answers again
    // (the mock's RESTORE), the next re-probe re-admits it.
    let (written, reply) = s.write_file("gpu/0/ctl", b"FAULT LOST");
    assert!(written.is_ok(), "{reply}");
    assert_eq!(reply, "OK FAULT gpu lost action=quarantine\n");
    assert!(json(&mut s, "gpu/0/lease")["active"].is_null());
    clock.advance(5_000);
    assert!(
        json(&mut s, "gpu/0/info")["health"]
            .as_str()
            .unwrap()
            .starts_with("quarantined (gpu lost")
    );
    let (written, reply) = s.write_file("gpu/0/ctl", b"FAULT RESTORE");
    assert!(written.is_ok(), "{reply}");
    clock.advance(4_000);
    assert!(
        json(&mut s, "gpu/0/info")["health"]
            .as_str()
            .unwrap()
            .starts_with("quarantined")
    );
    clock.advance(1_000);
    assert_eq!(json(&mut s, "gpu/0/info")["health"], "ok");
    let (granted, reply) = s.write_file("gpu/0/ctl", b"LEASE holder=w4 mem_mb=64 ttl_s=60");
    assert!(granted.is_ok(), "{reply}");

    // Every health change is in the bridge's log.
    let log = bridge.log_lines().join("\n");
    for event in [
        "health ok -> quarantined (",
        "re-probe failed",
        "-> ok: re-probe passed after the hold-down",
    ] {
        assert!(log.contains(event), "{event}: {log}");
    }
}

#[test]
fn the_policy_ignores_corrected_ecc_and_fails_the_job_on_an_application_xid() {
    let (bridge, _clock) = configured(1, 5_000);
    let mut s = session(&bridge);
    lease(&bridge, "holder=w1 mem_mb=64 streams=1 ttl_s=600");

    let (written, reply) = s.write_file("gpu/0/ctl", b"FAULT ECC CORRECTED");
    assert!(written.is_ok(), "{reply}");
    assert!(reply.ends_with(" action=ignore\n"), "{reply}");
    assert_eq!(json(&mut s, "gpu/0/info")["health"], "ok");
    // The lease stands.
    assert_eq!(
        json(&mut s, "gpu/0/lease")["active"]["holder"],
        "w1",
        "lease"
    );

    // XID 13 (a graphics engine exception, the application's fault) fails
    // what runs and leaves the GPU in service.
    let (written, reply) = s.write_file("gpu/0/ctl", b"FAULT XID 13");
    assert!(written.is_ok(), "{reply}");
    assert!(reply.ends_with(" action=fail-job\n"), "{reply}");
    assert_eq!(json(&mut s, "gpu/0/info")["health"], "ok");

    // Injections are refused where they make no sense.
    let (bad, reply) = s.write_file("gpu/0/ctl", b"FAULT XID seventy");
    assert!(bad.is_err(), "{reply}");
}
