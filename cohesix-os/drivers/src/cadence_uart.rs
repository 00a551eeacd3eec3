//! The Cadence UART of the Zynq UltraScale+ MPSoC (two in the PS: UART0 at
//! `0xff00_0000`, SPI 21; UART1 at `0xff01_0000`, SPI 22).
//!
//! Register offsets, bits and the initialisation order follow the Zynq
//! UltraScale+ Device Technical Reference Manual (Xilinx UG1085, chapter
//! 21 "UART Controller", section "Programming Model") and its register
//! reference (UG1087, module "UART"). The receive path is interrupt-driven:
//! the receive-FIFO trigger (`RTRIG`) fires once [`Config::rx_trigger`]
//! bytes wait, and the receiver timeout (`TIMEOUT`) fires when fewer stop
//! arriving, so a short 9P frame is not left in the FIFO. The transmit path
//! queues what the PD writes and feeds the FIFO from the TX-empty interrupt
//! (`TEMPTY`), enabled only while bytes are queued. Receive overruns,
//! framing and parity errors are counted ([`Counters`]), never silently
//! lost.

use crate::Registers;
use alloc::collections::VecDeque;

/// Register byte offsets (UG1087, "UART Module").
pub mod reg {
    /// `Control`: enables, resets and the receiver-timeout restart.
    pub const CR: usize = 0x00;
    /// `mode`: character length, parity, stop bits, channel mode.
    pub const MR: usize = 0x04;
    /// `Intrpt_en`: writing 1 enables an interrupt (sets its `IMR` bit).
    pub const IER: usize = 0x08;
    /// `Intrpt_dis`: writing 1 disables an interrupt.
    pub const IDR: usize = 0x0c;
    /// `Intrpt_mask`: the enabled interrupts (read-only).
    pub const IMR: usize = 0x10;
    /// `Chnl_int_sts`: raised interrupt conditions, sticky, write 1 to clear.
    pub const ISR: usize = 0x14;
    /// `Baud_rate_gen`: the baud-rate clock divisor `CD`.
    pub const BRGR: usize = 0x18;
    /// `Rcvr_timeout`: the receiver timeout, in units of 4 bit periods.
    pub const RTOR: usize = 0x1c;
    /// `Rcvr_FIFO_trigger_level`: bytes in the RX FIFO that raise `RTRIG`.
    pub const RTRIG: usize = 0x20;
    /// `Channel_sts`: live FIFO status (read-only).
    pub const SR: usize = 0x2c;
    /// `TX_RX_FIFO`: a read pops the RX FIFO, a write pushes the TX FIFO.
    pub const FIFO: usize = 0x30;
    /// `Baud_rate_divider`: `BDIV`, bit periods per baud sample minus one.
    pub const BDIV: usize = 0x34;
}

/// `Control` register bits.
pub mod cr {
    /// Software reset of the RX data path (self-clearing).
    pub const RXRST: u32 = 1 << 0;
    /// Software reset of the TX data path (self-clearing).
    pub const TXRST: u32 = 1 << 1;
    /// Receiver enable.
    pub const RX_EN: u32 = 1 << 2;
    /// Receiver disable (wins over `RX_EN`).
    pub const RX_DIS: u32 = 1 << 3;
    /// Transmitter enable.
    pub const TX_EN: u32 = 1 << 4;
    /// Transmitter disable (wins over `TX_EN`).
    pub const TX_DIS: u32 = 1 << 5;
    /// Restarts the receiver timeout counter.
    pub const RSTTO: u32 = 1 << 6;
    /// Stop transmitter break.
    pub const STPBRK: u32 = 1 << 8;
}

/// `mode` register: 8 data bits (`CHRL` = 0b0x), no parity (`PAR` =
/// 0b1xx), one stop bit (`NBSTOP` = 0b00), normal mode (`CHMODE` = 0b00),
/// `uart_ref_clk` undivided (`CLKS` = 0).
pub const MODE_8N1: u32 = 0b100 << 3;

