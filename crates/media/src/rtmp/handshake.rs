//! The RTMP handshake: C0 C1 -> S0 S1 S2 -> C2.
//!
//! Clients that put a non-zero version in C1 (Flash, ffmpeg, OBS) use the "digest" handshake: C1 holds
//! an HMAC-SHA256 digest at a position derived from its own bytes, and they expect S1 to carry one
//! made with the server key and S2 to be signed with a key derived from their digest (ffmpeg checks
//! both when playing). Clients with a zero version get the simple handshake (S2 = echo of C1).

use crate::error::MediaError;

/// The version byte of C0/S0 (3: plain RTMP; 6 would be RTMPE, which is not spoken).
pub const VERSION: u8 = 3;
/// The size of C1, C2, S1 and S2.
pub const PACKET: usize = 1536;
const DIGEST: usize = 32;

const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const FP_TEXT: &[u8] = b"Genuine Adobe Flash Player 001";
const FMS_TEXT: &[u8] = b"Genuine Adobe Flash Media Server 001";

fn key(text: &[u8], full: bool) -> Vec<u8> {
    let mut k = text.to_vec();
    if full {
        k.extend_from_slice(&KEY_TAIL);
    }
    k
}

// ---- HMAC-SHA256 (RustCrypto's `hmac` and `sha2`) ----

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

// ---- digest positions ----

/// Offset of the digest in a 1536-byte packet for scheme 0 (offset bytes at 8) or 1 (at 772).
fn digest_pos(p: &[u8], scheme: u8) -> usize {
    let base = if scheme == 0 { 8 } else { 772 };
    let sum: usize = p[base..base + 4].iter().map(|&b| b as usize).sum();
    sum % 728 + base + 4
}

fn digest_at(p: &[u8], pos: usize, key: &[u8]) -> [u8; 32] {
    hmac_sha256(key, &[&p[..pos], &p[pos + DIGEST..]])
}

/// Finds a digest made with `key` in a 1536-byte packet; returns (scheme, digest).
fn find_digest(p: &[u8], key: &[u8]) -> Option<(u8, [u8; 32])> {
    if p.len() != PACKET {
        return None;
    }
    for scheme in [0, 1] {
        let pos = digest_pos(p, scheme);
        if digest_at(p, pos, key)[..] == p[pos..pos + DIGEST] {
            let mut d = [0u8; 32];
            d.copy_from_slice(&p[pos..pos + DIGEST]);
            return Some((scheme, d));
        }
    }
    None
}

/// Finds a valid client digest in C1; returns (scheme, digest).
pub fn find_client_digest(c1: &[u8]) -> Option<(u8, [u8; 32])> {
    find_digest(c1, &key(FP_TEXT, false))
}

/// Checks the server digest in S1 (what a client does); returns the scheme.
pub fn find_server_digest(s1: &[u8]) -> Option<(u8, [u8; 32])> {
    find_digest(s1, &key(FMS_TEXT, false))
}

/// Checks S2 against the client's own C1 digest (what ffmpeg does when playing).
pub fn verify_s2(s2: &[u8], client_digest: &[u8; 32]) -> bool {
    if s2.len() != PACKET {
        return false;
    }
    let k = hmac_sha256(&key(FMS_TEXT, true), &[client_digest]);
    hmac_sha256(&k, &[&s2[..PACKET - DIGEST]])[..] == s2[PACKET - DIGEST..]
}

