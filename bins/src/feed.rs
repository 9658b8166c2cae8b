//! One reader per stream per process, shared by all its viewers, whatever their protocol.
//!
//! * [`main_track`]: the rule every connector uses to pick the track whose keyframes start a
//!   viewer, a GOP, a segment (the first video track, else the first track).
//! * [`GopCache`]: the frames since the newest main-track keyframe, bounded by bytes, so that a new
//!   viewer starts at once with a decodable picture. HTTP caches muxed chunks, RTMP encoded
//!   messages; both share them with every viewer (`Bytes`, no copy per viewer).
//! * [`Source`]: a stream read from shared memory and muxed into one HTTP format, with track
//!   selection (`?video=`/`?audio=`) and the recheck when the track table changes (used by the
//!   HTTP server and the standalone writers); [`Feed`]: one source shared by every HTTP viewer of
//!   the same stream, format and selection, with the users-table slots of its viewers.
//!
//! MistOutRTMP's per-stream reader (`rtmp_server::PlayStream`) uses `main_track` and `GopCache`
//! from here; RTMP needs no muxer choice (one encoding per frame), so it does not go through
//! `Source`.

use crate::http_out::mux::{select, Format, Mux, Out};
use bytes::Bytes;
use mist_media::{Frame, Track};
use mist_net::server::{ConnId, Io};
use mist_shm::{ReadEvent, ReaderInfo, ShmError, StreamReader, StreamUser};
use std::time::{Duration, Instant};

/// What [`Source::step`] produced.
pub enum Step {
    /// A (new) start: send these bytes first. Everything before is void.
    Header(Vec<Bytes>),
    /// Media for the viewers who have the header.
    Data(Out),
    /// Nothing new for now.
    Pending,
    /// The track set changed in a way the format cannot follow: viewers must start over.
    Reset,
    /// The stream ended.
    Ended,
    /// The selected tracks cannot be sent in this format.
    Error(String),
}

/// The track whose keyframes start a viewer, a GOP or a segment: the first video track, else the
/// first track. The one place this rule lives.
pub fn main_track(tracks: &[Track]) -> Option<u32> {
    tracks
        .iter()
        .find(|t| t.kind() == mist_media::TrackKind::Video)
        .or(tracks.first())
        .map(|t| t.id)
}

/// The tracks of `reader`'s stream that `video`/`audio` select (`?video=`/`?audio=`, see
/// [`select`]) and `format` can carry, as the track table has them. Selectors such as `maxbps`
/// choose by the measured rates, which change without a track change.
pub fn selected(
    reader: &StreamReader,
    format: Format,
    video: Option<&str>,
    audio: Option<&str>,
) -> Vec<Track> {
    let table = reader.tracks();
    select(&reader.tracks_with_rates(), format, video, audio)
        .iter()
        .filter_map(|p| table.iter().find(|t| t.id == p.id).cloned())
        .collect()
}

/// A viewer's track selection, normalised so that one selection spelled differently shares its
/// reader (and a peer cannot grow a cache with endless spellings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selection {
    /// `?video=` as the viewer asked (`None`: the format's default choice).
    pub video: Option<String>,
    /// `?audio=` as the viewer asked (`None`: the format's default choice).
    pub audio: Option<String>,
}

impl Selection {
    /// From what follows the `?` of a URL or a stream name (`video=1&audio=none`); other keys
    /// are ignored.
    pub fn from_query(q: &str) -> Selection {
        let mut s = Selection::default();
        for kv in q.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = Some(crate::http_out::mux::normalize_selector(v));
            match k {
                "video" => s.video = v,
                "audio" => s.audio = v,
                _ => {}
            }
        }
        s
    }

    /// The selection of a stream name with a query (`stream?video=1`); default without one.
    pub fn from_name(name: &str) -> Selection {
        name.split_once('?')
            .map_or_else(Selection::default, |(_, q)| Selection::from_query(q))
    }

    /// No `video`/`audio` given.
    pub fn is_default(&self) -> bool {
        self.video.is_none() && self.audio.is_none()
    }

    /// The selected tracks of `reader`'s stream that `format` can carry.
    pub fn tracks(&self, reader: &StreamReader, format: Format) -> Vec<Track> {
        selected(reader, format, self.video.as_deref(), self.audio.as_deref())
    }
}

