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
//! message, as libmicrokit refuses it. A parent stops and restarts its
//! children (a restart builds the child's handler afresh from its factory,
//! as the image's entry point does, and runs its `init` when it is next
//! scheduled); a handler that panics has faulted: it runs no more, and the
//! fault goes to its parent's `fault` entry (a [`Context::crash_at`] is a
//! VM fault at that address, any other panic a user exception, as the
//! image's `abort` raises), or to the console as the monitor reports a PD
//! with no parent. What differs: entry points always
//! run to completion (a higher-priority PD signalled mid-handler runs when
//! the handler returns, not at the signal), budgets and periods are not
//! enforced, and mapping permissions are checked in the file but not
//! enforced on access.

use crate::system::{MemoryRegion, ProtectionDomain, System};
use cohesix_abi::microkit::MSG_MAX_LENGTH;
use cohesix_abi::{Channel, Child, Context, Fault, FaultKind, Handler, MsgInfo, Regions};
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Once;
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
/// for (again at every restart of a child).
pub type Factory = Rc<dyn Fn(&PdEnv<'_>) -> Result<Box<dyn SimHandler>, String>>;

/// The panic payload of [`Context::crash_at`] in the simulator.
struct SimFault {
    vaddr: u64,
}

/// Keeps the default panic message for real panics and says nothing for
/// the deliberate faults of `crash_at`.
fn quiet_sim_faults() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<SimFault>().is_none() {
                previous(info);
            }
        }));
    });
}

