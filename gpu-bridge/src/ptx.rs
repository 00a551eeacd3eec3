//! The PTX the bridge ships: hand-written kernels for `vadd` and `matmul`
//! at PTX ISA 6.0 for `sm_50`, so any driver from CUDA 9 on can JIT them
//! for whatever GPU it drives. `tests/ptxas.rs` assembles them with NVIDIA's
//! `ptxas` where one is installed.

/// `vadd(a, b, out, n)`: `out[i] = a[i] + b[i]` for `i < n`.
pub const VADD: &str = include_str!("../ptx/vadd.ptx");

/// The entry name of [`VADD`].
pub const VADD_ENTRY: &str = "vadd";

/// `matmul(a, b, c, m, k, n)`: `c = a·b`, row-major, fused multiply-adds
/// in `k` order.
pub const MATMUL: &str = include_str!("../ptx/matmul.ptx");

/// The entry name of [`MATMUL`].
pub const MATMUL_ENTRY: &str = "matmul";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::check_ptx;

    #[test]
    fn shipped_ptx_passes_the_bridge_checks() {
        assert!(check_ptx(VADD, VADD_ENTRY).is_ok());
        assert!(check_ptx(MATMUL, MATMUL_ENTRY).is_ok());
        assert!(VADD.contains(".version 6.0") && VADD.contains(".target sm_50"));
    }
}
