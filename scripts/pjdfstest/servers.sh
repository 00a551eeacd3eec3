# Sourced by run.sh and fsx.sh: builds the servers and gives the helpers
# both use. Expects $root; sets $bin and $pids (killed on exit).
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build -q --release -p secure9p-fs)
bin="$target/release"
pids=()
# A free TCP port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits (up to 10 s) until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
