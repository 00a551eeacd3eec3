//! The `.system` file: Microkit's system description, parsed with the same
//! XML crate Microkit's tool uses and checked against the rules that tool
//! enforces (Microkit 2.3.0, `tool/microkit/src/sdf.rs`), plus one it gets
//! for free from its priority rule and we state outright: protected calls
//! form no cycle.
//!
//! Only what the Cohesix system uses is accepted; anything else (virtual
//! machines, I/O ports, unknown attributes) is refused by name
//! rather than silently ignored, so the file the simulator boots is the
//! file the real tool would build.

use cohesix_abi::microkit::{
    DEFAULT_BUDGET_US, DEFAULT_STACK_SIZE, MAX_CHANNELS, MAX_CHILD_ID, MAX_PRIORITY,
    MAX_STACK_SIZE, MIN_STACK_SIZE, MONITOR_NAME, PAGE_SIZE, PAGE_SIZES,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// `seL4_UserVSpaceTop` on `qemu_virt_aarch64` (hypervisor mode, 40-bit
/// physical addresses): mappings must end below the PD's stack, which sits
/// under the IPC buffer page at the top of this.
pub const VSPACE_USER_TOP: u64 = 0xff_ffff_ffff;

/// One problem with a system description, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemError {
    /// 1-based line in the file, when the problem has one.
    pub line: Option<u32>,
    /// What is wrong, naming the element and value.
    pub message: String,
}

impl fmt::Display for SystemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SystemError {}

fn err(line: Option<u32>, message: impl Into<String>) -> SystemError {
    SystemError {
        line,
        message: message.into(),
    }
}

/// A memory region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Its name.
    pub name: String,
    /// Bytes (a multiple of `page_size`).
    pub size: u64,
    /// Its page size.
    pub page_size: u64,
    /// A fixed physical address (device memory).
    pub phys_addr: Option<u64>,
    /// A file whose bytes fill it at boot.
    pub prefill_path: Option<String>,
    /// Line of its element.
    pub line: u32,
}

/// A mapping of a region into a PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// The region's name.
    pub mr: String,
    /// Where it appears.
    pub vaddr: u64,
    /// `r`, `w`, `x` as given.
    pub perms: String,
    /// Cached (false for device registers).
    pub cached: bool,
    /// Symbol patched with `vaddr`.
    pub setvar_vaddr: Option<String>,
    /// Symbol patched with the region's size.
    pub setvar_size: Option<String>,
    /// Line of its element.
    pub line: u32,
}

/// An IRQ delivered to a PD on a channel id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irq {
    /// The interrupt number.
    pub irq: u64,
    /// The channel id it arrives on.
    pub id: u8,
    /// `level` or `edge`.
    pub trigger: String,
}

/// A `<setvar symbol=… region_paddr=…/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddrVar {
    /// The symbol.
    pub symbol: String,
    /// The region whose physical address it receives.
    pub region: String,
}

/// A protection domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionDomain {
    /// Its name.
    pub name: String,
    /// 0..=254.
    pub priority: u8,
    /// Microseconds of budget per period.
    pub budget: u64,
    /// Period, microseconds.
    pub period: u64,
    /// Runs only on the caller's or notifier's budget after `init`.
    pub passive: bool,
    /// Stack bytes.
    pub stack_size: u64,
    /// The ELF.
    pub program_image: String,
    /// Its mappings.
    pub maps: Vec<Map>,
    /// Its IRQs.
    pub irqs: Vec<Irq>,
    /// Its physical-address variables.
    pub paddr_vars: Vec<PaddrVar>,
    /// For a child PD: its parent's index in [`System::pds`] and its id
    /// there (the parent's TCB cap and fault badge for it).
    pub parent: Option<(usize, u8)>,
    /// Line of its element.
    pub line: u32,
}

impl ProtectionDomain {
    /// Every symbol the tool patches in this PD's image besides the
    /// `microkit_*` ones.
    pub fn setvar_symbols(&self) -> Vec<&str> {
        let maps = self.maps.iter().flat_map(|m| {
            [m.setvar_vaddr.as_deref(), m.setvar_size.as_deref()]
                .into_iter()
                .flatten()
        });
        maps.chain(self.paddr_vars.iter().map(|v| v.symbol.as_str()))
            .collect()
    }

