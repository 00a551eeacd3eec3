//! The deterministic CPU executor: runs `vadd` and `matmul` with the
//! reference kernels, for CI and `--mock`. It refuses `ptx` jobs (it cannot
//! run PTX) and gives up at the job's budget.

use crate::executor::{ExecError, ExecOutput, Executor};
use crate::job::ValidatedJob;
use crate::workload::Workload;
use std::time::{Duration, Instant};

/// Runs jobs on the host CPU with the reference kernels.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuExecutor;

impl Executor for CpuExecutor {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn execute(&mut self, job: &ValidatedJob, budget: Duration) -> Result<ExecOutput, ExecError> {
        if let Workload::Ptx { .. } = *job.workload {
            return Err(ExecError::Unsupported(String::from(
                "the cpu executor cannot run PTX: run a bridge built with --features cuda on a GPU host",
            )));
        }
        let deadline = Instant::now().checked_add(budget);
        let mut keep_going = || deadline.is_none_or(|d| Instant::now() < d);
        match job.workload.reference(&mut keep_going) {
            Some(values) => Ok(ExecOutput {
                values,
                device_time: None,
                max_abs_err: Some(0.0),
            }),
            None => Err(ExecError::Timeout {
                after_ms: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }
}
