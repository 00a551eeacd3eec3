//! The one error type of the codec. Every malformed input ends here as a
//! value that names what was wrong and with which number; the codec never
//! panics on input.

/// What was wrong with a frame being decoded, or with a buffer being encoded into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Fewer than the 7 header bytes (`size[4] type[1] tag[2]`) were given.
    #[error("frame of {got} bytes is shorter than the 7-byte header")]
    ShortHeader {
        /// Bytes available.
        got: usize,
    },
    /// The frame's `size` field disagrees with the buffer handed to the decoder.
    #[error("size field says {declared} bytes but the buffer holds {actual}")]
    SizeMismatch {
        /// The frame's own `size` field.
        declared: u32,
        /// The length of the buffer given.
        actual: usize,
    },
    /// The frame's `size` field is below the header length.
    #[error("size field {0} is below the 7-byte header")]
    SizeBelowHeader(u32),
    /// The frame is larger than the negotiated msize.
    #[error("frame of {size} bytes exceeds msize {msize}")]
    TooLarge {
        /// The frame's size.
        size: u32,
        /// The msize in force.
        msize: u32,
    },
    /// The type byte is not a 9P2000 or 9P2000.L message.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A field runs past the end of the frame.
    #[error("{field} needs {need} bytes but only {left} remain")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes left in the frame.
        left: usize,
    },
    /// Bytes remain after the last field of the message.
    #[error("{0} trailing bytes after the message body")]
    TrailingBytes(usize),
    /// A string is not valid UTF-8.
    #[error("string {0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A string contains a NUL byte.
    #[error("string {0} contains a NUL byte")]
    NulInString(&'static str),
    /// A walk names more than [`MAX_WALK_ELEMENTS`](crate::MAX_WALK_ELEMENTS) elements.
    #[error("walk of {0} elements exceeds 16")]
    TooManyWalkElements(usize),
    /// `offset + count` does not fit in 64 bits.
    #[error("offset {offset} + count {count} overflows 64 bits")]
    OffsetOverflow {
        /// The request's offset.
        offset: u64,
        /// The request's count.
        count: u32,
    },
    /// A 9P2000 stat block's own size field disagrees with its contents.
    #[error("stat block declares {declared} bytes but holds {actual}")]
    StatSize {
        /// The size the stat declares.
        declared: usize,
        /// The size of what follows it.
        actual: usize,
    },
    /// The output buffer is too small for the frame being encoded.
    #[error("output buffer of {have} bytes cannot hold {need}")]
    BufferTooSmall {
        /// Bytes the frame needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// A value does not fit its wire field (a string over 65535 bytes, a
    /// payload over 4 GiB, a frame over `u32::MAX`).
    #[error("{field} of {len} bytes does not fit its wire field")]
    FieldTooLong {
        /// The field being encoded.
        field: &'static str,
        /// Its length.
        len: usize,
    },
}
