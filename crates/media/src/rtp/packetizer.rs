//! Frames to RTP packets.

use super::h26x::{self, Flavor};
use super::{PacketBuilder, RtpError};
use crate::sdp::RtpEncoding;
use bytes::Bytes;

/// Turns frames of one track into RTP packets of at most `mtu` bytes (header included).
#[derive(Debug, Clone)]
pub struct Packetizer {
    encoding: RtpEncoding,
    mtu: usize,
    /// The stream's header fields and counters, public so a sender report can read them.
    pub builder: PacketBuilder,
}

impl Packetizer {
    /// `mtu` is clamped to 64..=65 000 bytes; 1 400 fits every path we meet.
    pub fn new(encoding: RtpEncoding, builder: PacketBuilder, mtu: usize) -> Packetizer {
        Packetizer {
            encoding,
            mtu: mtu.clamp(64, 65_000),
            builder,
        }
    }

    /// Packets of one frame (canonical form: 4-byte length-prefixed NAL units for H.264/HEVC, a
    /// raw access unit for AAC, one packet for Opus, MP3 frames, G.711 samples) at RTP time `ts`.
    pub fn packetize(
        &mut self,
        ts: u32,
        frame: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), RtpError> {
        let room = self.mtu - 12;
        let mut payloads = Vec::new();
        match self.encoding {
            RtpEncoding::H264 => h26x::packetize(Flavor::H264, frame, room, &mut payloads),
            RtpEncoding::Hevc => h26x::packetize(Flavor::Hevc, frame, room, &mut payloads),
            RtpEncoding::AacGeneric { .. } => {
                if frame.len() > 8191 {
                    return Err(RtpError::TooLarge { limit: 8191 });
                }
                super::aac::packetize_generic(frame, room, &mut payloads)
            }
            RtpEncoding::AacLatm => {
                let mut p = vec![255u8; frame.len() / 255];
                p.push((frame.len() % 255) as u8);
                p.extend_from_slice(frame);
                payloads.extend(p.chunks(room).map(<[u8]>::to_vec));
            }
            RtpEncoding::Opus => {
                if frame.len() > room {
                    return Err(RtpError::TooLarge { limit: room });
                }
                payloads.push(frame.to_vec());
            }
            RtpEncoding::Mpa => {
                for (i, c) in frame.chunks(room - 4).enumerate() {
                    let off = (i * (room - 4)).min(u16::MAX as usize) as u16;
                    let mut p = vec![0, 0];
                    p.extend_from_slice(&off.to_be_bytes());
                    p.extend_from_slice(c);
                    payloads.push(p);
                }
            }
            RtpEncoding::Pcma | RtpEncoding::Pcmu => {
                // Split at the MTU; each part gets its own time (one sample per byte and channel).
                for (i, c) in frame.chunks(room).enumerate() {
                    let t = ts.wrapping_add((i * room) as u32);
                    out.push(self.builder.build(t, false, &[c]));
                }
                return Ok(());
            }
        }
        let n = payloads.len();
        for (i, p) in payloads.iter().enumerate() {
            out.push(self.builder.build(ts, i + 1 == n, &[p]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Depacketizer, Packet};
    use super::*;

    fn round_trip(enc: RtpEncoding, frames: &[Vec<u8>], mtu: usize) -> Vec<Vec<u8>> {
        let mut p = Packetizer::new(enc, PacketBuilder::new(96, 1, 65530), mtu);
        let mut d = Depacketizer::new(enc);
        let mut got = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let mut out = Vec::new();
            p.packetize(i as u32 * 3000, f, &mut out).unwrap();
            for pkt in out {
                assert!(pkt.len() <= mtu.max(64));
                d.push(&Packet::parse(pkt).unwrap()).unwrap();
            }
            while let Some(au) = d.pull() {
                got.push(au.data.to_vec());
            }
        }
        got
    }

    fn au(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn h264_single_stap_fu() {
        let big: Vec<u8> = std::iter::once(0x65)
            .chain((0..5000).map(|i| i as u8))
            .collect();
        let frames = vec![
            au(&[&[0x67, 1, 2, 3], &[0x68, 4], &big]),
            au(&[&[0x41, 9, 9, 9]]),
        ];
        assert_eq!(round_trip(RtpEncoding::H264, &frames, 200), frames);
    }

    #[test]
    fn hevc_ap_fu() {
        let big: Vec<u8> = [0x26, 0x01]
            .into_iter()
            .chain((0..3000).map(|i| (i * 7) as u8))
            .collect();
        let frames = vec![
            au(&[&[0x40, 1, 5], &[0x42, 1, 6], &[0x44, 1, 7], &big]),
            au(&[&[0x02, 1, 8]]),
        ];
        assert_eq!(round_trip(RtpEncoding::Hevc, &frames, 300), frames);
    }

    #[test]
    fn aac_latm_mpa_opus() {
        let frames: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8; 300 + i * 200]).collect();
        let generic = RtpEncoding::AacGeneric {
            size_length: 13,
            index_length: 3,
            index_delta_length: 3,
        };
        assert_eq!(round_trip(generic, &frames, 400), frames);
        assert_eq!(round_trip(RtpEncoding::AacLatm, &frames, 400), frames);
        assert_eq!(
            round_trip(RtpEncoding::Opus, &frames[..2], 1400),
            frames[..2].to_vec()
        );
        // Two MPEG-1 layer III frames of 417 bytes (128 kbit/s, 44.1 kHz), one fragmented.
        let mut f = vec![0xFF, 0xFB, 0x90, 0x00];
        f.resize(417, 0x11);
        let mp3 = vec![f.clone(), f];
        assert_eq!(round_trip(RtpEncoding::Mpa, &mp3, 200), mp3);
    }

    #[test]
    fn loss_drops_until_keyframe() {
        let mut p = Packetizer::new(RtpEncoding::H264, PacketBuilder::new(96, 1, 0), 100);
        let mut d = Depacketizer::new(RtpEncoding::H264);
        let frames = [
            au(&[&[0x65; 300]]),
            au(&[&[0x41; 300]]),
            au(&[&[0x41; 30]]),
            au(&[&[0x65; 30]]),
        ];
        let mut got = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let mut out = Vec::new();
            p.packetize(i as u32, f, &mut out).unwrap();
            for (k, pkt) in out.into_iter().enumerate() {
                if i == 1 && k == 1 {
                    continue; // lose a middle fragment of the second frame
                }
                let _ = d.push(&Packet::parse(pkt).unwrap());
            }
            while let Some(a) = d.pull() {
                got.push(a.timestamp);
            }
        }
        assert_eq!(got, vec![0, 3]);
    }

