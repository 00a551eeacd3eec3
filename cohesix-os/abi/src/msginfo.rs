//! `seL4_MessageInfo`: the word that travels with every IPC (label,
//! capabilities, length). Layout from seL4's `shared_types.bf` (64-bit):
//! label 52 bits, capsUnwrapped 3, extraCaps 2, length 7, high to low.

use crate::microkit::MSG_MAX_LENGTH;

const LENGTH_BITS: u32 = 7;
const LABEL_SHIFT: u32 = 12;
const LABEL_MASK: u64 = (1 << 52) - 1;

/// A message info word. PDs here pass no capabilities, so only the label
/// and the count of message registers are exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgInfo(u64);

impl MsgInfo {
    /// A message with `label` (52 bits kept) and `count` message registers
    /// (capped at `seL4_MsgMaxLength`).
    pub const fn new(label: u64, count: usize) -> MsgInfo {
        let count = if count > MSG_MAX_LENGTH {
            MSG_MAX_LENGTH
        } else {
            count
        };
        MsgInfo(((label & LABEL_MASK) << LABEL_SHIFT) | count as u64)
    }

    /// The word as the kernel sees it.
    pub const fn from_raw(word: u64) -> MsgInfo {
        MsgInfo(word)
    }

    /// The raw word.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The label.
    pub const fn label(self) -> u64 {
        self.0 >> LABEL_SHIFT
    }

    /// Message registers carried (never more than `seL4_MsgMaxLength`).
    pub const fn count(self) -> usize {
        let n = (self.0 & ((1 << LENGTH_BITS) - 1)) as usize;
        if n > MSG_MAX_LENGTH {
            MSG_MAX_LENGTH
        } else {
            n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_sel4() {
        // seL4_MessageInfo_new(label=3, 0, 0, length=2) == (3 << 12) | 2.
        assert_eq!(MsgInfo::new(3, 2).raw(), 0x3002);
        assert_eq!(MsgInfo::from_raw(0x3002).label(), 3);
        assert_eq!(MsgInfo::from_raw(0x3002).count(), 2);
        assert_eq!(MsgInfo::new(0, 500).count(), MSG_MAX_LENGTH);
        // A hostile length field (7 bits: up to 127) is capped too.
        assert_eq!(MsgInfo::from_raw(127).count(), MSG_MAX_LENGTH);
    }
}
