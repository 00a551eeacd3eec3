//! Microkit 2.3.0's fixed layout for a protection domain on seL4 (MCS
//! kernel, aarch64): capability slots, badge bits, limits, and the symbols
//! the `microkit` tool patches into a PD's ELF.
//!
//! Every number here is copied from a named source, and `cargo xtask run`
//! compares the ones an SDK ships against that SDK before it builds an
//! image:
//! - `libmicrokit/include/microkit.h` (Microkit 2.3.0): `MONITOR_EP`,
//!   `BASE_OUTPUT_NOTIFICATION_CAP`, `BASE_ENDPOINT_CAP`, `BASE_IRQ_CAP`,
//!   `MICROKIT_MAX_CHANNELS`, `MICROKIT_PD_NAME_LENGTH`;
//! - `libmicrokit/src/main.c`: `INPUT_CAP`, `REPLY_CAP`, the badge bits
//!   (`BADGE_ENDPOINT_BIT`, `BADGE_FAULT_BIT`, `CHANNEL_MASK`), the handler
//!   loop (IRQs acked once at start, passive PDs signal the monitor after
//!   `init`);
//! - `tool/microkit/src/capdl/builder.rs`: `PD_INPUT_CAP_IDX`,
//!   `PD_REPLY_CAP_IDX`, `PD_BASE_*_CAP` (the same numbers, from the tool's
//!   side), and the stack/IPC buffer placement (`sel4.rs`:
//!   `pd_ipc_buffer`, `pd_stack_top`);
//! - `tool/microkit/src/sdf.rs`: `PD_MAX_ID` (61), `PD_MAX_PRIORITY` (254),
//!   stack size limits, the default budget;
//! - `tool/microkit/src/symbols.rs`: which `microkit_*` symbols are patched
//!   and with how many bytes;
//! - `libmicrokit/include/microkit.h`: `BASE_TCB_CAP` and
//!   `microkit_pd_restart`/`microkit_pd_stop` (`seL4_TCB_WriteRegisters`,
//!   `seL4_TCB_Suspend` on a child's TCB cap);
//! - seL4 16.0.0 `libsel4/include/interfaces/object-api.xml` (invocation
//!   labels, counted as the SDK's `invocations_all.json` numbers them) and
//!   `libsel4/arch_include/arm/sel4/arch/shared_types.bf` (fault labels) with
//!   `libsel4/sel4_arch_include/aarch64/sel4/sel4_arch/constants.h` (the
//!   message registers of each fault).

/// Slot of the endpoint a PD receives on (notifications are bound to it).
pub const INPUT_CAP: u64 = 1;
/// Slot of the PD's reply object (MCS).
pub const REPLY_CAP: u64 = 4;
/// Slot of the monitor's endpoint; a passive PD signals it after `init`.
pub const MONITOR_EP: u64 = 5;
/// First slot of the notification caps, one per channel: slot = base + id.
pub const BASE_OUTPUT_NOTIFICATION_CAP: u64 = 10;
/// First slot of the endpoint caps for protected calls: base + channel id.
pub const BASE_ENDPOINT_CAP: u64 = 74;
/// First slot of the IRQ handler caps: base + channel id.
pub const BASE_IRQ_CAP: u64 = 138;
/// First slot of a parent's caps to its children's TCBs: base + child id.
pub const BASE_TCB_CAP: u64 = 202;

/// The largest child PD id (`PD_MAX_ID`): ids are `0..=MAX_CHILD_ID`, the
/// low bits of a fault badge.
pub const MAX_CHILD_ID: u8 = 61;

/// Label of `seL4_TCB_WriteRegisters` on an MCS kernel (what
/// `microkit_pd_restart` invokes). Unaffected by the hardware debug API,
/// whose four methods come after `TCBUnbindNotification`.
pub const TCB_WRITE_REGISTERS_LABEL: u64 = 3;
/// Label of `seL4_TCB_Suspend` on an MCS kernel (`microkit_pd_stop`).
pub const TCB_SUSPEND_LABEL: u64 = 12;

/// Fault labels (`seL4_Fault_*`) on an MCS kernel with the hardware debug
/// API (the `debug` config): what a parent's fault message carries.
pub mod fault_label {
    /// A capability fault (`seL4_Fault_CapFault`).
    pub const CAP: u64 = 1;
    /// An unknown system call (`seL4_Fault_UnknownSyscall`).
    pub const UNKNOWN_SYSCALL: u64 = 2;
    /// An exception (`seL4_Fault_UserException`): an undefined instruction,
    /// an alignment fault; what a PD's `abort` raises.
    pub const USER_EXCEPTION: u64 = 3;
    /// A breakpoint or watchpoint (`seL4_Fault_DebugException`).
    pub const DEBUG_EXCEPTION: u64 = 4;
    /// A scheduling-context timeout (`seL4_Fault_Timeout`, MCS).
    pub const TIMEOUT: u64 = 5;
    /// An access to an address with no mapping or the wrong rights
    /// (`seL4_Fault_VMFault`, MCS numbering).
    pub const VM: u64 = 6;
}

