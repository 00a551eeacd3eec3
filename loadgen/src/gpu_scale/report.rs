//! What a scale run measured, for people (`Display`) and for scripts
//! (`serde` JSON), and the checks it made of what the docs promise (every
//! lease granted; after a `kill -9`, exactly the dead bridges' GPUs fail
//! and every other GPU keeps leasing).

use super::timing::{Summary, human};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The machine the run was made on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// CPUs this process may use.
    pub cpus: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// 1-minute load average at the start, from `/proc/loadavg`.
    pub loadavg_start: Option<f64>,
    /// 1-minute load average at the end.
    pub loadavg_end: Option<f64>,
}

/// A process's memory, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// `VmHWM` (the peak over its life), KiB.
    pub hwm_kib: u64,
}

/// Leases of one kind, each released before the next.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LeaseRun {
    /// `any` (the hive places it) or `gpu` (a named GPU, round robin).
    pub kind: String,
    /// Leases asked for.
    pub asked: usize,
    /// Leases granted.
    pub granted: usize,
    /// Refusals by errno name.
    pub refused: BTreeMap<String, usize>,
    /// The lease's `Twrite` (the hive asking the bridge and spawning the
    /// worker), granted leases only.
    pub write: Option<Summary>,
    /// The whole `/queen/ctl` exchange of a granted lease (walk, open,
    /// write, read, clunk).
    pub exchange: Option<Summary>,
    /// The release's `Twrite`.
    pub release: Option<Summary>,
    /// Releases refused.
    pub release_refused: usize,
    /// Granted leases by the bridge (prefix) of the GPU they got.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_bridge: BTreeMap<String, usize>,
}

/// One fleet size, with a fresh NineDoor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Bridges NineDoor was started with.
    pub bridges: usize,
    /// GPUs it listed under `/gpu`.
    pub gpus: usize,
    /// From starting NineDoor to every GPU listed, seconds.
    pub listed_after_s: f64,
    /// Its memory after every GPU was listed and the settle time passed.
    pub idle: Memory,
    /// `VmRSS` above the run with no bridge, per bridge, KiB.
    pub rss_per_bridge_kib: Option<f64>,
    /// The lease runs (none without a bridge).
    pub leases: Vec<LeaseRun>,
    /// Its memory after the lease runs.
    pub after_leases: Option<Memory>,
}

/// A listing command timed as a whole process (start, connect, attach,
/// reads, exit).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing {
    /// What was run (`cohsh ls /gpu`).
    pub command: String,
    /// Runs timed.
    pub runs: usize,
    /// Runs that exited 0.
    pub succeeded: usize,
    /// Output lines of the last run (entries or table rows).
    pub lines: usize,
    /// Lines of the last run that say `EHOSTUNREACH`.
    pub unreachable_lines: usize,
    /// Wall time of the runs.
    pub wall: Option<Summary>,
}

/// A named lease of every GPU of the fleet after the kill.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Sweep {
    /// GPUs asked for.
    pub asked: usize,
    /// Granted on a live bridge.
    pub granted_live: usize,
    /// Granted on a killed bridge (must be 0).
    pub granted_killed: usize,
    /// Refusals on a killed bridge, by errno name.
    pub refused_killed: BTreeMap<String, usize>,
    /// Refusals on a live bridge, by errno name (must be empty).
    pub refused_live: BTreeMap<String, usize>,
    /// Bridges (prefixes) with at least one refusal.
    pub refused_bridges: Vec<String>,
    /// The refused leases' `Twrite`: how fast a dead bridge says so.
    pub refused_write: Option<Summary>,
    /// The granted leases' `Twrite`.
    pub granted_write: Option<Summary>,
}

/// "Any GPU" leases of full memory, held until the hive has none left.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fill {
    /// Memory of each lease, MiB (a whole GPU's).
    pub mem_mb: u32,
    /// Leases held when the hive refused the next.
    pub held: usize,
    /// Distinct GPUs among them.
    pub distinct: usize,
    /// Of them on killed bridges (must be 0).
    pub on_killed: usize,
    /// The refusal that ended the fill (errno name).
    pub stopped_by: Option<String>,
    /// What the hive said with it.
    pub stopped_reply: Option<String>,
    /// Releases of the held leases refused.
    pub release_refused: usize,
}

