//! Progressive formats as one interface, shared by MistOutHTTP (one muxer per stream, format and
//! track selection, its output shared by every viewer) and the standalone binaries (MistOutTS,
//! MistOutFLV, … writing one muxer's output to stdout or a file).

use bytes::Bytes;
use mist_media::{Codec, Frame, MediaError, Track, TrackKind};

/// Why a muxer cannot be made for a set of tracks.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// The container writer refused the tracks (a codec it cannot carry, bad init data).
    #[error(transparent)]
    Media(#[from] MediaError),
    /// An audio-only format with no or several audio tracks selected.
    #[error("{format} carries exactly one audio track ({selected} selected)")]
    AudioTracks {
        /// The format's name, for the error.
        format: &'static str,
        /// How many audio tracks the selection has.
        selected: usize,
    },
    /// An AAC track whose AudioSpecificConfig does not parse (no ADTS header can be made).
    #[error("AAC track {track}: {source}")]
    AacConfig {
        /// The track's id.
        track: u32,
        /// Why the config does not parse.
        source: MediaError,
    },
}

/// A progressive container format served over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// MPEG-TS (`.ts`).
    Ts,
    /// FLV (`.flv`).
    Flv,
    /// Fragmented MP4 (`.mp4` and `.fmp4` of a live stream).
    Fmp4,
    /// Matroska (`.mkv`).
    Mkv,
    /// WebM (`.webm`): Matroska with the WebM DocType and only its codecs.
    Webm,
    /// MPEG audio layer III frames as they are (`.mp3`).
    Mp3,
    /// AAC in ADTS frames (`.aac`).
    Aac,
}

impl Format {
    /// The format for a URL extension.
    pub fn from_ext(ext: &str) -> Option<Format> {
        Some(match ext {
            "ts" => Format::Ts,
            "flv" => Format::Flv,
            "mp4" | "fmp4" | "3gp" => Format::Fmp4,
            "mkv" => Format::Mkv,
            "webm" => Format::Webm,
            "mp3" => Format::Mp3,
            "aac" => Format::Aac,
            _ => return None,
        })
    }

    /// Human-readable name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Ts => "MPEG-TS",
            Format::Flv => "FLV",
            Format::Fmp4 => "MP4",
            Format::Mkv => "Matroska",
            Format::Webm => "WebM",
            Format::Mp3 => "MP3",
            Format::Aac => "AAC (ADTS)",
        }
    }

    /// The Content-Type of an answer in this format.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Ts => "video/mp2t",
            Format::Flv => "video/x-flv",
            Format::Fmp4 => "video/mp4",
            Format::Mkv => "video/x-matroska",
            Format::Webm => "video/webm",
            Format::Mp3 => "audio/mpeg",
            Format::Aac => "audio/aac",
        }
    }

    /// The config protocol (connector) that enables this format in MistOutHTTP.
    pub fn connector(self) -> &'static str {
        match self {
            Format::Ts => "HTTPTS",
            Format::Flv => "FLV",
            Format::Fmp4 => "MP4",
            Format::Mkv | Format::Webm => "EBML",
            Format::Mp3 => "MP3",
            Format::Aac => "AAC",
        }
    }

    /// Codecs the format carries.
    pub fn codecs(self) -> &'static [Codec] {
        match self {
            Format::Ts => &[
                Codec::H264,
                Codec::Hevc,
                Codec::Aac,
                Codec::Mp3,
                Codec::Ac3,
                Codec::Opus,
            ],
            Format::Flv => &[
                Codec::H264,
                Codec::Hevc,
                Codec::Av1,
                Codec::Vp9,
                Codec::Aac,
                Codec::Mp3,
            ],
            Format::Fmp4 => &[
                Codec::H264,
                Codec::Hevc,
                Codec::Av1,
                Codec::Vp9,
                Codec::Aac,
                Codec::Mp3,
                Codec::Opus,
                Codec::Ac3,
            ],
            Format::Mkv => &[
                Codec::H264,
                Codec::Hevc,
                Codec::Av1,
                Codec::Vp8,
                Codec::Vp9,
                Codec::Aac,
                Codec::Mp3,
                Codec::Opus,
                Codec::Ac3,
            ],
            Format::Webm => &[Codec::Vp8, Codec::Vp9, Codec::Av1, Codec::Opus],
            Format::Mp3 => &[Codec::Mp3],
            Format::Aac => &[Codec::Aac],
        }
    }

    /// A muxer for these tracks (already selected and supported).
    pub fn muxer(self, tracks: &[Track]) -> Result<Box<dyn Mux>, MuxError> {
        match self {
            Format::Flv => Ok(Box::new(FlvMux::new(tracks))),
            Format::Fmp4 => Ok(Box::new(Fmp4Mux::new(tracks)?)),
            Format::Ts => ts_muxer(tracks),
            Format::Mkv | Format::Webm => ebml_muxer(tracks, self == Format::Webm),
            Format::Mp3 | Format::Aac => audio_muxer(self, tracks),
        }
    }
}

