//! SM counts of whole GPUs, from CUDA's multiprocessor count (NVML reports
//! SM counts only for MIG slices). Matched to NVML's devices by UUID, since
//! CUDA's device order need not be NVML's. Without the `cuda` feature, or
//! without a CUDA driver, every count is unknown.

/// SM counts by GPU UUID (`GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
#[derive(Debug, Clone, Default)]
pub struct SmCounts {
    by_uuid: Vec<(String, u32)>,
    /// Why CUDA could not be asked, if it could not.
    pub unavailable: Option<String>,
}

impl SmCounts {
    /// Asks CUDA for every device's multiprocessor count.
    pub fn query() -> Self {
        #[cfg(feature = "cuda")]
        {
            match crate::cuda::sm_counts() {
                Ok(by_uuid) => SmCounts {
                    by_uuid,
                    unavailable: None,
                },
                Err(e) => SmCounts {
                    by_uuid: Vec::new(),
                    unavailable: Some(e.to_string()),
                },
            }
        }
        #[cfg(not(feature = "cuda"))]
        {
            SmCounts {
                by_uuid: Vec::new(),
                unavailable: Some(String::from(
                    "built without the `cuda` feature: SM count unknown",
                )),
            }
        }
    }

    /// The SM count of the GPU with this UUID (case-insensitive), if known.
    pub fn for_uuid(&self, uuid: &str) -> Option<u32> {
        self.by_uuid
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(uuid))
            .map(|(_, n)| *n)
    }
}

/// Formats CUDA's 16 UUID bytes the way NVML prints them.
pub fn format_uuid(bytes: [u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let part = |a: usize, b: usize| hex.get(a..b).unwrap_or_default();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_format_matches_nvml() {
        let bytes = [
            0x8f, 0x3e, 0x1a, 0x22, 0x4b, 0x5c, 0x6d, 0x7e, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5,
            0xe6, 0xf7,
        ];
        assert_eq!(
            format_uuid(bytes),
            "GPU-8f3e1a22-4b5c-6d7e-8091-a2b3c4d5e6f7"
        );
        let counts = SmCounts {
            by_uuid: vec![(format_uuid(bytes), 132)],
            unavailable: None,
        };
        assert_eq!(
            counts.for_uuid("GPU-8F3E1A22-4B5C-6D7E-8091-A2B3C4D5E6F7"),
            Some(132)
        );
        assert_eq!(counts.for_uuid("GPU-0"), None);
    }
}
