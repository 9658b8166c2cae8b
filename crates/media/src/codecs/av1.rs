//! AV1: OBU headers, the sequence header (size, profile, level, colour format) and the av1C
//! record (the AV1 `Track::init`).

use crate::h264::BitReader;
use crate::MediaError;

/// OBU type of the sequence header: what av1C carries and a decoder needs first.
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU type of the temporal delimiter: starts each temporal unit in a raw stream (MP4 and
/// Matroska samples must not carry it).
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// One OBU: its type and the whole OBU bytes (header included) plus the payload range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    /// The OBU type (see the `OBU_*` constants).
    pub obu_type: u8,
    /// The whole OBU, header included (to copy it as it is).
    pub bytes: &'a [u8],
    /// The payload after the header and size.
    pub payload: &'a [u8],
}

/// Reads a leb128 value (at most 8 bytes, value below 2^32); returns (value, bytes used).
pub fn read_leb128(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().take(8).enumerate() {
        v |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return (v <= u32::MAX as u64).then_some((v, i + 1));
        }
    }
    None
}

/// Iterates the OBUs of a low-overhead bitstream (every OBU with obu_has_size_field; an OBU
/// without a size runs to the end). Stops at the first malformed OBU.
pub fn obus(mut data: &[u8]) -> impl Iterator<Item = Obu<'_>> {
    std::iter::from_fn(move || {
        let h = *data.first()?;
        if h & 0x80 != 0 {
            data = &[];
            return None;
        }
        let obu_type = (h >> 3) & 0xF;
        let mut pos = 1 + usize::from(h & 0x04 != 0);
        if data.len() < pos {
            data = &[];
            return None;
        }
        let size = if h & 0x02 != 0 {
            let (size, n) = read_leb128(&data[pos..])?;
            pos += n;
            size as usize
        } else {
            data.len() - pos
        };
        let end = pos.checked_add(size).filter(|&e| e <= data.len());
        let Some(end) = end else {
            data = &[];
            return None;
        };
        let obu = Obu {
            obu_type,
            bytes: &data[..end],
            payload: &data[pos..end],
        };
        data = &data[end..];
        Some(obu)
    })
}

/// What the sequence header tells a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceHeader {
    /// `seq_profile` (0 Main, 1 High, 2 Professional).
    pub profile: u8,
    /// `seq_level_idx` of the first operating point.
    pub level_idx: u8,
    /// `seq_tier` of the first operating point (true: High tier).
    pub tier: bool,
    /// More than 8 bits per sample.
    pub high_bitdepth: bool,
    /// 12 bits per sample (with `high_bitdepth`, profile 2).
    pub twelve_bit: bool,
    /// No chroma planes.
    pub monochrome: bool,
    /// Chroma subsampled horizontally (4:2:0 and 4:2:2).
    pub subsampling_x: bool,
    /// Chroma subsampled vertically (4:2:0).
    pub subsampling_y: bool,
    /// Where chroma samples sit (av1C copies it).
    pub chroma_sample_position: u8,
    /// `max_frame_width_minus_1` + 1.
    pub width: u32,
    /// `max_frame_height_minus_1` + 1.
    pub height: u32,
}

