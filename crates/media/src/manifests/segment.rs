//! The segment timeline of a stream: where HLS and DASH segments (and LL-HLS parts) begin and end.
//!
//! A [`Timeline`] is fed the frames of a stream as `(track, dts ms, keyframe, size)` — live as they
//! arrive, or a whole VoD file at once — and cuts segments at keyframes of the *main track* (the first
//! video track, or the first audio track of an audio-only stream).
//!
//! # The boundary rule
//!
//! Boundaries come from the frame data alone, never from a clock, and the rule is *local*: a main-track
//! keyframe at `dts` starts a new segment when `floor(dts / target)` differs from the same value of the
//! previous main-track keyframe. Every segment therefore starts at the first keyframe of a
//! `target`-millisecond bucket of media time. Two processes reading the same buffer find the same
//! boundaries even when one of them started reading later (any boundary after its first keyframe is
//! the same one the other finds). Segment *start times* are thus a stable identity (use `{start}` or
//! DASH `$Time$` in URLs); sequence numbers count segments from `first_seq`, so processes that start at
//! the same frame agree on them too (give `first_seq` from a shared key counter otherwise).
//!
//! With a GOP longer than the target, segments simply hold one GOP each; frames of the main track
//! that arrive before its first keyframe are not put in any segment (nothing can be decoded from them).

use std::collections::VecDeque;

use crate::frame::{Frame, Track, TrackKind};

/// How much of a live stream the timeline keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Keep everything (VoD, or recording).
    Unbounded,
    /// Keep the newest N complete segments.
    Segments(usize),
    /// Keep complete segments that end within this many ms of the newest media time (a DVR window).
    Ms(u64),
}

/// How a [`Timeline`] cuts segments and how many it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineConfig {
    /// Target segment duration when there is a video track, in ms.
    pub target_ms: u32,
    /// Segment duration for audio-only streams, in ms.
    pub audio_target_ms: u32,
    /// Which complete segments are kept (the playlist's window).
    pub window: Window,
    /// LL-HLS part duration in ms; `None` disables parts.
    pub part_target_ms: Option<u32>,
    /// Sequence number of the first segment.
    pub first_seq: u64,
    /// A main-track keyframe more than this many ms after the previous main-track frame, or before
    /// the start of the open segment, starts a new segment marked as a discontinuity.
    pub max_gap_ms: u32,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            target_ms: 4000,
            audio_target_ms: 4000,
            window: Window::Segments(10),
            part_target_ms: None,
            first_seq: 0,
            max_gap_ms: 30_000,
        }
    }
}

impl TimelineConfig {
    /// Settings for a VoD: default targets, keep every segment.
    pub fn vod() -> Self {
        TimelineConfig {
            window: Window::Unbounded,
            ..Default::default()
        }
    }
}

/// What one track contributed to a segment or part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSpan {
    /// The track.
    pub track: u32,
    /// Its frames in the segment.
    pub frames: u32,
    /// Their payload bytes (for bitrates in manifests).
    pub bytes: u64,
    /// Decode time of its first frame (ms).
    pub first_dts: i64,
    /// Decode time of its last frame (ms).
    pub last_dts: i64,
}

/// An LL-HLS partial segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Index within its segment, from 0.
    pub index: u32,
    /// Media time the part starts at.
    pub start_ms: i64,
    /// `None` while the part is still being filled.
    pub end_ms: Option<i64>,
    /// The part starts with a main-track keyframe.
    pub independent: bool,
    /// Payload bytes in the part so far.
    pub bytes: u64,
}

impl Part {
    /// Its duration in ms; `None` while it is being filled.
    pub fn duration_ms(&self) -> Option<i64> {
        self.end_ms.map(|e| e.saturating_sub(self.start_ms))
    }
}

