//! The parsed `moov`: a [`Movie`] with a compact per-track sample table ([`SampleTable`], walked by
//! a [`Cursor`]), and [`Movie::samples`], every sample of a progressive file interleaved across
//! tracks by decode time.

use super::boxes::{find, Boxes, Rd};
use super::entry::{parse_stsd, SampleEntry};
use crate::error::MediaError;
use crate::frame::{Track, TrackKind};
use crate::time::ticks_to_ms;

/// Defaults from `trex` for fragments of one track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trex {
    /// The sample description used by default.
    pub description_index: u32,
    /// Default sample duration, in track ticks.
    pub duration: u32,
    /// Default sample size in bytes.
    pub size: u32,
    /// Default sample flags.
    pub flags: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Sizes {
    Const(u32),
    Table(Vec<u32>),
}

/// The sample tables of one track, kept in their run-length form (as compact as in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleTable {
    stts: Vec<(u32, u32)>,
    ctts: Vec<(u32, i32)>,
    /// 1-based sync sample numbers, sorted; `None` when every sample is a sync sample.
    pub(super) stss: Option<Vec<u32>>,
    /// (first chunk, 1-based; samples per chunk)
    stsc: Vec<(u32, u32)>,
    chunks: Vec<u64>,
    sizes: Sizes,
    pub(super) count: u32,
}

/// One sample of a progressive file, in track ticks before the edit list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInfo {
    /// Where the sample's bytes start in the file.
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

/// A position in a [`SampleTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The sample it points at (0-based).
    pub sample: u32,
    stts_i: usize,
    stts_left: u32,
    pub(super) dts: i64,
    ctts_i: usize,
    ctts_left: u32,
    stsc_i: usize,
    chunk: usize,
    chunk_left: u32,
    offset: u64,
}

