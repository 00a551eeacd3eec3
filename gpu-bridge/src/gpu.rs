//! One GPU's state machine: its leases, its job queue and scheduler, its
//! status ring, results and statistics. Sans-IO: every method takes `now`
//! (ms) and returns what happened; nothing here reads a clock, sleeps or
//! runs a kernel. [`GpuState::dispatch`] hands jobs out and
//! [`GpuState::complete`] takes their outcomes back.
//!
//! Scheduling: queued jobs are ordered by priority (higher first), then by
//! arrival. The first job runs when the running jobs' streams and memory
//! plus its own fit the lease's caps; jobs behind it wait (strict priority,
//! so a large high-priority job is never starved by small ones). A job's
//! `timeout_ms` counts from acceptance: queued or running, it fails with
//! `ERR TIMEOUT` when it passes. A running job that timed out or was reset
//! keeps its streams and memory until its executor returns, since the
//! device really is still busy.

use crate::artefact::Artefacts;
use crate::command::{Command, Renewal};
use crate::descriptor::{GpuDescriptor, GpuSample};
use crate::error::BridgeError;
use crate::executor::{ExecError, ExecOutput};
use crate::job::{ValidatedJob, sha256_hex, validate};
use crate::lease::{ActiveLease, Grant, Handover, LeaseBook, LeaseEnd};
use crate::limits::{MAX_QUEUED, RECENT_JOBS, RESULTS_KEPT, STATUS_RING, STATUS_VALUES};
use crate::log::{Actor, EventLog};
use crate::workload::output_bytes;
use gpu_contract::StatusLine;
use secure9p_core::{AppendLog, Role};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

mod watch;

pub use watch::Watch;

/// Most output values kept per result (1 MiB of `f32`); larger outputs keep
/// this prefix and say they were truncated. Their hash covers every value.
pub const MAX_RESULT_VALUES: usize = 1 << 18;

/// Names one dispatch of one job, to match its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunTicket {
    /// The GPU's index.
    pub gpu: usize,
    /// The job's sequence number on that GPU.
    pub seq: u64,
}

/// A job handed to an executor.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// Give this back with the outcome.
    pub ticket: RunTicket,
    /// The job.
    pub job: ValidatedJob,
    /// Time left before the job's deadline.
    pub budget: Duration,
}

#[derive(Debug, Clone)]
struct Queued {
    seq: u64,
    job: ValidatedJob,
    accepted_ms: u64,
    deadline_ms: u64,
}

#[derive(Debug, Clone)]
struct Running {
    job_id: String,
    kernel: &'static str,
    priority: u8,
    mem_mb: u32,
    streams: u32,
    accepted_ms: u64,
    started_ms: u64,
    deadline_ms: u64,
    /// Its status line is written (timed out or reset); the outcome is
    /// only awaited to free its resources.
    abandoned: bool,
    /// The lease it was dispatched under (charged with its usage).
    lease_id: u64,
    /// The GPU's energy counter at dispatch, mJ.
    energy_start: Option<u64>,
}

/// The full output of a finished job, as `/gpu/<id>/result` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobResult {
    /// The job.
    pub job_id: String,
    /// Its kernel.
    pub kernel: &'static str,
    /// The executor that ran it.
    pub executor: &'static str,
    /// SHA-256 of every output value, little-endian.
    pub sha256: String,
    /// Device time, microseconds (`null` on the CPU).
    pub device_time_us: Option<u64>,
    /// Largest difference from the CPU reference, if checked.
    pub max_abs_err: Option<f32>,
    /// Values in the output.
    pub len: usize,
    /// Whether `values` holds only the first [`MAX_RESULT_VALUES`].
    pub truncated: bool,
    /// The output.
    pub values: Vec<f32>,
}

/// A finished job, as `stats` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSummary {
    /// The job.
    pub job_id: String,
    /// Its kernel.
    pub kernel: &'static str,
    /// `OK` or `ERR <REASON>`.
    pub outcome: String,
    /// Its priority.
    pub priority: u8,
    /// From acceptance to start, ms (`null` if it never started).
    pub queued_ms: Option<u64>,
    /// From start to outcome, ms (`null` if it never started).
    pub run_ms: Option<u64>,
    /// Device time, microseconds.
    pub device_time_us: Option<u64>,
    /// The executor, if it ran.
    pub executor: Option<&'static str>,
}

