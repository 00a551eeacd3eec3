//! The text written to `/gpu/<id>/ctl` and `/gpu/<id>/lease`, parsed. One
//! command per write; a trailing newline is ignored, any other line break
//! is refused.
//!
//! `ctl`:
//! ```text
//! LEASE <json object | key=value …>   request a lease (see LeaseRequest)
//! RELEASE [holder=<h>]                end the active lease, or withdraw h's waiting request
//! PRIORITY <0-255>                    set the active lease's priority
//! RESET                               drain every job, end the lease, drop waiting requests
//! FAULT XID <n> | ECC CORRECTED | ECC UNCORRECTED | LOST | RESET-REQUIRED | RESTORE
//!                                     mock GPUs only: inject what NVML would report
//! ```
//! `lease` (renewal, by the holder or the queen):
//! ```text
//! RENEW [<ttl_s> | ttl_s=<ttl_s>]     or {"ttl_s":N}, or an empty write: extend to now + TTL
//! ```

use crate::discovery::Injection;
use crate::error::BridgeError;
use crate::health::Fault;
use crate::lease::LeaseRequest;
use crate::limits::MAX_WRITE;
use serde::Deserialize;

/// A `ctl` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LEASE …`
    Lease(LeaseRequest),
    /// `RELEASE [holder=<h>]`
    Release {
        /// The holder named, if any.
        holder: Option<String>,
    },
    /// `PRIORITY <n>`
    Priority(u8),
    /// `RESET`
    Reset,
    /// `FAULT …` (mock GPUs only)
    Fault(Injection),
}

