//! GPU health: the faults a bridge hears of (NVML's critical XID and ECC
//! events, a GPU that is lost or needs a reset, or the same injected into a
//! mock GPU), the [`Policy`] that decides what each one does, and the
//! per-GPU [`HealthState`] with its hold-down before a re-probe.
//!
//! The default XID classes follow NVIDIA's XID catalogue: errors an
//! application causes (13, 31, 43, 94) fail the running job and leave the
//! GPU in service; errors of the device, its memory or its links (48, 61,
//! 62, 64, 74, 79, 92, 95, 119, 120, 140) quarantine it; informational ones
//! (45, 63) are only logged. An XID not in the table fails the job.
//! Nothing here reads a clock or talks to NVML.

use crate::limits::MAX_XID_RULES;
use gpu_contract::Health;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Something wrong with a GPU, as NVML (or a mock's control) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A critical XID error (its number; `None` where NVML could not say).
    Xid(Option<u64>),
    /// A corrected (single-bit) ECC error.
    EccCorrected,
    /// An uncorrected (double-bit) ECC error.
    EccUncorrected,
    /// The GPU fell off the bus or stopped answering (`GpuLost`).
    Lost,
    /// The driver says the GPU needs a reset (`ResetRequired`).
    ResetRequired,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Xid(Some(n)) => write!(f, "xid {n}"),
            Fault::Xid(None) => f.write_str("xid unknown"),
            Fault::EccCorrected => f.write_str("ecc corrected"),
            Fault::EccUncorrected => f.write_str("ecc uncorrected"),
            Fault::Lost => f.write_str("gpu lost"),
            Fault::ResetRequired => f.write_str("reset required"),
        }
    }
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Logged only.
    Ignore,
    /// The running job ends `ERR GPU-FAULT`; the GPU stays in service.
    FailJob,
    /// The GPU is quarantined: new leases refused, active ones revoked.
    Quarantine,
}

impl Action {
    /// The word used in logs and the config file.
    pub fn name(self) -> &'static str {
        match self {
            Action::Ignore => "ignore",
            Action::FailJob => "fail-job",
            Action::Quarantine => "quarantine",
        }
    }
}

/// The table of fault → action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Actions by XID number.
    pub xid: BTreeMap<u64, Action>,
    /// The action of an XID not in the table (or of unknown number).
    pub unknown_xid: Action,
    /// The action of a corrected ECC error.
    pub ecc_corrected: Action,
    /// The action of an uncorrected ECC error.
    pub ecc_uncorrected: Action,
}

/// The default XID classes (see the module docs).
const DEFAULT_XIDS: [(u64, Action); 17] = [
    (13, Action::FailJob),
    (31, Action::FailJob),
    (43, Action::FailJob),
    (94, Action::FailJob),
    (45, Action::Ignore),
    (63, Action::Ignore),
    (48, Action::Quarantine),
    (61, Action::Quarantine),
    (62, Action::Quarantine),
    (64, Action::Quarantine),
    (74, Action::Quarantine),
    (79, Action::Quarantine),
    (92, Action::Quarantine),
    (95, Action::Quarantine),
    (119, Action::Quarantine),
    (120, Action::Quarantine),
    (140, Action::Quarantine),
];

impl Default for Policy {
    fn default() -> Self {
        Policy {
            xid: DEFAULT_XIDS.into_iter().collect(),
            unknown_xid: Action::FailJob,
            ecc_corrected: Action::Ignore,
            ecc_uncorrected: Action::Quarantine,
        }
    }
}

/// A policy override that breaks a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// An XID key that is not a number.
    #[error("xid {0:?} is not a number")]
    BadXid(String),
    /// Too many XID rules.
    #[error("{0} xid rules; at most {MAX_XID_RULES}")]
    TooMany(usize),
}

impl Policy {
    /// What `fault` does. A lost GPU and one that needs a reset are always
    /// quarantined: nothing can run on them.
    pub fn action(&self, fault: Fault) -> Action {
        match fault {
            Fault::Xid(Some(n)) => self.xid.get(&n).copied().unwrap_or(self.unknown_xid),
            Fault::Xid(None) => self.unknown_xid,
            Fault::EccCorrected => self.ecc_corrected,
            Fault::EccUncorrected => self.ecc_uncorrected,
            Fault::Lost | Fault::ResetRequired => Action::Quarantine,
        }
    }

