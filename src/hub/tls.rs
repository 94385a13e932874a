//! TLS for JupyterHub's internal SSL (`c.JupyterHub.internal_ssl = True`):
//! the hub then only answers HTTPS from clients holding a certificate its CA
//! signed. JupyterHub lays the files out as
//! `{location}/hub-internal/hub-internal.{crt,key}` and
//! `{location}/hub-ca/hub-ca.crt`.

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

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError {
            path: location.to_owned(),
            detail: err.to_string(),
        })?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|err| TlsError {
            path: cert_path.clone(),
            detail: format!("certificate and key do not make a client identity: {err}"),
        })?;
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
