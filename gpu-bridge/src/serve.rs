//! The bridge as a Secure9P server: the namespace, the access policy and
//! the audit route, assembled into a `secure9p_core::Server` that a
//! transport runner (or a test, in memory) drives.
//!
//! Policy: the queen reads and writes everything under `/gpu`; a GPU
//! worker reaches only `/gpu/<scope>/…` of its ticket's scope (the GPU id),
//! reading `info`, `status`, `stats`, `result` and writing `job` and
//! `lease`; `ctl` is the queen's. The bridge itself then checks that a GPU
//! worker writing `job` or `lease` is the lease's holder. Clients without a
//! ticket are refused unless the host was started with `--anonymous`, for
//! local development, where they act as the queen would.

use crate::bridge::GpuBridge;
use crate::log::Actor;
use secure9p_core::{
    Audit, AuditEvent, AuditKind, FsError, Ops, Principal, Role, RulePolicy, Server, ServerConfig,
    TicketAuthority,
};

/// How the server admits clients.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// Verifies tickets; `None` admits only anonymous clients (if allowed).
    pub tickets: Option<TicketAuthority>,
    /// Admit clients without a ticket, with the queen's rights.
    pub anonymous: bool,
}

/// The access policy of a bridge's namespace (see the module docs).
pub fn policy(anonymous: bool) -> RulePolicy {
    let rw = Ops::WALK | Ops::READ | Ops::WRITE;
    let r = Ops::WALK | Ops::READ;
    let mut p = RulePolicy::new()
        .allow(Role::Queen, "/gpu/**", rw)
        .allow(Role::WorkerGpu, "/gpu/{scope}/info", r)
        .allow(Role::WorkerGpu, "/gpu/{scope}/lease", rw)
        .allow(Role::WorkerGpu, "/gpu/{scope}/job", rw)
        .allow(Role::WorkerGpu, "/gpu/{scope}/status", r)
        .allow(Role::WorkerGpu, "/gpu/{scope}/stats", r)
        .allow(Role::WorkerGpu, "/gpu/{scope}/result", r);
    if anonymous {
        p = p.allow(Role::Anonymous, "/gpu/**", rw);
    }
    p
}

/// Sends the engine's audit records (denials, control writes, ticket
/// events) to the bridge's event log.
#[derive(Debug, Clone)]
pub struct BridgeAudit(pub GpuBridge);

impl Audit for BridgeAudit {
    fn record(&mut self, event: &AuditEvent<'_>) {
        let actor = event.role.map(|role| Actor {
            role,
            subject: String::from(event.subject),
            ticket: event.ticket,
        });
        let text = match &event.kind {
            AuditKind::Denied { op, path, error } => {
                format!("9p denied op={} path={path} error={error}", op.name())
            }
            AuditKind::ControlWrite { path, result } => match result {
                Ok(()) => format!("9p control-write path={path} ok"),
                Err(e) => format!("9p control-write path={path} error={e}"),
            },
            AuditKind::TicketAccepted => String::from("9p ticket accepted"),
            AuditKind::TicketRefused { error } => format!("9p ticket refused error={error}"),
            AuditKind::TicketRevoked { fids } => format!("9p ticket revoked fids={fids}"),
            other => format!("9p {other:?}"),
        };
        self.0.record("-", actor.as_ref(), &text);
    }
}

/// A server over `bridge`'s namespace with the bridge's policy and audit.
pub fn server(bridge: &GpuBridge, options: ServeOptions) -> Result<Server, FsError> {
    let config = ServerConfig {
        anonymous: options
            .anonymous
            .then(|| Principal::anonymous(Role::Anonymous, "anonymous")),
        ..ServerConfig::default()
    };
    let server = Server::new(bridge.namespace()?, policy(options.anonymous), config)
        .with_audit(BridgeAudit(bridge.clone()));
    Ok(match options.tickets {
        Some(t) => server.with_tickets(t),
        None => server,
    })
}
