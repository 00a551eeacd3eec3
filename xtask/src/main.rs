//! `cargo xtask check [--board NAME]`: validates every board's
//! `cohesix-os/boards/<board>.system` (or the one named) with the
//! simulator's checker, cross-builds every PD image for
//! `aarch64-unknown-none` (release) and checks each ELF the board uses: an
//! entry point at `_start`, and every `microkit_*` and setvar symbol the
//! system file makes the Microkit tool patch, initialised in `.data` with
//! the size the tool writes.
//!
//! `MICROKIT_SDK=<sdk> cargo xtask run`: the above, then checks the
//! runtime's ABI constants against the SDK's own files, builds the image
//! with the SDK's `microkit` tool for `qemu_virt_aarch64` (`debug`), boots
//! it in `qemu-system-aarch64` with the device PD's virtio console on a
//! Unix socket and the network PD's port 564 forwarded from loopback, waits
//! for NineDoor's pass marker, then runs `cohsh` as the Queen over both
//! (`ls /`, `cat /proc/boot`, the workers' telemetry twice, to see it
//! grow); `--linux` also mounts it with the Linux kernel's 9P client
//! (`scripts/linux-client/run.sh`); `--keep` leaves QEMU running. Exit codes: 0 pass,
//! 1 failure, 2 something needed is missing (the message says what).

mod bridge;
mod check;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

/// Where the PD images and the Microkit image are staged.
fn out_dir() -> PathBuf {
    workspace().join("target").join("cohesix-os")
}

/// Cargo's build directory: `CARGO_TARGET_DIR` when set, else the
/// workspace's `target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A failure with its exit code.
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    fn missing(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

const USAGE: &str = "usage: cargo xtask check [--board qemu_virt_aarch64|zcu102]
       MICROKIT_SDK=<path to microkit-sdk-2.3.0> cargo xtask run [--board qemu_virt_aarch64|zcu102]
           [--timeout SECONDS] [--keep] [--linux] [--gpu-bridge HOST:PORT --gpu-bridge-key FILE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check") => check::check_boards(&args[1..]),
        Some("run") => run::run(&args[1..]),
        // Its stdio is the guest's connection: it must print nothing.
        Some("relay") if args.len() == 2 => return bridge::relay(&args[1]),
        _ => Err(Failure::missing(USAGE)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("xtask: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