/// The items since the newest main-track keyframe (muxed chunks, encoded messages...), bounded
/// by bytes: beyond the bound the cache is dropped and new viewers wait for the next keyframe.
pub struct GopCache<T> {
    items: Vec<T>,
    bytes: usize,
    valid: bool,
    max: usize,
}

impl<T> GopCache<T> {
    /// An empty cache of at most `max_bytes`; `valid`: whether what comes before the first
    /// keyframe counts (a new viewer gets it).
    pub fn new(max_bytes: usize, valid: bool) -> GopCache<T> {
        GopCache {
            items: Vec::new(),
            bytes: 0,
            valid,
            max: max_bytes,
        }
    }

    /// A main-track keyframe (or a restart): a new GOP begins.
    pub fn restart(&mut self) {
        self.items.clear();
        self.bytes = 0;
        self.valid = true;
    }

    /// Forgets everything until the next [`GopCache::restart`].
    pub fn invalidate(&mut self) {
        self.items.clear();
        self.bytes = 0;
        self.valid = false;
    }

    /// Adds an item of `len` bytes to a valid GOP; over the bound the GOP is dropped.
    pub fn push(&mut self, item: T, len: usize) {
        if !self.valid {
            return;
        }
        self.bytes += len;
        if self.bytes > self.max {
            self.invalidate();
        } else {
            self.items.push(item);
        }
    }

    /// What a new viewer gets first (nothing when the GOP is not valid).
    pub fn items(&self) -> &[T] {
        &self.items
    }
}

/// One reader + one muxer.
pub struct Source {
    reader: StreamReader,
    format: Format,
    video: Option<String>,
    audio: Option<String>,
    tracks: Vec<Track>,
    main: Option<u32>,
    mux: Option<Box<dyn Mux>>,
    held: Option<Frame>,
    /// The track table changed: compare the selection at the next frame (a new writer sets its
    /// tracks one by one before its first frame, so judging at once would see a partial table).
    recheck: bool,
    ended: bool,
    bytes: u64,
    /// First and last decode time (ms) of the frames muxed.
    span: Option<(i64, i64)>,
}

impl Source {
    /// Opens the stream at its newest keyframe.
    pub fn open(
        stream: &str,
        format: Format,
        video: Option<String>,
        audio: Option<String>,
        connector: &str,
        host: &str,
    ) -> Result<Source, ShmError> {
        let mut reader = StreamReader::open(
            stream,
            ReaderInfo {
                connector: connector.into(),
                host: host.into(),
            },
        )?;
        // Live: start at the newest keyframe (the current GOP). VoD readers start at the beginning.
        if !matches!(mist_shm::stream_status(stream), Ok(s) if !s.live) {
            reader.seek_live();
        }
        Ok(Source {
            reader,
            format,
            video,
            audio,
            tracks: Vec::new(),
            main: None,
            mux: None,
            held: None,
            recheck: false,
            ended: false,
            bytes: 0,
            span: None,
        })
    }

    /// The stream read (its shared-memory name), for log lines and the users table.
    pub fn stream(&self) -> &str {
        self.reader.name()
    }

    /// First and last decode time (ms) of the frames muxed so far; (0, 0) before the first.
    pub fn media_range(&self) -> (i64, i64) {
        self.span.unwrap_or((0, 0))
    }

    /// Milliseconds of media muxed so far.
    pub fn media_ms(&self) -> i64 {
        let (a, b) = self.media_range();
        b - a
    }

    /// Counts bytes sent for the users table.
    pub fn report(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.reader.report(self.bytes, 0);
    }

    /// The selected tracks as the track table has them. Selectors such as `maxbps` choose by
    /// the measured rates, which change without a track change, so they are not compared.
    fn selection(&self) -> Vec<Track> {
        selected(
            &self.reader,
            self.format,
            self.video.as_deref(),
            self.audio.as_deref(),
        )
    }

