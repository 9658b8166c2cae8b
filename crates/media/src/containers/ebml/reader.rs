//! Matroska / WebM demuxer: bytes in, tracks, frames and cue points out (sans-IO).
//!
//! ```text
//! let mut d = Demuxer::new();
//! d.push(&chunk);
//! while let Some(ev) = d.poll()? { ... }      // Ok(None): push more bytes
//! d.finish();                                 // end of input: drains an unknown-size Cluster
//! ```
//!
//! Seeking: the Cues (read when the stream passes them, or after `seek(cues_offset())`) map
//! times to Cluster offsets; `seek(offset)` makes the demuxer resume at a Cluster start and the
//! caller pushes bytes from that file offset on.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::element::{Event, Header, Kind, Limits, Reader, Schema};
use super::ids::*;
use super::vint::{read_size, read_svint};
use super::DocType;
use crate::error::MediaError;
use crate::frame::{Codec, Frame, Track, TrackKind};

/// Highest number of tracks accepted.
const MAX_TRACKS: usize = 128;
/// Highest number of cue points kept (a 24 h recording with a keyframe a second needs 86400).
const MAX_CUES: usize = 1 << 20;

struct MkvSchema;

impl Schema for MkvSchema {
    fn kind(&self, id: u32) -> Kind {
        match id {
            EBML | SEGMENT | SEEK_HEAD | SEEK | INFO | TRACKS | TRACK_ENTRY | VIDEO | AUDIO
            | CLUSTER | BLOCK_GROUP | CUES | CUE_POINT | CUE_TRACK_POSITIONS => Kind::Master,
            DOC_TYPE
            | SEEK_ID
            | SEEK_POSITION
            | TIMECODE_SCALE
            | DURATION
            | TRACK_NUMBER
            | TRACK_TYPE
            | CODEC_ID
            | CODEC_PRIVATE
            | DEFAULT_DURATION
            | LANGUAGE
            | CODEC_DELAY
            | PIXEL_WIDTH
            | PIXEL_HEIGHT
            | SAMPLING_FREQUENCY
            | CHANNELS
            | BIT_DEPTH
            | TIMECODE
            | SIMPLE_BLOCK
            | BLOCK
            | BLOCK_DURATION
            | REFERENCE_BLOCK
            | CUE_TIME
            | CUE_TRACK
            | CUE_CLUSTER_POSITION
            | CUE_RELATIVE_POSITION
            | CONTENT_ENCODINGS => Kind::Leaf,
            _ => Kind::Skip,
        }
    }
    fn parent(&self, id: u32) -> Option<u32> {
        parent(id)
    }
}

/// One entry of the Cues: at `time_ms` track `track` has a keyframe in the Cluster that starts
/// at absolute byte `cluster_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CuePoint {
    /// The keyframe's time (ms).
    pub time_ms: i64,
    /// The track (TrackNumber).
    pub track: u32,
    /// Absolute byte offset of the Cluster holding the keyframe.
    pub cluster_offset: u64,
    /// Offset of the block inside the Cluster's payload, when given.
    pub relative_position: Option<u64>,
}

/// What the demuxer reports, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum MkvEvent {
    /// The EBML header was read.
    Header {
        /// Matroska or WebM.
        doc_type: DocType,
    },
    /// A Segment starts; offsets in SeekHead and Cues count from `data_offset`.
    Segment {
        /// Absolute offset of the Segment's payload.
        data_offset: u64,
        /// Payload size; `None` for a live stream of unknown size.
        size: Option<u64>,
    },
    /// Info was read. `duration_ms` when the file has one.
    Info {
        /// Nanoseconds per timestamp unit.
        timecode_scale_ns: u64,
        /// The duration, converted to ms.
        duration_ms: Option<f64>,
    },
    /// Tracks was read (every later `Frame` refers to one of these ids = TrackNumber).
    Tracks(Vec<Track>),
    /// A Cluster starts at this absolute offset.
    Cluster {
        /// Absolute offset of the Cluster's ID (what Cues point at).
        offset: u64,
    },
    /// A frame, its times in ms, decode time rebuilt for B-frames (see
    /// [`Demuxer::set_reorder_depth`]).
    Frame(Frame),
    /// The Cues were read (also kept, see [`Demuxer::cue_points`]).
    Cues(Vec<CuePoint>),
    /// The Segment ended.
    EndOfSegment,
}

#[derive(Debug, Clone, Default)]
struct TrackBuilder {
    number: u64,
    ttype: u64,
    codec_id: String,
    private: Bytes,
    default_duration: u64,
    lang: String,
    width: u64,
    height: u64,
    rate: f64,
    channels: u64,
    bit_depth: u64,
    codec_delay: u64,
    /// ContentEncodings we cannot undo (zlib, encryption …).
    encoded: bool,
    /// Header-stripping compression: bytes to put back in front of every frame.
    strip_prefix: Bytes,
}

#[derive(Debug, Clone)]
struct TrackState {
    number: u64,
    track: Track,
    /// NAL length size of H.264/HEVC payloads, rewritten to 4 when different.
    nal_len: u8,
    default_duration_ns: u64,
    /// CodecDelay rounded to ms: block times are presentation times plus this (Opus pre-skip).
    delay_ms: i64,
    /// Decode times for codecs with B-frames (H.264, HEVC); `None` passes frames through.
    reorder: Option<Reorder>,
    /// Header-stripping compression prefix, empty when none.
    prefix: Bytes,
}

