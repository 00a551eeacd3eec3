//! [`Identity`]: a host's certificate chain, its private key and the CA it
//! trusts for its peers, from PEM files ([`TlsFiles`]) or PEM in memory.
//! Every host binary's `--tls-cert/--tls-key/--tls-ca` lands here.

use crate::tls::TlsError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// The three PEM files of a TLS host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This host's certificate chain (leaf first).
    pub cert: PathBuf,
    /// This host's private key (PKCS#8, SEC1 or PKCS#1), mode 0600.
    pub key: PathBuf,
    /// The CA certificate(s) the peers' certificates must chain to.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// The files from three optional flags: all three or none (`Ok(None)`);
    /// some but not all is an error naming the missing ones.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Option<TlsFiles>, String> {
        match (cert, key, ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                ca: ca.to_path_buf(),
            })),
            _ => {
                let missing: Vec<&str> =
                    [("--tls-cert", cert), ("--tls-key", key), ("--tls-ca", ca)]
                        .into_iter()
                        .filter_map(|(flag, v)| v.is_none().then_some(flag))
                        .collect();
                Err(format!(
                    "TLS needs --tls-cert, --tls-key and --tls-ca together; missing {}",
                    missing.join(", ")
                ))
            }
        }
    }
}

/// A host's TLS identity and the CA it trusts.
pub struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) roots: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("chain", &self.chain.len())
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads the three files. The key file must not be readable by group or
    /// others.
    pub fn load(files: &TlsFiles) -> Result<Identity, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        check_key_mode(&files.key)?;
        let name = |p: &Path| p.display().to_string();
        Identity::parse(
            (&read(&files.cert)?, &name(&files.cert)),
            (&read(&files.key)?, &name(&files.key)),
            (&read(&files.ca)?, &name(&files.ca)),
        )
    }

    /// The identity named by three optional flags (see
    /// [`TlsFiles::from_flags`]), loaded; `Ok(None)` when none is given.
    /// Errors are one line for the command's stderr.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Option<Identity>, String> {
        match TlsFiles::from_flags(cert, key, ca)? {
            Some(files) => Identity::load(&files).map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// The identity from PEM text: certificate chain, private key, CA(s).
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<Identity, TlsError> {
        Identity::parse((cert, "certificate"), (key, "key"), (ca, "CA"))
    }

    fn parse(
        (cert, cert_name): (&[u8], &str),
        (key, key_name): (&[u8], &str),
        (ca, ca_name): (&[u8], &str),
    ) -> Result<Identity, TlsError> {
        let chain = certificates(cert, cert_name)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
            what: key_name.to_string(),
            why: format!("no private key: {e}"),
        })?;
        let roots = certificates(ca, ca_name)?;
        Ok(Identity { chain, key, roots })
    }

    /// The CA certificates as rustls' root store.
    pub(crate) fn root_store(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut store = rustls::RootCertStore::empty();
        for root in &self.roots {
            store.add(root.clone())?;
        }
        Ok(store)
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_string(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: what.to_string(),
            why: "no certificate in it".to_string(),
        });
    }
    Ok(certs)
}

#[cfg(unix)]
fn check_key_mode(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_mode(_: &Path) -> Result<(), TlsError> {
    Ok(())
}
