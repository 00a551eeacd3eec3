//! One counter of a Cadence Triple Timer Counter (TTC) of the Zynq
//! UltraScale+ MPSoC: four TTCs at `0xff11_0000`..`0xff14_0000`, three
//! counters each, TTC0's counters on SPIs 36..=38.
//!
//! Offsets and bits follow the Zynq UltraScale+ Device TRM (Xilinx UG1085,
//! chapter 14 "Timers and Counters", section "Triple-timer Counter") and
//! its register reference (UG1087, module "TTC"): each register exists
//! once per counter, the three 4 bytes apart (`Clock_Control_1` at 0x00,
//! `_2` at 0x04, `_3` at 0x08). The counter runs in interval mode: it
//! counts up from 0 to `Interval_Counter` and raises the interval
//! interrupt as it wraps; `Interrupt_Register` clears when read.
//!
//! The counter's input clock is a board fact the PD cannot read (the
//! ZCU102's `LPD_LSBUS_CLK`, 100 MHz in its default PS configuration;
//! emulators may model another). The driver starts from the nominal clock
//! and calibrates once against the PD's uptime (the ARM generic timer,
//! whose rate the PD reads from `CNTFRQ_EL0`): if the first whole interval
//! is more than [`CALIBRATE_PERCENT`] % off, it recomputes the divisors
//! from the measured rate. The interval stays within 16 bits, so the same
//! values suit the 16-bit counters of earlier Cadence TTCs.

use crate::{Registers, TickSource};

/// Register byte offsets of counter 1; counter `n` (0-based) adds `4 * n`.
pub mod reg {
    /// `Clock_Control`: prescaler enable and value, clock source.
    pub const CLOCK_CONTROL: usize = 0x00;
    /// `Counter_Control`: disable, interval mode, reset, waveform.
    pub const COUNTER_CONTROL: usize = 0x0c;
    /// `Counter_Value` (read-only).
    pub const COUNTER_VALUE: usize = 0x18;
    /// `Interval_Counter`: the count at which interval mode wraps.
    pub const INTERVAL: usize = 0x24;
    /// `Interrupt_Register`: raised interrupts, cleared on read.
    pub const INTERRUPT: usize = 0x54;
    /// `Interrupt_Enable`.
    pub const INTERRUPT_ENABLE: usize = 0x60;
}

/// `Clock_Control` bits.
pub mod clock {
    /// Prescaler enable: the clock is divided by `2^(PS_V + 1)`.
    pub const PS_EN: u32 = 1 << 0;
    /// Shift of the 4-bit prescale value `PS_V`.
    pub const PS_V_SHIFT: u32 = 1;
}

/// `Counter_Control` bits.
pub mod control {
    /// Counter disable.
    pub const DIS: u32 = 1 << 0;
    /// Interval mode (wrap at `Interval_Counter`, not at overflow).
    pub const INT: u32 = 1 << 1;
    /// Reset the count to 0 (self-clearing).
    pub const RST: u32 = 1 << 4;
    /// Waveform output disable (the bit is an active-low enable).
    pub const WAVE_OFF: u32 = 1 << 5;
}

/// `Interrupt_Register` / `Interrupt_Enable` bits.
pub mod irq {
    /// Interval: the count wrapped at `Interval_Counter`.
    pub const IV: u32 = 1 << 0;
    /// Counter overflow.
    pub const OV: u32 = 1 << 4;
}

/// How far (in percent) the first measured interval may be from the
/// period before the driver recalibrates.
pub const CALIBRATE_PERCENT: u64 = 3;

/// The counter's divisors for one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divisors {
    /// `PS_V`, or `None` for the undivided clock.
    pub prescale: Option<u8>,
    /// `Interval_Counter`: counts per period minus one.
    pub interval: u16,
}

impl Divisors {
    /// The least prescaling that makes `period_ms` of a `clock_hz` clock
    /// fit a 16-bit interval; `None` if even the largest prescaler cannot.
    pub fn for_period(clock_hz: u64, period_ms: u64) -> Option<Divisors> {
        for exp in 0u32..=16 {
            let counts = (clock_hz.saturating_mul(period_ms) / 1000) >> exp;
            if counts < 2 {
                return None;
            }
            if counts - 1 <= 0xffff {
                return Some(Divisors {
                    prescale: exp.checked_sub(1).map(|v| v as u8),
                    interval: (counts - 1) as u16,
                });
            }
        }
        None
    }

    /// The `Clock_Control` value.
    pub fn clock_control(&self) -> u32 {
        match self.prescale {
            Some(v) => clock::PS_EN | (u32::from(v) << clock::PS_V_SHIFT),
            None => 0,
        }
    }

