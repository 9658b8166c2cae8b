//! MistInHLS: pulls an HLS source (`http(s)://…m3u8`, live or VoD, TS or fMP4/CMAF segments) into a
//! live stream in shared memory.
//!
//! * A master playlist gives every variant and every audio/video rendition with its own playlist
//!   ([`hls::pull::media_playlists`]); the tracks of all of them become tracks of the stream, with
//!   ids 1, 2, … in the order they appear.
//! * Each media playlist is followed by a [`Follower`] (sans-IO): reloaded at its target duration
//!   (half of it when nothing changed), new segments only, joined three segments before the live
//!   edge; lost segments, `EXT-X-DISCONTINUITY` and origin restarts reset that playlist's demuxer.
//!   A VoD playlist (`EXT-X-ENDLIST`) is taken whole, paced at real time, and the stream ends
//!   after its last segment has played out.
//! * TS segments go through one [`Demuxer`] per playlist, fMP4 segments through
//!   [`mp4::demux_segment`] against the playlist's `EXT-X-MAP`; one [`Rebase`] keeps every track's
//!   times monotonic. Frames reach shared memory through the same [`LiveIngest`] as MistInTS
//!   live (the one [`crate::ingest::Ingest`] of every publisher, behind an interleaver).
//! * The HTTP requests (one at a time, playlists before segments, the playlist furthest behind
//!   first) run on a worker thread ([`http::Http`], bounded bodies, timeouts) so that the writer
//!   keeps its heartbeat while a request is slow.
//! * No frame for the stream timeout ends the stream; segments that come back start it again;
//!   nothing for the input timeout while no stream is up ends the process.

pub mod http;

use crate::ts_live::ingest::LiveIngest;
use mist_media::hls::pull::{self, Follower, SegmentJob, SegmentKind};
use mist_media::hls::{self, Playlist};
use mist_media::mp4::{self, Movie};
use mist_media::mpegts::live::Rebase;
use mist_media::mpegts::{DemuxEvent, Demuxer};
use mist_media::{Frame, Track};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest playlist fetched.
pub const MAX_PLAYLIST_BYTES: usize = 4 << 20;
/// Largest media segment fetched.
pub const MAX_SEGMENT_BYTES: usize = 64 << 20;
/// Largest init section fetched.
pub const MAX_INIT_BYTES: usize = 1 << 20;
/// Default stream timeout (ms).
pub const DEFAULT_IDLE_MS: u64 = 20_000;
/// Default DVR window (ms).
pub const DEFAULT_DVR_MS: u64 = 50_000;
/// Frames held while the stream's tracks are gathered at most.
const MAX_PROBE_FRAMES: usize = 8192;

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The stream the input writes.
    pub stream: String,
    /// The playlist URL (master or media).
    pub url: String,
    /// How long without media before the stream ends (`--timeout`); segments that come back start it again.
    pub idle: Duration,
    /// How long with no stream open and nothing from the source before the input exits.
    pub input_timeout: Duration,
    /// DVR window kept in shared memory (ms).
    pub dvr_ms: u64,
}

/// Whether `s` is an HLS source this input pulls.
pub fn is_hls_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    (l.starts_with("http://") || l.starts_with("https://"))
        && l.split(['?', '#'])
            .next()
            .is_some_and(|p| p.ends_with(".m3u8") || p.ends_with(".m3u"))
}

