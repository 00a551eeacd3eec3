//! Every bound the bridge enforces, with the reason for its number. Hostile
//! or careless input meets one of these before it can allocate, queue or
//! launch anything.

/// Largest single write to `job`, `ctl` or `lease`: a job descriptor must
/// arrive in one 9P write (each write is one command), and 1 MiB is what
/// the Linux client sends at most per write over TCP. Larger inputs are
/// staged on the host and named by `artefact`.
pub const MAX_WRITE: usize = 1024 * 1024;

/// Largest decoded payload carried inline in `payload_b64` (its base64 form
/// is 4/3 of this and must fit [`MAX_WRITE`] with the rest of the JSON).
pub const MAX_INLINE_PAYLOAD: usize = 700 * 1024;

/// Largest staged artefact: bounds host memory per artefact.
pub const MAX_ARTEFACT: usize = 64 * 1024 * 1024;

/// Most elements of one input vector (`vadd`, `ptx`): 16 MiB of `f32`,
/// enough for a meaningful device time, small enough for the CPU reference.
pub const MAX_ELEMENTS: usize = 1 << 22;

/// Largest `matmul` dimension: the CPU reference runs m·k·n fused
/// multiply-adds, 16.7 M at most, well under a second.
pub const MAX_MATMUL_DIM: u32 = 256;

/// Largest PTX text: hand-written and generated kernels of this service
/// are a few KiB; the driver's JIT time grows with the text.
pub const MAX_PTX_BYTES: usize = 256 * 1024;

/// Longest kernel entry name (PTX identifiers are short).
pub const MAX_ENTRY_LEN: usize = 128;

/// Longest job id, holder or GPU id (the `/gpu` contract's bound).
pub use gpu_contract::MAX_ID_LEN;

/// Longest job timeout: 10 minutes. A job that needs longer belongs to a
/// batch system, not to a lease-scoped control plane.
pub const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// Most threads in one block (every CUDA architecture since Fermi).
pub const MAX_THREADS_PER_BLOCK: u64 = 1024;

/// Largest block dimensions x, y, z (CUDA's limits).
pub const MAX_BLOCK: [u32; 3] = [1024, 1024, 64];

/// Largest grid dimensions x, y, z (CUDA's limits for compute capability 3.0+).
pub const MAX_GRID: [u32; 3] = [0x7fff_ffff, 65_535, 65_535];

/// Most jobs queued per GPU: bounds memory and the drain work at expiry.
pub const MAX_QUEUED: usize = 64;

/// Most lease requests waiting for one GPU.
pub const MAX_WAITING_LEASES: usize = 8;

/// Most streams a lease may grant (and a job may ask for).
pub const MAX_STREAMS: u32 = 32;

/// Longest lease TTL: one day. Leases are renewed, not granted forever.
pub const MAX_TTL_S: u32 = 86_400;

/// Highest priority (leases and jobs); higher runs first.
pub const MAX_PRIORITY: u8 = u8::MAX;

/// Bytes kept by each GPU's `status` ring; a slow reader is told what it
/// missed.
pub const STATUS_RING: usize = 64 * 1024;

/// Results kept per GPU for `result` (the oldest is dropped first).
pub const RESULTS_KEPT: usize = 16;

/// Job summaries kept per GPU for `stats`.
pub const RECENT_JOBS: usize = 32;

/// Lines kept by the bridge's event log.
pub const LOG_LINES: usize = 1024;

/// Output values shown on an `OK` status line (the `/gpu` contract's).
pub use gpu_contract::STATUS_VALUES;

/// Default time between telemetry readings of a GPU: 1 s, NVML's own
/// utilisation sample period on most GPUs.
pub const DEFAULT_TELEMETRY_INTERVAL_MS: u64 = 1_000;

/// Shortest telemetry interval: NVML calls take up to a few ms each, made
/// under the bridge's lock.
pub const MIN_TELEMETRY_INTERVAL_MS: u64 = 50;

/// Default hold-down of a quarantined GPU before its first re-probe: long
/// enough for a driver's own recovery (a GPU reset takes seconds).
pub const DEFAULT_HOLD_DOWN_MS: u64 = 60_000;

/// Longest hold-down: one day.
pub const MAX_HOLD_DOWN_MS: u64 = 86_400_000;

/// Most XID rules a policy override may hold (NVIDIA's catalogue has about
/// 150 XIDs).
pub const MAX_XID_RULES: usize = 256;

/// Leases whose usage each GPU keeps for `stats` (the active one and the
/// most recent ended ones).
pub const USAGE_KEPT: usize = 16;

/// GPU workers whose tickets each GPU remembers, so that a quarantine can
/// revoke the holder's; the oldest is forgotten first.
pub const TICKETS_TRACKED: usize = 64;
