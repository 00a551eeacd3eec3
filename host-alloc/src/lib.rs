#![doc = include_str!("../README.md")]
// The unsafe items are the exported `malloc_conf` symbol and the one
// `mallctl` call of `flush_thread_cache`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

use std::cell::Cell;
use tikv_jemalloc_ctl::thread::{ThreadLocal, allocatedp, deallocatedp};

/// jemalloc, for the whole program that links this crate.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, as the crate's README gives them.
pub const CONF: &str = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:1";

/// [`CONF`] NUL-terminated, as jemalloc reads it.
const CONF_C: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:1\0";

/// The options jemalloc reads at its start.
// SAFETY: jemalloc reads this symbol once, when it initialises, as its
// `const char *malloc_conf`: a thin pointer to a NUL-terminated string that
// is static and never written. No other symbol of the program has this name
// (tikv-jemalloc-sys prefixes every jemalloc symbol with `_rjem_`).
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &u8 = &CONF_C[0];

/// Bytes a thread moves through the allocator (allocated plus freed)
/// after which [`idle`] hands its cache back: small enough that what an
/// idle worker keeps stays far under the 10 % of a server's start that
/// issue 17 allows, large enough that a busy worker (whose warm requests
/// allocate nothing) almost never flushes.
pub const IDLE_FLUSH_BYTES: u64 = 64 * 1024;

/// The least time between two flushes of one thread's cache: a busy worker
/// parks thousands of times a second, and emptying its cache each time
/// cost 10–15 % of a loaded server's requests/s.
pub const IDLE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

thread_local! {
    /// This thread's allocated and freed byte counters (jemalloc's own,
    /// read through pointers it hands out once per thread).
    static COUNTERS: Cell<Option<(ThreadLocal<u64>, ThreadLocal<u64>)>> =
        const { Cell::new(None) };
    /// Allocated plus freed bytes when this thread last flushed, and when.
    static FLUSHED_AT: Cell<u64> = const { Cell::new(0) };
    static FLUSHED_WHEN: Cell<Option<std::time::Instant>> = const { Cell::new(None) };
}

fn traffic() -> Option<u64> {
    let (allocated, freed) = match COUNTERS.get() {
        Some(c) => c,
        None => {
            let c = (allocatedp::read().ok()?, deallocatedp::read().ok()?);
            COUNTERS.set(Some(c));
            c
        }
    };
    Some(allocated.get().wrapping_add(freed.get()))
}

/// For a runtime's park hook (`tokio::runtime::Builder::on_thread_park`):
/// a thread about to sleep hands its jemalloc cache back to the shared
/// arenas, where the background thread returns the pages to the OS, if it
/// has moved at least [`IDLE_FLUSH_BYTES`] through the allocator since it
/// last did, and that was [`IDLE_FLUSH_INTERVAL`] ago or more. Without it a
/// worker that served 1,000 connections and went idle kept ~1 MiB of freed
/// memory in its cache for good. Costs two counter reads when there is
/// nothing to do. Whether it flushed.
pub fn idle() -> bool {
    let Some(now) = traffic() else {
        return false;
    };
    if now.wrapping_sub(FLUSHED_AT.get()) < IDLE_FLUSH_BYTES {
        return false;
    }
    let when = std::time::Instant::now();
    if FLUSHED_WHEN
        .get()
        .is_some_and(|last| when.duration_since(last) < IDLE_FLUSH_INTERVAL)
    {
        return false;
    }
    let flushed = flush_thread_cache();
    FLUSHED_AT.set(traffic().unwrap_or(now));
    FLUSHED_WHEN.set(Some(when));
    flushed
}

/// Empties this thread's jemalloc cache into the arenas
/// (`thread.tcache.flush`). Whether jemalloc did.
pub fn flush_thread_cache() -> bool {
    // SAFETY: `thread.tcache.flush` is a NUL-terminated static name of a
    // control that reads and writes nothing: jemalloc requires the old and
    // new pointers null and the new length 0 (it answers EPERM otherwise),
    // which is what is passed. It acts on the calling thread's own cache.
    #[allow(unsafe_code)]
    let r = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"thread.tcache.flush".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    r == 0
}

