//! What the bridge says about a GPU: the static [`GpuDescriptor`] NineDoor
//! installs (one JSON line each from `gpu-bridge-host --list`; the type is
//! the `/gpu` contract's) and the [`GpuSample`] of the live readings that
//! `info` and `stats` have always shown under these names.

use gpu_contract::Telemetry;
pub use gpu_contract::{GpuDescriptor, valid_id};
use serde::{Deserialize, Serialize};

/// Live readings of one GPU. Fields are `None` where the source cannot
/// read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GpuSample {
    /// Free memory, MiB.
    pub memory_free_mb: Option<u64>,
    /// Percent of the last sample period a kernel was running.
    pub gpu_util_pct: Option<u32>,
    /// Percent of the last sample period device memory was read or written.
    pub memory_util_pct: Option<u32>,
}

impl GpuSample {
    /// The sample's fields of a reading.
    pub fn of(t: &Telemetry) -> GpuSample {
        GpuSample {
            memory_free_mb: t.mem_free_mib,
            gpu_util_pct: t.util_gpu_pct,
            memory_util_pct: t.util_mem_pct,
        }
    }
}
