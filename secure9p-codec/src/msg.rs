//! Every message of 9P2000.L and of base 9P2000, requests and replies, as
//! borrowed Rust structs, and the [`Msg`] enum over them. The layouts follow
//! the Linux client (`include/net/9p/9p.h`, `net/9p/protocol.c`), diod's
//! protocol notes and Plan 9's `intro(5)`; see `SECURE9P.md` for the table.

use crate::error::CodecError;
use crate::fixed::{Fixed, Rgetattr, Rstatfs, Tsetattr};
use crate::flags::{GetattrMask, LOpenFlags, LockFlags, LockStatus, LockType, OpenMode};
use crate::layout::LockRangeWire;
use crate::stat::StatRef;
use crate::types::{Fid, Qid, Tag};
use crate::walk::{WalkNames, WalkQids};
use crate::wire::{Field, Reader, Sink, Writer};

/// How one message body is read, sized and written.
pub(crate) trait Body<'a>: Sized {
    fn decode(r: &mut Reader<'a>) -> Result<Self, CodecError>;
    fn body_len(&self) -> usize;
    fn encode<S: Sink>(&self, w: &mut Writer<S>);
}

/// A fixed-layout message is its own bytes: borrowed in place when decoded,
/// copied whole when encoded.
impl<'a, T: Fixed> Body<'a> for &'a T {
    #[inline]
    fn decode(r: &mut Reader<'a>) -> Result<Self, CodecError> {
        r.view(T::NAME)
    }
    #[inline]
    fn body_len(&self) -> usize {
        core::mem::size_of::<T>()
    }
    #[inline]
    fn encode<S: Sink>(&self, w: &mut Writer<S>) {
        w.layout(*self)
    }
}

macro_rules! body_impl {
    (custom $($rest:tt)*) => {};
    (view $($rest:tt)*) => {};
    (plain $name:ident $(<$lt:lifetime>)? { $($field:ident),* }) => {
        impl<'a> Body<'a> for $name $(<$lt>)? {
            #[allow(unused_variables)]
            #[inline]
            fn decode(r: &mut Reader<'a>) -> Result<Self, CodecError> {
                Ok($name {
                    $( $field: Field::read(r, concat!(stringify!($name), ".", stringify!($field)))?, )*
                })
            }
            #[inline]
            fn body_len(&self) -> usize {
                0 $( + Field::wire_len(&self.$field) )*
            }
            #[allow(unused_variables)]
            #[inline]
            fn encode<S: Sink>(&self, w: &mut Writer<S>) {
                $( Field::write(&self.$field, w, concat!(stringify!($name), ".", stringify!($field))); )*
            }
        }
    };
}

/// What a [`Msg`] variant holds: a fixed-layout message (`view`) by
/// reference, any other by value.
macro_rules! payload {
    (view $name:ident <$lt:lifetime>) => { &$lt $name };
    ($kind:ident $name:ident $(<$lt:lifetime>)?) => { $name $(<$lt>)? };
}

