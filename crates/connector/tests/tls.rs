//! TLS listeners against real clients (curl, openssl s_client) with certificates made by
//! `openssl req -x509`: a page over HTTPS, ALPN, SNI choice, hot reload of certbot-style
//! symlinked files with an old connection kept, and bad handshakes closed without harm to others.

mod common;

use common::{make_cert, make_leaf, pattern, until, TlsServer};
use mist_connector::{
    App, Ctl, Flow, Io, Limits, ListenerId, Peer, PemPair, Runtime, Session, TlsConfigHandle,
    TlsSettings,
};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Answers `GET` requests with a small page naming the path; echoes any other line.
#[derive(Default)]
struct Web;

impl Session<Srv> for Web {
    fn on_read(&mut self, _: &mut Srv, io: &mut Io<'_>) {
        loop {
            let input = io.input();
            if input.starts_with(b"GET ") {
                let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return;
                };
                let head = String::from_utf8_lossy(&input[..end]).to_string();
                io.consume(end + 4);
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                if let Some(n) = path.strip_prefix("/big/").and_then(|n| n.parse().ok()) {
                    io.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes());
                    io.write(&pattern(n));
                    continue;
                }
                let body = format!("hello over TLS: {path}\n");
                io.write(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            } else if let Some(nl) = input.iter().position(|&b| b == b'\n') {
                let line = input[..=nl].to_vec();
                io.consume(nl + 1);
                io.write(&line);
            } else {
                return;
            }
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

fn start(tls: TlsConfigHandle) -> TlsServer {
    start_with(tls, Limits::default())
}

fn start_with(tls: TlsConfigHandle, limits: Limits) -> TlsServer {
    let l = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    TlsServer::start(l, "https-test", limits, tls, |stop| Srv { stop })
}

fn curl(addr: SocketAddr, ca: &Path, path: &str) -> String {
    String::from_utf8(curl_bytes(addr, ca, path)).unwrap()
}

fn curl_bytes(addr: SocketAddr, ca: &Path, path: &str) -> Vec<u8> {
    curl_with(addr, ca, path, &[])
}

fn curl_with(addr: SocketAddr, ca: &Path, path: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "--max-time", "30"])
        .args(extra)
        .arg("--cacert")
        .arg(ca)
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", addr.port()))
        .arg(format!("https://localhost:{}{path}", addr.port()))
        .output()
        .expect("curl is needed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `openssl s_client` handshake only (stdin empty): its report, spaces removed.
fn s_client(addr: SocketAddr, sni: &str, ca: &Path) -> String {
    s_client_with(addr, sni, ca, &[])
}

fn s_client_with(addr: SocketAddr, sni: &str, ca: &Path, extra: &[&OsStr]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-showcerts"])
        .args(["-servername", sni, "-alpn", "http/1.1"])
        .args(extra)
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is needed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.replace(' ', "")
}

/// A long-lived `openssl s_client -quiet` connection: lines in, echoes out.
struct LineClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl LineClient {
    fn open(addr: SocketAddr, ca: &Path) -> LineClient {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &addr.to_string()])
            .args([
                "-servername",
                "localhost",
                "-verify_return_error",
                "-CAfile",
            ])
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl is needed");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        LineClient {
            child,
            stdin,
            lines,
        }
    }

    fn echo(&mut self, line: &str) -> String {
        let w = self.stdin.as_mut().unwrap();
        w.write_all(format!("{line}\n").as_bytes()).unwrap();
        w.flush().unwrap();
        // A guard against a hang, not a timing requirement.
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no echo of {line:?}: the connection is gone"))
    }
}

