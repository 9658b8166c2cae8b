//! Segmented outputs (`/hls/$/…`, `/cmaf/$/…`): the extension point for playlist + segment
//! formats. An implementation keeps one reader per stream, cuts segments with
//! mist_media::segment, muxes each segment once and answers requests from its cache; MistOutHTTP
//! handles waiting requests, timeouts and idle streams around it.
//!
//! Formats: `hls` (MPEG-TS segments, hls.rs) and `cmaf` (DASH + fMP4 HLS, cmaf.rs); for VoD
//! streams both are served from the stream's index (vod.rs), at the same URLs. To add one,
//! implement [`SegmentedStream`] in a module and add its `kind` (the first URL component) to
//! `has` and `open` in segmented_formats.rs.

use bytes::Bytes;
use mist_net::server::ConnId;
use std::time::{Duration, Instant};

/// How long a request waits for a playlist or the segment being muxed.
pub const WAIT: Duration = Duration::from_secs(15);
/// A stream nobody asked for during this long is dropped.
pub const IDLE: Duration = Duration::from_secs(30);

/// What a request gets.
pub enum Answer {
    /// The playlist, manifest or segment.
    Ready {
        /// Content-Type.
        ctype: &'static str,
        /// Cache-Control.
        cache: &'static str,
        /// The whole body.
        body: Bytes,
    },
    /// A cached segment: MistOutHTTP sends its file with sendfile(2).
    Cached(Cached),
    /// Not available yet (not enough segments, segment being muxed): ask again after `poll`.
    Wait,
    /// No such playlist or segment (any more): 404 with the reason.
    NotFound(String),
}

/// A muxed segment as it is cached: its bytes, and the whole answer (head and bytes) in an
/// in-memory file (`memfd`) that MistOutHTTP sends with one sendfile(2) per request, so a request
/// costs no copy through user space and no head to build (as nginx serves static files, minus
/// the open(2) and the head). The file is written once, when the segment is cached.
#[derive(Clone)]
pub struct Cached {
    /// The body, shared by every request for it.
    pub bytes: Bytes,
    /// Content-Type.
    pub ctype: &'static str,
    /// Cache-Control
    pub cache: &'static str,
    /// `None` if the file could not be made (the bytes are sent instead).
    pub file: Option<mist_net::server::FileBody>,
}

impl Cached {
    /// A cached answer named `name` (the file name sendfile serves it from, when it has one).
    pub fn new(name: &str, ctype: &'static str, cache: &'static str, bytes: Bytes) -> Cached {
        let file =
            mist_net::server::FileBody::answer(name, Cached::response(ctype, cache), &bytes).ok();
        Cached {
            bytes,
            ctype,
            cache,
            file,
        }
    }

    fn response(ctype: &str, cache: &str) -> mist_net::http::Response {
        mist_net::http::Response::new(200)
            .header("Content-Type", ctype)
            .header("Cache-Control", cache)
    }

    /// Answers request `id` with this segment (from the stored answer when there is a file).
    pub fn respond(self, io: &mut mist_net::server::Io, id: ConnId) {
        match self.file {
            Some(f) => io.respond_file(id, f),
            None => io.respond(id, Cached::response(self.ctype, self.cache), self.bytes),
        }
    }
}

/// A reader of `stream` for a live segmented format (`connector` in the users table), placed
/// `back_ms` before the newest frame, in the DVR window, so that the first playlist already lists
/// recent segments.
pub fn open_reader(
    stream: &str,
    connector: &str,
    host: &str,
    back_ms: i64,
) -> Result<mist_shm::StreamReader, mist_shm::ShmError> {
    let mut reader = mist_shm::StreamReader::open(
        stream,
        mist_shm::ReaderInfo {
            connector: connector.into(),
            host: host.into(),
        },
    )?;
    let last = mist_shm::stream_status(stream)
        .map(|s| s.last_ms)
        .unwrap_or(0);
    reader.seek_ms(last.saturating_sub(back_ms));
    Ok(reader)
}

/// The answer while a stream has no timeline yet: wait for it, or not found once it ended.
pub fn not_started(ended: bool) -> Answer {
    if ended {
        Answer::NotFound("stream ended".into())
    } else {
        Answer::Wait
    }
}

/// One stream of one segmented format.
pub trait SegmentedStream: Send {
    /// Reads what is new from shared memory (never blocks; bounded work).
    fn poll(&mut self);
    /// The answer for the path below `/<kind>/<stream>/`; `host` is the request's Host header.
    fn answer(&mut self, rest: &str, host: &str) -> Answer;
    /// The stream ended (answers come from what is cached).
    fn ended(&self) -> bool;
}

/// A live segment growing past this many bytes is not kept (frozen timestamps never close a
/// segment): its frames are dropped, it is logged, and requests for it get 404.
pub const MAX_SEGMENT_BYTES: usize = 64 << 20;
/// Cached live segments of one stream (per HLS variant) hold at most this many bytes; the
/// oldest go first (a request for one gets 404, as past the playlist window).
pub const MAX_CACHE_BYTES: usize = 256 << 20;

/// Evicts the oldest entries of a segment cache (smallest `age` of their key: sequence number
/// or start time) while it holds more than `max` bytes, keeping at least the newest one.
pub fn bound_cache<K: Eq + Copy + std::hash::Hash>(
    cache: &mut std::collections::HashMap<K, Cached>,
    max: usize,
    age: impl Fn(&K) -> i64,
) {
    let mut bytes: usize = cache.values().map(|c| c.bytes.len()).sum();
    while bytes > max && cache.len() > 1 {
        let Some(oldest) = cache.keys().min_by_key(|k| age(*k)).copied() else {
            break;
        };
        if let Some(c) = cache.remove(&oldest) {
            bytes -= c.bytes.len();
        }
    }
}

/// Sets `flag` and logs that a live segment of `stream` outgrew [`MAX_SEGMENT_BYTES`] (once per
/// segment: the caller clears `flag` at the next cut).
pub fn log_oversize(stream: &str, what: &str, flag: &mut bool) {
    if !std::mem::replace(flag, true) {
        mist_core::warn!(
            "stream {stream}: {what} segment holds more than {MAX_SEGMENT_BYTES} bytes (timestamps not advancing?); dropping it"
        );
    }
}

/// A segmented stream with the requests waiting on it.
pub struct Slot {
    /// The stream's segmenter (HLS or CMAF).
    pub stream: Box<dyn SegmentedStream>,
    /// (connection, path below the stream, Host header, since)
    pub waiting: Vec<(ConnId, String, String, Instant)>,
    /// The last request for it: idle ones are closed.
    pub last_used: Instant,
}
