//! HEVC (H.265): NAL unit headers, SPS parsing (size, profile, level), the hvcC record, and
//! keyframe (IRAP) detection.
//!
//! Annex B start-code handling is codec-independent and shared with H.264: see
//! [`crate::h264::annexb_nals`], [`crate::h264::annexb_to_length`], [`crate::h264::length_to_annexb`].

use crate::h264::{length_nals, unescape_rbsp, BitReader};
use crate::MediaError;
use bytes::Bytes;

/// BLA_W_LP: the first IRAP type (16..=23 are random access points).
pub const NAL_BLA_W_LP: u8 = 16;
/// CRA: a random access point that leading pictures may reference across.
pub const NAL_CRA: u8 = 21;
/// Video parameter set; goes into hvcC.
pub const NAL_VPS: u8 = 32;
/// Sequence parameter set; goes into hvcC.
pub const NAL_SPS: u8 = 33;
/// Picture parameter set; goes into hvcC.
pub const NAL_PPS: u8 = 34;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 35;
/// End of sequence.
pub const NAL_EOS: u8 = 36;
/// End of bitstream.
pub const NAL_EOB: u8 = 37;
/// Filler data.
pub const NAL_FD: u8 = 38;
/// Prefix SEI (captions, HDR metadata).
pub const NAL_SEI_PREFIX: u8 = 39;

/// The NAL unit type (6 bits) of a NAL unit with its 2-byte header; `None` when empty.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3F)
}

/// True for IRAP pictures (BLA, IDR, CRA and the reserved IRAP types 22–23): random access points.
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// True when a frame in length-prefixed form (4-byte lengths) contains an IRAP picture.
pub fn is_keyframe(frame: &[u8]) -> bool {
    length_nals(frame, 4).any(|n| matches!(n, Ok(n) if nal_type(n).is_some_and(is_irap)))
}

/// What the SPS tells a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// Which SPS this is (PPS refer to it).
    pub sps_id: u32,
    /// `general_profile_space` (0 in every stream in use).
    pub profile_space: u8,
    /// `general_tier_flag` (true: High tier).
    pub tier: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10 …).
    pub profile_idc: u8,
    /// `general_profile_compatibility_flags`, bit 31 first (for codec strings).
    pub profile_compatibility: u32,
    /// The 48 bits of general progressive/interlaced/… constraint flags.
    pub constraint_flags: [u8; 6],
    /// `general_level_idc`: 30 × the level (93 is 3.1).
    pub level_idc: u8,
    /// Temporal sub-layers (1 to 7).
    pub max_sub_layers: u8,
    /// `sps_temporal_id_nesting_flag`.
    pub temporal_id_nesting: bool,
    /// 0 monochrome, 1 for 4:2:0, 2 for 4:2:2, 3 for 4:4:4.
    pub chroma_format_idc: u32,
    /// Bits per luma sample.
    pub bit_depth_luma: u32,
    /// Bits per chroma sample.
    pub bit_depth_chroma: u32,
    /// Displayed size (conformance window applied).
    pub width: u32,
    /// Displayed height (conformance window applied).
    pub height: u32,
}

