//! MistOutHTTP: the HTTP connector. One connector runtime loop (mist_net::server) serves every HTTP-based
//! format of every stream; per (stream, format, track selection) one shared-memory reader and one
//! muxer feed all viewers ([`source::Feed`]).
//!
//! Also the muxing front end of the standalone binaries (MistOutTS, MistOutFLV, …; see
//! [`standalone`]).

pub mod cli;
pub mod cmaf;
pub mod gate;
pub mod hls;
pub mod https;
pub mod mux;
pub mod routes;
pub mod segmented;
pub mod segmented_formats;
/// Moved to [`crate::feed`] (shared by every connector); the old path stays.
pub use crate::feed as source;
pub mod standalone;
pub mod tkn;
pub mod to_dir;
pub mod viewer_sessions;
pub mod vod;

use mist_core::control::{self, Request};
use mist_core::names;
use mist_net::http::Request as HttpRequest;
use mist_net::server::{ConnId, Handler, Io, Server, ServerConfig};
use mux::Format;
use serde_json::{json, Value};
use source::{Feed, Source};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connector names (config protocols) MistOutHTTP can serve.
pub const SERVED: [&str; 8] = ["HTTPTS", "FLV", "MP4", "EBML", "MP3", "AAC", "HLS", "CMAF"];

/// How long a request for a stream that is not active waits for it.
pub const STREAM_WAIT: Duration = Duration::from_secs(5);

/// Options of MistOutHTTP.
#[derive(Debug, Clone)]
pub struct Options {
    /// TCP port to listen on.
    pub port: u16,
    /// Address to listen on (`0.0.0.0`: every interface).
    pub interface: String,
    /// `TOKEN:VALIDATION` pairs (space-separated) for `/.well-known/acme-challenge/TOKEN`.
    pub certbot: Option<String>,
    /// Fixed list of enabled connectors (`--formats`); None: ask the controller, or all.
    pub formats: Option<Vec<String>>,
    /// Merged writes of progressive streams (`--merge-ms`).
    pub merge: std::time::Duration,
    /// Connections per remote IP address (`--max-conns-per-ip`, `MIST_HTTP_MAX_PER_IP`; 0: no cap).
    pub max_per_ip: usize,
    /// TLS (MistOutHTTPS): certificate/key pairs, the first the default, others by SNI.
    pub tls: Option<Vec<mist_connector::PemPair>>,
}

/// The capabilities JSON (`-j`).
pub fn capabilities() -> Value {
    json!({
        "name": "HTTP",
        "friendly": "HTTP",
        "desc": "HTTP connector: progressive MPEG-TS, FLV, MP4 (fragmented for live, moov first with Range requests for VoD), Matroska/WebM, stream info (json_/info_), the player (/player.js, /embed_$.js, /$.html), static files and ACME challenges. Serves the HTTP-based protocols enabled in the config (HTTPTS, FLV, MP4, EBML, HLS, CMAF).",
        "optional": {
            "port": {"name": "TCP port", "help": "TCP port to listen on", "type": "uint", "default": 8080, "option": "--port", "short": "p"},
            "interface": {"name": "Interface", "help": "Address to listen on, or 0.0.0.0 for all available interfaces.", "type": "str", "default": "0.0.0.0", "option": "--interface", "short": "i"},
            "certbot": {"name": "Certbot validation token", "help": "Answer /.well-known/acme-challenge/TOKEN with VALIDATION (set as TOKEN:VALIDATION, several separated by spaces; usually set by MistUtilCertbot)", "type": "str", "option": "--certbot"},
            "formats": {"name": "Formats", "help": "Comma-separated connectors to serve (default: those in the config's protocol list; all when run without a controller)", "type": "str", "option": "--formats"},
            "merge_ms": {"name": "Merged writes (ms)", "help": "Write progressive streams to each viewer at most this often, in milliseconds; 0 writes every frame at once. Larger values cost less CPU per viewer and add up to that much latency.", "type": "uint", "default": 100, "option": "--merge-ms"},
            "max_conns_per_ip": {"name": "Connections per address", "help": "Most simultaneous connections from one remote IP address; 0 for no cap.", "type": "uint", "default": mist_net::server::DEFAULT_MAX_PER_IP, "option": "--max-conns-per-ip"}
        },
        "url_rel": "/$",
        "url_prefix": "/",
        "methods": [],
        "codecs": [[["H264", "HEVC", "AV1", "VP8", "VP9"], ["AAC", "MP3", "opus", "AC3"]]],
    })
}

/// Which connectors are enabled (and their ports, for RTMP sources in the stream info);
/// refreshed from the controller in the background. `None` = everything, no ports known.
#[derive(Clone)]
pub struct Enabled(Arc<Mutex<Option<Ports>>>);

/// Enabled connector → its configured port (if any).
type Ports = HashMap<String, Option<u16>>;

