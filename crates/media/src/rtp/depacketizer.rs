//! One depacketiser type for every RTP encoding of [`RtpEncoding`].

use super::aac::{GenericDepacketizer, LatmDepacketizer};
use super::h26x::{Flavor, H26xDepacketizer};
use super::{Packet, RtpError, MAX_ACCESS_UNIT};
use crate::sdp::RtpEncoding;
use bytes::Bytes;
use std::collections::VecDeque;

/// One frame out of RTP, in the track's canonical form, at its RTP time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// RTP timestamp of the unit (the track's clock rate); [`super::Timeline`] maps it to ms.
    pub timestamp: u32,
    /// The unit's payload, in the form the track's muxers take (see the module docs of `rtp`).
    pub data: Bytes,
    /// A unit a decoder can start at (IDR/IRAP for video; every audio unit).
    pub keyframe: bool,
}

/// Turns in-order RTP packets of one track into access units.
///
/// Gaps in the sequence numbers are treated as loss: the unit they hit is dropped (and for video,
/// everything up to the next keyframe). Malformed payloads give an error and are otherwise
/// skipped; the depacketiser stays usable.
#[derive(Debug)]
pub struct Depacketizer(Inner);

#[derive(Debug)]
enum Inner {
    H26x(H26xDepacketizer),
    Generic(GenericDepacketizer),
    Latm(LatmDepacketizer),
    /// One packet = one frame (Opus, G.711).
    Whole(VecDeque<AccessUnit>),
    Mpa(MpaDepacketizer),
}

impl Depacketizer {
    /// A depacketiser for `encoding`, as the SDP of the track named it.
    pub fn new(encoding: RtpEncoding) -> Depacketizer {
        Depacketizer(match encoding {
            RtpEncoding::H264 => Inner::H26x(H26xDepacketizer::new(Flavor::H264)),
            RtpEncoding::Hevc => Inner::H26x(H26xDepacketizer::new(Flavor::Hevc)),
            RtpEncoding::AacGeneric {
                size_length,
                index_length,
                index_delta_length,
            } => Inner::Generic(GenericDepacketizer::new(
                size_length,
                index_length,
                index_delta_length,
            )),
            RtpEncoding::AacLatm => Inner::Latm(LatmDepacketizer::default()),
            RtpEncoding::Opus | RtpEncoding::Pcma | RtpEncoding::Pcmu => {
                Inner::Whole(VecDeque::new())
            }
            RtpEncoding::Mpa => Inner::Mpa(MpaDepacketizer::default()),
        })
    }

    /// Feeds the next packet (in sequence order).
    pub fn push(&mut self, pkt: &Packet) -> Result<(), RtpError> {
        match &mut self.0 {
            Inner::H26x(d) => d.push(pkt),
            Inner::Generic(d) => d.push(pkt),
            Inner::Latm(d) => d.push(pkt),
            Inner::Whole(q) => {
                if pkt.payload.is_empty() {
                    return Ok(());
                }
                if q.len() >= 256 {
                    q.pop_front();
                }
                q.push_back(AccessUnit {
                    timestamp: pkt.timestamp,
                    data: pkt.payload.clone(),
                    keyframe: true,
                });
                Ok(())
            }
            Inner::Mpa(d) => d.push(pkt),
        }
    }

    /// The next finished access unit.
    pub fn pull(&mut self) -> Option<AccessUnit> {
        match &mut self.0 {
            Inner::H26x(d) => d.pull(),
            Inner::Generic(d) => d.pull(),
            Inner::Latm(d) => d.pull(),
            Inner::Whole(q) => q.pop_front(),
            Inner::Mpa(d) => d.out.pop_front(),
        }
    }

    /// Ends a unit still waiting for its marker or a next timestamp (end of stream).
    pub fn flush(&mut self) {
        if let Inner::H26x(d) = &mut self.0 {
            d.flush()
        }
    }
}

/// RFC 2250 MPEG audio: a 4-byte header (16 bits zero, 16 bits fragment offset), then whole frames
/// or one fragment of a frame. Timestamps are on a 90 kHz clock.
///
/// Whatever a packet's bytes were used for (frames, or bytes before a syncword that are no
/// frame) leaves the buffer at once: each byte is scanned once, not once per later fragment.
#[derive(Debug, Default)]
struct MpaDepacketizer {
    /// The start of a frame still waiting for its other fragments (or less than a header).
    buf: Vec<u8>,
    /// Bytes of the current run of fragments dropped from the front of `buf` as no frame: with
    /// `buf.len()`, the fragment offset the next packet must have.
    skipped: usize,
    ts: u32,
    last_seq: Option<u16>,
    out: VecDeque<AccessUnit>,
}

