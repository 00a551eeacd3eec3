//! What the bridge says about a GPU: the static [`GpuDescriptor`] NineDoor
//! installs (one JSON line each from `gpu-bridge-host --list`) and the live
//! [`GpuSample`] shown by `info` and `stats`.

use crate::limits::MAX_ID_LEN;
use serde::{Deserialize, Serialize};

/// Whether `s` is a valid identifier (GPU id, job id, lease holder):
/// 1 to [`MAX_ID_LEN`] bytes of `[A-Za-z0-9_.-]`, not starting with `.`, so
/// it is safe in paths, status lines and ticket scopes.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A GPU as NineDoor installs it under `/gpu/<id>`.
///
/// Serialised as one JSON object with the fields in this order; `sm_count`
/// is `null` when CUDA could not be asked (the bridge was built without the
/// `cuda` feature, or no CUDA driver is present): NVML only reports SM
/// counts for MIG slices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuDescriptor {
    /// The id used in paths (`[A-Za-z0-9_.-]`, see [`valid_id`]); the NVML
    /// index for real GPUs.
    pub id: String,
    /// The product name.
    pub name: String,
    /// The GPU's UUID (`GPU-xxxxxxxx-…`).
    pub uuid: String,
    /// Total memory, MiB.
    pub memory_mb: u64,
    /// Streaming multiprocessors, from CUDA's multiprocessor count; `None`
    /// when unknown.
    pub sm_count: Option<u32>,
    /// The driver version (`580.95.05`).
    pub driver_version: String,
    /// The CUDA version the driver supports (`13.0`).
    pub runtime_version: String,
}

impl GpuDescriptor {
    /// The descriptor as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["0", "gpu-1", "job_7.a", "A"] {
            assert!(valid_id(ok), "{ok}");
        }
        let long = "x".repeat(MAX_ID_LEN + 1);
        for bad in ["", ".hidden", "a/b", "a b", "é", long.as_str(), "a\n"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
