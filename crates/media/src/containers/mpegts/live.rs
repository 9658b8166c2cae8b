//! Live MPEG-TS ingest, sans-IO: datagrams (TS over UDP, plain or in RTP) or a byte stream in,
//! tracks and frames with **monotonic** times out, with loss counted.
//!
//! * [`LiveTs::push_datagram`] takes one UDP payload: an RTP header (RFC 2250, payload type 33)
//!   is skipped, then every 188-byte packet that starts with the sync byte is fed to the
//!   [`Demuxer`]; anything else (a datagram that is not whole TS packets, random bytes) is
//!   dropped and counted, so a hostile datagram can never shift the packet alignment of the ones
//!   after it. [`LiveTs::push_bytes`] takes a byte stream (a pipe, TCP) in any chunking.
//! * Loss is the demuxer's continuity-counter gaps ([`LiveStats::continuity_errors`]) plus RTP
//!   sequence gaps when the source is RTP.
//! * Times: the demuxer unwraps the 33-bit clock; [`Rebase`] then turns what is left of a
//!   discontinuity (an encoder restart, a splice, a PCR jump) into a continuation, so the times
//!   written downstream never go back and never jump ahead by more than a frame.

use super::{DemuxEvent, Demuxer, PACKET_SIZE, SYNC_BYTE};
use crate::Frame;
use std::collections::HashMap;

/// A decode-time step (ms) past which a track's time is taken as a discontinuity: backwards by
/// more than [`JUMP_BACK_MS`] or forwards by more than this.
pub const JUMP_AHEAD_MS: i64 = 10_000;
/// See [`JUMP_AHEAD_MS`].
pub const JUMP_BACK_MS: i64 = 1_000;
/// RTP sequence gaps up to this count as lost packets; larger ones as a new sequence.
const MAX_RTP_GAP: u16 = 1_000;
/// Gap (ms) put between the last time before a discontinuity and the first one after it.
const SPLICE_GAP_MS: i64 = 40;

/// What a live source did, for logs and stream health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// UDP payloads given.
    pub datagrams: u64,
    /// Datagrams (or parts) that were not whole TS packets, dropped.
    pub bad_datagrams: u64,
    /// TS packets that went to the demuxer.
    pub packets: u64,
    /// RTP sequence numbers missing.
    pub rtp_lost: u64,
    /// Continuity-counter gaps the demuxer saw (each is at least one lost packet).
    pub continuity_errors: u64,
    /// Time discontinuities turned into continuations.
    pub discontinuities: u64,
    /// Frames handed out.
    pub frames: u64,
}

/// Keeps every track's decode times monotonic across discontinuities (see the module docs).
#[derive(Debug, Default)]
pub struct Rebase {
    /// Per track: (last raw dts, offset added, last output dts).
    tracks: HashMap<u32, (i64, i64, i64)>,
    /// The newest timeline: (raw dts at its start, output dts there).
    epoch: Option<(i64, i64)>,
    discontinuities: u64,
}

impl Rebase {
    /// The output decode time of a frame of `track` with demuxed time `raw` (ms).
    pub fn map(&mut self, track: u32, raw: i64) -> i64 {
        let offset = match self.tracks.get(&track).copied() {
            None => match self.epoch {
                Some((rb, ob)) => ob - rb,
                None => {
                    self.epoch = Some((raw, raw.max(0)));
                    raw.max(0) - raw
                }
            },
            Some((last_raw, off, _)) => {
                let step = raw.saturating_sub(last_raw);
                if (-JUMP_BACK_MS..=JUMP_AHEAD_MS).contains(&step) {
                    off
                } else {
                    match self.epoch {
                        // Another track already crossed into this timeline.
                        Some((rb, ob)) if (raw - rb).abs() <= JUMP_AHEAD_MS && off != ob - rb => {
                            ob - rb
                        }
                        _ => {
                            let newest = self.tracks.values().map(|t| t.2).max().unwrap_or(0);
                            let ob = newest + SPLICE_GAP_MS;
                            self.epoch = Some((raw, ob));
                            self.discontinuities += 1;
                            ob - raw
                        }
                    }
                }
            }
        };
        let last_out = self.tracks.get(&track).map(|t| t.2);
        let mut out = raw.saturating_add(offset);
        if let Some(l) = last_out {
            out = out.max(l);
        }
        self.tracks.insert(track, (raw, offset, out));
        out
    }

    /// Discontinuities seen.
    pub fn discontinuities(&self) -> u64 {
        self.discontinuities
    }
}

/// TS in, tracks and monotonic frames out. See the module documentation.
#[derive(Default)]
pub struct LiveTs {
    demux: Demuxer,
    rebase: Rebase,
    stats: LiveStats,
    rtp_seq: Option<u16>,
}

