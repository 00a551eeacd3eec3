//! What a GPU's state knows beyond leases and jobs: its health (faults, the
//! policy's verdict, quarantine with revocation, re-admission after a
//! re-probe), its last telemetry reading, and the usage charged to each
//! lease. [`GpuState::upkeep`] runs before every operation on the GPU: it
//! reads the energy counter, settles finished jobs' energy, takes a
//! telemetry reading when one is due and re-probes a quarantined GPU whose
//! hold-down has passed. Time is an argument; the source is lent.

use super::{GpuState, Running};
use crate::bridge::GpuContext;
use crate::config::BridgeConfig;
use crate::discovery::{GpuSource, Injection};
use crate::error::BridgeError;
use crate::executor::{ExecError, ExecOutput};
use crate::health::{Action, Fault, HealthState};
use crate::lease::ActiveLease;
use crate::limits::TICKETS_TRACKED;
use crate::log::{Actor, EventLog};
use crate::telemetry::Activity;
use crate::usage::UsageBook;
use gpu_contract::{LeaseUsage, Telemetry};
use secure9p_core::{Role, TicketId};
use std::collections::VecDeque;
use std::sync::mpsc::Sender;

/// The reason word of the `ERR` lines of jobs a fault ends.
pub const GPU_FAULT: &str = "GPU-FAULT";

/// Health, telemetry and usage of one GPU.
#[derive(Debug, Default)]
pub struct Watch {
    config: BridgeConfig,
    health: HealthState,
    usage: UsageBook,
    telemetry: Telemetry,
    read_at: Option<u64>,
    energy_now: Option<u64>,
    /// GPU time of every finished job, µs.
    busy_us: u64,
    /// GPU workers' tickets seen on this GPU (subject, ticket), oldest first.
    tickets: VecDeque<(String, TicketId)>,
    /// Where a quarantine sends the tickets to revoke (the host closes their
    /// fids outside the bridge's lock).
    revoke: Option<Sender<TicketId>>,
}

impl Watch {
    /// The energy counter at the last upkeep, mJ.
    pub fn energy_now(&self) -> Option<u64> {
        self.energy_now
    }

    /// The last reading (every field `None` before the first).
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// When the last reading was taken, ms.
    pub fn read_at(&self) -> Option<u64> {
        self.read_at
    }

    /// The health.
    pub fn health(&self) -> &HealthState {
        &self.health
    }

    /// The usage of `lease` so far.
    pub fn usage_of(&self, lease: &ActiveLease) -> LeaseUsage {
        self.usage.of(lease.lease_id, &lease.lease.holder)
    }

    /// The usage of recent leases, newest first.
    pub fn recent_usage(&self) -> impl Iterator<Item = &LeaseUsage> {
        self.usage.recent()
    }
}

impl GpuState {
    /// Sets the telemetry interval, hold-down and fault policy.
    pub fn configure(&mut self, config: &BridgeConfig) {
        self.watch.config = config.clone();
    }

    /// Sends the tickets a quarantine revokes to `tx`.
    pub fn set_revoker(&mut self, tx: Sender<TicketId>) {
        self.watch.revoke = Some(tx);
    }

    /// Health, telemetry and usage.
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    fn activity(&self, now: u64) -> Activity {
        let running: u64 = self
            .running
            .values()
            .map(|r| now.saturating_sub(r.started_ms).saturating_mul(1000))
            .sum();
        Activity {
            now_ms: now,
            running: self.running.len(),
            mem_mb_in_use: self.running.values().map(|r| u64::from(r.mem_mb)).sum(),
            busy_us: self.watch.busy_us.saturating_add(running),
        }
    }