/// Decode-time reconstruction. Matroska stores presentation times only; with a reorder depth of
/// at most `depth` frames, the i-th decode time is the i-th smallest presentation time minus
/// `depth` frame durations (what ffmpeg reports too). Holds `depth` frames per track.
#[derive(Debug, Clone)]
struct Reorder {
    depth: usize,
    frame_ms: i64,
    shift: Option<i64>,
    queue: VecDeque<Frame>,
    times: BinaryHeap<Reverse<i64>>,
    last_dts: Option<i64>,
}

impl Reorder {
    fn new(depth: usize, frame_ms: i64) -> Reorder {
        Reorder {
            depth,
            frame_ms,
            shift: None,
            queue: VecDeque::new(),
            times: BinaryHeap::new(),
            last_dts: None,
        }
    }

    fn push(&mut self, f: Frame, out: &mut VecDeque<MkvEvent>) {
        self.times.push(Reverse(f.dts));
        self.queue.push_back(f);
        while self.queue.len() > self.depth {
            self.pop(out);
        }
    }

    fn pop(&mut self, out: &mut VecDeque<MkvEvent>) {
        let Some(mut f) = self.queue.pop_front() else {
            return;
        };
        if self.shift.is_none() {
            let mut frame = self.frame_ms;
            if frame <= 0 {
                // No DefaultDuration: the smallest gap between the times in the window.
                let mut v: Vec<i64> = self.times.iter().map(|r| r.0).collect();
                v.sort_unstable();
                frame = v
                    .windows(2)
                    .map(|w| w[1].saturating_sub(w[0]))
                    .filter(|d| *d > 0)
                    .min()
                    .unwrap_or(0);
            }
            self.shift = Some(frame.saturating_mul(self.depth as i64));
        }
        let pts = f.dts;
        let sorted = self.times.pop().map_or(pts, |r| r.0);
        let mut dts = sorted.saturating_sub(self.shift.unwrap_or(0)).min(pts);
        if let Some(last) = self.last_dts {
            dts = dts.max(last);
        }
        self.last_dts = Some(dts);
        f.dts = dts;
        f.pts_offset = pts
            .saturating_sub(dts)
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        out.push_back(MkvEvent::Frame(f));
    }

    fn flush(&mut self, out: &mut VecDeque<MkvEvent>) {
        while !self.queue.is_empty() {
            self.pop(out);
        }
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.times.clear();
        self.last_dts = None;
    }
}

#[derive(Debug, Default)]
struct GroupState {
    block: Option<Bytes>,
    reference: bool,
}

#[derive(Debug, Default)]
struct CueBuilder {
    time: Option<u64>,
    track: u64,
    cluster: Option<u64>,
    relative: Option<u64>,
}

/// The Matroska/WebM demuxer.
#[derive(Debug)]
pub struct Demuxer {
    reader: Reader,
    doc_type: Option<DocType>,
    timecode_scale: u64,
    duration: Option<f64>,
    segment: Option<(u64, Option<u64>)>,
    seek_head: Vec<(u32, u64)>,
    seek_entry: (u32, Option<u64>),
    building: Option<TrackBuilder>,
    pending_tracks: Vec<TrackState>,
    tracks: Vec<TrackState>,
    cluster_tc: Option<u64>,
    group: GroupState,
    cues: Vec<CuePoint>,
    cue: CueBuilder,
    cues_pending: Vec<CuePoint>,
    out: VecDeque<MkvEvent>,
    reorder_depth: usize,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

fn uint(d: &[u8]) -> Result<u64, MediaError> {
    if d.len() > 8 {
        return Err(MediaError::malformed(
            "EBML uint",
            format!("{} bytes", d.len()),
        ));
    }
    Ok(d.iter().fold(0u64, |a, &b| (a << 8) | b as u64))
}

fn float(d: &[u8]) -> Result<f64, MediaError> {
    match d.len() {
        0 => Ok(0.0),
        4 => Ok(f32::from_be_bytes([d[0], d[1], d[2], d[3]]) as f64),
        8 => Ok(f64::from_be_bytes(d.try_into().unwrap_or([0; 8]))),
        n => Err(MediaError::malformed("EBML float", format!("{n} bytes"))),
    }
}

fn string(d: &[u8]) -> String {
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}

/// Maps a Matroska CodecID to our codec.
pub fn codec_from_id(id: &str) -> Option<Codec> {
    Some(match id {
        "V_MPEG4/ISO/AVC" => Codec::H264,
        "V_MPEGH/ISO/HEVC" => Codec::Hevc,
        "V_AV1" => Codec::Av1,
        "V_VP8" => Codec::Vp8,
        "V_VP9" => Codec::Vp9,
        "A_OPUS" => Codec::Opus,
        "A_MPEG/L3" => Codec::Mp3,
        "A_AC3" => Codec::Ac3,
        "A_PCM/INT/LIT" => Codec::Pcm,
        "S_TEXT/UTF8" => Codec::Meta,
        s if s.starts_with("A_AAC") => Codec::Aac,
        _ => return None,
    })
}

/// An AudioSpecificConfig for the old `A_AAC/MPEG4/LC`-style IDs that carry no CodecPrivate.
fn synth_asc(codec_id: &str, rate: u32, channels: u32) -> Bytes {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let object = if codec_id.ends_with("MAIN") {
        1
    } else if codec_id.ends_with("SSR") {
        3
    } else if codec_id.ends_with("LTP") {
        4
    } else {
        2
    };
    let idx = RATES.iter().position(|&r| r == rate).unwrap_or(4) as u16;
    let v: u16 = (object << 11) | (idx << 7) | (((channels & 0xF) as u16) << 3);
    Bytes::copy_from_slice(&v.to_be_bytes())
}

impl Demuxer {
    /// A demuxer with the default [`Limits`].
    pub fn new() -> Demuxer {
        Self::with_limits(Limits::default())
    }

