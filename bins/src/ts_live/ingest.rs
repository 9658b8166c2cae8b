//! Demuxed live frames to a stream in shared memory: the one [`crate::ingest::Ingest`] of every
//! publisher, in its owning form (this process is the stream's buffer and its writer, as
//! MistInBuffer plus a publisher would be), behind a time-bounded interleaver: frames are put
//! in decode-time order across tracks (a video PES ends a frame later than the audio next to
//! it) before they are written.

use crate::ingest::{Ingest, IngestError};
use mist_media::{Frame, Track};
use std::collections::VecDeque;
use std::time::Instant;

/// Frames held for interleaving at most.
const MAX_HELD: usize = 512;
/// Media time held for interleaving at most (a track that stopped does not stall the others).
const MAX_HELD_MS: i64 = 2_000;

/// Puts frames of several tracks in decode-time order, holding at most [`MAX_HELD`] frames or
/// [`MAX_HELD_MS`] of media (sans-IO).
#[derive(Default)]
pub struct Interleaver {
    queues: Vec<(u32, VecDeque<Frame>)>,
    held: usize,
}

impl Interleaver {
    /// Frames of track `id` are taken from now on.
    pub fn add_track(&mut self, id: u32) {
        if !self.queues.iter().any(|(t, _)| *t == id) {
            self.queues.push((id, VecDeque::new()));
        }
    }

    /// Queues a frame; false when its track was never added (the frame is dropped).
    pub fn push(&mut self, f: Frame) -> bool {
        let Some(q) = self.queues.iter_mut().find(|(id, _)| *id == f.track) else {
            return false;
        };
        q.1.push_back(f);
        self.held += 1;
        true
    }

    /// The next frame in decode order, once every track has one queued or the bounds are
    /// reached (`drain`: whatever is held).
    pub fn pop(&mut self, drain: bool) -> Option<Frame> {
        if self.held == 0 {
            return None;
        }
        let all = self.queues.iter().all(|(_, q)| !q.is_empty());
        let (lo, hi) = self
            .queues
            .iter()
            .filter_map(|(_, q)| Some((q.front()?.dts, q.back()?.dts)))
            .fold((i64::MAX, i64::MIN), |(a, b), (f, l)| (a.min(f), b.max(l)));
        if !(all || drain || self.held > MAX_HELD || hi.saturating_sub(lo) > MAX_HELD_MS) {
            return None;
        }
        let i = (0..self.queues.len())
            .filter(|&i| !self.queues[i].1.is_empty())
            .min_by_key(|&i| self.queues[i].1.front().map(|f| f.dts))?;
        let f = self.queues[i].1.pop_front()?;
        self.held -= 1;
        Some(f)
    }

    /// Forgets tracks and frames.
    pub fn clear(&mut self) {
        self.queues.clear();
        self.held = 0;
    }
}

/// A live stream this process owns and writes, through the interleaver.
pub struct LiveIngest {
    stream: String,
    dvr_ms: u64,
    idle_ms: u32,
    ingest: Option<Ingest>,
    order: Interleaver,
    /// Written by the streams this input ran before (the counts of the current one come from
    /// its [`Ingest`]).
    frames: u64,
    bytes: u64,
}

impl LiveIngest {
    /// A writer of `stream` opened at the first frame, keeping `dvr_ms` and ending after `idle_ms` without frames.
    pub fn new(stream: &str, dvr_ms: u64, idle_ms: u32) -> LiveIngest {
        LiveIngest {
            stream: stream.to_string(),
            dvr_ms,
            idle_ms,
            ingest: None,
            order: Interleaver::default(),
            frames: 0,
            bytes: 0,
        }
    }

    /// Whether a stream is up (frames came and it has not ended since).
    pub fn is_open(&self) -> bool {
        self.ingest.is_some()
    }

    /// Frames written (this stream and the ones before it).
    pub fn frames(&self) -> u64 {
        self.frames + self.ingest.as_ref().map_or(0, Ingest::frames)
    }

