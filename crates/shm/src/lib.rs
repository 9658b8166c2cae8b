//! mist-shm: the shared-memory page buffers through which inputs and outputs exchange a stream.
//!
//! Frame times are milliseconds. Segments live in a directory, `/dev/shm` by default, overridable
//! with the environment variable `MIST_SHM_DIR` (tests use their own directory so they can run in
//! parallel). File names start with `mist-` and carry the sanitised stream name, so `ls /dev/shm`
//! shows what is live. Files are created with mode 0600 (0660 when `MIST_SHM_GROUP` is set; a
//! numeric value is also applied as the file group).
//!
//! # Files of a stream `S` (sanitised: `[A-Za-z0-9_+.@-]` kept, anything else becomes `_`)
//!
//! | file | contents |
//! |---|---|
//! | `mist-S-meta` | state, track table, page index, per-track key index (≈ 5 MiB, sparse) |
//! | `mist-S-users` | 4096 reader slots of 256 bytes |
//! | `mist-S-p<N>` | data page `N` (page ids increase for the life of the stream, across epochs) |
//! | `mist-S-health` | optional input counters (`loss`, …), text; see [`health`] |
//!
//! # Design
//!
//! * **One page sequence per stream.** Frames of all tracks are appended in arrival order to one
//!   sequence of pages. A page normally starts at a keyframe of the *main* track (first video
//!   track, else the first track): the writer opens a new page at a main keyframe once the current
//!   page holds ≥ 2 s or ≥ 4 MiB; it also opens one when a frame does not fit (page capacity 16 MiB
//!   or the frame's size; files are sparse, so capacity costs nothing). A reader reads pages in
//!   order, so it sees every track's frames interleaved as they arrived.
//! * **Frame record** = 32-byte header (dts i64, pts_offset i32, track u32, flags u32 (bit 0 key),
//!   len u32, seq u64) + payload, padded to 8 bytes. The page header's `committed` offset is
//!   stored with Release after each record: readers see only complete records. Pages are
//!   append-only and never reused; a reader maps each page once per *process* (shared by all its
//!   readers) and hands payloads out as `Bytes` pointing into the mapping (`Bytes::from_owner`),
//!   so there is no copy at all on the read side. An *external* record (flags bit 1; VoD inputs
//!   of MP4 files) holds a file offset instead of the payload: the payload is `len` bytes at
//!   that offset of the stream's source file ([`StreamWriter::set_source_file`],
//!   [`StreamWriter::push_external`]); readers `pread` it when they reach the frame (one copy),
//!   or get the offset from [`StreamReader::next_record`]. An unreadable payload (file gone,
//!   replaced or truncated) skips the frame and sets `last_error`. Holding a frame's `Bytes` keeps its whole page
//!   mapped (and its memory allocated, even after eviction): copy what you cache for long.
//! * **Metadata**: header words (magic, version, live, ended, writer pid, buffer pid, heartbeat,
//!   epoch, futex word, waiter count, DVR, first/current page, first/last ms, nonce, name), the
//!   track table as a serialized blob behind a seqlock generation (writer never waits; readers
//!   retry), a 4096-entry page ring (id, first/last ms, bytes) and per track slot a 4096-entry key
//!   ring (dts, page, offset, frame count; validated by a per-entry sequence number). Video tracks
//!   index every keyframe; other tracks index a key at most once a second and at each page start.
//! * **Writer role**: the `writer pid` word is taken by compare-and-swap. A writer is alive if its
//!   pid exists and its heartbeat (updated by `push` and `heartbeat`) is younger than
//!   [`WRITER_TIMEOUT_MS`]. `StreamWriter::create` takes over a stream with no live writer: the
//!   epoch is incremented, the track table is cleared (the new writer sets its tracks), the old
//!   last page is sealed, and new pages continue the page numbering. Frame times of the new epoch
//!   are shifted, if needed, so they continue after the last time of the previous epoch.
//!   Readers see `ReadEvent::Restarted` and continue at the new epoch's newest keyframe (VoD: at its
//!   first frame).
//!   Video frames before a track's first keyframe are dropped by the writer.
//! * **Live DVR**: after each push (a cheap check of the oldest page) the writer unlinks pages
//!   whose newest frame is older than the DVR window behind the newest frame (never the page
//!   being written). Page memory is reserved with fallocate in 1 MiB steps, so a full tmpfs is an
//!   `Io` error from `push` (ENOSPC), not a SIGBUS. A reader holding an
//!   evicted page keeps its mapping (the memory stays valid until the last `Bytes` is dropped); a
//!   reader that reaches a page that no longer exists is moved to the oldest kept keyframe.
//! * **Wake-ups**: every change bumps the futex word in the metadata; the FUTEX_WAKE syscall is
//!   made only when the waiter count is non-zero. [`StreamReader::wait`] waits on one stream;
//!   [`Waiter`] waits on many from one helper thread (futex_waitv) and pairs with `mio::Waker`.
//! * **Lifecycle**: the metadata is created by whoever comes first (`StreamBuffer::open` in
//!   MistInBuffer, or `StreamWriter::create`); creation is atomic (built under a temp name, then
//!   `link(2)`ed). `StreamWriter::close` ends the stream for everyone; dropping a writer (or
//!   `detach`) leaves the stream open for a returning publisher, and the buffer process (or, with
//!   none, readers after the idle timeout) ends it. `remove_stream` marks it ended and unlinks
//!   its files; `cleanup_stale` removes streams nobody alive uses.
//!
//! # Notes for writers
//!
//! * Call `heartbeat()` at least once a second even when no frames arrive (a stalled network):
//!   a writer silent for [`WRITER_TIMEOUT_MS`] counts as gone (another writer may take over and
//!   MistInBuffer starts its publisher timeout).
//! * `push` fails with `WriterAlive` once another writer took over and with `NoStream` once the
//!   stream was ended (by MistInBuffer or `remove_stream`) or its metadata file was unlinked or
//!   replaced (checked once a second): stop publishing then.
//! * Dropping a `StreamWriter` is `detach` (the stream waits for a returning publisher);
//!   call `close` to end the stream for its viewers at once.
//! * The DVR window set by a running buffer process (MistInBuffer `--dvr`) wins over
//!   `WriterOptions::dvr_ms`.
//!
//! # Notes for readers
//!
//! * `StreamReader::open` on a VoD stream (`live: false`) starts at the first frame (of any
//!   track: audio before the first video keyframe is not skipped), on a live stream at the
//!   newest keyframe.
//! * Every reader holds a slot in the users table. A viewer served from a reader it shares with
//!   others (one reader per stream and process, many viewers) takes a [`StreamUser`], so that the
//!   controller counts it with its own address and byte counts.
//! * A writer takes what a reader gives: [`StreamWriter::push`] takes a [`Frame`] as
//!   [`ReadEvent::Frame`] carries it.

