//! A channel id: what a PD calls the other end of a channel, an IRQ, or a
//! protected-call endpoint.

use crate::microkit::MAX_CHANNELS;
use core::fmt;

/// A channel id below [`MAX_CHANNELS`]: the bit it owns in a notification
/// badge, and the offset of its caps from each base slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel(u8);

impl Channel {
    /// The channel `id`, or `None` if it is not below [`MAX_CHANNELS`].
    pub const fn new(id: u8) -> Option<Channel> {
        if id < MAX_CHANNELS {
            Some(Channel(id))
        } else {
            None
        }
    }

    /// The channel `id`; a compile-time error (or a panic in non-const use)
    /// if it is out of range. For the fixed channel numbers PD code names.
    pub const fn fixed(id: u8) -> Channel {
        match Channel::new(id) {
            Some(c) => c,
            None => panic!("channel id out of range"),
        }
    }

    /// The id.
    pub const fn id(self) -> u8 {
        self.0
    }

    /// This channel's bit in a badge or a `microkit_*` mask.
    pub const fn bit(self) -> u64 {
        1 << self.0
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "channel {}", self.0)
    }
}
