//! Where GPUs come from: [`MockSource`] (deterministic synthetic GPUs for CI
//! and `--mock`, whose readings follow the jobs they run and which take
//! injected faults) and [`NvmlSource`] (NVML, loaded at run time). Both
//! answer the [`GpuSource`] trait the bridge reads telemetry, energy and
//! re-probes through.
//!
//! NVML is opened by name at run time, so the bridge builds and runs on
//! machines with no NVIDIA driver; [`NvmlSource::open`] then fails with
//! [`DiscoveryError::NoNvml`], which says so plainly. NVML reports SM counts
//! only for MIG slices, so a whole GPU's SM count comes from CUDA's
//! multiprocessor count (feature `cuda`), matched by UUID; without it the
//! count is unknown.

use crate::descriptor::GpuDescriptor;
use crate::health::Fault;
use crate::telemetry::{
    Activity, MockCounters, Reading, fault_of, mock_energy_mj, mock_reading, nvml_reading,
};
use gpu_contract::Telemetry;
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

/// Most mock GPUs: a mock fleet larger than this tests nothing new.
pub const MAX_MOCK_GPUS: usize = 64;

/// The library names tried, in order: the versioned name is what a driver
/// install (and a container runtime) always provides; the bare name needs
/// the development package.
pub const NVML_LIBRARIES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// Receives the faults an event loop hears of: the GPU's index and the
/// fault. Must not block for long.
pub type FaultSink = Box<dyn Fn(usize, Fault) + Send>;

/// What a mock GPU's control (`FAULT …` on `ctl`, `--mock` only) injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// The fault, as NVML would report it. `Lost` and `ResetRequired` stay
    /// until [`Injection::Restore`]: readings fail and re-probes with them.
    Fault(Fault),
    /// The mock GPU answers again (its next re-probe passes).
    Restore,
}

/// A source of GPUs and of their live readings.
pub trait GpuSource: Send {
    /// `"mock"` or `"nvml"`.
    fn kind(&self) -> &'static str;
    /// The GPUs, in index order.
    fn gpus(&self) -> &[GpuDescriptor];
    /// A reading of GPU `index` while the bridge does `activity` on it
    /// (every field `None` for an unknown index).
    fn read(&mut self, index: usize, activity: &Activity) -> Reading;
    /// GPU `index`'s energy counter, mJ, where it has one.
    fn energy_mj(&mut self, index: usize, activity: &Activity) -> Option<u64>;
    /// Re-probes a quarantined GPU: `Ok` if it answers as it should.
    fn probe(&mut self, index: usize) -> Result<(), String>;
    /// Injects a fault into GPU `index`; returns the fault to handle now.
    /// Only mock GPUs take injections.
    fn inject(&mut self, index: usize, what: Injection) -> Result<Option<Fault>, String> {
        let _ = (index, what);
        Err(String::from("FAULT is only served by mock GPUs (--mock)"))
    }
    /// Starts a thread that reports the device's critical events to `sink`
    /// until `stop` is set; `None` where the source has no events.
    fn spawn_events(
        &self,
        sink: FaultSink,
        stop: Arc<AtomicBool>,
    ) -> Option<Result<JoinHandle<()>, String>> {
        let _ = (sink, stop);
        None
    }
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
/// descriptors, and the same jobs at the same times the same readings
/// (see `telemetry`): utilisation, memory, temperature, power and energy
/// follow the bridge's jobs.
#[derive(Debug, Clone)]
pub struct MockSource {
    gpus: Vec<GpuDescriptor>,
    state: Vec<MockGpu>,
}

/// What a mock GPU remembers between readings.
#[derive(Debug, Clone, Default)]
struct MockGpu {
    last: Option<Activity>,
    counters: MockCounters,
    /// `Lost` or `ResetRequired` injected and not yet restored.
    broken: Option<Fault>,
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
        Ok(MockSource {
            gpus,
            state: vec![MockGpu::default(); count],
        })
    }
}

