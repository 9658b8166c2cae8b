//! H.264 / AVC: SPS parsing, the avcC record, Annex B <-> length-prefixed conversion, keyframes.
//!
//! The canonical payload form in the media model is NAL units with 4-byte big-endian length
//! prefixes (what FLV and MP4 carry); MPEG-TS carries Annex B (start codes). Everything here is
//! bounded by the input it is given and never panics.

use crate::error::MediaError;

/// NAL unit types we care about.
pub mod nal {
    /// A slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// A slice of an IDR picture: decoding can start here (a keyframe).
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information (captions, timing); not needed to decode.
    pub const SEI: u8 = 6;
    /// Sequence parameter set: size, profile, level; goes into avcC.
    pub const SPS: u8 = 7;
    /// Picture parameter set; goes into avcC.
    pub const PPS: u8 = 8;
    /// Access unit delimiter: MPEG-TS wants one before every access unit, MP4 and FLV none.
    pub const AUD: u8 = 9;
    /// SPS extension (auxiliary pictures such as alpha).
    pub const SPS_EXT: u8 = 13;
}

/// The type of a NAL unit from its first byte.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Largest SPS we parse; real ones are tens of bytes.
const MAX_SPS: usize = 4096;

/// A bit reader over an RBSP (emulation prevention bytes already removed). Reads past the end
/// return `NeedMore`-free malformed errors, never panic.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize, // in bits
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn eof() -> MediaError {
        MediaError::malformed("bitstream", "read past end")
    }

    /// Bits not read yet.
    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Reads one bit.
    pub fn read_bit(&mut self) -> Result<u32, MediaError> {
        let byte = *self.data.get(self.pos / 8).ok_or_else(Self::eof)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit as u32)
    }

    /// Reads one bit as a flag.
    pub fn read_flag(&mut self) -> Result<bool, MediaError> {
        Ok(self.read_bit()? == 1)
    }

    /// Reads up to 32 bits.
    pub fn read_bits(&mut self, n: u32) -> Result<u32, MediaError> {
        if n > 32 {
            return Err(MediaError::malformed(
                "bitstream",
                "read of more than 32 bits",
            ));
        }
        if (n as usize) > self.bits_left() {
            return Err(Self::eof());
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | self.read_bit()? as u64;
        }
        Ok(v as u32)
    }

    /// Steps over `n` bits (checked like a read).
    pub fn skip_bits(&mut self, n: usize) -> Result<(), MediaError> {
        if n > self.bits_left() {
            return Err(Self::eof());
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned exp-Golomb, values up to 2^32 - 2.
    pub fn read_ue(&mut self) -> Result<u32, MediaError> {
        let mut zeros = 0u32;
        while self.read_bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(MediaError::malformed(
                    "exp-golomb",
                    "more than 31 leading zeros",
                ));
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = self.read_bits(zeros)? as u64;
        let v = (1u64 << zeros) - 1 + rest;
        u32::try_from(v).map_err(|_| MediaError::malformed("exp-golomb", "value out of range"))
    }

    /// Signed exp-Golomb.
    pub fn read_se(&mut self) -> Result<i32, MediaError> {
        let k = self.read_ue()? as i64;
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

/// Removes emulation prevention bytes (00 00 03 -> 00 00) into `out`.
pub fn unescape_rbsp(nal: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
}

/// What we read from a sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High …).
    pub profile_idc: u8,
    /// The six constraint_set flags, as the byte after profile_idc (what codec strings carry).
    pub constraint_flags: u8,
    /// `level_idc` (31 is level 3.1).
    pub level_idc: u8,
    /// Which SPS this is (PPS refer to it).
    pub sps_id: u32,
    /// 1 for 4:2:0, 2 for 4:2:2, 3 for 4:4:4 (1 when the profile has no such field).
    pub chroma_format_idc: u32,
    /// Bits per luma sample.
    pub bit_depth_luma: u32,
    /// Bits per chroma sample.
    pub bit_depth_chroma: u32,
    /// Bits of `frame_num` in slice headers.
    pub log2_max_frame_num: u32,
    /// How picture order is signalled (0, 1 or 2; 2 means no B-frame reordering).
    pub pic_order_cnt_type: u32,
    /// Reference frames the decoder must keep.
    pub max_num_ref_frames: u32,
    /// Progressive only (no field or MBAFF coding).
    pub frame_mbs_only: bool,
    /// Display size after cropping.
    pub width: u32,
    /// Display height after cropping.
    pub height: u32,
    /// VUI timing, when present: frame rate = time_scale / (2 * num_units_in_tick).
    pub num_units_in_tick: u32,
    /// VUI `time_scale` (see `num_units_in_tick`).
    pub time_scale: u32,
}

impl Sps {
    /// Frames per 1000 seconds from VUI timing (MistServer's `fpks`), 0 when unknown.
    pub fn fpks(&self) -> u32 {
        if self.num_units_in_tick == 0 || self.time_scale == 0 {
            return 0;
        }
        let v = self.time_scale as u64 * 1000 / (2 * self.num_units_in_tick as u64);
        v.min(u32::MAX as u64) as u32
    }

    /// Parses an SPS NAL unit (with its one-byte NAL header, escaped as on the wire).
    pub fn parse(nal: &[u8]) -> Result<Sps, MediaError> {
        if nal.len() > MAX_SPS {
            return Err(MediaError::TooLarge {
                what: "SPS",
                size: nal.len() as u64,
                limit: MAX_SPS as u64,
            });
        }
        match nal_type(nal) {
            Some(nal::SPS) => {}
            Some(t) => {
                return Err(MediaError::malformed(
                    "SPS",
                    format!("NAL type {t} is not an SPS"),
                ))
            }
            None => return Err(MediaError::malformed("SPS", "empty")),
        }
        let mut rbsp = Vec::new();
        unescape_rbsp(&nal[1..], &mut rbsp);
        let mut r = BitReader::new(&rbsp);
        let mut s = Sps {
            profile_idc: r.read_bits(8)? as u8,
            constraint_flags: r.read_bits(8)? as u8,
            level_idc: r.read_bits(8)? as u8,
            sps_id: r.read_ue()?,
            chroma_format_idc: 1,
            bit_depth_luma: 8,
            bit_depth_chroma: 8,
            ..Sps::default()
        };
        if s.sps_id > 31 {
            return Err(MediaError::malformed("SPS", "seq_parameter_set_id > 31"));
        }
        let mut separate_colour_plane = false;
        if matches!(
            s.profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            s.chroma_format_idc = r.read_ue()?;
            if s.chroma_format_idc > 3 {
                return Err(MediaError::malformed("SPS", "chroma_format_idc > 3"));
            }
            if s.chroma_format_idc == 3 {
                separate_colour_plane = r.read_flag()?;
            }
            s.bit_depth_luma = r.read_ue()?.saturating_add(8);
            s.bit_depth_chroma = r.read_ue()?.saturating_add(8);
            if s.bit_depth_luma > 14 || s.bit_depth_chroma > 14 {
                return Err(MediaError::malformed("SPS", "bit depth > 14"));
            }
            r.read_flag()?; // qpprime_y_zero_transform_bypass_flag
            if r.read_flag()? {
                // seq_scaling_matrix_present_flag
                let lists = if s.chroma_format_idc != 3 { 8 } else { 12 };
                for i in 0..lists {
                    if r.read_flag()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let l2mfn = r.read_ue()?;
        if l2mfn > 12 {
            return Err(MediaError::malformed(
                "SPS",
                "log2_max_frame_num_minus4 > 12",
            ));
        }
        s.log2_max_frame_num = l2mfn + 4;
        s.pic_order_cnt_type = r.read_ue()?;
        match s.pic_order_cnt_type {
            0 => {
                r.read_ue()?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.read_flag()?;
                r.read_se()?;
                r.read_se()?;
                let n = r.read_ue()?;
                if n > 255 {
                    return Err(MediaError::malformed(
                        "SPS",
                        "num_ref_frames_in_pic_order_cnt_cycle > 255",
                    ));
                }
                for _ in 0..n {
                    r.read_se()?;
                }
            }
            2 => {}
            _ => return Err(MediaError::malformed("SPS", "pic_order_cnt_type > 2")),
        }
        s.max_num_ref_frames = r.read_ue()?;
        r.read_flag()?; // gaps_in_frame_num_value_allowed_flag
        let w_mbs = r.read_ue()? as u64 + 1;
        let h_map = r.read_ue()? as u64 + 1;
        s.frame_mbs_only = r.read_flag()?;
        if !s.frame_mbs_only {
            r.read_flag()?; // mb_adaptive_frame_field_flag
        }
        r.read_flag()?; // direct_8x8_inference_flag
        let mut width = w_mbs * 16;
        let mut height = h_map * 16 * if s.frame_mbs_only { 1 } else { 2 };
        if r.read_flag()? {
            // frame_cropping_flag
            let (l, rr, t, b) = (
                r.read_ue()? as u64,
                r.read_ue()? as u64,
                r.read_ue()? as u64,
                r.read_ue()? as u64,
            );
            let chroma_array_type = if separate_colour_plane {
                0
            } else {
                s.chroma_format_idc
            };
            let (sub_w, sub_h) = match chroma_array_type {
                1 => (2, 2),
                2 => (2, 1),
                _ => (1, 1),
            };
            let crop_x = sub_w;
            let crop_y = sub_h * if s.frame_mbs_only { 1 } else { 2 };
            let cw = (l + rr) * crop_x;
            let ch = (t + b) * crop_y;
            if cw >= width || ch >= height {
                return Err(MediaError::malformed(
                    "SPS",
                    "cropping larger than the picture",
                ));
            }
            width -= cw;
            height -= ch;
        }
        if width > 65536 || height > 65536 {
            return Err(MediaError::malformed("SPS", "picture larger than 65536"));
        }
        s.width = width as u32;
        s.height = height as u32;
        if r.read_flag().unwrap_or(false) {
            // VUI; a truncated VUI leaves the timing unknown rather than failing the SPS.
            if let Ok((n, t)) = parse_vui_timing(&mut r) {
                s.num_units_in_tick = n;
                s.time_scale = t;
            }
        }
        Ok(s)
    }
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), MediaError> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.read_se()?;
            // delta_scale is -128..=127 in a valid stream; a hostile one may be any i32
            next = last.wrapping_add(delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

fn parse_vui_timing(r: &mut BitReader) -> Result<(u32, u32), MediaError> {
    if r.read_flag()? {
        // aspect_ratio_info_present_flag
        if r.read_bits(8)? == 255 {
            r.skip_bits(32)?; // sar_width, sar_height
        }
    }
    if r.read_flag()? {
        r.read_flag()?; // overscan_appropriate
    }
    if r.read_flag()? {
        // video_signal_type_present_flag
        r.skip_bits(4)?;
        if r.read_flag()? {
            r.skip_bits(24)?;
        }
    }
    if r.read_flag()? {
        r.read_ue()?;
        r.read_ue()?;
    }
    if r.read_flag()? {
        let n = r.read_bits(32)?;
        let t = r.read_bits(32)?;
        return Ok((n, t));
    }
    Ok((0, 0))
}

/// The AVCDecoderConfigurationRecord (`avcC`), as FLV and MP4 carry it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AvcC {
    /// `AVCProfileIndication`.
    pub profile: u8,
    /// `profile_compatibility` (the constraint flags).
    pub compat: u8,
    /// `AVCLevelIndication`.
    pub level: u8,
    /// NAL length prefix size in bytes (1, 2 or 4).
    pub length_size: u8,
    /// The SPS NAL units (without length prefixes).
    pub sps: Vec<Vec<u8>>,
    /// The PPS NAL units (without length prefixes).
    pub pps: Vec<Vec<u8>>,
    /// Trailing bytes after the PPS list (the high-profile extension), kept as is.
    pub ext: Vec<u8>,
}

impl AvcC {
    /// Parses an avcC record; the SPS and PPS lists are bounded by the record's own length.
    pub fn parse(b: &[u8]) -> Result<AvcC, MediaError> {
        let err = |d: &str| MediaError::malformed("avcC", d.to_string());
        if b.len() < 7 {
            return Err(err("shorter than 7 bytes"));
        }
        if b[0] != 1 {
            return Err(err("configurationVersion is not 1"));
        }
        let mut a = AvcC {
            profile: b[1],
            compat: b[2],
            level: b[3],
            length_size: (b[4] & 3) + 1,
            ..AvcC::default()
        };
        if a.length_size == 3 {
            return Err(err("NAL length size 3"));
        }
        let mut pos = 5;
        let nsps = (b[pos] & 0x1f) as usize;
        pos += 1;
        for _ in 0..nsps {
            a.sps.push(
                read_u16_prefixed(b, &mut pos)
                    .ok_or_else(|| err("truncated SPS"))?
                    .to_vec(),
            );
        }
        let npps = *b.get(pos).ok_or_else(|| err("missing PPS count"))? as usize;
        pos += 1;
        for _ in 0..npps {
            a.pps.push(
                read_u16_prefixed(b, &mut pos)
                    .ok_or_else(|| err("truncated PPS"))?
                    .to_vec(),
            );
        }
        a.ext = b[pos..].to_vec();
        Ok(a)
    }

    /// Builds a record from SPS and PPS NAL units (4-byte lengths; profile/level from the first SPS).
    pub fn from_parameter_sets(sps: &[&[u8]], pps: &[&[u8]]) -> Result<AvcC, MediaError> {
        let first = sps
            .first()
            .ok_or_else(|| MediaError::malformed("avcC", "no SPS"))?;
        if first.len() < 4 {
            return Err(MediaError::malformed("avcC", "SPS shorter than 4 bytes"));
        }
        if sps.len() > 31 || pps.len() > 255 {
            return Err(MediaError::malformed("avcC", "too many parameter sets"));
        }
        Ok(AvcC {
            profile: first[1],
            compat: first[2],
            level: first[3],
            length_size: 4,
            sps: sps.iter().map(|s| s.to_vec()).collect(),
            pps: pps.iter().map(|s| s.to_vec()).collect(),
            ext: Vec::new(),
        })
    }

    /// Serialises the record. Parameter sets longer than 65535 bytes or lists longer than the
    /// format allows are an error.
    pub fn build(&self) -> Result<Vec<u8>, MediaError> {
        if self.sps.len() > 31 || self.pps.len() > 255 {
            return Err(MediaError::malformed("avcC", "too many parameter sets"));
        }
        let len_code = match self.length_size {
            1 => 0,
            2 => 1,
            4 => 3,
            _ => {
                return Err(MediaError::malformed(
                    "avcC",
                    "NAL length size must be 1, 2 or 4",
                ))
            }
        };
        let mut out = Vec::with_capacity(
            16 + self
                .sps
                .iter()
                .chain(&self.pps)
                .map(|s| s.len() + 2)
                .sum::<usize>(),
        );
        out.extend_from_slice(&[
            1,
            self.profile,
            self.compat,
            self.level,
            0xfc | len_code,
            0xe0 | self.sps.len() as u8,
        ]);
        for s in &self.sps {
            push_u16_prefixed(&mut out, s)?;
        }
        out.push(self.pps.len() as u8);
        for p in &self.pps {
            push_u16_prefixed(&mut out, p)?;
        }
        out.extend_from_slice(&self.ext);
        Ok(out)
    }

    /// The first SPS, parsed.
    pub fn parse_sps(&self) -> Result<Sps, MediaError> {
        Sps::parse(
            self.sps
                .first()
                .ok_or_else(|| MediaError::malformed("avcC", "no SPS"))?,
        )
    }

    /// SPS and PPS as an Annex B byte string (for TS muxers that prepend them to keyframes).
    pub fn to_annexb(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for n in self.sps.iter().chain(&self.pps) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }
}

fn read_u16_prefixed<'a>(b: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = u16::from_be_bytes([*b.get(*pos)?, *b.get(*pos + 1)?]) as usize;
    let start = *pos + 2;
    let s = b.get(start..start.checked_add(len)?)?;
    *pos = start + len;
    Some(s)
}

fn push_u16_prefixed(out: &mut Vec<u8>, s: &[u8]) -> Result<(), MediaError> {
    let len = u16::try_from(s.len())
        .map_err(|_| MediaError::malformed("avcC", "parameter set longer than 65535"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s);
    Ok(())
}

/// Iterates the NAL units of an Annex B byte string (start codes 00 00 01 or 00 00 00 01). Bytes
/// before the first start code are ignored; trailing zero bytes of a NAL are trimmed.
pub struct AnnexBIter<'a> {
    data: &'a [u8],
    pos: usize,
}

/// The NAL units of an Annex B byte string.
pub fn annexb_nals(data: &[u8]) -> AnnexBIter<'_> {
    let pos = find_start_code(data, 0)
        .map(|(_, end)| end)
        .unwrap_or(data.len());
    AnnexBIter { data, pos }
}

/// Finds the next 00 00 01 at or after `from`; returns (start of the code, first byte after it).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

impl<'a> Iterator for AnnexBIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.pos >= self.data.len() {
                return None;
            }
            let (end, next) = match find_start_code(self.data, self.pos) {
                Some((s, e)) => (s, e),
                None => (self.data.len(), self.data.len()),
            };
            let mut nal = &self.data[self.pos..end];
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            self.pos = next;
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

/// Iterates the NAL units of a length-prefixed byte string. Yields an error (once, then stops) when
/// a length runs past the end.
pub struct LengthIter<'a> {
    data: &'a [u8],
    size: usize,
    failed: bool,
}

/// The NAL units of a byte string with `length_size`-byte length prefixes (1 to 4; any other
/// size yields nothing).
pub fn length_nals(data: &[u8], length_size: usize) -> LengthIter<'_> {
    LengthIter {
        data,
        size: length_size,
        failed: !(1..=4).contains(&length_size),
    }
}

