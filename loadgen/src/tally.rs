//! Counting what happened: a latency histogram and payload bytes per
//! operation, and errors by kind. Connections record into a few shared
//! shards (one lock per batch of replies) instead of each holding its own
//! histograms, so 1,000 connections do not cost 1,000 sets of buckets.

use crate::mix::Op;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Significant figures the latency histograms keep: 0.1 % resolution.
pub const SIGFIGS: u8 = 3;

/// Shards connections record into: enough that worker threads rarely meet
/// on one lock, few enough that merging them is instant.
pub const SHARDS: usize = 16;

/// What one operation did.
#[derive(Debug, Clone)]
pub struct OpTally {
    /// Reply latencies in microseconds.
    pub latency_us: Histogram<u64>,
    /// Payload bytes read.
    pub bytes: u64,
}

impl OpTally {
    fn new() -> Self {
        OpTally {
            latency_us: new_histogram(),
            bytes: 0,
        }
    }

    /// Replies received (errors included).
    pub fn requests(&self) -> u64 {
        self.latency_us.len()
    }
}

fn new_histogram() -> Histogram<u64> {
    // `new` auto-resizes, so any latency records; only a sigfig outside
    // 0..=5 fails, and SIGFIGS is a constant within.
    Histogram::new(SIGFIGS).expect("SIGFIGS is within 0..=5")
}

/// Everything counted, per operation and in total.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Per [`Op`], indexed by [`Op::index`].
    pub ops: [OpTally; 3],
    /// Errors by kind (`"getattr: errno 2 (file does not exist)"`, `"connect: ..."`).
    pub errors: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            ops: [OpTally::new(), OpTally::new(), OpTally::new()],
            errors: BTreeMap::new(),
        }
    }
}

impl Tally {
    /// Records one reply to `op` after `latency`, carrying `bytes` of payload.
    pub fn reply(&mut self, op: Op, latency: Duration, bytes: u64) {
        let t = &mut self.ops[op.index()];
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // Auto-resizing histograms grow to take any latency a run can see;
        // only a value beyond what they can ever cover is clamped.
        if t.latency_us.record(us).is_err() {
            t.latency_us.saturating_record(us);
        }
        t.bytes += bytes;
    }

    /// Counts one error of `kind`.
    pub fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    /// Adds `other` into this tally.
    pub fn merge(&mut self, other: &Tally) {
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            // Both auto-resize, so adding cannot run out of range.
            let _ = mine.latency_us.add(&theirs.latency_us);
            mine.bytes += theirs.bytes;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    /// Latencies of every operation together.
    pub fn all_latency_us(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for t in &self.ops {
            let _ = all.add(&t.latency_us);
        }
        all
    }

    /// Replies of every operation.
    pub fn requests(&self) -> u64 {
        self.ops.iter().map(OpTally::requests).sum()
    }

    /// Payload bytes of every operation.
    pub fn bytes(&self) -> u64 {
        self.ops.iter().map(|t| t.bytes).sum()
    }

    /// Errors of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Shards shared by every connection of a run.
#[derive(Debug)]
pub struct Recorder {
    shards: Vec<Mutex<Tally>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            shards: (0..SHARDS).map(|_| Mutex::new(Tally::default())).collect(),
        }
    }
}

impl Recorder {
    /// The shard connection `conn` records into; hold it only to record.
    pub fn shard(&self, conn: usize) -> MutexGuard<'_, Tally> {
        let m = &self.shards[conn % self.shards.len()];
        // A panic mid-record leaves at worst one sample half-counted.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every shard merged.
    pub fn total(&self) -> Tally {
        let mut all = Tally::default();
        for i in 0..self.shards.len() {
            all.merge(&self.shard(i));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_one_total() {
        let rec = Recorder::default();
        for conn in 0..40 {
            let mut s = rec.shard(conn);
            s.reply(Op::SmallRead, Duration::from_micros(100), 4096);
            s.reply(Op::Getattr, Duration::from_micros(50), 0);
            if conn % 10 == 0 {
                s.error("getattr: errno 2 (file does not exist)");
            }
        }
        let t = rec.total();
        assert_eq!(t.requests(), 80);
        assert_eq!(t.ops[Op::SmallRead.index()].requests(), 40);
        assert_eq!(t.bytes(), 40 * 4096);
        assert_eq!(t.error_count(), 4);
        assert_eq!(t.errors["getattr: errno 2 (file does not exist)"], 4);
        let all = t.all_latency_us();
        assert_eq!(all.len(), 80);
        assert_eq!(all.max(), all.highest_equivalent(100));
        assert_eq!(all.min(), 50);
    }

    #[test]
    fn percentiles_hold_three_significant_figures() {
        let mut t = Tally::default();
        for us in 1..=10_000u64 {
            t.reply(Op::LargeRead, Duration::from_micros(us), 1);
        }
        let h = &t.ops[Op::LargeRead.index()].latency_us;
        let p50 = h.value_at_quantile(0.5) as f64;
        let p99 = h.value_at_quantile(0.99) as f64;
        assert!((p50 - 5_000.0).abs() / 5_000.0 < 0.002, "p50 {p50}");
        assert!((p99 - 9_900.0).abs() / 9_900.0 < 0.002, "p99 {p99}");
    }
}
