//! The RTMP chunk stream: messages cut into chunks with compressed headers, interleaved by chunk
//! stream id (csid).
//!
//! The decoder keeps per-csid header state (all four header formats, extended timestamps, the
//! timestamp delta that format 3 repeats), applies Set Chunk Size and Abort itself, and bounds what a
//! peer can make it hold: message size, chunk size, number of chunk streams and the bytes buffered in
//! unfinished messages.
//!
//! The encoder writes every message with a format-0 header (absolute timestamp) and format-3
//! continuation chunks, so the bytes of a message depend only on the message and the chunk size:
//! one encoding can be shared by every viewer that uses the same chunk size.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::MediaError;

/// The chunk size of both directions until a Set Chunk Size says otherwise (small, so a
/// large message does not hold up others at the start).
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// Largest chunk size we accept from a peer (and use ourselves).
pub const MAX_CHUNK_SIZE: usize = 1 << 24;
/// Largest message we accept (the 24-bit length field allows 16 MiB - 1 anyway).
pub const MAX_MESSAGE_SIZE: usize = (1 << 24) - 1;
/// Chunk streams with state at once.
pub const MAX_CHUNK_STREAMS: usize = 64;
/// Bytes buffered in unfinished messages across all chunk streams.
pub const MAX_PENDING: usize = 32 << 20;

/// Message type ids (the `type_id` of a [`RawMessage`]).
pub mod msg_type {
    /// Protocol control: the sender's chunk size from now on.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Protocol control: drop the partial message of a chunk stream.
    pub const ABORT: u8 = 2;
    /// Protocol control: bytes received so far (answers the window).
    pub const ACK: u8 = 3;
    /// User control events (stream begin, ping …).
    pub const USER_CONTROL: u8 = 4;
    /// Protocol control: how many bytes may come before an acknowledgement is due.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Protocol control: the peer asks to limit our output bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio: an FLV audio tag body.
    pub const AUDIO: u8 = 8;
    /// Video: an FLV video tag body.
    pub const VIDEO: u8 = 9;
    /// Data message flagged AMF3: one format byte then AMF0 (read like [`DATA_AMF0`]).
    pub const DATA_AMF3: u8 = 15;
    /// Shared object in AMF3 (not supported).
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command in AMF3: one format byte then AMF0 (what Flash sends with objectEncoding 3).
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message in AMF0 (`@setDataFrame`, `onMetaData`).
    pub const DATA_AMF0: u8 = 18;
    /// Shared object in AMF0 (not supported).
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command in AMF0 (`connect`, `publish`, `play` …).
    pub const COMMAND_AMF0: u8 = 20;
    /// Several FLV tags in one message (a publisher's are split into their frames).
    pub const AGGREGATE: u8 = 22;
}

/// A complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The chunk stream it came on: senders use one per kind of traffic.
    pub csid: u32,
    /// 32-bit wrapping timestamp in ms.
    pub timestamp: u32,
    /// What the payload is (see [`msg_type`]).
    pub type_id: u8,
    /// The message stream: 0 for connection-level messages, else the id `createStream` gave.
    pub stream_id: u32,
    /// The message body.
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    /// The timestamp field of the last header: absolute for format 0, a delta otherwise. Format 3
    /// starting a new message adds it again (as ffmpeg and librtmp do).
    ts_field: u32,
    extended: bool,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// Payload gathered so far for the message in progress.
    partial: Option<BytesMut>,
}