#![warn(missing_docs)]

pub mod conns;
mod futex;
mod guard;
pub mod health;
mod layout;
mod meta;
mod page;
mod reader;
mod seg;
pub mod sessions;
mod slots;
mod source;
mod users;
mod waiter;
mod writer;

pub use guard::faults as truncation_faults;
pub use layout::{MAX_FRAME, MAX_INIT, MAX_SRC_PATH, MAX_TRACKS, USER_SLOTS};
pub use source::{SourceError, SourceFile};
pub use users::StreamUser;
pub use waiter::Waiter;
pub use writer::{max_dvr_bytes, DEFAULT_MAX_DVR_BYTES};

use bytes::Bytes;
use layout::*;
use meta::Meta;
use mist_media::{Frame, Track};
use seg::{now_ms, pid_alive};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use users::Users;

/// A writer whose heartbeat is older than this is considered dead.
pub const WRITER_TIMEOUT_MS: u64 = 2000;

/// What went wrong in shared memory.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// The stream has no metadata (never created, ended and removed, or replaced).
    #[error("stream {0:?} does not exist")]
    NoStream(String),
    /// Another live process is the stream's writer (or buffer): its pid.
    #[error("stream {0:?} already has a live writer (pid {1})")]
    WriterAlive(String, u32),
    /// Every users-table slot is taken by a live process.
    #[error("no free user slot in stream {0:?}")]
    UsersFull(String),
    /// The stream admits no more viewers (its `max_viewers`).
    #[error("stream {0:?} has its limit of {1} viewers (stream option max_viewers)")]
    ViewerLimit(String, u32),
    /// A frame over [`MAX_FRAME`] bytes.
    #[error("frame too large: {0} bytes")]
    FrameTooLarge(usize),
    /// More than [`MAX_TRACKS`] tracks.
    #[error("too many tracks")]
    TooManyTracks,
    /// A segment file that is not what it should be: its path, and what is wrong.
    #[error("corrupt segment {0}: {1}")]
    Corrupt(String, String),
    /// Init data longer than [`MAX_INIT`].
    #[error("init data too large: {0} bytes")]
    InitTooLarge(usize),
    /// `push` for a track id never given to `set_track`.
    #[error("unknown track {0}")]
    UnknownTrack(u32),
    /// `push_external` without a source file, or an unusable source file path.
    #[error("source file: {0}")]
    SourcePath(String),
    /// A page the stream published is gone (removed by hand); a reader goes on after it.
    #[error("page {0} missing")]
    PageMissing(u64),
    /// A record in a page is not what it should be (a buggy or hostile process wrote over it);
    /// a reader skips the rest of the page.
    #[error("page {page}: {detail}")]
    CorruptRecord {
        /// The page's id.
        page: u64,
        /// What is wrong with the record.
        detail: String,
    },
    /// An external payload could not be read from the stream's source file; a reader skips
    /// its frame.
    #[error("frame at {dts} ms skipped: {reason}")]
    PayloadUnreadable {
        /// The frame's decode time.
        dts: i64,
        /// Why the payload could not be read.
        reason: String,
    },
    /// A file operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the operation gave.
        source: std::io::Error,
    },
}

