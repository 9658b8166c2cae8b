//! Matroska / WebM muxer (sans-IO: bytes out, the caller writes them).
//!
//! Two modes:
//! - [`WriteMode::Live`]: Segment and Clusters of unknown size, no Cues; every byte handed out is
//!   final, so a player can read the output while it grows (HTTP progressive, pipes).
//! - [`WriteMode::Finalised`]: a recording. Clusters have known sizes (each is handed out when it
//!   closes), the Segment size, the SeekHead's Cues entry and Info's Duration are placeholders
//!   that [`Writer::finish`] tells the caller to patch, and Cues (one per video keyframe, or per
//!   Cluster without video) follow the last Cluster.
//!
//! A new Cluster starts at every video keyframe (at every keyframe of the first track for audio-
//! only streams once the Cluster is a second old), and whenever a block's time relative to the
//! Cluster would not fit an i16 or the Cluster grows past a size bound.

use super::ids::*;
use super::vint::{size8, write_id, write_size, UNKNOWN_SIZE};
use super::DocType;
use crate::error::MediaError;
use crate::frame::{Codec, Frame, Track, TrackKind};

/// Whether the output can be patched afterwards (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Nothing is ever rewritten: for outputs read while they grow.
    Live,
    /// Sizes, Duration and Cues are filled in at the end: for files.
    Finalised,
}

/// How the muxer writes.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Matroska or WebM (the EBML header's DocType; WebM players refuse other codecs).
    pub doc_type: DocType,
    /// Live or finalised.
    pub mode: WriteMode,
    /// Written as MuxingApp and WritingApp.
    pub app: String,
    /// A Cluster is closed before it would exceed this many payload bytes.
    pub max_cluster_bytes: usize,
    /// For streams without video: close a Cluster at a keyframe once it spans this long.
    pub audio_cluster_ms: i64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            doc_type: DocType::Matroska,
            mode: WriteMode::Live,
            app: "mist-rs".into(),
            max_cluster_bytes: 8 << 20,
            audio_cluster_ms: 1000,
        }
    }
}

/// Bytes to write at an absolute output offset, over what was written there before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Where to write (absolute, from the first byte handed out).
    pub offset: u64,
    /// What to write there.
    pub bytes: Vec<u8>,
}

/// What [`Writer::finish`] returns: append `tail`, then apply `patches` (none in live mode).
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// The last bytes (the open Cluster and, finalised, the Cues).
    pub tail: Vec<u8>,
    /// Bytes to overwrite afterwards (finalised only).
    pub patches: Vec<Patch>,
    /// Duration written into Info (finalised mode), in milliseconds.
    pub duration_ms: f64,
}

