//! The writer side.

use crate::layout::*;
use crate::meta::{Meta, PageEntry, TrackTable};
use crate::page::Page;
use crate::seg::{my_pid, now_ms, page_name};
use crate::{ShmError, StreamWriter, WriterOptions};
use mist_media::{Track, TrackKind};
use std::path::PathBuf;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

/// Writer-private state of the page being filled.
pub(crate) struct OpenPage {
    page: Page,
    /// Our own copy of the committed offset (the shared one is only ever written by us).
    committed: usize,
    /// Bytes of the file reserved with fallocate so far.
    reserved: usize,
    first_ms: i64,
    last_ms: i64,
    bytes: u64,
}

/// Page memory is reserved (fallocate) in steps of this size.
const RESERVE_STEP: usize = 1 << 20;
/// …or of this size for external records (40 bytes each: a page of them stays small).
const RESERVE_STEP_EXT: usize = 16 << 10;

/// What a record carries.
enum Body<'a> {
    Inline(&'a [u8]),
    External { offset: u64, len: u32 },
}

impl Body<'_> {
    /// Payload length.
    fn len(&self) -> usize {
        match self {
            Body::Inline(d) => d.len(),
            Body::External { len, .. } => *len as usize,
        }
    }
    /// Bytes of the record in the page.
    fn rec_size(&self) -> usize {
        match self {
            Body::Inline(d) => rec_size(d.len()),
            Body::External { .. } => rec_size(REC_EXT_BODY),
        }
    }
    fn reserve_step(&self) -> usize {
        match self {
            Body::Inline(_) => RESERVE_STEP,
            Body::External { .. } => RESERVE_STEP_EXT,
        }
    }
}

pub(crate) struct WriterState {
    pub name: String,
    pub dir: PathBuf,
    pub meta: Arc<Meta>,
    pub epoch: u32,
    pid: u32,
    pub table: TrackTable,
    page: Option<OpenPage>,
    next_page: u64,
    /// Per slot: number of the current key entry, its dts and the page it is in.
    cur_key: [Option<(u64, i64, u64)>; MAX_TRACKS],
    seen_key: [bool; MAX_TRACKS],
    /// Per track slot: the rate window (start dts, bytes since) and totals (first dts, last
    /// dts, bytes) for the whole-stream average a complete VoD publishes.
    rate: [RateWindow; MAX_TRACKS],
    resume_ms: Option<i64>,
    time_offset: Option<i64>,
    live: bool,
    done: bool,
    /// `set_source_file` was called in this epoch.
    has_source: bool,
    /// Inode of our metadata file and when we last checked it is still linked under its name.
    meta_ino: u64,
    last_link_check: u64,
    /// Live: the pages kept behind the one being written hold at most this many frame bytes
    /// (see [`max_dvr_bytes`]), whatever the DVR window in time says.
    pub max_dvr_bytes: u64,
    /// The byte cap was hit (logged once per writer).
    dvr_capped: bool,
}

/// Default cap on the bytes a live stream keeps for DVR: 1 GiB. Frozen or bogus timestamps never
/// leave the DVR window in time; this keeps them from pinning the whole page ring (4096 pages of
/// up to 16 MiB) in shared memory.
pub const DEFAULT_MAX_DVR_BYTES: u64 = 1 << 30;

/// The DVR byte cap: `MIST_DVR_MAX_BYTES` (bytes, 0 = none) or [`DEFAULT_MAX_DVR_BYTES`].
/// (It was opt-in for a while: an http_e2e failure was blamed on it, but a stream of a few MiB
/// never reaches the cap's loop; see the `dvr_byte_cap_is_inert_…` unit test.)
pub fn max_dvr_bytes() -> u64 {
    match std::env::var("MIST_DVR_MAX_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(0) => u64::MAX,
        Some(n) => n,
        None => DEFAULT_MAX_DVR_BYTES,
    }
}

