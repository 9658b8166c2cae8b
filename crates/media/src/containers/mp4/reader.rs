//! Reading MP4: [`Mp4Reader`], a sans-IO state machine that asks the caller for byte ranges and
//! returns [`Frame`]s, for progressive files (the sample tables of the [`Movie`]) and fragmented ones
//! (`moof`/`mdat`) alike.

use std::collections::VecDeque;

use bytes::Bytes;

use super::boxes::BoxHeader;
use super::moof::{parse_moof, FragSample};
use super::movie::{parse_moov_with, Cursor, Limits, Movie};
use crate::error::MediaError;
use crate::frame::{Frame, Track, TrackKind};

/// What the reader needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Call [`Mp4Reader::feed`] with the bytes at `offset..offset + len` of the file.
    Read {
        /// Where the bytes start in the file.
        offset: u64,
        /// How many.
        len: u64,
    },
    /// No more frames.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a top-level box header at `pos`.
    Header,
    Moov {
        offset: u64,
        len: u64,
    },
    Moof {
        offset: u64,
        len: u64,
        start: u64,
    },
    /// Sample tables of the moov.
    Samples,
    /// Samples of the last moof.
    Fragment,
    Done,
}

/// Sans-IO MP4 demuxer.
///
/// ```text
/// let mut r = Mp4Reader::new(file_len);
/// loop {
///     match r.need()? {
///         Need::Read { offset, len } => { let b = read(offset, len); if let Some(f) = r.feed(offset, &b)? { … } }
///         Need::Done => break,
///     }
/// }
/// ```
/// It scans top-level box headers (16 bytes each) until `moov`, reads `moov` whole, then asks for
/// one sample at a time, interleaved across tracks by decode time. A fragmented file goes on with
/// each `moof` and the samples it points to. [`Mp4Reader::seek`] moves to the keyframe at or before
/// a time in a progressive file.
#[derive(Debug)]
pub struct Mp4Reader {
    file_len: u64,
    pos: u64,
    state: State,
    movie: Option<Movie>,
    cursors: Vec<Option<Cursor>>,
    pending: VecDeque<FragSample>,
    frag_dts: Vec<i64>,
    after_moov: u64,
    limits: Limits,
    seek: Option<FragSeek>,
    /// After a fragmented seek: samples decoded before this (ms) are dropped from the next moof.
    drop_before: Option<i64>,
}

/// A seek in a fragmented file scans moofs for the last keyframe at or before `target`.
#[derive(Debug, Clone)]
struct FragSeek {
    target: i64,
    /// (moof start, keyframe dts ms, per-track next dts before that moof)
    best: Option<(u64, i64, Vec<i64>)>,
    /// per-track next dts at the first moof
    initial_dts: Vec<i64>,
}

impl Mp4Reader {
    /// A reader of a file of `file_len` bytes, with the default [`Limits`].
    pub fn new(file_len: u64) -> Self {
        Self::with_limits(file_len, Limits::default())
    }

    /// A reader of a file of `file_len` bytes.
    pub fn with_limits(file_len: u64, limits: Limits) -> Self {
        Mp4Reader {
            file_len,
            pos: 0,
            state: State::Header,
            movie: None,
            cursors: Vec::new(),
            pending: VecDeque::new(),
            frag_dts: Vec::new(),
            after_moov: 0,
            limits,
            seek: None,
            drop_before: None,
        }
    }

    /// The parsed moov, once read.
    pub fn movie(&self) -> Option<&Movie> {
        self.movie.as_ref()
    }

    /// The tracks, once the moov is read.
    pub fn tracks(&self) -> Vec<Track> {
        self.movie.as_ref().map(|m| m.tracks()).unwrap_or_default()
    }

    /// True once the moov has been read (tracks are known).
    pub fn has_moov(&self) -> bool {
        self.movie.is_some()
    }

    fn next_track(&self) -> Option<usize> {
        let m = self.movie.as_ref()?;
        let mut best: Option<(i64, usize)> = None;
        for (i, c) in self.cursors.iter().enumerate() {
            if let Some(c) = c {
                let t = m.tracks[i].dts_ms(c.dts);
                if best.map(|b| t < b.0).unwrap_or(true) {
                    best = Some((t, i));
                }
            }
        }
        best.map(|b| b.1)
    }

