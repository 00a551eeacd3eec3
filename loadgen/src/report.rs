//! The result of a run, for people (`Display`) and for scripts (`serde`
//! JSON). Rates are over the measured wall time from the first request to
//! the last reply; payload is the data bytes of `Rread`s, in MB of 10^6
//! bytes.

use crate::config::LoadConfig;
use crate::memwatch::MemoryReport;
use crate::mix::Op;
use crate::tally::Tally;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest reply.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// Percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency {
                p50_us: 0,
                p90_us: 0,
                p99_us: 0,
                max_us: 0,
                mean_us: 0.0,
            };
        }
        Latency {
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// One operation's share of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpReport {
    /// `small-read`, `getattr` or `large-read`.
    pub op: &'static str,
    /// Replies received.
    pub requests: u64,
    /// Replies per second.
    pub requests_per_sec: f64,
    /// Payload bytes.
    pub bytes: u64,
    /// Latency of its replies.
    pub latency: Latency,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The server's address.
    pub addr: String,
    /// Whether the connections ran mutual TLS.
    pub tls: bool,
    /// Tree attached (a Cohesix ticket in it is shown as its 8-byte id
    /// only: reports end up in logs).
    pub aname: String,
    /// msize proposed.
    pub msize_asked: u32,
    /// msize the server granted (of the first session; 0 if none).
    pub msize: u32,
    /// Bytes each large read asked for (0 without large reads).
    pub large_chunk: u32,
    /// Connections asked for.
    pub connections: usize,
    /// Connections established and attached.
    pub connected: usize,
    /// Connections that failed during the load.
    pub connections_lost: usize,
    /// Requests kept in flight per connection.
    pub pipeline: usize,
    /// The mix, as `op=weight,...`.
    pub mix: String,
    /// Seconds spent connecting and attaching every connection.
    pub setup_secs: f64,
    /// Seconds from the first request to the last reply.
    pub elapsed_secs: f64,
    /// Replies received (errors included).
    pub requests: u64,
    /// Replies per second.
    pub requests_per_sec: f64,
    /// Payload bytes read.
    pub bytes: u64,
    /// Payload MB (10^6 bytes) per second.
    pub mb_per_sec: f64,
    /// Latency of every reply.
    pub latency: Latency,
    /// Per operation, those in the mix only.
    pub ops: Vec<OpReport>,
    /// Errors of every kind.
    pub errors_total: u64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// The server's memory, when `--server-pid` was given and readable.
    pub server_memory: Option<MemoryReport>,
}

/// What a run produced, before it is summarised.
#[derive(Debug)]
pub struct Outcome {
    /// Replies, bytes and errors.
    pub tally: Tally,
    /// msize granted, 0 if no session was made.
    pub msize: u32,
    /// Bytes each large read asked for.
    pub large_chunk: u32,
    /// Connections established.
    pub connected: usize,
    /// Connections that broke during the load.
    pub connections_lost: usize,
    /// Connect and attach time.
    pub setup: Duration,
    /// First request to last reply.
    pub elapsed: Duration,
    /// The server's memory.
    pub server_memory: Option<MemoryReport>,
}

fn per_sec(n: f64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n / d.as_secs_f64()
    }
}

