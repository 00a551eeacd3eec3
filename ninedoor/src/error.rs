//! `HiveError`: why building a hive or installing providers failed. Errors
//! of clients' requests are `FsError`s on the wire, never this.

use alloc::string::String;
use secure9p_core::{FsError, TicketError};

/// Why a hive could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HiveError {
    /// A [`HiveConfig`](crate::HiveConfig) value cannot work.
    #[error("config field {field}: {why}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A ticket could not be minted.
    #[error("ticket: {0}")]
    Ticket(#[from] TicketError),
    /// The namespace refused a change.
    #[error("namespace: {0}")]
    Namespace(#[from] FsError),
    /// A GPU id is not a usable name.
    #[error("gpu id {id:?} is not 1 to 64 characters of [A-Za-z0-9_-]")]
    BadGpuId {
        /// The id as given.
        id: String,
    },
    /// A GPU with this id is already installed (or listed twice).
    #[error("gpu {0} is already installed")]
    GpuExists(String),
    /// No live worker has this id.
    #[error("no worker {0}")]
    NoWorker(String),
    /// The [`IdSource`](crate::IdSource) kept returning ids already in use.
    #[error("ticket id source returned ids already in use")]
    IdReused,
}
