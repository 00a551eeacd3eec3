//! The provider trait of a complete 9P2000.L file server: [`Filesystem`].
//!
//! The [`Namespace`](crate::Namespace) engine serves a synthetic tree whose
//! directories the engine owns; a `Filesystem` owns its whole tree (an
//! in-memory file system, a directory on disk) and the
//! [`FsServer`](crate::FsServer) engine hands it every request: walks,
//! creation, renames, links, attributes, extended attributes. Locks are
//! kept by the engine itself ([`LockTable`](crate::LockTable)), so every
//! provider gets POSIX byte-range semantics without writing them.
//!
//! A provider names its files by [`Obj`] handles it gives out (one per fid)
//! and takes back with [`Filesystem::release`]. Names it is given were
//! checked by the engine ([`check_name`]): never empty, never `.` or `..`
//! (walks of `..` arrive as [`Filesystem::walk_parent`]), no `/`, at most
//! [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes. What a provider does not
//! support it answers with [`FsError::NotSupported`] (`EOPNOTSUPP`): every
//! method but the few a read-only tree needs has that as its default.
//!
//! `read` and `write` may defer ([`Io::Defer`]) like a [`Node`](crate::Node)'s;
//! the other calls answer at once and must not block for long.
//!
//! Every method takes `&mut self` and is called with the server to itself,
//! except the `try_` ones (`try_getattr`, `try_read`, `try_read_shared`),
//! which take `&self` and may run on several threads at once for different
//! sessions ([`FsServer::handle_concurrent`](crate::FsServer::handle_concurrent)).
//! Their default declines, so a provider that does not write them is served
//! exactly as before.

use crate::error::FsError;
use crate::node::{Io, Token};
use crate::server::SessionId;
use alloc::string::String;
use alloc::vec::Vec;
use secure9p_codec::{DirEntryWriter, Qid, QidType};

/// A provider's handle on one file, given out by `attach`, `walk`, `create`
/// and the like, and taken back by [`Filesystem::release`]. The engine never
/// looks inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Obj(pub u64);

/// Who asks, and when.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The session of the request (a provider may bound what each holds).
    pub session: SessionId,
    /// The numeric user of the attach (`n_uname`; `u32::MAX` if none given).
    pub uid: u32,
    /// The time, unix seconds.
    pub now: u64,
    /// The token that completes this request if the provider defers it.
    pub token: Token,
}

/// A point in time as `stat(2)` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Timespec {
    /// Seconds since the epoch.
    pub sec: u64,
    /// Nanoseconds within the second.
    pub nsec: u64,
}

/// The attributes of a file (`Rgetattr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attr {
    /// The qid (its `path` is the inode number).
    pub qid: Qid,
    /// File type and permission bits, as `st_mode`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u64,
    /// Device number of a device file.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks held.
    pub blocks: u64,
    /// Preferred I/O size.
    pub blksize: u64,
    /// Last access.
    pub atime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Last status change.
    pub ctime: Timespec,
}

/// A time a `Tsetattr` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// The server's current time (`utimensat(UTIME_NOW)`).
    Now,
    /// This time.
    At(Timespec),
}

/// What a `Tsetattr` changes; `None` leaves a field alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// New permission bits (the low 12 bits of `st_mode`).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SetTime>,
    /// New modification time.
    pub mtime: Option<SetTime>,
    /// Only the change time is asked for (`chown(-1, -1)`, `utimes` with nothing set).
    pub ctime: bool,
    /// The request came through a fid open for writing (`ftruncate(2)`): a
    /// size change then needs no write permission on the file.
    pub writer: bool,
}

/// What `Tstatfs` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStat {
    /// Block size.
    pub bsize: u32,
    /// Blocks in all.
    pub blocks: u64,
    /// Blocks free.
    pub bfree: u64,
    /// Blocks free to unprivileged users.
    pub bavail: u64,
    /// Inodes in all.
    pub files: u64,
    /// Inodes free.
    pub ffree: u64,
    /// Longest name.
    pub namelen: u32,
}

