//! Push mode: `MistOutRTMP -s STREAM rtmp://HOST[:PORT]/APP/KEY` (or `rtmps://`, port 443 by
//! default, certificates checked against the Mozilla roots) reads a stream from shared memory
//! and publishes it to another RTMP server, starting at the newest keyframe.
//!
//! The protocol is the sans-IO `mist_media::rtmp::ClientSession` (handshake, connect,
//! releaseStream/FCPublish/createStream, publish, FLV-tagged audio/video); this file is its IO
//! edge. Under a controller the push reports the target and the bytes sent every 5 s
//! (`push_status_update`, shown by `push_list`); a target that cannot be reached or that goes
//! away ends the push with exit code 1, which the controller retries per its auto-push rules.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mist_bins::feed::Selection;
use mist_bins::http_out::mux::Format;
use mist_bins::push_out::report_status;
use mist_media::rtmp::{ClientEvent, ClientMode, ClientSession};
use mist_media::{MediaError, Track};
use mist_shm::{ReadEvent, ReaderInfo, ShmError, StreamReader};

use super::log::{INFO, MEDIUM};
use super::PLAY_WAIT;

/// Why a push failed (its text goes to the log line and the OUTPUT_END payload).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}: not an rtmp:// or rtmps:// URL")]
    NotRtmp(String),
    #[error("{0}: no application")]
    NoApplication(String),
    #[error("{0}: bad port")]
    BadPort(String),
    #[error("{0}: no stream key")]
    NoKey(String),
    #[error("{0}: needs host, application and stream key")]
    Incomplete(String),
    /// The TLS client could not be set up or its handshake failed (`push_out::tls`).
    #[error("{0}")]
    TlsClient(String),
    /// The stream to push cannot be read.
    #[error("{stream}: {source}")]
    Stream { stream: String, source: ShmError },
    #[error("{host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{0}: no address")]
    NoAddress(String),
    #[error("connect {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    /// Setting a socket option failed.
    #[error("{0}")]
    Socket(io::Error),
    #[error("read: {0}")]
    Read(io::Error),
    #[error("write: {0}")]
    Write(io::Error),
    #[error("target closed the connection")]
    Closed,
    #[error("target refused: {0}")]
    Refused(String),
    #[error("protocol error from target: {0}")]
    Protocol(MediaError),
    #[error("target did not accept the publish within 10 s")]
    NotAccepted,
    /// The RTMP session could not encode what it was given.
    #[error("{0}")]
    Session(MediaError),
}

/// An `rtmp://` target split into what the protocol needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `rtmps://`: TLS to the target.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub app: String,
    pub key: String,
    pub tc_url: String,
}

/// Parses `rtmp://host[:port]/app[/more]/key`: the last path part is the stream key, the rest the app.
pub fn parse_target(url: &str) -> Result<Target, PushError> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("rtmp://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("rtmps://") {
        (true, r)
    } else {
        return Err(PushError::NotRtmp(url.into()));
    };
    let default_port = if tls { 443 } else { 1935 };
    let (hostport, path) = rest
        .split_once('/')
        .ok_or_else(|| PushError::NoApplication(url.into()))?;
    let (host, port) = match hostport.rsplit_once(':') {
        _ if hostport.starts_with('[') && hostport.ends_with(']') => {
            (hostport[1..hostport.len() - 1].to_string(), default_port)
        }
        Some((h, p)) => (
            h.trim_matches(|c| c == '[' || c == ']').to_string(),
            p.parse().map_err(|_| PushError::BadPort(url.into()))?,
        ),
        _ => (
            hostport.trim_matches(|c| c == '[' || c == ']').to_string(),
            default_port,
        ),
    };
    let (app, key) = path
        .rsplit_once('/')
        .ok_or_else(|| PushError::NoKey(url.into()))?;
    if host.is_empty() || app.is_empty() || key.is_empty() {
        return Err(PushError::Incomplete(url.into()));
    }
    Ok(Target {
        tc_url: format!("{}://{hostport}/{app}", if tls { "rtmps" } else { "rtmp" }),
        tls,
        host,
        port,
        app: app.into(),
        key: key.into(),
    })
}

