#!/usr/bin/env bash
# Fair service, measured: what a bulk neighbour does to other connections'
# latency. Against one memfs example server, in each round:
#
#   alone     SMALL_CONNS connections x PIPELINE small requests
#             (small-read=1,getattr=1, msize 65536), DURATION s;
#   neighbour the same load again while a second s9p-load keeps one
#             connection x PIPELINE large reads in flight (msize BULK_MSIZE,
#             1 MiB + 24 by default: reads of 1 MiB); with NEIGHBOR=burst
#             instead one connection x BURST_PIPELINE (128) getattrs in
#             flight (a burst of small requests, msize 65536).
#
# and prints the small load's p50/p99 in both and their ratio (how much the
# bulk neighbour inflates the others' tail), with the neighbour's MB/s.
# BASELINE=path/to/an/older/memfs runs the same rounds against that build
# too, interleaved (before/after in one run). DIOD=1 adds Debian's diod
# (run as root) as a peer; diod caps msize at 65536, so BULK_MSIZE is then
# 65536 for every server (the neighbour's reads are 64 KiB). Loopback only;
# every run is bounded.
#
# Usage: loadgen/neighbor-compare.sh
# Environment (all optional): SMALL_CONNS=3 PIPELINE=16 DURATION=8 ROUNDS=3 PORT=15780
#   BULK_MSIZE=1048600 BASELINE= DIOD= NEIGHBOR=bulk BURST_PIPELINE=128
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMALL_CONNS=${SMALL_CONNS:-3}
PIPELINE=${PIPELINE:-16}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-15780}
BULK_MSIZE=${BULK_MSIZE:-1048600}
DIOD=${DIOD:-}
NEIGHBOR=${NEIGHBOR:-bulk}
BURST_PIPELINE=${BURST_PIPELINE:-128}
case $NEIGHBOR in bulk | burst) ;; *) echo "neighbor-compare: NEIGHBOR is bulk or burst"; exit 1 ;; esac
if [ -n "$DIOD" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "neighbor-compare: diod must run as root"; exit 1; }
    command -v diod >/dev/null || { echo "neighbor-compare: needs diod (apt-get install diod)"; exit 1; }
    BULK_MSIZE=65536
fi
OUT=$ROOT/target/neighbor-compare
mkdir -p "$OUT"
JSONL=$OUT/runs.jsonl
: >"$JSONL"

# shellcheck source=loadgen/lib.sh
. "$ROOT/loadgen/lib.sh"
build_load_and_memfs
DIR=$(make_files neighbor-compare) || exit 1
PID=""
BULK=""
stop() {
    [ -n "$BULK" ] && kill "$BULK" 2>/dev/null && wait "$BULK" 2>/dev/null
    BULK=""
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    PID=""
}
trap 'stop; rm -rf "$DIR"' EXIT

small() {  # ANAME: the small load's JSON report
    "$LOAD" --addr "127.0.0.1:$PORT" --aname "$1" --small-file small \
        --connections "$SMALL_CONNS" --pipeline "$PIPELINE" --duration "$DURATION" \
        --msize 65536 --mix small-read=1,getattr=1 --json 2>>"$OUT/s9p-load.stderr"
}

for r in $(seq 1 "$ROUNDS"); do
    for peer in memfs ${BASELINE:+before} ${DIOD:+diod}; do
        echo "== round $r: $peer"
        aname=/srv
        case $peer in
            memfs) "$MEMFS" --listen "127.0.0.1:$PORT" --export /srv --dir "$DIR" >"$OUT/$peer.log" 2>&1 & ;;
            before) "$BASELINE" --listen "127.0.0.1:$PORT" --export /srv --dir "$DIR" >"$OUT/$peer.log" 2>&1 & ;;
            diod) aname=$DIR; diod -f -n -l "127.0.0.1:$PORT" -e "$DIR" >"$OUT/$peer.log" 2>&1 & ;;
        esac
        PID=$!
        wait_port "$PORT" || { echo "neighbor-compare: $peer did not listen"; exit 1; }
        alone=$(small "$aname")
        # The neighbour runs a little longer than the small load on both
        # sides, so the small load never runs without it.
        if [ "$NEIGHBOR" = bulk ]; then
            neighbour=(--large-file large --pipeline "$PIPELINE" --msize "$BULK_MSIZE" --mix large-read=1)
        else
            neighbour=(--small-file small --pipeline "$BURST_PIPELINE" --msize 65536 --mix getattr=1)
        fi
        "$LOAD" --addr "127.0.0.1:$PORT" --aname "$aname" "${neighbour[@]}" \
            --connections 1 --duration $((DURATION + 2)) --json >"$OUT/bulk.json" 2>>"$OUT/s9p-load.stderr" &
        BULK=$!
        sleep 1
        with=$(small "$aname")
        wait "$BULK"
        BULK=""
        stop
        python3 - "$r" "$peer" "$alone" "$with" "$OUT/bulk.json" >>"$JSONL" <<'EOF'
import json, sys
r, peer, alone, with_, bulk = sys.argv[1:6]
a, w = json.loads(alone), json.loads(with_)
b = json.load(open(bulk))
print(json.dumps({"round": int(r), "peer": peer,
    "alone": {"rps": a["requests_per_sec"], "p50": a["latency"]["p50_us"], "p99": a["latency"]["p99_us"]},
    "with": {"rps": w["requests_per_sec"], "p50": w["latency"]["p50_us"], "p99": w["latency"]["p99_us"]},
    "bulk_mb_per_sec": b["mb_per_sec"], "bulk_rps": b["requests_per_sec"]}))
EOF
    done
done

if [ "$NEIGHBOR" = bulk ]; then what="$PIPELINE reads at msize $BULK_MSIZE"; else what="$BURST_PIPELINE getattrs"; fi
echo "$SMALL_CONNS small connections x $PIPELINE in flight, alone and beside 1 connection x $what; ${DURATION} s, $ROUNDS rounds; $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
python3 - "$JSONL" <<'EOF'
import json, sys
print("| round | server | small req/s alone | p50 / p99 alone | small req/s beside neighbour | p50 / p99 beside neighbour | p99 beside / alone | neighbour MB/s | neighbour req/s |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
us = lambda v: f"{v} µs" if v < 1000 else f"{v / 1000:.2f} ms"
for l in open(sys.argv[1]):
    x = json.loads(l)
    a, w = x["alone"], x["with"]
    print(f"| {x['round']} | {x['peer']} | {a['rps']:,.0f} | {us(a['p50'])} / {us(a['p99'])} | {w['rps']:,.0f} | "
          f"{us(w['p50'])} / {us(w['p99'])} | {w['p99'] / a['p99']:.2f} | {x['bulk_mb_per_sec']:,.0f} | {x['bulk_rps']:,.0f} |")
EOF