/// Parses the payload of a sequence header OBU.
pub fn parse_sequence_header(payload: &[u8]) -> Result<SequenceHeader, MediaError> {
    let mut r = BitReader::new(payload);
    let e = |_: MediaError| MediaError::malformed("AV1 sequence header", "truncated");
    let profile = r.read_bits(3).map_err(e)? as u8;
    if profile > 2 {
        return Err(MediaError::unsupported(
            "AV1 sequence header",
            format!("profile {profile}"),
        ));
    }
    let _still = r.read_flag().map_err(e)?;
    let reduced = r.read_flag().map_err(e)?;
    let (level_idx, tier);
    if reduced {
        level_idx = r.read_bits(5).map_err(e)? as u8;
        tier = false;
    } else {
        let timing_info = r.read_flag().map_err(e)?;
        let mut decoder_model_info = false;
        let mut buffer_delay_len = 0;
        if timing_info {
            r.skip_bits(64).map_err(e)?;
            if r.read_flag().map_err(e)? {
                // num_ticks_per_picture_minus_1, uvlc
                let mut zeros = 0;
                while !r.read_flag().map_err(e)? {
                    zeros += 1;
                    if zeros >= 32 {
                        return Err(MediaError::malformed(
                            "AV1 sequence header",
                            "uvlc too long",
                        ));
                    }
                }
                r.skip_bits(zeros).map_err(e)?;
            }
            decoder_model_info = r.read_flag().map_err(e)?;
            if decoder_model_info {
                buffer_delay_len = r.read_bits(5).map_err(e)? as usize + 1;
                r.skip_bits(32 + 5 + 5).map_err(e)?;
            }
        }
        let initial_display_delay = r.read_flag().map_err(e)?;
        let ops = r.read_bits(5).map_err(e)? + 1;
        let mut first = None;
        for _ in 0..ops {
            r.skip_bits(12).map_err(e)?;
            let lvl = r.read_bits(5).map_err(e)? as u8;
            let t = lvl > 7 && r.read_flag().map_err(e)?;
            if decoder_model_info && r.read_flag().map_err(e)? {
                r.skip_bits(2 * buffer_delay_len + 1).map_err(e)?;
            }
            if initial_display_delay && r.read_flag().map_err(e)? {
                r.skip_bits(4).map_err(e)?;
            }
            first.get_or_insert((lvl, t));
        }
        (level_idx, tier) = first.unwrap_or((0, false));
    }
    let wbits = r.read_bits(4).map_err(e)? + 1;
    let hbits = r.read_bits(4).map_err(e)? + 1;
    let width = r.read_bits(wbits).map_err(e)? + 1;
    let height = r.read_bits(hbits).map_err(e)? + 1;
    if !reduced && r.read_flag().map_err(e)? {
        r.skip_bits(7).map_err(e)?;
    }
    r.skip_bits(3).map_err(e)?; // 128x128, filter intra, intra edge
    if !reduced {
        r.skip_bits(4).map_err(e)?; // interintra, masked, warped, dual filter
        let order_hint = r.read_flag().map_err(e)?;
        if order_hint {
            r.skip_bits(2).map_err(e)?;
        }
        let force_sct = if r.read_flag().map_err(e)? {
            2
        } else {
            r.read_bits(1).map_err(e)?
        };
        if force_sct > 0 && !r.read_flag().map_err(e)? {
            r.skip_bits(1).map_err(e)?;
        }
        if order_hint {
            r.skip_bits(3).map_err(e)?;
        }
    }
    r.skip_bits(3).map_err(e)?; // superres, cdef, restoration
                                // color_config
    let high_bitdepth = r.read_flag().map_err(e)?;
    let twelve_bit = profile == 2 && high_bitdepth && r.read_flag().map_err(e)?;
    let monochrome = profile != 1 && r.read_flag().map_err(e)?;
    let (mut cp, mut tc, mut mc) = (2, 2, 2);
    if r.read_flag().map_err(e)? {
        cp = r.read_bits(8).map_err(e)?;
        tc = r.read_bits(8).map_err(e)?;
        mc = r.read_bits(8).map_err(e)?;
    }
    let (mut sx, mut sy, mut csp) = (true, true, 0);
    if monochrome {
        r.skip_bits(1).map_err(e)?;
    } else if cp == 1 && tc == 13 && mc == 0 {
        (sx, sy) = (false, false);
    } else {
        r.skip_bits(1).map_err(e)?; // color_range
        match profile {
            0 => {}
            1 => (sx, sy) = (false, false),
            _ if twelve_bit => {
                sx = r.read_flag().map_err(e)?;
                sy = sx && r.read_flag().map_err(e)?;
            }
            _ => (sx, sy) = (true, false),
        }
        if sx && sy {
            csp = r.read_bits(2).map_err(e)? as u8;
        }
    }
    Ok(SequenceHeader {
        profile,
        level_idx,
        tier,
        high_bitdepth,
        twelve_bit,
        monochrome,
        subsampling_x: sx,
        subsampling_y: sy,
        chroma_sample_position: csp,
        width,
        height,
    })
}

