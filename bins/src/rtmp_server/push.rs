//! Push mode: `MistOutRTMP -s STREAM rtmp://HOST[:PORT]/APP/KEY` (or `rtmps://`, port 443 by
//! default, certificates checked against the Mozilla roots) reads a stream from shared memory
//! and publishes it to another RTMP server, starting at the newest keyframe.
//!
//! The protocol is the sans-IO `mist_media::rtmp::ClientSession` (handshake, connect,
//! releaseStream/FCPublish/createStream, publish, FLV-tagged audio/video). It runs as a
//! [`Session`] on the connector runtime over one outgoing connection ([`Runtime::adopt`]; TLS
//! by `mist_connector::TlsClientStream`), the event loop of every other connector: frames are
//! read from shared memory when the stream's futex wakes the loop, up to a backlog of
//! [`HIGH_WATER`] unsent bytes, and go on when the socket took them.
//!
//! Under a controller the push reports the target and the bytes sent every 5 s
//! (`push_status_update`, shown by `push_list`); a target that cannot be reached or that goes
//! away ends the push with exit code 1, which the controller retries per its auto-push rules.

use std::io;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mist_bins::feed::Selection;
use mist_bins::http_out::mux::Format;
use mist_bins::push_out::report_status;
use mist_connector::{App, ConnId, Ctl, Flow, Io, Limits, ListenerId, Peer, Runtime, Session};
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
    /// The TLS client could not be set up (`push_out::tls`).
    #[error("{0}")]
    TlsSetup(mist_bins::push_out::PushOutError),
    /// The TLS handshake or session failed: what the TLS layer said.
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
    /// Setting a socket option or the event loop failed.
    #[error("{0}")]
    Socket(io::Error),
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

/// How often a push tells the controller how far it is.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// Connecting to the target, and the target accepting the publish, may take this long each.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The session's own clock: setup deadline, statistics, and a read of the stream in case a
/// wake-up was missed.
const TICK: Duration = Duration::from_millis(100);
/// Unsent bytes above which no more frames are read (they wait in shared memory) until the
/// socket takes what is queued: a catch-up writes in batches of this size.
const HIGH_WATER: usize = 256 << 10;
/// Frames read per call before other work gets a go.
const FRAMES_PER_CALL: usize = 2000;
/// How long the close (FCUnpublish, deleteStream) may take to leave after a signal.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The push process on the connector runtime: one connection (adopted), the stop flag, and
/// what the push achieved.
struct PushApp {
    stream: String,
    stop: Arc<AtomicBool>,
    conn: Option<ConnId>,
    /// The connection is gone.
    closed: bool,
    /// Since when a signal asked the push to stop.
    stopping: Option<Instant>,
    /// How the push ended, once known.
    outcome: Option<Result<(), PushError>>,
    prog: Progress,
}

/// The push session: the sans-IO RTMP client ([`ClientSession`]) over the connection, fed
/// from the stream's shared memory.
struct Pusher {
    session: ClientSession,
    reader: StreamReader,
    tracks: Vec<Track>,
    started: bool,
    ready: bool,
    /// The session finished (stream ended, stopped, failed): nothing more is read.
    done: bool,
    connected: Instant,
    frames: u64,
    bytes_out: u64,
    last_report: Instant,
    last_status: Instant,
}

impl Pusher {
    /// Queues what the RTMP session produced on the connection.
    fn out(&mut self, app: &mut PushApp, io: &mut Io<'_>) {
        let b = self.session.take_output();
        if !b.is_empty() {
            app.prog.sent += b.len() as u64;
            io.send(bytes::Bytes::from(b));
        }
    }

    /// Ends the push with `r` (the first outcome counts) and closes once the output is out.
    fn finish(&mut self, app: &mut PushApp, io: &mut Io<'_>, r: Result<(), PushError>) {
        self.done = true;
        app.outcome.get_or_insert(r);
        self.out(app, io);
        io.close();
    }

    /// Closes the RTMP session cleanly (FCUnpublish, deleteStream), then the connection.
    fn close(&mut self, app: &mut PushApp, io: &mut Io<'_>) {
        let r = if self.ready {
            self.session.close().map_err(PushError::Session)
        } else {
            Ok(())
        };
        self.finish(app, io, r);
    }

    /// What the target said.
    fn handle(&mut self, app: &mut PushApp, io: &mut Io<'_>) {
        loop {
            match self.session.poll() {
                Ok(Some(ClientEvent::Refused(why))) => {
                    return self.finish(app, io, Err(PushError::Refused(why)))
                }
                Ok(Some(ClientEvent::Ready { .. })) if !self.ready => self.start(app, io),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return self.finish(app, io, Err(PushError::Protocol(e))),
            }
            if self.done {
                return;
            }
        }
    }