    /// A demuxer whose element reader is bounded by `limits`.
    pub fn with_limits(limits: Limits) -> Demuxer {
        Demuxer {
            reader: Reader::new(limits),
            doc_type: None,
            timecode_scale: 1_000_000,
            duration: None,
            segment: None,
            seek_head: Vec::new(),
            seek_entry: (0, None),
            building: None,
            pending_tracks: Vec::new(),
            tracks: Vec::new(),
            cluster_tc: None,
            group: GroupState::default(),
            cues: Vec::new(),
            cue: CueBuilder::default(),
            cues_pending: Vec::new(),
            out: VecDeque::new(),
            reorder_depth: 2,
        }
    }

    /// How many frames of B-frame reordering H.264/HEVC decode times are rebuilt for (default 2,
    /// what x264/x265 use with B-pyramids; 0 makes decode times equal presentation times and
    /// hands frames out without delay). Set it before the Tracks are read.
    pub fn set_reorder_depth(&mut self, depth: usize) {
        self.reorder_depth = depth.min(16);
    }

    /// Appends input bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.reader.push(data);
    }

    /// Signals the end of input; `poll` then drains and closes what is open.
    pub fn finish(&mut self) {
        self.reader.finish();
    }

    /// Absolute offset of the next input byte the demuxer has not consumed.
    pub fn position(&self) -> u64 {
        self.reader.position()
    }

    /// Bytes pushed but not yet consumed (bounded by the largest element read whole).
    pub fn buffered(&self) -> usize {
        self.reader.buffered()
    }

    /// The DocType, once the EBML header was read.
    pub fn doc_type(&self) -> Option<DocType> {
        self.doc_type
    }

    /// Nanoseconds per timestamp unit (1 000 000 until Info says otherwise).
    pub fn timecode_scale_ns(&self) -> u64 {
        self.timecode_scale
    }

    /// Duration from Info, in milliseconds.
    pub fn duration_ms(&self) -> Option<f64> {
        self.duration.map(|d| d * self.timecode_scale as f64 / 1e6)
    }

    /// The tracks read so far.
    pub fn tracks(&self) -> Vec<Track> {
        self.tracks.iter().map(|t| t.track.clone()).collect()
    }

    /// Absolute offset of the Segment's payload (what SeekHead and Cues positions count from).
    pub fn segment_data_offset(&self) -> Option<u64> {
        self.segment.map(|s| s.0)
    }

    /// SeekHead entries as (element id, absolute offset).
    pub fn seek_head(&self) -> &[(u32, u64)] {
        &self.seek_head
    }

    /// Absolute offset of the Cues if the SeekHead names them.
    pub fn cues_offset(&self) -> Option<u64> {
        self.seek_head.iter().find(|e| e.0 == CUES).map(|e| e.1)
    }

    /// The Cues read so far (for seeking in a file).
    pub fn cue_points(&self) -> &[CuePoint] {
        &self.cues
    }

    /// Absolute offset of the Cluster to start reading from to play from `time_ms`: the last cue
    /// point at or before it (of a video track when there is one).
    pub fn seek_offset(&self, time_ms: i64) -> Option<u64> {
        let video: Vec<u32> = self
            .tracks
            .iter()
            .filter(|t| t.track.kind() == TrackKind::Video)
            .map(|t| t.track.id)
            .collect();
        let usable = |c: &&CuePoint| video.is_empty() || video.contains(&c.track);
        self.cues
            .iter()
            .filter(usable)
            .filter(|c| c.time_ms <= time_ms)
            .max_by_key(|c| (c.time_ms, c.cluster_offset))
            .or_else(|| self.cues.iter().filter(usable).min_by_key(|c| c.time_ms))
            .map(|c| c.cluster_offset)
    }

    /// Resumes reading at absolute offset `offset`, which must be the start of a Segment child
    /// (a Cluster from the Cues, or the Cues from the SeekHead). Tracks and cue points already
    /// read are kept; the caller pushes bytes from `offset` on.
    pub fn seek(&mut self, offset: u64) {
        let open: Vec<(u32, Option<u64>)> = match self.segment {
            Some((start, size)) => vec![(SEGMENT, size.and_then(|s| start.checked_add(s)))],
            None => Vec::new(),
        };
        self.reader.reset(offset, &open);
        self.cluster_tc = None;
        self.group = GroupState::default();
        self.out.clear();
        for t in &mut self.tracks {
            if let Some(r) = t.reorder.as_mut() {
                r.clear();
            }
        }
    }

    fn flush(&mut self) {
        for t in &mut self.tracks {
            if let Some(r) = t.reorder.as_mut() {
                r.flush(&mut self.out);
            }
        }
    }

    /// The next event, `Ok(None)` when more input is needed.
    pub fn poll(&mut self) -> Result<Option<MkvEvent>, MediaError> {
        loop {
            if let Some(ev) = self.out.pop_front() {
                return Ok(Some(ev));
            }
            let Some(ev) = self.reader.next(&MkvSchema)? else {
                return Ok(None);
            };
            match ev {
                Event::Start(h) => self.start(h)?,
                Event::Leaf(h, data) => self.leaf(h, data)?,
                Event::End(id) => self.end(id)?,
            }
        }
    }

    fn start(&mut self, h: Header) -> Result<(), MediaError> {
        match h.id {
            SEGMENT => {
                self.flush();
                self.segment = Some((h.data_offset(), h.size));
                self.seek_head.clear();
                self.out.push_back(MkvEvent::Segment {
                    data_offset: h.data_offset(),
                    size: h.size,
                });
            }
            TRACKS => self.pending_tracks.clear(),
            TRACK_ENTRY => self.building = Some(TrackBuilder::default()),
            SEEK => self.seek_entry = (0, None),
            CLUSTER => {
                self.cluster_tc = None;
                self.out.push_back(MkvEvent::Cluster { offset: h.offset });
            }
            BLOCK_GROUP => self.group = GroupState::default(),
            CUES => self.cues_pending.clear(),
            CUE_POINT => self.cue = CueBuilder::default(),
            CUE_TRACK_POSITIONS => {
                self.cue.track = 0;
                self.cue.cluster = None;
                self.cue.relative = None;
            }
            _ => {}
        }
        Ok(())
    }

