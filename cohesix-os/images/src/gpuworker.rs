//! gpuworker.elf: the GPU worker PD (`cohesix_pds::GpuWorkerPd`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use cohesix_pds::GpuWorkerPd;

    cohesix_rt::setvars!(Maps {
        "rx" => rx / rx_size,
        "tx" => tx / tx_size,
    });

    cohesix_rt::protection_domain!(
        || GpuWorkerPd::new(&Maps).unwrap_or_else(|e| cohesix_rt::abort(&alloc::format!("{e}")))
    );

    extern crate alloc;
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "gpuworker.elf runs under seL4: `cargo xtask check` builds it; `cargo test -p cohesix-sim` runs it in the simulator"
    );
    std::process::exit(2);
}
