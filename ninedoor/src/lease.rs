//! `lease` and `release`: the `/queen/ctl` commands the hive runs on a GPU
//! bridge. The hive cannot wait for a bridge, so such a command becomes a
//! forwarded write of `LEASE …` or `RELEASE …` to the bridge's
//! `/gpu/<id>/ctl` ([`GpuOrigin::Command`](crate::GpuOrigin::Command)),
//! parked here under the `/queen/ctl` write's token until the bridge
//! answers: a granted (or queued) lease then spawns its holder, a release
//! kills the holder the hive spawned for it.
//!
//! The bridge's reply is text from another host: only its first line is
//! kept, bounded and cleaned, and it decides nothing but which holder a
//! release ended.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use secure9p_core::Principal;
use serde::Serialize;

/// The most bytes of a bridge's reply kept (a reply line is far shorter).
pub(crate) const MAX_BRIDGE_REPLY: usize = 512;

/// What a parked bridge command does when the bridge answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BridgeAction {
    /// Spawn `worker` (its id reserved meanwhile) as the lease's holder.
    Lease {
        /// The holder's id.
        worker: String,
    },
    /// Kill the holder the release ended, if the hive spawned it for a lease.
    Release {
        /// The holder named in the command, if any.
        worker: Option<String>,
    },
}

/// A `/queen/ctl` command waiting for its bridge.
#[derive(Debug)]
pub(crate) struct BridgeCommand {
    /// The open serial of the `/queen/ctl` fid the command came through.
    pub(crate) open: u64,
    /// Who wrote it.
    pub(crate) principal: Principal,
    /// The GPU.
    pub(crate) gpu: String,
    /// What to do with the answer.
    pub(crate) action: BridgeAction,
    /// Bytes of the `/queen/ctl` write (what a success answers).
    pub(crate) len: usize,
    /// The bridge's reply, once the embedder has set it.
    pub(crate) reply: Vec<u8>,
    /// For an "any GPU" lease: the GPUs left to ask if this one refuses.
    pub(crate) any: Option<crate::hive::AnyGpu>,
}

/// The `ctl` line that asks the bridge for a lease held by `worker`.
pub(crate) fn lease_line(
    worker: &str,
    mem_mb: u32,
    streams: Option<u32>,
    ttl_s: u32,
    priority: Option<u8>,
) -> Vec<u8> {
    let mut line = format!("LEASE holder={worker} mem_mb={mem_mb} ttl_s={ttl_s}");
    if let Some(s) = streams {
        line.push_str(&format!(" streams={s}"));
    }
    if let Some(p) = priority {
        line.push_str(&format!(" priority={p}"));
    }
    line.push('\n');
    line.into_bytes()
}

/// The `ctl` line that ends the active lease, or `worker`'s.
pub(crate) fn release_line(worker: Option<&str>) -> Vec<u8> {
    match worker {
        Some(w) => format!("RELEASE holder={w}\n").into_bytes(),
        None => Vec::from(&b"RELEASE\n"[..]),
    }
}

/// The first line of a bridge's reply, printable ASCII only, bounded.
pub(crate) fn bridge_text(reply: &[u8]) -> String {
    reply
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or(&[])
        .iter()
        .take(MAX_BRIDGE_REPLY)
        .map(|b| match b {
            b' '..=b'~' => char::from(*b),
            _ => '?',
        })
        .collect::<String>()
        .trim()
        .into()
}

/// The holder a successful `RELEASE` ended or withdrew, from the bridge's
/// `OK RELEASE holder=<h> …` or `OK RELEASE withdrawn=<h>`.
pub(crate) fn released_holder(text: &str) -> Option<&str> {
    let mut words = text.split_ascii_whitespace();
    if (words.next(), words.next()) != (Some("OK"), Some("RELEASE")) {
        return None;
    }
    let word = words.next()?;
    let holder = word
        .strip_prefix("holder=")
        .or_else(|| word.strip_prefix("withdrawn="))?;
    (holder != "-").then_some(holder)
}

/// Whether a successful lease answer granted the lease now (rather than
/// queueing the request behind the active one).
pub(crate) fn granted(text: &str) -> bool {
    text.starts_with("OK LEASE")
}

/// The reply to a `release`.
#[derive(Serialize)]
pub(crate) struct ReleaseReply<'a> {
    pub(crate) released: &'a str,
    pub(crate) bridge: &'a str,
    pub(crate) killed: Option<&'a str>,
}

/// The reply to a `lease` or `release` the bridge refused.
#[derive(Serialize)]
pub(crate) struct RefusedReply<'a> {
    pub(crate) refused: &'a str,
    pub(crate) gpu: &'a str,
    pub(crate) error: String,
    pub(crate) bridge: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_for_the_bridge() {
        assert_eq!(
            lease_line("g1", 512, None, 60, None),
            b"LEASE holder=g1 mem_mb=512 ttl_s=60\n"
        );
        assert_eq!(
            lease_line("g1", 512, Some(2), 60, Some(7)),
            b"LEASE holder=g1 mem_mb=512 ttl_s=60 streams=2 priority=7\n"
        );
        assert_eq!(release_line(None), b"RELEASE\n");
        assert_eq!(release_line(Some("g2")), b"RELEASE holder=g2\n");
    }

    #[test]
    fn bridge_replies_are_one_clean_bounded_line() {
        assert_eq!(
            bridge_text(b"OK LEASE granted x\nmore\n"),
            "OK LEASE granted x"
        );
        assert_eq!(bridge_text(b"ERR \x1b[31m\n"), "ERR ?[31m");
        assert_eq!(bridge_text(&[b'a'; 2000]).len(), MAX_BRIDGE_REPLY);
        assert_eq!(bridge_text(b""), "");
    }

    #[test]
    fn release_answers_name_their_holder() {
        let ok = "OK RELEASE holder=g1 drained=0 next=-";
        assert_eq!(released_holder(ok), Some("g1"));
        assert_eq!(released_holder("OK RELEASE withdrawn=g2"), Some("g2"));
        assert_eq!(released_holder("OK RELEASE withdrawn=-"), None);
        assert_eq!(released_holder("ERR NOLEASE holder=g1"), None);
        assert_eq!(released_holder("OK RELEASE"), None);
        assert!(granted("OK LEASE granted holder=g1"));
        assert!(!granted("QUEUED LEASE holder=g1 priority=0 position=1"));
    }
}