impl SampleTable {
    /// How many samples the track has.
    pub fn len(&self) -> u32 {
        self.count
    }
    /// Whether the track has no sample.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn size_of(&self, n: u32) -> u32 {
        match &self.sizes {
            Sizes::Const(s) => *s,
            Sizes::Table(v) => v.get(n as usize).copied().unwrap_or(0),
        }
    }

    fn chunk_end(&self, i: usize) -> usize {
        let end = self
            .stsc
            .get(i + 1)
            .map(|e| e.0 as usize - 1)
            .unwrap_or(self.chunks.len());
        end.min(self.chunks.len())
    }

    /// Whether sample `n` (0-based) is a sync sample.
    pub fn is_sync(&self, n: u32) -> bool {
        match &self.stss {
            None => true,
            Some(v) => v.binary_search(&(n + 1)).is_ok(),
        }
    }

    /// The cursor at sample `n` (0-based), computed by walking runs, not samples.
    pub fn cursor_at(&self, n: u32) -> Option<Cursor> {
        if n >= self.count {
            return None;
        }
        let mut c = Cursor {
            sample: n,
            stts_i: 0,
            stts_left: 0,
            dts: 0,
            ctts_i: 0,
            ctts_left: 0,
            stsc_i: 0,
            chunk: 0,
            chunk_left: 0,
            offset: 0,
        };
        let mut rem = n as u64;
        c.stts_i = self.stts.len();
        for (i, &(cnt, delta)) in self.stts.iter().enumerate() {
            if rem < cnt as u64 {
                c.stts_i = i;
                c.stts_left = cnt - rem as u32;
                c.dts = c.dts.saturating_add(rem as i64 * delta as i64);
                break;
            }
            c.dts = c.dts.saturating_add(cnt as i64 * delta as i64);
            rem -= cnt as u64;
        }
        let mut rem = n as u64;
        c.ctts_i = self.ctts.len();
        for (i, &(cnt, _)) in self.ctts.iter().enumerate() {
            if rem < cnt as u64 {
                c.ctts_i = i;
                c.ctts_left = cnt - rem as u32;
                break;
            }
            rem -= cnt as u64;
        }
        let mut base = 0u64;
        for (i, &(first, spc)) in self.stsc.iter().enumerate() {
            let first = first as usize - 1;
            let end = self.chunk_end(i);
            if end <= first || spc == 0 {
                continue;
            }
            let in_run = (end - first) as u64 * spc as u64;
            if (n as u64) < base + in_run {
                let k = n as u64 - base;
                let chunk = first + (k / spc as u64) as usize;
                let idx = (k % spc as u64) as u32;
                c.stsc_i = i;
                c.chunk = chunk;
                c.chunk_left = spc - idx;
                let before: u64 = match &self.sizes {
                    Sizes::Const(s) => idx as u64 * *s as u64,
                    Sizes::Table(v) => v[(n - idx) as usize..n as usize]
                        .iter()
                        .map(|&s| s as u64)
                        .sum(),
                };
                c.offset = self.chunks[chunk].saturating_add(before);
                return Some(c);
            }
            base += in_run;
        }
        None
    }

    /// Moves `c` to the next sample; false at the end.
    pub fn advance(&self, c: &mut Cursor) -> bool {
        if c.sample + 1 >= self.count {
            c.sample = self.count;
            return false;
        }
        let size = self.size_of(c.sample);
        c.sample += 1;
        if let Some(&(_, delta)) = self.stts.get(c.stts_i) {
            c.dts = c.dts.saturating_add(delta as i64);
            c.stts_left = c.stts_left.saturating_sub(1);
            while c.stts_left == 0 && c.stts_i < self.stts.len() {
                c.stts_i += 1;
                c.stts_left = self.stts.get(c.stts_i).map(|e| e.0).unwrap_or(0);
            }
        }
        if c.ctts_i < self.ctts.len() {
            c.ctts_left = c.ctts_left.saturating_sub(1);
            while c.ctts_left == 0 && c.ctts_i < self.ctts.len() {
                c.ctts_i += 1;
                c.ctts_left = self.ctts.get(c.ctts_i).map(|e| e.0).unwrap_or(0);
            }
        }
        c.chunk_left -= 1;
        if c.chunk_left > 0 {
            c.offset = c.offset.saturating_add(size as u64);
        } else {
            loop {
                c.chunk += 1;
                if c.chunk >= self.chunks.len() {
                    c.sample = self.count;
                    return false;
                }
                while c.stsc_i + 1 < self.stsc.len()
                    && self.stsc[c.stsc_i + 1].0 as usize - 1 <= c.chunk
                {
                    c.stsc_i += 1;
                }
                c.chunk_left = self.stsc[c.stsc_i].1;
                if c.chunk_left > 0 {
                    break;
                }
            }
            c.offset = self.chunks[c.chunk];
        }
        true
    }

    /// The sample at the cursor.
    pub fn sample(&self, c: &Cursor) -> SampleInfo {
        SampleInfo {
            offset: c.offset,
            size: self.size_of(c.sample),
            dts: c.dts,
            cts: self.ctts.get(c.ctts_i).map(|e| e.1).unwrap_or(0),
            keyframe: self.is_sync(c.sample),
        }
    }

    /// Decode time (ticks, before the edit list) of sample `n`.
    pub fn dts_of(&self, n: u32) -> i64 {
        let mut rem = n as i64;
        let mut dts = 0i64;
        for &(cnt, delta) in &self.stts {
            let k = rem.min(cnt as i64);
            dts = dts.saturating_add(k * delta as i64);
            rem -= k;
            if rem == 0 {
                break;
            }
        }
        dts
    }

    /// Bytes of heap this table holds.
    pub fn heap_bytes(&self) -> usize {
        self.stts.capacity() * 8
            + self.ctts.capacity() * 8
            + self.stss.as_ref().map(|v| v.capacity() * 4).unwrap_or(0)
            + self.stsc.capacity() * 8
            + self.chunks.capacity() * 8
            + match &self.sizes {
                Sizes::Const(_) => 0,
                Sizes::Table(v) => v.capacity() * 4,
            }
    }
}

