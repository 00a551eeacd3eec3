//! The real Linux v9fs ↔ diod session in `tests/data/` is the truth for the
//! messages it holds: every frame must decode, uncut frames must re-encode to
//! the same bytes, and every reply must answer the request with its tag.

use secure9p_codec::{DecodeConfig, Dialect, Frame, Header, Msg, MsgType, Tag};
use std::collections::{HashMap, VecDeque};

const TAP: &str = include_str!("data/linux-6.1-v9fs-to-diod.tap");

struct Line {
    from_client: bool,
    bytes: Vec<u8>,
    cut: usize,
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn lines() -> Vec<Line> {
    TAP.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let dir = parts.next().expect("direction");
            let bytes = hex(parts.next().expect("frame"));
            let cut = parts
                .next()
                .map(|n| n.trim_start_matches('+').parse().expect("cut count"))
                .unwrap_or(0);
            Line {
                from_client: dir == "C",
                bytes,
                cut,
            }
        })
        .collect()
}

/// A frame cut in the capture is completed with zero bytes: only payload
/// frames (reads, writes, directory data) are long enough to be cut, and
/// their payload is opaque to the decoder.
fn whole(line: &Line) -> Vec<u8> {
    let mut b = line.bytes.clone();
    b.resize(b.len() + line.cut, 0);
    b
}

#[test]
fn every_frame_decodes_and_reencodes() {
    let lines = lines();
    assert!(lines.len() > 300, "capture has {} lines", lines.len());
    let mut cfg = DecodeConfig::new(Dialect::Linux, u32::MAX);
    let (mut reencoded, mut cut) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        let bytes = whole(line);
        let frame = Frame::decode(&bytes, cfg)
            .unwrap_or_else(|e| panic!("line {}: {e}: {:02x?}", i + 1, &line.bytes));
        assert_eq!(
            frame.msg.msg_type().is_request(),
            line.from_client,
            "line {}",
            i + 1
        );
        if let Msg::Rversion(v) = frame.msg {
            assert_eq!(v.version, "9P2000.L");
            cfg.msize = v.msize;
        }
        if line.cut > 0 {
            cut += 1;
            assert!(
                matches!(
                    frame.msg.msg_type(),
                    MsgType::Rread | MsgType::Twrite | MsgType::Rreaddir
                ),
                "line {}: cut frame of type {:?}",
                i + 1,
                frame.msg.msg_type()
            );
            continue;
        }
        let mut out = vec![0u8; frame.encoded_len()];
        let n = frame.encode(&mut out).expect("encode");
        assert_eq!(
            &out[..n],
            &bytes[..],
            "line {} re-encodes differently",
            i + 1
        );
        reencoded += 1;
    }
    assert!(
        cut > 0 && reencoded > 250,
        "cut {cut}, re-encoded {reencoded}"
    );
}

/// The capture interleaves the two directions only approximately (a reply is
/// sometimes recorded before the request it answers, lines 99 and 100), but
/// each direction is in order. So the n-th reply carrying a tag answers the
/// n-th request carrying it.
#[test]
fn every_reply_answers_its_request() {
    let cfg = DecodeConfig::new(Dialect::Linux, u32::MAX);
    let mut requests: HashMap<Tag, VecDeque<MsgType>> = HashMap::new();
    let mut replies = Vec::new();
    for (i, line) in lines().iter().enumerate() {
        let bytes = whole(line);
        let frame = Frame::decode(&bytes, cfg).expect("decodes");
        let ty = frame.msg.msg_type();
        if line.from_client {
            requests.entry(frame.tag).or_default().push_back(ty);
        } else {
            replies.push((i + 1, frame.tag, ty));
        }
    }
    for (line, tag, rep) in &replies {
        let req = requests
            .get_mut(tag)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| panic!("line {line}: reply to unknown tag {tag:?}"));
        assert!(
            Some(*rep) == req.reply() || *rep == MsgType::Rlerror,
            "line {line}: {rep:?} does not answer {req:?}"
        );
    }
    assert!(
        requests.values().all(VecDeque::is_empty),
        "unanswered: {requests:?}"
    );
    assert_eq!(replies.len(), 192);
}

#[test]
fn header_peek_agrees_with_every_frame() {
    for line in lines() {
        let h = Header::peek(&line.bytes).expect("header");
        assert_eq!(h.size as usize, line.bytes.len() + line.cut);
    }
}
