//! The Cohesix Microkit system on a Linux host: [`system`] parses and
//! checks the `.system` file (what `cargo xtask check` runs), [`Simulator`]
//! runs any system's PDs as handlers in one deterministic thread, and
//! [`hive`] boots a board's `.system` file ([`Board`]) with the real PD handlers
//! and a host pipe on the device PD, for the tests and for anyone who wants
//! to drive the hive without seL4.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod hive;
mod pipe;
mod sim;
pub mod system;

pub use pipe::{BridgePeer, HostPipe};
pub use sim::{Factory, PdEnv, PdState, SimError, SimHandler, Simulator};
pub use system::{System, SystemError};

/// A board the image is built for. The hive (NineDoor, the worker slots,
/// their rings and channels) is the same on every board; each board's
/// `.system` file (`cohesix-os/boards/<name>.system`) chooses the device
/// side: which PDs, which device pages, which IRQs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Board {
    /// QEMU's `virt` machine: virtio console and network card, PL031 RTC.
    QemuVirt,
    /// The Xilinx ZCU102 (or QEMU's `xlnx-zcu102`): Cadence UART1 for the
    /// host's 9P stream, Triple Timer Counter 0 for the tick.
    Zcu102,
}

impl Board {
    /// Every board, in the order `cargo xtask check` checks them.
    pub const ALL: [Board; 2] = [Board::QemuVirt, Board::Zcu102];

    /// Microkit's name for the board (`microkit --board`, the SDK's
    /// `board/<name>` directory), which also names its `.system` file.
    pub fn name(self) -> &'static str {
        match self {
            Board::QemuVirt => "qemu_virt_aarch64",
            Board::Zcu102 => "zcu102",
        }
    }

    /// The board named `name` (Microkit's name).
    pub fn from_name(name: &str) -> Option<Board> {
        Board::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The board's `.system` file, as text.
    pub fn system(self) -> &'static str {
        match self {
            Board::QemuVirt => include_str!("../../boards/qemu_virt_aarch64.system"),
            Board::Zcu102 => include_str!("../../boards/zcu102.system"),
        }
    }

    /// Whether the SDK's `debug` kernel for the board has the hardware
    /// debug API (Microkit 2.3.0 enables it for QEMU `virt` only): it
    /// decides the `IRQAckIRQ` label the board's IRQ-owning images use
    /// (`cohesix_abi::microkit::IRQ_ACK_LABEL` or `..._NO_HW_DEBUG`).
    pub fn hardware_debug_api(self) -> bool {
        matches!(self, Board::QemuVirt)
    }

    /// The `.system` file's path from the workspace root.
    pub fn system_path(self) -> String {
        format!("cohesix-os/boards/{}.system", self.name())
    }
}

impl std::fmt::Display for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// QEMU `virt`'s system file, the one the tests and the hive demo's
/// simulator boot unless they name another board.
pub const COHESIX_SYSTEM: &str = include_str!("../../boards/qemu_virt_aarch64.system");
