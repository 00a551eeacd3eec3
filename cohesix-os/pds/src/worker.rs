//! A heartbeat worker PD. It fetches its id and ticket from NineDoor by
//! protected call, attaches over its ring pair and, one request at a time
//! (each reply arrives as a notification), appends a boot line and
//! [`HEARTBEATS`] heartbeats to `/worker/<id>/telemetry`. Then it tries to
//! walk into another worker's directory and appends what the hive said: a
//! worker must be refused (`EACCES`) everywhere but its own telemetry.
//! After that it keeps its telemetry open and appends one more heartbeat
//! on every tick of the timer PD ([`wiring::worker::TICK`]); a tick that
//! arrives while a heartbeat is still on its way is counted in the next
//! line (`missed=N`).
//!
//! All its state lives in the handler, built at the image's entry point,
//! so a restart by NineDoor (which reloads no memory) starts it clean. A
//! worker handed `fault_after=K` (the image's test knob) reads an unmapped
//! address after K ticks' heartbeats: a real fault for NineDoor to catch.

use crate::link::{Link, LinkError};
use crate::ticket;
use crate::wiring::{self, FAULT_VADDR, HEARTBEATS, MSIZE, WORKER_IDS, call};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use cohesix_abi::{Channel, Context, Handler, MsgInfo, Regions};
use ninedoor::secure9p_core::codec::{
    Dialect, Fid, LOpenFlags, Msg, Tattach, Tlopen, Twalk, Twrite, WalkNames,
};
use ninedoor::secure9p_core::{Client, FsError};

/// Where the worker is in its script; each step waits for one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// No ticket or no rings yet.
    Waiting,
    Version,
    Attach,
    WalkOwn,
    Open,
    /// Appending line `n` (0 is the boot line).
    Append(u32),
    /// Walking to `/worker`, then into another worker's directory.
    ProbeDir,
    ProbeOther,
    Report,
    /// Script done, heartbeat `n` the last written: waiting for a tick.
    Live(u32),
    /// Appending heartbeat `n` on a tick.
    Beat(u32),
    /// A reply it cannot continue from; reported once.
    Failed,
}

/// The heartbeat worker protection domain.
pub struct HeartbeatPd {
    link: Link,
    client: Client,
    step: Step,
    id: Option<String>,
    ticket: Option<String>,
    root: Fid,
    telemetry: Fid,
    probe: Fid,
    /// What the probe of another worker's files got.
    probe_result: Option<Result<(), FsError>>,
    req: Vec<u8>,
    frame: Vec<u8>,
    /// Ticks that came while a heartbeat was in flight.
    missed: u32,
    /// Fault after this many ticks' heartbeats (test knob).
    fault_after: Option<u32>,
}

