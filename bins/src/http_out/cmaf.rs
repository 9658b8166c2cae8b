//! CMAF (`/cmaf/$/…`): DASH and fMP4 HLS from one set of fragments. One reader, one segment
//! timeline (cut at main-track keyframes) and one [`FragmentWriter`] per track; when a segment
//! completes, each track's frames of it become one CMAF fragment (`moof`+`mdat`, one track per
//! file), muxed once and cached by URL while the segment is in the window. The MPD and the m3u8
//! playlists point at the same URLs, so DASH and HLS viewers share the same `Bytes`.
//!
//! URLs below `/cmaf/$/`: `index.mpd` (DASH, dynamic while live, static once the stream ended),
//! `index.m3u8` (HLS master: one variant per video track, audio as EXT-X-MEDIA renditions),
//! `<track>/index.m3u8` (media playlist with EXT-X-MAP), `<track>/init.mp4`,
//! `<track>/<start ms>.m4s` (DASH `$RepresentationID$/$Time$.m4s`).

use super::mux::{main_track, select, Format};
use super::segmented::{Answer, Cached, SegmentedStream};
use bytes::Bytes;
use mist_media::dash::{mpd, LiveOptions, MpdOptions, UtcTiming};
use mist_media::hls::{master_playlist, media_playlist, MasterOptions, MediaOptions};
use mist_media::mp4::{FragmentOptions, FragmentWriter};
use mist_media::segment::{Timeline, TimelineConfig, Window};
use mist_media::{Frame, Track};
use mist_shm::{ReadEvent, ReaderInfo, StreamReader};
use std::collections::HashMap;

/// Segment duration target (segments start at main-track keyframes).
const TARGET_MS: u32 = 2000;
/// Complete segments kept in the manifests (and in the cache): the DVR window.
const WINDOW: usize = 10;
/// Complete segments needed before a live manifest is served.
const MIN_SEGMENTS: usize = 2;
/// Cache-Control of fragments (immutable once muxed) and of manifests.
const SEGMENT_CACHE: &str = "public, max-age=3600, immutable";
const MANIFEST_CACHE: &str = "no-cache";

pub struct CmafStream {
    reader: StreamReader,
    tracks: Vec<Track>,
    tl: Option<Timeline>,
    writers: Vec<FragmentWriter>,
    inits: HashMap<u32, Bytes>,
    /// Frames of the open segment, per track (same order as `tracks`).
    cur: Vec<Vec<Frame>>,
    /// Fragments by (track, segment start ms).
    cache: HashMap<(u32, i64), Cached>,
    /// Unix ms of media time 0 (set once, when the reader first caught up with the live edge).
    avail_start: Option<i64>,
    newest_dts: Option<i64>,
    ended: bool,
    recheck: bool,
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The `/time` answer (DASH UTCTiming `http-iso`): the server's clock as ISO 8601.
pub fn time_body() -> String {
    mist_media::hls::iso8601(unix_ms())
}

impl CmafStream {
    pub fn open(stream: &str, host: &str) -> Result<CmafStream, mist_shm::ShmError> {
        let mut reader = StreamReader::open(
            stream,
            ReaderInfo {
                connector: "CMAF".into(),
                host: host.into(),
            },
        )?;
        // Start in the DVR window so the first manifest already lists recent segments.
        let last = mist_shm::stream_status(stream)
            .map(|s| s.last_ms)
            .unwrap_or(0);
        reader.seek_ms(last.saturating_sub((TARGET_MS as i64) * (WINDOW as i64 + 1)));
        Ok(CmafStream {
            reader,
            tracks: Vec::new(),
            tl: None,
            writers: Vec::new(),
            inits: HashMap::new(),
            cur: Vec::new(),
            cache: HashMap::new(),
            avail_start: None,
            newest_dts: None,
            ended: false,
            recheck: false,
        })
    }

    fn selection(&self) -> Vec<Track> {
        select(
            &self.reader.tracks(),
            Format::Fmp4,
            Some("all"),
            Some("all"),
        )
    }

    fn reset(&mut self) {
        self.tl = None;
        self.writers.clear();
        self.inits.clear();
        self.cur.clear();
        self.cache.clear();
        self.tracks.clear();
    }

