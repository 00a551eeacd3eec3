//! Fixed wire layouts as `zerocopy` little-endian structs. These are read
//! straight out of (and written straight into) frame bytes; the alignment-free
//! integer types make any offset valid, so no copying or unsafe code is needed.

use crate::flags::QidType;
use crate::types::Qid;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `size[4] type[1] tag[2]`, the header of every frame.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct HeaderWire {
    /// Length of the whole frame, header included.
    pub size: U32,
    /// Message type.
    pub ty: u8,
    /// Request tag.
    pub tag: U16,
}

/// `qid[13]`: `type[1] version[4] path[8]`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct QidWire {
    /// Qid type bits.
    pub ty: u8,
    /// Version.
    pub version: U32,
    /// Unique path.
    pub path: U64,
}

impl QidWire {
    /// The wire form of `q`.
    pub const fn from_qid(q: Qid) -> QidWire {
        QidWire {
            ty: q.ty.bits(),
            version: U32::new(q.version),
            path: U64::new(q.path),
        }
    }

    /// The qid these bytes hold.
    pub const fn qid(&self) -> Qid {
        Qid {
            ty: QidType::from_bits_retain(self.ty),
            version: self.version.get(),
            path: self.path.get(),
        }
    }
}

/// The fixed part of a lock description: `type[1] start[8] length[8] proc_id[4]`
/// (`Tgetlock`/`Rgetlock`; `Tlock` has `flags[4]` after the type).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct LockRangeWire {
    pub start: U64,
    pub length: U64,
    pub proc_id: U32,
}

/// The fixed part of a 9P2000 stat after its `size[2]`:
/// `type[2] dev[4] qid[13] mode[4] atime[4] mtime[4] length[8]`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct StatWire {
    pub ty: U16,
    pub dev: U32,
    pub qid: QidWire,
    pub mode: U32,
    pub atime: U32,
    pub mtime: U32,
    pub length: U64,
}

/// Size of the frame header, `size[4] type[1] tag[2]`.
pub const HEADER_LEN: usize = core::mem::size_of::<HeaderWire>();
/// Size of a qid on the wire, `type[1] version[4] path[8]`.
pub const QID_LEN: usize = core::mem::size_of::<QidWire>();

const _: () = assert!(HEADER_LEN == 7);
const _: () = assert!(QID_LEN == 13);
const _: () = assert!(core::mem::size_of::<StatWire>() == 2 + 4 + 13 + 12 + 8);
