//! [`GpuBridge`]: the shared handle over every GPU's state, the event log,
//! the staged artefacts and the GPU source. The namespace's nodes, the
//! workers that run jobs and the host binary all hold clones of it.
//!
//! Time comes from the injected [`Clock`]; each operation applies the timer
//! (lease expiry, job timeouts) before it acts, so expiry needs no
//! background thread to be enforced, and tests advance a
//! [`ManualClock`](crate::ManualClock) instead of sleeping.

use crate::artefact::Artefacts;
use crate::clock::Clock;
use crate::command::Command;
use crate::config::BridgeConfig;
use crate::descriptor::GpuDescriptor;
use crate::discovery::FaultSink;
use crate::discovery::GpuSource;
use crate::error::BridgeError;
use crate::executor::Executor;
use crate::gpu::GpuState;
use crate::health::{Action, Fault};
use crate::log::{Actor, EventLog, LogSink};
use crate::store::{BridgeStore, StateError};
use secure9p_core::{Principal, TicketId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long an idle worker sleeps before applying the timer again: bounds
/// how late an expiry or timeout is noticed when nothing else happens.
pub const WORKER_TICK: Duration = Duration::from_millis(50);

/// Everything behind the bridge's lock.
pub struct BridgeState {
    gpus: Vec<GpuState>,
    log: EventLog,
    artefacts: Artefacts,
    source: Box<dyn GpuSource>,
    /// The state directory, once [`GpuBridge::keep_state`] opened one.
    store: Option<BridgeStore>,
}

impl std::fmt::Debug for BridgeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeState")
            .field("gpus", &self.gpus.len())
            .field("source", &self.source.kind())
            .finish_non_exhaustive()
    }
}

impl BridgeState {
    /// The GPUs' states.
    pub fn gpus(&mut self) -> &mut [GpuState] {
        &mut self.gpus
    }

    /// The event log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }
}

#[derive(Debug)]
struct Inner {
    state: Mutex<BridgeState>,
    wake: Condvar,
    clock: Arc<dyn Clock>,
}

/// The bridge: cheap to clone, shared by nodes and workers.
#[derive(Debug, Clone)]
pub struct GpuBridge {
    inner: Arc<Inner>,
}

impl GpuBridge {
    /// A bridge over the GPUs of `source`, reading time from `clock`.
    pub fn new(source: Box<dyn GpuSource>, clock: Arc<dyn Clock>) -> Self {
        let gpus = source
            .gpus()
            .iter()
            .enumerate()
            .map(|(i, d)| GpuState::new(i, d.clone()))
            .collect();
        GpuBridge {
            inner: Arc::new(Inner {
                state: Mutex::new(BridgeState {
                    gpus,
                    log: EventLog::default(),
                    artefacts: Artefacts::default(),
                    source,
                    store: None,
                }),
                wake: Condvar::new(),
                clock,
            }),
        }
    }

    /// The current time of the bridge's clock, ms.
    pub fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Locks the state. A panic in another holder cannot leave it
    /// half-updated in a way that matters more than losing the bridge, so
    /// a poisoned lock is taken over rather than propagated.
    pub fn lock(&self) -> MutexGuard<'_, BridgeState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The descriptors of every GPU, in index order.
    pub fn descriptors(&self) -> Vec<GpuDescriptor> {
        self.lock()
            .gpus
            .iter()
            .map(|g| g.descriptor().clone())
            .collect()
    }

