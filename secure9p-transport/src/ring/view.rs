//! A checked view of a ring region: the control block as a fixed array, the
//! data area as a slice, and the index arithmetic both sides share. Every
//! index read from shared memory passes through here and is range-checked
//! before it is used.

use super::RingError;
use super::layout::{
    self, CAPACITY, CONTROL_WORDS, HEAD, MAGIC, MAGIC_VALUE, MAX_DATA_WORDS, MIN_DATA_WORDS,
    SPACE_WANTED, TAIL,
};
use core::sync::atomic::{AtomicU32, Ordering};

#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    control: &'a [AtomicU32; CONTROL_WORDS],
    data: &'a [AtomicU32],
}

impl<'a> View<'a> {
    /// Splits `region` into control block and data area, checking sizes only.
    pub(super) fn new(region: &'a [AtomicU32]) -> Result<Self, RingError> {
        let too_small = RingError::RegionTooSmall {
            words: region.len(),
            need: CONTROL_WORDS + MIN_DATA_WORDS,
        };
        let (control, data) = region.split_first_chunk().ok_or(too_small)?;
        if data.len() < MIN_DATA_WORDS {
            return Err(too_small);
        }
        if data.len() > MAX_DATA_WORDS {
            return Err(RingError::RegionTooLarge {
                words: data.len(),
                max: MAX_DATA_WORDS,
            });
        }
        Ok(View { control, data })
    }

    /// A view of a region that [`init`](super::init) prepared, with the
    /// same capacity as this side's mapping.
    pub(super) fn attach(region: &'a [AtomicU32]) -> Result<Self, RingError> {
        let view = View::new(region)?;
        // Acquire: pairs with init's Release store of the magic, so the
        // capacity and indices init wrote before it are visible here.
        let found = view.magic().load(Ordering::Acquire);
        if found != MAGIC_VALUE {
            return Err(RingError::NotInitialised { found });
        }
        let declared = view.control[CAPACITY].load(Ordering::Relaxed);
        if declared as usize != view.capacity() {
            return Err(RingError::CapacityMismatch {
                declared,
                actual: view.capacity(),
            });
        }
        Ok(view)
    }

    pub(super) fn magic(&self) -> &'a AtomicU32 {
        &self.control[MAGIC]
    }

    pub(super) fn capacity_word(&self) -> &'a AtomicU32 {
        &self.control[CAPACITY]
    }

    pub(super) fn head(&self) -> &'a AtomicU32 {
        &self.control[HEAD]
    }

    pub(super) fn tail(&self) -> &'a AtomicU32 {
        &self.control[TAIL]
    }

    pub(super) fn space_wanted(&self) -> &'a AtomicU32 {
        &self.control[SPACE_WANTED]
    }

    /// Data words. Taken from this side's mapping, never from shared memory.
    pub(super) fn capacity(&self) -> usize {
        self.data.len()
    }

    pub(super) fn max_frame_len(&self) -> usize {
        layout::max_frame_len(self.capacity())
    }

    /// Loads an index the peer may have written and checks it is inside the
    /// data area.
    pub(super) fn load_index(
        &self,
        word: &AtomicU32,
        index: &'static str,
        order: Ordering,
    ) -> Result<u32, RingError> {
        let value = word.load(order);
        if value as usize >= self.capacity() {
            return Err(self.index_error(index, value));
        }
        Ok(value)
    }

    pub(super) fn index_error(&self, index: &'static str, value: u32) -> RingError {
        RingError::CorruptIndex {
            index,
            value,
            capacity: self.capacity(),
        }
    }

    /// Words between `tail` and `head` (both already checked).
    pub(super) fn used(&self, head: u32, tail: u32) -> usize {
        let (head, tail) = (head as usize, tail as usize);
        if head >= tail {
            head - tail
        } else {
            self.capacity() - tail + head
        }
    }

    /// Words the producer may still fill, keeping one free.
    pub(super) fn free(&self, head: u32, tail: u32) -> usize {
        self.capacity() - 1 - self.used(head, tail)
    }

    /// `pos` moved on by `words` (fewer than the capacity), wrapping.
    pub(super) fn advance(&self, pos: u32, words: usize) -> u32 {
        // pos < capacity <= MAX_DATA_WORDS and words < capacity: no overflow,
        // and the result is below the capacity, which fits in a u32.
        let next = pos as usize + words;
        let next = if next >= self.capacity() {
            next - self.capacity()
        } else {
            next
        };
        next as u32
    }

    /// The data words from `pos` to the end, then from the start: the order
    /// in which a record that begins at `pos` is laid out.
    pub(super) fn slots_from(
        &self,
        pos: u32,
    ) -> Result<impl Iterator<Item = &'a AtomicU32> + use<'a>, RingError> {
        let (before, after) = self
            .data
            .split_at_checked(pos as usize)
            .ok_or(self.index_error("record", pos))?;
        Ok(after.iter().chain(before))
    }
}
