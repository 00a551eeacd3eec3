//! What can go wrong with a ring: a region that is not a ring, a frame that
//! does not fit, and a peer that wrote nonsense into the shared memory.

/// Why a ring operation failed. The `Corrupt*` variants mean the peer wrote
/// values no correct peer writes; the ring cannot be trusted any more and
/// should be torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The region cannot hold the control block and the smallest data area.
    #[error("region of {words} words is smaller than the {need} a ring needs")]
    RegionTooSmall {
        /// Words in the region.
        words: usize,
        /// Words a ring needs at least.
        need: usize,
    },
    /// The region's data area exceeds [`MAX_DATA_WORDS`](super::layout::MAX_DATA_WORDS).
    #[error("data area of {words} words exceeds the limit of {max}")]
    RegionTooLarge {
        /// Data words in the region.
        words: usize,
        /// The most data words a ring may have.
        max: usize,
    },
    /// The region was not initialised with [`init`](super::init).
    #[error("region has magic {found:#010x}, not an initialised ring")]
    NotInitialised {
        /// The magic word found.
        found: u32,
    },
    /// The capacity in the control block disagrees with the region this side
    /// mapped (the two sides mapped regions of different sizes, or the peer
    /// wrote the field).
    #[error("control block declares {declared} data words but the region has {actual}")]
    CapacityMismatch {
        /// The capacity word.
        declared: u32,
        /// Data words in this side's view.
        actual: usize,
    },
    /// The frame is larger than the ring can ever hold, even empty.
    #[error("frame of {len} bytes exceeds the ring's limit of {max}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The largest frame the ring can hold.
        max: usize,
    },
    /// The ring has no room for the frame now; retry after the consumer has
    /// taken some (the producer's notify hook says when).
    #[error("ring full: frame needs {need} words, {free} are free")]
    Full {
        /// Data words the frame's record needs.
        need: usize,
        /// Data words free.
        free: usize,
    },
    /// The caller's buffer is shorter than the next frame, which stays in
    /// the ring.
    #[error("buffer of {have} bytes cannot hold a frame of {need}")]
    BufferTooSmall {
        /// The frame's length.
        need: usize,
        /// The buffer's length.
        have: usize,
    },
    /// An index in the control block points outside the data area.
    #[error("{index} index {value} is outside a data area of {capacity} words")]
    CorruptIndex {
        /// Which index: `"head"` or `"tail"`.
        index: &'static str,
        /// The value found.
        value: u32,
        /// Data words in the ring.
        capacity: usize,
    },
    /// A record's length word claims more than the producer published.
    #[error("record of {len} bytes overruns the {available} bytes published")]
    CorruptLength {
        /// The length word found.
        len: u32,
        /// Frame bytes the published words could hold.
        available: usize,
    },
}
