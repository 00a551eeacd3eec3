//! `gpu-bridge-host --selftest`: runs `vadd`, `matmul` and a `ptx` job
//! (the shipped `vadd` PTX, checked as `vadd`) through an executor, small
//! ones through the whole descriptor path (JSON, base64, SHA-256,
//! validation) and large ones directly, and compares every output with the
//! CPU reference. Prints one line per case with the device time.

use crate::artefact::Artefacts;
use crate::cpu::CpuExecutor;
use crate::descriptor::GpuDescriptor;
use crate::executor::{ExecError, Executor, compare};
use crate::job::{JobDescriptor, Launch, ValidatedJob, sha256_hex, validate};
use crate::limits::{MAX_ELEMENTS, MAX_MATMUL_DIM};
use crate::ptx;
use crate::workload::{Check, Workload, output_bytes};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Budget of each self-test case.
const CASE_BUDGET: Duration = Duration::from_secs(30);

/// What a self-test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelftestReport {
    /// One line per case: `selftest <case> executor=… … OK|FAIL …|SKIP …`.
    pub lines: Vec<String>,
    /// No case failed (skipped cases do not fail).
    pub passed: bool,
}

/// The best executor for each GPU: CUDA where built in and the device
/// answers (matched by UUID), the CPU otherwise. Mock GPUs always get the
/// CPU. Returns the executors and one note per GPU saying which it got.
pub fn best_executors(gpus: &[GpuDescriptor], mock: bool) -> (Vec<Box<dyn Executor>>, Vec<String>) {
    let mut executors: Vec<Box<dyn Executor>> = Vec::new();
    let mut notes = Vec::new();
    for g in gpus {
        if mock {
            executors.push(Box::new(CpuExecutor));
            notes.push(format!("gpu {}: cpu executor (mock)", g.id));
            continue;
        }
        #[cfg(feature = "cuda")]
        match crate::cuda::CudaExecutor::for_uuid(&g.uuid) {
            Ok(e) => {
                notes.push(format!(
                    "gpu {}: cuda executor on {} (CUDA ordinal {})",
                    g.id,
                    e.device_name(),
                    e.ordinal()
                ));
                executors.push(Box::new(e));
                continue;
            }
            Err(e) => notes.push(format!("gpu {}: cpu executor ({e})", g.id)),
        }
        #[cfg(not(feature = "cuda"))]
        notes.push(format!(
            "gpu {}: cpu executor (built without the `cuda` feature)",
            g.id
        ));
        executors.push(Box::new(CpuExecutor));
    }
    (executors, notes)
}

/// The best executor when no GPU was discovered (no NVML): CUDA's device 0
/// if CUDA is built in and answers, the CPU otherwise; with a note saying
/// which.
pub fn fallback_executor() -> (Box<dyn Executor>, String) {
    #[cfg(feature = "cuda")]
    let best: (Box<dyn Executor>, String) = match crate::cuda::CudaExecutor::new(0) {
        Ok(e) => {
            let note = format!("cuda executor on {} (CUDA ordinal 0)", e.device_name());
            (Box::new(e), note)
        }
        Err(e) => (Box::new(CpuExecutor), format!("cpu executor ({e})")),
    };
    #[cfg(not(feature = "cuda"))]
    let best: (Box<dyn Executor>, String) = (
        Box::new(CpuExecutor),
        String::from("cpu executor (built without the `cuda` feature)"),
    );
    best
}

/// Deterministic test vectors: small multiples of 1/8 and 1/4, so sums
/// and products are exact in `f32`.
fn vector(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * (seed * 2 + 1) + seed) % 97) as f32 / 8.0 - 6.0)
        .collect()
}

fn through_descriptor(id: &str, w: &Workload) -> Result<ValidatedJob, String> {
    let d = JobDescriptor::inline(id, w);
    validate(d.to_json().as_bytes(), &Artefacts::default()).map_err(|e| e.to_string())
}