/// Parses an SPS NAL unit (2-byte header included, emulation prevention bytes in place).
pub fn parse_sps(nal_unit: &[u8]) -> Result<Sps, MediaError> {
    if nal_type(nal_unit) != Some(NAL_SPS) {
        return Err(MediaError::malformed("HEVC SPS", "not an SPS NAL unit"));
    }
    let mut rbsp = Vec::new();
    unescape_rbsp(&nal_unit[2.min(nal_unit.len())..], &mut rbsp);
    let err = |_: MediaError| MediaError::malformed("HEVC SPS", "truncated");
    let mut r = BitReader::new(&rbsp);
    let _vps_id = r.read_bits(4).map_err(err)?;
    let max_sub_layers_minus1 = r.read_bits(3).map_err(err)? as u8;
    let temporal_id_nesting = r.read_flag().map_err(err)?;
    // general profile_tier_level
    let profile_space = r.read_bits(2).map_err(err)? as u8;
    let tier = r.read_flag().map_err(err)?;
    let profile_idc = r.read_bits(5).map_err(err)? as u8;
    let profile_compatibility = r.read_bits(32).map_err(err)?;
    let mut constraint_flags = [0u8; 6];
    for b in &mut constraint_flags {
        *b = r.read_bits(8).map_err(err)? as u8;
    }
    let level_idc = r.read_bits(8).map_err(err)? as u8;
    let mut sub_profile = [false; 8];
    let mut sub_level = [false; 8];
    for i in 0..max_sub_layers_minus1 as usize {
        sub_profile[i] = r.read_flag().map_err(err)?;
        sub_level[i] = r.read_flag().map_err(err)?;
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.skip_bits(2).map_err(err)?;
        }
    }
    for i in 0..max_sub_layers_minus1 as usize {
        if sub_profile[i] {
            r.skip_bits(88).map_err(err)?;
        }
        if sub_level[i] {
            r.skip_bits(8).map_err(err)?;
        }
    }
    let sps_id = r.read_ue().map_err(err)?;
    if sps_id > 15 {
        return Err(MediaError::malformed(
            "HEVC SPS",
            format!("sps_id {sps_id}"),
        ));
    }
    let chroma_format_idc = r.read_ue().map_err(err)?;
    if chroma_format_idc > 3 {
        return Err(MediaError::malformed(
            "HEVC SPS",
            format!("chroma_format_idc {chroma_format_idc}"),
        ));
    }
    let separate_planes = chroma_format_idc == 3 && r.read_flag().map_err(err)?;
    let mut width = r.read_ue().map_err(err)?;
    let mut height = r.read_ue().map_err(err)?;
    if width == 0 || height == 0 || width > 16888 || height > 16888 {
        return Err(MediaError::malformed(
            "HEVC SPS",
            format!("picture size {width}x{height}"),
        ));
    }
    if r.read_flag().map_err(err)? {
        let (sub_w, sub_h) = match (chroma_format_idc, separate_planes) {
            (1, false) => (2, 2),
            (2, false) => (2, 1),
            _ => (1, 1),
        };
        let (left, right, top, bottom) = (
            r.read_ue().map_err(err)?,
            r.read_ue().map_err(err)?,
            r.read_ue().map_err(err)?,
            r.read_ue().map_err(err)?,
        );
        let crop_w = sub_w * (left as u64 + right as u64);
        let crop_h = sub_h * (top as u64 + bottom as u64);
        if crop_w >= width as u64 || crop_h >= height as u64 {
            return Err(MediaError::malformed(
                "HEVC SPS",
                "conformance window larger than picture",
            ));
        }
        width -= crop_w as u32;
        height -= crop_h as u32;
    }
    let bit_depth_luma = r.read_ue().map_err(err)?.saturating_add(8);
    let bit_depth_chroma = r.read_ue().map_err(err)?.saturating_add(8);
    if bit_depth_luma > 16 || bit_depth_chroma > 16 {
        return Err(MediaError::malformed("HEVC SPS", "bit depth above 16"));
    }
    Ok(Sps {
        sps_id,
        profile_space,
        tier,
        profile_idc,
        profile_compatibility,
        constraint_flags,
        level_idc,
        max_sub_layers: max_sub_layers_minus1 + 1,
        temporal_id_nesting,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        width,
        height,
    })
}

/// An HEVCDecoderConfigurationRecord (hvcC), the HEVC `Track::init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hvcc {
    /// As in [`Sps::profile_space`].
    pub profile_space: u8,
    /// As in [`Sps::tier`].
    pub tier: bool,
    /// As in [`Sps::profile_idc`].
    pub profile_idc: u8,
    /// As in [`Sps::profile_compatibility`].
    pub profile_compatibility: u32,
    /// As in [`Sps::constraint_flags`].
    pub constraint_flags: [u8; 6],
    /// As in [`Sps::level_idc`].
    pub level_idc: u8,
    /// As in [`Sps::chroma_format_idc`].
    pub chroma_format_idc: u8,
    /// As in [`Sps::bit_depth_luma`].
    pub bit_depth_luma: u8,
    /// As in [`Sps::bit_depth_chroma`].
    pub bit_depth_chroma: u8,
    /// From [`Sps::max_sub_layers`].
    pub num_temporal_layers: u8,
    /// From [`Sps::temporal_id_nesting`].
    pub temporal_id_nested: bool,
    /// NAL length field size in bytes (1, 2 or 4).
    pub length_size: u8,
    /// The VPS NAL units (2-byte header included, no length prefix).
    pub vps: Vec<Bytes>,
    /// The SPS NAL units.
    pub sps: Vec<Bytes>,
    /// The PPS NAL units.
    pub pps: Vec<Bytes>,
    /// Other arrays (SEI …) as (nal type, units).
    pub other: Vec<(u8, Vec<Bytes>)>,
}

