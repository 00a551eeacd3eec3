//! A single-producer/single-consumer ring of whole frames over one shared
//! memory region: the transport between two seL4 Microkit protection
//! domains, or two threads in a host test. `no_std`, no allocation, no
//! `unsafe`.
//!
//! The region is a `&[AtomicU32]`: a control block (magic, capacity, head
//! and tail indices, a wakeup flag) followed by the data area; the exact
//! layout is in [`layout`]. Seeing the region as atomics is what lets this
//! module stay free of `unsafe`: the peer may write to it at any moment, and
//! atomics make that a defined (if possibly nonsensical) value instead of a
//! data race. Turning a Microkit memory region (a virtual address and a
//! size) into that slice is the one `unsafe` step, and it belongs to the
//! runtime that maps the region, not here. A host test simply makes a
//! `Vec<AtomicU32>`.
//!
//! Frames are stored length-prefixed and wrap word by word (split copy, no
//! wrap marker). A frame larger than the ring can ever hold is refused with
//! [`RingError::FrameTooLarge`]; one that does not fit now with
//! [`RingError::Full`]. The peer is not trusted: an index or length it
//! wrote that is out of range is a [`RingError`], never a panic or an
//! out-of-bounds access. What this module must never do is read or write
//! outside the region it was given, or hand out a frame the producer has not
//! finished publishing.
//!
//! Waking the other side is left to a [`Notify`] hook: the producer's fires
//! when a push makes the ring non-empty, the consumer's when a pop frees
//! space the producer was waiting for. A side that waits should do so only
//! after [`Consumer::pop`] returned `None` or [`Producer::push`] returned
//! [`RingError::Full`]; both re-check the ring after a full fence, so no
//! wakeup is lost.
//!
//! ```
//! use core::sync::atomic::AtomicU32;
//! use secure9p_transport::ring::{self, Consumer, NoNotify, Producer, layout};
//!
//! let region: Vec<AtomicU32> = (0..layout::region_words(256)).map(|_| AtomicU32::new(0)).collect();
//! ring::init(&region)?;
//! let mut tx = Producer::attach(&region, NoNotify)?;
//! let mut rx = Consumer::attach(&region, NoNotify)?;
//!
//! tx.push(b"hello")?;
//! let mut buf = [0u8; 256];
//! assert_eq!(rx.pop(&mut buf)?, Some(5));
//! assert_eq!(&buf[..5], b"hello");
//! assert_eq!(rx.pop(&mut buf)?, None);
//! # Ok::<(), secure9p_transport::ring::RingError>(())
//! ```

mod consumer;
mod error;
pub mod layout;
mod notify;
mod producer;
mod view;

pub use consumer::Consumer;
pub use error::RingError;
pub use notify::{NoNotify, Notify};
pub use producer::Producer;

use core::sync::atomic::{AtomicU32, Ordering};
use view::View;

/// Makes `region` an empty ring whose data area is everything after the
/// control block. Call it once, before either side attaches (in a Microkit
/// system: the side that owns the region's setup, at init). Returns the
/// largest frame the ring can hold, in bytes.
pub fn init(region: &[AtomicU32]) -> Result<usize, RingError> {
    let ring = View::new(region)?;
    // `View::new` checked the capacity against MAX_DATA_WORDS, so it fits.
    let capacity = u32::try_from(ring.capacity()).map_err(|_| RingError::RegionTooLarge {
        words: ring.capacity(),
        max: layout::MAX_DATA_WORDS,
    })?;
    ring.capacity_word().store(capacity, Ordering::Relaxed);
    ring.head().store(0, Ordering::Relaxed);
    ring.tail().store(0, Ordering::Relaxed);
    ring.space_wanted().store(0, Ordering::Relaxed);
    // Release: the fields above are visible to whoever sees the magic with
    // Acquire (`attach`).
    ring.magic().store(layout::MAGIC_VALUE, Ordering::Release);
    Ok(ring.max_frame_len())
}
