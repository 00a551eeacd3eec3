//! The file tree a server serves: directories owned here, files as
//! `Box<dyn Node>`, all in one arena indexed by [`NodeId`]. Each role can be
//! given its own root (a per-role mount table); the engine walks from it.
//!
//! Directory listings are ordered by insertion and each entry carries a
//! cookie (its insertion sequence number) that stays valid while other
//! entries come and go, so `Treaddir` can resume at any entry.

use crate::error::FsError;
use crate::node::Node;
use crate::role::Role;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use secure9p_codec::{Qid, QidType};

/// A node in the arena. The generation makes a stale id (of a removed node)
/// miss instead of finding the node that reused the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    index: u32,
    generation: u32,
}

impl NodeId {
    /// Names no node (it never resolves): what an
    /// [`FsServer`](crate::FsServer), whose files live in its provider,
    /// reports in [`Outcome::Deferred`](crate::Outcome::Deferred).
    pub const NONE: NodeId = NodeId {
        index: u32::MAX,
        generation: u32::MAX,
    };

    /// The qid path of this node: unique for the life of the server.
    pub const fn qid_path(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }
}

/// The first cookie used for children: 1 and 2 are `.` and `..`.
pub(crate) const FIRST_CHILD_COOKIE: u64 = 3;

/// Longest name accepted in the tree.
pub const MAX_NAME_LEN: usize = 255;

pub(crate) enum Body {
    Dir {
        by_name: BTreeMap<String, NodeId>,
        by_cookie: BTreeMap<u64, NodeId>,
        next_cookie: u64,
        mode: u32,
    },
    File(Box<dyn Node>),
}

pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) parent: NodeId,
    pub(crate) cookie: u64,
    pub(crate) body: Body,
    pub(crate) version: u32,
}

/// A directory entry as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// Its node.
    pub id: NodeId,
    /// The cookie to resume a listing after it.
    pub cookie: u64,
}

/// The tree.
pub struct Namespace {
    slots: Vec<(u32, Option<Entry>)>,
    free: Vec<u32>,
    root: NodeId,
    roots: BTreeMap<Role, NodeId>,
    mounts: BTreeMap<String, NodeId>,
}

impl core::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Namespace")
            .field("nodes", &(self.slots.len() - self.free.len()))
            .finish_non_exhaustive()
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace::new()
    }
}

fn check_name(name: &str) -> Result<(), FsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(FsError::Invalid);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(FsError::NameTooLong);
    }
    Ok(())
}

impl Namespace {
    /// A tree holding only an empty root directory (mode `0o755`).
    pub fn new() -> Self {
        let root = NodeId {
            index: 0,
            generation: 0,
        };
        let entry = Entry {
            name: String::new(),
            parent: root,
            cookie: 0,
            body: Body::Dir {
                by_name: BTreeMap::new(),
                by_cookie: BTreeMap::new(),
                next_cookie: FIRST_CHILD_COOKIE,
                mode: 0o755,
            },
            version: 0,
        };
        Namespace {
            slots: alloc::vec![(0, Some(entry))],
            free: Vec::new(),
            root,
            roots: BTreeMap::new(),
            mounts: BTreeMap::new(),
        }
    }

    /// The root of the whole tree.
    pub fn root(&self) -> NodeId {
        self.root
    }

    /// The root a role attaches to (the whole tree unless set).
    pub fn root_for(&self, role: Role) -> NodeId {
        self.roots.get(&role).copied().unwrap_or(self.root)
    }

    /// Mounts `dir` as the root of `role`: that role sees nothing above it.
    pub fn set_root_for(&mut self, role: Role, dir: NodeId) -> Result<(), FsError> {
        if !self.is_dir(dir) {
            return Err(FsError::NotDir);
        }
        self.roots.insert(role, dir);
        Ok(())
    }

    /// Exports `dir` under the attach name `aname`: an attach whose `aname`
    /// is exactly this (and carries no ticket) lands there, as diod exports
    /// a directory by its path.
    pub fn set_mount(&mut self, aname: &str, dir: NodeId) -> Result<(), FsError> {
        if !self.is_dir(dir) {
            return Err(FsError::NotDir);
        }
        self.mounts.insert(String::from(aname), dir);
        Ok(())
    }

