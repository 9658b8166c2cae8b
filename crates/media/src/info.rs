//! The stream info JSON served as `/json_STREAM.js` and, wrapped in a JavaScript assignment, as
//! `/info_STREAM.js` (INTERFACES.md §6), shaped like MistServer's so its player script works.
//!
//! Track keys follow MistServer's track identifiers: `video_H264_640x360_25fps_1`,
//! `audio_AAC_2ch_48000hz_2`, `meta_JSON_3` (`_LANG` before the id when a language other than `und`
//! is set; the trailing number is our track id).
//!
//! `source` has one entry per protocol the caller enabled that can carry at least one of the
//! stream's tracks, sorted like MistServer sorts them (more simultaneous tracks first, then
//! priority, then total matching tracks, then URL).

use serde_json::{json, Map, Value};

use crate::frame::{Codec, Track, TrackKind};
use crate::hls::fps_text;

/// A protocol a player could use, as announced in `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// MPEG-TS HLS: `/hls/$/index.m3u8`.
    Hls,
    /// fMP4 HLS from the CMAF output: `/cmaf/$/index.m3u8`.
    CmafHls,
    /// DASH from the CMAF output: `/cmaf/$/index.mpd`.
    Dash,
    /// Progressive MP4: `/$.mp4`.
    Mp4,
    /// WebM: `/$.webm`.
    WebM,
    /// Matroska: `/$.mkv`.
    Mkv,
    /// HTTP-FLV: `/$.flv`.
    Flv,
    /// HTTP-TS: `/$.ts`.
    Ts,
    /// The MP3 audio alone: `/$.mp3`.
    Mp3,
    /// The AAC audio alone, ADTS: `/$.aac`.
    Aac,
    /// RTMP play: `rtmp://HOST:PORT/play/$`.
    Rtmp,
    /// WebRTC (WHEP-style signalling): `/webrtc/$`.
    WebRtc,
}

const H264_HEVC: &[Codec] = &[Codec::H264, Codec::Hevc];

