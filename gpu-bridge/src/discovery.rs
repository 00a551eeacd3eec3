//! Where GPUs come from: [`MockSource`] (deterministic synthetic GPUs for CI
//! and `--mock`) and [`NvmlSource`] (NVML, loaded at run time). Both answer
//! the [`GpuSource`] trait the bridge samples for `info` and `stats`.
//!
//! NVML is opened by name at run time, so the bridge builds and runs on
//! machines with no NVIDIA driver; [`NvmlSource::open`] then fails with
//! [`DiscoveryError::NoNvml`], which says so plainly. NVML reports SM counts
//! only for MIG slices, so a whole GPU's SM count comes from CUDA's
//! multiprocessor count (feature `cuda`), matched by UUID; without it the
//! count is unknown.

use crate::descriptor::{GpuDescriptor, GpuSample};
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use std::ffi::OsStr;

/// Most mock GPUs: a mock fleet larger than this tests nothing new.
pub const MAX_MOCK_GPUS: usize = 64;

/// The library names tried, in order: the versioned name is what a driver
/// install (and a container runtime) always provides; the bare name needs
/// the development package.
pub const NVML_LIBRARIES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// A source of GPUs and of their live readings.
pub trait GpuSource: Send {
    /// `"mock"` or `"nvml"`.
    fn kind(&self) -> &'static str;
    /// The GPUs, in index order.
    fn gpus(&self) -> &[GpuDescriptor];
    /// Current readings of GPU `index` (all `None` for an unknown index).
    fn sample(&mut self, index: usize) -> GpuSample;
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No NVML library could be loaded or initialised: no NVIDIA driver here.
    #[error("no NVML found: {0}")]
    NoNvml(String),
    /// NVML answered with an error.
    #[error("NVML error while {what}: {error}")]
    Nvml {
        /// What the bridge was asking.
        what: &'static str,
        /// NVML's error.
        error: String,
    },
    /// More mock GPUs than [`MAX_MOCK_GPUS`] were asked for.
    #[error("{0} mock GPUs asked for; at most {MAX_MOCK_GPUS}")]
    TooManyMocks(usize),
}

/// Deterministic synthetic GPUs: the same count always gives the same
/// descriptors, and readings never change.
#[derive(Debug, Clone)]
pub struct MockSource {
    gpus: Vec<GpuDescriptor>,
}

/// Memory of a mock GPU, MiB.
const MOCK_MEMORY_MB: u64 = 16_384;
/// SM count of a mock GPU.
const MOCK_SM_COUNT: u32 = 16;

impl MockSource {
    /// `count` mock GPUs with ids `"0"`, `"1"`, ….
    pub fn new(count: usize) -> Result<Self, DiscoveryError> {
        if count > MAX_MOCK_GPUS {
            return Err(DiscoveryError::TooManyMocks(count));
        }
        let gpus = (0..count)
            .map(|i| GpuDescriptor {
                id: i.to_string(),
                name: String::from("Cohesix Mock GPU"),
                uuid: format!("GPU-00000000-0000-4000-8000-{i:012x}"),
                memory_mb: MOCK_MEMORY_MB,
                sm_count: Some(MOCK_SM_COUNT),
                driver_version: String::from("mock-1.0"),
                runtime_version: String::from("12.0"),
            })
            .collect();
        Ok(MockSource { gpus })
    }
}

impl GpuSource for MockSource {
    fn kind(&self) -> &'static str {
        "mock"
    }
    fn gpus(&self) -> &[GpuDescriptor] {
        &self.gpus
    }
    fn sample(&mut self, index: usize) -> GpuSample {
        match self.gpus.get(index) {
            Some(g) => GpuSample {
                memory_free_mb: Some(g.memory_mb),
                gpu_util_pct: Some(0),
                memory_util_pct: Some(0),
            },
            None => GpuSample::default(),
        }
    }
}

/// GPUs found through NVML.
pub struct NvmlSource {
    nvml: Nvml,
    gpus: Vec<GpuDescriptor>,
}

impl std::fmt::Debug for NvmlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSource")
            .field("gpus", &self.gpus)
            .finish_non_exhaustive()
    }
}

fn nvml_err(what: &'static str) -> impl Fn(NvmlError) -> DiscoveryError {
    move |e| DiscoveryError::Nvml {
        what,
        error: e.to_string(),
    }
}

const MIB: u64 = 1024 * 1024;

impl NvmlSource {
    /// Loads NVML and describes every GPU it sees. SM counts are asked of
    /// CUDA when the `cuda` feature is built in and a driver is present.
    pub fn open() -> Result<Self, DiscoveryError> {
        let mut failures = Vec::new();
        let mut found = None;
        for name in NVML_LIBRARIES {
            match Nvml::builder().lib_path(OsStr::new(name)).init() {
                Ok(nvml) => {
                    found = Some(nvml);
                    break;
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        let Some(nvml) = found else {
            return Err(DiscoveryError::NoNvml(failures.join("; ")));
        };
        let gpus = describe(&nvml)?;
        Ok(NvmlSource { nvml, gpus })
    }
}

fn describe(nvml: &Nvml) -> Result<Vec<GpuDescriptor>, DiscoveryError> {
    let driver_version = nvml
        .sys_driver_version()
        .map_err(nvml_err("reading the driver version"))?;
    let runtime_version = nvml
        .sys_cuda_driver_version()
        .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10))
        .map_err(nvml_err("reading the CUDA version"))?;
    let count = nvml.device_count().map_err(nvml_err("counting devices"))?;
    let sm = crate::sm_count::SmCounts::query();
    let mut gpus = Vec::new();
    for index in 0..count {
        let device = nvml
            .device_by_index(index)
            .map_err(nvml_err("opening a device"))?;
        let uuid = device.uuid().map_err(nvml_err("reading a UUID"))?;
        let memory = device.memory_info().map_err(nvml_err("reading memory"))?;
        gpus.push(GpuDescriptor {
            id: index.to_string(),
            name: device.name().map_err(nvml_err("reading a name"))?,
            sm_count: sm.for_uuid(&uuid),
            uuid,
            memory_mb: memory.total / MIB,
            driver_version: driver_version.clone(),
            runtime_version: runtime_version.clone(),
        });
    }
    Ok(gpus)
}

impl GpuSource for NvmlSource {
    fn kind(&self) -> &'static str {
        "nvml"
    }
    fn gpus(&self) -> &[GpuDescriptor] {
        &self.gpus
    }
    fn sample(&mut self, index: usize) -> GpuSample {
        let Ok(index) = u32::try_from(index) else {
            return GpuSample::default();
        };
        let Ok(device) = self.nvml.device_by_index(index) else {
            return GpuSample::default();
        };
        let memory = device.memory_info().ok();
        let util = device.utilization_rates().ok();
        GpuSample {
            memory_free_mb: memory.map(|m| m.free / MIB),
            gpu_util_pct: util.as_ref().map(|u| u.gpu),
            memory_util_pct: util.map(|u| u.memory),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mocks_are_deterministic() {
        let a = MockSource::new(3).unwrap();
        let b = MockSource::new(3).unwrap();
        assert_eq!(a.gpus(), b.gpus());
        assert_eq!(a.gpus()[2].id, "2");
        assert_eq!(a.gpus()[2].uuid, "GPU-00000000-0000-4000-8000-000000000002");
        assert!(MockSource::new(MAX_MOCK_GPUS + 1).is_err());
    }
}
