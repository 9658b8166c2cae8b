//! Kernel TLS (kTLS): after the handshake, the TLS record layer of a connection moves into the
//! kernel. rustls does the handshake (and sends its TLS 1.3 session tickets); then the traffic
//! keys and sequence numbers go to the socket with `setsockopt(SOL_TLS, TLS_TX / TLS_RX)`, and
//! plaintext is written with the ordinary write path (`writev`, `sendmsg`, and `sendfile(2)` for
//! file ranges, which the kernel encrypts on its way out).
//!
//! - Used when the kernel has the `tls` upper layer protocol (`CONFIG_TLS`; `modprobe tls`, which
//!   the package's `modules-load.d` file does at boot). The first connection that finds it
//!   missing turns kTLS off for the process (logged once); connections then stay in rustls.
//! - Off with `MIST_KTLS=0` in the environment (the controller passes it to its connectors) or
//!   [`crate::TlsSettings::ktls`] false.
//! - Ciphers: AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, TLS 1.2 and 1.3 (all rustls offers).
//! - After the switch the kernel answers a non-data record from the peer (close_notify, a TLS 1.3
//!   KeyUpdate) with `EIO` on a plain read: the connection is then closed, as at the end of the
//!   stream. `close_notify` is sent on close as a record of type alert (`TLS_SET_RECORD_TYPE`).
//!
//! The `unsafe` here is the system calls (`setsockopt`, `sendmsg` with a control message).

#![allow(unsafe_code)]

use rustls::{CipherSuite, ConnectionTrafficSecrets, ProtocolVersion, SupportedCipherSuite};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

const SOL_TCP: libc::c_int = 6;
const TCP_ULP: libc::c_int = 31;
const SOL_TLS: libc::c_int = 282;
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;
/// Control message type (level `SOL_TLS`) giving the record type of a `sendmsg`.
const TLS_SET_RECORD_TYPE: libc::c_int = 1;
const TLS_1_2_VERSION: u16 = 0x0303;
const TLS_1_3_VERSION: u16 = 0x0304;
const CIPHER_AES_GCM_128: u16 = 51;
const CIPHER_AES_GCM_256: u16 = 52;
const CIPHER_CHACHA20_POLY1305: u16 = 54;
/// TLS record content type of an alert.
const RECORD_ALERT: u8 = 21;

/// Whether the kernel took a connection yet: unknown, it did, it cannot.
const UNKNOWN: u8 = 0;
const WORKS: u8 = 1;
const MISSING: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
static ENGAGED: AtomicU64 = AtomicU64::new(0);

/// kTLS is not turned off by `MIST_KTLS` (`0`, `off`, `no`, `false`).
pub fn allowed_by_env() -> bool {
    !matches!(
        std::env::var("MIST_KTLS")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Ok("0" | "off" | "no" | "false")
    )
}

/// Worth trying on a new connection: allowed, and not found missing in this process.
pub(crate) fn worth_trying() -> bool {
    STATE.load(Ordering::Relaxed) != MISSING && allowed_by_env()
}

/// Connections of this process whose records the kernel does (a counter for tests and stats).
pub fn engaged() -> u64 {
    ENGAGED.load(Ordering::Relaxed)
}

/// Forgets what was found about the kernel: the next connection tries again (for tests that
/// run the whole-record handshake reads more than once in a process without kTLS).
#[doc(hidden)]
pub fn forget() {
    STATE.store(UNKNOWN, Ordering::Relaxed);
}

/// Notes that the kernel cannot do TLS (logged the first time only).
pub(crate) fn mark_missing(why: &str) {
    if STATE.swap(MISSING, Ordering::Relaxed) != MISSING {
        mist_core::info!("kTLS not available ({why}); TLS records stay in userspace (rustls)");
    }
}

/// Notes that a connection went to the kernel (logged the first time only).
pub(crate) fn mark_engaged(version: ProtocolVersion, suite: CipherSuite) {
    ENGAGED.fetch_add(1, Ordering::Relaxed);
    if STATE.swap(WORKS, Ordering::Relaxed) != WORKS {
        mist_core::info!(
            "kTLS on: TLS records in the kernel after the handshake (first: {version:?} {suite:?})"
        );
    }
}

