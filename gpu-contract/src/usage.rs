//! [`LeaseUsage`]: what one lease's jobs used of a GPU, so a Queen can bill
//! or throttle a tenant.

use alloc::string::String;
use serde::{Deserialize, Serialize};

/// What the jobs of one lease used.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LeaseUsage {
    /// The lease (numbered per GPU).
    pub lease_id: u64,
    /// Its holder.
    pub holder: String,
    /// Jobs that ran (reached an executor), finished or not.
    pub jobs: u64,
    /// GPU time of those jobs, µs: each job's device time where the
    /// executor measured one, else its time on the executor.
    pub gpu_time_us: u64,
    /// The most device memory its running jobs held at once, MiB (their
    /// declared `mem_mb`, or what NVML saw the bridge use, the larger).
    pub peak_mem_mib: u64,
    /// Energy the GPU used while its jobs ran, mJ (`null` where the GPU
    /// has no energy counter).
    pub energy_mj: Option<u64>,
}
