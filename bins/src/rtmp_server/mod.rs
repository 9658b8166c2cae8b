//! MistOutRTMP: the RTMP connector. One mio event loop serves every connection of the process.
//!
//! * **Publish**: `rtmp://HOST/APP/STREAM`; the stream name is the last part, the app is the push
//!   password the controller checks. With `MIST_CONTROL` set, the controller is asked first
//!   (`Request::Push`) and answers with the stream name to write to; without it any push is
//!   accepted. Frames go into the stream's shared-memory buffer through `mist_shm::StreamWriter`.
//! * **Play**: `rtmp://HOST/ANYAPP/STREAM`. One `StreamReader` per stream per process reads each
//!   frame once; the frame is encoded once into RTMP chunk bytes (`Bytes`) and the same bytes are
//!   queued to every viewer. The current GOP is kept so a new viewer starts at the newest keyframe.
//!   Each viewer also holds a users-table slot for statistics.
//! * **Limits**: a viewer whose unsent backlog exceeds [`MAX_BACKLOG`] is disconnected; a peer
//!   that breaks the protocol loses its connection only (protocol errors are typed errors, and
//!   connection handling runs under `catch_unwind` as a last line of defence).

#[macro_use]
pub mod log;
pub mod push;

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use mist_bins::access::dvr_ms;
use mist_connector::ask::Verdict;
use mist_connector::OutQueue;
use mist_core::control::Request;
use mist_core::names::sanitize;
use mist_media::rtmp::{media_message, ServerEvent, ServerSession, OUT_CHUNK_SIZE};
use mist_media::{Frame, Track, TrackKind};
use mist_shm::{ReadEvent, ReaderInfo, StreamReader, StreamWriter, WriterOptions};

use log::{ERROR, HIGH, INFO, MEDIUM, WARN};

/// Unsent bytes a viewer may accumulate before it is disconnected.
pub const MAX_BACKLOG: usize = 16 << 20;
/// Largest GOP kept for new viewers; beyond it new viewers wait for the next keyframe.
pub const MAX_GOP_BYTES: usize = 32 << 20;
/// How long a closing connection may take to receive its last bytes.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// How long a play of a live stream that has not started yet waits for it.
pub const PLAY_WAIT: Duration = Duration::from_secs(10);
/// DVR window when the controller does not say (MistServer's default).
pub const DEFAULT_DVR_MS: u64 = mist_bins::access::DEFAULT_DVR_MS;
/// Time a connection has to get to publish or play.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// A publisher that sends nothing for this long is dropped.
pub const PUBLISH_IDLE: Duration = Duration::from_secs(30);
/// Frames read from one stream per loop turn before other work gets a go.
const FRAMES_PER_TURN: usize = 2000;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

pub struct Config {
    pub addr: SocketAddr,
    /// Ask the controller (MIST_CONTROL is set).
    pub controlled: bool,
    /// Merged writes: media for a viewer is written at most this often (0 = every frame at once),
    /// unless its queue reaches [`MERGE_BYTES`]. Fewer, larger writes cost the server (and, on the
    /// same host, the viewer) less CPU per delivered byte at the price of up to this much latency.
    pub merge: Duration,
}

/// Queued bytes at which a viewer is written to without waiting for the merge interval.
pub const MERGE_BYTES: usize = 256 << 10;
/// Default merge interval of `--merge-ms`.
pub const DEFAULT_MERGE_MS: u64 = 100;

enum Role {
    None,
    Publisher {
        stream: String,
        stream_id: u32,
        writer: Option<Box<StreamWriter>>,
        frames: u64,
    },
    Viewer {
        stream: String,
        stream_id: u32,
        /// Boxed: a reader is large next to the other roles.
        stats: Option<Box<StreamReader>>,
    },
    /// Play of a live stream that has no buffer yet: retried until [`PLAY_WAIT`] passes.
    AwaitingStream {
        stream: String,
        stream_id: u32,
        since: Instant,
    },
}

/// A publish or play waiting for a decision.
enum Ask {
    Publish { stream_id: u32, name: String },
    Play { stream_id: u32, name: String },
}