/// Counters since the bridge started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Jobs accepted.
    pub accepted: u64,
    /// Jobs refused at submission.
    pub refused: u64,
    /// Jobs finished `OK`.
    pub ok: u64,
    /// Jobs finished `ERR` (any reason).
    pub failed: u64,
    /// Of those, by timeout.
    pub timeouts: u64,
    /// Outcomes that arrived after the job was abandoned.
    pub late: u64,
}

/// The state of one GPU.
#[derive(Debug)]
pub struct GpuState {
    desc: GpuDescriptor,
    index: usize,
    leases: LeaseBook,
    queued: Vec<Queued>,
    running: BTreeMap<u64, Running>,
    status: AppendLog,
    results: VecDeque<JobResult>,
    recent: VecDeque<JobSummary>,
    totals: Totals,
    next_seq: u64,
    /// Health, telemetry and per-lease usage (see `watch`).
    watch: Watch,
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl GpuState {
    /// The state of GPU `index`, described by `desc`: idle, nothing queued.
    pub fn new(index: usize, desc: GpuDescriptor) -> Self {
        GpuState {
            desc,
            index,
            leases: LeaseBook::default(),
            queued: Vec::new(),
            running: BTreeMap::new(),
            status: AppendLog::new(STATUS_RING, STATUS_RING),
            results: VecDeque::new(),
            recent: VecDeque::new(),
            totals: Totals::default(),
            next_seq: 0,
            watch: Watch::default(),
        }
    }

    /// Its descriptor.
    pub fn descriptor(&self) -> &GpuDescriptor {
        &self.desc
    }

    /// Its lease book.
    pub fn leases(&self) -> &LeaseBook {
        &self.leases
    }

    /// The status ring (`/gpu/<id>/status`).
    pub fn status(&mut self) -> &mut AppendLog {
        &mut self.status
    }

    /// The results kept, oldest first.
    pub fn results(&self) -> impl Iterator<Item = &JobResult> {
        self.results.iter()
    }

    /// The counters.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Jobs queued.
    pub fn queued_len(&self) -> usize {
        self.queued.len()
    }

    /// Jobs running (abandoned ones included).
    pub fn running_len(&self) -> usize {
        self.running.len()
    }

    fn emit(&mut self, line: StatusLine, now: u64) {
        let mut text = line.to_string();
        text.push('\n');
        self.status.append(text.as_bytes(), now / 1000);
    }

    fn remember(&mut self, summary: JobSummary) {
        if self.recent.len() >= RECENT_JOBS {
            self.recent.pop_front();
        }
        self.recent.push_back(summary);
    }

    fn fail_queued(&mut self, q: Queued, reason: &str, detail: String, now: u64) {
        self.totals.failed += 1;
        if reason == "TIMEOUT" {
            self.totals.timeouts += 1;
        }
        self.emit(
            StatusLine::Err {
                reason: String::from(reason),
                job_id: q.job.job_id.clone(),
                detail,
            },
            now,
        );
        self.remember(JobSummary {
            job_id: q.job.job_id,
            kernel: q.job.workload.kernel().name(),
            outcome: format!("ERR {reason}"),
            priority: q.job.priority,
            queued_ms: None,
            run_ms: None,
            device_time_us: None,
            executor: None,
        });
    }

    fn abandon_running(&mut self, seq: u64, reason: &str, detail: String, now: u64) {
        let Some(r) = self.running.get_mut(&seq) else {
            return;
        };
        if r.abandoned {
            return;
        }
        r.abandoned = true;
        let r = r.clone();
        self.totals.failed += 1;
        if reason == "TIMEOUT" {
            self.totals.timeouts += 1;
        }
        self.emit(
            StatusLine::Err {
                reason: String::from(reason),
                job_id: r.job_id.clone(),
                detail,
            },
            now,
        );
        self.remember(JobSummary {
            job_id: r.job_id,
            kernel: r.kernel,
            outcome: format!("ERR {reason}"),
            priority: r.priority,
            queued_ms: Some(r.started_ms.saturating_sub(r.accepted_ms)),
            run_ms: Some(now.saturating_sub(r.started_ms)),
            device_time_us: None,
            executor: None,
        });
    }

    /// Drains the queue after a lease ended; logs the handover.
    fn hand_over(&mut self, h: Handover, actor: Option<&Actor>, now: u64, log: &mut EventLog) {
        let reason = h.why.reason();
        let drained = std::mem::take(&mut self.queued);
        let n = drained.len();
        let detail = match &h.why {
            LeaseEnd::Preempted { by } => {
                format!("lease of {} preempted by {by}", h.ended.lease.holder)
            }
            _ => format!("lease of {} ended", h.ended.lease.holder),
        };
        for q in drained {
            self.fail_queued(q, reason, detail.clone(), now);
        }
        log.record(
            now,
            &self.desc.id,
            actor,
            &format!(
                "lease-end holder={} lease_id={} why={reason} drained={n}",
                h.ended.lease.holder, h.ended.lease_id
            ),
        );
        if let Some(next) = h.next {
            log.record(
                now,
                &self.desc.id,
                actor,
                &format!("lease-grant {} from=waiting", describe(&next)),
            );
        }
    }

    /// Applies the timer: expires the lease (granting the next waiting
    /// request) and fails jobs past their deadline.
    pub fn tick(&mut self, now: u64, log: &mut EventLog) {
        if let Some(h) = self.leases.expire(now) {
            self.hand_over(h, None, now, log);
        }
        let (late, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queued)
            .into_iter()
            .partition(|q| now >= q.deadline_ms);
        self.queued = keep;
        for q in late {
            let detail = format!("after {} ms, still queued", q.job.timeout_ms);
            self.fail_queued(q, "TIMEOUT", detail, now);
        }
        let overdue: Vec<(u64, u64)> = self
            .running
            .iter()
            .filter(|(_, r)| !r.abandoned && now >= r.deadline_ms)
            .map(|(seq, r)| (*seq, r.deadline_ms.saturating_sub(r.accepted_ms)))
            .collect();
        for (seq, after) in overdue {
            self.abandon_running(seq, "TIMEOUT", format!("after {after} ms"), now);
        }
    }

    /// Runs a `ctl` command; returns the reply line.
    pub fn command(
        &mut self,
        cmd: Command,
        actor: &Actor,
        now: u64,
        log: &mut EventLog,
    ) -> Result<String, BridgeError> {
        self.tick(now, log);
        let id = self.desc.id.clone();
        let result = self.run_command(cmd.clone(), actor, now, log);
        let what = match &cmd {
            Command::Lease(r) => format!("LEASE holder={} priority={}", r.holder, r.priority),
            Command::Release { holder } => {
                format!("RELEASE holder={}", holder.as_deref().unwrap_or("-"))
            }
            Command::Priority(p) => format!("PRIORITY {p}"),
            Command::Reset => String::from("RESET"),
            Command::Fault(what) => format!("FAULT {what:?}"),
        };
        let outcome = match &result {
            Ok(reply) => reply.trim_end().to_string(),
            Err(e) => format!("ERR {} {e}", e.reason()),
        };
        log.record(now, &id, Some(actor), &format!("ctl {what} -> {outcome}"));
        result
    }

    fn run_command(
        &mut self,
        cmd: Command,
        actor: &Actor,
        now: u64,
        log: &mut EventLog,
    ) -> Result<String, BridgeError> {
        match cmd {
            Command::Lease(req) => {
                self.refuse_if_quarantined()?;
                let terms = req.terms(&self.desc)?;
                match self.leases.request(terms, now)? {
                    Grant::Granted(l) => Ok(format!("OK LEASE granted {}\n", describe(&l))),
                    Grant::Replaced(l) => Ok(format!("OK LEASE replaced {}\n", describe(&l))),
                    Grant::Preempted { granted, ended } => {
                        let by = granted.lease.holder.clone();
                        let holder = ended.lease.holder.clone();
                        self.hand_over(
                            Handover {
                                ended,
                                why: LeaseEnd::Preempted { by },
                                next: None,
                            },
                            Some(actor),
                            now,
                            log,
                        );
                        Ok(format!(
                            "OK LEASE preempted={holder} {}\n",
                            describe(&granted)
                        ))
                    }
                    Grant::Waiting { position } => Ok(format!(
                        "QUEUED LEASE holder={} priority={} position={position}\n",
                        req.holder, req.priority
                    )),
                }
            }
            Command::Release { holder } => match self.leases.release(holder.as_deref(), now)? {
                Some(h) => {
                    let ended = h.ended.lease.holder.clone();
                    let drained = self.queued.len();
                    let next = h.next.as_ref().map(|n| n.lease.holder.clone());
                    self.hand_over(h, Some(actor), now, log);
                    Ok(format!(
                        "OK RELEASE holder={ended} drained={drained} next={}\n",
                        next.as_deref().unwrap_or("-")
                    ))
                }
                None => Ok(format!(
                    "OK RELEASE withdrawn={}\n",
                    holder.as_deref().unwrap_or("-")
                )),
            },
            Command::Priority(p) => {
                let handover = self
                    .leases
                    .set_priority(p, now)
                    .map_err(|_| BridgeError::NoLease(self.desc.id.clone()))?;
                match handover {
                    Some(h) => {
                        let next = h.next.as_ref().map(|n| n.lease.holder.clone());
                        self.hand_over(h, Some(actor), now, log);
                        Ok(format!(
                            "OK PRIORITY {p} preempted_by={}\n",
                            next.as_deref().unwrap_or("-")
                        ))
                    }
                    None => Ok(format!("OK PRIORITY {p}\n")),
                }
            }
            Command::Reset => {
                let drained = self.queued.len();
                let (ended, dropped) = self.leases.reset();
                for q in std::mem::take(&mut self.queued) {
                    self.fail_queued(q, "RESET", String::from("gpu reset"), now);
                }
                let running: Vec<u64> = self.running.keys().copied().collect();
                let abandoned = running.len();
                for seq in running {
                    self.abandon_running(seq, "RESET", String::from("gpu reset"), now);
                }
                Ok(format!(
                    "OK RESET drained={drained} abandoned={abandoned} lease={} waiting_dropped={dropped}\n",
                    ended.map_or_else(|| String::from("-"), |l| l.lease.holder)
                ))
            }
            // Injections need the GPU source: the bridge runs them
            // (`GpuState::inject`), never this table.
            Command::Fault(_) => Err(BridgeError::BadCommand(String::from(
                "FAULT is run by the bridge",
            ))),
        }
    }

    fn authorise(&self, actor: &Actor) -> Result<&ActiveLease, BridgeError> {
        let active = self
            .leases
            .active()
            .ok_or_else(|| BridgeError::NoLease(self.desc.id.clone()))?;
        let holder_ok = match actor.role {
            // A GPU worker acts for itself only. NineDoor forwards each
            // worker's requests under a ticket with that worker's own
            // subject (signed with the key shared with this bridge), so
            // this check holds through NineDoor too.
            Role::WorkerGpu => actor.subject == active.lease.holder,
            // The queen, and ticketless development clients (`--anonymous`),
            // act for the holder.
            Role::Queen | Role::Anonymous => true,
            _ => false,
        };
        if !holder_ok {
            return Err(BridgeError::NotHolder {
                who: actor.subject.clone(),
                holder: active.lease.holder.clone(),
            });
        }
        Ok(active)
    }

    /// Renews the active lease from a write to `lease`; returns the lease
    /// as `lease` shows it.
    pub fn renew(
        &mut self,
        bytes: &[u8],
        actor: &Actor,
        now: u64,
        log: &mut EventLog,
    ) -> Result<String, BridgeError> {
        self.tick(now, log);
        let result = Renewal::parse(bytes).and_then(|r| {
            self.authorise(actor)?;
            self.leases.renew(r.ttl_s, now)
        });
        let outcome = match &result {
            Ok(l) => format!("OK {}", describe(l)),
            Err(e) => format!("ERR {} {e}", e.reason()),
        };
        log.record(
            now,
            &self.desc.id,
            Some(actor),
            &format!("renew -> {outcome}"),
        );
        result.map(|_| self.lease_json(now))
    }

    /// Validates and queues one job descriptor written to `job`; returns
    /// the reply line.
    pub fn submit(
        &mut self,
        bytes: &[u8],
        artefacts: &Artefacts,
        actor: &Actor,
        now: u64,
        log: &mut EventLog,
    ) -> Result<String, BridgeError> {
        self.tick(now, log);
        let result = self.accept(bytes, artefacts, actor, now);
        match &result {
            Ok((job_id, reply)) => log.record(
                now,
                &self.desc.id,
                Some(actor),
                &format!("job {job_id} -> {}", reply.trim_end()),
            ),
            Err(e) => {
                self.totals.refused += 1;
                log.record(
                    now,
                    &self.desc.id,
                    Some(actor),
                    &format!("job refused -> ERR {} {e}", e.reason()),
                );
            }
        }
        result.map(|(_, reply)| reply)
    }

    fn accept(
        &mut self,
        bytes: &[u8],
        artefacts: &Artefacts,
        actor: &Actor,
        now: u64,
    ) -> Result<(String, String), BridgeError> {
        // The lease is checked first: without one, nothing is parsed.
        let active = self.authorise(actor)?;
        let (mem_cap, stream_cap) = (active.lease.mem_mb, active.lease.streams);
        let job = validate(bytes, artefacts)?;
        if job.mem_mb > mem_cap {
            return Err(BridgeError::OverCap {
                what: "mem_mb",
                asked: u64::from(job.mem_mb),
                cap: u64::from(mem_cap),
            });
        }
        if job.streams > stream_cap {
            return Err(BridgeError::OverCap {
                what: "streams",
                asked: u64::from(job.streams),
                cap: u64::from(stream_cap),
            });
        }
        let taken = self.queued.iter().any(|q| q.job.job_id == job.job_id)
            || self
                .running
                .values()
                .any(|r| !r.abandoned && r.job_id == job.job_id);
        if taken {
            return Err(BridgeError::DuplicateJob(job.job_id));
        }
        if self.queued.len() >= MAX_QUEUED {
            return Err(BridgeError::QueueFull {
                gpu: self.desc.id.clone(),
                max: MAX_QUEUED,
            });
        }
        self.next_seq += 1;
        let queued = Queued {
            seq: self.next_seq,
            accepted_ms: now,
            deadline_ms: now.saturating_add(job.timeout_ms),
            job,
        };
        let at = self
            .queued
            .iter()
            .position(|q| q.job.priority < queued.job.priority)
            .unwrap_or(self.queued.len());
        let (job_id, priority) = (queued.job.job_id.clone(), queued.job.priority);
        self.queued.insert(at, queued);
        self.totals.accepted += 1;
        let line = StatusLine::Queued {
            job_id: job_id.clone(),
            priority,
            position: at + 1,
        };
        let reply = format!("{line}\n");
        self.emit(line, now);
        Ok((job_id, reply))
    }

    /// Hands out at most `max` jobs that may start now (see the module
    /// docs), marking them `RUNNING`. An executor that runs one job at a
    /// time asks for one.
    pub fn dispatch(&mut self, now: u64, log: &mut EventLog, max: usize) -> Vec<Dispatch> {
        self.tick(now, log);
        let Some(lease) = self.leases.active().map(|a| a.lease.clone()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while out.len() < max {
            let (streams, mem) = self.running.values().fold((0u64, 0u64), |(s, m), r| {
                (s + u64::from(r.streams), m + u64::from(r.mem_mb))
            });
            let Some(head) = self.queued.first() else {
                break;
            };
            let (js, jm) = (u64::from(head.job.streams), u64::from(head.job.mem_mb));
            if js > u64::from(lease.streams) || jm > u64::from(lease.mem_mb) {
                // The holder narrowed its lease after this job queued: it
                // can never run under these terms.
                let q = self.queued.remove(0);
                let detail = format!(
                    "needs streams={js} mem_mb={jm}, lease allows streams={} mem_mb={}",
                    lease.streams, lease.mem_mb
                );
                self.fail_queued(q, "CAP", detail, now);
                continue;
            }
            if streams + js > u64::from(lease.streams) || mem + jm > u64::from(lease.mem_mb) {
                break;
            }
            let q = self.queued.remove(0);
            self.running.insert(
                q.seq,
                Running {
                    job_id: q.job.job_id.clone(),
                    kernel: q.job.workload.kernel().name(),
                    priority: q.job.priority,
                    mem_mb: q.job.mem_mb,
                    streams: q.job.streams,
                    accepted_ms: q.accepted_ms,
                    started_ms: now,
                    deadline_ms: q.deadline_ms,
                    abandoned: false,
                    lease_id: self.leases.active().map_or(0, |a| a.lease_id),
                    energy_start: self.watch.energy_now(),
                },
            );
            self.charge_dispatch(q.seq);
            self.emit(
                StatusLine::Running {
                    job_id: q.job.job_id.clone(),
                },
                now,
            );
            out.push(Dispatch {
                ticket: RunTicket {
                    gpu: self.index,
                    seq: q.seq,
                },
                budget: Duration::from_millis(q.deadline_ms.saturating_sub(now)),
                job: q.job,
            });
        }
        out
    }

    /// Takes the outcome of a dispatched job. Outcomes of jobs already
    /// failed (timed out, reset) only free their resources.
    pub fn complete(
        &mut self,
        ticket: RunTicket,
        executor: &'static str,
        outcome: Result<ExecOutput, ExecError>,
        now: u64,
    ) {
        let Some(r) = self.running.remove(&ticket.seq) else {
            return;
        };
        self.charge_outcome(&r, &outcome, now);
        if r.abandoned {
            self.totals.late += 1;
            return;
        }
        let queued_ms = Some(r.started_ms.saturating_sub(r.accepted_ms));
        let run_ms = Some(now.saturating_sub(r.started_ms));
        match outcome {
            Ok(out) => {
                let sha256 = sha256_hex(&output_bytes(&out.values));
                let device_time_us = out.device_time.map(us);
                self.totals.ok += 1;
                self.emit(
                    StatusLine::Ok {
                        job_id: r.job_id.clone(),
                        sha256: sha256.clone(),
                        values: out.values.iter().take(STATUS_VALUES).copied().collect(),
                    },
                    now,
                );
                let len = out.values.len();
                let mut values = out.values;
                values.truncate(MAX_RESULT_VALUES);
                if self.results.len() >= RESULTS_KEPT {
                    self.results.pop_front();
                }
                self.results.push_back(JobResult {
                    job_id: r.job_id.clone(),
                    kernel: r.kernel,
                    executor,
                    sha256,
                    device_time_us,
                    max_abs_err: out.max_abs_err,
                    len,
                    truncated: len > MAX_RESULT_VALUES,
                    values,
                });
                self.remember(JobSummary {
                    job_id: r.job_id,
                    kernel: r.kernel,
                    outcome: String::from("OK"),
                    priority: r.priority,
                    queued_ms,
                    run_ms,
                    device_time_us,
                    executor: Some(executor),
                });
            }
            Err(e) => {
                let reason = e.reason();
                self.totals.failed += 1;
                if matches!(e, ExecError::Timeout { .. }) {
                    self.totals.timeouts += 1;
                }
                self.emit(
                    StatusLine::Err {
                        reason: String::from(reason),
                        job_id: r.job_id.clone(),
                        detail: e.to_string(),
                    },
                    now,
                );
                self.remember(JobSummary {
                    job_id: r.job_id,
                    kernel: r.kernel,
                    outcome: format!("ERR {reason}"),
                    priority: r.priority,
                    queued_ms,
                    run_ms,
                    device_time_us: None,
                    executor: Some(executor),
                });
            }
        }
    }

    /// What `ctl` shows before any command: one state line.
    pub fn ctl_line(&self, now: u64) -> String {
        match self.leases.active() {
            Some(a) => format!(
                "LEASED {} remaining_ms={} queued={} running={} waiting={}\n",
                describe(a),
                a.expires_ms.saturating_sub(now),
                self.queued.len(),
                self.running.len(),
                self.leases.waiting().count()
            ),
            None => format!(
                "IDLE gpu={} running={} waiting={}\n",
                self.desc.id,
                self.running.len(),
                self.leases.waiting().count()
            ),
        }
    }

    /// What `lease` shows: the active lease and the waiting requests, JSON.
    pub fn lease_json(&self, now: u64) -> String {
        #[derive(Serialize)]
        struct View<'a> {
            gpu_id: &'a str,
            active: Option<ActiveView<'a>>,
            waiting: Vec<&'a crate::lease::GpuLease>,
        }
        #[derive(Serialize)]
        struct ActiveView<'a> {
            #[serde(flatten)]
            lease: &'a ActiveLease,
            remaining_ms: u64,
            usage: gpu_contract::LeaseUsage,
        }
        let view = View {
            gpu_id: &self.desc.id,
            active: self.leases.active().map(|lease| ActiveView {
                lease,
                remaining_ms: lease.expires_ms.saturating_sub(now),
                usage: self.watch.usage_of(lease),
            }),
            waiting: self.leases.waiting().collect(),
        };
        json_line(&view)
    }