    /// The first address above every mapping (the bottom of the stack).
    pub fn map_limit(&self) -> u64 {
        let ipc_buffer = VSPACE_USER_TOP & !(PAGE_SIZE - 1);
        // A guard page sits between the stack and the IPC buffer.
        ipc_buffer - PAGE_SIZE - self.stack_size
    }
}

/// One end of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// Index of the PD in [`System::pds`].
    pub pd: usize,
    /// The channel id at this end.
    pub id: u8,
    /// Whether this end may notify the other.
    pub notify: bool,
    /// Whether this end may call the other's protected procedure.
    pub pp: bool,
}

/// A channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelDesc {
    /// The two ends.
    pub ends: [End; 2],
    /// Line of its element.
    pub line: u32,
}

/// A parsed and checked system description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// Protection domains, in file order.
    pub pds: Vec<ProtectionDomain>,
    /// Memory regions, in file order.
    pub regions: Vec<MemoryRegion>,
    /// Channels, in file order.
    pub channels: Vec<ChannelDesc>,
}

fn parse_number(s: &str, line: u32, what: &str) -> Result<u64, SystemError> {
    let digits: String = s.chars().filter(|c| *c != '_').collect();
    let parsed = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    };
    parsed.map_err(|e| err(Some(line), format!("{what} '{s}' is not a number: {e}")))
}

fn parse_bool(s: &str, line: u32, what: &str) -> Result<bool, SystemError> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(err(
            Some(line),
            format!("{what} must be 'true' or 'false', not '{s}'"),
        )),
    }
}

struct Element<'a, 'input> {
    node: roxmltree::Node<'a, 'input>,
    line: u32,
}

impl<'a, 'input> Element<'a, 'input> {
    fn new(doc: &roxmltree::Document<'input>, node: roxmltree::Node<'a, 'input>) -> Self {
        let line = doc.text_pos_at(node.range().start).row;
        Element { node, line }
    }

    fn name(&self) -> &str {
        self.node.tag_name().name()
    }

    /// Refuses attributes outside `allowed` (Microkit's `check_attributes`).
    fn allow(&self, allowed: &[&str]) -> Result<(), SystemError> {
        for a in self.node.attributes() {
            if !allowed.contains(&a.name()) {
                return Err(err(
                    Some(self.line),
                    format!("<{}> has unknown attribute '{}'", self.name(), a.name()),
                ));
            }
        }
        Ok(())
    }

    fn opt(&self, attr: &str) -> Option<&'a str> {
        self.node.attribute(attr)
    }

    fn req(&self, attr: &str) -> Result<&'a str, SystemError> {
        self.opt(attr).ok_or_else(|| {
            err(
                Some(self.line),
                format!("<{}> is missing attribute '{attr}'", self.name()),
            )
        })
    }

    fn number(&self, attr: &str) -> Result<Option<u64>, SystemError> {
        self.opt(attr)
            .map(|s| parse_number(s, self.line, attr))
            .transpose()
    }

    fn channel_id(&self) -> Result<u8, SystemError> {
        let id = parse_number(self.req("id")?, self.line, "id")?;
        match u8::try_from(id) {
            Ok(id) if id < MAX_CHANNELS => Ok(id),
            _ => Err(err(
                Some(self.line),
                format!(
                    "channel id {id} on <{}> must be below {MAX_CHANNELS}",
                    self.name()
                ),
            )),
        }
    }

    fn children(&self, doc: &roxmltree::Document<'input>) -> Vec<Element<'a, 'input>> {
        self.node
            .children()
            .filter(|c| c.is_element())
            .map(|c| Element::new(doc, c))
            .collect()
    }
}

fn parse_region(e: &Element<'_, '_>) -> Result<MemoryRegion, SystemError> {
    e.allow(&["name", "size", "page_size", "phys_addr", "prefill_path"])?;
    let name = e.req("name")?.to_owned();
    let page_size = e.number("page_size")?.unwrap_or(PAGE_SIZE);
    if !PAGE_SIZES.contains(&page_size) {
        return Err(err(
            Some(e.line),
            format!("memory region '{name}': page size {page_size:#x} not supported"),
        ));
    }
    let size = e
        .number("size")?
        .ok_or_else(|| err(Some(e.line), format!("memory region '{name}' needs a size")))?;
    if size == 0 || !size.is_multiple_of(page_size) {
        return Err(err(
            Some(e.line),
            format!(
                "memory region '{name}': size {size:#x} is not a non-zero multiple of its page size {page_size:#x}"
            ),
        ));
    }
    let phys_addr = e.number("phys_addr")?;
    if let Some(p) = phys_addr
        && !p.is_multiple_of(page_size)
    {
        return Err(err(
            Some(e.line),
            format!("memory region '{name}': phys_addr {p:#x} is not aligned to {page_size:#x}"),
        ));
    }
    Ok(MemoryRegion {
        name,
        size,
        page_size,
        phys_addr,
        prefill_path: e.opt("prefill_path").map(str::to_owned),
        line: e.line,
    })
}

