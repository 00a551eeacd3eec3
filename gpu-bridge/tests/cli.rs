//! `gpu-bridge-host` as a user runs it.

use gpu_bridge::GpuDescriptor;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_gpu-bridge-host");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn mock_list_is_deterministic() {
    let first = run(&["--mock", "--gpus", "3", "--list"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = run(&["--mock", "--gpus", "3", "--list"]);
    assert_eq!(first.stdout, second.stdout);
    let text = stdout(&first);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        r#"{"id":"0","name":"Cohesix Mock GPU","uuid":"GPU-00000000-0000-4000-8000-000000000000","memory_mb":16384,"sm_count":16,"driver_version":"mock-1.0","runtime_version":"12.0"}"#
    );
    for (i, line) in lines.iter().enumerate() {
        let d: GpuDescriptor = serde_json::from_str(line).unwrap();
        assert_eq!(d.id, i.to_string());
    }
    let one = run(&["--mock", "--list"]);
    assert_eq!(stdout(&one).lines().count(), 1);
}

#[test]
fn plain_list_uses_nvml_or_says_there_is_none() {
    let out = run(&["--list"]);
    match out.status.code() {
        Some(3) => assert!(stderr(&out).contains("no NVML found"), "{}", stderr(&out)),
        Some(0) => {
            for line in stdout(&out).lines() {
                serde_json::from_str::<GpuDescriptor>(line).unwrap();
            }
        }
        other => panic!("exit {other:?}: {}", stderr(&out)),
    }
}

#[test]
fn mock_selftest_passes_on_the_cpu() {
    let out = run(&["--mock", "--selftest"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("selftest vadd-small executor=cpu"), "{text}");
    assert!(
        text.contains("selftest matmul-large executor=cpu"),
        "{text}"
    );
    assert!(text.ends_with("selftest PASSED\n"), "{text}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["--gpus", "2", "--list"]).status.code(), Some(2));
    assert_eq!(
        run(&["--mock", "--list", "--stage", "nonsense"])
            .status
            .code(),
        Some(2)
    );
    let missing = run(&["--mock", "--list", "--stage", "x=/nonexistent/file"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("--stage x"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn too_many_mocks_is_a_clear_error() {
    let out = run(&["--mock", "--gpus", "1000", "--list"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("1000 mock GPUs"), "{}", stderr(&out));
}
