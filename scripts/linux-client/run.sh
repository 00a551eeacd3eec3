#!/usr/bin/env bash
# Boot a real Linux kernel under QEMU whose in-kernel 9P client (v9fs) mounts a
# 9P2000.L server listening on the HOST's loopback, run a guest shell script
# against the mount, and print what the guest printed.
#
#   run.sh --port PORT [--opts 'aname=...,msize=...'] [--timeout SECS] GUEST_SCRIPT
#   run.sh --prepare
#
# See README.md in this directory for the output format, exit codes and
# environment variables.  Exit codes: 0 the guest ran to completion (its own
# status is in the "=== GUEST END rc=N ===" line), 77 SKIP (no QEMU/kernel
# here), 124 timeout, 2 usage error, 1 anything else.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly CACHE="${COHESIX_LINUX_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/cohesix/linux-client}"
readonly INIT_SCRIPT="$HERE/guest-init.sh"

# What the guest needs, in load order; their dependencies are resolved from the
# modules' own modinfo and loaded first, built-in ones are skipped.
readonly WANT_MODULES=(netfs fscache 9pnet 9pnet_fd 9p e1000)
# The guest sees the server at 10.0.2.100:564; QEMU forwards that one address
# to 127.0.0.1:PORT on the host (see guest-init.sh for the guest side).
readonly SERVER_ADDR=10.0.2.100
readonly SERVER_GUEST_PORT=564
readonly DEFAULT_TIMEOUT=120

usage() {
    cat >&2 <<'EOF'
usage: run.sh --port PORT [--opts 'aname=/srv/x,msize=524288,uname=root'] [--timeout SECS] GUEST_SCRIPT
       run.sh --prepare
GUEST_SCRIPT may be '-' to read the script from stdin.  See README.md.
EOF
    exit 2
}

say() { echo "run.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

# ---------------------------------------------------------------------------
# Host packages
# ---------------------------------------------------------------------------

APT_LOG=/dev/null

# Install Debian packages if we are allowed and able to; never fatal by itself.
apt_install() {
    [[ ${COHESIX_LINUX_NO_INSTALL:-0} != 1 ]] || return 1
    [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null || return 1
    say "installing $* (log: $APT_LOG)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "$@" >>"$APT_LOG" 2>&1 && return 0
    # Most likely stale or missing package lists: refresh once and retry.
    apt-get update >>"$APT_LOG" 2>&1 || return 1
    apt-get install -y --no-install-recommends "$@" >>"$APT_LOG" 2>&1
}

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# The initramfs needs a statically linked busybox: there are no shared
# libraries in the guest.  Debian's busybox-static ships it as /bin/busybox.
busybox_path() {
    if [[ -n ${COHESIX_LINUX_BUSYBOX:-} ]]; then
        echo "$COHESIX_LINUX_BUSYBOX"
    elif pkg_installed busybox-static; then
        echo /bin/busybox
    fi
}

ensure_host_tools() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    command -v cpio >/dev/null || missing+=(cpio)
    command -v gzip >/dev/null || missing+=(gzip)
    [[ -n $(busybox_path) ]] || missing+=(busybox-static)
    if ((${#missing[@]})); then
        apt_install "${missing[@]}" ||
            skip "missing host packages (${missing[*]}) and cannot install them (need root + apt-get + network; log: $APT_LOG)"
    fi
    qemu-system-x86_64 -version >/dev/null 2>&1 || skip "qemu-system-x86_64 is installed but does not run"
}

# ---------------------------------------------------------------------------
# Kernel + modules cache
#
# $CACHE/current          name of the kernel directory runs use
# $CACHE/<pkg>_<version>/ vmlinuz, kver, config, modules/*.ko (decompressed),
#                         modules.load (insmod order), modules.note, stamp,
#                         initramfs-base-<hash>.cpio.gz
# ---------------------------------------------------------------------------

kernel_stamp() { printf 'modules=%s\n' "${WANT_MODULES[*]}"; }

kernel_dir_ok() {
    [[ -f $1/stamp && -f $1/vmlinuz && -f $1/modules.load ]] &&
        [[ $(sed -n 's/^modules=//p' "$1/stamp") == "${WANT_MODULES[*]}" ]]
}

# Name of the current Debian kernel image package, e.g. linux-image-6.1.0-56-amd64.
resolve_kernel_pkg() {
    if [[ -n ${COHESIX_LINUX_KERNEL_PKG:-} ]]; then
        echo "$COHESIX_LINUX_KERNEL_PKG"
        return
    fi
    # (awk reads to the end rather than exit early: no SIGPIPE under pipefail)
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '!found && $1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; found = 1 }' || true
}

pkg_version() {
    apt-cache show --no-all-versions "$1" 2>/dev/null | awk '!found && $1 == "Version:" { print $2; found = 1 }' || true
}

decompress_module() { # src dst
    case $1 in
    *.ko) cp "$1" "$2" ;;
    *.ko.xz)
        command -v xz >/dev/null || apt_install xz-utils || return 1
        xz -dc "$1" >"$2"
        ;;
    *.ko.zst)
        command -v zstd >/dev/null || apt_install zstd || return 1
        zstd -qdc "$1" >"$2"
        ;;
    *.ko.gz) gzip -dc "$1" >"$2" ;;
    *) return 1 ;;
    esac
}

