//! The server side of one RTSP connection: a state machine fed requests, answering what it can
//! and asking the IO edge for the rest.
//!
//! ```text
//! Init ──SETUP──▶ Ready ──PLAY──▶ Playing ──PAUSE──▶ Ready
//!   ▲               │  └──RECORD─▶ Recording
//!   └───TEARDOWN────┴──────────────┘
//! ```
//!
//! A run loop: decode a [`Request`](super::Request), call [`ServerSession::handle`]; a
//! [`Step::Reply`] is written back as is, a [`Step::Ask`] is decided by the edge (look up the stream,
//! run push acceptance, open UDP ports, find the start position) and given to
//! [`ServerSession::answer`], which builds the reply. [`ServerSession::poll_event`] then tells the
//! edge when to start or stop sending or accepting media.

use super::auth::{AuthCheck, Authenticator, ReplayGuard};
use super::message::{Method, Request, Response, Version};
use super::transport::{Lower, Transport};
use crate::sdp::SessionDescription;
use bytes::Bytes;
use std::collections::VecDeque;

/// Fixed settings of a server session.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The session id handed out at the first SETUP (the edge makes it unpredictable).
    pub session_id: String,
    /// Seconds of silence after which the edge may drop the session (sent as `;timeout=`).
    pub timeout: u32,
    /// The `Server` header.
    pub server: String,
    /// Required credentials; `None` lets every request through. The edge may change it with
    /// [`ServerSession::set_auth`] once it knows which stream a request is for.
    pub auth: Option<Authenticator>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session_id: "00000000".into(),
            timeout: 60,
            server: "mist-rs".into(),
            auth: None,
        }
    }
}

/// The protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing set up yet.
    Init,
    /// At least one track set up, no media flowing (also after PAUSE).
    Ready,
    /// Sending media to the client.
    Playing,
    /// Receiving media from the client.
    Recording,
}

/// What a handled request gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this response.
    Reply(Response),
    /// The edge must decide; give the decision to [`ServerSession::answer`].
    Ask(Ask),
}

/// A question for the IO edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// The SDP of the stream at `path` (answer [`Answer::Describe`]).
    Describe {
        /// The request's path (`/live/cam`): the edge maps it to a stream.
        path: String,
    },
    /// A client wants to publish `sdp` to `path` (answer [`Answer::Announce`]): push acceptance.
    Announce {
        /// The request's path: the stream (and push password part) to publish to.
        path: String,
        /// The client's SDP: the tracks it will send.
        sdp: Bytes,
    },
    /// Set up media track `track` (index into the SDP's media sections) with `transport`; for
    /// TCP, the interleaved channels are already chosen. The edge fills in what it owns
    /// (`server_port`, `ssrc`) and answers [`Answer::Setup`].
    Setup {
        /// Index of the media section in the SDP.
        track: usize,
        /// The transport the client asked for.
        transport: Transport,
    },
    /// Start sending from `range` (the raw `Range` header, e.g. `npt=0.000-`); answer
    /// [`Answer::Play`].
    Play {
        /// The `Range` header as sent, if any.
        range: Option<String>,
    },
    /// Start accepting media (answer [`Answer::Record`]).
    Record,
}

/// The edge's decision on an [`Ask`]; `Err(status)` refuses with that status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The stream's SDP, or why not (404 unknown, 403 refused …).
    Describe(Result<String, u16>),
    /// Whether the push is accepted.
    Announce(Result<(), u16>),
    /// The transport completed with what the edge owns (`server_port`, `ssrc`).
    Setup(Result<Transport, u16>),
    /// Where playback starts, for the `Range` and `RTP-Info` headers.
    Play(Result<PlayInfo, u16>),
    /// Whether recording may start.
    Record(Result<(), u16>),
}

/// What a PLAY answer carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlayInfo {
    /// The `Range` to send back (`npt=12.000-`), if any.
    pub range: Option<String>,
    /// Per set-up track: (track index, first sequence number, RTP time of the first packet).
    pub rtp_info: Vec<(usize, u16, u32)>,
}

