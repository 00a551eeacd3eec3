//! [`Health`]: whether a GPU takes work. The bridge decides it (from NVML's
//! XID and ECC events, a lost GPU, a failed re-probe); `info` and `stats`
//! show it as one string, `ok` or `quarantined (<reason>)`.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest reason kept: a reason is one short phrase (`xid 79`, `gpu lost`).
pub const MAX_REASON_LEN: usize = 128;

/// A GPU's health.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Health {
    /// Takes leases and jobs.
    #[default]
    Ok,
    /// Refuses new leases; its leases were revoked. Re-admitted when a
    /// re-probe passes after the hold-down.
    Quarantined {
        /// Why, one line without parentheses (`xid 79`, `gpu lost`).
        reason: String,
    },
}

impl Health {
    /// Quarantined for `reason`, made safe for one line: control characters
    /// and parentheses become spaces, and it is cut at
    /// [`MAX_REASON_LEN`] bytes.
    pub fn quarantined(reason: &str) -> Health {
        let mut clean = String::new();
        for c in reason.trim().chars() {
            if clean.len() + c.len_utf8() > MAX_REASON_LEN {
                break;
            }
            clean.push(if c.is_control() || c == '(' || c == ')' {
                ' '
            } else {
                c
            });
        }
        if clean.is_empty() {
            clean.push_str("unknown");
        }
        Health::Quarantined { reason: clean }
    }

    /// Whether the GPU takes leases.
    pub fn is_ok(&self) -> bool {
        matches!(self, Health::Ok)
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Ok => f.write_str("ok"),
            Health::Quarantined { reason } => write!(f, "quarantined ({reason})"),
        }
    }
}

/// A string that is not a health.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a health (ok or quarantined (<reason>)): {0:?}")]
pub struct BadHealth(pub String);

impl FromStr for Health {
    type Err = BadHealth;

    fn from_str(s: &str) -> Result<Health, BadHealth> {
        if s == "ok" {
            return Ok(Health::Ok);
        }
        s.strip_prefix("quarantined (")
            .and_then(|r| r.strip_suffix(')'))
            .filter(|r| !r.is_empty() && r.len() <= MAX_REASON_LEN && !r.contains(['(', ')']))
            .map(|r| Health::Quarantined {
                reason: String::from(r),
            })
            .ok_or_else(|| BadHealth(String::from(s)))
    }
}

impl Serialize for Health {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Health {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Health, D::Error> {
        let s = <alloc::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn text_round_trips() {
        let q = Health::quarantined("xid 79");
        assert_eq!(q.to_string(), "quarantined (xid 79)");
        assert_eq!("quarantined (xid 79)".parse::<Health>(), Ok(q.clone()));
        assert_eq!("ok".parse::<Health>(), Ok(Health::Ok));
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            "\"quarantined (xid 79)\""
        );
        assert_eq!(
            serde_json::from_str::<Health>("\"ok\"").unwrap(),
            Health::Ok
        );
        for bad in [
            "",
            "OK",
            "quarantined",
            "quarantined ()",
            "quarantined (a (b))",
        ] {
            assert!(bad.parse::<Health>().is_err(), "{bad}");
        }
        assert_eq!(
            Health::quarantined("a(b)\nc").to_string(),
            "quarantined (a b  c)"
        );
        assert_eq!(
            Health::quarantined("  ").to_string(),
            "quarantined (unknown)"
        );
        let long = "x".repeat(500);
        let Health::Quarantined { reason } = Health::quarantined(&long) else {
            unreachable!()
        };
        assert_eq!(reason.len(), MAX_REASON_LEN);
    }
}
