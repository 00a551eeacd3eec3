//! Whole frames: the header, the checks made before a body is touched, and
//! encoding into a caller's buffer, into `BytesMut`, or as a header alone for
//! vectored I/O of `Rread`/`Twrite` payloads.

use crate::error::CodecError;
use crate::layout::HeaderWire;
use crate::msg::{Body, Msg, MsgType};
use crate::types::{Dialect, Fid, Tag};
use crate::wire::{AppendBuf, AppendSink, Reader, Sink, SliceSink, Writer, data_count};
use zerocopy::FromBytes;

pub use crate::layout::HEADER_LEN;

/// Bytes of an `Rread` before its payload: header, `count[4]`.
pub const RREAD_HEADER_LEN: usize = HEADER_LEN + 4;
/// Bytes of a `Twrite` before its payload: header, `fid[4] offset[8] count[4]`.
pub const TWRITE_HEADER_LEN: usize = HEADER_LEN + 16;
/// Plan 9's allowance for I/O message headers: `iounit = msize - IOHDRSZ`.
pub const IOHDRSZ: u32 = 24;

/// What the decoder needs to know about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeConfig {
    /// The session's dialect (decides the layout of `Tauth`/`Tattach`).
    pub dialect: Dialect,
    /// The largest frame accepted; larger frames are refused before the body is read.
    pub msize: u32,
}

impl DecodeConfig {
    /// A configuration for `dialect` with frames of at most `msize` bytes.
    pub const fn new(dialect: Dialect, msize: u32) -> Self {
        DecodeConfig { dialect, msize }
    }
}

/// The fixed 7-byte header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Length of the whole frame, header included.
    pub size: u32,
    /// The type byte (not yet checked against [`MsgType`]).
    pub ty: u8,
    /// The tag.
    pub tag: Tag,
}

impl Header {
    /// Reads the header at the front of `buf`, checking only that 7 bytes are
    /// there and that `size` covers at least the header. A framer uses it to
    /// learn how long the frame is before the rest arrives.
    pub fn peek(buf: &[u8]) -> Result<Header, CodecError> {
        let (h, _) = HeaderWire::read_from_prefix(buf)
            .map_err(|_| CodecError::ShortHeader { got: buf.len() })?;
        let size = h.size.get();
        if (size as usize) < HEADER_LEN {
            return Err(CodecError::SizeBelowHeader(size));
        }
        Ok(Header {
            size,
            ty: h.ty,
            tag: Tag(h.tag.get()),
        })
    }

    #[inline]
    fn write<S: Sink>(w: &mut Writer<S>, size: u32, ty: MsgType, tag: Tag) {
        w.layout(&HeaderWire {
            size: size.into(),
            ty: ty as u8,
            tag: tag.0.into(),
        });
    }
}

/// The most bytes a [`Frame`] may take: decoders return one by value and
/// engines pass them around, so the wide messages are held by reference
/// (`fixed.rs`, [`StatRef`](crate::StatRef)). The largest by-value bodies
/// left are `Tattach`/`Tauth` (two strings, two fids, `n_uname`).
const FRAME_SIZE_LIMIT: usize = 96;

const _: () = assert!(core::mem::size_of::<Frame<'_>>() <= FRAME_SIZE_LIMIT);

/// One 9P message with its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The request's tag (echoed in its reply).
    pub tag: Tag,
    /// The message.
    pub msg: Msg<'a>,
}

impl<'a> Frame<'a> {
    /// A frame of `msg` under `tag`.
    pub fn new(tag: Tag, msg: impl Into<Msg<'a>>) -> Self {
        Frame {
            tag,
            msg: msg.into(),
        }
    }

    /// Decodes exactly one frame: `buf` must hold the whole frame and nothing
    /// else. Strings and payloads in the result borrow from `buf`.
    ///
    /// Checked before the body is read: the header is whole, the size field
    /// equals `buf.len()` and is within `cfg.msize`, the type is known.
    /// Checked while reading: every length against the bytes left, string
    /// encoding, walk element counts; after: no trailing bytes, and
    /// `offset + count` of reads and writes fits in 64 bits.
    pub fn decode(buf: &'a [u8], cfg: DecodeConfig) -> Result<Frame<'a>, CodecError> {
        let header = Header::peek(buf)?;
        if header.size > cfg.msize {
            return Err(CodecError::TooLarge {
                size: header.size,
                msize: cfg.msize,
            });
        }
        if header.size as usize != buf.len() {
            return Err(CodecError::SizeMismatch {
                declared: header.size,
                actual: buf.len(),
            });
        }
        let ty = MsgType::from_u8(header.ty).ok_or(CodecError::UnknownType(header.ty))?;
        let body = buf.get(HEADER_LEN..).unwrap_or(&[]);
        let mut r = Reader::new(body, cfg.dialect);
        let msg = Msg::decode_body(ty, &mut r)?;
        r.finish()?;
        check_range(&msg)?;
        Ok(Frame {
            tag: header.tag,
            msg,
        })
    }

    /// Bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.msg.body_len()
    }

