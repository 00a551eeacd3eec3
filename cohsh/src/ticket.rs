//! Which ticket to present, and what a ticket claims.
//!
//! A client cannot verify a ticket (only the hive holds the key); it reads
//! the claims to pick a default worker id and to explain refusals. The text
//! form is `c9t1.<id hex>.<role>.<subject>.<expiry>.<scope>.<mac>`.

use crate::exit::Failure;
use ninedoor::host::{TICKET_ENV, default_ticket_path, read_ticket};
use std::path::PathBuf;

/// Where the ticket comes from, in the order tried.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TicketArgs {
    /// The ticket text. Prefer --ticket-file or COHESIX_TICKET: other users
    /// can see command lines.
    #[arg(long, value_name = "TICKET", global = true)]
    pub ticket: Option<String>,
    /// A file holding the ticket (its first line).
    #[arg(long, value_name = "PATH", global = true)]
    pub ticket_file: Option<PathBuf>,
}

/// A ticket and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The ticket text.
    pub text: String,
    /// `--ticket`, `COHESIX_TICKET` or the file's path.
    pub from: String,
}

impl TicketArgs {
    /// The ticket: `--ticket`, else `--ticket-file`, else `COHESIX_TICKET`,
    /// else (when `default_file`) the Queen's ticket file ninedoor writes.
    pub fn resolve(&self, default_file: bool) -> Result<Presented, Failure> {
        if let Some(t) = &self.ticket {
            return Ok(Presented {
                text: t.trim().to_owned(),
                from: "--ticket".to_owned(),
            });
        }
        if let Some(path) = &self.ticket_file {
            return from_file(path);
        }
        if let Some(t) = std::env::var(TICKET_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            return Ok(Presented {
                text: t.trim().to_owned(),
                from: TICKET_ENV.to_owned(),
            });
        }
        match default_ticket_path().filter(|_| default_file) {
            Some(path) if path.exists() => from_file(&path),
            Some(path) => Err(Failure::usage(format!(
                "no ticket: {} does not exist (is ninedoor running?); pass --ticket-file or set {TICKET_ENV}",
                path.display()
            ))),
            None => Err(Failure::usage(format!(
                "no ticket: pass --ticket-file, --ticket or set {TICKET_ENV}"
            ))),
        }
    }
}

fn from_file(path: &std::path::Path) -> Result<Presented, Failure> {
    let text = read_ticket(path).map_err(|e| Failure::usage(format!("no ticket: {e}")))?;
    if text.is_empty() {
        return Err(Failure::usage(format!(
            "no ticket: {} is empty",
            path.display()
        )));
    }
    Ok(Presented {
        text,
        from: path.display().to_string(),
    })
}

/// What a ticket claims (unverified: the hive decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketInfo {
    /// The first 8 bytes of its id in hex, as `/log/queen.log` shows it.
    pub id8: String,
    /// The role (`queen`, `worker-heartbeat`, `worker-gpu`).
    pub role: String,
    /// The subject: `queen` or the worker id.
    pub subject: String,
    /// Expiry, unix seconds.
    pub expires: u64,
    /// The scope (`/`, `/worker/<id>`, a GPU id).
    pub scope: String,
}

impl TicketInfo {
    /// Reads the claims of a ticket's text; `None` if it is not one.
    pub fn parse(text: &str) -> Option<TicketInfo> {
        let mut parts = text.split('.');
        let (Some("c9t1"), Some(id), Some(role), Some(subject), Some(expires), Some(scope)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let (Some(mac), None) = (parts.next(), parts.next()) else {
            return None;
        };
        let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(id) || !hex(mac) || subject.is_empty() {
            return None;
        }
        Some(TicketInfo {
            id8: id.get(..16)?.to_owned(),
            role: role.to_owned(),
            subject: subject.to_owned(),
            expires: expires.parse().ok()?,
            scope: scope.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::TicketInfo;

    #[test]
    fn claims_are_read_from_the_text_form() {
        let id = "ab".repeat(32);
        let mac = "cd".repeat(32);
        let t = format!("c9t1.{id}.worker-heartbeat.w7.1700000000./worker/w7.{mac}");
        let info = TicketInfo::parse(&t).unwrap();
        assert_eq!(info.id8, "abababababababab");
        assert_eq!(info.role, "worker-heartbeat");
        assert_eq!(info.subject, "w7");
        assert_eq!(info.expires, 1_700_000_000);
        assert_eq!(info.scope, "/worker/w7");
        for bad in [
            "",
            "c9t1",
            &t.replace("c9t1", "c9t2"),
            &format!("{t}.x"),
            &t.replace(&mac, "zz"),
            &t.replace("1700000000", "soon"),
        ] {
            assert_eq!(TicketInfo::parse(bad), None, "{bad}");
        }
    }
}
