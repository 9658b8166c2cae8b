//! Minimal HTTP/1.1 framing: request parsing with bounded sizes (httparse), response writing, URL
//! and query decoding. Sans-IO: callers feed bytes they read and write the bytes they get.

use std::fmt::Write as _;

/// Limits for one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum size of the request line plus headers, in bytes.
    pub max_head: usize,
    /// Maximum number of headers.
    pub max_headers: usize,
    /// Maximum body size (Content-Length).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_headers: 64,
            max_body: 1 << 20,
        }
    }
}

/// An HTTP request as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method (`GET`, `POST` …).
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// Decoded path (without query).
    pub path: String,
    /// Raw query string (after `?`, without `#…`), not decoded.
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The headers in the order sent (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body (empty without one).
    pub body: Vec<u8>,
}

impl Request {
    /// First header with that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header with that name (case-insensitive), joined with `, ` as RFC 9110 §5.3 allows for
    /// list-valued fields; None when there is none.
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let mut all = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = all.next()?;
        Some(all.fold(first.to_string(), |acc, v| acc + ", " + v))
    }

    /// Decoded query parameters in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_query(&self.query)
    }

    /// First query parameter with that name, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Whether the connection stays open after the answer (HTTP/1.1 default keep-alive,
    /// HTTP/1.0 only with `Connection: keep-alive`).
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").map(|c| c.to_ascii_lowercase());
        match conn.as_deref() {
            Some(c) if c.split(',').any(|t| t.trim() == "close") => false,
            Some(c) if c.split(',').any(|t| t.trim() == "keep-alive") => true,
            _ => self.version >= 1,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The head is over its limit.
    #[error("request head too large")]
    HeadTooLarge,
    /// The body is over its limit.
    #[error("request body too large")]
    BodyTooLarge,
    /// Not HTTP/1.x as this parser reads it.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A transfer encoding other than chunked.
    #[error("unsupported transfer encoding")]
    UnsupportedEncoding,
}

impl HttpError {
    /// The status code to answer with before closing.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::Malformed(_) => 400,
            HttpError::UnsupportedEncoding => 501,
        }
    }
}

/// Tries to parse one request from the start of `buf`. `Ok(None)`: need more bytes.
/// `Ok(Some((req, used)))`: a complete request that took `used` bytes (pipelined bytes stay).
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    if head_len > limits.max_head {
        return Err(HttpError::HeadTooLarge);
    }
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("").to_string();
    let version = req.version.unwrap_or(1);
    let mut hdrs = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        hdrs.push((
            h.name.to_string(),
            String::from_utf8_lossy(h.value).into_owned(),
        ));
    }
    let find = |n: &str| {
        hdrs.iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    if let Some(te) = find("transfer-encoding") {
        if !te.trim().eq_ignore_ascii_case("identity") {
            return Err(HttpError::UnsupportedEncoding);
        }
    }
    // One Host only (RFC 9112 §3.2: a request with two is answered 400): two hops that each
    // believe another one would disagree on which site (and which auto-authorisation) it is for.
    if hdrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
        .nth(1)
        .is_some()
    {
        return Err(HttpError::Malformed("more than one Host".into()));
    }
    // Request smuggling: one Content-Length only, digits only (no sign, no list, no spaces inside),
    // so that every hop agrees where this request ends.
    let mut lengths = hdrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim());
    let body_len = match (lengths.next(), lengths.next()) {
        (None, _) => 0,
        (Some(_), Some(_)) => {
            return Err(HttpError::Malformed("more than one Content-Length".into()))
        }
        (Some(cl), None) => {
            if cl.is_empty() || cl.len() > 19 || !cl.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::Malformed("bad Content-Length".into()));
            }
            cl.parse::<usize>()
                .map_err(|_| HttpError::Malformed("bad Content-Length".into()))?
        }
    };
    if body_len > limits.max_body {
        return Err(HttpError::BodyTooLarge);
    }
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    let body = buf[head_len..head_len + body_len].to_vec();
    let without_fragment = target.split('#').next().unwrap_or("");
    let (raw_path, query) = match without_fragment.split_once('?') {
        Some((p, q)) => (p, q.to_string()),
        None => (without_fragment, String::new()),
    };
    let path = percent_decode(raw_path, false);
    Ok(Some((
        Request {
            method,
            target,
            path,
            query,
            version,
            headers: hdrs,
            body,
        },
        head_len + body_len,
    )))
}

/// Whether `buf` holds a complete request head that asks for `Expect: 100-continue` (the caller
/// then sends `HTTP/1.1 100 Continue` once before the body arrives).
pub fn wants_continue(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    matches!(req.parse(buf), Ok(httparse::Status::Complete(_)))
        && req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("expect") && h.value.eq_ignore_ascii_case(b"100-continue")
        })
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Percent-decodes `s`; with `plus_as_space`, `+` becomes a space (form/query encoding). Invalid
/// escapes are kept literally; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            out.push(c as char);
        } else {
            let _ = write!(out, "%{c:02X}");
        }
    }
    out
}

/// Splits `a=1&b=x+y` into decoded pairs (also used for form bodies).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response to be serialised with [`Response::to_bytes`]. `Content-Length` and `Connection` are
/// added automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, without `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether the connection stays open.
    pub keep_alive: bool,
}

