//! RTSP publish (ANNOUNCE/RECORD over interleaved TCP): RTP of the announced tracks into a live
//! stream's shared-memory buffer.

use bytes::Bytes;
use mist_core::debug;
use mist_media::rtp::{rtcp, Depacketizer, Packet, ReorderBuffer, Timeline};
use mist_media::sdp::{RtpTrack, SessionDescription};
use mist_shm::{StreamWriter, WriterOptions};
use std::time::Instant;

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
    last_ms: Option<i64>,
    /// UDP only: packets put back in order (up to [`REORDER`] held).
    reorder: Option<ReorderBuffer>,
}

/// Packets a UDP track holds to repair reordering; a gap is given up once this many wait.
const REORDER: usize = 64;

/// One publishing connection's writer and depacketisers.
pub struct Publisher {
    pub stream: String,
    writer: Option<StreamWriter>,
    inputs: Vec<Input>,
    /// Wallclock (Unix ms) of media time 0, from the first sender report used.
    base_wall: Option<u64>,
    pub frames: u64,
    pub bad_packets: u64,
    /// Added to every media time: where a resumed source ([`Publisher::resume`]) continues.
    offset_ms: i64,
    /// The latest media time written.
    max_ms: i64,
    /// When the last frame was written (or the publisher made).
    pub last_frame: Instant,
    /// The clock of the UDP reorder buffers.
    created: Instant,
}

impl Publisher {
    /// Takes the stream's writer role and announces the tracks.
    pub fn new(
        stream: &str,
        dvr_ms: u64,
        tracks: &[(usize, RtpTrack)],
    ) -> Result<Publisher, String> {
        let mut writer = StreamWriter::create(stream, WriterOptions { live: true, dvr_ms })
            .map_err(|e| e.to_string())?;
        let inputs = make_inputs(&mut writer, tracks)?;
        Ok(Publisher {
            stream: stream.to_string(),
            writer: Some(writer),
            inputs,
            base_wall: None,
            frames: 0,
            bad_packets: 0,
            offset_ms: 0,
            max_ms: 0,
            last_frame: Instant::now(),
            created: Instant::now(),
        })
    }

    /// The source is back (a new RTSP session, with new RTP clocks and maybe new parameter
    /// sets): the stream goes on without ending. The tracks are set again, depacketisers start
    /// over, and media time continues from the last frame plus the wall time since. Fails when
    /// the source now has other tracks (the caller then ends this stream and starts another).
    pub fn resume(&mut self, tracks: &[(usize, RtpTrack)]) -> Result<(), String> {
        let mut old: Vec<u32> = self.inputs.iter().map(|i| i.id).collect();
        let mut new: Vec<u32> = tracks.iter().map(|t| t.1.track.id).collect();
        old.sort_unstable();
        new.sort_unstable();
        if old != new {
            return Err(format!("{}: the source's tracks changed", self.stream));
        }
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| format!("{}: stream closed", self.stream))?;
        self.inputs = make_inputs(w, tracks)?;
        let gap = self.last_frame.elapsed().as_millis().min(3_600_000) as i64;
        self.offset_ms = self.max_ms + gap.max(1);
        self.base_wall = None;
        Ok(())
    }

    /// Whether media section `index` was announced with a track we take.
    pub fn has_track(&self, index: usize) -> bool {
        self.inputs.iter().any(|i| i.index == index)
    }

    /// One RTP or RTCP packet of media section `index` (`udp`: it may come out of order).
    /// Malformed packets are counted and skipped; an error means the stream cannot be written
    /// any more.
    pub fn packet(
        &mut self,
        index: usize,
        is_rtcp: bool,
        data: Bytes,
        udp: bool,
    ) -> Result<(), String> {
        let Some(inp) = self.inputs.iter_mut().find(|i| i.index == index) else {
            return Ok(());
        };
        if is_rtcp {
            if let Ok(list) = rtcp::parse(&data) {
                for p in list {
                    if let rtcp::RtcpPacket::SenderReport(sr) = p {
                        inp.timeline.sender_report(sr.ntp, sr.rtp_time);
                    }
                }
            }
            return Ok(());
        }
        let pkt = match Packet::parse(data) {
            Ok(p) => p,
            Err(e) => {
                self.bad_packets += 1;
                debug!("{}: bad RTP packet: {e}", self.stream);
                return Ok(());
            }
        };
        let mut ready = Vec::new();
        if udp {
            let r = inp
                .reorder
                .get_or_insert_with(|| ReorderBuffer::new(REORDER));
            // A gap waits for its packet up to REORDER packets or 500 ms, whichever first.
            let now_ms = self.created.elapsed().as_millis() as u64;
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
                debug!("{}: bad RTP payload: {e}", self.stream);
            }
        }
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        while let Some(au) = inp.depack.pull() {
            let rel = inp.timeline.millis(au.timestamp);
            // Sender reports put all tracks on one clock; without them each starts at 0.
            let ms = match inp.timeline.wallclock(au.timestamp) {
                Some(wall) => wall as i64 - *self.base_wall.get_or_insert(wall) as i64,
                None => rel,
            };
            let ms = (ms.max(0) + self.offset_ms).max(inp.last_ms.unwrap_or(i64::MIN));
            inp.last_ms = Some(ms);
            self.max_ms = self.max_ms.max(ms);
            self.last_frame = Instant::now();
            w.push_parts(inp.id, ms, 0, au.keyframe, &au.data)
                .map_err(|e| format!("{}: {e}", self.stream))?;
            self.frames += 1;
        }
        Ok(())
    }

    pub fn heartbeat(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            w.heartbeat();
        }
    }

    /// The publisher left: under a controller the buffer process decides when the stream ends;
    /// standalone it ends now.
    pub fn end(mut self, controlled: bool) {
        if let Some(w) = self.writer.take() {
            if controlled {
                w.detach();
            } else {
                w.close();
            }
        }
    }
}

fn make_inputs(
    writer: &mut StreamWriter,
    tracks: &[(usize, RtpTrack)],
) -> Result<Vec<Input>, String> {
    let mut inputs = Vec::new();
    for (index, t) in tracks {
        writer.set_track(&t.track).map_err(|e| e.to_string())?;
        inputs.push(Input {
            index: *index,
            id: t.track.id,
            depack: Depacketizer::new(t.encoding),
            timeline: Timeline::new(t.clock_rate),
            last_ms: None,
            reorder: None,
        });
    }
    Ok(inputs)
}
