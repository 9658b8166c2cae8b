//! URL → route (INTERFACES.md §6), static bodies and the stream info JSON.

use super::mux::Format;
use super::Enabled;
use bytes::Bytes;
use mist_net::http::Request;
use mist_net::server::{ConnId, Io};

/// What a request asks for, decided from its path alone (before any stream is looked at).
#[derive(Debug, Clone)]
pub enum Route {
    /// A complete static answer.
    Static(u16, &'static str, Bytes),
    /// A generated page or script (`/player.js`, `/embed_$.js`, `/$.html`): 200 with its
    /// Content-Type and Cache-Control.
    Page {
        /// Content-Type.
        ctype: &'static str,
        /// Cache-Control.
        cache: &'static str,
        /// The whole body.
        body: Bytes,
    },
    /// An error answer.
    Error(u16, String),
    /// `/.well-known/acme-challenge/TOKEN`.
    Acme(String),
    /// `/json_$.js` (js = false) or `/info_$.js` (js = true).
    Info {
        /// The stream asked about.
        stream: String,
        /// A JavaScript assignment rather than bare JSON.
        js: bool,
    },
    /// `/$.ts`, `/$.flv`, `/$.mp4`, `/$.fmp4`, `/$.mkv`, `/$.webm`.
    Progressive {
        /// The stream to play.
        stream: String,
        /// The container, from the extension.
        format: Format,
        /// `.mp4`/`.3gp` (not `.fmp4`): a VoD stream gets a progressive file with its moov first.
        moov: bool,
        /// `?video=`: the video tracks to send.
        video: Option<String>,
        /// `?audio=`: the audio tracks to send.
        audio: Option<String>,
    },
    /// `/hls/$/…` and `/cmaf/$/…`: playlists and segments (see [`segmented`]).
    Segmented {
        /// The stream to play.
        stream: String,
        /// `hls` or `cmaf`.
        kind: &'static str,
        /// The path below the stream (playlist, manifest or segment name).
        rest: String,
        /// The Host header (absolute URLs in manifests).
        host: String,
    },
}

/// `/crossdomain.xml`: Flash players may load from here (MistServer answers the same).
pub const CROSSDOMAIN: &str = "<?xml version=\"1.0\"?><!DOCTYPE cross-domain-policy SYSTEM \"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd\"><cross-domain-policy><allow-access-from domain=\"*\" /><site-control permitted-cross-domain-policies=\"all\"/></cross-domain-policy>";
/// `/clientaccesspolicy.xml`: Silverlight players may load from here (MistServer answers the same).
pub const CLIENTACCESS: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><access-policy><cross-domain-access><policy><allow-from http-methods=\"*\" http-request-headers=\"*\"><domain uri=\"*\"/></allow-from><grant-to><resource path=\"/\" include-subpaths=\"true\"/></grant-to></policy></cross-domain-access></access-policy>";

/// The player script (`/player.js`), ours: native playback only (see docs/architecture.md).
pub const PLAYER_JS: &str = include_str!("player.js");

const JS: &str = "application/javascript";

/// The sanitised stream name of a player route, None when it names no stream.
fn player_name(raw: &str) -> Option<String> {
    let name = mist_core::names::sanitize(raw);
    mist_core::names::is_valid(&name).then_some(name)
}

/// A JavaScript string literal (JSON) that is also safe inside an HTML `<script>` element.
pub fn js_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    for c in serde_json::Value::from(s).to_string().chars() {
        match c {
            '<' => o.push_str("\\u003c"),
            '>' => o.push_str("\\u003e"),
            '&' => o.push_str("\\u0026"),
            '\u{2028}' => o.push_str("\\u2028"),
            '\u{2029}' => o.push_str("\\u2029"),
            c => o.push(c),
        }
    }
    o
}

