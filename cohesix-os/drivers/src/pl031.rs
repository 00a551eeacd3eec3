//! The ARM PrimeCell PL031 real-time clock (QEMU `virt` has one at
//! `0x0901_0000`, SPI 2): a seconds counter with a match register. Offsets
//! from the PL031 Technical Reference Manual (ARM DDI 0224), "Register
//! summary".

use crate::{Registers, TickSource};

/// Register byte offsets.
pub mod reg {
    /// `RTCDR`: the current count (seconds), read-only.
    pub const DR: usize = 0x00;
    /// `RTCMR`: the match value.
    pub const MR: usize = 0x04;
    /// `RTCCR`: bit 0 starts the counter.
    pub const CR: usize = 0x0c;
    /// `RTCIMSC`: bit 0 unmasks the match interrupt.
    pub const IMSC: usize = 0x10;
    /// `RTCICR`: writing bit 0 clears the interrupt.
    pub const ICR: usize = 0x1c;
}

/// The bytes of register space the driver touches.
pub const SPAN: usize = reg::ICR + 4;

/// The PL031 as a tick every `period_s` seconds: each interrupt is cleared
/// and the match register set `period_s` past the count.
#[derive(Debug)]
pub struct Pl031<R: Registers> {
    regs: R,
    period_s: u32,
}

impl<R: Registers> Pl031<R> {
    /// The driver over the RTC's registers.
    pub fn new(regs: R, period_s: u32) -> Pl031<R> {
        Pl031 {
            regs,
            period_s: period_s.max(1),
        }
    }

    fn arm(&self) {
        let now = self.regs.read(reg::DR);
        self.regs.write(reg::MR, now.wrapping_add(self.period_s));
    }
}

impl<R: Registers> TickSource for Pl031<R> {
    fn start(&mut self, _now_ms: u64) {
        self.regs.write(reg::CR, 1);
        self.regs.write(reg::ICR, 1);
        self.arm();
        self.regs.write(reg::IMSC, 1);
    }

    fn acknowledge(&mut self, _now_ms: u64) -> bool {
        // Clear at the device before the kernel unmasks the line: the
        // PL031's interrupt is level-triggered.
        self.regs.write(reg::ICR, 1);
        self.arm();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU32;

    #[test]
    fn each_tick_clears_and_sets_the_next_match() {
        let page: [AtomicU32; 8] = Default::default();
        let regs: &[AtomicU32] = &page;
        regs.write(reg::DR, 100);
        let mut rtc = Pl031::new(regs, 1);
        rtc.start(0);
        assert_eq!((regs.read(reg::CR), regs.read(reg::IMSC)), (1, 1));
        assert_eq!(regs.read(reg::MR), 101);
        regs.write(reg::DR, 101);
        assert!(rtc.acknowledge(1000));
        assert_eq!(regs.read(reg::MR), 102);
    }
}
