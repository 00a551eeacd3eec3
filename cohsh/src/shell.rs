//! `cohsh`: one verb per invocation against the hive, as the holder of a
//! ticket (the Queen's by default: the file `ninedoor` writes).
//!
//! Output is for people unless `--json` is given (ls, stat, workers, spawn,
//! kill, budget). A spawned worker's ticket alone goes to stdout so a script
//! can capture it; everything else about it goes to stderr. Errors are one
//! line on stderr and an exit code from [`Exit`].

use crate::exit::{Exit, Failure};
use crate::gpu::GpuVerb;
use crate::heartbeat::stop_signal;
use crate::session::{Session, TargetArgs};
use crate::ticket::TicketArgs;
use clap::{Parser, Subcommand};
use ninedoor::secure9p_core::codec::{LOpenFlags, QidType};
use ninedoor::{Command, SpawnRole};
use serde_json::{Value, json};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// The Cohesix operator's shell: file and hive verbs over Secure9P.
#[derive(Debug, Parser)]
#[command(name = "cohsh", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    ticket: TicketArgs,
    /// JSON output (ls, stat, workers, spawn, kill, budget, gpu list/lease/release).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    verb: Verb,
}

const AFTER_HELP: &str = "\
Examples (as the Queen, with the ticket file ninedoor writes):
  cohsh ls /
  cohsh cat /proc/boot
  T=$(cohsh spawn heartbeat w1)          # the worker's ticket, on stdout
  COHESIX_TICKET=$T worker-heartbeat &
  cohsh tail -f /worker/w1/telemetry
  cohsh echo '{\"cmd\":\"budget\",\"ops\":100}' '>' /queen/ctl
  cohsh kill w1
  cohsh gpu list                           # GPUs mirrored from the bridges
  G=$(cohsh gpu lease 0 --mem-mb 512 --ttl-s 60 --worker g1)
  cohsh --ticket $G gpu submit 0 job.json
  cohsh --ticket $G gpu status 0 -f       # until the job's OK or ERR
  cohsh gpu release 0

The ticket: --ticket, else --ticket-file, else COHESIX_TICKET, else the Queen's
ticket file ninedoor writes ($XDG_RUNTIME_DIR/cohesix/queen.ticket, or
~/.cohesix/queen.ticket without XDG_RUNTIME_DIR).

Exit status: 0 ok, 1 usage, 2 permission denied, 3 not found, 4 ticket refused,
expired or revoked, 5 cannot reach the hive, 6 other refusal.";

