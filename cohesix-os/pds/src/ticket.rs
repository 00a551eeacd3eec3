//! Handing a worker its id and ticket by protected call: the bytes
//! `<id>\n<ticket>` (and `\nfault_after=<K>` for a worker the image's test
//! knob makes fault) travel in message registers, MR0 the byte count and
//! eight bytes per register after it, little-endian.

use alloc::string::String;
use alloc::vec::Vec;
use cohesix_abi::microkit::MSG_MAX_LENGTH;
use cohesix_abi::{Context, MsgInfo};

use crate::wiring::call;

/// The most bytes a reply can carry.
pub const MAX_BYTES: usize = (MSG_MAX_LENGTH - 1) * 8;

/// Writes `bytes` into the reply registers; `None` if they do not fit.
pub fn put(ctx: &mut dyn Context, bytes: &[u8]) -> Option<MsgInfo> {
    if bytes.len() > MAX_BYTES {
        return None;
    }
    ctx.set_mr(0, bytes.len() as u64);
    let mut n = 1;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        ctx.set_mr(n, u64::from_le_bytes(word));
        n += 1;
    }
    Some(MsgInfo::new(call::OK, n))
}

/// Reads the bytes of a reply `info`; `None` if it is malformed.
pub fn get(ctx: &dyn Context, info: MsgInfo) -> Option<Vec<u8>> {
    if info.count() == 0 {
        return None;
    }
    let len = usize::try_from(ctx.mr(0)).ok()?;
    if len > (info.count() - 1) * 8 {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    for i in 0..len.div_ceil(8) {
        out.extend_from_slice(&ctx.mr(1 + i).to_le_bytes());
    }
    out.truncate(len);
    Some(out)
}

/// What a worker is handed.
#[derive(Clone, PartialEq, Eq)]
pub struct Handover {
    /// Its id.
    pub id: String,
    /// Its ticket text.
    pub ticket: String,
    /// Fault after this many heartbeats past the boot script (test knob).
    pub fault_after: Option<u32>,
    /// A GPU worker's GPU (its ticket's scope).
    pub gpu: Option<String>,
}

impl Handover {
    /// The bytes of the reply.
    pub fn encode(&self) -> String {
        let mut text = alloc::format!("{}\n{}", self.id, self.ticket);
        if let Some(k) = self.fault_after {
            text.push_str(&alloc::format!("\nfault_after={k}"));
        }
        if let Some(g) = &self.gpu {
            text.push_str(&alloc::format!("\ngpu={g}"));
        }
        text
    }

    /// The handover in `bytes`, if id and ticket are non-empty UTF-8 and
    /// every line after them is a well-formed `fault_after=` or `gpu=`.
    pub fn parse(bytes: &[u8]) -> Option<Handover> {
        let text = core::str::from_utf8(bytes).ok()?;
        let mut lines = text.split('\n');
        let id = lines.next()?;
        let ticket = lines.next()?;
        if id.is_empty() || ticket.is_empty() {
            return None;
        }
        let mut h = Handover {
            id: String::from(id),
            ticket: String::from(ticket),
            fault_after: None,
            gpu: None,
        };
        for line in lines {
            if let Some(k) = line.strip_prefix("fault_after=") {
                h.fault_after = Some(k.parse().ok()?);
            } else if let Some(g) = line.strip_prefix("gpu=").filter(|g| !g.is_empty()) {
                h.gpu = Some(String::from(g));
            } else {
                return None;
            }
        }
        Some(h)
    }
}

impl core::fmt::Debug for Handover {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the ticket.
        f.debug_struct("Handover")
            .field("id", &self.id)
            .field("fault_after", &self.fault_after)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Handover;

    #[test]
    fn a_handover_round_trips_with_and_without_the_knob() {
        for (fault_after, gpu) in [(None, None), (Some(3), None), (None, Some("0".into()))] {
            let h = Handover {
                id: "w3".into(),
                ticket: "c9t1.abc".into(),
                fault_after,
                gpu,
            };
            assert_eq!(Handover::parse(h.encode().as_bytes()), Some(h));
        }
        for bad in [
            &b"w3"[..],
            b"\nc9t1.abc",
            b"w3\n",
            b"w3\nc9t1.abc\nfault_after=x",
            b"w3\nc9t1.abc\nsomething",
            b"\xff\nc9t1",
        ] {
            assert_eq!(Handover::parse(bad), None, "{bad:?}");
        }
    }
}
