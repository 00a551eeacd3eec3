# Shared by the loadgen comparison scripts (sourced, not run): the release
# builds they drive, the files they serve, and waiting for a listener.
# Expects ROOT (the repository) to be set.

# Builds s9p-load and the memfs example (release); sets LOAD and MEMFS.
build_load_and_memfs() {
    echo "== building s9p-load and the memfs example, release"
    cargo build --release -q -p s9p-load || exit 1
    cargo build --release -q -p secure9p-transport --example memfs || exit 1
    LOAD=$ROOT/target/release/s9p-load
    MEMFS=$ROOT/target/release/examples/memfs
}

# NAME: a fresh directory under /tmp holding a 64 MiB `large` and a 4 KiB
# `small` file of random bytes; its path on stdout.
make_files() {
    local dir
    dir=$(mktemp -d "/tmp/$1-files.XXXXXX") || exit 1
    head -c $((64 * 1024 * 1024)) /dev/urandom >"$dir/large"
    head -c 4096 /dev/urandom >"$dir/small"
    echo "$dir"
}

# PORT: waits (up to 10 s) until something listens on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
