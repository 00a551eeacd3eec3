//! What a job computes: its decoded payload ([`Workload`]) and the CPU
//! reference kernels every executor's output is checked against.
//!
//! Payloads are UTF-8 JSON (inside the job's `payload_b64` or a staged
//! artefact), one schema per kernel, unknown fields refused:
//!
//! | kernel | payload |
//! |---|---|
//! | `vadd` | `{"a":[f32…],"b":[f32…]}`, equal lengths; out\[i] = a\[i] + b\[i] |
//! | `matmul` | `{"m":M,"k":K,"n":N,"a":[M·K f32, row-major],"b":[K·N f32, row-major]}`; out = a·b, M·N values |
//! | `ptx` | `{"ptx":"<PTX text>","entry":"<name>","a":[f32…],"b":[f32…],"check":"vadd"?}` |
//!
//! A `ptx` kernel has the signature of the shipped `vadd`:
//! `.entry <name>(.param .u64 a, .param .u64 b, .param .u64 out, .param .u32 n)`
//! with `out` holding `n = len(a)` floats. With `"check":"vadd"` its output
//! is compared with the CPU `vadd`.
//!
//! Matrix products accumulate with fused multiply-adds in `k` order, as the
//! shipped PTX does, so CPU and GPU agree bit for bit.

use crate::error::BridgeError;
use crate::limits::{MAX_ELEMENTS, MAX_ENTRY_LEN, MAX_MATMUL_DIM, MAX_PTX_BYTES};
use serde::{Deserialize, Serialize};

/// A kernel a job may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernel {
    /// Element-wise sum of two `f32` vectors.
    Vadd,
    /// Product of two small `f32` matrices.
    Matmul,
    /// The job's own PTX, with the `vadd` signature.
    Ptx,
}

impl Kernel {
    /// The kernel's name in descriptors and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Vadd => "vadd",
            Kernel::Matmul => "matmul",
            Kernel::Ptx => "ptx",
        }
    }
}

/// The reference a `ptx` job's output is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// out\[i] = a\[i] + b\[i].
    Vadd,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaddPayload {
    a: Vec<f32>,
    b: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatmulPayload {
    m: u32,
    k: u32,
    n: u32,
    a: Vec<f32>,
    b: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PtxPayload {
    ptx: String,
    entry: String,
    a: Vec<f32>,
    b: Vec<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<Check>,
}

/// A decoded, validated payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// `vadd` inputs.
    Vadd {
        /// First operand.
        a: Vec<f32>,
        /// Second operand, as long as `a`.
        b: Vec<f32>,
    },
    /// `matmul` inputs.
    Matmul {
        /// Rows of `a` and of the output.
        m: u32,
        /// Columns of `a`, rows of `b`.
        k: u32,
        /// Columns of `b` and of the output.
        n: u32,
        /// `m × k`, row-major.
        a: Vec<f32>,
        /// `k × n`, row-major.
        b: Vec<f32>,
    },
    /// A `ptx` job.
    Ptx {
        /// The PTX text (no NUL byte).
        ptx: String,
        /// The entry to launch.
        entry: String,
        /// First operand.
        a: Vec<f32>,
        /// Second operand, as long as `a`.
        b: Vec<f32>,
        /// What the output is checked against, if anything.
        check: Option<Check>,
    },
}

fn bad(msg: impl Into<String>) -> BridgeError {
    BridgeError::BadJob(msg.into())
}

fn check_vectors(a: &[f32], b: &[f32]) -> Result<(), BridgeError> {
    if a.is_empty() || a.len() > MAX_ELEMENTS {
        return Err(bad(format!(
            "vector length {} is outside 1..={MAX_ELEMENTS}",
            a.len()
        )));
    }
    if a.len() != b.len() {
        return Err(bad(format!(
            "operands differ in length: a has {}, b has {}",
            a.len(),
            b.len()
        )));
    }
    check_finite(a, "a")?;
    check_finite(b, "b")
}

fn check_finite(v: &[f32], name: &str) -> Result<(), BridgeError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(bad(format!("{name}[{i}] is not a finite f32"))),
        None => Ok(()),
    }
}

/// Whether `s` is a PTX identifier the bridge accepts as an entry name.
fn valid_entry(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b'$')
        && s.len() <= MAX_ENTRY_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

