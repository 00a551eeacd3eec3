//! [`BridgeLink`], the state machine the module docs describe.

use super::mirror::{Mirror, NINEDOOR_SUBJECT, OWN_TICKET_TTL_S};
use super::{LinkConfig, LinkEvent, MAX_COMMAND_REPLY, MAX_INFO};
use crate::{GpuDescriptor, GpuFile, GpuOp, GpuOrigin, GpuRequest};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use secure9p_core::codec::{
    DirEntries, Fid, GetattrMask, IOHDRSZ, LOpenFlags, Msg, Tag, Tattach, Tclunk, Tgetattr, Tlopen,
    Tread, Treaddir, Twalk, Twrite, WalkNames,
};
use secure9p_core::{Client, Completion, FsError, Token};
use serde::Deserialize;

/// `n_uname` of NineDoor's attaches: none (the bridge goes by tickets).
const NO_UID: u32 = u32::MAX;

/// What NineDoor reads of a bridge's `info` (the descriptor's fields; the
/// live readings beside them are not kept).
#[derive(Debug, Deserialize)]
struct BridgeInfo {
    name: String,
    uuid: String,
    memory_mb: u64,
    #[serde(default)]
    sm_count: Option<u32>,
    driver_version: String,
    runtime_version: String,
    /// `ok` or `quarantined (<reason>)`; bridges before health have none.
    #[serde(default)]
    health: Option<String>,
}

/// A step of reading one GPU's `info` for its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HealthStep {
    Walk(Fid),
    Open(Fid),
    Read(Fid),
    Clunk(Fid),
}

/// Which open of the hive a bridge fid serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// An open of a forwarded file ([`GpuOrigin::Fid`]).
    Open(u64),
    /// A `/queen/ctl` command, by its token.
    Command(Token),
}

/// A forwarded request waiting for, or getting, its answer.
struct Job {
    request: GpuRequest,
    /// The bridge's id of the GPU.
    remote: String,
}

/// Where an open's fid is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing in flight.
    Idle,
    /// Attaching under the head request's mirror ticket.
    Attach(Fid),
    /// Walking the fresh fid to the file.
    Walk(Fid),
    /// Opening it.
    Open(Fid),
    /// The head request's read or write is in flight.
    Io,
    /// A command's write is done; its reply is being read back.
    CommandReply(Result<u32, FsError>),
    /// Clunking the fid before the open goes.
    Clunk,
}

/// One open's fid on the bridge and its queue.
struct Open {
    jobs: VecDeque<Job>,
    fid: Option<Fid>,
    file: GpuFile,
    phase: Phase,
    /// The tag of what is in flight for it.
    tag: Option<Tag>,
    /// The hive's fid is gone (or the command is done): clunk and forget
    /// once the queue is empty.
    closing: bool,
}

/// The steps of setting a connection up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Version,
    AttachOwn(Fid, u64),
    WalkDir(Fid),
    OpenDir(Fid),
    ReadDir(Fid),
    ClunkDir(Fid),
    WalkInfo(Fid),
    OpenInfo(Fid),
    ReadInfo(Fid),
    ClunkInfo(Fid),
}

/// What a reply continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Setup(Setup),
    Open(Key),
    /// NineDoor's own attach renewed on this fid, valid until then.
    Renew(Fid, u64),
    Probe,
    /// Reading a GPU's health.
    Health(HealthStep),
    /// A clunk nobody waits for (the fid was already counted out).
    Clunk,
    /// A flush of the tag given.
    Flush(Tag),
}

struct InFlight {
    wait: Wait,
    sent_at: u64,
}

/// The listing of a connection being set up.
#[derive(Default)]
struct Listing {
    names: Vec<String>,
    next: usize,
    offset: u64,
    gpus: Vec<GpuDescriptor>,
}

enum State {
    /// No connection; ask for one at `retry_at`.
    Down { retry_at: u64 },
    /// Asked for one at `since`.
    Connecting { since: u64 },
    /// Connected, setting up.
    Setup(Listing),
    /// Serving.
    Up,
}

/// NineDoor's link to one GPU bridge. Time is unix milliseconds
/// throughout (the image passes its boot epoch plus uptime).
pub struct BridgeLink {
    config: LinkConfig,
    mirror: Mirror,
    state: State,
    client: Client,
    backoff: u64,
    inflight: BTreeMap<Tag, InFlight>,
    opens: BTreeMap<Key, Open>,
    /// NineDoor's own attach: fid and expiry (unix seconds).
    own: Option<(Fid, u64)>,
    renewing: bool,
    /// Fids held on the bridge.
    fids: usize,
    /// When the last frame arrived.
    last_rx: u64,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    last_note: Option<String>,
    buf: Vec<u8>,
    /// The bridge's GPU ids, from the last listing.
    gpu_ids: Vec<String>,
    /// Each GPU's health as last read (kept across reconnections).
    healths: BTreeMap<String, String>,
    /// The GPU whose health is being read now, by index in `gpu_ids`.
    health_round: Option<usize>,
    /// When the last health round started.
    health_at: u64,
}

