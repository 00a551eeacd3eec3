//! Mirror tickets: how NineDoor tells a GPU bridge who is asking.
//!
//! NineDoor and a bridge share a *bridge key* (never the hive key). For each
//! principal whose `/gpu` request it forwards, NineDoor mints a bridge
//! ticket with that principal's own claims (role, subject, expiry; a GPU
//! worker's scope translated to the bridge's GPU id) under the same ticket
//! id, and attaches with it. The bridge verifies the MAC and then treats
//! the request exactly as one from that principal: a GPU worker's job or
//! renewal is accepted only if its subject holds the lease. A bridge that
//! leaks its key can mint bridge tickets only, never hive tickets; a hive
//! ticket presented to the bridge does not verify there.
//!
//! NineDoor also holds its own bridge identity (`queen` role, subject
//! `ninedoor`) to list the bridge's GPUs and to probe the connection.

use crate::GpuRequest;
use crate::ids::IdSource;
use alloc::boxed::Box;
use alloc::string::String;
use secure9p_core::{Claims, FsError, Role, TicketAuthority};

/// NineDoor's own subject on a bridge.
pub const NINEDOOR_SUBJECT: &str = "ninedoor";
/// Lifetime of NineDoor's own bridge ticket, seconds; renewed at half of it.
pub const OWN_TICKET_TTL_S: u64 = 3600;

/// Mints bridge tickets under the bridge key.
pub struct Mirror {
    authority: TicketAuthority,
    ids: Box<dyn IdSource>,
}

impl core::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the key.
        f.debug_struct("Mirror").finish_non_exhaustive()
    }
}

/// A bridge ticket and what it claims.
pub struct Minted {
    /// The ticket text (secret).
    pub text: String,
    /// Its claims.
    pub claims: Claims,
}

impl Mirror {
    /// Mints under `key`, the key the bridge was started with, drawing the
    /// ids of NineDoor's own tickets from `ids`.
    pub fn new(key: [u8; 32], ids: impl IdSource + 'static) -> Self {
        Mirror {
            authority: TicketAuthority::new(key),
            ids: Box::new(ids),
        }
    }

    /// The bridge ticket of `request`'s principal, `remote_gpu` being the
    /// bridge's id of the GPU a GPU worker's scope names. Refused
    /// (`EACCES`) for a principal without a ticket or an expiry: the hive
    /// admits none, so such a request is not the hive's.
    pub fn of(&self, request: &GpuRequest, remote_gpu: &str) -> Result<Minted, FsError> {
        let (Some(id), Some(expires)) = (request.ticket, request.expires) else {
            return Err(FsError::AccessDenied);
        };
        let scope = match request.role {
            Role::WorkerGpu => String::from(remote_gpu),
            _ => request.scope.clone(),
        };
        let claims = Claims {
            role: request.role,
            subject: request.subject.clone(),
            expires,
            scope,
        };
        let text = self
            .authority
            .mint(id.0, &claims)
            .map_err(|_| FsError::AccessDenied)?;
        Ok(Minted { text, claims })
    }

    /// NineDoor's own bridge ticket, valid from `now` (unix seconds) for
    /// [`OWN_TICKET_TTL_S`].
    pub fn own(&mut self, now: u64) -> Result<Minted, FsError> {
        let id = self.ids.ticket_id();
        let claims = Claims {
            role: Role::Queen,
            subject: String::from(NINEDOOR_SUBJECT),
            expires: now.saturating_add(OWN_TICKET_TTL_S),
            scope: String::from("/"),
        };
        let text = self
            .authority
            .mint(id, &claims)
            .map_err(|_| FsError::AccessDenied)?;
        Ok(Minted { text, claims })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GpuFile, GpuOp, GpuOrigin};
    use secure9p_core::{TicketId, Token};

    fn request(role: Role, subject: &str, scope: &str) -> GpuRequest {
        GpuRequest {
            token: Token(1),
            gpu: "h1-0".into(),
            file: GpuFile::Job,
            op: GpuOp::Read {
                offset: 0,
                count: 1,
            },
            role,
            subject: subject.into(),
            ticket: Some(TicketId([9; 32])),
            scope: scope.into(),
            expires: Some(2_000),
            origin: GpuOrigin::Fid { open: 0 },
        }
    }

    #[test]
    fn mirror_tickets_carry_the_principal_and_verify_only_under_the_bridge_key() {
        let mut mirror = Mirror::new([1; 32], || [5u8; 32]);
        let bridge = TicketAuthority::new([1; 32]);
        let hive = TicketAuthority::new([2; 32]);

        let m = mirror
            .of(&request(Role::WorkerGpu, "g1", "h1-0"), "0")
            .unwrap();
        let t = bridge.verify(&m.text, 1_000).unwrap();
        assert_eq!(t.id, TicketId([9; 32]));
        assert_eq!(
            (
                t.claims.role,
                t.claims.subject.as_str(),
                t.claims.scope.as_str()
            ),
            (Role::WorkerGpu, "g1", "0")
        );
        assert_eq!(t.claims.expires, 2_000);
        assert!(hive.verify(&m.text, 1_000).is_err());
        assert!(bridge.verify(&m.text, 2_000).is_err());

        let q = mirror.of(&request(Role::Queen, "queen", "/"), "0").unwrap();
        assert_eq!(bridge.verify(&q.text, 1_000).unwrap().claims.scope, "/");

        let mut anon = request(Role::Queen, "queen", "/");
        anon.ticket = None;
        assert_eq!(mirror.of(&anon, "0").err(), Some(FsError::AccessDenied));

        let own = mirror.own(1_000).unwrap();
        let t = bridge.verify(&own.text, 1_000).unwrap();
        assert_eq!(
            (t.claims.role, t.claims.subject.as_str()),
            (Role::Queen, NINEDOOR_SUBJECT)
        );
    }
}
