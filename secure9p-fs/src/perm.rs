//! The POSIX permission check both providers make for the numeric user of
//! an attach: uid 0 passes (but executes only what some `x` bit allows),
//! the owner gets the owner bits, a member of the file's group the group
//! bits, everyone else the "other" bits.
//!
//! 9P names only a uid, so group membership comes from a [`Users`] table:
//! empty by default, or the host's own `/etc/passwd` and `/etc/group`
//! ([`Users::from_system`]), as diod looks users up on its host.

use std::collections::{BTreeMap, BTreeSet};

/// Read permission.
pub const R: u32 = 4;
/// Write permission.
pub const W: u32 = 2;
/// Execute (search, for a directory) permission.
pub const X: u32 = 1;

/// Which groups each uid is in (its primary group and the supplementary ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    groups: BTreeMap<u32, BTreeSet<u32>>,
}

impl Users {
    /// The host's users: `/etc/passwd` for primary groups, `/etc/group` for
    /// the rest. Unreadable files give an empty table (no group knowledge).
    pub fn from_system() -> Users {
        let read = |p| std::fs::read_to_string(p).unwrap_or_default();
        Users::parse(&read("/etc/passwd"), &read("/etc/group"))
    }

    /// A table from the text of a `passwd` and a `group` file (malformed
    /// lines are skipped).
    pub fn parse(passwd: &str, group: &str) -> Users {
        let mut names = BTreeMap::new();
        let mut groups: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if let (Some(name), Some(Ok(uid)), Some(Ok(gid))) = (
                f.first(),
                f.get(2).map(|s| s.parse::<u32>()),
                f.get(3).map(|s| s.parse::<u32>()),
            ) {
                names.insert(name.to_string(), uid);
                groups.entry(uid).or_default().insert(gid);
            }
        }
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            let (Some(Ok(gid)), Some(members)) = (f.get(2).map(|s| s.parse::<u32>()), f.get(3))
            else {
                continue;
            };
            for m in members.split(',').filter(|m| !m.is_empty()) {
                if let Some(uid) = names.get(m) {
                    groups.entry(*uid).or_default().insert(gid);
                }
            }
        }
        Users { groups }
    }

    /// Whether `uid` is in group `gid`.
    pub fn in_group(&self, uid: u32, gid: u32) -> bool {
        self.groups.get(&uid).is_some_and(|g| g.contains(&gid))
    }
}

/// Whether `uid` may access a file of `mode`, owned by `owner` and `group`,
/// as `want` (a mask of [`R`], [`W`], [`X`]).
pub fn allowed(users: &Users, uid: u32, mode: u32, owner: u32, group: u32, want: u32) -> bool {
    let dir = mode & secure9p_core::file_type::S_IFMT == secure9p_core::file_type::S_IFDIR;
    if uid == 0 {
        return want & X == 0 || dir || mode & 0o111 != 0;
    }
    let bits = if uid == owner {
        (mode >> 6) & 7
    } else if users.in_group(uid, group) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    bits & want == want
}