/// Output of one muxer step.
#[derive(Debug, Default)]
pub struct Out {
    /// Bytes to send, in order (shared: every viewer of a feed gets the same chunks).
    pub chunks: Vec<Bytes>,
    /// The chunks start a point where a new viewer can join (a keyframe of the main track with
    /// whatever the format needs before it).
    pub join: bool,
}

/// One muxer instance; its output is shared by everyone watching the same selection.
pub trait Mux: Send {
    /// What every viewer gets first (file header, init segment, tables).
    fn header(&self) -> Vec<Bytes>;
    /// Muxes one frame of a selected track. `main_key`: a keyframe of the main track.
    fn frame(&mut self, f: &Frame, main_key: bool) -> Out;
    /// Emits buffered frames (end of stream).
    fn flush(&mut self) -> Out {
        Out::default()
    }
    /// Whether the track set may change mid-stream by sending [`Mux::header`] again.
    fn can_reheader(&self) -> bool {
        false
    }
}

// ---- FLV ----

/// FLV tags of a stream's frames (one muxer per feed, shared by its viewers).
pub struct FlvMux {
    tracks: Vec<Track>,
}

impl FlvMux {
    /// A muxer for `tracks` (its header comes first, from [`Mux::header`]).
    pub fn new(tracks: &[Track]) -> FlvMux {
        FlvMux {
            tracks: tracks.to_vec(),
        }
    }
}

impl Mux for FlvMux {
    fn header(&self) -> Vec<Bytes> {
        use mist_media::flv;
        let has_a = self.tracks.iter().any(|t| t.kind() == TrackKind::Audio);
        let has_v = self.tracks.iter().any(|t| t.kind() == TrackKind::Video);
        let mut v = flv::file_header(has_a, has_v).to_vec();
        if let Ok(t) = flv::tag_bytes(18, 0, &flv::metadata_body(&self.tracks)) {
            v.extend_from_slice(&t);
        }
        for t in &self.tracks {
            if let (Ok(Some(body)), Ok(tt)) = (flv::sequence_header_body(t), flv::tag_type(t)) {
                if let Ok(tag) = flv::tag_bytes(tt, 0, &body) {
                    v.extend_from_slice(&tag);
                }
            }
        }
        vec![Bytes::from(v)]
    }

    fn frame(&mut self, f: &Frame, main_key: bool) -> Out {
        use mist_media::flv;
        let Some(t) = self.tracks.iter().find(|t| t.id == f.track) else {
            return Out::default();
        };
        let Ok((head, body_len)) = flv::frame_tag_head(t, f) else {
            return Out::default();
        };
        Out {
            chunks: vec![
                Bytes::copy_from_slice(&head),
                f.data.clone(),
                Bytes::copy_from_slice(&flv::prev_tag_size(body_len)),
            ],
            join: main_key,
        }
    }