    /// Payload bytes written (this stream and the ones before it).
    pub fn bytes(&self) -> u64 {
        self.bytes + self.ingest.as_ref().map_or(0, Ingest::bytes)
    }

    /// Creates the stream (removing what a crashed earlier run left) with `tracks`.
    pub fn start(&mut self, tracks: &[Track]) -> Result<(), IngestError> {
        self.end();
        self.ingest = Some(Ingest::own(
            &self.stream,
            self.dvr_ms,
            self.idle_ms,
            Instant::now(),
        )?);
        for t in tracks {
            self.set_track(t);
        }
        Ok(())
    }

    /// Adds or updates a track (new init data mid-stream); a track shared memory cannot hold
    /// is skipped with a log line.
    pub fn set_track(&mut self, t: &Track) {
        let Some(ing) = &mut self.ingest else { return };
        match ing.set_track(t) {
            Ok(()) => self.order.add_track(t.id),
            Err(e) => mist_core::warn!(
                "stream {}: track {} ({}) skipped: {e}",
                self.stream,
                t.id,
                t.codec.mist_name()
            ),
        }
    }

    /// Queues a frame; writes what the interleaving releases. Err: the stream was taken away.
    pub fn push(&mut self, f: Frame) -> Result<(), IngestError> {
        if !self.order.push(f) {
            return Ok(()); // a track shared memory could not hold
        }
        self.release(false)
    }

    fn release(&mut self, drain: bool) -> Result<(), IngestError> {
        while let Some(f) = self.order.pop(drain) {
            if let Some(ing) = &mut self.ingest {
                ing.push(&f)?;
            }
        }
        Ok(())
    }

    /// Marks the writer alive (twice a second).
    pub fn heartbeat(&mut self) {
        if let Some(ing) = &mut self.ingest {
            // The input times its source out itself: only the heartbeat is wanted here.
            let _ = ing.tick(Instant::now());
        }
    }

    /// Somebody else ended the stream (the controller stopped it).
    pub fn ended_elsewhere(&self) -> bool {
        self.ingest.as_ref().is_some_and(Ingest::ended_elsewhere)
    }

    /// Viewers connected.
    pub fn viewers(&self) -> usize {
        self.ingest.as_ref().map_or(0, Ingest::viewers)
    }

    /// Writes what is held and ends the stream (viewers see it end; its files are removed).
    pub fn end(&mut self) {
        if self.ingest.is_some() {
            if let Err(e) = self.release(true) {
                mist_core::warn!("{e}");
            }
        }
        if let Some(mut ing) = self.ingest.take() {
            self.frames += ing.frames();
            self.bytes += ing.bytes();
            ing.unpublish();
        }
        self.order.clear();
    }
}

impl Drop for LiveIngest {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(track: u32, dts: i64) -> Frame {
        Frame {
            track,
            dts,
            pts_offset: 0,
            keyframe: false,
            data: bytes::Bytes::new(),
        }
    }

    #[test]
    fn interleaves_by_decode_time_within_bounds() {
        let mut il = Interleaver::default();
        il.add_track(1);
        il.add_track(2);
        assert!(il.push(frame(1, 0)));
        assert!(il.push(frame(1, 40)));
        assert!(il.pop(false).is_none(), "track 2 has nothing yet");
        assert!(il.push(frame(2, 10)));
        let order: Vec<_> = std::iter::from_fn(|| il.pop(false))
            .map(|f| (f.track, f.dts))
            .collect();
        assert_eq!(order, vec![(1, 0), (2, 10)]);
        // A track that stopped does not hold the others back for more than MAX_HELD_MS.
        assert!(il.push(frame(1, 40 + MAX_HELD_MS + 1)));
        assert_eq!(il.pop(false).map(|f| f.dts), Some(40));
        assert!(!il.push(frame(3, 0)), "unknown track");
        assert_eq!(il.pop(true).map(|f| f.dts), Some(40 + MAX_HELD_MS + 1));
        assert!(il.pop(true).is_none());
    }
}
