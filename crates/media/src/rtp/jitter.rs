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
#[derive(Debug)]
pub struct ReorderBuffer {
    capacity: usize,
    /// Held packets by extended sequence number.
    held: BTreeMap<u64, Packet>,
    /// Extended sequence number of the next packet to release.
    next: Option<u64>,
    /// Packets never received (counted when skipped).
    pub lost: u64,
    /// Packets dropped as duplicates or too late.
    pub late: u64,
}

impl ReorderBuffer {
    pub fn new(capacity: usize) -> ReorderBuffer {
        ReorderBuffer {
            capacity: capacity.clamp(1, 4096),
            held: BTreeMap::new(),
            next: None,
            lost: 0,
            late: 0,
        }
    }

    /// Adds a packet.
    pub fn push(&mut self, pkt: Packet) {
        let Some(next) = self.next else {
            self.next = Some(pkt.sequence as u64 + (1 << 16));
            self.held.insert(pkt.sequence as u64 + (1 << 16), pkt);
            return;
        };
        let d = seq_diff(pkt.sequence, next as u16) as i64;
        if !(-3000..=3000).contains(&d) {
            // The sender restarted or jumped: start over from this packet.
            self.lost += self.held.len() as u64;
            self.held.clear();
            let ext = next.saturating_add(1 << 16) & !0xffff | pkt.sequence as u64;
            self.next = Some(ext);
            self.held.insert(ext, pkt);
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
        self.held.insert(ext, pkt);
    }

    /// The next packet in order, if it is here or the buffer is full (then skipping the gap).
    pub fn pop(&mut self) -> Option<Packet> {
        let next = self.next?;
        if let Some(p) = self.held.remove(&next) {
            self.next = Some(next + 1);
            return Some(p);
        }
        if self.held.len() >= self.capacity {
            return self.skip_gap();
        }
        None
    }

    /// Releases the oldest held packet whatever is missing before it (at end of stream, or when
    /// the edge decides the wait is over).
    pub fn skip_gap(&mut self) -> Option<Packet> {
        let (&ext, _) = self.held.iter().next()?;
        let p = self.held.remove(&ext)?;
        if let Some(next) = self.next {
            self.lost += ext.saturating_sub(next);
        }
        self.next = Some(ext + 1);
        Some(p)
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

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