#[derive(Debug, Subcommand)]
enum Verb {
    /// List a directory (only what this ticket may see).
    Ls {
        /// The directory.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Print a file.
    Cat {
        /// The file.
        path: String,
    },
    /// Append a line to a file: `echo TEXT '>' PATH` (quote the `>` from
    /// the shell) or `echo TEXT PATH`. A reply from a ctl file is printed.
    Echo {
        /// No trailing newline.
        #[arg(short = 'n')]
        no_newline: bool,
        /// TEXT... '>' PATH, or TEXT PATH.
        #[arg(required = true, num_args = 2.., allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Append TEXT (and a newline) to PATH; a reply from a ctl file is printed.
    Write {
        /// The file.
        path: String,
        /// The text (words are joined with spaces).
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        text: Vec<String>,
    },
    /// Print a file, or its last lines; with -f, keep printing what is
    /// appended until Ctrl-C.
    Tail {
        /// Follow the file as it grows.
        #[arg(short = 'f')]
        follow: bool,
        /// Only the last N lines of what is there now.
        #[arg(short = 'n', value_name = "N")]
        lines: Option<usize>,
        /// Milliseconds between polls when following.
        #[arg(long, value_name = "MS", default_value_t = 500)]
        poll_ms: u64,
        /// The file.
        path: String,
    },
    /// Show a file's attributes.
    Stat {
        /// The file.
        path: String,
    },
    /// Spawn a worker through /queen/ctl; prints its ticket on stdout.
    Spawn {
        #[command(subcommand)]
        what: SpawnWhat,
    },
    /// Kill a worker: revokes its ticket and removes /worker/ID.
    Kill {
        /// The worker id.
        id: String,
    },
    /// List the workers under /worker.
    Workers,
    /// GPUs: list, lease and release (as the Queen); submit jobs and
    /// follow their status (as the lease's GPU worker).
    Gpu {
        #[command(subcommand)]
        what: GpuVerb,
    },
    /// Set the defaults of later spawns.
    Budget {
        /// Lifetime of later workers' tickets, seconds.
        #[arg(long, value_name = "SECONDS")]
        ticket_ttl_s: Option<u64>,
        /// Telemetry appends per later worker (0: unlimited).
        #[arg(long, value_name = "N")]
        ops: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum SpawnWhat {
    /// A heartbeat worker (appends to /worker/ID/telemetry).
    Heartbeat {
        /// Its id [default: w<N>, chosen by the hive].
        id: Option<String>,
    },
    /// A GPU worker bound to an installed GPU.
    Gpu {
        /// The GPU id (see `cohsh ls /gpu`).
        gpu: String,
        /// Its id [default: w<N>].
        id: Option<String>,
    },
}

/// Splits `echo`'s words into the text and the path.
fn echo_args(words: &[String]) -> Result<(String, String), Failure> {
    let split = match words {
        [text @ .., redirect, path] if redirect == ">" || redirect == ">>" => {
            (text.join(" "), path.clone())
        }
        [text, path] => (text.clone(), path.clone()),
        _ => {
            return Err(Failure::usage(
                "usage: cohsh echo TEXT '>' PATH (or: cohsh echo TEXT PATH, cohsh write PATH TEXT)",
            ));
        }
    };
    Ok(split)
}

/// Paths are absolute in the hive; a relative one is taken from `/`.
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

fn out(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
}

fn print_json(v: &Value) {
    println!("{v}");
}

fn file_type(ty: QidType) -> &'static str {
    if ty.contains(QidType::DIR) {
        "dir"
    } else if ty.contains(QidType::APPEND) {
        "append"
    } else {
        "file"
    }
}

/// The last `n` lines of `data`.
fn last_lines(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

impl Cli {
    async fn run(self) -> Result<(), Failure> {
        let ticket = self.ticket.resolve(true)?;
        let target = self.target.target()?;
        let session = Session::connect(&target, &ticket, self.target.timeout()).await?;
        let json = self.json;
        match self.verb {
            Verb::Ls { path } => ls(&session, &absolute(&path), json).await,
            Verb::Cat { path } => {
                out(&session.read_all(&absolute(&path)).await?);
                Ok(())
            }
            Verb::Echo { no_newline, words } => {
                let (text, path) = echo_args(&words)?;
                append(&session, &absolute(&path), text, !no_newline).await
            }
            Verb::Write { path, text } => {
                append(&session, &absolute(&path), text.join(" "), true).await
            }
            Verb::Tail {
                follow,
                lines,
                poll_ms,
                path,
            } => tail(&session, &absolute(&path), follow, lines, poll_ms).await,
            Verb::Stat { path } => stat(&session, &absolute(&path), json).await,
            Verb::Spawn { what } => {
                let (role, id, gpu) = match what {
                    SpawnWhat::Heartbeat { id } => (SpawnRole::Heartbeat, id, None),
                    SpawnWhat::Gpu { gpu, id } => (SpawnRole::Gpu, id, Some(gpu)),
                };
                spawn(&session, Command::Spawn { role, id, gpu }, json).await
            }
            Verb::Kill { id } => {
                let reply = session.command(&Command::Kill { id: id.clone() }).await;
                let reply = reply.map_err(|f| match f.exit {
                    Exit::NotFound => Failure::new(Exit::NotFound, format!("no such worker: {id}")),
                    _ => f,
                })?;
                if json {
                    print_json(&reply);
                } else {
                    println!(
                        "killed {id}: ticket revoked, {} fids closed",
                        reply["fids_closed"].as_u64().unwrap_or(0)
                    );
                }
                Ok(())
            }
            Verb::Workers => workers(&session, json).await,
            Verb::Gpu { what } => crate::gpu::run(what, session, &target, &ticket, json).await,
            Verb::Budget { ticket_ttl_s, ops } => {
                if ticket_ttl_s.is_none() && ops.is_none() {
                    return Err(Failure::usage("budget: give --ticket-ttl-s and/or --ops"));
                }
                let reply = session
                    .command(&Command::Budget { ticket_ttl_s, ops })
                    .await?;
                if json {
                    print_json(&reply);
                } else {
                    let ops = reply["ops"].as_u64().unwrap_or(0);
                    println!(
                        "later workers: ticket ttl {} s, ops {}",
                        reply["ticket_ttl_s"].as_u64().unwrap_or(0),
                        if ops == 0 {
                            "unlimited".to_owned()
                        } else {
                            ops.to_string()
                        }
                    );
                }
                Ok(())
            }
        }
    }
}

async fn ls(session: &Session, path: &str, json: bool) -> Result<(), Failure> {
    let attr = session.stat(path).await?;
    if !attr.qid().ty.contains(QidType::DIR) {
        if json {
            let name = path.rsplit('/').next().unwrap_or(path);
            print_json(&json!([{ "name": name, "type": file_type(attr.qid().ty) }]));
        } else {
            println!("{path}");
        }
        return Ok(());
    }
    let entries = session.list(path).await?;
    if json {
        let list: Vec<Value> = entries
            .iter()
            .map(|e| json!({ "name": e.name, "type": if e.dir { "dir" } else { "file" } }))
            .collect();
        print_json(&Value::Array(list));
    } else {
        for e in entries {
            println!("{}{}", e.name, if e.dir { "/" } else { "" });
        }
    }
    Ok(())
}

async fn append(
    session: &Session,
    path: &str,
    mut text: String,
    newline: bool,
) -> Result<(), Failure> {
    if newline {
        text.push('\n');
    }
    if let Some(reply) = session.write(path, text.as_bytes()).await? {
        out(&reply);
    }
    Ok(())
}

async fn tail(
    session: &Session,
    path: &str,
    follow: bool,
    lines: Option<usize>,
    poll_ms: u64,
) -> Result<(), Failure> {
    let fid = session.open(path, LOpenFlags::empty()).await?;
    let now = session
        .timed(
            path,
            crate::exit::Op::Read,
            session.conn().read_to_end(fid, 0),
        )
        .await?;
    match lines {
        Some(n) => out(last_lines(&now, n)),
        None => out(&now),
    }
    if !follow {
        session.clunk(fid).await;
        return Ok(());
    }
    let mut offset = now.len() as u64;
    let poll = Duration::from_millis(poll_ms.max(10));
    let follow = async {
        loop {
            let data = session.read_at(path, fid, offset).await?;
            if data.is_empty() {
                tokio::time::sleep(poll).await;
            } else {
                offset += data.len() as u64;
                out(&data);
            }
        }
    };
    tokio::select! {
        r = follow => r,
        () = stop_signal() => {
            session.clunk(fid).await;
            Ok(())
        }
    }
}

async fn stat(session: &Session, path: &str, json: bool) -> Result<(), Failure> {
    let a = session.stat(path).await?;
    let ty = file_type(a.qid().ty);
    if json {
        print_json(&json!({
            "path": path,
            "type": ty,
            "mode": format!("{:04o}", a.mode() & 0o7777),
            "size": a.size(),
            "mtime": a.mtime_sec(),
            "qid": { "path": a.qid().path, "version": a.qid().version },
        }));
    } else {
        println!("path    {path}");
        println!("type    {ty}");
        println!("mode    {:04o}", a.mode() & 0o7777);
        println!("size    {}", a.size());
        println!("mtime   {}", a.mtime_sec());
        println!("qid     path={} version={}", a.qid().path, a.qid().version);
    }
    Ok(())
}

async fn spawn(session: &Session, command: Command, json: bool) -> Result<(), Failure> {
    let reply = session.command(&command).await?;
    if json {
        print_json(&reply);
        return Ok(());
    }
    let Some(ticket) = reply["ticket"].as_str() else {
        return Err(Failure::new(
            Exit::Other,
            "/queen/ctl: the spawn reply has no ticket",
        ));
    };
    eprintln!(
        "spawned {} {} (ticket id {}, scope {}, expires {})",
        reply["role"].as_str().unwrap_or("?"),
        reply["spawned"].as_str().unwrap_or("?"),
        reply["ticket_id"].as_str().unwrap_or("?"),
        reply["scope"].as_str().unwrap_or("?"),
        reply["expires"].as_u64().unwrap_or(0),
    );
    println!("{ticket}");
    Ok(())
}

async fn workers(session: &Session, json: bool) -> Result<(), Failure> {
    let mut list = Vec::new();
    for e in session.list("/worker").await?.into_iter().filter(|e| e.dir) {
        let telemetry = format!("/worker/{}/telemetry", e.name);
        let size = match session.stat(&telemetry).await {
            Ok(a) => Some(a.size()),
            // Killed between the listing and the stat, or no telemetry.
            Err(f) if f.exit == Exit::NotFound || f.exit == Exit::Permission => None,
            Err(f) => return Err(f),
        };
        list.push((e.name, size));
    }
    if json {
        let list: Vec<Value> = list
            .iter()
            .map(|(id, size)| json!({ "id": id, "telemetry_bytes": size }))
            .collect();
        print_json(&Value::Array(list));
    } else if list.is_empty() {
        eprintln!("no workers");
    } else {
        for (id, size) in list {
            match size {
                Some(n) => println!("{id}\ttelemetry {n} bytes written"),
                None => println!("{id}"),
            }
        }
    }
    Ok(())
}

/// `cohsh`'s entry point.
pub fn main() -> ExitCode {
    crate::exit::entry("cohsh", Cli::run)
}

#[cfg(test)]
mod tests {
    use super::{echo_args, last_lines};

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn echo_takes_a_quoted_redirect_or_two_words() {
        let ok = |w: &[&str]| echo_args(&words(w)).unwrap();
        assert_eq!(ok(&["hi", ">", "/p"]), ("hi".into(), "/p".into()));
        assert_eq!(ok(&["a", "b", ">>", "/p"]), ("a b".into(), "/p".into()));
        assert_eq!(ok(&["hi", "/p"]), ("hi".into(), "/p".into()));
        assert!(echo_args(&words(&["a", "b", "c"])).is_err());
    }

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 1), b"c");
        assert_eq!(last_lines(b"a\n", 5), b"a\n");
        assert_eq!(last_lines(b"a\n", 0), b"");
    }
}