/// Text escaped for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `/embed_$.js`: inserts a `<div>` where its `<script>` tag is, loads `/player.js` from its own
/// origin when `mistPlay` is not defined yet, and plays the stream there. `host` (the Host
/// header) is only the fallback origin when the script cannot see its own URL.
pub fn embed_js(name: &str, host: &str) -> String {
    let fallback = if host.is_empty() {
        String::new()
    } else {
        format!("http://{host}")
    };
    format!(
        r#"/* mist-rs: plays stream {name_js} where this script tag is. */
(function () {{
  'use strict';
  var stream = {name_js};
  var me = document.currentScript;
  var base = (me && me.src ? new URL('.', me.src).href : {fallback_js}).replace(/\/+$/, '');
  var div = document.createElement('div');
  div.className = 'mistvideo';
  div.style.cssText = 'width:100%;aspect-ratio:16/9;background:#000';
  if (me && me.parentNode) me.parentNode.insertBefore(div, me); else document.body.appendChild(div);
  function go() {{ window.mistPlay(stream, {{ target: div, host: base }}); }}
  if (window.mistPlay) return go();
  var s = document.createElement('script');
  s.src = base + '/player.js';
  s.onload = go;
  s.onerror = function () {{ div.style.color = '#ddd'; div.textContent = 'Cannot load the player from ' + base; }};
  document.head.appendChild(s);
}})();
"#,
        name_js = js_string(name),
        fallback_js = js_string(&fallback),
    )
}

/// `/$.html`: a page that plays the stream in the whole window with `/player.js`. URLs are
/// relative, so the page also works behind a reverse proxy that adds a path prefix.
pub fn html_page(name: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name_html}</title>
<style>html,body{{margin:0;width:100%;height:100%;background:#000;overflow:hidden}}#mistvideo{{width:100%;height:100%}}</style>
</head><body>
<div id="mistvideo"><noscript><video controls autoplay muted playsinline style="width:100%;height:100%"><source src="hls/{name_url}/index.m3u8" type="application/vnd.apple.mpegurl"><source src="{name_url}.mp4" type="video/mp4"></video></noscript></div>
<script src="player.js"></script>
<script>mistPlay({name_js}, {{ target: document.getElementById('mistvideo'),
  forceType: new URLSearchParams(location.search).get('forcetype') || '' }});</script>
</body></html>
"#,
        name_html = html_escape(name),
        name_js = js_string(name),
        // Percent-encoded: only [A-Za-z0-9+._~-] and %XX remain, safe in an attribute.
        name_url = mist_media::info::url_encode(name),
    )
}

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
        "/player.js" => {
            return Route::Page {
                ctype: JS,
                cache: "public, max-age=600",
                body: Bytes::from_static(PLAYER_JS.as_bytes()),
            }
        }
        _ => {}
    }
    if let Some(s) = path
        .strip_prefix("/embed_")
        .and_then(|r| r.strip_suffix(".js"))
    {
        return match player_name(s) {
            Some(name) => Route::Page {
                ctype: JS,
                cache: "no-cache",
                body: Bytes::from(embed_js(&name, req.header("host").unwrap_or(""))),
            },
            None => Route::Error(404, "no stream name".into()),
        };
    }
    if let Some(s) = path.strip_prefix('/').and_then(|r| r.strip_suffix(".html")) {
        if !s.contains('/') {
            return match player_name(s) {
                Some(name) => Route::Page {
                    ctype: "text/html; charset=utf-8",
                    cache: "no-cache",
                    body: Bytes::from(html_page(&name)),
                },
                None => Route::Error(404, "no stream name".into()),
            };
        }
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
            if !super::segmented_formats::has(kind) {
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
                    // Canonical before they key feeds and MP4 plans (bounded, see mux.rs).
                    video: req
                        .query_param("video")
                        .map(|v| super::mux::normalize_selector(&v)),
                    audio: req
                        .query_param("audio")
                        .map(|v| super::mux::normalize_selector(&v)),
                };
            }
        }
    }
    Route::Error(404, "not found".into())
}

