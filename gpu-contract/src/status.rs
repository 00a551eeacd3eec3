//! The lines of `/gpu/<id>/status`: each accepted job gets `QUEUED`, then
//! `RUNNING`, then one final `OK` or `ERR` line (a job drained or timed out
//! while queued goes straight from `QUEUED` to `ERR`).
//!
//! ```text
//! QUEUED <job_id> priority=<p> position=<n>
//! RUNNING <job_id>
//! OK <job_id> <sha256 of the output> <first values…>
//! ERR <REASON> <job_id> <detail…>
//! ```
//!
//! The output hashed is every `f32` value little-endian, in order; at most
//! [`STATUS_VALUES`] values follow it. Reasons are one upper-case word:
//! `TIMEOUT`, `EXPIRED`, `RELEASED`, `PREEMPTED`, `RESET`, `CAP`,
//! `UNSUPPORTED`, `DEVICE`, `MISMATCH`, `BUSY`, `GPU-FAULT` (an XID, ECC
//! or lost-GPU event failed the job, or the GPU was quarantined).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

/// Output values shown on an `OK` status line.
pub const STATUS_VALUES: usize = 8;

/// One status line.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusLine {
    /// Accepted and waiting.
    Queued {
        /// The job.
        job_id: String,
        /// Its priority.
        priority: u8,
        /// Its 1-based place in the queue when accepted.
        position: usize,
    },
    /// Handed to an executor.
    Running {
        /// The job.
        job_id: String,
    },
    /// Finished with a result.
    Ok {
        /// The job.
        job_id: String,
        /// SHA-256 of the output, hex.
        sha256: String,
        /// The first output values.
        values: Vec<f32>,
    },
    /// Failed.
    Err {
        /// One upper-case word.
        reason: String,
        /// The job.
        job_id: String,
        /// Free text.
        detail: String,
    },
}

impl StatusLine {
    /// The job the line is about.
    pub fn job_id(&self) -> &str {
        match self {
            StatusLine::Queued { job_id, .. }
            | StatusLine::Running { job_id }
            | StatusLine::Ok { job_id, .. }
            | StatusLine::Err { job_id, .. } => job_id,
        }
    }

    /// The first word: `QUEUED`, `RUNNING`, `OK` or `ERR`.
    pub fn state(&self) -> &'static str {
        match self {
            StatusLine::Queued { .. } => "QUEUED",
            StatusLine::Running { .. } => "RUNNING",
            StatusLine::Ok { .. } => "OK",
            StatusLine::Err { .. } => "ERR",
        }
    }
}

impl fmt::Display for StatusLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusLine::Queued {
                job_id,
                priority,
                position,
            } => write!(f, "QUEUED {job_id} priority={priority} position={position}"),
            StatusLine::Running { job_id } => write!(f, "RUNNING {job_id}"),
            StatusLine::Ok {
                job_id,
                sha256,
                values,
            } => {
                write!(f, "OK {job_id} {sha256}")?;
                values.iter().try_for_each(|v| write!(f, " {v}"))
            }
            StatusLine::Err {
                reason,
                job_id,
                detail,
            } => {
                write!(f, "ERR {reason} {job_id}")?;
                if !detail.is_empty() {
                    write!(f, " {detail}")?;
                }
                Ok(())
            }
        }
    }
}

/// A line that is not a status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a status line: {0:?}")]
pub struct BadStatusLine(pub String);

impl FromStr for StatusLine {
    type Err = BadStatusLine;

    fn from_str(line: &str) -> Result<Self, BadStatusLine> {
        let bad = || BadStatusLine(String::from(line));
        let mut words = line.trim_end().split(' ');
        let state = words.next().ok_or_else(bad)?;
        let mut next = || words.next().map(String::from).ok_or_else(bad);
        match state {
            "QUEUED" => {
                let job_id = next()?;
                let priority = next()?
                    .strip_prefix("priority=")
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?;
                let position = next()?
                    .strip_prefix("position=")
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?;
                Ok(StatusLine::Queued {
                    job_id,
                    priority,
                    position,
                })
            }
            "RUNNING" => Ok(StatusLine::Running { job_id: next()? }),
            "OK" => {
                let job_id = next()?;
                let sha256 = next()?;
                let values = words
                    .map(|v| v.parse::<f32>().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                Ok(StatusLine::Ok {
                    job_id,
                    sha256,
                    values,
                })
            }
            "ERR" => {
                let reason = next()?;
                let job_id = next()?;
                let detail = words.collect::<Vec<_>>().join(" ");
                Ok(StatusLine::Err {
                    reason,
                    job_id,
                    detail,
                })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn lines_round_trip() {
        let lines = [
            StatusLine::Queued {
                job_id: "j1".into(),
                priority: 3,
                position: 2,
            },
            StatusLine::Running {
                job_id: "j1".into(),
            },
            StatusLine::Ok {
                job_id: "j1".into(),
                sha256: "ab".repeat(32),
                values: vec![11.0, 0.5, -3.25],
            },
            StatusLine::Err {
                reason: "TIMEOUT".into(),
                job_id: "j1".into(),
                detail: "after 50 ms".into(),
            },
        ];
        for line in lines {
            let text = line.to_string();
            assert_eq!(text.parse::<StatusLine>().unwrap(), line, "{text}");
        }
        assert_eq!(
            StatusLine::Ok {
                job_id: "j".into(),
                sha256: "h".into(),
                values: vec![5.0, 7.5]
            }
            .to_string(),
            "OK j h 5 7.5"
        );
        for bad in ["", "DONE j", "QUEUED j", "OK j h x", "ERR T"] {
            assert!(bad.parse::<StatusLine>().is_err(), "{bad}");
        }
    }
}