/// The payload of an RTP packet carrying TS (RFC 2250), or None when `d` is not RTP.
fn rtp_payload(d: &[u8]) -> Option<(u16, &[u8])> {
    if d.len() < 12 || d[0] >> 6 != 2 || d[0] == SYNC_BYTE {
        return None;
    }
    let cc = usize::from(d[0] & 0x0F);
    let mut start = 12 + 4 * cc;
    if d[0] & 0x10 != 0 {
        let ext = d.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = d.len();
    if d[0] & 0x20 != 0 {
        let pad = usize::from(*d.last()?);
        end = end.checked_sub(pad)?;
    }
    let seq = u16::from_be_bytes([d[2], d[3]]);
    d.get(start..end).map(|p| (seq, p))
}

impl LiveTs {
    /// A source that has seen nothing yet.
    pub fn new() -> LiveTs {
        LiveTs::default()
    }

    /// One UDP payload: whole TS packets, optionally behind an RTP header.
    pub fn push_datagram(&mut self, d: &[u8]) {
        self.stats.datagrams += 1;
        let mut body = d;
        // RTP only when what follows the header is TS: random bytes are not taken for RTP.
        let rtp = rtp_payload(d).filter(|(_, p)| {
            !p.is_empty() && p.len().is_multiple_of(PACKET_SIZE) && p[0] == SYNC_BYTE
        });
        if let Some((seq, p)) = rtp {
            if let Some(last) = self.rtp_seq {
                let gap = seq.wrapping_sub(last).wrapping_sub(1);
                // A big jump is a new sender (or a stray packet), not loss.
                if gap < MAX_RTP_GAP {
                    self.stats.rtp_lost += u64::from(gap);
                }
            }
            self.rtp_seq = Some(seq);
            body = p;
        }
        if body.is_empty() || !body.len().is_multiple_of(PACKET_SIZE) {
            self.stats.bad_datagrams += 1;
            return;
        }
        let mut bad = false;
        for p in body.chunks_exact(PACKET_SIZE) {
            if p[0] == SYNC_BYTE {
                self.stats.packets += 1;
                self.demux.push(p);
            } else {
                bad = true;
            }
        }
        if bad {
            self.stats.bad_datagrams += 1;
        }
    }

    /// A piece of a TS byte stream, in any chunking.
    pub fn push_bytes(&mut self, d: &[u8]) {
        self.demux.push(d);
    }

    /// End of input: the last PES of every track comes out.
    pub fn flush(&mut self) {
        self.demux.flush();
    }

    /// The next track or frame; frame times are monotonic per track.
    pub fn poll(&mut self) -> Option<DemuxEvent> {
        match self.demux.poll()? {
            DemuxEvent::Frame(f) => {
                let dts = self.rebase.map(f.track, f.dts);
                self.stats.frames += 1;
                Some(DemuxEvent::Frame(Frame { dts, ..f }))
            }
            e => Some(e),
        }
    }

    /// What happened so far.
    pub fn stats(&self) -> LiveStats {
        let d = self.demux.stats();
        LiveStats {
            continuity_errors: d.continuity_errors,
            discontinuities: self.rebase.discontinuities(),
            packets: self.stats.packets.max(d.packets),
            ..self.stats.clone()
        }
    }

    /// Tracks announced so far, and streams in a PMT still waiting for their init data.
    pub fn track_counts(&self) -> (usize, usize) {
        (self.demux.tracks().count(), self.demux.unannounced())
    }

    /// The source restarted (a `ts-exec:` child started again, a sender reconnected): its new
    /// continuity counters (and RTP sequence) are not loss. Tracks, times and counters are kept.
    pub fn source_restarted(&mut self) {
        self.demux.reset_continuity();
        self.rtp_seq = None;
    }

    /// The demuxer underneath (programs, tracks, its own counters).
    pub fn demuxer(&self) -> &Demuxer {
        &self.demux
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_keeps_times_monotonic() {
        let mut r = Rebase::default();
        assert_eq!(r.map(1, 1000), 1000);
        assert_eq!(r.map(2, 1010), 1010);
        assert_eq!(r.map(1, 1040), 1040);
        // The encoder restarts: both tracks jump back to 0 and continue after the newest time.
        let a = r.map(1, 0);
        assert_eq!(a, 1040 + SPLICE_GAP_MS);
        let b = r.map(2, 5);
        assert_eq!(b, a + 5);
        assert_eq!(r.map(1, 40), a + 40);
        assert_eq!(r.discontinuities(), 1);
        // A jump far ahead (a PCR discontinuity) continues too.
        let c = r.map(1, 10_000_000);
        assert_eq!(c, a + 40 + SPLICE_GAP_MS);
        assert_eq!(r.map(2, 10_000_010), c + 10);
        // Small steps back (B-frames, jitter) are clamped, never negative steps.
        assert_eq!(r.map(2, 10_000_000), c + 10);
    }

    #[test]
    fn datagrams_that_are_not_ts_are_dropped() {
        let mut l = LiveTs::new();
        l.push_datagram(&[0u8; 100]);
        l.push_datagram(&[0x47u8; 189]);
        let mut rtp = vec![0x80, 33, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        rtp.extend_from_slice(&[0x47; 188]);
        l.push_datagram(&rtp);
        rtp[3] = 5;
        l.push_datagram(&rtp);
        let s = l.stats();
        assert_eq!(s.datagrams, 4);
        assert_eq!(s.bad_datagrams, 2);
        assert_eq!(s.rtp_lost, 3);
        assert!(l.poll().is_none());
    }
}