/// One track of a [`Movie`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovieTrack {
    /// The track in the media model.
    pub track: Track,
    /// Its sample entry (`stsd`).
    pub entry: SampleEntry,
    /// Its sample tables.
    pub table: SampleTable,
    /// Added to track ticks to get presentation-timeline ticks (from the edit list).
    pub shift: i64,
    /// Subtracted from decode times so that no presentation time precedes its decode time when
    /// `ctts` has negative offsets (what ffmpeg does).
    pub dts_shift: i64,
    /// Defaults for its fragments (`trex`).
    pub trex: Trex,
}

impl MovieTrack {
    /// Decode time in ms of a decode time in track ticks (edit list and `ctts` shift applied).
    pub fn dts_ms(&self, ticks: i64) -> i64 {
        ticks_to_ms(
            ticks
                .saturating_add(self.shift)
                .saturating_sub(self.dts_shift),
            self.track.timescale,
        )
    }
    /// `(dts ms, pts offset ms)` from track ticks.
    pub fn times_ms(&self, dts: i64, cts: i64) -> (i64, i32) {
        let d = self.dts_ms(dts);
        let p = ticks_to_ms(
            dts.saturating_add(cts).saturating_add(self.shift),
            self.track.timescale,
        );
        (
            d,
            p.saturating_sub(d).clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        )
    }
}

/// The parsed `moov`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movie {
    /// Ticks per second of the movie's clock (`mvhd`).
    pub timescale: u32,
    /// Duration in movie ticks.
    pub duration: u64,
    /// The tracks whose codec is supported.
    pub tracks: Vec<MovieTrack>,
    /// `mvex` present: samples (also) come in `moof` fragments.
    pub fragmented: bool,
    /// Track ids of `trak`s skipped because their codec is not supported.
    pub skipped: Vec<u32>,
}

impl Movie {
    /// The tracks in the media model.
    pub fn tracks(&self) -> Vec<Track> {
        self.tracks.iter().map(|t| t.track.clone()).collect()
    }
    /// The index in [`Movie::tracks`] of the track with this id.
    pub fn index_of(&self, track_id: u32) -> Option<usize> {
        self.tracks.iter().position(|t| t.track.id == track_id)
    }

    /// Every sample of the moov's tables, interleaved across tracks by decode time, without
    /// reading any sample data (for building a key index, or reading ranges yourself).
    pub fn samples(&self) -> Samples<'_> {
        Samples {
            movie: self,
            cursors: self.tracks.iter().map(|t| t.table.cursor_at(0)).collect(),
        }
    }
}

/// One sample of a progressive file, with times in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedSample {
    /// Track id.
    pub track: u32,
    /// Where the sample's bytes start in the file.
    pub offset: u64,
    /// The sample's size in bytes.
    pub size: u32,
    /// Decode time (ms).
    pub dts: i64,
    /// Presentation time minus decode time (ms).
    pub pts_offset: i32,
    /// A sync sample.
    pub keyframe: bool,
}

/// Iterator of [`Movie::samples`].
#[derive(Debug, Clone)]
pub struct Samples<'a> {
    movie: &'a Movie,
    cursors: Vec<Option<Cursor>>,
}

impl Iterator for Samples<'_> {
    type Item = IndexedSample;
    fn next(&mut self) -> Option<IndexedSample> {
        let m = self.movie;
        let mut best: Option<(i64, usize)> = None;
        for (i, c) in self.cursors.iter().enumerate() {
            if let Some(c) = c {
                let t = m.tracks[i].dts_ms(c.dts);
                if best.map(|b| t < b.0).unwrap_or(true) {
                    best = Some((t, i));
                }
            }
        }
        let i = best?.1;
        let t = &m.tracks[i];
        let c = self.cursors[i].as_mut().unwrap();
        let s = t.table.sample(c);
        let (dts, pts_offset) = t.times_ms(s.dts, s.cts as i64);
        if !t.table.advance(c) {
            self.cursors[i] = None;
        }
        Some(IndexedSample {
            track: t.track.id,
            offset: s.offset,
            size: s.size,
            dts,
            pts_offset,
            keyframe: s.keyframe,
        })
    }
}

