//! Exit codes a script can test, and turning what went wrong (an errno from
//! the hive, a dead connection, a bad flag) into one clear sentence for
//! stderr plus one of those codes. Messages name the path and what would
//! have been needed; they never contain ticket text.

use crate::ticket::TicketInfo;
use ninedoor::secure9p_core::FsError;
use secure9p_transport::client::CallError;
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

/// How a command ended, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: bad command line (unknown verb, missing argument, no ticket given).
    Usage = 1,
    /// 2: the hive refused the operation to this ticket's role (`EACCES`, `EPERM`).
    Permission = 2,
    /// 3: no such file or worker (`ENOENT`).
    NotFound = 3,
    /// 4: the ticket was refused: forged, expired or revoked.
    Ticket = 4,
    /// 5: cannot reach the hive, or it closed the connection or stopped answering.
    Connection = 5,
    /// 6: anything else the hive refused (bad command, limit reached, ...).
    Other = 6,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }
}

/// A failed command: its exit status and what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit status.
    pub exit: Exit,
    /// One line for stderr.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// A failure with `exit` and `message`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(Exit::Usage, message)
    }
}

/// What was being done to a path when it failed, to say what was needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Attaching with the ticket.
    Attach,
    /// Walking to the path.
    Walk,
    /// Opening or reading it (or listing a directory).
    Read,
    /// Opening it for writing or writing it.
    Write,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Attach => "attach",
            Op::Walk => "walk to",
            Op::Read => "read",
            Op::Write => "write",
        }
    }
}

/// Why `who` may not `op` `path`, in the words of the Cohesix policy.
fn permission(path: &str, op: Op, who: Option<&TicketInfo>) -> String {
    let role = who.map_or("unknown", |t| t.role.as_str());
    let mut parts = path.split('/').filter(|s| !s.is_empty());
    let first = parts.next().unwrap_or("");
    let second = parts.next();
    let third = parts.next();
    let why = match (first, second, third) {
        ("proc", _, _) if role == "queen" => format!("{path} is read-only"),
        ("queen" | "proc", _, _) => format!("{path} needs the queen role"),
        ("log", _, _) if role == "queen" => format!("{path} is written by the hive only"),
        ("log", _, _) => format!("{path} needs the queen role"),
        ("worker", Some(id), _) if role == "queen" => {
            format!("{path} is appended by worker {id} only; the queen may read it")
        }
        ("worker", Some(id), _) if role == "worker-heartbeat" => {
            let mine = who.map_or("", |t| t.subject.as_str());
            if id == mine {
                format!("{path} is append-only for its worker; the queen reads it")
            } else {
                format!("{path} belongs to worker {id}, not to this ticket's worker {mine}")
            }
        }
        ("gpu", _, _) if role == "queen" => {
            format!("{path}: the queen may read /gpu and write only /gpu/<id>/ctl")
        }
        ("gpu", _, _) => format!("{path} needs the queen role or a GPU worker's lease"),
        _ if role != "queen" => format!("{path} needs the queen role"),
        _ if op == Op::Walk => format!(
            "{path} is outside the queen's namespace (the hive does not say whether it exists)"
        ),
        _ => format!("{path}: the queen may not {} it", op.verb()),
    };
    format!("permission denied: {why}")
}

/// The failure an errno from the hive stands for.
pub fn fs_failure(e: FsError, path: &str, op: Op, who: Option<&TicketInfo>) -> Failure {
    let errno = e.errno();
    match e {
        FsError::AccessDenied | FsError::NotPermitted if op == Op::Attach => Failure::new(
            Exit::Ticket,
            "ticket refused: the hive admits only clients with a valid ticket",
        ),
        FsError::NotPermitted if path.starts_with("/gpu/") && op == Op::Write => Failure::new(
            Exit::Permission,
            format!(
                "permission denied: {path}: the GPU bridge refused it: this ticket's worker holds \
                 no active lease of the GPU (never granted, expired, released or preempted) (EPERM)"
            ),
        ),
        FsError::AccessDenied | FsError::NotPermitted => {
            Failure::new(Exit::Permission, permission(path, op, who))
        }
        FsError::TicketExpired => Failure::new(
            Exit::Ticket,
            match who {
                Some(t) => format!("ticket expired (at {}, subject {})", t.expires, t.subject),
                None => "ticket expired".to_owned(),
            },
        ),
        FsError::TicketRevoked => Failure::new(Exit::Ticket, "ticket revoked"),
        FsError::TicketRejected => Failure::new(
            Exit::Ticket,
            "ticket rejected: not minted by this hive (forged, altered, or from a hive that has since restarted)",
        ),
        // A command the hive ran and refused: the errno is about the
        // command (no such worker, worker exists, bad JSON), not the file.
        _ if path == "/queen/ctl" && op == Op::Write => Failure::new(
            if e == FsError::NotFound {
                Exit::NotFound
            } else {
                Exit::Other
            },
            format!(
                "the hive refused the command: {e} ({}); /log/queen.log says why",
                errno_name(e)
            ),
        ),
        FsError::NotFound => Failure::new(Exit::NotFound, format!("no such file: {path}")),
        FsError::NoSpace if path.starts_with("/worker/") => Failure::new(
            Exit::Other,
            format!("{path}: the worker's ops budget is exhausted (ENOSPC)"),
        ),
        FsError::Unreachable => Failure::new(
            Exit::Other,
            format!(
                "{path}: the GPU bridge is unreachable: none is attached to this hive, or it is \
                 down and ninedoor is reconnecting (EHOSTUNREACH)"
            ),
        ),
        _ => Failure::new(
            Exit::Other,
            format!("{path}: {} ({}, errno {errno})", e, errno_name(e)),
        ),
    }
}

