//! The bounds-checked cursor the decoder reads with and the writer the
//! encoder writes with, and the `Field` trait that ties a Rust type to its
//! wire form. Every read checks the bytes left before it touches them;
//! every encode learns the frame's length first, checks the destination's
//! room once, and then writes each byte once (no zero-fill, no second pass).

use crate::error::CodecError;
use crate::flags::{
    GetattrMask, LOpenFlags, LockFlags, LockStatus, LockType, OpenMode, QidType, SetattrValid,
};
use crate::layout::QidWire;
use crate::types::{Dialect, Fid, Qid, Tag};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A cursor over the body of one frame.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pub(crate) dialect: Dialect,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], dialect: Dialect) -> Self {
        Reader { buf, dialect }
    }

    /// The bytes not yet read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(CodecError::Truncated {
                field,
                need: n,
                left: self.buf.len(),
            }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        match self.buf.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(*head)
            }
            None => Err(CodecError::Truncated {
                field,
                need: N,
                left: self.buf.len(),
            }),
        }
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        self.array::<1>(field).map(|[b]| b)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, CodecError> {
        self.array(field).map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, CodecError> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A fixed layout, read by value straight from the frame bytes.
    pub(crate) fn layout<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
        field: &'static str,
    ) -> Result<T, CodecError> {
        let bytes = self.take(core::mem::size_of::<T>(), field)?;
        T::read_from_bytes(bytes).map_err(|_| CodecError::Truncated {
            field,
            need: core::mem::size_of::<T>(),
            left: bytes.len(),
        })
    }

    /// A fixed layout, borrowed in place from the frame bytes.
    pub(crate) fn view<T: FromBytes + KnownLayout + Immutable + Unaligned>(
        &mut self,
        field: &'static str,
    ) -> Result<&'a T, CodecError> {
        let bytes = self.take(core::mem::size_of::<T>(), field)?;
        T::ref_from_bytes(bytes).map_err(|_| CodecError::Truncated {
            field,
            need: core::mem::size_of::<T>(),
            left: bytes.len(),
        })
    }

    /// A string: `len[2]` then that many bytes of UTF-8 without NUL.
    pub(crate) fn str(&mut self, field: &'static str) -> Result<&'a str, CodecError> {
        let len = self.u16(field)?;
        let bytes = self.take(usize::from(len), field)?;
        if bytes.contains(&0) {
            return Err(CodecError::NulInString(field));
        }
        core::str::from_utf8(bytes).map_err(|_| CodecError::InvalidUtf8(field))
    }

    /// A payload: `count[4]` then that many bytes, borrowed from the frame.
    pub(crate) fn data(&mut self, field: &'static str) -> Result<&'a [u8], CodecError> {
        let count = self.u32(field)?;
        let count = usize::try_from(count).map_err(|_| CodecError::Truncated {
            field,
            need: usize::MAX,
            left: self.buf.len(),
        })?;
        self.take(count, field)
    }

    /// Fails if any bytes are left after the last field.
    pub(crate) fn finish(self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes(self.buf.len()))
        }
    }
}

/// Where an encoder's bytes go: the front of a caller's slice, or the end
/// of a growable buffer (see [`AppendBuf`]). The frame's length is known
/// and checked against the room before the first `put`, so a put never
/// fails and each byte of the destination is written once; a destination
/// that is short anyway (the length and the writer disagreeing, a bug)
/// shows as fewer bytes written than the length, which the caller checks.
pub(crate) trait Sink {
    /// Appends `src`.
    fn put(&mut self, src: &[u8]);
}

/// Writes into a caller's slice, front to back.
pub(crate) struct SliceSink<'b> {
    rest: &'b mut [u8],
}

impl<'b> SliceSink<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        SliceSink { rest: buf }
    }

    /// Bytes of the slice not yet written.
    pub(crate) fn left(&self) -> usize {
        self.rest.len()
    }
}

impl Sink for SliceSink<'_> {
    #[inline]
    fn put(&mut self, src: &[u8]) {
        // Written short (nothing put) when it does not fit: the caller
        // sees fewer bytes than it asked for.
        if src.len() <= self.rest.len() {
            let (dst, tail) = core::mem::take(&mut self.rest).split_at_mut(src.len());
            dst.copy_from_slice(src);
            self.rest = tail;
        }
    }
}

