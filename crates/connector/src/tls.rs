//! TLS at the transport level: a rustls server connection over a TCP socket, as a [`Stream`].
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
//!   closes it, see [`Stream::deadline`]); a failed handshake is logged with the peer (rate
//!   limited) and the connection closed after the alert.
//! - kTLS ([`crate::ktls`]): where the kernel offers it, the records of an established connection
//!   are made by the kernel (rustls hands over the traffic keys once its last handshake record,
//!   TLS 1.3 tickets included, is out); writes are then plain `writev`/`sendfile(2)`. Until then
//!   the handshake is read one whole record at a time, so no byte the kernel must decrypt is
//!   read past. Off with [`TlsSettings::ktls`] or `MIST_KTLS=0`; without kernel support, rustls
//!   keeps the records.

use crate::ktls;
use crate::transport::Stream;
use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use mist_core::{debug, warn};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, ServerConnection};
use rustls::sign::CertifiedKey;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest PEM file read (a chain of a few certificates is a few KiB).
const MAX_PEM: u64 = 1 << 20;
/// TLS records rustls may hold unsent per connection; more makes writes answer `WouldBlock`,
/// so the runtime's output queue (and its slow-viewer cut) still sees the backlog.
const TLS_BUFFER: usize = 64 << 10;
/// Largest TLS record: header and 2^14 bytes of payload plus what TLS 1.2 allows for expansion.
const MAX_RECORD: usize = 5 + (1 << 14) + 2048;

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
    /// Hand established connections to the kernel's TLS (kTLS) where it has it ([`crate::ktls`];
    /// `MIST_KTLS=0` in the environment also turns it off).
    pub ktls: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            pairs: Vec::new(),
            alpn: vec![b"http/1.1".to_vec()],
            handshake_timeout: Duration::from_secs(10),
            ktls: true,
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
    ktls: bool,
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
        // Lets a connection give its keys to the kernel (kTLS); nothing else reads them.
        config.enable_secret_extraction = true;
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
        let h = TlsConfigHandle {
            shared: Arc::new(Shared {
                config: Arc::new(config),
                resolver,
                handshake_timeout: settings.handshake_timeout,
                ktls: settings.ktls,
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

    /// The rustls configuration of this listener.
    #[cfg(test)]
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.shared.config.clone()
    }

    /// Starts the server side of a TLS connection over an accepted socket. `name` (the
    /// listener's) and `peer` go into log lines.
    pub fn accept(&self, tcp: TcpStream, peer: SocketAddr, name: &str) -> io::Result<TlsStream> {
        let mut conn =
            ServerConnection::new(self.shared.config.clone()).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        let feed = (self.shared.ktls && ktls::worth_trying()).then(RecordFeed::default);
        Ok(TlsStream {
            tcp,
            mode: Mode::User(Box::new(conn)),
            feed,
            early: Vec::new(),
            early_off: 0,
            peer,
            name: name.to_string(),
            deadline: Instant::now() + self.shared.handshake_timeout,
            shared: self.shared.clone(),
            failed: false,
        })
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

/// Who makes the records of a connection.
enum Mode {
    /// rustls (the handshake, and always without kTLS).
    User(Box<ServerConnection>),
    /// The kernel (kTLS): the socket carries plaintext both ways. `sni` and `alpn` as agreed.
    Kernel {
        sni: Option<String>,
        alpn: Option<Vec<u8>>,
    },
    /// Between the two (only inside [`TlsStream::hand_to_kernel`]).
    Moving,
}

/// Reads a TLS connection one whole record at a time, never a byte past it, and hands each
/// record to rustls: at the switch to kTLS the socket then holds exactly the records the kernel
/// must decrypt (rustls drops bytes it read but did not process when it gives its keys away).
/// The buffer grows to the record being read (a half-open handshake costs what its header
/// announced, as in rustls's own buffer).
#[derive(Default)]
struct RecordFeed {
    buf: Vec<u8>,
    have: usize,
}

impl RecordFeed {
    /// Reads toward the next record; when it is whole, gives it to `conn` and answers its
    /// length. A header that is no TLS record header (a plain-HTTP client, garbage) goes to
    /// rustls at once, which refuses it. `Ok(0)`: end of stream. `WouldBlock` while a record
    /// is incomplete.
    fn pump(&mut self, tcp: &mut TcpStream, conn: &mut ServerConnection) -> io::Result<usize> {
        loop {
            let need = if self.have < 5 {
                5
            } else {
                5 + u16::from_be_bytes([self.buf[3], self.buf[4]]) as usize
            };
            let bad = self.have >= 5
                && (!(20..=24).contains(&self.buf[0]) || self.buf[1] != 3 || need > MAX_RECORD);
            if bad || (self.have >= 5 && self.have == need) {
                let n = self.have;
                let mut rec = &self.buf[..n];
                while !rec.is_empty() {
                    if conn.read_tls(&mut rec)? == 0 {
                        return Err(io::Error::other("rustls took no more input"));
                    }
                }
                self.have = 0;
                if self.buf.len() > 4096 {
                    self.buf = Vec::new();
                }
                return Ok(n);
            }
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
            match tcp.read(&mut self.buf[self.have..need]) {
                Ok(0) => return Ok(0),
                Ok(n) => self.have += n,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A server-side TLS connection over TCP: reads and writes carry plaintext.
pub struct TlsStream {
    tcp: TcpStream,
    mode: Mode,
    /// Whole-record reads while the switch to kTLS is still to come (None: not trying).
    feed: Option<RecordFeed>,
    /// Plaintext rustls had decrypted before the switch to kTLS, read first.
    early: Vec<u8>,
    early_off: usize,
    peer: SocketAddr,
    name: String,
    deadline: Instant,
    shared: Arc<Shared>,
    /// The peer sent something that is not TLS (or broke the protocol); the alert is out.
    failed: bool,
}

impl TlsStream {
    /// The SNI name the client asked for.
    pub fn server_name(&self) -> Option<&str> {
        match &self.mode {
            Mode::User(c) => c.server_name(),
            Mode::Kernel { sni, .. } => sni.as_deref(),
            Mode::Moving => None,
        }
    }

    /// The ALPN protocol agreed on.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.mode {
            Mode::User(c) => c.alpn_protocol(),
            Mode::Kernel { alpn, .. } => alpn.as_deref(),
            Mode::Moving => None,
        }
    }

    /// The kernel makes this connection's records (kTLS).
    pub fn is_ktls(&self) -> bool {
        matches!(self.mode, Mode::Kernel { .. })
    }

    fn handshaking(&self) -> bool {
        match &self.mode {
            Mode::User(c) => c.is_handshaking(),
            _ => false,
        }
    }

    /// Writes pending TLS records. `WouldBlock` if some are left.
    fn push_tls(&mut self) -> io::Result<()> {
        let Mode::User(conn) = &mut self.mode else {
            return Ok(());
        };
        while conn.wants_write() {
            match conn.write_tls(&mut self.tcp) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `push_tls` where `WouldBlock` is fine (the rest leaves on the next writable event).
    fn push_tls_soft(&mut self) -> io::Result<()> {
        match self.push_tls() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }

    /// Hands the connection to the kernel when the moment has come: handshake over, every
    /// rustls record out, no partial record read. Does nothing when not trying (or not yet);
    /// gives up for this connection (rustls keeps it) when the kernel or the cipher cannot.
    /// Err: the keys left rustls but the kernel refused them; the connection is lost.
    fn hand_to_kernel(&mut self) -> io::Result<()> {
        let Some(feed) = &self.feed else {
            return Ok(());
        };
        let Mode::User(conn) = &mut self.mode else {
            return Ok(());
        };
        if conn.is_handshaking() || conn.wants_write() || feed.have > 0 {
            return Ok(());
        }
        // From here on this connection decides: no more whole-record reads either way.
        self.feed = None;
        if !ktls::worth_trying() {
            return Ok(());
        }
        let (Some(suite), Some(version)) =
            (conn.negotiated_cipher_suite(), conn.protocol_version())
        else {
            return Ok(());
        };
        if !ktls::suite_supported(suite) {
            debug!(
                "{}: {:?}: no kernel cipher; TLS stays in rustls",
                self.name,
                suite.suite()
            );
            return Ok(());
        }
        // Plaintext rustls decrypted already is read before what the kernel decrypts.
        let mut buf = [0u8; 4096];
        loop {
            match conn.reader().read(&mut buf) {
                Ok(0) => return Ok(()), // close_notify came: nothing left to speed up
                Ok(n) => self.early.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Ok(()),
            }
        }
        match ktls::attach(self.tcp.as_fd()) {
            Ok(()) => {}
            // The peer is gone already: says nothing about the kernel.
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Ok(()),
            Err(e) => {
                ktls::mark_missing(&format!("setsockopt TCP_ULP \"tls\": {e}"));
                return Ok(());
            }
        }
        let sni = conn.server_name().map(str::to_string);
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        let Mode::User(conn) = std::mem::replace(&mut self.mode, Mode::Moving) else {
            return Ok(());
        };
        let secrets = conn.dangerous_extract_secrets().map_err(io::Error::other)?;
        let tx = ktls::CryptoInfo::new(version, secrets.tx.0, &secrets.tx.1);
        let rx = ktls::CryptoInfo::new(version, secrets.rx.0, &secrets.rx.1);
        let (Some(tx), Some(rx)) = (tx, rx) else {
            return Err(io::Error::other("kTLS: no kernel structure for the keys"));
        };
        let set = ktls::set_tx(self.tcp.as_fd(), &tx)
            .map_err(|e| (e, "TLS_TX"))
            .and_then(|()| ktls::set_rx(self.tcp.as_fd(), &rx).map_err(|e| (e, "TLS_RX")));
        if let Err((e, what)) = set {
            // The keys are gone from rustls: this connection cannot go on; later ones stay in
            // userspace.
            ktls::mark_missing(&format!(
                "setsockopt {what} for {version:?} {:?}: {e}",
                suite.suite()
            ));
            return Err(e);
        }
        ktls::mark_engaged(version, suite.suite());
        debug!(
            "{}: kTLS for {} ({version:?} {:?})",
            self.name,
            self.peer,
            suite.suite()
        );
        self.mode = Mode::Kernel { sni, alpn };
        Ok(())
    }

    /// [`TlsStream::hand_to_kernel`], a lost connection marked failed.
    fn try_kernel(&mut self) -> io::Result<()> {
        self.hand_to_kernel().inspect_err(|e| {
            warn!(
                "{}: kTLS switch of {} failed: {e}; closed",
                self.name, self.peer
            );
            self.failed = true;
        })
    }

    /// A read of the socket after the switch: the kernel's plaintext.
    fn read_kernel(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tcp.read(buf) {
            // A record that is not data (close_notify, KeyUpdate): the end, as far as we go.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(0),
            Err(e) if e.raw_os_error() == Some(libc::EBADMSG) => {
                debug!("{}: kTLS: bad record from {}; closed", self.name, self.peer);
                Err(io::Error::new(ErrorKind::InvalidData, e))
            }
            r => r,
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Ok(0);
        }
        loop {
            if self.early_off < self.early.len() {
                let n = buf.len().min(self.early.len() - self.early_off);
                buf[..n].copy_from_slice(&self.early[self.early_off..self.early_off + n]);
                self.early_off += n;
                if self.early_off == self.early.len() {
                    self.early = Vec::new();
                    self.early_off = 0;
                }
                return Ok(n);
            }
            let conn = match &mut self.mode {
                Mode::User(conn) => conn,
                Mode::Kernel { .. } => return self.read_kernel(buf),
                Mode::Moving => return Ok(0),
            };
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: close_notify
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let got = match &mut self.feed {
                Some(feed) => feed.pump(&mut self.tcp, conn),
                None => conn.read_tls(&mut self.tcp),
            };
            match got {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let handshaking = conn.is_handshaking();
            if let Err(e) = conn.process_new_packets() {
                if handshaking {
                    self.shared.log_failure(&self.name, self.peer, &e);
                } else {
                    debug!("{}: TLS error from {}: {e}; closed", self.name, self.peer);
                }
                self.failed = true;
                let _ = self.push_tls(); // the alert
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
            self.push_tls_soft()?;
            self.try_kernel()?;
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.failed {
            return Err(ErrorKind::BrokenPipe.into());
        }
        // Records from the last call first: until they are out, take nothing new.
        self.push_tls()?;
        self.try_kernel()?;
        let conn = match &mut self.mode {
            Mode::User(conn) => conn,
            Mode::Kernel { .. } => return self.tcp.write_vectored(bufs),
            Mode::Moving => return Err(ErrorKind::BrokenPipe.into()),
        };
        let n = conn.writer().write_vectored(bufs)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(ErrorKind::WouldBlock.into());
        }
        self.push_tls_soft()?;
        Ok(n)
    }

    /// Writes the records rustls still holds; `WouldBlock` while some are left.
    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Ok(());
        }
        self.push_tls()?;
        self.try_kernel()
    }
}

impl Source for TlsStream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.tcp.deregister(r)
    }
}

impl Stream for TlsStream {
    /// The close happens on drop, which first sends `close_notify` (needs `&mut`).
    fn shutdown(&self) {}

    fn deadline(&self) -> Option<Instant> {
        self.handshaking().then_some(self.deadline)
    }

    /// With kTLS the kernel encrypts what `sendfile(2)` sends: file ranges leave from the file.
    fn send_fd(&self) -> Option<BorrowedFd<'_>> {
        self.is_ktls().then(|| self.tcp.as_fd())
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        match &mut self.mode {
            Mode::User(conn) if !self.failed && !conn.is_handshaking() => {
                conn.send_close_notify();
                let _ = self.push_tls();
            }
            Mode::Kernel { .. } if !self.failed => {
                let _ = ktls::send_close_notify(self.tcp.as_fd());
            }
            _ => {}
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }
}