impl Hvcc {
    /// Builds the record from parameter sets; the first SPS supplies profile, level and format.
    pub fn from_parameter_sets(
        vps: &[&[u8]],
        sps: &[&[u8]],
        pps: &[&[u8]],
    ) -> Result<Hvcc, MediaError> {
        let first = sps
            .first()
            .ok_or_else(|| MediaError::malformed("hvcC", "no SPS"))?;
        if vps.is_empty() || pps.is_empty() {
            return Err(MediaError::malformed("hvcC", "VPS and PPS are required"));
        }
        let s = parse_sps(first)?;
        let own = |v: &[&[u8]]| v.iter().map(|n| Bytes::copy_from_slice(n)).collect();
        Ok(Hvcc {
            profile_space: s.profile_space,
            tier: s.tier,
            profile_idc: s.profile_idc,
            profile_compatibility: s.profile_compatibility,
            constraint_flags: s.constraint_flags,
            level_idc: s.level_idc,
            chroma_format_idc: s.chroma_format_idc as u8,
            bit_depth_luma: s.bit_depth_luma as u8,
            bit_depth_chroma: s.bit_depth_chroma as u8,
            num_temporal_layers: s.max_sub_layers,
            temporal_id_nested: s.temporal_id_nesting,
            length_size: 4,
            vps: own(vps),
            sps: own(sps),
            pps: own(pps),
            other: Vec::new(),
        })
    }

    /// Parses an hvcC record; every array is bounded by the record's own length.
    pub fn parse(data: &[u8]) -> Result<Hvcc, MediaError> {
        let short = || MediaError::malformed("hvcC", "truncated");
        if data.len() < 23 {
            return Err(short());
        }
        if data[0] != 1 {
            return Err(MediaError::unsupported(
                "hvcC",
                format!("configurationVersion {}", data[0]),
            ));
        }
        let length_size = (data[21] & 3) + 1;
        if length_size == 3 {
            return Err(MediaError::malformed("hvcC", "lengthSizeMinusOne 2"));
        }
        let mut h = Hvcc {
            profile_space: data[1] >> 6,
            tier: data[1] & 0x20 != 0,
            profile_idc: data[1] & 0x1F,
            profile_compatibility: u32::from_be_bytes([data[2], data[3], data[4], data[5]]),
            constraint_flags: [data[6], data[7], data[8], data[9], data[10], data[11]],
            level_idc: data[12],
            chroma_format_idc: data[16] & 3,
            bit_depth_luma: (data[17] & 7) + 8,
            bit_depth_chroma: (data[18] & 7) + 8,
            num_temporal_layers: (data[21] >> 3) & 7,
            temporal_id_nested: data[21] & 4 != 0,
            length_size,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
            other: Vec::new(),
        };
        let num_arrays = data[22];
        let mut rest = &data[23..];
        for _ in 0..num_arrays {
            if rest.len() < 3 {
                return Err(short());
            }
            let ty = rest[0] & 0x3F;
            let n = u16::from_be_bytes([rest[1], rest[2]]);
            rest = &rest[3..];
            let mut units = Vec::new();
            for _ in 0..n {
                if rest.len() < 2 {
                    return Err(short());
                }
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let unit = rest.get(2..2 + len).ok_or_else(short)?;
                units.push(Bytes::copy_from_slice(unit));
                rest = &rest[2 + len..];
            }
            match ty {
                NAL_VPS => h.vps.extend(units),
                NAL_SPS => h.sps.extend(units),
                NAL_PPS => h.pps.extend(units),
                _ => h.other.push((ty, units)),
            }
        }
        Ok(h)
    }

