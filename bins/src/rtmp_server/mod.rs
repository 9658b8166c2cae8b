//! MistOutRTMP: the RTMP connector, a [`Session`] on the connector runtime (`mist_connector`).
//!
//! The runtime owns the socket work (accepting under per-listener and per-address caps, reads,
//! merged vectored writes, the slow-viewer cut, timeouts, the panic fence); this module is the
//! protocol: handshake, chunk stream and commands ([`ServerSession`]), publish and play.
//!
//! * **Publish**: `rtmp://HOST/APP/STREAM`; the stream name is the last part, the app is the push
//!   password the controller checks. With `MIST_CONTROL` set, the controller is asked first
//!   (`Request::Push`) and answers with the stream name to write to; without it any push is
//!   accepted. Frames go into the stream's shared-memory buffer through [`Ingest`].
//! * **Play**: `rtmp://HOST/ANYAPP/STREAM`. One `StreamReader` per stream per process reads each
//!   frame once; the frame is encoded once into RTMP chunk bytes (`Bytes`) and the same bytes are
//!   queued to every viewer. The current GOP is kept so a new viewer starts at the newest keyframe.
//!   Each viewer also holds a users-table slot for statistics.
//! * **Limits**: a viewer whose unsent backlog exceeds [`MAX_BACKLOG`] is disconnected; a peer
//!   that breaks the protocol loses its connection only (protocol errors close that connection,
//!   and a panic in session code is caught by the runtime and closes that connection only).

#[macro_use]
pub mod log;
pub mod push;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use mist_bins::feed::{main_track, GopCache, Selection};
use mist_bins::http_out::mux::Format;
use mist_bins::ingest::{self, Answer, Ingest};
use mist_connector::ask::Asker;
use mist_connector::{
    App, ConnId, Ctl, Flow, Io, Limits, ListenerId, Peer, Remote, Runtime, Session,
};
use mist_core::control::Request;
use mist_core::triggers;
use mist_media::rtmp::{
    end_message, media_message, tracks_message, ServerEvent, ServerSession, OUT_CHUNK_SIZE,
};
use mist_media::{Frame, Track};
use mist_shm::{ReadEvent, ReaderInfo, StreamReader, StreamUser};

use log::{HIGH, INFO, MEDIUM, WARN};

/// Why an RTMP connection is closed (its text is the connection's close reason in the log).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    /// The peer sent bytes the RTMP session cannot parse.
    #[error("protocol error: {0}")]
    Protocol(mist_media::MediaError),
    /// The session could not encode an answer or a frame.
    #[error("{0}")]
    Session(mist_media::MediaError),
    /// A published track or frame could not be written to shared memory.
    #[error(transparent)]
    Ingest(#[from] mist_bins::ingest::IngestError),
    /// A publisher sent nothing for `PUBLISH_IDLE`.
    #[error("publisher idle")]
    PublisherIdle,
    /// No publish or play within `SETUP_TIMEOUT` of connecting.
    #[error("no publish or play in time")]
    SetupTimeout,
    #[error("stream vanished")]
    StreamVanished,
    #[error("frame of an unknown track")]
    UnknownTrack,
}

/// Unsent bytes a viewer may accumulate before it is disconnected.
pub const MAX_BACKLOG: usize = 16 << 20;
/// Largest GOP kept for new viewers; beyond it new viewers wait for the next keyframe.
pub const MAX_GOP_BYTES: usize = 32 << 20;
/// How long a play of a live stream that has not started yet waits for it.
pub const PLAY_WAIT: Duration = Duration::from_secs(10);
/// Time a connection has to get to publish or play.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Distinct track selections (`?video=`/`?audio=`) played at once per stream, each with its own
/// reader and GOP.
pub const MAX_SELECTIONS: usize = 16;
/// Frames read from one stream per loop turn before other work gets a go.
const FRAMES_PER_TURN: usize = 2000;
/// How often a connection that is not a viewer checks its timeouts (and a publisher heartbeats).
const TICK: Duration = Duration::from_millis(500);
/// Default cap on connections to the RTMP listener (`--max-conns`).
pub const DEFAULT_MAX_CONNS: usize = 20_000;
/// Default cap on connections from one remote address (`--max-per-ip`).
pub const DEFAULT_MAX_PER_IP: usize = 1_000;