    fn leaf(&mut self, h: Header, d: Bytes) -> Result<(), MediaError> {
        let parent = self.reader.parent_id();
        match (parent, h.id) {
            (EBML, DOC_TYPE) => {
                let s = string(&d);
                self.doc_type = Some(match s.as_str() {
                    "matroska" => DocType::Matroska,
                    "webm" => DocType::Webm,
                    _ => return Err(MediaError::unsupported("EBML DocType", s)),
                });
            }
            (SEEK, SEEK_ID) => self.seek_entry.0 = uint(&d)? as u32,
            (SEEK, SEEK_POSITION) => self.seek_entry.1 = Some(uint(&d)?),
            (INFO, TIMECODE_SCALE) => {
                let v = uint(&d)?;
                if v == 0 {
                    return Err(MediaError::malformed("Matroska TimecodeScale", "0"));
                }
                self.timecode_scale = v;
            }
            (INFO, DURATION) => {
                let v = float(&d)?;
                self.duration = (v.is_finite() && v >= 0.0).then_some(v);
            }
            (TRACK_ENTRY, _) | (VIDEO, _) | (AUDIO, _) => {
                let Some(b) = self.building.as_mut() else {
                    return Ok(());
                };
                match h.id {
                    TRACK_NUMBER => b.number = uint(&d)?,
                    TRACK_TYPE => b.ttype = uint(&d)?,
                    CODEC_ID => b.codec_id = string(&d),
                    CODEC_PRIVATE => b.private = d,
                    DEFAULT_DURATION => b.default_duration = uint(&d)?,
                    LANGUAGE => b.lang = string(&d),
                    PIXEL_WIDTH => b.width = uint(&d)?,
                    PIXEL_HEIGHT => b.height = uint(&d)?,
                    SAMPLING_FREQUENCY => b.rate = float(&d)?,
                    CHANNELS => b.channels = uint(&d)?,
                    BIT_DEPTH => b.bit_depth = uint(&d)?,
                    CODEC_DELAY => b.codec_delay = uint(&d)?,
                    CONTENT_ENCODINGS => match header_stripping(&d) {
                        Some(prefix) => b.strip_prefix = prefix,
                        None => b.encoded = true,
                    },
                    _ => {}
                }
            }
            (CLUSTER, TIMECODE) => self.cluster_tc = Some(uint(&d)?),
            (CLUSTER, SIMPLE_BLOCK) => {
                let key = d.len() > 3 && self.block_flags(&d).is_some_and(|f| f & 0x80 != 0);
                self.block(d, key)?;
            }
            (BLOCK_GROUP, BLOCK) => self.group.block = Some(d),
            (BLOCK_GROUP, REFERENCE_BLOCK) => self.group.reference = true,
            (CUE_POINT, CUE_TIME) => self.cue.time = Some(uint(&d)?),
            (CUE_TRACK_POSITIONS, CUE_TRACK) => self.cue.track = uint(&d)?,
            (CUE_TRACK_POSITIONS, CUE_CLUSTER_POSITION) => self.cue.cluster = Some(uint(&d)?),
            (CUE_TRACK_POSITIONS, CUE_RELATIVE_POSITION) => self.cue.relative = Some(uint(&d)?),
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, id: u32) -> Result<(), MediaError> {
        match id {
            EBML => {
                let dt = self.doc_type.unwrap_or(DocType::Matroska);
                self.doc_type = Some(dt);
                self.out.push_back(MkvEvent::Header { doc_type: dt });
            }
            SEGMENT => {
                self.flush();
                self.out.push_back(MkvEvent::EndOfSegment)
            }
            SEEK => {
                if let (id, Some(p), Some((start, _))) =
                    (self.seek_entry.0, self.seek_entry.1, self.segment)
                {
                    if self.seek_head.len() < 64 {
                        if let Some(abs) = start.checked_add(p) {
                            self.seek_head.push((id, abs));
                        }
                    }
                }
            }
            INFO => self.out.push_back(MkvEvent::Info {
                timecode_scale_ns: self.timecode_scale,
                duration_ms: self.duration_ms(),
            }),
            TRACK_ENTRY => {
                if let Some(b) = self.building.take() {
                    if let Some(t) = self.make_track(b)? {
                        if self.pending_tracks.len() >= MAX_TRACKS {
                            return Err(MediaError::TooLarge {
                                what: "Matroska track count",
                                size: self.pending_tracks.len() as u64 + 1,
                                limit: MAX_TRACKS as u64,
                            });
                        }
                        if !self.pending_tracks.iter().any(|p| p.number == t.number) {
                            self.pending_tracks.push(t);
                        }
                    }
                }
            }
            TRACKS => {
                self.flush();
                self.tracks = std::mem::take(&mut self.pending_tracks);
                self.out.push_back(MkvEvent::Tracks(self.tracks()));
            }
            BLOCK_GROUP => {
                if let Some(block) = self.group.block.take() {
                    let key = !self.group.reference;
                    self.block(block, key)?;
                }
            }
            CUE_TRACK_POSITIONS => {
                if let (Some(t), Some(c), Some((start, _))) =
                    (self.cue.time, self.cue.cluster, self.segment)
                {
                    if self.cues_pending.len() < MAX_CUES {
                        let time_ms = self.ticks_to_ms(t as i128)?;
                        if let (Some(off), Ok(track)) =
                            (start.checked_add(c), u32::try_from(self.cue.track))
                        {
                            self.cues_pending.push(CuePoint {
                                time_ms,
                                track,
                                cluster_offset: off,
                                relative_position: self.cue.relative,
                            });
                        }
                    }
                }
            }
            CUES => {
                self.cues = std::mem::take(&mut self.cues_pending);
                self.out.push_back(MkvEvent::Cues(self.cues.clone()));
            }
            _ => {}
        }
        Ok(())
    }

    fn make_track(&self, b: TrackBuilder) -> Result<Option<TrackState>, MediaError> {
        let Some(codec) = codec_from_id(&b.codec_id) else {
            return Ok(None);
        };
        if b.number == 0 || b.number > u32::MAX as u64 || b.encoded {
            // Content encodings (compression, encryption) are not handled: the track is left out.
            return Ok(None);
        }
        let mut t = Track::new(b.number as u32, codec);
        t.timescale = 1000;
        t.init = b.private;
        t.lang = if b.lang.is_empty() || b.lang == "und" {
            String::new()
        } else {
            b.lang
        };
        let mut nal_len = 4;
        match codec.kind() {
            TrackKind::Video => {
                t.width = b.width.min(u32::MAX as u64) as u32;
                t.height = b.height.min(u32::MAX as u64) as u32;
                if let Some(fpks) = 1_000_000_000_000u64.checked_div(b.default_duration) {
                    t.fpks = fpks.min(u32::MAX as u64) as u32;
                }
            }
            TrackKind::Audio => {
                t.rate = if b.rate.is_finite() && b.rate > 0.0 {
                    b.rate.min(u32::MAX as f64) as u32
                } else {
                    0
                };
                t.channels = if b.channels == 0 {
                    1
                } else {
                    b.channels.min(255) as u32
                };
                t.sample_size = if b.bit_depth > 0 {
                    b.bit_depth.min(64) as u32
                } else {
                    16
                };
            }
            TrackKind::Meta => {}
        }
        match codec {
            Codec::H264 if t.init.len() > 4 => {
                nal_len = (t.init[4] & 3) + 1;
                if nal_len != 4 {
                    let mut v = t.init.to_vec();
                    v[4] |= 3;
                    t.init = v.into();
                }
            }
            Codec::Hevc if t.init.len() > 21 => {
                nal_len = (t.init[21] & 3) + 1;
                if nal_len != 4 {
                    let mut v = t.init.to_vec();
                    v[21] |= 3;
                    t.init = v.into();
                }
            }
            Codec::Aac if t.init.is_empty() => t.init = synth_asc(&b.codec_id, t.rate, t.channels),
            _ => {}
        }
        let delay_ms = (b.codec_delay.min(1 << 40) as i64 + 500_000) / 1_000_000;
        let reorder =
            (matches!(codec, Codec::H264 | Codec::Hevc) && self.reorder_depth > 0).then(|| {
                Reorder::new(
                    self.reorder_depth,
                    (b.default_duration / 1_000_000).min(1 << 32) as i64,
                )
            });
        Ok(Some(TrackState {
            number: b.number,
            track: t,
            nal_len,
            default_duration_ns: b.default_duration,
            delay_ms,
            reorder,
            prefix: b.strip_prefix,
        }))
    }

    /// The flags byte of a block (after track number and timecode).
    fn block_flags(&self, d: &[u8]) -> Option<u8> {
        let (_, n) = read_size(d).ok()??;
        d.get(n + 2).copied()
    }

    fn ticks_to_ms(&self, ticks: i128) -> Result<i64, MediaError> {
        let ns = ticks
            .checked_mul(self.timecode_scale as i128)
            .ok_or_else(|| MediaError::malformed("Matroska timestamp", "overflow"))?;
        i64::try_from(ns.div_euclid(1_000_000))
            .map_err(|_| MediaError::malformed("Matroska timestamp", "overflow"))
    }

    fn block(&mut self, d: Bytes, key: bool) -> Result<(), MediaError> {
        let Some((Some(number), n)) = read_size(&d)? else {
            return Err(MediaError::malformed("Matroska block", "bad track number"));
        };
        if d.len() < n + 3 {
            return Err(MediaError::malformed(
                "Matroska block",
                "shorter than its header",
            ));
        }
        let rel = i16::from_be_bytes([d[n], d[n + 1]]);
        let flags = d[n + 2];
        let Some(ti) = self.tracks.iter().position(|t| t.number == number) else {
            return Ok(()); // a track we do not expose
        };
        let Some(ctc) = self.cluster_tc else {
            return Ok(()); // a block before its Cluster's Timecode has no time: dropped
        };
        let time = self.ticks_to_ms(ctc as i128 + rel as i128)?;
        let payload = d.slice(n + 3..);
        let lacing = (flags >> 1) & 3;
        let frames = if lacing == 0 {
            vec![payload]
        } else {
            unlace(payload, lacing)?
        };
        let (id, nal_len, dd) = {
            let t = &self.tracks[ti];
            (t.track.id, t.nal_len, t.default_duration_ns)
        };
        let time = time.saturating_sub(self.tracks[ti].delay_ms);
        let prefix = self.tracks[ti].prefix.clone();
        for (i, mut data) in frames.into_iter().enumerate() {
            if !prefix.is_empty() {
                let mut v = BytesMut::with_capacity(prefix.len() + data.len());
                v.extend_from_slice(&prefix);
                v.extend_from_slice(&data);
                data = v.freeze();
            }
            if nal_len != 4 {
                data = renal(&data, nal_len)?;
            }
            let offset = ((i as u128 * dd as u128) / 1_000_000).min(i64::MAX as u128) as i64;
            let f = Frame {
                track: id,
                dts: time.saturating_add(offset),
                pts_offset: 0,
                keyframe: key,
                data,
            };
            match self.tracks[ti].reorder.as_mut() {
                Some(r) => r.push(f, &mut self.out),
                None => self.out.push_back(MkvEvent::Frame(f)),
            }
        }
        Ok(())
    }
}

/// The children of a master element's payload as (id, payload); stops at the first bad one.
fn children(mut d: &[u8]) -> Vec<(u32, &[u8])> {
    let mut v = Vec::new();
    while let Ok(Some((id, n))) = super::vint::read_id(d) {
        let Ok(Some((Some(size), m))) = read_size(&d[n..]) else {
            break;
        };
        let Some(body) = usize::try_from(size)
            .ok()
            .and_then(|s| d.get(n + m..n + m + s))
        else {
            break;
        };
        v.push((id, body));
        d = &d[n + m + body.len()..];
    }
    v
}

/// The prefix of header-stripping compression (ContentCompAlgo 3) when that is the track's only
/// content encoding; `None` for anything we cannot undo (zlib, bzlib, lzo, encryption).
fn header_stripping(encodings: &[u8]) -> Option<Bytes> {
    const CONTENT_ENCODING: u32 = 0x6240;
    const CONTENT_ENCODING_TYPE: u32 = 0x5033;
    const CONTENT_COMPRESSION: u32 = 0x5034;
    const CONTENT_COMP_ALGO: u32 = 0x4254;
    const CONTENT_COMP_SETTINGS: u32 = 0x4255;
    let list = children(encodings);
    let [(CONTENT_ENCODING, enc)] = list.as_slice() else {
        return None;
    };
    let mut compression = None;
    for (id, body) in children(enc) {
        match id {
            CONTENT_ENCODING_TYPE if uint(body).ok()? != 0 => return None,
            CONTENT_COMPRESSION => compression = Some(body),
            _ => {}
        }
    }
    let mut algo = 0; // the default is zlib
    let mut settings: &[u8] = &[];
    for (id, body) in children(compression?) {
        match id {
            CONTENT_COMP_ALGO => algo = uint(body).ok()?,
            CONTENT_COMP_SETTINGS => settings = body,
            _ => {}
        }
    }
    // Real prefixes are a few bytes (a codec's frame header); a long one would multiply memory.
    (algo == 3 && settings.len() <= 64).then(|| Bytes::copy_from_slice(settings))
}

/// Splits a laced block payload into its frames. `lacing`: 1 Xiph, 2 fixed, 3 EBML.
pub fn unlace(p: Bytes, lacing: u8) -> Result<Vec<Bytes>, MediaError> {
    let bad = |d: &str| MediaError::malformed("Matroska lacing", d.to_string());
    let Some(&count) = p.first() else {
        return Err(bad("empty"));
    };
    let count = count as usize + 1;
    let mut pos = 1usize;
    let mut sizes: Vec<usize> = Vec::with_capacity(count);
    match lacing {
        1 => {
            for _ in 0..count - 1 {
                let mut s = 0usize;
                loop {
                    let &b = p.get(pos).ok_or_else(|| bad("truncated Xiph size"))?;
                    pos += 1;
                    s += b as usize;
                    if b != 255 {
                        break;
                    }
                }
                sizes.push(s);
            }
        }
        2 => {
            let total = p.len() - 1;
            if total / count * count != total {
                return Err(bad("fixed lacing does not divide the payload"));
            }
            sizes.extend(vec![total / count; count - 1]);
        }
        3 => {
            if count > 1 {
                let Some((Some(first), n)) = read_size(&p[pos..])? else {
                    return Err(bad("truncated EBML size"));
                };
                pos += n;
                let mut last = first as i64;
                sizes.push(usize::try_from(first).map_err(|_| bad("size"))?);
                for _ in 0..count - 2 {
                    let Some((delta, n)) = read_svint(&p[pos..])? else {
                        return Err(bad("truncated EBML delta"));
                    };
                    pos += n;
                    last = last
                        .checked_add(delta)
                        .filter(|v| *v >= 0)
                        .ok_or_else(|| bad("negative size"))?;
                    sizes.push(last as usize);
                }
            }
        }
        _ => return Err(bad("unknown lacing")),
    }
    let used: usize = sizes
        .iter()
        .try_fold(0usize, |a, &s| a.checked_add(s))
        .ok_or_else(|| bad("sizes overflow"))?;
    let rest = p
        .len()
        .checked_sub(pos)
        .and_then(|r| r.checked_sub(used))
        .ok_or_else(|| bad("sizes exceed the block"))?;
    sizes.push(rest);
    let mut out = Vec::with_capacity(count);
    for s in sizes {
        out.push(p.slice(pos..pos + s));
        pos += s;
    }
    Ok(out)
}

/// Rewrites NAL units with `len`-byte length prefixes to 4-byte prefixes.
fn renal(d: &[u8], len: u8) -> Result<Bytes, MediaError> {
    let len = len as usize;
    let mut out = BytesMut::with_capacity(d.len() + d.len() / 2);
    let mut i = 0;
    while i < d.len() {
        if d.len() - i < len {
            return Err(MediaError::malformed("NAL length", "truncated"));
        }
        let n = d[i..i + len]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | b as usize);
        i += len;
        if d.len() - i < n {
            return Err(MediaError::malformed("NAL unit", "longer than the frame"));
        }
        out.extend_from_slice(&(n as u32).to_be_bytes());
        out.extend_from_slice(&d[i..i + n]);
        i += n;
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lacing_kinds() {
        // Xiph: 3 frames of 2, 256, rest 1
        let mut p = vec![2u8, 2, 255, 1];
        p.extend([7u8; 2 + 256 + 1]);
        let f = unlace(Bytes::from(p), 1).unwrap();
        assert_eq!(f.iter().map(|b| b.len()).collect::<Vec<_>>(), [2, 256, 1]);
        // fixed: 2 frames of 3
        let f = unlace(Bytes::from_static(&[1, 1, 2, 3, 4, 5, 6]), 2).unwrap();
        assert_eq!(
            f,
            [
                Bytes::from_static(&[1, 2, 3]),
                Bytes::from_static(&[4, 5, 6])
            ]
        );
        // EBML: sizes 3, 3+(-1)=2, rest
        let mut p = vec![2u8, 0x83, 0xBE];
        p.extend([0u8; 3 + 2 + 4]);
        let f = unlace(Bytes::from(p), 3).unwrap();
        assert_eq!(f.iter().map(|b| b.len()).collect::<Vec<_>>(), [3, 2, 4]);
        // hostile
        assert!(unlace(Bytes::from_static(&[5, 255, 255]), 1).is_err());
        assert!(unlace(Bytes::from_static(&[1, 0x90, 0]), 3).is_err());
        assert!(unlace(Bytes::from_static(&[2, 1, 2, 3, 4]), 2).is_err());
        assert!(unlace(Bytes::new(), 3).is_err());
    }

    #[test]
    fn renal_two_bytes() {
        let out = renal(&[0, 2, 0xAA, 0xBB, 0, 1, 0xCC], 2).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 2, 0xAA, 0xBB, 0, 0, 0, 1, 0xCC]);
        assert!(renal(&[0, 9, 1], 2).is_err());
    }
}

