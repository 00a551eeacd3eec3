//! timer.elf: the timer PD (`cohesix_pds::TimerPd`) on QEMU `virt`'s PL031
//! RTC.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use cohesix_pds::TimerPd;

    cohesix_rt::setvars!(Maps {
        "rtc" => rtc / rtc_size,
    });

    cohesix_rt::protection_domain!(
        || TimerPd::pl031(&Maps).unwrap_or_else(|e| cohesix_rt::abort(&alloc::format!("{e}")))
    );

    extern crate alloc;
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "timer.elf runs under seL4: `cargo xtask check` builds it; `cargo test -p cohesix-sim` runs it in the simulator"
    );
    std::process::exit(2);
}
