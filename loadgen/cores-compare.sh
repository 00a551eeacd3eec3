#!/usr/bin/env bash
# The memfs example server pinned (taskset) to fewer and to more cores,
# under the same s9p-load run, in interleaved rounds: how its throughput
# grows with cores. The load generator runs on cores of its own
# (LOAD_CPUS) where the machine has them; on a 2-core machine it has to
# share one with the server's second core, which this script reports but
# cannot avoid.
#
# Usage: loadgen/cores-compare.sh
# Environment (all optional):
#   FEW=0 MANY=0-1                   the server's cores, taskset -c lists
#   LOAD_CPUS=1                      the generator's cores
#   CONNS=4 PIPELINE=16 DURATION=8 MSIZE=65536 ROUNDS=3
#   MIX=small-read=50,getattr=50     4 KiB reads and getattrs
#   PORT=15760
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=loadgen/lib.sh
. loadgen/lib.sh
FEW=${FEW:-0}
MANY=${MANY:-0-1}
LOAD_CPUS=${LOAD_CPUS:-1}
CONNS=${CONNS:-4}
PIPELINE=${PIPELINE:-16}
DURATION=${DURATION:-8}
MSIZE=${MSIZE:-65536}
ROUNDS=${ROUNDS:-3}
MIX=${MIX:-small-read=50,getattr=50}
PORT=${PORT:-15760}
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
build_load_and_memfs
FILES=$(make_files cores)
trap 'rm -rf "$FILES"' EXIT

# CPUS: one run of the server on those cores; prints "req/s p99_us".
run() {
    taskset -c "$1" "$MEMFS" --listen "127.0.0.1:$PORT" --export /srv --dir "$FILES" >/dev/null 2>&1 &
    local pid=$!
    wait_port "$PORT" || { echo "memfs did not start" >&2; kill "$pid"; exit 1; }
    local report
    report=$(taskset -c "$LOAD_CPUS" "$LOAD" --addr "127.0.0.1:$PORT" --aname /srv \
        --small-file small --large-file large --json --connections "$CONNS" \
        --pipeline "$PIPELINE" --duration "$DURATION" --mix "$MIX" --msize "$MSIZE")
    kill "$pid"
    wait "$pid" 2>/dev/null
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(round(r["requests_per_sec"]), r["latency"]["p99_us"], r["errors_total"])' "$report"
}

echo "== server on cores $FEW vs $MANY, s9p-load on $LOAD_CPUS ($(nproc) cores here): $CONNS x $PIPELINE, $MIX, ${DURATION}s"
printf '%-6s %-8s %12s %9s %7s\n' round cores req/s p99_us errors
ratios=()
for round in $(seq 1 "$ROUNDS"); do
    read -r few_rps few_p99 few_err <<<"$(run "$FEW")"
    printf '%-6s %-8s %12s %9s %7s\n' "$round" "$FEW" "$few_rps" "$few_p99" "$few_err"
    read -r many_rps many_p99 many_err <<<"$(run "$MANY")"
    printf '%-6s %-8s %12s %9s %7s\n' "$round" "$MANY" "$many_rps" "$many_p99" "$many_err"
    ratios+=("$(python3 -c "print(round($many_rps / $few_rps, 2))")")
done
echo "== req/s on $MANY / on $FEW, per round: ${ratios[*]}"
