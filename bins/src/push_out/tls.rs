//! The TLS client of pushes (`rtmps://`, `https://` PUT): rustls with the Mozilla roots, plus a
//! private CA from `MIST_TLS_CA_FILE`.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use super::PushOutError;

/// A TLS connection over a TCP socket.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A client connection for `host` (SNI = host), certificates checked against the Mozilla roots
/// and the CA of `MIST_TLS_CA_FILE`; nothing sent yet.
pub fn connection(host: &str) -> Result<rustls::ClientConnection, PushOutError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // A private server's CA, in addition to the Mozilla roots.
    if let Some(f) = std::env::var_os("MIST_TLS_CA_FILE").filter(|f| !f.is_empty()) {
        use rustls::pki_types::pem::PemObject;
        let file = || f.to_string_lossy().into_owned();
        let pem = |source| PushOutError::CaFile {
            file: file(),
            source,
        };
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&f).map_err(pem)?;
        for c in certs {
            roots
                .add(c.map_err(pem)?)
                .map_err(|source| PushOutError::CaCert {
                    file: file(),
                    source,
                })?;
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(PushOutError::Tls)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|source| {
        PushOutError::ServerName {
            host: host.to_string(),
            source,
        }
    })?;
    rustls::ClientConnection::new(Arc::new(cfg), name).map_err(PushOutError::Tls)
}

/// Wraps a connected socket in a TLS client for `host` ([`connection`]) and completes the
/// handshake with the socket's timeouts set to 10 s. The caller sets the timeouts it wants
/// afterwards.
pub fn client(mut sock: TcpStream, host: &str) -> Result<TlsStream, PushOutError> {
    let mut conn = connection(host)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(PushOutError::Socket)?;
    sock.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(PushOutError::Socket)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|source| PushOutError::Handshake {
                host: host.to_string(),
                source,
            })?;
    }
    Ok(rustls::StreamOwned::new(conn, sock))
}