fn direct(id: &str, w: Workload) -> ValidatedJob {
    let bytes = w.encode();
    ValidatedJob {
        job_id: String::from(id),
        launch: Launch::covering(&w),
        priority: 0,
        timeout_ms: u64::try_from(CASE_BUDGET.as_millis()).unwrap_or(u64::MAX),
        mem_mb: 1,
        streams: 1,
        bytes_hash: sha256_hex(&bytes),
        workload: Arc::new(w),
    }
}

/// Runs the self-test on `executor`.
pub fn selftest(executor: &mut dyn Executor) -> SelftestReport {
    let n = 1000;
    let d = MAX_MATMUL_DIM;
    let cases: Vec<(&str, Result<ValidatedJob, String>)> = vec![
        (
            "vadd-small",
            through_descriptor(
                "selftest-vadd",
                &Workload::Vadd {
                    a: vector(n, 1),
                    b: vector(n, 2),
                },
            ),
        ),
        (
            "matmul-small",
            through_descriptor(
                "selftest-matmul",
                &Workload::Matmul {
                    m: 33,
                    k: 17,
                    n: 40,
                    a: vector(33 * 17, 3),
                    b: vector(17 * 40, 4),
                },
            ),
        ),
        (
            "ptx-vadd",
            through_descriptor(
                "selftest-ptx",
                &Workload::Ptx {
                    ptx: String::from(ptx::VADD),
                    entry: String::from(ptx::VADD_ENTRY),
                    a: vector(n, 5),
                    b: vector(n, 6),
                    check: Some(Check::Vadd),
                },
            ),
        ),
        (
            "vadd-large",
            Ok(direct(
                "selftest-vadd-large",
                Workload::Vadd {
                    a: vector(MAX_ELEMENTS, 7),
                    b: vector(MAX_ELEMENTS, 8),
                },
            )),
        ),
        (
            "matmul-large",
            Ok(direct(
                "selftest-matmul-large",
                Workload::Matmul {
                    m: d,
                    k: d,
                    n: d,
                    a: vector((d * d) as usize, 9),
                    b: vector((d * d) as usize, 10),
                },
            )),
        ),
    ];
    let mut lines = Vec::new();
    let mut passed = true;
    for (name, job) in cases {
        let head = format!("selftest {name} executor={}", executor.name());
        let job = match job {
            Ok(j) => j,
            Err(e) => {
                passed = false;
                lines.push(format!("{head} FAIL descriptor refused: {e}"));
                continue;
            }
        };
        let t0 = Instant::now();
        let outcome = executor.execute(&job, CASE_BUDGET);
        let wall = t0.elapsed();
        let want = job.workload.reference(&mut || true);
        let line = match (outcome, want) {
            (Err(ExecError::Unsupported(why)), _) => format!("{head} SKIP {why}"),
            (Err(e), _) => {
                passed = false;
                format!("{head} FAIL {} {e}", e.reason())
            }
            (Ok(_), None) => {
                passed = false;
                format!("{head} FAIL no CPU reference")
            }
            (Ok(out), Some(want)) => match compare(&out.values, &want) {
                Ok(err) => {
                    let sha = sha256_hex(&output_bytes(&out.values));
                    let device = out
                        .device_time
                        .map_or_else(|| String::from("-"), |d| d.as_micros().to_string());
                    format!(
                        "{head} values={} device_time_us={device} wall_us={} max_abs_err={err} sha256={} OK",
                        out.values.len(),
                        wall.as_micros(),
                        sha.get(..16).unwrap_or_default()
                    )
                }
                Err(e) => {
                    passed = false;
                    format!("{head} FAIL {} {e}", e.reason())
                }
            },
        };
        lines.push(line);
    }
    SelftestReport { lines, passed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_selftest_passes_and_skips_ptx() {
        let report = selftest(&mut CpuExecutor);
        assert!(report.passed, "{:#?}", report.lines);
        assert_eq!(report.lines.len(), 5);
        assert!(report.lines[2].contains("SKIP"), "{}", report.lines[2]);
        assert!(report.lines[0].ends_with("OK"), "{}", report.lines[0]);
    }
}