impl<'a> Iterator for LengthIter<'a> {
    type Item = Result<&'a [u8], MediaError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.data.is_empty() {
            return None;
        }
        if self.data.len() < self.size {
            self.failed = true;
            return Some(Err(MediaError::malformed(
                "NAL length",
                "truncated length prefix",
            )));
        }
        let len = self.data[..self.size]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | b as usize);
        let rest = &self.data[self.size..];
        if len > rest.len() {
            self.failed = true;
            return Some(Err(MediaError::malformed(
                "NAL length",
                format!("{len} exceeds the {} bytes left", rest.len()),
            )));
        }
        self.data = &rest[len..];
        Some(Ok(&rest[..len]))
    }
}

/// Annex B -> 4-byte length prefixes, appended to `out`.
pub fn annexb_to_length(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len());
    for n in annexb_nals(data) {
        out.extend_from_slice(&(n.len() as u32).to_be_bytes());
        out.extend_from_slice(n);
    }
}

/// Length prefixes (of `length_size` bytes) -> Annex B with 4-byte start codes, appended to `out`.
pub fn length_to_annexb(
    data: &[u8],
    length_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), MediaError> {
    out.reserve(data.len() + 16);
    for n in length_nals(data, length_size) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(n?);
    }
    Ok(())
}

/// True when a length-prefixed access unit contains an IDR slice.
pub fn is_keyframe(data: &[u8], length_size: usize) -> bool {
    length_nals(data, length_size).any(|n| matches!(n, Ok(n) if nal_type(n) == Some(nal::IDR)))
}

