//! The wide messages whose body is one fixed layout — `Rgetattr`,
//! `Tsetattr`, `Rstatfs` — as `zerocopy` wire structs. [`Msg`](crate::Msg)
//! holds them by reference: a decoded one is the frame's own bytes (read
//! with `ref_from_bytes`, nothing copied), and an encoder builds one
//! ([`Rgetattr::new`] and the `with_*` setters) and lends it, so a
//! [`Frame`](crate::Frame) stays small (see `FRAME_SIZE_LIMIT` in `frame.rs`)
//! and encoding writes the struct's bytes in one copy.
//!
//! Fields are private little-endian integers; the accessors and setters
//! take and give plain values (`u64`, [`Qid`], [`GetattrMask`], ...), and
//! every one is `const` so a fixed reply can be a `const`. Nothing here can
//! fail: every bit pattern is a valid value of each struct.

use crate::flags::{GetattrMask, SetattrValid};
use crate::layout::QidWire;
use crate::types::{Fid, Qid};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A message body that is one fixed layout, read in place from the frame.
pub(crate) trait Fixed: FromBytes + IntoBytes + KnownLayout + Immutable + Unaligned {
    /// The message's name, for errors about its bytes.
    const NAME: &'static str;
}

/// The wire type that holds a value of each plain field type.
macro_rules! wire_type {
    (u32) => {
        U32
    };
    (u64) => {
        U64
    };
    (Fid) => {
        U32
    };
    (Qid) => {
        QidWire
    };
    (GetattrMask) => {
        U64
    };
    (SetattrValid) => {
        U32
    };
}

/// A wire value as its plain type.
macro_rules! to_plain {
    (u32, $w:expr) => {
        $w.get()
    };
    (u64, $w:expr) => {
        $w.get()
    };
    (Fid, $w:expr) => {
        Fid($w.get())
    };
    (Qid, $w:expr) => {
        QidWire::qid(&$w)
    };
    (GetattrMask, $w:expr) => {
        GetattrMask::from_bits_retain($w.get())
    };
    (SetattrValid, $w:expr) => {
        SetattrValid::from_bits_retain($w.get())
    };
}

/// A plain value as its wire type.
macro_rules! to_wire {
    (u32, $v:expr) => {
        U32::new($v)
    };
    (u64, $v:expr) => {
        U64::new($v)
    };
    (Fid, $v:expr) => {
        U32::new($v.0)
    };
    (Qid, $v:expr) => {
        QidWire::from_qid($v)
    };
    (GetattrMask, $v:expr) => {
        U64::new($v.bits())
    };
    (SetattrValid, $v:expr) => {
        U32::new($v.bits())
    };
}

/// The zero value of each plain field type.
macro_rules! zero {
    (u32) => {
        0
    };
    (u64) => {
        0
    };
    (Fid) => {
        Fid(0)
    };
    (Qid) => {
        Qid {
            ty: crate::flags::QidType::FILE,
            version: 0,
            path: 0,
        }
    };
    (GetattrMask) => {
        GetattrMask::empty()
    };
    (SetattrValid) => {
        SetattrValid::empty()
    };
}

macro_rules! fixed_messages {
    ($(
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident / $with:ident : $plain:ident ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
        #[repr(C)]
        pub struct $name {
            $( $field: wire_type!($plain), )*
        }

        impl $name {
            /// Every field zero (no `valid` bits): the start of a build.
            pub const fn new() -> Self {
                $name { $( $field: to_wire!($plain, zero!($plain)), )* }
            }

            $(
                $(#[$fmeta])*
                pub const fn $field(&self) -> $plain {
                    to_plain!($plain, self.$field)
                }
            )*

            $(
                #[doc = concat!("This value with `", stringify!($field), "` set to `v`.")]
                #[must_use]
                pub const fn $with(mut self, v: $plain) -> Self {
                    self.$field = to_wire!($plain, v);
                    self
                }
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($name))
                    $( .field(stringify!($field), &self.$field()) )*
                    .finish()
            }
        }

        impl Fixed for $name {
            const NAME: &'static str = stringify!($name);
        }
    )*};
}