impl Protocol {
    /// The `type` string MistServer's player looks for.
    pub fn mime(self) -> &'static str {
        match self {
            Protocol::Hls => "html5/application/vnd.apple.mpegurl",
            Protocol::CmafHls => "html5/application/vnd.apple.mpegurl;version=7",
            Protocol::Dash => "dash/video/mp4",
            Protocol::Mp4 => "html5/video/mp4",
            Protocol::WebM => "html5/video/webm",
            Protocol::Mkv => "html5/video/x-matroska",
            Protocol::Flv => "flash/7",
            Protocol::Ts => "html5/video/mpeg",
            Protocol::Mp3 => "html5/audio/mpeg",
            Protocol::Aac => "html5/audio/aac",
            Protocol::Rtmp => "flash/10",
            Protocol::WebRtc => "webrtc",
        }
    }

    /// Where the player script ranks this source (higher first).
    pub fn priority(self) -> u32 {
        match self {
            Protocol::Mp4 => 10,
            Protocol::Hls | Protocol::CmafHls | Protocol::WebM => 9,
            Protocol::Dash => 8,
            Protocol::Rtmp | Protocol::Mkv => 7,
            Protocol::Flv => 5,
            Protocol::WebRtc => 2,
            Protocol::Ts | Protocol::Mp3 | Protocol::Aac => 1,
        }
    }

    /// The path (after the base URL) for stream `name`, already percent-encoded.
    pub fn rel_url(self, name: &str) -> String {
        let n = url_encode(name);
        match self {
            Protocol::Hls => format!("/hls/{n}/index.m3u8"),
            Protocol::CmafHls => format!("/cmaf/{n}/index.m3u8"),
            Protocol::Dash => format!("/cmaf/{n}/index.mpd"),
            Protocol::Mp4 => format!("/{n}.mp4"),
            Protocol::WebM => format!("/{n}.webm"),
            Protocol::Mkv => format!("/{n}.mkv"),
            Protocol::Flv => format!("/{n}.flv"),
            Protocol::Ts => format!("/{n}.ts"),
            Protocol::Mp3 => format!("/{n}.mp3"),
            Protocol::Aac => format!("/{n}.aac"),
            Protocol::Rtmp => format!("/play/{n}"),
            Protocol::WebRtc => format!("/webrtc/{n}"),
        }
    }

    /// (video codecs, audio codecs) the protocol carries.
    pub fn codecs(self) -> (&'static [Codec], &'static [Codec]) {
        match self {
            Protocol::Hls => (H264_HEVC, &[Codec::Aac, Codec::Mp3, Codec::Ac3]),
            // The fMP4 muxer's codecs (the CMAF output selects tracks as progressive MP4 does).
            Protocol::CmafHls | Protocol::Dash => (
                &[Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp9],
                &[Codec::Aac, Codec::Opus, Codec::Ac3, Codec::Mp3],
            ),
            Protocol::Mp4 => (
                &[Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp9],
                &[Codec::Aac, Codec::Mp3, Codec::Ac3, Codec::Opus],
            ),
            Protocol::WebM => (&[Codec::Vp8, Codec::Vp9, Codec::Av1], &[Codec::Opus]),
            // No PCM: MistOutHTTP's Matroska muxer does not carry it.
            Protocol::Mkv => (
                &[Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp8, Codec::Vp9],
                &[Codec::Aac, Codec::Mp3, Codec::Ac3, Codec::Opus],
            ),
            Protocol::Flv | Protocol::Rtmp => (
                &[Codec::H264, Codec::Hevc, Codec::Av1],
                &[Codec::Aac, Codec::Mp3],
            ),
            Protocol::Ts => (
                H264_HEVC,
                &[Codec::Aac, Codec::Mp3, Codec::Ac3, Codec::Opus],
            ),
            Protocol::WebRtc => (&[Codec::H264, Codec::Vp8, Codec::Vp9], &[Codec::Opus]),
            Protocol::Mp3 => (&[], &[Codec::Mp3]),
            Protocol::Aac => (&[], &[Codec::Aac]),
        }
    }
}

/// Percent-encodes everything but unreserved characters (and `+`, which MistServer stream names use).
pub fn url_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// One enabled protocol and the base URL it is reachable at (`http://host:8080`, `rtmp://host:1935`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The protocol.
    pub protocol: Protocol,
    /// The base URL the protocol is reachable at.
    pub base_url: String,
}

/// A track and the media time range the stream has of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// The track.
    pub track: Track,
    /// Its first media time (ms).
    pub firstms: i64,
    /// Its last media time (ms).
    pub lastms: i64,
}

/// MistServer's identifier of a track (see the module documentation).
pub fn track_key(t: &Track) -> String {
    let mut k = format!("{}_{}_", t.kind().as_str(), t.codec.mist_name());
    match t.kind() {
        TrackKind::Video => {
            k.push_str(&format!("{}x{}_{}fps", t.width, t.height, fps_text(t.fpks)))
        }
        TrackKind::Audio => k.push_str(&format!("{}ch_{}hz", t.channels, t.rate)),
        TrackKind::Meta => {
            k.pop();
        }
    }
    if !t.lang.is_empty() && t.lang != "und" {
        k.push('_');
        k.push_str(&t.lang);
    }
    k.push_str(&format!("_{}", t.id));
    k
}

