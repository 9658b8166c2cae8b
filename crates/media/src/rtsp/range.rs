//! The `Range` header of PLAY (RFC 2326 section 12.29 / RFC 7826 section 18.40), in the one unit
//! players use for stored media: normal play time (`npt=10-`, `npt=10.5-20`,
//! `npt=00:01:02.5-`, `npt=now-`).

use super::RtspError;

/// Longest `Range` value we read.
const MAX_RANGE: usize = 256;
/// Latest start we take (about 31 years): larger numbers are not a time.
const MAX_SECONDS: u64 = 1_000_000_000;

/// The start of a `Range` value in milliseconds: `Ok(None)` when it names no start (`npt=now-`,
/// `npt=-20`). Other units (`clock=`, `smpte=`) and anything that does not parse are
/// [`RtspError::BadRange`] (answered 457).
pub fn npt_start_ms(value: &str) -> Result<Option<u64>, RtspError> {
    let bad = || RtspError::BadRange(value.chars().take(64).collect());
    if value.len() > MAX_RANGE {
        return Err(bad());
    }
    // `;time=` (when to start) may follow; it is not honoured.
    let spec = value.split(';').next().unwrap_or("").trim();
    let (unit, times) = spec.split_once('=').ok_or_else(bad)?;
    if !unit.trim().eq_ignore_ascii_case("npt") {
        return Err(bad());
    }
    let (start, end) = times.split_once('-').ok_or_else(bad)?;
    let start = start.trim();
    if !end.trim().is_empty() && !end.trim().eq_ignore_ascii_case("now") {
        npt_time_ms(end.trim()).ok_or_else(bad)?;
    }
    if start.is_empty() || start.eq_ignore_ascii_case("now") {
        return Ok(None);
    }
    npt_time_ms(start).map(Some).ok_or_else(bad)
}

/// The `Range` value of a PLAY answer that starts at `ms`.
pub fn npt_range(ms: u64) -> String {
    format!("npt={}.{:03}-", ms / 1000, ms % 1000)
}

/// `123.45` or `h:mm:ss.frac` in milliseconds.
fn npt_time_ms(s: &str) -> Option<u64> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms_frac = 0u64;
    for (i, b) in frac.bytes().take(3).enumerate() {
        ms_frac += u64::from(b - b'0') * [100, 10, 1][i];
    }
    let parts: Vec<&str> = whole.split(':').collect();
    let num = |p: &str| -> Option<u64> {
        if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let seconds = match parts.as_slice() {
        [s] => num(s)?,
        [h, m, s] => {
            let (h, m, s) = (num(h)?, num(m)?, num(s)?);
            if m > 59 || s > 59 {
                return None;
            }
            h.checked_mul(3600)?.checked_add(m * 60 + s)?
        }
        _ => return None,
    };
    if seconds > MAX_SECONDS {
        return None;
    }
    Some(seconds * 1000 + ms_frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npt_forms() {
        assert_eq!(npt_start_ms("npt=10-"), Ok(Some(10_000)));
        assert_eq!(npt_start_ms("npt=10.5-20"), Ok(Some(10_500)));
        assert_eq!(npt_start_ms(" NPT = 0.000- "), Ok(Some(0)));
        assert_eq!(npt_start_ms("npt=00:01:02.25-"), Ok(Some(62_250)));
        assert_eq!(npt_start_ms("npt=1.23456789-"), Ok(Some(1_234)));
        assert_eq!(npt_start_ms("npt=now-"), Ok(None));
        assert_eq!(npt_start_ms("npt=-20"), Ok(None));
        assert_eq!(
            npt_start_ms("npt=3-;time=19970123T153600Z"),
            Ok(Some(3_000))
        );
        for bad in [
            "clock=19961108T142300Z-",
            "smpte=10:07:00-",
            "npt=x-",
            "npt=10",
            "npt=1:60:00-",
            "npt=99999999999999999999-",
            "npt=-1-",
            "npt=1.2.3-",
            "npt=+5-",
            "npt=5-x",
            "",
        ] {
            assert!(npt_start_ms(bad).is_err(), "{bad}");
        }
        assert!(npt_start_ms(&format!("npt={}-", "1".repeat(300))).is_err());
        assert_eq!(npt_range(8_040), "npt=8.040-");
        assert_eq!(npt_start_ms(&npt_range(8_040)), Ok(Some(8_040)));
    }
}