#[cfg(test)]
mod stream_tests {
    use super::super::writer::{el_bytes, el_master, el_uint};
    use super::*;
    use crate::ebml::vint::{write_id, UNKNOWN_SIZE};

    fn events(data: &[u8]) -> Vec<MkvEvent> {
        let mut d = Demuxer::new();
        d.push(data);
        d.finish();
        let mut v = Vec::new();
        while let Some(e) = d.poll().unwrap() {
            v.push(e);
        }
        v
    }

    fn frames(ev: &[MkvEvent]) -> Vec<(u32, i64, bool, usize)> {
        ev.iter()
            .filter_map(|e| match e {
                MkvEvent::Frame(f) => Some((f.track, f.pts(), f.keyframe, f.data.len())),
                _ => None,
            })
            .collect()
    }

    /// EBML header, Segment of unknown size, Tracks with one MP3 track (20 ms DefaultDuration).
    fn head(out: &mut Vec<u8>) {
        let mut e = Vec::new();
        el_bytes(&mut e, DOC_TYPE, b"matroska");
        el_master(out, EBML, &e);
        write_id(out, SEGMENT);
        out.extend_from_slice(&UNKNOWN_SIZE);
        let mut t = Vec::new();
        el_uint(&mut t, TRACK_NUMBER, 3);
        el_uint(&mut t, TRACK_TYPE, 2);
        el_bytes(&mut t, CODEC_ID, b"A_MPEG/L3");
        el_uint(&mut t, DEFAULT_DURATION, 20_000_000);
        let mut entry = Vec::new();
        el_master(&mut entry, TRACK_ENTRY, &t);
        el_master(out, TRACKS, &entry);
    }

