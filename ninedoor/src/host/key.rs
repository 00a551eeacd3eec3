//! The hive key and ticket ids from the OS: a fresh random key per run
//! (every ticket dies with the process) unless a key file is given, and
//! ticket ids from the OS random number generator.

use crate::IdSource;
use crate::host::error::HostError;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A key file holds the 32 key bytes raw or as 64 hex digits.
const KEY_LEN: usize = 32;

/// 32 bytes from the OS random number generator.
pub fn random_key() -> Result<[u8; 32], HostError> {
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| HostError::Rng(e.to_string()))?;
    Ok(key)
}

/// Makes a key file at `path`: a fresh random key written as 64 hex digits
/// and a newline, created mode 0600 (never over an existing file) and
/// synced. Returns the key. [`load_key`] reads it back.
pub fn write_new_key(path: &Path) -> Result<[u8; 32], HostError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = random_key()?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| {
            f.write_all(format!("{hex}\n").as_bytes())?;
            f.sync_all()
        })
        .map_err(|e| HostError::file("key file", path, e))?;
    Ok(key)
}

/// Reads a hive key: exactly 32 bytes, or 64 hex digits (surrounding
/// whitespace ignored). Like ssh with private keys, a key file that group or
/// others may read is refused: whoever reads it can mint any ticket.
pub fn load_key(path: &Path) -> Result<[u8; 32], HostError> {
    let bad = |why: String| HostError::Key {
        path: path.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "readable by group or others (mode {mode:04o}); chmod 600 it"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if let Ok(key) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
        return Ok(key);
    }
    let text = std::str::from_utf8(&bytes).unwrap_or("").trim();
    parse_hex_key(text).ok_or_else(|| {
        bad(format!(
            "expected 32 bytes or 64 hex digits, found {} bytes",
            bytes.len()
        ))
    })
}

/// 64 hex digits as 32 bytes (a key, or a stored ticket id).
pub(crate) fn parse_hex_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != KEY_LEN * 2 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (slot, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(key)
}

/// Ticket ids from the OS random number generator.
///
/// Should the generator fail mid-run (it does not on Linux once booted), ids
/// fall back to a counter: the hive still refuses repeats, and a ticket's
/// secret is its MAC, not its id, so tickets stay unforgeable.
#[derive(Debug, Default)]
pub struct OsIds {
    fallback: u64,
}

impl IdSource for OsIds {
    fn ticket_id(&mut self) -> [u8; 32] {
        let mut id = [0u8; 32];
        if getrandom::fill(&mut id).is_err() {
            self.fallback = self.fallback.wrapping_add(1);
            id = [0u8; 32];
            id[..8].copy_from_slice(&self.fallback.to_be_bytes());
            id[8..16].copy_from_slice(&crate::host::unix_now().to_be_bytes());
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::parse_hex_key;

    #[test]
    fn hex_keys_parse_and_junk_does_not() {
        let hex = "00".repeat(31) + "ff";
        let key = parse_hex_key(&hex).unwrap();
        assert_eq!(key[31], 0xff);
        assert!(parse_hex_key(&"zz".repeat(32)).is_none());
        assert!(parse_hex_key("00").is_none());
        assert!(parse_hex_key(&"é".repeat(32)).is_none());
    }
}
