//! The shipped PTX assembles with NVIDIA's `ptxas` for the oldest target it
//! declares (sm_50) and for Hopper (sm_90). Skips, saying so, where no
//! `ptxas` is installed: set `PTXAS`, put one on `PATH`, or
//! `pip install nvidia-cuda-nvcc-cu12` (its `nvidia/cuda_nvcc/bin/ptxas`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn find_ptxas() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("PTXAS") {
        candidates.push(p.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("ptxas")));
    }
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        candidates.push(Path::new(&home).join("bin/ptxas"));
    }
    candidates.push("/usr/local/cuda/bin/ptxas".into());
    candidates.extend(pip_ptxas());
    candidates.into_iter().find(|p| p.is_file())
}

/// Where `pip install nvidia-cuda-nvcc-cu12` put `ptxas`, if Python knows.
fn pip_ptxas() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('nvidia.cuda_nvcc'); \
             print(list(s.submodule_search_locations)[0] if s else '')",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| Path::new(dir).join("bin/ptxas"))
}

#[test]
fn shipped_ptx_assembles() {
    let Some(ptxas) = find_ptxas() else {
        eprintln!(
            "SKIPPED shipped_ptx_assembles: no ptxas found (set PTXAS, or pip install nvidia-cuda-nvcc-cu12)"
        );
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ptxas");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("vadd", gpu_bridge::ptx::VADD),
        ("matmul", gpu_bridge::ptx::MATMUL),
    ] {
        let src = dir.join(format!("{name}.ptx"));
        std::fs::write(&src, text).unwrap();
        for arch in ["sm_50", "sm_90"] {
            let out = Command::new(&ptxas)
                .arg(format!("-arch={arch}"))
                .arg(&src)
                .arg("-o")
                .arg(dir.join(format!("{name}.{arch}.cubin")))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} {name} {arch}: {}",
                ptxas.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
