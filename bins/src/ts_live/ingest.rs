//! The thin adapter from demuxed live frames to a stream in shared memory: this process is the
//! stream's buffer (owner) and its writer, as MistInBuffer plus a publisher would be. Frames are
//! interleaved by decode time across tracks (a video PES ends a frame later than the audio next
//! to it) before they are written.

use mist_media::{Frame, Track};
use mist_shm::{ShmError, StreamBuffer, StreamWriter, WriterOptions};
use std::collections::VecDeque;

/// Frames held for interleaving at most.
const MAX_HELD: usize = 512;
/// Media time held for interleaving at most (a track that stopped does not stall the others).
const MAX_HELD_MS: i64 = 2_000;

/// A live stream this process owns and writes.
pub struct Ingest {
    stream: String,
    dvr_ms: u64,
    idle_ms: u32,
    open: Option<(StreamBuffer, StreamWriter)>,
    queues: Vec<(u32, VecDeque<Frame>)>,
    held: usize,
    pub frames: u64,
    pub bytes: u64,
}

impl Ingest {
    pub fn new(stream: &str, dvr_ms: u64, idle_ms: u32) -> Ingest {
        Ingest {
            stream: stream.to_string(),
            dvr_ms,
            idle_ms,
            open: None,
            queues: Vec::new(),
            held: 0,
            frames: 0,
            bytes: 0,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Creates the stream (removing what a crashed earlier run left) with `tracks`.
    pub fn start(&mut self, tracks: &[Track]) -> Result<(), String> {
        let opts = WriterOptions {
            live: true,
            dvr_ms: self.dvr_ms,
        };
        let open = || {
            StreamBuffer::open(&self.stream, opts.clone(), self.idle_ms).map_err(|e| match e {
                ShmError::WriterAlive(_, pid) => {
                    format!(
                        "stream {} is served by another process (pid {pid})",
                        self.stream
                    )
                }
                e => format!("cannot create stream {}: {e}", self.stream),
            })
        };
        let mut buf = open()?;
        let st = buf.status();
        if st.writer_alive {
            return Err(format!(
                "stream {} already has a writer (pid {})",
                self.stream, st.writer_pid
            ));
        }
        if st.epoch != 0 || !st.tracks.is_empty() {
            let _ = buf.end();
            buf = open()?;
        }
        let w = StreamWriter::create(&self.stream, opts)
            .map_err(|e| format!("cannot write stream {}: {e}", self.stream))?;
        self.open = Some((buf, w));
        self.queues.clear();
        self.held = 0;
        for t in tracks {
            self.set_track(t);
        }
        Ok(())
    }

    /// Adds or updates a track (new init data mid-stream).
    pub fn set_track(&mut self, t: &Track) {
        let Some((_, w)) = &mut self.open else { return };
        match w.set_track(t) {
            Ok(()) => {
                if !self.queues.iter().any(|(id, _)| *id == t.id) {
                    self.queues.push((t.id, VecDeque::new()));
                }
            }
            Err(e) => mist_core::warn!(
                "stream {}: track {} ({}) skipped: {e}",
                self.stream,
                t.id,
                t.codec.mist_name()
            ),
        }
    }

    /// Queues a frame; writes what the interleaving releases. Err: the stream was taken away.
    pub fn push(&mut self, f: Frame) -> Result<(), String> {
        let Some(q) = self.queues.iter_mut().find(|(id, _)| *id == f.track) else {
            return Ok(()); // a track shared memory could not hold
        };
        q.1.push_back(f);
        self.held += 1;
        self.release(false)
    }

    fn release(&mut self, drain: bool) -> Result<(), String> {
        loop {
            let all = self.queues.iter().all(|(_, q)| !q.is_empty());
            let (lo, hi) = self
                .queues
                .iter()
                .filter_map(|(_, q)| Some((q.front()?.dts, q.back()?.dts)))
                .fold((i64::MAX, i64::MIN), |(a, b), (f, l)| (a.min(f), b.max(l)));
            if self.held == 0
                || !(all || drain || self.held > MAX_HELD || hi.saturating_sub(lo) > MAX_HELD_MS)
            {
                return Ok(());
            }
            let Some(i) = (0..self.queues.len())
                .filter(|&i| !self.queues[i].1.is_empty())
                .min_by_key(|&i| self.queues[i].1.front().map(|f| f.dts))
            else {
                return Ok(());
            };
            let Some(f) = self.queues[i].1.pop_front() else {
                return Ok(());
            };
            self.held -= 1;
            let Some((_, w)) = &mut self.open else {
                return Ok(());
            };
            match w.push(&f) {
                Ok(()) => {
                    self.frames += 1;
                    self.bytes += f.data.len() as u64;
                }
                Err(ShmError::FrameTooLarge(n)) => mist_core::warn!(
                    "stream {}: frame of {n} bytes (track {}) too large, skipped",
                    self.stream,
                    f.track
                ),
                Err(e @ ShmError::Io { .. }) => {
                    // A full tmpfs: drop this frame, keep the stream (DVR eviction frees pages).
                    mist_core::warn!("stream {}: frame not stored: {e}", self.stream)
                }
                Err(e) => return Err(format!("stream {} taken away: {e}", self.stream)),
            }
        }
    }

    /// Marks the writer alive (twice a second).
    pub fn heartbeat(&mut self) {
        if let Some((_, w)) = &mut self.open {
            w.heartbeat();
        }
    }

    /// Somebody else ended the stream (the controller stopped it).
    pub fn ended_elsewhere(&self) -> bool {
        self.open.as_ref().is_some_and(|(b, _)| b.status().ended)
    }

    /// Viewers connected.
    pub fn viewers(&self) -> usize {
        self.open.as_ref().map_or(0, |(b, _)| b.viewers())
    }

    /// Writes what is held and ends the stream (viewers see it end; its files are removed).
    pub fn end(&mut self) {
        let _ = self.release(true);
        if let Some((buf, w)) = self.open.take() {
            w.close();
            match buf.end() {
                Ok(()) | Err(ShmError::NoStream(_)) => {}
                Err(e) => mist_core::error!("ending stream {}: {e}", self.stream),
            }
        }
        self.queues.clear();
        self.held = 0;
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.end();
    }
}