/// Interrupt bits, the same in `IER`, `IDR`, `IMR` and `ISR`.
pub mod irq {
    /// RX FIFO holds at least the trigger level.
    pub const RTRIG: u32 = 1 << 0;
    /// RX FIFO empty.
    pub const REMPTY: u32 = 1 << 1;
    /// RX FIFO full.
    pub const RFUL: u32 = 1 << 2;
    /// TX FIFO empty.
    pub const TEMPTY: u32 = 1 << 3;
    /// TX FIFO full.
    pub const TFUL: u32 = 1 << 4;
    /// Receiver overflow: a byte arrived with the RX FIFO full and was lost.
    pub const ROVR: u32 = 1 << 5;
    /// Receiver framing error.
    pub const FRAME: u32 = 1 << 6;
    /// Receiver parity error.
    pub const PARE: u32 = 1 << 7;
    /// Receiver timeout: bytes wait below the trigger level and no more came.
    pub const TIMEOUT: u32 = 1 << 8;
    /// Transmitter overflow: a write with the TX FIFO full.
    pub const TOVR: u32 = 1 << 12;
    /// Every interrupt source (bits 0..=13).
    pub const ALL: u32 = 0x3fff;
}

/// `Channel_sts` bits.
pub mod sr {
    /// RX FIFO empty.
    pub const REMPTY: u32 = 1 << 1;
    /// TX FIFO full.
    pub const TFUL: u32 = 1 << 4;
}

/// The interrupts the driver keeps enabled: data waiting and every
/// receive error.
pub const RX_INTERRUPTS: u32 = irq::RTRIG | irq::TIMEOUT | irq::ROVR | irq::FRAME | irq::PARE;

/// How the UART is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `uart_ref_clk` in Hz.
    pub ref_clock_hz: u32,
    /// Line rate (8N1).
    pub baud: u32,
    /// RX FIFO level (1..=63) that raises `RTRIG`.
    pub rx_trigger: u8,
    /// Receiver timeout in units of 4 bit periods (1..=255).
    pub rx_timeout: u8,
    /// Bytes the transmit queue holds before it refuses more.
    pub tx_queue: usize,
}

impl Config {
    /// The ZCU102's PS UART at 115200 8N1: `uart_ref_clk` is 100 MHz in the
    /// board's default PS configuration; trigger at half the 64-byte FIFO;
    /// timeout after about 10 character times; 64 KiB of transmit queue
    /// (eight 9P messages of the system's `msize`).
    pub const ZCU102: Config = Config {
        ref_clock_hz: 100_000_000,
        baud: 115_200,
        rx_trigger: 32,
        rx_timeout: 25,
        tx_queue: 64 * 1024,
    };
}

/// The baud-rate generator's two divisors: `baud = ref / (cd * (bdiv + 1))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divisors {
    /// `Baud_rate_gen.CD` (1..=65535; 1 bypasses, so 2.. here).
    pub cd: u16,
    /// `Baud_rate_divider.BDIV` (4..=255).
    pub bdiv: u8,
}

impl Divisors {
    /// The divisors that come closest to `baud` from `ref_clock_hz`, if any
    /// come within 2 % (UART peers tolerate about that much).
    pub fn for_baud(ref_clock_hz: u32, baud: u32) -> Option<Divisors> {
        if baud == 0 {
            return None;
        }
        let mut best: Option<(u64, Divisors)> = None;
        for bdiv in 4u8..=255 {
            let per = u64::from(baud) * (u64::from(bdiv) + 1);
            let cd = (u64::from(ref_clock_hz) + per / 2) / per;
            if !(2..=0xffff).contains(&cd) {
                continue;
            }
            let actual = u64::from(ref_clock_hz) / (cd * (u64::from(bdiv) + 1));
            let err = actual.abs_diff(u64::from(baud));
            if best.is_none_or(|(e, _)| err < e) {
                best = Some((
                    err,
                    Divisors {
                        cd: cd as u16,
                        bdiv,
                    },
                ));
            }
        }
        best.filter(|(err, _)| err * 50 <= u64::from(baud))
            .map(|(_, d)| d)
    }

    /// The line rate these divisors give.
    pub fn baud(&self, ref_clock_hz: u32) -> u32 {
        ref_clock_hz / (u32::from(self.cd) * (u32::from(self.bdiv) + 1))
    }
}

/// Why the UART could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartError {
    /// No divisors reach the baud rate from the reference clock.
    NoBaud {
        /// The reference clock asked for.
        ref_clock_hz: u32,
        /// The line rate asked for.
        baud: u32,
    },
    /// A trigger level or timeout outside the register's range.
    BadConfig(&'static str),
}

impl core::fmt::Display for UartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UartError::NoBaud { ref_clock_hz, baud } => write!(
                f,
                "uart: no divisors give {baud} baud from a {ref_clock_hz} Hz reference clock"
            ),
            UartError::BadConfig(what) => write!(f, "uart: {what}"),
        }
    }
}

