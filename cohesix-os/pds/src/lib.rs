//! The Cohesix protection domains, as [`Handler`](cohesix_abi::Handler)s
//! that run unchanged on seL4 (through `cohesix-rt`) and in the hosted
//! simulator (`cohesix-sim`):
//!
//! - [`NineDoorPd`]: the hive (`ninedoor::Hive`), serving 9P frames from
//!   the host PDs' ring pairs and from each worker slot's; the parent of
//!   the worker PDs (spawn, kill, faults); the GPU bridge link's home; at
//!   boot it spawns the heartbeat workers through its own `/queen/ctl` and
//!   hands each its ticket by protected call;
//! - [`GpuWorkerPd`]: the GPU worker (`Worker:GPU`): submits a `vadd` it
//!   hashes itself to the GPU of its lease through `/gpu`, and checks the
//!   result;
//! - [`HeartbeatPd`]: a heartbeat worker: fetches its ticket, attaches over
//!   its rings, appends boot and heartbeat lines to its telemetry, and
//!   checks that another worker's telemetry is refused to it;
//! - [`TimerPd`]: the tick: an interrupt every [`TICK_S`] seconds from
//!   the board's timer device (a `cohesix_drivers::TickSource`: QEMU
//!   `virt`'s PL031 RTC, the ZCU102's Triple Timer Counter), passed on to
//!   every worker as a notification;
//! - [`TcpPort`]: the network PD's host port: 9P over TCP connections on a
//!   `smoltcp` interface, and the outbound connection to the GPU bridge;
//! - [`bridge_ring`]: what NineDoor's GPU bridge link and the network PD's
//!   outbound connection say to each other;
//! - [`DevicePd`]: carries 9P frames between a [`HostPort`] (the virtio
//!   console or the ZCU102's Cadence UART on hardware, a pipe in the
//!   simulator) and NineDoor.
//!
//! The fixed wiring the `.system` file must match (channel ids, region
//! symbols, worker ids) is in [`wiring`]. No `unsafe`; `no_std` + `alloc`.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod bridge_home;
pub mod bridge_ring;
mod device;
mod frames;
mod gpuworker;
mod link;
pub mod mux;
mod ninedoor;
mod seed;
mod tcp;
pub mod ticket;
mod timer;
pub mod wiring;
mod worker;

pub use device::{BridgeEvent, DevicePd, HostPort, OneStream, PortEvent, Stream};
pub use frames::{FrameAssembler, FrameError};
pub use gpuworker::{BAD_JOB_ID, GpuWorkerPd, JOB_ID as GPU_JOB_ID, vadd_descriptor};
pub use link::{Link, LinkError};
pub use ninedoor::{
    BOOT_EPOCH, MAX_HOST_SESSIONS, NineDoorPd, RESTART_LIMIT, RESTART_WINDOW_S, boot_hive,
};
pub use seed::{
    BRIDGE_KEY_AT, EPOCH_AT, FAULT_KNOB_MAGIC, FaultKnob, SEED_LEN, SEED_PAGE_LEN, SeedIds,
    boot_epoch, bridge_key, encode_boot_epoch, encode_bridge_key,
};
pub use tcp::{MAX_CONNECTIONS, TcpConfig, TcpPort};
pub use timer::{Page, TICK_S, TimerError, TimerPd};
pub use worker::HeartbeatPd;