fixed_messages! {
    /// The body of an `Rgetattr`: a file's attributes (`stat(2)` and more),
    /// `valid[8] qid[13] mode[4] uid[4] gid[4]` then fifteen 8-byte fields.
    ///
    /// ```
    /// use secure9p_codec::{GetattrMask, Qid, Rgetattr};
    /// let attr = Rgetattr::new()
    ///     .with_valid(GetattrMask::BASIC)
    ///     .with_qid(Qid::default())
    ///     .with_mode(0o100_644)
    ///     .with_size(6);
    /// assert_eq!((attr.size(), attr.nlink()), (6, 0));
    /// ```
    Rgetattr {
        /// Which fields are filled.
        valid / with_valid: GetattrMask,
        /// The file's qid.
        qid / with_qid: Qid,
        /// Mode and permission bits.
        mode / with_mode: u32,
        /// Owner.
        uid / with_uid: u32,
        /// Group.
        gid / with_gid: u32,
        /// Link count.
        nlink / with_nlink: u64,
        /// Device id, for device files.
        rdev / with_rdev: u64,
        /// Size in bytes.
        size / with_size: u64,
        /// Preferred I/O block size.
        blksize / with_blksize: u64,
        /// 512-byte blocks allocated.
        blocks / with_blocks: u64,
        /// Access time, seconds.
        atime_sec / with_atime_sec: u64,
        /// Access time, nanoseconds.
        atime_nsec / with_atime_nsec: u64,
        /// Modification time, seconds.
        mtime_sec / with_mtime_sec: u64,
        /// Modification time, nanoseconds.
        mtime_nsec / with_mtime_nsec: u64,
        /// Change time, seconds.
        ctime_sec / with_ctime_sec: u64,
        /// Change time, nanoseconds.
        ctime_nsec / with_ctime_nsec: u64,
        /// Birth time, seconds.
        btime_sec / with_btime_sec: u64,
        /// Birth time, nanoseconds.
        btime_nsec / with_btime_nsec: u64,
        /// Inode generation.
        gen_ / with_gen: u64,
        /// Data version.
        data_version / with_data_version: u64,
    }

    /// The body of a `Tsetattr`: which attributes to change, and to what,
    /// `fid[4] valid[4] mode[4] uid[4] gid[4]` then five 8-byte fields.
    Tsetattr {
        /// The file.
        fid / with_fid: Fid,
        /// Which fields to apply.
        valid / with_valid: SetattrValid,
        /// New mode.
        mode / with_mode: u32,
        /// New owner.
        uid / with_uid: u32,
        /// New group.
        gid / with_gid: u32,
        /// New size.
        size / with_size: u64,
        /// New access time, seconds.
        atime_sec / with_atime_sec: u64,
        /// New access time, nanoseconds.
        atime_nsec / with_atime_nsec: u64,
        /// New modification time, seconds.
        mtime_sec / with_mtime_sec: u64,
        /// New modification time, nanoseconds.
        mtime_nsec / with_mtime_nsec: u64,
    }

    /// The body of an `Rstatfs`: file-system statistics (`statfs(2)`),
    /// `type[4] bsize[4]` then six 8-byte counts and `namelen[4]`.
    Rstatfs {
        /// File-system type.
        ty / with_ty: u32,
        /// Block size.
        bsize / with_bsize: u32,
        /// Total blocks.
        blocks / with_blocks: u64,
        /// Free blocks.
        bfree / with_bfree: u64,
        /// Blocks free to unprivileged users.
        bavail / with_bavail: u64,
        /// Total inodes.
        files / with_files: u64,
        /// Free inodes.
        ffree / with_ffree: u64,
        /// File-system id.
        fsid / with_fsid: u64,
        /// Longest file name.
        namelen / with_namelen: u32,
    }
}

const _: () = assert!(core::mem::size_of::<Rgetattr>() == 8 + 13 + 12 + 8 * 15);
const _: () = assert!(core::mem::size_of::<Tsetattr>() == 4 + 16 + 8 * 5);
const _: () = assert!(core::mem::size_of::<Rstatfs>() == 8 + 8 * 6 + 4);