/// A growable buffer a frame can be appended to, without zero-filling it
/// first: `Vec<u8>` (feature `alloc`) and `bytes::BytesMut` (feature
/// `bytes`). See [`Frame::encode_to`](crate::Frame::encode_to).
pub trait AppendBuf: sealed::Growable {}

pub(crate) mod sealed {
    /// What the encoder needs of an [`AppendBuf`](super::AppendBuf); sealed
    /// so the set of buffers stays the codec's to choose.
    pub trait Growable {
        /// Bytes held.
        fn held(&self) -> usize;
        /// Makes room for `n` more bytes.
        fn make_room(&mut self, n: usize);
        /// Appends `src` (room already made).
        fn append(&mut self, src: &[u8]);
        /// Drops everything after the first `len` bytes.
        fn cut(&mut self, len: usize);
    }
}

/// An [`AppendBuf`] over a growable byte buffer with `Vec`'s methods.
macro_rules! append_buf {
    ($feature:literal, $ty:ty) => {
        #[cfg(feature = $feature)]
        impl sealed::Growable for $ty {
            #[inline]
            fn held(&self) -> usize {
                self.len()
            }
            #[inline]
            fn make_room(&mut self, n: usize) {
                self.reserve(n);
            }
            #[inline]
            fn append(&mut self, src: &[u8]) {
                self.extend_from_slice(src);
            }
            #[inline]
            fn cut(&mut self, len: usize) {
                self.truncate(len);
            }
        }

        #[cfg(feature = $feature)]
        impl AppendBuf for $ty {}
    };
}

append_buf!("alloc", alloc::vec::Vec<u8>);
append_buf!("bytes", bytes::BytesMut);

/// Appends to an [`AppendBuf`] whose room was made beforehand.
pub(crate) struct AppendSink<'b, B: AppendBuf>(pub(crate) &'b mut B);

impl<B: AppendBuf> Sink for AppendSink<'_, B> {
    #[inline]
    fn put(&mut self, src: &[u8]) {
        self.0.append(src);
    }
}

/// The encoder's writer: fields in wire order into a [`Sink`]. A field
/// that does not fit its wire length (a string over 65535 bytes, a payload
/// over 4 GiB) is remembered and refuses the frame at [`Writer::finish`].
pub(crate) struct Writer<S> {
    sink: S,
    failed: Option<CodecError>,
}

impl<S: Sink> Writer<S> {
    pub(crate) fn new(sink: S) -> Self {
        Writer { sink, failed: None }
    }

    /// The sink, or the first field that did not fit.
    pub(crate) fn finish(self) -> Result<S, CodecError> {
        match self.failed {
            None => Ok(self.sink),
            Some(e) => Err(e),
        }
    }

    #[cold]
    fn fail(&mut self, e: CodecError) {
        self.failed.get_or_insert(e);
    }

    #[inline]
    pub(crate) fn bytes(&mut self, src: &[u8]) {
        self.sink.put(src);
    }

    #[inline]
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    #[inline]
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    #[inline]
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    #[inline]
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    #[inline]
    pub(crate) fn layout<T: IntoBytes + Immutable>(&mut self, v: &T) {
        self.bytes(v.as_bytes());
    }

    /// A `size[2]` or string length: fails the frame beyond 65535.
    #[inline]
    pub(crate) fn len16(&mut self, field: &'static str, len: usize) {
        match u16::try_from(len) {
            Ok(n) => self.u16(n),
            Err(_) => self.fail(CodecError::FieldTooLong { field, len }),
        }
    }

    #[inline]
    pub(crate) fn str(&mut self, field: &'static str, s: &str) {
        self.len16(field, s.len());
        self.bytes(s.as_bytes());
    }

    #[inline]
    pub(crate) fn data(&mut self, field: &'static str, d: &[u8]) {
        match data_count(field, d.len()) {
            Ok(n) => self.u32(n),
            Err(e) => self.fail(e),
        }
        self.bytes(d);
    }
}

/// The `count[4]` of a payload of `len` bytes.
pub(crate) fn data_count(field: &'static str, len: usize) -> Result<u32, CodecError> {
    u32::try_from(len).map_err(|_| CodecError::FieldTooLong { field, len })
}

