//! `cohsh`: see [`cohsh::shell`].

fn main() -> std::process::ExitCode {
    cohsh::shell::main()
}
