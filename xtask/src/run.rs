//! `MICROKIT_SDK=… cargo xtask run [--board NAME]`.

use crate::bridge::Bridge;
use crate::check::check;
use crate::{Failure, out_dir, workspace};
use cohesix_abi::microkit::{
    BASE_ENDPOINT_CAP, BASE_IRQ_CAP, BASE_OUTPUT_NOTIFICATION_CAP, BASE_TCB_CAP, IPC_BUFFER,
    IRQ_ACK_LABEL, IRQ_ACK_LABEL_NO_HW_DEBUG, MAX_CHANNELS, MONITOR_EP, PAGE_SIZE, PD_NAME_LENGTH,
    TCB_SUSPEND_LABEL, TCB_WRITE_REGISTERS_LABEL, fault_label,
};
use cohesix_pds::wiring::{PASS_MARKER, WORKER_IDS};
use cohesix_pds::{
    BOOT_EPOCH, BRIDGE_KEY_AT, EPOCH_AT, FaultKnob, SEED_LEN, boot_hive, encode_boot_epoch,
    encode_bridge_key,
};
use cohesix_sim::Board;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CONFIG: &str = "debug";
const DEFAULT_TIMEOUT_S: u64 = 120;

/// How a board's image boots under QEMU (the Microkit manual's command for
/// the board) and which host links it has.
struct Machine {
    /// `-machine`, `-cpu`, `-m`.
    args: &'static [&'static str],
    /// Where the loader places the image (the board's loader link address).
    load_addr: &'static str,
    /// A network PD (9P over TCP, the GPU bridge link).
    net: bool,
}

fn machine(board: Board) -> Machine {
    match board {
        Board::QemuVirt => Machine {
            args: &[
                "-machine",
                "virt,virtualization=on",
                "-cpu",
                "cortex-a53",
                "-m",
                "size=2G",
            ],
            load_addr: "0x70000000",
            net: true,
        },
        Board::Zcu102 => Machine {
            args: &["-machine", "xlnx-zcu102,virtualization=on", "-m", "size=4G"],
            load_addr: "0x40000000",
            net: false,
        },
    }
}

const NEEDS: &str = "`cargo xtask run` needs:
  - MICROKIT_SDK set to a Microkit 2.3.0 SDK built from seL4 sources with the
    board (qemu_virt_aarch64, or zcu102 with --board zcu102) and its debug
    config (bin/microkit and board/<board>/debug/ inside it); QEMU's
    xlnx-zcu102 needs the SDK's kernel to enable both GIC interrupt groups
    (README: \"Building the Microkit image\");
  - qemu-system-aarch64 on PATH (Debian: apt-get install qemu-system-arm);
  - the rustup target aarch64-unknown-none.
Without an SDK, `cargo xtask check` validates the system file and builds and
checks every PD image, and `cargo test -p cohesix-sim` boots the hive in the
simulator.";

/// What `cargo xtask run` was asked for.
struct Options {
    board: Board,
    timeout: Duration,
    /// Keep QEMU running after the checks, for interactive `cohsh`.
    keep: bool,
    /// Also mount the system with the Linux kernel's 9P client.
    linux: bool,
    /// A GPU bridge already running (`HOST:PORT`) instead of a mock one
    /// started here, and the file of the key it verifies tickets with.
    gpu_bridge: Option<(String, PathBuf)>,
}

fn options(args: &[String]) -> Result<Options, Failure> {
    let mut opts = Options {
        board: Board::QemuVirt,
        timeout: Duration::from_secs(DEFAULT_TIMEOUT_S),
        keep: false,
        linux: false,
        gpu_bridge: None,
    };
    let mut bridge_addr = None;
    let mut bridge_key = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--keep" => opts.keep = true,
            "--board" => {
                let b = it.next().ok_or_else(|| Failure::missing(crate::USAGE))?;
                opts.board = crate::check::board(b)?;
            }
            "--linux" => opts.linux = true,
            "--gpu-bridge" => {
                let a = it.next().ok_or_else(|| Failure::missing(crate::USAGE))?;
                bridge_addr = Some(a.clone());
            }
            "--gpu-bridge-key" => {
                let k = it.next().ok_or_else(|| Failure::missing(crate::USAGE))?;
                bridge_key = Some(PathBuf::from(k));
            }
            "--timeout" => {
                let n = it.next().ok_or_else(|| Failure::missing(crate::USAGE))?;
                let s = n.parse().map_err(|_| {
                    Failure::missing(format!("--timeout {n}: not a number of seconds"))
                })?;
                opts.timeout = Duration::from_secs(s);
            }
            _ => return Err(Failure::missing(crate::USAGE)),
        }
    }
    opts.gpu_bridge = match (bridge_addr, bridge_key) {
        (Some(a), Some(k)) => Some((a, k)),
        (None, None) => None,
        _ => {
            return Err(Failure::missing(
                "--gpu-bridge HOST:PORT and --gpu-bridge-key FILE go together (the key the bridge \
                 verifies tickets with: its --ticket-key-file)",
            ));
        }
    };
    Ok(opts)
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let opts = options(args)?;
    let Some(sdk) = std::env::var_os("MICROKIT_SDK").map(PathBuf::from) else {
        return Err(Failure::missing(format!(
            "MICROKIT_SDK is not set.\n{NEEDS}"
        )));
    };
    let board = opts.board;
    let config_dir = sdk.join("board").join(board.name()).join(CONFIG);
    let tool = sdk.join("bin").join("microkit");
    for p in [&tool, &config_dir] {
        if !p.exists() {
            return Err(Failure::missing(format!(
                "{} does not exist.\n{NEEDS}",
                p.display()
            )));
        }
    }
    let qemu = find_on_path("qemu-system-aarch64")
        .ok_or_else(|| Failure::missing(format!("qemu-system-aarch64 is not on PATH.\n{NEEDS}")))?;
    check_abi(&config_dir, board)?;
    if opts.linux && !machine(board).net {
        return Err(Failure::missing(format!(
            "--linux mounts over TCP; the {board} image has no network PD"
        )));
    }
    let (_, _) = check(board, false)?;
    let cohsh = build_cohsh()?;
    let stage = out_dir().join(board.name());
    let bridge = match &opts.gpu_bridge {
        Some((addr, key)) => Bridge::external(addr, key)?,
        None => Bridge::mock(&stage)?,
    };
    let (seed, epoch) = write_seed(&stage.join(cohesix_sim::hive::SEED_FILE), &bridge.key)?;
    let ticket_file = stage.join("queen.ticket");
    write_queen_ticket(&seed, epoch, &ticket_file)?;
    let image = stage.join("loader.img");
    let status = Command::new(&tool)
        .arg(workspace().join(board.system_path()))
        .args(["--search-path"])
        .arg(&stage)
        .args(["--board", board.name(), "--config", CONFIG, "-o"])
        .arg(&image)
        .arg("-r")
        .arg(stage.join("report.txt"))
        .status()
        .map_err(|e| Failure::new(format!("running {}: {e}", tool.display())))?;
    if !status.success() {
        return Err(Failure::new(format!("microkit failed ({status})")));
    }
    println!("image: {}", image.display());
    let host = Host {
        cohsh,
        socket: stage.join("9p.sock"),
        tcp: free_loopback_port()?,
        net: machine(board).net,
        ticket_file,
        stage,
    };
    let mut bridge = bridge;
    if host.net {
        bridge.start()?;
    }
    boot(&qemu, &image, &host, &opts, &mut bridge)
}

