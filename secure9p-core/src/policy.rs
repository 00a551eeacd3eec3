//! Access policy: the check made on every walk, open, read, write, create and
//! remove, with the principal, the operation and the absolute path.
//!
//! [`RulePolicy`] is a table of rules `role × path pattern → operations`, the
//! shape the Cohesix seeds describe. Patterns are absolute paths whose
//! segments may be `{subject}` (the principal's subject), `{scope}` (its
//! ticket's scope, one segment), `*` (any one segment) or, last, `**` (any
//! rest, including nothing). Walking (and stat) is allowed along the way to
//! anything a rule grants, so a heartbeat worker can reach
//! `/worker/w1/telemetry` without being able to list `/worker`'s other entries.

use crate::error::FsError;
use crate::role::{Principal, Role};
use alloc::string::String;
use alloc::vec::Vec;

bitflags::bitflags! {
    /// Operations a rule grants.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Ops: u8 {
        /// Walk to (and stat) the path.
        const WALK = 1;
        /// Read (open for reading, read, readdir).
        const READ = 2;
        /// Write (open for writing, write, truncate).
        const WRITE = 4;
        /// Create entries in the directory.
        const CREATE = 8;
        /// Remove the path.
        const REMOVE = 16;
    }
}

/// One checked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Walk to the path, or stat it.
    Walk,
    /// Read it (or open it for reading).
    Read,
    /// Write it (or open it for writing).
    Write,
    /// Create an entry in it.
    Create,
    /// Remove it.
    Remove,
}

impl Op {
    /// Every operation, in order (for tables and tests).
    pub const ALL: [Op; 5] = [Op::Walk, Op::Read, Op::Write, Op::Create, Op::Remove];

    /// The [`Ops`] bit of this operation.
    pub const fn bit(self) -> Ops {
        match self {
            Op::Walk => Ops::WALK,
            Op::Read => Ops::READ,
            Op::Write => Ops::WRITE,
            Op::Create => Ops::CREATE,
            Op::Remove => Ops::REMOVE,
        }
    }

    /// The operation's name in logs.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Walk => "walk",
            Op::Read => "read",
            Op::Write => "write",
            Op::Create => "create",
            Op::Remove => "remove",
        }
    }
}

/// Decides whether a principal may do an operation on a path.
pub trait AccessPolicy: Send + Sync {
    /// `Ok(())` to allow; `Err(FsError::AccessDenied)` (or `NotPermitted`) to refuse.
    fn check(&self, who: &Principal, op: Op, path: &str) -> Result<(), FsError>;
}

/// Allows everything: for servers whose only guard is the attach (examples,
/// interop tests). Cohesix never uses it.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl AccessPolicy for AllowAll {
    fn check(&self, _: &Principal, _: Op, _: &str) -> Result<(), FsError> {
        Ok(())
    }
}

/// One rule of a [`RulePolicy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The role it applies to.
    pub role: Role,
    /// The path pattern.
    pub pattern: String,
    /// What it grants.
    pub ops: Ops,
}

/// A table of rules; anything not granted is refused with `EACCES`.
#[derive(Debug, Clone, Default)]
pub struct RulePolicy {
    rules: Vec<Rule>,
}

impl RulePolicy {
    /// An empty policy (refuses everything).
    pub fn new() -> Self {
        RulePolicy::default()
    }

    /// Adds a rule; returns the policy for chaining.
    pub fn allow(mut self, role: Role, pattern: &str, ops: Ops) -> Self {
        self.rules.push(Rule {
            role,
            pattern: String::from(pattern),
            ops,
        });
        self
    }

    /// The rules, in the order added.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> + Clone {
    path.split('/').filter(|s| !s.is_empty())
}

/// How a path relates to a pattern.
#[derive(PartialEq, Eq)]
enum Fit {
    /// The path is the pattern (or under a `**`).
    Exact,
    /// The path is a proper ancestor of what the pattern names.
    Ancestor,
    /// Neither.
    No,
}

fn fit(pattern: &str, who: &Principal, path: &str) -> Fit {
    let mut pat = segments(pattern);
    let mut p = segments(path);
    loop {
        match (pat.next(), p.next()) {
            (Some("**"), _) => return Fit::Exact,
            (None, None) => return Fit::Exact,
            (Some(_), None) => return Fit::Ancestor,
            (None, Some(_)) => return Fit::No,
            (Some(ps), Some(seg)) => {
                let ok = match ps {
                    "*" => true,
                    "{subject}" => !who.subject.is_empty() && seg == who.subject,
                    "{scope}" => !who.scope.is_empty() && seg == who.scope,
                    lit => lit == seg,
                };
                if !ok {
                    return Fit::No;
                }
            }
        }
    }
}

impl AccessPolicy for RulePolicy {
    fn check(&self, who: &Principal, op: Op, path: &str) -> Result<(), FsError> {
        let allowed = self.rules.iter().filter(|r| r.role == who.role).any(|r| {
            match fit(&r.pattern, who, path) {
                Fit::Exact => r.ops.contains(op.bit()) || (op == Op::Walk && !r.ops.is_empty()),
                Fit::Ancestor => op == Op::Walk,
                Fit::No => false,
            }
        });
        if allowed {
            Ok(())
        } else {
            Err(FsError::AccessDenied)
        }
    }
}
