//! 10 000 half-open TLS handshakes (a record header announcing a ClientHello that never comes)
//! against one TLS listener that admits them all: the listener's memory grows by a bounded amount
//! per connection, a viewer is served during the flood, and the handshake timeout closes every
//! one of them. The flood comes from a python3 child (its own descriptor limit: the two sides
//! together would need more descriptors than one process may have here).

mod common;

use common::{make_cert, until, TlsServer};
use mist_connector::{
    App, Ctl, Flow, Io, Limits, ListenerId, Peer, PemPair, Session, TlsConfigHandle, TlsSettings,
};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLOOD: usize = 10_000;

/// `GET /N` answers N bytes.
struct Web;

impl Session<Srv> for Web {
    fn on_read(&mut self, _: &mut Srv, io: &mut Io<'_>) {
        while let Some(end) = io.input().windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&io.input()[..end]).to_string();
            io.consume(end + 4);
            let n: usize = head
                .split(' ')
                .nth(1)
                .and_then(|p| p[1..].parse().ok())
                .unwrap_or(0);
            io.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes());
            io.write(&vec![b'x'; n]);
        }
    }
    fn on_close(&mut self, app: &mut Srv, _: mist_connector::ConnId, _: Peer) {
        app.open.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Srv {
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
}

impl App for Srv {
    type Session = Web;
    fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<Web> {
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Web)
    }
    fn turn(&mut self, _: &mut Ctl<'_, Self>, _: Instant) -> Flow {
        until(&self.stop)
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn curl_len(port: u16, ca: &Path, n: usize) -> usize {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--cacert"])
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}/{n}"))
        .output()
        .expect("curl is needed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.len()
}

/// The flood: connects, sends a ClientHello record header and two bytes, says `ready`; on a
/// line from stdin, counts the connections the server closed (within 40 s) and says it.
const FLOODER: &str = r#"
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(bytes([0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00]))
    socks.append(s)
print("ready", flush=True)
sys.stdin.readline()
closed, end = 0, time.time() + 40
for s in socks:
    s.settimeout(max(0.01, end - time.time()))
    try:
        while s.recv(4096):
            pass
        closed += 1
    except ConnectionResetError:
        closed += 1
    except OSError:
        pass
print(closed, flush=True)
"#;

#[test]
fn ten_thousand_half_open_handshakes_cost_bounded_memory_and_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "f", "flood", &["localhost"], false);
    let tls = TlsConfigHandle::new(TlsSettings {
        pairs: vec![PemPair::new(&cert, &key)],
        handshake_timeout: Duration::from_secs(15),
        ..TlsSettings::default()
    })
    .unwrap();
    let limits = Limits {
        max_conns: 2 * FLOOD,
        max_per_ip: 2 * FLOOD,
        ..Limits::default()
    };
    let open = Arc::new(AtomicUsize::new(0));
    // The runtime's listeners have a backlog for a burst (mio's 128 would drop SYNs of the
    // flood, which would then crawl on retries).
    let l = mist_connector::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let o2 = open.clone();
    let srv = TlsServer::start(l, "flood-test", limits, tls, |stop| Srv { stop, open: o2 });
    let port = srv.addr.port();

    assert_eq!(curl_len(port, &cert, 100_000), 100_000);
    let before = rss_kib();
    let mut flood = Command::new("python3")
        .args(["-c", FLOODER, &port.to_string(), &FLOOD.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed (scripts/test installs it)");
    let mut out = BufReader::new(flood.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the flood did not connect");
    // All of them are held (none refused: the caps are above the flood), once accepted.
    let end = Instant::now() + Duration::from_secs(10);
    while open.load(Ordering::Relaxed) < FLOOD && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let held = open.load(Ordering::Relaxed);
    let grown = rss_kib().saturating_sub(before);
    eprintln!("{held} half-open handshakes held; RSS grew {grown} KiB");
    assert!(held >= FLOOD * 9 / 10, "only {held} connections held");
    // About 10 KiB each (rustls's first 4 KiB read buffer and its connection state).
    assert!(
        grown < (FLOOD as u64) * 16,
        "{held} half-open handshakes grew the memory by {grown} KiB (more than 16 KiB each)"
    );
    // A viewer is served meanwhile.
    assert_eq!(curl_len(port, &cert, 1_000_000), 1_000_000);
    // The handshake timeout closes every one of them.
    flood.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    let closed: usize = line.trim().parse().unwrap_or(0);
    let _ = flood.wait();
    assert_eq!(
        closed, FLOOD,
        "half-open handshakes left open by the server"
    );
    assert_eq!(curl_len(port, &cert, 10), 10);
    srv.stop();
}
