#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod export;
pub mod memfs;
pub mod perm;
pub mod serve;

pub use export::{DirExport, ExportError, ExportOptions};
pub use memfs::{Limits, LoadError, MemFs};
