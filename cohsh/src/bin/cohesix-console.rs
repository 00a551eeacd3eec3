//! `cohesix-console`: see [`cohsh::console`].

fn main() -> std::process::ExitCode {
    cohsh::console::main()
}