    fn can_reheader(&self) -> bool {
        false
    }
}

// ---- fragmented MP4 ----

/// One `moof`+`mdat` per GOP of the main track, or sooner once ~1 s is buffered.
pub struct Fmp4Mux {
    w: mist_media::mp4::FragmentWriter,
    pending: Vec<Frame>,
    pending_join: bool,
    first_ms: i64,
    init: Bytes,
    /// Added to every time: a stream that starts before 0 (a VoD file with B-frames or audio
    /// priming) is shifted up by its first frame's time, since fragment decode times are
    /// unsigned. Set at the first frame.
    shift: Option<i64>,
}

const FRAG_MS: i64 = 1000;

impl Fmp4Mux {
    /// A muxer for `tracks`; an error when no track can be carried in MP4.
    pub fn new(tracks: &[Track]) -> Result<Fmp4Mux, MuxError> {
        let opts = mist_media::mp4::FragmentOptions::default();
        let w = mist_media::mp4::FragmentWriter::new(tracks.to_vec(), opts)?;
        let init = Bytes::from(w.init_segment()?);
        Ok(Fmp4Mux {
            w,
            pending: Vec::new(),
            pending_join: false,
            first_ms: 0,
            init,
            shift: None,
        })
    }

    fn emit(&mut self, end_ms: Option<i64>) -> Out {
        if self.pending.is_empty() {
            return Out::default();
        }
        let frames = std::mem::take(&mut self.pending);
        let join = std::mem::replace(&mut self.pending_join, false);
        match self.w.media_segment_vectored(&frames, end_ms) {
            Ok((head, payloads)) => {
                let mut chunks = Vec::with_capacity(payloads.len() + 1);
                chunks.push(Bytes::from(head));
                chunks.extend(payloads);
                Out { chunks, join }
            }
            Err(_) => Out::default(),
        }
    }
}

impl Mux for Fmp4Mux {
    fn header(&self) -> Vec<Bytes> {
        vec![self.init.clone()]
    }

    fn frame(&mut self, f: &Frame, main_key: bool) -> Out {
        let shift = *self.shift.get_or_insert((-f.dts).max(0));
        let mut f = f.clone();
        f.dts += shift;
        if f.dts < 0 {
            return Out::default();
        }
        let mut out = Out::default();
        if !self.pending.is_empty() && (main_key || f.dts - self.first_ms >= FRAG_MS) {
            out = self.emit(Some(f.dts));
        }
        if self.pending.is_empty() {
            self.first_ms = f.dts;
            self.pending_join = main_key;
        }
        self.pending.push(f);
        out
    }

    fn flush(&mut self) -> Out {
        self.emit(None)
    }
}

// ---- MPEG-TS and Matroska ----

fn ts_muxer(tracks: &[Track]) -> Result<Box<dyn Mux>, MuxError> {
    use mist_media::mpegts::{Muxer, MuxerOptions};
    let mut m = Muxer::new(tracks, MuxerOptions::default())?;
    let mut tables = Vec::new();
    m.write_tables(&mut tables);
    Ok(Box::new(TsMux {
        m,
        tables: Bytes::from(tables),
    }))
}

/// MPEG-TS: PAT/PMT before every keyframe of the main track (the muxer's
/// `tables_before_keyframes`), so each keyframe is a join point.
pub struct TsMux {
    m: mist_media::mpegts::Muxer,
    tables: Bytes,
}

impl Mux for TsMux {
    fn header(&self) -> Vec<Bytes> {
        vec![self.tables.clone()]
    }

    fn frame(&mut self, f: &Frame, main_key: bool) -> Out {
        let mut out = Vec::with_capacity(f.data.len() + f.data.len() / 8 + 400);
        if self.m.write_frame(f, &mut out).is_err() || out.is_empty() {
            return Out::default();
        }
        Out {
            chunks: vec![Bytes::from(out)],
            join: main_key,
        }
    }

