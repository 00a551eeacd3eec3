//! The scale run itself: start the bridges, then for each fleet size a
//! fresh NineDoor linked to that many of them (its memory read once every
//! GPU is listed, then the lease runs), the listings with the full fleet,
//! and the kill test. The run's directory (bridge key, hive config, every
//! process's output) is removed at the end unless kept.

use super::ScaleError;
use super::config::ScaleConfig;
use super::procs::Spawned;
use super::queen::{CtlReply, Queen};
use super::report::{
    Check, Fill, KillTest, LeaseRun, Listing, Machine, Memory, ScaleReport, Step, Sweep,
};
use super::timing::Summary;
use crate::memwatch::parse_status;
use ninedoor::secure9p_core::FsError;
use ninedoor::{ANY_GPU, Command, errno_name};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Lifetime of each measured lease, seconds: longer than any run, so no
/// lease expires while it is measured.
const LEASE_TTL_S: u32 = 600;
/// How often `/gpu` is listed while NineDoor links its bridges.
const LIST_POLL: Duration = Duration::from_millis(20);

/// A bridge of the fleet.
struct Bridge {
    /// `h<N>`, its GPUs' prefix in the hive.
    prefix: String,
    /// Where it listens.
    addr: String,
    proc: Spawned,
}

/// What the whole run shares.
struct Fleet {
    dir: tempfile::TempDir,
    key: PathBuf,
    hive_config: PathBuf,
    bridges: Vec<Bridge>,
    ninedoor: PathBuf,
    cohsh: PathBuf,
}

/// A NineDoor of one fleet size and the Queen's session with it.
struct Hive {
    door: Spawned,
    addr: SocketAddr,
    ticket_file: PathBuf,
    queen: Queen,
    gpus: Vec<String>,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> ScaleError + '_ {
    move |source| ScaleError::Io {
        what: what.to_owned(),
        source,
    }
}

fn binary(dir: &Path, name: &str) -> Result<PathBuf, ScaleError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ScaleError::MissingBinary(path))
    }
}

/// The errno name of a refusal, as the audit log spells it.
fn refusal_name(e: FsError) -> String {
    errno_name(e).map_or_else(|| format!("errno {}", e.errno()), str::to_owned)
}

/// The bridge a hive GPU id (`h7-3`) belongs to (`h7`).
pub fn bridge_of(gpu: &str) -> &str {
    gpu.rsplit_once('-').map_or(gpu, |(prefix, _)| prefix)
}

fn machine(loadavg_start: Option<f64>) -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| String::from("unknown CPU"));
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        loadavg_start,
        loadavg_end: None,
    }
}

/// The 1-minute load average.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn memory(pid: u32) -> Result<Memory, ScaleError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let s = parse_status(&text).ok_or_else(|| ScaleError::Io {
        what: path.clone(),
        source: std::io::Error::other("no VmRSS/VmHWM"),
    })?;
    Ok(Memory {
        rss_kib: s.rss_kib,
        hwm_kib: s.hwm_kib,
    })
}

/// Writes a fresh bridge key (64 hex digits, mode 0600).
fn write_key(path: &Path) -> Result<(), ScaleError> {
    ninedoor::host::write_new_key(path)
        .map(|_| ())
        .map_err(|e| ScaleError::Io {
            what: String::from("writing the bridge key"),
            source: std::io::Error::other(e.to_string()),
        })
}

