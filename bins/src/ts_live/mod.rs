//! MistInTS as a live input: MPEG-TS from UDP (unicast or multicast), TCP, a supervised child
//! (`ts-exec:`), a named pipe (`stream://`) or stdin, into a live stream in shared memory.
//!
//! * Sockets and pipes run on the connector runtime ([`mist_connector::Runtime`]): UDP through
//!   [`App::datagram`], the TCP connection / child pipes / FIFO / stdin as sessions adopted with
//!   [`Runtime::adopt`]. Demuxing is [`mist_media::mpegts::live::LiveTs`] (sans-IO), frames go
//!   to shared memory through [`ingest::LiveIngest`] (the one [`crate::ingest::Ingest`] of every
//!   publisher, behind a decode-time interleaver).
//! * The stream is created once the source's tracks are known (every stream of the PMT, or
//!   [`PROBE_MS`] of media); every elementary stream becomes a track.
//! * No frame for the stream timeout (`--timeout` ms, stream option `idleTime`) ends the stream;
//!   a source that comes back within the input timeout (`-i` s) starts it again. No data for the
//!   input timeout while no stream is up ends the process (exit 0).
//! * `ts-exec:` runs `sh -c COMMAND`, logs its stderr and restarts it (`--restart always`, the
//!   default; `onfail`; `never`) with a back-off of 1 s doubling to 10 s while it keeps failing.
//! * A TCP, pipe or `http(s)://` source that closes is opened again with the same back-off, which
//!   starts over once the source opened well (data came, or the HTTP response). An HTTP pull
//!   connects on a thread of its own, and so does `tstcp://host:port` (name resolution and the
//!   connect, [`start_connect`]): the event loop never waits for a resolver or a peer.

pub mod ingest;
pub mod udp;

use ingest::LiveIngest;
use mist_connector::{App, Flow, Io, Limits, ListenerId, Peer, Runtime, Session};
use mist_media::mpegts::live::{LiveStats, LiveTs};
use mist_media::mpegts::DemuxEvent;
use mist_media::Track;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Media time buffered before the stream is created when some PMT stream has no init data yet.
pub const PROBE_MS: i64 = 5_000;
/// Default stream timeout (ms): no frame for this long ends the stream.
pub const DEFAULT_IDLE_MS: u64 = 10_000;
/// Default DVR window (ms).
pub const DEFAULT_DVR_MS: u64 = 50_000;
/// Longest wait before a failing source is opened again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Frames held while probing at most.
const MAX_PROBE_FRAMES: usize = 4096;

/// Where the TS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `tsudp://[host:]port[/iface,...]`
    Udp {
        /// Address to listen on (empty: every address).
        host: String,
        /// UDP port.
        port: u16,
        /// Interfaces to join a multicast group on (empty: the default one).
        ifaces: Vec<String>,
    },
    /// `tstcp://host:port` (connect) or `tstcp://:port` (listen for one sender at a time).
    Tcp {
        /// The sender to connect to (empty: listen).
        host: String,
        /// Its port, or the port to listen on.
        port: u16,
    },
    /// `ts-exec:COMMAND`
    Exec(String),
    /// `stream://PATH`: a named pipe.
    Pipe(String),
    /// `-`
    Stdin,
    /// `http(s)://…`: a TS body pulled over HTTP (a live TS endpoint or a file), reconnected
    /// with back-off when it ends.
    Http(String),
}

/// Whether `s` is a live TS source (else MistInTS reads a file).
pub fn is_live(s: &str) -> bool {
    s == "-"
        || [
            "tsudp://",
            "tstcp://",
            "ts-exec:",
            "stream://",
            "http://",
            "https://",
        ]
        .iter()
        .any(|p| s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p))
}