#[derive(Debug, Clone)]
struct TrackOut {
    id: u32,
    number: u64,
    kind: TrackKind,
    last_pts: Option<i64>,
    last_delta: i64,
    /// Added to presentation times to get block times (Opus CodecDelay, in ms).
    delay_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct Cue {
    time: u64,
    track: u64,
    cluster: u64,
    relative: u64,
}

/// The muxer: tracks in, then frames, bytes out; see the module docs.
#[derive(Debug)]
pub struct Writer {
    opts: WriterOptions,
    tracks: Vec<TrackOut>,
    header: Option<Vec<u8>>,
    has_video: bool,
    written: u64,
    segment_size_at: u64,
    segment_data_at: u64,
    seek_head_at: u64,
    info_rel: u64,
    tracks_rel: u64,
    duration_at: u64,
    /// Open cluster: timecode and (finalised mode) its buffered payload.
    cluster_tc: Option<u64>,
    cluster_start: u64,
    cluster_buf: Vec<u8>,
    cluster_bytes: usize,
    cues: Vec<Cue>,
    max_end: i64,
}

pub(crate) fn el_uint(out: &mut Vec<u8>, id: u32, v: u64) {
    write_id(out, id);
    let n = (8 - (v.leading_zeros() as usize / 8)).max(1);
    write_size(out, n as u64);
    out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
}

pub(crate) fn el_bytes(out: &mut Vec<u8>, id: u32, b: &[u8]) {
    write_id(out, id);
    write_size(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(crate) fn el_float(out: &mut Vec<u8>, id: u32, v: f64) {
    write_id(out, id);
    write_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn el_master(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    el_bytes(out, id, body);
}

/// The Matroska CodecID of a codec.
pub fn codec_id(codec: Codec) -> Option<&'static str> {
    Some(match codec {
        Codec::H264 => "V_MPEG4/ISO/AVC",
        Codec::Hevc => "V_MPEGH/ISO/HEVC",
        Codec::Av1 => "V_AV1",
        Codec::Vp8 => "V_VP8",
        Codec::Vp9 => "V_VP9",
        Codec::Aac => "A_AAC",
        Codec::Mp3 => "A_MPEG/L3",
        Codec::Opus => "A_OPUS",
        Codec::Ac3 => "A_AC3",
        Codec::Pcm => "A_PCM/INT/LIT",
        Codec::Alaw | Codec::Ulaw | Codec::Meta => return None,
    })
}

fn webm_codec(codec: Codec) -> bool {
    matches!(codec, Codec::Vp8 | Codec::Vp9 | Codec::Av1 | Codec::Opus)
}

impl Writer {
    /// A writer for these tracks. Errors for codecs the DocType cannot carry.
    pub fn new(tracks: &[Track], opts: WriterOptions) -> Result<Writer, MediaError> {
        if tracks.is_empty() {
            return Err(MediaError::malformed("Matroska writer", "no tracks"));
        }
        let mut body = Vec::new();
        let mut outs = Vec::new();
        for t in tracks {
            let Some(cid) = codec_id(t.codec) else {
                return Err(MediaError::unsupported(
                    "Matroska codec",
                    t.codec.mist_name(),
                ));
            };
            if opts.doc_type == DocType::Webm && !webm_codec(t.codec) {
                return Err(MediaError::unsupported("WebM codec", t.codec.mist_name()));
            }
            if t.id == 0 || outs.iter().any(|o: &TrackOut| o.id == t.id) {
                return Err(MediaError::malformed(
                    "Matroska writer",
                    format!("track id {}", t.id),
                ));
            }
            let mut e = Vec::new();
            let mut delay_ms = 0;
            el_uint(&mut e, TRACK_NUMBER, t.id as u64);
            el_uint(&mut e, TRACK_UID, t.id as u64);
            el_uint(
                &mut e,
                TRACK_TYPE,
                if t.kind() == TrackKind::Video { 1 } else { 2 },
            );
            el_uint(&mut e, FLAG_LACING, 0);
            el_bytes(&mut e, CODEC_ID, cid.as_bytes());
            if !t.lang.is_empty() {
                el_bytes(&mut e, LANGUAGE, t.lang.as_bytes());
            }
            if !t.init.is_empty() {
                el_bytes(&mut e, CODEC_PRIVATE, &t.init);
            }
            match t.kind() {
                TrackKind::Video => {
                    if t.fpks > 0 {
                        el_uint(
                            &mut e,
                            DEFAULT_DURATION,
                            1_000_000_000_000u64 / t.fpks as u64,
                        );
                    }
                    let mut v = Vec::new();
                    el_uint(&mut v, PIXEL_WIDTH, t.width as u64);
                    el_uint(&mut v, PIXEL_HEIGHT, t.height as u64);
                    el_master(&mut e, VIDEO, &v);
                }
                _ => {
                    if t.codec == Codec::Opus {
                        // CodecDelay from the OpusHead pre-skip (48 kHz samples), SeekPreRoll 80 ms.
                        if t.init.len() >= 12 {
                            let pre = u16::from_le_bytes([t.init[10], t.init[11]]) as u64;
                            let ns = pre * 1_000_000_000 / 48_000;
                            delay_ms = (ns as i64 + 500_000) / 1_000_000;
                            el_uint(&mut e, CODEC_DELAY, ns);
                        }
                        el_uint(&mut e, SEEK_PRE_ROLL, 80_000_000);
                    }
                    let mut a = Vec::new();
                    el_float(&mut a, SAMPLING_FREQUENCY, t.rate as f64);
                    el_uint(&mut a, CHANNELS, t.channels.max(1) as u64);
                    if t.codec == Codec::Pcm && t.sample_size > 0 {
                        el_uint(&mut a, BIT_DEPTH, t.sample_size as u64);
                    }
                    el_master(&mut e, AUDIO, &a);
                }
            }
            el_master(&mut body, TRACK_ENTRY, &e);
            outs.push(TrackOut {
                id: t.id,
                number: t.id as u64,
                kind: t.kind(),
                last_pts: None,
                last_delta: 0,
                delay_ms,
            });
        }
        let has_video = outs.iter().any(|o| o.kind == TrackKind::Video);
        let mut w = Writer {
            opts,
            tracks: outs,
            header: None,
            has_video,
            written: 0,
            segment_size_at: 0,
            segment_data_at: 0,
            seek_head_at: 0,
            info_rel: 0,
            tracks_rel: 0,
            duration_at: 0,
            cluster_tc: None,
            cluster_start: 0,
            cluster_buf: Vec::new(),
            cluster_bytes: 0,
            cues: Vec::new(),
            max_end: 0,
        };
        w.header = Some(w.build_header(&body));
        Ok(w)
    }

    fn finalised(&self) -> bool {
        self.opts.mode == WriteMode::Finalised
    }

    fn seek_head(&self, cues_rel: u64) -> Vec<u8> {
        let mut s = Vec::new();
        for (id, pos) in [
            (INFO, self.info_rel),
            (TRACKS, self.tracks_rel),
            (CUES, cues_rel),
        ] {
            let mut e = Vec::new();
            el_bytes(&mut e, SEEK_ID, &id.to_be_bytes());
            // Fixed 8-byte position so the SeekHead can be rewritten in place.
            write_id(&mut e, SEEK_POSITION);
            write_size(&mut e, 8);
            e.extend_from_slice(&pos.to_be_bytes());
            el_master(&mut s, SEEK, &e);
        }
        let mut out = Vec::new();
        el_master(&mut out, SEEK_HEAD, &s);
        out
    }

    fn build_header(&mut self, tracks_body: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        let mut e = Vec::new();
        el_uint(&mut e, EBML_VERSION, 1);
        el_uint(&mut e, EBML_READ_VERSION, 1);
        el_uint(&mut e, EBML_MAX_ID_LENGTH, 4);
        el_uint(&mut e, EBML_MAX_SIZE_LENGTH, 8);
        el_bytes(&mut e, DOC_TYPE, self.opts.doc_type.as_str().as_bytes());
        el_uint(&mut e, DOC_TYPE_VERSION, 4);
        el_uint(&mut e, DOC_TYPE_READ_VERSION, 2);
        el_master(&mut h, EBML, &e);

        write_id(&mut h, SEGMENT);
        self.segment_size_at = h.len() as u64;
        h.extend_from_slice(&UNKNOWN_SIZE);
        self.segment_data_at = h.len() as u64;

        let mut info = Vec::new();
        el_uint(&mut info, TIMECODE_SCALE, 1_000_000);
        el_bytes(&mut info, MUXING_APP, self.opts.app.as_bytes());
        el_bytes(&mut info, WRITING_APP, self.opts.app.as_bytes());
        let mut dur_rel = 0;
        if self.finalised() {
            dur_rel = info.len() + 3; // Duration ID (2) + size (1)
            el_float(&mut info, DURATION, 0.0);
        }
        let mut info_el = Vec::new();
        write_id(&mut info_el, INFO);
        write_size(&mut info_el, info.len() as u64);
        let info_hdr = info_el.len();
        info_el.extend_from_slice(&info);

        if self.finalised() {
            self.seek_head_at = h.len() as u64;
            let sh_len = self.seek_head(0).len() as u64;
            self.info_rel = sh_len;
            self.tracks_rel = sh_len + info_el.len() as u64;
            let sh = self.seek_head(0);
            h.extend_from_slice(&sh);
        } else {
            self.info_rel = 0;
        }
        self.duration_at = h.len() as u64 + (info_hdr + dur_rel) as u64;
        h.extend_from_slice(&info_el);
        el_master(&mut h, TRACKS, tracks_body);
        h
    }

    /// Total bytes handed out so far (the absolute offset of the next byte).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Appends the EBML header, Segment start, (SeekHead,) Info and Tracks to `out` if that was
    /// not done yet. `write_frame` calls it too.
    pub fn write_header(&mut self, out: &mut Vec<u8>) {
        if let Some(h) = self.header.take() {
            self.written += h.len() as u64;
            out.extend_from_slice(&h);
        }
    }

    fn close_cluster(&mut self, out: &mut Vec<u8>) {
        if self.cluster_tc.take().is_none() {
            return;
        }
        if self.finalised() {
            let start = out.len();
            write_id(out, CLUSTER);
            write_size(out, self.cluster_buf.len() as u64);
            out.extend_from_slice(&self.cluster_buf);
            self.written += (out.len() - start) as u64;
            self.cluster_buf.clear();
        }
    }

    fn open_cluster(&mut self, tc: u64, out: &mut Vec<u8>) {
        self.cluster_tc = Some(tc);
        self.cluster_start = self.written;
        self.cluster_bytes = 0;
        let mut b = Vec::new();
        el_uint(&mut b, TIMECODE, tc);
        if self.finalised() {
            self.cluster_buf.clear();
            self.cluster_buf.extend_from_slice(&b);
        } else {
            let start = out.len();
            write_id(out, CLUSTER);
            out.extend_from_slice(&UNKNOWN_SIZE);
            out.extend_from_slice(&b);
            self.written += (out.len() - start) as u64;
        }
        self.cluster_bytes = b.len();
    }

    /// Appends what it takes to write `f` (in decode order) to `out`: in live mode the block
    /// itself, in finalised mode the previous Cluster when this frame closes it.
    pub fn write_frame(&mut self, f: &Frame, out: &mut Vec<u8>) -> Result<(), MediaError> {
        self.write_header(out);
        let Some(ti) = self.tracks.iter().position(|t| t.id == f.track) else {
            return Err(MediaError::malformed(
                "Matroska writer",
                format!("frame of unknown track {}", f.track),
            ));
        };
        let pts = f.pts().saturating_add(self.tracks[ti].delay_ms);
        if pts < 0 {
            return Err(MediaError::unsupported(
                "Matroska writer",
                format!("negative timestamp {pts}"),
            ));
        }
        let (kind, number) = (self.tracks[ti].kind, self.tracks[ti].number);
        let t = &mut self.tracks[ti];
        // Frame duration estimate: the smallest step between consecutive times (B-frames make
        // larger and negative steps).
        if let Some(last) = t.last_pts {
            let step = pts - last;
            if step > 0 && (t.last_delta == 0 || step < t.last_delta) {
                t.last_delta = step;
            }
        }
        t.last_pts = Some(pts);
        let end = pts.saturating_add(t.last_delta);
        self.max_end = self.max_end.max(end);

        let pts_u = pts as u64;
        let first_track = self.tracks[0].id == f.track;
        let cut = match self.cluster_tc {
            None => true,
            Some(tc) => {
                let rel = pts - tc as i64;
                let key_cut = if self.has_video {
                    kind == TrackKind::Video && f.keyframe
                } else {
                    f.keyframe && first_track && rel >= self.opts.audio_cluster_ms
                };
                key_cut
                    || rel > i16::MAX as i64
                    || rel < i16::MIN as i64
                    || self.cluster_bytes + f.data.len() > self.opts.max_cluster_bytes
            }
        };
        if cut {
            self.close_cluster(out);
            self.open_cluster(pts_u, out);
        }
        let tc = self.cluster_tc.unwrap_or(pts_u);
        let rel = (pts - tc as i64) as i16;

        let mut hdr = Vec::with_capacity(16);
        write_id(&mut hdr, SIMPLE_BLOCK);
        let mut bh = Vec::with_capacity(8);
        write_size(&mut bh, number);
        bh.extend_from_slice(&rel.to_be_bytes());
        bh.push(if f.keyframe { 0x80 } else { 0 });
        write_size(&mut hdr, (bh.len() + f.data.len()) as u64);
        hdr.extend_from_slice(&bh);

        // Cues: every video keyframe; without video, the first track's Cluster starts.
        let cue_track = if self.has_video {
            kind == TrackKind::Video
        } else {
            first_track && cut
        };
        if self.finalised() && f.keyframe && cue_track {
            let cluster = self.cluster_start - self.segment_data_at;
            self.cues.push(Cue {
                time: pts_u,
                track: number,
                cluster,
                relative: self.cluster_buf.len() as u64,
            });
        }
        if self.finalised() {
            self.cluster_buf.extend_from_slice(&hdr);
            self.cluster_buf.extend_from_slice(&f.data);
        } else {
            out.extend_from_slice(&hdr);
            out.extend_from_slice(&f.data);
            self.written += (hdr.len() + f.data.len()) as u64;
        }
        self.cluster_bytes += hdr.len() + f.data.len();
        Ok(())
    }

    /// Ends the output. In live mode `tail` is empty (nothing is pending) and there are no
    /// patches. In finalised mode `tail` is the last Cluster and the Cues, and the patches fill in
    /// the Segment size, the SeekHead and the Duration.
    pub fn finish(mut self) -> Finished {
        let mut tail = Vec::new();
        self.write_header(&mut tail);
        if !self.finalised() {
            return Finished {
                tail,
                patches: Vec::new(),
                duration_ms: 0.0,
            };
        }
        self.close_cluster(&mut tail);
        let cues_rel = self.written - self.segment_data_at;
        let mut body = Vec::new();
        for c in &self.cues {
            let mut tp = Vec::new();
            el_uint(&mut tp, CUE_TRACK, c.track);
            el_uint(&mut tp, CUE_CLUSTER_POSITION, c.cluster);
            el_uint(&mut tp, CUE_RELATIVE_POSITION, c.relative);
            let mut p = Vec::new();
            el_uint(&mut p, CUE_TIME, c.time);
            el_master(&mut p, CUE_TRACK_POSITIONS, &tp);
            el_master(&mut body, CUE_POINT, &p);
        }
        let start = tail.len();
        el_master(&mut tail, CUES, &body);
        self.written += (tail.len() - start) as u64;

        let segment_size = self.written - self.segment_data_at;
        let duration = self.max_end.max(0) as f64;
        let patches = vec![
            Patch {
                offset: self.segment_size_at,
                bytes: size8(segment_size).to_vec(),
            },
            Patch {
                offset: self.seek_head_at,
                bytes: self.seek_head(cues_rel),
            },
            Patch {
                offset: self.duration_at,
                bytes: duration.to_be_bytes().to_vec(),
            },
        ];
        Finished {
            tail,
            patches,
            duration_ms: duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebml::reader::{Demuxer, MkvEvent};
    use bytes::Bytes;

    fn run(tracks: &[Track], frames: &[Frame], mode: WriteMode) -> Vec<u8> {
        let opts = WriterOptions {
            mode,
            doc_type: DocType::Webm,
            ..Default::default()
        };
        let mut w = Writer::new(tracks, opts).unwrap();
        let mut out = Vec::new();
        for f in frames {
            let before = w.bytes_written();
            w.write_frame(f, &mut out).unwrap();
            assert_eq!(w.bytes_written() - before, out.len() as u64 - before);
        }
        let fin = w.finish();
        out.extend_from_slice(&fin.tail);
        for p in fin.patches {
            out[p.offset as usize..p.offset as usize + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        out
    }

    fn read(data: &[u8]) -> (Vec<MkvEvent>, Demuxer) {
        let mut d = Demuxer::new();
        d.push(data);
        d.finish();
        let mut v = Vec::new();
        while let Some(e) = d.poll().unwrap() {
            v.push(e);
        }
        (v, d)
    }

    fn frame(track: u32, dts: i64, keyframe: bool) -> Frame {
        Frame {
            track,
            dts,
            pts_offset: 0,
            keyframe,
            data: Bytes::from_static(&[1, 2, 3]),
        }
    }

    #[test]
    fn cluster_cut_when_relative_time_overflows() {
        let t = Track::new(1, Codec::Vp9);
        let frames: Vec<Frame> = (0..100).map(|i| frame(1, i * 1000, i == 0)).collect();
        for mode in [WriteMode::Live, WriteMode::Finalised] {
            let (ev, _) = read(&run(std::slice::from_ref(&t), &frames, mode));
            let clusters = ev
                .iter()
                .filter(|e| matches!(e, MkvEvent::Cluster { .. }))
                .count();
            assert_eq!(clusters, 4, "{mode:?}"); // 0, 33000, 66000, 99000
            let got: Vec<Frame> = ev
                .into_iter()
                .filter_map(|e| {
                    if let MkvEvent::Frame(f) = e {
                        Some(f)
                    } else {
                        None
                    }
                })
                .collect();
            assert_eq!(got, frames);
        }
    }

    #[test]
    fn audio_only_clusters_and_finalised_fields() {
        let mut t = Track::new(1, Codec::Opus);
        t.rate = 48000;
        t.channels = 2;
        let frames: Vec<Frame> = (0..150).map(|i| frame(1, i * 20, true)).collect();
        let out = run(&[t], &frames, WriteMode::Finalised);
        let (ev, d) = read(&out);
        let clusters = ev
            .iter()
            .filter(|e| matches!(e, MkvEvent::Cluster { .. }))
            .count();
        assert_eq!(clusters, 3);
        assert!(ev.iter().any(
            |e| matches!(e, MkvEvent::Segment { size: Some(s), data_offset }
            if *data_offset + *s == out.len() as u64)
        ));
        assert_eq!(d.duration_ms(), Some(3000.0));
        assert_eq!(d.cue_points().len(), 3);
        assert_eq!(d.doc_type(), Some(DocType::Webm));
        let off = d.seek_offset(2100).unwrap();
        assert!(ev.iter().any(|e| *e == MkvEvent::Cluster { offset: off }));
    }

    #[test]
    fn rejects_what_it_cannot_write() {
        assert!(Writer::new(&[], WriterOptions::default()).is_err());
        let dup = [Track::new(1, Codec::Aac), Track::new(1, Codec::H264)];
        assert!(Writer::new(&dup, WriterOptions::default()).is_err());
        assert!(Writer::new(&[Track::new(1, Codec::Meta)], WriterOptions::default()).is_err());
        let mut w = Writer::new(&[Track::new(1, Codec::Aac)], WriterOptions::default()).unwrap();
        let mut out = Vec::new();
        assert!(w.write_frame(&frame(2, 0, true), &mut out).is_err());
        assert!(w.write_frame(&frame(1, -5, true), &mut out).is_err());
    }
}
