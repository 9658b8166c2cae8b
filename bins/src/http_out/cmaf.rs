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
use super::segmented::{self, Answer, Cached, SegmentedStream};
use bytes::Bytes;
use mist_media::dash::{mpd, LiveOptions, MpdOptions, UtcTiming};
use mist_media::hls::{master_playlist, media_playlist, MasterOptions, MediaOptions};
use mist_media::mp4::{FragmentOptions, FragmentWriter};
use mist_media::segment::{Timeline, TimelineConfig, Window};
use mist_media::{Frame, Track};
use mist_shm::{ReadEvent, StreamReader};
use std::collections::HashMap;

/// Segment duration target (segments start at main-track keyframes).
const TARGET_MS: u32 = 2000;
/// Complete segments kept in the manifests (and in the cache): the DVR window.
const WINDOW: usize = 10;
/// Complete segments needed before a live manifest is served: as many as the suggested
/// presentation delay spans (three), so that a player joining a young stream can start that far
/// behind the live edge with all of it buffered (RFC 8216 §6.3.3 asks HLS clients the same: start
/// three target durations from the end). With two, dash.js joining a stream a few seconds old
/// played about one segment behind the open one and stalled for each next segment.
const MIN_SEGMENTS: usize = 3;
/// Cache-Control of fragments (immutable once muxed) and of manifests.
const SEGMENT_CACHE: &str = "public, max-age=3600, immutable";
const MANIFEST_CACHE: &str = "no-cache";

/// A live stream cut into CMAF fragments for `/cmaf/` (HLS and DASH manifests on the same fragments).
pub struct CmafStream {
    reader: StreamReader,
    tracks: Vec<Track>,
    tl: Option<Timeline>,
    writers: Vec<FragmentWriter>,
    inits: HashMap<u32, Bytes>,
    /// Frames of the open segment, per track (same order as `tracks`).
    cur: Vec<Vec<Frame>>,
    /// Payload bytes in `cur`; past MAX_SEGMENT_BYTES the open segment is dropped (`oversize`).
    cur_bytes: usize,
    oversize: bool,
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
    /// Reads `stream` from shared memory; `host` makes the manifests' absolute URLs.
    pub fn open(stream: &str, host: &str) -> Result<CmafStream, mist_shm::ShmError> {
        let back_ms = (TARGET_MS as i64) * (WINDOW as i64 + 1);
        let reader = segmented::open_reader(stream, "CMAF", host, back_ms)?;
        Ok(CmafStream {
            reader,
            tracks: Vec::new(),
            tl: None,
            writers: Vec::new(),
            inits: HashMap::new(),
            cur: Vec::new(),
            cur_bytes: 0,
            oversize: false,
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
        self.cur_bytes = 0;
        self.oversize = false;
        self.cache.clear();
        self.tracks.clear();
    }

    /// Sets up the timeline and one writer per track at a main-track keyframe.
    fn start(&mut self, sel: Vec<Track>) -> bool {
        let Ok((writers, inits)) = writers_of(&sel) else {
            return false;
        };
        self.tl = Some(Timeline::new(timeline_config(), &sel));
        self.cur = vec![Vec::new(); sel.len()];
        self.writers = writers;
        self.inits = inits;
        self.tracks = sel;
        true
    }

    /// Muxes the buffered frames of segment `seq` into one fragment per track.
    fn complete(&mut self, seq: u64) {
        self.cur_bytes = 0;
        if std::mem::take(&mut self.oversize) {
            for c in &mut self.cur {
                c.clear();
            }
            return;
        }
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
                let seg = Cached::new("cmaf", ctype(t), SEGMENT_CACHE, Bytes::from(b));
                self.cache.insert((t.id, start), seg);
            }
        }
        self.cache.retain(|(_, s), _| tl.by_start(*s).is_some());
        segmented::bound_cache(&mut self.cache, segmented::MAX_CACHE_BYTES, |(_, s)| *s);
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
                        && !self.oversize
                    {
                        self.cur_bytes += f.data.len();
                        self.cur[i].push(f);
                        if self.cur_bytes > segmented::MAX_SEGMENT_BYTES {
                            for c in &mut self.cur {
                                c.clear();
                            }
                            self.cur_bytes = 0;
                            segmented::log_oversize(self.reader.name(), "CMAF", &mut self.oversize);
                        }
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
            (self.ended && !tl.is_empty()) || (live_ready(tl) && self.avail_start.is_some())
        })
    }

    /// The answer for the path below `/cmaf/$/`; `host` is the request's Host header (for the
    /// absolute UTCTiming URL).
    fn respond(&mut self, rest: &str, host: &str) -> Answer {
        let Some(tl) = self.tl.as_ref() else {
            return segmented::not_started(self.ended);
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
                    MpdOptions::live(live_options(tl, self.avail_start.unwrap_or(now), now, utc))
                };
                return manifest("application/dash+xml", mpd(&self.tracks, tl, &opts));
            }
            "index.m3u8" | "" => {
                if !self.manifest_ready() {
                    return Answer::Wait;
                }
                let o = master_options();
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
                manifest(M3U8, media_playlist(tl, &media_options(track)))
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

/// One fragment writer per track of `sel` (one track per file), and the tracks' init segments
/// by track id.
pub fn writers_of(
    sel: &[Track],
) -> Result<(Vec<FragmentWriter>, HashMap<u32, Bytes>), mist_media::MediaError> {
    let mut writers = Vec::new();
    let mut inits = HashMap::new();
    for t in sel {
        let w = FragmentWriter::new(vec![t.clone()], FragmentOptions::default())?;
        inits.insert(t.id, Bytes::from(w.init_segment()?));
        writers.push(w);
    }
    Ok((writers, inits))
}

/// The content type of a track's init segment and fragments.
pub fn ctype(t: &Track) -> &'static str {
    if t.kind() == mist_media::TrackKind::Audio {
        "audio/mp4"
    } else {
        "video/mp4"
    }
}

