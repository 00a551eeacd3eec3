//! The host side of NineDoor (feature `std`): the hive served over TCP and
//! Unix sockets by `secure9p-transport`'s runners, with the real clock, the
//! OS random number generator, a config file, the hive key and the Queen's
//! ticket file. The `ninedoor` binary is a thin command line over
//! [`Host::start`]; `cohsh`'s demo starts the same host in-process.
//!
//! With GPU bridges configured ([`GpuSettings`]), `/gpu` is mirrored from
//! them over Secure9P TCP by [`BridgeForward`]: `forward` routes each
//! request to its bridge's `link` task, which drives the `no_std`
//! [`crate::bridge::BridgeLink`] (and [`crate::bridge::mirror`]: how the
//! requester's identity reaches the bridge) over a socket.
//!
//! With a TLS identity ([`TlsSettings`], `--tls-cert/--tls-key/--tls-ca`)
//! the TCP listener and the bridge links speak mutual TLS; without one, a
//! listener on a non-loopback address refuses to start unless told
//! `insecure_plain_tcp`.
//!
//! With a state directory ([`StateSettings`], `--state-dir`) the audit log
//! and the hive's state outlive the process: every reply whose request
//! logged something waits until a group-commit writer has appended and
//! `fsync`ed its lines and committed the state (see `docs/hive.md`).
//!
//! This module only moves frames and files; the hive logic stays in the
//! `no_std` library so a protection domain runs exactly the same code.

mod audit_files;
pub mod cert_files;
mod daemon;
mod durable;
mod engine;
mod error;
mod forward;
mod key;
mod link;
mod settings;
mod state_db;
mod ticket_file;
mod tls_args;

pub use daemon::{Host, unix_now};
pub use durable::MAX_GROUP_EVENTS;
pub use engine::{GpuForward, HiveEngine, NoBridge};
pub use error::HostError;
pub use forward::{BridgeForward, BridgeTarget};
pub use key::{OsIds, load_key, random_key, write_new_key};
pub use settings::{
    DEFAULT_BRIDGE_TIMEOUT_S, DEFAULT_LISTEN, DEFAULT_LOG_KEEP, DEFAULT_LOG_MAX_BYTES, GpuSettings,
    HiveSettings, HostConfig, ServeSettings, StateSettings, TlsSettings,
};
pub use ticket_file::{TICKET_ENV, default_ticket_path, read_ticket, write_ticket};

/// Waits for Ctrl-C or SIGTERM. The SIGTERM handler is installed when this
/// is called, not when the future is first polled: a process calls it
/// before it says it is up, so a SIGTERM sent right after that stops it
/// cleanly instead of killing it. Call it inside the tokio runtime.
pub fn stop_signal() -> impl core::future::Future<Output = ()> {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let term = async {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => core::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
}
pub use tls_args::TlsArgs;