/// The host's view of the running image: `cohsh`, the device PD's socket
/// and the Queen's ticket.
pub(crate) struct Host {
    cohsh: PathBuf,
    socket: PathBuf,
    /// The loopback address QEMU forwards to the network PD's port 564.
    tcp: SocketAddr,
    /// Whether the image has the network PD (else the console is the one
    /// host link).
    net: bool,
    ticket_file: PathBuf,
    /// Where the run's files go.
    pub(crate) stage: PathBuf,
}

impl Host {
    /// The link the checks use: TCP where the image has it (several
    /// connections at once), else the console.
    pub(crate) fn via(&self) -> Via {
        if self.net { Via::Tcp } else { Via::Console }
    }

    /// Every host link the image has.
    fn vias(&self) -> Vec<Via> {
        if self.net {
            vec![Via::Console, Via::Tcp]
        } else {
            vec![Via::Console]
        }
    }
}

/// How `cohsh` reaches the system.
#[derive(Clone, Copy)]
pub(crate) enum Via {
    /// The device PD's virtio console (a Unix socket).
    Console,
    /// The network PD's TCP port, forwarded from loopback.
    Tcp,
}

fn free_loopback_port() -> Result<SocketAddr, Failure> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Failure::new(format!("no free loopback port: {e}")))?;
    l.local_addr()
        .map_err(|e| Failure::new(format!("no free loopback port: {e}")))
}

/// Builds the `cohsh` binary the checks run; its path.
fn build_cohsh() -> Result<PathBuf, Failure> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "-q", "-p", "cohsh", "--bin", "cohsh"])
        .status()
        .map_err(|e| Failure::new(format!("building cohsh: {e}")))?;
    if !status.success() {
        return Err(Failure::new(format!("building cohsh failed ({status})")));
    }
    let target = crate::target_dir();
    Ok(target.join("debug").join("cohsh"))
}

/// The Queen's ticket for the image built from `seed`, written 0600.
///
/// The image builder holds the seed and so the hive's key: it builds the
/// hive NineDoor builds at boot (`cohesix_pds::boot_hive`, at the boot
/// epoch) and takes its Queen's ticket, the same ticket id NineDoor mints
/// first. Nothing secret crosses the console.
fn write_queen_ticket(seed: &[u8; SEED_LEN], epoch: u64, path: &Path) -> Result<(), Failure> {
    let hive = boot_hive(seed, epoch).map_err(|e| Failure::new(e.trim().to_owned()))?;
    write_private(path, format!("{}\n", hive.queen_ticket()).as_bytes())
}

/// Writes `bytes` to a fresh file at `path`, mode 0600 (whatever was there
/// goes first).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Failure::new(format!("{}: {e}", path.display())))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn read_json(path: &Path) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::missing(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Failure::new(format!("{}: {e}", path.display())))
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let s = v.as_str()?;
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        }
    })
}

