//! VoD streams (`WriterOptions { live: false }`): one index per stream, built once the input has
//! written every frame ([`mist_shm::StreamWriter::complete`]), shared by HLS, CMAF and
//! progressive MP4.
//!
//! The index ([`VodIndex`]) holds the track table and every frame's metadata (track, times,
//! keyframe, length: about 60 bytes per frame) and where its payload is: a `Bytes` into the
//! shared-memory pages for inline records (no copy, the input keeps those pages anyway), or the
//! offset in the stream's source file for external records (MP4 inputs), read with `pread` only
//! when needed. Building the index reads no payload ([`StreamReader::next_record`]). Segmented
//! formats cut it with the same [`Timeline`] settings as live (2 s target, cut at main-track
//! keyframes, nothing evicted) and mux a segment only when it is asked for, loading that
//! segment's payloads then; muxed segments sit in a small LRU ([`SEGMENT_CACHE_BYTES`] per stream
//! and format). Progressive MP4 is a real moov-first file ([`Mp4Plan`]): the moov is built once
//! from the index, the body is the moov + mdat header + the frames' payloads, produced on demand
//! by offset ([`mist_net::server::Body`]) as the socket drains (external payloads read from the
//! file, about one send step at a time), so Range requests cost a binary search and never a copy
//! of the file.
//!
//! URLs are the live ones (`/hls/$/…`, `/cmaf/$/…`), so players need nothing special; manifests
//! are complete (VOD playlist type, EXT-X-ENDLIST, static MPD with mediaPresentationDuration).

use super::mux::{select, Format};
use super::segmented::{Answer, SegmentedStream};
use super::{cmaf, hls};
use bytes::Bytes;
use mist_media::dash::{mpd, MpdOptions};
use mist_media::hls::{master_playlist, media_playlist, MasterOptions, MediaOptions, PlaylistType};
use mist_media::mp4::{FragmentWriter, Mp4Writer};
use mist_media::mpegts::{Muxer, MuxerOptions};
use mist_media::segment::{Timeline, TimelineConfig, Window};
use mist_media::{Frame, Track, TrackKind};
use mist_shm::{Payload, ReadEvent, ReaderInfo, RecordEvent, SourceFile, StreamReader};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Segment duration target: the live one (segments start at main-track keyframes).
pub const TARGET_MS: u32 = 2000;
/// Bound of the per-stream, per-format cache of muxed segments.
pub const SEGMENT_CACHE_BYTES: usize = 16 << 20;
/// Frames read from shared memory per call while an index is being built.
const LOAD_STEP: usize = 50_000;

/// One frame of a [`VodIndex`]: its metadata and where its payload is.
#[derive(Debug, Clone)]
pub struct VodFrame {
    /// Track id.
    pub track: u32,
    /// Decode time (ms, shifted: see [`VodIndex::frames`]).
    pub dts: i64,
    /// Presentation minus decode time (ms).
    pub pts_offset: i32,
    /// A frame a player can start at.
    pub keyframe: bool,
    /// The bytes, or where they are in the source file.
    pub payload: Payload,
}

impl VodFrame {
    /// Payload bytes: what the frame adds to a segment or an mdat.
    pub fn len(&self) -> usize {
        self.payload.len()
    }
    /// An empty frame (clippy wants it beside `len`; muxers skip nothing for it).
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }
}

/// Every frame of a complete VoD stream, in stream (decode) order, without external payloads.
pub struct VodIndex {
    /// The stream's tracks, as the input wrote them.
    pub tracks: Vec<Track>,
    /// Times are shifted so the earliest is ≥ 0 (as `mist_media::remux` does): fragmented MP4
    /// and MPD times are unsigned.
    pub frames: Vec<VodFrame>,
    /// The stream's source file, when frames are external.
    pub source: Option<Arc<SourceFile>>,
    /// Earliest and latest frame time (ms).
    pub first_ms: i64,
    /// Latest frame time (ms).
    pub last_ms: i64,
}

/// What [`index`] has for a stream.
pub enum VodState {
    /// The whole stream is indexed.
    Ready(Arc<VodIndex>),
    /// Not complete yet (the input is still writing): ask again later.
    Wait,
    /// Not a VoD stream, or gone.
    Failed(VodError),
}

