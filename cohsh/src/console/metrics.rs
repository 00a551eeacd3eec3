//! `/metrics`: a [`Snapshot`] and the console's own request counters in
//! the Prometheus text format (`prometheus-client`'s OpenMetrics encoder,
//! which Prometheus scrapes and `promtool check metrics` accepts). Gauges
//! and counters are built fresh from each snapshot: the hive's files are
//! the source of truth, the console keeps no totals of its own except for
//! its own requests.

use super::hive::{Requests, Snapshot};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

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
        "The console's 9P requests to the hive, by operation and result",
        requests.count.clone(),
    );
    reg.register(
        "console_request_duration_seconds",
        "Latency of the console's 9P requests to the hive, by operation",
        requests.latency.clone(),
    );
    if let Some(s) = snap.filter(|s| s.at != 0) {
        hive(&mut reg, s);
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
        let down = encode(None, &Requests::default());
        assert!(down.contains("cohesix_hive_up 0"), "{down}");
        assert!(!down.contains("worker_heartbeats"), "{down}");
    }
}
