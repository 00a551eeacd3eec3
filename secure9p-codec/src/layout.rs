//! Fixed wire layouts as `zerocopy` little-endian structs. These are read
//! straight out of (and written straight into) frame bytes; the alignment-free
//! integer types make any offset valid, so no copying or unsafe code is needed.

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
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct QidWire {
    /// Qid type bits.
    pub ty: u8,
    /// Version.
    pub version: U32,
    /// Unique path.
    pub path: U64,
}

/// The body of `Rgetattr`: `valid[8] qid[13]` followed by the attributes.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct AttrWire {
    pub valid: U64,
    pub qid: QidWire,
    pub mode: U32,
    pub uid: U32,
    pub gid: U32,
    pub nlink: U64,
    pub rdev: U64,
    pub size: U64,
    pub blksize: U64,
    pub blocks: U64,
    pub atime_sec: U64,
    pub atime_nsec: U64,
    pub mtime_sec: U64,
    pub mtime_nsec: U64,
    pub ctime_sec: U64,
    pub ctime_nsec: U64,
    pub btime_sec: U64,
    pub btime_nsec: U64,
    pub gen_: U64,
    pub data_version: U64,
}

/// The body of `Tsetattr` after its fid.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SetattrWire {
    pub valid: U32,
    pub mode: U32,
    pub uid: U32,
    pub gid: U32,
    pub size: U64,
    pub atime_sec: U64,
    pub atime_nsec: U64,
    pub mtime_sec: U64,
    pub mtime_nsec: U64,
}

/// The body of `Rstatfs`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct StatfsWire {
    pub ty: U32,
    pub bsize: U32,
    pub blocks: U64,
    pub bfree: U64,
    pub bavail: U64,
    pub files: U64,
    pub ffree: U64,
    pub fsid: U64,
    pub namelen: U32,
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
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
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
const _: () = assert!(core::mem::size_of::<AttrWire>() == 8 + 13 + 12 + 8 * 15);
const _: () = assert!(core::mem::size_of::<SetattrWire>() == 16 + 8 * 5);
const _: () = assert!(core::mem::size_of::<StatfsWire>() == 8 + 8 * 6 + 4);
const _: () = assert!(core::mem::size_of::<StatWire>() == 2 + 4 + 13 + 12 + 8);
