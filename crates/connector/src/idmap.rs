//! Maps keyed by connection ids and other integers the process hands out itself.
//!
//! The standard `HashMap` hashes with SipHash, whose keyed rounds protect a map from keys a peer
//! chooses. A connection id is never a peer's choice, and an HTTP request looks one up in several
//! maps (runtime, HTTP layer, sessions, gate), so those maps use one multiply instead.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing: the product's bits are mixed enough for hashbrown, which takes the bucket
/// from the low bits and its tag from the top seven.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// The hasher of [`IdMap`]: for integer keys of the process's own (see the module text).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

/// A `HashMap` for keys the process hands out itself ([`ConnId`](crate::ConnId), job numbers).
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sequential_ids_spread_over_buckets_and_tags() {
        let h = |n: u64| {
            let mut s = IdHasher::default();
            s.write_u64(n);
            s.finish()
        };
        let low: HashSet<u64> = (0..1024).map(|n| h(n) & 1023).collect();
        let tags: HashSet<u64> = (0..1024).map(|n| h(n) >> 57).collect();
        assert!(low.len() > 1000, "{} buckets of 1024", low.len());
        assert_eq!(tags.len(), 128);
        let mut m: IdMap<crate::ConnId, u32> = IdMap::default();
        for i in 0..10_000 {
            m.insert(crate::ConnId(i), i as u32);
        }
        assert!((0..10_000).all(|i| m[&crate::ConnId(i)] == i as u32));
    }
}
