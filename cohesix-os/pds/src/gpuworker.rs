//! The GPU worker PD (`Worker:GPU`): it uses a GPU only through the `/gpu`
//! files NineDoor mirrors from the bridge host, never a driver. Bound to
//! its slot when the Queen leases it a GPU, it fetches its id, ticket and
//! GPU by protected call, attaches over its ring pair, reads
//! `/gpu/<id>/info`, then submits two jobs to `/gpu/<id>/job`: a `vadd`
//! whose declared SHA-256 is wrong (the bridge must refuse it; the PD
//! reports the refusal and carries on), and the same `vadd` with the
//! SHA-256 it computes of its inline payload. On every tick of the timer it
//! reads `/gpu/<id>/status` until the job is `OK` (or `ERR`), then reads
//! `/gpu/<id>/result`, checks every element against its own sums and
//! prints [`GPU_PASS_MARKER`] (or why not). One request at a time, each
//! reply a notification; all state lives in the handler, so a restart
//! starts clean.

use crate::link::{Link, LinkError};
use crate::ticket::{self, Handover};
use crate::wiring::{self, GPU_PASS_MARKER, MSIZE, call};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cohesix_abi::{Channel, Context, Handler, MsgInfo, Regions};
use ninedoor::secure9p_core::codec::{
    Dialect, Fid, LOpenFlags, Msg, Tattach, Tclunk, Tlopen, Tread, Twalk, Twrite, WalkNames,
};
use ninedoor::secure9p_core::{Client, FsError};
use sha2::{Digest, Sha256};

/// The job's id in status lines.
pub const JOB_ID: &str = "pd-vadd";
/// The refused job's id.
pub const BAD_JOB_ID: &str = "pd-vadd-bad-hash";
/// The vectors added.
const A: [f32; 8] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
const B: [f32; 8] = [0.5, 0.25, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0];

/// The files the worker opens, in `/gpu/<id>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum File {
    Info,
    Job,
    Status,
    Result,
}

impl File {
    fn name(self) -> &'static str {
        match self {
            File::Info => "info",
            File::Job => "job",
            File::Status => "status",
            File::Result => "result",
        }
    }
}

/// What one open of a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Read it once.
    Read(File),
    /// Submit the bad job, then the good one.
    Submit { bad: bool },
}

/// Where the worker is; each step waits for one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Waiting,
    Version,
    Attach,
    Walk(Use),
    Open(Use),
    Write(Use),
    Read(Use),
    Clunk(Use),
    /// The job is in; look at its status on the next tick.
    Idle,
    Done,
}

/// The GPU worker protection domain.
pub struct GpuWorkerPd {
    link: Link,
    client: Client,
    step: Step,
    handover: Option<Handover>,
    root: Fid,
    file: Fid,
    req: Vec<u8>,
    frame: Vec<u8>,
    /// The last read's bytes, or the last error.
    got: Result<Vec<u8>, FsError>,
    written: Option<Result<(), FsError>>,
}

impl core::fmt::Debug for GpuWorkerPd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GpuWorkerPd")
            .field("handover", &self.handover)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// The job descriptor of a `vadd` of two fixed 8-element vectors (the GPU seed's
