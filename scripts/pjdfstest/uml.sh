#!/usr/bin/env bash
# Boots Debian's user-mode Linux (package user-mode-linux) with the host's
# root as its root (hostfs), mounts a 9P2000.L server listening on the
# host's 127.0.0.1:PORT with the kernel's v9fs client (over slirp: the guest
# reaches the host's loopback at 10.0.2.2), runs COMMAND in the mount as
# root, and prints its output. Boots in a few seconds; no root needed on the
# host beyond what UML itself needs.
#
#   uml.sh PORT OPTS COMMAND...
#
# OPTS are extra mount options (e.g. "aname=/srv/x"), or "-" for none.
# Exit status: COMMAND's, 77 if UML cannot run here.
set -euo pipefail
port=$1 opts=$2; shift 2
command -v linux.uml >/dev/null || { echo "SKIP: user-mode-linux not installed"; exit 77; }
[ -x /usr/bin/slirp-fullbolt ] || { echo "SKIP: slirp not installed"; exit 77; }
mods=/usr/lib/uml/modules/$(linux.uml --version 2>/dev/null | tail -n1)
work=$(mktemp -d /tmp/s9p-uml.XXXXXX)
# pjdfstest switches to other users, who must reach the mount point.
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$*" >"$work/cmd"
mnt_opts="trans=tcp,port=$port,version=9p2000.L,msize=262144"
[ "$opts" = - ] || mnt_opts="$mnt_opts,$opts"
cat >"$work/init" <<INIT
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp $work/mnt-tmp 2>/dev/null
for m in fs/netfs/netfs fs/fscache/fscache net/9p/9pnet net/9p/9pnet_fd fs/9p/9p; do
  insmod $mods/kernel/\$m.ko 2>/dev/null
done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
mkdir -p $work/mnt
if mount -t 9p -o $mnt_opts 10.0.2.2 $work/mnt; then
  cd $work/mnt && sh -c "\$(cat $work/cmd)" >$work/out 2>&1
  echo \$? >$work/rc
  cd /
  umount $work/mnt
else
  echo "mount failed" >$work/out
  dmesg | tail -n 20 >>$work/out
  echo 1 >$work/rc
fi
sync
poweroff -f
INIT
chmod +x "$work/init"
mkdir -p "$work/mnt-tmp"
linux.uml mem=768M root=/dev/root rootfstype=hostfs rootflags=/ rw \
  init="$work/init" eth0=slirp,,/usr/bin/slirp-fullbolt con=null con0=null,fd:2 \
  >"$work/console" 2>&1 </dev/null || true
if [ ! -f "$work/rc" ]; then
  echo "uml.sh: the guest did not finish; console:" >&2
  tail -n 30 "$work/console" >&2
  exit 1
fi
cat "$work/out"
exit "$(cat "$work/rc")"
