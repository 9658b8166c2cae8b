//! AMF0, the value encoding of RTMP commands and FLV script data.
//!
//! Decoding is bounded: nesting deeper than [`MAX_DEPTH`] is an error, and collections are never
//! preallocated from a count the peer sent (every element consumes at least one input byte, so
//! memory stays proportional to the input).

use crate::error::MediaError;

/// Deepest nesting decoded: each level costs stack, and a peer must not choose how much.
pub const MAX_DEPTH: usize = 32;

/// Declares [`Marker`] from one table, byte => type, so that the byte a marker is written as
/// and the byte it is read from cannot disagree.
macro_rules! markers {
    ($($(#[$doc:meta])* $byte:literal => $name:ident,)*) => {
        /// The type marker byte that starts every encoded value.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Marker {
            $($(#[$doc])* $name = $byte,)*
        }

        impl Marker {
            /// The marker `b` stands for; `None` for a byte that is no AMF0 type (0x0e, the
            /// unused record set, and 0x12 up).
            pub fn from_byte(b: u8) -> Option<Marker> {
                match b {
                    $($byte => Some(Marker::$name),)*
                    _ => None,
                }
            }
        }
    };
}

markers! {
    /// An IEEE 754 double, big-endian.
    0x00 => Number,
    /// One byte, nonzero for true.
    0x01 => Boolean,
    /// A UTF-8 string of up to 65535 bytes (16-bit length).
    0x02 => String,
    /// Properties (short-string key, value) up to the object end marker.
    0x03 => Object,
    /// Reserved; not supported.
    0x04 => Movieclip,
    /// No value.
    0x05 => Null,
    /// No value (AS3 `undefined`).
    0x06 => Undefined,
    /// A reference to an earlier object; not supported (nobody sends it in RTMP).
    0x07 => Reference,
    /// A 32-bit count (a hint only) followed by properties, like an object.
    0x08 => EcmaArray,
    /// Ends an object or ECMA array (after an empty key).
    0x09 => ObjectEnd,
    /// A 32-bit count followed by that many values.
    0x0a => StrictArray,
    /// A double (ms since the epoch) and a 16-bit time zone.
    0x0b => Date,
    /// A UTF-8 string with a 32-bit length.
    0x0c => LongString,
    /// A value that cannot be serialised; decoded as undefined.
    0x0d => Unsupported,
    /// An XML document as a long string.
    0x0f => XmlDocument,
    /// A class name then properties, like an object.
    0x10 => TypedObject,
    /// Switch to AMF3 for the next value; not supported.
    0x11 => Avmplus,
}

/// One AMF0 value. Objects and ECMA arrays keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0 {
    /// Every number is a double, also integers such as stream ids and transaction ids.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A short string (up to 65535 bytes when encoded; longer ones encode as [`Amf0::LongString`]).
    String(String),
    /// An anonymous object, keys in the order sent (so a value re-encodes to the same bytes).
    Object(Vec<(String, Amf0)>),
    /// Null (the command object of most replies).
    Null,
    /// Undefined.
    Undefined,
    /// An associative array (`onMetaData` is one), in key order.
    EcmaArray(Vec<(String, Amf0)>),
    /// A dense array.
    StrictArray(Vec<Amf0>),
    /// Milliseconds since the epoch and a time zone (unused by everyone, kept for round trips).
    Date(f64, i16),
    /// A string with a 32-bit length (what a string longer than 65535 bytes needs).
    LongString(String),
    /// An XML document (a long string with its own marker).
    Xml(String),
    /// A typed object: class name and properties.
    TypedObject(String, Vec<(String, Amf0)>),
}

impl Amf0 {
    /// A string value (short or long is chosen when encoding).
    pub fn str(s: impl Into<String>) -> Amf0 {
        Amf0::String(s.into())
    }

    /// An object from (key, value) pairs, in order.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0)>) -> Amf0 {
        Amf0::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The text of any string kind; `None` for other types.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0::String(s) | Amf0::LongString(s) | Amf0::Xml(s) => Some(s),
            _ => None,
        }
    }

    /// A number, with booleans as 0/1: peers are loose about which they send.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0::Number(n) => Some(*n),
            Amf0::Bool(b) => Some(*b as u8 as f64),
            _ => None,
        }
    }

    /// A boolean, with numbers as nonzero-is-true, for the same reason.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0::Bool(b) => Some(*b),
            Amf0::Number(n) => Some(*n != 0.0),
            _ => None,
        }
    }

    /// Properties of an object, ECMA array or typed object.
    pub fn props(&self) -> Option<&[(String, Amf0)]> {
        match self {
            Amf0::Object(p) | Amf0::EcmaArray(p) | Amf0::TypedObject(_, p) => Some(p),
            _ => None,
        }
    }

    /// A property by key (first match).
    pub fn get(&self, key: &str) -> Option<&Amf0> {
        self.props()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Appends the encoding of this value to `out`. Strings of 65536 bytes or more are written as
    /// long strings; keys longer than 65535 bytes are truncated (at a char boundary).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Amf0::Number(n) => {
                out.push(Marker::Number as u8);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Amf0::Bool(b) => out.extend_from_slice(&[Marker::Boolean as u8, *b as u8]),
            Amf0::String(s) if s.len() <= 0xffff => {
                out.push(Marker::String as u8);
                put_short_str(out, s);
            }
            Amf0::String(s) | Amf0::LongString(s) => {
                out.push(Marker::LongString as u8);
                put_long_str(out, s);
            }
            Amf0::Xml(s) => {
                out.push(Marker::XmlDocument as u8);
                put_long_str(out, s);
            }
            Amf0::Object(p) => {
                out.push(Marker::Object as u8);
                put_props(out, p);
            }
            Amf0::TypedObject(class, p) => {
                out.push(Marker::TypedObject as u8);
                put_short_str(out, class);
                put_props(out, p);
            }
            Amf0::Null => out.push(Marker::Null as u8),
            Amf0::Undefined => out.push(Marker::Undefined as u8),
            Amf0::EcmaArray(p) => {
                out.push(Marker::EcmaArray as u8);
                out.extend_from_slice(&(p.len().min(u32::MAX as usize) as u32).to_be_bytes());
                put_props(out, p);
            }
            Amf0::StrictArray(v) => {
                out.push(Marker::StrictArray as u8);
                let n = v.len().min(u32::MAX as usize);
                out.extend_from_slice(&(n as u32).to_be_bytes());
                for x in &v[..n] {
                    x.encode(out);
                }
            }
            Amf0::Date(ms, tz) => {
                out.push(Marker::Date as u8);
                out.extend_from_slice(&ms.to_be_bytes());
                out.extend_from_slice(&tz.to_be_bytes());
            }
        }
    }

    /// The encoded value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// Decodes one value from the start of `buf`; returns it and the bytes consumed.
    pub fn decode(buf: &[u8]) -> Result<(Amf0, usize), MediaError> {
        let mut r = Reader { buf, pos: 0 };
        let v = r.value(0)?;
        Ok((v, r.pos))
    }
}

