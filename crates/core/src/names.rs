//! Stream names, wildcards and `push://` source rules (INTERFACES §4).
//!
//! - The base name keeps only ASCII letters, digits, `_`, `.` and `-`, lower-cased; everything from
//!   the first `?` on is dropped.
//! - `base+anything` is a wildcard stream that uses the config of stream `base`; the part after `+` is
//!   kept as given (minus any `?…`). The first space is treated like `+` (as MistServer does).
//! - A name with a control character (below 0x20, DEL, C1) names no stream at all: it would inject
//!   lines into trigger payloads, logs and file names.

use std::net::IpAddr;

/// Sanitises a requested stream name the way MistServer does.
///
/// ```
/// use mist_core::names::sanitize;
/// assert_eq!(sanitize("My Stream?x=1"), "my+Stream");
/// assert_eq!(sanitize("Live!"), "live");
/// assert_eq!(sanitize("live+a\nb"), ""); // control characters: no stream
/// ```
pub fn sanitize(name: &str) -> String {
    let name = match name.find('?') {
        Some(i) => &name[..i],
        None => name,
    };
    if has_control(name) {
        return String::new();
    }
    let name = name.replacen(' ', "+", 1);
    match name.split_once('+') {
        // A wildcard without a base names no stream.
        Some((base, wild)) => match sanitize_base(base) {
            base if base.is_empty() => base,
            base => format!("{base}+{}", wild.chars().take(MAX_PART).collect::<String>()),
        },
        None => sanitize_base(&name),
    }
}

/// Longest base and wildcard part kept: names come from peers and end up in file names.
const MAX_PART: usize = 100;

fn sanitize_base(base: &str) -> String {
    base.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .take(MAX_PART)
        .collect()
}

/// The part before the first `+` (the whole name when there is none).
pub fn base_name(name: &str) -> &str {
    name.split_once('+').map(|(b, _)| b).unwrap_or(name)
}

/// The part after the first `+`, if any.
pub fn wildcard(name: &str) -> Option<&str> {
    name.split_once('+').map(|(_, w)| w)
}

/// True when `name` is acceptable after sanitising (non-empty base, no control character).
pub fn is_valid(name: &str) -> bool {
    !has_control(name) && !base_name(&sanitize(name)).is_empty()
}

/// True when `s` has a control character (C0 including `\n`, `\r`, NUL; DEL; C1).
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Finds the config entry for a stream: the exact (sanitised) name first, then the wildcard base.
/// Returns the config key that matched and its value.
pub fn lookup<'a>(
    streams: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<(&'a str, &'a serde_json::Value)> {
    let name = sanitize(name);
    if let Some((k, v)) = streams.get_key_value(name.as_str()) {
        return Some((k.as_str(), v));
    }
    let base = base_name(&name);
    streams.get_key_value(base).map(|(k, v)| (k.as_str(), v))
}

/// The rules a `push://` source imposes on incoming pushes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushRule {
    /// Allowed peers (addresses or subnets, or host names compared literally); empty = anyone.
    pub whitelist: Vec<String>,
    /// Required password (RTMP app name / URL path part), if any.
    pub password: Option<String>,
}

impl PushRule {
    /// Parses a source; `None` when it is not a `push://` source.
    ///
    /// Forms: `push://`, `push://IP`, `push://IP/PREFIX`, `push://@PASSWORD`, `push://IP@PASSWORD`.
    /// Several addresses may be separated by `,` or spaces.
    pub fn parse(source: &str) -> Option<PushRule> {
        let rest = source.strip_prefix("push://")?;
        let (hosts, password) = match rest.split_once('@') {
            Some((h, p)) => (h, Some(p.to_string())),
            None => (rest, None),
        };
        let whitelist = hosts
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Some(PushRule {
            whitelist,
            password: password.filter(|p| !p.is_empty()),
        })
    }

    /// Checks a push from `host` with app name / password part `app`.
    pub fn check(&self, host: &str, app: &str) -> Result<(), PushRefused> {
        if !self.whitelist.is_empty() && !self.whitelist.iter().any(|w| host_matches(w, host)) {
            return Err(PushRefused::NotWhitelisted(host.to_string()));
        }
        if let Some(pw) = &self.password {
            // Constant time: the comparison must not tell a guesser how much of it was right.
            if !constant_time_eq(app.as_bytes(), pw.as_bytes()) {
                return Err(PushRefused::Password);
            }
        }
        Ok(())
    }
}

/// Why [`PushRule::check`] refused a push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRefused {
    /// The pushing host matches no whitelist entry.
    #[error("push from {0} not allowed by whitelist")]
    NotWhitelisted(String),
    /// The app name / password part is not the stream's push password.
    #[error("push password mismatch")]
    Password,
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Maps an IPv4-mapped IPv6 address to IPv4, so `::ffff:1.2.3.4` matches `1.2.3.4`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn parse_host(host: &str) -> Option<IpAddr> {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    // Strip a port from "1.2.3.4:5678" (not from bare IPv6).
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = host.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    None
}

