//! RTSP authentication: Basic (RFC 7617) and Digest with MD5 (RFC 2617/7616, as cameras, ffmpeg
//! and GStreamer implement it: `qop=auth` or no qop).
//!
//! A server ([`Authenticator`]) offers `qop="auth"` in its challenges, as most servers do, and
//! takes both kinds of answer: with `qop=auth` (ffmpeg, live555: `cnonce` and a nonce count
//! `nc` enter the hash, and a count that does not grow is a replay) and without a qop (RFC
//! 2069's form, which GStreamer's `rtspsrc` sends whatever is offered). Either way the answer's
//! `uri` must name the request's URI (RFC 7616 section 3.4.6), so a response signed for one
//! request cannot be replayed on another resource.

use super::RtspError;
use md5::{Digest as _, Md5};

/// Longest header value we parse for authentication.
const MAX_AUTH: usize = 4096;

/// A user name and password from a `Basic` `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The user name (before the first colon).
    pub user: String,
    /// The password (everything after the first colon: it may hold colons itself).
    pub password: String,
}

impl BasicCredentials {
    /// Parses `Basic <base64(user:password)>`.
    pub fn parse(value: &str) -> Result<BasicCredentials, RtspError> {
        let bad = |d: &str| RtspError::BadAuth {
            what: "Basic",
            detail: d.to_string(),
        };
        if value.len() > MAX_AUTH {
            return Err(bad("too long"));
        }
        let (scheme, rest) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("no scheme"))?;
        if !scheme.eq_ignore_ascii_case("Basic") {
            return Err(bad("not Basic"));
        }
        let raw = base64_decode(rest.trim()).ok_or_else(|| bad("bad base64"))?;
        let text = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
        let (user, password) = text.split_once(':').ok_or_else(|| bad("no colon"))?;
        Ok(BasicCredentials {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        format!(
            "Basic {}",
            base64_encode(format!("{}:{}", self.user, self.password).as_bytes())
        )
    }
}

/// A `WWW-Authenticate: Digest …` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    /// The protection space, part of what the client hashes (so it must be echoed exactly).
    pub realm: String,
    /// The server's one-time value the response is bound to.
    pub nonce: String,
    /// Opaque data the client must return unchanged.
    pub opaque: Option<String>,
    /// Whether `qop="auth"` is offered.
    pub qop_auth: bool,
    /// The nonce expired but the credentials were right: retry with the new one, without asking
    /// the user again.
    pub stale: bool,
}

impl DigestChallenge {
    /// Parses a `Digest` challenge; other algorithms than MD5 are refused.
    pub fn parse(value: &str) -> Result<DigestChallenge, RtspError> {
        let p = digest_params(value)?;
        let get = |k: &str| {
            p.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        if let Some(a) = get("algorithm") {
            if !a.eq_ignore_ascii_case("MD5") {
                return Err(RtspError::BadAuth {
                    what: "Digest",
                    detail: format!("algorithm {a:?}"),
                });
            }
        }
        let missing = |k: &str| RtspError::BadAuth {
            what: "Digest",
            detail: format!("no {k}"),
        };
        Ok(DigestChallenge {
            realm: get("realm").ok_or_else(|| missing("realm"))?,
            nonce: get("nonce").ok_or_else(|| missing("nonce"))?,
            opaque: get("opaque"),
            qop_auth: get("qop")
                .map(|q| q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")))
                .unwrap_or(false),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `WWW-Authenticate` header value (`qop="auth"` when [`DigestChallenge::qop_auth`]).
    pub fn header(&self) -> String {
        let mut s = format!(
            "Digest realm=\"{}\", nonce=\"{}\"",
            quote_safe(&self.realm),
            quote_safe(&self.nonce)
        );
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{}\"", quote_safe(o)));
        }
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if self.stale {
            s.push_str(", stale=TRUE");
        }
        s.push_str(", algorithm=MD5");
        s
    }

    /// The `Authorization` value a client sends for `method` on `uri`. `cnonce` and `nc` are used
    /// only when the challenge offers `qop=auth`.
    pub fn respond(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let ha1 = md5_hex(format!("{user}:{}:{password}", self.realm).as_bytes());
        let ha2 = md5_hex(format!("{method}:{uri}").as_bytes());
        let nc_s = format!("{nc:08x}");
        let response = if self.qop_auth {
            md5_hex(format!("{ha1}:{}:{nc_s}:{cnonce}:auth:{ha2}", self.nonce).as_bytes())
        } else {
            md5_hex(format!("{ha1}:{}:{ha2}", self.nonce).as_bytes())
        };
        let mut s = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\"",
            quote_safe(user),
            quote_safe(&self.realm),
            quote_safe(&self.nonce),
            quote_safe(uri)
        );
        if self.qop_auth {
            s.push_str(&format!(
                ", qop=auth, nc={nc_s}, cnonce=\"{}\"",
                quote_safe(cnonce)
            ));
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{}\"", quote_safe(o)));
        }
        s.push_str(", algorithm=MD5");
        s
    }
}

