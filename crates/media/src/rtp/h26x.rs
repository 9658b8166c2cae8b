//! H.264 (RFC 6184, non-interleaved mode: single NAL, STAP-A, FU-A) and HEVC (RFC 7798 without
//! DONL: single NAL, AP, FU) depacketising and packetising.

use super::{seq_diff, AccessUnit, Packet, RtpError, MAX_ACCESS_UNIT};
use bytes::Bytes;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    H264,
    Hevc,
}

impl Flavor {
    fn header_len(self) -> usize {
        match self {
            Flavor::H264 => 1,
            Flavor::Hevc => 2,
        }
    }
    fn nal_type(self, nal: &[u8]) -> u8 {
        match self {
            Flavor::H264 => nal[0] & 0x1f,
            Flavor::Hevc => (nal[0] >> 1) & 0x3f,
        }
    }
    fn is_key(self, t: u8) -> bool {
        match self {
            Flavor::H264 => t == 5,
            Flavor::Hevc => (16..=23).contains(&t),
        }
    }
    fn aggregate(self) -> u8 {
        match self {
            Flavor::H264 => 24,
            Flavor::Hevc => 48,
        }
    }
    fn fragment(self) -> u8 {
        match self {
            Flavor::H264 => 28,
            Flavor::Hevc => 49,
        }
    }
    fn what(self) -> &'static str {
        match self {
            Flavor::H264 => "H.264 RTP",
            Flavor::Hevc => "HEVC RTP",
        }
    }
}

/// Reassembles access units: NAL units of one RTP timestamp, ended by the marker bit or by a
/// packet of a new timestamp. A loss inside a unit drops that unit and every following one until
/// a keyframe (a decoder cannot use them anyway); so are the units before the first keyframe
/// (a camera joined mid-GOP). Nothing is requested from the sender: the next keyframe is waited for.
#[derive(Debug)]
pub(crate) struct H26xDepacketizer {
    flavor: Flavor,
    /// The unit being assembled: 4-byte length-prefixed NAL units.
    au: Vec<u8>,
    au_ts: Option<u32>,
    au_key: bool,
    au_broken: bool,
    /// A fragmented NAL unit being assembled (header included).
    fu: Option<Vec<u8>>,
    last_seq: Option<u16>,
    wait_key: bool,
    out: VecDeque<AccessUnit>,
    /// Units dropped because of loss or while waiting for a keyframe.
    pub dropped: u64,
}

impl H26xDepacketizer {
    pub(crate) fn new(flavor: Flavor) -> Self {
        H26xDepacketizer {
            flavor,
            au: Vec::new(),
            au_ts: None,
            au_key: false,
            au_broken: false,
            fu: None,
            last_seq: None,
            wait_key: true,
            out: VecDeque::new(),
            dropped: 0,
        }
    }

    fn finish(&mut self) {
        let ts = self.au_ts.take();
        if self.au.is_empty() && !self.au_broken {
            return;
        }
        let data = std::mem::take(&mut self.au);
        let key = std::mem::take(&mut self.au_key);
        let broken = std::mem::take(&mut self.au_broken);
        self.fu = None;
        if broken {
            self.wait_key = true;
            self.dropped += 1;
            return;
        }
        if self.wait_key && !key {
            self.dropped += 1;
            return;
        }
        self.wait_key = false;
        if let Some(timestamp) = ts {
            // Bound what waits for `pull`: a caller that never pulls loses the oldest.
            if self.out.len() >= 64 {
                self.out.pop_front();
                self.dropped += 1;
            }
            self.out.push_back(AccessUnit {
                timestamp,
                data: Bytes::from(data),
                keyframe: key,
            });
        }
    }

    fn add_nal(&mut self, nal: &[u8]) {
        if nal.len() < self.flavor.header_len() {
            self.au_broken = true;
            return;
        }
        if self.au.len() + 4 + nal.len() > MAX_ACCESS_UNIT {
            self.au_broken = true;
            return;
        }
        if self.flavor.is_key(self.flavor.nal_type(nal)) {
            self.au_key = true;
        }
        self.au.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        self.au.extend_from_slice(nal);
    }

    pub(crate) fn push(&mut self, pkt: &Packet) -> Result<(), RtpError> {
        if let Some(last) = self.last_seq {
            let d = seq_diff(pkt.sequence, last);
            if d <= 0 {
                // Duplicate or late: the reorder buffer should have caught it; ignore.
                return Ok(());
            }
            if d != 1 {
                self.au_broken = true;
                self.fu = None;
            }
        }
        self.last_seq = Some(pkt.sequence);
        if self.au_ts.is_some_and(|t| t != pkt.timestamp) {
            self.finish();
        }
        self.au_ts = Some(pkt.timestamp);
        let r = self.payload(&pkt.payload);
        if r.is_err() {
            self.au_broken = true;
        }
        if pkt.marker {
            self.finish();
        }
        r
    }

