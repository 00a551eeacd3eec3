//! Property tests: for every message type, with arbitrary field values,
//! `decode(encode(m)) == m`, and whatever decodes re-encodes to the very
//! bytes it came from (the wire form is canonical).
//!
//! Each case draws one pool of material (numbers biased to the edges,
//! UTF-8 strings without NUL, a payload, a walk length) and builds every
//! message type from it, so every type is exercised in every case. The
//! `build` match is exhaustive: a new message type does not compile until
//! it is covered here.

use proptest::prelude::*;
use secure9p_codec::*;

/// Owned material the messages of one case borrow from.
#[derive(Debug, Clone)]
struct Pool {
    nums: Vec<u64>,
    strs: Vec<String>,
    data: Vec<u8>,
    nwalk: usize,
}

/// Numbers: anything, with the edges (0, all ones, near overflow) drawn often.
fn num() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => any::<u64>(),
        2 => 0u64..=0xffff,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => (u64::MAX - u64::from(u32::MAX))..=u64::MAX,
        1 => Just(u64::from(u32::MAX)),
    ]
}

/// Valid UTF-8 without NUL: mostly short, sometimes thousands of characters.
fn string() -> impl Strategy<Value = String> {
    let ch = any::<char>().prop_filter("NUL is not allowed in 9P strings", |c| *c != '\0');
    prop_oneof![
        20 => proptest::collection::vec(ch.clone(), 0..24),
        1 => proptest::collection::vec(ch, 1000..4000),
    ]
    .prop_map(String::from_iter)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..512),
        1 => proptest::collection::vec(any::<u8>(), 0..70_000),
    ]
}

fn pool() -> impl Strategy<Value = Pool> {
    (
        proptest::collection::vec(num(), 64),
        proptest::collection::vec(string(), 20),
        payload(),
        0..=MAX_WALK_ELEMENTS,
    )
        .prop_map(|(nums, strs, data, nwalk)| Pool {
            nums,
            strs,
            data,
            nwalk,
        })
}

/// Hands out the pool's values in turn (wrapping around).
struct Draw<'a> {
    pool: &'a Pool,
    n: usize,
    s: usize,
}

impl<'a> Draw<'a> {
    fn new(pool: &'a Pool) -> Self {
        Draw { pool, n: 0, s: 0 }
    }
    fn u64(&mut self) -> u64 {
        let v = self.pool.nums[self.n % self.pool.nums.len()];
        self.n += 1;
        v
    }
    fn u32(&mut self) -> u32 {
        self.u64() as u32
    }
    fn u16(&mut self) -> u16 {
        self.u64() as u16
    }
    fn u8(&mut self) -> u8 {
        self.u64() as u8
    }
    fn fid(&mut self) -> Fid {
        Fid(self.u32())
    }
    fn qid(&mut self) -> Qid {
        Qid {
            ty: QidType::from_bits_retain(self.u8()),
            version: self.u32(),
            path: self.u64(),
        }
    }
    fn str(&mut self) -> &'a str {
        let s = &self.pool.strs[self.s % self.pool.strs.len()];
        self.s += 1;
        s
    }
    fn data(&self) -> &'a [u8] {
        &self.pool.data
    }
    // The walk lists borrow their elements; a test may leak the small
    // backing vectors so they live as long as the pool's borrow.
    fn names(&mut self) -> WalkNames<'a> {
        let names: Vec<&'a str> = (0..self.pool.nwalk).map(|_| self.str()).collect();
        WalkNames::new(Box::leak(names.into_boxed_slice())).expect("at most 16 names")
    }
    fn qids(&mut self) -> WalkQids<'a> {
        let qids: Vec<Qid> = (0..self.pool.nwalk).map(|_| self.qid()).collect();
        WalkQids::new(Box::leak(qids.into_boxed_slice())).expect("at most 16 qids")
    }
    fn stat(&mut self) -> Stat<'a> {
        Stat {
            ty: self.u16(),
            dev: self.u32(),
            qid: self.qid(),
            mode: self.u32(),
            atime: self.u32(),
            mtime: self.u32(),
            length: self.u64(),
            name: self.str(),
            uid: self.str(),
            gid: self.str(),
            muid: self.str(),
        }
    }
    /// `n_uname[4]` exists in 9P2000.L only.
    fn n_uname(&mut self, dialect: Dialect) -> Option<u32> {
        let v = self.u32();
        (dialect == Dialect::Linux).then_some(v)
    }
}