/// A tiny deterministic generator for the filler bytes of S1/S2/C1 (not a secret).
pub struct Filler(u64);
impl Filler {
    /// A generator from `seed` (any value; the low bit is forced so it never sticks at zero).
    pub fn new(seed: u64) -> Filler {
        Filler(seed | 1)
    }
    /// Fills `buf` with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

/// Builds S0 S1 S2 (3073 bytes) in answer to C0 C1 (1537 bytes).
pub fn server_response(c0c1: &[u8], time: u32, seed: u64) -> Result<Vec<u8>, MediaError> {
    if c0c1.len() != 1 + PACKET {
        return Err(MediaError::malformed(
            "RTMP handshake",
            "C0+C1 must be 1537 bytes",
        ));
    }
    match c0c1[0] {
        3 => {}
        6 | 8 => return Err(MediaError::unsupported("RTMP handshake", "encrypted RTMPE")),
        v => {
            return Err(MediaError::malformed(
                "RTMP handshake",
                format!("version {v}"),
            ))
        }
    }
    let c1 = &c0c1[1..];
    let mut fill = Filler::new(seed);
    let mut out = vec![0u8; 1 + 2 * PACKET];
    out[0] = VERSION;
    let client = if c1[4..8] != [0, 0, 0, 0] {
        find_client_digest(c1)
    } else {
        None
    };
    {
        let s1 = &mut out[1..1 + PACKET];
        fill.fill(&mut s1[8..]);
        s1[..4].copy_from_slice(&time.to_be_bytes());
        if let Some((scheme, _)) = client {
            // Version as FMS 4.5 (0x04050001) tells the client S1 carries a digest.
            s1[4..8].copy_from_slice(&[4, 5, 0, 1]);
            let pos = digest_pos(s1, scheme);
            let d = digest_at(s1, pos, &key(FMS_TEXT, false));
            s1[pos..pos + DIGEST].copy_from_slice(&d);
        }
    }
    {
        let s2 = &mut out[1 + PACKET..];
        match client {
            Some((_, cd)) => {
                fill.fill(s2);
                let k = hmac_sha256(&key(FMS_TEXT, true), &[&cd]);
                let d = hmac_sha256(&k, &[&s2[..PACKET - DIGEST]]);
                s2[PACKET - DIGEST..].copy_from_slice(&d);
            }
            None => s2.copy_from_slice(c1),
        }
    }
    Ok(out)
}

/// Builds C0 C1 for a client; with `digest` the C1 carries a Flash-Player digest (scheme 0), so
/// servers that insist on the complex handshake accept it. Returns the bytes and the digest.
pub fn client_hello(digest: bool, seed: u64) -> (Vec<u8>, Option<[u8; 32]>) {
    let mut out = vec![0u8; 1 + PACKET];
    out[0] = VERSION;
    let c1 = &mut out[1..];
    Filler::new(seed).fill(&mut c1[8..]);
    if !digest {
        return (out, None);
    }
    c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
    let pos = digest_pos(c1, 0);
    let d = digest_at(c1, pos, &key(FP_TEXT, false));
    c1[pos..pos + DIGEST].copy_from_slice(&d);
    (out, Some(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISH: &[u8] = include_bytes!("../../tests/fixtures/rtmp/ffmpeg_publish.bin");

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_over_parts_matches_rfc4231() {
        // RFC 4231 test case 2, the message split in two parts.
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ffmpeg_c1_digest_is_found_and_answered() {
        let c1 = &PUBLISH[1..1 + PACKET];
        let (scheme, cd) = find_client_digest(c1).expect("ffmpeg signs C1");
        assert_eq!(scheme, 0);
        let resp = server_response(&PUBLISH[..1537], 0, 42).unwrap();
        assert_eq!(resp.len(), 3073);
        assert_eq!(resp[0], 3);
        let s1 = &resp[1..1 + PACKET];
        assert_eq!(find_server_digest(s1).map(|x| x.0), Some(0));
        assert!(verify_s2(&resp[1 + PACKET..], &cd));
        // A corrupted C1 falls back to the simple handshake: S2 echoes C1.
        let mut bad = PUBLISH[..1537].to_vec();
        bad[100] ^= 0xff;
        bad[800] ^= 0xff;
        let resp = server_response(&bad, 0, 1).unwrap();
        assert_eq!(&resp[1 + PACKET..], &bad[1..]);
        assert!(server_response(&PUBLISH[..100], 0, 1).is_err());
    }

    #[test]
    fn client_hello_round_trip() {
        let (hello, d) = client_hello(true, 7);
        assert_eq!(find_client_digest(&hello[1..]).map(|x| x.1), d);
        let (plain, none) = client_hello(false, 7);
        assert!(none.is_none());
        let resp = server_response(&plain, 5, 9).unwrap();
        assert_eq!(&resp[1 + PACKET..], &plain[1..]);
    }
}
