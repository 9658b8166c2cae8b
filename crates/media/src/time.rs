//! Time arithmetic of the media model: timestamps that never jump backwards across the
//! wrap-arounds of wire clocks, and the conversions between milliseconds (the model's unit) and the
//! ticks of a container's timescale.

use crate::error::MediaError;

/// Unwraps a wrapping clock of `bits` bits (33 for MPEG-TS, 32 for RTMP) into a monotonic i64.
///
/// A small step backwards (less than a quarter of the range) is kept as a step backwards, since
/// B-frames and interleaving produce those; a large one is taken as a wrap.
#[derive(Debug, Clone, Copy)]
pub struct Unwrapper {
    bits: u32,
    last: Option<u64>,
    epoch: i64,
}

impl Unwrapper {
    /// An unwrapper of a `bits`-bit clock (2 to 62 bits).
    pub fn new(bits: u32) -> Unwrapper {
        assert!(bits > 1 && bits < 63);
        Unwrapper {
            bits,
            last: None,
            epoch: 0,
        }
    }

    /// The monotonic value of the next raw clock reading.
    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let range = 1u64 << self.bits;
        let raw = raw & (range - 1);
        if let Some(last) = self.last {
            if raw < last && last - raw > range / 2 {
                self.epoch += range as i64;
            } else if raw > last && raw - last > range / 2 && self.epoch >= range as i64 {
                // a late value from before the last wrap: `last` stays on the new side of the wrap,
                // or the next value after the wrap would be counted as a second wrap
                return self.epoch - range as i64 + raw as i64;
            }
        }
        self.last = Some(raw);
        self.epoch + raw as i64
    }
}

/// Ticks of `timescale` to milliseconds, rounded to nearest (half up).
pub fn ticks_to_ms(ticks: i64, timescale: u32) -> i64 {
    let ts = timescale.max(1) as i128;
    (ticks as i128 * 2000 + ts)
        .div_euclid(2 * ts)
        .clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Largest |time| in ms the writers accept (about 8.7 years), so that tick arithmetic at any
/// 32-bit timescale stays far from overflowing.
pub const MAX_WRITE_MS: i64 = 1 << 38;

pub(crate) fn check_ms(ms: i64, what: &'static str) -> Result<i64, MediaError> {
    if ms.unsigned_abs() > MAX_WRITE_MS as u64 {
        return Err(MediaError::TooLarge {
            what,
            size: ms.unsigned_abs(),
            limit: MAX_WRITE_MS as u64,
        });
    }
    Ok(ms)
}

/// Milliseconds to ticks of `timescale`, rounded to nearest (half up). Convert absolute times and
/// take differences afterwards, so durations never drift.
pub fn ms_to_ticks(ms: i64, timescale: u32) -> i64 {
    let ts = timescale as i128;
    (ms as i128 * ts * 2 + 1000)
        .div_euclid(2000)
        .clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_forward_on_33_bits() {
        let mut u = Unwrapper::new(33);
        let top = (1u64 << 33) - 3000;
        assert_eq!(u.unwrap(top), top as i64);
        assert_eq!(u.unwrap(600), (1i64 << 33) + 600);
        assert_eq!(u.unwrap(3600), (1i64 << 33) + 3600);
    }

    #[test]
    fn small_backward_steps_stay_backward() {
        let mut u = Unwrapper::new(32);
        assert_eq!(u.unwrap(10_000), 10_000);
        assert_eq!(u.unwrap(9_960), 9_960);
    }

    #[test]
    fn interleaved_values_straddling_the_wrap() {
        // PTS after the wrap, DTS before it, alternating (B-frames, or audio next to video)
        let mut u = Unwrapper::new(33);
        let top = (1i64 << 33) - 9000;
        for n in 0..10i64 {
            let dts = top + n * 3600;
            let pts = dts + 7200;
            assert_eq!(u.unwrap(dts as u64), dts);
            assert_eq!(u.unwrap(pts as u64), pts);
        }
    }

    #[test]
    fn late_value_from_before_wrap() {
        let mut u = Unwrapper::new(32);
        let top = (1u64 << 32) - 10;
        u.unwrap(top);
        assert_eq!(u.unwrap(5), (1i64 << 32) + 5);
        assert_eq!(u.unwrap(top + 2), top as i64 + 2);
        assert_eq!(u.unwrap(40), (1i64 << 32) + 40);
    }
}