/// A message's struct (unless it is a fixed layout, defined in `fixed.rs`),
/// its body codec and its conversion into [`Msg`].
macro_rules! message_item {
    (view $(#[$meta:meta])* $name:ident <$lt:lifetime> {}) => {
        impl<$lt> From<&$lt $name> for Msg<$lt> {
            fn from(m: &$lt $name) -> Msg<$lt> {
                Msg::$name(m)
            }
        }
    };
    (
        $kind:ident
        $(#[$meta:meta])*
        $name:ident $(<$lt:lifetime>)? { $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name $(<$lt>)? {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }
        body_impl!($kind $name $(<$lt>)? { $($field),* });

        impl<'a> From<$name $(<$lt>)?> for Msg<'a> {
            fn from(m: $name $(<$lt>)?) -> Msg<'a> {
                Msg::$name(m)
            }
        }
    };
}

macro_rules! messages {
    ($(
        $(#[$meta:meta])*
        $name:ident $(<$lt:lifetime>)? = $num:literal $kind:ident {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    )*) => {
        $(
            message_item! {
                $kind
                $(#[$meta])*
                $name $(<$lt>)? { $( $(#[$fmeta])* $field: $fty ),* }
            }
        )*

        /// The type byte of every message this codec knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum MsgType {
            $( $(#[$meta])* $name = $num, )*
        }

        impl MsgType {
            /// The message type of a type byte, if it is one of ours.
            #[inline]
            pub const fn from_u8(ty: u8) -> Option<MsgType> {
                match ty {
                    $( $num => Some(MsgType::$name), )*
                    _ => None,
                }
            }

            /// The message's name, as in the protocol documents (`"Twalk"`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( MsgType::$name => stringify!($name), )*
                }
            }
        }

        /// One decoded message of either dialect, borrowing from its frame.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg<'a> {
            $( $(#[$meta])* $name(payload!($kind $name $(<$lt>)?)), )*
        }

        impl<'a> Msg<'a> {
            /// This message's type.
            pub const fn msg_type(&self) -> MsgType {
                match self {
                    $( Msg::$name(_) => MsgType::$name, )*
                }
            }

            #[inline]
            pub(crate) fn decode_body(ty: MsgType, r: &mut Reader<'a>) -> Result<Self, CodecError> {
                match ty {
                    $( MsgType::$name => <payload!($kind $name $(<$lt>)?) as Body>::decode(r).map(Msg::$name), )*
                }
            }

            /// Bytes of the body, after the 7-byte header.
            pub fn body_len(&self) -> usize {
                match self {
                    $( Msg::$name(m) => m.body_len(), )*
                }
            }

            #[inline]
            pub(crate) fn encode_body<S: Sink>(&self, w: &mut Writer<S>) {
                match self {
                    $( Msg::$name(m) => m.encode(w), )*
                }
            }

            /// Appends this message as the frame of `tag` to `out`, with one
            /// dispatch on the variant: its length and its bytes come from
            /// the variant's own body code, inlined together.
            #[inline]
            pub(crate) fn append_frame<B: crate::wire::AppendBuf>(
                &self,
                tag: crate::types::Tag,
                out: &mut B,
            ) -> Result<(), CodecError> {
                match self {
                    $( Msg::$name(m) => crate::frame::append_body(m, MsgType::$name, tag, out), )*
                }
            }
        }
    };
}

impl MsgType {
    /// Whether this is a request (T-message): type numbers are even.
    pub const fn is_request(self) -> bool {
        (self as u8).is_multiple_of(2)
    }

    /// The reply type that answers this request (`None` for a reply).
    pub const fn reply(self) -> Option<MsgType> {
        if self.is_request() {
            MsgType::from_u8(self as u8 + 1)
        } else {
            None
        }
    }
}

messages! {
    /// 9P2000.L error reply: a Linux errno.
    Rlerror = 7 plain {
        /// The errno.
        ecode: u32,
    }
    /// Asks for file-system statistics.
    Tstatfs = 8 plain {
        /// Any fid in the file system.
        fid: Fid,
    }
    /// File-system statistics (`statfs(2)`): a [`Rstatfs`](crate::Rstatfs)
    /// in the frame's bytes.
    Rstatfs<'a> = 9 view {}
    /// Opens a fid (9P2000.L).
    Tlopen = 12 plain {
        /// The fid to open.
        fid: Fid,
        /// Linux open flags.
        flags: LOpenFlags,
    }
    /// The opened file.
    Rlopen = 13 plain {
        /// Its qid.
        qid: Qid,
        /// Largest I/O without splitting, 0 for "msize minus header".
        iounit: u32,
    }
    /// Creates and opens a regular file in the directory `fid`, which then
    /// stands for the new file.
    Tlcreate<'a> = 14 plain {
        /// The directory fid; becomes the new file.
        fid: Fid,
        /// New file's name.
        name: &'a str,
        /// Linux open flags.
        flags: LOpenFlags,
        /// Permission bits.
        mode: u32,
        /// Owning group.
        gid: u32,
    }
    /// The created file.
    Rlcreate = 15 plain {
        /// Its qid.
        qid: Qid,
        /// Largest I/O without splitting.
        iounit: u32,
    }
    /// Creates a symbolic link.
    Tsymlink<'a> = 16 plain {
        /// The directory fid.
        fid: Fid,
        /// Link name.
        name: &'a str,
        /// Link target.
        symtgt: &'a str,
        /// Owning group.
        gid: u32,
    }
    /// The new link.
    Rsymlink = 17 plain {
        /// Its qid.
        qid: Qid,
    }
    /// Creates a device node, fifo or socket.
    Tmknod<'a> = 18 plain {
        /// The directory fid.
        dfid: Fid,
        /// Node name.
        name: &'a str,
        /// Mode including the file type.
        mode: u32,
        /// Device major.
        major: u32,
        /// Device minor.
        minor: u32,
        /// Owning group.
        gid: u32,
    }
    /// The new node.
    Rmknod = 19 plain {
        /// Its qid.
        qid: Qid,
    }
    /// Renames the file of `fid` into directory `dfid`.
    Trename<'a> = 20 plain {
        /// The file.
        fid: Fid,
        /// The target directory.
        dfid: Fid,
        /// New name.
        name: &'a str,
    }
    /// Rename done.
    Rrename = 21 plain {}
    /// Reads a symbolic link.
    Treadlink = 22 plain {
        /// The link's fid.
        fid: Fid,
    }
    /// The link's target.
    Rreadlink<'a> = 23 plain {
        /// Target path.
        target: &'a str,
    }
    /// Asks for attributes.
    Tgetattr = 24 plain {
        /// The file.
        fid: Fid,
        /// Which attributes are wanted.
        request_mask: GetattrMask,
    }
    /// Attributes (`stat(2)` and more): a [`Rgetattr`](crate::Rgetattr) in
    /// the frame's bytes.
    Rgetattr<'a> = 25 view {}
    /// Changes attributes: a [`Tsetattr`](crate::Tsetattr) in the frame's
    /// bytes.
    Tsetattr<'a> = 26 view {}
    /// Attributes changed.
    Rsetattr = 27 plain {}
    /// Opens an extended attribute (or the list of them) as `newfid`.
    Txattrwalk<'a> = 30 plain {
        /// The file.
        fid: Fid,
        /// The fid that will read the attribute.
        newfid: Fid,
        /// Attribute name; empty to list names.
        name: &'a str,
    }
    /// Size of the attribute.
    Rxattrwalk = 31 plain {
        /// Bytes to read.
        size: u64,
    }
    /// Prepares `fid` to write an extended attribute.
    Txattrcreate<'a> = 32 plain {
        /// The file; becomes the attribute writer.
        fid: Fid,
        /// Attribute name.
        name: &'a str,
        /// Total bytes that will be written.
        attr_size: u64,
        /// `setxattr(2)` flags.
        flags: u32,
    }
    /// Ready for the attribute's bytes.
    Rxattrcreate = 33 plain {}
    /// Reads directory entries.
    Treaddir = 40 plain {
        /// The open directory.
        fid: Fid,
        /// 0, or the `offset` cookie of the last entry received.
        offset: u64,
        /// Most bytes of entries wanted.
        count: u32,
    }
    /// Directory entries; iterate them with [`DirEntries`](crate::DirEntries).
    Rreaddir<'a> = 41 plain {
        /// Packed entries, borrowed from the frame.
        data: &'a [u8],
    }
    /// Flushes a file to stable storage.
    Tfsync = 50 plain {
        /// The file.
        fid: Fid,
        /// Nonzero for `fdatasync(2)` (the Linux client always sends this field).
        datasync: u32,
    }
    /// Synced.
    Rfsync = 51 plain {}
    /// Takes or releases a POSIX byte-range lock.
    Tlock<'a> = 52 custom {
        /// The open file.
        fid: Fid,
        /// Lock type.
        lock_type: LockType,
        /// Flags.
        flags: LockFlags,
        /// First byte.
        start: u64,
        /// Length; 0 to the end of the file.
        length: u64,
        /// Owner's process id.
        proc_id: u32,
        /// Owner's client id.
        client_id: &'a str,
    }
    /// Outcome of a lock request.
    Rlock = 53 plain {
        /// Lock status.
        status: LockStatus,
    }
    /// Tests for a conflicting lock.
    Tgetlock<'a> = 54 custom {
        /// The open file.
        fid: Fid,
        /// Lock type.
        lock_type: LockType,
        /// First byte.
        start: u64,
        /// Length.
        length: u64,
        /// Owner's process id.
        proc_id: u32,
        /// Owner's client id.
        client_id: &'a str,
    }
    /// The conflicting lock, or the request with type `UNLCK` if none.
    Rgetlock<'a> = 55 custom {
        /// Lock type.
        lock_type: LockType,
        /// First byte.
        start: u64,
        /// Length.
        length: u64,
        /// Holder's process id.
        proc_id: u32,
        /// Holder's client id.
        client_id: &'a str,
    }
    /// Creates a hard link to `fid` in directory `dfid`.
    Tlink<'a> = 70 plain {
        /// The directory.
        dfid: Fid,
        /// The file to link.
        fid: Fid,
        /// Link name.
        name: &'a str,
    }
    /// Linked.
    Rlink = 71 plain {}
    /// Creates a directory.
    Tmkdir<'a> = 72 plain {
        /// The parent directory.
        dfid: Fid,
        /// New directory's name.
        name: &'a str,
        /// Permission bits.
        mode: u32,
        /// Owning group.
        gid: u32,
    }
    /// The new directory.
    Rmkdir = 73 plain {
        /// Its qid.
        qid: Qid,
    }
    /// Renames a name in one directory to a name in another.
    Trenameat<'a> = 74 plain {
        /// Old directory.
        olddirfid: Fid,
        /// Old name.
        oldname: &'a str,
        /// New directory.
        newdirfid: Fid,
        /// New name.
        newname: &'a str,
    }
    /// Renamed.
    Rrenameat = 75 plain {}
    /// Removes a name from a directory.
    Tunlinkat<'a> = 76 plain {
        /// The directory.
        dirfid: Fid,
        /// The name.
        name: &'a str,
        /// `AT_REMOVEDIR` (0x200) to remove a directory.
        flags: u32,
    }
    /// Removed.
    Runlinkat = 77 plain {}
    /// Opens a session: proposes msize and a version.
    Tversion<'a> = 100 plain {
        /// Largest frame the client will handle.
        msize: u32,
        /// Proposed version string.
        version: &'a str,
    }
    /// The negotiated msize and version (`"unknown"` if none).
    Rversion<'a> = 101 plain {
        /// Largest frame of the session.
        msize: u32,
        /// Version string.
        version: &'a str,
    }
    /// Opens an authentication file as `afid`.
    Tauth<'a> = 102 plain {
        /// The auth fid.
        afid: Fid,
        /// User name.
        uname: &'a str,
        /// Tree to attach.
        aname: &'a str,
        /// Numeric user id: `Some` in 9P2000.L, `None` in 9P2000.
        n_uname: Option<u32>,
    }
    /// The auth file's qid.
    Rauth = 103 plain {
        /// Its qid.
        aqid: Qid,
    }
    /// Attaches `fid` to the root of a tree.
    Tattach<'a> = 104 plain {
        /// The new root fid.
        fid: Fid,
        /// Auth fid, or `NOFID`.
        afid: Fid,
        /// User name.
        uname: &'a str,
        /// Tree to attach (Cohesix: may carry a ticket).
        aname: &'a str,
        /// Numeric user id: `Some` in 9P2000.L, `None` in 9P2000.
        n_uname: Option<u32>,
    }
    /// The root's qid.
    Rattach = 105 plain {
        /// Its qid.
        qid: Qid,
    }
    /// 9P2000 error reply: a message string.
    Rerror<'a> = 107 plain {
        /// The error text.
        ename: &'a str,
    }
    /// Cancels request `oldtag`.
    Tflush = 108 plain {
        /// Tag of the request to cancel.
        oldtag: Tag,
    }
    /// The flush is done; `oldtag` will get no (further) reply.
    Rflush = 109 plain {}
    /// Walks `fid` through `wnames` to a new fid.
    Twalk<'a> = 110 plain {
        /// Starting fid.
        fid: Fid,
        /// Fid for the result (may equal `fid`).
        newfid: Fid,
        /// Names to walk, at most 16.
        wnames: WalkNames<'a>,
    }
    /// Qids of the names walked (fewer than asked: a partial walk).
    Rwalk<'a> = 111 plain {
        /// One qid per name walked.
        wqids: WalkQids<'a>,
    }
    /// Opens a fid (9P2000).
    Topen = 112 plain {
        /// The fid.
        fid: Fid,
        /// Open mode.
        mode: OpenMode,
    }
    /// The opened file.
    Ropen = 113 plain {
        /// Its qid.
        qid: Qid,
        /// Largest I/O without splitting.
        iounit: u32,
    }
    /// Creates a file in directory `fid` (9P2000).
    Tcreate<'a> = 114 plain {
        /// The directory; becomes the new file.
        fid: Fid,
        /// Name.
        name: &'a str,
        /// Permissions and `DM*` bits.
        perm: u32,
        /// Open mode.
        mode: OpenMode,
    }
    /// The created file.
    Rcreate = 115 plain {
        /// Its qid.
        qid: Qid,
        /// Largest I/O without splitting.
        iounit: u32,
    }
    /// Reads `count` bytes at `offset`.
    Tread = 116 plain {
        /// The open file.
        fid: Fid,
        /// Byte offset.
        offset: u64,
        /// Most bytes wanted.
        count: u32,
    }
    /// Bytes read, borrowed from the frame.
    Rread<'a> = 117 plain {
        /// The data.
        data: &'a [u8],
    }
    /// Writes bytes at `offset`.
    Twrite<'a> = 118 plain {
        /// The open file.
        fid: Fid,
        /// Byte offset.
        offset: u64,
        /// The data, borrowed from the frame.
        data: &'a [u8],
    }
    /// Bytes written.
    Rwrite = 119 plain {
        /// How many.
        count: u32,
    }
    /// Forgets a fid.
    Tclunk = 120 plain {
        /// The fid.
        fid: Fid,
    }
    /// Forgotten.
    Rclunk = 121 plain {}
    /// Removes the file of a fid and forgets the fid.
    Tremove = 122 plain {
        /// The fid.
        fid: Fid,
    }
    /// Removed.
    Rremove = 123 plain {}
    /// Asks for a 9P2000 stat.
    Tstat = 124 plain {
        /// The fid.
        fid: Fid,
    }
    /// The stat.
    Rstat<'a> = 125 plain {
        /// The entry: the frame's bytes, or the caller's [`Stat`].
        stat: StatRef<'a>,
    }
    /// Changes a 9P2000 stat.
    Twstat<'a> = 126 plain {
        /// The fid.
        fid: Fid,
        /// New values ("don't touch" fields all ones / empty).
        stat: StatRef<'a>,
    }
    /// Changed.
    Rwstat = 127 plain {}
}

