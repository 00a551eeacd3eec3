//! [`MemFs`]: a writable in-memory file system for [`FsServer`]. Regular
//! files, directories, symbolic links, device nodes/FIFOs/sockets (as
//! entries only), hard links, renames (over existing entries, across
//! directories), owners, modes, nanosecond times, extended attributes;
//! bounded by [`Limits`] (bytes and inodes, `ENOSPC` past them).
//!
//! Permissions follow POSIX for the numeric user of each attach
//! ([`perm`](crate::perm)); an attach without a numeric user (9P2000) acts
//! as uid 0.
//!
//! [`MemFs::load_dir`] fills the tree from a host directory: each file is
//! read once into the buffer the tree keeps (no second copy), within the
//! limits.
//!
//! [`FsServer`]: secure9p_core::FsServer

use crate::perm::{R, Users, W, X, allowed};
use secure9p_core::bytes::Bytes;
use secure9p_core::codec::{DirEntry, DirEntryWriter, LOpenFlags, Qid};
use secure9p_core::{
    AT_REMOVEDIR, Attr, Caller, Filesystem, FsError, FsStat, Io, MAX_NAME_LEN, Obj, SetAttr,
    SetTime, Timespec, dirent_type_of, file_type, qid_type_of, xattr_flags,
};
use secure9p_core::{FileBytes, SHARE_MIN};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Default byte limit of a [`MemFs`]: 256 MiB of file contents.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default inode limit of a [`MemFs`].
pub const DEFAULT_MAX_INODES: u64 = 100_000;
/// Most hard links to one file (ext4's limit): `EMLINK` past it.
pub const MAX_LINKS: u64 = 65_000;
/// Longest symbolic link target (`PATH_MAX`).
pub const MAX_SYMLINK_LEN: usize = 4095;
/// Most extended attributes one file holds: bounds what a client can hang
/// on a file beside its byte limit.
pub const MAX_XATTRS_PER_FILE: usize = 128;

/// How much a [`MemFs`] may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file contents, symlink targets and xattr values in all.
    pub max_bytes: u64,
    /// Files, directories and links in all (the root included).
    pub max_inodes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
            max_inodes: DEFAULT_MAX_INODES,
        }
    }
}

/// Why [`MemFs::load_dir`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The host directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// What was being read.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The directory does not fit the limits.
    #[error("{path}: {error} (the tree is bounded by its limits)")]
    Tree {
        /// What was being added.
        path: String,
        /// The error.
        error: FsError,
    },
}

enum Body {
    File(FileBytes),
    Dir {
        /// name → (inode, cookie)
        entries: BTreeMap<String, (u64, u64)>,
        /// cookie → name, the listing order.
        order: BTreeMap<u64, String>,
        next_cookie: u64,
        parent: u64,
    },
    Symlink(String),
    Special,
}

struct Inode {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    rdev: u64,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
    version: u32,
    /// Handles naming this inode: it lives on while any does, even unlinked.
    refs: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
    body: Body,
}

impl Inode {
    fn qid(&self, ino: u64) -> Qid {
        Qid {
            ty: qid_type_of(self.mode),
            version: self.version,
            path: ino,
        }
    }
    fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir { .. })
    }
    fn bytes(&self) -> u64 {
        let body = match &self.body {
            Body::File(d) => d.len() as u64,
            Body::Symlink(t) => t.len() as u64,
            _ => 0,
        };
        body + self
            .xattrs
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum::<u64>()
    }
}

struct Handle {
    ino: u64,
    /// The directory and name it was reached by (for `Trename`/`Tremove`).
    parent: Option<(u64, String)>,
    /// The open flags, once opened.
    flags: Option<u32>,
}

/// The first cookie of a directory's entries: 1 and 2 are `.` and `..`.
const FIRST_COOKIE: u64 = 3;
const ROOT: u64 = 1;

fn now() -> Timespec {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        sec: d.as_secs(),
        nsec: u64::from(d.subsec_nanos()),
    }
}

fn uid_of(c: &Caller) -> u32 {
    if c.uid == u32::MAX { 0 } else { c.uid }
}

/// A writable in-memory file system (see the module docs).
pub struct MemFs {
    inodes: BTreeMap<u64, Inode>,
    handles: BTreeMap<u64, Handle>,
    next_ino: u64,
    next_handle: u64,
    limits: Limits,
    bytes: u64,
    users: Users,
}

impl std::fmt::Debug for MemFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemFs")
            .field("inodes", &self.inodes.len())
            .field("handles", &self.handles.len())
            .field("bytes", &self.bytes)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Default for MemFs {
    fn default() -> Self {
        MemFs::new(Limits::default())
    }
}

