//! One Queen's view of the hive: a [`View`] holds a ticket and a session,
//! re-reads the namespace once a [`POLL`] and publishes a [`Snapshot`].
//! Rings (telemetry, the audit log) are read on from the last offset seen,
//! so each poll reads only what is new and what a ring overwrote before
//! the console got to it is counted, not hidden. A session that fails is
//! dropped and the next poll connects afresh, so the hive going away and
//! coming back needs nothing from the operator.
//!
//! It must never put a ticket into a snapshot, a message or a log.

use crate::exit::{Exit, Failure};
use crate::session::{Session, Target};
use crate::ticket::{Presented, TicketInfo};
use ninedoor::secure9p_core::codec::LOpenFlags;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How often the hive is re-read: the page's update rate.
pub const POLL: Duration = Duration::from_secs(1);
/// Heartbeat history kept per worker, for the rate chart.
pub const HISTORY: Duration = Duration::from_secs(300);
/// The chart's bucket: beats counted per this many seconds.
pub const BUCKET_S: u64 = 10;
/// Audit log lines kept for the page (the log itself is a bounded ring too).
pub const LOG_KEPT: usize = 500;
/// Jobs kept per GPU for the timeline (the bridge's `status` file is bounded).
pub const JOBS_KEPT: usize = 50;

/// Microseconds since the Unix epoch, for the snapshot's clock.
pub fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the console knows about one worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerView {
    /// Its id.
    pub id: String,
    /// Heartbeat lines read so far.
    pub beats: u64,
    /// Its last telemetry line.
    pub last: String,
    /// Bytes its telemetry ring has taken (the file's end offset).
    pub ring_bytes: u64,
    /// Bytes the ring overwrote before the console read them.
    pub missed: u64,
    /// Beats per [`BUCKET_S`] over [`HISTORY`], oldest first.
    pub rate: Vec<u64>,
}

/// One job's states as the console saw them, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    /// The GPU it ran on.
    pub gpu: String,
    /// The job id.
    pub id: String,
    /// `(state, unix seconds first seen)`: `QUEUED`, `RUNNING`, `OK`, `ERR`.
    pub steps: Vec<(String, u64)>,
    /// The last status line's detail (`ERR`'s reason, `OK`'s hash).
    pub detail: String,
}

impl JobView {
    /// The job's latest state.
    pub fn state(&self) -> &str {
        self.steps.last().map_or("?", |(s, _)| s.as_str())
    }
}

/// What the console knows about one GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuView {
    /// Its id under `/gpu`.
    pub id: String,
    /// `/gpu/<id>/info` (name, memory, SMs, versions).
    pub info: Value,
    /// `/gpu/<id>/lease` (the active lease, the waiting requests).
    pub lease: Value,
    /// `/gpu/<id>/stats` (utilisation, occupancy, totals).
    pub stats: Value,
    /// Why it could not be read (its bridge down: `EHOSTUNREACH`).
    pub trouble: Option<String>,
}

impl GpuView {
    /// The lease holder, if a lease is active.
    pub fn holder(&self) -> Option<&str> {
        self.lease["active"]["holder"].as_str()
    }
}

/// One refresh of the hive, as shown and scraped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// When it was taken (unix seconds); 0 before the first.
    pub at: u64,
    /// Why the hive could not be read now (the rest is the last good view).
    pub down: Option<String>,
    /// `/proc/boot`'s `key value` lines (limits, version, start time).
    pub boot: Vec<(String, String)>,
    /// `/proc/boot`'s banner line.
    pub banner: String,
    /// Its `provider` lines.
    pub providers: Vec<String>,
    /// Workers with telemetry, by id.
    pub workers: Vec<WorkerView>,
    /// GPUs under `/gpu`, by id.
    pub gpus: Vec<GpuView>,
    /// Jobs seen on any GPU, oldest first.
    pub jobs: Vec<JobView>,
    /// The audit log's tail, oldest first.
    pub log: Vec<String>,
    /// Bytes the audit log's ring has taken.
    pub log_bytes: u64,
    /// Audit log bytes overwritten before the console read them.
    pub log_missed: u64,
    /// `ticket-refused` audit lines seen, by errno name.
    pub refusals: BTreeMap<String, u64>,
    /// `/proc/transport`: the hive's runners' own request counters and
    /// latency histogram. `None` where the hive has no such file (the seL4
    /// image) or it did not parse.
    pub transport: Option<secure9p_transport::observe::Snapshot>,
}

