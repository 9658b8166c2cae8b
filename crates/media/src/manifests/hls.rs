//! HLS playlists (RFC 8216, with the LL-HLS additions of its second edition draft): writers for
//! master and media playlists built from a [`Timeline`], RFC 6381 codec strings from init data, and
//! a bounded m3u8 parser.
//!
//! URL templates are plain strings with placeholders the writer fills in:
//! `{track}` (a track id: the video track of a variant, the audio track of a rendition, the first of
//! `MediaOptions::tracks`), `{tracks}` (all track ids of the playlist joined with `_`), `{seq}` (segment
//! sequence number), `{start}` (segment start in ms), `{dur}` (segment duration in ms) and `{part}`
//! (part index within its segment). Unknown placeholders are left as they are.

pub mod pull;

use std::fmt::Write as _;

use crate::error::MediaError;
use crate::frame::{Codec, Track, TrackKind};
use crate::segment::{Segment, Timeline};

// ---------------------------------------------------------------------------------------------
// Codec strings
// ---------------------------------------------------------------------------------------------

/// The RFC 6381 `codecs` string of a track, as HLS `CODECS` and DASH `@codecs` want it, built from the
/// track's init data. `None` when the init data is missing or too short to say (H.264/HEVC/AV1), or the
/// codec has no ISO BMFF/TS codec string.
pub fn codec_string(track: &Track) -> Option<String> {
    let i = &track.init[..];
    match track.codec {
        Codec::H264 => {
            // avcC: version, profile, compatibility, level
            if i.len() < 4 || i[0] != 1 {
                return None;
            }
            Some(format!("avc1.{:02x}{:02x}{:02x}", i[1], i[2], i[3]))
        }
        Codec::Hevc => hevc_codec_string(i),
        Codec::Av1 => av1_codec_string(i),
        Codec::Aac => {
            let aot = aac_object_type(i).unwrap_or(2);
            Some(format!("mp4a.40.{aot}"))
        }
        Codec::Mp3 => Some("mp4a.40.34".into()),
        Codec::Opus => Some("opus".into()),
        Codec::Ac3 => Some("ac-3".into()),
        Codec::Vp9 => {
            // vpcC (FullBox body): version 1: profile, level, bitDepth(4)|chroma(3)|range(1)
            if i.len() >= 7 && i[0] == 1 {
                Some(format!("vp09.{:02}.{:02}.{:02}", i[4], i[5], i[6] >> 4))
            } else {
                Some("vp09.00.10.08".into())
            }
        }
        Codec::Vp8 => Some("vp8".into()),
        Codec::Pcm | Codec::Alaw | Codec::Ulaw | Codec::Meta => None,
    }
}

/// The audio object type of an AudioSpecificConfig (ISO 14496-3 1.6.2.1), escape included.
pub fn aac_object_type(asc: &[u8]) -> Option<u8> {
    let b0 = *asc.first()?;
    let aot = b0 >> 3;
    if aot == 31 {
        let b1 = *asc.get(1)?;
        Some(32 + (((b0 & 0x07) << 3) | (b1 >> 5)))
    } else if aot == 0 {
        None
    } else {
        Some(aot)
    }
}

/// `hvc1.` string per ISO/IEC 14496-15 Annex E from an HEVCDecoderConfigurationRecord.
fn hevc_codec_string(i: &[u8]) -> Option<String> {
    if i.len() < 13 {
        return None;
    }
    let space = i[1] >> 6;
    let tier = (i[1] >> 5) & 1;
    let profile = i[1] & 0x1f;
    let compat = u32::from_be_bytes([i[2], i[3], i[4], i[5]]).reverse_bits();
    let mut s = String::from("hvc1.");
    if space > 0 {
        s.push((b'A' + space - 1) as char);
    }
    let _ = write!(
        s,
        "{profile}.{compat:X}.{}{}",
        if tier == 1 { 'H' } else { 'L' },
        i[12]
    );
    let cons = &i[6..12];
    let n = cons.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    for b in &cons[..n] {
        let _ = write!(s, ".{b:02X}");
    }
    Some(s)
}

/// `av01.P.LLT.DD` per the AV1 ISO BMFF binding from an AV1CodecConfigurationRecord.
fn av1_codec_string(i: &[u8]) -> Option<String> {
    if i.len() < 4 || i[0] & 0x80 == 0 {
        return None;
    }
    let profile = i[1] >> 5;
    let level = i[1] & 0x1f;
    let tier = if i[2] & 0x80 != 0 { 'H' } else { 'M' };
    let high = i[2] & 0x40 != 0;
    let twelve = i[2] & 0x20 != 0;
    let depth = if high && twelve && profile == 2 {
        12
    } else if high {
        10
    } else {
        8
    };
    Some(format!("av01.{profile}.{level:02}{tier}.{depth:02}"))
}

// ---------------------------------------------------------------------------------------------
// Small helpers shared with the DASH writer
// ---------------------------------------------------------------------------------------------

