//! No two binaries of the workspace share a name, so whatever is built and
//! in whatever order, `target/<profile>/ninedoor` is the host daemon and the
//! seL4 image's NineDoor PD is `pd-ninedoor` (staged as `ninedoor.elf`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace());
    c
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds xtask")
        .to_path_buf()
}

#[test]
fn every_binary_name_in_the_workspace_is_unique() {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in meta["packages"].as_array().expect("packages") {
        for target in package["targets"].as_array().expect("targets") {
            let is_bin = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            if is_bin {
                owners
                    .entry(target["name"].as_str().unwrap_or("?").to_owned())
                    .or_default()
                    .push(package["name"].as_str().unwrap_or("?").to_owned());
            }
        }
    }
    assert_eq!(
        owners.get("ninedoor").map(Vec::as_slice),
        Some(&["ninedoor".to_owned()][..])
    );
    assert!(owners.contains_key("pd-ninedoor"), "{owners:?}");
    let shared: Vec<_> = owners.iter().filter(|(_, p)| p.len() > 1).collect();
    assert!(
        shared.is_empty(),
        "binary names built by more than one package: {shared:?}"
    );
}

#[test]
fn after_building_the_whole_workspace_target_ninedoor_is_the_daemon() {
    let status = cargo()
        .args(["build", "-q", "--workspace", "--bins"])
        .status()
        .expect("cargo build runs");
    assert!(status.success(), "cargo build --workspace failed");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("debug");
    let help = Command::new(dir.join("ninedoor"))
        .arg("--help")
        .output()
        .expect("target/debug/ninedoor runs");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{text}");
    assert!(
        text.contains("Serve the Cohesix hive"),
        "not the daemon: {text}"
    );
    // The image's PD binary, built for the host, is the stub that says
    // where it runs.
    let stub = Command::new(dir.join("pd-ninedoor"))
        .output()
        .expect("target/debug/pd-ninedoor runs");
    assert_eq!(stub.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&stub.stderr).contains("runs under seL4"));
}