/// The `kill -9` test on the full fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KillTest {
    /// The bridges killed (prefixes).
    pub killed: Vec<String>,
    /// Their GPUs.
    pub killed_gpus: usize,
    /// GPUs on live bridges.
    pub live_gpus: usize,
    /// Every GPU leased by name once.
    pub sweep: Sweep,
    /// "Any GPU" leases, each released.
    pub any: LeaseRun,
    /// Of those, placed on a killed bridge (must be 0).
    pub any_on_killed: usize,
    /// Every live GPU held at once.
    pub fill: Fill,
    /// `cohsh gpu top --once` after the kill.
    pub top: Listing,
    /// `cohsh ls /gpu` after the kill.
    pub ls: Listing,
}

/// One promise checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What must hold.
    pub what: String,
    /// Whether it did.
    pub passed: bool,
    /// What was seen.
    pub seen: String,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleReport {
    /// The machine.
    pub machine: Machine,
    /// Bridges in the full fleet.
    pub bridges: usize,
    /// Mock GPUs per bridge.
    pub gpus_per_bridge: usize,
    /// Leases per kind and step.
    pub leases: usize,
    /// Memory of each measured lease, MiB.
    pub mem_mb: u32,
    /// From starting the bridges to all of them listening, seconds.
    pub bridges_up_s: f64,
    /// Each fleet size, ascending, the first without bridges.
    pub steps: Vec<Step>,
    /// The listing commands with the full fleet.
    pub listings: Vec<Listing>,
    /// The kill test, when one was made.
    pub kill: Option<KillTest>,
    /// The promises checked.
    pub checks: Vec<Check>,
}

impl ScaleReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| String::from("-"), f)
}

