//! [`Telemetry`]: one reading of a GPU, as NVML gives it (or the mock
//! source makes it up from the jobs it runs). Every field is `None`
//! (`null`) where the device or driver does not support it: never a
//! guess, never zero for "unknown".

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A compute process on the GPU and the device memory it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuProcess {
    /// Its process id on the bridge host.
    pub pid: u32,
    /// Device memory it uses, MiB (`null` where the driver cannot say).
    pub used_mib: Option<u64>,
}

/// One reading of a GPU. The JSON field names are the contract readers
/// (`cohsh gpu top`, the operator console) go by.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Telemetry {
    /// Percent of the last sample period a kernel was running.
    #[serde(default)]
    pub util_gpu_pct: Option<u32>,
    /// Percent of the last sample period device memory was read or written.
    #[serde(default)]
    pub util_mem_pct: Option<u32>,
    /// Device memory in use, MiB.
    #[serde(default)]
    pub mem_used_mib: Option<u64>,
    /// Device memory free, MiB.
    #[serde(default)]
    pub mem_free_mib: Option<u64>,
    /// Device memory in all, MiB.
    #[serde(default)]
    pub mem_total_mib: Option<u64>,
    /// GPU core temperature, °C.
    #[serde(default)]
    pub temp_c: Option<u32>,
    /// The temperature at which the GPU starts slowing itself down, °C.
    #[serde(default)]
    pub temp_slowdown_c: Option<u32>,
    /// Power draw, W.
    #[serde(default)]
    pub power_w: Option<f64>,
    /// The enforced power limit, W.
    #[serde(default)]
    pub power_limit_w: Option<f64>,
    /// Energy used since the driver loaded, mJ (Volta and newer).
    #[serde(default)]
    pub energy_mj: Option<u64>,
    /// SM clock, MHz.
    #[serde(default)]
    pub clock_sm_mhz: Option<u32>,
    /// Memory clock, MHz.
    #[serde(default)]
    pub clock_mem_mhz: Option<u32>,
    /// Why clocks are held down now (`gpu_idle`, `sw_power_cap`,
    /// `hw_slowdown`, `sw_thermal_slowdown`, …); empty when they are not.
    #[serde(default)]
    pub throttle: Option<Vec<String>>,
    /// ECC errors corrected since the driver loaded.
    #[serde(default)]
    pub ecc_volatile_corrected: Option<u64>,
    /// ECC errors not corrected since the driver loaded.
    #[serde(default)]
    pub ecc_volatile_uncorrected: Option<u64>,
    /// Compute processes running on the GPU.
    #[serde(default)]
    pub processes: Option<Vec<GpuProcess>>,
}
