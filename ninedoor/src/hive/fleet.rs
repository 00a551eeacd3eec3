//! The hive's GPU fleet: which bridge brought each GPU, the leases the hive
//! placed (and the MiB each asked), "any GPU" placement, and bridges added
//! or removed through `/queen/ctl`.
//!
//! Sans-IO like the rest of the hive: a `bridge` command only decides and
//! queues a [`BridgeEvent`]; the embedder starts or stops the link. A
//! bridge's GPUs come in through [`Hive::install_bridge_gpus`], one by one,
//! so a duplicate or malformed id costs that GPU only (logged once per
//! bridge), never the bridge or the hive.
//!
//! **Load** of a GPU, for placement: first the leases the hive holds on it
//! (each GPU worker it spawned for a lease there that still lives, and each
//! lease it is asking the bridge for now), then the MiB those leases cap
//! against the GPU's memory (parts per million), then the id. A GPU's free
//! memory is its memory less those MiB. A lease restored from the state
//! directory counts as a lease of 0 MiB (its terms are the bridge's).

use super::{Hive, Line, Refusal, Who, log, reply_line};
use crate::bridge::BridgeTarget;
use crate::gpu::{GpuFile, GpuOp, GpuOrigin, GpuRequest};
use crate::lease::BridgeCommand;
use crate::worker::valid_id;
use crate::{GpuDescriptor, HiveError};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use secure9p_core::{Completion, FsError, Principal, Role, Token};
use serde::Serialize;

/// The `gpu` of a `lease` that lets the hive choose; no GPU may have it as
/// its id.
pub const ANY_GPU: &str = "any";

/// The most bridges one hive mirrors: a bound on what a `bridge` command
/// can make the embedder hold (a link, a task, a connection each), far
/// above the 100 of the scale run.
pub const MAX_BRIDGES: usize = 1024;

/// The most GPUs one "any GPU" lease asks in turn. Each refusal is quick
/// (an `ERR` line), but a bridge that does not answer costs its timeout
/// (5 s by default): four keep the worst case inside `cohsh`'s 30 s.
pub const MAX_PLACEMENT_TRIES: usize = 4;

/// A change to the bridge links, for the embedder to carry out (see
/// [`Hive::take_bridge_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEvent {
    /// Start a link to this bridge; hand its listing to
    /// [`Hive::install_bridge_gpus`] when it comes.
    Add(BridgeTarget),
    /// Stop this bridge's link: complete everything it holds with
    /// `EHOSTUNREACH` and drop its routes. Its GPUs are already gone from
    /// `/gpu`.
    Remove(BridgeTarget),
}

/// What [`Hive::install_bridge_gpus`] made of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeGpus {
    /// The GPUs this bridge serves, installed now or before, as
    /// `(id in /gpu, the bridge's id)`: route them to its link.
    pub routes: Vec<(String, String)>,
    /// One line per GPU refused (duplicate or malformed id), for the
    /// operator's log; `/log/queen.log` has them too.
    pub refused: Vec<String>,
}

/// One bridge the hive knows.
#[derive(Debug)]
struct Bridge {
    target: BridgeTarget,
    gpus: BTreeSet<String>,
}

/// A lease the hive placed, by holder.
#[derive(Debug)]
struct Held {
    gpu: String,
    mem_mb: u32,
}

/// An "any GPU" lease being placed: the GPUs left to ask, in order, and
/// what the ones asked answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AnyGpu {
    rest: Vec<String>,
    refused: Vec<String>,
    line: Vec<u8>,
}

/// The fleet's state, kept by the hive.
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    /// Whether the embedder adds and removes links at run time.
    changes: bool,
    /// Bridges by address.
    bridges: BTreeMap<String, Bridge>,
    /// The bridge (address) of each GPU installed from one.
    owner: BTreeMap<String, String>,
    /// Each installed GPU's memory, MiB.
    memory: BTreeMap<String, u64>,
    held: BTreeMap<String, Held>,
    /// `(bridge address, id)` refusals logged already.
    refused: BTreeSet<(String, String)>,
    /// GPUs whose bridge says they are not healthy (quarantined): "any
    /// GPU" placement passes them over.
    unhealthy: BTreeSet<String>,
    events: Vec<BridgeEvent>,
    forwards: Vec<GpuRequest>,
}

impl Fleet {
    /// Notes an installed GPU's memory.
    pub(crate) fn installed(&mut self, gpu: &str, memory_mb: u64) {
        self.memory.insert(String::from(gpu), memory_mb);
    }
}

