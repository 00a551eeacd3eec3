//! [`Replies`]: the reply bytes an engine appends to, where the payload of
//! a large `Rread` may be a shared slice of the file's own buffer instead
//! of a copy.
//!
//! An engine writes whole reply frames into [`Replies::buf`]. A read whose
//! [`Filesystem`](crate::Filesystem) hands out its data as [`Bytes`]
//! writes only the frame's header there and sets the payload as the
//! *tail* ([`Replies::push_shared`]): the bytes that follow the buffer.
//! The transport then writes the buffer and the tail in one vectored
//! write, and the payload never passes through a reply buffer. Anything
//! appended after a tail first copies the tail into the buffer, so the
//! frames stay in order whatever the engine does; the runners end a
//! batch at a tail so that this copy does not happen on their path.
//!
//! [`FileBytes`] is the file side: contents that are written in place and
//! handed out as shared slices.

use crate::error::FsError;
use alloc::vec::Vec;
use bytes::Bytes;
use secure9p_codec::{Tag, rread_header};

/// Reads of at least this many bytes ask the file system or node for a
/// shared payload first ([`Filesystem::read_shared`](crate::Filesystem::read_shared),
/// [`Node::read_shared`](crate::Node::read_shared)); smaller ones are
/// copied into the reply buffer, which costs less than a second buffer to
/// write and lets them join the other replies of a burst.
pub const SHARE_MIN: u32 = 16 * 1024;

/// Reply frames due now: a buffer of whole frames and, after it, at most
/// one shared payload (see the [module docs](self)).
#[derive(Debug, Default, Clone)]
pub struct Replies {
    buf: Vec<u8>,
    tail: Option<Bytes>,
}

impl Replies {
    /// No replies, no allocation yet.
    pub const fn new() -> Self {
        Replies {
            buf: Vec::new(),
            tail: None,
        }
    }

    /// The frame buffer to append whole frames to. A tail set before is
    /// first copied into it, so what is appended follows it.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        self.settle();
        &mut self.buf
    }

    /// Copies a tail into the buffer, so that the next bytes follow it.
    fn settle(&mut self) {
        if let Some(tail) = self.tail.take() {
            self.buf.extend_from_slice(&tail);
        }
    }

    /// Ends the bytes with `payload`, shared rather than copied (the
    /// payload of the frame whose header the buffer ends with).
    pub fn push_shared(&mut self, payload: Bytes) {
        self.settle();
        if !payload.is_empty() {
            self.tail = Some(payload);
        }
    }

    /// Bytes in all, the tail included.
    pub fn len(&self) -> usize {
        self.buf.len() + self.tail.as_ref().map_or(0, Bytes::len)
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes end with a shared payload.
    pub fn has_tail(&self) -> bool {
        self.tail.is_some()
    }

    /// The frame buffer as it is (without the tail).
    pub fn head(&self) -> &[u8] {
        &self.buf
    }

    /// The shared payload that follows [`head`](Replies::head), if any.
    pub fn tail(&self) -> Option<&Bytes> {
        self.tail.as_ref()
    }

    /// Keeps the first `len` bytes (tail included in the count).
    pub fn truncate(&mut self, len: usize) {
        if len <= self.buf.len() {
            self.tail = None;
            self.buf.truncate(len);
        } else if let Some(tail) = &mut self.tail {
            tail.truncate(len - self.buf.len());
        }
    }

    /// Drops every byte, keeping the buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.tail = None;
    }

    /// The frame buffer and the tail that follows it.
    pub fn into_parts(self) -> (Vec<u8>, Option<Bytes>) {
        (self.buf, self.tail)
    }

    /// Every byte in one vector (the tail copied in).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.settle();
        self.buf
    }

    /// Appends the `Rread` of `tag` whose data is `data` (cut to `count`,
    /// what the request may get), the data shared as the tail: both
    /// engines' answer to a read their file system or node shares.
    pub(crate) fn push_rread(
        &mut self,
        tag: Tag,
        mut data: Bytes,
        count: u32,
    ) -> Result<(), FsError> {
        data.truncate(count as usize);
        let header = rread_header(tag, data.len()).map_err(|_| FsError::Io)?;
        self.buf().extend_from_slice(&header);
        self.push_shared(data);
        Ok(())
    }
}

/// Runs `f` on replies made of `out` and puts every byte back into `out`
/// (a tail copied in): the `Vec` entry points of the engines.
pub(crate) fn into_vec<R>(out: &mut Vec<u8>, f: impl FnOnce(&mut Replies) -> R) -> R {
    let mut replies = Replies::from(core::mem::take(out));
    let r = f(&mut replies);
    *out = replies.into_vec();
    r
}

impl From<Vec<u8>> for Replies {
    fn from(buf: Vec<u8>) -> Self {
        Replies { buf, tail: None }
    }
}

