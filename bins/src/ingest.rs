//! `Ingest`: a publisher's path into shared memory, whatever the protocol it arrives by.
//!
//! A connector that accepts media (RTMP publish today; RTSP RECORD, UDP and exec inputs next) does
//! the same four things around its protocol, and they live here so that every input follows the
//! same rules:
//! 1. **Ask**: [`push_request`] is the question to the controller (asked off the loop with
//!    `mist_connector::ask`); [`admitted`] turns the verdict into the stream name to write to and
//!    its DVR window. Standalone (no controller), [`standalone`] admits any valid name.
//! 2. **Write**: [`Ingest::open`] creates the stream's [`StreamWriter`]; [`Ingest::set_track`] and
//!    [`Ingest::push`] copy tracks and frames into shared memory (the one copy).
//! 3. **Heartbeat**: [`Ingest::tick`] keeps the writer alive and says when the publisher has been
//!    silent for longer than [`PUBLISH_IDLE`] (the connector then drops it).
//! 4. **Detach or close**: an explicit unpublish ([`Ingest::unpublish`]) ends the stream when
//!    standalone, and only gives up the writer role under a controller (the buffer process
//!    decides when the stream ends). A publisher that vanishes (dropped `Ingest`) always just
//!    detaches: a new publisher may take the name over and readers wait for it.

use mist_connector::ask::Verdict;
use mist_core::control::Request;
use mist_core::names::sanitize;
use mist_media::{Frame, Track, TrackKind};
use mist_shm::{ShmError, StreamWriter, WriterOptions};
use std::time::{Duration, Instant};

pub use crate::access::{dvr_ms, DEFAULT_DVR_MS};

/// A publisher that sends nothing for this long is dropped.
pub const PUBLISH_IDLE: Duration = Duration::from_secs(30);
/// Time limit of a push request: blocking push triggers (rewrite, STREAM_PUSH) may take up to
/// 15 s each.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(40);

/// The controller request for a push of `stream` (`app`: the push password part of the URL).
pub fn push_request(stream: &str, app: &str, host: &str, connector: &str, url: &str) -> Request {
    Request::Push {
        stream: stream.into(),
        app: app.into(),
        host: host.into(),
        connector: connector.into(),
        url: url.into(),
    }
}

/// A write into the stream's shared memory failed (`op`: `set_track` or `push`).
#[derive(Debug, thiserror::Error)]
#[error("{stream}: {op}: {source}")]
pub struct IngestError {
    pub stream: String,
    pub op: &'static str,
    pub source: mist_shm::ShmError,
}

/// The stream to use and its DVR window (ms), or why not.
pub type Answer = Result<(String, u64), String>;

/// What a controller verdict on `asked` (a push or a play) means: the stream the controller
/// named (the sanitized name asked for when it named none) and its DVR window, or the refusal.
pub fn admitted(asked: &str, v: Verdict) -> Answer {
    match v {
        Verdict::Allow(r) if r.stream.is_empty() => Ok((sanitize(asked), dvr_ms(&r.config))),
        Verdict::Allow(r) => Ok((r.stream, dvr_ms(&r.config))),
        Verdict::Refuse(why) => Err(why),
    }
}

/// The answer without a controller: any valid name, the default DVR window.
pub fn standalone(asked: &str) -> Answer {
    if !mist_core::names::is_valid(asked) {
        // Control characters (or no base): would inject lines into logs and triggers.
        return Err("invalid stream name".into());
    }
    Ok((sanitize(asked), DEFAULT_DVR_MS))
}

/// One publisher writing one stream.
pub struct Ingest {
    stream: String,
    writer: Option<StreamWriter>,
    /// Under a controller (unpublish detaches rather than ends).
    controlled: bool,
    frames: u64,
    last_rx: Instant,
}

impl Ingest {
    /// Creates the stream's writer (live, with a DVR window of `dvr_ms`).
    pub fn open(
        stream: &str,
        dvr_ms: u64,
        controlled: bool,
        now: Instant,
    ) -> Result<Ingest, ShmError> {
        let w = StreamWriter::create(stream, WriterOptions { live: true, dvr_ms })?;
        Ok(Ingest {
            stream: stream.into(),
            writer: Some(w),
            controlled,
            frames: 0,
            last_rx: now,
        })
    }

    /// The stream written to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Still writing (not unpublished).
    pub fn is_open(&self) -> bool {
        self.writer.is_some()
    }

    /// The publisher sent something (for the idle rule).
    pub fn touch(&mut self, now: Instant) {
        self.last_rx = now;
    }

    /// Adds or updates a track (logged). Ignored after an unpublish.
    pub fn set_track(&mut self, t: &Track) -> Result<(), IngestError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        let stream = &self.stream;
        match t.kind() {
            TrackKind::Video => mist_core::info!(
                "{stream}: track {} {} {}x{}",
                t.id,
                t.codec.mist_name(),
                t.width,
                t.height
            ),
            _ => mist_core::info!(
                "{stream}: track {} {} {} Hz {} ch",
                t.id,
                t.codec.mist_name(),
                t.rate,
                t.channels
            ),
        }
        w.set_track(t).map_err(|source| IngestError {
            stream: stream.clone(),
            op: "set_track",
            source,
        })
    }

    /// Writes a frame. Ignored after an unpublish.
    pub fn push(&mut self, f: &Frame) -> Result<(), IngestError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        self.frames += 1;
        w.push(f).map_err(|source| IngestError {
            stream: self.stream.clone(),
            op: "push",
            source,
        })
    }

    /// About twice a second: keeps the writer alive. False when the publisher has sent nothing
    /// for [`PUBLISH_IDLE`] (drop it).
    pub fn tick(&mut self, now: Instant) -> bool {
        if let Some(w) = self.writer.as_mut() {
            w.heartbeat();
        }
        now.duration_since(self.last_rx) <= PUBLISH_IDLE
    }

    /// An explicit unpublish: standalone it ends the stream; under a controller the buffer
    /// process decides, so the writer only detaches. Returns false if already unpublished.
    pub fn unpublish(&mut self) -> bool {
        let Some(w) = self.writer.take() else {
            return false;
        };
        if self.controlled {
            w.detach();
        } else {
            w.close();
        }
        true
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // A publisher that vanished: readers wait for a new writer.
        if let Some(w) = self.writer.take() {
            w.detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mist_core::control::Response;

    #[test]
    fn verdicts_name_the_stream() {
        let allow = |stream: &str, config: serde_json::Value| {
            Verdict::Allow(Response {
                ok: true,
                stream: stream.into(),
                error: String::new(),
                config: serde_json::from_value(config).unwrap_or_default(),
            })
        };
        assert_eq!(
            admitted("live+a", allow("", serde_json::json!({}))),
            Ok(("live+a".into(), DEFAULT_DVR_MS))
        );
        assert_eq!(
            admitted("x", allow("live+b", serde_json::json!({"DVR": "1234"}))),
            Ok(("live+b".into(), 1234))
        );
        assert_eq!(
            admitted("x", Verdict::Refuse("no".into())),
            Err("no".into())
        );
        assert!(standalone("bad\nname").is_err());
        assert_eq!(standalone("ok"), Ok(("ok".into(), DEFAULT_DVR_MS)));
    }
}
