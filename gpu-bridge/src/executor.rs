//! The [`Executor`] trait every way of running a job implements, and the
//! comparison of an output with the CPU reference.

use crate::job::ValidatedJob;
use std::time::Duration;

/// What an executor produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOutput {
    /// The output values.
    pub values: Vec<f32>,
    /// Time the kernel took on the device (between events recorded around
    /// the launch); `None` for the CPU executor.
    pub device_time: Option<Duration>,
    /// Largest absolute difference from the CPU reference, when the output
    /// was checked against one.
    pub max_abs_err: Option<f32>,
}

/// Why a job did not produce an output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// This executor cannot run this kernel.
    #[error("{0}")]
    Unsupported(String),
    /// The job ran past its budget.
    #[error("no result after {after_ms} ms")]
    Timeout {
        /// The budget it had.
        after_ms: u64,
    },
    /// The device or its driver failed.
    #[error("{0}")]
    Device(String),
    /// The output differs from the CPU reference.
    #[error("output[{index}] = {got}, the CPU reference gives {want}")]
    Mismatch {
        /// The first differing index.
        index: usize,
        /// The value produced.
        got: f32,
        /// The reference value.
        want: f32,
    },
    /// The device is still busy with a job that timed out earlier.
    #[error("{0}")]
    Busy(String),
}

impl ExecError {
    /// The reason token of the job's `ERR` status line.
    pub fn reason(&self) -> &'static str {
        match self {
            ExecError::Unsupported(_) => "UNSUPPORTED",
            ExecError::Timeout { .. } => "TIMEOUT",
            ExecError::Device(_) => "DEVICE",
            ExecError::Mismatch { .. } => "MISMATCH",
            ExecError::Busy(_) => "BUSY",
        }
    }
}

/// Runs validated jobs. One executor serves one GPU and runs one job at a
/// time; the scheduler decides which.
pub trait Executor: Send {
    /// `"cpu"` or `"cuda"`.
    fn name(&self) -> &'static str;

    /// Runs `job`, giving up with [`ExecError::Timeout`] once `budget` has
    /// passed.
    fn execute(&mut self, job: &ValidatedJob, budget: Duration) -> Result<ExecOutput, ExecError>;
}

/// Relative tolerance of [`compare`]: the shipped kernels reproduce the CPU
/// reference exactly (same operations, same order, fused multiply-adds);
/// the slack is for `ptx` jobs that compute the same sum another way.
pub const TOLERANCE: f32 = 1e-5;

/// Compares `got` with the reference `want`; returns the largest absolute
/// difference, or the first value outside [`TOLERANCE`].
pub fn compare(got: &[f32], want: &[f32]) -> Result<f32, ExecError> {
    if got.len() != want.len() {
        return Err(ExecError::Device(format!(
            "output has {} values, the reference {}",
            got.len(),
            want.len()
        )));
    }
    let mut max = 0.0f32;
    for (index, (g, w)) in got.iter().zip(want).enumerate() {
        let diff = (g - w).abs();
        if diff.is_nan() || diff > TOLERANCE * w.abs().max(1.0) {
            return Err(ExecError::Mismatch {
                index,
                got: *g,
                want: *w,
            });
        }
        max = max.max(diff);
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_finds_the_first_difference() {
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 2.0]), Ok(0.0));
        assert_eq!(
            compare(&[1.0, 2.5], &[1.0, 2.0]),
            Err(ExecError::Mismatch {
                index: 1,
                got: 2.5,
                want: 2.0
            })
        );
        assert!(compare(&[f32::NAN], &[1.0]).is_err());
        assert!(compare(&[1.0], &[1.0, 2.0]).is_err());
    }
}
