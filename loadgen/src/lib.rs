//! `s9p-load`: a load generator for any 9P2000.L server.
//!
//! It opens many TCP connections, attaches each once, opens a small and a
//! large file, and keeps a fixed number of requests in flight on every
//! connection for a fixed time: small reads, `Tgetattr`s and sequential
//! large reads in a chosen mix. It reports requests/s, payload MB/s,
//! latency percentiles, errors by kind and the server's peak memory. It
//! only reads: it never writes to, creates or removes anything on the
//! server, so it is safe to point at a real export.
//!
//! The binary is a thin CLI over [`run::run`]; the pieces are here so the
//! tests (and other harnesses) can drive a run in process.
//!
//! [`gpu_scale`] is a second tool beside it (the `gpu-scale` binary): a
//! scale run of the hive's GPU side, one `ninedoor` and many mock GPU
//! bridges, which does write (to the `/queen/ctl` of a hive it starts).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod fdlimit;
pub mod gpu_scale;
pub mod idle;
pub mod memwatch;
pub mod mix;
pub mod report;
pub mod run;
pub mod session;
pub mod tally;

pub use config::LoadConfig;
pub use report::Report;
pub use run::run;
