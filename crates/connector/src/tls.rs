//! TLS at the transport level: a rustls server connection over a TCP socket, as a
//! [`crate::Stream`].
//!
//! A TCP listener becomes a TLS listener with [`crate::Runtime::listen_tcp_tls`] and a
//! [`TlsConfigHandle`]; sessions see the same plaintext [`crate::Io`] either way.
//!
//! - Certificates come from PEM files (chain + key; RSA, ECDSA or Ed25519 keys), one or more
//!   pairs; with several, the pair whose leaf is valid for the client's SNI name is used, else
//!   the first. A key that does not match its certificate is refused at load.
//! - Hot reload: every new handshake checks the files' identity (inode, size, mtime, following
//!   symlinks, so certbot's `live/` links switching to a new `archive/` file count); changed pairs
//!   are loaded again and used from that handshake on. Connections already up keep their
//!   session. A pair that fails to load keeps serving the previous certificate, logged once per
//!   change. [`TlsConfigHandle::reload`] forces a load; [`TlsConfigHandle::set_pairs`] points at
//!   other files.
//! - ALPN `http/1.1` by default, session resumption (stateful cache and tickets).
//! - A handshake must finish within [`TlsSettings::handshake_timeout`] (the runtime's sweep
//!   closes it, see [`crate::Stream::deadline`]); a failed handshake is logged with the peer (rate
//!   limited) and the connection closed after the alert.
//!
//! The stream itself ([`TlsStream`]) is the transport both sides share, in `tls_stream`.

use crate::tls_stream::{TlsSide, TlsTransport};
use mio::net::TcpStream;
use mist_core::{debug, warn};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerConfig, ServerConnection, ServerConnectionData,
};
use rustls::sign::CertifiedKey;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest PEM file read (a chain of a few certificates is a few KiB).
const MAX_PEM: u64 = 1 << 20;

/// Why certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A file is not the PEM expected.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The key is not usable, or does not belong to the certificate.
    #[error("key {key} for certificate {cert}: {what}")]
    Key {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// One certificate chain and its key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemPair {
    /// Certificate chain, leaf first (e.g. certbot's `fullchain.pem`).
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1; e.g. certbot's `privkey.pem`).
    pub key: PathBuf,
}

impl PemPair {
    /// A pair from two paths.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> PemPair {
        PemPair {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// How a TLS listener behaves.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Certificate/key pairs; the first is the default, others are picked by SNI.
    pub pairs: Vec<PemPair>,
    /// ALPN protocols offered, in preference order (empty: no ALPN). A client that offers
    /// ALPN without any of these is refused.
    pub alpn: Vec<Vec<u8>>,
    /// Longest a handshake may take before the connection is closed.
    pub handshake_timeout: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            pairs: Vec::new(),
            alpn: vec![b"http/1.1".to_vec()],
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The identity of a file's content as far as `stat` tells (follows symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
}

fn stamp(p: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(p).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_ns: m.mtime_nsec(),
    })
}

/// One loaded pair.
#[derive(Debug)]
struct Loaded {
    pair: PemPair,
    /// File stamps the current key was loaded from (or last tried).
    stamps: (Option<Stamp>, Option<Stamp>),
    key: Option<Arc<CertifiedKey>>,
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |path: &Path| -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_PEM)
            .read_to_end(&mut v)?;
        Ok(v)
    };
    read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads and checks one pair.
fn load_pair(pair: &PemPair) -> Result<CertifiedKey, TlsError> {
    let pem = read_pem(&pair.cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: pair.cert.clone(),
            what: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: pair.cert.clone(),
            what: "no CERTIFICATE in the file".into(),
        });
    }
    let pem = read_pem(&pair.key)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: pair.key.clone(),
        what: format!("no usable private key ({e})"),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let ck = CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Key {
        cert: pair.cert.clone(),
        key: pair.key.clone(),
        what: match e {
            rustls::Error::InconsistentKeys(_) => {
                "the key does not match the certificate".to_string()
            }
            e => e.to_string(),
        },
    })?;
    Ok(ck)
}

/// Picks a certificate per handshake, reloading changed files first.
#[derive(Debug)]
struct Resolver {
    pairs: Mutex<Vec<Loaded>>,
}