    /// The next step; never blocks.
    pub fn step(&mut self) -> Step {
        if self.ended {
            return Step::Ended;
        }
        if let Some(f) = self.held.take() {
            if self.mux.is_some() {
                if let Some(s) = self.mux_frame(&f) {
                    return s;
                }
            } else if let Some(s) = self.start(f) {
                return s;
            }
        }
        loop {
            match self.reader.next() {
                ReadEvent::Frame(f) => {
                    if std::mem::take(&mut self.recheck) && self.selection() != self.tracks {
                        self.mux = None;
                        self.tracks.clear();
                        self.held = Some(f);
                        return Step::Reset;
                    }
                    if self.mux.is_none() {
                        if let Some(s) = self.start(f) {
                            return s;
                        }
                        continue;
                    }
                    if let Some(s) = self.mux_frame(&f) {
                        return s;
                    }
                }
                ReadEvent::TracksChanged | ReadEvent::Restarted => {
                    self.recheck = self.mux.is_some();
                }
                ReadEvent::Pending => return Step::Pending,
                ReadEvent::Ended => {
                    self.ended = true;
                    if let Some(m) = self.mux.as_mut() {
                        let out = m.flush();
                        if !out.chunks.is_empty() {
                            return Step::Data(out);
                        }
                    }
                    return Step::Ended;
                }
            }
        }
    }

    /// Starts muxing at `f` if it is a keyframe of the main selected track.
    fn start(&mut self, f: Frame) -> Option<Step> {
        let all = self.reader.tracks();
        let sel = self.selection();
        if sel.is_empty() {
            if !all.is_empty() && all.iter().any(|t| t.id == f.track) {
                let have: Vec<&str> = all.iter().map(|t| t.codec.mist_name()).collect();
                let can: Vec<&str> = self.format.codecs().iter().map(|c| c.mist_name()).collect();
                return Some(Step::Error(format!("none of the selected tracks of this stream ({}) can be sent as {} (it carries {})", have.join(", "), self.format.name(), can.join(", "))));
            }
            return None;
        }
        let main = main_track(&sel);
        if Some(f.track) != main || !f.keyframe {
            return None;
        }
        match self.format.muxer(&sel) {
            Ok(m) => {
                let h = m.header();
                self.mux = Some(m);
                self.tracks = sel;
                self.main = main;
                self.held = Some(f);
                Some(Step::Header(h))
            }
            Err(e) => Some(Step::Error(e.to_string())),
        }
    }

    fn mux_frame(&mut self, f: &Frame) -> Option<Step> {
        if !self.tracks.iter().any(|t| t.id == f.track) {
            return None;
        }
        let main_key = Some(f.track) == self.main && f.keyframe;
        let span = self.span.get_or_insert((f.dts, f.dts));
        span.1 = span.1.max(f.dts);
        let out = self.mux.as_mut()?.frame(f, main_key);
        (!out.chunks.is_empty()).then_some(Step::Data(out))
    }
}

/// Bound of the per-feed GOP cache (beyond it new viewers wait for the next keyframe).
const GOP_CACHE_MAX: usize = 32 << 20;
/// How long a viewer waits for the first keyframe of a stream that exists.
pub const START_WAIT: Duration = Duration::from_secs(10);

/// One source shared by every viewer of the same stream, format and track selection.
pub struct Feed {
    /// The one reader and muxer of this stream for every viewer of the feed.
    pub src: Source,
    format: Format,
    header: Option<Vec<Bytes>>,
    gop: GopCache<Bytes>,
    /// Viewers that have the header and get every step.
    pub viewers: Vec<ConnId>,
    /// Viewers waiting for a start (a keyframe), with when they came: they give up after [`START_WAIT`].
    pub waiting: Vec<(ConnId, Instant)>,
    /// The source ended: the feed is dropped once its viewers have their bytes.
    pub done: bool,
    /// Users-table slots for viewers beyond the first (the source's reader counts as the first),
    /// so the controller's viewer counts see every HTTP viewer, each with its own address.
    slots: Vec<(ConnId, StreamUser)>,
    /// A VoD feed (one viewer, from the first frame): muxes only while the viewer's unsent
    /// backlog is below [`VOD_BACKLOG`], and goes on when it drains.
    pub vod: bool,
    /// Viewers that played to the end of the stream, with their address (CONN_STOP), for the
    /// caller to take. Taken before the feed is dropped: a VoD feed may reach its end in the
    /// very poll that starts its viewer (a short file fits the socket buffers at once).
    pub stopped: Vec<(ConnId, String)>,
}

