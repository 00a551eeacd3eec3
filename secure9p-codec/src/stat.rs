//! The 9P2000 `stat` block (`Rstat`, `Twstat`, and the entries of a 9P2000
//! directory read): `size[2]` then a fixed part and four strings.

use crate::error::CodecError;
use crate::layout::{QidWire, StatWire};
use crate::types::{Dialect, Qid};
use crate::wire::{Field, Reader, Writer};

/// Length of the fixed part of a stat after its `size[2]`.
const STAT_FIXED_LEN: usize = core::mem::size_of::<StatWire>();

/// A 9P2000 directory entry (`stat(5)`), strings borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    /// Server type (kernel use).
    pub ty: u16,
    /// Server subtype (kernel use).
    pub dev: u32,
    /// The file's qid.
    pub qid: Qid,
    /// Permissions and `DM*` mode bits.
    pub mode: u32,
    /// Last access time, seconds since the epoch.
    pub atime: u32,
    /// Last modification time, seconds since the epoch.
    pub mtime: u32,
    /// Length in bytes.
    pub length: u64,
    /// Last element of the path.
    pub name: &'a str,
    /// Owner name.
    pub uid: &'a str,
    /// Group name.
    pub gid: &'a str,
    /// Name of the last user to modify the file.
    pub muid: &'a str,
}

impl<'a> Stat<'a> {
    /// Bytes this stat takes on the wire, its `size[2]` included.
    pub fn encoded_len(&self) -> usize {
        2 + STAT_FIXED_LEN
            + [self.name, self.uid, self.gid, self.muid]
                .iter()
                .map(|s| 2 + s.len())
                .sum::<usize>()
    }

    /// Decodes one stat from the front of `buf`; returns it and the bytes after it.
    pub fn decode(buf: &'a [u8]) -> Result<(Stat<'a>, &'a [u8]), CodecError> {
        let mut r = Reader::new(buf, Dialect::Base);
        let stat = Self::read_sized(&mut r)?;
        let used = buf.len() - r.remaining();
        Ok((stat, buf.get(used..).unwrap_or(&[])))
    }

    /// Encodes this stat (with its `size[2]`) at the front of `out`; returns the bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CodecError> {
        let need = self.encoded_len();
        if out.len() < need {
            return Err(CodecError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        let mut w = Writer::new(out);
        self.write_sized(&mut w)?;
        Ok(w.position())
    }

    fn read_sized(r: &mut Reader<'a>) -> Result<Stat<'a>, CodecError> {
        let size = usize::from(r.u16("stat.size")?);
        let body = r.take(size, "stat")?;
        let mut b = Reader::new(body, Dialect::Base);
        let fixed: StatWire = b.layout("stat")?;
        let stat = Stat {
            ty: fixed.ty.get(),
            dev: fixed.dev.get(),
            qid: Qid::from(fixed.qid),
            mode: fixed.mode.get(),
            atime: fixed.atime.get(),
            mtime: fixed.mtime.get(),
            length: fixed.length.get(),
            name: b.str("stat.name")?,
            uid: b.str("stat.uid")?,
            gid: b.str("stat.gid")?,
            muid: b.str("stat.muid")?,
        };
        if b.remaining() != 0 {
            return Err(CodecError::StatSize {
                declared: size,
                actual: size - b.remaining(),
            });
        }
        Ok(stat)
    }

    fn write_sized(&self, w: &mut Writer<'_>) -> Result<(), CodecError> {
        let size = self.encoded_len() - 2;
        w.u16(u16::try_from(size).map_err(|_| CodecError::FieldTooLong {
            field: "stat",
            len: size,
        })?)?;
        w.layout(&StatWire {
            ty: self.ty.into(),
            dev: self.dev.into(),
            qid: QidWire::from(self.qid),
            mode: self.mode.into(),
            atime: self.atime.into(),
            mtime: self.mtime.into(),
            length: self.length.into(),
        })?;
        w.str("stat.name", self.name)?;
        w.str("stat.uid", self.uid)?;
        w.str("stat.gid", self.gid)?;
        w.str("stat.muid", self.muid)
    }
}

/// In `Rstat` and `Twstat` the stat is wrapped in one more `n[2]`.
impl<'a> Field<'a> for Stat<'a> {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        let n = usize::from(r.u16(field)?);
        let inner = r.take(n, field)?;
        let mut ir = Reader::new(inner, Dialect::Base);
        let stat = Stat::read_sized(&mut ir)?;
        ir.finish()?;
        Ok(stat)
    }
    fn wire_len(&self) -> usize {
        2 + self.encoded_len()
    }
    fn write(&self, w: &mut Writer<'_>, field: &'static str) -> Result<(), CodecError> {
        let n = self.encoded_len();
        w.u16(u16::try_from(n).map_err(|_| CodecError::FieldTooLong { field, len: n })?)?;
        self.write_sized(w)
    }
}

/// Iterates the stats packed in a 9P2000 directory read, without allocating.
#[derive(Debug, Clone)]
pub struct Stats<'a> {
    rest: &'a [u8],
}

impl<'a> Stats<'a> {
    /// Iterates the stats in `data` (the payload of an `Rread` on a directory).
    pub fn new(data: &'a [u8]) -> Self {
        Stats { rest: data }
    }
}

impl<'a> Iterator for Stats<'a> {
    type Item = Result<Stat<'a>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Stat::decode(self.rest) {
            Ok((stat, rest)) => {
                self.rest = rest;
                Some(Ok(stat))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}
