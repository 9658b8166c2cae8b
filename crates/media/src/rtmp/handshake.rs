//! The RTMP handshake: C0 C1 -> S0 S1 S2 -> C2.
//!
//! Clients that put a non-zero version in C1 (Flash, ffmpeg, OBS) use the "digest" handshake: C1 holds
//! an HMAC-SHA256 digest at a position derived from its own bytes, and they expect S1 to carry one
//! made with the server key and S2 to be signed with a key derived from their digest (ffmpeg checks
//! both when playing). Clients with a zero version get the simple handshake (S2 = echo of C1).

use crate::error::MediaError;

pub const VERSION: u8 = 3;
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

// ---- SHA-256 and HMAC (FIPS 180-4, RFC 2104), small and allocation-free per block ----

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

struct Sha256 {
    h: [u32; 8],
    block: [u8; 64],
    fill: usize,
    total: u64,
}

impl Sha256 {
    fn new() -> Sha256 {
        Sha256 {
            h: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            block: [0; 64],
            fill: 0,
            total: 0,
        }
    }

    fn compress(&mut self) {
        let mut w = [0u32; 64];
        for (i, c) in self.block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = self.h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in self.h.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *x = x.wrapping_add(y);
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            let n = (64 - self.fill).min(data.len());
            self.block[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == 64 {
                self.compress();
                self.fill = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        self.update(&[0x80]);
        while self.fill != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (o, h) in out.chunks_exact_mut(4).zip(self.h) {
            o.copy_from_slice(&h.to_be_bytes());
        }
        out
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut s = Sha256::new();
    s.update(data);
    s.finish()
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(&k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let ih = inner.finish();
    let mut outer = Sha256::new();
    outer.update(&k.map(|b| b ^ 0x5c));
    outer.update(&ih);
    outer.finish()
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

/// Finds a valid client digest in C1; returns (scheme, digest).
pub fn find_client_digest(c1: &[u8]) -> Option<(u8, [u8; 32])> {
    if c1.len() != PACKET {
        return None;
    }
    let k = key(FP_TEXT, false);
    for scheme in [0, 1] {
        let pos = digest_pos(c1, scheme);
        if digest_at(c1, pos, &k)[..] == c1[pos..pos + DIGEST] {
            let mut d = [0u8; 32];
            d.copy_from_slice(&c1[pos..pos + DIGEST]);
            return Some((scheme, d));
        }
    }
    None
}

/// Checks the server digest in S1 (what a client does); returns the scheme.
pub fn find_server_digest(s1: &[u8]) -> Option<(u8, [u8; 32])> {
    if s1.len() != PACKET {
        return None;
    }
    let k = key(FMS_TEXT, false);
    for scheme in [0, 1] {
        let pos = digest_pos(s1, scheme);
        if digest_at(s1, pos, &k)[..] == s1[pos..pos + DIGEST] {
            let mut d = [0u8; 32];
            d.copy_from_slice(&s1[pos..pos + DIGEST]);
            return Some((scheme, d));
        }
    }
    None
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
    pub fn new(seed: u64) -> Filler {
        Filler(seed | 1)
    }
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
    fn sha256_and_hmac_vectors() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(&[b'a'; 1000])),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
        // RFC 4231 test case 2.
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