/// The answer for a segmented kind this build does not implement (see `super::segmented_formats`).
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
        (Protocol::Mp3, "MP3"),
        (Protocol::Aac, "AAC"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use mist_net::http::{parse_request, Limits};

    fn get(target: &str) -> Route {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: h:8080\r\n\r\n");
        let (req, _) = parse_request(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        route(&req, &Enabled::all())
    }

    fn page(target: &str) -> (&'static str, &'static str, String) {
        match get(target) {
            Route::Page { ctype, cache, body } => {
                (ctype, cache, String::from_utf8(body.to_vec()).unwrap())
            }
            r => panic!("{target}: {r:?}"),
        }
    }

    #[test]
    fn player_routes() {
        let (ct, cache, body) = page("/player.js");
        assert_eq!(ct, "application/javascript");
        assert_eq!(cache, "public, max-age=600");
        assert!(body.contains("window.mistPlay = function"));
        let (ct, cache, body) = page("/embed_live.js");
        assert_eq!((ct, cache), ("application/javascript", "no-cache"));
        assert!(body.contains(r#"var stream = "live";"#), "{body}");
        assert!(body.contains("'/player.js'"));
        let (ct, cache, body) = page("/Live.html?x=1");
        assert_eq!((ct, cache), ("text/html; charset=utf-8", "no-cache"));
        // Names are sanitised as everywhere else.
        assert!(body.contains("<title>live</title>"), "{body}");
        assert!(body.contains(r#"mistPlay("live", "#), "{body}");
        assert!(body.contains(r#"<script src="player.js"></script>"#));
        // Wildcard names keep their '+' part (the first space becomes '+').
        let (_, _, body) = page("/live+a%20b.html");
        assert!(body.contains(r#"mistPlay("live+a+b", "#), "{body}");
        // Other routes are unchanged; no name → 404.
        assert!(matches!(
            get("/json_live.js"),
            Route::Info { js: false, .. }
        ));
        assert!(matches!(get("/live.mp4"), Route::Progressive { .. }));
        assert!(matches!(get("/.html"), Route::Error(404, _)));
        assert!(matches!(get("/embed_.js"), Route::Error(404, _)));
        assert!(matches!(get("/a/b.html"), Route::Error(404, _)));
    }

    fn encode(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    #[test]
    fn hostile_names_are_escaped() {
        // The wildcard part of a name survives sanitising as sent.
        let evil = r#"x+a"<img src=x onerror=alert(1)><x>'&\"#;
        let raw = encode(evil);
        for target in [format!("/{raw}.html"), format!("/embed_{raw}.js")] {
            let (_, _, body) = page(&target);
            assert!(!body.contains("<img"), "{body}");
            assert!(!body.contains("<x>"), "{body}");
            assert!(!body.contains(r#"a""#), "{body}");
        }
        let (_, _, html) = page(&format!("/{raw}.html"));
        assert!(
            html.contains(
                "<title>x+a&quot;&lt;img+src=x onerror=alert(1)&gt;&lt;x&gt;&#39;&amp;\\</title>"
            ),
            "{html}"
        );
        assert!(html.contains(r#"<source src="x+a%22%3Cimg+src%3Dx%20onerror%3Dalert%281%29%3E%3Cx%3E%27%26%5C.mp4""#), "{html}");
        let lit = r#""x+a\"\u003cimg+src=x onerror=alert(1)\u003e\u003cx\u003e'\u0026\\""#;
        assert!(html.contains(&format!("mistPlay({lit}, ")), "{html}");
        // The literal decodes back to the name.
        let back: String = serde_json::from_str(lit).unwrap();
        assert_eq!(back, evil.replacen(' ', "+", 1));
        let (_, _, js) = page(&format!("/embed_{raw}.js"));
        assert!(js.contains(&format!("var stream = {lit};")), "{js}");
        // A name with '/' cannot be a page, but can be an embed script: no "</script>" in it.
        let evil = r#"x+"</script><script>alert(1)</script>"#;
        assert!(matches!(
            get(&format!("/{}.html", encode(evil))),
            Route::Error(404, _)
        ));
        let (_, _, js) = page(&format!("/embed_{}.js", encode(evil)));
        assert!(
            !js.contains("</script>") && !js.contains("<script>"),
            "{js}"
        );
        assert!(
            js.contains(r#"var stream = "x+\"\u003c/script\u003e"#),
            "{js}"
        );
        assert_eq!(js_string("\u{2028}"), r#""\u2028""#);
    }

    #[test]
    fn embed_fallback_host_is_escaped() {
        let js = embed_js("live", "h\"</script>:1");
        assert!(js.contains(r#""http://h\"\u003c/script\u003e:1""#), "{js}");
    }
}
