#!/usr/bin/env bash
# 1 MiB reads against raw loopback bulk, side by side: iperf3 (Debian's
# `iperf3`, 1 MiB writes, one stream and CONNS streams over 127.0.0.1; the
# better of the two counts) and the memfs example
# server under s9p-load (CONNS connections x PIPELINE reads of 1 MiB in
# flight, msize 1 MiB + 24), in interleaved rounds (iperf3, memfs, iperf3,
# ...) so that load from elsewhere falls on both alike. Prints one row per
# round and the ratio: memfs MB/s over the better iperf3's.
#
# BASELINE=path/to/an/older/memfs adds that build as a third peer in each
# round (its row: "before"), for a before/after in the same run.
#
# Usage: loadgen/bulk-compare.sh
# Environment (all optional): CONNS=4 PIPELINE=16 DURATION=8 ROUNDS=3 PORT_BASE=15760 BASELINE=
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONNS=${CONNS:-4}
PIPELINE=${PIPELINE:-16}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
PORT_BASE=${PORT_BASE:-15760}
MSIZE=$((1024 * 1024 + 24))
OUT=$ROOT/target/bulk-compare
mkdir -p "$OUT"
JSONL=$OUT/runs.jsonl
: >"$JSONL"
command -v iperf3 >/dev/null || { echo "bulk-compare: needs iperf3 (apt-get install iperf3)"; exit 1; }

# shellcheck source=loadgen/lib.sh
. "$ROOT/loadgen/lib.sh"
build_load_and_memfs
DIR=$(make_files bulk-compare) || exit 1
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
trap 'stop; rm -rf "$DIR"' EXIT

for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r"
    # Raw bulk two ways, 1 MiB writes like the replies: one stream, and
    # CONNS streams; the better of the two is what memfs is held to.
    # (No port probe here: iperf3 would take the probe for its client.)
    for streams in 1 "$CONNS"; do
        iperf3 -s -p "$PORT_BASE" >"$OUT/iperf3-server.log" 2>&1 &
        PID=$!
        sleep 0.5
        json=$(iperf3 -c 127.0.0.1 -p "$PORT_BASE" -P "$streams" -l 1M -t "$DURATION" -J 2>>"$OUT/iperf3.stderr")
        stop
        mbs=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e6)')
        echo "{\"round\":$r,\"peer\":\"iperf3-P$streams\",\"mb_per_sec\":${mbs:-0}}" >>"$JSONL"
    done

    for peer in memfs ${BASELINE:+before}; do
        bin=$MEMFS
        [ "$peer" = before ] && bin=$BASELINE
        "$bin" --listen "127.0.0.1:$((PORT_BASE + 1))" --export /srv --dir "$DIR" >"$OUT/$peer.log" 2>&1 &
        PID=$!
        wait_port "$((PORT_BASE + 1))"
        json=$("$LOAD" --addr "127.0.0.1:$((PORT_BASE + 1))" --aname /srv --large-file large \
            --connections "$CONNS" --pipeline "$PIPELINE" --duration "$DURATION" --msize "$MSIZE" \
            --mix large-read=1 --server-pid "$PID" --json 2>>"$OUT/s9p-load.stderr")
        stop
        mbs=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["mb_per_sec"])')
        echo "{\"round\":$r,\"peer\":\"$peer\",\"mb_per_sec\":$mbs}" >>"$JSONL"
    done
done

echo "$CONNS streams / connections ($PIPELINE x 1 MiB reads in flight each), ${DURATION} s, $ROUNDS rounds; $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
python3 - "$JSONL" <<'EOF'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for x in runs:
    by.setdefault(x["round"], {})[x["peer"]] = x["mb_per_sec"]
peers = sorted({p for c in by.values() for p in c if p.startswith("iperf3")}, key=lambda p: int(p[8:]))
before = any("before" in c for c in by.values())
extra = " before MB/s | before / best iperf3 | memfs / before |" if before else ""
print("| round | " + " | ".join(f"iperf3 -P {p[8:]} MB/s" for p in peers) + " | memfs 1 MiB reads MB/s | memfs / best iperf3 |" + extra)
print("|---:|" + "---:|" * (len(peers) + 2 + (3 if before else 0)))
ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
for r, c in sorted(by.items()):
    best = max((c.get(p, 0) for p in peers), default=0)
    m, b = c.get("memfs", 0), c.get("before", 0)
    row = f"| {r} | " + " | ".join(f"{c.get(p, 0):,.0f}" for p in peers) + f" | {m:,.0f} | {ratio(m, best)} |"
    if before:
        row += f" {b:,.0f} | {ratio(b, best)} | {ratio(m, b)} |"
    print(row)
EOF
