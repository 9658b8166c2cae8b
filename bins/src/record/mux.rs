//! Muxers for recordings: each hands out bytes that are appended to the file as one unit, learns
//! which units reached the disk ([`FileMux::committed`]), and at the end gives a tail to append
//! and patches to apply in place (Matroska Duration/Cues/SeekHead, MP4 moov and mdat size, FLV
//! duration and filesize).
//!
//! Crash safety: Matroska Clusters are handed out whole with their size (a file cut anywhere
//! plays up to its last whole Cluster; the Segment stays of unknown size until the close), TS is
//! whole packets, FLV whole tags. Progressive MP4 needs its moov: it is only playable once closed
//! (`.fmp4` writes self-contained fragments instead).

use crate::http_out::mux::{Format, Mux, MuxError};
use mist_media::{Frame, Track};

/// One in-place rewrite at an absolute file offset.
pub type Patch = (u64, Vec<u8>);

/// How a recording ends.
#[derive(Debug, Default)]
pub struct Finish {
    /// Appended after the last unit.
    pub tail: Vec<u8>,
    /// Applied after the tail is written.
    pub patches: Vec<Patch>,
    /// Applied when the tail could not be written (the disk is full): patches that are valid
    /// without the tail.
    pub patches_without_tail: Vec<Patch>,
}

/// A container written to a file: units appended in order, then a tail and patches (MP4's moov, Matroska's sizes and cues) that make it complete.
pub trait FileMux {
    /// The file's first unit.
    fn header(&mut self) -> Vec<u8>;
    /// The unit for one frame (maybe empty: buffered).
    fn frame(&mut self, f: &Frame, main_key: bool) -> Vec<u8>;
    /// The last unit handed out is on disk.
    fn committed(&mut self);
    /// The end of the file. `lost`: the last unit handed out did not reach the disk (it was cut
    /// off again).
    fn finish(&mut self, lost: bool) -> Finish;
    /// When the last units are lost: how much media (ms from the file's first frame) the units
    /// on disk hold, for a muxer that buffers frames (Matroska Clusters). None: every frame whose
    /// unit was committed is in the file.
    fn kept_ms(&self) -> Option<i64> {
        None
    }
}

/// What a recording file is written as, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Matroska (`.mkv`).
    Mkv,
    /// WebM (`.webm`).
    Webm,
    /// Progressive MP4, moov at the end.
    Mp4,
    /// Fragmented MP4 (`.fmp4`).
    Fmp4,
    /// MPEG-TS (`.ts`).
    Ts,
    /// FLV (`.flv`).
    Flv,
    /// ADTS AAC, audio only (`.aac`).
    Aac,
    /// MP3 frames, audio only (`.mp3`).
    Mp3,
}

impl Kind {
    /// The container a target's extension asks for; `None` for one no recorder writes.
    pub fn from_path(path: &str) -> Option<Kind> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "mkv" => Kind::Mkv,
            "webm" => Kind::Webm,
            "mp4" | "m4v" | "mov" => Kind::Mp4,
            "fmp4" => Kind::Fmp4,
            "ts" => Kind::Ts,
            "flv" => Kind::Flv,
            "aac" => Kind::Aac,
            "mp3" => Kind::Mp3,
            _ => return None,
        })
    }

    /// The live format with the same codecs (track selection).
    pub fn format(self) -> Format {
        match self {
            Kind::Mkv => Format::Mkv,
            Kind::Webm => Format::Webm,
            Kind::Mp4 | Kind::Fmp4 => Format::Fmp4,
            Kind::Ts => Format::Ts,
            Kind::Flv => Format::Flv,
            Kind::Aac => Format::Aac,
            Kind::Mp3 => Format::Mp3,
        }
    }

    /// Whether appending to an existing file makes a valid file (concatenated streams).
    pub fn appendable(self) -> bool {
        matches!(self, Kind::Ts | Kind::Aac | Kind::Mp3)
    }
}

