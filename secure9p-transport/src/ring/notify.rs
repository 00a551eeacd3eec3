//! How one side of a ring wakes the other: a Microkit notification, a
//! thread unpark, an eventfd. The ring decides when to call it; the hook only
//! has to deliver the signal.

/// Signals the peer of a ring.
///
/// A [`Producer`](super::Producer) calls its hook after a push that made the
/// ring go from empty to non-empty (the consumer may be waiting for data). A
/// [`Consumer`](super::Consumer) calls its hook after a pop once the producer
/// has found the ring full (the producer may be waiting for space). Both
/// checks are made after a full fence, so a peer that re-checks the ring
/// before it sleeps (as `pop` and `push` do) never misses a wakeup. Extra
/// calls can happen and must be harmless.
///
/// `notify` runs on the hot path of `push`/`pop`: it should only signal, not
/// block.
pub trait Notify {
    /// Signals the peer.
    fn notify(&self);
}

/// A hook for a peer that polls and needs no signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoNotify;

impl Notify for NoNotify {
    fn notify(&self) {}
}

impl<T: Notify + ?Sized> Notify for &T {
    fn notify(&self) {
        (**self).notify();
    }
}
