//! `cargo xtask check`.

use crate::{Failure, out_dir, workspace};
use cohesix_abi::microkit::{PATCHED_SYMBOLS, PD_ENTRY, SETVAR_SIZE};
use cohesix_pds::wiring;
use cohesix_sim::system::ProtectionDomain;
use cohesix_sim::{Board, System};
use object::{Object, ObjectSection, ObjectSymbol};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// The rustc target of every PD image.
pub const TARGET: &str = "aarch64-unknown-none";

/// `cargo xtask check [--board NAME]`: every board's system and images, or
/// one board's.
pub fn check_boards(args: &[String]) -> Result<(), Failure> {
    let boards = match args {
        [] => Board::ALL.to_vec(),
        [flag, name] if flag == "--board" => vec![board(name)?],
        _ => return Err(Failure::missing(crate::USAGE)),
    };
    build()?;
    for b in boards {
        check(b, true)?;
    }
    Ok(())
}

/// The board called `name`, or an error listing the boards there are.
pub fn board(name: &str) -> Result<Board, Failure> {
    Board::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Board::ALL.iter().map(|b| b.name()).collect();
        Failure::missing(format!(
            "no board '{name}'; the boards are {}",
            names.join(", ")
        ))
    })
}

/// Validates `board`'s system, builds (unless `built`) and checks its
/// images; returns the system and the staged ELF of each image, by image
/// name, in `target/cohesix-os/<board>/`.
pub fn check(board: Board, built: bool) -> Result<(System, BTreeMap<String, PathBuf>), Failure> {
    let path = board.system_path();
    let system = System::parse(board.system()).map_err(|e| Failure::new(format!("{path}: {e}")))?;
    println!(
        "{path}: ok ({} PDs, {} regions, {} channels)",
        system.pds.len(),
        system.regions.len(),
        system.channels.len()
    );
    if !built {
        build()?;
    }
    let bin_dir = crate::target_dir().join(TARGET).join("release");
    let stage = out_dir().join(board.name());
    std::fs::create_dir_all(&stage)
        .map_err(|e| Failure::new(format!("{}: {e}", stage.display())))?;
    let mut images = BTreeMap::new();
    for pd in &system.pds {
        let image = &pd.program_image;
        let bin = image_binary(image);
        let elf = std::fs::read(bin_dir.join(&bin))
            .map_err(|e| Failure::new(format!("PD '{}': image {bin}: {e}", pd.name)))?;
        wired(pd).map_err(|e| Failure::new(format!("PD '{}' ({image}): {e}", pd.name)))?;
        let mut want: Vec<(&str, u64)> = PATCHED_SYMBOLS.to_vec();
        want.extend(pd.setvar_symbols().into_iter().map(|s| (s, SETVAR_SIZE)));
        check_elf(&elf, &want)
            .map_err(|e| Failure::new(format!("PD '{}' ({image}): {e}", pd.name)))?;
        let staged = stage.join(image);
        std::fs::write(&staged, &elf)
            .map_err(|e| Failure::new(format!("{}: {e}", staged.display())))?;
        println!(
            "{image} for PD '{}': ok (entry _start at {PD_ENTRY:#x}, {} patched symbols in .data)",
            pd.name,
            want.len()
        );
        images.insert(image.clone(), staged);
    }
    println!("images staged in {}", stage.display());
    Ok((system, images))
}

/// The cargo binary an image is built as: `pd-<name>` for `<name>.elf`
/// (the prefix keeps image stubs off the names of host binaries).
pub fn image_binary(image: &str) -> String {
    format!("pd-{}", image.strip_suffix(".elf").unwrap_or(image))
}

