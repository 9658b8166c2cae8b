//! AAC: the AudioSpecificConfig (what FLV and MP4 carry as init data) and ADTS framing (what MPEG-TS
//! and .aac files carry). The media model stores raw access units without ADTS headers.

use crate::error::MediaError;

/// Sampling frequencies by index (ISO 14496-3 table 1.18).
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The index of `rate` in [`SAMPLE_RATES`]; `None` for a rate that needs the explicit 24-bit
/// form (which ADTS cannot carry).
pub fn rate_index(rate: u32) -> Option<u8> {
    SAMPLE_RATES
        .iter()
        .position(|&r| r == rate)
        .map(|i| i as u8)
}

/// The fields of an AudioSpecificConfig that muxers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type (2 = AAC LC, 5 = SBR/HE-AAC, 29 = PS).
    pub object_type: u8,
    /// Core sampling frequency.
    pub rate: u32,
    /// Channel configuration (1..=7 map to channel counts, 0 = defined in-band).
    pub channel_config: u8,
    /// For explicitly signalled SBR/PS: the output sampling rate and the core object type.
    pub ext_rate: Option<u32>,
}

impl AudioSpecificConfig {
    /// Channel count from the channel configuration (7 means 7.1 = 8 channels).
    pub fn channels(&self) -> u32 {
        match self.channel_config {
            7 => 8,
            c => c as u32,
        }
    }

    /// Output sample rate (the SBR rate when signalled).
    pub fn output_rate(&self) -> u32 {
        self.ext_rate.unwrap_or(self.rate)
    }

    /// Parses an AudioSpecificConfig (with explicit SBR/PS signalling); what else follows the
    /// fields muxers need is ignored.
    pub fn parse(b: &[u8]) -> Result<AudioSpecificConfig, MediaError> {
        let mut r = crate::h264::BitReader::new(b);
        let e = |_| MediaError::malformed("AudioSpecificConfig", "truncated");
        let read_aot = |r: &mut crate::h264::BitReader| -> Result<u8, MediaError> {
            let a = r.read_bits(5).map_err(e)? as u8;
            Ok(if a == 31 {
                32 + r.read_bits(6).map_err(e)? as u8
            } else {
                a
            })
        };
        let read_rate = |r: &mut crate::h264::BitReader| -> Result<u32, MediaError> {
            let i = r.read_bits(4).map_err(e)? as usize;
            match i {
                15 => Ok(r.read_bits(24).map_err(e)?),
                i if i < SAMPLE_RATES.len() => Ok(SAMPLE_RATES[i]),
                _ => Err(MediaError::malformed(
                    "AudioSpecificConfig",
                    format!("reserved sampling index {i}"),
                )),
            }
        };
        let mut object_type = read_aot(&mut r)?;
        let rate = read_rate(&mut r)?;
        let channel_config = r.read_bits(4).map_err(e)? as u8;
        let mut ext_rate = None;
        if object_type == 5 || object_type == 29 {
            ext_rate = Some(read_rate(&mut r)?);
            object_type = read_aot(&mut r)?;
        }
        if object_type == 0 {
            return Err(MediaError::malformed(
                "AudioSpecificConfig",
                "object type 0",
            ));
        }
        if rate == 0 {
            return Err(MediaError::malformed(
                "AudioSpecificConfig",
                "sample rate 0",
            ));
        }
        Ok(AudioSpecificConfig {
            object_type,
            rate,
            channel_config,
            ext_rate,
        })
    }

    /// Builds the two-byte (or five-byte, for a rate not in the table) config for a plain object type.
    pub fn build(object_type: u8, rate: u32, channels: u32) -> Result<Vec<u8>, MediaError> {
        if object_type == 0 || object_type > 30 {
            return Err(MediaError::unsupported(
                "AudioSpecificConfig",
                format!("object type {object_type}"),
            ));
        }
        let cc = match channels {
            1..=6 => channels as u64,
            8 => 7,
            _ => {
                return Err(MediaError::unsupported(
                    "AudioSpecificConfig",
                    format!("{channels} channels"),
                ))
            }
        };
        match rate_index(rate) {
            Some(i) => {
                let v: u16 = ((object_type as u16) << 11) | ((i as u16) << 7) | ((cc as u16) << 3);
                Ok(v.to_be_bytes().to_vec())
            }
            None => {
                if rate == 0 || rate >= 1 << 24 {
                    return Err(MediaError::unsupported(
                        "AudioSpecificConfig",
                        format!("rate {rate}"),
                    ));
                }
                // 5 + 4 + 24 + 4 bits = 37 bits, padded to 40.
                let v: u64 =
                    ((object_type as u64) << 35) | (15u64 << 31) | ((rate as u64) << 7) | (cc << 3);
                Ok(v.to_be_bytes()[3..].to_vec())
            }
        }
    }
}

