#![doc = include_str!("../README.md")]
// The one unsafe item is the exported `malloc_conf` symbol below.
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// jemalloc, for the whole program that links this crate.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, as the crate's README gives them.
pub const CONF: &str = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

/// [`CONF`] NUL-terminated, as jemalloc reads it.
const CONF_C: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// The options jemalloc reads at its start.
// SAFETY: jemalloc reads this symbol once, when it initialises, as its
// `const char *malloc_conf`: a thin pointer to a NUL-terminated string that
// is static and never written. No other symbol of the program has this name
// (tikv-jemalloc-sys prefixes every jemalloc symbol with `_rjem_`).
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &u8 = &CONF_C[0];

#[cfg(test)]
mod tests {
    use super::{CONF, CONF_C};

    #[test]
    fn the_exported_options_are_the_documented_ones_nul_terminated() {
        assert_eq!(CONF_C.strip_suffix(b"\0"), Some(CONF.as_bytes()));
        assert!(!CONF.contains('\0'));
    }

    /// jemalloc read the exported options: its background purging thread
    /// (off by default) runs in this process, which allocates through it.
    #[cfg(target_os = "linux")]
    #[test]
    fn jemalloc_runs_with_the_exported_options() {
        let v: Vec<u64> = (0..100_000).collect();
        assert_eq!(v.iter().sum::<u64>(), 4_999_950_000);
        drop(v);
        let threads = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
        let names: Vec<String> = threads
            .filter_map(|t| t.ok())
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("jemalloc_bg_thd")),
            "no jemalloc background thread among {names:?}"
        );
    }
}
