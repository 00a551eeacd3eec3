#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine:
# rustup components and targets, and the real 9P peers the interop tests use
# (Debian's diod, QEMU + busybox for the Linux kernel client, PyPI's p9fs
# in target/p9venv, Debian's openssl for the TLS interop test, Debian's
# chromium + chromium-driver for the console's browser tests and prometheus
# for their promtool check, and make, which builds jemalloc for the host
# binaries' allocator, host-alloc). Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi

need_apt=()
for pkg in diod qemu-system-x86 busybox-static cpio openssl chromium chromium-driver prometheus make; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

rustup component add clippy rustfmt >/dev/null 2>&1 || true
rustup target list --installed | grep -qx aarch64-unknown-none \
  || rustup target add aarch64-unknown-none

# p9fs: a pure-Python 9P2000.L client (with its own py9p) for
# secure9p-transport/tests/interop_p9fs.rs, pinned with its one dependency.
venv="$root/target/p9venv"
p9fs_pins=(p9fs==0.0.4 fsspec==2026.9.0)
if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("p9fs") != "0.0.4")' >/dev/null 2>&1; then
  echo "setup: installing ${p9fs_pins[*]} into $venv"
  if ! python3 -m venv --clear "$venv" >/dev/null 2>&1; then
    # Debian's python3 has venv and ensurepip in a separate package.
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv --clear "$venv"
  fi
  "$venv/bin/pip" install -q "${p9fs_pins[@]}"
fi
