//! device.elf: the device PD (`cohesix_pds::DevicePd`) on the virtio
//! console: 9P from the host arrives on the console's port 0.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    extern crate alloc;

    use cohesix_pds::{DevicePd, OneStream, Stream};
    use cohesix_rt::virtio::Console;

    cohesix_rt::setvars!(Maps {
        "rx" => rx / rx_size,
        "tx" => tx / tx_size,
    }, virtio_regs, dma_vaddr, dma_size, dma_paddr);

    /// Bytes per virtio send: one bounce page.
    const SEND_CHUNK: usize = 4096;

    struct VirtioPort(Console);

    impl Stream for VirtioPort {
        fn read(&mut self, buf: &mut [u8]) -> usize {
            let mut n = 0;
            while n < buf.len() {
                match self.0.recv(true) {
                    Ok(Some(b)) => {
                        buf[n] = b;
                        n += 1;
                    }
                    _ => break,
                }
            }
            n
        }

        fn write(&mut self, data: &[u8]) {
            for chunk in data.chunks(SEND_CHUNK) {
                if self.0.send_bytes(chunk).is_err() {
                    cohesix_rt::debug_print("device: virtio console send failed\n");
                    return;
                }
            }
        }

        fn interrupt(&mut self) {
            let _ = self.0.ack_interrupt();
        }
    }

    cohesix_rt::protection_domain!(|| {
        let console = cohesix_rt::virtio::console(
            virtio_regs.get(),
            dma_vaddr.get(),
            dma_paddr.get(),
            dma_size.get(),
        )
        .unwrap_or_else(|| cohesix_rt::abort("no virtio console in the mapped virtio-mmio slots"));
        DevicePd::new(OneStream::new(VirtioPort(console)), &Maps)
            .unwrap_or_else(|e| cohesix_rt::abort(&alloc::format!("{e}")))
    });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "device.elf runs under seL4: `cargo xtask check` builds it; `cargo test -p cohesix-sim` runs it in the simulator"
    );
    std::process::exit(2);
}
