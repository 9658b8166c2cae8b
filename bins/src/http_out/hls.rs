//! HLS with MPEG-TS segments (`/hls/$/…`): one reader, one segment timeline and one TS muxer per
//! stream; every segment is muxed once, cached by sequence number while it is in the playlist
//! window, and served to every viewer as the same `Bytes`.
//!
//! Every video track is a variant (with the first audio track muxed in), so a stream with several
//! resolutions gets a master playlist with one variant each; all variants share one timeline.
//!
//! URLs: `/hls/$/index.m3u8` (master), `/hls/$/<tracks>/index.m3u8` (media playlist, `<tracks>` =
//! track ids joined by `_`), `/hls/$/<tracks>/<seq>_<start>.ts` (segments).

use super::mux::{main_track, select, Format};
use super::segmented::{self, Answer, Cached, SegmentedStream};
use bytes::Bytes;
use mist_media::hls::{master_playlist, media_playlist, MasterOptions, MediaOptions};
use mist_media::mpegts::{Muxer, MuxerOptions};
use mist_media::segment::{Timeline, TimelineConfig, Window};
use mist_media::Track;
use mist_shm::{ReadEvent, StreamReader};
use std::collections::HashMap;

/// Segment duration target (segments start at keyframes, so they hold whole GOPs).
const TARGET_MS: u32 = 2000;
/// Complete segments kept in the playlists (and in the cache).
const WINDOW: usize = 10;
const TS: &str = "video/mp2t";
const SEGMENT_CACHE: &str = "public, max-age=60";
/// Complete segments needed before a live playlist is served. One: the first playlist comes one
/// segment duration after the stream starts (players wait for the next segment as they would at
/// any live edge); with two it came at about two segment durations.
const MIN_SEGMENTS: usize = 1;
/// One variant: a video track (or the audio track of an audio-only stream) with the first audio
/// track, muxed into its own TS segments.
struct Variant {
    /// Track ids joined by `_` (the playlist's directory).
    ids: String,
    tracks: Vec<u32>,
    mux: Muxer,
    cur: Vec<u8>,
    /// The open segment outgrew MAX_SEGMENT_BYTES: its frames are dropped until the next cut.
    oversize: bool,
    cache: HashMap<u64, Cached>,
}

/// A live stream cut into MPEG-TS segments for `/hls/`, with its master and media playlists.
pub struct HlsStream {
    reader: StreamReader,
    tracks: Vec<Track>,
    variants: Vec<Variant>,
    tl: Option<Timeline>,
    ended: bool,
    recheck: bool,
}

/// The tracks HLS serves: every video track and the first audio track the TS muxer carries, plus
/// the stream's other audio tracks as renditions of their own (audio-only playlists).
fn selection(tracks: &[Track]) -> Vec<Track> {
    let mut sel = select(tracks, Format::Ts, Some("all"), None);
    if sel.iter().any(|t| t.kind() == mist_media::TrackKind::Video) {
        let more: Vec<Track> = tracks
            .iter()
            .filter(|t| t.kind() == mist_media::TrackKind::Audio)
            .filter(|t| !sel.iter().any(|s| s.id == t.id))
            .filter(|t| Muxer::new(std::slice::from_ref(*t), MuxerOptions::default()).is_ok())
            .cloned()
            .collect();
        sel.extend(more);
    }
    sel
}

impl HlsStream {
    /// Reads `stream` from shared memory; `host` makes the playlists' absolute URLs.
    pub fn open(stream: &str, host: &str) -> Result<HlsStream, mist_shm::ShmError> {
        let back_ms = (TARGET_MS as i64) * (WINDOW as i64 + 1);
        let reader = segmented::open_reader(stream, "HLS", host, back_ms)?;
        Ok(HlsStream {
            reader,
            tracks: Vec::new(),
            variants: Vec::new(),
            tl: None,
            ended: false,
            recheck: false,
        })
    }

    fn reset(&mut self) {
        self.tl = None;
        self.variants.clear();
        self.tracks.clear();
    }

