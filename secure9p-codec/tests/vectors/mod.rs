//! Golden byte vectors: one hand-written frame for every message type of the
//! codec (and both dialects' `Tauth`/`Tattach`), each beside the struct it
//! must decode to.
//!
//! The bytes were written out field by field from the public layouts (Plan 9
//! `intro(5)`/`stat(5)`, diod's `protocol.md`, the Linux client's
//! `include/net/9p/9p.h` and `net/9p/protocol.c`), not produced by this
//! codec. Integers are little-endian; `|` separates the header
//! `size[4] type[1] tag[2]` from the body and spaces separate fields.
//! Shared by `golden.rs` and `reject.rs`; `fuzz/seed.sh --refresh-seeds`
//! also reads the `name`/`hex` pairs out of this file.

use secure9p_codec::*;

/// One golden vector.
pub struct Golden {
    /// Message name, with the dialect where the layout depends on it.
    pub name: &'static str,
    /// The dialect the frame is decoded under.
    pub dialect: Dialect,
    /// The frame as hex, fields separated by spaces.
    pub hex: &'static str,
    /// What the bytes mean.
    pub frame: Frame<'static>,
}

impl Golden {
    /// The frame's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        hex(self.hex)
    }

    /// A decoder configuration for this vector's dialect, msize unlimited.
    pub fn cfg(&self) -> DecodeConfig {
        DecodeConfig::new(self.dialect, u32::MAX)
    }
}

/// Hex digits to bytes; spaces and `|` only separate fields.
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'|')
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {text:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("bad hex {pair:?} in {text:?}"))
        })
        .collect()
}

/// A directory: type 0x80, version 0x01020304, path 0x1122334455667788.
/// On the wire: `80 04030201 8877665544332211`.
const DIR_QID: Qid = Qid {
    ty: QidType::DIR,
    version: 0x0102_0304,
    path: 0x1122_3344_5566_7788,
};

/// A plain file: type 0, version 0, path 42. On the wire: `00 00000000 2a00000000000000`.
const FILE_QID: Qid = Qid {
    ty: QidType::FILE,
    version: 0,
    path: 42,
};

/// One `Rreaddir` entry: `qid[13] offset[8] type[1] name[s]` for "." (a directory, `DT_DIR` = 4).
pub const DIRENT_DOT: &str = "80 04030201 8877665544332211  0100000000000000  04  0100 2e";

/// 1_700_000_000 seconds (2023-11-14), `00f15365` as a little-endian u32.
const T0: u32 = 1_700_000_000;

