//! [`BridgeConfig`]: the telemetry interval, the quarantine hold-down and
//! the fault policy, from defaults, a TOML file (`--config`) and flags, in
//! that order of precedence (a flag wins).
//!
//! ```toml
//! [telemetry]
//! interval_ms = 1000
//!
//! [health]
//! hold_down_ms = 60000
//! unknown_xid = "fail-job"          # ignore | fail-job | quarantine
//! ecc_corrected = "ignore"
//! ecc_uncorrected = "quarantine"
//!
//! [health.xid]                      # per XID number, over the default table
//! 13 = "quarantine"
//! ```

use crate::health::{Action, Policy, PolicyError};
use crate::limits::{
    DEFAULT_HOLD_DOWN_MS, DEFAULT_TELEMETRY_INTERVAL_MS, MAX_HOLD_DOWN_MS,
    MIN_TELEMETRY_INTERVAL_MS,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Longest config file read: a policy table is a few KiB.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Longest telemetry interval: a reading older than a minute says little.
const MAX_TELEMETRY_INTERVAL_MS: u64 = 60_000;

/// How the bridge watches its GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Time between telemetry readings of a GPU, ms.
    pub telemetry_interval_ms: u64,
    /// Time a quarantined GPU waits before each re-probe, ms.
    pub hold_down_ms: u64,
    /// What each fault does.
    pub policy: Policy,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            telemetry_interval_ms: DEFAULT_TELEMETRY_INTERVAL_MS,
            hold_down_ms: DEFAULT_HOLD_DOWN_MS,
            policy: Policy::default(),
        }
    }
}

/// A config that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {why}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The file is not this TOML.
    #[error("{path}: {why}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        why: String,
    },
    /// A value outside its range.
    #[error("{what} = {value} is outside {min}..={max}")]
    Range {
        /// The setting.
        what: &'static str,
        /// Its value.
        value: u64,
        /// Its least value.
        min: u64,
        /// Its largest value.
        max: u64,
    },
    /// A bad policy override.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    telemetry: TelemetryFile,
    #[serde(default)]
    health: HealthFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetryFile {
    interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthFile {
    hold_down_ms: Option<u64>,
    unknown_xid: Option<Action>,
    ecc_corrected: Option<Action>,
    ecc_uncorrected: Option<Action>,
    #[serde(default)]
    xid: BTreeMap<String, Action>,
}

fn range(what: &'static str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Range {
            what,
            value,
            min,
            max,
        })
    }
}

impl BridgeConfig {
    /// The defaults, then the TOML `text` (from `path`, for messages).
    pub fn from_toml(text: &str, path: &str) -> Result<BridgeConfig, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::from(path),
            why: e.to_string(),
        })?;
        let mut c = BridgeConfig::default();
        let h = file.health;
        c.policy.override_xids(&h.xid)?;
        c.policy.unknown_xid = h.unknown_xid.unwrap_or(c.policy.unknown_xid);
        c.policy.ecc_corrected = h.ecc_corrected.unwrap_or(c.policy.ecc_corrected);
        c.policy.ecc_uncorrected = h.ecc_uncorrected.unwrap_or(c.policy.ecc_uncorrected);
        c.with_overrides(file.telemetry.interval_ms, h.hold_down_ms)
    }

    /// Reads the TOML file at `path` ([`BridgeConfig::from_toml`]).
    pub fn load(path: &std::path::Path) -> Result<BridgeConfig, ConfigError> {
        use std::io::Read as _;
        let shown = path.display().to_string();
        let read = |e: std::io::Error| ConfigError::Read {
            path: shown.clone(),
            why: e.to_string(),
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::Read {
                path: shown,
                why: format!("longer than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        BridgeConfig::from_toml(&text, &shown)
    }

    /// This config with the telemetry interval and hold-down given (by
    /// flags) put in, each checked against its range.
    pub fn with_overrides(
        mut self,
        interval_ms: Option<u64>,
        hold_down_ms: Option<u64>,
    ) -> Result<BridgeConfig, ConfigError> {
        if let Some(v) = interval_ms {
            self.telemetry_interval_ms = range(
                "telemetry interval_ms",
                v,
                MIN_TELEMETRY_INTERVAL_MS,
                MAX_TELEMETRY_INTERVAL_MS,
            )?;
        }
        if let Some(v) = hold_down_ms {
            self.hold_down_ms = range("health hold_down_ms", v, 0, MAX_HOLD_DOWN_MS)?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Fault;

    #[test]
    fn file_then_flags() {
        let c = BridgeConfig::from_toml(
            "[telemetry]\ninterval_ms = 250\n[health]\nhold_down_ms = 5\nunknown_xid = \"quarantine\"\n[health.xid]\n13 = \"ignore\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!((c.telemetry_interval_ms, c.hold_down_ms), (250, 5));
        assert_eq!(c.policy.action(Fault::Xid(Some(13))), Action::Ignore);
        assert_eq!(c.policy.action(Fault::Xid(Some(7))), Action::Quarantine);
        let c = c.with_overrides(Some(100), None).unwrap();
        assert_eq!(c.telemetry_interval_ms, 100);
        assert_eq!(
            BridgeConfig::from_toml("", "e").unwrap(),
            BridgeConfig::default()
        );
        for bad in [
            "[telemetry]\ninterval_ms = 1\n",
            "[health]\nhold_down_ms = 99999999999\n",
            "[health.xid]\nabc = \"ignore\"\n",
            "[health.xid]\n13 = \"explode\"\n",
            "[colour]\n",
        ] {
            assert!(BridgeConfig::from_toml(bad, "b").is_err(), "{bad}");
        }
    }
}