    #[test]
    fn block_groups_and_lacing() {
        let mut f = Vec::new();
        head(&mut f);
        let mut c = Vec::new();
        el_uint(&mut c, TIMECODE, 100);
        // BlockGroup: Xiph-laced Block of 3 frames (2, 3, 4 bytes), no ReferenceBlock = key.
        let mut g = Vec::new();
        el_bytes(
            &mut g,
            BLOCK,
            &[0x83, 0, 0, 0x02, 2, 2, 3, 1, 1, 2, 2, 2, 3, 3, 3, 3],
        );
        el_uint(&mut g, BLOCK_DURATION, 60);
        el_master(&mut c, BLOCK_GROUP, &g);
        // BlockGroup with a ReferenceBlock: not a keyframe; relative time -5.
        let mut g = Vec::new();
        el_bytes(&mut g, BLOCK, &[0x83, 0xFF, 0xFB, 0x00, 9, 9]);
        write_id(&mut g, REFERENCE_BLOCK);
        g.extend_from_slice(&[0x81, 0xEC]);
        el_master(&mut c, BLOCK_GROUP, &g);
        // SimpleBlock, EBML lacing: 2 frames of 1 and 2 bytes, keyframe flag.
        el_bytes(&mut c, SIMPLE_BLOCK, &[0x83, 0, 10, 0x86, 1, 0x81, 7, 8, 8]);
        // A block of a track that does not exist is skipped.
        el_bytes(&mut c, SIMPLE_BLOCK, &[0x85, 0, 10, 0x80, 1]);
        el_master(&mut f, CLUSTER, &c);
        let ev = events(&f);
        assert_eq!(
            frames(&ev),
            [
                (3, 100, true, 2),
                (3, 120, true, 3),
                (3, 140, true, 4),
                (3, 95, false, 2),
                (3, 110, true, 1),
                (3, 130, true, 2)
            ]
        );
        assert!(matches!(ev.last(), Some(MkvEvent::EndOfSegment)));
    }

