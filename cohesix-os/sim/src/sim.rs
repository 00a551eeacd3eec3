//! The simulator proper: every PD of a [`System`] as a handler in one
//! thread, its memory regions as shared word buffers, its channels as
//! notification bits, its protected calls as direct calls.
//!
//! Semantics kept from Microkit: `init` runs once per PD before anything
//! else reaches it (in priority order, highest first); a notification
//! raised several times before delivery is delivered once (a pending bit,
//! like a seL4 notification word); pending notifications are delivered in
//! channel order, all bits of one PD at once; the runnable PD of highest
//! priority runs first (ties in file order); protected calls run the
//! callee's `protected` synchronously and copy the message registers both
//! ways; an IRQ is masked from delivery until the PD acknowledges it; a
//! channel operation the system file did not grant is refused with a
//! message, as libmicrokit refuses it. What differs: entry points always
//! run to completion (a higher-priority PD signalled mid-handler runs when
//! the handler returns, not at the signal), budgets and periods are not
//! enforced, and mapping permissions are checked in the file but not
//! enforced on access.

use crate::system::{MemoryRegion, ProtectionDomain, System};
use cohesix_abi::microkit::MSG_MAX_LENGTH;
use cohesix_abi::{Channel, Context, Handler, MsgInfo, Regions};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// A PD handler the simulator can also hand back to a test.
pub trait SimHandler: Handler + Any {}
impl<T: Handler + Any> SimHandler for T {}

/// What a factory gets to build one PD: its description and its regions.
pub struct PdEnv<'s> {
    /// The PD as the system file describes it.
    pub pd: &'s ProtectionDomain,
    by_symbol: BTreeMap<String, &'static [AtomicU32]>,
}

impl Regions for PdEnv<'_> {
    fn region(&self, symbol: &str) -> Option<&'static [AtomicU32]> {
        self.by_symbol.get(symbol).copied()
    }
}

/// Builds the handler of every PD whose `program_image` it is registered
/// for.
pub type Factory = Box<dyn Fn(&PdEnv<'_>) -> Result<Box<dyn SimHandler>, String>>;

/// Why the simulation stopped or refused to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// No factory for a PD's image.
    NoFactory {
        /// The PD.
        pd: String,
        /// Its image.
        image: String,
    },
    /// A factory failed.
    Build {
        /// The PD.
        pd: String,
        /// Why.
        why: String,
    },
    /// A prefill file's bytes do not fit its region.
    Prefill {
        /// The region.
        region: String,
    },
    /// No such PD or IRQ.
    Unknown(String),
    /// The system kept running past the step limit: a livelock.
    NotIdle {
        /// Deliveries made.
        steps: usize,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::NoFactory { pd, image } => {
                write!(f, "no handler registered for PD '{pd}' (image '{image}')")
            }
            SimError::Build { pd, why } => write!(f, "PD '{pd}' could not be built: {why}"),
            SimError::Prefill { region } => {
                write!(f, "prefill of region '{region}' is larger than the region")
            }
            SimError::Unknown(what) => write!(f, "unknown {what}"),
            SimError::NotIdle { steps } => {
                write!(f, "system still busy after {steps} deliveries")
            }
        }
    }
}

impl std::error::Error for SimError {}

struct Slot {
    name: String,
    priority: u8,
    handler: Option<Box<dyn SimHandler>>,
    initialised: bool,
    /// Notification bits raised and not yet delivered.
    pending: u64,
    /// IRQs delivered and not yet acknowledged.
    irq_masked: u64,
    /// IRQs raised while masked.
    irq_latched: u64,
    /// What `microkit_notifications`, `microkit_pps`, `microkit_irqs` hold.
    notify_mask: u64,
    pp_mask: u64,
    irq_mask: u64,
    /// This PD's channel id → (peer PD, the peer's id for the channel).
    peers: BTreeMap<u8, (usize, u8)>,
    mrs: [u64; MSG_MAX_LENGTH],
}

/// A running simulation.
pub struct Simulator {
    system: System,
    slots: Vec<Slot>,
    regions: BTreeMap<String, &'static [AtomicU32]>,
    clock_ms: u64,
    console: String,
    refusals: Vec<String>,
    deliveries: usize,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field(
                "pds",
                &self.slots.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("clock_ms", &self.clock_ms)
            .field("deliveries", &self.deliveries)
            .finish_non_exhaustive()
    }
}

fn map_region(mr: &MemoryRegion, prefill: Option<&[u8]>) -> Result<&'static [AtomicU32], SimError> {
    let words = (mr.size / 4) as usize;
    let region: Vec<AtomicU32> = (0..words).map(|_| AtomicU32::new(0)).collect();
    if let Some(bytes) = prefill {
        if bytes.len() as u64 > mr.size {
            return Err(SimError::Prefill {
                region: mr.name.clone(),
            });
        }
        for (word, chunk) in region.iter().zip(bytes.chunks(4)) {
            let mut b = [0u8; 4];
            b[..chunk.len()].copy_from_slice(chunk);
            word.store(u32::from_le_bytes(b), Ordering::Relaxed);
        }
    }
    // A mapping lives as long as the system: like a Microkit region, it
    // is never unmapped, so the handlers may hold it as `'static`.
    Ok(Box::leak(region.into_boxed_slice()))
}