    /// The target accepted the publish: the tracks, then the frames from the newest keyframe.
    fn start(&mut self, app: &mut PushApp, io: &mut Io<'_>) {
        self.ready = true;
        log!(INFO, "pushing {} to {}", app.stream, app.prog.actual);
        status_off_loop(&app.prog.actual, 0, 0);
        self.tracks = push_tracks(&self.reader, &app.prog.sel);
        if !self.tracks.is_empty() {
            if let Err(e) = self.session.send_tracks(&self.tracks) {
                return self.finish(app, io, Err(PushError::Session(e)));
            }
        }
        self.pump(app, io);
    }

    /// Reads what the stream has and queues it, until the backlog reaches [`HIGH_WATER`].
    fn pump(&mut self, app: &mut PushApp, io: &mut Io<'_>) {
        if self.done || !self.ready {
            return;
        }
        if app.stop.load(Ordering::Relaxed) {
            log!(
                INFO,
                "push of {} to {} stopped by a signal after {} frames",
                app.stream,
                app.prog.actual,
                self.frames
            );
            return self.close(app, io);
        }
        let stream = app.stream.clone();
        for _ in 0..FRAMES_PER_CALL {
            if io.backlog() + self.session.pending_output() >= HIGH_WATER {
                // Go on once the socket took it.
                io.notify_drained();
                break;
            }
            match self.reader.next() {
                ReadEvent::Frame(f) => {
                    let Some(track) = self.tracks.iter().find(|t| t.id == f.track) else {
                        continue;
                    };
                    if let Err(e) = self.session.send_frame(track, &f) {
                        return self.finish(app, io, Err(PushError::Session(e)));
                    }
                    self.frames += 1;
                    self.bytes_out += f.data.len() as u64;
                    app.prog.first_ms.get_or_insert(f.dts);
                    app.prog.last_ms = app.prog.last_ms.max(f.dts);
                }
                ReadEvent::TracksChanged | ReadEvent::Restarted => {
                    self.tracks = push_tracks(&self.reader, &app.prog.sel);
                    log!(MEDIUM, "{stream}: {} tracks", self.tracks.len());
                    if let Err(e) = self.session.send_tracks(&self.tracks) {
                        return self.finish(app, io, Err(PushError::Session(e)));
                    }
                }
                ReadEvent::Pending => break,
                ReadEvent::Ended => {
                    log!(
                        INFO,
                        "{stream} ended; {} frames pushed to {}",
                        self.frames,
                        app.prog.actual
                    );
                    return self.close(app, io);
                }
            }
        }
        self.out(app, io);
        let now = io.now();
        if now.duration_since(self.last_report) >= Duration::from_secs(1) {
            self.last_report = now;
            self.reader.report(self.bytes_out, 0);
        }
        if now.duration_since(self.last_status) >= STATUS_EVERY {
            self.last_status = now;
            let p = &app.prog;
            status_off_loop(
                &p.actual,
                p.sent,
                p.last_ms - p.first_ms.unwrap_or(p.last_ms),
            );
        }
    }
}

impl Session<PushApp> for Pusher {
    fn on_read(&mut self, app: &mut PushApp, io: &mut Io<'_>) {
        self.session.feed(io.input());
        io.clear_input();
        if self.done {
            return;
        }
        self.handle(app, io);
        self.pump(app, io);
        if !self.done {
            // Acknowledgements and the answers of the setup.
            self.out(app, io);
        }
    }

    fn on_wake(&mut self, app: &mut PushApp, io: &mut Io<'_>) {
        if !self.started {
            // The client speaks first: C0 C1.
            self.started = true;
            self.out(app, io);
            io.set_timer(Some(io.now() + TICK));
            return;
        }
        if app.stop.load(Ordering::Relaxed) && !self.ready && !self.done {
            return self.finish(app, io, Err(PushError::NotAccepted));
        }
        self.pump(app, io);
    }

    fn on_drained(&mut self, app: &mut PushApp, io: &mut Io<'_>) {
        self.pump(app, io);
    }

    fn on_timer(&mut self, app: &mut PushApp, io: &mut Io<'_>) {
        if self.done {
            return;
        }
        if !self.ready && io.now().duration_since(self.connected) >= SETUP_TIMEOUT {
            return self.finish(app, io, Err(PushError::NotAccepted));
        }
        self.pump(app, io);
        io.set_timer(Some(io.now() + TICK));
    }

    fn on_close(&mut self, app: &mut PushApp, _id: ConnId, _peer: Peer) {
        app.closed = true;
        app.outcome.get_or_insert(Err(PushError::Closed));
    }
}

impl App for PushApp {
    type Session = Pusher;

    fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<Pusher> {
        None
    }

