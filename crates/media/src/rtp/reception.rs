//! Reception statistics of one RTP source, for RTCP receiver reports (RFC 3550 section 6.4.1
//! and appendices A.3 and A.8), sans-IO: the caller gives arrival times in microseconds of any
//! clock of its own.

use super::rtcp::ReportBlock;

/// A jump of more than this many sequence numbers forward restarts the count (the source
/// restarted; RFC 3550 A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: u16 = 3000;
/// A packet up to this far behind the highest seen is a late or duplicate one (`MAX_MISORDER`).
const MAX_MISORDER: u16 = 100;

/// Counts, loss and interarrival jitter of one track's RTP source.
#[derive(Debug, Clone)]
pub struct Reception {
    clock_rate: u32,
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    /// Sequence number wraps, times 65536.
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the last packet (RTP clock units).
    transit: Option<i64>,
    /// Interarrival jitter times 16 (A.8).
    jitter16: u64,
    /// Middle 32 bits of the last sender report's NTP time, and when it arrived (µs).
    last_sr: Option<(u32, u64)>,
}

impl Reception {
    /// Statistics of a source whose RTP clock ticks `clock_rate` times a second (0: 90 000).
    pub fn new(clock_rate: u32) -> Reception {
        Reception {
            clock_rate: if clock_rate == 0 { 90_000 } else { clock_rate },
            ssrc: None,
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter16: 0,
            last_sr: None,
        }
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        self.ssrc = Some(ssrc);
        self.base_seq = seq as u32;
        self.max_seq = seq;
        self.cycles = 0;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
        self.transit = None;
        self.jitter16 = 0;
    }

    /// An RTP packet (`ssrc`, sequence number, RTP timestamp) arrived at `arrival_us`. A new
    /// SSRC, or a jump of more than 3000 sequence numbers, starts the statistics over.
    pub fn packet(&mut self, ssrc: u32, seq: u16, timestamp: u32, arrival_us: u64) {
        if self.ssrc != Some(ssrc) {
            self.restart(ssrc, seq);
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if delta <= u16::MAX - MAX_MISORDER {
                self.restart(ssrc, seq);
            }
            // else: late or duplicate, counted but not moving the highest number.
        }
        self.received = self.received.wrapping_add(1);
        // A.8: arrival in RTP units minus the RTP time, its change smoothed by 1/16.
        let arrival = (arrival_us as u128 * self.clock_rate as u128 / 1_000_000) as i64;
        let transit = arrival.wrapping_sub(timestamp as i64);
        if let Some(prev) = self.transit {
            // Only the low 32 bits of the RTP clock are meaningful.
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs() as u64;
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// A sender report of this source (its NTP time) arrived at `arrival_us`.
    pub fn sender_report(&mut self, ntp: u64, arrival_us: u64) {
        self.last_sr = Some(((ntp >> 16) as u32, arrival_us));
    }

    /// The report block for a receiver report sent at `now_us`, or `None` before any packet.
    /// The "fraction lost" covers the time since the previous call.
    pub fn report(&mut self, now_us: u64) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        let ext_max = self.cycles.wrapping_add(self.max_seq as u32);
        let expected = ext_max.wrapping_sub(self.base_seq).wrapping_add(1);
        let lost = expected as i64 - self.received as i64;
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            // DLSR in units of 1/65536 s.
            Some((lsr, at)) => (lsr, ((now_us.saturating_sub(at) << 16) / 1_000_000) as u32),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            // 24-bit signed, clamped.
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_sequence: ext_max,
            jitter: (self.jitter16 >> 4) as u32,
            last_sr,
            delay_since_last_sr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_wraps_and_jitter() {
        let mut r = Reception::new(90_000);
        assert_eq!(r.report(0), None);
        // 10 packets 20 ms apart, perfectly timed, across the sequence wrap; #3 lost.
        for i in 0..10u16 {
            if i == 3 {
                continue;
            }
            let seq = 65530u16.wrapping_add(i);
            r.packet(7, seq, 1000 + i as u32 * 1800, i as u64 * 20_000);
        }
        let b = r.report(200_000).unwrap();
        assert_eq!(b.ssrc, 7);
        assert_eq!(b.highest_sequence, (1 << 16) + 3);
        assert_eq!(b.cumulative_lost, 1);
        assert_eq!(b.fraction_lost, 25, "1 of 10 lost, in 1/256");
        assert_eq!(b.jitter, 0);
        assert_eq!((b.last_sr, b.delay_since_last_sr), (0, 0));
        // Nothing new: no loss in the interval.
        assert_eq!(r.report(300_000).unwrap().fraction_lost, 0);
        // A late duplicate is counted without moving the highest number.
        r.packet(7, 65531, 2800, 400_000);
        let b = r.report(400_000).unwrap();
        assert_eq!((b.highest_sequence, b.cumulative_lost), ((1 << 16) + 3, 0));
        // Arrivals 10 ms late every other packet give jitter.
        let mut j = Reception::new(90_000);
        for i in 0..200u32 {
            let late = if i % 2 == 1 { 10_000 } else { 0 };
            j.packet(1, i as u16, i * 1800, i as u64 * 20_000 + late);
        }
        let jit = j.report(4_000_000).unwrap().jitter;
        assert!((800..=950).contains(&jit), "{jit}");
        // Sender report: LSR is the middle of the NTP time, DLSR in 1/65536 s.
        j.sender_report(0x1234_5678_9abc_def0, 1_000_000);
        let b = j.report(1_500_000).unwrap();
        assert_eq!(b.last_sr, 0x5678_9abc);
        assert_eq!(b.delay_since_last_sr, 32768);
        // A new source starts over.
        j.packet(2, 500, 0, 5_000_000);
        let b = j.report(5_000_000).unwrap();
        assert_eq!((b.ssrc, b.highest_sequence, b.cumulative_lost), (2, 500, 0));
    }
}