pub struct Config {
    pub addr: SocketAddr,
    /// Ask the controller (MIST_CONTROL is set).
    pub controlled: bool,
    /// Merged writes: new media is read and queued to the viewers at most this often (0 = every
    /// frame at once), so each viewer gets it in one vectored write. Fewer, larger writes cost the
    /// server (and, on the same host, the viewer) less CPU per delivered byte at the price of up
    /// to this much latency.
    pub merge: Duration,
    /// Connections in total (0: no cap).
    pub max_conns: usize,
    /// Connections from one remote address (0: no cap).
    pub max_per_ip: usize,
    /// RTMPS: the listener speaks TLS with these certificates (the protocol entry's
    /// `cert`/`key`, as MistServer: that port is then RTMPS only).
    pub tls: Option<mist_connector::TlsConfigHandle>,
}

/// Default merge interval of `--merge-ms`.
pub const DEFAULT_MERGE_MS: u64 = 100;

/// The runtime limits of the RTMP listener.
pub fn limits(cfg: &Config) -> Limits {
    let cap = |n: usize| if n == 0 { usize::MAX } else { n };
    Limits {
        max_conns: cap(cfg.max_conns),
        max_per_ip: cap(cfg.max_per_ip),
        max_output: MAX_BACKLOG,
        // The session takes all input at once (the chunk decoder buffers), so no partial-message
        // timeout; setup and publisher idleness have their own rules (SETUP_TIMEOUT, PUBLISH_IDLE).
        header_timeout: None,
        idle_timeout: Some(Duration::from_secs(120)),
        ..Limits::default()
    }
}

/// What a connection does.
enum Role {
    None,
    Publisher {
        stream_id: u32,
        /// Boxed: a writer is large next to the other roles.
        ingest: Box<Ingest>,
    },
    Viewer {
        /// The played stream's key (name and selection).
        key: String,
    },
    /// Play of a live stream that has no buffer yet: retried until [`PLAY_WAIT`] passes.
    AwaitingStream {
        stream: String,
        stream_id: u32,
        since: Instant,
    },
}

/// A publish or play waiting for a decision.
pub enum Ask {
    Publish { stream_id: u32, name: String },
    Play { stream_id: u32, name: String },
}

/// The stream name asked for.
fn ask_name(a: &Ask) -> &str {
    match a {
        Ask::Publish { name, .. } | Ask::Play { name, .. } => name,
    }
}

/// A viewer as the fan-out sees it.
struct Viewer {
    /// The RTMP stream id it plays on (1 for every client we know: shares the encoding).
    stream_id: u32,
    /// Users-table slot for statistics.
    stats: Option<StreamUser>,
    bytes_out: u64,
    bytes_in: u64,
    stream: String,
    peer: String,
    /// Its viewer session (`mist_shm::sessions`): id, and the connection's key there.
    session: (String, u64),
}

/// A stream being played by this process: one reader, the current GOP, the viewers. One per
/// stream and track selection (the default selection: every track).
struct PlayStream {
    /// The stream's name (the map key adds the selection).
    name: String,
    sel: Selection,
    reader: StreamReader,
    tracks: Vec<Track>,
    main_track: Option<u32>,
    /// Frames since the newest main-track keyframe, with their shared encoding (stream id 1).
    gop: GopCache<(Frame, Bytes)>,
    viewers: Vec<ConnId>,
    ended: bool,
}

impl PlayStream {
    /// The tracks sent: all of them, or those the selection picks that RTMP (FLV) carries.
    fn read_tracks(reader: &StreamReader, sel: &Selection) -> Vec<Track> {
        if sel.is_default() {
            reader.tracks()
        } else {
            sel.tracks(reader, Format::Flv)
        }
    }
}

/// The key of a played stream: its name, plus the selection when there is one.
fn play_key(stream: &str, sel: &Selection) -> String {
    if sel.is_default() {
        return stream.to_string();
    }
    format!(
        "{stream}?video={}&audio={}",
        sel.video.as_deref().unwrap_or(""),
        sel.audio.as_deref().unwrap_or("")
    )
}

