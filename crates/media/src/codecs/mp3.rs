//! MPEG-1/2/2.5 audio (layers I–III, "MP3") frame headers.

use crate::MediaError;

/// The MPEG audio version of a frame: it decides the rate and bitrate tables and the samples
/// per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MPEG-1 (32, 44.1, 48 kHz).
    Mpeg1,
    /// MPEG-2 low sampling frequencies (16, 22.05, 24 kHz).
    Mpeg2,
    /// MPEG-2.5, an unofficial extension (8, 11.025, 12 kHz).
    Mpeg25,
}

/// A parsed 4-byte MPEG audio frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// MPEG version.
    pub version: Version,
    /// 1, 2 or 3.
    pub layer: u8,
    /// A 16-bit CRC follows the header.
    pub crc: bool,
    /// Bits per second.
    pub bitrate: u32,
    /// Sampling rate in Hz.
    pub rate: u32,
    /// The frame has one padding slot (its length alternates to keep the bitrate exact).
    pub padding: bool,
    /// 1 (mono) or 2.
    pub channels: u32,
    /// Length of the whole frame in bytes, header included.
    pub frame_length: usize,
    /// Samples per channel in the frame.
    pub samples: u32,
}

/// The length of a frame header.
pub const HEADER_LEN: usize = 4;

const BITRATES_V1: [[u16; 15]; 3] = [
    [
        0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ],
    [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ],
    [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ],
];
const BITRATES_V2: [[u16; 15]; 2] = [
    [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];

impl Header {
    /// Parses the header at the start of `b`. Free-format streams (bitrate index 0) are
    /// unsupported since their frame length is not in the header.
    pub fn parse(b: &[u8]) -> Result<Header, MediaError> {
        if b.len() < HEADER_LEN {
            return Err(MediaError::NeedMore);
        }
        if b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
            return Err(MediaError::malformed("MPEG audio header", "no syncword"));
        }
        let version = match (b[1] >> 3) & 3 {
            0 => Version::Mpeg25,
            2 => Version::Mpeg2,
            3 => Version::Mpeg1,
            _ => {
                return Err(MediaError::malformed(
                    "MPEG audio header",
                    "reserved version",
                ))
            }
        };
        let layer = match (b[1] >> 1) & 3 {
            1 => 3,
            2 => 2,
            3 => 1,
            _ => return Err(MediaError::malformed("MPEG audio header", "reserved layer")),
        };
        let crc = b[1] & 1 == 0;
        let bi = (b[2] >> 4) as usize;
        if bi == 0 {
            return Err(MediaError::unsupported(
                "MPEG audio header",
                "free format bitrate",
            ));
        }
        if bi == 15 {
            return Err(MediaError::malformed(
                "MPEG audio header",
                "bitrate index 15",
            ));
        }
        let kbps = match version {
            Version::Mpeg1 => BITRATES_V1[layer as usize - 1][bi],
            _ => BITRATES_V2[usize::from(layer != 1)][bi],
        } as u32;
        let ri = ((b[2] >> 2) & 3) as usize;
        if ri == 3 {
            return Err(MediaError::malformed(
                "MPEG audio header",
                "reserved sample rate",
            ));
        }
        let rate = [44100, 48000, 32000][ri]
            / match version {
                Version::Mpeg1 => 1,
                Version::Mpeg2 => 2,
                Version::Mpeg25 => 4,
            };
        let padding = b[2] & 2 != 0;
        let channels = if b[3] >> 6 == 3 { 1 } else { 2 };
        let samples = match (layer, version) {
            (1, _) => 384,
            (2, _) | (3, Version::Mpeg1) => 1152,
            _ => 576,
        };
        let bitrate = kbps * 1000;
        let frame_length = if layer == 1 {
            (12 * bitrate / rate + u32::from(padding)) * 4
        } else {
            samples / 8 * bitrate / rate + u32::from(padding)
        } as usize;
        Ok(Header {
            version,
            layer,
            crc,
            bitrate,
            rate,
            padding,
            channels,
            frame_length,
            samples,
        })
    }
}

/// Iterates whole frames of an MPEG audio byte string, skipping garbage between frames; the
/// second value is the trailing partial frame (or junk) that was not consumed.
pub fn frames(mut data: &[u8]) -> (Vec<(Header, &[u8])>, &[u8]) {
    let mut out = Vec::new();
    while data.len() >= HEADER_LEN {
        match Header::parse(data) {
            Ok(h) if h.frame_length <= data.len() => {
                out.push((h, &data[..h.frame_length]));
                data = &data[h.frame_length..];
            }
            Ok(_) => break,
            Err(_) => {
                // resync on the next 0xFF
                match data[1..].iter().position(|&b| b == 0xFF) {
                    Some(p) => data = &data[p + 1..],
                    None => return (out, &[]),
                }
            }
        }
    }
    (out, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer3_headers() {
        // 128 kbit/s, 44.1 kHz, stereo, MPEG-1 layer III: 417 bytes (418 padded)
        let h = Header::parse(&[0xFF, 0xFB, 0x90, 0x00]).unwrap();
        assert_eq!(
            (h.version, h.layer, h.bitrate, h.rate, h.channels),
            (Version::Mpeg1, 3, 128_000, 44100, 2)
        );
        assert_eq!((h.frame_length, h.samples), (417, 1152));
        let h = Header::parse(&[0xFF, 0xFB, 0x92, 0xC0]).unwrap();
        assert_eq!((h.frame_length, h.channels), (418, 1));
        // MPEG-2 layer III, 64 kbit/s, 24 kHz: 72 * 64000 / 24000 = 192
        let h = Header::parse(&[0xFF, 0xF3, 0x84, 0x00]).unwrap();
        assert_eq!(
            (h.version, h.rate, h.frame_length, h.samples),
            (Version::Mpeg2, 24000, 192, 576)
        );
        assert!(Header::parse(&[0xFF, 0xFB, 0xF0, 0x00]).is_err());
        assert!(Header::parse(&[0xFF, 0xFB, 0x0C, 0x00]).is_err());
        assert_eq!(Header::parse(&[0xFF]), Err(MediaError::NeedMore));
    }

    #[test]
    fn frame_iteration_resyncs() {
        let mut data = vec![1, 2, 3];
        let mut f = vec![0u8; 417];
        f[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x00]);
        data.extend_from_slice(&f);
        data.extend_from_slice(&f);
        data.extend_from_slice(&f[..100]);
        let (frames, rest) = frames(&data);
        assert_eq!(frames.len(), 2);
        assert_eq!(rest.len(), 100);
    }
}
