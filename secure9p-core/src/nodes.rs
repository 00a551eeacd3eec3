//! Ready-made nodes for synthetic namespaces: static and generated
//! read-only files, the bounded append-only ring, and control files.

use crate::error::FsError;
use crate::node::{Handle, Io, IoCtx, Node, NodeAttr, NodeKind, slice_at};
use crate::replies::FileBytes;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;
use bytes::Bytes;

/// A read-only file with fixed contents.
#[derive(Debug, Clone)]
pub struct StaticFile {
    data: Vec<u8>,
}

impl StaticFile {
    /// A file holding `data`.
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        StaticFile { data: data.into() }
    }
}

impl Node for StaticFile {
    fn kind(&self) -> NodeKind {
        NodeKind::ReadOnly
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o444,
            size: self.data.len() as u64,
            ..NodeAttr::default()
        }
    }
    fn read(
        &mut self,
        _: &IoCtx<'_>,
        _: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        out.extend_from_slice(slice_at(&self.data, offset, count));
        Io::Ready(Ok(()))
    }
    fn try_read(
        &self,
        _: &IoCtx<'_>,
        _: &Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        out.extend_from_slice(slice_at(&self.data, offset, count));
        Some(Ok(()))
    }
}

/// The generator of a [`GeneratedFile`].
pub type Generator = Box<dyn FnMut(&IoCtx<'_>) -> Vec<u8> + Send + Sync>;

/// A read-only file whose contents are generated when it is opened; each
/// open reads one consistent snapshot.
pub struct GeneratedFile {
    generate: Generator,
}

impl GeneratedFile {
    /// A file whose contents `generate` produces at each open.
    pub fn new(generate: impl FnMut(&IoCtx<'_>) -> Vec<u8> + Send + Sync + 'static) -> Self {
        GeneratedFile {
            generate: Box::new(generate),
        }
    }
}

impl core::fmt::Debug for GeneratedFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GeneratedFile").finish_non_exhaustive()
    }
}

impl Node for GeneratedFile {
    fn kind(&self) -> NodeKind {
        NodeKind::ReadOnly
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o444,
            ..NodeAttr::default()
        }
    }
    fn open(&mut self, ctx: &IoCtx<'_>, handle: &mut Handle) -> Result<(), FsError> {
        handle.data = (self.generate)(ctx);
        Ok(())
    }
    fn read(
        &mut self,
        _: &IoCtx<'_>,
        h: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        out.extend_from_slice(slice_at(&h.data, offset, count));
        Io::Ready(Ok(()))
    }
    // The snapshot an open made lives in the handle: reading it changes
    // nothing.
    fn try_read(
        &self,
        _: &IoCtx<'_>,
        h: &Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        out.extend_from_slice(slice_at(&h.data, offset, count));
        Some(Ok(()))
    }
}

/// An append-only file kept as a bounded ring with absolute offsets.
///
/// Writes ignore their offset and are appended whole (a write larger than
/// `max_write` fails with `EFBIG`). When the ring is full the oldest bytes are
/// dropped. A reader whose offset falls before the oldest byte kept first
/// gets one notice line, `# missed N bytes\n`, and then continues at the
/// oldest byte; its handle counts what it missed. Memory stays bounded by
/// `capacity` however much is written.
#[derive(Debug, Clone)]
pub struct AppendLog {
    ring: VecDeque<u8>,
    /// Absolute offset of the first byte in `ring`.
    base: u64,
    capacity: usize,
    max_write: usize,
    version: u32,
    mtime: u64,
}

impl AppendLog {
    /// A ring holding at most `capacity` bytes, taking writes of at most `max_write`.
    pub fn new(capacity: usize, max_write: usize) -> Self {
        AppendLog {
            ring: VecDeque::new(),
            base: 0,
            capacity: capacity.max(1),
            max_write: max_write.min(capacity.max(1)),
            version: 0,
            mtime: 0,
        }
    }

    /// Appends `data` (from the host side, e.g. an audit line); returns its
    /// absolute offset. Data longer than the ring keeps only its tail.
    pub fn append(&mut self, data: &[u8], now: u64) -> u64 {
        let at = self.end();
        let tail = data.len().saturating_sub(self.capacity);
        let data = data.get(tail..).unwrap_or(&[]);
        let overflow = (self.ring.len() + data.len()).saturating_sub(self.capacity);
        self.ring.drain(..overflow.min(self.ring.len()));
        self.base += (overflow + tail) as u64;
        self.ring.extend(data);
        self.version = self.version.wrapping_add(1);
        self.mtime = now;
        at
    }

    /// Absolute offset one past the last byte written.
    pub fn end(&self) -> u64 {
        self.base + self.ring.len() as u64
    }

