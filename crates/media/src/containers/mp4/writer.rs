//! Progressive MP4 writing, moov first (two passes over a compact index) or moov at the end
//! (recording), plus the box builders the fragmented writer shares.

use super::boxes::BoxWriter;
use super::entry::write_entry;
use crate::error::MediaError;
use crate::frame::{Frame, Track, TrackKind};
use crate::time::{check_ms, ms_to_ticks};

/// The timescale a writer uses for `t`: its own when set, else the sample rate for audio, else
/// 90 kHz for video, else 1000.
pub fn track_timescale(t: &Track) -> u32 {
    if t.timescale != 0 {
        t.timescale
    } else if t.kind() == TrackKind::Audio && t.rate != 0 {
        t.rate
    } else if t.kind() == TrackKind::Video {
        90_000
    } else {
        1000
    }
}

pub(crate) fn write_ftyp(w: &mut BoxWriter, major: &[u8; 4], minor: u32, compat: &[&[u8; 4]]) {
    w.start(b"ftyp");
    w.bytes(major);
    w.u32(minor);
    for c in compat {
        w.bytes(*c);
    }
    w.end();
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

pub(crate) fn write_mvhd(w: &mut BoxWriter, duration_ms: u64, next_track_id: u32) {
    w.start_full(b"mvhd", 1, 0);
    w.u64(0);
    w.u64(0);
    w.u32(1000);
    w.u64(duration_ms);
    w.u32(0x0001_0000);
    w.u16(0x0100);
    w.zeros(10);
    for m in MATRIX {
        w.u32(m);
    }
    w.zeros(24);
    w.u32(next_track_id);
    w.end();
}

fn lang_code(l: &str) -> u16 {
    let b = l.as_bytes();
    if b.len() == 3 && b.iter().all(|c| c.is_ascii_lowercase()) {
        (((b[0] - 0x60) as u16) << 10) | (((b[1] - 0x60) as u16) << 5) | (b[2] - 0x60) as u16
    } else {
        0x55c4 // und
    }
}

/// Sample tables of one track, as the progressive writer collects them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tables {
    pub stts: Vec<(u32, u32)>,
    pub ctts: Vec<(u32, i32)>,
    pub stss: Vec<u32>,
    pub sizes: Vec<u32>,
    /// (offset within mdat payload, samples)
    pub chunks: Vec<(u64, u32)>,
}

/// What goes in one `trak`.
pub(crate) struct TrakSpec<'a> {
    pub track: &'a Track,
    pub timescale: u32,
    pub duration_ticks: u64,
    pub duration_ms: u64,
    /// (empty edit ms, media_time ticks), written as an edit list when not (0, 0).
    pub edit: (u64, i64),
    pub tables: Option<&'a Tables>,
    /// Added to chunk offsets.
    pub base: u64,
    pub co64: bool,
}