/// Why a VoD stream cannot be served (from its index, or as a progressive MP4).
#[derive(Debug, thiserror::Error)]
pub enum VodError {
    /// The stream cannot be opened or read.
    #[error(transparent)]
    Shm(#[from] mist_shm::ShmError),
    /// The stream is live: its segments come from the live segmenters instead.
    #[error("not a VoD stream")]
    NotVod,
    /// The stream ended while it was indexed.
    #[error("stream ended")]
    Ended,
    /// The payloads of the stream's external records cannot be read.
    #[error("source file: {0}")]
    Source(mist_shm::SourceError),
    /// The selection leaves nothing the format can carry.
    #[error("no track of this stream can be sent in this format")]
    NoTrack,
    /// Nothing to start playing at.
    #[error("the stream has no keyframe to start at")]
    NoKeyframe,
    /// The selection leaves nothing MP4 can carry.
    #[error("none of the selected tracks can be sent as MP4")]
    NoMp4Track,
    /// The MP4 writer refused the tracks or a sample.
    #[error(transparent)]
    Mp4(#[from] mist_media::MediaError),
    /// A frame too large for an MP4 sample size (32 bits).
    #[error("frame too large")]
    FrameTooLarge,
    /// More frames than an MP4 sample table can count (32 bits).
    #[error("too many frames")]
    TooManyFrames,
}

struct Loader {
    reader: StreamReader,
    frames: Vec<VodFrame>,
    epoch: u32,
}

enum Entry {
    Loading(Box<Loader>),
    Ready(Weak<VodIndex>, u32),
}

fn registry() -> &'static Mutex<HashMap<String, Entry>> {
    static R: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether a stream exists and is VoD.
pub fn is_vod(stream: &str) -> bool {
    mist_shm::stream_status(stream).is_ok_and(|s| !s.live && !s.ended)
}

/// The index of a VoD stream: shared while anyone holds it, built (bounded work per call) by
/// reading the stream once it exists; `Wait` until the input has written every frame.
pub fn index(stream: &str) -> VodState {
    let st = match mist_shm::stream_status(stream) {
        Ok(s) => s,
        Err(e) => return VodState::Failed(e.into()),
    };
    if st.live {
        return VodState::Failed(VodError::NotVod);
    }
    if st.ended {
        return VodState::Failed(VodError::Ended);
    }
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    // Forget indexes nobody holds any more.
    reg.retain(|_, e| match e {
        Entry::Ready(w, _) => w.strong_count() > 0,
        Entry::Loading(_) => true,
    });
    match reg.get(stream) {
        Some(Entry::Ready(w, epoch)) if *epoch == st.epoch => {
            if let Some(i) = w.upgrade() {
                return VodState::Ready(i);
            }
        }
        Some(Entry::Loading(l)) if l.epoch == st.epoch => {}
        _ => {
            if !st.complete {
                return VodState::Wait;
            }
            let reader = match StreamReader::open(
                stream,
                ReaderInfo {
                    connector: "HTTP".into(),
                    host: String::new(),
                },
            ) {
                Ok(r) => r,
                Err(e) => return VodState::Failed(e.into()),
            };
            reg.insert(
                stream.to_string(),
                Entry::Loading(Box::new(Loader {
                    reader,
                    frames: Vec::new(),
                    epoch: st.epoch,
                })),
            );
        }
    }
    let Some(Entry::Loading(l)) = reg.get_mut(stream) else {
        return VodState::Wait;
    };
    for _ in 0..LOAD_STEP {
        match l.reader.next_record() {
            RecordEvent::Record(r) => l.frames.push(VodFrame {
                track: r.track,
                dts: r.dts,
                pts_offset: r.pts_offset,
                keyframe: r.keyframe,
                payload: r.payload,
            }),
            RecordEvent::Event(ReadEvent::Frame(_) | ReadEvent::TracksChanged) => {}
            RecordEvent::Event(ReadEvent::Pending) => return VodState::Wait,
            RecordEvent::Event(ReadEvent::Restarted) => {
                reg.remove(stream);
                return VodState::Wait;
            }
            RecordEvent::Event(ReadEvent::Ended) => {
                let external = l
                    .frames
                    .iter()
                    .any(|f| matches!(f.payload, Payload::External { .. }));
                let source = if external {
                    match l.reader.source_file() {
                        Ok(f) => Some(f),
                        Err(e) => {
                            reg.remove(stream);
                            return VodState::Failed(VodError::Source(e));
                        }
                    }
                } else {
                    None
                };
                let idx = Arc::new(build(
                    l.reader.tracks(),
                    std::mem::take(&mut l.frames),
                    source,
                ));
                let epoch = l.epoch;
                reg.insert(
                    stream.to_string(),
                    Entry::Ready(Arc::downgrade(&idx), epoch),
                );
                return VodState::Ready(idx);
            }
        }
    }
    VodState::Wait
}

fn build(
    tracks: Vec<Track>,
    mut frames: Vec<VodFrame>,
    source: Option<Arc<SourceFile>>,
) -> VodIndex {
    let min = frames.iter().map(|f| f.dts).min().unwrap_or(0);
    if min < 0 {
        for f in &mut frames {
            f.dts -= min;
        }
    }
    let first_ms = frames.iter().map(|f| f.dts).min().unwrap_or(0);
    let last_ms = frames.iter().map(|f| f.dts).max().unwrap_or(0);
    VodIndex {
        tracks,
        frames,
        source,
        first_ms,
        last_ms,
    }
}

/// A selection of tracks cut into segments.
pub struct Cut {
    /// The segment timeline of the selection (durations for the playlist or MPD).
    pub tl: Timeline,
    /// Frame index ranges (into [`VodIndex::frames`]) of each segment; segment `seq` is
    /// `ranges[seq]`. Frames of other tracks are in the ranges too.
    pub ranges: Vec<(usize, usize)>,
}

impl VodIndex {
    /// Cuts the selected tracks as the live timeline would: at main-track keyframes, 2 s target.
    pub fn cut(&self, sel: &[Track]) -> Option<Cut> {
        let cfg = TimelineConfig {
            target_ms: TARGET_MS,
            audio_target_ms: TARGET_MS,
            window: Window::Unbounded,
            ..TimelineConfig::default()
        };
        let mut tl = Timeline::new(cfg, sel);
        let main = tl.main_track()?;
        // Audio frames are all sync samples (as the timeline counts them).
        let video_main = sel
            .iter()
            .any(|t| t.id == main && t.kind() == TrackKind::Video);
        let mut starts = Vec::new();
        let mut open = None;
        for (i, f) in self.frames.iter().enumerate() {
            if !sel.iter().any(|t| t.id == f.track) {
                continue;
            }
            if open.is_none() && (f.track != main || (video_main && !f.keyframe)) {
                continue;
            }
            let size = u32::try_from(f.len()).unwrap_or(u32::MAX);
            tl.push(f.track, f.dts, f.keyframe, size);
            let now = tl.open_segment().map(|s| s.seq);
            if now != open {
                starts.push(i);
                open = now;
            }
        }
        tl.finish();
        if starts.is_empty() || tl.len() != starts.len() {
            return None;
        }
        let n = self.frames.len();
        let ranges = starts
            .iter()
            .enumerate()
            .map(|(k, &s)| (s, starts.get(k + 1).copied().unwrap_or(n)))
            .collect();
        Some(Cut { tl, ranges })
    }

    /// Frame `i` with its payload (read from the source file if it is external); `None` if it
    /// cannot be read (logged).
    pub fn frame(&self, i: usize) -> Option<Frame> {
        let f = self.frames.get(i)?;
        let data = match &f.payload {
            Payload::Inline(b) => b.clone(),
            Payload::External { offset, len } => {
                let r = match &self.source {
                    Some(src) => src.read(*offset, *len as usize),
                    None => Err(std::io::Error::other("no source file")),
                };
                match r {
                    Ok(b) => b,
                    Err(e) => {
                        // A vanished source file fails every frame: one line per 5 s, not per frame.
                        static LAST: std::sync::atomic::AtomicU64 =
                            std::sync::atomic::AtomicU64::new(0);
                        static SKIPPED: std::sync::atomic::AtomicU64 =
                            std::sync::atomic::AtomicU64::new(0);
                        use std::sync::atomic::Ordering::Relaxed;
                        let skipped = SKIPPED.fetch_add(1, Relaxed) + 1;
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                        if now >= LAST.load(Relaxed) + 5 {
                            LAST.store(now, Relaxed);
                            SKIPPED.store(0, Relaxed);
                            mist_core::warn!(
                                "VoD frame at {} ms skipped: {e} ({skipped} frames skipped since the last such line)",
                                f.dts
                            );
                        }
                        return None;
                    }
                }
            }
        };
        Some(Frame {
            track: f.track,
            dts: f.dts,
            pts_offset: f.pts_offset,
            keyframe: f.keyframe,
            data,
        })
    }

    /// The frames `a..b` of the given tracks, with payloads (unreadable ones left out).
    pub fn load(&self, a: usize, b: usize, keep: impl Fn(u32) -> bool) -> Vec<Frame> {
        (a..b.min(self.frames.len()))
            .filter(|&i| keep(self.frames[i].track))
            .filter_map(|i| self.frame(i))
            .collect()
    }

    /// Duration of the stream in ms (for messages and the info).
    pub fn duration_ms(&self) -> i64 {
        self.last_ms - self.first_ms
    }
}

/// A small LRU of muxed segments, bounded in bytes.
pub struct ByteLru<K> {
    items: VecDeque<(K, Bytes)>,
    bytes: usize,
    max: usize,
}

impl<K: PartialEq> ByteLru<K> {
    /// An empty cache that keeps at most `max` bytes.
    pub fn new(max: usize) -> Self {
        ByteLru {
            items: VecDeque::new(),
            bytes: 0,
            max,
        }
    }
    /// The bytes kept for `k`, now the most recently used.
    pub fn get(&mut self, k: &K) -> Option<Bytes> {
        let i = self.items.iter().position(|(x, _)| x == k)?;
        let e = self.items.remove(i)?;
        let b = e.1.clone();
        self.items.push_back(e);
        Some(b)
    }
    /// Keeps `b` for `k`, dropping the least recently used beyond the byte bound.
    pub fn put(&mut self, k: K, b: Bytes) {
        self.bytes += b.len();
        self.items.push_back((k, b));
        while self.bytes > self.max && self.items.len() > 1 {
            if let Some((_, old)) = self.items.pop_front() {
                self.bytes -= old.len();
            }
        }
    }
    /// Bytes held (for the output's memory accounting).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The common part of the VoD segmented formats: waiting for the index, then a cut.
struct Loaded {
    idx: Arc<VodIndex>,
    sel: Vec<Track>,
    cut: Cut,
}

fn load(stream: &str, sel_of: impl Fn(&[Track]) -> Vec<Track>) -> Result<Option<Loaded>, VodError> {
    match index(stream) {
        VodState::Wait => Ok(None),
        VodState::Failed(e) => Err(e),
        VodState::Ready(idx) => {
            let sel = sel_of(&idx.tracks);
            if sel.is_empty() {
                return Err(VodError::NoTrack);
            }
            let cut = idx.cut(&sel).ok_or(VodError::NoKeyframe)?;
            Ok(Some(Loaded { idx, sel, cut }))
        }
    }
}

const M3U8: &str = "application/vnd.apple.mpegurl";
const SEGMENT_CACHE: &str = "public, max-age=3600, immutable";

// ---- HLS (MPEG-TS segments) ----

struct TsVariant {
    ids: String,
    tracks: Vec<Track>,
    /// The muxer after the last segment made, with the number of the segment it would make
    /// next: a player fetching in order gets continuous TS continuity counters.
    next: Option<(u64, Muxer)>,
}

/// A users-table slot (a reader that is never read), so the controller's viewer counts see the
/// VoD viewers of a format as they see the live ones (one per stream and format, as live).
fn slot(stream: &str, connector: &str, host: &str) -> Option<StreamReader> {
    StreamReader::open(
        stream,
        ReaderInfo {
            connector: connector.into(),
            host: host.into(),
        },
    )
    .ok()
}

/// `/hls/$/…` of a VoD stream.
pub struct VodHls {
    stream: String,
    _slot: Option<StreamReader>,
    loaded: Option<Loaded>,
    variants: Vec<TsVariant>,
    cache: ByteLru<(usize, u64)>,
    failed: Option<String>,
}

impl VodHls {
    /// `/hls/$/…` of VoD stream `stream`; the index is built on the first request. `host` names the viewer in the users table.
    pub fn open(stream: &str, host: &str) -> VodHls {
        VodHls {
            stream: stream.to_string(),
            _slot: slot(stream, "HLS", host),
            loaded: None,
            variants: Vec::new(),
            cache: ByteLru::new(SEGMENT_CACHE_BYTES),
            failed: None,
        }
    }

    fn segment(&mut self, v: usize, seq: u64) -> Option<Bytes> {
        if let Some(b) = self.cache.get(&(v, seq)) {
            return Some(b);
        }
        let l = self.loaded.as_ref()?;
        let &(a, b) = l.cut.ranges.get(usize::try_from(seq).ok()?)?;
        let var = &mut self.variants[v];
        let mut mux = match var.next.take() {
            Some((n, m)) if n == seq => m,
            _ => Muxer::new(&var.tracks, MuxerOptions::default()).ok()?,
        };
        let mut out = Vec::new();
        for f in l.idx.load(a, b, |id| var.tracks.iter().any(|t| t.id == id)) {
            let _ = mux.write_frame(&f, &mut out);
        }
        mux.flush(&mut out);
        var.next = Some((seq + 1, mux));
        let out = Bytes::from(out);
        self.cache.put((v, seq), out.clone());
        Some(out)
    }
}

impl SegmentedStream for VodHls {
    fn poll(&mut self) {
        if self.loaded.is_some() || self.failed.is_some() {
            return;
        }
        match load(&self.stream, |t| select(t, Format::Ts, Some("all"), None)) {
            Ok(None) => {}
            Err(e) => self.failed = Some(e.to_string()),
            Ok(Some(l)) => {
                self.variants = hls::variant_groups(&l.sel)
                    .into_iter()
                    .map(|g| TsVariant {
                        ids: hls::variant_ids(&g),
                        tracks: g,
                        next: None,
                    })
                    .collect();
                self.loaded = Some(l);
            }
        }
    }

    fn answer(&mut self, rest: &str, _host: &str) -> Answer {
        if let Some(e) = &self.failed {
            return Answer::NotFound(e.clone());
        }
        let Some(l) = self.loaded.as_ref() else {
            return Answer::Wait;
        };
        if rest == "index.m3u8" || rest.is_empty() {
            return Answer::Ready {
                ctype: M3U8,
                cache: "no-cache",
                body: Bytes::from(master_playlist(&l.sel, &l.cut.tl, &MasterOptions::ts())),
            };
        }
        let Some((ids, file)) = rest.split_once('/') else {
            return Answer::NotFound("no such playlist".into());
        };
        let Some(v) = self.variants.iter().position(|v| v.ids == ids) else {
            return Answer::NotFound("no such track combination".into());
        };
        if file == "index.m3u8" {
            let ids: Vec<u32> = self.variants[v].tracks.iter().map(|t| t.id).collect();
            let mut o = MediaOptions::ts(&ids);
            o.playlist_type = Some(PlaylistType::Vod);
            return Answer::Ready {
                ctype: M3U8,
                cache: "no-cache",
                body: Bytes::from(media_playlist(&l.cut.tl, &o)),
            };
        }
        let Some(seq) = hls::segment_seq(file) else {
            return Answer::NotFound("no such segment".into());
        };
        match self.segment(v, seq) {
            Some(body) => Answer::Ready {
                ctype: "video/mp2t",
                cache: SEGMENT_CACHE,
                body,
            },
            None => Answer::NotFound("no such segment".into()),
        }
    }

    fn ended(&self) -> bool {
        // A failed slot (the stream went away or became live) is replaced by the next request.
        self.failed.is_some()
    }
}

// ---- CMAF (DASH + fMP4 HLS) ----

/// `/cmaf/$/…` of a VoD stream.
pub struct VodCmaf {
    stream: String,
    _slot: Option<StreamReader>,
    loaded: Option<Loaded>,
    writers: Vec<FragmentWriter>,
    inits: HashMap<u32, Bytes>,
    cache: ByteLru<(u32, u64)>,
    failed: Option<String>,
}

impl VodCmaf {
    /// `/cmaf/$/…` of VoD stream `stream`; the index is built on the first request. `host` names the viewer in the users table.
    pub fn open(stream: &str, host: &str) -> VodCmaf {
        VodCmaf {
            stream: stream.to_string(),
            _slot: slot(stream, "CMAF", host),
            loaded: None,
            writers: Vec::new(),
            inits: HashMap::new(),
            cache: ByteLru::new(SEGMENT_CACHE_BYTES),
            failed: None,
        }
    }

    /// The fragment of `track` (index `ti` in the selection) for segment `seq`.
    fn fragment(&mut self, ti: usize, seq: u64) -> Option<Bytes> {
        let l = self.loaded.as_ref()?;
        let id = l.sel[ti].id;
        if let Some(b) = self.cache.get(&(id, seq)) {
            return Some(b);
        }
        let k = usize::try_from(seq).ok()?;
        let &(a, b) = l.cut.ranges.get(k)?;
        let frames: Vec<Frame> = l.idx.load(a, b, |t| t == id);
        // The last frame lasts until the track's next frame (in the next segment); at the very
        // end, the main track ends with its segment and others repeat their last duration.
        let end = l.idx.frames[b..]
            .iter()
            .find(|f| f.track == id)
            .map(|f| f.dts)
            .or_else(|| {
                if Some(id) == l.cut.tl.main_track() {
                    l.cut.tl.get(seq).and_then(|s| s.end_ms)
                } else {
                    match frames.as_slice() {
                        [.., p, q] => Some(q.dts + (q.dts - p.dts)),
                        _ => None,
                    }
                }
            });
        let w = &mut self.writers[ti];
        w.set_sequence(u32::try_from(seq + 1).unwrap_or(u32::MAX));
        let out = Bytes::from(w.media_segment(&frames, end).ok()?);
        self.cache.put((id, seq), out.clone());
        Some(out)
    }
}

impl SegmentedStream for VodCmaf {
    fn poll(&mut self) {
        if self.loaded.is_some() || self.failed.is_some() {
            return;
        }
        match load(&self.stream, |t| {
            select(t, Format::Fmp4, Some("all"), Some("all"))
        }) {
            Ok(None) => {}
            Err(e) => self.failed = Some(e.to_string()),
            Ok(Some(l)) => match cmaf::writers_of(&l.sel) {
                Ok((writers, inits)) => {
                    self.writers = writers;
                    self.inits = inits;
                    self.loaded = Some(l);
                }
                Err(e) => self.failed = Some(e.to_string()),
            },
        }
    }

    fn answer(&mut self, rest: &str, _host: &str) -> Answer {
        if let Some(e) = &self.failed {
            return Answer::NotFound(e.clone());
        }
        let Some(l) = self.loaded.as_ref() else {
            return Answer::Wait;
        };
        let manifest = |ctype: &'static str, body: String| Answer::Ready {
            ctype,
            cache: "no-cache",
            body: Bytes::from(body),
        };
        match rest {
            "index.mpd" => {
                return manifest(
                    "application/dash+xml",
                    mpd(&l.sel, &l.cut.tl, &MpdOptions::vod()),
                )
            }
            "index.m3u8" | "" => {
                let o = cmaf::master_options();
                return manifest(M3U8, master_playlist(&l.sel, &l.cut.tl, &o));
            }
            _ => {}
        }
        let Some((id, file)) = rest.split_once('/') else {
            return Answer::NotFound("no such file".into());
        };
        let Some(ti) = id
            .parse::<u32>()
            .ok()
            .and_then(|id| l.sel.iter().position(|t| t.id == id))
        else {
            return Answer::NotFound("no such track".into());
        };
        let track = l.sel[ti].id;
        let ctype = cmaf::ctype(&l.sel[ti]);
        match file {
            "index.m3u8" => {
                let mut o = cmaf::media_options(track);
                o.playlist_type = Some(PlaylistType::Vod);
                manifest(M3U8, media_playlist(&l.cut.tl, &o))
            }
            "init.mp4" => match self.inits.get(&track) {
                Some(b) => Answer::Ready {
                    ctype,
                    cache: SEGMENT_CACHE,
                    body: b.clone(),
                },
                None => Answer::NotFound("no init segment".into()),
            },
            _ => {
                let Some(seq) = file
                    .strip_suffix(".m4s")
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|start| l.cut.tl.by_start(start))
                    .map(|s| s.seq)
                else {
                    return Answer::NotFound("no such segment".into());
                };
                match self.fragment(ti, seq) {
                    Some(body) => Answer::Ready {
                        ctype,
                        cache: SEGMENT_CACHE,
                        body,
                    },
                    None => Answer::NotFound("segment could not be made".into()),
                }
            }
        }
    }

    fn ended(&self) -> bool {
        // A failed slot (the stream went away or became live) is replaced by the next request.
        self.failed.is_some()
    }
}

// ---- progressive MP4, moov first ----

/// A progressive MP4 of a VoD stream: ftyp + moov + mdat header, then the selected frames'
/// payloads in stream order. About 12 bytes per frame besides the moov.
pub struct Mp4Plan {
    idx: Arc<VodIndex>,
    header: Bytes,
    /// Index (into the index's frames) of each frame in the mdat, in order.
    frames: Vec<u32>,
    /// Body offset of each frame's payload.
    offsets: Vec<u64>,
    len: u64,
}

impl Mp4Plan {
    /// The plan of the selected tracks (`?video=`/`?audio=`); frames too large or too many for MP4 are an error before any byte is sent.
    pub fn new(
        idx: Arc<VodIndex>,
        video: Option<&str>,
        audio: Option<&str>,
    ) -> Result<Mp4Plan, VodError> {
        let sel = select(&idx.tracks, Format::Fmp4, video, audio);
        if sel.is_empty() {
            return Err(VodError::NoMp4Track);
        }
        let mut w = Mp4Writer::new(sel.clone())?;
        let mut frames = Vec::new();
        for (i, f) in idx.frames.iter().enumerate() {
            if sel.iter().any(|t| t.id == f.track) {
                let size = u32::try_from(f.len()).map_err(|_| VodError::FrameTooLarge)?;
                w.add_sample(f.track, f.dts, f.pts_offset, f.keyframe, size)?;
                frames.push(u32::try_from(i).map_err(|_| VodError::TooManyFrames)?);
            }
        }
        let header = Bytes::from(w.header_moov_first()?);
        let mut offsets = Vec::with_capacity(frames.len());
        let mut at = header.len() as u64;
        for &i in &frames {
            offsets.push(at);
            at += idx.frames[i as usize].len() as u64;
        }
        Ok(Mp4Plan {
            idx,
            header,
            frames,
            offsets,
            len: at,
        })
    }