/// Checks PTX text before it goes near a driver: bounded, no NUL (the
/// driver takes a C string), and declaring the entry asked for.
pub fn check_ptx(ptx: &str, entry: &str) -> Result<(), BridgeError> {
    if ptx.len() > MAX_PTX_BYTES {
        return Err(bad(format!(
            "ptx of {} bytes exceeds {MAX_PTX_BYTES}",
            ptx.len()
        )));
    }
    if let Some(i) = ptx.bytes().position(|b| b == 0) {
        return Err(bad(format!("ptx contains a NUL byte at {i}")));
    }
    if !valid_entry(entry) {
        return Err(bad(format!("entry {entry:?} is not a PTX identifier")));
    }
    let declares = ptx.match_indices(".entry").any(|(i, _)| {
        let rest = ptx.get(i + ".entry".len()..).unwrap_or_default();
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
            .collect();
        name == entry
    });
    if !declares {
        return Err(bad(format!("ptx declares no .entry {entry}")));
    }
    Ok(())
}

impl Workload {
    /// Decodes and validates the payload of a `kernel` job.
    pub fn decode(kernel: Kernel, bytes: &[u8]) -> Result<Self, BridgeError> {
        let schema = |e: serde_json::Error| bad(format!("{} payload: {e}", kernel.name()));
        match kernel {
            Kernel::Vadd => {
                let p: VaddPayload = serde_json::from_slice(bytes).map_err(schema)?;
                check_vectors(&p.a, &p.b)?;
                Ok(Workload::Vadd { a: p.a, b: p.b })
            }
            Kernel::Matmul => {
                let p: MatmulPayload = serde_json::from_slice(bytes).map_err(schema)?;
                for (name, d) in [("m", p.m), ("k", p.k), ("n", p.n)] {
                    if d == 0 || d > MAX_MATMUL_DIM {
                        return Err(bad(format!(
                            "matmul {name} = {d} is outside 1..={MAX_MATMUL_DIM}"
                        )));
                    }
                }
                let (m, k, n) = (p.m as usize, p.k as usize, p.n as usize);
                if p.a.len() != m * k {
                    return Err(bad(format!(
                        "matmul a has {} values, m·k = {}",
                        p.a.len(),
                        m * k
                    )));
                }
                if p.b.len() != k * n {
                    return Err(bad(format!(
                        "matmul b has {} values, k·n = {}",
                        p.b.len(),
                        k * n
                    )));
                }
                check_finite(&p.a, "a")?;
                check_finite(&p.b, "b")?;
                Ok(Workload::Matmul {
                    m: p.m,
                    k: p.k,
                    n: p.n,
                    a: p.a,
                    b: p.b,
                })
            }
            Kernel::Ptx => {
                let p: PtxPayload = serde_json::from_slice(bytes).map_err(schema)?;
                check_ptx(&p.ptx, &p.entry)?;
                check_vectors(&p.a, &p.b)?;
                Ok(Workload::Ptx {
                    ptx: p.ptx,
                    entry: p.entry,
                    a: p.a,
                    b: p.b,
                    check: p.check,
                })
            }
        }
    }

    /// The payload bytes of this workload (the inverse of [`Workload::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        let json = match self {
            Workload::Vadd { a, b } => serde_json::to_vec(&VaddPayload {
                a: a.clone(),
                b: b.clone(),
            }),
            Workload::Matmul { m, k, n, a, b } => serde_json::to_vec(&MatmulPayload {
                m: *m,
                k: *k,
                n: *n,
                a: a.clone(),
                b: b.clone(),
            }),
            Workload::Ptx {
                ptx,
                entry,
                a,
                b,
                check,
            } => serde_json::to_vec(&PtxPayload {
                ptx: ptx.clone(),
                entry: entry.clone(),
                a: a.clone(),
                b: b.clone(),
                check: *check,
            }),
        };
        json.unwrap_or_default()
    }

    /// The kernel this workload runs.
    pub fn kernel(&self) -> Kernel {
        match self {
            Workload::Vadd { .. } => Kernel::Vadd,
            Workload::Matmul { .. } => Kernel::Matmul,
            Workload::Ptx { .. } => Kernel::Ptx,
        }
    }

    /// Values in the output.
    pub fn output_len(&self) -> usize {
        match self {
            Workload::Vadd { a, .. } | Workload::Ptx { a, .. } => a.len(),
            Workload::Matmul { m, n, .. } => *m as usize * *n as usize,
        }
    }

    /// Device memory the job needs: inputs plus output, bytes.
    pub fn device_bytes(&self) -> u64 {
        let values = match self {
            Workload::Vadd { a, b } | Workload::Ptx { a, b, .. } => a.len() + b.len(),
            Workload::Matmul { a, b, .. } => a.len() + b.len(),
        } + self.output_len();
        values as u64 * 4
    }

    /// The CPU reference output, or `None` for a `ptx` job with no check.
    /// `keep_going` is asked between rows of work; when it says no the
    /// computation stops and `None` comes back.
    pub fn reference(&self, keep_going: &mut dyn FnMut() -> bool) -> Option<Vec<f32>> {
        match self {
            Workload::Vadd { a, b }
            | Workload::Ptx {
                a,
                b,
                check: Some(Check::Vadd),
                ..
            } => Some(vadd(a, b)),
            Workload::Ptx { check: None, .. } => None,
            Workload::Matmul { m, k, n, a, b } => matmul(*m, *k, *n, a, b, keep_going),
        }
    }
}