/// Reads the `start[8] length[8] proc_id[4]` run shared by the lock messages.
fn read_range(r: &mut Reader<'_>, field: &'static str) -> Result<(u64, u64, u32), CodecError> {
    let l: LockRangeWire = r.layout(field)?;
    Ok((l.start.get(), l.length.get(), l.proc_id.get()))
}

#[inline]
fn write_range<S: Sink>(w: &mut Writer<S>, start: u64, length: u64, proc_id: u32) {
    w.layout(&LockRangeWire {
        start: start.into(),
        length: length.into(),
        proc_id: proc_id.into(),
    })
}

const LOCK_RANGE_LEN: usize = core::mem::size_of::<LockRangeWire>();

impl<'a> Body<'a> for Tlock<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, CodecError> {
        let fid = Fid::read(r, "Tlock.fid")?;
        let lock_type = LockType::read(r, "Tlock.type")?;
        let flags = LockFlags::read(r, "Tlock.flags")?;
        let (start, length, proc_id) = read_range(r, "Tlock")?;
        let client_id = r.str("Tlock.client_id")?;
        Ok(Tlock {
            fid,
            lock_type,
            flags,
            start,
            length,
            proc_id,
            client_id,
        })
    }
    fn body_len(&self) -> usize {
        4 + 1 + 4 + LOCK_RANGE_LEN + self.client_id.wire_len()
    }
    #[inline]
    fn encode<S: Sink>(&self, w: &mut Writer<S>) {
        w.u32(self.fid.0);
        w.u8(self.lock_type.0);
        w.u32(self.flags.bits());
        write_range(w, self.start, self.length, self.proc_id);
        w.str("Tlock.client_id", self.client_id);
    }
}

