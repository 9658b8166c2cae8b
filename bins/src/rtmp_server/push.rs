//! Push mode: `MistOutRTMP -s STREAM rtmp://HOST[:PORT]/APP/KEY` reads a stream from shared memory
//! and publishes it to another RTMP server, starting at the newest keyframe.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mist_media::rtmp::{ClientEvent, ClientMode, ClientSession};
use mist_media::Track;
use mist_shm::{ReadEvent, ReaderInfo, ShmError, StreamReader};

use super::log::{INFO, MEDIUM, WARN};
use super::PLAY_WAIT;

/// An `rtmp://` target split into what the protocol needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub app: String,
    pub key: String,
    pub tc_url: String,
}

/// Parses `rtmp://host[:port]/app[/more]/key`: the last path part is the stream key, the rest the app.
pub fn parse_target(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("rtmp://")
        .ok_or_else(|| format!("{url}: not an rtmp:// URL"))?;
    let (hostport, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("{url}: no application"))?;
    let (host, port) = match hostport.rsplit_once(':') {
        _ if hostport.starts_with('[') && hostport.ends_with(']') => {
            (hostport[1..hostport.len() - 1].to_string(), 1935)
        }
        Some((h, p)) => (
            h.trim_matches(|c| c == '[' || c == ']').to_string(),
            p.parse().map_err(|_| format!("{url}: bad port"))?,
        ),
        _ => (
            hostport.trim_matches(|c| c == '[' || c == ']').to_string(),
            1935,
        ),
    };
    let (app, key) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("{url}: no stream key"))?;
    if host.is_empty() || app.is_empty() || key.is_empty() {
        return Err(format!("{url}: needs host, application and stream key"));
    }
    Ok(Target {
        tc_url: format!("rtmp://{hostport}/{app}"),
        host,
        port,
        app: app.into(),
        key: key.into(),
    })
}

struct Link {
    sock: TcpStream,
    session: ClientSession,
    buf: Vec<u8>,
}

impl Link {
    fn session_output_len(&self) -> usize {
        self.session.pending_output()
    }

    fn flush(&mut self) -> io::Result<()> {
        let out = self.session.take_output();
        if !out.is_empty() {
            self.sock.write_all(&out)?;
        }
        Ok(())
    }

    /// Reads what the server sent (waiting at most the socket's read timeout) and handles it.
    fn service(&mut self) -> Result<Vec<ClientEvent>, String> {
        let mut events = Vec::new();
        match self.sock.read(&mut self.buf) {
            Ok(0) => return Err("target closed the connection".into()),
            Ok(n) => self.session.feed(&self.buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        loop {
            match self.session.poll() {
                Ok(Some(ClientEvent::Refused(why))) => {
                    return Err(format!("target refused: {why}"))
                }
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => return Err(format!("protocol error from target: {e}")),
            }
        }
        self.flush().map_err(|e| format!("write: {e}"))?;
        Ok(events)
    }
}

/// Runs a push until the stream ends (Ok) or something fails (Err, with the reason).
pub fn run(stream: &str, url: &str, stop: Arc<AtomicBool>) -> Result<(), String> {
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
            Err(e) => return Err(format!("{stream}: {e}")),
        }
    };
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", target.host))?
        .next()
        .ok_or_else(|| format!("{}: no address", target.host))?;
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = sock.set_nodelay(true);
    sock.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| e.to_string())?;
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
    };
    link.flush().map_err(|e| format!("write: {e}"))?;
    let t = Instant::now();
    while !link.session.is_ready() {
        if t.elapsed() > Duration::from_secs(10) || stop.load(Ordering::Relaxed) {
            return Err("target did not accept the publish within 10 s".into());
        }
        link.service()?;
    }
    log!(INFO, "pushing {stream} to {url}");
    let mut tracks: Vec<Track> = reader.tracks();
    if !tracks.is_empty() {
        link.session
            .send_tracks(&tracks)
            .map_err(|e| e.to_string())?;
    }
    let mut frames = 0u64;
    let mut bytes_out = 0u64;
    let mut last_report = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match reader.next() {
            ReadEvent::Frame(f) => {
                let Some(track) = tracks.iter().find(|t| t.id == f.track) else {
                    continue;
                };
                link.session
                    .send_frame(track, &f)
                    .map_err(|e| e.to_string())?;
                frames += 1;
                bytes_out += f.data.len() as u64;
                // Write in batches of a few hundred KiB while catching up.
                if link.session_output_len() >= 256 * 1024 {
                    link.flush().map_err(|e| format!("write: {e}"))?;
                }
            }
            ReadEvent::TracksChanged | ReadEvent::Restarted => {
                tracks = reader.tracks();
                log!(MEDIUM, "{stream}: {} tracks", tracks.len());
                link.session
                    .send_tracks(&tracks)
                    .map_err(|e| e.to_string())?;
            }
            ReadEvent::Pending => {
                link.flush().map_err(|e| format!("write: {e}"))?;
                link.service()?;
                reader.wait(Duration::from_millis(100));
            }
            ReadEvent::Ended => {
                log!(INFO, "{stream} ended; {frames} frames pushed to {url}");
                link.session.close().map_err(|e| e.to_string())?;
                link.flush().map_err(|e| format!("write: {e}"))?;
                return Ok(());
            }
        }
        if last_report.elapsed() > Duration::from_secs(1) {
            last_report = Instant::now();
            reader.report(bytes_out, 0);
        }
    }
    log!(
        WARN,
        "push of {stream} to {url} stopped by a signal after {frames} frames"
    );
    let _ = link.session.close();
    let _ = link.flush();
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
        let t = parse_target("rtmp://10.0.0.1:1940/app/inst/k?x=1").unwrap();
        assert_eq!(
            (t.port, t.app.as_str(), t.key.as_str()),
            (1940, "app/inst", "k?x=1")
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
