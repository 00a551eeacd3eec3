//! Where ticket ids come from. Neither this crate nor the engine has a
//! random number generator (a protection domain has none of its own); the
//! embedder supplies 32 fresh random bytes per ticket.

/// A source of ticket ids: 32 random bytes each call (from the OS RNG on a
/// host, from a seeded DRBG in a protection domain). Repeats are detected
/// and refused, but a predictable source makes ticket ids guessable, which
/// matters only for log correlation: a ticket's secret is its MAC.
pub trait IdSource: Send + Sync {
    /// 32 fresh random bytes.
    fn ticket_id(&mut self) -> [u8; 32];
}

impl<F: FnMut() -> [u8; 32] + Send + Sync> IdSource for F {
    fn ticket_id(&mut self) -> [u8; 32] {
        self()
    }
}