/// The process-wide state every RTMP session shares.
pub struct RtmpApp {
    cfg: Config,
    streams: HashMap<String, PlayStream>,
    viewers: HashMap<ConnId, Viewer>,
    /// Decisions brought back from the controller, for the session to pick up when woken.
    answers: HashMap<ConnId, (Ask, Answer)>,
    /// Push and play requests to the controller (bounded in flight, one policy:
    /// `mist_connector::ask`), keyed by connection and what was asked.
    decisions: Asker<(ConnId, Ask)>,
    waiter: mist_shm::Waiter,
    seed: u64,
    stop: Arc<AtomicBool>,
    next_pump: Instant,
    busy: bool,
    next_report: Instant,
    /// Peer and tcUrl of each connection whose play the controller (and the viewer triggers)
    /// decide.
    play_asks: HashMap<ConnId, (String, String)>,
    /// The CONN_CLOSE each connection admitted to play owes (stream, peer, URL): from the
    /// admission (CONN_OPEN) to the connection's end, whatever happened between.
    owed: HashMap<ConnId, (String, String, String)>,
}

impl RtmpApp {
    fn remove_viewer(&mut self, key: &str, id: ConnId) {
        self.viewers.remove(&id);
        if let Some(ps) = self.streams.get_mut(key) {
            ps.viewers.retain(|t| *t != id);
            if ps.viewers.is_empty() {
                if let Some(ps) = self.streams.remove(key) {
                    if !self.streams.values().any(|p| p.name == ps.name) {
                        self.waiter.remove(&ps.name);
                    }
                }
                log!(HIGH, "no viewers left on {key}");
            }
        }
    }

    /// Reads new frames of every played stream and queues them to the viewers (shared bytes, no
    /// copy per viewer). Returns true when a stream still had frames waiting (call again soon).
    fn pump(&mut self, ctl: &mut Ctl<'_, RtmpApp>) -> bool {
        let mut busy = false;
        let viewers = &mut self.viewers;
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
                        if Some(f.track) == ps.main_track && f.keyframe {
                            ps.gop.restart();
                        }
                        ps.gop.push((f.clone(), enc.clone()), enc.len());
                        for id in &ps.viewers {
                            let Some(v) = viewers.get_mut(id) else {
                                continue;
                            };
                            let b = if v.stream_id == 1 {
                                enc.clone()
                            } else {
                                match media_message(OUT_CHUNK_SIZE, v.stream_id, track, &f) {
                                    Ok(b) => b,
                                    Err(_) => continue,
                                }
                            };
                            v.bytes_out += b.len() as u64;
                            ctl.send(*id, b);
                        }
                    }
                    ev @ (ReadEvent::TracksChanged | ReadEvent::Restarted) => {
                        ps.tracks = PlayStream::read_tracks(&ps.reader, &ps.sel);
                        ps.main_track = main_track(&ps.tracks);
                        if matches!(ev, ReadEvent::Restarted) {
                            ps.gop.restart();
                        }
                        log!(MEDIUM, "{name}: {} tracks", ps.tracks.len());
                        let at = ps.reader.position_ms().max(0);
                        for id in &ps.viewers {
                            let Some(v) = viewers.get_mut(id) else {
                                continue;
                            };
                            match tracks_message(OUT_CHUNK_SIZE, v.stream_id, &ps.tracks, at) {
                                Ok(b) => {
                                    v.bytes_out += b.len() as u64;
                                    ctl.send(*id, b);
                                }
                                Err(e) => {
                                    log!(WARN, "{name}: {e}");
                                    ctl.close(*id);
                                }
                            }
                        }
                    }
                    ReadEvent::Pending => break,
                    ReadEvent::Ended => {
                        log!(INFO, "{name}: stream ended");
                        ps.ended = true;
                        for id in &ps.viewers {
                            if let Some(v) = viewers.get(id) {
                                if let Ok(b) = end_message(OUT_CHUNK_SIZE, v.stream_id) {
                                    ctl.send(*id, b);
                                }
                                triggers::viewers::stopped(&v.stream, &v.peer, "RTMP");
                            }
                            ctl.close(*id);
                        }
                        break;
                    }
                }
            }
        }
        busy
    }

    /// Once a second: the viewers' users-table statistics and session counts; closes the viewers
    /// of sessions the controller stopped (`stop_sessid`, `stop_sessions`, `stop_tag`, `kill`).
    fn report(&mut self, ctl: &mut Ctl<'_, RtmpApp>) {
        for v in self.viewers.values_mut() {
            if let Some(r) = v.stats.as_mut() {
                r.report(v.bytes_out, v.bytes_in);
            }
            mist_shm::sessions::conn_bytes(v.session.1, v.bytes_in, v.bytes_out);
        }
        let asked = mist_shm::sessions::tick();
        for sid in &asked.invalidated {
            triggers::viewers::forget(sid);
        }
        if asked.killed.is_empty() {
            return;
        }
        for (id, v) in &self.viewers {
            if asked.killed.contains(&v.session.0) {
                log!(
                    INFO,
                    "viewer {} of {}: session stopped by the controller",
                    v.peer,
                    v.stream
                );
                ctl.close(*id);
            }
        }
    }
}

