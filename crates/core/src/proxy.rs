//! Who sent an HTTP request: the TCP peer, or the client a trusted reverse proxy names.
//!
//! The trust model (docs/security.md): a request is *local* (auto-authorised on the API) only when
//! its TCP peer is a loopback address **and** it carries no forwarding header at all
//! (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`). A proxy on this machine forwards remote clients, so
//! any forwarding header means "someone else is behind this connection".
//!
//! The client address of a forwarded request is read from the right of the forwarding list, skipping
//! only proxies we trust (loopback and the `trustedproxy` entries): everything left of the first
//! untrusted hop was written by that hop, that is, by whoever sent the request, and is not believed.
//! A forwarding header from a peer we do not trust is ignored (the peer is the client). When a
//! request carries several kinds (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`) and they name
//! different clients, one of them came from the client untouched: none is believed, and the
//! client is the proxy itself.

use crate::names::{host_matches, is_local};

/// The request headers that say a proxy forwarded the request, lowercase.
pub const FORWARDING_HEADERS: [&str; 3] = ["x-forwarded-for", "x-real-ip", "forwarded"];

/// The forwarding headers of one request, as received (any may be absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct Forwarding<'a> {
    /// `X-Forwarded-For`, all occurrences joined with `,`.
    pub x_forwarded_for: Option<&'a str>,
    /// `X-Real-IP`.
    pub x_real_ip: Option<&'a str>,
    /// `Forwarded` (RFC 7239).
    pub forwarded: Option<&'a str>,
}

impl Forwarding<'_> {
    /// True when any forwarding header is present, even an empty one.
    pub fn present(&self) -> bool {
        self.x_forwarded_for.is_some() || self.x_real_ip.is_some() || self.forwarded.is_some()
    }
}

/// The address a request is judged as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the peer's, or the one a trusted proxy named.
    pub host: String,
    /// True when the request may be auto-authorised: a loopback peer and no forwarding header.
    pub local: bool,
}

/// True when `addr` is a proxy whose forwarding headers we believe: loopback, or inside one of
/// `trusted` (addresses, `addr/prefix` subnets).
pub fn is_trusted(addr: &str, trusted: &[String]) -> bool {
    is_local(addr) || trusted.iter().any(|rule| host_matches(rule, addr))
}

/// Decides who sent a request that arrived from `peer` with the forwarding headers `fwd`.
pub fn client(peer: &str, fwd: &Forwarding<'_>, trusted: &[String]) -> Client {
    if !fwd.present() {
        return Client {
            host: peer.to_string(),
            local: is_local(peer),
        };
    }
    if !is_trusted(peer, trusted) {
        return Client {
            host: peer.to_string(),
            local: false,
        };
    }
    // Each header a proxy may have written names a client: the rightmost hop that is not a
    // trusted proxy. A proxy writes one of them (or several, alike); the others arrive as the
    // client sent them. So they are believed only when all present agree: a client adding a
    // `Forwarded` that its proxy passes on untouched (nginx writes X-Forwarded-For only) cannot
    // choose its address (and with it its failed-login count). When they disagree, the client is
    // the proxy itself.
    let forwarded = fwd
        .forwarded
        .map(|f| f.split(',').filter_map(forwarded_for).collect::<Vec<_>>());
    let xff = fwd.x_forwarded_for.map(|x| {
        x.split(',')
            .map(|h| h.trim().to_string())
            .collect::<Vec<_>>()
    });
    let real = fwd.x_real_ip.map(|x| vec![x.trim().to_string()]);
    let mut named: Option<String> = None;
    // (A `Forwarded` without `for=`, say `proto=https` only, names nobody.)
    for hops in [forwarded, xff, real]
        .into_iter()
        .flatten()
        .filter(|h| !h.is_empty())
    {
        let mut client = None;
        for hop in hops.iter().rev() {
            client = Some(hop.as_str());
            if !is_trusted(hop, trusted) {
                break;
            }
        }
        let c = clean(client.unwrap_or(peer));
        match &named {
            Some(n) if *n != c => {
                return Client {
                    host: clean(peer),
                    local: false,
                }
            }
            Some(_) => {}
            None => named = Some(c),
        }
    }
    Client {
        host: named.unwrap_or_else(|| clean(peer)),
        local: false,
    }
}

