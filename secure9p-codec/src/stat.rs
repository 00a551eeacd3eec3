//! The 9P2000 `stat` block (`Rstat`, `Twstat`, and the entries of a 9P2000
//! directory read): `size[2]` then a fixed part and four strings.
//!
//! [`Stat`] is the block as plain values, strings borrowed. Inside a
//! [`Msg`](crate::Msg) the block is a [`StatRef`], two or three words, so
//! that a [`Frame`](crate::Frame) stays small: when decoded it is a view of
//! the frame's bytes (the fixed part read in place through `zerocopy`, the
//! strings validated once and read again on access), and to encode one the
//! caller builds a [`Stat`] and lends it. The same shape as
//! [`WalkNames`](crate::WalkNames). A view is chosen over a reference for
//! decoding because a decoder has nowhere to keep a built `Stat`; the
//! reference is kept for encoding so that nothing is written twice.

use crate::error::CodecError;
use crate::layout::{QidWire, StatWire};
use crate::types::{Dialect, Qid};
use crate::wire::{Field, Reader, Sink, SliceSink, Writer};

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
        let (need, have) = (self.encoded_len(), out.len());
        let dst = out
            .get_mut(..need)
            .ok_or(CodecError::BufferTooSmall { need, have })?;
        let mut w = Writer::new(SliceSink::new(dst));
        self.write_sized(&mut w);
        let left = w.finish()?.left();
        if left != 0 {
            return Err(CodecError::BufferTooSmall {
                need,
                have: need - left,
            });
        }
        Ok(need)
    }

    fn read_sized(r: &mut Reader<'a>) -> Result<Stat<'a>, CodecError> {
        let (fixed, strings) = read_parts(r)?;
        Ok(stat_of(fixed, strings))
    }

    #[inline]
    fn write_sized<S: Sink>(&self, w: &mut Writer<S>) {
        w.len16("stat", self.encoded_len() - 2);
        w.layout(&StatWire {
            ty: self.ty.into(),
            dev: self.dev.into(),
            qid: QidWire::from_qid(self.qid),
            mode: self.mode.into(),
            atime: self.atime.into(),
            mtime: self.mtime.into(),
            length: self.length.into(),
        });
        w.str("stat.name", self.name);
        w.str("stat.uid", self.uid);
        w.str("stat.gid", self.gid);
        w.str("stat.muid", self.muid);
    }
}

/// Reads `size[2]`, the fixed part and the four strings; checks that the
/// size covers exactly those.
/// A stat from its fixed part and its four strings (name, uid, gid, muid).
fn stat_of<'a>(fixed: &StatWire, [name, uid, gid, muid]: [&'a str; 4]) -> Stat<'a> {
    Stat {
        ty: fixed.ty.get(),
        dev: fixed.dev.get(),
        qid: fixed.qid.qid(),
        mode: fixed.mode.get(),
        atime: fixed.atime.get(),
        mtime: fixed.mtime.get(),
        length: fixed.length.get(),
        name,
        uid,
        gid,
        muid,
    }
}

fn read_parts<'a>(r: &mut Reader<'a>) -> Result<(&'a StatWire, [&'a str; 4]), CodecError> {
    let size = usize::from(r.u16("stat.size")?);
    let body = r.take(size, "stat")?;
    let mut b = Reader::new(body, Dialect::Base);
    let fixed: &StatWire = b.view("stat")?;
    let strings = [
        b.str("stat.name")?,
        b.str("stat.uid")?,
        b.str("stat.gid")?,
        b.str("stat.muid")?,
    ];
    if b.remaining() != 0 {
        return Err(CodecError::StatSize {
            declared: size,
            actual: size - b.remaining(),
        });
    }
    Ok((fixed, strings))
}

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// A decoded stat: its fixed part and its four strings as they stand
    /// on the wire (already validated).
    Wire {
        fixed: &'a StatWire,
        strings: &'a [u8],
    },
    /// The caller's stat.
    Value(&'a Stat<'a>),
}

/// The stat of an `Rstat` or `Twstat`: a view of the frame's bytes when
/// decoded, the caller's [`Stat`] when encoding (see the module docs).
#[derive(Clone, Copy)]
pub struct StatRef<'a>(Repr<'a>);

impl<'a> StatRef<'a> {
    /// Lends `stat` to a message being encoded.
    pub const fn new(stat: &'a Stat<'a>) -> Self {
        StatRef(Repr::Value(stat))
    }

    /// The stat as plain values, strings borrowed from the frame or the caller.
    pub fn get(&self) -> Stat<'a> {
        match self.0 {
            Repr::Value(s) => *s,
            Repr::Wire { fixed, strings } => stat_of(fixed, split_strings(strings)),
        }
    }

    /// Bytes of the stat with its `size[2]` (as [`Stat::encoded_len`]).
    pub fn encoded_len(&self) -> usize {
        match self.0 {
            Repr::Value(s) => s.encoded_len(),
            Repr::Wire { strings, .. } => 2 + STAT_FIXED_LEN + strings.len(),
        }
    }
}

/// The four strings of a validated stat. The bytes were checked when the
/// frame was decoded and are borrowed immutably since, so every split
/// succeeds; were one to fail, the strings from there on read as empty.
fn split_strings(mut raw: &[u8]) -> [&str; 4] {
    let mut out = [""; 4];
    for slot in &mut out {
        let Some((len, rest)) = raw.split_first_chunk::<2>() else {
            break;
        };
        let Some((s, rest)) = rest.split_at_checked(usize::from(u16::from_le_bytes(*len))) else {
            break;
        };
        *slot = core::str::from_utf8(s).unwrap_or("");
        raw = rest;
    }
    out
}

impl<'a> From<&'a Stat<'a>> for StatRef<'a> {
    fn from(stat: &'a Stat<'a>) -> Self {
        StatRef::new(stat)
    }
}

impl PartialEq for StatRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for StatRef<'_> {}

impl core::fmt::Debug for StatRef<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.get().fmt(f)
    }
}

/// In `Rstat` and `Twstat` the stat is wrapped in one more `n[2]`.
impl<'a> Field<'a> for StatRef<'a> {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        let n = usize::from(r.u16(field)?);
        let inner = r.take(n, field)?;
        let mut ir = Reader::new(inner, Dialect::Base);
        let (fixed, _) = read_parts(&mut ir)?;
        ir.finish()?;
        let strings = inner.get(2 + STAT_FIXED_LEN..).unwrap_or(&[]);
        Ok(StatRef(Repr::Wire { fixed, strings }))
    }
    fn wire_len(&self) -> usize {
        2 + self.encoded_len()
    }
    #[inline]
    fn write<S: Sink>(&self, w: &mut Writer<S>, field: &'static str) {
        let n = self.encoded_len();
        w.len16(field, n);
        match self.0 {
            Repr::Value(s) => s.write_sized(w),
            Repr::Wire { fixed, strings } => {
                w.len16("stat", n - 2);
                w.layout(fixed);
                w.bytes(strings);
            }
        }
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