impl App for RtmpApp {
    type Session = Rtmp;

    fn accept(&mut self, _: ListenerId, peer: Peer, now: Instant) -> Option<Rtmp> {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        log!(MEDIUM, "connection from {peer}");
        Some(Rtmp::new(self.seed, peer, now))
    }

    fn turn(&mut self, ctl: &mut Ctl<'_, Self>, now: Instant) -> Flow {
        if self.stop.load(Ordering::Relaxed) {
            log!(INFO, "shutting down, {} connections", ctl.len());
            self.viewers.clear();
            for (_, (s, p, u)) in std::mem::take(&mut self.owed) {
                mist_bins::conn_close::closed(&s, &p, "RTMP", &u);
            }
            return Flow::Stop;
        }
        while let Some(((id, what), verdict)) = self.decisions.take() {
            let asked = self.play_asks.remove(&id);
            let answer = ingest::admitted(ask_name(&what), verdict);
            if let (Ask::Play { .. }, Some((peer, base)), Ok((stream, _))) = (&what, asked, &answer)
            {
                // Admitted by the viewer triggers (CONN_OPEN fired): CONN_CLOSE is owed now,
                // also when the viewer left while it was decided.
                if !stream.is_empty() {
                    let url = format!("{base}/{stream}");
                    if ctl.is_open(id) {
                        mist_bins::conn_close::opened(stream, &peer, "RTMP", &url);
                        self.owed.insert(id, (stream.clone(), peer, url));
                    } else {
                        mist_bins::conn_close::closed(stream, &peer, "RTMP", &url);
                    }
                }
            }
            if !ctl.is_open(id) {
                continue; // the peer left while the controller decided
            }
            self.answers.insert(id, (what, answer));
            ctl.wake(id);
        }
        if now >= self.next_pump {
            self.busy = self.pump(ctl);
            self.next_pump = if self.busy { now } else { now + self.cfg.merge };
        }
        if now >= self.next_report {
            self.next_report = now + Duration::from_secs(1);
            self.report(ctl);
        }
        Flow::Continue
    }

    fn next_deadline(&self) -> Option<Instant> {
        if self.busy {
            return Some(self.next_pump);
        }
        (!self.streams.is_empty() && !self.cfg.merge.is_zero()).then_some(self.next_pump)
    }
}

/// One RTMP connection.
pub struct Rtmp {
    session: ServerSession,
    role: Role,
    /// A controller decision on publish/play is outstanding.
    waiting: bool,
    created: Instant,
    /// The peer's address (without port) for logs, triggers and the users table.
    peer: String,
    bytes_in: u64,
    /// Why the session closed the connection (for the log line when it goes).
    why: Option<String>,
    /// The track selection of a play (`NAME?video=…&audio=…`).
    sel: Selection,
}

impl Session<RtmpApp> for Rtmp {
    fn on_read(&mut self, app: &mut RtmpApp, io: &mut Io<'_>) {
        let n = io.input().len();
        self.bytes_in += n as u64;
        self.session.feed(io.input());
        io.clear_input();
        if let Role::Publisher { ingest, .. } = &mut self.role {
            ingest.touch(io.now());
        }
        if let Some(v) = app.viewers.get_mut(&io.id()) {
            v.bytes_in = self.bytes_in;
        }
        let r = self.handle_events(app, io);
        self.done(io, r);
    }

    fn on_timer(&mut self, app: &mut RtmpApp, io: &mut Io<'_>) {
        let now = io.now();
        let r = match &mut self.role {
            Role::Publisher { ingest, .. } => {
                if ingest.tick(now) {
                    Ok(())
                } else {
                    Err(ConnError::PublisherIdle)
                }
            }
            Role::None if !self.waiting && now.duration_since(self.created) > SETUP_TIMEOUT => {
                Err(ConnError::SetupTimeout)
            }
            Role::AwaitingStream {
                stream, stream_id, ..
            } => {
                let (stream, stream_id) = (stream.clone(), *stream_id);
                self.start_play(app, io, stream_id, stream)
            }
            _ => Ok(()),
        };
        self.done(io, r);
    }