impl<'a> Body<'a> for Tgetlock<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, CodecError> {
        let fid = Fid::read(r, "Tgetlock.fid")?;
        let lock_type = LockType::read(r, "Tgetlock.type")?;
        let (start, length, proc_id) = read_range(r, "Tgetlock")?;
        let client_id = r.str("Tgetlock.client_id")?;
        Ok(Tgetlock {
            fid,
            lock_type,
            start,
            length,
            proc_id,
            client_id,
        })
    }
    fn body_len(&self) -> usize {
        4 + 1 + LOCK_RANGE_LEN + self.client_id.wire_len()
    }
    #[inline]
    fn encode<S: Sink>(&self, w: &mut Writer<S>) {
        w.u32(self.fid.0);
        w.u8(self.lock_type.0);
        write_range(w, self.start, self.length, self.proc_id);
        w.str("Tgetlock.client_id", self.client_id);
    }
}

impl<'a> Body<'a> for Rgetlock<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, CodecError> {
        let lock_type = LockType::read(r, "Rgetlock.type")?;
        let (start, length, proc_id) = read_range(r, "Rgetlock")?;
        let client_id = r.str("Rgetlock.client_id")?;
        Ok(Rgetlock {
            lock_type,
            start,
            length,
            proc_id,
            client_id,
        })
    }
    fn body_len(&self) -> usize {
        1 + LOCK_RANGE_LEN + self.client_id.wire_len()
    }
    #[inline]
    fn encode<S: Sink>(&self, w: &mut Writer<S>) {
        w.u8(self.lock_type.0);
        write_range(w, self.start, self.length, self.proc_id);
        w.str("Rgetlock.client_id", self.client_id);
    }
}
