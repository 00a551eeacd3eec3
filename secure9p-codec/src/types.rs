//! Small types that carry the protocol's invariants: fids, tags, qids and the
//! dialect a session speaks.

use crate::flags::QidType;

/// A file identifier chosen by the client (`fid[4]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fid(pub u32);

impl Fid {
    /// `NOFID`: "no fid", used as the afid of an attach without authentication.
    pub const NOFID: Fid = Fid(u32::MAX);
}

/// A request tag chosen by the client (`tag[2]`), echoed by the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub u16);

impl Tag {
    /// `NOTAG`: the tag that `Tversion` carries.
    pub const NOTAG: Tag = Tag(u16::MAX);
}

/// The server's unique identity of a file (`qid[13]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Qid {
    /// What kind of file (directory, append-only, symlink, ...).
    pub ty: QidType,
    /// Version, bumped when the file changes (0 when not tracked).
    pub version: u32,
    /// A number unique to the file within the server.
    pub path: u64,
}

/// The dialect a session speaks, chosen by `version`.
///
/// The two dialects share every message layout except `Tauth` and `Tattach`,
/// which carry a trailing `n_uname[4]` in 9P2000.L.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Plan 9's base protocol, `"9P2000"`.
    Base,
    /// The Linux dialect, `"9P2000.L"`.
    Linux,
}

impl Dialect {
    /// The version string of this dialect.
    pub const fn version(self) -> &'static str {
        match self {
            Dialect::Base => "9P2000",
            Dialect::Linux => "9P2000.L",
        }
    }

    /// The dialect a version string names, if it is one of ours.
    pub fn from_version(version: &str) -> Option<Dialect> {
        match version {
            "9P2000" => Some(Dialect::Base),
            "9P2000.L" => Some(Dialect::Linux),
            _ => None,
        }
    }
}