    fn on_wake(&mut self, app: &mut RtmpApp, io: &mut Io<'_>) {
        let Some((what, answer)) = app.answers.remove(&io.id()) else {
            return;
        };
        self.waiting = false;
        io.pause_reading(false);
        let r = self
            .finish(app, io, what, answer)
            .and_then(|()| self.handle_events(app, io));
        self.done(io, r);
    }

    fn on_close(&mut self, app: &mut RtmpApp, id: ConnId, _peer: Peer) {
        app.answers.remove(&id);
        if let Some((s, p, u)) = app.owed.remove(&id) {
            mist_bins::conn_close::closed(&s, &p, "RTMP", &u);
        }
        let why = self.why.take().unwrap_or_else(|| "closed".into());
        match std::mem::replace(&mut self.role, Role::None) {
            Role::Publisher { ingest, .. } => {
                log!(
                    INFO,
                    "publisher {} of {} left ({why}); {} frames, {} bytes in",
                    self.peer,
                    ingest.stream(),
                    ingest.frames(),
                    self.bytes_in
                );
                // Dropping the ingest detaches its writer.
            }
            Role::Viewer { key } => {
                let mut out = 0;
                if let Some(v) = app.viewers.get(&id) {
                    out = v.bytes_out;
                    mist_shm::sessions::conn_bytes(v.session.1, v.bytes_in, v.bytes_out);
                    mist_shm::sessions::conn_close(v.session.1);
                }
                log!(
                    MEDIUM,
                    "viewer {} of {key} left ({why}); {out} bytes out",
                    self.peer
                );
                app.remove_viewer(&key, id);
            }
            Role::None | Role::AwaitingStream { .. } => {
                log!(HIGH, "connection {} closed ({why})", self.peer)
            }
        }
    }
}

impl Rtmp {
    fn new(seed: u64, peer: Peer, now: Instant) -> Rtmp {
        Rtmp {
            session: ServerSession::new(seed),
            role: Role::None,
            waiting: false,
            created: now,
            peer: peer.ip().map(|a| a.to_string()).unwrap_or_default(),
            bytes_in: 0,
            why: None,
            sel: Selection::default(),
        }
    }

    /// Moves the session's replies into the output queue (before any media queued after them).
    fn drain(&mut self, io: &mut Io<'_>) {
        if self.session.has_output() {
            io.send(Bytes::from(self.session.take_output()));
        }
    }

    /// Ends a call: queues the session's replies, closes on error, arms the tick timer.
    fn done(&mut self, io: &mut Io<'_>, r: Result<(), ConnError>) {
        self.drain(io);
        if let Err(e) = r {
            self.why = Some(e.to_string());
            io.close();
            return;
        }
        let tick = !matches!(self.role, Role::Viewer { .. });
        if tick {
            io.set_timer(Some(io.now() + TICK));
        }
    }

    fn handle_events(&mut self, app: &mut RtmpApp, io: &mut Io<'_>) -> Result<(), ConnError> {
        loop {
            if self.waiting {
                // Later events wait for the controller's answer (clients wait for it anyway).
                return Ok(());
            }
            let ev = match self.session.poll() {
                Ok(Some(ev)) => ev,
                Ok(None) => return Ok(()),
                Err(e) => return Err(ConnError::Protocol(e)),
            };
            match ev {
                ServerEvent::Connect { app: a, tc_url } => {
                    log!(HIGH, "{} connect app={a:?} tcUrl={tc_url:?}", self.peer);
                    self.session.accept_connect().map_err(ConnError::Session)?;
                }
                ServerEvent::Publish {
                    stream_id, name, ..
                } => self.decide(app, io, Ask::Publish { stream_id, name })?,
                ServerEvent::Play { stream_id, name } => {
                    self.decide(app, io, Ask::Play { stream_id, name })?
                }
                ServerEvent::Track(t) => {
                    if let Role::Publisher { ingest, .. } = &mut self.role {
                        ingest.set_track(&t)?;
                    }
                }
                ServerEvent::Frame(f) => {
                    if let Role::Publisher { ingest, .. } = &mut self.role {
                        ingest.push(&f)?;
                    }
                }
                ServerEvent::Metadata(_) => {}
                ServerEvent::StreamClosed { stream_id } => {
                    if let Role::Publisher {
                        stream_id: sid,
                        ingest,
                    } = &mut self.role
                    {
                        if *sid == stream_id && ingest.unpublish() {
                            log!(INFO, "{}: unpublished by {}", ingest.stream(), self.peer);
                        }
                        // The client closes the connection itself (closing it first makes
                        // ffmpeg report a broken pipe); an idle one is dropped by the tick.
                    }
                }
            }
        }
    }