# Copy WANT_MODULES and everything they depend on out of an unpacked
# lib/modules/<kver> tree into $2/modules, writing $2/modules.load in
# dependency order.  The Debian package has no modules.dep (depmod runs at
# install time), so dependencies come from each module's .modinfo "depends=".
collect_modules() { # moddir outdir
    local moddir=$1 out=$2 f n
    declare -gA MOD_FILE=() MOD_BUILTIN=() MOD_SEEN=()
    mkdir -p "$out/modules"
    : >"$out/modules.load"
    : >"$out/modules.note"
    while IFS= read -r -d '' f; do
        n=${f##*/}
        n=${n%%.ko*}
        MOD_FILE[${n//-/_}]=$f
    done < <(find "$moddir/kernel" -name '*.ko*' -print0)
    if [[ -f $moddir/modules.builtin ]]; then
        while IFS= read -r f; do
            n=${f##*/}
            n=${n%.ko}
            MOD_BUILTIN[${n//-/_}]=1
        done <"$moddir/modules.builtin"
    fi
    for n in "${WANT_MODULES[@]}"; do
        add_module "$n" "$out"
    done
}

add_module() { # name outdir
    local n=${1//-/_} out=$2 src deps d
    [[ -z ${MOD_SEEN[$n]:-} ]] || return 0
    MOD_SEEN[$n]=1
    if [[ -n ${MOD_BUILTIN[$n]:-} ]]; then
        echo "built-in: $n" >>"$out/modules.note"
        return 0
    fi
    src=${MOD_FILE[$n]:-}
    if [[ -z $src ]]; then
        # Not fatal: the guest's mount will tell whether it mattered.
        echo "missing: $n" >>"$out/modules.note"
        say "warning: kernel has no module '$n' (neither built-in nor .ko); skipping it"
        return 0
    fi
    decompress_module "$src" "$out/modules/$n.ko" || die "cannot decompress $src"
    deps=$(tr '\0' '\n' <"$out/modules/$n.ko" | sed -n 's/^depends=//p')
    deps=${deps%%$'\n'*}
    for d in ${deps//,/ }; do
        add_module "$d" "$out"
    done
    echo "$n.ko" >>"$out/modules.load"
    echo "module: $n${deps:+ (depends: $deps)}" >>"$out/modules.note"
}

# Download the kernel package with apt (the only network access we do) and
# keep just what the guest needs.  Caller holds the cache lock.
fetch_kernel() { # pkg version kdir
    local pkg=$1 ver=$2 kdir=$3 work deb vmlinuz kver moddir
    work=$(mktemp -d "$CACHE/.fetch.XXXXXX")
    # shellcheck disable=SC2064  # expand $work now; the trap removes itself
    trap "rm -rf '$work'; trap - RETURN" RETURN
    say "downloading $pkg=$ver (log: $APT_LOG)"
    if ! (cd "$work" && apt-get download "$pkg=$ver") >>"$APT_LOG" 2>&1; then
        apt-get update >>"$APT_LOG" 2>&1 || true
        (cd "$work" && apt-get download "$pkg=$ver") >>"$APT_LOG" 2>&1 || return 1
    fi
    deb=("$work"/*.deb)
    [[ -f ${deb[0]} ]] || return 1
    dpkg -x "${deb[0]}" "$work/x" || return 1
    vmlinuz=("$work"/x/boot/vmlinuz-*)
    [[ -f ${vmlinuz[0]} ]] || { say "no vmlinuz in ${deb[0]}"; return 1; }
    kver=${vmlinuz[0]##*/vmlinuz-}
    # Older packages use /lib/modules, merged-/usr ones /usr/lib/modules.
    for moddir in "$work/x/lib/modules/$kver" "$work/x/usr/lib/modules/$kver" ""; do
        [[ -z $moddir || -d $moddir ]] && break
    done
    [[ -n $moddir ]] || { say "no modules for $kver in ${deb[0]}"; return 1; }

    mkdir -p "$work/k"
    cp "${vmlinuz[0]}" "$work/k/vmlinuz"
    cp "$work/x/boot/config-$kver" "$work/k/config" 2>/dev/null || true
    echo "$kver" >"$work/k/kver"
    collect_modules "$moddir" "$work/k"
    { echo "pkg=$pkg"; echo "version=$ver"; kernel_stamp; } >"$work/k/stamp"
    rm -rf "$kdir"
    mv "$work/k" "$kdir"
}

# Fill the cache for the current Debian kernel (used by --prepare, and by a
# normal run when the cache is empty).  Caller holds the cache lock.
prepare_kernel() {
    local pkg ver name
    if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
        skip "no kernel cached in $CACHE and no apt-get/dpkg to fetch one"
    fi
    [[ $(dpkg --print-architecture) == amd64 ]] ||
        skip "fetching the kernel needs an amd64 Debian host (or a pre-filled $CACHE)"
    pkg=$(resolve_kernel_pkg)
    if [[ -z $pkg ]] && [[ $EUID -eq 0 ]]; then
        apt-get update >>"$APT_LOG" 2>&1 || true
        pkg=$(resolve_kernel_pkg)
    fi
    [[ -n $pkg ]] || skip "cannot find Debian's current kernel package (apt-cache depends linux-image-amd64)"
    ver=$(pkg_version "$pkg")
    [[ -n $ver ]] || skip "apt knows no version of $pkg"
    name="${pkg}_${ver}"
    if ! kernel_dir_ok "$CACHE/$name"; then
        fetch_kernel "$pkg" "$ver" "$CACHE/$name" || skip "cannot download/unpack $pkg=$ver (log: $APT_LOG)"
    fi
    echo "$name" >"$CACHE/current.tmp"
    mv "$CACHE/current.tmp" "$CACHE/current"
}

# The busybox + modules + /init part of the initramfs, shared by all runs of
# the same kernel; keyed by the inputs so editing guest-init.sh rebuilds it.
base_initramfs_path() { # kdir busybox
    local key
    key=$({ sha256sum "$INIT_SCRIPT" "$2" "$1/stamp" "$1/modules.load"; } | sha256sum | cut -c1-16)
    echo "$1/initramfs-base-$key.cpio.gz"
}

build_base_initramfs() { # kdir busybox out
    local kdir=$1 bb=$2 out=$3 st applet
    st=$(mktemp -d "$CACHE/.initramfs.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$st'; trap - RETURN" RETURN
    chmod 755 "$st" # this becomes the guest's /
    mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,mnt,tmp,root,etc/harness,lib/modules}
    cp "$bb" "$st/bin/busybox"
    chmod 755 "$st/bin/busybox"
    # Symlink every applet so guest scripts can call ls, stat, sha256sum, ...
    while IFS= read -r applet; do
        [[ -e $st/$applet || -L $st/$applet ]] || ln -s /bin/busybox "$st/$applet"
    done < <("$bb" --list-full)
    install -m 755 "$INIT_SCRIPT" "$st/init"
    cp "$kdir"/modules/*.ko "$st/lib/modules/" 2>/dev/null || true
    cp "$kdir/modules.load" "$st/etc/harness/modules"
    (cd "$st" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$out.tmp.$$"
    mv "$out.tmp.$$" "$out"
}

# Make sure tools, kernel and base initramfs exist; sets KDIR and BASE_INITRAMFS.
ensure_ready() { # force_refresh(0/1)
    local force=$1 bb name
    mkdir -p "$CACHE" || skip "cannot create cache directory $CACHE"
    APT_LOG="$CACHE/apt.log"
    ensure_host_tools
    bb=$(busybox_path)
    [[ -x $bb ]] || skip "no static busybox (install busybox-static or set COHESIX_LINUX_BUSYBOX)"

    if [[ ! -w $CACHE ]]; then
        # E.g. a cache filled by root with --prepare, used by another user:
        # fine as long as nothing needs to be added to it.
        name=$(cat "$CACHE/current" 2>/dev/null || true)
        KDIR="$CACHE/$name"
        BASE_INITRAMFS=$(base_initramfs_path "$KDIR" "$bb")
        ((force)) && skip "cache $CACHE is not writable (set COHESIX_LINUX_CACHE)"
        if [[ -z $name ]] || ! kernel_dir_ok "$KDIR" || [[ ! -f $BASE_INITRAMFS ]]; then
            skip "cache $CACHE is incomplete and not writable (run --prepare as its owner, or set COHESIX_LINUX_CACHE)"
        fi
        return 0
    fi

    # Concurrent runs (cargo test runs tests in parallel) share the cache:
    # serialise filling it.
    exec 9>"$CACHE/.lock"
    flock 9
    # Leftovers of a fill that was killed half-way (only ever made under the lock).
    rm -rf "$CACHE"/.fetch.* "$CACHE"/.initramfs.*
    name=$(cat "$CACHE/current" 2>/dev/null || true)
    if ((force)) || [[ -z $name ]] || ! kernel_dir_ok "$CACHE/$name"; then
        prepare_kernel
        name=$(cat "$CACHE/current")
    fi
    if ((force)); then
        # --prepare: drop kernels that are no longer Debian's current one.
        local d
        for d in "$CACHE"/linux-image-*; do
            if [[ -d $d && ${d##*/} != "$name" ]]; then rm -rf "$d"; fi
        done
    fi
    KDIR="$CACHE/$name"
    BASE_INITRAMFS=$(base_initramfs_path "$KDIR" "$bb")
    [[ -f $BASE_INITRAMFS ]] || build_base_initramfs "$KDIR" "$bb" "$BASE_INITRAMFS"
    if ((force)); then
        # --prepare: drop base images built from older guest-init.sh versions.
        local f
        for f in "$KDIR"/initramfs-base-*.cpio.gz; do
            if [[ $f != "$BASE_INITRAMFS" ]]; then rm -f "$f"; fi
        done
    fi
    flock -u 9
    exec 9>&-
}

# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------

port='' opts='' timeout=$DEFAULT_TIMEOUT guest_script='' prepare=0
while (($#)); do
    case $1 in
    --port) (($# >= 2)) || usage; port=$2; shift 2 ;;
    --port=*) port=${1#*=}; shift ;;
    --opts) (($# >= 2)) || usage; opts=$2; shift 2 ;;
    --opts=*) opts=${1#*=}; shift ;;
    --timeout) (($# >= 2)) || usage; timeout=$2; shift 2 ;;
    --timeout=*) timeout=${1#*=}; shift ;;
    --prepare) prepare=1; shift ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -?*) say "unknown option: $1"; usage ;;
    *) break ;;
    esac
done
if ((prepare)); then
    (($# == 0)) || usage
    ensure_ready 1
    say "ready: kernel $(cat "$KDIR/kver") in $KDIR"
    sed 's/^/run.sh:   /' "$KDIR/modules.note" >&2
    exit 0
fi
(($# == 1)) || usage
guest_script=$1
if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    say "--port PORT (1-65535) is required"
    usage
fi
if ! [[ $timeout =~ ^[0-9]+$ ]] || ((timeout < 1)); then
    say "--timeout must be a positive number of seconds"
    usage
fi
[[ $guest_script == - || -r $guest_script ]] || { say "cannot read guest script: $guest_script"; usage; }
# The options end up in one mount -o string; a newline would break /init.
[[ $opts != *$'\n'* ]] || { say "--opts must be a single line"; usage; }

# ---------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------

KDIR='' BASE_INITRAMFS=''
ensure_ready 0

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cohesix-linux-client.XXXXXX")
QEMU_PID=''
# shellcheck disable=SC2317  # invoked via trap
cleanup_qemu() {
    # QEMU_PID is timeout(1), which passes the TERM on to QEMU.
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill -TERM "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    QEMU_PID=''
}
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    cleanup_qemu
    if [[ ${COHESIX_LINUX_KEEP:-0} == 1 ]]; then
        say "kept $RUN_DIR"
    else
        rm -rf "$RUN_DIR"
    fi
}
# The serial console speaks CRLF.  The kernel's last words ("reboot: Power
# down") get past the lowered console loglevel; they are just noise.
print_console() {
    [[ -f $RUN_DIR/console.log ]] || return 0
    tr -d '\r' <"$RUN_DIR/console.log" | grep -Ev '^\[ *[0-9]+\.[0-9]+\] reboot: Power down$' || true
}
# On INT/TERM: stop QEMU first, then show what the guest got to print.
# shellcheck disable=SC2317  # invoked via trap
interrupted() { # exit-status what
    cleanup_qemu
    print_console
    echo "=== INTERRUPTED ==="
    say "$2; QEMU killed"
    exit "$1"
}
trap cleanup EXIT
trap 'interrupted 130 interrupted' INT
trap 'interrupted 143 terminated' TERM HUP

# Per-run pieces go into a second, tiny cpio appended to the cached base one;
# the kernel unpacks concatenated archives in order.
mkdir -p "$RUN_DIR/cpio/etc/harness"
chmod 755 "$RUN_DIR/cpio" # its "." entry would set the mode of the guest's /
if [[ $guest_script == - ]]; then
    cat >"$RUN_DIR/cpio/etc/harness/guest.sh"
else
    cp "$guest_script" "$RUN_DIR/cpio/etc/harness/guest.sh"
fi
printf '%s\n' "$opts" >"$RUN_DIR/cpio/etc/harness/opts"
debug=0
[[ ${COHESIX_LINUX_DEBUG:-0} == 1 ]] && debug=1 && : >"$RUN_DIR/cpio/etc/harness/debug"
(cd "$RUN_DIR/cpio" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$RUN_DIR/run.cpio.gz"
cat "$BASE_INITRAMFS" "$RUN_DIR/run.cpio.gz" >"$RUN_DIR/initrd.img"

append="console=ttyS0 panic=-1"
((debug)) && append+=" loglevel=7" || append+=" quiet"

# Default is pure software emulation (TCG): it works everywhere, whereas a
# /dev/kvm under nested virtualisation may exist and still hang the guest.
# COHESIX_LINUX_ACCEL=kvm opts in where KVM is known to work.
case ${COHESIX_LINUX_ACCEL:-tcg} in
tcg) accel=(-accel tcg) ;;
kvm) accel=(-accel kvm) ;;
*) die "COHESIX_LINUX_ACCEL must be tcg or kvm" ;;
esac

# restrict=on: the guest reaches nothing but the single guestfwd, which QEMU
# connects to 127.0.0.1:PORT when it starts (so the server must already be
# listening, and the guest gets exactly one TCP connection to it).
# shellcheck disable=SC2054  # the commas belong to QEMU option syntax
qemu=(
    qemu-system-x86_64
    -nodefaults -no-user-config -nographic -no-reboot
    "${accel[@]}"
    -m "${COHESIX_LINUX_MEM:-512M}" -smp 1
    -kernel "$KDIR/vmlinuz" -initrd "$RUN_DIR/initrd.img" -append "$append"
    -serial "file:$RUN_DIR/console.log" -monitor none
    -netdev "user,id=n0,restrict=on,guestfwd=tcp:$SERVER_ADDR:$SERVER_GUEST_PORT-tcp:127.0.0.1:$port"
    # No iPXE option ROM (we boot with -kernel) and no SeaBIOS banner on the
    # serial port: both only cost time and clutter the captured console.
    # autonegotiation=off: the link is up at once instead of ~2 s later.
    -device e1000,netdev=n0,romfile=,autonegotiation=off
    -fw_cfg name=etc/sercon-port,string=0
)

# timeout(1) is a separate process, so QEMU still dies on time even if this
# script is SIGKILLed; on INT/TERM our trap kills it right away.
start_ns=$(date +%s%N)
timeout -k 5 "$timeout" "${qemu[@]}" </dev/null >"$RUN_DIR/qemu.out" 2>&1 &
QEMU_PID=$!
qrc=0
wait "$QEMU_PID" || qrc=$?
QEMU_PID=''
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))

touch "$RUN_DIR/console.log"
print_console

if ((qrc == 124 || qrc == 137)); then
    echo "=== TIMEOUT after ${timeout}s ==="
    say "TIMEOUT: the guest did not finish within ${timeout}s; QEMU was killed"
    exit 124
fi
if ((qrc != 0)); then
    sed 's/^/qemu: /' "$RUN_DIR/qemu.out" >&2
    if grep -q "Failed to connect to '127.0.0.1:$port'" "$RUN_DIR/qemu.out"; then
        die "QEMU could not connect to 127.0.0.1:$port: start the 9P server before run.sh"
    fi
    if [[ ! -s $RUN_DIR/console.log ]]; then
        skip "qemu-system-x86_64 failed to start on this machine (rc=$qrc): $(head -n 1 "$RUN_DIR/qemu.out")"
    fi
    die "QEMU exited with status $qrc"
fi
say "guest finished in $((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000)))s (QEMU wall time)"
if ! grep -Eq $'^=== (GUEST END|MOUNT FAILED) rc=[0-9]+ ===\r?$' "$RUN_DIR/console.log"; then
    [[ -s $RUN_DIR/qemu.out ]] && sed 's/^/qemu: /' "$RUN_DIR/qemu.out" >&2
    die "the guest stopped before finishing (kernel panic or /init failure?); try COHESIX_LINUX_DEBUG=1"
fi
exit 0
