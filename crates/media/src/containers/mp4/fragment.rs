//! Writing fragmented MP4: CMAF init and media segments (reading them is in `moof`).

use bytes::Bytes;

use super::boxes::BoxWriter;
use super::writer::{track_timescale, write_ftyp, write_mvhd, write_trak, TrakSpec};
use crate::error::MediaError;
use crate::frame::{Frame, Track, TrackKind};
use crate::time::{check_ms, ms_to_ticks};

/// Options of the [`FragmentWriter`].
#[derive(Debug, Clone, Default)]
pub struct FragmentOptions {
    /// Start each media segment with a `styp` box.
    pub styp: bool,
    /// Added to every frame time before conversion to track ticks; decode times must not end up
    /// negative (tfdt is unsigned).
    pub time_offset_ms: i64,
}

/// CMAF / fragmented MP4 writer.
///
/// One writer for all tracks gives multiplexed fragments (one `traf` per track in each `moof`);
/// for CMAF's one-track-per-file, make one writer per track. Times are converted from absolute
/// milliseconds to track ticks, so fragment boundaries never drift.
#[derive(Debug, Clone)]
pub struct FragmentWriter {
    tracks: Vec<Track>,
    ts: Vec<u32>,
    last_dur: Vec<u32>,
    opts: FragmentOptions,
    seq: u32,
}

impl FragmentWriter {
    /// A writer of `tracks` (each needs its init data), or why one of them cannot be written.
    pub fn new(tracks: Vec<Track>, opts: FragmentOptions) -> Result<Self, MediaError> {
        for (i, t) in tracks.iter().enumerate() {
            if tracks[..i].iter().any(|o| o.id == t.id) || t.id == 0 {
                return Err(MediaError::malformed(
                    "fragment writer",
                    format!("track id {} zero or repeated", t.id),
                ));
            }
            super::entry::write_entry(&mut BoxWriter::new(), t)?;
        }
        let ts: Vec<u32> = tracks.iter().map(track_timescale).collect();
        Ok(FragmentWriter {
            last_dur: vec![0; tracks.len()],
            tracks,
            ts,
            opts,
            seq: 1,
        })
    }

    /// The tracks, as given.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Sets the `mfhd` sequence number of the next media segment (starts at 1).
    pub fn set_sequence(&mut self, n: u32) {
        self.seq = n;
    }

    /// The init segment: ftyp (iso6, cmfc), moov with empty sample tables and mvex/trex.
    pub fn init_segment(&self) -> Result<Vec<u8>, MediaError> {
        let mut w = BoxWriter::new();
        write_ftyp(&mut w, b"iso6", 0, &[b"iso6", b"cmfc", b"mp41"]);
        w.start(b"moov");
        write_mvhd(
            &mut w,
            0,
            self.tracks
                .iter()
                .map(|t| t.id)
                .max()
                .unwrap_or(0)
                .saturating_add(1),
        );
        for (t, &ts) in self.tracks.iter().zip(&self.ts) {
            write_trak(
                &mut w,
                &TrakSpec {
                    track: t,
                    timescale: ts,
                    duration_ticks: 0,
                    duration_ms: 0,
                    edit: (0, 0),
                    tables: None,
                    base: 0,
                    co64: false,
                },
            )?;
        }
        w.start(b"mvex");
        for t in &self.tracks {
            w.start_full(b"trex", 0, 0);
            w.u32(t.id);
            w.u32(1);
            w.u32(0);
            w.u32(0);
            w.u32(0);
            w.end();
        }
        w.end();
        w.end();
        Ok(w.into_inner())
    }

    /// One media segment (or CMAF chunk/part) with `frames`: `[styp] moof mdat`. `end_ms`, when
    /// known, is where the segment ends (the next segment's start) and sets the last sample's
    /// duration; without it the previous duration is repeated.
    pub fn media_segment(
        &mut self,
        frames: &[Frame],
        end_ms: Option<i64>,
    ) -> Result<Vec<u8>, MediaError> {
        let (mut head, payloads) = self.media_segment_vectored(frames, end_ms)?;
        head.reserve(payloads.iter().map(|p| p.len()).sum());
        for p in payloads {
            head.extend_from_slice(&p);
        }
        Ok(head)
    }

