//! The bridge's event log: one line per control action (lease requests,
//! grants, releases, renewals, priority changes, resets, expiries), job
//! acceptance and refusal, with who asked and the ticket id (never the
//! ticket text). A bounded ring, optionally mirrored to a sink (the host
//! binary prints to stderr).

use crate::limits::LOG_LINES;
use secure9p_core::{Principal, Role, TicketId};
use std::collections::VecDeque;
use std::fmt;

/// Who asked for something: the principal of the 9P fid that wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Its role.
    pub role: Role,
    /// Its subject (a worker id, `queen`).
    pub subject: String,
    /// Its ticket's id, if it attached with one.
    pub ticket: Option<TicketId>,
}

impl Actor {
    /// The actor of a principal.
    pub fn of(principal: &Principal) -> Actor {
        Actor {
            role: principal.role,
            subject: principal.subject.clone(),
            ticket: principal.ticket,
        }
    }

    /// An actor with no ticket (tests, the host's own actions).
    pub fn local(role: Role, subject: &str) -> Actor {
        Actor {
            role,
            subject: String::from(subject),
            ticket: None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "by={}:{} ticket=", self.role, self.subject)?;
        match &self.ticket {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("-"),
        }
    }
}

/// Receives each log line as it is recorded. Must not block.
pub type LogSink = Box<dyn FnMut(&str) + Send>;

/// The ring of recent events.
#[derive(Default)]
pub struct EventLog {
    lines: VecDeque<String>,
    sink: Option<LogSink>,
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("lines", &self.lines.len())
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// Mirrors every line recorded from now on to `sink`.
    pub fn set_sink(&mut self, sink: LogSink) {
        self.sink = Some(sink);
    }

    /// Records one event of GPU `gpu` at `now` (ms); `actor` is `None` for
    /// the bridge's own timer.
    pub fn record(&mut self, now: u64, gpu: &str, actor: Option<&Actor>, event: &str) {
        let line = match actor {
            Some(a) => format!("t={now} gpu={gpu} {a} {event}"),
            None => format!("t={now} gpu={gpu} by=timer {event}"),
        };
        if let Some(sink) = self.sink.as_mut() {
            sink(&line);
        }
        if self.lines.len() >= LOG_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }
}