/// `setxattr(2)` flags carried by `Txattrcreate`.
pub mod xattr_flags {
    /// Fail if the attribute exists.
    pub const CREATE: u32 = 1;
    /// Fail if the attribute does not exist.
    pub const REPLACE: u32 = 2;
}

/// `AT_REMOVEDIR` of `Tunlinkat`.
pub const AT_REMOVEDIR: u32 = 0x200;

/// `S_IFMT` and the file types of `st_mode`.
pub mod file_type {
    /// The file-type bits.
    pub const S_IFMT: u32 = 0o170000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040000;
    /// Regular file.
    pub const S_IFREG: u32 = 0o100000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120000;
    /// Character device.
    pub const S_IFCHR: u32 = 0o020000;
    /// Block device.
    pub const S_IFBLK: u32 = 0o060000;
    /// FIFO.
    pub const S_IFIFO: u32 = 0o010000;
    /// Socket.
    pub const S_IFSOCK: u32 = 0o140000;
}

/// The qid type of an `st_mode`.
pub fn qid_type_of(mode: u32) -> QidType {
    match mode & file_type::S_IFMT {
        file_type::S_IFDIR => QidType::DIR,
        file_type::S_IFLNK => QidType::SYMLINK,
        _ => QidType::FILE,
    }
}

/// The `d_type` of an `st_mode` (for `Rreaddir`).
pub fn dirent_type_of(mode: u32) -> u8 {
    match mode & file_type::S_IFMT {
        file_type::S_IFDIR => 4,
        file_type::S_IFREG => 8,
        file_type::S_IFLNK => 10,
        file_type::S_IFCHR => 2,
        file_type::S_IFBLK => 6,
        file_type::S_IFIFO => 1,
        file_type::S_IFSOCK => 12,
        _ => 0,
    }
}

/// Checks a name a client gives for a new or existing entry: not empty, not
/// `.` or `..`, no `/`, at most [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes
/// (NUL never gets here: the codec refuses it).
pub fn check_name(name: &str) -> Result<(), FsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(FsError::Invalid);
    }
    if name.len() > crate::namespace::MAX_NAME_LEN {
        return Err(FsError::NameTooLong);
    }
    Ok(())
}

/// A complete file system served by [`FsServer`](crate::FsServer). Object
/// safe; every method gets the [`Caller`]. Errors are the errno the client
/// sees. The engine has checked names, fid states and open modes before a
/// call; the provider checks permissions (it knows the owners and modes).
pub trait Filesystem: Send + Sync {
    /// The root of the tree exported under `aname` for `caller`
    /// (`ENOENT` for an unknown export).
    fn attach(&mut self, caller: &Caller, aname: &str) -> Result<(Obj, Qid), FsError>;

    /// Looks `name` up in directory `dir`: a new handle on the entry.
    fn walk(&mut self, caller: &Caller, dir: Obj, name: &str) -> Result<(Obj, Qid), FsError>;

    /// The parent of directory `dir` (the root is its own parent): a new handle.
    fn walk_parent(&mut self, caller: &Caller, dir: Obj) -> Result<(Obj, Qid), FsError>;

    /// A second handle on the same file (a walk of no names).
    fn clone_obj(&mut self, obj: Obj) -> Result<Obj, FsError>;

    /// Forgets a handle: its fid was clunked, removed, or its session
    /// closed. An open handle is closed first.
    fn release(&mut self, obj: Obj);

    /// The file's attributes.
    fn getattr(&mut self, caller: &Caller, obj: Obj) -> Result<Attr, FsError>;

    /// Changes attributes.
    fn setattr(&mut self, caller: &Caller, obj: Obj, set: &SetAttr) -> Result<(), FsError> {
        let _ = (caller, obj, set);
        Err(FsError::NotSupported)
    }

    /// Opens the file of `obj` with Linux open `flags` (already masked to
    /// [`LOpenFlags::SUPPORTED`](secure9p_codec::LOpenFlags::SUPPORTED)).
    fn open(&mut self, caller: &Caller, obj: Obj, flags: u32) -> Result<Qid, FsError>;