    /// The body's length (the Content-Length, and the end of Range requests).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Heap bytes the plan holds (its header and per-frame tables; the index is shared).
    pub fn heap_bytes(&self) -> usize {
        self.header.len() + self.frames.capacity() * 4 + self.offsets.capacity() * 8
    }

    /// Whether the plan was made from this index (a rebuilt index needs a new plan).
    pub fn is_of(&self, idx: &Arc<VodIndex>) -> bool {
        Arc::ptr_eq(&self.idx, idx)
    }

    /// A body of no bytes (clippy wants it beside `len`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes from `offset` on, about `max` of them (slices of the header and of inline payloads;
    /// external payloads read from the source file, adjacent ones in one `pread`). Stops early
    /// (the connection then ends) if a payload cannot be read.
    pub fn read(&self, offset: u64, max: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut want = max as u64;
        let mut pos = offset;
        let hl = self.header.len() as u64;
        if pos < hl {
            let end = hl.min(pos + want);
            out.push(self.header.slice(pos as usize..end as usize));
            want -= end - pos;
            pos = end;
        }
        if want == 0 || pos >= self.len {
            return out;
        }
        // The frame holding `pos`.
        let mut k = match self.offsets.binary_search(&pos) {
            Ok(k) => k,
            Err(k) => k.saturating_sub(1),
        };
        // A run of external bytes not read yet: (file offset, length).
        let mut run: Option<(u64, usize)> = None;
        while want > 0 && k < self.frames.len() {
            let f = &self.idx.frames[self.frames[k] as usize];
            let start = self.offsets[k];
            let from = (pos - start) as usize;
            let to = f.len().min(from + want as usize);
            if to > from {
                match &f.payload {
                    Payload::Inline(data) => {
                        if !self.flush_run(&mut run, &mut out) {
                            return out;
                        }
                        out.push(data.slice(from..to));
                    }
                    Payload::External { offset, .. } => {
                        let at = offset + from as u64;
                        match &mut run {
                            Some((o, n)) if *o + *n as u64 == at => *n += to - from,
                            _ => {
                                if !self.flush_run(&mut run, &mut out) {
                                    return out;
                                }
                                run = Some((at, to - from));
                            }
                        }
                    }
                }
                want -= (to - from) as u64;
                pos += (to - from) as u64;
            }
            k += 1;
        }
        self.flush_run(&mut run, &mut out);
        out
    }