impl core::fmt::Debug for HeartbeatPd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the ticket.
        f.debug_struct("HeartbeatPd")
            .field("id", &self.id)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl HeartbeatPd {
    /// The PD over the regions the `.system` file maps into it.
    pub fn new(regions: &dyn Regions) -> Result<HeartbeatPd, LinkError> {
        let link = Link::mapped(regions, wiring::worker::NINEDOOR)?;
        let mut client = Client::new(MSIZE);
        let (root, telemetry, probe) = (client.alloc_fid(), client.alloc_fid(), client.alloc_fid());
        Ok(HeartbeatPd {
            link,
            client,
            step: Step::Waiting,
            id: None,
            ticket: None,
            root,
            telemetry,
            probe,
            probe_result: None,
            req: Vec::new(),
            frame: Vec::new(),
            missed: 0,
            fault_after: None,
        })
    }

    /// Asks NineDoor for this worker's id and ticket.
    fn fetch_ticket(&mut self, ctx: &mut dyn Context) {
        if self.ticket.is_some() {
            return;
        }
        let reply = ctx.ppcall(self.link.channel(), MsgInfo::new(call::TICKET, 0));
        if reply.label() != call::OK {
            return;
        }
        match ticket::get(ctx, reply)
            .as_deref()
            .and_then(ticket::Handover::parse)
        {
            Some(h) => {
                self.id = Some(h.id);
                self.ticket = Some(h.ticket);
                self.fault_after = h.fault_after;
            }
            None => ctx.debug("worker: malformed ticket reply\n"),
        }
    }

    /// Starts the script once it has a ticket and attached rings.
    fn start(&mut self, ctx: &mut dyn Context) {
        if self.step != Step::Waiting {
            return;
        }
        self.fetch_ticket(ctx);
        match self.link.attach() {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                ctx.debug(&format!("{}: {e}\n", ctx.name()));
                self.step = Step::Failed;
                return;
            }
        }
        if self.ticket.is_none() {
            return;
        }
        if self.client.version(Dialect::Linux, &mut self.req).is_ok() {
            self.step = Step::Version;
            self.flush(ctx);
        }
    }

    fn flush(&mut self, ctx: &mut dyn Context) {
        if !self.req.is_empty() {
            if let Err(e) = self.link.send(&self.req) {
                ctx.debug(&format!("{}: request dropped: {e}\n", ctx.name()));
                self.step = Step::Failed;
            }
            self.req.clear();
        }
    }

    fn send<'m>(&mut self, msg: impl Into<Msg<'m>>) -> bool {
        self.client.request(msg, &mut self.req).is_ok()
    }

    fn line(&self, n: u32, ctx: &dyn Context) -> String {
        let id = self.id.as_deref().unwrap_or("?");
        if n == 0 {
            format!("boot {id} pd={}\n", ctx.name())
        } else if self.missed > 0 {
            format!(
                "heartbeat {id} seq={n} uptime_ms={} missed={}\n",
                ctx.uptime_ms(),
                self.missed
            )
        } else {
            format!("heartbeat {id} seq={n} uptime_ms={}\n", ctx.uptime_ms())
        }
    }

    fn other(&self) -> &'static str {
        let me = self.id.as_deref().unwrap_or("");
        WORKER_IDS.into_iter().find(|w| *w != me).unwrap_or("w0")
    }

    /// Sends the request of `step`; `false` if it could not be encoded.
    fn request(&mut self, step: Step, ctx: &dyn Context) -> bool {
        let (root, telemetry, probe) = (self.root, self.telemetry, self.probe);
        match step {
            Step::Attach => {
                let ticket = self.ticket.clone().unwrap_or_default();
                let uname = self.id.clone().unwrap_or_default();
                self.send(Tattach {
                    fid: root,
                    afid: Fid::NOFID,
                    uname: &uname,
                    aname: &ticket,
                    n_uname: Some(0),
                })
            }
            Step::WalkOwn => {
                let id = self.id.clone().unwrap_or_default();
                let names = ["worker", id.as_str(), "telemetry"];
                match WalkNames::new(&names) {
                    Ok(wnames) => self.send(Twalk {
                        fid: root,
                        newfid: telemetry,
                        wnames,
                    }),
                    Err(_) => false,
                }
            }
            Step::Open => self.send(Tlopen {
                fid: telemetry,
                flags: LOpenFlags::WRONLY,
            }),
            Step::Append(n) | Step::Beat(n) => {
                let line = self.line(n, ctx);
                self.send(Twrite {
                    fid: telemetry,
                    offset: 0,
                    data: line.as_bytes(),
                })
            }
            Step::ProbeDir => {
                let names = ["worker"];
                match WalkNames::new(&names) {
                    Ok(wnames) => self.send(Twalk {
                        fid: root,
                        newfid: probe,
                        wnames,
                    }),
                    Err(_) => false,
                }
            }
            Step::ProbeOther => {
                let names = [self.other()];
                match WalkNames::new(&names) {
                    Ok(wnames) => self.send(Twalk {
                        fid: probe,
                        newfid: probe,
                        wnames,
                    }),
                    Err(_) => false,
                }
            }
            Step::Report => {
                let verdict = match self.probe_result {
                    Some(Err(FsError::AccessDenied)) => String::from("refused EACCES"),
                    Some(Err(e)) => format!("refused errno {}", e.errno()),
                    Some(Ok(())) | None => String::from("ALLOWED: isolation broken"),
                };
                let line = format!("probe /worker/{}/telemetry: {verdict}\n", self.other());
                self.send(Twrite {
                    fid: telemetry,
                    offset: 0,
                    data: line.as_bytes(),
                })
            }
            Step::Waiting | Step::Version | Step::Live(_) | Step::Failed => true,
        }
    }

    /// Handles one reply and sends the next request.
    fn advance(&mut self, ctx: &mut dyn Context) {
        let result = match self.client.receive(&self.frame) {
            Ok(reply) => reply.into_result().map(|m| match m {
                Msg::Rwalk(w) => w.wqids.len(),
                _ => usize::MAX,
            }),
            Err(e) => {
                ctx.debug(&format!("{}: bad reply: {e}\n", ctx.name()));
                self.step = Step::Failed;
                return;
            }
        };
        let next = match (self.step, result) {
            (Step::Version, Ok(_)) => Step::Attach,
            (Step::Attach, Ok(_)) => Step::WalkOwn,
            (Step::WalkOwn, Ok(3)) => Step::Open,
            (Step::Open, Ok(_)) => Step::Append(0),
            (Step::Append(n), Ok(_)) if n < HEARTBEATS => Step::Append(n + 1),
            (Step::Append(_), Ok(_)) => Step::ProbeDir,
            (Step::ProbeDir, Ok(1)) => Step::ProbeOther,
            (Step::ProbeDir, Err(e)) => {
                self.probe_result = Some(Err(e));
                Step::Report
            }
            (Step::ProbeOther, r) => {
                // A walk of one name that returns its qid succeeded.
                self.probe_result = Some(r.and_then(|n| {
                    if n == 1 {
                        Ok(())
                    } else {
                        Err(FsError::NotFound)
                    }
                }));
                Step::Report
            }
            (Step::Report, Ok(_)) => Step::Live(HEARTBEATS),
            (Step::Beat(n), Ok(_)) => {
                self.missed = 0;
                Step::Live(n)
            }
            (step, r) => {
                ctx.debug(&format!("{}: step {step:?} failed: {r:?}\n", ctx.name()));
                Step::Failed
            }
        };
        if self.request(next, ctx) {
            self.step = next;
        } else {
            ctx.debug(&format!("{}: cannot encode {next:?}\n", ctx.name()));
            self.step = Step::Failed;
        }
        self.flush(ctx);
    }
}

