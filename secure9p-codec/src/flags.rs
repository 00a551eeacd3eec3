//! Flag sets of the protocol. Unknown bits are kept as they came
//! (`from_bits_retain`), so decode followed by encode gives the same bytes; a
//! server decides which bits it honours (see [`LOpenFlags::SUPPORTED`]).

bitflags::bitflags! {
    /// The type bits of a qid (`qid.type[1]`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct QidType: u8 {
        /// A directory.
        const DIR = 0x80;
        /// An append-only file.
        const APPEND = 0x40;
        /// An exclusive-use file.
        const EXCL = 0x20;
        /// A mounted channel.
        const MOUNT = 0x10;
        /// An authentication file.
        const AUTH = 0x08;
        /// A non-backed-up file.
        const TMP = 0x04;
        /// A symbolic link (9P2000.u / .L).
        const SYMLINK = 0x02;
        /// A hard link (9P2000.u / .L).
        const LINK = 0x01;
    }
}

impl QidType {
    /// A plain file: no bits set.
    pub const FILE: QidType = QidType::empty();
}

bitflags::bitflags! {
    /// 9P2000.L open flags (`Tlopen.flags[4]`, `Tlcreate.flags[4]`): the Linux
    /// `O_*` values as the kernel's 9P client puts them on the wire.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct LOpenFlags: u32 {
        /// Write only (access mode 1).
        const WRONLY = 0o1;
        /// Read and write (access mode 2).
        const RDWR = 0o2;
        /// Create if missing.
        const CREAT = 0o100;
        /// Fail if it exists.
        const EXCL = 0o200;
        /// Do not make it the controlling terminal.
        const NOCTTY = 0o400;
        /// Truncate to zero length.
        const TRUNC = 0o1000;
        /// Writes go to the end.
        const APPEND = 0o2000;
        /// Non-blocking.
        const NONBLOCK = 0o4000;
        /// Synchronous data writes.
        const DSYNC = 0o10000;
        /// Signal-driven I/O.
        const FASYNC = 0o20000;
        /// Direct I/O, bypassing caches: a server must not pass it on.
        const DIRECT = 0o40000;
        /// Large file.
        const LARGEFILE = 0o100000;
        /// Must be a directory.
        const DIRECTORY = 0o200000;
        /// Do not follow a final symlink.
        const NOFOLLOW = 0o400000;
        /// Do not update the access time.
        const NOATIME = 0o1000000;
        /// Close on exec.
        const CLOEXEC = 0o2000000;
        /// Synchronous writes.
        const SYNC = 0o4000000;
    }
}

/// The access mode bits of an [`LOpenFlags`] (`O_ACCMODE`).
pub const L_ACCMODE: u32 = 0o3;

impl LOpenFlags {
    /// Flags a synthetic server acts on; everything else (`O_DIRECT`,
    /// `O_NOATIME`, `FASYNC`, ...) is masked off before use.
    pub const SUPPORTED: LOpenFlags = LOpenFlags::WRONLY
        .union(LOpenFlags::RDWR)
        .union(LOpenFlags::CREAT)
        .union(LOpenFlags::EXCL)
        .union(LOpenFlags::TRUNC)
        .union(LOpenFlags::APPEND)
        .union(LOpenFlags::DIRECTORY);

    /// The access mode: 0 read, 1 write, 2 read-write, 3 reserved.
    pub const fn access_mode(self) -> u32 {
        self.bits() & L_ACCMODE
    }

    /// Whether the mode allows reading.
    pub const fn reads(self) -> bool {
        matches!(self.access_mode(), 0 | 2)
    }

    /// Whether the mode allows writing (or truncation).
    pub const fn writes(self) -> bool {
        matches!(self.access_mode(), 1 | 2) || self.contains(LOpenFlags::TRUNC)
    }
}

bitflags::bitflags! {
    /// 9P2000 open mode (`Topen.mode[1]`, `Tcreate.mode[1]`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct OpenMode: u8 {
        /// Write (access mode 1).
        const WRITE = 1;
        /// Read-write (access mode 2).
        const RDWR = 2;
        /// Execute (access mode 3).
        const EXEC = 3;
        /// Truncate.
        const TRUNC = 0x10;
        /// Remove on clunk.
        const RCLOSE = 0x40;
    }
}