    /// Sets up the timeline and one writer per track at a main-track keyframe.
    fn start(&mut self, sel: Vec<Track>) -> bool {
        let mut writers = Vec::new();
        let mut inits = HashMap::new();
        for t in &sel {
            let Ok(w) = FragmentWriter::new(vec![t.clone()], FragmentOptions::default()) else {
                return false;
            };
            let Ok(init) = w.init_segment() else {
                return false;
            };
            inits.insert(t.id, Bytes::from(init));
            writers.push(w);
        }
        let cfg = TimelineConfig {
            target_ms: TARGET_MS,
            audio_target_ms: TARGET_MS,
            window: Window::Segments(WINDOW),
            ..TimelineConfig::default()
        };
        self.tl = Some(Timeline::new(cfg, &sel));
        self.cur = vec![Vec::new(); sel.len()];
        self.writers = writers;
        self.inits = inits;
        self.tracks = sel;
        true
    }

    /// Muxes the buffered frames of segment `seq` into one fragment per track.
    fn complete(&mut self, seq: u64) {
        let Some(tl) = self.tl.as_ref() else { return };
        let Some(seg) = tl
            .get(seq)
            .or_else(|| tl.open_segment().filter(|s| s.seq == seq))
        else {
            for c in &mut self.cur {
                c.clear();
            }
            return;
        };
        let (start, end) = (seg.start_ms, seg.end_ms);
        let main = tl.main_track();
        for (i, t) in self.tracks.iter().enumerate() {
            let frames = std::mem::take(&mut self.cur[i]);
            let w = &mut self.writers[i];
            w.set_sequence(u32::try_from(seq + 1).unwrap_or(u32::MAX));
            // The main track ends exactly at the next segment's start; other tracks repeat their
            // last frame duration (their frames may run a little past the boundary).
            let end_ms = if Some(t.id) == main { end } else { None };
            if let Ok(b) = w.media_segment(&frames, end_ms) {
                let ctype = if t.kind() == mist_media::TrackKind::Audio {
                    "audio/mp4"
                } else {
                    "video/mp4"
                };
                let seg = Cached::new("cmaf", ctype, SEGMENT_CACHE, Bytes::from(b));
                self.cache.insert((t.id, start), seg);
            }
        }
        self.cache.retain(|(_, s), _| tl.by_start(*s).is_some());
    }

    /// Reads what is new: cuts, muxes and caches fragments. Bounded work per call.
    fn read(&mut self) {
        if self.ended {
            return;
        }
        for _ in 0..5000 {
            match self.reader.next() {
                ReadEvent::Frame(f) => {
                    if std::mem::take(&mut self.recheck) && self.selection() != self.tracks {
                        self.reset();
                    }
                    if self.tl.is_none() {
                        if f.dts < 0 {
                            continue;
                        }
                        let sel = self.selection();
                        if sel.is_empty() || Some(f.track) != main_track(&sel) || !f.keyframe {
                            continue;
                        }
                        if !self.start(sel) {
                            continue;
                        }
                    }
                    // tfdt is unsigned and MPD times are too: media before time 0 (a stream
                    // that starts slightly negative) is left out.
                    if f.dts < 0 {
                        continue;
                    }
                    let Some(i) = self.tracks.iter().position(|t| t.id == f.track) else {
                        continue;
                    };
                    self.newest_dts = Some(self.newest_dts.map_or(f.dts, |n| n.max(f.dts)));
                    let Some(tl) = self.tl.as_mut() else { continue };
                    let size = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
                    if let Some(done) = tl.push(f.track, f.dts, f.keyframe, size) {
                        self.complete(done);
                    }
                    if self
                        .tl
                        .as_ref()
                        .is_some_and(|tl| tl.open_segment().is_some())
                    {
                        self.cur[i].push(f);
                    }
                }
                ReadEvent::TracksChanged | ReadEvent::Restarted => {
                    // Judged at the next frame: a new writer sets its tracks one by one first.
                    self.recheck = self.tl.is_some();
                }
                ReadEvent::Pending => {
                    if self.avail_start.is_none() {
                        if let Some(n) = self.newest_dts {
                            self.avail_start = Some(unix_ms() - n);
                        }
                    }
                    break;
                }
                ReadEvent::Ended => {
                    if let Some(tl) = self.tl.as_mut() {
                        let open = tl.open_segment().map(|s| s.seq);
                        tl.finish();
                        if let Some(seq) = open {
                            self.complete(seq);
                        }
                    }
                    self.ended = true;
                    break;
                }
            }
        }
    }