/// A live source or option that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `host:port` whose port is not a number.
    #[error("bad port in {0:?}")]
    BadPort(String),
    /// `ts-exec:` needs the command that writes the TS.
    #[error("ts-exec: without a command")]
    ExecWithoutCommand,
    /// Not one of the live TS source forms (`tsudp://`, `tstcp://`, `ts-exec:`, `-`).
    #[error("{0:?} is not a live TS source")]
    NotLive(String),
    /// A `--restart` value other than always, onfail or never.
    #[error("--restart {0:?}: always, onfail or never")]
    Restart(String),
}

fn host_port(s: &str) -> Result<(String, u16), ParseError> {
    let (h, p) = match s.rsplit_once(':') {
        Some((h, p)) => (h.trim_matches(|c| c == '[' || c == ']'), p),
        None => ("", s),
    };
    let port = p.parse().map_err(|_| ParseError::BadPort(s.to_owned()))?;
    Ok((h.to_string(), port))
}

/// Parses a live source.
pub fn parse(s: &str) -> Result<Source, ParseError> {
    let lower = s.to_ascii_lowercase();
    if s == "-" {
        Ok(Source::Stdin)
    } else if lower.starts_with("tsudp://") {
        let rest = &s[8..];
        let (hp, ifs) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = host_port(hp)?;
        let ifaces = ifs
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(String::from)
            .collect();
        Ok(Source::Udp { host, port, ifaces })
    } else if lower.starts_with("tstcp://") {
        let (host, port) = host_port(s[8..].trim_end_matches('/'))?;
        Ok(Source::Tcp { host, port })
    } else if lower.starts_with("ts-exec:") {
        let cmd = s[8..].trim();
        if cmd.is_empty() {
            return Err(ParseError::ExecWithoutCommand);
        }
        Ok(Source::Exec(cmd.to_string()))
    } else if lower.starts_with("stream://") {
        Ok(Source::Pipe(s[9..].to_string()))
    } else if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(Source::Http(s.to_string()))
    } else {
        Err(ParseError::NotLive(s.to_owned()))
    }
}

/// When a `ts-exec:` child is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Whenever it ends.
    Always,
    /// Only when it exits with an error.
    OnFail,
    /// Never: its end ends the input.
    Never,
}

impl std::str::FromStr for Restart {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Restart, ParseError> {
        match s {
            "" | "always" | "1" | "true" => Ok(Restart::Always),
            "onfail" | "on-failure" => Ok(Restart::OnFail),
            "never" | "0" | "false" => Ok(Restart::Never),
            _ => Err(ParseError::Restart(s.to_owned())),
        }
    }
}

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The stream written.
    pub stream: String,
    /// Where the TS comes from.
    pub source: Source,
    /// No frame for this long ends the stream.
    pub idle: Duration,
    /// No source data for this long (while no stream is up) ends the process.
    pub input_timeout: Duration,
    /// DVR window kept in shared memory (ms).
    pub dvr_ms: u64,
    /// When a `ts-exec:` child is started again.
    pub restart: Restart,
}

/// A source connection on the runtime.
pub enum Conn {
    /// TS bytes.
    Data,
    /// A child's stderr, logged line by line.
    Log,
}

impl Session<Live> for Conn {
    fn on_read(&mut self, app: &mut Live, io: &mut Io<'_>) {
        match self {
            Conn::Data => {
                app.bytes(io.input(), io.now());
                io.clear_input();
            }
            Conn::Log => {
                while let Some(nl) = io.input().iter().position(|&b| b == b'\n') {
                    let line = String::from_utf8_lossy(&io.input()[..nl])
                        .trim_end()
                        .to_string();
                    if !line.is_empty() {
                        mist_core::info!("ts-exec: {line}");
                    }
                    io.consume(nl + 1);
                }
                if io.input().len() > 4096 {
                    io.clear_input();
                }
            }
        }
    }

    fn on_close(&mut self, app: &mut Live, _id: mist_connector::ConnId, _peer: Peer) {
        if matches!(self, Conn::Data) {
            app.source_closed();
        }
    }
}

