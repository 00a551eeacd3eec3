//! The codec beside the other Rust 9P codecs, on identical frames: rs9p
//! 0.13, jetstream_9p 16, ninep 0.6 and crosvm's p9 0.3.
//!
//! Every frame is produced once by our encoder. Before anything is timed,
//! each peer decodes those bytes and encodes its own value of the same
//! message, and both are checked: the peer's encoding must equal ours byte
//! for byte, and the peer's decoded value must encode back to the same
//! bytes (so a decoder that skipped a field would fail here, not look fast).
//! The exceptions, said where they are: p9 keeps its message types private
//! (its only public decoder is `p9::fuzzing::tframe_decode`, which returns
//! nothing), so it has decode-only, unchecked entries for T-messages; ninep
//! speaks 9P2000, which has no `Rgetattr`.
//!
//! Decode means "bytes of one whole frame (size prefix included) to a
//! value"; our decoder borrows names and payloads, the peers copy them.
//! Encode means "value to bytes in a reused buffer": ours with
//! `Frame::encode_to` into a `BytesMut` (what the transport's writers do)
//! and into a `Vec<u8>` (`encode-vec`, the peers' buffer), rs9p and jetstream_9p through `std::io::Write` into a cleared `Vec`,
//! ninep into a slice of the size it asks for.
//!
//! The peers are optional dependencies behind the `peers` feature (jetstream_9p
//! alone brings some 200 crates, too many for every CI build):
//! `cargo bench -p secure9p-benches --features peers --bench peers`.

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use secure9p_codec::{Fid, Frame, Msg, Rread, Tag, Twalk, Twrite, WalkNames};
use std::hint::black_box;

mod fixtures;

use fixtures::{MSIZE, RGETATTR, cfg};
use std::io::Cursor;

const NAMES: [&str; 3] = ["usr", "share", "doc"];
const PAYLOAD: usize = 4 << 10;

fn ours(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame.encode_to(&mut out).expect("encode_to");
    out.to_vec()
}

/// rs9p: `Msg` through `serialize::{read_msg, write_msg}`, which handle
/// the frame without its size prefix (rs9p's server adds it), so the size
/// is written here as its framing would.
mod rs9p_peer {
    use super::*;
    use rs9p::{Data, FCall, GetAttrMask, Msg, QId, QIdType, Stat, Time};