/// Lends a built fixed-layout message or stat for as long as the pool's
/// borrow (a test may leak these small values, as it does the walk lists).
fn leak<'a, T>(v: T) -> &'a T {
    Box::leak(Box::new(v))
}

/// A message of type `ty` for a session of `dialect`, every field drawn from `pool`.
fn build(ty: MsgType, dialect: Dialect, pool: &Pool) -> Msg<'_> {
    let mut d = Draw::new(pool);
    match ty {
        MsgType::Rlerror => Rlerror { ecode: d.u32() }.into(),
        MsgType::Tstatfs => Tstatfs { fid: d.fid() }.into(),
        MsgType::Rstatfs => leak(
            Rstatfs::new()
                .with_ty(d.u32())
                .with_bsize(d.u32())
                .with_blocks(d.u64())
                .with_bfree(d.u64())
                .with_bavail(d.u64())
                .with_files(d.u64())
                .with_ffree(d.u64())
                .with_fsid(d.u64())
                .with_namelen(d.u32()),
        )
        .into(),
        MsgType::Tlopen => Tlopen {
            fid: d.fid(),
            flags: LOpenFlags::from_bits_retain(d.u32()),
        }
        .into(),
        MsgType::Rlopen => Rlopen {
            qid: d.qid(),
            iounit: d.u32(),
        }
        .into(),
        MsgType::Tlcreate => Tlcreate {
            fid: d.fid(),
            name: d.str(),
            flags: LOpenFlags::from_bits_retain(d.u32()),
            mode: d.u32(),
            gid: d.u32(),
        }
        .into(),
        MsgType::Rlcreate => Rlcreate {
            qid: d.qid(),
            iounit: d.u32(),
        }
        .into(),
        MsgType::Tsymlink => Tsymlink {
            fid: d.fid(),
            name: d.str(),
            symtgt: d.str(),
            gid: d.u32(),
        }
        .into(),
        MsgType::Rsymlink => Rsymlink { qid: d.qid() }.into(),
        MsgType::Tmknod => Tmknod {
            dfid: d.fid(),
            name: d.str(),
            mode: d.u32(),
            major: d.u32(),
            minor: d.u32(),
            gid: d.u32(),
        }
        .into(),
        MsgType::Rmknod => Rmknod { qid: d.qid() }.into(),
        MsgType::Trename => Trename {
            fid: d.fid(),
            dfid: d.fid(),
            name: d.str(),
        }
        .into(),
        MsgType::Rrename => Rrename {}.into(),
        MsgType::Treadlink => Treadlink { fid: d.fid() }.into(),
        MsgType::Rreadlink => Rreadlink { target: d.str() }.into(),
        MsgType::Tgetattr => Tgetattr {
            fid: d.fid(),
            request_mask: GetattrMask::from_bits_retain(d.u64()),
        }
        .into(),
        MsgType::Rgetattr => leak(
            Rgetattr::new()
                .with_valid(GetattrMask::from_bits_retain(d.u64()))
                .with_qid(d.qid())
                .with_mode(d.u32())
                .with_uid(d.u32())
                .with_gid(d.u32())
                .with_nlink(d.u64())
                .with_rdev(d.u64())
                .with_size(d.u64())
                .with_blksize(d.u64())
                .with_blocks(d.u64())
                .with_atime_sec(d.u64())
                .with_atime_nsec(d.u64())
                .with_mtime_sec(d.u64())
                .with_mtime_nsec(d.u64())
                .with_ctime_sec(d.u64())
                .with_ctime_nsec(d.u64())
                .with_btime_sec(d.u64())
                .with_btime_nsec(d.u64())
                .with_gen(d.u64())
                .with_data_version(d.u64()),
        )
        .into(),
        MsgType::Tsetattr => leak(
            Tsetattr::new()
                .with_fid(d.fid())
                .with_valid(SetattrValid::from_bits_retain(d.u32()))
                .with_mode(d.u32())
                .with_uid(d.u32())
                .with_gid(d.u32())
                .with_size(d.u64())
                .with_atime_sec(d.u64())
                .with_atime_nsec(d.u64())
                .with_mtime_sec(d.u64())
                .with_mtime_nsec(d.u64()),
        )
        .into(),
        MsgType::Rsetattr => Rsetattr {}.into(),
        MsgType::Txattrwalk => Txattrwalk {
            fid: d.fid(),
            newfid: d.fid(),
            name: d.str(),
        }
        .into(),
        MsgType::Rxattrwalk => Rxattrwalk { size: d.u64() }.into(),
        MsgType::Txattrcreate => Txattrcreate {
            fid: d.fid(),
            name: d.str(),
            attr_size: d.u64(),
            flags: d.u32(),
        }
        .into(),
        MsgType::Rxattrcreate => Rxattrcreate {}.into(),
        MsgType::Treaddir => Treaddir {
            fid: d.fid(),
            offset: d.u64(),
            count: d.u32(),
        }
        .into(),
        MsgType::Rreaddir => Rreaddir { data: d.data() }.into(),
        MsgType::Tfsync => Tfsync {
            fid: d.fid(),
            datasync: d.u32(),
        }
        .into(),
        MsgType::Rfsync => Rfsync {}.into(),
        MsgType::Tlock => Tlock {
            fid: d.fid(),
            lock_type: LockType(d.u8()),
            flags: LockFlags::from_bits_retain(d.u32()),
            start: d.u64(),
            length: d.u64(),
            proc_id: d.u32(),
            client_id: d.str(),
        }
        .into(),
        MsgType::Rlock => Rlock {
            status: LockStatus(d.u8()),
        }
        .into(),
        MsgType::Tgetlock => Tgetlock {
            fid: d.fid(),
            lock_type: LockType(d.u8()),
            start: d.u64(),
            length: d.u64(),
            proc_id: d.u32(),
            client_id: d.str(),
        }
        .into(),
        MsgType::Rgetlock => Rgetlock {
            lock_type: LockType(d.u8()),
            start: d.u64(),
            length: d.u64(),
            proc_id: d.u32(),
            client_id: d.str(),
        }
        .into(),
        MsgType::Tlink => Tlink {
            dfid: d.fid(),
            fid: d.fid(),
            name: d.str(),
        }
        .into(),
        MsgType::Rlink => Rlink {}.into(),
        MsgType::Tmkdir => Tmkdir {
            dfid: d.fid(),
            name: d.str(),
            mode: d.u32(),
            gid: d.u32(),
        }
        .into(),
        MsgType::Rmkdir => Rmkdir { qid: d.qid() }.into(),
        MsgType::Trenameat => Trenameat {
            olddirfid: d.fid(),
            oldname: d.str(),
            newdirfid: d.fid(),
            newname: d.str(),
        }
        .into(),
        MsgType::Rrenameat => Rrenameat {}.into(),
        MsgType::Tunlinkat => Tunlinkat {
            dirfid: d.fid(),
            name: d.str(),
            flags: d.u32(),
        }
        .into(),
        MsgType::Runlinkat => Runlinkat {}.into(),
        MsgType::Tversion => Tversion {
            msize: d.u32(),
            version: d.str(),
        }
        .into(),
        MsgType::Rversion => Rversion {
            msize: d.u32(),
            version: d.str(),
        }
        .into(),
        MsgType::Tauth => Tauth {
            afid: d.fid(),
            uname: d.str(),
            aname: d.str(),
            n_uname: d.n_uname(dialect),
        }
        .into(),
        MsgType::Rauth => Rauth { aqid: d.qid() }.into(),
        MsgType::Tattach => Tattach {
            fid: d.fid(),
            afid: d.fid(),
            uname: d.str(),
            aname: d.str(),
            n_uname: d.n_uname(dialect),
        }
        .into(),
        MsgType::Rattach => Rattach { qid: d.qid() }.into(),
        MsgType::Rerror => Rerror { ename: d.str() }.into(),
        MsgType::Tflush => Tflush {
            oldtag: Tag(d.u16()),
        }
        .into(),
        MsgType::Rflush => Rflush {}.into(),
        MsgType::Twalk => Twalk {
            fid: d.fid(),
            newfid: d.fid(),
            wnames: d.names(),
        }
        .into(),
        MsgType::Rwalk => Rwalk { wqids: d.qids() }.into(),
        MsgType::Topen => Topen {
            fid: d.fid(),
            mode: OpenMode::from_bits_retain(d.u8()),
        }
        .into(),
        MsgType::Ropen => Ropen {
            qid: d.qid(),
            iounit: d.u32(),
        }
        .into(),
        MsgType::Tcreate => Tcreate {
            fid: d.fid(),
            name: d.str(),
            perm: d.u32(),
            mode: OpenMode::from_bits_retain(d.u8()),
        }
        .into(),
        MsgType::Rcreate => Rcreate {
            qid: d.qid(),
            iounit: d.u32(),
        }
        .into(),
        MsgType::Tread => Tread {
            fid: d.fid(),
            offset: d.u64(),
            count: d.u32(),
        }
        .into(),
        MsgType::Rread => Rread { data: d.data() }.into(),
        MsgType::Twrite => Twrite {
            fid: d.fid(),
            offset: d.u64(),
            data: d.data(),
        }
        .into(),
        MsgType::Rwrite => Rwrite { count: d.u32() }.into(),
        MsgType::Tclunk => Tclunk { fid: d.fid() }.into(),
        MsgType::Rclunk => Rclunk {}.into(),
        MsgType::Tremove => Tremove { fid: d.fid() }.into(),
        MsgType::Rremove => Rremove {}.into(),
        MsgType::Tstat => Tstat { fid: d.fid() }.into(),
        MsgType::Rstat => Rstat {
            stat: StatRef::new(leak(d.stat())),
        }
        .into(),
        MsgType::Twstat => Twstat {
            fid: d.fid(),
            stat: StatRef::new(leak(d.stat())),
        }
        .into(),
        MsgType::Rwstat => Rwstat {}.into(),
    }
}

