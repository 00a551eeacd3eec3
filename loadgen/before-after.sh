#!/usr/bin/env bash
# A change to the server, measured: a server built at a base revision
# ("before") and from the working tree ("after"), beside Debian's
# diod, under the same s9p-load settings, in interleaved rounds (before,
# after, diod, before, ...) so that load from elsewhere on the machine falls
# on all three alike. Prints one row per run and the ratios per round.
#
# Usage: loadgen/before-after.sh BASE_REV
# Environment (all optional):
#   CONNS=4 PIPELINE=16 DURATION=10 MSIZE=65536 ROUNDS=3
#   MIX=small-read=50,getattr=50     4 KiB reads and getattrs
#   PORT_BASE=15740                  servers listen on BASE..BASE+2
#   SERVER=memfs                     which server: the transport's `memfs`
#                                    example (the Namespace engine), or the
#                                    FsServer binaries `s9p-memfs` (the files
#                                    loaded with --dir) or `s9p-export`
# diod needs root and `apt-get install diod`; without it the diod rows are
# left out. The base is built in a temporary git worktree with its own
# target directory (target/before-after/base); nothing else is touched.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${1:?usage: loadgen/before-after.sh BASE_REV}
CONNS=${CONNS:-4}
PIPELINE=${PIPELINE:-16}
DURATION=${DURATION:-10}
MSIZE=${MSIZE:-65536}
ROUNDS=${ROUNDS:-3}
MIX=${MIX:-small-read=50,getattr=50}
PORT_BASE=${PORT_BASE:-15740}
SERVER=${SERVER:-memfs}
case $SERVER in
    memfs) BUILD=(-p secure9p-transport --example memfs) BIN=examples/memfs ANAME=/srv ;;
    s9p-memfs) BUILD=(-p secure9p-fs --bin s9p-memfs) BIN=s9p-memfs ANAME=/ ;;
    s9p-export) BUILD=(-p secure9p-fs --bin s9p-export) BIN=s9p-export ANAME=/ ;;
    *) echo "SERVER is memfs, s9p-memfs or s9p-export, not $SERVER" >&2; exit 2 ;;
esac
# serve BINARY PORT DIR: the command line of one server.
serve() {
    case $SERVER in
        memfs) echo "$1 --listen 127.0.0.1:$2 --export /srv --dir $3" ;;
        s9p-memfs) echo "$1 --listen 127.0.0.1:$2 --dir $3" ;;
        s9p-export) echo "$1 $3 --listen 127.0.0.1:$2" ;;
    esac
}
OUT=$ROOT/target/before-after
mkdir -p "$OUT"
JSONL=$OUT/runs.jsonl
: >"$JSONL"

echo "== building after (working tree) and before ($BASE), release"
cargo build --release -q -p s9p-load || exit 1
cargo build --release -q "${BUILD[@]}" || exit 1
cp "target/release/$BIN" "$OUT/server-after"
WT=$(mktemp -d /tmp/before-after.XXXXXX)
git worktree add -q --detach "$WT" "$BASE" || exit 1
(cd "$WT" && CARGO_TARGET_DIR=$OUT/base cargo build --release -q "${BUILD[@]}")
ok=$?
git worktree remove --force "$WT"
[ $ok = 0 ] || exit 1
cp "$OUT/base/release/$BIN" "$OUT/server-before"
LOAD=$ROOT/target/release/s9p-load

DIR=$(mktemp -d /tmp/before-after-files.XXXXXX)
head -c 4096 /dev/urandom >"$DIR/small"
head -c $((1024 * 1024)) /dev/urandom >"$DIR/large"
chmod 755 "$DIR" && chmod 644 "$DIR/small" "$DIR/large"
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
trap 'stop; rm -rf "$DIR"' EXIT

# run NAME PORT ANAME CMD...: starts CMD, waits for its port, loads it once.
run() {
    local name=$1 port=$2 aname=$3
    shift 3
    "$@" >"$OUT/$name.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    local load1 json
    load1=$(cut -d' ' -f1 /proc/loadavg)
    json=$("$LOAD" --addr "127.0.0.1:$port" --aname "$aname" --small-file small \
        --large-file large --connections "$CONNS" --pipeline "$PIPELINE" \
        --duration "$DURATION" --msize "$MSIZE" --mix "$MIX" --server-pid "$PID" --json \
        2>>"$OUT/s9p-load.stderr")
    stop
    if [ -n "$json" ]; then
        echo "{\"server\":\"$name\",\"loadavg\":$load1,\"report\":$json}" >>"$JSONL"
    else
        echo "$name: s9p-load printed nothing (see $OUT/s9p-load.stderr)"
    fi
}

HAVE_DIOD=""
[ "$(id -u)" = 0 ] && command -v diod >/dev/null && HAVE_DIOD=1
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r"
    # shellcheck disable=SC2046 # the command line is split on purpose
    run before "$PORT_BASE" "$ANAME" $(serve "$OUT/server-before" "$PORT_BASE" "$DIR")
    # shellcheck disable=SC2046
    run after "$((PORT_BASE + 1))" "$ANAME" $(serve "$OUT/server-after" "$((PORT_BASE + 1))" "$DIR")
    if [ -n "$HAVE_DIOD" ]; then
        run diod "$((PORT_BASE + 2))" "$DIR" diod -f -n -l "127.0.0.1:$((PORT_BASE + 2))" -e "$DIR"
    fi
done

echo "$SERVER: base $BASE ($(git rev-parse --short "$BASE")), after: working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' + changes')"
echo "$CONNS connections x $PIPELINE in flight, ${DURATION} s, msize $MSIZE, mix $MIX, $ROUNDS rounds; $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
python3 - "$JSONL" <<'EOF'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
us = lambda v: f"{v / 1000:.2f} ms" if v >= 1000 else f"{v} µs"
print("| round | server | req/s | p50 | p99 | p99/p50 | errors | peak RSS | load avg |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
rounds, cur = [], {}
for x in runs:
    if x["server"] in cur:
        rounds.append(cur); cur = {}
    cur[x["server"]] = x["report"]
    r, lat = x["report"], x["report"]["latency"]
    mem = r.get("server_memory") or {}
    rss = f"{mem['peak_rss_kib'] / 1024:.1f} MiB" if "peak_rss_kib" in mem else "-"
    print(f"| {len(rounds) + 1} | {x['server']} | {r['requests_per_sec']:.0f} | {us(lat['p50_us'])} | "
          f"{us(lat['p99_us'])} | {lat['p99_us'] / max(lat['p50_us'], 1):.1f} | {r['errors_total']} | {rss} | {x['loadavg']} |")
rounds.append(cur)
print()
print("| round | after / before req/s | after / diod req/s | p99 after / before | p99 after / diod |")
print("|---:|---:|---:|---:|---:|")
for i, c in enumerate(rounds, 1):
    def ratio(a, b, f):
        return f"{f(c[a]) / f(c[b]):.2f}" if a in c and b in c else "-"
    rps = lambda r: r["requests_per_sec"]
    p99 = lambda r: r["latency"]["p99_us"]
    print(f"| {i} | {ratio('after', 'before', rps)} | {ratio('after', 'diod', rps)} | "
          f"{ratio('after', 'before', p99)} | {ratio('after', 'diod', p99)} |")
EOF