impl Fleet {
    async fn start(config: &ScaleConfig, say: &mut dyn FnMut(&str)) -> Result<Fleet, ScaleError> {
        let ninedoor = binary(&config.bin_dir, "ninedoor")?;
        let cohsh = binary(&config.bin_dir, "cohsh")?;
        let bridge_bin = binary(&config.bin_dir, "gpu-bridge-host")?;
        let dir = tempfile::Builder::new()
            .prefix("gpu-scale-")
            .tempdir()
            .map_err(io("making the run's directory"))?;
        let key = dir.path().join("bridge.key");
        write_key(&key)?;
        let hive_config = dir.path().join("ninedoor.toml");
        let toml = format!("[hive]\nmax_workers = {}\n", config.max_workers());
        std::fs::write(&hive_config, toml).map_err(io("writing the hive's config"))?;
        say(&format!(
            "starting {} gpu-bridge-host --mock --gpus {} (directory {})",
            config.bridges,
            config.gpus,
            dir.path().display()
        ));
        let gpus = config.gpus.to_string();
        let mut started = Vec::with_capacity(config.bridges);
        for n in 1..=config.bridges {
            let args = [
                "--mock",
                "--gpus",
                gpus.as_str(),
                "--listen",
                "127.0.0.1:0",
                "--ticket-key-file",
            ];
            let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
            args.push(key.as_os_str());
            let name = format!("bridge h{n}");
            started.push(Spawned::start(
                &name,
                &format!("h{n}"),
                &bridge_bin,
                &args,
                dir.path(),
            )?);
        }
        let mut bridges = Vec::with_capacity(started.len());
        for (i, mut proc) in started.into_iter().enumerate() {
            let addr = proc.wait_line("listening on ", config.timeout).await?;
            bridges.push(Bridge {
                prefix: format!("h{}", i + 1),
                addr,
                proc,
            });
        }
        Ok(Fleet {
            dir,
            key,
            hive_config,
            bridges,
            ninedoor,
            cohsh,
        })
    }

