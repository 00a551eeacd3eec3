//! A small runtime for seL4 Microkit protection domains on aarch64, in
//! stable Rust, without libmicrokit, libsel4 or a custom target: the
//! built-in `aarch64-unknown-none` target, Microkit 2.3.0's fixed layout
//! (`cohesix_abi::microkit`) and the seL4 MCS system-call ABI.
//!
//! What it provides, and the source each piece follows:
//! - `_start` (the ELF entry; Microkit's tool sets the stack pointer to the
//!   top of the PD's stack before it runs: `capdl/builder.rs`, `sp =
//!   pd_stack_top()`), a heap, a panic handler that prints and faults;
//! - the `microkit_*` variables the tool patches (`symbols.rs`), in `.data`
//!   so they have file bytes to patch, read volatile so the compiler never
//!   folds their build-time zeros;
//! - [`setvars!`]: `setvar_vaddr`/`setvar_size` symbols, turned into the
//!   region slices `cohesix_abi::Regions` hands out;
//! - the handler loop of libmicrokit's `main.c` (`Recv` on the input
//!   endpoint, `ReplyRecv` after a protected call, `NBSendRecv` for a
//!   passive PD's signal to the monitor, IRQs acked once at start), with
//!   badges decoded as there: bit 63 a protected call on channel `badge &
//!   0x3f`, bit 62 a child's fault, else one bit per notified channel;
//! - [`Context`](cohesix_abi::Context) on seL4: `Signal`, `Call`, the IRQ
//!   handler `Ack` invocation, message registers in the IPC buffer;
//! - a virtio DMA `Hal` for the device PD (`virtio` module).
//!
//! Every `unsafe` of the Cohesix image lives in this crate. On any other
//! target the crate is empty, so the workspace builds and lints on a host.

#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod pd;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod virtio;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use pd::*;