    /// Reads what is new: cuts, muxes and caches segments. Bounded work per call.
    fn read(&mut self) {
        if self.ended {
            return;
        }
        for _ in 0..5000 {
            match self.reader.next() {
                ReadEvent::Frame(f) => {
                    if std::mem::take(&mut self.recheck)
                        && selection(&self.reader.tracks()) != self.tracks
                    {
                        self.reset();
                    }
                    if self.tl.is_none() {
                        let sel = selection(&self.reader.tracks());
                        let main = main_track(&sel);
                        if sel.is_empty() || Some(f.track) != main || !f.keyframe {
                            continue;
                        }
                        let Some(variants) = variants_of(&sel) else {
                            continue;
                        };
                        let cfg = TimelineConfig {
                            target_ms: TARGET_MS,
                            audio_target_ms: TARGET_MS,
                            window: Window::Segments(WINDOW),
                            ..TimelineConfig::default()
                        };
                        self.tl = Some(Timeline::new(cfg, &sel));
                        self.tracks = sel;
                        self.variants = variants;
                    }
                    if !self.tracks.iter().any(|t| t.id == f.track) {
                        continue;
                    }
                    let Some(tl) = self.tl.as_mut() else {
                        continue;
                    };
                    if let Some(done) = tl.push_frame_seq(&f) {
                        for v in &mut self.variants {
                            v.mux.flush(&mut v.cur);
                            let seg = Bytes::from(std::mem::take(&mut v.cur));
                            if !std::mem::take(&mut v.oversize) {
                                v.cache
                                    .insert(done, Cached::new("hls", TS, SEGMENT_CACHE, seg));
                            }
                            v.cache.retain(|s, _| tl.get(*s).is_some());
                            segmented::bound_cache(&mut v.cache, segmented::MAX_CACHE_BYTES, |s| {
                                *s as i64
                            });
                        }
                    }
                    for v in &mut self.variants {
                        if v.tracks.contains(&f.track) && !v.oversize {
                            let _ = v.mux.write_frame(&f, &mut v.cur);
                            if v.cur.len() > segmented::MAX_SEGMENT_BYTES {
                                v.cur = Vec::new();
                                segmented::log_oversize(self.reader.name(), "HLS", &mut v.oversize);
                            }
                        }
                    }
                }
                ReadEvent::TracksChanged | ReadEvent::Restarted => {
                    // Judged at the next frame: a new writer sets its tracks one by one first.
                    self.recheck = self.tl.is_some();
                }
                ReadEvent::Pending => break,
                ReadEvent::Ended => {
                    if let Some(tl) = self.tl.as_mut() {
                        let open = tl.open_segment().map(|s| s.seq);
                        tl.finish();
                        for v in &mut self.variants {
                            v.mux.flush(&mut v.cur);
                            if let (Some(seq), false) = (open, v.oversize) {
                                let seg = Bytes::from(std::mem::take(&mut v.cur));
                                v.cache
                                    .insert(seq, Cached::new("hls", TS, SEGMENT_CACHE, seg));
                            }
                        }
                    }
                    self.ended = true;
                    break;
                }
            }
        }
    }

    /// The answer for the path below `/hls/$/`.
    fn respond(&mut self, rest: &str) -> Answer {
        let Some(tl) = self.tl.as_ref() else {
            return segmented::not_started(self.ended);
        };
        let ready = self.ended || tl.len() >= MIN_SEGMENTS;
        const PLAYLIST: &str = "application/vnd.apple.mpegurl";
        if rest == "index.m3u8" || rest.is_empty() {
            if !ready {
                return Answer::Wait;
            }
            let body = master_playlist(&self.tracks, tl, &MasterOptions::ts());
            return Answer::Ready {
                ctype: PLAYLIST,
                cache: "no-cache",
                body: Bytes::from(body),
            };
        }
        let Some((ids, file)) = rest.split_once('/') else {
            return Answer::NotFound("no such playlist".into());
        };
        let Some(v) = self.variants.iter().find(|v| v.ids == ids) else {
            return Answer::NotFound("no such track combination".into());
        };
        if file == "index.m3u8" {
            if !ready {
                return Answer::Wait;
            }
            let body = media_playlist(tl, &MediaOptions::ts(&v.tracks));
            return Answer::Ready {
                ctype: PLAYLIST,
                cache: "no-cache",
                body: Bytes::from(body),
            };
        }
        let Some(seq) = segment_seq(file) else {
            return Answer::NotFound("no such segment".into());
        };
        if let Some(c) = v.cache.get(&seq) {
            return Answer::Cached(c.clone());
        }
        // The segment being muxed (or the next one) is worth a short wait.
        let open = tl.open_segment().map(|s| s.seq);
        if !self.ended && open.is_some_and(|o| seq == o || seq == o + 1) {
            return Answer::Wait;
        }
        Answer::NotFound("segment not available".into())
    }
}