/// The `for=` value of one `Forwarded` element (RFC 7239 §4), without quotes or brackets.
fn forwarded_for(element: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        // `[2001:db8::1]:4711` → the bracketed address; `1.2.3.4:80` keeps its port (parsed later).
        let v = match v.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => v,
        };
        Some(v.to_string())
    })
}

/// A header-supplied address as it may appear in logs and challenges: only characters addresses
/// use, at most 64 of them ("unknown" otherwise), so a header cannot inject text.
fn clean(host: &str) -> String {
    let ok = !host.is_empty()
        && host.len() <= 64
        && host
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'));
    if ok {
        host.to_string()
    } else {
        "unknown".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> Forwarding<'_> {
        Forwarding {
            x_forwarded_for: Some(v),
            ..Default::default()
        }
    }

    #[test]
    fn plain_local_peer_is_local() {
        let c = client("127.0.0.1", &Forwarding::default(), &[]);
        assert_eq!(c.host, "127.0.0.1");
        assert!(c.local);
        assert!(!client("10.0.0.9", &Forwarding::default(), &[]).local);
    }

    #[test]
    fn spoofed_first_entry_is_not_believed() {
        // nginx's $proxy_add_x_forwarded_for appends the real client to what it sent.
        let c = client("127.0.0.1", &xff("127.0.0.1, 1.2.3.4"), &[]);
        assert_eq!(c.host, "1.2.3.4");
        assert!(!c.local);
    }

    #[test]
    fn any_forwarding_header_means_not_local() {
        for f in [
            xff("127.0.0.1"),
            Forwarding {
                x_real_ip: Some("127.0.0.1"),
                ..Default::default()
            },
            Forwarding {
                forwarded: Some("for=127.0.0.1"),
                ..Default::default()
            },
            xff(""),
        ] {
            assert!(!client("127.0.0.1", &f, &[]).local, "{f:?}");
        }
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let trusted = vec!["10.0.0.0/8".to_string()];
        let c = client("10.1.1.1", &xff("9.9.9.9, 5.6.7.8, 10.2.2.2"), &trusted);
        assert_eq!(c.host, "5.6.7.8");
        // Untrusted peer: its header is ignored.
        let c = client("8.8.8.8", &xff("1.2.3.4"), &trusted);
        assert_eq!(c.host, "8.8.8.8");
        assert!(!c.local);
    }

    #[test]
    fn headers_that_disagree_name_the_proxy() {
        // nginx appends to X-Forwarded-For and passes a client's own Forwarded on untouched.
        let f = Forwarding {
            x_forwarded_for: Some("203.0.113.5"),
            forwarded: Some("for=198.51.100.1"),
            ..Default::default()
        };
        let c = client("127.0.0.1", &f, &[]);
        assert_eq!(c.host, "127.0.0.1");
        assert!(!c.local);
        // A spoofed X-Real-IP next to the proxy's X-Forwarded-For, likewise.
        let f = Forwarding {
            x_forwarded_for: Some("1.1.1.1, 203.0.113.5"),
            x_real_ip: Some("198.51.100.2"),
            ..Default::default()
        };
        assert_eq!(client("127.0.0.1", &f, &[]).host, "127.0.0.1");
        // Headers that agree (nginx setting X-Real-IP and X-Forwarded-For) name the client.
        let f = Forwarding {
            x_forwarded_for: Some("1.1.1.1, 203.0.113.5"),
            x_real_ip: Some("203.0.113.5"),
            forwarded: Some("for=203.0.113.5"),
        };
        let c = client("127.0.0.1", &f, &[]);
        assert_eq!(c.host, "203.0.113.5");
        assert!(!c.local);
    }

    #[test]
    fn forwarded_header_and_garbage() {
        let f = Forwarding {
            forwarded: Some("for=\"[2001:db8::1]:4711\";proto=https, for=127.0.0.1"),
            ..Default::default()
        };
        assert_eq!(client("::1", &f, &[]).host, "2001:db8::1");
        assert_eq!(client("127.0.0.1", &xff("evil\nline"), &[]).host, "unknown");
    }
}
