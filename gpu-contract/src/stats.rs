//! [`StatsLine`]: what `/gpu/<id>/stats` holds, one JSON object on one
//! line, refreshed by the bridge at its telemetry interval. The bridge adds
//! more fields (utilisation, occupancy, counters, recent jobs, past
//! leases' usage); a reader takes what it knows and ignores the rest.

use crate::health::Health;
use crate::telemetry::Telemetry;
use crate::usage::LeaseUsage;
use alloc::string::{String, ToString};
use serde::{Deserialize, Serialize};

/// Longest stats line a reader parses: a line with every recent job
/// summary and a full process list is a few tens of KiB.
pub const MAX_STATS_LINE: usize = 256 * 1024;

/// The fields of a stats line every reader may rely on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsLine {
    /// The GPU (the bridge's id; NineDoor serves the bytes unchanged).
    pub gpu_id: String,
    /// When the line was made, the bridge's clock, ms.
    pub at_ms: u64,
    /// The GPU's health.
    pub health: Health,
    /// The reading.
    #[serde(flatten)]
    pub telemetry: Telemetry,
    /// The active lease's usage so far, if a lease is active.
    #[serde(default)]
    pub lease: Option<LeaseUsage>,
}

/// Bytes that are not a stats line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadStatsLine {
    /// Longer than [`MAX_STATS_LINE`].
    #[error("stats line of {len} bytes exceeds {MAX_STATS_LINE}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Not one JSON object with the fields of a [`StatsLine`].
    #[error("stats line does not parse: {0}")]
    Json(String),
}

impl StatsLine {
    /// Parses a stats file's contents: one JSON object, an optional
    /// trailing newline.
    pub fn parse(bytes: &[u8]) -> Result<StatsLine, BadStatsLine> {
        if bytes.len() > MAX_STATS_LINE {
            return Err(BadStatsLine::TooLong { len: bytes.len() });
        }
        serde_json::from_slice(bytes).map_err(|e| BadStatsLine::Json(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn parses_what_the_bridge_writes_and_refuses_garbage() {
        let line = br#"{"gpu_id":"0","at_ms":5,"health":"quarantined (xid 79)","util_gpu_pct":7,"temp_c":null,"throttle":["gpu_idle"],"processes":[{"pid":9,"used_mib":64}],"utilisation":{"gpu_util_pct":7},"lease":{"lease_id":1,"holder":"w1","jobs":2,"gpu_time_us":30,"peak_mem_mib":64,"energy_mj":null}}
"#;
        let s = StatsLine::parse(line).unwrap();
        assert_eq!(s.health, Health::quarantined("xid 79"));
        assert_eq!(s.telemetry.util_gpu_pct, Some(7));
        assert_eq!(s.telemetry.temp_c, None);
        assert_eq!(s.telemetry.mem_total_mib, None);
        assert_eq!(s.telemetry.throttle, Some(vec!["gpu_idle".into()]));
        assert_eq!(s.lease.unwrap().gpu_time_us, 30);
        let back = serde_json::to_string(&StatsLine::parse(line).unwrap()).unwrap();
        assert_eq!(StatsLine::parse(back.as_bytes()).unwrap().gpu_id, "0");
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"gpu_id":"0"}"#,
            br#"{"gpu_id":"0","at_ms":1,"health":"fine"}"#,
        ] {
            assert!(
                matches!(StatsLine::parse(bad), Err(BadStatsLine::Json(_))),
                "{bad:?}"
            );
        }
        let huge = vec![b' '; MAX_STATS_LINE + 1];
        assert!(matches!(
            StatsLine::parse(&huge),
            Err(BadStatsLine::TooLong { .. })
        ));
    }
}