/// The stream name asked for.
fn ask_name(a: &Ask) -> &str {
    match a {
        Ask::Publish { name, .. } | Ask::Play { name, .. } => name,
    }
}

/// The stream name to use and its DVR window (ms), or why not.
type Answer = Result<(String, u64), String>;

struct Conn {
    token: usize,
    sock: TcpStream,
    peer: String,
    session: ServerSession,
    /// Output, written with merged vectored writes (the runtime's one implementation).
    out: OutQueue,
    role: Role,
    /// A controller decision on publish/play is outstanding.
    waiting: bool,
    closing: bool,
    /// When a closing connection is dropped even if the peer has not read everything.
    close_deadline: Option<Instant>,
    created: Instant,
    last_rx: Instant,
    bytes_in: u64,
    bytes_out: u64,
}

impl Conn {
    fn queue(&mut self, b: Bytes) {
        self.out.push(b);
    }

    /// Moves the session's replies into the send queue (before any media queued after them).
    fn drain_session(&mut self) {
        if self.session.has_output() {
            let b = Bytes::from(self.session.take_output());
            self.queue(b);
        }
    }

    /// Writes as much as the socket takes. Err: the connection is dead.
    fn flush(&mut self) -> io::Result<()> {
        self.drain_session();
        self.bytes_out += self.out.flush_to(&mut self.sock)? as u64;
        Ok(())
    }
}

/// A stream being played by this process: one reader, the current GOP, the viewers.
struct PlayStream {
    reader: StreamReader,
    tracks: Vec<Track>,
    main_track: u32,
    /// Frames since the newest main-track keyframe, with their shared encoding (stream id 1).
    gop: Vec<(Frame, Bytes)>,
    gop_bytes: usize,
    gop_valid: bool,
    viewers: Vec<usize>,
    ended: bool,
}

fn main_track(tracks: &[Track]) -> u32 {
    tracks
        .iter()
        .find(|t| t.kind() == TrackKind::Video)
        .or(tracks.first())
        .map_or(0, |t| t.id)
}

pub struct Server {
    cfg: Config,
    poll: Poll,
    listener: TcpListener,
    conns: HashMap<usize, Conn>,
    streams: HashMap<String, PlayStream>,
    waiter: mist_shm::Waiter,
    next_token: usize,
    seed: u64,
    waker: Arc<Waker>,
    /// Viewers with media queued and not yet written (merged writes).
    dirty: Vec<usize>,
    next_merge: Instant,
    /// Push and play requests to the controller (bounded in flight, one policy:
    /// `mist_connector::ask`), keyed by connection and what was asked.
    decisions: mist_connector::ask::Asker<(usize, Ask)>,
}