    /// Starts the decision on a push or play: standalone at once, under a controller off the loop
    /// (the loop goes on serving everyone else; this connection's later events wait).
    fn decide(&mut self, app: &mut RtmpApp, io: &mut Io<'_>, what: Ask) -> Result<(), ConnError> {
        let (stream_id, name) = match &what {
            Ask::Publish { stream_id, name } | Ask::Play { stream_id, name } => {
                (*stream_id, name.clone())
            }
        };
        if !matches!(self.role, Role::None) || self.waiting {
            self.why = Some("second publish or play".into());
            io.close();
            return match what {
                Ask::Publish { .. } => self
                    .session
                    .reject_publish(stream_id, "already publishing or playing"),
                Ask::Play { .. } => self
                    .session
                    .reject_play(stream_id, "already publishing or playing"),
            }
            .map_err(ConnError::Session);
        }
        #[cfg(test)]
        if name == tests::PANIC_NAME {
            panic!("injected panic in the session of {}", self.peer);
        }
        if matches!(what, Ask::Play { .. }) {
            self.sel = Selection::from_name(&name);
        }
        if !app.cfg.controlled || !mist_core::names::is_valid(&name) {
            let answer = ingest::standalone(&name);
            return self.finish(app, io, what, answer);
        }
        let url = format!(
            "{}/{}",
            self.session.connect.tc_url.trim_end_matches('/'),
            name
        );
        let (req, timeout) = match &what {
            Ask::Publish { .. } => (
                ingest::push_request(&name, &self.session.connect.app, &self.peer, "RTMP", &url),
                ingest::PUSH_TIMEOUT,
            ),
            Ask::Play { .. } => (
                Request::Play {
                    stream: name.clone(),
                    host: self.peer.clone(),
                    connector: "RTMP".into(),
                    url,
                },
                Duration::from_secs(10),
            ),
        };
        if matches!(what, Ask::Play { .. }) {
            let base = self
                .session
                .connect
                .tc_url
                .trim_end_matches('/')
                .to_string();
            app.play_asks.insert(io.id(), (self.peer.clone(), base));
        }
        self.waiting = true;
        io.pause_reading(true);
        app.decisions.ask_within((io.id(), what), req, timeout);
        Ok(())
    }

    fn finish(
        &mut self,
        app: &mut RtmpApp,
        io: &mut Io<'_>,
        what: Ask,
        answer: Answer,
    ) -> Result<(), ConnError> {
        match what {
            Ask::Publish { stream_id, name } => match answer {
                Ok((stream, dvr)) if !stream.is_empty() => {
                    self.start_publish(app, io, stream_id, stream, dvr)
                }
                Ok(_) => self.refuse(io, stream_id, &name, "empty stream name", true),
                Err(why) => self.refuse(io, stream_id, &name, &why.to_string(), true),
            },
            Ask::Play { stream_id, name } => match answer {
                Ok((stream, _)) if !stream.is_empty() => {
                    self.start_play(app, io, stream_id, stream)
                }
                Ok(_) => self.refuse(io, stream_id, &name, "empty stream name", false),
                Err(why) => self.refuse(io, stream_id, &name, &why.to_string(), false),
            },
        }
    }

    fn start_publish(
        &mut self,
        app: &mut RtmpApp,
        io: &mut Io<'_>,
        stream_id: u32,
        stream: String,
        dvr_ms: u64,
    ) -> Result<(), ConnError> {
        match Ingest::open(&stream, dvr_ms, app.cfg.controlled, io.now()) {
            Ok(ingest) => {
                self.session
                    .accept_publish(stream_id, &stream)
                    .map_err(ConnError::Session)?;
                log!(INFO, "{} publishes {stream}", self.peer);
                self.role = Role::Publisher {
                    stream_id,
                    ingest: Box::new(ingest),
                };
                Ok(())
            }
            Err(e) => self.refuse(io, stream_id, &stream, &e.to_string(), true),
        }
    }