/// A segment: a run of media starting at a main-track keyframe, the same for every output
/// format, so HLS, DASH and others number and cut alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Sequence number: HLS media sequence, DASH `$Number$`.
    pub seq: u64,
    /// Media time of the main-track keyframe the segment starts with.
    pub start_ms: i64,
    /// Start of the next segment (or, for the last one of an ended stream, the end of its media);
    /// `None` while the segment is still open.
    pub end_ms: Option<i64>,
    /// Per track, in order of first appearance.
    pub tracks: Vec<TrackSpan>,
    /// LL-HLS parts, in order (empty without parts).
    pub parts: Vec<Part>,
    /// The media time jumped before this segment (HLS EXT-X-DISCONTINUITY, a new DASH Period).
    pub discontinuity: bool,
    /// Continuous presentation time of the start: equals `start_ms` until the first discontinuity,
    /// after which it continues from the end of the previous segment.
    pub presentation_ms: i64,
    /// Number of discontinuities before this segment since the timeline began.
    pub period: u64,
    /// `presentation_ms` and `start_ms` of the first segment of this segment's period.
    pub period_presentation_ms: i64,
    /// See `period_presentation_ms`.
    pub period_start_ms: i64,
}

impl Segment {
    fn first(seq: u64, start_ms: i64) -> Segment {
        Segment {
            seq,
            start_ms,
            end_ms: None,
            tracks: Vec::new(),
            parts: Vec::new(),
            discontinuity: false,
            presentation_ms: start_ms,
            period: 0,
            period_presentation_ms: start_ms,
            period_start_ms: start_ms,
        }
    }

    /// The segment after `prev` (which has its end set), starting at `start_ms`.
    fn after(prev: &Segment, start_ms: i64, discontinuity: bool) -> Segment {
        let presentation_ms = prev.presentation_ms.saturating_add(prev.duration_ms());
        let (period, period_presentation_ms, period_start_ms) = if discontinuity {
            (prev.period + 1, presentation_ms, start_ms)
        } else {
            (
                prev.period,
                prev.period_presentation_ms,
                prev.period_start_ms,
            )
        };
        Segment {
            seq: prev.seq + 1,
            start_ms,
            end_ms: None,
            tracks: Vec::new(),
            parts: Vec::new(),
            discontinuity,
            presentation_ms,
            period,
            period_presentation_ms,
            period_start_ms,
        }
    }

    /// Whether the segment is closed (its end is known).
    pub fn is_complete(&self) -> bool {
        self.end_ms.is_some()
    }

    /// Duration in ms; 0 while open.
    pub fn duration_ms(&self) -> i64 {
        self.end_ms
            .map(|e| e.saturating_sub(self.start_ms).max(0))
            .unwrap_or(0)
    }

    /// What track `id` contributed, if anything.
    pub fn track(&self, id: u32) -> Option<&TrackSpan> {
        self.tracks.iter().find(|t| t.track == id)
    }

    /// Payload bytes of the given tracks (all tracks when `tracks` is empty).
    pub fn bytes_of(&self, tracks: &[u32]) -> u64 {
        self.tracks
            .iter()
            .filter(|t| tracks.is_empty() || tracks.contains(&t.track))
            .map(|t| t.bytes)
            .sum()
    }

    /// Bits per second of the given tracks' payload over this segment (0 for an empty duration).
    pub fn bitrate_of(&self, tracks: &[u32]) -> u64 {
        let d = self.duration_ms();
        if d <= 0 {
            return 0;
        }
        (self.bytes_of(tracks) as u128 * 8000 / d as u128).min(u64::MAX as u128) as u64
    }

    fn add(&mut self, track: u32, dts: i64, size: u32) {
        match self.tracks.iter_mut().find(|t| t.track == track) {
            Some(t) => {
                t.frames = t.frames.saturating_add(1);
                t.bytes += size as u64;
                t.first_dts = t.first_dts.min(dts);
                t.last_dts = t.last_dts.max(dts);
            }
            None => self.tracks.push(TrackSpan {
                track,
                frames: 1,
                bytes: size as u64,
                first_dts: dts,
                last_dts: dts,
            }),
        }
        if let Some(p) = self.parts.last_mut() {
            p.bytes += size as u64;
        }
    }
}

