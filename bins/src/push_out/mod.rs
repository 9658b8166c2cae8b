//! Where a per-format output (`MistOutTS -s STREAM TARGET`, …) sends a stream that is not a
//! recording file: the network targets of INTERFACES §4.3 and `*-exec:` commands.
//!
//! * `tsudp://HOST:PORT[/IFACE]`: MPEG-TS in datagrams of 7 packets (1316 bytes), unicast or
//!   multicast (IPv4 or IPv6 group; `IFACE` is the interface multicast leaves by, as an address
//!   or a name such as `lo`). A receiver that is not there (ICMP port unreachable) is no error.
//! * `tsrtp://HOST:PORT[/IFACE]`: the same datagrams in RTP packets (payload type 33, MP2T;
//!   RFC 2250), as `ffplay rtp://HOST:PORT` reads them.
//! * `tstcp://HOST:PORT`: MPEG-TS over one TCP connection.
//! * `http://…/x.EXT` and `https://…/x.EXT`: one HTTP/1.1 `PUT` with a chunked body; the answer
//!   must be 2xx.
//! * `ts-exec:COMMAND`, `mkv-exec:COMMAND`: the stream goes to the command's stdin. As in
//!   MistServer the command is split into arguments (quotes and backslashes as in a shell) and
//!   run without a shell; `sh -c '…'` when a shell is wanted.
//!
//! Every sink is a [`Sink`]: bytes in, `finish` at the end (HTTP: the last chunk and the
//! answer). The parsing and framing here are pure; the sockets are opened by [`connect`].