    fn payload(&mut self, p: &[u8]) -> Result<(), RtpError> {
        let f = self.flavor;
        let hl = f.header_len();
        let malformed = |detail| RtpError::Malformed {
            what: f.what(),
            detail,
        };
        if p.len() < hl {
            return Err(malformed("empty payload"));
        }
        let t = f.nal_type(p);
        if t == f.aggregate() {
            let mut rest = &p[hl..];
            while !rest.is_empty() {
                if rest.len() < 2 {
                    return Err(malformed("aggregation unit truncated"));
                }
                let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                if n == 0 || rest.len() < 2 + n {
                    return Err(malformed("aggregation unit size"));
                }
                self.add_nal(&rest[2..2 + n]);
                rest = &rest[2 + n..];
            }
            Ok(())
        } else if t == f.fragment() {
            if p.len() < hl + 2 {
                return Err(malformed("fragment truncated"));
            }
            let fh = p[hl];
            let (start, end) = (fh & 0x80 != 0, fh & 0x40 != 0);
            let data = &p[hl + 1..];
            if start {
                if self.fu.is_some() {
                    self.au_broken = true;
                }
                let mut nal = Vec::with_capacity(data.len() * 4 + hl);
                match f {
                    Flavor::H264 => nal.push((p[0] & 0xe0) | (fh & 0x1f)),
                    Flavor::Hevc => {
                        nal.push((p[0] & 0x81) | ((fh & 0x3f) << 1));
                        nal.push(p[1]);
                    }
                }
                nal.extend_from_slice(data);
                self.fu = Some(nal);
            } else {
                match &mut self.fu {
                    Some(nal) => {
                        if self.au.len() + nal.len() + data.len() > MAX_ACCESS_UNIT {
                            self.fu = None;
                            return Err(RtpError::TooLarge {
                                limit: MAX_ACCESS_UNIT,
                            });
                        }
                        nal.extend_from_slice(data);
                    }
                    // A continuation without its start (lost, or joined mid-unit).
                    None => {
                        self.au_broken = true;
                        return Ok(());
                    }
                }
            }
            if end {
                if let Some(nal) = self.fu.take() {
                    self.add_nal(&nal);
                }
            }
            Ok(())
        } else {
            let unsupported = match f {
                Flavor::H264 => (25..=27).contains(&t) || t == 29,
                Flavor::Hevc => t == 50,
            };
            if unsupported {
                return Err(RtpError::Unsupported {
                    what: f.what(),
                    detail: "interleaved packetization (STAP-B/MTAP/FU-B/PACI)",
                });
            }
            if f == Flavor::H264 && (t == 0 || t >= 30) {
                return Err(malformed("reserved NAL type"));
            }
            self.add_nal(p);
            Ok(())
        }
    }

    pub(crate) fn pull(&mut self) -> Option<AccessUnit> {
        self.out.pop_front()
    }

    /// Ends the unit in progress (end of stream).
    pub(crate) fn flush(&mut self) {
        if self.au_ts.is_some() {
            self.finish();
        }
    }
}

/// Splits one access unit (4-byte length-prefixed NAL units) into RTP payloads of at most `mtu`
/// bytes: small NAL units aggregated (STAP-A / AP), large ones fragmented (FU-A / FU), others
/// sent whole. The last payload carries the marker.
pub(crate) fn packetize(flavor: Flavor, data: &[u8], mtu: usize, out: &mut Vec<Vec<u8>>) {
    let hl = flavor.header_len();
    let mtu = mtu.max(hl + 3 + 2);
    let nals: Vec<&[u8]> = crate::h264::length_nals(data, 4)
        .map_while(Result::ok)
        .filter(|n| n.len() >= hl)
        .collect();
    let mut i = 0;
    while i < nals.len() {
        let nal = nals[i];
        // Aggregate this NAL unit with the following ones while they fit.
        let mut agg_len = hl + 2 + nal.len();
        let mut j = i + 1;
        while j < nals.len() && agg_len + 2 + nals[j].len() <= mtu {
            agg_len += 2 + nals[j].len();
            j += 1;
        }
        if j > i + 1 {
            let mut p = Vec::with_capacity(agg_len);
            match flavor {
                Flavor::H264 => {
                    let nri = nals[i..j].iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
                    let f = nals[i..j].iter().fold(0, |a, n| a | (n[0] & 0x80));
                    p.push(f | nri | 24);
                }
                Flavor::Hevc => {
                    let layer_tid = nals[i..j]
                        .iter()
                        .map(|n| ((n[0] as u16 & 1) << 8 | n[1] as u16) & 0x1ff)
                        .min()
                        .unwrap_or(1);
                    let tid = nals[i..j].iter().map(|n| n[1] & 7).min().unwrap_or(1);
                    let layer = (layer_tid >> 3) as u8;
                    p.push((48 << 1) | (layer >> 5));
                    p.push((layer << 3) | tid);
                }
            }
            for n in &nals[i..j] {
                p.extend_from_slice(&(n.len() as u16).to_be_bytes());
                p.extend_from_slice(n);
            }
            out.push(p);
            i = j;
            continue;
        }
        if nal.len() <= mtu {
            out.push(nal.to_vec());
        } else {
            let t = flavor.nal_type(nal);
            let body = &nal[hl..];
            let chunk = mtu - hl - 1;
            let n = body.len().div_ceil(chunk);
            for (k, c) in body.chunks(chunk).enumerate() {
                let mut p = Vec::with_capacity(hl + 1 + c.len());
                let se = if k == 0 { 0x80 } else { 0 } | if k + 1 == n { 0x40 } else { 0 };
                match flavor {
                    Flavor::H264 => {
                        p.push((nal[0] & 0xe0) | 28);
                        p.push(se | t);
                    }
                    Flavor::Hevc => {
                        p.push((nal[0] & 0x81) | (49 << 1));
                        p.push(nal[1]);
                        p.push(se | t);
                    }
                }
                p.extend_from_slice(c);
                out.push(p);
            }
        }
        i += 1;
    }
}