/// A PD as written: nested `<protection_domain>`s are its children, with
/// the ids they have in it.
struct PdTree {
    pd: ProtectionDomain,
    children: Vec<(u8, PdTree)>,
}

/// A child's `id`: required, `0..=MAX_CHILD_ID`.
fn child_id(e: &Element<'_, '_>, name: &str) -> Result<u8, SystemError> {
    let id = parse_number(e.req("id")?, e.line, "id")?;
    match u8::try_from(id) {
        Ok(i) if i <= MAX_CHILD_ID => Ok(i),
        _ => Err(err(
            Some(e.line),
            format!(
                "child PD '{name}': id {id} must be < {}",
                u64::from(MAX_CHILD_ID) + 1
            ),
        )),
    }
}

fn parse_pd(
    doc: &roxmltree::Document<'_>,
    e: &Element<'_, '_>,
    is_child: bool,
) -> Result<PdTree, SystemError> {
    let common = [
        "name",
        "priority",
        "budget",
        "period",
        "passive",
        "stack_size",
    ];
    if is_child {
        let mut attrs = common.to_vec();
        attrs.push("id");
        e.allow(&attrs)?;
    } else {
        e.allow(&common)?;
    }
    let name = e.req("name")?.to_owned();
    let priority = e.number("priority")?.unwrap_or(0);
    let priority = match u8::try_from(priority) {
        Ok(p) if p <= MAX_PRIORITY => p,
        _ => {
            return Err(err(
                Some(e.line),
                format!("PD '{name}': priority {priority} must be between 0 and {MAX_PRIORITY}"),
            ));
        }
    };
    let budget = e.number("budget")?.unwrap_or(DEFAULT_BUDGET_US);
    let period = e.number("period")?.unwrap_or(budget);
    if budget > period {
        return Err(err(
            Some(e.line),
            format!(
                "PD '{name}': budget ({budget}) must be less than, or equal to, period ({period})"
            ),
        ));
    }
    let passive = e
        .opt("passive")
        .map(|s| parse_bool(s, e.line, "passive"))
        .transpose()?
        .unwrap_or(false);
    let stack_size = e.number("stack_size")?.unwrap_or(DEFAULT_STACK_SIZE);
    if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&stack_size)
        || !stack_size.is_multiple_of(PAGE_SIZE)
    {
        return Err(err(
            Some(e.line),
            format!(
                "PD '{name}': stack size {stack_size:#x} must be a multiple of {PAGE_SIZE:#x} between {MIN_STACK_SIZE:#x} and {MAX_STACK_SIZE:#x}"
            ),
        ));
    }
    let mut pd = ProtectionDomain {
        name,
        priority,
        budget,
        period,
        passive,
        stack_size,
        program_image: String::new(),
        maps: Vec::new(),
        irqs: Vec::new(),
        paddr_vars: Vec::new(),
        parent: None,
        line: e.line,
    };
    let mut children: Vec<(u8, PdTree)> = Vec::new();
    for c in e.children(doc) {
        match c.name() {
            "protection_domain" => {
                let child = parse_pd(doc, &c, true)?;
                let id = child_id(&c, &child.pd.name)?;
                if children.iter().any(|(i, _)| *i == id) {
                    return Err(err(
                        Some(c.line),
                        format!("duplicate child id {id} in protection domain '{}'", pd.name),
                    ));
                }
                children.push((id, child));
            }
            "program_image" => {
                c.allow(&["path"])?;
                if !pd.program_image.is_empty() {
                    return Err(err(
                        Some(c.line),
                        format!("PD '{}': program_image given twice", pd.name),
                    ));
                }
                pd.program_image = c.req("path")?.to_owned();
            }
            "map" => {
                c.allow(&[
                    "mr",
                    "vaddr",
                    "perms",
                    "cached",
                    "setvar_vaddr",
                    "setvar_size",
                ])?;
                let perms = c.opt("perms").unwrap_or("rw").to_owned();
                if perms.is_empty() || !perms.chars().all(|p| "rwx".contains(p)) || perms == "w" {
                    return Err(err(
                        Some(c.line),
                        format!(
                            "map perms '{perms}' must be a combination of r, w, x and not write-only"
                        ),
                    ));
                }
                pd.maps.push(Map {
                    mr: c.req("mr")?.to_owned(),
                    vaddr: parse_number(c.req("vaddr")?, c.line, "vaddr")?,
                    perms,
                    cached: c
                        .opt("cached")
                        .map(|s| parse_bool(s, c.line, "cached"))
                        .transpose()?
                        .unwrap_or(true),
                    setvar_vaddr: c.opt("setvar_vaddr").map(str::to_owned),
                    setvar_size: c.opt("setvar_size").map(str::to_owned),
                    line: c.line,
                });
            }
            "irq" => {
                c.allow(&["irq", "id", "trigger"])?;
                let trigger = c.opt("trigger").unwrap_or("level").to_owned();
                if trigger != "level" && trigger != "edge" {
                    return Err(err(
                        Some(c.line),
                        format!("irq trigger '{trigger}' must be 'level' or 'edge'"),
                    ));
                }
                pd.irqs.push(Irq {
                    irq: parse_number(c.req("irq")?, c.line, "irq")?,
                    id: c.channel_id()?,
                    trigger,
                });
            }
            "setvar" => {
                c.allow(&["symbol", "region_paddr"])?;
                pd.paddr_vars.push(PaddrVar {
                    symbol: c.req("symbol")?.to_owned(),
                    region: c.req("region_paddr")?.to_owned(),
                });
            }
            other => {
                return Err(err(
                    Some(c.line),
                    format!("PD '{}': element <{other}> is not supported here", pd.name),
                ));
            }
        }
    }
    if pd.program_image.is_empty() {
        return Err(err(
            Some(e.line),
            format!("PD '{}' has no program_image", pd.name),
        ));
    }
    Ok(PdTree { pd, children })
}

