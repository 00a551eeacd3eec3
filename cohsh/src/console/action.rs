//! The operator's actions, each one write into the namespace: a line to
//! `/queen/ctl` (spawn, kill, lease, release) or a job descriptor to a
//! GPU's `job` file (submit), written as the GPU worker this console leased
//! the GPU to (the Queen may not submit jobs). Every action answers with
//! the exact bytes sent, where, and the hive's answer, so the operator can
//! repeat it with `cohsh`.
//!
//! It must never show a ticket: tickets in replies are replaced by a note
//! before the answer leaves this module.

use super::hive::{HeldLease, View};
use crate::heartbeat::{self, Worker};
use crate::ticket::Presented;
use ninedoor::{Command, SpawnRole};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// A heartbeat worker the console runs itself beats this often.
pub const BEAT_INTERVAL: Duration = Duration::from_millis(500);
/// The lease's memory cap when the form leaves it empty, MiB.
pub const DEFAULT_LEASE_MEM_MB: u32 = 256;
/// The lease's lifetime when the form leaves it empty, seconds.
pub const DEFAULT_LEASE_TTL_S: u32 = 600;

/// What the operator asked for (the form's fields).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Spawn a heartbeat worker; with `run`, the console runs it too.
    Spawn {
        /// Its id (the hive picks one when empty).
        #[serde(default)]
        id: String,
        /// Run the worker in the console (`on` from a checkbox).
        #[serde(default)]
        run: Option<String>,
    },
    /// Kill a worker (its ticket revoked).
    Kill {
        /// Its id.
        id: String,
    },
    /// Lease a GPU to a new GPU worker whose ticket the console keeps.
    Lease {
        /// The GPU.
        gpu: String,
        /// The GPU worker's id (the hive picks one when empty).
        #[serde(default)]
        worker: String,
        /// Memory cap, MiB ([`DEFAULT_LEASE_MEM_MB`] when empty).
        #[serde(default)]
        mem_mb: String,
        /// Lifetime, seconds ([`DEFAULT_LEASE_TTL_S`] when empty).
        #[serde(default)]
        ttl_s: String,
    },
    /// Release a GPU's active lease.
    Release {
        /// The GPU.
        gpu: String,
    },
    /// Submit a job descriptor (a file's contents) to a GPU this console leased.
    Submit {
        /// The GPU.
        gpu: String,
        /// The descriptor, as read from the chosen file.
        job: String,
    },
}

/// What an action did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// The file written.
    pub path: String,
    /// The exact bytes written (without the trailing newline).
    pub sent: String,
    /// Whether the hive took it.
    pub ok: bool,
    /// The hive's answer (tickets removed), or why it failed.
    pub answer: String,
}

impl Outcome {
    fn refused(path: &str, sent: &str, why: impl Into<String>) -> Self {
        Outcome {
            path: path.to_owned(),
            sent: sent.to_owned(),
            ok: false,
            answer: why.into(),
        }
    }
}

