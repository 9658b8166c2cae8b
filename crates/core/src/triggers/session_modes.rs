//! How viewers are counted and how their token travels (INTERFACES §2.1): the config keys
//! `sessionViewerMode`, `sessionInputMode`, `sessionOutputMode`, `sessionUnspecifiedMode`,
//! `sessionStreamInfoMode` and `tknMode`, and the session id MistServer makes from them.
//!
//! The controller puts the values into the trigger file its children read
//! ([`super::Shared::sessions`]), so every output makes the same ids.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// Session id bit: the stream name is part of the id.
pub const BIT_STREAM: u8 = 8;
/// Session id bit: the viewer's address is part of the id.
pub const BIT_HOST: u8 = 4;
/// Session id bit: the viewer's token is part of the id.
pub const BIT_TOKEN: u8 = 2;
/// Session id bit: the connector (protocol) is part of the id.
pub const BIT_CONNECTOR: u8 = 1;

/// `tknMode` bit: read the token from the `tkn`/`sid`/`sessId`/`jwt` URL parameters.
pub const TKN_READ_PARAM: u8 = 1;
/// `tknMode` bit: read the token from the `tkn`/`jwt` cookie.
pub const TKN_READ_COOKIE: u8 = 2;
/// `tknMode` bit: append `?tkn=` to the URLs of generated playlists and manifests.
pub const TKN_APPEND: u8 = 4;
/// `tknMode` bit: answer with a `tkn` cookie.
pub const TKN_COOKIE: u8 = 8;

/// `Max-Age` of the `tkn` cookie (MistServer's session timeout, seconds).
pub const TKN_COOKIE_AGE: u64 = 600;

/// The session settings of the config (MistServer's defaults when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionModes {
    /// Bits of the viewer session id (default 14: stream, address and token).
    pub viewer: u8,
    /// Bits of input session ids (default 15).
    pub input: u8,
    /// Bits of output session ids (default 15).
    pub output: u8,
    /// Bits of unspecified session ids (default 0).
    pub unspecified: u8,
    /// How plain `HTTP` hits count (default 1: as viewers).
    pub stream_info: u8,
    /// Token handling bits (default 15).
    pub tkn: u8,
}

impl Default for SessionModes {
    fn default() -> Self {
        SessionModes {
            viewer: 14,
            input: 15,
            output: 15,
            unspecified: 0,
            stream_info: 1,
            tkn: 15,
        }
    }
}

impl SessionModes {
    /// The modes of a config's `config` section (its other keys); absent or invalid values keep
    /// the defaults.
    pub fn from_config(extra: &serde_json::Map<String, serde_json::Value>) -> SessionModes {
        let mut m = SessionModes::default();
        let get = |k: &str, into: &mut u8| {
            let v = extra.get(k).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            });
            if let Some(v) = v.and_then(|v| u8::try_from(v).ok()) {
                *into = v;
            }
        };
        get("sessionViewerMode", &mut m.viewer);
        get("sessionInputMode", &mut m.input);
        get("sessionOutputMode", &mut m.output);
        get("sessionUnspecifiedMode", &mut m.unspecified);
        get("sessionStreamInfoMode", &mut m.stream_info);
        get("tknMode", &mut m.tkn);
        m
    }
}

/// The 16 address bytes MistServer hashes: IPv6, IPv4 as `::ffff:a.b.c.d`. A host that is no
/// address is hashed as its text.
fn host_bytes(host: &str) -> Vec<u8> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.to_ipv6_mapped().octets().to_vec(),
        Ok(IpAddr::V6(a)) => a.octets().to_vec(),
        Err(_) => host.as_bytes().to_vec(),
    }
}

/// A session id as MistServer makes it: the lower-case hex SHA-256 of the fields `mode` selects,
/// in the order stream, address (16 bytes), token, connector.
pub fn session_id_with(mode: u8, stream: &str, host: &str, connector: &str, token: &str) -> String {
    let mut h = Sha256::new();
    if mode & BIT_STREAM != 0 {
        h.update(stream.as_bytes());
    }
    if mode & BIT_HOST != 0 {
        h.update(host_bytes(host));
    }
    if mode & BIT_TOKEN != 0 {
        h.update(token.as_bytes());
    }
    if mode & BIT_CONNECTOR != 0 {
        h.update(connector.as_bytes());
    }
    // Per request on the HTTP path: no allocation per digit.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(64);
    for b in h.finalize() {
        id.push(HEX[usize::from(b >> 4)] as char);
        id.push(HEX[usize::from(b & 15)] as char);
    }
    id
}

/// Percent-encodes a token for a URL query (unreserved characters stay).
pub fn encode_token(token: &str) -> String {
    let mut o = String::with_capacity(token.len());
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_mode_bits() {
        // Mode 0: the hash of nothing.
        assert_eq!(
            session_id_with(0, "s", "1.2.3.4", "HLS", "t"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let a = session_id_with(14, "s", "1.2.3.4", "HLS", "t");
        assert_eq!(a.len(), 64);
        // 14 ignores the connector, 15 does not.
        assert_eq!(a, session_id_with(14, "s", "1.2.3.4", "RTMP", "t"));
        assert_ne!(
            session_id_with(15, "s", "1.2.3.4", "HLS", "t"),
            session_id_with(15, "s", "1.2.3.4", "RTMP", "t")
        );
        assert_ne!(a, session_id_with(14, "s", "1.2.3.4", "HLS", "u"));
        assert_ne!(a, session_id_with(14, "s", "1.2.3.5", "HLS", "t"));
        // 6 (address and token): one session over all streams.
        assert_eq!(
            session_id_with(6, "a", "1.2.3.4", "HLS", "t"),
            session_id_with(6, "b", "1.2.3.4", "HTTP", "t")
        );
        // The address is hashed as MistServer's 16 bytes: an IPv4 address and its mapped form
        // are one viewer.
        assert_eq!(
            session_id_with(4, "", "127.0.0.1", "", ""),
            session_id_with(4, "", "::ffff:127.0.0.1", "", "")
        );
        let mut want = Sha256::new();
        want.update(b"live");
        want.update([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
        want.update(b"tok");
        let want: String = want.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(session_id_with(14, "live", "127.0.0.1", "HLS", "tok"), want);
    }

    #[test]
    fn modes_from_config() {
        let m = SessionModes::from_config(&serde_json::Map::new());
        assert_eq!(m, SessionModes::default());
        let c =
            serde_json::json!({"sessionViewerMode": 15, "tknMode": "3", "sessionInputMode": 999});
        let m = SessionModes::from_config(c.as_object().unwrap());
        assert_eq!((m.viewer, m.tkn, m.input), (15, 3, 15));
    }

    #[test]
    fn tokens_are_encoded() {
        assert_eq!(encode_token("ab-9_.~"), "ab-9_.~");
        assert_eq!(encode_token("a b&c=d"), "a%20b%26c%3Dd");
    }
}