/// Something the edge must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Send media of the set-up tracks ([`ServerSession::tracks`]).
    Play,
    /// Stop sending; the tracks stay set up.
    Pause,
    /// Accept media on the set-up tracks.
    Record,
    /// The client ended the session; release its tracks and ports.
    Teardown,
}

/// A track set up on this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupTrack {
    /// Index of the media section in the SDP.
    pub index: usize,
    /// The transport as answered (channels or ports).
    pub transport: Transport,
}

#[derive(Debug, Clone)]
struct Pending {
    cseq: Option<u32>,
    ask: Ask,
    uri: String,
    /// The request's method and `Authorization`, for [`ServerSession::recheck_pending`].
    method: String,
    authorization: Option<String>,
    /// Its credentials were checked and right (against the credentials required now).
    authorized: bool,
}

/// Most media sections a session takes from one SDP.
const MAX_TRACKS: usize = 32;

/// One RTSP server connection's session state.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    state: State,
    /// The `a=control` of each media section of the described or announced SDP.
    controls: Vec<String>,
    /// Whether the SDP came from an ANNOUNCE (the session publishes).
    announced: bool,
    tracks: Vec<SetupTrack>,
    pending: Option<Pending>,
    events: VecDeque<SessionEvent>,
    session_given: bool,
    /// The version of the request being answered (RTSP/2.0 clients get 2.0 answers).
    version: Version,
    /// Why the last request was answered 401, until the edge takes it (to log it).
    refused: Option<AuthCheck>,
    /// The nonce counts and stale nonces this connection's answers showed.
    replay: ReplayGuard,
}

impl ServerSession {
    /// A session before its first request.
    pub fn new(config: ServerConfig) -> ServerSession {
        ServerSession {
            config,
            state: State::Init,
            controls: Vec::new(),
            announced: false,
            tracks: Vec::new(),
            pending: None,
            events: VecDeque::new(),
            session_given: false,
            version: Version::V1_0,
            refused: None,
            replay: ReplayGuard::default(),
        }
    }

    /// Where the session is in the protocol.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the client publishes (ANNOUNCE/RECORD) rather than plays.
    pub fn is_publishing(&self) -> bool {
        self.announced
    }

    /// Requires authentication (`Some`) or not (`None`) from the next request on, for an edge
    /// that learns a stream's credentials only once a request named the stream.
    pub fn set_auth(&mut self, auth: Option<Authenticator>) {
        self.config.auth = auth;
        if let Some(p) = self.pending.as_mut() {
            p.authorized = false;
        }
    }

    /// The credentials required, if any (the edge rotates their nonce through it).
    pub fn auth_mut(&mut self) -> Option<&mut Authenticator> {
        self.config.auth.as_mut()
    }

    /// Why the last 401 was answered (once): the edge logs wrong credentials with the peer.
    pub fn take_refusal(&mut self) -> Option<AuthCheck> {
        self.refused.take()
    }

    /// Checks the request the edge is deciding on against credentials set (with
    /// [`ServerSession::set_auth`]) only after it was handled, once the edge learned that its
    /// stream wants them. `None`: acceptable, still pending. `Some`: the 401 to send instead (the
    /// question is dropped). A request found right is not checked again (its nonce count would
    /// look replayed) until other credentials are set.
    pub fn recheck_pending(&mut self) -> Option<Response> {
        let auth = self.config.auth.as_ref()?;
        let p = self.pending.as_mut()?;
        if p.authorized {
            return None;
        }
        let check = auth.verify_request(
            &p.method,
            &p.uri,
            p.authorization.as_deref(),
            &mut self.replay,
        );
        if check == AuthCheck::Ok {
            p.authorized = true;
            return None;
        }
        let cseq = p.cseq;
        self.pending = None;
        Some(self.unauthorized(check, cseq))
    }