    /// Absolute offset of the oldest byte kept.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Bytes held now (never more than the capacity).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// The ring's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Reads from absolute offset `at` into `out`, at most `count` bytes.
    pub fn read_at(&self, at: u64, count: u32, out: &mut Vec<u8>) {
        let start = usize::try_from(at.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let (a, b) = self.ring.as_slices();
        let want = count as usize;
        let from_a = a.get(start..).unwrap_or(&[]);
        let take_a = from_a.len().min(want);
        out.extend_from_slice(from_a.get(..take_a).unwrap_or(&[]));
        let start_b = start.saturating_sub(a.len());
        let from_b = b.get(start_b..).unwrap_or(&[]);
        let take_b = from_b.len().min(want - take_a);
        out.extend_from_slice(from_b.get(..take_b).unwrap_or(&[]));
    }
}

impl Node for AppendLog {
    fn kind(&self) -> NodeKind {
        NodeKind::Append
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o644,
            size: self.end(),
            mtime: self.mtime,
            version: self.version,
        }
    }
    fn read(
        &mut self,
        _: &IoCtx<'_>,
        h: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        let at = offset.saturating_add(h.skew);
        if at < self.base {
            let missed = self.base - at;
            let notice = format!("# missed {missed} bytes\n");
            if notice.len() <= count as usize {
                out.extend_from_slice(notice.as_bytes());
                h.missed += missed;
                // The client's next offset is offset + notice.len(); map it to base.
                h.skew = self
                    .base
                    .saturating_sub(offset.saturating_add(notice.len() as u64));
                return Io::Ready(Ok(()));
            }
            // A buffer too small for the notice skips the gap silently but counts it.
            h.missed += missed;
            h.skew = self.base.saturating_sub(offset);
            self.read_at(self.base, count, out);
            return Io::Ready(Ok(()));
        }
        self.read_at(at, count, out);
        Io::Ready(Ok(()))
    }
    fn write(&mut self, ctx: &IoCtx<'_>, _: &mut Handle, _: u64, data: &[u8]) -> Io<u32> {
        if data.len() > self.max_write {
            return Io::Ready(Err(FsError::TooBig));
        }
        self.append(data, ctx.now);
        Io::Ready(u32::try_from(data.len()).map_err(|_| FsError::TooBig))
    }
}

/// The command handler of a [`CtlFile`]: gets the context and the bytes of
/// one write, returns the reply text or the errno that fails the write.
pub type CtlHandler = Box<dyn FnMut(&IoCtx<'_>, &[u8]) -> Result<Vec<u8>, FsError> + Send + Sync>;

/// A control file: each write is one command for `handler`. A refused
/// command fails the write with the handler's error; an accepted one's reply
/// is what this fid reads next.
pub struct CtlFile {
    handler: CtlHandler,
    max_write: usize,
}

impl CtlFile {
    /// A control file taking writes of at most `max_write` bytes.
    pub fn new(
        max_write: usize,
        handler: impl FnMut(&IoCtx<'_>, &[u8]) -> Result<Vec<u8>, FsError> + Send + Sync + 'static,
    ) -> Self {
        CtlFile {
            handler: Box::new(handler),
            max_write,
        }
    }
}

impl core::fmt::Debug for CtlFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CtlFile")
            .field("max_write", &self.max_write)
            .finish_non_exhaustive()
    }
}

impl Node for CtlFile {
    fn kind(&self) -> NodeKind {
        NodeKind::Control
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o600,
            ..NodeAttr::default()
        }
    }
    fn read(
        &mut self,
        _: &IoCtx<'_>,
        h: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        out.extend_from_slice(slice_at(&h.data, offset, count));
        Io::Ready(Ok(()))
    }
    fn write(&mut self, ctx: &IoCtx<'_>, h: &mut Handle, _: u64, data: &[u8]) -> Io<u32> {
        if data.len() > self.max_write {
            return Io::Ready(Err(FsError::TooBig));
        }
        match (self.handler)(ctx, data) {
            Ok(reply) => {
                h.data = reply;
                Io::Ready(u32::try_from(data.len()).map_err(|_| FsError::TooBig))
            }
            Err(e) => Io::Ready(Err(e)),
        }
    }
}

/// A plain in-memory file: reads and writes at offsets, bounded in size.
#[derive(Debug, Clone, Default)]
pub struct MemFile {
    data: FileBytes,
    max_len: usize,
    version: u32,
    mtime: u64,
}

impl MemFile {
    /// A file holding `data` that may grow to `max_len` bytes (writes past it
    /// fail with `EFBIG`).
    pub fn new(data: impl Into<Vec<u8>>, max_len: usize) -> Self {
        let data: Vec<u8> = data.into();
        MemFile {
            max_len: max_len.max(data.len()),
            data: FileBytes::from(data),
            version: 0,
            mtime: 0,
        }
    }

