//! RTSP publishers (ANNOUNCE/RECORD over interleaved TCP or UDP, and MistInRTSP camera pulls):
//! RTP of the announced tracks, depacketised, into a live stream's shared-memory buffer through
//! the one [`Ingest`] every publisher uses. Sender reports map RTP times to one wallclock
//! timeline; reception counts give RTCP receiver reports.

use crate::ingest::{Ingest, IngestError};
use bytes::Bytes;
use mist_core::debug;
use mist_media::rtp::{rtcp, Depacketizer, Packet, Reception, ReorderBuffer, Timeline};
use mist_media::sdp::{RtpTrack, SessionDescription};
use std::time::{Duration, Instant};

/// The tracks of an announced SDP we can take, by media-section index (track id = index + 1).
pub fn announced_tracks(sdp: &[u8]) -> Vec<(usize, RtpTrack)> {
    let Ok(s) = SessionDescription::parse(sdp) else {
        return Vec::new();
    };
    s.media
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.rtp_track(i as u32 + 1).ok().map(|t| (i, t)))
        .collect()
}

struct Input {
    index: usize,
    id: u32,
    depack: Depacketizer,
    timeline: Timeline,
    /// Counts for RTCP receiver reports.
    reception: Reception,
    last_ms: Option<i64>,
    /// UDP only: packets put back in order (up to [`REORDER`] held).
    reorder: Option<ReorderBuffer>,
}

/// Packets a UDP track holds to repair reordering; a gap is given up once this many wait.
const REORDER: usize = 64;

/// Why an RTSP publisher (RECORD or a camera pull) cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The stream's writer could not be created.
    #[error("{stream}: {source}")]
    Open {
        /// The stream.
        stream: String,
        /// What shared memory said.
        source: mist_shm::ShmError,
    },
    /// Writing into the stream failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// A source that came back announced other tracks.
    #[error("{0}: the source's tracks changed")]
    TracksChanged(String),
    /// The stream was ended (unpublished) before.
    #[error("{0}: stream closed")]
    Closed(String),
}

/// One RTSP publisher's depacketisers in front of its [`Ingest`] (the writer, heartbeat and
/// detach/close rules every publisher shares).
pub struct Publisher {
    ingest: Ingest,
    inputs: Vec<Input>,
    /// Wallclock (Unix ms) of media time 0, from the first sender report used.
    base_wall: Option<u64>,
    /// RTP packets that could not be depacketised (counted for the input's health, not fatal).
    pub bad_packets: u64,
    /// Added to every media time: where a resumed source ([`Publisher::resume`]) continues.
    offset_ms: i64,
    /// The latest media time written.
    max_ms: i64,
    /// The clock of the UDP reorder buffers and of the reception statistics.
    created: Instant,
    /// Our SSRC in receiver reports.
    ssrc: u32,
}

impl Publisher {
    /// Takes the stream's writer role (see [`Ingest::open`]; `controlled`: a buffer process
    /// decides when the stream ends) and announces the tracks. `idle`: no frame for this long
    /// makes [`Publisher::tick`] say so.
    pub fn new(
        stream: &str,
        dvr_ms: u64,
        controlled: bool,
        idle: Duration,
        tracks: &[(usize, RtpTrack)],
        now: Instant,
    ) -> Result<Publisher, PublishError> {
        let mut ingest = Ingest::open(stream, dvr_ms, controlled, now)
            .map_err(|source| PublishError::Open {
                stream: stream.into(),
                source,
            })?
            .with_idle(idle);
        let inputs = make_inputs(&mut ingest, tracks)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let ssrc = (nanos ^ std::process::id().rotate_left(16)).wrapping_mul(0x9e37_79b9) | 1;
        Ok(Publisher {
            ingest,
            inputs,
            base_wall: None,
            bad_packets: 0,
            offset_ms: 0,
            max_ms: 0,
            created: now,
            ssrc,
        })
    }

    /// The stream written to.
    pub fn stream(&self) -> &str {
        self.ingest.stream()
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.ingest.frames()
    }

    /// The source is back (a new RTSP session, with new RTP clocks and maybe new parameter
    /// sets): the stream goes on without ending. The tracks are set again, depacketisers start
    /// over, and media time continues from the last frame plus the wall time since. Fails when
    /// the source now has other tracks (the caller then ends this stream and starts another).
    pub fn resume(
        &mut self,
        tracks: &[(usize, RtpTrack)],
        now: Instant,
    ) -> Result<(), PublishError> {
        let mut old: Vec<u32> = self.inputs.iter().map(|i| i.id).collect();
        let mut new: Vec<u32> = tracks.iter().map(|t| t.1.track.id).collect();
        old.sort_unstable();
        new.sort_unstable();
        if old != new {
            return Err(PublishError::TracksChanged(self.stream().into()));
        }
        if !self.ingest.is_open() {
            return Err(PublishError::Closed(self.stream().into()));
        }
        self.inputs = make_inputs(&mut self.ingest, tracks)?;
        let gap = now
            .saturating_duration_since(self.ingest.last_active())
            .as_millis()
            .min(3_600_000) as i64;
        self.offset_ms = self.max_ms + gap.max(1);
        self.base_wall = None;
        Ok(())
    }