    /// A fresh NineDoor linked to the first `n` bridges, once it lists
    /// every one of their GPUs; and how long that took, in seconds.
    async fn hive(&self, n: usize, config: &ScaleConfig) -> Result<(Hive, f64), ScaleError> {
        let ticket_file = self.dir.path().join(format!("queen-{n}.ticket"));
        let mut args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--ticket-file",
            &ticket_file.to_string_lossy(),
            "--gpu-bridge-key",
            &self.key.to_string_lossy(),
            "--config",
            &self.hive_config.to_string_lossy(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for b in self.bridges.iter().take(n) {
            args.push(String::from("--gpu-bridge"));
            args.push(format!("{}={}", b.prefix, b.addr));
        }
        let start = Instant::now();
        let name = format!("ninedoor with {n} bridges");
        let file = format!("ninedoor-{n}");
        let mut door = Spawned::start(&name, &file, &self.ninedoor, &args, self.dir.path())?;
        let addr = door
            .wait_line("ninedoor listening on tcp ", config.timeout)
            .await?;
        let addr: SocketAddr = addr.parse().map_err(|e| ScaleError::Start {
            name: name.clone(),
            why: format!("listening on {addr:?}, not an address: {e}"),
        })?;
        door.wait_line("ninedoor queen ticket in ", config.timeout)
            .await?;
        let ticket = std::fs::read_to_string(&ticket_file).map_err(io("reading the ticket"))?;
        let ticket = ticket.lines().next().unwrap_or_default().trim().to_owned();
        let queen = Queen::attach(addr, &ticket, config.timeout).await?;
        let want = n * config.gpus;
        let gpus = loop {
            let gpus = queen.gpus().await?;
            if gpus.len() >= want {
                break gpus;
            }
            if start.elapsed() > config.timeout {
                return Err(ScaleError::Timeout {
                    what: format!("{name}: {} of {want} GPUs listed", gpus.len()),
                    after: config.timeout,
                });
            }
            tokio::time::sleep(LIST_POLL).await;
        };
        let listed = start.elapsed().as_secs_f64();
        let hive = Hive {
            door,
            addr,
            ticket_file,
            queen,
            gpus,
        };
        Ok((hive, listed))
    }
}

/// Where a run of leases goes.
#[derive(Debug, Clone, Copy)]
enum Place<'a> {
    /// `"gpu":"any"`: the hive chooses.
    Any,
    /// These GPUs, round robin.
    Named(&'a [String]),
}

fn lease(gpu: &str, worker: String, mem_mb: u32) -> Command {
    Command::Lease {
        gpu: gpu.to_owned(),
        worker: Some(worker),
        mem_mb,
        streams: None,
        ttl_s: LEASE_TTL_S,
        priority: None,
    }
}

fn release(gpu: &str) -> Command {
    Command::Release {
        gpu: gpu.to_owned(),
        worker: None,
    }
}

/// The GPU a granted lease got (its reply's `gpu`).
fn granted_gpu(reply: &CtlReply) -> Option<String> {
    let v = reply.result.as_ref().ok()?;
    v["gpu"].as_str().map(str::to_owned)
}

/// `count` leases to `place`, each released before the next; worker ids
/// are `tag` and a number.
async fn lease_run(
    queen: &Queen,
    place: Place<'_>,
    count: usize,
    mem_mb: u32,
    tag: &str,
) -> Result<LeaseRun, ScaleError> {
    let mut run = LeaseRun {
        kind: String::from(match place {
            Place::Any => "any",
            Place::Named(_) => "gpu",
        }),
        asked: count,
        ..LeaseRun::default()
    };
    let (mut writes, mut exchanges, mut releases) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..count {
        let gpu = match place {
            Place::Any => ANY_GPU,
            Place::Named(gpus) => match gpus.get(i % gpus.len().max(1)) {
                Some(g) => g.as_str(),
                None => break,
            },
        };
        let reply = queen.ctl(&lease(gpu, format!("{tag}{i}"), mem_mb)).await?;
        let refusal = reply.result.as_ref().err().map(|r| r.error);
        if let Some(e) = refusal {
            *run.refused.entry(refusal_name(e)).or_default() += 1;
            continue;
        }
        let Some(got) = granted_gpu(&reply) else {
            *run.refused
                .entry(String::from("no gpu in the reply"))
                .or_default() += 1;
            continue;
        };
        run.granted += 1;
        writes.push(reply.write);
        exchanges.push(reply.exchange);
        *run.by_bridge.entry(bridge_of(&got).to_owned()).or_default() += 1;
        let released = queen.ctl(&release(&got)).await?;
        if released.result.is_ok() {
            releases.push(released.write);
        } else {
            run.release_refused += 1;
        }
    }
    run.write = Summary::of(&writes);
    run.exchange = Summary::of(&exchanges);
    run.release = Summary::of(&releases);
    Ok(run)
}

/// Runs `cohsh` with `args` against `hive` `runs` times; counts the last
/// run's stdout lines and those saying `EHOSTUNREACH`.
async fn listing(
    cohsh: &Path,
    hive: &Hive,
    args: &[&str],
    runs: usize,
) -> Result<Listing, ScaleError> {
    let mut walls = Vec::with_capacity(runs);
    let (mut succeeded, mut lines, mut unreachable) = (0, 0, 0);
    for _ in 0..runs {
        let mut cmd = std::process::Command::new(cohsh);
        cmd.arg("--addr")
            .arg(hive.addr.to_string())
            .arg("--ticket-file")
            .arg(&hive.ticket_file)
            .args(args);
        let start = Instant::now();
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| ScaleError::Io {
                what: String::from("running cohsh"),
                source: std::io::Error::other(e),
            })?
            .map_err(io("running cohsh"))?;
        walls.push(start.elapsed());
        if out.status.success() {
            succeeded += 1;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        lines = text.lines().count();
        unreachable = text.lines().filter(|l| l.contains("EHOSTUNREACH")).count();
    }
    Ok(Listing {
        command: format!("cohsh {}", args.join(" ")),
        runs,
        succeeded,
        lines,
        unreachable_lines: unreachable,
        wall: Summary::of(&walls),
    })
}

/// Leases every GPU by name once, released each; sorted by whether its
/// bridge was killed.
async fn sweep(
    queen: &Queen,
    gpus: &[String],
    killed: &BTreeSet<String>,
    mem_mb: u32,
) -> Result<Sweep, ScaleError> {
    let mut s = Sweep {
        asked: gpus.len(),
        ..Sweep::default()
    };
    let (mut refused_w, mut granted_w) = (Vec::new(), Vec::new());
    let mut refusing = BTreeSet::new();
    for (i, gpu) in gpus.iter().enumerate() {
        let dead = killed.contains(bridge_of(gpu));
        let reply = queen.ctl(&lease(gpu, format!("k{i}"), mem_mb)).await?;
        match &reply.result {
            Ok(_) => {
                granted_w.push(reply.write);
                if dead {
                    s.granted_killed += 1;
                } else {
                    s.granted_live += 1;
                }
                queen.ctl(&release(gpu)).await?;
            }
            Err(r) => {
                refused_w.push(reply.write);
                refusing.insert(bridge_of(gpu).to_owned());
                let by = if dead {
                    &mut s.refused_killed
                } else {
                    &mut s.refused_live
                };
                *by.entry(refusal_name(r.error)).or_default() += 1;
            }
        }
    }
    s.refused_bridges = sort_bridges(refusing);
    s.refused_write = Summary::of(&refused_w);
    s.granted_write = Summary::of(&granted_w);
    Ok(s)
}

/// Bridge prefixes in fleet order (`h9` before `h10`).
fn sort_bridges(set: BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.into_iter().collect();
    v.sort_by_key(|p| (p.len(), p.clone()));
    v
}

/// Holds "any GPU" leases of a whole GPU's memory until the hive refuses
/// one, then releases them all.
async fn fill(
    queen: &Queen,
    gpus: &[String],
    killed: &BTreeSet<String>,
) -> Result<Fill, ScaleError> {
    let live = gpus.iter().find(|g| !killed.contains(bridge_of(g)));
    let info = match live {
        Some(g) => queen.read(&format!("gpu/{g}/info")).await?,
        None => Vec::new(),
    };
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap_or_default();
    let mem_mb = info["memory_mb"]
        .as_u64()
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(1);
    let mut f = Fill {
        mem_mb,
        ..Fill::default()
    };
    let mut held = Vec::new();
    for i in 0..=gpus.len() {
        let reply = queen.ctl(&lease(ANY_GPU, format!("f{i}"), mem_mb)).await?;
        match (&reply.result, granted_gpu(&reply)) {
            (Ok(_), Some(gpu)) => held.push(gpu),
            (Ok(_), None) => {
                f.stopped_by = Some(String::from("a grant without a gpu"));
                break;
            }
            (Err(r), _) => {
                f.stopped_by = Some(refusal_name(r.error));
                f.stopped_reply = Some(r.reply.clone());
                break;
            }
        }
    }
    f.held = held.len();
    f.distinct = held.iter().collect::<BTreeSet<_>>().len();
    f.on_killed = held
        .iter()
        .filter(|g| killed.contains(bridge_of(g)))
        .count();
    for gpu in &held {
        if queen.ctl(&release(gpu)).await?.result.is_err() {
            f.release_refused += 1;
        }
    }
    Ok(f)
}

async fn kill_test(
    fleet: &mut Fleet,
    hive: &Hive,
    config: &ScaleConfig,
    say: &mut dyn FnMut(&str),
) -> Result<KillTest, ScaleError> {
    let mut killed = BTreeSet::new();
    for n in config.killed() {
        if let Some(b) = fleet.bridges.get_mut(n - 1) {
            b.proc.kill()?;
            killed.insert(b.prefix.clone());
        }
    }
    let names = sort_bridges(killed.clone());
    say(&format!("killed (SIGKILL) {}", names.join(" ")));
    let gpus = &hive.gpus;
    let killed_gpus = gpus
        .iter()
        .filter(|g| killed.contains(bridge_of(g)))
        .count();
    let sweep = sweep(&hive.queen, gpus, &killed, config.mem_mb).await?;
    say(&format!(
        "each GPU by name: {} granted, {} refused",
        sweep.granted_live + sweep.granted_killed,
        sweep.asked - sweep.granted_live - sweep.granted_killed
    ));
    let any = lease_run(&hive.queen, Place::Any, config.leases, config.mem_mb, "ka").await?;
    let any_on_killed = any
        .by_bridge
        .iter()
        .filter(|(b, _)| killed.contains(*b))
        .map(|(_, n)| n)
        .sum();
    let fill = fill(&hive.queen, gpus, &killed).await?;
    say(&format!(
        "fill: {} held, then {:?}",
        fill.held, fill.stopped_by
    ));
    let top = listing(
        &fleet.cohsh,
        hive,
        &["gpu", "top", "--once"],
        config.repeats,
    )
    .await?;
    let ls = listing(&fleet.cohsh, hive, &["ls", "/gpu"], config.repeats).await?;
    Ok(KillTest {
        killed: names,
        killed_gpus,
        live_gpus: gpus.len() - killed_gpus,
        sweep,
        any,
        any_on_killed,
        fill,
        top,
        ls,
    })
}

fn check(what: &str, passed: bool, seen: String) -> Check {
    Check {
        what: what.to_owned(),
        passed,
        seen,
    }
}

/// What the docs promise, checked against what the run saw.
fn checks(report: &ScaleReport) -> Vec<Check> {
    let total = report.bridges * report.gpus_per_bridge;
    let runs: Vec<&LeaseRun> = report.steps.iter().flat_map(|s| &s.leases).collect();
    let refused: usize = runs.iter().map(|r| r.asked - r.granted).sum();
    let release_refused: usize = runs.iter().map(|r| r.release_refused).sum();
    let asked: usize = runs.iter().map(|r| r.asked).sum();
    let mut c = vec![check(
        "every lease granted and released at every fleet size",
        refused == 0 && release_refused == 0,
        format!("{asked} asked, {refused} refused, {release_refused} releases refused"),
    )];
    for l in &report.listings {
        let want = if l.command.contains("top") {
            total + 1
        } else {
            total
        };
        c.push(check(
            &format!("{} shows every GPU", l.command),
            l.succeeded == l.runs && l.lines == want && l.unreachable_lines == 0,
            format!(
                "{}/{} runs ok, {} lines (want {want})",
                l.succeeded, l.runs, l.lines
            ),
        ));
    }
    let Some(k) = &report.kill else {
        return c;
    };
    let s = &k.sweep;
    let refused_killed: usize = s.refused_killed.values().sum();
    c.push(check(
        "after the kill exactly the killed bridges' GPUs fail",
        s.refused_bridges == k.killed
            && refused_killed == k.killed_gpus
            && s.granted_killed == 0
            && s.refused_live.is_empty()
            && s.granted_live == k.live_gpus,
        format!(
            "{refused_killed} of {} killed GPUs refused, {} of {} live GPUs granted, refusing bridges {}",
            k.killed_gpus,
            s.granted_live,
            k.live_gpus,
            s.refused_bridges.join(" ")
        ),
    ));
    c.push(check(
        "they fail with EHOSTUNREACH",
        s.refused_killed.keys().all(|e| e == "EHOSTUNREACH") && refused_killed > 0,
        format!("{:?}", s.refused_killed),
    ));
    c.push(check(
        "any-GPU leases after the kill are all granted, none on a killed bridge",
        k.any.granted == k.any.asked && k.any_on_killed == 0,
        format!(
            "{}/{} granted, {} on killed bridges",
            k.any.granted, k.any.asked, k.any_on_killed
        ),
    ));
    let f = &k.fill;
    c.push(check(
        "every live GPU can be held at once, then ENOSPC",
        f.held == k.live_gpus
            && f.distinct == f.held
            && f.on_killed == 0
            && f.stopped_by.as_deref() == Some("ENOSPC")
            && f.release_refused == 0,
        format!(
            "{} held on {} GPUs ({} on killed bridges), then {}",
            f.held,
            f.distinct,
            f.on_killed,
            f.stopped_by.as_deref().unwrap_or("-")
        ),
    ));
    c.push(check(
        "gpu top after the kill shows the killed GPUs EHOSTUNREACH, the rest read",
        k.top.lines == total + 1 && k.top.unreachable_lines == k.killed_gpus,
        format!(
            "{} lines, {} EHOSTUNREACH",
            k.top.lines, k.top.unreachable_lines
        ),
    ));
    c.push(check(
        "ls /gpu after the kill still lists every GPU",
        k.ls.succeeded == k.ls.runs && k.ls.lines == total,
        format!("{} entries", k.ls.lines),
    ));
    c
}

/// Makes the whole run; `say` hears what it is doing as it goes. Returns
/// the report (its checks say whether the promises held), or why the run
/// could not be made.
pub async fn run(
    config: &ScaleConfig,
    keep_dir: bool,
    say: &mut dyn FnMut(&str),
) -> Result<ScaleReport, ScaleError> {
    config.validate()?;
    let mut machine = machine(loadavg());
    let started = Instant::now();
    let mut fleet = Fleet::start(config, say).await?;
    let bridges_up_s = started.elapsed().as_secs_f64();
    say(&format!(
        "{} bridges listening after {bridges_up_s:.2} s",
        fleet.bridges.len()
    ));
    if keep_dir {
        say(&format!("keeping {}", fleet.dir.path().display()));
    }
    let mut report = ScaleReport {
        machine: machine.clone(),
        bridges: config.bridges,
        gpus_per_bridge: config.gpus,
        leases: config.leases,
        mem_mb: config.mem_mb,
        bridges_up_s,
        steps: Vec::new(),
        listings: Vec::new(),
        kill: None,
        checks: Vec::new(),
    };
    let mut baseline: Option<u64> = None;
    let outcome = async {
        for n in config.memory_steps() {
            let (hive, listed) = fleet.hive(n, config).await?;
            say(&format!(
                "ninedoor with {n} bridges: {} GPUs listed after {listed:.2} s; settling {:?}",
                hive.gpus.len(),
                config.settle
            ));
            tokio::time::sleep(config.settle).await;
            let idle = memory(hive.door.pid())?;
            let base = *baseline.get_or_insert(idle.rss_kib);
            let mut step = Step {
                bridges: n,
                gpus: hive.gpus.len(),
                listed_after_s: listed,
                idle,
                rss_per_bridge_kib: (n > 0).then(|| (idle.rss_kib as f64 - base as f64) / n as f64),
                leases: Vec::new(),
                after_leases: None,
            };
            if n > 0 {
                let q = &hive.queen;
                let any_prefix = format!("a{n}-");
                let any = lease_run(q, Place::Any, config.leases, config.mem_mb, &any_prefix);
                step.leases.push(any.await?);
                let named = Place::Named(&hive.gpus);
                let named_prefix = format!("g{n}-");
                let named = lease_run(q, named, config.leases, config.mem_mb, &named_prefix);
                step.leases.push(named.await?);
                step.after_leases = Some(memory(hive.door.pid())?);
                say(&format!("ninedoor with {n} bridges: leases done"));
            }
            report.steps.push(step);
            if n == config.bridges {
                for args in [&["ls", "/gpu"][..], &["gpu", "top", "--once"][..]] {
                    let l = listing(&fleet.cohsh, &hive, args, config.repeats).await?;
                    say(&format!("{l}"));
                    report.listings.push(l);
                }
                if config.kill > 0 {
                    report.kill = Some(kill_test(&mut fleet, &hive, config, say).await?);
                }
            }
            drop(hive);
        }
        Ok::<(), ScaleError>(())
    }
    .await;
    if keep_dir {
        let _ = fleet.dir.keep();
    }
    outcome?;
    machine.loadavg_end = loadavg();
    report.machine = machine;
    report.checks = checks(&report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_belongs_to_the_bridge_of_its_prefix() {
        assert_eq!(bridge_of("h7-3"), "h7");
        assert_eq!(bridge_of("h100-0"), "h100");
        assert_eq!(bridge_of("0"), "0");
    }

    #[test]
    fn bridges_sort_in_fleet_order() {
        let set: BTreeSet<String> = ["h10", "h9", "h100", "h20"].map(String::from).into();
        assert_eq!(sort_bridges(set), ["h9", "h10", "h20", "h100"]);
    }
}
