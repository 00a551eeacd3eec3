//! `cohsh`: the Cohesix operator's shell, and the other clients of the
//! hive: the heartbeat worker and the one-command hive demo.
//!
//! - `cohsh` ([`shell`]): file verbs (`ls`, `cat`, `echo`/`write`, `tail -f`,
//!   `stat`) and hive verbs (`spawn`, `kill`, `workers`, `budget`, and
//!   [`gpu`]'s `gpu list|lease|release|submit|status|result`) over
//!   Secure9P, with exit codes a script can test ([`exit::Exit`]).
//! - `worker-heartbeat` ([`heartbeat`]): a heartbeat worker that appends to
//!   its `/worker/<id>/telemetry` until its ticket is revoked or expires.
//! - `cohesix-hive` ([`demo`]): NineDoor in-process on localhost with a
//!   mock GPU bridge (`gpu-bridge-host --mock`), one heartbeat worker
//!   spawned through `/queen/ctl`, a GPU worker's `vadd` job, and the
//!   commands to try.
//!
//! - `cohesix-console` ([`console`]): the operator's web console and
//!   Prometheus `/metrics`, a client of the hive as the Queen.
//!
//! All of them speak to the hive only through [`session::Session`], which
//! wraps `secure9p-transport`'s client with deadlines and clear errors.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod console;
pub mod demo;
pub mod exit;
pub mod gpu;
pub mod heartbeat;
pub mod session;
pub mod shell;
pub mod ticket;