/// `out[i] = a[i] + b[i]` over the shorter of the two.
pub fn vadd(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `a (m×k) · b (k×n)`, row-major, accumulating `acc = fma(a, b, acc)` in
/// `k` order from 0.0 (what the shipped PTX does). Returns `None` if the
/// operand lengths do not match the dimensions or `keep_going` says stop.
pub fn matmul(
    m: u32,
    k: u32,
    n: u32,
    a: &[f32],
    b: &[f32],
    keep_going: &mut dyn FnMut() -> bool,
) -> Option<Vec<f32>> {
    let (m, k, n) = (m as usize, k as usize, n as usize);
    if a.len() != m.checked_mul(k)? || b.len() != k.checked_mul(n)? {
        return None;
    }
    let mut out = Vec::with_capacity(m * n);
    for row in a.chunks_exact(k.max(1)).take(m) {
        if !keep_going() {
            return None;
        }
        for col in 0..n {
            let column = b.iter().skip(col).step_by(n.max(1));
            out.push(
                row.iter()
                    .zip(column)
                    .fold(0.0f32, |acc, (x, y)| x.mul_add(*y, acc)),
            );
        }
    }
    Some(out)
}

/// The bytes an output is hashed as: each value little-endian, in order.
pub fn output_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go() -> impl FnMut() -> bool {
        || true
    }

    #[test]
    fn vadd_by_hand() {
        assert_eq!(
            vadd(&[1.0, 2.5, -3.0], &[10.0, 0.5, 3.0]),
            vec![11.0, 3.0, 0.0]
        );
    }

    #[test]
    fn matmul_by_hand() {
        // [1 2 3]   [ 7  8]   [ 58  64]
        // [4 5 6] · [ 9 10] = [139 154]
        //           [11 12]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        assert_eq!(
            matmul(2, 3, 2, &a, &b, &mut go()),
            Some(vec![58.0, 64.0, 139.0, 154.0])
        );
        // Identity leaves b unchanged.
        let id = [1.0, 0.0, 0.0, 1.0];
        let b2 = [0.25, -2.0, 3.5, 8.0];
        assert_eq!(matmul(2, 2, 2, &id, &b2, &mut go()), Some(b2.to_vec()));
        // Mismatched lengths are refused, not indexed out of bounds.
        assert_eq!(matmul(2, 3, 2, &a, &b[..5], &mut go()), None);
        // Stopping early gives no result.
        assert_eq!(matmul(2, 3, 2, &a, &b, &mut || false), None);
    }

    #[test]
    fn payloads_round_trip_and_are_validated() {
        let w = Workload::Matmul {
            m: 1,
            k: 2,
            n: 1,
            a: vec![1.0, 2.0],
            b: vec![3.0, 4.0],
        };
        assert_eq!(Workload::decode(Kernel::Matmul, &w.encode()).unwrap(), w);
        let cases: &[(Kernel, &str, &str)] = &[
            (Kernel::Vadd, r#"{"a":[1],"b":[1,2]}"#, "differ in length"),
            (Kernel::Vadd, r#"{"a":[],"b":[]}"#, "outside 1..="),
            (Kernel::Vadd, r#"{"a":[1e39],"b":[1]}"#, "not a finite"),
            (Kernel::Vadd, r#"{"a":[1],"b":[1],"c":2}"#, "unknown field"),
            (
                Kernel::Matmul,
                r#"{"m":0,"k":1,"n":1,"a":[],"b":[1]}"#,
                "m = 0",
            ),
            (
                Kernel::Matmul,
                r#"{"m":1,"k":2,"n":1,"a":[1],"b":[1,2]}"#,
                "m·k = 2",
            ),
            (
                Kernel::Ptx,
                r#"{"ptx":".entry f(","entry":"g","a":[1],"b":[1]}"#,
                "no .entry g",
            ),
            (
                Kernel::Ptx,
                r#"{"ptx":".entry f(\u0000","entry":"f","a":[1],"b":[1]}"#,
                "NUL byte",
            ),
            (
                Kernel::Ptx,
                r#"{"ptx":".entry f(","entry":"f x","a":[1],"b":[1]}"#,
                "not a PTX identifier",
            ),
        ];
        for (kernel, json, want) in cases {
            let err = Workload::decode(*kernel, json.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn output_bytes_are_little_endian() {
        assert_eq!(output_bytes(&[1.0]), vec![0, 0, 0x80, 0x3f]);
    }
}
