//! Zero-copy reads against a model: arbitrary sequences of writes and reads
//! on a `MemFile`, each read answered through `handle_replies` (the shared
//! payload as the replies' tail) and through `handle` (copied), which must
//! give the same frame, whose data must be the model's bytes at that offset
//! (cut at the end of the file and at the msize). Payloads kept across
//! later writes must keep the bytes they were read with (copy-on-write).

mod common;

use common::{Wire, raw_frame};
use proptest::prelude::*;
use secure9p_core::bytes::Bytes;
use secure9p_core::codec::{self, DecodeConfig, Dialect, Fid, Frame, LOpenFlags, Msg, Tag};
use secure9p_core::{
    AllowAll, MemFile, Namespace, Principal, Replies, Role, SHARE_MIN, Server, ServerConfig,
};

/// What the session negotiates: reads are cut at `MSIZE - 11`.
const MSIZE: u32 = 128 * 1024;
const MAX_LEN: usize = 400_000;

#[derive(Debug, Clone)]
enum Op {
    Read { offset: u64, count: u32, keep: bool },
    Write { offset: u64, len: usize, byte: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..320_000, 0u32..200_000, any::<bool>())
            .prop_map(|(offset, count, keep)| Op::Read { offset, count, keep }),
        2 => (0u64..300_000, 0usize..40_000, any::<u8>())
            .prop_map(|(offset, len, byte)| Op::Write { offset, len, byte }),
    ]
}

fn session(initial: &[u8]) -> Wire {
    let mut ns = Namespace::new();
    let root = ns.root();
    ns.add_file(root, "f", Box::new(MemFile::new(initial.to_vec(), MAX_LEN)))
        .expect("add f");
    let config = ServerConfig {
        anonymous: Some(Principal::anonymous(Role::Anonymous, "guest")),
        ..ServerConfig::default()
    };
    let mut w = Wire::connect(Server::new(ns, AllowAll, config), MSIZE, Dialect::Linux);
    w.attach(0, "").expect("attach");
    w.walk(0, 1, &["f"]).expect("walk");
    w.lopen(1, LOpenFlags::RDWR).expect("open");
    w
}

fn read_frame(tag: u16, offset: u64, count: u32) -> Vec<u8> {
    raw_frame(
        Tag(tag),
        codec::Tread {
            fid: Fid(1),
            offset,
            count,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn shared_reads_match_the_copying_path_and_the_model(
        initial in proptest::collection::vec(any::<u8>(), 0..200_000),
        ops in proptest::collection::vec(op(), 1..24),
    ) {
        let mut w = session(&initial);
        let mut model = initial.clone();
        let mut kept: Vec<(Bytes, Vec<u8>)> = Vec::new();
        let cfg = DecodeConfig::new(Dialect::Linux, MSIZE);
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Write { offset, len, byte } => {
                    let data = vec![byte; len];
                    prop_assert_eq!(w.write(1, offset, &data), Ok(len as u32));
                    let (at, end) = (offset as usize, offset as usize + len);
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[at..end].copy_from_slice(&data);
                }
                Op::Read { offset, count, keep } => {
                    let frame = read_frame(i as u16, offset, count);
                    let mut shared = Replies::new();
                    let sid = w.sid;
                    w.server()
                        .handle_replies(sid, &frame, 1_000, &mut shared)
                        .expect("session stays up");
                    let mut copied = Vec::new();
                    w.server()
                        .handle(sid, &frame, 1_000, &mut copied)
                        .expect("session stays up");
                    let start = (offset as usize).min(model.len());
                    let want_len = (count.min(MSIZE - 11) as usize).min(model.len() - start);
                    let want = &model[start..start + want_len];
                    // A large read with data is answered with a tail, a
                    // small one in the buffer.
                    prop_assert_eq!(
                        shared.has_tail(),
                        count.min(MSIZE - 11) >= SHARE_MIN && want_len > 0
                    );
                    if let Some(tail) = shared.tail() {
                        prop_assert!(tail[..] == *want);
                        prop_assert_eq!(shared.head().len(), 11);
                        if keep {
                            kept.push((tail.clone(), want.to_vec()));
                        }
                    }
                    let whole = shared.into_vec();
                    prop_assert!(whole == copied, "both paths give one frame");
                    let decoded = Frame::decode(&whole, cfg).expect("an Rread");
                    match decoded.msg {
                        Msg::Rread(r) => prop_assert!(r.data == want),
                        m => prop_assert!(false, "not an Rread: {:?}", m),
                    }
                }
            }
        }
        for (tail, want) in &kept {
            prop_assert!(tail[..] == want[..], "a kept payload keeps the bytes it was read with");
        }
    }
}