impl MpaDepacketizer {
    fn push(&mut self, pkt: &Packet) -> Result<(), RtpError> {
        let p = &pkt.payload[..];
        if p.len() < 4 {
            return Err(RtpError::Malformed {
                what: "MPA RTP",
                detail: "no RFC 2250 header",
            });
        }
        let offset = u16::from_be_bytes([p[2], p[3]]) as usize;
        let gap = self
            .last_seq
            .is_some_and(|l| pkt.sequence != l.wrapping_add(1));
        self.last_seq = Some(pkt.sequence);
        if offset == 0 {
            self.buf.clear();
            self.skipped = 0;
            self.ts = pkt.timestamp;
        } else if gap || offset != self.buf.len() + self.skipped {
            // A fragment whose start we did not get.
            self.buf.clear();
            self.skipped = 0;
            return Ok(());
        }
        if self.buf.len() + p.len() > MAX_ACCESS_UNIT {
            self.buf.clear();
            return Err(RtpError::TooLarge {
                limit: MAX_ACCESS_UNIT,
            });
        }
        self.buf.extend_from_slice(&p[4..]);
        let (frames, rest) = crate::mp3::frames(&self.buf);
        let mut ts = self.ts;
        for (h, f) in &frames {
            if self.out.len() >= 256 {
                self.out.pop_front();
            }
            self.out.push_back(AccessUnit {
                timestamp: ts,
                data: Bytes::copy_from_slice(f),
                keyframe: true,
            });
            if h.rate > 0 {
                ts = ts.wrapping_add((h.samples as u64 * 90_000 / h.rate as u64) as u32);
            }
        }
        let used = self.buf.len() - rest.len();
        if frames.is_empty() {
            // No frame yet: what comes before a possible header is no frame whatever follows.
            self.skipped += used;
        } else {
            self.skipped = 0;
            self.ts = ts;
        }
        self.buf.drain(..used);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mpa(seq: u16, offset: u16, data: &[u8]) -> Packet {
        let mut payload = vec![0, 0];
        payload.extend_from_slice(&offset.to_be_bytes());
        payload.extend_from_slice(data);
        Packet {
            marker: false,
            payload_type: 14,
            sequence: seq,
            timestamp: 9000,
            ssrc: 1,
            csrc_count: 0,
            extension: None,
            payload: Bytes::from(payload),
        }
    }

    /// Fragments without a syncword leave nothing behind (a peer cannot make every packet rescan
    /// what came before), yet the fragment offsets still count them, and a frame after them in the
    /// same run comes out.
    #[test]
    fn mpa_bytes_without_a_frame_are_not_kept() {
        let mut d = MpaDepacketizer::default();
        let mut off = 0u16;
        for seq in 0..40u16 {
            d.push(&mpa(seq, off, &[0xFF; 1000])).unwrap();
            assert!(d.buf.len() < 4, "{} bytes kept", d.buf.len());
            off += 1000;
        }
        // 128 kbit/s, 44.1 kHz MPEG-1 layer III: 417 bytes.
        let mut frame = vec![0xFF, 0xFB, 0x90, 0x00];
        frame.resize(417, 0);
        d.push(&mpa(40, off, &frame)).unwrap();
        let au = d.out.pop_front().expect("the frame after the junk");
        assert_eq!(&au.data[..], &frame[..]);
        assert!(d.buf.is_empty());
        // A frame split in two fragments, the second at the offset of the first's length.
        d.push(&mpa(41, 0, &frame[..300])).unwrap();
        assert!(d.out.is_empty());
        d.push(&mpa(42, 300, &frame[300..])).unwrap();
        assert_eq!(&d.out.pop_front().unwrap().data[..], &frame[..]);
        // A fragment at the wrong offset is dropped, and so is what was waiting.
        d.push(&mpa(43, 0, &frame[..300])).unwrap();
        d.push(&mpa(44, 299, &frame[300..])).unwrap();
        assert!(d.out.is_empty() && d.buf.is_empty());
    }
}
