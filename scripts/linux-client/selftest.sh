#!/usr/bin/env bash
# Self-test of run.sh against a known-good 9P2000.L server (diod): export a
# temp directory on 127.0.0.1, let the Linux guest list/read/stat/append/write
# through it, and check both what the guest saw and what landed on the host.
# Exit 0 PASS, 77 SKIP (no diod/QEMU/kernel here), 1 FAIL.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE

fail() { echo "FAIL: $*"; exit 1; }

if ! command -v diod >/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null && [[ ${COHESIX_LINUX_NO_INSTALL:-0} != 1 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends diod >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends diod >/dev/null 2>&1; } ||
            true
    fi
    command -v diod >/dev/null || { echo "SKIP: diod is not installed"; exit 77; }
fi
# diod without -N/-S switches to the attaching user's uid: needs root.
[[ $EUID -eq 0 ]] || { echo "SKIP: the diod self-test needs root"; exit 77; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cohesix-linux-selftest.XXXXXX")
diod_pid=''
cleanup() {
    [[ -z $diod_pid ]] || { kill "$diod_pid" 2>/dev/null || true; wait "$diod_pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

export_dir="$work/export"
mkdir -p "$export_dir/dir"
echo "hello from the host" >"$export_dir/hello.txt"
printf 'first\n' >"$export_dir/f"
echo nested >"$export_dir/dir/nested.txt"
chmod -R a+rwX "$export_dir"

# Is something listening on 127.0.0.1:$1?  (/proc/net/tcp: no ss/netstat needed)
listening() {
    grep -qi "0100007F:$(printf '%04X' "$1") 00000000:0000 0A" /proc/net/tcp
}
port=''
for _ in 1 2 3 4 5; do
    p=$((20000 + RANDOM % 40000))
    listening "$p" && continue
    diod -f -n -l "127.0.0.1:$p" -e "$export_dir" >"$work/diod.log" 2>&1 &
    diod_pid=$!
    for _ in $(seq 50); do
        listening "$p" && break
        kill -0 "$diod_pid" 2>/dev/null || break
        sleep 0.1
    done
    if listening "$p" && kill -0 "$diod_pid" 2>/dev/null; then
        port=$p
        break
    fi
    kill "$diod_pid" 2>/dev/null || true
    wait "$diod_pid" 2>/dev/null || true
    diod_pid=''
done
[[ -n $port ]] || fail "could not start diod (log: $(cat "$work/diod.log"))"

cat >"$work/guest.sh" <<'EOF'
set -e
ls -la /mnt
cat /mnt/hello.txt
cat /mnt/dir/nested.txt
stat -c 'stat %n size=%s mode=%a' /mnt/hello.txt
echo x >> /mnt/f
cat /mnt/f
dd if=/dev/urandom of=/tmp/big bs=1M count=4 2>/dev/null
echo "src $(sha256sum /tmp/big | cut -d' ' -f1)"
cp /tmp/big /mnt/big.bin
sync
echo 3 > /proc/sys/vm/drop_caches
echo "readback $(sha256sum /mnt/big.bin | cut -d' ' -f1)"
grep ' /mnt 9p ' /proc/mounts
EOF

echo "selftest: diod on 127.0.0.1:$port exporting $export_dir"
rc=0
"$HERE/run.sh" --port "$port" --opts "aname=$export_dir,msize=524288,uname=root" --timeout 180 "$work/guest.sh" |
    tee "$work/out" || rc=$?
((rc != 77)) || exit 77
((rc == 0)) || fail "run.sh exited with status $rc"

out="$work/out"
grep -qx '=== MOUNT OK ===' "$out" || fail "mount failed"
grep -qx '=== GUEST END rc=0 ===' "$out" || fail "guest script failed"
grep -qx 'hello from the host' "$out" || fail "cat of hello.txt"
grep -qx 'stat /mnt/hello.txt size=20 mode=666' "$out" || fail "stat of hello.txt"
[[ $(cat "$export_dir/f") == $'first\nx' ]] || fail "append did not reach the host: $(cat "$export_dir/f")"
src=$(sed -n 's/^src //p' "$out")
back=$(sed -n 's/^readback //p' "$out")
host=$(sha256sum "$export_dir/big.bin" | cut -d' ' -f1)
[[ -n $src && $src == "$back" && $src == "$host" ]] || fail "big file: guest $src, read back $back, host $host"
echo "PASS: listing, cat, stat, append and a 4 MiB write/read round trip through v9fs and diod"