/// Options a writer creates a stream with.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Live (append, evict by DVR window) or VoD.
    pub live: bool,
    /// DVR window in ms (MistServer's `DVR`, default 50000).
    pub dvr_ms: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            live: true,
            dvr_ms: 50_000,
        }
    }
}

/// What a reader tells the users table about itself.
#[derive(Debug, Clone, Default)]
pub struct ReaderInfo {
    /// Connector name, e.g. "RTMP", "HLS".
    pub connector: String,
    /// Peer address as text.
    pub host: String,
}

/// The writer side of a stream (one per stream at a time).
pub struct StreamWriter {
    st: writer::WriterState,
}

/// The reader side: one per viewer (cheap), many per process.
pub struct StreamReader {
    st: reader::ReaderState,
}

/// What `StreamReader::next` yields.
#[derive(Debug)]
pub enum ReadEvent {
    /// The next frame; `data` points into the mapped page (no copy; `Bytes` keeps it mapped).
    Frame(Frame),
    /// The track table changed (a track was added or its init data changed).
    TracksChanged,
    /// Nothing new yet: wait on the futex (see `StreamReader::wait`) or the wake-up thread.
    Pending,
    /// The writer was replaced (new epoch); the reader has been moved to the new writer's newest
    /// keyframe (VoD: its first frame) and should re-send headers.
    Restarted,
    /// The stream ended (writer closed it, or it is dead and nobody took over).
    Ended,
}

/// Where a record's payload is (see [`StreamReader::next_record`]).
#[derive(Debug, Clone)]
pub enum Payload {
    /// In a page: a `Bytes` into the mapping (no copy).
    Inline(Bytes),
    /// `len` bytes at `offset` of the stream's source file ([`StreamReader::source_file`]).
    External {
        /// Where the payload starts in the source file.
        offset: u64,
        /// Its size in bytes.
        len: u32,
    },
}

impl Payload {
    /// The payload's size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Inline(b) => b.len(),
            Payload::External { len, .. } => *len as usize,
        }
    }
    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A frame record without its payload read (see [`StreamReader::next_record`]).
#[derive(Debug, Clone)]
pub struct FrameRecord {
    /// The id of the frame's track.
    pub track: u32,
    /// Decode time (ms).
    pub dts: i64,
    /// Presentation time minus decode time (ms).
    pub pts_offset: i32,
    /// A random access point.
    pub keyframe: bool,
    /// Where the payload is.
    pub payload: Payload,
}

/// What `StreamReader::next_record` yields.
#[derive(Debug)]
pub enum RecordEvent {
    /// A frame record.
    Record(FrameRecord),
    /// Anything but a frame (`ReadEvent::Frame` never comes here).
    Event(ReadEvent),
}

/// One entry of a track's key index (see [`StreamReader::keyframes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// Dts of the keyframe (ms).
    pub dts: i64,
    /// Frames of the track from this key up to the next (so far, for the newest key).
    pub frames: u32,
    /// Page id holding the keyframe.
    pub page: u64,
}

/// One row of the users table as the controller reads it for statistics.
#[derive(Debug, Clone)]
pub struct UserSlot {
    /// The process that holds the slot.
    pub pid: u32,
    /// Its connector (`RTMP`, `HLS` …).
    pub connector: String,
    /// The viewer's address.
    pub host: String,
    /// Playback position (ms).
    pub position_ms: i64,
    /// Bytes sent to the viewer.
    pub bytes_down: u64,
    /// Bytes received from the viewer.
    pub bytes_up: u64,
    /// Unix time the slot was claimed.
    pub connected_unix: u64,
    /// Unix time of the last report.
    pub last_active_unix: u64,
}

/// Summary of a stream for `active_streams` and the controller.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    /// The stream's name.
    pub name: String,
    /// Live (`false`: VoD).
    pub live: bool,
    /// The writer's pid (0: none).
    pub writer_pid: u32,
    /// Whether the writer is alive (pid exists, heartbeat fresh).
    pub writer_alive: bool,
    /// The writer generation: incremented at every takeover.
    pub epoch: u32,
    /// The tracks, with measured rates.
    pub tracks: Vec<Track>,
    /// Oldest frame time kept (ms).
    pub first_ms: i64,
    /// Newest frame time (ms).
    pub last_ms: i64,
    /// Ended (closed, or abandoned by its writer).
    pub ended: bool,
    /// VoD with every frame written.
    pub complete: bool,
}

