//! The reader side.

use crate::layout::*;
use crate::meta::{Meta, TrackTable};
use crate::page::{open_cached, Page, Rec};
use crate::seg::page_name;
use crate::source::{SourceError, SourceFile};
use crate::users::StreamUser;
use crate::{FrameRecord, Payload, ReadEvent, ReaderInfo, RecordEvent, ShmError};
use bytes::Bytes;
use mist_media::Frame;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct ReaderState {
    pub name: String,
    pub dir: PathBuf,
    pub meta: Arc<Meta>,
    user: StreamUser,
    pub table: TrackTable,
    gen: u64,
    pub epoch: u32,
    page: Option<Arc<Page>>,
    page_id: u64,
    off: usize,
    pub cur: Bytes,
    futex_seen: u32,
    pub position_ms: i64,
    last_check: Option<Instant>,
    pub error: Option<ShmError>,
    /// The source file of external records, opened in this epoch.
    src: Option<(u32, Arc<SourceFile>)>,
}

/// One step of reading: a record (its page kept for the inline payload) or an event.
enum Step {
    Rec(Arc<Page>, Rec),
    Event(ReadEvent),
}

impl ReaderState {
    pub fn open(stream: &str, info: ReaderInfo) -> Result<ReaderState, ShmError> {
        let dir = crate::shm_dir();
        let meta = crate::open_meta(&dir, stream)?;
        let user = StreamUser::open(stream, &info)?;
        let mut r = ReaderState {
            name: stream.to_owned(),
            dir,
            meta,
            user,
            table: TrackTable::default(),
            gen: 0,
            epoch: 0,
            page: None,
            page_id: 0,
            off: PAGE_HDR,
            cur: Bytes::new(),
            futex_seen: 0,
            position_ms: 0,
            last_check: None,
            error: None,
            src: None,
        };
        if let Err(e) = r.refresh_tracks() {
            // Unreadable track table (a writer died mid-update): start without tracks; the
            // next writer's table arrives as TracksChanged.
            r.error = Some(e);
        }
        if r.meta.live() {
            r.seek_live();
        } else {
            r.seek_start();
        }
        Ok(r)
    }

    fn refresh_tracks(&mut self) -> Result<(), ShmError> {
        let (t, g) = self.meta.read_tracks()?;
        self.table = t;
        self.gen = g;
        Ok(())
    }

    fn set_pos(&mut self, page: u64, off: usize) {
        self.page = None;
        self.page_id = page;
        self.off = off;
    }

    fn min_page(&self) -> u64 {
        self.meta.first_page().max(self.meta.epoch_first_page())
    }

    /// Start of the current epoch's data still on disk.
    fn epoch_start(&mut self) {
        self.set_pos(self.min_page(), PAGE_HDR);
    }

    /// VoD: the first frame of the current epoch, whatever its track (an audio frame may come
    /// before the first video keyframe; seeking to a key would skip it).
    fn seek_start(&mut self) {
        self.epoch = self.meta.epoch();
        if let Err(e) = self.refresh_tracks() {
            self.error = Some(e);
        }
        self.epoch_start();
    }

    pub fn seek_live(&mut self) {
        self.epoch = self.meta.epoch();
        if let Err(e) = self.refresh_tracks() {
            self.error = Some(e);
        }
        let min = self.min_page();
        // The main track's newest key; if it has none yet (video not keyed), the newest key of
        // any track, so a live viewer does not start at the far end of the DVR window.
        let main = self
            .table
            .main_slot()
            .and_then(|s| self.meta.newest_key(s, min));
        let any = || {
            (0..self.table.tracks.len())
                .filter_map(|s| self.meta.newest_key(s, min))
                .max_by_key(|k| (k.page, k.offset))
        };
        match main.or_else(any) {
            Some(k) => self.set_pos(k.page, k.offset as usize),
            None => self.epoch_start(),
        }
    }

    /// Keys of the main track, or if it has none, of the first track that has some.
    fn seek_keys(&self, min: u64) -> Vec<crate::meta::KeyEntry> {
        let main = self.table.main_slot();
        main.into_iter()
            .chain(0..self.table.tracks.len())
            .map(|s| self.meta.keys(s, min))
            .find(|k| !k.is_empty())
            .unwrap_or_default()
    }

    pub fn seek_ms(&mut self, ms: i64) {
        self.epoch = self.meta.epoch();
        if let Err(e) = self.refresh_tracks() {
            self.error = Some(e);
        }
        let min = self.min_page();
        let keys = self.seek_keys(min);
        let k = keys.iter().rev().find(|k| k.dts <= ms).or(keys.first());
        match k {
            Some(k) => self.set_pos(k.page, k.offset as usize),
            None => self.epoch_start(),
        }
    }

    /// Fell behind the DVR window: move to the oldest keyframe still kept.
    fn jump_oldest(&mut self) {
        let min = self.min_page();
        match self.seek_keys(min).into_iter().next() {
            Some(k) => self.set_pos(k.page, k.offset as usize),
            None => self.epoch_start(),
        }
    }

    pub fn next(&mut self) -> ReadEvent {
        loop {
            let (page, rec) = match self.step() {
                Step::Event(e) => return e,
                Step::Rec(p, r) => (p, r),
            };
            self.cur = match rec.ext {
                None => page.payload(&rec),
                Some(offset) => match self.read_external(offset, rec.len) {
                    Ok(b) => b,
                    Err(e) => {
                        // Skip the frame (the position already moved past it).
                        self.error = Some(ShmError::PayloadUnreadable {
                            dts: rec.dts,
                            reason: e.to_string(),
                        });
                        continue;
                    }
                },
            };
            return ReadEvent::Frame(Frame {
                track: rec.track,
                dts: rec.dts,
                pts_offset: rec.pts_off,
                keyframe: rec.key,
                data: self.cur.clone(),
            });
        }
    }