/// A parsed ADTS header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// Audio object type (profile + 1).
    pub object_type: u8,
    /// Index into [`SAMPLE_RATES`].
    pub rate_index: u8,
    /// Channel configuration, as in [`AudioSpecificConfig::channel_config`].
    pub channel_config: u8,
    /// Length of the whole frame, header included.
    pub frame_length: usize,
    /// 7, or 9 with CRC.
    pub header_length: usize,
    /// Raw data blocks in the frame (usually 1).
    pub blocks: u8,
}

/// An ADTS header without CRC (9 bytes with one).
pub const ADTS_HEADER_LEN: usize = 7;

impl AdtsHeader {
    /// Parses the header at the start of `b` (needs 7 bytes; `NeedMore` with fewer).
    pub fn parse(b: &[u8]) -> Result<AdtsHeader, MediaError> {
        if b.len() < ADTS_HEADER_LEN {
            return Err(MediaError::NeedMore);
        }
        if b[0] != 0xff || b[1] & 0xf6 != 0xf0 {
            return Err(MediaError::malformed("ADTS", "no syncword"));
        }
        let protection_absent = b[1] & 1 == 1;
        let object_type = (b[2] >> 6) + 1;
        let rate_index = (b[2] >> 2) & 0xf;
        if rate_index as usize >= SAMPLE_RATES.len() {
            return Err(MediaError::malformed(
                "ADTS",
                format!("reserved sampling index {rate_index}"),
            ));
        }
        let channel_config = ((b[2] & 1) << 2) | (b[3] >> 6);
        let frame_length =
            (((b[3] & 3) as usize) << 11) | ((b[4] as usize) << 3) | ((b[5] >> 5) as usize);
        let header_length = if protection_absent { 7 } else { 9 };
        if frame_length < header_length {
            return Err(MediaError::malformed(
                "ADTS",
                format!("frame length {frame_length} shorter than the header"),
            ));
        }
        Ok(AdtsHeader {
            object_type,
            rate_index,
            channel_config,
            frame_length,
            header_length,
            blocks: (b[6] & 3) + 1,
        })
    }

    /// The sampling rate the index names.
    pub fn rate(&self) -> u32 {
        SAMPLE_RATES[self.rate_index as usize % SAMPLE_RATES.len()]
    }

    /// The AudioSpecificConfig this header implies.
    pub fn asc(&self) -> AudioSpecificConfig {
        AudioSpecificConfig {
            object_type: self.object_type,
            rate: self.rate(),
            channel_config: self.channel_config,
            ext_rate: None,
        }
    }

    /// Builds a 7-byte header (no CRC) for a raw frame of `payload_len` bytes.
    pub fn build(asc: &AudioSpecificConfig, payload_len: usize) -> Result<[u8; 7], MediaError> {
        let len = payload_len + ADTS_HEADER_LEN;
        if len >= 1 << 13 {
            return Err(MediaError::TooLarge {
                what: "ADTS frame",
                size: len as u64,
                limit: (1 << 13) - 1,
            });
        }
        let profile = match asc.object_type {
            1..=4 => asc.object_type - 1,
            // ADTS cannot say SBR/PS; the core type (LC) is what decoders expect there.
            _ => 1,
        };
        let ri = rate_index(asc.rate)
            .ok_or_else(|| MediaError::unsupported("ADTS", format!("rate {}", asc.rate)))?;
        let cc = asc.channel_config & 7;
        Ok([
            0xff,
            0xf1,
            (profile << 6) | (ri << 2) | (cc >> 2),
            ((cc & 3) << 6) | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            (((len & 7) as u8) << 5) | 0x1f,
            0xfc,
        ])
    }
}

