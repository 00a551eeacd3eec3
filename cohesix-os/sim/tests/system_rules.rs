//! The `.system` checker against Microkit's rules: the real file passes,
//! and each broken variant of it is refused with an error that names the
//! problem.

use cohesix_sim::{Board, COHESIX_SYSTEM, System};

/// `COHESIX_SYSTEM` with `from` replaced by `to` (which must occur).
fn variant(from: &str, to: &str) -> String {
    assert!(
        COHESIX_SYSTEM.contains(from),
        "fixture text missing: {from}"
    );
    COHESIX_SYSTEM.replacen(from, to, 1)
}

fn refused(xml: &str) -> String {
    match System::parse(xml) {
        Ok(_) => panic!("accepted a broken system"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_cohesix_system_passes() {
    let s = System::parse(COHESIX_SYSTEM).expect("qemu_virt_aarch64.system is valid");
    let names: Vec<&str> = s.pds.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "timer",
            "device",
            "net",
            "ninedoor",
            "worker1",
            "worker2",
            "worker3",
            "worker4",
            "gpuworker"
        ]
    );
    assert_eq!(s.channels.len(), 15);
    // The worker slots are NineDoor's children, with the ids its code uses.
    let ninedoor = s.pds.iter().position(|p| p.name == "ninedoor").unwrap();
    let children: Vec<(&str, u8)> = s
        .children(ninedoor)
        .map(|(i, id)| (s.pds[i].name.as_str(), id))
        .collect();
    let slots: Vec<u8> = cohesix_pds::wiring::ninedoor::SLOTS
        .iter()
        .map(|slot| slot.child.id())
        .collect();
    assert_eq!(
        children,
        [
            ("worker1", 1),
            ("worker2", 2),
            ("worker3", 3),
            ("worker4", 4),
            ("gpuworker", 5)
        ]
    );
    assert_eq!(children.iter().map(|c| c.1).collect::<Vec<_>>(), slots);
    assert!(s.pds.iter().filter(|p| p.parent.is_none()).count() == 4);
    let nd = s.pd("ninedoor").unwrap();
    let vaddrs: Vec<&str> = nd
        .maps
        .iter()
        .filter_map(|m| m.setvar_vaddr.as_deref())
        .collect();
    let links: Vec<&str> = cohesix_pds::wiring::ninedoor::BOARD_LINKS
        .iter()
        .flat_map(|l| [l.rx, l.tx])
        .collect();
    let (board, hive): (Vec<&str>, Vec<&str>) = vaddrs.iter().partition(|v| links.contains(v));
    assert_eq!(hive, cohesix_pds::wiring::ninedoor::REGIONS);
    assert_eq!(
        board.len(),
        links.len(),
        "virt wires the network and bridge rings"
    );
    assert!(nd.setvar_symbols().contains(&"seed_size"));
    assert_eq!(s.pd("device").unwrap().irqs[0].irq, 79);
    assert_eq!(s.pd("timer").unwrap().irqs[0].irq, 34);
    assert_eq!(s.pd("net").unwrap().irqs[0].irq, 71);
}

/// Each broken variant and a piece of the error it must produce.
#[test]
fn broken_systems_are_refused_with_clear_errors() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "duplicate PD name",
            variant(r#"name="worker2""#, r#"name="worker1""#),
            "duplicate protection domain name 'worker1'",
        ),
        (
            "duplicate region name",
            variant(r#"name="w2_down""#, r#"name="w2_up""#),
            "duplicate memory region name 'w2_up'",
        ),
        (
            "channel id 63",
            variant(
                r#"<end pd="device" id="0" />"#,
                r#"<end pd="device" id="63" />"#,
            ),
            "channel id 63 on <end> must be below 62",
        ),
        (
            "channel id 62 (Microkit 2.3.0's limit is 61)",
            variant(
                r#"<end pd="device" id="0" />"#,
                r#"<end pd="device" id="62" />"#,
            ),
            "must be below 62",
        ),
        (
            "duplicate channel id in one PD",
            variant(
                r#"<end pd="ninedoor" id="12" />"#,
                r#"<end pd="ninedoor" id="11" />"#,
            ),
            "duplicate channel id 11 in PD 'ninedoor'",
        ),
        (
            "ppc to lower priority",
            variant(
                r#"<end pd="ninedoor" id="11" />"#,
                r#"<end pd="ninedoor" id="11" pp="true" />"#,
            )
            .replacen(
                r#"<end pd="worker1" id="0" pp="true" />"#,
                r#"<end pd="worker1" id="0" />"#,
                1,
            ),
            "PPCs must be to protection domains of strictly higher priorities; channel with PPC exists from pd ninedoor (priority: 150) to pd worker1 (priority: 100)",
        ),
        (
            "ppc to equal priority",
            variant(
                r#"name="ninedoor" priority="150""#,
                r#"name="ninedoor" priority="100""#,
            ),
            "strictly higher priorities",
        ),
        (
            "ppc cycle",
            variant(
                "</system>",
                r#"<channel><end pd="device" id="5" pp="true" /><end pd="worker1" id="5" /></channel>
                   <channel><end pd="ninedoor" id="7" pp="true" /><end pd="device" id="6" /></channel>
                   </system>"#,
            ),
            "protected calls form a cycle: ",
        ),
        (
            "bidirectional ppc",
            variant(
                r#"<end pd="ninedoor" id="11" />"#,
                r#"<end pd="ninedoor" id="11" pp="true" />"#,
            ),
            "cannot ppc bidirectionally",
        ),
        (
            "duplicate child id",
            variant(r#"name="worker2" id="2""#, r#"name="worker2" id="1""#),
            "duplicate child id 1 in protection domain 'ninedoor'",
        ),
        (
            "child id 62 (Microkit's PD_MAX_ID is 61)",
            variant(r#"name="worker2" id="2""#, r#"name="worker2" id="62""#),
            "child PD 'worker2': id 62 must be < 62",
        ),
        (
            "child without an id",
            variant(r#"name="worker2" id="2""#, r#"name="worker2""#),
            "<protection_domain> is missing attribute 'id'",
        ),
        (
            "id on a PD that is no child",
            variant(
                r#"name="device" priority="200""#,
                r#"name="device" id="3" priority="200""#,
            ),
            "unknown attribute 'id'",
        ),
        (
            "child at its parent's priority",
            variant(
                r#"name="worker1" id="1" priority="100""#,
                r#"name="worker1" id="1" priority="150""#,
            )
            .replacen(
                r#"<end pd="worker1" id="0" pp="true" />"#,
                r#"<end pd="worker1" id="0" />"#,
                1,
            ),
            "child PD 'worker1' (id 1, priority 150) must have a lower priority than its parent 'ninedoor' (150)",
        ),
        (
            "region size not page-sized",
            variant(
                r#"name="dev_up" size="0x4000""#,
                r#"name="dev_up" size="0x4100""#,
            ),
            "memory region 'dev_up': size 0x4100 is not a non-zero multiple of its page size 0x1000",
        ),
        (
            "unaligned mapping",
            variant(r#"vaddr="0x1003_0000""#, r#"vaddr="0x1003_0800""#),
            "vaddr 0x10030800 is not aligned to the region's page size 0x1000",
        ),
        (
            "overlapping mappings",
            variant(r#"vaddr="0x1001_4000""#, r#"vaddr="0x1001_2000""#),
            "map of 'w1_down' [0x10012000..0x10016000) overlaps map of 'w1_up' [0x10010000..0x10014000) in PD 'ninedoor'",
        ),
        (
            "mapping over the stack",
            variant(r#"vaddr="0x1003_0000""#, r#"vaddr="0xff_ffff_0000""#),
            "exceeds the address space",
        ),
        (
            "priority 255",
            variant(r#"priority="200""#, r#"priority="255""#),
            "PD 'device': priority 255 must be between 0 and 254",
        ),
        (
            "priority not a number",
            variant(r#"priority="200""#, r#"priority="high""#),
            "priority 'high' is not a number",
        ),
        (
            "budget above period",
            variant(
                r#"budget="2_000" period="10_000""#,
                r#"budget="20_000" period="10_000""#,
            ),
            "budget (20000) must be less than, or equal to, period (10000)",
        ),
        (
            "unknown region",
            variant(r#"mr="hive_seed""#, r#"mr="hive_sed""#),
            "PD 'ninedoor' maps unknown memory region 'hive_sed'",
        ),
        (
            "unknown PD in a channel",
            variant(
                r#"<end pd="device" id="0" />"#,
                r#"<end pd="devise" id="0" />"#,
            ),
            "channel end names unknown PD 'devise'",
        ),
        (
            "write-only mapping",
            variant(
                r#"perms="r" setvar_vaddr="seed""#,
                r#"perms="w" setvar_vaddr="seed""#,
            ),
            "not write-only",
        ),
        (
            "unknown attribute",
            variant(r#"<irq irq="79""#, r#"<irq irq="79" colour="red""#),
            "<irq> has unknown attribute 'colour'",
        ),
        (
            "reserved name",
            variant(r#"name="device""#, r#"name="monitor""#),
            "reserved",
        ),
        (
            "setvar symbol twice",
            variant(r#"setvar_vaddr="w1_tx""#, r#"setvar_vaddr="w1_rx""#),
            "setvar symbol 'w1_rx' set twice",
        ),
        (
            "stack not page-sized",
            variant(r#"stack_size="0x4000""#, r#"stack_size="0x4100""#),
            "stack size 0x4100",
        ),
        ("not XML", String::from("<system"), "not XML"),
    ];
    for (name, xml, want) in cases {
        let got = refused(&xml);
        assert!(got.contains(want), "{name}: got {got:?}, want {want:?}");
    }
}

#[test]
fn errors_carry_the_line() {
    let xml = variant(r#"name="worker2""#, r#"name="worker1""#);
    let e = System::parse(&xml).unwrap_err();
    let line = xml
        .lines()
        .position(|l| l.contains(r#"protection_domain name="worker1" id="1" priority="100""#))
        .unwrap() as u32
        + 1;
    // The second of the two worker1 elements.
    assert!(e.line.is_some_and(|l| l > line), "{e}");
}

#[test]
fn the_zcu102_system_passes_with_its_own_device_side() {
    let s = System::parse(Board::Zcu102.system()).expect("zcu102.system is valid");
    let pds: Vec<(&str, &str)> = s
        .pds
        .iter()
        .map(|p| (p.name.as_str(), p.program_image.as_str()))
        .collect();
    assert_eq!(
        pds,
        [
            ("timer", "ttc-timer.elf"),
            ("device", "uart.elf"),
            ("ninedoor", "ninedoor.elf"),
            ("worker1", "worker.elf"),
            ("worker2", "worker.elf"),
            ("worker3", "worker.elf"),
            ("worker4", "worker.elf"),
            ("gpuworker", "gpuworker.elf")
        ]
    );
    // UART1 (SPI 22) and TTC0's first counter (SPI 36), level-triggered.
    assert_eq!(s.pd("device").unwrap().irqs[0].irq, 54);
    assert_eq!(s.pd("timer").unwrap().irqs[0].irq, 68);
    let phys = |name: &str| {
        s.regions
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.phys_addr)
    };
    assert_eq!(phys("uart1"), Some(0xff01_0000));
    assert_eq!(phys("ttc0"), Some(0xff11_0000));
    let nd = s.pd("ninedoor").unwrap();
    assert!(
        nd.maps.iter().all(|m| !matches!(
            m.mr.as_str(),
            "net_up" | "net_down" | "bridge_up" | "bridge_down"
        )),
        "no network card on this board"
    );
}

/// Boards are a parameter: every board gives NineDoor and the workers the
/// same hive (regions, addresses, children, channel ids); only the device
/// side may differ.
#[test]
fn every_board_wires_the_same_hive() {
    let hive_pds = [
        "ninedoor",
        "worker1",
        "worker2",
        "worker3",
        "worker4",
        "gpuworker",
    ];
    let shape = |b: Board| {
        let s = System::parse(b.system()).unwrap();
        let board_only = ["net_rx", "net_tx", "bridge_rx", "bridge_tx"];
        let mut out = Vec::new();
        for name in hive_pds {
            let pd = s.pd(name).unwrap();
            let maps: Vec<String> = pd
                .maps
                .iter()
                .filter(|m| !board_only.contains(&m.setvar_vaddr.as_deref().unwrap_or("")))
                .map(|m| format!("{}@{:#x}:{:?}", m.mr, m.vaddr, m.setvar_vaddr))
                .collect();
            out.push(format!(
                "{name} {} prio {} maps {maps:?}",
                pd.program_image, pd.priority
            ));
        }
        let mut channels: Vec<String> = s
            .channels
            .iter()
            .filter(|c| {
                let pds = [&s.pds[c.ends[0].pd].name, &s.pds[c.ends[1].pd].name];
                pds.iter()
                    .all(|n| hive_pds.contains(&n.as_str()) || *n == "timer" || *n == "device")
            })
            .map(|c| {
                let [a, b] = &c.ends;
                format!(
                    "{}:{} {}:{}",
                    s.pds[a.pd].name, a.id, s.pds[b.pd].name, b.id
                )
            })
            .collect();
        channels.sort();
        (out, channels)
    };
    let virt = shape(Board::QemuVirt);
    for b in Board::ALL {
        assert_eq!(
            shape(b),
            virt,
            "{b} wires the hive differently from qemu_virt_aarch64"
        );
    }
}