    /// Encodes the frame at the front of `out`; returns the bytes written.
    /// Never allocates. The length is computed once and checked against
    /// `out` once; then each byte is written once.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CodecError> {
        let len = self.encoded_len();
        let have = out.len();
        let dst = out
            .get_mut(..len)
            .ok_or(CodecError::BufferTooSmall { need: len, have })?;
        let left = self.write(len, SliceSink::new(dst))?.left();
        if left != 0 {
            return Err(CodecError::BufferTooSmall {
                need: len,
                have: len - left,
            });
        }
        Ok(len)
    }

    /// Appends the encoded frame to `out` (a `Vec<u8>` with feature
    /// `alloc`, a `bytes::BytesMut` with feature `bytes`): room for the
    /// whole frame is made once and each byte is written once, with no
    /// zero-fill first. On an error `out` is left as it was.
    #[inline]
    pub fn encode_to<B: AppendBuf>(&self, out: &mut B) -> Result<(), CodecError> {
        self.msg.append_frame(self.tag, out)
    }

    /// Writes the header and body, `len` bytes in all, into `sink`.
    #[inline]
    fn write<S: Sink>(&self, len: usize, sink: S) -> Result<S, CodecError> {
        let size = u32::try_from(len).map_err(|_| CodecError::FieldTooLong {
            field: "frame",
            len,
        })?;
        let mut w = Writer::new(sink);
        Header::write(&mut w, size, self.msg.msg_type(), self.tag);
        self.msg.encode_body(&mut w);
        w.finish()
    }
}

/// Appends the frame of one message body `m` (type `ty`, tag `tag`) to
/// `out`: [`Frame::encode_to`] after its one dispatch on the variant.
#[inline]
pub(crate) fn append_body<'a, T: Body<'a>, B: AppendBuf>(
    m: &T,
    ty: MsgType,
    tag: Tag,
    out: &mut B,
) -> Result<(), CodecError> {
    let len = HEADER_LEN + m.body_len();
    let size = u32::try_from(len).map_err(|_| CodecError::FieldTooLong {
        field: "frame",
        len,
    })?;
    let start = out.held();
    out.make_room(len);
    let mut w = Writer::new(AppendSink(&mut *out));
    Header::write(&mut w, size, ty, tag);
    m.encode(&mut w);
    let written = w.finish().map(|sink| sink.0.held() - start);
    match written {
        Ok(n) if n == len => Ok(()),
        Ok(n) => {
            out.cut(start);
            Err(CodecError::BufferTooSmall { need: len, have: n })
        }
        Err(e) => {
            out.cut(start);
            Err(e)
        }
    }
}

/// `offset + count` of a read, write or readdir must not wrap.
fn check_range(msg: &Msg<'_>) -> Result<(), CodecError> {
    let (offset, count) = match msg {
        Msg::Tread(m) => (m.offset, m.count),
        Msg::Treaddir(m) => (m.offset, m.count),
        Msg::Twrite(m) => (m.offset, data_count("Twrite.data", m.data.len())?),
        _ => return Ok(()),
    };
    match offset.checked_add(u64::from(count)) {
        Some(_) => Ok(()),
        None => Err(CodecError::OffsetOverflow { offset, count }),
    }
}

/// The 11 bytes that precede an `Rread` payload of `len` bytes, so the
/// payload can be sent as a second slice without being copied.
pub fn rread_header(tag: Tag, len: usize) -> Result<[u8; RREAD_HEADER_LEN], CodecError> {
    let count = data_count("Rread.data", len)?;
    let size = frame_size(RREAD_HEADER_LEN, len)?;
    let mut out = [0u8; RREAD_HEADER_LEN];
    let mut w = Writer::new(SliceSink::new(&mut out));
    Header::write(&mut w, size, MsgType::Rread, tag);
    w.u32(count);
    w.finish()?;
    Ok(out)
}

/// The 23 bytes that precede a `Twrite` payload of `len` bytes.
pub fn twrite_header(
    tag: Tag,
    fid: Fid,
    offset: u64,
    len: usize,
) -> Result<[u8; TWRITE_HEADER_LEN], CodecError> {
    let count = data_count("Twrite.data", len)?;
    let size = frame_size(TWRITE_HEADER_LEN, len)?;
    let mut out = [0u8; TWRITE_HEADER_LEN];
    let mut w = Writer::new(SliceSink::new(&mut out));
    Header::write(&mut w, size, MsgType::Twrite, tag);
    w.u32(fid.0);
    w.u64(offset);
    w.u32(count);
    w.finish()?;
    Ok(out)
}

fn frame_size(header: usize, payload: usize) -> Result<u32, CodecError> {
    header
        .checked_add(payload)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(CodecError::FieldTooLong {
            field: "frame",
            len: payload,
        })
}
