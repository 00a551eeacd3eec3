//! Job descriptors: the JSON written to `/gpu/<id>/job`, and the checks a
//! job passes before it may queue (schema, launch geometry, payload length
//! and SHA-256, payload contents). See the crate README for the schema.
//!
//! Checks run cheapest first and stop at the first failure, so a hostile
//! descriptor costs at most one bounded parse, one bounded base64 decode
//! and one hash before it is refused.

use crate::artefact::Artefacts;
use crate::descriptor::valid_id;
use crate::error::BridgeError;
use crate::limits::{
    MAX_BLOCK, MAX_GRID, MAX_INLINE_PAYLOAD, MAX_STREAMS, MAX_THREADS_PER_BLOCK, MAX_TIMEOUT_MS,
    MAX_WRITE,
};
use crate::workload::{Kernel, Workload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A job as written to `/gpu/<id>/job` (one JSON object per write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDescriptor {
    /// Names the job in status lines (`[A-Za-z0-9_.-]`, 1 to 64 bytes);
    /// unique among the GPU's queued and running jobs.
    pub job_id: String,
    /// `vadd`, `matmul` or `ptx`.
    pub kernel: Kernel,
    /// Grid dimensions in blocks, x y z.
    pub grid: [u32; 3],
    /// Block dimensions in threads, x y z.
    pub block: [u32; 3],
    /// SHA-256 of the payload bytes, 64 hex digits.
    pub bytes_hash: String,
    /// The payload, base64 (standard alphabet, padded). Exactly one of this
    /// and `artefact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_b64: Option<String>,
    /// The name of a payload staged on the bridge host. Exactly one of this
    /// and `payload_b64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact: Option<String>,
    /// Length of the payload bytes.
    pub bytes_len: u64,
    /// Scheduling priority: higher runs first (default 0).
    #[serde(default)]
    pub priority: u8,
    /// Time from acceptance to result before the job fails with
    /// `ERR TIMEOUT`, 1 to 600000 ms.
    pub timeout_ms: u64,
    /// Device memory the job may use, MiB; at most the lease's `mem_mb`.
    pub mem_mb: u32,
    /// Streams the job occupies while running (default 1); at most the
    /// lease's `streams`.
    #[serde(default = "one")]
    pub streams: u32,
}

fn one() -> u32 {
    1
}

const MIB: u64 = 1024 * 1024;

/// Default job timeout of [`JobDescriptor::inline`]: 10 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// A launch geometry: the grid and block of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// Blocks, x y z.
    pub grid: [u32; 3],
    /// Threads per block, x y z.
    pub block: [u32; 3],
}

impl Launch {
    /// A geometry that covers `workload`: 256-thread blocks for vectors,
    /// 16×16 tiles for matrices.
    pub fn covering(workload: &Workload) -> Launch {
        let ceil = |a: usize, b: u32| u32::try_from(a.div_ceil(b as usize)).unwrap_or(u32::MAX);
        match workload {
            Workload::Vadd { a, .. } | Workload::Ptx { a, .. } => Launch {
                grid: [ceil(a.len(), 256), 1, 1],
                block: [256, 1, 1],
            },
            Workload::Matmul { m, n, .. } => Launch {
                grid: [ceil(*n as usize, 16), ceil(*m as usize, 16), 1],
                block: [16, 16, 1],
            },
        }
    }
}

impl JobDescriptor {
    /// A descriptor carrying `workload` inline, with its hash and length
    /// filled in, a covering geometry, priority 0, one stream, the memory
    /// its data needs and [`DEFAULT_TIMEOUT_MS`].
    pub fn inline(job_id: &str, workload: &Workload) -> JobDescriptor {
        let bytes = workload.encode();
        let launch = Launch::covering(workload);
        JobDescriptor {
            job_id: String::from(job_id),
            kernel: workload.kernel(),
            grid: launch.grid,
            block: launch.block,
            bytes_hash: sha256_hex(&bytes),
            payload_b64: Some(BASE64.encode(&bytes)),
            artefact: None,
            bytes_len: bytes.len() as u64,
            priority: 0,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            mem_mb: u32::try_from(workload.device_bytes().div_ceil(MIB).max(1)).unwrap_or(u32::MAX),
            streams: 1,
        }
    }

    /// The descriptor as one line of JSON (what a client writes).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A job that passed every check: ready to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedJob {
    /// Its id.
    pub job_id: String,
    /// Its launch geometry.
    pub launch: Launch,
    /// Its priority.
    pub priority: u8,
    /// Its timeout.
    pub timeout_ms: u64,
    /// Memory it may use, MiB.
    pub mem_mb: u32,
    /// Streams it occupies.
    pub streams: u32,
    /// The SHA-256 of its payload.
    pub bytes_hash: String,
    /// Its decoded inputs.
    pub workload: Arc<Workload>,
}

fn bad(msg: impl Into<String>) -> BridgeError {
    BridgeError::BadJob(msg.into())
}

/// Longest base64 text of an inline payload.
const MAX_INLINE_B64: usize = MAX_INLINE_PAYLOAD.div_ceil(3) * 4;

fn check_geometry(launch: &Launch, workload: &Workload) -> Result<(), BridgeError> {
    let axes = ["x", "y", "z"];
    for (i, axis) in axes.iter().enumerate() {
        let (g, b) = (
            launch.grid.get(i).copied().unwrap_or(0),
            launch.block.get(i).copied().unwrap_or(0),
        );
        let (gmax, bmax) = (
            MAX_GRID.get(i).copied().unwrap_or(0),
            MAX_BLOCK.get(i).copied().unwrap_or(0),
        );
        if g == 0 || g > gmax {
            return Err(bad(format!("grid.{axis} = {g} is outside 1..={gmax}")));
        }
        if b == 0 || b > bmax {
            return Err(bad(format!("block.{axis} = {b} is outside 1..={bmax}")));
        }
    }
    let [bx, by, bz] = launch.block.map(u64::from);
    let [gx, gy, gz] = launch.grid.map(u64::from);
    let threads = bx * by * bz;
    if threads > MAX_THREADS_PER_BLOCK {
        return Err(bad(format!(
            "block has {threads} threads; at most {MAX_THREADS_PER_BLOCK}"
        )));
    }
    let need = |what: &str, have: u64, want: u64| {
        if have < want {
            Err(bad(format!(
                "launch covers {have} {what}, the payload needs {want}"
            )))
        } else {
            Ok(())
        }
    };
    match workload {
        Workload::Vadd { a, .. } => {
            if gy * gz * by * bz != 1 {
                return Err(bad(
                    "vadd is one-dimensional: grid and block y, z must be 1",
                ));
            }
            need("elements", gx * bx, a.len() as u64)
        }
        Workload::Matmul { m, n, .. } => {
            if gz * bz != 1 {
                return Err(bad("matmul is two-dimensional: grid and block z must be 1"));
            }
            need("columns", gx * bx, u64::from(*n))?;
            need("rows", gy * by, u64::from(*m))
        }
        Workload::Ptx { .. } => Ok(()),
    }
}

/// Parses and checks one job descriptor (the bytes of one write to `job`),
/// resolving `artefact` in `artefacts`. Lease caps are checked by the GPU
/// it is submitted to.
pub fn validate(bytes: &[u8], artefacts: &Artefacts) -> Result<ValidatedJob, BridgeError> {
    if bytes.len() > MAX_WRITE {
        return Err(BridgeError::TooLarge {
            len: bytes.len(),
            max: MAX_WRITE,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| BridgeError::NotText)?;
    let d: JobDescriptor =
        serde_json::from_str(text.trim()).map_err(|e| bad(format!("descriptor: {e}")))?;
    if !valid_id(&d.job_id) {
        return Err(bad(format!(
            "job_id {:?} is not 1-64 bytes of [A-Za-z0-9_.-]",
            d.job_id
        )));
    }
    if d.timeout_ms == 0 || d.timeout_ms > MAX_TIMEOUT_MS {
        return Err(bad(format!(
            "timeout_ms = {} is outside 1..={MAX_TIMEOUT_MS}",
            d.timeout_ms
        )));
    }
    if d.streams == 0 || d.streams > MAX_STREAMS {
        return Err(bad(format!(
            "streams = {} is outside 1..={MAX_STREAMS}",
            d.streams
        )));
    }
    if d.mem_mb == 0 {
        return Err(bad("mem_mb must be at least 1"));
    }
    let declared = d.bytes_hash.to_ascii_lowercase();
    if declared.len() != 64 || !declared.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!(
            "bytes_hash {:?} is not 64 hex digits",
            d.bytes_hash
        )));
    }
    let staged;
    let inline;
    let payload: &[u8] = match (&d.payload_b64, &d.artefact) {
        (Some(b64), None) => {
            if b64.len() > MAX_INLINE_B64 {
                return Err(bad(format!(
                    "payload_b64 of {} characters exceeds {MAX_INLINE_B64}",
                    b64.len()
                )));
            }
            inline = BASE64
                .decode(b64)
                .map_err(|e| bad(format!("payload_b64: {e}")))?;
            &inline
        }
        (None, Some(name)) => {
            staged = artefacts
                .get(name)
                .ok_or_else(|| BridgeError::NoArtefact(name.clone()))?;
            &staged
        }
        _ => return Err(bad("exactly one of payload_b64 and artefact is required")),
    };
    if d.bytes_len != payload.len() as u64 {
        return Err(BridgeError::LengthMismatch {
            declared: d.bytes_len,
            actual: payload.len() as u64,
        });
    }
    let actual = sha256_hex(payload);
    if actual != declared {
        return Err(BridgeError::HashMismatch { declared, actual });
    }
    let workload = Workload::decode(d.kernel, payload)?;
    let launch = Launch {
        grid: d.grid,
        block: d.block,
    };
    check_geometry(&launch, &workload)?;
    let need = workload.device_bytes();
    if need > u64::from(d.mem_mb) * MIB {
        return Err(bad(format!(
            "the job's data needs {need} bytes of device memory; mem_mb = {} declares less",
            d.mem_mb
        )));
    }
    Ok(ValidatedJob {
        job_id: d.job_id,
        launch,
        priority: d.priority,
        timeout_ms: d.timeout_ms,
        mem_mb: d.mem_mb,
        streams: d.streams,
        bytes_hash: declared,
        workload: Arc::new(workload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vadd() -> Workload {
        Workload::Vadd {
            a: vec![1.0, 2.0, 3.0],
            b: vec![4.0, 5.0, 6.0],
        }
    }

    fn check(d: &JobDescriptor) -> Result<ValidatedJob, BridgeError> {
        validate(d.to_json().as_bytes(), &Artefacts::default())
    }

    #[test]
    fn inline_descriptor_validates() {
        let d = JobDescriptor::inline("j1", &vadd());
        let job = check(&d).unwrap();
        assert_eq!(job.job_id, "j1");
        assert_eq!(*job.workload, vadd());
        assert_eq!(job.launch.grid, [1, 1, 1]);
    }

    #[test]
    fn refusals() {
        type Edit = fn(&mut JobDescriptor);
        let cases: &[(&str, Edit, &str)] = &[
            ("hash", |d| d.bytes_hash = "0".repeat(64), "HASH"),
            ("length", |d| d.bytes_len += 1, "LENGTH"),
            ("bad id", |d| d.job_id = "a b".into(), "SCHEMA"),
            ("zero timeout", |d| d.timeout_ms = 0, "SCHEMA"),
            (
                "long timeout",
                |d| d.timeout_ms = MAX_TIMEOUT_MS + 1,
                "SCHEMA",
            ),
            ("zero streams", |d| d.streams = 0, "SCHEMA"),
            ("zero grid", |d| d.grid = [0, 1, 1], "SCHEMA"),
            ("fat block", |d| d.block = [1024, 2, 1], "SCHEMA"),
            ("short launch", |d| d.block = [1, 1, 1], "SCHEMA"),
            ("2-d vadd", |d| d.grid = [1, 2, 1], "SCHEMA"),
            ("hash not hex", |d| d.bytes_hash = "zz".into(), "SCHEMA"),
            ("both sources", |d| d.artefact = Some("x".into()), "SCHEMA"),
            ("no source", |d| d.payload_b64 = None, "SCHEMA"),
            (
                "missing artefact",
                |d| {
                    d.payload_b64 = None;
                    d.artefact = Some("nope".into());
                },
                "ARTEFACT",
            ),
            (
                "not base64",
                |d| d.payload_b64 = Some("!!".into()),
                "SCHEMA",
            ),
        ];
        for (name, edit, reason) in cases {
            let mut d = JobDescriptor::inline("j1", &vadd());
            edit(&mut d);
            let err = check(&d).unwrap_err();
            assert_eq!(err.reason(), *reason, "{name}: {err}");
        }
    }

    #[test]
    fn unknown_fields_and_garbage_are_refused() {
        let mut v: serde_json::Value =
            serde_json::from_str(&JobDescriptor::inline("j1", &vadd()).to_json()).unwrap();
        v["surprise"] = serde_json::json!(1);
        let err = validate(v.to_string().as_bytes(), &Artefacts::default()).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        for junk in [&b"\xff\xfe"[..], b"", b"[]", b"{", b"null"] {
            assert!(validate(junk, &Artefacts::default()).is_err());
        }
        let huge = vec![b' '; MAX_WRITE + 1];
        assert_eq!(
            validate(&huge, &Artefacts::default()).unwrap_err().reason(),
            "TOOLARGE"
        );
    }

    #[test]
    fn declared_memory_must_hold_the_data() {
        // 100 000 floats each of a, b and out: 1.2 MB, more than 1 MiB.
        let w = Workload::Vadd {
            a: vec![0.0; 100_000],
            b: vec![0.0; 100_000],
        };
        let mut store = Artefacts::default();
        store.stage("big", w.encode()).unwrap();
        let mut d = JobDescriptor::inline("big", &w);
        d.payload_b64 = None;
        d.artefact = Some("big".into());
        assert_eq!(d.mem_mb, 2);
        assert!(validate(d.to_json().as_bytes(), &store).is_ok());
        d.mem_mb = 1;
        let err = validate(d.to_json().as_bytes(), &store).unwrap_err();
        assert!(err.to_string().contains("device memory"), "{err}");
    }

    #[test]
    fn staged_artefacts_are_hashed_too() {
        let mut store = Artefacts::default();
        let bytes = vadd().encode();
        store.stage("inputs", bytes.clone()).unwrap();
        let mut d = JobDescriptor::inline("j1", &vadd());
        d.payload_b64 = None;
        d.artefact = Some("inputs".into());
        assert!(validate(d.to_json().as_bytes(), &store).is_ok());
        d.bytes_hash = sha256_hex(b"other");
        assert_eq!(
            validate(d.to_json().as_bytes(), &store)
                .unwrap_err()
                .reason(),
            "HASH"
        );
    }
}