/// The text of one write: UTF-8, bounded, one line.
pub(crate) fn one_line(bytes: &[u8]) -> Result<&str, BridgeError> {
    if bytes.len() > MAX_WRITE {
        return Err(BridgeError::TooLarge {
            len: bytes.len(),
            max: MAX_WRITE,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| BridgeError::NotText)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.contains(['\n', '\r']) {
        return Err(BridgeError::BadCommand(String::from(
            "one command per write",
        )));
    }
    Ok(text.trim())
}

fn bad(msg: impl Into<String>) -> BridgeError {
    BridgeError::BadCommand(msg.into())
}

impl Command {
    /// Parses one write to `ctl`. The verb is case-insensitive.
    pub fn parse(bytes: &[u8]) -> Result<Command, BridgeError> {
        let text = one_line(bytes)?;
        let (verb, rest) = text
            .split_once(char::is_whitespace)
            .map_or((text, ""), |(v, r)| (v, r.trim()));
        match verb.to_ascii_uppercase().as_str() {
            "LEASE" => LeaseRequest::parse(rest).map(Command::Lease),
            "RELEASE" => match rest {
                "" => Ok(Command::Release { holder: None }),
                _ => rest
                    .strip_prefix("holder=")
                    .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
                    .map(|h| Command::Release {
                        holder: Some(String::from(h)),
                    })
                    .ok_or_else(|| bad(format!("RELEASE takes holder=<h>, not {rest:?}"))),
            },
            "PRIORITY" => rest
                .parse::<u8>()
                .map(Command::Priority)
                .map_err(|_| bad(format!("PRIORITY takes 0-255, not {rest:?}"))),
            "RESET" if rest.is_empty() => Ok(Command::Reset),
            "RESET" => Err(bad("RESET takes no arguments")),
            "FAULT" => parse_fault(rest).map(Command::Fault),
            "" => Err(bad("empty command")),
            other => Err(bad(format!(
                "unknown command {other:?}: LEASE, RELEASE, PRIORITY, RESET or FAULT"
            ))),
        }
    }
}

fn parse_fault(rest: &str) -> Result<Injection, BridgeError> {
    let words: Vec<String> = rest
        .split_ascii_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let fault = match words.as_slice() {
        ["XID", n] => {
            Fault::Xid(Some(n.parse().map_err(|_| {
                bad(format!("FAULT XID takes a number, not {n:?}"))
            })?))
        }
        ["ECC", "CORRECTED"] => Fault::EccCorrected,
        ["ECC", "UNCORRECTED"] => Fault::EccUncorrected,
        ["LOST"] => Fault::Lost,
        ["RESET-REQUIRED"] => Fault::ResetRequired,
        ["RESTORE"] => return Ok(Injection::Restore),
        _ => {
            return Err(bad(format!(
                "FAULT takes XID <n>, ECC CORRECTED, ECC UNCORRECTED, LOST, RESET-REQUIRED or RESTORE, not {rest:?}"
            )));
        }
    };
    Ok(Injection::Fault(fault))
}

/// A renewal written to `lease`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Renewal {
    /// The new TTL, seconds; `None` keeps the lease's own.
    #[serde(default)]
    pub ttl_s: Option<u32>,
}

impl Renewal {
    /// Parses one write to `lease`.
    pub fn parse(bytes: &[u8]) -> Result<Renewal, BridgeError> {
        let text = one_line(bytes)?;
        if text.starts_with('{') {
            return serde_json::from_str(text).map_err(|e| bad(format!("renewal: {e}")));
        }
        let (verb, rest) = text
            .split_once(char::is_whitespace)
            .map_or((text, ""), |(v, r)| (v, r.trim()));
        if !(verb.is_empty() || verb.eq_ignore_ascii_case("RENEW")) {
            return Err(bad(format!("lease takes RENEW [ttl_s], not {verb:?}")));
        }
        if rest.is_empty() {
            return Ok(Renewal { ttl_s: None });
        }
        let n = rest.strip_prefix("ttl_s=").unwrap_or(rest);
        n.parse::<u32>()
            .map(|t| Renewal { ttl_s: Some(t) })
            .map_err(|_| bad(format!("RENEW takes a TTL in seconds, not {rest:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctl_commands() {
        assert_eq!(Command::parse(b"RESET\n"), Ok(Command::Reset));
        assert_eq!(Command::parse(b"priority 7"), Ok(Command::Priority(7)));
        assert_eq!(
            Command::parse(b"RELEASE holder=w2"),
            Ok(Command::Release {
                holder: Some("w2".into())
            })
        );
        assert_eq!(
            Command::parse(b"RELEASE"),
            Ok(Command::Release { holder: None })
        );
        assert!(matches!(
            Command::parse(b"LEASE holder=w1 mem_mb=64 ttl_s=5"),
            Ok(Command::Lease(_))
        ));
        for bad in [
            &b""[..],
            b"FLY",
            b"PRIORITY 256",
            b"PRIORITY",
            b"RESET now",
            b"RELEASE w1",
            b"RESET\nRESET",
            b"\xff",
            b"LEASE holder=w1",
            b"FAULT",
            b"FAULT XID x",
            b"FAULT ECC",
            b"FAULT FIRE",
        ] {
            assert!(Command::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fault_injections() {
        assert_eq!(
            Command::parse(b"FAULT XID 79"),
            Ok(Command::Fault(Injection::Fault(Fault::Xid(Some(79)))))
        );
        assert_eq!(
            Command::parse(b"fault ecc uncorrected\n"),
            Ok(Command::Fault(Injection::Fault(Fault::EccUncorrected)))
        );
        assert_eq!(
            Command::parse(b"FAULT LOST"),
            Ok(Command::Fault(Injection::Fault(Fault::Lost)))
        );
        assert_eq!(
            Command::parse(b"FAULT RESTORE"),
            Ok(Command::Fault(Injection::Restore))
        );
    }

    #[test]
    fn renewals() {
        assert_eq!(Renewal::parse(b""), Ok(Renewal { ttl_s: None }));
        assert_eq!(Renewal::parse(b"RENEW\n"), Ok(Renewal { ttl_s: None }));
        assert_eq!(Renewal::parse(b"renew 30"), Ok(Renewal { ttl_s: Some(30) }));
        assert_eq!(
            Renewal::parse(b"RENEW ttl_s=30"),
            Ok(Renewal { ttl_s: Some(30) })
        );
        assert_eq!(
            Renewal::parse(br#"{"ttl_s":9}"#),
            Ok(Renewal { ttl_s: Some(9) })
        );
        for bad in [&b"EXTEND"[..], b"RENEW x", br#"{"ttl":9}"#] {
            assert!(Renewal::parse(bad).is_err(), "{bad:?}");
        }
    }
}
