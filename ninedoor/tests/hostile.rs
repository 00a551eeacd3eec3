//! Hostile input: arbitrary `/queen/ctl` writes and arbitrary frames never
//! panic the hive, fail with one of the documented errnos, and never break
//! the audit log's line structure.

mod common;

use common::{Conn, Queen, hive};
use ninedoor::secure9p_core::FsError;
use proptest::prelude::*;

fn well_formed(log: &str) {
    for line in log.lines().filter(|l| !l.starts_with("# missed ")) {
        let f: Vec<&str> = line.split(' ').collect();
        assert!(f.len() >= 5, "{line:?}");
        assert!(f[0].parse::<u64>().is_ok(), "{line:?}");
        assert!(f[2].starts_with("role="), "{line:?}");
        assert!(f[3].starts_with("subject="), "{line:?}");
        assert!(f[4].starts_with("ticket="), "{line:?}");
        assert!(
            line.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
            "{line:?}"
        );
    }
}

/// Command-shaped text: right keys and verbs, wrong mixtures.
fn ctl_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("cmd"),
        Just("role"),
        Just("id"),
        Just("gpu"),
        Just("ticket_ttl_s"),
        Just("ops"),
        Just("x"),
    ];
    let value = prop_oneof![
        Just("\"spawn\"".to_owned()),
        Just("\"kill\"".to_owned()),
        Just("\"budget\"".to_owned()),
        Just("\"heartbeat\"".to_owned()),
        Just("\"gpu\"".to_owned()),
        "\"[a-z0-9\\n\\r \\-_./\\u{e9}]{0,12}\"",
        any::<i64>().prop_map(|n| n.to_string()),
        Just("null".to_owned()),
        Just("[]".to_owned()),
    ];
    proptest::collection::vec((key, value), 0..5).prop_map(|pairs| {
        let body: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", body.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_ctl_writes_fail_cleanly(
        writes in proptest::collection::vec(
            prop_oneof![
                ctl_text().prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..300),
            ],
            1..6,
        )
    ) {
        let mut hive = hive();
        let mut q = Queen::attach(&mut hive);
        for data in &writes {
            match q.conn.write(&mut hive, q.ctl, data) {
                Ok(n) => prop_assert_eq!(n as usize, data.len()),
                Err(e) => prop_assert!(
                    matches!(
                        e,
                        FsError::Invalid | FsError::NotFound | FsError::Exists | FsError::TooBig | FsError::NoSpace
                    ),
                    "{:?}",
                    e
                ),
            }
        }
        let log = q.log(&mut hive);
        well_formed(&log);
        prop_assert!(hive.workers().len() <= hive.config().max_workers);
    }

    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20)) {
        let mut hive = hive();
        let mut c = Conn::open(&mut hive);
        let ticket = hive.queen_ticket().to_owned();
        c.attach(&mut hive, &ticket).unwrap();
        let mut out = Vec::new();
        for mut f in frames {
            // Give most frames a consistent size field so they reach decoding.
            if f.len() >= 7 {
                let n = f.len() as u32;
                f[..4].copy_from_slice(&n.to_le_bytes());
            }
            out.clear();
            let _ = hive.handle(c.session, &f, common::NOW, &mut out);
        }
        let mut q = Queen::attach(&mut hive);
        well_formed(&q.log(&mut hive));
    }
}