    fn unauthorized(&mut self, check: AuthCheck, cseq: Option<u32>) -> Response {
        let mut r = self.reply(401, cseq);
        if let Some(auth) = &self.config.auth {
            for c in auth.challenges_for(&check) {
                r.headers.push("WWW-Authenticate", c);
            }
        }
        self.refused = Some(check);
        r
    }

    /// The tracks set up so far.
    pub fn tracks(&self) -> &[SetupTrack] {
        &self.tracks
    }

    /// The track (index into the SDP) and kind (`true` for RTCP) an interleaved channel carries.
    pub fn channel(&self, channel: u8) -> Option<(usize, bool)> {
        self.tracks
            .iter()
            .find_map(|t| match t.transport.interleaved {
                Some((rtp, _)) if rtp == channel => Some((t.index, false)),
                Some((_, rtcp)) if rtcp == channel => Some((t.index, true)),
                _ => None,
            })
    }

    /// The next thing the edge must act on (after a request was handled or answered).
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Request) -> Step {
        let cseq = req.headers.cseq();
        if self.pending.is_none() {
            self.version = req.version;
        }
        if self.pending.is_some() {
            // A pipelining client: the previous request is still with the edge.
            return Step::Reply(self.reply(503, cseq));
        }
        let mut authorized = false;
        if req.method != Method::Options {
            if let Some(auth) = &self.config.auth {
                let check = auth.verify_request(
                    req.method.as_str(),
                    &req.uri,
                    req.headers.get("Authorization"),
                    &mut self.replay,
                );
                if check != AuthCheck::Ok {
                    return Step::Reply(self.unauthorized(check, cseq));
                }
                authorized = true;
            }
        }
        if let Some(id) = req.headers.session_id() {
            if self.session_given && id != self.config.session_id {
                return Step::Reply(self.reply(454, cseq));
            }
        }
        if let Some(required) = req.headers.get("Require") {
            // We implement no option tags (RFC 2326 section 12.32).
            let mut r = self.reply(551, cseq);
            r.headers.push("Unsupported", required.to_string());
            return Step::Reply(r);
        }
        let ask = match &req.method {
            Method::Options => {
                let mut r = self.reply(200, cseq);
                r.headers.push(
                    "Public",
                    "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, PAUSE, RECORD, TEARDOWN, GET_PARAMETER, SET_PARAMETER",
                );
                return Step::Reply(r);
            }
            Method::GetParameter | Method::SetParameter => {
                return Step::Reply(self.reply(200, cseq));
            }
            Method::Describe => {
                if self.state != State::Init {
                    return Step::Reply(self.reply(455, cseq));
                }
                Ask::Describe {
                    path: req.path().to_string(),
                }
            }
            Method::Announce => {
                if self.state != State::Init {
                    return Step::Reply(self.reply(455, cseq));
                }
                if !req
                    .headers
                    .get("Content-Type")
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/sdp"))
                {
                    return Step::Reply(self.reply(415, cseq));
                }
                Ask::Announce {
                    path: req.path().to_string(),
                    sdp: req.body.clone(),
                }
            }
            Method::Setup => match self.setup_ask(req) {
                Ok(a) => a,
                Err(status) => return Step::Reply(self.reply(status, cseq)),
            },
            Method::Play => {
                if self.state == State::Init || self.announced || self.tracks.is_empty() {
                    return Step::Reply(self.reply(455, cseq));
                }
                if self.state == State::Playing {
                    // A keep-alive PLAY (some players send one): nothing changes.
                    return Step::Reply(self.reply(200, cseq));
                }
                Ask::Play {
                    range: req.headers.get("Range").map(str::to_string),
                }
            }
            Method::Record => {
                if self.state != State::Ready || !self.announced {
                    return Step::Reply(self.reply(455, cseq));
                }
                Ask::Record
            }
            Method::Pause => {
                if self.state != State::Playing {
                    return Step::Reply(self.reply(455, cseq));
                }
                self.state = State::Ready;
                self.events.push_back(SessionEvent::Pause);
                return Step::Reply(self.reply(200, cseq));
            }
            Method::Teardown => {
                let had = self.state != State::Init;
                self.state = State::Init;
                self.tracks.clear();
                if had {
                    self.events.push_back(SessionEvent::Teardown);
                }
                let mut r = self.reply(200, cseq);
                r.headers.set("Connection", "close");
                return Step::Reply(r);
            }
            Method::Redirect | Method::Other(_) => return Step::Reply(self.reply(501, cseq)),
        };
        self.pending = Some(Pending {
            cseq,
            ask: ask.clone(),
            uri: req.uri.clone(),
            method: req.method.as_str().to_string(),
            authorization: req.headers.get("Authorization").map(str::to_string),
            authorized,
        });
        Step::Ask(ask)
    }

    fn setup_ask(&self, req: &Request) -> Result<Ask, u16> {
        if matches!(self.state, State::Playing | State::Recording) {
            return Err(455);
        }
        if self.controls.is_empty() {
            // SETUP before DESCRIBE/ANNOUNCE: we cannot know which track is meant.
            return Err(455);
        }
        let track = self.track_for_uri(&req.uri).ok_or(404u16)?;
        if self.tracks.iter().any(|t| t.index == track) {
            return Err(459);
        }
        let specs = req
            .headers
            .get("Transport")
            .ok_or(461u16)
            .and_then(|v| Transport::parse_list(v).map_err(|e| e.status()))?;
        let mut t = specs
            .into_iter()
            .find(|t| t.unicast && t.profile.eq_ignore_ascii_case("RTP/AVP"))
            .ok_or(461u16)?;
        match t.lower {
            Lower::Tcp => {
                let (a, b) = match t.interleaved {
                    Some(p) => p,
                    None => {
                        let a = (self.tracks.len() * 2).min(254) as u8;
                        (a, a + 1)
                    }
                };
                if self.tracks.iter().any(|s| {
                    s.transport
                        .interleaved
                        .is_some_and(|(x, y)| x == a || y == a || x == b || y == b)
                }) {
                    return Err(461);
                }
                t.interleaved = Some((a, b));
            }
            Lower::Udp => {
                if t.client_port.is_none() {
                    return Err(461);
                }
            }
        }
        Ok(Ask::Setup {
            track,
            transport: t,
        })
    }

    /// Which media section a SETUP URI names: the control URL, absolute or relative to the
    /// aggregate URI; a single-track session also takes the aggregate URI itself.
    fn track_for_uri(&self, uri: &str) -> Option<usize> {
        let uri = uri.trim_end_matches('/');
        for (i, c) in self.controls.iter().enumerate() {
            let c = c.trim_end_matches('/');
            if c.is_empty() || c == "*" {
                continue;
            }
            if uri == c || (uri.ends_with(c) && uri[..uri.len() - c.len()].ends_with('/')) {
                return Some(i);
            }
        }
        if self.controls.len() == 1 {
            return Some(0);
        }
        None
    }

    /// Gives the edge's decision on the pending question; returns the response to send.
    pub fn answer(&mut self, answer: Answer) -> Response {
        let Some(p) = self.pending.take() else {
            return self.reply(500, None);
        };
        let cseq = p.cseq;
        match (p.ask, answer) {
            (_, Answer::Describe(Err(s)))
            | (_, Answer::Announce(Err(s)))
            | (_, Answer::Setup(Err(s)))
            | (_, Answer::Play(Err(s)))
            | (_, Answer::Record(Err(s))) => self.reply(s, cseq),
            (Ask::Describe { .. }, Answer::Describe(Ok(sdp))) => {
                self.controls = controls_of(sdp.as_bytes());
                self.announced = false;
                let mut r = self.reply(200, cseq);
                let base = if p.uri.ends_with('/') {
                    p.uri.clone()
                } else {
                    format!("{}/", p.uri)
                };
                r.headers.push("Content-Base", base);
                r.with_body("application/sdp", sdp.into_bytes())
            }
            (Ask::Announce { sdp, .. }, Answer::Announce(Ok(()))) => {
                self.controls = controls_of(&sdp);
                if self.controls.is_empty() {
                    return self.reply(400, cseq);
                }
                self.announced = true;
                self.reply(200, cseq)
            }
            (Ask::Setup { track, .. }, Answer::Setup(Ok(transport))) => {
                if self.tracks.len() >= MAX_TRACKS {
                    return self.reply(453, cseq);
                }
                self.tracks.push(SetupTrack {
                    index: track,
                    transport: transport.clone(),
                });
                if self.state == State::Init {
                    self.state = State::Ready;
                }
                self.session_given = true;
                let mut r = self.reply(200, cseq);
                r.headers.push("Transport", transport.to_string());
                r
            }
            (Ask::Play { .. }, Answer::Play(Ok(info))) => {
                self.state = State::Playing;
                self.events.push_back(SessionEvent::Play);
                let mut r = self.reply(200, cseq);
                if let Some(range) = info.range {
                    r.headers.push("Range", range);
                }
                let base = p.uri.trim_end_matches('/');
                let parts: Vec<String> = info
                    .rtp_info
                    .iter()
                    .filter_map(|(t, seq, ts)| {
                        let c = self.controls.get(*t)?;
                        let url = if c.contains("://") {
                            c.clone()
                        } else {
                            format!("{base}/{c}")
                        };
                        Some(format!("url={url};seq={seq};rtptime={ts}"))
                    })
                    .collect();
                if !parts.is_empty() {
                    r.headers.push("RTP-Info", parts.join(","));
                }
                r
            }
            (Ask::Record, Answer::Record(Ok(()))) => {
                self.state = State::Recording;
                self.events.push_back(SessionEvent::Record);
                self.reply(200, cseq)
            }
            _ => self.reply(500, cseq),
        }
    }

    fn reply(&self, status: u16, cseq: Option<u32>) -> Response {
        let mut r = Response::new(status, cseq);
        r.version = self.version;
        r.headers.push("Server", self.config.server.clone());
        if self.session_given {
            r.headers.push(
                "Session",
                format!("{};timeout={}", self.config.session_id, self.config.timeout),
            );
        }
        r
    }
}