pub(crate) fn create(stream: &str, opts: WriterOptions) -> Result<StreamWriter, ShmError> {
    let dir = crate::shm_dir();
    let meta = crate::create_meta(&dir, stream, opts.live, opts.dvr_ms)?;
    crate::open_users(&dir, stream, true)?;
    let me = my_pid();
    let w = meta.seg.u32(M_WRITER_PID);
    loop {
        let pid = w.load(Acquire);
        if pid != 0 && meta.writer_alive() {
            return Err(ShmError::WriterAlive(stream.to_owned(), pid));
        }
        if w.compare_exchange(pid, me, AcqRel, Acquire).is_ok() {
            break;
        }
    }
    // We hold the writer role. Start a new epoch after whatever was there.
    let s = &meta.seg;
    s.u64(M_HEARTBEAT).store(now_ms(), Relaxed);
    s.u32(M_LIVE).store(opts.live as u32, Relaxed);
    // The buffer process's DVR setting (from the stream config) wins over the writer's.
    if !crate::seg::pid_alive(meta.buffer_pid()) {
        s.u64(M_DVR).store(opts.dvr_ms, Relaxed);
    }
    let cur = meta.cur_page();
    let next_page = cur.map_or(meta.first_page(), |c| c.saturating_add(1));
    let resume_ms = if s.u64(M_FRAMES).load(Relaxed) > 0 {
        Some(s.i64(M_LAST_MS).load(Relaxed))
    } else {
        None
    };
    // A page file the dead writer created but never published would be mistaken for ours.
    let _ = std::fs::remove_file(dir.join(page_name(stream, next_page)));
    s.u64(M_EPOCH_FIRST_PAGE).store(next_page, Release);
    let epoch = meta.epoch().wrapping_add(1);
    s.u32(M_EPOCH).store(epoch, Release);
    s.u32(M_ENDED).store(0, Release);
    if let Some(c) = cur {
        if let Ok(p) = Page::open_rw(&dir.join(page_name(stream, c))) {
            p.seg.u32(P_FLAGS).fetch_or(PAGE_SEALED, Release);
        }
    }
    let table = TrackTable::default();
    meta.write_tracks(&table);
    crate::source::clear_source(&meta);
    let meta_ino = meta.seg.ino;
    meta.notify();
    Ok(StreamWriter {
        st: WriterState {
            name: stream.to_owned(),
            dir,
            meta,
            epoch,
            pid: me,
            table,
            page: None,
            next_page,
            cur_key: [None; MAX_TRACKS],
            seen_key: [false; MAX_TRACKS],
            rate: [RateWindow::default(); MAX_TRACKS],
            resume_ms,
            time_offset: None,
            live: opts.live,
            done: false,
            has_source: false,
            meta_ino,
            last_link_check: 0,
            max_dvr_bytes: max_dvr_bytes(),
            dvr_capped: false,
        },
    })
}

/// A track's bit rate is published after its first second, then every 5 s of media.
const RATE_FIRST_MS: i64 = 1000;
const RATE_WINDOW_MS: i64 = 5000;

#[derive(Clone, Copy, Default)]
struct RateWindow {
    started: bool,
    start: i64,
    bytes: u64,
    published: bool,
    first: i64,
    last: i64,
    total: u64,
}

impl RateWindow {
    /// Counts a frame; returns a rate in bytes/s to publish, if due.
    fn add(&mut self, dts: i64, len: usize) -> Option<u64> {
        if !self.started {
            *self = RateWindow {
                started: true,
                start: dts,
                first: dts,
                last: dts,
                ..*self
            };
        }
        self.bytes += len as u64;
        self.total += len as u64;
        self.last = self.last.max(dts);
        let span = dts.saturating_sub(self.start);
        let due = if self.published {
            RATE_WINDOW_MS
        } else {
            RATE_FIRST_MS
        };
        if span < due {
            return None;
        }
        let rate = self.bytes.saturating_mul(1000) / span as u64;
        (self.start, self.bytes, self.published) = (dts, 0, true);
        Some(rate)
    }

    /// The average over everything counted (bytes/s), if it spans any time.
    fn average(&self) -> Option<u64> {
        let span = self.last.saturating_sub(self.first);
        (span > 0).then(|| self.total.saturating_mul(1000) / span as u64)
    }
}

impl WriterState {
    fn check_owner(&self) -> Result<(), ShmError> {
        let pid = self.meta.writer_pid();
        if pid != self.pid || self.meta.epoch() != self.epoch {
            return Err(ShmError::WriterAlive(self.name.clone(), pid));
        }
        if self.meta.ended() {
            // Ended by the buffer process or removed: the publisher must stop.
            return Err(ShmError::NoStream(self.name.clone()));
        }
        Ok(())
    }

