//! SDP (RFC 8866) as RTSP uses it: parse a session description into media sections and tracks,
//! and write one for a set of tracks.
//!
//! Codecs: H.264 (RFC 6184 `sprop-parameter-sets`, `profile-level-id`), HEVC (RFC 7798
//! `sprop-vps/sps/pps`), AAC (RFC 3640 `mpeg4-generic` AAC-hbr, and RFC 6416 `MP4A-LATM`), Opus
//! (RFC 7587), MP3 (`MPA`, RFC 2250/3551), G.711 (`PCMA`, `PCMU`).

use crate::aac::AudioSpecificConfig;
use crate::h264::{AvcC, Sps};
use crate::hevc::Hvcc;
use crate::opus::OpusHead;
use crate::rtsp::auth::{base64_decode, base64_encode};
use crate::{Codec, MediaError, Track};
use bytes::Bytes;
use std::fmt::Write as _;

/// Most media sections read from one description.
pub const MAX_MEDIA: usize = 32;
/// Most attributes kept per section.
const MAX_ATTRS: usize = 64;
/// Largest description parsed.
pub const MAX_SDP: usize = 64 * 1024;

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// `o=` as written: kept so an answer or a re-announce can name the same origin.
    pub origin: Option<String>,
    /// `s=`: the session name, as the sender wrote it (for logs).
    pub name: String,
    /// Session-level `c=`; a media section without its own inherits it.
    pub connection: Option<String>,
    /// Session-level `a=control`.
    pub control: Option<String>,
    /// Session-level `a=range`.
    pub range: Option<String>,
    /// The `m=` sections, in order: a track's index is its position here (SETUP refers to it).
    pub media: Vec<MediaDescription>,
}

/// An `a=rtpmap:` entry: (payload type, encoding name, clock rate, channels).
pub type RtpMap = (u8, String, u32, Option<u32>);

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaDescription {
    /// `video`, `audio`, `application` …
    pub media: String,
    /// The `m=` port; 0 for RTSP (the transport is negotiated in SETUP, not here).
    pub port: u16,
    /// `RTP/AVP`, `RTP/AVPF` …, as written (not checked).
    pub proto: String,
    /// Payload types listed on the `m=` line.
    pub formats: Vec<u8>,
    /// Section-level `c=`, overriding the session's.
    pub connection: Option<String>,
    /// `b=AS:` in kbit/s.
    pub bandwidth_kbps: Option<u32>,
    /// `a=control`: the URL (or the part relative to the base) SETUP uses for this track.
    pub control: Option<String>,
    /// `a=rtpmap:` entries: (payload type, encoding name, clock rate, channels).
    pub rtpmap: Vec<RtpMap>,
    /// `a=fmtp:` entries: (payload type, parameters as written).
    pub fmtp: Vec<(u8, String)>,
    /// Other attributes (name, value).
    pub attributes: Vec<(String, Option<String>)>,
}

/// How a track's frames travel in RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpEncoding {
    /// RFC 6184: single NAL units, STAP-A and FU-A.
    H264,
    /// RFC 7798: single NAL units, AP and FU.
    Hevc,
    /// RFC 3640 with AU headers of `size_length`/`index_length`/`index_delta_length` bits.
    AacGeneric {
        /// Bits of the AU size in each AU header (13 for AAC-hbr).
        size_length: u8,
        /// Bits of the AU index of the first AU header (3 for AAC-hbr).
        index_length: u8,
        /// Bits of the index delta of the following AU headers (3 for AAC-hbr).
        index_delta_length: u8,
    },
    /// RFC 6416 with `cpresent=0` (config out of band).
    AacLatm,
    /// RFC 7587: one Opus packet per RTP packet, always a 48 kHz clock.
    Opus,
    /// RFC 2250 MPEG audio (payload type 14, 90 kHz).
    Mpa,
    /// G.711 A-law (static payload type 8, 8 kHz).
    Pcma,
    /// G.711 µ-law (static payload type 0, 8 kHz).
    Pcmu,
}

/// A media section understood as a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpTrack {
    /// The payload type its packets carry.
    pub payload_type: u8,
    /// The RTP clock (Hz): timestamps are in these units, not the track's.
    pub clock_rate: u32,
    /// How its frames are split into packets.
    pub encoding: RtpEncoding,
    /// `a=control` of the section, for SETUP.
    pub control: Option<String>,
    /// The track as the rest of mist-rs sees it (codec, init data, dimensions or rate).
    pub track: Track,
}

