//! MPEG-2 transport stream (ISO/IEC 13818-1): a demuxer and a muxer.
//!
//! * [`Demuxer`] takes TS bytes in any chunking, resynchronises after garbage, follows PAT/PMT
//!   (several programs, several audio/video tracks each) and yields [`Track`](crate::Track)s and
//!   [`Frame`](crate::Frame)s in the crate's canonical form (length-prefixed NAL units, raw AAC).
//! * [`Muxer`] writes tracks and frames back as TS into a caller-provided `Vec<u8>`, with
//!   PAT/PMT, PCR, AUD + parameter sets before keyframes and ADTS for AAC; call
//!   [`Muxer::start_segment`] at a keyframe to begin a segment that plays on its own (HLS).

pub mod demux;
pub mod live;
pub mod mux;
pub mod psi;

pub use demux::{DemuxEvent, DemuxStats, Demuxer};
pub use mux::{Muxer, MuxerOptions};

/// Every TS packet is this long.
pub const PACKET_SIZE: usize = 188;
/// The first byte of every TS packet.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// PID of null (stuffing) packets.
pub const NULL_PID: u16 = 0x1FFF;

/// Stream types (PMT `stream_type`) this crate knows.
pub mod stream_type {
    /// MPEG-1 audio (MP3 is layer III of it).
    pub const MPEG1_AUDIO: u8 = 0x03;
    /// MPEG-2 audio (also carries MP3).
    pub const MPEG2_AUDIO: u8 = 0x04;
    /// PES private data: Opus (registration `Opus`), AC-3 in DVB, subtitles; the descriptors say which.
    pub const PRIVATE_PES: u8 = 0x06;
    /// AAC in ADTS frames.
    pub const AAC_ADTS: u8 = 0x0F;
    /// H.264 / AVC.
    pub const H264: u8 = 0x1B;
    /// H.265 / HEVC.
    pub const HEVC: u8 = 0x24;
    /// AC-3 (ATSC).
    pub const AC3: u8 = 0x81;
    /// E-AC-3 (ATSC).
    pub const EAC3: u8 = 0x87;
}

/// The 90 kHz clock of PTS/DTS, per millisecond.
pub(crate) const TICKS_PER_MS: i64 = 90;

/// The fixed 4-byte header of a TS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// The sender's mark of a damaged packet.
    pub transport_error: bool,
    /// A PES packet or PSI section starts in this packet.
    pub payload_unit_start: bool,
    /// Which stream or table the packet belongs to (13 bits).
    pub pid: u16,
    /// Nonzero: the payload is encrypted and cannot be read.
    pub scrambling: u8,
    /// An adaptation field (PCR, stuffing, random access flag) follows the header.
    pub has_adaptation: bool,
    /// Payload follows (the adaptation field may fill a packet).
    pub has_payload: bool,
    /// 4-bit counter per PID: a gap means lost packets.
    pub continuity_counter: u8,
}

impl PacketHeader {
    /// Parses the first 4 bytes of `p`; `None` when the sync byte is wrong or `p` is short.
    pub fn parse(p: &[u8]) -> Option<PacketHeader> {
        if p.len() < 4 || p[0] != SYNC_BYTE {
            return None;
        }
        Some(PacketHeader {
            transport_error: p[1] & 0x80 != 0,
            payload_unit_start: p[1] & 0x40 != 0,
            pid: u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]),
            scrambling: p[3] >> 6,
            has_adaptation: p[3] & 0x20 != 0,
            has_payload: p[3] & 0x10 != 0,
            continuity_counter: p[3] & 0x0F,
        })
    }
}

/// The MPEG-2 CRC-32 of PSI sections (polynomial 0x04C11DB7, initial value all ones, no
/// reflection, no final xor). A section including its CRC checks to 0.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize];
    }
    crc
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_known_pat() {
        // PAT written by ffmpeg: one program, PMT on PID 0x1000.
        let pat = [
            0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00,
        ];
        assert_eq!(crc32(&pat), 0x2AB1_04B2);
        let mut whole = pat.to_vec();
        whole.extend_from_slice(&0x2AB1_04B2u32.to_be_bytes());
        assert_eq!(crc32(&whole), 0);
    }
}