impl Drop for LineClient {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until the server closes; false if it stays open for 30 s (a guard, not a timing).
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn curl_fetches_a_page_over_tls_with_rsa_and_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "rsa", "rsa-server", &["localhost"], true);
    let tls = TlsConfigHandle::from_pem_files(&cert, &key).unwrap();
    let srv = start(tls);
    assert_eq!(
        curl(srv.addr, &cert, "/some/where?x=1"),
        "hello over TLS: /some/where?x=1\n"
    );
    // Two in a row on fresh connections, then s_client for the details.
    assert_eq!(curl(srv.addr, &cert, "/2"), "hello over TLS: /2\n");
    // Larger than socket buffers: TLS records wait in rustls while the socket is full, and
    // the last of them must still leave once the output queue is empty.
    // A reader slower than the server keeps the socket full, so the last records wait too.
    for n in [3 << 20, 100_000, 16_385] {
        let got = curl_with(
            srv.addr,
            &cert,
            &format!("/big/{n}"),
            &["--limit-rate", "4M"],
        );
        assert_eq!(got.len(), n);
        assert!(got == pattern(n), "{n} bytes arrived corrupted");
    }
    let rep = s_client(srv.addr, "localhost", &cert);
    assert!(rep.contains("ALPNprotocol:http/1.1"), "no ALPN: {rep}");
    assert!(
        rep.contains("Verifyreturncode:0(ok)"),
        "not verified: {rep}"
    );
    assert!(rep.contains("subject=CN=rsa-server"), "wrong leaf: {rep}");
    // Session resumption (TLS 1.2 here: s_client with an empty stdin leaves before a TLS 1.3
    // ticket arrives).
    let sess = dir.path().join("session.pem");
    let save = [
        OsStr::new("-tls1_2"),
        OsStr::new("-sess_out"),
        sess.as_os_str(),
    ];
    let rep = s_client_with(srv.addr, "localhost", &cert, &save);
    assert!(rep.contains("New,TLSv1.2"), "{rep}");
    let reuse = [
        OsStr::new("-tls1_2"),
        OsStr::new("-sess_in"),
        sess.as_os_str(),
    ];
    let rep = s_client_with(srv.addr, "localhost", &cert, &reuse);
    assert!(rep.contains("Reused,TLSv1.2"), "not resumed: {rep}");
}

#[test]
fn ecdsa_pairs_are_picked_by_sni() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ka) = make_cert(dir.path(), "a", "alpha", &["alpha.test"], false);
    let (cb, kb) = make_cert(dir.path(), "b", "beta", &["beta.test", "localhost"], false);
    let tls = TlsConfigHandle::new(TlsSettings {
        pairs: vec![PemPair::new(&ca, &ka), PemPair::new(&cb, &kb)],
        ..TlsSettings::default()
    })
    .unwrap();
    let srv = start(tls);
    let rep = s_client(srv.addr, "beta.test", &cb);
    assert!(rep.contains("subject=CN=beta"), "SNI beta.test: {rep}");
    assert!(rep.contains("Verifyreturncode:0(ok)"), "{rep}");
    let rep = s_client(srv.addr, "alpha.test", &ca);
    assert!(rep.contains("subject=CN=alpha"), "SNI alpha.test: {rep}");
    // No pair for the name: the first one.
    let rep = s_client(srv.addr, "other.test", &ca);
    assert!(rep.contains("subject=CN=alpha"), "SNI other.test: {rep}");
    assert_eq!(curl(srv.addr, &cb, "/beta"), "hello over TLS: /beta\n");
}

/// certbot's layout: `live/NAME/fullchain.pem` links to `archive/NAME/fullchainN.pem`; a
/// renewal writes new archive files and switches the links.
fn link(target: &Path, at: &Path) {
    let tmp = at.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, at).unwrap();
}

#[test]
fn renewed_certificate_serves_new_connections_and_old_ones_keep_going() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let live = dir.path().join("live");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    let (c1, k1) = make_cert(&archive, "1", "first", &["localhost"], false);
    let (fullchain, privkey) = (live.join("fullchain.pem"), live.join("privkey.pem"));
    link(&c1, &fullchain);
    link(&k1, &privkey);
    let tls = TlsConfigHandle::from_pem_files(&fullchain, &privkey).unwrap();
    let srv = start(tls);

    let mut old = LineClient::open(srv.addr, &c1);
    assert_eq!(old.echo("before the renewal"), "before the renewal");
    let rep = s_client(srv.addr, "localhost", &c1);
    assert!(rep.contains("subject=CN=first"), "{rep}");

    // Renewal: new files, links switched (no call into the server).
    let (c2, k2) = make_cert(&archive, "2", "second", &["localhost"], false);
    link(&c2, &fullchain);
    link(&k2, &privkey);
    let rep = s_client(srv.addr, "localhost", &c2);
    assert!(
        rep.contains("subject=CN=second"),
        "new leaf not served: {rep}"
    );
    assert!(rep.contains("Verifyreturncode:0(ok)"), "{rep}");
    assert_eq!(curl(srv.addr, &c2, "/after"), "hello over TLS: /after\n");
    // The connection made before the renewal still works.
    assert_eq!(old.echo("after the renewal"), "after the renewal");

    // A broken renewal (key of another certificate): the server keeps the last good pair.
    let (_c3, k3) = make_cert(&archive, "3", "third", &["localhost"], false);
    link(&k3, &privkey);
    let rep = s_client(srv.addr, "localhost", &c2);
    assert!(rep.contains("subject=CN=second"), "{rep}");
    assert!(rep.contains("Verifyreturncode:0(ok)"), "{rep}");
    assert_eq!(old.echo("still here"), "still here");
}

