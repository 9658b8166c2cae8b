//! HLS with MPEG-TS segments (`/hls/$/…`): one reader, one segment timeline and one TS muxer per
//! stream; every segment is muxed once, cached by sequence number while it is in the playlist
//! window, and served to every viewer as the same `Bytes`.
//!
//! URLs: `/hls/$/index.m3u8` (master), `/hls/$/<tracks>/index.m3u8` (media playlist, `<tracks>` =
//! track ids joined by `_`), `/hls/$/<tracks>/<seq>_<start>.ts` (segments).

use super::mux::{main_track, select, Format};
use super::segmented::{Answer, SegmentedStream};
use bytes::Bytes;
use mist_media::hls::{master_playlist, media_playlist, MasterOptions, MediaOptions};
use mist_media::mpegts::{Muxer, MuxerOptions};
use mist_media::segment::{Timeline, TimelineConfig, Window};
use mist_media::Track;
use mist_shm::{ReadEvent, ReaderInfo, StreamReader};
use std::collections::HashMap;

/// Segment duration target (segments start at keyframes, so they hold whole GOPs).
const TARGET_MS: u32 = 2000;
/// Complete segments kept in the playlists (and in the cache).
const WINDOW: usize = 10;
/// Complete segments needed before a live playlist is served.
const MIN_SEGMENTS: usize = 2;
pub struct HlsStream {
    reader: StreamReader,
    tracks: Vec<Track>,
    ids: String,
    tl: Option<Timeline>,
    mux: Option<Muxer>,
    cur: Vec<u8>,
    cache: HashMap<u64, Bytes>,
    ended: bool,
    recheck: bool,
}

impl HlsStream {
    pub fn open(stream: &str, host: &str) -> Result<HlsStream, mist_shm::ShmError> {
        let mut reader = StreamReader::open(
            stream,
            ReaderInfo {
                connector: "HLS".into(),
                host: host.into(),
            },
        )?;
        // Start in the DVR window so the first playlist already lists recent segments.
        let last = mist_shm::stream_status(stream)
            .map(|s| s.last_ms)
            .unwrap_or(0);
        reader.seek_ms(last.saturating_sub((TARGET_MS as i64) * (WINDOW as i64 + 1)));
        Ok(HlsStream {
            reader,
            tracks: Vec::new(),
            ids: String::new(),
            tl: None,
            mux: None,
            cur: Vec::new(),
            cache: HashMap::new(),
            ended: false,
            recheck: false,
        })
    }

    fn reset(&mut self) {
        self.tl = None;
        self.mux = None;
        self.cur.clear();
        self.cache.clear();
        self.tracks.clear();
    }

    /// Reads what is new: cuts, muxes and caches segments. Bounded work per call.
    fn read(&mut self) {
        if self.ended {
            return;
        }
        for _ in 0..5000 {
            match self.reader.next() {
                ReadEvent::Frame(f) => {
                    if std::mem::take(&mut self.recheck)
                        && select(&self.reader.tracks(), Format::Ts, None, None) != self.tracks
                    {
                        self.reset();
                    }
                    if self.tl.is_none() {
                        let sel = select(&self.reader.tracks(), Format::Ts, None, None);
                        let main = main_track(&sel);
                        if sel.is_empty() || Some(f.track) != main || !f.keyframe {
                            continue;
                        }
                        let Ok(m) = Muxer::new(&sel, MuxerOptions::default()) else {
                            continue;
                        };
                        let cfg = TimelineConfig {
                            target_ms: TARGET_MS,
                            audio_target_ms: TARGET_MS,
                            window: Window::Segments(WINDOW),
                            ..TimelineConfig::default()
                        };
                        self.tl = Some(Timeline::new(cfg, &sel));
                        self.ids = sel
                            .iter()
                            .map(|t| t.id.to_string())
                            .collect::<Vec<_>>()
                            .join("_");
                        self.tracks = sel;
                        self.mux = Some(m);
                    }
                    if !self.tracks.iter().any(|t| t.id == f.track) {
                        continue;
                    }
                    let (Some(tl), Some(mux)) = (self.tl.as_mut(), self.mux.as_mut()) else {
                        continue;
                    };
                    if let Some(done) = tl.push_frame_seq(&f) {
                        mux.flush(&mut self.cur);
                        self.cache
                            .insert(done, Bytes::from(std::mem::take(&mut self.cur)));
                        self.cache.retain(|s, _| tl.get(*s).is_some());
                    }
                    let _ = mux.write_frame(&f, &mut self.cur);
                }
                ReadEvent::TracksChanged | ReadEvent::Restarted => {
                    // Judged at the next frame: a new writer sets its tracks one by one first.
                    self.recheck = self.tl.is_some();
                }
                ReadEvent::Pending => break,
                ReadEvent::Ended => {
                    if let (Some(tl), Some(mux)) = (self.tl.as_mut(), self.mux.as_mut()) {
                        let open = tl.open_segment().map(|s| s.seq);
                        tl.finish();
                        mux.flush(&mut self.cur);
                        if let Some(seq) = open {
                            self.cache
                                .insert(seq, Bytes::from(std::mem::take(&mut self.cur)));
                        }
                    }
                    self.ended = true;
                    break;
                }
            }
        }
    }

