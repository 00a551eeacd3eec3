//! The simulator's Microkit semantics, with small probe PDs: notification
//! coalescing, priority order, protected calls with message registers, IRQ
//! masking until acknowledged, and refusal of channels not granted.

use cohesix_abi::{Channel, Context, Handler, MsgInfo};
use cohesix_sim::{Factory, PdEnv, SimHandler, Simulator, System};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

type Trace = Rc<RefCell<Vec<String>>>;

/// Records every entry point; on init, runs `script`.
struct Probe {
    name: String,
    trace: Trace,
    script: Vec<Action>,
}

#[derive(Clone, Copy)]
enum Action {
    Notify(u8),
    Call(u8, u64),
}

impl Handler for Probe {
    fn init(&mut self, ctx: &mut dyn Context) {
        self.trace.borrow_mut().push(format!("{} init", self.name));
        for a in self.script.clone() {
            match a {
                Action::Notify(ch) => ctx.notify(Channel::new(ch).unwrap()),
                Action::Call(ch, x) => {
                    ctx.set_mr(0, x);
                    let reply = ctx.ppcall(Channel::new(ch).unwrap(), MsgInfo::new(7, 1));
                    self.trace.borrow_mut().push(format!(
                        "{} reply label={} count={} mr0={}",
                        self.name,
                        reply.label(),
                        reply.count(),
                        ctx.mr(0)
                    ));
                }
            }
        }
    }

    fn notified(&mut self, ch: Channel, ctx: &mut dyn Context) {
        self.trace
            .borrow_mut()
            .push(format!("{} notified {}", self.name, ch.id()));
        if self.name == "dev" && ch.id() == 3 {
            ctx.irq_ack(ch);
        }
    }

    fn protected(&mut self, ch: Channel, msg: MsgInfo, ctx: &mut dyn Context) -> MsgInfo {
        let x = ctx.mr(0);
        self.trace.borrow_mut().push(format!(
            "{} protected {} label={} x={x}",
            self.name,
            ch.id(),
            msg.label()
        ));
        ctx.set_mr(0, x * 2);
        MsgInfo::new(1, 1)
    }
}

const SYSTEM: &str = r#"<system>
    <protection_domain name="low" priority="10"><program_image path="low" /></protection_domain>
    <protection_domain name="high" priority="90"><program_image path="high" /></protection_domain>
    <protection_domain name="dev" priority="50">
        <program_image path="dev" />
        <irq irq="33" id="3" />
    </protection_domain>
    <channel><end pd="low" id="0" pp="true" /><end pd="high" id="4" /></channel>
    <channel><end pd="low" id="1" /><end pd="dev" id="0" notify="false" /></channel>
</system>"#;

fn sim(scripts: &[(&'static str, Vec<Action>)]) -> (Simulator, Trace) {
    let trace: Trace = Rc::default();
    let mut f: BTreeMap<String, Factory> = BTreeMap::new();
    for (name, script) in scripts {
        let (t, script, name) = (trace.clone(), script.clone(), *name);
        f.insert(
            name.to_owned(),
            Rc::new(move |env: &PdEnv<'_>| {
                Ok(Box::new(Probe {
                    name: env.pd.name.clone(),
                    trace: t.clone(),
                    script: script.clone(),
                }) as Box<dyn SimHandler>)
            }),
        );
    }
    let system = System::parse(SYSTEM).unwrap();
    (Simulator::new(system, &f, &BTreeMap::new()).unwrap(), trace)
}

#[test]
fn inits_run_by_priority_and_notifications_coalesce() {
    let (mut s, trace) = sim(&[
        (
            "low",
            vec![Action::Notify(1), Action::Notify(1), Action::Notify(1)],
        ),
        ("high", vec![]),
        ("dev", vec![Action::Notify(0)]),
    ]);
    s.boot(100).unwrap();
    let t = trace.borrow();
    assert_eq!(t[..3], ["high init", "dev init", "low init"]);
    // Three signals before delivery: one notification.
    assert_eq!(t.iter().filter(|l| *l == "dev notified 0").count(), 1);
    // dev's end has notify="false": refused like libmicrokit refuses it.
    assert_eq!(s.refusals().len(), 1, "{:?}", s.refusals());
    assert!(s.refusals()[0].contains("dev microkit_notify: invalid channel given '0'"));
}

#[test]
fn protected_calls_run_synchronously_with_message_registers() {
    let (mut s, trace) = sim(&[
        ("low", vec![Action::Call(0, 21)]),
        ("high", vec![]),
        ("dev", vec![]),
    ]);
    s.boot(100).unwrap();
    let t = trace.borrow();
    let call = t
        .iter()
        .position(|l| l == "high protected 4 label=7 x=21")
        .unwrap();
    assert_eq!(t[call + 1], "low reply label=1 count=1 mr0=42");
}

#[test]
fn a_call_on_a_channel_without_pp_is_refused() {
    let (mut s, trace) = sim(&[
        ("low", vec![Action::Call(1, 5)]),
        ("high", vec![]),
        ("dev", vec![]),
    ]);
    s.boot(100).unwrap();
    assert!(
        trace
            .borrow()
            .contains(&"low reply label=0 count=0 mr0=5".to_owned())
    );
    assert!(s.refusals()[0].contains("microkit_ppcall"));
}

#[test]
fn irqs_stay_masked_until_acknowledged() {
    let (mut s, trace) = sim(&[("low", vec![]), ("high", vec![]), ("dev", vec![])]);
    s.boot(100).unwrap();
    trace.borrow_mut().clear();
    // Raised twice before delivery: delivered once (latched while masked,
    // then the handler acks and the latched one is delivered).
    s.raise_irq("dev", 3).unwrap();
    s.raise_irq("dev", 3).unwrap();
    s.run_until_idle(100).unwrap();
    assert_eq!(*trace.borrow(), ["dev notified 3", "dev notified 3"]);
    assert!(s.raise_irq("dev", 4).is_err());
    assert!(s.raise_irq("nobody", 3).is_err());
}
