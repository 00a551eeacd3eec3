//! The codec's hot path, measured: decoding and encoding small messages
//! (`Twalk` of 3 names, `Rgetattr`) and payload messages (`Twrite`, `Rread`)
//! at 4 KiB, 64 KiB and 1 MiB.
//!
//! Decoding borrows the payload, so its cost should not grow with size.
//! Encoding into one buffer must copy the payload; `memcpy` of the same
//! bytes runs beside it as the floor to compare with. The vectored path
//! (`rread_header`/`twrite_header`, payload sent as a second slice) writes
//! only the header and should cost the same at every size.
//!
//! Run: `cargo bench -p secure9p-benches --bench codec`.

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use secure9p_codec::{
    Fid, Frame, Rread, Tag, Twalk, Twrite, WalkNames, rread_header, twrite_header,
};
use std::hint::black_box;

mod fixtures;

use fixtures::{RGETATTR, cfg};

/// The payload sizes: one page, a common Linux msize, and Linux's TCP maximum.
const SIZES: [(usize, &str); 3] = [(4 << 10, "4KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];

fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = vec![0u8; frame.encoded_len()];
    let n = frame.encode(&mut out).expect("encode");
    out.truncate(n);
    out
}

fn small_messages(c: &mut Criterion) {
    let names = ["usr", "share", "doc"];
    let twalk = Frame::new(
        Tag(1),
        Twalk {
            fid: Fid(0),
            newfid: Fid(1),
            wnames: WalkNames::new(&names).expect("3 names"),
        },
    );
    let rgetattr = Frame::new(Tag(1), &RGETATTR);

    let mut g = c.benchmark_group("small");
    for (name, frame) in [("Twalk-3-names", twalk), ("Rgetattr", rgetattr)] {
        let bytes = encode(&frame);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| Frame::decode(black_box(&bytes), cfg()).expect("decode"))
        });
        let mut out = vec![0u8; bytes.len()];
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                black_box(&frame)
                    .encode(black_box(&mut out))
                    .expect("encode")
            })
        });
    }
    g.finish();
}

/// `Frame::encode_to` appends to a reused `BytesMut` (what the transport's
/// writers do): the frame's bytes are written once, with no zero-fill of
/// the space first.
fn encode_to(c: &mut Criterion) {
    let names = ["usr", "share", "doc"];
    let data = vec![7u8; 4 << 10];
    let frames = [
        (
            "Twalk-3-names",
            Frame::new(
                Tag(1),
                Twalk {
                    fid: Fid(0),
                    newfid: Fid(1),
                    wnames: WalkNames::new(&names).expect("3 names"),
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
    ];
    let mut g = c.benchmark_group("encode_to");
    for (name, frame) in frames {
        let want = encode(&frame);
        let mut out = BytesMut::with_capacity(want.len());
        frame.encode_to(&mut out).expect("encode_to");
        assert_eq!(&out[..], &want[..], "encode_to and encode agree");
        g.throughput(Throughput::Bytes(want.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(&frame)
                    .encode_to(black_box(&mut out))
                    .expect("encode_to")
            })
        });
    }
    g.finish();
}

fn payload_messages(c: &mut Criterion) {
    let mut g = c.benchmark_group("payload");
    for (size, label) in SIZES {
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let twrite = Frame::new(
            Tag(1),
            Twrite {
                fid: Fid(1),
                offset: 0,
                data: &data,
            },
        );
        let rread = Frame::new(Tag(1), Rread { data: &data });
        g.throughput(Throughput::Bytes(size as u64));

        for (name, frame) in [("Twrite", twrite), ("Rread", rread)] {
            let bytes = encode(&frame);
            g.bench_function(BenchmarkId::new(format!("decode/{name}"), label), |b| {
                b.iter(|| Frame::decode(black_box(&bytes), cfg()).expect("decode"))
            });
            let mut out = vec![0u8; bytes.len()];
            g.bench_function(BenchmarkId::new(format!("encode/{name}"), label), |b| {
                b.iter(|| {
                    black_box(&frame)
                        .encode(black_box(&mut out))
                        .expect("encode")
                })
            });
        }

        // The floor for any single-buffer encoder: copying the payload once.
        let mut out = vec![0u8; size];
        g.bench_function(BenchmarkId::new("memcpy", label), |b| {
            b.iter(|| black_box(&mut out).copy_from_slice(black_box(&data)))
        });

        // Vectored: only the header is written; the payload stays put.
        g.bench_function(BenchmarkId::new("vectored/rread_header", label), |b| {
            b.iter(|| rread_header(black_box(Tag(1)), black_box(data.len())).expect("header"))
        });
        g.bench_function(BenchmarkId::new("vectored/twrite_header", label), |b| {
            b.iter(|| {
                twrite_header(black_box(Tag(1)), Fid(1), 0, black_box(data.len())).expect("header")
            })
        });
    }
    g.finish();
}

criterion_group!(codec, small_messages, encode_to, payload_messages);
criterion_main!(codec);
