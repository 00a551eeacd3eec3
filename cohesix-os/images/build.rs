//! Links the PD images with `pd.ld` when building for seL4 (the built-in
//! `aarch64-unknown-none` target); host builds are stubs and link normally.

fn main() {
    println!("cargo:rerun-if-changed=pd.ld");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "aarch64-unknown-none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-T{dir}/pd.ld");
    }
}