    pub fn next_record(&mut self) -> RecordEvent {
        let (page, rec) = match self.step() {
            Step::Event(e) => return RecordEvent::Event(e),
            Step::Rec(p, r) => (p, r),
        };
        let payload = match rec.ext {
            None => Payload::Inline(page.payload(&rec)),
            Some(offset) => Payload::External {
                offset,
                len: rec.len as u32,
            },
        };
        RecordEvent::Record(FrameRecord {
            track: rec.track,
            dts: rec.dts,
            pts_offset: rec.pts_off,
            keyframe: rec.key,
            payload,
        })
    }

    /// Reads an external payload from the source file (opened once per epoch; retried while it
    /// cannot be opened).
    fn read_external(&mut self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let src = match &self.src {
            Some((e, f)) if *e == self.epoch => f.clone(),
            _ => {
                let f = crate::source::open_source(&self.meta)?;
                self.src = Some((self.epoch, f.clone()));
                f
            }
        };
        src.read(offset, len).map_err(SourceError::Read)
    }

    /// The next record (position moved past it) or another event.
    fn step(&mut self) -> Step {
        self.futex_seen = self.meta.futex().load(SeqCst);
        if self.meta.epoch() != self.epoch {
            // A new writer: live viewers continue at its newest keyframe; a VoD stream (reloaded
            // by a new input) is read from its start.
            if self.meta.live() {
                self.seek_live();
            } else {
                self.seek_start();
            }
            return Step::Event(ReadEvent::Restarted);
        }
        let gen = self.meta.tracks_gen();
        if gen != self.gen && gen & 1 == 0 {
            match self.refresh_tracks() {
                Ok(()) => return Step::Event(ReadEvent::TracksChanged),
                Err(e) => {
                    // Do not retry this generation on every call.
                    self.gen = gen;
                    self.error = Some(e);
                }
            }
        }
        for _ in 0..64 {
            let page = match &self.page {
                Some(p) => p.clone(),
                None => {
                    let path = self.dir.join(page_name(&self.name, self.page_id));
                    match open_cached(&path, self.page_id, self.meta.nonce()) {
                        Ok(p) => {
                            self.page = Some(p.clone());
                            p
                        }
                        Err(ShmError::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            if self.meta.ended() {
                                return Step::Event(ReadEvent::Ended); // removed: its pages are gone
                            }
                            if self.page_id < self.meta.first_page() {
                                self.jump_oldest();
                                continue;
                            }
                            if self.meta.cur_page().is_some_and(|c| self.page_id <= c) {
                                // Published but missing: evicted between our two loads, or
                                // removed by hand. Re-check on the next iteration.
                                if self.page_id < self.meta.first_page() {
                                    continue;
                                }
                                self.error = Some(ShmError::PageMissing(self.page_id));
                                self.set_pos(self.page_id.saturating_add(1), PAGE_HDR);
                                continue;
                            }
                            return Step::Event(self.pending_or_ended());
                        }
                        Err(e) => {
                            self.error = Some(e);
                            if self.meta.cur_page().is_some_and(|c| self.page_id < c) {
                                self.set_pos(self.page_id.saturating_add(1), PAGE_HDR);
                                continue;
                            }
                            return Step::Event(self.pending_or_ended());
                        }
                    }
                }
            };
            let committed = page.committed();
            if self.off < committed {
                match page.record(self.off, committed) {
                    Ok(rec) => {
                        self.off = rec.next;
                        self.position_ms = rec.dts;
                        self.user.set_position(rec.dts);
                        return Step::Rec(page, rec);
                    }
                    Err(e) => {
                        // Corrupt page: skip the rest of it.
                        self.error = Some(ShmError::CorruptRecord {
                            page: self.page_id,
                            detail: e.to_string(),
                        });
                        self.set_pos(self.page_id.saturating_add(1), PAGE_HDR);
                        continue;
                    }
                }
            }
            if page.sealed() {
                if self.off < page.committed() {
                    continue;
                }
                self.set_pos(self.page_id.saturating_add(1), PAGE_HDR);
                continue;
            }
            return Step::Event(self.pending_or_ended());
        }
        Step::Event(ReadEvent::Pending)
    }

    fn pending_or_ended(&mut self) -> ReadEvent {
        // A complete VoD stream has every page sealed: being here means past its last frame.
        if self.meta.ended() || self.meta.complete() {
            return ReadEvent::Ended;
        }
        // Without a buffer process to end it, a stream whose writer is gone for longer than the
        // idle timeout has ended. Checked at most twice a second (it costs kill(2) calls).
        let now = Instant::now();
        if self
            .last_check
            .is_some_and(|t| now - t < Duration::from_millis(500))
        {
            return ReadEvent::Pending;
        }
        self.last_check = Some(now);
        if self.meta.abandoned() {
            return ReadEvent::Ended;
        }
        ReadEvent::Pending
    }

    pub fn keyframes(&self, track: u32) -> Vec<crate::KeyInfo> {
        let Some(slot) = self.table.slot_of(track) else {
            return Vec::new();
        };
        self.meta
            .keys(slot, self.min_page())
            .into_iter()
            .map(|k| crate::KeyInfo {
                dts: k.dts,
                frames: k.frames,
                page: k.page,
            })
            .collect()
    }

    pub fn wait(&self, timeout: Duration) {
        self.meta.wait(self.futex_seen, timeout);
    }

    pub fn futex_word(&self) -> &AtomicU32 {
        self.meta.futex()
    }

    pub fn report(&mut self, down: u64, up: u64) {
        self.user.report(down, up);
    }
}