    #[test]
    fn unknown_size_cluster_ended_by_top_level_elements() {
        let mut f = Vec::new();
        head(&mut f);
        for tc in [0u64, 1000] {
            write_id(&mut f, CLUSTER);
            f.extend_from_slice(&[0xFF]); // 1-byte unknown size
            el_uint(&mut f, TIMECODE, tc);
            el_bytes(&mut f, SIMPLE_BLOCK, &[0x83, 0, 5, 0x80, 1, 2]);
            // An unknown element inside the cluster is skipped.
            el_bytes(&mut f, 0x4321, &[0; 10]);
        }
        // Cues after an unknown-size Cluster end it.
        let mut tp = Vec::new();
        el_uint(&mut tp, CUE_TRACK, 3);
        el_uint(&mut tp, CUE_CLUSTER_POSITION, 77);
        let mut p = Vec::new();
        el_uint(&mut p, CUE_TIME, 1000);
        el_master(&mut p, CUE_TRACK_POSITIONS, &tp);
        let mut cp = Vec::new();
        el_master(&mut cp, CUE_POINT, &p);
        el_master(&mut f, CUES, &cp);
        // A new EBML header (a chained stream) ends the Segment.
        let mut e = Vec::new();
        el_bytes(&mut e, DOC_TYPE, b"webm");
        el_master(&mut f, EBML, &e);
        for chunk in [1, 2, 5, f.len()] {
            let mut d = Demuxer::new();
            let mut ev = Vec::new();
            for c in f.chunks(chunk) {
                d.push(c);
                while let Some(e) = d.poll().unwrap() {
                    ev.push(e);
                }
            }
            assert_eq!(
                frames(&ev),
                [(3, 5, true, 2), (3, 1005, true, 2)],
                "chunk {chunk}"
            );
            let cues: Vec<&MkvEvent> = ev
                .iter()
                .filter(|e| matches!(e, MkvEvent::Cues(_)))
                .collect();
            assert_eq!(cues.len(), 1);
            assert_eq!(d.cue_points()[0].time_ms, 1000);
            let data_offset = d.segment_data_offset().unwrap();
            assert_eq!(d.cue_points()[0].cluster_offset, data_offset + 77);
            let tail: Vec<&MkvEvent> = ev.iter().rev().take(2).collect();
            assert_eq!(tail[1], &MkvEvent::EndOfSegment);
            assert_eq!(
                tail[0],
                &MkvEvent::Header {
                    doc_type: DocType::Webm
                }
            );
        }
    }

