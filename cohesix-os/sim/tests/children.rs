//! Child PDs in the simulator, with probe PDs: a parent receives its
//! child's fault (kind and address), restarts it (a fresh handler whose
//! `init` runs again) or stops it (no entry point runs; notifications wait
//! for the restart), may act only on its own children, and a PD with no
//! parent that faults is reported as the monitor reports it.

use cohesix_abi::{Channel, Child, Context, Fault, Handler};
use cohesix_sim::{Factory, PdEnv, PdState, SimHandler, Simulator, System};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

type Trace = Rc<RefCell<Vec<String>>>;

const SYSTEM: &str = r#"<system>
    <protection_domain name="parent" priority="90">
        <program_image path="parent" />
        <protection_domain name="kid" id="5" priority="10">
            <program_image path="kid" />
        </protection_domain>
    </protection_domain>
    <protection_domain name="orphan" priority="20"><program_image path="orphan" /></protection_domain>
    <protection_domain name="ticker" priority="30"><program_image path="ticker" /></protection_domain>
    <channel><end pd="ticker" id="1" /><end pd="kid" id="2" /></channel>
    <channel><end pd="ticker" id="2" /><end pd="parent" id="2" /></channel>
</system>"#;

/// The child: faults on its first notification while `crash` is set.
struct Kid {
    trace: Trace,
    crash: Rc<RefCell<bool>>,
}

impl Handler for Kid {
    fn init(&mut self, _: &mut dyn Context) {
        self.trace.borrow_mut().push("kid init".into());
    }
    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        self.trace
            .borrow_mut()
            .push(format!("kid notified {}", ch.id()));
        if *self.crash.borrow() {
            ctx.crash_at(0x40);
        }
    }
}

/// The parent: restarts its child after the first fault, stops it after
/// the second; a notification makes it try a child it does not have.
struct Parent {
    trace: Trace,
    faults: usize,
}

impl Handler for Parent {
    fn init(&mut self, _: &mut dyn Context) {}
    fn notified(&mut self, _: Channel, ctx: &mut dyn Context) {
        ctx.pd_stop(Child::fixed(7));
    }
    fn fault(&mut self, child: Child, fault: Fault, ctx: &mut dyn Context) -> bool {
        self.faults += 1;
        self.trace
            .borrow_mut()
            .push(format!("parent fault {} {fault}", child.id()));
        if self.faults == 1 {
            ctx.pd_restart(child);
        } else {
            ctx.pd_stop(child);
        }
        false
    }
}

/// A PD with no parent that panics in `init`, as a PD's `abort` faults.
struct Orphan;

impl Handler for Orphan {
    fn init(&mut self, _: &mut dyn Context) {
        panic!("orphan aborts");
    }
    fn notified(&mut self, _: Channel, _: &mut dyn Context) {}
}

/// The kid's and the parent's peer on their channels (the test signals
/// through it with `Simulator::notify_from`).
struct Ticker;

impl Handler for Ticker {
    fn init(&mut self, _: &mut dyn Context) {}
    fn notified(&mut self, _: Channel, _: &mut dyn Context) {}
}

fn boot() -> (Simulator, Trace, Rc<RefCell<bool>>, Rc<RefCell<usize>>) {
    let trace: Trace = Rc::default();
    let crash = Rc::new(RefCell::new(true));
    let builds = Rc::new(RefCell::new(0usize));
    let mut f: BTreeMap<String, Factory> = BTreeMap::new();
    let (t, c, b) = (trace.clone(), crash.clone(), builds.clone());
    f.insert(
        "kid".into(),
        Rc::new(move |_: &PdEnv<'_>| {
            *b.borrow_mut() += 1;
            Ok(Box::new(Kid {
                trace: t.clone(),
                crash: c.clone(),
            }) as Box<dyn SimHandler>)
        }),
    );
    let t = trace.clone();
    f.insert(
        "parent".into(),
        Rc::new(move |_: &PdEnv<'_>| {
            Ok(Box::new(Parent {
                trace: t.clone(),
                faults: 0,
            }) as Box<dyn SimHandler>)
        }),
    );
    f.insert(
        "orphan".into(),
        Rc::new(|_: &PdEnv<'_>| Ok(Box::new(Orphan) as Box<dyn SimHandler>)),
    );
    f.insert(
        "ticker".into(),
        Rc::new(|_: &PdEnv<'_>| Ok(Box::new(Ticker) as Box<dyn SimHandler>)),
    );
    let system = System::parse(SYSTEM).expect("valid system");
    let mut sim = Simulator::new(system, &f, &BTreeMap::new()).expect("builds");
    sim.boot(100).expect("boots");
    (sim, trace, crash, builds)
}

/// Has the ticker notify its channel `id` and runs until idle.
fn signal(sim: &mut Simulator, pd: &str, id: u8) {
    sim.notify_from(pd, Channel::new(id).unwrap()).unwrap();
    sim.run_until_idle(100).unwrap();
}

#[test]
fn a_fault_reaches_the_parent_which_restarts_then_stops_the_child() {
    let (mut sim, trace, _, builds) = boot();
    assert_eq!(*builds.borrow(), 1);
    signal(&mut sim, "ticker", 1);
    {
        let t = trace.borrow();
        let fault = t.iter().find(|l| l.starts_with("parent fault")).unwrap();
        assert_eq!(fault, "parent fault 5 vm-fault at 0x40 (data, ip 0x0)");
        // Restarted: a new handler, whose init ran.
        assert_eq!(t.iter().filter(|l| *l == "kid init").count(), 2, "{t:?}");
    }
    assert_eq!(*builds.borrow(), 2);
    assert_eq!(sim.state("kid").unwrap(), PdState::Running);
    // The second fault: stopped, and nothing reaches it any more.
    signal(&mut sim, "ticker", 1);
    assert_eq!(sim.state("kid").unwrap(), PdState::Stopped);
    let entries = sim.entries("kid").unwrap();
    signal(&mut sim, "ticker", 1);
    assert_eq!(sim.entries("kid").unwrap(), entries);
    assert_eq!(
        trace
            .borrow()
            .iter()
            .filter(|l| l.starts_with("parent fault"))
            .count(),
        2
    );
}

#[test]
fn a_parent_acts_only_on_its_own_children() {
    let (mut sim, _, _, _) = boot();
    signal(&mut sim, "ticker", 2);
    assert!(
        sim.refusals()
            .iter()
            .any(|r| r.contains("parent microkit_pd_stop: no child with id 7")),
        "{:?}",
        sim.refusals()
    );
}

#[test]
fn a_pd_without_a_parent_that_faults_is_reported_and_never_runs_again() {
    let (sim, _, _, _) = boot();
    assert_eq!(sim.state("orphan").unwrap(), PdState::Faulted);
    assert!(
        sim.console()
            .contains("MON|ERROR: PD 'orphan' faulted: user-exception"),
        "{}",
        sim.console()
    );
}
