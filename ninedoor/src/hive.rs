//! The hive: a Secure9P server over the Cohesix namespace, the worker
//! registry and the ticket authority, driven frame by frame like the engine
//! it wraps (sans-IO: bytes and time in, bytes and requests out).
//!
//! `/queen/ctl` writes are deferred by their node and run here, with the
//! whole server at hand, before [`Hive::handle`] returns; `/gpu` requests
//! come out as [`Handled::Forward`] for the embedder to send to a bridge,
//! and so do the `lease` and `release` commands, which finish when the
//! bridge answers (see [`crate::lease`]'s module docs).
//! Nothing here panics on input, and no ticket text reaches the log.

use crate::audit::AuditSink;
use crate::boot::{BootInfo, SharedBoot};
use crate::command::{self, Command, Refusal, SpawnRole};
use crate::config::HiveConfig;
use crate::ctl::QueenCtl;
use crate::error::HiveError;
use crate::gpu::{
    self, GpuClosed, GpuDescriptor, GpuFile, GpuNode, GpuOp, GpuRequest, SharedOpens,
};
use crate::ids::IdSource;
use crate::lease::{self, BridgeAction, BridgeCommand, RefusedReply, ReleaseReply};
use crate::lifecycle::{Placement, WorkerEvent};
use crate::log::{self, Line, LogNode, SharedLog, Who};
use crate::policy::cohesix_policy;
use crate::state::{HiveState, Restored, SpawnBudget, StateChange};
use crate::telemetry::Telemetry;
use crate::worker::{RingUsage, Worker, WorkerInfo, valid_id};
use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
pub(crate) use fleet::AnyGpu;
pub use fleet::{ANY_GPU, BridgeEvent, BridgeGpus, MAX_BRIDGES, MAX_PLACEMENT_TRIES};
use secure9p_core::{
    Claims, Completion, FsError, GeneratedFile, Namespace, NodeId, Outcome, Principal, Role,
    Server, ServerConfig, SessionError, SessionId, TicketAuthority, TicketError, TicketId, Token,
};
use serde::Serialize;
use spin::Mutex;

mod fleet;

/// The Queen's subject in her tickets and in the log.
const QUEEN: &str = "queen";
/// Tries to draw an unused ticket id before giving up (a sound random
/// source never needs a second).
const ID_TRIES: usize = 4;

/// What became of one request frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The reply was appended to `out` (a `/queen/ctl` write included: it
    /// was run and answered before `handle` returned).
    Replied,
    /// A request for the bridge (a `/gpu` read or write, or a `lease` or
    /// `release` command): nothing was appended; forward it and finish it
    /// with [`Hive::complete`].
    Forward(GpuRequest),
}

/// An issued ticket the hive holds (the Queen's); its text never appears
/// in `Debug` output.
struct HeldTicket {
    text: String,
    id: TicketId,
    expires: u64,
}

impl core::fmt::Debug for HeldTicket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeldTicket")
            .field("id", &self.id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Why a ticket could not be minted.
enum MintError {
    Ticket(TicketError),
    IdReused,
}

impl From<MintError> for HiveError {
    fn from(e: MintError) -> HiveError {
        match e {
            MintError::Ticket(t) => HiveError::Ticket(t),
            MintError::IdReused => HiveError::IdReused,
        }
    }
}

impl From<MintError> for Refusal {
    fn from(e: MintError) -> Refusal {
        match e {
            MintError::Ticket(t) => Refusal::new(FsError::Io, format!("ticket not minted: {t}")),
            MintError::IdReused => Refusal::new(FsError::Io, "ticket id source repeats ids"),
        }
    }
}

/// The defaults of later spawns, set by the `budget` command.
#[derive(Debug, Clone, Copy)]
struct Budget {
    ticket_ttl_s: u64,
    ops: Option<u64>,
}

/// What of the durable state changed since it was last handed out.
#[derive(Debug, Default)]
struct Changed {
    /// Whether the touched entries are noted: only in a hive that keeps a
    /// journal (built by [`Hive::restore`]); one that is never asked would
    /// otherwise keep every id it ever touched.
    track: bool,
    /// Something changed (the budget, or any of the below).
    any: bool,
    /// Hand out the whole state (after a restore dropped some of it).
    whole: bool,
    /// Workers spawned, killed or given a new ticket.
    workers: BTreeSet<String>,
    /// Tickets revoked.
    revoked: BTreeSet<[u8; 32]>,
}

impl Changed {
    fn worker(&mut self, id: &str) {
        self.any = true;
        if self.track {
            self.workers.insert(String::from(id));
        }
    }

    fn revoked(&mut self, id: [u8; 32]) {
        self.any = true;
        if self.track {
            self.revoked.insert(id);
        }
    }

    /// What changed, leaving nothing changed (and the tracking as it was).
    fn take(&mut self) -> Changed {
        let track = self.track;
        core::mem::replace(
            self,
            Changed {
                track,
                ..Changed::default()
            },
        )
    }
}

/// The NineDoor hive: owns a [`Server`] over the Cohesix namespace, the
/// worker registry and the ticket authority.
pub struct Hive {
    server: Server,
    config: HiveConfig,
    /// Mints tickets under the same key the server verifies them with.
    minter: TicketAuthority,
    ids: Box<dyn IdSource>,
    log: SharedLog,
    boot: SharedBoot,
    queen: HeldTicket,
    workers: BTreeMap<String, Worker>,
    /// Ids of GPU workers whose lease the bridge has not answered yet.
    reserved: BTreeSet<String>,
    gpus: BTreeSet<String>,
    /// Whether each GPU's bridge link is up (its `info` reads say so).
    reachable: BTreeMap<String, gpu::Reachable>,
    gpu_opens: SharedOpens,
    /// `lease`/`release` commands waiting for their bridge, by token.
    bridge_commands: BTreeMap<Token, BridgeCommand>,
    /// The bridges, the leases the hive placed, "any GPU" placement.
    fleet: fleet::Fleet,
    ctl: NodeId,
    worker_dir: NodeId,
    gpu_dir: NodeId,
    next_worker: u64,
    budget: Budget,
    /// Whether a `budget` command set `budget` (stored state keeps it then).
    budget_set: bool,
    /// Tickets revoked before they expire, with their expiry: what a
    /// restarted hive must go on refusing.
    revoked: BTreeMap<[u8; 32], u64>,
    /// What of the durable state changed since [`Hive::take_changes`].
    changed: Changed,
    /// Where the embedder runs workers, if it places them.
    placement: Placement,
    /// The latest time the hive was given, for events that come without one.
    now: u64,
}

impl core::fmt::Debug for Hive {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hive")
            .field("server", &self.server)
            .field("queen", &self.queen)
            .field("workers", &self.workers.len())
            .field("gpus", &self.gpus)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct SpawnReply<'a> {
    spawned: &'a str,
    role: &'static str,
    ticket: &'a str,
    ticket_id: String,
    scope: &'a str,
    expires: u64,
    /// For a worker spawned by `lease`: its GPU and the bridge's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease: Option<&'a str>,
}

/// What a `/queen/ctl` write came to.
enum Executed {
    /// Run: the write's result and the replies of the commands that ran.
    Done(Result<(), FsError>, Vec<u8>),
    /// A command for a bridge, to forward.
    Bridge(Box<(GpuRequest, BridgeCommand)>),
}

/// A GPU worker to spawn for a lease.
struct Leased<'a> {
    gpu: &'a str,
    answer: &'a str,
}