impl MemFs {
    /// An empty tree (a root directory, mode `0o755`, owned by uid 0) bounded by `limits`.
    pub fn new(limits: Limits) -> Self {
        let t = now();
        let mut inodes = BTreeMap::new();
        inodes.insert(
            ROOT,
            Inode {
                mode: file_type::S_IFDIR | 0o755,
                uid: 0,
                gid: 0,
                nlink: 2,
                rdev: 0,
                atime: t,
                mtime: t,
                ctime: t,
                version: 0,
                refs: 1,
                xattrs: BTreeMap::new(),
                body: Body::Dir {
                    entries: BTreeMap::new(),
                    order: BTreeMap::new(),
                    next_cookie: FIRST_COOKIE,
                    parent: ROOT,
                },
            },
        );
        MemFs {
            inodes,
            handles: BTreeMap::new(),
            next_ino: ROOT + 1,
            next_handle: 1,
            limits,
            bytes: 0,
            users: Users::default(),
        }
    }

    /// Takes group membership from `users` (by default no uid is in any
    /// group, so only owner and other bits apply).
    pub fn with_users(mut self, users: Users) -> Self {
        self.users = users;
        self
    }

    /// Bytes held (file contents, link targets, xattrs).
    pub fn bytes_used(&self) -> u64 {
        self.bytes
    }

    /// Inodes held (the root included).
    pub fn inodes_used(&self) -> u64 {
        self.inodes.len() as u64
    }

    /// Handles given out and not yet released (one per live fid).
    pub fn handles_held(&self) -> usize {
        self.handles.len()
    }

    /// A tree holding a copy of the host directory `dir` (regular files,
    /// directories and symbolic links; other kinds are skipped; names that
    /// are not UTF-8 are skipped), within `limits`. Each file is read once,
    /// straight into the buffer the tree keeps.
    pub fn load_dir(dir: &Path, limits: Limits) -> Result<MemFs, LoadError> {
        let mut fs = MemFs::new(limits);
        let io = |p: &Path, source| LoadError::Io {
            path: p.display().to_string(),
            source,
        };
        let mut todo = vec![(dir.to_path_buf(), ROOT)];
        while let Some((host, ino)) = todo.pop() {
            let mut entries = std::fs::read_dir(&host)
                .map_err(|e| io(&host, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| io(&host, e))?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let meta = path.symlink_metadata().map_err(|e| io(&path, e))?;
                let tree = |error| LoadError::Tree {
                    path: path.display().to_string(),
                    error,
                };
                use std::os::unix::fs::PermissionsExt;
                let perm = meta.permissions().mode() & 0o7777;
                let ft = meta.file_type();
                let body = if ft.is_dir() {
                    None
                } else if ft.is_file() {
                    if fs.bytes + meta.len() > fs.limits.max_bytes {
                        return Err(tree(FsError::NoSpace));
                    }
                    Some(Body::File(FileBytes::from(
                        std::fs::read(&path).map_err(|e| io(&path, e))?,
                    )))
                } else if ft.is_symlink() {
                    let t = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
                    let Some(t) = t.to_str().map(str::to_owned) else {
                        continue;
                    };
                    Some(Body::Symlink(t))
                } else {
                    continue;
                };
                let child = match body {
                    None => fs.new_dir(ino, &name, perm, 0, 0).map_err(tree)?,
                    Some(body) => {
                        let ty = match body {
                            Body::Symlink(_) => file_type::S_IFLNK | 0o777,
                            _ => file_type::S_IFREG | perm,
                        };
                        fs.new_inode(ino, &name, ty, 0, 0, body).map_err(tree)?
                    }
                };
                if ft.is_dir() {
                    todo.push((path, child));
                }
            }
        }
        Ok(fs)
    }

