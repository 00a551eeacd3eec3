//! The CUDA executor (feature `cuda`): loads a job's PTX (the shipped
//! `vadd`/`matmul`, or a `ptx` job's own), launches it through cudarc's
//! driver API, polls an event until the job's budget runs out, checks the
//! output against the CPU reference and reports the device time.
//!
//! This is the crate's only module with `unsafe`: a kernel launch cannot be
//! checked by the compiler, and neither can two driver calls cudarc leaves
//! unsafe. Each block says why it holds.
//!
//! cudarc loads `libcuda` at run time and panics when it is missing, so
//! every entry point first probes for the library ([`probe`]) and comes
//! back with [`CudaUnavailable`] instead. PTX text is checked for NUL bytes
//! and its entry name for being an identifier before the driver sees them
//! (cudarc would panic making C strings of them).
//!
//! A kernel cannot be killed. When one outlives its budget the job fails
//! with `ERR TIMEOUT`, its buffers are parked with the event that marks its
//! end (freeing them earlier would block on the kernel), and later jobs
//! wait for that event within their own budget, failing with `ERR BUSY`
//! while the device is still occupied.
#![allow(unsafe_code)]

use crate::executor::{ExecError, ExecOutput, Executor, compare};
use crate::job::{ValidatedJob, sha256_hex};
use crate::ptx;
use crate::sm_count::format_uuid;
use crate::workload::{Workload, check_ptx};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError,
    LaunchConfig, PushKernelArg, result, sys,
};
use cudarc::nvrtc::Ptx;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why CUDA cannot be used here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CudaUnavailable {
    /// No `libcuda` could be loaded: no NVIDIA driver on this host.
    #[error("no CUDA driver found (libcuda could not be loaded)")]
    NoLibrary,
    /// The driver refused.
    #[error("CUDA driver error while {what}: {error}")]
    Driver {
        /// What the bridge was doing.
        what: &'static str,
        /// The driver's error.
        error: String,
    },
    /// No device has the UUID asked for.
    #[error("no CUDA device has UUID {0}")]
    NoDevice(String),
}

fn driver(what: &'static str) -> impl Fn(DriverError) -> CudaUnavailable {
    move |e| CudaUnavailable::Driver {
        what,
        error: e.to_string(),
    }
}

fn device(what: &'static str) -> impl Fn(DriverError) -> ExecError {
    move |e| ExecError::Device(format!("{what}: {e}"))
}

/// Checks that `libcuda` loads and initialises.
pub fn probe() -> Result<(), CudaUnavailable> {
    // SAFETY: `is_culib_present` only tries to open each candidate library
    // name and closes what it opened; it makes no CUDA call.
    if !unsafe { sys::is_culib_present() } {
        return Err(CudaUnavailable::NoLibrary);
    }
    result::init().map_err(driver("initialising"))
}

/// Every CUDA device's UUID (as NVML prints it) and ordinal.
fn devices() -> Result<Vec<(String, sys::CUdevice, usize)>, CudaUnavailable> {
    probe()?;
    let count = result::device::get_count().map_err(driver("counting devices"))?;
    let mut out = Vec::new();
    for ordinal in 0..count {
        let dev = result::device::get(ordinal).map_err(driver("opening a device"))?;
        let uuid = result::device::get_uuid(dev).map_err(driver("reading a UUID"))?;
        let bytes = uuid.bytes.map(|b| b as u8);
        out.push((
            format_uuid(bytes),
            dev,
            usize::try_from(ordinal).unwrap_or_default(),
        ));
    }
    Ok(out)
}

/// The multiprocessor count of every CUDA device, by UUID.
pub fn sm_counts() -> Result<Vec<(String, u32)>, CudaUnavailable> {
    let mut out = Vec::new();
    for (uuid, dev, _) in devices()? {
        // SAFETY: `dev` came from `cuDeviceGet` just above; reading an
        // attribute needs nothing else (no context).
        let sms = unsafe {
            result::device::get_attribute(
                dev,
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
        }
        .map_err(driver("reading the multiprocessor count"))?;
        out.push((uuid, u32::try_from(sms).unwrap_or_default()));
    }
    Ok(out)
}

/// A kernel that outlived its budget: its buffers stay alive until the
/// event recorded after it completes.
struct Parked {
    job_id: String,
    done: CudaEvent,
    _buffers: Vec<CudaSlice<f32>>,
}

/// Modules kept loaded (keyed by the SHA-256 of their PTX): the two shipped
/// kernels plus a few `ptx` jobs' own.
const MODULE_CACHE: usize = 8;

/// Runs jobs on one CUDA device.
pub struct CudaExecutor {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    ordinal: usize,
    modules: Vec<(String, Arc<CudaModule>)>,
    parked: Option<Parked>,
}

impl std::fmt::Debug for CudaExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaExecutor")
            .field("ordinal", &self.ordinal)
            .field("modules", &self.modules.len())
            .field("parked", &self.parked.as_ref().map(|p| p.job_id.as_str()))
            .finish_non_exhaustive()
    }
}

impl CudaExecutor {
    /// An executor on the device of CUDA ordinal `ordinal`.
    pub fn new(ordinal: usize) -> Result<Self, CudaUnavailable> {
        probe()?;
        let ctx = CudaContext::new(ordinal).map_err(driver("creating a context"))?;
        let stream = ctx.default_stream();
        Ok(CudaExecutor {
            ctx,
            stream,
            ordinal,
            modules: Vec::new(),
            parked: None,
        })
    }

    /// An executor on the device with this UUID (CUDA's device order need
    /// not be NVML's).
    pub fn for_uuid(uuid: &str) -> Result<Self, CudaUnavailable> {
        let ordinal = devices()?
            .into_iter()
            .find(|(u, _, _)| u.eq_ignore_ascii_case(uuid))
            .map(|(_, _, o)| o)
            .ok_or_else(|| CudaUnavailable::NoDevice(String::from(uuid)))?;
        CudaExecutor::new(ordinal)
    }