/// A Rust type with a wire form: how to read it, how long it is, how to write it.
pub(crate) trait Field<'a>: Sized {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError>;
    fn wire_len(&self) -> usize;
    fn write<S: Sink>(&self, w: &mut Writer<S>, field: &'static str);
}

macro_rules! int_field {
    ($($ty:ty => $m:ident, $len:expr);* $(;)?) => {$(
        impl<'a> Field<'a> for $ty {
            #[inline]
            fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
                r.$m(field)
            }
            fn wire_len(&self) -> usize {
                $len
            }
            #[inline]
            fn write<S: Sink>(&self, w: &mut Writer<S>, _: &'static str) {
                w.$m(*self)
            }
        }
    )*};
}

int_field! { u8 => u8, 1; u16 => u16, 2; u32 => u32, 4; u64 => u64, 8 }

macro_rules! newtype_field {
    ($($ty:ty => $inner:ty, $wrap:expr, $unwrap:expr);* $(;)?) => {$(
        impl<'a> Field<'a> for $ty {
            fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
                <$inner as Field>::read(r, field).map($wrap)
            }
            fn wire_len(&self) -> usize {
                core::mem::size_of::<$inner>()
            }
            #[inline]
            fn write<S: Sink>(&self, w: &mut Writer<S>, field: &'static str) {
                let inner: $inner = $unwrap(self);
                inner.write(w, field)
            }
        }
    )*};
}

newtype_field! {
    Fid => u32, Fid, |v: &Fid| v.0;
    Tag => u16, Tag, |v: &Tag| v.0;
    LockType => u8, LockType, |v: &LockType| v.0;
    LockStatus => u8, LockStatus, |v: &LockStatus| v.0;
    QidType => u8, QidType::from_bits_retain, |v: &QidType| v.bits();
    OpenMode => u8, OpenMode::from_bits_retain, |v: &OpenMode| v.bits();
    LOpenFlags => u32, LOpenFlags::from_bits_retain, |v: &LOpenFlags| v.bits();
    LockFlags => u32, LockFlags::from_bits_retain, |v: &LockFlags| v.bits();
    GetattrMask => u64, GetattrMask::from_bits_retain, |v: &GetattrMask| v.bits();
    SetattrValid => u32, SetattrValid::from_bits_retain, |v: &SetattrValid| v.bits();
}

impl<'a> Field<'a> for &'a str {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        r.str(field)
    }
    fn wire_len(&self) -> usize {
        2 + self.len()
    }
    #[inline]
    fn write<S: Sink>(&self, w: &mut Writer<S>, field: &'static str) {
        w.str(field, self)
    }
}

impl<'a> Field<'a> for &'a [u8] {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        r.data(field)
    }
    fn wire_len(&self) -> usize {
        4 + self.len()
    }
    #[inline]
    fn write<S: Sink>(&self, w: &mut Writer<S>, field: &'static str) {
        w.data(field, self)
    }
}

impl From<QidWire> for Qid {
    fn from(q: QidWire) -> Qid {
        q.qid()
    }
}

impl From<Qid> for QidWire {
    fn from(q: Qid) -> QidWire {
        QidWire::from_qid(q)
    }
}

impl<'a> Field<'a> for Qid {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        r.layout::<QidWire>(field).map(Qid::from)
    }
    fn wire_len(&self) -> usize {
        crate::layout::QID_LEN
    }
    #[inline]
    fn write<S: Sink>(&self, w: &mut Writer<S>, _: &'static str) {
        w.layout(&QidWire::from_qid(*self))
    }
}

/// `n_uname[4]`: present in 9P2000.L `Tauth`/`Tattach`, absent in 9P2000.
impl<'a> Field<'a> for Option<u32> {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        match r.dialect {
            Dialect::Linux => r.u32(field).map(Some),
            Dialect::Base => Ok(None),
        }
    }
    fn wire_len(&self) -> usize {
        if self.is_some() { 4 } else { 0 }
    }
    #[inline]
    fn write<S: Sink>(&self, w: &mut Writer<S>, _: &'static str) {
        if let Some(v) = self {
            w.u32(*v);
        }
    }
}
