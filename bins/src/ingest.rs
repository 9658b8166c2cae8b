//! `Ingest`: a publisher's path into shared memory, whatever the protocol it arrives by.
//!
//! Every connector or input that accepts media (RTMP publish, RTSP RECORD, MistInRTSP camera
//! pulls, MistInTS live sources, MistInHLS) does the same four things around its protocol, and
//! they live here so that every input follows the same rules:
//! 1. **Ask**: [`push_request`] is the question to the controller (asked off the loop with
//!    `mist_connector::ask`); [`admitted`] turns the verdict into the stream name to write to and
//!    its DVR window. Standalone (no controller), [`standalone`] admits any valid name. An input
//!    the controller started for its stream (MistInRTSP, MistInTS, MistInHLS) asks nothing.
//! 2. **Write**: [`Ingest::open`] (a publisher) or [`Ingest::own`] (an input that is also the
//!    stream's buffer) creates the stream's [`StreamWriter`]; [`Ingest::set_track`] and
//!    [`Ingest::push`] copy tracks and frames into shared memory (the one copy). A frame too
//!    large for a page, or one that finds the shared-memory file system full, is skipped with a
//!    log line (the stream goes on); any other write error means the stream was taken away.
//! 3. **Heartbeat**: [`Ingest::tick`] keeps the writer alive and says when the publisher has been
//!    silent for longer than its idle limit ([`PUBLISH_IDLE`] unless [`Ingest::with_idle`] set
//!    another; [`Ingest::touch`] counts as life).
//! 4. **Detach or close**: an explicit unpublish ([`Ingest::unpublish`]) ends the stream when
//!    standalone, and only gives up the writer role under a controller (the buffer process
//!    decides when the stream ends). A publisher that vanishes (dropped `Ingest`) always just
//!    detaches: a new publisher may take the name over and readers wait for it. An owning input
//!    ([`Ingest::own`]) ends the stream whenever it stops writing (its files are removed).

use mist_connector::ask::{Refusal, Verdict};
use mist_core::control::Request;
use mist_core::names::sanitize;
use mist_media::{Frame, Track, TrackKind};
use mist_shm::{ShmError, StreamBuffer, StreamWriter, WriterOptions};
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

/// Why a stream cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A write into the stream's shared memory failed (`op`: `set_track` or `push`).
    #[error("{stream}: {op}: {source}")]
    Write {
        /// The stream.
        stream: String,
        /// What was being done (create, push, …).
        op: &'static str,
        /// What shared memory said.
        source: ShmError,
    },
    /// An owning input found another process serving the stream.
    #[error("stream {stream} is served by another process (pid {pid})")]
    Served {
        /// The stream.
        stream: String,
        /// The process serving it.
        pid: u32,
    },
    /// An owning input found a live writer on the stream.
    #[error("stream {stream} already has a writer (pid {pid})")]
    HasWriter {
        /// The stream.
        stream: String,
        /// The writer's process.
        pid: u32,
    },
    /// The stream's shared memory could not be created.
    #[error("cannot create stream {stream}: {source}")]
    Create {
        /// The stream.
        stream: String,
        /// What shared memory said.
        source: ShmError,
    },
}

/// Why a publish or a play is not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAdmitted {
    /// The controller refused it, or could not be asked.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Standalone: the name holds control characters (they would inject lines into logs and
    /// trigger payloads) or has no base.
    #[error("invalid stream name")]
    InvalidName,
}

/// The stream to use and its DVR window (ms), or why not.
pub type Answer = Result<(String, u64), NotAdmitted>;

/// What a controller verdict on `asked` (a push or a play) means: the stream the controller
/// named (the sanitized name asked for when it named none) and its DVR window, or the refusal.
pub fn admitted(asked: &str, v: Verdict) -> Answer {
    match v {
        Verdict::Allow(r) if r.stream.is_empty() => Ok((sanitize(asked), dvr_ms(&r.config))),
        Verdict::Allow(r) => Ok((r.stream, dvr_ms(&r.config))),
        Verdict::Refuse(why) => Err(why.into()),
    }
}

/// The answer without a controller: any valid name, the default DVR window.
pub fn standalone(asked: &str) -> Answer {
    if !mist_core::names::is_valid(asked) {
        // Control characters (or no base): would inject lines into logs and triggers.
        return Err(NotAdmitted::InvalidName);
    }
    Ok((sanitize(asked), DEFAULT_DVR_MS))
}

/// Who decides when the stream ends.
enum Owner {
    /// A publisher: under a controller (`true`) the buffer process, else the publisher's
    /// unpublish.
    Publisher { controlled: bool },
    /// This process is the stream's buffer as well as its writer (an input).
    Buffer(StreamBuffer),
}

/// One publisher writing one stream.
pub struct Ingest {
    stream: String,
    writer: Option<StreamWriter>,
    owner: Owner,
    frames: u64,
    bytes: u64,
    /// Frames skipped (too large, or shared memory full).
    skipped: u64,
    last_rx: Instant,
    idle: Duration,
}