impl Enabled {
    /// Everything enabled: for a standalone run without a controller to ask.
    pub fn all() -> Enabled {
        Enabled(Arc::new(Mutex::new(None)))
    }
    /// Only `list` (connector names), as a `--connectors` option gives them.
    pub fn fixed(list: &[String]) -> Enabled {
        Enabled(Arc::new(Mutex::new(Some(
            list.iter().map(|s| (s.trim().to_string(), None)).collect(),
        ))))
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Ports>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Whether requests for `connector`'s formats are answered (404 when not).
    pub fn has(&self, connector: &str) -> bool {
        match self.lock().as_ref() {
            None => true,
            Some(s) => s.contains_key(connector),
        }
    }
    /// The configured port of a connector, when known.
    pub fn port_of(&self, connector: &str) -> Option<u16> {
        self.lock()
            .as_ref()
            .and_then(|s| s.get(connector).copied().flatten())
    }
    /// Sets the list from the config's `protocols` array.
    pub fn set_protocols(&self, list: &[Value]) {
        let mut m = HashMap::new();
        for p in list {
            if let Some(c) = p.get("connector").and_then(Value::as_str) {
                let port = p
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|x| u16::try_from(x).ok())
                    .or(match c {
                        "RTMP" => Some(1935),
                        _ => None,
                    });
                m.insert(c.to_string(), port);
            }
        }
        *self.lock() = Some(m);
    }
    /// Asks the controller for the config's protocol list now and every few seconds.
    pub fn follow_controller(&self) {
        let me = self.clone();
        std::thread::spawn(move || loop {
            let req = Request::Api {
                command: json!({"config": true}),
            };
            match control::request(&req, Duration::from_secs(5)) {
                Ok(r) => {
                    if let Some(list) = r
                        .config
                        .pointer("/config/protocols")
                        .and_then(Value::as_array)
                    {
                        me.set_protocols(list);
                    }
                }
                Err(e) => mist_core::debug!("asking the controller for the protocol list: {e}"),
            }
            std::thread::sleep(Duration::from_secs(3));
        });
    }
}

/// A request waiting for its stream to become active.
struct Waiting {
    id: ConnId,
    stream: String,
    route: routes::Route,
    since: Instant,
    /// The controller's answer, once it came: Err = refused (404).
    answer: Option<Result<(), mist_connector::ask::Refusal>>,
}

/// The key of a shared feed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FeedKey {
    stream: String,
    format: Format,
    video: Option<String>,
    audio: Option<String>,
    /// VoD feeds are per viewer (each starts at the first frame and goes at its own pace).
    viewer: Option<ConnId>,
}

/// A `/$.mp4` request of a VoD stream waiting for its index.
struct Mp4Waiting {
    id: ConnId,
    stream: String,
    video: Option<String>,
    audio: Option<String>,
    since: Instant,
}

/// Progressive MP4 plans of VoD streams by (stream, ids of the tracks the selectors pick), with
/// their last use: selectors spelled differently that pick the same tracks share one plan.
type Mp4Plans = HashMap<(String, Vec<u32>), (Instant, Arc<vod::Mp4Plan>)>;

/// Live feeds (distinct format and track selections) served at once per stream.
const MAX_FEEDS_PER_STREAM: usize = 16;

/// MP4 plans kept at most (each holds a VoD file's sample tables): a peer asking for many distinct
/// selectors evicts the least recently used plans instead of growing the process.
const MAX_MP4_PLANS: usize = 64;
/// …and at most this many bytes of them all together (a plan of a long file holds a few bytes
/// per frame); the one just made is kept whatever its size.
const MAX_MP4_PLAN_BYTES: usize = 256 << 20;

/// Inserts into a map of (last use, value), evicting the least recently used entries past `cap`
/// entries or past `max_bytes` (`size` of each value) in all; the entry inserted stays.
fn insert_bounded<K: std::hash::Hash + Eq + Clone, V>(
    map: &mut HashMap<K, (Instant, V)>,
    key: K,
    value: (Instant, V),
    cap: usize,
    max_bytes: usize,
    size: impl Fn(&V) -> usize,
) {
    map.insert(key.clone(), value);
    let mut bytes: usize = map.values().map(|(_, v)| size(v)).sum();
    while map.len() > cap.max(1) || (bytes > max_bytes && map.len() > 1) {
        let Some(oldest) = map
            .iter()
            .filter(|(k, _)| **k != key)
            .min_by_key(|(_, (t, _))| *t)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        if let Some((_, v)) = map.remove(&oldest) {
            bytes = bytes.saturating_sub(size(&v));
        }
    }
}