/// The input's state, shared by its sessions.
pub struct Live {
    opts: Options,
    ts: LiveTs,
    ingest: LiveIngest,
    /// Events held until the stream is created.
    probe: Vec<DemuxEvent>,
    probe_first: Option<i64>,
    last_data: Instant,
    last_frame: Option<Instant>,
    /// A stream source (TCP, pipe, child) is connected.
    src_open: bool,
    /// The loop should return so that `run` can (re)open the source.
    want_open: Option<Instant>,
    child: Option<Child>,
    child_started: Instant,
    backoff: Duration,
    /// The source opened well since it was last (re)opened: data came, or an HTTP response.
    src_good: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    exit: Option<i32>,
    last_hb: Instant,
    last_report: Instant,
    reported: LiveStats,
    /// The counters last written as the stream's input health.
    published: Option<LiveStats>,
    stdin_done: bool,
    /// `tstcp://host:port`: the connect under way on its thread.
    connecting: Option<Receiver<Connected>>,
    /// `tstcp://host:port`: a connection made, for `open_source` to adopt.
    connected: Option<(std::net::TcpStream, SocketAddr)>,
}

/// What a connect thread hands back.
pub type Connected = std::io::Result<(std::net::TcpStream, SocketAddr)>;

/// How long one address of a `tstcp://` source may take to accept the connection.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves `host` and connects to `port` on one of its addresses, on a thread of its own;
/// `wake` runs once the result is in the returned channel (it wakes the event loop). A resolver
/// that takes its time, or a peer that does not answer, holds only that thread.
pub fn start_connect(
    host: &str,
    port: u16,
    resolve: fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>,
    wake: Box<dyn FnOnce() + Send>,
) -> std::io::Result<Receiver<Connected>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let host = host.to_string();
    std::thread::Builder::new()
        .name("tstcp-connect".into())
        .spawn(move || {
            let r = resolve(&host, port).and_then(|addrs| {
                let mut last = std::io::Error::other(format!("{host}: no address"));
                for a in addrs {
                    match std::net::TcpStream::connect_timeout(&a, TCP_CONNECT_TIMEOUT) {
                        Ok(s) => return Ok((s, a)),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            });
            let _ = tx.send(r);
            wake();
        })?;
    Ok(rx)
}

/// The system resolver (blocking: only ever called on a connect thread).
fn system_resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    Ok(std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?.collect())
}

impl Live {
    fn new(opts: Options, stop: Arc<AtomicBool>) -> Live {
        let now = Instant::now();
        Live {
            ingest: LiveIngest::new(
                &opts.stream,
                opts.dvr_ms,
                opts.idle.as_millis().min(u32::MAX as u128) as u32,
            ),
            opts,
            ts: LiveTs::new(),
            probe: Vec::new(),
            probe_first: None,
            last_data: now,
            last_frame: None,
            src_open: false,
            want_open: None,
            child: None,
            child_started: now,
            backoff: Duration::from_secs(1),
            src_good: Arc::new(AtomicBool::new(false)),
            stop,
            exit: None,
            last_hb: now,
            last_report: now,
            reported: LiveStats::default(),
            published: None,
            stdin_done: false,
            connecting: None,
            connected: None,
        }
    }