fn parse_table(stbl: &[u8], max_samples: u32) -> Result<SampleTable, MediaError> {
    let need = |t: &[u8; 4]| -> Result<&[u8], MediaError> {
        find(stbl, t)?.ok_or_else(|| {
            MediaError::malformed("stbl", format!("no {}", String::from_utf8_lossy(t)))
        })
    };
    let mut r = Rd::new(need(b"stts")?, "stts");
    r.full()?;
    let n = r.count(8)?;
    let mut stts = Vec::with_capacity(n);
    let mut total = 0u64;
    for _ in 0..n {
        let e = (r.u32()?, r.u32()?);
        total += e.0 as u64;
        stts.push(e);
    }
    let mut ctts = Vec::new();
    if let Some(b) = find(stbl, b"ctts")? {
        let mut r = Rd::new(b, "ctts");
        r.full()?;
        let n = r.count(8)?;
        ctts.reserve_exact(n);
        for _ in 0..n {
            // version 0 is unsigned by the letter of the spec, but writers put negative offsets
            // in it too; reading both as signed is what every demuxer does.
            ctts.push((r.u32()?, r.i32()?));
        }
    }
    let stss = match find(stbl, b"stss")? {
        None => None,
        Some(b) => {
            let mut r = Rd::new(b, "stss");
            r.full()?;
            let n = r.count(4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.u32()?);
            }
            v.sort_unstable();
            Some(v)
        }
    };
    let mut r = Rd::new(need(b"stsc")?, "stsc");
    r.full()?;
    let n = r.count(12)?;
    let mut stsc: Vec<(u32, u32)> = Vec::with_capacity(n);
    for _ in 0..n {
        let first = r.u32()?;
        let spc = r.u32()?;
        r.u32()?;
        if first == 0 || stsc.last().map(|l| l.0 >= first).unwrap_or(false) {
            return Err(MediaError::malformed(
                "stsc",
                "first chunks not increasing from 1",
            ));
        }
        stsc.push((first, spc));
    }
    let chunks = if let Some(b) = find(stbl, b"stco")? {
        let mut r = Rd::new(b, "stco");
        r.full()?;
        let n = r.count(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(r.u32()? as u64);
        }
        v
    } else if let Some(b) = find(stbl, b"co64")? {
        let mut r = Rd::new(b, "co64");
        r.full()?;
        let n = r.count(8)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(r.u64()?);
        }
        v
    } else {
        return Err(MediaError::malformed("stbl", "no stco/co64"));
    };
    let (sizes, size_count) = if let Some(b) = find(stbl, b"stsz")? {
        let mut r = Rd::new(b, "stsz");
        r.full()?;
        let s = r.u32()?;
        if s != 0 {
            (Sizes::Const(s), r.u32()? as u64)
        } else {
            let n = r.count(4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.u32()?);
            }
            (Sizes::Table(v), n as u64)
        }
    } else if let Some(b) = find(stbl, b"stz2")? {
        let mut r = Rd::new(b, "stz2");
        r.full()?;
        r.skip(3)?;
        let field = r.u8()?;
        let n = r.u32()? as usize;
        let bytes_needed = match field {
            4 => n.div_ceil(2),
            8 => n,
            16 => n.saturating_mul(2),
            _ => return Err(MediaError::malformed("stz2", format!("field size {field}"))),
        };
        let d = r.bytes(bytes_needed)?;
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            v.push(match field {
                4 => ((d[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf) as u32,
                8 => d[i] as u32,
                _ => u16::from_be_bytes([d[2 * i], d[2 * i + 1]]) as u32,
            });
        }
        (Sizes::Table(v), n as u64)
    } else {
        return Err(MediaError::malformed("stbl", "no stsz/stz2"));
    };
    // capacity of the chunk layout
    let mut cap = 0u64;
    for (i, &(first, spc)) in stsc.iter().enumerate() {
        let end = stsc
            .get(i + 1)
            .map(|e| e.0 as usize - 1)
            .unwrap_or(chunks.len())
            .min(chunks.len());
        let first = first as usize - 1;
        if end > first {
            cap = cap.saturating_add((end - first) as u64 * spc as u64);
        }
    }
    let count = size_count.min(total).min(cap);
    if count > max_samples as u64 {
        return Err(MediaError::TooLarge {
            what: "mp4 sample count",
            size: count,
            limit: max_samples as u64,
        });
    }
    Ok(SampleTable {
        stts,
        ctts,
        stss,
        stsc,
        chunks,
        sizes,
        count: count as u32,
    })
}

