//! `cohesix-hive`: see [`cohsh::demo`].

fn main() -> std::process::ExitCode {
    cohsh::demo::main()
}