impl Report {
    /// Summarises `out` of a run of `cfg`.
    pub fn new(cfg: &LoadConfig, out: &Outcome) -> Self {
        let t = &out.tally;
        let ops = Op::ALL
            .into_iter()
            .filter(|op| cfg.mix.uses(*op))
            .map(|op| {
                let o = &t.ops[op.index()];
                OpReport {
                    op: op.name(),
                    requests: o.requests(),
                    requests_per_sec: per_sec(o.requests() as f64, out.elapsed),
                    bytes: o.bytes,
                    latency: Latency::of(&o.latency_us),
                }
            })
            .collect();
        Report {
            addr: cfg.addr.to_string(),
            tls: cfg.tls.is_some(),
            aname: shown_aname(&cfg.aname),
            msize_asked: cfg.msize,
            msize: out.msize,
            large_chunk: if cfg.mix.uses(Op::LargeRead) {
                out.large_chunk
            } else {
                0
            },
            connections: cfg.connections,
            connected: out.connected,
            connections_lost: out.connections_lost,
            pipeline: cfg.pipeline,
            mix: cfg.mix.to_string(),
            setup_secs: out.setup.as_secs_f64(),
            elapsed_secs: out.elapsed.as_secs_f64(),
            requests: t.requests(),
            requests_per_sec: per_sec(t.requests() as f64, out.elapsed),
            bytes: t.bytes(),
            mb_per_sec: per_sec(t.bytes() as f64 / 1e6, out.elapsed),
            latency: Latency::of(&t.all_latency_us()),
            ops,
            errors_total: t.error_count(),
            errors: t.errors.clone(),
            server_memory: out.server_memory,
        }
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        // Every field is a number, string, map of strings or option of
        // those: serialisation cannot fail.
        serde_json::to_string(self).expect("a Report always serialises")
    }
}

/// A duration in microseconds, in the unit that reads best.
pub fn fmt_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// KiB in MiB, one decimal.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}  p90 {}  p99 {}  max {}",
            fmt_us(self.p50_us),
            fmt_us(self.p90_us),
            fmt_us(self.p99_us),
            fmt_us(self.max_us)
        )
    }
}

