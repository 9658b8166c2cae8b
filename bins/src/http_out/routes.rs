//! URL → route (INTERFACES.md §6), static bodies and the stream info JSON.

use super::mux::Format;
use super::Enabled;
use bytes::Bytes;
use mist_net::http::Request;
use mist_net::server::{ConnId, Io};

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
    Progressive {
        stream: String,
        format: Format,
        /// `.mp4`/`.3gp` (not `.fmp4`): a VoD stream gets a progressive file with its moov first.
        moov: bool,
        video: Option<String>,
        audio: Option<String>,
    },
    /// `/hls/$/…` and `/cmaf/$/…`: playlists and segments (see [`segmented`]).
    Segmented {
        stream: String,
        kind: &'static str,
        rest: String,
        /// The Host header (absolute URLs in manifests).
        host: String,
    },
}

pub const CROSSDOMAIN: &str = "<?xml version=\"1.0\"?><!DOCTYPE cross-domain-policy SYSTEM \"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd\"><cross-domain-policy><allow-access-from domain=\"*\" /><site-control permitted-cross-domain-policies=\"all\"/></cross-domain-policy>";
pub const CLIENTACCESS: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><access-policy><cross-domain-access><policy><allow-from http-methods=\"*\" http-request-headers=\"*\"><domain uri=\"*\"/></allow-from><grant-to><resource path=\"/\" include-subpaths=\"true\"/></grant-to></policy></cross-domain-access></access-policy>";

/// Maps a request to its route.
pub fn route(req: &Request, enabled: &Enabled) -> Route {
    let path = req.path.as_str();
    match path {
        "/crossdomain.xml" => {
            return Route::Static(200, "text/xml", Bytes::from_static(CROSSDOMAIN.as_bytes()))
        }
        "/clientaccesspolicy.xml" => {
            return Route::Static(200, "text/xml", Bytes::from_static(CLIENTACCESS.as_bytes()))
        }
        "/favicon.ico" => return Route::Error(404, "no favicon".into()),
        // The server clock for DASH players (the MPD's UTCTiming, urn:mpeg:dash:utc:http-iso:2014).
        "/time" => return Route::Static(200, "text/plain", Bytes::from(super::cmaf::time_body())),
        "/" => {
            return Route::Static(
                200,
                "text/plain; charset=utf-8",
                Bytes::from_static(b"mist-rs HTTP connector\n"),
            )
        }
        _ => {}
    }
    if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
        return Route::Acme(token.to_string());
    }
    for (prefix, js) in [("/json_", false), ("/info_", true)] {
        if let Some(s) = path
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".js"))
        {
            if !s.is_empty() {
                return Route::Info {
                    stream: s.to_string(),
                    js,
                };
            }
        }
    }
    for (prefix, kind, connector) in [("/hls/", "hls", "HLS"), ("/cmaf/", "cmaf", "CMAF")] {
        if let Some(r) = path.strip_prefix(prefix) {
            let (stream, rest) = r.split_once('/').unwrap_or((r, ""));
            if stream.is_empty() {
                return Route::Error(404, "no stream name".into());
            }
            if !enabled.has(connector) {
                return Route::Error(404, format!("{connector} is not enabled on this server"));
            }
            if !super::segmented::has(kind) {
                return Route::Error(
                    501,
                    format!("{connector} is not implemented by this build of MistOutHTTP"),
                );
            }
            return Route::Segmented {
                stream: stream.to_string(),
                kind,
                rest: rest.to_string(),
                host: req.header("host").unwrap_or("").to_string(),
            };
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
                    return Route::Error(
                        404,
                        format!("{} is not enabled on this server", format.connector()),
                    );
                }
                let ext = ext.to_ascii_lowercase();
                return Route::Progressive {
                    stream: stream.to_string(),
                    format,
                    moov: ext == "mp4" || ext == "3gp",
                    video: req.query_param("video"),
                    audio: req.query_param("audio"),
                };
            }
        }
    }
    Route::Error(404, "not found".into())
}

/// The answer for a segmented kind this build does not implement (see `super::segmented`).
pub fn segmented(io: &mut Io, id: ConnId) {
    io.respond_text(
        id,
        501,
        "CMAF is not implemented by this build of MistOutHTTP",
    );
}

/// The protocols announced in `source`, for the connectors enabled on this server.
fn sources(host: &str, enabled: &Enabled) -> Vec<mist_media::info::Source> {
    use mist_media::info::{Protocol, Source};
    let base = if host.is_empty() {
        String::new()
    } else {
        format!("http://{host}")
    };
    let mut out = Vec::new();
    for (p, connector) in [
        (Protocol::Hls, "HLS"),
        (Protocol::Dash, "CMAF"),
        (Protocol::CmafHls, "CMAF"),
        (Protocol::Mp4, "MP4"),
        (Protocol::WebM, "EBML"),
        (Protocol::Mkv, "EBML"),
        (Protocol::Flv, "FLV"),
        (Protocol::Ts, "HTTPTS"),
    ] {
        if enabled.has(connector) && super::mux::available(connector) {
            out.push(Source {
                protocol: p,
                base_url: base.clone(),
            });
        }
    }
    if let Some(port) = enabled.port_of("RTMP") {
        let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let h = if h.is_empty() { "127.0.0.1" } else { h };
        out.push(Source {
            protocol: Protocol::Rtmp,
            base_url: format!("rtmp://{h}:{port}"),
        });
    }
    out
}

/// The stream info body (`json_`), or its `info_` JavaScript form.
pub fn info(stream: &str, js: bool, host: &str, enabled: &Enabled) -> String {
    use mist_media::info::{info_js, offline_info, stream_info, TrackInfo};
    let name = mist_core::names::sanitize(stream);
    let v = match mist_shm::stream_status(&name) {
        Ok(st) if !st.ended && !st.tracks.is_empty() => {
            let tracks: Vec<TrackInfo> = st
                .tracks
                .iter()
                .map(|t| TrackInfo {
                    track: t.clone(),
                    firstms: st.first_ms,
                    lastms: st.last_ms,
                })
                .collect();
            stream_info(&name, st.live, &tracks, &sources(host, enabled))
        }
        Ok(_) => offline_info("Stream is offline"),
        Err(_) => offline_info("Stream is offline"),
    };
    if js {
        info_js(&name, &v)
    } else {
        v.to_string()
    }
}
