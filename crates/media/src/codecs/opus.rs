//! Opus: the OpusHead identification header (the Opus `Track::init`), packet durations, and the
//! channel configuration MPEG-TS signals in its extension descriptor.

use crate::MediaError;

/// The OpusHead identification header (RFC 7845 section 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channels.
    pub channels: u8,
    /// Samples (at 48 kHz) to drop from the start of the decoded output: the encoder's delay.
    pub pre_skip: u16,
    /// The sample rate of the original input (informational: Opus always decodes at 48 kHz).
    pub input_rate: u32,
    /// Gain to apply on output, in Q7.8 dB.
    pub output_gain: i16,
    /// 0: mono/stereo; 1: Vorbis channel order up to 8 channels; 255: no defined order.
    pub mapping_family: u8,
    /// Opus streams in each packet (mapping families other than 0).
    pub stream_count: u8,
    /// How many of those streams are coupled (stereo).
    pub coupled_count: u8,
    /// One entry per channel; empty for mapping family 0.
    pub mapping: Vec<u8>,
}

/// Vorbis channel order mappings (family 1) for 3–8 channels: (streams, coupled, mapping).
const VORBIS_MAPPINGS: [(u8, u8, &[u8]); 6] = [
    (2, 1, &[0, 2, 1]),
    (2, 2, &[0, 1, 2, 3]),
    (3, 2, &[0, 4, 1, 2, 3]),
    (4, 2, &[0, 4, 1, 2, 3, 5]),
    (4, 3, &[0, 4, 1, 2, 3, 5, 6]),
    (5, 3, &[0, 6, 1, 2, 3, 4, 5, 7]),
];

impl OpusHead {
    /// The header for `channels` in the default layout (family 0 for 1–2, family 1 up to 8).
    pub fn for_channels(channels: u8) -> Result<OpusHead, MediaError> {
        let (family, streams, coupled, mapping) = match channels {
            1 => (0, 1, 0, Vec::new()),
            2 => (0, 1, 1, Vec::new()),
            3..=8 => {
                let (s, c, m) = VORBIS_MAPPINGS[channels as usize - 3];
                (1, s, c, m.to_vec())
            }
            _ => {
                return Err(MediaError::unsupported(
                    "OpusHead",
                    format!("{channels} channels"),
                ))
            }
        };
        Ok(OpusHead {
            channels,
            pre_skip: 312,
            input_rate: 48000,
            output_gain: 0,
            mapping_family: family,
            stream_count: streams,
            coupled_count: coupled,
            mapping,
        })
    }

    /// The header for an MPEG-TS `channel_config_code` (from the Opus extension descriptor of the
    /// Opus-in-TS draft, ETSI TS opus v0.1.3): 1–8 = that many channels in Vorbis order,
    /// 0x80 = dual mono.
    pub fn from_ts_channel_config(code: u8) -> Result<OpusHead, MediaError> {
        match code {
            1..=8 => OpusHead::for_channels(code),
            0x80 => Ok(OpusHead {
                channels: 2,
                pre_skip: 312,
                input_rate: 48000,
                output_gain: 0,
                mapping_family: 255,
                stream_count: 2,
                coupled_count: 0,
                mapping: vec![0, 1],
            }),
            _ => Err(MediaError::unsupported(
                "Opus channel_config_code",
                format!("{code:#x}"),
            )),
        }
    }

    /// Parses an OpusHead (the track init data: Matroska CodecPrivate, the first Ogg packet).
    pub fn parse(b: &[u8]) -> Result<OpusHead, MediaError> {
        if b.len() < 19 {
            return Err(MediaError::malformed("OpusHead", "shorter than 19 bytes"));
        }
        if &b[..8] != b"OpusHead" {
            return Err(MediaError::malformed("OpusHead", "bad magic"));
        }
        if b[8] >> 4 != 0 {
            return Err(MediaError::unsupported(
                "OpusHead",
                format!("version {}", b[8]),
            ));
        }
        let channels = b[9];
        if channels == 0 {
            return Err(MediaError::malformed("OpusHead", "0 channels"));
        }
        let mut h = OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([b[10], b[11]]),
            input_rate: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            output_gain: i16::from_le_bytes([b[16], b[17]]),
            mapping_family: b[18],
            stream_count: 1,
            coupled_count: u8::from(channels == 2),
            mapping: Vec::new(),
        };
        if h.mapping_family != 0 {
            let table = b.get(19..21 + channels as usize).ok_or_else(|| {
                MediaError::malformed("OpusHead", "channel mapping table truncated")
            })?;
            h.stream_count = table[0];
            h.coupled_count = table[1];
            h.mapping = table[2..].to_vec();
            if h.stream_count == 0 || h.coupled_count > h.stream_count {
                return Err(MediaError::malformed("OpusHead", "bad stream counts"));
            }
        } else if channels > 2 {
            return Err(MediaError::malformed(
                "OpusHead",
                "family 0 with more than 2 channels",
            ));
        }
        Ok(h)
    }

    /// The OpusHead bytes (the form every container's init data is built from).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(21 + self.mapping.len());
        o.extend_from_slice(b"OpusHead");
        o.push(1);
        o.push(self.channels);
        o.extend_from_slice(&self.pre_skip.to_le_bytes());
        o.extend_from_slice(&self.input_rate.to_le_bytes());
        o.extend_from_slice(&self.output_gain.to_le_bytes());
        o.push(self.mapping_family);
        if self.mapping_family != 0 {
            o.push(self.stream_count);
            o.push(self.coupled_count);
            o.extend_from_slice(&self.mapping);
        }
        o
    }

    /// The MPEG-TS channel_config_code for this header, when one exists.
    pub fn ts_channel_config(&self) -> Option<u8> {
        match (self.mapping_family, self.channels) {
            (0, c @ 1..=2) => Some(c),
            (1, c @ 3..=8) => {
                let (s, cp, m) = VORBIS_MAPPINGS[c as usize - 3];
                (s == self.stream_count && cp == self.coupled_count && m == self.mapping.as_slice())
                    .then_some(c)
            }
            (255, 2) if self.stream_count == 2 && self.coupled_count == 0 => Some(0x80),
            _ => None,
        }
    }
}

/// Duration of an Opus packet in 48 kHz samples, from its TOC byte (RFC 6716 section 3.1).
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let per_frame = match config {
        0..=11 => [480, 960, 1920, 2880][(config & 3) as usize],
        12..=15 => [480, 960][(config & 1) as usize],
        _ => [120, 240, 480, 960][(config & 3) as usize],
    };
    let count = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    let total = per_frame * count;
    (total <= 5760).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_round_trip() {
        for c in [1u8, 2, 3, 6, 8] {
            let h = OpusHead::for_channels(c).unwrap();
            let b = h.to_bytes();
            assert_eq!(OpusHead::parse(&b).unwrap(), h);
            assert_eq!(h.ts_channel_config(), Some(c));
        }
        assert_eq!(
            OpusHead::from_ts_channel_config(0x80)
                .unwrap()
                .ts_channel_config(),
            Some(0x80)
        );
        assert!(OpusHead::parse(b"OpusHead\x01\x06\0\0\0\0\0\0\0\0\x01").is_err());
        assert!(OpusHead::for_channels(9).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(packet_samples(&[0xFC]), Some(960)); // CELT FB 20 ms, 1 frame
        assert_eq!(packet_samples(&[0x78 | 1]), Some(1920)); // hybrid FB 20 ms, 2 frames
        assert_eq!(packet_samples(&[0x03, 0x3F]), None); // 63 × 10 ms is too long
        assert_eq!(packet_samples(&[]), None);
    }
}