/// The negotiated suite has a kernel cipher.
pub(crate) fn suite_supported(suite: SupportedCipherSuite) -> bool {
    matches!(
        suite.suite(),
        CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS13_AES_256_GCM_SHA384
            | CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// One direction's keys as the kernel takes them: `struct tls12_crypto_info_aes_gcm_128`,
/// `_aes_gcm_256` or `_chacha20_poly1305` of `<linux/tls.h>`, as bytes (every field after the
/// two `u16` is a byte array: no padding). Zeroed on drop.
pub struct CryptoInfo {
    bytes: Vec<u8>,
}

impl CryptoInfo {
    /// The kernel's structure for `secrets` of protocol `version`, the next record being `seq`.
    /// None for a version or cipher the kernel has no structure for.
    pub fn new(
        version: ProtocolVersion,
        seq: u64,
        secrets: &ConnectionTrafficSecrets,
    ) -> Option<CryptoInfo> {
        let tls12 = version == ProtocolVersion::TLSv1_2;
        let version = match version {
            ProtocolVersion::TLSv1_2 => TLS_1_2_VERSION,
            ProtocolVersion::TLSv1_3 => TLS_1_3_VERSION,
            _ => return None,
        };
        let mut b = Vec::with_capacity(56);
        b.extend_from_slice(&version.to_ne_bytes());
        match secrets {
            // rustls's 12-byte IV is the 4-byte salt then the 8-byte IV of the kernel.
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                b.extend_from_slice(&CIPHER_AES_GCM_128.to_ne_bytes());
                b.extend_from_slice(&gcm_iv(iv.as_ref(), tls12, seq));
                b.extend_from_slice(key.as_ref());
                b.extend_from_slice(&iv.as_ref()[..4]);
            }
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                b.extend_from_slice(&CIPHER_AES_GCM_256.to_ne_bytes());
                b.extend_from_slice(&gcm_iv(iv.as_ref(), tls12, seq));
                b.extend_from_slice(key.as_ref());
                b.extend_from_slice(&iv.as_ref()[..4]);
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                b.extend_from_slice(&CIPHER_CHACHA20_POLY1305.to_ne_bytes());
                b.extend_from_slice(iv.as_ref());
                b.extend_from_slice(key.as_ref());
            }
            _ => return None,
        }
        b.extend_from_slice(&seq.to_be_bytes());
        Some(CryptoInfo { bytes: b })
    }

    /// The structure's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for CryptoInfo {
    fn drop(&mut self) {
        self.bytes.fill(0);
        std::hint::black_box(&self.bytes);
    }
}

/// The kernel's 8-byte GCM IV from rustls's 12-byte one (salt, then 8 bytes), for records from
/// `seq` on.
///
/// TLS 1.3: the kernel XORs the sequence number in, as rustls does: the IV as it is.
///
/// TLS 1.2: the 8 bytes are the explicit nonce sent in each record, which the kernel *increments*
/// per record from the value given, while rustls sent `iv XOR seq` for its records `0..seq`
/// (its Finished at least). Handing over the IV as it is would make the kernel's first record
/// reuse the nonce of rustls's first one under the same key (AES-GCM's one fatal mistake). Every
/// `iv XOR s` with `s < seq` lies in `[iv & !mask, iv | mask]` (`mask` below the next power of two
/// of `seq`), so the kernel starts just past that window: it comes back to it only after 2^64
/// minus the window's size records.
fn gcm_iv(iv: &[u8], tls12: bool, seq: u64) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&iv[4..12]);
    if !tls12 {
        return out;
    }
    let explicit = u64::from_be_bytes(out);
    let mask = seq.checked_next_power_of_two().map_or(u64::MAX, |p| p - 1);
    (explicit | mask).wrapping_add(1).to_be_bytes()
}

fn setsockopt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: &[u8],
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket for the call (borrowed); the value pointer and length
    // describe `v`, which outlives the call; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            v.as_ptr().cast(),
            v.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches the kernel's `tls` upper layer protocol to a connected TCP socket. Until keys are
/// set the socket stays plain TCP. Fails (ENOENT) when the kernel has no kTLS.
pub fn attach(fd: BorrowedFd<'_>) -> io::Result<()> {
    setsockopt(fd, SOL_TCP, TCP_ULP, b"tls")
}

/// Hands the transmit keys to the kernel: from now on writes are encrypted into records.
pub fn set_tx(fd: BorrowedFd<'_>, info: &CryptoInfo) -> io::Result<()> {
    setsockopt(fd, SOL_TLS, TLS_TX, info.as_bytes())
}

/// Hands the receive keys to the kernel: from now on reads are decrypted records' payloads.
pub fn set_rx(fd: BorrowedFd<'_>, info: &CryptoInfo) -> io::Result<()> {
    setsockopt(fd, SOL_TLS, TLS_RX, info.as_bytes())
}

