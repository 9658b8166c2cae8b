//! An RTSP client that pulls a camera (RFC 2326), sans-IO.
//!
//! ```text
//! OPTIONS ─▶ DESCRIBE (401 ─▶ again with Digest or Basic) ─▶ SETUP per track (interleaved TCP,
//!        or UDP to the edge's port pairs) ─▶ PLAY ─▶ keep-alive (GET_PARAMETER, or OPTIONS if refused) every timeout/2 ─▶ TEARDOWN
//! ```
//!
//! The IO edge hands received bytes to [`Client::feed`], writes what [`Client::poll_output`]
//! gives, calls [`Client::tick`] at [`Client::next_deadline`] and acts on the
//! [`ClientEvent`]s: the described tracks, then RTP/RTCP packets by media-section index.
//!
//! Over UDP ([`Client::with_udp`]) the edge owns the sockets: track `i` is set up to the `i`th
//! port pair it gave, and what arrives there belongs to media section [`Client::track_index`]`(i)`.
//! A server that refuses UDP ([`ClientError::UdpRefused`]) or a camera with more tracks than pairs
//! ([`ClientError::NeedPorts`]) ends the pull; the edge then tries again over TCP or with more
//! pairs.

use super::message::{Decoder, Item, Limits, Message, Method, Request, Response};
use super::transport::{Lower, Transport};
use super::{DigestChallenge, RtspError};
use crate::sdp::{RtpTrack, SessionDescription};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What makes a pull fail.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// Not `rtsp://[user[:pass]@]host[:port]/path`.
    #[error("bad RTSP URL {0:?}")]
    BadUrl(String),
    /// The server's bytes are not RTSP we can read.
    #[error(transparent)]
    Protocol(#[from] RtspError),
    /// A request was answered with an error status (other than 401 with credentials to try).
    #[error("{method} answered {status} {reason}")]
    Status {
        /// The request's method.
        method: String,
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// 401 again after the credentials were sent: they are wrong (for this user).
    #[error("authentication refused (401) for user {0:?}")]
    Unauthorized(String),
    /// DESCRIBE gave no section with a codec and payload format we can depacketise.
    #[error("the camera's SDP has no track we can take: {0}")]
    NoTracks(String),
    /// SETUP over TCP was answered without `interleaved=`: there is no way to tell the channels.
    #[error("the server answered SETUP without interleaved channels")]
    NoInterleave,
    /// SETUP over UDP was answered with this status (the edge may fall back to TCP).
    #[error("SETUP over UDP answered {0}")]
    UdpRefused(u16),
    /// UDP was asked for with fewer port pairs than tracks.
    #[error("{0} tracks need as many UDP port pairs")]
    NeedPorts(usize),
}

/// The parts of `rtsp://[user[:pass]@]host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspUrl {
    /// Host name or address (without the brackets of an IPv6 literal).
    pub host: String,
    /// Port (554 when the URL names none).
    pub port: u16,
    /// The URL without credentials: what requests name.
    pub url: String,
    /// User from the URL, percent-decoded; sent only when the server asks.
    pub user: Option<String>,
    /// Password from the URL, percent-decoded.
    pub password: Option<String>,
}

impl RtspUrl {
    /// Parses an `rtsp://` URL; credentials are taken out of [`RtspUrl::url`] so they never
    /// reach a request line or a log.
    pub fn parse(s: &str) -> Result<RtspUrl, ClientError> {
        let bad = || ClientError::BadUrl(s.to_string());
        let rest = s
            .strip_prefix("rtsp://")
            .or_else(|| s.strip_prefix("RTSP://"))
            .ok_or_else(bad)?;
        let (auth, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (cred, hostport) = match auth.rfind('@') {
            Some(i) => (Some(&auth[..i]), &auth[i + 1..]),
            None => (None, auth),
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h.split_once(']').ok_or_else(bad)?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace()) {
            return Err(bad());
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => 554,
        };
        let (user, password) = match cred {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (Some(pct(u)), Some(pct(p))),
                None => (Some(pct(c)), None),
            },
            None => (None, None),
        };
        let shown = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:{port}")
        };
        Ok(RtspUrl {
            host,
            port,
            url: format!("rtsp://{shown}{path}"),
            user,
            password,
        })
    }
}