/// Compares the runtime's constants with the SDK's headers and JSON files.
fn check_abi(config_dir: &Path, board: Board) -> Result<(), Failure> {
    let header = config_dir.join("include").join("microkit.h");
    let text = std::fs::read_to_string(&header)
        .map_err(|e| Failure::missing(format!("{}: {e}", header.display())))?;
    let defines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("#define "))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    let mut wrong = Vec::new();
    let mut expect = |what: &str, found: Option<u64>, ours: u64| {
        if found != Some(ours) {
            wrong.push(format!(
                "{what}: SDK has {found:?}, the runtime uses {ours}"
            ));
        }
    };
    let define = |name: &str| {
        defines
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    expect("MONITOR_EP", define("MONITOR_EP"), MONITOR_EP);
    expect(
        "BASE_OUTPUT_NOTIFICATION_CAP",
        define("BASE_OUTPUT_NOTIFICATION_CAP"),
        BASE_OUTPUT_NOTIFICATION_CAP,
    );
    expect(
        "BASE_ENDPOINT_CAP",
        define("BASE_ENDPOINT_CAP"),
        BASE_ENDPOINT_CAP,
    );
    expect("BASE_IRQ_CAP", define("BASE_IRQ_CAP"), BASE_IRQ_CAP);
    expect("BASE_TCB_CAP", define("BASE_TCB_CAP"), BASE_TCB_CAP);
    expect(
        "MICROKIT_MAX_CHANNELS",
        define("MICROKIT_MAX_CHANNELS"),
        u64::from(MAX_CHANNELS),
    );
    expect(
        "MICROKIT_PD_NAME_LENGTH",
        define("MICROKIT_PD_NAME_LENGTH"),
        PD_NAME_LENGTH as u64,
    );
    let labels = read_json(&config_dir.join("invocations_all.json"))?;
    let irq_ack = if board.hardware_debug_api() {
        IRQ_ACK_LABEL
    } else {
        IRQ_ACK_LABEL_NO_HW_DEBUG
    };
    for (name, ours) in [
        ("IRQAckIRQ", irq_ack),
        ("TCBWriteRegisters", TCB_WRITE_REGISTERS_LABEL),
        ("TCBSuspend", TCB_SUSPEND_LABEL),
    ] {
        expect(
            &format!("{name} label"),
            labels.get(name).and_then(as_u64),
            ours,
        );
    }
    // The fault labels a parent decodes, from libsel4's generated enum.
    let types = config_dir
        .join("include")
        .join("sel4")
        .join("sel4_arch")
        .join("types_gen.h");
    let types = std::fs::read_to_string(&types)
        .map_err(|e| Failure::missing(format!("{}: {e}", types.display())))?;
    let enum_value = |name: &str| {
        types.lines().find_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_end_matches(',').parse::<u64>().ok())?
        })
    };
    if board.hardware_debug_api() {
        expect(
            "seL4_Fault_DebugException",
            enum_value("seL4_Fault_DebugException"),
            fault_label::DEBUG_EXCEPTION,
        );
    } else {
        // Absent without the hardware debug API, which is what moves
        // IRQAckIRQ down to the label used here.
        expect(
            "seL4_Fault_DebugException (present: the kernel has the hardware debug API)",
            enum_value("seL4_Fault_DebugException").map_or(Some(0), |_| None),
            0,
        );
    }
    for (name, ours) in [
        ("seL4_Fault_CapFault", fault_label::CAP),
        ("seL4_Fault_UnknownSyscall", fault_label::UNKNOWN_SYSCALL),
        ("seL4_Fault_UserException", fault_label::USER_EXCEPTION),
        ("seL4_Fault_Timeout", fault_label::TIMEOUT),
        ("seL4_Fault_VMFault", fault_label::VM),
    ] {
        expect(name, enum_value(name), ours);
    }
    let space = read_json(&config_dir.join("address_space_constants.json"))?;
    let top = space.get("vspace_user_top").and_then(as_u64);
    expect(
        "IPC buffer (vspace_user_top page)",
        top.map(|t| t & !(PAGE_SIZE - 1)),
        IPC_BUFFER,
    );
    let kernel = read_json(
        &config_dir
            .join("include")
            .join("kernel")
            .join("gen_config.json"),
    )?;
    let mcs = kernel
        .get("KERNEL_MCS")
        .map(|v| v.as_bool() == Some(true) || v == "1" || v == "true");
    if mcs != Some(true) {
        wrong.push(String::from(
            "KERNEL_MCS: the runtime speaks the MCS system calls only",
        ));
    }
    let printing = kernel
        .get("PRINTING")
        .map(|v| v.as_bool() == Some(true) || v == "1" || v == "true");
    if printing != Some(true) {
        wrong.push(String::from(
            "PRINTING: the pass marker needs seL4_DebugPutChar (debug config)",
        ));
    }
    if wrong.is_empty() {
        println!("SDK ABI: ok ({})", config_dir.display());
        Ok(())
    } else {
        Err(Failure::new(format!(
            "runtime and SDK disagree:\n  {}",
            wrong.join("\n  ")
        )))
    }
}

/// Bytes from the OS RNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), Failure> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| Failure::new(format!("/dev/urandom: {e}")))
}

/// The worker the image's test knob makes fault (see [`FaultKnob`]): the
/// host session spawns it to watch NineDoor catch and restart it.
pub const FAULTY_WORKER: &str = "wfault";
/// Its heartbeats after its boot script before each fault.
const FAULTY_AFTER_BEATS: u32 = 1;

/// The seed page: 64 bytes from the OS RNG (the hive key and ticket-id
/// seed of this image), then the test knob that makes [`FAULTY_WORKER`]
/// fault. An image is only ever built here to be checked, so the knob is
/// always on; a worker of any other id never faults.
fn write_seed(path: &Path, bridge_key: &[u8; 32]) -> Result<([u8; SEED_LEN], u64), Failure> {
    let mut seed = [0u8; SEED_LEN];
    random(&mut seed)?;
    let mut page = seed.to_vec();
    page.extend(
        FaultKnob {
            worker: FAULTY_WORKER.to_owned(),
            after_beats: FAULTY_AFTER_BEATS,
        }
        .encode(),
    );
    page.resize(BRIDGE_KEY_AT, 0);
    page.extend(encode_bridge_key(bridge_key));
    // The image's clock starts at the time it is built: tickets it mints
    // mean the same to the bridge host's clock.
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(BOOT_EPOCH, |d| d.as_secs());
    page.resize(EPOCH_AT, 0);
    page.extend(encode_boot_epoch(epoch));
    std::fs::write(path, page).map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    Ok((seed, epoch))
}