/// The failure a transport error stands for, `target` naming the hive.
pub fn call_failure(
    e: CallError,
    path: &str,
    op: Op,
    who: Option<&TicketInfo>,
    target: &dyn fmt::Display,
) -> Failure {
    match e {
        CallError::Fs(e) => fs_failure(e, path, op, who),
        // rustls reports a refused certificate, name or alert as InvalidData.
        CallError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => Failure::new(
            Exit::Connection,
            format!(
                "TLS with the hive at {target} failed: {e} (check --tls-cert, --tls-ca and the name)"
            ),
        ),
        CallError::Io(e) => Failure::new(
            Exit::Connection,
            format!("cannot reach the hive at {target}: {e} (is ninedoor running?)"),
        ),
        CallError::Closed => {
            let shown = target.to_string();
            // A TLS hive closes a plain client at once: say what to try.
            let hint = if shown.starts_with("tls:") || shown.starts_with("unix:") {
                ""
            } else {
                " (a hive on TLS closes plain connections: give --tls-cert, --tls-key and --tls-ca)"
            };
            Failure::new(
                Exit::Connection,
                format!("the hive at {target} closed the connection{hint}"),
            )
        }
        other => Failure::new(
            Exit::Other,
            format!("protocol error talking to {target}: {other}"),
        ),
    }
}

/// The failure of a call that got no answer in time.
pub fn timed_out(target: &dyn fmt::Display, after: Duration) -> Failure {
    Failure::new(
        Exit::Connection,
        format!(
            "no answer from the hive at {target} within {} s",
            after.as_secs_f32()
        ),
    )
}

/// The symbolic name of an errno (`EACCES`, ...), or `E?` when unknown.
pub fn errno_name(e: FsError) -> &'static str {
    match e.errno() {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
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
        71 => "EPROTO",
        74 => "EBADMSG",
        90 => "EMSGSIZE",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        113 => "EHOSTUNREACH",
        122 => "EDQUOT",
        125 => "ECANCELED",
        127 => "EKEYEXPIRED",
        128 => "EKEYREVOKED",
        129 => "EKEYREJECTED",
        _ => "E?",
    }
}

/// The start of every binary of this crate: parse `C` (usage errors exit
/// [`Exit::Usage`], `--help` exits 0) and build a current-thread tokio
/// runtime; on failure, the exit code to return.
pub fn start<C: clap::Parser>(name: &str) -> Result<(C, tokio::runtime::Runtime), ExitCode> {
    let cli = match C::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Err(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                Exit::Ok.code()
            });
        }
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Ok((cli, runtime)),
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            Err(Exit::Other.code())
        }
    }
}

/// `main` of a binary whose whole run is `body`: [`start`], run `body`, and
/// turn its outcome into the exit code, failures printed as `<name>: <failure>`.
pub fn entry<C, F, Fut>(name: &str, body: F) -> ExitCode
where
    C: clap::Parser,
    F: FnOnce(C) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let (cli, runtime) = match start::<C>(name) {
        Ok(started) => started,
        Err(code) => return code,
    };
    match runtime.block_on(body(cli)) {
        Ok(()) => Exit::Ok.code(),
        Err(f) => {
            eprintln!("{name}: {f}");
            f.exit.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: &str, subject: &str) -> TicketInfo {
        TicketInfo {
            id8: "00".repeat(8),
            role: role.to_owned(),
            subject: subject.to_owned(),
            expires: 1,
            scope: String::new(),
        }
    }

    #[test]
    fn errnos_map_to_documented_codes_and_messages() {
        let w1 = who("worker-heartbeat", "w1");
        let queen = who("queen", "queen");
        let cases: &[(FsError, &str, Op, &TicketInfo, Exit, &str)] = &[
            (
                FsError::AccessDenied,
                "/queen/ctl",
                Op::Walk,
                &w1,
                Exit::Permission,
                "permission denied: /queen/ctl needs the queen role",
            ),
            (
                FsError::AccessDenied,
                "/worker/w2/telemetry",
                Op::Walk,
                &w1,
                Exit::Permission,
                "permission denied: /worker/w2/telemetry belongs to worker w2, not to this ticket's worker w1",
            ),
            (
                FsError::AccessDenied,
                "/worker/w1/telemetry",
                Op::Write,
                &queen,
                Exit::Permission,
                "permission denied: /worker/w1/telemetry is appended by worker w1 only; the queen may read it",
            ),
            (
                FsError::NotFound,
                "/x",
                Op::Walk,
                &queen,
                Exit::NotFound,
                "no such file: /x",
            ),
            (
                FsError::TicketRevoked,
                "/",
                Op::Attach,
                &w1,
                Exit::Ticket,
                "ticket revoked",
            ),
            (
                FsError::AccessDenied,
                "/",
                Op::Attach,
                &w1,
                Exit::Ticket,
                "ticket refused: the hive admits only clients with a valid ticket",
            ),
            (
                FsError::Exists,
                "/queen/ctl",
                Op::Write,
                &queen,
                Exit::Other,
                "the hive refused the command: file exists (EEXIST); /log/queen.log says why",
            ),
        ];
        for (e, path, op, t, exit, message) in cases {
            let f = fs_failure(*e, path, *op, Some(t));
            assert_eq!(
                (f.exit, f.message.as_str()),
                (*exit, *message),
                "{e:?} {path}"
            );
        }
    }
}
