//! Capability tickets: a 32-byte id plus claims (role, subject, expiry,
//! scope), authenticated with HMAC-SHA256 under the server's key.
//!
//! Text form, small enough for a 9P `aname` and free of separators that the
//! Linux mount options would split on:
//!
//! `c9t1.<id: 64 hex>.<role>.<subject>.<expiry: decimal unix seconds>.<scope>.<mac: 64 hex>`
//!
//! The MAC covers everything before the last `.`. Subject and scope use
//! `[A-Za-z0-9_/-]` only. The MAC is compared in constant time; time is an
//! input (`now`), never read here. The id identifies a ticket in logs; the
//! MAC is the secret part and is never logged.

use crate::role::Role;
use alloc::collections::BTreeSet;
use alloc::string::String;
use core::fmt::Write;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix and version of the text form.
const PREFIX: &str = "c9t1";
/// Longest subject or scope accepted, so a ticket always fits an `aname`.
pub const MAX_CLAIM_LEN: usize = 128;

/// A ticket's public identifier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TicketId(pub [u8; 32]);

impl core::fmt::Display for TicketId {
    /// The first 8 bytes in hex: enough to tell tickets apart in a log.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().take(8).try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl core::fmt::Debug for TicketId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TicketId({self})")
    }
}

/// What a ticket grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The role.
    pub role: Role,
    /// The subject (worker id, `"queen"`).
    pub subject: String,
    /// Expiry, unix seconds; the ticket is refused at or after it.
    pub expires: u64,
    /// The scope (a path prefix such as `/worker/w1`, or empty).
    pub scope: String,
}

/// A verified ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Its id.
    pub id: TicketId,
    /// Its claims.
    pub claims: Claims,
}

/// Why a ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The text is not a ticket.
    #[error("malformed ticket")]
    Malformed,
    /// The MAC does not match: forged or altered.
    #[error("ticket signature does not verify")]
    BadSignature,
    /// The ticket expired.
    #[error("ticket expired")]
    Expired,
    /// The ticket was revoked.
    #[error("ticket revoked")]
    Revoked,
    /// A claim has characters or a length the text form cannot carry.
    #[error("claim not encodable in a ticket")]
    BadClaim,
}

impl From<TicketError> for crate::FsError {
    fn from(e: TicketError) -> crate::FsError {
        match e {
            TicketError::Expired => crate::FsError::TicketExpired,
            TicketError::Revoked => crate::FsError::TicketRevoked,
            _ => crate::FsError::TicketRejected,
        }
    }
}

/// Mints and verifies tickets under one secret key, and remembers revocations.
pub struct TicketAuthority {
    key: [u8; 32],
    revoked: BTreeSet<TicketId>,
}

impl core::fmt::Debug for TicketAuthority {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TicketAuthority")
            .field("revoked", &self.revoked.len())
            .finish_non_exhaustive()
    }
}

fn claim_ok(s: &str) -> bool {
    s.len() <= MAX_CLAIM_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/'))
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *slot = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

impl TicketAuthority {
    /// An authority with a 32-byte secret key (keep it out of logs and files
    /// other users can read).
    pub fn new(key: [u8; 32]) -> Self {
        TicketAuthority {
            key,
            revoked: BTreeSet::new(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC zero-pads a key shorter than the hash's 64-byte block, so
        // keying with the padded block is exactly HMAC under the 32-byte key,
        // through the infallible constructor.
        let mut block = [0u8; 64];
        let (head, _) = block.split_at_mut(32);
        head.copy_from_slice(&self.key);
        <HmacSha256 as KeyInit>::new(hmac::digest::generic_array::GenericArray::from_slice(
            &block,
        ))
    }

    /// Mints a ticket with the caller's random `id` (the engine has no RNG).
    /// Returns its text form.
    pub fn mint(&self, id: [u8; 32], claims: &Claims) -> Result<String, TicketError> {
        if !claim_ok(&claims.subject) || !claim_ok(&claims.scope) {
            return Err(TicketError::BadClaim);
        }
        let mut text = String::with_capacity(64 * 2 + 64);
        text.push_str(PREFIX);
        text.push('.');
        push_hex(&mut text, &id);
        let _ = write!(
            text,
            ".{}.{}.{}.{}",
            claims.role.name(),
            claims.subject,
            claims.expires,
            claims.scope
        );
        let mut mac = self.mac();
        mac.update(text.as_bytes());
        let tag = mac.finalize().into_bytes();
        text.push('.');
        push_hex(&mut text, &tag);
        Ok(text)
    }

    /// Verifies a ticket's text at time `now`: MAC (constant time), then
    /// expiry, then revocation.
    pub fn verify(&self, text: &str, now: u64) -> Result<Ticket, TicketError> {
        let (signed, mac_hex) = text.rsplit_once('.').ok_or(TicketError::Malformed)?;
        let mac_bytes = parse_hex32(mac_hex).ok_or(TicketError::Malformed)?;
        let mut parts = signed.split('.');
        let (Some(prefix), Some(id), Some(role), Some(subject), Some(expires), Some(scope), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TicketError::Malformed);
        };
        if prefix != PREFIX {
            return Err(TicketError::Malformed);
        }
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&mac_bytes)
            .map_err(|_| TicketError::BadSignature)?;
        let id = TicketId(parse_hex32(id).ok_or(TicketError::Malformed)?);
        let role = Role::from_name(role).ok_or(TicketError::Malformed)?;
        let expires: u64 = expires.parse().map_err(|_| TicketError::Malformed)?;
        if now >= expires {
            return Err(TicketError::Expired);
        }
        if self.revoked.contains(&id) {
            return Err(TicketError::Revoked);
        }
        Ok(Ticket {
            id,
            claims: Claims {
                role,
                subject: String::from(subject),
                expires,
                scope: String::from(scope),
            },
        })
    }

    /// Whether `text` looks like a ticket (to tell a ticket in `aname` from a path).
    pub fn looks_like_ticket(text: &str) -> bool {
        text.starts_with("c9t1.")
    }

    /// Revokes a ticket: it never verifies again. (The server also closes
    /// the fids opened under it: see [`Server::revoke`](crate::Server::revoke).)
    pub fn revoke(&mut self, id: TicketId) {
        self.revoked.insert(id);
    }

    /// Whether a ticket id was revoked.
    pub fn is_revoked(&self, id: &TicketId) -> bool {
        self.revoked.contains(id)
    }
}
