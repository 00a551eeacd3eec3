#![doc = include_str!("../README.md")]
// `no_std` + `alloc` unless the host side (`std` feature) is built.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod audit;
mod boot;
pub mod bridge;
mod command;
mod config;
mod ctl;
mod error;
mod gpu;
mod hive;
#[cfg(feature = "std")]
pub mod host;
mod ids;
mod lease;
mod lifecycle;
mod log;
mod policy;
mod state;
mod telemetry;
mod worker;

pub use command::{Command, SpawnRole};
pub use config::{
    DEFAULT_LOG_CAPACITY, DEFAULT_MAX_CTL_LINE, DEFAULT_MAX_TICKET_TTL_S, DEFAULT_MAX_WORKERS,
    DEFAULT_QUEEN_TICKET_TTL_S, DEFAULT_TELEMETRY_CAPACITY, DEFAULT_TELEMETRY_MAX_WRITE,
    DEFAULT_TICKET_TTL_S, HiveConfig, MAX_ID_LEN,
};
pub use error::HiveError;
pub use gpu::{GpuClosed, GpuDescriptor, GpuFile, GpuOp, GpuOrigin, GpuRequest};
pub use hive::{ANY_GPU, BridgeEvent, BridgeGpus, Handled, Hive, MAX_BRIDGES, MAX_PLACEMENT_TRIES};
pub use ids::IdSource;
pub use lifecycle::WorkerEvent;
pub use log::errno_name;
pub use policy::cohesix_policy;
pub use state::{HiveState, Restored, SpawnBudget, StateChange, WorkerRecord};
pub use worker::{RingUsage, WorkerInfo};

/// The engine this crate serves with, re-exported so embedders need one dependency.
pub use secure9p_core;