impl core::fmt::Debug for BridgeLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BridgeLink")
            .field("up", &self.is_up())
            .field("inflight", &self.inflight.len())
            .field("opens", &self.opens.len())
            .field("fids", &self.fids)
            .finish_non_exhaustive()
    }
}

fn walk_names<'a>(names: &'a [&'a str]) -> Result<WalkNames<'a>, FsError> {
    WalkNames::new(names).map_err(|_| FsError::NameTooLong)
}

/// How a forwarded file is opened on the bridge: reads of the read-only
/// files, reads and writes of the others (the bridge keeps a write's reply
/// for the same fid to read back).
fn open_flags(file: GpuFile) -> LOpenFlags {
    if file.read_only() {
        LOpenFlags::empty()
    } else {
        LOpenFlags::RDWR
    }
}

/// The completion that fails `op` with `e`.
pub(crate) fn failed(op: &GpuOp, e: FsError) -> Completion {
    match op {
        GpuOp::Read { .. } => Completion::Read(Err(e)),
        GpuOp::Write { .. } => Completion::Write(Err(e)),
    }
}

/// A reply reduced to what the link needs of it.
enum Answer {
    Done,
    Walked(usize),
    Data(Vec<u8>),
    Written(u32),
    Failed(FsError),
}

impl Answer {
    fn of(msg: &Msg<'_>) -> Answer {
        match msg {
            Msg::Rlerror(e) => Answer::Failed(FsError::from_errno(e.ecode)),
            Msg::Rerror(e) => Answer::Failed(FsError::from_message(e.ename)),
            Msg::Rwalk(w) => Answer::Walked(w.wqids.len()),
            Msg::Rread(r) => Answer::Data(r.data.to_vec()),
            Msg::Rreaddir(r) => Answer::Data(r.data.to_vec()),
            Msg::Rwrite(w) => Answer::Written(w.count),
            _ => Answer::Done,
        }
    }

    fn error(&self) -> Option<FsError> {
        match self {
            Answer::Failed(e) => Some(*e),
            _ => None,
        }
    }
}

impl BridgeLink {
    /// A link that asks for its first connection at once (at the first
    /// [`BridgeLink::tick`]), minting with `mirror`.
    pub fn new(config: LinkConfig, mirror: Mirror, now: u64) -> BridgeLink {
        let client = Client::new(config.msize);
        BridgeLink {
            backoff: config.min_backoff_ms,
            config,
            mirror,
            state: State::Down { retry_at: now },
            client,
            inflight: BTreeMap::new(),
            opens: BTreeMap::new(),
            own: None,
            renewing: false,
            fids: 0,
            last_rx: now,
            out: VecDeque::new(),
            events: VecDeque::new(),
            last_note: None,
            buf: Vec::new(),
            gpu_ids: Vec::new(),
            healths: BTreeMap::new(),
            health_round: None,
            health_at: now,
        }
    }

    /// Whether the link serves requests now.
    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up)
    }

    /// Requests in flight on the connection.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Fids held on the bridge.
    pub fn fids(&self) -> usize {
        self.fids
    }

    /// The next frame to send on the connection.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next thing the embedder must do.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When [`BridgeLink::tick`] must run next (unix ms), if ever.
    pub fn next_timeout(&self) -> Option<u64> {
        let timeout = self.config.timeout_ms;
        let request = self
            .inflight
            .values()
            .map(|f| f.sent_at.saturating_add(timeout))
            .min();
        let state = match self.state {
            State::Down { retry_at } => Some(retry_at),
            State::Connecting { since } => Some(since.saturating_add(timeout)),
            State::Setup(_) => None,
            State::Up => {
                let probe = self.last_rx.saturating_add(self.config.probe_ms);
                match self.health_due_at() {
                    Some(h) => Some(probe.min(h)),
                    None => Some(probe),
                }
            }
        };
        match (request, state) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time has passed: reconnects, deadlines, probes, renewals.
    pub fn tick(&mut self, now: u64) {
        match self.state {
            State::Down { retry_at } if now >= retry_at => {
                self.state = State::Connecting { since: now };
                self.events.push_back(LinkEvent::Connect);
                return;
            }
            State::Connecting { since } if now.saturating_sub(since) >= self.config.timeout_ms => {
                let why = format!("no connection within {} ms", self.config.timeout_ms);
                self.lose(now, &why, None);
                return;
            }
            State::Down { .. } | State::Connecting { .. } => return,
            State::Setup(_) | State::Up => {}
        }
        let late = self
            .inflight
            .iter()
            .find(|(_, f)| now.saturating_sub(f.sent_at) >= self.config.timeout_ms)
            .map(|(tag, _)| *tag);
        if let Some(tag) = late {
            let why = format!(
                "a request went unanswered for {} ms",
                self.config.timeout_ms
            );
            self.lose(now, &why, Some(tag));
            return;
        }
        if !self.is_up() {
            return;
        }
        let Some((own, expires)) = self.own else {
            return;
        };
        if self.health_due_at().is_some_and(|at| now >= at) {
            self.health_at = now;
            self.health_round = Some(0);
            self.health_next(own, now);
        }
        if !self.renewing && (now / 1000).saturating_add(OWN_TICKET_TTL_S / 2) >= expires {
            self.renew_own(now);
        } else if self.inflight.is_empty()
            && now.saturating_sub(self.last_rx) >= self.config.probe_ms
        {
            self.send(
                Tgetattr {
                    fid: own,
                    request_mask: GetattrMask::BASIC,
                },
                Wait::Probe,
                now,
            );
        }
    }

    /// The transport is connected: set the session up.
    pub fn connected(&mut self, now: u64) {
        if !matches!(self.state, State::Connecting { .. }) {
            return;
        }
        self.client = Client::new(self.config.msize);
        self.state = State::Setup(Listing::default());
        self.last_rx = now;
        self.buf.clear();
        match self
            .client
            .version(secure9p_core::codec::Dialect::Linux, &mut self.buf)
        {
            Ok(tag) => {
                self.out.push_back(core::mem::take(&mut self.buf));
                self.inflight.insert(
                    tag,
                    InFlight {
                        wait: Wait::Setup(Setup::Version),
                        sent_at: now,
                    },
                );
            }
            Err(e) => self.lose(now, &format!("Tversion: {e}"), None),
        }
    }

    /// The transport closed, or could not connect.
    pub fn disconnected(&mut self, now: u64) {
        if matches!(self.state, State::Down { .. }) {
            return;
        }
        let why = match self.state {
            State::Connecting { .. } => "cannot connect",
            _ => "connection lost",
        };
        self.go_down(now, why, None);
    }

    /// One whole frame from the bridge.
    pub fn received(&mut self, frame: &[u8], now: u64) {
        if matches!(self.state, State::Down { .. } | State::Connecting { .. }) {
            return;
        }
        self.last_rx = now;
        let (tag, answer) = match self.client.receive(frame) {
            Ok(reply) => (reply.tag, Answer::of(&reply.msg)),
            Err(e) => {
                self.lose(now, &format!("bad reply: {e}"), None);
                return;
            }
        };
        let Some(f) = self.inflight.remove(&tag) else {
            // Answered by a flush already; the client freed its tag.
            return;
        };
        match f.wait {
            Wait::Setup(step) => self.on_setup(step, answer, now),
            Wait::Open(key) => self.on_open(key, answer, now),
            Wait::Renew(fid, expires) => match answer.error() {
                None => {
                    self.fids += 1;
                    if let Some((old, _)) = self.own.replace((fid, expires)) {
                        self.clunk(old, now);
                    }
                    self.renewing = false;
                }
                Some(e) => self.lose(now, &format!("own attach not renewed: {e}"), None),
            },
            Wait::Health(step) => self.on_health(step, answer, now),
            Wait::Probe => {
                if let Some(e) = answer.error() {
                    self.lose(now, &format!("probe refused: {e}"), None);
                }
            }
            Wait::Clunk => {}
            Wait::Flush(old) => {
                // The flushed request is over, answered or not.
                if let Some(InFlight {
                    wait: Wait::Open(key),
                    ..
                }) = self.inflight.remove(&old)
                {
                    self.on_open(key, Answer::Failed(FsError::Interrupted), now);
                }
            }
        }
        self.pump(now);
    }

    /// Forwards a request of the hive; `remote_gpu` is the bridge's id of
    /// its GPU. While the link is down it completes at once with
    /// `EHOSTUNREACH`.
    pub fn forward(&mut self, request: GpuRequest, remote_gpu: &str, now: u64) {
        if !self.is_up() {
            let result = failed(&request.op, FsError::Unreachable);
            self.complete(request.token, result, None);
            return;
        }
        let key = match request.origin {
            GpuOrigin::Fid { open } => Key::Open(open),
            GpuOrigin::Command => Key::Command(request.token),
        };
        let open = self.opens.entry(key).or_insert_with(|| Open {
            jobs: VecDeque::new(),
            fid: None,
            file: request.file,
            phase: Phase::Idle,
            tag: None,
            closing: matches!(key, Key::Command(_)),
        });
        open.jobs.push_back(Job {
            request,
            remote: String::from(remote_gpu),
        });
        self.pump(now);
    }

    /// The hive's fid of `open` was clunked: its bridge fid goes once its
    /// queue is done.
    pub fn close_open(&mut self, open: u64, now: u64) {
        if let Some(o) = self.opens.get_mut(&Key::Open(open)) {
            o.closing = true;
        }
        self.pump(now);
    }

    /// The hive dropped the request of `token` (flushed, or its session
    /// closed): a queued one completes at once with `EINTR`; one in flight
    /// is flushed on the bridge and completes when the flush is answered.
    pub fn cancel(&mut self, token: Token, now: u64) {
        let mut flush = None;
        let mut dropped = None;
        for open in self.opens.values_mut() {
            let Some(i) = open.jobs.iter().position(|j| j.request.token == token) else {
                continue;
            };
            let in_flight = i == 0 && matches!(open.phase, Phase::Io);
            if in_flight {
                flush = open.tag;
            } else if i > 0 || open.phase == Phase::Idle {
                dropped = open.jobs.remove(i);
            }
            break;
        }
        if let Some(job) = dropped {
            let result = failed(&job.request.op, FsError::Interrupted);
            self.complete(job.request.token, result, None);
        }
        if let Some(old) = flush {
            self.buf.clear();
            match self.client.flush(old, &mut self.buf) {
                Ok(tag) => {
                    self.out.push_back(core::mem::take(&mut self.buf));
                    self.inflight.insert(
                        tag,
                        InFlight {
                            wait: Wait::Flush(old),
                            sent_at: now,
                        },
                    );
                }
                Err(e) => self.lose(now, &format!("Tflush: {e}"), None),
            }
        }
    }

    // ---- internals ----

    fn iounit(&self) -> u32 {
        self.client.msize().saturating_sub(IOHDRSZ)
    }

    fn note(&mut self, line: String) {
        if self.last_note.as_deref() != Some(line.as_str()) {
            self.last_note = Some(line.clone());
            self.events.push_back(LinkEvent::Note(line));
        }
    }

    fn complete(&mut self, token: Token, result: Completion, reply: Option<Vec<u8>>) {
        self.events.push_back(LinkEvent::Complete {
            token,
            result,
            reply,
        });
    }

    /// Sends `msg`, continued by `wait`; `None` if it cannot be encoded.
    fn send<'m>(&mut self, msg: impl Into<Msg<'m>>, wait: Wait, now: u64) -> Option<Tag> {
        self.buf.clear();
        match self.client.request(msg, &mut self.buf) {
            Ok(tag) => {
                self.out.push_back(core::mem::take(&mut self.buf));
                self.inflight.insert(tag, InFlight { wait, sent_at: now });
                Some(tag)
            }
            Err(_) => None,
        }
    }

    /// Clunks a fid nobody waits for; it is counted out now.
    fn clunk(&mut self, fid: Fid, now: u64) {
        self.fids = self.fids.saturating_sub(1);
        self.send(Tclunk { fid }, Wait::Clunk, now);
        self.client.free_fid(fid);
    }

    /// Gives the connection up: the embedder closes it.
    fn lose(&mut self, now: u64, why: &str, timed_out: Option<Tag>) {
        self.events.push_back(LinkEvent::Disconnect);
        self.go_down(now, why, timed_out);
    }

    /// Fails everything in flight and queued, forgets the connection's
    /// fids, and waits a backoff before the next attempt.
    fn go_down(&mut self, now: u64, why: &str, timed_out: Option<Tag>) {
        let late = timed_out.and_then(|t| match self.inflight.get(&t).map(|f| f.wait) {
            Some(Wait::Open(key)) => Some(key),
            _ => None,
        });
        for (key, open) in core::mem::take(&mut self.opens) {
            for (i, job) in open.jobs.into_iter().enumerate() {
                let e = if i == 0 && Some(key) == late {
                    FsError::TimedOut
                } else {
                    FsError::Unreachable
                };
                let result = failed(&job.request.op, e);
                self.complete(job.request.token, result, None);
            }
        }
        let was_up = self.is_up();
        self.health_round = None;
        self.inflight.clear();
        self.own = None;
        self.renewing = false;
        self.fids = 0;
        self.client = Client::new(self.config.msize);
        self.out.clear();
        let wait = self.backoff;
        self.state = State::Down {
            retry_at: now.saturating_add(wait),
        };
        self.backoff = wait.saturating_mul(2).min(self.config.max_backoff_ms);
        if was_up {
            self.events.push_back(LinkEvent::Lost);
        }
        self.note(format!(
            "{why}; /gpu answers EHOSTUNREACH until it is back (retrying every {} ms at most)",
            self.config.max_backoff_ms
        ));
    }

    /// Attaches a fresh fid under a fresh own ticket, its reply continued
    /// by `wait` (given the fid and the ticket's expiry); whether it went out.
    fn attach_own_fid(&mut self, now: u64, wait: fn(Fid, u64) -> Wait) -> Result<bool, FsError> {
        let minted = self.mirror.own(now / 1000)?;
        let fid = self.client.alloc_fid();
        let sent = self.send(
            Tattach {
                fid,
                afid: Fid::NOFID,
                uname: NINEDOOR_SUBJECT,
                aname: &minted.text,
                n_uname: Some(NO_UID),
            },
            wait(fid, minted.claims.expires),
            now,
        );
        Ok(sent.is_some())
    }

    fn renew_own(&mut self, now: u64) {
        match self.attach_own_fid(now, Wait::Renew) {
            Ok(sent) => self.renewing = sent,
            Err(e) => self.lose(now, &format!("own ticket: {e}"), None),
        }
    }

    // ---- setting a connection up ----

    fn setup_failed(&mut self, step: Setup, e: FsError, now: u64) {
        let what = match step {
            Setup::Version => "version refused",
            Setup::AttachOwn(..) => {
                "attach refused: is its --ticket-key-file the key of --gpu-bridge-key?"
            }
            _ => "listing its GPUs failed",
        };
        self.lose(now, &format!("{what} ({e})"), None);
    }

    fn on_setup(&mut self, step: Setup, answer: Answer, now: u64) {
        if let Some(e) = answer.error() {
            match step {
                // Freed on the bridge whatever it says.
                Setup::ClunkDir(_) | Setup::ClunkInfo(_) => {}
                _ => return self.setup_failed(step, e, now),
            }
        }
        let Some(own) = self.own.map(|(f, _)| f) else {
            // Only the version and the own attach come before it.
            return match step {
                Setup::Version => self.attach_own(now),
                Setup::AttachOwn(fid, expires) => {
                    self.own = Some((fid, expires));
                    self.fids += 1;
                    self.walk_setup(fid, &["gpu"], Setup::WalkDir, now);
                }
                _ => self.setup_failed(step, FsError::Protocol, now),
            };
        };
        match (step, answer) {
            (Setup::WalkDir(dir), Answer::Walked(1)) => {
                self.fids += 1;
                self.setup_send(
                    Tlopen {
                        fid: dir,
                        flags: LOpenFlags::empty(),
                    },
                    Setup::OpenDir(dir),
                    now,
                );
            }
            (Setup::OpenDir(dir), _) => self.read_dir(dir, now),
            (Setup::ReadDir(dir), Answer::Data(data)) => {
                if data.is_empty() {
                    self.fids = self.fids.saturating_sub(1);
                    self.setup_send(Tclunk { fid: dir }, Setup::ClunkDir(dir), now);
                    return;
                }
                let mut entries = Vec::new();
                let mut offset = None;
                for e in DirEntries::new(&data) {
                    match e {
                        Ok(e) => {
                            offset = Some(e.offset);
                            if e.name != "." && e.name != ".." {
                                entries.push(e.name.to_string());
                            }
                        }
                        Err(_) => return self.setup_failed(step, FsError::BadMessage, now),
                    }
                }
                let max = self.config.max_gpus;
                if let State::Setup(l) = &mut self.state {
                    l.names.extend(entries);
                    l.names.truncate(max);
                    l.offset = offset.unwrap_or(l.offset);
                }
                self.read_dir(dir, now);
            }
            (Setup::ClunkDir(dir), _) | (Setup::ClunkInfo(dir), _) => {
                self.client.free_fid(dir);
                if let (Setup::ClunkInfo(_), State::Setup(l)) = (step, &mut self.state) {
                    l.next += 1;
                }
                self.next_info(own, now);
            }
            (Setup::WalkInfo(fid), Answer::Walked(3)) => {
                self.fids += 1;
                self.setup_send(
                    Tlopen {
                        fid,
                        flags: LOpenFlags::empty(),
                    },
                    Setup::OpenInfo(fid),
                    now,
                );
            }
            (Setup::OpenInfo(fid), _) => {
                let count = MAX_INFO.min(self.iounit());
                self.setup_send(
                    Tread {
                        fid,
                        offset: 0,
                        count,
                    },
                    Setup::ReadInfo(fid),
                    now,
                );
            }
            (Setup::ReadInfo(fid), Answer::Data(text)) => {
                let info: BridgeInfo = match serde_json::from_slice(&text) {
                    Ok(i) => i,
                    Err(_) => return self.setup_failed(step, FsError::BadMessage, now),
                };
                let id = match &self.state {
                    State::Setup(l) => l.names.get(l.next).cloned(),
                    _ => None,
                };
                if let (Some(id), Some(health)) = (&id, &info.health) {
                    self.saw_health(id, health);
                }
                if let State::Setup(l) = &mut self.state {
                    let id = id.unwrap_or_default();
                    l.gpus.push(GpuDescriptor {
                        id,
                        name: info.name,
                        uuid: info.uuid,
                        memory_mb: info.memory_mb,
                        sm_count: info.sm_count,
                        driver_version: info.driver_version,
                        runtime_version: info.runtime_version,
                    });
                }
                self.fids = self.fids.saturating_sub(1);
                self.setup_send(Tclunk { fid }, Setup::ClunkInfo(fid), now);
            }
            (step, _) => self.setup_failed(step, FsError::Protocol, now),
        }
    }

    fn attach_own(&mut self, now: u64) {
        let wait = |fid, expires| Wait::Setup(Setup::AttachOwn(fid, expires));
        let step = Setup::AttachOwn(Fid::NOFID, 0);
        match self.attach_own_fid(now, wait) {
            Ok(true) => {}
            Ok(false) => self.setup_failed(step, FsError::TooBig, now),
            Err(e) => self.setup_failed(step, e, now),
        }
    }

    fn setup_send<'m>(&mut self, msg: impl Into<Msg<'m>>, step: Setup, now: u64) {
        if self.send(msg, Wait::Setup(step), now).is_none() {
            self.setup_failed(step, FsError::TooBig, now);
        }
    }

    fn walk_setup(&mut self, from: Fid, names: &[&str], step: fn(Fid) -> Setup, now: u64) {
        let fid = self.client.alloc_fid();
        match walk_names(names) {
            Ok(wnames) => self.setup_send(
                Twalk {
                    fid: from,
                    newfid: fid,
                    wnames,
                },
                step(fid),
                now,
            ),
            Err(e) => self.setup_failed(step(fid), e, now),
        }
    }

    fn read_dir(&mut self, dir: Fid, now: u64) {
        let offset = match &self.state {
            State::Setup(l) => l.offset,
            _ => 0,
        };
        let count = self.iounit();
        self.setup_send(
            Treaddir {
                fid: dir,
                offset,
                count,
            },
            Setup::ReadDir(dir),
            now,
        );
    }

    /// Reads the next GPU's `info`, or finishes the setup.
    fn next_info(&mut self, own: Fid, now: u64) {
        let next = match &self.state {
            State::Setup(l) => l.names.get(l.next).cloned(),
            _ => return,
        };
        match next {
            Some(name) => {
                let names = ["gpu", name.as_str(), "info"];
                self.walk_setup(own, &names, Setup::WalkInfo, now);
            }
            None => {
                let State::Setup(listing) = core::mem::replace(&mut self.state, State::Up) else {
                    return;
                };
                self.backoff = self.config.min_backoff_ms;
                self.gpu_ids = listing.gpus.iter().map(|g| g.id.clone()).collect();
                self.health_at = now;
                let ids: Vec<&str> = listing.gpus.iter().map(|g| g.id.as_str()).collect();
                let line = format!("connected, gpus {}", ids.join(" "));
                self.note(line);
                self.events.push_back(LinkEvent::Gpus(listing.gpus));
            }
        }
    }

    // ---- health ----

    /// When the next health round is due, if one may start.
    fn health_due_at(&self) -> Option<u64> {
        let every = self.config.health_ms;
        (every > 0 && self.is_up() && self.health_round.is_none() && !self.gpu_ids.is_empty())
            .then(|| self.health_at.saturating_add(every))
    }

    /// Notes what a GPU's `info` says of its health; reports a change.
    fn saw_health(&mut self, gpu: &str, health: &str) {
        let was = self.healths.get(gpu).cloned();
        if was.as_deref() == Some(health) {
            return;
        }
        if was.is_some() || health != "ok" {
            self.events.push_back(LinkEvent::Health {
                gpu: String::from(gpu),
                health: String::from(health),
                was,
            });
        }
        self.healths.insert(String::from(gpu), String::from(health));
    }

    /// Reads the next GPU's `info` of the round, or ends it.
    fn health_next(&mut self, own: Fid, now: u64) {
        let Some(i) = self.health_round else {
            return;
        };
        let Some(id) = self.gpu_ids.get(i).cloned() else {
            self.health_round = None;
            return;
        };
        let fid = self.client.alloc_fid();
        let names = ["gpu", id.as_str(), "info"];
        let sent = walk_names(&names).ok().and_then(|wnames| {
            self.send(
                Twalk {
                    fid: own,
                    newfid: fid,
                    wnames,
                },
                Wait::Health(HealthStep::Walk(fid)),
                now,
            )
        });
        if sent.is_none() {
            self.client.free_fid(fid);
            self.health_round = None;
        }
    }

    /// Goes on to the next GPU of the round.
    fn health_skip(&mut self, now: u64) {
        self.health_round = self.health_round.map(|i| i + 1);
        if let Some((own, _)) = self.own {
            self.health_next(own, now);
        }
    }

    /// A health read answered. A refusal only skips that GPU: the link
    /// stays up (a request that times out gives it up, as any does).
    fn on_health(&mut self, step: HealthStep, answer: Answer, now: u64) {
        let failed = answer.error().is_some();
        match step {
            HealthStep::Walk(fid) => {
                if !matches!(answer, Answer::Walked(3)) {
                    self.client.free_fid(fid);
                    return self.health_skip(now);
                }
                self.fids += 1;
                let open = Tlopen {
                    fid,
                    flags: LOpenFlags::empty(),
                };
                if self
                    .send(open, Wait::Health(HealthStep::Open(fid)), now)
                    .is_none()
                {
                    self.clunk(fid, now);
                    self.health_skip(now);
                }
            }
            HealthStep::Open(fid) if failed => self.health_clunk(fid, now),
            HealthStep::Open(fid) => {
                let count = MAX_INFO.min(self.iounit());
                let read = Tread {
                    fid,
                    offset: 0,
                    count,
                };
                if self
                    .send(read, Wait::Health(HealthStep::Read(fid)), now)
                    .is_none()
                {
                    self.health_clunk(fid, now);
                }
            }
            HealthStep::Read(fid) => {
                if let Answer::Data(text) = answer
                    && let Ok(info) = serde_json::from_slice::<BridgeInfo>(&text)
                    && let Some(health) = info.health
                    && let Some(id) = self.health_round.and_then(|i| self.gpu_ids.get(i)).cloned()
                {
                    self.saw_health(&id, &health);
                }
                self.health_clunk(fid, now);
            }
            HealthStep::Clunk(fid) => {
                self.client.free_fid(fid);
                self.health_skip(now);
            }
        }
    }

    fn health_clunk(&mut self, fid: Fid, now: u64) {
        self.fids = self.fids.saturating_sub(1);
        if self
            .send(Tclunk { fid }, Wait::Health(HealthStep::Clunk(fid)), now)
            .is_none()
        {
            self.client.free_fid(fid);
            self.health_skip(now);
        }
    }

    // ---- serving opens ----

    /// Starts what every open is ready for, while the in-flight bound
    /// allows.
    fn pump(&mut self, now: u64) {
        if !self.is_up() {
            return;
        }
        let keys: Vec<Key> = self
            .opens
            .iter()
            .filter(|(_, o)| o.phase == Phase::Idle)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if self.inflight.len() >= self.config.max_inflight {
                return;
            }
            self.step(key, now);
        }
    }

    /// Fails the head request of `key` with `e` and goes on to the next.
    fn fail_head(&mut self, key: Key, e: FsError) {
        let Some(job) = self.opens.get_mut(&key).and_then(|o| o.jobs.pop_front()) else {
            return;
        };
        let result = failed(&job.request.op, e);
        self.complete(job.request.token, result, None);
    }

    /// Starts the next thing for an idle open.
    fn step(&mut self, key: Key, now: u64) {
        loop {
            let Some(open) = self.opens.get(&key) else {
                return;
            };
            let Some(job) = open.jobs.front() else {
                if open.closing {
                    match open.fid {
                        Some(fid) => {
                            self.fids = self.fids.saturating_sub(1);
                            let tag = self.send(Tclunk { fid }, Wait::Open(key), now);
                            self.client.free_fid(fid);
                            if let Some(o) = self.opens.get_mut(&key) {
                                o.phase = Phase::Clunk;
                                o.tag = tag;
                            }
                            if tag.is_none() {
                                self.opens.remove(&key);
                            }
                        }
                        None => {
                            self.opens.remove(&key);
                        }
                    }
                }
                return;
            };
            let started = match open.fid {
                None => self.start_attach(key, now),
                Some(fid) => {
                    let op = job.request.op.clone();
                    self.start_io(key, fid, &op, now)
                }
            };
            match started {
                Ok(()) => return,
                Err(e) => self.fail_head(key, e),
            }
        }
    }

    fn set_phase(&mut self, key: Key, phase: Phase, tag: Option<Tag>) {
        if let Some(o) = self.opens.get_mut(&key) {
            o.phase = phase;
            o.tag = tag;
        }
    }

    fn start_attach(&mut self, key: Key, now: u64) -> Result<(), FsError> {
        if self.fids >= self.config.max_fids {
            return Err(FsError::TooManyFids);
        }
        let job = self
            .opens
            .get(&key)
            .and_then(|o| o.jobs.front())
            .ok_or(FsError::Io)?;
        let minted = self.mirror.of(&job.request, &job.remote)?;
        let uname = job.request.subject.clone();
        let fid = self.client.alloc_fid();
        let tag = self.send(
            Tattach {
                fid,
                afid: Fid::NOFID,
                uname: &uname,
                aname: &minted.text,
                n_uname: Some(NO_UID),
            },
            Wait::Open(key),
            now,
        );
        match tag {
            Some(tag) => {
                self.fids += 1;
                self.set_phase(key, Phase::Attach(fid), Some(tag));
                Ok(())
            }
            None => {
                self.client.free_fid(fid);
                Err(FsError::TooBig)
            }
        }
    }

    fn start_io(&mut self, key: Key, fid: Fid, op: &GpuOp, now: u64) -> Result<(), FsError> {
        let iounit = self.iounit();
        let tag = match op {
            GpuOp::Read { offset, count } => self.send(
                Tread {
                    fid,
                    offset: *offset,
                    count: (*count).min(iounit),
                },
                Wait::Open(key),
                now,
            ),
            GpuOp::Write { offset, data } => {
                // A job descriptor or command must arrive whole.
                if data.len() > iounit as usize {
                    return Err(FsError::TooBig);
                }
                self.send(
                    Twrite {
                        fid,
                        offset: *offset,
                        data,
                    },
                    Wait::Open(key),
                    now,
                )
            }
        };
        let tag = tag.ok_or(FsError::TooBig)?;
        self.set_phase(key, Phase::Io, Some(tag));
        Ok(())
    }

    /// A fid of `key` that will not be used: clunked, and the open starts
    /// over at its next request.
    fn drop_fid(&mut self, key: Key, fid: Fid, now: u64) {
        self.clunk(fid, now);
        if let Some(o) = self.opens.get_mut(&key) {
            o.fid = None;
        }
    }

    fn on_open(&mut self, key: Key, answer: Answer, now: u64) {
        let Some(open) = self.opens.get(&key) else {
            return;
        };
        let phase = open.phase;
        let file = open.file;
        let remote = open.jobs.front().map(|j| j.remote.clone());
        self.set_phase(key, Phase::Idle, None);
        match (phase, answer) {
            (Phase::Attach(fid), Answer::Failed(e)) => {
                self.fids = self.fids.saturating_sub(1);
                self.client.free_fid(fid);
                self.fail_head(key, e);
            }
            (Phase::Attach(fid), _) => {
                let remote = remote.unwrap_or_default();
                let names = ["gpu", remote.as_str(), file.name()];
                let tag = walk_names(&names).ok().and_then(|wnames| {
                    self.send(
                        Twalk {
                            fid,
                            newfid: fid,
                            wnames,
                        },
                        Wait::Open(key),
                        now,
                    )
                });
                match tag {
                    Some(tag) => self.set_phase(key, Phase::Walk(fid), Some(tag)),
                    None => {
                        self.clunk(fid, now);
                        self.fail_head(key, FsError::NameTooLong);
                    }
                }
            }
            (Phase::Walk(fid), Answer::Walked(3)) => {
                let tag = self.send(
                    Tlopen {
                        fid,
                        flags: open_flags(file),
                    },
                    Wait::Open(key),
                    now,
                );
                self.set_phase(key, Phase::Open(fid), tag);
            }
            (Phase::Walk(fid), answer) => {
                self.clunk(fid, now);
                self.fail_head(key, answer.error().unwrap_or(FsError::NotFound));
            }
            (Phase::Open(fid), Answer::Failed(e)) => {
                self.clunk(fid, now);
                self.fail_head(key, e);
            }
            (Phase::Open(fid), _) => {
                if let Some(o) = self.opens.get_mut(&key) {
                    o.fid = Some(fid);
                }
            }
            (Phase::Io, answer) if matches!(key, Key::Command(_)) => {
                let written = match answer {
                    Answer::Written(n) => Ok(n),
                    Answer::Failed(e) => Err(e),
                    _ => Err(FsError::Protocol),
                };
                let fid = self.opens.get(&key).and_then(|o| o.fid);
                let count = MAX_COMMAND_REPLY.min(self.iounit());
                let tag = fid.and_then(|fid| {
                    self.send(
                        Tread {
                            fid,
                            offset: 0,
                            count,
                        },
                        Wait::Open(key),
                        now,
                    )
                });
                match tag {
                    Some(tag) => self.set_phase(key, Phase::CommandReply(written), Some(tag)),
                    None => self.finish_head(key, Completion::Write(written), Some(Vec::new())),
                }
            }
            (Phase::Io, answer) => {
                let Some(op) = self
                    .opens
                    .get(&key)
                    .and_then(|o| o.jobs.front())
                    .map(|j| j.request.op.clone())
                else {
                    return;
                };
                let result = match (&op, answer) {
                    (_, Answer::Failed(e)) => {
                        if e == FsError::BadFid {
                            // The bridge forgot the fid: reopen next time.
                            if let Some(fid) = self.opens.get(&key).and_then(|o| o.fid) {
                                self.drop_fid(key, fid, now);
                            }
                        }
                        failed(&op, e)
                    }
                    (GpuOp::Read { .. }, Answer::Data(d)) => Completion::Read(Ok(d)),
                    (GpuOp::Write { .. }, Answer::Written(n)) => Completion::Write(Ok(n)),
                    _ => failed(&op, FsError::Protocol),
                };
                self.finish_head(key, result, None);
            }
            (Phase::CommandReply(written), answer) => {
                let reply = match answer {
                    Answer::Data(d) => d,
                    _ => Vec::new(),
                };
                self.finish_head(key, Completion::Write(written), Some(reply));
            }
            (Phase::Clunk, _) => {
                // A request that came for the key while its fid was being
                // clunked (an "any GPU" lease asking its next candidate
                // under the same token) starts over on a fresh fid.
                match self.opens.get_mut(&key) {
                    Some(o) if !o.jobs.is_empty() => {
                        o.fid = None;
                        o.phase = Phase::Idle;
                        o.tag = None;
                        self.pump(now);
                    }
                    _ => {
                        self.opens.remove(&key);
                    }
                }
            }
            (Phase::Idle, _) => {}
        }
    }

    fn finish_head(&mut self, key: Key, result: Completion, reply: Option<Vec<u8>>) {
        let Some(job) = self.opens.get_mut(&key).and_then(|o| o.jobs.pop_front()) else {
            return;
        };
        self.complete(job.request.token, result, reply);
    }
}