/// The recording muxer for a kind of file.
pub fn for_kind(kind: Kind, tracks: &[Track]) -> Result<Box<dyn FileMux>, MuxError> {
    Ok(match kind {
        Kind::Mkv | Kind::Webm => Box::new(MkvRec::new(tracks, kind == Kind::Webm)?),
        Kind::Flv => Box::new(FlvRec::new(tracks)),
        Kind::Mp4 => Box::new(Mp4Rec::new(tracks)?),
        Kind::Fmp4 => Box::new(Fmp4Rec {
            s: Stream(Kind::Fmp4.format().muxer(tracks)?, true, None),
            offset: 0,
            pending: 0,
            frags: Vec::new(),
            pending_frags: Vec::new(),
            end_committed: 0,
            end_pending: 0,
        }),
        other => Box::new(Stream(other.format().muxer(tracks)?, false, None)),
    })
}

// ---- formats without an index: TS, fragmented MP4, ADTS, MP3 ----

/// A live muxer written as is: every unit stands alone. `zero`: the file starts at time 0
/// (fragmented MP4; TS keeps the stream's times, so split files follow on).
struct Stream(Box<dyn Mux>, bool, Option<i64>);

impl FileMux for Stream {
    fn header(&mut self) -> Vec<u8> {
        self.0.header().concat()
    }
    fn frame(&mut self, f: &Frame, main_key: bool) -> Vec<u8> {
        if self.1 {
            let first = *self.2.get_or_insert(f.dts);
            let mut g = f.clone();
            g.dts -= first;
            return self.0.frame(&g, main_key).chunks.concat();
        }
        self.0.frame(f, main_key).chunks.concat()
    }
    fn committed(&mut self) {}
    fn finish(&mut self, lost: bool) -> Finish {
        Finish {
            tail: if lost {
                Vec::new()
            } else {
                self.0.flush().chunks.concat()
            },
            ..Finish::default()
        }
    }
}

// ---- fragmented MP4 with an `mfra` index ----

/// Fragmented MP4: every fragment stands alone (a file cut off plays up to its last whole
/// fragment); the close appends `mfra` (a `tfra` per track: time and offset of each fragment).
struct Fmp4Rec {
    s: Stream,
    /// File offset of the next unit; of the unit handed out last.
    offset: u64,
    pending: u64,
    /// (track id, decode time in track ticks, moof offset) of the fragments on disk.
    frags: Vec<(u32, u64, u64)>,
    pending_frags: Vec<(u32, u64, u64)>,
    /// End (ms from the file's first frame) of the fragments on disk, and of those in the unit
    /// handed out last: a fragment is handed out with the frame that closes it, and ends there.
    end_committed: i64,
    end_pending: i64,
}

/// (track id, tfdt time) of every `traf` of the `moof`s in `unit`.
fn frag_times(unit: &[u8]) -> Vec<(u32, u64, u64)> {
    use mist_media::mp4::Boxes;
    let mut out = Vec::new();
    let mut at = 0u64;
    for b in Boxes::new(unit) {
        let Ok((t, body)) = b else { break };
        let start = at;
        at += (body.as_ptr() as usize - unit[at as usize..].as_ptr() as usize + body.len()) as u64;
        if &t != b"moof" {
            continue;
        }
        for tb in Boxes::new(body) {
            let Ok((tt, traf)) = tb else { break };
            if &tt != b"traf" {
                continue;
            }
            let (mut id, mut time) = (None, None);
            for x in Boxes::new(traf) {
                let Ok((xt, xb)) = x else { break };
                match &xt {
                    b"tfhd" if xb.len() >= 8 => {
                        id = Some(u32::from_be_bytes([xb[4], xb[5], xb[6], xb[7]]))
                    }
                    b"tfdt" if xb.len() >= 12 && xb[0] == 1 => {
                        time = xb[4..12].try_into().ok().map(u64::from_be_bytes)
                    }
                    b"tfdt" if xb.len() >= 8 => {
                        time = Some(u32::from_be_bytes([xb[4], xb[5], xb[6], xb[7]]) as u64)
                    }
                    _ => {}
                }
            }
            if let (Some(i), Some(t)) = (id, time) {
                out.push((i, t, start));
            }
        }
    }
    out
}

fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

impl FileMux for Fmp4Rec {
    fn header(&mut self) -> Vec<u8> {
        let h = self.s.header();
        self.pending = h.len() as u64;
        h
    }
    fn frame(&mut self, f: &Frame, main_key: bool) -> Vec<u8> {
        let u = self.s.frame(f, main_key);
        if !u.is_empty() {
            // The frames buffered before `f` went out as a fragment that ends at `f`.
            self.end_pending = f.dts - self.s.2.unwrap_or(f.dts);
        }
        self.pending_frags = frag_times(&u)
            .into_iter()
            .map(|(i, t, at)| (i, t, self.offset + at))
            .collect();
        self.pending = self.offset + u.len() as u64;
        u
    }
    fn committed(&mut self) {
        self.offset = self.pending;
        self.frags.append(&mut self.pending_frags);
        self.end_committed = self.end_committed.max(self.end_pending);
    }