    fn inode(&self, ino: u64) -> Result<&Inode, FsError> {
        self.inodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn inode_mut(&mut self, ino: u64) -> Result<&mut Inode, FsError> {
        self.inodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn handle(&self, obj: Obj) -> Result<&Handle, FsError> {
        self.handles.get(&obj.0).ok_or(FsError::BadFid)
    }

    fn ino_of(&self, obj: Obj) -> Result<u64, FsError> {
        self.handle(obj).map(|h| h.ino)
    }

    fn new_handle(&mut self, ino: u64, parent: Option<(u64, String)>) -> Obj {
        let id = self.next_handle;
        self.next_handle += 1;
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.refs += 1;
        }
        self.handles.insert(
            id,
            Handle {
                ino,
                parent,
                flags: None,
            },
        );
        Obj(id)
    }

    /// Frees an inode nothing names any more.
    fn maybe_free(&mut self, ino: u64) {
        let gone = self
            .inodes
            .get(&ino)
            .is_some_and(|i| i.refs == 0 && i.nlink == 0 && ino != ROOT);
        if gone && let Some(i) = self.inodes.remove(&ino) {
            self.bytes -= i.bytes().min(self.bytes);
        }
    }

    fn check(&self, c: &Caller, ino: u64, want: u32) -> Result<(), FsError> {
        let i = self.inode(ino)?;
        if allowed(&self.users, uid_of(c), i.mode, i.uid, i.gid, want) {
            Ok(())
        } else {
            Err(FsError::AccessDenied)
        }
    }

    fn dir_entries(&self, dir: u64) -> Result<&BTreeMap<String, (u64, u64)>, FsError> {
        match &self.inode(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(FsError::NotDir),
        }
    }

    fn lookup(&self, dir: u64, name: &str) -> Result<u64, FsError> {
        self.dir_entries(dir)?
            .get(name)
            .map(|e| e.0)
            .ok_or(FsError::NotFound)
    }

    fn touch(&mut self, ino: u64, data: bool) {
        let t = now();
        if let Some(i) = self.inodes.get_mut(&ino) {
            if data {
                i.mtime = t;
            }
            i.ctime = t;
            i.version = i.version.wrapping_add(1);
        }
    }

    /// Adds `name` → `child` to directory `dir`.
    fn insert_entry(&mut self, dir: u64, name: &str, child: u64) -> Result<(), FsError> {
        match &mut self.inode_mut(dir)?.body {
            Body::Dir {
                entries,
                order,
                next_cookie,
                ..
            } => {
                if entries.contains_key(name) {
                    return Err(FsError::Exists);
                }
                let c = *next_cookie;
                *next_cookie += 1;
                entries.insert(name.to_owned(), (child, c));
                order.insert(c, name.to_owned());
            }
            _ => return Err(FsError::NotDir),
        }
        self.touch(dir, true);
        Ok(())
    }

    /// Takes `name` out of directory `dir`; returns its inode.
    fn remove_entry(&mut self, dir: u64, name: &str) -> Result<u64, FsError> {
        let ino = match &mut self.inode_mut(dir)?.body {
            Body::Dir { entries, order, .. } => {
                let (ino, c) = entries.remove(name).ok_or(FsError::NotFound)?;
                order.remove(&c);
                ino
            }
            _ => return Err(FsError::NotDir),
        };
        self.touch(dir, true);
        Ok(ino)
    }

    fn new_inode(
        &mut self,
        dir: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        body: Body,
    ) -> Result<u64, FsError> {
        secure9p_core::check_name(name)?;
        if self.dir_entries(dir)?.contains_key(name) {
            return Err(FsError::Exists);
        }
        if self.inodes.len() as u64 >= self.limits.max_inodes {
            return Err(FsError::NoSpace);
        }
        let t = now();
        let node = Inode {
            mode,
            uid,
            gid,
            nlink: 1,
            rdev: 0,
            atime: t,
            mtime: t,
            ctime: t,
            version: 0,
            refs: 0,
            xattrs: BTreeMap::new(),
            body,
        };
        let bytes = node.bytes();
        if self.bytes + bytes > self.limits.max_bytes {
            return Err(FsError::NoSpace);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, node);
        self.bytes += bytes;
        self.insert_entry(dir, name, ino)?;
        Ok(ino)
    }

    fn new_dir(
        &mut self,
        dir: u64,
        name: &str,
        perm: u32,
        uid: u32,
        gid: u32,
    ) -> Result<u64, FsError> {
        let ino = self.new_inode(
            dir,
            name,
            file_type::S_IFDIR | (perm & 0o7777),
            uid,
            gid,
            Body::Dir {
                entries: BTreeMap::new(),
                order: BTreeMap::new(),
                next_cookie: FIRST_COOKIE,
                parent: dir,
            },
        )?;
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.nlink = 2;
        }
        if let Some(p) = self.inodes.get_mut(&dir) {
            p.nlink += 1;
        }
        Ok(ino)
    }

    /// Checks for creating in `dir`: a directory the caller may write and search.
    fn creating(&self, c: &Caller, dir: u64) -> Result<(), FsError> {
        if !self.inode(dir)?.is_dir() {
            return Err(FsError::NotDir);
        }
        self.check(c, dir, W | X)
    }

    /// The group of a new entry: the one asked, else the directory's
    /// (setgid directories always give theirs).
    fn new_gid(&self, dir: u64, gid: u32) -> u32 {
        match self.inodes.get(&dir) {
            Some(d) if d.mode & 0o2000 != 0 || gid == u32::MAX => d.gid,
            _ => gid,
        }
    }

    /// Sticky-directory rule: in a `+t` directory only the owner of the
    /// entry or of the directory (or root) may remove or rename it.
    fn sticky_ok(&self, c: &Caller, dir: u64, ino: u64) -> Result<(), FsError> {
        let uid = uid_of(c);
        let d = self.inode(dir)?;
        if d.mode & 0o1000 == 0 || uid == 0 || uid == d.uid || uid == self.inode(ino)?.uid {
            Ok(())
        } else {
            Err(FsError::NotPermitted)
        }
    }

