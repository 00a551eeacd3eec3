//! NineDoor's link to one GPU bridge, sans-IO: a state machine that takes
//! the hive's forwarded `/gpu` requests, frames from the bridge, connection
//! events and time, and gives back frames to send, connection actions and
//! completions. It owns no socket and no clock, so the host daemon drives
//! it over tokio and the seL4 image's NineDoor PD over its ring pair to the
//! network PD, which makes the TCP connection (one implementation, two
//! homes; rustls and quinn-proto are the pattern).
//!
//! What it does, in the order a connection lives:
//! - **Connect**: while down it asks for a connection ([`LinkEvent::Connect`])
//!   at most every backoff interval (doubling from
//!   [`LinkConfig::min_backoff_ms`] to [`LinkConfig::max_backoff_ms`]); one
//!   that does not come up within [`LinkConfig::timeout_ms`] counts as
//!   failed.
//! - **Set up**: `Tversion`, then an attach under NineDoor's own bridge
//!   identity ([`mirror`]), then the bridge's `/gpu` listing and each GPU's
//!   `info` ([`LinkEvent::Gpus`]: the embedder installs what is new).
//! - **Serve**: each open of a forwarded file gets its own fid on the
//!   bridge, attached under the requester's mirror ticket and opened on
//!   first use, reopened after a reconnect, clunked when the hive's fid is
//!   ([`BridgeLink::close_open`]); the requests of one open run in order. A
//!   `lease`/`release` command runs on a fid of its own: the write, then
//!   the reply the bridge left for that fid.
//! - **Watch**: an idle connection is probed every
//!   [`LinkConfig::probe_ms`]; a request unanswered for
//!   [`LinkConfig::timeout_ms`], a frame that does not decode, a reply to a
//!   tag in flight nowhere, or the transport closing loses the link
//!   ([`LinkEvent::Disconnect`]): everything in flight completes with
//!   `EHOSTUNREACH` (the timed-out request itself with `ETIMEDOUT`), and so
//!   does every request while the link is down, at once. Nothing waits on a
//!   bridge that went away.
//!
//! Every forwarded request is completed exactly once
//! ([`LinkEvent::Complete`]). Bounds: requests in flight on the connection
//! ([`LinkConfig::max_inflight`], more wait their turn here) and fids held
//! there ([`LinkConfig::max_fids`], past which an open fails with
//! `EMFILE`).

mod link;
pub mod mirror;
mod target;

pub use link::BridgeLink;
#[cfg(feature = "std")]
pub(crate) use link::failed;
pub use target::{BridgeTarget, MAX_ADDR_LEN, MAX_PREFIX_LEN};

use crate::GpuDescriptor;
use alloc::string::String;
use alloc::vec::Vec;
use secure9p_core::{Completion, Token};

/// The msize asked of a bridge: its own cap (1 MiB of payload), so a job
/// descriptor of up to the bridge's 1 MiB write limit fits one write.
pub const BRIDGE_MSIZE: u32 = 1024 * 1024 + 24;

/// The most bytes read back as a command's reply (one line).
pub const MAX_COMMAND_REPLY: u32 = 4096;

/// The most bytes of one `info` file read at listing (one JSON line).
pub const MAX_INFO: u32 = 64 * 1024;

/// Limits and timers of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// The msize proposed (the bridge may answer less).
    pub msize: u32,
    /// How long a connection attempt, or any request on the bridge, may
    /// take before the link gives the connection up, ms.
    pub timeout_ms: u64,
    /// How long the connection may be idle before a probe, ms.
    pub probe_ms: u64,
    /// First wait before reconnecting, ms.
    pub min_backoff_ms: u64,
    /// Longest wait between reconnection attempts, ms: how late, at worst,
    /// GPUs come back after their bridge does.
    pub max_backoff_ms: u64,
    /// Requests kept in flight on the connection: below the bridge's
    /// per-session limit (64 by default), so a burst queues here instead of
    /// being refused there with `EAGAIN`.
    pub max_inflight: usize,
    /// Fids held on the connection (NineDoor's own, one per open): below
    /// the bridge's per-session limit (1024 by default).
    pub max_fids: usize,
    /// The most GPUs taken from one bridge's listing.
    pub max_gpus: usize,
    /// How often each GPU's `info` is read again for its health, ms (0:
    /// never; the listing after each connection reads it too). A change
    /// is reported as [`LinkEvent::Health`].
    pub health_ms: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            msize: BRIDGE_MSIZE,
            timeout_ms: 5_000,
            probe_ms: 1_000,
            min_backoff_ms: 100,
            max_backoff_ms: 2_000,
            max_inflight: 48,
            max_fids: 960,
            max_gpus: 64,
            health_ms: 5_000,
        }
    }
}

/// What the embedder must do for a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Open a connection to the bridge now; tell the link with
    /// [`BridgeLink::connected`] or [`BridgeLink::disconnected`].
    Connect,
    /// Close the connection: the link gave it up (it is already down for
    /// the link; frames still arriving from it must not be handed in).
    Disconnect,
    /// The bridge's GPUs, as it describes them, after each (re)connection:
    /// install the ones not yet installed, and mark them all reachable.
    Gpus(Vec<GpuDescriptor>),
    /// The connection is gone (whoever closed it): this bridge's GPUs are
    /// unreachable (`Hive::set_gpu_reachable`) until the next [`LinkEvent::Gpus`].
    Lost,
    /// Finish a forwarded request: for a `lease`/`release` command, hand
    /// `reply` (the bridge's answer line) to `Hive::set_gpu_reply` first.
    Complete {
        /// The request's token.
        token: Token,
        /// Its result.
        result: Completion,
        /// A command's reply, read back from its fid.
        reply: Option<Vec<u8>>,
    },
    /// A line for the operator's log (connection up or lost, why).
    Note(String),
    /// A GPU's health, as its bridge's `info` says, changed (or is not
    /// `ok` when the link first learns it): for the audit log.
    Health {
        /// The GPU's id on the bridge.
        gpu: String,
        /// What `info` says now (`ok`, `quarantined (<reason>)`).
        health: String,
        /// What it said before, if the link knew.
        was: Option<String>,
    },
}
