#!/usr/bin/env bash
# Installs what scripts/pjdfstest/run.sh and fsx.sh need, idempotently:
# Debian's user-mode-linux (a v9fs client that boots in seconds), slirp (its
# network to the host's loopback), diod (the peer measured beside ours), and
# crates.io's pjdfstest and fsx into target/fs-tools/bin.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
need=()
for pkg in user-mode-linux slirp diod attr; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
tools="${FS_TOOLS:-$root/target/fs-tools}"
for crate in pjdfstest fsx; do
  if [ ! -x "$tools/bin/$crate" ]; then
    echo "setup: cargo install $crate into $tools"
    cargo install --quiet --locked --root "$tools" "$crate"
  fi
done
