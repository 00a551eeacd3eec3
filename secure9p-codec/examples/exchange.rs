//! Decodes the real Linux v9fs ↔ diod session shipped with the tests and
//! prints each exchange, then re-encodes every whole frame and checks that
//! the bytes are identical.

use secure9p_codec::{DecodeConfig, Dialect, Frame, Msg};

const TAP: &str = include_str!("../tests/data/linux-6.1-v9fs-to-diod.tap");

fn hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = DecodeConfig::new(Dialect::Linux, u32::MAX);
    let (mut frames, mut same) = (0usize, 0usize);
    for line in TAP.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.split_whitespace();
        let dir = parts.next().unwrap_or("?");
        let mut bytes = parts.next().and_then(hex).ok_or("bad hex in capture")?;
        let cut: usize = parts
            .next()
            .map(|n| n.trim_start_matches('+').parse())
            .transpose()?
            .unwrap_or(0);
        bytes.resize(bytes.len() + cut, 0);
        let frame = Frame::decode(&bytes, cfg)?;
        if let Msg::Rversion(v) = frame.msg {
            cfg.msize = v.msize;
        }
        frames += 1;
        let summary = format!("{:?}", frame.msg);
        let summary: String = summary.chars().take(110).collect();
        println!("{dir} tag={:<5} {summary}", frame.tag.0);
        if cut == 0 {
            let mut out = vec![0u8; frame.encoded_len()];
            frame.encode(&mut out)?;
            if out == bytes {
                same += 1;
            }
        }
    }
    println!("\n{frames} frames decoded; {same} whole frames re-encoded byte for byte");
    Ok(())
}
