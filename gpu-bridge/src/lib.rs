#![doc = include_str!("../README.md")]
#![cfg_attr(not(feature = "cuda"), forbid(unsafe_code))]
#![cfg_attr(feature = "cuda", deny(unsafe_code))]
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

mod artefact;
mod bridge;
mod clock;
mod command;
mod config;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod descriptor;
mod discovery;
mod error;
mod events;
mod executor;
mod gpu;
mod health;
mod job;
mod lease;
pub mod limits;
mod log;
mod nodes;
pub mod ptx;
mod selftest;
mod serve;
mod sm_count;
mod store;
mod telemetry;
mod usage;
mod workload;

pub use artefact::{Artefacts, MAX_ARTEFACTS};
pub use bridge::{BridgeState, GpuBridge, GpuContext, WORKER_TICK};
pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{Command, Renewal};
pub use config::{BridgeConfig, ConfigError};
pub use cpu::CpuExecutor;
#[cfg(feature = "cuda")]
pub use cuda::{CudaExecutor, CudaUnavailable};
pub use descriptor::{GpuDescriptor, GpuSample, valid_id};
pub use discovery::{
    DiscoveryError, FaultSink, GpuSource, Injection, MAX_MOCK_GPUS, MockSource, NVML_LIBRARIES,
    NvmlSource,
};
pub use error::{BridgeError, EDQUOT};
pub use executor::{ExecError, ExecOutput, Executor, TOLERANCE, compare};
pub use gpu::{
    Dispatch, GpuState, JobResult, JobSummary, MAX_RESULT_VALUES, RunTicket, Totals, Watch,
    describe,
};
pub use gpu_contract::{
    BadStatusLine, GpuProcess, Health, LeaseUsage, StatsLine, StatusLine, Telemetry,
};
pub use health::{Action, Fault, HealthState, Policy, PolicyError};
pub use job::{DEFAULT_TIMEOUT_MS, JobDescriptor, Launch, ValidatedJob, sha256_hex, validate};
pub use lease::{ActiveLease, GpuLease, Grant, Handover, LeaseBook, LeaseEnd, LeaseRequest};
pub use log::{Actor, EventLog, LogSink};
pub use nodes::{GpuFile, GpuNode};
pub use selftest::{SelftestReport, best_executors, fallback_executor, selftest};
pub use serve::{BridgeAudit, ServeOptions, policy, server};
pub use sm_count::{SmCounts, format_uuid};
pub use store::{JOB_RECORDS, STATE_FILE, StateError};
pub use telemetry::{Activity, MOCK_BUSY_POWER_W, Reading};
pub use usage::UsageBook;
pub use workload::{Check, Kernel, Workload, check_ptx, matmul, output_bytes, vadd};
