//! Where each field of a ring lives in its shared region, in 32-bit words.
//!
//! This is the ABI between the two protection domains that share a ring; a
//! peer written in another language reads it from here. Words are
//! native-endian (the region is memory both peers share on one CPU, not a
//! wire). Frame bytes are packed into data words with `u32::from_le_bytes`,
//! so on little-endian targets (aarch64, x86-64) they lie in memory in order.
//!
//! ```text
//! word 0         MAGIC         set last by init; attach refuses anything else
//! word 1         CAPACITY      data words; must equal the attacher's view
//! word 16        HEAD          next data word the producer writes (producer-owned)
//! word 32        TAIL          next data word the consumer reads (consumer-owned)
//! word 33        SPACE_WANTED  non-zero: the producer found the ring full
//!                              and waits to be notified (set by the
//!                              producer, cleared by the consumer)
//! word 48..      data          records, see below
//! ```
//!
//! HEAD and TAIL sit on different 64-byte cache lines so the two sides do
//! not bounce one line between cores on every frame.
//!
//! A record is one length word (the frame's length in bytes) followed by
//! `ceil(len / 4)` words of frame bytes, four to a word in little-endian
//! order, the last zero-padded. Records wrap word by word: a record that
//! reaches the end of the data area continues at data word 0 (split copy,
//! no wrap marker, no wasted tail). HEAD == TAIL means empty; the producer
//! always leaves one word free so that a full ring is never mistaken for an
//! empty one.

/// Word index of the magic number.
pub const MAGIC: usize = 0;
/// Word index of the data capacity, in words.
pub const CAPACITY: usize = 1;
/// Word index of the producer's index.
pub const HEAD: usize = 16;
/// Word index of the consumer's index.
pub const TAIL: usize = 32;
/// Word index of the producer's "notify me when space frees up" flag.
pub const SPACE_WANTED: usize = 33;
/// Words taken by the control block; data follows.
pub const CONTROL_WORDS: usize = 48;

/// The value of the magic word of an initialised ring: "S9R1" in memory
/// order, the 1 being the layout version.
pub const MAGIC_VALUE: u32 = u32::from_le_bytes(*b"S9R1");

/// The fewest data words a ring may have: room for a one-word record plus
/// the word that is always left free.
pub const MIN_DATA_WORDS: usize = 4;

/// The most data words a ring may have (4 GiB of data). Keeps every index
/// sum below `u32::MAX`.
pub const MAX_DATA_WORDS: usize = 1 << 30;

/// Region words (control block included) for a ring whose largest frame is
/// `max_frame` bytes. At least [`CONTROL_WORDS`] + [`MIN_DATA_WORDS`].
pub const fn region_words(max_frame: usize) -> usize {
    let data = record_words(max_frame) + 1;
    let data = if data < MIN_DATA_WORDS {
        MIN_DATA_WORDS
    } else {
        data
    };
    CONTROL_WORDS + data
}

/// Data words taken by the record of a frame of `len` bytes.
pub(crate) const fn record_words(len: usize) -> usize {
    1 + len.div_ceil(4)
}

/// The largest frame, in bytes, that a ring of `data_words` can ever hold:
/// everything but the length word and the word always left free.
pub(crate) const fn max_frame_len(data_words: usize) -> usize {
    data_words.saturating_sub(2) * 4
}