fn parse_elst(b: &[u8], movie_ts: u32, media_ts: u32) -> Result<i64, MediaError> {
    let mut r = Rd::new(b, "elst");
    let (v, _) = r.full()?;
    let n = r.count(if v == 1 { 20 } else { 12 })?;
    let mut empty: i64 = 0;
    for _ in 0..n {
        let (dur, mt) = if v == 1 {
            (r.u64()? as i64, r.u64()? as i64)
        } else {
            (r.u32()? as i64, r.i32()? as i64)
        };
        r.u32()?;
        if mt == -1 {
            empty = empty.saturating_add(dur.max(0));
            continue;
        }
        let empty_ticks = (empty as i128 * media_ts as i128 / movie_ts.max(1) as i128) as i64;
        return Ok(empty_ticks.saturating_sub(mt));
    }
    Ok((empty as i128 * media_ts as i128 / movie_ts.max(1) as i128) as i64)
}

fn lang(code: u16) -> String {
    if code == 0 || code == 0x55c4 {
        return String::new();
    }
    let c = |s: u16| (((code >> s) & 0x1f) as u8 + 0x60) as char;
    let s: String = [c(10), c(5), c(0)].iter().collect();
    if s.chars().all(|c| c.is_ascii_lowercase()) {
        s
    } else {
        String::new()
    }
}

/// Limits a reader applies to what a file claims.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest `moov` read, in bytes.
    pub max_moov: u64,
    /// Largest `moof` read, in bytes.
    pub max_moof: u64,
    /// Largest sample read, in bytes.
    pub max_sample: u32,
    /// Most samples a track may have.
    pub max_samples_per_track: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_moov: 256 << 20,
            max_moof: 64 << 20,
            max_sample: 64 << 20,
            max_samples_per_track: 50_000_000,
        }
    }
}

/// Parses the body of a `moov` box. Tracks with codecs we do not handle are skipped (listed in
/// `Movie::skipped`); a moov without any usable track is still returned.
pub fn parse_moov(moov: &[u8]) -> Result<Movie, MediaError> {
    parse_moov_with(moov, &Limits::default())
}

