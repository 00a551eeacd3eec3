//! Register-level drivers for the device side of the Cohesix image.
//!
//! Each driver owns a register block through the [`Registers`] trait: on
//! seL4 that is the PD's uncached mapping of the device page (a slice of
//! `AtomicU32`, whose `Relaxed` loads and stores are single aligned 32-bit
//! accesses); in the tests it is a model of the device that records every
//! access. The drivers hold no pointers and need no `unsafe`: the runtime
//! (`cohesix-rt`) is the only crate of the image that does.
//!
//! - [`cadence_uart`]: the Cadence UART of the Zynq UltraScale+ (ZCU102's
//!   PS UART1 carries the host's 9P stream), interrupt-driven receive and
//!   transmit with overrun, framing and parity errors counted;
//! - [`cadence_ttc`]: one counter of a Cadence Triple Timer Counter in
//!   interval mode: the ZCU102 image's tick;
//! - [`pl031`]: the ARM PrimeCell PL031 real-time clock's match interrupt:
//!   the tick on QEMU `virt`.

#![no_std]
#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

extern crate alloc;

pub mod cadence_ttc;
pub mod cadence_uart;
pub mod pl031;

use core::sync::atomic::{AtomicU32, Ordering};

/// A device's 32-bit register block, addressed by byte offset.
///
/// Reads may have side effects (a FIFO pops, a clear-on-read status
/// clears), so a driver reads each register exactly when its datasheet says
/// to, and never speculatively.
pub trait Registers {
    /// Reads the register at byte `offset`.
    fn read(&self, offset: usize) -> u32;
    /// Writes `value` to the register at byte `offset`.
    fn write(&self, offset: usize, value: u32);
}

/// A mapped device page as the runtime hands it to a PD. An offset beyond
/// the mapping reads 0 and ignores writes (a `.system` file that maps too
/// little is caught by the driver's size check before this matters).
impl Registers for [AtomicU32] {
    fn read(&self, offset: usize) -> u32 {
        self.get(offset / 4)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }

    fn write(&self, offset: usize, value: u32) {
        if let Some(w) = self.get(offset / 4) {
            w.store(value, Ordering::Relaxed);
        }
    }
}

impl<R: Registers + ?Sized> Registers for &R {
    fn read(&self, offset: usize) -> u32 {
        (**self).read(offset)
    }

    fn write(&self, offset: usize, value: u32) {
        (**self).write(offset, value)
    }
}

/// A periodic interrupt source: what the timer PD needs of its device.
pub trait TickSource {
    /// Programs the device for one interrupt per period and enables it;
    /// `now_ms` is the PD's uptime.
    fn start(&mut self, now_ms: u64);
    /// Answers the device's interrupt at `now_ms` (clears it and, where the
    /// device needs it, arms the next one). `true` if it was a tick;
    /// `false` for an interrupt the device does not account for.
    fn acknowledge(&mut self, now_ms: u64) -> bool;
}

#[cfg(test)]
pub(crate) mod fake {
    //! A register block that records every access, for the drivers' tests.
    extern crate std;
    use core::cell::RefCell;
    use std::vec::Vec;

    /// One register access.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Access {
        Read(usize, u32),
        Write(usize, u32),
    }

    /// The log of accesses a model keeps.
    #[derive(Debug, Default)]
    pub struct Log(pub RefCell<Vec<Access>>);

    impl Log {
        pub fn push(&self, a: Access) {
            self.0.borrow_mut().push(a);
        }
        pub fn writes(&self) -> Vec<(usize, u32)> {
            self.0
                .borrow()
                .iter()
                .filter_map(|a| match *a {
                    Access::Write(o, v) => Some((o, v)),
                    Access::Read(..) => None,
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Registers;
    use core::sync::atomic::AtomicU32;

    #[test]
    fn a_mapped_page_reads_and_writes_words_and_ignores_what_is_outside() {
        let page: [AtomicU32; 4] = Default::default();
        let regs: &[AtomicU32] = &page;
        regs.write(0x8, 0xdead_beef);
        assert_eq!(regs.read(0x8), 0xdead_beef);
        assert_eq!(regs.read(0x0), 0);
        regs.write(0x10, 1);
        assert_eq!(regs.read(0x10), 0);
    }
}