    fn flush(&mut self) -> Out {
        let mut out = Vec::new();
        self.m.flush(&mut out);
        Out {
            chunks: if out.is_empty() {
                vec![]
            } else {
                vec![Bytes::from(out)]
            },
            join: false,
        }
    }
}

fn ebml_muxer(tracks: &[Track], webm: bool) -> Result<Box<dyn Mux>, MuxError> {
    use mist_media::ebml::{DocType, WriteMode, Writer, WriterOptions};
    let opts = WriterOptions {
        doc_type: if webm {
            DocType::Webm
        } else {
            DocType::Matroska
        },
        mode: WriteMode::Live,
        ..WriterOptions::default()
    };
    let mut w = Writer::new(tracks, opts)?;
    let mut head = Vec::new();
    w.write_header(&mut head);
    Ok(Box::new(EbmlMux {
        w,
        head: Bytes::from(head),
    }))
}

/// Matroska/WebM, live mode (unknown-size Segment and Clusters). A Cluster starts at every video
/// keyframe: those are the join points.
pub struct EbmlMux {
    w: mist_media::ebml::Writer,
    head: Bytes,
}

/// The Cluster element ID.
const CLUSTER_ID: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];

impl Mux for EbmlMux {
    fn header(&self) -> Vec<Bytes> {
        vec![self.head.clone()]
    }

    fn frame(&mut self, f: &Frame, main_key: bool) -> Out {
        let mut out = Vec::with_capacity(f.data.len() + 64);
        if self.w.write_frame(f, &mut out).is_err() || out.is_empty() {
            return Out::default();
        }
        let join = main_key && out.starts_with(&CLUSTER_ID);
        Out {
            chunks: vec![Bytes::from(out)],
            join,
        }
    }
}

// ---- audio only: MP3 and AAC (ADTS) ----

fn audio_muxer(format: Format, tracks: &[Track]) -> Result<Box<dyn Mux>, MuxError> {
    let audio: Vec<&Track> = tracks
        .iter()
        .filter(|t| t.kind() == TrackKind::Audio)
        .collect();
    let [t] = audio[..] else {
        return Err(MuxError::AudioTracks {
            format: format.name(),
            selected: audio.len(),
        });
    };
    let adts = match format {
        Format::Aac => Some(
            mist_media::aac::AudioSpecificConfig::parse(&t.init).map_err(|source| {
                MuxError::AacConfig {
                    track: t.id,
                    source,
                }
            })?,
        ),
        _ => None,
    };
    Ok(Box::new(AudioMux { track: t.id, adts }))
}

/// An elementary audio stream: MP3 frames as they are, AAC with an ADTS header before each
/// access unit. Every frame is a join point.
pub struct AudioMux {
    track: u32,
    adts: Option<mist_media::aac::AudioSpecificConfig>,
}

impl Mux for AudioMux {
    fn header(&self) -> Vec<Bytes> {
        Vec::new()
    }

    fn frame(&mut self, f: &Frame, _main_key: bool) -> Out {
        if f.track != self.track || f.data.is_empty() {
            return Out::default();
        }
        let chunks = match &self.adts {
            None => vec![f.data.clone()],
            Some(asc) => match mist_media::aac::AdtsHeader::build(asc, f.data.len()) {
                Ok(h) => vec![Bytes::copy_from_slice(&h), f.data.clone()],
                Err(_) => return Out::default(), // too long for ADTS's 13-bit length
            },
        };
        Out { chunks, join: true }
    }
}

/// Whether this build can serve a connector's format.
pub fn available(connector: &str) -> bool {
    matches!(
        connector,
        "HTTPTS" | "FLV" | "MP4" | "HLS" | "CMAF" | "EBML" | "MP3" | "AAC"
    )
}

/// Selector parts kept at most, and the longest part: more names nothing a real client asks for.
const MAX_SELECTOR_PARTS: usize = 16;
const MAX_SELECTOR_PART: usize = 32;