impl Ingest {
    /// A publisher: creates the stream's writer (live, with a DVR window of `dvr_ms`), or takes
    /// over a stream whose writer is gone.
    pub fn open(
        stream: &str,
        dvr_ms: u64,
        controlled: bool,
        now: Instant,
    ) -> Result<Ingest, ShmError> {
        let w = StreamWriter::create(stream, WriterOptions { live: true, dvr_ms })?;
        Ok(Ingest::with_writer(
            stream,
            w,
            Owner::Publisher { controlled },
            now,
        ))
    }

    /// An input that owns the stream: registers this process as its buffer (`idle_ms`: how
    /// long readers wait for a writer that went away), removes what a crashed earlier run left,
    /// and creates the writer. Ending or dropping it ends the stream.
    pub fn own(
        stream: &str,
        dvr_ms: u64,
        idle_ms: u32,
        now: Instant,
    ) -> Result<Ingest, IngestError> {
        let opts = WriterOptions { live: true, dvr_ms };
        let open = || {
            StreamBuffer::open(stream, opts.clone(), idle_ms).map_err(|e| match e {
                ShmError::WriterAlive(_, pid) => IngestError::Served {
                    stream: stream.into(),
                    pid,
                },
                source => IngestError::Create {
                    stream: stream.into(),
                    source,
                },
            })
        };
        let mut buf = open()?;
        let st = buf.status();
        if st.writer_alive {
            return Err(IngestError::HasWriter {
                stream: stream.into(),
                pid: st.writer_pid,
            });
        }
        if st.epoch != 0 || !st.tracks.is_empty() {
            let _ = buf.end();
            buf = open()?;
        }
        let w = StreamWriter::create(stream, opts).map_err(|source| IngestError::Create {
            stream: stream.into(),
            source,
        })?;
        Ok(Ingest::with_writer(stream, w, Owner::Buffer(buf), now))
    }

    fn with_writer(stream: &str, w: StreamWriter, owner: Owner, now: Instant) -> Ingest {
        Ingest {
            stream: stream.into(),
            writer: Some(w),
            owner,
            frames: 0,
            bytes: 0,
            skipped: 0,
            last_rx: now,
            idle: PUBLISH_IDLE,
        }
    }

    /// Another idle limit for [`Ingest::tick`] (an input's stream timeout).
    pub fn with_idle(mut self, idle: Duration) -> Ingest {
        self.idle = idle;
        self
    }

    /// The stream written to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Payload bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Still writing (not unpublished).
    pub fn is_open(&self) -> bool {
        self.writer.is_some()
    }

    /// The publisher sent something (for the idle rule).
    pub fn touch(&mut self, now: Instant) {
        self.last_rx = now;
    }

    /// When the publisher last sent something ([`Ingest::touch`], or the open).
    pub fn last_active(&self) -> Instant {
        self.last_rx
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
        w.set_track(t).map_err(|source| IngestError::Write {
            stream: stream.clone(),
            op: "set_track",
            source,
        })
    }

    /// Writes a frame. Ignored after an unpublish.
    pub fn push(&mut self, f: &Frame) -> Result<(), IngestError> {
        self.push_parts(f.track, f.dts, f.pts_offset, f.keyframe, &f.data)
    }