impl Resolver {
    /// Loads every pair whose files changed (all of them with `force`). Returns whether a key
    /// changed; load errors are logged once per file change (and returned with `strict`).
    fn refresh(&self, force: bool, strict: bool) -> Result<bool, TlsError> {
        let Ok(mut pairs) = self.pairs.lock() else {
            return Ok(false);
        };
        let mut changed = false;
        let mut first_err = None;
        for l in pairs.iter_mut() {
            let now = (stamp(&l.pair.cert), stamp(&l.pair.key));
            // Unchanged: loaded already, or failed already (and said so).
            if !force && now == l.stamps {
                continue;
            }
            l.stamps = now;
            match load_pair(&l.pair) {
                Ok(ck) => {
                    debug!(
                        "TLS: loaded certificate {} (key {})",
                        l.pair.cert.display(),
                        l.pair.key.display()
                    );
                    l.key = Some(Arc::new(ck));
                    changed = true;
                }
                Err(e) => {
                    if l.key.is_some() {
                        warn!("TLS: {e}; still serving the certificate loaded before");
                    } else {
                        warn!("TLS: {e}");
                    }
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) if strict => Err(e),
            _ => Ok(changed),
        }
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let pairs = self.pairs.lock().ok()?;
        let mut keys = pairs.iter().filter_map(|l| l.key.as_ref());
        let first = keys.next()?;
        let name = sni.and_then(|s| ServerName::try_from(s).ok());
        let (Some(name), true) = (name, pairs.len() > 1) else {
            return Some(first.clone());
        };
        let fits = |ck: &CertifiedKey| {
            ck.cert.first().is_some_and(|leaf| {
                webpki::EndEntityCert::try_from(leaf)
                    .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
            })
        };
        std::iter::once(first)
            .chain(keys)
            .find(|ck| fits(ck))
            .or(Some(first))
            .cloned()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let _ = self.refresh(false, false);
        self.pick(hello.server_name())
    }
}

/// Counts failed handshakes so a flood logs one line a second.
#[derive(Debug, Default)]
struct LogGate {
    last: Option<Instant>,
    quiet: u64,
}

#[derive(Debug)]
struct Shared {
    config: Arc<ServerConfig>,
    resolver: Arc<Resolver>,
    handshake_timeout: Duration,
    gate: Mutex<LogGate>,
}

/// A TLS configuration shared by a listener's connections (cheap to clone). Hot-reloads its
/// certificate files; see the module documentation.
#[derive(Debug, Clone)]
pub struct TlsConfigHandle {
    shared: Arc<Shared>,
}

impl TlsConfigHandle {
    /// Loads every pair (an error names the file and what is wrong: unreadable, not PEM, key
    /// not matching the certificate). No pairs is allowed: handshakes are then refused until
    /// [`TlsConfigHandle::set_pairs`] gives some.
    pub fn new(settings: TlsSettings) -> Result<TlsConfigHandle, TlsError> {
        let resolver = Arc::new(Resolver {
            pairs: Mutex::new(Vec::new()),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = settings.alpn.clone();
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
        let h = TlsConfigHandle {
            shared: Arc::new(Shared {
                config: Arc::new(config),
                resolver,
                handshake_timeout: settings.handshake_timeout,
                gate: Mutex::new(LogGate::default()),
            }),
        };
        h.set_pairs(settings.pairs)?;
        Ok(h)
    }

    /// Shorthand: one certificate chain and key, default settings.
    pub fn from_pem_files(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<TlsConfigHandle, TlsError> {
        TlsConfigHandle::new(TlsSettings {
            pairs: vec![PemPair::new(cert, key)],
            ..TlsSettings::default()
        })
    }

    /// Points at other files (loaded now; on error nothing changes). New handshakes use them.
    pub fn set_pairs(&self, pairs: Vec<PemPair>) -> Result<(), TlsError> {
        let mut loaded = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let stamps = (stamp(&pair.cert), stamp(&pair.key));
            let key = Some(Arc::new(load_pair(&pair)?));
            loaded.push(Loaded { pair, stamps, key });
        }
        if let Ok(mut p) = self.shared.resolver.pairs.lock() {
            *p = loaded;
        }
        Ok(())
    }

    /// Loads every pair again now. On error the pair keeps its previous certificate and the
    /// first error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.shared.resolver.refresh(true, true).map(|_| ())
    }

    /// Loads the pairs whose files changed (what every handshake does anyway); true if a
    /// certificate changed.
    pub fn check(&self) -> Result<bool, TlsError> {
        self.shared.resolver.refresh(false, true)
    }

    /// Starts the server side of a TLS connection over an accepted socket. `name` (the
    /// listener's) and `peer` go into log lines.
    pub fn accept(&self, tcp: TcpStream, peer: SocketAddr, name: &str) -> io::Result<TlsStream> {
        let conn = ServerConnection::new(self.shared.config.clone()).map_err(io::Error::other)?;
        let side = ServerSide {
            peer,
            name: name.to_string(),
            shared: self.shared.clone(),
        };
        let deadline = Instant::now() + self.shared.handshake_timeout;
        Ok(TlsTransport::with_side(tcp, conn, deadline, side))
    }
}

impl Shared {
    fn log_failure(&self, name: &str, peer: SocketAddr, e: &rustls::Error) {
        let Ok(mut g) = self.gate.lock() else {
            return;
        };
        let now = Instant::now();
        if g.last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            g.quiet += 1;
            return;
        }
        g.last = Some(now);
        let quiet = std::mem::take(&mut g.quiet);
        if quiet > 0 {
            warn!(
                "{name}: TLS handshake with {peer} failed: {e}; closed ({quiet} more failed handshake(s) not logged)"
            );
        } else {
            warn!("{name}: TLS handshake with {peer} failed: {e}; closed");
        }
    }
}

/// The server side of a [`TlsTransport`]: a refused handshake is logged with the listener's
/// name and the peer, one line a second at most (a flood of garbage must not flood the log);
/// a protocol error after the handshake is a debug line.
pub struct ServerSide {
    peer: SocketAddr,
    name: String,
    shared: Arc<Shared>,
}

impl TlsSide for ServerSide {
    type Data = ServerConnectionData;
    type Conn = ServerConnection;

    fn refused(&mut self, handshaking: bool, e: &rustls::Error) {
        if handshaking {
            self.shared.log_failure(&self.name, self.peer, e);
        } else {
            debug!("{}: TLS error from {}: {e}; closed", self.name, self.peer);
        }
    }
}

/// A server-side TLS connection over TCP: reads and writes carry plaintext.
pub type TlsStream = TlsTransport<ServerSide>;

impl TlsStream {
    /// The SNI name the client asked for.
    pub fn server_name(&self) -> Option<&str> {
        self.conn.server_name()
    }

    /// The ALPN protocol agreed on.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }
}
