#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod audit;
mod client;
mod config;
mod error;
mod fs;
mod fs_server;
mod lock;
mod namespace;
mod node;
mod nodes;
mod policy;
mod replies;
mod role;
mod server;
mod ticket;

pub use audit::{Audit, AuditEvent, AuditKind, NoAudit};
pub use client::{Client, ClientError, Reply};
pub use config::{
    DEFAULT_MAX_FIDS, DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_MSIZE, MAX_AUTH_WRITE, MIN_CLIENT_MSIZE,
    ServerConfig,
};
pub use error::FsError;
pub use fs::{
    AT_REMOVEDIR, Attr, Caller, Filesystem, FsStat, Obj, SetAttr, SetTime, Timespec, check_name,
    dirent_type_of, file_type, qid_type_of, xattr_flags,
};
pub use fs_server::{FsServer, MAX_XATTR_SIZE};
pub use lock::{Lock, LockKind, LockOwner, LockTable, MAX_LOCKS, range_end};
pub use namespace::{Listed, MAX_NAME_LEN, Namespace, NodeId};
pub use node::{Access, Handle, Io, IoCtx, Node, NodeAttr, NodeKind, Token, slice_at};
pub use nodes::{
    AppendLog, CtlFile, CtlHandler, GeneratedFile, Generator, MemFile, NullFile, StaticFile,
    ZeroFile,
};
pub use policy::{AccessPolicy, AllowAll, Op, Ops, Rule, RulePolicy};
pub use replies::{FileBytes, Replies, SHARE_MIN};
pub use role::{Principal, Role};
pub use server::{Completion, Outcome, Server, SessionError, SessionId};
pub use ticket::{Claims, MAX_CLAIM_LEN, Ticket, TicketAuthority, TicketError, TicketId};

/// The buffer type of shared read payloads ([`Filesystem::read_shared`],
/// [`Replies`]), re-exported so providers need no second version of it.
pub use bytes;
/// The codec this engine speaks, re-exported so users need one dependency.
pub use secure9p_codec as codec;