fn track_json(idx: usize, ti: &TrackInfo) -> Value {
    let t = &ti.track;
    let mut m = Map::new();
    m.insert("type".into(), json!(t.kind().as_str()));
    m.insert("codec".into(), json!(t.codec.mist_name()));
    match t.kind() {
        TrackKind::Video => {
            m.insert("width".into(), json!(t.width));
            m.insert("height".into(), json!(t.height));
            m.insert("fpks".into(), json!(t.fpks));
        }
        TrackKind::Audio => {
            m.insert("rate".into(), json!(t.rate));
            m.insert("channels".into(), json!(t.channels));
            m.insert("size".into(), json!(t.sample_size));
        }
        TrackKind::Meta => {}
    }
    // Not in MistServer's JSON: the RFC 6381 string from the init data, for players'
    // canPlayType checks (our /player.js).
    if let Some(c) = crate::hls::codec_string(t) {
        m.insert("codecstring".into(), json!(c));
    }
    m.insert("bps".into(), json!(t.bps));
    m.insert("firstms".into(), json!(ti.firstms));
    m.insert("lastms".into(), json!(ti.lastms));
    if !t.lang.is_empty() {
        m.insert("lang".into(), json!(t.lang));
    }
    m.insert("idx".into(), json!(idx));
    m.insert("trackid".into(), json!(t.id));
    Value::Object(m)
}

/// The `tracks` object of MistServer's stream metadata, `{track_key: {...}}` (also the
/// LIVE_TRACK_LIST trigger's payload).
pub fn tracks_object(tracks: &[TrackInfo]) -> Value {
    Value::Object(
        tracks
            .iter()
            .enumerate()
            .map(|(i, ti)| (track_key(&ti.track), track_json(i, ti)))
            .collect(),
    )
}

/// `(simul_tracks, total_matches)` of a protocol for these tracks.
pub fn matches(p: Protocol, tracks: &[TrackInfo]) -> (u32, u32) {
    let (vc, ac) = p.codecs();
    let v = tracks
        .iter()
        .filter(|t| vc.contains(&t.track.codec))
        .count() as u32;
    let a = tracks
        .iter()
        .filter(|t| ac.contains(&t.track.codec))
        .count() as u32;
    ((v > 0) as u32 + (a > 0) as u32, v + a)
}

/// The stream info of an available stream.
pub fn stream_info(name: &str, live: bool, tracks: &[TrackInfo], sources: &[Source]) -> Value {
    let mut tmap = Map::new();
    for (i, t) in tracks.iter().enumerate() {
        tmap.insert(track_key(&t.track), track_json(i, t));
    }
    let main = tracks.iter().find(|t| t.track.kind() == TrackKind::Video);
    let mut meta = Map::new();
    meta.insert("tracks".into(), Value::Object(tmap));
    if live {
        meta.insert("live".into(), json!(1));
    }
    let mut list: Vec<(u32, u32, u32, String, Value)> = Vec::new();
    for s in sources {
        let (simul, total) = matches(s.protocol, tracks);
        if simul == 0 {
            continue;
        }
        let rel = s.protocol.rel_url(name);
        let url = format!("{}{}", s.base_url.trim_end_matches('/'), rel);
        let v = json!({
            "url": url,
            "relurl": rel,
            "type": s.protocol.mime(),
            "priority": s.protocol.priority(),
            "simul_tracks": simul,
            "total_matches": total,
        });
        list.push((simul, s.protocol.priority(), total, url, v));
    }
    list.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.cmp(&a.2))
            .then(a.3.cmp(&b.3))
    });
    list.dedup_by(|a, b| a.3 == b.3 && a.4["type"] == b.4["type"]);
    json!({
        "type": if live { "live" } else { "vod" },
        "width": main.map_or(0, |t| t.track.width),
        "height": main.map_or(0, |t| t.track.height),
        "meta": Value::Object(meta),
        "source": list.into_iter().map(|e| e.4).collect::<Vec<_>>(),
    })
}

/// The answer for a stream that is not available.
pub fn offline_info(message: &str) -> Value {
    json!({ "error": message })
}