#[derive(Serialize)]
struct KillReply<'a> {
    killed: &'a str,
    fids_closed: usize,
}

#[derive(Serialize)]
struct BudgetReply {
    ticket_ttl_s: u64,
    ops: u64,
}

/// One JSON reply line.
fn reply_line(value: &impl Serialize) -> Result<Vec<u8>, Refusal> {
    let mut line =
        serde_json::to_vec(value).map_err(|_| Refusal::new(FsError::Io, "reply not encodable"))?;
    line.push(b'\n');
    Ok(line)
}

/// `line` without leading and trailing ASCII whitespace.
fn trim(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    line.get(start..end).unwrap_or(&[])
}

impl Hive {
    /// Builds the hive at time `now`: the namespace, the policy, the audit
    /// log, and the Queen's ticket (see [`Hive::queen_ticket`]). `key` is
    /// the ticket authority's secret; `ids` supplies random ticket ids.
    pub fn new(
        config: HiveConfig,
        key: [u8; 32],
        ids: impl IdSource + 'static,
        now: u64,
    ) -> Result<Hive, HiveError> {
        Hive::build(config, key, Box::new(ids), now, None)
    }

    /// Builds the hive at time `now` as [`Hive::new`] does, from the state
    /// and log tail an embedder stored (see [`Hive::take_state`] and
    /// [`Hive::take_journal`]): `/log/queen.log` starts with the history,
    /// every worker whose ticket has not expired gets its files back and its
    /// ticket attaches again (the key must be the one that minted it),
    /// revoked tickets stay refused, expired workers and revocations are
    /// dropped and logged. From here on every log line is also kept for
    /// [`Hive::take_journal`].
    pub fn restore(
        config: HiveConfig,
        key: [u8; 32],
        ids: impl IdSource + 'static,
        now: u64,
        restored: Restored,
    ) -> Result<Hive, HiveError> {
        let mut hive = Hive::build(config, key, Box::new(ids), now, Some(&restored.history))?;
        hive.apply(restored.state, now);
        Ok(hive)
    }

    fn build(
        config: HiveConfig,
        key: [u8; 32],
        ids: Box<dyn IdSource>,
        now: u64,
        history: Option<&[String]>,
    ) -> Result<Hive, HiveError> {
        config.validate()?;
        let log = log::shared(config.log_capacity);
        if let Some(lines) = history {
            log::refill(&log, lines, now);
            log::keep_journal(&log);
        }
        let boot: SharedBoot = Arc::new(Mutex::new(BootInfo {
            config: config.clone(),
            started: now,
            ticket_ttl_s: config.ticket_ttl_s,
            ops: config.worker_ops,
            workers: 0,
            gpus: Vec::new(),
        }));
        let mut ns = Namespace::new();
        let proc_dir = ns.mkdir_all("/proc", 0o555)?;
        let shown = boot.clone();
        ns.add_file(
            proc_dir,
            "boot",
            Box::new(GeneratedFile::new(move |_| shown.lock().render())),
        )?;
        let queen_dir = ns.mkdir_all("/queen", 0o755)?;
        let ctl = ns.add_file(queen_dir, "ctl", Box::new(QueenCtl::default()))?;
        let log_dir = ns.mkdir_all("/log", 0o755)?;
        ns.add_file(log_dir, "queen.log", Box::new(LogNode::new(log.clone())))?;
        let worker_dir = ns.mkdir_all("/worker", 0o755)?;
        let gpu_dir = ns.mkdir_all("/gpu", 0o755)?;
        let server_config = ServerConfig {
            max_msize: config.max_msize,
            max_fids: config.max_fids,
            max_inflight: config.max_inflight,
            strict_fids: config.strict_fids,
            // Every client of the hive carries a ticket.
            anonymous: None,
        };
        let server = Server::new(ns, cohesix_policy(), server_config)
            .with_audit(AuditSink::new(log.clone()))
            .with_tickets(TicketAuthority::new(key));
        let budget = Budget {
            ticket_ttl_s: config.ticket_ttl_s,
            ops: config.worker_ops,
        };
        let mut hive = Hive {
            server,
            config,
            minter: TicketAuthority::new(key),
            ids,
            log,
            boot,
            queen: HeldTicket {
                text: String::new(),
                id: TicketId([0; 32]),
                expires: 0,
            },
            workers: BTreeMap::new(),
            reserved: BTreeSet::new(),
            gpus: BTreeSet::new(),
            reachable: BTreeMap::new(),
            gpu_opens: SharedOpens::default(),
            bridge_commands: BTreeMap::new(),
            fleet: fleet::Fleet::default(),
            ctl,
            worker_dir,
            gpu_dir,
            next_worker: 1,
            budget,
            budget_set: false,
            revoked: BTreeMap::new(),
            changed: Changed {
                track: history.is_some(),
                ..Changed::default()
            },
            placement: Placement::default(),
            now,
        };
        log::append(
            &hive.log,
            Line::new(now, "hive-start", Who::NOBODY).field("version", env!("CARGO_PKG_VERSION")),
        );
        hive.renew_queen_ticket(now)?;
        Ok(hive)
    }

    /// The Queen's ticket text, to hand to the Queen (the host binary writes
    /// it to a file only its operator can read). It is never logged.
    pub fn queen_ticket(&self) -> &str {
        &self.queen.text
    }

    /// The id of the Queen's current ticket.
    pub fn queen_ticket_id(&self) -> TicketId {
        self.queen.id
    }

    /// When the Queen's current ticket expires, unix seconds.
    pub fn queen_ticket_expires(&self) -> u64 {
        self.queen.expires
    }