/// Unsent bytes a VoD viewer may have queued before its feed pauses.
pub const VOD_BACKLOG: usize = 1 << 20;

impl Feed {
    /// A feed of `src` muxed as `format`, with no viewer yet.
    pub fn new(src: Source, format: Format) -> Feed {
        Feed {
            src,
            format,
            header: None,
            gop: GopCache::new(GOP_CACHE_MAX, false),
            viewers: Vec::new(),
            waiting: Vec::new(),
            done: false,
            slots: Vec::new(),
            vod: false,
            stopped: Vec::new(),
        }
    }

    /// Adds a viewer: started at once when the feed has started, else when it does.
    pub fn attach(&mut self, io: &mut Io, id: ConnId) {
        if self.header.is_some() {
            self.start_viewer(io, id);
        } else {
            self.waiting.push((id, Instant::now()));
        }
    }

    /// Forgets a viewer that left, and its users-table slot, so the counts drop at once.
    pub fn detach(&mut self, id: ConnId) {
        self.viewers.retain(|&v| v != id);
        self.waiting.retain(|&(v, _)| v != id);
        self.sync_slots(None);
    }

    /// One users-table slot per viewer (the source's reader is the first). `io` gives new slots
    /// their viewer's address; without it (a viewer left) slots are only dropped.
    fn sync_slots(&mut self, io: Option<&Io>) {
        let extra: std::collections::HashSet<ConnId> =
            self.viewers.iter().skip(1).copied().collect();
        self.slots.retain(|(id, _)| extra.contains(id));
        let Some(io) = io else {
            return;
        };
        if self.slots.len() == extra.len() {
            return;
        }
        let have: std::collections::HashSet<ConnId> =
            self.slots.iter().map(|(id, _)| *id).collect();
        for id in self.viewers.iter().skip(1).copied() {
            if have.contains(&id) {
                continue;
            }
            let info = ReaderInfo {
                connector: self.format.connector().into(),
                host: io.peer(id).map(|a| a.ip().to_string()).unwrap_or_default(),
            };
            match StreamUser::open(self.src.stream(), &info) {
                Ok(r) => self.slots.push((id, r)),
                Err(_) => break,
            }
        }
    }

    /// No viewer, playing or waiting: the owner may drop the feed and its reader.
    pub fn is_idle(&self) -> bool {
        self.viewers.is_empty() && self.waiting.is_empty()
    }

    fn start_viewer(&mut self, io: &mut Io, id: ConnId) {
        if !io.start_stream(id, 200, &[("Content-Type", self.format.mime())]) {
            return; // HEAD, or gone
        }
        let mut first: Vec<Bytes> = self.header.clone().unwrap_or_default();
        first.extend(self.gop.items().iter().cloned());
        let n: usize = first.iter().map(Bytes::len).sum();
        if io.send(id, &first) {
            crate::http_out::viewer_sessions::fanout(&[id], n as u64);
            self.viewers.push(id);
            self.src.report(n as u64);
            self.sync_slots(Some(io));
        }
    }

