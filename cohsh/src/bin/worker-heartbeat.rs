//! `worker-heartbeat`: see [`cohsh::heartbeat`].

fn main() -> std::process::ExitCode {
    cohsh::heartbeat::main()
}
