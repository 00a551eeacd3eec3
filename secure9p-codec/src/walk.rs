//! The name list of `Twalk` and the qid list of `Rwalk`: at most
//! [`MAX_WALK_ELEMENTS`] entries each, held inline so that decoding needs no
//! allocation and names stay borrowed from the frame.

use crate::error::CodecError;
use crate::types::Qid;
use crate::wire::{Field, Reader, Writer};

/// The most names one walk may carry (`MAXWELEM` of the protocol).
pub const MAX_WALK_ELEMENTS: usize = 16;

/// The names of a `Twalk` (`nwname[2] nwname*(wname[s])`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WalkNames<'a> {
    names: [&'a str; MAX_WALK_ELEMENTS],
    len: usize,
}

impl<'a> WalkNames<'a> {
    /// A walk over `names`; fails beyond [`MAX_WALK_ELEMENTS`] names.
    pub fn new(names: &[&'a str]) -> Result<Self, CodecError> {
        let mut out = WalkNames {
            names: [""; MAX_WALK_ELEMENTS],
            len: 0,
        };
        for name in names {
            out.push(name)?;
        }
        Ok(out)
    }

    /// Appends one name; fails when the walk already has [`MAX_WALK_ELEMENTS`].
    pub fn push(&mut self, name: &'a str) -> Result<(), CodecError> {
        let slot = self
            .names
            .get_mut(self.len)
            .ok_or(CodecError::TooManyWalkElements(self.len + 1))?;
        *slot = name;
        self.len += 1;
        Ok(())
    }

    /// The names, in walk order.
    pub fn as_slice(&self) -> &[&'a str] {
        self.names.get(..self.len).unwrap_or(&[])
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the walk names nothing (a fid clone).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl core::fmt::Debug for WalkNames<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// The qids of an `Rwalk` (`nwqid[2] nwqid*(wqid[13])`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WalkQids {
    qids: [Qid; MAX_WALK_ELEMENTS],
    len: usize,
}

impl WalkQids {
    /// A qid list; fails beyond [`MAX_WALK_ELEMENTS`] qids.
    pub fn new(qids: &[Qid]) -> Result<Self, CodecError> {
        let mut out = WalkQids::default();
        for qid in qids {
            out.push(*qid)?;
        }
        Ok(out)
    }

    /// Appends one qid; fails when the list already has [`MAX_WALK_ELEMENTS`].
    pub fn push(&mut self, qid: Qid) -> Result<(), CodecError> {
        let slot = self
            .qids
            .get_mut(self.len)
            .ok_or(CodecError::TooManyWalkElements(self.len + 1))?;
        *slot = qid;
        self.len += 1;
        Ok(())
    }

    /// The qids, one per name walked.
    pub fn as_slice(&self) -> &[Qid] {
        self.qids.get(..self.len).unwrap_or(&[])
    }

    /// How many qids.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for WalkQids {
    fn default() -> Self {
        WalkQids {
            qids: [Qid::default(); MAX_WALK_ELEMENTS],
            len: 0,
        }
    }
}

impl core::fmt::Debug for WalkQids {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

fn read_count(r: &mut Reader<'_>, field: &'static str) -> Result<usize, CodecError> {
    let n = usize::from(r.u16(field)?);
    if n > MAX_WALK_ELEMENTS {
        return Err(CodecError::TooManyWalkElements(n));
    }
    Ok(n)
}

fn write_count(w: &mut Writer<'_>, n: usize) -> Result<(), CodecError> {
    // Both lists hold at most 16 entries, so the count always fits.
    w.u16(u16::try_from(n).unwrap_or(u16::MAX))
}

impl<'a> Field<'a> for WalkNames<'a> {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        let n = read_count(r, field)?;
        let mut out = WalkNames::new(&[])?;
        for _ in 0..n {
            out.push(r.str(field)?)?;
        }
        Ok(out)
    }
    fn wire_len(&self) -> usize {
        2 + self.as_slice().iter().map(|s| 2 + s.len()).sum::<usize>()
    }
    fn write(&self, w: &mut Writer<'_>, field: &'static str) -> Result<(), CodecError> {
        write_count(w, self.len)?;
        self.as_slice().iter().try_for_each(|s| w.str(field, s))
    }
}

impl<'a> Field<'a> for WalkQids {
    fn read(r: &mut Reader<'a>, field: &'static str) -> Result<Self, CodecError> {
        let n = read_count(r, field)?;
        let mut out = WalkQids::default();
        for _ in 0..n {
            out.push(Qid::read(r, field)?)?;
        }
        Ok(out)
    }
    fn wire_len(&self) -> usize {
        2 + self.len * crate::layout::QID_LEN
    }
    fn write(&self, w: &mut Writer<'_>, field: &'static str) -> Result<(), CodecError> {
        write_count(w, self.len)?;
        self.as_slice().iter().try_for_each(|q| q.write(w, field))
    }
}
