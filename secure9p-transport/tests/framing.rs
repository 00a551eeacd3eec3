//! `NinePCodec` as a specification: frames come out whole however the bytes
//! arrive, nothing over msize is buffered, and real Linux traffic frames
//! exactly as captured.

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use secure9p_codec::{DecodeConfig, Dialect, Fid, Frame, Msg, Rread, Tag, Tclunk, Twrite};
use secure9p_transport::framing::{
    DEFAULT_MSIZE, FrameError, NinePCodec, OutFrame, write_frame_vectored,
};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead, FramedWrite};

const TAP: &str = include_str!("../../secure9p-codec/tests/data/linux-6.1-v9fs-to-diod.tap");

/// The msize the captured session negotiated.
const CAPTURE_MSIZE: u32 = 131072;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// The uncut frames of the capture, in order, as (from_client, bytes).
/// Lines ending in ` +N` hold only the first 512 bytes of a frame: skipped.
fn capture() -> Vec<(bool, Vec<u8>)> {
    TAP.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let dir = parts.next().expect("direction");
            let frame = parts.next().expect("frame");
            match parts.next() {
                Some(_cut) => None,
                None => Some((dir == "C", hex(frame))),
            }
        })
        .collect()
}

/// A well-formed frame of `len` bytes (a header with an arbitrary body).
fn frame_of(len: usize, tag: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&(len as u32).to_le_bytes());
    f.push(117);
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend((0..len - 7).map(|i| (i as u8) ^ (tag as u8)));
    f
}

fn clunk(tag: u16, fid: u32) -> Bytes {
    let mut out = BytesMut::new();
    Frame::new(Tag(tag), Tclunk { fid: Fid(fid) })
        .encode_to(&mut out)
        .expect("encode");
    out.freeze()
}

/// Decodes everything `decode` yields from `buf`, stopping at `None`.
fn drain(codec: &mut NinePCodec, buf: &mut BytesMut) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(f) = codec.decode(buf).expect("decode") {
        out.push(f);
    }
    out
}

#[test]
fn frames_fed_byte_by_byte_come_out_whole() {
    let frames: Vec<Vec<u8>> = [7, 8, 11, 100, 4096]
        .iter()
        .map(|&n| frame_of(n, n as u16))
        .collect();
    let stream: Vec<u8> = frames.concat();
    let mut codec = NinePCodec::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in &stream {
        buf.extend_from_slice(&[b]);
        got.extend(drain(&mut codec, &mut buf));
    }
    assert!(buf.is_empty());
    assert_eq!(got, frames);
}

#[test]
fn many_frames_in_one_read() {
    let frames: Vec<Vec<u8>> = (0..200u16)
        .map(|i| frame_of(7 + usize::from(i) * 3, i))
        .collect();
    let mut buf = BytesMut::from(&frames.concat()[..]);
    let got = drain(&mut NinePCodec::default(), &mut buf);
    assert!(buf.is_empty());
    assert_eq!(got, frames);
}

#[test]
fn decoded_frames_share_the_read_buffer() {
    let mut buf = BytesMut::from(&[frame_of(64, 1), frame_of(64, 2)].concat()[..]);
    let base = buf.as_ptr() as usize;
    let got = drain(&mut NinePCodec::default(), &mut buf);
    assert_eq!(got[0].as_ptr() as usize, base);
    assert_eq!(got[1].as_ptr() as usize, base + 64);
}

