//! Bounds-checked byte access to part of a shared region. The peer may
//! write the region at any time; a window never reads or writes outside
//! the words it was given, and every offset and length is checked first.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// Why a window could not be made or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowError {
    /// The requested range does not fit in the region or window.
    OutOfBounds {
        /// First byte asked for.
        offset: usize,
        /// Bytes asked for.
        len: usize,
        /// Bytes available.
        size: usize,
    },
    /// Windows start on a word boundary.
    Unaligned {
        /// The byte offset given.
        offset: usize,
    },
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::OutOfBounds { offset, len, size } => write!(
                f,
                "{len} bytes at offset {offset} exceed a window of {size} bytes"
            ),
            WindowError::Unaligned { offset } => {
                write!(f, "window offset {offset} is not a multiple of 4")
            }
        }
    }
}

/// A byte view of consecutive words of a shared region. Bytes are packed
/// four to a word, little-endian, like the ring's frames.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    words: &'a [AtomicU32],
}

impl<'a> Window<'a> {
    /// The whole region.
    pub fn new(region: &'a [AtomicU32]) -> Window<'a> {
        Window { words: region }
    }

    /// `len` bytes of the region from byte `offset` (a multiple of 4; `len`
    /// is rounded up to whole words).
    pub fn sub(region: &'a [AtomicU32], offset: usize, len: usize) -> Result<Self, WindowError> {
        if !offset.is_multiple_of(4) {
            return Err(WindowError::Unaligned { offset });
        }
        let size = region.len() * 4;
        let oob = WindowError::OutOfBounds { offset, len, size };
        let first = offset / 4;
        let end = first.checked_add(len.div_ceil(4)).ok_or(oob)?;
        let words = region.get(first..end).ok_or(oob)?;
        Ok(Window { words })
    }

    /// Bytes in the window.
    pub fn len(&self) -> usize {
        self.words.len() * 4
    }

    /// Whether the window has no bytes.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The words, for a ring or another word-level user.
    pub fn words(&self) -> &'a [AtomicU32] {
        self.words
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), WindowError> {
        let size = self.len();
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(()),
            _ => Err(WindowError::OutOfBounds { offset, len, size }),
        }
    }

    /// Copies `out.len()` bytes from byte `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), WindowError> {
        self.check(offset, out.len())?;
        for (i, b) in out.iter_mut().enumerate() {
            let at = offset + i;
            let word = self.words[at / 4].load(Ordering::Relaxed).to_le_bytes();
            *b = word[at % 4];
        }
        Ok(())
    }

    /// Copies `data` to byte `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), WindowError> {
        self.check(offset, data.len())?;
        for (i, b) in data.iter().enumerate() {
            let at = offset + i;
            let slot = &self.words[at / 4];
            let mut word = slot.load(Ordering::Relaxed).to_le_bytes();
            word[at % 4] = *b;
            slot.store(u32::from_le_bytes(word), Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn reads_and_writes_stay_inside() {
        let region: Vec<AtomicU32> = (0..8).map(|_| AtomicU32::new(0)).collect();
        let w = Window::sub(&region, 4, 8).unwrap();
        assert_eq!(w.len(), 8);
        w.write(1, b"abc").unwrap();
        let mut out = [0u8; 3];
        w.read(1, &mut out).unwrap();
        assert_eq!(&out, b"abc");
        assert_eq!(
            region[1].load(Ordering::Relaxed).to_le_bytes(),
            [0, b'a', b'b', b'c']
        );
        assert!(matches!(
            w.write(6, b"xyz"),
            Err(WindowError::OutOfBounds { .. })
        ));
        assert!(matches!(
            w.read(usize::MAX, &mut out),
            Err(WindowError::OutOfBounds { .. })
        ));
        assert!(Window::sub(&region, 28, 8).is_err());
        assert!(Window::sub(&region, 2, 4).is_err());
        assert!(Window::sub(&region, usize::MAX - 3, 8).is_err());
    }
}