    /// Drops one link of `ino` (its entry is already gone).
    fn unlinked(&mut self, ino: u64) {
        let dir = self.inodes.get(&ino).is_some_and(Inode::is_dir);
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.nlink = if dir { 0 } else { i.nlink.saturating_sub(1) };
            i.ctime = now();
        }
        self.maybe_free(ino);
    }

    fn is_empty_dir(&self, ino: u64) -> Result<bool, FsError> {
        Ok(self.dir_entries(ino)?.is_empty())
    }

    /// Whether `ino` is `anc` or lies beneath it.
    fn is_within(&self, mut ino: u64, anc: u64) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            match self.inodes.get(&ino).map(|i| &i.body) {
                Some(Body::Dir { parent, .. }) if *parent != ino => ino = *parent,
                _ => return false,
            }
        }
    }

    fn do_rename(
        &mut self,
        c: &Caller,
        olddir: u64,
        oldname: &str,
        newdir: u64,
        newname: &str,
    ) -> Result<(), FsError> {
        let src = self.lookup(olddir, oldname)?;
        if !self.inode(newdir)?.is_dir() {
            return Err(FsError::NotDir);
        }
        self.check(c, olddir, W | X)?;
        self.check(c, newdir, W | X)?;
        self.sticky_ok(c, olddir, src)?;
        let src_dir = self.inode(src)?.is_dir();
        if src_dir && self.is_within(newdir, src) {
            return Err(FsError::Invalid);
        }
        let dst = self.lookup(newdir, newname).ok();
        if let Some(dst) = dst {
            if dst == src {
                return Ok(());
            }
            self.sticky_ok(c, newdir, dst)?;
            let dst_dir = self.inode(dst)?.is_dir();
            match (src_dir, dst_dir) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if !self.is_empty_dir(dst)? => return Err(FsError::NotEmpty),
                _ => {}
            }
            // A directory moving to another parent rewrites its `..`: the
            // caller must be able to write it.
            if src_dir && olddir != newdir {
                self.check(c, src, W)?;
            }
            self.remove_entry(newdir, newname)?;
            if dst_dir && let Some(p) = self.inodes.get_mut(&newdir) {
                p.nlink = p.nlink.saturating_sub(1);
            }
            self.unlinked(dst);
        } else if src_dir && olddir != newdir {
            self.check(c, src, W)?;
        }
        self.remove_entry(olddir, oldname)?;
        self.insert_entry(newdir, newname, src)?;
        if src_dir && olddir != newdir {
            if let Some(Body::Dir { parent, .. }) = self.inodes.get_mut(&src).map(|i| &mut i.body) {
                *parent = newdir;
            }
            if let Some(p) = self.inodes.get_mut(&olddir) {
                p.nlink = p.nlink.saturating_sub(1);
            }
            if let Some(p) = self.inodes.get_mut(&newdir) {
                p.nlink += 1;
            }
        }
        self.touch(src, false);
        // Handles that reached `src` by its old name follow it.
        for h in self.handles.values_mut() {
            if h.ino == src
                && h.parent
                    .as_ref()
                    .is_some_and(|(d, n)| *d == olddir && n == oldname)
            {
                h.parent = Some((newdir, newname.to_owned()));
            }
        }
        Ok(())
    }

    fn do_unlink(&mut self, c: &Caller, dir: u64, name: &str, rmdir: bool) -> Result<(), FsError> {
        let ino = self.lookup(dir, name)?;
        self.check(c, dir, W | X)?;
        self.sticky_ok(c, dir, ino)?;
        let is_dir = self.inode(ino)?.is_dir();
        match (rmdir, is_dir) {
            (true, false) => return Err(FsError::NotDir),
            (false, true) => return Err(FsError::IsDir),
            (true, true) if !self.is_empty_dir(ino)? => return Err(FsError::NotEmpty),
            _ => {}
        }
        self.remove_entry(dir, name)?;
        if is_dir && let Some(p) = self.inodes.get_mut(&dir) {
            p.nlink = p.nlink.saturating_sub(1);
        }
        self.unlinked(ino);
        Ok(())
    }

    fn set_size(&mut self, ino: u64, size: u64) -> Result<(), FsError> {
        let size_us = usize::try_from(size).map_err(|_| FsError::TooBig)?;
        let (bytes, max) = (self.bytes, self.limits.max_bytes);
        let i = self.inode_mut(ino)?;
        let Body::File(file) = &mut i.body else {
            return Err(if i.is_dir() {
                FsError::IsDir
            } else {
                FsError::Invalid
            });
        };
        let old = file.len() as u64;
        if size > old && bytes + (size - old) > max {
            return Err(FsError::NoSpace);
        }
        file.vec_mut().resize(size_us, 0);
        self.bytes = (bytes + size).saturating_sub(old);
        self.touch(ino, true);
        Ok(())
    }

    /// Copies the file of `obj` at `offset` into `buf`: the bytes copied.
    fn read_into(&self, obj: Obj, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        let ino = self.ino_of(obj)?;
        match &self.inode(ino)?.body {
            Body::File(data) => {
                let src = secure9p_core::slice_at(data.as_slice(), offset, buf.len() as u32);
                let n = src.len().min(buf.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
                    dst.copy_from_slice(src);
                }
                Ok(n)
            }
            Body::Dir { .. } => Err(FsError::IsDir),
            _ => Err(FsError::Invalid),
        }
    }

    fn attr(&self, ino: u64) -> Result<Attr, FsError> {
        let i = self.inode(ino)?;
        let size = match &i.body {
            Body::File(d) => d.len() as u64,
            Body::Symlink(t) => t.len() as u64,
            Body::Dir { entries, .. } => entries.len() as u64,
            Body::Special => 0,
        };
        Ok(Attr {
            qid: i.qid(ino),
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            nlink: i.nlink,
            rdev: i.rdev,
            size,
            blocks: size.div_ceil(512),
            blksize: 4096,
            atime: i.atime,
            mtime: i.mtime,
            ctime: i.ctime,
        })
    }
}