    fn kept_ms(&self) -> Option<i64> {
        // The frames buffered for the next fragment are lost with a failed write too.
        Some(self.end_committed)
    }
    fn finish(&mut self, lost: bool) -> Finish {
        let mut tail = Vec::new();
        if !lost {
            tail = self.s.finish(false).tail;
            for (i, t, at) in frag_times(&tail) {
                self.frags.push((i, t, self.offset + at));
            }
        }
        let mut ids: Vec<u32> = self.frags.iter().map(|f| f.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut body = Vec::new();
        for id in ids {
            let entries: Vec<_> = self.frags.iter().filter(|f| f.0 == id).collect();
            let mut t = vec![1, 0, 0, 0]; // version 1, flags 0
            t.extend_from_slice(&id.to_be_bytes());
            t.extend_from_slice(&0u32.to_be_bytes()); // 1-byte traf/trun/sample numbers
            t.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (_, time, at) in entries {
                t.extend_from_slice(&time.to_be_bytes());
                t.extend_from_slice(&at.to_be_bytes());
                t.extend_from_slice(&[1, 1, 1]);
            }
            body.extend_from_slice(&mp4_box(b"tfra", &t));
        }
        // mfro: the size of the whole mfra, so a reader finds it from the end.
        let mfra_len = (8 + body.len() + 16) as u32;
        let mut mfro = vec![0, 0, 0, 0];
        mfro.extend_from_slice(&mfra_len.to_be_bytes());
        body.extend_from_slice(&mp4_box(b"mfro", &mfro));
        let mfra = mp4_box(b"mfra", &body);
        if lost {
            // The fragments on disk still play; the index goes where the lost one was.
            return Finish {
                tail: mfra,
                patches: Vec::new(),
                patches_without_tail: Vec::new(),
            };
        }
        tail.extend_from_slice(&mfra);
        Finish {
            tail,
            patches: Vec::new(),
            patches_without_tail: Vec::new(),
        }
    }
}

// ---- Matroska / WebM ----

struct MkvRec {
    w: Option<mist_media::ebml::Writer>,
    duration_at: u64,
    /// End time of the Clusters on disk, and of the one handed out last.
    end_committed: i64,
    end_pending: i64,
    first: Option<i64>,
}

impl MkvRec {
    fn new(tracks: &[Track], webm: bool) -> Result<MkvRec, MuxError> {
        use mist_media::ebml::{DocType, WriteMode, Writer, WriterOptions};
        let opts = WriterOptions {
            doc_type: if webm {
                DocType::Webm
            } else {
                DocType::Matroska
            },
            mode: WriteMode::Finalised,
            ..WriterOptions::default()
        };
        let w = Writer::new(tracks, opts)?;
        Ok(MkvRec {
            w: Some(w),
            duration_at: 0,
            end_committed: 0,
            end_pending: 0,
            first: None,
        })
    }
}

/// The offset of Info's Duration float in a finalised Matroska header (found by its element
/// head: ID 0x4489, size 8).
fn find_duration(head: &[u8]) -> Option<u64> {
    head.windows(3)
        .position(|w| w == [0x44, 0x89, 0x88])
        .map(|i| i as u64 + 3)
}

impl FileMux for MkvRec {
    fn header(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(w) = self.w.as_mut() {
            w.write_header(&mut out);
        }
        self.duration_at = find_duration(&out).unwrap_or(0);
        out
    }

    fn frame(&mut self, f: &Frame, _main_key: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(w) = self.w.as_mut() else {
            return out;
        };
        // The file starts at time 0 (Duration is the last end time).
        let first = *self.first.get_or_insert(f.dts);
        let mut g = f.clone();
        g.dts -= first;
        if w.write_frame(&g, &mut out).is_ok() && !out.is_empty() {
            // A Cluster closed: everything before this frame.
            self.end_pending = g.pts();
        }
        out
    }

    fn committed(&mut self) {
        self.end_committed = self.end_committed.max(self.end_pending);
    }

