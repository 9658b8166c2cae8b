//! EBML variable-length integers: element IDs (marker bit kept, 1–4 bytes) and element sizes
//! (marker bit stripped, 1–8 bytes, all value bits set = unknown size).

use crate::error::MediaError;

/// Length in bytes of a VINT whose first byte is `first`, or `None` for 0x00 (longer than 8 bytes).
#[inline]
pub fn vint_len(first: u8) -> Option<usize> {
    if first == 0 {
        None
    } else {
        Some(first.leading_zeros() as usize + 1)
    }
}

/// Reads an element ID at the start of `buf`: `Ok(None)` when more bytes are needed, otherwise
/// the ID (with its length marker, as the specification writes IDs: 0x1A45DFA3) and its length.
pub fn read_id(buf: &[u8]) -> Result<Option<(u32, usize)>, MediaError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let len = match vint_len(first) {
        Some(n) if n <= 4 => n,
        _ => {
            return Err(MediaError::malformed(
                "EBML ID",
                format!("first byte {first:#04x}"),
            ))
        }
    };
    if buf.len() < len {
        return Ok(None);
    }
    let mut id = 0u32;
    for &b in &buf[..len] {
        id = (id << 8) | b as u32;
    }
    // All value bits set is reserved in IDs.
    let value_mask = (1u64 << (7 * len)) - 1;
    if (id as u64) & value_mask == value_mask {
        return Err(MediaError::malformed(
            "EBML ID",
            format!("reserved id {id:#x}"),
        ));
    }
    Ok(Some((id, len)))
}

/// Reads a VINT with its length marker stripped: `Ok(None)` when more bytes are needed,
/// otherwise the value bits and the length in bytes. A first byte of 0 (longer than 8 bytes) is
/// malformed `what`, with `detail`.
fn read_vint(
    buf: &[u8],
    what: &'static str,
    detail: &'static str,
) -> Result<Option<(u64, usize)>, MediaError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some(len) = vint_len(first) else {
        return Err(MediaError::malformed(what, detail));
    };
    if buf.len() < len {
        return Ok(None);
    }
    let mut v = (first as u64) & (0xFFu64 >> len);
    for &b in &buf[1..len] {
        v = (v << 8) | b as u64;
    }
    Ok(Some((v, len)))
}

/// Reads an element size: `Ok(None)` when more bytes are needed, otherwise the size (`None` for
/// the unknown size, all value bits set) and its length in bytes.
pub fn read_size(buf: &[u8]) -> Result<Option<(Option<u64>, usize)>, MediaError> {
    let r = read_vint(buf, "EBML size", "VINT longer than 8 bytes")?;
    Ok(r.map(|(v, len)| {
        let all_ones = (1u64 << (7 * len)) - 1;
        (if v == all_ones { None } else { Some(v) }, len)
    }))
}

/// Reads a signed VINT (EBML lacing size differences): value minus half the range.
pub fn read_svint(buf: &[u8]) -> Result<Option<(i64, usize)>, MediaError> {
    let r = read_vint(buf, "EBML signed VINT", "longer than 8 bytes")?;
    Ok(r.map(|(v, len)| {
        let bias = (1i64 << (7 * len - 1)) - 1;
        (v as i64 - bias, len)
    }))
}

/// Number of bytes an element ID takes (IDs carry their own marker).
#[inline]
pub fn id_len(id: u32) -> usize {
    match id {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

/// Writes an element ID in its own length (IDs carry their marker bits, unlike sizes).
pub fn write_id(out: &mut Vec<u8>, id: u32) {
    let n = id_len(id);
    out.extend_from_slice(&id.to_be_bytes()[4 - n..]);
}

/// The shortest VINT length that can hold `v` as a known size (all-ones is reserved).
#[inline]
pub fn size_len(v: u64) -> usize {
    let mut n = 1;
    while n < 8 && v >= (1u64 << (7 * n)) - 1 {
        n += 1;
    }
    n
}

/// Largest size a VINT of 8 bytes can carry.
pub const MAX_SIZE: u64 = (1u64 << 56) - 2;

/// Writes `v` as a size VINT of exactly `len` bytes (1..=8). `v` must fit.
pub fn write_size_len(out: &mut Vec<u8>, v: u64, len: usize) {
    debug_assert!((1..=8).contains(&len) && v < (1u64 << (7 * len)) - 1);
    let marked = v | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// Writes `v` as a size VINT of the shortest length.
pub fn write_size(out: &mut Vec<u8>, v: u64) {
    write_size_len(out, v, size_len(v));
}

/// The 8-byte unknown size (0x01FF_FFFF_FFFF_FFFF).
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Encodes `v` as an 8-byte size VINT (used for fields patched later).
pub fn size8(v: u64) -> [u8; 8] {
    let marked = v | (1u64 << 56);
    marked.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(
            read_id(&[0x1A, 0x45, 0xDF, 0xA3]).unwrap(),
            Some((0x1A45DFA3, 4))
        );
        assert_eq!(read_id(&[0xA3]).unwrap(), Some((0xA3, 1)));
        assert_eq!(read_id(&[0x1A, 0x45]).unwrap(), None);
        assert!(read_id(&[0x00]).is_err());
        assert!(read_id(&[0x08, 0, 0, 0, 0]).is_err());
        assert!(read_id(&[0xFF]).is_err());
        let mut v = Vec::new();
        write_id(&mut v, 0x1F43B675);
        write_id(&mut v, 0xE7);
        assert_eq!(v, [0x1F, 0x43, 0xB6, 0x75, 0xE7]);
    }

    #[test]
    fn sizes() {
        assert_eq!(read_size(&[0x81]).unwrap(), Some((Some(1), 1)));
        assert_eq!(read_size(&[0xFF]).unwrap(), Some((None, 1)));
        assert_eq!(read_size(&[0x40, 0x7F]).unwrap(), Some((Some(127), 2)));
        assert_eq!(read_size(&UNKNOWN_SIZE).unwrap(), Some((None, 8)));
        assert_eq!(read_size(&[0x3F, 0xFF, 0xFF]).unwrap(), Some((None, 3)));
        assert_eq!(read_size(&[0x01, 0xFF]).unwrap(), None);
        assert!(read_size(&[0x00, 1, 2, 3, 4, 5, 6, 7, 8]).is_err());
        for v in [0u64, 1, 126, 127, 128, 16382, 16383, 1 << 30, MAX_SIZE] {
            let mut out = Vec::new();
            write_size(&mut out, v);
            assert_eq!(read_size(&out).unwrap(), Some((Some(v), out.len())), "{v}");
            assert_eq!(read_size(&size8(v)).unwrap(), Some((Some(v), 8)));
        }
    }

    #[test]
    fn signed() {
        assert_eq!(read_svint(&[0xBF]).unwrap(), Some((0, 1)));
        assert_eq!(read_svint(&[0x80]).unwrap(), Some((-63, 1)));
        assert_eq!(read_svint(&[0x5F, 0xFF]).unwrap(), Some((0, 2)));
    }
}