impl Filesystem for MemFs {
    fn attach(&mut self, _: &Caller, _: &str) -> Result<(Obj, Qid), FsError> {
        let qid = self.inode(ROOT)?.qid(ROOT);
        Ok((self.new_handle(ROOT, None), qid))
    }

    fn walk(&mut self, c: &Caller, dir: Obj, name: &str) -> Result<(Obj, Qid), FsError> {
        let d = self.ino_of(dir)?;
        if !self.inode(d)?.is_dir() {
            return Err(FsError::NotDir);
        }
        self.check(c, d, X)?;
        let ino = self.lookup(d, name)?;
        let qid = self.inode(ino)?.qid(ino);
        Ok((self.new_handle(ino, Some((d, name.to_owned()))), qid))
    }

    fn walk_parent(&mut self, c: &Caller, dir: Obj) -> Result<(Obj, Qid), FsError> {
        let d = self.ino_of(dir)?;
        self.check(c, d, X)?;
        let parent = match &self.inode(d)?.body {
            Body::Dir { parent, .. } => *parent,
            _ => return Err(FsError::NotDir),
        };
        let qid = self.inode(parent)?.qid(parent);
        Ok((self.new_handle(parent, None), qid))
    }

    fn clone_obj(&mut self, obj: Obj) -> Result<Obj, FsError> {
        let h = self.handle(obj)?;
        let (ino, parent) = (h.ino, h.parent.clone());
        Ok(self.new_handle(ino, parent))
    }

    fn release(&mut self, obj: Obj) {
        if let Some(h) = self.handles.remove(&obj.0) {
            if let Some(i) = self.inodes.get_mut(&h.ino) {
                i.refs = i.refs.saturating_sub(1);
            }
            self.maybe_free(h.ino);
        }
    }

    fn getattr(&mut self, _: &Caller, obj: Obj) -> Result<Attr, FsError> {
        let ino = self.ino_of(obj)?;
        self.attr(ino)
    }

    fn setattr(&mut self, c: &Caller, obj: Obj, set: &SetAttr) -> Result<(), FsError> {
        let ino = self.ino_of(obj)?;
        let uid = uid_of(c);
        let (owner, gid_now) = {
            let i = self.inode(ino)?;
            (i.uid, i.gid)
        };
        let is_owner = uid == 0 || uid == owner;
        if set.mode.is_some() && !is_owner {
            return Err(FsError::NotPermitted);
        }
        if let Some(new) = set.uid
            && uid != 0
            && new != owner
        {
            return Err(FsError::NotPermitted);
        }
        // The owner may give the file to a group it is in; root to any.
        if let Some(new) = set.gid
            && new != gid_now
            && (uid != owner || !self.users.in_group(uid, new))
            && uid != 0
        {
            return Err(FsError::NotPermitted);
        }
        for t in [set.atime, set.mtime].into_iter().flatten() {
            match t {
                SetTime::Now if !is_owner => self.check(c, ino, W)?,
                SetTime::At(_) if !is_owner => return Err(FsError::NotPermitted),
                _ => {}
            }
        }
        if let Some(size) = set.size {
            if self.inode(ino)?.is_dir() {
                return Err(FsError::IsDir);
            }
            // ftruncate through a descriptor open for writing needs no
            // write permission on the file any more.
            if !set.writer {
                self.check(c, ino, W)?;
            }
            self.set_size(ino, size)?;
            if let Some(i) = self.inodes.get_mut(&ino)
                && uid != 0
            {
                i.mode &= !0o6000;
            }
        }
        let t = now();
        let i = self.inodes.get_mut(&ino).ok_or(FsError::NotFound)?;
        if let Some(mut mode) = set.mode {
            // A non-root owner outside the file's group cannot set S_ISGID.
            if uid != 0 && !self.users.in_group(uid, i.gid) {
                mode &= !0o2000;
            }
            i.mode = (i.mode & file_type::S_IFMT) | (mode & 0o7777);
        }
        let chown = set.uid.is_some_and(|u| u != i.uid) || set.gid.is_some_and(|g| g != i.gid);
        if let Some(u) = set.uid {
            i.uid = u;
        }
        if let Some(g) = set.gid {
            i.gid = g;
        }
        // chown clears set-user-ID and set-group-ID on regular files.
        if chown && i.mode & file_type::S_IFMT != file_type::S_IFDIR {
            i.mode &= !0o6000;
        }
        match set.atime {
            Some(SetTime::Now) => i.atime = t,
            Some(SetTime::At(at)) => i.atime = at,
            None => {}
        }
        match set.mtime {
            Some(SetTime::Now) => i.mtime = t,
            Some(SetTime::At(at)) => i.mtime = at,
            None => {}
        }
        i.ctime = t;
        i.version = i.version.wrapping_add(1);
        Ok(())
    }

