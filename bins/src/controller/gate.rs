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
use mist_net::http;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// What the gate decided about one request's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The client address (the peer, or the one a trusted proxy names).
    pub host: String,
    /// Authorised without login.
    pub local: bool,
    /// Why a local peer was not authorised without login (for the log), if it was not.
    pub refused: Option<&'static str>,
    /// The `Origin` header, if any.
    pub origin: Option<String>,
}

/// The request headers the gate reads (all optional).
#[derive(Debug, Default, Clone, Copy)]
pub struct Headers<'a> {
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
    /// A JSONP `callback` parameter was given.
    pub jsonp: bool,
}

/// Judges a request from `peer` (already resolved through the proxy rules into `client`).
pub fn judge(client: mist_core::proxy::Client, h: &Headers<'_>, api_hosts: &[String]) -> Verdict {
    let origin = h.origin.map(str::to_string);
    let refused = if !client.local {
        None
    } else if !h.host.is_none_or(|x| host_is_local(x, api_hosts)) {
        Some("Host is not a local name (DNS rebinding?)")
    } else if cross_site(h) {
        Some("cross-site request (Origin, Referer or Sec-Fetch-Site)")
    } else if h.jsonp {
        Some("JSONP needs a login")
    } else {
        None
    };
    Verdict {
        local: client.local && refused.is_none(),
        host: client.host,
        refused,
        origin,
    }
}

/// True when the request comes from a page of another origin than the API's own.
fn cross_site(h: &Headers<'_>) -> bool {
    let own = |url: &str| {
        let authority = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        match (authority, h.host) {
            (Some(a), Some(host)) => !a.is_empty() && a.eq_ignore_ascii_case(host.trim()),
            _ => false,
        }
    };
    if h.origin.is_some_and(|o| !own(o.trim())) {
        return true;
    }
    if h.referer.is_some_and(|r| !own(r.trim())) {
        return true;
    }
    h.sec_fetch_site
        .is_some_and(|s| !matches!(s.trim(), "same-origin" | "none"))
}

/// True when `host` (a `Host` header: name or address, maybe with a port) names this machine in a
/// way DNS rebinding cannot forge.
pub fn host_is_local(host: &str, api_hosts: &[String]) -> bool {
    let host = host.trim();
    // Strip the port: `[v6]:port`, `v4:port`, `name:port`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return false;
    }
    // An address literal cannot be rebound: the browser's origin is the address itself.
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    // A single label (the machine's own name, `myserver`) is not a public DNS name.
    if !name.contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return true;
    }
    api_hosts.iter().any(|h| h.eq_ignore_ascii_case(&name))
}

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
    let xff = req.header_joined("x-forwarded-for");
    let fwd = mist_core::proxy::Forwarding {
        x_forwarded_for: xff.as_deref(),
        x_real_ip: req.header("x-real-ip"),
        forwarded: req.header("forwarded"),
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
    use mist_core::proxy::Client;

    fn local() -> Client {
        Client {
            host: "127.0.0.1".into(),
            local: true,
        }
    }

    fn hdr<'a>(host: &'a str, origin: Option<&'a str>) -> Headers<'a> {
        Headers {
            host: Some(host),
            origin,
            ..Default::default()
        }
    }

    #[test]
    fn same_origin_local_is_auto_authorised() {
        assert!(judge(local(), &hdr("127.0.0.1:4242", None), &[]).local);
        assert!(
            judge(
                local(),
                &hdr("localhost:4242", Some("http://localhost:4242")),
                &[]
            )
            .local
        );
        assert!(judge(local(), &Headers::default(), &[]).local);
    }

    #[test]
    fn cross_origin_and_rebinding_are_not() {
        let v = judge(
            local(),
            &hdr("127.0.0.1:4242", Some("http://evil.example")),
            &[],
        );
        assert!(!v.local && v.refused.is_some());
        assert!(!judge(local(), &hdr("127.0.0.1:4242", Some("null")), &[]).local);
        // DNS rebinding: same origin, but the name is not ours.
        let v = judge(
            local(),
            &hdr("evil.example:4242", Some("http://evil.example:4242")),
            &[],
        );
        assert!(!v.local);
        let names = vec!["mist.example.org".to_string()];
        assert!(judge(local(), &hdr("mist.example.org:4242", None), &names).local);
        let h = Headers {
            host: Some("127.0.0.1:4242"),
            referer: Some("http://evil.example/x"),
            ..Default::default()
        };
        assert!(!judge(local(), &h, &[]).local);
        let h = Headers {
            host: Some("127.0.0.1:4242"),
            sec_fetch_site: Some("cross-site"),
            ..Default::default()
        };
        assert!(!judge(local(), &h, &[]).local);
        let h = Headers {
            host: Some("127.0.0.1:4242"),
            jsonp: true,
            ..Default::default()
        };
        assert!(!judge(local(), &h, &[]).local);
    }

    #[test]
    fn host_names() {
        for h in ["127.0.0.1", "[::1]:4242", "localhost", "a.localhost:1", "box", "10.0.0.1:80"] {
            assert!(host_is_local(h, &[]), "{h}");
        }
        for h in ["evil.example", "127.0.0.1.nip.io:4242", "", "a b"] {
            assert!(!host_is_local(h, &[]), "{h}");
        }
    }

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
}
