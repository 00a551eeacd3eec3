//! The CUDA executor (feature `cuda`). Where no CUDA driver is present the
//! executor must say so instead of panicking, and the GPU tests skip; on a
//! GPU host they check results against the CPU path bit for bit, time-outs
//! of a kernel that spins, and the wait that follows.
#![cfg(feature = "cuda")]

mod common;

use common::*;
use gpu_bridge::{
    CpuExecutor, CudaExecutor, CudaUnavailable, ExecError, Executor, JobDescriptor, Launch,
    ValidatedJob, Workload, sha256_hex,
};
use std::sync::Arc;
use std::time::Duration;

fn executor() -> Option<CudaExecutor> {
    match CudaExecutor::new(0) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("SKIPPED: no CUDA device: {e}");
            None
        }
    }
}

#[test]
fn no_driver_is_an_error_not_a_panic() {
    if let Err(e) = CudaExecutor::new(0) {
        assert!(
            matches!(
                e,
                CudaUnavailable::NoLibrary | CudaUnavailable::Driver { .. }
            ),
            "{e}"
        );
    }
    assert!(matches!(
        CudaExecutor::for_uuid("GPU-not-a-uuid"),
        Err(CudaUnavailable::NoLibrary
            | CudaUnavailable::Driver { .. }
            | CudaUnavailable::NoDevice(_))
    ));
}

fn job(id: &str, w: Workload) -> ValidatedJob {
    ValidatedJob {
        job_id: id.into(),
        launch: Launch::covering(&w),
        priority: 0,
        timeout_ms: 10_000,
        mem_mb: 1,
        streams: 1,
        bytes_hash: sha256_hex(&w.encode()),
        workload: Arc::new(w),
    }
}

/// Spins for about 2·10⁹ SM clock cycles (a second or more), then returns.
const SPIN: &str = "
.version 6.0
.target sm_50
.address_size 64
.visible .entry spin(
	.param .u64 spin_a,
	.param .u64 spin_b,
	.param .u64 spin_out,
	.param .u32 spin_n
)
{
	.reg .pred %p<2>;
	.reg .b64 %rd<4>;
	mov.u64 %rd1, %clock64;
	add.u64 %rd2, %rd1, 2000000000;
LOOP:
	mov.u64 %rd3, %clock64;
	setp.lt.u64 %p1, %rd3, %rd2;
	@%p1 bra LOOP;
	ret;
}
";

#[test]
fn cuda_and_cpu_agree_bit_for_bit_through_the_bridge() {
    let Some(mut cuda) = executor() else { return };
    let matmul = Workload::Matmul {
        m: 37,
        k: 29,
        n: 41,
        a: (0..37 * 29).map(|i| (i % 13) as f32 * 0.37 - 2.0).collect(),
        b: (0..29 * 41).map(|i| (i % 7) as f32 * 1.13 - 3.0).collect(),
    };
    let mut lines = Vec::new();
    for executor in [&mut CpuExecutor as &mut dyn Executor, &mut cuda] {
        let (bridge, _) = bridge(1);
        lease(&bridge, "holder=w1 mem_mb=64 ttl_s=60");
        for (id, w) in [("v", vadd_workload()), ("m", matmul.clone())] {
            let d = JobDescriptor::inline(id, &w);
            bridge
                .submit("0", d.to_json().as_bytes(), &queen())
                .unwrap();
        }
        assert_eq!(bridge.run_ready(0, executor), 2);
        let ok: Vec<String> = bridge
            .status_text("0")
            .lines()
            .filter(|l| l.starts_with("OK "))
            .map(String::from)
            .collect();
        lines.push(ok);
    }
    assert_eq!(lines[0].len(), 2, "{lines:?}");
    assert_eq!(lines[0], lines[1]);
}

#[test]
fn a_spinning_kernel_times_out_and_the_next_job_waits_for_it() {
    let Some(mut cuda) = executor() else { return };
    let spin = job(
        "spin",
        Workload::Ptx {
            ptx: SPIN.into(),
            entry: "spin".into(),
            a: vec![0.0],
            b: vec![0.0],
            check: None,
        },
    );
    assert_eq!(
        cuda.execute(&spin, Duration::from_millis(100)),
        Err(ExecError::Timeout { after_ms: 100 })
    );
    let next = job("next", vadd_workload());
    assert!(matches!(
        cuda.execute(&next, Duration::from_millis(10)),
        Err(ExecError::Busy(_))
    ));
    let out = cuda.execute(&next, Duration::from_secs(30)).unwrap();
    assert_eq!(out.values, vec![11.0, 22.0, 33.0, 0.0]);
    assert!(out.device_time.is_some());
}

#[test]
fn bad_ptx_fails_the_job_not_the_host() {
    let Some(mut cuda) = executor() else { return };
    let nul = job(
        "nul",
        Workload::Ptx {
            ptx: ".entry f(\0".into(),
            entry: "f".into(),
            a: vec![1.0],
            b: vec![1.0],
            check: None,
        },
    );
    assert!(matches!(
        cuda.execute(&nul, Duration::from_secs(5)),
        Err(ExecError::Unsupported(_))
    ));
    let garbage = job(
        "garbage",
        Workload::Ptx {
            ptx: ".version 6.0\n.target sm_50\n.entry f( this is not ptx".into(),
            entry: "f".into(),
            a: vec![1.0],
            b: vec![1.0],
            check: None,
        },
    );
    assert!(matches!(
        cuda.execute(&garbage, Duration::from_secs(5)),
        Err(ExecError::Device(_))
    ));
    // The executor still works afterwards.
    let ok = cuda.execute(&job("after", vadd_workload()), Duration::from_secs(5));
    assert!(ok.is_ok(), "{ok:?}");
}