/// Every golden vector.
pub fn all() -> Vec<Golden> {
    vec![
        // ---- session: version, auth, attach, flush, errors ----
        Golden {
            name: "Tversion",
            dialect: Dialect::Linux,
            // size=21 type=100 tag=NOTAG | msize[4]=8192 version[s]="9P2000.L"
            hex: "15000000 64 ffff | 00200000 0800 3950323030302e4c",
            frame: Frame::new(
                Tag::NOTAG,
                Tversion {
                    msize: 8192,
                    version: "9P2000.L",
                },
            ),
        },
        Golden {
            name: "Rversion",
            dialect: Dialect::Base,
            // size=19 type=101 tag=NOTAG | msize[4]=8192 version[s]="9P2000"
            hex: "13000000 65 ffff | 00200000 0600 395032303030",
            frame: Frame::new(
                Tag::NOTAG,
                Rversion {
                    msize: 8192,
                    version: "9P2000",
                },
            ),
        },
        Golden {
            name: "Tauth-9P2000.L",
            dialect: Dialect::Linux,
            // size=23 type=102 tag=1 | afid[4]=1 uname[s]="root" aname[s]="" n_uname[4]=0
            hex: "17000000 66 0100 | 01000000 0400726f6f74 0000 00000000",
            frame: Frame::new(
                Tag(1),
                Tauth {
                    afid: Fid(1),
                    uname: "root",
                    aname: "",
                    n_uname: Some(0),
                },
            ),
        },
        Golden {
            name: "Tauth-9P2000",
            dialect: Dialect::Base,
            // size=22 type=102 tag=1 | afid[4]=1 uname[s]="glenda" aname[s]="/"
            hex: "16000000 66 0100 | 01000000 0600676c656e6461 01002f",
            frame: Frame::new(
                Tag(1),
                Tauth {
                    afid: Fid(1),
                    uname: "glenda",
                    aname: "/",
                    n_uname: None,
                },
            ),
        },
        Golden {
            name: "Rauth",
            dialect: Dialect::Linux,
            // size=20 type=103 tag=1 | aqid[13]: type=AUTH(0x08) version=0 path=1
            hex: "14000000 67 0100 | 08 00000000 0100000000000000",
            frame: Frame::new(
                Tag(1),
                Rauth {
                    aqid: Qid {
                        ty: QidType::AUTH,
                        version: 0,
                        path: 1,
                    },
                },
            ),
        },
        Golden {
            name: "Tattach-9P2000.L",
            dialect: Dialect::Linux,
            // size=31 type=104 tag=1 | fid[4]=0 afid[4]=NOFID uname[s]="root"
            // aname[s]="/srv" n_uname[4]=1000
            hex: "1f000000 68 0100 | 00000000 ffffffff 0400726f6f74 04002f737276 e8030000",
            frame: Frame::new(
                Tag(1),
                Tattach {
                    fid: Fid(0),
                    afid: Fid::NOFID,
                    uname: "root",
                    aname: "/srv",
                    n_uname: Some(1000),
                },
            ),
        },
        Golden {
            name: "Tattach-9P2000",
            dialect: Dialect::Base,
            // size=25 type=104 tag=1 | fid[4]=0 afid[4]=NOFID uname[s]="glenda" aname[s]=""
            hex: "19000000 68 0100 | 00000000 ffffffff 0600676c656e6461 0000",
            frame: Frame::new(
                Tag(1),
                Tattach {
                    fid: Fid(0),
                    afid: Fid::NOFID,
                    uname: "glenda",
                    aname: "",
                    n_uname: None,
                },
            ),
        },
        Golden {
            name: "Rattach",
            dialect: Dialect::Linux,
            // size=20 type=105 tag=1 | qid[13]
            hex: "14000000 69 0100 | 80 04030201 8877665544332211",
            frame: Frame::new(Tag(1), Rattach { qid: DIR_QID }),
        },
        Golden {
            name: "Rerror",
            dialect: Dialect::Base,
            // size=18 type=107 tag=2 | ename[s]="not found"
            hex: "12000000 6b 0200 | 0900 6e6f7420666f756e64",
            frame: Frame::new(Tag(2), Rerror { ename: "not found" }),
        },
        Golden {
            name: "Rlerror",
            dialect: Dialect::Linux,
            // size=11 type=7 tag=2 | ecode[4]=ENOENT(2)
            hex: "0b000000 07 0200 | 02000000",
            frame: Frame::new(Tag(2), Rlerror { ecode: 2 }),
        },
        Golden {
            name: "Tflush",
            dialect: Dialect::Linux,
            // size=9 type=108 tag=3 | oldtag[2]=2
            hex: "09000000 6c 0300 | 0200",
            frame: Frame::new(Tag(3), Tflush { oldtag: Tag(2) }),
        },
        Golden {
            name: "Rflush",
            dialect: Dialect::Linux,
            // size=7 type=109 tag=3 |
            hex: "07000000 6d 0300 |",
            frame: Frame::new(Tag(3), Rflush {}),
        },
        // ---- walking, opening, creating (9P2000) ----
        Golden {
            name: "Twalk",
            dialect: Dialect::Linux,
            // size=27 type=110 tag=4 | fid[4]=0 newfid[4]=1 nwname[2]=2 "usr" "bin"
            hex: "1b000000 6e 0400 | 00000000 01000000 0200 0300757372 030062696e",
            frame: Frame::new(
                Tag(4),
                Twalk {
                    fid: Fid(0),
                    newfid: Fid(1),
                    wnames: WalkNames::new(&["usr", "bin"]).expect("2 names"),
                },
            ),
        },
        Golden {
            name: "Rwalk",
            dialect: Dialect::Linux,
            // size=35 type=111 tag=4 | nwqid[2]=2 wqid[13] wqid[13]
            hex: "23000000 6f 0400 | 0200 80 04030201 8877665544332211 00 00000000 2a00000000000000",
            frame: Frame::new(
                Tag(4),
                Rwalk {
                    wqids: WalkQids::new(&[DIR_QID, FILE_QID]).expect("2 qids"),
                },
            ),
        },
        Golden {
            name: "Topen",
            dialect: Dialect::Base,
            // size=12 type=112 tag=5 | fid[4]=1 mode[1]=ORDWR|OTRUNC (0x12)
            hex: "0c000000 70 0500 | 01000000 12",
            frame: Frame::new(
                Tag(5),
                Topen {
                    fid: Fid(1),
                    mode: OpenMode::RDWR | OpenMode::TRUNC,
                },
            ),
        },
        Golden {
            name: "Ropen",
            dialect: Dialect::Base,
            // size=24 type=113 tag=5 | qid[13] iounit[4]=8168
            hex: "18000000 71 0500 | 00 00000000 2a00000000000000 e81f0000",
            frame: Frame::new(
                Tag(5),
                Ropen {
                    qid: FILE_QID,
                    iounit: 8168,
                },
            ),
        },
        Golden {
            name: "Tcreate",
            dialect: Dialect::Base,
            // size=21 type=114 tag=6 | fid[4]=1 name[s]="new" perm[4]=DMDIR|0755 mode[1]=OREAD
            hex: "15000000 72 0600 | 01000000 03006e6577 ed010080 00",
            frame: Frame::new(
                Tag(6),
                Tcreate {
                    fid: Fid(1),
                    name: "new",
                    perm: DMDIR | 0o755,
                    mode: OpenMode::empty(),
                },
            ),
        },
        Golden {
            name: "Rcreate",
            dialect: Dialect::Base,
            // size=24 type=115 tag=6 | qid[13] iounit[4]=0
            hex: "18000000 73 0600 | 80 04030201 8877665544332211 00000000",
            frame: Frame::new(
                Tag(6),
                Rcreate {
                    qid: DIR_QID,
                    iounit: 0,
                },
            ),
        },
        // ---- I/O ----
        Golden {
            name: "Tread",
            dialect: Dialect::Linux,
            // size=23 type=116 tag=7 | fid[4]=1 offset[8]=0x10000 count[4]=4096
            hex: "17000000 74 0700 | 01000000 0000010000000000 00100000",
            frame: Frame::new(
                Tag(7),
                Tread {
                    fid: Fid(1),
                    offset: 0x1_0000,
                    count: 4096,
                },
            ),
        },
        Golden {
            name: "Rread",
            dialect: Dialect::Linux,
            // size=17 type=117 tag=7 | count[4]=6 data="hello\n"
            hex: "11000000 75 0700 | 06000000 68656c6c6f0a",
            frame: Frame::new(Tag(7), Rread { data: b"hello\n" }),
        },
        Golden {
            name: "Twrite",
            dialect: Dialect::Linux,
            // size=26 type=118 tag=8 | fid[4]=1 offset[8]=5 count[4]=3 data="abc"
            hex: "1a000000 76 0800 | 01000000 0500000000000000 03000000 616263",
            frame: Frame::new(
                Tag(8),
                Twrite {
                    fid: Fid(1),
                    offset: 5,
                    data: b"abc",
                },
            ),
        },
        Golden {
            name: "Rwrite",
            dialect: Dialect::Linux,
            // size=11 type=119 tag=8 | count[4]=3
            hex: "0b000000 77 0800 | 03000000",
            frame: Frame::new(Tag(8), Rwrite { count: 3 }),
        },
        Golden {
            name: "Tclunk",
            dialect: Dialect::Linux,
            // size=11 type=120 tag=9 | fid[4]=1
            hex: "0b000000 78 0900 | 01000000",
            frame: Frame::new(Tag(9), Tclunk { fid: Fid(1) }),
        },
        Golden {
            name: "Rclunk",
            dialect: Dialect::Linux,
            // size=7 type=121 tag=9 |
            hex: "07000000 79 0900 |",
            frame: Frame::new(Tag(9), Rclunk {}),
        },
        Golden {
            name: "Tremove",
            dialect: Dialect::Linux,
            // size=11 type=122 tag=10 | fid[4]=2
            hex: "0b000000 7a 0a00 | 02000000",
            frame: Frame::new(Tag(10), Tremove { fid: Fid(2) }),
        },
        Golden {
            name: "Rremove",
            dialect: Dialect::Linux,
            // size=7 type=123 tag=10 |
            hex: "07000000 7b 0a00 |",
            frame: Frame::new(Tag(10), Rremove {}),
        },
        // ---- 9P2000 stat ----
        Golden {
            name: "Tstat",
            dialect: Dialect::Base,
            // size=11 type=124 tag=11 | fid[4]=1
            hex: "0b000000 7c 0b00 | 01000000",
            frame: Frame::new(Tag(11), Tstat { fid: Fid(1) }),
        },
        Golden {
            name: "Rstat",
            dialect: Dialect::Base,
            // size=75 type=125 tag=11 | n[2]=66, then the stat: size[2]=64 type[2]=0
            // dev[4]=0 qid[13] mode[4]=0644 atime[4]=T0 mtime[4]=T0 length[8]=6
            // name[s]="hello" uid[s]="glenda" gid[s]="glenda" muid[s]=""
            hex: concat!(
                "4b000000 7d 0b00 | 4200 4000 0000 00000000 00 00000000 2a00000000000000",
                " a4010000 00f15365 00f15365 0600000000000000",
                " 050068656c6c6f 0600676c656e6461 0600676c656e6461 0000",
            ),
            frame: Frame::new(
                Tag(11),
                Rstat {
                    stat: StatRef::new(&Stat {
                        ty: 0,
                        dev: 0,
                        qid: FILE_QID,
                        mode: 0o644,
                        atime: T0,
                        mtime: T0,
                        length: 6,
                        name: "hello",
                        uid: "glenda",
                        gid: "glenda",
                        muid: "",
                    }),
                },
            ),
        },
        Golden {
            name: "Twstat",
            dialect: Dialect::Base,
            // size=69 type=126 tag=12 | fid[4]=1 n[2]=56, then a "don't touch"
            // stat (all ones) renaming to "newname": size[2]=54 type[2] dev[4]
            // qid[13] mode[4] atime[4] mtime[4] length[8] name[s] uid[s]="" gid[s]="" muid[s]=""
            hex: concat!(
                "45000000 7e 0c00 | 01000000 3800 3600 ffff ffffffff ff ffffffff ffffffffffffffff",
                " ffffffff ffffffff ffffffff ffffffffffffffff",
                " 07006e65776e616d65 0000 0000 0000",
            ),
            frame: Frame::new(
                Tag(12),
                Twstat {
                    fid: Fid(1),
                    stat: StatRef::new(
                        &const {
                            Stat {
                                ty: u16::MAX,
                                dev: u32::MAX,
                                qid: Qid {
                                    ty: QidType::all(),
                                    version: u32::MAX,
                                    path: u64::MAX,
                                },
                                mode: u32::MAX,
                                atime: u32::MAX,
                                mtime: u32::MAX,
                                length: u64::MAX,
                                name: "newname",
                                uid: "",
                                gid: "",
                                muid: "",
                            }
                        },
                    ),
                },
            ),
        },
        Golden {
            name: "Rwstat",
            dialect: Dialect::Base,
            // size=7 type=127 tag=12 |
            hex: "07000000 7f 0c00 |",
            frame: Frame::new(Tag(12), Rwstat {}),
        },
        // ---- 9P2000.L ----
        Golden {
            name: "Tstatfs",
            dialect: Dialect::Linux,
            // size=11 type=8 tag=13 | fid[4]=1
            hex: "0b000000 08 0d00 | 01000000",
            frame: Frame::new(Tag(13), Tstatfs { fid: Fid(1) }),
        },
        Golden {
            name: "Rstatfs",
            dialect: Dialect::Linux,
            // size=67 type=9 tag=13 | type[4]=TMPFS_MAGIC bsize[4]=4096 blocks[8]=1000
            // bfree[8]=500 bavail[8]=400 files[8]=100 ffree[8]=50 fsid[8]=0x1234 namelen[4]=255
            hex: concat!(
                "43000000 09 0d00 | 94190201 00100000 e803000000000000 f401000000000000",
                " 9001000000000000 6400000000000000 3200000000000000 3412000000000000 ff000000",
            ),
            frame: Frame::new(
                Tag(13),
                &const {
                    Rstatfs::new()
                        .with_ty(0x0102_1994)
                        .with_bsize(4096)
                        .with_blocks(1000)
                        .with_bfree(500)
                        .with_bavail(400)
                        .with_files(100)
                        .with_ffree(50)
                        .with_fsid(0x1234)
                        .with_namelen(255)
                },
            ),
        },
        Golden {
            name: "Tlopen",
            dialect: Dialect::Linux,
            // size=15 type=12 tag=14 | fid[4]=1 flags[4]=O_RDONLY|O_LARGEFILE|O_DIRECTORY (0o300000)
            hex: "0f000000 0c 0e00 | 01000000 00800100",
            frame: Frame::new(
                Tag(14),
                Tlopen {
                    fid: Fid(1),
                    flags: LOpenFlags::LARGEFILE | LOpenFlags::DIRECTORY,
                },
            ),
        },
        Golden {
            name: "Rlopen",
            dialect: Dialect::Linux,
            // size=24 type=13 tag=14 | qid[13] iounit[4]=0
            hex: "18000000 0d 0e00 | 80 04030201 8877665544332211 00000000",
            frame: Frame::new(
                Tag(14),
                Rlopen {
                    qid: DIR_QID,
                    iounit: 0,
                },
            ),
        },
        Golden {
            name: "Tlcreate",
            dialect: Dialect::Linux,
            // size=26 type=14 tag=15 | fid[4]=1 name[s]="f" flags[4]=O_WRONLY|O_CREAT|O_TRUNC (0o1101)
            // mode[4]=0644 gid[4]=1000
            hex: "1a000000 0e 0f00 | 01000000 010066 41020000 a4010000 e8030000",
            frame: Frame::new(
                Tag(15),
                Tlcreate {
                    fid: Fid(1),
                    name: "f",
                    flags: LOpenFlags::WRONLY | LOpenFlags::CREAT | LOpenFlags::TRUNC,
                    mode: 0o644,
                    gid: 1000,
                },
            ),
        },
        Golden {
            name: "Rlcreate",
            dialect: Dialect::Linux,
            // size=24 type=15 tag=15 | qid[13] iounit[4]=0
            hex: "18000000 0f 0f00 | 00 00000000 2a00000000000000 00000000",
            frame: Frame::new(
                Tag(15),
                Rlcreate {
                    qid: FILE_QID,
                    iounit: 0,
                },
            ),
        },
        Golden {
            name: "Tsymlink",
            dialect: Dialect::Linux,
            // size=24 type=16 tag=16 | fid[4]=1 name[s]="l" symtgt[s]="/tmp" gid[4]=0
            hex: "18000000 10 1000 | 01000000 01006c 04002f746d70 00000000",
            frame: Frame::new(
                Tag(16),
                Tsymlink {
                    fid: Fid(1),
                    name: "l",
                    symtgt: "/tmp",
                    gid: 0,
                },
            ),
        },
        Golden {
            name: "Rsymlink",
            dialect: Dialect::Linux,
            // size=20 type=17 tag=16 | qid[13]: type=SYMLINK(0x02) version=0 path=3
            hex: "14000000 11 1000 | 02 00000000 0300000000000000",
            frame: Frame::new(
                Tag(16),
                Rsymlink {
                    qid: Qid {
                        ty: QidType::SYMLINK,
                        version: 0,
                        path: 3,
                    },
                },
            ),
        },
        Golden {
            name: "Tmknod",
            dialect: Dialect::Linux,
            // size=33 type=18 tag=17 | dfid[4]=1 name[s]="null" mode[4]=S_IFCHR|0666 (0o20666)
            // major[4]=1 minor[4]=3 gid[4]=0
            hex: "21000000 12 1100 | 01000000 04006e756c6c b6210000 01000000 03000000 00000000",
            frame: Frame::new(
                Tag(17),
                Tmknod {
                    dfid: Fid(1),
                    name: "null",
                    mode: 0o20666,
                    major: 1,
                    minor: 3,
                    gid: 0,
                },
            ),
        },
        Golden {
            name: "Rmknod",
            dialect: Dialect::Linux,
            // size=20 type=19 tag=17 | qid[13]: type=0 version=0 path=4
            hex: "14000000 13 1100 | 00 00000000 0400000000000000",
            frame: Frame::new(
                Tag(17),
                Rmknod {
                    qid: Qid {
                        ty: QidType::FILE,
                        version: 0,
                        path: 4,
                    },
                },
            ),
        },
        Golden {
            name: "Trename",
            dialect: Dialect::Linux,
            // size=18 type=20 tag=18 | fid[4]=2 dfid[4]=1 name[s]="b"
            hex: "12000000 14 1200 | 02000000 01000000 010062",
            frame: Frame::new(
                Tag(18),
                Trename {
                    fid: Fid(2),
                    dfid: Fid(1),
                    name: "b",
                },
            ),
        },
        Golden {
            name: "Rrename",
            dialect: Dialect::Linux,
            // size=7 type=21 tag=18 |
            hex: "07000000 15 1200 |",
            frame: Frame::new(Tag(18), Rrename {}),
        },
        Golden {
            name: "Treadlink",
            dialect: Dialect::Linux,
            // size=11 type=22 tag=19 | fid[4]=2
            hex: "0b000000 16 1300 | 02000000",
            frame: Frame::new(Tag(19), Treadlink { fid: Fid(2) }),
        },
        Golden {
            name: "Rreadlink",
            dialect: Dialect::Linux,
            // size=13 type=23 tag=19 | target[s]="/tmp"
            hex: "0d000000 17 1300 | 04002f746d70",
            frame: Frame::new(Tag(19), Rreadlink { target: "/tmp" }),
        },
        Golden {
            name: "Tgetattr",
            dialect: Dialect::Linux,
            // size=19 type=24 tag=20 | fid[4]=1 request_mask[8]=P9_GETATTR_BASIC (0x7ff)
            hex: "13000000 18 1400 | 01000000 ff07000000000000",
            frame: Frame::new(
                Tag(20),
                Tgetattr {
                    fid: Fid(1),
                    request_mask: GetattrMask::BASIC,
                },
            ),
        },
        Golden {
            name: "Rgetattr",
            dialect: Dialect::Linux,
            // size=160 type=25 tag=20 | valid[8]=0x7ff qid[13] mode[4]=S_IFREG|0644 (0o100644)
            // uid[4]=1000 gid[4]=1000 nlink[8]=1 rdev[8]=0 size[8]=6 blksize[8]=4096 blocks[8]=8
            // atime sec/nsec[8+8]=T0/0 mtime=T0+1/0 ctime=T0+2/0 btime=0/0 gen[8]=0 data_version[8]=0
            hex: concat!(
                "a0000000 19 1400 | ff07000000000000 00 00000000 2a00000000000000",
                " a4810000 e8030000 e8030000",
                " 0100000000000000 0000000000000000 0600000000000000 0010000000000000 0800000000000000",
                " 00f1536500000000 0000000000000000 01f1536500000000 0000000000000000",
                " 02f1536500000000 0000000000000000 0000000000000000 0000000000000000",
                " 0000000000000000 0000000000000000",
            ),
            frame: Frame::new(
                Tag(20),
                // Fields not set are zero.
                &const {
                    Rgetattr::new()
                        .with_valid(GetattrMask::BASIC)
                        .with_qid(FILE_QID)
                        .with_mode(0o100644)
                        .with_uid(1000)
                        .with_gid(1000)
                        .with_nlink(1)
                        .with_size(6)
                        .with_blksize(4096)
                        .with_blocks(8)
                        .with_atime_sec(T0 as u64)
                        .with_mtime_sec(T0 as u64 + 1)
                        .with_ctime_sec(T0 as u64 + 2)
                },
            ),
        },
        Golden {
            name: "Tsetattr",
            dialect: Dialect::Linux,
            // size=67 type=26 tag=21 | fid[4]=1 valid[4]=MODE|SIZE (0x9) mode[4]=0600 uid[4]=0
            // gid[4]=0 size[8]=4096 atime_sec[8] atime_nsec[8] mtime_sec[8] mtime_nsec[8] all 0
            hex: concat!(
                "43000000 1a 1500 | 01000000 09000000 80010000 00000000 00000000 0010000000000000",
                " 0000000000000000 0000000000000000 0000000000000000 0000000000000000",
            ),
            frame: Frame::new(
                Tag(21),
                // Fields not set are zero.
                &const {
                    Tsetattr::new()
                        .with_fid(Fid(1))
                        .with_valid(SetattrValid::MODE.union(SetattrValid::SIZE))
                        .with_mode(0o600)
                        .with_size(4096)
                },
            ),
        },
        Golden {
            name: "Rsetattr",
            dialect: Dialect::Linux,
            // size=7 type=27 tag=21 |
            hex: "07000000 1b 1500 |",
            frame: Frame::new(Tag(21), Rsetattr {}),
        },
        Golden {
            name: "Txattrwalk",
            dialect: Dialect::Linux,
            // size=23 type=30 tag=22 | fid[4]=1 newfid[4]=2 name[s]="user.x"
            hex: "17000000 1e 1600 | 01000000 02000000 0600757365722e78",
            frame: Frame::new(
                Tag(22),
                Txattrwalk {
                    fid: Fid(1),
                    newfid: Fid(2),
                    name: "user.x",
                },
            ),
        },
        Golden {
            name: "Rxattrwalk",
            dialect: Dialect::Linux,
            // size=15 type=31 tag=22 | size[8]=5
            hex: "0f000000 1f 1600 | 0500000000000000",
            frame: Frame::new(Tag(22), Rxattrwalk { size: 5 }),
        },
        Golden {
            name: "Txattrcreate",
            dialect: Dialect::Linux,
            // size=31 type=32 tag=23 | fid[4]=2 name[s]="user.x" attr_size[8]=5 flags[4]=XATTR_CREATE (1)
            hex: "1f000000 20 1700 | 02000000 0600757365722e78 0500000000000000 01000000",
            frame: Frame::new(
                Tag(23),
                Txattrcreate {
                    fid: Fid(2),
                    name: "user.x",
                    attr_size: 5,
                    flags: 1,
                },
            ),
        },
        Golden {
            name: "Rxattrcreate",
            dialect: Dialect::Linux,
            // size=7 type=33 tag=23 |
            hex: "07000000 21 1700 |",
            frame: Frame::new(Tag(23), Rxattrcreate {}),
        },
        Golden {
            name: "Treaddir",
            dialect: Dialect::Linux,
            // size=23 type=40 tag=24 | fid[4]=1 offset[8]=0 count[4]=8168
            hex: "17000000 28 1800 | 01000000 0000000000000000 e81f0000",
            frame: Frame::new(
                Tag(24),
                Treaddir {
                    fid: Fid(1),
                    offset: 0,
                    count: 8168,
                },
            ),
        },
        Golden {
            name: "Rreaddir",
            dialect: Dialect::Linux,
            // size=36 type=41 tag=24 | count[4]=25 then one entry (DIRENT_DOT):
            // qid[13] offset[8]=1 type[1]=DT_DIR name[s]="."
            hex: "24000000 29 1800 | 19000000 80 04030201 8877665544332211 0100000000000000 04 01002e",
            frame: Frame::new(
                Tag(24),
                Rreaddir {
                    data: &[
                        0x80, 0x04, 0x03, 0x02, 0x01, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22,
                        0x11, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x04, 0x01, 0x00, b'.',
                    ],
                },
            ),
        },
        Golden {
            name: "Tfsync",
            dialect: Dialect::Linux,
            // size=15 type=50 tag=25 | fid[4]=1 datasync[4]=1
            hex: "0f000000 32 1900 | 01000000 01000000",
            frame: Frame::new(
                Tag(25),
                Tfsync {
                    fid: Fid(1),
                    datasync: 1,
                },
            ),
        },
        Golden {
            name: "Rfsync",
            dialect: Dialect::Linux,
            // size=7 type=51 tag=25 |
            hex: "07000000 33 1900 |",
            frame: Frame::new(Tag(25), Rfsync {}),
        },
        Golden {
            name: "Tlock",
            dialect: Dialect::Linux,
            // size=42 type=52 tag=26 | fid[4]=1 type[1]=WRLCK flags[4]=BLOCK start[8]=0
            // length[8]=0 proc_id[4]=1234 client_id[s]="host"
            hex: concat!(
                "2a000000 34 1a00 | 01000000 01 01000000 0000000000000000 0000000000000000",
                " d2040000 0400686f7374",
            ),
            frame: Frame::new(
                Tag(26),
                Tlock {
                    fid: Fid(1),
                    lock_type: LockType::WRLCK,
                    flags: LockFlags::BLOCK,
                    start: 0,
                    length: 0,
                    proc_id: 1234,
                    client_id: "host",
                },
            ),
        },
        Golden {
            name: "Rlock",
            dialect: Dialect::Linux,
            // size=8 type=53 tag=26 | status[1]=BLOCKED
            hex: "08000000 35 1a00 | 01",
            frame: Frame::new(
                Tag(26),
                Rlock {
                    status: LockStatus::BLOCKED,
                },
            ),
        },
        Golden {
            name: "Tgetlock",
            dialect: Dialect::Linux,
            // size=38 type=54 tag=27 | fid[4]=1 type[1]=RDLCK start[8]=10 length[8]=20
            // proc_id[4]=1234 client_id[s]="host"
            hex: concat!(
                "26000000 36 1b00 | 01000000 00 0a00000000000000 1400000000000000",
                " d2040000 0400686f7374",
            ),
            frame: Frame::new(
                Tag(27),
                Tgetlock {
                    fid: Fid(1),
                    lock_type: LockType::RDLCK,
                    start: 10,
                    length: 20,
                    proc_id: 1234,
                    client_id: "host",
                },
            ),
        },
        Golden {
            name: "Rgetlock",
            dialect: Dialect::Linux,
            // size=34 type=55 tag=27 | type[1]=UNLCK start[8]=10 length[8]=20 proc_id[4]=1234
            // client_id[s]="host"
            hex: "22000000 37 1b00 | 02 0a00000000000000 1400000000000000 d2040000 0400686f7374",
            frame: Frame::new(
                Tag(27),
                Rgetlock {
                    lock_type: LockType::UNLCK,
                    start: 10,
                    length: 20,
                    proc_id: 1234,
                    client_id: "host",
                },
            ),
        },
        Golden {
            name: "Tlink",
            dialect: Dialect::Linux,
            // size=18 type=70 tag=28 | dfid[4]=1 fid[4]=2 name[s]="h"
            hex: "12000000 46 1c00 | 01000000 02000000 010068",
            frame: Frame::new(
                Tag(28),
                Tlink {
                    dfid: Fid(1),
                    fid: Fid(2),
                    name: "h",
                },
            ),
        },
        Golden {
            name: "Rlink",
            dialect: Dialect::Linux,
            // size=7 type=71 tag=28 |
            hex: "07000000 47 1c00 |",
            frame: Frame::new(Tag(28), Rlink {}),
        },
        Golden {
            name: "Tmkdir",
            dialect: Dialect::Linux,
            // size=22 type=72 tag=29 | dfid[4]=1 name[s]="d" mode[4]=0755 gid[4]=1000
            hex: "16000000 48 1d00 | 01000000 010064 ed010000 e8030000",
            frame: Frame::new(
                Tag(29),
                Tmkdir {
                    dfid: Fid(1),
                    name: "d",
                    mode: 0o755,
                    gid: 1000,
                },
            ),
        },
        Golden {
            name: "Rmkdir",
            dialect: Dialect::Linux,
            // size=20 type=73 tag=29 | qid[13]
            hex: "14000000 49 1d00 | 80 04030201 8877665544332211",
            frame: Frame::new(Tag(29), Rmkdir { qid: DIR_QID }),
        },
        Golden {
            name: "Trenameat",
            dialect: Dialect::Linux,
            // size=21 type=74 tag=30 | olddirfid[4]=1 oldname[s]="a" newdirfid[4]=2 newname[s]="b"
            hex: "15000000 4a 1e00 | 01000000 010061 02000000 010062",
            frame: Frame::new(
                Tag(30),
                Trenameat {
                    olddirfid: Fid(1),
                    oldname: "a",
                    newdirfid: Fid(2),
                    newname: "b",
                },
            ),
        },
        Golden {
            name: "Rrenameat",
            dialect: Dialect::Linux,
            // size=7 type=75 tag=30 |
            hex: "07000000 4b 1e00 |",
            frame: Frame::new(Tag(30), Rrenameat {}),
        },
        Golden {
            name: "Tunlinkat",
            dialect: Dialect::Linux,
            // size=18 type=76 tag=31 | dirfid[4]=1 name[s]="d" flags[4]=AT_REMOVEDIR (0x200)
            hex: "12000000 4c 1f00 | 01000000 010064 00020000",
            frame: Frame::new(
                Tag(31),
                Tunlinkat {
                    dirfid: Fid(1),
                    name: "d",
                    flags: 0x200,
                },
            ),
        },
        Golden {
            name: "Runlinkat",
            dialect: Dialect::Linux,
            // size=7 type=77 tag=31 |
            hex: "07000000 4d 1f00 |",
            frame: Frame::new(Tag(31), Runlinkat {}),
        },
    ]
}
