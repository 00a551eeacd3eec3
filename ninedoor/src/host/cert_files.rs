//! `ninedoor cert`: a hive CA and the certificates it signs, written as
//! PEM files an operator copies to each host. Every file is created new
//! (an existing one is never overwritten: a CA key replaced by mistake would
//! lock every host out) with mode 0600, in a directory created mode 0700.
//!
//! Layout in `dir`: `ca.pem` + `ca.key`, then `NAME.pem` + `NAME.key` per
//! server or client certificate. The certificates themselves live in
//! `secure9p_transport::tls::certs`.

use crate::host::error::HostError;
use secure9p_transport::tls::certs::{Authority, CertError, Usage, Validity};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The CA certificate's file name in the directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name in the directory.
pub const CA_KEY: &str = "ca.key";

fn cert_error(e: CertError) -> HostError {
    HostError::Cert(e.to_string())
}

/// Creates `path` with `text`, mode 0600; refuses an existing file.
fn create(path: &Path, text: &str) -> Result<(), HostError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| HostError::file("certificate file", path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| HostError::file("certificate file", path, e))
}

/// Refuses before writing anything if either file of a pair exists, so a
/// failed run leaves no half pair.
fn fresh(paths: &[&Path]) -> Result<(), HostError> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(HostError::Cert(format!(
            "{} exists; not overwriting it (remove it first to replace it)",
            p.display()
        ))),
        None => Ok(()),
    }
}

fn make_dir(dir: &Path) -> Result<(), HostError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| HostError::file("certificate directory", dir, e))
}

/// Makes a new CA valid for `days` in `dir`; returns the files written.
pub fn make_ca(dir: &Path, days: u32) -> Result<Vec<PathBuf>, HostError> {
    make_dir(dir)?;
    let ca = Authority::new(Validity::days(days)).map_err(cert_error)?;
    let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    fresh(&[&cert, &key])?;
    // The key first: if it cannot be written, no certificate claims a CA.
    create(&key, &ca.key_pem())?;
    create(&cert, ca.cert_pem())?;
    Ok(vec![cert, key])
}

/// Signs a new `usage` certificate with the CA in `dir`, named `name` (its
/// common name and first subject name, and the files' stem) plus `also`
/// (more DNS names or IP addresses a server is dialled by), valid for
/// `days`. Returns the files written.
pub fn make_leaf(
    dir: &Path,
    usage: Usage,
    name: &str,
    also: &[String],
    days: u32,
) -> Result<Vec<PathBuf>, HostError> {
    if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
        return Err(HostError::Cert(format!(
            "{name:?} cannot name a certificate file (no '/', no leading '.')"
        )));
    }
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|e| HostError::file("CA file", &path, e))
    };
    let ca = Authority::from_pem(&read(CA_CERT)?, &read(CA_KEY)?).map_err(cert_error)?;
    let mut names = vec![name.to_string()];
    names.extend(also.iter().cloned());
    let pair = ca
        .issue(usage, &names, Validity::days(days))
        .map_err(cert_error)?;
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    fresh(&[&cert, &key])?;
    create(&key, &pair.key_pem)?;
    create(&cert, &pair.cert_pem)?;
    Ok(vec![cert, key])
}