pub mod http_put;
pub mod tls;
pub mod udp;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a network push could not be set up (its text goes to the log line and the OUTPUT_END
/// payload, so each variant names the URL, host or file it is about).
#[derive(Debug, thiserror::Error)]
pub enum PushOutError {
    /// The target URL says `what` wrong (`bad port`, `no host` …).
    #[error("{url}: {what}")]
    Url {
        /// The target as given.
        url: String,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The host name does not resolve.
    #[error("{host}: {source}")]
    Resolve {
        /// The target's host.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The host name resolves to no address.
    #[error("{0}: no address")]
    NoAddress(String),
    /// No address of the host took the TCP connection (the last one tried).
    #[error("connect {addr}: {source}")]
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// Why it refused or timed out.
        source: io::Error,
    },
    /// A socket option (a timeout) could not be set.
    #[error("{0}")]
    Socket(io::Error),
    /// No UDP socket could be had.
    #[error("UDP socket: {0}")]
    UdpSocket(io::Error),
    /// The UDP socket cannot send to the target.
    #[error("UDP to {addr}: {source}")]
    UdpConnect {
        /// The target's address.
        addr: SocketAddr,
        /// Why connect(2) refused it.
        source: io::Error,
    },
    /// The multicast interface of a `tsudp://…/IFACE` target cannot be used: `what` says why.
    #[error("{iface}: {what}")]
    Interface {
        /// The interface as given.
        iface: String,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The kernel refused the multicast interface.
    #[error("multicast interface {iface}: {source}")]
    MulticastInterface {
        /// The interface as given.
        iface: String,
        /// Why setsockopt(2) refused it.
        source: io::Error,
    },
    /// `MIST_TLS_CA_FILE` cannot be read as PEM certificates.
    #[error("MIST_TLS_CA_FILE {file}: {source}")]
    CaFile {
        /// The file named by `MIST_TLS_CA_FILE`.
        file: String,
        /// Why it cannot be read.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate of `MIST_TLS_CA_FILE` is not a usable trust anchor.
    #[error("MIST_TLS_CA_FILE {file}: {source}")]
    CaCert {
        /// The file named by `MIST_TLS_CA_FILE`.
        file: String,
        /// Why rustls refused the certificate.
        source: rustls::Error,
    },
    /// rustls refused the client configuration or connection.
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    /// The host is not a name TLS can check a certificate against.
    #[error("{host}: {source}")]
    ServerName {
        /// The target's host.
        host: String,
        /// Why it is no server name.
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// The TLS handshake failed (a certificate not trusted, a protocol error, a timeout).
    #[error("TLS handshake with {host}: {source}")]
    Handshake {
        /// The target's host.
        host: String,
        /// What failed.
        source: io::Error,
    },
    /// The head of an HTTP PUT could not be sent.
    #[error("PUT {path}: {source}")]
    Put {
        /// The path PUT to.
        path: String,
        /// Why the write failed.
        source: io::Error,
    },
}

fn bad_url(url: &str, what: &'static str) -> PushOutError {
    PushOutError::Url {
        url: url.to_string(),
        what,
    }
}

/// Where a stream goes, with its output's bytes.
pub trait Sink: Write {
    /// Ends the output: what is buffered is sent and the peer is told (HTTP: the last chunk,
    /// then its answer is checked).
    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
}

impl<W: Write> Sink for io::BufWriter<W> {}

/// A network push target (INTERFACES §4.3), its `$variables` already evaluated and its Mist
/// parameters taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetTarget {
    /// `tsudp://` and `tsrtp://`: datagrams to a unicast or multicast address.
    Udp {
        /// Host name or address (a multicast group).
        host: String,
        /// Destination port.
        port: u16,
        /// The interface multicast leaves by (address or name).
        iface: Option<String>,
        /// `tsrtp://`: in RTP packets.
        rtp: bool,
    },
    /// `tstcp://`: one TCP connection.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// `http://` and `https://`: one chunked PUT.
    Http {
        /// `https://`.
        tls: bool,
        /// Host name or address (also the TLS server name).
        host: String,
        /// Port (80 or 443 unless given).
        port: u16,
        /// Path and query, from the first `/`.
        path: String,
        /// `host[:port]` as the URL gives it, for the Host header.
        authority: String,
    },
}

/// Whether a target is one of the network targets of this module (by its scheme).
pub fn is_network_target(target: &str) -> bool {
    let l = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    ["tsudp://", "tsrtp://", "tstcp://", "http://", "https://"]
        .iter()
        .any(|p| l.starts_with(p))
}

/// `host:port`, `[v6]:port` or (with a default) `host`.
fn host_port(hp: &str, default: Option<u16>, url: &str) -> Result<(String, u16), PushOutError> {
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| bad_url(url, "bad IPv6 address"))?;
        (h, after.strip_prefix(':'))
    } else {
        match hp.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad_url(url, "bad port"))?,
        None => default.ok_or_else(|| bad_url(url, "no port"))?,
    };
    if host.is_empty() {
        return Err(bad_url(url, "no host"));
    }
    Ok((host.to_string(), port))
}

/// Parses a network target; `None` when it is not one.
pub fn parse(url: &str) -> Option<Result<NetTarget, PushOutError>> {
    if !is_network_target(url) {
        return None;
    }
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    Some((|| match scheme.as_str() {
        "tsudp" | "tsrtp" => {
            let (hp, iface) = match rest.split_once('/') {
                Some((hp, i)) => (hp, Some(i).filter(|i| !i.is_empty()).map(str::to_string)),
                None => (rest, None),
            };
            let (host, port) = host_port(hp, None, url)?;
            Ok(NetTarget::Udp {
                host,
                port,
                iface,
                rtp: scheme == "tsrtp",
            })
        }
        "tstcp" => {
            let hp = rest.trim_end_matches('/');
            let (host, port) = host_port(hp, None, url)?;
            Ok(NetTarget::Tcp { host, port })
        }
        _ => {
            let tls = scheme == "https";
            let (authority, path) = match rest.find(['/', '?']) {
                Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
                Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
                None => (rest, "/".to_string()),
            };
            // user:password@ is not supported (it would go in the clear with http).
            if authority.contains('@') {
                return Err(bad_url(url, "credentials in the URL are not supported"));
            }
            let (host, port) = host_port(authority, Some(if tls { 443 } else { 80 }), url)?;
            Ok(NetTarget::Http {
                tls,
                host,
                port,
                path,
                authority: authority.to_string(),
            })
        }
    })())
}

/// Resolves and connects TCP with a 10 s timeout; write timeout 10 s.
fn tcp(host: &str, port: u16) -> Result<TcpStream, PushOutError> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|source| PushOutError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    let mut last = PushOutError::NoAddress(host.to_string());
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                s.set_write_timeout(Some(Duration::from_secs(10)))
                    .map_err(PushOutError::Socket)?;
                return Ok(s);
            }
            Err(source) => last = PushOutError::Connect { addr, source },
        }
    }
    Err(last)
}

/// A TCP connection as a sink (`tstcp://`).
struct TcpSink(io::BufWriter<TcpStream>);

impl Write for TcpSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Sink for TcpSink {
    fn finish(&mut self) -> io::Result<()> {
        self.0.flush()?;
        let _ = self.0.get_ref().shutdown(std::net::Shutdown::Write);
        Ok(())
    }
}

/// Opens a network target. `content_type`: the MIME type of the output's format (HTTP PUT).
pub fn connect(t: &NetTarget, content_type: &str) -> Result<Box<dyn Sink>, PushOutError> {
    Ok(match t {
        NetTarget::Udp {
            host,
            port,
            iface,
            rtp: false,
        } => Box::new(udp::UdpSink::open(host, *port, iface.as_deref())?),
        NetTarget::Udp {
            host,
            port,
            iface,
            rtp: true,
        } => Box::new(udp::UdpSink::open_rtp(host, *port, iface.as_deref())?),
        NetTarget::Tcp { host, port } => Box::new(TcpSink(io::BufWriter::with_capacity(
            1 << 16,
            tcp(host, *port)?,
        ))),
        NetTarget::Http {
            tls,
            host,
            port,
            path,
            authority,
        } => {
            let sock = tcp(host, *port)?;
            let conn: Box<dyn http_put::Conn> = if *tls {
                Box::new(tls::client(sock, host)?)
            } else {
                Box::new(sock)
            };
            Box::new(http_put::HttpPut::start(
                conn,
                path,
                authority,
                content_type,
            )?)
        }
    })
}

