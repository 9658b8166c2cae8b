//! RTP time to stream milliseconds, and RTCP sender reports to wallclock.

use super::rtcp::unix_millis_from_ntp;

/// Unwraps a track's 32-bit RTP timestamps into milliseconds from the first packet, and maps them
/// to wallclock once a sender report has been seen.
#[derive(Debug, Clone)]
pub struct Timeline {
    clock_rate: u32,
    first: Option<u32>,
    /// The extended (unwrapped) timestamp of the last input.
    last_ext: i64,
    /// (extended RTP time, Unix ms) of the last sender report.
    sr: Option<(i64, u64)>,
}

impl Timeline {
    /// `clock_rate` 0 is taken as 90 000.
    pub fn new(clock_rate: u32) -> Timeline {
        Timeline {
            clock_rate: if clock_rate == 0 { 90_000 } else { clock_rate },
            first: None,
            last_ext: 0,
            sr: None,
        }
    }

    /// The extended timestamp (ticks since the first), unwrapped around the last one seen.
    fn unwrap(&self, ts: u32) -> i64 {
        let rel = ts.wrapping_sub(self.first.unwrap_or(ts));
        self.last_ext + rel.wrapping_sub(self.last_ext as u32) as i32 as i64
    }

    /// Milliseconds since the first timestamp seen (negative for a reordered earlier one).
    pub fn millis(&mut self, ts: u32) -> i64 {
        if self.first.is_none() {
            self.first = Some(ts);
        }
        let ext = self.unwrap(ts);
        self.last_ext = ext;
        ext * 1000 / self.clock_rate as i64
    }

    /// Records a sender report's (NTP, RTP) pair.
    pub fn sender_report(&mut self, ntp: u64, rtp_time: u32) {
        if self.first.is_none() {
            self.first = Some(rtp_time);
        }
        self.sr = Some((self.unwrap(rtp_time), unix_millis_from_ntp(ntp)));
    }

    /// Unix wallclock milliseconds of a timestamp, from the last sender report; `None` before one.
    pub fn wallclock(&self, ts: u32) -> Option<u64> {
        let (sr_ext, sr_ms) = self.sr?;
        let ext = self.unwrap(ts);
        let delta_ms = (ext - sr_ext) * 1000 / self.clock_rate as i64;
        Some((sr_ms as i64 + delta_ms).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::rtcp::ntp_from_unix_micros;

    #[test]
    fn unwraps_and_maps() {
        let mut t = Timeline::new(90_000);
        let start = u32::MAX - 90_000;
        assert_eq!(t.millis(start), 0);
        assert_eq!(t.millis(start.wrapping_add(45_000)), 500);
        assert_eq!(t.millis(start.wrapping_add(180_000)), 2000);
        assert_eq!(t.millis(start.wrapping_add(90_000)), 1000);
        assert_eq!(t.wallclock(start), None);
        t.sender_report(
            ntp_from_unix_micros(1_000_000_000),
            start.wrapping_add(180_000),
        );
        assert_eq!(t.wallclock(start.wrapping_add(270_000)), Some(1_001_000));
        assert_eq!(t.wallclock(start), Some(998_000));
    }
}
