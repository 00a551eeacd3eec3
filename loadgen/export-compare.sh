#!/usr/bin/env bash
# s9p-export against diod on the same directory, same run: s9p-load's small
# reads (4 KiB at offset 0) and 1 MiB reads (msize 1 MiB + 24), in
# interleaved rounds (export, diod, export, ...) so that load from elsewhere
# falls on both alike. Prints a Markdown table of the medians and the
# export/diod ratios (what loadgen/RESULTS.md records).
#
#   loadgen/export-compare.sh [ROUNDS] [SECONDS]     (default 3 rounds of 5 s)
#
# diod needs root (Debian's diod); without it only the export is measured.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3} DURATION=${2:-5}
CONNS=${CONNS:-4} PIPELINE=${PIPELINE:-16}
cd "$ROOT"
cargo build --release -q -p s9p-load -p secure9p-fs
target="${CARGO_TARGET_DIR:-$ROOT/target}"
LOAD=$target/release/s9p-load
EXPORT=$target/release/s9p-export
DIR=$(mktemp -d /tmp/s9p-export-compare.XXXXXX)
OUT=$(mktemp -d /tmp/s9p-export-compare-out.XXXXXX)
head -c 4096 /dev/urandom >"$DIR/small"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$DIR/large"
chmod 755 "$DIR"
PID=""
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=""; fi; }
trap 'stop; rm -rf "$DIR"' EXIT
start() {
  local port=$1; shift
  "$@" >"$OUT/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server did not start: $*" >&2
  return 1
}
HAVE_DIOD=""
[ "$(id -u)" = 0 ] && command -v diod >/dev/null && HAVE_DIOD=1
# load NAME SHAPE PORT ANAME: one s9p-load run, its JSON kept.
load() {
  local name=$1 shape=$2 port=$3 aname=$4
  local args=(--addr "127.0.0.1:$port" --aname "$aname" --connections "$CONNS"
    --pipeline "$PIPELINE" --duration "$DURATION" --json --server-pid "$PID")
  case $shape in
    small) args+=(--mix small-read=100 --small-file small) ;;
    large) args+=(--mix large-read=100 --large-file large --msize $((1024 * 1024 + 24))) ;;
  esac
  "$LOAD" "${args[@]}" >>"$OUT/$name-$shape.jsonl"
}
for _ in $(seq "$ROUNDS"); do
  for shape in small large; do
    start 5762 "$EXPORT" "$DIR" --listen 127.0.0.1:5762 && load export "$shape" 5762 / ; stop
    if [ -n "$HAVE_DIOD" ]; then
      start 5763 diod -f -n -l 127.0.0.1:5763 -e "$DIR" && load diod "$shape" 5763 "$DIR"; stop
    fi
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys, os
out = sys.argv[1]
def med(name, shape, key):
    p = os.path.join(out, f"{name}-{shape}.jsonl")
    if not os.path.exists(p):
        return None
    rows = [json.loads(l) for l in open(p) if l.strip()]
    bad = sum(r["errors_total"] for r in rows)
    return statistics.median(r[key] for r in rows), bad, len(rows)
print("| shape | s9p-export | diod | export / diod |")
print("|---|---:|---:|---:|")
for shape, key, unit in [("small", "requests_per_sec", "req/s"), ("large", "mb_per_sec", "MB/s")]:
    e, d = med("export", shape, key), med("diod", shape, key)
    ratio = f"{e[0] / d[0]:.2f}" if e and d and d[0] else "-"
    cell = lambda m: f"{m[0]:,.0f} {unit} ({m[2]} runs, {m[1]} errors)" if m else "-"
    print(f"| {shape} reads | {cell(e)} | {cell(d)} | {ratio} |")
PY
echo "raw results: $OUT"