#[test]
fn oversize_frame_is_refused_from_its_size_field_alone() {
    let mut codec = NinePCodec::new(4096);
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(&4097u32.to_le_bytes());
    let err = codec.decode(&mut buf).expect_err("over msize");
    assert!(
        matches!(
            err,
            FrameError::TooLarge {
                size: 4097,
                msize: 4096
            }
        ),
        "{err}"
    );
    assert_eq!(err.to_string(), "frame of 4097 bytes exceeds msize 4096");
    assert!(
        buf.capacity() < 4096,
        "reserved {} bytes for a refused frame",
        buf.capacity()
    );

    let mut huge = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
    assert!(matches!(
        codec.decode(&mut huge),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(huge.capacity() < 4096);
}

#[test]
fn accepted_frame_reserves_its_announced_size() {
    let mut codec = NinePCodec::new(65536);
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(&frame_of(60000, 9)[..7]);
    assert_eq!(codec.decode(&mut buf).expect("partial"), None);
    assert!(buf.capacity() >= 60000);
}

#[test]
fn fewer_than_four_bytes_wait_for_more() {
    let mut codec = NinePCodec::new(4096);
    for n in 0..4 {
        let mut buf = BytesMut::from(&[0xffu8; 3][..n]);
        assert_eq!(codec.decode(&mut buf).expect("need more"), None);
    }
}

#[test]
fn size_below_header_is_refused() {
    for size in [0u32, 1, 4, 6] {
        let mut buf = BytesMut::from(&size.to_le_bytes()[..]);
        let err = NinePCodec::default()
            .decode(&mut buf)
            .expect_err("undersize");
        assert!(
            matches!(err, FrameError::BelowHeader(s) if s == size),
            "{err}"
        );
    }
    // Seven is the smallest legal frame: a header and no body.
    let mut buf = BytesMut::from(&frame_of(7, 3)[..]);
    assert_eq!(
        NinePCodec::default().decode(&mut buf).expect("7 bytes"),
        Some(Bytes::from(frame_of(7, 3)))
    );
}

#[test]
fn msize_change_applies_to_the_next_frame() {
    let mut codec = NinePCodec::default();
    assert_eq!(codec.msize(), DEFAULT_MSIZE);
    let big = frame_of(20000, 1);
    let mut buf = BytesMut::from(&big[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(FrameError::TooLarge {
            size: 20000,
            msize: DEFAULT_MSIZE
        })
    ));
    codec.set_msize(CAPTURE_MSIZE);
    assert_eq!(
        codec.decode(&mut buf).expect("fits now"),
        Some(Bytes::from(big))
    );
    codec.set_msize(4096);
    let mut buf = BytesMut::from(&frame_of(4097, 2)[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn stream_ending_inside_a_frame_is_an_error() {
    let mut codec = NinePCodec::default();
    let mut buf = BytesMut::from(&frame_of(100, 1)[..50]);
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(FrameError::Truncated { got: 50 })
    ));
    let mut buf = BytesMut::from(&[1u8, 0][..]);
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(FrameError::Truncated { got: 2 })
    ));
    let mut empty = BytesMut::new();
    assert_eq!(codec.decode_eof(&mut empty).expect("clean end"), None);
}

/// Every uncut frame of the real session, sent as one stream per direction
/// and cut into reads of awkward sizes, frames back to the captured bytes,
/// each of which the codec decodes.
#[test]
fn real_linux_session_frames_as_captured() {
    let lines = capture();
    assert!(lines.len() > 250, "only {} uncut lines", lines.len());
    for from_client in [true, false] {
        let frames: Vec<&Vec<u8>> = lines
            .iter()
            .filter(|(c, _)| *c == from_client)
            .map(|(_, f)| f)
            .collect();
        let stream: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        for read_size in [1, 7, 64, 1000, stream.len()] {
            let mut codec = NinePCodec::new(CAPTURE_MSIZE);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in stream.chunks(read_size) {
                buf.extend_from_slice(chunk);
                got.extend(drain(&mut codec, &mut buf));
            }
            assert!(buf.is_empty());
            assert_eq!(got.len(), frames.len(), "read size {read_size}");
            for (i, (g, want)) in got.iter().zip(&frames).enumerate() {
                assert_eq!(&g[..], &want[..], "frame {i}, read size {read_size}");
            }
        }
        let cfg = DecodeConfig::new(Dialect::Linux, CAPTURE_MSIZE);
        for f in &frames {
            Frame::decode(f, cfg).expect("captured frame decodes");
        }
    }
}

#[test]
fn encoder_checks_outgoing_frames() {
    let mut codec = NinePCodec::new(4096);
    let mut dst = BytesMut::new();
    codec.encode(clunk(1, 2), &mut dst).expect("clunk");
    assert_eq!(dst.freeze(), clunk(1, 2));

    let mut dst = BytesMut::new();
    let over = Bytes::from(frame_of(4097, 1));
    assert!(matches!(
        codec.encode(over, &mut dst),
        Err(FrameError::TooLarge {
            size: 4097,
            msize: 4096
        })
    ));
    let mut lying = frame_of(20, 1);
    lying[0] = 21;
    assert!(matches!(
        codec.encode(Bytes::from(lying), &mut dst),
        Err(FrameError::SizeMismatch {
            declared: 21,
            actual: 20
        })
    ));
    assert!(matches!(
        codec.encode(Bytes::from_static(&[7, 0, 0, 0, 1]), &mut dst),
        Err(FrameError::ShortFrame(5))
    ));
    let payload = Bytes::from(vec![0u8; 4096]);
    let rread = OutFrame::rread(Tag(1), payload).expect("rread");
    assert!(matches!(
        codec.encode(rread, &mut dst),
        Err(FrameError::TooLarge {
            size: 4107,
            msize: 4096
        })
    ));
    let frame = Frame::new(Tag(1), Rread { data: &[0u8; 4090] });
    assert!(matches!(
        codec.encode(frame, &mut dst),
        Err(FrameError::TooLarge {
            size: 4101,
            msize: 4096
        })
    ));
    assert!(dst.is_empty(), "a refused frame left {} bytes", dst.len());
}

#[test]
fn vectored_frames_encode_like_whole_ones() {
    let payload = Bytes::from_static(b"hello, world");
    let cases = [
        (
            OutFrame::rread(Tag(5), payload.clone()).expect("rread"),
            Frame::new(Tag(5), Rread { data: &payload }),
        ),
        (
            OutFrame::twrite(Tag(6), Fid(7), 1 << 40, payload.clone()).expect("twrite"),
            Frame::new(
                Tag(6),
                Twrite {
                    fid: Fid(7),
                    offset: 1 << 40,
                    data: &payload,
                },
            ),
        ),
    ];
    for (out, frame) in cases {
        let mut whole = BytesMut::new();
        frame.encode_to(&mut whole).expect("encode");
        assert_eq!(out.encoded_len(), whole.len());
        let (header, body) = out.parts();
        assert_eq!([header, body].concat(), &whole[..]);

        let mut via_codec = BytesMut::new();
        NinePCodec::default()
            .encode(out, &mut via_codec)
            .expect("encode");
        assert_eq!(via_codec, whole);
        let mut via_frame = BytesMut::new();
        NinePCodec::default()
            .encode(frame, &mut via_frame)
            .expect("encode");
        assert_eq!(via_frame, whole);
    }
}

/// A writer that takes at most `limit` bytes per call and does vectored
/// writes natively, so frames cross call boundaries inside and between
/// the header and the payload.
struct Trickle {
    limit: usize,
    out: Vec<u8>,
    calls: usize,
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.limit);
        self.out.extend_from_slice(&buf[..n]);
        self.calls += 1;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut left = self.limit;
        for b in bufs {
            let n = b.len().min(left);
            self.out.extend_from_slice(&b[..n]);
            left -= n;
        }
        self.calls += 1;
        Poll::Ready(Ok(self.limit - left))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn vectored_write_survives_partial_writes() {
    let payload = vec![0xabu8; 1000];
    let out = OutFrame::rread(Tag(3), Bytes::from(payload.clone())).expect("rread");
    let (header, body) = out.parts();
    let want = [header, body].concat();
    for limit in [1, 5, 11, 12, 64, 4096] {
        let mut w = Trickle {
            limit,
            out: Vec::new(),
            calls: 0,
        };
        write_frame_vectored(&mut w, header, body)
            .await
            .expect("write");
        assert_eq!(w.out, want, "limit {limit}");
        assert_eq!(w.calls, want.len().div_ceil(limit), "limit {limit}");
    }
}

#[tokio::test]
async fn vectored_write_to_a_closed_writer_fails() {
    let mut w = Trickle {
        limit: 0,
        out: Vec::new(),
        calls: 0,
    };
    let err = write_frame_vectored(&mut w, b"header!", b"payload")
        .await
        .expect_err("write zero");
    assert_eq!(err.kind(), io::ErrorKind::WriteZero);
}

/// A client and a server `Framed` over an in-memory duplex whose buffer is
/// smaller than the frames: requests go out whole and vectored while the
/// client reads (both sides block on a full pipe otherwise), the server
/// echoes what it reads, the client sees the same frames back.
#[tokio::test]
async fn duplex_round_trip() {
    let (client, server) = tokio::io::duplex(64);
    let echo = tokio::spawn(async move {
        let mut server = Framed::new(server, NinePCodec::new(CAPTURE_MSIZE));
        while let Some(frame) = server.next().await {
            server
                .send(frame.expect("server decode"))
                .await
                .expect("echo");
        }
    });

    let payload = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
    let twrite = OutFrame::twrite(Tag(2), Fid(1), 0, payload.clone()).expect("twrite");
    let (h, p) = twrite.parts();
    let mut outgoing = vec![OutFrame::Whole(clunk(1, 9)), twrite.clone()];
    let mut sent = vec![clunk(1, 9), Bytes::from([h, p].concat())];
    for (_, captured) in capture().into_iter().filter(|(c, _)| *c).take(50) {
        let captured = Bytes::from(captured);
        outgoing.push(OutFrame::Whole(captured.clone()));
        sent.push(captured);
    }

    let (rd, wr) = tokio::io::split(client);
    let mut stream = FramedRead::new(rd, NinePCodec::new(CAPTURE_MSIZE));
    let mut sink = FramedWrite::new(wr, NinePCodec::new(CAPTURE_MSIZE));
    let sender = tokio::spawn(async move {
        for frame in outgoing {
            sink.send(frame).await.expect("send");
        }
        sink
    });
    let mut got = Vec::new();
    while got.len() < sent.len() {
        got.push(
            stream
                .next()
                .await
                .expect("echo open")
                .expect("client decode"),
        );
    }
    assert_eq!(got, sent);
    let cfg = DecodeConfig::new(Dialect::Linux, CAPTURE_MSIZE);
    match Frame::decode(&got[1], cfg).expect("decode").msg {
        Msg::Twrite(w) => assert_eq!(w.data, &payload[..]),
        other => panic!("unexpected {other:?}"),
    }
    let sink = sender.await.expect("sender");
    drop((sink, stream));
    echo.await.expect("echo task");
}

#[tokio::test]
async fn vectored_writes_read_back_through_framed_read() {
    let (mut tx, rx) = tokio::io::duplex(100);
    let payloads: Vec<Bytes> = (0..20usize)
        .map(|i| Bytes::from(vec![i as u8; i * 37]))
        .collect();
    let writer = {
        let payloads = payloads.clone();
        tokio::spawn(async move {
            for (i, p) in payloads.into_iter().enumerate() {
                let out = OutFrame::rread(Tag(i as u16), p).expect("rread");
                let (h, p) = out.parts();
                write_frame_vectored(&mut tx, h, p).await.expect("write");
            }
            tx.shutdown().await.expect("shutdown");
        })
    };
    let mut rx = FramedRead::new(rx, NinePCodec::default());
    let cfg = DecodeConfig::new(Dialect::Linux, DEFAULT_MSIZE);
    for (i, want) in payloads.iter().enumerate() {
        let frame = rx.next().await.expect("frame").expect("decode");
        let decoded = Frame::decode(&frame, cfg).expect("rread");
        assert_eq!(decoded.tag, Tag(i as u16));
        assert!(matches!(decoded.msg, Msg::Rread(r) if r.data == &want[..]));
    }
    assert!(rx.next().await.is_none());
    writer.await.expect("writer");
}

#[tokio::test]
async fn oversize_frame_ends_the_stream_without_reading_its_body() {
    let (mut tx, rx) = tokio::io::duplex(64);
    let mut rx = FramedRead::new(rx, NinePCodec::new(4096));
    // Only the size field is sent; the body never comes.
    tx.write_all(&1_000_000u32.to_le_bytes())
        .await
        .expect("write");
    let err = rx.next().await.expect("an item").expect_err("refused");
    assert!(matches!(
        err,
        FrameError::TooLarge {
            size: 1_000_000,
            msize: 4096
        }
    ));
}