    /// `Err` while quarantined: no lease is granted.
    pub(super) fn refuse_if_quarantined(&self) -> Result<(), BridgeError> {
        match self.watch.health.health() {
            gpu_contract::Health::Ok => Ok(()),
            gpu_contract::Health::Quarantined { reason } => Err(BridgeError::Quarantined {
                gpu: self.desc.id.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Charges the job just dispatched as `seq` to its lease.
    pub(super) fn charge_dispatch(&mut self, seq: u64) {
        let Some(lease_id) = self.running.get(&seq).map(|r| r.lease_id) else {
            return;
        };
        let mem: u64 = self
            .running
            .values()
            .filter(|r| r.lease_id == lease_id)
            .map(|r| u64::from(r.mem_mb))
            .sum();
        let holder = self
            .leases
            .active()
            .map(|a| a.lease.holder.clone())
            .unwrap_or_default();
        self.watch.usage.dispatched(lease_id, &holder, mem);
    }

    /// Charges a job's outcome to its lease: its device time where the
    /// executor measured one, else its time on the executor.
    pub(super) fn charge_outcome(
        &mut self,
        r: &Running,
        outcome: &Result<ExecOutput, ExecError>,
        now: u64,
    ) {
        let measured = match outcome {
            Ok(out) => out.device_time.map(super::us),
            Err(_) => None,
        };
        let gpu_us =
            measured.unwrap_or_else(|| now.saturating_sub(r.started_ms).saturating_mul(1000));
        self.watch.busy_us = self.watch.busy_us.saturating_add(gpu_us);
        self.watch
            .usage
            .finished(r.lease_id, gpu_us, r.energy_start);
    }

    /// Remembers a GPU worker's ticket, so that a quarantine can revoke it.
    pub fn seen(&mut self, role: Role, subject: &str, ticket: Option<TicketId>) {
        let (Role::WorkerGpu, Some(ticket)) = (role, ticket) else {
            return;
        };
        let t = &mut self.watch.tickets;
        if t.iter().any(|(s, id)| s == subject && *id == ticket) {
            return;
        }
        if t.len() >= TICKETS_TRACKED {
            t.pop_front();
        }
        t.push_back((String::from(subject), ticket));
    }

    /// Runs before every operation (see the module docs).
    pub fn upkeep(&mut self, now: u64, source: &mut dyn GpuSource, log: &mut EventLog) {
        let activity = self.activity(now);
        self.watch.energy_now = source.energy_mj(self.index, &activity);
        self.watch.usage.settle(self.watch.energy_now);
        let due = self
            .watch
            .read_at
            .is_none_or(|at| now.saturating_sub(at) >= self.watch.config.telemetry_interval_ms);
        if due {
            let reading = source.read(self.index, &activity);
            self.watch.telemetry = reading.telemetry;
            self.watch.read_at = Some(now);
            self.observe_own_memory();
            if let Some(fault) = reading.fault
                && self.watch.health.health().is_ok()
            {
                self.fault(fault, None, now, log);
            }
        }
        if let Some(at) = self.watch.health.probe_at()
            && now >= at
        {
            let was = self.watch.health.health().to_string();
            match source.probe(self.index) {
                Ok(()) => {
                    self.watch.health.readmit();
                    log.record(
                        now,
                        &self.desc.id,
                        None,
                        &format!("health {was} -> ok: re-probe passed after the hold-down"),
                    );
                }
                Err(why) => {
                    let hold = self.watch.config.hold_down_ms;
                    self.watch.health.probe_failed(now, hold);
                    log.record(
                        now,
                        &self.desc.id,
                        None,
                        &format!("health {was}: re-probe failed ({why}); next in {hold} ms"),
                    );
                }
            }
        }
    }

    /// Raises the running lease's peak to what NVML saw this process hold.
    fn observe_own_memory(&mut self) {
        let pid = std::process::id();
        let held = self
            .watch
            .telemetry
            .processes
            .as_ref()
            .and_then(|ps| ps.iter().find(|p| p.pid == pid))
            .and_then(|p| p.used_mib);
        let lease = self.running.values().map(|r| r.lease_id).next();
        if let (Some(mib), Some(lease_id)) = (held, lease) {
            self.watch.usage.observed(lease_id, mib);
        }
    }

    /// Handles a fault as the policy says; returns what it did.
    pub fn fault(
        &mut self,
        fault: Fault,
        actor: Option<&Actor>,
        now: u64,
        log: &mut EventLog,
    ) -> Action {
        let action = self.watch.config.policy.action(fault);
        let reason = fault.to_string();
        match action {
            Action::Ignore => log.record(
                now,
                &self.desc.id,
                actor,
                &format!("health-event {reason} action=ignore"),
            ),
            Action::FailJob => {
                let failed = self.fail_running(&reason, now);
                log.record(
                    now,
                    &self.desc.id,
                    actor,
                    &format!("health-event {reason} action=fail-job failed={failed}"),
                );
            }
            Action::Quarantine => self.quarantine(&reason, actor, now, log),
        }
        action
    }

    /// Ends every running job `ERR GPU-FAULT`; returns how many.
    fn fail_running(&mut self, reason: &str, now: u64) -> usize {
        let running: Vec<u64> = self
            .running
            .iter()
            .filter(|(_, r)| !r.abandoned)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &running {
            self.abandon_running(*seq, GPU_FAULT, String::from(reason), now);
        }
        running.len()
    }

    fn quarantine(&mut self, reason: &str, actor: Option<&Actor>, now: u64, log: &mut EventLog) {
        let hold = self.watch.config.hold_down_ms;
        if !self.watch.health.quarantine(reason, now, hold) {
            log.record(
                now,
                &self.desc.id,
                actor,
                &format!(
                    "health-event {reason} action=quarantine: already {}, hold-down restarted ({hold} ms)",
                    self.watch.health.health()
                ),
            );
            return;
        }
        let holder = self.leases.active().map(|a| a.lease.holder.clone());
        let (ended, dropped) = self.leases.reset();
        let queued = std::mem::take(&mut self.queued);
        let drained = queued.len();
        for q in queued {
            self.fail_queued(q, GPU_FAULT, String::from(reason), now);
        }
        let abandoned = self.fail_running(reason, now);
        let revoked = holder.as_deref().map_or(0, |h| self.revoke_holder(h));
        log.record(
            now,
            &self.desc.id,
            actor,
            &format!(
                "health ok -> {}: lease={} lease_id={} drained={drained} abandoned={abandoned} waiting_dropped={dropped} tickets_revoked={revoked} re-probe in {hold} ms",
                self.watch.health.health(),
                holder.as_deref().unwrap_or("-"),
                ended.map_or_else(|| String::from("-"), |l| l.lease_id.to_string()),
            ),
        );
    }

    /// Sends the tickets of `holder` to the revoker; returns how many.
    fn revoke_holder(&mut self, holder: &str) -> usize {
        let (theirs, others): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.watch.tickets)
            .into_iter()
            .partition(|(s, _)| s == holder);
        self.watch.tickets = others;
        if let Some(tx) = &self.watch.revoke {
            for (_, id) in &theirs {
                let _ = tx.send(*id);
            }
        }
        theirs.len()
    }

    /// Runs a `FAULT …` command: the source injects it (mock GPUs only) and
    /// the fault it raises is handled as NVML's would be.
    pub fn inject(
        &mut self,
        what: Injection,
        actor: &Actor,
        cx: &mut GpuContext<'_>,
    ) -> Result<String, BridgeError> {
        let raised = match cx.source.inject(self.index, what) {
            Ok(r) => r,
            Err(why) => {
                cx.log.record(
                    cx.now,
                    &self.desc.id,
                    Some(actor),
                    &format!("ctl FAULT -> ERR COMMAND {why}"),
                );
                return Err(BridgeError::BadCommand(why));
            }
        };
        let reply = match raised {
            Some(fault) => {
                let action = self.fault(fault, Some(actor), cx.now, cx.log);
                format!("OK FAULT {fault} action={}\n", action.name())
            }
            None => String::from("OK FAULT restored (re-admitted at the next re-probe)\n"),
        };
        cx.log.record(
            cx.now,
            &self.desc.id,
            Some(actor),
            &format!("ctl FAULT -> {}", reply.trim_end()),
        );
        Ok(reply)
    }
}