/// What the UART has seen since it was set up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes read from the RX FIFO.
    pub rx_bytes: u64,
    /// Bytes written into the TX FIFO.
    pub tx_bytes: u64,
    /// Receive-overflow interrupts: each means at least one byte was lost.
    pub rx_overruns: u64,
    /// Framing errors.
    pub framing_errors: u64,
    /// Parity errors.
    pub parity_errors: u64,
    /// Bytes refused because the transmit queue was full.
    pub tx_dropped: u64,
}

/// What one interrupt reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interrupt {
    /// The `ISR` bits that were raised (and are now cleared).
    pub status: u32,
    /// Receive errors among them (overrun, framing, parity): the caller
    /// says so on its console.
    pub errors: u32,
}

/// Bytes the driver's receive buffer holds: a few FIFOs' worth, taken
/// at interrupt time and handed out by [`CadenceUart::read`].
pub const RX_BUFFER: usize = 1024;

/// The driver: one UART, its receive buffer, transmit queue and counters.
#[derive(Debug)]
pub struct CadenceUart<R: Registers> {
    regs: R,
    rxq: VecDeque<u8>,
    txq: VecDeque<u8>,
    tx_capacity: usize,
    tx_irq: bool,
    counters: Counters,
}

impl<R: Registers> CadenceUart<R> {
    /// Sets the UART up (UG1085, "UART Controller > Programming Model":
    /// disable, mask and clear interrupts, set the mode and baud rate,
    /// reset the data paths, set the trigger and timeout, enable) and
    /// enables the receive interrupts.
    pub fn new(regs: R, config: &Config) -> Result<CadenceUart<R>, UartError> {
        let d = Divisors::for_baud(config.ref_clock_hz, config.baud).ok_or(UartError::NoBaud {
            ref_clock_hz: config.ref_clock_hz,
            baud: config.baud,
        })?;
        if !(1..=63).contains(&config.rx_trigger) {
            return Err(UartError::BadConfig("RX trigger level must be 1..=63"));
        }
        if config.rx_timeout == 0 {
            return Err(UartError::BadConfig(
                "a receiver timeout of 0 disables it: short frames would wait",
            ));
        }
        regs.write(reg::CR, cr::RX_DIS | cr::TX_DIS);
        regs.write(reg::IDR, irq::ALL);
        regs.write(reg::ISR, irq::ALL);
        regs.write(reg::MR, MODE_8N1);
        regs.write(reg::BRGR, u32::from(d.cd));
        regs.write(reg::BDIV, u32::from(d.bdiv));
        regs.write(reg::CR, cr::RXRST | cr::TXRST | cr::RX_DIS | cr::TX_DIS);
        regs.write(reg::RTRIG, u32::from(config.rx_trigger));
        regs.write(reg::RTOR, u32::from(config.rx_timeout));
        regs.write(reg::CR, Self::ENABLED | cr::RSTTO);
        regs.write(reg::IER, RX_INTERRUPTS);
        Ok(CadenceUart {
            regs,
            rxq: VecDeque::new(),
            txq: VecDeque::new(),
            tx_capacity: config.tx_queue,
            tx_irq: false,
            counters: Counters::default(),
        })
    }

    const ENABLED: u32 = cr::RX_EN | cr::TX_EN | cr::STPBRK;

    /// Answers the UART's interrupt: reads `ISR`, moves what the RX FIFO
    /// holds into the driver's receive buffer, clears the bits it read, and
    /// drains again (bytes that came in between). Draining before clearing
    /// means a burst that was still above the trigger level while it was
    /// being read does not leave `RTRIG` raised for a second, empty
    /// interrupt. Also counts receive errors, restarts the receiver
    /// timeout after it fired, and refills the TX FIFO. The caller then
    /// [`read`](Self::read)s.
    pub fn interrupt(&mut self) -> Interrupt {
        let status = self.regs.read(reg::ISR);
        self.drain_rx();
        self.regs.write(reg::ISR, status);
        self.drain_rx();
        if status & irq::ROVR != 0 {
            self.counters.rx_overruns += 1;
        }
        if status & irq::FRAME != 0 {
            self.counters.framing_errors += 1;
        }
        if status & irq::PARE != 0 {
            self.counters.parity_errors += 1;
        }
        if status & irq::TIMEOUT != 0 {
            self.regs.write(reg::CR, Self::ENABLED | cr::RSTTO);
        }
        self.pump_tx();
        Interrupt {
            status,
            errors: status & (irq::ROVR | irq::FRAME | irq::PARE),
        }
    }