    /// Creates regular file `name` in directory `dir` and opens it with
    /// `flags`: a new, open handle on it.
    fn create(
        &mut self,
        caller: &Caller,
        dir: Obj,
        name: &str,
        flags: u32,
        mode: u32,
        gid: u32,
    ) -> Result<(Obj, Qid), FsError> {
        let _ = (caller, dir, name, flags, mode, gid);
        Err(FsError::NotSupported)
    }

    /// Reads into `buf` at `offset` from an open file; the bytes read.
    /// `buf` is the reply frame itself, so a provider that reads straight
    /// into it copies nothing.
    fn read(&mut self, caller: &Caller, obj: Obj, offset: u64, buf: &mut [u8]) -> Io<usize>;

    /// Reads up to `count` bytes at `offset` as a shared slice of the
    /// file's own buffer, for a file system that keeps contents in
    /// [`Bytes`](bytes::Bytes): the engine then sends the slice without
    /// copying it into a reply (asked only for reads of at least
    /// [`SHARE_MIN`](crate::SHARE_MIN) bytes). `None`, the default, has the
    /// engine call [`read`](Filesystem::read) instead, as it does for a
    /// read that would wait.
    fn read_shared(
        &mut self,
        caller: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
    ) -> Option<Result<bytes::Bytes, FsError>> {
        let _ = (caller, obj, offset, count);
        None
    }

    /// [`getattr`](Filesystem::getattr) through `&self`, for
    /// [`FsServer::handle_concurrent`](crate::FsServer::handle_concurrent):
    /// requests of other sessions may be answered at the same time on other
    /// threads. `Some` must be what `getattr` would answer; `None`, the
    /// default, has the engine call `getattr` with the server to itself.
    fn try_getattr(&self, caller: &Caller, obj: Obj) -> Option<Result<Attr, FsError>> {
        let _ = (caller, obj);
        None
    }

    /// [`read`](Filesystem::read) through `&self` (see
    /// [`try_getattr`](Filesystem::try_getattr)), for a read that needs
    /// neither a change to the provider nor a wait: appends to `out` (the
    /// reply frame, its header already in place) at most `count` bytes at
    /// `offset`, what `read` would have read, and answers `Some(Ok(()))`; a
    /// provider that holds the bytes appends them with one copy, where
    /// `read` fills a zeroed buffer. `None` (the default) has the engine
    /// call `read`; whatever was appended then is dropped.
    fn try_read(
        &self,
        caller: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        let _ = (caller, obj, offset, count, out);
        None
    }

    /// [`read_shared`](Filesystem::read_shared) through `&self` (see
    /// [`try_getattr`](Filesystem::try_getattr)). `None`, the default, has
    /// the engine try [`try_read`](Filesystem::try_read) next: a provider
    /// that wants a large read to reach `read_shared` (to share a buffer it
    /// has not shared yet) declines it in `try_read` too.
    fn try_read_shared(
        &self,
        caller: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
    ) -> Option<Result<bytes::Bytes, FsError>> {
        let _ = (caller, obj, offset, count);
        None
    }

    /// Writes `data` at `offset` to an open file; the bytes taken.
    fn write(&mut self, caller: &Caller, obj: Obj, offset: u64, data: &[u8]) -> Io<u32> {
        let _ = (caller, obj, offset, data);
        Io::Ready(Err(FsError::NotSupported))
    }

    /// Packs entries of an open directory after cookie `offset` (0: from the
    /// start) into `out`, whole entries only, each with the cookie that
    /// resumes after it. `.` and `..` are the provider's to list.
    fn readdir(
        &mut self,
        caller: &Caller,
        obj: Obj,
        offset: u64,
        out: &mut DirEntryWriter<'_>,
    ) -> Result<(), FsError>;

    /// Creates directory `name` in `dir`.
    fn mkdir(
        &mut self,
        caller: &Caller,
        dir: Obj,
        name: &str,
        mode: u32,
        gid: u32,
    ) -> Result<Qid, FsError> {
        let _ = (caller, dir, name, mode, gid);
        Err(FsError::NotSupported)
    }

    /// Creates symbolic link `name` in `dir` pointing at `target`.
    fn symlink(
        &mut self,
        caller: &Caller,
        dir: Obj,
        name: &str,
        target: &str,
        gid: u32,
    ) -> Result<Qid, FsError> {
        let _ = (caller, dir, name, target, gid);
        Err(FsError::NotSupported)
    }

