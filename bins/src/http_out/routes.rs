//! URL → route (INTERFACES.md §6), static bodies and the stream info JSON.

use super::mux::Format;
use super::Enabled;
use bytes::Bytes;
use mist_net::http::Request;
use mist_net::server::{ConnId, Io};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub enum Route {
    /// A complete static answer.
    Static(u16, &'static str, Bytes),
    /// An error answer.
    Error(u16, String),
    /// `/.well-known/acme-challenge/TOKEN`.
    Acme(String),
    /// `/json_$.js` (js = false) or `/info_$.js` (js = true).
    Info { stream: String, js: bool },
    /// `/$.ts`, `/$.flv`, `/$.mp4`, `/$.fmp4`, `/$.mkv`, `/$.webm`.
    Progressive { stream: String, format: Format, video: Option<String>, audio: Option<String> },
    /// `/hls/$/…` and `/cmaf/$/…`: playlists and segments (see [`segmented`]).
    Segmented { stream: String, kind: &'static str, rest: String },
}

pub const CROSSDOMAIN: &str = "<?xml version=\"1.0\"?><!DOCTYPE cross-domain-policy SYSTEM \"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd\"><cross-domain-policy><allow-access-from domain=\"*\" /><site-control permitted-cross-domain-policies=\"all\"/></cross-domain-policy>";
pub const CLIENTACCESS: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><access-policy><cross-domain-access><policy><allow-from http-methods=\"*\" http-request-headers=\"*\"><domain uri=\"*\"/></allow-from><grant-to><resource path=\"/\" include-subpaths=\"true\"/></grant-to></policy></cross-domain-access></access-policy>";

/// Maps a request to its route.
pub fn route(req: &Request, enabled: &Enabled) -> Route {
    let path = req.path.as_str();
    match path {
        "/crossdomain.xml" => return Route::Static(200, "text/xml", Bytes::from_static(CROSSDOMAIN.as_bytes())),
        "/clientaccesspolicy.xml" => return Route::Static(200, "text/xml", Bytes::from_static(CLIENTACCESS.as_bytes())),
        "/favicon.ico" => return Route::Error(404, "no favicon".into()),
        "/" => return Route::Static(200, "text/plain; charset=utf-8", Bytes::from_static(b"mist-rs HTTP connector\n")),
        _ => {}
    }
    if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
        return Route::Acme(token.to_string());
    }
    for (prefix, js) in [("/json_", false), ("/info_", true)] {
        if let Some(s) = path.strip_prefix(prefix).and_then(|r| r.strip_suffix(".js")) {
            if !s.is_empty() {
                return Route::Info { stream: s.to_string(), js };
            }
        }
    }
    for (prefix, kind, connector) in [("/hls/", "hls", "HLS"), ("/cmaf/", "cmaf", "CMAF")] {
        if let Some(r) = path.strip_prefix(prefix) {
            let (stream, rest) = r.split_once('/').unwrap_or((r, ""));
            if !enabled.has(connector) {
                return Route::Error(404, format!("{connector} is not enabled on this server"));
            }
            return Route::Segmented { stream: stream.to_string(), kind, rest: rest.to_string() };
        }
    }
    let file = path.trim_start_matches('/');
    if !file.contains('/') {
        if let Some((stream, ext)) = file.rsplit_once('.') {
            if let Some(format) = Format::from_ext(&ext.to_ascii_lowercase()) {
                if stream.is_empty() {
                    return Route::Error(404, "no stream name".into());
                }
                if !enabled.has(format.connector()) {
                    return Route::Error(404, format!("{} is not enabled on this server", format.connector()));
                }
                return Route::Progressive { stream: stream.to_string(), format, video: req.query_param("video"), audio: req.query_param("audio") };
            }
        }
    }
    Route::Error(404, "not found".into())
}

/// Extension point for HLS (`/hls/$/…`, TS segments) and CMAF (`/cmaf/$/…`): playlists built
/// with mist_media::{segment, hls, dash} and segments muxed once, cached by URL and served to
/// every viewer with [`Io::respond`]. Not implemented yet.
pub fn segmented(io: &mut Io, id: ConnId) {
    io.respond_text(id, 501, "HLS/CMAF are not implemented by this build of MistOutHTTP");
}

/// Protocols listed in `source`, with the connector that enables them and their details.
fn sources(stream: &str, host: &str, enabled: &Enabled, tracks: &[mist_media::Track]) -> Vec<Value> {
    let enc = mist_net::http::percent_encode(stream).replace("%2B", "+");
    let base = if host.is_empty() { String::new() } else { format!("http://{host}") };
    let mut out = Vec::new();
    let list: [(Format, &str, &str, u32); 5] = [
        (Format::Fmp4, "mp4", "html5/video/mp4", 9),
        (Format::Webm, "webm", "html5/video/webm", 9),
        (Format::Ts, "ts", "html5/video/mpeg", 1),
        (Format::Flv, "flv", "flash/7", 5),
        (Format::Mkv, "mkv", "html5/video/x-matroska", 2),
    ];
    for (f, ext, ty, prio) in list {
        if !enabled.has(f.connector()) {
            continue;
        }
        let n = tracks.iter().filter(|t| f.codecs().contains(&t.codec)).count();
        if n == 0 {
            continue;
        }
        let rel = format!("/{enc}.{ext}");
        out.push(json!({"url": format!("{base}{rel}"), "relurl": rel, "type": ty, "priority": prio, "simul_tracks": n.min(2), "total_matches": n}));
    }
    out.sort_by(|a, b| b["simul_tracks"].as_u64().cmp(&a["simul_tracks"].as_u64()).then(b["priority"].as_u64().cmp(&a["priority"].as_u64())));
    out
}

/// The stream info body (`json_`), or its `info_` JavaScript form.
pub fn info(stream: &str, js: bool, host: &str, enabled: &Enabled) -> String {
    let name = mist_core::names::sanitize(stream);
    let v = match mist_shm::stream_status(&name) {
        Ok(st) if !st.ended && !st.tracks.is_empty() => {
            let mut tracks = serde_json::Map::new();
            let (mut w, mut h) = (0, 0);
            for t in &st.tracks {
                let kind = t.kind().as_str();
                let key = format!("{kind}_{}_{}", t.codec.mist_name(), t.id);
                if t.kind() == mist_media::TrackKind::Video && w == 0 {
                    (w, h) = (t.width, t.height);
                }
                tracks.insert(
                    key,
                    json!({"type": kind, "codec": t.codec.mist_name(), "idx": t.id, "trackid": t.id, "width": t.width, "height": t.height,
                           "fpks": t.fpks, "bps": t.bps, "rate": t.rate, "channels": t.channels, "size": t.sample_size,
                           "firstms": st.first_ms, "lastms": st.last_ms, "lang": if t.lang.is_empty() { "und" } else { t.lang.as_str() }}),
                );
            }
            json!({"type": if st.live { "live" } else { "vod" }, "width": w, "height": h,
                   "meta": {"tracks": tracks, "live": st.live as u8}, "source": sources(&name, host, enabled, &st.tracks)})
        }
        _ => json!({"error": "Stream is offline", "on_error": "Stream is offline"}),
    };
    if js {
        format!("if (!mistvideo){{var mistvideo = {{}};}}\nmistvideo['{}'] = {};\n", name.replace(['\'', '\\'], ""), v)
    } else {
        v.to_string()
    }
}