fn pct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the IO edge acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// DESCRIBE answered: the tracks we take, by media-section index.
    Described {
        /// (media-section index, track): the index is what [`ClientEvent::Packet`] names.
        tracks: Vec<(usize, RtpTrack)>,
    },
    /// PLAY answered: packets follow.
    Playing,
    /// One RTP (or RTCP) packet of media section `index`.
    Packet {
        /// Media-section index, as in [`ClientEvent::Described`].
        index: usize,
        /// An RTCP packet (odd interleaved channel, or the second port) rather than RTP.
        rtcp: bool,
        /// The packet as received.
        data: Bytes,
    },
    /// The pull cannot go on; the edge closes the connection (and may reconnect).
    Failed(ClientError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Options,
    Describe,
    Setup(usize),
    Play,
    Playing,
    Teardown,
    Done,
}

#[derive(Debug, Clone)]
enum Auth {
    Basic,
    Digest(DigestChallenge),
}

/// Default keep-alive period when the server names no session timeout (60 s / 2).
const DEFAULT_TIMEOUT: u32 = 60;

/// One pull over one RTSP connection.
pub struct Client {
    url: RtspUrl,
    state: State,
    decoder: Decoder,
    cseq: u32,
    /// The CSeq of the request in flight and its method (keep-alives included).
    pending: Option<(u32, Method)>,
    auth: Option<Auth>,
    auth_tried: bool,
    nc: u32,
    base: String,
    /// (media index, control URI) of each track to set up.
    tracks: Vec<(usize, String)>,
    /// Interleaved channel pairs, by track position (`None`: that track comes over UDP).
    channels: Vec<Option<(u8, u8)>>,
    /// UDP mode: the edge's (RTP, RTCP) port pair for each track position.
    udp_ports: Vec<(u16, u16)>,
    /// UDP mode: the server's port pairs, by track position, where it named them.
    server_ports: Vec<Option<(u16, u16)>>,
    session: Option<String>,
    timeout_s: u32,
    keepalive_at: Option<Instant>,
    get_parameter: bool,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    user_agent: String,
}

impl Client {
    /// A client for `url` that takes media interleaved on the RTSP connection; the first request
    /// (OPTIONS) is queued.
    pub fn new(url: RtspUrl, user_agent: &str) -> Client {
        Client::with_udp(url, user_agent, Vec::new())
    }

    /// A client that asks for media over UDP, track `i` to the edge's port pair `ports[i]`
    /// (RTP, RTCP). No pairs: interleaved TCP, as [`Client::new`].
    pub fn with_udp(url: RtspUrl, user_agent: &str, ports: Vec<(u16, u16)>) -> Client {
        let mut c = Client {
            base: url.url.clone(),
            url,
            state: State::Options,
            decoder: Decoder::new(Limits::default()),
            cseq: 0,
            pending: None,
            auth: None,
            auth_tried: false,
            nc: 0,
            tracks: Vec::new(),
            channels: Vec::new(),
            udp_ports: ports,
            server_ports: Vec::new(),
            session: None,
            timeout_s: DEFAULT_TIMEOUT,
            keepalive_at: None,
            get_parameter: true,
            out: VecDeque::new(),
            events: VecDeque::new(),
            user_agent: user_agent.to_string(),
        };
        let u = c.url.url.clone();
        c.send(Method::Options, &u, |_| {});
        c
    }

    /// Whether media was asked for over UDP.
    pub fn is_udp(&self) -> bool {
        !self.udp_ports.is_empty()
    }

    /// The media-section index of track position `pos` (the `pos`th SETUP, the `pos`th UDP port
    /// pair).
    pub fn track_index(&self, pos: usize) -> Option<usize> {
        self.tracks.get(pos).map(|t| t.0)
    }

    /// UDP mode: the server's (RTP, RTCP) ports of track position `pos`, if it named them.
    pub fn server_ports(&self, pos: usize) -> Option<(u16, u16)> {
        self.server_ports.get(pos).copied().flatten()
    }

