//! The hive's key and ticket ids from boot entropy. A PD has no random
//! number generator of its own; the image builder puts 64 random bytes in
//! a prefilled region (`cargo xtask run` draws them from the host's OS RNG)
//! and NineDoor derives everything from them with SHA-256.

use ninedoor::IdSource;
use sha2::{Digest, Sha256};

/// Bytes of boot entropy NineDoor reads.
pub const SEED_LEN: usize = 64;

/// Domain-separated SHA-256 of the seed: the hive's MAC key.
pub fn hive_key(seed: &[u8; SEED_LEN]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cohesix hive key v1");
    h.update(seed);
    h.finalize().into()
}

/// Ticket ids: SHA-256 of the seed and a counter (a hash-based DRBG; ids
/// only need to be unpredictable and distinct, the ticket's MAC is its
/// secret).
pub struct SeedIds {
    seed: [u8; SEED_LEN],
    counter: u64,
}

impl SeedIds {
    /// Ids drawn from `seed`.
    pub fn new(seed: [u8; SEED_LEN]) -> SeedIds {
        SeedIds { seed, counter: 0 }
    }
}

impl IdSource for SeedIds {
    fn ticket_id(&mut self) -> [u8; 32] {
        self.counter = self.counter.wrapping_add(1);
        let mut h = Sha256::new();
        h.update(b"cohesix ticket id v1");
        h.update(self.seed);
        h.update(self.counter.to_le_bytes());
        h.finalize().into()
    }
}

impl core::fmt::Debug for SeedIds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the seed.
        f.debug_struct("SeedIds")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// Marks the test knob that may follow the seed in the seed page.
pub const FAULT_KNOB_MAGIC: [u8; 8] = *b"CHXFAULT";

/// Bytes of the seed page NineDoor reads: the seed, then the knob (magic,
/// beats, id length, id of at most [`ninedoor::MAX_ID_LEN`] bytes).
pub const SEED_PAGE_LEN: usize = SEED_LEN + 8 + 4 + 1 + ninedoor::MAX_ID_LEN;

/// A test knob the image builder may put in the seed page after the seed:
/// the worker spawned with id `worker` faults (reads [`FAULT_VADDR`]
/// (crate::wiring::FAULT_VADDR)) after `after_beats` heartbeats past its
/// boot script, on every run. Whoever writes the seed page already holds
/// the hive's key, so the knob grants nothing new; an image built without
/// it has no faulting worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultKnob {
    /// The worker id it applies to.
    pub worker: alloc::string::String,
    /// Heartbeats after the boot script before the fault.
    pub after_beats: u32,
}

impl FaultKnob {
    /// The knob in `page` (the seed page from its start), if one is there
    /// and well formed.
    pub fn parse(page: &[u8]) -> Option<FaultKnob> {
        let knob = page.get(SEED_LEN..)?;
        let (magic, rest) = knob.split_at_checked(8)?;
        if magic != FAULT_KNOB_MAGIC {
            return None;
        }
        let (beats, rest) = rest.split_at_checked(4)?;
        let after_beats = u32::from_le_bytes(beats.try_into().ok()?);
        let (len, rest) = rest.split_first()?;
        let id = rest.get(..usize::from(*len))?;
        let worker = core::str::from_utf8(id).ok()?;
        if worker.is_empty() || worker.len() > ninedoor::MAX_ID_LEN {
            return None;
        }
        Some(FaultKnob {
            worker: alloc::string::String::from(worker),
            after_beats,
        })
    }

    /// The knob's bytes, to append to the seed in the seed page.
    pub fn encode(&self) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec::Vec::from(FAULT_KNOB_MAGIC);
        out.extend_from_slice(&self.after_beats.to_le_bytes());
        let id = self.worker.as_bytes();
        let id = id.get(..ninedoor::MAX_ID_LEN).unwrap_or(id);
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_knob_round_trips_and_rejects_what_is_not_one() {
        let knob = FaultKnob {
            worker: alloc::string::String::from("wfault"),
            after_beats: 2,
        };
        let mut page = alloc::vec![7u8; SEED_LEN];
        page.extend(knob.encode());
        assert!(page.len() <= SEED_PAGE_LEN);
        assert_eq!(FaultKnob::parse(&page), Some(knob));
        // A seed page of zeros after the seed, or a short or broken knob.
        assert_eq!(FaultKnob::parse(&[7u8; SEED_PAGE_LEN]), None);
        assert_eq!(FaultKnob::parse(&page[..SEED_LEN + 10]), None);
        let mut bad = page.clone();
        bad[SEED_LEN + 12] = 200; // id longer than what follows
        assert_eq!(FaultKnob::parse(&bad), None);
        let mut empty = page.clone();
        empty[SEED_LEN + 12] = 0;
        assert_eq!(FaultKnob::parse(&empty), None);
    }
}