    /// The contents.
    pub fn data(&self) -> &[u8] {
        self.data.as_slice()
    }
}

impl Node for MemFile {
    fn kind(&self) -> NodeKind {
        NodeKind::File
    }
    fn set_size(&mut self, size: u64, now: u64) -> Result<(), FsError> {
        let size = usize::try_from(size).map_err(|_| FsError::TooBig)?;
        if size > self.max_len {
            return Err(FsError::TooBig);
        }
        self.data.vec_mut().resize(size, 0);
        self.version = self.version.wrapping_add(1);
        self.mtime = now;
        Ok(())
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o644,
            size: self.data.len() as u64,
            mtime: self.mtime,
            version: self.version,
        }
    }
    fn open(&mut self, ctx: &IoCtx<'_>, h: &mut Handle) -> Result<(), FsError> {
        if h.access.truncate {
            self.data.vec_mut().clear();
            self.version = self.version.wrapping_add(1);
            self.mtime = ctx.now;
        }
        Ok(())
    }
    fn read(
        &mut self,
        _: &IoCtx<'_>,
        _: &mut Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        out.extend_from_slice(slice_at(self.data.as_slice(), offset, count));
        Io::Ready(Ok(()))
    }
    fn read_shared(
        &mut self,
        _: &IoCtx<'_>,
        _: &mut Handle,
        offset: u64,
        count: u32,
    ) -> Option<Result<Bytes, FsError>> {
        Some(Ok(self.data.slice(offset, count)))
    }
    fn try_read(
        &self,
        _: &IoCtx<'_>,
        _: &Handle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        // A large read of contents not yet shared goes to `read_shared`,
        // which shares them once (it needs `&mut self`): copied here, they
        // would be copied on every read.
        if count >= crate::SHARE_MIN && !self.data.is_shared() {
            return None;
        }
        out.extend_from_slice(slice_at(self.data.as_slice(), offset, count));
        Some(Ok(()))
    }
    fn try_read_shared(
        &self,
        _: &IoCtx<'_>,
        _: &Handle,
        offset: u64,
        count: u32,
    ) -> Option<Result<Bytes, FsError>> {
        self.data.try_slice(offset, count).map(Ok)
    }
    fn write(&mut self, ctx: &IoCtx<'_>, _: &mut Handle, offset: u64, data: &[u8]) -> Io<u32> {
        let Some(end) = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(data.len()))
        else {
            return Io::Ready(Err(FsError::TooBig));
        };
        if end > self.max_len {
            return Io::Ready(Err(FsError::TooBig));
        }
        let buf = self.data.vec_mut();
        if end > buf.len() {
            buf.resize(end, 0);
        }
        let start = end - data.len();
        if let Some(dst) = buf.get_mut(start..end) {
            dst.copy_from_slice(data);
        }
        self.version = self.version.wrapping_add(1);
        self.mtime = ctx.now;
        Io::Ready(u32::try_from(data.len()).map_err(|_| FsError::TooBig))
    }
}

/// Reads as endless zero bytes; writes are refused (diod's `ctl/zero`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroFile;

impl Node for ZeroFile {
    fn kind(&self) -> NodeKind {
        NodeKind::ReadOnly
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o444,
            ..NodeAttr::default()
        }
    }
    fn read(
        &mut self,
        _: &IoCtx<'_>,
        _: &mut Handle,
        _: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Io<()> {
        out.resize(out.len() + count as usize, 0);
        Io::Ready(Ok(()))
    }
    fn try_read(
        &self,
        _: &IoCtx<'_>,
        _: &Handle,
        _: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        out.resize(out.len() + count as usize, 0);
        Some(Ok(()))
    }
}

/// Reads as empty; takes and discards every write (diod's `ctl/null`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullFile;

impl Node for NullFile {
    fn kind(&self) -> NodeKind {
        NodeKind::File
    }
    fn attr(&self) -> NodeAttr {
        NodeAttr {
            mode: 0o666,
            ..NodeAttr::default()
        }
    }
    fn read(&mut self, _: &IoCtx<'_>, _: &mut Handle, _: u64, _: u32, _: &mut Vec<u8>) -> Io<()> {
        Io::Ready(Ok(()))
    }
    fn try_read(
        &self,
        _: &IoCtx<'_>,
        _: &Handle,
        _: u64,
        _: u32,
        _: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        Some(Ok(()))
    }
    fn write(&mut self, _: &IoCtx<'_>, _: &mut Handle, _: u64, data: &[u8]) -> Io<u32> {
        Io::Ready(u32::try_from(data.len()).map_err(|_| FsError::TooBig))
    }
}