    /// Reads a pending run of external bytes into `out`; false if it could not be read.
    fn flush_run(&self, run: &mut Option<(u64, usize)>, out: &mut Vec<Bytes>) -> bool {
        let Some((offset, len)) = run.take() else {
            return true;
        };
        let r = match &self.idx.source {
            Some(src) => src.read(offset, len),
            None => Err(std::io::Error::other("no source file")),
        };
        match r {
            Ok(b) => {
                out.push(b);
                true
            }
            Err(e) => {
                mist_core::warn!("VoD MP4 body: {e}");
                false
            }
        }
    }
}

/// A [`Mp4Plan`] as an HTTP body; while it is sent, the viewer has a users-table slot that
/// counts the bytes sent.
pub struct Mp4Body {
    plan: Arc<Mp4Plan>,
    slot: Option<StreamReader>,
    sent: u64,
    /// Stream and viewer address of the CONN_STOP due when the answer reaches the file's end;
    /// `None` once fired.
    stop: Option<(String, String)>,
}

impl Mp4Body {
    /// The body of `plan` for viewer `host` of `stream`.
    pub fn new(plan: Arc<Mp4Plan>, stream: &str, host: &str) -> Mp4Body {
        Mp4Body {
            plan,
            slot: slot(stream, "MP4", host),
            sent: 0,
            stop: Some((stream.to_string(), host.to_string())),
        }
    }
}

impl mist_net::server::Body for Mp4Body {
    fn len(&self) -> u64 {
        self.plan.len()
    }
    fn read(&mut self, offset: u64, max: usize) -> Vec<Bytes> {
        let out = self.plan.read(offset, max);
        let n = out.iter().map(|b| b.len() as u64).sum::<u64>();
        self.sent += n;
        if let Some(s) = self.slot.as_mut() {
            s.report(self.sent, 0);
        }
        // The last bytes of the file are handed to the viewer: playback reached the end of the
        // data (CONN_STOP, as a progressive feed's end). A Range answer that stops short of
        // the end does not.
        if n > 0 && offset.saturating_add(n) >= self.plan.len() {
            if let Some((stream, host)) = self.stop.take() {
                mist_core::triggers::viewers::stopped(&stream, &host, "HTTP");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mist_media::Codec;

    fn plan(sizes: &[usize]) -> Mp4Plan {
        let mut t = Track::new(1, Codec::H264);
        t.init = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]);
        t.width = 16;
        t.height = 16;
        let frames = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| VodFrame {
                track: 1,
                dts: 40 * i as i64,
                pts_offset: 0,
                keyframe: i % 5 == 0,
                payload: Payload::Inline(Bytes::from(
                    (0..n).map(|b| (b + i) as u8).collect::<Vec<u8>>(),
                )),
            })
            .collect();
        let idx = Arc::new(build(vec![t], frames, None));
        Mp4Plan::new(idx, None, None).unwrap()
    }