    /// The byte range needed next, or `Done`.
    pub fn need(&mut self) -> Result<Need, MediaError> {
        loop {
            match self.state {
                State::Header => {
                    if self.pos >= self.file_len {
                        if self.seek.is_some() {
                            self.finish_frag_seek(None);
                            continue;
                        }
                        if self.movie.is_none() {
                            return Err(MediaError::malformed("mp4", "no moov box"));
                        }
                        self.state = State::Done;
                        continue;
                    }
                    return Ok(Need::Read {
                        offset: self.pos,
                        len: (self.file_len - self.pos).min(16),
                    });
                }
                State::Moov { offset, len } | State::Moof { offset, len, .. } => {
                    return Ok(Need::Read { offset, len })
                }
                State::Samples => match self.next_track() {
                    Some(i) => {
                        let m = self.movie.as_ref().unwrap();
                        let c = self.cursors[i].as_ref().unwrap();
                        let s = m.tracks[i].table.sample(c);
                        self.check_sample(s.offset, s.size)?;
                        return Ok(Need::Read {
                            offset: s.offset,
                            len: s.size as u64,
                        });
                    }
                    None => {
                        if self.movie.as_ref().map(|m| m.fragmented).unwrap_or(false) {
                            self.pos = self.after_moov;
                            self.state = State::Header;
                        } else {
                            self.state = State::Done;
                        }
                    }
                },
                State::Fragment => match self.pending.front() {
                    Some(s) => {
                        let (o, l) = (s.offset, s.size);
                        self.check_sample(o, l)?;
                        return Ok(Need::Read {
                            offset: o,
                            len: l as u64,
                        });
                    }
                    None => self.state = State::Header,
                },
                State::Done => return Ok(Need::Done),
            }
        }
    }

    fn check_sample(&self, offset: u64, size: u32) -> Result<(), MediaError> {
        if size > self.limits.max_sample {
            return Err(MediaError::TooLarge {
                what: "mp4 sample",
                size: size as u64,
                limit: self.limits.max_sample as u64,
            });
        }
        if offset
            .checked_add(size as u64)
            .map(|e| e > self.file_len)
            .unwrap_or(true)
        {
            return Err(MediaError::malformed(
                "mp4 sample",
                format!("{size} bytes at {offset} past the end of the file"),
            ));
        }
        Ok(())
    }

    /// Hands over the bytes for the last [`Need::Read`]; `data` must start at `offset` and hold at
    /// least the requested length. Returns a frame when the bytes were a sample.
    pub fn feed(&mut self, offset: u64, data: &[u8]) -> Result<Option<Frame>, MediaError> {
        self.feed_impl(offset, data, None)
    }

    /// Like [`Mp4Reader::feed`], but a frame's payload is a slice of `data` rather than a copy.
    pub fn feed_bytes(&mut self, offset: u64, data: Bytes) -> Result<Option<Frame>, MediaError> {
        self.feed_impl(offset, &data, Some(&data))
    }