/// Whether a PD runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdState {
    /// Scheduled as usual.
    Running,
    /// Stopped by its parent.
    Stopped,
    /// Faulted: waiting for its parent (or forever, without one).
    Faulted,
}

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
    state: PdState,
    /// Restarted: `init` runs on its next turn.
    needs_init: bool,
    factory: Factory,
    by_symbol: BTreeMap<String, &'static [AtomicU32]>,
    /// Child id → PD index.
    children: BTreeMap<u8, usize>,
    /// Faults of children not yet delivered to this PD.
    faults: VecDeque<(Child, Fault)>,
    /// Entry points run (init, notifications, faults, protected calls).
    entries: usize,
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
            let factory = factories
                .get(&pd.program_image)
                .ok_or_else(|| SimError::NoFactory {
                    pd: pd.name.clone(),
                    image: pd.program_image.clone(),
                })?
                .clone();
            let env = PdEnv {
                pd,
                by_symbol: by_symbol.clone(),
            };
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
                state: PdState::Running,
                needs_init: false,
                factory,
                by_symbol,
                children: system
                    .children(slots.len())
                    .map(|(i, id)| (id, i))
                    .collect(),
                faults: VecDeque::new(),
                entries: 0,
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
        quiet_sim_faults();
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
        let s = &mut self.slots[pd];
        if s.initialised || s.state != PdState::Running {
            return;
        }
        s.initialised = true;
        s.needs_init = false;
        s.entries += 1;
        if let Some(mut h) = self.slots[pd].handler.take() {
            let ran = panic::catch_unwind(AssertUnwindSafe(|| {
                h.init(&mut SimCtx { sim: self, pd });
            }));
            self.finish_entry(pd, h, ran);
        }
    }

    /// Puts `h` back after an entry point of `pd`, or, if it panicked,
    /// marks `pd` faulted and reports the fault to its parent.
    fn finish_entry(
        &mut self,
        pd: usize,
        h: Box<dyn SimHandler>,
        ran: Result<(), Box<dyn Any + Send>>,
    ) {
        match ran {
            Ok(()) => {
                // A parent may have stopped or restarted this PD from
                // inside a call it made (never its own handler then).
                if self.slots[pd].state == PdState::Running && self.slots[pd].handler.is_none() {
                    self.slots[pd].handler = Some(h);
                }
            }
            Err(payload) => {
                drop(h);
                let fault = match payload.downcast_ref::<SimFault>() {
                    Some(f) => Fault {
                        kind: FaultKind::Vm {
                            prefetch: false,
                            fsr: 0,
                        },
                        ip: 0,
                        addr: f.vaddr,
                    },
                    None => Fault {
                        kind: FaultKind::UserException { number: 0, code: 0 },
                        ip: 0,
                        addr: 0,
                    },
                };
                self.fault(pd, fault);
            }
        }
    }

    fn fault(&mut self, pd: usize, fault: Fault) {
        let s = &mut self.slots[pd];
        s.state = PdState::Faulted;
        s.handler = None;
        s.needs_init = false;
        let parent = self.system.pds[pd].parent;
        match parent.and_then(|(p, id)| Some((p, Child::new(id)?))) {
            Some((p, child)) => self.slots[p].faults.push_back((child, fault)),
            None => {
                let line = format!("MON|ERROR: PD '{}' faulted: {fault}\n", self.slots[pd].name);
                self.console.push_str(&line);
            }
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
            let work = s.pending != 0 || s.needs_init || !s.faults.is_empty();
            if s.state == PdState::Running
                && work
                && best.is_none_or(|b| s.priority > self.slots[b].priority)
            {
                best = Some(i);
            }
        }
        best
    }

    fn deliver(&mut self, pd: usize) {
        self.clock_ms += 1;
        self.deliveries += 1;
        if self.slots[pd].needs_init {
            self.init(pd);
            return;
        }
        if let Some((child, fault)) = self.slots[pd].faults.pop_front() {
            self.slots[pd].entries += 1;
            let Some(mut h) = self.slots[pd].handler.take() else {
                return;
            };
            let mut resume = false;
            let ran = panic::catch_unwind(AssertUnwindSafe(|| {
                resume = h.fault(child, fault, &mut SimCtx { sim: self, pd });
            }));
            self.finish_entry(pd, h, ran);
            if resume {
                self.console
                    .push_str("sim: resuming a faulted child is not modelled; it stays stopped\n");
            }
            return;
        }
        let badge = std::mem::take(&mut self.slots[pd].pending);
        let Some(mut h) = self.slots[pd].handler.take() else {
            return;
        };
        self.slots[pd].entries += 1;
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            for id in 0..64u8 {
                if badge & (1 << id) != 0
                    && let Some(ch) = Channel::new(id)
                {
                    h.notified(ch, &mut SimCtx { sim: self, pd });
                }
            }
        }));
        self.finish_entry(pd, h, ran);
    }

    /// Builds `pd`'s handler afresh and schedules its `init`.
    fn restart(&mut self, pd: usize) {
        let env = PdEnv {
            pd: &self.system.pds[pd],
            by_symbol: self.slots[pd].by_symbol.clone(),
        };
        let built = (self.slots[pd].factory)(&env);
        let s = &mut self.slots[pd];
        match built {
            Ok(h) => {
                s.handler = Some(h);
                s.state = PdState::Running;
                s.initialised = false;
                s.needs_init = true;
            }
            Err(why) => {
                let line = format!("sim: PD '{}' could not be rebuilt: {why}\n", s.name);
                s.handler = None;
                s.state = PdState::Stopped;
                self.console.push_str(&line);
            }
        }
    }

    /// Whether `pd` is running, stopped by its parent, or faulted.
    pub fn state(&self, pd: &str) -> Result<PdState, SimError> {
        Ok(self.slots[self.index(pd)?].state)
    }

    /// Entry points `pd` has run so far (inits, notification deliveries,
    /// faults of children, protected calls): a stopped PD's count stands
    /// still.
    pub fn entries(&self, pd: &str) -> Result<usize, SimError> {
        Ok(self.slots[self.index(pd)?].entries)
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

    /// Lets `ms` milliseconds of simulated time pass (a tick of the timer
    /// is a second); every delivery also takes one.
    pub fn advance_clock(&mut self, ms: u64) {
        self.clock_ms = self.clock_ms.saturating_add(ms);
    }

    /// Signals channel `ch` as PD `pd` would (granted channels only), from
    /// outside any of its entry points: for tests that need a PD's peer
    /// woken without writing a handler that does it.
    pub fn notify_from(&mut self, pd: &str, ch: Channel) -> Result<(), SimError> {
        let pd = self.index(pd)?;
        SimCtx { sim: self, pd }.notify(ch);
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

    fn refuse_child(&mut self, pd: usize, what: &str, child: Child) {
        let line = format!(
            "{} {what}: no child with id {}\n",
            self.slots[pd].name,
            child.id()
        );
        self.console.push_str(&line);
        self.refusals.push(line);
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

    fn can_notify(&self, ch: Channel) -> bool {
        let me = &self.sim.slots[self.pd];
        me.notify_mask & ch.bit() != 0 && me.peers.contains_key(&ch.id())
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
        self.sim.slots[callee].entries += 1;
        let mut reply = MsgInfo::new(0, 0);
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            reply = h.protected(
                their,
                msg,
                &mut SimCtx {
                    sim: self.sim,
                    pd: callee,
                },
            );
        }));
        self.sim.finish_entry(callee, h, ran);
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

    fn pd_restart(&mut self, child: Child) {
        match self.sim.slots[self.pd].children.get(&child.id()).copied() {
            Some(target) => self.sim.restart(target),
            None => self.sim.refuse_child(self.pd, "microkit_pd_restart", child),
        }
    }

    fn pd_stop(&mut self, child: Child) {
        match self.sim.slots[self.pd].children.get(&child.id()).copied() {
            Some(target) => {
                let s = &mut self.sim.slots[target];
                s.state = PdState::Stopped;
                s.handler = None;
                s.needs_init = false;
            }
            None => self.sim.refuse_child(self.pd, "microkit_pd_stop", child),
        }
    }

    fn crash_at(&mut self, vaddr: u64) -> ! {
        panic::panic_any(SimFault { vaddr })
    }
}