    /// Creates a device node, FIFO or socket (`mode` includes the type).
    #[allow(clippy::too_many_arguments)]
    fn mknod(
        &mut self,
        caller: &Caller,
        dir: Obj,
        name: &str,
        mode: u32,
        major: u32,
        minor: u32,
        gid: u32,
    ) -> Result<Qid, FsError> {
        let _ = (caller, dir, name, mode, major, minor, gid);
        Err(FsError::NotSupported)
    }

    /// Makes `name` in `dir` a hard link to the file of `target`.
    fn link(&mut self, caller: &Caller, dir: Obj, target: Obj, name: &str) -> Result<(), FsError> {
        let _ = (caller, dir, target, name);
        Err(FsError::NotSupported)
    }

    /// Renames `oldname` in `olddir` to `newname` in `newdir`, replacing
    /// what `newname` named (`rename(2)` rules).
    fn renameat(
        &mut self,
        caller: &Caller,
        olddir: Obj,
        oldname: &str,
        newdir: Obj,
        newname: &str,
    ) -> Result<(), FsError> {
        let _ = (caller, olddir, oldname, newdir, newname);
        Err(FsError::NotSupported)
    }

    /// Renames the file of `obj` to `name` in `newdir` (`Trename`), or
    /// within its own directory when `newdir` is `None` (a 9P2000 `Twstat`
    /// of the name).
    fn rename(
        &mut self,
        caller: &Caller,
        obj: Obj,
        newdir: Option<Obj>,
        name: &str,
    ) -> Result<(), FsError> {
        let _ = (caller, obj, newdir, name);
        Err(FsError::NotSupported)
    }

    /// Removes `name` from `dir` (a directory only with [`AT_REMOVEDIR`]).
    fn unlinkat(
        &mut self,
        caller: &Caller,
        dir: Obj,
        name: &str,
        flags: u32,
    ) -> Result<(), FsError> {
        let _ = (caller, dir, name, flags);
        Err(FsError::NotSupported)
    }

    /// Removes the file of `obj` itself (`Tremove`).
    fn remove(&mut self, caller: &Caller, obj: Obj) -> Result<(), FsError> {
        let _ = (caller, obj);
        Err(FsError::NotSupported)
    }

    /// The target of a symbolic link.
    fn readlink(&mut self, caller: &Caller, obj: Obj) -> Result<String, FsError> {
        let _ = (caller, obj);
        Err(FsError::NotSupported)
    }

    /// Flushes an open file to stable storage (a memory tree has nothing to do).
    fn fsync(&mut self, caller: &Caller, obj: Obj, datasync: bool) -> Result<(), FsError> {
        let _ = (caller, obj, datasync);
        Ok(())
    }

    /// File-system statistics.
    fn statfs(&mut self, caller: &Caller, obj: Obj) -> Result<FsStat, FsError> {
        let _ = (caller, obj);
        Ok(FsStat {
            bsize: 4096,
            namelen: crate::namespace::MAX_NAME_LEN as u32,
            ..FsStat::default()
        })
    }

    /// The value of extended attribute `name` (`ENODATA` if unset), or with
    /// an empty `name` the NUL-terminated list of names.
    fn xattr_get(&mut self, caller: &Caller, obj: Obj, name: &str) -> Result<Vec<u8>, FsError> {
        let _ = (caller, obj, name);
        Err(FsError::NotSupported)
    }

    /// Sets extended attribute `name` to `value` with [`xattr_flags`];
    /// `remove` removes it instead (`removexattr(2)`).
    fn xattr_set(
        &mut self,
        caller: &Caller,
        obj: Obj,
        name: &str,
        value: &[u8],
        flags: u32,
        remove: bool,
    ) -> Result<(), FsError> {
        let _ = (caller, obj, name, value, flags, remove);
        Err(FsError::NotSupported)
    }

    /// A deferred read or write was flushed or its session closed.
    fn cancel(&mut self, token: Token) {
        let _ = token;
    }
}
