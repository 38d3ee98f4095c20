//! TLS pieces both sides share: the crypto provider, certificate
//! fingerprints, and the tracker's self-signed certificate.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
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
    /// The folder this start copied the certificate and key from (see
    /// [`load_adopt_or_create_identity`]).
    pub copied_from: Option<PathBuf>,
    /// A different certificate found in the legacy folder, not used: its
    /// folder and fingerprint, for the operator.
    pub ignored_legacy: Option<(PathBuf, Fingerprint)>,
}

const CERT_FILE: &str = "tracker-cert.pem";
const KEY_FILE: &str = "tracker-key.pem";
/// Held (`flock`) while the identity is read or made, so trackers started
/// at once on one data folder end up with the same one.
const IDENTITY_LOCK: &str = "identity.lock";

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CertError + use<> {
    let path = path.display().to_string();
    move |source| CertError::Io { path, source }
}

pub fn load_or_create_identity(data_dir: &Path) -> Result<Identity, CertError> {
    load_adopt_or_create_identity(data_dir, None)
}

/// Loads the identity in `data_dir` (created 0700 if missing). If it has
/// none and `legacy_dir` (where older versions kept it: `./data`) has one,
/// that one is copied in, so a tracker moving to the per-user folder keeps
/// the fingerprint its users pinned; the legacy files are left as they are.
/// Otherwise a new one is made. Several trackers may share one data folder
/// (the identity is the operator's); they take turns here on a lock.
pub fn load_adopt_or_create_identity(
    data_dir: &Path,
    legacy_dir: Option<&Path>,
) -> Result<Identity, CertError> {
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);
    crate::private::create_dir(data_dir).map_err(io_err(data_dir))?;
    let lock_path = data_dir.join(IDENTITY_LOCK);
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    crate::private::set_private_mode(&mut options);
    let lock = options.open(&lock_path).map_err(io_err(&lock_path))?;
    lock.lock().map_err(io_err(&lock_path))?;
    let legacy_dir = legacy_dir.filter(|l| {
        l.join(CERT_FILE).exists() && l.join(KEY_FILE).exists() && !same_dir(l, data_dir)
    });
    let mut created = false;
    let mut copied_from = None;
    if !cert_path.exists() || !key_path.exists() {
        let adopted = match legacy_dir.map(legacy_pems) {
            Some(Ok(pems)) => Some(pems),
            Some(Err(e)) => {
                tracing::warn!("not copying the old certificate: {e}");
                None
            }
            None => None,
        };
        let (key_pem, cert_pem) = match adopted {
            Some(pems) => {
                copied_from = legacy_dir.map(Path::to_path_buf);
                pems
            }
            None => {
                let certified = rcgen::generate_simple_self_signed(vec![
                    "confab-tracker".to_string(),
                    "localhost".to_string(),
                ])?;
                created = true;
                (certified.signing_key.serialize_pem(), certified.cert.pem())
            }
        };
        // The key first: the certificate's arrival completes the pair.
        write_replacing(&key_path, key_pem.as_bytes(), 0o600).map_err(io_err(&key_path))?;
        write_replacing(&cert_path, cert_pem.as_bytes(), 0o644).map_err(io_err(&cert_path))?;
    }
    let (certs, key, fingerprint) = read_identity(&cert_path, &key_path)?;
    drop(lock);
    crate::private::warn_if_open(&[data_dir, &key_path]);
    let ignored_legacy = match (&copied_from, legacy_dir) {
        (None, Some(legacy)) => read_identity(&legacy.join(CERT_FILE), &legacy.join(KEY_FILE))
            .ok()
            .map(|(_, _, fp)| (legacy.to_path_buf(), fp))
            .filter(|(_, fp)| *fp != fingerprint),
        _ => None,
    };
    Ok(Identity {
        certs,
        key,
        fingerprint,
        created,
        copied_from,
        ignored_legacy,
    })
}

/// Whether two folder paths name the same folder.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The legacy folder's key and certificate texts, checked to be a usable
/// pair first.
fn legacy_pems(dir: &Path) -> Result<(String, String), CertError> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    let (certs, key, _) = read_identity(&cert_path, &key_path)?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let key_pem = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
    let cert_pem = fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
    Ok((key_pem, cert_pem))
}

type Parts = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    Fingerprint,
);

fn read_identity(cert_path: &Path, key_path: &Path) -> Result<Parts, CertError> {
    let bad_cert = || CertError::Invalid {
        path: cert_path.display().to_string(),
        what: "certificate",
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|_| bad_cert())?
        .collect::<Result<_, _>>()
        .map_err(|_| bad_cert())?;
    let fingerprint = Fingerprint::of(certs.first().ok_or_else(bad_cert)?);
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|_| CertError::Invalid {
        path: key_path.display().to_string(),
        what: "private key",
    })?;
    Ok((certs, key, fingerprint))
}

/// Writes `path` whole or not at all (a new file renamed over it), created
/// with `mode` (less the umask).
fn write_replacing(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let new = path.with_file_name(name);
    let _ = fs::remove_file(&new);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&new)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&new, path)
}

pub fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())?;
    // Resumption by stateless tickets (encrypted with keys the ticketer
    // rotates), with no sessions kept in the tracker. rustls's default
    // keeps the last 256 in memory, written as members log in: after a
    // crowd left, those few hundred small allocations lay over the
    // memory its connections had used and kept 1 to 3 MiB of it resident
    // (BENCHMARKS.md, B4 after all leave, TLS).
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
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

    /// What one end has to send, read by the other.
    fn transfer(from: &mut rustls::Connection, to: &mut rustls::Connection) {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).unwrap();
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).unwrap();
            to.process_new_packets().unwrap();
        }
    }

    #[test]
    fn a_client_comes_back_on_a_ticket_and_the_tracker_keeps_no_session() {
        let dir = tempfile::tempdir().unwrap();
        let server = server_config(&load_or_create_identity(dir.path()).unwrap()).unwrap();
        assert!(!server.session_storage.can_cache());
        let client = Arc::new(crate::client::connection::client_config().unwrap());
        let handshake = || {
            let name = rustls::pki_types::ServerName::try_from("tracker").unwrap();
            let mut c = rustls::Connection::from(
                rustls::ClientConnection::new(client.clone(), name).unwrap(),
            );
            let mut s =
                rustls::Connection::from(rustls::ServerConnection::new(server.clone()).unwrap());
            // The tickets come after the handshake: a few turns each way.
            for _ in 0..4 {
                transfer(&mut c, &mut s);
                transfer(&mut s, &mut c);
            }
            assert!(!c.is_handshaking() && !s.is_handshaking());
            (c.handshake_kind(), s.handshake_kind())
        };
        use rustls::HandshakeKind::{Full, Resumed};
        assert_eq!(handshake(), (Some(Full), Some(Full)));
        assert_eq!(handshake(), (Some(Resumed), Some(Resumed)));
    }
}
