//! Entries of a 9P2000.L `Rreaddir`: `qid[13] offset[8] type[1] name[s]`.
//!
//! [`DirEntries`] walks a received payload without allocating;
//! [`DirEntryWriter`] packs entries into a caller's buffer and never writes a
//! partial entry (the Linux client turns a torn entry into `EIO`).

use crate::error::CodecError;
use crate::types::{Dialect, Qid};
use crate::wire::{Field, Reader, SliceSink, Writer};

/// One directory entry, its name borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The entry's qid.
    pub qid: Qid,
    /// The cookie a client passes to `Treaddir` to resume after this entry.
    pub offset: u64,
    /// The `DT_*` type of the entry (as `d_type` in `getdents(2)`).
    pub ty: u8,
    /// The entry's name.
    pub name: &'a str,
}

impl DirEntry<'_> {
    /// Bytes this entry takes on the wire.
    pub fn encoded_len(&self) -> usize {
        crate::layout::QID_LEN + 8 + 1 + 2 + self.name.len()
    }
}

/// Iterates the entries of an `Rreaddir` payload.
#[derive(Debug, Clone)]
pub struct DirEntries<'a> {
    rest: &'a [u8],
}

impl<'a> DirEntries<'a> {
    /// Iterates the entries in `data`.
    pub fn new(data: &'a [u8]) -> Self {
        DirEntries { rest: data }
    }
}

impl<'a> Iterator for DirEntries<'a> {
    type Item = Result<DirEntry<'a>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut r = Reader::new(self.rest, Dialect::Linux);
        let entry = (|| {
            Ok(DirEntry {
                qid: Qid::read(&mut r, "dirent.qid")?,
                offset: r.u64("dirent.offset")?,
                ty: r.u8("dirent.type")?,
                name: r.str("dirent.name")?,
            })
        })();
        match entry {
            Ok(e) => {
                let used = self.rest.len() - r.remaining();
                self.rest = self.rest.get(used..).unwrap_or(&[]);
                Some(Ok(e))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Packs whole directory entries into a caller's buffer.
pub struct DirEntryWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> DirEntryWriter<'b> {
    /// A writer that fills `buf` (size it to the `Treaddir` count, capped by msize).
    pub fn new(buf: &'b mut [u8]) -> Self {
        DirEntryWriter { buf, len: 0 }
    }

    /// Appends `entry` if it fits whole; returns `false` (writing nothing) if not.
    pub fn push(&mut self, entry: &DirEntry<'_>) -> Result<bool, CodecError> {
        if entry.name.len() > usize::from(u16::MAX) {
            return Err(CodecError::FieldTooLong {
                field: "dirent.name",
                len: entry.name.len(),
            });
        }
        let need = entry.encoded_len();
        let Some(dst) = self
            .len
            .checked_add(need)
            .and_then(|end| self.buf.get_mut(self.len..end))
        else {
            return Ok(false);
        };
        let mut w = Writer::new(SliceSink::new(dst));
        entry.qid.write(&mut w, "dirent.qid");
        w.u64(entry.offset);
        w.u8(entry.ty);
        w.str("dirent.name", entry.name);
        let left = w.finish()?.left();
        if left != 0 {
            return Err(CodecError::BufferTooSmall {
                need,
                have: need - left,
            });
        }
        self.len += need;
        Ok(true)
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed entries, ready to be an `Rreaddir` payload.
    pub fn finish(self) -> &'b [u8] {
        let len = self.len;
        let buf: &'b [u8] = self.buf;
        buf.get(..len).unwrap_or(&[])
    }
}