/// True when `host` is inside `rule` (an address, a `addr/prefix` subnet or a literal name).
pub fn host_matches(rule: &str, host: &str) -> bool {
    let Some(peer) = parse_host(host) else {
        return rule.eq_ignore_ascii_case(host.trim());
    };
    let (addr, prefix) = match rule.split_once('/') {
        Some((a, p)) => match p.parse::<u8>() {
            Ok(p) => (a, Some(p)),
            Err(_) => return false,
        },
        None => (rule, None),
    };
    let Some(net) = parse_host(addr) else {
        return rule.eq_ignore_ascii_case(host.trim());
    };
    match (net, peer) {
        (IpAddr::V4(n), IpAddr::V4(p)) => {
            let bits = prefix.unwrap_or(32).min(32) as u32;
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(n) & mask) == (u32::from(p) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(p)) => {
            let bits = prefix.unwrap_or(128).min(128) as u32;
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(n) & mask) == (u128::from(p) & mask)
        }
        _ => false,
    }
}

/// True for loopback addresses (127.0.0.0/8, ::1, and IPv4-mapped loopback).
pub fn is_local(host: &str) -> bool {
    parse_host(host).is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters_name_no_stream() {
        for bad in [
            "live+a\nb",
            "live\r",
            "li\0ve",
            "live+x\u{7f}",
            "live+\u{85}",
            "\tlive",
        ] {
            assert_eq!(sanitize(bad), "", "{bad:?}");
            assert!(!is_valid(bad), "{bad:?}");
        }
        assert!(is_valid("live+a b"));
        assert_eq!(sanitize("live?x=\n"), "live");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize("live"), "live");
        assert_eq!(sanitize("LiVe"), "live");
        assert_eq!(sanitize("li$ve/#1"), "live1");
        assert_eq!(sanitize("a_b.c-d"), "a_b.c-d");
        assert_eq!(sanitize("live?token=abc"), "live");
        assert_eq!(sanitize("Live+Cam One?x"), "live+Cam+One"); // first space acts as +
        assert_eq!(sanitize("a b c"), "a+b c");
        assert_eq!(sanitize("live cam"), "live+cam");
        assert_eq!(sanitize("Li!ve+A/B"), "live+A/B");
        assert_eq!(sanitize("?x"), "");
        assert_eq!(sanitize("my stream?key=1"), "my+stream");
        assert_eq!(sanitize("+x"), "");
        assert!(!is_valid("?x"));
        assert!(is_valid("a+b"));
    }

    #[test]
    fn wildcard_parts() {
        assert_eq!(base_name("live+cam1"), "live");
        assert_eq!(wildcard("live+cam1"), Some("cam1"));
        assert_eq!(base_name("live"), "live");
        assert_eq!(wildcard("live"), None);
        assert_eq!(wildcard("a+b+c"), Some("b+c"));
    }

    #[test]
    fn lookup_with_fallback() {
        let streams =
            json!({"live": {"source": "push://"}, "live+special": {"source": "push://@x"}});
        let m = streams.as_object().unwrap();
        assert_eq!(lookup(m, "live").unwrap().0, "live");
        assert_eq!(lookup(m, "LIVE+cam").unwrap().0, "live");
        assert_eq!(lookup(m, "live+special").unwrap().0, "live+special");
        assert_eq!(lookup(m, "live cam").unwrap().0, "live");
        assert!(lookup(m, "other").is_none());
        assert!(lookup(m, "other+live").is_none());
    }

    #[test]
    fn push_rules() {
        assert_eq!(PushRule::parse("/x.mp4"), None);
        let any = PushRule::parse("push://").unwrap();
        assert_eq!(any, PushRule::default());
        assert!(any.check("8.8.8.8", "live").is_ok());

        let ip = PushRule::parse("push://10.0.0.5").unwrap();
        assert!(ip.check("10.0.0.5", "live").is_ok());
        assert!(ip.check("::ffff:10.0.0.5", "x").is_ok());
        assert!(ip.check("10.0.0.6", "live").is_err());

        let net = PushRule::parse("push://192.168.1.0/24").unwrap();
        assert!(net.check("192.168.1.77", "").is_ok());
        assert!(net.check("192.168.2.1", "").is_err());

        let pw = PushRule::parse("push://@secret").unwrap();
        assert_eq!(pw.password.as_deref(), Some("secret"));
        assert!(pw.whitelist.is_empty());
        assert!(pw.check("1.2.3.4", "secret").is_ok());
        assert!(pw.check("1.2.3.4", "live").is_err());

        let both = PushRule::parse("push://127.0.0.1@pw").unwrap();
        assert!(both.check("127.0.0.1", "pw").is_ok());
        assert!(both.check("127.0.0.1", "nope").is_err());
        assert!(both.check("127.0.0.2", "pw").is_err());

        let v6 = PushRule::parse("push://2001:db8::/32").unwrap();
        assert!(v6.check("2001:db8::1", "").is_ok());
        assert!(v6.check("2001:db9::1", "").is_err());

        let multi = PushRule::parse("push://1.1.1.1,2.2.2.2").unwrap();
        assert!(multi.check("2.2.2.2", "").is_ok());
        let name = PushRule::parse("push://localhost").unwrap();
        assert!(name.check("localhost", "").is_ok());
    }

    #[test]
    fn locality() {
        assert!(is_local("127.0.0.1"));
        assert!(is_local("127.3.4.5"));
        assert!(is_local("::1"));
        assert!(is_local("::ffff:127.0.0.1"));
        assert!(is_local("127.0.0.1:5555"));
        assert!(!is_local("10.0.0.1"));
        assert!(!is_local("garbage"));
    }
}
