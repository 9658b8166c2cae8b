//! RTCP (RFC 3550 section 6): sender and receiver reports; other packet types are skipped.

use super::RtpError;
use bytes::{BufMut, BytesMut};

/// One report block (reception statistics about one source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source the statistics are about.
    pub ssrc: u32,
    /// Packets lost since the previous report, in 1/256 (RFC 3550 section 6.4.1).
    pub fraction_lost: u8,
    /// 24-bit signed cumulative loss.
    pub cumulative_lost: i32,
    /// Highest sequence number received, extended with the wrap count in the upper 16 bits.
    pub highest_sequence: u32,
    /// Interarrival jitter, in RTP clock units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP time of the last sender report received (0: none yet).
    pub last_sr: u32,
    /// Time since that sender report, in 1/65536 s: with `last_sr`, the sender can compute the
    /// round trip.
    pub delay_since_last_sr: u32,
}

/// A sender report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// The sender.
    pub ssrc: u32,
    /// NTP timestamp (seconds since 1900 << 32 | fraction).
    pub ntp: u64,
    /// The RTP time of the same instant as `ntp`: how a receiver maps RTP time to wall time and
    /// synchronises tracks.
    pub rtp_time: u32,
    /// Packets sent so far.
    pub packets: u32,
    /// Payload bytes sent so far.
    pub octets: u32,
    /// What the sender itself received (empty for a pure sender).
    pub reports: Vec<ReportBlock>,
}

/// A receiver report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// The receiver.
    pub ssrc: u32,
    /// One block per source it receives.
    pub reports: Vec<ReportBlock>,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// Sent by a source that sends media: carries its RTP-to-NTP clock mapping.
    SenderReport(SenderReport),
    /// Sent by a receiver that sends nothing else.
    ReceiverReport(ReceiverReport),
    /// `BYE` with the SSRCs leaving.
    Bye(Vec<u32>),
    /// Any other type (SDES, APP, feedback …), by packet type.
    Other(u8),
}

/// Parses a compound RTCP datagram. Every packet's length must fit; at most 32 packets are read.
pub fn parse(data: &[u8]) -> Result<Vec<RtcpPacket>, RtpError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && out.len() < 32 {
        if rest.len() < 4 {
            return Err(RtpError::Truncated);
        }
        let v = rest[0] >> 6;
        if v != 2 {
            return Err(RtpError::BadVersion(v));
        }
        let count = (rest[0] & 0x1f) as usize;
        let pt = rest[1];
        let len = (u16::from_be_bytes([rest[2], rest[3]]) as usize + 1) * 4;
        if rest.len() < len {
            return Err(RtpError::Truncated);
        }
        let mut body = &rest[4..len];
        if rest[0] & 0x20 != 0 {
            let pad = *body.last().ok_or(RtpError::BadPadding)? as usize;
            if pad == 0 || pad > body.len() {
                return Err(RtpError::BadPadding);
            }
            body = &body[..body.len() - pad];
        }
        rest = &rest[len..];
        let u32at = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let blocks = |b: &[u8]| -> Result<Vec<ReportBlock>, RtpError> {
            if b.len() < count * 24 {
                return Err(RtpError::Truncated);
            }
            Ok((0..count)
                .map(|i| {
                    let r = &b[i * 24..i * 24 + 24];
                    let lost = (u32at(r, 4) & 0x00ff_ffff) as i32;
                    ReportBlock {
                        ssrc: u32at(r, 0),
                        fraction_lost: r[4],
                        cumulative_lost: (lost << 8) >> 8,
                        highest_sequence: u32at(r, 8),
                        jitter: u32at(r, 12),
                        last_sr: u32at(r, 16),
                        delay_since_last_sr: u32at(r, 20),
                    }
                })
                .collect())
        };
        out.push(match pt {
            200 => {
                if body.len() < 24 {
                    return Err(RtpError::Truncated);
                }
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: u32at(body, 0),
                    ntp: (u32at(body, 4) as u64) << 32 | u32at(body, 8) as u64,
                    rtp_time: u32at(body, 12),
                    packets: u32at(body, 16),
                    octets: u32at(body, 20),
                    reports: blocks(&body[24..])?,
                })
            }
            201 => {
                if body.len() < 4 {
                    return Err(RtpError::Truncated);
                }
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: u32at(body, 0),
                    reports: blocks(&body[4..])?,
                })
            }
            203 => {
                if body.len() < count * 4 {
                    return Err(RtpError::Truncated);
                }
                RtcpPacket::Bye((0..count).map(|i| u32at(body, i * 4)).collect())
            }
            other => RtcpPacket::Other(other),
        });
    }
    Ok(out)
}