pub(crate) fn write_trak(w: &mut BoxWriter, s: &TrakSpec) -> Result<(), MediaError> {
    let t = s.track;
    let video = t.kind() == TrackKind::Video;
    w.start(b"trak");
    w.start_full(b"tkhd", 1, 3);
    w.u64(0);
    w.u64(0);
    w.u32(t.id);
    w.u32(0);
    w.u64(s.duration_ms);
    w.zeros(8);
    w.u16(0);
    w.u16(0);
    w.u16(if t.kind() == TrackKind::Audio {
        0x0100
    } else {
        0
    });
    w.u16(0);
    for m in MATRIX {
        w.u32(m);
    }
    w.u32(if video { t.width.min(0xffff) << 16 } else { 0 });
    w.u32(if video { t.height.min(0xffff) << 16 } else { 0 });
    w.end();
    if s.edit != (0, 0) {
        w.start(b"edts");
        w.start_full(b"elst", 1, 0);
        let n = if s.edit.0 > 0 { 2 } else { 1 };
        w.u32(n);
        if s.edit.0 > 0 {
            w.u64(s.edit.0);
            w.u64(u64::MAX); // media_time -1
            w.u32(0x0001_0000);
        }
        // the media from media_time to its end
        let skipped_ms = (s.edit.1.max(0) as u128 * 1000 / s.timescale.max(1) as u128) as u64;
        w.u64(s.duration_ms.saturating_sub(skipped_ms));
        w.u64(s.edit.1.max(0) as u64);
        w.u32(0x0001_0000);
        w.end();
        w.end();
    }
    w.start(b"mdia");
    w.start_full(b"mdhd", 1, 0);
    w.u64(0);
    w.u64(0);
    w.u32(s.timescale);
    w.u64(s.duration_ticks);
    w.u16(lang_code(&t.lang));
    w.u16(0);
    w.end();
    w.start_full(b"hdlr", 0, 0);
    w.u32(0);
    let (h, name): (&[u8; 4], &[u8]) = match t.kind() {
        TrackKind::Video => (b"vide", b"VideoHandler\0"),
        TrackKind::Audio => (b"soun", b"SoundHandler\0"),
        TrackKind::Meta => (b"meta", b"MetaHandler\0"),
    };
    w.bytes(h);
    w.zeros(12);
    w.bytes(name);
    w.end();
    w.start(b"minf");
    match t.kind() {
        TrackKind::Video => {
            w.start_full(b"vmhd", 0, 1);
            w.zeros(8);
            w.end();
        }
        TrackKind::Audio => {
            w.start_full(b"smhd", 0, 0);
            w.zeros(4);
            w.end();
        }
        TrackKind::Meta => {
            w.start_full(b"nmhd", 0, 0);
            w.end();
        }
    }
    w.start(b"dinf");
    w.start_full(b"dref", 0, 0);
    w.u32(1);
    w.start_full(b"url ", 0, 1);
    w.end();
    w.end();
    w.end();
    w.start(b"stbl");
    w.start_full(b"stsd", 0, 0);
    w.u32(1);
    write_entry(w, t)?;
    w.end();
    let empty = Tables::default();
    let tb = s.tables.unwrap_or(&empty);
    w.start_full(b"stts", 0, 0);
    w.u32(tb.stts.len() as u32);
    for &(c, d) in &tb.stts {
        w.u32(c);
        w.u32(d);
    }
    w.end();
    if tb.ctts.iter().any(|e| e.1 != 0) {
        let v = if tb.ctts.iter().any(|e| e.1 < 0) {
            1
        } else {
            0
        };
        w.start_full(b"ctts", v, 0);
        w.u32(tb.ctts.len() as u32);
        for &(c, o) in &tb.ctts {
            w.u32(c);
            w.i32(o);
        }
        w.end();
    }
    if !tb.sizes.is_empty() && tb.stss.len() < tb.sizes.len() {
        w.start_full(b"stss", 0, 0);
        w.u32(tb.stss.len() as u32);
        for &n in &tb.stss {
            w.u32(n);
        }
        w.end();
    }
    // stsc: runs of equal samples-per-chunk
    let mut stsc: Vec<(u32, u32)> = Vec::new();
    for (i, &(_, n)) in tb.chunks.iter().enumerate() {
        if stsc.last().map(|l| l.1 != n).unwrap_or(true) {
            stsc.push((i as u32 + 1, n));
        }
    }
    w.start_full(b"stsc", 0, 0);
    w.u32(stsc.len() as u32);
    for (f, n) in stsc {
        w.u32(f);
        w.u32(n);
        w.u32(1);
    }
    w.end();
    w.start_full(b"stsz", 0, 0);
    let same = tb
        .sizes
        .first()
        .copied()
        .filter(|&f| tb.sizes.iter().all(|&s| s == f));
    match same {
        Some(sz) if sz != 0 => {
            w.u32(sz);
            w.u32(tb.sizes.len() as u32);
        }
        _ => {
            w.u32(0);
            w.u32(tb.sizes.len() as u32);
            for &sz in &tb.sizes {
                w.u32(sz);
            }
        }
    }
    w.end();
    if s.co64 {
        w.start_full(b"co64", 0, 0);
        w.u32(tb.chunks.len() as u32);
        for &(o, _) in &tb.chunks {
            w.u64(s.base + o);
        }
    } else {
        w.start_full(b"stco", 0, 0);
        w.u32(tb.chunks.len() as u32);
        for &(o, _) in &tb.chunks {
            let off = s.base + o;
            if off > u32::MAX as u64 {
                return Err(MediaError::TooLarge {
                    what: "stco offset",
                    size: off,
                    limit: u32::MAX as u64,
                });
            }
            w.u32(off as u32);
        }
    }
    w.end();
    w.end(); // stbl
    w.end(); // minf
    w.end(); // mdia
    w.end(); // trak
    Ok(())
}