    #[test]
    fn mp4_plan_reads_any_range() {
        let p = plan(&[100, 7, 0, 300, 1, 50, 9, 9, 200]);
        let mut whole = Vec::new();
        for b in p.read(0, usize::MAX >> 1) {
            whole.extend_from_slice(&b);
        }
        assert_eq!(whole.len() as u64, p.len());
        assert_eq!(&whole[4..8], b"ftyp");
        for off in [
            0u64,
            3,
            50,
            p.header.len() as u64 - 1,
            p.header.len() as u64,
            p.len() - 5,
        ] {
            for max in [1usize, 2, 17, 120, 1000] {
                let mut got = Vec::new();
                for b in p.read(off, max) {
                    got.extend_from_slice(&b);
                }
                let end = (off as usize + max).min(whole.len());
                assert_eq!(got, &whole[off as usize..end], "off {off} max {max}");
            }
        }
    }

    #[test]
    fn audio_only_is_cut_without_keyframe_flags() {
        let mut t = Track::new(1, Codec::Aac);
        t.init = Bytes::from_static(&[0x12, 0x10]);
        t.rate = 44100;
        t.channels = 2;
        let frames = (0..500)
            .map(|i| VodFrame {
                track: 1,
                dts: 23 * i as i64,
                pts_offset: 0,
                keyframe: false,
                payload: Payload::Inline(Bytes::from_static(&[1, 2, 3])),
            })
            .collect();
        let idx = build(vec![t.clone()], frames, None);
        let cut = idx.cut(&[t]).expect("cut");
        assert!(cut.tl.len() >= 5, "{} segments", cut.tl.len());
        assert_eq!(cut.ranges.len(), cut.tl.len());
        assert_eq!(cut.ranges[0].0, 0);
        assert_eq!(cut.ranges.last().unwrap().1, 500);
    }

    #[test]
    fn lru_is_bounded() {
        let mut l = ByteLru::new(100);
        for i in 0..10u32 {
            l.put(i, Bytes::from(vec![0u8; 30]));
        }
        assert!(l.bytes() <= 100);
        assert!(l.get(&9).is_some());
        assert!(l.get(&0).is_none());
    }
}
