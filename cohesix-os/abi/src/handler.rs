//! The three entry points of a protection domain and what a PD may ask of
//! the system while it runs one.

use crate::{Channel, Child, Fault, MsgInfo};
use core::sync::atomic::AtomicU32;

/// What a PD can do to the world outside its own memory: Microkit's
/// `microkit_notify`, `microkit_ppcall`, `microkit_irq_ack`,
/// `microkit_mr_get/set` and `microkit_dbg_puts`, plus a clock.
///
/// Calls on a channel the `.system` file did not give this PD for that
/// purpose are refused the way libmicrokit refuses them: a debug message
/// and nothing else (a protected call then returns a zero message).
pub trait Context {
    /// The PD's name (`microkit_name`).
    fn name(&self) -> &str;
    /// Signals the other end of `ch`.
    fn notify(&mut self, ch: Channel);
    /// Whether the `.system` file gave this PD `ch` to notify on (the
    /// `microkit_notifications` mask): logic that runs on several boards
    /// asks before it signals a peer that only some boards have.
    fn can_notify(&self, ch: Channel) -> bool;
    /// Acknowledges the IRQ delivered on `ch`, so it can be delivered again.
    fn irq_ack(&mut self, ch: Channel);
    /// Calls the protected procedure at the other end of `ch`, passing
    /// `msg.count()` message registers, and returns its reply; the reply's
    /// registers are then read with [`Context::mr`].
    fn ppcall(&mut self, ch: Channel, msg: MsgInfo) -> MsgInfo;
    /// Message register `i` (0 beyond `seL4_MsgMaxLength`).
    fn mr(&self, i: usize) -> u64;
    /// Sets message register `i`; ignored beyond `seL4_MsgMaxLength`.
    fn set_mr(&mut self, i: usize, value: u64);
    /// Writes to the debug console.
    fn debug(&mut self, text: &str);
    /// Milliseconds since boot: the architectural counter on hardware, the
    /// simulated clock in the simulator. Not part of Microkit's API.
    fn uptime_ms(&self) -> u64;
    /// Restarts child `child` at its entry point with an empty stack
    /// (`microkit_pd_restart`, which also resumes it). Its memory is not
    /// reloaded: `.data` and `.bss` keep what the last run left, so a child
    /// rebuilds its state from its entry point.
    fn pd_restart(&mut self, child: Child);
    /// Stops child `child` (`microkit_pd_stop`): it runs no more
    /// instructions until restarted. Notifications sent to it wait.
    fn pd_stop(&mut self, child: Child);
    /// Reads the word at `vaddr`, for test images that must fault: on seL4
    /// an unmapped address raises a VM fault that goes to the parent; the
    /// simulator delivers the same fault. Never returns.
    fn crash_at(&mut self, vaddr: u64) -> !;
}

/// A protection domain: Microkit's `init`, `notified` and `protected`.
///
/// Entry points of one PD never run concurrently; each runs to completion.
/// Handlers must not block: a PD waits by returning.
pub trait Handler {
    /// Runs once, before any other entry point of this PD.
    fn init(&mut self, ctx: &mut dyn Context);
    /// The other end of `ch` signalled, or its IRQ fired. Signals raised
    /// several times before delivery arrive once.
    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context);
    /// A protected call on `ch`: read the caller's registers with
    /// [`Context::mr`], set the reply's with [`Context::set_mr`] and return
    /// its message info. The default refuses every call with an empty reply
    /// labelled [`REFUSED`].
    fn protected(&mut self, ch: Channel, msg: MsgInfo, ctx: &mut dyn Context) -> MsgInfo {
        let _ = (ch, msg, ctx);
        MsgInfo::new(REFUSED, 0)
    }
    /// A child of this PD faulted; it stays blocked until this PD restarts
    /// or stops it. Return `true` to resume it where it faulted (reply to
    /// the fault), `false` to leave it. The default says so on the console
    /// and leaves it, as libmicrokit's missing `fault` does.
    fn fault(&mut self, child: Child, fault: Fault, ctx: &mut dyn Context) -> bool {
        let _ = (child, fault);
        ctx.debug("a child faulted and this PD has no fault entry: left stopped\n");
        false
    }
}

/// The label of a refused protected call (the largest label: no protocol
/// of this system uses it for anything else).
pub const REFUSED: u64 = u64::MAX >> 12;

/// The memory regions mapped into a PD, found by the symbol the `.system`
/// file names in the mapping's `setvar_vaddr` (the runtime reads the
/// patched symbols; the simulator looks the name up in the parsed system).
pub trait Regions {
    /// The region whose address `setvar_vaddr` symbol `symbol` receives,
    /// as words; `None` if this PD has no such mapping.
    fn region(&self, symbol: &str) -> Option<&'static [AtomicU32]>;
}