/// Finds and parses the sequence header in a temporal unit or av1C configOBUs.
pub fn find_sequence_header(data: &[u8]) -> Option<(SequenceHeader, &[u8])> {
    obus(data)
        .find(|o| o.obu_type == OBU_SEQUENCE_HEADER)
        .and_then(|o| parse_sequence_header(o.payload).ok().map(|s| (s, o.bytes)))
}

/// Builds an av1C record (AV1-ISOBMFF section 2.3) carrying the sequence header OBU `seq_obu`.
pub fn build_av1c(seq: &SequenceHeader, seq_obu: &[u8]) -> Vec<u8> {
    let mut o = Vec::with_capacity(4 + seq_obu.len());
    o.push(0x81);
    o.push(seq.profile << 5 | (seq.level_idx & 0x1F));
    o.push(
        u8::from(seq.tier) << 7
            | u8::from(seq.high_bitdepth) << 6
            | u8::from(seq.twelve_bit) << 5
            | u8::from(seq.monochrome) << 4
            | u8::from(seq.subsampling_x) << 3
            | u8::from(seq.subsampling_y) << 2
            | (seq.chroma_sample_position & 3),
    );
    o.push(0);
    o.extend_from_slice(seq_obu);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    // A sequence header OBU from libaom/SVT for 320x240 main profile (type 1, has_size).
    #[test]
    fn sequence_header_and_av1c() {
        // seq_profile 0, still 0, reduced 0, timing 0, initial_display_delay 0, 1 op,
        // idc 0, level 4 (seq_tier absent), frame_width_bits 9, height_bits 8, 319, 239, ...
        let mut bits = String::new();
        bits += "000";
        bits += "0";
        bits += "0";
        bits += "0";
        bits += "0";
        bits += "00000";
        bits += "000000000000";
        bits += "00100";
        bits += "1000";
        bits += "0111";
        bits += &format!("{:09b}", 319);
        bits += &format!("{:08b}", 239);
        bits += "0"; // frame_id_numbers_present
        bits += "000";
        bits += "0000";
        bits += "0"; // no order hint
        bits += "1"; // seq_choose_screen_content_tools -> 2
        bits += "1"; // seq_choose_integer_mv
        bits += "000"; // superres cdef restoration
        bits += "0";
        bits += "0";
        bits += "0";
        bits += "0"; // hbd, mono, no color desc, range
        bits += "00"; // chroma_sample_position
        bits += "0"; // separate_uv_delta_q
        bits += "1"; // trailing
        let pad = (8 - bits.len() % 8) % 8;
        bits.push_str(&"0".repeat(pad));
        let payload: Vec<u8> = (0..bits.len() / 8)
            .map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap())
            .collect();
        let mut obu = vec![0x0A, payload.len() as u8];
        obu.extend_from_slice(&payload);
        let mut tu = vec![0x12, 0x00];
        tu.extend_from_slice(&obu);
        let (s, bytes) = find_sequence_header(&tu).unwrap();
        assert_eq!(
            (s.width, s.height, s.profile, s.level_idx),
            (320, 240, 0, 4)
        );
        assert!(s.subsampling_x && s.subsampling_y);
        assert_eq!(bytes, &obu[..]);
        let c = build_av1c(&s, bytes);
        assert_eq!(&c[..4], &[0x81, 0x04, 0x0C, 0x00]);
        for n in 0..tu.len() {
            let _ = find_sequence_header(&tu[..n]);
        }
    }
}
