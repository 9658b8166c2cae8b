//! Reading fragmented MP4: `moof` boxes (tfhd/tfdt/trun, every flag combination) into samples,
//! and whole CMAF/HLS fMP4 media segments held in memory into frames.

use bytes::Bytes;

use super::boxes::{Boxes, Rd};
use super::movie::Movie;
use crate::error::MediaError;
use crate::frame::Frame;

/// Most samples one `moof` may describe.
pub const MAX_FRAGMENT_SAMPLES: usize = 1 << 16;
/// Most samples one `trun` without per-sample fields may describe (its size does not bound it).
pub const MAX_DEFAULT_TRUN_SAMPLES: usize = 1 << 14;

/// One sample of a fragment: file offset, size and times in track ticks (before the edit list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragSample {
    /// Index into `Movie::tracks`.
    pub track: usize,
    /// Where the sample's bytes start in the file (or segment).
    pub offset: u64,
    /// The sample's size in bytes.
    pub size: u32,
    /// Decode time in track ticks.
    pub dts: i64,
    /// Composition offset in track ticks.
    pub cts: i32,
    /// A sync sample.
    pub keyframe: bool,
}

const NON_SYNC: u32 = 0x0001_0000;

/// Parses the body of a `moof` that starts (header included) at file offset `moof_start`.
/// `next_dts[i]` is the decode time where track `i` goes on when a `traf` has no `tfdt`; it is
/// updated. Samples are appended to `out`, in file order per traf.
pub fn parse_moof(
    moof: &[u8],
    moof_start: u64,
    movie: &Movie,
    next_dts: &mut [i64],
    out: &mut Vec<FragSample>,
) -> Result<(), MediaError> {
    let mut prev_end: Option<u64> = None;
    for b in Boxes::new(moof) {
        let (t, traf) = b?;
        if &t != b"traf" {
            continue;
        }
        let tfhd = super::boxes::find(traf, b"tfhd")?
            .ok_or_else(|| MediaError::malformed("traf", "no tfhd"))?;
        let mut r = Rd::new(tfhd, "tfhd");
        let (_, fl) = r.full()?;
        let id = r.u32()?;
        let Some(idx) = movie.index_of(id) else {
            continue;
        };
        let trex = movie.tracks[idx].trex;
        let base = if fl & 0x1 != 0 {
            r.u64()?
        } else if fl & 0x20000 != 0 {
            moof_start
        } else {
            prev_end.unwrap_or(moof_start)
        };
        if fl & 0x2 != 0 {
            r.u32()?;
        }
        let def_dur = if fl & 0x8 != 0 {
            r.u32()?
        } else {
            trex.duration
        };
        let def_size = if fl & 0x10 != 0 { r.u32()? } else { trex.size };
        let def_flags = if fl & 0x20 != 0 { r.u32()? } else { trex.flags };
        let mut dts = next_dts.get(idx).copied().unwrap_or(0);
        if let Some(tfdt) = super::boxes::find(traf, b"tfdt")? {
            let mut r = Rd::new(tfdt, "tfdt");
            let (v, _) = r.full()?;
            dts = if v == 1 {
                r.u64()?.min(i64::MAX as u64 / 2) as i64
            } else {
                r.u32()? as i64
            };
        }
        let mut pos = base;
        for b in Boxes::new(traf) {
            let (t, trun) = b?;
            if &t != b"trun" {
                continue;
            }
            let mut r = Rd::new(trun, "trun");
            let (_, tf) = r.full()?;
            let entry = 4 * (tf & 0xF00).count_ones() as usize;
            let n = r.u32()? as usize;
            if entry == 0 && n > MAX_DEFAULT_TRUN_SAMPLES {
                return Err(MediaError::TooLarge {
                    what: "trun samples without entries",
                    size: n as u64,
                    limit: MAX_DEFAULT_TRUN_SAMPLES as u64,
                });
            }
            if entry > 0 {
                // the entries must fit after the optional fields
                let opt = if tf & 0x1 != 0 { 4 } else { 0 } + if tf & 0x4 != 0 { 4 } else { 0 };
                if n.saturating_mul(entry) > r.remaining().saturating_sub(opt) {
                    return Err(MediaError::malformed(
                        "trun",
                        format!("{} samples of {} bytes do not fit", n, entry),
                    ));
                }
            }
            if out.len() + n > MAX_FRAGMENT_SAMPLES {
                return Err(MediaError::TooLarge {
                    what: "moof samples",
                    size: (out.len() + n) as u64,
                    limit: MAX_FRAGMENT_SAMPLES as u64,
                });
            }
            if tf & 0x1 != 0 {
                let off = r.i32()? as i64;
                let p = base as i128 + off as i128;
                if p < 0 || p > u64::MAX as i128 {
                    return Err(MediaError::malformed("trun", "data offset before the file"));
                }
                pos = p as u64;
            }
            let first_flags = if tf & 0x4 != 0 { Some(r.u32()?) } else { None };
            out.reserve(n.min(4096));
            for i in 0..n {
                let dur = if tf & 0x100 != 0 { r.u32()? } else { def_dur };
                let size = if tf & 0x200 != 0 { r.u32()? } else { def_size };
                let mut flags = if tf & 0x400 != 0 { r.u32()? } else { def_flags };
                if i == 0 {
                    if let Some(f) = first_flags {
                        flags = f;
                    }
                }
                let cts = if tf & 0x800 != 0 { r.i32()? } else { 0 };
                out.push(FragSample {
                    track: idx,
                    offset: pos,
                    size,
                    dts,
                    cts,
                    keyframe: flags & NON_SYNC == 0,
                });
                pos = pos.saturating_add(size as u64);
                dts = dts.saturating_add(dur as i64);
            }
        }
        if let Some(d) = next_dts.get_mut(idx) {
            *d = dts;
        }
        prev_end = Some(pos);
    }
    Ok(())
}

