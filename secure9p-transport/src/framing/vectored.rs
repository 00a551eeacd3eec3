//! Frames that go out as a header plus the caller's payload, so an `Rread`
//! or `Twrite` of any size is framed without copying its data: the header is
//! a few bytes on the stack, the payload stays where it is, and
//! [`write_frame_vectored`] hands both to the socket in one vectored write.

use bytes::Bytes;
use secure9p_codec::{
    CodecError, Fid, RREAD_HEADER_LEN, TWRITE_HEADER_LEN, Tag, rread_header, twrite_header,
};
use std::io::{self, IoSlice};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// A frame ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutFrame {
    /// A whole encoded frame, size field included.
    Whole(Bytes),
    /// An `Rread` or `Twrite`: header and payload kept apart.
    Vectored(VectoredFrame),
}

impl OutFrame {
    /// An `Rread` answering `tag` with `payload`.
    ///
    /// Fails only when the payload cannot be described by a 9P count
    /// (over 4 GiB); whether it fits the session's msize is checked when the
    /// frame is sent.
    pub fn rread(tag: Tag, payload: Bytes) -> Result<Self, CodecError> {
        let header = IoHeader::Rread(rread_header(tag, payload.len())?);
        Ok(OutFrame::Vectored(VectoredFrame { header, payload }))
    }

    /// A `Twrite` of `payload` at `offset` of `fid`, under `tag`.
    ///
    /// Fails only when the payload cannot be described by a 9P count.
    pub fn twrite(tag: Tag, fid: Fid, offset: u64, payload: Bytes) -> Result<Self, CodecError> {
        let header = IoHeader::Twrite(twrite_header(tag, fid, offset, payload.len())?);
        Ok(OutFrame::Vectored(VectoredFrame { header, payload }))
    }

    /// The frame as two slices to be sent back to back: the whole frame and
    /// nothing, or the header and the payload.
    pub fn parts(&self) -> (&[u8], &[u8]) {
        match self {
            OutFrame::Whole(bytes) => (bytes, &[]),
            OutFrame::Vectored(v) => (v.header(), v.payload()),
        }
    }

    /// Bytes the frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        match self {
            OutFrame::Whole(bytes) => bytes.len(),
            OutFrame::Vectored(v) => v.encoded_len(),
        }
    }
}

impl From<Bytes> for OutFrame {
    fn from(bytes: Bytes) -> Self {
        OutFrame::Whole(bytes)
    }
}

/// An `Rread` or `Twrite` whose header was built for its payload (the size
/// and count fields always match it), so it can be sent without re-checking
/// anything but the msize. Made by [`OutFrame::rread`] and
/// [`OutFrame::twrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectoredFrame {
    header: IoHeader,
    payload: Bytes,
}

impl VectoredFrame {
    /// The header: `size type tag count` for an `Rread`,
    /// `size type tag fid offset count` for a `Twrite`.
    pub fn header(&self) -> &[u8] {
        match &self.header {
            IoHeader::Rread(h) => h,
            IoHeader::Twrite(h) => h,
        }
    }

    /// The payload that follows the header.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Bytes the frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        self.header().len() + self.payload.len()
    }
}

/// The fixed-size headers of the two payload-carrying messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IoHeader {
    Rread([u8; RREAD_HEADER_LEN]),
    Twrite([u8; TWRITE_HEADER_LEN]),
}

/// Writes `header` then `payload` to `w` with vectored writes, so the
/// payload is never copied into an intermediate buffer. Partial writes are
/// resumed until both slices are out; a writer that accepts nothing fails
/// with [`io::ErrorKind::WriteZero`]. Does not flush.
///
/// Writers without native vectored I/O (`is_write_vectored() == false`)
/// still work: they take the slices one at a time, still without a copy.
pub async fn write_frame_vectored<W>(w: &mut W, header: &[u8], payload: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut header = header;
    let mut payload = payload;
    while !header.is_empty() {
        let bufs = [IoSlice::new(header), IoSlice::new(payload)];
        let n = w.write_vectored(&bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        // A writer reporting more than it was given is broken; clamp rather
        // than index past the slices.
        let from_header = n.min(header.len());
        header = header.get(from_header..).unwrap_or_default();
        let from_payload = (n - from_header).min(payload.len());
        payload = payload.get(from_payload..).unwrap_or_default();
    }
    w.write_all(payload).await
}