    /// Moves RX FIFO bytes into the receive buffer while it has room (when
    /// it has none, the FIFO keeps them and `RTRIG` stays raised).
    fn drain_rx(&mut self) {
        while self.rxq.len() < RX_BUFFER && self.regs.read(reg::SR) & sr::REMPTY == 0 {
            self.rxq.push_back(self.regs.read(reg::FIFO) as u8);
            self.counters.rx_bytes += 1;
        }
    }

    /// Takes what has been received, up to `buf.len()` bytes, without
    /// waiting: the receive buffer first, then the RX FIFO; 0 when both
    /// are empty.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let Some(b) = self.rxq.pop_front() else { break };
            buf[n] = b;
            n += 1;
        }
        while n < buf.len() && self.regs.read(reg::SR) & sr::REMPTY == 0 {
            buf[n] = self.regs.read(reg::FIFO) as u8;
            self.counters.rx_bytes += 1;
            n += 1;
        }
        n
    }

    /// Queues `data` for sending and starts feeding the TX FIFO. Returns
    /// the bytes taken: fewer than `data.len()` only when the transmit
    /// queue is full (the rest is counted in [`Counters::tx_dropped`]).
    pub fn write(&mut self, data: &[u8]) -> usize {
        let room = self.tx_capacity.saturating_sub(self.txq.len());
        let take = data.len().min(room);
        self.txq.extend(&data[..take]);
        self.counters.tx_dropped += (data.len() - take) as u64;
        self.pump_tx();
        take
    }

    /// Bytes queued and not yet in the TX FIFO.
    pub fn tx_pending(&self) -> usize {
        self.txq.len()
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Moves queued bytes into the TX FIFO while it has room; keeps the
    /// TX-empty interrupt enabled exactly while bytes remain queued.
    fn pump_tx(&mut self) {
        while !self.txq.is_empty() && self.regs.read(reg::SR) & sr::TFUL == 0 {
            if let Some(b) = self.txq.pop_front() {
                self.regs.write(reg::FIFO, u32::from(b));
                self.counters.tx_bytes += 1;
            }
        }
        let want = !self.txq.is_empty();
        if want != self.tx_irq {
            if want {
                // TEMPTY is sticky and was raised whenever the FIFO last ran
                // empty: clear it now that the FIFO is full, so the line
                // rises when it next empties, not at once.
                self.regs.write(reg::ISR, irq::TEMPTY);
                self.regs.write(reg::IER, irq::TEMPTY);
            } else {
                self.regs.write(reg::IDR, irq::TEMPTY);
            }
            self.tx_irq = want;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::fake::{Access, Log};
    use core::cell::RefCell;
    use std::vec::Vec;

    /// A model of the UART as UG1085 describes it: 64-byte FIFOs, sticky
    /// `ISR` bits set from the live status and cleared by writing 1, the
    /// interrupt line high while `IMR & ISR` is non-zero.
    #[derive(Default)]
    struct Model {
        log: Log,
        s: RefCell<State>,
    }

    #[derive(Default)]
    struct State {
        regs: [u32; 32],
        imr: u32,
        isr: u32,
        rx: std::collections::VecDeque<u8>,
        tx_fifo: Vec<u8>,
        /// What left the TX FIFO for the line.
        wire: Vec<u8>,
        /// A timeout is due (bytes arrived, none since).
        timeout: bool,
    }

    const FIFO: usize = 64;

    impl State {
        fn update(&mut self) {
            let trig = self.regs[reg::RTRIG / 4] as usize;
            if trig > 0 && self.rx.len() >= trig {
                self.isr |= irq::RTRIG;
            }
            if self.rx.is_empty() {
                self.isr |= irq::REMPTY;
            }
            if self.rx.len() == FIFO {
                self.isr |= irq::RFUL;
            }
            if self.tx_fifo.is_empty() {
                self.isr |= irq::TEMPTY;
            }
            if self.tx_fifo.len() == FIFO {
                self.isr |= irq::TFUL;
            }
        }
        fn enabled(&self) -> bool {
            let c = self.regs[reg::CR / 4];
            c & cr::RX_EN != 0 && c & cr::RX_DIS == 0
        }
    }

    impl Model {
        fn line(&self) -> bool {
            let s = self.s.borrow();
            s.imr & s.isr != 0
        }
        /// Bytes arriving from the line; those beyond a full FIFO are lost.
        fn arrive(&self, bytes: &[u8]) {
            let mut s = self.s.borrow_mut();
            if !s.enabled() {
                return;
            }
            for &b in bytes {
                if s.rx.len() == FIFO {
                    s.isr |= irq::ROVR;
                } else {
                    s.rx.push_back(b);
                }
            }
            s.timeout = true;
            s.update();
        }
        /// The receiver timeout elapsing.
        fn idle(&self) {
            let mut s = self.s.borrow_mut();
            if core::mem::take(&mut s.timeout) && !s.rx.is_empty() {
                s.isr |= irq::TIMEOUT;
            }
        }
        /// The line taking up to `n` bytes from the TX FIFO.
        fn drain(&self, n: usize) {
            let mut s = self.s.borrow_mut();
            let n = n.min(s.tx_fifo.len());
            let sent: Vec<u8> = s.tx_fifo.drain(..n).collect();
            s.wire.extend(sent);
            s.update();
        }
        fn raise(&self, bits: u32) {
            self.s.borrow_mut().isr |= bits;
        }
    }

    impl Registers for Model {
        fn read(&self, offset: usize) -> u32 {
            let mut s = self.s.borrow_mut();
            let v = match offset {
                reg::IMR => s.imr,
                reg::ISR => s.isr,
                reg::SR => {
                    let mut v = 0;
                    if s.rx.is_empty() {
                        v |= sr::REMPTY;
                    }
                    if s.tx_fifo.len() == FIFO {
                        v |= sr::TFUL;
                    }
                    v
                }
                reg::FIFO => {
                    let b = s.rx.pop_front().map_or(0, u32::from);
                    s.update();
                    b
                }
                o => s.regs[o / 4],
            };
            self.log.push(Access::Read(offset, v));
            v
        }

        fn write(&self, offset: usize, value: u32) {
            self.log.push(Access::Write(offset, value));
            let mut s = self.s.borrow_mut();
            match offset {
                reg::IER => s.imr |= value,
                reg::IDR => s.imr &= !value,
                reg::ISR => s.isr &= !value,
                reg::FIFO => {
                    if s.tx_fifo.len() == FIFO {
                        s.isr |= irq::TOVR;
                    } else {
                        s.tx_fifo.push(value as u8);
                    }
                }
                reg::CR => {
                    if value & cr::RXRST != 0 {
                        s.rx.clear();
                    }
                    if value & cr::TXRST != 0 {
                        s.tx_fifo.clear();
                    }
                    s.regs[0] = value & !(cr::RXRST | cr::TXRST);
                }
                o => s.regs[o / 4] = value,
            }
            s.update();
        }
    }

    fn uart(model: &Model) -> CadenceUart<&Model> {
        CadenceUart::new(model, &Config::ZCU102).expect("the ZCU102 config is valid")
    }

    #[test]
    fn setup_follows_the_trm_order() {
        let m = Model::default();
        let _u = uart(&m);
        let d = Divisors::for_baud(100_000_000, 115_200).unwrap();
        assert_eq!(
            m.log.writes(),
            [
                (reg::CR, cr::RX_DIS | cr::TX_DIS),
                (reg::IDR, irq::ALL),
                (reg::ISR, irq::ALL),
                (reg::MR, MODE_8N1),
                (reg::BRGR, u32::from(d.cd)),
                (reg::BDIV, u32::from(d.bdiv)),
                (reg::CR, cr::RXRST | cr::TXRST | cr::RX_DIS | cr::TX_DIS),
                (reg::RTRIG, 32),
                (reg::RTOR, 25),
                (reg::CR, cr::RX_EN | cr::TX_EN | cr::STPBRK | cr::RSTTO),
                (reg::IER, RX_INTERRUPTS),
            ]
        );
        // Nothing waits, so the line is low although REMPTY and TEMPTY are
        // raised: they are masked.
        assert!(!m.line());
    }

    #[test]
    fn divisors_reach_common_rates_and_refuse_impossible_ones() {
        for (clk, baud) in [
            (100_000_000, 115_200),
            (50_000_000, 115_200),
            (100_000_000, 9600),
        ] {
            let d = Divisors::for_baud(clk, baud).unwrap();
            let got = d.baud(clk);
            assert!(
                got.abs_diff(baud) * 100 <= baud,
                "{clk} Hz/{baud}: {d:?} gives {got}"
            );
        }
        assert_eq!(Divisors::for_baud(1_000, 115_200), None);
        assert_eq!(Divisors::for_baud(100_000_000, 0), None);
        assert!(matches!(
            CadenceUart::new(
                &Model::default(),
                &Config {
                    baud: 1,
                    ..Config::ZCU102
                }
            ),
            Err(UartError::NoBaud { .. })
        ));
        assert!(matches!(
            CadenceUart::new(
                &Model::default(),
                &Config {
                    rx_trigger: 0,
                    ..Config::ZCU102
                }
            ),
            Err(UartError::BadConfig(_))
        ));
    }

    #[test]
    fn the_trigger_interrupt_brings_a_burst_and_reading_lowers_the_line() {
        let m = Model::default();
        let mut u = uart(&m);
        let burst: Vec<u8> = (0..40).collect();
        m.arrive(&burst);
        assert!(m.line(), "40 bytes are past the trigger level of 32");
        let irq = u.interrupt();
        assert_ne!(irq.status & irq::RTRIG, 0);
        assert_eq!(irq.errors, 0);
        let mut buf = [0u8; 128];
        assert_eq!(u.read(&mut buf), 40);
        assert_eq!(&buf[..40], &burst[..]);
        assert!(!m.line(), "the FIFO is empty and ISR was cleared");
        assert_eq!(u.counters().rx_bytes, 40);
    }

    #[test]
    fn a_short_frame_below_the_trigger_arrives_by_the_timeout() {
        let m = Model::default();
        let mut u = uart(&m);
        m.arrive(b"\x07\x00\x00\x00");
        assert!(!m.line(), "4 bytes are under the trigger");
        m.idle();
        assert!(m.line());
        let irq = u.interrupt();
        assert_ne!(irq.status & irq::TIMEOUT, 0);
        let mut buf = [0u8; 16];
        assert_eq!(u.read(&mut buf), 4);
        assert!(!m.line());
        // The timeout counter was restarted for the next quiet spell.
        let cr_writes: Vec<u32> = m
            .log
            .writes()
            .into_iter()
            .filter(|(o, _)| *o == reg::CR)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            cr_writes.last(),
            Some(&(cr::RX_EN | cr::TX_EN | cr::STPBRK | cr::RSTTO))
        );
    }

    #[test]
    fn overruns_framing_and_parity_errors_are_counted() {
        let m = Model::default();
        let mut u = uart(&m);
        let flood = [0x55u8; 100];
        m.arrive(&flood);
        let irq = u.interrupt();
        assert_eq!(irq.errors, irq::ROVR);
        let mut buf = [0u8; 128];
        assert_eq!(u.read(&mut buf), FIFO, "what fit in the FIFO is kept");
        m.raise(irq::FRAME | irq::PARE);
        let irq = u.interrupt();
        assert_eq!(irq.errors, irq::FRAME | irq::PARE);
        let c = u.counters();
        assert_eq!(
            (c.rx_overruns, c.framing_errors, c.parity_errors),
            (1, 1, 1)
        );
        assert!(!m.line());
    }

    #[test]
    fn transmit_queues_beyond_the_fifo_and_refills_on_tx_empty() {
        let m = Model::default();
        let mut u = uart(&m);
        let msg: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        assert_eq!(u.write(&msg), 200);
        assert_eq!(u.tx_pending(), 200 - FIFO);
        assert_eq!(
            m.s.borrow().imr & irq::TEMPTY,
            irq::TEMPTY,
            "TX-empty enabled while queued"
        );
        assert!(!m.line(), "the FIFO is still full");
        let mut rounds = 0;
        while u.tx_pending() > 0 || !m.s.borrow().tx_fifo.is_empty() {
            m.drain(FIFO);
            if m.line() {
                u.interrupt();
            }
            rounds += 1;
            assert!(rounds < 10, "the queue must drain");
        }
        assert_eq!(m.s.borrow().wire, msg);
        assert_eq!(
            m.s.borrow().imr & irq::TEMPTY,
            0,
            "TX-empty disabled once the queue is empty"
        );
        assert!(!m.line());
        assert_eq!(u.counters().tx_bytes, 200);
        assert_eq!(
            m.s.borrow().isr & irq::TOVR,
            0,
            "never wrote into a full FIFO"
        );
    }

    #[test]
    fn a_full_transmit_queue_refuses_and_counts() {
        let m = Model::default();
        let mut u = CadenceUart::new(
            &m,
            &Config {
                tx_queue: 100,
                ..Config::ZCU102
            },
        )
        .unwrap();
        let big = [1u8; 300];
        // The queue takes 100 (64 of them move on into the FIFO).
        assert_eq!(u.write(&big), 100);
        assert_eq!(u.counters().tx_dropped, 200);
    }
}