/// Totals per track over the whole life of the timeline (not only the window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackTotals {
    /// Frames pushed.
    pub frames: u64,
    /// Payload bytes pushed.
    pub bytes: u64,
    /// Decode time of the first frame.
    pub first_dts: Option<i64>,
    /// Decode time of the last frame.
    pub last_dts: Option<i64>,
    /// Last dts step seen (an estimate of the frame duration).
    pub last_step: i64,
}

#[derive(Debug, Clone)]
struct TrackState {
    id: u32,
    kind: TrackKind,
    totals: TrackTotals,
}

/// The segment timeline of one stream. See the module documentation for the boundary rule.
#[derive(Debug, Clone)]
pub struct Timeline {
    cfg: TimelineConfig,
    tracks: Vec<TrackState>,
    main: Option<u32>,
    /// Complete segments in the window, oldest first.
    done: VecDeque<Segment>,
    open: Option<Segment>,
    next_seq: u64,
    last_key_bucket: Option<i64>,
    /// Previous main-track frame dts and step (for the gap rule and for ending a segment early).
    last_main: Option<(i64, i64)>,
    /// Discontinuities that left the window (HLS EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuity_seq: u64,
    last_part_bucket: Option<i64>,
    ended: bool,
    /// Largest complete segment duration ever seen (HLS target duration must never shrink).
    max_duration_ms: i64,
    /// Peak bits per second per track over complete segments ever seen.
    peak_bps: Vec<(u32, u64)>,
    /// Highest media time seen.
    newest_ms: Option<i64>,
}

impl Timeline {
    /// A timeline of `tracks` (more may be added as they appear).
    pub fn new(cfg: TimelineConfig, tracks: &[Track]) -> Timeline {
        let mut tl = Timeline {
            next_seq: cfg.first_seq,
            cfg,
            tracks: Vec::new(),
            main: None,
            done: VecDeque::new(),
            open: None,
            last_key_bucket: None,
            last_main: None,
            discontinuity_seq: 0,
            last_part_bucket: None,
            ended: false,
            max_duration_ms: 0,
            peak_bps: Vec::new(),
            newest_ms: None,
        };
        for t in tracks {
            tl.add_track(t.id, t.kind());
        }
        tl
    }

    /// Adds a track. The main track is the first video track, else the first audio track; a video
    /// track added after an audio main track only takes over while no segment exists yet.
    pub fn add_track(&mut self, id: u32, kind: TrackKind) {
        if self.tracks.iter().any(|t| t.id == id) {
            return;
        }
        self.tracks.push(TrackState {
            id,
            kind,
            totals: TrackTotals::default(),
        });
        let started = self.open.is_some() || !self.done.is_empty();
        let main_kind = self.main.and_then(|m| self.kind_of(m));
        match (kind, main_kind) {
            (TrackKind::Video, None) => self.main = Some(id),
            (TrackKind::Video, Some(TrackKind::Audio)) if !started => self.main = Some(id),
            (TrackKind::Audio, None) => self.main = Some(id),
            _ => {}
        }
    }

    fn kind_of(&self, id: u32) -> Option<TrackKind> {
        self.tracks.iter().find(|t| t.id == id).map(|t| t.kind)
    }

    /// How it cuts and keeps segments.
    pub fn config(&self) -> &TimelineConfig {
        &self.cfg
    }

    /// The track segments are cut on (first video, else first audio); `None` before any track.
    pub fn main_track(&self) -> Option<u32> {
        self.main
    }

    /// Ids of the tracks known, in order of addition.
    pub fn track_ids(&self) -> Vec<u32> {
        self.tracks.iter().map(|t| t.id).collect()
    }

    fn target(&self) -> i64 {
        let t = match self.main.and_then(|m| self.kind_of(m)) {
            Some(TrackKind::Video) => self.cfg.target_ms,
            _ => self.cfg.audio_target_ms,
        };
        t.max(1) as i64
    }