#[derive(Serialize)]
struct BridgeReply<'a> {
    bridge: &'a str,
    target: String,
    bridges: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpus_removed: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workers_killed: Option<&'a [String]>,
}

/// The `/gpu/<id>/ctl` request that runs a `lease` or `release` line on a
/// bridge as `who`.
pub(crate) fn command_request(
    token: Token,
    gpu: &str,
    who: &Principal,
    line: Vec<u8>,
) -> GpuRequest {
    GpuRequest {
        token,
        gpu: String::from(gpu),
        file: GpuFile::Ctl,
        op: GpuOp::Write {
            offset: 0,
            data: line,
        },
        role: who.role,
        subject: who.subject.clone(),
        ticket: who.ticket,
        scope: who.scope.clone(),
        expires: who.expires,
        origin: GpuOrigin::Command,
    }
}

impl Hive {
    /// Declares that the embedder adds and removes bridge links at run
    /// time: from now on the `bridge` command of `/queen/ctl` is run (and
    /// [`Hive::take_bridge_events`] must be drained after each
    /// [`Hive::handle`]); without it the command is refused with
    /// `EOPNOTSUPP` (the seL4 image's links are fixed at build time).
    pub fn allow_bridge_changes(&mut self) {
        self.fleet.changes = true;
    }

    /// Registers a bridge the embedder links at start (its configuration):
    /// a `bridge` command can then remove it, and a second add of its
    /// address is refused. Returns `false` if its address is known already.
    pub fn add_configured_bridge(&mut self, target: &BridgeTarget) -> bool {
        if self.fleet.bridges.contains_key(&target.addr) {
            return false;
        }
        self.fleet.bridges.insert(
            target.addr.clone(),
            Bridge {
                target: target.clone(),
                gpus: BTreeSet::new(),
            },
        );
        true
    }

    /// The bridges known (configured or added), with the ids in `/gpu` of
    /// the GPUs each brought.
    pub fn bridges(&self) -> Vec<(BridgeTarget, Vec<String>)> {
        self.fleet
            .bridges
            .values()
            .map(|b| (b.target.clone(), b.gpus.iter().cloned().collect()))
            .collect()
    }

    /// The link changes since the last call, oldest first.
    pub fn take_bridge_events(&mut self) -> Vec<BridgeEvent> {
        core::mem::take(&mut self.fleet.events)
    }

    /// Requests for the bridge the hive made on its own since the last
    /// call: an "any GPU" lease asking its next candidate after one
    /// refused. Forward each like a [`Handled::Forward`](crate::Handled)
    /// one; call after every [`Hive::complete`].
    pub fn take_forwards(&mut self) -> Vec<GpuRequest> {
        core::mem::take(&mut self.fleet.forwards)
    }

    /// Installs the GPUs `bridge` lists (`descriptors` with the bridge's
    /// own ids; its prefix is put before them), each on its own: one whose
    /// id is malformed, reserved (`any`), listed twice, or another bridge's
    /// is refused and logged (`gpu-refused`, once per bridge and id); the
    /// others are installed. GPUs of a bridge the hive does not know (one
    /// removed meanwhile) are not installed.
    pub fn install_bridge_gpus(
        &mut self,
        bridge: &BridgeTarget,
        descriptors: &[GpuDescriptor],
    ) -> BridgeGpus {
        let mut done = BridgeGpus::default();
        if !self.fleet.bridges.contains_key(&bridge.addr) {
            return done;
        }
        let mut seen = BTreeSet::new();
        for d in descriptors {
            let local = bridge.local_id(&d.id);
            let owner = self.fleet.owner.get(&local).cloned();
            let why = if !seen.insert(local.clone()) {
                Some(String::from("listed twice by this bridge"))
            } else if owner.as_deref() == Some(bridge.addr.as_str()) {
                done.routes.push((local, d.id.clone()));
                continue;
            } else if !valid_id(&local) {
                Some(String::from(
                    "gpu id is not 1 to 64 characters of [A-Za-z0-9_-]",
                ))
            } else if local == ANY_GPU {
                Some(String::from("gpu id any is reserved for placement"))
            } else if self.gpus.contains(&local) {
                Some(format!(
                    "gpu {local} is installed already (from {}); give each bridge a prefix (PREFIX=HOST:PORT)",
                    owner.as_deref().unwrap_or("the embedder")
                ))
            } else {
                let mut desc = d.clone();
                desc.id = local.clone();
                match self.install_gpu_nodes(core::slice::from_ref(&desc)) {
                    Ok(()) => {
                        self.fleet.owner.insert(local.clone(), bridge.addr.clone());
                        if let Some(b) = self.fleet.bridges.get_mut(&bridge.addr) {
                            b.gpus.insert(local.clone());
                        }
                        done.routes.push((local.clone(), d.id.clone()));
                        None
                    }
                    Err(e) => Some(format!("{e}")),
                }
            };
            if let Some(why) = why {
                done.refused.push(format!("gpu {local:?} refused: {why}"));
                if self
                    .fleet
                    .refused
                    .insert((bridge.addr.clone(), local.clone()))
                {
                    log::append(
                        &self.log,
                        Line::new(self.now, "gpu-refused", Who::NOBODY)
                            .field("bridge", &bridge.addr)
                            .field("gpu", &local)
                            .why(&why),
                    );
                }
            }
        }
        done
    }

