//! [`DirExport`]: a host directory served by [`FsServer`], confined beneath
//! its root.
//!
//! Every file a client reaches is held as an `O_PATH` descriptor opened
//! relative to its directory's descriptor with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS` plus
//! `O_NOFOLLOW`, one name at a time: `..` and absolute paths cannot climb
//! out (the kernel refuses the resolution), and the server never follows a
//! symbolic link (the client reads it and walks the target itself, within
//! the export). Creating, linking, renaming and removing use the `*at`
//! calls on those descriptors, never a path from the host's root. Opening
//! a file for I/O reopens the held descriptor itself (its `/proc/self/fd`
//! entry, which names exactly that inode) and checks that the same inode
//! came back: a file swapped for a symbolic link after the walk is the old
//! file or nothing, never the link's target.
//!
//! New files get the mode the client asks for, less this process's umask
//! (`s9p-export` clears it: the client applied its own).
//!
//! Reads go straight from the file into the reply frame (`pread` into the
//! buffer the engine hands over). Options: read-only (`EROFS` for every
//! change), squashing every user to one uid/gid, and a bound on the
//! descriptors one session may hold (`EMFILE` past it).
//!
//! [`FsServer`]: secure9p_core::FsServer

use crate::perm::{R, Users, W, X, allowed};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Timestamps, UTIME_NOW,
    UTIME_OMIT, Uid,
};
use secure9p_core::codec::{DirEntry, DirEntryWriter, LOpenFlags, Qid};
use secure9p_core::{
    AT_REMOVEDIR, Attr, Caller, Filesystem, FsError, FsStat, Io, MAX_NAME_LEN, Obj, SessionId,
    SetAttr, SetTime, Timespec, dirent_type_of, file_type, qid_type_of, xattr_flags,
};
use std::collections::BTreeMap;
use std::path::Path;

/// Default bound on descriptors one session holds (each fid holds one, an
/// open fid two): far above what the Linux client keeps for a busy mount,
/// far below the process's limit.
pub const DEFAULT_MAX_FDS_PER_SESSION: usize = 1024;

/// `ESTALE`: the file a fid named is no longer where it was.
const ESTALE: FsError = FsError::Errno(116);

/// Options of a [`DirExport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// Refuse every change with `EROFS`.
    pub read_only: bool,
    /// Treat every user as this uid and gid (and create files owned by them).
    pub squash: Option<(u32, u32)>,
    /// Most descriptors one session may hold.
    pub max_fds_per_session: usize,
    /// Group membership for permission checks (the binary uses the host's).
    pub users: Users,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            read_only: false,
            squash: None,
            max_fds_per_session: DEFAULT_MAX_FDS_PER_SESSION,
            users: Users::default(),
        }
    }
}