/// The canonical form of a `?video=`/`?audio=` selector, used before it keys a feed or a cache:
/// lower case, parts trimmed, numbers without leading zeros, empty and repeated parts dropped, at
/// most [`MAX_SELECTOR_PARTS`] parts of at most [`MAX_SELECTOR_PART`] bytes (longer ones name no
/// track and become `none`). Picks the same tracks as the raw selector; `""` stays `""` (default).
pub fn normalize_selector(q: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for p in q.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = if p.len() > MAX_SELECTOR_PART || !p.is_ascii() {
            "none".to_string()
        } else if let Ok(n) = p.parse::<u32>() {
            n.to_string()
        } else {
            p.to_ascii_lowercase()
        };
        if !parts.contains(&p) {
            parts.push(p);
        }
        if parts.len() >= MAX_SELECTOR_PARTS {
            break;
        }
    }
    parts.join(",")
}

/// Picks the tracks to send: `video`/`audio` are the `?video=`/`?audio=` query values (track
/// id, codec name, `all`/`*`, `none`/`-1`, comma-separated lists); absent = the first track of
/// that kind the format carries. Only tracks the format carries are picked.
pub fn select(
    tracks: &[Track],
    format: Format,
    video: Option<&str>,
    audio: Option<&str>,
) -> Vec<Track> {
    let ok = |t: &&Track| format.codecs().contains(&t.codec);
    let mut out = Vec::new();
    for (kind, q) in [(TrackKind::Video, video), (TrackKind::Audio, audio)] {
        let of_kind: Vec<&Track> = tracks
            .iter()
            .filter(|t| t.kind() == kind)
            .filter(ok)
            .collect();
        match q.map(str::trim) {
            None | Some("") => out.extend(of_kind.first().map(|t| (*t).clone())),
            Some(q) => {
                for part in q.split(',').map(str::trim) {
                    let picked = pick(&of_kind, part);
                    for t in picked {
                        if !out.iter().any(|o: &Track| o.id == t.id) {
                            out.push(t.clone());
                        }
                    }
                }
            }
        }
    }
    out
}

/// The tracks one selector names, as MistServer's track selectors do: `all`/`*`, `none`/`-1`, a
/// track id, a codec name, a language code (`eng`), `maxbps`/`highbps`/`bestbps`,
/// `minbps`/`lowbps`/`worstbps`, `maxres`/`highres`/`bestres`, `minres`/`lowres`/`worstres`, and
/// comparisons `>N`, `<N`, `~N` (closest) where N is a bit rate (`2000000`, `1500kbps`, `2mbps`)
/// or a size (`1280x720`, compared by pixel count). Unknown selectors pick nothing.
fn pick<'a>(of_kind: &[&'a Track], part: &str) -> Vec<&'a Track> {
    let lp = part.to_ascii_lowercase();
    let bits = |t: &Track| t.bps as u64 * 8;
    let pixels = |t: &Track| t.width as u64 * t.height as u64;
    let best = |key: &dyn Fn(&Track) -> u64, max: bool| -> Vec<&'a Track> {
        let it = of_kind.iter().copied();
        let t = if max {
            // max_by_key keeps the last of equals; prefer the first, as MistServer does
            it.rev().max_by_key(|t| key(t))
        } else {
            it.min_by_key(|t| key(t))
        };
        t.into_iter().collect()
    };
    match lp.as_str() {
        "none" | "-1" | "0" => return Vec::new(),
        "all" | "*" => return of_kind.to_vec(),
        "maxbps" | "highbps" | "bestbps" => return best(&bits, true),
        "minbps" | "lowbps" | "worstbps" => return best(&bits, false),
        "maxres" | "highres" | "bestres" => return best(&pixels, true),
        "minres" | "lowres" | "worstres" => return best(&pixels, false),
        _ => {}
    }
    if let Ok(id) = part.parse::<u32>() {
        return of_kind.iter().copied().filter(|t| t.id == id).collect();
    }
    if let Some(op @ ('<' | '>' | '~')) = lp.chars().next() {
        let arg = &lp[1..];
        let (key, want): (&dyn Fn(&Track) -> u64, u64) = match parse_size(arg) {
            Some(px) => (&pixels, px),
            None => match parse_bits(arg) {
                Some(b) => (&bits, b),
                None => return Vec::new(),
            },
        };
        return match op {
            '>' => of_kind.iter().copied().filter(|t| key(t) > want).collect(),
            '<' => of_kind.iter().copied().filter(|t| key(t) < want).collect(),
            _ => of_kind
                .iter()
                .copied()
                .min_by_key(|t| key(t).abs_diff(want))
                .into_iter()
                .collect(),
        };
    }
    if let Some(t) = of_kind
        .iter()
        .copied()
        .find(|t| t.codec.mist_name().eq_ignore_ascii_case(part))
    {
        return vec![t];
    }
    of_kind
        .iter()
        .copied()
        .filter(|t| !t.lang.is_empty() && t.lang.eq_ignore_ascii_case(part))
        .collect()
}