    pub fn twalk() -> Msg {
        Msg {
            tag: 1,
            body: FCall::TWalk {
                fid: 0,
                newfid: 1,
                wnames: NAMES.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    pub fn rgetattr() -> Msg {
        let a = RGETATTR;
        let t = |sec, nsec| Time { sec, nsec };
        Msg {
            tag: 1,
            body: FCall::RGetAttr {
                valid: GetAttrMask::from_bits_truncate(a.valid().bits()),
                qid: QId {
                    typ: QIdType::from_bits_truncate(a.qid().ty.bits()),
                    version: a.qid().version,
                    path: a.qid().path,
                },
                stat: Stat {
                    mode: a.mode(),
                    uid: a.uid(),
                    gid: a.gid(),
                    nlink: a.nlink(),
                    rdev: a.rdev(),
                    size: a.size(),
                    blksize: a.blksize(),
                    blocks: a.blocks(),
                    atime: t(a.atime_sec(), a.atime_nsec()),
                    mtime: t(a.mtime_sec(), a.mtime_nsec()),
                    ctime: t(a.ctime_sec(), a.ctime_nsec()),
                },
            },
        }
    }

    pub fn twrite(data: &[u8]) -> Msg {
        Msg {
            tag: 1,
            body: FCall::TWrite {
                fid: 1,
                offset: 0,
                data: Data(data.to_vec()),
            },
        }
    }

    pub fn rread(data: &[u8]) -> Msg {
        Msg {
            tag: 1,
            body: FCall::RRead {
                data: Data(data.to_vec()),
            },
        }
    }

    pub fn decode(bytes: &[u8]) -> Msg {
        rs9p::serialize::read_msg(&mut Cursor::new(&bytes[4..])).expect("rs9p decode")
    }

    /// Size prefix, then the message: the whole frame into `out`.
    pub fn encode(msg: &Msg, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&[0; 4]);
        rs9p::serialize::write_msg(out, msg).expect("rs9p encode");
        let size = out.len() as u32;
        out[..4].copy_from_slice(&size.to_le_bytes());
    }
}

/// jetstream_9p: `Tframe`/`Rframe` through jetstream_wireformat's
/// `WireFormat` (size prefix included).
mod jetstream_peer {
    use super::*;
    use jetstream_9p::{Qid, Rframe, Rgetattr, Rmessage, Rread, Tframe, Tmessage, Twalk, Twrite};
    use jetstream_wireformat::{Data, WireFormat};

    pub fn twalk() -> Tframe {
        Tframe {
            tag: 1,
            msg: Ok(Tmessage::Walk(Twalk {
                fid: 0,
                newfid: 1,
                wnames: NAMES.iter().map(|s| s.to_string()).collect(),
            })),
        }
    }

    pub fn rgetattr() -> Rframe {
        let a = RGETATTR;
        Rframe {
            tag: 1,
            msg: Rmessage::GetAttr(Rgetattr {
                valid: a.valid().bits(),
                qid: Qid {
                    ty: a.qid().ty.bits(),
                    version: a.qid().version,
                    path: a.qid().path,
                },
                mode: a.mode(),
                uid: a.uid(),
                gid: a.gid(),
                nlink: a.nlink(),
                rdev: a.rdev(),
                size: a.size(),
                blksize: a.blksize(),
                blocks: a.blocks(),
                atime_sec: a.atime_sec(),
                atime_nsec: a.atime_nsec(),
                mtime_sec: a.mtime_sec(),
                mtime_nsec: a.mtime_nsec(),
                ctime_sec: a.ctime_sec(),
                ctime_nsec: a.ctime_nsec(),
                btime_sec: a.btime_sec(),
                btime_nsec: a.btime_nsec(),
                r#gen: a.gen_(),
                data_version: a.data_version(),
            }),
        }
    }

    pub fn twrite(data: &[u8]) -> Tframe {
        Tframe {
            tag: 1,
            msg: Ok(Tmessage::Write(Twrite {
                fid: 1,
                offset: 0,
                data: Data(data.to_vec()),
            })),
        }
    }

    pub fn rread(data: &[u8]) -> Rframe {
        Rframe {
            tag: 1,
            msg: Rmessage::Read(Rread {
                data: Data(data.to_vec()),
            }),
        }
    }

    pub fn decode<T: WireFormat>(bytes: &[u8]) -> T {
        T::decode(&mut Cursor::new(bytes)).expect("jetstream_9p decode")
    }

    pub fn encode<T: WireFormat>(value: &T, out: &mut Vec<u8>) {
        out.clear();
        value.encode(out).expect("jetstream_9p encode");
    }

    /// A decoded `Tframe` holds an `io::Result`: unwrap it back into a frame
    /// that encodes.
    pub fn ok(frame: Tframe) -> Tframe {
        let msg = frame.msg.expect("jetstream_9p message");
        Tframe {
            tag: frame.tag,
            msg: Ok(msg),
        }
    }
}

/// ninep (9P2000): `Tmessage`/`Rmessage` through its sans-IO parser fed by
/// a `Read`, and `NineP::write_bytes` into a slice of `n_bytes()`.
mod ninep_peer {
    use super::*;
    use ninep::sansio::protocol::{NineP, Rdata, Rmessage, SharedBuf, Tdata, Tmessage};
    use ninep::sync::SyncNineP;

    pub fn twalk() -> Tmessage {
        Tmessage {
            tag: 1,
            content: Tdata::Walk {
                fid: 0,
                new_fid: 1,
                wnames: NAMES.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    pub fn twrite(data: &[u8]) -> Tmessage {
        Tmessage {
            tag: 1,
            content: Tdata::Write {
                fid: 1,
                offset: 0,
                data: data.to_vec().into(),
            },
        }
    }

    pub fn rread(data: &[u8]) -> Rmessage {
        Rmessage {
            tag: 1,
            content: Rdata::Read {
                data: data.to_vec().into(),
            },
        }
    }

    pub fn decode<T: NineP>(bytes: &[u8], buf: &SharedBuf) -> T {
        T::read_from(MSIZE, buf, &mut &bytes[..]).expect("ninep decode")
    }

    pub fn encode<T: NineP>(value: &T, out: &mut Vec<u8>) {
        out.resize(value.n_bytes(), 0);
        value.write_bytes(out).expect("ninep encode");
    }
}

/// Checks a peer before it is timed: its own value encodes to exactly our
/// bytes, and what it decoded from our bytes encodes back to them too.
fn check(peer: &str, frame: &str, want: &[u8], own: &[u8], round_trip: &[u8]) {
    assert_eq!(own, want, "{peer} encodes {frame} as we do");
    assert_eq!(round_trip, want, "{peer} decoded every field of {frame}");
}

fn small_and_payload(c: &mut Criterion) {
    let data: Vec<u8> = (0..PAYLOAD).map(|i| i as u8).collect();
    let frames: [(&str, Frame<'_>); 4] = [
        (
            "Twalk-3-names",
            Frame::new(
                Tag(1),
                Twalk {
                    fid: Fid(0),
                    newfid: Fid(1),
                    wnames: WalkNames::new(&NAMES).expect("3 names"),
                },
            ),
        ),
        ("Rgetattr", Frame::new(Tag(1), &RGETATTR)),
        (
            "Twrite-4KiB",
            Frame::new(
                Tag(1),
                Twrite {
                    fid: Fid(1),
                    offset: 0,
                    data: &data,
                },
            ),
        ),
        ("Rread-4KiB", Frame::new(Tag(1), Rread { data: &data })),
    ];

    for (name, frame) in &frames {
        let bytes = ours(frame);
        // Ours first: it decodes its own bytes back to the same frame.
        let back = Frame::decode(&bytes, cfg()).expect("decode");
        assert_eq!(ours(&back), bytes, "secure9p decodes {name}");
        assert!(
            matches!(
                (&back.msg, *name),
                (Msg::Twalk(_), "Twalk-3-names")
                    | (Msg::Rgetattr(_), "Rgetattr")
                    | (Msg::Twrite(_), "Twrite-4KiB")
                    | (Msg::Rread(_), "Rread-4KiB")
            ),
            "{name} decodes to its own kind"
        );

        let mut g = c.benchmark_group(format!("peers/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        let mut out = Vec::with_capacity(bytes.len());

        g.bench_function(BenchmarkId::new("decode", "secure9p"), |b| {
            b.iter(|| Frame::decode(black_box(&bytes), cfg()).expect("decode"))
        });
        let mut ours_out = BytesMut::with_capacity(bytes.len());
        g.bench_function(BenchmarkId::new("encode", "secure9p"), |b| {
            b.iter(|| {
                ours_out.clear();
                black_box(frame)
                    .encode_to(black_box(&mut ours_out))
                    .expect("encode_to")
            })
        });
        // Into a `Vec<u8>`, the buffer every peer below encodes into.
        let mut ours_vec = Vec::with_capacity(bytes.len());
        g.bench_function(BenchmarkId::new("encode-vec", "secure9p"), |b| {
            b.iter(|| {
                ours_vec.clear();
                black_box(frame)
                    .encode_to(black_box(&mut ours_vec))
                    .expect("encode_to")
            })
        });

        // rs9p
        let msg = match *name {
            "Twalk-3-names" => rs9p_peer::twalk(),
            "Rgetattr" => rs9p_peer::rgetattr(),
            "Twrite-4KiB" => rs9p_peer::twrite(&data),
            _ => rs9p_peer::rread(&data),
        };
        rs9p_peer::encode(&msg, &mut out);
        let own = out.clone();
        rs9p_peer::encode(&rs9p_peer::decode(&bytes), &mut out);
        check("rs9p", name, &bytes, &own, &out);
        g.bench_function(BenchmarkId::new("decode", "rs9p"), |b| {
            b.iter(|| rs9p_peer::decode(black_box(&bytes)))
        });
        g.bench_function(BenchmarkId::new("encode", "rs9p"), |b| {
            b.iter(|| rs9p_peer::encode(black_box(&msg), black_box(&mut out)))
        });

        // jetstream_9p: T-frames and R-frames are separate types.
        if name.starts_with('T') {
            let value = match *name {
                "Twalk-3-names" => jetstream_peer::twalk(),
                _ => jetstream_peer::twrite(&data),
            };
            jetstream_peer::encode(&value, &mut out);
            let own = out.clone();
            let back = jetstream_peer::ok(jetstream_peer::decode(&bytes));
            jetstream_peer::encode(&back, &mut out);
            check("jetstream_9p", name, &bytes, &own, &out);
            g.bench_function(BenchmarkId::new("decode", "jetstream_9p"), |b| {
                b.iter(|| jetstream_peer::decode::<jetstream_9p::Tframe>(black_box(&bytes)))
            });
            g.bench_function(BenchmarkId::new("encode", "jetstream_9p"), |b| {
                b.iter(|| jetstream_peer::encode(black_box(&value), black_box(&mut out)))
            });
        } else {
            let value = match *name {
                "Rgetattr" => jetstream_peer::rgetattr(),
                _ => jetstream_peer::rread(&data),
            };
            jetstream_peer::encode(&value, &mut out);
            let own = out.clone();
            let back: jetstream_9p::Rframe = jetstream_peer::decode(&bytes);
            jetstream_peer::encode(&back, &mut out);
            check("jetstream_9p", name, &bytes, &own, &out);
            g.bench_function(BenchmarkId::new("decode", "jetstream_9p"), |b| {
                b.iter(|| jetstream_peer::decode::<jetstream_9p::Rframe>(black_box(&bytes)))
            });
            g.bench_function(BenchmarkId::new("encode", "jetstream_9p"), |b| {
                b.iter(|| jetstream_peer::encode(black_box(&value), black_box(&mut out)))
            });
        }

        // ninep: 9P2000 has Twalk, Twrite and Rread with the same layout,
        // but no Rgetattr.
        let shared = ninep::sansio::protocol::SharedBuf::default();
        match *name {
            "Twalk-3-names" | "Twrite-4KiB" => {
                use ninep::sansio::protocol::Tmessage;
                let value = if *name == "Twalk-3-names" {
                    ninep_peer::twalk()
                } else {
                    ninep_peer::twrite(&data)
                };
                ninep_peer::encode(&value, &mut out);
                let own = out.clone();
                let back: Tmessage = ninep_peer::decode(&bytes, &shared);
                ninep_peer::encode(&back, &mut out);
                check("ninep", name, &bytes, &own, &out);
                g.bench_function(BenchmarkId::new("decode", "ninep"), |b| {
                    b.iter(|| ninep_peer::decode::<Tmessage>(black_box(&bytes), &shared))
                });
                g.bench_function(BenchmarkId::new("encode", "ninep"), |b| {
                    b.iter(|| ninep_peer::encode(black_box(&value), black_box(&mut out)))
                });
            }
            "Rread-4KiB" => {
                use ninep::sansio::protocol::Rmessage;
                let value = ninep_peer::rread(&data);
                ninep_peer::encode(&value, &mut out);
                let own = out.clone();
                let back: Rmessage = ninep_peer::decode(&bytes, &shared);
                ninep_peer::encode(&back, &mut out);
                check("ninep", name, &bytes, &own, &out);
                g.bench_function(BenchmarkId::new("decode", "ninep"), |b| {
                    b.iter(|| ninep_peer::decode::<Rmessage>(black_box(&bytes), &shared))
                });
                g.bench_function(BenchmarkId::new("encode", "ninep"), |b| {
                    b.iter(|| ninep_peer::encode(black_box(&value), black_box(&mut out)))
                });
            }
            _ => {}
        }

        // p9: T-messages only, decode only, unchecked (see the module docs).
        if name.starts_with('T') {
            g.bench_function(BenchmarkId::new("decode-unchecked", "p9"), |b| {
                b.iter(|| p9::fuzzing::tframe_decode(black_box(&bytes)))
            });
        }
        g.finish();
    }
}

criterion_group!(peers, small_and_payload);
criterion_main!(peers);