    fn manifest_ready(&self) -> bool {
        self.tl.as_ref().is_some_and(|tl| {
            (self.ended && !tl.is_empty())
                || (tl.len() >= MIN_SEGMENTS && self.avail_start.is_some())
        })
    }

    /// The answer for the path below `/cmaf/$/`; `host` is the request's Host header (for the
    /// absolute UTCTiming URL).
    fn respond(&mut self, rest: &str, host: &str) -> Answer {
        let Some(tl) = self.tl.as_ref() else {
            return if self.ended {
                Answer::NotFound("stream ended".into())
            } else {
                Answer::Wait
            };
        };
        const M3U8: &str = "application/vnd.apple.mpegurl";
        let manifest = |ctype: &'static str, body: String| Answer::Ready {
            ctype,
            cache: MANIFEST_CACHE,
            body: Bytes::from(body),
        };
        match rest {
            "index.mpd" => {
                if !self.manifest_ready() {
                    return Answer::Wait;
                }
                let opts = if self.ended {
                    MpdOptions::vod()
                } else {
                    let now = unix_ms();
                    let utc = if host.is_empty() {
                        UtcTiming::Direct(now)
                    } else {
                        UtcTiming::HttpIso(format!("http://{host}/time"))
                    };
                    MpdOptions::live(LiveOptions {
                        availability_start_unix_ms: self.avail_start.unwrap_or(now),
                        publish_unix_ms: now,
                        minimum_update_period_ms: TARGET_MS,
                        time_shift_buffer_ms: None,
                        // Behind the live edge by the open segment, one MPD refresh and
                        // a segment of margin: three of the longest segments.
                        suggested_presentation_delay_ms: (3 * tl.max_duration_ms())
                            .clamp(3 * TARGET_MS as i64, 30_000)
                            as u32,
                        utc_timing: Some(utc),
                    })
                };
                return manifest("application/dash+xml", mpd(&self.tracks, tl, &opts));
            }
            "index.m3u8" | "" => {
                if !self.manifest_ready() {
                    return Answer::Wait;
                }
                let mut o = MasterOptions::cmaf();
                // Segment URLs are shared with DASH: `<track>/<start>.m4s`.
                o.variant_uri = "{track}/index.m3u8".into();
                return manifest(M3U8, master_playlist(&self.tracks, tl, &o));
            }
            _ => {}
        }
        let Some((id, file)) = rest.split_once('/') else {
            return Answer::NotFound("no such file".into());
        };
        let Some(track) = id
            .parse::<u32>()
            .ok()
            .filter(|id| self.tracks.iter().any(|t| t.id == *id))
        else {
            return Answer::NotFound("no such track".into());
        };
        match file {
            "index.m3u8" => {
                if !self.manifest_ready() {
                    return Answer::Wait;
                }
                let mut o = MediaOptions::cmaf(&[track]);
                o.segment_uri = "{start}.m4s".into();
                manifest(M3U8, media_playlist(tl, &o))
            }
            "init.mp4" => match self.inits.get(&track) {
                Some(b) => Answer::Ready {
                    ctype: "video/mp4",
                    cache: SEGMENT_CACHE,
                    body: b.clone(),
                },
                None => Answer::NotFound("no init segment".into()),
            },
            _ => {
                let Some(start) = file
                    .strip_suffix(".m4s")
                    .and_then(|s| s.parse::<i64>().ok())
                else {
                    return Answer::NotFound("no such file".into());
                };
                if let Some(c) = self.cache.get(&(track, start)) {
                    return Answer::Cached(c.clone());
                }
                // The segment being muxed is worth a short wait (a player a bit ahead of us).
                let open = tl.open_segment().map(|s| s.start_ms);
                if !self.ended
                    && open.is_some_and(|o| start >= o && start <= o + 4 * TARGET_MS as i64)
                {
                    return Answer::Wait;
                }
                Answer::NotFound("segment not available".into())
            }
        }
    }
}

impl SegmentedStream for CmafStream {
    fn poll(&mut self) {
        self.read()
    }
    fn answer(&mut self, rest: &str, host: &str) -> Answer {
        self.respond(rest, host)
    }
    fn ended(&self) -> bool {
        self.ended
    }
}