impl SegmentedStream for HlsStream {
    fn poll(&mut self) {
        self.read()
    }
    fn answer(&mut self, rest: &str, _host: &str) -> Answer {
        self.respond(rest)
    }
    fn ended(&self) -> bool {
        self.ended
    }
}

/// The HLS variants of a selection as track groups: every video track with the first audio
/// track, or the first audio track alone when there is no video (live and VoD alike).
pub fn variant_groups(sel: &[Track]) -> Vec<Vec<Track>> {
    use mist_media::TrackKind;
    let audio = sel.iter().find(|t| t.kind() == TrackKind::Audio);
    let video: Vec<&Track> = sel
        .iter()
        .filter(|t| t.kind() == TrackKind::Video)
        .collect();
    if video.is_empty() {
        audio.map(|a| vec![vec![a.clone()]]).unwrap_or_default()
    } else {
        video
            .iter()
            .map(|v| std::iter::once(*v).chain(audio).cloned().collect())
            .collect()
    }
}

/// A variant's directory in the URLs: its track ids joined by `_`.
pub fn variant_ids(tracks: &[Track]) -> String {
    tracks
        .iter()
        .map(|t| t.id.to_string())
        .collect::<Vec<_>>()
        .join("_")
}

/// The sequence number in a segment's file name (`<seq>_<start>.ts`).
pub fn segment_seq(file: &str) -> Option<u64> {
    file.strip_suffix(".ts")
        .and_then(|f| f.split('_').next())
        .and_then(|s| s.parse::<u64>().ok())
}

/// One variant per video track (with the first audio track), or one audio-only variant, and
/// the further audio tracks as audio-only renditions; each with its own TS muxer. `None` when a
/// muxer cannot be made.
fn variants_of(sel: &[Track]) -> Option<Vec<Variant>> {
    use mist_media::TrackKind;
    let mut groups = variant_groups(sel);
    // Further audio tracks: audio-only renditions (EXT-X-MEDIA in the master).
    if sel.iter().any(|t| t.kind() == TrackKind::Video) {
        let audio = sel.iter().find(|t| t.kind() == TrackKind::Audio);
        groups.extend(
            sel.iter()
                .filter(|t| t.kind() == TrackKind::Audio && Some(t.id) != audio.map(|a| a.id))
                .map(|t| vec![t.clone()]),
        );
    }
    let mut out = Vec::new();
    for g in groups {
        let mux = Muxer::new(&g, MuxerOptions::default()).ok()?;
        out.push(Variant {
            ids: variant_ids(&g),
            tracks: g.iter().map(|t| t.id).collect(),
            mux,
            cur: Vec::new(),
            oversize: false,
            cache: HashMap::new(),
        });
    }
    (!out.is_empty()).then_some(out)
}

/// `Timeline::push_frame` with the completed segment's sequence number.
trait PushSeq {
    fn push_frame_seq(&mut self, f: &mist_media::Frame) -> Option<u64>;
}

impl PushSeq for Timeline {
    fn push_frame_seq(&mut self, f: &mist_media::Frame) -> Option<u64> {
        let size = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
        self.push(f.track, f.dts, f.keyframe, size)
    }
}