    fn kept_ms(&self) -> Option<i64> {
        Some(self.end_committed)
    }

    fn finish(&mut self, lost: bool) -> Finish {
        let Some(w) = self.w.take() else {
            return Finish::default();
        };
        let end = if lost {
            self.end_committed
        } else {
            self.end_pending.max(self.end_committed)
        };
        let without = vec![(self.duration_at, (end.max(0) as f64).to_be_bytes().to_vec())];
        if lost || self.duration_at == 0 {
            let p = if self.duration_at == 0 {
                Vec::new()
            } else {
                without
            };
            return Finish {
                tail: Vec::new(),
                patches: p.clone(),
                patches_without_tail: p,
            };
        }
        let fin = w.finish();
        Finish {
            tail: fin.tail,
            patches: fin
                .patches
                .into_iter()
                .map(|p| (p.offset, p.bytes))
                .collect(),
            patches_without_tail: without,
        }
    }
}

// ---- FLV ----

struct FlvRec {
    tracks: Vec<Track>,
    duration_at: u64,
    filesize_at: u64,
    size: u64,
    size_pending: u64,
    first: Option<i64>,
    last_committed: i64,
    last_pending: i64,
    step: i64,
}

impl FlvRec {
    fn new(tracks: &[Track]) -> FlvRec {
        FlvRec {
            tracks: tracks.to_vec(),
            duration_at: 0,
            filesize_at: 0,
            size: 0,
            size_pending: 0,
            first: None,
            last_committed: 0,
            last_pending: 0,
            step: 0,
        }
    }
}

/// The offset just after an AMF0 property name followed by a Number marker.
fn find_number(b: &[u8], key: &str) -> Option<u64> {
    let mut pat = (key.len() as u16).to_be_bytes().to_vec();
    pat.extend_from_slice(key.as_bytes());
    pat.push(0x00);
    b.windows(pat.len())
        .position(|w| w == pat)
        .map(|i| (i + pat.len()) as u64)
}

impl FileMux for FlvRec {
    fn header(&mut self) -> Vec<u8> {
        use mist_media::amf0::Amf0;
        use mist_media::{flv, TrackKind};
        let has_a = self.tracks.iter().any(|t| t.kind() == TrackKind::Audio);
        let has_v = self.tracks.iter().any(|t| t.kind() == TrackKind::Video);
        let mut v = flv::file_header(has_a, has_v).to_vec();
        // onMetaData with duration and filesize first, patched at the close.
        let mut body = flv::metadata_body(&self.tracks);
        if let Ok((name, n)) = Amf0::decode(&body) {
            if let Ok((Amf0::EcmaArray(mut props), _)) = Amf0::decode(&body[n..]) {
                props.insert(0, ("filesize".into(), Amf0::Number(0.0)));
                props.insert(0, ("duration".into(), Amf0::Number(0.0)));
                body = mist_media::amf0::encode_all(&[name, Amf0::EcmaArray(props)]);
            }
        }
        if let Ok(t) = flv::tag_bytes(18, 0, &body) {
            let at = v.len() as u64 + 11;
            self.duration_at = find_number(&body, "duration").map_or(0, |o| at + o);
            self.filesize_at = find_number(&body, "filesize").map_or(0, |o| at + o);
            v.extend_from_slice(&t);
        }
        for t in &self.tracks {
            if let (Ok(Some(body)), Ok(tt)) = (flv::sequence_header_body(t), flv::tag_type(t)) {
                if let Ok(tag) = flv::tag_bytes(tt, 0, &body) {
                    v.extend_from_slice(&tag);
                }
            }
        }
        self.size_pending = v.len() as u64;
        v
    }

    fn frame(&mut self, f: &Frame, _main_key: bool) -> Vec<u8> {
        use mist_media::flv;
        let Some(t) = self.tracks.iter().find(|t| t.id == f.track) else {
            return Vec::new();
        };
        let Ok((head, body_len)) = flv::frame_tag_head(t, f) else {
            return Vec::new();
        };
        let first = *self.first.get_or_insert(f.dts);
        let rel = f.dts - first;
        if rel > self.last_pending && (self.step == 0 || rel - self.last_pending < self.step) {
            self.step = rel - self.last_pending;
        }
        self.last_pending = self.last_pending.max(rel);
        let mut out = Vec::with_capacity(head.len() + f.data.len() + 4);
        out.extend_from_slice(&head);
        out.extend_from_slice(&f.data);
        out.extend_from_slice(&flv::prev_tag_size(body_len));
        self.size_pending = self.size + out.len() as u64;
        out
    }