    /// Like [`FragmentWriter::media_segment`], but returns the boxes up to and including the mdat
    /// header, and the payloads that follow it in order (for vectored writes without copying).
    pub fn media_segment_vectored(
        &mut self,
        frames: &[Frame],
        end_ms: Option<i64>,
    ) -> Result<(Vec<u8>, Vec<Bytes>), MediaError> {
        let mut per: Vec<Vec<&Frame>> = vec![Vec::new(); self.tracks.len()];
        check_ms(self.opts.time_offset_ms, "fragment time offset")?;
        if let Some(e) = end_ms {
            check_ms(e, "fragment end")?;
        }
        for f in frames {
            check_ms(f.dts, "fragment dts")?;
            let i = self
                .tracks
                .iter()
                .position(|t| t.id == f.track)
                .ok_or_else(|| {
                    MediaError::malformed("fragment writer", format!("unknown track {}", f.track))
                })?;
            per[i].push(f);
        }
        let mut w = BoxWriter::new();
        if self.opts.styp {
            write_ftyp(&mut w, b"msdh", 0, &[b"msdh", b"msix", b"cmfs"]);
            // ftyp and styp share a layout
            let n = w.buf.len();
            w.buf[4..8].copy_from_slice(b"styp");
            debug_assert!(n > 8);
        }
        let moof_start = w.len();
        w.start(b"moof");
        w.start_full(b"mfhd", 0, 0);
        w.u32(self.seq);
        w.end();
        let mut patches = Vec::new();
        let mut data_len = 0u64;
        let mut payloads = Vec::with_capacity(frames.len());
        for (i, fs) in per.iter().enumerate() {
            if fs.is_empty() {
                continue;
            }
            let ts = self.ts[i];
            let off = self.opts.time_offset_ms;
            let ticks: Vec<i64> = fs.iter().map(|f| ms_to_ticks(f.dts + off, ts)).collect();
            if ticks[0] < 0 {
                return Err(MediaError::malformed(
                    "fragment writer",
                    "negative decode time; set time_offset_ms",
                ));
            }
            w.start(b"traf");
            w.start_full(b"tfhd", 0, 0x20000);
            w.u32(self.tracks[i].id);
            w.end();
            w.start_full(b"tfdt", 1, 0);
            w.u64(ticks[0] as u64);
            w.end();
            let cts: Vec<i64> = fs
                .iter()
                .zip(&ticks)
                .map(|(f, &t)| ms_to_ticks(f.pts() + off, ts) - t)
                .collect();
            let has_cts = cts.iter().any(|&c| c != 0);
            w.start_full(
                b"trun",
                1,
                0x1 | 0x100 | 0x200 | 0x400 | if has_cts { 0x800 } else { 0 },
            );
            w.u32(fs.len() as u32);
            patches.push((w.len(), data_len));
            w.u32(0);
            for (k, f) in fs.iter().enumerate() {
                let dur = if k + 1 < fs.len() {
                    ticks[k + 1] - ticks[k]
                } else if let Some(e) = end_ms
                    .map(|e| ms_to_ticks(e + off, ts) - ticks[k])
                    .filter(|&d| d > 0)
                {
                    e
                } else if self.last_dur[i] > 0 {
                    self.last_dur[i] as i64
                } else if self.tracks[i].kind() == TrackKind::Audio {
                    (ts / 50).max(1) as i64
                } else {
                    (ts / 25).max(1) as i64
                };
                if !(0..=u32::MAX as i64).contains(&dur) {
                    return Err(MediaError::malformed(
                        "fragment writer",
                        "decode times go backwards",
                    ));
                }
                if k + 1 < fs.len() || end_ms.is_some() {
                    self.last_dur[i] = dur as u32;
                }
                w.u32(dur as u32);
                w.u32(f.data.len() as u32);
                w.u32(if f.keyframe { 0x0200_0000 } else { 0x0101_0000 });
                if has_cts {
                    w.i32(cts[k].clamp(i32::MIN as i64, i32::MAX as i64) as i32);
                }
                data_len += f.data.len() as u64;
                payloads.push(f.data.clone());
            }
            w.end();
            w.end();
        }
        w.end();
        let moof_len = (w.len() - moof_start) as u64;
        for (at, rel) in patches {
            let off = moof_len + 8 + rel;
            if off > i32::MAX as u64 {
                return Err(MediaError::TooLarge {
                    what: "fragment",
                    size: off,
                    limit: i32::MAX as u64,
                });
            }
            w.buf[at..at + 4].copy_from_slice(&(off as u32).to_be_bytes());
        }
        let mdat = 8 + data_len;
        if mdat > u32::MAX as u64 {
            return Err(MediaError::TooLarge {
                what: "fragment mdat",
                size: mdat,
                limit: u32::MAX as u64,
            });
        }
        w.u32(mdat as u32);
        w.bytes(b"mdat");
        self.seq = self.seq.wrapping_add(1);
        Ok((w.into_inner(), payloads))
    }
}
