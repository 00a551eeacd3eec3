#!/usr/bin/env bash
# fsx (crates.io) through the Linux kernel's 9P client, in user-mode Linux,
# against s9p-memfs and s9p-export (fresh directory), side by side:
#
#   scripts/pjdfstest/fsx.sh [OPS] [SEED]      (default 20000 operations, seed 1)
#
# Prints `NAME: OK` or `NAME: FAILED` and fsx's last lines for each. Takes
# about 5 minutes for 20,000 operations (slirp's round trips dominate).
# Needs scripts/pjdfstest/setup.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/pjdfstest"
tools="${FS_TOOLS:-$root/target/fs-tools}"
fsx="$tools/bin/fsx"
[ -x "$fsx" ] || { echo "SKIP: no $fsx (run scripts/pjdfstest/setup.sh)"; exit 77; }
ops=${1:-20000} seed=${2:-1}
opts=${FSX_MOUNT_OPTS:--}
# shellcheck source=servers.sh
. "$here/servers.sh"
work=$(mktemp -d /tmp/s9p-fsx.XXXXXX)
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
run() {
  local name=$1 p=$2
  wait_port "$p"
  "$here/uml.sh" "$p" "$opts" \
    "$fsx -f $here/fsx.toml -N $ops -S $seed -P /tmp fsx.file >/tmp/fsx-$name.out 2>&1; rc=\$?; tail -n 5 /tmp/fsx-$name.out; exit \$rc" \
    >"$work/$name.log" 2>&1 && echo "$name: OK ($ops operations, seed $seed)" || echo "$name: FAILED"
  tail -n 3 "$work/$name.log"
}
p1=$(port); "$bin/s9p-memfs" --listen "127.0.0.1:$p1" >"$work/memfs.server" 2>&1 & pids+=($!)
mkdir -p "$work/export-root"
p2=$(port); "$bin/s9p-export" "$work/export-root" --listen "127.0.0.1:$p2" >"$work/export.server" 2>&1 & pids+=($!)
run memfs "$p1" &
a=$!
run export "$p2" &
b=$!
wait "$a" "$b"