    fn committed(&mut self) {
        self.size = self.size_pending;
        self.last_committed = self.last_pending;
    }

    fn finish(&mut self, _lost: bool) -> Finish {
        let mut patches = Vec::new();
        if self.duration_at > 0 {
            let secs = (self.last_committed + self.step).max(0) as f64 / 1000.0;
            patches.push((self.duration_at, secs.to_be_bytes().to_vec()));
        }
        if self.filesize_at > 0 {
            patches.push((self.filesize_at, (self.size as f64).to_be_bytes().to_vec()));
        }
        Finish {
            tail: Vec::new(),
            patches: patches.clone(),
            patches_without_tail: patches,
        }
    }
}

// ---- progressive MP4 (moov at the end) ----

struct Mp4Rec {
    w: mist_media::mp4::Mp4Writer,
    pending: Option<Frame>,
    shift: Option<i64>,
}

impl Mp4Rec {
    fn new(tracks: &[Track]) -> Result<Mp4Rec, MuxError> {
        Ok(Mp4Rec {
            w: mist_media::mp4::Mp4Writer::new(tracks.to_vec())?,
            pending: None,
            shift: None,
        })
    }
}

impl FileMux for Mp4Rec {
    fn header(&mut self) -> Vec<u8> {
        self.w.start()
    }

    fn frame(&mut self, f: &Frame, _main_key: bool) -> Vec<u8> {
        // The file starts at time 0.
        let shift = *self.shift.get_or_insert(f.dts);
        let mut g = f.clone();
        g.dts -= shift;
        let data = f.data.to_vec();
        self.pending = Some(g);
        data
    }

    fn committed(&mut self) {
        if let Some(f) = self.pending.take() {
            if let Err(e) = self.w.add(&f) {
                mist_core::warn!("mp4 recording: frame dropped from the index: {e}");
            }
        }
    }