/// A file's contents: a vector while it is written, a shared buffer once a
/// read has handed out a slice of it ([`FileBytes::slice`]). The next
/// change takes the vector back without a copy, unless a slice is still
/// held (on its way to a socket): then the change copies the contents
/// once, and the slice keeps the bytes it was given.
#[derive(Debug, Default, Clone)]
pub struct FileBytes {
    vec: Vec<u8>,
    /// The contents while shared (`vec` is then empty).
    shared: Option<Bytes>,
}

impl FileBytes {
    /// The length of the contents.
    pub fn len(&self) -> usize {
        self.shared.as_ref().map_or(self.vec.len(), Bytes::len)
    }

    /// Whether the contents are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The contents to change in place.
    pub fn vec_mut(&mut self) -> &mut Vec<u8> {
        if let Some(b) = self.shared.take() {
            self.vec = b.try_into_mut().map_or_else(|b| b.to_vec(), Vec::from);
        }
        &mut self.vec
    }

    /// Up to `count` bytes at `offset` (fewer at the end, none past it),
    /// shared with the file rather than copied.
    pub fn slice(&mut self, offset: u64, count: u32) -> Bytes {
        if self.shared.is_none() {
            self.shared = Some(Bytes::from(core::mem::take(&mut self.vec)));
        }
        self.try_slice(offset, count).unwrap_or_default()
    }

    /// A shared slice like [`slice`](FileBytes::slice), through `&self`:
    /// `None` while the contents are a vector (only `slice` turns them
    /// into a shared buffer).
    pub fn try_slice(&self, offset: u64, count: u32) -> Option<Bytes> {
        let all = self.shared.as_ref()?;
        let start = usize::try_from(offset).map_or(all.len(), |o| o.min(all.len()));
        let end = start.saturating_add(count as usize).min(all.len());
        Some(all.slice(start..end))
    }

    /// Whether the contents are a shared buffer now.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The contents.
    pub fn as_slice(&self) -> &[u8] {
        self.shared.as_deref().unwrap_or(&self.vec)
    }
}

impl From<Vec<u8>> for FileBytes {
    fn from(vec: Vec<u8>) -> Self {
        FileBytes { vec, shared: None }
    }
}

#[cfg(test)]
mod tests {
    use super::{FileBytes, Replies};
    use alloc::vec;
    use bytes::Bytes;

    #[test]
    fn a_tail_follows_the_buffer_and_is_copied_in_before_more_frames() {
        let mut r = Replies::new();
        r.buf().extend_from_slice(b"head");
        r.push_shared(Bytes::from_static(b"TAIL"));
        assert_eq!((r.head(), r.len()), (&b"head"[..], 8));
        assert_eq!(r.tail().map(|t| &t[..]), Some(&b"TAIL"[..]));
        r.buf().extend_from_slice(b"next");
        assert!(!r.has_tail());
        assert_eq!(r.clone().into_vec(), b"headTAILnext");
        r.push_shared(Bytes::from_static(b"12"));
        r.push_shared(Bytes::from_static(b"34"));
        assert_eq!(r.head(), b"headTAILnext12");
        assert_eq!(r.into_vec(), b"headTAILnext1234");
    }

    #[test]
    fn truncate_counts_the_tail() {
        let mut r = Replies::from(vec![1, 2, 3]);
        r.push_shared(Bytes::from_static(&[4, 5, 6]));
        r.truncate(5);
        assert_eq!(r.clone().into_vec(), [1, 2, 3, 4, 5]);
        r.truncate(2);
        assert!(!r.has_tail());
        assert_eq!(r.into_vec(), [1, 2]);
        let mut e = Replies::new();
        e.push_shared(Bytes::new());
        assert!(e.is_empty() && !e.has_tail());
    }

    #[test]
    fn file_bytes_share_slices_and_copy_only_while_one_is_held() {
        let mut f = FileBytes::from(vec![1u8, 2, 3, 4, 5]);
        let s = f.slice(1, 3);
        assert_eq!(&s[..], [2, 3, 4]);
        assert_eq!((f.slice(4, 10).len(), f.slice(9, 1).len()), (1, 0));
        assert_eq!(f.slice(u64::MAX, u32::MAX).len(), 0);
        f.vec_mut()[1] = 9;
        assert_eq!(&s[..], [2, 3, 4], "a held slice keeps its bytes");
        assert_eq!(f.as_slice(), [1, 9, 3, 4, 5]);
        drop(s);
        // Shared and no slice held: the change reuses the allocation.
        let at = f.slice(0, 5).as_ptr();
        assert_eq!(f.vec_mut().as_ptr(), at, "no copy when no slice is held");
        f.vec_mut().push(6);
        assert_eq!((f.len(), f.as_slice()[0]), (6, 1));
    }
}
