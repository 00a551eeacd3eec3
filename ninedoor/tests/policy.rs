//! The Cohesix policy as a table: role × path × operation.

use ninedoor::cohesix_policy;
use ninedoor::secure9p_core::{AccessPolicy, FsError, Op, Principal, Role};

fn principal(role: Role, subject: &str, scope: &str) -> Principal {
    Principal {
        scope: scope.to_owned(),
        ..Principal::anonymous(role, subject)
    }
}

/// What each role may do at each path: `w` walk, `r` read, `x` write,
/// `c` create, `d` remove.
const TABLE: &[(&str, &str, &str, &str)] = &[
    // path                   queen   w1     g1 (GPU-0)
    ("/", "w", "w", "w"),
    ("/proc", "w", "", ""),
    ("/proc/boot", "wr", "", ""),
    ("/queen", "w", "", ""),
    ("/queen/ctl", "wrx", "", ""),
    ("/log", "w", "", ""),
    ("/log/queen.log", "wr", "", ""),
    ("/worker", "w", "w", ""),
    ("/worker/w1", "w", "w", ""),
    ("/worker/w1/telemetry", "wr", "wx", ""),
    ("/worker/w2", "w", "", ""),
    ("/worker/w2/telemetry", "wr", "", ""),
    ("/worker/g1/telemetry", "wr", "", ""),
    ("/gpu", "wr", "", "w"),
    ("/gpu/GPU-0", "wr", "", "w"),
    ("/gpu/GPU-0/info", "wr", "", "wr"),
    ("/gpu/GPU-0/ctl", "wrx", "", ""),
    ("/gpu/GPU-0/lease", "wr", "", "wrx"),
    ("/gpu/GPU-0/job", "wr", "", "wrx"),
    ("/gpu/GPU-0/status", "wr", "", "wr"),
    ("/gpu/GPU-0/stats", "wr", "", "wr"),
    ("/gpu/GPU-0/result", "wr", "", "wr"),
    ("/gpu/GPU-1", "wr", "", ""),
    ("/gpu/GPU-1/info", "wr", "", ""),
    ("/gpu/GPU-1/ctl", "wrx", "", ""),
    ("/gpu/GPU-1/job", "wr", "", ""),
    ("/gpu/GPU-1/result", "wr", "", ""),
];

fn letter(op: Op) -> char {
    match op {
        Op::Walk => 'w',
        Op::Read => 'r',
        Op::Write => 'x',
        Op::Create => 'c',
        Op::Remove => 'd',
    }
}

#[test]
fn the_policy_grants_exactly_the_table() {
    let policy = cohesix_policy();
    let queen = principal(Role::Queen, "queen", "/");
    let w1 = principal(Role::WorkerHeartbeat, "w1", "/worker/w1");
    let g1 = principal(Role::WorkerGpu, "g1", "GPU-0");
    let anon = principal(Role::Anonymous, "guest", "");
    for (path, q, w, g) in TABLE {
        for (who, grants) in [(&queen, q), (&w1, w), (&g1, g), (&anon, &"")] {
            for op in Op::ALL {
                let want = grants.contains(letter(op));
                let got = policy.check(who, op, path);
                assert_eq!(
                    got.is_ok(),
                    want,
                    "{:?} {} {path}: {got:?}",
                    who.role,
                    op.name()
                );
                if !want {
                    assert_eq!(got, Err(FsError::AccessDenied));
                }
            }
        }
    }
}

#[test]
fn a_worker_named_like_a_gpu_gets_nothing_of_it() {
    let policy = cohesix_policy();
    // A heartbeat worker whose subject is a GPU id, and a GPU worker whose
    // subject is a worker id: neither borrows the other's rules.
    let hb = principal(Role::WorkerHeartbeat, "GPU-0", "/worker/GPU-0");
    assert!(policy.check(&hb, Op::Read, "/gpu/GPU-0/info").is_err());
    let gpu = principal(Role::WorkerGpu, "w1", "GPU-0");
    assert!(
        policy
            .check(&gpu, Op::Write, "/worker/w1/telemetry")
            .is_err()
    );
    // An empty scope matches nothing.
    let unscoped = principal(Role::WorkerGpu, "g2", "");
    assert!(policy.check(&unscoped, Op::Walk, "/gpu/x").is_err());
}