/// schema, inline payload); with `bad_hash` its declared SHA-256 is not the
/// payload's.
pub fn vadd_descriptor(job_id: &str, bad_hash: bool) -> String {
    let payload = json(&serde_json::json!({ "a": A, "b": B }));
    let mut hash: String = Sha256::digest(payload.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if bad_hash {
        hash = hash.chars().rev().collect();
    }
    json(&serde_json::json!({
        "job_id": job_id,
        "kernel": "vadd",
        "grid": [1, 1, 1],
        "block": [256, 1, 1],
        "bytes_hash": hash,
        "payload_b64": BASE64.encode(payload.as_bytes()),
        "bytes_len": payload.len(),
        "priority": 0,
        "timeout_ms": 10_000,
        "mem_mb": 1,
        "streams": 1,
    }))
}

/// One line of JSON (encoding a `Value` cannot fail).
fn json(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Whether `result` (the `result` file: one JSON line per job) holds
/// [`JOB_ID`]'s output and every value is `A[i] + B[i]`.
fn check(result: &[u8]) -> Result<usize, String> {
    let text = core::str::from_utf8(result).map_err(|_| String::from("result is not UTF-8"))?;
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["job_id"] == JOB_ID)
        .ok_or_else(|| format!("no result line for {JOB_ID}"))?;
    let values = line["values"]
        .as_array()
        .ok_or_else(|| String::from("the result has no values"))?;
    if values.len() != A.len() {
        return Err(format!("{} values, not {}", values.len(), A.len()));
    }
    for (i, v) in values.iter().enumerate() {
        let want = A[i] + B[i];
        let got = v.as_f64().map(|g| g as f32);
        if got != Some(want) {
            return Err(format!("element {i} is {v}, not {want}"));
        }
    }
    Ok(values.len())
}

impl GpuWorkerPd {
    /// The PD over the regions the `.system` file maps into it.
    pub fn new(regions: &dyn Regions) -> Result<GpuWorkerPd, LinkError> {
        let link = Link::mapped(regions, wiring::gpuworker::NINEDOOR)?;
        let mut client = Client::new(MSIZE);
        let (root, file) = (client.alloc_fid(), client.alloc_fid());
        Ok(GpuWorkerPd {
            link,
            client,
            step: Step::Waiting,
            handover: None,
            root,
            file,
            req: Vec::new(),
            frame: Vec::new(),
            got: Ok(Vec::new()),
            written: None,
        })
    }

    fn say(&self, ctx: &mut dyn Context, what: &str) {
        ctx.debug(&format!("{}: {what}\n", ctx.name()));
    }

    fn gpu(&self) -> String {
        self.handover
            .as_ref()
            .and_then(|h| h.gpu.clone())
            .unwrap_or_default()
    }

    fn start(&mut self, ctx: &mut dyn Context) {
        if self.step != Step::Waiting {
            return;
        }
        if self.handover.is_none() {
            let reply = ctx.ppcall(self.link.channel(), MsgInfo::new(call::TICKET, 0));
            if reply.label() == call::OK {
                self.handover = ticket::get(ctx, reply)
                    .as_deref()
                    .and_then(Handover::parse)
                    .filter(|h| h.gpu.is_some());
                if self.handover.is_none() {
                    self.say(ctx, "malformed handover (no gpu)");
                }
            }
        }
        match self.link.attach() {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.say(ctx, &format!("{e}"));
                self.step = Step::Done;
                return;
            }
        }
        if self.handover.is_some() && self.client.version(Dialect::Linux, &mut self.req).is_ok() {
            self.step = Step::Version;
            self.flush(ctx);
        }
    }

    fn flush(&mut self, ctx: &mut dyn Context) {
        if !self.req.is_empty() {
            if let Err(e) = self.link.send(&self.req) {
                self.say(ctx, &format!("request dropped: {e}"));
                self.step = Step::Done;
            }
            self.req.clear();
        }
        self.link.signal(ctx);
    }

    fn send<'m>(&mut self, msg: impl Into<Msg<'m>>) -> bool {
        self.client.request(msg, &mut self.req).is_ok()
    }

    /// Sends the request of `step`.
    fn request(&mut self, step: Step) -> bool {
        let (root, file) = (self.root, self.file);
        match step {
            Step::Attach => {
                let Some(h) = self.handover.clone() else {
                    return false;
                };
                self.send(Tattach {
                    fid: root,
                    afid: Fid::NOFID,
                    uname: &h.id,
                    aname: &h.ticket,
                    n_uname: Some(0),
                })
            }
            Step::Walk(u) => {
                let name = match u {
                    Use::Read(f) => f.name(),
                    Use::Submit { .. } => File::Job.name(),
                };
                let gpu = self.gpu();
                let names = ["gpu", gpu.as_str(), name];
                match WalkNames::new(&names) {
                    Ok(wnames) => self.send(Twalk {
                        fid: root,
                        newfid: file,
                        wnames,
                    }),
                    Err(_) => false,
                }
            }
            Step::Open(u) => self.send(Tlopen {
                fid: file,
                flags: match u {
                    Use::Read(_) => LOpenFlags::empty(),
                    Use::Submit { .. } => LOpenFlags::RDWR,
                },
            }),
            Step::Write(Use::Submit { bad }) => {
                let id = if bad { BAD_JOB_ID } else { JOB_ID };
                let job = vadd_descriptor(id, bad);
                self.send(Twrite {
                    fid: file,
                    offset: 0,
                    data: job.as_bytes(),
                })
            }
            Step::Read(_) => self.send(Tread {
                fid: file,
                offset: 0,
                count: MSIZE - 64,
            }),
            Step::Clunk(_) => self.send(Tclunk { fid: file }),
            Step::Write(_) | Step::Waiting | Step::Version | Step::Idle | Step::Done => true,
        }
    }

    fn go(&mut self, next: Step, ctx: &mut dyn Context) {
        if self.request(next) {
            self.step = next;
        } else {
            self.say(ctx, &format!("cannot encode {next:?}"));
            self.step = Step::Done;
        }
        self.flush(ctx);
    }

    /// What a finished read of `u` says, and what comes after its clunk.
    fn after_read(&mut self, u: Use, ctx: &mut dyn Context) -> Step {
        let got = core::mem::replace(&mut self.got, Ok(Vec::new()));
        let text = got
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .map_err(|e| *e);
        match (u, text) {
            (Use::Read(File::Info), Ok(t)) => {
                let info = t.trim_end();
                self.say(ctx, &format!("gpu {} info {info}", self.gpu()));
                Step::Walk(Use::Submit { bad: true })
            }
            (Use::Submit { bad: true }, reply) => {
                match (self.written.take(), reply) {
                    (Some(Err(e)), Ok(r)) => self.say(
                        ctx,
                        &format!(
                            "bad job refused as it must be (errno {}): {}",
                            e.errno(),
                            r.trim_end()
                        ),
                    ),
                    (w, r) => self.say(ctx, &format!("bad job NOT refused: {w:?} {r:?}")),
                }
                Step::Walk(Use::Submit { bad: false })
            }
            (Use::Submit { bad: false }, reply) => {
                let w = self.written.take();
                match (w, reply) {
                    (Some(Ok(())), Ok(r)) => {
                        self.say(ctx, &format!("job submitted: {}", r.trim_end()));
                        Step::Idle
                    }
                    (w, r) => {
                        self.say(ctx, &format!("job not accepted: {w:?} {r:?}"));
                        Step::Done
                    }
                }
            }
            (Use::Read(File::Status), Ok(t)) => {
                let mine = |l: &&str| l.split_whitespace().any(|w| w == JOB_ID);
                if let Some(line) = t.lines().rfind(mine) {
                    self.say(ctx, &format!("status {line}"));
                    if line.starts_with("OK ") {
                        return Step::Walk(Use::Read(File::Result));
                    }
                    if line.starts_with("ERR ") {
                        self.say(ctx, &format!("job {JOB_ID} failed on the bridge: {line}"));
                        return Step::Done;
                    }
                }
                Step::Idle
            }
            (Use::Read(File::Result), Ok(t)) => {
                match check(t.as_bytes()) {
                    Ok(n) => ctx.debug(&format!(
                        "{GPU_PASS_MARKER} job {JOB_ID} OK on gpu {}, all {n} sums right\n",
                        self.gpu()
                    )),
                    Err(why) => self.say(ctx, &format!("job {JOB_ID} result wrong: {why}")),
                }
                Step::Done
            }
            (u, Err(e)) => {
                self.say(ctx, &format!("{u:?}: errno {}", e.errno()));
                // The bridge may be away: look again on a later tick.
                if matches!(u, Use::Read(File::Status)) {
                    Step::Idle
                } else {
                    Step::Done
                }
            }
            (u, Ok(_)) => {
                self.say(ctx, &format!("{u:?}: unexpected"));
                Step::Done
            }
        }
    }

    fn advance(&mut self, ctx: &mut dyn Context) {
        let result = match self.client.receive(&self.frame) {
            Ok(reply) => reply.into_result().map(|m| match m {
                Msg::Rwalk(w) => (w.wqids.len(), Vec::new()),
                Msg::Rread(r) => (0, r.data.to_vec()),
                _ => (0, Vec::new()),
            }),
            Err(e) => {
                self.say(ctx, &format!("bad reply: {e}"));
                self.step = Step::Done;
                return;
            }
        };
        let next = match (self.step, result) {
            (Step::Version, Ok(_)) => Step::Attach,
            (Step::Attach, Ok(_)) => Step::Walk(Use::Read(File::Info)),
            (Step::Walk(u), Ok((3, _))) => Step::Open(u),
            (Step::Open(u @ Use::Submit { .. }), Ok(_)) => Step::Write(u),
            (Step::Open(u), Ok(_)) => Step::Read(u),
            (Step::Write(u), r) => {
                self.written = Some(r.map(|_| ()));
                Step::Read(u)
            }
            (Step::Read(u), r) => {
                self.got = r.map(|(_, d)| d);
                Step::Clunk(u)
            }
            (Step::Clunk(u), _) => self.after_read(u, ctx),
            // A walk that failed or stopped short created no fid.
            (Step::Walk(u), r) => {
                self.got = Err(r.err().unwrap_or(FsError::NotFound));
                self.after_read(u, ctx)
            }
            (Step::Open(u), r) => {
                self.got = Err(r.err().unwrap_or(FsError::Io));
                Step::Clunk(u)
            }
            (step, r) => {
                self.say(ctx, &format!("step {step:?} failed: {r:?}"));
                Step::Done
            }
        };
        self.go(next, ctx);
    }
}

