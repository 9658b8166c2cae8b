//! API login (INTERFACES §3): challenge/response with `md5hex(md5hex(password) + challenge)`.
//!
//! The challenge is derived from a per-run random secret, the peer's address and a 10-minute time
//! bucket, so a client that opens a new connection for each request (as MistServer's web UI does)
//! keeps getting the same challenge and can resend the same answer; the current and the previous
//! bucket are accepted.

//!
//! Failed logins are counted per client address: after [`MAX_FAILS`] failures within
//! [`FAIL_WINDOW`], that address's logins are refused (answered like a wrong password) until the
//! window has passed since its first failure.

use md5::{Digest, Md5};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BUCKET_SECS: u64 = 600;
/// Failed logins an address may make within [`FAIL_WINDOW`].
pub const MAX_FAILS: u32 = 5;
/// How long failed logins count against an address.
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered at most (the oldest are forgotten first).
const MAX_TRACKED: usize = 10_000;

pub fn md5hex(data: &[u8]) -> String {
    let d = Md5::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The answer a client must send for a challenge, given the stored md5 hex of the password.
pub fn expected_answer(stored_md5_hex: &str, challenge: &str) -> String {
    md5hex(format!("{stored_md5_hex}{challenge}").as_bytes())
}

pub struct Authenticator {
    secret: String,
    /// Client address → (failed logins, time of the first one in this window).
    fails: HashMap<String, (u32, Instant)>,
}

impl Authenticator {
    pub fn new() -> Authenticator {
        let mut b = [0u8; 16];
        let ok = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
            .is_ok();
        if !ok {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            b[..16].copy_from_slice(&(t ^ (std::process::id() as u128) << 64).to_le_bytes());
        }
        Authenticator {
            secret: b.iter().map(|x| format!("{x:02x}")).collect(),
            fails: HashMap::new(),
        }
    }

    /// True when `host` made too many failed logins recently: its logins are not even checked.
    pub fn limited(&mut self, host: &str) -> bool {
        match self.fails.get(host) {
            Some(&(n, since)) if since.elapsed() < FAIL_WINDOW => n >= MAX_FAILS,
            Some(_) => {
                self.fails.remove(host);
                false
            }
            None => false,
        }
    }

    /// Counts a failed login from `host`.
    pub fn failed(&mut self, host: &str) {
        if self.fails.len() >= MAX_TRACKED && !self.fails.contains_key(host) {
            self.fails.retain(|_, (_, t)| t.elapsed() < FAIL_WINDOW);
            if self.fails.len() >= MAX_TRACKED {
                if let Some(oldest) = self
                    .fails
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| k.clone())
                {
                    self.fails.remove(&oldest);
                }
            }
        }
        let e = self
            .fails
            .entry(host.to_string())
            .or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAIL_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
        if e.0 == MAX_FAILS {
            mist_core::warn!(
                "API: {host} made {MAX_FAILS} failed logins; its logins are refused for {} s",
                FAIL_WINDOW.as_secs()
            );
        }
    }

    /// A successful login clears `host`'s failures.
    pub fn succeeded(&mut self, host: &str) {
        self.fails.remove(host);
    }

    fn bucket_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / BUCKET_SECS
    }

    fn challenge_at(&self, host: &str, bucket: u64) -> String {
        md5hex(format!("{}|{}|{}", self.secret, host, bucket).as_bytes())
    }

    /// The challenge to give to `host` now.
    pub fn challenge(&self, host: &str) -> String {
        self.challenge_at(host, Self::bucket_now())
    }

    /// Checks an answer against the account's stored md5 password hash.
    pub fn verify(&self, host: &str, stored_md5_hex: &str, answer: &str) -> bool {
        let b = Self::bucket_now();
        [b, b.saturating_sub(1)].iter().any(|&bk| {
            let want = expected_answer(stored_md5_hex, &self.challenge_at(host, bk));
            constant_time_eq(want.as_bytes(), answer.to_ascii_lowercase().as_bytes())
        })
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_known_values() {
        assert_eq!(md5hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5hex(b"admin"), "21232f297a57a5a743894a0e4a801fc3");
    }

    #[test]
    fn challenge_response() {
        let a = Authenticator::new();
        let c = a.challenge("203.0.113.5");
        assert_eq!(c, a.challenge("203.0.113.5"));
        assert_ne!(c, a.challenge("203.0.113.6"));
        let stored = md5hex(b"secret");
        let answer = expected_answer(&stored, &c);
        assert!(a.verify("203.0.113.5", &stored, &answer));
        assert!(a.verify("203.0.113.5", &stored, &answer.to_uppercase()));
        assert!(!a.verify("203.0.113.6", &stored, &answer));
        assert!(!a.verify("203.0.113.5", &md5hex(b"other"), &answer));
        assert!(!a.verify("203.0.113.5", &stored, ""));
        assert_ne!(Authenticator::new().challenge("x"), a.challenge("x"));
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let mut a = Authenticator::new();
        for _ in 0..MAX_FAILS {
            assert!(!a.limited("203.0.113.5"));
            a.failed("203.0.113.5");
        }
        assert!(a.limited("203.0.113.5"));
        assert!(!a.limited("203.0.113.6"));
        // Bounded memory: many addresses, the map never grows past MAX_TRACKED.
        for i in 0..(MAX_TRACKED + 50) {
            a.failed(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
        }
        assert!(a.fails.len() <= MAX_TRACKED);
    }
}
