//! Sample entries (the inside of `stsd`): reading them into a [`Track`] and building them from one.

use bytes::Bytes;

use super::boxes::{find, fourcc_str, BoxWriter, Boxes, Rd};
use crate::error::MediaError;
use crate::frame::{Codec, Track};

/// What a sample entry told about its track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleEntry {
    /// The entry type as found (`avc1`, `avc3`, `mp4a` …): `avc3`/`hev1` mean the parameter
    /// sets may also travel in band, not only in `init`.
    pub fourcc: [u8; 4],
    /// The codec the entry type and its configuration box name.
    pub codec: Codec,
    /// The codec configuration box's body (`avcC`, `hvcC`, `av1C`, the `esds` AudioSpecificConfig,
    /// `dOps` …), as the track's init data.
    pub init: Bytes,
    /// Video: the entry's width in pixels (0 for audio).
    pub width: u32,
    /// Video: the entry's height in pixels (0 for audio).
    pub height: u32,
    /// Audio: the sample rate in Hz (0 for video); from the version 2 field when the 16.16 one
    /// cannot hold it.
    pub rate: u32,
    /// Audio: channels (0 for video).
    pub channels: u32,
    /// Audio: bits per sample as the entry states it (usually 16, meaningless for coded audio).
    pub sample_size: u32,
}

/// Parses the body of `stsd` and returns its first sample entry.
pub fn parse_stsd(body: &[u8]) -> Result<SampleEntry, MediaError> {
    let mut r = Rd::new(body, "stsd");
    r.full()?;
    let n = r.u32()?;
    if n == 0 {
        return Err(MediaError::malformed("stsd", "no sample entry"));
    }
    let (typ, entry) = Boxes::new(r.rest())
        .next()
        .ok_or_else(|| MediaError::malformed("stsd", "no sample entry"))??;
    parse_entry(typ, entry)
}

fn parse_entry(typ: [u8; 4], body: &[u8]) -> Result<SampleEntry, MediaError> {
    let video = matches!(
        &typ,
        b"avc1" | b"avc3" | b"hev1" | b"hvc1" | b"av01" | b"vp09" | b"vp08"
    );
    let audio = matches!(&typ, b"mp4a" | b"Opus" | b"ac-3" | b".mp3");
    let mut e = SampleEntry {
        fourcc: typ,
        codec: Codec::Meta,
        init: Bytes::new(),
        width: 0,
        height: 0,
        rate: 0,
        channels: 0,
        sample_size: 0,
    };
    let mut r = Rd::new(body, "sample entry");
    r.skip(8)?; // reserved + data_reference_index
    let children: &[u8];
    if video {
        r.skip(16)?;
        e.width = r.u16()? as u32;
        e.height = r.u16()? as u32;
        r.skip(50)?;
        children = r.rest();
    } else if audio {
        let version = r.u16()?;
        r.skip(6)?;
        e.channels = r.u16()? as u32;
        e.sample_size = r.u16()? as u32;
        r.skip(4)?;
        e.rate = r.u32()? >> 16;
        match version {
            1 => r.skip(16)?,
            2 => {
                r.skip(4)?;
                let rate = f64::from_bits(r.u64()?);
                if rate.is_finite() && rate > 0.0 && rate < 1e7 {
                    e.rate = rate as u32;
                }
                e.channels = r.u32()?;
                r.skip(20)?;
            }
            _ => {}
        }
        children = r.rest();
    } else {
        return Err(MediaError::unsupported(
            "mp4 sample entry",
            fourcc_str(&typ),
        ));
    }
    let child = |t: &[u8; 4]| -> Result<&[u8], MediaError> {
        find(children, t)?.ok_or_else(|| {
            MediaError::malformed(
                "mp4 sample entry",
                format!("{} without {}", fourcc_str(&typ), fourcc_str(t)),
            )
        })
    };
    match &typ {
        b"avc1" | b"avc3" => {
            e.codec = Codec::H264;
            e.init = Bytes::copy_from_slice(child(b"avcC")?);
        }
        b"hev1" | b"hvc1" => {
            e.codec = Codec::Hevc;
            e.init = Bytes::copy_from_slice(child(b"hvcC")?);
        }
        b"av01" => {
            e.codec = Codec::Av1;
            e.init = Bytes::copy_from_slice(child(b"av1C")?);
        }
        b"vp09" => {
            e.codec = Codec::Vp9;
            e.init = Bytes::copy_from_slice(find(children, b"vpcC")?.unwrap_or(&[]));
        }
        b"vp08" => e.codec = Codec::Vp8,
        b"ac-3" => {
            e.codec = Codec::Ac3;
            e.init = Bytes::copy_from_slice(find(children, b"dac3")?.unwrap_or(&[]));
        }
        b".mp3" => e.codec = Codec::Mp3,
        b"Opus" => {
            e.codec = Codec::Opus;
            e.init = Bytes::from(dops_to_opushead(child(b"dOps")?)?);
            e.rate = 48000;
        }
        b"mp4a" => {
            let (oti, dsi) = parse_esds(child(b"esds")?)?;
            match oti {
                0x40 | 0x66 | 0x67 | 0x68 => {
                    e.codec = Codec::Aac;
                    if let Some((rate, ch)) = asc_rate_channels(dsi) {
                        if rate != 0 {
                            e.rate = rate;
                        }
                        if ch != 0 {
                            e.channels = ch;
                        }
                    }
                    e.init = Bytes::copy_from_slice(dsi);
                }
                0x69 | 0x6B => e.codec = Codec::Mp3,
                o => {
                    return Err(MediaError::unsupported(
                        "mp4a object type",
                        format!("0x{o:02x}"),
                    ))
                }
            }
        }
        _ => unreachable!(),
    }
    Ok(e)
}