/// The directory of the segment files: `MIST_SHM_DIR`, else `/dev/shm`.
pub fn shm_dir() -> std::path::PathBuf {
    std::env::var_os("MIST_SHM_DIR")
        .map(Into::into)
        .unwrap_or_else(|| "/dev/shm".into())
}

impl StreamWriter {
    /// Creates the stream's segments, or takes over a stream whose writer is dead, detached or
    /// closed (new epoch). Fails with `WriterAlive` if another writer is alive.
    pub fn create(stream: &str, opts: WriterOptions) -> Result<StreamWriter, ShmError> {
        writer::create(stream, opts)
    }
    /// Caps the bytes a live stream keeps for DVR behind the page being written (default
    /// `MIST_DVR_MAX_BYTES`, else 1 GiB): older pages are dropped past it even inside the DVR
    /// window in time (frozen timestamps never leave it).
    pub fn set_max_dvr_bytes(&mut self, bytes: u64) {
        self.st.max_dvr_bytes = bytes.max(1);
    }
    /// Adds or replaces a track (matched by id); readers see `TracksChanged`.
    pub fn set_track(&mut self, track: &Track) -> Result<(), ShmError> {
        self.st.set_track(track)
    }
    /// Appends one frame (the one copy into shared memory), bumps the futex and wakes readers:
    /// what a reader's [`ReadEvent::Frame`] gives back. Fails with `WriterAlive` if this writer
    /// has been replaced by another.
    pub fn push(&mut self, f: &Frame) -> Result<(), ShmError> {
        self.st
            .push(f.track, f.dts, f.pts_offset, f.keyframe, &f.data)
    }
    /// [`push`](Self::push) from the parts of a frame, for a caller that holds no [`Frame`].
    pub fn push_parts(
        &mut self,
        track: u32,
        dts: i64,
        pts_offset: i32,
        keyframe: bool,
        data: &[u8],
    ) -> Result<(), ShmError> {
        self.st.push(track, dts, pts_offset, keyframe, data)
    }
    /// Records the file that external records ([`push_external`](Self::push_external)) point
    /// into (VoD inputs: the file being served). Stored as an absolute path (canonicalised);
    /// readers open it by that path and check its inode.
    pub fn set_source_file(&mut self, path: &Path) -> Result<(), ShmError> {
        self.st.set_source_file(path)
    }
    /// Appends an *external* record: the payload is `len` bytes at `offset` of the source file
    /// ([`set_source_file`](Self::set_source_file)), read by readers when they reach the frame.
    /// Pages, keys and rates as [`push`](Self::push); `MAX_FRAME` bounds `len`.
    pub fn push_external(
        &mut self,
        track: u32,
        dts: i64,
        pts_offset: i32,
        keyframe: bool,
        offset: u64,
        len: u32,
    ) -> Result<(), ShmError> {
        self.st
            .push_external(track, dts, pts_offset, keyframe, offset, len)
    }
    /// Marks the writer alive; call at least once a second (push does it too).
    pub fn heartbeat(&mut self) {
        self.st.heartbeat()
    }
    /// Marks the stream ended and wakes readers; segments stay until `remove_stream`.
    pub fn close(mut self) {
        self.st.finish(true)
    }
    /// Gives up the writer role without ending the stream: readers wait (Pending) for a new
    /// writer, which continues with a new epoch. Dropping a writer does the same.
    pub fn detach(mut self) {
        self.st.finish(false)
    }
    /// VoD: every frame has been pushed. Readers that reach the end get `Ended`; the stream
    /// stays for new readers until it is closed or removed.
    pub fn complete(&mut self) {
        self.st.complete()
    }
    /// Runs DVR eviction now (push does it whenever it opens a page).
    pub fn evict(&mut self) {
        self.st.evict()
    }
    /// This writer's epoch (writer generation).
    pub fn epoch(&self) -> u32 {
        self.st.epoch
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        self.st.finish(false)
    }
}