    /// A VoD timeline from all frames at once (in decode order), finished.
    pub fn from_frames<'a>(
        cfg: TimelineConfig,
        tracks: &[Track],
        frames: impl IntoIterator<Item = &'a Frame>,
    ) -> Timeline {
        let mut tl = Timeline::new(cfg, tracks);
        for f in frames {
            tl.push_frame(f);
        }
        tl.finish();
        tl
    }

    /// Adds a frame: it may close the open segment (a main-track keyframe past the target) and
    /// open the next.
    pub fn push_frame(&mut self, f: &Frame) {
        let size = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
        self.push(f.track, f.dts, f.keyframe, size);
    }

    /// Feeds one frame. Returns the sequence number of the segment this frame completed, if it
    /// started a new one. Frames of unknown tracks and frames after [`finish`](Self::finish) are
    /// ignored.
    pub fn push(&mut self, track: u32, dts: i64, keyframe: bool, size: u32) -> Option<u64> {
        if self.ended {
            return None;
        }
        let ts = self.tracks.iter_mut().find(|t| t.id == track)?;
        let tot = &mut ts.totals;
        if let Some(l) = tot.last_dts {
            if dts > l {
                tot.last_step = dts.saturating_sub(l);
            }
        }
        tot.frames += 1;
        tot.bytes += size as u64;
        tot.first_dts = Some(tot.first_dts.map_or(dts, |f| f.min(dts)));
        tot.last_dts = Some(tot.last_dts.map_or(dts, |l| l.max(dts)));
        self.newest_ms = Some(self.newest_ms.map_or(dts, |n| n.max(dts)));

        let is_main = Some(track) == self.main;
        let main_is_video = self.main.and_then(|m| self.kind_of(m)) == Some(TrackKind::Video);
        // Audio frames are all sync samples.
        let key = keyframe || (is_main && !main_is_video);
        let mut closed = None;
        let prev_main = if is_main { self.last_main } else { None };
        if is_main {
            let step = match self.last_main {
                Some((l, _)) if dts > l => dts.saturating_sub(l).min(self.cfg.max_gap_ms as i64),
                Some((_, st)) => st,
                None => 0,
            };
            self.last_main = Some((dts, step));
        }
        if is_main && key {
            let bucket = dts.div_euclid(self.target());
            let gap = self.cfg.max_gap_ms as i64;
            match (&self.open, self.last_key_bucket) {
                (Some(open), Some(b)) => {
                    let back = dts < open.start_ms;
                    let fwd = prev_main.is_some_and(|(l, _)| dts.saturating_sub(l) > gap);
                    if back || fwd {
                        let (l, st) = prev_main.unwrap_or((open.start_ms, 0));
                        let end = l
                            .saturating_add(st.max(1))
                            .max(open.start_ms.saturating_add(1));
                        self.last_key_bucket = Some(bucket);
                        closed = self.cut(end, dts, true);
                    } else if bucket != b && dts > open.start_ms {
                        self.last_key_bucket = Some(bucket);
                        closed = self.cut(dts, dts, false);
                    }
                }
                _ => {
                    self.last_key_bucket = Some(bucket);
                    closed = self.cut(dts, dts, false);
                }
            }
        }
        let part_target = self.cfg.part_target_ms.map(|p| p.max(1) as i64);
        let Some(seg) = self.open.as_mut() else {
            return closed;
        };
        if let (Some(pt), true) = (part_target, is_main) {
            let pb = dts.div_euclid(pt);
            let new_part = match seg.parts.last() {
                None => true,
                Some(p) => self.last_part_bucket != Some(pb) && dts > p.start_ms,
            };
            if new_part {
                if let Some(p) = seg.parts.last_mut() {
                    p.end_ms = Some(dts);
                }
                let index = seg.parts.len() as u32;
                seg.parts.push(Part {
                    index,
                    start_ms: dts,
                    end_ms: None,
                    independent: key,
                    bytes: 0,
                });
                self.last_part_bucket = Some(pb);
            }
        }
        seg.add(track, dts, size);
        closed
    }

    /// Ends the open segment at `end` and opens the next at `start`.
    fn cut(&mut self, end: i64, start: i64, discontinuity: bool) -> Option<u64> {
        let mut next = None;
        let closed = self.open.take().map(|mut s| {
            s.end_ms = Some(end);
            if let Some(p) = s.parts.last_mut() {
                p.end_ms = Some(end.max(p.start_ms));
            }
            let seq = s.seq;
            next = Some(Segment::after(&s, start, discontinuity));
            self.complete(s);
            seq
        });
        let mut seg = next.unwrap_or_else(|| Segment::first(self.next_seq, start));
        seg.seq = self.next_seq;
        self.open = Some(seg);
        self.next_seq += 1;
        self.last_part_bucket = None;
        closed
    }

    fn complete(&mut self, s: Segment) {
        self.max_duration_ms = self.max_duration_ms.max(s.duration_ms());
        for t in &s.tracks {
            let bps = s.bitrate_of(&[t.track]);
            match self.peak_bps.iter_mut().find(|(id, _)| *id == t.track) {
                Some((_, p)) => *p = (*p).max(bps),
                None => self.peak_bps.push((t.track, bps)),
            }
        }
        self.done.push_back(s);
        self.evict();
    }

    fn evict(&mut self) {
        match self.cfg.window {
            Window::Unbounded => {}
            Window::Segments(n) => {
                while self.done.len() > n.max(1) {
                    self.pop_front();
                }
            }
            Window::Ms(ms) => {
                let newest = self.newest_ms.unwrap_or(0);
                while self.done.len() > 1 {
                    let end = self.done[0].end_ms.unwrap_or(newest);
                    if newest.saturating_sub(end) > ms as i64 {
                        self.pop_front();
                    } else {
                        break;
                    }
                }
            }
        }
    }

    fn pop_front(&mut self) {
        if let Some(s) = self.done.pop_front() {
            if s.discontinuity {
                self.discontinuity_seq += 1;
            }
        }
    }

    /// Marks the stream ended: the open segment is closed at the end of its main-track media (the
    /// newest main-track dts plus one frame step) and later frames are ignored.
    pub fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(mut s) = self.open.take() {
            let main = self.main;
            let has_main = s.tracks.iter().any(|t| Some(t.track) == main);
            let end = s
                .tracks
                .iter()
                .filter(|t| !has_main || Some(t.track) == main)
                .map(|t| {
                    let step = self
                        .tracks
                        .iter()
                        .find(|ts| ts.id == t.track)
                        .map(|ts| ts.totals.last_step)
                        .unwrap_or(0);
                    t.last_dts.saturating_add(step)
                })
                .max()
                .unwrap_or(s.start_ms)
                .max(s.start_ms);
            s.end_ms = Some(end);
            if let Some(p) = s.parts.last_mut() {
                p.end_ms = Some(end);
            }
            self.newest_ms = Some(self.newest_ms.map_or(end, |n| n.max(end)));
            self.complete(s);
        }
    }

    /// The stream ended: no segment will be added, manifests can say so (ENDLIST, static MPD).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Complete segments in the window, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> + '_ {
        self.done.iter()
    }

    /// Complete segments in the window.
    pub fn len(&self) -> usize {
        self.done.len()
    }

    /// No complete segment in the window.
    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// The segment being filled (live), with its parts.
    pub fn open_segment(&self) -> Option<&Segment> {
        self.open.as_ref()
    }

    /// Sequence number of the oldest complete segment in the window (HLS EXT-X-MEDIA-SEQUENCE); the
    /// next number to be assigned when none is complete.
    pub fn media_sequence(&self) -> u64 {
        self.done
            .front()
            .map(|s| s.seq)
            .or(self.open.as_ref().map(|s| s.seq))
            .unwrap_or(self.next_seq)
    }

    /// A complete segment by sequence number, if still in the window.
    pub fn get(&self, seq: u64) -> Option<&Segment> {
        let first = self.done.front()?.seq;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.done.get(i)
    }

    /// A complete segment by its start time, if still in the window (the newest one with that
    /// start, should a discontinuity have brought a start time back).
    pub fn by_start(&self, start_ms: i64) -> Option<&Segment> {
        self.done.iter().rev().find(|s| s.start_ms == start_ms)
    }

    /// Discontinuities that have left the window (HLS EXT-X-DISCONTINUITY-SEQUENCE).
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_seq
    }

    /// Whether a segment (`part == None`) or a part of it is complete: what an LL-HLS blocking
    /// playlist request (`_HLS_msn`, `_HLS_part`) waits for.
    pub fn is_available(&self, seq: u64, part: Option<u32>) -> bool {
        if self.get(seq).is_some() || self.done.back().is_some_and(|s| s.seq > seq) {
            return true;
        }
        match (self.open.as_ref(), part) {
            (Some(o), Some(p)) if o.seq == seq => {
                o.parts.get(p as usize).is_some_and(|p| p.end_ms.is_some())
            }
            _ => false,
        }
    }

    /// The longest complete segment ever seen, in ms.
    pub fn max_duration_ms(&self) -> i64 {
        self.max_duration_ms
    }

    /// Peak bits per second of a track over all complete segments seen.
    pub fn peak_bps(&self, track: u32) -> u64 {
        self.peak_bps
            .iter()
            .find(|(id, _)| *id == track)
            .map(|(_, b)| *b)
            .unwrap_or(0)
    }

    /// Peak over complete segments in the window of the combined bitrate of several tracks.
    pub fn peak_bps_of(&self, tracks: &[u32]) -> u64 {
        self.done
            .iter()
            .map(|s| s.bitrate_of(tracks))
            .max()
            .unwrap_or(0)
    }

    /// Average bits per second of the given tracks over the complete segments in the window.
    pub fn average_bps_of(&self, tracks: &[u32]) -> u64 {
        let dur: i64 = self.done.iter().map(|s| s.duration_ms()).sum();
        if dur <= 0 {
            return 0;
        }
        let bytes: u64 = self.done.iter().map(|s| s.bytes_of(tracks)).sum();
        (bytes as u128 * 8000 / dur as u128).min(u64::MAX as u128) as u64
    }

    /// Totals of `track` since the timeline began; `None` for a track it does not know.
    pub fn totals(&self, track: u32) -> Option<TrackTotals> {
        self.tracks.iter().find(|t| t.id == track).map(|t| t.totals)
    }

    /// Presentation time covered by the complete segments in the window: (first start, last end).
    /// Equal to media time until the first discontinuity.
    pub fn span_ms(&self) -> Option<(i64, i64)> {
        let first = self.done.front()?.presentation_ms;
        let last = self.done.back()?;
        Some((
            first,
            last.presentation_ms.saturating_add(last.duration_ms()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Codec;

    fn av() -> Vec<Track> {
        vec![Track::new(1, Codec::H264), Track::new(2, Codec::Aac)]
    }

    /// 25 fps video with a keyframe every `gop` frames and ~21.3 ms AAC frames, for `secs` seconds.
    fn feed(tl: &mut Timeline, secs: i64, gop: i64, from_ms: i64) {
        let mut v = from_ms / 40;
        let mut a = from_ms * 48 / 1024;
        let end = from_ms + secs * 1000;
        loop {
            let vt = v * 40;
            let at = a * 1024 / 48;
            if vt >= end && at >= end {
                break;
            }
            if vt <= at {
                tl.push(1, vt, v % gop == 0, 5000);
                v += 1;
            } else {
                tl.push(2, at, true, 300);
                a += 1;
            }
        }
    }

    #[test]
    fn cuts_at_first_keyframe_of_each_bucket() {
        let mut tl = Timeline::new(
            TimelineConfig {
                target_ms: 2000,
                ..TimelineConfig::vod()
            },
            &av(),
        );
        feed(&mut tl, 10, 25, 0);
        tl.finish();
        let starts: Vec<i64> = tl.segments().map(|s| s.start_ms).collect();
        assert_eq!(starts, vec![0, 2000, 4000, 6000, 8000]);
        let seqs: Vec<u64> = tl.segments().map(|s| s.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
        assert_eq!(tl.segments().last().unwrap().end_ms, Some(10000));
        let s = tl.get(1).unwrap();
        assert_eq!(s.track(1).unwrap().frames, 50);
        assert_eq!(s.bitrate_of(&[1]), 50 * 5000 * 8 / 2);
        assert_eq!(tl.max_duration_ms(), 2000);
    }

    #[test]
    fn long_gop_gives_one_gop_per_segment() {
        let mut tl = Timeline::new(
            TimelineConfig {
                target_ms: 2000,
                ..TimelineConfig::vod()
            },
            &av(),
        );
        feed(&mut tl, 12, 75, 0); // keyframe every 3 s
        tl.finish();
        let starts: Vec<i64> = tl.segments().map(|s| s.start_ms).collect();
        assert_eq!(starts, vec![0, 3000, 6000, 9000]);
    }

    #[test]
    fn late_starter_agrees_on_boundaries() {
        let cfg = TimelineConfig {
            target_ms: 3000,
            ..TimelineConfig::vod()
        };
        let mut a = Timeline::new(cfg.clone(), &av());
        feed(&mut a, 20, 20, 0); // keyframe every 0.8 s
        let mut b = Timeline::new(cfg, &av());
        feed(&mut b, 13, 20, 7000);
        let sa: Vec<i64> = a
            .segments()
            .map(|s| s.start_ms)
            .filter(|&s| s > 8000)
            .collect();
        let sb: Vec<i64> = b
            .segments()
            .map(|s| s.start_ms)
            .filter(|&s| s > 8000)
            .collect();
        assert!(!sa.is_empty());
        assert_eq!(sa, sb);
    }

    #[test]
    fn sliding_window_keeps_sequence() {
        let cfg = TimelineConfig {
            target_ms: 1000,
            window: Window::Segments(3),
            ..Default::default()
        };
        let mut tl = Timeline::new(cfg, &av());
        feed(&mut tl, 10, 25, 0);
        assert_eq!(tl.len(), 3);
        assert_eq!(tl.media_sequence(), 6);
        assert!(tl.get(5).is_none());
        assert_eq!(tl.get(8).unwrap().start_ms, 8000);
        assert_eq!(tl.open_segment().unwrap().seq, 9);
        let cfg = TimelineConfig {
            target_ms: 1000,
            window: Window::Ms(2500),
            ..Default::default()
        };
        let mut tl = Timeline::new(cfg, &av());
        feed(&mut tl, 10, 25, 0);
        let starts: Vec<i64> = tl.segments().map(|s| s.start_ms).collect();
        assert_eq!(starts, vec![6000, 7000, 8000]);
    }

    #[test]
    fn audio_only_cuts_by_time() {
        let mut tl = Timeline::new(
            TimelineConfig {
                audio_target_ms: 1000,
                ..TimelineConfig::vod()
            },
            &[Track::new(3, Codec::Aac)],
        );
        for i in 0..200i64 {
            tl.push(3, i * 1024 / 48, false, 200);
        }
        tl.finish();
        assert_eq!(tl.len(), 5);
        for s in tl.segments() {
            assert!(s.duration_ms() <= 1022, "{s:?}");
        }
    }

    #[test]
    fn frames_before_first_keyframe_and_garbage_are_harmless() {
        let mut tl = Timeline::new(TimelineConfig::vod(), &av());
        tl.push(2, 0, true, 10);
        tl.push(1, 0, false, 10);
        tl.push(9, 0, true, 10);
        assert!(tl.open_segment().is_none());
        tl.push(1, 40, true, 10);
        tl.push(1, i64::MIN, true, 10);
        tl.push(1, i64::MAX, true, u32::MAX);
        tl.push(1, -5, true, 10);
        tl.finish();
        tl.finish();
        assert!(tl.segments().all(|s| s.end_ms.is_some()));
    }

    #[test]
    fn from_frames_is_deterministic() {
        let frames: Vec<Frame> = (0..250i64)
            .map(|i| Frame {
                track: 1,
                dts: i * 40,
                pts_offset: 80,
                keyframe: i % 30 == 0,
                data: bytes::Bytes::from(vec![0u8; (i % 7) as usize * 100]),
            })
            .collect();
        let cfg = TimelineConfig {
            target_ms: 3000,
            ..TimelineConfig::vod()
        };
        let a = Timeline::from_frames(cfg.clone(), &av(), &frames);
        let b = Timeline::from_frames(cfg, &av(), &frames);
        assert!(a.is_ended());
        let sa: Vec<Segment> = a.segments().cloned().collect();
        let sb: Vec<Segment> = b.segments().cloned().collect();
        assert_eq!(sa, sb);
        let starts: Vec<i64> = sa.iter().map(|s| s.start_ms).collect();
        assert_eq!(starts, vec![0, 3600, 6000, 9600]);
        assert_eq!(sa.last().unwrap().end_ms, Some(10_000));
    }

    #[test]
    fn discontinuities() {
        let cfg = TimelineConfig {
            target_ms: 1000,
            window: Window::Segments(4),
            ..Default::default()
        };
        let mut tl = Timeline::new(cfg, &av());
        for v in 0..100i64 {
            tl.push(1, v * 40, v % 25 == 0, 10);
        }
        // the publisher comes back with its clock at 0
        for v in 0..100i64 {
            tl.push(1, v * 40, v % 25 == 0, 10);
        }
        // and then jumps a minute ahead
        for v in 0..60i64 {
            tl.push(1, 60_000 + v * 40, v % 25 == 0, 10);
        }
        tl.finish();
        let segs: Vec<&Segment> = tl.segments().collect();
        let flags: Vec<(i64, i64, bool, u64)> = segs
            .iter()
            .map(|s| (s.start_ms, s.presentation_ms, s.discontinuity, s.period))
            .collect();
        assert_eq!(
            flags,
            vec![
                (3000, 7000, false, 1),
                (60_000, 8000, true, 2),
                (61_000, 9000, false, 2),
                (62_000, 10_000, false, 2)
            ]
        );
        assert_eq!(segs[0].end_ms, Some(4000));
        assert_eq!(segs[1].period_presentation_ms, 8000);
        assert_eq!(segs[1].period_start_ms, 60_000);
        assert_eq!(tl.discontinuity_sequence(), 1);
        assert_eq!(tl.span_ms(), Some((7000, 10_400)));
    }

    #[test]
    fn availability() {
        let cfg = TimelineConfig {
            target_ms: 1000,
            part_target_ms: Some(200),
            ..Default::default()
        };
        let mut tl = Timeline::new(cfg, &av());
        for v in 0..40i64 {
            tl.push(1, v * 40, v % 25 == 0, 10);
        }
        assert!(tl.is_available(0, None));
        assert!(!tl.is_available(1, None));
        assert!(tl.is_available(1, Some(0)));
        assert!(tl.is_available(1, Some(1)));
        assert!(!tl.is_available(1, Some(2)));
        assert!(!tl.is_available(2, Some(0)));
    }

    #[test]
    fn parts() {
        let cfg = TimelineConfig {
            target_ms: 2000,
            part_target_ms: Some(500),
            ..Default::default()
        };
        let mut tl = Timeline::new(cfg, &av());
        feed(&mut tl, 5, 50, 0);
        let s = tl.get(0).unwrap();
        assert_eq!(s.parts.len(), 4);
        assert!(s.parts[0].independent);
        assert!(!s.parts[1].independent);
        assert_eq!(s.parts[3].end_ms, Some(2000));
        let open = tl.open_segment().unwrap();
        assert_eq!(open.parts.last().unwrap().end_ms, None);
    }
}
