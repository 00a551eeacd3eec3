//! The timer PD: the hive's clock tick. It drives an ARM PrimeCell PL031
//! real-time clock (QEMU virt has one at `0x0901_0000`, SPI 2): the RTC
//! counts seconds, raises its interrupt when the count reaches the match
//! register, and the PD answers each interrupt by clearing it, setting the
//! next match [`TICK_S`] seconds on, acknowledging the IRQ and notifying
//! every worker and the network PD. Workers append a heartbeat per tick, so
//! a running system's telemetry keeps growing; the network PD polls its TCP
//! stack (retransmissions).
//!
//! The registers are reached through the region's words (`Relaxed` atomic
//! loads and stores, which are single aligned 32-bit accesses: what a
//! device register wants). In the simulator the region is plain memory: the
//! count reads 0 and a test raises the IRQ itself.

use crate::wiring::timer;
use cohesix_abi::{Channel, Context, Handler, Regions};
use core::sync::atomic::{AtomicU32, Ordering};

/// Seconds between ticks.
pub const TICK_S: u32 = 1;

/// PL031 register offsets in bytes (PL031 TRM, "Register summary").
mod reg {
    /// RTCDR: the current count (seconds), read-only.
    pub const DR: usize = 0x00;
    /// RTCMR: the match value.
    pub const MR: usize = 0x04;
    /// RTCCR: bit 0 starts the counter.
    pub const CR: usize = 0x0c;
    /// RTCIMSC: bit 0 unmasks the match interrupt.
    pub const IMSC: usize = 0x10;
    /// RTCICR: writing bit 0 clears the interrupt.
    pub const ICR: usize = 0x1c;
}

/// Why the timer PD could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerError {
    /// The register window is not mapped, or is too small.
    NoRegisters(&'static str),
}

impl core::fmt::Display for TimerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TimerError::NoRegisters(s) => {
                write!(f, "timer: region '{s}' (the PL031 registers) is not mapped")
            }
        }
    }
}

/// The timer protection domain.
#[derive(Debug)]
pub struct TimerPd {
    regs: &'static [AtomicU32],
    ticks: u64,
}

impl TimerPd {
    /// The PD over its register window.
    pub fn new(regions: &dyn Regions) -> Result<TimerPd, TimerError> {
        let regs = regions
            .region(timer::REGS)
            .filter(|r| r.len() > reg::ICR / 4)
            .ok_or(TimerError::NoRegisters(timer::REGS))?;
        Ok(TimerPd { regs, ticks: 0 })
    }

    /// Ticks delivered so far.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    fn read(&self, r: usize) -> u32 {
        self.regs
            .get(r / 4)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }

    fn write(&self, r: usize, v: u32) {
        if let Some(w) = self.regs.get(r / 4) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Sets the match register one tick past the current count.
    fn arm(&self) {
        let now = self.read(reg::DR);
        self.write(reg::MR, now.wrapping_add(TICK_S));
    }
}

impl Handler for TimerPd {
    fn init(&mut self, _ctx: &mut dyn Context) {
        self.write(reg::CR, 1);
        self.write(reg::ICR, 1);
        self.arm();
        self.write(reg::IMSC, 1);
    }

    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        if ch != timer::IRQ {
            return;
        }
        // Clear at the device before the kernel unmasks the line: the
        // PL031's interrupt is level-triggered.
        self.write(reg::ICR, 1);
        self.arm();
        ctx.irq_ack(ch);
        self.ticks = self.ticks.wrapping_add(1);
        for w in timer::WORKERS {
            ctx.notify(w);
        }
        ctx.notify(timer::NET);
        ctx.notify(timer::NINEDOOR);
    }
}
