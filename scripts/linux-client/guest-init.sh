#!/bin/sh
# /init (PID 1) of the throwaway guest that scripts/linux-client/run.sh boots.
#
# It runs under busybox ash.  Everything it prints goes to the serial console,
# which run.sh captures; the "=== ... ===" marker lines are the contract that
# run.sh and the Rust tests parse, so keep their spelling stable.
#
# Inputs, put into the initramfs by run.sh:
#   /etc/harness/modules   module files to insmod, in dependency order
#   /etc/harness/opts      extra 9p mount options (from --opts), may be empty
#   /etc/harness/guest.sh  the user's guest script
#   /etc/harness/debug     present when COHESIX_LINUX_DEBUG=1 (then the kernel
#                          also logs to the console at loglevel 7)

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp /mnt
# Make sure our output goes to the serial console even if the initramfs had
# no /dev/console node when the kernel started us.
exec </dev/null >/dev/console 2>&1

debug=
[ -e /etc/harness/debug ] && debug=1

# Keep kernel messages (9p errors, e1000 link notices) out of the captured
# output unless debugging; they are dumped from dmesg on failure instead.
[ -n "$debug" ] || echo 1 >/proc/sys/kernel/printk

halt_guest() {
    sync
    # -f: no init to hand over to; the kernel powers off ACPI-style and QEMU
    # (started with -no-reboot) exits.
    poweroff -f
    sleep 5
    echo "=== POWEROFF FAILED ==="
    while :; do sleep 1000; done
}

# Kernel messages logged since mark_dmesg (e.g. 9pnet errors about a failed
# mount), which the lowered console loglevel kept off the console.
dmesg_mark=0
mark_dmesg() { dmesg_mark=$(dmesg | wc -l); }
dump_dmesg() {
    echo "--- guest kernel log since boot setup ---"
    dmesg | tail -n +"$((dmesg_mark + 1))"
    echo "--- end kernel log ---"
}

echo "=== LINUX CLIENT kernel=$(uname -r) ==="
mark_dmesg

# Modules: run.sh resolved the order (dependencies first) and left out the
# ones that are built into this kernel.  A failing insmod is reported but not
# fatal: the mount below gives the definitive answer.
while read -r mod; do
    [ -n "$mod" ] || continue
    insmod "/lib/modules/$mod" || echo "=== INSMOD FAILED $mod ==="
done </etc/harness/modules

# Network: QEMU user-mode networking (slirp) with restrict=on; the only thing
# the guest can reach is 10.0.2.100:564, which QEMU forwards to the server on
# the host's loopback.
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -e /sys/class/net/eth0 ]; then
    echo "harness: no eth0 appeared (e1000 not loaded?)"
    echo "=== MOUNT FAILED rc=255 ==="
    dump_dmesg
    halt_guest
fi
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
# Wait for carrier so the first SYN of the 9P connection is not dropped
# (that would cost a 1 s TCP retransmit).
i=0
while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ "$i" -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done

# Base options first so that --opts can override any of them (the kernel's
# 9p option parser lets the last occurrence win).
opts="trans=tcp,port=564,version=9p2000.L"
extra=$(cat /etc/harness/opts 2>/dev/null || true)
[ -n "$extra" ] && opts="$opts,$extra"

echo "=== MOUNT -t 9p -o $opts 10.0.2.100 /mnt ==="
mark_dmesg
mount -t 9p -o "$opts" 10.0.2.100 /mnt
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "=== MOUNT FAILED rc=$rc ==="
    dump_dmesg
    halt_guest
fi
echo "=== MOUNT OK ==="

# The user's script: plain busybox sh, cwd /, stdin /dev/null, stderr merged
# into stdout so the order of lines is preserved on the console.  A copy of
# the output is kept only to see whether it ended with a newline: the END
# marker must start a line of its own.
export MNT=/mnt
echo "=== GUEST BEGIN ==="
{
    (cd / && sh /etc/harness/guest.sh) </dev/null 2>&1
    echo $? >/tmp/.guest-rc
} | tee /tmp/.guest-out
rc=$(cat /tmp/.guest-rc 2>/dev/null || echo 255)
[ -n "$(tail -c 1 /tmp/.guest-out)" ] && echo
rm -f /tmp/.guest-out
echo "=== GUEST END rc=$rc ==="

cd /
umount /mnt
echo "=== UMOUNT rc=$? ==="

halt_guest
