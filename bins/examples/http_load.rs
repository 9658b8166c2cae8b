//! HTTP-FLV progressive load generator for `scripts/bench-http`: N viewers of one `/STREAM.flv` URL
//! from one thread (mio), so the load costs little CPU next to the server under test. Modelled on
//! `rtmp_load.rs` and prints the same JSON object: viewers asked, connected, stall_free, bytes
//! received in total, and the median and 95th percentile time to first video tag in ms.
//!
//! Each viewer sends `GET` with `Connection: close`, skips the response head (must be 200) and the
//! chunked framing if any, then walks the FLV tags by their headers (no body parsing). A viewer stalls when its media (video tag
//! timestamps) falls more than `--stall-ms` behind the wall clock (relative to the least lag it had),
//! or when it never gets a video tag.
//!
//! `https://` URLs (scripts/bench-tls) go over rustls, the server certificate checked against
//! `--ca` (a PEM file); the FLV walk is the same.

#[path = "load_stats/mod.rs"]
mod load_stats;

use clap::Parser;
use load_stats::ViewerStats;
use mio::net::TcpStream;
use mio::{Events, Poll};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "HTTP-FLV load generator")]
struct Args {
    /// http://HOST:PORT/PATH
    #[arg(long)]
    url: String,
    #[command(flatten)]
    load: load_stats::LoadArgs,
    /// https:// URLs: the CA (PEM) that signed the server's certificate.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
}

/// A viewer's connection: plain TCP or TLS over it.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &mut t.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// The TLS client configuration trusting `ca`.
fn tls_config(ca: &std::path::Path) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("--ca file") {
        roots.add(c.expect("--ca PEM")).expect("--ca certificate");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Where a viewer is in the FLV body.
enum Parse {
    /// Skipping the 13-byte FLV file header (bytes left).
    FileHeader(usize),
    /// Collecting an 11-byte tag header.
    TagHeader(Vec<u8>),
    /// Skipping a tag body plus its 4-byte PreviousTagSize (bytes left).
    Body(usize),
}

/// Where a viewer is in the HTTP framing.
enum Framing {
    /// Collecting the response head.
    Head(Vec<u8>),
    /// Plain body to the end of the connection.
    Raw,
    /// Chunked: collecting a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Chunked: chunk data bytes left, then the CRLF after it (bytes left).
    ChunkData(usize),
    ChunkEnd(usize),
}

struct Viewer {
    sock: Option<Conn>,
    out: Vec<u8>,
    framing: Framing,
    parse: Parse,
    stats: ViewerStats,
    /// SO_RCVLOWAT is set (once the viewer plays).
    lowat: bool,
}

impl Viewer {
    /// Takes bytes off the socket: strips the HTTP head and chunked framing, passes the body on.
    fn feed(&mut self, mut data: &[u8], video: &mut impl FnMut(&mut Viewer, i64)) {
        while !data.is_empty() && !self.stats.failed {
            match &mut self.framing {
                Framing::Head(h) => {
                    h.extend_from_slice(data);
                    data = &[];
                    if let Some(pos) = h.windows(4).position(|w| w == b"\r\n\r\n") {
                        if !h.starts_with(b"HTTP/1.1 200") && !h.starts_with(b"HTTP/1.0 200") {
                            self.stats.failed = true;
                            return;
                        }
                        let rest = h.split_off(pos + 4);
                        let head = String::from_utf8_lossy(h).to_ascii_lowercase();
                        self.framing = if head.contains("transfer-encoding: chunked") {
                            Framing::ChunkSize(Vec::new())
                        } else {
                            Framing::Raw
                        };
                        self.feed(&rest, video);
                        return;
                    } else if h.len() > 16384 {
                        self.stats.failed = true;
                    }
                }
                Framing::Raw => {
                    self.body(data, video);
                    data = &[];
                }
                Framing::ChunkSize(line) => match data.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        line.extend_from_slice(&data[..nl]);
                        data = &data[nl + 1..];
                        let text = String::from_utf8_lossy(line);
                        let hex = text.split([';', '\r']).next().unwrap_or("").trim();
                        match usize::from_str_radix(hex, 16) {
                            Ok(0) | Err(_) => self.stats.failed = true,
                            Ok(n) => self.framing = Framing::ChunkData(n),
                        }
                    }
                    None => {
                        line.extend_from_slice(data);
                        data = &[];
                    }
                },
                Framing::ChunkData(left) => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    let done = *left == 0;
                    let (now, rest) = data.split_at(n);
                    data = rest;
                    if done {
                        self.framing = Framing::ChunkEnd(2);
                    }
                    self.body(now, video);
                }
                Framing::ChunkEnd(left) => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.framing = Framing::ChunkSize(Vec::new());
                    }
                }
            }
        }
    }

    /// Walks the FLV body; calls `video(ts)` for each video tag header.
    fn body(&mut self, mut data: &[u8], video: &mut impl FnMut(&mut Viewer, i64)) {
        while !data.is_empty() {
            match &mut self.parse {
                Parse::FileHeader(left) | Parse::Body(left) => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.parse = Parse::TagHeader(Vec::with_capacity(11));
                    }
                }
                Parse::TagHeader(h) => {
                    let n = (11 - h.len()).min(data.len());
                    h.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if h.len() == 11 {
                        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
                        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]) as i64;
                        let is_video = h[0] & 0x1f == 9;
                        self.parse = Parse::Body(size + 4);
                        if is_video && size > 0 {
                            video(self, ts);
                        }
                    }
                }
            }
        }
    }
}

