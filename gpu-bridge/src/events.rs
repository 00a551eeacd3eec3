//! NVML's event loop: one thread that waits for each GPU's critical XID
//! and ECC events (Linux; NVML has no events elsewhere) and reports them,
//! with a GPU that stopped answering, as [`Fault`]s. What they do is the
//! bridge's [`Policy`](crate::Policy); this loop only listens.
//!
//! Each GPU has its own event set, so a GPU whose driver refuses
//! registration (events unsupported, a vGPU) is skipped with a line and
//! the others are still heard.

use crate::discovery::FaultSink;
use crate::health::Fault;
use nvml_wrapper::Nvml;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// How long one wait on one GPU's event set lasts, ms: bounds how late a
/// stop is noticed (and, with many GPUs, how late an event is read).
#[cfg(target_os = "linux")]
const WAIT_MS: u32 = 200;

/// Starts the loop over GPUs `0..count`; faults go to `sink`. A line about
/// each GPU whose events cannot be heard goes to stderr.
pub(crate) fn spawn(
    nvml: Arc<Nvml>,
    count: usize,
    sink: FaultSink,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(String::from("nvml-events"))
        .spawn(move || run(&nvml, count, &sink, &stop))
        .map_err(|e| format!("starting the NVML event thread: {e}"))
}

#[cfg(target_os = "linux")]
fn run(nvml: &Nvml, count: usize, sink: &FaultSink, stop: &AtomicBool) {
    use nvml_wrapper::bitmasks::event::EventTypes;
    use nvml_wrapper::enums::event::XidError;
    use nvml_wrapper::error::NvmlError;

    let wanted = EventTypes::CRITICAL_XID_ERROR
        | EventTypes::DOUBLE_BIT_ECC_ERROR
        | EventTypes::SINGLE_BIT_ECC_ERROR;
    let mut sets = Vec::new();
    for index in 0..count {
        let registered = u32::try_from(index)
            .map_err(|_| String::from("index out of range"))
            .and_then(|i| nvml.device_by_index(i).map_err(|e| e.to_string()))
            .and_then(|device| {
                let supported = device.supported_event_types().map_err(|e| e.to_string())?;
                let set = nvml.create_event_set().map_err(|e| e.to_string())?;
                device
                    .register_events(supported & wanted, set)
                    .map_err(|e| e.error.to_string())
            });
        match registered {
            Ok(set) => sets.push((index, set)),
            Err(e) => eprintln!("gpu-bridge-host: gpu {index}: no NVML events ({e})"),
        }
    }
    if sets.is_empty() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        for (index, set) in &sets {
            match set.wait(WAIT_MS) {
                Ok(event) => {
                    if event.event_type.contains(EventTypes::CRITICAL_XID_ERROR) {
                        let xid = match event.event_data {
                            Some(XidError::Value(n)) => Some(n),
                            _ => None,
                        };
                        sink(*index, Fault::Xid(xid));
                    }
                    if event.event_type.contains(EventTypes::DOUBLE_BIT_ECC_ERROR) {
                        sink(*index, Fault::EccUncorrected);
                    }
                    if event.event_type.contains(EventTypes::SINGLE_BIT_ECC_ERROR) {
                        sink(*index, Fault::EccCorrected);
                    }
                }
                Err(NvmlError::Timeout) => {}
                Err(NvmlError::GpuLost) => sink(*index, Fault::Lost),
                Err(NvmlError::ResetRequired) => sink(*index, Fault::ResetRequired),
                Err(e) => {
                    eprintln!("gpu-bridge-host: gpu {index}: NVML event wait failed: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(u64::from(WAIT_MS)));
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn run(_: &Nvml, _: usize, _: &FaultSink, _: &AtomicBool) {
    eprintln!("gpu-bridge-host: NVML events need Linux; XID and ECC events are not heard");
}
