//! What the server's runners measure, per 9P message type: requests,
//! error replies, and a fixed-bucket histogram of the time from a request
//! frame decoded to its reply written to the socket; and connections
//! accepted, open and refused. An [`Observer`] is a block of atomics that
//! the runners add to (no lock, no allocation per request); a
//! [`Snapshot`] is its reading, with a stable text form ([`Snapshot::render`],
//! [`Snapshot::parse`]) that NineDoor serves as `/proc/transport`.
//!
//! It must never look inside a frame beyond its 7-byte header (size, type,
//! tag), and never cost anything when a runner has no observer.

use core::fmt::Write as _;
use secure9p_codec::MsgType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, microseconds (a last bucket,
/// `+Inf`, takes the rest): from 10 µs, a request answered from memory on
/// a quiet machine, to 10 s, a GPU job file whose bridge is slow; about
/// three buckets a decade, as Prometheus' own defaults.
pub const LATENCY_BOUNDS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Buckets per message type: one per bound and `+Inf`.
const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// Slots for request types: every T-message has an even type byte below
/// 128, so `type / 2` names one; the last slot takes anything else (a type
/// byte no codec knows, or a reply sent as a request).
const SLOTS: usize = 65;
const UNKNOWN: usize = SLOTS - 1;

/// The name of a slot in the text form and the metrics' `op` label.
const UNKNOWN_NAME: &str = "unknown";

/// The bounds in nanoseconds, to compare elapsed times without dividing.
const BOUNDS_NS: [u64; LATENCY_BOUNDS_US.len()] = {
    let mut ns = [0u64; LATENCY_BOUNDS_US.len()];
    let mut i = 0;
    while i < ns.len() {
        ns[i] = LATENCY_BOUNDS_US[i] * 1_000;
        i += 1;
    }
    ns
};

/// One message type's counters, on cache lines of their own so that
/// requests of different types on different cores do not contend.
#[repr(align(64))]
#[derive(Debug)]
struct OpCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    sum_ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl OpCounters {
    fn new() -> Self {
        OpCounters {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            buckets: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The slot of a request's type byte.
pub(crate) fn slot_of(ty: u8) -> u8 {
    match MsgType::from_u8(ty) {
        Some(t) if t.is_request() => ty / 2,
        _ => UNKNOWN as u8,
    }
}

fn slot_name(slot: usize) -> &'static str {
    u8::try_from(slot * 2)
        .ok()
        .filter(|_| slot < UNKNOWN)
        .and_then(MsgType::from_u8)
        .map_or(UNKNOWN_NAME, MsgType::name)
}

/// Whether a reply's type byte is an error reply (`Rlerror`, or
/// 9P2000's `Rerror`).
pub(crate) fn is_error_reply(ty: u8) -> bool {
    ty == MsgType::Rlerror as u8 || ty == MsgType::Rerror as u8
}

/// The transport's own figures, shared by every connection of the runners
/// it is given to (see [`Shared::observed`](crate::server::Shared::observed)).
/// All counters only grow, except `open`.
#[derive(Debug)]
pub struct Observer {
    ops: Box<[OpCounters; SLOTS]>,
    accepted: AtomicU64,
    open: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
    framing_errors: AtomicU64,
}

impl Default for Observer {
    fn default() -> Self {
        Observer::new()
    }
}

impl Observer {
    /// An observer with every counter at 0.
    pub fn new() -> Self {
        let ops: Box<[OpCounters; SLOTS]> = Box::new(core::array::from_fn(|_| OpCounters::new()));
        Observer {
            ops,
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            framing_errors: AtomicU64::new(0),
        }
    }

    fn op(&self, slot: u8) -> &OpCounters {
        &self.ops[usize::from(slot).min(UNKNOWN)]
    }

    /// A request frame of slot `slot` was decoded.
    pub(crate) fn request(&self, slot: u8) {
        self.op(slot).requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The reply of a request of slot `slot` was written, `elapsed` after
    /// the request was decoded.
    pub(crate) fn replied(&self, slot: u8, elapsed: Duration, error: bool) {
        let op = self.op(slot);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS.partition_point(|&b| b < ns);
        op.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        op.sum_ns.fetch_add(ns, Ordering::Relaxed);
        if error {
            op.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection was accepted (and is open until [`Observer::closed`]).
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// An accepted connection closed.
    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection was closed at accept: the cap was reached.
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed for idling or a slow partial frame.
    pub(crate) fn timed_out(&self) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed because its framing broke.
    pub(crate) fn framing_error(&self) {
        self.framing_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures now. Each counter is read on its own (no lock), so a
    /// request finishing meanwhile may show in one and not yet in another.
    pub fn snapshot(&self) -> Snapshot {
        let ops = self
            .ops
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| {
                let requests = c.requests.load(Ordering::Relaxed);
                let mut total = 0;
                let buckets: Vec<u64> = c
                    .buckets
                    .iter()
                    .map(|b| {
                        total += b.load(Ordering::Relaxed);
                        total
                    })
                    .collect();
                (requests > 0 || total > 0).then(|| OpSnapshot {
                    op: slot_name(slot).to_owned(),
                    requests,
                    errors: c.errors.load(Ordering::Relaxed),
                    replies: total,
                    sum_ns: c.sum_ns.load(Ordering::Relaxed),
                    buckets,
                })
            })
            .collect();
        Snapshot {
            connections: Connections {
                accepted: self.accepted.load(Ordering::Relaxed),
                open: self.open.load(Ordering::Relaxed),
                refused: self.refused.load(Ordering::Relaxed),
                timed_out: self.timed_out.load(Ordering::Relaxed),
                framing_errors: self.framing_errors.load(Ordering::Relaxed),
            },
            bounds_us: LATENCY_BOUNDS_US.to_vec(),
            ops,
        }
    }
}

/// Connection counters of a [`Snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connections {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections closed at accept because the cap was reached.
    pub refused: u64,
    /// Connections closed for idling or for a slow partial frame.
    pub timed_out: u64,
    /// Connections closed because framing broke (oversize frame, garbage).
    pub framing_errors: u64,
}

/// One message type's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpSnapshot {
    /// The request's name as the protocol documents spell it (`Twalk`), or
    /// `unknown`.
    pub op: String,
    /// Request frames decoded.
    pub requests: u64,
    /// Replies written that were `Rlerror` (or `Rerror`).
    pub errors: u64,
    /// Replies written and timed: the histogram's count. Behind `requests`
    /// by the requests in flight, flushed, or whose connection closed first.
    pub replies: u64,
    /// Total time of the timed replies, nanoseconds.
    pub sum_ns: u64,
    /// Cumulative counts: element `i` counts replies written within
    /// [`Snapshot::bounds_us`]`[i]`; the last (`+Inf`) equals `replies`.
    pub buckets: Vec<u64>,
}

/// A reading of an [`Observer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connection counters.
    pub connections: Connections,
    /// The buckets' upper bounds, microseconds (ascending; `+Inf` implied).
    pub bounds_us: Vec<u64>,
    /// Message types seen, by type byte (`unknown` last).
    pub ops: Vec<OpSnapshot>,
}

/// Why a text was not a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The first line is not the format's.
    #[error("not a transport file: first line {0:?}, expected {FORMAT:?}")]
    Format(String),
    /// A line that does not parse.
    #[error("line {line}: {why}")]
    Line {
        /// Its number, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// The text form's first line: its name and version. A change that an
/// older reader would misread gets a new version.
pub const FORMAT: &str = "secure9p-transport 1";

impl Snapshot {
    /// The text form, one `key value…` line each:
    ///
    /// ```text
    /// secure9p-transport 1
    /// connections.accepted 12
    /// connections.open 2
    /// connections.refused 0
    /// connections.timed_out 0
    /// connections.framing_errors 0
    /// latency.le_us 10 25 50 … 10000000
    /// op Twalk requests 40 errors 2 replies 40 sum_ns 812345 buckets 3 31 39 … 40 40
    /// ```
    ///
    /// An `op` line for each message type seen; `buckets` holds the
    /// cumulative count for each bound of `latency.le_us`, then the `+Inf`
    /// count (equal to `replies`). Readers skip keys they do not know.
    pub fn render(&self) -> String {
        let c = &self.connections;
        let mut t = String::with_capacity(256 + self.ops.len() * 160);
        // Writing to a String cannot fail.
        let _ = writeln!(t, "{FORMAT}");
        let _ = writeln!(t, "connections.accepted {}", c.accepted);
        let _ = writeln!(t, "connections.open {}", c.open);
        let _ = writeln!(t, "connections.refused {}", c.refused);
        let _ = writeln!(t, "connections.timed_out {}", c.timed_out);
        let _ = writeln!(t, "connections.framing_errors {}", c.framing_errors);
        t.push_str("latency.le_us");
        for b in &self.bounds_us {
            let _ = write!(t, " {b}");
        }
        t.push('\n');
        for o in &self.ops {
            let _ = write!(
                t,
                "op {} requests {} errors {} replies {} sum_ns {} buckets",
                o.op, o.requests, o.errors, o.replies, o.sum_ns
            );
            for b in &o.buckets {
                let _ = write!(t, " {b}");
            }
            t.push('\n');
        }
        t
    }

    /// Reads the text form back (what the console does with
    /// `/proc/transport`). Unknown keys and unknown `op` fields are
    /// skipped, so a newer writer's additions do not break an older reader.
    pub fn parse(text: &str) -> Result<Snapshot, ParseError> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        if first != FORMAT {
            return Err(ParseError::Format(first.to_owned()));
        }
        let mut snap = Snapshot::default();
        for (i, line) in lines.enumerate() {
            let bad = |why: String| ParseError::Line { line: i + 2, why };
            let mut words = line.split_ascii_whitespace();
            let Some(key) = words.next() else { continue };
            let number = |w: Option<&str>| -> Result<u64, ParseError> {
                let w = w.ok_or_else(|| bad(format!("{key}: no value")))?;
                w.parse()
                    .map_err(|_| bad(format!("{key}: {w:?} is not a count")))
            };
            let c = &mut snap.connections;
            match key {
                "connections.accepted" => c.accepted = number(words.next())?,
                "connections.open" => c.open = number(words.next())?,
                "connections.refused" => c.refused = number(words.next())?,
                "connections.timed_out" => c.timed_out = number(words.next())?,
                "connections.framing_errors" => c.framing_errors = number(words.next())?,
                "latency.le_us" => {
                    snap.bounds_us = words.map(|w| number(Some(w))).collect::<Result<_, _>>()?;
                    if !snap.bounds_us.is_sorted_by(|a, b| a < b) {
                        return Err(bad("latency.le_us: bounds not ascending".into()));
                    }
                }
                "op" => snap
                    .ops
                    .push(parse_op(&mut words, &snap.bounds_us).map_err(bad)?),
                _ => {}
            }
        }
        Ok(snap)
    }
}

/// The rest of an `op` line.
fn parse_op<'a>(
    words: &mut impl Iterator<Item = &'a str>,
    bounds: &[u64],
) -> Result<OpSnapshot, String> {
    let op = words.next().ok_or("op: no name")?;
    let mut o = OpSnapshot {
        op: op.to_owned(),
        ..OpSnapshot::default()
    };
    let count = |w: Option<&str>, field: &str| -> Result<u64, String> {
        let w = w.ok_or_else(|| format!("op {op}: {field} has no value"))?;
        w.parse()
            .map_err(|_| format!("op {op}: {field} {w:?} is not a count"))
    };
    while let Some(field) = words.next() {
        match field {
            "requests" => o.requests = count(words.next(), field)?,
            "errors" => o.errors = count(words.next(), field)?,
            "replies" => o.replies = count(words.next(), field)?,
            "sum_ns" => o.sum_ns = count(words.next(), field)?,
            "buckets" => {
                // The bucket counts run to the end of the line.
                o.buckets = words
                    .by_ref()
                    .map(|w| count(Some(w), field))
                    .collect::<Result<_, _>>()?;
            }
            // A field this reader does not know, with its one value.
            _ => {
                words.next();
            }
        }
    }
    if o.buckets.len() != bounds.len() + 1 {
        return Err(format!(
            "op {op}: {} bucket counts for {} bounds and +Inf",
            o.buckets.len(),
            bounds.len()
        ));
    }
    if !o.buckets.is_sorted() || o.buckets.last() != Some(&o.replies) {
        return Err(format!(
            "op {op}: bucket counts are not cumulative up to replies {}",
            o.replies
        ));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_type_has_its_own_slot_and_anything_else_is_unknown() {
        assert_eq!(
            slot_name(usize::from(slot_of(MsgType::Twalk as u8))),
            "Twalk"
        );
        assert_eq!(
            slot_name(usize::from(slot_of(MsgType::Tversion as u8))),
            "Tversion"
        );
        for ty in [MsgType::Rwalk as u8, 0, 1, 255, 200, 6] {
            assert_eq!(slot_of(ty) as usize, UNKNOWN, "type {ty}");
        }
        for ty in (0..=255u8).filter(|t| MsgType::from_u8(*t).is_some_and(|m| m.is_request())) {
            assert!((slot_of(ty) as usize) < UNKNOWN, "type {ty}");
            assert_eq!(
                slot_name(slot_of(ty).into()),
                MsgType::from_u8(ty).unwrap().name()
            );
        }
    }

    #[test]
    fn replies_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let o = Observer::new();
        let walk = slot_of(MsgType::Twalk as u8);
        for us in [0, 10, 11, 25, 999, 1_000, 20_000_000] {
            o.request(walk);
            o.replied(walk, Duration::from_micros(us), us == 11);
        }
        let s = o.snapshot();
        assert_eq!(s.ops.len(), 1);
        let w = &s.ops[0];
        assert_eq!(
            (w.op.as_str(), w.requests, w.errors, w.replies),
            ("Twalk", 7, 1, 7)
        );
        // <=10: 0 and 10; <=25: +11, 25; <=1000: +999, 1000; +Inf: 20 s.
        assert_eq!(&w.buckets[..7], &[2, 4, 4, 4, 4, 4, 6]);
        assert_eq!(w.buckets[18], 6);
        assert_eq!(w.buckets[19], 7);
        assert_eq!(w.sum_ns, (10 + 11 + 25 + 999 + 1_000 + 20_000_000) * 1_000);
    }

    #[test]
    fn the_text_form_reads_back_and_skips_what_it_does_not_know() {
        let o = Observer::new();
        o.accepted();
        o.accepted();
        o.closed();
        o.refused();
        for ty in [MsgType::Tversion as u8, MsgType::Tread as u8, 3] {
            o.request(slot_of(ty));
            o.replied(slot_of(ty), Duration::from_micros(40), ty == 3);
        }
        let snap = o.snapshot();
        let text = snap.render();
        assert!(text.starts_with("secure9p-transport 1\nconnections.accepted 2\nconnections.open 1\nconnections.refused 1\n"), "{text}");
        assert!(
            text.contains("\nop Tread requests 1 errors 0 replies 1 sum_ns 40000 buckets 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n"),
            "{text}"
        );
        assert!(text.ends_with("\nop unknown requests 1 errors 1 replies 1 sum_ns 40000 buckets 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n"), "{text}");
        assert_eq!(Snapshot::parse(&text), Ok(snap.clone()));
        let newer = text.replace(" sum_ns", " p99_ns 7 sum_ns") + "cpu.seconds 3\n";
        assert_eq!(Snapshot::parse(&newer), Ok(snap));
    }

    #[test]
    fn a_broken_text_is_refused_with_its_line() {
        assert!(matches!(
            Snapshot::parse("Cohesix NineDoor\n"),
            Err(ParseError::Format(_))
        ));
        for (text, line) in [
            ("secure9p-transport 1\nconnections.open x\n", 2),
            ("secure9p-transport 1\nlatency.le_us 10 5\n", 2),
            (
                "secure9p-transport 1\nlatency.le_us 10\nop Twalk requests 1 replies 1 buckets 1\n",
                3,
            ),
            (
                "secure9p-transport 1\nlatency.le_us 10\nop Twalk replies 2 buckets 2 1\n",
                3,
            ),
            ("secure9p-transport 1\n\nop\n", 3),
        ] {
            match Snapshot::parse(text) {
                Err(ParseError::Line { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
