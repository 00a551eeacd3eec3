//! Hostile input: arbitrary bytes and mutated descriptors get an error,
//! never a panic, wherever a client's bytes enter the bridge.

mod common;

use common::*;
use gpu_bridge::{Artefacts, Command, LeaseRequest, Renewal, StatusLine, validate};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate(&bytes, &Artefacts::default());
        let _ = Command::parse(&bytes);
        let _ = Renewal::parse(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = LeaseRequest::parse(text);
            let _ = text.parse::<StatusLine>();
        }
    }

    #[test]
    fn mutated_descriptors_are_refused_or_valid(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = vadd_job("j1").to_json().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = validate(&bytes, &Artefacts::default());
    }

    #[test]
    fn the_served_files_take_anything(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let (bridge, _) = bridge(1);
        lease(&bridge, "holder=w1 mem_mb=64 ttl_s=60");
        let _ = bridge.submit("0", &bytes, &queen());
        let _ = bridge.renew("0", &bytes, &queen());
        let _ = bridge.control("0", &bytes, &queen());
        bridge.run_ready(0, &mut gpu_bridge::CpuExecutor);
    }
}
