//! The names and numbers the PDs and every board's `cohesix-os/boards/<board>.system` share.
//! Change one, change the other: `cargo xtask check` builds every image and
//! compares its symbols with the system file, and the simulator's tests
//! boot that same file.

use cohesix_abi::{Channel, Child};

/// The largest 9P message in the system. The Linux client needs at least
/// 4096; 8 KiB lets a whole telemetry page through in one read. Every ring
/// must hold a frame this large ([`RING_MIN_BYTES`]).
pub const MSIZE: u32 = 8192;

/// The smallest ring region: a frame of [`MSIZE`] twice over plus the
/// ring's control block, rounded up to pages (four pages).
pub const RING_MIN_BYTES: usize = 0x4000;

/// Worker ids NineDoor spawns at boot (into the first free slots).
pub const WORKER_IDS: [&str; 2] = ["w1", "w2"];

/// Heartbeat worker slots: child PDs of NineDoor (`worker1`..`worker4`),
/// stopped while free. Four: the two boot workers and two more the Queen
/// may spawn (a `spawn` beyond them fails with `ENOSPC`). Each slot costs
/// a PD (4 MiB heap, 64 KiB stack), two ring regions, a channel to
/// NineDoor and one from the timer; Microkit allows 63 PDs and 62 channels
/// a PD, so the pool could grow to about 28 before NineDoor's or the
/// timer's channel ids run out, but memory in QEMU's 2 GiB and boot time
/// say keep it small until a workload needs more.
pub const HEARTBEAT_SLOTS: usize = 4;

/// GPU worker slots (`gpuworker`, child 5 of NineDoor): one, the GPU
/// worker the Queen leases a GPU to; a second `lease` while it holds one
/// fails with `ENOSPC`.
pub const GPU_SLOTS: usize = 1;

/// What kind of worker a slot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// `worker.elf`: a heartbeat worker.
    Heartbeat,
    /// `gpuworker.elf`: a GPU worker (`Worker:GPU`).
    Gpu,
}

/// One worker slot as NineDoor sees it: the child PD, its kind and its
/// ring pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSpec {
    /// The PD's child id under NineDoor.
    pub child: Child,
    /// What it runs.
    pub kind: SlotKind,
    /// The ring pair (its channel also carries the ticket call).
    pub link: LinkSpec,
}

/// Heartbeat lines a worker appends after its boot line.
pub const HEARTBEATS: u32 = 3;

/// The line NineDoor prints once every worker has appended all its
/// heartbeats: what `cargo xtask run` waits for on the serial console.
pub const PASS_MARKER: &str = "cohesix: pass: hive up, workers heartbeating";

/// One end of a ring pair as a PD sees it: the channel to its peer and the
/// `setvar_vaddr` symbols of the region it consumes (`rx`) and the one it
/// produces into (`tx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSpec {
    /// The channel to the peer.
    pub channel: Channel,
    /// Symbol of the region this side pops from.
    pub rx: &'static str,
    /// Symbol of the region this side pushes into.
    pub tx: &'static str,
}

/// NineDoor's side.
pub mod ninedoor {
    use super::{GPU_SLOTS, HEARTBEAT_SLOTS, LinkSpec, SlotKind, SlotSpec};
    use cohesix_abi::{Channel, Child};

    /// The link to the device PD.
    pub const DEVICE: LinkSpec = LinkSpec {
        channel: Channel::fixed(0),
        rx: "dev_rx",
        tx: "dev_tx",
    };
    /// The worker slots: slot `n` (1-based) is child `n`, on channel
    /// `10 + n`, over regions `w<n>_rx`/`w<n>_tx`.
    pub const SLOTS: [SlotSpec; HEARTBEAT_SLOTS + GPU_SLOTS] = [
        slot(1, SlotKind::Heartbeat, "w1_rx", "w1_tx"),
        slot(2, SlotKind::Heartbeat, "w2_rx", "w2_tx"),
        slot(3, SlotKind::Heartbeat, "w3_rx", "w3_tx"),
        slot(4, SlotKind::Heartbeat, "w4_rx", "w4_tx"),
        slot(5, SlotKind::Gpu, "w5_rx", "w5_tx"),
    ];

