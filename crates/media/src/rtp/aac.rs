//! AAC in RTP: RFC 3640 (`mpeg4-generic`, AU headers) and RFC 6416 (`MP4A-LATM`, cpresent=0).

use super::{AccessUnit, Packet, RtpError, MAX_ACCESS_UNIT};
use crate::h264::BitReader;
use bytes::Bytes;
use std::collections::VecDeque;

/// Samples per AAC frame (the 960-sample variant is not used over RTP in practice).
const FRAME: u32 = 1024;

#[derive(Debug)]
pub(crate) struct GenericDepacketizer {
    size_length: u8,
    index_length: u8,
    index_delta_length: u8,
    /// A fragmented AU: (timestamp, announced size, bytes so far).
    frag: Option<(u32, usize, Vec<u8>)>,
    last_seq: Option<u16>,
    out: VecDeque<AccessUnit>,
}

impl GenericDepacketizer {
    pub(crate) fn new(size_length: u8, index_length: u8, index_delta_length: u8) -> Self {
        GenericDepacketizer {
            size_length,
            index_length,
            index_delta_length,
            frag: None,
            last_seq: None,
            out: VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, pkt: &Packet) -> Result<(), RtpError> {
        let mal = |detail| RtpError::Malformed {
            what: "RFC 3640 AAC",
            detail,
        };
        let gap = self
            .last_seq
            .is_some_and(|l| pkt.sequence != l.wrapping_add(1));
        self.last_seq = Some(pkt.sequence);
        if gap {
            self.frag = None;
        }
        let p = &pkt.payload[..];
        if p.len() < 2 {
            return Err(mal("no AU-headers-length"));
        }
        let header_bits = u16::from_be_bytes([p[0], p[1]]) as usize;
        let header_bytes = header_bits.div_ceil(8);
        if p.len() < 2 + header_bytes {
            return Err(mal("AU headers truncated"));
        }
        let mut r = BitReader::new(&p[2..2 + header_bytes]);
        let mut sizes = Vec::new();
        let mut used = 0;
        let per_first = self.size_length as usize + self.index_length as usize;
        let per_next = self.size_length as usize + self.index_delta_length as usize;
        let e = |_| mal("AU header truncated");
        while used < header_bits && sizes.len() < 256 {
            let per = if sizes.is_empty() {
                per_first
            } else {
                per_next
            };
            if per == 0 || used + per > header_bits {
                break;
            }
            let size = r.read_bits(self.size_length as u32).map_err(e)? as usize;
            let idx_bits = if sizes.is_empty() {
                self.index_length
            } else {
                self.index_delta_length
            };
            r.read_bits(idx_bits as u32).map_err(e)?;
            used += per;
            sizes.push(size);
        }
        let mut data = &p[2 + header_bytes..];
        if let Some((ts, size, mut buf)) = self.frag.take() {
            // Continuation of a fragmented AU: one header announcing the whole size.
            if ts == pkt.timestamp && sizes.len() == 1 && sizes[0] == size {
                buf.extend_from_slice(&data[..data.len().min(size.saturating_sub(buf.len()))]);
                if buf.len() >= size {
                    self.emit(ts, buf);
                } else {
                    self.frag = Some((ts, size, buf));
                }
                return Ok(());
            }
        }
        if sizes.len() == 1 && sizes[0] > data.len() {
            if sizes[0] > MAX_ACCESS_UNIT {
                return Err(RtpError::TooLarge {
                    limit: MAX_ACCESS_UNIT,
                });
            }
            self.frag = Some((pkt.timestamp, sizes[0], data.to_vec()));
            return Ok(());
        }
        for (i, size) in sizes.into_iter().enumerate() {
            if data.len() < size {
                return Err(mal("AU data shorter than its header says"));
            }
            let ts = pkt.timestamp.wrapping_add(i as u32 * FRAME);
            self.emit(ts, data[..size].to_vec());
            data = &data[size..];
        }
        Ok(())
    }

    fn emit(&mut self, timestamp: u32, data: Vec<u8>) {
        if self.out.len() >= 256 {
            self.out.pop_front();
        }
        self.out.push_back(AccessUnit {
            timestamp,
            data: Bytes::from(data),
            keyframe: true,
        });
    }

    pub(crate) fn pull(&mut self) -> Option<AccessUnit> {
        self.out.pop_front()
    }
}

/// Packetises one AAC access unit: one AU header of 13+3 bits, fragmented over several packets
/// when larger than the MTU (each fragment repeats the header with the whole size).
pub(crate) fn packetize_generic(au: &[u8], mtu: usize, out: &mut Vec<Vec<u8>>) {
    let size = au.len().min(8191) as u16;
    let header = [0x00, 0x10, (size >> 5) as u8, ((size & 0x1f) << 3) as u8];
    let chunk = mtu.max(8) - 4;
    for c in au[..size as usize].chunks(chunk.max(1)) {
        let mut p = Vec::with_capacity(4 + c.len());
        p.extend_from_slice(&header);
        p.extend_from_slice(c);
        out.push(p);
    }
    if au.is_empty() {
        out.push(header.to_vec());
    }
}

/// MP4A-LATM with `cpresent=0`: each packet (or run of packets up to the marker) holds
/// PayloadLengthInfo + PayloadMux for one or more subframes.
#[derive(Debug, Default)]
pub(crate) struct LatmDepacketizer {
    buf: Vec<u8>,
    ts: Option<u32>,
    last_seq: Option<u16>,
    broken: bool,
    out: VecDeque<AccessUnit>,
}

impl LatmDepacketizer {
    pub(crate) fn push(&mut self, pkt: &Packet) -> Result<(), RtpError> {
        if self
            .last_seq
            .is_some_and(|l| pkt.sequence != l.wrapping_add(1))
        {
            self.broken = !self.buf.is_empty();
        }
        self.last_seq = Some(pkt.sequence);
        if self.ts.is_some_and(|t| t != pkt.timestamp) {
            self.buf.clear();
            self.broken = false;
        }
        self.ts = Some(pkt.timestamp);
        if self.buf.len() + pkt.payload.len() > MAX_ACCESS_UNIT {
            self.buf.clear();
            return Err(RtpError::TooLarge {
                limit: MAX_ACCESS_UNIT,
            });
        }
        self.buf.extend_from_slice(&pkt.payload);
        if !pkt.marker {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.broken) {
            return Ok(());
        }
        let mut rest = &buf[..];
        let mut i = 0u32;
        while !rest.is_empty() && i < 64 {
            let mut len = 0usize;
            let mut k = 0;
            loop {
                let b = *rest.get(k).ok_or(RtpError::Malformed {
                    what: "LATM",
                    detail: "PayloadLengthInfo truncated",
                })?;
                len += b as usize;
                k += 1;
                if b != 255 {
                    break;
                }
            }
            if rest.len() < k + len {
                return Err(RtpError::Malformed {
                    what: "LATM",
                    detail: "PayloadMux shorter than its length",
                });
            }
            if self.out.len() >= 256 {
                self.out.pop_front();
            }
            self.out.push_back(AccessUnit {
                timestamp: pkt.timestamp.wrapping_add(i * FRAME),
                data: Bytes::copy_from_slice(&rest[k..k + len]),
                keyframe: true,
            });
            rest = &rest[k + len..];
            i += 1;
        }
        Ok(())
    }

    pub(crate) fn pull(&mut self) -> Option<AccessUnit> {
        self.out.pop_front()
    }
}
