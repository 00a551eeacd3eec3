//! The reading side of a ring.

use super::layout::record_words;
use super::view::View;
use super::{NoNotify, Notify, RingError};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering, fence};

/// The one side that pops frames from a ring.
///
/// Exactly one `Consumer` may be attached to a region at a time. It keeps
/// its own copy of the tail index and checks everything the producer
/// publishes (head index, record lengths) before using it, so a hostile
/// producer gets an error back, never an out-of-bounds access or a panic.
pub struct Consumer<'a, N: Notify = NoNotify> {
    ring: View<'a>,
    tail: u32,
    notify: N,
}

impl<'a, N: Notify> Consumer<'a, N> {
    /// Attaches to a region prepared by [`init`](super::init). `notify`
    /// signals the producer when a pop frees space it was waiting for.
    pub fn attach(region: &'a [AtomicU32], notify: N) -> Result<Self, RingError> {
        let ring = View::attach(region)?;
        // Relaxed: attach's Acquire load of the magic already ordered this.
        let tail = ring.load_index(ring.tail(), "tail", Ordering::Relaxed)?;
        Ok(Consumer { ring, tail, notify })
    }

    /// The largest frame this ring can ever hold, in bytes: a buffer of this
    /// size is always enough for [`pop`](Consumer::pop).
    pub fn max_frame_len(&self) -> usize {
        self.ring.max_frame_len()
    }

    /// The length of the next frame, or `None` if the ring is empty.
    ///
    /// When it finds the ring empty it re-reads the head after a full fence,
    /// so a caller that waits for the producer's notification after `None`
    /// never misses one.
    pub fn peek_len(&self) -> Result<Option<usize>, RingError> {
        // Acquire: pairs with the producer's Release store of the head, so
        // the record words it covers are visible to the loads below.
        let mut head = self
            .ring
            .load_index(self.ring.head(), "head", Ordering::Acquire)?;
        if head == self.tail {
            // SeqCst fence against the producer's fence between publishing
            // the head and reading our tail (see `Producer::push`).
            fence(Ordering::SeqCst);
            head = self
                .ring
                .load_index(self.ring.head(), "head", Ordering::Acquire)?;
            if head == self.tail {
                return Ok(None);
            }
        }
        let used = self.ring.used(head, self.tail);
        let len = self
            .ring
            .slots_from(self.tail)?
            .next()
            .ok_or(self.ring.index_error("tail", self.tail))?
            .load(Ordering::Relaxed);
        // Checked against what was published, not against the capacity: a
        // record may only cover words the producer has released to us.
        if record_words(len as usize) > used {
            return Err(RingError::CorruptLength {
                len,
                available: (used - 1) * 4,
            });
        }
        Ok(Some(len as usize))
    }

    /// Copies the next frame into the front of `out` and removes it from the
    /// ring; returns its length, or `None` if the ring is empty.
    ///
    /// If `out` is too short the frame stays in the ring and
    /// [`RingError::BufferTooSmall`] says how long it is. Calls the notify
    /// hook if the producer had found the ring full.
    pub fn pop(&mut self, out: &mut [u8]) -> Result<Option<usize>, RingError> {
        let Some(len) = self.peek_len()? else {
            return Ok(None);
        };
        let have = out.len();
        let dst = out
            .get_mut(..len)
            .ok_or(RingError::BufferTooSmall { need: len, have })?;

        // The record's words: Relaxed, ordered by peek_len's Acquire load.
        let mut slots = self.ring.slots_from(self.tail)?;
        slots.next(); // the length word, read by peek_len
        for (chunk, slot) in dst.chunks_mut(4).zip(slots) {
            let word = slot.load(Ordering::Relaxed).to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(word) {
                *d = s;
            }
        }

        self.tail = self.ring.advance(self.tail, record_words(len));
        // Release: our loads of the record happen before the producer's
        // Acquire load that observes this tail, and so before it reuses the
        // words.
        self.ring.tail().store(self.tail, Ordering::Release);
        // SeqCst fence between storing the tail and reading the flag, against
        // the producer's fence between raising it and re-reading the tail
        // (see `Producer::push`). The swap clears the flag atomically, so a
        // flag the producer raises again right after is not lost.
        fence(Ordering::SeqCst);
        let wanted = self.ring.space_wanted();
        if wanted.load(Ordering::Relaxed) != 0 && wanted.swap(0, Ordering::Relaxed) != 0 {
            self.notify.notify();
        }
        Ok(Some(len))
    }
}

impl<N: Notify> fmt::Debug for Consumer<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity_words", &self.ring.capacity())
            .field("tail", &self.tail)
            .finish_non_exhaustive()
    }
}