fn all_types() -> Vec<MsgType> {
    (0..=u8::MAX).filter_map(MsgType::from_u8).collect()
}

/// The overflow a decoder must refuse, if this message has one.
fn overflow(msg: &Msg<'_>) -> Option<CodecError> {
    let (offset, count) = match msg {
        Msg::Tread(m) => (m.offset, m.count),
        Msg::Treaddir(m) => (m.offset, m.count),
        Msg::Twrite(m) => (m.offset, m.data.len() as u32),
        _ => return None,
    };
    offset
        .checked_add(u64::from(count))
        .is_none()
        .then_some(CodecError::OffsetOverflow { offset, count })
}

fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = vec![0u8; frame.encoded_len()];
    let n = frame
        .encode(&mut out)
        .unwrap_or_else(|e| panic!("{:?}: {e}", frame.msg.msg_type()));
    assert_eq!(n, out.len(), "{:?}: encoded_len", frame.msg.msg_type());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_of_encode_is_identity(pool in pool(), tag in any::<u16>()) {
        for ty in all_types() {
            for dialect in [Dialect::Linux, Dialect::Base] {
                let frame = Frame::new(Tag(tag), build(ty, dialect, &pool));
                prop_assert_eq!(frame.msg.msg_type(), ty);
                let bytes = encode(&frame);
                let cfg = DecodeConfig::new(dialect, u32::MAX);
                match overflow(&frame.msg) {
                    Some(err) => prop_assert_eq!(Frame::decode(&bytes, cfg), Err(err)),
                    None => {
                        prop_assert_eq!(Frame::decode(&bytes, cfg), Ok(frame));
                        // The frame fits an msize of exactly its size.
                        let tight = DecodeConfig::new(dialect, bytes.len() as u32);
                        prop_assert_eq!(Frame::decode(&bytes, tight), Ok(frame));
                    }
                }
                // Appending writes the same bytes after what was there.
                let mut v = vec![0xa5; 3];
                frame.encode_to(&mut v).expect("encode_to Vec");
                prop_assert_eq!(&v[3..], &bytes[..]);
                #[cfg(feature = "bytes")]
                {
                    let mut bm = bytes::BytesMut::new();
                    frame.encode_to(&mut bm).expect("encode_to");
                    prop_assert_eq!(&bm[..], &bytes[..]);
                }
            }
        }
    }

    #[test]
    fn encode_of_decode_is_identity(pool in pool()) {
        for ty in all_types() {
            for dialect in [Dialect::Linux, Dialect::Base] {
                let bytes = encode(&Frame::new(Tag(7), build(ty, dialect, &pool)));
                let cfg = DecodeConfig::new(dialect, u32::MAX);
                if let Ok(frame) = Frame::decode(&bytes, cfg) {
                    prop_assert_eq!(encode(&frame), bytes);
                }
            }
        }
    }

    /// Change one byte of a valid frame: if the result still decodes, it
    /// re-encodes to exactly the changed bytes (no two encodings mean the same).
    #[test]
    fn whatever_decodes_reencodes_to_the_same_bytes(
        pool in pool(),
        ty in proptest::sample::select(all_types()),
        at in any::<proptest::sample::Index>(),
        value in any::<u8>(),
        linux in any::<bool>(),
    ) {
        let dialect = if linux { Dialect::Linux } else { Dialect::Base };
        let mut bytes = encode(&Frame::new(Tag(7), build(ty, dialect, &pool)));
        let i = at.index(bytes.len());
        bytes[i] = value;
        if let Ok(frame) = Frame::decode(&bytes, DecodeConfig::new(dialect, u32::MAX)) {
            prop_assert_eq!(encode(&frame), bytes);
        }
    }

    /// Stats and directory entries round-trip on their own too.
    #[test]
    fn stats_and_dirents_round_trip(pool in pool()) {
        let mut d = Draw::new(&pool);
        let stat = d.stat();
        let mut out = vec![0u8; stat.encoded_len()];
        prop_assert_eq!(stat.encode(&mut out), Ok(out.len()));
        prop_assert_eq!(Stat::decode(&out), Ok((stat, &[][..])));

        let entries: Vec<DirEntry<'_>> = (0..pool.nwalk)
            .map(|_| DirEntry { qid: d.qid(), offset: d.u64(), ty: d.u8(), name: d.str() })
            .collect();
        let mut buf = vec![0u8; entries.iter().map(DirEntry::encoded_len).sum()];
        let mut w = DirEntryWriter::new(&mut buf);
        for e in &entries {
            prop_assert_eq!(w.push(e), Ok(true));
        }
        let packed = w.finish();
        let back: Vec<_> = DirEntries::new(packed).collect::<Result<_, _>>().expect("entries");
        prop_assert_eq!(back, entries);
    }
}

/// Walks of every length from 0 to 16, and strings at the 65535-byte limit.
#[test]
fn limits_round_trip() {
    let long = "é".repeat(32_767) + "x"; // 65535 bytes
    assert_eq!(long.len(), 65_535);
    let names: Vec<&str> = (0..=MAX_WALK_ELEMENTS).map(|_| long.as_str()).collect();
    for n in 0..=MAX_WALK_ELEMENTS {
        let frame = Frame::new(
            Tag(1),
            Twalk {
                fid: Fid(1),
                newfid: Fid(2),
                wnames: WalkNames::new(&names[..n]).expect("at most 16"),
            },
        );
        let bytes = encode(&frame);
        assert_eq!(bytes.len(), 7 + 4 + 4 + 2 + n * (2 + 65_535));
        let cfg = DecodeConfig::new(Dialect::Linux, u32::MAX);
        assert_eq!(Frame::decode(&bytes, cfg), Ok(frame));
    }
}
