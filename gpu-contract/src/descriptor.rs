//! [`GpuDescriptor`]: what a bridge says about a GPU once (`gpu-bridge-host
//! --list` prints these; NineDoor installs `/gpu/<id>` from them), and the
//! rule for the ids that name GPUs, jobs and lease holders.

use alloc::string::String;
use serde::{Deserialize, Serialize};

/// Longest GPU id, job id or lease holder: they appear in paths, status
/// lines and ticket scopes, whose claims are at most 128 bytes.
pub const MAX_ID_LEN: usize = 64;

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
/// is `null` when CUDA could not be asked (NVML only reports SM counts for
/// MIG slices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuDescriptor {
    /// The id used in paths and GPU workers' ticket scopes (see
    /// [`valid_id`]); the NVML index for real GPUs.
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

    #[test]
    fn descriptor_round_trips_and_refuses_unknown_fields() {
        let d = GpuDescriptor {
            id: "0".into(),
            name: "n".into(),
            uuid: "GPU-0".into(),
            memory_mb: 1,
            sm_count: None,
            driver_version: "1".into(),
            runtime_version: "12.0".into(),
        };
        let text = d.to_json();
        assert_eq!(serde_json::from_str::<GpuDescriptor>(&text).unwrap(), d);
        let extra = text.replace('}', ",\"x\":1}");
        assert!(serde_json::from_str::<GpuDescriptor>(&extra).is_err());
        assert!(text.starts_with("{\"id\":\"0\",\"name\"") && !text.contains('\n'));
    }
}
