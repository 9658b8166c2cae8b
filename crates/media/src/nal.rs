//! Codec-independent NAL unit plumbing shared by H.264 and HEVC: Annex B start codes,
//! length-prefixed framing, emulation prevention and an exp-Golomb bit reader.

/// Iterates the NAL units of an Annex B byte stream (start codes `00 00 01` or `00 00 00 01`).
/// Bytes before the first start code are skipped; trailing zero bytes of a unit are dropped.
pub fn annexb(data: &[u8]) -> AnnexB<'_> {
    let start = find_start_code(data, 0).map(|(_, end)| end).unwrap_or(data.len());
    AnnexB { data, pos: start }
}

pub struct AnnexB<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for AnnexB<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.data.len() {
            let begin = self.pos;
            let (end, next) = match find_start_code(self.data, begin) {
                Some((sc, after)) => (sc, after),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            let mut unit = &self.data[begin..end];
            while let [rest @ .., 0] = unit {
                unit = rest;
            }
            if !unit.is_empty() {
                return Some(unit);
            }
        }
        None
    }
}

/// Finds the next `00 00 01` at or after `from`; returns (index of its first byte, index after it).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 2 < data.len() {
        // skip quickly: a start code needs data[i+2] == 1 and two zeros before it
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some((i, i + 3)),
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

/// True when `data` starts with an Annex B start code.
pub fn starts_with_start_code(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])
}

/// Iterates the NAL units of length-prefixed data (`len_size` of 1, 2, 3 or 4 bytes); stops at the
/// first length that overruns the data.
pub fn length_prefixed(data: &[u8], len_size: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if len_size == 0 || len_size > 4 || rest.len() < len_size {
            return None;
        }
        let len = rest[..len_size].iter().fold(0usize, |a, &b| a << 8 | b as usize);
        let unit = rest.get(len_size..len_size + len)?;
        rest = &rest[len_size + len..];
        Some(unit)
    })
}

/// Appends one NAL unit with a 4-byte big-endian length.
pub fn push_length_prefixed(out: &mut Vec<u8>, unit: &[u8]) {
    out.extend_from_slice(&(unit.len() as u32).to_be_bytes());
    out.extend_from_slice(unit);
}

/// Converts an Annex B stream to 4-byte length-prefixed NAL units, appending to `out`.
pub fn annexb_to_length_prefixed(data: &[u8], out: &mut Vec<u8>) {
    for unit in annexb(data) {
        push_length_prefixed(out, unit);
    }
}

/// Converts 4-byte length-prefixed NAL units to Annex B (4-byte start codes), appending to `out`.
pub fn length_prefixed_to_annexb(data: &[u8], out: &mut Vec<u8>) {
    for unit in length_prefixed(data, 4) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(unit);
    }
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`), giving the RBSP.
pub fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reading past the end of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndOfData;

/// An MSB-first bit reader with exp-Golomb codes, over an RBSP.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Reads `n` ≤ 32 bits.
    pub fn u(&mut self, n: u32) -> Result<u32, EndOfData> {
        debug_assert!(n <= 32);
        if self.bits_left() < n as usize {
            return Err(EndOfData);
        }
        let mut v = 0u64;
        for _ in 0..n {
            let bit = self.data[self.pos / 8] >> (7 - self.pos % 8) & 1;
            v = v << 1 | u64::from(bit);
            self.pos += 1;
        }
        Ok(v as u32)
    }

    pub fn flag(&mut self) -> Result<bool, EndOfData> {
        Ok(self.u(1)? == 1)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), EndOfData> {
        if self.bits_left() < n {
            return Err(EndOfData);
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned exp-Golomb; values above u32 range are an error.
    pub fn ue(&mut self) -> Result<u32, EndOfData> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(EndOfData);
            }
        }
        let rest = self.u(zeros)? as u64;
        let v = (1u64 << zeros) - 1 + rest;
        u32::try_from(v).map_err(|_| EndOfData)
    }

    /// Signed exp-Golomb.
    pub fn se(&mut self) -> Result<i32, EndOfData> {
        let k = self.ue()? as i64;
        Ok(if k & 1 == 1 { ((k + 1) / 2) as i32 } else { (-(k / 2)) as i32 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annexb_split_and_convert() {
        let s = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 0];
        let units: Vec<&[u8]> = annexb(&s).collect();
        assert_eq!(units, vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 9][..]]);
        let mut lp = Vec::new();
        annexb_to_length_prefixed(&s, &mut lp);
        assert_eq!(length_prefixed(&lp, 4).count(), 3);
        let mut back = Vec::new();
        length_prefixed_to_annexb(&lp, &mut back);
        assert_eq!(annexb(&back).collect::<Vec<_>>(), units);
    }

    #[test]
    fn golomb_and_unescape() {
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
        let data = [0b1010_0110, 0b0111_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.ue(), Ok(0));
        assert_eq!(r.ue(), Ok(1));
        assert_eq!(r.ue(), Ok(2));
        assert_eq!(r.se(), Ok(-1));
        let mut r = BitReader::new(&[0, 0, 0, 0, 0]);
        assert!(r.ue().is_err());
    }
}
