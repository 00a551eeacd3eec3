#!/usr/bin/env bash
# pjdfstest (crates.io) through the Linux kernel's 9P client, in user-mode
# Linux, against s9p-memfs, s9p-export and diod in one run: each server on
# its own fresh directory, the same configuration (pjdfstest.toml here), the
# counts side by side and every failure listed. Needs root (diod, pjdfstest's
# user switching) and scripts/pjdfstest/setup.sh.
#
#   scripts/pjdfstest/run.sh [OUTDIR]
#
# Prints one line per server: `NAME passed P failed F skipped S total T`,
# then each server's failures with pjdfstest's reason, then the tests the
# export fails that diod passes. Logs stay in OUTDIR (default: a temp dir).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/pjdfstest"
tools="${FS_TOOLS:-$root/target/fs-tools}"
pjd="$tools/bin/pjdfstest"
[ -x "$pjd" ] || { echo "SKIP: no $pjd (run scripts/pjdfstest/setup.sh)"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: pjdfstest and diod need root"; exit 77; }
out=${1:-$(mktemp -d /tmp/s9p-pjdfstest.XXXXXX)}
mkdir -p "$out"
# shellcheck source=servers.sh
. "$here/servers.sh"
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# measure NAME PORT OPTS: pjdfstest in a fresh directory of the mount.
measure() {
  local name=$1 p=$2 opts=$3
  wait_port "$p" || { echo "$name did not start"; return 1; }
  "$here/uml.sh" "$p" "$opts" \
    "mkdir pjd && cd pjd && $pjd -c $here/pjdfstest.toml -p . 2>&1" >"$out/$name.log" 2>&1 || true
}

p=$(port); "$bin/s9p-memfs" --listen "127.0.0.1:$p" >"$out/memfs.server" 2>&1 & pids+=($!)
measure memfs "$p" -
exp="$out/export-root"; mkdir -p "$exp"
p=$(port); "$bin/s9p-export" "$exp" --listen "127.0.0.1:$p" >"$out/export.server" 2>&1 & pids+=($!)
measure export "$p" -
if command -v diod >/dev/null; then
  dd="$out/diod-root"; mkdir -p "$dd"
  p=$(port); diod -f -n -l "127.0.0.1:$p" -e "$dd" >"$out/diod.server" 2>&1 & pids+=($!)
  measure diod "$p" "aname=$dd"
fi

for name in memfs export diod; do
  [ -f "$out/$name.log" ] || continue
  s=$(grep -E '^Summary:' "$out/$name.log" || echo "Summary: no result")
  echo "$name ${s#Summary: }"
done
for name in memfs export diod; do
  [ -f "$out/$name.log" ] || continue
  echo "--- $name failures"
  grep -A1 -E ' FAILED$' "$out/$name.log" | grep -v '^--$' || true
done
if [ -f "$out/diod.log" ]; then
  echo "--- the export fails, diod passes:"
  grep -E ' ok$' "$out/diod.log" | awk '{print $1}' | sort >"$out/diod.ok"
  grep -E ' FAILED$' "$out/export.log" | awk '{print $1}' | sort >"$out/export.failed"
  comm -12 "$out/diod.ok" "$out/export.failed"
fi
echo "logs: $out"