/// The `-j` capabilities.
pub fn capabilities() -> serde_json::Value {
    serde_json::json!({
        "name": "HLS",
        "desc": "Pulls an HLS source (live or VoD; MPEG-TS or fMP4/CMAF segments). A master playlist gives every variant and rendition as tracks of the stream.",
        "source_match": ["http://*.m3u8", "https://*.m3u8", "http://*.m3u8?*", "https://*.m3u8?*",
                         "http://*.m3u", "https://*.m3u", "http://*.m3u?*", "https://*.m3u?*"],
        "priority": 9,
        "always_match": true,
        "optional": {
            "DVR": {"name": "Buffer time (ms)", "help": "How much of the stream is kept for viewers to seek back in, in milliseconds.", "type": "uint", "default": DEFAULT_DVR_MS, "option": "--dvr"},
            "dvr_bytes": crate::access::dvr_bytes_capability(),
            "idleTime": {"name": "Source timeout (ms)", "help": "The stream ends after this long without media; segments that come back start it again.", "type": "uint", "default": DEFAULT_IDLE_MS, "option": "--timeout"},
            "inputtimeout": {"name": "Input timeout (s)", "help": "How long the input keeps trying while no stream is up before it exits, in seconds.", "type": "uint", "default": 60, "option": "--inputtimeout", "short": "i"},
            "debug": {"name": "debug", "help": "The debug level at which messages need to be printed.", "type": "debug", "option": "--debug", "short": "g"}
        },
        "codecs": [[["H264", "HEVC", "AV1"], ["AAC", "MP3", "opus", "AC3"]]]
    })
}

/// What the worker is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Playlist,
    Init,
    Segment,
}

struct Req {
    feed: usize,
    what: What,
    url: String,
    range: Option<(u64, u64)>,
    cap: usize,
    total: Duration,
}

struct Resp {
    feed: usize,
    what: What,
    url: String,
    result: Result<Vec<u8>, http::FetchError>,
}

/// An init section: its URL and byte range.
type MapKey = (String, Option<(u64, u64)>);

/// One media playlist and the state of its segments.
struct Feed {
    follower: Follower,
    jobs: VecDeque<SegmentJob>,
    next_load: Instant,
    ts: Demuxer,
    /// The init section loaded: (url, range) and its movie, and fMP4 decode times carried on.
    movie: Option<(MapKey, Movie, Vec<i64>)>,
    /// Track id in this playlist's segments → track id of the stream.
    ids: HashMap<u32, u32>,
    /// Media time taken from this playlist (sum of segment durations).
    taken_ms: i64,
    failures: u32,
    /// At least one segment was demuxed (or the playlist gave up).
    probed: bool,
    warned_kind: bool,
}

impl Feed {
    fn new(url: &str, now: Instant) -> Feed {
        Feed {
            follower: Follower::new(url),
            jobs: VecDeque::new(),
            next_load: now,
            ts: Demuxer::new(),
            movie: None,
            ids: HashMap::new(),
            taken_ms: 0,
            failures: 0,
            probed: false,
            warned_kind: false,
        }
    }

    fn target_ms(&self) -> i64 {
        (self.follower.target_ms() as i64).clamp(1_000, 30_000)
    }
}

/// Counters published as the stream's input health.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Stats {
    segments: u64,
    failed: u64,
    encrypted: u64,
    bytes: u64,
    frames: u64,
}

struct Puller {
    opts: Options,
    feeds: Vec<Feed>,
    /// The first load told master from media playlist.
    resolved: bool,
    tracks: Vec<Track>,
    next_id: u32,
    rebase: Rebase,
    ingest: LiveIngest,
    probe: Vec<DemuxEvent>,
    stats: Stats,
    published: Option<(Stats, u64)>,
    last_frame: Option<Instant>,
    last_data: Instant,
    /// Wall time of the first segment, for pacing.
    start: Option<Instant>,
    inflight: bool,
    exit: Option<i32>,
}

impl Puller {
    fn new(opts: Options, now: Instant) -> Puller {
        Puller {
            ingest: LiveIngest::new(
                &opts.stream,
                opts.dvr_ms,
                opts.idle.as_millis().min(u32::MAX as u128) as u32,
            ),
            feeds: vec![Feed::new(&opts.url, now)],
            opts,
            resolved: false,
            tracks: Vec::new(),
            next_id: 1,
            rebase: Rebase::default(),
            probe: Vec::new(),
            stats: Stats::default(),
            published: None,
            last_frame: None,
            last_data: now,
            start: None,
            inflight: false,
            exit: None,
        }
    }