/// Demuxes fragments held in memory (a CMAF/HLS fMP4 media segment, or several: any sequence of
/// top-level boxes such as styp, sidx, moof, mdat) against the init segment's `movie`. Payloads are
/// slices of `data`. `next_dts` (one per track of `movie`, start with zeros) carries decode times
/// across segments whose trafs have no tfdt. Frames come per moof, interleaved by decode time.
pub fn demux_segment(
    movie: &Movie,
    data: impl Into<Bytes>,
    next_dts: &mut [i64],
) -> Result<Vec<Frame>, MediaError> {
    let data: Bytes = data.into();
    let mut frames = Vec::new();
    let mut pos = 0usize;
    let mut samples = Vec::new();
    while pos < data.len() {
        let h = super::boxes::BoxHeader::parse(&data[pos..]).map_err(|e| match e {
            MediaError::NeedMore => MediaError::malformed("fmp4 segment", "truncated box header"),
            e => e,
        })?;
        let size = h.size.unwrap_or((data.len() - pos) as u64);
        if size > (data.len() - pos) as u64 {
            return Err(MediaError::malformed(
                "fmp4 segment",
                "box runs past the end",
            ));
        }
        let size = size as usize;
        if &h.typ == b"moof" {
            samples.clear();
            parse_moof(
                &data[pos + h.header_len as usize..pos + size],
                pos as u64,
                movie,
                next_dts,
                &mut samples,
            )?;
            samples.sort_by_key(|s| movie.tracks[s.track].dts_ms(s.dts));
            frames.reserve(samples.len());
            for s in &samples {
                let end = s
                    .offset
                    .checked_add(s.size as u64)
                    .filter(|&e| e <= data.len() as u64);
                let Some(end) = end else {
                    return Err(MediaError::malformed(
                        "fmp4 segment",
                        "sample outside the segment",
                    ));
                };
                let t = &movie.tracks[s.track];
                let (dts, pts_offset) = t.times_ms(s.dts, s.cts as i64);
                frames.push(Frame {
                    track: t.track.id,
                    dts,
                    pts_offset,
                    keyframe: s.keyframe,
                    data: data.slice(s.offset as usize..end as usize),
                });
            }
        }
        pos += size;
    }
    Ok(frames)
}
