//! MistOutRTSP: RTSP play and publish on the connector runtime.
//!
//! One [`Runtime`] serves every RTSP connection of the process. Each connection is a [`Conn`]
//! session around the sans-IO pieces of `mist_media`: [`Decoder`] splits the byte stream into
//! requests and `$`-interleaved frames, [`ServerSession`] runs the RTSP state machine and asks this
//! edge what only it knows (the SDP of a stream, the transports, where playback starts).
//!
//! * **Access**: a DESCRIBE or ANNOUNCE first asks the controller for the stream's config
//!   (`Request::StreamConfig`: no side effect, nothing started, no trigger) and checks the
//!   stream's credentials (below): a client without them is answered 401 and starts nothing.
//!   Then a DESCRIBE asks the controller to play (`Request::Play`, through
//!   [`crate::access::ask_play`], the same policy as RTMP play: PLAY_REWRITE, the input started
//!   if needed), off the loop on a bounded [`Asker`]; the answer wakes the connection. The
//!   credentials are checked again against the config of the stream the controller named (a
//!   rewrite may name another), and only then the viewer triggers run
//!   ([`crate::access::admit_play`], on a second asker): the same triggers in the same order as
//!   RTMP's, none for a client that is answered 401. An ANNOUNCE asks for the push acceptance
//!   (`Request::Push`) once its credentials are right.
//! * **Credentials** (stream config `rtsp_user`, `rtsp_password`, `rtsp_basic`): a stream that
//!   names them answers DESCRIBE and ANNOUNCE, and every later request of that session, with 401
//!   and a Digest challenge (RFC 2617/7616 MD5, `qop="auth"` offered, answers without a qop
//!   taken too; Basic too when `rtsp_basic` allows it) until the client proves the password
//!   ([`mist_media::rtsp::Authenticator`], sans-IO). A Digest answer must be signed for the
//!   request's URI, and a `qop=auth` nonce count must grow. Each connection has its own
//!   unpredictable nonce (the only one kept), replaced every [`NONCE_TTL`] (a right answer to an
//!   old one gets `stale=TRUE`, once; the same stale answer again is a replay); wrong or
//!   replayed credentials are logged with the peer's address and [`MAX_AUTH_FAILURES`] of them
//!   close the connection. Streams without the keys are open as before.
//! * **Media**: one [`StreamReader`] per played stream per process ([`feed::PlayStream`]); each
//!   frame is packetised once (one packetiser per track, shared SSRC and sequence numbers) and the
//!   same packets go to every viewer: over interleaved TCP as one buffer per frame and channel
//!   (`$` headers and packets joined once, [`feed::Batch`], shared by every viewer on that
//!   channel, written in merged writes every [`Config::merge`]), or over UDP unicast from one
//!   shared server port pair as each frame is read. The packets since the newest keyframe are
//!   kept, so a new viewer starts at once with a decodable picture; its `RTP-Info` names their
//!   first sequence number and RTP time.
//! * **Publish**: ANNOUNCE (push acceptance by the controller, `Request::Push`, as for RTMP), SETUP
//!   over interleaved TCP or UDP (taken only from the client's address and set-up ports), RECORD;
//!   RTP is depacketised ([`publish::Publisher`]) into the stream's buffer through the one
//!   [`crate::ingest::Ingest`] of every publisher (its idle, detach and close rules as RTMP's).
//! * **Sync**: RTP times are the frames' presentation times in the track's clock; RTCP sender
//!   reports map them to one NTP timeline per stream (at PLAY and every [`SR_EVERY`]), so players
//!   line audio up with video. A publisher gets RTCP receiver reports every [`RR_EVERY`] (the
//!   first half that after RECORD): over UDP to the RTCP port it set up for each track, over
//!   interleaved TCP on each track's RTCP channel.
//! * **Hostile input**: the decoder bounds heads and bodies; a framing error is answered with its
//!   status and closes that connection with a log line; an interleaved frame on a channel that
//!   was never set up, or a message or frame left incomplete for [`PARTIAL_TIMEOUT`], closes it
//!   too. Other connections are not affected (and the runtime fences every session call).

mod feed;
pub mod publish;

use crate::access::{admit_play, ask_play};
use crate::ingest;
use feed::{Out, PlayStream, Viewer};
use mist_connector::ask::{Asker, Verdict};
use mist_connector::{App, ConnId, Ctl, Flow, Io, Limits, ListenerId, Peer, Runtime, Session};
use mist_core::control::Request;
use mist_core::names::sanitize;
use mist_core::{debug, info, trace, warn};
use mist_media::rtsp::{
    npt_range, npt_start_ms, Answer, Ask, AuthCheck, Authenticator, Decoder, Item, Lower, Message,
    Method, PlayInfo, ServerConfig, ServerSession, SessionEvent, Step,
};
use mist_media::sdp::RtpTrack;
use mist_media::Track;
use publish::Publisher;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a PLAY cannot start (the request is answered 503).
#[derive(Debug, thiserror::Error)]
enum PlayError {
    /// The stream cannot be read.
    #[error(transparent)]
    Shm(#[from] mist_shm::ShmError),
    #[error("stream vanished")]
    Vanished,
}

/// How long a DESCRIBE of a stream that is not live yet waits for it.
pub const PLAY_WAIT: Duration = Duration::from_secs(10);
/// A message or interleaved frame may stay incomplete this long.
pub const PARTIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Sender reports of a played stream are sent this often.
pub const SR_EVERY: Duration = Duration::from_secs(2);
/// Receiver reports to publishers are sent this often (RFC 3550's minimum interval; the first
/// half that after RECORD).
pub const RR_EVERY: Duration = Duration::from_secs(5);
/// The session timeout announced (`Session: …;timeout=`); the connection's idle limit is above it.
pub const SESSION_TIMEOUT: u32 = 60;
/// A session without a request or packet from the client for this long is closed.
pub const IDLE: Duration = Duration::from_secs(SESSION_TIMEOUT as u64 + 30);
/// Largest RTP packet sent (header included).
pub const MTU: usize = 1400;
/// A connection's Digest nonce is replaced this often (answers to the old one are stale).
pub const NONCE_TTL: Duration = Duration::from_secs(300);
/// Wrong credentials a connection may send before it is closed.
pub const MAX_AUTH_FAILURES: u32 = 5;
/// The realm of Digest and Basic challenges.
pub const REALM: &str = "mist-rs";

/// The credentials a stream's config asks of RTSP clients (`rtsp_user`, `rtsp_password`,
/// `rtsp_basic`); `None` when it names neither a user nor a password (an open stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAuth {
    /// `rtsp_user` (empty when only a password is set).
    pub user: String,
    /// `rtsp_password` (empty when only a user is set).
    pub password: String,
    /// Basic accepted besides Digest (the password crosses the network readable).
    pub basic: bool,
}

impl StreamAuth {
    /// The credentials of a stream from its config as the controller answered it.
    pub fn from_config(config: &serde_json::Value) -> Option<StreamAuth> {
        let text = |k: &str| match config.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let (user, password) = (text("rtsp_user"), text("rtsp_password"));
        if user.is_empty() && password.is_empty() {
            return None;
        }
        let basic = match config.get("rtsp_basic") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
            Some(serde_json::Value::String(s)) => {
                matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
            }
            _ => false,
        };
        Some(StreamAuth {
            user,
            password,
            basic,
        })
    }
}

