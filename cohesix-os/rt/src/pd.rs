//! Entry, patched variables, heap, system calls and the handler loop.

extern crate alloc;

use cohesix_abi::microkit::{
    BADGE_ENDPOINT_BIT, BADGE_FAULT_BIT, BASE_ENDPOINT_CAP, BASE_IRQ_CAP,
    BASE_OUTPUT_NOTIFICATION_CAP, BASE_TCB_CAP, CHANNEL_MASK, INPUT_CAP, IPC_BUFFER, IRQ_ACK_LABEL,
    MONITOR_EP, MSG_MAX_LENGTH, PD_ENTRY, PD_NAME_LENGTH, PD_STACK_TOP, REPLY_CAP,
    TCB_SUSPEND_LABEL, TCB_WRITE_REGISTERS_LABEL,
};
use cohesix_abi::{Channel, Child, Context, Fault, Handler, MsgInfo};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The `IRQAckIRQ` label of the kernel this image runs on (it depends on
/// the kernel's configuration; see `cohesix_abi::microkit`).
static IRQ_ACK: AtomicU64 = AtomicU64::new(IRQ_ACK_LABEL);

/// Sets the `IRQAckIRQ` label, for an image whose board's kernel is
/// configured differently from QEMU `virt`'s (call it before the first
/// IRQ is acknowledged: first thing in the `protection_domain!` closure).
pub fn set_irq_ack_label(label: u64) {
    IRQ_ACK.store(label, Ordering::Relaxed);
}

/// seL4 MCS system calls (`libsel4/include/api/syscall.xml`, numbered from
/// -1 down, debug calls after the API ones).
const SYS_CALL: i64 = -1;
const SYS_REPLY_RECV: i64 = -2;
const SYS_NB_SEND_RECV: i64 = -3;
const SYS_SEND: i64 = -5;
const SYS_RECV: i64 = -7;
const SYS_DEBUG_PUT_CHAR: i64 = -12;
/// Heap of every PD (zero-filled `.bss`, mapped by the tool).
const HEAP_SIZE: usize = 4 << 20;

/// A word the `microkit` tool patches after linking.
#[repr(transparent)]
pub struct Patched<T>(UnsafeCell<T>);

// SAFETY: written only by the tool before the PD starts; read-only after.
unsafe impl<T> Sync for Patched<T> {}

impl<T: Copy> Patched<T> {
    /// A variable whose build-time value is `v`.
    pub const fn new(v: T) -> Self {
        Patched(UnsafeCell::new(v))
    }
    /// Its patched value.
    pub fn get(&self) -> T {
        // SAFETY: a valid, aligned static; volatile so the build-time value
        // is never constant-folded.
        unsafe { self.0.get().read_volatile() }
    }
}

macro_rules! patched {
    ($($name:ident: $t:ty = $v:expr;)*) => {$(
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".data")]
        #[used]
        #[allow(non_upper_case_globals)]
        static $name: Patched<$t> = Patched::new($v);
    )*};
}
patched! {
    microkit_name: [u8; PD_NAME_LENGTH] = [0; PD_NAME_LENGTH];
    microkit_passive: u8 = 0;
    microkit_irqs: u64 = 0;
    microkit_notifications: u64 = 0;
    microkit_pps: u64 = 0;
    microkit_ioports: u64 = 0;
}

/// Declares `setvar_vaddr`/`setvar_size` symbols and a `Regions` type
/// `$regions` that serves `symbol => vaddr_symbol / size_symbol` pairs.
#[macro_export]
macro_rules! setvars {
    ($regions:ident { $($sym:literal => $vaddr:ident / $size:ident),* $(,)? } $(, $extra:ident)*) => {
        $(
            #[unsafe(no_mangle)] #[unsafe(link_section = ".data")] #[used]
            #[allow(non_upper_case_globals)]
            static $vaddr: $crate::Patched<u64> = $crate::Patched::new(0);
            #[unsafe(no_mangle)] #[unsafe(link_section = ".data")] #[used]
            #[allow(non_upper_case_globals)]
            static $size: $crate::Patched<u64> = $crate::Patched::new(0);
        )*
        $(
            #[unsafe(no_mangle)] #[unsafe(link_section = ".data")] #[used]
            #[allow(non_upper_case_globals)]
            static $extra: $crate::Patched<u64> = $crate::Patched::new(0);
        )*
        struct $regions;
        impl cohesix_abi::Regions for $regions {
            fn region(&self, s: &str) -> Option<&'static [core::sync::atomic::AtomicU32]> {
                match s {
                    $($sym => $crate::region($vaddr.get(), $size.get()),)*
                    _ => None,
                }
            }
        }
    };
}

