//! The device PD's virtio console: a DMA `Hal` for `virtio-drivers` over
//! one Microkit region whose physical address the tool patches in
//! (`<setvar region_paddr>`), and the probe of QEMU virt's virtio-mmio
//! slots. The first two pages are bounce buffers (one per direction: the
//! console keeps a receive buffer posted while it sends); the rest is
//! handed out once, for the virtqueues, and never freed.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, PAGE_SIZE, PhysAddr};

/// The console over a virtio-mmio transport.
pub type Console = VirtIOConsole<Hal, MmioTransport<'static>>;

/// Bytes between virtio-mmio slots on QEMU virt.
const SLOT: usize = 0x200;

struct Pool {
    vaddr: usize,
    paddr: usize,
    size: usize,
    next: usize,
}

struct PoolCell(UnsafeCell<Pool>);
// SAFETY: one thread per PD, and the driver never re-enters the Hal.
unsafe impl Sync for PoolCell {}
static POOL: PoolCell = PoolCell(UnsafeCell::new(Pool {
    vaddr: 0,
    paddr: 0,
    size: 0,
    next: 2 * PAGE_SIZE,
}));

fn pool() -> &'static mut Pool {
    // SAFETY: single-threaded PD; no other reference outlives a Hal call.
    unsafe { &mut *POOL.0.get() }
}

/// The `virtio-drivers` Hal of the device PD.
pub struct Hal;

// SAFETY: dma_alloc hands out zeroed, page-aligned, non-overlapping pages
// of a region the device can reach at the returned physical address.
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
        let page = if dir == BufferDirection::DeviceToDriver {
            PAGE_SIZE
        } else {
            0
        };
        if buf.len() > PAGE_SIZE {
            crate::abort("virtio: buffer larger than a bounce page");
        }
        if dir != BufferDirection::DeviceToDriver {
            // SAFETY: the caller's buffer is valid for its length; the
            // bounce page is ours and at least that long.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    buf.cast::<u8>().as_ptr(),
                    (p.vaddr + page) as *mut u8,
                    buf.len(),
                )
            };
        }
        (p.paddr + page) as PhysAddr
    }
    unsafe fn unshare(pa: PhysAddr, buf: NonNull<[u8]>, dir: BufferDirection) {
        let p = pool();
        if dir != BufferDirection::DriverToDevice {
            let va = p.vaddr + (pa as usize - p.paddr);
            // SAFETY: copies back from the bounce page `share` returned.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    va as *const u8,
                    buf.cast::<u8>().as_ptr(),
                    buf.len(),
                )
            };
        }
    }
}

/// Sets up the DMA pool and finds the console among the eight virtio-mmio
/// slots mapped at `regs` (one page). `None` if there is none.
pub fn console(regs: u64, dma_vaddr: u64, dma_paddr: u64, dma_size: u64) -> Option<Console> {
    if regs == 0 || dma_vaddr == 0 || (dma_size as usize) < 4 * PAGE_SIZE {
        return None;
    }
    *pool() = Pool {
        vaddr: dma_vaddr as usize,
        paddr: dma_paddr as usize,
        size: dma_size as usize,
        next: 2 * PAGE_SIZE,
    };
    // The highest slot first: QEMU puts the first -device there.
    (0..8).rev().find_map(|slot| {
        let header = NonNull::new((regs as usize + slot * SLOT) as *mut VirtIOHeader)?;
        // SAFETY: the slot lies in the uncached device page the tool mapped
        // at `regs`, which lives as long as the PD.
        let transport = unsafe { MmioTransport::new(header, SLOT) }.ok()?;
        (transport.device_type() == DeviceType::Console).then(|| Console::new(transport).ok())?
    })
}