    /// The device's name.
    pub fn device_name(&self) -> String {
        self.ctx.name().unwrap_or_default()
    }

    /// The device's CUDA ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    fn function(&mut self, text: &str, entry: &str) -> Result<CudaFunction, ExecError> {
        // Checked again here: the driver gets C strings, and cudarc panics
        // on a NUL inside one.
        check_ptx(text, entry).map_err(|e| ExecError::Unsupported(e.to_string()))?;
        let key = sha256_hex(text.as_bytes());
        let module = match self.modules.iter().find(|(k, _)| *k == key) {
            Some((_, m)) => m.clone(),
            None => {
                let m = self
                    .ctx
                    .load_module(Ptx::from_src(text))
                    .map_err(device("loading PTX"))?;
                if self.modules.len() >= MODULE_CACHE {
                    self.modules.remove(0);
                }
                self.modules.push((key, m.clone()));
                m
            }
        };
        module
            .load_function(entry)
            .map_err(device("finding the entry"))
    }

    /// Waits (polling) for a parked kernel until `deadline`.
    fn unpark(&mut self, deadline: Instant) -> Result<(), ExecError> {
        let Some(parked) = &self.parked else {
            return Ok(());
        };
        if !wait(&parked.done, deadline).map_err(device("waiting for a timed-out kernel"))? {
            return Err(ExecError::Busy(format!(
                "the device is still running job {}, which timed out",
                parked.job_id
            )));
        }
        self.parked = None;
        Ok(())
    }
}

/// Polls `event` until it completes (`true`) or `deadline` passes (`false`).
fn wait(event: &CudaEvent, deadline: Instant) -> Result<bool, DriverError> {
    let mut pause = Duration::from_micros(20);
    loop {
        if event.try_is_complete()? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

impl Executor for CudaExecutor {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn execute(&mut self, job: &ValidatedJob, budget: Duration) -> Result<ExecOutput, ExecError> {
        let start = Instant::now();
        let deadline = start.checked_add(budget).unwrap_or(start);
        let timeout = || ExecError::Timeout {
            after_ms: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
        };
        self.unpark(deadline)?;
        if Instant::now() >= deadline {
            return Err(timeout());
        }
        let workload = &*job.workload;
        let (text, entry, a, b) = match workload {
            Workload::Vadd { a, b } => (ptx::VADD, ptx::VADD_ENTRY, a, b),
            Workload::Matmul { a, b, .. } => (ptx::MATMUL, ptx::MATMUL_ENTRY, a, b),
            Workload::Ptx {
                ptx, entry, a, b, ..
            } => (ptx.as_str(), entry.as_str(), a, b),
        };
        let func = self.function(text, entry)?;
        let stream = self.stream.clone();
        let a_dev = stream.clone_htod(a).map_err(device("copying a"))?;
        let b_dev = stream.clone_htod(b).map_err(device("copying b"))?;
        let mut out_dev = stream
            .alloc_zeros::<f32>(workload.output_len())
            .map_err(device("allocating the output"))?;
        let [gx, gy, gz] = job.launch.grid;
        let [bx, by, bz] = job.launch.block;
        let cfg = LaunchConfig {
            grid_dim: (gx, gy, gz),
            block_dim: (bx, by, bz),
            shared_mem_bytes: 0,
        };
        let len = u32::try_from(a.len())
            .map_err(|_| ExecError::Unsupported(String::from("input too long")))?;
        let dims = match workload {
            Workload::Matmul { m, k, n, .. } => [*m, *k, *n],
            _ => [len, 0, 0],
        };
        let events = {
            let mut launch = stream.launch_builder(&func);
            launch.arg(&a_dev).arg(&b_dev).arg(&mut out_dev);
            match workload {
                Workload::Matmul { .. } => {
                    launch.arg(&dims[0]).arg(&dims[1]).arg(&dims[2]);
                }
                _ => {
                    launch.arg(&dims[0]);
                }
            }
            launch.record_kernel_launch(sys::CUevent_flags::CU_EVENT_DEFAULT);
            // SAFETY: the arguments match the entry's parameters: the
            // shipped kernels and the `ptx` job contract take three device
            // pointers (a, b, out) then `n` as u32 (`vadd`, `ptx`) or
            // `m, k, n` as u32 (`matmul`). `a` and `b` hold `n` (or m·k and
            // k·n) floats and `out` the output length, and validation made
            // the grid cover exactly those bounds for the shipped kernels,
            // which check every index against them. A `ptx` job's own
            // kernel is trusted as far as the driver's memory protection:
            // a stray access fails the context, not the host.
            unsafe { launch.launch(cfg) }.map_err(device("launching"))?
        };
        let (started, ended) =
            events.ok_or_else(|| ExecError::Device(String::from("launch recorded no events")))?;
        if !wait(&ended, deadline).map_err(device("running"))? {
            self.parked = Some(Parked {
                job_id: job.job_id.clone(),
                done: ended,
                _buffers: vec![a_dev, b_dev, out_dev],
            });
            return Err(timeout());
        }
        let device_ms = started.elapsed_ms(&ended).map_err(device("timing"))?;
        let values = stream
            .clone_dtoh(&out_dev)
            .map_err(device("copying the output"))?;
        let max_abs_err = match workload.reference(&mut || true) {
            Some(want) => Some(compare(&values, &want)?),
            None => None,
        };
        Ok(ExecOutput {
            values,
            device_time: Some(Duration::from_secs_f64(f64::from(device_ms.max(0.0)) / 1e3)),
            max_abs_err,
        })
    }
}
