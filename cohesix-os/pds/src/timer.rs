//! The timer PD: the hive's clock tick. It owns one periodic interrupt
//! source (a [`TickSource`] from `cohesix-drivers`: the PL031 RTC on QEMU
//! `virt`, a Triple Timer Counter on the ZCU102) and answers each of its
//! interrupts by acknowledging the device and the IRQ, then notifying every
//! worker slot, NineDoor and, where the board has one, the network PD.
//! Workers append a heartbeat per tick, so a running system's telemetry
//! keeps growing; NineDoor's bridge link and the network PD's TCP stack
//! meet their deadlines on it.
//!
//! The device's registers are its region's words, handed to the driver as
//! they are: in the simulator the region is plain memory and a test raises
//! the IRQ (and, for a device that says why it interrupted, sets that
//! status word) itself.

use crate::wiring::timer;
use cohesix_abi::{Channel, Context, Handler, Regions};
use cohesix_drivers::TickSource;
use cohesix_drivers::cadence_ttc::{Ttc, TtcError};
use cohesix_drivers::pl031::{self, Pl031};
use core::sync::atomic::AtomicU32;

/// Seconds between ticks.
pub const TICK_S: u32 = 1;

/// A device register page as the runtime maps it.
pub type Page = &'static [AtomicU32];

/// Why the timer PD could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerError {
    /// The register window is not mapped, or is too small.
    NoRegisters(&'static str),
    /// The tick source refused its settings.
    Device(TtcError),
}

impl core::fmt::Display for TimerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TimerError::NoRegisters(s) => {
                write!(
                    f,
                    "timer: region '{s}' (the tick device's registers) is not mapped"
                )
            }
            TimerError::Device(e) => write!(f, "timer: {e}"),
        }
    }
}

/// The timer protection domain over tick source `T`.
#[derive(Debug)]
pub struct TimerPd<T: TickSource> {
    source: T,
    ticks: u64,
    spurious: u64,
}

fn page(regions: &dyn Regions, symbol: &'static str, span: usize) -> Result<Page, TimerError> {
    regions
        .region(symbol)
        .filter(|r| r.len() * 4 >= span)
        .ok_or(TimerError::NoRegisters(symbol))
}

impl TimerPd<Pl031<Page>> {
    /// The PD on QEMU `virt`'s PL031, mapped at [`timer::REGS`].
    pub fn pl031(regions: &dyn Regions) -> Result<Self, TimerError> {
        let regs = page(regions, timer::REGS, pl031::SPAN)?;
        Ok(TimerPd::new(Pl031::new(regs, TICK_S)))
    }
}

impl TimerPd<Ttc<Page>> {
    /// The PD on counter [`timer::TTC_COUNTER`] of the ZynqMP TTC mapped at
    /// [`timer::TTC_REGS`], its input clock nominally
    /// [`timer::TTC_CLOCK_HZ`].
    pub fn ttc(regions: &dyn Regions) -> Result<Self, TimerError> {
        let regs = page(regions, timer::TTC_REGS, 0x80)?;
        let ttc = Ttc::new(
            regs,
            timer::TTC_COUNTER,
            timer::TTC_CLOCK_HZ,
            u64::from(TICK_S) * 1000,
        )
        .map_err(TimerError::Device)?;
        Ok(TimerPd::new(ttc))
    }
}

impl<T: TickSource> TimerPd<T> {
    /// The PD over `source`.
    pub fn new(source: T) -> TimerPd<T> {
        TimerPd {
            source,
            ticks: 0,
            spurious: 0,
        }
    }

    /// Ticks delivered so far.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Interrupts the device did not account for (not ticks).
    pub fn spurious(&self) -> u64 {
        self.spurious
    }

    /// The tick source.
    pub fn source(&self) -> &T {
        &self.source
    }
}

impl<T: TickSource + 'static> Handler for TimerPd<T> {
    fn init(&mut self, ctx: &mut dyn Context) {
        self.source.start(ctx.uptime_ms());
    }

    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        if ch != timer::IRQ {
            return;
        }
        // The device first, then the kernel: both devices' lines are
        // level-triggered.
        let tick = self.source.acknowledge(ctx.uptime_ms());
        ctx.irq_ack(ch);
        if !tick {
            self.spurious = self.spurious.wrapping_add(1);
            return;
        }
        self.ticks = self.ticks.wrapping_add(1);
        for w in timer::WORKERS {
            ctx.notify(w);
        }
        ctx.notify(timer::NINEDOOR);
        // Only boards with a network PD wire this channel.
        if ctx.can_notify(timer::NET) {
            ctx.notify(timer::NET);
        }
    }
}
