//! Decoding borrows and encoding can leave payloads where they are:
//! payloads and strings of a decoded frame point into the input buffer, the
//! vectored `Rread`/`Twrite` headers plus the caller's payload are exactly
//! the frame `Frame::encode` writes, and directory entries are only ever
//! written whole.

use proptest::prelude::*;
use secure9p_codec::*;

/// Whether `part` lies inside `whole` (by address, not by value).
fn points_into(part: &[u8], whole: &[u8]) -> bool {
    let w = whole.as_ptr_range();
    let p = part.as_ptr_range();
    w.start <= p.start && p.end <= w.end
}

const SIZES: [usize; 6] = [0, 1, 4096, 65_536, 1 << 20, (1 << 20) + 13];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = vec![0u8; frame.encoded_len()];
    let n = frame.encode(&mut out).expect("encode");
    out.truncate(n);
    out
}

#[test]
fn decoded_twrite_and_rread_payloads_point_into_the_frame() {
    let cfg = DecodeConfig::new(Dialect::Linux, u32::MAX);
    for len in SIZES {
        let data = payload(len);

        let bytes = encode(&Frame::new(
            Tag(1),
            Twrite {
                fid: Fid(3),
                offset: 99,
                data: &data,
            },
        ));
        let Msg::Twrite(w) = Frame::decode(&bytes, cfg).expect("Twrite").msg else {
            panic!("not a Twrite")
        };
        assert!(
            points_into(w.data, &bytes),
            "Twrite payload of {len} copied"
        );
        assert_eq!(w.data.as_ptr(), bytes[TWRITE_HEADER_LEN..].as_ptr());
        assert_eq!(w.data, &data[..]);

        let bytes = encode(&Frame::new(Tag(1), Rread { data: &data }));
        let Msg::Rread(r) = Frame::decode(&bytes, cfg).expect("Rread").msg else {
            panic!("not an Rread")
        };
        assert!(points_into(r.data, &bytes), "Rread payload of {len} copied");
        assert_eq!(r.data.as_ptr(), bytes[RREAD_HEADER_LEN..].as_ptr());
        assert_eq!(r.data, &data[..]);
    }
}

