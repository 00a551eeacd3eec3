//! The name list of `Twalk` and the qid list of `Rwalk`: at most
//! [`MAX_WALK_ELEMENTS`] entries each. A decoded list is a view of the frame
//! bytes (validated once, iterated without copying); a list to encode
//! borrows the caller's slice. Either way the value is two words, so a
//! decoded [`Frame`](crate::Frame) stays small and cheap to return.

use crate::error::CodecError;
use crate::layout::{QID_LEN, QidWire};
use crate::types::Qid;
use crate::wire::{Field, Reader, Sink, Writer};
use zerocopy::FromBytes;

/// The most names one walk may carry (`MAXWELEM` of the protocol).
pub const MAX_WALK_ELEMENTS: usize = 16;

#[derive(Clone, Copy)]
enum Names<'a> {
    /// `count` names as they stand on the wire (already validated).
    Wire { raw: &'a [u8], count: usize },
    /// The caller's names.
    List(&'a [&'a str]),
}

/// The names of a `Twalk` (`nwname[2] nwname*(wname[s])`).
#[derive(Clone, Copy)]
pub struct WalkNames<'a>(Names<'a>);

impl<'a> WalkNames<'a> {
    /// A walk over `names`; fails beyond [`MAX_WALK_ELEMENTS`] names.
    pub fn new(names: &'a [&'a str]) -> Result<Self, CodecError> {
        if names.len() > MAX_WALK_ELEMENTS {
            return Err(CodecError::TooManyWalkElements(names.len()));
        }
        Ok(WalkNames(Names::List(names)))
    }

    /// A walk of no names (clones the fid).
    pub const fn empty() -> Self {
        WalkNames(Names::List(&[]))
    }

    /// How many names.
    pub fn len(&self) -> usize {
        match self.0 {
            Names::Wire { count, .. } => count,
            Names::List(l) => l.len(),
        }
    }

    /// Whether the walk names nothing (a fid clone).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names, in walk order, borrowed from the frame or the caller.
    pub fn iter(&self) -> WalkNamesIter<'a> {
        WalkNamesIter(match self.0 {
            Names::Wire { raw, count } => NamesIter::Wire { raw, left: count },
            Names::List(l) => NamesIter::List(l.iter()),
        })
    }
}

impl<'a> IntoIterator for WalkNames<'a> {
    type Item = &'a str;
    type IntoIter = WalkNamesIter<'a>;
    fn into_iter(self) -> WalkNamesIter<'a> {
        self.iter()
    }
}

enum NamesIter<'a> {
    Wire { raw: &'a [u8], left: usize },
    List(core::slice::Iter<'a, &'a str>),
}

/// Iterator over the names of a [`WalkNames`].
pub struct WalkNamesIter<'a>(NamesIter<'a>);

impl<'a> Iterator for WalkNamesIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match &mut self.0 {
            NamesIter::List(it) => it.next().copied(),
            NamesIter::Wire { raw, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                // The bytes were validated when the frame was decoded; a
                // failure here would mean they changed, so end the walk.
                let (len, rest) = raw.split_first_chunk::<2>()?;
                let (name, rest) = rest.split_at_checked(usize::from(u16::from_le_bytes(*len)))?;
                *raw = rest;
                core::str::from_utf8(name).ok()
            }
        }
    }
}

impl PartialEq for WalkNames<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for WalkNames<'_> {}

impl core::fmt::Debug for WalkNames<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[derive(Clone, Copy)]
enum Qids<'a> {
    /// Qids as they stand on the wire: 13 bytes each.
    Wire(&'a [u8]),
    /// The caller's qids.
    List(&'a [Qid]),
}

/// The qids of an `Rwalk` (`nwqid[2] nwqid*(wqid[13])`).
#[derive(Clone, Copy)]
pub struct WalkQids<'a>(Qids<'a>);

impl<'a> WalkQids<'a> {
    /// A qid list; fails beyond [`MAX_WALK_ELEMENTS`] qids.
    pub fn new(qids: &'a [Qid]) -> Result<Self, CodecError> {
        if qids.len() > MAX_WALK_ELEMENTS {
            return Err(CodecError::TooManyWalkElements(qids.len()));
        }
        Ok(WalkQids(Qids::List(qids)))
    }

    /// How many qids.
    pub fn len(&self) -> usize {
        match self.0 {
            Qids::Wire(raw) => raw.len() / QID_LEN,
            Qids::List(l) => l.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The qid of the `i`-th name walked.
    pub fn get(&self, i: usize) -> Option<Qid> {
        match self.0 {
            Qids::Wire(raw) => {
                let start = i.checked_mul(QID_LEN)?;
                let bytes = raw.get(start..start.checked_add(QID_LEN)?)?;
                QidWire::read_from_bytes(bytes).ok().map(Qid::from)
            }
            Qids::List(l) => l.get(i).copied(),
        }
    }

    /// The qids, one per name walked.
    pub fn iter(&self) -> impl Iterator<Item = Qid> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl Default for WalkQids<'_> {
    fn default() -> Self {
        WalkQids(Qids::List(&[]))
    }
}

impl PartialEq for WalkQids<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for WalkQids<'_> {}

impl core::fmt::Debug for WalkQids<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

fn read_count(r: &mut Reader<'_>, field: &'static str) -> Result<usize, CodecError> {
    let n = usize::from(r.u16(field)?);
    if n > MAX_WALK_ELEMENTS {
        return Err(CodecError::TooManyWalkElements(n));
    }
    Ok(n)
}

#[inline]
fn write_count<S: Sink>(w: &mut Writer<S>, n: usize) {
    // Both lists hold at most 16 entries (checked at construction), so the
    // count always fits.
    w.u16(u16::try_from(n).unwrap_or(u16::MAX));
}

impl<'a> Field<'a> for WalkNames<'a> {
    #[inline]
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        let count = read_count(r, field)?;
        let start = r.rest();
        for _ in 0..count {
            r.str(field)?;
        }
        let used = start.len() - r.remaining();
        let raw = start.get(..used).unwrap_or(&[]);
        Ok(WalkNames(Names::Wire { raw, count }))
    }
    fn wire_len(&self) -> usize {
        2 + match self.0 {
            Names::Wire { raw, .. } => raw.len(),
            Names::List(l) => l.iter().map(|s| 2 + s.len()).sum::<usize>(),
        }
    }
    #[inline]
    fn write<S: Sink>(&self, w: &mut Writer<S>, field: &'static str) {
        write_count(w, self.len());
        match self.0 {
            Names::Wire { raw, .. } => w.bytes(raw),
            Names::List(l) => l.iter().for_each(|s| w.str(field, s)),
        }
    }
}

impl<'a> Field<'a> for WalkQids<'a> {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        let count = read_count(r, field)?;
        let raw = r.take(count * QID_LEN, field)?;
        Ok(WalkQids(Qids::Wire(raw)))
    }
    fn wire_len(&self) -> usize {
        2 + self.len() * QID_LEN
    }
    #[inline]
    fn write<S: Sink>(&self, w: &mut Writer<S>, field: &'static str) {
        write_count(w, self.len());
        match self.0 {
            Qids::Wire(raw) => w.bytes(raw),
            Qids::List(l) => l.iter().for_each(|q| q.write(w, field)),
        }
    }
}
