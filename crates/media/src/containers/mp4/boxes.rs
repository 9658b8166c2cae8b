//! ISO-BMFF box headers, bounded child iteration, a checked byte cursor and a box writer.
//!
//! Nothing here allocates from a length field: children are slices of the bytes the caller gave,
//! and a box that claims more than is there is an error (or `NeedMore` for a header).

use crate::error::MediaError;

/// A box type: four bytes, usually ASCII (`moov`), but not always (`©nam`): compare bytes, not
/// strings.
pub type FourCC = [u8; 4];

/// Deepest nesting [`walk`] descends into.
pub const MAX_DEPTH: usize = 16;

/// A parsed box header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    /// The box type.
    pub typ: FourCC,
    /// 8, 16 (64-bit largesize), plus 16 for `uuid` boxes.
    pub header_len: u8,
    /// Total size including the header; `None` for size 0 ("extends to the end of the file").
    pub size: Option<u64>,
}

impl BoxHeader {
    /// Parses a header from the start of `buf`. `Err(NeedMore)` when `buf` is too short to decide.
    pub fn parse(buf: &[u8]) -> Result<BoxHeader, MediaError> {
        if buf.len() < 8 {
            return Err(MediaError::NeedMore);
        }
        let size32 = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let typ = [buf[4], buf[5], buf[6], buf[7]];
        let (mut header_len, size) = match size32 {
            0 => (8u8, None),
            1 => {
                if buf.len() < 16 {
                    return Err(MediaError::NeedMore);
                }
                let large = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                (16u8, Some(large))
            }
            n => (8u8, Some(n as u64)),
        };
        if &typ == b"uuid" {
            header_len += 16;
        }
        if let Some(s) = size {
            if s < header_len as u64 {
                return Err(MediaError::malformed(
                    "mp4 box",
                    format!("{} size {} < header", fourcc_str(&typ), s),
                ));
            }
        }
        Ok(BoxHeader {
            typ,
            header_len,
            size,
        })
    }

    /// The size of the body (after the header); `None` when the box extends to the end of the file.
    pub fn body_len(&self) -> Option<u64> {
        self.size.map(|s| s - self.header_len as u64)
    }
}

/// A box type for messages: non-printable bytes as `?`, so a hostile file cannot put control
/// characters into a log line.
pub fn fourcc_str(t: &FourCC) -> String {
    t.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Iterates the boxes laid end to end in `data`, yielding `(type, body)`. A box running past the end
/// of `data` yields an error and ends the iteration; size 0 means "the rest of `data`".
pub struct Boxes<'a> {
    data: &'a [u8],
    done: bool,
}

impl<'a> Boxes<'a> {
    /// The boxes of `data` (a file, or the body of a container box).
    pub fn new(data: &'a [u8]) -> Self {
        Boxes { data, done: false }
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<(FourCC, &'a [u8]), MediaError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.data.is_empty() {
            return None;
        }
        let h = match BoxHeader::parse(self.data) {
            Ok(h) => h,
            Err(MediaError::NeedMore) => {
                self.done = true;
                return Some(Err(MediaError::malformed(
                    "mp4 box",
                    "truncated box header",
                )));
            }
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let hl = h.header_len as usize;
        let size = match h.size {
            None => self.data.len() as u64,
            Some(s) => s,
        };
        if size > self.data.len() as u64 || hl > self.data.len() {
            self.done = true;
            return Some(Err(MediaError::malformed(
                "mp4 box",
                format!(
                    "{} of {} bytes runs past its parent ({} left)",
                    fourcc_str(&h.typ),
                    size,
                    self.data.len()
                ),
            )));
        }
        let size = size as usize;
        let body = &self.data[hl..size];
        self.data = &self.data[size..];
        Some(Ok((h.typ, body)))
    }
}

/// The first child of type `typ` in `data`, if any; a malformed sibling before it is an error.
pub fn find<'a>(data: &'a [u8], typ: &FourCC) -> Result<Option<&'a [u8]>, MediaError> {
    for b in Boxes::new(data) {
        let (t, body) = b?;
        if &t == typ {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// Boxes whose body is only child boxes.
pub fn is_container(t: &FourCC) -> bool {
    matches!(
        t,
        b"moov"
            | b"trak"
            | b"mdia"
            | b"minf"
            | b"stbl"
            | b"edts"
            | b"dinf"
            | b"mvex"
            | b"moof"
            | b"traf"
            | b"mfra"
            | b"udta"
            | b"skip"
            | b"sinf"
            | b"schi"
    )
}

/// Visits the box tree in `data` depth first, calling `f(depth, type, body)` for every box; descends
/// into [`is_container`] boxes up to `max_depth` levels. Stops at the first malformed box.
pub fn walk(
    data: &[u8],
    max_depth: usize,
    f: &mut dyn FnMut(usize, &FourCC, &[u8]),
) -> Result<(), MediaError> {
    fn go(
        data: &[u8],
        depth: usize,
        max_depth: usize,
        f: &mut dyn FnMut(usize, &FourCC, &[u8]),
    ) -> Result<(), MediaError> {
        for b in Boxes::new(data) {
            let (t, body) = b?;
            f(depth, &t, body);
            if is_container(&t) {
                if depth + 1 >= max_depth {
                    return Err(MediaError::TooLarge {
                        what: "mp4 box nesting",
                        size: depth as u64 + 1,
                        limit: max_depth as u64,
                    });
                }
                go(body, depth + 1, max_depth, f)?;
            }
        }
        Ok(())
    }
    go(data, 0, max_depth.min(MAX_DEPTH), f)
}

/// A checked big-endian reader over a box body.
#[derive(Debug, Clone)]
pub struct Rd<'a> {
    /// The whole body being read.
    pub data: &'a [u8],
    /// Where the next read starts (bytes into `data`).
    pub pos: usize,
    what: &'static str,
}

impl<'a> Rd<'a> {
    /// A reader at the start of `data`; `what` (the box name) goes into its errors.
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Rd { data, pos: 0, what }
    }
    fn short(&self, n: usize) -> MediaError {
        MediaError::malformed(
            self.what,
            format!("needs {} bytes at {}, has {}", n, self.pos, self.data.len()),
        )
    }
    /// Bytes left after the cursor.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    /// The next `n` bytes, borrowed from the body; an error (not a panic) when fewer are left.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], MediaError> {
        if self.remaining() < n {
            return Err(self.short(n));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// Everything after the cursor (possibly nothing).
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.data[self.pos..];
        self.pos = self.data.len();
        s
    }
    /// Steps over `n` bytes (reserved fields), checked like a read.
    pub fn skip(&mut self, n: usize) -> Result<(), MediaError> {
        self.bytes(n).map(|_| ())
    }
    /// Reads a byte.
    pub fn u8(&mut self) -> Result<u8, MediaError> {
        Ok(self.bytes(1)?[0])
    }
    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, MediaError> {
        Ok(u16::from_be_bytes(self.bytes(2)?.try_into().unwrap()))
    }
    /// Reads a big-endian 24-bit value (full-box flags, some sizes).
    pub fn u24(&mut self) -> Result<u32, MediaError> {
        let b = self.bytes(3)?;
        Ok(((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32)
    }
    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, MediaError> {
        Ok(u32::from_be_bytes(self.bytes(4)?.try_into().unwrap()))
    }
    /// Reads a big-endian i32 (signed composition offsets of `trun` version 1).
    pub fn i32(&mut self) -> Result<i32, MediaError> {
        Ok(self.u32()? as i32)
    }
    /// Reads a big-endian u64 (version 1 times, `co64` offsets).
    pub fn u64(&mut self) -> Result<u64, MediaError> {
        Ok(u64::from_be_bytes(self.bytes(8)?.try_into().unwrap()))
    }
    /// version (8 bits) and flags (24 bits) of a full box.
    pub fn full(&mut self) -> Result<(u8, u32), MediaError> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0xFF_FFFF))
    }
    /// An entry count that must fit in the rest of the body at `entry_size` bytes each.
    pub fn count(&mut self, entry_size: usize) -> Result<usize, MediaError> {
        let n = self.u32()? as u64;
        let fits = (self.remaining() / entry_size.max(1)) as u64;
        if n > fits {
            return Err(MediaError::malformed(
                self.what,
                format!(
                    "{} entries of {} bytes, {} bytes left",
                    n,
                    entry_size,
                    self.remaining()
                ),
            ));
        }
        Ok(n as usize)
    }
}