/// The mapped region at `vaddr` of `size` bytes, as words.
pub fn region(vaddr: u64, size: u64) -> Option<&'static [AtomicU32]> {
    if vaddr == 0 || !vaddr.is_multiple_of(4096) || size == 0 || !size.is_multiple_of(4096) {
        return None;
    }
    // SAFETY: the tool mapped `size` bytes at `vaddr` (page-aligned, so
    // aligned for AtomicU32) for the PD's whole life, and the memory is
    // only ever accessed through atomics, here and in the peer.
    Some(unsafe { core::slice::from_raw_parts(vaddr as *const AtomicU32, size as usize / 4) })
}

/// Defines the PD: `$init` builds its handler once the heap is up.
#[macro_export]
macro_rules! protection_domain {
    ($init:expr) => {
        #[unsafe(no_mangle)]
        fn cohesix_pd_main() -> ! {
            let mut handler = $init();
            $crate::run(&mut handler)
        }
    };
}

global_asm!(
    ".section .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "    b {entry}",
    entry = sym entry,
);

struct Heap(UnsafeCell<[u8; HEAP_SIZE]>);
// SAFETY: handed to the allocator once, before any other use.
unsafe impl Sync for Heap {}
static HEAP: Heap = Heap(UnsafeCell::new([0; HEAP_SIZE]));
#[global_allocator]
static ALLOCATOR: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

unsafe extern "Rust" {
    fn cohesix_pd_main() -> !;
}

extern "C" fn entry() -> ! {
    // SAFETY: runs once, before anything allocates; HEAP is used by
    // nothing else.
    unsafe { ALLOCATOR.lock().init(HEAP.0.get().cast(), HEAP_SIZE) };
    // SAFETY: defined by `protection_domain!` in the image.
    unsafe { cohesix_pd_main() }
}

fn mr_ptr(i: usize) -> *mut u64 {
    // seL4_IPCBuffer: tag word, then msg[seL4_MsgMaxLength].
    (IPC_BUFFER as usize + 8 + 8 * i) as *mut u64
}

/// A system call with message registers 0..4 in x2..x5 (loaded from and
/// stored back to the IPC buffer, as libsel4's wrappers do).
fn syscall(sys: i64, x0: u64, x1: u64, x6: u64, x8: u64) -> (u64, u64) {
    let (mut a, mut b) = (x0, x1);
    // SAFETY: the IPC buffer page is mapped at IPC_BUFFER by the tool, and
    // the kernel reads/writes only the registers named here.
    unsafe {
        let (mut m0, mut m1, mut m2, mut m3) = (*mr_ptr(0), *mr_ptr(1), *mr_ptr(2), *mr_ptr(3));
        asm!("svc #0", inout("x0") a, inout("x1") b, inout("x2") m0, inout("x3") m1,
             inout("x4") m2, inout("x5") m3, in("x6") x6, in("x7") sys, in("x8") x8,
             options(nostack));
        (*mr_ptr(0), *mr_ptr(1), *mr_ptr(2), *mr_ptr(3)) = (m0, m1, m2, m3);
    }
    (a, b)
}

fn put_char(c: u8) {
    // SAFETY: seL4_DebugPutChar takes x0 and may clobber x0..x5; no memory.
    unsafe {
        asm!("svc #0", inout("x0") u64::from(c) => _, lateout("x1") _, lateout("x2") _,
             lateout("x3") _, lateout("x4") _, lateout("x5") _, in("x7") SYS_DEBUG_PUT_CHAR,
             options(nostack));
    }
}