fn desc_len(r: &mut Rd) -> Result<usize, MediaError> {
    let mut n = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        n = (n << 7) | (b & 0x7f) as usize;
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok(n)
}

/// Returns the objectTypeIndication and the DecoderSpecificInfo of an `esds` body.
pub fn parse_esds(body: &[u8]) -> Result<(u8, &[u8]), MediaError> {
    let mut r = Rd::new(body, "esds");
    r.full()?;
    if r.u8()? != 3 {
        return Err(MediaError::malformed("esds", "no ES_Descriptor"));
    }
    desc_len(&mut r)?;
    r.skip(2)?;
    let fl = r.u8()?;
    if fl & 0x80 != 0 {
        r.skip(2)?;
    }
    if fl & 0x40 != 0 {
        let n = r.u8()? as usize;
        r.skip(n)?;
    }
    if fl & 0x20 != 0 {
        r.skip(2)?;
    }
    if r.u8()? != 4 {
        return Err(MediaError::malformed("esds", "no DecoderConfigDescriptor"));
    }
    let dcd_len = desc_len(&mut r)?;
    let oti = r.u8()?;
    r.skip(12)?;
    if dcd_len > 13 && r.remaining() > 0 && r.u8()? == 5 {
        let n = desc_len(&mut r)?;
        let dsi = r.bytes(n)?;
        return Ok((oti, dsi));
    }
    Ok((oti, &[]))
}

/// Sample rate and channel count from an AudioSpecificConfig.
pub fn asc_rate_channels(asc: &[u8]) -> Option<(u32, u32)> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut bits = 0u64;
    for (i, b) in asc.iter().take(8).enumerate() {
        bits |= (*b as u64) << (56 - 8 * i);
    }
    let mut pos = 0u32;
    let mut take = |n: u32| {
        let v = (bits << pos) >> (64 - n);
        pos += n;
        v as u32
    };
    if asc.len() < 2 {
        return None;
    }
    let ot = take(5);
    if ot == 31 {
        take(6);
    }
    let fi = take(4);
    let rate = if fi == 15 {
        if asc.len() < 5 {
            return None;
        }
        take(24)
    } else {
        *RATES.get(fi as usize).unwrap_or(&0)
    };
    let ch = take(4);
    Some((rate, ch))
}

/// An AudioSpecificConfig for AAC-LC at `rate` Hz with `channels`.
pub fn make_asc(rate: u32, channels: u32) -> Vec<u8> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let fi = RATES.iter().position(|&r| r == rate).unwrap_or(4) as u16;
    let v: u16 = (2 << 11) | (fi << 7) | (((channels.min(15)) as u16) << 3);
    v.to_be_bytes().to_vec()
}

/// Converts the body of a `dOps` box to an OpusHead (RFC 7845) packet.
pub fn dops_to_opushead(d: &[u8]) -> Result<Vec<u8>, MediaError> {
    let mut r = Rd::new(d, "dOps");
    r.u8()?;
    let ch = r.u8()?;
    let preskip = r.u16()?;
    let rate = r.u32()?;
    let gain = r.u16()?;
    let family = r.u8()?;
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(ch);
    h.extend_from_slice(&preskip.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&gain.to_le_bytes());
    h.push(family);
    if family != 0 {
        h.extend_from_slice(r.bytes(2 + ch as usize)?);
    }
    Ok(h)
}

/// Converts an OpusHead packet to the body of a `dOps` box; a missing or short head gives a stereo
/// default.
pub fn opushead_to_dops(h: &[u8], channels: u32) -> Vec<u8> {
    if h.len() >= 19 && &h[..8] == b"OpusHead" {
        let ch = h[9];
        let mut d = vec![0, ch];
        d.extend_from_slice(&u16::from_le_bytes([h[10], h[11]]).to_be_bytes());
        d.extend_from_slice(&u32::from_le_bytes([h[12], h[13], h[14], h[15]]).to_be_bytes());
        d.extend_from_slice(&u16::from_le_bytes([h[16], h[17]]).to_be_bytes());
        d.push(h[18]);
        if h[18] != 0 && h.len() >= 21 + ch as usize {
            d.extend_from_slice(&h[19..21 + ch as usize]);
        } else if h[18] != 0 {
            let n = d.len();
            d[n - 1] = 0;
        }
        d
    } else {
        let ch = if channels == 0 {
            2
        } else {
            channels.min(2) as u8
        };
        let mut d = vec![0, ch];
        d.extend_from_slice(&312u16.to_be_bytes());
        d.extend_from_slice(&48000u32.to_be_bytes());
        d.extend_from_slice(&[0, 0, 0]);
        d
    }
}