/// The fields of a `Digest` `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    /// The user the client claims to be.
    pub username: String,
    /// The realm the client answered (must be the server's).
    pub realm: String,
    /// The nonce the client answered (must be the server's current one).
    pub nonce: String,
    /// The URI the client signed (not always the request URI; see [`DigestCredentials::verify`]).
    pub uri: String,
    /// The 32-hex-digit MD5 response.
    pub response: String,
    /// `auth` when the client used a qop, which brings `nc` and `cnonce` into the hash.
    pub qop: Option<String>,
    /// The nonce count (with qop).
    pub nc: Option<String>,
    /// The client's nonce (with qop).
    pub cnonce: Option<String>,
}

impl DigestCredentials {
    /// Parses a `Digest` `Authorization` value; every field needed to verify it must be there.
    pub fn parse(value: &str) -> Result<DigestCredentials, RtspError> {
        let p = digest_params(value)?;
        let get = |k: &str| {
            p.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let need = |k: &str| {
            get(k).ok_or_else(|| RtspError::BadAuth {
                what: "Digest",
                detail: format!("no {k}"),
            })
        };
        Ok(DigestCredentials {
            username: need("username")?,
            realm: need("realm")?,
            nonce: need("nonce")?,
            uri: need("uri")?,
            response: need("response")?,
            qop: get("qop"),
            nc: get("nc"),
            cnonce: get("cnonce"),
        })
    }

    /// Whether the response proves knowledge of `password` for `method` on the `uri` the client
    /// signed. That this `uri` is the request's is a separate check
    /// ([`DigestCredentials::uri_matches`]; [`Authenticator::verify_request`] does both).
    pub fn verify(&self, method: &str, password: &str) -> bool {
        let ha1 = md5_hex(format!("{}:{}:{password}", self.username, self.realm).as_bytes());
        let ha2 = md5_hex(format!("{method}:{}", self.uri).as_bytes());
        let expect = match (&self.qop, &self.nc, &self.cnonce) {
            (Some(q), Some(nc), Some(cn)) if q.eq_ignore_ascii_case("auth") => {
                md5_hex(format!("{ha1}:{}:{nc}:{cn}:auth:{ha2}", self.nonce).as_bytes())
            }
            (None, _, _) => md5_hex(format!("{ha1}:{}:{ha2}", self.nonce).as_bytes()),
            _ => return false,
        };
        ct_eq(
            expect.as_bytes(),
            self.response.to_ascii_lowercase().as_bytes(),
        )
    }

    /// Whether the signed `uri` names `request_uri`, the URI of the request it came with (RFC
    /// 7616 section 3.4.6). The same string; or, as one may be absolute (`rtsp://host:port/p`)
    /// and the other a path, or a proxy or NAT may have changed the authority, the same path and
    /// query. A trailing `/` is not told apart (the aggregate URI of a session is written both
    /// ways by clients).
    pub fn uri_matches(&self, request_uri: &str) -> bool {
        if self.uri == request_uri {
            return true;
        }
        let a = uri_path(&self.uri);
        let b = uri_path(request_uri);
        !a.is_empty() && a == b
    }

    /// The nonce count of a `qop=auth` answer (8 hex digits), if it has a valid one.
    pub fn nonce_count(&self) -> Option<u32> {
        let nc = self.nc.as_deref()?;
        if nc.is_empty() || nc.len() > 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(nc, 16).ok()
    }
}

/// The path and query of a request URI (`rtsp://h:1/a/b?x` gives `/a/b?x`; `/a/b/` gives
/// `/a/b`; `*` stays `*`), without a trailing `/`.
fn uri_path(uri: &str) -> &str {
    let rest = match uri.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            rest.find('/').map_or("", |i| &rest[i..])
        }
        _ => uri,
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = path.trim_end_matches('/');
    match query {
        // A query keeps its path as written (rare; compared whole).
        Some(_) => rest,
        None if path.is_empty() => "/",
        None => path,
    }
}