    fn feed_impl(
        &mut self,
        offset: u64,
        data: &[u8],
        owned: Option<&Bytes>,
    ) -> Result<Option<Frame>, MediaError> {
        let want = match self.need()? {
            Need::Read { offset, len } => (offset, len),
            Need::Done => return Ok(None),
        };
        if offset != want.0 || (data.len() as u64) < want.1 {
            return Err(MediaError::malformed(
                "mp4 reader feed",
                format!(
                    "got {} bytes at {}, wanted {} at {}",
                    data.len(),
                    offset,
                    want.1,
                    want.0
                ),
            ));
        }
        let data = &data[..want.1 as usize];
        let payload = |d: &[u8]| match owned {
            Some(b) => b.slice(..d.len()),
            None => Bytes::copy_from_slice(d),
        };
        match self.state {
            State::Header => {
                let h = match BoxHeader::parse(data) {
                    Ok(h) => h,
                    Err(MediaError::NeedMore) if self.movie.is_some() => {
                        // a few stray bytes at the end of a file with a moov: the end
                        self.pos = self.file_len;
                        return Ok(None);
                    }
                    Err(MediaError::NeedMore) => {
                        return Err(MediaError::malformed(
                            "mp4",
                            format!("truncated box header at {}", self.pos),
                        ))
                    }
                    Err(e) => return Err(e),
                };
                let size = h.size.unwrap_or(self.file_len - self.pos);
                let end = self.pos.saturating_add(size);
                let body = self.pos + h.header_len as u64;
                if end > self.file_len && (&h.typ == b"moov" || &h.typ == b"moof") {
                    return Err(MediaError::malformed("mp4", "truncated moov/moof"));
                }
                match &h.typ {
                    b"moov" if self.movie.is_none() => {
                        if size > self.limits.max_moov {
                            return Err(MediaError::TooLarge {
                                what: "moov",
                                size,
                                limit: self.limits.max_moov,
                            });
                        }
                        self.state = State::Moov {
                            offset: body,
                            len: end - body,
                        };
                        self.pos = end;
                    }
                    b"moof" if self.movie.as_ref().map(|m| m.fragmented).unwrap_or(false) => {
                        if size > self.limits.max_moof {
                            return Err(MediaError::TooLarge {
                                what: "moof",
                                size,
                                limit: self.limits.max_moof,
                            });
                        }
                        self.state = State::Moof {
                            offset: body,
                            len: end - body,
                            start: self.pos,
                        };
                        self.pos = end;
                    }
                    _ => self.pos = end,
                }
                Ok(None)
            }
            State::Moov { .. } => {
                let movie = parse_moov_with(data, &self.limits)?;
                self.after_moov = self.pos;
                self.cursors = movie.tracks.iter().map(|t| t.table.cursor_at(0)).collect();
                self.frag_dts = movie
                    .tracks
                    .iter()
                    .map(|t| t.table.dts_of(t.table.len()))
                    .collect();
                self.movie = Some(movie);
                self.state = State::Samples;
                Ok(None)
            }
            State::Moof { start, .. } => {
                let movie = self.movie.as_ref().unwrap();
                let mut v = Vec::new();
                let dts_before = self.frag_dts.clone();
                parse_moof(data, start, movie, &mut self.frag_dts, &mut v)?;
                // trafs come track after track; hand samples out interleaved by decode time
                v.sort_by_key(|s| movie.tracks[s.track].dts_ms(s.dts));
                self.state = State::Fragment;
                if let Some(seek) = self.seek.as_mut() {
                    let refi = movie
                        .tracks
                        .iter()
                        .position(|t| t.track.kind() == TrackKind::Video)
                        .unwrap_or(0);
                    let mut passed = false;
                    if let Some(rt) = movie.tracks.get(refi) {
                        for s in v.iter().filter(|s| s.track == refi && s.keyframe) {
                            let (d, o) = rt.times_ms(s.dts, s.cts as i64);
                            if d.saturating_add(o as i64) <= seek.target {
                                seek.best = Some((start, d, dts_before.clone()));
                            } else {
                                passed = true;
                            }
                        }
                    }
                    if !passed {
                        // keep scanning moofs
                        self.state = State::Header;
                        return Ok(None);
                    }
                    self.finish_frag_seek(Some(start));
                    if self.state != State::Fragment {
                        return Ok(None);
                    }
                }
                if let Some(kd) = self.drop_before.take() {
                    let movie = self.movie.as_ref().unwrap();
                    v.retain(|s| movie.tracks[s.track].dts_ms(s.dts) >= kd);
                }
                self.pending = v.into();
                Ok(None)
            }
            State::Samples => {
                let i = self.next_track().unwrap();
                let m = self.movie.as_ref().unwrap();
                let t = &m.tracks[i];
                let c = self.cursors[i].as_mut().unwrap();
                let s = t.table.sample(c);
                let (dts, pts_offset) = t.times_ms(s.dts, s.cts as i64);
                let f = Frame {
                    track: t.track.id,
                    dts,
                    pts_offset,
                    keyframe: s.keyframe,
                    data: payload(data),
                };
                if !t.table.advance(c) {
                    self.cursors[i] = None;
                }
                Ok(Some(f))
            }
            State::Fragment => {
                let s = self.pending.pop_front().unwrap();
                let m = self.movie.as_ref().unwrap();
                let t = &m.tracks[s.track];
                let (dts, pts_offset) = t.times_ms(s.dts, s.cts as i64);
                Ok(Some(Frame {
                    track: t.track.id,
                    dts,
                    pts_offset,
                    keyframe: s.keyframe,
                    data: payload(data),
                }))
            }
            State::Done => Ok(None),
        }
    }