    /// Once a second: is our metadata file still the stream's (not removed, not replaced)?
    fn check_linked(&mut self) -> Result<(), ShmError> {
        let now = now_ms();
        if now.saturating_sub(self.last_link_check) < 1000 {
            return Ok(());
        }
        self.last_link_check = now;
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.meta.seg.path) {
            Ok(m) if m.ino() == self.meta_ino => Ok(()),
            _ => Err(ShmError::NoStream(self.name.clone())),
        }
    }

    pub fn set_track(&mut self, track: &Track) -> Result<(), ShmError> {
        self.check_owner()?;
        if track.init.len() > MAX_INIT {
            return Err(ShmError::InitTooLarge(track.init.len()));
        }
        match self.table.slot_of(track.id) {
            Some(i) => self.table.tracks[i] = track.clone(),
            None if self.table.tracks.len() >= MAX_TRACKS => return Err(ShmError::TooManyTracks),
            None => {
                self.table.tracks.push(track.clone());
                let slot = self.table.tracks.len() - 1;
                self.rate[slot] = RateWindow::default();
                self.meta.set_track_rate(slot, 0);
            }
        }
        self.meta.write_tracks(&self.table);
        self.meta.notify();
        Ok(())
    }

    pub fn heartbeat(&self) {
        if self.meta.writer_pid() == self.pid && self.meta.epoch() == self.epoch {
            self.meta.seg.u64(M_HEARTBEAT).store(now_ms(), Relaxed);
        }
    }

    pub fn set_source_file(&mut self, path: &std::path::Path) -> Result<(), ShmError> {
        self.check_owner()?;
        crate::source::set_source(&self.meta, path)?;
        self.has_source = true;
        Ok(())
    }

    pub fn push(
        &mut self,
        track: u32,
        dts: i64,
        pts_offset: i32,
        keyframe: bool,
        data: &[u8],
    ) -> Result<(), ShmError> {
        self.append(track, dts, pts_offset, keyframe, Body::Inline(data))
    }

    pub fn push_external(
        &mut self,
        track: u32,
        dts: i64,
        pts_offset: i32,
        keyframe: bool,
        offset: u64,
        len: u32,
    ) -> Result<(), ShmError> {
        if !self.has_source {
            return Err(ShmError::SourcePath("no source file set".into()));
        }
        self.append(
            track,
            dts,
            pts_offset,
            keyframe,
            Body::External { offset, len },
        )
    }

    fn append(
        &mut self,
        track: u32,
        dts: i64,
        pts_offset: i32,
        keyframe: bool,
        body: Body,
    ) -> Result<(), ShmError> {
        let len = body.len();
        if len > MAX_FRAME {
            return Err(ShmError::FrameTooLarge(len));
        }
        self.check_owner()?;
        self.check_linked()?;
        let slot = self
            .table
            .slot_of(track)
            .ok_or(ShmError::UnknownTrack(track))?;
        let kind = self.table.tracks[slot].kind();
        if kind == TrackKind::Video && !keyframe && !self.seen_key[slot] {
            return Ok(()); // nothing can decode video before its first keyframe
        }
        if keyframe {
            self.seen_key[slot] = true;
        }
        let offset = *self
            .time_offset
            .get_or_insert_with(|| match self.resume_ms {
                Some(r) if dts <= r => r.saturating_add(40).saturating_sub(dts),
                _ => 0,
            });
        let dts = dts.saturating_add(offset);
        let main = self.table.main_slot() == Some(slot);
        let rec = body.rec_size();
        let step = body.reserve_step();
        let need_new = match &self.page {
            None => true,
            Some(p) => {
                p.committed + rec > p.page.seg.len()
                    || (main
                        && keyframe
                        && p.bytes > 0
                        && (dts.saturating_sub(p.first_ms) >= PAGE_TARGET_MS
                            || p.bytes as usize >= PAGE_SOFT_BYTES))
            }
        };
        if need_new {
            self.new_page(dts, PAGE_HDR + rec, step)?;
        }
        let Some(p) = self.page.as_mut() else {
            return Err(ShmError::Corrupt(self.name.clone(), "no page".into()));
        };
        let seg = &p.page.seg;
        let off = p.committed;
        if off + rec > p.reserved {
            // Reserve memory ahead in steps (ENOSPC here rather than SIGBUS on a full tmpfs).
            // Grow by the record kind's step, but at most double: a page of external records
            // that meets an inline one does not jump to the inline step at once.
            let grow = step.min(p.reserved.max(RESERVE_STEP_EXT));
            let upto = (off + rec).max(p.reserved + grow).min(seg.len());
            seg.reserve(p.reserved, upto - p.reserved)?;
            p.reserved = upto;
        }
        let seq = self.meta.seg.u64(M_FRAMES).load(Relaxed);
        let mut h = [0u8; REC_HDR];
        h[R_DTS..R_DTS + 8].copy_from_slice(&dts.to_ne_bytes());
        h[R_PTS_OFF..R_PTS_OFF + 4].copy_from_slice(&pts_offset.to_ne_bytes());
        h[R_TRACK..R_TRACK + 4].copy_from_slice(&track.to_ne_bytes());
        let mut flags = if keyframe { REC_KEY } else { 0 };
        if matches!(body, Body::External { .. }) {
            flags |= REC_EXT;
        }
        h[R_FLAGS..R_FLAGS + 4].copy_from_slice(&flags.to_ne_bytes());
        h[R_LEN..R_LEN + 4].copy_from_slice(&(len as u32).to_ne_bytes());
        h[R_SEQ..R_SEQ + 8].copy_from_slice(&seq.to_ne_bytes());
        seg.write_bytes(off, &h);
        match body {
            Body::Inline(data) => seg.write_bytes(off + REC_HDR, data),
            Body::External { offset, .. } => seg.write_bytes(off + REC_HDR, &offset.to_ne_bytes()),
        }
        p.committed = off + rec;
        seg.u64(P_COMMITTED).store(p.committed as u64, Release);
        p.last_ms = p.last_ms.max(dts);
        if p.bytes == 0 {
            p.first_ms = dts;
        }
        p.bytes += len as u64;
        let page_id = p.page.id;
        if let Some(rate) = self.rate[slot].add(dts, len) {
            self.meta.set_track_rate(slot, rate);
        }
        self.meta.set_page(PageEntry {
            id: page_id,
            first_ms: p.first_ms,
            last_ms: p.last_ms,
            bytes: p.bytes,
        });

        // Key index. Video: every keyframe. Other tracks: a "key" at least once per second and at
        // the first frame of each page, so seeking and DVR jumps work for audio-only streams.
        let new_key = match self.cur_key[slot] {
            _ if !keyframe => false,
            None => true,
            Some(_) if kind == TrackKind::Video => true,
            Some((_, kdts, kpage)) => kpage != page_id || dts.saturating_sub(kdts) >= 1000,
        };
        if new_key {
            let num = self.meta.push_key(slot, dts, page_id, off as u32);
            self.cur_key[slot] = Some((num, dts, page_id));
        } else if let Some((num, _, _)) = self.cur_key[slot] {
            self.meta.key_add_frame(slot, num);
        }

        let s = &self.meta.seg;
        if seq == 0 {
            s.i64(M_FIRST_MS).store(dts, Relaxed);
        }
        if dts > s.i64(M_LAST_MS).load(Relaxed) || seq == 0 {
            s.i64(M_LAST_MS).store(dts, Relaxed);
        }
        s.u64(M_FRAMES).store(seq.wrapping_add(1), Relaxed);
        s.u64(M_BYTES).fetch_add(len as u64, Relaxed);
        s.u64(M_HEARTBEAT).store(now_ms(), Relaxed);
        if self.live && self.evict_due() {
            self.evict();
        }
        self.meta.notify();
        Ok(())
    }

    fn new_page(&mut self, first_ms: i64, need: usize, step: usize) -> Result<(), ShmError> {
        let id = self.next_page;
        let path = self.dir.join(page_name(&self.name, id));
        let page = Page::create(
            &path,
            id,
            self.meta.nonce(),
            self.epoch,
            PAGE_CAP.max(need),
            first_ms,
        )?;
        let reserved = need.max(step).min(page.seg.len());
        if let Err(e) = page.seg.reserve(0, reserved) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        self.meta.set_page(PageEntry {
            id,
            first_ms,
            last_ms: first_ms,
            bytes: 0,
        });
        let s = &self.meta.seg;
        s.u64(M_CUR_PAGE).store(id, Release);
        s.u32(M_HAS_PAGE).store(1, Release);
        // Seal the previous page only now that its successor exists.
        if let Some(old) = self.page.replace(OpenPage {
            page,
            committed: PAGE_HDR,
            reserved,
            first_ms,
            last_ms: first_ms,
            bytes: 0,
        }) {
            old.page.seg.u32(P_FLAGS).fetch_or(PAGE_SEALED, Release);
        }
        self.next_page = id.saturating_add(1);
        if self.live {
            self.evict();
        }
        Ok(())
    }

    /// The DVR byte cap in force: the stream's own (`dvr_bytes`, stored in the metadata by its
    /// buffer process) when set, else this writer's.
    pub(crate) fn dvr_bytes_cap(&self) -> u64 {
        match self.meta.seg.u64(M_DVR_BYTES).load(Relaxed) {
            0 => self.max_dvr_bytes,
            n => n,
        }
    }

    fn dvr_ms(&self) -> i64 {
        self.meta.seg.u64(M_DVR).load(Relaxed).min(i64::MAX as u64) as i64
    }

    /// Cheap check whether the oldest page has left the DVR window.
    fn evict_due(&self) -> bool {
        let first = self.meta.first_page();
        match self.meta.cur_page() {
            Some(c) if first < c => {}
            _ => return false,
        }
        let newest = self.meta.seg.i64(M_LAST_MS).load(Relaxed);
        match self.meta.page(first) {
            Some(e) => e.last_ms < newest.saturating_sub(self.dvr_ms()),
            None => true, // entry overwritten: long gone
        }
    }

    /// Unlinks pages whose newest frame is older than the DVR window behind the newest frame.
    /// Never the page being written. Readers that have a page mapped keep it (mmap survives
    /// unlink); readers reaching a missing page jump to the oldest kept keyframe.
    pub fn evict(&mut self) {
        let Some(cur) = self.meta.cur_page() else {
            return;
        };
        let s = &self.meta.seg;
        let newest = s.i64(M_LAST_MS).load(Relaxed);
        let mut first = self.meta.first_page();
        // Bounded, so that a corrupt page counter cannot make us loop for ever.
        let mut budget = 2 * PAGE_RING;
        while first < cur && budget > 0 {
            budget -= 1;
            match self.meta.page(first) {
                Some(e) if e.last_ms >= newest.saturating_sub(self.dvr_ms()) => break,
                _ => {}
            }
            let _ = std::fs::remove_file(self.dir.join(page_name(&self.name, first)));
            first += 1;
            s.u64(M_FIRST_PAGE).store(first, Release);
        }
        // The byte cap: oldest pages go while the kept ones hold more than `max_dvr_bytes`.
        let mut kept: u64 = (first..=cur)
            .take(PAGE_RING)
            .filter_map(|id| self.meta.page(id))
            .map(|e| e.bytes)
            .sum();
        let cap = self.dvr_bytes_cap();
        while first < cur && kept > cap {
            kept = kept.saturating_sub(self.meta.page(first).map_or(0, |e| e.bytes));
            let _ = std::fs::remove_file(self.dir.join(page_name(&self.name, first)));
            first += 1;
            s.u64(M_FIRST_PAGE).store(first, Release);
            if !self.dvr_capped {
                self.dvr_capped = true;
                eprintln!(
                    "WARN mist-shm: stream {}: DVR holds more than {cap} bytes; dropping its oldest pages (stream option dvr_bytes, env MIST_DVR_MAX_BYTES)",
                    self.name
                );
            }
        }
        if let Some(e) = self.meta.page(first) {
            s.i64(M_FIRST_MS).store(e.first_ms, Relaxed);
        }
    }

    /// VoD: every frame is written. Seals the last page and marks the stream complete, so a
    /// reader that reaches the end gets `Ended` instead of waiting.
    pub fn complete(&mut self) {
        if let Some(p) = &self.page {
            p.page.seg.u32(P_FLAGS).fetch_or(PAGE_SEALED, Release);
        }
        // The whole file's average describes a VoD track better than its last window.
        for slot in 0..self.table.tracks.len() {
            if let Some(avg) = self.rate[slot].average() {
                self.meta.set_track_rate(slot, avg);
            }
        }
        self.meta.seg.u32(M_COMPLETE).store(1, Release);
        self.meta.notify();
    }

    /// Gives up the writer role; with `end` the stream is marked ended.
    pub fn finish(&mut self, end: bool) {
        if self.done {
            return;
        }
        self.done = true;
        if self.meta.writer_pid() != self.pid || self.meta.epoch() != self.epoch {
            return;
        }
        if let Some(p) = &self.page {
            p.page.seg.u32(P_FLAGS).fetch_or(PAGE_SEALED, Release);
        }
        if end {
            self.meta.seg.u32(M_ENDED).store(1, Release);
        }
        let _ = self
            .meta
            .seg
            .u32(M_WRITER_PID)
            .compare_exchange(self.pid, 0, AcqRel, Relaxed);
        self.meta.notify();
    }
}
