//! The `Transport` header (RFC 2326 section 12.39; RFC 7826 section 18.54 for the 2.0 subset).

use super::RtspError;
use std::fmt::Write as _;

/// The lower transport of a transport spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lower {
    /// RTP over UDP, one port pair per track.
    Udp,
    /// Interleaved on the RTSP TCP connection.
    Tcp,
}

/// One transport spec (a `Transport` header may offer several, comma-separated, best first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// `RTP/AVP`, `RTP/AVPF`, `RTP/SAVP` …, without the lower transport.
    pub profile: String,
    /// UDP or interleaved TCP.
    pub lower: Lower,
    /// `false` for `multicast`.
    pub unicast: bool,
    /// `destination=`: where the client asks the server to send (a server that obeyed any address
    /// would be a traffic reflector).
    pub destination: Option<String>,
    /// `source=`: where the server sends from.
    pub source: Option<String>,
    /// `interleaved=`: the (RTP, RTCP) channels on the TCP connection.
    pub interleaved: Option<(u8, u8)>,
    /// `client_port=`: the client's (RTP, RTCP) UDP ports.
    pub client_port: Option<(u16, u16)>,
    /// `server_port=`: the server's (RTP, RTCP) UDP ports.
    pub server_port: Option<(u16, u16)>,
    /// `port=`: the multicast (RTP, RTCP) ports.
    pub port: Option<(u16, u16)>,
    /// `ttl=`: multicast time to live.
    pub ttl: Option<u8>,
    /// `ssrc=`: the SSRC the sender will use, so a receiver can tell its packets from strays.
    pub ssrc: Option<u32>,
    /// `mode=` (`PLAY`, `RECORD`), upper-cased, quotes removed.
    pub mode: Option<String>,
    /// Parameters we do not interpret, kept in order as (name, value).
    pub other: Vec<(String, Option<String>)>,
}

/// At most this many specs are read from one header.
const MAX_SPECS: usize = 16;

impl Transport {
    /// A unicast RTP/AVP transport on `lower` with nothing else set.
    pub fn new(lower: Lower) -> Transport {
        Transport {
            profile: "RTP/AVP".into(),
            lower,
            unicast: true,
            destination: None,
            source: None,
            interleaved: None,
            client_port: None,
            server_port: None,
            port: None,
            ttl: None,
            ssrc: None,
            mode: None,
            other: Vec::new(),
        }
    }

    /// Parses every spec of a header value.
    pub fn parse_list(value: &str) -> Result<Vec<Transport>, RtspError> {
        let mut out = Vec::new();
        for spec in value.split(',') {
            let spec = spec.trim();
            if spec.is_empty() {
                continue;
            }
            if out.len() >= MAX_SPECS {
                break;
            }
            out.push(Transport::parse(spec)?);
        }
        if out.is_empty() {
            return Err(RtspError::BadTransport("empty".into()));
        }
        Ok(out)
    }

