//! The host-facing PDs' virtio devices: a DMA `Hal` for `virtio-drivers`
//! over one Microkit region whose physical address the tool patches in
//! (`<setvar region_paddr>`), the probe of QEMU virt's virtio-mmio slots,
//! the console, and the network card as a `smoltcp` device.
//!
//! The region's first pages are bounce pages: the drivers hand the Hal
//! buffers from the heap, which the device cannot reach, so `share` copies
//! each into a free bounce page (and `unshare` copies back and frees it).
//! As many buffers may be shared at once as there are bounce pages: the
//! console keeps one receive buffer posted while it sends; the network card
//! keeps a receive buffer per queue slot and shares a header, a packet and
//! an indirect descriptor list per send. The rest of the region is handed out once, for the virtqueues,
//! and never freed.

extern crate alloc;

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::net::VirtIONet;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, PAGE_SIZE, PhysAddr};

/// The console over a virtio-mmio transport.
pub type Console = VirtIOConsole<Hal, MmioTransport<'static>>;

/// Receive buffers the network card keeps posted.
pub const NET_QUEUE: usize = 16;
/// Bytes of one network receive buffer (an Ethernet frame and the virtio
/// header fit).
const NET_BUF: usize = 2048;
/// Bounce pages the network PD needs: a receive buffer per queue slot, and
/// for a send its header, its packet and the indirect descriptor list the
/// driver puts them in (plus one spare).
pub const NET_BOUNCE_PAGES: usize = NET_QUEUE + 4;
/// Bounce pages the console needs: one posted receive, one send.
pub const CONSOLE_BOUNCE_PAGES: usize = 2;

/// Bytes between virtio-mmio slots on QEMU virt.
const SLOT: usize = 0x200;
/// The most bounce pages a pool tracks (one bit each).
const MAX_BOUNCE: usize = 64;

struct Pool {
    vaddr: usize,
    paddr: usize,
    size: usize,
    /// Bounce pages at the start of the region.
    bounce: usize,
    /// Bit `i`: bounce page `i` is shared.
    busy: u64,
    /// Next free byte for `dma_alloc`.
    next: usize,
}

struct PoolCell(UnsafeCell<Pool>);
// SAFETY: one thread per PD, and the driver never re-enters the Hal.
unsafe impl Sync for PoolCell {}
static POOL: PoolCell = PoolCell(UnsafeCell::new(Pool {
    vaddr: 0,
    paddr: 0,
    size: 0,
    bounce: 0,
    busy: 0,
    next: 0,
}));

fn pool() -> &'static mut Pool {
    // SAFETY: single-threaded PD; no other reference outlives a Hal call.
    unsafe { &mut *POOL.0.get() }
}

/// The `virtio-drivers` Hal of the host-facing PDs.
pub struct Hal;

// SAFETY: dma_alloc hands out zeroed, page-aligned, non-overlapping pages
// of a region the device can reach at the returned physical address; share
// returns a bounce page no other shared buffer holds, of at least the
// buffer's length, until unshare frees it.
unsafe impl virtio_drivers::Hal for Hal {
    fn dma_alloc(pages: usize, _dir: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let p = pool();
        let len = pages * PAGE_SIZE;
        if p.next + len > p.size {
            crate::abort("virtio DMA region exhausted");
        }
        let (va, pa) = (p.vaddr + p.next, p.paddr + p.next);
        p.next += len;
        // SAFETY: inside the mapped DMA region, not handed out before.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, len) };
        (
            pa as PhysAddr,
            NonNull::new(va as *mut u8).unwrap_or(NonNull::dangling()),
        )
    }
    unsafe fn dma_dealloc(_pa: PhysAddr, _va: NonNull<u8>, _pages: usize) -> i32 {
        0
    }
    unsafe fn mmio_phys_to_virt(_pa: PhysAddr, _size: usize) -> NonNull<u8> {
        crate::abort("virtio: PCI BARs are not mapped in this PD")
    }
    unsafe fn share(buf: NonNull<[u8]>, dir: BufferDirection) -> PhysAddr {
        let p = pool();
        if buf.len() > PAGE_SIZE {
            crate::abort("virtio: buffer larger than a bounce page");
        }
        let Some(slot) = (0..p.bounce).find(|i| p.busy & (1 << i) == 0) else {
            crate::abort("virtio: every bounce page is in use");
        };
        p.busy |= 1 << slot;
        let offset = slot * PAGE_SIZE;
        if dir != BufferDirection::DeviceToDriver {
            // SAFETY: the caller's buffer is valid for its length; the
            // bounce page is ours, free, and at least that long.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    buf.cast::<u8>().as_ptr(),
                    (p.vaddr + offset) as *mut u8,
                    buf.len(),
                )
            };
        }
        (p.paddr + offset) as PhysAddr
    }
    unsafe fn unshare(pa: PhysAddr, buf: NonNull<[u8]>, dir: BufferDirection) {
        let p = pool();
        let offset = (pa as usize).wrapping_sub(p.paddr);
        let slot = offset / PAGE_SIZE;
        if slot >= p.bounce || p.busy & (1 << slot) == 0 {
            crate::abort("virtio: unshare of a page that was not shared");
        }
        if dir != BufferDirection::DriverToDevice {
            // SAFETY: copies back from the bounce page `share` returned for
            // this buffer, which is still ours (its bit is set).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    (p.vaddr + offset) as *const u8,
                    buf.cast::<u8>().as_ptr(),
                    buf.len(),
                )
            };
        }
        p.busy &= !(1 << slot);
    }
}