    /// Whether media section `index` was announced with a track we take.
    pub fn has_track(&self, index: usize) -> bool {
        self.inputs.iter().any(|i| i.index == index)
    }

    fn micros(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.created).as_micros() as u64
    }

    /// One RTP or RTCP packet of media section `index` (`udp`: it may come out of order),
    /// arrived at `now`. Malformed packets are counted and skipped; an error means the stream
    /// cannot be written any more.
    pub fn packet(
        &mut self,
        index: usize,
        is_rtcp: bool,
        data: Bytes,
        udp: bool,
        now: Instant,
    ) -> Result<(), PublishError> {
        let now_us = self.micros(now);
        let Some(inp) = self.inputs.iter_mut().find(|i| i.index == index) else {
            return Ok(());
        };
        if is_rtcp {
            if let Ok(list) = rtcp::parse(&data) {
                for p in list {
                    if let rtcp::RtcpPacket::SenderReport(sr) = p {
                        inp.timeline.sender_report(sr.ntp, sr.rtp_time);
                        inp.reception.sender_report(sr.ntp, now_us);
                    }
                }
            }
            return Ok(());
        }
        let pkt = match Packet::parse(data) {
            Ok(p) => p,
            Err(e) => {
                self.bad_packets += 1;
                debug!("{}: bad RTP packet: {e}", self.ingest.stream());
                return Ok(());
            }
        };
        inp.reception
            .packet(pkt.ssrc, pkt.sequence, pkt.timestamp, now_us);
        let mut ready = Vec::new();
        if udp {
            let r = inp
                .reorder
                .get_or_insert_with(|| ReorderBuffer::new(REORDER));
            // A gap waits for its packet up to REORDER packets or 500 ms, whichever first.
            let now_ms = now_us / 1000;
            r.push_at(pkt, now_ms);
            while let Some(p) = r.pop_at(now_ms) {
                ready.push(p);
            }
        } else {
            ready.push(pkt);
        }
        for pkt in &ready {
            if let Err(e) = inp.depack.push(pkt) {
                self.bad_packets += 1;
                debug!("{}: bad RTP payload: {e}", self.ingest.stream());
            }
        }
        while let Some(au) = inp.depack.pull() {
            let rel = inp.timeline.millis(au.timestamp);
            // Sender reports put all tracks on one clock, which continues the times given before
            // the first report; without them each track starts at 0.
            let ms = match inp.timeline.wallclock(au.timestamp) {
                Some(wall) => {
                    wall as i64
                        - *self
                            .base_wall
                            .get_or_insert(wall.saturating_sub(rel.max(0) as u64))
                            as i64
                }
                None => rel,
            };
            let ms = (ms.max(0) + self.offset_ms).max(inp.last_ms.unwrap_or(i64::MIN));
            inp.last_ms = Some(ms);
            self.max_ms = self.max_ms.max(ms);
            self.ingest.touch(now);
            self.ingest
                .push_parts(inp.id, ms, 0, au.keyframe, &au.data)?;
        }
        Ok(())
    }

    /// Keeps the writer alive (call about once a second); false once no frame came for the
    /// idle limit given to [`Publisher::new`].
    pub fn tick(&mut self, now: Instant) -> bool {
        self.ingest.tick(now)
    }

    /// RTCP receiver reports (RFC 3550 6.4.2) at `now`: one compound packet (RR + SDES CNAME)
    /// per media section that has received RTP, with its index.
    pub fn receiver_reports(&mut self, now: Instant) -> Vec<(usize, Vec<u8>)> {
        let now_us = self.micros(now);
        let ssrc = self.ssrc;
        self.inputs
            .iter_mut()
            .filter_map(|inp| {
                let block = inp.reception.report(now_us)?;
                let mut p = rtcp::ReceiverReport {
                    ssrc,
                    reports: vec![block],
                }
                .build();
                p.extend(rtcp::sdes_cname(ssrc, "mist-rs"));
                Some((inp.index, p))
            })
            .collect()
    }

    /// The publisher left: under a controller the buffer process decides when the stream ends;
    /// standalone it ends now ([`Ingest::unpublish`]).
    pub fn end(mut self) {
        self.ingest.unpublish();
    }
}

fn make_inputs(
    ingest: &mut Ingest,
    tracks: &[(usize, RtpTrack)],
) -> Result<Vec<Input>, IngestError> {
    let mut inputs = Vec::new();
    for (index, t) in tracks {
        ingest.set_track(&t.track)?;
        inputs.push(Input {
            index: *index,
            id: t.track.id,
            depack: Depacketizer::new(t.encoding),
            timeline: Timeline::new(t.clock_rate),
            reception: Reception::new(t.clock_rate),
            last_ms: None,
            reorder: None,
        });
    }
    Ok(inputs)
}