    /// Runs `{"cmd":"bridge","add":…}` or `{"cmd":"bridge","remove":…}`.
    pub(super) fn bridge_command(
        &mut self,
        who: &Principal,
        add: Option<&str>,
        remove: Option<&str>,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        if !self.fleet.changes {
            return Err(Refusal::new(
                FsError::NotSupported,
                "this NineDoor's bridge links are fixed: it cannot add or remove bridges at run time \
                 (the seL4 image links its bridge at build time; a host daemon needs --gpu-bridge-key)",
            ));
        }
        let (text, adding) = match (add, remove) {
            (Some(t), None) => (t, true),
            (None, Some(t)) => (t, false),
            _ => {
                return Err(Refusal::new(
                    FsError::Invalid,
                    "bridge takes exactly one of add or remove",
                ));
            }
        };
        let target: BridgeTarget = text
            .parse()
            .map_err(|why: String| Refusal::new(FsError::Invalid, why))?;
        if adding {
            self.add_bridge(who, target, now)
        } else {
            self.remove_bridge(who, &target, now)
        }
    }

    fn add_bridge(
        &mut self,
        who: &Principal,
        target: BridgeTarget,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        if let Some(b) = self.fleet.bridges.get(&target.addr) {
            return Err(Refusal::new(
                FsError::Exists,
                format!("bridge {} is linked already (as {})", target.addr, b.target),
            ));
        }
        if self.fleet.bridges.len() >= MAX_BRIDGES {
            return Err(Refusal::new(
                FsError::NoSpace,
                format!("bridge limit of {MAX_BRIDGES} reached"),
            ));
        }
        self.add_configured_bridge(&target);
        log::append(
            &self.log,
            Line::new(now, "bridge-added", Who::of(who)).field("bridge", &format!("{target}")),
        );
        let reply = reply_line(&BridgeReply {
            bridge: "added",
            target: format!("{target}"),
            bridges: self.fleet.bridges.len(),
            gpus_removed: None,
            workers_killed: None,
        });
        self.fleet.events.push(BridgeEvent::Add(target));
        reply
    }

    /// Removes a bridge: its GPUs leave `/gpu` (fids on them answer
    /// `ENOENT` from now on), the GPU workers scoped to them are killed
    /// (tickets revoked, fids closed: their leases on the bridge run out
    /// on their TTL, as NineDoor no longer reaches it), and the embedder is
    /// told to stop the link.
    fn remove_bridge(
        &mut self,
        who: &Principal,
        target: &BridgeTarget,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        let Some(bridge) = self.fleet.bridges.remove(&target.addr) else {
            return Err(Refusal::new(
                FsError::NotFound,
                format!("no bridge {} is linked", target.addr),
            ));
        };
        self.fleet.refused.retain(|(addr, _)| *addr != target.addr);
        let gpus: Vec<String> = bridge.gpus.iter().cloned().collect();
        let mut killed = Vec::new();
        for gpu in &gpus {
            let holders: Vec<String> = self
                .workers
                .iter()
                .filter(|(_, w)| w.role == Role::WorkerGpu && w.scope == *gpu)
                .map(|(id, _)| id.clone())
                .collect();
            for id in holders {
                if self.kill(who, &id, now).is_ok() {
                    killed.push(id);
                }
            }
            self.remove_gpu(gpu, &bridge.target, now);
        }
        log::append(
            &self.log,
            Line::new(now, "bridge-removed", Who::of(who))
                .field("bridge", &format!("{}", bridge.target))
                .num("gpus", gpus.len() as u64)
                .num("workers-killed", killed.len() as u64),
        );
        let reply = reply_line(&BridgeReply {
            bridge: "removed",
            target: format!("{}", bridge.target),
            bridges: self.fleet.bridges.len(),
            gpus_removed: Some(&gpus),
            workers_killed: Some(&killed),
        });
        self.fleet.events.push(BridgeEvent::Remove(bridge.target));
        reply
    }