    /// Sets the actions of the XIDs named in `rules` (keys are XID numbers
    /// as text, as in a TOML table).
    pub fn override_xids(&mut self, rules: &BTreeMap<String, Action>) -> Result<(), PolicyError> {
        if rules.len() > MAX_XID_RULES {
            return Err(PolicyError::TooMany(rules.len()));
        }
        for (key, action) in rules {
            let n = key
                .trim()
                .parse::<u64>()
                .map_err(|_| PolicyError::BadXid(key.clone()))?;
            self.xid.insert(n, *action);
        }
        Ok(())
    }
}

/// One GPU's health and its re-admission clock.
#[derive(Debug, Clone, Default)]
pub struct HealthState {
    health: Health,
    /// When a quarantined GPU is next re-probed, ms.
    probe_at: u64,
    /// Quarantines since the bridge started.
    quarantines: u64,
}

impl HealthState {
    /// The health.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Quarantines so far.
    pub fn quarantines(&self) -> u64 {
        self.quarantines
    }

    /// When the next re-probe is due, if quarantined.
    pub fn probe_at(&self) -> Option<u64> {
        (!self.health.is_ok()).then_some(self.probe_at)
    }

    /// Quarantines for `reason` until at least `now + hold_down_ms`; a GPU
    /// already quarantined keeps its first reason and has its hold-down
    /// restarted. Returns whether it was healthy before.
    pub fn quarantine(&mut self, reason: &str, now: u64, hold_down_ms: u64) -> bool {
        self.probe_at = now.saturating_add(hold_down_ms);
        if !self.health.is_ok() {
            return false;
        }
        self.health = Health::quarantined(reason);
        self.quarantines += 1;
        true
    }

    /// A re-probe passed: back in service.
    pub fn readmit(&mut self) {
        self.health = Health::Ok;
    }

    /// A re-probe failed: try again after another hold-down.
    pub fn probe_failed(&mut self, now: u64, hold_down_ms: u64) {
        self.probe_at = now.saturating_add(hold_down_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table() {
        let p = Policy::default();
        let cases = [
            (Fault::Xid(Some(13)), Action::FailJob),
            (Fault::Xid(Some(45)), Action::Ignore),
            (Fault::Xid(Some(79)), Action::Quarantine),
            (Fault::Xid(Some(9999)), Action::FailJob),
            (Fault::Xid(None), Action::FailJob),
            (Fault::EccCorrected, Action::Ignore),
            (Fault::EccUncorrected, Action::Quarantine),
            (Fault::Lost, Action::Quarantine),
            (Fault::ResetRequired, Action::Quarantine),
        ];
        for (fault, action) in cases {
            assert_eq!(p.action(fault), action, "{fault}");
        }
    }

    #[test]
    fn overrides_and_hold_down() {
        let mut p = Policy::default();
        let rules: BTreeMap<String, Action> = [("13".to_string(), Action::Quarantine)]
            .into_iter()
            .collect();
        p.override_xids(&rules).unwrap();
        assert_eq!(p.action(Fault::Xid(Some(13))), Action::Quarantine);
        let bad: BTreeMap<String, Action> =
            [("x".to_string(), Action::Ignore)].into_iter().collect();
        assert_eq!(p.override_xids(&bad), Err(PolicyError::BadXid("x".into())));

        let mut h = HealthState::default();
        assert!(h.quarantine("xid 79", 1_000, 500));
        assert_eq!(h.health().to_string(), "quarantined (xid 79)");
        assert_eq!(h.probe_at(), Some(1_500));
        assert!(!h.quarantine("gpu lost", 1_200, 500));
        assert_eq!((h.probe_at(), h.quarantines()), (Some(1_700), 1));
        h.probe_failed(1_700, 500);
        assert_eq!(h.probe_at(), Some(2_200));
        h.readmit();
        assert!(h.health().is_ok() && h.probe_at().is_none());
    }
}