/// Decodes a chunk stream into messages.
#[derive(Debug)]
pub struct ChunkDecoder {
    buf: BytesMut,
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    pending: usize,
    /// Bytes consumed from the peer (for acknowledgements); wraps like the protocol's counter.
    pub bytes_in: u64,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

impl ChunkDecoder {
    /// A decoder at the start of a connection (chunk size [`DEFAULT_CHUNK_SIZE`]).
    pub fn new() -> ChunkDecoder {
        ChunkDecoder {
            buf: BytesMut::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            pending: 0,
            bytes_in: 0,
        }
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet consumed as chunks.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn set_chunk_size(&mut self, size: u32) -> Result<(), MediaError> {
        let size = (size & 0x7fff_ffff) as usize;
        if size == 0 {
            return Err(MediaError::malformed("RTMP Set Chunk Size", "0"));
        }
        if size > MAX_CHUNK_SIZE {
            return Err(MediaError::TooLarge {
                what: "RTMP chunk size",
                size: size as u64,
                limit: MAX_CHUNK_SIZE as u64,
            });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// The next complete message, `Ok(None)` when more bytes are needed. Set Chunk Size and Abort
    /// messages take effect here and are also returned.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, MediaError> {
        loop {
            match self.next_chunk()? {
                None => return Ok(None),
                Some(None) => continue,
                Some(Some(m)) => {
                    match m.type_id {
                        msg_type::SET_CHUNK_SIZE => {
                            if m.payload.len() < 4 {
                                return Err(MediaError::malformed(
                                    "RTMP Set Chunk Size",
                                    "short payload",
                                ));
                            }
                            let s = u32::from_be_bytes([
                                m.payload[0],
                                m.payload[1],
                                m.payload[2],
                                m.payload[3],
                            ]);
                            self.set_chunk_size(s)?;
                        }
                        msg_type::ABORT if m.payload.len() >= 4 => {
                            let csid = u32::from_be_bytes([
                                m.payload[0],
                                m.payload[1],
                                m.payload[2],
                                m.payload[3],
                            ]);
                            if let Some(st) = self.streams.get_mut(&csid) {
                                if let Some(p) = st.partial.take() {
                                    self.pending -= p.len();
                                }
                            }
                        }
                        _ => {}
                    }
                    return Ok(Some(m));
                }
            }
        }
    }

    /// Consumes one chunk. `None`: need more bytes; `Some(None)`: a chunk of an unfinished message.
    ///
    /// Nothing is changed until the whole chunk is in the buffer, so a partial chunk can be retried
    /// when more bytes arrive.
    #[allow(clippy::option_option)]
    fn next_chunk(&mut self) -> Result<Option<Option<RawMessage>>, MediaError> {
        let b = &self.buf[..];
        let Some(&b0) = b.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (64 + x as u32, 2),
                None => return Ok(None),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&x), Some(&y)) => (64 + x as u32 + ((y as u32) << 8), 3),
                _ => return Ok(None),
            },
            c => (c as u32, 1),
        };
        let hlen = [11, 7, 3, 0][fmt as usize];
        if b.len() < pos + hlen {
            return Ok(None);
        }
        let prev = self.streams.get(&csid);
        if prev.is_none() {
            if fmt != 0 {
                return Err(MediaError::malformed(
                    "RTMP chunk",
                    format!("format {fmt} header on new chunk stream {csid}"),
                ));
            }
            if self.streams.len() >= MAX_CHUNK_STREAMS {
                return Err(MediaError::TooLarge {
                    what: "RTMP chunk streams",
                    size: self.streams.len() as u64 + 1,
                    limit: MAX_CHUNK_STREAMS as u64,
                });
            }
        }
        let (prev_field, prev_extended, prev_length, prev_type, prev_sid, have_partial) = match prev
        {
            Some(st) => (
                st.ts_field,
                st.extended,
                st.length,
                st.type_id,
                st.stream_id,
                st.partial.as_ref().map(|p| p.len()),
            ),
            None => (0, false, 0, 0, 0, None),
        };
        // A format 3 chunk continues a message in progress; any other header starts a new message
        // (in the middle of one it drops the unfinished message, like an implicit abort).
        let continuing = fmt == 3 && have_partial.is_some();
        let h = &b[pos..pos + hlen];
        let mut field = if fmt <= 2 { u24(&h[0..3]) } else { prev_field };
        let (length, type_id) = if fmt <= 1 {
            (u24(&h[3..6]) as usize, h[6])
        } else {
            (prev_length, prev_type)
        };
        let stream_id = if fmt == 0 {
            u32::from_le_bytes([h[7], h[8], h[9], h[10]])
        } else {
            prev_sid
        };
        pos += hlen;
        let extended = if fmt <= 2 {
            field == 0xff_ffff
        } else {
            prev_extended
        };
        if extended {
            if b.len() < pos + 4 {
                return Ok(None);
            }
            let ext = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
            if continuing {
                // Continuation chunks may or may not repeat the extended timestamp; take it only
                // when it is the value we already have.
                if ext == prev_field {
                    pos += 4;
                }
            } else {
                field = ext;
                pos += 4;
            }
        }
        if length > MAX_MESSAGE_SIZE {
            return Err(MediaError::TooLarge {
                what: "RTMP message",
                size: length as u64,
                limit: MAX_MESSAGE_SIZE as u64,
            });
        }
        let have = if continuing {
            have_partial.unwrap_or(0)
        } else {
            0
        };
        let want = (length - have).min(self.chunk_size);
        if b.len() < pos + want {
            return Ok(None);
        }
        if want < length - have && self.pending + want > MAX_PENDING {
            return Err(MediaError::TooLarge {
                what: "RTMP unfinished messages",
                size: (self.pending + want) as u64,
                limit: MAX_PENDING as u64,
            });
        }

