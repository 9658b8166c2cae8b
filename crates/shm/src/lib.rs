//! mist-shm: the shared-memory page buffers through which inputs and outputs exchange a stream.
//!
//! API CONTRACT (to be implemented; see docs/architecture.md §shared memory). The signatures below are
//! what the binaries code against. Frame times are milliseconds.
//!
//! Segments live in a directory, `/dev/shm` by default, overridable with the environment variable
//! `MIST_SHM_DIR` (tests use their own directory so they can run in parallel). File names start with
//! `mist-` and carry the sanitised stream name, so `ls /dev/shm` shows what is live.

use bytes::Bytes;
use mist_media::{Frame, Track};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("stream {0:?} does not exist")]
    NoStream(String),
    #[error("stream {0:?} already has a live writer (pid {1})")]
    WriterAlive(String, u32),
    #[error("no free user slot in stream {0:?}")]
    UsersFull(String),
    #[error("frame too large: {0} bytes")]
    FrameTooLarge(usize),
    #[error("too many tracks")]
    TooManyTracks,
    #[error("corrupt segment {0}: {1}")]
    Corrupt(String, String),
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Options a writer creates a stream with.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Live (append, evict by DVR window) or VoD.
    pub live: bool,
    /// DVR window in ms (MistServer's `DVR`, default 50000).
    pub dvr_ms: u64,
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
    _private: (),
}

/// The reader side: one per viewer (cheap), many per process.
pub struct StreamReader {
    _private: (),
}

/// What `StreamReader::next` yields.
pub enum ReadEvent {
    /// The next frame; `data` borrows the mapped page (no copy) but is also available as `Bytes`.
    Frame(Frame),
    /// The track table changed (a track was added or its init data changed).
    TracksChanged,
    /// Nothing new yet: wait on the futex (see `StreamReader::wait`) or the wake-up thread.
    Pending,
    /// The writer was replaced (new epoch); the reader has been moved to the new writer's newest
    /// keyframe and should re-send headers.
    Restarted,
    /// The stream ended (writer closed it, or it is dead and nobody took over).
    Ended,
}

/// One row of the users table as the controller reads it for statistics.
#[derive(Debug, Clone)]
pub struct UserSlot {
    pub pid: u32,
    pub connector: String,
    pub host: String,
    pub position_ms: i64,
    pub bytes_down: u64,
    pub bytes_up: u64,
    pub connected_unix: u64,
    pub last_active_unix: u64,
}

/// Summary of a stream for `active_streams` and the controller.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    pub name: String,
    pub live: bool,
    pub writer_pid: u32,
    pub writer_alive: bool,
    pub epoch: u32,
    pub tracks: Vec<Track>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub ended: bool,
}

pub fn shm_dir() -> std::path::PathBuf {
    std::env::var_os("MIST_SHM_DIR").map(Into::into).unwrap_or_else(|| "/dev/shm".into())
}

impl StreamWriter {
    /// Creates the stream's segments, or takes over a stream whose writer is dead (new epoch).
    pub fn create(_stream: &str, _opts: WriterOptions) -> Result<StreamWriter, ShmError> {
        unimplemented!()
    }
    /// Adds or replaces a track (matched by id); readers see `TracksChanged`.
    pub fn set_track(&mut self, _track: &Track) -> Result<(), ShmError> {
        unimplemented!()
    }
    /// Appends one frame (the one copy into shared memory), bumps the futex and wakes readers.
    pub fn push(&mut self, _track: u32, _dts: i64, _pts_offset: i32, _keyframe: bool, _data: &[u8]) -> Result<(), ShmError> {
        unimplemented!()
    }
    /// Marks the writer alive; call at least once a second.
    pub fn heartbeat(&mut self) {
        unimplemented!()
    }
    /// Marks the stream ended and wakes readers; segments stay until `remove_stream`.
    pub fn close(self) {
        unimplemented!()
    }
}

impl StreamReader {
    /// Opens a stream and registers a users-table slot.
    pub fn open(_stream: &str, _info: ReaderInfo) -> Result<StreamReader, ShmError> {
        unimplemented!()
    }
    pub fn tracks(&self) -> Vec<Track> {
        unimplemented!()
    }
    /// Positions the reader at the newest keyframe of the main (video, else first) track, so a live
    /// viewer starts with the current GOP.
    pub fn seek_live(&mut self) {
        unimplemented!()
    }
    pub fn seek_ms(&mut self, _ms: i64) {
        unimplemented!()
    }
    pub fn next(&mut self) -> ReadEvent {
        unimplemented!()
    }
    /// The frame payload of the last `next` as a borrowed slice, valid until the next call.
    pub fn payload(&self) -> &[u8] {
        unimplemented!()
    }
    /// Blocks until the writer pushes something or the timeout passes.
    pub fn wait(&self, _timeout: Duration) {
        unimplemented!()
    }
    /// Updates this reader's users-table slot.
    pub fn report(&mut self, _bytes_down: u64, _bytes_up: u64) {
        unimplemented!()
    }
}

/// Lists streams present in the shm directory.
pub fn list_streams() -> Vec<StreamStatus> {
    unimplemented!()
}
/// The users table of a stream (dead readers are reclaimed while reading it).
pub fn users(_stream: &str) -> Vec<UserSlot> {
    unimplemented!()
}
/// Removes a stream's segments.
pub fn remove_stream(_stream: &str) -> Result<(), ShmError> {
    unimplemented!()
}
/// Removes segments whose writer is dead and that no living process uses (controller start).
pub fn cleanup_stale() -> usize {
    unimplemented!()
}

#[allow(dead_code)]
fn _uses(_: Bytes) {}