    /// Whether any export was set with [`Namespace::set_mount`].
    pub fn has_mounts(&self) -> bool {
        !self.mounts.is_empty()
    }

    /// The directory exported under `aname`, if any.
    pub fn mount(&self, aname: &str) -> Option<NodeId> {
        self.mounts
            .get(aname)
            .copied()
            .filter(|id| self.exists(*id))
    }

    pub(crate) fn entry(&self, id: NodeId) -> Option<&Entry> {
        match self.slots.get(id.index as usize) {
            Some((generation, Some(e))) if *generation == id.generation => Some(e),
            _ => None,
        }
    }

    pub(crate) fn entry_mut(&mut self, id: NodeId) -> Option<&mut Entry> {
        match self.slots.get_mut(id.index as usize) {
            Some((generation, Some(e))) if *generation == id.generation => Some(e),
            _ => None,
        }
    }

    /// Whether `id` names a live node.
    pub fn exists(&self, id: NodeId) -> bool {
        self.entry(id).is_some()
    }

    /// Whether `id` is a directory.
    pub fn is_dir(&self, id: NodeId) -> bool {
        matches!(self.entry(id).map(|e| &e.body), Some(Body::Dir { .. }))
    }

    /// The parent of `id` (the root is its own parent).
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        self.entry(id).map(|e| e.parent)
    }

    /// The name of `id` (empty for the root).
    pub fn name(&self, id: NodeId) -> Option<&str> {
        self.entry(id).map(|e| e.name.as_str())
    }

    /// The qid of `id`.
    pub fn qid(&self, id: NodeId) -> Option<Qid> {
        let e = self.entry(id)?;
        let (ty, version) = match &e.body {
            Body::Dir { .. } => (QidType::DIR, e.version),
            Body::File(n) => {
                let ty = match n.kind() {
                    crate::NodeKind::Append => QidType::APPEND,
                    _ => QidType::FILE,
                };
                (ty, n.attr().version)
            }
        };
        Some(Qid {
            ty,
            version,
            path: id.qid_path(),
        })
    }

    /// Looks `name` up in directory `dir`.
    pub fn lookup(&self, dir: NodeId, name: &str) -> Option<NodeId> {
        match &self.entry(dir)?.body {
            Body::Dir { by_name, .. } => by_name.get(name).copied(),
            Body::File(_) => None,
        }
    }

    /// Resolves an absolute path from the tree's root.
    pub fn resolve(&self, path: &str) -> Option<NodeId> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .try_fold(self.root, |dir, name| self.lookup(dir, name))
    }

    /// The absolute path of `id`.
    pub fn path_of(&self, id: NodeId) -> Option<String> {
        let mut names = Vec::new();
        let mut at = id;
        while at != self.root {
            let e = self.entry(at)?;
            names.push(e.name.as_str());
            at = e.parent;
        }
        let mut path = String::new();
        for name in names.iter().rev() {
            path.push('/');
            path.push_str(name);
        }
        if path.is_empty() {
            path.push('/');
        }
        Some(path)
    }

    fn insert(&mut self, parent: NodeId, name: &str, body: Body) -> Result<NodeId, FsError> {
        check_name(name)?;
        let cookie = match self.entry_mut(parent).map(|e| &mut e.body) {
            Some(Body::Dir {
                by_name,
                next_cookie,
                ..
            }) => {
                if by_name.contains_key(name) {
                    return Err(FsError::Exists);
                }
                let c = *next_cookie;
                *next_cookie += 1;
                c
            }
            Some(Body::File(_)) => return Err(FsError::NotDir),
            None => return Err(FsError::NotFound),
        };
        let entry = Entry {
            name: String::from(name),
            parent,
            cookie,
            body,
            version: 0,
        };
        let id = match self.free.pop() {
            Some(index) => {
                let slot = self.slots.get_mut(index as usize).ok_or(FsError::Io)?;
                slot.0 = slot.0.wrapping_add(1);
                slot.1 = Some(entry);
                NodeId {
                    index,
                    generation: slot.0,
                }
            }
            None => {
                let index = u32::try_from(self.slots.len()).map_err(|_| FsError::NoSpace)?;
                self.slots.push((0, Some(entry)));
                NodeId {
                    index,
                    generation: 0,
                }
            }
        };
        if let Some(p) = self.entry_mut(parent) {
            p.version = p.version.wrapping_add(1);
            if let Body::Dir {
                by_name, by_cookie, ..
            } = &mut p.body
            {
                by_name.insert(String::from(name), id);
                by_cookie.insert(cookie, id);
            }
        }
        Ok(id)
    }

    /// Creates directory `name` in `parent` with permission bits `mode`.
    pub fn mkdir(&mut self, parent: NodeId, name: &str, mode: u32) -> Result<NodeId, FsError> {
        self.insert(
            parent,
            name,
            Body::Dir {
                by_name: BTreeMap::new(),
                by_cookie: BTreeMap::new(),
                next_cookie: FIRST_CHILD_COOKIE,
                mode: mode & 0o777,
            },
        )
    }

    /// Creates every missing directory of an absolute path; returns the last.
    pub fn mkdir_all(&mut self, path: &str, mode: u32) -> Result<NodeId, FsError> {
        let mut at = self.root;
        for name in path.split('/').filter(|s| !s.is_empty()) {
            at = match self.lookup(at, name) {
                Some(id) if self.is_dir(id) => id,
                Some(_) => return Err(FsError::NotDir),
                None => self.mkdir(at, name, mode)?,
            };
        }
        Ok(at)
    }

    /// Adds file `name` to `parent`.
    pub fn add_file(
        &mut self,
        parent: NodeId,
        name: &str,
        node: Box<dyn Node>,
    ) -> Result<NodeId, FsError> {
        self.insert(parent, name, Body::File(node))
    }

    /// Removes `id` and everything under it. The root cannot be removed.
    pub fn remove(&mut self, id: NodeId) -> Result<(), FsError> {
        if id == self.root {
            return Err(FsError::NotPermitted);
        }
        let (parent, name, cookie) = {
            let e = self.entry(id).ok_or(FsError::NotFound)?;
            (e.parent, e.name.clone(), e.cookie)
        };
        if let Some(p) = self.entry_mut(parent) {
            p.version = p.version.wrapping_add(1);
            if let Body::Dir {
                by_name, by_cookie, ..
            } = &mut p.body
            {
                by_name.remove(&name);
                by_cookie.remove(&cookie);
            }
        }
        let mut stack = alloc::vec![id];
        while let Some(at) = stack.pop() {
            let Some(slot) = self.slots.get_mut(at.index as usize) else {
                continue;
            };
            if slot.0 != at.generation {
                continue;
            }
            if let Some(Entry {
                body: Body::Dir { by_name, .. },
                ..
            }) = slot.1.take()
            {
                stack.extend(by_name.into_values());
            }
            self.free.push(at.index);
        }
        Ok(())
    }

    /// The children of `dir` whose cookie is greater than `after`, in order.
    pub fn list(&self, dir: NodeId, after: u64) -> Result<Vec<Listed>, FsError> {
        match &self.entry(dir).ok_or(FsError::NotFound)?.body {
            Body::Dir { by_cookie, .. } => Ok(by_cookie
                .range(after.saturating_add(1)..)
                .filter_map(|(cookie, id)| {
                    Some(Listed {
                        name: self.entry(*id)?.name.clone(),
                        id: *id,
                        cookie: *cookie,
                    })
                })
                .collect()),
            Body::File(_) => Err(FsError::NotDir),
        }
    }

    /// The file node of `id`.
    pub fn node(&self, id: NodeId) -> Option<&dyn Node> {
        match &self.entry(id)?.body {
            Body::File(n) => Some(n.as_ref()),
            Body::Dir { .. } => None,
        }
    }

    /// The file node of `id`, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut dyn Node> {
        match &mut self.entry_mut(id)?.body {
            Body::File(n) => Some(n.as_mut()),
            Body::Dir { .. } => None,
        }
    }

    /// The file node of `id` as its concrete type.
    pub fn node_as<T: Node>(&mut self, id: NodeId) -> Option<&mut T> {
        let node: &mut dyn core::any::Any = self.node_mut(id)?;
        node.downcast_mut::<T>()
    }

    /// The permission bits of a directory.
    pub(crate) fn dir_mode(&self, id: NodeId) -> Option<u32> {
        match &self.entry(id)?.body {
            Body::Dir { mode, .. } => Some(*mode),
            Body::File(_) => None,
        }
    }
}