/// `1280x720` → pixel count.
fn parse_size(s: &str) -> Option<u64> {
    let (w, h) = s.split_once('x')?;
    Some(w.parse::<u64>().ok()? * h.parse::<u64>().ok()?)
}

/// `2000000`, `2000000bps`, `1500kbps`, `1500k`, `2mbps`, `2m` → bits per second.
fn parse_bits(s: &str) -> Option<u64> {
    let s = s.strip_suffix("bps").unwrap_or(s);
    let (num, mul) = match s.as_bytes().last()? {
        b'k' => (&s[..s.len() - 1], 1_000),
        b'm' => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// The main-track rule lives in [`crate::feed`] (one place for every connector).
pub use crate::feed::main_track;

#[cfg(test)]
mod tests {
    use super::*;

    fn tracks() -> Vec<Track> {
        let mut v = vec![
            Track::new(1, Codec::H264),
            Track::new(2, Codec::Aac),
            Track::new(3, Codec::Opus),
            Track::new(4, Codec::Vp9),
        ];
        v[0].width = 64;
        v
    }

    #[test]
    fn selection() {
        let ids = |v: Vec<Track>| v.iter().map(|t| t.id).collect::<Vec<_>>();
        let t = tracks();
        assert_eq!(ids(select(&t, Format::Ts, None, None)), vec![1, 2]);
        assert_eq!(ids(select(&t, Format::Ts, None, Some("none"))), vec![1]);
        assert_eq!(
            ids(select(&t, Format::Ts, Some("none"), Some("all"))),
            vec![2, 3]
        );
        assert_eq!(ids(select(&t, Format::Ts, None, Some("opus"))), vec![1, 3]);
        assert_eq!(
            ids(select(&t, Format::Mkv, Some("4"), Some("3"))),
            vec![4, 3]
        );
        assert_eq!(ids(select(&t, Format::Webm, None, None)), vec![4, 3]);
        assert_eq!(
            ids(select(&t, Format::Flv, Some("vp9,1"), None)),
            vec![4, 1, 2]
        );
        assert_eq!(
            main_track(&select(&t, Format::Ts, Some("none"), None)),
            Some(2)
        );
    }

    #[test]
    fn selectors_are_normalised() {
        assert_eq!(normalize_selector(" 01, 1 ,ALL,,all"), "1,all");
        assert_eq!(normalize_selector(""), "");
        let long = "x".repeat(100);
        assert_eq!(normalize_selector(&long), "none");
        let many: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        assert_eq!(
            normalize_selector(&many.join(",")).split(',').count(),
            MAX_SELECTOR_PARTS
        );
    }

    #[test]
    fn selectors_by_rate_size_and_language() {
        let ids = |v: Vec<Track>| v.iter().map(|t| t.id).collect::<Vec<_>>();
        let mut t = Vec::new();
        for (id, w, h, kbit) in [
            (1, 1280, 720, 3000),
            (2, 640, 360, 800),
            (3, 1920, 1080, 6000),
        ] {
            let mut v = Track::new(id, Codec::H264);
            (v.width, v.height, v.bps) = (w, h, kbit * 1000 / 8);
            t.push(v);
        }
        for (id, kbit, lang) in [(4, 128, "eng"), (5, 64, "dut")] {
            let mut a = Track::new(id, Codec::Aac);
            (a.bps, a.lang) = (kbit * 1000 / 8, lang.to_string());
            t.push(a);
        }
        let sel = |v: &str, a: &str| ids(select(&t, Format::Ts, Some(v), Some(a)));
        assert_eq!(sel("maxbps", "minbps"), vec![3, 5]);
        assert_eq!(sel("lowres", "highbps"), vec![2, 4]);
        assert_eq!(sel(">1000kbps", "dut"), vec![1, 3, 5]);
        assert_eq!(sel("<4mbps", "ENG"), vec![1, 2, 4]);
        assert_eq!(sel("~2500000", "none"), vec![1]);
        assert_eq!(sel("~1000x600", "none"), vec![1]);
        assert_eq!(sel(">640x360", "none"), vec![1, 3]);
        assert_eq!(sel("bogus,~x", "fra"), Vec::<u32>::new());
        assert_eq!(parse_bits("2m"), Some(2_000_000));
        assert_eq!(parse_bits("99999999999999999999"), None);
    }

    fn fixture_frames() -> (Vec<Track>, Vec<Frame>) {
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crates/media/tests/fixtures/flv/testsrc_320x240_1s.flv"
        ))
        .unwrap();
        let mut d = mist_media::flv::Demuxer::new();
        d.feed(&data);
        let (mut tracks, mut frames) = (Vec::new(), Vec::new());
        while let Ok(Some(t)) = d.next_tag() {
            if let Some(t) = t.converted.track {
                tracks.retain(|o: &Track| o.id != t.id);
                tracks.push(t);
            }
            frames.extend(t.converted.frame);
        }
        (tracks, frames)
    }

    fn run(format: Format) -> (Vec<u8>, usize) {
        let (tracks, frames) = fixture_frames();
        let sel = select(&tracks, format, None, None);
        let main = main_track(&sel);
        let mut m = format.muxer(&sel).unwrap();
        let mut out: Vec<u8> = m.header().concat();
        let mut joins = 0;
        for f in &frames {
            let o = m.frame(f, Some(f.track) == main && f.keyframe);
            joins += o.join as usize;
            out.extend(o.chunks.concat());
        }
        out.extend(m.flush().chunks.concat());
        (out, joins)
    }

    #[test]
    fn flv_output_reads_back() {
        let (out, joins) = run(Format::Flv);
        assert_eq!(joins, 1);
        let mut d = mist_media::flv::Demuxer::new();
        d.feed(&out);
        let mut n = 0;
        while let Ok(Some(t)) = d.next_tag() {
            n += t.converted.frame.is_some() as usize;
        }
        assert_eq!(n, fixture_frames().1.len());
    }

    #[test]
    fn fmp4_fragments_start_at_keyframes() {
        let (out, joins) = run(Format::Fmp4);
        assert!(joins >= 1);
        assert_eq!(&out[4..8], b"ftyp");
        assert!(out.windows(4).any(|w| w == b"moof"));
    }

    #[test]
    fn mkv_clusters_at_keyframes_and_webm_refuses_h264() {
        let (out, joins) = run(Format::Mkv);
        assert_eq!(joins, 1);
        assert_eq!(&out[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
        let (tracks, _) = fixture_frames();
        assert!(Format::Webm.muxer(&tracks).is_err());
    }

    #[test]
    fn ts_output_is_packets() {
        let (out, joins) = run(Format::Ts);
        assert_eq!(joins, 1);
        assert_eq!(out.len() % 188, 0);
        assert!(out.chunks(188).all(|p| p[0] == 0x47));
    }
}
