#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;

mod descriptor;
mod file;
mod health;
mod stats;
mod status;
mod telemetry;
mod usage;

pub use descriptor::{GpuDescriptor, MAX_ID_LEN, valid_id};
pub use file::{Access, GpuFile};
pub use health::{BadHealth, Health, MAX_REASON_LEN};
pub use stats::{BadStatsLine, MAX_STATS_LINE, StatsLine};
pub use status::{BadStatusLine, STATUS_VALUES, StatusLine};
pub use telemetry::{GpuProcess, Telemetry};
pub use usage::LeaseUsage;