/// Fills the `{name}` placeholders of a URL template.
pub fn fill_template(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match vars.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in ms.
pub fn iso8601(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn secs3(ms: i64) -> String {
    let neg = ms < 0;
    let a = ms.unsigned_abs();
    format!("{}{}.{:03}", if neg { "-" } else { "" }, a / 1000, a % 1000)
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("_")
}

fn quote_safe(s: &str) -> String {
    s.chars()
        .filter(|&c| c != '"' && c != '\n' && c != '\r')
        .collect()
}

/// Frame rate text from fpks with up to three decimals and no trailing zeros.
pub(crate) fn fps_text(fpks: u32) -> String {
    let mut s = format!("{}.{:03}", fpks / 1000, fpks % 1000);
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Master playlist
// ---------------------------------------------------------------------------------------------

/// How audio reaches players of a master playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioMode {
    /// Audio travels in the variant's segments (MPEG-TS HLS): one variant per video track, carrying
    /// the first audio track.
    Muxed,
    /// Audio tracks are EXT-X-MEDIA renditions of one group with their own playlists (CMAF HLS).
    Renditions,
}

/// How a master playlist is written.
#[derive(Debug, Clone)]
pub struct MasterOptions {
    /// Muxed audio or renditions.
    pub audio: AudioMode,
    /// Media playlist URI of a variant: `{track}` the video track (the audio track for audio-only),
    /// `{tracks}` all tracks in the variant's segments.
    pub variant_uri: String,
    /// Media playlist URI of an audio rendition: `{track}`.
    pub audio_uri: String,
    /// The `GROUP-ID` of the audio renditions.
    pub audio_group: String,
    /// `EXT-X-VERSION` written.
    pub version: u8,
    /// Percent added to payload bitrates for container overhead (TS costs ~5-10 %).
    pub overhead_percent: u32,
}

impl MasterOptions {
    /// MPEG-TS HLS: muxed audio, `{tracks}/index.m3u8` variant playlists.
    pub fn ts() -> Self {
        MasterOptions {
            audio: AudioMode::Muxed,
            variant_uri: "{tracks}/index.m3u8".into(),
            audio_uri: "{track}/index.m3u8".into(),
            audio_group: "audio".into(),
            version: 3,
            overhead_percent: 10,
        }
    }

    /// CMAF HLS: separate audio renditions, one playlist per track.
    pub fn cmaf() -> Self {
        MasterOptions {
            audio: AudioMode::Renditions,
            variant_uri: "{track}/index.m3u8".into(),
            audio_uri: "{track}/index.m3u8".into(),
            audio_group: "audio".into(),
            version: 7,
            overhead_percent: 3,
        }
    }
}

fn track_peak(tl: &Timeline, t: &Track) -> u64 {
    match tl.peak_bps(t.id) {
        0 => t.bps as u64 * 8,
        p => p,
    }
}

fn track_avg(tl: &Timeline, t: &Track) -> u64 {
    match tl.average_bps_of(&[t.id]) {
        0 => t.bps as u64 * 8,
        a => a,
    }
}

fn with_overhead(bps: u64, pct: u32) -> u64 {
    (bps.saturating_mul(100 + pct as u64) / 100).max(1)
}

fn codecs_of<'a>(tracks: impl Iterator<Item = &'a Track>) -> String {
    let mut v: Vec<String> = Vec::new();
    for t in tracks {
        if let Some(c) = codec_string(t) {
            if !v.contains(&c) {
                v.push(c);
            }
        }
    }
    v.join(",")
}

/// Writes the master playlist for `tracks` (meta tracks are skipped).
pub fn master_playlist(tracks: &[Track], tl: &Timeline, opts: &MasterOptions) -> String {
    let video: Vec<&Track> = tracks
        .iter()
        .filter(|t| t.kind() == TrackKind::Video)
        .collect();
    let audio: Vec<&Track> = tracks
        .iter()
        .filter(|t| t.kind() == TrackKind::Audio)
        .collect();
    let mut o = String::new();
    o.push_str("#EXTM3U\n");
    let _ = writeln!(o, "#EXT-X-VERSION:{}", opts.version);
    o.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");

    let group = quote_safe(&opts.audio_group);
    let renditions = opts.audio == AudioMode::Renditions && !audio.is_empty() && !video.is_empty();
    // Muxed audio with several audio tracks: the first travels in the variants (a rendition
    // without URI), the others are renditions with playlists of their own.
    let muxed_group = opts.audio == AudioMode::Muxed && audio.len() > 1 && !video.is_empty();
    if renditions || muxed_group {
        for (n, a) in audio.iter().enumerate() {
            let name = if a.lang.is_empty() || a.lang == "und" {
                format!("audio {}", a.id)
            } else {
                format!("{} {}", a.lang, a.id)
            };
            let _ = write!(
                o,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{group}\",NAME=\"{}\",DEFAULT={},AUTOSELECT=YES",
                quote_safe(&name),
                if n == 0 { "YES" } else { "NO" }
            );
            if !a.lang.is_empty() && a.lang != "und" {
                let _ = write!(o, ",LANGUAGE=\"{}\"", quote_safe(&a.lang));
            }
            if a.channels > 0 {
                let _ = write!(o, ",CHANNELS=\"{}\"", a.channels);
            }
            let id = a.id.to_string();
            if muxed_group && n == 0 {
                o.push('\n');
                continue;
            }
            let uri = fill_template(&opts.audio_uri, &[("track", &id), ("tracks", &id)]);
            let _ = writeln!(o, ",URI=\"{}\"", quote_safe(&uri));
        }
    }

    let variant = |o: &mut String, main: &Track, with: &[&Track], group: Option<&str>| {
        let mut ids = vec![main.id];
        ids.extend(with.iter().map(|t| t.id));
        let mut peak = track_peak(tl, main);
        let mut avg = track_avg(tl, main);
        let audio_peak = with.iter().map(|t| track_peak(tl, t)).max().unwrap_or(0);
        let audio_avg = with.iter().map(|t| track_avg(tl, t)).max().unwrap_or(0);
        peak += audio_peak;
        avg += audio_avg;
        let _ = write!(
            o,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={}",
            with_overhead(peak, opts.overhead_percent),
            with_overhead(avg, opts.overhead_percent)
        );
        if main.kind() == TrackKind::Video && main.width > 0 && main.height > 0 {
            let _ = write!(o, ",RESOLUTION={}x{}", main.width, main.height);
        }
        if main.kind() == TrackKind::Video && main.fpks > 0 {
            let _ = write!(
                o,
                ",FRAME-RATE={}.{:03}",
                main.fpks / 1000,
                main.fpks % 1000
            );
        }
        let codecs = codecs_of(std::iter::once(main).chain(with.iter().copied()));
        if !codecs.is_empty() {
            let _ = write!(o, ",CODECS=\"{codecs}\"");
        }
        if let Some(g) = group {
            let _ = write!(o, ",AUDIO=\"{g}\"");
        }
        o.push('\n');
        let id = main.id.to_string();
        let all = if group.is_some() && !muxed_group {
            id.clone()
        } else {
            join_ids(&ids)
        };
        let uri = fill_template(&opts.variant_uri, &[("track", &id), ("tracks", &all)]);
        o.push_str(&uri);
        o.push('\n');
    };

    if video.is_empty() {
        for a in &audio {
            variant(&mut o, a, &[], None);
        }
    } else {
        for v in &video {
            if renditions {
                variant(&mut o, v, &audio, Some(&group));
            } else {
                let with: Vec<&Track> = audio.iter().take(1).copied().collect();
                variant(&mut o, v, &with, muxed_group.then_some(group.as_str()));
            }
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Media playlist
// ---------------------------------------------------------------------------------------------

/// `EXT-X-PLAYLIST-TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistType {
    /// `VOD`: the playlist will not change.
    Vod,
    /// `EVENT`: segments are only added, never removed (a recording in progress).
    Event,
}

/// How a media playlist is written.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// Tracks carried by this playlist's segments (for `{track}` / `{tracks}`).
    pub tracks: Vec<u32>,
    /// Segment URI template: `{seq}`, `{start}`, `{dur}`, `{track}`, `{tracks}`.
    pub segment_uri: String,
    /// fMP4 init segment URI (EXT-X-MAP); `None` for MPEG-TS.
    pub init_uri: Option<String>,
    /// `EXT-X-VERSION` written (3 for TS, 7 for fMP4 with EXT-X-MAP).
    pub version: u8,
    /// EXT-X-PLAYLIST-TYPE; VOD also wants a finished timeline (EXT-X-ENDLIST is written whenever
    /// the timeline has ended).
    pub playlist_type: Option<PlaylistType>,
    /// Unix ms of presentation (= media, until a discontinuity) time 0: writes
    /// EXT-X-PROGRAM-DATE-TIME before every segment.
    pub program_date_time: Option<i64>,
    /// LL-HLS: part URI template (`{seq}`, `{part}`, …); needs a timeline with parts.
    pub part_uri: Option<String>,
    /// LL-HLS: segments at the end of the window whose parts are listed.
    pub part_segments: usize,
}

impl MediaOptions {
    /// Options for an MPEG-TS playlist of `tracks`.
    pub fn ts(tracks: &[u32]) -> Self {
        MediaOptions {
            tracks: tracks.to_vec(),
            segment_uri: "{seq}_{start}.ts".into(),
            init_uri: None,
            version: 3,
            playlist_type: None,
            program_date_time: None,
            part_uri: None,
            part_segments: 3,
        }
    }

    /// Options for a CMAF (fMP4) playlist of `tracks`.
    pub fn cmaf(tracks: &[u32]) -> Self {
        MediaOptions {
            tracks: tracks.to_vec(),
            segment_uri: "{seq}_{start}.m4s".into(),
            init_uri: Some("init.mp4".into()),
            version: 7,
            playlist_type: None,
            program_date_time: None,
            part_uri: None,
            part_segments: 3,
        }
    }
}

fn seg_vars(opts: &MediaOptions, seq: u64, start: i64, dur: i64, part: Option<u32>) -> String {
    let first = opts
        .tracks
        .first()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let all = join_ids(&opts.tracks);
    let (seq, start, dur) = (seq.to_string(), start.to_string(), dur.to_string());
    let part = part.map(|p| p.to_string()).unwrap_or_default();
    let tmpl = if part.is_empty() {
        &opts.segment_uri
    } else {
        opts.part_uri.as_ref().unwrap_or(&opts.segment_uri)
    };
    fill_template(
        tmpl,
        &[
            ("track", &first),
            ("tracks", &all),
            ("seq", &seq),
            ("start", &start),
            ("dur", &dur),
            ("part", &part),
        ],
    )
}

/// Writes a media playlist of the timeline's window.
pub fn media_playlist(tl: &Timeline, opts: &MediaOptions) -> String {
    let mut o = String::new();
    o.push_str("#EXTM3U\n");
    let _ = writeln!(o, "#EXT-X-VERSION:{}", opts.version);
    let max = tl.max_duration_ms();
    let target_ms = if max > 0 {
        max
    } else {
        tl.config().target_ms.max(tl.config().audio_target_ms) as i64
    };
    let target = ((target_ms + 999) / 1000).max(1);
    let _ = writeln!(o, "#EXT-X-TARGETDURATION:{target}");
    let ll = opts.part_uri.is_some() && tl.config().part_target_ms.is_some();
    if ll {
        let pt = tl.config().part_target_ms.unwrap_or(1000) as i64;
        let max_part = tl
            .segments()
            .chain(tl.open_segment())
            .flat_map(|s| s.parts.iter())
            .filter_map(|p| p.duration_ms())
            .max()
            .unwrap_or(pt)
            .max(pt);
        let _ = writeln!(
            o,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}",
            secs3(max_part * 3)
        );
        let _ = writeln!(o, "#EXT-X-PART-INF:PART-TARGET={}", secs3(max_part));
    }
    let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{}", tl.media_sequence());
    if tl.discontinuity_sequence() > 0 {
        let _ = writeln!(
            o,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            tl.discontinuity_sequence()
        );
    }
    match opts.playlist_type {
        Some(PlaylistType::Vod) => o.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        Some(PlaylistType::Event) => o.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
        None => {}
    }
    o.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(init) = &opts.init_uri {
        let first = opts
            .tracks
            .first()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let all = join_ids(&opts.tracks);
        let uri = fill_template(init, &[("track", &first), ("tracks", &all)]);
        let _ = writeln!(o, "#EXT-X-MAP:URI=\"{}\"", quote_safe(&uri));
    }
    let n = tl.len();
    let write_parts = |o: &mut String, s: &Segment| {
        for p in &s.parts {
            let Some(d) = p.duration_ms() else { continue };
            let _ = write!(
                o,
                "#EXT-X-PART:DURATION={},URI=\"{}\"",
                secs3(d),
                quote_safe(&seg_vars(
                    opts,
                    s.seq,
                    s.start_ms,
                    s.duration_ms(),
                    Some(p.index)
                ))
            );
            if p.independent {
                o.push_str(",INDEPENDENT=YES");
            }
            o.push('\n');
        }
    };
    for (i, s) in tl.segments().enumerate() {
        if ll && i + opts.part_segments >= n {
            if s.discontinuity {
                // EXT-X-DISCONTINUITY applies to the parts that follow it too.
                o.push_str("#EXT-X-DISCONTINUITY\n");
            }
            write_parts(&mut o, s);
        }
        if s.discontinuity {
            o.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(base) = opts.program_date_time {
            let _ = writeln!(
                o,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                iso8601(base.saturating_add(s.presentation_ms))
            );
        }
        let _ = writeln!(o, "#EXTINF:{},", secs3(s.duration_ms()));
        o.push_str(&seg_vars(opts, s.seq, s.start_ms, s.duration_ms(), None));
        o.push('\n');
    }
    if tl.is_ended() {
        o.push_str("#EXT-X-ENDLIST\n");
    } else if ll {
        if let Some(open) = tl.open_segment() {
            write_parts(&mut o, open);
            let next = open
                .parts
                .iter()
                .find(|p| p.end_ms.is_none())
                .map(|p| p.index)
                .unwrap_or(0);
            let _ = writeln!(
                o,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                quote_safe(&seg_vars(opts, open.seq, open.start_ms, 0, Some(next)))
            );
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// Largest playlist the parser accepts.
pub const MAX_PLAYLIST_BYTES: usize = 8 << 20;
/// Most segments, variants or renditions the parser keeps.
pub const MAX_ENTRIES: usize = 100_000;

/// A parsed playlist (what an HLS input reads from another server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playlist {
    /// Lists variants and renditions: pick one, then load its media playlist.
    Master(MasterPlaylist),
    /// Lists segments.
    Media(MediaPlaylist),
}

/// A master (multivariant) playlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterPlaylist {
    /// `EXT-X-VERSION`.
    pub version: Option<u32>,
    /// `EXT-X-INDEPENDENT-SEGMENTS`: every segment starts with a keyframe.
    pub independent_segments: bool,
    /// `EXT-X-STREAM-INF` entries.
    pub variants: Vec<VariantStream>,
    /// `EXT-X-MEDIA` entries.
    pub renditions: Vec<Rendition>,
}

/// One `EXT-X-STREAM-INF` and its URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariantStream {
    /// The media playlist's URI, as written (relative to the master's).
    pub uri: String,
    /// `BANDWIDTH`: peak bits per second, what a player chooses by.
    pub bandwidth: u64,
    /// `AVERAGE-BANDWIDTH`.
    pub average_bandwidth: Option<u64>,
    /// `CODECS` (RFC 6381 strings, comma-separated).
    pub codecs: Option<String>,
    /// `RESOLUTION` (width, height).
    pub resolution: Option<(u32, u32)>,
    /// FRAME-RATE in thousandths (fpks).
    pub frame_rate_milli: Option<u32>,
    /// `AUDIO`: the group of audio renditions to play with it.
    pub audio: Option<String>,
    /// `VIDEO`: the group of video renditions.
    pub video: Option<String>,
    /// `SUBTITLES`: the group of subtitle renditions.
    pub subtitles: Option<String>,
}

/// One `EXT-X-MEDIA`: an alternative rendition (another language, an audio-only playlist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendition {
    /// `TYPE`: `AUDIO`, `VIDEO`, `SUBTITLES` or `CLOSED-CAPTIONS`.
    pub media_type: String,
    /// `GROUP-ID`, which variants name.
    pub group_id: String,
    /// `NAME`, for people.
    pub name: String,
    /// `URI` of its media playlist; none when it is carried in the variant's segments.
    pub uri: Option<String>,
    /// `LANGUAGE`.
    pub language: Option<String>,
    /// `DEFAULT=YES`.
    pub default: bool,
    /// `AUTOSELECT=YES`.
    pub autoselect: bool,
    /// `CHANNELS` (`2`, `6` …).
    pub channels: Option<String>,
}

/// A media playlist: the segments of one variant or rendition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaPlaylist {
    /// `EXT-X-VERSION`.
    pub version: Option<u32>,
    /// `EXT-X-TARGETDURATION` (s): a live playlist is reloaded about this often.
    pub target_duration: u64,
    /// `EXT-X-MEDIA-SEQUENCE`: the number of the first segment, how a reload finds where it
    /// left off.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// `EXT-X-PLAYLIST-TYPE`.
    pub playlist_type: Option<PlaylistType>,
    /// `EXT-X-ENDLIST`: no segment will be added.
    pub endlist: bool,
    /// `EXT-X-INDEPENDENT-SEGMENTS`.
    pub independent_segments: bool,
    /// LL-HLS `EXT-X-PART-INF` `PART-TARGET`, in ms.
    pub part_target_ms: Option<i64>,
    /// The segments, in order.
    pub segments: Vec<MediaSegment>,
}

