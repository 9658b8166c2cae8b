//! The TLS client configuration of `https://` trigger handlers.
//!
//! The roots are the system's (`/etc/ssl/certs`, as ureq's `native-certs` loads them). With
//! `MIST_TLS_CA_FILE` set (a PEM file, e.g. a private CA or a test CA), its certificates are
//! trusted as well, beside the system roots and the Mozilla roots (webpki-roots, for hosts
//! without a system store). Built once per process.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::{Arc, OnceLock};

/// The environment variable naming further CA certificates (PEM).
pub const ENV_CA_FILE: &str = "MIST_TLS_CA_FILE";

/// Why `MIST_TLS_CA_FILE` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// The file cannot be read, or holds no certificate rustls accepts.
    #[error("{ENV_CA_FILE} {file}: {what}")]
    Bad {
        /// The file named by the variable.
        file: String,
        /// What is wrong with it.
        what: String,
    },
    /// rustls refused the resulting configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The client configuration to use, or None for ureq's default (system roots only): None when
/// `MIST_TLS_CA_FILE` is unset, or unusable (logged once, and the system roots used).
pub fn client_config() -> Option<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let file = std::env::var_os(ENV_CA_FILE).filter(|f| !f.is_empty())?;
            match with_ca_file(&file.to_string_lossy()) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    crate::warn!("{e}; https trigger handlers use the system roots only");
                    None
                }
            }
        })
        .clone()
}

/// System roots, Mozilla roots and the certificates of `file`.
pub fn with_ca_file(file: &str) -> Result<rustls::ClientConfig, CaFileError> {
    let bad = |what: String| CaFileError::Bad {
        file: file.to_string(),
        what,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Ok(native) = rustls_native_certs::load_native_certs() {
        roots.add_parsable_certificates(native);
    }
    let mut added = 0;
    for c in CertificateDer::pem_file_iter(file).map_err(|e| bad(e.to_string()))? {
        let c = c.map_err(|e| bad(e.to_string()))?;
        roots.add(c).map_err(|e| bad(e.to_string()))?;
        added += 1;
    }
    if added == 0 {
        return Err(bad("no CERTIFICATE in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaFileError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("mist-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("empty.pem");
        std::fs::write(&f, "not a certificate\n").unwrap();
        let e = with_ca_file(f.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        assert!(with_ca_file(dir.join("missing.pem").to_str().unwrap()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