impl StreamReader {
    /// Opens a stream and registers a users-table slot. A live stream's reader starts at the
    /// newest keyframe, a VoD stream's at the first frame.
    pub fn open(stream: &str, info: ReaderInfo) -> Result<StreamReader, ShmError> {
        Ok(StreamReader {
            st: reader::ReaderState::open(stream, info)?,
        })
    }
    /// The track table as of the last `TracksChanged`/`Restarted` (or open).
    pub fn tracks(&self) -> Vec<Track> {
        self.st.table.tracks.clone()
    }
    /// [`tracks`](Self::tracks) with `bps` set to the measured rate (bytes/s) where the writer
    /// gave none: measured after a track's first second, then every 5 s of media; the
    /// whole-stream average once a VoD is complete. Rates change without `TracksChanged`, so
    /// compare tracks from [`tracks`](Self::tracks), not from this.
    pub fn tracks_with_rates(&self) -> Vec<Track> {
        self.st.meta.with_rates(self.st.table.tracks.clone())
    }
    /// Positions the reader at the newest keyframe of the main (video, else first) track, so a live
    /// viewer starts with the current GOP.
    pub fn seek_live(&mut self) {
        self.st.seek_live()
    }
    /// Positions the reader at the last main-track keyframe at or before `ms` (the oldest kept
    /// one if `ms` is older).
    pub fn seek_ms(&mut self, ms: i64) {
        self.st.seek_ms(ms)
    }
    /// The next event; never blocks.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> ReadEvent {
        self.st.next()
    }
    /// The next frame *record*, without reading an external payload from the source file (for
    /// indexes: the offset is enough). Inline payloads are `Bytes` into the page as with `next`.
    pub fn next_record(&mut self) -> RecordEvent {
        self.st.next_record()
    }
    /// The stream's source file (for the payloads of external records), opened once per
    /// process. An error if there is none or it is gone or was replaced.
    pub fn source_file(&self) -> Result<Arc<SourceFile>, SourceError> {
        source::open_source(&self.st.meta)
    }
    /// The frame payload of the last `next` as a borrowed slice, valid until the next call.
    pub fn payload(&self) -> &[u8] {
        &self.st.cur
    }
    /// Blocks until the writer pushes something (since the last `next`) or the timeout passes.
    pub fn wait(&self, timeout: Duration) {
        self.st.wait(timeout)
    }
    /// Updates this reader's users-table slot with its cumulative byte counts.
    pub fn report(&mut self, bytes_down: u64, bytes_up: u64) {
        self.st.report(bytes_down, bytes_up)
    }
    /// The stream's futex word: it changes on every push, track change, epoch change and end.
    /// Use with your own futex/`Waiter` logic; `wait` is the simple way.
    pub fn futex_word(&self) -> &AtomicU32 {
        self.st.futex_word()
    }
    /// The key index of a track in the current epoch's kept window, oldest first (for segmenters:
    /// HLS/DASH segment boundaries). Video tracks list every keyframe; other tracks a key at
    /// most once per second and at each page start. Empty for an unknown track.
    pub fn keyframes(&self, track: u32) -> Vec<KeyInfo> {
        self.st.keyframes(track)
    }
    /// Dts of the last frame returned.
    pub fn position_ms(&self) -> i64 {
        self.st.position_ms
    }
    /// Live stream (`false`: VoD, whose readers start at the first frame).
    pub fn is_live(&self) -> bool {
        self.st.meta.live()
    }
    /// VoD whose input has written every frame (see [`StreamWriter::complete`]).
    pub fn is_complete(&self) -> bool {
        self.st.meta.complete()
    }
    /// Oldest and newest frame time kept (ms).
    pub fn range_ms(&self) -> (i64, i64) {
        let s = &self.st.meta.seg;
        (
            s.i64(M_FIRST_MS).load(Relaxed),
            s.i64(M_LAST_MS).load(Relaxed),
        )
    }
    /// The epoch (writer generation) the reader is in.
    pub fn epoch(&self) -> u32 {
        self.st.epoch
    }
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.st.name
    }
    /// The last problem met (corrupt or missing page skipped, external payload unreadable and
    /// its frame skipped), for logging.
    pub fn last_error(&self) -> Option<&ShmError> {
        self.st.error.as_ref()
    }
}

/// The buffer process's handle on a live stream (MistInBuffer): creates the metadata if needed,
/// advertises its pid (readers then leave ending the stream to it) and ends the stream.
pub struct StreamBuffer {
    name: String,
    meta: Arc<Meta>,
}

