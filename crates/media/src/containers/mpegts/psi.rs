//! Program-specific information: section reassembly, PAT and PMT parsing and writing.

use super::crc32;
use crate::MediaError;

/// The longest PSI section (header + body + CRC) we reassemble: 3 + 4093 bytes for private
/// sections; PAT/PMT are limited to 1024 by the standard.
pub const MAX_SECTION: usize = 4096;

/// Reassembles PSI sections carried on one PID from TS packet payloads.
#[derive(Debug, Default, Clone)]
pub struct SectionAssembler {
    buf: Vec<u8>,
    /// True while a section started in an earlier packet is being collected.
    active: bool,
}

impl SectionAssembler {
    /// Forgets a partial section (after a continuity error).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    /// Feeds the payload of one TS packet; calls `f` with every complete section (header
    /// included, CRC not checked here).
    pub fn push(&mut self, payload: &[u8], unit_start: bool, mut f: impl FnMut(&[u8])) {
        let mut data = payload;
        if unit_start {
            let Some((&pointer, rest)) = data.split_first() else {
                return;
            };
            let pointer = pointer as usize;
            if pointer > rest.len() {
                self.reset();
                return;
            }
            if self.active {
                self.buf.extend_from_slice(&rest[..pointer]);
                self.emit_complete(&mut f);
            }
            self.reset();
            data = &rest[pointer..];
            self.active = true;
        } else if !self.active {
            return;
        }
        self.buf.extend_from_slice(data);
        self.emit_complete(&mut f);
    }

    fn emit_complete(&mut self, f: &mut impl FnMut(&[u8])) {
        loop {
            if self.buf.is_empty() || self.buf[0] == 0xFF {
                // stuffing: nothing more in this packet
                if !self.buf.is_empty() {
                    self.reset();
                }
                return;
            }
            if self.buf.len() < 3 {
                return;
            }
            let len = 3 + (usize::from(self.buf[1] & 0x0F) << 8 | usize::from(self.buf[2]));
            if len > MAX_SECTION {
                self.reset();
                return;
            }
            if self.buf.len() < len {
                return;
            }
            f(&self.buf[..len]);
            self.buf.drain(..len);
        }
    }
}

/// Checks a section's syntax header and CRC; returns (table_id, table_id_extension, body),
/// where body is what follows last_section_number and precedes the CRC.
pub fn parse_long_section(sec: &[u8]) -> Result<(u8, u16, &[u8]), MediaError> {
    if sec.len() < 12 {
        return Err(MediaError::malformed(
            "PSI section",
            "shorter than 12 bytes",
        ));
    }
    if sec[1] & 0x80 == 0 {
        return Err(MediaError::malformed(
            "PSI section",
            "section_syntax_indicator not set",
        ));
    }
    if crc32(sec) != 0 {
        return Err(MediaError::malformed("PSI section", "CRC mismatch"));
    }
    if sec[5] & 0x01 == 0 {
        // current_next_indicator = 0: a table that does not apply yet
        return Err(MediaError::unsupported("PSI section", "not current"));
    }
    let ext = u16::from_be_bytes([sec[3], sec[4]]);
    Ok((sec[0], ext, &sec[8..sec.len() - 4]))
}

/// A PAT: program numbers and their PMT PIDs (program 0, the NIT, is left out).
pub fn parse_pat(sec: &[u8]) -> Result<Vec<(u16, u16)>, MediaError> {
    let (table_id, _tsid, body) = parse_long_section(sec)?;
    if table_id != 0 {
        return Err(MediaError::malformed("PAT", format!("table_id {table_id}")));
    }
    Ok(body
        .chunks_exact(4)
        .filter_map(|c| {
            let program = u16::from_be_bytes([c[0], c[1]]);
            let pid = u16::from_be_bytes([c[2], c[3]]) & 0x1FFF;
            (program != 0).then_some((program, pid))
        })
        .collect())
}

/// One elementary stream as a PMT lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    /// The stream type (see [`super::stream_type`]); with the descriptors, what codec it carries.
    pub stream_type: u8,
    /// The PID its packets carry.
    pub pid: u16,
    /// The raw ES_info descriptors.
    pub descriptors: Vec<u8>,
}

impl PmtStream {
    /// The payload of the first descriptor with `tag`, if any.
    pub fn descriptor(&self, tag: u8) -> Option<&[u8]> {
        descriptors(&self.descriptors)
            .find(|(t, _)| *t == tag)
            .map(|(_, d)| d)
    }

    /// The format_identifier of a registration descriptor (tag 5), e.g. `b"Opus"`.
    pub fn registration(&self) -> Option<[u8; 4]> {
        descriptors(&self.descriptors)
            .find(|(t, d)| *t == 5 && d.len() >= 4)
            .map(|(_, d)| [d[0], d[1], d[2], d[3]])
    }

    /// ISO 639 language code from descriptor 0x0A, if present.
    pub fn language(&self) -> Option<String> {
        let d = self.descriptor(0x0A)?;
        let code = d.get(..3)?;
        code.iter()
            .all(u8::is_ascii_alphabetic)
            .then(|| String::from_utf8_lossy(code).into_owned())
    }
}

/// Iterates (tag, payload) over a descriptor loop, stopping at the first truncated descriptor.
pub fn descriptors(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 2 {
            return None;
        }
        let tag = data[0];
        let len = data[1] as usize;
        let d = data.get(2..2 + len)?;
        data = &data[2 + len..];
        Some((tag, d))
    })
}