    /// The next request to make, if any is due; else how long until one may be.
    fn next_request(&mut self, now: Instant) -> Result<Req, Duration> {
        let mut wait = Duration::from_millis(200);
        // Playlists first: a late reload loses segments.
        for (i, f) in self.feeds.iter().enumerate() {
            if f.follower.stats().loads > 0 && f.follower.ended() {
                continue;
            }
            if f.next_load <= now {
                return Ok(Req {
                    feed: i,
                    what: What::Playlist,
                    url: f.follower.url().to_string(),
                    range: None,
                    cap: MAX_PLAYLIST_BYTES,
                    total: Duration::from_secs(10),
                });
            }
            wait = wait.min(f.next_load - now);
        }
        // Then the segment of the playlist furthest behind, paced at real time.
        let Some(i) = (0..self.feeds.len())
            .filter(|&i| !self.feeds[i].jobs.is_empty())
            .min_by_key(|&i| self.feeds[i].taken_ms)
        else {
            return Err(wait);
        };
        let f = &mut self.feeds[i];
        let elapsed = self
            .start
            .map_or(0, |s| now.duration_since(s).as_millis() as i64);
        let lead = 3 * f.target_ms();
        if f.taken_ms > elapsed + lead {
            return Err(wait.min(Duration::from_millis((f.taken_ms - elapsed - lead) as u64)));
        }
        while let Some(j) = f.jobs.front() {
            if let Some(k) = &j.encrypted {
                mist_core::warn!(
                    "{}: segment {} is encrypted ({k}): skipped",
                    f.follower.url(),
                    j.seq
                );
                self.stats.encrypted += 1;
                f.taken_ms += j.duration_ms;
                f.jobs.pop_front();
                if let Some(n) = f.jobs.front_mut() {
                    n.discontinuity = true;
                }
                continue;
            }
            break;
        }
        let j = f.jobs.front().ok_or(wait)?;
        let total = Duration::from_millis((j.duration_ms.clamp(1_000, 30_000) * 3) as u64)
            .max(Duration::from_secs(10));
        if let Some(m) = &j.map {
            if f.movie.as_ref().map(|(k, _, _)| k) != Some(m) {
                return Ok(Req {
                    feed: i,
                    what: What::Init,
                    url: m.0.clone(),
                    range: m.1,
                    cap: MAX_INIT_BYTES,
                    total,
                });
            }
        }
        Ok(Req {
            feed: i,
            what: What::Segment,
            url: j.url.clone(),
            range: j.range,
            cap: MAX_SEGMENT_BYTES,
            total,
        })
    }

    fn on_response(&mut self, r: Resp, now: Instant) {
        let Some(f) = self.feeds.get_mut(r.feed) else {
            return;
        };
        let data = match r.result {
            Ok(d) => {
                f.failures = 0;
                d
            }
            Err(e) => {
                f.failures += 1;
                mist_core::warn!("{}: {e}", r.url);
                match r.what {
                    What::Playlist => {
                        let back = Duration::from_millis(500 << f.failures.min(5));
                        f.next_load = now + back.min(Duration::from_secs(10));
                    }
                    What::Init | What::Segment => {
                        self.stats.failed += 1;
                        if let Some(j) = f.jobs.pop_front() {
                            f.taken_ms += j.duration_ms;
                        }
                        if let Some(n) = f.jobs.front_mut() {
                            n.discontinuity = true;
                        }
                    }
                }
                return;
            }
        };
        self.last_data = now;
        self.stats.bytes += data.len() as u64;
        match r.what {
            What::Playlist => self.on_playlist(r.feed, &data, now),
            What::Init => self.on_init(r.feed, &data),
            What::Segment => self.on_segment(r.feed, data, now),
        }
    }

