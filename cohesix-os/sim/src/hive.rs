//! The whole hive in the simulator: a board's `.system` file ([`Board`])
//! with NineDoor, the worker slots, the timer and the host-facing PDs, each
//! host port (the virtio console or the ZCU102's UART, the network card)
//! replaced by a [`HostPipe`], and the hive seed region filled from the
//! caller's bytes. The timer PD runs its real driver over plain memory: a
//! tick writes what the device would show (the TTC's interval bit) before
//! raising the IRQ.

use crate::pipe::HostPipe;
use crate::sim::{Factory, SimError, SimHandler, Simulator};
use crate::system::System;
use crate::{Board, PdEnv};
use cohesix_drivers::Registers;
use cohesix_drivers::cadence_ttc;
use cohesix_pds::mux::ConnId;
use cohesix_pds::wiring::device::IRQ;
use cohesix_pds::wiring::timer;
use cohesix_pds::{DevicePd, GpuWorkerPd, HeartbeatPd, NineDoorPd, TimerPd};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Deliveries allowed before a boot or an exchange counts as a livelock.
pub const MAX_STEPS: usize = 10_000;

/// The prefill file name of the seed region in every board's `.system`.
pub const SEED_FILE: &str = "hive_seed.bin";

/// Which host-facing PD a host session goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLink {
    /// The device PD (the virtio console or the UART on hardware).
    Console,
    /// The network PD (TCP on hardware).
    Net,
}

/// A booted hive and the host end of its device PD.
#[derive(Debug)]
pub struct HiveSim {
    /// The board whose `.system` file was booted.
    pub board: Board,
    /// The simulator.
    pub sim: Simulator,
    /// The host end of the device PD's console.
    pub host: HostPipe,
    /// The host end of the network PD's port (a pipe here: the TCP port
    /// itself is `cohesix_pds::TcpPort`, tested on its own).
    pub net: HostPipe,
}

fn boxed<T: SimHandler, E: std::fmt::Display>(
    r: Result<T, E>,
) -> Result<Box<dyn SimHandler>, String> {
    r.map(|h| Box::new(h) as Box<dyn SimHandler>)
        .map_err(|e| e.to_string())
}

/// The PD factories of every board's images: the device PD (`device.elf`
/// or `uart.elf`) on `host`, the network PD on `net`.
pub fn factories(host: &HostPipe, net: &HostPipe) -> BTreeMap<String, Factory> {
    let mut f: BTreeMap<String, Factory> = BTreeMap::new();
    f.insert(
        "ninedoor.elf".into(),
        Rc::new(|env: &PdEnv<'_>| boxed(NineDoorPd::new(env))),
    );
    f.insert(
        "worker.elf".into(),
        Rc::new(|env: &PdEnv<'_>| boxed(HeartbeatPd::new(env))),
    );
    f.insert(
        "gpuworker.elf".into(),
        Rc::new(|env: &PdEnv<'_>| boxed(GpuWorkerPd::new(env))),
    );
    f.insert(
        "timer.elf".into(),
        Rc::new(|env: &PdEnv<'_>| boxed(TimerPd::pl031(env))),
    );
    f.insert(
        "ttc-timer.elf".into(),
        Rc::new(|env: &PdEnv<'_>| boxed(TimerPd::ttc(env))),
    );
    let port = net.clone();
    f.insert(
        "net.elf".into(),
        Rc::new(move |env: &PdEnv<'_>| boxed(DevicePd::new(port.clone(), env))),
    );
    for image in ["device.elf", "uart.elf"] {
        let port = host.clone();
        f.insert(
            image.into(),
            Rc::new(move |env: &PdEnv<'_>| boxed(DevicePd::new(port.clone(), env))),
        );
    }
    f
}

impl HiveSim {
    /// Parses QEMU `virt`'s `.system`, builds every PD and boots them, with
    /// `seed` as the hive's boot entropy.
    pub fn boot(seed: [u8; 64]) -> Result<HiveSim, Box<dyn std::error::Error>> {
        HiveSim::boot_page(&seed)
    }

    /// [`HiveSim::boot`] with the whole seed page as the image builder
    /// writes it: the 64-byte seed, then anything after it (the test knob,
    /// `cohesix_pds::FaultKnob`).
    pub fn boot_page(page: &[u8]) -> Result<HiveSim, Box<dyn std::error::Error>> {
        HiveSim::boot_board(Board::QemuVirt, page)
    }

    /// [`HiveSim::boot_page`] of `board`'s `.system` file.
    pub fn boot_board(board: Board, page: &[u8]) -> Result<HiveSim, Box<dyn std::error::Error>> {
        let system = System::parse(board.system())?;
        let host = HostPipe::default();
        let net = HostPipe::default();
        let prefill = BTreeMap::from([(SEED_FILE.to_owned(), page.to_vec())]);
        let mut sim = Simulator::new(system, &factories(&host, &net), &prefill)?;
        sim.boot(MAX_STEPS)?;
        Ok(HiveSim {
            board,
            sim,
            host,
            net,
        })
    }

    /// The Queen's ticket, from the hive inside the NineDoor PD.
    pub fn queen_ticket(&self) -> Option<String> {
        let nd = self.sim.handler::<NineDoorPd>("ninedoor")?;
        Some(nd.hive()?.queen_ticket().to_owned())
    }

    /// One tick of the timer PD, a second of simulated time: raises the
    /// timer device's IRQ and runs the system until idle (each worker
    /// appends a heartbeat, NineDoor's bridge link meets its deadlines).
    pub fn tick(&mut self) -> Result<(), SimError> {
        self.sim.advance_clock(1000);
        if self.board == Board::Zcu102 {
            // What the TTC shows when its counter wraps: the interval bit
            // in the counter's interrupt register (read-to-clear on the
            // device; the driver's read sees it here).
            if let Some(ttc) = self.sim.region("ttc0") {
                let at = cadence_ttc::reg::INTERRUPT + 4 * timer::TTC_COUNTER;
                ttc.write(at, cadence_ttc::irq::IV);
            }
        }
        self.sim.raise_irq("timer", timer::IRQ.id())?;
        self.sim.run_until_idle(MAX_STEPS)
    }

    /// Sends `frames` from the host, raises the console IRQ, runs the
    /// system until idle and returns what came back.
    pub fn exchange(&mut self, frames: &[u8]) -> Result<Vec<u8>, SimError> {
        self.exchange_via(HostLink::Console, frames)
    }

    /// [`HiveSim::exchange`] through either host-facing PD, on its newest
    /// connection.
    pub fn exchange_via(&mut self, link: HostLink, frames: &[u8]) -> Result<Vec<u8>, SimError> {
        let pipe = match link {
            HostLink::Console => &self.host,
            HostLink::Net => &self.net,
        };
        let conn = pipe.current();
        self.exchange_on(link, conn, frames)
    }

    /// [`HiveSim::exchange`] on connection `conn` of either host-facing PD.
    pub fn exchange_on(
        &mut self,
        link: HostLink,
        conn: ConnId,
        frames: &[u8],
    ) -> Result<Vec<u8>, SimError> {
        let (pipe, pd) = match link {
            HostLink::Console => (self.host.clone(), "device"),
            HostLink::Net => (self.net.clone(), "net"),
        };
        pipe.send_on(conn, frames);
        self.sim.raise_irq(pd, IRQ.id())?;
        self.sim.run_until_idle(MAX_STEPS)?;
        Ok(pipe.take_from(conn))
    }
}