    const fn slot(n: u8, kind: SlotKind, rx: &'static str, tx: &'static str) -> SlotSpec {
        SlotSpec {
            child: Child::fixed(n),
            kind,
            link: LinkSpec {
                channel: Channel::fixed(10 + n),
                rx,
                tx,
            },
        }
    }
    /// The link to the network PD (9P over TCP from the host).
    pub const NET: LinkSpec = LinkSpec {
        channel: Channel::fixed(3),
        rx: "net_rx",
        tx: "net_tx",
    };
    /// The link to the network PD's bridge connection (one outbound TCP
    /// connection to the GPU bridge host; [`crate::bridge_ring`]).
    pub const BRIDGE: LinkSpec = LinkSpec {
        channel: Channel::fixed(4),
        rx: "bridge_rx",
        tx: "bridge_tx",
    };
    /// The timer's tick: the bridge link's deadlines (probe, reconnect).
    pub const TICK: Channel = Channel::fixed(5);
    /// The read-only page of boot entropy (`prefill_path`): the hive key
    /// and the seed of its ticket ids.
    pub const SEED: &str = "seed";
    /// Region symbols every board maps, for the image's patched variables.
    pub const REGIONS: [&str; 13] = [
        "dev_rx", "dev_tx", "w1_rx", "w1_tx", "w2_rx", "w2_tx", "w3_rx", "w3_tx", "w4_rx", "w4_tx",
        "seed", "w5_rx", "w5_tx",
    ];
    /// Ring pairs only boards with a network card wire (each mapped whole
    /// or not at all): the network PD's and the bridge link's.
    pub const BOARD_LINKS: [LinkSpec; 2] = [NET, BRIDGE];
}

/// A heartbeat worker's side (both workers run the same image).
pub mod worker {
    use super::LinkSpec;
    use cohesix_abi::Channel;

    /// The link to NineDoor; its channel also carries the ticket call.
    pub const NINEDOOR: LinkSpec = LinkSpec {
        channel: Channel::fixed(0),
        rx: "rx",
        tx: "tx",
    };
    /// The timer PD's tick: one more heartbeat.
    pub const TICK: Channel = Channel::fixed(1);
    /// Region symbols.
    pub const REGIONS: [&str; 2] = ["rx", "tx"];
}

/// The timer PD's side.
pub mod timer {
    use cohesix_abi::Channel;

    /// The RTC's interrupt.
    pub const IRQ: Channel = Channel::fixed(0);
    /// The channels to the worker slots (slot `n` on `10 + n`, as on
    /// NineDoor's side); each worker hears the tick on
    /// [`worker::TICK`](super::worker::TICK), running or not (a stopped
    /// slot's notification waits for its restart).
    pub const WORKERS: [Channel; super::HEARTBEAT_SLOTS + super::GPU_SLOTS] = [
        Channel::fixed(11),
        Channel::fixed(12),
        Channel::fixed(13),
        Channel::fixed(14),
        Channel::fixed(15),
    ];
    /// The channel to NineDoor, which hears the tick on
    /// [`ninedoor::TICK`](super::ninedoor::TICK).
    pub const NINEDOOR: Channel = Channel::fixed(4);
    /// The channel to the network PD, which hears the tick on
    /// [`device::TICK`](super::device::TICK) (TCP retransmissions).
    pub const NET: Channel = Channel::fixed(3);
    /// The PL031's register page (`timer.elf`, QEMU `virt`).
    pub const REGS: &str = "rtc";
    /// Region symbols of `timer.elf`.
    pub const REGIONS: [&str; 1] = [REGS];
    /// The Triple Timer Counter's register page (`ttc-timer.elf`, ZCU102:
    /// TTC0 at `0xff11_0000`).
    pub const TTC_REGS: &str = "ttc";
    /// The TTC counter the tick uses (0-based: TTC0's counter 1, SPI 36).
    pub const TTC_COUNTER: usize = 0;
    /// The TTC's nominal input clock: the ZCU102's `LPD_LSBUS_CLK` in its
    /// default PS configuration (the driver calibrates against the
    /// generic timer, so an emulator's other rate still gives 1 s ticks).
    pub const TTC_CLOCK_HZ: u64 = 100_000_000;
    /// Region symbols of `ttc-timer.elf`.
    pub const TTC_REGIONS: [&str; 1] = [TTC_REGS];
}

