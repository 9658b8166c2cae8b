//! The API gate: who an HTTP API request is from, whether it may be authorised without a login,
//! and which cross-origin headers its answer may carry (docs/security.md).
//!
//! A request is authorised without login only when all of these hold:
//! - it is *local* (`mist_core::proxy`: a loopback peer and no forwarding header);
//! - it is not cross-site: no `Origin` other than the API's own (`http(s)://` + its `Host`), no
//!   `Sec-Fetch-Site` other than `same-origin`/`none`, no `Referer` from another origin;
//! - its `Host` is a local name (an IP literal, `localhost`, `*.localhost`, a name without a dot) or
//!   one listed in the config's `api_hosts`: a DNS-rebound name (`evil.example` resolving to
//!   127.0.0.1) is not;
//! - it asks for no JSONP `callback` (a `<script>` tag sends no `Origin`).
//!
//! Everything else must log in (challenge/response, `super::auth`); a login is bound to the client
//! address and the `Origin` it came from. Authenticated answers never carry
//! `Access-Control-Allow-Origin: *`: only the origin that logged in is named. JSONP is answered only
//! after a password login.

use super::api::{self, Caller};
use super::Controller;
use mist_core::control::Request as CtlRequest;
use mist_core::gate::{judge, Headers, Verdict};
use mist_net::http;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The `api_hosts` config entry (an array or a space-separated string of host names under which the
/// API is reached and local requests are still auto-authorised).
pub fn api_hosts(ctl: &Controller) -> Vec<String> {
    match ctl.cfg.config.extra.get("api_hosts") {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// True when the (partial) request head in `buf` has a forwarding header line
/// (`mist_core::proxy::FORWARDING_HEADERS`): a proxy sent it for someone else.
pub fn carries_forwarding(buf: &[u8]) -> bool {
    let head = match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => &buf[..p + 2],
        None => buf,
    };
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        mist_core::proxy::FORWARDING_HEADERS.iter().any(|h| {
            line.len() > h.len()
                && line[..h.len()].eq_ignore_ascii_case(h.as_bytes())
                && line[h.len()] == b':'
        })
    })
}

/// True when an API answer is a login challenge (no data in it).
fn is_challenge(answer: &Value) -> bool {
    answer
        .get("authorize")
        .and_then(|a| a.get("status"))
        .and_then(Value::as_str)
        == Some("CHALL")
}