    /// The answer for the path below `/hls/$/`.
    fn respond(&mut self, rest: &str) -> Answer {
        let Some(tl) = self.tl.as_ref() else {
            return if self.ended {
                Answer::NotFound("stream ended".into())
            } else {
                Answer::Wait
            };
        };
        let ready = self.ended || tl.len() >= MIN_SEGMENTS;
        const PLAYLIST: &str = "application/vnd.apple.mpegurl";
        if rest == "index.m3u8" || rest.is_empty() {
            if !ready {
                return Answer::Wait;
            }
            let body = master_playlist(&self.tracks, tl, &MasterOptions::ts());
            return Answer::Ready {
                ctype: PLAYLIST,
                cache: "no-cache",
                body: Bytes::from(body),
            };
        }
        let Some((ids, file)) = rest.split_once('/') else {
            return Answer::NotFound("no such playlist".into());
        };
        if ids != self.ids {
            return Answer::NotFound("no such track combination".into());
        }
        if file == "index.m3u8" {
            if !ready {
                return Answer::Wait;
            }
            let ids: Vec<u32> = self.tracks.iter().map(|t| t.id).collect();
            let body = media_playlist(tl, &MediaOptions::ts(&ids));
            return Answer::Ready {
                ctype: PLAYLIST,
                cache: "no-cache",
                body: Bytes::from(body),
            };
        }
        let Some(seq) = file
            .strip_suffix(".ts")
            .and_then(|f| f.split('_').next())
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return Answer::NotFound("no such segment".into());
        };
        if let Some(b) = self.cache.get(&seq) {
            return Answer::Ready {
                ctype: "video/mp2t",
                cache: "public, max-age=60",
                body: b.clone(),
            };
        }
        // The segment being muxed (or the next one) is worth a short wait.
        let open = tl.open_segment().map(|s| s.seq);
        if !self.ended && open.is_some_and(|o| seq == o || seq == o + 1) {
            return Answer::Wait;
        }
        Answer::NotFound("segment not available".into())
    }
}

impl SegmentedStream for HlsStream {
    fn poll(&mut self) {
        self.read()
    }
    fn answer(&mut self, rest: &str) -> Answer {
        self.respond(rest)
    }
    fn ended(&self) -> bool {
        self.ended
    }
}

/// `Timeline::push_frame` with the completed segment's sequence number.
trait PushSeq {
    fn push_frame_seq(&mut self, f: &mist_media::Frame) -> Option<u64>;
}

impl PushSeq for Timeline {
    fn push_frame_seq(&mut self, f: &mist_media::Frame) -> Option<u64> {
        let size = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
        self.push(f.track, f.dts, f.keyframe, size)
    }
}