impl StreamBuffer {
    /// Creates or opens the stream and registers this process as its buffer. `idle_ms` is how
    /// long readers without a buffer process wait for a gone writer before they report `Ended`.
    /// Fails with `WriterAlive` (carrying the other buffer's pid) if another buffer process
    /// serves the stream.
    pub fn open(stream: &str, opts: WriterOptions, idle_ms: u32) -> Result<StreamBuffer, ShmError> {
        let dir = shm_dir();
        let mut meta = create_meta(&dir, stream, opts.live, opts.dvr_ms)?;
        if meta.ended() && !meta.writer_alive() && !pid_alive(meta.buffer_pid()) {
            // Left over from a stream that ended: start afresh (readers of the old one keep
            // seeing it ended through their mapping).
            remove_files(&dir, &seg::sanitise(stream));
            meta = create_meta(&dir, stream, opts.live, opts.dvr_ms)?;
        }
        open_users(&dir, stream, true)?;
        let s = &meta.seg;
        let me = std::process::id();
        loop {
            let other = s.u32(M_BUFFER_PID).load(Acquire);
            if other != 0 && other != me && pid_alive(other) {
                return Err(ShmError::WriterAlive(stream.to_owned(), other));
            }
            if s.u32(M_BUFFER_PID)
                .compare_exchange(other, me, AcqRel, Acquire)
                .is_ok()
            {
                break;
            }
        }
        s.u32(M_IDLE_MS).store(idle_ms, Relaxed);
        s.u64(M_DVR).store(opts.dvr_ms, Relaxed);
        // Not set until `set_max_dvr_bytes` (writers use their own cap meanwhile).
        s.u64(M_DVR_BYTES).store(0, Relaxed);
        s.u32(M_MAX_USERS).store(0, Relaxed);
        Ok(StreamBuffer {
            name: stream.to_owned(),
            meta,
        })
    }
    /// The stream's DVR byte cap (stream option `dvr_bytes`; 0 = none): the writer, whichever
    /// process it is, drops the oldest pages past it even inside the DVR window in time (frozen
    /// timestamps never leave it). Overrides the writer's own cap (`MIST_DVR_MAX_BYTES`, 1 GiB).
    pub fn set_max_dvr_bytes(&self, bytes: u64) {
        let v = if bytes == 0 { u64::MAX } else { bytes };
        self.meta.seg.u64(M_DVR_BYTES).store(v, Relaxed);
    }
    /// Viewers (users-table slots: readers and counted viewers) the stream admits at once
    /// (stream option `max_viewers`; 0 = as many as there are slots, [`USER_SLOTS`]). One more
    /// gets [`ShmError::ViewerLimit`], logged by its process at most every 10 s.
    pub fn set_max_viewers(&self, n: u32) {
        self.meta.seg.u32(M_MAX_USERS).store(n, Relaxed);
    }
    /// The stream's summary.
    pub fn status(&self) -> StreamStatus {
        status_of(&self.meta)
    }
    /// Whether a writer is currently alive (pid exists, heartbeat fresh).
    pub fn writer_alive(&self) -> bool {
        self.meta.writer_alive()
    }
    /// Unix ms of the last writer heartbeat (or of the stream's creation).
    pub fn last_heartbeat_ms(&self) -> u64 {
        self.meta.heartbeat()
    }
    /// Number of readers alive (dead ones are reclaimed).
    pub fn viewers(&self) -> usize {
        users(&self.name).len()
    }
    /// Waits for any change on the stream, at most `timeout`.
    pub fn wait(&self, timeout: Duration) {
        let seen = self.meta.futex().load(SeqCst);
        self.meta.wait(seen, timeout);
    }
    /// Marks the stream ended, wakes readers and removes its files.
    pub fn end(self) -> Result<(), ShmError> {
        self.meta.seg.u32(M_ENDED).store(1, Release);
        self.meta.notify();
        remove_stream(&self.name)
    }
}

impl Drop for StreamBuffer {
    fn drop(&mut self) {
        let _ = self.meta.seg.u32(M_BUFFER_PID).compare_exchange(
            std::process::id(),
            0,
            AcqRel,
            Relaxed,
        );
    }
}

// ---- process-wide caches of mapped metadata and users segments ----

type SegCache<T> = Mutex<HashMap<PathBuf, Weak<T>>>;

fn cached<T>(
    cache: &SegCache<T>,
    path: &Path,
    ino_of: impl Fn(&T) -> u64,
    open: impl FnOnce() -> Result<T, ShmError>,
) -> Result<Arc<T>, ShmError> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(path)
        .map_err(|e| seg::io_err(path, e))?
        .ino();
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(x) = c.get(path).and_then(Weak::upgrade) {
        if ino_of(&x) == ino {
            return Ok(x);
        }
    }
    let x = Arc::new(open()?);
    if c.len() > 64 {
        c.retain(|_, w| w.strong_count() > 0);
    }
    c.insert(path.to_owned(), Arc::downgrade(&x));
    Ok(x)
}

fn meta_cache() -> &'static SegCache<Meta> {
    static C: OnceLock<SegCache<Meta>> = OnceLock::new();
    C.get_or_init(Default::default)
}
fn users_cache() -> &'static SegCache<Users> {
    static C: OnceLock<SegCache<Users>> = OnceLock::new();
    C.get_or_init(Default::default)
}

pub(crate) fn tmp_name(path: &Path) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut s = path.as_os_str().to_owned();
    s.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    ));
    s.into()
}

pub(crate) fn open_meta(dir: &Path, stream: &str) -> Result<Arc<Meta>, ShmError> {
    if stream.is_empty() {
        return Err(ShmError::NoStream(String::new()));
    }
    let path = dir.join(seg::meta_name(stream));
    cached(meta_cache(), &path, |m| m.seg.ino, || Meta::open(&path)).map_err(|e| match e {
        ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            ShmError::NoStream(stream.to_owned())
        }
        e => e,
    })
}