/// Why an export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The directory could not be opened.
    #[error("{path}: {source}")]
    Open {
        /// The directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

struct Held {
    /// `O_PATH | O_NOFOLLOW` descriptor of the file.
    fd: OwnedFd,
    /// Its path below the root ("" for the root), for `..` and reopening.
    rel: String,
    dev: u64,
    ino: u64,
    mode: u32,
    session: SessionId,
    /// The descriptor for I/O once opened.
    open: Option<OwnedFd>,
    /// The directory stream of an opened directory.
    dir: Option<Dir>,
}

impl Held {
    fn fds(&self) -> usize {
        1 + usize::from(self.open.is_some()) + usize::from(self.dir.is_some())
    }
}

/// A host directory served confined beneath its root (see the module docs).
pub struct DirExport {
    root: OwnedFd,
    root_dev: u64,
    root_ino: u64,
    held: BTreeMap<u64, Held>,
    fds: BTreeMap<SessionId, usize>,
    next: u64,
    options: ExportOptions,
    /// Whether this process may give files away (it runs as root).
    privileged: bool,
}

impl std::fmt::Debug for DirExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirExport")
            .field("held", &self.held.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn errno(e: rustix::io::Errno) -> FsError {
    FsError::from_errno(u32::try_from(e.raw_os_error()).unwrap_or(5))
}

/// Resolution that can never leave the directory it starts from.
fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS
}

fn open_path<Fd: AsFd>(dir: Fd, name: &str, extra: OFlags) -> Result<OwnedFd, FsError> {
    rustix::fs::openat2(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra,
        Mode::empty(),
        beneath(),
    )
    .map_err(errno)
}

/// The `/proc/self/fd` entry of a descriptor of ours: resolving it reaches
/// exactly the inode the descriptor holds, whatever its name is now.
fn proc_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn stat_fd<Fd: AsFd>(fd: Fd) -> Result<Stat, FsError> {
    rustix::fs::statat(fd, "", AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
}

fn qid_of(st: &Stat) -> Qid {
    Qid {
        ty: qid_type_of(st.st_mode),
        // The change time as version: a client's cache sees every change.
        version: (st.st_ctime as u32) ^ (st.st_ctime_nsec as u32),
        path: st.st_ino,
    }
}

fn ts(sec: i64, nsec: u64) -> Timespec {
    Timespec {
        sec: u64::try_from(sec).unwrap_or(0),
        nsec,
    }
}

fn parent_rel(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

fn rtime(t: Option<SetTime>) -> rustix::fs::Timespec {
    match t {
        None => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        Some(SetTime::Now) => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        },
        Some(SetTime::At(t)) => rustix::fs::Timespec {
            tv_sec: i64::try_from(t.sec).unwrap_or(i64::MAX),
            tv_nsec: i64::try_from(t.nsec.min(999_999_999)).unwrap_or(0),
        },
    }
}

impl DirExport {
    /// Exports `dir` with `options`.
    pub fn new(dir: &Path, options: ExportOptions) -> Result<DirExport, ExportError> {
        let fail = |source: std::io::Error| ExportError::Open {
            path: dir.display().to_string(),
            source,
        };
        let root = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(e.into()))?;
        let st = rustix::fs::fstat(&root).map_err(|e| fail(e.into()))?;
        Ok(DirExport {
            root,
            root_dev: st.st_dev,
            root_ino: st.st_ino,
            held: BTreeMap::new(),
            fds: BTreeMap::new(),
            next: 1,
            options,
            privileged: rustix::process::geteuid().is_root(),
        })
    }

    /// Descriptors session `sid` holds now.
    pub fn fds_held(&self, sid: SessionId) -> usize {
        self.fds.get(&sid).copied().unwrap_or(0)
    }

    fn uid(&self, c: &Caller) -> u32 {
        match self.options.squash {
            Some((uid, _)) => uid,
            None if c.uid == u32::MAX => 0,
            None => c.uid,
        }
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.options.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// `pread(2)` of the open file of `obj`.
    fn pread(&self, obj: Obj, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        match self.held.get(&obj.0).and_then(|h| h.open.as_ref()) {
            Some(fd) => rustix::io::pread(fd, buf, offset).map_err(errno),
            None => Err(FsError::BadFid),
        }
    }

    /// `fstat(2)` of the file of `obj`, as [`Attr`].
    fn attr(&self, obj: Obj) -> Result<Attr, FsError> {
        let st = stat_fd(&self.get(obj)?.fd)?;
        Ok(Attr {
            qid: qid_of(&st),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: st.st_nlink,
            rdev: st.st_rdev,
            size: u64::try_from(st.st_size).unwrap_or(0),
            blocks: u64::try_from(st.st_blocks).unwrap_or(0),
            blksize: u64::try_from(st.st_blksize).unwrap_or(4096),
            atime: ts(st.st_atime, st.st_atime_nsec),
            mtime: ts(st.st_mtime, st.st_mtime_nsec),
            ctime: ts(st.st_ctime, st.st_ctime_nsec),
        })
    }

    fn get(&self, obj: Obj) -> Result<&Held, FsError> {
        self.held.get(&obj.0).ok_or(FsError::BadFid)
    }

    fn charge(&mut self, sid: SessionId, n: usize) -> Result<(), FsError> {
        let used = self.fds.entry(sid).or_insert(0);
        if *used + n > self.options.max_fds_per_session {
            return Err(FsError::TooManyFids);
        }
        *used += n;
        Ok(())
    }

    fn refund(&mut self, sid: SessionId, n: usize) {
        if let Some(used) = self.fds.get_mut(&sid) {
            *used = used.saturating_sub(n);
            if *used == 0 {
                self.fds.remove(&sid);
            }
        }
    }

    fn hold(&mut self, sid: SessionId, fd: OwnedFd, rel: String) -> Result<(Obj, Qid), FsError> {
        let st = stat_fd(&fd)?;
        self.charge(sid, 1)?;
        let id = self.next;
        self.next += 1;
        let qid = qid_of(&st);
        self.held.insert(
            id,
            Held {
                fd,
                rel,
                dev: st.st_dev,
                ino: st.st_ino,
                mode: st.st_mode,
                session: sid,
                open: None,
                dir: None,
            },
        );
        Ok((Obj(id), qid))
    }

    /// The directory `rel` lies in, opened afresh beneath the root.
    fn parent_fd(&self, rel: &str) -> Result<OwnedFd, FsError> {
        let p = parent_rel(rel);
        if p.is_empty() {
            open_path(&self.root, ".", OFlags::DIRECTORY)
        } else {
            open_path(&self.root, p, OFlags::DIRECTORY)
        }
    }

    /// Reopens the held file with `flags` for I/O: through its directory,
    /// never following a link, and only if the same inode comes back.
    fn reopen(&self, h: &Held, flags: OFlags) -> Result<OwnedFd, FsError> {
        if h.mode & file_type::S_IFMT == file_type::S_IFLNK {
            return Err(FsError::Loop);
        }
        let flags = flags | OFlags::CLOEXEC | OFlags::NOCTTY;
        // The held descriptor's /proc entry reopens exactly its inode, even
        // after the host renamed it or swapped a link in above it. Without
        // /proc, its path is resolved again beneath the root, links refused.
        let fd = match rustix::fs::open(proc_path(&h.fd), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                let rel = if h.rel.is_empty() {
                    "."
                } else {
                    h.rel.as_str()
                };
                rustix::fs::openat2(
                    &self.root,
                    rel,
                    flags | OFlags::NOFOLLOW,
                    Mode::empty(),
                    beneath(),
                )
                .map_err(errno)?
            }
            Err(e) => return Err(errno(e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        if st.st_dev != h.dev || st.st_ino != h.ino {
            return Err(ESTALE);
        }
        Ok(fd)
    }

    fn check(&self, c: &Caller, h: &Held, want: u32) -> Result<(), FsError> {
        let st = stat_fd(&h.fd)?;
        if allowed(
            &self.options.users,
            self.uid(c),
            st.st_mode,
            st.st_uid,
            st.st_gid,
            want,
        ) {
            Ok(())
        } else {
            Err(FsError::AccessDenied)
        }
    }

    /// Checks for changing entries of directory `dir`.
    fn creating(&self, c: &Caller, dir: Obj) -> Result<&Held, FsError> {
        self.writable()?;
        let d = self.get(dir)?;
        if d.mode & file_type::S_IFMT != file_type::S_IFDIR {
            return Err(FsError::NotDir);
        }
        self.check(c, d, W | X)?;
        Ok(d)
    }

    /// Gives a new entry to its creator (when this process may).
    fn own(&self, c: &Caller, dir: BorrowedFd<'_>, name: &str, gid: u32) -> Result<(), FsError> {
        if !self.privileged {
            return Ok(());
        }
        let uid = self.uid(c);
        let gid = match self.options.squash {
            Some((_, g)) => g,
            None if gid == u32::MAX => 0,
            None => gid,
        };
        rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)
    }

    fn sticky_ok(&self, c: &Caller, dir: &Held, child: &Stat) -> Result<(), FsError> {
        let uid = self.uid(c);
        let d = stat_fd(&dir.fd)?;
        if d.st_mode & 0o1000 == 0 || uid == 0 || uid == d.st_uid || uid == child.st_uid {
            Ok(())
        } else {
            Err(FsError::NotPermitted)
        }
    }

    fn qid_at(&self, dir: BorrowedFd<'_>, name: &str) -> Result<Qid, FsError> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        Ok(qid_of(&st))
    }

    /// Moves the paths of held files after a rename of `from` to `to`.
    fn renamed(&mut self, from: &str, to: &str) {
        for h in self.held.values_mut() {
            if h.rel == from {
                h.rel = to.to_owned();
            } else if let Some(rest) = h.rel.strip_prefix(from).filter(|r| r.starts_with('/')) {
                h.rel = format!("{to}{rest}");
            }
        }
    }
}

impl Filesystem for DirExport {
    fn attach(&mut self, c: &Caller, _: &str) -> Result<(Obj, Qid), FsError> {
        let fd = open_path(&self.root, ".", OFlags::DIRECTORY)?;
        self.hold(c.session, fd, String::new())
    }

    fn walk(&mut self, c: &Caller, dir: Obj, name: &str) -> Result<(Obj, Qid), FsError> {
        let d = self.get(dir)?;
        if d.mode & file_type::S_IFMT != file_type::S_IFDIR {
            return Err(FsError::NotDir);
        }
        self.check(c, d, X)?;
        let fd = open_path(&d.fd, name, OFlags::empty())?;
        let rel = join(&d.rel, name);
        self.hold(c.session, fd, rel)
    }

    fn walk_parent(&mut self, c: &Caller, dir: Obj) -> Result<(Obj, Qid), FsError> {
        let d = self.get(dir)?;
        self.check(c, d, X)?;
        let at_root = d.rel.is_empty() || (d.dev == self.root_dev && d.ino == self.root_ino);
        let rel = if at_root { "" } else { parent_rel(&d.rel) }.to_owned();
        let fd = if rel.is_empty() {
            open_path(&self.root, ".", OFlags::DIRECTORY)?
        } else {
            open_path(&self.root, &rel, OFlags::DIRECTORY)?
        };
        self.hold(c.session, fd, rel)
    }

    fn clone_obj(&mut self, obj: Obj) -> Result<Obj, FsError> {
        let h = self.get(obj)?;
        let fd = h.fd.try_clone().map_err(|_| FsError::TooManyFids)?;
        let (rel, sid) = (h.rel.clone(), h.session);
        self.hold(sid, fd, rel).map(|(o, _)| o)
    }

    fn release(&mut self, obj: Obj) {
        if let Some(h) = self.held.remove(&obj.0) {
            self.refund(h.session, h.fds());
        }
    }

    fn getattr(&mut self, _: &Caller, obj: Obj) -> Result<Attr, FsError> {
        self.attr(obj)
    }

    fn try_getattr(&self, _: &Caller, obj: Obj) -> Option<Result<Attr, FsError>> {
        Some(self.attr(obj))
    }

    fn setattr(&mut self, c: &Caller, obj: Obj, set: &SetAttr) -> Result<(), FsError> {
        self.writable()?;
        let uid = self.uid(c);
        let h = self.get(obj)?;
        let st = stat_fd(&h.fd)?;
        let owner = uid == 0 || uid == st.st_uid;
        let kind = st.st_mode & file_type::S_IFMT;
        let link = kind == file_type::S_IFLNK;
        // A device, FIFO or socket is changed through its own O_PATH
        // descriptor (its /proc/self/fd entry names exactly that inode):
        // opening one could block, fail or have side effects.
        let special = !matches!(kind, file_type::S_IFREG | file_type::S_IFDIR) && !link;
        if set.mode.is_some() && !owner {
            return Err(FsError::NotPermitted);
        }
        if set.uid.is_some_and(|u| u != st.st_uid) && uid != 0 {
            return Err(FsError::NotPermitted);
        }
        // The owner may give the file to a group it is in; root to any.
        if let Some(g) = set.gid
            && g != st.st_gid
            && uid != 0
            && (uid != st.st_uid || !self.options.users.in_group(uid, g))
        {
            return Err(FsError::NotPermitted);
        }
        for t in [set.atime, set.mtime].into_iter().flatten() {
            match t {
                SetTime::Now if !owner => self.check(c, h, W)?,
                SetTime::At(_) if !owner => return Err(FsError::NotPermitted),
                _ => {}
            }
        }
        if let Some(size) = set.size {
            if st.st_mode & file_type::S_IFMT == file_type::S_IFDIR {
                return Err(FsError::IsDir);
            }
            if !set.writer {
                self.check(c, h, W)?;
            }
            let fd = self.reopen(h, OFlags::WRONLY)?;
            rustix::fs::ftruncate(&fd, size).map_err(errno)?;
        }
        if set.uid.is_some() || set.gid.is_some() {
            // fchownat on the O_PATH descriptor itself: no name to swap.
            rustix::fs::chownat(
                &h.fd,
                "",
                set.uid.map(Uid::from_raw),
                set.gid.map(Gid::from_raw),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno)?;
        }
        if let Some(mode) = set.mode {
            if link {
                return Err(FsError::NotSupported);
            }
            let mut mode = mode & 0o7777;
            // A non-root owner outside the file's group cannot set S_ISGID.
            if uid != 0 && !self.options.users.in_group(uid, st.st_gid) {
                mode &= !0o2000;
            }
            if special {
                rustix::fs::chmod(proc_path(&h.fd), Mode::from_raw_mode(mode)).map_err(errno)?;
            } else {
                let fd = self.reopen(h, OFlags::RDONLY | OFlags::NONBLOCK)?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno)?;
            }
        }
        if set.atime.is_some() || set.mtime.is_some() || (set.ctime && set.size.is_none()) {
            let times = Timestamps {
                last_access: rtime(set.atime),
                last_modification: rtime(set.mtime),
            };
            if link {
                let name = h.rel.rsplit('/').next().unwrap_or("");
                let dir = self.parent_fd(&h.rel)?;
                rustix::fs::utimensat(&dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno)?;
            } else if special {
                rustix::fs::utimensat(rustix::fs::CWD, proc_path(&h.fd), &times, AtFlags::empty())
                    .map_err(errno)?;
            } else {
                let fd = self.reopen(h, OFlags::RDONLY | OFlags::NONBLOCK)?;
                rustix::fs::futimens(&fd, &times).map_err(errno)?;
            }
        }
        Ok(())
    }

    fn open(&mut self, c: &Caller, obj: Obj, flags: u32) -> Result<Qid, FsError> {
        let lf = LOpenFlags::from_bits_retain(flags);
        let h = self.get(obj)?;
        if h.open.is_some() || h.dir.is_some() {
            return Err(FsError::BadFid);
        }
        let kind = h.mode & file_type::S_IFMT;
        if kind == file_type::S_IFLNK {
            return Err(FsError::Loop);
        }
        let mut want = 0;
        if lf.reads() {
            want |= R;
        }
        if lf.writes() || lf.contains(LOpenFlags::TRUNC) {
            self.writable()?;
            want |= W;
        }
        self.check(c, h, want)?;
        let sid = h.session;
        let mut o = OFlags::from_bits_retain(flags & 0o3)
            | (OFlags::from_bits_retain(flags) & (OFlags::TRUNC | OFlags::APPEND));
        if kind == file_type::S_IFDIR {
            o = OFlags::RDONLY | OFlags::DIRECTORY;
        } else if kind != file_type::S_IFREG {
            // A FIFO or device is never blocked on by the server.
            o |= OFlags::NONBLOCK;
        }
        let fd = self.reopen(h, o)?;
        let qid = qid_of(&rustix::fs::fstat(&fd).map_err(errno)?);
        self.charge(sid, 1)?;
        let h = self.held.get_mut(&obj.0).ok_or(FsError::BadFid)?;
        if kind == file_type::S_IFDIR {
            h.dir = Some(Dir::new(fd).map_err(errno)?);
        } else {
            h.open = Some(fd);
        }
        Ok(qid)
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
        let d = self.creating(c, dir)?;
        let sid = d.session;
        let o = OFlags::from_bits_retain(flags & 0o3)
            | (OFlags::from_bits_retain(flags) & OFlags::APPEND)
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC;
        let fd = rustix::fs::openat2(
            &d.fd,
            name,
            o,
            Mode::from_raw_mode(mode & 0o7777),
            beneath(),
        )
        .map_err(errno)?;
        self.own(c, d.fd.as_fd(), name, gid)?;
        let path = open_path(&d.fd, name, OFlags::empty())?;
        let rel = join(&d.rel, name);
        self.charge(sid, 1)?;
        match self.hold(sid, path, rel) {
            Ok((obj, qid)) => {
                if let Some(h) = self.held.get_mut(&obj.0) {
                    h.open = Some(fd);
                }
                Ok((obj, qid))
            }
            Err(e) => {
                self.refund(sid, 1);
                Err(e)
            }
        }
    }

    fn read(&mut self, _: &Caller, obj: Obj, offset: u64, buf: &mut [u8]) -> Io<usize> {
        Io::Ready(self.pread(obj, offset, buf))
    }

    fn try_read(
        &self,
        _: &Caller,
        obj: Obj,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), FsError>> {
        let start = out.len();
        out.resize(start + count as usize, 0);
        let r = match out.get_mut(start..) {
            Some(buf) => self.pread(obj, offset, buf),
            None => Err(FsError::Io),
        };
        out.truncate(start + *r.as_ref().unwrap_or(&0));
        Some(r.map(drop))
    }

    fn write(&mut self, _: &Caller, obj: Obj, offset: u64, data: &[u8]) -> Io<u32> {
        if let Err(e) = self.writable() {
            return Io::Ready(Err(e));
        }
        let r = match self.held.get(&obj.0).and_then(|h| h.open.as_ref()) {
            Some(fd) => rustix::io::pwrite(fd, data, offset)
                .map_err(errno)
                .and_then(|n| u32::try_from(n).map_err(|_| FsError::TooBig)),
            None => Err(FsError::BadFid),
        };
        Io::Ready(r)
    }

    fn readdir(
        &mut self,
        _: &Caller,
        obj: Obj,
        offset: u64,
        out: &mut DirEntryWriter<'_>,
    ) -> Result<(), FsError> {
        let root_ino = self.root_ino;
        let h = self.held.get_mut(&obj.0).ok_or(FsError::BadFid)?;
        let at_root = h.rel.is_empty();
        let dir = h.dir.as_mut().ok_or(FsError::BadFid)?;
        if offset == 0 {
            dir.rewind();
        } else {
            dir.seek(i64::try_from(offset).map_err(|_| FsError::Invalid)?)
                .map_err(errno)?;
        }
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(errno)?;
            let Ok(name) = entry.file_name().to_str() else {
                // A name 9P cannot carry is not listed.
                continue;
            };
            // `..` of the export's root is the root itself: nothing above
            // it shows, not even an inode number.
            let (ino, ft) = if name == ".." && at_root {
                (root_ino, FileType::Directory)
            } else {
                (entry.ino(), entry.file_type())
            };
            let mode = match ft {
                FileType::Directory => file_type::S_IFDIR,
                FileType::Symlink => file_type::S_IFLNK,
                FileType::Fifo => file_type::S_IFIFO,
                FileType::Socket => file_type::S_IFSOCK,
                FileType::CharacterDevice => file_type::S_IFCHR,
                FileType::BlockDevice => file_type::S_IFBLK,
                _ => file_type::S_IFREG,
            };
            let e = DirEntry {
                qid: Qid {
                    ty: qid_type_of(mode),
                    version: 0,
                    path: ino,
                },
                offset: u64::try_from(entry.offset()).unwrap_or(u64::MAX),
                ty: dirent_type_of(mode),
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
        let d = self.creating(c, dir)?;
        rustix::fs::mkdirat(&d.fd, name, Mode::from_raw_mode(mode & 0o7777)).map_err(errno)?;
        self.own(c, d.fd.as_fd(), name, gid)?;
        self.qid_at(d.fd.as_fd(), name)
    }

    fn symlink(
        &mut self,
        c: &Caller,
        dir: Obj,
        name: &str,
        target: &str,
        gid: u32,
    ) -> Result<Qid, FsError> {
        let d = self.creating(c, dir)?;
        // The target is stored, never followed by this server: a link to
        // /etc is a link the client resolves on its side.
        rustix::fs::symlinkat(target, &d.fd, name).map_err(errno)?;
        self.own(c, d.fd.as_fd(), name, gid)?;
        self.qid_at(d.fd.as_fd(), name)
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
        let d = self.creating(c, dir)?;
        let kind = match mode & file_type::S_IFMT {
            file_type::S_IFREG | 0 => FileType::RegularFile,
            file_type::S_IFIFO => FileType::Fifo,
            file_type::S_IFSOCK => FileType::Socket,
            file_type::S_IFCHR => FileType::CharacterDevice,
            file_type::S_IFBLK => FileType::BlockDevice,
            _ => return Err(FsError::Invalid),
        };
        if matches!(kind, FileType::CharacterDevice | FileType::BlockDevice) && self.uid(c) != 0 {
            return Err(FsError::NotPermitted);
        }
        rustix::fs::mknodat(
            &d.fd,
            name,
            kind,
            Mode::from_raw_mode(mode & 0o7777),
            rustix::fs::makedev(major, minor),
        )
        .map_err(errno)?;
        self.own(c, d.fd.as_fd(), name, gid)?;
        self.qid_at(d.fd.as_fd(), name)
    }

    fn link(&mut self, c: &Caller, dir: Obj, target: Obj, name: &str) -> Result<(), FsError> {
        let d = self.creating(c, dir)?;
        let t = self.get(target)?;
        // Linking the held descriptor itself: the source is the file the fid
        // names, never a path that could be swapped for one outside.
        rustix::fs::linkat(&t.fd, "", &d.fd, name, AtFlags::EMPTY_PATH).map_err(errno)
    }

    fn renameat(
        &mut self,
        c: &Caller,
        olddir: Obj,
        oldname: &str,
        newdir: Obj,
        newname: &str,
    ) -> Result<(), FsError> {
        let o = self.creating(c, olddir)?;
        let n = self.creating(c, newdir)?;
        let child = rustix::fs::statat(&o.fd, oldname, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        self.sticky_ok(c, o, &child)?;
        if let Ok(dst) = rustix::fs::statat(&n.fd, newname, AtFlags::SYMLINK_NOFOLLOW)
            && (dst.st_ino != child.st_ino || dst.st_dev != child.st_dev)
        {
            self.sticky_ok(c, n, &dst)?;
        }
        rustix::fs::renameat(&o.fd, oldname, &n.fd, newname).map_err(errno)?;
        let (from, to) = (join(&o.rel, oldname), join(&n.rel, newname));
        self.renamed(&from, &to);
        Ok(())
    }

    fn rename(
        &mut self,
        c: &Caller,
        obj: Obj,
        newdir: Option<Obj>,
        name: &str,
    ) -> Result<(), FsError> {
        self.writable()?;
        let h = self.get(obj)?;
        if h.rel.is_empty() {
            return Err(FsError::Busy);
        }
        let old = h.rel.rsplit('/').next().unwrap_or("").to_owned();
        let parent = self.parent_fd(&h.rel)?;
        let parent_rel_s = parent_rel(&h.rel).to_owned();
        let sid = h.session;
        // Hold the old directory for the one call, as renameat needs it.
        let (pobj, _) = self.hold(sid, parent, parent_rel_s)?;
        let r = match newdir {
            Some(d) => self.renameat(c, pobj, &old, d, name),
            None => self.renameat(c, pobj, &old, pobj, name),
        };
        self.release(pobj);
        r
    }

    fn unlinkat(&mut self, c: &Caller, dir: Obj, name: &str, flags: u32) -> Result<(), FsError> {
        let d = self.creating(c, dir)?;
        let child = rustix::fs::statat(&d.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        self.sticky_ok(c, d, &child)?;
        let is_dir = child.st_mode & file_type::S_IFMT == file_type::S_IFDIR;
        let rmdir = flags & AT_REMOVEDIR != 0;
        if rmdir && !is_dir {
            return Err(FsError::NotDir);
        }
        if !rmdir && is_dir {
            return Err(FsError::IsDir);
        }
        let at = if rmdir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&d.fd, name, at).map_err(errno)
    }

    fn remove(&mut self, c: &Caller, obj: Obj) -> Result<(), FsError> {
        self.writable()?;
        let h = self.get(obj)?;
        if h.rel.is_empty() {
            return Err(FsError::Busy);
        }
        let name = h.rel.rsplit('/').next().unwrap_or("").to_owned();
        let is_dir = h.mode & file_type::S_IFMT == file_type::S_IFDIR;
        let (dev, ino) = (h.dev, h.ino);
        let parent = self.parent_fd(&h.rel)?;
        let st =
            rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        if st.st_dev != dev || st.st_ino != ino {
            return Err(ESTALE);
        }
        let rel = parent_rel(&h.rel).to_owned();
        let sid = h.session;
        let (pobj, _) = self.hold(sid, parent, rel)?;
        let flags = if is_dir { AT_REMOVEDIR } else { 0 };
        let r = self.unlinkat(c, pobj, &name, flags);
        self.release(pobj);
        r
    }

    fn readlink(&mut self, _: &Caller, obj: Obj) -> Result<String, FsError> {
        let h = self.get(obj)?;
        if h.mode & file_type::S_IFMT != file_type::S_IFLNK {
            return Err(FsError::Invalid);
        }
        let t = rustix::fs::readlinkat(&h.fd, "", Vec::new()).map_err(errno)?;
        t.into_string().map_err(|_| FsError::Invalid)
    }

    fn fsync(&mut self, _: &Caller, obj: Obj, datasync: bool) -> Result<(), FsError> {
        let h = self.get(obj)?;
        match &h.open {
            Some(fd) if datasync => rustix::fs::fdatasync(fd).map_err(errno),
            Some(fd) => rustix::fs::fsync(fd).map_err(errno),
            None => Ok(()),
        }
    }

    fn statfs(&mut self, _: &Caller, _: Obj) -> Result<FsStat, FsError> {
        let s = rustix::fs::fstatvfs(&self.root).map_err(errno)?;
        Ok(FsStat {
            bsize: u32::try_from(s.f_bsize).unwrap_or(4096),
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            namelen: u32::try_from(s.f_namemax).unwrap_or(MAX_NAME_LEN as u32),
        })
    }

    fn xattr_get(&mut self, c: &Caller, obj: Obj, name: &str) -> Result<Vec<u8>, FsError> {
        let h = self.get(obj)?;
        if h.mode & file_type::S_IFMT == file_type::S_IFLNK {
            return if name.is_empty() {
                Ok(Vec::new())
            } else {
                Err(FsError::NoData)
            };
        }
        if name.starts_with("user.") {
            self.check(c, h, R)?;
        }
        let fd = self.reopen(h, OFlags::RDONLY | OFlags::NONBLOCK)?;
        let mut buf = vec![0u8; secure9p_core::MAX_XATTR_SIZE as usize];
        let n = if name.is_empty() {
            rustix::fs::flistxattr(&fd, &mut buf[..]).map_err(errno)?
        } else {
            rustix::fs::fgetxattr(&fd, name, &mut buf[..]).map_err(errno)?
        };
        buf.truncate(n);
        Ok(buf)
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
        self.writable()?;
        let h = self.get(obj)?;
        if h.mode & file_type::S_IFMT == file_type::S_IFLNK {
            return Err(FsError::NotPermitted);
        }
        if name.starts_with("user.") {
            self.check(c, h, W)?;
        } else if self.uid(c) != 0 {
            return Err(FsError::NotPermitted);
        }
        let fd = self.reopen(h, OFlags::RDONLY | OFlags::NONBLOCK)?;
        if remove {
            return rustix::fs::fremovexattr(&fd, name).map_err(errno);
        }
        let mut f = rustix::fs::XattrFlags::empty();
        if flags & xattr_flags::CREATE != 0 {
            f |= rustix::fs::XattrFlags::CREATE;
        }
        if flags & xattr_flags::REPLACE != 0 {
            f |= rustix::fs::XattrFlags::REPLACE;
        }
        rustix::fs::fsetxattr(&fd, name, value, f).map_err(errno)
    }
}
