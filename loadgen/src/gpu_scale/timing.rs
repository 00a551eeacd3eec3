//! Latency summaries of a few hundred samples: exact nearest-rank
//! percentiles over the sorted samples (no histogram: at this count every
//! sample can be kept).

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// Percentiles of one set of samples, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Fastest.
    pub min_us: u64,
    /// Median (nearest rank).
    pub p50_us: u64,
    /// 99th percentile (nearest rank).
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

/// The sample at quantile `q` of `sorted` by nearest rank: the smallest
/// sample with at least `q` of all samples at or below it.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let at = rank.clamp(1, sorted.len().max(1)) - 1;
    sorted.get(at).copied().unwrap_or(0)
}

impl Summary {
    /// The summary of `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut us: Vec<u64> = samples
            .iter()
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .collect();
        us.sort_unstable();
        Some(Summary {
            n: us.len(),
            min_us: *us.first()?,
            p50_us: nearest_rank(&us, 0.50),
            p99_us: nearest_rank(&us, 0.99),
            max_us: *us.last()?,
        })
    }
}

/// `µs` for `us`, as a person reads it: `850 µs`, `1.62 ms`, `2.41 s`.
pub fn human(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}  p99 {}  max {}",
            human(self.p50_us),
            human(self.p99_us),
            human(self.max_us)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank_over_the_samples() {
        let hundred: Vec<u64> = (1..=100).rev().collect();
        let s = Summary::of(&ms(&hundred)).unwrap();
        assert_eq!(
            (s.n, s.min_us, s.p50_us, s.p99_us, s.max_us),
            (100, 1_000, 50_000, 99_000, 100_000)
        );
        let one = Summary::of(&ms(&[7])).unwrap();
        assert_eq!((one.p50_us, one.p99_us), (7_000, 7_000));
        let three = Summary::of(&ms(&[3, 1, 2])).unwrap();
        assert_eq!((three.p50_us, three.p99_us), (2_000, 3_000));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(human(850), "850 µs");
        assert_eq!(human(1_620), "1.62 ms");
        assert_eq!(human(2_410_000), "2.41 s");
    }
}