/// `Rgetattr`, `Tsetattr` and `Rstatfs` decode to references into the
/// frame: their bodies are read in place, not copied.
#[test]
fn fixed_layouts_are_read_in_place() {
    let cfg = DecodeConfig::new(Dialect::Linux, u32::MAX);
    let attr = Rgetattr::new()
        .with_valid(GetattrMask::BASIC)
        .with_size(6)
        .with_mode(0o100_644);
    let set = Tsetattr::new()
        .with_fid(Fid(3))
        .with_valid(SetattrValid::SIZE)
        .with_size(9);
    let statfs = Rstatfs::new().with_bsize(4096).with_namelen(255);
    for msg in [
        Msg::Rgetattr(&attr),
        Msg::Tsetattr(&set),
        Msg::Rstatfs(&statfs),
    ] {
        let bytes = encode(&Frame::new(Tag(1), msg));
        let back = Frame::decode(&bytes, cfg).expect("decode").msg;
        // Only addresses are compared; nothing is read through them.
        let at: *const u8 = match back {
            Msg::Rgetattr(a) => core::ptr::from_ref(a).cast(),
            Msg::Tsetattr(s) => core::ptr::from_ref(s).cast(),
            Msg::Rstatfs(s) => core::ptr::from_ref(s).cast(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(at, bytes[HEADER_LEN..].as_ptr(), "{msg:?} copied");
        assert_eq!(back, msg);
    }
}

/// A decoded frame is returned by value everywhere: the wide messages are
/// held by reference so that it stays within 96 bytes.
#[test]
fn a_frame_is_small() {
    let size = core::mem::size_of::<Frame<'_>>();
    assert!(size <= 96, "Frame is {size} bytes");
    #[cfg(target_pointer_width = "64")]
    assert_eq!(size, 64, "Frame's size changed");
}

#[test]
fn decoded_strings_point_into_the_frame() {
    let cfg = DecodeConfig::new(Dialect::Linux, u32::MAX);
    let bytes = encode(&Frame::new(
        Tag(1),
        Twalk {
            fid: Fid(0),
            newfid: Fid(1),
            wnames: WalkNames::new(&["proc", "boot", "ünïcödé"]).expect("3 names"),
        },
    ));
    let Msg::Twalk(w) = Frame::decode(&bytes, cfg).expect("Twalk").msg else {
        panic!("not a Twalk")
    };
    assert!(w.wnames.iter().eq(["proc", "boot", "ünïcödé"]));
    for name in w.wnames.iter() {
        assert!(points_into(name.as_bytes(), &bytes), "{name} copied");
    }

    let bytes = encode(&Frame::new(
        Tag(1),
        Tattach {
            fid: Fid(0),
            afid: Fid::NOFID,
            uname: "root",
            aname: "/srv/ninep-demo",
            n_uname: Some(0),
        },
    ));
    let Msg::Tattach(a) = Frame::decode(&bytes, cfg).expect("Tattach").msg else {
        panic!("not a Tattach")
    };
    assert!(points_into(a.uname.as_bytes(), &bytes));
    assert!(points_into(a.aname.as_bytes(), &bytes));

    // Inside a 9P2000 stat, and inside a directory entry of an Rreaddir.
    let stat = Stat {
        ty: 0,
        dev: 0,
        qid: Qid::default(),
        mode: 0o644,
        atime: 0,
        mtime: 0,
        length: 0,
        name: "file",
        uid: "glenda",
        gid: "glenda",
        muid: "glenda",
    };
    let bytes = encode(&Frame::new(
        Tag(1),
        Rstat {
            stat: StatRef::new(&stat),
        },
    ));
    let base = DecodeConfig::new(Dialect::Base, u32::MAX);
    let Msg::Rstat(r) = Frame::decode(&bytes, base).expect("Rstat").msg else {
        panic!("not an Rstat")
    };
    let s = r.stat.get();
    assert_eq!(s, stat);
    for s in [s.name, s.uid, s.gid, s.muid] {
        assert!(points_into(s.as_bytes(), &bytes), "{s} copied");
    }

    let mut buf = [0u8; 64];
    let mut dw = DirEntryWriter::new(&mut buf);
    let entry = DirEntry {
        qid: Qid::default(),
        offset: 1,
        ty: 8,
        name: "hello",
    };
    assert_eq!(dw.push(&entry), Ok(true));
    let packed = dw.finish();
    let bytes = encode(&Frame::new(Tag(1), Rreaddir { data: packed }));
    let Msg::Rreaddir(rd) = Frame::decode(&bytes, cfg).expect("Rreaddir").msg else {
        panic!("not an Rreaddir")
    };
    assert!(points_into(rd.data, &bytes));
    let e = DirEntries::new(rd.data)
        .next()
        .expect("one entry")
        .expect("valid entry");
    assert_eq!(e, entry);
    assert!(points_into(e.name.as_bytes(), &bytes));
}

#[test]
fn vectored_headers_plus_payload_equal_the_encoded_frame() {
    let cfg = DecodeConfig::new(Dialect::Linux, u32::MAX);
    for len in SIZES {
        let data = payload(len);

        let head = rread_header(Tag(0x1234), len).expect("Rread header");
        assert_eq!(head.len(), RREAD_HEADER_LEN);
        let vectored = [&head[..], &data].concat();
        let whole = encode(&Frame::new(Tag(0x1234), Rread { data: &data }));
        assert_eq!(vectored, whole, "Rread of {len}");
        assert_eq!(
            Header::peek(&head).map(|h| h.size as usize),
            Ok(whole.len())
        );
        assert_eq!(
            Frame::decode(&vectored, cfg).map(|f| f.msg),
            Ok(Msg::Rread(Rread { data: &data }))
        );

        let head = twrite_header(Tag(9), Fid(7), 1 << 40, len).expect("Twrite header");
        assert_eq!(head.len(), TWRITE_HEADER_LEN);
        let vectored = [&head[..], &data].concat();
        let twrite = Twrite {
            fid: Fid(7),
            offset: 1 << 40,
            data: &data,
        };
        let whole = encode(&Frame::new(Tag(9), twrite));
        assert_eq!(vectored, whole, "Twrite of {len}");
        assert_eq!(
            Frame::decode(&vectored, cfg).map(|f| f.msg),
            Ok(Msg::Twrite(twrite))
        );
    }
}

/// The header sizes agree with the protocol's I/O allowance: an Rread of
/// `msize - 11` payload bytes fills msize exactly (the Linux client refuses
/// more), and Plan 9's IOHDRSZ of 24 covers both headers.
#[test]
fn io_header_sizes() {
    assert_eq!(RREAD_HEADER_LEN, 11);
    assert_eq!(TWRITE_HEADER_LEN, 23);
    assert!(TWRITE_HEADER_LEN as u32 <= IOHDRSZ && RREAD_HEADER_LEN as u32 <= IOHDRSZ);
    let msize = 8192u32;
    let data = payload(msize as usize - RREAD_HEADER_LEN);
    let bytes = encode(&Frame::new(Tag(1), Rread { data: &data }));
    assert_eq!(bytes.len(), msize as usize);
    let cfg = DecodeConfig::new(Dialect::Linux, msize);
    assert!(Frame::decode(&bytes, cfg).is_ok());
}

fn entry_strategy() -> impl Strategy<Value = (u8, u32, u64, u8, String)> {
    (
        any::<u8>(),
        any::<u32>(),
        any::<u64>(),
        any::<u8>(),
        "[a-zA-Z0-9._é-]{0,40}",
    )
}

proptest! {
    /// Fill a buffer of arbitrary size: every push either writes one whole
    /// entry or writes nothing, nothing beyond the entries is touched, and
    /// `DirEntries` reads back exactly the entries accepted.
    #[test]
    fn dir_entry_writer_never_writes_a_partial_entry(
        cap in 0usize..600,
        raw in proptest::collection::vec(entry_strategy(), 0..40),
    ) {
        let entries: Vec<DirEntry<'_>> = raw
            .iter()
            .map(|(qty, version, path, ty, name)| DirEntry {
                qid: Qid { ty: QidType::from_bits_retain(*qty), version: *version, path: *path },
                offset: *path ^ 0x5555,
                ty: *ty,
                name,
            })
            .collect();
        let mut buf = vec![0xeeu8; cap + 32];
        let mut accepted = Vec::new();
        {
            let mut w = DirEntryWriter::new(&mut buf[..cap]);
            for e in &entries {
                let before = w.len();
                let fits = cap - before >= e.encoded_len();
                prop_assert_eq!(w.push(e), Ok(fits));
                if fits {
                    prop_assert_eq!(w.len(), before + e.encoded_len());
                    accepted.push(*e);
                } else {
                    prop_assert_eq!(w.len(), before);
                }
            }
            prop_assert_eq!(w.is_empty(), accepted.is_empty());
            let packed = w.finish();
            let back: Vec<_> = DirEntries::new(packed).collect::<Result<_, _>>().expect("whole entries");
            prop_assert_eq!(&back, &accepted);
        }
        let used: usize = accepted.iter().map(DirEntry::encoded_len).sum();
        prop_assert!(buf[used..].iter().all(|&b| b == 0xee), "bytes past the last whole entry were written");
    }
}
