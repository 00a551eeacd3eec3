//! The bounds-checked cursor the decoder reads with and the writer the
//! encoder writes with, and the `Field` trait that ties a Rust type to its
//! wire form. Every read checks the bytes left before it touches them.

use crate::error::CodecError;
use crate::flags::{
    GetattrMask, LOpenFlags, LockFlags, LockStatus, LockType, OpenMode, QidType, SetattrValid,
};
use crate::layout::QidWire;
use crate::types::{Dialect, Fid, Qid, Tag};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

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

/// A bounds-checked writer: into a caller's slice, or appending to a
/// `BytesMut` (each byte written once, no zero-fill first).
pub(crate) struct Writer<'b> {
    out: Out<'b>,
    pos: usize,
}

enum Out<'b> {
    Slice(&'b mut [u8]),
    #[cfg(feature = "bytes")]
    Bytes {
        buf: &'b mut bytes::BytesMut,
        /// The most bytes this writer may append.
        limit: usize,
    },
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Writer {
            out: Out::Slice(buf),
            pos: 0,
        }
    }

    /// Appends to `buf`, at most `limit` bytes (the frame's encoded length,
    /// reserved beforehand so no append reallocates).
    #[cfg(feature = "bytes")]
    pub(crate) fn append(buf: &'b mut bytes::BytesMut, limit: usize) -> Self {
        Writer {
            out: Out::Bytes { buf, limit },
            pos: 0,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, src: &[u8]) -> Result<(), CodecError> {
        let have = match &self.out {
            Out::Slice(buf) => buf.len(),
            #[cfg(feature = "bytes")]
            Out::Bytes { limit, .. } => *limit,
        };
        let end = self
            .pos
            .checked_add(src.len())
            .ok_or(CodecError::BufferTooSmall {
                need: usize::MAX,
                have,
            })?;
        if end > have {
            return Err(CodecError::BufferTooSmall { need: end, have });
        }
        match &mut self.out {
            Out::Slice(buf) => {
                let dst = buf
                    .get_mut(self.pos..end)
                    .ok_or(CodecError::BufferTooSmall { need: end, have })?;
                dst.copy_from_slice(src);
            }
            #[cfg(feature = "bytes")]
            Out::Bytes { buf, .. } => buf.extend_from_slice(src),
        }
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), CodecError> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), CodecError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), CodecError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), CodecError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn layout<T: IntoBytes + Immutable>(&mut self, v: &T) -> Result<(), CodecError> {
        self.bytes(v.as_bytes())
    }

    pub(crate) fn str(&mut self, field: &'static str, s: &str) -> Result<(), CodecError> {
        let len = u16::try_from(s.len()).map_err(|_| CodecError::FieldTooLong {
            field,
            len: s.len(),
        })?;
        self.u16(len)?;
        self.bytes(s.as_bytes())
    }

    pub(crate) fn data(&mut self, field: &'static str, d: &[u8]) -> Result<(), CodecError> {
        self.u32(data_count(field, d.len())?)?;
        self.bytes(d)
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
    fn write(&self, w: &mut Writer<'_>, field: &'static str) -> Result<(), CodecError>;
}

macro_rules! int_field {
    ($($ty:ty => $m:ident, $len:expr);* $(;)?) => {$(
        impl<'a> Field<'a> for $ty {
            fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
                r.$m(field)
            }
            fn wire_len(&self) -> usize {
                $len
            }
            fn write(&self, w: &mut Writer<'_>, _: &'static str) -> Result<(), CodecError> {
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
            fn write(&self, w: &mut Writer<'_>, field: &'static str) -> Result<(), CodecError> {
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
    fn write(&self, w: &mut Writer<'_>, field: &'static str) -> Result<(), CodecError> {
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
    fn write(&self, w: &mut Writer<'_>, field: &'static str) -> Result<(), CodecError> {
        w.data(field, self)
    }
}

impl From<QidWire> for Qid {
    fn from(q: QidWire) -> Qid {
        Qid {
            ty: QidType::from_bits_retain(q.ty),
            version: q.version.get(),
            path: q.path.get(),
        }
    }
}

impl From<Qid> for QidWire {
    fn from(q: Qid) -> QidWire {
        QidWire {
            ty: q.ty.bits(),
            version: q.version.into(),
            path: q.path.into(),
        }
    }
}

impl<'a> Field<'a> for Qid {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        r.layout::<QidWire>(field).map(Qid::from)
    }
    fn wire_len(&self) -> usize {
        crate::layout::QID_LEN
    }
    fn write(&self, w: &mut Writer<'_>, _: &'static str) -> Result<(), CodecError> {
        w.layout(&QidWire::from(*self))
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
    fn write(&self, w: &mut Writer<'_>, _: &'static str) -> Result<(), CodecError> {
        match self {
            Some(v) => w.u32(*v),
            None => Ok(()),
        }
    }
}