/// Channel ids are `0..MAX_CHANNELS`: the badge has 64 bits, of which the
/// top two mark protected calls and faults.
pub const MAX_CHANNELS: u8 = 62;
/// Badge bit set on a protected call (the low six bits are the channel).
pub const BADGE_ENDPOINT_BIT: u32 = 63;
/// Badge bit set on a fault of a child PD.
pub const BADGE_FAULT_BIT: u32 = 62;
/// Mask of the channel id in a protected call's badge.
pub const CHANNEL_MASK: u64 = 0x3f;

/// The highest priority a PD may have (255 is the monitor's).
pub const MAX_PRIORITY: u8 = 254;
/// Budget (and period, unless given) of a PD without one, microseconds.
pub const DEFAULT_BUDGET_US: u64 = 1000;
/// Stack size of a PD without `stack_size`.
pub const DEFAULT_STACK_SIZE: u64 = 0x2000;
/// The smallest `stack_size` accepted.
pub const MIN_STACK_SIZE: u64 = 0x1000;
/// The largest `stack_size` accepted.
pub const MAX_STACK_SIZE: u64 = 16 * 1024 * 1024;
/// The smallest page, and the granule of every region and mapping.
pub const PAGE_SIZE: u64 = 0x1000;
/// Page sizes a memory region may use on aarch64 (4 KiB, 2 MiB).
pub const PAGE_SIZES: [u64; 2] = [0x1000, 0x20_0000];
/// The PD name the monitor reserves.
pub const MONITOR_NAME: &str = "monitor";

/// Message registers in an IPC buffer (`seL4_MsgMaxLength`).
pub const MSG_MAX_LENGTH: usize = 120;

/// Bytes of `microkit_name` (`MICROKIT_PD_NAME_LENGTH`).
pub const PD_NAME_LENGTH: usize = 64;

/// The `.data` symbols the `microkit` tool patches in every PD, with their
/// sizes in bytes (`symbols.rs`: `write_symbol` with these lengths). A PD
/// ELF must define each, initialised, so that it has file bytes to patch.
pub const PATCHED_SYMBOLS: [(&str, u64); 6] = [
    ("microkit_name", PD_NAME_LENGTH as u64),
    ("microkit_passive", 1),
    ("microkit_irqs", 8),
    ("microkit_notifications", 8),
    ("microkit_pps", 8),
    ("microkit_ioports", 8),
];

/// The IPC buffer's address on `qemu_virt_aarch64`: the top page of
/// `seL4_UserVSpaceTop` (`sel4.rs`: `pd_ipc_buffer`), which is
/// `0xff_ffff_ffff` for a hypervisor-mode kernel with 40-bit physical
/// addresses (seL4 `libsel4/sel4_arch_include/aarch64/.../constants.h`).
/// Board-specific: `cargo xtask run` checks it against the SDK's
/// `address_space_constants.json`.
pub const IPC_BUFFER: u64 = 0xff_ffff_f000;

/// Label of the IRQ handler `Ack` invocation (`IRQAckIRQ`) in the SDK's
/// `debug` configuration (MCS with the hardware debug API, which adds four
/// TCB invocations before it; 27 without). Config-specific: `cargo xtask
/// run` checks it against the SDK's `invocations_all.json`.
pub const IRQ_ACK_LABEL: u64 = 31;

/// [`IRQ_ACK_LABEL`] in a kernel built without the hardware debug API (the
/// SDK's `zcu102` `debug` configuration): the four TCB breakpoint and
/// single-step invocations are absent, so `IRQAckIRQ` is 27. An image for
/// such a board tells the runtime (`cohesix_rt::set_irq_ack_label`).
pub const IRQ_ACK_LABEL_NO_HW_DEBUG: u64 = IRQ_ACK_LABEL - 4;

/// Where the stack of every PD begins: the tool maps the stack just
/// below a guard page under the IPC buffer (`sel4.rs`: `pd_stack_top`). A
/// restart sets the stack pointer here, so a child that faulted on a full
/// stack starts with an empty one.
pub const PD_STACK_TOP: u64 = IPC_BUFFER - PAGE_SIZE;

/// Where every Cohesix PD image is entered: `_start`, first in `.text` at
/// the 2 MiB load address of `cohesix-os/images/pd.ld` (libmicrokit's
/// `microkit.ld` uses the same). `cargo xtask check` verifies each ELF;
/// a parent restarts a child here.
pub const PD_ENTRY: u64 = 0x20_0000;

/// Size of a `setvar_*` symbol: one machine word (the tool refuses others).
pub const SETVAR_SIZE: u64 = 8;