impl HeartbeatPd {
    /// One heartbeat per tick once the script is done.
    fn tick(&mut self, ctx: &mut dyn Context) {
        match self.step {
            Step::Live(n) => {
                if self
                    .fault_after
                    .is_some_and(|k| n >= HEARTBEATS.saturating_add(k))
                {
                    ctx.debug(&format!(
                        "{}: test knob: faulting at {FAULT_VADDR:#x} after {n} heartbeats\n",
                        ctx.name()
                    ));
                    ctx.crash_at(FAULT_VADDR);
                }
                let next = Step::Beat(n.wrapping_add(1));
                if self.request(next, ctx) {
                    self.step = next;
                    self.flush(ctx);
                    self.link.signal(ctx);
                }
            }
            Step::Beat(_) => self.missed = self.missed.saturating_add(1),
            // Still booting (or failed): the script's own heartbeats come
            // first.
            _ => {}
        }
    }
}

impl Handler for HeartbeatPd {
    fn init(&mut self, ctx: &mut dyn Context) {
        self.start(ctx);
        self.link.signal(ctx);
    }

    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        if ch == wiring::worker::TICK {
            self.tick(ctx);
            return;
        }
        if ch != self.link.channel() {
            return;
        }
        self.start(ctx);
        if let Err(e) = self.link.flush() {
            ctx.debug(&format!("{}: {e}\n", ctx.name()));
        }
        loop {
            match self.link.recv(&mut self.frame) {
                Ok(true) => self.advance(ctx),
                Ok(false) => break,
                Err(e) => {
                    ctx.debug(&format!("{}: {e}\n", ctx.name()));
                    break;
                }
            }
        }
        self.link.signal(ctx);
    }
}
