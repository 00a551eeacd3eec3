//! `cargo xtask run` without what it needs says so and exits 2.

use std::process::Command;

fn xtask(args: &[&str], sdk: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).env_remove("MICROKIT_SDK");
    if let Some(sdk) = sdk {
        cmd.env("MICROKIT_SDK", sdk);
    }
    let out = cmd.output().expect("xtask runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_sdk_exits_2_and_says_what_is_needed() {
    let (code, err) = xtask(&["run"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("MICROKIT_SDK is not set"), "{err}");
    assert!(err.contains("qemu_virt_aarch64"), "{err}");
}

#[test]
fn an_sdk_path_without_the_board_exits_2() {
    let dir = std::env::temp_dir().join(format!("xtask-empty-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (code, err) = xtask(&["run"], dir.to_str());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn bad_arguments_print_the_usage() {
    let (code, err) = xtask(&["run", "--timeout", "soon"], Some("/nonexistent"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a number"), "{err}");
    let (code, err) = xtask(&["frobnicate"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("usage: cargo xtask check"), "{err}");
}