    /// Mints a fresh Queen ticket valid for `queen_ticket_ttl_s` from `now`
    /// and returns it. The previous one stays valid until it expires, so
    /// sessions attached with it carry on.
    pub fn renew_queen_ticket(&mut self, now: u64) -> Result<&str, HiveError> {
        self.now = now;
        let claims = Claims {
            role: Role::Queen,
            subject: String::from(QUEEN),
            expires: now.saturating_add(self.config.queen_ticket_ttl_s),
            scope: String::from("/"),
        };
        let (text, id) = self.mint(&claims)?;
        self.queen = HeldTicket {
            text,
            id,
            expires: claims.expires,
        };
        log::append(
            &self.log,
            Line::new(
                now,
                "ticket-minted",
                Who {
                    role: Some(Role::Queen),
                    subject: QUEEN,
                    ticket: Some(id),
                },
            )
            .num("expires", claims.expires),
        );
        Ok(&self.queen.text)
    }

    /// The engine, to inspect (sessions, msize, pending requests). Requests
    /// go through [`Hive::handle`] so that control writes are run and
    /// audited.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The configuration.
    pub fn config(&self) -> &HiveConfig {
        &self.config
    }

    /// Opens a session (one per connection).
    pub fn open_session(&mut self) -> SessionId {
        self.server.open_session()
    }

    /// Closes a session: its fids are clunked and its forwarded requests
    /// cancelled; returns their tokens (tell the bridge to drop them).
    pub fn close_session(&mut self, session: SessionId) -> Vec<Token> {
        self.server.close_session(session)
    }