    /// Ends a fragmented seek: goes back to the best moof found (unless it is `current`, the moof
    /// just parsed) and arranges for samples before the keyframe to be dropped.
    fn finish_frag_seek(&mut self, current: Option<u64>) {
        let Some(seek) = self.seek.take() else { return };
        match seek.best {
            Some((start, kd, dts)) => {
                self.drop_before = Some(kd);
                if current != Some(start) {
                    self.pos = start;
                    self.frag_dts = dts;
                    self.state = State::Header;
                }
            }
            None => {
                // the target precedes every keyframe: start from the first fragment
                self.drop_before = None;
                self.pos = self.after_moov;
                self.frag_dts = seek.initial_dts;
                self.state = State::Header;
            }
        }
    }

    /// Moves the reading position to the last keyframe at or before `ms` (presentation time) of
    /// the first video track (or of the first track), and every other track to its first sample at
    /// or after that keyframe's decode time. Returns the keyframe's decode time in ms for a
    /// progressive file. In a fragmented file (no samples in the moov) the reader then scans the
    /// moofs (not the sample data) for that keyframe, and `ms` is returned: the first frame
    /// given out tells where it landed.
    pub fn seek(&mut self, ms: i64) -> Result<i64, MediaError> {
        let m = self
            .movie
            .as_ref()
            .ok_or_else(|| MediaError::malformed("mp4 seek", "moov not read yet"))?;
        if m.tracks.iter().all(|t| t.table.is_empty()) {
            if !m.fragmented {
                return Err(MediaError::malformed("mp4 seek", "no samples"));
            }
            // Fragmented: scan moofs (headers only, no sample data) from the first one.
            self.cursors.iter_mut().for_each(|c| *c = None);
            self.pending.clear();
            self.drop_before = None;
            self.frag_dts = m
                .tracks
                .iter()
                .map(|t| t.table.dts_of(t.table.len()))
                .collect();
            self.seek = Some(FragSeek {
                target: ms,
                best: None,
                initial_dts: self.frag_dts.clone(),
            });
            self.pos = self.after_moov;
            self.state = State::Header;
            return Ok(ms);
        }
        let refi = m
            .tracks
            .iter()
            .position(|t| t.track.kind() == TrackKind::Video && !t.table.is_empty())
            .or_else(|| m.tracks.iter().position(|t| !t.table.is_empty()))
            .unwrap();
        let rt = &m.tracks[refi];
        // binary search over samples by pts of sync samples is awkward; sync samples are sorted by
        // decode time, so search the last sync sample whose pts <= ms.
        let syncs: Vec<u32> = match &rt.table.stss {
            Some(v) => v
                .iter()
                .filter(|&&n| n >= 1 && n <= rt.table.count)
                .map(|n| n - 1)
                .collect(),
            None => Vec::new(),
        };
        let pts_of = |n: u32| -> i64 {
            let c = rt.table.cursor_at(n).unwrap();
            let s = rt.table.sample(&c);
            let (d, o) = rt.times_ms(s.dts, s.cts as i64);
            d.saturating_add(o as i64)
        };
        let target = if rt.table.stss.is_none() {
            // every sample is a sync sample: binary search on dts
            let (mut lo, mut hi) = (0u32, rt.table.count);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if rt.dts_ms(rt.table.dts_of(mid)) <= ms {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo
        } else if syncs.is_empty() {
            0
        } else {
            let k = syncs.partition_point(|&n| pts_of(n) <= ms);
            syncs[k.saturating_sub(1)]
        };
        let t_ms = rt.dts_ms(rt.table.dts_of(target));
        let mut cursors = Vec::with_capacity(m.tracks.len());
        for (i, t) in m.tracks.iter().enumerate() {
            if i == refi {
                cursors.push(t.table.cursor_at(target));
                continue;
            }
            let (mut lo, mut hi) = (0u32, t.table.count);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if t.dts_ms(t.table.dts_of(mid)) < t_ms {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            cursors.push(t.table.cursor_at(lo));
        }
        self.cursors = cursors;
        self.pending.clear();
        self.state = State::Samples;
        Ok(t_ms)
    }
}

/// Demuxes a whole file held in memory: tracks and all frames in reading order.
pub fn read_all(data: &[u8]) -> Result<(Vec<Track>, Vec<Frame>), MediaError> {
    let mut r = Mp4Reader::new(data.len() as u64);
    let mut frames = Vec::new();
    while let Need::Read { offset, len } = r.need()? {
        let s = &data[offset as usize..(offset + len) as usize];
        if let Some(f) = r.feed(offset, s)? {
            frames.push(f);
        }
    }
    Ok((r.tracks(), frames))
}