#[test]
fn garbage_and_stalled_handshakes_are_closed_without_harm_to_others() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "g", "garbage-test", &["localhost"], false);
    let tls = TlsConfigHandle::new(TlsSettings {
        pairs: vec![PemPair::new(&cert, &key)],
        handshake_timeout: Duration::from_secs(1),
        ..TlsSettings::default()
    })
    .unwrap();
    let srv = start(tls);
    let mut good = LineClient::open(srv.addr, &cert);
    assert_eq!(good.echo("hello"), "hello");

    // Plain HTTP on the TLS port.
    let mut plain = TcpStream::connect(srv.addr).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(closed_by_server(&mut plain), "plain HTTP not closed");
    // Random bytes.
    let mut junk = TcpStream::connect(srv.addr).unwrap();
    let bytes: Vec<u8> = (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let _ = junk.write_all(&bytes);
    assert!(closed_by_server(&mut junk), "random bytes not closed");
    // A truncated ClientHello: a handshake record header announcing more than ever comes.
    let mut stalled = TcpStream::connect(srv.addr).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    // Nothing at all.
    let mut silent = TcpStream::connect(srv.addr).unwrap();
    assert!(
        closed_by_server(&mut stalled),
        "stalled handshake not closed"
    );
    assert!(closed_by_server(&mut silent), "silent peer not closed");

    assert_eq!(good.echo("still served"), "still served");
    assert_eq!(curl(srv.addr, &cert, "/ok"), "hello over TLS: /ok\n");
}

#[test]
fn key_not_matching_its_certificate_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, _k1) = make_cert(dir.path(), "one", "one", &["localhost"], false);
    let (_c2, k2) = make_cert(dir.path(), "two", "two", &["localhost"], false);
    let err = TlsConfigHandle::from_pem_files(&c1, &k2).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("does not match"), "{msg}");
    assert!(msg.contains("two.key.pem"), "{msg}");
    let err = TlsConfigHandle::from_pem_files(&c1, dir.path().join("missing.pem")).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // A key file given as the certificate.
    let err = TlsConfigHandle::from_pem_files(&k2, &k2).unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
}

/// The contract the runtime relies on: when the socket is full, rustls keeps the records of
/// the last accepted write, `write` takes nothing more (`WouldBlock`), and `flush` answers
/// `WouldBlock` until they are out, then `Ok`; every byte accepted reaches the client.
#[test]
fn records_held_while_the_socket_is_full_leave_on_flush() {
    use mist_connector::Stream;
    let dir = tempfile::tempdir().unwrap();
    // rustls (webpki) takes a self-signed leaf as its own trust anchor only when it is no CA.
    let (cert, key) = make_leaf(dir.path(), "held");
    // rustls's own records are the subject here: no kTLS, even where the kernel has it.
    let tls = TlsConfigHandle::new(TlsSettings {
        pairs: vec![PemPair::new(&cert, &key)],
        ktls: false,
        ..TlsSettings::default()
    })
    .unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();

    // The client: handshake, then wait for the go, then read `n` bytes.
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&cert).unwrap();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (go_tx, go_rx) = mpsc::channel::<usize>();
    let client = std::thread::spawn(move || {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let conn =
            rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).unwrap();
        }
        let n = go_rx.recv().unwrap();
        let mut got = vec![0u8; n];
        s.read_exact(&mut got).map(|()| got)
    });
    let (sock, peer) = l.accept().unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut server = tls
        .accept(mio::net::TcpStream::from_std(sock), peer, "held-test")
        .unwrap();
    let guard = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while server.deadline().is_some() {
        assert!(Instant::now() < guard, "handshake never finished");
        match server.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            r => panic!("handshake: {r:?}"),
        }
        let _ = server.flush();
    }
    // Fill the socket while the client does not read.
    let data = pattern(64 << 20);
    let mut sent = 0;
    loop {
        match server.write(&data[sent..(sent + (64 << 10)).min(data.len())]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
        assert!(sent < data.len(), "the socket never filled up");
    }
    let held = server.flush();
    assert!(
        matches!(&held, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "records should be held: {held:?}"
    );
    go_tx.send(sent).unwrap();
    loop {
        match server.flush() {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < guard + Duration::from_secs(30),
                    "never flushed"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("flush: {e}"),
        }
    }
    let got = client.join().unwrap().expect("client read");
    assert!(got == data[..sent], "bytes lost or corrupted");
}

#[test]
fn a_flood_of_half_open_handshakes_leaves_viewers_served_and_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "f", "flood", &["localhost"], false);
    let tls = TlsConfigHandle::new(TlsSettings {
        pairs: vec![PemPair::new(&cert, &key)],
        handshake_timeout: Duration::from_secs(2),
        ..TlsSettings::default()
    })
    .unwrap();
    let limits = Limits {
        max_conns: 1000,
        max_per_ip: 1000,
        ..Limits::default()
    };
    let srv = start_with(tls, limits);
    let mut viewer = LineClient::open(srv.addr, &cert);
    assert_eq!(viewer.echo("before"), "before");
    // Half-open: a record header announcing a ClientHello that never comes.
    let mut flood: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(srv.addr).unwrap();
            s.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00])
                .unwrap();
            s
        })
        .collect();
    assert_eq!(viewer.echo("during"), "during");
    assert_eq!(
        curl(srv.addr, &cert, "/during"),
        "hello over TLS: /during\n"
    );
    for (i, s) in flood.iter_mut().enumerate() {
        assert!(closed_by_server(s), "half-open handshake {i} not closed");
    }
    assert_eq!(viewer.echo("after"), "after");
}

