//! Cutting a byte stream into 9P frames and putting frames back onto one.
//!
//! [`NinePCodec`] is a `tokio_util::codec` [`Decoder`]/[`Encoder`] pair. It
//! knows one thing about 9P: a frame starts with its own little-endian
//! `size[4]`, header included. It reads that field as soon as four bytes are
//! buffered and refuses a frame above the session's msize (or below the
//! 7-byte header) right there, before any of the body is read or any buffer
//! space is reserved for it, so a peer cannot make the reader allocate or wait
//! for more than msize bytes. Accepted frames are split off the read buffer
//! as [`Bytes`] without copying. It never looks inside a frame: decoding the
//! message is the codec crate's job, answering it the engine's.

mod vectored;

pub use vectored::{OutFrame, VectoredFrame, write_frame_vectored};

use bytes::{Bytes, BytesMut};
use secure9p_codec::{CodecError, Frame, HEADER_LEN};
use std::io;
use tokio_util::codec::{Decoder, Encoder};

/// The msize a fresh [`NinePCodec`] enforces until the version exchange sets
/// the negotiated one. 8192 is Plan 9's traditional msize: far more than any
/// `Tversion`/`Rversion` needs, and small enough that a peer that has not yet
/// negotiated cannot make the reader buffer much.
pub const DEFAULT_MSIZE: u32 = 8192;

/// Bytes of the `size[4]` field that opens every frame.
const SIZE_FIELD_LEN: usize = 4;

/// Why a frame could not be read from or written to a stream.
///
/// Every variant but [`FrameError::Io`] means the peer (or the caller) broke
/// the framing; the stream cannot be resynchronised and should be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame's size exceeds the msize in force. For an incoming frame
    /// this is reported as soon as its size field is readable.
    #[error("frame of {size} bytes exceeds msize {msize}")]
    TooLarge {
        /// The frame's size, header included.
        size: usize,
        /// The msize in force.
        msize: u32,
    },
    /// An incoming frame's size field is below the 7-byte header.
    #[error("size field {0} is below the 7-byte header")]
    BelowHeader(u32),
    /// A frame handed to the encoder is shorter than the 7-byte header.
    #[error("frame to send is {0} bytes, shorter than the 7-byte header")]
    ShortFrame(usize),
    /// A frame handed to the encoder declares a size other than its length.
    #[error("frame to send declares {declared} bytes but holds {actual}")]
    SizeMismatch {
        /// The frame's own size field.
        declared: u32,
        /// Its length.
        actual: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended {got} bytes into a frame")]
    Truncated {
        /// Bytes of the unfinished frame that had arrived.
        got: usize,
    },
    /// A [`Frame`] handed to the encoder could not be encoded.
    #[error("cannot encode frame: {0}")]
    Codec(#[from] CodecError),
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// The 9P framer: whole frames in, whole frames out, none above msize.
///
/// Use it with `tokio_util::codec::Framed` (or `FramedRead` plus
/// [`write_frame_vectored`] when large payloads must not be copied into the
/// write buffer). After the version exchange, call
/// [`set_msize`](NinePCodec::set_msize) (through `Framed::codec_mut`) with the
/// negotiated msize; it applies to every frame decoded or encoded from then
/// on, including frames already buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NinePCodec {
    msize: u32,
}

impl NinePCodec {
    /// A framer that accepts frames of at most `msize` bytes. An msize below
    /// the 7-byte header refuses every frame.
    pub const fn new(msize: u32) -> Self {
        NinePCodec { msize }
    }

    /// The largest frame accepted, in bytes.
    pub const fn msize(&self) -> u32 {
        self.msize
    }

    /// Changes the largest frame accepted, typically to the msize agreed by
    /// `Tversion`/`Rversion`.
    pub fn set_msize(&mut self, msize: u32) {
        self.msize = msize;
    }

    /// Checks a frame about to be sent: whole, self-consistent, within msize.
    fn check_outgoing(&self, frame: &[u8]) -> Result<(), FrameError> {
        let declared = match frame.first_chunk::<SIZE_FIELD_LEN>() {
            Some(size) if frame.len() >= HEADER_LEN => u32::from_le_bytes(*size),
            _ => return Err(FrameError::ShortFrame(frame.len())),
        };
        if declared as usize != frame.len() {
            return Err(FrameError::SizeMismatch {
                declared,
                actual: frame.len(),
            });
        }
        self.check_size(frame.len())
    }

    fn check_size(&self, size: usize) -> Result<(), FrameError> {
        if size > self.msize as usize {
            return Err(FrameError::TooLarge {
                size,
                msize: self.msize,
            });
        }
        Ok(())
    }
}

impl Default for NinePCodec {
    /// A framer enforcing [`DEFAULT_MSIZE`].
    fn default() -> Self {
        NinePCodec::new(DEFAULT_MSIZE)
    }
}

impl Decoder for NinePCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(size) = src.first_chunk::<SIZE_FIELD_LEN>() else {
            return Ok(None);
        };
        let size = u32::from_le_bytes(*size);
        if (size as usize) < HEADER_LEN {
            return Err(FrameError::BelowHeader(size));
        }
        self.check_size(size as usize)?;
        let size = size as usize;
        if src.len() < size {
            // Only now, with the size accepted, is room made for the rest.
            src.reserve(size - src.len());
            return Ok(None);
        }
        Ok(Some(src.split_to(size).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated { got: src.len() }),
        }
    }
}

/// Sends one whole encoded frame (checked, then copied into the write buffer).
impl Encoder<Bytes> for NinePCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.check_outgoing(&frame)?;
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

/// Sends a whole or a header-plus-payload frame. `FramedWrite` owns a single
/// write buffer, so the payload is copied into it; use
/// [`write_frame_vectored`] to send a large payload without that copy.
impl Encoder<OutFrame> for NinePCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: OutFrame, dst: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            OutFrame::Whole(bytes) => self.encode(bytes, dst),
            OutFrame::Vectored(v) => {
                // A `VectoredFrame`'s header is built for its payload, so
                // only the msize can be wrong.
                self.check_size(v.encoded_len())?;
                dst.reserve(v.encoded_len());
                dst.extend_from_slice(v.header());
                dst.extend_from_slice(v.payload());
                Ok(())
            }
        }
    }
}

/// Encodes a message straight into the write buffer, without an intermediate
/// `Bytes`.
impl Encoder<Frame<'_>> for NinePCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame<'_>, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.check_size(frame.encoded_len())?;
        frame.encode_to(dst)?;
        Ok(())
    }
}