    /// Parses one spec.
    pub fn parse(spec: &str) -> Result<Transport, RtspError> {
        let bad = |d: &str| RtspError::BadTransport(format!("{d} in {:?}", trunc(spec)));
        let mut parts = spec.split(';');
        let proto = parts.next().unwrap_or("").trim();
        // Whitespace around the parts is not theirs (it would not be written back).
        let mut p = proto.split('/').map(str::trim);
        let (a, b, c) = (p.next(), p.next(), p.next());
        let (profile, lower) = match (a, b, c) {
            (Some(a), Some(b), None) => (format!("{a}/{b}"), Lower::Udp),
            (Some(a), Some(b), Some(l)) => {
                let lower = if l.eq_ignore_ascii_case("TCP") {
                    Lower::Tcp
                } else if l.eq_ignore_ascii_case("UDP") {
                    Lower::Udp
                } else {
                    return Err(bad("unknown lower transport"));
                };
                (format!("{a}/{b}"), lower)
            }
            _ => return Err(bad("no transport/profile")),
        };
        if !profile.to_ascii_uppercase().starts_with("RTP/") {
            return Err(bad("not RTP"));
        }
        let mut t = Transport::new(lower);
        t.profile = profile;
        for param in parts {
            let param = param.trim();
            if param.is_empty() {
                continue;
            }
            let (k, v) = match param.split_once('=') {
                // Quotes and whitespace at the ends of a value, in any mix, are not part of
                // it: `x" "` must read as `x`, as what we write of it reads back.
                Some((k, v)) => (
                    k,
                    Some(v.trim_matches(|c: char| c == '"' || c.is_whitespace())),
                ),
                None => (param, None),
            };
            // Quotes are not part of a name (and are dropped when writing one).
            let k: String = k
                .chars()
                .filter(|c| !matches!(c, '"' | '\r' | '\n'))
                .collect();
            let k = k.trim();
            if k.is_empty() && v.is_none() {
                // Nothing but quotes: nothing to keep (and nothing would be written).
                continue;
            }
            let key = k.to_ascii_lowercase();
            match (key.as_str(), v) {
                ("unicast", None) => t.unicast = true,
                ("multicast", None) => t.unicast = false,
                ("destination", Some(v)) => t.destination = Some(v.to_string()),
                ("source", Some(v)) => t.source = Some(v.to_string()),
                ("interleaved", Some(v)) => {
                    let (a, b) = range(v).ok_or_else(|| bad("bad interleaved"))?;
                    t.interleaved = Some((
                        u8::try_from(a).map_err(|_| bad("channel > 255"))?,
                        u8::try_from(b).map_err(|_| bad("channel > 255"))?,
                    ));
                }
                ("client_port", Some(v)) => {
                    t.client_port = Some(ports(v).ok_or_else(|| bad("bad client_port"))?)
                }
                ("server_port", Some(v)) => {
                    t.server_port = Some(ports(v).ok_or_else(|| bad("bad server_port"))?)
                }
                ("port", Some(v)) => t.port = Some(ports(v).ok_or_else(|| bad("bad port"))?),
                ("ttl", Some(v)) => t.ttl = Some(v.parse().map_err(|_| bad("bad ttl"))?),
                ("ssrc", Some(v)) => {
                    // Hexadecimal per RFC 2326; some servers send a slash-separated list (2.0).
                    let first = v.split('/').next().unwrap_or("");
                    t.ssrc = Some(u32::from_str_radix(first, 16).map_err(|_| bad("bad ssrc"))?)
                }
                ("mode", Some(v)) => t.mode = Some(v.to_ascii_uppercase()),
                _ => {
                    if t.other.len() < 16 {
                        t.other.push((k.to_string(), v.map(str::to_string)))
                    }
                }
            }
        }
        Ok(t)
    }

    /// Whether the spec asks for recording (`mode=record`).
    pub fn is_record(&self) -> bool {
        self.mode.as_deref() == Some("RECORD")
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = self.profile.clone();
        if self.lower == Lower::Tcp {
            s.push_str("/TCP");
        }
        s.push_str(if self.unicast {
            ";unicast"
        } else {
            ";multicast"
        });
        let clean = |v: &str| -> String {
            v.chars()
                .filter(|c| !matches!(c, ';' | ',' | '\r' | '\n' | '"'))
                .collect()
        };
        if let Some(d) = &self.destination {
            let _ = write!(s, ";destination={}", clean(d));
        }
        if let Some(d) = &self.source {
            let _ = write!(s, ";source={}", clean(d));
        }
        if let Some((a, b)) = self.interleaved {
            let _ = write!(s, ";interleaved={a}-{b}");
        }
        if let Some((a, b)) = self.client_port {
            let _ = write!(s, ";client_port={a}-{b}");
        }
        if let Some((a, b)) = self.server_port {
            let _ = write!(s, ";server_port={a}-{b}");
        }
        if let Some((a, b)) = self.port {
            let _ = write!(s, ";port={a}-{b}");
        }
        if let Some(t) = self.ttl {
            let _ = write!(s, ";ttl={t}");
        }
        if let Some(x) = self.ssrc {
            let _ = write!(s, ";ssrc={x:08X}");
        }
        if let Some(m) = &self.mode {
            let _ = write!(s, ";mode={}", clean(m));
        }
        for (k, v) in &self.other {
            match v {
                Some(v) => {
                    let _ = write!(s, ";{}={}", clean(k), clean(v));
                }
                None => {
                    let _ = write!(s, ";{}", clean(k));
                }
            }
        }
        f.write_str(&s)
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(64).collect()
}

fn range(v: &str) -> Option<(u32, u32)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: u32 = v.trim().parse().ok()?;
            Some((a, a.checked_add(1)?))
        }
    }
}