    /// The record's bytes (what MP4 `hvcC` and FLV sequence headers carry).
    pub fn to_bytes(&self) -> Bytes {
        let mut o = Vec::with_capacity(64);
        o.push(1);
        o.push(
            (self.profile_space & 3) << 6 | u8::from(self.tier) << 5 | (self.profile_idc & 0x1F),
        );
        o.extend_from_slice(&self.profile_compatibility.to_be_bytes());
        o.extend_from_slice(&self.constraint_flags);
        o.push(self.level_idc);
        o.extend_from_slice(&[0xF0, 0x00]); // min_spatial_segmentation_idc = 0
        o.push(0xFC); // parallelismType = 0
        o.push(0xFC | (self.chroma_format_idc & 3));
        o.push(0xF8 | (self.bit_depth_luma.saturating_sub(8) & 7));
        o.push(0xF8 | (self.bit_depth_chroma.saturating_sub(8) & 7));
        o.extend_from_slice(&[0, 0]); // avgFrameRate unknown
        let len_minus1 = match self.length_size {
            1 => 0,
            2 => 1,
            _ => 3,
        };
        o.push(
            (self.num_temporal_layers & 7) << 3
                | u8::from(self.temporal_id_nested) << 2
                | len_minus1,
        );
        let mut arrays: Vec<(u8, &[Bytes])> = vec![
            (NAL_VPS, &self.vps),
            (NAL_SPS, &self.sps),
            (NAL_PPS, &self.pps),
        ];
        arrays.extend(self.other.iter().map(|(t, u)| (*t, u.as_slice())));
        arrays.retain(|(_, u)| !u.is_empty());
        o.push(arrays.len() as u8);
        for (ty, units) in arrays {
            o.push(0x80 | ty);
            o.extend_from_slice(&(units.len().min(0xFFFF) as u16).to_be_bytes());
            for u in units.iter().take(0xFFFF) {
                let u = &u[..u.len().min(0xFFFF)];
                o.extend_from_slice(&(u.len() as u16).to_be_bytes());
                o.extend_from_slice(u);
            }
        }
        Bytes::from(o)
    }

    /// The parameter sets in decoding order (VPS, SPS, PPS, then the rest).
    pub fn parameter_sets(&self) -> impl Iterator<Item = &Bytes> {
        self.vps
            .iter()
            .chain(&self.sps)
            .chain(&self.pps)
            .chain(self.other.iter().flat_map(|(_, u)| u.iter()))
    }

    /// An RFC 6381 codec string such as `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self) -> String {
        let space = ["", "A", "B", "C"][self.profile_space as usize & 3];
        let compat = self.profile_compatibility.reverse_bits();
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.profile_idc,
            compat,
            if self.tier { 'H' } else { 'L' },
            self.level_idc
        );
        let mut flags = self.constraint_flags.to_vec();
        while flags.last() == Some(&0) {
            flags.pop();
        }
        for b in flags {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Parameter sets written by x265 for 320x240 main profile (from the hevc_aac fixture).
    const VPS: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x90, 0x09,
    ];
    const SPS: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59, 0x24, 0x93, 0x2b, 0xc0, 0x5a,
        0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
    ];

    #[test]
    fn sps_size_profile_level() {
        let s = parse_sps(SPS).unwrap();
        assert_eq!((s.width, s.height), (320, 240));
        assert_eq!(
            (
                s.profile_idc,
                s.level_idc,
                s.chroma_format_idc,
                s.bit_depth_luma
            ),
            (1, 60, 1, 8)
        );
    }

    #[test]
    fn hvcc_round_trip() {
        let pps: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];
        let h = Hvcc::from_parameter_sets(&[VPS], &[SPS], &[pps]).unwrap();
        let b = h.to_bytes();
        let p = Hvcc::parse(&b).unwrap();
        assert_eq!(p, h);
        assert_eq!(p.codec_string(), "hvc1.1.6.L60.90");
    }

    #[test]
    fn hostile_sps_does_not_panic() {
        for len in 0..SPS.len() {
            // A cut before the picture size is refused as a malformed SPS; one after it still
            // gives the right size (the parser reads no further).
            match parse_sps(&SPS[..len]) {
                Ok(s) => assert_eq!((s.width, s.height), (320, 240), "cut at {len}"),
                Err(e) => assert!(
                    matches!(
                        e,
                        MediaError::Malformed {
                            what: "HEVC SPS",
                            ..
                        }
                    ),
                    "cut at {len}: {e:?}"
                ),
            }
        }
        let mut s = SPS.to_vec();
        for i in 2..s.len() {
            s[i] = 0xFF;
            let _ = parse_sps(&s);
        }
    }
}