    fn on_playlist(&mut self, i: usize, data: &[u8], now: Instant) {
        let pl = match hls::parse(data) {
            Ok(p) => p,
            Err(e) => {
                let f = &mut self.feeds[i];
                f.failures += 1;
                mist_core::warn!("{}: not a playlist: {e}", f.follower.url());
                f.next_load = now + Duration::from_secs(2);
                return;
            }
        };
        match pl {
            Playlist::Master(m) => {
                if self.resolved {
                    mist_core::warn!(
                        "{}: a master playlist where a media playlist was expected",
                        self.feeds[i].follower.url()
                    );
                    self.feeds[i].next_load = now + Duration::from_secs(5);
                    return;
                }
                let urls = pull::media_playlists(&m, &self.opts.url);
                if urls.is_empty() {
                    mist_core::warn!("{}: a master playlist with no variant", self.opts.url);
                    self.feeds[i].next_load = now + Duration::from_secs(5);
                    return;
                }
                mist_core::info!(
                    "{}: master playlist, following {} media playlists: {}",
                    self.opts.url,
                    urls.len(),
                    urls.join(" ")
                );
                self.feeds = urls.iter().map(|u| Feed::new(u, now)).collect();
                self.resolved = true;
            }
            Playlist::Media(m) => {
                self.resolved = true;
                let f = &mut self.feeds[i];
                let first = f.follower.stats().loads == 0;
                let jobs = f.follower.update(&m);
                if first {
                    mist_core::info!(
                        "{}: {} playlist, {} segments, target duration {} s; taking {}",
                        f.follower.url(),
                        if m.endlist { "VoD" } else { "live" },
                        m.segments.len(),
                        m.target_duration,
                        jobs.len()
                    );
                    if jobs.is_empty() && m.endlist {
                        f.probed = true;
                    }
                }
                f.jobs.extend(jobs);
                let wait = f.follower.reload_in_ms().unwrap_or(0);
                f.next_load = now + Duration::from_millis(wait);
            }
        }
    }

    fn on_init(&mut self, i: usize, data: &[u8]) {
        let f = &mut self.feeds[i];
        let Some(key) = f.jobs.front().and_then(|j| j.map.clone()) else {
            return;
        };
        match find_movie(data) {
            Ok(movie) => {
                let n = movie.tracks.len();
                let tracks = movie.tracks();
                f.movie = Some((key, movie, vec![0; n]));
                for t in tracks {
                    self.track(i, t);
                }
            }
            Err(e) => {
                mist_core::warn!("{}: init section: {e}", key.0);
                self.stats.failed += 1;
                // Not asked for again until the map changes: its segments are skipped.
                if let Some(j) = f.jobs.pop_front() {
                    f.taken_ms += j.duration_ms;
                }
            }
        }
    }

    fn on_segment(&mut self, i: usize, data: Vec<u8>, now: Instant) {
        let f = &mut self.feeds[i];
        let Some(job) = f.jobs.pop_front() else {
            return;
        };
        self.start.get_or_insert(now);
        f.taken_ms += job.duration_ms;
        self.stats.segments += 1;
        let mut events = Vec::new();
        match pull::segment_kind(&data) {
            SegmentKind::Ts => {
                if job.discontinuity {
                    f.ts.reset_continuity();
                }
                f.ts.push(&data);
                f.ts.flush();
                while let Some(e) = f.ts.poll() {
                    events.push(e);
                }
            }
            SegmentKind::Mp4 => {
                if f.movie.is_none() {
                    // No EXT-X-MAP: the segment may carry its own moov.
                    if let Ok(m) = find_movie(&data) {
                        let n = m.tracks.len();
                        for t in m.tracks() {
                            events.push(DemuxEvent::Track(t));
                        }
                        f.movie = Some(((job.url.clone(), None), m, vec![0; n]));
                    }
                }
                match &mut f.movie {
                    Some((_, movie, next)) => match mp4::demux_segment(movie, data, next) {
                        Ok(fr) => events.extend(fr.into_iter().map(DemuxEvent::Frame)),
                        Err(e) => {
                            self.stats.failed += 1;
                            mist_core::warn!("{}: {e}", job.url)
                        }
                    },
                    None => mist_core::warn!("{}: fMP4 segment without an init section", job.url),
                }
            }
            SegmentKind::Other => {
                if !f.warned_kind {
                    f.warned_kind = true;
                    mist_core::warn!(
                        "{}: segment is neither MPEG-TS nor fMP4 (packed audio is not supported)",
                        job.url
                    );
                }
            }
        }
        f.probed = true;
        for e in events {
            match e {
                DemuxEvent::Track(t) => self.track(i, t),
                DemuxEvent::Frame(fr) => self.frame(i, fr, now),
            }
        }
        self.maybe_start();
    }

