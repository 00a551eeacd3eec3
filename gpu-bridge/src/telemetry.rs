//! Readings of a GPU ([`Telemetry`]): from NVML, field by field (a field
//! the device does not support is `None`, and its error is not a fault),
//! or made up by the mock source from what the bridge is doing on the GPU
//! ([`Activity`]), so that mock telemetry moves with the jobs it runs and
//! is the same for the same jobs at the same times.

use crate::health::Fault;
use gpu_contract::{GpuProcess, Telemetry};
use nvml_wrapper::Device;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

const MIB: u64 = 1024 * 1024;

/// What the bridge is doing on one GPU at a reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// The bridge's clock, ms.
    pub now_ms: u64,
    /// Jobs on an executor.
    pub running: usize,
    /// Their declared memory, MiB.
    pub mem_mb_in_use: u64,
    /// GPU time of every job so far, running ones up to now, µs.
    pub busy_us: u64,
}

/// One reading, and the fault it revealed (a GPU that stopped answering).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// The fields read.
    pub telemetry: Telemetry,
    /// `Lost` or `ResetRequired` if NVML said so.
    pub fault: Option<Fault>,
}

/// The names of NVML's throttle reasons, as `throttle` lists them.
const THROTTLE_NAMES: [(ThrottleReasons, &str); 9] = [
    (ThrottleReasons::GPU_IDLE, "gpu_idle"),
    (
        ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
        "applications_clocks_setting",
    ),
    (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
    (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
    (ThrottleReasons::SYNC_BOOST, "sync_boost"),
    (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
    (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
    (
        ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
        "hw_power_brake_slowdown",
    ),
    (
        ThrottleReasons::DISPLAY_CLOCK_SETTING,
        "display_clock_setting",
    ),
];

/// The throttle reasons set in `r`, by name.
pub fn throttle_names(r: ThrottleReasons) -> Vec<String> {
    THROTTLE_NAMES
        .iter()
        .filter(|(bit, _)| r.contains(*bit))
        .map(|(_, name)| String::from(*name))
        .collect()
}

/// The fault an NVML error means, if it means one.
pub fn fault_of(e: &NvmlError) -> Option<Fault> {
    match e {
        NvmlError::GpuLost => Some(Fault::Lost),
        NvmlError::ResetRequired => Some(Fault::ResetRequired),
        _ => None,
    }
}

/// Reads every field of `device` NVML has. An unsupported field is `None`;
/// `GpuLost` or `ResetRequired` from any call is reported as the fault.
pub fn nvml_reading(device: &Device<'_>) -> Reading {
    let mut f = Faults(None);
    let memory = f.ok(device.memory_info());
    let util = f.ok(device.utilization_rates());
    let telemetry = Telemetry {
        util_gpu_pct: util.as_ref().map(|u| u.gpu),
        util_mem_pct: util.as_ref().map(|u| u.memory),
        mem_used_mib: memory.as_ref().map(|m| m.used / MIB),
        mem_free_mib: memory.as_ref().map(|m| m.free / MIB),
        mem_total_mib: memory.as_ref().map(|m| m.total / MIB),
        temp_c: f.ok(device.temperature(TemperatureSensor::Gpu)),
        temp_slowdown_c: f.ok(device.temperature_threshold(TemperatureThreshold::Slowdown)),
        power_w: f.ok(device.power_usage()).map(|mw| f64::from(mw) / 1000.0),
        power_limit_w: f
            .ok(device.enforced_power_limit())
            .map(|mw| f64::from(mw) / 1000.0),
        energy_mj: f.ok(device.total_energy_consumption()),
        clock_sm_mhz: f.ok(device.clock_info(Clock::SM)),
        clock_mem_mhz: f.ok(device.clock_info(Clock::Memory)),
        throttle: f.ok(device.current_throttle_reasons()).map(throttle_names),
        ecc_volatile_corrected: f
            .ok(device.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)),
        ecc_volatile_uncorrected: f
            .ok(device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)),
        processes: f.ok(device.running_compute_processes()).map(|ps| {
            ps.into_iter()
                .map(|p| GpuProcess {
                    pid: p.pid,
                    used_mib: match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => Some(b / MIB),
                        UsedGpuMemory::Unavailable => None,
                    },
                })
                .collect()
        }),
    };
    Reading {
        telemetry,
        fault: f.0,
    }
}

/// The first fault the calls of one reading revealed.
struct Faults(Option<Fault>);

impl Faults {
    /// The value, or `None` (remembering a fault the error means).
    fn ok<T>(&mut self, r: Result<T, NvmlError>) -> Option<T> {
        r.map_err(|e| self.0 = self.0.or(fault_of(&e))).ok()
    }
}

/// The mock GPU's power while busy, W (and its limit); idle it draws none,
/// so its energy counter is exactly this power times its busy time.
pub const MOCK_BUSY_POWER_W: u64 = 300;
/// The mock GPU's temperature idle, °C; it warms with utilisation.
const MOCK_IDLE_TEMP_C: u32 = 30;
/// The mock GPU's slowdown threshold, °C.
const MOCK_SLOWDOWN_C: u32 = 90;
/// The mock GPU's SM clock busy and idle, and its memory clock, MHz.
const MOCK_CLOCKS_MHZ: (u32, u32, u32) = (1410, 210, 1215);

/// The mock GPU's energy counter, mJ: [`MOCK_BUSY_POWER_W`] × busy ms.
pub fn mock_energy_mj(a: &Activity) -> u64 {
    MOCK_BUSY_POWER_W.saturating_mul(a.busy_us / 1000)
}

/// Injected mock state that shows in its readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MockCounters {
    /// Corrected ECC errors injected.
    pub ecc_corrected: u64,
    /// Uncorrected ECC errors injected.
    pub ecc_uncorrected: u64,
}