#[derive(Debug, Clone, Default)]
struct TrackState {
    ts: u32,
    first_ms: Option<i64>,
    first_ticks: i64,
    first_pts_ms: i64,
    last_ticks: i64,
    last_delta: u32,
    last_ms: i64,
    /// Latest presentation time (ticks) of any sample: with B-frames it is not the last sample's.
    max_pts_ticks: Option<i64>,
    count: u32,
    tables: Tables,
}

/// Where to write the mdat size once the file is complete (moov-at-end mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    /// Where to write, from the start of the file.
    pub offset: u64,
    /// What to write there.
    pub bytes: [u8; 8],
}

/// Progressive MP4 writer.
///
/// Feed every frame's metadata in the order its payload goes into `mdat` with [`Mp4Writer::add`];
/// the payload bytes are the caller's to write. Two layouts:
///
/// * moov at the end (recording): write [`Mp4Writer::start`] (ftyp + 16-byte mdat header), then each
///   payload as it arrives, then the moov from [`Mp4Writer::finish`], then apply its [`Patch`]
///   (the mdat's 64-bit size) at its offset.
/// * moov first ("faststart"): add all frames (a first pass over an index), then write
///   [`Mp4Writer::header_moov_first`] (ftyp + moov + mdat header) and the payloads in the same order.
///
/// Memory is a few bytes per sample (sizes, run-length time tables, chunk list).
#[derive(Debug)]
pub struct Mp4Writer {
    tracks: Vec<Track>,
    st: Vec<TrackState>,
    mdat_len: u64,
    last_track: Option<usize>,
}

const MDAT_HEADER: u64 = 16;

impl Mp4Writer {
    /// A writer of `tracks` (each needs its init data), or why one of them cannot be written.
    pub fn new(tracks: Vec<Track>) -> Result<Self, MediaError> {
        for (i, t) in tracks.iter().enumerate() {
            if tracks[..i].iter().any(|o| o.id == t.id) || t.id == 0 {
                return Err(MediaError::malformed(
                    "mp4 writer",
                    format!("track id {} zero or repeated", t.id),
                ));
            }
            // fail early on codecs we cannot describe
            write_entry(&mut BoxWriter::new(), t)?;
        }
        let st = tracks
            .iter()
            .map(|t| TrackState {
                ts: track_timescale(t),
                ..Default::default()
            })
            .collect();
        Ok(Mp4Writer {
            tracks,
            st,
            mdat_len: 0,
            last_track: None,
        })
    }

    fn ftyp(&self, w: &mut BoxWriter) {
        write_ftyp(w, b"isom", 0x200, &[b"isom", b"iso2", b"mp41"]);
    }

    /// ftyp and the mdat header for moov-at-end writing.
    pub fn start(&self) -> Vec<u8> {
        let mut w = BoxWriter::new();
        self.ftyp(&mut w);
        w.u32(1);
        w.bytes(b"mdat");
        w.u64(MDAT_HEADER);
        w.into_inner()
    }

    /// Payload bytes added so far.
    pub fn mdat_len(&self) -> u64 {
        self.mdat_len
    }

    /// Records a frame whose payload follows the previous one in mdat.
    pub fn add(&mut self, f: &Frame) -> Result<(), MediaError> {
        self.add_sample(
            f.track,
            f.dts,
            f.pts_offset,
            f.keyframe,
            f.data.len() as u32,
        )
    }