/// Encodes a sequence of values (a command message body).
pub fn encode_all(values: &[Amf0]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        v.encode(&mut out);
    }
    out
}

/// Decodes values until the buffer is used up.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf0>, MediaError> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Vec::new();
    while r.pos < buf.len() {
        out.push(r.value(0)?);
    }
    Ok(out)
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_short_str(out: &mut Vec<u8>, s: &str) {
    let s = truncate_at_char(s, 0xffff);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_long_str(out: &mut Vec<u8>, s: &str) {
    let s = truncate_at_char(s, u32::MAX as usize);
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_props(out: &mut Vec<u8>, p: &[(String, Amf0)]) {
    for (k, v) in p {
        put_short_str(out, k);
        v.encode(out);
    }
    out.extend_from_slice(&[0, 0, Marker::ObjectEnd as u8]);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn short() -> MediaError {
    MediaError::malformed("AMF0", "truncated value")
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MediaError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(short)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, MediaError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, MediaError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, MediaError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f64(&mut self) -> Result<f64, MediaError> {
        let b = self.take(8)?;
        Ok(f64::from_be_bytes(b.try_into().map_err(|_| short())?))
    }
    fn short_str(&mut self) -> Result<String, MediaError> {
        let n = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn long_str(&mut self) -> Result<String, MediaError> {
        let n = self.u32()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    /// Properties up to the object end marker (00 00 09).
    fn props(&mut self, depth: usize) -> Result<Vec<(String, Amf0)>, MediaError> {
        let mut p = Vec::new();
        loop {
            let key = self.short_str()?;
            if key.is_empty() && self.buf.get(self.pos) == Some(&(Marker::ObjectEnd as u8)) {
                self.pos += 1;
                return Ok(p);
            }
            let v = self.value(depth + 1)?;
            p.push((key, v));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Amf0, MediaError> {
        if depth > MAX_DEPTH {
            return Err(MediaError::TooLarge {
                what: "AMF0 nesting",
                size: depth as u64,
                limit: MAX_DEPTH as u64,
            });
        }
        let m = self.u8()?;
        let Some(marker) = Marker::from_byte(m) else {
            return Err(MediaError::malformed(
                "AMF0",
                format!("unknown marker {m:#04x}"),
            ));
        };
        Ok(match marker {
            Marker::Number => Amf0::Number(self.f64()?),
            Marker::Boolean => Amf0::Bool(self.u8()? != 0),
            Marker::String => Amf0::String(self.short_str()?),
            Marker::Object => Amf0::Object(self.props(depth)?),
            Marker::Null => Amf0::Null,
            Marker::Undefined | Marker::Unsupported => Amf0::Undefined,
            Marker::EcmaArray => {
                // The count is advisory (many writers get it wrong); the end marker decides.
                self.u32()?;
                Amf0::EcmaArray(self.props(depth)?)
            }
            Marker::StrictArray => {
                let n = self.u32()? as usize;
                // Every element takes at least one byte: a count beyond the input is a lie.
                if n > self.buf.len() - self.pos {
                    return Err(MediaError::malformed(
                        "AMF0",
                        format!("strict array of {n} in {} bytes", self.buf.len() - self.pos),
                    ));
                }
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(self.value(depth + 1)?);
                }
                Amf0::StrictArray(v)
            }
            Marker::Date => {
                let ms = self.f64()?;
                let tz = self.u16()? as i16;
                Amf0::Date(ms, tz)
            }
            Marker::LongString => Amf0::LongString(self.long_str()?),
            Marker::XmlDocument => Amf0::Xml(self.long_str()?),
            Marker::TypedObject => {
                let class = self.short_str()?;
                Amf0::TypedObject(class, self.props(depth)?)
            }
            Marker::ObjectEnd => {
                return Err(MediaError::malformed(
                    "AMF0",
                    "object end outside an object",
                ))
            }
            Marker::Movieclip | Marker::Reference | Marker::Avmplus => {
                return Err(MediaError::unsupported("AMF0", format!("marker {m:#04x}")))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLV: &[u8] = include_bytes!("../../tests/fixtures/flv/testsrc_320x240_1s.flv");

    #[test]
    fn on_metadata_from_ffmpeg_flv() {
        // The first tag of ffmpeg's FLV is script data: "onMetaData" and an ECMA array.
        assert_eq!(FLV[13], 18);
        let len = u32::from_be_bytes([0, FLV[14], FLV[15], FLV[16]]) as usize;
        let body = &FLV[24..24 + len];
        let vals = decode_all(body).unwrap();
        assert_eq!(vals[0].as_str(), Some("onMetaData"));
        let m = &vals[1];
        assert!(matches!(m, Amf0::EcmaArray(_)));
        assert_eq!(m.get("width").and_then(Amf0::as_f64), Some(320.0));
        assert_eq!(m.get("height").and_then(Amf0::as_f64), Some(240.0));
        assert_eq!(m.get("framerate").and_then(Amf0::as_f64), Some(25.0));
        assert_eq!(m.get("videocodecid").and_then(Amf0::as_f64), Some(7.0));
        assert_eq!(m.get("audiocodecid").and_then(Amf0::as_f64), Some(10.0));
        assert_eq!(
            m.get("audiosamplerate").and_then(Amf0::as_f64),
            Some(44100.0)
        );
        assert!(m
            .get("encoder")
            .and_then(Amf0::as_str)
            .unwrap()
            .starts_with("Lavf"));
        // Our encoder reproduces ffmpeg's bytes exactly.
        assert_eq!(encode_all(&vals), body);
    }

    #[test]
    fn round_trip_every_type() {
        let v = Amf0::StrictArray(vec![
            Amf0::Number(1.5),
            Amf0::Bool(true),
            Amf0::str("héllo"),
            Amf0::object([("a", Amf0::Null), ("b", Amf0::Undefined)]),
            Amf0::EcmaArray(vec![("x".into(), Amf0::Number(-2.0))]),
            Amf0::Date(1.7e12, 0),
            Amf0::LongString("L".repeat(70_000)),
            Amf0::Xml("<a/>".into()),
            Amf0::TypedObject("C".into(), vec![("k".into(), Amf0::Bool(false))]),
        ]);
        let b = v.to_bytes();
        let (back, used) = Amf0::decode(&b).unwrap();
        assert_eq!(used, b.len());
        assert_eq!(back, v);
        // Every strict prefix is an error, never a panic.
        for cut in 0..b.len().min(200) {
            assert!(Amf0::decode(&b[..cut]).is_err());
        }
    }

    #[test]
    fn bounds() {
        // 40 nested strict arrays of one element.
        let mut deep = Vec::new();
        for _ in 0..40 {
            deep.extend_from_slice(&[Marker::StrictArray as u8, 0, 0, 0, 1]);
        }
        deep.push(Marker::Null as u8);
        assert!(matches!(
            Amf0::decode(&deep),
            Err(MediaError::TooLarge { .. })
        ));
        // A strict array claiming 4 billion elements in 5 bytes.
        assert!(Amf0::decode(&[Marker::StrictArray as u8, 0xff, 0xff, 0xff, 0xff, 5]).is_err());
        assert!(Amf0::decode(&[Marker::LongString as u8, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Amf0::decode(&[Marker::ObjectEnd as u8]).is_err());
        assert!(Amf0::decode(&[0x42]).is_err());
    }
}