impl Simulator {
    /// Maps the regions of `system` (filling those with a `prefill_path`
    /// from `prefill`, by path) and builds every PD with the factory
    /// registered for its image. Nothing runs until [`Simulator::boot`].
    pub fn new(
        system: System,
        factories: &BTreeMap<String, Factory>,
        prefill: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Simulator, SimError> {
        let mut regions = BTreeMap::new();
        for mr in &system.regions {
            let bytes = mr.prefill_path.as_ref().and_then(|p| prefill.get(p));
            regions.insert(mr.name.clone(), map_region(mr, bytes.map(Vec::as_slice))?);
        }
        let mut slots = Vec::new();
        for pd in &system.pds {
            let mut by_symbol = BTreeMap::new();
            for map in &pd.maps {
                if let (Some(sym), Some(region)) = (&map.setvar_vaddr, regions.get(&map.mr)) {
                    by_symbol.insert(sym.clone(), *region);
                }
            }
            let env = PdEnv { pd, by_symbol };
            let factory = factories
                .get(&pd.program_image)
                .ok_or_else(|| SimError::NoFactory {
                    pd: pd.name.clone(),
                    image: pd.program_image.clone(),
                })?;
            let handler = factory(&env).map_err(|why| SimError::Build {
                pd: pd.name.clone(),
                why,
            })?;
            let irq_mask = pd.irqs.iter().fold(0, |m, i| m | (1u64 << i.id));
            slots.push(Slot {
                name: pd.name.clone(),
                priority: pd.priority,
                handler: Some(handler),
                initialised: false,
                pending: 0,
                irq_masked: 0,
                irq_latched: 0,
                notify_mask: 0,
                pp_mask: 0,
                irq_mask,
                peers: BTreeMap::new(),
                mrs: [0; MSG_MAX_LENGTH],
            });
        }
        for ch in &system.channels {
            let [a, b] = ch.ends;
            for (me, other) in [(a, b), (b, a)] {
                let slot = &mut slots[me.pd];
                slot.peers.insert(me.id, (other.pd, other.id));
                if me.notify {
                    slot.notify_mask |= 1 << me.id;
                }
                if me.pp {
                    slot.pp_mask |= 1 << me.id;
                }
            }
        }
        Ok(Simulator {
            system,
            slots,
            regions,
            clock_ms: 0,
            console: String::new(),
            refusals: Vec::new(),
            deliveries: 0,
        })
    }

    /// The system description.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// Runs every `init`, highest priority first, then delivers until idle.
    pub fn boot(&mut self, max_steps: usize) -> Result<(), SimError> {
        let mut order: Vec<usize> = (0..self.slots.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse(self.slots[*i].priority));
        for pd in order {
            self.init(pd);
        }
        self.run_until_idle(max_steps)
    }

    fn init(&mut self, pd: usize) {
        if self.slots[pd].initialised {
            return;
        }
        self.slots[pd].initialised = true;
        if let Some(mut h) = self.slots[pd].handler.take() {
            h.init(&mut SimCtx { sim: self, pd });
            self.slots[pd].handler = Some(h);
        }
    }

    /// Delivers pending notifications, highest priority first, until none
    /// is left; fails after `max_steps` deliveries.
    pub fn run_until_idle(&mut self, max_steps: usize) -> Result<(), SimError> {
        let mut steps = 0;
        while let Some(pd) = self.next_runnable() {
            if steps == max_steps {
                return Err(SimError::NotIdle { steps });
            }
            steps += 1;
            self.deliver(pd);
        }
        Ok(())
    }

    /// Delivers the pending notifications of the one PD that runs next
    /// (the highest priority with any); `false` when the system is idle.
    /// For tests that need to stop between two PDs' turns.
    pub fn step(&mut self) -> bool {
        match self.next_runnable() {
            Some(pd) => {
                self.deliver(pd);
                true
            }
            None => false,
        }
    }

    fn next_runnable(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if s.pending != 0 && best.is_none_or(|b| s.priority > self.slots[b].priority) {
                best = Some(i);
            }
        }
        best
    }

    fn deliver(&mut self, pd: usize) {
        self.clock_ms += 1;
        self.deliveries += 1;
        let badge = std::mem::take(&mut self.slots[pd].pending);
        let Some(mut h) = self.slots[pd].handler.take() else {
            return;
        };
        for id in 0..64u8 {
            if badge & (1 << id) != 0
                && let Some(ch) = Channel::new(id)
            {
                h.notified(ch, &mut SimCtx { sim: self, pd });
            }
        }
        self.slots[pd].handler = Some(h);
    }

