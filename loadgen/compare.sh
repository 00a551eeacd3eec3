#!/usr/bin/env bash
# Side-by-side load comparison of 9P2000.L servers on this machine, in one
# run, with the same files and the same s9p-load settings:
#
#   1. our example server (secure9p-transport's `memfs` example),
#   2. Debian's diod (needs root: `apt-get install diod`),
#   3. unpfs, the rs9p example server (`cargo install unpfs`),
#
# all serving one directory holding a 4 KiB `small` and a 64 MiB `large`
# file. s9p-load runs against each at msize 65536 (diod's cap), in ROUNDS
# interleaved rounds (memfs, diod, unpfs, memfs, ...) so that load from
# elsewhere on the machine falls on all three alike; then against ours at
# msize 1 MiB + 24 and with 1,000 connections; diodload (from the diod
# package) runs against diod and ours (aname `ctl`, zero/null), in its
# read/write and getattr modes. Every server is started fresh for each run,
# so its peak memory is its own. Each run records the machine's 1-minute
# load average when it started. Loopback only; every run is bounded.
#
# Usage: loadgen/compare.sh [RESULTS_FILE]
#   RESULTS_FILE   default: target/s9p-load-compare/results.md
# Environment (all optional):
#   CONNS=16 PIPELINE=8 DURATION=20 MSIZE=65536   the common settings
#   ROUNDS=2                                      interleaved rounds of those
#   BIG_MSIZE=1048600                             ours at 1 MiB + IOHDRSZ
#   MANY_CONNS=1000 MANY_DURATION=60              the many-connection run
#   DIODLOAD_THREADS=16 DIODLOAD_SECS=10          diodload's -n and -r
#   PORT_BASE=15640                               servers listen on BASE..BASE+2
#   UNPFS=/path/to/unpfs                          else `unpfs` on PATH, else
#                                                 target/unpfs/bin/unpfs, else
#                                                 `cargo install unpfs` there
#
# Figures on a shared or small machine are noisy: compare servers within
# one run of this script, never across runs.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CONNS=${CONNS:-16}
PIPELINE=${PIPELINE:-8}
DURATION=${DURATION:-20}
MSIZE=${MSIZE:-65536}
ROUNDS=${ROUNDS:-2}
BIG_MSIZE=${BIG_MSIZE:-1048600}
MANY_CONNS=${MANY_CONNS:-1000}
MANY_DURATION=${MANY_DURATION:-60}
DIODLOAD_THREADS=${DIODLOAD_THREADS:-16}
DIODLOAD_SECS=${DIODLOAD_SECS:-10}
PORT_BASE=${PORT_BASE:-15640}
OUTDIR=$ROOT/target/s9p-load-compare
RESULTS=${1:-$OUTDIR/results.md}
mkdir -p "$OUTDIR" "$(dirname "$RESULTS")"
JSONL=$OUTDIR/runs.jsonl
: >"$JSONL"
: >"$RESULTS"

say() { echo "$*" | tee -a "$RESULTS"; }
note() { say "- $*"; }

# --- build -----------------------------------------------------------------
echo "== building (release)"
cargo build --release -p s9p-load -q || exit 1
cargo build --release -p secure9p-transport --example memfs -q || exit 1
LOAD=$ROOT/target/release/s9p-load
MEMFS=$ROOT/target/release/examples/memfs

UNPFS=${UNPFS:-$(command -v unpfs || true)}
UNPFS_NOTE=""
if [ -z "$UNPFS" ] && [ -x "$ROOT/target/unpfs/bin/unpfs" ]; then
    UNPFS=$ROOT/target/unpfs/bin/unpfs
fi
if [ -z "$UNPFS" ]; then
    echo "== cargo install unpfs (into target/unpfs)"
    if cargo install unpfs --locked --root "$ROOT/target/unpfs" >"$OUTDIR/unpfs-install.log" 2>&1; then
        UNPFS=$ROOT/target/unpfs/bin/unpfs
    else
        UNPFS_NOTE="cargo install unpfs failed: $(tail -n 3 "$OUTDIR/unpfs-install.log" | tr '\n' ' ')"
        UNPFS=""
    fi
fi