fn boot(
    qemu: &Path,
    image: &Path,
    host: &Host,
    opts: &Options,
    bridge: &mut Bridge,
) -> Result<(), Failure> {
    let socket = &host.socket;
    let _ = std::fs::remove_file(socket);
    // QEMU runs this binary as the relay of each bridge connection.
    let relay =
        std::env::current_exe().map_err(|e| Failure::new(format!("the xtask binary: {e}")))?;
    let m = machine(opts.board);
    let mut qemu_cmd = Command::new(qemu);
    qemu_cmd
        .args(m.args)
        .args(["-nographic", "-serial", "mon:stdio"])
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={},cpu-num=0",
            image.display(),
            m.load_addr
        ))
        .arg("-chardev")
        .arg(format!(
            "socket,id=c9p,path={},server=on,wait=off",
            socket.display()
        ));
    match opts.board {
        // The second PS UART (the first is the kernel's console) is the
        // host's 9P stream: boards/zcu102.system.
        Board::Zcu102 => {
            qemu_cmd.args(["-serial", "chardev:c9p"]);
        }
        Board::QemuVirt => {
            qemu_cmd
                // The console on virtio-mmio transport 31, the network card
                // on 23: a page each (boards/qemu_virt_aarch64.system).
                .args(["-global", "virtio-mmio.force-legacy=false"])
                .args(["-device", "virtio-serial-device,bus=virtio-mmio-bus.31"])
                .args(["-device", "virtconsole,chardev=c9p"])
                // The network PD's card, with the host's loopback port
                // forwarded to its 9P port.
                .arg("-netdev")
                .arg(format!(
                    "user,id=n9p,restrict=on,hostfwd=tcp:{}-{}:{},guestfwd=tcp:{}:{}-cmd:{} relay {}",
                    host.tcp,
                    std::net::Ipv4Addr::from(cohesix_pds::wiring::net::ADDR),
                    cohesix_pds::wiring::net::PORT,
                    std::net::Ipv4Addr::from(cohesix_pds::wiring::net::BRIDGE_ADDR),
                    cohesix_pds::wiring::net::BRIDGE_PORT,
                    relay.display(),
                    bridge.addr
                ))
                .args([
                    "-device",
                    "virtio-net-device,netdev=n9p,bus=virtio-mmio-bus.23",
                ]);
        }
    }
    let mut child = qemu_cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(format!("starting {}: {e}", qemu.display())))?;
    if host.net {
        println!(
            "booting; 9P on {} (the device PD's console) and on {} (the network PD)",
            socket.display(),
            host.tcp
        );
    } else {
        println!(
            "booting; 9P on {} (the device PD's serial line, the board's second UART)",
            socket.display()
        );
    }
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    // The console goes on printing while cohsh talks to the system.
    let passed = wait_for_marker(&rx, opts.timeout);
    let console = Console::default();
    let seen = console.clone();
    let printer = std::thread::spawn(move || {
        for line in rx {
            println!("{line}");
            seen.push(line);
        }
    });
    let result = if passed {
        println!("xtask run: pass marker seen; the host's cohsh session follows");
        host_session(host)
            .and_then(|()| lifecycle_session(host, &console))
            .and_then(|()| {
                if host.net {
                    crate::bridge::gpu_session(host, &console, bridge)
                } else {
                    println!(
                        "xtask run: the {} image has no network PD, so no GPU bridge link: no GPU session",
                        opts.board
                    );
                    Ok(())
                }
            })
            .and_then(|()| {
                if opts.linux {
                    linux_session(host)
                } else {
                    Ok(())
                }
            })
    } else {
        Err(Failure::new(format!(
            "no pass marker ({PASS_MARKER:?}) within {}s",
            opts.timeout.as_secs()
        )))
    };
    if result.is_ok() && opts.keep {
        println!(
            "xtask run: the system keeps running (Ctrl-C stops QEMU); as the Queen:\n  \
             {} --unix {} --ticket-file {} ls /",
            host.cohsh.display(),
            socket.display(),
            host.ticket_file.display(),
        );
        if host.net {
            println!(
                "  {} --addr {} --ticket-file {} ls /",
                host.cohsh.display(),
                host.tcp,
                host.ticket_file.display()
            );
        }
        let _ = child.wait();
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = printer.join();
    if result.is_ok() {
        println!("xtask run: pass");
    }
    result
}