/// Milliseconds since the generic timer started counting (boot).
pub fn uptime_ms() -> u64 {
    let (count, freq): (u64, u64);
    // SAFETY: reads the generic timer's counter and frequency, which the
    // qemu_virt_aarch64 kernel exports to user level.
    unsafe {
        asm!("mrs {}, cntpct_el0", out(reg) count, options(nomem, nostack));
        asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack));
    }
    count / (freq / 1000).max(1)
}

/// Writes to the kernel's debug console (`debug` SDK configs only).
pub fn debug_print(s: &str) {
    s.bytes().for_each(put_char);
}

/// The PD's name as patched by the tool.
pub fn pd_name() -> &'static str {
    // SAFETY: a static, patched before start and never written after.
    let bytes: &'static [u8; PD_NAME_LENGTH] = unsafe { &*microkit_name.0.get() };
    let n = bytes.iter().position(|b| *b == 0).unwrap_or(PD_NAME_LENGTH);
    core::str::from_utf8(&bytes[..n]).unwrap_or("?")
}

/// Prints `msg` and stops the PD with a fault the monitor reports.
pub fn abort(msg: &str) -> ! {
    debug_print(pd_name());
    debug_print(": ");
    debug_print(msg);
    debug_print("\n");
    loop {
        // SAFETY: an undefined instruction: the PD faults, nothing else.
        unsafe { asm!("udf #0", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    let mut line = alloc::string::String::new();
    let _ = write!(line, "panic: {info}");
    abort(&line)
}

struct Sel4;

/// Mask of the child id in a fault badge (libmicrokit's `PD_MASK`).
const CHILD_MASK: u64 = 0xff;

/// Reports a failed invocation on a child's TCB (the reply label is the
/// seL4 error number; 0 is success).
fn check_tcb(what: &str, child: Child, reply: u64) {
    let error = MsgInfo::from_raw(reply).label();
    if error != 0 {
        debug_print(pd_name());
        debug_print(what);
        debug_print(": error on the TCB of child ");
        put_decimal(u64::from(child.id()));
        debug_print(" (seL4 error ");
        put_decimal(error);
        debug_print(")\n");
    }
}

fn put_decimal(mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[i..].iter().copied().for_each(put_char);
}

fn granted(mask: &Patched<u64>, ch: Channel, what: &str) -> bool {
    let ok = mask.get() & ch.bit() != 0;
    if !ok {
        debug_print(pd_name());
        debug_print(what);
        debug_print(": invalid channel given\n");
    }
    ok
}

impl Context for Sel4 {
    fn name(&self) -> &str {
        pd_name()
    }
    fn notify(&mut self, ch: Channel) {
        if granted(&microkit_notifications, ch, " microkit_notify") {
            syscall(
                SYS_SEND,
                BASE_OUTPUT_NOTIFICATION_CAP + u64::from(ch.id()),
                0,
                0,
                0,
            );
        }
    }
    fn can_notify(&self, ch: Channel) -> bool {
        microkit_notifications.get() & ch.bit() != 0
    }
    fn irq_ack(&mut self, ch: Channel) {
        if granted(&microkit_irqs, ch, " microkit_irq_ack") {
            let cap = BASE_IRQ_CAP + u64::from(ch.id());
            syscall(
                SYS_CALL,
                cap,
                MsgInfo::new(IRQ_ACK.load(Ordering::Relaxed), 0).raw(),
                0,
                0,
            );
        }
    }
    fn ppcall(&mut self, ch: Channel, msg: MsgInfo) -> MsgInfo {
        if !granted(&microkit_pps, ch, " microkit_ppcall") {
            return MsgInfo::new(0, 0);
        }
        let cap = BASE_ENDPOINT_CAP + u64::from(ch.id());
        MsgInfo::from_raw(syscall(SYS_CALL, cap, msg.raw(), 0, 0).1)
    }
    fn mr(&self, i: usize) -> u64 {
        if i < MSG_MAX_LENGTH {
            // SAFETY: inside the mapped IPC buffer.
            unsafe { mr_ptr(i).read_volatile() }
        } else {
            0
        }
    }
    fn set_mr(&mut self, i: usize, value: u64) {
        if i < MSG_MAX_LENGTH {
            // SAFETY: inside the mapped IPC buffer.
            unsafe { mr_ptr(i).write_volatile(value) }
        }
    }
    fn debug(&mut self, text: &str) {
        debug_print(text);
    }
    fn uptime_ms(&self) -> u64 {
        uptime_ms()
    }
    fn pd_restart(&mut self, child: Child) {
        // seL4_TCB_WriteRegisters(tcb, resume, arch_flags 0, count 2, {pc,
        // sp}): MR0 = resume | flags << 8, MR1 = count, then the registers
        // in seL4_UserContext order. Unlike libmicrokit, which writes only
        // pc, the stack pointer is reset too: a child that faulted on a
        // full stack must not restart on it.
        self.set_mr(0, 1);
        self.set_mr(1, 2);
        self.set_mr(2, PD_ENTRY);
        self.set_mr(3, PD_STACK_TOP);
        let cap = BASE_TCB_CAP + u64::from(child.id());
        let info = MsgInfo::new(TCB_WRITE_REGISTERS_LABEL, 4);
        let (_, reply) = syscall(SYS_CALL, cap, info.raw(), 0, 0);
        check_tcb(" microkit_pd_restart", child, reply);
    }
    fn pd_stop(&mut self, child: Child) {
        let cap = BASE_TCB_CAP + u64::from(child.id());
        let info = MsgInfo::new(TCB_SUSPEND_LABEL, 0);
        let (_, reply) = syscall(SYS_CALL, cap, info.raw(), 0, 0);
        check_tcb(" microkit_pd_stop", child, reply);
    }
    fn crash_at(&mut self, vaddr: u64) -> ! {
        // SAFETY: a deliberate read of an address the caller chose to be
        // unmapped: the kernel stops this thread with a VM fault before the
        // load completes, and its parent receives the fault. A mapped
        // address just yields a value, and the PD aborts below.
        let _ = unsafe { (vaddr as *const u64).read_volatile() };
        abort("crash_at: the address was mapped")
    }
}

/// libmicrokit's `main` and `handler_loop`, around `handler`.
pub fn run(handler: &mut dyn Handler) -> ! {
    let ctx = &mut Sel4;
    handler.init(ctx);
    // seL4 issue 1536: IRQs are acknowledged once after start.
    let irqs = microkit_irqs.get();
    (0..62u8)
        .filter(|i| irqs & (1 << i) != 0)
        .filter_map(Channel::new)
        .for_each(|c| ctx.irq_ack(c));
    let mut reply: Option<MsgInfo> = None;
    // A passive PD tells the monitor it is ready, in the same call as its
    // first receive.
    let mut signal_monitor = microkit_passive.get() != 0;
    loop {
        let (badge, tag) = match reply.take() {
            Some(r) => syscall(SYS_REPLY_RECV, INPUT_CAP, r.raw(), REPLY_CAP, 0),
            None if core::mem::take(&mut signal_monitor) => {
                syscall(SYS_NB_SEND_RECV, INPUT_CAP, 0, REPLY_CAP, MONITOR_EP)
            }
            None => syscall(SYS_RECV, INPUT_CAP, 0, REPLY_CAP, 0),
        };
        if badge >> BADGE_ENDPOINT_BIT & 1 != 0 {
            let ch = Channel::new((badge & CHANNEL_MASK) as u8);
            reply = Some(ch.map_or(MsgInfo::new(0, 0), |c| {
                handler.protected(c, MsgInfo::from_raw(tag), ctx)
            }));
        } else if badge >> BADGE_FAULT_BIT & 1 != 0 {
            let id = (badge & CHILD_MASK) as u8;
            match Child::new(id) {
                Some(child) => {
                    let msg = MsgInfo::from_raw(tag);
                    let fault = Fault::decode(msg.label(), |i| ctx.mr(i));
                    if handler.fault(child, fault, ctx) {
                        // Resume the child where it faulted.
                        reply = Some(MsgInfo::new(0, 0));
                    }
                }
                None => debug_print("fault badge names no child id\n"),
            }
        } else {
            (0..62u8)
                .filter(|i| badge & (1 << i) != 0)
                .filter_map(Channel::new)
                .for_each(|c| handler.notified(c, ctx));
        }
    }
}
