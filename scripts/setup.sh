#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine:
# rustup components and targets, and the real 9P peers the interop tests use
# (Debian's diod, QEMU + busybox for the Linux kernel client). Idempotent.
set -euo pipefail

need_apt=()
for pkg in diod qemu-system-x86 busybox-static cpio; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

rustup component add clippy rustfmt >/dev/null 2>&1 || true
rustup target list --installed | grep -qx aarch64-unknown-none \
  || rustup target add aarch64-unknown-none
