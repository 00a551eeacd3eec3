//! The Queen's ticket file: where it lives by default, and writing it so
//! only its owner can read it (mode 0600, replaced atomically, never through
//! a symlink an attacker planted).

use crate::host::error::HostError;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The environment variable clients read a ticket from.
pub const TICKET_ENV: &str = "COHESIX_TICKET";

/// The default ticket file: `$XDG_RUNTIME_DIR/cohesix/queen.ticket` (a
/// per-user directory the system cleans at logout), else
/// `$HOME/.cohesix/queen.ticket`; `None` when neither variable is set.
/// `ninedoor` writes it and `cohsh` reads it, so both agree by default.
pub fn default_ticket_path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(run) = var("XDG_RUNTIME_DIR") {
        return Some(PathBuf::from(run).join("cohesix").join("queen.ticket"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".cohesix").join("queen.ticket"))
}

/// Writes `ticket` (and a newline) to `path`, readable by its owner only.
/// Missing parent directories are created with mode 0700. The text goes to
/// a fresh temporary file (`O_EXCL`, mode 0600) renamed over `path`, so a
/// reader never sees half a ticket and an existing file or symlink at
/// `path` is replaced, never written through.
pub fn write_ticket(path: &Path, ticket: &str) -> Result<(), HostError> {
    let fail = |e| HostError::file("ticket file", path, e);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let name = path.file_name().map_or_else(
        || std::ffi::OsString::from("ticket"),
        std::ffi::OsStr::to_os_string,
    );
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(&name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(ticket.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

/// Reads a ticket file: its first line, trimmed.
pub fn read_ticket(path: &Path) -> Result<String, HostError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| HostError::file("ticket file", path, e))?;
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

/// Removes the ticket file if it still holds `ticket` (a newer server may
/// have replaced it).
pub(crate) fn remove_if_holds(path: &Path, ticket: &str) {
    if read_ticket(path).is_ok_and(|t| t == ticket) {
        let _ = std::fs::remove_file(path);
    }
}