    fn open(&mut self, c: &Caller, obj: Obj, flags: u32) -> Result<Qid, FsError> {
        let ino = self.ino_of(obj)?;
        let lf = LOpenFlags::from_bits_retain(flags);
        let i = self.inode(ino)?;
        match i.body {
            Body::Symlink(_) => return Err(FsError::Loop),
            Body::Special => return Err(FsError::NotSupported),
            Body::Dir { .. } if lf.writes() => return Err(FsError::IsDir),
            _ => {}
        }
        let mut want = 0;
        if lf.reads() {
            want |= R;
        }
        if lf.writes() || lf.contains(LOpenFlags::TRUNC) {
            want |= W;
        }
        self.check(c, ino, want)?;
        if lf.contains(LOpenFlags::TRUNC) && lf.writes() && !self.inode(ino)?.is_dir() {
            self.set_size(ino, 0)?;
        }
        if let Some(h) = self.handles.get_mut(&obj.0) {
            h.flags = Some(flags);
        }
        Ok(self.inode(ino)?.qid(ino))
    }

    fn create(
        &mut self,
        c: &Caller,
        dir: Obj,
        name: &str,
        flags: u32,
        mode: u32,
        gid: u32,
    ) -> Result<(Obj, Qid), FsError> {
        let d = self.ino_of(dir)?;
        self.creating(c, d)?;
        let gid = self.new_gid(d, gid);
        let ino = self.new_inode(
            d,
            name,
            file_type::S_IFREG | (mode & 0o7777),
            uid_of(c),
            gid,
            Body::File(FileBytes::default()),
        )?;
        let obj = self.new_handle(ino, Some((d, name.to_owned())));
        if let Some(h) = self.handles.get_mut(&obj.0) {
            h.flags = Some(flags);
        }
        let qid = self.inode(ino)?.qid(ino);
        Ok((obj, qid))
    }

    fn read(&mut self, _: &Caller, obj: Obj, offset: u64, buf: &mut [u8]) -> Io<usize> {
        Io::Ready(self.read_into(obj, offset, buf))
    }

    fn try_getattr(&self, _: &Caller, obj: Obj) -> Option<Result<Attr, FsError>> {
        Some(self.ino_of(obj).and_then(|ino| self.attr(ino)))
    }

    /// Reads at once, except a large read of a file whose contents are not
    /// shared yet: that one goes to `read_shared`, which shares them so that
    /// the reads after it are sent without a copy.
    fn try_read(
        &self,
        _: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        let ino = match self.ino_of(obj) {
            Ok(ino) => ino,
            Err(e) => return Some(Err(e)),
        };
        match self.inode(ino).map(|i| &i.body) {
            Ok(Body::File(data)) if count >= SHARE_MIN && !data.is_shared() => None,
            Ok(Body::File(data)) => {
                out.extend_from_slice(secure9p_core::slice_at(data.as_slice(), offset, count));
                Some(Ok(()))
            }
            Ok(Body::Dir { .. }) => Some(Err(FsError::IsDir)),
            Ok(_) => Some(Err(FsError::Invalid)),
            Err(e) => Some(Err(e)),
        }
    }

    fn try_read_shared(
        &self,
        _: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
    ) -> Option<Result<Bytes, FsError>> {
        let ino = match self.ino_of(obj) {
            Ok(ino) => ino,
            Err(e) => return Some(Err(e)),
        };
        match self.inode(ino).map(|i| &i.body) {
            Ok(Body::File(data)) => data.try_slice(offset, count).map(Ok),
            Ok(Body::Dir { .. }) => Some(Err(FsError::IsDir)),
            Ok(_) => Some(Err(FsError::Invalid)),
            Err(e) => Some(Err(e)),
        }
    }

    fn read_shared(
        &mut self,
        _: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
    ) -> Option<Result<Bytes, FsError>> {
        let r = (|| {
            let ino = self.ino_of(obj)?;
            match &mut self.inode_mut(ino)?.body {
                Body::File(data) => Ok(data.slice(offset, count)),
                Body::Dir { .. } => Err(FsError::IsDir),
                _ => Err(FsError::Invalid),
            }
        })();
        Some(r)
    }