/// The host-facing PDs' side: the console PD (`device.elf`) and the
/// network PD (`net.elf`) run the same logic and see the same wiring.
pub mod device {
    use super::LinkSpec;
    use cohesix_abi::Channel;

    /// The link to NineDoor.
    pub const NINEDOOR: LinkSpec = LinkSpec {
        channel: Channel::fixed(0),
        rx: "rx",
        tx: "tx",
    };
    /// The host port's interrupt (the virtio device's IRQ on hardware).
    pub const IRQ: Channel = Channel::fixed(1);
    /// The timer's tick (the network PD only): poll the port.
    pub const TICK: Channel = Channel::fixed(2);
    /// The link to NineDoor's bridge link (the network PD only; the
    /// console PD maps no such regions).
    pub const BRIDGE: LinkSpec = LinkSpec {
        channel: Channel::fixed(3),
        rx: "bridge_rx",
        tx: "bridge_tx",
    };
    /// Region symbols the PD logic uses (the image adds its device ones).
    pub const REGIONS: [&str; 2] = ["rx", "tx"];
    /// The Cadence UART's register page (`uart.elf`, ZCU102: UART1 at
    /// `0xff01_0000`).
    pub const UART_REGS: &str = "uart";
    /// Region symbols of `uart.elf`.
    pub const UART_REGIONS: [&str; 3] = ["rx", "tx", UART_REGS];
}

/// The network PD's TCP endpoint, as QEMU's user-mode network sees it
/// (`-netdev user`: guest 10.0.2.15/24, gateway 10.0.2.2); the host reaches
/// it through a `hostfwd` of a loopback port to [`net::PORT`].
pub mod net {
    /// The guest's address.
    pub const ADDR: [u8; 4] = [10, 0, 2, 15];
    /// Its prefix length.
    pub const PREFIX: u8 = 24;
    /// QEMU's user-mode gateway.
    pub const GATEWAY: [u8; 4] = [10, 0, 2, 2];
    /// The 9P port (IANA's 564).
    pub const PORT: u16 = 564;
    /// Where the GPU bridge is: an address of QEMU's user network that a
    /// `guestfwd` rule (allowed under `restrict=on`) forwards to the bridge
    /// host's loopback port.
    pub const BRIDGE_ADDR: [u8; 4] = [10, 0, 2, 100];
    /// The bridge's port there.
    pub const BRIDGE_PORT: u16 = 5650;
    /// The first local port of the outbound bridge connection; each attempt
    /// takes the next (smoltcp picks none itself), so a reconnect never
    /// meets the last connection's state at the peer.
    pub const BRIDGE_LOCAL_PORTS: core::ops::Range<u16> = 49152..65535;
}

/// The GPU worker's side.
pub mod gpuworker {
    use super::LinkSpec;
    use cohesix_abi::Channel;

    /// The link to NineDoor; its channel also carries the ticket call.
    pub const NINEDOOR: LinkSpec = super::worker::NINEDOOR;
    /// The timer's tick: look at the job's status again.
    pub const TICK: Channel = super::worker::TICK;
    /// Region symbols.
    pub const REGIONS: [&str; 2] = super::worker::REGIONS;
}

/// The line the GPU worker prints once its job's result checked out.
pub const GPU_PASS_MARKER: &str = "gpuworker: pass:";

/// Protected-call labels on a worker's channel to NineDoor.
pub mod call {
    /// A worker asks for its id and ticket.
    pub const TICKET: u64 = 1;
    /// Reply: MR0 is the byte length, then the bytes `<id>\n<ticket>`.
    pub const OK: u64 = 0;
    /// Reply: the hive has no ticket for this channel yet; ask again after
    /// NineDoor's next notification.
    pub const NOT_READY: u64 = 2;
}

/// An address no PD maps (below every image's 2 MiB load address): where
/// a worker told to fault reads.
pub const FAULT_VADDR: u64 = 0x10;