/// A Digest nonce nobody can guess: 128 bits from the kernel (the process seed mixed with the
/// clock if the kernel has none to give).
fn new_nonce(seed: u64) -> String {
    let mut b = [0u8; 16];
    if crate::push_out::udp::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b[..8].copy_from_slice(&(seed ^ t).to_le_bytes());
        b[8..].copy_from_slice(&t.rotate_left(29).to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What the binary configures.
pub struct Config {
    /// TCP address of the RTSP listener.
    pub addr: SocketAddr,
    /// First port of the UDP pair (RTP, RTCP = +1); 0 picks a free even pair.
    pub udp_port: u16,
    /// Connections from one remote address at once (0: no cap).
    pub max_per_ip: usize,
    /// Merged writes: media for a viewer over interleaved TCP is written at most this often
    /// (unless [`MERGE_BYTES`] are queued for it; 0: at once), as RTMP and HTTP do. UDP packets
    /// leave as each frame is read.
    pub merge: Duration,
}

/// Default of `--merge-ms` (as RTMP's and HTTP's).
pub const DEFAULT_MERGE_MS: u64 = 100;
/// Queued bytes at which a viewer is written without waiting for the merge interval.
pub const MERGE_BYTES: usize = mist_net::config::MERGE_BYTES;

/// Default of `--max-per-ip` (as RTMP's).
pub const DEFAULT_MAX_PER_IP: usize = 1_000;

/// Process state shared by all connections.
pub struct RtspApp {
    asker: Asker<ConnId>,
    /// Runs the viewer triggers of a play the controller allowed (and whose credentials, if
    /// the stream wants some, were right).
    admit: Asker<ConnId>,
    /// Controller verdicts waiting for their connection's `on_wake`.
    verdicts: HashMap<ConnId, Verdict>,
    /// Plays being decided (the controller and the viewer triggers): the name asked, the
    /// viewer's address and the DESCRIBE URL, so that a viewer who left meanwhile still gets
    /// the CONN_CLOSE its CONN_OPEN owes.
    play_asks: HashMap<ConnId, (String, String, String)>,
    /// The CONN_CLOSE each connection admitted to play owes (stream, address, URL): from the
    /// admission (CONN_OPEN) to the connection's end, whatever happened between.
    owed: HashMap<ConnId, (String, String, String)>,
    streams: HashMap<String, PlayStream>,
    viewers: HashMap<ConnId, Viewer>,
    publishers: HashMap<ConnId, Publisher>,
    /// Client UDP addresses set up: (connection, media section, is RTCP).
    udp_routes: HashMap<SocketAddr, (ConnId, usize, bool)>,
    /// When a connection's client last sent a UDP packet.
    udp_seen: HashMap<ConnId, Instant>,
    /// Publishers whose stream cannot be written any more: closed at the next turn.
    failed: Vec<ConnId>,
    /// A controller decides (MIST_CONTROL is set).
    controlled: bool,
    udp: Option<UdpPair>,
    waiter: mist_shm::Waiter,
    stop: Arc<AtomicBool>,
    seed: u64,
    next_stats: Instant,
    /// See [`Config::merge`].
    merge: Duration,
    /// Viewers with media queued for the merged write, and when it is due.
    merged: Vec<ConnId>,
    next_merge: Instant,
}

/// The shared server UDP ports: media leaves from them, client RTCP and hole punches arrive.
pub struct UdpPair {
    /// Where RTP leaves from (the even port).
    pub rtp: UdpSocket,
    /// Where RTCP leaves from and arrives (the odd port).
    pub rtcp: UdpSocket,
    /// The RTP port, as SETUP answers name it (`server_port=P-P+1`).
    pub port: u16,
}

impl UdpPair {
    /// Binds `port` and `port + 1` on `ip`; `port` 0 finds a free even pair.
    pub fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpPair> {
        if port != 0 {
            let rtp = UdpSocket::bind((ip, port))?;
            let rtcp = UdpSocket::bind((ip, port.wrapping_add(1)))?;
            return Ok(UdpPair { rtp, rtcp, port });
        }
        let mut last = std::io::Error::other("no free UDP port pair");
        for _ in 0..64 {
            let rtp = UdpSocket::bind((ip, 0))?;
            let p = rtp.local_addr()?.port();
            if p % 2 != 0 || p == u16::MAX {
                continue;
            }
            match UdpSocket::bind((ip, p + 1)) {
                Ok(rtcp) => return Ok(UdpPair { rtp, rtcp, port: p }),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// Where a connection is in its exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Idle,
    /// The controller was asked about the stream of a DESCRIBE.
    Asking {
        name: String,
    },
    /// The controller was asked for the config of stream `name` (of a DESCRIBE, or with
    /// `push` the tracks and push password of an ANNOUNCE), to check its credentials before
    /// anything is started.
    Looking {
        name: String,
        push: Option<(Vec<(usize, RtpTrack)>, String)>,
    },
    /// Allowed, credentials right: the viewer triggers of `stream` run.
    Admitting {
        stream: String,
    },
    /// The controller was asked whether the ANNOUNCE of `tracks` into `name` is accepted.
    AskingPush {
        name: String,
        tracks: Vec<(usize, RtpTrack)>,
    },
    /// Allowed; waiting for the stream to have tracks.
    Waiting {
        stream: String,
        since: Instant,
    },
}

/// One RTSP connection.
pub struct Conn {
    dec: Decoder,
    rtsp: ServerSession,
    peer: Peer,
    host: String,
    stage: Stage,
    /// The stream allowed by the controller (after rewrites).
    stream: Option<String>,
    /// The URL of the DESCRIBE (for the viewer triggers).
    url: String,
    /// Track id of each media section of the SDP we described.
    sdp_tracks: Vec<u32>,
    /// Set-up tracks: (SDP index, track id, where its packets go).
    setups: Vec<(usize, u32, Out)>,
    /// The feed this connection plays (the stream name, or a VoD viewer's own feed).
    feed: Option<String>,
    /// When the client last sent anything on the connection.
    last_active: Instant,
    partial_since: Option<Instant>,
    /// The connection closes once its output is written; nothing more is handled.
    closed: bool,
    /// When the current Digest nonce was made (credentials are required once it is set).
    nonce_at: Option<Instant>,
    /// Requests refused for wrong credentials so far.
    auth_failures: u32,
    /// When this connection's publisher gets its next RTCP receiver reports.
    next_rr: Option<Instant>,
}

/// The stream named by an RTSP path: its first segment, percent-decoded, without a query.
pub fn stream_of(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let seg = path.trim_start_matches('/').split('/').next().unwrap_or("");
    percent_decode(seg)
}

/// The value of `key` in the query of an RTSP path (`?pass=…`), percent-decoded.
fn query_param(path: &str, key: &str) -> Option<String> {
    let q = path.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The payload type of a track in our SDP (static types for G.711 and MP3 are applied by
/// `media_section` and the packetiser's description alike).
pub fn pt_for(track: &Track) -> u8 {
    96 + (track.id % 32) as u8
}

/// The SDP of `tracks` as we describe it, and the track id of each media section.
pub fn describe_sdp(stream: &str, tracks: &[Track]) -> (String, Vec<u32>) {
    let clean: String = stream.chars().filter(|c| !c.is_control()).collect();
    let mut s = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns={clean}\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=tool:mist-rs\r\na=control:*\r\na=range:npt=0-\r\n"
    );
    let mut ids = Vec::new();
    for t in tracks {
        if let Ok(m) = mist_media::sdp::media_section(t, pt_for(t), &format!("trackID={}", t.id)) {
            s.push_str(&m);
            ids.push(t.id);
        }
    }
    (s, ids)
}

impl Conn {
    fn new(peer: Peer, session_id: String, now: Instant) -> Conn {
        Conn {
            dec: Decoder::default(),
            rtsp: ServerSession::new(ServerConfig {
                session_id,
                timeout: SESSION_TIMEOUT,
                server: format!("mist-rs/{}", env!("CARGO_PKG_VERSION")),
                auth: None,
            }),
            host: peer.ip().map(|i| i.to_string()).unwrap_or_default(),
            peer,
            stage: Stage::Idle,
            stream: None,
            url: String::new(),
            sdp_tracks: Vec::new(),
            setups: Vec::new(),
            feed: None,
            last_active: now,
            partial_since: None,
            closed: false,
            nonce_at: None,
            auth_failures: 0,
            next_rr: None,
        }
    }

    /// Requires `auth` of this session from now on (keeping the nonce already handed out when
    /// it was required before) and checks the request being decided on. `Some`: the 401 it gets
    /// instead (to send, then [`Conn::refused`]).
    fn require(
        &mut self,
        app: &RtspApp,
        io: &mut Io<'_>,
        auth: &StreamAuth,
    ) -> Option<mist_media::rtsp::Response> {
        let same = self
            .rtsp
            .auth_mut()
            .is_some_and(|a| a.user == auth.user && a.password == auth.password);
        if !same || self.nonce_at.is_none() {
            self.rtsp.set_auth(Some(Authenticator::new(
                &auth.user,
                &auth.password,
                REALM,
                new_nonce(app.seed),
                auth.basic,
            )));
            self.nonce_at = Some(io.now());
        }
        if let Some(a) = self.rtsp.auth_mut() {
            a.allow_basic = auth.basic;
        }
        self.rtsp.recheck_pending()
    }

    /// Logs why a request was answered 401 (if it was), and closes a connection that keeps
    /// sending wrong credentials.
    fn refused(&mut self, io: &mut Io<'_>, what: &str) {
        match self.rtsp.take_refusal() {
            Some(AuthCheck::Refused { user, scheme }) => {
                self.auth_failures += 1;
                warn!(
                    "RTSP {what} from {}: wrong credentials ({scheme}, user {:?}); answered 401",
                    self.peer,
                    user.unwrap_or_default()
                );
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    warn!(
                        "RTSP from {}: {} wrong credentials; connection closed",
                        self.peer, self.auth_failures
                    );
                    self.close(io);
                }
            }
            Some(AuthCheck::Replayed { user }) => {
                self.auth_failures += 1;
                warn!(
                    "RTSP {what} from {}: replayed credentials (user {user:?}); answered 401",
                    self.peer
                );
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    warn!(
                        "RTSP from {}: {} wrong credentials; connection closed",
                        self.peer, self.auth_failures
                    );
                    self.close(io);
                }
            }
            Some(AuthCheck::Missing) => {
                debug!("RTSP {what} from {}: credentials asked for", self.peer)
            }
            Some(AuthCheck::Stale) => {
                debug!(
                    "RTSP {what} from {}: nonce expired, a new one given",
                    self.peer
                )
            }
            Some(AuthCheck::Ok) | None => {}
        }
    }

    /// Replaces an expired nonce before a request is checked against it.
    fn expire_nonce(&mut self, app: &RtspApp, now: Instant) {
        if self
            .nonce_at
            .is_some_and(|t| now.duration_since(t) >= NONCE_TTL)
        {
            if let Some(a) = self.rtsp.auth_mut() {
                a.rotate(new_nonce(app.seed));
                self.nonce_at = Some(now);
            }
        }
    }

    /// Handles what the decoder holds, unless a question is outstanding.
    fn process(&mut self, app: &mut RtspApp, io: &mut Io<'_>) {
        while self.stage == Stage::Idle {
            match self.dec.next_item() {
                Err(e) => {
                    warn!("RTSP from {}: {e}; connection closed", self.peer);
                    let r = mist_media::rtsp::Response::new(e.status(), None);
                    io.write(&r.to_bytes());
                    self.close(io);
                    return;
                }
                Ok(None) => break,
                Ok(Some(Item::Interleaved { channel, data })) => {
                    let Some((index, is_rtcp)) = self.rtsp.channel(channel) else {
                        warn!(
                            "RTSP from {}: interleaved frame of {} bytes on channel {channel}, which is not set up; connection closed",
                            self.peer,
                            data.len()
                        );
                        self.close(io);
                        return;
                    };
                    if let Some(p) = app.publishers.get_mut(&io.id()) {
                        if let Err(e) = p.packet(index, is_rtcp, data, false, io.now()) {
                            warn!("RTSP publish of {}: {e}; connection closed", self.peer);
                            self.close(io);
                            return;
                        }
                    }
                    // Otherwise client RTCP (receiver reports): nothing to do.
                }
                Ok(Some(Item::Message(Message::Response(_)))) => {}
                Ok(Some(Item::Message(Message::Request(req)))) => self.request(app, io, req),
            }
            if self.closed {
                return;
            }
        }
        self.arm_timer(app, io);
    }

    /// When the session counts as gone: [`IDLE`] after the last request, interleaved frame or
    /// UDP packet from the client. A viewer playing over interleaved TCP is exempt (it is alive
    /// while it reads; the runtime cuts one that stops reading).
    fn idle_deadline(&self, app: &RtspApp, id: ConnId) -> Option<Instant> {
        let tcp_viewer = app.viewers.contains_key(&id)
            && self
                .setups
                .iter()
                .all(|(_, _, o)| matches!(o, Out::Tcp(..)));
        if tcp_viewer {
            return None;
        }
        let udp = app.udp_seen.get(&id).copied();
        Some(udp.map_or(self.last_active, |u| u.max(self.last_active)) + IDLE)
    }

    fn arm_timer(&mut self, app: &RtspApp, io: &mut Io<'_>) {
        let now = io.now();
        if self.dec.buffered() > 0 {
            self.partial_since.get_or_insert(now);
        } else {
            self.partial_since = None;
        }
        let partial = self.partial_since.map(|t| t + PARTIAL_TIMEOUT);
        let retry = match self.stage {
            Stage::Waiting { .. } => Some(now + Duration::from_millis(100)),
            _ => None,
        };
        let at = [
            partial,
            retry,
            self.idle_deadline(app, io.id()),
            self.next_rr,
        ]
        .into_iter()
        .flatten()
        .min();
        io.set_timer(at);
    }

    fn close(&mut self, io: &mut Io<'_>) {
        self.closed = true;
        io.close();
    }

    fn reply(&mut self, io: &mut Io<'_>, r: mist_media::rtsp::Response) {
        io.write(&r.to_bytes());
    }

    fn request(&mut self, app: &mut RtspApp, io: &mut Io<'_>, req: mist_media::rtsp::Request) {
        trace!("{} {} {}", self.peer, req.method.as_str(), req.uri);
        let teardown = req.method == Method::Teardown;
        self.expire_nonce(app, io.now());
        match self.rtsp.handle(&req) {
            Step::Reply(r) => {
                self.reply(io, r);
                let what = format!("{} of {:?}", req.method.as_str(), stream_of(req.path()));
                self.refused(io, &what);
                if teardown {
                    self.close(io);
                }
            }
            Step::Ask(ask) => self.ask(app, io, ask, &req),
        }
        self.events(app, io);
    }

    fn ask(
        &mut self,
        app: &mut RtspApp,
        io: &mut Io<'_>,
        ask: Ask,
        req: &mist_media::rtsp::Request,
    ) {
        match ask {
            Ask::Describe { path } => {
                let name = stream_of(&path);
                if !mist_core::names::is_valid(&name) {
                    warn!("DESCRIBE of {name:?} by {}: invalid stream name", self.peer);
                    let r = self.rtsp.answer(Answer::Describe(Err(404)));
                    return self.reply(io, r);
                }
                if let Some(s) = &self.stream {
                    // Asked before (a second DESCRIBE on the connection): same stream only.
                    if sanitize(&name) == *s || name == *s {
                        self.stage = Stage::Waiting {
                            stream: s.clone(),
                            since: io.now(),
                        };
                        self.try_describe(app, io);
                        return;
                    }
                    let r = self.rtsp.answer(Answer::Describe(Err(455)));
                    return self.reply(io, r);
                }
                self.url = req.uri.clone();
                app.asker.ask(
                    io.id(),
                    Request::StreamConfig {
                        stream: name.clone(),
                        push: false,
                    },
                );
                self.stage = Stage::Looking { name, push: None };
                io.pause_reading(true);
            }
            Ask::Setup { track, transport } if self.rtsp.is_publishing() => {
                let ok = app
                    .publishers
                    .get(&io.id())
                    .is_some_and(|p| p.has_track(track));
                let answer = match (
                    transport.lower,
                    &app.udp,
                    transport.client_port,
                    self.peer.ip(),
                ) {
                    _ if !ok => Err(404),
                    (Lower::Tcp, ..) => Ok(transport),
                    // Packets are taken from the client's own address and the ports it named.
                    (Lower::Udp, Some(u), Some((rtp, rtcp)), Some(ip)) => {
                        let mut t = transport;
                        t.server_port = Some((u.port, u.port.wrapping_add(1)));
                        t.destination = None;
                        let id = io.id();
                        app.udp_routes
                            .insert(SocketAddr::new(ip, rtp), (id, track, false));
                        app.udp_routes
                            .insert(SocketAddr::new(ip, rtcp), (id, track, true));
                        Ok(t)
                    }
                    (Lower::Udp, ..) => Err(461),
                };
                let r = self.rtsp.answer(Answer::Setup(answer));
                self.reply(io, r);
            }
            Ask::Setup {
                track,
                mut transport,
            } => {
                let (Some(&tid), Some(stream)) = (self.sdp_tracks.get(track), &self.stream) else {
                    let r = self.rtsp.answer(Answer::Setup(Err(404)));
                    return self.reply(io, r);
                };
                let out = match transport.lower {
                    Lower::Tcp => match transport.interleaved {
                        Some((a, b)) => Out::Tcp(a, b),
                        None => {
                            let r = self.rtsp.answer(Answer::Setup(Err(461)));
                            return self.reply(io, r);
                        }
                    },
                    Lower::Udp => {
                        let (Some(u), Some((rtp, rtcp)), Some(ip)) =
                            (&app.udp, transport.client_port, self.peer.ip())
                        else {
                            let r = self.rtsp.answer(Answer::Setup(Err(461)));
                            return self.reply(io, r);
                        };
                        transport.server_port = Some((u.port, u.port.wrapping_add(1)));
                        // Media goes to the peer's address only (never a `destination` it names).
                        transport.destination = None;
                        app.udp_routes
                            .insert(SocketAddr::new(ip, rtcp), (io.id(), track, true));
                        Out::Udp(SocketAddr::new(ip, rtp), SocketAddr::new(ip, rtcp))
                    }
                };
                transport.ssrc = Some(feed::ssrc_for(app.seed, stream, tid));
                self.setups.retain(|(i, _, _)| *i != track);
                self.setups.push((track, tid, out));
                let r = self.rtsp.answer(Answer::Setup(Ok(transport)));
                self.reply(io, r);
            }
            Ask::Play { range } => {
                let Some(stream) = self.stream.clone() else {
                    let r = self.rtsp.answer(Answer::Play(Err(455)));
                    return self.reply(io, r);
                };
                let key = self
                    .feed
                    .get_or_insert_with(|| RtspApp::feed_key(&stream, io.id()))
                    .clone();
                // A VoD feed is this viewer's own: it starts where the Range says. A live
                // stream's is shared and starts at its newest keyframe, whatever was asked.
                let own_feed = key != stream;
                let seek = match range.as_deref().map(npt_start_ms) {
                    Some(Ok(ms)) if own_feed => ms,
                    Some(Err(e)) if own_feed => {
                        warn!("PLAY of {stream} by {}: {e}", self.peer);
                        let r = self.rtsp.answer(Answer::Play(Err(e.status())));
                        return self.reply(io, r);
                    }
                    _ => None,
                };
                let info = match app.play_info(&key, &stream, &self.setups, seek) {
                    Ok(i) => i,
                    Err(why) => {
                        warn!("PLAY of {stream} by {}: {why}", self.peer);
                        let r = self.rtsp.answer(Answer::Play(Err(503)));
                        return self.reply(io, r);
                    }
                };
                let r = self.rtsp.answer(Answer::Play(Ok(info)));
                self.reply(io, r);
            }
            Ask::Announce { path, sdp } => {
                let name = stream_of(&path);
                let tracks = publish::announced_tracks(&sdp);
                if !mist_core::names::is_valid(&name) || tracks.is_empty() {
                    warn!(
                        "ANNOUNCE of {name:?} by {}: {}",
                        self.peer,
                        if tracks.is_empty() {
                            "no track we can take in the SDP"
                        } else {
                            "invalid stream name"
                        }
                    );
                    let status = if tracks.is_empty() { 415 } else { 404 };
                    let r = self.rtsp.answer(Answer::Announce(Err(status)));
                    return self.reply(io, r);
                }
                if app.publishers.contains_key(&io.id()) || self.stream.is_some() {
                    let r = self.rtsp.answer(Answer::Announce(Err(455)));
                    return self.reply(io, r);
                }
                self.url = req.uri.clone();
                let pass = query_param(&path, "pass").unwrap_or_default();
                app.asker.ask(
                    io.id(),
                    Request::StreamConfig {
                        stream: name.clone(),
                        push: true,
                    },
                );
                self.stage = Stage::Looking {
                    name,
                    push: Some((tracks, pass)),
                };
                io.pause_reading(true);
            }
            Ask::Record => {
                let ok = app.publishers.contains_key(&io.id());
                let r = self
                    .rtsp
                    .answer(Answer::Record(if ok { Ok(()) } else { Err(455) }));
                self.reply(io, r);
                if let (true, Some(p)) = (ok, app.publishers.get(&io.id())) {
                    info!("{} publishes {} over RTSP", self.peer, p.stream());
                    self.next_rr = Some(io.now() + RR_EVERY / 2);
                }
            }
        }
    }

    /// Acts on what the state machine decided (start or stop sending).
    fn events(&mut self, app: &mut RtspApp, io: &mut Io<'_>) {
        while let Some(ev) = self.rtsp.poll_event() {
            match ev {
                SessionEvent::Play => {
                    if let (Some(stream), Some(key)) = (self.stream.clone(), self.feed.clone()) {
                        let outs = self.setups.iter().map(|(_, t, o)| (*t, *o)).collect();
                        app.attach(io, &key, &stream, outs, &self.host);
                        info!("{} plays {stream} over RTSP", self.peer);
                    }
                }
                SessionEvent::Pause => app.detach(io.id()),
                SessionEvent::Teardown => {
                    app.detach(io.id());
                    app.end_publish(io.id());
                    self.setups.clear();
                    self.next_rr = None;
                }
                SessionEvent::Record => {}
            }
        }
    }

    /// Answers the pending DESCRIBE once the allowed stream has tracks, or gives up after
    /// [`PLAY_WAIT`].
    fn try_describe(&mut self, app: &mut RtspApp, io: &mut Io<'_>) {
        let Stage::Waiting { stream, since } = self.stage.clone() else {
            return;
        };
        let tracks = app.tracks_of(&stream);
        let (sdp, ids) = describe_sdp(&stream, &tracks);
        if !ids.is_empty() {
            self.sdp_tracks = ids;
            self.stage = Stage::Idle;
            io.pause_reading(false);
            let r = self.rtsp.answer(Answer::Describe(Ok(sdp)));
            self.reply(io, r);
            return self.process(app, io);
        }
        if io.now().duration_since(since) >= PLAY_WAIT {
            if tracks.is_empty() {
                warn!("DESCRIBE of {stream} by {}: stream is not live", self.peer);
            } else {
                warn!(
                    "DESCRIBE of {stream} by {}: no track can be sent over RTP",
                    self.peer
                );
            }
            self.stage = Stage::Idle;
            io.pause_reading(false);
            let r = self.rtsp.answer(Answer::Describe(Err(if tracks.is_empty() {
                404
            } else {
                415
            })));
            self.reply(io, r);
            return self.process(app, io);
        }
        self.arm_timer(app, io);
    }
}

impl Conn {
    /// Asks the controller to play `name` (the stream's credentials, if it has any, were
    /// right): PLAY_REWRITE, the input started if needed.
    fn ask_play(&mut self, app: &mut RtspApp, io: &mut Io<'_>, name: String) {
        app.play_asks
            .insert(io.id(), (name.clone(), self.host.clone(), self.url.clone()));
        app.asker.ask(
            io.id(),
            Request::Play {
                stream: name.clone(),
                host: self.host.clone(),
                connector: "RTSP".into(),
                url: self.url.clone(),
            },
        );
        self.stage = Stage::Asking { name };
    }

    /// Asks the controller to accept the push of `tracks` into `name` (the stream's credentials,
    /// if it has any, were right): stream keys, PUSH_REWRITE, the push rules, STREAM_PUSH.
    fn ask_push(
        &mut self,
        app: &mut RtspApp,
        io: &mut Io<'_>,
        name: String,
        tracks: Vec<(usize, RtpTrack)>,
        pass: &str,
    ) {
        app.asker.ask_within(
            io.id(),
            ingest::push_request(&name, pass, &self.host, "RTSP", &self.url),
            ingest::PUSH_TIMEOUT,
        );
        self.stage = Stage::AskingPush { name, tracks };
    }

    /// Sends the RTCP receiver reports that are due to this connection's publisher: on each
    /// track's interleaved RTCP channel, or over UDP from the shared RTCP port to the RTCP port
    /// the track was set up with.
    fn receiver_reports(&mut self, app: &mut RtspApp, io: &mut Io<'_>) {
        let now = io.now();
        if self.next_rr.is_none_or(|t| now < t) {
            return;
        }
        self.next_rr = Some(now + RR_EVERY);
        let id = io.id();
        let Some(p) = app.publishers.get_mut(&id) else {
            return;
        };
        for (index, pkt) in p.receiver_reports(now) {
            let channel = self
                .rtsp
                .tracks()
                .iter()
                .find(|t| t.index == index && t.transport.lower == Lower::Tcp)
                .and_then(|t| t.transport.interleaved)
                .map(|(_, rtcp)| rtcp);
            if let Some(ch) = channel {
                if let Some(frame) = mist_media::rtsp::message::interleaved_frame(ch, &pkt) {
                    io.write(&frame);
                }
                continue;
            }
            let to = app
                .udp_routes
                .iter()
                .find(|(_, r)| **r == (id, index, true))
                .map(|(a, _)| *a);
            if let (Some(u), Some(to)) = (&app.udp, to) {
                if let Err(e) = u.rtcp.send_to(&pkt, to) {
                    debug!("receiver report to {to}: {e}");
                }
            }
        }
    }

    /// A DESCRIBE refused by the controller or the viewer triggers: 403.
    fn play_refused(&mut self, app: &mut RtspApp, io: &mut Io<'_>, name: &str, why: &str) {
        warn!("play of {name:?} by {} refused: {why}", self.peer);
        io.pause_reading(false);
        let r = self.rtsp.answer(Answer::Describe(Err(403)));
        self.reply(io, r);
        self.process(app, io);
    }
}

impl Session<RtspApp> for Conn {
    fn on_read(&mut self, app: &mut RtspApp, io: &mut Io<'_>) {
        if self.closed {
            io.clear_input();
            return;
        }
        self.dec.push(io.input());
        io.clear_input();
        self.last_active = io.now();
        self.process(app, io);
    }

    fn on_wake(&mut self, app: &mut RtspApp, io: &mut Io<'_>) {
        let Some(v) = app.verdicts.remove(&io.id()) else {
            return;
        };
        let config = match &v {
            Verdict::Allow(r) => r.config.clone(),
            Verdict::Refuse(_) => serde_json::Value::Null,
        };
        match std::mem::replace(&mut self.stage, Stage::Idle) {
            Stage::Looking { name, push } => {
                // The stream's own credentials before anything else: a client without them is
                // answered 401 and starts nothing (no input, no trigger). A stream the
                // controller does not know (or could not be asked about) goes on to the play
                // or push request, which decides.
                if let Some(auth) = StreamAuth::from_config(&config) {
                    if let Some(r) = self.require(app, io, &auth) {
                        io.pause_reading(false);
                        self.reply(io, r);
                        let what = if push.is_some() {
                            "ANNOUNCE"
                        } else {
                            "DESCRIBE"
                        };
                        self.refused(io, &format!("{what} of {name:?}"));
                        if !self.closed {
                            self.process(app, io);
                        }
                        return;
                    }
                }
                match push {
                    None => self.ask_play(app, io, name),
                    Some((tracks, pass)) => self.ask_push(app, io, name, tracks, &pass),
                }
            }
            Stage::Asking { name } => match ingest::admitted(&name, v) {
                Ok((stream, _)) => {
                    if let Some(auth) = StreamAuth::from_config(&config) {
                        if let Some(r) = self.require(app, io, &auth) {
                            // Refused before the viewer triggers: no CONN_OPEN, none owed.
                            app.play_asks.remove(&io.id());
                            io.pause_reading(false);
                            self.reply(io, r);
                            self.refused(io, &format!("DESCRIBE of {stream:?}"));
                            if !self.closed {
                                self.process(app, io);
                            }
                            return;
                        }
                    }
                    let url = crate::access::viewer_url(&self.url, &name, &stream);
                    // From here the viewer triggers may fire CONN_OPEN: a viewer who leaves
                    // before their verdict is acted on still gets its CONN_CLOSE.
                    app.play_asks
                        .insert(io.id(), (stream.clone(), self.host.clone(), url.clone()));
                    app.admit.ask(
                        io.id(),
                        Request::Play {
                            stream: stream.clone(),
                            host: self.host.clone(),
                            connector: "RTSP".into(),
                            url,
                        },
                    );
                    self.stage = Stage::Admitting { stream };
                }
                Err(why) => {
                    app.play_asks.remove(&io.id());
                    self.play_refused(app, io, &name, &why.to_string())
                }
            },
            Stage::Admitting { stream } => {
                let asked = app.play_asks.remove(&io.id());
                match v {
                    Verdict::Allow(_) => {
                        // Admitted by the viewer triggers (CONN_OPEN fired): CONN_CLOSE is owed
                        // now.
                        let url = asked.map(|(_, _, u)| u).unwrap_or_else(|| self.url.clone());
                        crate::conn_close::opened(&stream, &self.host, "RTSP", &url);
                        app.owed
                            .insert(io.id(), (stream.clone(), self.host.clone(), url));
                        self.stream = Some(stream.clone());
                        self.stage = Stage::Waiting {
                            stream,
                            since: io.now(),
                        };
                        self.try_describe(app, io);
                    }
                    Verdict::Refuse(why) => self.play_refused(app, io, &stream, &why.to_string()),
                }
            }
            Stage::AskingPush { name, tracks } => {
                io.pause_reading(false);
                let answer = match ingest::admitted(&name, v) {
                    Ok((stream, dvr)) => {
                        let denied = StreamAuth::from_config(&config)
                            .and_then(|auth| self.require(app, io, &auth));
                        if let Some(r) = denied {
                            self.reply(io, r);
                            self.refused(io, &format!("ANNOUNCE of {stream:?}"));
                            if !self.closed {
                                self.process(app, io);
                            }
                            return;
                        }
                        let (controlled, now) = (app.controlled, io.now());
                        let idle = ingest::PUBLISH_IDLE;
                        match Publisher::new(&stream, dvr, controlled, idle, &tracks, now) {
                            Ok(p) => {
                                app.publishers.insert(io.id(), p);
                                Ok(())
                            }
                            Err(e) => {
                                warn!("push of {stream:?} by {} failed: {e}", self.peer);
                                Err(503)
                            }
                        }
                    }
                    Err(why) => {
                        warn!("push of {name:?} by {} refused: {why}", self.peer);
                        Err(403)
                    }
                };
                let r = self.rtsp.answer(Answer::Announce(answer));
                self.reply(io, r);
                self.process(app, io);
            }
            other => self.stage = other,
        }
    }

    fn on_timer(&mut self, app: &mut RtspApp, io: &mut Io<'_>) {
        if self
            .partial_since
            .is_some_and(|t| io.now().duration_since(t) >= PARTIAL_TIMEOUT)
        {
            warn!(
                "RTSP from {}: a message or interleaved frame stayed incomplete for {} s ({} bytes); connection closed",
                self.peer,
                PARTIAL_TIMEOUT.as_secs(),
                self.dec.buffered()
            );
            self.close(io);
            return;
        }
        if self
            .idle_deadline(app, io.id())
            .is_some_and(|t| io.now() >= t)
        {
            info!(
                "RTSP session of {} timed out ({} s without a request or packet); connection closed",
                self.peer,
                IDLE.as_secs()
            );
            self.close(io);
            return;
        }
        self.receiver_reports(app, io);
        if matches!(self.stage, Stage::Waiting { .. }) {
            self.try_describe(app, io);
        } else {
            self.arm_timer(app, io);
        }
    }

    fn on_close(&mut self, app: &mut RtspApp, id: ConnId, _peer: Peer) {
        app.udp_routes.retain(|_, r| r.0 != id);
        app.udp_seen.remove(&id);
        app.detach(id);
        app.end_publish(id);
        // A verdict that came after the peer left, before it was acted on.
        if let Some(v) = app.verdicts.remove(&id) {
            if matches!(self.stage, Stage::Admitting { .. }) {
                app.left_while_decided(id, v);
            } else {
                // The controller's verdict: no viewer trigger ran yet, none owed.
                app.play_asks.remove(&id);
            }
        }
        // (A play still being decided keeps its `play_asks` entry: `turn` settles it when the
        // verdict comes.)
        if let Some((s, h, u)) = app.owed.remove(&id) {
            crate::conn_close::closed(&s, &h, "RTSP", &u);
        }
        debug!("RTSP connection of {} closed", self.peer);
    }
}

impl RtspApp {
    /// The RTSP server's state: controller requests go through `asker`, UDP media through `udp` (TCP-interleaved only without it), new frames wake it through `waiter`.
    pub fn new(
        asker: Asker<ConnId>,
        admit: Asker<ConnId>,
        udp: Option<UdpPair>,
        waiter: mist_shm::Waiter,
        stop: Arc<AtomicBool>,
        seed: u64,
    ) -> RtspApp {
        RtspApp {
            asker,
            admit,
            verdicts: HashMap::new(),
            play_asks: HashMap::new(),
            owed: HashMap::new(),
            streams: HashMap::new(),
            viewers: HashMap::new(),
            publishers: HashMap::new(),
            udp_routes: HashMap::new(),
            udp_seen: HashMap::new(),
            failed: Vec::new(),
            controlled: mist_core::control::socket_path().is_some(),
            udp,
            waiter,
            stop,
            seed,
            next_stats: Instant::now(),
            merge: Duration::from_millis(DEFAULT_MERGE_MS),
            merged: Vec::new(),
            next_merge: Instant::now(),
        }
    }

    /// The verdict of a connection that closed before acting on it: a play the viewer triggers
    /// admitted (CONN_OPEN fired) gets its CONN_CLOSE.
    fn left_while_decided(&mut self, id: ConnId, v: Verdict) {
        let Some((name, host, url)) = self.play_asks.remove(&id) else {
            return; // a push, or no play asked
        };
        if let Ok((stream, _)) = ingest::admitted(&name, v) {
            debug!("{host} left while its play of {stream} was decided");
            let url = crate::access::viewer_url(&url, &name, &stream);
            crate::conn_close::closed(&stream, &host, "RTSP", &url);
        }
    }

    /// The tracks of a live stream (empty when it is not live).
    fn tracks_of(&self, stream: &str) -> Vec<Track> {
        if let Some(ps) = self.streams.get(stream).filter(|p| !p.ended) {
            return ps.tracks();
        }
        match mist_shm::stream_status(stream) {
            Ok(s) if !s.ended => s.tracks,
            _ => Vec::new(),
        }
    }

    /// The feed a viewer of `stream` joins: the stream's shared one when it is live; a VoD
    /// viewer gets its own, from the start, paced in real time.
    fn feed_key(stream: &str, id: ConnId) -> String {
        match mist_shm::stream_status(stream) {
            Ok(s) if !s.live => format!("{stream}\u{0}{}", id.0),
            _ => stream.to_string(),
        }
    }

    /// Makes sure feed `key` of `stream` is being read, and says where a PLAY of `setups` starts.
    /// `seek` (a VoD viewer's own feed only): start at the keyframe at or before that media
    /// time (ms); the answer's `Range` and `RTP-Info` name that keyframe's time.
    fn play_info(
        &mut self,
        key: &str,
        stream: &str,
        setups: &[(usize, u32, Out)],
        seek: Option<u64>,
    ) -> Result<PlayInfo, PlayError> {
        if self.streams.get(key).is_some_and(|p| p.ended) {
            self.streams.remove(key);
        }
        let mut seek = seek;
        if !self.streams.contains_key(key) {
            // A new feed starts at the very beginning anyway (audio before the first keyframe
            // included): `npt=0-`, which every first PLAY of ffmpeg says, needs no seek.
            if seek == Some(0) {
                seek = None;
            }
            let ps = PlayStream::open(stream, self.seed)?;
            if let Err(e) = self.waiter.add(stream) {
                warn!("{stream}: cannot watch for wake-ups ({e}); polling");
            }
            self.streams.insert(key.to_string(), ps);
        }
        let ps = self.streams.get_mut(key).ok_or(PlayError::Vanished)?;
        if let Some(ms) = seek {
            ps.seek(ms);
        }
        ps.pump_pending();
        if let Some(start) = seek.and(ps.seek_start()) {
            let start = start.max(0);
            let rtp_info = setups
                .iter()
                .filter_map(|(i, t, _)| {
                    let (seq, _) = ps.start_of(*t)?;
                    Some((*i, seq, ps.rtp_time_of(*t, start)?))
                })
                .collect();
            return Ok(PlayInfo {
                range: Some(npt_range(start as u64)),
                rtp_info,
            });
        }
        let rtp_info = setups
            .iter()
            .filter_map(|(i, t, _)| ps.start_of(*t).map(|(seq, ts)| (*i, seq, ts)))
            .collect();
        Ok(PlayInfo {
            range: Some("npt=0.000-".into()),
            rtp_info,
        })
    }

    /// Starts sending `stream` to connection `io.id()`: sender reports, then the packets since
    /// the newest keyframe, then live.
    fn attach(
        &mut self,
        io: &mut Io<'_>,
        key: &str,
        stream: &str,
        outs: Vec<(u32, Out)>,
        host: &str,
    ) {
        let id = io.id();
        self.detach(id);
        let Some(ps) = self.streams.get_mut(key) else {
            io.close();
            return;
        };
        let mut v = Viewer::new(key, stream, outs, host);
        let udp = self.udp.as_ref();
        ps.start_viewer(&mut v, udp, &mut |b| io.send(b));
        ps.viewers.push(id);
        self.viewers.insert(id, v);
    }

    /// A publisher left (TEARDOWN or closed).
    fn end_publish(&mut self, id: ConnId) {
        if let Some(p) = self.publishers.remove(&id) {
            info!(
                "publisher of {} left; {} frames, {} bad packets",
                p.stream(),
                p.frames(),
                p.bad_packets
            );
            p.end();
        }
    }

    fn detach(&mut self, id: ConnId) {
        if let Some(v) = self.viewers.remove(&id) {
            if let Some(ps) = self.streams.get_mut(&v.feed) {
                ps.viewers.retain(|x| *x != id);
            }
        }
    }

    /// Reads new frames of every played stream and sends them; drops unwatched streams.
    fn pump(&mut self, ctl: &mut Ctl<'_, RtspApp>, now: Instant) {
        let RtspApp {
            streams,
            viewers,
            udp,
            waiter,
            merge,
            merged,
            next_merge,
            ..
        } = self;
        let udp = udp.as_ref();
        let merge = *merge;
        for ps in streams.values_mut() {
            let ended = ps.pump(now, &mut |ids, batch, rtcp| {
                for &id in ids {
                    let Some(v) = viewers.get_mut(&id) else {
                        continue;
                    };
                    v.send(batch, rtcp, udp, &mut |b| {
                        if merge.is_zero() {
                            ctl.send(id, b);
                            return;
                        }
                        // Queued now, written with what follows at the merge deadline.
                        let Some(q) = ctl.out(id) else { return };
                        let first = q.is_empty();
                        q.push(b);
                        if q.len() >= MERGE_BYTES {
                            ctl.flush(id);
                        } else if first {
                            if merged.is_empty() {
                                *next_merge = now + merge;
                            }
                            merged.push(id);
                        }
                    });
                }
            });
            if ended {
                info!("{}: stream ended", ps.name);
                for id in ps.viewers.drain(..) {
                    // Playback reached the end of the data: CONN_STOP, then the close.
                    if let Some(v) = viewers.remove(&id) {
                        mist_core::triggers::viewers::stopped(&ps.name, &v.host, "RTSP");
                    }
                    ctl.close(id);
                }
            }
        }
        let mut gone = Vec::new();
        streams.retain(|_, ps| {
            let keep = ps.keep(now);
            if !keep {
                debug!("{}: a feed without RTSP viewers closed", ps.name);
                gone.push(ps.name.clone());
            }
            keep
        });
        for name in gone {
            if !streams.values().any(|ps| ps.name == name) {
                waiter.remove(&name);
            }
        }
    }
}

impl App for RtspApp {
    type Session = Conn;

    fn accept(&mut self, _l: ListenerId, peer: Peer, now: Instant) -> Option<Conn> {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        debug!("RTSP connection from {peer}");
        Some(Conn::new(
            peer,
            format!("{:016x}", self.seed ^ 0x5bd1_e995),
            now,
        ))
    }

    fn datagram(
        &mut self,
        _l: ListenerId,
        data: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Option<Vec<u8>> {
        // Media of a publisher, or RTCP of a viewer (keeps its session alive); nothing is
        // answered. Packets from addresses nobody set up are dropped.
        let Some(&(id, index, is_rtcp)) = self.udp_routes.get(&from) else {
            trace!("{} bytes of UDP from {from}, not set up", data.len());
            return None;
        };
        self.udp_seen.insert(id, now);
        if let Some(p) = self.publishers.get_mut(&id) {
            let data = bytes::Bytes::copy_from_slice(data);
            if let Err(e) = p.packet(index, is_rtcp, data, true, now) {
                warn!("RTSP publish from {from}: {e}; connection closed");
                self.publishers.remove(&id);
                self.failed.push(id);
            }
        }
        None
    }

    fn turn(&mut self, ctl: &mut Ctl<'_, Self>, now: Instant) -> Flow {
        if self.stop.load(Ordering::Relaxed) {
            info!("shutting down, {} connections", ctl.len());
            // The connections are not closed one by one at shutdown: their owed CONN_CLOSEs
            // are fired here.
            for (_, (s, h, u)) in std::mem::take(&mut self.owed) {
                crate::conn_close::closed(&s, &h, "RTSP", &u);
            }
            return Flow::Stop;
        }
        while let Some((id, v)) = self.asker.take() {
            if ctl.is_open(id) {
                self.verdicts.insert(id, v);
                ctl.wake(id);
            } else {
                // Left while the controller decided: no viewer trigger ran, none owed.
                self.play_asks.remove(&id);
            }
        }
        while let Some((id, v)) = self.admit.take() {
            if ctl.is_open(id) {
                self.verdicts.insert(id, v);
                ctl.wake(id);
            } else {
                // The viewer left while the viewer triggers decided its play.
                self.left_while_decided(id, v);
            }
        }
        for id in std::mem::take(&mut self.failed) {
            ctl.close(id);
        }
        self.pump(ctl, now);
        if !self.merged.is_empty() && now >= self.next_merge {
            let mut ids = std::mem::take(&mut self.merged);
            ids.sort_unstable();
            ids.dedup();
            for &id in &ids {
                ctl.flush(id);
            }
            ids.clear();
            self.merged = ids;
        }
        if now >= self.next_stats {
            self.next_stats = now + Duration::from_secs(1);
            for v in self.viewers.values_mut() {
                v.report();
            }
            for (id, p) in self.publishers.iter_mut() {
                if !p.tick(now) {
                    info!(
                        "publisher of {} sent nothing for {} s; connection closed",
                        p.stream(),
                        ingest::PUBLISH_IDLE.as_secs()
                    );
                    self.failed.push(*id);
                }
            }
        }
        Flow::Continue
    }

    fn next_deadline(&self) -> Option<Instant> {
        let merge = (!self.merged.is_empty()).then_some(self.next_merge);
        self.streams
            .values()
            .map(PlayStream::next_sr)
            .chain(merge)
            .min()
    }
}

/// SIGINT/SIGTERM set `stop` and write to the returned stream, so the event loop wakes to stop.
pub fn register_signals(stop: &Arc<AtomicBool>) -> std::io::Result<mio::net::UnixStream> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
    rx.set_nonblocking(true)?;
    tx.set_nonblocking(true)?;
    for s in [SIGTERM, SIGINT] {
        signal_hook::flag::register(s, stop.clone())?;
        signal_hook::low_level::pipe::register(s, tx.try_clone()?)?;
    }
    // SAFETY: setting a signal disposition to ignore; a viewer that went away must not kill us.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok(mio::net::UnixStream::from_std(rx))
}

/// Limits of the RTSP listener: a UDP viewer's connection is quiet but for keep-alives.
fn limits(max_per_ip: usize) -> Limits {
    Limits {
        max_per_ip: if max_per_ip == 0 {
            usize::MAX
        } else {
            max_per_ip
        },
        // Sessions time themselves out (see `Conn::idle_deadline`): UDP packets count as life.
        idle_timeout: None,
        header_timeout: Some(PARTIAL_TIMEOUT),
        ..Limits::default()
    }
}

/// Binds, serves until SIGINT/SIGTERM. Errors: the listener or the loop failed.
pub fn run(cfg: Config) -> std::io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut rt = Runtime::<RtspApp>::new()?;
    rt.set_max_wait(Duration::from_millis(50));
    let signals = register_signals(&stop)?;
    rt.watch(signals, "signals")?;
    let listener = mist_connector::bind_tcp(cfg.addr)?;
    let local = listener.local_addr()?;
    rt.listen_tcp(listener, "RTSP", limits(cfg.max_per_ip))?;
    let udp = match UdpPair::bind(cfg.addr.ip(), cfg.udp_port) {
        Ok(u) => {
            for (s, what) in [(&u.rtp, "RTP"), (&u.rtcp, "RTCP")] {
                s.set_nonblocking(true)?;
                rt.listen_udp(mio::net::UdpSocket::from_std(s.try_clone()?), what)?;
            }
            Some(u)
        }
        Err(e) => {
            warn!("no UDP ports for RTP ({e}); only interleaved TCP is offered");
            None
        }
    };
    info!(
        "listening on {local}{}",
        udp.as_ref()
            .map(|u| format!(", RTP/RTCP over UDP from ports {}-{}", u.port, u.port + 1))
            .unwrap_or_default()
    );
    let remote = rt.remote();
    let waiter = mist_shm::Waiter::new();
    {
        let (w, stop) = (waiter.clone(), stop.clone());
        let r = remote.clone();
        std::thread::Builder::new()
            .name("shm-waiter".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !w.wait(Duration::from_millis(500)).is_empty() {
                        r.wake_loop();
                    }
                }
            })?;
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ ((std::process::id() as u64) << 32);
    let standalone = mist_core::control::socket_path().is_none();
    let asker = Asker::with(
        remote.waker(),
        Arc::new(ask_play),
        standalone,
        mist_connector::ask::MAX_IN_FLIGHT,
        256,
    )
    .timeout(Duration::from_secs(10));
    let admit = Asker::with(
        remote.waker(),
        Arc::new(admit_play),
        standalone,
        mist_connector::ask::MAX_IN_FLIGHT,
        256,
    )
    .timeout(Duration::from_secs(10));
    let mut app = RtspApp::new(asker, admit, udp, waiter, stop.clone(), seed);
    app.merge = cfg.merge;
    let r = rt.run(&mut app);
    stop.store(true, Ordering::Relaxed);
    r
}

/// Capabilities JSON for `-j` (MistServer's connector description).
pub fn capabilities() -> serde_json::Value {
    serde_json::json!({
        "name": "RTSP",
        "desc": "Real-Time Streaming Protocol: play live and VoD streams over RTP, interleaved in the RTSP TCP connection or over UDP unicast, with RTCP sender reports (VoD seeks on PLAY with Range: npt=); accepts pushes (ANNOUNCE/RECORD over TCP or UDP). A stream whose config has rtsp_user and/or rtsp_password requires them of RTSP players and publishers (Digest MD5; rtsp_basic true also accepts Basic).",
        "optional": {
            "port": {"name": "TCP port", "help": "TCP port to listen on", "type": "uint", "default": 5554, "option": "--port", "short": "p"},
            "interface": {"name": "Interface", "help": "Address to listen on, or 0.0.0.0 for all available interfaces.", "type": "str", "default": "0.0.0.0", "option": "--interface", "short": "i"},
            "udpport": {"name": "UDP port", "help": "First of the two UDP ports (RTP, RTCP) media is sent from; 0 picks a free pair.", "type": "uint", "default": 0, "option": "--udp-port"},
            "merge_ms": {"name": "Merged writes (ms)", "help": "Write media to each viewer over interleaved TCP at most this often, in milliseconds; 0 writes every frame at once. Larger values cost less CPU per viewer and add up to that much latency. UDP packets leave at once.", "type": "uint", "default": DEFAULT_MERGE_MS, "option": "--merge-ms"},
            "max_per_ip": {"name": "Per-address connection cap", "help": "Most connections from one remote address at once; more are refused with a log line. 0: no cap.", "type": "uint", "default": DEFAULT_MAX_PER_IP, "option": "--max-per-ip"},
            "debug": {"name": "debug", "help": "The debug level at which messages need to be printed.", "type": "debug", "option": "--debug", "short": "g"}
        },
        "codecs": [[["H264", "HEVC"], ["AAC", "MP3", "opus", "ALAW", "ULAW"]]],
        "methods": [{"handler": "rtsp", "type": "rtsp", "hrn": "RTSP", "priority": 2}],
        "url_rel": "/$",
        "priority": 2
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_from_paths() {
        assert_eq!(stream_of("/live"), "live");
        assert_eq!(stream_of("/live+cam/trackID=1"), "live+cam");
        assert_eq!(stream_of("/a%2Bb?pass=x"), "a+b");
        assert_eq!(stream_of("/%zz%4"), "%zz%4");
        assert_eq!(stream_of("/"), "");
        assert_eq!(
            query_param("/s?a=1&pass=p%40ss", "pass").as_deref(),
            Some("p@ss")
        );
        assert_eq!(query_param("/s", "pass"), None);
    }

    type Asked = Arc<std::sync::Mutex<Vec<Request>>>;

    /// A connection as the runtime would drive it, whose controller questions `requester`
    /// answers (`standalone`: no controller is configured, every question is allowed).
    fn harness_on(
        requester: mist_connector::ask::Requester,
        standalone: bool,
    ) -> (RtspApp, mist_connector::Harness<Conn>) {
        let rt = Runtime::<RtspApp>::new().unwrap();
        let asker = Asker::with(rt.remote().waker(), requester.clone(), standalone, 1, 4);
        let admit = Asker::with(rt.remote().waker(), requester, standalone, 1, 4);
        let app = RtspApp::new(
            asker,
            admit,
            None,
            mist_shm::Waiter::new(),
            Arc::new(AtomicBool::new(false)),
            7,
        );
        let peer = Peer::Tcp("127.0.0.1:5000".parse().unwrap());
        let h = mist_connector::Harness::new(Conn::new(peer, "abc".into(), Instant::now()), peer);
        (app, h)
    }

    /// A connection with a standalone app (no controller).
    fn harness() -> (RtspApp, mist_connector::Harness<Conn>) {
        harness_on(
            Arc::new(|_, _| Err(mist_core::control::ControlError::NotSet("MIST_CONTROL"))),
            true,
        )
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn options_and_keepalive_are_answered() {
        let (mut app, mut h) = harness();
        let now = Instant::now();
        let out = text(&h.feed(
            &mut app,
            b"OPTIONS rtsp://h/live RTSP/1.0\r\nCSeq: 1\r\n\r\nGET_PARAMETER rtsp://h/live RTSP/1.0\r\nCSeq: 2\r\n\r\n",
            now,
        ));
        assert!(out.starts_with("RTSP/1.0 200 OK\r\n"), "{out}");
        assert!(out.contains("Public: OPTIONS, DESCRIBE"), "{out}");
        assert!(out.contains("CSeq: 2"), "{out}");
        assert!(!h.closing());
    }

    #[test]
    fn hostile_heads_and_frames_close_the_connection() {
        let (mut app, mut h) = harness();
        let out = text(&h.feed(
            &mut app,
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999999\r\n\r\n",
            Instant::now(),
        ));
        assert!(out.starts_with("RTSP/1.0 413"), "{out}");
        assert!(h.closing());

        let (mut app, mut h) = harness();
        let mut many = String::from("OPTIONS * RTSP/1.0\r\n");
        for i in 0..10_000 {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        let out = text(&h.feed(&mut app, many.as_bytes(), Instant::now()));
        assert!(out.starts_with("RTSP/1.0 414"), "{out}");
        assert!(h.closing());

        let (mut app, mut h) = harness();
        h.feed(&mut app, b"$\x03\x00\x02ab", Instant::now());
        assert!(h.closing(), "frame on a channel that is not set up");
    }

    #[test]
    fn lying_frame_length_times_out() {
        let (mut app, mut h) = harness();
        let t0 = Instant::now();
        h.feed(&mut app, b"$\x00\xff\xffOPTIONS * RTSP/1.0\r\n\r\n", t0);
        assert!(!h.closing());
        let at = h.timer().expect("a timer for the incomplete frame");
        assert!(at <= t0 + PARTIAL_TIMEOUT);
        h.advance(&mut app, t0 + PARTIAL_TIMEOUT);
        assert!(h.closing());
    }

    #[test]
    fn silent_session_times_out() {
        let (mut app, mut h) = harness();
        let t0 = Instant::now();
        h.feed(&mut app, b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", t0);
        assert_eq!(h.timer(), Some(t0 + IDLE));
        h.advance(&mut app, t0 + IDLE - Duration::from_secs(1));
        assert!(!h.closing());
        h.advance(&mut app, t0 + IDLE);
        assert!(h.closing());
    }

    /// A connection whose controller answers every question (the stream's config, play, push)
    /// with a stream config that asks for credentials (`config`), the viewer triggers allowing;
    /// and the questions it was asked.
    fn harness_with(config: serde_json::Value) -> (RtspApp, mist_connector::Harness<Conn>, Asked) {
        let asked = Asked::default();
        let log = asked.clone();
        let allow: mist_connector::ask::Requester = Arc::new(move |req: &Request, _: Duration| {
            log.lock().unwrap().push(req.clone());
            let stream = match req {
                Request::Play { stream, .. }
                | Request::Push { stream, .. }
                | Request::StreamConfig { stream, .. } => stream.clone(),
                Request::Api { .. } => String::new(),
            };
            Ok(mist_core::control::Response {
                ok: true,
                stream,
                error: String::new(),
                config: config.clone(),
            })
        });
        let (app, h) = harness_on(allow, false);
        (app, h, asked)
    }

    /// Waits for the next controller verdict and hands it to the connection, as `turn` does.
    fn deliver(app: &mut RtspApp, h: &mut mist_connector::Harness<Conn>, now: Instant) -> String {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some((id, v)) = app.asker.take().or_else(|| app.admit.take()) {
                app.verdicts.insert(id, v);
                return text(&h.wake(app, now));
            }
            assert!(Instant::now() < end, "no verdict");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn challenge_of(out: &str) -> mist_media::rtsp::DigestChallenge {
        let v = out
            .lines()
            .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .unwrap_or_else(|| panic!("no challenge in {out}"));
        mist_media::rtsp::DigestChallenge::parse(v).unwrap()
    }

    #[test]
    fn credentials_of_the_stream_config_and_expiring_nonces() {
        assert_eq!(
            StreamAuth::from_config(&serde_json::json!({"source": "x"})),
            None
        );
        assert_eq!(
            StreamAuth::from_config(&serde_json::json!({"rtsp_password": "p", "rtsp_basic": "1"})),
            Some(StreamAuth {
                user: String::new(),
                password: "p".into(),
                basic: true
            })
        );
        let (mut app, mut h, asked) =
            harness_with(serde_json::json!({"rtsp_user": "u", "rtsp_password": "p"}));
        let t0 = Instant::now();
        let describe = |cseq: u32, auth: &str| {
            format!("DESCRIBE rtsp://h/authunit RTSP/1.0\r\nCSeq: {cseq}\r\n{auth}\r\n")
                .into_bytes()
        };
        assert_eq!(text(&h.feed(&mut app, &describe(1, ""), t0)), "");
        let out = deliver(&mut app, &mut h, t0);
        assert!(out.starts_with("RTSP/1.0 401 "), "{out}");
        // Refused on the stream's config alone: the controller was not asked to play it (that
        // would start its input), no viewer trigger ran.
        assert_eq!(
            *asked.lock().unwrap(),
            [Request::StreamConfig {
                stream: "authunit".into(),
                push: false
            }]
        );
        assert!(app.play_asks.is_empty() && h.session.stage == Stage::Idle);
        let ch = challenge_of(&out);
        assert!(ch.qop_auth, "qop=auth offered");
        assert!(
            !ch.stale && ch.realm == REALM && ch.nonce.len() == 32,
            "{ch:?}"
        );
        // A wrong password: refused by the session at once (no question to the controller).
        let wrong = ch.respond("u", "x", "DESCRIBE", "rtsp://h/authunit", "", 1);
        let out = text(&h.feed(
            &mut app,
            &describe(2, &format!("Authorization: {wrong}\r\n")),
            t0,
        ));
        assert!(out.starts_with("RTSP/1.0 401 "), "{out}");
        assert_eq!(h.session.auth_failures, 1);
        // The right one goes on (the stream's config, the controller, then the viewer triggers,
        // then the stream wait).
        let right = ch.respond("u", "p", "DESCRIBE", "rtsp://h/authunit", "", 1);
        let out = text(&h.feed(
            &mut app,
            &describe(3, &format!("Authorization: {right}\r\n")),
            t0,
        ));
        assert_eq!(out, "");
        assert!(matches!(h.session.stage, Stage::Looking { .. }));
        assert_eq!(deliver(&mut app, &mut h, t0), "");
        assert!(matches!(h.session.stage, Stage::Asking { .. }));
        assert_eq!(deliver(&mut app, &mut h, t0), "");
        assert!(matches!(h.session.stage, Stage::Admitting { .. }));
        deliver(&mut app, &mut h, t0);
        assert!(matches!(h.session.stage, Stage::Waiting { .. }));
        assert_eq!(h.session.stream.as_deref(), Some("authunit"));
        // Not live: 404 after the wait; the session keeps its credentials.
        let out = text(&h.advance(&mut app, t0 + PLAY_WAIT + Duration::from_millis(200)));
        assert!(out.starts_with("RTSP/1.0 404 "), "{out}");
        // The nonce expires: the same answer is stale now, with a new nonce.
        let later = t0 + NONCE_TTL + Duration::from_secs(1);
        let out = text(&h.feed(
            &mut app,
            &describe(4, &format!("Authorization: {right}\r\n")),
            later,
        ));
        assert!(out.starts_with("RTSP/1.0 401 "), "{out}");
        let ch2 = challenge_of(&out);
        assert!(ch2.stale && ch2.nonce != ch.nonce, "{ch2:?}");
        assert_eq!(h.session.auth_failures, 1, "stale is not a failure");
        // Wrong credentials again and again close the connection.
        for i in 1..MAX_AUTH_FAILURES {
            assert!(!h.closing());
            h.feed(
                &mut app,
                &describe(10 + i, &format!("Authorization: {wrong}\r\n")),
                later,
            );
        }
        assert!(h.closing());
    }

    /// An ANNOUNCE of `sdp` to `path`.
    fn announce(path: &str, cseq: u32, auth: &str, sdp: &str) -> Vec<u8> {
        format!(
            "ANNOUNCE rtsp://h/{path} RTSP/1.0\r\nCSeq: {cseq}\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
        .into_bytes()
    }

    const PCMA_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\na=control:trackID=0\r\n";

    #[test]
    fn unauthenticated_announce_asks_for_no_push() {
        let (mut app, mut h, asked) =
            harness_with(serde_json::json!({"rtsp_user": "u", "rtsp_password": "p"}));
        let t0 = Instant::now();
        assert_eq!(
            text(&h.feed(&mut app, &announce("pubunit", 1, "", PCMA_SDP), t0)),
            ""
        );
        let out = deliver(&mut app, &mut h, t0);
        assert!(out.starts_with("RTSP/1.0 401 "), "{out}");
        // Only the config was asked for: no push request (STREAM_PUSH, the buffer) was made.
        assert_eq!(
            *asked.lock().unwrap(),
            [Request::StreamConfig {
                stream: "pubunit".into(),
                push: true
            }]
        );
        assert!(app.publishers.is_empty() && h.session.stage == Stage::Idle);
        // With the password the push is asked for.
        let ch = challenge_of(&out);
        let right = ch.respond("u", "p", "ANNOUNCE", "rtsp://h/pubunit", "c0ffee", 1);
        let req = announce(
            "pubunit",
            2,
            &format!("Authorization: {right}\r\n"),
            PCMA_SDP,
        );
        assert_eq!(text(&h.feed(&mut app, &req, t0)), "");
        assert_eq!(deliver(&mut app, &mut h, t0), "");
        assert!(matches!(h.session.stage, Stage::AskingPush { .. }));
        let end = Instant::now() + Duration::from_secs(5);
        let push = loop {
            if let Some(r) = asked.lock().unwrap().get(2).cloned() {
                break r;
            }
            assert!(Instant::now() < end, "no push asked");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(matches!(push, Request::Push { stream, .. } if stream == "pubunit"));
    }

    /// One PCMA RTP packet (20 ms) with sequence number `seq` from SSRC `ssrc`.
    fn pcma(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 8];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    /// The receiver report blocks in the interleaved frames of `out`, by channel.
    fn reports_in(out: &[u8]) -> Vec<(u8, mist_media::rtp::rtcp::ReportBlock)> {
        let mut d = Decoder::default();
        d.push(out);
        let mut found = Vec::new();
        while let Ok(Some(item)) = d.next_item() {
            let Item::Interleaved { channel, data } = item else {
                continue;
            };
            for p in mist_media::rtp::rtcp::parse(&data).unwrap() {
                if let mist_media::rtp::rtcp::RtcpPacket::ReceiverReport(rr) = p {
                    found.extend(rr.reports.into_iter().map(|b| (channel, b)));
                }
            }
        }
        found
    }

    #[test]
    fn tcp_publisher_gets_receiver_reports_on_its_rtcp_channel() {
        crate::test_shm_dir();
        let (mut app, mut h) = harness();
        let t0 = Instant::now();
        h.feed(&mut app, &announce("rtsp_rr_unit", 1, "", PCMA_SDP), t0);
        assert_eq!(deliver(&mut app, &mut h, t0), "", "the stream's config");
        let out = deliver(&mut app, &mut h, t0);
        assert!(out.starts_with("RTSP/1.0 200 "), "{out}");
        let out = text(&h.feed(
            &mut app,
            b"SETUP rtsp://h/rtsp_rr_unit/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5;mode=record\r\n\r\n",
            t0,
        ));
        assert!(out.starts_with("RTSP/1.0 200 "), "{out}");
        let out = text(&h.feed(
            &mut app,
            b"RECORD rtsp://h/rtsp_rr_unit RTSP/1.0\r\nCSeq: 3\r\n\r\n",
            t0,
        ));
        assert!(out.starts_with("RTSP/1.0 200 "), "{out}");
        // Nothing is reported before media came.
        let first = t0 + RR_EVERY / 2;
        assert_eq!(h.timer(), Some(first));
        assert!(reports_in(&h.advance(&mut app, first)).is_empty());
        // 50 packets on the RTP channel, one missing: the next report tells.
        let mut media = Vec::new();
        for seq in (0..50u16).filter(|s| *s != 20) {
            let f = mist_media::rtsp::message::interleaved_frame(4, &pcma(seq, 0x1234_5678));
            media.extend(f.unwrap());
        }
        h.feed(&mut app, &media, first + Duration::from_millis(100));
        assert!(!h.closing());
        let next = first + RR_EVERY;
        assert_eq!(h.timer(), Some(next));
        let reports = reports_in(&h.advance(&mut app, next));
        assert_eq!(reports.len(), 1, "{reports:?}");
        let (channel, block) = reports[0];
        assert_eq!(channel, 5, "the track's RTCP channel");
        assert_eq!(block.ssrc, 0x1234_5678);
        assert_eq!(block.highest_sequence, 49);
        assert_eq!(block.cumulative_lost, 1);
        // And every interval after.
        let out = h.advance(&mut app, next + RR_EVERY);
        assert_eq!(reports_in(&out).len(), 1);
        h.feed(
            &mut app,
            b"TEARDOWN rtsp://h/rtsp_rr_unit RTSP/1.0\r\nCSeq: 4\r\n\r\n",
            next + RR_EVERY,
        );
        assert!(app.publishers.is_empty());
    }

    #[test]
    fn sdp_lists_supported_tracks() {
        let mut v = Track::new(1, mist_media::Codec::H264);
        v.width = 64;
        let av1 = Track::new(2, mist_media::Codec::Av1);
        let alaw = Track::new(3, mist_media::Codec::Alaw);
        let (sdp, ids) = describe_sdp("live", &[v, av1, alaw]);
        // AV1 has no RTP mapping here: left out, the others keep their track ids as controls.
        assert_eq!(ids, vec![1, 3]);
        assert!(sdp.contains("m=audio 0 RTP/AVP 8\r\n"), "{sdp}");
        assert!(sdp.contains("a=control:trackID=1\r\n"), "{sdp}");
        assert!(sdp.contains("m=video 0 RTP/AVP 97\r\n"), "{sdp}");
    }
}
