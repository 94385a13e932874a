//! TLS to the hub, in the two cases upstream supports:
//!
//! - JupyterHub's internal SSL (`c.JupyterHub.internal_ssl = True`,
//!   `--ssl-enabled`): the hub only answers HTTPS from clients holding a
//!   certificate its CA signed. JupyterHub lays the files out as
//!   `{location}/hub-internal/hub-internal.{crt,key}` and
//!   `{location}/hub-ca/hub-ca.crt`.
//! - An `https://` hub URL otherwise: trust the system's CA bundle, as
//!   upstream's OpenSSL does, so hubs behind a private CA keep working.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The file at fault (or the directory, for the whole configuration).
    pub path: PathBuf,
    /// What was wrong.
    pub detail: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.detail)
    }
}

impl std::error::Error for TlsError {}

/// Builds the client TLS configuration from JupyterHub's internal-ssl
/// directory: trust only the hub's CA, present the hub-internal certificate.
pub fn internal_ssl(location: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let ca_path = location.join("hub-ca").join("hub-ca.crt");
    let cert_path = location.join("hub-internal").join("hub-internal.crt");
    let key_path = location.join("hub-internal").join("hub-internal.key");

    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(&ca_path)? {
        roots.add(cert).map_err(|err| TlsError {
            path: ca_path.clone(),
            detail: format!("not a usable CA certificate: {err}"),
        })?;
    }
    let chain = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    client_config(roots, Some((chain, key)), &cert_path)
}

/// Where distributions keep the system's CA bundle (Debian and Ubuntu,
/// Fedora and RHEL, openSUSE, Alpine and macOS, newer RHEL).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];

/// Builds the client TLS configuration for an `https://` hub URL without
/// `--ssl-enabled`: trust the CA bundle at `ssl_cert_file` (`SSL_CERT_FILE`,
/// as OpenSSL honours it) or else the system's.
pub fn system_roots(ssl_cert_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let path = match ssl_cert_file {
        Some(path) => path.to_owned(),
        None => SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .ok_or_else(|| TlsError {
                path: PathBuf::from(SYSTEM_BUNDLES[0]),
                detail: "no system CA bundle here; install ca-certificates or set SSL_CERT_FILE to a PEM bundle"
                    .into(),
            })?,
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _unusable) = roots.add_parsable_certificates(read_certs(&path)?);
    if added == 0 {
        return Err(TlsError {
            path,
            detail: "holds no usable CA certificate".into(),
        });
    }
    client_config(roots, None, &path)
}

/// A rustls client configuration for HTTP/1.1 to the hub, trusting `roots`
/// and presenting `identity` (certificate chain and key) when given.
fn client_config(
    roots: rustls::RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    blame: &Path,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let fail = |detail: String| TlsError {
        path: blame.to_owned(),
        detail,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| fail(err.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|err| {
            fail(format!(
                "certificate and key do not make a client identity: {err}"
            ))
        })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError {
        path: path.to_owned(),
        detail: format!("cannot read it ({err}); is --internal-certs-location right?"),
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|err| TlsError {
            path: path.to_owned(),
            detail: format!("not a PEM certificate: {err}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError {
            path: path.to_owned(),
            detail: "holds no PEM certificate".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|err| TlsError {
            path: path.to_owned(),
            detail: format!("not a PEM private key: {err}"),
        })?
        .ok_or_else(|| TlsError {
            path: path.to_owned(),
            detail: "holds no PEM private key".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_names_the_file() {
        let err = internal_ssl(Path::new("/nonexistent/internal-ssl")).unwrap_err();
        assert!(err.path.ends_with("hub-ca/hub-ca.crt"), "{err}");
        assert!(err.to_string().contains("--internal-certs-location"));
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn ssl_cert_file_bundle_is_trusted() {
        assert!(system_roots(Some(&fixture("test-ca.pem"))).is_ok());
    }

    #[test]
    fn a_bundle_without_certificates_is_an_error_naming_it() {
        let err = system_roots(Some(Path::new("/nonexistent/bundle.pem"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/bundle.pem"), "{err}");
        let empty =
            std::env::temp_dir().join(format!("culler-empty-bundle-{}", std::process::id()));
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = system_roots(Some(&empty)).unwrap_err();
        std::fs::remove_file(&empty).ok();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn garbage_certificate_is_rejected() {
        let dir = std::env::temp_dir().join(format!("culler-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("hub-ca")).unwrap();
        std::fs::write(dir.join("hub-ca/hub-ca.crt"), "not pem").unwrap();
        let err = internal_ssl(&dir).unwrap_err();
        std::fs::remove_dir_all(&dir).ok();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
