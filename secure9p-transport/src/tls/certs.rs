//! Making certificates (feature `tls-certs`): a hive CA, and the server and
//! client certificates it signs, with rcgen, as PEM. What `ninedoor cert`
//! writes and what the tests generate; an operator never needs a TLS manual.
//!
//! Keys are ECDSA P-256 (what every TLS 1.3 peer speaks). A CA is named
//! [`CA_NAME`] plus a fingerprint of its key, so two hives' CAs never share
//! a subject (a certificate from the other one is refused as an unknown
//! issuer, not a bad signature); it is re-loaded from its PEM pair to sign
//! more certificates.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;

/// The start of every hive CA's subject common name.
pub const CA_NAME: &str = "Cohesix hive CA";

/// Default lifetime of a CA, days (ten years: re-keying a hive is rare).
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Default lifetime of a server or client certificate, days.
pub const DEFAULT_LEAF_DAYS: u32 = 365;

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// rcgen refused (a name that is not a DNS name or IP address, a key it
    /// cannot parse, ...).
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A validity period outside what a certificate can say.
    #[error("validity period {0} s from the epoch is out of range")]
    Time(i64),
    /// A CA certificate that is not PEM, or whose key is another.
    #[error("CA: {0}")]
    Ca(String),
}

/// When a certificate is valid, unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before (unix seconds).
    pub not_before: i64,
    /// Not valid after (unix seconds).
    pub not_after: i64,
}

impl Validity {
    /// From an hour ago (clock skew between hosts) for `days` days.
    pub fn days(days: u32) -> Validity {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs() as i64;
        Validity {
            not_before: now - 3600,
            not_after: now + i64::from(days) * 86_400,
        }
    }

    fn apply(&self, params: &mut CertificateParams) -> Result<(), CertError> {
        let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).map_err(|_| CertError::Time(t));
        params.not_before = at(self.not_before)?;
        params.not_after = at(self.not_after)?;
        Ok(())
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Pair {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair").finish_non_exhaustive()
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A listener (`ninedoor`, `gpu-bridge-host`): its names are the DNS
    /// names and IP addresses clients dial. It may also dial out with the
    /// same certificate (NineDoor's links to its bridges), so it is valid
    /// for both server and client authentication.
    Server,
    /// A client (`cohsh`, `worker-heartbeat`, NineDoor's bridge links).
    Client,
}

/// A CA that signs server and client certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    // The point's first bytes (after the 0x04 tag): as random as the key.
    let print: String = key
        .public_key_raw()
        .iter()
        .skip(1)
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    dn.push(DnType::CommonName, format!("{CA_NAME} {print}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Authority {
    /// A fresh CA with a new key.
    pub fn new(validity: Validity) -> Result<Authority, CertError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params(&key);
        validity.apply(&mut params)?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Authority {
            issuer: Issuer::new(params, key),
            cert_pem,
        })
    }

    /// A CA made earlier, from its certificate and key PEM; refused if the
    /// key is not the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Authority, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| CertError::Ca(format!("no certificate: {e}")))?;
        let private = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| CertError::Ca(format!("no key: {e}")))?;
        let provider = rustls::crypto::ring::default_provider();
        rustls::sign::CertifiedKey::from_der(vec![der], private, &provider)
            .map_err(|e| CertError::Ca(format!("key does not match the certificate: {e}")))?;
        Ok(Authority {
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// The CA certificate (what every host's `--tls-ca` names).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key (keep it off the hosts if you can).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate for `usage` with a new key. `names` are DNS
    /// names or IP addresses (at least one: the first is also the common
    /// name); a server certificate must name what clients dial.
    pub fn issue(
        &self,
        usage: Usage,
        names: &[String],
        validity: Validity,
    ) -> Result<Pair, CertError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        if let Some(first) = names.first() {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        validity.apply(&mut params)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match usage {
            Usage::Server => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