fn main() {
    let args = Args::parse();
    let (rest, tls) = match args.url.strip_prefix("https://") {
        Some(r) => (
            r,
            Some(tls_config(
                args.ca.as_deref().expect("https:// needs --ca FILE"),
            )),
        ),
        None => (args.url.strip_prefix("http://").expect("http:// URL"), None),
    };
    let (hostport, path) = rest.split_once('/').expect("http://HOST/PATH");
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else if tls.is_some() {
        format!("{hostport}:443")
    } else {
        format!("{hostport}:80")
    };
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport.as_str(), |(h, _)| h)
        .trim_matches(['[', ']'])
        .to_string();
    let addr = load_stats::resolve(&hostport);
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n")
        .into_bytes();

    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4096);
    let t0 = Instant::now();
    let load = &args.load;
    let end = t0 + Duration::from_secs(load.duration);
    let mut viewers: Vec<Viewer> = Vec::with_capacity(load.viewers);
    let mut buf = vec![0u8; 256 * 1024];
    let stall_ms = load.stall_ms;

    while Instant::now() < end {
        let due = load.due(t0.elapsed());
        while viewers.len() < due {
            let i = viewers.len();
            let mut v = Viewer {
                sock: None,
                out: request.clone(),
                framing: Framing::Head(Vec::new()),
                parse: Parse::FileHeader(13),
                stats: ViewerStats::new(),
                lowat: false,
            };
            match load_stats::connect(&poll, addr, i) {
                Some(s) => {
                    v.sock = Some(match &tls {
                        None => Conn::Plain(s),
                        Some(cfg) => {
                            let name = rustls::pki_types::ServerName::try_from(host.clone())
                                .expect("server name");
                            let mut c = rustls::ClientConnection::new(cfg.clone(), name)
                                .expect("TLS client");
                            // Sent once the handshake is done (reads drive the TLS I/O).
                            c.writer().write_all(&v.out).expect("buffer the request");
                            v.out.clear();
                            Conn::Tls(Box::new(rustls::StreamOwned::new(c, s)))
                        }
                    });
                }
                None => v.stats.failed = true,
            }
            viewers.push(v);
        }

        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .expect("poll");
        let now_ms = t0.elapsed().as_millis() as i64;
        for ev in events.iter() {
            let v = &mut viewers[ev.token().0];
            if v.stats.failed {
                continue;
            }
            if !v.out.is_empty() {
                if let Some(sock) = v.sock.as_mut() {
                    if !load_stats::write_out(sock, &mut v.out) {
                        v.stats.failed = true;
                    }
                }
            }
            // TLS: every event drives the handshake and the buffered request through `read`.
            if ev.is_readable() || matches!(v.sock, Some(Conn::Tls(_))) {
                while let Some(sock) = v.sock.as_mut() {
                    match sock.read(&mut buf) {
                        Ok(0) => {
                            v.stats.failed = true;
                            break;
                        }
                        Ok(n) => {
                            v.stats.bytes += n as u64;
                            v.feed(&buf[..n], &mut |v, ts| {
                                v.stats.video_frame(now_ms, ts, stall_ms);
                            });
                            if v.stats.failed {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            v.stats.failed = true;
                            break;
                        }
                    }
                }
            }
            if !v.lowat && v.stats.playing() {
                if let Some(sock) = v.sock.as_mut() {
                    load_stats::set_rcvlowat(sock.tcp(), load_stats::RCVLOWAT);
                    v.lowat = true;
                }
            }
            if v.stats.failed {
                v.sock = None;
            }
        }
    }

    let end_ms = t0.elapsed().as_millis() as i64;
    load_stats::print_report(
        load.viewers,
        viewers.iter().map(|v| &v.stats),
        end_ms,
        load.stall_ms,
    );
}
