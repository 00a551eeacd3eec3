//! uart.elf: the device PD (`cohesix_pds::DevicePd`) on the ZCU102's PS
//! UART1 (`0xff01_0000`, SPI 22): the host's 9P stream, interrupt-driven
//! through `cohesix_drivers::cadence_uart`. The kernel and the monitor keep
//! UART0 for their console.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    extern crate alloc;

    use alloc::format;
    use alloc::string::String;
    use cohesix_abi::microkit::IRQ_ACK_LABEL_NO_HW_DEBUG;
    use cohesix_drivers::cadence_uart::{CadenceUart, Config, Counters};
    use cohesix_pds::{DevicePd, OneStream, Page, Stream};

    cohesix_rt::setvars!(Maps {
        "rx" => rx / rx_size,
        "tx" => tx / tx_size,
        "uart" => uart / uart_size,
    });

    /// The UART as the device PD's one stream, with what it last reported.
    struct UartPort {
        uart: CadenceUart<Page>,
        reported: Counters,
    }

    impl Stream for UartPort {
        fn read(&mut self, buf: &mut [u8]) -> usize {
            self.uart.read(buf)
        }

        fn write(&mut self, data: &[u8]) {
            self.uart.write(data);
        }

        fn interrupt(&mut self) {
            self.uart.interrupt();
        }

        fn report(&mut self) -> Option<String> {
            let now = self.uart.counters();
            let was = core::mem::replace(&mut self.reported, now);
            let lost = (
                now.rx_overruns,
                now.framing_errors,
                now.parity_errors,
                now.tx_dropped,
            );
            if lost
                == (
                    was.rx_overruns,
                    was.framing_errors,
                    was.parity_errors,
                    was.tx_dropped,
                )
            {
                return None;
            }
            Some(format!(
                "uart: receive overruns {}, framing errors {}, parity errors {}, transmit bytes dropped {} (totals since boot)",
                now.rx_overruns, now.framing_errors, now.parity_errors, now.tx_dropped
            ))
        }
    }

    cohesix_rt::protection_domain!(|| {
        cohesix_rt::set_irq_ack_label(IRQ_ACK_LABEL_NO_HW_DEBUG);
        let regs = cohesix_abi::Regions::region(&Maps, "uart").unwrap_or_else(|| {
            cohesix_rt::abort("uart: region 'uart' (UART1's registers) is not mapped")
        });
        let driver = CadenceUart::new(regs, &Config::ZCU102)
            .unwrap_or_else(|e| cohesix_rt::abort(&format!("{e}")));
        let port = UartPort {
            uart: driver,
            reported: Counters::default(),
        };
        DevicePd::new(OneStream::new(port), &Maps)
            .unwrap_or_else(|e| cohesix_rt::abort(&format!("{e}")))
    });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "uart.elf runs under seL4: `cargo xtask check` builds it; `cargo test -p cohesix-sim` runs it in the simulator"
    );
    std::process::exit(2);
}