    /// Refuses a publish (`publish`) or a play with `why`, and closes once that is sent.
    fn refuse(
        &mut self,
        io: &mut Io<'_>,
        stream_id: u32,
        name: &str,
        why: &str,
        publish: bool,
    ) -> Result<(), ConnError> {
        if publish {
            log!(WARN, "push of {name:?} from {} refused: {why}", self.peer);
            self.session.reject_publish(stream_id, why)
        } else {
            log!(WARN, "play of {name:?} by {} refused: {why}", self.peer);
            self.session.reject_play(stream_id, why)
        }
        .map_err(ConnError::Session)?;
        self.why = Some(format!("refused: {why}"));
        io.close();
        Ok(())
    }

    fn start_play(
        &mut self,
        app: &mut RtmpApp,
        io: &mut Io<'_>,
        stream_id: u32,
        stream: String,
    ) -> Result<(), ConnError> {
        let key = play_key(&stream, &self.sel);
        if app.streams.get(&key).is_some_and(|ps| ps.ended) {
            // The old state only waits for its viewers to drain; a new viewer needs a fresh reader
            // (a new publisher may have taken the name over).
            app.streams.remove(&key);
        }
        if !app.streams.contains_key(&key) {
            if app.streams.values().filter(|p| p.name == stream).count() >= MAX_SELECTIONS {
                return self.refuse(io, stream_id, &key, "too many track selections", false);
            }
            let info = ReaderInfo {
                connector: "RTMP-mux".into(),
                host: String::new(),
            };
            let reader = match StreamReader::open(&stream, info) {
                Ok(r) => r,
                Err(mist_shm::ShmError::NoStream(_)) => {
                    let since = match self.role {
                        Role::AwaitingStream { since, .. } => since,
                        _ => io.now(),
                    };
                    if io.now().duration_since(since) < PLAY_WAIT {
                        if matches!(self.role, Role::None) {
                            log!(MEDIUM, "{} waits for {stream} to start", self.peer);
                        }
                        self.role = Role::AwaitingStream {
                            stream,
                            stream_id,
                            since,
                        };
                        return Ok(());
                    }
                    return self.refuse(io, stream_id, &stream, "stream is not live", false);
                }
                Err(e) => return self.refuse(io, stream_id, &stream, &e.to_string(), false),
            };
            if let Err(e) = app.waiter.add(&stream) {
                log!(WARN, "{stream}: cannot watch for wake-ups ({e}); polling");
            }
            let tracks = PlayStream::read_tracks(&reader, &self.sel);
            let main = main_track(&tracks);
            app.streams.insert(
                key.clone(),
                PlayStream {
                    name: stream.clone(),
                    sel: self.sel.clone(),
                    reader,
                    tracks,
                    main_track: main,
                    gop: GopCache::new(MAX_GOP_BYTES, true),
                    viewers: Vec::new(),
                    ended: false,
                },
            );
        }
        let stats = StreamUser::open(
            &stream,
            &ReaderInfo {
                connector: "RTMP".into(),
                host: self.peer.clone(),
            },
        )
        .ok();
        self.session
            .accept_play(stream_id, &stream)
            .map_err(ConnError::Session)?;
        let ps = app.streams.get_mut(&key).ok_or(ConnError::StreamVanished)?;
        let before = io.backlog();
        if !ps.tracks.is_empty() {
            let start = ps.gop.items().first().map_or(0, |(f, _)| f.dts);
            self.session
                .send_tracks(stream_id, &ps.tracks, start)
                .map_err(ConnError::Session)?;
            self.drain(io);
            for (f, enc) in ps.gop.items() {
                if stream_id == 1 {
                    io.send(enc.clone());
                } else {
                    let track = ps
                        .tracks
                        .iter()
                        .find(|t| t.id == f.track)
                        .ok_or(ConnError::UnknownTrack)?;
                    io.send(
                        media_message(OUT_CHUNK_SIZE, stream_id, track, f)
                            .map_err(ConnError::Session)?,
                    );
                }
            }
        }
        ps.viewers.push(io.id());
        log!(
            INFO,
            "{} plays {stream} (GOP burst of {} frames)",
            self.peer,
            ps.gop.items().len()
        );
        // The viewer's session, as USER_NEW named it (RTMP viewers have no token).
        let sid = triggers::viewers::session_id(&stream, &self.peer, "RTMP", "");
        let skey = mist_shm::sessions::conn_open(&mist_shm::sessions::SessionKey {
            sid: sid.clone(),
            stream: stream.clone(),
            connector: "RTMP".into(),
            host: self.peer.clone(),
            token: String::new(),
        });
        app.viewers.insert(
            io.id(),
            Viewer {
                stream_id,
                stats,
                bytes_out: (io.backlog() - before) as u64,
                bytes_in: self.bytes_in,
                stream: stream.clone(),
                peer: self.peer.clone(),
                session: (sid, skey),
            },
        );
        self.role = Role::Viewer { key };
        io.set_timer(None);
        Ok(())
    }
}