# --- the shared export -------------------------------------------------------
DIR=$(mktemp -d /tmp/s9p-load-compare.XXXXXX)
head -c 4096 /dev/urandom >"$DIR/small"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$DIR/large"
chmod 755 "$DIR"
chmod 644 "$DIR/small" "$DIR/large"

SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=""
    fi
}
cleanup() {
    stop_server
    rm -rf "$DIR"
}
trap cleanup EXIT

# start_server NAME PORT CMD...: starts CMD in the background and waits for
# its port; returns non-zero (with a note) if it never listens.
start_server() {
    local name=$1 port=$2
    shift 2
    "$@" >"$OUTDIR/$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    note "$name did not start: $(tail -n 3 "$OUTDIR/$name.log" | tr '\n' ' ')"
    stop_server
    return 1
}

# load NAME PORT ANAME S9P-LOAD-ARGS...: one s9p-load run, recorded.
load() {
    local name=$1 port=$2 aname=$3
    shift 3
    local cmd=("$LOAD" --addr "127.0.0.1:$port" --aname "$aname" --small-file small
        --large-file large --server-pid "$SERVER_PID" --json "$@")
    echo "== $name: s9p-load $*"
    echo "    ${cmd[*]#$ROOT/}" >>"$OUTDIR/commands.txt"
    local json
    LOADAVG=$(cut -d' ' -f1 /proc/loadavg)
    json=$("${cmd[@]}" 2>>"$OUTDIR/s9p-load.stderr")
    if [ -z "$json" ]; then
        note "$name: s9p-load printed nothing (see s9p-load.stderr)"
        return
    fi
    echo "{\"server\":\"$name\",\"loadavg\":$LOADAVG,\"report\":$json}" >>"$JSONL"
}

# diodload_run NAME PORT [-g]: diodload against aname ctl.
diodload_run() {
    local name=$1 port=$2
    shift 2
    local out load1
    load1=$(cut -d' ' -f1 /proc/loadavg)
    echo "== $name: diodload $*"
    echo "    diodload -s 127.0.0.1:$port -n $DIODLOAD_THREADS -r $DIODLOAD_SECS $*" >>"$OUTDIR/commands.txt"
    out=$(diodload -s "127.0.0.1:$port" -n "$DIODLOAD_THREADS" -r "$DIODLOAD_SECS" "$@" 2>&1)
    local last err
    last=$(echo "$out" | tail -n 1)
    err=$(echo "$out" | grep -m 1 error)
    echo "| $name | ${*:-read/write} | $last${err:+ ($err)} | $load1 |" >>"$OUTDIR/diodload.md"
}

COMMON=(--connections "$CONNS" --pipeline "$PIPELINE" --duration "$DURATION" --msize "$MSIZE")
: >"$OUTDIR/commands.txt"
echo "| server | mode | result | load avg |" >"$OUTDIR/diodload.md"
echo "|---|---|---|---:|" >>"$OUTDIR/diodload.md"
P1=$PORT_BASE
P2=$((PORT_BASE + 1))
P3=$((PORT_BASE + 2))

MEMFS_CMD=("$MEMFS" --listen "127.0.0.1:$P1" --export /srv --dir "$DIR")
# -e ctl exports diod's synthetic zero/null tree, which diodload reads.
DIOD_CMD=(diod -f -n -l "127.0.0.1:$P2" -e "$DIR" -e ctl)
echo "    ${MEMFS_CMD[*]#$ROOT/}" >>"$OUTDIR/commands.txt"
HAVE_DIOD=""
if [ "$(id -u)" != 0 ]; then
    note "diod skipped: it must run as root"
elif ! command -v diod >/dev/null; then
    note "diod skipped: not installed (apt-get install diod)"
else
    HAVE_DIOD=1
    echo "    ${DIOD_CMD[*]}" >>"$OUTDIR/commands.txt"
fi
if [ -n "$UNPFS" ]; then
    UNPFS_CMD=("$UNPFS" "tcp!127.0.0.1!$P3" "$DIR")
    echo "    ${UNPFS_CMD[*]#$ROOT/}" >>"$OUTDIR/commands.txt"
else
    note "unpfs skipped: $UNPFS_NOTE"
fi