/// Appends `tree` to `pds` as Microkit's tool lists it: each PD, then its
/// children (and theirs) right after it, each knowing its parent.
fn flatten(tree: PdTree, parent: Option<(usize, u8)>, pds: &mut Vec<ProtectionDomain>) {
    let PdTree { mut pd, children } = tree;
    pd.parent = parent;
    let me = pds.len();
    pds.push(pd);
    for (id, child) in children {
        flatten(child, Some((me, id)), pds);
    }
}

fn parse_channel(
    doc: &roxmltree::Document<'_>,
    e: &Element<'_, '_>,
    pds: &[ProtectionDomain],
) -> Result<ChannelDesc, SystemError> {
    e.allow(&[])?;
    let mut ends = Vec::new();
    for c in e.children(doc) {
        if c.name() != "end" {
            return Err(err(
                Some(c.line),
                format!("<channel> may only hold <end>, not <{}>", c.name()),
            ));
        }
        c.allow(&["pd", "id", "pp", "notify"])?;
        let name = c.req("pd")?;
        let pd = pds.iter().position(|p| p.name == name).ok_or_else(|| {
            err(
                Some(c.line),
                format!("channel end names unknown PD '{name}'"),
            )
        })?;
        ends.push(End {
            pd,
            id: c.channel_id()?,
            notify: c
                .opt("notify")
                .map(|s| parse_bool(s, c.line, "notify"))
                .transpose()?
                .unwrap_or(true),
            pp: c
                .opt("pp")
                .map(|s| parse_bool(s, c.line, "pp"))
                .transpose()?
                .unwrap_or(false),
        });
    }
    let [a, b] = ends[..] else {
        return Err(err(
            Some(e.line),
            "a channel has exactly two <end> elements",
        ));
    };
    if a.pp && b.pp {
        return Err(err(Some(e.line), "cannot ppc bidirectionally"));
    }
    Ok(ChannelDesc {
        ends: [a, b],
        line: e.line,
    })
}