fn ports(v: &str) -> Option<(u16, u16)> {
    let (a, b) = range(v)?;
    Some((u16::try_from(a).ok()?, u16::try_from(b).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_and_gstreamer_specs() {
        let t =
            Transport::parse_list("RTP/AVP/UDP;unicast;client_port=5000-5001;mode=record").unwrap();
        assert_eq!(t[0].lower, Lower::Udp);
        assert_eq!(t[0].client_port, Some((5000, 5001)));
        assert!(t[0].is_record());
        let t = Transport::parse_list("RTP/AVP/TCP;unicast;interleaved=0-1").unwrap();
        assert_eq!(t[0].lower, Lower::Tcp);
        assert_eq!(t[0].interleaved, Some((0, 1)));
        // GStreamer offers several at once.
        let t = Transport::parse_list(
            "RTP/AVP;unicast;client_port=41000-41001,RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1A2b3C4d;mode=\"PLAY\"",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].ssrc, Some(0x1a2b3c4d));
        assert_eq!(t[1].mode.as_deref(), Some("PLAY"));
        let s = t[1].to_string();
        assert_eq!(
            s,
            "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1A2B3C4D;mode=PLAY"
        );
        assert_eq!(Transport::parse(&s).unwrap(), t[1]);
    }

    #[test]
    fn bad_specs() {
        assert!(Transport::parse("RTP/AVP/SCTP").is_err());
        assert!(Transport::parse("RAW/RAW/UDP").is_err());
        assert!(Transport::parse("RTP/AVP/TCP;interleaved=300-301").is_err());
        assert!(Transport::parse("RTP/AVP;client_port=70000").is_err());
        assert!(Transport::parse_list(",,").is_err());
        // A name with stray CRs (fuzzer input) is read as it is written: without them.
        let t = Transport::parse("RTP/AVP/TCP;inte\r\rrleaved=0-1").unwrap();
        assert_eq!(t.interleaved, Some((0, 1)));
        let t = Transport::parse("RTP/;\";x").unwrap();
        assert_eq!(t.to_string(), "RTP/;unicast;x");
        // Whitespace around a part of the protocol (fuzzer input: vertical tabs before `/UDP`).
        let t = Transport::parse("RTP/AVP\x0b\x0b /UDP;unicast;client_port=3680-13681").unwrap();
        assert_eq!(t.profile, "RTP/AVP");
        assert_eq!(Transport::parse(&t.to_string()).unwrap(), t);
        // Quotes, then whitespace, then quotes at a value's end (fuzzer input): the value ends
        // at its last other character, so writing it and reading that back gives the same text.
        let t = Transport::parse("RTP/AVP;client_x=1rtsp://h/vod\"\" \"\"\x0c\"\";c").unwrap();
        assert_eq!(t.other[0].1.as_deref(), Some("1rtsp://h/vod"));
        let text = t.to_string();
        assert_eq!(Transport::parse(&text).unwrap().to_string(), text);
    }
}