/// The serial console's lines since the pass marker, as the checks see
/// them (they are printed as they come, too).
#[derive(Clone, Default)]
pub(crate) struct Console(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Console {
    fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    /// How many lines have come so far.
    pub(crate) fn mark(&self) -> usize {
        self.0.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// The lines after `mark` that contain `text`.
    pub(crate) fn since(&self, mark: usize, text: &str) -> Vec<String> {
        self.0
            .lock()
            .map(|l| {
                l.iter()
                    .skip(mark)
                    .filter(|line| line.contains(text))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn wait_for_marker(rx: &mpsc::Receiver<String>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                println!("{line}");
                if line.contains(PASS_MARKER) {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// What the Linux guest does with the mount.
const LINUX_SCRIPT: &str = "echo '@@ ls'; ls /mnt
echo '@@ boot'; head -n 4 /mnt/proc/boot
echo '@@ workers'; ls /mnt/worker
echo '@@ telemetry'; tail -n 2 /mnt/worker/w2/telemetry
echo '@@ gpu'; cat /mnt/gpu/0/info
";

/// The Linux kernel's v9fs client (Debian's kernel under QEMU, through
/// `scripts/linux-client/run.sh`) mounts the running system over TCP as the
/// Queen and reads the hive.
fn linux_session(host: &Host) -> Result<(), Failure> {
    let ticket = std::fs::read_to_string(&host.ticket_file)
        .map_err(|e| Failure::new(format!("{}: {e}", host.ticket_file.display())))?;
    let ticket = ticket.trim();
    println!(
        "$ scripts/linux-client/run.sh --port {} --opts 'aname=<queen ticket>,uname=queen,msize={}'",
        host.tcp.port(),
        cohesix_pds::wiring::MSIZE
    );
    let mut child = Command::new(workspace().join("scripts/linux-client/run.sh"))
        .arg("--port")
        .arg(host.tcp.port().to_string())
        .arg("--opts")
        .arg(format!(
            "aname={ticket},uname=queen,msize={}",
            cohesix_pds::wiring::MSIZE
        ))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure::new(format!("scripts/linux-client/run.sh: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(LINUX_SCRIPT.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Failure::new(format!("scripts/linux-client/run.sh: {e}")))?;
    // Never print the ticket (it is in the mount line).
    let text = String::from_utf8_lossy(&out.stdout).replace(ticket, "<queen ticket>");
    print!("{text}");
    match out.status.code() {
        Some(0)
            if text.contains("GUEST END rc=0")
                && text.contains("heartbeat w2")
                && text.contains("\"id\":\"0\"") =>
        {
            Ok(())
        }
        Some(77) => Err(Failure::missing(
            "the Linux client harness cannot run here (no QEMU or kernel); see scripts/linux-client/README.md",
        )),
        _ => Err(Failure::new(format!(
            "the Linux client did not read the hive ({})",
            out.status
        ))),
    }
}

/// How long the host waits for the timer's ticks to show in telemetry.
const TICKS_WAIT: Duration = Duration::from_secs(3);

/// The highest `seq=N` of the heartbeat lines in `text`.
fn last_seq(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with("heartbeat "))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("seq=")))
        .filter_map(|n| n.parse().ok())
        .max()
}

/// One `cohsh` command against the running system; its standard output.
/// The `cohsh` command line for `args` over `via`, as the Queen; what it
/// looks like, for the log.
fn cohsh_command(host: &Host, via: Via, args: &[&str]) -> (Command, String) {
    cohsh_command_as(host, via, &host.ticket_file, args)
}

/// [`cohsh_command`] with the ticket in `ticket_file`.
pub(crate) fn cohsh_command_as(
    host: &Host,
    via: Via,
    ticket_file: &Path,
    args: &[&str],
) -> (Command, String) {
    let mut cmd = Command::new(&host.cohsh);
    let shown = match via {
        Via::Console => {
            cmd.arg("--unix").arg(&host.socket);
            format!("cohsh --unix {} {}", host.socket.display(), args.join(" "))
        }
        Via::Tcp => {
            cmd.arg("--addr").arg(host.tcp.to_string());
            format!("cohsh --addr {} {}", host.tcp, args.join(" "))
        }
    };
    cmd.arg("--ticket-file")
        .arg(ticket_file)
        .args(args)
        .stdin(Stdio::null());
    (cmd, shown)
}

pub(crate) fn cohsh(host: &Host, via: Via, args: &[&str]) -> Result<String, Failure> {
    let (ok, stdout, _) = cohsh_status(host, via, args, None)?;
    if ok {
        Ok(stdout)
    } else {
        Err(Failure::new(format!("cohsh {} failed", args.join(" "))))
    }
}

/// Runs `cohsh` and returns whether it succeeded, its standard output and
/// its standard error; both are printed, standard output as `hide` says
/// in its place if given (a spawn prints the new worker's ticket there).
pub(crate) fn cohsh_status(
    host: &Host,
    via: Via,
    args: &[&str],
    hide: Option<&str>,
) -> Result<(bool, String, String), Failure> {
    cohsh_status_as(host, via, &host.ticket_file, args, hide)
}

/// [`cohsh_status`] with the ticket in `ticket_file`.
pub(crate) fn cohsh_status_as(
    host: &Host,
    via: Via,
    ticket_file: &Path,
    args: &[&str],
    hide: Option<&str>,
) -> Result<(bool, String, String), Failure> {
    let (mut cmd, shown) = cohsh_command_as(host, via, ticket_file, args);
    println!("$ {shown}");
    let out = cmd
        .output()
        .map_err(|e| Failure::new(format!("running {}: {e}", host.cohsh.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match hide {
        None => print!("{stdout}"),
        Some(shown) if !stdout.is_empty() => println!("{shown}"),
        Some(_) => {}
    }
    eprint!("{stderr}");
    Ok((out.status.success(), stdout, stderr))
}

/// The host's checks, as the Queen over the console and over TCP: `/`
/// holds the hive, `/proc/boot` reads, both workers' telemetry carries
/// heartbeats written inside the image and keeps growing with the timer's
/// ticks, and TCP connections are served side by side (a `tail -f` goes on
/// while others run).
/// The second boot worker's telemetry file.
fn w2_path() -> String {
    format!("/worker/{}/telemetry", WORKER_IDS[1])
}

fn host_session(host: &Host) -> Result<(), Failure> {
    let expect = |what: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Failure::new(format!("cohsh: {what}")))
        }
    };
    let mut first = Vec::new();
    for via in host.vias() {
        let root = cohsh(host, via, &["ls", "/"])?;
        expect(
            "`ls /` lacks proc, queen, log or worker",
            ["proc", "queen", "log", "worker"]
                .iter()
                .all(|n| root.lines().any(|l| l.trim_end_matches('/') == *n)),
        )?;
        let boot = cohsh(host, via, &["cat", "/proc/boot"])?;
        expect("/proc/boot is empty", !boot.trim().is_empty())?;
    }
    for id in WORKER_IDS {
        let path = format!("/worker/{id}/telemetry");
        let tail = cohsh(host, Via::Console, &["tail", "-n", "3", &path])?;
        expect(
            &format!("{path} holds no heartbeat"),
            tail.contains("heartbeat"),
        )?;
        first.push(last_seq(&tail));
    }
    // Over TCP, side by side: `tail -f` of w1 follows the timer's ticks
    // on one connection while other connections come and go. A board whose
    // one link is the console (a serial line: one host at a time) runs the
    // same commands one after the other.
    let via = host.via();
    let follow_path = format!("/worker/{}/telemetry", WORKER_IDS[0]);
    let follow_args = ["tail", "-f", "-n", "1", follow_path.as_str()];
    let (mut follow, shown) = cohsh_command(host, via, &follow_args);
    let follower = follow
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(format!("running {}: {e}", host.cohsh.display())))?;
    std::thread::sleep(TICKS_WAIT);
    let stop = |mut follower: std::process::Child| {
        let _ = follower.kill();
        follower
            .wait_with_output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let (followed, others, tail) = if host.net {
        let others = cohsh(host, via, &["workers"]);
        let tail = cohsh(host, via, &["tail", "-n", "2", &w2_path()]);
        let followed = stop(follower);
        println!("$ {shown}   (started before the two commands above, stopped after them)");
        print!("{followed}");
        (followed, others, tail)
    } else {
        let followed = stop(follower);
        println!("$ {shown}   (stopped after {}s)", TICKS_WAIT.as_secs());
        print!("{followed}");
        // Let a reply to the stopped follower's last request drain before
        // the next host takes the line.
        std::thread::sleep(Duration::from_millis(500));
        let others = cohsh(host, via, &["workers"]);
        let tail = cohsh(host, via, &["tail", "-n", "2", &w2_path()]);
        (followed, others, tail)
    };
    let (others, tail) = (others?, tail?);
    expect(
        "`workers` lacks w1 or w2",
        WORKER_IDS.iter().all(|id| others.contains(id)),
    )?;
    for (followed, before) in [(&followed, first[0]), (&tail, first[1])] {
        let after = last_seq(followed);
        expect(
            &format!(
                "no new heartbeat in {}s (seq {before:?} then {after:?})",
                TICKS_WAIT.as_secs()
            ),
            after > before,
        )?;
    }
    let beats = followed
        .lines()
        .filter(|l| l.starts_with("heartbeat"))
        .count();
    expect(
        &format!(
            "`tail -f` showed {beats} heartbeats in {}s",
            TICKS_WAIT.as_secs()
        ),
        beats >= 2,
    )?;
    Ok(())
}

/// How long the lifecycle checks wait for a worker's heartbeats to grow.
const GROW_WAIT: Duration = Duration::from_secs(3);
/// How long they wait for the faulting worker to spend its restarts.
const FAULTS_WAIT: Duration = Duration::from_secs(60);

fn fail(what: String) -> Failure {
    Failure::new(format!("lifecycle: {what}"))
}

/// The last heartbeat of `id`, read over TCP as the Queen.
pub(crate) fn seq_of(host: &Host, id: &str) -> Result<Option<u64>, Failure> {
    let path = format!("/worker/{id}/telemetry");
    Ok(last_seq(&cohsh(
        host,
        host.via(),
        &["tail", "-n", "2", &path],
    )?))
}

/// Waits [`GROW_WAIT`] and fails unless `id`'s heartbeats grew past `before`.
fn grows(host: &Host, id: &str, before: Option<u64>) -> Result<Option<u64>, Failure> {
    std::thread::sleep(GROW_WAIT);
    let after = seq_of(host, id)?;
    if after <= before {
        return Err(fail(format!(
            "{id}'s telemetry did not grow in {}s ({before:?} then {after:?})",
            GROW_WAIT.as_secs()
        )));
    }
    Ok(after)
}

fn spawn_worker(host: &Host, id: &str) -> Result<(bool, String), Failure> {
    let (ok, _, stderr) = cohsh_status(
        host,
        host.via(),
        &["spawn", "heartbeat", id],
        Some("<ticket>"),
    )?;
    Ok((ok, stderr))
}

/// Workers as protection domains, on the running image: `kill` stops a
/// worker's PD (its console falls silent, its files go, the other worker
/// beats on); `spawn` restarts a free slot's PD for a new worker whose
/// telemetry grows; the test knob's worker faults, is restarted
/// [`cohesix_pds::RESTART_LIMIT`] times and then left stopped, as the log
/// shows; a spawn beyond the pool fails; garbage over TCP gets that
/// connection closed within a second while others are served.
fn lifecycle_session(host: &Host, console: &Console) -> Result<(), Failure> {
    let [w1, w2] = WORKER_IDS;
    let pd1 = "worker1:";
    let mark = console.mark();
    cohsh(host, host.via(), &["kill", w1])?;
    let w2_seq = seq_of(host, w2)?;
    let w2_seq = grows(host, w2, w2_seq)?;
    let listing = cohsh(host, host.via(), &["ls", "/worker"])?;
    if listing.lines().any(|l| l.trim_end_matches('/') == w1) {
        return Err(fail(format!("/worker/{w1} is still there after kill")));
    }
    let noise = console.since(mark, pd1);
    if !noise.is_empty() {
        return Err(fail(format!(
            "the killed worker's PD still runs: {noise:?}"
        )));
    }
    println!("xtask run: {w1} killed: its PD printed nothing since, {w2} beats on");

    let w3 = "w3";
    let (ok, err) = spawn_worker(host, w3)?;
    if !ok {
        return Err(fail(format!("spawn {w3}: {err}")));
    }
    // The restarted PD writes its boot line within moments (it runs below
    // NineDoor, whose own work comes first).
    let path = format!("/worker/{w3}/telemetry");
    let want = format!("boot {w3} pd=worker1");
    let mut booted = false;
    for _ in 0..20 {
        if cohsh(host, host.via(), &["tail", "-n", "8", &path])?.contains(&want) {
            booted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if !booted {
        return Err(fail(format!("{w3} did not boot in the freed slot worker1")));
    }
    grows(host, w3, seq_of(host, w3)?)?;

    let mark = console.mark();
    let faulty = FAULTY_WORKER;
    let (ok, err) = spawn_worker(host, faulty)?;
    if !ok {
        return Err(fail(format!("spawn {faulty}: {err}")));
    }
    let deadline = Instant::now() + FAULTS_WAIT;
    let stopped = loop {
        if !console.since(mark, "left stopped until killed").is_empty() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = cohsh_status(
        host,
        host.via(),
        &["cat", "/log/queen.log"],
        Some("(the faulting worker's lines follow)"),
    )?
    .1;
    let mine: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("worker={faulty}")))
        .filter(|l| {
            ["worker-fault", "worker-restart", "worker-stopped"]
                .iter()
                .any(|e| l.contains(e))
        })
        .collect();
    let (_, shown) = cohsh_command(host, host.via(), &["cat", "/log/queen.log"]);
    println!("$ {shown} | grep worker={faulty}");
    for line in &mine {
        println!("{line}");
    }
    let count = |event: &str| mine.iter().filter(|l| l.contains(event)).count();
    let limit = cohesix_pds::RESTART_LIMIT as usize;
    if !stopped
        || count("worker-fault") != limit + 1
        || count("worker-restart") != limit
        || count("worker-stopped") != 1
    {
        return Err(fail(format!(
            "{faulty}: wanted {} faults, {limit} restarts and a stop within {}s; the log has {} faults, {} restarts, {} stops",
            limit + 1,
            FAULTS_WAIT.as_secs(),
            count("worker-fault"),
            count("worker-restart"),
            count("worker-stopped")
        )));
    }
    grows(host, w2, Some(w2_seq.unwrap_or(0)))?;
    println!(
        "xtask run: {faulty} faulted, was restarted {limit} times and left stopped; {w2} never paused"
    );

    // The pool: w3, w2, the stopped faulty worker and one free slot.
    let (ok, err) = spawn_worker(host, "w4")?;
    if !ok {
        return Err(fail(format!("spawn w4 into the last free slot: {err}")));
    }
    let (ok, err) = spawn_worker(host, "w5")?;
    if ok || !err.contains("No space") && !err.contains("ENOSPC") && !err.contains("slot") {
        return Err(fail(format!(
            "a spawn beyond the pool was not refused: {err}"
        )));
    }
    cohsh(host, host.via(), &["kill", faulty])?;
    let (ok, err) = spawn_worker(host, "w5")?;
    if !ok {
        return Err(fail(format!("spawn w5 after freeing a slot: {err}")));
    }
    grows(host, "w5", seq_of(host, "w5")?)?;

    if host.net {
        garbage_closes(host, console)
    } else {
        serial_bad_input(host, console)
    }
}

/// A `Tversion` frame (tag `NOTAG`, msize 8192, "9P2000.L").
fn tversion() -> Vec<u8> {
    let mut f = vec![21, 0, 0, 0, 100, 0xff, 0xff];
    f.extend(8192u32.to_le_bytes());
    f.extend(8u16.to_le_bytes());
    f.extend(b"9P2000.L");
    f
}

/// The console link is a serial line, which cannot be closed: a corrupt
/// or oversized frame must make the device PD drop its session (with a
/// console line) so the next host is served; a host that stalls half-way
/// through a frame must not stop the heartbeats, and finishing the frame
/// gets its answer.
fn serial_bad_input(host: &Host, console: &Console) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let connect = || {
        UnixStream::connect(&host.socket)
            .map_err(|e| fail(format!("connect {}: {e}", host.socket.display())))
    };
    for (what, frame) in [
        ("size 3", vec![3u8, 0, 0, 0, 100, 0, 0]),
        ("size 16 MiB", vec![0, 0, 0, 1, 100, 0, 0]),
    ] {
        let mark = console.mark();
        let mut line = connect()?;
        line.write_all(&frame)
            .map_err(|e| fail(format!("write: {e}")))?;
        std::thread::sleep(Duration::from_millis(700));
        drop(line);
        let said = console.since(mark, "outside 7..=");
        println!(
            "$ printf <a frame of {what}> | socat - UNIX:{}   -> console: {}",
            host.socket.display(),
            said.first().map_or("(nothing)", String::as_str)
        );
        if said.is_empty() {
            return Err(fail(format!(
                "no console line named the framing loss of a frame of {what}"
            )));
        }
        cohsh(host, host.via(), &["ls", "/"])?;
    }
    // w2: the lifecycle checks before this killed w1.
    let beating = WORKER_IDS[1];
    let before = seq_of(host, beating)?;
    let mut line = connect()?;
    let frame = tversion();
    line.write_all(&frame[..10])
        .map_err(|e| fail(format!("write: {e}")))?;
    std::thread::sleep(TICKS_WAIT);
    line.write_all(&frame[10..])
        .map_err(|e| fail(format!("write: {e}")))?;
    line.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| fail(format!("{e}")))?;
    let mut reply = [0u8; 7];
    line.read_exact(&mut reply).map_err(|e| {
        fail(format!(
            "no Rversion after the stalled frame was finished: {e}"
        ))
    })?;
    if reply[4] != 101 {
        return Err(fail(format!(
            "the finished Tversion got {reply:?}, not an Rversion"
        )));
    }
    drop(line);
    std::thread::sleep(Duration::from_millis(300));
    let after = seq_of(host, beating)?;
    println!(
        "half a Tversion held {}s, then finished: Rversion; {beating} heartbeat seq {before:?} -> {after:?}",
        TICKS_WAIT.as_secs(),
    );
    if after <= before {
        return Err(fail(format!(
            "heartbeats stopped while a host held half a frame ({before:?} -> {after:?})"
        )));
    }
    Ok(())
}

/// A frame size of 3 over TCP: the network PD must close that connection
/// within a second, and serve the next one.
fn garbage_closes(host: &Host, console: &Console) -> Result<(), Failure> {
    use std::io::Write;
    let mark = console.mark();
    let mut stream = std::net::TcpStream::connect(host.tcp)
        .map_err(|e| fail(format!("connect {}: {e}", host.tcp)))?;
    let started = Instant::now();
    stream
        .write_all(&[3, 0, 0, 0, 100, 0, 0])
        .map_err(|e| fail(format!("write: {e}")))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| fail(format!("{e}")))?;
    let mut buf = [0u8; 64];
    let closed = match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    let took = started.elapsed();
    println!(
        "$ printf '\\x03\\0\\0\\0d\\0\\0' | nc 127.0.0.1 {}   -> closed: {closed} after {} ms",
        host.tcp.port(),
        took.as_millis()
    );
    if !closed {
        return Err(fail(String::from(
            "a frame of size 3 over TCP did not get the connection closed within 1s",
        )));
    }
    std::thread::sleep(Duration::from_millis(200));
    let said = console.since(mark, "outside 7..=");
    if said.is_empty() {
        return Err(fail(String::from("no console line named the framing loss")));
    }
    cohsh(host, host.via(), &["ls", "/"]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_and_refuse() {
        let o = options(&args(&["--timeout", "30", "--keep", "--linux"]))
            .ok()
            .unwrap();
        assert_eq!(
            (o.timeout, o.keep, o.linux),
            (Duration::from_secs(30), true, true)
        );
        let o = options(&[]).ok().unwrap();
        assert_eq!(
            (o.timeout, o.keep),
            (Duration::from_secs(DEFAULT_TIMEOUT_S), false)
        );
        let o = options(&args(&[
            "--gpu-bridge",
            "gpu1:5650",
            "--gpu-bridge-key",
            "k",
        ]))
        .ok()
        .unwrap();
        assert_eq!(
            o.gpu_bridge,
            Some((String::from("gpu1:5650"), PathBuf::from("k")))
        );
        for bad in [
            &["--timeout"][..],
            &["--timeout", "soon"],
            &["--fast"],
            &["--gpu-bridge", "gpu1:5650"],
            &["--gpu-bridge-key", "k"],
        ] {
            let e = options(&args(bad)).err().unwrap();
            assert_eq!(e.code, 2, "{bad:?}");
        }
    }

    #[test]
    fn last_seq_reads_heartbeat_lines_only() {
        let text = "boot w1 pd=worker1\nheartbeat w1 seq=9 uptime_ms=5\n\
                    heartbeat w1 seq=11 uptime_ms=7 missed=1\nprobe seq=99\n";
        assert_eq!(last_seq(text), Some(11));
        assert_eq!(last_seq("probe /worker/w2: refused\n"), None);
    }

    /// A board config directory with the files `check_abi` reads, as the
    /// SDK lays them out, holding the runtime's own numbers.
    fn fake_sdk(dir: &Path, tweak: impl Fn(&str, String) -> String) {
        let inc = dir.join("include");
        std::fs::create_dir_all(inc.join("kernel")).unwrap();
        std::fs::create_dir_all(inc.join("sel4").join("sel4_arch")).unwrap();
        let header = format!(
            "#define MONITOR_EP {MONITOR_EP}\n#define BASE_OUTPUT_NOTIFICATION_CAP \
             {BASE_OUTPUT_NOTIFICATION_CAP}\n#define BASE_ENDPOINT_CAP {BASE_ENDPOINT_CAP}\n\
             #define BASE_IRQ_CAP {BASE_IRQ_CAP}\n#define BASE_TCB_CAP {BASE_TCB_CAP}\n\
             #define MICROKIT_MAX_CHANNELS {MAX_CHANNELS}\n\
             #define MICROKIT_PD_NAME_LENGTH {PD_NAME_LENGTH}\n"
        );
        let faults = format!(
            "typedef enum {{\n    seL4_Fault_NullFault = 0,\n    seL4_Fault_CapFault = {},\n    \
             seL4_Fault_UnknownSyscall = {},\n    seL4_Fault_UserException = {},\n    \
             seL4_Fault_DebugException = {},\n    seL4_Fault_Timeout = {},\n    \
             seL4_Fault_VMFault = {},\n}} seL4_Fault_tag_t;\n",
            fault_label::CAP,
            fault_label::UNKNOWN_SYSCALL,
            fault_label::USER_EXCEPTION,
            fault_label::DEBUG_EXCEPTION,
            fault_label::TIMEOUT,
            fault_label::VM
        );
        let files = [
            ("include/microkit.h", header),
            ("include/sel4/sel4_arch/types_gen.h", faults),
            (
                "invocations_all.json",
                format!(
                    "{{\"IRQAckIRQ\": {IRQ_ACK_LABEL}, \"TCBWriteRegisters\": \
                     {TCB_WRITE_REGISTERS_LABEL}, \"TCBSuspend\": {TCB_SUSPEND_LABEL}}}"
                ),
            ),
            (
                "address_space_constants.json",
                format!("{{\"vspace_user_top\": {}}}", IPC_BUFFER + PAGE_SIZE - 1),
            ),
            (
                "include/kernel/gen_config.json",
                String::from("{\"KERNEL_MCS\": true, \"PRINTING\": true}"),
            ),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), tweak(name, text)).unwrap();
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-abi-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_abi_check_accepts_matching_files_and_names_each_mismatch() {
        let ok = scratch("ok");
        fake_sdk(&ok, |_, t| t);
        assert!(check_abi(&ok, Board::QemuVirt).is_ok());

        let bad = scratch("bad");
        fake_sdk(&bad, |name, t| match name {
            "include/microkit.h" => {
                t.replace(&format!("BASE_IRQ_CAP {BASE_IRQ_CAP}"), "BASE_IRQ_CAP 999")
            }
            "invocations_all.json" => String::from("{\"IRQAckIRQ\": 30}"),
            "include/sel4/sel4_arch/types_gen.h" => {
                t.replace("seL4_Fault_VMFault = 6", "seL4_Fault_VMFault = 5")
            }
            "include/kernel/gen_config.json" => {
                String::from("{\"KERNEL_MCS\": false, \"PRINTING\": true}")
            }
            _ => t,
        });
        let e = check_abi(&bad, Board::QemuVirt).err().unwrap();
        assert_eq!(e.code, 1);
        for what in [
            "BASE_IRQ_CAP: SDK has Some(999)",
            "IRQAckIRQ",
            "TCBSuspend label: SDK has None",
            "seL4_Fault_VMFault: SDK has Some(5)",
            "KERNEL_MCS",
        ] {
            assert!(e.message.contains(what), "{what}: {}", e.message);
        }
        assert!(!e.message.contains("MONITOR_EP"), "{}", e.message);

        let missing = scratch("missing");
        assert_eq!(check_abi(&missing, Board::QemuVirt).err().unwrap().code, 2);
        for d in [ok, bad, missing] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