/// A parsed PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    /// The program this PMT describes.
    pub program: u16,
    /// The PID whose packets carry the program clock (PCR).
    pub pcr_pid: u16,
    /// The elementary streams, in the PMT's order.
    pub streams: Vec<PmtStream>,
}

/// Parses a PMT section (its CRC checked). The stream list is bounded by the section's own
/// length (a 12-bit field), so it needs no limit of its own.
pub fn parse_pmt(sec: &[u8]) -> Result<Pmt, MediaError> {
    let (table_id, program, body) = parse_long_section(sec)?;
    if table_id != 2 {
        return Err(MediaError::malformed("PMT", format!("table_id {table_id}")));
    }
    if body.len() < 4 {
        return Err(MediaError::malformed("PMT", "too short"));
    }
    let pcr_pid = u16::from_be_bytes([body[0], body[1]]) & 0x1FFF;
    let info_len = usize::from(u16::from_be_bytes([body[2], body[3]]) & 0x0FFF);
    let mut rest = body
        .get(4 + info_len..)
        .ok_or_else(|| MediaError::malformed("PMT", "program_info overruns section"))?;
    let mut streams = Vec::new();
    while rest.len() >= 5 {
        let stream_type = rest[0];
        let pid = u16::from_be_bytes([rest[1], rest[2]]) & 0x1FFF;
        let es_len = usize::from(u16::from_be_bytes([rest[3], rest[4]]) & 0x0FFF);
        let desc = rest
            .get(5..5 + es_len)
            .ok_or_else(|| MediaError::malformed("PMT", "ES_info overruns section"))?;
        streams.push(PmtStream {
            stream_type,
            pid,
            descriptors: desc.to_vec(),
        });
        rest = &rest[5 + es_len..];
    }
    Ok(Pmt {
        program,
        pcr_pid,
        streams,
    })
}

fn finish_section(sec: &mut Vec<u8>) {
    // section_length counts from after the length field up to and including the CRC
    let len = sec.len() - 3 + 4;
    sec[1] = (sec[1] & 0xF0) | ((len >> 8) as u8 & 0x0F);
    sec[2] = len as u8;
    let crc = crc32(sec);
    sec.extend_from_slice(&crc.to_be_bytes());
}

/// Writes a PAT section (no pointer field).
pub fn build_pat(transport_stream_id: u16, version: u8, programs: &[(u16, u16)]) -> Vec<u8> {
    let mut s = vec![0x00, 0xB0, 0x00];
    s.extend_from_slice(&transport_stream_id.to_be_bytes());
    s.extend_from_slice(&[0xC1 | (version & 0x1F) << 1, 0x00, 0x00]);
    for &(program, pid) in programs {
        s.extend_from_slice(&program.to_be_bytes());
        s.extend_from_slice(&(0xE000 | pid).to_be_bytes());
    }
    finish_section(&mut s);
    s
}

/// Writes a PMT section (no pointer field).
pub fn build_pmt(pmt: &Pmt, version: u8) -> Vec<u8> {
    let mut s = vec![0x02, 0xB0, 0x00];
    s.extend_from_slice(&pmt.program.to_be_bytes());
    s.extend_from_slice(&[0xC1 | (version & 0x1F) << 1, 0x00, 0x00]);
    s.extend_from_slice(&(0xE000 | pmt.pcr_pid).to_be_bytes());
    s.extend_from_slice(&[0xF0, 0x00]);
    for st in &pmt.streams {
        s.push(st.stream_type);
        s.extend_from_slice(&(0xE000 | st.pid).to_be_bytes());
        s.extend_from_slice(&(0xF000 | st.descriptors.len() as u16).to_be_bytes());
        s.extend_from_slice(&st.descriptors);
    }
    finish_section(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pat_round_trip() {
        let s = build_pat(1, 0, &[(1, 0x1000), (2, 0x1001)]);
        assert_eq!(parse_pat(&s).unwrap(), vec![(1, 0x1000), (2, 0x1001)]);
        let mut bad = s.clone();
        bad[9] ^= 1;
        assert!(parse_pat(&bad).is_err());
    }

    #[test]
    fn pmt_round_trip_and_sections_across_packets() {
        let pmt = Pmt {
            program: 1,
            pcr_pid: 0x100,
            streams: vec![
                PmtStream {
                    stream_type: 0x1B,
                    pid: 0x100,
                    descriptors: vec![],
                },
                PmtStream {
                    stream_type: 0x06,
                    pid: 0x101,
                    descriptors: b"\x05\x04Opus".to_vec(),
                },
            ],
        };
        let s = build_pmt(&pmt, 3);
        assert_eq!(parse_pmt(&s).unwrap(), pmt);
        assert_eq!(
            parse_pmt(&s).unwrap().streams[1].registration(),
            Some(*b"Opus")
        );
        let mut asm = SectionAssembler::default();
        let mut got = Vec::new();
        let mut first = vec![0u8];
        first.extend_from_slice(&s[..10]);
        asm.push(&first, true, |x| got.push(x.to_vec()));
        assert!(got.is_empty());
        let mut second = s[10..].to_vec();
        second.extend_from_slice(&[0xFF; 20]);
        asm.push(&second, false, |x| got.push(x.to_vec()));
        assert_eq!(got, vec![s]);
    }
}