fn number<T: std::str::FromStr>(field: &str, text: &str, default: T) -> Result<T, String> {
    match text.trim() {
        "" => Ok(default),
        t => t
            .parse()
            .map_err(|_| format!("{field} must be a whole number, not {t:?}")),
    }
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Replaces a reply's `ticket` with a note: the operator never sees one.
fn without_ticket(mut reply: Value) -> (Value, Option<String>) {
    let ticket = reply
        .get("ticket")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if ticket.is_some() {
        reply["ticket"] = Value::String("(kept by the console)".to_owned());
    }
    (reply, ticket)
}

/// Runs `action` on `view`'s hive.
pub async fn run(view: &View, action: Action) -> Outcome {
    let command = match &action {
        Action::Submit { gpu, job } => return submit(view, gpu, job).await,
        Action::Spawn { id, .. } => Command::Spawn {
            role: SpawnRole::Heartbeat,
            id: optional(id),
            gpu: None,
        },
        Action::Kill { id } => Command::Kill {
            id: id.trim().to_owned(),
        },
        Action::Lease {
            gpu,
            worker,
            mem_mb,
            ttl_s,
        } => {
            let parsed = number("mem_mb", mem_mb, DEFAULT_LEASE_MEM_MB)
                .and_then(|m| Ok((m, number("ttl_s", ttl_s, DEFAULT_LEASE_TTL_S)?)));
            match parsed {
                Ok((mem_mb, ttl_s)) => Command::Lease {
                    gpu: gpu.trim().to_owned(),
                    worker: optional(worker),
                    mem_mb,
                    streams: None,
                    ttl_s,
                    priority: None,
                },
                Err(why) => return Outcome::refused("/queen/ctl", "", why),
            }
        }
        Action::Release { gpu } => Command::Release {
            gpu: gpu.trim().to_owned(),
            worker: None,
        },
    };
    let path = "/queen/ctl";
    let sent = match serde_json::to_string(&command) {
        Ok(s) => s,
        Err(e) => return Outcome::refused(path, "", format!("command not encodable: {e}")),
    };
    let session = match view.session().await {
        Ok(s) => s,
        Err(f) => {
            view.check(&f).await;
            return Outcome::refused(path, &sent, f.message);
        }
    };
    let line = format!("{sent}\n");
    let written = view
        .requests()
        .time("ctl", async {
            Ok(session.exchange(path, line.as_bytes()).await)
        })
        .await;
    let (reply, failure) = match written {
        Ok(Ok(reply)) => (reply, None),
        Ok(Err((f, reply))) => (reply, Some(f)),
        Err(f) => (Vec::new(), Some(f)),
    };
    let parsed: Value = serde_json::from_slice(&reply).unwrap_or(Value::Null);
    let (shown, ticket) = without_ticket(parsed);
    let answer = match (&failure, &shown) {
        (Some(f), Value::Null) => f.message.clone(),
        (Some(f), v) => format!("{}: {v}", f.message),
        (None, v) => v.to_string(),
    };
    if let Some(f) = &failure {
        view.check(f).await;
    }
    if failure.is_none() {
        after(view, &action, &shown, ticket).await;
    }
    Outcome {
        path: path.to_owned(),
        sent,
        ok: failure.is_none(),
        answer,
    }
}

/// What the console does once the hive took `action`.
async fn after(view: &View, action: &Action, reply: &Value, ticket: Option<String>) {
    match (action, ticket) {
        (Action::Spawn { run: Some(_), .. }, Some(ticket)) => {
            let Some(id) = reply["spawned"].as_str() else {
                return;
            };
            let worker = Worker {
                ticket: Presented {
                    text: ticket,
                    from: "/queen/ctl".to_owned(),
                },
                id: id.to_owned(),
                interval: BEAT_INTERVAL,
                count: None,
            };
            let target = view.target().clone();
            let timeout = view.timeout();
            // It ends by itself when the worker is killed (ticket revoked).
            let task = tokio::spawn(async move {
                let _ = heartbeat::run(&target, timeout, worker, |_, _| {}).await;
            });
            view.beat(task.abort_handle());
        }
        (Action::Lease { gpu, .. }, Some(ticket)) => {
            let worker = reply["spawned"].as_str().unwrap_or("?");
            view.hold_lease(
                gpu.trim(),
                HeldLease {
                    worker: worker.to_owned(),
                    ticket: Presented {
                        text: ticket,
                        from: "/queen/ctl".to_owned(),
                    },
                },
            );
        }
        (Action::Release { gpu }, _) => view.forget_lease(gpu.trim()),
        _ => {}
    }
}

/// Writes `job` to `/gpu/<gpu>/job` as the GPU worker this console leased
/// `gpu` to, and returns the bridge's answer.
async fn submit(view: &View, gpu: &str, job: &str) -> Outcome {
    let gpu = gpu.trim();
    let path = format!("/gpu/{gpu}/job");
    let job = job.trim();
    let shown = job.replace('\n', " ");
    if serde_json::from_str::<Value>(job).is_err() {
        return Outcome::refused(&path, &shown, "the file is not a JSON job descriptor");
    }
    let Some(lease) = view.held_lease(gpu) else {
        return Outcome::refused(
            &path,
            &shown,
            format!("this console holds no lease on gpu {gpu}: lease it here first"),
        );
    };
    let session = view
        .requests()
        .time(
            "attach",
            crate::session::Session::connect_with(
                view.target(),
                &lease.ticket,
                view.timeout(),
                crate::session::JOB_MSIZE,
            ),
        )
        .await;
    let session = match session {
        Ok(s) => s,
        Err(f) => {
            return Outcome::refused(&path, &shown, format!("as {}: {}", lease.worker, f.message));
        }
    };
    let written = session.exchange(&path, job.as_bytes()).await;
    session.clunk(session.root()).await;
    match written {
        Ok(reply) => Outcome {
            path,
            sent: shown,
            ok: true,
            answer: format!(
                "as {}: {}",
                lease.worker,
                String::from_utf8_lossy(&reply).trim()
            ),
        },
        Err((f, reply)) => {
            let reply = String::from_utf8_lossy(&reply);
            let answer = match reply.trim() {
                "" => format!("as {}: {}", lease.worker, f.message),
                r => format!(
                    "as {}: {}; the bridge answered: {r}",
                    lease.worker, f.message
                ),
            };
            Outcome::refused(&path, &shown, answer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_loses_its_ticket_before_it_is_shown() {
        let (shown, ticket) =
            without_ticket(serde_json::json!({"id": "w2", "ticket": "c9t1.secret"}));
        assert_eq!(ticket.as_deref(), Some("c9t1.secret"));
        assert!(!shown.to_string().contains("secret"));
        let (same, none) = without_ticket(serde_json::json!({"killed": "w2"}));
        assert_eq!(none, None);
        assert_eq!(same, serde_json::json!({"killed": "w2"}));
    }

    #[test]
    fn numbers_default_when_empty_and_refuse_words() {
        assert_eq!(number("mem_mb", " ", 5u32), Ok(5));
        assert_eq!(number("mem_mb", "7", 5u32), Ok(7));
        assert!(
            number("ttl_s", "ten", 5u32)
                .unwrap_err()
                .contains("\"ten\"")
        );
    }
}