fn jsonp_name(req: &http::Request) -> Option<String> {
    req.query_param("callback").filter(|s| {
        !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

/// Answers an API request (`/api`, `/api2`; GET or POST, the caller checked).
pub fn answer(
    ctl: &mut Controller,
    sess: &mut api::Session,
    peer: SocketAddr,
    req: &http::Request,
) -> http::Response {
    // Who is asking: the peer, or the client a trusted proxy names (mist_core::proxy).
    // Every occurrence of each header: a proxy may add its own after the client's.
    let xff = req.header_joined("x-forwarded-for");
    let real = req.header_joined("x-real-ip");
    let forwarded = req.header_joined("forwarded");
    let fwd = mist_core::proxy::Forwarding {
        x_forwarded_for: xff.as_deref(),
        x_real_ip: real.as_deref(),
        forwarded: forwarded.as_deref(),
    };
    let client = mist_core::proxy::client(
        &peer.ip().to_string(),
        &fwd,
        &ctl.cfg.config.trusted_proxies(),
    );
    let callback = jsonp_name(req);
    let headers = Headers {
        host: req.header("host"),
        origin: req.header("origin"),
        referer: req.header("referer"),
        sec_fetch_site: req.header("sec-fetch-site"),
        jsonp: req.query_param("callback").is_some(),
    };
    let v = judge(client, &headers, &api_hosts(ctl));
    if let Some(why) = v.refused {
        mist_core::debug!("API: local request from {} needs a login: {why}", v.host);
    }
    let caller = Caller {
        host: v.host.clone(),
        local: v.local,
        origin: v.origin.clone(),
    };
    let authorised_before = v.local || sess.is_authorized_from(&v.host, v.origin.as_deref());
    // The command: ?command=, form body command=, or a raw JSON body.
    let mut text = req.query_param("command");
    if text.is_none() && !req.body.is_empty() {
        let body = String::from_utf8_lossy(&req.body).into_owned();
        let ctype = req
            .header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase();
        if ctype.starts_with("application/x-www-form-urlencoded") || body.starts_with("command=") {
            text = http::parse_query(&body)
                .into_iter()
                .find(|(k, _)| k == "command")
                .map(|(_, v)| v);
        } else {
            text = Some(body);
        }
    }
    let answer = match text.as_deref().map(str::trim) {
        None | Some("") => api::handle_from(ctl, sess, &caller, &json!({})),
        Some(t) => match serde_json::from_str::<Value>(t) {
            Ok(cmd) => api::handle_from(ctl, sess, &caller, &cmd),
            Err(_) if !authorised_before => api::handle_from(ctl, sess, &caller, &json!({})),
            Err(e) => {
                return with_cors(
                    http::Response::json(
                        400,
                        json!({"error": format!("invalid JSON: {e}")}).to_string(),
                    ),
                    &v,
                    false,
                )
            }
        },
    };
    let challenge = is_challenge(&answer);
    let mut body = answer.to_string();
    // JSONP only after a password login: a <script> tag sends no Origin and no cookie we check.
    let password_login = !v.local && !challenge;
    if let Some(cb) = callback.filter(|_| password_login) {
        body = format!("{cb}({body});");
    }
    with_cors(http::Response::json(200, body), &v, challenge)
}

/// Cross-origin headers: `*` on a login challenge (no data in it, and a UI hosted elsewhere must
/// read it), the logged-in origin itself on authenticated answers, and nothing otherwise.
fn with_cors(r: http::Response, v: &Verdict, challenge: bool) -> http::Response {
    let r = r.header("Vary", "Origin");
    if challenge {
        return r
            .header("Access-Control-Allow-Origin", "*")
            .header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            .header("Access-Control-Allow-Headers", "Content-Type");
    }
    match v.origin.as_deref() {
        Some(o) if !v.local && o != "null" && !o.contains(['\r', '\n']) => r
            .header("Access-Control-Allow-Origin", o)
            .header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            .header("Access-Control-Allow-Headers", "Content-Type"),
        _ => r,
    }
}

/// A control request as it may be logged: push passwords (the app name and the URL that carries
/// it) never reach the log.
pub fn redacted(req: &CtlRequest) -> String {
    let mut r = req.clone();
    if let CtlRequest::Push { app, url, .. } = &mut r {
        if !app.is_empty() {
            *app = "(redacted)".into();
        }
        if !url.is_empty() {
            *url = "(redacted)".into();
        }
    }
    serde_json::to_string(&r).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_password_is_not_logged() {
        let r = CtlRequest::Push {
            stream: "live".into(),
            app: "s3cret".into(),
            host: "1.2.3.4".into(),
            connector: "RTMP".into(),
            url: "rtmp://h/s3cret/live".into(),
        };
        let s = redacted(&r);
        assert!(!s.contains("s3cret") && s.contains("live"), "{s}");
    }

    #[test]
    fn forwarding_header_lines_are_found_in_partial_heads() {
        assert!(carries_forwarding(
            b"POST /api HTTP/1.1\r\nHost: h\r\nx-forwarded-for: 1.2.3.4\r\n"
        ));
        assert!(carries_forwarding(
            b"POST /api HTTP/1.1\r\nForwarded: for=1.2.3.4\r\n\r\nbody"
        ));
        assert!(carries_forwarding(
            b"GET / HTTP/1.1\r\nX-Real-IP:1.2.3.4\r\n\r\n"
        ));
        assert!(!carries_forwarding(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        // In the body, or a longer name: not a forwarding header.
        assert!(!carries_forwarding(
            b"POST / HTTP/1.1\r\nHost: h\r\n\r\nForwarded: for=1.2.3.4\r\n"
        ));
        assert!(!carries_forwarding(
            b"GET / HTTP/1.1\r\nForwarded-Foo: x\r\n"
        ));
    }
}