impl System {
    /// Parses and checks `xml`.
    pub fn parse(xml: &str) -> Result<System, SystemError> {
        let doc = roxmltree::Document::parse(xml)
            .map_err(|e| err(Some(e.pos().row), format!("not XML: {e}")))?;
        let root = Element::new(&doc, doc.root_element());
        if root.name() != "system" {
            return Err(err(
                Some(root.line),
                format!("root element is <{}>, not <system>", root.name()),
            ));
        }
        let mut system = System {
            pds: Vec::new(),
            regions: Vec::new(),
            channels: Vec::new(),
        };
        let children = root.children(&doc);
        // PDs first: channels may name PDs declared after them.
        for c in &children {
            match c.name() {
                "protection_domain" => flatten(parse_pd(&doc, c, false)?, None, &mut system.pds),
                "memory_region" => system.regions.push(parse_region(c)?),
                "channel" => {}
                other => {
                    return Err(err(
                        Some(c.line),
                        format!("element <{other}> is not supported in <system>"),
                    ));
                }
            }
        }
        // Names first: a channel naming a duplicated PD would otherwise
        // report the symptom, not the cause.
        system.check_names()?;
        for c in children.iter().filter(|c| c.name() == "channel") {
            let ch = parse_channel(&doc, c, &system.pds)?;
            system.channels.push(ch);
        }
        system.check()?;
        Ok(system)
    }

    /// The PD named `name`.
    pub fn pd(&self, name: &str) -> Option<&ProtectionDomain> {
        self.pds.iter().find(|p| p.name == name)
    }

    /// The region named `name`.
    pub fn region(&self, name: &str) -> Option<&MemoryRegion> {
        self.regions.iter().find(|r| r.name == name)
    }

