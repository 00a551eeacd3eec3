//! The Cohesix Microkit system on a Linux host: [`system`] parses and
//! checks the `.system` file (what `cargo xtask check` runs), [`Simulator`]
//! runs any system's PDs as handlers in one deterministic thread, and
//! [`hive`] boots `cohesix-os/cohesix.system` with the real PD handlers
//! and a host pipe on the device PD, for the tests and for anyone who wants
//! to drive the hive without seL4.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod hive;
mod pipe;
mod sim;
pub mod system;

pub use pipe::{BridgePeer, HostPipe};
pub use sim::{Factory, PdEnv, PdState, SimError, SimHandler, Simulator};
pub use system::{System, SystemError};

/// The system file the image is built from.
pub const COHESIX_SYSTEM: &str = include_str!("../../cohesix.system");