impl Server {
    pub fn bind(cfg: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(cfg.addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ std::process::id() as u64;
        Ok(Server {
            cfg,
            poll,
            listener,
            conns: HashMap::new(),
            streams: HashMap::new(),
            waiter: mist_shm::Waiter::new(),
            next_token: FIRST_CONN,
            seed,
            waker: waker.clone(),
            dirty: Vec::new(),
            next_merge: Instant::now(),
            decisions: mist_connector::ask::Asker::with(
                waker.clone(),
                Arc::new(mist_bins::access::ask_with_viewer_triggers),
                mist_core::control::socket_path().is_none(),
                mist_connector::ask::MAX_IN_FLIGHT,
                256,
            )
            .timeout(Duration::from_secs(10)),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: Arc<AtomicBool>) -> io::Result<()> {
        {
            let (w, k, stop) = (self.waiter.clone(), self.waker.clone(), stop.clone());
            std::thread::Builder::new()
                .name("shm-waiter".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if !w.wait(Duration::from_millis(500)).is_empty() {
                            let _ = k.wake();
                        }
                    }
                })?;
        }
        let mut events = Events::with_capacity(1024);
        let mut last_tick = Instant::now();
        let mut busy = false;
        while !stop.load(Ordering::Relaxed) {
            let timeout = if busy {
                Duration::ZERO
            } else if !self.dirty.is_empty() {
                self.next_merge.saturating_duration_since(Instant::now())
            } else {
                Duration::from_millis(100)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.with_conn(t, |s, c| s.read_conn(c));
                        }
                        if ev.is_writable() {
                            self.with_conn(t, |_, c| c.flush().map_err(|e| format!("write: {e}")));
                        }
                    }
                }
            }
            self.apply_decisions();
            busy = self.pump_streams();
            if !self.dirty.is_empty() && Instant::now() >= self.next_merge {
                self.flush_dirty();
            }
            if last_tick.elapsed() >= Duration::from_millis(500) {
                last_tick = Instant::now();
                self.tick();
            }
        }
        log!(INFO, "shutting down, {} connections", self.conns.len());
        let tokens: Vec<usize> = self.conns.keys().copied().collect();
        for t in tokens {
            if let Some(c) = self.conns.remove(&t) {
                self.drop_conn(c, "shutdown");
            }
        }
        Ok(())
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, addr)) => {
                    let token = self.next_token;
                    self.next_token += 1;
                    if let Err(e) = self.poll.registry().register(
                        &mut sock,
                        Token(token),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log!(WARN, "register {addr}: {e}");
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    self.seed = self
                        .seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    log!(MEDIUM, "connection from {addr}");
                    let now = Instant::now();
                    self.conns.insert(
                        token,
                        Conn {
                            token,
                            sock,
                            peer: addr.ip().to_string(),
                            session: ServerSession::new(self.seed),
                            out: OutQueue::default(),
                            role: Role::None,
                            waiting: false,
                            closing: false,
                            close_deadline: None,
                            created: now,
                            last_rx: now,
                            bytes_in: 0,
                            bytes_out: 0,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: try again on the next readiness event.
                    log!(WARN, "accept: {e}");
                    return;
                }
            }
        }
    }

    /// Runs `f` on a connection taken out of the table; drops the connection on error, panic, or
    /// when it is closing and everything was sent.
    fn with_conn(
        &mut self,
        token: usize,
        f: impl FnOnce(&mut Server, &mut Conn) -> Result<(), String>,
    ) {
        let Some(mut c) = self.conns.remove(&token) else {
            return;
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self, &mut c)));
        let r = match r {
            Ok(r) => r,
            Err(_) => {
                log!(
                    ERROR,
                    "panic while handling {}; dropping that connection only",
                    c.peer
                );
                Err("internal error (panic)".into())
            }
        };
        if let Err(e) = r {
            self.drop_conn(c, &e);
            return;
        }
        if c.out.len() > MAX_BACKLOG {
            self.drop_conn(c, "viewer too slow (backlog over limit)");
            return;
        }
        if c.closing && c.out.is_empty() && !c.session.has_output() {
            self.drop_conn(c, "closed");
            return;
        }
        self.conns.insert(token, c);
    }

    fn drop_conn(&mut self, mut c: Conn, why: &str) {
        let _ = c.flush();
        let _ = self.poll.registry().deregister(&mut c.sock);
        match std::mem::replace(&mut c.role, Role::None) {
            Role::Publisher {
                stream,
                writer,
                frames,
                ..
            } => {
                log!(
                    INFO,
                    "publisher {} of {stream} left ({why}); {frames} frames, {} bytes in",
                    c.peer,
                    c.bytes_in
                );
                if let Some(w) = writer {
                    w.detach();
                }
            }
            Role::Viewer { stream, .. } => {
                let url = url_of(&c, &stream);
                mist_core::triggers::viewers::closed(&stream, &c.peer, "RTMP", &url);
                log!(
                    MEDIUM,
                    "viewer {} of {stream} left ({why}); {} bytes out",
                    c.peer,
                    c.bytes_out
                );
                self.remove_viewer(&stream, c.token);
            }
            Role::None | Role::AwaitingStream { .. } => {
                log!(HIGH, "connection {} closed ({why})", c.peer)
            }
        }
    }

    fn remove_viewer(&mut self, stream: &str, token: usize) {
        if let Some(ps) = self.streams.get_mut(stream) {
            ps.viewers.retain(|t| *t != token);
            if ps.viewers.is_empty() {
                self.streams.remove(stream);
                self.waiter.remove(stream);
                log!(HIGH, "no viewers left on {stream}");
            }
        }
    }

    fn read_conn(&mut self, c: &mut Conn) -> Result<(), String> {
        let mut buf = [0u8; 65536];
        loop {
            match c.sock.read(&mut buf) {
                Ok(0) => {
                    self.handle_events(c)?;
                    return Err("peer closed".into());
                }
                Ok(n) => {
                    c.bytes_in += n as u64;
                    c.last_rx = Instant::now();
                    c.session.feed(&buf[..n]);
                    self.handle_events(c)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        c.flush().map_err(|e| format!("write: {e}"))
    }

    fn handle_events(&mut self, c: &mut Conn) -> Result<(), String> {
        loop {
            if c.waiting {
                // Later events wait for the controller's answer (clients wait for it anyway).
                return Ok(());
            }
            let ev = match c.session.poll() {
                Ok(Some(ev)) => ev,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("protocol error: {e}")),
            };
            let r = match ev {
                ServerEvent::Connect { app, tc_url } => {
                    log!(HIGH, "{} connect app={app:?} tcUrl={tc_url:?}", c.peer);
                    c.session.accept_connect().map_err(|e| e.to_string())
                }
                ServerEvent::Publish {
                    stream_id, name, ..
                } => self.decide(c, Ask::Publish { stream_id, name }),
                ServerEvent::Play { stream_id, name } => {
                    self.decide(c, Ask::Play { stream_id, name })
                }
                ServerEvent::Track(t) => match &mut c.role {
                    Role::Publisher {
                        writer: Some(w),
                        stream,
                        ..
                    } => {
                        match t.kind() {
                            TrackKind::Video => log!(
                                INFO,
                                "{stream}: track {} {} {}x{}",
                                t.id,
                                t.codec.mist_name(),
                                t.width,
                                t.height
                            ),
                            _ => log!(
                                INFO,
                                "{stream}: track {} {} {} Hz {} ch",
                                t.id,
                                t.codec.mist_name(),
                                t.rate,
                                t.channels
                            ),
                        }
                        w.set_track(&t)
                            .map_err(|e| format!("{stream}: set_track: {e}"))
                    }
                    _ => Ok(()),
                },
                ServerEvent::Frame(f) => match &mut c.role {
                    Role::Publisher {
                        writer: Some(w),
                        frames,
                        stream,
                        ..
                    } => {
                        *frames += 1;
                        w.push(f.track, f.dts, f.pts_offset, f.keyframe, &f.data)
                            .map_err(|e| format!("{stream}: push: {e}"))
                    }
                    _ => Ok(()),
                },
                ServerEvent::Metadata(_) => Ok(()),
                ServerEvent::StreamClosed { stream_id } => {
                    if let Role::Publisher {
                        stream_id: sid,
                        writer,
                        stream,
                        ..
                    } = &mut c.role
                    {
                        if *sid == stream_id {
                            if let Some(w) = writer.take() {
                                // Standalone, an explicit unpublish ends the stream; under a
                                // controller the buffer process decides.
                                if self.cfg.controlled {
                                    w.detach();
                                } else {
                                    w.close();
                                }
                                log!(INFO, "{stream}: unpublished by {}", c.peer);
                            }
                            // The client closes the connection itself (closing it first makes
                            // ffmpeg report a broken pipe); an idle one is dropped by `tick`.
                        }
                    }
                    Ok(())
                }
            };
            r?;
        }
    }

    /// Starts the decision on a push or play: standalone at once, under a controller on a helper
    /// thread (the loop goes on serving everyone else; this connection's later events wait).
    fn decide(&mut self, c: &mut Conn, what: Ask) -> Result<(), String> {
        let (stream_id, name) = match &what {
            Ask::Publish { stream_id, name } | Ask::Play { stream_id, name } => {
                (*stream_id, name.clone())
            }
        };
        if !matches!(c.role, Role::None) || c.waiting {
            c.closing = true;
            return match what {
                Ask::Publish { .. } => c
                    .session
                    .reject_publish(stream_id, "already publishing or playing"),
                Ask::Play { .. } => c
                    .session
                    .reject_play(stream_id, "already publishing or playing"),
            }
            .map_err(|e| e.to_string());
        }
        if !mist_core::names::is_valid(&name) {
            // Control characters (or no base): would inject lines into logs and triggers.
            let answer = Err("invalid stream name".to_string());
            return self.finish(c, what, answer);
        }
        if !self.cfg.controlled {
            let answer = Ok((sanitize(&name), DEFAULT_DVR_MS));
            return self.finish(c, what, answer);
        }
        let url = format!(
            "{}/{}",
            c.session.connect.tc_url.trim_end_matches('/'),
            name
        );
        let (req, timeout) = match &what {
            Ask::Publish { .. } => (
                Request::Push {
                    stream: name.clone(),
                    app: c.session.connect.app.clone(),
                    host: c.peer.clone(),
                    connector: "RTMP".into(),
                    url,
                },
                // Blocking push triggers (rewrite, STREAM_PUSH) may take up to 15 s each.
                Duration::from_secs(40),
            ),
            Ask::Play { .. } => (
                Request::Play {
                    stream: name.clone(),
                    host: c.peer.clone(),
                    connector: "RTMP".into(),
                    url,
                },
                Duration::from_secs(10),
            ),
        };
        c.waiting = true;
        self.decisions.ask_within((c.token, what), req, timeout);
        Ok(())
    }

    /// Applies decisions that helper threads have brought back.
    fn apply_decisions(&mut self) {
        while let Some(((token, what), verdict)) = self.decisions.take() {
            let answer = match verdict {
                Verdict::Allow(r) if r.stream.is_empty() => {
                    Ok((sanitize(ask_name(&what)), dvr_ms(&r.config)))
                }
                Verdict::Allow(r) => Ok((r.stream, dvr_ms(&r.config))),
                Verdict::Refuse(why) => Err(why),
            };
            self.with_conn(token, |s, c| {
                c.waiting = false;
                s.finish(c, what, answer)?;
                s.handle_events(c)?;
                c.flush().map_err(|e| format!("write: {e}"))
            });
        }
    }

    fn finish(&mut self, c: &mut Conn, what: Ask, answer: Answer) -> Result<(), String> {
        match what {
            Ask::Publish { stream_id, name } => match answer {
                Ok((stream, dvr)) if !stream.is_empty() => {
                    self.start_publish(c, stream_id, stream, dvr)
                }
                Ok(_) => self.refuse_publish(c, stream_id, &name, "empty stream name"),
                Err(why) => self.refuse_publish(c, stream_id, &name, &why),
            },
            Ask::Play { stream_id, name } => match answer {
                Ok((stream, _)) if !stream.is_empty() => self.start_play(c, stream_id, stream),
                Ok(_) => self.refuse_play(c, stream_id, &name, "empty stream name"),
                Err(why) => self.refuse_play(c, stream_id, &name, &why),
            },
        }
    }

    fn start_publish(
        &mut self,
        c: &mut Conn,
        stream_id: u32,
        stream: String,
        dvr_ms: u64,
    ) -> Result<(), String> {
        match StreamWriter::create(&stream, WriterOptions { live: true, dvr_ms }) {
            Ok(w) => {
                c.session
                    .accept_publish(stream_id, &stream)
                    .map_err(|e| e.to_string())?;
                log!(INFO, "{} publishes {stream}", c.peer);
                c.role = Role::Publisher {
                    stream,
                    stream_id,
                    writer: Some(Box::new(w)),
                    frames: 0,
                };
                Ok(())
            }
            Err(e) => self.refuse_publish(c, stream_id, &stream, &e.to_string()),
        }
    }

    fn refuse_publish(
        &mut self,
        c: &mut Conn,
        stream_id: u32,
        name: &str,
        why: &str,
    ) -> Result<(), String> {
        log!(WARN, "push of {name:?} from {} refused: {why}", c.peer);
        c.session
            .reject_publish(stream_id, why)
            .map_err(|e| e.to_string())?;
        c.closing = true;
        Ok(())
    }

    fn start_play(&mut self, c: &mut Conn, stream_id: u32, stream: String) -> Result<(), String> {
        if self.streams.get(&stream).is_some_and(|ps| ps.ended) {
            // The old state only waits for its viewers to drain; a new viewer needs a fresh reader
            // (a new publisher may have taken the name over).
            self.streams.remove(&stream);
        }
        if !self.streams.contains_key(&stream) {
            let info = ReaderInfo {
                connector: "RTMP-mux".into(),
                host: String::new(),
            };
            let reader = match StreamReader::open(&stream, info) {
                Ok(r) => r,
                Err(mist_shm::ShmError::NoStream(_)) => {
                    let since = match c.role {
                        Role::AwaitingStream { since, .. } => since,
                        _ => Instant::now(),
                    };
                    if since.elapsed() < PLAY_WAIT {
                        if matches!(c.role, Role::None) {
                            log!(MEDIUM, "{} waits for {stream} to start", c.peer);
                        }
                        c.role = Role::AwaitingStream {
                            stream,
                            stream_id,
                            since,
                        };
                        return Ok(());
                    }
                    return self.refuse_play(c, stream_id, &stream, "stream is not live");
                }
                Err(e) => return self.refuse_play(c, stream_id, &stream, &e.to_string()),
            };
            if let Err(e) = self.waiter.add(&stream) {
                log!(WARN, "{stream}: cannot watch for wake-ups ({e}); polling");
            }
            let tracks = reader.tracks();
            let main = main_track(&tracks);
            self.streams.insert(
                stream.clone(),
                PlayStream {
                    reader,
                    tracks,
                    main_track: main,
                    gop: Vec::new(),
                    gop_bytes: 0,
                    gop_valid: true,
                    viewers: Vec::new(),
                    ended: false,
                },
            );
        }
        let stats = StreamReader::open(
            &stream,
            ReaderInfo {
                connector: "RTMP".into(),
                host: c.peer.clone(),
            },
        )
        .ok()
        .map(Box::new);
        c.session
            .accept_play(stream_id, &stream)
            .map_err(|e| e.to_string())?;
        let token = c.token;
        let ps = self.streams.get_mut(&stream).ok_or("stream vanished")?;
        if !ps.tracks.is_empty() {
            let start = ps.gop.first().map_or(0, |(f, _)| f.dts);
            c.session
                .send_tracks(stream_id, &ps.tracks, start)
                .map_err(|e| e.to_string())?;
            c.drain_session();
            if ps.gop_valid {
                for (f, enc) in &ps.gop {
                    queue_frame(c, stream_id, &ps.tracks, f, enc)?;
                }
            }
        }
        ps.viewers.push(token);
        log!(
            INFO,
            "{} plays {stream} (GOP burst of {} frames)",
            c.peer,
            ps.gop.len()
        );
        c.role = Role::Viewer {
            stream,
            stream_id,
            stats,
        };
        Ok(())
    }

    fn refuse_play(
        &mut self,
        c: &mut Conn,
        stream_id: u32,
        name: &str,
        why: &str,
    ) -> Result<(), String> {
        log!(WARN, "play of {name:?} by {} refused: {why}", c.peer);
        c.session
            .reject_play(stream_id, why)
            .map_err(|e| e.to_string())?;
        c.closing = true;
        Ok(())
    }

    /// Reads new frames of every played stream and queues them to the viewers. Returns true when a
    /// stream still had frames waiting (call again soon).
    fn pump_streams(&mut self) -> bool {
        let mut busy = false;
        let mut ended = Vec::new();
        let mut touched: Vec<usize> = Vec::new();
        for (name, ps) in self.streams.iter_mut() {
            if ps.ended {
                continue;
            }
            let mut n = 0;
            loop {
                if n >= FRAMES_PER_TURN {
                    busy = true;
                    break;
                }
                n += 1;
                match ps.reader.next() {
                    ReadEvent::Frame(f) => {
                        let Some(track) = ps.tracks.iter().find(|t| t.id == f.track) else {
                            continue;
                        };
                        let enc = match media_message(OUT_CHUNK_SIZE, 1, track, &f) {
                            Ok(b) => b,
                            Err(e) => {
                                log!(WARN, "{name}: cannot send frame of track {}: {e}", f.track);
                                continue;
                            }
                        };
                        if f.track == ps.main_track && f.keyframe {
                            ps.gop.clear();
                            ps.gop_bytes = 0;
                            ps.gop_valid = true;
                        }
                        if ps.gop_valid {
                            ps.gop_bytes += enc.len();
                            if ps.gop_bytes > MAX_GOP_BYTES {
                                ps.gop.clear();
                                ps.gop_bytes = 0;
                                ps.gop_valid = false;
                            } else {
                                ps.gop.push((f.clone(), enc.clone()));
                            }
                        }
                        for t in &ps.viewers {
                            if let Some(c) = self.conns.get_mut(t) {
                                if let Role::Viewer { stream_id, .. } = c.role {
                                    if let Err(e) = queue_frame(c, stream_id, &ps.tracks, &f, &enc)
                                    {
                                        log!(WARN, "{name}: {e}");
                                        c.closing = true;
                                    }
                                }
                                touched.push(*t);
                            }
                        }
                    }
                    ev @ (ReadEvent::TracksChanged | ReadEvent::Restarted) => {
                        ps.tracks = ps.reader.tracks();
                        ps.main_track = main_track(&ps.tracks);
                        if matches!(ev, ReadEvent::Restarted) {
                            ps.gop.clear();
                            ps.gop_bytes = 0;
                            ps.gop_valid = true;
                        }
                        log!(MEDIUM, "{name}: {} tracks", ps.tracks.len());
                        let at = ps.reader.position_ms().max(0);
                        for t in &ps.viewers {
                            if let Some(c) = self.conns.get_mut(t) {
                                if let Role::Viewer { stream_id, .. } = c.role {
                                    if c.session.send_tracks(stream_id, &ps.tracks, at).is_err() {
                                        c.closing = true;
                                    }
                                    c.drain_session();
                                }
                                touched.push(*t);
                            }
                        }
                    }
                    ReadEvent::Pending => break,
                    ReadEvent::Ended => {
                        log!(INFO, "{name}: stream ended");
                        ps.ended = true;
                        for t in &ps.viewers {
                            if let Some(c) = self.conns.get_mut(t) {
                                if let Role::Viewer { stream_id, .. } = c.role {
                                    let _ = c.session.end_stream(stream_id);
                                }
                                c.closing = true;
                                touched.push(*t);
                            }
                        }
                        ended.push(name.clone());
                        break;
                    }
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for t in touched {
            let now = self.cfg.merge.is_zero()
                || self
                    .conns
                    .get(&t)
                    .is_none_or(|c| c.closing || c.out.len() >= MERGE_BYTES);
            if now {
                self.with_conn(t, |_, c| c.flush().map_err(|e| format!("write: {e}")));
            } else {
                if self.dirty.is_empty() {
                    self.next_merge = Instant::now() + self.cfg.merge;
                }
                self.dirty.push(t);
            }
        }
        for name in ended {
            if self
                .streams
                .get(&name)
                .is_some_and(|s| s.viewers.iter().all(|t| !self.conns.contains_key(t)))
            {
                self.streams.remove(&name);
                self.waiter.remove(&name);
            }
        }
        busy
    }

    /// Writes every viewer whose media waited for the merge interval.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for t in dirty.drain(..) {
            self.with_conn(t, |_, c| c.flush().map_err(|e| format!("write: {e}")));
        }
        // Keep the allocation for the next round.
        self.dirty = dirty;
    }

    /// Twice a second: heartbeats, statistics, timeouts.
    fn tick(&mut self) {
        let now = Instant::now();
        let mut dead = Vec::new();
        for (t, c) in self.conns.iter_mut() {
            if c.closing {
                match c.close_deadline {
                    None => c.close_deadline = Some(now + CLOSE_LINGER),
                    Some(d) if now > d => dead.push((*t, "closing peer does not read")),
                    _ => {}
                }
            }
            match &mut c.role {
                Role::Publisher { writer, .. } => {
                    if let Some(w) = writer {
                        w.heartbeat();
                    }
                    if now.duration_since(c.last_rx) > PUBLISH_IDLE {
                        dead.push((*t, "publisher idle"));
                    }
                }
                Role::Viewer { stats: Some(r), .. } => r.report(c.bytes_out, c.bytes_in),
                Role::None if !c.waiting && now.duration_since(c.created) > SETUP_TIMEOUT => {
                    dead.push((*t, "no publish or play in time"))
                }
                _ => {}
            }
        }
        for (t, why) in dead {
            if let Some(c) = self.conns.remove(&t) {
                self.drop_conn(c, why);
            }
        }
        // Viewers waiting for a stream to start: try again.
        let waiting: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.role, Role::AwaitingStream { .. }) && !c.closing)
            .map(|(t, _)| *t)
            .collect();
        for t in waiting {
            self.with_conn(t, |s, c| {
                if let Role::AwaitingStream {
                    stream, stream_id, ..
                } = &c.role
                {
                    let (stream, stream_id) = (stream.clone(), *stream_id);
                    s.start_play(c, stream_id, stream)?;
                }
                c.flush().map_err(|e| format!("write: {e}"))
            });
        }
        // Closing connections whose queue drained while no event came.
        let done: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.closing && c.out.is_empty())
            .map(|(t, _)| *t)
            .collect();
        for t in done {
            self.with_conn(t, |_, c| c.flush().map_err(|e| format!("write: {e}")));
        }
    }
}

