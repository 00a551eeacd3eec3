//! `/proc/boot`: the banner, version, limits, current budget and installed
//! providers, generated at each open from state the hive keeps current.

use crate::config::HiveConfig;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use spin::Mutex;

/// What `/proc/boot` shows.
#[derive(Debug, Clone)]
pub(crate) struct BootInfo {
    pub(crate) config: HiveConfig,
    pub(crate) started: u64,
    pub(crate) ticket_ttl_s: u64,
    pub(crate) ops: Option<u64>,
    pub(crate) workers: usize,
    pub(crate) gpus: Vec<String>,
}

/// The boot state, shared between the hive and the generated file.
pub(crate) type SharedBoot = Arc<Mutex<BootInfo>>;

impl BootInfo {
    /// The file's text: a banner line, then one `key value` line each.
    pub(crate) fn render(&self) -> Vec<u8> {
        let c = &self.config;
        let mut t = String::with_capacity(512);
        // Writing to a String cannot fail.
        let _ = writeln!(
            t,
            "Cohesix NineDoor {} (Secure9P, 9P2000.L)",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(t, "version ninedoor/{}", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(t, "started {}", self.started);
        let _ = writeln!(t, "msize.max {}", c.max_msize);
        let _ = writeln!(t, "fids.max {}", c.max_fids);
        let _ = writeln!(t, "inflight.max {}", c.max_inflight);
        let _ = writeln!(t, "fids.strict {}", c.strict_fids);
        let _ = writeln!(t, "ctl.line.max {}", c.max_ctl_line);
        let _ = writeln!(t, "log.ring.bytes {}", c.log_capacity);
        let _ = writeln!(t, "telemetry.ring.bytes {}", c.telemetry_capacity);
        let _ = writeln!(t, "telemetry.write.max {}", c.telemetry_max_write);
        let _ = writeln!(t, "workers.max {}", c.max_workers);
        let _ = writeln!(t, "workers.live {}", self.workers);
        let _ = writeln!(t, "ticket.ttl_s {}", self.ticket_ttl_s);
        let _ = writeln!(t, "ticket.ttl_s.max {}", c.max_ticket_ttl_s);
        match self.ops {
            Some(n) => {
                let _ = writeln!(t, "worker.ops {n}");
            }
            None => t.push_str("worker.ops unlimited\n"),
        }
        t.push_str("provider proc /proc\n");
        t.push_str("provider queen /queen\n");
        t.push_str("provider log /log\n");
        t.push_str("provider worker /worker\n");
        t.push_str("provider gpu /gpu");
        for id in &self.gpus {
            t.push(' ');
            t.push_str(id);
        }
        t.push('\n');
        t.into_bytes()
    }
}