# --- the same load on each server, in interleaved rounds ----------------------
for _ in $(seq 1 "$ROUNDS"); do
    if start_server memfs "$P1" "${MEMFS_CMD[@]}"; then
        load memfs "$P1" /srv "${COMMON[@]}"
        stop_server
    fi
    if [ -n "$HAVE_DIOD" ] && start_server diod "$P2" "${DIOD_CMD[@]}"; then
        load diod "$P2" "$DIR" "${COMMON[@]}"
        stop_server
    fi
    if [ -n "$UNPFS" ] && start_server unpfs "$P3" "${UNPFS_CMD[@]}"; then
        load unpfs "$P3" / "${COMMON[@]}"
        stop_server
    fi
done

# --- ours at 1 MiB, and with many connections ----------------------------------
if start_server memfs "$P1" "${MEMFS_CMD[@]}"; then
    load memfs "$P1" /srv --connections "$CONNS" --pipeline "$PIPELINE" \
        --duration "$DURATION" --msize "$BIG_MSIZE"
    stop_server
fi
if start_server memfs "$P1" "${MEMFS_CMD[@]}"; then
    load memfs "$P1" /srv --connections "$MANY_CONNS" --pipeline "$PIPELINE" \
        --duration "$MANY_DURATION" --msize "$MSIZE"
    stop_server
fi

# --- diodload ------------------------------------------------------------------
if command -v diodload >/dev/null; then
    for mode in "" -g; do
        if start_server memfs "$P1" "${MEMFS_CMD[@]}"; then
            diodload_run memfs "$P1" $mode
            stop_server
        fi
        if [ -n "$HAVE_DIOD" ] && start_server diod "$P2" "${DIOD_CMD[@]}"; then
            diodload_run diod "$P2" $mode
            stop_server
        fi
    done
    if [ -n "$UNPFS" ] && start_server unpfs "$P3" "${UNPFS_CMD[@]}"; then
        diodload_run unpfs "$P3"
        stop_server
    fi
else
    note "diodload skipped: not installed (apt-get install diod)"
fi

# --- the results file --------------------------------------------------------
{
    echo
    echo "## s9p-load"
    echo
    echo "| server | msize | conns | pipeline | req/s | MB/s | p50 | p99 | max | errors | peak RSS (start; VmHWM) | load avg |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    python3 - "$JSONL" <<'PY'
import json, sys
def us(v):
    return f"{v} µs" if v < 1000 else f"{v / 1000:.2f} ms"
for line in open(sys.argv[1]):
    run = json.loads(line)
    r = run["report"]
    m = r.get("server_memory")
    mem = (f"{m['peak_rss_kib'] / 1024:.1f} MiB ({m['start_rss_kib'] / 1024:.1f}; "
           f"{m['hwm_kib'] / 1024:.1f})") if m else "-"
    if m and m.get("exited"):
        mem += ", EXITED"
    conns = str(r["connections"]) if r["connected"] == r["connections"] \
        else f"{r['connected']}/{r['connections']}"
    errors = r["errors_total"]
    if errors:
        errors = f"{errors}: " + "; ".join(f"{k} ×{n}" for k, n in r["errors"].items())
    print(f"| {run['server']} | {r['msize']} | {conns} | {r['pipeline']} | "
          f"{r['requests_per_sec']:.0f} | {r['mb_per_sec']:.1f} | {us(r['latency']['p50_us'])} | "
          f"{us(r['latency']['p99_us'])} | {us(r['latency']['max_us'])} | {errors} | {mem} | "
          f"{run['loadavg']} |")
PY
    echo
    echo "## diodload (aname ctl: read /zero, write /null; -g: getattr)"
    echo
    cat "$OUTDIR/diodload.md"
    echo
    echo "## Commands"
    echo
    echo '```'
    cat "$OUTDIR/commands.txt"
    echo '```'
    echo
    echo "## Raw reports (one JSON line per s9p-load run)"
    echo
    echo '```'
    cat "$JSONL"
    echo '```'
} >>"$RESULTS"

{
    echo
    echo "## Machine"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "- cpu: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "- memory: $(free -g | awk '/^Mem:/ {print $2}') GiB; kernel $(uname -r)"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- diod: $(dpkg-query -W -f '${Version}' diod 2>/dev/null || echo '?'); unpfs: ${UNPFS:-none}"
} >>"$RESULTS"

echo
cat "$RESULTS"
