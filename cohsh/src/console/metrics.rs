//! `/metrics`: a [`Snapshot`] and the console's own request counters in
//! the Prometheus text format (`prometheus-client`'s OpenMetrics encoder,
//! which Prometheus scrapes and `promtool check metrics` accepts). Gauges
//! and counters are built fresh from each snapshot: the hive's files are
//! the source of truth, the console keeps no totals of its own except for
//! its own requests.

use super::hive::{OpOnly, Requests, Snapshot};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use secure9p_transport::observe;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabel {
    gpu: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrnoLabel {
    errno: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// One message type's histogram as read from `/proc/transport`.
#[derive(Debug)]
struct ReadHistogram {
    label: OpOnly,
    /// Seconds in all.
    sum: f64,
    count: u64,
    /// Per-bucket counts with their upper bounds in seconds, the last `+Inf`.
    buckets: Vec<(f64, u64)>,
}

/// Histograms read from `/proc/transport` (counted by the hive, not here).
#[derive(Debug, Default)]
struct ReadHistograms(Vec<ReadHistogram>);

impl TypedMetric for ReadHistograms {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ReadHistograms {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for h in &self.0 {
            encoder
                .encode_family(&h.label)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One message type's histogram as the encoder takes it: the file's
/// cumulative counts back to per-bucket counts, bounds in seconds.
fn buckets(bounds_us: &[u64], cumulative: &[u64]) -> Vec<(f64, u64)> {
    let mut below = 0;
    cumulative
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let le = bounds_us
                .get(i)
                .map_or(f64::INFINITY, |us| *us as f64 / 1e6);
            let n = c.saturating_sub(below);
            below = c;
            (le, n)
        })
        .collect()
}

fn gauge(v: i64) -> Gauge {
    let g = Gauge::default();
    g.set(v);
    g
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The text exposition of `snap` (None: no view yet) and `requests`.
pub fn encode(snap: Option<&Snapshot>, requests: &Requests) -> String {
    let mut reg = Registry::with_prefix("cohesix");
    let up = snap.is_some_and(|s| s.at != 0 && s.down.is_none());
    reg.register(
        "hive_up",
        "Whether the hive answered the console's last poll",
        gauge(i64::from(up)),
    );
    reg.register(
        "console_requests",
        "The console's own 9P requests to the hive, by operation and result, counted by the console",
        requests.count.clone(),
    );
    reg.register(
        "console_request_duration_seconds",
        "Latency of the console's own 9P requests to the hive, by operation, as the console saw it",
        requests.latency.clone(),
    );
    if let Some(s) = snap.filter(|s| s.at != 0) {
        hive(&mut reg, s);
        if let Some(t) = &s.transport {
            transport(&mut reg, t);
        }
    }
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        return "# encoding failed\n".to_owned();
    }
    out
}

/// The OpenMetrics text of [`encode`] in the classic Prometheus text
/// format (0.0.4), for scrapers that do not ask for OpenMetrics (and for
/// `promtool check metrics`): a counter family takes its samples' `_total`
/// name, and there is no `# EOF`.
pub fn classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((p, rest)) => {
                let name = rest.split(' ').next().unwrap_or_default();
                if counters.contains(&name) {
                    out.push_str(p);
                    out.push_str(name);
                    out.push_str("_total");
                    out.push_str(&rest[name.len()..]);
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Each of `states` at 0, so a state with nothing in it is still a series.
fn zeroed(states: &[&str]) -> BTreeMap<String, i64> {
    states.iter().map(|k| ((*k).to_owned(), 0)).collect()
}

fn by_state(counts: BTreeMap<String, i64>) -> Family<StateLabel, Gauge> {
    let family = Family::<StateLabel, Gauge>::default();
    for (state, n) in counts {
        family.get_or_create(&StateLabel { state }).set(n);
    }
    family
}

fn hive(reg: &mut Registry, s: &Snapshot) {
    reg.register(
        "workers_live",
        "Workers the hive reports live (/proc/boot workers.live)",
        gauge(
            s.boot_value("workers.live")
                .and_then(|v| v.parse().ok())
                .unwrap_or(as_i64(s.workers.len() as u64)),
        ),
    );
    let beats = Family::<WorkerLabel, Counter>::default();
    let ring = Family::<WorkerLabel, Gauge>::default();
    let missed = Family::<WorkerLabel, Counter>::default();
    for w in &s.workers {
        let l = WorkerLabel {
            worker: w.id.clone(),
        };
        beats.get_or_create(&l).inc_by(w.beats);
        ring.get_or_create(&l).set(as_i64(w.ring_bytes));
        missed.get_or_create(&l).inc_by(w.missed);
    }
    reg.register(
        "worker_heartbeats",
        "Heartbeat lines read from each worker's telemetry",
        beats,
    );
    reg.register(
        "worker_telemetry_ring_bytes",
        "Bytes each worker's telemetry ring has taken (its end offset)",
        ring,
    );
    reg.register(
        "worker_telemetry_missed_bytes",
        "Telemetry bytes the ring overwrote before the console read them",
        missed,
    );
    reg.register(
        "log_ring_bytes",
        "Bytes the audit log's ring has taken",
        gauge(as_i64(s.log_bytes)),
    );
    reg.register(
        "log_missed_bytes",
        "Audit log bytes overwritten before the console read them",
        counter(s.log_missed),
    );
    let util = Family::<GpuLabel, Gauge>::default();
    let mem_util = Family::<GpuLabel, Gauge>::default();
    let mem_total = Family::<GpuLabel, Gauge>::default();
    let mem_free = Family::<GpuLabel, Gauge>::default();
    let reachable = Family::<GpuLabel, Gauge>::default();
    let temp = Family::<GpuLabel, Gauge<f64, AtomicU64>>::default();
    let mut leases = zeroed(&["active", "waiting", "none"]);
    for g in &s.gpus {
        let l = GpuLabel { gpu: g.id.clone() };
        reachable
            .get_or_create(&l)
            .set(i64::from(g.trouble.is_none()));
        let u = &g.stats["utilisation"];
        if let Some(v) = u["gpu_util_pct"].as_i64() {
            util.get_or_create(&l).set(v);
        }
        if let Some(v) = u["memory_util_pct"].as_i64() {
            mem_util.get_or_create(&l).set(v);
        }
        if let Some(v) = u["memory_free_mb"].as_i64() {
            mem_free.get_or_create(&l).set(v);
        }
        if let Some(v) = g.info["memory_mb"].as_i64() {
            mem_total.get_or_create(&l).set(v);
        }
        if let Some(v) = temperature(&g.stats) {
            temp.get_or_create(&l).set(v);
        }
        let key = if g.holder().is_some() {
            "active"
        } else {
            "none"
        };
        *leases.entry(key.to_owned()).or_default() += 1;
        *leases.entry("waiting".to_owned()).or_default() +=
            as_i64(g.lease["waiting"].as_array().map_or(0, Vec::len) as u64);
    }
    reg.register(
        "gpu_reachable",
        "Whether each GPU's files could be read (its bridge reachable)",
        reachable,
    );
    reg.register(
        "gpu_utilisation_percent",
        "GPU utilisation as the bridge reports it",
        util,
    );
    reg.register(
        "gpu_memory_utilisation_percent",
        "GPU memory controller utilisation as the bridge reports it",
        mem_util,
    );
    reg.register(
        "gpu_memory_total_mib",
        "GPU memory (/gpu/<id>/info memory_mb)",
        mem_total,
    );
    reg.register(
        "gpu_memory_free_mib",
        "Free GPU memory as the bridge reports it",
        mem_free,
    );
    reg.register(
        "gpu_temperature_celsius",
        "GPU core temperature as the bridge reports it (no series where it reports none)",
        temp,
    );
    reg.register(
        "gpu_leases",
        "GPUs with an active lease or none, and lease requests waiting",
        by_state(leases),
    );
    let mut jobs = zeroed(&["QUEUED", "RUNNING", "OK", "ERR"]);
    for j in &s.jobs {
        *jobs.entry(j.state().to_owned()).or_default() += 1;
    }
    reg.register(
        "gpu_jobs",
        "Jobs the console has seen on the GPUs' status files, by latest status",
        by_state(jobs),
    );
    let refusals = Family::<ErrnoLabel, Counter>::default();
    for (errno, n) in &s.refusals {
        refusals
            .get_or_create(&ErrnoLabel {
                errno: errno.clone(),
            })
            .inc_by(*n);
    }
    reg.register(
        "ticket_refusals",
        "ticket-refused audit lines the console has read, by errno",
        refusals,
    );
}

/// A stats line's `temp_c` (top level, from the bridge's telemetry; or
/// inside `utilisation`), when it is a number: `null` or absent is no
/// reading, never 0.
fn temperature(stats: &serde_json::Value) -> Option<f64> {
    stats["temp_c"]
        .as_f64()
        .or_else(|| stats["utilisation"]["temp_c"].as_f64())
}

/// The hive's runners' own figures (`/proc/transport`).
fn transport(reg: &mut Registry, t: &observe::Snapshot) {
    let c = &t.connections;
    reg.register(
        "transport_connections_accepted",
        "Connections the hive's runners accepted",
        counter(c.accepted),
    );
    reg.register(
        "transport_connections_open",
        "Connections open on the hive's runners",
        gauge(as_i64(c.open)),
    );
    reg.register(
        "transport_connections_refused",
        "Connections the hive's runners closed at accept (connection cap reached)",
        counter(c.refused),
    );
    let closed = Family::<ReasonLabel, Counter>::default();
    for (reason, n) in [("timeout", c.timed_out), ("framing", c.framing_errors)] {
        closed
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc_by(n);
    }
    reg.register(
        "transport_connections_closed",
        "Connections the hive's runners closed for idling or a slow frame (timeout) or broken framing",
        closed,
    );
    let requests = Family::<OpOnly, Counter>::default();
    let errors = Family::<OpOnly, Counter>::default();
    let mut latency = ReadHistograms::default();
    for o in &t.ops {
        let l = OpOnly { op: o.op.clone() };
        requests.get_or_create(&l).inc_by(o.requests);
        errors.get_or_create(&l).inc_by(o.errors);
        latency.0.push(ReadHistogram {
            label: l,
            sum: o.sum_ns as f64 / 1e9,
            count: o.replies,
            buckets: buckets(&t.bounds_us, &o.buckets),
        });
    }
    reg.register(
        "transport_requests",
        "9P requests the hive's runners decoded from every client, by message type",
        requests,
    );
    reg.register(
        "transport_errors",
        "Rlerror replies the hive's runners wrote, by the request's message type",
        errors,
    );
    reg.register(
        "transport_request_duration_seconds",
        "Time from a request decoded to its reply written, measured by the hive's runners, by message type",
        latency,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::hive::WorkerView;

    #[test]
    fn a_snapshot_becomes_labelled_series() {
        let mut snap = Snapshot {
            at: 5,
            workers: vec![WorkerView {
                id: "w1".into(),
                beats: 7,
                ..WorkerView::default()
            }],
            ..Snapshot::default()
        };
        snap.refusals.insert("EACCES".into(), 2);
        let text = encode(Some(&snap), &Requests::default());
        assert!(text.contains("cohesix_hive_up 1"), "{text}");
        assert!(
            text.contains("cohesix_worker_heartbeats_total{worker=\"w1\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("cohesix_ticket_refusals_total{errno=\"EACCES\"} 2"),
            "{text}"
        );
        assert!(text.contains("cohesix_gpu_jobs{state=\"OK\"} 0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let c = classic(&text);
        assert!(
            c.contains("# TYPE cohesix_worker_heartbeats_total counter\n"),
            "{c}"
        );
        assert!(
            c.contains("# HELP cohesix_worker_heartbeats_total Heartbeat"),
            "{c}"
        );
        assert!(c.contains("# TYPE cohesix_hive_up gauge\n"), "{c}");
        assert!(!c.contains("# EOF"), "{c}");
        assert!(
            !text.contains("transport_"),
            "no /proc/transport, no series: {text}"
        );
        let down = encode(None, &Requests::default());
        assert!(down.contains("cohesix_hive_up 0"), "{down}");
        assert!(!down.contains("worker_heartbeats"), "{down}");
    }

    #[test]
    fn a_temperature_is_a_series_only_when_the_bridge_reports_one() {
        // A stats line as the bridge's NVML telemetry writes it.
        let line = r#"{"gpu_id":"0","at_ms":5,"health":"ok","util_gpu_pct":7,"mem_used_mib":512,"temp_c":61,"power_w":71.5,"utilisation":{"gpu_util_pct":7}}"#;
        let gpu = |stats: &str| crate::console::hive::GpuView {
            id: "0".into(),
            info: serde_json::Value::Null,
            lease: serde_json::Value::Null,
            stats: serde_json::from_str(stats).expect("json"),
            trouble: None,
        };
        let mut snap = Snapshot {
            at: 5,
            gpus: vec![gpu(line)],
            ..Snapshot::default()
        };
        let text = encode(Some(&snap), &Requests::default());
        assert!(
            text.contains("cohesix_gpu_temperature_celsius{gpu=\"0\"} 61.0\n"),
            "{text}"
        );
        snap.gpus = vec![gpu(&line.replace("61", "null"))];
        let text = encode(Some(&snap), &Requests::default());
        assert!(!text.contains("cohesix_gpu_temperature_celsius{"), "{text}");
        // The older place, inside `utilisation`, is read too.
        snap.gpus = vec![gpu(r#"{"utilisation":{"temp_c":40.5}}"#)];
        let text = encode(Some(&snap), &Requests::default());
        assert!(
            text.contains("cohesix_gpu_temperature_celsius{gpu=\"0\"} 40.5\n"),
            "{text}"
        );
    }

    #[test]
    fn the_hives_transport_figures_become_counters_and_a_histogram() {
        let file = "secure9p-transport 1\n\
            connections.accepted 9\nconnections.open 2\nconnections.refused 1\n\
            connections.timed_out 3\nconnections.framing_errors 0\n\
            latency.le_us 10 100 1000\n\
            op Twalk requests 12 errors 2 replies 11 sum_ns 2500000 buckets 1 6 10 11\n";
        let t = observe::Snapshot::parse(file).expect("parses");
        let snap = Snapshot {
            at: 5,
            transport: Some(t),
            ..Snapshot::default()
        };
        let text = encode(Some(&snap), &Requests::default());
        for want in [
            "cohesix_transport_requests_total{op=\"Twalk\"} 12\n",
            "cohesix_transport_errors_total{op=\"Twalk\"} 2\n",
            "# TYPE cohesix_transport_request_duration_seconds histogram\n",
            "cohesix_transport_request_duration_seconds_sum{op=\"Twalk\"} 0.0025\n",
            "cohesix_transport_request_duration_seconds_count{op=\"Twalk\"} 11\n",
            "cohesix_transport_request_duration_seconds_bucket{le=\"0.00001\",op=\"Twalk\"} 1\n",
            "cohesix_transport_request_duration_seconds_bucket{le=\"0.0001\",op=\"Twalk\"} 6\n",
            "cohesix_transport_request_duration_seconds_bucket{le=\"0.001\",op=\"Twalk\"} 10\n",
            "cohesix_transport_request_duration_seconds_bucket{le=\"+Inf\",op=\"Twalk\"} 11\n",
            "cohesix_transport_connections_accepted_total 9\n",
            "cohesix_transport_connections_open 2\n",
            "cohesix_transport_connections_refused_total 1\n",
            "cohesix_transport_connections_closed_total{reason=\"timeout\"} 3\n",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
    }
}