    /// A track of playlist `i` (its own id) becomes a track of the stream.
    fn track(&mut self, i: usize, mut t: Track) {
        let f = &mut self.feeds[i];
        let gid = *f.ids.entry(t.id).or_insert_with(|| {
            let g = self.next_id;
            self.next_id += 1;
            g
        });
        t.id = gid;
        match self.tracks.iter_mut().find(|x| x.id == gid) {
            Some(x) => *x = t.clone(),
            None => {
                mist_core::info!(
                    "track {gid}: {} {}{}",
                    t.codec.mist_name(),
                    if t.width > 0 {
                        format!("{}x{} ", t.width, t.height)
                    } else {
                        String::new()
                    },
                    f.follower.url()
                );
                self.tracks.push(t.clone());
            }
        }
        if self.ingest.is_open() {
            self.ingest.set_track(&t);
        } else {
            self.probe.push(DemuxEvent::Track(t));
        }
    }

    fn frame(&mut self, i: usize, f: Frame, now: Instant) {
        let Some(&gid) = self.feeds[i].ids.get(&f.track) else {
            return; // a stream whose init data never came
        };
        let dts = self.rebase.map(gid, f.dts);
        let f = Frame {
            track: gid,
            dts,
            ..f
        };
        self.last_frame = Some(now);
        self.stats.frames += 1;
        if self.ingest.is_open() {
            if let Err(e) = self.ingest.push(f) {
                mist_core::error!("{e}");
                self.exit = Some(1);
            }
        } else {
            self.probe.push(DemuxEvent::Frame(f));
            if self.probe.len() > MAX_PROBE_FRAMES {
                self.start_stream();
            }
        }
    }

    /// Starts the stream once every playlist gave a segment (all tracks are known).
    fn maybe_start(&mut self) {
        if !self.ingest.is_open()
            && self.resolved
            && !self.tracks.is_empty()
            && self.feeds.iter().all(|f| f.probed || f.failures >= 3)
        {
            self.start_stream();
        }
    }

    fn start_stream(&mut self) {
        if self.tracks.is_empty() {
            self.probe.clear();
            return;
        }
        if let Err(e) = self.ingest.start(&self.tracks) {
            mist_core::error!("{e}");
            self.exit = Some(1);
            self.probe.clear();
            return;
        }
        mist_core::info!(
            "stream {} is up with {} tracks from {}",
            self.opts.stream,
            self.tracks.len(),
            self.opts.url
        );
        for ev in std::mem::take(&mut self.probe) {
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
                return;
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
            self.ingest.end();
            mist_shm::health::remove_input_health(&self.opts.stream);
        }
        self.published = None;
        self.probe.clear();
        self.last_frame = None;
        self.rebase = Rebase::default();
    }

