//! ttc-timer.elf: the timer PD (`cohesix_pds::TimerPd`) on the ZCU102's
//! Triple Timer Counter 0, counter 1 (SPI 36), in interval mode.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    extern crate alloc;

    use cohesix_pds::TimerPd;

    cohesix_rt::setvars!(Maps {
        "ttc" => ttc / ttc_size,
    });

    cohesix_rt::protection_domain!(|| {
        // The ZCU102 SDK's kernel has no hardware debug API.
        cohesix_rt::set_irq_ack_label(cohesix_abi::microkit::IRQ_ACK_LABEL_NO_HW_DEBUG);
        TimerPd::ttc(&Maps).unwrap_or_else(|e| cohesix_rt::abort(&alloc::format!("{e}")))
    });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "ttc-timer.elf runs under seL4: `cargo xtask check` builds it; `cargo test -p cohesix-sim` runs it in the simulator"
    );
    std::process::exit(2);
}