        // Commit: update the chunk stream and consume the header and the chunk payload.
        let whole = pos + want;
        self.bytes_in = self.bytes_in.wrapping_add(whole as u64);
        let mut chunk = self.buf.split_to(whole);
        chunk.advance(pos);
        let st = self.streams.entry(csid).or_default();
        if !continuing {
            if let Some(p) = st.partial.take() {
                self.pending -= p.len();
            }
            st.ts_field = field;
            st.extended = extended;
            st.timestamp = if fmt == 0 {
                field
            } else {
                st.timestamp.wrapping_add(field)
            };
            st.length = length;
            st.type_id = type_id;
            st.stream_id = stream_id;
        }
        let message = |st: &ChunkStream, payload: Bytes| RawMessage {
            csid,
            timestamp: st.timestamp,
            type_id: st.type_id,
            stream_id: st.stream_id,
            payload,
        };
        if have == 0 && want == length {
            // A message in one chunk: no copy.
            return Ok(Some(Some(message(st, chunk.freeze()))));
        }
        let p = st
            .partial
            .get_or_insert_with(|| BytesMut::with_capacity(length.min(1 << 16)));
        p.extend_from_slice(&chunk);
        self.pending += want;
        if p.len() == length {
            let payload = st.partial.take().map(BytesMut::freeze).unwrap_or_default();
            self.pending -= payload.len();
            return Ok(Some(Some(message(st, payload))));
        }
        Ok(Some(None))
    }
}

fn basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.push(fmt << 6 | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt << 6, (csid - 64) as u8]),
        _ => {
            let c = csid.clamp(320, 65599) - 64;
            out.extend_from_slice(&[fmt << 6 | 1, c as u8, (c >> 8) as u8]);
        }
    }
}

/// Size of the chunk headers `encode_message` writes around a payload of `len` bytes.
pub fn encoded_len(csid: u32, timestamp: u32, len: usize, chunk_size: usize) -> usize {
    let bh = match csid {
        2..=63 => 1,
        64..=319 => 2,
        _ => 3,
    };
    let ext = if timestamp >= 0xff_ffff { 4 } else { 0 };
    let chunks = len.div_ceil(chunk_size.max(1)).max(1);
    len + bh + 11 + ext + (chunks - 1) * (bh + ext)
}

