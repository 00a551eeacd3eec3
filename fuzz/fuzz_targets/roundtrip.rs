//! Whatever decodes must encode back to the very same bytes (the wire form
//! is canonical), and decoding those bytes again must give an equal frame.
//! Checked under both dialects, through every encoder (`&mut [u8]`, and
//! appending to a `Vec<u8>` and a `BytesMut`).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use secure9p_codec::{DecodeConfig, Dialect, Frame};

fuzz_target!(|data: &[u8]| {
    for dialect in [Dialect::Linux, Dialect::Base] {
        let cfg = DecodeConfig::new(dialect, u32::MAX);
        let Ok(frame) = Frame::decode(data, cfg) else {
            continue;
        };
        let mut out = vec![0u8; frame.encoded_len()];
        let n = frame.encode(&mut out).expect("a decoded frame encodes");
        assert_eq!(&out[..n], data, "re-encoding changed the bytes");

        let again = Frame::decode(&out[..n], cfg).expect("re-encoded frame decodes");
        assert_eq!(again, frame);

        let mut v = vec![0xa5];
        frame.encode_to(&mut v).expect("encode_to Vec");
        assert_eq!(&v[1..], data);

        let mut bm = BytesMut::new();
        frame.encode_to(&mut bm).expect("encode_to");
        assert_eq!(&bm[..], data);
    }
});