/// A client of the runtime's own: one line out on a [`mist_connector::TlsClientStream`],
/// what comes back kept; the loop stops at the first whole line or at the close.
struct LineOut(String);

#[derive(Default)]
struct Cli {
    got: Vec<u8>,
    closed: bool,
    /// A guard against a hang (not a timing requirement).
    give_up: Option<Instant>,
}

impl Session<Cli> for LineOut {
    fn on_wake(&mut self, _: &mut Cli, io: &mut Io<'_>) {
        io.write(self.0.as_bytes());
    }
    fn on_read(&mut self, app: &mut Cli, io: &mut Io<'_>) {
        app.got.extend_from_slice(io.input());
        io.clear_input();
    }
    fn on_close(&mut self, app: &mut Cli, _: mist_connector::ConnId, _: Peer) {
        app.closed = true;
    }
}

impl App for Cli {
    type Session = LineOut;
    fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<LineOut> {
        None
    }
    fn turn(&mut self, _: &mut Ctl<'_, Self>, now: Instant) -> Flow {
        let done = self.closed || self.got.ends_with(b"\n");
        if done || self.give_up.is_some_and(|t| now >= t) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

/// Sends `line` to `addr` over the client side of the TLS transport, trusting `ca`: what came
/// back, and the reason of a TLS failure if there was one.
fn tls_client_echo(addr: SocketAddr, ca: &Path, line: &str) -> (String, Option<String>) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = mio::net::TcpStream::connect(addr).unwrap();
    let now = Instant::now();
    let stream = mist_connector::TlsClientStream::new(tcp, conn, now + Duration::from_secs(30));
    let why = stream.error_slot();
    let mut rt = Runtime::<Cli>::new().unwrap();
    rt.set_max_wait(Duration::from_millis(100));
    let id = rt
        .adopt(
            Box::new(stream),
            Peer::Tcp(addr),
            "tls-client",
            Limits::default(),
            LineOut(line.to_string()),
        )
        .unwrap();
    rt.remote().wake(id);
    let mut app = Cli {
        give_up: Some(now + Duration::from_secs(60)),
        ..Cli::default()
    };
    rt.run(&mut app).unwrap();
    let why = why.lock().unwrap().take();
    (String::from_utf8_lossy(&app.got).into_owned(), why)
}

#[test]
fn client_side_echoes_through_a_tls_listener_and_says_why_an_untrusted_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_leaf(dir.path(), "srv");
    let srv = start(TlsConfigHandle::from_pem_files(&cert, &key).unwrap());
    // Both sides of the one transport: plaintext queued before the handshake leaves after it.
    let (got, why) = tls_client_echo(srv.addr, &cert, "over the client side\n");
    assert_eq!(got, "over the client side\n", "TLS failure: {why:?}");
    assert_eq!(why, None);
    // A certificate the client does not trust: nothing comes back, and the slot says why.
    let (other, _) = make_leaf(dir.path(), "other");
    let (got, why) = tls_client_echo(srv.addr, &other, "never seen\n");
    assert_eq!(got, "");
    let why = why.expect("the failure's reason in the error slot");
    assert!(
        why.starts_with("TLS: ") && why.contains("certificate"),
        "{why}"
    );
}