    /// Clock cycles per period these divisors count.
    pub fn cycles(&self) -> u64 {
        let div = self.prescale.map_or(1u64, |v| 2u64 << v);
        (u64::from(self.interval) + 1) * div
    }
}

/// Why the counter could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtcError {
    /// Counter index outside 0..3.
    NoSuchCounter(usize),
    /// No divisors give the period from the clock.
    NoDivisors {
        /// The clock asked for.
        clock_hz: u64,
        /// The period asked for.
        period_ms: u64,
    },
}

impl core::fmt::Display for TtcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TtcError::NoSuchCounter(n) => write!(f, "ttc: counter {n} (a TTC has counters 0..3)"),
            TtcError::NoDivisors {
                clock_hz,
                period_ms,
            } => write!(
                f,
                "ttc: no prescaler fits a {period_ms} ms period of a {clock_hz} Hz clock in 16 bits"
            ),
        }
    }
}

/// One TTC counter as a periodic tick.
#[derive(Debug)]
pub struct Ttc<R: Registers> {
    regs: R,
    base: usize,
    clock_hz: u64,
    period_ms: u64,
    divisors: Divisors,
    /// The uptime of the first tick, while the calibration waits for the
    /// second; `None` before the first and once calibrated.
    first_tick_ms: Option<u64>,
    calibrated: bool,
}

impl<R: Registers> Ttc<R> {
    /// Counter `counter` (0..3) of the TTC whose registers are `regs`, for
    /// one interrupt every `period_ms` of a nominal `clock_hz` input.
    pub fn new(regs: R, counter: usize, clock_hz: u64, period_ms: u64) -> Result<Ttc<R>, TtcError> {
        if counter >= 3 {
            return Err(TtcError::NoSuchCounter(counter));
        }
        let divisors = Divisors::for_period(clock_hz, period_ms).ok_or(TtcError::NoDivisors {
            clock_hz,
            period_ms,
        })?;
        Ok(Ttc {
            regs,
            base: 4 * counter,
            clock_hz,
            period_ms,
            divisors,
            first_tick_ms: None,
            calibrated: false,
        })
    }

    /// The divisors in use.
    pub fn divisors(&self) -> Divisors {
        self.divisors
    }

    /// The input clock the divisors assume (the nominal one until
    /// calibrated).
    pub fn clock_hz(&self) -> u64 {
        self.clock_hz
    }

    fn program(&self) {
        let r = &self.regs;
        r.write(
            self.base + reg::CLOCK_CONTROL,
            self.divisors.clock_control(),
        );
        r.write(self.base + reg::INTERVAL, u32::from(self.divisors.interval));
    }

    /// The first whole interval, measured: recompute the divisors from the
    /// clock it implies if it is too far from the period.
    fn calibrate(&mut self, measured_ms: u64) {
        self.calibrated = true;
        if measured_ms == 0
            || measured_ms.abs_diff(self.period_ms) * 100 <= self.period_ms * CALIBRATE_PERCENT
        {
            return;
        }
        let clock_hz = self.divisors.cycles() * 1000 / measured_ms;
        if let Some(d) = Divisors::for_period(clock_hz, self.period_ms) {
            self.clock_hz = clock_hz;
            self.divisors = d;
            self.program();
        }
    }
}

impl<R: Registers> TickSource for Ttc<R> {
    fn start(&mut self, _now_ms: u64) {
        let r = &self.regs;
        r.write(
            self.base + reg::COUNTER_CONTROL,
            control::DIS | control::WAVE_OFF,
        );
        r.write(self.base + reg::INTERRUPT_ENABLE, 0);
        // Clear on read: drop whatever an earlier owner left raised.
        let _ = r.read(self.base + reg::INTERRUPT);
        self.program();
        r.write(self.base + reg::INTERRUPT_ENABLE, irq::IV);
        r.write(
            self.base + reg::COUNTER_CONTROL,
            control::INT | control::RST | control::WAVE_OFF,
        );
    }

