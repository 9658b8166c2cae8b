//! The metadata segment: stream state, track table (seqlock) and per-track key index rings.

use crate::layout::*;
use crate::seg::{now_ms, pid_alive, Seg};
use crate::ShmError;
use bytes::Bytes;
use mist_media::{Codec, Track};
use std::path::Path;
use std::sync::atomic::{fence, AtomicU32, Ordering::*};

pub(crate) struct Meta {
    pub seg: Seg,
}

/// A decoded track table: tracks in slot order.
#[derive(Clone, Default)]
pub(crate) struct TrackTable {
    pub tracks: Vec<Track>,
}

impl TrackTable {
    pub fn slot_of(&self, id: u32) -> Option<usize> {
        self.tracks.iter().position(|t| t.id == id)
    }
    /// The track a reader starts from: the first video track, else the first track.
    pub fn main_slot(&self) -> Option<usize> {
        self.tracks
            .iter()
            .position(|t| t.kind() == mist_media::TrackKind::Video)
            .or(if self.tracks.is_empty() {
                None
            } else {
                Some(0)
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyEntry {
    pub num: u64,
    pub dts: i64,
    pub page: u64,
    pub offset: u32,
    pub frames: u32,
}

/// Writer writes to the page ring.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageEntry {
    pub id: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub bytes: u64,
}

fn corrupt(path: &Path, why: impl Into<String>) -> ShmError {
    ShmError::Corrupt(path.display().to_string(), why.into())
}

impl Meta {
    pub fn open(path: &Path) -> Result<Meta, ShmError> {
        let seg = Seg::open(path, META_SIZE, true)?;
        let m = Meta { seg };
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> Result<(), ShmError> {
        let p = &self.seg.path;
        if self.seg.u64(M_MAGIC).load(Acquire) != MAGIC_META {
            return Err(corrupt(p, "bad magic"));
        }
        if self.seg.u32(M_VERSION).load(Relaxed) != VERSION {
            return Err(corrupt(p, "unsupported version"));
        }
        if self.seg.u32(M_HDRSIZE).load(Relaxed) as usize != META_HEADER {
            return Err(corrupt(p, "bad header size"));
        }
        Ok(())
    }

    /// Initialises a freshly created (zeroed) segment; magic is stored last.
    pub fn init(&self, stream: &str, live: bool, dvr_ms: u64) {
        let s = &self.seg;
        s.u32(M_VERSION).store(VERSION, Relaxed);
        s.u32(M_HDRSIZE).store(META_HEADER as u32, Relaxed);
        s.u32(M_LIVE).store(live as u32, Relaxed);
        s.u64(M_DVR).store(dvr_ms, Relaxed);
        s.u32(M_IDLE_MS).store(10_000, Relaxed);
        s.u64(M_NONCE).store(nonce(), Relaxed);
        s.u64(M_CREATED).store(now_ms(), Relaxed);
        s.u64(M_HEARTBEAT).store(now_ms(), Relaxed);
        let name = &stream.as_bytes()[..stream.len().min(MAX_NAME)];
        s.write_words(M_NAME, name);
        s.u32(M_NAME_LEN).store(name.len() as u32, Relaxed);
        s.u64(M_MAGIC).store(MAGIC_META, Release);
    }

    pub fn name(&self) -> String {
        let len = (self.seg.u32(M_NAME_LEN).load(Relaxed) as usize).min(MAX_NAME);
        String::from_utf8_lossy(&self.seg.read_words(M_NAME, len)).into_owned()
    }

    pub fn futex(&self) -> &AtomicU32 {
        self.seg.u32(M_FUTEX)
    }

    /// Bumps the futex word and wakes waiters (only issues the syscall if someone waits).
    pub fn notify(&self) {
        self.futex().fetch_add(1, SeqCst);
        if self.seg.u32(M_WAITERS).load(SeqCst) > 0 {
            crate::futex::wake(self.futex());
        }
    }

    /// Waits for a change of the futex word from `seen`, at most `timeout`.
    pub fn wait(&self, seen: u32, timeout: std::time::Duration) {
        let w = self.seg.u32(M_WAITERS);
        w.fetch_add(1, SeqCst);
        if self.futex().load(SeqCst) == seen {
            crate::futex::wait(self.futex(), seen, Some(timeout));
        }
        w.fetch_sub(1, SeqCst);
    }

    pub fn epoch(&self) -> u32 {
        self.seg.u32(M_EPOCH).load(Acquire)
    }
    pub fn ended(&self) -> bool {
        self.seg.u32(M_ENDED).load(Acquire) != 0
    }
    /// A VoD stream whose input has written every frame.
    pub fn complete(&self) -> bool {
        self.seg.u32(M_COMPLETE).load(Acquire) != 0
    }
    pub fn live(&self) -> bool {
        self.seg.u32(M_LIVE).load(Relaxed) != 0
    }
    pub fn writer_pid(&self) -> u32 {
        self.seg.u32(M_WRITER_PID).load(Acquire)
    }
    pub fn heartbeat(&self) -> u64 {
        self.seg.u64(M_HEARTBEAT).load(Relaxed)
    }
    /// The writer is present: pid set, process exists and heartbeat recent.
    pub fn writer_alive(&self) -> bool {
        let pid = self.writer_pid();
        pid != 0
            && pid_alive(pid)
            && now_ms().saturating_sub(self.heartbeat()) < crate::WRITER_TIMEOUT_MS
    }
    pub fn buffer_pid(&self) -> u32 {
        self.seg.u32(M_BUFFER_PID).load(Acquire)
    }
    /// Nobody keeps the stream any more: no living buffer process, and the writer gone for
    /// longer than the idle timeout (a buffer or input killed before it could end the stream).
    /// Readers treat it as ended, and so does [`crate::stream_status`]. Costs kill(2) calls.
    pub fn abandoned(&self) -> bool {
        let buffer = self.buffer_pid();
        if buffer != 0 && pid_alive(buffer) {
            return false;
        }
        let idle = self.seg.u32(M_IDLE_MS).load(Relaxed) as u64;
        !self.writer_alive() && now_ms().saturating_sub(self.heartbeat()) > idle
    }
    pub fn first_page(&self) -> u64 {
        self.seg.u64(M_FIRST_PAGE).load(Acquire)
    }
    pub fn cur_page(&self) -> Option<u64> {
        if self.seg.u32(M_HAS_PAGE).load(Acquire) == 0 {
            None
        } else {
            Some(self.seg.u64(M_CUR_PAGE).load(Acquire))
        }
    }
    pub fn epoch_first_page(&self) -> u64 {
        self.seg.u64(M_EPOCH_FIRST_PAGE).load(Acquire)
    }
    pub fn nonce(&self) -> u64 {
        self.seg.u64(M_NONCE).load(Relaxed)
    }
    pub fn tracks_gen(&self) -> u64 {
        self.seg.u64(M_TRACKS_GEN).load(Acquire)
    }

    // ---- track table (seqlock) ----

    /// Writer only: stores the whole table.
    pub fn write_tracks(&self, t: &TrackTable) {
        let blob = encode_tracks(&t.tracks);
        debug_assert!(blob.len() <= TRACK_BLOB_SIZE);
        let gen = self.seg.u64(M_TRACKS_GEN);
        let g = gen.load(Relaxed);
        let g = if g % 2 == 1 { g + 1 } else { g }; // a writer died mid-update: restart from even
        gen.store(g + 1, Relaxed);
        fence(Release);
        self.seg.u64(M_BLOB_LEN).store(blob.len() as u64, Relaxed);
        self.seg.write_words(TRACK_BLOB, &blob);
        gen.store(g + 2, Release);
    }

    /// Reads a consistent copy of the table and its generation.
    pub fn read_tracks(&self) -> Result<(TrackTable, u64), ShmError> {
        let gen = self.seg.u64(M_TRACKS_GEN);
        // Bounded: a writer that died in the middle of an update leaves the generation odd until
        // the next writer repairs it; callers must not block on that.
        // A live writer (possibly preempted mid-update) finishes soon: keep trying for up to
        // 500 ms. A generation stuck while the writer is gone means it died mid-update: give up.
        let start = std::time::Instant::now();
        for attempt in 0u32.. {
            if attempt % 64 == 63 {
                let ms = std::time::Duration::from_millis;
                let el = start.elapsed();
                if el > ms(500) || (el > ms(2) && !self.writer_alive()) {
                    break;
                }
                std::thread::yield_now();
            }
            let g1 = gen.load(Acquire);
            if g1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let len = self.seg.u64(M_BLOB_LEN).load(Relaxed) as usize;
            if len > TRACK_BLOB_SIZE {
                fence(Acquire);
                if gen.load(Relaxed) == g1 {
                    return Err(corrupt(&self.seg.path, "track table length"));
                }
                continue;
            }
            let blob = self.seg.read_words(TRACK_BLOB, len);
            fence(Acquire);
            if gen.load(Relaxed) != g1 {
                continue;
            }
            return decode_tracks(&blob)
                .map(|tracks| (TrackTable { tracks }, g1))
                .map_err(|e| corrupt(&self.seg.path, e.to_string()));
        }
        Err(corrupt(&self.seg.path, "track table never stable"))
    }

    // ---- key index ----

    fn key_base(slot: usize) -> usize {
        KEYS_OFF + slot * KEY_TRACK_SIZE
    }
    pub fn key_count(&self, slot: usize) -> u64 {
        self.seg.u64(Self::key_base(slot)).load(Acquire)
    }
    fn key_off(slot: usize, num: u64) -> usize {
        Self::key_base(slot) + 64 + (num as usize % KEY_RING) * KEY_ENTRY
    }

    /// Measured bit rate of a track slot in bytes per second (0: not measured yet). Stored in the
    /// slot's key-ring header, outside the track table, so updating it does not make readers
    /// see a track change.
    pub fn track_rate(&self, slot: usize) -> u64 {
        self.seg.u64(Self::key_base(slot) + 8).load(Relaxed)
    }
    pub fn set_track_rate(&self, slot: usize, bytes_per_s: u64) {
        self.seg
            .u64(Self::key_base(slot) + 8)
            .store(bytes_per_s, Relaxed);
    }
    /// Tracks with `bps` filled in from the measured rate where the writer gave none.
    pub fn with_rates(&self, mut t: Vec<mist_media::Track>) -> Vec<mist_media::Track> {
        for (slot, t) in t.iter_mut().enumerate() {
            if t.bps == 0 {
                t.bps = self.track_rate(slot).min(u32::MAX as u64) as u32;
            }
        }
        t
    }

    /// Writer only: appends key number `key_count`.
    pub fn push_key(&self, slot: usize, dts: i64, page: u64, offset: u32) -> u64 {
        let num = self.key_count(slot);
        let o = Self::key_off(slot, num);
        let s = &self.seg;
        s.u64(o).store(0, Relaxed);
        fence(Release);
        s.i64(o + 8).store(dts, Relaxed);
        s.u64(o + 16).store(page, Relaxed);
        s.u32(o + 24).store(offset, Relaxed);
        s.u32(o + 28).store(1, Relaxed);
        s.u64(o).store(num + 1, Release);
        s.u64(Self::key_base(slot)).store(num + 1, Release);
        num
    }

    /// Writer only: counts one more frame in key `num`.
    pub fn key_add_frame(&self, slot: usize, num: u64) {
        let o = Self::key_off(slot, num);
        let f = self.seg.u32(o + 28);
        f.store(f.load(Relaxed).saturating_add(1), Relaxed);
    }

    /// Reads key `num` of a track slot if it is still in the ring.
    pub fn key(&self, slot: usize, num: u64) -> Option<KeyEntry> {
        let o = Self::key_off(slot, num);
        let s = &self.seg;
        let q1 = s.u64(o).load(Acquire);
        if q1 != num + 1 {
            return None;
        }
        let e = KeyEntry {
            num,
            dts: s.i64(o + 8).load(Relaxed),
            page: s.u64(o + 16).load(Relaxed),
            offset: s.u32(o + 24).load(Relaxed),
            frames: s.u32(o + 28).load(Relaxed),
        };
        fence(Acquire);
        if s.u64(o).load(Relaxed) != q1 {
            return None;
        }
        Some(e)
    }

    /// Valid keys of a slot, oldest first, limited to pages from `min_page` to the current one.
    pub fn keys(&self, slot: usize, min_page: u64) -> Vec<KeyEntry> {
        let count = self.key_count(slot);
        let start = count.saturating_sub(KEY_RING as u64 - 1);
        let max_page = self.cur_page().unwrap_or(0);
        (start..count)
            .filter_map(|n| self.key(slot, n))
            .filter(|k| k.page >= min_page && k.page <= max_page)
            .collect()
    }

    /// The newest key of a slot at or after `min_page`.
    pub fn newest_key(&self, slot: usize, min_page: u64) -> Option<KeyEntry> {
        let count = self.key_count(slot);
        let start = count.saturating_sub(KEY_RING as u64 - 1);
        let max_page = self.cur_page().unwrap_or(0);
        (start..count)
            .rev()
            .filter_map(|n| self.key(slot, n))
            .filter(|k| k.page <= max_page)
            .take_while(|k| k.page >= min_page)
            .next()
    }

    // ---- page ring ----

    fn page_off(id: u64) -> usize {
        PAGE_RING_OFF + (id as usize % PAGE_RING) * PAGE_ENTRY
    }
    pub fn set_page(&self, e: PageEntry) {
        let o = Self::page_off(e.id);
        let s = &self.seg;
        s.u64(o).store(u64::MAX, Relaxed);
        fence(Release);
        s.i64(o + 8).store(e.first_ms, Relaxed);
        s.i64(o + 16).store(e.last_ms, Relaxed);
        s.u64(o + 24).store(e.bytes, Relaxed);
        s.u64(o).store(e.id, Release);
    }
    pub fn page(&self, id: u64) -> Option<PageEntry> {
        let o = Self::page_off(id);
        let s = &self.seg;
        if s.u64(o).load(Acquire) != id {
            return None;
        }
        let e = PageEntry {
            id,
            first_ms: s.i64(o + 8).load(Relaxed),
            last_ms: s.i64(o + 16).load(Relaxed),
            bytes: s.u64(o + 24).load(Relaxed),
        };
        fence(Acquire);
        if s.u64(o).load(Relaxed) != id {
            return None;
        }
        Some(e)
    }
}

fn nonce() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut h = t ^ ((std::process::id() as u64) << 32);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h | 1
}

// ---- track table blob ----
// count u32, then per track: id u32, codec name (u8 len + bytes), timescale, width, height, fpks,
// rate, channels, sample_size, bps (u32 each), lang (u8 len + bytes), init (u32 len + bytes).

pub(crate) fn encode_tracks(tracks: &[Track]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(tracks.len() as u32).to_le_bytes());
    for t in tracks {
        b.extend_from_slice(&t.id.to_le_bytes());
        let name = t.codec.mist_name().as_bytes();
        b.push(name.len() as u8);
        b.extend_from_slice(name);
        for v in [
            t.timescale,
            t.width,
            t.height,
            t.fpks,
            t.rate,
            t.channels,
            t.sample_size,
            t.bps,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let lang = &t.lang.as_bytes()[..t.lang.len().min(255)];
        b.push(lang.len() as u8);
        b.extend_from_slice(lang);
        b.extend_from_slice(&(t.init.len() as u32).to_le_bytes());
        b.extend_from_slice(&t.init);
    }
    b
}

/// Why a track table blob cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TrackTableError {
    #[error("track table truncated")]
    Truncated,
    #[error("{0} tracks")]
    TooManyTracks(usize),
    #[error("codec name")]
    CodecName,
    #[error("unknown codec {0:?}")]
    UnknownCodec(String),
    #[error("init data too large")]
    InitTooLarge,
}

pub(crate) fn decode_tracks(b: &[u8]) -> Result<Vec<Track>, TrackTableError> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], TrackTableError> {
            if self.0.len() < n {
                return Err(TrackTableError::Truncated);
            }
            let (a, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(a)
        }
        fn u32(&mut self) -> Result<u32, TrackTableError> {
            Ok(u32::from_le_bytes(
                self.take(4)?.try_into().unwrap_or([0; 4]),
            ))
        }
        fn u8(&mut self) -> Result<u8, TrackTableError> {
            Ok(self.take(1)?[0])
        }
    }
    if b.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = R(b);
    let n = r.u32()? as usize;
    if n > MAX_TRACKS {
        return Err(TrackTableError::TooManyTracks(n));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u32()?;
        let nl = r.u8()? as usize;
        let name = std::str::from_utf8(r.take(nl)?).map_err(|_| TrackTableError::CodecName)?;
        let codec = Codec::from_mist_name(name)
            .ok_or_else(|| TrackTableError::UnknownCodec(name.to_owned()))?;
        let mut t = Track::new(id, codec);
        t.timescale = r.u32()?;
        t.width = r.u32()?;
        t.height = r.u32()?;
        t.fpks = r.u32()?;
        t.rate = r.u32()?;
        t.channels = r.u32()?;
        t.sample_size = r.u32()?;
        t.bps = r.u32()?;
        let ll = r.u8()? as usize;
        t.lang = String::from_utf8_lossy(r.take(ll)?).into_owned();
        let il = r.u32()? as usize;
        if il > MAX_INIT {
            return Err(TrackTableError::InitTooLarge);
        }
        t.init = Bytes::copy_from_slice(r.take(il)?);
        out.push(t);
    }
    Ok(out)
}
