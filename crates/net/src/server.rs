//! An HTTP/1.1 server on the connector runtime (`mist_connector::Runtime`), for outputs that
//! serve many viewers. The HTTP framing is a sans-IO session ([`crate::http_session`]); the
//! runtime owns the sockets, the output queues, the connection caps (per listener and per
//! remote address) and the panic fences.
//!
//! The [`Server`] owns the listener; an application implements [`Handler`] and answers
//! requests through [`Io`]:
//!
//! * [`Io::respond`]: a complete answer (static or generated body as one `Bytes`) with HEAD,
//!   single-range `Range` (206/416) and keep-alive handled here;
//! * [`Io::respond_body`]: a large body of known length produced on demand ([`Body`]: e.g. a
//!   progressive file made of headers and shared-memory payloads), pulled as the socket drains,
//!   with HEAD and single-range `Range` handled the same way;
//! * [`Io::start_stream`] + [`Io::send`] + [`Io::end_stream`]: a live body of unknown length,
//!   chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0 ones;
//! * or nothing yet: the request stays pending (the connection reads no further request) until
//!   the handler answers later, e.g. when a stream becomes available.
//!
//! Bodies are queues of `bytes::Bytes` written with vectored writes, so bytes muxed once can be
//! queued on many connections without copies. Every connection is bounded: request head
//! ([`ServerConfig::max_head`], 431), request line ([`ServerConfig::max_line`], 414), unparsable
//! bytes (400, then close), bodies (413), `Transfer-Encoding` (501), idle keep-alive and
//! half-sent requests (timeouts), and the queued output ([`ServerConfig::max_backlog`]: a client
//! that does not read is dropped). Every answer carries `Access-Control-Allow-Origin: *`.

pub use crate::body::{parse_range, Body, FileBody, Unsatisfiable, BODY_LOW};
pub use crate::config::{ServerConfig, DEFAULT_MAX_PER_IP, MERGE_BYTES};
pub use crate::http_session::{ConnId, Handler, Io};

use crate::http_session::HttpApp;
use mist_connector::mio::Waker;
use mist_connector::{Limits, Runtime};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The listener, on its own connector runtime.
pub struct Server<H: Handler> {
    rt: Runtime<HttpApp<H>>,
    addr: SocketAddr,
    cfg: ServerConfig,
}

/// The runtime limits of the HTTP listener.
fn limits(cfg: &ServerConfig) -> Limits {
    let d = Limits::default();
    Limits {
        max_conns: cfg.max_conns,
        max_per_ip: if cfg.max_per_ip == 0 {
            usize::MAX
        } else {
            cfg.max_per_ip
        },
        // The session moves every read into its own request buffer, bounded there.
        max_input: d
            .max_input
            .max(cfg.max_head + cfg.max_body + 4096 + d.read_budget),
        read_budget: d.read_budget,
        max_output: cfg.max_backlog,
        pause_output: d.pause_output.min(cfg.max_backlog),
        // The session times requests and keep-alive idling itself (its timer); this only ends
        // connections that never send a byte and have nothing to receive.
        header_timeout: None,
        idle_timeout: Some(cfg.idle_timeout * 4),
        write_timeout: Some(cfg.write_timeout),
    }
}

impl<H: Handler> Server<H> {
    /// Listens on `addr`.
    pub fn bind(addr: SocketAddr, cfg: ServerConfig) -> io::Result<Server<H>> {
        let listener = mist_connector::bind_tcp(addr)?;
        let addr = listener.local_addr()?;
        let mut rt = Runtime::new()?;
        rt.listen_tcp(listener, "HTTP", limits(&cfg))?;
        Ok(Server { rt, addr, cfg })
    }

    /// Listens on `addr` with TLS (HTTPS): the same sessions over the connector's TLS transport
    /// (certificate files hot-reloaded by `tls`; file bodies are read instead of sendfile'd).
    pub fn bind_tls(
        addr: SocketAddr,
        cfg: ServerConfig,
        tls: mist_connector::TlsConfigHandle,
    ) -> io::Result<Server<H>> {
        let listener = mist_connector::bind_tcp(addr)?;
        let addr = listener.local_addr()?;
        let mut rt = Runtime::new()?;
        rt.listen_tcp_tls(listener, "HTTPS", limits(&cfg), tls)?;
        Ok(Server { rt, addr, cfg })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }

