//! Arbitrary bytes as one frame, under both dialects and several msizes.
//! The decoder must answer every input with a frame or a `CodecError`:
//! never a panic, never an out-of-bounds read. Payloads that carry packed
//! records (`Rreaddir` entries, 9P2000 stats in an `Rread`) are walked too,
//! and so is the raw input, as if it were such a payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use secure9p_codec::{DecodeConfig, Dialect, DirEntries, Frame, Header, Msg, Stats};

/// The smallest msize Linux accepts, a common one, Linux's TCP maximum, and no limit.
const MSIZES: [u32; 4] = [4096, 8192, 1 << 20, u32::MAX];

fuzz_target!(|data: &[u8]| {
    let _ = Header::peek(data);
    for dialect in [Dialect::Linux, Dialect::Base] {
        for msize in MSIZES {
            if let Ok(frame) = Frame::decode(data, DecodeConfig::new(dialect, msize)) {
                assert_eq!(frame.encoded_len(), data.len());
                match frame.msg {
                    Msg::Rreaddir(m) => drain_dirents(m.data),
                    Msg::Rread(m) => drain_stats(m.data),
                    _ => {}
                }
            }
        }
    }
    drain_dirents(data);
    drain_stats(data);
});

/// Iterates to the end: an error must end the iteration.
fn drain_dirents(data: &[u8]) {
    let mut entries = DirEntries::new(data);
    for entry in entries.by_ref() {
        if entry.is_err() {
            break;
        }
    }
    assert!(entries.next().is_none(), "iteration goes on after an error");
}

fn drain_stats(data: &[u8]) {
    let mut stats = Stats::new(data);
    for stat in stats.by_ref() {
        if stat.is_err() {
            break;
        }
    }
    assert!(stats.next().is_none(), "iteration goes on after an error");
}