    /// Reads and muxes what is new and hands it to the viewers. Bounded work per call.
    pub fn poll(&mut self, io: &mut Io) {
        let mut sent = false;
        for _ in 0..2000 {
            if self.vod && self.viewers.iter().any(|&v| io.backlog(v) > VOD_BACKLOG) {
                break;
            }
            match self.src.step() {
                Step::Pending => break,
                Step::Header(h) => {
                    self.header = Some(h);
                    self.gop.invalidate();
                    for (id, _) in std::mem::take(&mut self.waiting) {
                        self.start_viewer(io, id);
                    }
                }
                Step::Data(out) => {
                    if out.join {
                        self.gop.restart();
                    }
                    let n: usize = out.chunks.iter().map(Bytes::len).sum();
                    if !self.vod {
                        for c in &out.chunks {
                            self.gop.push(c.clone(), c.len());
                        }
                    }
                    let before = self.viewers.len();
                    sent |= n > 0;
                    io.send_all(&mut self.viewers, &out.chunks);
                    crate::http_out::viewer_sessions::fanout(&self.viewers, n as u64);
                    if before > 0 {
                        self.src.report((n * self.viewers.len()) as u64);
                    }
                    if self.viewers.len() != before {
                        self.sync_slots(None);
                    }
                }
                Step::Reset => {
                    for v in std::mem::take(&mut self.viewers) {
                        io.end_stream(v);
                    }
                    self.sync_slots(None);
                    self.header = None;
                    self.gop.invalidate();
                }
                Step::Ended => {
                    for v in std::mem::take(&mut self.viewers) {
                        let host = io.peer(v).map(|a| a.ip().to_string()).unwrap_or_default();
                        io.end_stream(v);
                        self.stopped.push((v, host));
                    }
                    for (id, _) in std::mem::take(&mut self.waiting) {
                        io.respond_text(id, 503, "stream offline");
                    }
                    self.done = true;
                    return;
                }
                Step::Error(e) => {
                    for v in std::mem::take(&mut self.viewers) {
                        io.end_stream(v);
                    }
                    for (id, _) in std::mem::take(&mut self.waiting) {
                        io.respond_text(id, 415, &e);
                    }
                    self.done = true;
                    return;
                }
            }
        }
        if self.vod && sent {
            // Paced by the viewers: mux more as soon as what is queued is written.
            for &v in &self.viewers {
                io.notify_drained(v);
            }
        }
        // Viewers that waited too long for a first keyframe.
        let now = Instant::now();
        let (late, keep): (Vec<_>, Vec<_>) = self
            .waiting
            .drain(..)
            .partition(|(_, t)| now.duration_since(*t) > START_WAIT);
        self.waiting = keep;
        for (id, _) in late {
            io.respond_text(id, 503, "stream has no playable data yet");
        }
    }
}

impl Source {
    /// Blocks until the stream changes or the timeout passes (standalone front ends).
    pub fn wait(&self, timeout: Duration) {
        self.reader.wait(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mist_media::Codec;

    #[test]
    fn main_track_is_the_first_video_else_the_first() {
        let a = Track::new(1, Codec::Aac);
        let v = Track::new(2, Codec::H264);
        assert_eq!(main_track(&[a.clone(), v.clone()]), Some(2));
        assert_eq!(main_track(&[a]), Some(1));
        assert_eq!(main_track(&[]), None);
    }

    #[test]
    fn selections_from_names() {
        assert!(Selection::from_name("live+a").is_default());
        let s = Selection::from_name("live+a?audio=NONE&video= 01&x=y");
        assert_eq!(s.video.as_deref(), Some("1"));
        assert_eq!(s.audio.as_deref(), Some("none"));
        assert_eq!(s, Selection::from_query("video=1,1&audio=none"));
    }

    #[test]
    fn gop_cache_is_bounded_and_restarts_at_keyframes() {
        let mut g = GopCache::new(10, false);
        g.push(1, 4); // before the first keyframe: not kept
        assert!(g.items().is_empty());
        g.restart();
        g.push(2, 4);
        g.push(3, 4);
        assert_eq!(g.items(), &[2, 3]);
        g.push(4, 4); // over the bound: dropped until the next keyframe
        assert!(g.items().is_empty());
        g.push(5, 1);
        assert!(g.items().is_empty());
        g.restart();
        g.push(6, 4);
        assert_eq!(g.items(), &[6]);
    }
}