impl GpuSource for MockSource {
    fn kind(&self) -> &'static str {
        "mock"
    }
    fn gpus(&self) -> &[GpuDescriptor] {
        &self.gpus
    }
    fn read(&mut self, index: usize, activity: &Activity) -> Reading {
        let (Some(g), Some(m)) = (self.gpus.get(index), self.state.get_mut(index)) else {
            return Reading::default();
        };
        if let Some(fault) = m.broken {
            return Reading {
                telemetry: Telemetry::default(),
                fault: Some(fault),
            };
        }
        let telemetry = mock_reading(g.memory_mb, activity, m.last.as_ref(), m.counters);
        m.last = Some(*activity);
        Reading {
            telemetry,
            fault: None,
        }
    }

    fn energy_mj(&mut self, index: usize, activity: &Activity) -> Option<u64> {
        let m = self.state.get(index)?;
        m.broken.is_none().then(|| mock_energy_mj(activity))
    }

    fn probe(&mut self, index: usize) -> Result<(), String> {
        match self.state.get(index).map(|m| m.broken) {
            None => Err(format!("no mock gpu {index}")),
            Some(Some(fault)) => Err(format!(
                "mock gpu {index}: {fault} (FAULT RESTORE to bring it back)"
            )),
            Some(None) => Ok(()),
        }
    }

    fn inject(&mut self, index: usize, what: Injection) -> Result<Option<Fault>, String> {
        let m = self
            .state
            .get_mut(index)
            .ok_or_else(|| format!("no mock gpu {index}"))?;
        Ok(match what {
            Injection::Restore => {
                m.broken = None;
                None
            }
            Injection::Fault(fault) => {
                match fault {
                    Fault::Lost | Fault::ResetRequired => m.broken = Some(fault),
                    Fault::EccCorrected => m.counters.ecc_corrected += 1,
                    Fault::EccUncorrected => m.counters.ecc_uncorrected += 1,
                    Fault::Xid(_) => {}
                }
                Some(fault)
            }
        })
    }
}

/// GPUs found through NVML.
pub struct NvmlSource {
    nvml: Arc<Nvml>,
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
        Ok(NvmlSource {
            nvml: Arc::new(nvml),
            gpus,
        })
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
    fn read(&mut self, index: usize, _: &Activity) -> Reading {
        match self.device(index) {
            Ok(device) => nvml_reading(&device),
            Err(e) => Reading {
                telemetry: Telemetry::default(),
                fault: fault_of(&e),
            },
        }
    }

    fn energy_mj(&mut self, index: usize, _: &Activity) -> Option<u64> {
        self.device(index).ok()?.total_energy_consumption().ok()
    }

    fn probe(&mut self, index: usize) -> Result<(), String> {
        let want = self
            .gpus
            .get(index)
            .map(|g| g.uuid.clone())
            .ok_or_else(|| format!("no gpu {index}"))?;
        let device = self.device(index).map_err(|e| e.to_string())?;
        let uuid = device.uuid().map_err(|e| e.to_string())?;
        if uuid != want {
            return Err(format!("index {index} is now {uuid}, was {want}"));
        }
        device.memory_info().map_err(|e| e.to_string())?;
        Ok(())
    }

    fn spawn_events(
        &self,
        sink: FaultSink,
        stop: Arc<AtomicBool>,
    ) -> Option<Result<JoinHandle<()>, String>> {
        Some(crate::events::spawn(
            self.nvml.clone(),
            self.gpus.len(),
            sink,
            stop,
        ))
    }
}

impl NvmlSource {
    fn device(&self, index: usize) -> Result<nvml_wrapper::Device<'_>, NvmlError> {
        let index = u32::try_from(index).map_err(|_| NvmlError::InvalidArg)?;
        self.nvml.device_by_index(index)
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

    #[test]
    fn mock_faults_break_readings_and_probes_until_restored() {
        let mut m = MockSource::new(2).unwrap();
        let a = Activity::default();
        assert!(m.read(0, &a).telemetry.temp_c.is_some());
        assert_eq!(
            m.inject(0, Injection::Fault(Fault::Lost)),
            Ok(Some(Fault::Lost))
        );
        let r = m.read(0, &a);
        assert_eq!((r.telemetry.temp_c, r.fault), (None, Some(Fault::Lost)));
        assert!(m.probe(0).is_err() && m.probe(1).is_ok());
        assert_eq!(m.inject(0, Injection::Restore), Ok(None));
        assert!(m.probe(0).is_ok());
        m.inject(1, Injection::Fault(Fault::EccUncorrected))
            .unwrap();
        assert_eq!(m.read(1, &a).telemetry.ecc_volatile_uncorrected, Some(1));
        assert!(m.inject(9, Injection::Restore).is_err());
    }
}
