//! TLS pieces both sides share: the crypto provider, certificate
//! fingerprints, and the tracker's self-signed certificate.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// One crypto backend for the whole program (ring), chosen explicitly so a
/// second backend pulled in by a dependency can never make rustls ambiguous.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

#[derive(Debug, Error, PartialEq, Eq)]
#[error("a fingerprint is SHA256: followed by 64 hex digits (colons allowed)")]
pub struct BadFingerprint;

impl Fingerprint {
    pub fn of(cert_der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(cert_der).into())
    }

    /// Accepts `SHA256:AB:CD:...`, `SHA256:abcd...`, or the bare hex.
    pub fn parse(text: &str) -> Result<Self, BadFingerprint> {
        let t = text.trim();
        let t = t
            .strip_prefix("SHA256:")
            .or_else(|| t.strip_prefix("sha256:"))
            .unwrap_or(t);
        let hex_digits: String = t.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(hex_digits).map_err(|_| BadFingerprint)?;
        Ok(Fingerprint(bytes.try_into().map_err(|_| BadFingerprint)?))
    }
}

impl std::fmt::Display for Fingerprint {
    /// `SHA256:` then colon-separated upper-case hex pairs (the form
    /// `openssl x509 -fingerprint -sha256` and irssi's pinning use).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SHA256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum CertError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path} holds no usable {what}")]
    Invalid { path: String, what: &'static str },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// The tracker's certificate and key, made on first start and kept in
/// `data_dir` so the fingerprint clients pinned stays valid across restarts.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: Fingerprint,
    /// True when this start created the certificate.
    pub created: bool,
}

pub fn load_or_create_identity(data_dir: &Path) -> Result<Identity, CertError> {
    let cert_path = data_dir.join("tracker-cert.pem");
    let key_path = data_dir.join("tracker-key.pem");
    let io_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| CertError::Io { path, source }
    };
    let mut created = false;
    if !cert_path.exists() || !key_path.exists() {
        crate::private::create_dir(data_dir).map_err(io_err(data_dir))?;
        let certified = rcgen::generate_simple_self_signed(vec![
            "confab-tracker".to_string(),
            "localhost".to_string(),
        ])?;
        write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())
            .map_err(io_err(&key_path))?;
        fs::write(&cert_path, certified.cert.pem()).map_err(io_err(&cert_path))?;
        created = true;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|_| CertError::Invalid {
            path: cert_path.display().to_string(),
            what: "certificate",
        })?
        .collect::<Result<_, _>>()
        .map_err(|_| CertError::Invalid {
            path: cert_path.display().to_string(),
            what: "certificate",
        })?;
    let first = certs.first().ok_or(CertError::Invalid {
        path: cert_path.display().to_string(),
        what: "certificate",
    })?;
    let fingerprint = Fingerprint::of(first);
    crate::private::warn_if_open(&[data_dir, &key_path]);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|_| CertError::Invalid {
        path: key_path.display().to_string(),
        what: "private key",
    })?;
    Ok(Identity {
        certs,
        key,
        fingerprint,
        created,
    })
}

fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

pub fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_formats_and_parses() {
        let fp = Fingerprint::of(b"hello");
        let text = fp.to_string();
        assert!(text.starts_with("SHA256:2C:F2:4D:BA"), "{text}");
        assert_eq!(text.len(), 7 + 64 + 31);
        assert_eq!(Fingerprint::parse(&text), Ok(fp));
        assert_eq!(
            Fingerprint::parse(
                &text
                    .replace(':', "")
                    .replace("SHA256", "SHA256:")
                    .to_lowercase()
                    .replace("sha256", "SHA256")
            ),
            Ok(fp)
        );
        assert_eq!(Fingerprint::parse("SHA256:abcd"), Err(BadFingerprint));
        assert_eq!(Fingerprint::parse("nonsense"), Err(BadFingerprint));
    }

    #[test]
    fn identity_persists_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_identity(dir.path()).unwrap();
        assert!(first.created);
        let second = load_or_create_identity(dir.path()).unwrap();
        assert!(!second.created);
        assert_eq!(first.fingerprint, second.fingerprint);
        server_config(&second).unwrap();
    }
}