fn controls_of(sdp: &[u8]) -> Vec<String> {
    match SessionDescription::parse(sdp) {
        Ok(s) => s
            .media
            .iter()
            .take(MAX_TRACKS)
            .enumerate()
            .map(|(i, m)| m.control.clone().unwrap_or_else(|| format!("trackID={i}")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::message::{Decoder, Item, Message};

    fn req(text: &str) -> Request {
        let mut d = Decoder::default();
        d.push(text.as_bytes());
        match d.next_item().unwrap().unwrap() {
            Item::Message(Message::Request(r)) => r,
            o => panic!("{o:?}"),
        }
    }

    const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=control:streamid=1\r\n";

    #[test]
    fn ffmpeg_publish_over_tcp() {
        let mut s = ServerSession::new(ServerConfig {
            session_id: "abc".into(),
            ..ServerConfig::default()
        });
        let Step::Reply(r) = s.handle(&req("OPTIONS rtsp://h/live RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
        else {
            panic!()
        };
        assert_eq!(r.status, 200);
        let ann = format!("ANNOUNCE rtsp://h/live RTSP/1.0\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}", SDP.len());
        let Step::Ask(Ask::Announce { path, .. }) = s.handle(&req(&ann)) else {
            panic!()
        };
        assert_eq!(path, "/live");
        assert_eq!(s.answer(Answer::Announce(Ok(()))).status, 200);
        // RECORD before SETUP is out of state.
        let Step::Reply(r) = s.handle(&req("RECORD rtsp://h/live RTSP/1.0\r\nCSeq: 3\r\n\r\n"))
        else {
            panic!()
        };
        assert_eq!(r.status, 455);
        for (i, c) in [(0, 4), (1, 5)] {
            let text = format!("SETUP rtsp://h/live/streamid={i} RTSP/1.0\r\nCSeq: {c}\r\nTransport: RTP/AVP/TCP;unicast;interleaved={}-{};mode=record\r\n\r\n", i * 2, i * 2 + 1);
            let Step::Ask(Ask::Setup { track, transport }) = s.handle(&req(&text)) else {
                panic!()
            };
            assert_eq!(track, i);
            let r = s.answer(Answer::Setup(Ok(transport)));
            assert_eq!(r.status, 200);
            assert_eq!(r.headers.session_id(), Some("abc"));
        }
        assert_eq!(s.channel(3), Some((1, true)));
        assert_eq!(s.channel(0), Some((0, false)));
        assert_eq!(s.channel(7), None);
        let Step::Reply(r) = s.handle(&req(
            "RECORD rtsp://h/live RTSP/1.0\r\nCSeq: 6\r\nSession: wrong\r\n\r\n",
        )) else {
            panic!()
        };
        assert_eq!(r.status, 454);
        let Step::Ask(Ask::Record) = s.handle(&req(
            "RECORD rtsp://h/live RTSP/1.0\r\nCSeq: 7\r\nSession: abc\r\n\r\n",
        )) else {
            panic!()
        };
        assert_eq!(s.answer(Answer::Record(Ok(()))).status, 200);
        assert_eq!(s.poll_event(), Some(SessionEvent::Record));
        let Step::Reply(r) = s.handle(&req(
            "TEARDOWN rtsp://h/live RTSP/1.0\r\nCSeq: 8\r\nSession: abc\r\n\r\n",
        )) else {
            panic!()
        };
        assert_eq!(r.status, 200);
        assert_eq!(s.poll_event(), Some(SessionEvent::Teardown));
    }

    #[test]
    fn play_with_digest_and_udp() {
        let auth = Authenticator {
            user: "u".into(),
            password: "p".into(),
            realm: "r".into(),
            nonce: "n".into(),
            allow_basic: false,
        };
        let mut s = ServerSession::new(ServerConfig {
            auth: Some(auth),
            ..ServerConfig::default()
        });
        let Step::Reply(r) = s.handle(&req("DESCRIBE rtsp://h/live RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
        else {
            panic!()
        };
        assert_eq!(r.status, 401);
        let ch = crate::rtsp::DigestChallenge::parse(r.headers.get("WWW-Authenticate").unwrap())
            .unwrap();
        let a = ch.respond("u", "p", "DESCRIBE", "rtsp://h/live", "", 1);
        let text =
            format!("DESCRIBE rtsp://h/live RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {a}\r\n\r\n");
        let Step::Ask(Ask::Describe { path }) = s.handle(&req(&text)) else {
            panic!()
        };
        assert_eq!(path, "/live");
        let r = s.answer(Answer::Describe(Ok(SDP.into())));
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.get("Content-Base"), Some("rtsp://h/live/"));
        // ch offers qop=auth: each answer counts one up.
        assert!(ch.qop_auth);
        let a = ch.respond("u", "p", "SETUP", "rtsp://h/live/streamid=1", "c", 2);
        let text = format!("SETUP rtsp://h/live/streamid=1 RTSP/1.0\r\nCSeq: 3\r\nAuthorization: {a}\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n");
        let Step::Ask(Ask::Setup {
            track,
            mut transport,
        }) = s.handle(&req(&text))
        else {
            panic!()
        };
        assert_eq!(track, 1);
        transport.server_port = Some((6000, 6001));
        let r = s.answer(Answer::Setup(Ok(transport)));
        assert!(r
            .headers
            .get("Transport")
            .unwrap()
            .contains("server_port=6000-6001"));
        let a = ch.respond("u", "p", "PLAY", "rtsp://h/live/", "c", 3);
        let text = format!("PLAY rtsp://h/live/ RTSP/1.0\r\nCSeq: 4\r\nAuthorization: {a}\r\nSession: 00000000\r\nRange: npt=0.000-\r\n\r\n");
        let Step::Ask(Ask::Play { range }) = s.handle(&req(&text)) else {
            panic!()
        };
        assert_eq!(range.as_deref(), Some("npt=0.000-"));
        let r = s.answer(Answer::Play(Ok(PlayInfo {
            range: Some("npt=0.000-".into()),
            rtp_info: vec![(1, 100, 9000)],
        })));
        assert_eq!(
            r.headers.get("RTP-Info"),
            Some("url=rtsp://h/live/streamid=1;seq=100;rtptime=9000")
        );
        assert_eq!(s.poll_event(), Some(SessionEvent::Play));
        assert_eq!(s.state(), State::Playing);
    }

    #[test]
    fn digest_answers_are_bound_to_the_uri_and_counted() {
        let mut s = ServerSession::new(ServerConfig {
            auth: Some(Authenticator::new("u", "p", "r", "n".into(), false)),
            ..ServerConfig::default()
        });
        let describe = |cseq: u32, auth: &str| {
            req(&format!(
                "DESCRIBE rtsp://h/live RTSP/1.0\r\nCSeq: {cseq}\r\nAuthorization: {auth}\r\n\r\n"
            ))
        };
        let status = |step: Step| match step {
            Step::Reply(r) => r.status,
            Step::Ask(_) => 0,
        };
        let ch =
            crate::rtsp::DigestChallenge::parse(&s.config.auth.as_ref().unwrap().challenges()[0])
                .unwrap();
        assert!(ch.qop_auth, "qop=auth is offered");
        // Signed for another stream: refused, though the password is right.
        let other = ch.respond("u", "p", "DESCRIBE", "rtsp://h/other", "c", 1);
        assert_eq!(status(s.handle(&describe(1, &other))), 401);
        assert!(matches!(s.take_refusal(), Some(AuthCheck::Refused { .. })));
        // The same URI written as a path is the same resource.
        let path = ch.respond("u", "p", "DESCRIBE", "/live", "c", 1);
        assert_eq!(status(s.handle(&describe(2, &path))), 0);
        assert_eq!(s.answer(Answer::Describe(Err(404))).status, 404);
        // The same answer again (nonce count 1 again): a replay.
        assert_eq!(status(s.handle(&describe(3, &path))), 401);
        assert!(matches!(
            s.take_refusal(),
            Some(AuthCheck::Replayed { user }) if user == "u"
        ));
        // The next count goes.
        let next = ch.respond("u", "p", "DESCRIBE", "rtsp://h/live", "c", 2);
        assert_eq!(status(s.handle(&describe(4, &next))), 0);
        assert_eq!(s.answer(Answer::Describe(Err(404))).status, 404);
        // Without a qop (GStreamer): accepted, again and again (nothing to count).
        let plain = crate::rtsp::DigestChallenge {
            qop_auth: false,
            ..ch.clone()
        }
        .respond("u", "p", "DESCRIBE", "rtsp://h/live", "", 0);
        assert!(!plain.contains("qop"), "{plain}");
        for cseq in 5..7 {
            assert_eq!(status(s.handle(&describe(cseq, &plain))), 0);
            assert_eq!(s.answer(Answer::Describe(Err(404))).status, 404);
        }
        // A stale nonce is told once; the same stale answer again is a replay.
        s.auth_mut().unwrap().rotate("n2".into());
        assert_eq!(status(s.handle(&describe(7, &plain))), 401);
        assert_eq!(s.take_refusal(), Some(AuthCheck::Stale));
        assert_eq!(status(s.handle(&describe(8, &plain))), 401);
        assert!(matches!(s.take_refusal(), Some(AuthCheck::Replayed { .. })));
        // The new nonce starts its own count.
        let ch2 = crate::rtsp::DigestChallenge {
            nonce: "n2".into(),
            ..ch
        };
        let fresh = ch2.respond("u", "p", "DESCRIBE", "rtsp://h/live", "c", 1);
        assert_eq!(status(s.handle(&describe(9, &fresh))), 0);
    }

    #[test]
    fn credentials_learned_after_the_request() {
        // The edge knows a stream wants credentials only after the DESCRIBE named it.
        let mut s = ServerSession::new(ServerConfig::default());
        let Step::Ask(Ask::Describe { .. }) =
            s.handle(&req("DESCRIBE rtsp://h/live RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
        else {
            panic!()
        };
        s.set_auth(Some(Authenticator::new("u", "p", "r", "n".into(), false)));
        let r = s.recheck_pending().expect("a 401 instead");
        assert_eq!((r.status, r.headers.cseq()), (401, Some(1)));
        assert_eq!(s.take_refusal(), Some(AuthCheck::Missing));
        assert_eq!(s.take_refusal(), None);
        // The question was dropped: an answer now is a server error, not a 200.
        assert_eq!(s.answer(Answer::Describe(Ok(SDP.into()))).status, 500);
        let ch = crate::rtsp::DigestChallenge::parse(r.headers.get("WWW-Authenticate").unwrap())
            .unwrap();
        let wrong = ch.respond("u", "bad", "DESCRIBE", "rtsp://h/live", "", 1);
        let text =
            format!("DESCRIBE rtsp://h/live RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {wrong}\r\n\r\n");
        let Step::Reply(r) = s.handle(&req(&text)) else {
            panic!()
        };
        assert_eq!(r.status, 401);
        assert!(
            matches!(s.take_refusal(), Some(AuthCheck::Refused { user: Some(u), .. }) if u == "u")
        );
        let right = ch.respond("u", "p", "DESCRIBE", "rtsp://h/live", "", 1);
        let text =
            format!("DESCRIBE rtsp://h/live RTSP/1.0\r\nCSeq: 3\r\nAuthorization: {right}\r\n\r\n");
        let Step::Ask(Ask::Describe { .. }) = s.handle(&req(&text)) else {
            panic!()
        };
        assert_eq!(s.recheck_pending(), None);
        assert_eq!(s.answer(Answer::Describe(Ok(SDP.into()))).status, 200);
        // The nonce expires: the same answer is now stale, and the challenge says so.
        s.auth_mut().unwrap().rotate("n2".into());
        let old = ch.respond("u", "p", "SETUP", "rtsp://h/live/streamid=0", "", 1);
        let text = format!("SETUP rtsp://h/live/streamid=0 RTSP/1.0\r\nCSeq: 4\r\nAuthorization: {old}\r\nTransport: RTP/AVP/TCP;unicast\r\n\r\n");
        let Step::Reply(r) = s.handle(&req(&text)) else {
            panic!()
        };
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .get("WWW-Authenticate")
            .unwrap()
            .contains("stale=TRUE"));
        assert_eq!(s.take_refusal(), Some(AuthCheck::Stale));
    }

    #[test]
    fn out_of_order_and_unknown() {
        let mut s = ServerSession::new(ServerConfig::default());
        let Step::Reply(r) = s.handle(&req(
            "SETUP rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP\r\n\r\n",
        )) else {
            panic!()
        };
        assert_eq!(r.status, 455);
        let Step::Reply(r) = s.handle(&req("PLAY rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\n\r\n")) else {
            panic!()
        };
        assert_eq!(r.status, 455);
        let Step::Reply(r) = s.handle(&req("OPTIONS * RTSP/2.0\r\nCSeq: 9\r\n\r\n")) else {
            panic!()
        };
        assert_eq!(r.version, Version::V2_0);
        let Step::Reply(r) = s.handle(&req(
            "DESCRIBE rtsp://h/x RTSP/1.0\r\nCSeq: 10\r\nRequire: play.basic\r\n\r\n",
        )) else {
            panic!()
        };
        assert_eq!(
            (r.status, r.headers.get("Unsupported")),
            (551, Some("play.basic"))
        );
        let Step::Reply(r) = s.handle(&req("FOO rtsp://h/x RTSP/1.0\r\nCSeq: 3\r\n\r\n")) else {
            panic!()
        };
        assert_eq!(r.status, 501);
        assert_eq!(s.answer(Answer::Record(Ok(()))).status, 500);
    }
}
