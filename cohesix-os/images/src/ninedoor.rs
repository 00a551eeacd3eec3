//! ninedoor.elf: the NineDoor PD (`cohesix_pds::NineDoorPd`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use cohesix_pds::NineDoorPd;

    cohesix_rt::setvars!(Maps {
        "dev_rx" => dev_rx / dev_rx_size,
        "dev_tx" => dev_tx / dev_tx_size,
        "w1_rx" => w1_rx / w1_rx_size,
        "w1_tx" => w1_tx / w1_tx_size,
        "w2_rx" => w2_rx / w2_rx_size,
        "w2_tx" => w2_tx / w2_tx_size,
        "w3_rx" => w3_rx / w3_rx_size,
        "w3_tx" => w3_tx / w3_tx_size,
        "w4_rx" => w4_rx / w4_rx_size,
        "w4_tx" => w4_tx / w4_tx_size,
        "w5_rx" => w5_rx / w5_rx_size,
        "w5_tx" => w5_tx / w5_tx_size,
        "bridge_rx" => bridge_rx / bridge_rx_size,
        "bridge_tx" => bridge_tx / bridge_tx_size,
        "seed" => seed / seed_size,
        "net_rx" => net_rx / net_rx_size,
        "net_tx" => net_tx / net_tx_size,
    });

    cohesix_rt::protection_domain!(
        || NineDoorPd::new(&Maps).unwrap_or_else(|e| cohesix_rt::abort(&alloc::format!("{e}")))
    );

    extern crate alloc;
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "ninedoor.elf runs under seL4: `cargo xtask check` builds it; `cargo test -p cohesix-sim` runs it in the simulator"
    );
    std::process::exit(2);
}
