//! `MICROKIT_SDK=… cargo xtask run`.

use crate::check::check;
use crate::{Failure, out_dir, workspace};
use cohesix_abi::microkit::{
    BASE_ENDPOINT_CAP, BASE_IRQ_CAP, BASE_OUTPUT_NOTIFICATION_CAP, IPC_BUFFER, IRQ_ACK_LABEL,
    MAX_CHANNELS, MONITOR_EP, PAGE_SIZE, PD_NAME_LENGTH,
};
use cohesix_pds::wiring::PASS_MARKER;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BOARD: &str = "qemu_virt_aarch64";
const CONFIG: &str = "debug";
/// Where QEMU loads the image (Microkit manual, QEMU virt AArch64).
const LOAD_ADDR: &str = "0x70000000";
const DEFAULT_TIMEOUT_S: u64 = 120;

const NEEDS: &str = "`cargo xtask run` needs:
  - MICROKIT_SDK set to a Microkit 2.3.0 SDK built from seL4 sources with the
    qemu_virt_aarch64 board and its debug config (bin/microkit and
    board/qemu_virt_aarch64/debug/ inside it);
  - qemu-system-aarch64 on PATH (Debian: apt-get install qemu-system-arm);
  - the rustup target aarch64-unknown-none.
Without an SDK, `cargo xtask check` validates the system file and builds and
checks every PD image, and `cargo test -p cohesix-sim` boots the hive in the
simulator.";

pub fn run(args: &[String]) -> Result<(), Failure> {
    let timeout = match args {
        [] => DEFAULT_TIMEOUT_S,
        [flag, n] if flag == "--timeout" => n
            .parse()
            .map_err(|_| Failure::missing(format!("--timeout {n}: not a number of seconds")))?,
        _ => return Err(Failure::missing(crate::USAGE)),
    };
    let Some(sdk) = std::env::var_os("MICROKIT_SDK").map(PathBuf::from) else {
        return Err(Failure::missing(format!(
            "MICROKIT_SDK is not set.\n{NEEDS}"
        )));
    };
    let config_dir = sdk.join("board").join(BOARD).join(CONFIG);
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
    check_abi(&config_dir)?;
    let (_, _) = check()?;
    let stage = out_dir();
    write_seed(&stage.join(cohesix_sim::hive::SEED_FILE))?;
    let image = stage.join("loader.img");
    let status = Command::new(&tool)
        .arg(workspace().join("cohesix-os").join("cohesix.system"))
        .args(["--search-path"])
        .arg(&stage)
        .args(["--board", BOARD, "--config", CONFIG, "-o"])
        .arg(&image)
        .arg("-r")
        .arg(stage.join("report.txt"))
        .status()
        .map_err(|e| Failure::new(format!("running {}: {e}", tool.display())))?;
    if !status.success() {
        return Err(Failure::new(format!("microkit failed ({status})")));
    }
    println!("image: {}", image.display());
    boot(
        &qemu,
        &image,
        &stage.join("9p.sock"),
        Duration::from_secs(timeout),
    )
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
fn check_abi(config_dir: &Path) -> Result<(), Failure> {
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
    expect(
        "IRQAckIRQ label",
        labels.get("IRQAckIRQ").and_then(as_u64),
        IRQ_ACK_LABEL,
    );
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

/// 64 bytes from the OS RNG: the hive key and ticket-id seed of this image.
fn write_seed(path: &Path) -> Result<(), Failure> {
    let mut seed = [0u8; 64];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| Failure::new(format!("/dev/urandom: {e}")))?;
    std::fs::write(path, seed).map_err(|e| Failure::new(format!("{}: {e}", path.display())))
}

fn boot(qemu: &Path, image: &Path, socket: &Path, timeout: Duration) -> Result<(), Failure> {
    let _ = std::fs::remove_file(socket);
    let mut child = Command::new(qemu)
        .args([
            "-machine",
            "virt,virtualization=on",
            "-cpu",
            "cortex-a53",
            "-m",
            "size=2G",
        ])
        .args(["-nographic", "-serial", "mon:stdio"])
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={LOAD_ADDR},cpu-num=0",
            image.display()
        ))
        // The first -device lands in virtio-mmio slot 31 (cohesix.system).
        .args(["-global", "virtio-mmio.force-legacy=false"])
        .args(["-device", "virtio-serial-device"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=c9p,path={},server=on,wait=off",
            socket.display()
        ))
        .args(["-device", "virtconsole,chardev=c9p"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(format!("starting {}: {e}", qemu.display())))?;
    println!(
        "booting; 9P on {} (the device PD's console)",
        socket.display()
    );
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
    let deadline = Instant::now() + timeout;
    let mut passed = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                println!("{line}");
                if line.contains(PASS_MARKER) {
                    passed = true;
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if passed {
        println!("xtask run: pass");
        Ok(())
    } else {
        Err(Failure::new(format!(
            "no pass marker ({PASS_MARKER:?}) within {}s",
            timeout.as_secs()
        )))
    }
}