impl OpenMode {
    /// The access mode: 0 read, 1 write, 2 read-write, 3 execute.
    pub const fn access_mode(self) -> u8 {
        self.bits() & 3
    }

    /// Whether the mode allows reading.
    pub const fn reads(self) -> bool {
        matches!(self.access_mode(), 0 | 2 | 3)
    }

    /// Whether the mode allows writing (or truncation).
    pub const fn writes(self) -> bool {
        matches!(self.access_mode(), 1 | 2) || self.contains(OpenMode::TRUNC)
    }
}

bitflags::bitflags! {
    /// Which attributes `Tgetattr` asks for and `Rgetattr.valid` holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct GetattrMask: u64 {
        /// `mode`.
        const MODE = 0x1;
        /// `nlink`.
        const NLINK = 0x2;
        /// `uid`.
        const UID = 0x4;
        /// `gid`.
        const GID = 0x8;
        /// `rdev`.
        const RDEV = 0x10;
        /// `atime`.
        const ATIME = 0x20;
        /// `mtime`.
        const MTIME = 0x40;
        /// `ctime`.
        const CTIME = 0x80;
        /// The qid path (inode number).
        const INO = 0x100;
        /// `size`.
        const SIZE = 0x200;
        /// `blocks`.
        const BLOCKS = 0x400;
        /// `btime` (birth time).
        const BTIME = 0x800;
        /// `gen`.
        const GEN = 0x1000;
        /// `data_version`.
        const DATA_VERSION = 0x2000;
    }
}

impl GetattrMask {
    /// What `stat(2)` needs (`P9_GETATTR_BASIC`).
    pub const BASIC: GetattrMask = GetattrMask::from_bits_retain(0x7ff);
}

bitflags::bitflags! {
    /// Which fields of a `Tsetattr` are to be applied.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SetattrValid: u32 {
        /// `mode`.
        const MODE = 0x1;
        /// `uid`.
        const UID = 0x2;
        /// `gid`.
        const GID = 0x4;
        /// `size` (truncate).
        const SIZE = 0x8;
        /// `atime` (to now unless `ATIME_SET`).
        const ATIME = 0x10;
        /// `mtime` (to now unless `MTIME_SET`).
        const MTIME = 0x20;
        /// `ctime`.
        const CTIME = 0x40;
        /// `atime` from the message.
        const ATIME_SET = 0x80;
        /// `mtime` from the message.
        const MTIME_SET = 0x100;
    }
}

bitflags::bitflags! {
    /// `Tlock.flags[4]`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct LockFlags: u32 {
        /// Wait for the lock (`F_SETLKW`).
        const BLOCK = 1;
        /// Reclaim a lock after a server restart.
        const RECLAIM = 2;
    }
}

/// A POSIX lock type (`type[1]` of `Tlock`/`Tgetlock`/`Rgetlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LockType(pub u8);

impl LockType {
    /// Shared (read) lock.
    pub const RDLCK: LockType = LockType(0);
    /// Exclusive (write) lock.
    pub const WRLCK: LockType = LockType(1);
    /// Unlock.
    pub const UNLCK: LockType = LockType(2);
}

/// The answer to a `Tlock` (`Rlock.status[1]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LockStatus(pub u8);

impl LockStatus {
    /// The lock was granted.
    pub const SUCCESS: LockStatus = LockStatus(0);
    /// Someone else holds it.
    pub const BLOCKED: LockStatus = LockStatus(1);
    /// The lock failed.
    pub const ERROR: LockStatus = LockStatus(2);
    /// The server is in its grace period.
    pub const GRACE: LockStatus = LockStatus(3);
}

/// 9P2000 permission bit: a directory (`DMDIR`).
pub const DMDIR: u32 = 0x8000_0000;
/// 9P2000 permission bit: append-only (`DMAPPEND`).
pub const DMAPPEND: u32 = 0x4000_0000;
/// 9P2000 permission bit: exclusive use (`DMEXCL`).
pub const DMEXCL: u32 = 0x2000_0000;
/// 9P2000 permission bit: authentication file (`DMAUTH`).
pub const DMAUTH: u32 = 0x0800_0000;
