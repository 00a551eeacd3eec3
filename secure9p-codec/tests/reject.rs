//! Hostile and broken input: each case names the exact `CodecError` the
//! codec must answer with. Nothing here may panic, and nothing may be read
//! outside the frame.

mod vectors;

use proptest::prelude::*;
use secure9p_codec::*;
use vectors::hex;

const LINUX: DecodeConfig = DecodeConfig::new(Dialect::Linux, u32::MAX);

fn decode(bytes: &[u8]) -> Result<Frame<'_>, CodecError> {
    Frame::decode(bytes, LINUX)
}

/// A frame of type `ty` and tag 1 around `body`, its size field correct.
fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((7 + body.len()) as u32).to_le_bytes().to_vec();
    out.push(ty);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// `len[2]` then the bytes: a 9P string, whatever its contents.
fn s(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn set_size(bytes: &mut [u8], size: u32) {
    bytes[..4].copy_from_slice(&size.to_le_bytes());
}

// ---- framing ----

#[test]
fn every_prefix_of_every_golden_vector_fails_cleanly() {
    for g in vectors::all() {
        let bytes = g.bytes();
        for cut in 0..bytes.len() {
            let prefix = &bytes[..cut];
            let want = if cut < HEADER_LEN {
                CodecError::ShortHeader { got: cut }
            } else {
                CodecError::SizeMismatch {
                    declared: bytes.len() as u32,
                    actual: cut,
                }
            };
            assert_eq!(
                Frame::decode(prefix, g.cfg()),
                Err(want),
                "{} cut at {cut}",
                g.name
            );

            // The same prefix with its size field made to agree: now the
            // body itself is short, and the field that runs out says so.
            if cut >= HEADER_LEN {
                let mut short = prefix.to_vec();
                set_size(&mut short, cut as u32);
                match Frame::decode(&short, g.cfg()) {
                    Err(CodecError::Truncated { need, left, .. }) => {
                        assert!(
                            need > left,
                            "{} cut at {cut}: need {need} left {left}",
                            g.name
                        )
                    }
                    other => panic!("{} cut at {cut}: {other:?}", g.name),
                }
            }
        }
    }
}

#[test]
fn size_field_must_match_the_buffer() {
    let mut bytes = hex("0b000000 78 0900 | 01000000"); // Tclunk
    set_size(&mut bytes, 12);
    assert_eq!(
        decode(&bytes),
        Err(CodecError::SizeMismatch {
            declared: 12,
            actual: 11
        })
    );
    set_size(&mut bytes, 10);
    assert_eq!(
        decode(&bytes),
        Err(CodecError::SizeMismatch {
            declared: 10,
            actual: 11
        })
    );
    // Two frames in one buffer are not one frame.
    let two = [hex("07000000 79 0900"), hex("07000000 79 0a00")].concat();
    assert_eq!(
        decode(&two),
        Err(CodecError::SizeMismatch {
            declared: 7,
            actual: 14
        })
    );
}

#[test]
fn size_over_msize_is_refused_from_the_header_alone() {
    // Only the 7 header bytes of a 1 MiB Twrite have arrived.
    let header = hex("00001000 76 0100");
    let cfg = DecodeConfig::new(Dialect::Linux, 8192);
    assert_eq!(
        Frame::decode(&header, cfg),
        Err(CodecError::TooLarge {
            size: 1 << 20,
            msize: 8192
        })
    );
    // One byte over msize, the whole frame present.
    let rread = frame(117, &cat(&[&4082u32.to_le_bytes(), &[0u8; 4082]]));
    assert_eq!(rread.len(), 4093);
    assert!(Frame::decode(&rread, DecodeConfig::new(Dialect::Linux, 4093)).is_ok());
    assert_eq!(
        Frame::decode(&rread, DecodeConfig::new(Dialect::Linux, 4092)),
        Err(CodecError::TooLarge {
            size: 4093,
            msize: 4092
        })
    );
    // The largest size field there is.
    assert_eq!(
        Frame::decode(&hex("ffffffff 76 0100"), cfg),
        Err(CodecError::TooLarge {
            size: u32::MAX,
            msize: 8192
        })
    );
}

#[test]
fn size_below_the_header_is_refused() {
    for size in 0..7u32 {
        let mut bytes = hex("07000000 79 0900");
        set_size(&mut bytes, size);
        assert_eq!(decode(&bytes), Err(CodecError::SizeBelowHeader(size)));
        assert_eq!(Header::peek(&bytes), Err(CodecError::SizeBelowHeader(size)));
    }
    for got in 0..7 {
        assert_eq!(
            Header::peek(&[7, 0, 0, 0, 121, 0][..got]),
            Err(CodecError::ShortHeader { got })
        );
    }
}

#[test]
fn unknown_type_bytes_are_refused() {
    let mut unknown = 0;
    for ty in 0..=u8::MAX {
        if MsgType::from_u8(ty).is_some() {
            continue;
        }
        unknown += 1;
        // With an empty body and with a plausible one: the type is checked
        // before the body is read.
        for body in [&[][..], &[1, 0, 0, 0][..]] {
            let bytes = frame(ty, body);
            for dialect in [Dialect::Linux, Dialect::Base] {
                assert_eq!(
                    Frame::decode(&bytes, DecodeConfig::new(dialect, 8192)),
                    Err(CodecError::UnknownType(ty)),
                    "type {ty}"
                );
            }
        }
    }
    // 39 messages of 9P2000.L (7-77) and 27 of 9P2000 (100-127) are known.
    assert_eq!(unknown, 256 - 39 - 27);
    // Tlerror and Terror are named by the protocol but never valid.
    assert_eq!(decode(&frame(6, &[])), Err(CodecError::UnknownType(6)));
    assert_eq!(
        decode(&frame(106, &s(b"oops"))),
        Err(CodecError::UnknownType(106))
    );
}

#[test]
fn trailing_bytes_after_every_golden_body_are_refused() {
    for g in vectors::all() {
        for extra in [1usize, 2, 13] {
            let mut bytes = g.bytes();
            bytes.resize(bytes.len() + extra, 0);
            let size = bytes.len() as u32;
            set_size(&mut bytes, size);
            assert_eq!(
                Frame::decode(&bytes, g.cfg()),
                Err(CodecError::TrailingBytes(extra)),
                "{} + {extra}",
                g.name
            );
        }
    }
}

// ---- strings ----

#[test]
fn strings_must_be_utf8() {
    // A lone continuation byte, an overlong NUL, a UTF-16 surrogate, a cut
    // sequence, and a code point past U+10FFFF.
    for bad in [
        &[0x80][..],
        &[0xc0, 0x80],
        &[0xed, 0xa0, 0x80],
        &[b'a', 0xe2, 0x82],
        &[0xf4, 0x90, 0x80, 0x80],
        &[0xff],
    ] {
        let twalk = frame(
            110,
            &cat(&[&[0; 4], &[1, 0, 0, 0], &1u16.to_le_bytes(), &s(bad)]),
        );
        assert_eq!(
            decode(&twalk),
            Err(CodecError::InvalidUtf8("Twalk.wnames")),
            "{bad:02x?}"
        );
        let tversion = frame(100, &cat(&[&8192u32.to_le_bytes(), &s(bad)]));
        assert_eq!(
            decode(&tversion),
            Err(CodecError::InvalidUtf8("Tversion.version"))
        );
        let tlock = frame(
            52,
            &cat(&[&[0; 4], &[0], &[0; 4], &[0; 8], &[0; 8], &[0; 4], &s(bad)]),
        );
        assert_eq!(
            decode(&tlock),
            Err(CodecError::InvalidUtf8("Tlock.client_id"))
        );
    }
}

#[test]
fn strings_must_not_hold_nul() {
    for bad in [&b"\0"[..], b"root\0", b"ro\0ot", b"\0\0"] {
        let tattach = frame(
            104,
            &cat(&[&[0; 4], &[0xff; 4], &s(bad), &s(b""), &[0xff; 4]]),
        );
        assert_eq!(
            decode(&tattach),
            Err(CodecError::NulInString("Tattach.uname"))
        );
        let rerror = frame(107, &s(bad));
        assert_eq!(
            decode(&rerror),
            Err(CodecError::NulInString("Rerror.ename"))
        );
    }
    // In a 9P2000 stat and in a directory entry too.
    let stat = vectors::all()
        .into_iter()
        .find(|g| g.name == "Rstat")
        .expect("Rstat vector");
    let mut bytes = stat.bytes();
    // The body ends gid[s]="glenda" muid[s]="": gid's text starts 8 bytes from the end.
    let at = bytes.len() - 8;
    bytes[at] = 0;
    assert_eq!(
        Frame::decode(&bytes, stat.cfg()),
        Err(CodecError::NulInString("stat.gid"))
    );
    let mut dirent = hex(vectors::DIRENT_DOT);
    *dirent.last_mut().expect("name byte") = 0;
    assert_eq!(
        DirEntries::new(&dirent).next(),
        Some(Err(CodecError::NulInString("dirent.name")))
    );
}

#[test]
fn a_string_of_65536_bytes_cannot_be_encoded() {
    let long = "x".repeat(65_536);
    let msg = Frame::new(Tag(1), Rerror { ename: &long });
    let mut out = vec![0u8; msg.encoded_len()];
    assert_eq!(
        msg.encode(&mut out),
        Err(CodecError::FieldTooLong {
            field: "Rerror.ename",
            len: 65_536
        })
    );
    let mut names = [0u8; 64];
    let entry = DirEntry {
        qid: Qid::default(),
        offset: 0,
        ty: 0,
        name: &long,
    };
    assert_eq!(
        DirEntryWriter::new(&mut names).push(&entry),
        Err(CodecError::FieldTooLong {
            field: "dirent.name",
            len: 65_536
        })
    );
    // Appending refuses it too, and leaves the buffer as it was.
    let mut v = vec![1, 2, 3];
    assert_eq!(
        msg.encode_to(&mut v),
        Err(CodecError::FieldTooLong {
            field: "Rerror.ename",
            len: 65_536
        })
    );
    assert_eq!(v, [1, 2, 3]);
    // 65535 bytes is the limit, and fits.
    let max = &long[..65_535];
    let msg = Frame::new(Tag(1), Rerror { ename: max });
    let mut out = vec![0u8; msg.encoded_len()];
    let n = msg.encode(&mut out).expect("65535-byte string");
    assert_eq!(decode(&out[..n]), Ok(msg));
}

// ---- walks ----

#[test]
fn a_walk_of_17_names_is_refused() {
    let mut body = cat(&[&[0; 4], &[1, 0, 0, 0], &17u16.to_le_bytes()]);
    for _ in 0..17 {
        body.extend_from_slice(&s(b"a"));
    }
    assert_eq!(
        decode(&frame(110, &body)),
        Err(CodecError::TooManyWalkElements(17))
    );
    // The count is refused before any name is read.
    let huge = frame(
        110,
        &cat(&[&[0; 4], &[1, 0, 0, 0], &u16::MAX.to_le_bytes()]),
    );
    assert_eq!(decode(&huge), Err(CodecError::TooManyWalkElements(65_535)));
    // 16 is fine.
    let mut body = cat(&[&[0; 4], &[1, 0, 0, 0], &16u16.to_le_bytes()]);
    for _ in 0..16 {
        body.extend_from_slice(&s(b"a"));
    }
    assert!(decode(&frame(110, &body)).is_ok());

    let names = ["a"; 17];
    assert_eq!(
        WalkNames::new(&names).map(|w| w.len()),
        Err(CodecError::TooManyWalkElements(17))
    );
    assert_eq!(WalkNames::new(&names[..16]).map(|w| w.len()), Ok(16));
}

#[test]
fn an_rwalk_of_17_qids_is_refused() {
    let mut body = 17u16.to_le_bytes().to_vec();
    body.extend_from_slice(&[0; 13 * 17]);
    assert_eq!(
        decode(&frame(111, &body)),
        Err(CodecError::TooManyWalkElements(17))
    );
    assert_eq!(
        WalkQids::new(&[Qid::default(); 17]).map(|q| q.len()),
        Err(CodecError::TooManyWalkElements(17))
    );
    let mut body = 16u16.to_le_bytes().to_vec();
    body.extend_from_slice(&[0; 13 * 16]);
    assert!(decode(&frame(111, &body)).is_ok());
}

// ---- counts and offsets ----

#[test]
fn offset_plus_count_must_not_overflow() {
    let tread = |offset: u64, count: u32| {
        frame(
            116,
            &cat(&[&[1, 0, 0, 0], &offset.to_le_bytes(), &count.to_le_bytes()]),
        )
    };
    let treaddir = |offset: u64, count: u32| {
        frame(
            40,
            &cat(&[&[1, 0, 0, 0], &offset.to_le_bytes(), &count.to_le_bytes()]),
        )
    };
    let twrite = |offset: u64, data: &[u8]| {
        frame(
            118,
            &cat(&[
                &[1, 0, 0, 0],
                &offset.to_le_bytes(),
                &(data.len() as u32).to_le_bytes(),
                data,
            ]),
        )
    };
    for (offset, count) in [
        (u64::MAX, 1u32),
        (u64::MAX - 1, 2),
        (u64::MAX - u64::from(u32::MAX) + 1, u32::MAX),
    ] {
        let want = Err(CodecError::OffsetOverflow { offset, count });
        assert_eq!(decode(&tread(offset, count)).map(|_| ()), want);
        assert_eq!(decode(&treaddir(offset, count)).map(|_| ()), want);
        if count <= 2 {
            let data = vec![0u8; count as usize];
            assert_eq!(decode(&twrite(offset, &data)).map(|_| ()), want);
        }
    }
    // Right up to the last byte is fine.
    assert!(decode(&tread(u64::MAX, 0)).is_ok());
    assert!(decode(&tread(u64::MAX - 1, 1)).is_ok());
    assert!(decode(&treaddir(u64::MAX - u64::from(u32::MAX), u32::MAX)).is_ok());
    assert!(decode(&twrite(u64::MAX - 3, b"abc")).is_ok());
    assert!(decode(&twrite(u64::MAX, b"")).is_ok());
}

#[test]
fn a_count_beyond_the_frame_is_refused() {
    let twrite = frame(
        118,
        &cat(&[&[1, 0, 0, 0], &[0; 8], &100u32.to_le_bytes(), b"abc"]),
    );
    assert_eq!(
        decode(&twrite),
        Err(CodecError::Truncated {
            field: "Twrite.data",
            need: 100,
            left: 3
        })
    );
    let rread = frame(117, &cat(&[&u32::MAX.to_le_bytes(), b"abc"]));
    assert_eq!(
        decode(&rread),
        Err(CodecError::Truncated {
            field: "Rread.data",
            need: u32::MAX as usize,
            left: 3
        })
    );
    let rreaddir = frame(41, &cat(&[&26u32.to_le_bytes(), &hex(vectors::DIRENT_DOT)]));
    assert_eq!(
        decode(&rreaddir),
        Err(CodecError::Truncated {
            field: "Rreaddir.data",
            need: 26,
            left: 25
        })
    );
    // A string length past the end.
    let rerror = frame(107, &cat(&[&10u16.to_le_bytes(), b"short"]));
    assert_eq!(
        decode(&rerror),
        Err(CodecError::Truncated {
            field: "Rerror.ename",
            need: 10,
            left: 5
        })
    );
}

#[test]
fn stat_sizes_must_agree() {
    let g = vectors::all()
        .into_iter()
        .find(|g| g.name == "Rstat")
        .expect("Rstat vector");
    let good = g.bytes();
    // Rstat: size[4] type tag | n[2]=66 size[2]=64 <64 bytes>
    let stat = &good[7 + 4..];

    // The stat claims one byte more than its fields use (and has it).
    let bytes = frame(
        125,
        &cat(&[&67u16.to_le_bytes(), &65u16.to_le_bytes(), stat, &[0]]),
    );
    assert_eq!(
        Frame::decode(&bytes, g.cfg()),
        Err(CodecError::StatSize {
            declared: 65,
            actual: 64
        })
    );
    // The stat claims one byte fewer: its last string runs out.
    let bytes = frame(
        125,
        &cat(&[&65u16.to_le_bytes(), &63u16.to_le_bytes(), &stat[..63]]),
    );
    assert_eq!(
        Frame::decode(&bytes, g.cfg()),
        Err(CodecError::Truncated {
            field: "stat.muid",
            need: 2,
            left: 1
        })
    );
    // n[2] says more than the stat's own size covers.
    let bytes = frame(
        125,
        &cat(&[&67u16.to_le_bytes(), &64u16.to_le_bytes(), stat, &[0]]),
    );
    assert_eq!(
        Frame::decode(&bytes, g.cfg()),
        Err(CodecError::TrailingBytes(1))
    );
    // A stat too small for its fixed part.
    assert_eq!(
        Stat::decode(&[4, 0, 1, 2, 3, 4]).map(|(s, _)| s.length),
        Err(CodecError::Truncated {
            field: "stat",
            need: 39,
            left: 4
        })
    );
}

#[test]
fn broken_directory_payloads_end_iteration_with_an_error() {
    let dot = hex(vectors::DIRENT_DOT);
    for cut in 1..dot.len() {
        let two = cat(&[&dot, &dot[..cut]]);
        let got: Vec<_> = DirEntries::new(&two).collect();
        assert_eq!(got.len(), 2, "cut {cut}");
        assert!(got[0].is_ok());
        assert!(
            matches!(got[1], Err(CodecError::Truncated { .. })),
            "cut {cut}: {:?}",
            got[1]
        );
    }
    let stat = &vectors::all()
        .into_iter()
        .find(|g| g.name == "Rstat")
        .expect("Rstat vector")
        .bytes()[7 + 2..];
    for cut in 1..stat.len() {
        let got: Vec<_> = Stats::new(&stat[..cut]).collect();
        assert!(
            matches!(got[..], [Err(CodecError::Truncated { .. })]),
            "cut {cut}: {got:?}"
        );
    }
}

// ---- encoding ----

#[test]
fn encoding_into_a_small_buffer_fails_and_writes_nothing() {
    for g in vectors::all() {
        let len = g.bytes().len();
        for have in [0, 1, HEADER_LEN, len - 1] {
            if have >= len {
                continue;
            }
            let mut out = vec![0xa5u8; have];
            assert_eq!(
                g.frame.encode(&mut out),
                Err(CodecError::BufferTooSmall { need: len, have }),
                "{}",
                g.name
            );
            assert!(
                out.iter().all(|&b| b == 0xa5),
                "{}: wrote on failure",
                g.name
            );
        }
    }
    let g = vectors::all()
        .into_iter()
        .find(|g| g.name == "Rstat")
        .expect("Rstat vector");
    let Msg::Rstat(r) = g.frame.msg else {
        panic!("not an Rstat")
    };
    let mut out = [0u8; 65];
    assert_eq!(
        r.stat.get().encode(&mut out),
        Err(CodecError::BufferTooSmall { need: 66, have: 65 })
    );
}

#[test]
fn vectored_headers_refuse_payloads_that_do_not_fit() {
    // The payload's count[4] cannot say it.
    let over = u32::MAX as usize + 1;
    assert_eq!(
        rread_header(Tag(1), over),
        Err(CodecError::FieldTooLong {
            field: "Rread.data",
            len: over
        })
    );
    assert_eq!(
        twrite_header(Tag(1), Fid(1), 0, over),
        Err(CodecError::FieldTooLong {
            field: "Twrite.data",
            len: over
        })
    );
    // The count fits but the frame's size[4] cannot hold header + payload.
    let big = u32::MAX as usize - RREAD_HEADER_LEN + 1;
    assert_eq!(
        rread_header(Tag(1), big),
        Err(CodecError::FieldTooLong {
            field: "frame",
            len: big
        })
    );
    assert!(rread_header(Tag(1), big - 1).is_ok());
}

// ---- garbage ----

fn configs() -> impl Strategy<Value = DecodeConfig> {
    (
        prop_oneof![Just(Dialect::Linux), Just(Dialect::Base)],
        prop_oneof![
            Just(0u32),
            Just(7),
            Just(4096),
            Just(8192),
            Just(u32::MAX),
            any::<u32>()
        ],
    )
        .prop_map(|(d, m)| DecodeConfig::new(d, m))
}

/// A frame whose header is right (so the body gets read) and whose body is noise.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    let known: Vec<u8> = (0..=u8::MAX)
        .filter(|&t| MsgType::from_u8(t).is_some())
        .collect();
    (
        proptest::sample::select(known),
        proptest::collection::vec(any::<u8>(), 0..256),
    )
        .prop_map(|(ty, body)| frame(ty, &body))
}