/// `EXT-X-BYTERANGE`: a segment that is part of a larger file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByteRange {
    /// Bytes.
    pub length: u64,
    /// First byte; `None`: right after the previous range of the same file.
    pub offset: Option<u64>,
}

/// `EXT-X-MAP`: the init segment (fMP4) the following segments need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapInfo {
    /// Its URI.
    pub uri: String,
    /// Its range within the URI's file, if only part of it.
    pub byterange: Option<ByteRange>,
}

/// An LL-HLS `EXT-X-PART`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartInfo {
    /// Its URI.
    pub uri: String,
    /// Its duration, in ms.
    pub duration_ms: i64,
    /// `INDEPENDENT=YES`: starts with a keyframe, a player may join here.
    pub independent: bool,
}

/// One segment of a media playlist, with the tags in force for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaSegment {
    /// Its URI, as written.
    pub uri: String,
    /// Sequence number: EXT-X-MEDIA-SEQUENCE plus position.
    pub seq: u64,
    /// `EXTINF` duration, in ms.
    pub duration_ms: i64,
    /// `EXTINF` title.
    pub title: String,
    /// `EXT-X-DISCONTINUITY` before it: timestamps restart, decoders must reset.
    pub discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME`, as written.
    pub program_date_time: Option<String>,
    /// `EXT-X-BYTERANGE`.
    pub byterange: Option<ByteRange>,
    /// The EXT-X-MAP in force for this segment.
    pub map: Option<MapInfo>,
    /// EXT-X-KEY METHOD in force (`None` or `NONE` means clear).
    pub key_method: Option<String>,
    /// LL-HLS parts listed before this segment.
    pub parts: Vec<PartInfo>,
}

/// Splits an attribute list (`A=1,B="x,y",C=0x1F`) into pairs. Quotes are removed from values.
pub fn parse_attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && out.len() < 256 {
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s.get(ks..i).unwrap_or("").trim().to_string();
        if i >= b.len() || b[i] == b',' {
            if !key.is_empty() {
                out.push((key, String::new()));
            }
            continue;
        }
        i += 1; // '='
        let value;
        if i < b.len() && b[i] == b'"' {
            let vs = i + 1;
            let mut j = vs;
            while j < b.len() && b[j] != b'"' {
                j += 1;
            }
            value = s.get(vs..j).unwrap_or("").to_string();
            i = (j + 1).min(b.len());
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value = s.get(vs..i).unwrap_or("").trim().to_string();
        }
        if !key.is_empty() {
            out.push((key, value));
        }
    }
    out
}

fn attr<'a>(a: &'a [(String, String)], k: &str) -> Option<&'a str> {
    a.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// Decimal seconds to ms; rejects negatives, NaN, infinities and absurd values.
fn parse_secs_ms(s: &str) -> Result<i64, MediaError> {
    let s = s.trim();
    let v: f64 = s
        .parse()
        .map_err(|_| MediaError::malformed("m3u8", format!("bad duration {s:.40}")))?;
    if !v.is_finite() || !(0.0..=1.0e9).contains(&v) {
        return Err(MediaError::malformed(
            "m3u8",
            format!("duration out of range {s:.40}"),
        ));
    }
    Ok((v * 1000.0).round() as i64)
}

fn parse_u64(s: &str, what: &str) -> Result<u64, MediaError> {
    s.trim()
        .parse()
        .map_err(|_| MediaError::malformed("m3u8", format!("bad {what}")))
}

fn parse_byterange(s: &str) -> Result<ByteRange, MediaError> {
    let (len, off) = match s.split_once('@') {
        Some((l, o)) => (l, Some(parse_u64(o, "byterange offset")?)),
        None => (s, None),
    };
    Ok(ByteRange {
        length: parse_u64(len, "byterange")?,
        offset: off,
    })
}

fn yes(v: Option<&str>) -> bool {
    v == Some("YES")
}

/// Parses a master or media playlist. Bounded by [`MAX_PLAYLIST_BYTES`] and [`MAX_ENTRIES`].
pub fn parse(input: &[u8]) -> Result<Playlist, MediaError> {
    if input.len() > MAX_PLAYLIST_BYTES {
        return Err(MediaError::TooLarge {
            what: "m3u8",
            size: input.len() as u64,
            limit: MAX_PLAYLIST_BYTES as u64,
        });
    }
    let text =
        std::str::from_utf8(input).map_err(|_| MediaError::malformed("m3u8", "not UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some(l) if l.starts_with("#EXTM3U") => {}
        _ => return Err(MediaError::malformed("m3u8", "no #EXTM3U")),
    }
    let is_master = text.contains("#EXT-X-STREAM-INF") || text.contains("#EXT-X-MEDIA:");
    if is_master {
        parse_master(lines).map(Playlist::Master)
    } else {
        parse_media(lines).map(Playlist::Media)
    }
}

fn too_many() -> MediaError {
    MediaError::TooLarge {
        what: "m3u8 entries",
        size: MAX_ENTRIES as u64 + 1,
        limit: MAX_ENTRIES as u64,
    }
}

fn parse_master<'a>(lines: impl Iterator<Item = &'a str>) -> Result<MasterPlaylist, MediaError> {
    let mut m = MasterPlaylist::default();
    let mut pending: Option<VariantStream> = None;
    for line in lines {
        if let Some(rest) = line.strip_prefix('#') {
            let (tag, val) = rest.split_once(':').unwrap_or((rest, ""));
            match tag {
                "EXT-X-VERSION" => {
                    m.version = Some(parse_u64(val, "version")?.min(u32::MAX as u64) as u32)
                }
                "EXT-X-INDEPENDENT-SEGMENTS" => m.independent_segments = true,
                "EXT-X-STREAM-INF" => {
                    let a = parse_attributes(val);
                    let bandwidth = parse_u64(
                        attr(&a, "BANDWIDTH").ok_or_else(|| {
                            MediaError::malformed("m3u8", "STREAM-INF without BANDWIDTH")
                        })?,
                        "BANDWIDTH",
                    )?;
                    let resolution = attr(&a, "RESOLUTION").and_then(|r| {
                        let (w, h) = r.split_once(['x', 'X'])?;
                        Some((w.parse().ok()?, h.parse().ok()?))
                    });
                    let frame_rate_milli = attr(&a, "FRAME-RATE")
                        .and_then(|f| f.parse::<f64>().ok())
                        .filter(|f| f.is_finite() && (0.0..4.0e6).contains(f))
                        .map(|f| (f * 1000.0).round() as u32);
                    pending = Some(VariantStream {
                        uri: String::new(),
                        bandwidth,
                        average_bandwidth: attr(&a, "AVERAGE-BANDWIDTH")
                            .and_then(|v| v.parse().ok()),
                        codecs: attr(&a, "CODECS").map(str::to_string),
                        resolution,
                        frame_rate_milli,
                        audio: attr(&a, "AUDIO").map(str::to_string),
                        video: attr(&a, "VIDEO").map(str::to_string),
                        subtitles: attr(&a, "SUBTITLES").map(str::to_string),
                    });
                }
                "EXT-X-MEDIA" => {
                    if m.renditions.len() >= MAX_ENTRIES {
                        return Err(too_many());
                    }
                    let a = parse_attributes(val);
                    let (Some(t), Some(g), Some(n)) =
                        (attr(&a, "TYPE"), attr(&a, "GROUP-ID"), attr(&a, "NAME"))
                    else {
                        return Err(MediaError::malformed(
                            "m3u8",
                            "EXT-X-MEDIA lacks TYPE, GROUP-ID or NAME",
                        ));
                    };
                    m.renditions.push(Rendition {
                        media_type: t.to_string(),
                        group_id: g.to_string(),
                        name: n.to_string(),
                        uri: attr(&a, "URI").map(str::to_string),
                        language: attr(&a, "LANGUAGE").map(str::to_string),
                        default: yes(attr(&a, "DEFAULT")),
                        autoselect: yes(attr(&a, "AUTOSELECT")),
                        channels: attr(&a, "CHANNELS").map(str::to_string),
                    });
                }
                _ => {}
            }
        } else if let Some(mut v) = pending.take() {
            if m.variants.len() >= MAX_ENTRIES {
                return Err(too_many());
            }
            v.uri = line.to_string();
            m.variants.push(v);
        }
    }
    Ok(m)
}

fn parse_media<'a>(lines: impl Iterator<Item = &'a str>) -> Result<MediaPlaylist, MediaError> {
    let mut m = MediaPlaylist::default();
    let mut next = MediaSegment::default();
    let mut have_inf = false;
    let mut map: Option<MapInfo> = None;
    let mut key: Option<String> = None;
    let mut parts: Vec<PartInfo> = Vec::new();
    for line in lines {
        if let Some(rest) = line.strip_prefix('#') {
            let (tag, val) = rest.split_once(':').unwrap_or((rest, ""));
            match tag {
                "EXT-X-VERSION" => {
                    m.version = Some(parse_u64(val, "version")?.min(u32::MAX as u64) as u32)
                }
                "EXT-X-TARGETDURATION" => m.target_duration = parse_u64(val, "target duration")?,
                "EXT-X-MEDIA-SEQUENCE" => m.media_sequence = parse_u64(val, "media sequence")?,
                "EXT-X-DISCONTINUITY-SEQUENCE" => {
                    m.discontinuity_sequence = parse_u64(val, "discontinuity sequence")?
                }
                "EXT-X-PLAYLIST-TYPE" => {
                    m.playlist_type = match val.trim() {
                        "VOD" => Some(PlaylistType::Vod),
                        "EVENT" => Some(PlaylistType::Event),
                        _ => return Err(MediaError::malformed("m3u8", "bad PLAYLIST-TYPE")),
                    }
                }
                "EXT-X-ENDLIST" => m.endlist = true,
                "EXT-X-INDEPENDENT-SEGMENTS" => m.independent_segments = true,
                "EXT-X-PART-INF" => {
                    let a = parse_attributes(val);
                    m.part_target_ms = attr(&a, "PART-TARGET").map(parse_secs_ms).transpose()?;
                }
                "EXTINF" => {
                    let (d, title) = val.split_once(',').unwrap_or((val, ""));
                    next.duration_ms = parse_secs_ms(d)?;
                    next.title = title.to_string();
                    have_inf = true;
                }
                "EXT-X-BYTERANGE" => next.byterange = Some(parse_byterange(val)?),
                "EXT-X-DISCONTINUITY" => next.discontinuity = true,
                "EXT-X-PROGRAM-DATE-TIME" => next.program_date_time = Some(val.to_string()),
                "EXT-X-MAP" => {
                    let a = parse_attributes(val);
                    let uri = attr(&a, "URI")
                        .ok_or_else(|| MediaError::malformed("m3u8", "EXT-X-MAP without URI"))?;
                    map = Some(MapInfo {
                        uri: uri.to_string(),
                        byterange: attr(&a, "BYTERANGE").map(parse_byterange).transpose()?,
                    });
                }
                "EXT-X-KEY" => {
                    let a = parse_attributes(val);
                    key = attr(&a, "METHOD").map(str::to_string);
                }
                "EXT-X-PART" => {
                    if parts.len() >= MAX_ENTRIES {
                        return Err(too_many());
                    }
                    let a = parse_attributes(val);
                    let (Some(uri), Some(d)) = (attr(&a, "URI"), attr(&a, "DURATION")) else {
                        return Err(MediaError::malformed(
                            "m3u8",
                            "EXT-X-PART lacks URI or DURATION",
                        ));
                    };
                    parts.push(PartInfo {
                        uri: uri.to_string(),
                        duration_ms: parse_secs_ms(d)?,
                        independent: yes(attr(&a, "INDEPENDENT")),
                    });
                }
                _ => {}
            }
        } else {
            if !have_inf {
                return Err(MediaError::malformed("m3u8", "segment URI without EXTINF"));
            }
            if m.segments.len() >= MAX_ENTRIES {
                return Err(too_many());
            }
            let mut s = std::mem::take(&mut next);
            s.uri = line.to_string();
            s.seq = m.media_sequence.saturating_add(m.segments.len() as u64);
            s.map = map.clone();
            s.key_method = key.clone();
            s.parts = std::mem::take(&mut parts);
            m.segments.push(s);
            have_inf = false;
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{TimelineConfig, Window};
    use bytes::Bytes;

    fn h264(id: u32, init: &[u8], w: u32, h: u32) -> Track {
        let mut t = Track::new(id, Codec::H264);
        t.init = Bytes::copy_from_slice(init);
        t.width = w;
        t.height = h;
        t.fpks = 25_000;
        t
    }

    fn aac(id: u32) -> Track {
        let mut t = Track::new(id, Codec::Aac);
        t.init = Bytes::from_static(&[0x12, 0x10]);
        t.rate = 44100;
        t.channels = 2;
        t
    }

    #[test]
    fn codec_strings() {
        assert_eq!(
            codec_string(&h264(1, &[1, 0x64, 0, 0x1f, 0xff], 0, 0)).unwrap(),
            "avc1.64001f"
        );
        assert_eq!(
            codec_string(&h264(1, &[1, 0x42, 0xc0, 0x1e], 0, 0)).unwrap(),
            "avc1.42c01e"
        );
        assert_eq!(codec_string(&h264(1, &[], 0, 0)), None);
        assert_eq!(codec_string(&aac(2)).unwrap(), "mp4a.40.2");
        let mut he = aac(2);
        he.init = Bytes::from_static(&[0x2b, 0x92, 0x08, 0x00]);
        assert_eq!(codec_string(&he).unwrap(), "mp4a.40.5");
        let mut esc = aac(2);
        esc.init = Bytes::from_static(&[0xf8, 0x20]); // 31 + escape 1 -> 33
        assert_eq!(codec_string(&esc).unwrap(), "mp4a.40.33");
        // HEVC Main, Main tier, level 3.1 (93), constraint byte 0xB0
        let mut hv = Track::new(3, Codec::Hevc);
        hv.init = Bytes::from_static(&[1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93, 0xf0]);
        assert_eq!(codec_string(&hv).unwrap(), "hvc1.1.6.L93.B0");
        // Main10, High tier level 5.1 (153)
        hv.init = Bytes::from_static(&[1, 0x22, 0x20, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 153]);
        assert_eq!(codec_string(&hv).unwrap(), "hvc1.2.4.H153.90");
        let mut av1 = Track::new(4, Codec::Av1);
        av1.init = Bytes::from_static(&[0x81, 0x08, 0x0c, 0x00]);
        assert_eq!(codec_string(&av1).unwrap(), "av01.0.08M.08");
        av1.init = Bytes::from_static(&[0x81, 0x2d, 0xc0, 0x00]);
        assert_eq!(codec_string(&av1).unwrap(), "av01.1.13H.10");
        assert_eq!(codec_string(&Track::new(5, Codec::Opus)).unwrap(), "opus");
        assert_eq!(
            codec_string(&Track::new(5, Codec::Mp3)).unwrap(),
            "mp4a.40.34"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(fill_template("a/{seq}/{x}/{", &[("seq", "5")]), "a/5/{x}/{");
        assert_eq!(secs3(4004), "4.004");
        assert_eq!(secs3(-5), "-0.005");
        assert_eq!(fps_text(29_970), "29.97");
        assert_eq!(fps_text(25_000), "25");
    }

    fn timeline(secs: i64, live: bool) -> Timeline {
        let cfg = TimelineConfig {
            target_ms: 2000,
            window: if live {
                Window::Segments(3)
            } else {
                Window::Unbounded
            },
            ..Default::default()
        };
        let mut tl = Timeline::new(cfg, &[h264(1, &[1, 0x64, 0, 0x1f], 640, 360), aac(2)]);
        let (mut v, mut a) = (0i64, 0i64);
        while v * 40 < secs * 1000 {
            if v * 40 <= a * 1024 / 44 {
                tl.push(
                    1,
                    v * 40,
                    v % 25 == 0,
                    if v % 25 == 0 { 20_000 } else { 2_000 },
                );
                v += 1;
            } else {
                tl.push(2, a * 1024 / 44, true, 400);
                a += 1;
            }
        }
        if !live {
            tl.finish();
        }
        tl
    }

    #[test]
    fn master_muxed_and_renditions() {
        let tracks = vec![h264(1, &[1, 0x64, 0, 0x1f], 640, 360), aac(2)];
        let tl = timeline(10, false);
        let m = master_playlist(&tracks, &tl, &MasterOptions::ts());
        assert!(m.contains("CODECS=\"avc1.64001f,mp4a.40.2\""), "{m}");
        assert!(m.contains("RESOLUTION=640x360"));
        assert!(m.contains("\n1_2/index.m3u8\n"), "{m}");
        let Playlist::Master(p) = parse(m.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.variants.len(), 1);
        assert_eq!(p.variants[0].resolution, Some((640, 360)));
        assert_eq!(p.variants[0].frame_rate_milli, Some(25_000));
        assert!(p.variants[0].bandwidth >= p.variants[0].average_bandwidth.unwrap());
        // payload: per second 20000 + 24*2000 video bytes and ~43 * 400 audio bytes
        assert!(
            p.variants[0].bandwidth > (68_000 + 17_000) * 8,
            "{}",
            p.variants[0].bandwidth
        );

        let m = master_playlist(&tracks, &tl, &MasterOptions::cmaf());
        let Playlist::Master(p) = parse(m.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.renditions.len(), 1);
        assert_eq!(p.renditions[0].uri.as_deref(), Some("2/index.m3u8"));
        assert!(p.renditions[0].default);
        assert_eq!(p.variants[0].audio.as_deref(), Some("audio"));
        assert_eq!(p.variants[0].uri, "1/index.m3u8");

        // two audio tracks in TS HLS: the first muxed, the second a rendition of its own
        let mut two = tracks.clone();
        two.push(aac(3));
        let m = master_playlist(&two, &tl, &MasterOptions::ts());
        let Playlist::Master(p) = parse(m.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.renditions.len(), 2, "{m}");
        assert_eq!(p.renditions[0].uri, None);
        assert_eq!(p.renditions[1].uri.as_deref(), Some("3/index.m3u8"));
        assert_eq!(p.variants[0].uri, "1_2/index.m3u8");
        assert_eq!(p.variants[0].audio.as_deref(), Some("audio"));

        // audio only
        let m = master_playlist(&tracks[1..], &tl, &MasterOptions::cmaf());
        let Playlist::Master(p) = parse(m.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.variants.len(), 1);
        assert_eq!(p.variants[0].codecs.as_deref(), Some("mp4a.40.2"));
    }

    #[test]
    fn media_vod_and_live() {
        let tl = timeline(10, false);
        let mut o = MediaOptions::ts(&[1, 2]);
        o.playlist_type = Some(PlaylistType::Vod);
        o.segment_uri = "seg_{tracks}_{seq}.ts".into();
        let text = media_playlist(&tl, &o);
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        let Playlist::Media(p) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.target_duration, 2);
        assert_eq!(p.segments.len(), 5);
        assert_eq!(p.segments[4].uri, "seg_1_2_4.ts");
        assert_eq!(
            p.segments.iter().map(|s| s.duration_ms).sum::<i64>(),
            10_000
        );

        let tl = timeline(10, true);
        let mut o = MediaOptions::cmaf(&[1]);
        o.program_date_time = Some(1_700_000_000_000);
        let text = media_playlist(&tl, &o);
        assert!(!text.contains("ENDLIST"));
        let Playlist::Media(p) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.media_sequence, 1);
        assert_eq!(p.segments.len(), 3);
        assert_eq!(p.segments[0].seq, 1);
        assert_eq!(p.segments[0].uri, "1_2000.m4s");
        assert_eq!(p.segments[0].map.as_ref().unwrap().uri, "init.mp4");
        assert_eq!(
            p.segments[0].program_date_time.as_deref(),
            Some("2023-11-14T22:13:22.000Z")
        );
    }

    #[test]
    fn discontinuity_tags() {
        let cfg = TimelineConfig {
            target_ms: 1000,
            window: Window::Segments(3),
            ..Default::default()
        };
        let mut tl = Timeline::new(cfg, &[h264(1, &[1, 0x64, 0, 0x1f], 640, 360)]);
        for v in 0..100i64 {
            tl.push(1, v * 40, v % 25 == 0, 10);
        }
        for v in 0..40i64 {
            tl.push(1, v * 40, v % 25 == 0, 10);
        }
        let mut o = MediaOptions::ts(&[1]);
        o.program_date_time = Some(0);
        let text = media_playlist(&tl, &o);
        let Playlist::Media(p) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        let d: Vec<(u64, bool, i64)> = p
            .segments
            .iter()
            .map(|s| (s.seq, s.discontinuity, s.duration_ms))
            .collect();
        assert_eq!(
            d,
            vec![(2, false, 1000), (3, false, 1000), (4, true, 1000)],
            "{text}"
        );
        assert_eq!(
            p.segments[2].program_date_time.as_deref(),
            Some("1970-01-01T00:00:04.000Z")
        );
        assert_eq!(p.discontinuity_sequence, 0);
        for v in 40..200i64 {
            tl.push(1, v * 40, v % 25 == 0, 10);
        }
        let text = media_playlist(&tl, &o);
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    }

    #[test]
    fn low_latency_parts() {
        let cfg = TimelineConfig {
            target_ms: 2000,
            part_target_ms: Some(500),
            window: Window::Segments(4),
            ..Default::default()
        };
        let mut tl = Timeline::new(cfg, &[h264(1, &[1, 0x64, 0, 0x1f], 640, 360)]);
        for v in 0..130i64 {
            tl.push(1, v * 40, v % 25 == 0, 1000);
        }
        let mut o = MediaOptions::cmaf(&[1]);
        o.part_uri = Some("{seq}.{part}.m4s".into());
        let text = media_playlist(&tl, &o);
        assert!(
            text.contains("#EXT-X-PART-INF:PART-TARGET=0.520\n"),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-PART:DURATION=0.520,URI=\"0.0.m4s\",INDEPENDENT=YES\n"),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"2.2.m4s\""),
            "{text}"
        );
        let Playlist::Media(p) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.segments[0].parts.len(), 4);
        assert_eq!(p.part_target_ms, Some(520));
    }

    #[test]
    fn parser_rejects_junk() {
        let junk: [&[u8]; 7] = [
            b"",
            b"hello",
            b"#EXTM3U\nseg.ts\n",
            b"#EXTM3U\n#EXTINF:nan,\na.ts\n",
            b"#EXTM3U\n#EXTINF:-1,\na.ts\n",
            b"#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1\na.m3u8\n",
            &[b'#', b'E', 0xff],
        ];
        for j in junk {
            let r = parse(j);
            assert!(
                matches!(r, Err(MediaError::Malformed { what: "m3u8", .. })),
                "{:?}: {r:?}",
                String::from_utf8_lossy(j)
            );
        }
        let a = parse_attributes("A=1,B=\"x,y\",C,=3,D=\"unterminated");
        assert_eq!(a[0], ("A".into(), "1".into()));
        assert_eq!(a[1], ("B".into(), "x,y".into()));
        assert_eq!(a[2], ("C".into(), "".into()));
        assert_eq!(a.last().unwrap(), &("D".into(), "unterminated".into()));
    }
}
