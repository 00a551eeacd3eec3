//! `/log/queen.log`: one bounded ring shared by the audit sink (which the
//! engine calls inline) and the file node the Queen reads, plus the builder
//! of its lines.
//!
//! A line is `<unix-ts> <event> role=<r> subject=<s> ticket=<id8hex> k=v ...`,
//! where role, subject and ticket name who acted (`-` when unknown) and the
//! ticket is its id's first 8 bytes in hex. Values that came from a client
//! are cleaned so they cannot break a line or forge another: no spaces,
//! quotes or control characters, bounded length. Ticket text is never
//! written: anything from `c9t1.` on is replaced by `[ticket]`.

use crate::worker::RingUsage;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use secure9p_core::{
    AppendLog, FsError, Handle, Io, IoCtx, Node, NodeAttr, NodeKind, Principal, Role, TicketId,
};
use spin::Mutex;

/// Longest value written for a `key=value` field.
const MAX_TOKEN: usize = 96;
/// Longest `why="..."` explanation.
const MAX_WHY: usize = 160;
/// Where the text form of a ticket starts.
const TICKET_PREFIX: &str = "c9t1.";

/// A control write the engine reported as accepted, held until the hive
/// knows whether it was answered at once or deferred (the engine records a
/// deferred control write as accepted before its outcome is known).
#[derive(Debug, Clone)]
pub(crate) struct HeldControl {
    pub(crate) at: u64,
    pub(crate) role: Option<Role>,
    pub(crate) subject: String,
    pub(crate) ticket: Option<TicketId>,
    pub(crate) path: String,
}

/// The state behind the lock: the ring, a held control-write record, and
/// the lines not yet taken by a durable store (`None`: nobody takes them,
/// so none are kept; a protection domain keeps only the ring).
#[derive(Debug)]
pub(crate) struct LogState {
    ring: AppendLog,
    held: Option<HeldControl>,
    journal: Option<Vec<String>>,
}

/// The log, shared between the audit sink, the file node and the hive.
pub(crate) type SharedLog = Arc<Mutex<LogState>>;

/// A new shared log holding at most `capacity` bytes.
pub(crate) fn shared(capacity: usize) -> SharedLog {
    Arc::new(Mutex::new(LogState {
        ring: AppendLog::new(capacity, capacity),
        held: None,
        journal: None,
    }))
}

/// Appends one finished line.
pub(crate) fn append(log: &SharedLog, line: Line) {
    let Line { at, mut text } = line;
    text.push('\n');
    let mut state = log.lock();
    state.ring.append(text.as_bytes(), at);
    if let Some(j) = state.journal.as_mut() {
        j.push(text);
    }
}

/// Puts one line in the ring only, never in the journal: a note for
/// readers of the ring about the log itself, not an audit event.
pub(crate) fn note(log: &SharedLog, line: Line) {
    let Line { at, mut text } = line;
    text.push('\n');
    log.lock().ring.append(text.as_bytes(), at);
}

/// Puts `lines` (whole lines, each ending in a newline) into the ring
/// without journaling them: a restarted hive's view of its older log.
pub(crate) fn refill(log: &SharedLog, lines: &[String], at: u64) {
    let mut state = log.lock();
    for l in lines {
        state.ring.append(l.as_bytes(), at);
    }
}

/// Starts keeping every appended line for [`take_journal`].
pub(crate) fn keep_journal(log: &SharedLog) {
    let mut state = log.lock();
    if state.journal.is_none() {
        state.journal = Some(Vec::new());
    }
}

/// The lines appended since the last call, oldest first (empty unless
/// [`keep_journal`] was called).
pub(crate) fn take_journal(log: &SharedLog) -> Vec<String> {
    log.lock()
        .journal
        .as_mut()
        .map(core::mem::take)
        .unwrap_or_default()
}

/// Holds a control write until the hive knows its outcome; a record still
/// held (which the hive always takes first) is written out as it stands.
pub(crate) fn hold(log: &SharedLog, held: HeldControl) {
    let previous = log.lock().held.replace(held);
    if let Some(p) = previous {
        append(log, p.line("ctl-write").field("result", "ok"));
    }
}

/// Takes the held control write, if any.
pub(crate) fn take_held(log: &SharedLog) -> Option<HeldControl> {
    log.lock().held.take()
}

/// How full the ring is.
pub(crate) fn usage(log: &SharedLog) -> RingUsage {
    let state = log.lock();
    RingUsage {
        held: state.ring.len(),
        capacity: state.ring.capacity(),
        end: state.ring.end(),
    }
}

impl HeldControl {
    /// A line about this write, naming its writer.
    pub(crate) fn line(&self, event: &str) -> Line {
        Line::new(
            self.at,
            event,
            Who {
                role: self.role,
                subject: &self.subject,
                ticket: self.ticket,
            },
        )
        .field("path", &self.path)
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) role: Option<Role>,
    pub(crate) subject: &'a str,
    pub(crate) ticket: Option<TicketId>,
}

