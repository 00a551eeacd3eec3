//! Who is asking: roles, subjects and the principal a fid acts for.

use alloc::string::String;

/// The role a ticket grants. Each role attaches to its own root and is
/// checked by the [`AccessPolicy`](crate::AccessPolicy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Role {
    /// The hive's orchestrator: reads everything, writes the control files.
    Queen,
    /// A heartbeat worker: appends to its own telemetry only.
    WorkerHeartbeat,
    /// A GPU worker: uses the GPU of its lease only.
    WorkerGpu,
    /// A client without a ticket, where the server admits such clients.
    Anonymous,
}

impl Role {
    /// The role's name in tickets and logs (`"queen"`, `"worker-heartbeat"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Role::Queen => "queen",
            Role::WorkerHeartbeat => "worker-heartbeat",
            Role::WorkerGpu => "worker-gpu",
            Role::Anonymous => "anonymous",
        }
    }

    /// The role a name stands for.
    pub fn from_name(name: &str) -> Option<Role> {
        [
            Role::Queen,
            Role::WorkerHeartbeat,
            Role::WorkerGpu,
            Role::Anonymous,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

impl core::fmt::Display for Role {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The identity a fid acts for: taken from a verified ticket at attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The role.
    pub role: Role,
    /// The subject (a worker id, `"queen"`, ...).
    pub subject: String,
    /// The scope the ticket was minted for (a path prefix or a lease name).
    pub scope: String,
    /// The ticket's id, if the principal came from a ticket.
    pub ticket: Option<crate::TicketId>,
    /// When the ticket expires (unix seconds); requests at or after it fail
    /// with `EKEYEXPIRED`.
    pub expires: Option<u64>,
}

impl Principal {
    /// A principal without a ticket.
    pub fn anonymous(role: Role, subject: &str) -> Principal {
        Principal {
            role,
            subject: String::from(subject),
            scope: String::new(),
            ticket: None,
            expires: None,
        }
    }
}
