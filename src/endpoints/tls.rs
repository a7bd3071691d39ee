//! HTTPS for the endpoints: a certificate and key from PEM files (`--metrics-tls-cert`,
//! `--metrics-tls-key`), or, with `--metrics-auth kubernetes` and no files, a
//! self-signed certificate generated at start-up (as controller-runtime's secure metrics
//! server does), whose SHA-256 fingerprint is logged once so a client can pin it.
//!
//! rustls with the ring provider, the one kube's client already uses: no OpenSSL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsSource {
    /// PEM files: the certificate chain (leaf first) and its private key.
    Files {
        /// `--metrics-tls-cert`.
        cert: PathBuf,
        /// `--metrics-tls-key`.
        key: PathBuf,
    },
    /// A certificate generated now, for these DNS names or IP addresses.
    SelfSigned {
        /// The subject alternative names.
        names: Vec<String>,
    },
}

/// The acceptor that wraps each connection in TLS; `Err` is one line naming the flag
/// and file that was wrong (a usage error).
pub(crate) fn acceptor(source: &TlsSource) -> Result<TlsAcceptor, String> {
    let (chain, key) = match source {
        TlsSource::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
        TlsSource::SelfSigned { names } => self_signed(names)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match source {
            TlsSource::Files { cert, key } => format!(
                "--metrics-tls-key {} does not fit --metrics-tls-cert {}: {e}",
                key.display(),
                cert.display()
            ),
            TlsSource::SelfSigned { .. } => format!("cannot use the generated certificate: {e}"),
        })?;
    // The endpoints speak HTTP/1.1 only (hyper's http1 server).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path, "--metrics-tls-cert")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "--metrics-tls-cert {}: not a PEM certificate: {e}",
                path.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "--metrics-tls-cert {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path, "--metrics-tls-key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!(
            "--metrics-tls-key {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {e}",
            path.display()
        )
    })
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: cannot read: {e}", path.display()))
}

/// A self-signed certificate for `names` and its key; logs its fingerprint.
fn self_signed(
    names: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot generate a self-signed certificate: {e}"))?;
    let cert = generated.cert.der().clone();
    // A warning, so it shows at the default log level: a client can verify this
    // certificate only by its fingerprint, and it changes at every start.
    tracing::warn!(
        sha256_fingerprint = %fingerprint(&cert),
        names = ?names,
        "serving HTTPS with a self-signed certificate generated for this run: clients must pin this fingerprint or skip verification (give --metrics-tls-cert and --metrics-tls-key to use your own)"
    );
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    Ok((vec![cert], PrivateKeyDer::Pkcs8(key)))
}

/// The SHA-256 of `cert`'s DER, as `openssl x509 -fingerprint -sha256` prints it.
pub(crate) fn fingerprint(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(source: &TlsSource) -> String {
        match acceptor(source) {
            Ok(_) => panic!("{source:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_generated_certificate_serves() {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        assert!(acceptor(&TlsSource::SelfSigned { names }).is_ok());
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not pem").unwrap_or_else(|e| panic!("{e}"));
        let missing = dir.path().join("missing.pem");
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .unwrap_or_else(|e| panic!("{e}"));
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
        let files = |c: &Path, k: &Path| TlsSource::Files {
            cert: c.to_owned(),
            key: k.to_owned(),
        };
        let e = error(&files(&missing, &garbage));
        assert!(
            e.starts_with("--metrics-tls-cert ") && e.contains("missing.pem"),
            "{e}"
        );
        let e = error(&files(&garbage, &garbage));
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = error(&files(&cert, &garbage));
        assert!(
            e.starts_with("--metrics-tls-key ") && e.contains("garbage.pem"),
            "{e}"
        );
        let other = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let key = dir.path().join("other-key.pem");
        std::fs::write(&key, other.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));
        let e = error(&files(&cert, &key));
        assert!(e.contains("does not fit"), "{e}");
        let fitting = dir.path().join("key.pem");
        std::fs::write(&fitting, generated.signing_key.serialize_pem())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(acceptor(&files(&cert, &fitting)).is_ok());
    }

    #[test]
    fn the_fingerprint_is_openssls_format() {
        let f = fingerprint(b"");
        assert!(f.starts_with("E3:B0:C4:42:98:FC"), "{f}");
        assert_eq!(f.len(), 32 * 3 - 1);
    }
}