    fn index(&self, name: &str) -> Result<usize, SimError> {
        self.slots
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| SimError::Unknown(format!("PD '{name}'")))
    }

    /// Raises the IRQ that `pd` receives on channel `id` (a device
    /// interrupting). Masked until the PD acknowledges the last one.
    pub fn raise_irq(&mut self, pd: &str, id: u8) -> Result<(), SimError> {
        let i = self.index(pd)?;
        let bit = 1u64 << id;
        let s = &mut self.slots[i];
        if s.irq_mask & bit == 0 {
            return Err(SimError::Unknown(format!(
                "IRQ on channel {id} of PD '{pd}'"
            )));
        }
        if s.irq_masked & bit != 0 {
            s.irq_latched |= bit;
        } else {
            s.irq_masked |= bit;
            s.pending |= bit;
        }
        Ok(())
    }

    /// The handler of `pd`, if it is a `T`.
    pub fn handler<T: SimHandler>(&self, pd: &str) -> Option<&T> {
        let slot = self.slots.iter().find(|s| s.name == pd)?;
        let h: &dyn Any = slot.handler.as_deref()?;
        h.downcast_ref::<T>()
    }

    /// The region `name`, as every PD that maps it sees it.
    pub fn region(&self, name: &str) -> Option<&'static [AtomicU32]> {
        self.regions.get(name).copied()
    }

    /// Everything the PDs wrote to the debug console.
    pub fn console(&self) -> &str {
        &self.console
    }

    /// Channel operations refused because the system file did not grant
    /// them (each also went to the console).
    pub fn refusals(&self) -> &[String] {
        &self.refusals
    }

    /// Notifications and IRQs delivered so far.
    pub fn deliveries(&self) -> usize {
        self.deliveries
    }

    fn refuse(&mut self, pd: usize, what: &str, ch: Channel) {
        let line = format!(
            "{} {what}: invalid channel given '{}'\n",
            self.slots[pd].name,
            ch.id()
        );
        self.console.push_str(&line);
        self.refusals.push(line);
    }
}

/// One PD's view of the simulator while one of its entry points runs.
struct SimCtx<'s> {
    sim: &'s mut Simulator,
    pd: usize,
}

impl Context for SimCtx<'_> {
    fn name(&self) -> &str {
        &self.sim.slots[self.pd].name
    }

    fn notify(&mut self, ch: Channel) {
        let me = &self.sim.slots[self.pd];
        match me.peers.get(&ch.id()) {
            Some(&(peer, their)) if me.notify_mask & ch.bit() != 0 => {
                self.sim.slots[peer].pending |= 1 << their;
            }
            _ => self.sim.refuse(self.pd, "microkit_notify", ch),
        }
    }

    fn irq_ack(&mut self, ch: Channel) {
        let bit = ch.bit();
        let s = &mut self.sim.slots[self.pd];
        if s.irq_mask & bit == 0 {
            self.sim.refuse(self.pd, "microkit_irq_ack", ch);
            return;
        }
        s.irq_masked &= !bit;
        if s.irq_latched & bit != 0 {
            s.irq_latched &= !bit;
            s.irq_masked |= bit;
            s.pending |= bit;
        }
    }

    fn ppcall(&mut self, ch: Channel, msg: MsgInfo) -> MsgInfo {
        let me = &self.sim.slots[self.pd];
        let Some(&(callee, their)) = me
            .peers
            .get(&ch.id())
            .filter(|_| me.pp_mask & ch.bit() != 0)
        else {
            self.sim.refuse(self.pd, "microkit_ppcall", ch);
            return MsgInfo::new(0, 0);
        };
        // The callee's init completes before its protected entry point can
        // be reached (its thread is not waiting on its endpoint until then).
        self.sim.init(callee);
        let Some(mut h) = self.sim.slots[callee].handler.take() else {
            // The callee is running already: only a call cycle gets here,
            // which the checker refuses.
            self.sim
                .refuse(self.pd, "microkit_ppcall (callee busy)", ch);
            return MsgInfo::new(0, 0);
        };
        let n = msg.count();
        let args = self.sim.slots[self.pd].mrs;
        self.sim.slots[callee].mrs[..n].copy_from_slice(&args[..n]);
        let their = Channel::new(their).unwrap_or(ch);
        let reply = h.protected(
            their,
            msg,
            &mut SimCtx {
                sim: self.sim,
                pd: callee,
            },
        );
        self.sim.slots[callee].handler = Some(h);
        let n = reply.count();
        let back = self.sim.slots[callee].mrs;
        self.sim.slots[self.pd].mrs[..n].copy_from_slice(&back[..n]);
        reply
    }

    fn mr(&self, i: usize) -> u64 {
        self.sim.slots[self.pd].mrs.get(i).copied().unwrap_or(0)
    }

    fn set_mr(&mut self, i: usize, value: u64) {
        if let Some(r) = self.sim.slots[self.pd].mrs.get_mut(i) {
            *r = value;
        }
    }

    fn debug(&mut self, text: &str) {
        self.sim.console.push_str(text);
    }

    fn uptime_ms(&self) -> u64 {
        self.sim.clock_ms
    }
}