impl Handler for GpuWorkerPd {
    fn init(&mut self, ctx: &mut dyn Context) {
        self.start(ctx);
        self.link.signal(ctx);
    }

    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        if ch == wiring::gpuworker::TICK {
            if self.step == Step::Idle {
                self.go(Step::Walk(Use::Read(File::Status)), ctx);
            }
            return;
        }
        if ch != self.link.channel() {
            return;
        }
        self.start(ctx);
        if let Err(e) = self.link.flush() {
            self.say(ctx, &format!("{e}"));
        }
        loop {
            match self.link.recv(&mut self.frame) {
                Ok(true) => self.advance(ctx),
                Ok(false) => break,
                Err(e) => {
                    self.say(ctx, &format!("{e}"));
                    break;
                }
            }
        }
        self.link.signal(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_check_wants_every_sum() {
        let sums: Vec<f32> = A.iter().zip(B).map(|(a, b)| a + b).collect();
        let line = json(&serde_json::json!({ "job_id": JOB_ID, "values": sums }));
        assert_eq!(check(line.as_bytes()), Ok(8));
        let mut wrong = sums.clone();
        wrong[3] += 1.0;
        let line = json(&serde_json::json!({ "job_id": JOB_ID, "values": wrong }));
        assert!(check(line.as_bytes()).unwrap_err().contains("element 3"));
        assert!(check(b"{\"job_id\":\"other\"}").is_err());
    }
}
