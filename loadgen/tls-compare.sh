#!/usr/bin/env bash
# The cost of mutual TLS, measured: s9p-load against the memfs example over
# plain TCP and over mutual TLS 1.3 (rustls), side by side in one run, on
# one directory of a 4 KiB `small` and a 64 MiB `large` file:
#
#   small  CONNS connections x PIPELINE in flight, small-read=1,getattr=1, msize 65536
#   large  CONNS connections x PIPELINE in flight, large-read=1 (1 MiB reads), msize 1 MiB + 24
#
# in ROUNDS interleaved rounds (plain small, tls small, plain large, tls
# large, ...) so that load from elsewhere on the machine falls on both
# alike; every run gets a fresh server. Certificates come from `ninedoor
# cert`. Loopback only; every run is bounded.
#
# Usage: loadgen/tls-compare.sh [RESULTS_FILE]   (default target/s9p-load-tls/results.md)
# Environment: CONNS=4 PIPELINE=16 DURATION=10 ROUNDS=2 PORT=15650
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONNS=${CONNS:-4}
PIPELINE=${PIPELINE:-16}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-15650}
OUTDIR=$ROOT/target/s9p-load-tls
RESULTS=${1:-$OUTDIR/results.md}
mkdir -p "$OUTDIR" "$(dirname "$RESULTS")"
JSONL=$OUTDIR/runs.jsonl
: >"$JSONL"

echo "== building (release; ninedoor debug, for its cert command)"
cargo build --release -q -p s9p-load || exit 1
cargo build --release -q -p secure9p-transport --example memfs || exit 1
cargo build -q -p ninedoor --features std --bin ninedoor || exit 1
LOAD=$ROOT/target/release/s9p-load
MEMFS=$ROOT/target/release/examples/memfs

DIR=$(mktemp -d /tmp/s9p-load-tls.XXXXXX)
PKI=$DIR/pki
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=""
    fi
}
trap 'stop_server; rm -rf "$DIR"' EXIT
mkdir "$DIR/export"
head -c 4096 /dev/urandom >"$DIR/export/small"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$DIR/export/large"
for what in ca "server 127.0.0.1" "client load"; do
    # shellcheck disable=SC2086
    "$ROOT/target/debug/ninedoor" cert $what --dir "$PKI" >/dev/null || exit 1
done
SERVER_TLS=(--tls-cert "$PKI/127.0.0.1.pem" --tls-key "$PKI/127.0.0.1.key" --tls-ca "$PKI/ca.pem")
CLIENT_TLS=(--tls-cert "$PKI/load.pem" --tls-key "$PKI/load.key" --tls-ca "$PKI/ca.pem")

# run LINK SHAPE: a fresh memfs (plain or tls), one s9p-load run, recorded.
run() {
    local link=$1 shape=$2 server=() client=()
    if [ "$link" = tls ]; then server=("${SERVER_TLS[@]}"); client=("${CLIENT_TLS[@]}"); fi
    "$MEMFS" --listen "127.0.0.1:$PORT" --export /srv --dir "$DIR/export" "${server[@]}" \
        >"$OUTDIR/memfs.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        grep -q "serving 9P2000.L on tcp" "$OUTDIR/memfs.log" && break
        sleep 0.1
    done
    local load=(--connections "$CONNS" --pipeline "$PIPELINE" --duration "$DURATION")
    case $shape in
        small) load+=(--mix small-read=1,getattr=1 --msize 65536) ;;
        large) load+=(--mix large-read=1 --msize 1048600) ;;
    esac
    echo "== $link $shape: s9p-load ${load[*]}"
    local loadavg json
    loadavg=$(cut -d' ' -f1 /proc/loadavg)
    json=$("$LOAD" --addr "127.0.0.1:$PORT" --aname /srv --small-file small --large-file large \
        --server-pid "$SERVER_PID" --json "${load[@]}" "${client[@]}" 2>>"$OUTDIR/s9p-load.stderr")
    stop_server
    [ -n "$json" ] && echo "{\"link\":\"$link\",\"shape\":\"$shape\",\"loadavg\":$loadavg,\"report\":$json}" >>"$JSONL"
}

for _ in $(seq 1 "$ROUNDS"); do
    for shape in small large; do
        run plain "$shape"
        run tls "$shape"
    done
done

python3 - "$JSONL" "$CONNS" "$PIPELINE" "$DURATION" >"$RESULTS" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
conns, pipeline, duration = sys.argv[2:5]
def us(v):
    return f"{v} µs" if v < 1000 else f"{v / 1000:.2f} ms"
print(f"{conns} connections x {pipeline} in flight, {duration} s per run, runs in the order done.\n")
print("| link | load | msize | req/s | MB/s | p50 | p99 | errors | server peak RSS | load avg |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for run in runs:
    r = run["report"]
    m = r.get("server_memory")
    mem = f"{m['peak_rss_kib'] / 1024:.1f} MiB" if m else "-"
    print(f"| {run['link']} | {run['shape']} | {r['msize']} | {r['requests_per_sec']:.0f} | "
          f"{r['mb_per_sec']:.1f} | {us(r['latency']['p50_us'])} | {us(r['latency']['p99_us'])} | "
          f"{r['errors_total']} | {mem} | {run['loadavg']} |")
print("\n| load | metric | round | plain | tls | tls / plain |")
print("|---|---|---:|---:|---:|---:|")
for shape, metric in (("small", "requests_per_sec"), ("large", "mb_per_sec")):
    plain = [r["report"][metric] for r in runs if r["shape"] == shape and r["link"] == "plain"]
    tls = [r["report"][metric] for r in runs if r["shape"] == shape and r["link"] == "tls"]
    for i, (p, t) in enumerate(zip(plain, tls), 1):
        print(f"| {shape} | {metric} | {i} | {p:.1f} | {t:.1f} | {t / p:.2f} |")
    if plain and tls:
        p, t = sum(plain) / len(plain), sum(tls) / len(tls)
        print(f"| {shape} | {metric} | mean | {p:.1f} | {t:.1f} | **{t / p:.2f}** |")
PY
{
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo '```'
    cat "$JSONL"
    echo '```'
} >>"$RESULTS"
cat "$RESULTS"