fn put_blocks(b: &mut BytesMut, reports: &[ReportBlock]) {
    for r in reports.iter().take(31) {
        b.put_u32(r.ssrc);
        b.put_u32((r.fraction_lost as u32) << 24 | (r.cumulative_lost as u32 & 0x00ff_ffff));
        b.put_u32(r.highest_sequence);
        b.put_u32(r.jitter);
        b.put_u32(r.last_sr);
        b.put_u32(r.delay_since_last_sr);
    }
}

impl SenderReport {
    /// The SR packet (report blocks beyond 31 are left out).
    pub fn build(&self) -> Vec<u8> {
        let n = self.reports.len().min(31);
        let mut b = BytesMut::with_capacity(28 + n * 24);
        b.put_u8(0x80 | n as u8);
        b.put_u8(200);
        b.put_u16((6 + n * 6) as u16);
        b.put_u32(self.ssrc);
        b.put_u64(self.ntp);
        b.put_u32(self.rtp_time);
        b.put_u32(self.packets);
        b.put_u32(self.octets);
        put_blocks(&mut b, &self.reports);
        b.to_vec()
    }
}

impl ReceiverReport {
    /// The report as one RTCP packet (at most 31 blocks: the count field has 5 bits).
    pub fn build(&self) -> Vec<u8> {
        let n = self.reports.len().min(31);
        let mut b = BytesMut::with_capacity(8 + n * 24);
        b.put_u8(0x80 | n as u8);
        b.put_u8(201);
        b.put_u16((1 + n * 6) as u16);
        b.put_u32(self.ssrc);
        put_blocks(&mut b, &self.reports);
        b.to_vec()
    }
}

/// An SDES packet with one CNAME chunk, to follow a report in a compound packet (RFC 3550
/// requires it).
pub fn sdes_cname(ssrc: u32, cname: &str) -> Vec<u8> {
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let mut body = Vec::with_capacity(8 + name.len());
    body.extend_from_slice(&ssrc.to_be_bytes());
    body.push(1);
    body.push(name.len() as u8);
    body.extend_from_slice(name);
    body.push(0);
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let mut out = vec![0x81, 202];
    out.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// NTP time (RFC 5905 64-bit format) of a Unix time in microseconds.
pub fn ntp_from_unix_micros(us: u64) -> u64 {
    let secs = us / 1_000_000 + 2_208_988_800;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    secs << 32 | frac
}

/// Unix time in milliseconds of an NTP time (saturating at 0 for times before 1970).
pub fn unix_millis_from_ntp(ntp: u64) -> u64 {
    let secs = (ntp >> 32).saturating_sub(2_208_988_800);
    let frac_ms = (((ntp & 0xffff_ffff) * 1000) + (1 << 31)) >> 32;
    secs * 1000 + frac_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sr_rr_round_trip_and_hostile() {
        let sr = SenderReport {
            ssrc: 7,
            ntp: ntp_from_unix_micros(1_700_000_000_123_000),
            rtp_time: 12345,
            packets: 10,
            octets: 1000,
            reports: vec![ReportBlock {
                ssrc: 9,
                cumulative_lost: -3,
                fraction_lost: 12,
                ..Default::default()
            }],
        };
        let rr = ReceiverReport {
            ssrc: 8,
            reports: vec![],
        };
        let mut compound = sr.build();
        compound.extend(sdes_cname(7, "mist"));
        compound.extend(rr.build());
        let p = parse(&compound).unwrap();
        assert_eq!(p[0], RtcpPacket::SenderReport(sr.clone()));
        assert_eq!(p[1], RtcpPacket::Other(202));
        assert_eq!(p[2], RtcpPacket::ReceiverReport(rr));
        assert_eq!(unix_millis_from_ntp(sr.ntp), 1_700_000_000_123);
        let mut lie = sr.build();
        lie[3] = 200;
        assert_eq!(parse(&lie), Err(RtpError::Truncated));
        let mut blocks = sr.build();
        blocks[0] = 0x9f;
        assert_eq!(parse(&blocks), Err(RtpError::Truncated));
        assert!(parse(&[0x80, 200, 0]).is_err());
    }
}