fn bad(detail: impl Into<String>) -> MediaError {
    MediaError::malformed("SDP", detail)
}

impl SessionDescription {
    /// Parses a description (at most [`MAX_SDP`] bytes, [`MAX_MEDIA`] sections): a malformed line
    /// is an error, a section attribute not parsed here is kept in
    /// [`MediaDescription::attributes`].
    pub fn parse(data: &[u8]) -> Result<SessionDescription, MediaError> {
        if data.len() > MAX_SDP {
            return Err(MediaError::TooLarge {
                what: "SDP",
                size: data.len() as u64,
                limit: MAX_SDP as u64,
            });
        }
        let text = std::str::from_utf8(data).map_err(|_| bad("not UTF-8"))?;
        let mut s = SessionDescription::default();
        let mut saw_v = false;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(bad(format!("line without '=': {:?}", trunc(line))));
            };
            if k.len() != 1 {
                return Err(bad(format!("bad line {:?}", trunc(line))));
            }
            match (k, s.media.last_mut()) {
                ("v", _) => saw_v = true,
                ("m", _) => {
                    if s.media.len() >= MAX_MEDIA {
                        return Err(MediaError::TooLarge {
                            what: "SDP media sections",
                            size: s.media.len() as u64 + 1,
                            limit: MAX_MEDIA as u64,
                        });
                    }
                    s.media.push(parse_m(v)?);
                }
                ("o", None) => s.origin = Some(v.to_string()),
                ("s", None) => s.name = v.to_string(),
                ("c", None) => s.connection = Some(v.to_string()),
                ("c", Some(m)) => m.connection = Some(v.to_string()),
                ("b", Some(m)) => {
                    if let Some(kb) = v.strip_prefix("AS:") {
                        m.bandwidth_kbps = kb.trim().parse().ok();
                    }
                }
                ("a", None) => {
                    let (n, val) = attr(v);
                    match n {
                        "control" => s.control = val.map(str::to_string),
                        "range" => s.range = val.map(str::to_string),
                        _ => {}
                    }
                }
                ("a", Some(m)) => {
                    let (n, val) = attr(v);
                    match (n, val) {
                        ("control", Some(c)) => m.control = Some(c.to_string()),
                        ("rtpmap", Some(r)) => {
                            if m.rtpmap.len() < MAX_ATTRS {
                                if let Some(e) = parse_rtpmap(r) {
                                    m.rtpmap.push(e);
                                }
                            }
                        }
                        ("fmtp", Some(f)) => {
                            let (pt, p) = f.split_once(' ').unwrap_or((f, ""));
                            if let Ok(pt) = pt.trim().parse::<u8>() {
                                if m.fmtp.len() < MAX_ATTRS {
                                    m.fmtp.push((pt, p.trim().to_string()));
                                }
                            }
                        }
                        _ => {
                            if m.attributes.len() < MAX_ATTRS {
                                m.attributes.push((n.to_string(), val.map(str::to_string)));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !saw_v {
            return Err(bad("no v= line"));
        }
        Ok(s)
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(64).collect()
}

fn attr(v: &str) -> (&str, Option<&str>) {
    match v.split_once(':') {
        Some((n, val)) => (n.trim(), Some(val.trim())),
        None => (v.trim(), None),
    }
}

fn parse_m(v: &str) -> Result<MediaDescription, MediaError> {
    let mut it = v.split_whitespace();
    let media = it.next().ok_or_else(|| bad("empty m="))?.to_string();
    let port = it
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| bad("bad m= port"))?;
    let proto = it
        .next()
        .ok_or_else(|| bad("m= without proto"))?
        .to_string();
    let formats = it.take(MAX_ATTRS).filter_map(|f| f.parse().ok()).collect();
    Ok(MediaDescription {
        media,
        port,
        proto,
        formats,
        ..MediaDescription::default()
    })
}

fn parse_rtpmap(r: &str) -> Option<RtpMap> {
    let (pt, rest) = r.split_once(' ')?;
    let pt = pt.trim().parse().ok()?;
    let mut p = rest.trim().split('/');
    let enc = p.next()?.to_string();
    let rate = p.next()?.trim().parse().ok()?;
    let ch = p.next().and_then(|c| c.trim().parse().ok());
    Some((pt, enc, rate, ch))
}

/// The `key=value` parameters of an fmtp line (keys lower-cased).
pub fn fmtp_params(f: &str) -> Vec<(String, String)> {
    f.split(';')
        .filter_map(|p| {
            let p = p.trim();
            if p.is_empty() {
                return None;
            }
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .take(MAX_ATTRS)
        .collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hex(b: &[u8]) -> String {
    let mut s = String::new();
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

impl MediaDescription {
    /// The first payload type of the section and its rtpmap/fmtp.
    fn first_format(&self) -> Option<(u8, Option<&RtpMap>, Option<&str>)> {
        let pt = *self.formats.first()?;
        let map = self.rtpmap.iter().find(|e| e.0 == pt);
        let fmtp = self.fmtp.iter().find(|e| e.0 == pt).map(|e| e.1.as_str());
        Some((pt, map, fmtp))
    }

    /// Interprets the section's first payload format as a track with id `id`.
    pub fn rtp_track(&self, id: u32) -> Result<RtpTrack, MediaError> {
        let (pt, map, fmtp) = self
            .first_format()
            .ok_or_else(|| bad("m= without formats"))?;
        let params = fmtp.map(fmtp_params).unwrap_or_default();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let (name, rate, channels) = match (map, pt) {
            (Some((_, n, r, c)), _) => (n.to_ascii_uppercase(), *r, *c),
            (None, 0) => ("PCMU".into(), 8000, Some(1)),
            (None, 8) => ("PCMA".into(), 8000, Some(1)),
            (None, 14) => ("MPA".into(), 90000, None),
            (None, pt) => return Err(MediaError::unsupported("SDP payload type", pt.to_string())),
        };
        if rate == 0 {
            return Err(bad("clock rate 0"));
        }
        let (encoding, mut track) = match name.as_str() {
            "H264" => {
                let mut t = Track::new(id, Codec::H264);
                if let Some(sets) = get("sprop-parameter-sets") {
                    let mut sps = Vec::new();
                    let mut pps = Vec::new();
                    for s in sets.split(',').take(16) {
                        let nal = base64_decode(s.trim())
                            .ok_or_else(|| bad("bad sprop-parameter-sets"))?;
                        match nal.first().map(|b| b & 0x1f) {
                            Some(7) => sps.push(nal),
                            Some(8) => pps.push(nal),
                            _ => {}
                        }
                    }
                    if !sps.is_empty() && !pps.is_empty() {
                        let sps_r: Vec<&[u8]> = sps.iter().map(|v| v.as_slice()).collect();
                        let pps_r: Vec<&[u8]> = pps.iter().map(|v| v.as_slice()).collect();
                        let avcc = AvcC::from_parameter_sets(&sps_r, &pps_r)?;
                        if let Ok(s) = Sps::parse(&sps[0]) {
                            t.width = s.width;
                            t.height = s.height;
                            t.fpks = s.fpks();
                        }
                        t.init = Bytes::from(avcc.build()?);
                    }
                }
                if let Some(m) = get("packetization-mode") {
                    if m != "0" && m != "1" {
                        return Err(MediaError::unsupported(
                            "H.264 packetization-mode",
                            m.to_string(),
                        ));
                    }
                }
                (RtpEncoding::H264, t)
            }
            "H265" => {
                let mut t = Track::new(id, Codec::Hevc);
                let sets = |k: &str| -> Result<Vec<Vec<u8>>, MediaError> {
                    get(k)
                        .map(|v| {
                            v.split(',')
                                .take(16)
                                .map(|s| {
                                    base64_decode(s.trim()).ok_or_else(|| bad(format!("bad {k}")))
                                })
                                .collect()
                        })
                        .unwrap_or(Ok(Vec::new()))
                };
                let (vps, sps, pps) = (sets("sprop-vps")?, sets("sprop-sps")?, sets("sprop-pps")?);
                if !vps.is_empty() && !sps.is_empty() && !pps.is_empty() {
                    fn r(v: &[Vec<u8>]) -> Vec<&[u8]> {
                        v.iter().map(|x| x.as_slice()).collect()
                    }
                    let h = Hvcc::from_parameter_sets(&r(&vps), &r(&sps), &r(&pps))?;
                    if let Ok(s) = crate::hevc::parse_sps(&sps[0]) {
                        t.width = s.width;
                        t.height = s.height;
                    }
                    t.init = h.to_bytes();
                }
                (RtpEncoding::Hevc, t)
            }
            "MPEG4-GENERIC" => {
                let mode = get("mode").unwrap_or("");
                if !mode.eq_ignore_ascii_case("AAC-hbr") && !mode.eq_ignore_ascii_case("AAC-lbr") {
                    return Err(MediaError::unsupported(
                        "mpeg4-generic mode",
                        mode.to_string(),
                    ));
                }
                let num = |k: &str, d: u8| -> Result<u8, MediaError> {
                    match get(k) {
                        None => Ok(d),
                        Some(v) => v
                            .parse()
                            .ok()
                            .filter(|n: &u8| *n <= 16)
                            .ok_or_else(|| bad(format!("bad {k}"))),
                    }
                };
                let size_length = num("sizelength", 0)?;
                if size_length == 0 {
                    return Err(MediaError::unsupported("mpeg4-generic", "no sizelength"));
                }
                let config = get("config")
                    .and_then(hex_decode)
                    .ok_or_else(|| bad("AAC without config"))?;
                let asc = AudioSpecificConfig::parse(&config)?;
                let mut t = Track::new(id, Codec::Aac);
                t.rate = asc.output_rate();
                t.channels = asc.channels();
                t.sample_size = 16;
                t.init = Bytes::from(config);
                (
                    RtpEncoding::AacGeneric {
                        size_length,
                        index_length: num("indexlength", 0)?,
                        index_delta_length: num("indexdeltalength", 0)?,
                    },
                    t,
                )
            }
            "MP4A-LATM" => {
                if get("cpresent").unwrap_or("1") != "0" {
                    return Err(MediaError::unsupported(
                        "MP4A-LATM",
                        "in-band config (cpresent=1)",
                    ));
                }
                let smc = get("config")
                    .and_then(hex_decode)
                    .ok_or_else(|| bad("LATM without config"))?;
                let asc_bytes = latm_asc(&smc)?;
                let asc = AudioSpecificConfig::parse(&asc_bytes)?;
                let mut t = Track::new(id, Codec::Aac);
                t.rate = asc.output_rate();
                t.channels = asc.channels();
                t.sample_size = 16;
                t.init = Bytes::from(AudioSpecificConfig::build(
                    asc.object_type,
                    asc.rate,
                    asc.channel_config as u32,
                )?);
                (RtpEncoding::AacLatm, t)
            }
            "OPUS" => {
                let stereo = get("sprop-stereo") == Some("1")
                    || channels == Some(2) && get("sprop-stereo").is_none();
                let ch = if stereo { 2 } else { 1 };
                let mut t = Track::new(id, Codec::Opus);
                t.rate = 48000;
                t.channels = ch;
                t.init = Bytes::from(OpusHead::for_channels(ch as u8)?.to_bytes());
                (RtpEncoding::Opus, t)
            }
            "MPA" => (RtpEncoding::Mpa, Track::new(id, Codec::Mp3)),
            "PCMA" | "PCMU" => {
                let (e, c) = if name == "PCMA" {
                    (RtpEncoding::Pcma, Codec::Alaw)
                } else {
                    (RtpEncoding::Pcmu, Codec::Ulaw)
                };
                let mut t = Track::new(id, c);
                t.rate = rate;
                t.channels = channels.unwrap_or(1).clamp(1, 8);
                t.sample_size = 8;
                (e, t)
            }
            other => return Err(MediaError::unsupported("RTP encoding", trunc(other))),
        };
        track.timescale = rate;
        if let Some(kb) = self.bandwidth_kbps {
            track.bps = kb.saturating_mul(125);
        }
        Ok(RtpTrack {
            payload_type: pt,
            clock_rate: rate,
            encoding,
            control: self.control.clone(),
            track,
        })
    }
}

/// The AudioSpecificConfig inside a LATM StreamMuxConfig (audioMuxVersion 0).
fn latm_asc(smc: &[u8]) -> Result<Vec<u8>, MediaError> {
    let mut r = crate::h264::BitReader::new(smc);
    let e = |_| bad("LATM config truncated");
    if r.read_bits(1).map_err(e)? != 0 {
        return Err(MediaError::unsupported("LATM", "audioMuxVersion 1"));
    }
    // allStreamsSameTimeFraming(1) numSubFrames(6) numProgram(4) numLayer(3)
    r.skip_bits(14).map_err(e)?;
    let mut out = Vec::new();
    while r.bits_left() >= 8 {
        out.push(r.read_bits(8).map_err(e)? as u8);
    }
    if out.len() < 2 {
        return Err(bad("LATM config truncated"));
    }
    Ok(out)
}

/// The `m=` section (with its `a=` lines) of `track` as payload type `pt` (ignored for G.711 and
/// MP3, which have static types), with `a=control:{control}`.
pub fn media_section(track: &Track, pt: u8, control: &str) -> Result<String, MediaError> {
    let mut s = String::new();
    let kind = match track.kind() {
        crate::TrackKind::Video => "video",
        crate::TrackKind::Audio => "audio",
        crate::TrackKind::Meta => return Err(MediaError::unsupported("RTP track", "metadata")),
    };
    let pt = match track.codec {
        Codec::Ulaw => 0,
        Codec::Alaw => 8,
        Codec::Mp3 => 14,
        _ => pt,
    };
    let _ = write!(s, "m={kind} 0 RTP/AVP {pt}\r\nc=IN IP4 0.0.0.0\r\n");
    if track.bps > 0 {
        let _ = write!(s, "b=AS:{}\r\n", track.bps.div_ceil(125));
    }
    match track.codec {
        Codec::H264 => {
            let _ = write!(s, "a=rtpmap:{pt} H264/90000\r\n");
            let mut f = format!("a=fmtp:{pt} packetization-mode=1");
            if let Ok(a) = AvcC::parse(&track.init) {
                if let Some(sps) = a.sps.first() {
                    if sps.len() >= 4 {
                        let _ = write!(
                            f,
                            ";profile-level-id={}",
                            hex(&sps[1..4]).to_ascii_uppercase()
                        );
                    }
                }
                let sets: Vec<String> = a
                    .sps
                    .iter()
                    .chain(a.pps.iter())
                    .map(|n| base64_encode(n))
                    .collect();
                if !sets.is_empty() {
                    let _ = write!(f, ";sprop-parameter-sets={}", sets.join(","));
                }
            }
            let _ = write!(s, "{f}\r\n");
        }
        Codec::Hevc => {
            let _ = write!(s, "a=rtpmap:{pt} H265/90000\r\n");
            if let Ok(h) = Hvcc::parse(&track.init) {
                let j = |v: &[Bytes]| {
                    v.iter()
                        .map(|n| base64_encode(n))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let _ = write!(
                    s,
                    "a=fmtp:{pt} sprop-vps={}; sprop-sps={}; sprop-pps={}\r\n",
                    j(&h.vps),
                    j(&h.sps),
                    j(&h.pps)
                );
            }
        }
        Codec::Aac => {
            let asc = AudioSpecificConfig::parse(&track.init)?;
            let _ = write!(
                s,
                "a=rtpmap:{pt} MPEG4-GENERIC/{}/{}\r\na=fmtp:{pt} profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={}\r\n",
                asc.rate,
                asc.channels().max(1),
                hex(&track.init)
            );
        }
        Codec::Opus => {
            let _ = write!(s, "a=rtpmap:{pt} opus/48000/2\r\n");
            if track.channels == 2 {
                let _ = write!(s, "a=fmtp:{pt} sprop-stereo=1\r\n");
            }
        }
        Codec::Mp3 => {
            let _ = write!(s, "a=rtpmap:14 MPA/90000\r\n");
        }
        Codec::Alaw | Codec::Ulaw => {
            let name = if track.codec == Codec::Alaw {
                "PCMA"
            } else {
                "PCMU"
            };
            let _ = write!(
                s,
                "a=rtpmap:{pt} {name}/{}/{}\r\n",
                track.rate.max(8000),
                track.channels.max(1)
            );
        }
        c => return Err(MediaError::unsupported("RTP codec", c.mist_name())),
    }
    let _ = write!(s, "a=control:{control}\r\n");
    Ok(s)
}

/// A whole description for `tracks` (payload types 96, 97 … in order; unsupported tracks left
/// out); each section's control is `trackID={track id}`.
pub fn session_for_tracks(tracks: &[Track], name: &str, origin_addr: &str) -> String {
    let clean = |v: &str| v.chars().filter(|c| !c.is_control()).collect::<String>();
    let mut s = format!(
        "v=0\r\no=- 0 0 IN IP4 {}\r\ns={}\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=tool:mist-rs\r\na=control:*\r\n",
        clean(origin_addr),
        clean(if name.is_empty() { "mist-rs" } else { name })
    );
    for (i, t) in tracks.iter().enumerate() {
        let pt = 96 + (i as u8 % 32);
        if let Ok(m) = media_section(t, pt, &format!("trackID={}", t.id)) {
            s.push_str(&m);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // As ffmpeg 6 writes it for `-f rtsp` of an H.264 + AAC file.
    const FFMPEG: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Big Buck Bunny\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 60.16.100\r\nm=video 0 RTP/AVP 96\r\nb=AS:200\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwMg8UKZYA==,aOvjyyLA; profile-level-id=64000D\r\na=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=121056E500\r\na=control:streamid=1\r\nm=audio 0 RTP/AVP 98\r\na=rtpmap:98 MP4A-LATM/44100/2\r\na=fmtp:98 profile-level-id=1;cpresent=0;object=2;config=400024203fc0\r\nm=audio 0 RTP/AVP 8\r\nm=audio 0 RTP/AVP 14\r\n";

    #[test]
    fn ffmpeg_description() {
        let s = SessionDescription::parse(FFMPEG.as_bytes()).unwrap();
        assert_eq!(s.media.len(), 5);
        let v = s.media[0].rtp_track(1).unwrap();
        assert_eq!(v.encoding, RtpEncoding::H264);
        assert_eq!(v.control.as_deref(), Some("streamid=0"));
        assert_eq!((v.track.width, v.track.height), (320, 240));
        assert_eq!(v.track.bps, 25000);
        let a = s.media[1].rtp_track(2).unwrap();
        assert_eq!(
            a.encoding,
            RtpEncoding::AacGeneric {
                size_length: 13,
                index_length: 3,
                index_delta_length: 3
            }
        );
        assert_eq!(
            (a.track.rate, a.track.channels, a.clock_rate),
            (44100, 2, 44100)
        );
        let l = s.media[2].rtp_track(3).unwrap();
        assert_eq!(l.encoding, RtpEncoding::AacLatm);
        assert_eq!((l.track.rate, l.track.channels), (44100, 2));
        assert_eq!(&l.track.init[..], &[0x12, 0x10]);
        assert_eq!(s.media[3].rtp_track(4).unwrap().track.codec, Codec::Alaw);
        assert_eq!(s.media[4].rtp_track(5).unwrap().clock_rate, 90000);
        // What we write for those tracks reads back as the same tracks.
        let tracks = vec![v.track.clone(), a.track.clone()];
        let ours = session_for_tracks(&tracks, "x", "127.0.0.1");
        let back = SessionDescription::parse(ours.as_bytes()).unwrap();
        let v2 = back.media[0].rtp_track(1).unwrap();
        assert_eq!(v2.track.init, v.track.init);
        assert!(ours.contains("profile-level-id=64000D"), "{ours}");
        assert_eq!(back.media[1].rtp_track(2).unwrap().track.init, a.track.init);
    }

    #[test]
    fn hostile_descriptions() {
        assert!(SessionDescription::parse(b"garbage").is_err());
        assert!(SessionDescription::parse(&[0xff, 0xfe]).is_err());
        let many = "v=0\r\n".to_string() + &"m=audio 0 RTP/AVP 0\r\n".repeat(100);
        assert!(SessionDescription::parse(many.as_bytes()).is_err());
        let s = SessionDescription::parse(b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/0\r\n")
            .unwrap();
        assert!(s.media[0].rtp_track(1).is_err());
        let s = SessionDescription::parse(b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets=!!!\r\n").unwrap();
        assert!(s.media[0].rtp_track(1).is_err());
        let s = SessionDescription::parse(b"v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\na=fmtp:97 mode=AAC-hbr;sizelength=99;config=1190\r\n").unwrap();
        assert!(s.media[0].rtp_track(1).is_err());
    }
}