    fn write(&mut self, c: &Caller, obj: Obj, offset: u64, data: &[u8]) -> Io<u32> {
        let r = (|| {
            let h = self.handle(obj)?;
            let (ino, flags) = (h.ino, h.flags.unwrap_or(0));
            let append = flags & LOpenFlags::APPEND.bits() != 0;
            let (bytes, max) = (self.bytes, self.limits.max_bytes);
            let i = self.inode_mut(ino)?;
            let Body::File(file) = &mut i.body else {
                return Err(FsError::Invalid);
            };
            let buf = file.vec_mut();
            let at = if append { buf.len() as u64 } else { offset };
            let at = usize::try_from(at).map_err(|_| FsError::TooBig)?;
            let end = at.checked_add(data.len()).ok_or(FsError::TooBig)?;
            let grow = (end as u64).saturating_sub(buf.len() as u64);
            if bytes + grow > max {
                return Err(FsError::NoSpace);
            }
            if end > buf.len() {
                buf.resize(end, 0);
            }
            if let Some(dst) = buf.get_mut(at..end) {
                dst.copy_from_slice(data);
            }
            // A write by anyone but root clears set-user-ID and set-group-ID.
            if uid_of(c) != 0 {
                i.mode &= !0o6000;
            }
            self.bytes = bytes + grow;
            self.touch(ino, true);
            u32::try_from(data.len()).map_err(|_| FsError::TooBig)
        })();
        Io::Ready(r)
    }

    fn readdir(
        &mut self,
        _: &Caller,
        obj: Obj,
        offset: u64,
        out: &mut DirEntryWriter<'_>,
    ) -> Result<(), FsError> {
        let ino = self.ino_of(obj)?;
        let i = self.inode(ino)?;
        let Body::Dir {
            entries,
            order,
            parent,
            ..
        } = &i.body
        else {
            return Err(FsError::NotDir);
        };
        let dot = [(1u64, ".", ino), (2, "..", *parent)];
        for (cookie, name, at) in dot {
            if offset < cookie {
                let qid = self.inode(at)?.qid(at);
                let e = DirEntry {
                    qid,
                    offset: cookie,
                    ty: 4,
                    name,
                };
                if !out.push(&e).map_err(|_| FsError::Invalid)? {
                    return Ok(());
                }
            }
        }
        for (cookie, name) in order.range(offset.max(FIRST_COOKIE - 1) + 1..) {
            let Some((child, _)) = entries.get(name) else {
                continue;
            };
            let c = self.inode(*child)?;
            let e = DirEntry {
                qid: c.qid(*child),
                offset: *cookie,
                ty: dirent_type_of(c.mode),
                name,
            };
            if !out.push(&e).map_err(|_| FsError::Invalid)? {
                break;
            }
        }
        Ok(())
    }

    fn mkdir(
        &mut self,
        c: &Caller,
        dir: Obj,
        name: &str,
        mode: u32,
        gid: u32,
    ) -> Result<Qid, FsError> {
        let d = self.ino_of(dir)?;
        self.creating(c, d)?;
        let gid = self.new_gid(d, gid);
        let mut perm = mode & 0o7777;
        if self.inode(d)?.mode & 0o2000 != 0 {
            perm |= 0o2000;
        }
        let ino = self.new_dir(d, name, perm, uid_of(c), gid)?;
        Ok(self.inode(ino)?.qid(ino))
    }

    fn symlink(
        &mut self,
        c: &Caller,
        dir: Obj,
        name: &str,
        target: &str,
        gid: u32,
    ) -> Result<Qid, FsError> {
        let d = self.ino_of(dir)?;
        if target.len() > MAX_SYMLINK_LEN {
            return Err(FsError::NameTooLong);
        }
        self.creating(c, d)?;
        let gid = self.new_gid(d, gid);
        let ino = self.new_inode(
            d,
            name,
            file_type::S_IFLNK | 0o777,
            uid_of(c),
            gid,
            Body::Symlink(target.to_owned()),
        )?;
        Ok(self.inode(ino)?.qid(ino))
    }

    fn mknod(
        &mut self,
        c: &Caller,
        dir: Obj,
        name: &str,
        mode: u32,
        major: u32,
        minor: u32,
        gid: u32,
    ) -> Result<Qid, FsError> {
        let d = self.ino_of(dir)?;
        let ty = mode & file_type::S_IFMT;
        let body = match ty {
            file_type::S_IFREG | 0 => Body::File(FileBytes::default()),
            file_type::S_IFIFO | file_type::S_IFSOCK => Body::Special,
            file_type::S_IFCHR | file_type::S_IFBLK if uid_of(c) == 0 => Body::Special,
            file_type::S_IFCHR | file_type::S_IFBLK => return Err(FsError::NotPermitted),
            _ => return Err(FsError::Invalid),
        };
        self.creating(c, d)?;
        let gid = self.new_gid(d, gid);
        let ty = if ty == 0 { file_type::S_IFREG } else { ty };
        let ino = self.new_inode(d, name, ty | (mode & 0o7777), uid_of(c), gid, body)?;
        let i = self.inode_mut(ino)?;
        i.rdev = (u64::from(major) << 8) | u64::from(minor);
        Ok(i.qid(ino))
    }

    fn link(&mut self, c: &Caller, dir: Obj, target: Obj, name: &str) -> Result<(), FsError> {
        let d = self.ino_of(dir)?;
        let t = self.ino_of(target)?;
        let ti = self.inode(t)?;
        if ti.is_dir() {
            return Err(FsError::NotPermitted);
        }
        if ti.nlink == 0 {
            return Err(FsError::NotFound);
        }
        if ti.nlink >= MAX_LINKS {
            return Err(FsError::TooManyLinks);
        }
        self.creating(c, d)?;
        self.insert_entry(d, name, t)?;
        let i = self.inode_mut(t)?;
        i.nlink += 1;
        i.ctime = now();
        Ok(())
    }