    /// [`add`](Self::add) from a frame's parts and payload size.
    pub fn add_sample(
        &mut self,
        track: u32,
        dts: i64,
        pts_offset: i32,
        keyframe: bool,
        size: u32,
    ) -> Result<(), MediaError> {
        let i = self
            .tracks
            .iter()
            .position(|t| t.id == track)
            .ok_or_else(|| MediaError::malformed("mp4 writer", format!("unknown track {track}")))?;
        check_ms(dts, "mp4 writer dts")?;
        let s = &mut self.st[i];
        let ticks = ms_to_ticks(dts, s.ts);
        let first = *s.first_ms.get_or_insert(dts);
        if s.count == 0 {
            s.first_ticks = ticks;
            s.first_pts_ms = dts + pts_offset as i64;
        } else {
            let delta = ticks - s.last_ticks;
            if delta < 0 || delta > u32::MAX as i64 {
                return Err(MediaError::malformed(
                    "mp4 writer",
                    format!("track {track}: dts {dts} after {}", s.last_ms),
                ));
            }
            push_run(&mut s.tables.stts, delta as u32);
            s.last_delta = delta as u32;
        }
        let _ = first;
        let cts = ms_to_ticks(dts + pts_offset as i64, s.ts) - ticks;
        let cts = cts.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        let pts_ticks = ticks + cts as i64;
        s.max_pts_ticks = Some(s.max_pts_ticks.map_or(pts_ticks, |m| m.max(pts_ticks)));
        match s.tables.ctts.last_mut() {
            Some(l) if l.1 == cts => l.0 += 1,
            _ => s.tables.ctts.push((1, cts)),
        }
        s.count += 1;
        if keyframe {
            s.tables.stss.push(s.count);
        }
        s.tables.sizes.push(size);
        if self.last_track == Some(i) {
            s.tables.chunks.last_mut().unwrap().1 += 1;
        } else {
            s.tables.chunks.push((self.mdat_len, 1));
        }
        s.last_ticks = ticks;
        s.last_ms = dts;
        self.last_track = Some(i);
        self.mdat_len += size as u64;
        Ok(())
    }

    fn moov(&self, base: u64, co64: bool) -> Result<Vec<u8>, MediaError> {
        let mut finals: Vec<Tables> = Vec::with_capacity(self.st.len());
        let mut durs = Vec::new();
        let mut movie_ms = 0u64;
        for (t, s) in self.tracks.iter().zip(&self.st) {
            let mut tb = s.tables.clone();
            if s.count > 0 {
                let last = if s.last_delta > 0 {
                    s.last_delta
                } else if t.kind() == TrackKind::Audio {
                    (s.ts / 50).max(1)
                } else {
                    (s.ts / 25).max(1)
                };
                push_run(&mut tb.stts, last);
                let dur_ticks = (s.last_ticks - s.first_ticks) as u64 + last as u64;
                let first = s.first_ms.unwrap_or(0);
                // tkhd and the edit list cover the presentation, which with B-frames ends after
                // the last decoded sample's time: up to the latest pts plus a sample duration.
                let pres_end = s.max_pts_ticks.unwrap_or(s.last_ticks).max(s.last_ticks)
                    - s.first_ticks
                    + last as i64;
                let dur_ms = ((pres_end.max(0) as u128 * 1000) / s.ts as u128) as u64;
                let end = first + dur_ms as i64;
                movie_ms = movie_ms.max(end.max(0) as u64);
                durs.push((dur_ticks, dur_ms));
            } else {
                durs.push((0, 0));
            }
            finals.push(tb);
        }
        let mut w = BoxWriter::new();
        w.start(b"moov");
        let next_id = self
            .tracks
            .iter()
            .map(|t| t.id)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        write_mvhd(&mut w, movie_ms, next_id);
        for ((t, s), (tb, &(dur_ticks, dur_ms))) in self
            .tracks
            .iter()
            .zip(&self.st)
            .zip(finals.iter().zip(&durs))
        {
            // Map the first sample's presentation time to its pts in ms: an empty edit of that
            // long (when positive) and a media_time at its composition time, as ffmpeg writes it
            // and as both the spec and ffmpeg's reader agree on.
            let first_pts = s.first_pts_ms;
            let edit = if first_pts >= 0 {
                let m = ms_to_ticks(first_pts, s.ts) - s.first_ticks;
                (first_pts as u64, m.max(0))
            } else {
                (0, -s.first_ticks)
            };
            let spec = TrakSpec {
                track: t,
                timescale: s.ts,
                duration_ticks: dur_ticks,
                duration_ms: dur_ms,
                edit,
                tables: Some(tb),
                base,
                co64,
            };
            write_trak(&mut w, &spec)?;
        }
        w.end();
        Ok(w.into_inner())
    }