/// Decodes, then checks what a successful decode promises.
fn decode_checked(bytes: &[u8], cfg: DecodeConfig) {
    let _ = Header::peek(bytes);
    if let Ok(f) = Frame::decode(bytes, cfg) {
        assert_eq!(f.encoded_len(), bytes.len());
        assert!(bytes.len() as u64 <= u64::from(cfg.msize));
        let mut out = vec![0u8; bytes.len()];
        assert_eq!(f.encode(&mut out), Ok(bytes.len()));
        assert_eq!(out, bytes);
    }
    for e in DirEntries::new(bytes) {
        let _ = e;
    }
    for s in Stats::new(bytes) {
        let _ = s;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), cfg in configs()) {
        decode_checked(&bytes, cfg);
    }

    #[test]
    fn random_bodies_never_panic(bytes in framed_garbage(), cfg in configs()) {
        decode_checked(&bytes, cfg);
    }

    #[test]
    fn damaged_golden_vectors_never_panic(
        pick in any::<proptest::sample::Index>(),
        at in any::<proptest::sample::Index>(),
        value in any::<u8>(),
        cfg in configs(),
    ) {
        let table = vectors::all();
        let mut bytes = table[pick.index(table.len())].bytes();
        let i = at.index(bytes.len());
        bytes[i] = value;
        decode_checked(&bytes, cfg);
    }
}