/// True when an Annex B access unit contains an IDR slice.
pub fn is_keyframe_annexb(data: &[u8]) -> bool {
    annexb_nals(data).any(|n| nal_type(n) == Some(nal::IDR))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CROP: &[u8] = include_bytes!("../../tests/fixtures/h264/testsrc_320x180_crop.h264");
    const FLV: &[u8] = include_bytes!("../../tests/fixtures/flv/testsrc_320x240_1s.flv");

    /// Fuzz find (h264_sps, 2026-11-26): a scaling list delta near i32::MAX overflowed `last + delta`.
    #[test]
    fn huge_scaling_list_delta_is_no_panic() {
        let data = b"\x00\x00\xff\x01\x00\x67\x1e\x2d\x00\x00\x01\x00\x45\x00\x00\x01\x67\x56\x56\x56\x56\x54\x62\x66\xea\x01\x09\x08\x00\x00\x01\x67\x56\x56\x56\x56\x54\x62\x66\xea\x01\x09\x08\x00\x00\x00\x00\xff\xff\xff\x2c\xfd\xff";
        // Refused with a typed error, not a panic or an allocation of the delta's size.
        let r = Sps::parse(data);
        assert!(matches!(r, Err(MediaError::Malformed { .. })), "{r:?}");
        for n in annexb_nals(data) {
            let r = Sps::parse(n);
            assert!(matches!(r, Err(MediaError::Malformed { .. })), "{r:?}");
        }
    }

    #[test]
    fn exp_golomb() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3, 00111 -> 6
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0011, 0b1000_0000]);
        assert_eq!(r.read_ue().unwrap(), 0);
        assert_eq!(r.read_ue().unwrap(), 1);
        assert_eq!(r.read_ue().unwrap(), 2);
        assert_eq!(r.read_ue().unwrap(), 3);
        assert_eq!(r.read_ue().unwrap(), 6);
        let mut r = BitReader::new(&[0b0100_1100]);
        assert_eq!(r.read_se().unwrap(), 1);
        assert_eq!(r.read_se().unwrap(), -1);
        assert!(BitReader::new(&[0, 0, 0, 0, 0]).read_ue().is_err());
        assert!(BitReader::new(&[]).read_bit().is_err());
    }

    #[test]
    fn sps_of_ffmpeg_stream_with_cropping() {
        // ffmpeg's trace_headers: profile 100, level 12, 20x12 MBs, crop bottom 6, tick 1/50.
        let sps = annexb_nals(CROP)
            .find(|n| nal_type(n) == Some(nal::SPS))
            .unwrap();
        let s = Sps::parse(sps).unwrap();
        assert_eq!((s.profile_idc, s.level_idc), (100, 12));
        assert_eq!((s.width, s.height), (320, 180));
        assert_eq!((s.num_units_in_tick, s.time_scale), (1, 50));
        assert_eq!(s.fpks(), 25_000);
        assert!(s.frame_mbs_only);
    }

    #[test]
    fn annexb_round_trip_and_keyframes() {
        let nals: Vec<_> = annexb_nals(CROP).collect();
        // ffmpeg's trace_headers counts: 10 slices (1 IDR), 1 SEI, 1 SPS, 1 PPS.
        assert_eq!(
            nals.iter()
                .filter(|n| nal_type(n) == Some(nal::IDR))
                .count(),
            1
        );
        assert_eq!(
            nals.iter()
                .filter(|n| nal_type(n) == Some(nal::SLICE))
                .count(),
            9
        );
        assert_eq!(
            nals.iter()
                .filter(|n| nal_type(n) == Some(nal::SPS))
                .count(),
            1
        );
        let mut lp = Vec::new();
        annexb_to_length(CROP, &mut lp);
        assert!(is_keyframe(&lp, 4));
        assert_eq!(length_nals(&lp, 4).count(), nals.len());
        let mut back = Vec::new();
        length_to_annexb(&lp, 4, &mut back).unwrap();
        assert_eq!(annexb_nals(&back).collect::<Vec<_>>(), nals);
        assert!(is_keyframe_annexb(CROP));
        // A P-slice alone is not a keyframe.
        let p = nals
            .iter()
            .find(|n| nal_type(n) == Some(nal::SLICE))
            .unwrap();
        let mut one = Vec::new();
        annexb_to_length(&[&[0, 0, 1][..], p].concat(), &mut one);
        assert!(!is_keyframe(&one, 4));
    }

    #[test]
    fn truncated_length_is_an_error() {
        assert!(length_nals(&[0, 0, 0, 9, 1, 2], 4).next().unwrap().is_err());
        assert!(length_to_annexb(&[0, 0], 4, &mut Vec::new()).is_err());
    }

    #[test]
    fn avcc_from_flv_round_trips() {
        // The FLV's first video tag is the AVC sequence header: tag at 13, body at 24,
        // then 5 bytes (frame type/codec, packet type, composition time) before the avcC.
        let tag_len = u32::from_be_bytes([0, FLV[14], FLV[15], FLV[16]]) as usize;
        assert_eq!(FLV[13], 18); // onMetaData first
        let v = 13 + 11 + tag_len + 4;
        assert_eq!(FLV[v], 9);
        let vlen = u32::from_be_bytes([0, FLV[v + 1], FLV[v + 2], FLV[v + 3]]) as usize;
        let body = &FLV[v + 11..v + 11 + vlen];
        assert_eq!(&body[..2], &[0x17, 0]);
        let avcc = AvcC::parse(&body[5..]).unwrap();
        assert_eq!(avcc.length_size, 4);
        assert_eq!((avcc.sps.len(), avcc.pps.len()), (1, 1));
        let s = avcc.parse_sps().unwrap();
        assert_eq!((s.width, s.height, s.profile_idc), (320, 240, 100));
        assert_eq!(avcc.build().unwrap(), &body[5..]);
        let rebuilt = AvcC::from_parameter_sets(&[&avcc.sps[0]], &[&avcc.pps[0]]).unwrap();
        assert_eq!(rebuilt.profile, 100);
        assert!(AvcC::parse(&body[5..20]).is_err());
    }
}