/// Checks that every region the PD's logic asks for (`cohesix_pds::wiring`)
/// is mapped with that `setvar_vaddr` and a `setvar_size` the runtime reads.
fn wired(pd: &ProtectionDomain) -> Result<(), String> {
    let needed: &[&str] = match pd.program_image.as_str() {
        "ninedoor.elf" => &wiring::ninedoor::REGIONS,
        "worker.elf" => &wiring::worker::REGIONS,
        "gpuworker.elf" => &wiring::gpuworker::REGIONS,
        "device.elf" => &wiring::device::REGIONS,
        "uart.elf" => &wiring::device::UART_REGIONS,
        "timer.elf" => &wiring::timer::REGIONS,
        "ttc-timer.elf" => &wiring::timer::TTC_REGIONS,
        "net.elf" => &wiring::device::REGIONS,
        other => return Err(format!("no PD logic is built as {other}")),
    };
    let mapped = |sym: &str| {
        pd.maps
            .iter()
            .any(|m| m.setvar_vaddr.as_deref() == Some(sym))
    };
    let mut wanted: Vec<&str> = needed.to_vec();
    if pd.program_image == "ninedoor.elf" {
        // The network and bridge ring pairs: whole or not at all.
        for link in wiring::ninedoor::BOARD_LINKS {
            match (mapped(link.rx), mapped(link.tx)) {
                (true, true) => wanted.extend([link.rx, link.tx]),
                (false, false) => {}
                _ => {
                    return Err(format!(
                        "maps only one of the ring pair {}/{} (map both or neither)",
                        link.rx, link.tx
                    ));
                }
            }
        }
    }
    for sym in wanted {
        let map = pd
            .maps
            .iter()
            .find(|m| m.setvar_vaddr.as_deref() == Some(sym))
            .ok_or_else(|| format!("no map with setvar_vaddr=\"{sym}\" (the PD reads it)"))?;
        let size = format!("{sym}_size");
        if map.setvar_size.as_deref() != Some(size.as_str()) {
            return Err(format!(
                "map of '{}' needs setvar_size=\"{size}\" (the runtime sizes the region with it)",
                map.mr
            ));
        }
    }
    Ok(())
}

fn build() -> Result<(), Failure> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--release",
            "-p",
            "cohesix-images",
            "--target",
            TARGET,
        ])
        .status()
        .map_err(|e| Failure::new(format!("running cargo: {e}")))?;
    if !status.success() {
        return Err(Failure::new(format!(
            "cross-build for {TARGET} failed ({status}); is the target installed? (rustup target add {TARGET})"
        )));
    }
    Ok(())
}

/// Checks an image: an aarch64 executable entered at `_start`, and each
/// `(symbol, size)` of `want` defined in `.data` with that size.
pub fn check_elf(elf: &[u8], want: &[(&str, u64)]) -> Result<(), String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF: {e}"))?;
    if file.architecture() != object::Architecture::Aarch64 {
        return Err(format!("built for {:?}, not aarch64", file.architecture()));
    }
    let start = file
        .symbols()
        .find(|s| s.name() == Ok("_start"))
        .ok_or("no _start symbol")?;
    if file.entry() == 0 || file.entry() != start.address() {
        return Err(format!(
            "entry point {:#x} is not _start ({:#x})",
            file.entry(),
            start.address()
        ));
    }
    if file.entry() != PD_ENTRY {
        return Err(format!(
            "_start is at {:#x}, not {PD_ENTRY:#x}, where a parent restarts its children",
            file.entry()
        ));
    }
    let data = file
        .section_by_name(".data")
        .ok_or("no .data section")?
        .index();
    for (name, size) in want {
        let sym = file
            .symbols()
            .find(|s| s.name() == Ok(name))
            .ok_or_else(|| format!("symbol {name} missing (the tool patches it)"))?;
        if sym.section_index() != Some(data) {
            return Err(format!(
                "symbol {name} is not in .data (the tool patches file bytes, .bss has none)"
            ));
        }
        if sym.size() != *size {
            return Err(format!(
                "symbol {name} has {} bytes; the tool writes {size}",
                sym.size()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_elf;

    #[test]
    fn refuses_what_is_not_an_aarch64_pd() {
        assert!(
            check_elf(b"not an elf", &[])
                .unwrap_err()
                .starts_with("not an ELF")
        );
        // This test binary: an ELF, but for the host.
        let host = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        if !cfg!(target_arch = "aarch64") {
            assert!(check_elf(&host, &[]).unwrap_err().contains("not aarch64"));
        }
    }
}
