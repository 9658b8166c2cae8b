//! The API gate's header rules (docs/security.md): whether a request that `crate::proxy` found
//! local may really be authorised without a login.
//!
//! A local request is still refused auto-authorisation when
//! - its `Host` is not a local name (an IP literal, `localhost`, `*.localhost`, a name without a
//!   dot) nor one of the configured `api_hosts`: a DNS-rebound name (`evil.example` resolving to
//!   127.0.0.1) is not;
//! - it is cross-site: an `Origin` other than the API's own (`http(s)://` + its `Host`), a
//!   `Referer` from another origin, or a `Sec-Fetch-Site` other than `same-origin`/`none`;
//! - it asks for JSONP (a `<script>` tag sends no `Origin`).

use crate::proxy::Client;

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
    /// `Host`.
    pub host: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Referer`.
    pub referer: Option<&'a str>,
    /// `Sec-Fetch-Site`.
    pub sec_fetch_site: Option<&'a str>,
    /// A JSONP `callback` parameter was given.
    pub jsonp: bool,
}

/// Judges a request from `peer` (already resolved through the proxy rules into `client`).
pub fn judge(client: Client, h: &Headers<'_>, api_hosts: &[String]) -> Verdict {
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
    // `whole`: an Origin is exactly `scheme://authority`; a Referer goes on with a path.
    let own = |url: &str, whole: bool| {
        let authority = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .and_then(|r| match r.find(['/', '?', '#']) {
                Some(_) if whole => None,
                Some(i) if r[i..].starts_with('/') => Some(&r[..i]),
                Some(_) => None,
                None => Some(r),
            });
        match (authority, h.host) {
            (Some(a), Some(host)) => !a.is_empty() && a.eq_ignore_ascii_case(host.trim()),
            _ => false,
        }
    };
    if h.origin.is_some_and(|o| !own(o.trim(), true)) {
        return true;
    }
    if h.referer.is_some_and(|r| !own(r.trim(), false)) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // An Origin is scheme://authority and nothing else (found by the api_request fuzzer).
        let o = Some("https://127.0.0.1:4242?x");
        assert!(!judge(local(), &hdr("127.0.0.1:4242", o), &[]).local);
        let h = Headers {
            host: Some("127.0.0.1:4242"),
            referer: Some("http://127.0.0.1:4242/ui/index.html?x"),
            ..Default::default()
        };
        assert!(judge(local(), &h, &[]).local);
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
        for h in [
            "127.0.0.1",
            "[::1]:4242",
            "localhost",
            "a.localhost:1",
            "box",
            "10.0.0.1:80",
        ] {
            assert!(host_is_local(h, &[]), "{h}");
        }
        for h in ["evil.example", "127.0.0.1.nip.io:4242", "", "a b"] {
            assert!(!host_is_local(h, &[]), "{h}");
        }
    }
}