    #[test]
    fn starts_at_a_keyframe() {
        let frames = vec![au(&[&[0x41, 1]]), au(&[&[0x65, 2]]), au(&[&[0x41, 3]])];
        assert_eq!(
            round_trip(RtpEncoding::H264, &frames, 1400),
            frames[1..].to_vec()
        );
    }

    #[test]
    fn hostile_payloads() {
        let mut d = Depacketizer::new(RtpEncoding::H264);
        let pkt = |payload: &'static [u8], seq| Packet {
            marker: true,
            payload_type: 96,
            sequence: seq,
            timestamp: 0,
            ssrc: 0,
            csrc_count: 0,
            extension: None,
            payload: Bytes::from_static(payload),
        };
        assert!(d.push(&pkt(&[24, 0, 9, 1], 1)).is_err());
        assert!(d.push(&pkt(&[28], 2)).is_err());
        assert!(d.push(&pkt(&[26, 1, 1], 3)).is_err());
        assert!(d.push(&pkt(&[], 4)).is_err());
        let mut a = Depacketizer::new(RtpEncoding::AacGeneric {
            size_length: 13,
            index_length: 3,
            index_delta_length: 3,
        });
        assert!(a.push(&pkt(&[0xff, 0xff, 1], 1)).is_err());
        assert!(a.push(&pkt(&[0x00, 0x10, 0xff, 0xf8, 1], 2)).is_ok()); // fragment start, never completed
        let mut m = Depacketizer::new(RtpEncoding::Mpa);
        assert!(m.push(&pkt(&[0, 0], 1)).is_err());
        assert!(m.push(&pkt(&[0, 0, 0xff, 0xff, 1], 2)).is_ok());
        assert_eq!(m.pull(), None);
    }
}