/// [`parse_moov`] with other [`Limits`].
pub fn parse_moov_with(moov: &[u8], limits: &Limits) -> Result<Movie, MediaError> {
    let mvhd = find(moov, b"mvhd")?.ok_or_else(|| MediaError::malformed("moov", "no mvhd"))?;
    let mut r = Rd::new(mvhd, "mvhd");
    let (v, _) = r.full()?;
    let (timescale, duration) = if v == 1 {
        r.skip(16)?;
        (r.u32()?, r.u64()?)
    } else {
        r.skip(8)?;
        (r.u32()?, r.u32()? as u64)
    };
    let mut trexes = Vec::new();
    let mvex = find(moov, b"mvex")?;
    if let Some(mvex) = mvex {
        for b in Boxes::new(mvex) {
            let (t, body) = b?;
            if &t == b"trex" {
                let mut r = Rd::new(body, "trex");
                r.full()?;
                let id = r.u32()?;
                trexes.push((
                    id,
                    Trex {
                        description_index: r.u32()?,
                        duration: r.u32()?,
                        size: r.u32()?,
                        flags: r.u32()?,
                    },
                ));
            }
        }
    }
    let mut movie = Movie {
        timescale,
        duration,
        tracks: Vec::new(),
        fragmented: mvex.is_some(),
        skipped: Vec::new(),
    };
    for b in Boxes::new(moov) {
        let (t, trak) = b?;
        if &t != b"trak" {
            continue;
        }
        let tkhd = find(trak, b"tkhd")?.ok_or_else(|| MediaError::malformed("trak", "no tkhd"))?;
        let mut r = Rd::new(tkhd, "tkhd");
        let (v, _) = r.full()?;
        r.skip(if v == 1 { 16 } else { 8 })?;
        let id = r.u32()?;
        let mdia = find(trak, b"mdia")?.ok_or_else(|| MediaError::malformed("trak", "no mdia"))?;
        let mdhd = find(mdia, b"mdhd")?.ok_or_else(|| MediaError::malformed("mdia", "no mdhd"))?;
        let mut r = Rd::new(mdhd, "mdhd");
        let (v, _) = r.full()?;
        let (media_ts, media_dur) = if v == 1 {
            r.skip(16)?;
            (r.u32()?, r.u64()?)
        } else {
            r.skip(8)?;
            (r.u32()?, r.u32()? as u64)
        };
        let language = lang(r.u16()?);
        if media_ts == 0 {
            return Err(MediaError::malformed("mdhd", "timescale 0"));
        }
        let stbl = find(mdia, b"minf")?
            .map(|m| find(m, b"stbl"))
            .transpose()?
            .flatten()
            .ok_or_else(|| MediaError::malformed("trak", "no minf/stbl"))?;
        let stsd = find(stbl, b"stsd")?.ok_or_else(|| MediaError::malformed("stbl", "no stsd"))?;
        let entry = match parse_stsd(stsd) {
            Ok(e) => e,
            Err(MediaError::Unsupported { .. }) => {
                movie.skipped.push(id);
                continue;
            }
            Err(e) => return Err(e),
        };
        let table = parse_table(stbl, limits.max_samples_per_track)?;
        let shift = match find(trak, b"edts")?
            .map(|e| find(e, b"elst"))
            .transpose()?
            .flatten()
        {
            Some(elst) => parse_elst(elst, timescale, media_ts)?,
            None => 0,
        };
        let trex = trexes
            .iter()
            .find(|t| t.0 == id)
            .map(|t| t.1)
            .unwrap_or_default();
        let mut track = Track::new(id, entry.codec);
        track.init = entry.init.clone();
        track.timescale = media_ts;
        track.width = entry.width;
        track.height = entry.height;
        track.rate = entry.rate;
        track.channels = entry.channels;
        track.sample_size = if entry.codec.kind() == TrackKind::Audio {
            16
        } else {
            0
        };
        track.lang = language;
        let dur_ms = ticks_to_ms(media_dur.min(i64::MAX as u64) as i64, media_ts);
        if dur_ms > 0 {
            if track.kind() == TrackKind::Video {
                track.fpks =
                    (table.count as u64 * 1_000_000 / dur_ms as u64).min(u32::MAX as u64) as u32;
            }
            let total: u64 = match &table.sizes {
                Sizes::Const(s) => *s as u64 * table.count as u64,
                Sizes::Table(v) => v.iter().map(|&s| s as u64).sum(),
            };
            track.bps = (total as u128 * 1000 / dur_ms as u128).min(u32::MAX as u128) as u32;
        }
        let dts_shift = table
            .ctts
            .iter()
            .map(|e| -(e.1 as i64))
            .max()
            .unwrap_or(0)
            .max(0);
        movie.tracks.push(MovieTrack {
            track,
            entry,
            table,
            shift,
            dts_shift,
            trex,
        });
    }
    Ok(movie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::boxes::BoxWriter;

    fn stbl(field: u8) -> Vec<u8> {
        let mut w = BoxWriter::new();
        w.start_full(b"stts", 0, 0);
        w.u32(2);
        w.u32(5);
        w.u32(100);
        w.u32(5);
        w.u32(50);
        w.end();
        w.start_full(b"ctts", 1, 0);
        w.u32(3);
        w.u32(1);
        w.i32(-10);
        w.u32(8);
        w.i32(20);
        w.u32(1);
        w.i32(0);
        w.end();
        w.start_full(b"stss", 0, 0);
        w.u32(2);
        w.u32(6);
        w.u32(1);
        w.end();
        // chunks 1-2: 2 samples, chunk 3: 0 samples, chunk 4: 1, chunks 5-6: 3 (capacity 12)
        w.start_full(b"stsc", 0, 0);
        w.u32(4);
        for (f, n) in [(1, 2), (3, 0), (4, 1), (5, 3)] {
            w.u32(f);
            w.u32(n);
            w.u32(1);
        }
        w.end();
        w.start_full(b"co64", 0, 0);
        w.u32(6);
        for o in [1000u64, 2000, 3000, 4000, 5000, 1 << 33] {
            w.u64(o);
        }
        w.end();
        w.start_full(b"stz2", 0, 0);
        w.u24(0);
        w.u8(field);
        w.u32(10);
        match field {
            4 => w.bytes(&[0x12, 0x34, 0x56, 0x78, 0x9a]),
            8 => w.bytes(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
            _ => (1..=10u16).for_each(|v| w.u16(v)),
        }
        w.end();
        w.into_inner()
    }

    #[test]
    fn cursor_walk_matches_random_access() {
        for field in [4, 8, 16] {
            let t = parse_table(&stbl(field), 1000).unwrap();
            assert_eq!(t.len(), 10);
            let mut c = t.cursor_at(0).unwrap();
            let mut seen = Vec::new();
            loop {
                assert_eq!(Some(c), t.cursor_at(c.sample), "sample {}", c.sample);
                seen.push(t.sample(&c));
                if !t.advance(&mut c) {
                    break;
                }
            }
            let offs: Vec<u64> = seen.iter().map(|s| s.offset).collect();
            assert_eq!(
                offs,
                vec![
                    1000,
                    1001,
                    2000,
                    2003,
                    4000,
                    5000,
                    5006,
                    5013,
                    1 << 33,
                    (1 << 33) + 9
                ]
            );
            let dts: Vec<i64> = seen.iter().map(|s| s.dts).collect();
            assert_eq!(dts, vec![0, 100, 200, 300, 400, 500, 550, 600, 650, 700]);
            let cts: Vec<i32> = seen.iter().map(|s| s.cts).collect();
            assert_eq!(cts, vec![-10, 20, 20, 20, 20, 20, 20, 20, 20, 0]);
            let keys: Vec<bool> = seen.iter().map(|s| s.keyframe).collect();
            assert_eq!(keys.iter().filter(|&&k| k).count(), 2);
            assert!(keys[0] && keys[5]);
            assert_eq!(t.dts_of(7), 600);
        }
    }

    #[test]
    fn counts_are_capped_by_the_smallest_table() {
        let mut b = stbl(8);
        // stts claims 2^32-1 samples in its first run: still 10
        let i = b.windows(4).position(|w| w == b"stts").unwrap();
        b[i + 12..i + 16].copy_from_slice(&[0xff; 4]);
        assert_eq!(parse_table(&b, 1000).unwrap().len(), 10);
    }
}