    /// What `info` shows: the descriptor, the last reading's memory and
    /// utilisation, the source and the health, JSON.
    pub fn info_json(&self, source: &str) -> String {
        #[derive(Serialize)]
        struct View<'a> {
            #[serde(flatten)]
            desc: &'a GpuDescriptor,
            #[serde(flatten)]
            sample: GpuSample,
            source: &'a str,
            health: &'a gpu_contract::Health,
        }
        json_line(&View {
            desc: &self.desc,
            sample: GpuSample::of(self.watch.telemetry()),
            source,
            health: self.watch.health().health(),
        })
    }

    /// What `stats` shows: the contract's stats line (health, the last
    /// reading, the active lease's usage), then utilisation, queue
    /// occupancy, counters, the recent job summaries and the recent
    /// leases' usage, JSON.
    pub fn stats_json(&self, now: u64) -> String {
        #[derive(Serialize)]
        struct Occupancy {
            queued: usize,
            running: usize,
            streams_in_use: u64,
            mem_mb_in_use: u64,
            streams_cap: Option<u32>,
            mem_mb_cap: Option<u32>,
        }
        #[derive(Serialize)]
        struct View<'a> {
            #[serde(flatten)]
            line: gpu_contract::StatsLine,
            utilisation: GpuSample,
            holder: Option<&'a str>,
            occupancy: Occupancy,
            totals: Totals,
            recent: Vec<&'a JobSummary>,
            leases: Vec<&'a gpu_contract::LeaseUsage>,
        }
        let lease = self.leases.active().map(|a| &a.lease);
        let (streams, mem) = self.running.values().fold((0u64, 0u64), |(s, m), r| {
            (s + u64::from(r.streams), m + u64::from(r.mem_mb))
        });
        let telemetry = self.watch.telemetry();
        json_line(&View {
            line: gpu_contract::StatsLine {
                gpu_id: self.desc.id.clone(),
                at_ms: self.watch.read_at().unwrap_or(now),
                health: self.watch.health().health().clone(),
                telemetry: telemetry.clone(),
                lease: self.leases.active().map(|a| self.watch.usage_of(a)),
            },
            utilisation: GpuSample::of(telemetry),
            holder: lease.map(|l| l.holder.as_str()),
            occupancy: Occupancy {
                queued: self.queued.len(),
                running: self.running.len(),
                streams_in_use: streams,
                mem_mb_in_use: mem,
                streams_cap: lease.map(|l| l.streams),
                mem_mb_cap: lease.map(|l| l.mem_mb),
            },
            totals: self.totals,
            recent: self.recent.iter().rev().collect(),
            leases: self.watch.recent_usage().collect(),
        })
    }

    /// What `result` shows: one JSON line per kept result, oldest first.
    pub fn results_text(&self) -> String {
        self.results.iter().map(json_line).collect()
    }
}

fn json_line<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string(value).unwrap_or_default();
    s.push('\n');
    s
}

/// A lease's terms as `key=value` words.
pub fn describe(l: &ActiveLease) -> String {
    format!(
        "holder={} mem_mb={} streams={} ttl_s={} priority={} lease_id={} expires_ms={}",
        l.lease.holder,
        l.lease.mem_mb,
        l.lease.streams,
        l.lease.ttl_s,
        l.lease.priority,
        l.lease_id,
        l.expires_ms
    )
}

/// What a restarted bridge brings back (see `store`).
impl GpuState {
    /// Puts a restored lease book in place of this GPU's.
    pub(crate) fn restore_leases(&mut self, book: LeaseBook) {
        self.leases = book;
    }
}