    fn acknowledge(&mut self, now_ms: u64) -> bool {
        let raised = self.regs.read(self.base + reg::INTERRUPT);
        if raised & irq::IV == 0 {
            return false;
        }
        if !self.calibrated {
            match self.first_tick_ms.take() {
                None => self.first_tick_ms = Some(now_ms),
                Some(first) => self.calibrate(now_ms.saturating_sub(first)),
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::fake::{Access, Log};
    use core::cell::Cell;

    /// A TTC model: the interrupt register clears when read; `wrap()` is the
    /// counter passing its interval.
    #[derive(Default)]
    struct Model {
        log: Log,
        regs: [Cell<u32>; 32],
        intr: [Cell<u32>; 3],
    }

    impl Model {
        fn wrap(&self, counter: usize) {
            let c = &self.intr[counter];
            c.set(c.get() | irq::IV);
        }
        fn line(&self, counter: usize) -> bool {
            self.intr[counter].get() & self.regs[(reg::INTERRUPT_ENABLE + 4 * counter) / 4].get()
                != 0
        }
    }

    impl Registers for Model {
        fn read(&self, offset: usize) -> u32 {
            let v = if (reg::INTERRUPT..reg::INTERRUPT + 12).contains(&offset) {
                self.intr[(offset - reg::INTERRUPT) / 4].replace(0)
            } else {
                self.regs[offset / 4].get()
            };
            self.log.push(Access::Read(offset, v));
            v
        }
        fn write(&self, offset: usize, value: u32) {
            self.log.push(Access::Write(offset, value));
            if !(reg::INTERRUPT..reg::INTERRUPT + 12).contains(&offset) {
                self.regs[offset / 4].set(value & !control::RST);
            }
        }
    }

    #[test]
    fn divisors_prescale_only_as_much_as_16_bits_need() {
        let d = Divisors::for_period(100_000_000, 1000).unwrap();
        assert_eq!(d.prescale, Some(10), "100 MHz / 2048 = 48828 counts");
        assert_eq!(d.interval, 48827);
        assert_eq!(d.clock_control(), clock::PS_EN | (10 << 1));
        let d = Divisors::for_period(1_000_000, 10).unwrap();
        assert_eq!((d.prescale, d.interval), (None, 9999));
        assert_eq!(Divisors::for_period(1, 1000), None);
        // 2^16 * 65536 counts is the most one interval can hold.
        assert_eq!(Divisors::for_period(u64::MAX / 1000, 1000), None);
    }

    #[test]
    fn start_programs_counter_two_in_the_trm_order() {
        let m = Model::default();
        let mut t = Ttc::new(&m, 1, 100_000_000, 1000).unwrap();
        t.start(0);
        let d = t.divisors();
        let base = 4;
        assert_eq!(
            m.log.writes(),
            [
                (
                    base + reg::COUNTER_CONTROL,
                    control::DIS | control::WAVE_OFF
                ),
                (base + reg::INTERRUPT_ENABLE, 0),
                (base + reg::CLOCK_CONTROL, d.clock_control()),
                (base + reg::INTERVAL, u32::from(d.interval)),
                (base + reg::INTERRUPT_ENABLE, irq::IV),
                (
                    base + reg::COUNTER_CONTROL,
                    control::INT | control::RST | control::WAVE_OFF
                ),
            ]
        );
        assert!(
            m.log
                .0
                .borrow()
                .contains(&Access::Read(base + reg::INTERRUPT, 0))
        );
        assert!(matches!(
            Ttc::new(&m, 3, 1, 1),
            Err(TtcError::NoSuchCounter(3))
        ));
    }

    #[test]
    fn an_interval_interrupt_is_a_tick_and_reading_clears_the_line() {
        let m = Model::default();
        let mut t = Ttc::new(&m, 0, 100_000_000, 1000).unwrap();
        t.start(0);
        assert!(!m.line(0));
        m.wrap(0);
        assert!(m.line(0));
        assert!(t.acknowledge(1000));
        assert!(!m.line(0));
        // A spurious interrupt (nothing raised) is not a tick.
        assert!(!t.acknowledge(1500));
    }

    #[test]
    fn a_clock_a_third_faster_than_nominal_is_calibrated_after_one_interval() {
        let m = Model::default();
        let mut t = Ttc::new(&m, 0, 100_000_000, 1000).unwrap();
        t.start(0);
        let nominal = t.divisors();
        // The device's clock is 133 MHz: an interval of nominal counts
        // lasts 752 ms.
        m.wrap(0);
        assert!(t.acknowledge(752));
        m.wrap(0);
        assert!(t.acknowledge(1504));
        let d = t.divisors();
        assert_ne!(d, nominal);
        let hz = t.clock_hz();
        assert!((132_000_000..134_000_000).contains(&hz), "{hz}");
        assert_eq!(m.regs[reg::INTERVAL / 4].get(), u32::from(d.interval));
        assert!(d.cycles().abs_diff(133_000_000) < 200_000);
        // Calibration happens once.
        let writes = m.log.writes().len();
        m.wrap(0);
        assert!(t.acknowledge(2000));
        assert_eq!(m.log.writes().len(), writes);
    }

    #[test]
    fn a_clock_within_tolerance_is_left_alone() {
        let m = Model::default();
        let mut t = Ttc::new(&m, 0, 100_000_000, 1000).unwrap();
        t.start(0);
        let writes = m.log.writes().len();
        for ms in [1000, 2010, 3000] {
            m.wrap(0);
            assert!(t.acknowledge(ms));
        }
        assert_eq!(m.log.writes().len(), writes);
        assert_eq!(t.clock_hz(), 100_000_000);
    }
}