    /// Handles one request frame of `session` at time `now` (unix seconds),
    /// appending the reply, if one is due now, to `out`.
    ///
    /// A `/queen/ctl` write is run here and answered before this returns. A
    /// `/gpu` request comes back as [`Handled::Forward`]. An `Err` means
    /// the session is unknown or its framing is lost: close the connection.
    pub fn handle(
        &mut self,
        session: SessionId,
        frame: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Handled, SessionError> {
        self.now = now;
        let outcome = self.server.handle(session, frame, now, out);
        let held = log::take_held(&self.log);
        match outcome? {
            Outcome::Replied => {
                if let Some(h) = held {
                    // Every control file of the hive defers its writes, so
                    // one answered at once was refused by the engine's
                    // in-flight limit before it could be parked.
                    log::append(
                        &self.log,
                        h.line("ctl-refused")
                            .errno(FsError::Again)
                            .why("in-flight request limit reached"),
                    );
                }
                Ok(Handled::Replied)
            }
            Outcome::Deferred { token, node } if node == self.ctl => {
                Ok(match self.run_ctl(token, now, out) {
                    Some(request) => Handled::Forward(request),
                    None => Handled::Replied,
                })
            }
            Outcome::Deferred { token, node } => {
                let request = self
                    .server
                    .namespace_mut()
                    .node_as::<GpuNode>(node)
                    .and_then(|n| n.take(token));
                match request {
                    Some(request) => {
                        if let GpuOp::Write { data, .. } = &request.op {
                            let path = format!("/gpu/{}/{}", request.gpu, request.file.name());
                            let who = Who {
                                role: Some(request.role),
                                subject: &request.subject,
                                ticket: request.ticket,
                            };
                            log::append(
                                &self.log,
                                Line::new(now, "gpu-forward", who)
                                    .field("path", &path)
                                    .field("op", "write")
                                    .num("bytes", data.len() as u64)
                                    .num("token", request.token.0),
                            );
                        }
                        Ok(Handled::Forward(request))
                    }
                    None => {
                        // Only hive nodes defer; a token they did not park
                        // cannot be forwarded, so fail it rather than hang.
                        self.server
                            .complete(token, Completion::Read(Err(FsError::Io)), out);
                        Ok(Handled::Replied)
                    }
                }
            }
        }
    }

    /// Finishes a forwarded request with the bridge's answer, at time
    /// `now`, appending the reply to `out`. Returns the session it belongs
    /// to, or `None` if the request was flushed or its session closed (the
    /// answer is then dropped). Completed writes are logged. Every
    /// forwarded request must be completed once (a `lease` holds its
    /// worker's id until then).
    ///
    /// A [`GpuOrigin::Command`](crate::GpuOrigin::Command) is completed with the result of its write
    /// (`Completion::Write`), after [`Hive::set_gpu_reply`] gave the
    /// bridge's reply.
    pub fn complete(
        &mut self,
        token: Token,
        result: Completion,
        now: u64,
        out: &mut Vec<u8>,
    ) -> Option<SessionId> {
        self.now = now;
        if let Some(command) = self.bridge_commands.remove(&token) {
            let command = self.replace_lease(token, command, &result, now)?;
            return self.finish_bridge_command(token, command, result, now, out);
        }
        let write = match &result {
            Completion::Write(r) => Some(*r),
            Completion::Read(_) => None,
        };
        let session = self.server.complete(token, result, out);
        if let Some(r) = write {
            let line = Line::new(now, "gpu-complete", Who::NOBODY).num("token", token.0);
            let line = match (session, r) {
                (None, _) => line.field("result", "dropped"),
                (Some(_), Ok(n)) => line.field("result", "ok").num("bytes", u64::from(n)),
                (Some(_), Err(e)) => line.field("result", "refused").errno(e),
            };
            log::append(&self.log, line);
        }
        session
    }

    /// Gives a forwarded [`GpuOrigin::Command`](crate::GpuOrigin::Command) the bridge's reply to its
    /// write (what the bridge's `ctl` fid reads back after it, success or
    /// not): call before [`Hive::complete`]. Only its first line is kept.
    pub fn set_gpu_reply(&mut self, token: Token, reply: &[u8]) {
        if let Some(c) = self.bridge_commands.get_mut(&token) {
            c.reply = Vec::from(reply.get(..lease::MAX_BRIDGE_REPLY).unwrap_or(reply));
        }
    }

    /// The opens of forwarded files clunked since the last call (tell the
    /// bridge's forwarder, so it closes their fids on the bridge). Call
    /// after every [`Hive::handle`] and [`Hive::close_session`].
    pub fn take_gpu_closed(&mut self) -> Vec<GpuClosed> {
        gpu::take_closed(&self.gpu_opens)
    }

    /// Installs `/proc/transport`, read by the Queen alone as `/proc/boot`
    /// is: each open shows what `render` gives then (the host daemon gives
    /// its runners' figures, `secure9p_transport::observe`'s text form). A
    /// hive that is not given one (the seL4 image) has no such file.
    pub fn install_transport_file(
        &mut self,
        mut render: impl FnMut() -> Vec<u8> + Send + Sync + 'static,
    ) -> Result<(), HiveError> {
        let ns = self.server.namespace_mut();
        let proc_dir = ns.resolve("/proc").ok_or(FsError::NotFound)?;
        ns.add_file(
            proc_dir,
            "transport",
            Box::new(GeneratedFile::new(move |_| render())),
        )?;
        Ok(())
    }

    /// Installs `/gpu/<id>/{info,ctl,lease,job,status,stats,result}` for each
    /// descriptor: `info` shows the descriptor, the others are forwarded
    /// (see [`Handled::Forward`]). All or nothing: an invalid or duplicate
    /// id installs none. Logged at the latest time the hive was given.
    pub fn install_gpu_nodes(&mut self, descriptors: &[GpuDescriptor]) -> Result<(), HiveError> {
        let mut seen = BTreeSet::new();
        for d in descriptors {
            if !valid_id(&d.id) {
                return Err(HiveError::BadGpuId { id: d.id.clone() });
            }
            Hive::reserved_gpu_id(&d.id)?;
            if self.gpus.contains(&d.id) || !seen.insert(d.id.as_str()) {
                return Err(HiveError::GpuExists(d.id.clone()));
            }
        }
        for d in descriptors {
            let reach: gpu::Reachable = Arc::new(core::sync::atomic::AtomicBool::new(true));
            let ns = self.server.namespace_mut();
            let dir = ns.mkdir(self.gpu_dir, &d.id, 0o755)?;
            let installed = ns
                .add_file(dir, "info", Box::new(gpu::InfoNode::new(d, reach.clone())))
                .and_then(|_| {
                    GpuFile::FORWARDED.iter().try_for_each(|file| {
                        let node = GpuNode::new(&d.id, *file, self.gpu_opens.clone());
                        ns.add_file(dir, file.name(), Box::new(node)).map(|_| ())
                    })
                });
            if let Err(e) = installed {
                // Leave no half-built GPU behind.
                let _ = ns.remove(dir);
                return Err(e.into());
            }
            self.gpus.insert(d.id.clone());
            self.fleet.installed(&d.id, d.memory_mb);
            self.reachable.insert(d.id.clone(), reach);
            self.boot.lock().gpus.push(d.id.clone());
            log::append(
                &self.log,
                Line::new(self.now, "gpu-installed", Who::NOBODY)
                    .field("gpu", &d.id)
                    .field("uuid", &d.uuid)
                    .num("memory_mb", d.memory_mb),
            );
        }
        Ok(())
    }

    /// Says whether GPU `gpu`'s bridge link is up: while it is down its
    /// `info` answers `EHOSTUNREACH`, as its forwarded files do. The
    /// embedder calls this when the link is lost and when it is back (a
    /// new listing); installing a GPU makes it reachable.
    pub fn set_gpu_reachable(&mut self, gpu: &str, up: bool) {
        if let Some(r) = self.reachable.get(gpu) {
            r.store(up, core::sync::atomic::Ordering::Release);
        }
    }

    /// The live workers, by id (no ticket text).
    pub fn workers(&self) -> Vec<WorkerInfo> {
        let ns = self.server.namespace();
        let mut list = Vec::with_capacity(self.workers.len());
        for (id, w) in &self.workers {
            let telemetry = w.telemetry.and_then(|node| {
                let node: &dyn Any = ns.node(node)?;
                node.downcast_ref::<Telemetry>().map(Telemetry::usage)
            });
            list.push(WorkerInfo {
                id: id.clone(),
                role: w.role,
                ticket: w.ticket,
                expires: w.expires,
                scope: w.scope.clone(),
                telemetry,
                lease: w.lease.clone(),
            });
        }
        list
    }

    /// Declares that the embedder runs workers of `role` in `slots` places
    /// of their own (see [`WorkerEvent`]): from now on a `spawn` of that
    /// role when `slots` of them live is refused with `ENOSPC`, and every
    /// spawn and kill is queued for [`Hive::take_worker_events`], which the
    /// embedder must then drain after each [`Hive::handle`].
    pub fn set_worker_slots(&mut self, role: Role, slots: usize) {
        self.placement.set(role, slots);
    }

    /// The spawns and kills since the last call, oldest first (empty unless
    /// [`Hive::set_worker_slots`] was called).
    pub fn take_worker_events(&mut self) -> Vec<WorkerEvent> {
        self.placement.take()
    }

    /// Records that worker `id` faulted (`fault` says how) at `now`: logs
    /// `worker-fault` and revokes its ticket, closing every fid opened
    /// under it. The worker stays registered, its files readable by the
    /// Queen, until [`Hive::restart_worker`] gives it a new ticket or the
    /// Queen kills it. Returns the fids closed.
    pub fn worker_fault(&mut self, id: &str, fault: &str, now: u64) -> Result<usize, HiveError> {
        self.now = now;
        let worker = self
            .workers
            .get(id)
            .ok_or_else(|| HiveError::NoWorker(String::from(id)))?;
        let (role, ticket, expires) = (worker.role, worker.ticket, worker.expires);
        let fids = self.server.revoke(ticket, now);
        self.revoked.insert(ticket.0, expires);
        self.changed.revoked(ticket.0);
        log::append(
            &self.log,
            Line::new(now, "worker-fault", Who::NOBODY)
                .field("worker", id)
                .field("worker-role", role.name())
                .ticket("worker-ticket", ticket)
                .num("fids", fids as u64)
                .why(fault),
        );
        Ok(fids)
    }

    /// Mints worker `id` a fresh ticket (same role, subject and scope, the
    /// current ticket lifetime from `now`) after a fault, revoking the old
    /// one, and logs `worker-restart` with `attempt` of `limit`. Returns
    /// the ticket text for the restarted worker.
    pub fn restart_worker(
        &mut self,
        id: &str,
        attempt: u32,
        limit: u32,
        now: u64,
    ) -> Result<String, HiveError> {
        self.now = now;
        let worker = self
            .workers
            .get(id)
            .ok_or_else(|| HiveError::NoWorker(String::from(id)))?;
        let (old, old_expires) = (worker.ticket, worker.expires);
        let claims = Claims {
            role: worker.role,
            subject: String::from(id),
            expires: now.saturating_add(self.budget.ticket_ttl_s),
            scope: worker.scope.clone(),
        };
        self.server.revoke(old, now);
        self.revoked.insert(old.0, old_expires);
        self.changed.revoked(old.0);
        self.changed.worker(id);
        let (text, ticket) = self.mint(&claims)?;
        if let Some(w) = self.workers.get_mut(id) {
            w.ticket = ticket;
            w.expires = claims.expires;
        }
        log::append(
            &self.log,
            Line::new(now, "worker-restart", Who::NOBODY)
                .field("worker", id)
                .ticket("worker-ticket", ticket)
                .num("attempt", u64::from(attempt))
                .num("limit", u64::from(limit))
                .num("expires", claims.expires),
        );
        Ok(text)
    }

    /// Logs that worker `id` is left stopped at `now` and why (its restart
    /// budget is spent); it stays registered until the Queen kills it.
    pub fn worker_stopped(&mut self, id: &str, why: &str, now: u64) -> Result<(), HiveError> {
        self.now = now;
        if !self.workers.contains_key(id) {
            return Err(HiveError::NoWorker(String::from(id)));
        }
        log::append(
            &self.log,
            Line::new(now, "worker-stopped", Who::NOBODY)
                .field("worker", id)
                .why(why),
        );
        Ok(())
    }

    /// Puts a note about the log itself into `/log/queen.log` at `now`
    /// (`<now> <event> … why="<why>"`) without journaling it: for an
    /// embedder's remarks about its durable log (where older lines are, a
    /// group it could not record), never for audit events.
    pub fn note(&mut self, now: u64, event: &str, why: &str) {
        log::note(&self.log, Line::new(now, event, Who::NOBODY).why(why));
    }

    /// Logs (and journals) an embedder's event about its durable state at
    /// `now`: `<now> <event> … why="<why>"` (a torn record it cut, say).
    pub fn log_event(&mut self, now: u64, event: &str, why: &str) {
        log::append(&self.log, Line::new(now, event, Who::NOBODY).why(why));
    }

    /// How full `/log/queen.log` is.
    pub fn log_usage(&self) -> RingUsage {
        log::usage(&self.log)
    }

    /// Mints a ticket with a fresh id.
    fn mint(&mut self, claims: &Claims) -> Result<(String, TicketId), MintError> {
        for _ in 0..ID_TRIES {
            let id = TicketId(self.ids.ticket_id());
            let revoked = self.server.tickets().is_some_and(|t| t.is_revoked(&id));
            let in_use = id == self.queen.id || self.workers.values().any(|w| w.ticket == id);
            if revoked || in_use {
                continue;
            }
            let text = self.minter.mint(id.0, claims).map_err(MintError::Ticket)?;
            return Ok((text, id));
        }
        Err(MintError::IdReused)
    }

    /// Runs the `/queen/ctl` write parked under `token` and answers it, or,
    /// for a command that runs on a bridge, parks it and returns the
    /// request to forward.
    fn run_ctl(&mut self, token: Token, now: u64, out: &mut Vec<u8>) -> Option<GpuRequest> {
        let request = self
            .server
            .namespace_mut()
            .node_as::<QueenCtl>(self.ctl)
            .and_then(|c| c.take(token));
        let Some(request) = request else {
            self.server
                .complete(token, Completion::Write(Err(FsError::Io)), out);
            return None;
        };
        let (result, reply) = match self.execute(&request.principal, &request.data, token, now) {
            Executed::Done(result, reply) => (result, reply),
            Executed::Bridge(parked) => {
                let (forward, mut command) = *parked;
                command.open = request.open;
                command.len = request.data.len();
                self.bridge_commands.insert(token, command);
                if let Some(c) = self.server.namespace_mut().node_as::<QueenCtl>(self.ctl) {
                    c.on_bridge(token);
                }
                return Some(forward);
            }
        };
        self.set_ctl_reply(request.open, reply);
        let result =
            result.and_then(|()| u32::try_from(request.data.len()).map_err(|_| FsError::TooBig));
        self.server.complete(token, Completion::Write(result), out);
        None
    }

    fn set_ctl_reply(&mut self, open: u64, reply: Vec<u8>) {
        if let Some(c) = self.server.namespace_mut().node_as::<QueenCtl>(self.ctl) {
            c.set_reply(open, reply);
        }
    }

    /// Runs the commands of one write: all lines are parsed first (a bad
    /// line runs none), then run in order until one is refused. A command
    /// that runs on a bridge must be alone in its write and comes back as
    /// [`Executed::Bridge`].
    fn execute(&mut self, who: &Principal, data: &[u8], token: Token, now: u64) -> Executed {
        let mut reply = Vec::new();
        let refuse = |hive: &Hive, cmd: Option<&str>, line: Option<usize>, r: &Refusal| {
            let mut l = Line::new(now, "ctl-refused", Who::of(who)).field("path", "/queen/ctl");
            if let Some(cmd) = cmd {
                l = l.field("cmd", cmd);
            }
            if let Some(n) = line {
                l = l.num("line", n as u64);
            }
            log::append(&hive.log, l.errno(r.errno).why(&r.why));
            r.errno
        };
        if who.role != Role::Queen {
            let r = Refusal::new(FsError::AccessDenied, "only the queen commands the hive");
            return Executed::Done(Err(refuse(self, None, None, &r)), reply);
        }
        let mut commands = Vec::new();
        for (n, line) in data.split(|b| *b == b'\n').map(trim).enumerate() {
            if line.is_empty() {
                continue;
            }
            match command::parse_line(line, self.config.max_ctl_line) {
                Ok(c) => commands.push(c),
                Err(r) => return Executed::Done(Err(refuse(self, None, Some(n + 1), &r)), reply),
            }
        }
        if commands.is_empty() {
            let r = Refusal::new(FsError::Invalid, "no command in write");
            return Executed::Done(Err(refuse(self, None, None, &r)), reply);
        }
        if let Some(c) = commands.iter().find(|c| c.on_bridge()) {
            if commands.len() > 1 {
                let r = Refusal::new(
                    FsError::Invalid,
                    "lease and release run alone in their write",
                );
                return Executed::Done(Err(refuse(self, Some(c.name()), None, &r)), reply);
            }
            return match self.start_bridge_command(who, c, token, now) {
                Ok(parked) => Executed::Bridge(Box::new(parked)),
                Err(r) => Executed::Done(Err(refuse(self, Some(c.name()), None, &r)), reply),
            };
        }
        for c in &commands {
            match self.run(who, c, now) {
                Ok(text) => {
                    reply.extend_from_slice(&text);
                    log::append(
                        &self.log,
                        Line::new(now, "ctl-accepted", Who::of(who))
                            .field("path", "/queen/ctl")
                            .field("cmd", c.name()),
                    );
                }
                Err(r) => {
                    return Executed::Done(Err(refuse(self, Some(c.name()), None, &r)), reply);
                }
            }
        }
        Executed::Done(Ok(()), reply)
    }

    /// Runs one command; returns its reply line.
    fn run(&mut self, who: &Principal, c: &Command, now: u64) -> Result<Vec<u8>, Refusal> {
        match c {
            Command::Spawn { role, id, gpu } => {
                self.spawn(who, *role, id.as_deref(), gpu.as_deref(), None, now)
            }
            Command::Kill { id } => self.kill(who, id, now),
            Command::Budget { ticket_ttl_s, ops } => self.set_budget(who, *ticket_ttl_s, *ops, now),
            Command::Bridge { add, remove } => {
                self.bridge_command(who, add.as_deref(), remove.as_deref(), now)
            }
            Command::Lease { .. } | Command::Release { .. } => Err(Refusal::new(
                FsError::Invalid,
                "lease and release run alone in their write",
            )),
        }
    }

    /// A fresh `w<N>` id.
    fn fresh_id(&mut self) -> String {
        loop {
            let id = format!("w{}", self.next_worker);
            self.next_worker = self.next_worker.wrapping_add(1);
            if !self.workers.contains_key(&id) && !self.reserved.contains(&id) {
                return id;
            }
        }
    }

    /// Refuses a GPU that is not installed.
    fn installed_gpu(&self, gpu: &str) -> Result<(), Refusal> {
        if self.gpus.contains(gpu) {
            return Ok(());
        }
        let why = if valid_id(gpu) {
            format!("gpu {gpu} is not installed")
        } else {
            String::from("gpu id is not a valid name")
        };
        Err(Refusal::new(FsError::NotFound, why))
    }

    /// Checks a new worker's id (or draws one) and that there is room for it.
    fn new_worker_id(&mut self, id: Option<&str>) -> Result<String, Refusal> {
        if self.workers.len() + self.reserved.len() >= self.config.max_workers {
            return Err(Refusal::new(
                FsError::NoSpace,
                format!("worker limit of {} reached", self.config.max_workers),
            ));
        }
        match id {
            Some(id) if !valid_id(id) => Err(Refusal::new(
                FsError::Invalid,
                format!(
                    "worker id of {} bytes is not 1 to 64 of [A-Za-z0-9_-]",
                    id.len()
                ),
            )),
            Some(id) if self.workers.contains_key(id) || self.reserved.contains(id) => {
                Err(Refusal::new(FsError::Exists, format!("worker {id} exists")))
            }
            Some(id) => Ok(id.to_owned()),
            None => Ok(self.fresh_id()),
        }
    }

    /// Checks a `lease` or `release` and builds the request that runs it on
    /// the bridge (a `lease` reserves its worker's id until the answer).
    fn start_bridge_command(
        &mut self,
        who: &Principal,
        c: &Command,
        token: Token,
        now: u64,
    ) -> Result<(GpuRequest, BridgeCommand), Refusal> {
        let mut any = None;
        let (gpu, line, action) = match c {
            Command::Lease {
                gpu,
                worker,
                mem_mb,
                streams,
                ttl_s,
                priority,
            } => {
                let (gpu, mut placed) = self.place(who, gpu, *mem_mb, now)?;
                let worker = self.new_worker_id(worker.as_deref())?;
                let line = lease::lease_line(&worker, *mem_mb, *streams, *ttl_s, *priority);
                self.hold(&worker, &gpu, *mem_mb, &line, &mut placed);
                any = placed;
                (gpu, line, BridgeAction::Lease { worker })
            }
            Command::Release { gpu, worker } => {
                self.installed_gpu(gpu)?;
                if let Some(w) = worker.as_deref().filter(|w| !valid_id(w)) {
                    return Err(Refusal::new(
                        FsError::Invalid,
                        format!(
                            "worker id of {} bytes is not 1 to 64 of [A-Za-z0-9_-]",
                            w.len()
                        ),
                    ));
                }
                let line = lease::release_line(worker.as_deref());
                let worker = worker.clone();
                (gpu.clone(), line, BridgeAction::Release { worker })
            }
            _ => {
                return Err(Refusal::new(FsError::Invalid, "not a command for a bridge"));
            }
        };
        if let BridgeAction::Lease { worker } = &action {
            self.reserved.insert(worker.clone());
        }
        let mut forward = Line::new(now, "gpu-forward", Who::of(who))
            .field("path", &format!("/gpu/{gpu}/ctl"))
            .field("op", c.name())
            .num("token", token.0);
        if let BridgeAction::Lease { worker } = &action {
            forward = forward.field("worker", worker);
        }
        log::append(&self.log, forward);
        let request = fleet::command_request(token, &gpu, who, line);
        let command = BridgeCommand {
            open: 0,
            principal: who.clone(),
            gpu,
            action,
            len: 0,
            reply: Vec::new(),
            any,
        };
        Ok((request, command))
    }

    /// Finishes a `lease` or `release` with its bridge's answer: spawns or
    /// kills the holder, sets the `/queen/ctl` fid's reply and answers the
    /// write.
    fn finish_bridge_command(
        &mut self,
        token: Token,
        command: BridgeCommand,
        result: Completion,
        now: u64,
        out: &mut Vec<u8>,
    ) -> Option<SessionId> {
        let BridgeCommand {
            open,
            principal: who,
            gpu,
            action,
            len,
            reply,
            ..
        } = command;
        if let BridgeAction::Lease { worker } = &action {
            self.reserved.remove(worker);
        }
        let answer = lease::bridge_text(&reply);
        let name = match action {
            BridgeAction::Lease { .. } => "lease",
            BridgeAction::Release { .. } => "release",
        };
        let bridge_result = match result {
            Completion::Write(r) => r.map(|_| ()),
            Completion::Read(r) => r.map(|_| ()),
        };
        let waiting = self
            .server
            .namespace_mut()
            .node_as::<QueenCtl>(self.ctl)
            .is_some_and(|c| !c.was_cancelled(token) && c.is_open(open));
        let ran = match bridge_result {
            Err(e) => {
                let why = if answer.is_empty() {
                    format!("bridge: {e}")
                } else {
                    format!("bridge: {answer}")
                };
                let refused = reply_line(&RefusedReply {
                    refused: name,
                    gpu: &gpu,
                    error: format!("{e}"),
                    bridge: &answer,
                })
                .unwrap_or_default();
                self.set_ctl_reply(open, refused);
                Err(Refusal::new(e, why))
            }
            // The write was flushed or its fid closed: nobody is left to
            // read a new worker's ticket, so spawn none (a lease the bridge
            // granted anyway runs out on its TTL).
            Ok(()) if !waiting => Err(Refusal::new(
                FsError::Cancelled,
                "the /queen/ctl write was flushed or its fid closed before the bridge answered",
            )),
            Ok(()) => match action {
                BridgeAction::Lease { worker } => {
                    let leased = Leased {
                        gpu: &gpu,
                        answer: &answer,
                    };
                    self.spawn(
                        &who,
                        SpawnRole::Gpu,
                        Some(&worker),
                        Some(&gpu),
                        Some(leased),
                        now,
                    )
                }
                BridgeAction::Release { worker } => {
                    self.released(&who, &gpu, worker.as_deref(), &answer, now)
                }
            },
        };
        let result = match ran {
            Ok(text) => {
                self.set_ctl_reply(open, text);
                log::append(
                    &self.log,
                    Line::new(now, "ctl-accepted", Who::of(&who))
                        .field("path", "/queen/ctl")
                        .field("cmd", name),
                );
                u32::try_from(len).map_err(|_| FsError::TooBig)
            }
            Err(r) => {
                log::append(
                    &self.log,
                    Line::new(now, "ctl-refused", Who::of(&who))
                        .field("path", "/queen/ctl")
                        .field("cmd", name)
                        .field("gpu", &gpu)
                        .errno(r.errno)
                        .why(&r.why),
                );
                Err(r.errno)
            }
        };
        self.server.complete(token, Completion::Write(result), out)
    }

    /// A release the bridge accepted: kills the holder it ended if the hive
    /// spawned that worker for a lease of this GPU.
    fn released(
        &mut self,
        who: &Principal,
        gpu: &str,
        worker: Option<&str>,
        answer: &str,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        let holder = worker
            .or_else(|| lease::released_holder(answer))
            .map(String::from);
        let ours = holder.filter(|h| {
            self.workers
                .get(h)
                .is_some_and(|w| w.lease.as_deref() == Some(gpu))
        });
        log::append(
            &self.log,
            Line::new(now, "release", Who::of(who))
                .field("gpu", gpu)
                .field("holder", ours.as_deref().unwrap_or("-"))
                .why(answer),
        );
        if let Some(h) = &ours {
            self.kill(who, h, now)?;
        }
        reply_line(&ReleaseReply {
            released: gpu,
            bridge: answer,
            killed: ours.as_deref(),
        })
    }

    fn spawn(
        &mut self,
        who: &Principal,
        role: SpawnRole,
        id: Option<&str>,
        gpu: Option<&str>,
        leased: Option<Leased<'_>>,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        let id = self.new_worker_id(id)?;
        let (ticket_role, scope) = match (role, gpu) {
            (SpawnRole::Heartbeat, None) => (Role::WorkerHeartbeat, format!("/worker/{id}")),
            (SpawnRole::Heartbeat, Some(_)) => {
                return Err(Refusal::new(
                    FsError::Invalid,
                    "a heartbeat worker takes no gpu",
                ));
            }
            (SpawnRole::Gpu, None) => {
                return Err(Refusal::new(FsError::Invalid, "a gpu worker needs a gpu"));
            }
            (SpawnRole::Gpu, Some(g)) => {
                self.installed_gpu(g)?;
                (Role::WorkerGpu, String::from(g))
            }
        };
        if let Some(slots) = self.placement.slots(ticket_role) {
            let live = self
                .workers
                .values()
                .filter(|w| w.role == ticket_role)
                .count();
            if live >= slots {
                return Err(Refusal::new(
                    FsError::NoSpace,
                    format!(
                        "no free {} slot: all {slots} are in use",
                        ticket_role.name()
                    ),
                ));
            }
        }
        let claims = Claims {
            role: ticket_role,
            subject: id.clone(),
            expires: now.saturating_add(self.budget.ticket_ttl_s),
            scope,
        };
        // The files first: a ticket is minted only for a worker that exists.
        let (dir, telemetry) = self.worker_files(&id, ticket_role)?;
        let (text, ticket) = match self.mint(&claims) {
            Ok(t) => t,
            Err(e) => {
                if let Some(dir) = dir {
                    let _ = self.server.namespace_mut().remove(dir);
                }
                return Err(e.into());
            }
        };
        let reply = reply_line(&SpawnReply {
            spawned: &id,
            role: ticket_role.name(),
            ticket: &text,
            ticket_id: format!("{ticket}"),
            scope: &claims.scope,
            expires: claims.expires,
            gpu: leased.as_ref().map(|l| l.gpu),
            lease: leased.as_ref().map(|l| l.answer),
        });
        let reply = match reply {
            Ok(r) => r,
            Err(r) => {
                if let Some(dir) = dir {
                    let _ = self.server.namespace_mut().remove(dir);
                }
                return Err(r);
            }
        };
        let mut line = Line::new(now, "spawn", Who::of(who))
            .field("worker", &id)
            .field("worker-role", ticket_role.name())
            .ticket("worker-ticket", ticket)
            .field("scope", &claims.scope)
            .num("expires", claims.expires);
        if let Some(l) = &leased {
            line = line
                .field(
                    "lease",
                    if lease::granted(l.answer) {
                        "granted"
                    } else {
                        "queued"
                    },
                )
                .why(l.answer);
        }
        log::append(&self.log, line);
        self.placement.push(WorkerEvent::Spawned {
            id: id.clone(),
            role: ticket_role,
            ticket: text.clone(),
        });
        self.changed.worker(&id);
        self.workers.insert(
            id,
            Worker {
                role: ticket_role,
                ticket,
                expires: claims.expires,
                scope: claims.scope,
                dir,
                telemetry,
                lease: leased.map(|l| String::from(l.gpu)),
            },
        );
        self.boot.lock().workers = self.workers.len();
        Ok(reply)
    }

    /// Creates `/worker/<id>/telemetry` for a heartbeat worker (other roles
    /// have no files): all or nothing.
    fn worker_files(
        &mut self,
        id: &str,
        role: Role,
    ) -> Result<(Option<NodeId>, Option<NodeId>), Refusal> {
        if role != Role::WorkerHeartbeat {
            return Ok((None, None));
        }
        let node = Telemetry::new(
            self.config.telemetry_capacity,
            self.config.telemetry_max_write,
            self.budget.ops,
            self.log.clone(),
        );
        let ns = self.server.namespace_mut();
        let dir = ns
            .mkdir(self.worker_dir, id, 0o755)
            .map_err(|e| Refusal::new(e, "worker directory not created"))?;
        match ns.add_file(dir, "telemetry", Box::new(node)) {
            Ok(t) => Ok((Some(dir), Some(t))),
            Err(e) => {
                let _ = ns.remove(dir);
                Err(Refusal::new(e, "telemetry file not created"))
            }
        }
    }

    /// Brings back the stored `state` (see [`Hive::restore`]).
    fn apply(&mut self, state: HiveState, now: u64) {
        self.next_worker = state.next_worker.max(1);
        if let Some(b) = state
            .budget
            .filter(|b| b.ticket_ttl_s > 0 && b.ticket_ttl_s <= self.config.max_ticket_ttl_s)
        {
            self.budget = Budget {
                ticket_ttl_s: b.ticket_ttl_s,
                ops: b.ops,
            };
            self.budget_set = true;
            let mut boot = self.boot.lock();
            boot.ticket_ttl_s = b.ticket_ttl_s;
            boot.ops = b.ops;
        }
        let mut forgotten = 0u64;
        for (id, expires) in state.revoked {
            if expires > now {
                self.server.revoke(TicketId(id), now);
                self.revoked.insert(id, expires);
            } else {
                forgotten += 1;
            }
        }
        let (mut back, mut dropped) = (0u64, 0u64);
        for (id, w) in state.workers {
            let line = Line::new(now, "worker-dropped", Who::NOBODY)
                .field("worker", &id)
                .field("worker-role", w.role.name())
                .ticket("worker-ticket", w.ticket);
            let why = if w.expires <= now {
                Some(String::from("its ticket expired while the hive was down"))
            } else if !valid_id(&id) {
                Some(String::from("stored id is not a valid worker id"))
            } else if self.workers.len() >= self.config.max_workers {
                Some(format!(
                    "worker limit of {} reached",
                    self.config.max_workers
                ))
            } else if self.revoked.contains_key(&w.ticket.0) {
                Some(String::from("its ticket is revoked"))
            } else {
                match self.worker_files(&id, w.role) {
                    Ok((dir, telemetry)) => {
                        log::append(
                            &self.log,
                            Line::new(now, "worker-restored", Who::NOBODY)
                                .field("worker", &id)
                                .field("worker-role", w.role.name())
                                .ticket("worker-ticket", w.ticket)
                                .field("scope", &w.scope)
                                .num("expires", w.expires),
                        );
                        self.workers.insert(
                            id,
                            Worker {
                                role: w.role,
                                ticket: w.ticket,
                                expires: w.expires,
                                scope: w.scope,
                                dir,
                                telemetry,
                                lease: w.lease,
                            },
                        );
                        back += 1;
                        None
                    }
                    Err(r) => Some(r.why),
                }
            };
            if let Some(why) = why {
                log::append(&self.log, line.why(&why));
                dropped += 1;
            }
        }
        self.boot.lock().workers = self.workers.len();
        log::append(
            &self.log,
            Line::new(now, "hive-restored", Who::NOBODY)
                .num("workers", back)
                .num("dropped", dropped)
                .num("revoked", self.revoked.len() as u64)
                .num("revocations-expired", forgotten),
        );
        // What was dropped must not come back on the next restart.
        if dropped > 0 || forgotten > 0 {
            self.changed.whole = true;
        }
    }

    /// The lines logged since the last call, oldest first, each ending in
    /// `\n` (empty unless the hive was built by [`Hive::restore`]): what an
    /// embedder must make durable before it sends the replies of the frames
    /// that caused them.
    pub fn take_journal(&mut self) -> Vec<String> {
        log::take_journal(&self.log)
    }

    /// What of the durable state changed since the last call (a spawn,
    /// kill, budget, revocation or restart), for the embedder to store with
    /// the lines of [`Hive::take_journal`]: only what was touched, so it
    /// costs what the command changed, not the size of the hive.
    pub fn take_changes(&mut self) -> Option<StateChange> {
        let changed = self.changed.take();
        if changed.whole {
            return Some(StateChange::whole(self.state()));
        }
        if !changed.any {
            return None;
        }
        let workers = changed
            .workers
            .into_iter()
            .map(|id| {
                let record = self.workers.get(&id).map(Worker::record);
                (id, record)
            })
            .collect();
        let revoked = changed
            .revoked
            .into_iter()
            .map(|id| {
                let kept = self.revoked.get(&id).copied().filter(|e| *e > self.now);
                (id, kept)
            })
            .collect();
        Some(StateChange {
            whole: false,
            workers,
            revoked,
            budget: self.budget_now(),
            next_worker: self.next_worker,
        })
    }

    /// The spawn budget as stored: once a `budget` command set it.
    fn budget_now(&self) -> Option<SpawnBudget> {
        self.budget_set.then_some(SpawnBudget {
            ticket_ttl_s: self.budget.ticket_ttl_s,
            ops: self.budget.ops,
        })
    }

    /// The durable state now; revocations of expired tickets are left out.
    pub fn state(&self) -> HiveState {
        let workers = self
            .workers
            .iter()
            .map(|(id, w)| (id.clone(), w.record()))
            .collect();
        let revoked = self
            .revoked
            .iter()
            .filter(|(_, expires)| **expires > self.now)
            .map(|(id, expires)| (*id, *expires))
            .collect();
        HiveState {
            workers,
            revoked,
            budget: self.budget_now(),
            next_worker: self.next_worker,
        }
    }

    fn kill(&mut self, who: &Principal, id: &str, now: u64) -> Result<Vec<u8>, Refusal> {
        if !valid_id(id) {
            return Err(Refusal::new(
                FsError::Invalid,
                format!(
                    "worker id of {} bytes is not 1 to 64 of [A-Za-z0-9_-]",
                    id.len()
                ),
            ));
        }
        let Some(worker) = self.workers.remove(id) else {
            return Err(Refusal::new(FsError::NotFound, format!("no worker {id}")));
        };
        self.boot.lock().workers = self.workers.len();
        let fids = self.server.revoke(worker.ticket, now);
        self.revoked.insert(worker.ticket.0, worker.expires);
        self.changed.revoked(worker.ticket.0);
        self.changed.worker(id);
        if let Some(dir) = worker.dir {
            // Fids of other principals (the Queen's) still naming the files
            // now find nothing: node ids carry a generation.
            let _ = self.server.namespace_mut().remove(dir);
        }
        log::append(
            &self.log,
            Line::new(now, "kill", Who::of(who))
                .field("worker", id)
                .ticket("worker-ticket", worker.ticket)
                .num("fids", fids as u64),
        );
        self.placement.push(WorkerEvent::Killed {
            id: String::from(id),
        });
        reply_line(&KillReply {
            killed: id,
            fids_closed: fids,
        })
    }

    fn set_budget(
        &mut self,
        who: &Principal,
        ticket_ttl_s: Option<u64>,
        ops: Option<u64>,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        if ticket_ttl_s.is_none() && ops.is_none() {
            return Err(Refusal::new(
                FsError::Invalid,
                "budget needs ticket_ttl_s or ops",
            ));
        }
        let max = self.config.max_ticket_ttl_s;
        if let Some(t) = ticket_ttl_s {
            if t == 0 || t > max {
                return Err(Refusal::new(
                    FsError::Invalid,
                    format!("ticket_ttl_s {t} outside 1..={max}"),
                ));
            }
            self.budget.ticket_ttl_s = t;
        }
        if let Some(n) = ops {
            self.budget.ops = (n != 0).then_some(n);
        }
        self.budget_set = true;
        self.changed.any = true;
        {
            let mut boot = self.boot.lock();
            boot.ticket_ttl_s = self.budget.ticket_ttl_s;
            boot.ops = self.budget.ops;
        }
        let ops_shown = self.budget.ops.unwrap_or(0);
        log::append(
            &self.log,
            Line::new(now, "budget", Who::of(who))
                .num("ticket_ttl_s", self.budget.ticket_ttl_s)
                .num("ops", ops_shown),
        );
        reply_line(&BudgetReply {
            ticket_ttl_s: self.budget.ticket_ttl_s,
            ops: ops_shown,
        })
    }
}
