//! `cohsh gpu …`: the GPUs the hive mirrors from its bridges.
//!
//! `list`, `lease` and `release` are the Queen's (leases go through
//! `/queen/ctl`, so the hive spawns the holder and hands back its ticket);
//! `submit`, `status` and `result` are the GPU worker's, run with the
//! ticket `lease` printed. A job's story is its status lines: `QUEUED`,
//! `RUNNING`, then `OK` or `ERR <REASON>`.

use crate::exit::{Exit, Failure};
use crate::session::{JOB_MSIZE, Session, Target};
use crate::ticket::Presented;
use clap::Subcommand;
use ninedoor::Command;
use ninedoor::secure9p_core::codec::LOpenFlags;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// A lease's memory cap when `--mem-mb` is not given, MiB.
pub const DEFAULT_LEASE_MEM_MB: u32 = 1024;
/// A lease's lifetime when `--ttl-s` is not given, seconds.
pub const DEFAULT_LEASE_TTL_S: u32 = 600;
/// Largest job file read: the bridge takes at most 1 MiB in one write.
const MAX_JOB_FILE: u64 = 1024 * 1024;

/// `cohsh gpu` verbs.
#[derive(Debug, Subcommand)]
pub enum GpuVerb {
    /// List the GPUs under /gpu with their descriptors.
    List,
    /// Lease a GPU to a new GPU worker (as the Queen); prints the worker's
    /// ticket on stdout.
    Lease {
        /// The GPU id (see `cohsh gpu list`).
        gpu: String,
        /// Memory cap of the worker's jobs, MiB.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_LEASE_MEM_MB)]
        mem_mb: u32,
        /// Stream cap [default: the bridge's, 1].
        #[arg(long, value_name = "N")]
        streams: Option<u32>,
        /// The lease's lifetime, seconds (the worker renews it through
        /// /gpu/<id>/lease).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_LEASE_TTL_S)]
        ttl_s: u32,
        /// Priority against other leases, 0-255 [default: 0].
        #[arg(long, value_name = "N")]
        priority: Option<u8>,
        /// The worker's id [default: w<N>, chosen by the hive].
        #[arg(long, value_name = "ID")]
        worker: Option<String>,
    },
    /// End a GPU's lease (as the Queen); the worker the hive spawned for it
    /// is killed.
    Release {
        /// The GPU id.
        gpu: String,
        /// Withdraw this worker's lease or waiting request instead.
        #[arg(long, value_name = "ID")]
        worker: Option<String>,
    },
    /// Submit a JSON job descriptor (as the GPU worker holding the lease);
    /// prints the job id on stdout.
    Submit {
        /// The GPU id.
        gpu: String,
        /// The job descriptor file (`-`: stdin).
        jobfile: PathBuf,
    },
    /// Print the GPU's job status lines; with -f, follow them until the
    /// job's OK (exit 0) or ERR (exit 6).
    Status {
        /// The GPU id.
        gpu: String,
        /// Follow until the job ends.
        #[arg(short = 'f')]
        follow: bool,
        /// The job to follow [default: the newest named in the status].
        #[arg(long, value_name = "ID")]
        job: Option<String>,
        /// Milliseconds between polls when following.
        #[arg(long, value_name = "MS", default_value_t = 200)]
        poll_ms: u64,
    },
    /// A live table of every GPU in the hive (health, holder, utilisation,
    /// memory, temperature, power, jobs, the lease's GPU time), from each
    /// GPU's `stats`; refreshed until Ctrl-C, or printed once.
    Top {
        /// Print the table once and exit.
        #[arg(long)]
        once: bool,
        /// Milliseconds between refreshes.
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        interval_ms: u64,
        /// Most stats files read at once.
        #[arg(long, value_name = "N", default_value_t = 16)]
        parallel: usize,
    },
    /// Print the recent results with their full output, one JSON line each.
    Result {
        /// The GPU id.
        gpu: String,
        /// Only this job's result.
        #[arg(long, value_name = "ID")]
        job: Option<String>,
    },
}

fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Runs one `gpu` verb. `submit` connects with a larger msize (a job
/// travels in one write), so it gets the target and ticket to do so.
pub async fn run(
    verb: GpuVerb,
    session: Session,
    target: &Target,
    ticket: &Presented,
    json: bool,
) -> Result<(), Failure> {
    match verb {
        GpuVerb::List => list(&session, json).await,
        GpuVerb::Lease {
            gpu,
            mem_mb,
            streams,
            ttl_s,
            priority,
            worker,
        } => {
            let command = Command::Lease {
                gpu,
                worker,
                mem_mb,
                streams,
                ttl_s,
                priority,
            };
            lease(&session, &command, json).await
        }
        GpuVerb::Release { gpu, worker } => {
            let reply = session
                .command(&Command::Release {
                    gpu: gpu.clone(),
                    worker,
                })
                .await?;
            if json {
                println!("{reply}");
            } else {
                let killed = reply["killed"]
                    .as_str()
                    .map(|k| format!("; killed {k}"))
                    .unwrap_or_default();
                println!(
                    "released gpu {gpu} (bridge: {}){killed}",
                    reply["bridge"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        GpuVerb::Submit { gpu, jobfile } => {
            let session =
                Session::connect_with(target, ticket, session.timeout(), JOB_MSIZE).await?;
            submit(&session, &gpu, &jobfile).await
        }
        GpuVerb::Status {
            gpu,
            follow,
            job,
            poll_ms,
        } => status(&session, &gpu, follow, job, poll_ms).await,
        GpuVerb::Top {
            once,
            interval_ms,
            parallel,
        } => top(&session, once, interval_ms, parallel, json).await,
        GpuVerb::Result { gpu, job } => {
            let path = format!("/gpu/{gpu}/result");
            let text = String::from_utf8_lossy(&session.read_all(&path).await?).into_owned();
            for line in text.lines() {
                let keep = job.as_deref().is_none_or(|j| {
                    serde_json::from_str::<Value>(line)
                        .is_ok_and(|v| v["job_id"].as_str() == Some(j))
                });
                if keep {
                    out(&format!("{line}\n"));
                }
            }
            Ok(())
        }
    }
}

async fn list(session: &Session, json: bool) -> Result<(), Failure> {
    let mut gpus = Vec::new();
    for e in session.list("/gpu").await?.into_iter().filter(|e| e.dir) {
        let info = session.read_all(&format!("/gpu/{}/info", e.name)).await?;
        let info: Value = serde_json::from_slice(&info).map_err(|err| {
            Failure::new(
                Exit::Other,
                format!("/gpu/{}/info is not a JSON descriptor: {err}", e.name),
            )
        })?;
        gpus.push((e.name, info));
    }
    if json {
        let list: Vec<Value> = gpus.into_iter().map(|(_, info)| info).collect();
        println!("{}", Value::Array(list));
        return Ok(());
    }
    if gpus.is_empty() {
        eprintln!("no GPUs (no bridge attached, or not yet connected)");
    }
    for (id, d) in gpus {
        let sm = d["sm_count"]
            .as_u64()
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        println!(
            "{id}\t{}\t{} MiB\tsm {sm}\tdriver {}\tcuda {}\t{}",
            d["name"].as_str().unwrap_or("?"),
            d["memory_mb"].as_u64().unwrap_or(0),
            d["driver_version"].as_str().unwrap_or("?"),
            d["runtime_version"].as_str().unwrap_or("?"),
            d["uuid"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}

async fn lease(session: &Session, command: &Command, json: bool) -> Result<(), Failure> {
    let reply = session.command(command).await?;
    if json {
        println!("{reply}");
        return Ok(());
    }
    let Some(ticket) = reply["ticket"].as_str() else {
        return Err(Failure::new(
            Exit::Other,
            "/queen/ctl: the lease reply has no ticket",
        ));
    };
    eprintln!(
        "leased gpu {} to {} (bridge: {}; ticket id {}, expires {})",
        reply["gpu"].as_str().unwrap_or("?"),
        reply["spawned"].as_str().unwrap_or("?"),
        reply["lease"].as_str().unwrap_or("?"),
        reply["ticket_id"].as_str().unwrap_or("?"),
        reply["expires"].as_u64().unwrap_or(0),
    );
    println!("{ticket}");
    Ok(())
}

fn read_job(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    let bad =
        |e: std::io::Error| Failure::new(Exit::Usage, format!("job file {}: {e}", path.display()));
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_JOB_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(bad)?;
    } else {
        std::fs::File::open(path)
            .map_err(bad)?
            .take(MAX_JOB_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(bad)?;
    }
    if bytes.len() as u64 > MAX_JOB_FILE {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "job file {}: larger than the bridge's {MAX_JOB_FILE} bytes",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

async fn submit(session: &Session, gpu: &str, jobfile: &PathBuf) -> Result<(), Failure> {
    let job = read_job(jobfile)?;
    let descriptor: Value = serde_json::from_slice(&job).map_err(|e| {
        Failure::new(
            Exit::Usage,
            format!("job file {}: not JSON: {e}", jobfile.display()),
        )
    })?;
    let path = format!("/gpu/{gpu}/job");
    match session.exchange(&path, &job).await {
        Ok(reply) => {
            let reply = String::from_utf8_lossy(&reply);
            eprintln!("{path}: {}", reply.trim_end());
            println!("{}", descriptor["job_id"].as_str().unwrap_or(""));
            Ok(())
        }
        Err((mut f, reply)) => {
            let reply = String::from_utf8_lossy(&reply);
            if !reply.trim().is_empty() {
                f.message = format!("{}; the bridge answered: {}", f.message, reply.trim_end());
            }
            Err(f)
        }
    }
}

/// One status line, as far as following it needs.
#[derive(Debug, PartialEq, Eq)]
enum Status<'a> {
    /// `QUEUED`/`RUNNING` of a job.
    Open(&'a str),
    /// `OK` of a job.
    Ok(&'a str),
    /// `ERR <REASON>` of a job.
    Err(&'a str),
    /// Anything else (a `# missed` notice).
    Other,
}

fn parse_status(line: &str) -> Status<'_> {
    let mut w = line.split_ascii_whitespace();
    match (w.next(), w.next(), w.next()) {
        (Some("QUEUED" | "RUNNING"), Some(job), _) => Status::Open(job),
        (Some("OK"), Some(job), _) => Status::Ok(job),
        (Some("ERR"), Some(_), Some(job)) => Status::Err(job),
        _ => Status::Other,
    }
}

async fn status(
    session: &Session,
    gpu: &str,
    follow: bool,
    mut job: Option<String>,
    poll_ms: u64,
) -> Result<(), Failure> {
    let path = format!("/gpu/{gpu}/status");
    let fid = session.open(&path, LOpenFlags::empty()).await?;
    let followed = async {
        let mut offset = 0u64;
        let mut partial = String::new();
        let pinned = job.is_some();
        let poll = Duration::from_millis(poll_ms.max(10));
        loop {
            let data = session.read_at(&path, fid, offset).await?;
            if data.is_empty() {
                if !follow {
                    out(&partial);
                    return Ok(());
                }
                tokio::time::sleep(poll).await;
                continue;
            }
            offset += data.len() as u64;
            partial.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                out(&line);
                let status = parse_status(&line);
                let named = match status {
                    Status::Open(j) | Status::Ok(j) | Status::Err(j) => Some(j),
                    Status::Other => None,
                };
                if !pinned && named.is_some() {
                    job = named.map(str::to_owned);
                }
                if !follow || job.as_deref() != named {
                    continue;
                }
                match status {
                    Status::Ok(_) => return Ok(()),
                    Status::Err(j) => {
                        return Err(Failure::new(
                            Exit::Other,
                            format!("job {j} on gpu {gpu} failed: {}", line.trim_end()),
                        ));
                    }
                    Status::Open(_) | Status::Other => {}
                }
            }
        }
    };
    let result = tokio::select! {
        r = followed => r,
        () = crate::heartbeat::stop_signal() => Ok(()),
    };
    session.clunk(fid).await;
    result
}

/// One GPU's row of `gpu top`: its id and `stats`, or why it could not
/// be read.
type TopRow = (String, Result<Value, String>);

/// Reads every GPU's `stats`, `parallel` at a time.
async fn top_rows(session: &Session, parallel: usize) -> Result<Vec<TopRow>, Failure> {
    use futures_util::stream::{self, StreamExt};
    let ids: Vec<String> = session
        .list("/gpu")
        .await?
        .into_iter()
        .filter(|e| e.dir)
        .map(|e| e.name)
        .collect();
    let rows = stream::iter(ids)
        .map(|id| async move {
            let read = session.read_all(&format!("/gpu/{id}/stats")).await;
            let stats = match read {
                Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                    .map_err(|e| format!("stats does not parse: {e}")),
                Err(f) => Err(f.to_string()),
            };
            (id, stats)
        })
        .buffered(parallel.max(1))
        .collect()
        .await;
    Ok(rows)
}

/// A number field of `v`, or `-` where it is `null` or missing.
fn num(v: &Value, field: &str) -> String {
    match &v[field] {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .map_or_else(|| n.to_string(), |f| format!("{f:.0}")),
        Value::Number(n) => n.to_string(),
        _ => String::from("-"),
    }
}

/// The `gpu top` table: a header and one line per GPU.
fn top_table(rows: &[TopRow]) -> String {
    use std::fmt::Write as _;
    let mut t = format!(
        "{:<12} {:<24} {:<10} {:>5} {:>13} {:>5} {:>6} {:>7} {:>10}\n",
        "GPU", "HEALTH", "HOLDER", "UTIL%", "MEM MiB", "TEMP", "POWER", "JOBS", "LEASE GPU-s"
    );
    for (id, stats) in rows {
        let line = match stats {
            Ok(s) => {
                let mem = format!("{}/{}", num(s, "mem_used_mib"), num(s, "mem_total_mib"));
                let jobs = format!(
                    "{}q {}r",
                    num(&s["occupancy"], "queued"),
                    num(&s["occupancy"], "running")
                );
                let lease_s = s["lease"]["gpu_time_us"]
                    .as_u64()
                    .map_or_else(|| String::from("-"), |us| format!("{:.3}", us as f64 / 1e6));
                let mut health = s["health"].as_str().unwrap_or("?").to_owned();
                health.truncate(24);
                format!(
                    "{id:<12} {health:<24} {:<10} {:>5} {mem:>13} {:>5} {:>6} {jobs:>7} {lease_s:>10}",
                    s["holder"].as_str().unwrap_or("-"),
                    num(s, "util_gpu_pct"),
                    num(s, "temp_c"),
                    num(s, "power_w"),
                )
            }
            Err(why) => format!("{id:<12} {why}"),
        };
        let _ = writeln!(t, "{line}");
    }
    t
}

async fn top(
    session: &Session,
    once: bool,
    interval_ms: u64,
    parallel: usize,
    json: bool,
) -> Result<(), Failure> {
    let interval = Duration::from_millis(interval_ms.max(100));
    let shown = async {
        loop {
            let rows = top_rows(session, parallel).await?;
            if json {
                let list: Vec<Value> = rows
                    .iter()
                    .map(|(id, s)| match s {
                        Ok(v) => v.clone(),
                        Err(why) => serde_json::json!({"gpu_id": id, "error": why}),
                    })
                    .collect();
                out(&format!("{}\n", Value::Array(list)));
            } else if once {
                out(&top_table(&rows));
            } else {
                // Clear the screen and go home, then the table.
                out(&format!("\x1b[2J\x1b[H{}", top_table(&rows)));
            }
            if once {
                return Ok(());
            }
            tokio::time::sleep(interval).await;
        }
    };
    tokio::select! {
        r = shown => r,
        () = crate::heartbeat::stop_signal() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{Status, parse_status, top_table};
    use serde_json::json;

    #[test]
    fn the_top_table_shows_each_gpu_and_what_it_could_not_read() {
        let rows = vec![
            (
                String::from("h1-0"),
                Ok(json!({
                    "health": "ok", "holder": "g1", "util_gpu_pct": 37,
                    "mem_used_mib": 512, "mem_total_mib": 16384, "temp_c": 46,
                    "power_w": 111.0, "occupancy": {"queued": 2, "running": 1},
                    "lease": {"gpu_time_us": 1_250_000}
                })),
            ),
            (
                String::from("h1-1"),
                Ok(json!({"health": "quarantined (xid 79)", "temp_c": null})),
            ),
            (String::from("h2-0"), Err(String::from("unreachable"))),
        ];
        let table = top_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("GPU "), "{table}");
        let busy: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            busy,
            [
                "h1-0",
                "ok",
                "g1",
                "37",
                "512/16384",
                "46",
                "111",
                "2q",
                "1r",
                "1.250"
            ]
        );
        let out: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            out,
            [
                "h1-1",
                "quarantined",
                "(xid",
                "79)",
                "-",
                "-",
                "-/-",
                "-",
                "-",
                "-q",
                "-r",
                "-"
            ]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["h2-0", "unreachable"]
        );
    }

    #[test]
    fn status_lines_name_their_job() {
        assert_eq!(
            parse_status("QUEUED j1 priority=0 position=1\n"),
            Status::Open("j1")
        );
        assert_eq!(parse_status("RUNNING j1"), Status::Open("j1"));
        assert_eq!(parse_status("OK j1 ab12 4 6"), Status::Ok("j1"));
        assert_eq!(parse_status("ERR TIMEOUT j2 after 5 ms"), Status::Err("j2"));
        assert_eq!(parse_status("# missed 10 bytes"), Status::Other);
        assert_eq!(parse_status(""), Status::Other);
    }
}
