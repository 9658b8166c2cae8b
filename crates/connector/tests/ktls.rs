//! kTLS on the runtime's TLS listener, against curl: TLS 1.2 and 1.3 with each kernel cipher,
//! two requests on one connection (the second one read after the switch), bodies larger than
//! the socket buffers. On a kernel with kTLS every connection must have been handed to it (the
//! counter says so); on one without, the handshake is still read one whole record at a time
//! (`ktls::forget` makes each connection try) and rustls carries on.

mod common;

use common::{make_cert, pattern, until, TlsServer};
use mist_connector::{
    ktls, App, Ctl, Flow, Io, Limits, ListenerId, Peer, PemPair, Session, TlsConfigHandle,
    TlsSettings,
};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// `GET /big/N` answers N pattern bytes (keep-alive).
struct Web;

impl Session<Srv> for Web {
    fn on_read(&mut self, _: &mut Srv, io: &mut Io<'_>) {
        while let Some(end) = io.input().windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&io.input()[..end]).to_string();
            io.consume(end + 4);
            let n: usize = head
                .split(' ')
                .nth(1)
                .and_then(|p| p.strip_prefix("/big/"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            io.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes());
            io.write(&pattern(n));
        }
    }
}

struct Srv {
    stop: Arc<AtomicBool>,
}

impl App for Srv {
    type Session = Web;
    fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<Web> {
        Some(Web)
    }
    fn turn(&mut self, _: &mut Ctl<'_, Self>, _: Instant) -> Flow {
        until(&self.stop)
    }
}

/// curl fetching `/big/A` then `/big/B` on one connection, with `tls` options.
fn curl_two(addr: SocketAddr, ca: &Path, a: usize, b: usize, tls: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "--max-time", "60"])
        .args(tls)
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://127.0.0.1:{}/big/{a}", addr.port()))
        .arg(format!("https://127.0.0.1:{}/big/{b}", addr.port()))
        .output()
        .expect("curl is needed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "curl {tls:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn curl_reads_right_bytes_with_each_version_and_cipher() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "k", "ktls", &["localhost"], false);
    let tls = TlsConfigHandle::new(TlsSettings {
        pairs: vec![PemPair::new(&cert, &key)],
        ..TlsSettings::default()
    })
    .unwrap();
    let l = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let srv = TlsServer::start(l, "ktls-test", Limits::default(), tls, |stop| Srv { stop });
    let addr = srv.addr;

    let has = ktls::kernel_has_ktls();
    let cases: [&[&str]; 6] = [
        &["--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"],
        &["--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"],
        &[
            "--tlsv1.3",
            "--tls13-ciphers",
            "TLS_CHACHA20_POLY1305_SHA256",
        ],
        &[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ],
        &[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ],
        &[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
        ],
    ];
    for (i, case) in cases.iter().enumerate() {
        ktls::forget();
        let (a, b) = (3 << 20, 70_000 + i);
        let got = curl_two(addr, &cert, a, b, case);
        let mut want = pattern(a);
        want.extend(pattern(b));
        assert_eq!(got.len(), want.len(), "{case:?}");
        assert!(got == want, "{case:?}: bytes corrupted");
        if has {
            assert_eq!(
                ktls::engaged(),
                i as u64 + 1,
                "{case:?}: the kernel has kTLS but the connection stayed in rustls"
            );
        } else {
            assert_eq!(ktls::engaged(), 0, "no kTLS in this kernel, yet engaged");
        }
    }
    srv.stop();
}