/// Opens the metadata, creating it (atomically) if missing.
pub(crate) fn create_meta(
    dir: &Path,
    stream: &str,
    live: bool,
    dvr_ms: u64,
) -> Result<Arc<Meta>, ShmError> {
    if stream.is_empty() {
        return Err(ShmError::NoStream(String::new()));
    }
    let _ = std::fs::create_dir_all(dir);
    for _ in 0..3 {
        match open_meta(dir, stream) {
            Err(ShmError::NoStream(_)) => {}
            r => return r,
        }
        let path = dir.join(seg::meta_name(stream));
        let tmp = tmp_name(&path);
        let m = Meta {
            seg: seg::Seg::create(&tmp, META_SIZE)?,
        };
        m.init(stream, live, dvr_ms);
        let r = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match r {
            Ok(()) => {
                let m = Arc::new(Meta {
                    seg: m.seg.renamed(&path),
                });
                let mut c = meta_cache().lock().unwrap_or_else(|p| p.into_inner());
                c.insert(path, Arc::downgrade(&m));
                return Ok(m);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(seg::io_err(&path, e)),
        }
    }
    open_meta(dir, stream)
}

pub(crate) fn open_users(dir: &Path, stream: &str, create: bool) -> Result<Arc<Users>, ShmError> {
    let path = dir.join(seg::users_name(stream));
    if create && !path.exists() {
        Users::create_or_open(&path)?;
    }
    cached(users_cache(), &path, |u| u.seg.ino, || Users::open(&path))
}

fn status_of(m: &Meta) -> StreamStatus {
    let s = &m.seg;
    StreamStatus {
        name: m.name(),
        live: m.live(),
        writer_pid: m.writer_pid(),
        writer_alive: m.writer_alive(),
        epoch: m.epoch(),
        tracks: m.with_rates(m.read_tracks().map(|(t, _)| t.tracks).unwrap_or_default()),
        first_ms: s.i64(M_FIRST_MS).load(Relaxed),
        last_ms: s.i64(M_LAST_MS).load(Relaxed),
        ended: m.ended() || m.abandoned(),
        complete: m.complete(),
    }
}

/// Status of one stream.
pub fn stream_status(stream: &str) -> Result<StreamStatus, ShmError> {
    Ok(status_of(&*open_meta(&shm_dir(), stream)?))
}

/// Sanitised names (file-name part) of the streams with a metadata file.
fn meta_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let s = n.strip_prefix("mist-")?.strip_suffix("-meta")?.to_owned();
            Some((s, e.path()))
        })
        .collect()
}

/// Lists streams present in the shm directory.
pub fn list_streams() -> Vec<StreamStatus> {
    meta_files(&shm_dir())
        .into_iter()
        .filter_map(|(_, p)| Meta::open(&p).ok())
        .map(|m| status_of(&m))
        .collect()
}

/// The users table of a stream (dead readers are reclaimed while reading it).
pub fn users(stream: &str) -> Vec<UserSlot> {
    match open_users(&shm_dir(), stream, false) {
        Ok(u) => {
            u.reclaim();
            u.list()
        }
        Err(_) => Vec::new(),
    }
}

/// The streams' metadata and users tables of one process's periodic reads (the controller's
/// scans), mapped once and kept open across calls: a call maps nothing while no file was
/// replaced. [`list_streams`](Self::list_streams) and [`users`](Self::users) answer as the
/// free functions of the same names. A file replaced (new inode) is mapped again; the mappings
/// of streams whose files are gone are dropped at the next `list_streams`.
#[derive(Default)]
pub struct StreamCache {
    dir: PathBuf,
    /// Metadata by file name, with the inode readdir gave.
    metas: HashMap<std::ffi::OsString, Arc<Meta>>,
    /// Users tables by file name.
    users: HashMap<String, Arc<Users>>,
    /// Users table file names present at the last `list_streams` (reused buffer).
    seen_users: std::collections::HashSet<std::ffi::OsString>,
}

impl StreamCache {
    /// An empty cache.
    pub fn new() -> StreamCache {
        StreamCache::default()
    }

    fn check_dir(&mut self) -> PathBuf {
        let dir = shm_dir();
        if dir != self.dir {
            self.metas.clear();
            self.users.clear();
            self.dir.clone_from(&dir);
        }
        dir
    }

