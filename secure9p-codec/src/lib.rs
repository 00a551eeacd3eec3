#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod dirent;
mod error;
mod fixed;
mod flags;
mod frame;
mod layout;
mod msg;
mod stat;
mod types;
mod walk;
mod wire;

pub use dirent::{DirEntries, DirEntry, DirEntryWriter};
pub use error::CodecError;
pub use fixed::{Rgetattr, Rstatfs, Tsetattr};
pub use flags::{
    DMAPPEND, DMAUTH, DMDIR, DMEXCL, GetattrMask, L_ACCMODE, LOpenFlags, LockFlags, LockStatus,
    LockType, OpenMode, QidType, SetattrValid,
};
pub use frame::{
    DecodeConfig, Frame, HEADER_LEN, Header, IOHDRSZ, RREAD_HEADER_LEN, TWRITE_HEADER_LEN,
    rread_header, twrite_header,
};
pub use msg::*;
pub use stat::{Stat, StatRef, Stats};
pub use types::{Dialect, Fid, Qid, Tag};
pub use walk::{MAX_WALK_ELEMENTS, WalkNames, WalkNamesIter, WalkQids};
pub use wire::AppendBuf;

/// The smallest msize a server may negotiate: the Linux client refuses less.
pub const MIN_MSIZE: u32 = 4096;
