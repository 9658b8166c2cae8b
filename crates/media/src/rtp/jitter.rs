//! A bounded reorder buffer for RTP over UDP.

use super::{seq_diff, Packet};
use std::collections::BTreeMap;

/// Puts packets back in sequence order, holding at most `capacity` of them.
///
/// Packets come out in order as soon as they are next in line. When a gap stays open until the
/// buffer is full, the oldest held packet is released and the missing ones are counted as lost:
/// reordering up to `capacity` packets is repaired, loss costs that much delay. A packet older
/// than what was already released (a late duplicate, or a stray from a sender restart within
/// the window) is dropped; a jump of more than 3000 sequence numbers restarts the sequence.
///
/// For slow streams (audio, a still camera) a full buffer may take long; [`ReorderBuffer::push_at`]
/// and [`ReorderBuffer::pop_at`] take the caller's clock (milliseconds, any origin) and also skip
/// a gap once the packet behind it has waited `max_wait_ms`.
#[derive(Debug)]
pub struct ReorderBuffer {
    capacity: usize,
    /// Held packets by extended sequence number, with their arrival time.
    held: BTreeMap<u64, (Packet, u64)>,
    max_wait_ms: u64,
    /// Extended sequence number of the next packet to release.
    next: Option<u64>,
    /// Packets never received (counted when skipped).
    pub lost: u64,
    /// Packets dropped as duplicates or too late.
    pub late: u64,
}

impl ReorderBuffer {
    /// A buffer that repairs reordering up to `capacity` packets (clamped to 1..=4096: more would
    /// only add delay) and skips a gap after 500 ms.
    pub fn new(capacity: usize) -> ReorderBuffer {
        ReorderBuffer {
            capacity: capacity.clamp(1, 4096),
            held: BTreeMap::new(),
            max_wait_ms: 500,
            next: None,
            lost: 0,
            late: 0,
        }
    }

    /// How long a packet waits for a gap before it to fill when driven with `pop_at` (default
    /// 500 ms).
    pub fn set_max_wait(&mut self, ms: u64) {
        self.max_wait_ms = ms;
    }

    /// Adds a packet (no clock: only the capacity ends a wait).
    pub fn push(&mut self, pkt: Packet) {
        self.push_at(pkt, 0)
    }

    /// Adds a packet that arrived at `now_ms`.
    pub fn push_at(&mut self, pkt: Packet, now_ms: u64) {
        let Some(next) = self.next else {
            self.next = Some(pkt.sequence as u64 + (1 << 16));
            self.held
                .insert(pkt.sequence as u64 + (1 << 16), (pkt, now_ms));
            return;
        };
        let d = seq_diff(pkt.sequence, next as u16) as i64;
        if !(-3000..=3000).contains(&d) {
            // The sender restarted or jumped: start over from this packet.
            self.lost += self.held.len() as u64;
            self.held.clear();
            let ext = next.saturating_add(1 << 16) & !0xffff | pkt.sequence as u64;
            self.next = Some(ext);
            self.held.insert(ext, (pkt, now_ms));
            return;
        }
        if d < 0 {
            self.late += 1;
            return;
        }
        let ext = next + d as u64;
        if self.held.contains_key(&ext) {
            self.late += 1;
            return;
        }
        self.held.insert(ext, (pkt, now_ms));
    }

    /// The next packet in order, if it is here or the buffer is full (then skipping the gap).
    pub fn pop(&mut self) -> Option<Packet> {
        let next = self.next?;
        if let Some((p, _)) = self.held.remove(&next) {
            self.next = Some(next + 1);
            return Some(p);
        }
        if self.held.len() >= self.capacity {
            return self.skip_gap();
        }
        None
    }

    /// As [`ReorderBuffer::pop`], and also skips a gap whose next packet has waited too long.
    pub fn pop_at(&mut self, now_ms: u64) -> Option<Packet> {
        if let Some(p) = self.pop() {
            return Some(p);
        }
        let (_, (_, arrived)) = self.held.iter().next()?;
        if now_ms.saturating_sub(*arrived) >= self.max_wait_ms {
            return self.skip_gap();
        }
        None
    }

    /// Releases the oldest held packet whatever is missing before it (at end of stream, or when
    /// the edge decides the wait is over).
    pub fn skip_gap(&mut self) -> Option<Packet> {
        let (&ext, _) = self.held.iter().next()?;
        let (p, _) = self.held.remove(&ext)?;
        if let Some(next) = self.next {
            self.lost += ext.saturating_sub(next);
        }
        self.next = Some(ext + 1);
        Some(p)
    }

    /// Packets held, waiting for a gap before them.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// No packet is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn p(seq: u16) -> Packet {
        Packet {
            marker: false,
            payload_type: 96,
            sequence: seq,
            timestamp: 0,
            ssrc: 1,
            csrc_count: 0,
            extension: None,
            payload: Bytes::new(),
        }
    }

    fn drain(b: &mut ReorderBuffer) -> Vec<u16> {
        std::iter::from_fn(|| b.pop()).map(|p| p.sequence).collect()
    }

    #[test]
    fn reorders_across_wrap_and_counts_loss() {
        let mut b = ReorderBuffer::new(4);
        let mut out = Vec::new();
        for s in [65534u16, 0, 65535, 1, 1, 3, 4, 5, 6, 7] {
            b.push(p(s));
            out.extend(drain(&mut b));
        }
        // 2 never came: once 4 packets wait behind the gap, it is skipped.
        assert_eq!(out, vec![65534, 65535, 0, 1, 3, 4, 5, 6, 7]);
        assert_eq!(b.lost, 1);
        assert_eq!(b.late, 1);
        b.push(p(9));
        assert_eq!(drain(&mut b), Vec::<u16>::new());
        assert_eq!(b.skip_gap().map(|p| p.sequence), Some(9));
        assert_eq!(b.lost, 2);
        // With a clock, a gap is skipped after the wait even when the buffer is not full.
        let mut t = ReorderBuffer::new(100);
        t.set_max_wait(50);
        t.push_at(p(10), 0);
        t.push_at(p(12), 5);
        assert_eq!(t.pop_at(5).map(|p| p.sequence), Some(10));
        assert_eq!(t.pop_at(40), None);
        assert_eq!(t.pop_at(55).map(|p| p.sequence), Some(12));
        assert_eq!(t.lost, 1);
        // A huge jump restarts, never holding more than the capacity.
        b.push(p(30000));
        assert_eq!(drain(&mut b), vec![30000]);
        for s in (30002..40000).step_by(2) {
            b.push(p(s));
            drain(&mut b);
            assert!(b.len() <= 4);
        }
    }
}