    /// [`list_streams`] through the kept mappings.
    pub fn list_streams(&mut self) -> Vec<StreamStatus> {
        use std::os::unix::fs::DirEntryExt;
        let dir = self.check_dir();
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            self.metas.clear();
            self.users.clear();
            return out;
        };
        let mut present: std::collections::HashSet<std::ffi::OsString> =
            std::mem::take(&mut self.seen_users);
        present.clear();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(n) = name.to_str() else { continue };
            let Some(rest) = n.strip_prefix("mist-") else {
                continue;
            };
            if rest.ends_with("-users") {
                present.insert(name);
                continue;
            }
            if !rest.ends_with("-meta") {
                continue;
            }
            // readdir gives the inode: a replaced file is seen without a stat.
            let fresh = match self.metas.get(&name) {
                Some(m) if m.seg.ino == e.ino() => Some(m.clone()),
                _ => None,
            };
            let m = match fresh {
                Some(m) => m,
                None => match Meta::open(&e.path()) {
                    Ok(m) => {
                        let m = Arc::new(m);
                        self.metas.insert(name.clone(), m.clone());
                        m
                    }
                    Err(_) => {
                        self.metas.remove(&name);
                        continue;
                    }
                },
            };
            present.insert(name);
            out.push(status_of(&m));
        }
        self.metas.retain(|n, _| present.contains(n));
        self.users
            .retain(|n, _| present.contains(std::ffi::OsStr::new(n.as_str())));
        self.seen_users = present;
        out
    }

    /// [`users`] through the kept mappings.
    pub fn users(&mut self, stream: &str) -> Vec<UserSlot> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.check_dir();
        let name = seg::users_name(stream);
        let path = dir.join(&name);
        let Ok(ino) = std::fs::metadata(&path).map(|m| m.ino()) else {
            self.users.remove(&name);
            return Vec::new();
        };
        let u = match self.users.get(&name) {
            Some(u) if u.seg.ino == ino => u.clone(),
            _ => match Users::open(&path) {
                Ok(u) => {
                    let u = Arc::new(u);
                    self.users.insert(name, u.clone());
                    u
                }
                Err(_) => {
                    self.users.remove(&name);
                    return Vec::new();
                }
            },
        };
        u.reclaim();
        u.list()
    }
}

/// Whether `file` is one of the files of the stream whose sanitised name is `san`.
fn belongs(file: &str, san: &str) -> bool {
    let Some(rest) = file
        .strip_prefix("mist-")
        .and_then(|r| r.strip_prefix(san))
        .and_then(|r| r.strip_prefix('-'))
    else {
        return false;
    };
    let base = rest.split(".tmp").next().unwrap_or(rest);
    base == "meta"
        || base == "users"
        || base == "health"
        || base
            .strip_prefix('p')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn remove_files(dir: &Path, san: &str) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<(String, PathBuf)> = rd
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .filter(|(n, _)| belongs(n, san))
        .collect();
    // Metadata last, so a concurrent reader sees `ended` rather than a half-removed stream.
    files.sort_by_key(|(n, _)| n.ends_with("-meta"));
    files
        .iter()
        .filter(|(_, p)| std::fs::remove_file(p).is_ok())
        .count()
}

/// Removes a stream's segments (marking it ended first, so readers stop).
pub fn remove_stream(stream: &str) -> Result<(), ShmError> {
    let dir = shm_dir();
    if let Ok(m) = open_meta(&dir, stream) {
        m.seg.u32(M_ENDED).store(1, Release);
        m.notify();
    }
    if remove_files(&dir, &seg::sanitise(stream)) == 0 {
        return Err(ShmError::NoStream(stream.to_owned()));
    }
    Ok(())
}

/// Removes segments whose writer is dead and that no living process uses (controller start).
/// Returns the number of files removed.
pub fn cleanup_stale() -> usize {
    let dir = shm_dir();
    let mut removed = 0;
    for (san, path) in meta_files(&dir) {
        let keep = match Meta::open(&path) {
            Ok(m) => {
                let busy = m.writer_alive()
                    || pid_alive(m.buffer_pid())
                    || Users::open(&dir.join(format!("mist-{san}-users")))
                        .is_ok_and(|u| u.live_count() > 0);
                busy || now_ms().saturating_sub(m.seg.u64(M_CREATED).load(Relaxed)) < 2000
            }
            Err(_) => false,
        };
        if !keep {
            if let Ok(m) = Meta::open(&path) {
                m.seg.u32(M_ENDED).store(1, Release);
                m.notify();
            }
            removed += remove_files(&dir, &san);
        }
    }
    // Files of streams without metadata (a crash during removal), and old temp files.
    let metas: Vec<String> = meta_files(&dir).into_iter().map(|(s, _)| s).collect();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let Ok(n) = e.file_name().into_string() else {
                continue;
            };
            if !n.starts_with("mist-") {
                continue;
            }
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d > Duration::from_secs(5));
            let tmp_dead = n
                .rsplit_once(".tmp")
                .and_then(|(_, r)| r.split('-').next()?.parse::<u32>().ok())
                .is_some_and(|pid| !pid_alive(pid));
            let orphan = !metas.iter().any(|s| belongs(&n, s));
            if ((orphan && old) || tmp_dead) && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests;