impl Snapshot {
    /// A `/proc/boot` value.
    pub fn boot_value(&self, key: &str) -> Option<&str> {
        self.boot
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Latency buckets of the console's own 9P requests, seconds: 100 µs to ~3 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16)
}

/// Label of the request metrics: the 9P operation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct OpLabel {
    /// One 9P exchange (`walk`, `lopen`, `read`, `clunk`), or a whole
    /// file operation of several (`attach`, `read_file`, `list`, `ctl`).
    pub op: String,
    /// `ok` or the errno name.
    pub result: String,
}

/// Label of the latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct OpOnly {
    /// The 9P operation.
    pub op: String,
}

/// The console's own requests to the hive, measured from the client side
/// (the hive's runners measure every client's in `/proc/transport`).
#[derive(Debug, Clone)]
pub struct Requests {
    /// Requests by operation and result.
    pub count: Family<OpLabel, Counter>,
    /// Latency by operation.
    pub latency: Family<OpOnly, Histogram>,
}

impl Default for Requests {
    fn default() -> Self {
        Requests {
            count: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
        }
    }
}

impl Requests {
    /// Times `call` as one `op`.
    pub async fn time<T>(
        &self,
        op: &str,
        call: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let started = Instant::now();
        let r = call.await;
        let result = match &r {
            Ok(_) => "ok".to_owned(),
            Err(f) => errno_of(f),
        };
        self.latency
            .get_or_create(&OpOnly { op: op.to_owned() })
            .observe(started.elapsed().as_secs_f64());
        self.count
            .get_or_create(&OpLabel {
                op: op.to_owned(),
                result,
            })
            .inc();
        r
    }
}