/// Splits a command line into arguments as a shell would for plain words: whitespace separates,
/// `'…'` is literal, `"…"` keeps spaces (with `\"`, `\\` inside), `\x` outside quotes is `x`.
/// No expansion of any kind.
pub fn split_command(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut it = cmd.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            c if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            '\'' => {
                has = true;
                for c in it.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                has = true;
                while let Some(c) = it.next() {
                    match c {
                        '"' => break,
                        '\\' if matches!(it.peek(), Some('"' | '\\' | '$' | '`')) => {
                            cur.push(it.next().unwrap_or('\\'))
                        }
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                has = true;
                if let Some(n) = it.next() {
                    cur.push(n);
                }
            }
            c => {
                has = true;
                cur.push(c);
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// Tells the controller (if any) where a push goes and how far it is (`push_list`).
pub fn report_status(target: &str, bytes: u64, media_ms: i64) {
    if mist_core::control::socket_path().is_none() {
        return;
    }
    let req = mist_core::control::Request::Api {
        command: serde_json::json!({
            "push_status_update": {
                "pid": std::process::id(), "target": target, "bytes": bytes, "media_ms": media_ms
            }
        }),
    };
    if let Err(e) = mist_core::control::request(&req, Duration::from_secs(2)) {
        mist_core::debug!("push status not reported: {e}");
    }
}

/// Tells the controller (if any) that a network push ended: OUTPUT_END with `payload` (the
/// RECORDING_END lines of INTERFACES §5.3), no RECORDING_END. `stopping`: on a signal the
/// controller may be shutting down, so it is not waited for long.
pub fn report_network_end(stream: &str, payload: &str, stopping: bool) {
    if mist_core::control::socket_path().is_none() {
        return;
    }
    let req = mist_core::control::Request::Api {
        command: serde_json::json!({
            "recording_end": {
                "stream": stream, "payload": payload, "pid": std::process::id(), "network": true
            }
        }),
    };
    let timeout = Duration::from_millis(if stopping { 500 } else { 5000 });
    if let Err(e) = mist_core::control::request(&req, timeout) {
        mist_core::debug!("push end not reported: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let udp = |host: &str, port, iface: Option<&str>, rtp| NetTarget::Udp {
            host: host.into(),
            port,
            iface: iface.map(Into::into),
            rtp,
        };
        for (url, want) in [
            (
                "tsudp://239.1.2.3:5000",
                udp("239.1.2.3", 5000, None, false),
            ),
            (
                "tsudp://239.1.2.3:5000/lo",
                udp("239.1.2.3", 5000, Some("lo"), false),
            ),
            ("tsrtp://127.0.0.1:5004", udp("127.0.0.1", 5004, None, true)),
        ] {
            assert_eq!(parse(url).unwrap().unwrap(), want, "{url}");
        }
        assert_eq!(
            parse("TSTCP://[::1]:9000").unwrap().unwrap(),
            NetTarget::Tcp {
                host: "::1".into(),
                port: 9000
            }
        );
        assert_eq!(
            parse("http://example.com/up/x.ts").unwrap().unwrap(),
            NetTarget::Http {
                tls: false,
                host: "example.com".into(),
                port: 80,
                path: "/up/x.ts".into(),
                authority: "example.com".into()
            }
        );
        let NetTarget::Http { tls, port, .. } = parse("https://h:8443/x.ts").unwrap().unwrap()
        else {
            panic!()
        };
        assert!(tls && port == 8443);
        assert!(parse("/rec/a.ts").is_none());
        assert!(parse("rtmp://h/a/k").is_none());
        for bad in [
            "tsudp://h",
            "tsudp://:5000",
            "tstcp://h:0",
            "tstcp://h:99999",
            "http://u:p@h/x.ts",
            "tsudp://[::1:5000",
        ] {
            assert!(parse(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            split_command("ffmpeg -i - -c copy 'my file.ts'"),
            ["ffmpeg", "-i", "-", "-c", "copy", "my file.ts"]
        );
        assert_eq!(
            split_command(r#"sh -c "cat > \"a b\"" x\ y ''"#),
            ["sh", "-c", r#"cat > "a b""#, "x y", ""]
        );
        assert!(split_command("   ").is_empty());
    }
}