/// The RTMP listener on the connector runtime.
pub struct Server {
    rt: Runtime<RtmpApp>,
    app: RtmpApp,
    addr: SocketAddr,
}

impl Server {
    pub fn bind(cfg: Config) -> io::Result<Server> {
        let mut rt = Runtime::new()?;
        let listener = mist_connector::bind_tcp(cfg.addr)?;
        let addr = listener.local_addr()?;
        match &cfg.tls {
            Some(tls) => rt.listen_tcp_tls(listener, "RTMPS", limits(&cfg), tls.clone())?,
            None => rt.listen_tcp(listener, "RTMP", limits(&cfg))?,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ std::process::id() as u64;
        let now = Instant::now();
        let app = RtmpApp {
            cfg,
            streams: HashMap::new(),
            viewers: HashMap::new(),
            answers: HashMap::new(),
            decisions: Asker::with(
                rt.remote().waker(),
                Arc::new(mist_bins::access::ask_with_viewer_triggers),
                mist_core::control::socket_path().is_none(),
                mist_connector::ask::MAX_IN_FLIGHT,
                256,
            )
            .timeout(Duration::from_secs(10)),
            waiter: mist_shm::Waiter::new(),
            seed,
            stop: Arc::new(AtomicBool::new(false)),
            next_pump: now,
            busy: false,
            next_report: now,
            play_asks: HashMap::new(),
            owed: HashMap::new(),
        };
        Ok(Server { rt, app, addr })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: Arc<AtomicBool>) -> io::Result<()> {
        self.app.stop = stop.clone();
        let remote: Remote = self.rt.remote();
        let w = self.app.waiter.clone();
        std::thread::Builder::new()
            .name("shm-waiter".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !w.wait(Duration::from_millis(500)).is_empty() {
                        remote.wake_loop();
                    }
                }
            })?;
        self.rt.run(&mut self.app)
    }
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
            "merge_ms": {"name": "Merged writes (ms)", "help": "Write media to each viewer at most this often, in milliseconds; 0 writes every frame at once. Larger values cost less CPU per viewer and add up to that much latency.", "type": "uint", "default": DEFAULT_MERGE_MS, "option": "--merge-ms"},
            "max_conns": {"name": "Connection cap", "help": "Most connections to this port at once; more are refused with a log line. 0: no cap.", "type": "uint", "default": DEFAULT_MAX_CONNS, "option": "--max-conns"},
            "max_per_ip": {"name": "Per-address connection cap", "help": "Most connections from one remote address at once; more are refused with a log line. 0: no cap.", "type": "uint", "default": DEFAULT_MAX_PER_IP, "option": "--max-per-ip"},
            "cert": {"name": "Certificate", "help": "RTMPS: certificate chain file (PEM, leaf first, e.g. certbot's fullchain.pem), or a JSON list of files for several certificates chosen by SNI. With a certificate and key this port speaks RTMPS only (add a second RTMP protocol for plain RTMP). Changed files, or new paths set through the API, are used for new connections without a restart.", "type": "inputlist", "option": "--cert"},
            "key": {"name": "Key", "help": "RTMPS: private key file (PEM; RSA, ECDSA or Ed25519) of each certificate, in the same order.", "type": "inputlist", "option": "--key"}
        },
        "codecs": [[["H264", "HEVC", "AV1"], ["AAC", "MP3"]]],
        "methods": [{"handler": "rtmp", "type": "flash/10", "hrn": "RTMP", "priority": 7}],
        "push_urls": ["rtmp://*", "rtmps://*"],
        "url_rel": "/play/$",
        "priority": 7
    })
}

#[cfg(test)]
mod tests;