/// Sets up the DMA pool with `bounce` bounce pages and finds a device of
/// `kind` among the eight virtio-mmio slots mapped at `regs` (one page).
fn probe(
    regs: u64,
    dma_vaddr: u64,
    dma_paddr: u64,
    dma_size: u64,
    bounce: usize,
    kind: DeviceType,
) -> Option<MmioTransport<'static>> {
    let bounce = bounce.min(MAX_BOUNCE);
    if regs == 0 || dma_vaddr == 0 || (dma_size as usize) < (bounce + 2) * PAGE_SIZE {
        return None;
    }
    *pool() = Pool {
        vaddr: dma_vaddr as usize,
        paddr: dma_paddr as usize,
        size: dma_size as usize,
        bounce,
        busy: 0,
        next: bounce * PAGE_SIZE,
    };
    // The highest slot first: QEMU puts the first -device there.
    (0..8).rev().find_map(|slot| {
        let header = NonNull::new((regs as usize + slot * SLOT) as *mut VirtIOHeader)?;
        // SAFETY: the slot lies in the uncached device page the tool mapped
        // at `regs`, which lives as long as the PD.
        let transport = unsafe { MmioTransport::new(header, SLOT) }.ok()?;
        if transport.device_type() == kind {
            Some(transport)
        } else {
            // Dropping a transport resets its device, which may be another
            // PD's if a page holds both (QEMU virt puts eight in a page).
            core::mem::forget(transport);
            None
        }
    })
}

/// The console among the virtio-mmio slots at `regs`, with its DMA pool.
/// `None` if there is none.
pub fn console(regs: u64, dma_vaddr: u64, dma_paddr: u64, dma_size: u64) -> Option<Console> {
    let t = probe(
        regs,
        dma_vaddr,
        dma_paddr,
        dma_size,
        CONSOLE_BOUNCE_PAGES,
        DeviceType::Console,
    )?;
    Console::new(t).ok()
}

/// The network card as a `smoltcp` Ethernet device.
pub struct NetDevice(VirtIONet<Hal, MmioTransport<'static>, NET_QUEUE>);

impl NetDevice {
    /// The card's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.0.mac_address()
    }

    /// Acknowledges the card's interrupt.
    pub fn ack_interrupt(&mut self) {
        let _ = self.0.ack_interrupt();
    }
}

/// The network card among the virtio-mmio slots at `regs`, with its DMA
/// pool. `None` if there is none.
pub fn net(regs: u64, dma_vaddr: u64, dma_paddr: u64, dma_size: u64) -> Option<NetDevice> {
    let t = probe(
        regs,
        dma_vaddr,
        dma_paddr,
        dma_size,
        NET_BOUNCE_PAGES,
        DeviceType::Network,
    )?;
    VirtIONet::new(t, NET_BUF).ok().map(NetDevice)
}

/// A received frame, already copied out of the card's buffer (which goes
/// straight back to the card).
pub struct NetRx(Vec<u8>);

/// A frame to send.
pub struct NetTx<'a>(&'a mut VirtIONet<Hal, MmioTransport<'static>, NET_QUEUE>);

impl phy::RxToken for NetRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for NetTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = self.0.new_tx_buffer(len);
        let r = f(frame.packet_mut());
        if self.0.send(frame).is_err() {
            crate::debug_print("net: virtio send failed\n");
        }
        r
    }
}

impl phy::Device for NetDevice {
    type RxToken<'a> = NetRx;
    type TxToken<'a> = NetTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(NetRx, NetTx<'_>)> {
        let buf = self.0.receive().ok()?;
        let frame = buf.packet().to_vec();
        if self.0.recycle_rx_buffer(buf).is_err() {
            crate::debug_print("net: receive buffer not recycled\n");
        }
        Some((NetRx(frame), NetTx(&mut self.0)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<NetTx<'_>> {
        self.0.can_send().then_some(NetTx(&mut self.0))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps.max_burst_size = Some(1);
        caps
    }
}