/// Sends a `close_notify` alert on a socket with kernel TX (best effort: non-blocking).
pub fn send_close_notify(fd: BorrowedFd<'_>) -> io::Result<()> {
    let alert = [1u8, 0]; // warning, close_notify
                          // u64 words: aligned for a cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid. msg_iov points at one iovec over `alert`, msg_control at
    // `control` (64 bytes, 8-aligned, more than CMSG_SPACE(1)); CMSG_FIRSTHDR of that msghdr is
    // inside `control` and CMSG_DATA leaves room for the one byte written. All outlive the call.
    let n = unsafe {
        let mut iov = libc::iovec {
            iov_base: alert.as_ptr() as *mut libc::c_void,
            iov_len: alert.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(1) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        (*cmsg).cmsg_level = SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = RECORD_ALERT;
        libc::sendmsg(
            fd.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this machine's kernel takes the `tls` upper layer protocol (a loopback connection
/// is made to find out). For tests and diagnostics.
pub fn kernel_has_ktls() -> bool {
    use std::os::fd::AsFd;
    let Ok(l) = std::net::TcpListener::bind("127.0.0.1:0") else {
        return false;
    };
    let Ok(addr) = l.local_addr() else {
        return false;
    };
    let Ok(c) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    attach(c.as_fd()).is_ok()
}

#[cfg(test)]
mod tests {
    //! The keys handed to the kernel are checked without a kernel: records are made (and read)
    //! from the [`CryptoInfo`] bytes the way `net/tls/tls_sw.c` does, and a rustls client on
    //! the other end must read them (and its records must open).

    use super::*;
    use crate::tls::{PemPair, TlsConfigHandle, TlsSettings};
    use ring::aead;
    use rustls::crypto::ring::cipher_suite as cs;
    use rustls::pki_types::pem::PemObject;
    use rustls::{ClientConfig, ClientConnection, ServerConnection};
    use std::io::{Read, Write};
    use std::path::Path;
    use std::process::Command;
    use std::sync::Arc;

    /// The suites with a kernel cipher (ECDSA certificate: the ECDHE_ECDSA ones for TLS 1.2).
    fn suites() -> [SupportedCipherSuite; 6] {
        [
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
    }

    /// A self-signed ECDSA leaf for `localhost` (no CA, so webpki takes it as its own anchor).
    fn make_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (dir.join("k.crt"), dir.join("k.key"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=ktls"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is needed (scripts/test installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (cert, key)
    }

    /// A client that offers only `suite` (and its protocol version), trusting `cert`.
    fn client_config(suite: SupportedCipherSuite, cert: &Path) -> ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(cert).unwrap();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: vec![suite],
            ..rustls::crypto::ring::default_provider()
        };
        ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[suite.version()])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// What `tls_sw` does with a [`CryptoInfo`]: one direction's record layer.
    struct KernelRecords {
        version: u16,
        key: aead::LessSafeKey,
        /// salt || iv (12 bytes).
        nonce: [u8; 12],
        seq: u64,
        /// TLS 1.2 AES-GCM: explicit nonce per record (salt || iv, iv incremented per record).
        explicit: bool,
    }

    impl KernelRecords {
        fn from_info(info: &CryptoInfo) -> KernelRecords {
            let b = info.as_bytes();
            let version = u16::from_ne_bytes([b[0], b[1]]);
            let cipher = u16::from_ne_bytes([b[2], b[3]]);
            let mut nonce = [0u8; 12];
            let (alg, key, seq, explicit) = match cipher {
                CIPHER_AES_GCM_128 => {
                    nonce[4..].copy_from_slice(&b[4..12]);
                    nonce[..4].copy_from_slice(&b[28..32]);
                    assert_eq!(b.len(), 40);
                    (&aead::AES_128_GCM, &b[12..28], &b[32..40], true)
                }
                CIPHER_AES_GCM_256 => {
                    nonce[4..].copy_from_slice(&b[4..12]);
                    nonce[..4].copy_from_slice(&b[44..48]);
                    assert_eq!(b.len(), 56);
                    (&aead::AES_256_GCM, &b[12..44], &b[48..56], true)
                }
                CIPHER_CHACHA20_POLY1305 => {
                    nonce.copy_from_slice(&b[4..16]);
                    assert_eq!(b.len(), 56);
                    (&aead::CHACHA20_POLY1305, &b[16..48], &b[48..56], false)
                }
                c => panic!("cipher {c}"),
            };
            KernelRecords {
                version,
                key: aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap()),
                nonce,
                seq: u64::from_be_bytes(seq.try_into().unwrap()),
                explicit: explicit && version == TLS_1_2_VERSION,
            }
        }

        /// The nonce of the current record: TLS 1.3 and ChaCha20 XOR the sequence number into
        /// the IV; TLS 1.2 AES-GCM sends salt || iv with the iv as the explicit part.
        fn nonce(&self) -> [u8; 12] {
            let mut n = self.nonce;
            if !self.explicit {
                for (a, b) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
                    *a ^= b;
                }
            }
            n
        }

        fn advance(&mut self) {
            self.seq += 1;
            if self.explicit {
                let iv = u64::from_be_bytes(self.nonce[4..].try_into().unwrap()).wrapping_add(1);
                self.nonce[4..].copy_from_slice(&iv.to_be_bytes());
            }
        }

        /// One application-data record of `data`.
        fn seal(&mut self, data: &[u8]) -> Vec<u8> {
            let nonce = self.nonce();
            let tag_len = 16;
            let mut out;
            if self.version == TLS_1_3_VERSION {
                let mut inner = data.to_vec();
                inner.push(23);
                let len = (inner.len() + tag_len) as u16;
                let hdr = [23, 3, 3, (len >> 8) as u8, len as u8];
                self.key
                    .seal_in_place_append_tag(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(hdr),
                        &mut inner,
                    )
                    .unwrap();
                out = hdr.to_vec();
                out.extend_from_slice(&inner);
            } else {
                let mut aad = self.seq.to_be_bytes().to_vec();
                aad.extend_from_slice(&[23, 3, 3]);
                aad.extend_from_slice(&(data.len() as u16).to_be_bytes());
                let mut body = data.to_vec();
                self.key
                    .seal_in_place_append_tag(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(aad),
                        &mut body,
                    )
                    .unwrap();
                let explicit = if self.explicit { 8 } else { 0 };
                let len = (explicit + body.len()) as u16;
                out = vec![23, 3, 3, (len >> 8) as u8, len as u8];
                if self.explicit {
                    out.extend_from_slice(&nonce[4..]);
                }
                out.extend_from_slice(&body);
            }
            self.advance();
            out
        }

        /// Opens one application-data record (whole, header included).
        fn open(&mut self, rec: &[u8]) -> Vec<u8> {
            assert_eq!(rec[0], 23, "application data record");
            let hdr: [u8; 5] = rec[..5].try_into().unwrap();
            let mut body = rec[5..].to_vec();
            let plain = if self.version == TLS_1_3_VERSION {
                let n = aead::Nonce::assume_unique_for_key(self.nonce());
                let p = self
                    .key
                    .open_in_place(n, aead::Aad::from(hdr), &mut body)
                    .expect("the peer's record opens with the RX keys");
                let mut p = p.to_vec();
                while p.last() == Some(&0) {
                    p.pop();
                }
                assert_eq!(p.pop(), Some(23), "inner content type");
                p
            } else {
                let mut nonce = self.nonce();
                if self.explicit {
                    nonce[4..].copy_from_slice(&body[..8]);
                    body.drain(..8);
                }
                let mut aad = self.seq.to_be_bytes().to_vec();
                aad.extend_from_slice(&[23, 3, 3]);
                aad.extend_from_slice(&((body.len() - 16) as u16).to_be_bytes());
                let n = aead::Nonce::assume_unique_for_key(nonce);
                self.key
                    .open_in_place(n, aead::Aad::from(aad), &mut body)
                    .expect("the peer's record opens with the RX keys")
                    .to_vec()
            };
            self.seq += 1;
            plain
        }
    }

    /// TLS 1.2 AES-GCM: the kernel's explicit nonces (its IV, incremented per record) never meet
    /// the ones rustls used (`iv XOR s` for its records `s < seq`).
    #[test]
    fn tls12_gcm_nonces_do_not_repeat_rustls_ones() {
        for explicit in [
            0u64,
            1,
            2,
            3,
            7,
            0x5555,
            u64::MAX,
            u64::MAX - 1,
            0x8000_0000_0000_0003,
        ] {
            for seq in 0..40u64 {
                let mut iv = [9u8; 12];
                iv[4..].copy_from_slice(&explicit.to_be_bytes());
                let start = u64::from_be_bytes(gcm_iv(&iv, true, seq));
                let used: Vec<u64> = (0..seq).map(|s| explicit ^ s).collect();
                for k in 0..1_000u64 {
                    assert!(
                        !used.contains(&start.wrapping_add(k)),
                        "explicit {explicit:#x}, seq {seq}: kernel record {k} reuses a nonce"
                    );
                }
                // TLS 1.3 (and ChaCha20, which has no explicit nonce): the IV as it is.
                assert_eq!(gcm_iv(&iv, false, seq), explicit.to_be_bytes());
            }
        }
    }

    /// Moves TLS bytes from `from` to `to` until neither has more to say.
    /// What the server sent is appended to `sent`.
    fn pump(client: &mut ClientConnection, server: &mut ServerConnection, sent: &mut Vec<u8>) {
        for _ in 0..20 {
            let mut moved = false;
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                moved = true;
                let mut s = &buf[..];
                while !s.is_empty() {
                    server.read_tls(&mut s).unwrap();
                }
                server.process_new_packets().unwrap();
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                moved = true;
                sent.extend_from_slice(&buf);
                let mut s = &buf[..];
                while !s.is_empty() {
                    client.read_tls(&mut s).unwrap();
                }
                client.process_new_packets().unwrap();
            }
            if !moved {
                return;
            }
        }
    }

    /// The explicit nonces of the encrypted TLS 1.2 records in `wire` (after ChangeCipherSpec).
    fn explicit_nonces(wire: &[u8]) -> Vec<[u8; 8]> {
        let (mut out, mut at, mut encrypted) = (Vec::new(), 0, wire.first() == Some(&23));
        while at + 5 <= wire.len() {
            let len = u16::from_be_bytes([wire[at + 3], wire[at + 4]]) as usize;
            if encrypted {
                out.push(wire[at + 5..at + 13].try_into().unwrap());
            }
            encrypted |= wire[at] == 20;
            at += 5 + len;
        }
        out
    }

    /// For each protocol version and kernel cipher: after a handshake (and the tickets, and
    /// some data both ways through rustls), the extracted keys make records the rustls client
    /// reads, and open the client's next record.
    #[test]
    fn extracted_keys_make_records_the_peer_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = make_cert(dir.path());
        let handle = TlsConfigHandle::new(TlsSettings {
            pairs: vec![PemPair::new(&cert, &key)],
            ..TlsSettings::default()
        })
        .unwrap();
        for suite in suites() {
            let mut server = ServerConnection::new(handle.server_config()).unwrap();
            let mut client = ClientConnection::new(
                Arc::new(client_config(suite, &cert)),
                "localhost".try_into().unwrap(),
            )
            .unwrap();
            let mut sent = Vec::new();
            pump(&mut client, &mut server, &mut sent);
            assert!(!server.is_handshaking() && !client.is_handshaking());
            // Some records through rustls first: the sequence numbers are not zero.
            client
                .writer()
                .write_all(b"GET / HTTP/1.1\r\n\r\n")
                .unwrap();
            server.writer().write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
            pump(&mut client, &mut server, &mut sent);
            let mut got = [0u8; 64];
            let n = server.reader().read(&mut got).unwrap();
            assert_eq!(&got[..n], b"GET / HTTP/1.1\r\n\r\n");
            let n = client.reader().read(&mut got).unwrap();
            assert_eq!(&got[..n], b"HTTP/1.1 200 OK\r\n");
            assert!(suite_supported(server.negotiated_cipher_suite().unwrap()));

            let version = server.protocol_version().unwrap();
            let secrets = server.dangerous_extract_secrets().unwrap();
            let tx = CryptoInfo::new(version, secrets.tx.0, &secrets.tx.1).unwrap();
            let rx = CryptoInfo::new(version, secrets.rx.0, &secrets.rx.1).unwrap();
            let mut tx = KernelRecords::from_info(&tx);
            let mut rx = KernelRecords::from_info(&rx);

            let mut wire = Vec::new();
            for i in 0..3u8 {
                wire.extend(tx.seal(&vec![i; 1000 + i as usize]));
            }
            let mut s = &wire[..];
            while !s.is_empty() {
                client.read_tls(&mut s).unwrap();
            }
            client
                .process_new_packets()
                .unwrap_or_else(|e| panic!("{suite:?}: the client refused kernel records: {e}"));
            let mut plain = Vec::new();
            let _ = client.reader().read_to_end(&mut plain);
            let want: Vec<u8> = (0..3u8).flat_map(|i| vec![i; 1000 + i as usize]).collect();
            assert_eq!(plain, want, "{suite:?}");
            // TLS 1.2 AES-GCM: no explicit nonce of the kernel's records was one of rustls's.
            if tx.explicit {
                let rustls_nonces = explicit_nonces(&sent);
                assert!(!rustls_nonces.is_empty(), "{suite:?}");
                for n in explicit_nonces(&wire) {
                    assert!(
                        !rustls_nonces.contains(&n),
                        "{suite:?}: nonce {n:x?} reused"
                    );
                }
            }

            client.writer().write_all(b"second request").unwrap();
            let mut rec = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut rec).unwrap();
            }
            assert_eq!(rx.open(&rec), b"second request", "{suite:?}");
        }
    }
}
