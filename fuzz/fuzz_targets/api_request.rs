//! The controller's API request path up to the command: HTTP parsing (pipelined), who the request
//! is from (`mist_core::proxy`: forwarding headers, trusted proxies), whether it may skip the login
//! (`mist_core::gate`: Host, Origin, Referer, Sec-Fetch-Site, JSONP), and the JSON command with its
//! stream names (`mist_core::names`). Invariants: a forwarded request is never local; a client
//! address taken from a header is clean (address characters only, short); a cross-origin or
//! foreign-Host request is never local; a sanitised stream name has no control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mist_core::gate::{judge, Headers};
use mist_core::names;
use mist_core::proxy::{client, Forwarding};
use mist_net::http::{parse_query, parse_request, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_head: 16 * 1024,
        max_headers: 64,
        max_body: 1 << 20,
    };
    // The first byte picks the TCP peer: loopback, a trusted proxy, or a remote address.
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let peer = ["127.0.0.1", "10.1.2.3", "203.0.113.9", "::1"][(pick & 3) as usize];
    let trusted = vec!["10.0.0.0/8".to_string()];
    let api_hosts = vec!["mist.example.org".to_string()];
    let mut rest = data;
    while let Ok(Some((req, used))) = parse_request(rest, &limits) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
        // As bins/src/controller/gate.rs reads them: every occurrence of each header.
        let xff = req.header_joined("x-forwarded-for");
        let real = req.header_joined("x-real-ip");
        let forwarded = req.header_joined("forwarded");
        let fwd = Forwarding {
            x_forwarded_for: xff.as_deref(),
            x_real_ip: real.as_deref(),
            forwarded: forwarded.as_deref(),
        };
        // One Host at most reaches the gate (two are refused with 400 by the parser).
        assert!(
            req.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                .count()
                <= 1,
            "a request with two Host headers was parsed"
        );
        let who = client(peer, &fwd, &trusted);
        if fwd.present() {
            assert!(!who.local, "forwarded request judged local");
        }
        if who.host != peer {
            assert!(who.host.len() <= 64);
            assert!(
                who.host == "unknown"
                    || who
                        .host
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')),
                "unclean client address {:?}",
                who.host
            );
        }
        let h = Headers {
            host: req.header("host"),
            origin: req.header("origin"),
            referer: req.header("referer"),
            sec_fetch_site: req.header("sec-fetch-site"),
            jsonp: req.query_param("callback").is_some(),
        };
        let was_local = who.local;
        let v = judge(who, &h, &api_hosts);
        assert!(!v.local || was_local);
        if v.local {
            assert!(!h.jsonp);
            if let (Some(o), Some(host)) = (h.origin, h.host) {
                assert!(o.to_ascii_lowercase().ends_with(&host.trim().to_ascii_lowercase()));
            }
        }
        // The command: ?command=, a form body, or a raw JSON body.
        let mut text = req.query_param("command");
        if text.is_none() && !req.body.is_empty() {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            text = parse_query(&body)
                .into_iter()
                .find(|(k, _)| k == "command")
                .map(|(_, v)| v)
                .or(Some(body));
        }
        let Some(text) = text else { continue };
        let Ok(cmd) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
            continue;
        };
        let mut stream_names = Vec::new();
        if let Some(obj) = cmd.as_object() {
            for (k, v) in obj {
                stream_names.push(k.clone());
                if let Some(inner) = v.as_object() {
                    stream_names.extend(inner.keys().cloned());
                }
                if let Some(s) = v.as_str() {
                    stream_names.push(s.to_string());
                }
            }
        }
        for n in stream_names {
            let s = names::sanitize(&n);
            assert!(!names::has_control(&s), "{n:?} -> {s:?}");
            if names::is_valid(&n) {
                assert!(!names::base_name(&s).is_empty());
            }
        }
    }
});