/// The connection to the target: plain TCP or TLS over it.
trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Wraps a connected socket in a TLS client for `host` (Mozilla roots, `MIST_TLS_CA_FILE`,
/// SNI = host). The handshake is done with 10 s timeouts, then the short read timeout of the
/// push loop is set.
fn tls_client(sock: TcpStream, host: &str) -> Result<Box<dyn Conn>, PushError> {
    let s = mist_bins::push_out::tls::client(sock, host).map_err(PushError::TlsClient)?;
    s.sock
        .set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(PushError::Socket)?;
    Ok(Box::new(s))
}

/// How often a push tells the controller how far it is.
const STATUS_EVERY: Duration = Duration::from_secs(5);

struct Link {
    sock: Box<dyn Conn>,
    session: ClientSession,
    buf: Vec<u8>,
    /// Bytes written to the target.
    sent: u64,
}

impl Link {
    fn session_output_len(&self) -> usize {
        self.session.pending_output()
    }

    fn flush(&mut self) -> io::Result<()> {
        let out = self.session.take_output();
        if !out.is_empty() {
            self.sock.write_all(&out)?;
            self.sent += out.len() as u64;
        }
        self.sock.flush()?;
        Ok(())
    }

    /// Reads what the server sent (waiting at most the socket's read timeout) and handles it.
    fn service(&mut self) -> Result<Vec<ClientEvent>, PushError> {
        let mut events = Vec::new();
        match self.sock.read(&mut self.buf) {
            Ok(0) => return Err(PushError::Closed),
            Ok(n) => self.session.feed(&self.buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(PushError::Read(e)),
        }
        loop {
            match self.session.poll() {
                Ok(Some(ClientEvent::Refused(why))) => return Err(PushError::Refused(why)),
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => return Err(PushError::Protocol(e)),
            }
        }
        self.flush().map_err(PushError::Write)?;
        Ok(events)
    }
}

/// Runs a push until the stream ends (Ok) or something fails (Err, with the reason).
/// Then tells the controller (if any) for OUTPUT_END (INTERFACES §5.3 payload; no
/// RECORDING_END: this is not a file).
pub fn run(stream: &str, url: &str, stop: Arc<AtomicBool>) -> Result<(), PushError> {
    let start_unix = unix_now();
    let started = Instant::now();
    let mut prog = Progress {
        actual: expand_target(stream, url),
        sel: target_selection(url),
        ..Default::default()
    };
    let r = push(stream, &stop, &mut prog);
    let (code, text) = match &r {
        Ok(()) => (0, "completed".to_string()),
        Err(e) => (1, e.to_string()),
    };
    let payload = mist_bins::record::recording_end_payload(
        stream,
        &prog.actual,
        "RTMP",
        prog.sent,
        started.elapsed().as_secs(),
        start_unix,
        unix_now(),
        prog.first_ms.unwrap_or(0),
        prog.last_ms,
        code,
        &text,
    );
    mist_bins::push_out::report_network_end(stream, &payload, stop.load(Ordering::Relaxed));
    r
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The target with its `$variables` evaluated (custom ones from the controller's
/// `MIST_VARIABLES`) and its Mist parameters (after the last `?`) taken off: a query meant for
/// the remote needs a trailing `?` (INTERFACES §4.3).
fn expand_target(stream: &str, url: &str) -> String {
    let (template, _params) = mist_core::push::split_target(url, unix_now());
    let custom = std::env::var("MIST_VARIABLES")
        .ok()
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    let vars = mist_core::push::Vars {
        stream,
        custom,
        ..Default::default()
    };
    mist_core::push::expand(&template, &vars, &mist_core::push::LocalTime::now())
}

/// The track selection of a target's Mist parameters (`?video=…&audio=…`, INTERFACES §4.4),
/// normalised as for RTMP and HTTP viewers.
fn target_selection(url: &str) -> Selection {
    let (_, p) = mist_core::push::split_target(url, unix_now());
    let norm = |v: Option<String>| v.map(|v| mist_bins::http_out::mux::normalize_selector(&v));
    Selection {
        video: norm(p.video),
        audio: norm(p.audio),
    }
}

/// The tracks a push sends: all of them, or those its selection picks that RTMP carries.
fn push_tracks(reader: &StreamReader, sel: &Selection) -> Vec<Track> {
    if sel.is_default() {
        reader.tracks()
    } else {
        sel.tracks(reader, Format::Flv)
    }
}

/// How far a push got.
#[derive(Default)]
struct Progress {
    /// The target's track selection.
    sel: Selection,
    /// The target being pushed to (variables evaluated, parameters off).
    actual: String,
    sent: u64,
    first_ms: Option<i64>,
    last_ms: i64,
}

fn push(stream: &str, stop: &Arc<AtomicBool>, prog: &mut Progress) -> Result<(), PushError> {
    let url = prog.actual.clone();
    let url = url.as_str();
    let target = parse_target(url)?;
    // The stream may not be live yet.
    let started = Instant::now();
    let mut reader = loop {
        match StreamReader::open(
            stream,
            ReaderInfo {
                connector: "RTMP".into(),
                host: url.into(),
            },
        ) {
            Ok(r) => break r,
            Err(ShmError::NoStream(_))
                if started.elapsed() < PLAY_WAIT && !stop.load(Ordering::Relaxed) =>
            {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(source) => {
                return Err(PushError::Stream {
                    stream: stream.into(),
                    source,
                })
            }
        }
    };
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|source| PushError::Resolve {
            host: target.host.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| PushError::NoAddress(target.host.clone()))?;
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|source| PushError::Connect { addr, source })?;
    let _ = sock.set_nodelay(true);
    sock.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(PushError::Socket)?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(PushError::Socket)?;
    let sock: Box<dyn Conn> = if target.tls {
        tls_client(sock, &target.host)?
    } else {
        Box::new(sock)
    };
    let seed = std::process::id() as u64 ^ 0x5eed;
    let session = ClientSession::new(
        &target.app,
        &target.tc_url,
        &target.key,
        ClientMode::Publish,
        seed,
    );
    let mut link = Link {
        sock,
        session,
        buf: vec![0; 65536],
        sent: 0,
    };
    link.flush().map_err(PushError::Write)?;
    let t = Instant::now();
    while !link.session.is_ready() {
        if t.elapsed() > Duration::from_secs(10) || stop.load(Ordering::Relaxed) {
            return Err(PushError::NotAccepted);
        }
        link.service()?;
    }
    log!(INFO, "pushing {stream} to {url}");
    report_status(url, 0, 0);
    let mut tracks: Vec<Track> = push_tracks(&reader, &prog.sel);
    if !tracks.is_empty() {
        link.session
            .send_tracks(&tracks)
            .map_err(PushError::Session)?;
    }
    let mut frames = 0u64;
    let mut bytes_out = 0u64;
    let mut last_report = Instant::now();
    let mut last_status = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        prog.sent = link.sent;
        match reader.next() {
            ReadEvent::Frame(f) => {
                let Some(track) = tracks.iter().find(|t| t.id == f.track) else {
                    continue;
                };
                link.session
                    .send_frame(track, &f)
                    .map_err(PushError::Session)?;
                frames += 1;
                bytes_out += f.data.len() as u64;
                prog.first_ms.get_or_insert(f.dts);
                prog.last_ms = prog.last_ms.max(f.dts);
                // Write in batches of a few hundred KiB while catching up.
                if link.session_output_len() >= 256 * 1024 {
                    link.flush().map_err(PushError::Write)?;
                }
            }
            ReadEvent::TracksChanged | ReadEvent::Restarted => {
                tracks = push_tracks(&reader, &prog.sel);
                log!(MEDIUM, "{stream}: {} tracks", tracks.len());
                link.session
                    .send_tracks(&tracks)
                    .map_err(PushError::Session)?;
            }
            ReadEvent::Pending => {
                link.flush().map_err(PushError::Write)?;
                link.service()?;
                reader.wait(Duration::from_millis(100));
            }
            ReadEvent::Ended => {
                log!(INFO, "{stream} ended; {frames} frames pushed to {url}");
                link.session.close().map_err(PushError::Session)?;
                link.flush().map_err(PushError::Write)?;
                prog.sent = link.sent;
                return Ok(());
            }
        }
        if last_report.elapsed() > Duration::from_secs(1) {
            last_report = Instant::now();
            reader.report(bytes_out, 0);
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            prog.sent = link.sent;
            report_status(
                url,
                link.sent,
                prog.last_ms - prog.first_ms.unwrap_or(prog.last_ms),
            );
        }
    }
    log!(
        INFO,
        "push of {stream} to {url} stopped by a signal after {frames} frames"
    );
    let _ = link.session.close();
    let _ = link.flush();
    prog.sent = link.sent;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_target("rtmp://example.com/live/key1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.app.as_str(), t.key.as_str()),
            ("example.com", 1935, "live", "key1")
        );
        assert_eq!(t.tc_url, "rtmp://example.com/live");
        assert_eq!(
            expand_target("live+a", "rtmp://h/app/$wildcard?video=0"),
            "rtmp://h/app/a"
        );
        assert_eq!(
            expand_target("live+a", "rtmp://h/a/k?x=1?"),
            "rtmp://h/a/k?x=1"
        );
        let s = target_selection("rtmp://h/app/k?video=none&audio=AAC");
        assert_eq!(
            (s.video.as_deref(), s.audio.as_deref()),
            (Some("none"), Some("aac"))
        );
        assert!(target_selection("rtmp://h/a/k?x=1?").is_default());
        let t = parse_target("rtmp://10.0.0.1:1940/app/inst/k?x=1").unwrap();
        assert_eq!(
            (t.port, t.app.as_str(), t.key.as_str()),
            (1940, "app/inst", "k?x=1")
        );
        let t = parse_target("rtmps://live.example.com/app/key").unwrap();
        assert!(t.tls);
        assert_eq!(
            (t.port, t.tc_url.as_str()),
            (443, "rtmps://live.example.com/app")
        );
        let t = parse_target("rtmp://[::1]:1936/a/b").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 1936));
        for bad in [
            "http://x/a/b",
            "rtmp://x",
            "rtmp://x/a",
            "rtmp://x:99999/a/b",
            "rtmp:///a/b",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