/// Queues a frame for a viewer: the shared encoding when the viewer plays on stream id 1 (every
/// client we know), a private one otherwise.
fn queue_frame(
    c: &mut Conn,
    stream_id: u32,
    tracks: &[Track],
    f: &Frame,
    enc: &Bytes,
) -> Result<(), String> {
    c.drain_session();
    if stream_id == 1 {
        c.queue(enc.clone());
    } else {
        let track = tracks
            .iter()
            .find(|t| t.id == f.track)
            .ok_or("frame of an unknown track")?;
        c.queue(media_message(OUT_CHUNK_SIZE, stream_id, track, f).map_err(|e| e.to_string())?);
    }
    Ok(())
}

/// Capabilities JSON for `-j` (MistServer's connector description).
pub fn capabilities() -> serde_json::Value {
    serde_json::json!({
        "name": "RTMP",
        "desc": "Real time streaming over Adobe RTMP: publish (push) into a stream and play from it. Enhanced RTMP (hvc1, av01) accepted.",
        "optional": {
            "port": {"name": "TCP port", "help": "TCP port to listen on", "type": "uint", "default": 1935, "option": "--port", "short": "p"},
            "interface": {"name": "Interface", "help": "Address to listen on, or 0.0.0.0 for all available interfaces.", "type": "str", "default": "0.0.0.0", "option": "--interface", "short": "i"},
            "debug": {"name": "debug", "help": "The debug level at which messages need to be printed.", "type": "debug", "option": "--debug", "short": "g"},
            "merge_ms": {"name": "Merged writes (ms)", "help": "Write media to each viewer at most this often, in milliseconds; 0 writes every frame at once. Larger values cost less CPU per viewer and add up to that much latency.", "type": "uint", "default": DEFAULT_MERGE_MS, "option": "--merge-ms"}
        },
        "codecs": [[["H264", "HEVC", "AV1"], ["AAC", "MP3"]]],
        "methods": [{"handler": "rtmp", "type": "flash/10", "hrn": "RTMP", "priority": 7}],
        "push_urls": ["rtmp://*", "rtmps://*"],
        "url_rel": "/play/$",
        "priority": 7
    })
}

/// The connection's tcUrl with `/` and `stream` appended (the viewer URL of the viewer triggers).
fn url_of(c: &Conn, stream: &str) -> String {
    format!(
        "{}/{stream}",
        c.session.connect.tc_url.trim_end_matches('/')
    )
}