    /// A `tstcp://` connect finished: its connection is adopted at once (the loop returns to
    /// `run`), a failure is tried again after the back-off.
    fn poll_connect(&mut self, now: Instant) {
        let Some(rx) = &self.connecting else {
            return;
        };
        let r = match rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err(std::io::Error::other("connect thread died")),
        };
        self.connecting = None;
        match r {
            Ok((sock, addr)) => {
                mist_core::info!("connected to the TS source at {addr}");
                self.connected = Some((sock, addr));
                self.want_open = Some(now);
            }
            Err(e) => {
                mist_core::warn!(
                    "cannot open the TS source: {e}; trying again in {:?}",
                    self.backoff
                );
                self.want_open = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    fn bytes(&mut self, d: &[u8], now: Instant) {
        self.last_data = now;
        self.src_good.store(true, Ordering::Relaxed);
        self.ts.push_bytes(d);
        self.drain(now);
    }

    fn on_datagram(&mut self, d: &[u8], now: Instant) {
        self.last_data = now;
        self.ts.push_datagram(d);
        self.drain(now);
    }

    /// Takes what the demuxer produced: probes, then writes.
    fn drain(&mut self, now: Instant) {
        while let Some(ev) = self.ts.poll() {
            if let DemuxEvent::Frame(_) = ev {
                self.last_frame = Some(now);
            }
            if self.ingest.is_open() {
                self.write(ev);
            } else {
                if let DemuxEvent::Frame(f) = &ev {
                    self.probe_first.get_or_insert(f.dts);
                }
                let span = match (&ev, self.probe_first) {
                    (DemuxEvent::Frame(f), Some(first)) => f.dts - first,
                    _ => 0,
                };
                self.probe.push(ev);
                let (known, waiting) = self.ts.track_counts();
                if known > 0
                    && (waiting == 0 || span >= PROBE_MS || self.probe.len() >= MAX_PROBE_FRAMES)
                {
                    self.start_stream();
                }
            }
        }
    }

    fn start_stream(&mut self) {
        let tracks: Vec<Track> = self.ts.demuxer().tracks().cloned().collect();
        if let Err(e) = self.ingest.start(&tracks) {
            mist_core::error!("{e}");
            self.exit = Some(1);
            self.probe.clear();
            return;
        }
        let desc: Vec<String> = tracks
            .iter()
            .map(|t| {
                if t.width > 0 {
                    format!("{} {} {}x{}", t.id, t.codec.mist_name(), t.width, t.height)
                } else {
                    format!("{} {}", t.id, t.codec.mist_name())
                }
            })
            .collect();
        mist_core::info!(
            "stream {} is live: {} track(s): {}",
            self.opts.stream,
            tracks.len(),
            desc.join(", ")
        );
        for ev in std::mem::take(&mut self.probe) {
            self.write(ev);
        }
        self.probe_first = None;
    }

    fn write(&mut self, ev: DemuxEvent) {
        let r = match ev {
            DemuxEvent::Track(t) => {
                self.ingest.set_track(&t);
                Ok(())
            }
            DemuxEvent::Frame(f) => self.ingest.push(f),
        };
        if let Err(e) = r {
            mist_core::error!("{e}");
            self.exit = Some(1);
        }
    }

    fn source_closed(&mut self) {
        self.src_open = false;
        self.ts.flush();
        self.drain(Instant::now());
        // Whatever comes next (a restarted child, a reconnect) starts its own counters.
        self.ts.source_restarted();
        match &self.opts.source {
            Source::Stdin => self.stdin_done = true,
            Source::Exec(_) => {} // the child is reaped (and restarted) in `turn`
            _ => {
                // A source that opened well starts the back-off over; one that keeps failing
                // is tried less and less often (1 s doubling to 10 s).
                if self.src_good.swap(false, Ordering::Relaxed) {
                    self.backoff = Duration::from_secs(1);
                }
                mist_core::warn!(
                    "the TS source closed; opening it again in {:?}",
                    self.backoff
                );
                self.want_open = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    fn end_stream(&mut self, why: &str) {
        if self.ingest.is_open() {
            mist_core::info!(
                "stream {}: {why}; ending it ({} frames, {} bytes)",
                self.opts.stream,
                self.ingest.frames(),
                self.ingest.bytes()
            );
            self.report(true);
            self.ingest.end();
            mist_shm::health::remove_input_health(&self.opts.stream);
        }
        self.published = None;
        self.probe.clear();
        self.probe_first = None;
        self.last_frame = None;
        // A new stream starts with a fresh demuxer and clock.
        self.ts = LiveTs::new();
    }

    /// Logs loss counters when they changed (at most every 10 s, or `now`).
    fn report(&mut self, force: bool) {
        let s = self.ts.stats();
        if s == self.reported || (!force && self.last_report.elapsed() < Duration::from_secs(10)) {
            return;
        }
        self.last_report = Instant::now();
        let lost = s.continuity_errors + s.rtp_lost;
        let was = self.reported.continuity_errors + self.reported.rtp_lost;
        let bad = s.bad_datagrams > self.reported.bad_datagrams;
        let line = format!(
            "stream {}: {} datagrams ({} not TS), {} packets, {} continuity gaps, {} RTP packets lost, {} time discontinuities, {} frames",
            self.opts.stream,
            s.datagrams,
            s.bad_datagrams,
            s.packets,
            s.continuity_errors,
            s.rtp_lost,
            s.discontinuities,
            s.frames
        );
        if lost > was || bad {
            mist_core::warn!("{line}");
        } else {
            mist_core::debug!("{line}");
        }
        self.reported = s;
    }

    /// Publishes the loss counters as the stream's input health (`mist_shm::health`), read by
    /// the controller for `active_streams` (`loss`, `health`). Only while the stream is live.
    fn publish_health(&mut self) {
        if !self.ingest.is_open() {
            return;
        }
        let s = self.ts.stats();
        if self.published.as_ref() == Some(&s) {
            return;
        }
        let h: mist_shm::health::InputHealth = [
            ("loss", s.continuity_errors + s.rtp_lost),
            ("continuity_errors", s.continuity_errors),
            ("rtp_lost", s.rtp_lost),
            ("bad_datagrams", s.bad_datagrams),
            ("datagrams", s.datagrams),
            ("packets", s.packets),
            ("discontinuities", s.discontinuities),
            ("frames", s.frames),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        match mist_shm::health::write_input_health(&self.opts.stream, &h) {
            Ok(()) => self.published = Some(s),
            Err(e) => mist_core::debug!(
                "stream {}: input health not published: {e}",
                self.opts.stream
            ),
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(2) {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Reaps the `ts-exec:` child; schedules its restart per `--restart`.
    fn check_child(&mut self, now: Instant) {
        let Some(c) = &mut self.child else { return };
        let Ok(Some(status)) = c.try_wait() else {
            return;
        };
        self.child = None;
        let ran = now.duration_since(self.child_started);
        let restart = match self.opts.restart {
            Restart::Always => true,
            Restart::OnFail => !status.success(),
            Restart::Never => false,
        };
        if ran > Duration::from_secs(10) {
            self.backoff = Duration::from_secs(1);
        }
        if restart {
            mist_core::warn!(
                "ts-exec child {status} after {} s; starting it again in {:?}",
                ran.as_secs(),
                self.backoff
            );
            self.want_open = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        } else {
            mist_core::info!("ts-exec child {status}; not restarted (--restart)");
            self.stdin_done = true;
        }
    }

    /// Once per loop turn: heartbeats, timeouts, the child; Stop to leave the loop.
    fn tick(&mut self, now: Instant) -> Flow {
        if self.stop.load(Ordering::Relaxed) {
            self.end_stream("stopped by a signal");
            self.exit.get_or_insert(0);
        }
        if self.exit.is_some() {
            return Flow::Stop;
        }
        self.check_child(now);
        self.poll_connect(now);
        if now.duration_since(self.last_hb) >= Duration::from_millis(500) {
            self.last_hb = now;
            self.ingest.heartbeat();
            if self.ingest.ended_elsewhere() {
                mist_core::info!("stream {} was ended", self.opts.stream);
                self.ingest.end();
                self.exit = Some(0);
                return Flow::Stop;
            }
            self.report(false);
            self.publish_health();
        }
        if self.ingest.is_open()
            && self
                .last_frame
                .is_none_or(|t| now.duration_since(t) >= self.opts.idle)
        {
            self.end_stream(&format!("no media for {} ms", self.opts.idle.as_millis()));
        }
        if self.stdin_done && self.child.is_none() {
            self.end_stream("the source ended");
            self.exit = Some(0);
            return Flow::Stop;
        }
        if !self.ingest.is_open() && now.duration_since(self.last_data) >= self.opts.input_timeout {
            mist_core::info!(
                "no data from the source for {} s: exiting",
                self.opts.input_timeout.as_secs()
            );
            self.exit = Some(0);
            return Flow::Stop;
        }
        if self.want_open.is_some_and(|t| t <= now) {
            return Flow::Stop;
        }
        Flow::Continue
    }
}

impl App for Live {
    type Session = Conn;

    fn accept(&mut self, _l: ListenerId, peer: Peer, _now: Instant) -> Option<Conn> {
        if self.src_open {
            mist_core::warn!("{peer}: refused, a TS sender is already connected");
            return None;
        }
        mist_core::info!("{peer} sends TS");
        self.src_open = true;
        Some(Conn::Data)
    }

    fn datagram(
        &mut self,
        _l: ListenerId,
        d: &[u8],
        _from: SocketAddr,
        now: Instant,
    ) -> Option<Vec<u8>> {
        self.on_datagram(d, now);
        None
    }

    fn turn(&mut self, _ctl: &mut mist_connector::Ctl<'_, Self>, now: Instant) -> Flow {
        self.tick(now)
    }
}

/// A non-blocking pipe (child output, FIFO, stdin) as a runtime stream.
struct Pipe(mist_connector::mio::unix::pipe::Receiver);

impl std::io::Read for Pipe {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(b)
    }
}

impl std::io::Write for Pipe {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        Ok(b.len()) // nothing is ever sent back to a source
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl mist_connector::mio::event::Source for Pipe {
    fn register(
        &mut self,
        r: &mist_connector::mio::Registry,
        t: mist_connector::mio::Token,
        _i: mist_connector::mio::Interest,
    ) -> std::io::Result<()> {
        self.0
            .register(r, t, mist_connector::mio::Interest::READABLE)
    }
    fn reregister(
        &mut self,
        r: &mist_connector::mio::Registry,
        t: mist_connector::mio::Token,
        _i: mist_connector::mio::Interest,
    ) -> std::io::Result<()> {
        self.0
            .reregister(r, t, mist_connector::mio::Interest::READABLE)
    }
    fn deregister(&mut self, r: &mist_connector::mio::Registry) -> std::io::Result<()> {
        self.0.deregister(r)
    }
}

impl mist_connector::Stream for Pipe {
    fn shutdown(&self) {}
}

/// Limits of a source stream: no idle cut (the stream timeout handles a quiet source).
fn source_limits() -> Limits {
    Limits {
        max_input: 64 << 20,
        read_budget: 4 << 20,
        header_timeout: None,
        idle_timeout: None,
        write_timeout: None,
        ..Limits::default()
    }
}

fn pipe_from(fd: std::os::fd::OwnedFd) -> std::io::Result<Pipe> {
    let r = mist_connector::mio::unix::pipe::Receiver::from(fd);
    r.set_nonblocking(true)?;
    Ok(Pipe(r))
}

/// Starts an HTTP(S) GET of `url` on a thread that copies the body into a pipe; returns the
/// pipe's reading end at once (the event loop never waits for the connection, up to
/// [`crate::hls_in::http::CONNECT_TIMEOUT`]). A refused connection or an error status is logged
/// by the thread and ends the pipe (the source is then opened again with back-off); `good` is
/// set once the response came. The pipe ends when the body ends, the server stays silent for
/// [`crate::hls_in::http::READ_TIMEOUT`], or the reading end is closed.
fn http_pull(url: &str, good: Arc<AtomicBool>) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::{Read, Write};
    let (r, mut w) = std::io::pipe()?;
    let url = url.to_string();
    std::thread::Builder::new()
        .name("ts-http".into())
        .spawn(move || {
            let mut body = match crate::hls_in::http::Http::new().open(&url) {
                Ok(b) => b,
                Err(e) => {
                    mist_core::warn!("cannot open the TS source: {url}: {e}");
                    return;
                }
            };
            mist_core::info!("pulling TS from {url}");
            good.store(true, Ordering::Relaxed);
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match body.read(&mut buf) {
                    Ok(0) => {
                        mist_core::info!("{url}: the body ended");
                        return;
                    }
                    Ok(n) => {
                        if w.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        mist_core::warn!("{url}: {e}");
                        return;
                    }
                }
            }
        })?;
    Ok(std::os::fd::OwnedFd::from(r))
}

/// Opens (or re-opens) a stream source on the runtime.
fn open_source(live: &mut Live, rt: &mut Runtime<Live>) -> std::io::Result<()> {
    use std::os::fd::OwnedFd;
    match live.opts.source.clone() {
        Source::Udp { .. } => {}
        Source::Tcp { host, port } => {
            if host.is_empty() {
                return Ok(()); // listening
            }
            let Some((s, addr)) = live.connected.take() else {
                if live.connecting.is_none() {
                    let remote = rt.remote();
                    let wake = Box::new(move || remote.wake_loop());
                    live.connecting = Some(start_connect(&host, port, system_resolve, wake)?);
                }
                return Ok(());
            };
            s.set_nonblocking(true)?;
            let s = mist_connector::mio::net::TcpStream::from_std(s);
            rt.adopt(
                Box::new(s),
                Peer::Tcp(addr),
                "tstcp",
                source_limits(),
                Conn::Data,
            )?;
            live.src_open = true;
        }
        Source::Pipe(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            // Read-write: the FIFO never reports end of file when a writer goes away.
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)?;
            rt.adopt(
                Box::new(pipe_from(OwnedFd::from(f))?),
                Peer::Unix,
                "pipe",
                source_limits(),
                Conn::Data,
            )?;
            live.src_open = true;
        }
        Source::Stdin => {
            // SAFETY: dup of fd 0, owned by the OwnedFd made from it.
            let fd = unsafe { libc::dup(0) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: fd is a fresh descriptor nobody else owns.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            rt.adopt(
                Box::new(pipe_from(fd)?),
                Peer::Unix,
                "stdin",
                source_limits(),
                Conn::Data,
            )?;
            live.src_open = true;
        }
        Source::Http(url) => {
            live.src_good.store(false, Ordering::Relaxed);
            let pipe = http_pull(&url, live.src_good.clone())?;
            rt.adopt(
                Box::new(pipe_from(pipe)?),
                Peer::Unix,
                "http",
                source_limits(),
                Conn::Data,
            )?;
            live.src_open = true;
        }
        Source::Exec(cmd) => {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            let out = child.stdout.take().map(OwnedFd::from);
            let err = child.stderr.take().map(OwnedFd::from);
            mist_core::info!("started ts-exec child (pid {}): {cmd}", child.id());
            live.child_started = Instant::now();
            live.child = Some(child);
            if let Some(fd) = out {
                rt.adopt(
                    Box::new(pipe_from(fd)?),
                    Peer::Unix,
                    "ts-exec",
                    source_limits(),
                    Conn::Data,
                )?;
                live.src_open = true;
            }
            if let Some(fd) = err {
                rt.adopt(
                    Box::new(pipe_from(fd)?),
                    Peer::Unix,
                    "ts-exec stderr",
                    source_limits(),
                    Conn::Log,
                )?;
            }
        }
    }
    Ok(())
}

/// Runs the live input until the source is gone for good or a signal; returns the exit status.
pub fn run(opts: Options, stop: Arc<AtomicBool>) -> i32 {
    let mut rt = match Runtime::<Live>::new() {
        Ok(r) => r,
        Err(e) => {
            mist_core::error!("cannot start the event loop: {e}");
            return 1;
        }
    };
    match &opts.source {
        Source::Udp { host, port, ifaces } => match udp::bind(host, *port, ifaces) {
            Ok(s) => {
                mist_core::info!(
                    "listening for TS on udp {}:{port}",
                    if host.is_empty() { "*" } else { host }
                );
                if let Err(e) =
                    rt.listen_udp(mist_connector::mio::net::UdpSocket::from_std(s), "tsudp")
                {
                    mist_core::error!("{e}");
                    return 1;
                }
            }
            Err(e) => {
                mist_core::error!("cannot receive on udp {host}:{port}: {e}");
                return 3;
            }
        },
        Source::Tcp { host, port } if host.is_empty() => {
            let any = std::net::SocketAddr::from(([0, 0, 0, 0], *port));
            let l = match mist_connector::bind_tcp(any) {
                Ok(l) => l,
                Err(e) => {
                    mist_core::error!("cannot listen on tcp port {port}: {e}");
                    return 3;
                }
            };
            if let Err(e) = rt.listen_tcp(l, "tstcp", source_limits()) {
                mist_core::error!("{e}");
                return 1;
            }
            mist_core::info!("waiting for a TS sender on tcp port {port}");
        }
        _ => {}
    }
    let mut live = Live::new(opts, stop);
    live.want_open = Some(Instant::now());
    loop {
        if live.exit.is_some() {
            break;
        }
        if live.want_open.take().is_some() {
            if let Err(e) = open_source(&mut live, &mut rt) {
                mist_core::warn!(
                    "cannot open the TS source: {e}; trying again in {:?}",
                    live.backoff
                );
                if matches!(live.opts.source, Source::Stdin) {
                    live.exit = Some(3);
                    break;
                }
                live.want_open = Some(Instant::now() + live.backoff);
                live.backoff = (live.backoff * 2).min(MAX_BACKOFF);
            }
        }
        if let Err(e) = rt.run(&mut live) {
            mist_core::error!("event loop: {e}");
            live.exit = Some(1);
        }
    }
    live.kill_child();
    live.end_stream("the input stops");
    live.exit.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolver that takes 1.5 s: the caller (the event loop) is back at once, the connection
    /// comes later through the channel.
    #[test]
    fn a_slow_resolver_does_not_hold_the_caller() {
        fn slow(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            std::thread::sleep(Duration::from_millis(1500));
            assert_eq!(host, "slow.example");
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let woken = Arc::new(AtomicBool::new(false));
        let w = woken.clone();
        let t0 = Instant::now();
        let rx = start_connect(
            "slow.example",
            port,
            slow,
            Box::new(move || w.store(true, Ordering::SeqCst)),
        )
        .unwrap();
        assert!(
            t0.elapsed() < Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        let (_s, addr) = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(addr.port(), port);
        assert!(t0.elapsed() >= Duration::from_millis(1500));
        assert!(l.accept().is_ok());
        // The wake runs after the result is in the channel.
        let end = Instant::now() + Duration::from_secs(2);
        while !woken.load(Ordering::SeqCst) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(woken.load(Ordering::SeqCst));
        // A name that does not resolve is an error in the channel, not a hang of the caller.
        fn none(_: &str, _: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(Vec::new())
        }
        let rx = start_connect("x", 1, none, Box::new(|| {})).unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap().is_err());
    }

    #[test]
    fn sources() {
        assert_eq!(
            parse("tsudp://239.1.1.1:5000/lo,eth0").unwrap(),
            Source::Udp {
                host: "239.1.1.1".into(),
                port: 5000,
                ifaces: vec!["lo".into(), "eth0".into()]
            }
        );
        assert_eq!(
            parse("tsudp://5000").unwrap(),
            Source::Udp {
                host: String::new(),
                port: 5000,
                ifaces: vec![]
            }
        );
        assert_eq!(
            parse("tstcp://:9000").unwrap(),
            Source::Tcp {
                host: String::new(),
                port: 9000
            }
        );
        assert_eq!(
            parse("ts-exec:ffmpeg -i x -f mpegts -").unwrap(),
            Source::Exec("ffmpeg -i x -f mpegts -".into())
        );
        assert_eq!(
            parse("stream:///tmp/a.ts").unwrap(),
            Source::Pipe("/tmp/a.ts".into())
        );
        assert_eq!(parse("-").unwrap(), Source::Stdin);
        assert!(parse("tsudp://host:notaport").is_err());
        assert!(parse("ts-exec:").is_err());
        assert!(is_live("TSUDP://1234") && !is_live("/a/b.ts"));
    }
}