    fn check_names(&self) -> Result<(), SystemError> {
        if self.pds.is_empty() {
            return Err(err(None, "at least one protection domain must be defined"));
        }
        let mut names = BTreeSet::new();
        for pd in &self.pds {
            if pd.name == MONITOR_NAME {
                return Err(err(
                    Some(pd.line),
                    "the PD name 'monitor' is reserved for the Microkit monitor",
                ));
            }
            if !names.insert(pd.name.as_str()) {
                return Err(err(
                    Some(pd.line),
                    format!("duplicate protection domain name '{}'", pd.name),
                ));
            }
        }
        let mut names = BTreeSet::new();
        for mr in &self.regions {
            if !names.insert(mr.name.as_str()) {
                return Err(err(
                    Some(mr.line),
                    format!("duplicate memory region name '{}'", mr.name),
                ));
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), SystemError> {
        self.check_irqs_and_ids()?;
        self.check_ppcs()?;
        self.check_children()?;
        for pd in &self.pds {
            self.check_maps(pd)?;
            self.check_setvars(pd)?;
        }
        Ok(())
    }

    /// The children of `parent` (its index), with their ids.
    pub fn children(&self, parent: usize) -> impl Iterator<Item = (usize, u8)> + '_ {
        self.pds
            .iter()
            .enumerate()
            .filter_map(move |(i, pd)| match pd.parent {
                Some((p, id)) if p == parent => Some((i, id)),
                _ => None,
            })
    }

    /// Cohesix's rule for children, beyond Microkit's ids: a child runs
    /// below its parent, so that a parent that stops or restarts it (or
    /// handles its fault) is never preempted by it halfway.
    fn check_children(&self) -> Result<(), SystemError> {
        for pd in &self.pds {
            if let Some((parent, id)) = pd.parent {
                let p = &self.pds[parent];
                if pd.priority >= p.priority {
                    return Err(err(
                        Some(pd.line),
                        format!(
                            "child PD '{}' (id {id}, priority {}) must have a lower priority than its parent '{}' ({})",
                            pd.name, pd.priority, p.name, p.priority
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_irqs_and_ids(&self) -> Result<(), SystemError> {
        let mut irqs = BTreeSet::new();
        let mut ids: Vec<BTreeSet<u8>> = vec![BTreeSet::new(); self.pds.len()];
        for (i, pd) in self.pds.iter().enumerate() {
            for irq in &pd.irqs {
                if !irqs.insert(irq.irq) {
                    return Err(err(
                        Some(pd.line),
                        format!("duplicate irq {} in PD '{}'", irq.irq, pd.name),
                    ));
                }
                if !ids[i].insert(irq.id) {
                    return Err(err(
                        Some(pd.line),
                        format!("duplicate channel id {} in PD '{}'", irq.id, pd.name),
                    ));
                }
            }
        }
        for ch in &self.channels {
            for end in ch.ends {
                if !ids[end.pd].insert(end.id) {
                    return Err(err(
                        Some(ch.line),
                        format!(
                            "duplicate channel id {} in PD '{}'",
                            end.id, self.pds[end.pd].name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Caller → callee edges of protected calls, with the channel's line.
    fn ppc_edges(&self) -> Vec<(usize, usize, u32)> {
        let mut edges = Vec::new();
        for ch in &self.channels {
            let [a, b] = ch.ends;
            if a.pp {
                edges.push((a.pd, b.pd, ch.line));
            }
            if b.pp {
                edges.push((b.pd, a.pd, ch.line));
            }
        }
        edges
    }

    fn check_ppcs(&self) -> Result<(), SystemError> {
        let edges = self.ppc_edges();
        let mut graph: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (from, to, _) in &edges {
            graph.entry(*from).or_default().push(*to);
        }
        // A cycle first, so that it is named as one (it also breaks the
        // priority rule, which alone would blame a single edge).
        if let Some(cycle) = find_cycle(&graph, self.pds.len()) {
            let path: Vec<&str> = cycle.iter().map(|i| self.pds[*i].name.as_str()).collect();
            return Err(err(
                None,
                format!("protected calls form a cycle: {}", path.join(" -> ")),
            ));
        }
        for (from, to, line) in edges {
            let (a, b) = (&self.pds[from], &self.pds[to]);
            if a.priority >= b.priority {
                return Err(err(
                    Some(line),
                    format!(
                        "PPCs must be to protection domains of strictly higher priorities; channel with PPC exists from pd {} (priority: {}) to pd {} (priority: {})",
                        a.name, a.priority, b.name, b.priority
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_maps(&self, pd: &ProtectionDomain) -> Result<(), SystemError> {
        let limit = pd.map_limit();
        let mut placed: Vec<(&str, u64, u64)> = Vec::new();
        for map in &pd.maps {
            let mr = self.region(&map.mr).ok_or_else(|| {
                err(
                    Some(map.line),
                    format!("PD '{}' maps unknown memory region '{}'", pd.name, map.mr),
                )
            })?;
            if !map.vaddr.is_multiple_of(mr.page_size) {
                return Err(err(
                    Some(map.line),
                    format!(
                        "map of '{}' in PD '{}': vaddr {:#x} is not aligned to the region's page size {:#x}",
                        map.mr, pd.name, map.vaddr, mr.page_size
                    ),
                ));
            }
            let end = map.vaddr.checked_add(mr.size).filter(|e| *e <= limit);
            let Some(end) = end else {
                return Err(err(
                    Some(map.line),
                    format!(
                        "map of '{}' in PD '{}' at {:#x} exceeds the address space below {limit:#x}",
                        map.mr, pd.name, map.vaddr
                    ),
                ));
            };
            for (name, start, stop) in &placed {
                if map.vaddr < *stop && end > *start {
                    return Err(err(
                        Some(map.line),
                        format!(
                            "map of '{}' [{:#x}..{end:#x}) overlaps map of '{name}' [{start:#x}..{stop:#x}) in PD '{}'",
                            map.mr, map.vaddr, pd.name
                        ),
                    ));
                }
            }
            placed.push((&map.mr, map.vaddr, end));
        }
        Ok(())
    }

    fn check_setvars(&self, pd: &ProtectionDomain) -> Result<(), SystemError> {
        let mut seen = BTreeSet::new();
        for s in pd.setvar_symbols() {
            if !seen.insert(s) {
                return Err(err(
                    Some(pd.line),
                    format!("PD '{}': setvar symbol '{s}' set twice", pd.name),
                ));
            }
        }
        for v in &pd.paddr_vars {
            if self.region(&v.region).is_none() {
                return Err(err(
                    Some(pd.line),
                    format!(
                        "PD '{}': setvar '{}' names unknown region '{}'",
                        pd.name, v.symbol, v.region
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A cycle in `graph` (node → callees), as the nodes along it with the
/// first repeated at the end.
fn find_cycle(graph: &BTreeMap<usize, Vec<usize>>, nodes: usize) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        n: usize,
        graph: &BTreeMap<usize, Vec<usize>>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[n] = Mark::OnPath;
        path.push(n);
        for &m in graph.get(&n).into_iter().flatten() {
            match marks[m] {
                Mark::OnPath => {
                    let start = path.iter().position(|p| *p == m).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(m);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(m, graph, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[n] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; nodes];
    for n in 0..nodes {
        if marks[n] == Mark::New
            && let Some(c) = visit(n, graph, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}