    fn publish_health(&mut self) {
        if !self.ingest.is_open() {
            return;
        }
        let lost: u64 = self
            .feeds
            .iter()
            .map(|f| f.follower.stats().lost_segments)
            .sum::<u64>()
            + self.stats.failed;
        if self.published.as_ref() == Some(&(self.stats.clone(), lost)) {
            return;
        }
        let sum = |g: fn(&pull::FollowStats) -> u64| -> u64 {
            self.feeds.iter().map(|f| g(f.follower.stats())).sum()
        };
        let h: mist_shm::health::InputHealth = [
            ("loss", lost),
            ("lost_segments", sum(|s| s.lost_segments)),
            ("failed_segments", self.stats.failed),
            ("encrypted_segments", self.stats.encrypted),
            ("segments", self.stats.segments),
            ("playlist_loads", sum(|s| s.loads)),
            ("discontinuities", sum(|s| s.discontinuities)),
            ("restarts", sum(|s| s.restarts)),
            ("frames", self.stats.frames),
            ("bytes", self.stats.bytes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if mist_shm::health::write_input_health(&self.opts.stream, &h).is_ok() {
            self.published = Some((self.stats.clone(), lost));
        }
    }

    /// Every playlist ended and every segment was taken.
    fn source_done(&self) -> bool {
        self.resolved
            && !self.inflight
            && self
                .feeds
                .iter()
                .all(|f| f.follower.ended() && f.jobs.is_empty())
    }
}

/// The movie of the first `moov` box in `data`.
fn find_movie(data: &[u8]) -> Result<Movie, mist_media::MediaError> {
    for b in mp4::Boxes::new(data) {
        let (t, body) = b?;
        if &t == b"moov" {
            return mp4::parse_moov(body);
        }
    }
    Err(mist_media::MediaError::malformed("init section", "no moov"))
}

fn worker(rx: mpsc::Receiver<Req>, tx: mpsc::Sender<Resp>) {
    let h = http::Http::new();
    for r in rx {
        let result = h.get(&r.url, r.range, r.cap, r.total);
        if tx
            .send(Resp {
                feed: r.feed,
                what: r.what,
                url: r.url,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}

/// Runs the pull until the source is gone for good or a signal; returns the exit status.
pub fn run(opts: Options, stop: Arc<AtomicBool>) -> i32 {
    let (req_tx, req_rx) = mpsc::channel::<Req>();
    let (resp_tx, resp_rx) = mpsc::channel::<Resp>();
    if let Err(e) = std::thread::Builder::new()
        .name("hls-fetch".into())
        .spawn(move || worker(req_rx, resp_tx))
    {
        mist_core::error!("cannot start the fetch thread: {e}");
        return 1;
    }
    let now = Instant::now();
    let mut p = Puller::new(opts, now);
    let mut last_hb = now;
    // Which request is in flight: its feed list generation (a master replaces the list).
    let mut done_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) {
            p.end_stream("stopped by a signal");
            p.exit.get_or_insert(0);
        }
        if let Some(code) = p.exit {
            p.end_stream("the input stops");
            return code;
        }
        if now.duration_since(last_hb) >= Duration::from_millis(500) {
            last_hb = now;
            p.ingest.heartbeat();
            if p.ingest.ended_elsewhere() {
                mist_core::info!("stream {} was ended", p.opts.stream);
                p.ingest.end();
                return 0;
            }
            p.publish_health();
        }
        if p.ingest.is_open()
            && p.last_frame
                .is_none_or(|t| now.duration_since(t) >= p.opts.idle)
        {
            p.end_stream(&format!("no media for {} ms", p.opts.idle.as_millis()));
        }
        if p.source_done() {
            // A VoD source: let the last segments play out, then end.
            let ahead = p
                .feeds
                .iter()
                .map(|f| f.taken_ms)
                .max()
                .unwrap_or(0)
                .saturating_sub(
                    p.start
                        .map_or(0, |s| now.duration_since(s).as_millis() as i64),
                );
            let at =
                *done_at.get_or_insert(now + Duration::from_millis(ahead.max(0) as u64 + 1000));
            if now >= at {
                if !p.ingest.is_open() {
                    p.start_stream();
                }
                p.end_stream("the source ended");
                return 0;
            }
        }
        if !p.ingest.is_open() && now.duration_since(p.last_data) >= p.opts.input_timeout {
            mist_core::info!(
                "nothing from {} for {} s: exiting",
                p.opts.url,
                p.opts.input_timeout.as_secs()
            );
            return 0;
        }
        let mut wait = Duration::from_millis(250);
        if !p.inflight {
            match p.next_request(now) {
                Ok(r) => {
                    mist_core::debug!("GET {}", r.url);
                    if req_tx.send(r).is_err() {
                        mist_core::error!("the fetch thread is gone");
                        return 1;
                    }
                    p.inflight = true;
                }
                Err(w) => wait = wait.min(w.max(Duration::from_millis(10))),
            }
        }
        match resp_rx.recv_timeout(wait) {
            Ok(r) => {
                p.inflight = false;
                p.on_response(r, Instant::now());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                mist_core::error!("the fetch thread is gone");
                return 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_urls() {
        assert!(is_hls_url("http://h/a/index.m3u8"));
        assert!(is_hls_url("HTTPS://h/a/index.M3U8?token=1"));
        assert!(!is_hls_url("http://h/a/x.ts"));
        assert!(!is_hls_url("/a/index.m3u8"));
        assert_eq!(capabilities()["name"], "HLS");
    }
}
