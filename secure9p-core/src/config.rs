//! Limits and switches of a server engine. Every limit has a safe default
//! and a reason; `SECURE9P.md` lists them.

use crate::role::Principal;

/// Default largest frame: 1 MiB plus the I/O header, what the Linux client
/// asks for at most over TCP, so a 1 MiB read fits one round trip.
pub const DEFAULT_MAX_MSIZE: u32 = 1024 * 1024 + 24;
/// Smallest msize a client may propose: below this not even an `Rgetattr`
/// or a 16-element `Rwalk` fits.
pub const MIN_CLIENT_MSIZE: u32 = 512;
/// Default fids per session: the Linux client holds a few per open file and
/// directory; 1024 covers a busy mount while bounding memory per session.
pub const DEFAULT_MAX_FIDS: usize = 1024;
/// Default deferred requests in flight per session: bounds the pending table
/// a slow provider can fill.
pub const DEFAULT_MAX_INFLIGHT: usize = 64;
/// Longest ticket accepted through an auth fid.
pub const MAX_AUTH_WRITE: usize = 1024;

/// Configuration of a [`Server`](crate::Server).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The largest msize negotiated (the reply is min(client, this)).
    pub max_msize: u32,
    /// Most fids one session may hold.
    pub max_fids: usize,
    /// Most deferred requests one session may have in flight.
    pub max_inflight: usize,
    /// Refuse any reuse of a fid number within a session: new fids must be
    /// numbered above every fid the session used before. Off by default,
    /// since the Linux client recycles numbers.
    pub strict_fids: bool,
    /// The principal of an attach that carries no ticket; `None` refuses such
    /// attaches with `EACCES`.
    pub anonymous: Option<Principal>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_msize: DEFAULT_MAX_MSIZE,
            max_fids: DEFAULT_MAX_FIDS,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            strict_fids: false,
            anonymous: None,
        }
    }
}
