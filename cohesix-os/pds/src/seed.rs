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