    /// The moov for moov-at-end writing, and the mdat size to patch in.
    pub fn finish(&self) -> Result<(Vec<u8>, Patch), MediaError> {
        let ftyp_len = self.start().len() as u64 - MDAT_HEADER;
        let base = ftyp_len + MDAT_HEADER;
        let co64 = base + self.mdat_len > u32::MAX as u64;
        let moov = self.moov(base, co64)?;
        Ok((
            moov,
            Patch {
                offset: ftyp_len + 8,
                bytes: (MDAT_HEADER + self.mdat_len).to_be_bytes(),
            },
        ))
    }

    /// ftyp + moov + mdat header for moov-first writing; payloads follow in `add` order.
    pub fn header_moov_first(&self) -> Result<Vec<u8>, MediaError> {
        let mut w = BoxWriter::new();
        self.ftyp(&mut w);
        let ftyp_len = w.len() as u64;
        let mut co64 = false;
        let probe = self.moov(0, false).or_else(|_| self.moov(0, true))?;
        let mut base = ftyp_len + probe.len() as u64 + MDAT_HEADER;
        if base + self.mdat_len > u32::MAX as u64 {
            co64 = true;
            base = ftyp_len + self.moov(0, true)?.len() as u64 + MDAT_HEADER;
        }
        let moov = self.moov(base, co64)?;
        w.bytes(&moov);
        w.u32(1);
        w.bytes(b"mdat");
        w.u64(MDAT_HEADER + self.mdat_len);
        Ok(w.into_inner())
    }
}

fn push_run(v: &mut Vec<(u32, u32)>, d: u32) {
    match v.last_mut() {
        Some(l) if l.1 == d && l.0 < u32::MAX => l.0 += 1,
        _ => v.push((1, d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Codec;
    use bytes::Bytes;

    /// With B-frames the last sample in decode order is not the last shown: the edit list must
    /// still reach the end of the latest presentation time, or players drop the last frames.
    #[test]
    fn edit_list_covers_reordered_tail() {
        let mut t = Track::new(1, Codec::H264);
        t.init = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]);
        t.width = 16;
        t.height = 16;
        let mut w = Mp4Writer::new(vec![t]).unwrap();
        // I P B B at 40 ms, decode order, B-pyramid offsets as x264 writes them (pts 80 120 40 80 … shifted)
        let offs = [80, 120, 40, 40];
        for (i, &o) in offs.iter().enumerate() {
            w.add(&Frame {
                track: 1,
                dts: -80 + 40 * i as i64,
                pts_offset: o,
                keyframe: i == 0,
                data: Bytes::from_static(&[0; 8]),
            })
            .unwrap();
        }
        let head = w.header_moov_first().unwrap();
        let at = head.windows(4).position(|b| b == b"elst").unwrap();
        // version 1: flags(4) count(4) then segment_duration(8) media_time(8)
        let seg = u64::from_be_bytes(head[at + 12..at + 20].try_into().unwrap());
        let media_time = i64::from_be_bytes(head[at + 20..at + 28].try_into().unwrap());
        // pts run from 0 to 80 (the P frame at dts -40 + 120), so 120 ms are shown
        assert_eq!(seg, 120, "segment duration");
        assert_eq!(media_time, 80 * 90);
    }
}