    /// Queues `packet` (RTCP, e.g. a receiver report) for the server on the interleaved RTCP
    /// channel of media section `index`; false when that track does not come interleaved (or
    /// the packet is too big for a frame).
    pub fn send_rtcp(&mut self, index: usize, packet: &[u8]) -> bool {
        let Some(pos) = self.tracks.iter().position(|t| t.0 == index) else {
            return false;
        };
        let Some(Some((_, ch))) = self.channels.get(pos) else {
            return false;
        };
        match super::message::interleaved_frame(*ch, packet) {
            Some(f) => {
                self.out.push_back(f);
                true
            }
            None => false,
        }
    }

    /// Whether PLAY was answered and media flows.
    pub fn is_playing(&self) -> bool {
        self.state == State::Playing
    }

    /// Bytes to write to the connection.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event for the edge.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Client::tick`] wants to run (the next keep-alive).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.keepalive_at
    }

    /// Sends a keep-alive when due.
    pub fn tick(&mut self, now: Instant) {
        if self.state != State::Playing || self.keepalive_at.is_none_or(|t| now < t) {
            return;
        }
        let u = self.base.clone();
        let m = if self.get_parameter {
            Method::GetParameter
        } else {
            Method::Options
        };
        self.send(m, &u, |_| {});
        self.keepalive_at = Some(now + self.keepalive_period());
    }

    fn keepalive_period(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_s.clamp(2, 3600) / 2))
    }

    /// Ends the session politely (the edge closes once the output is written).
    pub fn teardown(&mut self) {
        if self.session.is_some() && self.state != State::Done {
            let u = self.base.clone();
            self.send(Method::Teardown, &u, |_| {});
        }
        self.state = State::Teardown;
        self.keepalive_at = None;
    }

    fn send(&mut self, method: Method, uri: &str, extra: impl FnOnce(&mut Request)) {
        self.cseq += 1;
        let mut r = Request::new(method.clone(), uri, self.cseq);
        r.headers.push("User-Agent", self.user_agent.clone());
        if let Some(s) = &self.session {
            r.headers.push("Session", s.clone());
        }
        if let Some(a) = self.authorization(method.as_str(), uri) {
            r.headers.push("Authorization", a);
        }
        extra(&mut r);
        self.pending = Some((self.cseq, method));
        self.out.push_back(r.to_bytes());
    }

    fn authorization(&mut self, method: &str, uri: &str) -> Option<String> {
        let user = self.url.user.clone()?;
        let pass = self.url.password.clone().unwrap_or_default();
        match self.auth.as_ref()? {
            Auth::Basic => Some(format!(
                "Basic {}",
                super::auth::base64_encode(format!("{user}:{pass}").as_bytes())
            )),
            Auth::Digest(ch) => {
                self.nc += 1;
                let cnonce = format!("{:08x}", self.cseq.wrapping_mul(2_654_435_761));
                Some(ch.respond(&user, &pass, method, uri, &cnonce, self.nc))
            }
        }
    }

    /// Bytes read from the connection. Framing errors are fatal (also reported as
    /// [`ClientEvent::Failed`]).
    pub fn feed(&mut self, data: &[u8], now: Instant) -> Result<(), ClientError> {
        self.decoder.push(data);
        loop {
            let item = match self.decoder.next_item() {
                Ok(Some(i)) => i,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.fail(e.into())),
            };
            match item {
                Item::Interleaved { channel, data } => {
                    let hit = self.channels.iter().enumerate().find_map(|(i, c)| {
                        let (a, b) = (*c)?;
                        (channel == a || channel == b).then_some((i, channel == b))
                    });
                    if let Some((i, rtcp)) = hit {
                        if let Some((index, _)) = self.tracks.get(i) {
                            self.events.push_back(ClientEvent::Packet {
                                index: *index,
                                rtcp,
                                data,
                            });
                        }
                    }
                }
                Item::Message(Message::Response(r)) => {
                    if let Err(e) = self.response(r, now) {
                        return Err(self.fail(e));
                    }
                }
                // Servers may send requests (e.g. ANNOUNCE, GET_PARAMETER); not implemented here.
                Item::Message(Message::Request(q)) => {
                    let mut r = Response::new(501, q.headers.cseq());
                    if let Some(s) = &self.session {
                        r.headers.push("Session", s.clone());
                    }
                    self.out.push_back(r.to_bytes());
                }
            }
        }
    }

    fn fail(&mut self, e: ClientError) -> ClientError {
        self.state = State::Done;
        self.keepalive_at = None;
        self.events.push_back(ClientEvent::Failed(e.clone()));
        e
    }

    fn response(&mut self, r: Response, now: Instant) -> Result<(), ClientError> {
        let Some((cseq, method)) = self.pending.clone() else {
            return Ok(());
        };
        if r.headers.cseq().is_some_and(|c| c != cseq) {
            return Ok(()); // a late answer to an earlier request
        }
        self.pending = None;
        let status_err = |r: &Response| ClientError::Status {
            method: method.as_str().to_string(),
            status: r.status,
            reason: r.reason.clone(),
        };
        if r.status == 401 && self.state != State::Playing {
            return self.unauthorized(&r, &method);
        }
        match self.state {
            State::Options => {
                // Some cameras refuse OPTIONS; DESCRIBE is what counts.
                let u = self.url.url.clone();
                self.state = State::Describe;
                self.send(Method::Describe, &u, |q| {
                    q.headers.push("Accept", "application/sdp")
                });
            }
            State::Describe => {
                if r.status != 200 {
                    return Err(status_err(&r));
                }
                self.described(&r)?;
            }
            State::Setup(i) => {
                if r.status != 200 && self.is_udp() {
                    return Err(ClientError::UdpRefused(r.status));
                }
                if r.status != 200 {
                    return Err(status_err(&r));
                }
                if let Some(s) = r.headers.session_id() {
                    self.session = Some(s.to_string());
                }
                if let Some(t) = r.headers.session_timeout() {
                    self.timeout_s = t;
                }
                let t = r
                    .headers
                    .get("Transport")
                    .and_then(|v| Transport::parse_list(v).ok())
                    .and_then(|l| l.into_iter().next());
                let interleaved = t.as_ref().and_then(|t| t.interleaved);
                match interleaved {
                    // Asked for UDP, the server may still choose interleaved TCP.
                    Some(p) => {
                        self.channels.push(Some(p));
                        self.server_ports.push(None);
                    }
                    None if self.is_udp() => {
                        if t.as_ref().is_some_and(|t| t.lower == Lower::Tcp) {
                            return Err(ClientError::NoInterleave);
                        }
                        self.channels.push(None);
                        self.server_ports.push(t.and_then(|t| t.server_port));
                    }
                    None => return Err(ClientError::NoInterleave),
                }
                self.setup_next(i + 1);
            }
            State::Play => {
                if r.status != 200 {
                    return Err(status_err(&r));
                }
                self.state = State::Playing;
                self.keepalive_at = Some(now + self.keepalive_period());
                self.events.push_back(ClientEvent::Playing);
            }
            State::Playing => {
                if method == Method::GetParameter && r.status != 200 {
                    // Keep-alive with OPTIONS from now on.
                    self.get_parameter = false;
                }
            }
            State::Teardown | State::Done => {}
        }
        Ok(())
    }

    fn unauthorized(&mut self, r: &Response, method: &Method) -> Result<(), ClientError> {
        let user = self.url.user.clone().unwrap_or_default();
        if self.url.user.is_none() {
            return Err(ClientError::Unauthorized(user));
        }
        let mut auth = None;
        for v in r.headers.get_all("WWW-Authenticate") {
            let v = v.trim();
            let (scheme, _) = v.split_once(' ').unwrap_or((v, ""));
            if scheme.eq_ignore_ascii_case("Digest") {
                if let Ok(c) = DigestChallenge::parse(v) {
                    auth = Some(Auth::Digest(c));
                    break;
                }
            } else if scheme.eq_ignore_ascii_case("Basic") && auth.is_none() {
                auth = Some(Auth::Basic);
            }
        }
        let stale = matches!(&auth, Some(Auth::Digest(c)) if c.stale);
        let Some(auth) = auth.filter(|_| !self.auth_tried || stale) else {
            return Err(ClientError::Unauthorized(user));
        };
        self.auth = Some(auth);
        self.auth_tried = true;
        self.nc = 0;
        // The same request again, with credentials.
        let uri = match self.state {
            State::Setup(i) => self.tracks.get(i).map(|t| t.1.clone()).unwrap_or_default(),
            State::Options | State::Describe => self.url.url.clone(),
            _ => self.base.clone(),
        };
        match self.state {
            State::Describe => self.send(Method::Describe, &uri, |q| {
                q.headers.push("Accept", "application/sdp")
            }),
            State::Setup(i) => self.setup_next(i),
            State::Play => self.play(),
            _ => self.send(method.clone(), &uri, |_| {}),
        }
        Ok(())
    }

    fn described(&mut self, r: &Response) -> Result<(), ClientError> {
        if let Some(b) = r
            .headers
            .get("Content-Base")
            .or_else(|| r.headers.get("Content-Location"))
        {
            self.base = b.trim().to_string();
        }
        let sdp =
            SessionDescription::parse(&r.body).map_err(|e| ClientError::NoTracks(e.to_string()))?;
        let mut tracks = Vec::new();
        for (i, m) in sdp.media.iter().enumerate() {
            if let Ok(t) = m.rtp_track(i as u32 + 1) {
                let control = m.control.clone().unwrap_or_default();
                self.tracks
                    .push((i, resolve(&self.base, sdp.control.as_deref(), &control)));
                tracks.push((i, t));
            }
        }
        if tracks.is_empty() {
            return Err(ClientError::NoTracks(format!(
                "{} media section(s)",
                sdp.media.len()
            )));
        }
        if self.is_udp() && tracks.len() > self.udp_ports.len() {
            return Err(ClientError::NeedPorts(tracks.len()));
        }
        self.events.push_back(ClientEvent::Described { tracks });
        self.setup_next(0);
        Ok(())
    }

    fn setup_next(&mut self, i: usize) {
        let Some((_, uri)) = self.tracks.get(i).cloned() else {
            self.play();
            return;
        };
        self.state = State::Setup(i);
        let t = match self.udp_ports.get(i) {
            Some(&ports) => {
                let mut t = Transport::new(Lower::Udp);
                t.client_port = Some(ports);
                t
            }
            None => {
                let mut t = Transport::new(Lower::Tcp);
                let ch = (i * 2).min(254) as u8;
                t.interleaved = Some((ch, ch + 1));
                t
            }
        };
        let tv = t.to_string();
        self.send(Method::Setup, &uri, |q| q.headers.push("Transport", tv));
    }

    fn play(&mut self) {
        self.state = State::Play;
        let u = self.base.clone();
        self.send(Method::Play, &u, |q| q.headers.push("Range", "npt=0.000-"));
    }
}

