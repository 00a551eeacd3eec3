//! The writing side of a ring.

use super::layout::record_words;
use super::view::View;
use super::{NoNotify, Notify, RingError};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering, fence};

/// The one side that pushes frames into a ring.
///
/// Exactly one `Producer` may be attached to a region at a time. It keeps its
/// own copy of the head index: the shared word is only published, never read
/// back, so a consumer that scribbles on it cannot steer where the producer
/// writes.
pub struct Producer<'a, N: Notify = NoNotify> {
    ring: View<'a>,
    head: u32,
    notify: N,
}

impl<'a, N: Notify> Producer<'a, N> {
    /// Attaches to a region prepared by [`init`](super::init). `notify`
    /// signals the consumer when a push makes the ring non-empty.
    pub fn attach(region: &'a [AtomicU32], notify: N) -> Result<Self, RingError> {
        let ring = View::attach(region)?;
        // Relaxed: attach's Acquire load of the magic already ordered this.
        let head = ring.load_index(ring.head(), "head", Ordering::Relaxed)?;
        Ok(Producer { ring, head, notify })
    }

    /// The largest frame this ring can ever hold, in bytes.
    pub fn max_frame_len(&self) -> usize {
        self.ring.max_frame_len()
    }

    /// Copies `frame` into the ring as one record and publishes it.
    ///
    /// Fails with [`RingError::FrameTooLarge`] if the frame could never fit,
    /// with [`RingError::Full`] if it does not fit now (nothing is written;
    /// the consumer's hook will signal when space frees up), and with
    /// [`RingError::CorruptIndex`] if the consumer's tail index is out of
    /// range. Calls the notify hook if the consumer had taken everything
    /// before this frame.
    pub fn push(&mut self, frame: &[u8]) -> Result<(), RingError> {
        let too_large = RingError::FrameTooLarge {
            len: frame.len(),
            max: self.max_frame_len(),
        };
        if frame.len() > self.max_frame_len() {
            return Err(too_large);
        }
        let len = u32::try_from(frame.len()).map_err(|_| too_large)?;
        let need = record_words(frame.len());

        // Acquire: pairs with the consumer's Release store of the tail, so
        // its reads of the words it freed happen before we overwrite them.
        let tail = self
            .ring
            .load_index(self.ring.tail(), "tail", Ordering::Acquire)?;
        if need > self.ring.free(self.head, tail) {
            self.ring.space_wanted().store(1, Ordering::Relaxed);
            // SeqCst fence between raising the flag and re-reading the tail,
            // against the consumer's fence between storing the tail and
            // reading the flag: either we see the space it freed, or it sees
            // the flag and notifies us.
            fence(Ordering::SeqCst);
            let tail = self
                .ring
                .load_index(self.ring.tail(), "tail", Ordering::Acquire)?;
            let free = self.ring.free(self.head, tail);
            if need > free {
                return Err(RingError::Full { need, free });
            }
        }

        // The record's words: Relaxed, published by the Release below.
        let mut slots = self.ring.slots_from(self.head)?;
        slots
            .next()
            .ok_or(self.ring.index_error("head", self.head))?
            .store(len, Ordering::Relaxed);
        for (slot, chunk) in slots.zip(frame.chunks(4)) {
            slot.store(pack(chunk), Ordering::Relaxed);
        }

        let was = self.head;
        self.head = self.ring.advance(self.head, need);
        // Release: every store of the record happens before the consumer's
        // Acquire load that observes this head.
        self.ring.head().store(self.head, Ordering::Release);
        // SeqCst fence between publishing the head and reading the tail,
        // against the consumer's fence between finding the ring empty and
        // re-reading the head before it waits: either it sees this frame, or
        // we see it had caught up with `was` and wake it.
        fence(Ordering::SeqCst);
        if self.ring.tail().load(Ordering::Relaxed) == was {
            self.notify.notify();
        }
        Ok(())
    }
}

impl<N: Notify> fmt::Debug for Producer<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity_words", &self.ring.capacity())
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// Up to four frame bytes as one data word, zero-padded.
fn pack(chunk: &[u8]) -> u32 {
    let mut bytes = [0u8; 4];
    for (dst, src) in bytes.iter_mut().zip(chunk) {
        *dst = *src;
    }
    u32::from_le_bytes(bytes)
}
