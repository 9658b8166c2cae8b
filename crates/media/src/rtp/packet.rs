//! The RTP fixed header (RFC 3550 section 5.1).

use super::RtpError;
use bytes::{BufMut, Bytes, BytesMut};

/// A parsed RTP packet; `payload` shares the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Set on the last packet of a video frame (RFC 6184/7798), so a frame is known complete
    /// without waiting for the next timestamp.
    pub marker: bool,
    /// Which format of the SDP the payload is in.
    pub payload_type: u8,
    /// Wraps at 65535; [`super::seq_diff`] compares two across the wrap.
    pub sequence: u16,
    /// Media time in the track's RTP clock, from a random origin.
    pub timestamp: u32,
    /// The source: one per sender and track; a change means the sender restarted.
    pub ssrc: u32,
    /// CSRCs listed (they are skipped: mixers are not supported).
    pub csrc_count: u8,
    /// The header extension (profile id, data), if present; not interpreted.
    pub extension: Option<(u16, Bytes)>,
    /// What follows the header, without padding.
    pub payload: Bytes,
}

impl Packet {
    /// Parses a packet. CSRCs are skipped, padding removed; a packet whose padding or extension
    /// length points outside it is refused.
    pub fn parse(data: Bytes) -> Result<Packet, RtpError> {
        if data.len() < 12 {
            return Err(RtpError::Truncated);
        }
        let b0 = data[0];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padding = b0 & 0x20 != 0;
        let has_ext = b0 & 0x10 != 0;
        let cc = b0 & 0x0f;
        let marker = data[1] & 0x80 != 0;
        let payload_type = data[1] & 0x7f;
        let sequence = u16::from_be_bytes([data[2], data[3]]);
        let timestamp = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let mut pos = 12 + 4 * cc as usize;
        if data.len() < pos {
            return Err(RtpError::Truncated);
        }
        let mut extension = None;
        if has_ext {
            if data.len() < pos + 4 {
                return Err(RtpError::Truncated);
            }
            let profile = u16::from_be_bytes([data[pos], data[pos + 1]]);
            let words = u16::from_be_bytes([data[pos + 2], data[pos + 3]]) as usize;
            let end = pos + 4 + words * 4;
            if data.len() < end {
                return Err(RtpError::Truncated);
            }
            extension = Some((profile, data.slice(pos + 4..end)));
            pos = end;
        }
        let mut end = data.len();
        if padding {
            let pad = data[end - 1] as usize;
            if pad == 0 || end - pos < pad {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        Ok(Packet {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrc_count: cc,
            extension,
            payload: data.slice(pos..end),
        })
    }

    /// Whether a datagram looks like RTCP rather than RTP (RFC 5761 section 4: payload types
    /// 72..=76 with the marker bit are RTCP packet types 200..=204).
    pub fn is_rtcp(data: &[u8]) -> bool {
        data.len() >= 2 && (192..=223).contains(&data[1])
    }
}

/// Builds packets of one stream: fixed SSRC and payload type, consecutive sequence numbers.
#[derive(Debug, Clone)]
pub struct PacketBuilder {
    /// Put into every packet.
    pub payload_type: u8,
    /// Put into every packet; a sender picks it at random (RFC 3550), so a restart reads as a
    /// new source.
    pub ssrc: u32,
    /// The sequence number of the next packet.
    pub sequence: u16,
    /// Packets and payload bytes sent (for RTCP sender reports).
    pub packets: u32,
    /// Payload bytes sent (headers excluded, as RFC 3550 counts them).
    pub octets: u32,
}

impl PacketBuilder {
    /// A builder whose first packet carries `first_sequence` (random for a new stream, RFC 3550
    /// section 5.1, so a known-plaintext start cannot be assumed).
    pub fn new(payload_type: u8, ssrc: u32, first_sequence: u16) -> PacketBuilder {
        PacketBuilder {
            payload_type: payload_type & 0x7f,
            ssrc,
            sequence: first_sequence,
            packets: 0,
            octets: 0,
        }
    }

    /// One packet with `payload` parts concatenated after the header.
    pub fn build(&mut self, timestamp: u32, marker: bool, payload: &[&[u8]]) -> Bytes {
        let len: usize = payload.iter().map(|p| p.len()).sum();
        let mut b = BytesMut::with_capacity(12 + len);
        b.put_u8(0x80);
        b.put_u8(self.payload_type | if marker { 0x80 } else { 0 });
        b.put_u16(self.sequence);
        b.put_u32(timestamp);
        b.put_u32(self.ssrc);
        for p in payload {
            b.put_slice(p);
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(len as u32);
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_parse_and_hostile() {
        let mut b = PacketBuilder::new(96, 0x1234, 65535);
        let p = b.build(90000, true, &[b"ab", b"c"]);
        let q = Packet::parse(p.clone()).unwrap();
        assert_eq!(
            (q.marker, q.payload_type, q.sequence, q.timestamp, q.ssrc),
            (true, 96, 65535, 90000, 0x1234)
        );
        assert_eq!(&q.payload[..], b"abc");
        assert_eq!(b.sequence, 0);
        // Extension whose length lies, padding longer than the packet, CSRCs past the end.
        let mut x = p.to_vec();
        x[0] |= 0x10;
        assert_eq!(
            Packet::parse(Bytes::from(x.clone())),
            Err(RtpError::Truncated)
        );
        x.extend_from_slice(&[0xbe, 0xde, 0, 0]);
        let mut y = x[..12].to_vec();
        y.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff, 1, 2]);
        assert_eq!(Packet::parse(Bytes::from(y)), Err(RtpError::Truncated));
        let mut z = p.to_vec();
        z[0] |= 0x20;
        *z.last_mut().unwrap() = 200;
        assert_eq!(Packet::parse(Bytes::from(z)), Err(RtpError::BadPadding));
        let mut c = p.to_vec();
        c[0] |= 0x0f;
        assert_eq!(Packet::parse(Bytes::from(c)), Err(RtpError::Truncated));
        assert!(Packet::parse(Bytes::from_static(&[0x40; 12])).is_err());
    }
}