/// The `/info_STREAM.js` body: MistServer's exact wrapper around the JSON.
pub fn info_js(name: &str, info: &Value) -> String {
    // The name sits in a single-quoted JS string: escape what could end it.
    let mut n = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '\'' | '\\' => {
                n.push('\\');
                n.push(c);
            }
            '<' => n.push_str("\\x3c"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                n.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => n.push(c),
        }
    }
    let body = info.to_string().replace('<', "\\u003c");
    format!("if (!mistvideo){{var mistvideo = {{}};}}\nmistvideo['{n}'] = {body};\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracks() -> Vec<TrackInfo> {
        let mut v = Track::new(1, Codec::H264);
        v.width = 640;
        v.height = 360;
        v.fpks = 25_000;
        v.bps = 100_000;
        v.init = bytes::Bytes::from_static(&[1, 0x64, 0x00, 0x1f]);
        let mut a = Track::new(2, Codec::Aac);
        a.rate = 48000;
        a.channels = 2;
        a.sample_size = 16;
        a.lang = "eng".into();
        let m = Track::new(3, Codec::Meta);
        vec![
            TrackInfo {
                track: v,
                firstms: 0,
                lastms: 9960,
            },
            TrackInfo {
                track: a,
                firstms: 0,
                lastms: 9980,
            },
            TrackInfo {
                track: m,
                firstms: 0,
                lastms: 0,
            },
        ]
    }

    #[test]
    fn keys() {
        let t = tracks();
        assert_eq!(track_key(&t[0].track), "video_H264_640x360_25fps_1");
        assert_eq!(track_key(&t[1].track), "audio_AAC_2ch_48000hz_eng_2");
        assert_eq!(track_key(&t[2].track), "meta_JSON_3");
        let mut v = t[0].track.clone();
        v.fpks = 29_970;
        assert_eq!(track_key(&v), "video_H264_640x360_29.97fps_1");
    }

    #[test]
    fn info_json() {
        let srcs = [
            Source {
                protocol: Protocol::Ts,
                base_url: "http://h:8080/".into(),
            },
            Source {
                protocol: Protocol::Hls,
                base_url: "http://h:8080".into(),
            },
            Source {
                protocol: Protocol::WebM,
                base_url: "http://h:8080".into(),
            },
            Source {
                protocol: Protocol::Rtmp,
                base_url: "rtmp://h:1935".into(),
            },
            Source {
                protocol: Protocol::Mp4,
                base_url: "http://h:8080".into(),
            },
            Source {
                protocol: Protocol::Dash,
                base_url: "http://h:8080".into(),
            },
        ];
        let v = stream_info("live+a b", true, &tracks(), &srcs);
        assert_eq!(v["type"], "live");
        assert_eq!(v["width"], 640);
        let tr = &v["meta"]["tracks"]["video_H264_640x360_25fps_1"];
        assert_eq!(tr["fpks"], 25000);
        assert_eq!(tr["bps"], 100000);
        assert_eq!(tr["idx"], 0);
        assert_eq!(tr["codecstring"], "avc1.64001f");
        let au = &v["meta"]["tracks"]["audio_AAC_2ch_48000hz_eng_2"];
        assert_eq!(au["lang"], "eng");
        assert_eq!(au["trackid"], 2);
        let src = v["source"].as_array().unwrap();
        // WebM carries neither H264 nor AAC here.
        let types: Vec<&str> = src.iter().map(|s| s["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "html5/video/mp4",
                "html5/application/vnd.apple.mpegurl",
                "dash/video/mp4",
                "flash/10",
                "html5/video/mpeg"
            ]
        );
        assert_eq!(src[1]["url"], "http://h:8080/hls/live+a%20b/index.m3u8");
        assert_eq!(src[1]["relurl"], "/hls/live+a%20b/index.m3u8");
        assert_eq!(src[3]["url"], "rtmp://h:1935/play/live+a%20b");
        assert_eq!(src[0]["simul_tracks"], 2);
        assert_eq!(src[0]["total_matches"], 2);
    }

    #[test]
    fn js_wrapper_and_offline() {
        let v = offline_info("Stream is offline");
        assert_eq!(v.to_string(), r#"{"error":"Stream is offline"}"#);
        let js = info_js("a'b", &v);
        assert_eq!(
            js,
            "if (!mistvideo){var mistvideo = {};}\nmistvideo['a\\'b'] = {\"error\":\"Stream is offline\"};\n"
        );
        let js = info_js("x", &json!({"error": "</script>"}));
        assert!(!js.contains("</script>"));
    }
}