    fn renameat(
        &mut self,
        c: &Caller,
        olddir: Obj,
        oldname: &str,
        newdir: Obj,
        newname: &str,
    ) -> Result<(), FsError> {
        let (o, n) = (self.ino_of(olddir)?, self.ino_of(newdir)?);
        self.do_rename(c, o, oldname, n, newname)
    }

    fn rename(
        &mut self,
        c: &Caller,
        obj: Obj,
        newdir: Option<Obj>,
        name: &str,
    ) -> Result<(), FsError> {
        let (dir, old) = self.handle(obj)?.parent.clone().ok_or(FsError::Busy)?;
        let n = match newdir {
            Some(d) => self.ino_of(d)?,
            None => dir,
        };
        self.do_rename(c, dir, &old, n, name)
    }

    fn unlinkat(&mut self, c: &Caller, dir: Obj, name: &str, flags: u32) -> Result<(), FsError> {
        let d = self.ino_of(dir)?;
        self.do_unlink(c, d, name, flags & AT_REMOVEDIR != 0)
    }

    fn remove(&mut self, c: &Caller, obj: Obj) -> Result<(), FsError> {
        let h = self.handle(obj)?;
        let ino = h.ino;
        let (dir, name) = h.parent.clone().ok_or(FsError::Busy)?;
        if self.lookup(dir, &name).ok() != Some(ino) {
            return Err(FsError::NotFound);
        }
        let rmdir = self.inode(ino)?.is_dir();
        self.do_unlink(c, dir, &name, rmdir)
    }

    fn readlink(&mut self, _: &Caller, obj: Obj) -> Result<String, FsError> {
        let ino = self.ino_of(obj)?;
        match &self.inode(ino)?.body {
            Body::Symlink(t) => Ok(t.clone()),
            _ => Err(FsError::Invalid),
        }
    }

    fn statfs(&mut self, _: &Caller, _: Obj) -> Result<FsStat, FsError> {
        let blocks = self.limits.max_bytes / 4096;
        let free = self.limits.max_bytes.saturating_sub(self.bytes) / 4096;
        Ok(FsStat {
            bsize: 4096,
            blocks,
            bfree: free,
            bavail: free,
            files: self.limits.max_inodes,
            ffree: self
                .limits
                .max_inodes
                .saturating_sub(self.inodes.len() as u64),
            namelen: MAX_NAME_LEN as u32,
        })
    }

    fn xattr_get(&mut self, c: &Caller, obj: Obj, name: &str) -> Result<Vec<u8>, FsError> {
        let ino = self.ino_of(obj)?;
        let i = self.inode(ino)?;
        if name.is_empty() {
            let mut list = Vec::new();
            for k in i.xattrs.keys() {
                list.extend_from_slice(k.as_bytes());
                list.push(0);
            }
            return Ok(list);
        }
        if name.starts_with("user.") {
            self.check(c, ino, R)?;
        }
        self.inode(ino)?
            .xattrs
            .get(name)
            .cloned()
            .ok_or(FsError::NoData)
    }

    fn xattr_set(
        &mut self,
        c: &Caller,
        obj: Obj,
        name: &str,
        value: &[u8],
        flags: u32,
        remove: bool,
    ) -> Result<(), FsError> {
        let ino = self.ino_of(obj)?;
        if !(name.starts_with("user.")
            || name.starts_with("trusted.")
            || name.starts_with("security."))
        {
            return Err(FsError::NotSupported);
        }
        if name.starts_with("user.") {
            self.check(c, ino, W)?;
        } else if uid_of(c) != 0 {
            return Err(FsError::NotPermitted);
        }
        let (bytes, max) = (self.bytes, self.limits.max_bytes);
        let i = self.inode_mut(ino)?;
        let old = i.xattrs.get(name).map(|v| (name.len() + v.len()) as u64);
        if remove {
            if old.is_none() {
                return Err(FsError::NoData);
            }
            i.xattrs.remove(name);
            self.bytes = bytes - old.unwrap_or(0).min(bytes);
            self.touch(ino, false);
            return Ok(());
        }
        if flags & xattr_flags::CREATE != 0 && old.is_some() {
            return Err(FsError::Exists);
        }
        if flags & xattr_flags::REPLACE != 0 && old.is_none() {
            return Err(FsError::NoData);
        }
        if old.is_none() && i.xattrs.len() >= MAX_XATTRS_PER_FILE {
            return Err(FsError::NoSpace);
        }
        let new = (name.len() + value.len()) as u64;
        let after = bytes - old.unwrap_or(0).min(bytes) + new;
        if after > max {
            return Err(FsError::NoSpace);
        }
        i.xattrs.insert(name.to_owned(), value.to_vec());
        self.bytes = after;
        self.touch(ino, false);
        Ok(())
    }
}