/// What a server requires of requests, and checks them against.
///
/// The server needs the password in clear (Digest hashes it with the nonce). Nonces are the
/// edge's: it makes them unpredictable, and it expires them ([`Authenticator::rotate`]) after
/// a while; only the current one is kept, so memory stays bounded whatever a client does. An
/// answer with the right password to any other nonce (an expired one, or one a client made up
/// before it was challenged) is told `stale=TRUE`: the client retries with the current nonce
/// without asking its user again. It is never let in. What one connection has seen (the
/// nonce counts of `qop=auth` answers, the stale nonce it was told about) is kept by the caller
/// in a [`ReplayGuard`] ([`Authenticator::verify_request`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Authenticator {
    /// The only user let in.
    pub user: String,
    /// That user's password.
    pub password: String,
    /// The realm put into challenges.
    pub realm: String,
    /// The nonce handed out in challenges (the only one accepted).
    pub nonce: String,
    /// Whether `Basic` credentials are accepted too (only sensible over trusted links).
    pub allow_basic: bool,
}

/// What [`Authenticator::verify`] found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthCheck {
    /// Right credentials, for the current nonce.
    Ok,
    /// No `Authorization` header: the usual first request of a client (answered 401).
    Missing,
    /// The right password, but for another nonce than the current one (answered 401 with
    /// `stale=TRUE`).
    Stale,
    /// Credentials that are wrong, unparsable, of a scheme not allowed, for another realm, or
    /// (Digest) signed for another URI than the request's.
    Refused {
        /// The user name the client gave, if it could be read (for the log).
        user: Option<String>,
        /// The scheme tried (`Digest`, `Basic`, or what the client sent).
        scheme: String,
    },
    /// A right Digest answer seen before: a `qop=auth` nonce count that did not grow, or an
    /// answer to a stale nonce the client was already told is stale. A client does not do that;
    /// a replay of a captured request does. Answered 401 and counted as a failure.
    Replayed {
        /// The user name of the answer (for the log).
        user: String,
    },
}

/// What one connection's answers showed so far, to refuse replays
/// ([`Authenticator::verify_request`]): bounded (one nonce and one count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayGuard {
    /// The nonce `last_nc` is about (the server's current one when it was seen).
    nonce: String,
    /// The highest nonce count accepted with `nonce`.
    last_nc: u32,
    /// A stale nonce this connection was already told about.
    stale_told: Option<String>,
}

impl Authenticator {
    /// A server's requirement of `user`/`password`, with a first `nonce`.
    pub fn new(user: &str, password: &str, realm: &str, nonce: String, allow_basic: bool) -> Self {
        Authenticator {
            user: user.to_string(),
            password: password.to_string(),
            realm: realm.to_string(),
            nonce,
            allow_basic,
        }
    }

    /// Replaces the nonce (answers to the old one are stale from now on).
    pub fn rotate(&mut self, nonce: String) {
        self.nonce = nonce;
    }

    /// Whether the `Authorization` value (if any) of a `method` request is acceptable, by
    /// [`Authenticator::verify`] (no URI, no replay check).
    pub fn check(&self, method: &str, authorization: Option<&str>) -> bool {
        self.verify(method, authorization) == AuthCheck::Ok
    }

