//! Sampling a server's memory during a run: `VmRSS` and `VmHWM` from
//! `/proc/PID/status`, polled on a timer. It only reads; a process that
//! goes away is noted (a crashed server), never an error of the run.

use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often `/proc/PID/status` is read: fine enough to catch a burst of
/// buffers, coarse enough to cost nothing next to the load.
pub const POLL: Duration = Duration::from_millis(50);

/// One reading of `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSample {
    /// Resident set size now, in KiB.
    pub rss_kib: u64,
    /// Peak resident set size since the process started, in KiB.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` out of a `/proc/PID/status` text.
pub fn parse_status(status: &str) -> Option<MemSample> {
    let field = |name: &str| {
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kb = rest.trim().strip_suffix("kB")?;
            kb.trim().parse::<u64>().ok()
        })
    };
    Some(MemSample {
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
    })
}

/// The server's memory over a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryReport {
    /// The process sampled.
    pub pid: u32,
    /// `VmRSS` at the first sample, before any connection.
    pub start_rss_kib: u64,
    /// Largest `VmRSS` seen during the run.
    pub peak_rss_kib: u64,
    /// `VmHWM` at the last sample: the peak over the process's whole life,
    /// setup included.
    pub hwm_kib: u64,
    /// Samples taken.
    pub samples: u64,
    /// The process was gone before the run ended.
    pub exited: bool,
}

/// A running sampler; [`MemWatch::finish`] stops it.
#[derive(Debug)]
pub struct MemWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Option<MemoryReport>>,
}

impl MemWatch {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let path = format!("/proc/{pid}/status");
        let task = tokio::spawn(async move {
            let mut report: Option<MemoryReport> = None;
            let mut tick = tokio::time::interval(POLL);
            loop {
                tick.tick().await;
                // Read once more after the stop flag so the end is covered.
                let last = flag.load(Ordering::Relaxed);
                match std::fs::read_to_string(&path)
                    .ok()
                    .as_deref()
                    .and_then(parse_status)
                {
                    Some(s) => {
                        let r = report.get_or_insert(MemoryReport {
                            pid,
                            start_rss_kib: s.rss_kib,
                            peak_rss_kib: 0,
                            hwm_kib: 0,
                            samples: 0,
                            exited: false,
                        });
                        r.peak_rss_kib = r.peak_rss_kib.max(s.rss_kib);
                        r.hwm_kib = r.hwm_kib.max(s.hwm_kib);
                        r.samples += 1;
                    }
                    None => {
                        if let Some(r) = report.as_mut() {
                            r.exited = true;
                        }
                        return report;
                    }
                }
                if last {
                    return report;
                }
            }
        });
        MemWatch { stop, task }
    }

    /// Stops sampling; `None` if the process could never be read.
    pub async fn finish(self) -> Option<MemoryReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tdiod\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  312340 kB\nVmSize:\t  247816 kB\nVmHWM:\t    9876 kB\n\
        VmRSS:\t    5432 kB\nRssAnon:\t    1234 kB\nThreads:\t4\n";

    #[test]
    fn reads_rss_and_hwm() {
        assert_eq!(
            parse_status(STATUS),
            Some(MemSample {
                rss_kib: 5432,
                hwm_kib: 9876
            })
        );
    }

    #[test]
    fn a_kernel_thread_without_memory_fields_is_none() {
        assert_eq!(parse_status("Name:\tkthreadd\nState:\tS\n"), None);
        assert_eq!(parse_status("VmRSS:\tlots kB\nVmHWM:\t1 kB\n"), None);
    }

    #[tokio::test]
    async fn samples_this_process() {
        let w = MemWatch::start(std::process::id());
        tokio::time::sleep(POLL * 3).await;
        let r = w.finish().await.expect("our own /proc entry is readable");
        assert!(r.samples >= 2, "{r:?}");
        assert!(r.peak_rss_kib > 0 && r.hwm_kib >= r.peak_rss_kib, "{r:?}");
        assert!(!r.exited);
    }
}