/// The HTTP output's state: feeds, segmented streams, VoD caches, the trigger gate.
pub struct App {
    opts: Options,
    enabled: Enabled,
    feeds: HashMap<FeedKey, Feed>,
    /// Segmented outputs by (kind, stream).
    segmented: HashMap<(String, String), segmented::Slot>,
    conn_feed: mist_connector::IdMap<ConnId, FeedKey>,
    waiting: Vec<Waiting>,
    mp4_waiting: Vec<Mp4Waiting>,
    mp4_plans: Mp4Plans,
    waiter: mist_shm::Waiter,
    watched: HashSet<String>,
    /// Play requests to the controller (bounded in flight, one policy: `mist_connector::ask`).
    asker: Option<mist_connector::ask::Asker<ConnId>>,
    waker: Option<Arc<mio::Waker>>,
    /// Recent answers of [`App::active`] per stream: reading a stream's status maps its
    /// metadata file, which cost about 7% of a cached segment request when done every time.
    active_cache: HashMap<String, (Instant, bool)>,
    /// When a stream info request last asked the controller to start a stream.
    info_starts: HashMap<String, Instant>,
    /// USER_NEW decisions per viewer session (`gate.rs`).
    gate: gate::Gate<routes::Route>,
    /// Viewer sessions reported to the controller (`viewer_sessions.rs`).
    vs: viewer_sessions::ViewerSessions,
    /// The token of each connection's current stream request (`tkn.rs`: propagated into the
    /// playlists it gets).
    tokens: mist_connector::IdMap<ConnId, String>,
    /// When [`App::gc`] next drops the waits on streams nobody reads any more.
    next_watch_gc: Instant,
}

/// How long an [`App::active_cached`] answer is reused.
const ACTIVE_TTL: Duration = Duration::from_millis(250);

impl App {
    /// An output with nothing open yet.
    pub fn new(opts: Options, enabled: Enabled) -> App {
        App {
            opts,
            enabled,
            feeds: HashMap::new(),
            segmented: HashMap::new(),
            conn_feed: Default::default(),
            next_watch_gc: Instant::now(),
            waiting: Vec::new(),
            mp4_waiting: Vec::new(),
            mp4_plans: HashMap::new(),
            waiter: mist_shm::Waiter::new(),
            watched: HashSet::new(),
            asker: None,
            waker: None,
            active_cache: HashMap::new(),
            info_starts: HashMap::new(),
            gate: gate::Gate::new(),
            vs: Default::default(),
            tokens: Default::default(),
        }
    }

    /// [`App::active`], reusing an answer for [`ACTIVE_TTL`] (per request paths).
    fn active_cached(&mut self, stream: &str) -> bool {
        let now = Instant::now();
        if let Some((at, a)) = self.active_cache.get(stream) {
            if now.duration_since(*at) < ACTIVE_TTL {
                return *a;
            }
        }
        if self.active_cache.len() > 4096 {
            self.active_cache
                .retain(|_, (at, _)| now.duration_since(*at) < ACTIVE_TTL);
        }
        let a = Self::active(stream);
        self.active_cache.insert(stream.to_string(), (now, a));
        a
    }

    /// Whether a stream's buffer exists and has not ended.
    fn active(stream: &str) -> bool {
        mist_shm::stream_status(stream).is_ok_and(|s| !s.ended)
    }

    /// Starts a progressive viewer of an active stream.
    fn play(
        &mut self,
        io: &mut Io,
        id: ConnId,
        stream: &str,
        format: Format,
        video: Option<String>,
        audio: Option<String>,
    ) {
        let vod = vod::is_vod(stream);
        let key = FeedKey {
            stream: stream.to_string(),
            format,
            video: video.clone(),
            audio: audio.clone(),
            viewer: vod.then_some(id),
        };
        if !self.feeds.contains_key(&key) {
            // Each distinct selector of a live stream is a feed with a reader slot of its own:
            // a peer inventing selectors must not use up the stream's slots.
            let shared = self
                .feeds
                .keys()
                .filter(|k| k.stream == key.stream && k.viewer.is_none())
                .count();
            if !vod && shared >= MAX_FEEDS_PER_STREAM {
                mist_core::warn!(
                    "stream {stream}: {MAX_FEEDS_PER_STREAM} track selections already served; refusing another"
                );
                io.respond_text(
                    id,
                    503,
                    "too many different track selections of this stream",
                );
                return;
            }
            let host = io.peer(id).map(|p| p.ip().to_string()).unwrap_or_default();
            match Source::open(stream, format, video, audio, format.connector(), &host) {
                Ok(src) => {
                    if self.watched.insert(stream.to_string()) {
                        let _ = self.waiter.add(stream);
                    }
                    let mut feed = Feed::new(src, format);
                    feed.vod = vod;
                    self.feeds.insert(key.clone(), feed);
                }
                Err(e) => {
                    io.respond_text(id, 503, &format!("stream offline: {e}"));
                    return;
                }
            }
        }
        let feed = self.feeds.get_mut(&key).expect("inserted");
        feed.attach(io, id);
        feed.poll(io);
        self.conn_feed.insert(id, key);
        self.gc(io);
    }

