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
    domain: &'static [u8],
}

impl SeedIds {
    /// Ids drawn from `seed` (the hive's ticket ids).
    pub fn new(seed: [u8; SEED_LEN]) -> SeedIds {
        SeedIds::with_domain(seed, b"cohesix ticket id v1")
    }

    /// Ids drawn from `seed` under another domain (NineDoor's own bridge
    /// tickets), never equal to the hive's.
    pub fn with_domain(seed: [u8; SEED_LEN], domain: &'static [u8]) -> SeedIds {
        SeedIds {
            seed,
            counter: 0,
            domain,
        }
    }
}

impl IdSource for SeedIds {
    fn ticket_id(&mut self) -> [u8; 32] {
        self.counter = self.counter.wrapping_add(1);
        let mut h = Sha256::new();
        h.update(self.domain);
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

/// Where the bridge key sits in the seed page (after the knob's room).
pub const BRIDGE_KEY_AT: usize = 256;
/// Marks the bridge key.
pub const BRIDGE_KEY_MAGIC: [u8; 8] = *b"CHXBRKEY";

/// Where the boot epoch sits in the seed page (after the bridge key).
pub const EPOCH_AT: usize = BRIDGE_KEY_AT + 40;
/// Marks the boot epoch.
pub const EPOCH_MAGIC: [u8; 8] = *b"CHXEPOCH";

/// Bytes of the seed page NineDoor reads: the seed, then the knob (magic,
/// beats, id length, id of at most [`ninedoor::MAX_ID_LEN`] bytes), then
/// at [`BRIDGE_KEY_AT`] the bridge key, then at [`EPOCH_AT`] the epoch.
pub const SEED_PAGE_LEN: usize = EPOCH_AT + 16;

/// The boot epoch in the seed page (unix seconds), if the image builder
/// wrote one: a PD has no wall clock, so the hive's clock starts there and
/// runs on the uptime. The builder writes the time it built the image, so
/// tickets the image mints mean the same to hosts whose clocks are right
/// (a GPU bridge checks their expiry); without one the hive starts at
/// [`BOOT_EPOCH`](crate::BOOT_EPOCH).
pub fn boot_epoch(page: &[u8]) -> Option<u64> {
    let at = page.get(EPOCH_AT..EPOCH_AT + 16)?;
    let (magic, secs) = at.split_at(8);
    if magic != EPOCH_MAGIC {
        return None;
    }
    Some(u64::from_le_bytes(secs.try_into().ok()?))
}

/// The bytes to write at [`EPOCH_AT`] of the seed page for `epoch`.
pub fn encode_boot_epoch(epoch: u64) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::from(EPOCH_MAGIC);
    out.extend_from_slice(&epoch.to_le_bytes());
    out
}

/// The GPU bridge key in the seed page, if the image builder put one
/// there: the key NineDoor mints mirror tickets with and the bridge host
/// verifies them with (its `--ticket-key-file`). Never the hive key: a
/// leaked bridge key mints bridge tickets only.
pub fn bridge_key(page: &[u8]) -> Option<[u8; 32]> {
    let at = page.get(BRIDGE_KEY_AT..BRIDGE_KEY_AT + 40)?;
    let (magic, key) = at.split_at(8);
    if magic != BRIDGE_KEY_MAGIC {
        return None;
    }
    let key: [u8; 32] = key.try_into().ok()?;
    (key != [0; 32]).then_some(key)
}

/// The bytes to write at [`BRIDGE_KEY_AT`] of the seed page for `key`.
pub fn encode_bridge_key(key: &[u8; 32]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::from(BRIDGE_KEY_MAGIC);
    out.extend_from_slice(key);
    out
}

/// A test knob the image builder may put in the seed page after the seed:
/// the worker spawned with id `worker` faults (reads
/// [`FAULT_VADDR`](crate::wiring::FAULT_VADDR)) after `after_beats` heartbeats past its
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

    #[test]
    fn the_bridge_key_is_found_after_the_knob_only_with_its_magic() {
        let mut page = alloc::vec![7u8; SEED_PAGE_LEN];
        assert_eq!(bridge_key(&page), None);
        page[BRIDGE_KEY_AT..BRIDGE_KEY_AT + 40].copy_from_slice(&encode_bridge_key(&[9; 32]));
        assert_eq!(bridge_key(&page), Some([9; 32]));
        assert_eq!(bridge_key(&page[..BRIDGE_KEY_AT + 20]), None);
        page[BRIDGE_KEY_AT + 8..BRIDGE_KEY_AT + 40].fill(0);
        assert_eq!(bridge_key(&page), None, "an all-zero key is no key");
    }

    #[test]
    fn the_boot_epoch_round_trips_and_is_absent_without_its_magic() {
        let mut page = alloc::vec![0u8; SEED_PAGE_LEN];
        assert_eq!(boot_epoch(&page), None);
        page[EPOCH_AT..].copy_from_slice(&encode_boot_epoch(1_796_000_000));
        assert_eq!(boot_epoch(&page), Some(1_796_000_000));
    }
}