    fn finish(&mut self, _lost: bool) -> Finish {
        self.pending = None;
        match self.w.finish() {
            Ok((moov, p)) => Finish {
                tail: moov,
                patches: vec![(p.offset, p.bytes.to_vec())],
                patches_without_tail: Vec::new(),
            },
            Err(e) => {
                mist_core::error!("mp4 recording: cannot write the moov: {e}");
                Finish::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mist_media::Codec;

    fn tracks() -> Vec<Track> {
        let mut a = Track::new(2, Codec::Aac);
        a.init = Bytes::from_static(&[0x12, 0x10]);
        a.rate = 44100;
        a.channels = 2;
        vec![a]
    }

    fn frames() -> Vec<Frame> {
        (0..50)
            .map(|i| Frame {
                track: 2,
                dts: 1000 + i * 23,
                pts_offset: 0,
                keyframe: true,
                data: Bytes::from_static(&[0x21, 0x10, 0x05]),
            })
            .collect()
    }

    /// Writes a file as the recorder does; `lose_last`: the last unit does not reach the disk.
    fn record(kind: Kind, lose_last: bool) -> Vec<u8> {
        let mut m = for_kind(kind, &tracks()).unwrap();
        let mut file = m.header();
        m.committed();
        let fs = frames();
        for (i, f) in fs.iter().enumerate() {
            let u = m.frame(f, i == 0);
            if lose_last && i == fs.len() - 1 {
                break;
            }
            file.extend_from_slice(&u);
            m.committed();
        }
        let fin = m.finish(lose_last);
        file.extend_from_slice(&fin.tail);
        for (at, b) in fin.patches {
            file[at as usize..at as usize + b.len()].copy_from_slice(&b);
        }
        file
    }

    #[test]
    fn flv_metadata_gets_duration_and_filesize() {
        use mist_media::amf0::Amf0;
        for lose in [false, true] {
            let file = record(Kind::Flv, lose);
            // The onMetaData tag follows the 13-byte file header and its 11-byte tag header.
            let body = &file[13 + 11..];
            let (_, n) = Amf0::decode(body).unwrap();
            let (meta, _) = Amf0::decode(&body[n..]).unwrap();
            let dur = meta.get("duration").and_then(Amf0::as_f64).unwrap();
            let size = meta.get("filesize").and_then(Amf0::as_f64).unwrap();
            assert_eq!(size as usize, file.len(), "lose {lose}");
            let want = if lose {
                48.0 * 23.0 + 23.0
            } else {
                49.0 * 23.0 + 23.0
            };
            assert!((dur - want / 1000.0).abs() < 1e-9, "lose {lose}: {dur}");
        }
    }

    #[test]
    fn mkv_duration_and_index() {
        let file = record(Kind::Mkv, false);
        let mut d = mist_media::ebml::reader::Demuxer::new();
        d.push(&file);
        d.finish();
        let mut n = 0;
        while let Some(e) = d.poll().unwrap() {
            n += matches!(e, mist_media::ebml::reader::MkvEvent::Frame(_)) as usize;
        }
        assert_eq!(n, 50);
        // Times start at 0: 50 frames 23 ms apart.
        assert_eq!(d.duration_ms(), Some(50.0 * 23.0));
        assert!(!d.cue_points().is_empty());
        // Lost tail: the Duration covers the Clusters on disk only.
        let file = record(Kind::Mkv, true);
        let at = find_duration(&file).unwrap() as usize;
        let dur = f64::from_be_bytes(file[at..at + 8].try_into().unwrap());
        assert!(dur < 50.0 * 23.0, "{dur}");
    }

    #[test]
    fn fmp4_gets_mfra() {
        let file = record(Kind::Fmp4, false);
        let moofs: Vec<usize> = file
            .windows(4)
            .enumerate()
            .filter(|(_, w)| w == b"moof")
            .map(|(i, _)| i - 4)
            .collect();
        assert!(!moofs.is_empty());
        let n = file.len();
        assert_eq!(&file[n - 12..n - 8], b"mfro");
        let mfra_len = u32::from_be_bytes(file[n - 4..].try_into().unwrap()) as usize;
        let mfra = &file[n - mfra_len..];
        assert_eq!(&mfra[4..8], b"mfra");
        assert_eq!(&mfra[12..16], b"tfra");
        let count = u32::from_be_bytes(mfra[16 + 12..16 + 16].try_into().unwrap()) as usize;
        assert_eq!(count, moofs.len());
        // Each entry: time (8), moof offset (8), three 1-byte numbers.
        for (k, m) in moofs.iter().enumerate() {
            let e = 16 + 16 + k * 19;
            let at = u64::from_be_bytes(mfra[e + 8..e + 16].try_into().unwrap());
            assert_eq!(at as usize, *m);
        }
        // The lost case still ends with an index of the fragments on disk.
        let file = record(Kind::Fmp4, true);
        assert_eq!(&file[file.len() - 12..file.len() - 8], b"mfro");
    }

    #[test]
    fn fmp4_kept_ms_is_the_end_of_the_fragments_on_disk() {
        let mut m = for_kind(Kind::Fmp4, &tracks()).unwrap();
        m.header();
        m.committed();
        // Frames 23 ms apart from 1000: a fragment is cut at the first frame 1 s into it
        // (frame 44, at 1012 ms from the first), and handed out with that frame.
        let mut cut = None;
        for (i, f) in frames().iter().enumerate() {
            if !m.frame(f, i == 0).is_empty() {
                cut.get_or_insert(i);
            }
            m.committed();
        }
        assert_eq!(cut, Some(44));
        // Frames 44..49 are still buffered: a failed write now loses them.
        assert_eq!(m.kept_ms(), Some(44 * 23));
        // A unit that does not reach the disk does not count.
        let mut m = for_kind(Kind::Fmp4, &tracks()).unwrap();
        m.header();
        m.committed();
        for (i, f) in frames().iter().take(45).enumerate() {
            let u = m.frame(f, i == 0);
            if u.is_empty() {
                m.committed();
            }
        }
        assert_eq!(m.kept_ms(), Some(0));
    }

    #[test]
    fn extensions() {
        assert_eq!(Kind::from_path("/a/b.MKV"), Some(Kind::Mkv));
        assert_eq!(Kind::from_path("/a/b.fmp4"), Some(Kind::Fmp4));
        assert_eq!(Kind::from_path("/a/b"), None);
        assert!(Kind::Ts.appendable() && !Kind::Mp4.appendable());
    }
}