    /// Dispatches a route whose stream is active.
    fn dispatch(&mut self, io: &mut Io, id: ConnId, stream: &str, route: routes::Route) {
        match route {
            routes::Route::Progressive {
                moov: true,
                video,
                audio,
                ..
            } if vod::is_vod(stream) => self.vod_mp4(io, id, stream, video, audio, Instant::now()),
            routes::Route::Progressive {
                format,
                video,
                audio,
                ..
            } => self.play(io, id, stream, format, video, audio),
            routes::Route::Segmented {
                kind, rest, host, ..
            } => self.segmented_request(io, id, kind, stream, &rest, &host),
            _ => io.respond_text(id, 500, "unexpected route"),
        }
    }

    /// `/$.mp4` of a VoD stream: a progressive file with its moov first, Range requests
    /// answered from the stream's index (see vod.rs). Waits while the stream is not complete.
    fn vod_mp4(
        &mut self,
        io: &mut Io,
        id: ConnId,
        stream: &str,
        video: Option<String>,
        audio: Option<String>,
        since: Instant,
    ) {
        let idx = match vod::index(stream) {
            vod::VodState::Ready(i) => i,
            vod::VodState::Wait => {
                return self.mp4_waiting.push(Mp4Waiting {
                    id,
                    stream: stream.to_string(),
                    video,
                    audio,
                    since,
                })
            }
            vod::VodState::Failed(e) => {
                return io.respond_text(id, 503, &format!("stream offline: {e}"))
            }
        };
        // Keyed by the tracks picked, not by how the selectors are spelled.
        let picked = mux::select(
            &idx.tracks,
            Format::Fmp4,
            video.as_deref(),
            audio.as_deref(),
        );
        let ids: Vec<u32> = picked.iter().map(|t| t.id).collect();
        let key = (stream.to_string(), ids);
        let now = Instant::now();
        let plan = match self.mp4_plans.get(&key) {
            Some((_, p)) if p.is_of(&idx) => p.clone(),
            _ => match vod::Mp4Plan::new(idx, video.as_deref(), audio.as_deref()) {
                Ok(p) => Arc::new(p),
                Err(e) => return io.respond_text(id, 415, &e.to_string()),
            },
        };
        insert_bounded(
            &mut self.mp4_plans,
            key,
            (now, plan.clone()),
            MAX_MP4_PLANS,
            MAX_MP4_PLAN_BYTES,
            |p| p.heap_bytes(),
        );
        let r = mist_net::http::Response::new(200).header("Content-Type", "video/mp4");
        let host = io.peer(id).map(|p| p.ip().to_string()).unwrap_or_default();
        io.respond_body(id, r, Box::new(vod::Mp4Body::new(plan, stream, &host)));
    }

    /// VoD `/$.mp4` requests waiting for their index; plans nobody used for a while.
    fn check_mp4_waiting(&mut self, io: &mut Io) {
        let now = Instant::now();
        for w in std::mem::take(&mut self.mp4_waiting) {
            if !io.is_open(w.id) {
                continue;
            }
            if now.duration_since(w.since) > segmented::WAIT {
                let r = mist_net::http::Response::new(503)
                    .header("Content-Type", "text/plain")
                    .header("Retry-After", "2");
                io.respond(
                    w.id,
                    r,
                    bytes::Bytes::from_static(b"the VoD stream is not loaded yet\n"),
                );
                continue;
            }
            self.vod_mp4(io, w.id, &w.stream, w.video, w.audio, w.since);
        }
        self.mp4_plans
            .retain(|_, (used, _)| now.duration_since(*used) < segmented::IDLE);
    }

    /// A playlist/segment request for an active stream.
    fn segmented_request(
        &mut self,
        io: &mut Io,
        id: ConnId,
        kind: &str,
        stream: &str,
        rest: &str,
        host: &str,
    ) {
        let key = (kind.to_string(), stream.to_string());
        // An ended slot is replaced only by a stream that really runs again (not a cached answer
        // from before it ended: that would drop the cache still serving its last segments).
        // The cached status (250 ms): every request for the last segments of an ended stream
        // would otherwise cost a lookup in shared memory.
        if self.segmented.get(&key).is_some_and(|s| s.stream.ended()) && self.active_cached(stream)
        {
            self.segmented.remove(&key);
        }
        if !self.segmented.contains_key(&key) {
            let host = io.peer(id).map(|p| p.ip().to_string()).unwrap_or_default();
            match segmented_formats::open(kind, stream, &host) {
                None => return routes::segmented(io, id),
                Some(Err(e)) => return io.respond_text(id, 503, &format!("stream offline: {e}")),
                Some(Ok(s)) => {
                    if self.watched.insert(stream.to_string()) {
                        let _ = self.waiter.add(stream);
                    }
                    let slot = segmented::Slot {
                        stream: s,
                        waiting: Vec::new(),
                        last_used: Instant::now(),
                    };
                    self.segmented.insert(key.clone(), slot);
                }
            }
        }
        let slot = self.segmented.get_mut(&key).expect("inserted");
        slot.last_used = Instant::now();
        slot.stream.poll();
        let answer = slot.stream.answer(rest, host);
        self.vs.answered(id, &answer);
        match answer {
            segmented::Answer::Ready { ctype, cache, body } => {
                respond_ready(io, id, ctype, cache, body, self.tokens.get(&id))
            }
            segmented::Answer::Cached(seg) => seg.respond(io, id),
            segmented::Answer::NotFound(m) => io.respond_text(id, 404, &m),
            segmented::Answer::Wait => {
                slot.waiting
                    .push((id, rest.to_string(), host.to_string(), Instant::now()))
            }
        }
    }

