//! The protection-domain ABI of the Cohesix Microkit system, shared by the
//! three places PD code runs: the aarch64 runtime (`cohesix-rt`), the hosted
//! simulator (`cohesix-sim`) and the PD logic itself (`cohesix-pds`).
//!
//! A PD is a [`Handler`] with Microkit's three entry points; everything it
//! may do to the outside world goes through a [`Context`]. The runtime backs
//! a `Context` with seL4 system calls, the simulator with in-process queues,
//! so the same handler code runs in both. Memory regions reach a PD as
//! `&[AtomicU32]` (see [`Regions`]) and are read through bounds-checked
//! [`Window`]s. This crate has no `unsafe` and no allocation.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod channel;
mod fault;
mod handler;
pub mod microkit;
mod msginfo;
mod window;

pub use channel::Channel;
pub use fault::{Child, Fault, FaultKind};
pub use handler::{Context, Handler, REFUSED, Regions};
pub use msginfo::MsgInfo;
pub use window::{Window, WindowError};