/// `aname` as a report shows it: a Cohesix ticket (`c9t1.<id hex>.…`, the
/// whole secret) becomes `ticket <first 16 hex digits of its id>`.
fn shown_aname(aname: &str) -> String {
    match aname.strip_prefix("c9t1.") {
        Some(rest) => {
            let id: String = rest.chars().take(16).collect();
            format!("<ticket {id}>")
        }
        None => aname.to_owned(),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "s9p-load {}{} aname {:?}: msize {} (asked {}), {}/{} connections, pipeline {}, mix {}",
            self.addr,
            if self.tls { " over TLS" } else { "" },
            self.aname,
            self.msize,
            self.msize_asked,
            self.connected,
            self.connections,
            self.pipeline,
            self.mix
        )?;
        write!(
            f,
            "  setup     {:.2} s, load {:.2} s",
            self.setup_secs, self.elapsed_secs
        )?;
        if self.large_chunk > 0 {
            write!(f, ", large reads of {} bytes", self.large_chunk)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  requests  {} ({:.0} req/s)",
            self.requests, self.requests_per_sec
        )?;
        writeln!(
            f,
            "  payload   {:.1} MB ({:.1} MB/s)",
            self.bytes as f64 / 1e6,
            self.mb_per_sec
        )?;
        writeln!(f, "  latency   {}", self.latency)?;
        for op in &self.ops {
            writeln!(
                f,
                "    {:<10} {:>10} ({:.0} req/s)  {}",
                op.op, op.requests, op.requests_per_sec, op.latency
            )?;
        }
        if self.errors.is_empty() {
            writeln!(f, "  errors    none")?;
        } else {
            writeln!(f, "  errors    {}", self.errors_total)?;
            for (kind, n) in &self.errors {
                writeln!(f, "    {n:>10}  {kind}")?;
            }
        }
        if self.connections_lost > 0 {
            writeln!(f, "  lost      {} connections", self.connections_lost)?;
        }
        if let Some(m) = &self.server_memory {
            writeln!(
                f,
                "  server    pid {}: peak RSS {} (start {}, VmHWM {}){}",
                m.pid,
                mib(m.peak_rss_kib),
                mib(m.start_rss_kib),
                mib(m.hwm_kib),
                if m.exited {
                    ", EXITED during the run"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_ticket_in_the_aname_is_never_printed_whole() {
        let t = "c9t1.9bbbeac951058140e895d97d0d294ec6.queen.queen.1767312000./.70bb771bcd83";
        let shown = shown_aname(t);
        assert_eq!(shown, "<ticket 9bbbeac951058140>");
        assert!(!shown.contains("70bb771b"));
        assert_eq!(shown_aname("/srv/export"), "/srv/export");
    }

    use super::*;

    fn outcome() -> (LoadConfig, Outcome) {
        let mut cfg = LoadConfig::new("127.0.0.1:5640".parse().unwrap(), "/srv");
        cfg.mix = "small-read=1,getattr=1".parse().unwrap();
        cfg.connections = 4;
        cfg.pipeline = 8;
        let mut tally = Tally::default();
        for i in 0..1000u64 {
            tally.reply(Op::SmallRead, Duration::from_micros(100 + i), 4096);
            tally.reply(Op::Getattr, Duration::from_micros(50), 0);
        }
        tally.error("getattr: errno 2 (file does not exist)");
        let out = Outcome {
            tally,
            msize: 65536,
            large_chunk: 65512,
            connected: 4,
            connections_lost: 0,
            setup: Duration::from_millis(20),
            elapsed: Duration::from_secs(2),
            server_memory: Some(MemoryReport {
                pid: 42,
                start_rss_kib: 2048,
                peak_rss_kib: 3072,
                hwm_kib: 4096,
                samples: 40,
                exited: false,
            }),
        };
        (cfg, out)
    }

    #[test]
    fn rates_are_over_the_elapsed_time() {
        let (cfg, out) = outcome();
        let r = Report::new(&cfg, &out);
        assert_eq!(r.requests, 2000);
        assert_eq!(r.requests_per_sec, 1000.0);
        assert_eq!(r.bytes, 4096 * 1000);
        assert!((r.mb_per_sec - 2.048).abs() < 1e-9, "{}", r.mb_per_sec);
        assert_eq!(r.ops.len(), 2, "large-read is not in the mix");
        assert_eq!(r.large_chunk, 0, "large-read is not in the mix");
        assert_eq!(r.ops[0].op, "small-read");
        assert_eq!(r.ops[0].latency.max_us, 1099);
        assert_eq!(r.ops[1].latency.p50_us, 50);
        assert_eq!(r.errors_total, 1);
    }

    #[test]
    fn human_output_reads_as_documented() {
        let (cfg, out) = outcome();
        let text = Report::new(&cfg, &out).to_string();
        let want = "\
s9p-load 127.0.0.1:5640 aname \"/srv\": msize 65536 (asked 65536), 4/4 connections, pipeline 8, mix small-read=1,getattr=1
  setup     0.02 s, load 2.00 s
  requests  2000 (1000 req/s)
  payload   4.1 MB (2.0 MB/s)
  latency   p50 50 µs  p90 899 µs  p99 1.08 ms  max 1.10 ms
    small-read       1000 (500 req/s)  p50 599 µs  p90 999 µs  p99 1.09 ms  max 1.10 ms
    getattr          1000 (500 req/s)  p50 50 µs  p90 50 µs  p99 50 µs  max 50 µs
  errors    1
             1  getattr: errno 2 (file does not exist)
  server    pid 42: peak RSS 3.0 MiB (start 2.0 MiB, VmHWM 4.0 MiB)
";
        assert_eq!(text, want);
    }

    #[test]
    fn json_carries_every_figure() {
        let (cfg, out) = outcome();
        let json: serde_json::Value =
            serde_json::from_str(&Report::new(&cfg, &out).to_json()).expect("valid JSON");
        assert_eq!(json["requests"], 2000);
        assert_eq!(json["msize"], 65536);
        assert_eq!(json["latency"]["p50_us"], 50);
        assert_eq!(json["ops"][1]["op"], "getattr");
        assert_eq!(json["errors"]["getattr: errno 2 (file does not exist)"], 1);
        assert_eq!(json["server_memory"]["peak_rss_kib"], 3072);
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        let cases = [
            (0, "0 µs"),
            (999, "999 µs"),
            (1_000, "1.00 ms"),
            (12_345, "12.35 ms"),
            (2_500_000, "2.50 s"),
        ];
        for (us, want) in cases {
            assert_eq!(fmt_us(us), want);
        }
    }
}
