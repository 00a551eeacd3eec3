//! The example server: an in-memory file tree built from the engine's
//! building blocks, served anonymously. Copy it to start a server of your
//! own; the interop tests serve it to the Linux kernel client, diod's tools
//! and the load generator.
//!
//! It exports its tree under one attach name (like diod exports a
//! directory) and, following diod's test convention, a second tree under
//! `ctl` holding `zero` (endless zeros) and `null` (discards writes), so
//! `diodload` drives it exactly as it drives diod.

use secure9p_core::{
    AllowAll, FsError, MemFile, Namespace, NullFile, Principal, Role, Server, ServerConfig,
    ZeroFile,
};

/// Largest file the example tree lets a client grow (64 MiB): bounds what a
/// client can make the server hold.
pub const MAX_FILE_LEN: usize = 64 * 1024 * 1024;

/// Builds the example server: `files` (paths relative to the export, with
/// their contents) under the attach name `export`, plus `ctl/{zero,null}`.
pub fn server(
    export: &str,
    files: &[(&str, Vec<u8>)],
    config: ServerConfig,
) -> Result<Server, FsError> {
    let mut ns = Namespace::new();
    let top = ns.mkdir_all("/export", 0o755)?;
    for (path, data) in files {
        let (dir, name) = match path.trim_matches('/').rsplit_once('/') {
            Some((dir, name)) => (ns.mkdir_all(&format!("/export/{dir}"), 0o755)?, name),
            None => (top, path.trim_matches('/')),
        };
        ns.add_file(
            dir,
            name,
            Box::new(MemFile::new(data.clone(), MAX_FILE_LEN.max(data.len()))),
        )?;
    }
    ns.set_mount(export, top)?;
    let ctl = ns.mkdir_all("/ctl", 0o755)?;
    ns.add_file(ctl, "zero", Box::new(ZeroFile))?;
    ns.add_file(ctl, "null", Box::new(NullFile))?;
    ns.set_mount("ctl", ctl)?;
    let config = ServerConfig {
        anonymous: Some(Principal::anonymous(Role::Anonymous, "guest")),
        ..config
    };
    Ok(Server::new(ns, AllowAll, config))
}