    fn turn(&mut self, ctl: &mut Ctl<'_, Self>, now: Instant) -> Flow {
        if self.closed {
            return Flow::Stop;
        }
        if ctl.woken() {
            // New media (the shared-memory waiter).
            if let Some(id) = self.conn {
                ctl.wake(id);
            }
        }
        if self.stop.load(Ordering::Relaxed) {
            let since = *self.stopping.get_or_insert_with(|| {
                if let Some(id) = self.conn {
                    ctl.wake(id);
                }
                now
            });
            if now.duration_since(since) >= STOP_WAIT {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }
}

/// Tells the controller how far the push is, on a thread of its own (a request to the
/// controller must not hold up the loop).
fn status_off_loop(target: &str, bytes: u64, media_ms: i64) {
    if mist_core::control::socket_path().is_none() {
        return;
    }
    let target = target.to_string();
    let _ = std::thread::Builder::new()
        .name("push-status".into())
        .spawn(move || report_status(&target, bytes, media_ms));
}

/// The runtime limits of the push connection.
fn limits() -> Limits {
    Limits {
        max_conns: 1,
        max_per_ip: 1,
        // Catch-up batches stay far below this; a target that takes nothing for
        // `write_timeout` is cut first.
        max_output: 64 << 20,
        pause_output: 64 << 20,
        // Everything read is taken at once; a receiver may say nothing for hours.
        header_timeout: None,
        idle_timeout: None,
        write_timeout: Some(SETUP_TIMEOUT),
        ..Limits::default()
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
    let target = parse_target(&url)?;
    // The stream may not be live yet.
    let started = Instant::now();
    let reader = loop {
        match StreamReader::open(
            stream,
            ReaderInfo {
                connector: "RTMP".into(),
                host: url.clone(),
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
    let sock = std::net::TcpStream::connect_timeout(&addr, SETUP_TIMEOUT)
        .map_err(|source| PushError::Connect { addr, source })?;
    let _ = sock.set_nodelay(true);
    sock.set_nonblocking(true).map_err(PushError::Socket)?;
    let sock = mist_connector::mio::net::TcpStream::from_std(sock);
    let mut tls_error = None;
    let conn: Box<dyn mist_connector::Stream> = if target.tls {
        let c = mist_bins::push_out::tls::connection(&target.host).map_err(PushError::TlsSetup)?;
        let s = mist_connector::TlsClientStream::new(sock, c, Instant::now() + SETUP_TIMEOUT);
        tls_error = Some(s.error_slot());
        Box::new(s)
    } else {
        Box::new(sock)
    };
    let seed = std::process::id() as u64 ^ 0x5eed;
    let now = Instant::now();
    let pusher = Pusher {
        session: ClientSession::new(
            &target.app,
            &target.tc_url,
            &target.key,
            ClientMode::Publish,
            seed,
        ),
        reader,
        tracks: Vec::new(),
        started: false,
        ready: false,
        done: false,
        connected: now,
        frames: 0,
        bytes_out: 0,
        last_report: now,
        last_status: now,
    };
    let mut rt = Runtime::<PushApp>::new().map_err(PushError::Socket)?;
    rt.set_max_wait(TICK);
    let id = rt
        .adopt(conn, Peer::Tcp(addr), "RTMP push", limits(), pusher)
        .map_err(PushError::Socket)?;
    rt.remote().wake(id);
    // New frames wake the loop.
    let waiter = mist_shm::Waiter::new();
    let watching = waiter.add(stream).is_ok();
    let done = Arc::new(AtomicBool::new(false));
    if watching {
        let (w, remote, done) = (waiter.clone(), rt.remote(), done.clone());
        let _ = std::thread::Builder::new()
            .name("shm-waiter".into())
            .spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if !w.wait(Duration::from_millis(500)).is_empty() {
                        remote.wake_loop();
                    }
                }
            });
    }
    let mut app = PushApp {
        stream: stream.to_string(),
        stop: stop.clone(),
        conn: Some(id),
        closed: false,
        stopping: None,
        outcome: None,
        prog: std::mem::take(prog),
    };
    let r = rt.run(&mut app);
    done.store(true, Ordering::Relaxed);
    waiter.kick();
    drop(rt);
    *prog = std::mem::take(&mut app.prog);
    r.map_err(PushError::Socket)?;
    // The TLS layer knows better why a connection ended than "closed".
    let tls_why = tls_error.and_then(|s| s.lock().ok().and_then(|mut e| e.take()));
    match app.outcome {
        Some(Err(PushError::Closed)) | None if tls_why.is_some() => {
            Err(PushError::TlsClient(tls_why.unwrap_or_default()))
        }
        Some(r) => r,
        // Stopped by a signal before the session ended.
        None => Ok(()),
    }
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