/// A track's control URI: absolute, or relative to the base (RFC 2326 C.1.1).
fn resolve(base: &str, session_control: Option<&str>, control: &str) -> String {
    if control.contains("://") {
        return control.to_string();
    }
    let base = match session_control {
        Some(s) if s.contains("://") => s,
        _ => base,
    };
    if control.is_empty() || control == "*" {
        return base.to_string();
    }
    if base.ends_with('/') {
        format!("{base}{control}")
    } else {
        format!("{base}/{control}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn all_out(c: &mut Client) -> String {
        let mut s = String::new();
        while let Some(b) = c.poll_output() {
            s.push_str(&text(&b));
        }
        s
    }

    const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\na=control:*\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=1\r\n\
m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\n\
a=control:trackID=2\r\n";

    fn answer(c: &mut Client, now: Instant, head: &str, body: &str) {
        let s = if body.is_empty() {
            format!("{head}\r\n\r\n")
        } else {
            format!("{head}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        };
        c.feed(s.as_bytes(), now).unwrap();
    }

    #[test]
    fn urls() {
        let u = RtspUrl::parse("rtsp://ad%40m:p:w@cam.local:8554/live/1?x=y").unwrap();
        assert_eq!(u.host, "cam.local");
        assert_eq!(u.port, 8554);
        assert_eq!(u.user.as_deref(), Some("ad@m"));
        assert_eq!(u.password.as_deref(), Some("p:w"));
        assert_eq!(u.url, "rtsp://cam.local:8554/live/1?x=y");
        let u = RtspUrl::parse("rtsp://10.0.0.1").unwrap();
        assert_eq!((u.port, u.url.as_str()), (554, "rtsp://10.0.0.1:554/"));
        assert!(RtspUrl::parse("http://x/").is_err());
        assert!(RtspUrl::parse("rtsp://h:99999/").is_err());
        assert!(RtspUrl::parse("rtsp:///x").is_err());
    }

    #[test]
    fn digest_describe_setup_play_keepalive_teardown() {
        let t0 = Instant::now();
        let url = RtspUrl::parse("rtsp://u:pw@127.0.0.1:8554/cam").unwrap();
        let mut c = Client::new(url, "test");
        let o = all_out(&mut c);
        assert!(
            o.starts_with("OPTIONS rtsp://127.0.0.1:8554/cam RTSP/1.0\r\n"),
            "{o}"
        );
        assert!(o.contains("CSeq: 1\r\n"));
        answer(
            &mut c,
            t0,
            "RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: DESCRIBE, SETUP",
            "",
        );
        let o = all_out(&mut c);
        assert!(
            o.starts_with("DESCRIBE rtsp://127.0.0.1:8554/cam RTSP/1.0"),
            "{o}"
        );
        assert!(!o.contains("Authorization"));
        answer(
            &mut c,
            t0,
            "RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Basic realm=\"r\"\r\n\
WWW-Authenticate: Digest realm=\"r\", nonce=\"abc\"",
            "",
        );
        let o = all_out(&mut c);
        assert!(o.starts_with("DESCRIBE "), "{o}");
        let ch = DigestChallenge::parse("Digest realm=\"r\", nonce=\"abc\"").unwrap();
        let want = ch.respond("u", "pw", "DESCRIBE", "rtsp://127.0.0.1:8554/cam", "", 1);
        assert!(o.contains(&format!("Authorization: {want}\r\n")), "{o}");
        answer(
            &mut c,
            t0,
            "RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Base: rtsp://127.0.0.1:8554/cam/\r\nContent-Type: application/sdp",
            SDP,
        );
        match c.poll_event() {
            Some(ClientEvent::Described { tracks }) => {
                assert_eq!(tracks.iter().map(|t| t.0).collect::<Vec<_>>(), [0, 1]);
            }
            e => panic!("{e:?}"),
        }
        let o = all_out(&mut c);
        assert!(
            o.starts_with("SETUP rtsp://127.0.0.1:8554/cam/trackID=1 RTSP/1.0"),
            "{o}"
        );
        assert!(
            o.contains("Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"),
            "{o}"
        );
        assert!(o.contains("Authorization: Digest username=\"u\""), "{o}");
        answer(
            &mut c,
            t0,
            "RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: s1;timeout=20\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1",
            "",
        );
        let o = all_out(&mut c);
        assert!(
            o.starts_with("SETUP rtsp://127.0.0.1:8554/cam/trackID=2 "),
            "{o}"
        );
        assert!(o.contains("interleaved=2-3"), "{o}");
        assert!(o.contains("Session: s1\r\n"), "{o}");
        answer(
            &mut c,
            t0,
            "RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: s1;timeout=20\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3",
            "",
        );
        let o = all_out(&mut c);
        assert!(o.starts_with("PLAY rtsp://127.0.0.1:8554/cam/ "), "{o}");
        answer(&mut c, t0, "RTSP/1.0 200 OK\r\nCSeq: 6\r\nSession: s1", "");
        assert_eq!(c.poll_event(), Some(ClientEvent::Playing));
        assert!(c.is_playing());
        // Media: channel 2 is track index 1's RTP, channel 1 track 0's RTCP; channel 9 is nobody's.
        c.feed(b"$\x02\x00\x03abc$\x01\x00\x01x$\x09\x00\x01y", t0)
            .unwrap();
        assert_eq!(
            c.poll_event(),
            Some(ClientEvent::Packet {
                index: 1,
                rtcp: false,
                data: Bytes::from_static(b"abc")
            })
        );
        assert_eq!(
            c.poll_event(),
            Some(ClientEvent::Packet {
                index: 0,
                rtcp: true,
                data: Bytes::from_static(b"x")
            })
        );
        assert_eq!(c.poll_event(), None);
        // Keep-alive every timeout/2 = 10 s: GET_PARAMETER, then OPTIONS once it is refused.
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(10)));
        c.tick(t0 + Duration::from_secs(9));
        assert!(c.poll_output().is_none());
        let t1 = t0 + Duration::from_secs(10);
        c.tick(t1);
        let o = all_out(&mut c);
        assert!(
            o.starts_with("GET_PARAMETER rtsp://127.0.0.1:8554/cam/ "),
            "{o}"
        );
        assert!(o.contains("Session: s1\r\n"));
        answer(&mut c, t1, "RTSP/1.0 501 Not Implemented\r\nCSeq: 7", "");
        let t2 = t1 + Duration::from_secs(10);
        c.tick(t2);
        assert!(all_out(&mut c).starts_with("OPTIONS "));
        c.teardown();
        let o = all_out(&mut c);
        assert!(o.starts_with("TEARDOWN rtsp://127.0.0.1:8554/cam/ "), "{o}");
        assert!(o.contains("Session: s1\r\n"));
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn udp_setup_refusal_and_port_shortage() {
        let t0 = Instant::now();
        let url = RtspUrl::parse("rtsp://127.0.0.1:8554/cam").unwrap();
        let describe = |c: &mut Client| {
            all_out(c);
            answer(c, t0, "RTSP/1.0 200 OK\r\nCSeq: 1", "");
            all_out(c);
            answer(
                c,
                t0,
                "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://127.0.0.1:8554/cam/",
                SDP,
            );
        };
        let mut c = Client::with_udp(url.clone(), "t", vec![(5000, 5001), (5002, 5003)]);
        assert!(c.is_udp());
        describe(&mut c);
        assert!(matches!(
            c.poll_event(),
            Some(ClientEvent::Described { .. })
        ));
        let o = all_out(&mut c);
        assert!(
            o.contains("Transport: RTP/AVP;unicast;client_port=5000-5001\r\n"),
            "{o}"
        );
        answer(
            &mut c,
            t0,
            "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: s;timeout=30\r\nTransport: RTP/AVP;unicast;client_port=5000-5001;server_port=7000-7001",
            "",
        );
        let o = all_out(&mut c);
        assert!(o.contains("client_port=5002-5003"), "{o}");
        // The second track the server puts on the TCP connection anyway.
        answer(
            &mut c,
            t0,
            "RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3",
            "",
        );
        assert!(all_out(&mut c).starts_with("PLAY "));
        answer(&mut c, t0, "RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: s", "");
        assert_eq!(c.poll_event(), Some(ClientEvent::Playing));
        assert_eq!((c.track_index(0), c.track_index(1)), (Some(0), Some(1)));
        assert_eq!(c.server_ports(0), Some((7000, 7001)));
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(15)));
        c.feed(b"$\x02\x00\x01z$\x00\x00\x01w", t0).unwrap();
        assert!(matches!(
            c.poll_event(),
            Some(ClientEvent::Packet {
                index: 1,
                rtcp: false,
                ..
            })
        ));
        assert_eq!(
            c.poll_event(),
            None,
            "channel 0 is not set up: track 0 is on UDP"
        );

        // UDP refused: the edge is told to go to TCP.
        let mut c = Client::with_udp(url.clone(), "t", vec![(5000, 5001), (5002, 5003)]);
        describe(&mut c);
        c.poll_event();
        let r = c.feed(b"RTSP/1.0 461 Unsupported Transport\r\nCSeq: 3\r\n\r\n", t0);
        assert_eq!(r, Err(ClientError::UdpRefused(461)));
        // Two tracks, one pair: the edge needs to bind more.
        let mut c = Client::with_udp(url, "t", vec![(5000, 5001)]);
        all_out(&mut c);
        answer(&mut c, t0, "RTSP/1.0 200 OK\r\nCSeq: 1", "");
        let r = c.feed(
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{SDP}",
                SDP.len()
            )
            .as_bytes(),
            t0,
        );
        assert_eq!(r, Err(ClientError::NeedPorts(2)));
    }

    #[test]
    fn basic_auth_and_refusals() {
        let t0 = Instant::now();
        let mut c = Client::new(RtspUrl::parse("rtsp://u:pw@h/c").unwrap(), "t");
        all_out(&mut c);
        answer(&mut c, t0, "RTSP/1.0 200 OK\r\nCSeq: 1", "");
        all_out(&mut c);
        answer(
            &mut c,
            t0,
            "RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Basic realm=\"x\"",
            "",
        );
        let o = all_out(&mut c);
        assert!(o.contains("Authorization: Basic dTpwdw==\r\n"), "{o}");
        // Wrong password: a second 401 ends the pull.
        let r = c.feed(
            b"RTSP/1.0 401 Unauthorized\r\nCSeq: 3\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n",
            t0,
        );
        assert_eq!(r, Err(ClientError::Unauthorized("u".into())));
        assert!(matches!(c.poll_event(), Some(ClientEvent::Failed(_))));

        // No credentials: the first 401 ends it.
        let mut c = Client::new(RtspUrl::parse("rtsp://h/c").unwrap(), "t");
        all_out(&mut c);
        answer(&mut c, t0, "RTSP/1.0 200 OK\r\nCSeq: 1", "");
        assert!(c
            .feed(b"RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\n\r\n", t0)
            .is_err());

        // 404 on DESCRIBE, and an SDP without usable tracks.
        let mut c = Client::new(RtspUrl::parse("rtsp://h/c").unwrap(), "t");
        answer(&mut c, t0, "RTSP/1.0 200 OK\r\nCSeq: 1", "");
        let r = c.feed(b"RTSP/1.0 404 Not Found\r\nCSeq: 2\r\n\r\n", t0);
        assert!(matches!(r, Err(ClientError::Status { status: 404, .. })));
        let mut c = Client::new(RtspUrl::parse("rtsp://h/c").unwrap(), "t");
        answer(&mut c, t0, "RTSP/1.0 200 OK\r\nCSeq: 1", "");
        let sdp = "v=0\r\ns=x\r\nm=text 0 RTP/AVP 98\r\na=rtpmap:98 T140/1000\r\n";
        let r = c.feed(
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
            .as_bytes(),
            t0,
        );
        assert!(matches!(r, Err(ClientError::NoTracks(_))), "{r:?}");
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let t0 = Instant::now();
        let mut c = Client::new(RtspUrl::parse("rtsp://h/c").unwrap(), "t");
        let r = c.feed(&[b'x'; 100_000], t0);
        assert!(
            matches!(r, Err(ClientError::Protocol(RtspError::LineTooLong { .. }))),
            "{r:?}"
        );
        let mut c = Client::new(RtspUrl::parse("rtsp://h/c").unwrap(), "t");
        let r = c.feed(
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 99999999999\r\n\r\n",
            t0,
        );
        assert!(
            matches!(
                r,
                Err(ClientError::Protocol(RtspError::BodyTooLarge { .. }))
            ),
            "{r:?}"
        );
        // Random bytes: waited on, taken as interleaved data, or refused as bad RTSP.
        let mut seed = 7u32;
        for _ in 0..200 {
            let mut c = Client::new(RtspUrl::parse("rtsp://h/c").unwrap(), "t");
            let mut buf = Vec::new();
            for _ in 0..300 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                buf.push((seed >> 16) as u8);
            }
            let r = c.feed(&buf, t0);
            assert!(matches!(r, Ok(()) | Err(ClientError::Protocol(_))), "{r:?}");
        }
    }

    #[test]
    fn rtcp_goes_out_on_the_rtcp_channel_of_its_track() {
        let url = RtspUrl::parse("rtsp://127.0.0.1/cam").unwrap();
        let mut c = Client::new(url, "t");
        let now = Instant::now();
        answer(
            &mut c,
            now,
            "RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: DESCRIBE, SETUP, PLAY",
            "",
        );
        answer(
            &mut c,
            now,
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://127.0.0.1/cam/\r\nContent-Type: application/sdp",
            SDP,
        );
        // The server picks its own channels for the second track.
        answer(&mut c, now, "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1", "");
        answer(&mut c, now, "RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=6-7", "");
        while c.poll_output().is_some() {}
        assert!(c.send_rtcp(1, &[0x81, 201, 0, 1, 1, 2, 3, 4]));
        assert_eq!(
            c.poll_output().unwrap(),
            vec![b'$', 7, 0, 8, 0x81, 201, 0, 1, 1, 2, 3, 4]
        );
        assert!(c.send_rtcp(0, &[1]));
        assert_eq!(c.poll_output().unwrap()[..2], [b'$', 1]);
        assert!(!c.send_rtcp(5, &[1]), "no such track");
        assert!(!c.send_rtcp(0, &vec![0; 70_000]), "too big for a frame");
    }
}