/// A mock reading at `now` of a GPU of `total_mib`, after `prev` (the last
/// reading's activity, for utilisation over the period between them).
pub fn mock_reading(
    total_mib: u64,
    now: &Activity,
    prev: Option<&Activity>,
    c: MockCounters,
) -> Telemetry {
    let util = match prev {
        Some(p) if now.now_ms > p.now_ms => {
            let busy = now.busy_us.saturating_sub(p.busy_us);
            let window = (now.now_ms - p.now_ms).saturating_mul(1000);
            u32::try_from((busy.saturating_mul(100) / window).min(100)).unwrap_or(100)
        }
        _ => 0,
    }
    .max(if now.running > 0 { 100 } else { 0 });
    let used = now.mem_mb_in_use.min(total_mib);
    let busy = util > 0;
    Telemetry {
        util_gpu_pct: Some(util),
        util_mem_pct: Some(util / 2),
        mem_used_mib: Some(used),
        mem_free_mib: Some(total_mib - used),
        mem_total_mib: Some(total_mib),
        temp_c: Some(MOCK_IDLE_TEMP_C + util * 45 / 100),
        temp_slowdown_c: Some(MOCK_SLOWDOWN_C),
        power_w: Some((MOCK_BUSY_POWER_W * u64::from(util)) as f64 / 100.0),
        power_limit_w: Some(MOCK_BUSY_POWER_W as f64),
        energy_mj: Some(mock_energy_mj(now)),
        clock_sm_mhz: Some(if busy {
            MOCK_CLOCKS_MHZ.0
        } else {
            MOCK_CLOCKS_MHZ.1
        }),
        clock_mem_mhz: Some(MOCK_CLOCKS_MHZ.2),
        throttle: Some(if busy {
            Vec::new()
        } else {
            vec![String::from("gpu_idle")]
        }),
        ecc_volatile_corrected: Some(c.ecc_corrected),
        ecc_volatile_uncorrected: Some(c.ecc_uncorrected),
        processes: Some(if now.running > 0 {
            vec![GpuProcess {
                pid: std::process::id(),
                used_mib: Some(used),
            }]
        } else {
            Vec::new()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_readings_follow_the_jobs() {
        let idle = Activity {
            now_ms: 1_000,
            ..Activity::default()
        };
        let t = mock_reading(16_384, &idle, None, MockCounters::default());
        assert_eq!(
            (t.util_gpu_pct, t.temp_c, t.mem_used_mib),
            (Some(0), Some(30), Some(0))
        );
        assert_eq!(t.throttle, Some(vec!["gpu_idle".to_string()]));
        // Busy for half of the next second, one job still running.
        let busy = Activity {
            now_ms: 2_000,
            running: 1,
            mem_mb_in_use: 512,
            busy_us: 500_000,
        };
        let t = mock_reading(16_384, &busy, Some(&idle), MockCounters::default());
        assert_eq!(
            (t.util_gpu_pct, t.mem_used_mib, t.mem_free_mib),
            (Some(100), Some(512), Some(15_872))
        );
        assert_eq!(t.energy_mj, Some(150_000));
        assert_eq!(t.processes.unwrap()[0].used_mib, Some(512));
        let done = Activity {
            now_ms: 3_000,
            running: 0,
            mem_mb_in_use: 0,
            busy_us: 750_000,
        };
        let t = mock_reading(
            16_384,
            &done,
            Some(&busy),
            MockCounters {
                ecc_corrected: 0,
                ecc_uncorrected: 2,
            },
        );
        assert_eq!(
            (t.util_gpu_pct, t.temp_c, t.power_w),
            (Some(25), Some(41), Some(75.0))
        );
        assert_eq!(t.ecc_volatile_uncorrected, Some(2));
        assert_eq!(
            throttle_names(ThrottleReasons::GPU_IDLE | ThrottleReasons::SW_POWER_CAP),
            ["gpu_idle", "sw_power_cap"]
        );
    }
}