    /// `"mock"` or `"nvml"`.
    pub fn source_kind(&self) -> &'static str {
        self.lock().source.kind()
    }

    /// The index of the GPU with id `gpu`.
    pub fn index_of(&self, gpu: &str) -> Option<usize> {
        self.lock()
            .gpus
            .iter()
            .position(|g| g.descriptor().id == gpu)
    }

    /// Stages a payload jobs may name as `artefact`.
    pub fn stage(&self, name: &str, bytes: Vec<u8>) -> Result<(), BridgeError> {
        self.lock().artefacts.stage(name, bytes)
    }

    /// Mirrors the event log to `sink` from now on.
    pub fn set_log_sink(&self, sink: LogSink) {
        self.lock().log.set_sink(sink);
    }

    /// The event log's lines, oldest first.
    pub fn log_lines(&self) -> Vec<String> {
        self.lock().log.lines().map(String::from).collect()
    }

    /// Records an event of GPU `gpu` in the log.
    pub fn record(&self, gpu: &str, actor: Option<&Actor>, event: &str) {
        let now = self.now();
        self.lock().log.record(now, gpu, actor, event);
    }

    /// Runs `f` on GPU `index` after applying the timer; `None` for an
    /// unknown index. `f` gets the GPU, the log, the artefacts, the source
    /// and the time.
    pub fn with_gpu<R>(
        &self,
        index: usize,
        f: impl FnOnce(&mut GpuState, &mut GpuContext<'_>) -> R,
    ) -> Option<R> {
        self.with_gpu_recorded(index, f).map(|(r, _)| r)
    }

    /// [`with_gpu`](Self::with_gpu), then what changed stored in the state
    /// directory (if one is kept) before the lock is released: the second
    /// value says whether that worked.
    fn with_gpu_recorded<R>(
        &self,
        index: usize,
        f: impl FnOnce(&mut GpuState, &mut GpuContext<'_>) -> R,
    ) -> Option<(R, Result<(), BridgeError>)> {
        let now = self.now();
        let mut guard = self.lock();
        let BridgeState {
            gpus,
            log,
            artefacts,
            source,
            store,
        } = &mut *guard;
        let gpu = gpus.get_mut(index)?;
        gpu.tick(now, log);
        gpu.upkeep(now, source.as_mut(), log);
        let mut ctx = GpuContext {
            now,
            log,
            artefacts,
            source: source.as_mut(),
        };
        let r = f(gpu, &mut ctx);
        let recorded = match store {
            Some(store) => store.record(index, gpu, log, now),
            None => Ok(()),
        };
        Some((r, recorded))
    }

    /// Keeps this bridge's leases and job records in the state directory
    /// `dir` from now on, after restoring what it holds (see the crate
    /// README, "State directory"). A database that cannot be read is
    /// refused and left as it is.
    pub fn keep_state(&self, dir: &std::path::Path) -> Result<(), StateError> {
        let now = self.now();
        let mut guard = self.lock();
        let BridgeState {
            gpus, log, store, ..
        } = &mut *guard;
        *store = Some(BridgeStore::restore(dir, gpus, log, now)?);
        Ok(())
    }

    /// [`with_gpu`](Self::with_gpu) for operations that can fail: an index
    /// with no GPU is a `BadCommand`.
    fn try_gpu<R>(
        &self,
        index: usize,
        f: impl FnOnce(&mut GpuState, &mut GpuContext<'_>) -> Result<R, BridgeError>,
    ) -> Result<R, BridgeError> {
        match self.with_gpu_recorded(index, f) {
            // Done but not recorded: not acknowledged.
            Some((Ok(_), Err(unrecorded))) => Err(unrecorded),
            Some((r, _)) => r,
            None => Err(BridgeError::BadCommand(format!("no gpu index {index}"))),
        }
    }

    fn gpu_index(&self, gpu: &str) -> Result<usize, BridgeError> {
        self.index_of(gpu)
            .ok_or_else(|| BridgeError::BadCommand(format!("no gpu {gpu}")))
    }

    /// Runs one `ctl` write on GPU `gpu` for `actor`; returns the reply
    /// line. Unparsable commands are logged too.
    pub fn control(&self, gpu: &str, bytes: &[u8], actor: &Actor) -> Result<String, BridgeError> {
        let index = self.gpu_index(gpu)?;
        self.control_at(index, bytes, actor)
    }

    pub(crate) fn control_at(
        &self,
        index: usize,
        bytes: &[u8],
        actor: &Actor,
    ) -> Result<String, BridgeError> {
        let result = self.try_gpu(index, |g, cx| match Command::parse(bytes) {
            Ok(Command::Fault(what)) => g.inject(what, actor, cx),
            Ok(cmd) => g.command(cmd, actor, cx.now, cx.log),
            Err(e) => {
                cx.log.record(
                    cx.now,
                    &g.descriptor().id,
                    Some(actor),
                    &format!("ctl unparsable -> ERR {} {e}", e.reason()),
                );
                Err(e)
            }
        });
        // A grant may let queued work start, a reset frees the worker.
        self.inner.wake.notify_all();
        result
    }

    /// Submits one job descriptor to GPU `gpu` for `actor`; returns the
    /// `QUEUED` reply line.
    pub fn submit(&self, gpu: &str, bytes: &[u8], actor: &Actor) -> Result<String, BridgeError> {
        let index = self.gpu_index(gpu)?;
        self.submit_at(index, bytes, actor)
    }

    pub(crate) fn submit_at(
        &self,
        index: usize,
        bytes: &[u8],
        actor: &Actor,
    ) -> Result<String, BridgeError> {
        let result = self.try_gpu(index, |g, cx| {
            g.submit(bytes, cx.artefacts, actor, cx.now, cx.log)
        });
        if result.is_ok() {
            self.inner.wake.notify_all();
        }
        result
    }

    /// Renews GPU `gpu`'s lease from one write to `lease`; returns the lease
    /// as `lease` shows it.
    pub fn renew(&self, gpu: &str, bytes: &[u8], actor: &Actor) -> Result<String, BridgeError> {
        let index = self.gpu_index(gpu)?;
        self.renew_at(index, bytes, actor)
    }

    pub(crate) fn renew_at(
        &self,
        index: usize,
        bytes: &[u8],
        actor: &Actor,
    ) -> Result<String, BridgeError> {
        self.try_gpu(index, |g, cx| g.renew(bytes, actor, cx.now, cx.log))
    }

    /// The whole status ring of GPU `gpu` as text (what `cat status` shows
    /// while nothing has been overwritten).
    pub fn status_text(&self, gpu: &str) -> String {
        let Some(index) = self.index_of(gpu) else {
            return String::new();
        };
        self.with_gpu(index, |g, _| {
            let ring = g.status();
            let mut out = Vec::new();
            ring.read_at(ring.base(), u32::MAX, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
        .unwrap_or_default()
    }

    /// Runs the jobs of GPU `index` that may start, one at a time, on
    /// `executor`, until none may; records their outcomes and returns how
    /// many ran. The lock is not held while a job runs.
    pub fn run_ready(&self, index: usize, executor: &mut dyn Executor) -> usize {
        let mut ran = 0;
        loop {
            let next = self
                .with_gpu(index, |g, cx| g.dispatch(cx.now, cx.log, 1))
                .and_then(|d| d.into_iter().next());
            let Some(d) = next else {
                return ran;
            };
            let outcome = executor.execute(&d.job, d.budget);
            let name = executor.name();
            let now = self.now();
            let mut guard = self.lock();
            let BridgeState {
                gpus, log, store, ..
            } = &mut *guard;
            if let Some(g) = gpus.get_mut(index) {
                g.tick(now, log);
                g.complete(d.ticket, name, outcome, now);
                if let Some(store) = store {
                    // A failure is logged by the store; the outcome stays
                    // in memory and is stored with the next commit.
                    let _ = store.record(index, g, log, now);
                }
            }
            ran += 1;
        }
    }

    /// Starts one worker thread per executor (executor `i` serves GPU `i`);
    /// each runs jobs as they become ready and applies the timer at least
    /// every [`WORKER_TICK`], until `stop` is set.
    pub fn spawn_workers(
        &self,
        executors: Vec<Box<dyn Executor>>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let mut handles = Vec::new();
        for (index, mut executor) in executors.into_iter().enumerate() {
            let bridge = self.clone();
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("gpu-worker-{index}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if bridge.run_ready(index, executor.as_mut()) == 0 {
                            bridge.idle_wait();
                        }
                    }
                })?;
            handles.push(handle);
        }
        Ok(handles)
    }

    fn idle_wait(&self) {
        let guard = self.lock();
        let _ = self
            .inner
            .wake
            .wait_timeout(guard, WORKER_TICK)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Wakes idle workers (after a submission, a grant, or to stop them).
    pub fn wake_workers(&self) {
        self.inner.wake.notify_all();
    }
}

/// What [`GpuBridge::with_gpu`] lends besides the GPU.
pub struct GpuContext<'a> {
    /// The time, ms.
    pub now: u64,
    /// The event log.
    pub log: &'a mut EventLog,
    /// The staged artefacts.
    pub artefacts: &'a Artefacts,
    /// The GPU source (for live readings).
    pub source: &'a mut dyn GpuSource,
}

impl std::fmt::Debug for GpuContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Health and telemetry: configuration, faults from NVML's event loop,
/// the revocations a quarantine asks for.
impl GpuBridge {
    /// Sets every GPU's telemetry interval, hold-down and fault policy.
    pub fn configure(&self, config: &BridgeConfig) {
        for g in self.lock().gpus.iter_mut() {
            g.configure(config);
        }
    }

    /// Sends the tickets a quarantine revokes to `tx` (the host revokes
    /// them on its server, closing their fids, outside the bridge's lock).
    pub fn set_revoker(&self, tx: Sender<TicketId>) {
        for g in self.lock().gpus.iter_mut() {
            g.set_revoker(tx.clone());
        }
    }

    /// Handles a fault of GPU `index` as the policy says (NVML's event
    /// loop calls this); `None` for an unknown index.
    pub fn fault(&self, index: usize, fault: Fault) -> Option<Action> {
        let action = self.with_gpu(index, |g, cx| g.fault(fault, None, cx.now, cx.log));
        self.inner.wake.notify_all();
        action
    }

    /// Remembers that a GPU worker opened a file of GPU `index` under its
    /// ticket (a quarantine revokes the lease holder's tickets).
    pub fn seen(&self, index: usize, principal: &Principal) {
        let _ = self.with_gpu(index, |g, _| {
            g.seen(principal.role, &principal.subject, principal.ticket)
        });
    }

    /// Starts the source's event loop (NVML's, on Linux), if it has one;
    /// its faults are handled by [`GpuBridge::fault`] until `stop` is set.
    pub fn spawn_events(&self, stop: Arc<AtomicBool>) -> Option<Result<JoinHandle<()>, String>> {
        let bridge = self.clone();
        let sink: FaultSink = Box::new(move |index, fault| {
            let _ = bridge.fault(index, fault);
        });
        self.lock().source.spawn_events(sink, stop)
    }
}
