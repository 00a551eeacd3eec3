//! Cuts a byte stream (a console, a socket) into whole 9P frames by their
//! `size[4]` prefix. The stream is untrusted: a size below a header's or
//! above the limit is an error, never an allocation of that size.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

/// The smallest 9P frame: `size[4] type[1] tag[2]`.
const HEADER: usize = 7;

/// A size prefix no valid frame has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    /// The size the prefix declared.
    pub declared: u32,
    /// The largest frame accepted.
    pub max: usize,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame size {} outside {HEADER}..={}",
            self.declared, self.max
        )
    }
}

/// Accumulates stream bytes and hands out whole frames.
#[derive(Debug)]
pub struct FrameAssembler {
    max: usize,
    buf: VecDeque<u8>,
}

impl FrameAssembler {
    /// Frames of at most `max` bytes.
    pub fn new(max: usize) -> FrameAssembler {
        FrameAssembler {
            max,
            buf: VecDeque::new(),
        }
    }

    /// Bytes held that are not yet a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Adds stream bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
    }

    /// The next whole frame, if one is in. After an error the stream has
    /// lost its framing: the held bytes are dropped and the caller should
    /// tell the other side (9P cannot resynchronise mid-stream).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let mut size = [0u8; 4];
        for (d, s) in size.iter_mut().zip(self.buf.iter()) {
            *d = *s;
        }
        let declared = u32::from_le_bytes(size);
        let len = declared as usize;
        if len < HEADER || len > self.max {
            self.buf.clear();
            return Err(FrameError {
                declared,
                max: self.max,
            });
        }
        if self.buf.len() < len {
            return Ok(None);
        }
        Ok(Some(self.buf.drain(..len).collect()))
    }
}

/// Splits `bytes`, a concatenation of whole frames (what `Hive::handle`
/// appends), into frames. A trailing piece that is not a whole frame is
/// returned last as is (it cannot happen with the hive's own output).
pub fn split(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = rest
            .get(..4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
            .filter(|n| *n >= HEADER && *n <= rest.len())
            .unwrap_or(rest.len());
        let (frame, tail) = rest.split_at(len);
        rest = tail;
        Some(frame)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8, len: usize) -> Vec<u8> {
        let mut f = (len as u32).to_le_bytes().to_vec();
        f.resize(len, n);
        f
    }

    #[test]
    fn cuts_frames_across_pushes() {
        let mut a = FrameAssembler::new(64);
        let (f1, f2) = (frame(1, 9), frame(2, 12));
        let stream: Vec<u8> = f1.iter().chain(&f2).copied().collect();
        a.push(&stream[..5]);
        assert_eq!(a.next_frame(), Ok(None));
        a.push(&stream[5..]);
        assert_eq!(a.next_frame(), Ok(Some(f1)));
        assert_eq!(a.next_frame(), Ok(Some(f2)));
        assert_eq!(a.next_frame(), Ok(None));
    }

    #[test]
    fn refuses_hostile_sizes() {
        for declared in [0u32, 6, 65, u32::MAX] {
            let mut a = FrameAssembler::new(64);
            a.push(&declared.to_le_bytes());
            a.push(&[0; 8]);
            assert_eq!(a.next_frame(), Err(FrameError { declared, max: 64 }));
            assert_eq!(a.pending(), 0);
        }
    }

    #[test]
    fn splits_concatenated_frames() {
        let all: Vec<u8> = frame(1, 7).into_iter().chain(frame(2, 10)).collect();
        let parts: Vec<&[u8]> = split(&all).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].len(), 10);
    }
}
