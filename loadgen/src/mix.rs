//! The request mix: which operations a connection sends, in what
//! proportions. Parsed from `small-read=40,getattr=40,large-read=20`, then
//! played out by a deterministic smooth weighted round-robin, so every
//! connection sends exactly the asked proportions without a random source
//! (and two runs send the same sequence).

use std::fmt;
use std::str::FromStr;

/// One kind of request the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// A short read at offset 0 of the small file (`--small-read` bytes).
    SmallRead,
    /// `Tgetattr` of an open file.
    Getattr,
    /// A read of up to msize − 11 bytes, sequential through the large file,
    /// wrapping at its end.
    LargeRead,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 3] = [Op::SmallRead, Op::Getattr, Op::LargeRead];

    /// The name used in `--mix` and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Op::SmallRead => "small-read",
            Op::Getattr => "getattr",
            Op::LargeRead => "large-read",
        }
    }

    /// Index into per-operation tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a `--mix` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// An entry is not `name=weight`.
    #[error("mix entry {0:?} is not name=weight")]
    Syntax(String),
    /// An operation name nobody knows.
    #[error("unknown operation {0:?} (known: small-read, getattr, large-read)")]
    UnknownOp(String),
    /// A weight that is not a whole number.
    #[error("weight {weight:?} of {op} is not a whole number up to {max}")]
    BadWeight {
        /// The operation.
        op: &'static str,
        /// The weight as written.
        weight: String,
        /// The largest weight accepted.
        max: u32,
    },
    /// The same operation twice.
    #[error("{0} appears twice in the mix")]
    Duplicate(&'static str),
    /// Every weight is zero.
    #[error("the mix sends nothing: every weight is zero")]
    Empty,
}

/// Largest weight of one operation: far beyond any useful ratio, and small
/// enough that the round-robin's running sums cannot overflow.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Weights of each [`Op`], at least one of them positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
}

impl Mix {
    /// Only `op`.
    pub fn only(op: Op) -> Self {
        let mut weights = [0; 3];
        weights[op.index()] = 1;
        Mix { weights }
    }

    /// The weight of `op` (0: never sent).
    pub fn weight(&self, op: Op) -> u32 {
        self.weights[op.index()]
    }

    /// Whether `op` is sent at all.
    pub fn uses(&self, op: Op) -> bool {
        self.weight(op) > 0
    }

    /// A fresh sequence of operations in these proportions.
    pub fn picker(&self) -> Picker {
        Picker {
            weights: self.weights,
            current: [0; 3],
        }
    }
}

impl Default for Mix {
    /// `small-read=40,getattr=40,large-read=20`.
    fn default() -> Self {
        Mix {
            weights: [40, 40, 20],
        }
    }
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Self, MixError> {
        let mut weights = [0u32; 3];
        let mut seen = [false; 3];
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, weight) = entry
                .split_once('=')
                .ok_or_else(|| MixError::Syntax(entry.to_string()))?;
            let op = Op::ALL
                .into_iter()
                .find(|op| op.name() == name.trim())
                .ok_or_else(|| MixError::UnknownOp(name.trim().to_string()))?;
            let w = weight
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|w| *w <= MAX_WEIGHT)
                .ok_or_else(|| MixError::BadWeight {
                    op: op.name(),
                    weight: weight.trim().to_string(),
                    max: MAX_WEIGHT,
                })?;
            if seen[op.index()] {
                return Err(MixError::Duplicate(op.name()));
            }
            seen[op.index()] = true;
            weights[op.index()] = w;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err(MixError::Empty);
        }
        Ok(Mix { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for op in Op::ALL.into_iter().filter(|op| self.uses(*op)) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}={}", op, self.weight(op))?;
        }
        Ok(())
    }
}

/// Smooth weighted round-robin (nginx's): each step every operation gains
/// its weight, the one with the most credit is picked and pays the total.
/// Over any `total` consecutive picks each operation comes up exactly
/// `weight` times, spread out rather than in runs.
#[derive(Debug, Clone)]
pub struct Picker {
    weights: [u32; 3],
    current: [i64; 3],
}

impl Iterator for Picker {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        let total: i64 = self.weights.iter().map(|w| i64::from(*w)).sum();
        let mut best = Op::ALL[0];
        for op in Op::ALL {
            let i = op.index();
            self.current[i] += i64::from(self.weights[i]);
            if self.current[i] > self.current[best.index()] {
                best = op;
            }
        }
        self.current[best.index()] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_cli_documents() {
        let cases: &[(&str, Result<[u32; 3], MixError>)] = &[
            ("small-read=40,getattr=40,large-read=20", Ok([40, 40, 20])),
            ("getattr=1", Ok([0, 1, 0])),
            (" large-read = 3 , small-read=1 ", Ok([1, 0, 3])),
            ("getattr=1,", Ok([0, 1, 0])),
            ("getattr=0,large-read=5", Ok([0, 0, 5])),
            ("getattr", Err(MixError::Syntax("getattr".into()))),
            ("write=10", Err(MixError::UnknownOp("write".into()))),
            (
                "getattr=-1",
                Err(MixError::BadWeight {
                    op: "getattr",
                    weight: "-1".into(),
                    max: MAX_WEIGHT,
                }),
            ),
            (
                "getattr=1000001",
                Err(MixError::BadWeight {
                    op: "getattr",
                    weight: "1000001".into(),
                    max: MAX_WEIGHT,
                }),
            ),
            ("getattr=1,getattr=2", Err(MixError::Duplicate("getattr"))),
            ("getattr=0", Err(MixError::Empty)),
            ("", Err(MixError::Empty)),
        ];
        for (text, want) in cases {
            let got = text.parse::<Mix>().map(|m| m.weights);
            assert_eq!(&got, want, "parsing {text:?}");
        }
    }

    #[test]
    fn display_round_trips_and_omits_unused_ops() {
        let mix: Mix = "large-read=20,small-read=40".parse().unwrap();
        assert_eq!(mix.to_string(), "small-read=40,large-read=20");
        assert_eq!(mix.to_string().parse::<Mix>().unwrap(), mix);
        assert_eq!(
            Mix::default().to_string(),
            "small-read=40,getattr=40,large-read=20"
        );
    }

    #[test]
    fn picker_sends_exact_proportions_in_every_cycle() {
        let mix: Mix = "small-read=40,getattr=40,large-read=20".parse().unwrap();
        let mut picker = mix.picker();
        for _cycle in 0..5 {
            let mut counts = [0u32; 3];
            for op in picker.by_ref().take(100) {
                counts[op.index()] += 1;
            }
            assert_eq!(counts, [40, 40, 20]);
        }
    }

    #[test]
    fn picker_spreads_operations_out() {
        let mix: Mix = "getattr=1,large-read=1".parse().unwrap();
        let seq: Vec<Op> = mix.picker().take(6).collect();
        assert_eq!(
            seq,
            [
                Op::Getattr,
                Op::LargeRead,
                Op::Getattr,
                Op::LargeRead,
                Op::Getattr,
                Op::LargeRead
            ]
        );
    }

    #[test]
    fn picker_never_picks_a_zero_weight() {
        let mix: Mix = "small-read=0,getattr=3".parse().unwrap();
        assert!(mix.picker().take(50).all(|op| op == Op::Getattr));
    }
}