    #[test]
    fn header_stripping_is_undone() {
        let mut f = Vec::new();
        let mut e = Vec::new();
        el_bytes(&mut e, DOC_TYPE, b"matroska");
        el_master(&mut f, EBML, &e);
        write_id(&mut f, SEGMENT);
        f.extend_from_slice(&UNKNOWN_SIZE);
        let encodings = |algo: u64| {
            let mut c = Vec::new();
            el_uint(&mut c, 0x4254, algo);
            el_bytes(&mut c, 0x4255, &[0xFF, 0xFB]);
            let mut enc = Vec::new();
            el_master(&mut enc, 0x5034, &c);
            let mut list = Vec::new();
            el_master(&mut list, 0x6240, &enc);
            list
        };
        let mut entries = Vec::new();
        for (n, algo) in [(1u64, 3u64), (2, 0)] {
            let mut t = Vec::new();
            el_uint(&mut t, TRACK_NUMBER, n);
            el_bytes(&mut t, CODEC_ID, b"A_MPEG/L3");
            el_master(&mut t, CONTENT_ENCODINGS, &encodings(algo));
            el_master(&mut entries, TRACK_ENTRY, &t);
        }
        el_master(&mut f, TRACKS, &entries);
        let mut c = Vec::new();
        el_uint(&mut c, TIMECODE, 0);
        el_bytes(&mut c, SIMPLE_BLOCK, &[0x81, 0, 0, 0x80, 0x90, 0x64]);
        el_bytes(&mut c, SIMPLE_BLOCK, &[0x82, 0, 0, 0x80, 0x90, 0x64]);
        el_master(&mut f, CLUSTER, &c);
        let ev = events(&f);
        let tracks: Vec<&MkvEvent> = ev
            .iter()
            .filter(|e| matches!(e, MkvEvent::Tracks(_)))
            .collect();
        assert!(
            matches!(tracks[0], MkvEvent::Tracks(t) if t.len() == 1),
            "zlib track left out"
        );
        let data: Vec<Bytes> = ev
            .into_iter()
            .filter_map(|e| {
                if let MkvEvent::Frame(f) = e {
                    Some(f.data)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(data, [Bytes::from_static(&[0xFF, 0xFB, 0x90, 0x64])]);
    }

    #[test]
    fn hostile_headers() {
        // Deeper than the limit.
        let mut d = Demuxer::with_limits(Limits {
            max_leaf: 1000,
            max_depth: 4,
        });
        d.push(&[0xE0, 0xFF].repeat(6));
        let mut r = Ok(None);
        for _ in 0..10 {
            r = d.poll();
            if !matches!(r, Ok(Some(_))) {
                break;
            }
        }
        assert!(matches!(r, Err(MediaError::TooLarge { .. })), "{r:?}");
        // A child larger than its parent.
        let mut d = Demuxer::new();
        d.push(&[0x1A, 0x45, 0xDF, 0xA3, 0x83, 0x42, 0x82, 0x85]);
        assert!(matches!(d.poll(), Err(MediaError::Malformed { .. })));
        assert_eq!(d.poll(), Ok(None), "stays failed");
        // A 2^56 byte Void is skipped without buffering.
        let mut d = Demuxer::new();
        d.push(&[0xEC, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
        d.push(&[0u8; 100_000]);
        assert_eq!(d.poll(), Ok(None));
        d.push(&[0u8; 100_000]);
        assert_eq!(d.poll(), Ok(None));
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.position(), 200_009);
    }
}