fn write_esds(w: &mut BoxWriter, asc: &[u8], bps: u32) {
    fn desc(w: &mut BoxWriter, tag: u8, len: usize) {
        w.u8(tag);
        // 4-byte length form, as most muxers write it
        w.u8(0x80 | ((len >> 21) & 0x7f) as u8);
        w.u8(0x80 | ((len >> 14) & 0x7f) as u8);
        w.u8(0x80 | ((len >> 7) & 0x7f) as u8);
        w.u8((len & 0x7f) as u8);
    }
    let dsi_len = if asc.is_empty() { 0 } else { 5 + asc.len() };
    let dcd_len = 13 + dsi_len;
    let es_len = 3 + 5 + dcd_len + 5 + 1;
    w.start_full(b"esds", 0, 0);
    desc(w, 3, es_len);
    w.u16(1);
    w.u8(0);
    desc(w, 4, dcd_len);
    w.u8(0x40);
    w.u8(0x15);
    w.u24(0);
    w.u32(bps.saturating_mul(8));
    w.u32(bps.saturating_mul(8));
    if !asc.is_empty() {
        desc(w, 5, asc.len());
        w.bytes(asc);
    }
    desc(w, 6, 1);
    w.u8(2);
    w.end();
}

/// Writes the sample entry box for `t` (avc1+avcC, hvc1+hvcC, av01+av1C, mp4a+esds, Opus+dOps …).
pub fn write_entry(w: &mut BoxWriter, t: &Track) -> Result<(), MediaError> {
    let video = |w: &mut BoxWriter, typ: &[u8; 4]| {
        w.start(typ);
        w.zeros(6);
        w.u16(1);
        w.zeros(16);
        w.u16(t.width.min(0xffff) as u16);
        w.u16(t.height.min(0xffff) as u16);
        w.u32(0x0048_0000);
        w.u32(0x0048_0000);
        w.u32(0);
        w.u16(1);
        w.zeros(32);
        w.u16(0x18);
        w.u16(0xffff);
    };
    let audio = |w: &mut BoxWriter, typ: &[u8; 4], channels: u32, rate: u32| {
        w.start(typ);
        w.zeros(6);
        w.u16(1);
        w.zeros(8);
        w.u16(channels.clamp(1, 0xffff) as u16);
        w.u16(16);
        w.u32(0);
        w.u32(if rate > 0xffff { 0 } else { rate << 16 });
    };
    match t.codec {
        Codec::H264 | Codec::Hevc | Codec::Av1 => {
            if t.init.is_empty() {
                return Err(MediaError::malformed(
                    "mp4 writer",
                    format!("{} track {} has no init data", t.codec.mist_name(), t.id),
                ));
            }
            let (e, c) = match t.codec {
                Codec::H264 => (b"avc1", b"avcC"),
                Codec::Hevc => (b"hvc1", b"hvcC"),
                _ => (b"av01", b"av1C"),
            };
            video(w, e);
            w.start(c);
            w.bytes(&t.init);
            w.end();
            w.end();
        }
        Codec::Aac => {
            let asc: Vec<u8> = if t.init.is_empty() {
                make_asc(t.rate, t.channels)
            } else {
                t.init.to_vec()
            };
            let (r, c) = asc_rate_channels(&asc).unwrap_or((t.rate, t.channels));
            let rate = if t.rate != 0 { t.rate } else { r };
            let ch = if t.channels != 0 { t.channels } else { c };
            audio(w, b"mp4a", ch, rate);
            write_esds(w, &asc, t.bps);
            w.end();
        }
        Codec::Opus => {
            let dops = opushead_to_dops(&t.init, t.channels);
            audio(w, b"Opus", dops[1] as u32, 48000);
            w.start(b"dOps");
            w.bytes(&dops);
            w.end();
            w.end();
        }
        c => return Err(MediaError::unsupported("mp4 writer codec", c.mist_name())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_roundtrip() {
        assert_eq!(asc_rate_channels(&make_asc(44100, 2)), Some((44100, 2)));
        assert_eq!(asc_rate_channels(&[0x12, 0x10]), Some((44100, 2)));
        assert_eq!(asc_rate_channels(&[0x12]), None);
    }

    #[test]
    fn opus_head_roundtrip() {
        let dops = [0u8, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0];
        let head = dops_to_opushead(&dops).unwrap();
        assert_eq!(&head[..8], b"OpusHead");
        assert_eq!(opushead_to_dops(&head, 0), dops.to_vec());
    }
}