/// Writes boxes into a `Vec<u8>`, patching sizes when a box is closed.
#[derive(Debug, Default)]
pub struct BoxWriter {
    /// The bytes written so far: a box still open has a placeholder size.
    pub buf: Vec<u8>,
    open: Vec<usize>,
}

impl BoxWriter {
    /// An empty writer.
    pub fn new() -> Self {
        BoxWriter::default()
    }
    /// Opens a box; its size is written by the matching [`BoxWriter::end`].
    pub fn start(&mut self, typ: &FourCC) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(typ);
    }
    /// Opens a full box: the header is followed by its version and 24-bit flags.
    pub fn start_full(&mut self, typ: &FourCC, version: u8, flags: u32) {
        self.start(typ);
        self.u32(((version as u32) << 24) | (flags & 0xFF_FFFF));
    }
    /// Closes the innermost open box, writing its size (panics if none is open: a writer bug).
    pub fn end(&mut self) {
        let at = self.open.pop().expect("BoxWriter::end without start");
        let size = (self.buf.len() - at) as u32;
        self.buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }
    /// Writes a byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Writes a big-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes the low 24 bits of `v`, big-endian.
    pub fn u24(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes()[1..]);
    }
    /// Writes a big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes a big-endian i32.
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes a big-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes bytes as they are.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// Writes `n` zero bytes (reserved fields, empty matrices).
    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// The bytes; every box must have been closed.
    pub fn into_inner(self) -> Vec<u8> {
        debug_assert!(self.open.is_empty());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        let h = BoxHeader::parse(&[0, 0, 0, 16, b'f', b't', b'y', b'p']).unwrap();
        assert_eq!(h.size, Some(16));
        let h = BoxHeader::parse(&[0, 0, 0, 0, b'm', b'd', b'a', b't']).unwrap();
        assert_eq!(h.size, None);
        assert_eq!(
            BoxHeader::parse(&[0, 0, 0, 1, b'm', b'd', b'a', b't']),
            Err(MediaError::NeedMore)
        );
        let mut v = vec![0, 0, 0, 1, b'm', b'd', b'a', b't'];
        v.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(BoxHeader::parse(&v).unwrap().size, Some(1 << 40));
        assert!(BoxHeader::parse(&[0, 0, 0, 7, b'f', b'r', b'e', b'e']).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        // 40 nested moov boxes
        let mut b = Vec::new();
        for _ in 0..40 {
            let mut o = ((b.len() + 8) as u32).to_be_bytes().to_vec();
            o.extend_from_slice(b"moov");
            o.extend_from_slice(&b);
            b = o;
        }
        assert!(matches!(
            walk(&b, 64, &mut |_, _, _| {}),
            Err(MediaError::TooLarge { .. })
        ));
    }

    #[test]
    fn count_is_bounded_by_bytes() {
        let d = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1];
        assert!(Rd::new(&d, "x").count(4).is_err());
        assert_eq!(Rd::new(&[0, 0, 0, 1, 0, 0, 0, 1], "x").count(4).unwrap(), 1);
    }
}
