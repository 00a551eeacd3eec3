//! Child PDs and their faults: what a parent PD names a child by, and what
//! the kernel tells it when that child faults.
//!
//! A fault arrives at the parent as a message whose label is the fault's
//! type and whose registers describe it (seL4's fault IPC); the child stays
//! blocked until the parent replies, restarts or stops it.

use crate::microkit::{MAX_CHILD_ID, fault_label};
use core::fmt;

/// A child PD's id (`id` in the `.system` file), `0..=MAX_CHILD_ID`: the
/// offset of its TCB cap from `BASE_TCB_CAP` in the parent, and the low
/// bits of its fault badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Child(u8);

impl Child {
    /// The child `id`, or `None` above [`MAX_CHILD_ID`].
    pub const fn new(id: u8) -> Option<Child> {
        if id <= MAX_CHILD_ID {
            Some(Child(id))
        } else {
            None
        }
    }

    /// The child `id` for fixed numbers in PD code; a compile-time error
    /// (or a panic in non-const use) if it is out of range.
    pub const fn fixed(id: u8) -> Child {
        match Child::new(id) {
            Some(c) => c,
            None => panic!("child id out of range"),
        }
    }

    /// The id.
    pub const fn id(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "child {}", self.0)
    }
}

/// What kind of fault a child took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// An access to an unmapped address or against a mapping's rights.
    Vm {
        /// Whether it was an instruction fetch.
        prefetch: bool,
        /// The fault status register (ESR) as the kernel reports it.
        fsr: u64,
    },
    /// An exception: an undefined instruction (a PD's `abort`), an
    /// alignment fault.
    UserException {
        /// The exception number the kernel reports.
        number: u64,
        /// Its code.
        code: u64,
    },
    /// A capability lookup failed on a system call.
    Cap,
    /// A system call the kernel does not know.
    UnknownSyscall,
    /// A breakpoint or watchpoint.
    Debug,
    /// The child's scheduling context ran out of budget with a timeout
    /// handler set.
    Timeout,
    /// A label this ABI does not know.
    Other(u64),
}

impl FaultKind {
    /// A short name for logs.
    pub const fn name(&self) -> &'static str {
        match self {
            FaultKind::Vm { .. } => "vm-fault",
            FaultKind::UserException { .. } => "user-exception",
            FaultKind::Cap => "cap-fault",
            FaultKind::UnknownSyscall => "unknown-syscall",
            FaultKind::Debug => "debug-exception",
            FaultKind::Timeout => "timeout",
            FaultKind::Other(_) => "unknown-fault",
        }
    }
}

/// A child's fault, decoded from the fault message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Its kind.
    pub kind: FaultKind,
    /// The faulting instruction's address (0 where the fault has none).
    pub ip: u64,
    /// The data address of a VM or capability fault (0 for the others).
    pub addr: u64,
}

/// Message register of the faulting instruction in an unknown-syscall
/// fault (after x0..x7).
const UNKNOWN_SYSCALL_IP: usize = 8;

impl Fault {
    /// Decodes the fault message with label `label`, reading its message
    /// registers with `mr`.
    pub fn decode(label: u64, mr: impl Fn(usize) -> u64) -> Fault {
        // VM fault: IP, Addr, PrefetchFault, FSR. User exception: FaultIP,
        // SP, SPSR, Number, Code. Cap fault: IP, Addr, ...
        let (kind, ip, addr) = match label {
            fault_label::VM => (
                FaultKind::Vm {
                    prefetch: mr(2) != 0,
                    fsr: mr(3),
                },
                mr(0),
                mr(1),
            ),
            fault_label::USER_EXCEPTION => (
                FaultKind::UserException {
                    number: mr(3),
                    code: mr(4),
                },
                mr(0),
                0,
            ),
            fault_label::CAP => (FaultKind::Cap, mr(0), mr(1)),
            fault_label::UNKNOWN_SYSCALL => (FaultKind::UnknownSyscall, mr(UNKNOWN_SYSCALL_IP), 0),
            fault_label::DEBUG_EXCEPTION => (FaultKind::Debug, mr(0), 0),
            fault_label::TIMEOUT => (FaultKind::Timeout, 0, 0),
            other => (FaultKind::Other(other), 0, 0),
        };
        Fault { kind, ip, addr }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::Vm { prefetch, .. } => write!(
                f,
                "{} at {:#x} ({}, ip {:#x})",
                self.kind.name(),
                self.addr,
                if prefetch { "fetch" } else { "data" },
                self.ip
            ),
            FaultKind::Cap => write!(
                f,
                "{} on cap {:#x} (ip {:#x})",
                self.kind.name(),
                self.addr,
                self.ip
            ),
            FaultKind::UserException { number, .. } => {
                write!(f, "{} {number} (ip {:#x})", self.kind.name(), self.ip)
            }
            FaultKind::Other(label) => write!(f, "{} label {label}", self.kind.name()),
            _ => write!(f, "{} (ip {:#x})", self.kind.name(), self.ip),
        }
    }
}
