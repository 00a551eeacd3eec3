#!/usr/bin/env bash
# The project's one test command (CI runs exactly this): installs what is
# missing, then checks formatting, lints, the no_std builds for
# aarch64-unknown-none, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

echo "== fmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== no_std builds (aarch64-unknown-none)"
cargo build -p secure9p-codec --no-default-features --target aarch64-unknown-none
cargo build -p cohesix-gpu-contract --target aarch64-unknown-none
cargo build -p secure9p-core --target aarch64-unknown-none
echo "== clippy on the image's own target (the runtime's unsafe blocks need SAFETY notes)"
cargo clippy -p cohesix-rt -p cohesix-images --target aarch64-unknown-none --release -- -D warnings
echo "== Microkit system: .system rules, PD cross-builds, ELF checks"
cargo xtask check
echo "== tests"
cargo test --workspace
