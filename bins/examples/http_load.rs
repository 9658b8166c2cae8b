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
use load_stats::Peer;
use mio::net::TcpStream;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};

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

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Conn::Plain(s) => s.as_raw_fd(),
            Conn::Tls(t) => t.sock.as_raw_fd(),
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
    peer: Peer<Conn>,
    body: Body,
}

/// Where a viewer is in the response.
struct Body {
    framing: Framing,
    parse: Parse,
}

impl Body {
    /// Takes bytes off the socket: strips the HTTP head and chunked framing, passes the body on.
    /// False: the response is not one to play (not 200, or broken framing).
    fn feed(&mut self, mut data: &[u8], video: &mut impl FnMut(i64)) -> bool {
        while !data.is_empty() {
            match &mut self.framing {
                Framing::Head(h) => {
                    h.extend_from_slice(data);
                    data = &[];
                    if let Some(pos) = h.windows(4).position(|w| w == b"\r\n\r\n") {
                        if !h.starts_with(b"HTTP/1.1 200") && !h.starts_with(b"HTTP/1.0 200") {
                            return false;
                        }
                        let rest = h.split_off(pos + 4);
                        let head = String::from_utf8_lossy(h).to_ascii_lowercase();
                        self.framing = if head.contains("transfer-encoding: chunked") {
                            Framing::ChunkSize(Vec::new())
                        } else {
                            Framing::Raw
                        };
                        return self.feed(&rest, video);
                    } else if h.len() > 16384 {
                        return false;
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
                            Ok(0) | Err(_) => return false,
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
        true
    }

    /// Walks the FLV body; calls `video(ts)` for each video tag header.
    fn body(&mut self, mut data: &[u8], video: &mut impl FnMut(i64)) {
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
                            video(ts);
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

    let load = &args.load;
    let mut run = load_stats::Run::new(load);
    let mut viewers: Vec<Viewer> = Vec::with_capacity(load.viewers);
    let stall_ms = load.stall_ms;

    while run.going() {
        run.open_due(load, addr, &mut viewers, |_, sock| {
            let mut out = request.clone();
            let sock = sock.map(|s| match &tls {
                None => Conn::Plain(s),
                Some(cfg) => {
                    let name =
                        rustls::pki_types::ServerName::try_from(host.clone()).expect("server name");
                    let mut c =
                        rustls::ClientConnection::new(cfg.clone(), name).expect("TLS client");
                    // Sent once the handshake is done (reads drive the TLS I/O).
                    c.writer().write_all(&out).expect("buffer the request");
                    out.clear();
                    Conn::Tls(Box::new(rustls::StreamOwned::new(c, s)))
                }
            });
            Viewer {
                peer: Peer::new(sock, out),
                body: Body {
                    framing: Framing::Head(Vec::new()),
                    parse: Parse::FileHeader(13),
                },
            }
        });

        run.wait();
        let now_ms = run.ms();
        for ev in run.events.iter() {
            let v = &mut viewers[ev.token().0];
            if v.peer.stats.failed {
                continue;
            }
            v.peer.send();
            // TLS: every event drives the handshake and the buffered request through `read`.
            if ev.is_readable() || matches!(v.peer.sock, Some(Conn::Tls(_))) {
                v.peer.read_available(&mut run.buf, |d, stats| {
                    v.body
                        .feed(d, &mut |ts| stats.video_frame(now_ms, ts, stall_ms))
                });
            }
            v.peer.settle();
        }
    }
    run.report(load, viewers.iter().map(|v| &v.peer.stats));
}