impl<'a> Who<'a> {
    /// Nobody known (an engine event without a principal).
    pub(crate) const NOBODY: Who<'static> = Who {
        role: None,
        subject: "",
        ticket: None,
    };

    /// The principal `p`.
    pub(crate) fn of(p: &'a Principal) -> Who<'a> {
        Who {
            role: Some(p.role),
            subject: &p.subject,
            ticket: p.ticket,
        }
    }
}

/// One log line being built.
#[derive(Debug)]
#[must_use = "a line is written only by log::append"]
pub(crate) struct Line {
    at: u64,
    text: String,
}

impl Line {
    /// `<at> <event> role=.. subject=.. ticket=..`.
    pub(crate) fn new(at: u64, event: &str, who: Who<'_>) -> Line {
        let mut text = String::with_capacity(128);
        // Writing to a String cannot fail.
        let _ = write!(text, "{at} ");
        push_token(&mut text, event);
        text.push_str(" role=");
        text.push_str(who.role.map_or("-", Role::name));
        text.push_str(" subject=");
        push_token(&mut text, who.subject);
        text.push_str(" ticket=");
        match who.ticket {
            Some(id) => {
                let _ = write!(text, "{id}");
            }
            None => text.push('-'),
        }
        Line { at, text }
    }

    /// Adds `key=value`, the value cleaned.
    pub(crate) fn field(mut self, key: &str, value: &str) -> Line {
        self.text.push(' ');
        self.text.push_str(key);
        self.text.push('=');
        push_token(&mut self.text, value);
        self
    }

    /// Adds `key=<number>`.
    pub(crate) fn num(mut self, key: &str, value: u64) -> Line {
        let _ = write!(self.text, " {key}={value}");
        self
    }

    /// Adds `key=<ticket id>`.
    pub(crate) fn ticket(mut self, key: &str, id: TicketId) -> Line {
        let _ = write!(self.text, " {key}={id}");
        self
    }

    /// Adds `errno=<name>`.
    pub(crate) fn errno(mut self, e: FsError) -> Line {
        self.text.push_str(" errno=");
        match errno_name(e) {
            Some(name) => self.text.push_str(name),
            None => {
                let _ = write!(self.text, "{}", e.errno());
            }
        }
        self
    }

    /// Adds `why="<text>"`, the text cleaned.
    pub(crate) fn why(mut self, why: &str) -> Line {
        self.text.push_str(" why=\"");
        let (kept, redacted) = redact(why);
        for (n, c) in kept.chars().enumerate() {
            if n == MAX_WHY {
                self.text.push_str("...");
                break;
            }
            self.text.push(match c {
                '"' | '\\' => '\'',
                c if c == ' ' || c.is_ascii_graphic() => c,
                _ => '?',
            });
        }
        if redacted {
            self.text.push_str("[ticket]");
        }
        self.text.push('"');
        self
    }
}

/// The part of `value` before any ticket text, and whether some was cut.
fn redact(value: &str) -> (&str, bool) {
    match value.find(TICKET_PREFIX) {
        Some(at) => (value.get(..at).unwrap_or(""), true),
        None => (value, false),
    }
}

/// Writes `value` as one token: `-` if empty, unsafe characters as `?`.
fn push_token(out: &mut String, value: &str) {
    let (kept, redacted) = redact(value);
    if kept.is_empty() && !redacted {
        out.push('-');
        return;
    }
    for (i, c) in kept.chars().enumerate() {
        if i == MAX_TOKEN {
            out.push_str("...");
            break;
        }
        out.push(match c {
            '"' | '\\' | '=' => '?',
            c if c.is_ascii_graphic() => c,
            _ => '?',
        });
    }
    if redacted {
        out.push_str("[ticket]");
    }
}

/// The symbolic name of an error's errno (`EHOSTUNREACH`), as the audit
/// log writes it; `None` for a number without one here.
pub fn errno_name(e: FsError) -> Option<&'static str> {
    Some(match e.errno() {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        24 => "EMFILE",
        27 => "EFBIG",
        28 => "ENOSPC",
        36 => "ENAMETOOLONG",
        39 => "ENOTEMPTY",
        71 => "EPROTO",
        74 => "EBADMSG",
        90 => "EMSGSIZE",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        113 => "EHOSTUNREACH",
        125 => "ECANCELED",
        127 => "EKEYEXPIRED",
        128 => "EKEYREVOKED",
        129 => "EKEYREJECTED",
        _ => return None,
    })
}

/// The `/log/queen.log` file: the shared ring, read-only to every client
/// (only the hive writes it).
pub(crate) struct LogNode {
    log: SharedLog,
}

impl LogNode {
    /// The node over `log`.
    pub(crate) fn new(log: SharedLog) -> Self {
        LogNode { log }
    }
}

impl Node for LogNode {
    fn kind(&self) -> NodeKind {
        NodeKind::Append
    }

    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o444,
            ..self.log.lock().ring.attr()
        }
    }

    fn read(
        &mut self,
        ctx: &IoCtx<'_>,
        handle: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        self.log.lock().ring.read(ctx, handle, offset, count, out)
    }

    fn write(&mut self, _: &IoCtx<'_>, _: &mut Handle, _: u64, _: &[u8]) -> Io<u32> {
        Io::Ready(Err(FsError::NotPermitted))
    }
}