    /// Takes `/gpu/<gpu>` out of the namespace and the hive's books.
    fn remove_gpu(&mut self, gpu: &str, bridge: &BridgeTarget, now: u64) {
        let path = format!("/gpu/{gpu}");
        let ns = self.server.namespace_mut();
        if let Some(dir) = ns.resolve(&path) {
            let _ = ns.remove(dir);
        }
        self.gpus.remove(gpu);
        self.reachable.remove(gpu);
        self.fleet.owner.remove(gpu);
        self.fleet.memory.remove(gpu);
        self.fleet.unhealthy.remove(gpu);
        self.boot.lock().gpus.retain(|g| g != gpu);
        log::append(
            &self.log,
            Line::new(now, "gpu-removed", Who::NOBODY)
                .field("gpu", gpu)
                .field("bridge", &bridge.addr),
        );
    }

    /// A GPU's bridge says its health changed (the link reads each GPU's
    /// `info` now and then): logs `gpu-health` and, for "any GPU"
    /// placement, notes whether it may be chosen.
    pub fn set_gpu_health(&mut self, gpu: &str, health: &str, was: Option<&str>, now: u64) {
        if !self.gpus.contains(gpu) {
            return;
        }
        if health == "ok" {
            self.fleet.unhealthy.remove(gpu);
        } else {
            self.fleet.unhealthy.insert(String::from(gpu));
        }
        let word = |h: &str| String::from(h.split(' ').next().unwrap_or(h));
        let bridge = self.fleet.owner.get(gpu).cloned().unwrap_or_default();
        let line = Line::new(now, "gpu-health", Who::NOBODY)
            .field("gpu", gpu)
            .field("bridge", &bridge)
            .field("health", &word(health))
            .field("was", &was.map_or_else(|| String::from("-"), word));
        log::append(&self.log, line.why(health));
    }

    /// Leases held per GPU: `(count, MiB)`, from the live GPU workers
    /// spawned for leases and the leases being asked for now.
    fn loads(&mut self) -> BTreeMap<String, (u64, u64)> {
        let (workers, reserved) = (&self.workers, &self.reserved);
        self.fleet
            .held
            .retain(|w, _| workers.contains_key(w) || reserved.contains(w));
        let mut loads: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut count = |gpu: &str, mb: u64| {
            let l = loads.entry(String::from(gpu)).or_default();
            l.0 += 1;
            l.1 += mb;
        };
        for (id, w) in &self.workers {
            if let Some(gpu) = &w.lease {
                let mb = self
                    .fleet
                    .held
                    .get(id)
                    .filter(|h| h.gpu == *gpu)
                    .map_or(0, |h| u64::from(h.mem_mb));
                count(gpu, mb);
            }
        }
        for id in &self.reserved {
            if let Some(h) = self.fleet.held.get(id) {
                count(&h.gpu, u64::from(h.mem_mb));
            }
        }
        loads
    }

    /// The GPU a `lease` goes to first: `gpu` itself if it is installed,
    /// or for [`ANY_GPU`] the least loaded reachable GPU with `mem_mb` MiB
    /// free, with the next ones to ask if its bridge refuses.
    pub(super) fn place(
        &mut self,
        who: &Principal,
        gpu: &str,
        mem_mb: u32,
        now: u64,
    ) -> Result<(String, Option<AnyGpu>), Refusal> {
        if gpu != ANY_GPU {
            self.installed_gpu(gpu)?;
            return Ok((String::from(gpu), None));
        }
        let loads = self.loads();
        let (mut unreachable, mut short, mut unhealthy) = (0u64, 0u64, 0u64);
        let mut ranked: Vec<((u64, u64, &str), u64)> = Vec::new();
        for g in &self.gpus {
            let up = self
                .reachable
                .get(g)
                .is_some_and(|r| r.load(core::sync::atomic::Ordering::Acquire));
            if !up {
                unreachable += 1;
                continue;
            }
            if self.fleet.unhealthy.contains(g) {
                unhealthy += 1;
                continue;
            }
            let memory = self.fleet.memory.get(g).copied().unwrap_or(0);
            let (n, mb) = loads.get(g).copied().unwrap_or((0, 0));
            if memory.saturating_sub(mb) < u64::from(mem_mb) {
                short += 1;
                continue;
            }
            let ppm = mb.saturating_mul(1_000_000) / memory.max(1);
            ranked.push(((n, ppm, g.as_str()), memory.saturating_sub(mb)));
        }
        ranked.sort();
        let Some(((n, _, first), free)) = ranked.first().copied() else {
            return Err(Refusal::new(
                FsError::NoSpace,
                format!(
                    "no GPU has {mem_mb} MiB free and a bridge link up: {} installed, {unreachable} unreachable, {short} with less free{}",
                    self.gpus.len(),
                    if unhealthy > 0 {
                        format!(", {unhealthy} quarantined")
                    } else {
                        String::new()
                    }
                ),
            ));
        };
        let first = String::from(first);
        let rest = ranked
            .iter()
            .skip(1)
            .take(MAX_PLACEMENT_TRIES - 1)
            .map(|((_, _, g), _)| String::from(*g))
            .collect();
        log::append(
            &self.log,
            Line::new(now, "lease-placed", Who::of(who))
                .field("gpu", &first)
                .num("leases", n)
                .num("free_mb", free)
                .num("mem_mb", u64::from(mem_mb))
                .num("candidates", ranked.len() as u64),
        );
        Ok((
            first,
            Some(AnyGpu {
                rest,
                ..AnyGpu::default()
            }),
        ))
    }

