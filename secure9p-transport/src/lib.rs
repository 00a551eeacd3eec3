#![cfg_attr(feature = "std", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "std"),
    doc = "Moving 9P frames. Built without `std`: only the shared-memory [`ring`]."
)]
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod framing;
#[cfg(feature = "std")]
pub mod memfs;
#[cfg(feature = "std")]
pub mod observe;
pub mod ring;
#[cfg(feature = "std")]
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