/// Appends one message as chunks: a format-0 header, then format-3 continuations (with the extended
/// timestamp repeated, as Flash and ffmpeg expect). Messages longer than the 24-bit length field are
/// an error. `csid` must be 2..=65599 (others are clamped into range).
pub fn encode_message(
    out: &mut Vec<u8>,
    chunk_size: usize,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[&[u8]],
) -> Result<(), MediaError> {
    let total: usize = payload.iter().map(|p| p.len()).sum();
    if total > MAX_MESSAGE_SIZE {
        return Err(MediaError::TooLarge {
            what: "RTMP message",
            size: total as u64,
            limit: MAX_MESSAGE_SIZE as u64,
        });
    }
    let chunk_size = chunk_size.clamp(1, MAX_CHUNK_SIZE);
    let csid = csid.max(2);
    out.reserve(encoded_len(csid, timestamp, total, chunk_size));
    let ext = timestamp >= 0xff_ffff;
    basic_header(out, 0, csid);
    let ts = if ext { 0xff_ffff } else { timestamp };
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.extend_from_slice(&(total as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if ext {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    let mut in_chunk = 0;
    for part in payload {
        let mut part = *part;
        while !part.is_empty() {
            if in_chunk == chunk_size {
                basic_header(out, 3, csid);
                if ext {
                    out.extend_from_slice(&timestamp.to_be_bytes());
                }
                in_chunk = 0;
            }
            let n = (chunk_size - in_chunk).min(part.len());
            out.extend_from_slice(&part[..n]);
            in_chunk += n;
            part = &part[n..];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing with overflow checks: the dropped message was taken off `pending` twice.
    #[test]
    fn new_header_mid_message_split_across_reads() {
        let mut d = ChunkDecoder::new();
        // csid 3, fmt 0, 300-byte audio message: its first 128-byte chunk
        let mut b = vec![0x03, 0, 0, 0, 0, 0x01, 0x2c, 8, 0, 0, 0, 0];
        b.extend_from_slice(&[0u8; 128]);
        // a fmt 0 header for a new 10-byte message on the same stream, payload not there yet
        b.extend_from_slice(&[0x03, 0, 0, 0, 0, 0, 10, 8, 0, 0, 0, 0]);
        d.feed(&b);
        assert!(d.next_message().unwrap().is_none());
        assert!(d.next_message().unwrap().is_none());
        d.feed(&[7u8; 10]);
        let m = d.next_message().unwrap().unwrap();
        assert_eq!(&m.payload[..], &[7u8; 10]);
        assert_eq!(d.pending, 0);
    }

    const PUBLISH: &[u8] = include_bytes!("../../tests/fixtures/rtmp/ffmpeg_publish.bin");
    const HS: usize = 1 + 2 * 1536;

    fn decode_all(data: &[u8], step: usize) -> Vec<RawMessage> {
        let mut d = ChunkDecoder::new();
        let mut out = Vec::new();
        for c in data.chunks(step) {
            d.feed(c);
            while let Some(m) = d.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(d.buffered(), 0);
        out
    }

    #[test]
    fn ffmpeg_publish_chunk_stream() {
        let body = &PUBLISH[HS..];
        let msgs = decode_all(body, body.len());
        for step in [1, 7, 128, 1000, 4097] {
            assert_eq!(decode_all(body, step), msgs);
        }
        // ffmpeg: connect (140 bytes, two chunks at chunk size 128), Set Chunk Size 4096,
        // releaseStream, FCPublish, createStream, publish, @setDataFrame, then media.
        assert_eq!(msgs[0].type_id, msg_type::COMMAND_AMF0);
        assert_eq!(msgs[0].payload.len(), 140);
        assert!(msgs[0].payload.windows(7).any(|w| w == b"connect"));
        assert_eq!(msgs[1].type_id, msg_type::SET_CHUNK_SIZE);
        assert_eq!(&msgs[1].payload[..], &4096u32.to_be_bytes());
        let video = msgs.iter().filter(|m| m.type_id == msg_type::VIDEO).count();
        let audio = msgs.iter().filter(|m| m.type_id == msg_type::AUDIO).count();
        // 25 frames + sequence header + end of sequence; 45 frames + sequence header (ffprobe
        // counts 25 and 45 packets in the same encode written to a file).
        assert_eq!((video, audio), (27, 46));
        let vts: Vec<u32> = msgs
            .iter()
            .filter(|m| m.type_id == msg_type::VIDEO)
            .map(|m| m.timestamp)
            .collect();
        assert_eq!(&vts[..4], &[0, 0, 40, 80]);
        assert_eq!(*vts.last().unwrap(), 960);
        // Re-encoding every message at several chunk sizes decodes to the same messages.
        for cs in [1, 128, 4096, 1 << 20] {
            let mut enc = Vec::new();
            let mut dec_msgs = Vec::new();
            for m in &msgs {
                encode_message(
                    &mut enc,
                    cs,
                    m.csid,
                    m.timestamp,
                    m.type_id,
                    m.stream_id,
                    &[&m.payload],
                )
                .unwrap();
            }
            let mut d = ChunkDecoder::new();
            d.chunk_size = cs;
            d.feed(&enc);
            while let Some(m) = d.next_message().unwrap() {
                if m.type_id == msg_type::SET_CHUNK_SIZE {
                    d.chunk_size = cs;
                }
                dec_msgs.push(m);
            }
            assert_eq!(dec_msgs, msgs);
        }
    }

    #[test]
    fn extended_timestamps_and_header_formats() {
        let mut enc = Vec::new();
        let big = 0x0123_4567;
        let payload = vec![7u8; 300];
        encode_message(&mut enc, 128, 6, big, msg_type::VIDEO, 1, &[&payload]).unwrap();
        assert_eq!(enc.len(), encoded_len(6, big, 300, 128));
        let mut d = ChunkDecoder::new();
        d.feed(&enc);
        let m = d.next_message().unwrap().unwrap();
        assert_eq!((m.timestamp, m.payload.len()), (big, 300));
        // Continuations without the repeated extended timestamp (some encoders) decode too.
        let mut alt = enc[..1 + 11 + 4 + 128].to_vec();
        alt.push(0xc6);
        alt.extend_from_slice(&payload[..128]);
        alt.push(0xc6);
        alt.extend_from_slice(&payload[..44]);
        let mut d = ChunkDecoder::new();
        d.feed(&alt);
        assert_eq!(d.next_message().unwrap().unwrap().payload.len(), 300);
        // Format 1 (delta, new length/type), format 2 (delta), format 3 (same delta again), and a
        // two-byte csid (64 + 10).
        let mut b = vec![0x00, 10, 0, 0, 100, 0, 0, 1, 8, 1, 0, 0, 0, 0xaa];
        b.extend_from_slice(&[0x40, 10, 0, 0, 20, 0, 0, 2, 9, 0xbb, 0xcc]);
        b.extend_from_slice(&[0x80, 10, 0, 0, 30, 0xdd, 0xee]);
        b.extend_from_slice(&[0xc0, 10, 0x11, 0x22]);
        let mut d = ChunkDecoder::new();
        d.feed(&b);
        let got: Vec<_> = std::iter::from_fn(|| d.next_message().unwrap())
            .map(|m| (m.csid, m.timestamp, m.type_id, m.payload.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (74, 100, 8, 1),
                (74, 120, 9, 2),
                (74, 150, 9, 2),
                (74, 180, 9, 2)
            ]
        );
    }

    #[test]
    fn new_header_inside_a_message_fed_byte_by_byte() {
        // 128 bytes of a 200-byte message on csid 4, then a format-0 header starting a 1-byte
        // message on the same csid: the unfinished message is dropped exactly once.
        let mut b = vec![0x04, 0, 0, 0, 0, 0, 200, 8, 1, 0, 0, 0];
        b.extend_from_slice(&[0u8; 128]);
        b.extend_from_slice(&[0x04, 0, 0, 9, 0, 0, 1, 8, 1, 0, 0, 0, 0x77]);
        let mut d = ChunkDecoder::new();
        let mut got = Vec::new();
        for x in &b {
            d.feed(&[*x]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].timestamp, &got[0].payload[..]), (9, &[0x77][..]));
        assert_eq!(d.pending, 0);
    }

    #[test]
    fn abort_and_bounds() {
        // Start a 200-byte message, abort it, then send a fresh one on the same csid.
        let mut b = vec![0x04, 0, 0, 0, 0, 0, 200, 8, 1, 0, 0, 0];
        b.extend_from_slice(&[0u8; 128]);
        b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 4]);
        b.extend_from_slice(&[0x04, 0, 0, 5, 0, 0, 1, 8, 1, 0, 0, 0, 0x55]);
        let mut d = ChunkDecoder::new();
        d.feed(&b);
        assert_eq!(d.next_message().unwrap().unwrap().type_id, msg_type::ABORT);
        let m = d.next_message().unwrap().unwrap();
        assert_eq!((m.timestamp, &m.payload[..]), (5, &[0x55][..]));
        // Chunk size 0 and above the cap.
        for size in [0u32, (MAX_CHUNK_SIZE + 1) as u32] {
            let mut d = ChunkDecoder::new();
            let mut b = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
            b.extend_from_slice(&size.to_be_bytes());
            d.feed(&b);
            assert!(d.next_message().is_err());
        }
        // Format 1 on an unknown chunk stream.
        let mut d = ChunkDecoder::new();
        d.feed(&[0x45, 0, 0, 0, 0, 0, 1, 8]);
        assert!(d.next_message().is_err());
        // Too many chunk streams with unfinished messages.
        let mut d = ChunkDecoder::new();
        for csid in 0..=MAX_CHUNK_STREAMS as u8 {
            d.feed(&[0x00, csid, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0]);
        }
        let r: Result<Vec<_>, _> = std::iter::from_fn(|| d.next_message().transpose()).collect();
        assert!(r.is_err());
        // A 16 MiB message announced: nothing is allocated until bytes arrive.
        let mut d = ChunkDecoder::new();
        d.feed(&[0x06, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0, 1, 2, 3]);
        assert_eq!(d.next_message().unwrap(), None);
    }
}