    /// Notes the lease `worker` asks of `gpu` (its line, for an "any GPU"
    /// lease that may ask the next candidate with it).
    pub(super) fn hold(
        &mut self,
        worker: &str,
        gpu: &str,
        mem_mb: u32,
        line: &[u8],
        any: &mut Option<AnyGpu>,
    ) {
        self.fleet.held.insert(
            String::from(worker),
            Held {
                gpu: String::from(gpu),
                mem_mb,
            },
        );
        if let Some(a) = any {
            a.line = Vec::from(line);
        }
    }

    /// A bridge refused an "any GPU" lease (or could not be reached): asks
    /// the next candidate that is still installed and reachable, if the
    /// `/queen/ctl` write still waits, and returns `None`; otherwise gives
    /// the command back to be finished as it is.
    pub(super) fn replace_lease(
        &mut self,
        token: Token,
        mut command: BridgeCommand,
        result: &Completion,
        now: u64,
    ) -> Option<BridgeCommand> {
        let e = match result {
            Completion::Write(Err(e)) | Completion::Read(Err(e)) => *e,
            _ => return Some(command),
        };
        let waiting = self
            .server
            .namespace_mut()
            .node_as::<crate::ctl::QueenCtl>(self.ctl)
            .is_some_and(|c| !c.is_cancelled(token) && c.is_open(command.open));
        let crate::lease::BridgeAction::Lease { worker } = &command.action else {
            return Some(command);
        };
        let worker = worker.clone();
        let Some(any) = command.any.as_mut().filter(|_| waiting) else {
            return Some(command);
        };
        let answer = crate::lease::bridge_text(&command.reply);
        let said = if answer.is_empty() {
            format!("{e}")
        } else {
            answer
        };
        any.refused.push(format!("{}: {said}", command.gpu));
        let next = loop {
            if any.rest.is_empty() {
                break None;
            }
            let g = any.rest.remove(0);
            let up = self
                .reachable
                .get(&g)
                .is_some_and(|r| r.load(core::sync::atomic::Ordering::Acquire));
            if up && self.gpus.contains(&g) {
                break Some(g);
            }
        };
        let Some(next) = next else {
            log::append(
                &self.log,
                Line::new(now, "lease-unplaced", Who::of(&command.principal))
                    .field("worker", &worker)
                    .num("tried", any.refused.len() as u64)
                    .why(&any.refused.join("; ")),
            );
            return Some(command);
        };
        log::append(
            &self.log,
            Line::new(now, "lease-retry", Who::of(&command.principal))
                .field("gpu", &command.gpu)
                .field("next", &next)
                .field("worker", &worker)
                .why(&said),
        );
        let line = any.line.clone();
        if let Some(h) = self.fleet.held.get_mut(&worker) {
            h.gpu = next.clone();
        }
        self.fleet
            .forwards
            .push(command_request(token, &next, &command.principal, line));
        command.gpu = next;
        command.reply.clear();
        self.bridge_commands.insert(token, command);
        None
    }

    /// Refuses installing a GPU named `any` (see [`ANY_GPU`]).
    pub(super) fn reserved_gpu_id(id: &str) -> Result<(), HiveError> {
        if id == ANY_GPU {
            return Err(HiveError::BadGpuId {
                id: String::from(id),
            });
        }
        Ok(())
    }
}