fn counts(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return String::from("none");
    }
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
    parts.join(", ")
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} {}/{} ok, {} lines",
            self.command, self.succeeded, self.runs, self.lines
        )?;
        if self.unreachable_lines > 0 {
            write!(f, " ({} EHOSTUNREACH)", self.unreachable_lines)?;
        }
        match self.wall {
            Some(w) => write!(
                f,
                "  min {}  median {}  max {}",
                human(w.min_us),
                human(w.p50_us),
                human(w.max_us)
            ),
            None => Ok(()),
        }
    }
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.machine;
        writeln!(
            f,
            "gpu-scale: {} bridges x {} mock GPUs ({} GPUs), {} leases per kind and step of {} MiB",
            self.bridges,
            self.gpus_per_bridge,
            self.bridges * self.gpus_per_bridge,
            self.leases,
            self.mem_mb
        )?;
        writeln!(
            f,
            "  machine    {} CPUs, {}; load average {} at the start, {} at the end",
            m.cpus,
            m.cpu_model,
            opt(m.loadavg_start, |l| format!("{l:.2}")),
            opt(m.loadavg_end, |l| format!("{l:.2}"))
        )?;
        writeln!(
            f,
            "  bridges    all {} listening after {:.2} s",
            self.bridges, self.bridges_up_s
        )?;
        writeln!(f, "  NineDoor's memory (fresh process per fleet size)")?;
        writeln!(
            f,
            "    bridges  GPUs  listed after  VmRSS      VmHWM      RSS/bridge  after leases RSS / HWM"
        )?;
        for s in &self.steps {
            writeln!(
                f,
                "    {:>7}  {:>4}  {:>10.2} s  {:>9}  {:>9}  {:>10}  {}",
                s.bridges,
                s.gpus,
                s.listed_after_s,
                mib(s.idle.rss_kib),
                mib(s.idle.hwm_kib),
                opt(s.rss_per_bridge_kib, |k| format!("{k:.0} KiB")),
                opt(s.after_leases, |a| format!(
                    "{} / {}",
                    mib(a.rss_kib),
                    mib(a.hwm_kib)
                )),
            )?;
        }
        writeln!(
            f,
            "  leases through /queen/ctl, each released (Twrite; whole exchange; release)"
        )?;
        for s in self.steps.iter().filter(|s| !s.leases.is_empty()) {
            for l in &s.leases {
                writeln!(
                    f,
                    "    {:>3} bridges  {:<3}  {}/{} granted (refused: {})",
                    s.bridges,
                    l.kind,
                    l.granted,
                    l.asked,
                    counts(&l.refused)
                )?;
                writeln!(
                    f,
                    "        write {}; exchange {}; release {}",
                    opt(l.write, |w| w.to_string()),
                    opt(l.exchange, |w| w.to_string()),
                    opt(l.release, |w| w.to_string()),
                )?;
            }
        }
        writeln!(
            f,
            "  listing with {} GPUs (wall time of each cohsh process)",
            self.bridges * self.gpus_per_bridge
        )?;
        for l in &self.listings {
            writeln!(f, "    {l}")?;
        }
        if let Some(k) = &self.kill {
            writeln!(
                f,
                "  kill -9 of {} bridges ({}): {} GPUs",
                k.killed.len(),
                k.killed.join(" "),
                k.killed_gpus
            )?;
            let s = &k.sweep;
            writeln!(
                f,
                "    each GPU by name  {} asked: {} granted on live bridges, {} on killed ones",
                s.asked, s.granted_live, s.granted_killed
            )?;
            writeln!(
                f,
                "                      refused on killed bridges: {}; on live ones: {}",
                counts(&s.refused_killed),
                counts(&s.refused_live)
            )?;
            writeln!(
                f,
                "                      bridges refusing: {}",
                s.refused_bridges.join(" ")
            )?;
            writeln!(
                f,
                "                      refused write {}; granted write {}",
                opt(s.refused_write, |w| w.to_string()),
                opt(s.granted_write, |w| w.to_string())
            )?;
            writeln!(
                f,
                "    any GPU           {}/{} granted, {} on killed bridges (refused: {}); write {}",
                k.any.granted,
                k.any.asked,
                k.any_on_killed,
                counts(&k.any.refused),
                opt(k.any.write, |w| w.to_string())
            )?;
            let fill = &k.fill;
            writeln!(
                f,
                "    fill ({} MiB each) {} held on {} distinct GPUs, {} on killed bridges; then {}{}",
                fill.mem_mb,
                fill.held,
                fill.distinct,
                fill.on_killed,
                fill.stopped_by.as_deref().unwrap_or("-"),
                fill.stopped_reply
                    .as_deref()
                    .filter(|r| !r.is_empty())
                    .map_or_else(String::new, |r| format!(" ({r})"))
            )?;
            writeln!(f, "    {}", k.top)?;
            writeln!(f, "    {}", k.ls)?;
        }
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        writeln!(
            f,
            "  checks     {} passed, {failed} failed",
            self.checks.len() - failed
        )?;
        for c in &self.checks {
            let mark = if c.passed { "PASS" } else { "FAIL" };
            writeln!(f, "    {mark}  {}: {}", c.what, c.seen)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_says_how_many_lines_and_how_fast() {
        let l = Listing {
            command: String::from("cohsh gpu top --once"),
            runs: 3,
            succeeded: 3,
            lines: 401,
            unreachable_lines: 40,
            wall: Summary::of(&[std::time::Duration::from_millis(80)]),
        };
        assert_eq!(
            l.to_string(),
            "cohsh gpu top --once     3/3 ok, 401 lines (40 EHOSTUNREACH)  \
             min 80.00 ms  median 80.00 ms  max 80.00 ms"
        );
    }

    #[test]
    fn refusals_are_counted_by_name() {
        let mut m = BTreeMap::new();
        assert_eq!(counts(&m), "none");
        m.insert(String::from("EHOSTUNREACH"), 40);
        m.insert(String::from("EBUSY"), 1);
        assert_eq!(counts(&m), "EBUSY 1, EHOSTUNREACH 40");
    }
}