    /// Polls the segmented streams, answers their waiting requests, drops idle ones.
    fn poll_segmented(&mut self, io: &mut Io) {
        let now = Instant::now();
        for slot in self.segmented.values_mut() {
            slot.stream.poll();
            for (id, rest, host, since) in std::mem::take(&mut slot.waiting) {
                if !io.is_open(id) {
                    continue;
                }
                let answer = slot.stream.answer(&rest, &host);
                self.vs.answered(id, &answer);
                match answer {
                    segmented::Answer::Ready { ctype, cache, body } => {
                        respond_ready(io, id, ctype, cache, body, self.tokens.get(&id))
                    }
                    segmented::Answer::Cached(seg) => seg.respond(io, id),
                    segmented::Answer::NotFound(m) => io.respond_text(id, 404, &m),
                    segmented::Answer::Wait if now.duration_since(since) > segmented::WAIT => {
                        let r = mist_net::http::Response::new(503)
                            .header("Content-Type", "text/plain")
                            .header("Retry-After", "2");
                        io.respond(
                            id,
                            r,
                            bytes::Bytes::from_static(b"not enough segments yet\n"),
                        )
                    }
                    segmented::Answer::Wait => slot.waiting.push((id, rest, host, since)),
                }
            }
        }
        self.segmented.retain(|_, s| {
            !s.waiting.is_empty() || now.duration_since(s.last_used) < segmented::IDLE
        });
    }

    /// Polls every feed (new frames) and drops finished or unwatched ones.
    fn poll_all(&mut self, io: &mut Io) {
        for f in self.feeds.values_mut() {
            f.poll(io);
        }
        self.poll_segmented(io);
        // `gc` fires the CONN_STOPs of the feeds that ended.
        self.gc(io);
    }

    /// CONN_STOP for the progressive viewers whose stream ended while they played.
    fn conn_stops(&mut self) {
        for (k, f) in self.feeds.iter_mut() {
            for (_, host) in std::mem::take(&mut f.stopped) {
                mist_core::triggers::viewers::stopped(&k.stream, &host, "HTTP");
            }
        }
    }

    /// Drops finished and unwatched feeds. It runs on every poll, attach and close, so it must
    /// not walk every connection: a connection leaves `conn_feed` when it closes (`closed`), and
    /// only the entries of a dropped feed are swept here. (Checking each entry against its feed's
    /// viewers and hashing its key made this O(viewers²) per poll: 6 % of MistOutHTTP's samples
    /// with 200 HTTP-FLV viewers.)
    fn gc(&mut self, _io: &mut Io) {
        // A finished feed's viewers get their CONN_STOP before it goes (every path that polls a
        // feed ends here: a VoD feed often ends in the poll that started its viewer).
        self.conn_stops();
        let before = self.feeds.len();
        self.feeds.retain(|_, f| !f.done && !f.is_idle());
        let dropped = self.feeds.len() != before;
        if dropped {
            let feeds = &self.feeds;
            self.conn_feed.retain(|_, k| feeds.contains_key(k));
        }
        // Segmented slots expire in `poll_segmented`; their streams' waits go at most a second
        // later (a wait on a stream nobody reads costs one wake-up per frame, not more).
        let now = Instant::now();
        if !dropped && now < self.next_watch_gc {
            return;
        }
        self.next_watch_gc = now + Duration::from_secs(1);
        let live: HashSet<&str> = self
            .feeds
            .keys()
            .map(|k| k.stream.as_str())
            .chain(self.segmented.keys().map(|(_, s)| s.as_str()))
            .collect();
        let gone: Vec<String> = self
            .watched
            .iter()
            .filter(|s| !live.contains(s.as_str()))
            .cloned()
            .collect();
        for s in gone {
            self.waiter.remove(&s);
            self.watched.remove(&s);
        }
    }

