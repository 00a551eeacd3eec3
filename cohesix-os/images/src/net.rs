//! net.elf: the network PD: `cohesix_pds::DevicePd` over a
//! `cohesix_pds::TcpPort` on the virtio network card. The host reaches 9P
//! over TCP at 10.0.2.15:564 (QEMU forwards a loopback port there).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    extern crate alloc;

    use cohesix_pds::wiring::net;
    use cohesix_pds::{DevicePd, TcpConfig, TcpPort};
    use cohesix_rt::virtio::NetDevice;

    cohesix_rt::setvars!(Maps {
        "rx" => rx / rx_size,
        "tx" => tx / tx_size,
        "bridge_rx" => bridge_rx / bridge_rx_size,
        "bridge_tx" => bridge_tx / bridge_tx_size,
    }, virtio_regs, dma_vaddr, dma_size, dma_paddr);

    cohesix_rt::protection_domain!(|| {
        let card = cohesix_rt::virtio::net(
            virtio_regs.get(),
            dma_vaddr.get(),
            dma_paddr.get(),
            dma_size.get(),
        )
        .unwrap_or_else(|| {
            cohesix_rt::abort("no virtio network card in the mapped virtio-mmio slots")
        });
        let config = TcpConfig {
            mac: card.mac(),
            addr: net::ADDR,
            prefix: net::PREFIX,
            gateway: Some(net::GATEWAY),
            port: net::PORT,
            bridge: Some((net::BRIDGE_ADDR, net::BRIDGE_PORT)),
        };
        let port = TcpPort::new(card, config, cohesix_rt::uptime_ms)
            .with_interrupt_ack(NetDevice::ack_interrupt);
        DevicePd::new(port, &Maps).unwrap_or_else(|e| cohesix_rt::abort(&alloc::format!("{e}")))
    });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "net.elf runs under seL4: `cargo xtask check` builds it; `cargo test -p cohesix-sim` runs it in the simulator"
    );
    std::process::exit(2);
}