    /// Wakes the loop from another thread ([`Handler::wake`] runs).
    pub fn waker(&self) -> Arc<Waker> {
        self.rt.remote().waker()
    }

    /// Runs `h` until `stop` is set.
    pub fn run(&mut self, h: H, stop: Arc<AtomicBool>) -> io::Result<()> {
        let mut app = HttpApp::new(h, self.cfg.clone(), stop);
        self.rt.run(&mut app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::find;
    use crate::http::{Request, Response};
    use bytes::Bytes;
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use std::time::Instant;

    struct Echo;
    impl Handler for Echo {
        fn request(&mut self, io: &mut Io, id: ConnId, req: Request) {
            match req.path.as_str() {
                "/live" => {
                    if io.start_stream(id, 200, &[("Content-Type", "text/plain")]) {
                        io.send(
                            id,
                            &[Bytes::from_static(b"abc"), Bytes::from_static(b"def")],
                        );
                        io.end_stream(id);
                    }
                }
                p if p.starts_with("/body/") => {
                    let n = p[6..].parse().unwrap();
                    io.respond_body(id, Response::new(200), Box::new(Pattern(n)));
                }
                p if p.starts_with("/file/") => {
                    let n = p[6..].parse().unwrap();
                    let f = FileBody::from_bytes("test", &pattern(0, n)).unwrap();
                    io.respond_body(id, Response::new(200), Box::new(f));
                }
                p if p.starts_with("/answer/") => {
                    // The whole answer stored in the file (one sendfile for a plain GET).
                    let n = p[8..].parse().unwrap();
                    let r = Response::new(200).header("Content-Type", "video/mp2t");
                    let f = FileBody::answer("test", r, &pattern(0, n)).unwrap();
                    io.respond_file(id, f);
                }
                p => io.respond(
                    id,
                    Response::new(200).header("Content-Type", "text/plain"),
                    Bytes::from(p.to_string()),
                ),
            }
        }
        fn closed(&mut self, _io: &mut Io, _id: ConnId) {}
    }

    /// A generated body: byte `i` is `i % 251`, produced in pieces of at most 1000 bytes.
    struct Pattern(u64);
    impl Body for Pattern {
        fn len(&self) -> u64 {
            self.0
        }
        fn read(&mut self, offset: u64, max: usize) -> Vec<Bytes> {
            let mut out = Vec::new();
            let mut at = offset;
            let end = self.0.min(offset + max as u64);
            while at < end {
                let n = (end - at).min(1000);
                out.push(Bytes::from(
                    (at..at + n).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
                ));
                at += n;
            }
            out
        }
    }

    fn pattern(a: u64, b: u64) -> Vec<u8> {
        (a..b).map(|i| (i % 251) as u8).collect()
    }

    /// Six pipelined requests on bodies under `prefix` (`/body/N`: generated, `/file/N`: a
    /// FileBody sent with sendfile): whole, a range, HEAD, a suffix range, an unsatisfiable
    /// range, then a plain answer.
    fn check_bodies(prefix: &str) {
        let big = 3_000_000u64;
        let req = format!(
            "GET {prefix}{big} HTTP/1.1\r\n\r\nGET {prefix}{big} HTTP/1.1\r\nRange: bytes=1000-1999\r\n\r\nHEAD {prefix}{big} HTTP/1.1\r\n\r\nGET {prefix}{big} HTTP/1.1\r\nRange: bytes=-700000\r\n\r\nGET {prefix}10 HTTP/1.1\r\nRange: bytes=10-\r\n\r\nGET /after HTTP/1.1\r\nConnection: close\r\n\r\n"
        );
        let out = exchange_bytes(req.as_bytes());
        // Split the answers by their Content-Length.
        let mut at = 0;
        let mut answers = Vec::new();
        while at < out.len() {
            let h = find(&out[at..], b"\r\n\r\n").expect("head") + at + 4;
            let head = String::from_utf8_lossy(&out[at..h]).into_owned();
            let n: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            let body_len = if answers.len() == 2 { 0 } else { n };
            answers.push((head, out[h..h + body_len].to_vec()));
            at = h + body_len;
        }
        assert_eq!(answers.len(), 6, "{prefix}");
        assert!(answers[0].0.starts_with("HTTP/1.1 200"), "{}", answers[0].0);
        assert!(answers[0].0.contains("Accept-Ranges: bytes"));
        assert_eq!(answers[0].1, pattern(0, big));
        assert!(answers[1].0.starts_with("HTTP/1.1 206"));
        assert!(answers[1]
            .0
            .contains(&format!("Content-Range: bytes 1000-1999/{big}")));
        assert_eq!(answers[1].1, pattern(1000, 2000));
        assert!(answers[2].0.contains(&format!("Content-Length: {big}")));
        assert_eq!(answers[3].1, pattern(big - 700_000, big));
        assert!(answers[4].0.starts_with("HTTP/1.1 416"), "{}", answers[4].0);
        assert!(answers[4].0.contains("Content-Range: bytes */10"));
        assert_eq!(answers[5].1, b"/after");
    }

    #[test]
    fn generated_bodies_with_ranges_head_and_pipelining() {
        check_bodies("/body/");
    }

    #[test]
    fn file_bodies_by_sendfile_with_ranges_head_and_pipelining() {
        check_bodies("/file/");
        // The fallback read path gives the same bytes.
        let mut f = FileBody::from_bytes("x", b"hello world").unwrap();
        assert_eq!(
            Body::read(&mut f, 6, 100),
            vec![Bytes::from_static(b"world")]
        );
    }

    #[test]
    fn stored_answers_with_ranges_head_and_pipelining() {
        check_bodies("/answer/");
        let mut f = FileBody::answer("x", Response::new(200), b"hello world").unwrap();
        assert_eq!(
            Body::read(&mut f, 6, 100),
            vec![Bytes::from_static(b"world")]
        );
        // A plain GET gets exactly the head respond_body would have built, from the file.
        let end = "GET /end HTTP/1.1\r\nConnection: close\r\n\r\n";
        let stored = exchange(format!("GET /answer/5 HTTP/1.1\r\n\r\n{end}").as_bytes());
        let built = exchange(format!("GET /file/5 HTTP/1.1\r\n\r\n{end}").as_bytes());
        assert_eq!(
            stored.replace("Content-Type: video/mp2t\r\n", ""),
            built,
            "{stored}"
        );
        // A closing connection is answered with Connection: close, not the stored head.
        let close = exchange(b"GET /answer/5 HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(close.contains("Connection: close\r\n"), "{close}");
        assert!(close.contains("Content-Type: video/mp2t\r\n"), "{close}");
    }

    fn exchange(req: &[u8]) -> String {
        String::from_utf8_lossy(&exchange_bytes(req)).into_owned()
    }

    fn exchange_bytes(req: &[u8]) -> Vec<u8> {
        let mut srv =
            Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).unwrap();
        let addr = srv.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || srv.run(Echo, s2).unwrap());
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        out
    }

    #[test]
    fn pipelining_head_range_chunked() {
        let out = exchange(b"GET /abcdef HTTP/1.1\r\n\r\nHEAD /xyz HTTP/1.1\r\n\r\nGET /0123456789 HTTP/1.1\r\nRange: bytes=2-4\r\n\r\nGET /live HTTP/1.1\r\nConnection: close\r\n\r\n");
        let parts: Vec<&str> = out.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(parts.len(), 4, "{out}");
        assert!(
            parts[0].starts_with("200") && parts[0].ends_with("\r\n\r\n/abcdef"),
            "{}",
            parts[0]
        );
        assert!(parts[0].contains("Access-Control-Allow-Origin: *"));
        assert!(
            parts[1].contains("Content-Length: 4\r\n") && parts[1].ends_with("\r\n\r\n"),
            "{}",
            parts[1]
        );
        assert!(
            parts[2].starts_with("206")
                && parts[2].contains("Content-Range: bytes 2-4/11")
                && parts[2].ends_with("\r\n\r\n123"),
            "{}",
            parts[2]
        );
        assert!(
            parts[3].contains("Transfer-Encoding: chunked")
                && parts[3].ends_with("\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n"),
            "{}",
            parts[3]
        );
    }

    /// Streams 64 KiB chunks forever on every tick to `/flood`; records closed connections.
    struct Flood {
        viewers: Vec<ConnId>,
        closed: Arc<std::sync::Mutex<Vec<ConnId>>>,
    }
    impl Handler for Flood {
        fn request(&mut self, io: &mut Io, id: ConnId, _req: Request) {
            if io.start_stream(id, 200, &[]) {
                self.viewers.push(id);
            }
        }
        fn closed(&mut self, _io: &mut Io, id: ConnId) {
            self.viewers.retain(|&v| v != id);
            self.closed.lock().unwrap().push(id);
        }
        fn tick(&mut self, io: &mut Io) {
            let chunk = Bytes::from(vec![0u8; 64 << 10]);
            for &v in &self.viewers.clone() {
                for _ in 0..8 {
                    io.send(v, std::slice::from_ref(&chunk));
                }
            }
        }
    }

    #[test]
    fn a_client_that_does_not_read_is_dropped() {
        let cfg = ServerConfig {
            max_backlog: 1 << 20,
            tick: Duration::from_millis(10),
            ..ServerConfig::default()
        };
        let mut srv = Server::bind("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
        let addr = srv.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = Flood {
            viewers: Vec::new(),
            closed: closed.clone(),
        };
        let s2 = stop.clone();
        let t = std::thread::spawn(move || srv.run(h, s2).unwrap());
        let mut stuck = std::net::TcpStream::connect(addr).unwrap();
        stuck.write_all(b"GET /flood HTTP/1.1\r\n\r\n").unwrap();
        // A reading client on the same server keeps getting data meanwhile.
        let mut good = std::net::TcpStream::connect(addr).unwrap();
        good.write_all(b"GET /flood HTTP/1.1\r\n\r\n").unwrap();
        good.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        while closed.lock().unwrap().is_empty() && Instant::now() < end {
            got += good.read(&mut buf).unwrap();
        }
        assert_eq!(
            closed.lock().unwrap().len(),
            1,
            "the stuck client was not dropped"
        );
        assert!(got > 1 << 20, "the reading client got only {got} bytes");
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        drop(stuck);
    }

    /// Streams to `/flood` viewers on every tick; `/panic` panics in the request handler, and
    /// the `drained` callback of `/flood-bad` viewers panics.
    struct Panicky {
        viewers: Vec<ConnId>,
        bad: Vec<ConnId>,
        closed: Arc<std::sync::Mutex<Vec<ConnId>>>,
    }
    impl Handler for Panicky {
        fn request(&mut self, io: &mut Io, id: ConnId, req: Request) {
            if req.path == "/panic" {
                panic!("injected request panic");
            }
            if io.start_stream(id, 200, &[]) {
                self.viewers.push(id);
                if req.path == "/flood-bad" {
                    self.bad.push(id);
                }
            }
        }
        fn closed(&mut self, _io: &mut Io, id: ConnId) {
            self.viewers.retain(|&v| v != id);
            self.closed.lock().unwrap().push(id);
        }
        fn drained(&mut self, _io: &mut Io, id: ConnId) {
            if self.bad.contains(&id) {
                panic!("injected drain panic");
            }
        }
        fn tick(&mut self, io: &mut Io) {
            let chunk = Bytes::from(vec![7u8; 64 << 10]);
            let mut v = self.viewers.clone();
            io.send_all(&mut v, std::slice::from_ref(&chunk));
        }
    }

    /// A panic in the handler (request, drain) closes that one connection; the process and
    /// the other viewers go on.
    #[test]
    fn a_panicking_handler_costs_one_connection() {
        let cfg = ServerConfig {
            tick: Duration::from_millis(10),
            merge: Duration::ZERO,
            ..ServerConfig::default()
        };
        let mut srv = Server::bind("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
        let addr = srv.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = Panicky {
            viewers: Vec::new(),
            bad: Vec::new(),
            closed: closed.clone(),
        };
        let s2 = stop.clone();
        let t = std::thread::spawn(move || srv.run(h, s2).unwrap());
        let mut good = std::net::TcpStream::connect(addr).unwrap();
        good.write_all(b"GET /flood HTTP/1.1\r\n\r\n").unwrap();
        good.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0usize;
        while got < 1 << 20 {
            let n = good.read(&mut buf).unwrap();
            assert!(n > 0, "the good viewer was closed");
            got += n;
        }
        // A request whose handler panics gets a 500 and is closed.
        let mut p = std::net::TcpStream::connect(addr).unwrap();
        p.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        p.write_all(b"GET /panic HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        p.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        // A viewer whose drained callback panics is closed.
        let mut bad = std::net::TcpStream::connect(addr).unwrap();
        bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        bad.write_all(b"GET /flood-bad HTTP/1.1\r\n\r\n").unwrap();
        // Not read for a while, so that its queue holds data and drains later.
        std::thread::sleep(Duration::from_millis(1500));
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match bad.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => assert!(Instant::now() < end, "the panicking viewer was not closed"),
            }
        }
        let end = Instant::now() + Duration::from_secs(10);
        while closed.lock().unwrap().is_empty() {
            assert!(Instant::now() < end, "no close was reported");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The good viewer still gets data.
        let mut more = 0usize;
        while more < 1 << 20 {
            let n = good.read(&mut buf).unwrap();
            assert!(n > 0, "the good viewer was closed");
            more += n;
        }
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }

    /// The per-address cap: a third connection from 127.0.0.1 is closed at once while two are
    /// open, and admitted again once one of them closed.
    #[test]
    fn connections_per_address_are_capped() {
        let cfg = ServerConfig {
            max_per_ip: 2,
            ..ServerConfig::default()
        };
        let mut srv = Server::bind("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
        let addr = srv.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || srv.run(Echo, s2).unwrap());
        let ask = |s: &mut std::net::TcpStream| -> String {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"GET /hi HTTP/1.1\r\n\r\n");
            let mut buf = vec![0u8; 4096];
            match s.read(&mut buf) {
                Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(e) => format!("error {e}"),
            }
        };
        let mut a = std::net::TcpStream::connect(addr).unwrap();
        let mut b = std::net::TcpStream::connect(addr).unwrap();
        assert!(ask(&mut a).starts_with("HTTP/1.1 200"));
        assert!(ask(&mut b).starts_with("HTTP/1.1 200"));
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let refused = ask(&mut c);
        assert!(!refused.contains("HTTP/1.1"), "over the cap: {refused}");
        drop(a);
        // The slot is released once the server sees the close.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let mut d = std::net::TcpStream::connect(addr).unwrap();
            if ask(&mut d).starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(
                Instant::now() < end,
                "the closed connection's slot was not released"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(ask(&mut b).starts_with("HTTP/1.1 200"));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }

    #[test]
    fn hostile_requests() {
        assert!(exchange(b"\x00\x01\x02garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..2000 {
            big.extend_from_slice(format!("X-H{i}: aaaaaaaaaaaaaaaaaaaa\r\n").as_bytes());
        }
        big.extend_from_slice(b"\r\n");
        assert!(exchange(&big).starts_with("HTTP/1.1 431"));
        let mut url = b"GET /".to_vec();
        url.extend(vec![b'a'; 100_000]);
        url.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert!(exchange(&url).starts_with("HTTP/1.1 414"));
        assert!(
            exchange(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .starts_with("HTTP/1.1 501")
        );
        assert!(
            exchange(b"GET /x HTTP/1.1\r\nRange: bytes=10-\r\nConnection: close\r\n\r\n")
                .starts_with("HTTP/1.1 416")
        );
    }
}