    /// Requests waiting for a stream: dispatch, refuse or time out.
    fn check_waiting(&mut self, io: &mut Io) {
        while let Some((id, v)) = self.asker.as_mut().and_then(|a| a.take()) {
            let ans = match v {
                mist_connector::ask::Verdict::Allow(_) => Ok(()),
                mist_connector::ask::Verdict::Refuse(why) => Err(why),
            };
            if let Some(w) = self.waiting.iter_mut().find(|w| w.id == id) {
                w.answer = Some(ans);
            }
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.waiting.len() {
            let w = &self.waiting[i];
            if !io.is_open(w.id) {
                self.waiting.swap_remove(i);
                continue;
            }
            if Self::active(&w.stream) {
                let w = self.waiting.swap_remove(i);
                self.dispatch(io, w.id, &w.stream, w.route);
                continue;
            }
            match &w.answer {
                Some(Err(e)) => {
                    let msg = format!("stream not found: {e}");
                    let id = w.id;
                    self.waiting.swap_remove(i);
                    io.respond_text(id, 404, &msg);
                    continue;
                }
                _ if now.duration_since(w.since) > STREAM_WAIT => {
                    let id = w.id;
                    // Standalone, a stream without a buffer at all is unknown; with a controller
                    // that accepted the request it is configured but offline.
                    let unknown = control::socket_path().is_none()
                        && mist_shm::stream_status(&w.stream).is_err();
                    self.waiting.swap_remove(i);
                    if unknown {
                        io.respond_text(id, 404, "stream not found");
                    } else {
                        io.respond_text(id, 503, "stream offline");
                    }
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Stream info of a stream that is not running (a VoD file nobody watches yet): asks the
    /// controller to start its input in the background, so the player's next poll finds it.
    /// The answer is not waited for; at most one request per stream per 5 s and 8 at a time.
    fn start_for_info(&mut self, stream: &str) {
        static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        use std::sync::atomic::Ordering::Relaxed;
        let name = names::sanitize(stream);
        if control::socket_path().is_none()
            || !names::is_valid(&name)
            || self.active_cached(&name)
            || IN_FLIGHT.load(Relaxed) >= 8
        {
            return;
        }
        let now = Instant::now();
        if self
            .info_starts
            .get(&name)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(5))
        {
            return;
        }
        if self.info_starts.len() > 4096 {
            self.info_starts
                .retain(|_, t| now.duration_since(*t) < Duration::from_secs(5));
        }
        self.info_starts.insert(name.clone(), now);
        IN_FLIGHT.fetch_add(1, Relaxed);
        let req = Request::Play {
            stream: name,
            host: String::new(),
            connector: "HTTP".into(),
            url: String::new(),
        };
        std::thread::spawn(move || {
            let _ = control::request(&req, STREAM_WAIT + Duration::from_secs(5));
            IN_FLIGHT.fetch_sub(1, Relaxed);
        });
    }

    /// A stream request admitted by the viewer gate: serve it, or ask the controller first.
    fn open_stream(
        &mut self,
        io: &mut Io,
        id: ConnId,
        name: String,
        route: routes::Route,
        target: &str,
    ) {
        self.vs.admitted(id);
        if self.active_cached(&name) {
            return self.dispatch(io, id, &name, route);
        }
        // A segmented stream that ended is still answered from its cache (static MPD,
        // ENDLIST playlists) while its slot lives.
        if let routes::Route::Segmented { kind, .. } = &route {
            let key = (kind.to_string(), name.clone());
            if self.segmented.get(&key).is_some_and(|s| s.stream.ended()) {
                return self.dispatch(io, id, &name, route.clone());
            }
        }
        let host = io.peer(id).map(|p| p.ip().to_string()).unwrap_or_default();
        self.ask_controller(id, &name, host, target.to_string());
        self.waiting.push(Waiting {
            id,
            stream: name,
            route: route.clone(),
            since: Instant::now(),
            answer: if control::socket_path().is_none() {
                Some(Ok(()))
            } else {
                None
            },
        });
    }

    /// Continues the requests whose viewer session USER_NEW decided.
    fn check_gate(&mut self, io: &mut Io) {
        for (p, r) in self.gate.decided() {
            if !io.is_open(p.id) {
                continue;
            }
            match r {
                Ok(()) => {
                    // PLAY_REWRITE may have renamed the stream: the session is the new one's.
                    self.vs.rewritten(p.id, &p.stream);
                    self.open_stream(io, p.id, p.stream, p.route, &p.target)
                }
                Err(why) => io.respond_text(p.id, 403, &why.to_string()),
            }
        }
    }

    /// Asks the controller to start the stream (off the loop: the answer may take seconds).
    /// Standalone: nothing to ask. A controller that cannot be reached refuses.
    fn ask_controller(&mut self, id: ConnId, stream: &str, host: String, url: String) {
        if control::socket_path().is_none() {
            return;
        }
        let req = Request::Play {
            stream: stream.to_string(),
            host,
            connector: "HTTP".into(),
            url,
        };
        if let Some(a) = self.asker.as_mut() {
            a.ask(id, req);
        }
    }
}

impl Handler for App {
    fn request(&mut self, io: &mut Io, id: ConnId, req: HttpRequest) {
        let route = routes::route(&req, &self.enabled);
        match route {
            routes::Route::Static(status, ctype, body) => {
                let r = mist_net::http::Response::new(status).header("Content-Type", ctype);
                io.respond(id, r, body)
            }
            routes::Route::Page { ctype, cache, body } => {
                let r = mist_net::http::Response::new(200)
                    .header("Content-Type", ctype)
                    .header("Cache-Control", cache);
                io.respond(id, r, body)
            }
            routes::Route::Error(status, text) => io.respond_text(id, status, &text),
            routes::Route::Acme(token) => {
                // One or more TOKEN:VALIDATION pairs (one per name of a certificate).
                let answer = self
                    .opts
                    .certbot
                    .as_deref()
                    .and_then(|c| crate::util::certbot::challenge_answer(c, &token));
                match answer {
                    Some(v) => {
                        let r =
                            mist_net::http::Response::new(200).header("Content-Type", "text/plain");
                        io.respond(id, r, bytes::Bytes::from(v.to_string()))
                    }
                    _ => io.respond_text(id, 404, "no such challenge"),
                }
            }
            routes::Route::Info { ref stream, js } => {
                let host = req.header("host").unwrap_or("").to_string();
                self.start_for_info(stream);
                let body = routes::info(stream, js, &host, &self.enabled);
                let ctype = if js {
                    "application/javascript"
                } else {
                    "application/json"
                };
                let r = mist_net::http::Response::new(200)
                    .header("Content-Type", ctype)
                    .header("Cache-Control", "no-store");
                io.respond(id, r, bytes::Bytes::from(body))
            }
            routes::Route::Progressive { ref stream, .. }
            | routes::Route::Segmented { ref stream, .. } => {
                let name = names::sanitize(stream);
                if !names::is_valid(&name) {
                    return io.respond_text(id, 404, "stream not found: invalid stream name");
                }
                let connector = match &route {
                    routes::Route::Segmented { kind: "cmaf", .. } => "CMAF",
                    routes::Route::Segmented { .. } => "HLS",
                    _ => "HTTP",
                };
                let token = gate::token(&req);
                // A player's next request on its keep-alive connection (the next segment or
                // playlist of the stream it was admitted to, same session): nothing to decide
                // again, so none of the gate's per-request strings are built.
                if self.vs.same_session(id, &name, connector, &token) {
                    if let Some(stream) = self.gate.admitted_again(id, &name) {
                        return self.open_stream(io, id, stream, route, &req.target);
                    }
                }
                let host = io.peer(id).map(|p| p.ip().to_string()).unwrap_or_default();
                let connector = connector.to_string();
                if token.is_empty() {
                    self.tokens.remove(&id);
                } else {
                    self.tokens.insert(id, token.clone());
                }
                self.vs.request(id, &name, &host, &connector, &token);
                // The triggers' URL line: the full URL, as MistServer gives it.
                let scheme = if self.opts.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                let url = format!(
                    "{scheme}://{}{}",
                    req.header("host").unwrap_or("localhost"),
                    req.target
                );
                let parked = gate::Parked {
                    id,
                    stream: name.clone(),
                    route: route.clone(),
                    target: req.target.clone(),
                    host,
                    connector,
                    token,
                    url,
                };
                match self.gate.check(parked, self.waker.clone()) {
                    gate::Verdict::Pass(stream, route) => {
                        if stream != name {
                            self.vs.rewritten(id, &stream);
                        }
                        self.open_stream(io, id, stream, route, &req.target)
                    }
                    gate::Verdict::Refuse(why) => io.respond_text(id, 403, &why.to_string()),
                    gate::Verdict::Parked => {}
                }
            }
        }
    }

    fn closed(&mut self, io: &mut Io, id: ConnId) {
        if let Some(k) = self.conn_feed.remove(&id) {
            if let Some(f) = self.feeds.get_mut(&k) {
                f.detach(id);
            }
        }
        self.waiting.retain(|w| w.id != id);
        self.mp4_waiting.retain(|w| w.id != id);
        self.gate.closed(id);
        self.vs.closed(id);
        self.tokens.remove(&id);
        self.gc(io);
    }

    fn drained(&mut self, io: &mut Io, id: ConnId) {
        // A VoD viewer read what was queued: mux the next part of its file.
        if let Some(k) = self.conn_feed.get(&id) {
            if let Some(f) = self.feeds.get_mut(k).filter(|f| f.vod) {
                f.poll(io);
                if !f.stopped.is_empty() {
                    self.conn_stops();
                }
            }
        }
    }

    fn wake(&mut self, io: &mut Io) {
        self.check_gate(io);
        self.poll_all(io);
        self.check_waiting(io);
        self.check_mp4_waiting(io);
    }

    fn tick(&mut self, io: &mut Io) {
        for id in self.vs.tick() {
            io.close(id);
        }
        self.check_gate(io);
        self.poll_all(io);
        self.check_waiting(io);
        self.check_mp4_waiting(io);
    }
}

/// Answers a playlist, manifest or other ready answer; a playlist or manifest of a request with a
/// token carries it (`tknMode` 4: in its URLs, 8: as a cookie; see `tkn.rs`).
fn respond_ready(
    io: &mut Io,
    id: ConnId,
    ctype: &'static str,
    cache: &'static str,
    body: bytes::Bytes,
    token: Option<&String>,
) {
    let mut r = mist_net::http::Response::new(200)
        .header("Content-Type", ctype)
        .header("Cache-Control", cache);
    let mut body = body;
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        if ctype == tkn::M3U8 || ctype == tkn::MPD {
            let mode = mist_core::triggers::viewers::modes().tkn;
            if let Some(b) = tkn::propagate(ctype, &body, t, mode) {
                body = bytes::Bytes::from(b);
            }
            if mode & mist_core::triggers::session_modes::TKN_COOKIE != 0 {
                r = r.header("Set-Cookie", &tkn::cookie(t));
            }
        }
    }
    io.respond(id, r, body)
}

/// Runs MistOutHTTP until SIGINT/SIGTERM. Returns the exit code.
pub fn run(opts: Options) -> i32 {
    let addr = match format!(
        "{}:{}",
        if opts.interface.contains(':') {
            format!("[{}]", opts.interface)
        } else {
            opts.interface.clone()
        },
        opts.port
    )
    .parse()
    {
        Ok(a) => a,
        Err(_) => {
            mist_core::error!("bad interface address {}", opts.interface);
            return 2;
        }
    };
    let cfg = ServerConfig {
        merge: opts.merge,
        max_per_ip: opts.max_per_ip,
        ..ServerConfig::default()
    };
    let bound = match &opts.tls {
        None => Server::bind(addr, cfg),
        Some(pairs) => {
            let settings = mist_connector::TlsSettings {
                pairs: pairs.clone(),
                ..mist_connector::TlsSettings::default()
            };
            match mist_connector::TlsConfigHandle::new(settings) {
                Ok(h) => {
                    // New cert/key paths from the controller arrive with SIGHUP.
                    crate::tls_reload::follow_hangups(
                        "HTTPS",
                        opts.port,
                        https::DEFAULT_PORT,
                        h.clone(),
                    );
                    Server::bind_tls(addr, cfg, h)
                }
                Err(e) => {
                    mist_core::error!("TLS certificate: {e}");
                    return 1;
                }
            }
        }
    };
    let mut server = match bound {
        Ok(s) => s,
        Err(e) => {
            mist_core::error!("cannot listen on {addr}: {e}");
            return 3;
        }
    };
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    mist_core::info!("listening on {addr} ({scheme})");
    let enabled = match &opts.formats {
        Some(l) => Enabled::fixed(l),
        None => {
            let e = Enabled::all();
            if control::socket_path().is_some() {
                e.follow_controller();
            }
            e
        }
    };
    let mut app = App::new(opts, enabled);
    let waker = server.waker();
    app.waker = Some(waker.clone());
    app.asker = Some(mist_connector::ask::Asker::from_env(
        waker.clone(),
        STREAM_WAIT + Duration::from_secs(5),
    ));
    // Helper thread: shared-memory futex wake-ups → mio waker.
    let w = app.waiter.clone();
    std::thread::spawn(move || loop {
        let ready = w.wait(Duration::from_secs(1));
        if !ready.is_empty() {
            let _ = waker.wake();
        }
    });
    let stop = crate::util::cli::stop_on_signals();
    match server.run(app, stop) {
        Ok(()) => 0,
        Err(e) => {
            mist_core::error!("event loop: {e}");
            4
        }
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    /// 10 000 distinct selectors (as a peer would send them) key at most MAX_MP4_PLANS entries,
    /// and the ones that differ only in spelling share one key.
    #[test]
    fn selector_cache_is_bounded() {
        type Key = (String, Option<String>, Option<String>);
        let mut plans: HashMap<Key, (Instant, Vec<u8>)> = HashMap::new();
        let t0 = Instant::now();
        for i in 0..10_000u64 {
            let v = mux::normalize_selector(&format!("{i},ALL, {i}"));
            let key = ("vod".to_string(), Some(v), None);
            let at = t0 + std::time::Duration::from_millis(i);
            insert_bounded(
                &mut plans,
                key,
                (at, vec![0u8; 1024]),
                MAX_MP4_PLANS,
                usize::MAX,
                Vec::len,
            );
            assert!(plans.len() <= MAX_MP4_PLANS);
        }
        // The newest survive.
        assert!(plans.contains_key(&("vod".to_string(), Some("9999,all".into()), None)));
        // A byte budget evicts the oldest past it, never the entry just inserted.
        let mut big: HashMap<u32, (Instant, Vec<u8>)> = HashMap::new();
        for i in 0..100u32 {
            let at = t0 + std::time::Duration::from_millis(i as u64);
            insert_bounded(&mut big, i, (at, vec![0u8; 1 << 20]), 64, 8 << 20, Vec::len);
            assert!(big.len() <= 8 && big.contains_key(&i), "{}", big.len());
        }
        insert_bounded(
            &mut big,
            1000,
            (Instant::now(), vec![0u8; 32 << 20]),
            64,
            8 << 20,
            Vec::len,
        );
        assert_eq!(big.len(), 1);
        assert_eq!(
            mux::normalize_selector("001,all"),
            mux::normalize_selector("1 , ALL,1")
        );
    }
}