    /// [`Ingest::push`] from the parts of a frame (a depacketiser's access unit).
    pub fn push_parts(
        &mut self,
        track: u32,
        dts: i64,
        pts_offset: i32,
        keyframe: bool,
        data: &[u8],
    ) -> Result<(), IngestError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        match w.push_parts(track, dts, pts_offset, keyframe, data) {
            Ok(()) => {
                self.frames += 1;
                self.bytes += data.len() as u64;
                Ok(())
            }
            Err(e @ (ShmError::FrameTooLarge(_) | ShmError::Io { .. })) => {
                // Too large for a page, or a full tmpfs: this frame is lost, the stream goes on
                // (DVR eviction frees pages). Logged at the first and then every 1000th.
                if self.skipped.is_multiple_of(1000) {
                    mist_core::warn!(
                        "stream {}: frame of {} bytes (track {track}) skipped: {e} ({} skipped so far)",
                        self.stream,
                        data.len(),
                        self.skipped + 1
                    );
                }
                self.skipped += 1;
                Ok(())
            }
            Err(source) => Err(IngestError::Write {
                stream: self.stream.clone(),
                op: "push",
                source,
            }),
        }
    }

    /// About twice a second: keeps the writer alive. False when the publisher has sent nothing
    /// for its idle limit (drop it, or end the stream).
    pub fn tick(&mut self, now: Instant) -> bool {
        if let Some(w) = self.writer.as_mut() {
            w.heartbeat();
        }
        now.duration_since(self.last_rx) <= self.idle
    }

    /// Somebody else ended the stream (the controller stopped it): an owning input stops.
    pub fn ended_elsewhere(&self) -> bool {
        match &self.owner {
            Owner::Buffer(b) => b.status().ended,
            Owner::Publisher { .. } => false,
        }
    }

    /// Viewers connected (an owning input; 0 for a publisher).
    pub fn viewers(&self) -> usize {
        match &self.owner {
            Owner::Buffer(b) => b.viewers(),
            Owner::Publisher { .. } => 0,
        }
    }

    /// An explicit unpublish: standalone it ends the stream; under a controller the buffer
    /// process decides, so the writer only detaches; an owning input ends the stream and
    /// removes its files. Returns false if already unpublished.
    pub fn unpublish(&mut self) -> bool {
        let Some(w) = self.writer.take() else {
            return false;
        };
        match std::mem::replace(&mut self.owner, Owner::Publisher { controlled: true }) {
            Owner::Publisher { controlled: true } => w.detach(),
            Owner::Publisher { controlled: false } => w.close(),
            Owner::Buffer(buf) => {
                w.close();
                match buf.end() {
                    Ok(()) | Err(ShmError::NoStream(_)) => {}
                    Err(e) => mist_core::error!("ending stream {}: {e}", self.stream),
                }
            }
        }
        true
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if matches!(self.owner, Owner::Buffer(_)) {
            // The owner of the stream stops: the stream ends with it.
            self.unpublish();
        } else if let Some(w) = self.writer.take() {
            // A publisher that vanished: readers wait for a new writer.
            w.detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mist_core::control::Response;
    use mist_media::Codec;

    /// The library's test shared-memory directory (see [`crate::test_shm_dir`]).
    fn shm_dir() {
        crate::test_shm_dir();
    }

    fn ended(stream: &str) -> bool {
        mist_shm::stream_status(stream).map_or(true, |s| s.ended)
    }

    #[test]
    fn publishers_detach_or_close_and_owners_end() {
        shm_dir();
        let t0 = Instant::now();
        let track = Track::new(1, Codec::Aac);
        // Under a controller an unpublish only detaches: the stream goes on for a new publisher.
        let mut a = Ingest::open("ing_ctl", 1000, true, t0).unwrap();
        a.set_track(&track).unwrap();
        a.push_parts(1, 0, 0, true, b"abc").unwrap();
        assert_eq!((a.frames(), a.bytes()), (1, 3));
        // A frame too large for a page is skipped; the stream goes on.
        a.push_parts(1, 20, 0, true, &vec![0u8; 33 << 20]).unwrap();
        a.push_parts(1, 40, 0, true, b"de").unwrap();
        assert_eq!((a.frames(), a.bytes()), (2, 5));
        assert!(a.unpublish() && !a.unpublish());
        assert!(!ended("ing_ctl"));
        // Standalone, it ends the stream; a dropped publisher only detaches.
        let mut b = Ingest::open("ing_alone", 1000, false, t0).unwrap();
        b.set_track(&track).unwrap();
        assert!(b.unpublish());
        assert!(ended("ing_alone"));
        drop(Ingest::open("ing_gone", 1000, false, t0).unwrap());
        assert!(!ended("ing_gone"));
        // The idle rule: silent past the limit, alive again once touched.
        let mut c = Ingest::open("ing_gone", 1000, false, t0)
            .unwrap()
            .with_idle(Duration::from_secs(1));
        assert!(c.tick(t0 + Duration::from_millis(900)));
        assert!(!c.tick(t0 + Duration::from_secs(2)));
        c.touch(t0 + Duration::from_secs(2));
        assert!(c.tick(t0 + Duration::from_millis(2500)));
        // An owning input: nobody else may write its stream; dropping it ends the stream.
        let mut own = Ingest::own("ing_own", 1000, 500, t0).unwrap();
        own.set_track(&track).unwrap();
        own.push_parts(1, 0, 0, true, b"x").unwrap();
        assert!(!ended("ing_own") && !own.ended_elsewhere());
        assert!(matches!(
            Ingest::own("ing_own", 1000, 500, t0),
            Err(IngestError::HasWriter { .. })
        ));
        drop(own);
        assert!(ended("ing_own"));
        // A new owner starts afresh.
        let own = Ingest::own("ing_own", 1000, 500, t0).unwrap();
        assert_eq!(mist_shm::stream_status("ing_own").unwrap().tracks.len(), 0);
        drop(own);
    }

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
            admitted("x", Verdict::Refuse(Refusal::Controller("no".into()))),
            Err(NotAdmitted::Refused(Refusal::Controller("no".into())))
        );
        assert_eq!(standalone("bad\nname"), Err(NotAdmitted::InvalidName));
        assert_eq!(standalone("ok"), Ok(("ok".into(), DEFAULT_DVR_MS)));
    }
}