    /// What the `Authorization` value (if any) of a `method` request for `uri` is worth, on a
    /// connection whose earlier answers `guard` remembers: [`Authenticator::verify`], and for
    /// Digest the signed `uri` must be the request's ([`DigestCredentials::uri_matches`]), a
    /// `qop=auth` nonce count must grow (one already used is [`AuthCheck::Replayed`]), and an
    /// answer to a stale nonce is [`AuthCheck::Stale`] once per nonce, [`AuthCheck::Replayed`]
    /// after that. Answers without a qop cannot be counted: they are bound to the method, the
    /// URI and the nonce, which expires.
    pub fn verify_request(
        &self,
        method: &str,
        uri: &str,
        authorization: Option<&str>,
        guard: &mut ReplayGuard,
    ) -> AuthCheck {
        let check = self.verify(method, authorization);
        let Some(v) = authorization else {
            return check;
        };
        let Ok(c) = DigestCredentials::parse(v) else {
            return check; // Basic, or refused already
        };
        if matches!(check, AuthCheck::Refused { .. }) {
            return check;
        }
        if !c.uri_matches(uri) {
            return AuthCheck::Refused {
                user: Some(c.username),
                scheme: "Digest".into(),
            };
        }
        if check == AuthCheck::Stale {
            if guard.stale_told.as_deref() == Some(c.nonce.as_str()) {
                return AuthCheck::Replayed { user: c.username };
            }
            guard.stale_told = Some(c.nonce);
            return AuthCheck::Stale;
        }
        if c.qop.is_some() {
            let Some(nc) = c.nonce_count() else {
                return AuthCheck::Refused {
                    user: Some(c.username),
                    scheme: "Digest".into(),
                };
            };
            if guard.nonce != self.nonce {
                guard.nonce = self.nonce.clone();
                guard.last_nc = 0;
            }
            if nc <= guard.last_nc {
                return AuthCheck::Replayed { user: c.username };
            }
            guard.last_nc = nc;
        }
        check
    }

    /// What the `Authorization` value (if any) of a `method` request is worth, without binding
    /// the signed URI to the request's or counting nonces ([`Authenticator::verify_request`]
    /// does both; a server checks requests with it). Secrets are compared in constant time
    /// (the user name and password of Basic as MD5 digests, so that their lengths do not show
    /// either; a Digest response is a fixed-length hash).
    pub fn verify(&self, method: &str, authorization: Option<&str>) -> AuthCheck {
        let Some(v) = authorization else {
            return AuthCheck::Missing;
        };
        let scheme = v.trim_start().split(' ').next().unwrap_or("");
        let refused = |user: Option<String>| AuthCheck::Refused {
            user,
            scheme: scheme.chars().take(16).collect(),
        };
        if scheme.eq_ignore_ascii_case("Basic") {
            return match BasicCredentials::parse(v) {
                Ok(c) if self.allow_basic => {
                    let user_ok = ct_eq(
                        md5_hex(c.user.as_bytes()).as_bytes(),
                        md5_hex(self.user.as_bytes()).as_bytes(),
                    );
                    let pass_ok = ct_eq(
                        md5_hex(c.password.as_bytes()).as_bytes(),
                        md5_hex(self.password.as_bytes()).as_bytes(),
                    );
                    if user_ok & pass_ok {
                        AuthCheck::Ok
                    } else {
                        refused(Some(c.user))
                    }
                }
                Ok(c) => refused(Some(c.user)),
                Err(_) => refused(None),
            };
        }
        let Ok(c) = DigestCredentials::parse(v) else {
            return refused(None);
        };
        let user_ok = ct_eq(
            md5_hex(c.username.as_bytes()).as_bytes(),
            md5_hex(self.user.as_bytes()).as_bytes(),
        );
        let right = user_ok & (c.realm == self.realm) & c.verify(method, &self.password);
        if !right {
            return refused(Some(c.username));
        }
        if c.nonce == self.nonce {
            AuthCheck::Ok
        } else {
            AuthCheck::Stale
        }
    }

    /// The `WWW-Authenticate` values of a 401 answer (Digest first, then Basic if allowed).
    pub fn challenges(&self) -> Vec<String> {
        self.challenges_for(&AuthCheck::Missing)
    }