/// Iterates the frames of an ADTS byte string as (header, raw payload). Stops with an error at the
/// first damaged header or truncated frame.
pub struct AdtsIter<'a> {
    data: &'a [u8],
    failed: bool,
}

/// Iterates the ADTS frames laid end to end in `data`, as (header, payload) pairs; a broken
/// header, or a frame running past the end (`NeedMore`), ends the iteration with an error.
pub fn adts_frames(data: &[u8]) -> AdtsIter<'_> {
    AdtsIter {
        data,
        failed: false,
    }
}

impl<'a> Iterator for AdtsIter<'a> {
    type Item = Result<(AdtsHeader, &'a [u8]), MediaError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.data.is_empty() {
            return None;
        }
        let h = match AdtsHeader::parse(self.data) {
            Ok(h) => h,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        if h.frame_length > self.data.len() {
            self.failed = true;
            return Some(Err(MediaError::NeedMore));
        }
        let payload = &self.data[h.header_length..h.frame_length];
        self.data = &self.data[h.frame_length..];
        Some(Ok((h, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEREO: &[u8] = include_bytes!("../../tests/fixtures/aac/sine_44100_stereo.aac");
    const MONO: &[u8] = include_bytes!("../../tests/fixtures/aac/sine_48000_mono.aac");
    const FLV: &[u8] = include_bytes!("../../tests/fixtures/flv/testsrc_320x240_1s.flv");

    #[test]
    fn adts_frames_of_ffmpeg_files() {
        // ffprobe -count_packets: 23 frames and 16 frames (0.3 s at 48000).
        let frames: Vec<_> = adts_frames(STEREO).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.len(), 23);
        let (h, _) = frames[0];
        assert_eq!((h.object_type, h.rate(), h.channel_config), (2, 44100, 2));
        let mono: Vec<_> = adts_frames(MONO).collect::<Result<_, _>>().unwrap();
        assert_eq!(mono.len(), 16);
        assert_eq!((mono[0].0.rate(), mono[0].0.channel_config), (48000, 1));
        // Rebuilding each header from the config gives ffmpeg's bytes back (buffer fullness 0x7ff).
        let mut pos = 0;
        for (h, payload) in frames {
            let built = AdtsHeader::build(&h.asc(), payload.len()).unwrap();
            assert_eq!(&built[..], &STEREO[pos..pos + 7]);
            pos += h.frame_length;
        }
        assert_eq!(pos, STEREO.len());
    }

    #[test]
    fn truncated_adts() {
        let mut it = adts_frames(&STEREO[..STEREO.len() - 1]);
        assert!(it.by_ref().take(22).all(|f| f.is_ok()));
        assert_eq!(it.next(), Some(Err(MediaError::NeedMore)));
        assert!(AdtsHeader::parse(&[0xff, 0xf1, 0x50, 0x80, 0, 0x1f, 0xfc]).is_err()); // length 0
        assert!(AdtsHeader::parse(&[0x12; 7]).is_err());
    }

    #[test]
    fn asc_from_flv_and_build() {
        // ffmpeg's FLV: 1 kHz sine at 44100 Hz mono, AAC LC: the sequence header tag body is
        // af 00 <ASC>.
        let pos = FLV.windows(2).position(|w| w == [0xaf, 0x00]).unwrap();
        let asc = AudioSpecificConfig::parse(&FLV[pos + 2..pos + 4]).unwrap();
        assert_eq!((asc.object_type, asc.rate, asc.channels()), (2, 44100, 1));
        assert_eq!(
            AudioSpecificConfig::build(2, 44100, 1).unwrap(),
            &FLV[pos + 2..pos + 4]
        );
        let odd = AudioSpecificConfig::build(2, 12345, 2).unwrap();
        let p = AudioSpecificConfig::parse(&odd).unwrap();
        assert_eq!((p.rate, p.channels()), (12345, 2));
        // HE-AAC explicit signalling: aot 5, core 24000, ext 48000, core aot 2.
        let he = AudioSpecificConfig::parse(&[0x2b, 0x92, 0x08]).unwrap();
        assert_eq!(
            (he.object_type, he.rate, he.output_rate(), he.channel_config),
            (2, 22050, 44100, 2)
        );
        assert!(AudioSpecificConfig::parse(&[0x12]).is_err());
        assert!(AudioSpecificConfig::parse(&[0x17, 0x90]).is_err()); // index 14
    }
}
