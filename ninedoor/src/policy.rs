//! The Cohesix role policy (DESIGN §5) as one rule table. Every role attaches
//! at `/`; the table decides what each can walk to, read and write, so a
//! worker walking anywhere else is refused with `EACCES` and audited.
//! Walking (and listing) is allowed along the way to anything granted, so a
//! heartbeat worker listing `/worker` sees only its own directory.

use secure9p_core::{Ops, Role, RulePolicy};

/// The hive's policy:
///
/// | role | path | grants |
/// |---|---|---|
/// | Queen | `/proc/boot` | read |
/// | Queen | `/proc/transport` | read (the host daemon's runners' figures) |
/// | Queen | `/queen/ctl` | write, and read (the reply to its own commands) |
/// | Queen | `/log/queen.log` | read |
/// | Queen | `/worker/*/telemetry` | read |
/// | Queen | `/gpu/**` | read |
/// | Queen | `/gpu/*/ctl` | write |
/// | heartbeat worker | `/worker/{subject}/telemetry` | write (append) |
/// | GPU worker | `/gpu/{scope}/info`, `status`, `stats`, `result` | read |
/// | GPU worker | `/gpu/{scope}/lease` | read, write (renew) |
/// | GPU worker | `/gpu/{scope}/job` | write (append), and read (the bridge's reply to its own last job) |
///
/// Nothing else is granted: no role creates or removes files (the hive
/// itself adds and removes workers and GPUs), and nobody writes the log.
pub fn cohesix_policy() -> RulePolicy {
    RulePolicy::new()
        .allow(Role::Queen, "/proc/boot", Ops::READ)
        .allow(Role::Queen, "/proc/transport", Ops::READ)
        .allow(Role::Queen, "/queen/ctl", Ops::READ | Ops::WRITE)
        .allow(Role::Queen, "/log/queen.log", Ops::READ)
        .allow(Role::Queen, "/worker/*/telemetry", Ops::READ)
        .allow(Role::Queen, "/gpu/**", Ops::READ)
        .allow(Role::Queen, "/gpu/*/ctl", Ops::WRITE)
        .allow(
            Role::WorkerHeartbeat,
            "/worker/{subject}/telemetry",
            Ops::WRITE,
        )
        .allow(Role::WorkerGpu, "/gpu/{scope}/info", Ops::READ)
        .allow(Role::WorkerGpu, "/gpu/{scope}/status", Ops::READ)
        .allow(Role::WorkerGpu, "/gpu/{scope}/stats", Ops::READ)
        .allow(Role::WorkerGpu, "/gpu/{scope}/result", Ops::READ)
        .allow(
            Role::WorkerGpu,
            "/gpu/{scope}/lease",
            Ops::READ | Ops::WRITE,
        )
        .allow(Role::WorkerGpu, "/gpu/{scope}/job", Ops::READ | Ops::WRITE)
}