/// The HLS master playlist's options: media playlists at `<track>/index.m3u8`.
pub fn master_options() -> MasterOptions {
    let mut o = MasterOptions::cmaf();
    // Segment URLs are shared with DASH: `<track>/<start>.m4s`.
    o.variant_uri = "{track}/index.m3u8".into();
    o
}

/// A track's HLS media playlist options: segments at `<start>.m4s`, as in the MPD.
pub fn media_options(track: u32) -> MediaOptions {
    let mut o = MediaOptions::cmaf(&[track]);
    o.segment_uri = "{start}.m4s".into();
    o
}

fn timeline_config() -> TimelineConfig {
    TimelineConfig {
        target_ms: TARGET_MS,
        audio_target_ms: TARGET_MS,
        window: Window::Segments(WINDOW),
        ..TimelineConfig::default()
    }
}

/// Whether a live timeline has enough complete segments for its manifests.
fn live_ready(tl: &Timeline) -> bool {
    tl.len() >= MIN_SEGMENTS
}

/// The live MPD's timing at `now` (Unix ms), for a timeline whose media time 0 was live at
/// `avail_start` (Unix ms).
fn live_options(tl: &Timeline, avail_start: i64, now: i64, utc: UtcTiming) -> LiveOptions {
    // Behind the live edge by the open segment, one MPD refresh and a segment of margin: three
    // of the longest segments.
    let delay = (3 * tl.max_duration_ms()).clamp(3 * TARGET_MS as i64, 30_000);
    let span = tl
        .span_ms()
        .map_or(0, |(first, last)| (last - first).max(0));
    LiveOptions {
        availability_start_unix_ms: avail_start,
        publish_unix_ms: now,
        minimum_update_period_ms: TARGET_MS,
        // The depth of the DVR window the server keeps, also while a young stream has less:
        // dash.js caps its live delay (suggestedPresentationDelay, or its own liveDelay) at
        // timeShiftBufferDepth, so a depth of only the few segments made so far put it about
        // one segment behind the live edge.
        time_shift_buffer_ms: Some(span.max(WINDOW as i64 * TARGET_MS as i64).max(delay) as u64),
        suggested_presentation_delay_ms: delay as u32,
        utc_timing: Some(utc),
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

#[cfg(test)]
mod tests {
    use super::*;
    use mist_media::dash::MpdOptions;
    use mist_media::Codec;

    fn tracks() -> Vec<Track> {
        let mut v = Track::new(1, Codec::H264);
        v.init = Bytes::from_static(&[1, 0x64, 0, 0x1f]);
        v.width = 640;
        v.height = 360;
        v.fpks = 25_000;
        let mut a = Track::new(2, Codec::Aac);
        a.init = Bytes::from_static(&[0x11, 0x90]);
        a.rate = 48000;
        a.channels = 2;
        vec![v, a]
    }

    /// `(track, dts, keyframe)` of a 25 fps video track with a keyframe every 2 s and an AAC
    /// track (1024 samples at 48 kHz), in dts order, for `ms` of media.
    fn frames(ms: i64) -> Vec<(u32, i64, bool)> {
        let mut f: Vec<(u32, i64, bool)> = (0..ms / 40).map(|i| (1, i * 40, i % 50 == 0)).collect();
        f.extend((0..ms * 48 / 1024).map(|i| (2, i * 1024 / 48, true)));
        f.sort_by_key(|&(t, dts, _)| (dts, t));
        f
    }

    /// An MPD duration attribute (`name="PT12.345S"`) in ms.
    fn attr_ms(m: &str, name: &str) -> i64 {
        let key = format!(" {name}=\"PT");
        let i = m.find(&key).unwrap_or_else(|| panic!("no {name}: {m}")) + key.len();
        let v = &m[i..i + m[i..].find('S').expect("S")];
        let (s, ms) = v.split_once('.').expect("PTs.mmmS");
        s.parse::<i64>().expect("s") * 1000 + ms.parse::<i64>().expect("ms")
    }

    /// `(start, end)` of each segment of the MPD's first SegmentTimeline.
    fn listed(m: &str) -> Vec<(i64, i64)> {
        let from = m.find("<SegmentTimeline>").expect("SegmentTimeline");
        let to = m.find("</SegmentTimeline>").expect("SegmentTimeline end");
        let mut out = Vec::new();
        let mut t = 0;
        for s in m[from..to].split("<S ").skip(1) {
            let get = |k: &str| {
                s.split(&format!(" {k}=\""))
                    .nth(1)
                    .or_else(|| s.strip_prefix(&format!("{k}=\"")))
                    .map(|r| {
                        r[..r.find('"').expect("quote")]
                            .parse::<i64>()
                            .expect("int")
                    })
            };
            if let Some(x) = get("t") {
                t = x;
            }
            let d = get("d").expect("d");
            for _ in 0..=get("r").unwrap_or(0) {
                out.push((t, t + d));
                t += d;
            }
        }
        out
    }

    /// A live stream from its first second on, frames reaching the server in real time (media
    /// time 0 live at `t0`). Every 100 ms once its manifest is served, the MPD is read as dash.js
    /// (4.7) reads it to start: at min(suggestedPresentationDelay, timeShiftBufferDepth) behind
    /// the live edge (now - availabilityStartTime), not before the time-shift window nor the
    /// first listed segment. A player joining then must have the whole suggested delay between
    /// it and the live edge and at least two segments listed ahead of it; every listed segment
    /// must be complete and available by availabilityStartTime. On the old MPD (served at two
    /// segments, depth = the span listed), a player joining a 4 s old stream started 4 s behind
    /// the live edge and at 5.9 s with 2.1 s listed ahead.
    #[test]
    fn a_player_joining_a_young_live_stream_starts_the_suggested_delay_behind() {
        let tracks = tracks();
        let mut tl = Timeline::new(timeline_config(), &tracks);
        let t0: i64 = 1_700_000_000_000;
        let frames = frames(40_000);
        let mut next = 0;
        let mut first_served = None;
        for age in (0..40_000).step_by(100) {
            while next < frames.len() && frames[next].1 <= age {
                let (track, dts, key) = frames[next];
                tl.push(track, dts, key, 1000);
                next += 1;
            }
            if !live_ready(&tl) {
                continue;
            }
            first_served.get_or_insert(age);
            let now = t0 + age;
            let opts = MpdOptions::live(live_options(&tl, t0, now, UtcTiming::Direct(now)));
            let m = mpd(&tracks, &tl, &opts);
            assert!(
                m.contains(&format!(
                    "availabilityStartTime=\"{}\"",
                    mist_media::hls::iso8601(t0)
                )),
                "{m}"
            );
            let segs = listed(&m);
            assert_eq!(segs.len(), tl.len(), "{m}");
            let edge = now - t0;
            let open = tl.open_segment().expect("open segment").start_ms;
            // Listed = complete: each ends where the next starts, the last where the open one
            // starts, so each is available (availabilityStartTime + its end) by now.
            assert!(segs.windows(2).all(|w| w[0].1 == w[1].0), "{m}");
            let last_end = segs.last().expect("listed").1;
            assert_eq!(last_end, open, "{m}");
            assert!(
                last_end <= edge && edge - last_end <= TARGET_MS as i64,
                "{m}"
            );
            let spd = attr_ms(&m, "suggestedPresentationDelay");
            let tsbd = attr_ms(&m, "timeShiftBufferDepth");
            let start = (edge - spd.min(tsbd))
                .max(edge - tsbd)
                .max(0)
                .max(segs[0].0);
            assert!(
                edge - start >= spd,
                "at {age} ms a player starts {} ms behind the live edge, suggested {spd}: {m}",
                edge - start
            );
            assert!(
                last_end - start >= 2 * TARGET_MS as i64,
                "at {age} ms a player starts with {} ms listed ahead: {m}",
                last_end - start
            );
        }
        // Served as soon as three segments are complete.
        assert_eq!(first_served, Some(6000));
    }
}