impl Response {
    /// An empty response with this status, keep-alive.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            keep_alive: true,
        }
    }
    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    /// Sets the body.
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Response {
        self.body = b.into();
        self
    }
    /// Sets keep-alive.
    pub fn keep_alive(mut self, k: bool) -> Response {
        self.keep_alive = k;
        self
    }
    /// A JSON answer with `Content-Type: application/json` and no caching.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status)
            .header("Content-Type", "application/json")
            .header("Cache-Control", "no-store")
            .body(body)
    }
    /// A plain-text (UTF-8) answer.
    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.as_bytes())
    }

    /// The head (status line and headers) only, for callers that send the body separately.
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut h = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            // Never let a header value split the head.
            let v = v.replace(['\r', '\n'], " ");
            let _ = write!(h, "{k}: {v}\r\n");
        }
        let _ = write!(h, "Content-Length: {}\r\n", self.body.len());
        h.push_str(if self.keep_alive {
            "Connection: keep-alive\r\n"
        } else {
            "Connection: close\r\n"
        });
        h.push_str("\r\n");
        h.into_bytes()
    }

    /// Head and body, as sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.head_bytes();
        b.extend_from_slice(&self.body);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_with_query() {
        let raw = b"GET /api?command=%7B%22a%22%3A1%7D&x=a+b HTTP/1.1\r\nHost: h\r\nX-Real-IP: 1.2.3.4\r\n\r\n";
        let (r, n) = parse_request(raw, &Limits::default()).unwrap().unwrap();
        assert_eq!(n, raw.len());
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api");
        assert_eq!(r.query_param("command").as_deref(), Some("{\"a\":1}"));
        assert_eq!(r.query_param("x").as_deref(), Some("a b"));
        assert_eq!(r.header("x-real-ip"), Some("1.2.3.4"));
        assert!(r.keep_alive());
    }

    #[test]
    fn partial_then_body_and_pipelining() {
        let raw = b"POST /api HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n";
        let l = Limits::default();
        assert_eq!(parse_request(&raw[..10], &l).unwrap(), None);
        assert_eq!(parse_request(&raw[..40], &l).unwrap(), None);
        let (r, n) = parse_request(raw, &l).unwrap().unwrap();
        assert_eq!(r.body, b"hello");
        let (r2, n2) = parse_request(&raw[n..], &l).unwrap().unwrap();
        assert_eq!(r2.path, "/");
        assert_eq!(r2.version, 0);
        assert!(!r2.keep_alive());
        assert_eq!(n + n2, raw.len());
    }

    #[test]
    fn limits() {
        let l = Limits {
            max_head: 64,
            max_headers: 4,
            max_body: 10,
        };
        let big = vec![b'a'; 100];
        assert_eq!(parse_request(&big, &l), Err(HttpError::HeadTooLarge));
        let mut head = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        head.extend(vec![b'x'; 100]);
        assert_eq!(parse_request(&head, &l), Err(HttpError::HeadTooLarge));
        let many = b"GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n\r\n";
        assert_eq!(parse_request(many, &l), Err(HttpError::HeadTooLarge));
        let body = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(parse_request(body, &l), Err(HttpError::BodyTooLarge));
        assert_eq!(HttpError::BodyTooLarge.status(), 413);
        for smuggle in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
            b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
            b"POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\nhello",
            b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\nhello",
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nhost: a\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_request(smuggle, &Limits::default()),
                    Err(HttpError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(smuggle)
            );
        }
        let bad = b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n";
        assert!(matches!(
            parse_request(bad, &l),
            Err(HttpError::Malformed(_))
        ));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse_request(chunked, &l),
            Err(HttpError::UnsupportedEncoding)
        );
        assert!(matches!(
            parse_request(b"\x00\x01 / HTTP/1.1\r\n\r\n", &l),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn expect_continue() {
        let head = b"POST /api HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
        assert!(wants_continue(head));
        assert!(!wants_continue(&head[..20]));
        assert!(!wants_continue(
            b"POST /api HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
        ));
        assert_eq!(parse_request(head, &Limits::default()), Ok(None));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c", false), "a b+c");
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz%4", true), "%zz%4");
        assert_eq!(percent_decode("%C3%A9", false), "é");
        assert_eq!(percent_decode("%41", false), "A");
        assert_eq!(percent_decode("%4", false), "%4");
        assert_eq!(
            parse_query("a=1&&b&c=%3D"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("c".into(), "=".into())
            ]
        );
        assert_eq!(percent_encode("{\"a\": 1}"), "%7B%22a%22%3A%201%7D");
        assert_eq!(percent_decode(&percent_encode("x y/é"), false), "x y/é");
    }

    #[test]
    fn path_decoded_and_fragment_dropped() {
        let (r, _) = parse_request(
            b"GET /a%20b.mp4?x=1#frag HTTP/1.1\r\n\r\n",
            &Limits::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.path, "/a b.mp4");
        assert_eq!(r.query, "x=1");
    }

    #[test]
    fn response_bytes() {
        let r = Response::json(200, "{}").keep_alive(false);
        let s = String::from_utf8(r.to_bytes()).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s.contains("Content-Type: application/json\r\n"));
        assert!(s.contains("Content-Length: 2\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\n{}"));
        let r = Response::new(404).header("X", "a\r\nb");
        let s = String::from_utf8(r.to_bytes()).unwrap();
        assert!(s.contains("X: a  b\r\n"));
        assert!(s.starts_with("HTTP/1.1 404 Not Found"));
    }
}