/// How often an idle runtime from [`runtime`] wakes its workers, so that a
/// flush [`idle`] put off (a worker that parked within
/// [`IDLE_FLUSH_INTERVAL`] of its last flush) still happens.
pub const IDLE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// A multi-thread tokio runtime (all drivers on) whose workers call
/// [`idle`] when they park: what the host binaries run on. One ticking task
/// per worker, all due at the same instants every [`IDLE_TICK`], wakes the
/// workers of an idle runtime (the one holding the timer runs one and the
/// others are woken to take the rest), so each parks again, and flushes,
/// after at most a tick.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .on_thread_park(|| {
            idle();
        })
        .build()?;
    wake_when_idle(&rt, workers);
    Ok(rt)
}

/// Spawns on `rt` one task per worker (`workers` of them) that ticks every
/// [`IDLE_TICK`], all at the same instants: for a runtime built elsewhere
/// whose park hook calls [`idle`] (a current-thread runtime: one).
pub fn wake_when_idle(rt: &tokio::runtime::Runtime, workers: usize) {
    let start = tokio::time::Instant::now() + IDLE_TICK;
    for _ in 0..workers.max(1) {
        rt.spawn(async move {
            let mut tick = tokio::time::interval_at(start, IDLE_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
            }
        });
    }
}

/// Runs `main` on [`runtime`] to its end: the `main` of a host binary
/// (named `name` in the one line it prints if the runtime cannot start).
pub fn block_on<F>(name: &str, main: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = std::process::ExitCode>,
{
    match runtime() {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("{name}: starting the runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CONF, CONF_C};

    #[test]
    fn the_exported_options_are_the_documented_ones_nul_terminated() {
        assert_eq!(CONF_C.strip_suffix(b"\0"), Some(CONF.as_bytes()));
        assert!(!CONF.contains('\0'));
    }

    /// Bytes in all threads' caches (`stats.arenas.<all>.tcache_bytes`).
    fn cached() -> usize {
        tikv_jemalloc_ctl::epoch::advance().expect("epoch");
        // SAFETY: a NUL-terminated name of a `size_t` statistic, read as one.
        #[allow(unsafe_code)]
        unsafe { tikv_jemalloc_ctl::raw::read::<usize>(b"stats.arenas.4096.tcache_bytes\0") }
            .expect("tcache_bytes")
    }

    /// After enough traffic `idle` flushes the thread's cache (the bytes
    /// cached fall by at least what this thread freed into it), and right
    /// after that it does not.
    #[test]
    fn idle_hands_a_busy_threads_cache_back() {
        std::thread::spawn(|| {
            // Blocks of every small size class, freed into this thread's cache.
            let blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![1u8; 8 + (i % 512) * 24]).collect();
            drop(blocks);
            let before = cached();
            assert!(super::idle(), "1 MiB or more moved: idle flushes");
            let after = cached();
            assert!(
                before >= after + 32 * 1024,
                "idle flushed this thread's cache: {before} -> {after} bytes cached"
            );
            let little: Vec<Vec<u8>> = (0..8).map(|_| vec![2u8; 256]).collect();
            drop(little);
            assert!(!super::idle(), "2 KiB moved since: nothing to do");
            let more: Vec<Vec<u8>> = (0..4096).map(|_| vec![3u8; 256]).collect();
            drop(more);
            // Enough moved again, but the last flush was just now; once
            // the interval has passed, idle flushes again.
            assert!(!super::idle(), "within the interval: no flush");
            std::thread::sleep(super::IDLE_FLUSH_INTERVAL);
            assert!(super::idle(), "after the interval: a flush");
            assert!(super::flush_thread_cache(), "an explicit flush succeeds");
        })
        .join()
        .expect("the test thread");
    }

    /// The runtime has one worker per CPU (unless TOKIO_WORKER_THREADS
    /// says otherwise) and one ticking task per worker, and runs a future
    /// to its end.
    #[test]
    fn the_runtime_ticks_once_per_worker() {
        let rt = super::runtime().expect("a runtime");
        let metrics = rt.metrics();
        let workers = metrics.num_workers();
        if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            assert_eq!(workers, cpus);
        }
        assert_eq!(metrics.num_alive_tasks(), workers, "one tick per worker");
        assert_eq!(rt.block_on(async { 7 }), 7);
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