/// A failure's errno class, for the request counter.
fn errno_of(f: &Failure) -> String {
    match f.exit {
        Exit::Ok => "ok",
        Exit::Permission => "EACCES",
        Exit::NotFound => "ENOENT",
        Exit::Ticket => "ticket",
        Exit::Connection => "connection",
        Exit::Usage | Exit::Other => "other",
    }
    .to_owned()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A worker's ring as followed so far.
#[derive(Debug, Default)]
struct Followed {
    offset: u64,
    beats: u64,
    last: String,
    missed: u64,
    /// `(unix second, beats then)`, oldest first, over [`HISTORY`].
    samples: VecDeque<(u64, u64)>,
}

/// What a view remembers between polls.
#[derive(Debug, Default)]
struct Memory {
    workers: HashMap<String, Followed>,
    log_offset: u64,
    log: VecDeque<String>,
    log_missed: u64,
    refusals: BTreeMap<String, u64>,
    jobs: Vec<JobView>,
}

/// A GPU lease this console made: the holder's ticket, to submit jobs as
/// that GPU worker (the Queen may not write a GPU's `job`).
#[derive(Clone)]
pub struct HeldLease {
    /// The GPU worker holding the lease.
    pub worker: String,
    /// Its ticket (never shown).
    pub ticket: Presented,
}

impl std::fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLease")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// One Queen's view of the hive.
pub struct View {
    target: Target,
    timeout: Duration,
    queen: Mutex<Presented>,
    /// Where to read the ticket afresh at each reconnect (a restarted hive
    /// writes a new one), for the view `/metrics` keeps.
    reload: Option<PathBuf>,
    link: tokio::sync::Mutex<Option<Arc<Session>>>,
    memory: Mutex<Memory>,
    leases: Mutex<HashMap<String, HeldLease>>,
    state: watch::Sender<Arc<Snapshot>>,
    requests: Requests,
    /// Heartbeat workers this console runs, stopped with the view.
    beating: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for View {
    fn drop(&mut self) {
        for task in lock(&self.beating).drain(..) {
            task.abort();
        }
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl View {
    /// Attaches to `target` with `queen` (so a refused ticket fails here,
    /// at login; with `reload`, `queen` is read afresh from that file at
    /// each reconnect), then re-reads the hive every [`POLL`] in a task that ends
    /// when the last holder of the view drops it.
    pub async fn open(
        target: Target,
        timeout: Duration,
        queen: Presented,
        reload: Option<PathBuf>,
        requests: Requests,
    ) -> Result<Arc<View>, Failure> {
        if let Some(who) = TicketInfo::parse(&queen.text)
            && who.role != "queen"
        {
            return Err(Failure::new(
                Exit::Ticket,
                format!(
                    "this is a {} ticket (subject {}); the console needs the Queen's",
                    who.role, who.subject
                ),
            ));
        }
        let session = requests
            .time("attach", Session::connect(&target, &queen, timeout))
            .await?;
        let view = Arc::new(View {
            target,
            timeout,
            queen: Mutex::new(queen),
            reload,
            link: tokio::sync::Mutex::new(Some(Arc::new(session))),
            memory: Mutex::new(Memory::default()),
            leases: Mutex::new(HashMap::new()),
            state: watch::channel(Arc::new(Snapshot::default())).0,
            requests,
            beating: Mutex::new(Vec::new()),
        });
        view.refresh().await;
        let weak = Arc::downgrade(&view);
        tokio::spawn(poll(weak));
        Ok(view)
    }

    /// The latest snapshot, and changes to come.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.state.subscribe()
    }

    /// The latest snapshot.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.state.borrow().clone()
    }

    /// The hive's address.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The console's own request metrics.
    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    /// The lease this console holds on `gpu`, if any.
    pub fn held_lease(&self, gpu: &str) -> Option<HeldLease> {
        lock(&self.leases).get(gpu).cloned()
    }

    /// Remembers a lease this console made.
    pub fn hold_lease(&self, gpu: &str, lease: HeldLease) {
        lock(&self.leases).insert(gpu.to_owned(), lease);
    }

    /// Forgets the lease on `gpu`.
    pub fn forget_lease(&self, gpu: &str) {
        lock(&self.leases).remove(gpu);
    }

    /// Keeps a heartbeat worker's task, to stop it with the view.
    pub fn beat(&self, task: tokio::task::AbortHandle) {
        let mut beating = lock(&self.beating);
        beating.retain(|t| !t.is_finished());
        beating.push(task);
    }

    /// The session, connecting (and attaching) afresh if the last failed.
    pub async fn session(&self) -> Result<Arc<Session>, Failure> {
        let mut link = self.link.lock().await;
        if let Some(s) = link.as_ref() {
            return Ok(s.clone());
        }
        if let Some(path) = &self.reload
            && let Ok(text) = ninedoor::host::read_ticket(path)
        {
            *lock(&self.queen) = Presented {
                text,
                from: path.display().to_string(),
            };
        }
        let queen = lock(&self.queen).clone();
        let s = Arc::new(
            self.requests
                .time(
                    "attach",
                    Session::connect(&self.target, &queen, self.timeout),
                )
                .await?,
        );
        *link = Some(s.clone());
        Ok(s)
    }

    /// Drops the session after `f`, if `f` says the connection is gone,
    /// so the next call reconnects.
    pub async fn check(&self, f: &Failure) {
        if matches!(f.exit, Exit::Connection | Exit::Ticket) {
            *self.link.lock().await = None;
        }
    }

    /// Re-reads the hive and publishes the snapshot.
    pub async fn refresh(&self) {
        let mut snap = Snapshot::clone(&self.latest());
        snap.at = unix_s();
        match self.read(&mut snap).await {
            Ok(()) => snap.down = None,
            Err(f) => {
                self.check(&f).await;
                snap.down = Some(f.message);
            }
        }
        self.state.send_replace(Arc::new(snap));
    }

    async fn read(&self, snap: &mut Snapshot) -> Result<(), Failure> {
        let s = self.session().await?;
        let r = &self.requests;
        let boot = r.time("read_file", s.read_all("/proc/boot")).await?;
        parse_boot(&String::from_utf8_lossy(&boot), snap);
        snap.transport = match r.time("read_file", s.read_all("/proc/transport")).await {
            Ok(text) => {
                secure9p_transport::observe::Snapshot::parse(&String::from_utf8_lossy(&text)).ok()
            }
            Err(f) if f.exit == Exit::Connection => return Err(f),
            // A hive that does not serve it.
            Err(_) => None,
        };
        self.read_workers(&s, snap).await?;
        self.read_gpus(&s, snap).await?;
        self.read_log(&s, snap).await
    }

    /// Reads `path` on from `offset`: the new bytes, and the new offset.
    async fn read_from(
        &self,
        s: &Session,
        path: &str,
        offset: u64,
    ) -> Result<(Vec<u8>, u64), Failure> {
        let r = &self.requests;
        let fid = r.time("walk", s.walk(path)).await?;
        let opened = r
            .time(
                "lopen",
                s.timed(
                    path,
                    crate::exit::Op::Read,
                    s.conn().lopen(fid, LOpenFlags::empty()),
                ),
            )
            .await;
        if let Err(f) = opened {
            s.clunk(fid).await;
            return Err(f);
        }
        let mut data = Vec::new();
        let mut at = offset;
        let result = loop {
            match r.time("read", s.read_at(path, fid, at)).await {
                Ok(chunk) if chunk.is_empty() => break Ok(()),
                Ok(chunk) => {
                    at += chunk.len() as u64;
                    data.extend_from_slice(&chunk);
                }
                Err(f) => break Err(f),
            }
        };
        r.time("clunk", async {
            s.clunk(fid).await;
            Ok(())
        })
        .await?;
        result.map(|()| (data, at))
    }

    async fn read_workers(&self, s: &Session, snap: &mut Snapshot) -> Result<(), Failure> {
        let listed = self.requests.time("list", s.list("/worker")).await?;
        let ids: Vec<String> = listed
            .into_iter()
            .filter(|e| e.dir)
            .map(|e| e.name)
            .collect();
        let now = unix_s();
        let mut read = Vec::new();
        for id in &ids {
            let offset = lock(&self.memory).workers.get(id).map_or(0, |w| w.offset);
            let path = format!("/worker/{id}/telemetry");
            match self.read_from(s, &path, offset).await {
                Ok(got) => read.push((id.clone(), got)),
                // Killed between the listing and the read.
                Err(f) if f.exit == Exit::NotFound => {}
                Err(f) => return Err(f),
            }
        }
        let mut memory = lock(&self.memory);
        memory.workers.retain(|id, _| ids.contains(id));
        for (id, (data, end)) in read {
            let w = memory.workers.entry(id).or_default();
            // What comes back may start with the ring's notice of what it
            // overwrote, and the offset then jumps past it.
            let (missed, beats, last) = scan_ring(&data);
            w.missed += missed;
            w.beats += beats;
            if let Some(last) = last {
                w.last = last;
            }
            w.offset = ring_end(end, &data);
            w.samples.push_back((now, w.beats));
            while w
                .samples
                .front()
                .is_some_and(|(t, _)| t + HISTORY.as_secs() < now)
            {
                w.samples.pop_front();
            }
        }
        let mut workers: Vec<WorkerView> = memory
            .workers
            .iter()
            .map(|(id, w)| WorkerView {
                id: id.clone(),
                beats: w.beats,
                last: w.last.clone(),
                ring_bytes: w.offset,
                missed: w.missed,
                rate: rate(&w.samples, now),
            })
            .collect();
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        snap.workers = workers;
        Ok(())
    }

    async fn read_gpus(&self, s: &Session, snap: &mut Snapshot) -> Result<(), Failure> {
        let r = &self.requests;
        let listed = match r.time("list", s.list("/gpu")).await {
            Ok(l) => l,
            // A hive without GPU bridges has no /gpu.
            Err(f) if f.exit == Exit::NotFound => Vec::new(),
            Err(f) => return Err(f),
        };
        let mut gpus = Vec::new();
        let mut statuses = Vec::new();
        for e in listed.into_iter().filter(|e| e.dir) {
            let mut gpu = GpuView {
                id: e.name.clone(),
                info: Value::Null,
                lease: Value::Null,
                stats: Value::Null,
                trouble: None,
            };
            for (file, slot) in [
                ("info", &mut gpu.info),
                ("lease", &mut gpu.lease),
                ("stats", &mut gpu.stats),
            ] {
                let path = format!("/gpu/{}/{file}", e.name);
                match r.time("read_file", s.read_all(&path)).await {
                    Ok(b) => *slot = serde_json::from_slice(&b).unwrap_or(Value::Null),
                    Err(f) if f.exit == Exit::Connection => return Err(f),
                    Err(f) => gpu.trouble = Some(f.message),
                }
            }
            let path = format!("/gpu/{}/status", e.name);
            match r.time("read_file", s.read_all(&path)).await {
                Ok(b) => statuses.push((e.name.clone(), String::from_utf8_lossy(&b).into_owned())),
                Err(f) if f.exit == Exit::Connection => return Err(f),
                Err(f) => {
                    gpu.trouble.get_or_insert(f.message);
                }
            }
            gpus.push(gpu);
        }
        let now = unix_s();
        let mut memory = lock(&self.memory);
        for (gpu, text) in statuses {
            for line in text.lines() {
                follow_job(&mut memory.jobs, &gpu, line, now);
            }
        }
        let excess = memory
            .jobs
            .len()
            .saturating_sub(JOBS_KEPT * gpus.len().max(1));
        memory.jobs.drain(..excess);
        snap.jobs = memory.jobs.clone();
        snap.gpus = gpus;
        Ok(())
    }

    async fn read_log(&self, s: &Session, snap: &mut Snapshot) -> Result<(), Failure> {
        let offset = lock(&self.memory).log_offset;
        let (data, end) = self.read_from(s, "/log/queen.log", offset).await?;
        let mut memory = lock(&self.memory);
        let text = String::from_utf8_lossy(&data);
        for line in text.lines() {
            if let Some(n) = missed_notice(line) {
                memory.log_missed += n;
                continue;
            }
            if let Some(errno) = refusal_errno(line) {
                *memory.refusals.entry(errno.to_owned()).or_default() += 1;
            }
            memory.log.push_back(line.to_owned());
        }
        while memory.log.len() > LOG_KEPT {
            memory.log.pop_front();
        }
        memory.log_offset = ring_end(end, &data);
        snap.log = memory.log.iter().cloned().collect();
        snap.log_bytes = memory.log_offset;
        snap.log_missed = memory.log_missed;
        snap.refusals = memory.refusals.clone();
        Ok(())
    }
}

/// Polls `view` until it is dropped.
async fn poll(view: Weak<View>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(view) = view.upgrade() else { return };
        view.refresh().await;
    }
}

/// `/proc/boot` into the snapshot: the banner, `key value` pairs, providers.
fn parse_boot(text: &str, snap: &mut Snapshot) {
    let mut lines = text.lines();
    snap.banner = lines.next().unwrap_or_default().to_owned();
    snap.boot.clear();
    snap.providers.clear();
    for line in lines {
        match line.split_once(' ') {
            Some(("provider", rest)) => snap.providers.push(rest.to_owned()),
            Some((k, v)) => snap.boot.push((k.to_owned(), v.to_owned())),
            None => {}
        }
    }
}

/// `# missed N bytes`, the ring's notice.
fn missed_notice(line: &str) -> Option<u64> {
    line.strip_prefix("# missed ")?
        .strip_suffix(" bytes")?
        .parse()
        .ok()
}

/// The length of a leading missed notice (it is not part of the ring, so
/// the offset to read on from does not count it).
fn notice_len(data: &[u8]) -> u64 {
    let Some(end) = data.iter().position(|b| *b == b'\n') else {
        return 0;
    };
    match std::str::from_utf8(&data[..end])
        .ok()
        .and_then(missed_notice)
    {
        Some(_) => end as u64 + 1,
        None => 0,
    }
}

/// The ring's absolute end after a read through one fid that ended at
/// `end` (the client's offsets) and returned `data`: a leading notice is
/// not ring bytes, and what it says was missed was skipped.
fn ring_end(end: u64, data: &[u8]) -> u64 {
    let notice = notice_len(data);
    let missed = match notice {
        0 => 0,
        n => std::str::from_utf8(&data[..n as usize - 1])
            .ok()
            .and_then(missed_notice)
            .unwrap_or(0),
    };
    end.saturating_sub(notice).saturating_add(missed)
}

/// Missed bytes, heartbeat lines and the last line in new telemetry.
fn scan_ring(data: &[u8]) -> (u64, u64, Option<String>) {
    let text = String::from_utf8_lossy(data);
    let mut missed = 0;
    let mut beats = 0;
    let mut last = None;
    for line in text.lines() {
        if let Some(n) = missed_notice(line) {
            missed += n;
            continue;
        }
        if line.split_whitespace().nth(1) == Some("heartbeat") {
            beats += 1;
        }
        last = Some(line.to_owned());
    }
    (missed, beats, last)
}

/// Beats per [`BUCKET_S`] over [`HISTORY`] ending `now`, from
/// `(time, total beats)` samples.
fn rate(samples: &VecDeque<(u64, u64)>, now: u64) -> Vec<u64> {
    let buckets = (HISTORY.as_secs() / BUCKET_S) as usize;
    let start = now.saturating_sub(HISTORY.as_secs());
    let mut out = vec![0u64; buckets];
    let mut prev: Option<u64> = None;
    for &(t, total) in samples {
        if let Some(p) = prev
            && t >= start
        {
            let i = (((t - start) / BUCKET_S) as usize).min(buckets - 1);
            out[i] += total.saturating_sub(p);
        }
        prev = Some(total);
    }
    out
}

/// The errno of a `ticket-refused` audit line.
fn refusal_errno(line: &str) -> Option<&str> {
    let mut words = line.split(' ');
    words.next()?;
    if words.next()? != "ticket-refused" {
        return None;
    }
    words.find_map(|w| w.strip_prefix("errno="))
}

/// Folds one status line (`QUEUED id …`, `RUNNING id`, `OK id …`,
/// `ERR id reason`) into the jobs seen.
fn follow_job(jobs: &mut Vec<JobView>, gpu: &str, line: &str, now: u64) {
    let mut words = line.splitn(3, ' ');
    let (Some(state), Some(id)) = (words.next(), words.next()) else {
        return;
    };
    if !matches!(state, "QUEUED" | "RUNNING" | "OK" | "ERR") {
        return;
    }
    let detail = words.next().unwrap_or_default();
    let job = match jobs.iter().position(|j| j.gpu == gpu && j.id == id) {
        Some(i) => &mut jobs[i],
        None => {
            jobs.push(JobView {
                gpu: gpu.to_owned(),
                id: id.to_owned(),
                steps: Vec::new(),
                detail: String::new(),
            });
            let last = jobs.len() - 1;
            &mut jobs[last]
        }
    };
    if job.steps.iter().any(|(s, _)| s == state) {
        return;
    }
    job.steps.push((state.to_owned(), now));
    job.detail = detail.to_owned();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_read_counts_beats_and_what_it_missed() {
        let data = b"# missed 120 bytes\n17 heartbeat seq=5\n18 heartbeat seq=6\n18 note hello\n";
        assert_eq!(scan_ring(data), (120, 2, Some("18 note hello".to_owned())));
        assert_eq!(notice_len(data), 19);
        // Read from 0 through one fid: the ring kept bytes 120.., and the
        // client's offsets ran to the notice plus what followed.
        assert_eq!(
            ring_end(data.len() as u64, data),
            120 + data.len() as u64 - 19
        );
        assert_eq!(notice_len(b"17 heartbeat seq=5\n"), 0);
        assert_eq!(notice_len(b"no newline"), 0);
    }

    #[test]
    fn boot_lines_split_into_limits_and_providers() {
        let mut snap = Snapshot::default();
        parse_boot(
            "Cohesix NineDoor 0.1.0\nstarted 100\nworkers.max 64\nprovider gpu /gpu 0\n",
            &mut snap,
        );
        assert_eq!(snap.banner, "Cohesix NineDoor 0.1.0");
        assert_eq!(snap.boot_value("workers.max"), Some("64"));
        assert_eq!(snap.boot_value("started"), Some("100"));
        assert_eq!(snap.providers, vec!["gpu /gpu 0".to_owned()]);
    }

    #[test]
    fn job_lines_become_a_timeline_each_state_once() {
        let mut jobs = Vec::new();
        for (line, t) in [
            ("QUEUED j1 priority=0 position=1", 10),
            ("RUNNING j1", 11),
            ("QUEUED j2 priority=0 position=1", 11),
            ("RUNNING j1", 12),
            ("ERR j2 timeout after 10 ms", 13),
            ("OK j1 abc 1 2", 13),
            ("garbage", 13),
            ("", 13),
        ] {
            follow_job(&mut jobs, "0", line, t);
        }
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            jobs[0].steps,
            vec![
                ("QUEUED".to_owned(), 10),
                ("RUNNING".to_owned(), 11),
                ("OK".to_owned(), 13)
            ]
        );
        assert_eq!(jobs[1].state(), "ERR");
        assert_eq!(jobs[1].detail, "timeout after 10 ms");
    }

    #[test]
    fn refusals_are_counted_by_errno_from_audit_lines() {
        assert_eq!(
            refusal_errno("5 ticket-refused role=- subject=- ticket=ab errno=EACCES"),
            Some("EACCES")
        );
        assert_eq!(refusal_errno("5 ticket-accepted role=queen"), None);
        assert_eq!(refusal_errno("5"), None);
    }

    #[test]
    fn the_rate_chart_counts_beats_per_bucket() {
        let now = 1000;
        let samples: VecDeque<(u64, u64)> =
            [(now - 25, 0), (now - 15, 4), (now - 5, 10), (now, 12)].into();
        let r = rate(&samples, now);
        assert_eq!(r.len(), 30);
        assert_eq!(r.iter().sum::<u64>(), 12);
        assert_eq!(r[29], 8);
        assert_eq!(r[28], 4);
        assert_eq!(r[27], 0, "the first sample only starts the count");
    }
}