    /// The `WWW-Authenticate` values answering a request that `check` found wanting: Digest
    /// offering `qop="auth"` (with `stale=TRUE` for a stale nonce), then Basic if allowed.
    pub fn challenges_for(&self, check: &AuthCheck) -> Vec<String> {
        let mut v = vec![DigestChallenge {
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            opaque: None,
            qop_auth: true,
            stale: *check == AuthCheck::Stale,
        }
        .header()];
        if self.allow_basic {
            v.push(format!("Basic realm=\"{}\"", quote_safe(&self.realm)));
        }
        v
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn quote_safe(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '"' | '\\' | '\r' | '\n'))
        .collect()
}

/// The lower-case hex MD5 of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    let d = Md5::digest(data);
    let mut s = String::with_capacity(32);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses `Digest k=v, k="v", …` into (name, value) pairs (at most 32).
fn digest_params(value: &str) -> Result<Vec<(String, String)>, RtspError> {
    let bad = |d: &str| RtspError::BadAuth {
        what: "Digest",
        detail: d.to_string(),
    };
    if value.len() > MAX_AUTH {
        return Err(bad("too long"));
    }
    let v = value.trim_start();
    let rest = match v.split_once(|c: char| c.is_whitespace()) {
        Some((s, r)) if s.eq_ignore_ascii_case("Digest") => r,
        _ => return Err(bad("not Digest")),
    };
    let mut out = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let b = rest.as_bytes();
    let mut i = 0;
    let _ = &mut chars;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = rest[ks..i].trim().to_string();
        if i >= b.len() || b[i] != b'=' {
            return Err(bad("parameter without value"));
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        // The escaped character, whole (it may be multi-byte UTF-8).
                        let ch = rest[i + 1..].chars().next().unwrap_or('?');
                        val.push(ch);
                        i += 1 + ch.len_utf8();
                    }
                    b'"' => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => {
                        // Take a whole UTF-8 character.
                        let ch = rest[i..].chars().next().unwrap_or('?');
                        val.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            if !closed {
                return Err(bad("unterminated quote"));
            }
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[vs..i].trim().to_string();
        }
        if out.len() >= 32 {
            return Err(bad("too many parameters"));
        }
        out.push((key, val));
    }
    Ok(out)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(B64[(n >> 18) as usize & 63] as char);
        s.push(B64[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

/// Decodes standard base64 (padding optional, no whitespace); `None` on anything else.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 section 3.5 (HTTP, qop=auth), the computation RTSP reuses.
        let c = DigestChallenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(c.qop_auth);
        let h = c.respond(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
        let creds = DigestCredentials::parse(&h).unwrap();
        assert!(creds.verify("GET", "Circle Of Life"));
        assert!(!creds.verify("GET", "circle of life"));
        assert!(!creds.verify("POST", "Circle Of Life"));
    }

    #[test]
    fn rfc7616_md5_example() {
        // RFC 7616 section 3.9.1, the MD5 response (qop=auth).
        let creds = DigestCredentials::parse(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, response=\"8ca523f5e9506fed4657c9700eebdbec\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        assert!(creds.verify("GET", "Circle of Life"));
        assert!(!creds.verify("GET", "Circle Of Life"));
        assert_eq!(creds.nonce_count(), Some(1));
        assert!(creds.uri_matches("/dir/index.html"));
        assert!(creds.uri_matches("http://www.example.org/dir/index.html"));
        assert!(!creds.uri_matches("/dir/other.html"));
        // What our client computes for the same challenge is the same.
        let ch = DigestChallenge {
            realm: "http-auth@example.org".into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            opaque: None,
            qop_auth: true,
            stale: false,
        };
        let h = ch.respond(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        );
        assert!(
            h.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{h}"
        );
    }

    #[test]
    fn rfc2069_answer_without_qop() {
        // RFC 2069 section 2.4 (the form RFC 2617 keeps for clients without qop).
        let creds = DigestCredentials::parse(
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", response=\"1949323746fe6a43ef61f9606e7febea\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(creds.qop, None);
        assert!(creds.verify("GET", "CircleOfLife"));
        assert!(!creds.verify("GET", "Circle Of Life"));
        // A server offering qop=auth takes it (GStreamer answers so).
        let a = Authenticator::new(
            "Mufasa",
            "CircleOfLife",
            "testrealm@host.com",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            false,
        );
        assert!(DigestChallenge::parse(&a.challenges()[0]).unwrap().qop_auth);
        let header = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", response=\"1949323746fe6a43ef61f9606e7febea\"";
        let mut g = ReplayGuard::default();
        for _ in 0..2 {
            assert_eq!(
                a.verify_request("GET", "/dir/index.html", Some(header), &mut g),
                AuthCheck::Ok
            );
        }
        assert!(matches!(
            a.verify_request("GET", "/dir/other.html", Some(header), &mut g),
            AuthCheck::Refused { .. }
        ));
    }

    #[test]
    fn request_uris_and_counts() {
        let a = Authenticator::new("cam", "pw", "mist", "n1".into(), false);
        let ch = DigestChallenge::parse(&a.challenges()[0]).unwrap();
        let mut g = ReplayGuard::default();
        let uri = "rtsp://10.0.0.1:554/live";
        let at = |nc: u32, signed: &str| ch.respond("cam", "pw", "DESCRIBE", signed, "x1", nc);
        // The URI as written, as a path, with the other trailing slash: the same resource.
        for (nc, signed) in [(1, uri), (2, "/live"), (3, "rtsp://10.0.0.1:554/live/")] {
            assert_eq!(
                a.verify_request("DESCRIBE", uri, Some(&at(nc, signed)), &mut g),
                AuthCheck::Ok,
                "{signed}"
            );
        }
        // Another resource, or an older count: no.
        for (nc, signed) in [(4, "rtsp://10.0.0.1:554/other"), (5, "/live/trackID=1")] {
            assert!(matches!(
                a.verify_request("DESCRIBE", uri, Some(&at(nc, signed)), &mut g),
                AuthCheck::Refused { user: Some(u), .. } if u == "cam"
            ));
        }
        assert_eq!(
            a.verify_request("DESCRIBE", uri, Some(&at(3, uri)), &mut g),
            AuthCheck::Replayed { user: "cam".into() }
        );
        // Refused answers did not use counts up: 4 goes.
        assert_eq!(
            a.verify_request("DESCRIBE", uri, Some(&at(4, uri)), &mut g),
            AuthCheck::Ok
        );
        // A count that is not hex, or a qop without a count: refused.
        let bad = at(5, uri).replace("nc=00000005", "nc=0000000g");
        assert!(matches!(
            a.verify_request("DESCRIBE", uri, Some(&bad), &mut g),
            AuthCheck::Refused { .. }
        ));
        let none = at(5, uri).replace(", nc=00000005", "");
        assert!(matches!(
            a.verify_request("DESCRIBE", uri, Some(&none), &mut g),
            AuthCheck::Refused { .. }
        ));
        // Basic and missing credentials are as `verify` says.
        assert_eq!(
            a.verify_request("DESCRIBE", uri, None, &mut g),
            AuthCheck::Missing
        );
        assert_eq!(uri_path("*"), "*");
        assert_eq!(uri_path("rtsp://h"), "/");
        assert_eq!(uri_path("rtsp://h:1/a/b/?x=1"), "/a/b/?x=1");
    }

    #[test]
    fn server_checks_digest_and_basic() {
        let a = Authenticator {
            user: "cam".into(),
            password: "s3cret".into(),
            realm: "mist".into(),
            nonce: "abcdef".into(),
            allow_basic: false,
        };
        let ch = DigestChallenge::parse(&a.challenges()[0]).unwrap();
        let h = ch.respond("cam", "s3cret", "DESCRIBE", "rtsp://h/live", "", 1);
        assert!(a.check("DESCRIBE", Some(&h)));
        assert!(!a.check("SETUP", Some(&h)));
        assert!(!a.check("DESCRIBE", None));
        let basic = BasicCredentials {
            user: "cam".into(),
            password: "s3cret".into(),
        }
        .header();
        assert!(!a.check("DESCRIBE", Some(&basic)));
        let a = Authenticator {
            allow_basic: true,
            ..a
        };
        assert!(a.check("DESCRIBE", Some(&basic)));
        assert_eq!(
            BasicCredentials::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
                .unwrap()
                .password,
            "open sesame"
        );
    }

    #[test]
    fn nonces_expire_and_failures_are_told_apart() {
        let mut a = Authenticator::new("cam", "pw", "mist", "n1".into(), false);
        let ch = DigestChallenge::parse(&a.challenges()[0]).unwrap();
        assert!(!ch.stale);
        let old = ch.respond("cam", "pw", "PLAY", "rtsp://h/s/", "", 1);
        assert_eq!(a.verify("PLAY", Some(&old)), AuthCheck::Ok);
        assert_eq!(a.verify("PLAY", None), AuthCheck::Missing);
        let wrong = ch.respond("cam", "nope", "PLAY", "rtsp://h/s/", "", 1);
        assert_eq!(
            a.verify("PLAY", Some(&wrong)),
            AuthCheck::Refused {
                user: Some("cam".into()),
                scheme: "Digest".into()
            }
        );
        let other = ch.respond("eve", "pw", "PLAY", "rtsp://h/s/", "", 1);
        assert!(matches!(
            a.verify("PLAY", Some(&other)),
            AuthCheck::Refused { .. }
        ));
        // Expired: the right answer to the old nonce is stale, and the challenge says so.
        a.rotate("n2".into());
        assert_eq!(a.verify("PLAY", Some(&old)), AuthCheck::Stale);
        let ch2 = DigestChallenge::parse(&a.challenges_for(&AuthCheck::Stale)[0]).unwrap();
        assert!(ch2.stale);
        assert_eq!(ch2.nonce, "n2");
        let new = ch2.respond("cam", "pw", "PLAY", "rtsp://h/s/", "", 2);
        assert_eq!(a.verify("PLAY", Some(&new)), AuthCheck::Ok);
        // Two rotations later (or a nonce the client made up): still only stale, never in.
        a.rotate("n3".into());
        assert_eq!(a.verify("PLAY", Some(&old)), AuthCheck::Stale);
        let made_up = DigestChallenge {
            nonce: "guess".into(),
            ..ch2.clone()
        }
        .respond("cam", "pw", "PLAY", "rtsp://h/s/", "", 1);
        assert_eq!(a.verify("PLAY", Some(&made_up)), AuthCheck::Stale);
        // A wrong password for an old nonce is refused (stale needs the right one).
        let wrong2 = ch2.respond("cam", "x", "PLAY", "rtsp://h/s/", "", 2);
        assert!(matches!(
            a.verify("PLAY", Some(&wrong2)),
            AuthCheck::Refused { .. }
        ));
        // Basic when not allowed is refused even with the right password.
        let basic = BasicCredentials {
            user: "cam".into(),
            password: "pw".into(),
        }
        .header();
        assert!(
            matches!(a.verify("PLAY", Some(&basic)), AuthCheck::Refused { scheme, .. } if scheme == "Basic")
        );
        assert_eq!(a.challenges().len(), 1);
        a.allow_basic = true;
        assert_eq!(a.verify("PLAY", Some(&basic)), AuthCheck::Ok);
        assert!(a.challenges()[1].starts_with("Basic realm=\"mist\""));
    }

    #[test]
    fn base64_round_trip_and_garbage() {
        for n in 0..20 {
            let d: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&d)).unwrap(), d);
        }
        assert_eq!(base64_decode("Z2xvYmFs"), Some(b"global".to_vec()));
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("ab c").is_none());
        assert!(DigestChallenge::parse("Digest realm=\"x").is_err());
        // An escaped multi-byte character (found by reading, not by the fuzzer).
        let c = DigestChallenge::parse("Digest realm=\"a\\é\", nonce=\"n\"").unwrap();
        assert_eq!(c.realm, "aé");
        assert!(DigestChallenge::parse("Digest realm=x, nonce=y, algorithm=SHA-256").is_err());
    }
}
