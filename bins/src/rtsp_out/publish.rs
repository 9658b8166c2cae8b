//! RTSP publish (ANNOUNCE/RECORD over interleaved TCP): RTP of the announced tracks into a live
//! stream's shared-memory buffer.

use bytes::Bytes;
use mist_core::debug;
use mist_media::rtp::{rtcp, Depacketizer, Packet, ReorderBuffer, Timeline};
use mist_media::sdp::{RtpTrack, SessionDescription};
use mist_shm::{StreamWriter, WriterOptions};

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
        Ok(Publisher {
            stream: stream.to_string(),
            writer: Some(writer),
            inputs,
            base_wall: None,
            frames: 0,
            bad_packets: 0,
        })
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
            r.push(pkt);
            while let Some(p) = r.pop() {
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
            let ms = ms.max(inp.last_ms.unwrap_or(i64::MIN)).max(0);
            inp.last_ms = Some(ms);
            w.push(inp.id, ms, 0, au.keyframe, &au.data)
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
