//! RTMP messages above the chunk layer: protocol control, user control, AMF0 commands and data, and
//! the builders for what a server or client sends.

use bytes::Bytes;

use super::chunk::{encode_message, msg_type, RawMessage};
use crate::amf0::{self, Amf0};
use crate::error::MediaError;

/// Chunk stream ids we send on.
pub mod csid {
    /// Protocol and user control messages (required by the spec).
    pub const CONTROL: u32 = 2;
    /// Commands and their replies.
    pub const COMMAND: u32 = 3;
    /// Audio messages.
    pub const AUDIO: u32 = 4;
    /// Data messages of a stream (`onMetaData`) and its status replies.
    pub const STREAM: u32 = 5;
    /// Video messages.
    pub const VIDEO: u32 = 6;
}

/// User control events (message type 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserControl {
    /// A message stream begins (sent before a play's media).
    StreamBegin(u32),
    /// A message stream's playback ended.
    StreamEof(u32),
    /// No more data on a stream for now.
    StreamDry(u32),
    /// The client tells how long it buffers a stream.
    SetBufferLength {
        /// The stream the client plays.
        stream_id: u32,
        /// How much it buffers, in ms.
        ms: u32,
    },
    /// The stream is a recording, not live.
    StreamIsRecorded(u32),
    /// The server checks the client is alive (a timestamp to echo).
    PingRequest(u32),
    /// The echo of a ping request's timestamp.
    PingResponse(u32),
    /// An event type not listed here, kept so it can be logged.
    Other(u16),
}

impl UserControl {
    /// Parses a user control payload: the event type and its arguments.
    pub fn parse(b: &[u8]) -> Result<UserControl, MediaError> {
        let short = || MediaError::malformed("RTMP user control", "short payload");
        if b.len() < 2 {
            return Err(short());
        }
        let ev = u16::from_be_bytes([b[0], b[1]]);
        let arg = |i: usize| -> Result<u32, MediaError> {
            let s = b.get(2 + 4 * i..6 + 4 * i).ok_or_else(short)?;
            Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        };
        Ok(match ev {
            0 => UserControl::StreamBegin(arg(0)?),
            1 => UserControl::StreamEof(arg(0)?),
            2 => UserControl::StreamDry(arg(0)?),
            3 => UserControl::SetBufferLength {
                stream_id: arg(0)?,
                ms: arg(1)?,
            },
            4 => UserControl::StreamIsRecorded(arg(0)?),
            6 => UserControl::PingRequest(arg(0)?),
            7 => UserControl::PingResponse(arg(0)?),
            e => UserControl::Other(e),
        })
    }

    /// The payload bytes of the event.
    pub fn encode(&self) -> Vec<u8> {
        let (ev, a, b) = match *self {
            UserControl::StreamBegin(s) => (0u16, s, None),
            UserControl::StreamEof(s) => (1, s, None),
            UserControl::StreamDry(s) => (2, s, None),
            UserControl::SetBufferLength { stream_id, ms } => (3, stream_id, Some(ms)),
            UserControl::StreamIsRecorded(s) => (4, s, None),
            UserControl::PingRequest(t) => (6, t, None),
            UserControl::PingResponse(t) => (7, t, None),
            UserControl::Other(e) => (e, 0, None),
        };
        let mut v = ev.to_be_bytes().to_vec();
        v.extend_from_slice(&a.to_be_bytes());
        if let Some(b) = b {
            v.extend_from_slice(&b.to_be_bytes());
        }
        v
    }
}

/// An AMF0 command: name, transaction id, command object (often null) and arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The command (`connect`, `createStream`, `publish`, `_result` …).
    pub name: String,
    /// Matches a reply (`_result`, `_error`) to its request; 0 when no reply is expected.
    pub transaction: f64,
    /// The command object (connect's properties), usually null for other commands.
    pub object: Amf0,
    /// The remaining arguments (stream name, type, status objects …).
    pub args: Vec<Amf0>,
}

impl Command {
    /// A command to encode.
    pub fn new(name: &str, transaction: f64, object: Amf0, args: Vec<Amf0>) -> Command {
        Command {
            name: name.into(),
            transaction,
            object,
            args,
        }
    }

    /// Parses a command from an AMF0 payload; a payload that does not start with a name is an
    /// error, missing transaction and object are read as 0 and null.
    pub fn parse(payload: &[u8]) -> Result<Command, MediaError> {
        let mut vals = amf0::decode_all(payload)?.into_iter();
        let name = match vals.next() {
            Some(Amf0::String(s)) => s,
            _ => return Err(MediaError::malformed("RTMP command", "no command name")),
        };
        let transaction = vals.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let object = vals.next().unwrap_or(Amf0::Null);
        Ok(Command {
            name,
            transaction,
            object,
            args: vals.collect(),
        })
    }

    /// The AMF0 payload of the command.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        Amf0::str(self.name.clone()).encode(&mut v);
        Amf0::Number(self.transaction).encode(&mut v);
        self.object.encode(&mut v);
        for a in &self.args {
            a.encode(&mut v);
        }
        v
    }

    /// The first argument as a string (stream name of publish/play/FCPublish …).
    pub fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(Amf0::as_str)
    }
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The peer's chunk size from now on (already applied by the chunk decoder).
    SetChunkSize(u32),
    /// Drop the partial message on this chunk stream (applied by the decoder).
    Abort(u32),
    /// Bytes the peer received so far.
    Ack(u32),
    /// A user control event.
    UserControl(UserControl),
    /// How many bytes the peer may receive before it must acknowledge them.
    WindowAckSize(u32),
    /// The peer asks to limit what we send.
    SetPeerBandwidth {
        /// Bytes per window.
        size: u32,
        /// 0 hard, 1 soft, 2 dynamic (as RTMP defines them).
        limit: u8,
    },
    /// FLV audio tag body.
    Audio(Bytes),
    /// FLV video tag body.
    Video(Bytes),
    /// Data message (AMF0 values, e.g. `@setDataFrame`, `onMetaData`); `raw` is the AMF0 body.
    Data {
        /// The decoded values.
        values: Vec<Amf0>,
        /// The AMF0 bytes as received, to forward without re-encoding.
        raw: Bytes,
    },
    /// An AMF0 (or AMF0-in-AMF3) command.
    Command(Command),
    /// Aggregate message: a run of FLV tags.
    Aggregate(Bytes),
    /// Shared objects and anything else we ignore.
    Other(u8),
}

fn be32(b: &[u8], what: &'static str) -> Result<u32, MediaError> {
    let s = b
        .get(..4)
        .ok_or_else(|| MediaError::malformed(what, "short payload"))?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl Message {
    /// Parses a message by its type; media payloads are shared, not copied.
    pub fn parse(m: &RawMessage) -> Result<Message, MediaError> {
        let p = &m.payload;
        Ok(match m.type_id {
            msg_type::SET_CHUNK_SIZE => {
                Message::SetChunkSize(be32(p, "RTMP Set Chunk Size")? & 0x7fff_ffff)
            }
            msg_type::ABORT => Message::Abort(be32(p, "RTMP Abort")?),
            msg_type::ACK => Message::Ack(be32(p, "RTMP Acknowledgement")?),
            msg_type::USER_CONTROL => Message::UserControl(UserControl::parse(p)?),
            msg_type::WINDOW_ACK_SIZE => {
                Message::WindowAckSize(be32(p, "RTMP Window Acknowledgement Size")?)
            }
            msg_type::SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
                size: be32(p, "RTMP Set Peer Bandwidth")?,
                limit: p.get(4).copied().unwrap_or(2),
            },
            msg_type::AUDIO => Message::Audio(m.payload.clone()),
            msg_type::VIDEO => Message::Video(m.payload.clone()),
            msg_type::DATA_AMF0 => Message::Data {
                values: amf0::decode_all(p)?,
                raw: m.payload.clone(),
            },
            msg_type::DATA_AMF3 => {
                // AMF3 data messages from Flash start with a format byte 0 and carry AMF0.
                let raw = m.payload.slice(1.min(p.len())..);
                Message::Data {
                    values: amf0::decode_all(&raw)?,
                    raw,
                }
            }
            msg_type::COMMAND_AMF0 => Message::Command(Command::parse(p)?),
            msg_type::COMMAND_AMF3 => Message::Command(Command::parse(p.get(1..).unwrap_or(&[]))?),
            msg_type::AGGREGATE => Message::Aggregate(m.payload.clone()),
            t => Message::Other(t),
        })
    }
}

/// Splits an aggregate message into (tag type, timestamp, body) sub-messages. Timestamps are
/// rebased so the first sub-message has the aggregate's own timestamp.
pub fn split_aggregate(agg: &Bytes, timestamp: u32) -> Result<Vec<(u8, u32, Bytes)>, MediaError> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut base: Option<u32> = None;
    while pos < agg.len() {
        let h = crate::flv::TagHeader::parse(&agg[pos..])?;
        let start = pos + crate::flv::TAG_HEADER_LEN;
        let end = start
            .checked_add(h.data_size as usize)
            .filter(|&e| e <= agg.len())
            .ok_or_else(|| {
                MediaError::malformed("RTMP aggregate", "sub-message runs past the end")
            })?;
        let first = *base.get_or_insert(h.timestamp);
        out.push((
            h.tag_type,
            timestamp.wrapping_add(h.timestamp.wrapping_sub(first)),
            agg.slice(start..end),
        ));
        pos = (end + 4).min(agg.len());
    }
    Ok(out)
}

/// Writes messages as chunks into a buffer, with the chunk size the peer was told.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The chunk size the peer was told (by [`Writer::set_chunk_size`]); every message is cut with it.
    pub chunk_size: usize,
}

impl Writer {
    /// A writer with the protocol's initial chunk size (128).
    pub fn new() -> Writer {
        Writer {
            chunk_size: super::chunk::DEFAULT_CHUNK_SIZE,
        }
    }

    /// Writes any message (media, usually) cut into chunks: `payload` parts are concatenated, so
    /// a frame's prefix and its shared bytes need no copy into one buffer first.
    pub fn raw(
        &self,
        out: &mut Vec<u8>,
        csid: u32,
        ts: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[&[u8]],
    ) -> Result<(), MediaError> {
        encode_message(out, self.chunk_size, csid, ts, type_id, stream_id, payload)
    }

    fn control(&self, out: &mut Vec<u8>, type_id: u8, payload: &[u8]) {
        // Control payloads are a few bytes: cannot exceed the message limit.
        let _ = encode_message(
            out,
            self.chunk_size,
            csid::CONTROL,
            0,
            type_id,
            0,
            &[payload],
        );
    }

    /// Sends Set Chunk Size and starts using it for what follows.
    pub fn set_chunk_size(&mut self, out: &mut Vec<u8>, size: usize) {
        let size = size.clamp(1, super::chunk::MAX_CHUNK_SIZE);
        self.control(out, msg_type::SET_CHUNK_SIZE, &(size as u32).to_be_bytes());
        self.chunk_size = size;
    }
    /// Acknowledges `received` bytes (due every window).
    pub fn ack(&self, out: &mut Vec<u8>, received: u32) {
        self.control(out, msg_type::ACK, &received.to_be_bytes());
    }
    /// Tells the peer how many bytes it may receive before acknowledging.
    pub fn window_ack_size(&self, out: &mut Vec<u8>, size: u32) {
        self.control(out, msg_type::WINDOW_ACK_SIZE, &size.to_be_bytes());
    }
    /// Asks the peer to limit its output (`limit`: 0 hard, 1 soft, 2 dynamic).
    pub fn set_peer_bandwidth(&self, out: &mut Vec<u8>, size: u32, limit: u8) {
        let mut p = size.to_be_bytes().to_vec();
        p.push(limit);
        self.control(out, msg_type::SET_PEER_BANDWIDTH, &p);
    }
    /// Sends a user control event.
    pub fn user_control(&self, out: &mut Vec<u8>, ev: UserControl) {
        self.control(out, msg_type::USER_CONTROL, &ev.encode());
    }
    /// Sends a command on chunk stream `csid` of message stream `stream_id`.
    pub fn command(
        &self,
        out: &mut Vec<u8>,
        csid: u32,
        stream_id: u32,
        cmd: &Command,
    ) -> Result<(), MediaError> {
        encode_message(
            out,
            self.chunk_size,
            csid,
            0,
            msg_type::COMMAND_AMF0,
            stream_id,
            &[&cmd.encode()],
        )
    }
    /// Sends a data message (AMF0 values, e.g. `onMetaData`) with timestamp `ts`.
    pub fn data(
        &self,
        out: &mut Vec<u8>,
        stream_id: u32,
        ts: u32,
        values: &[Amf0],
    ) -> Result<(), MediaError> {
        encode_message(
            out,
            self.chunk_size,
            csid::STREAM,
            ts,
            msg_type::DATA_AMF0,
            stream_id,
            &[&amf0::encode_all(values)],
        )
    }
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

/// `{level, code, description}` as onStatus and _result carry it.
pub fn status(level: &str, code: &str, description: &str) -> Amf0 {
    Amf0::object([
        ("level", Amf0::str(level)),
        ("code", Amf0::str(code)),
        ("description", Amf0::str(description)),
    ])
}

/// `_result` for `connect`.
pub fn connect_result(transaction: f64, object_encoding: f64) -> Command {
    let props = Amf0::object([
        ("fmsVer", Amf0::str("FMS/3,5,7,7009")),
        ("capabilities", Amf0::Number(31.0)),
        ("mode", Amf0::Number(1.0)),
    ]);
    let mut info = status(
        "status",
        "NetConnection.Connect.Success",
        "Connection succeeded.",
    );
    if let Amf0::Object(p) = &mut info {
        p.push(("objectEncoding".into(), Amf0::Number(object_encoding)));
    }
    Command::new("_result", transaction, props, vec![info])
}

/// `_error` for a command.
pub fn error_result(transaction: f64, code: &str, description: &str) -> Command {
    Command::new(
        "_error",
        transaction,
        Amf0::Null,
        vec![status("error", code, description)],
    )
}

/// `_result` for `createStream`.
pub fn create_stream_result(transaction: f64, stream_id: u32) -> Command {
    Command::new(
        "_result",
        transaction,
        Amf0::Null,
        vec![Amf0::Number(stream_id as f64)],
    )
}

/// `onStatus` on a stream.
pub fn on_status(level: &str, code: &str, description: &str) -> Command {
    Command::new(
        "onStatus",
        0.0,
        Amf0::Null,
        vec![status(level, code, description)],
    )
}

/// The body of `@setDataFrame` + `onMetaData` (as publishers send) from an `onMetaData` body.
pub fn set_data_frame(metadata: &[Amf0]) -> Vec<Amf0> {
    let mut v = vec![Amf0::str("@setDataFrame")];
    v.extend_from_slice(metadata);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::ChunkDecoder;

    const PUBLISH: &[u8] = include_bytes!("../../tests/fixtures/rtmp/ffmpeg_publish.bin");
    const PLAY: &[u8] = include_bytes!("../../tests/fixtures/rtmp/ffprobe_play.bin");

    fn messages(capture: &[u8]) -> Vec<Message> {
        let mut d = ChunkDecoder::new();
        d.feed(&capture[3073..]);
        std::iter::from_fn(|| d.next_message().unwrap())
            .map(|m| Message::parse(&m).unwrap())
            .collect()
    }

    fn commands(msgs: &[Message]) -> Vec<&Command> {
        msgs.iter()
            .filter_map(|m| match m {
                Message::Command(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn ffmpeg_publish_commands() {
        let msgs = messages(PUBLISH);
        let cmds = commands(&msgs);
        let names: Vec<_> = cmds.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            &names[..5],
            &[
                "connect",
                "releaseStream",
                "FCPublish",
                "createStream",
                "publish"
            ]
        );
        assert_eq!(cmds[0].transaction, 1.0);
        assert_eq!(
            cmds[0].object.get("app").and_then(Amf0::as_str),
            Some("live")
        );
        assert_eq!(
            cmds[0].object.get("tcUrl").and_then(Amf0::as_str),
            Some("rtmp://127.0.0.1:19351/live")
        );
        assert_eq!(cmds[4].arg_str(0), Some("stream1"));
        assert_eq!(cmds[4].arg_str(1), Some("live"));
        // ffmpeg ends with FCUnpublish and deleteStream.
        assert_eq!(&names[names.len() - 2..], &["FCUnpublish", "deleteStream"]);
        let data = msgs.iter().find_map(|m| match m {
            Message::Data { values, .. } => Some(values),
            _ => None,
        });
        let data = data.unwrap();
        assert_eq!(data[0].as_str(), Some("@setDataFrame"));
        assert_eq!(data[2].get("width").and_then(Amf0::as_f64), Some(160.0));
        // Re-encoding the commands gives ffmpeg's bytes back.
        let mut d = ChunkDecoder::new();
        d.feed(&PUBLISH[3073..]);
        let raw = std::iter::from_fn(|| d.next_message().unwrap())
            .find(|m| m.type_id == msg_type::COMMAND_AMF0)
            .unwrap();
        assert_eq!(cmds[0].encode(), &raw.payload[..]);
    }

    #[test]
    fn ffprobe_play_commands() {
        let msgs = messages(PLAY);
        let cmds = commands(&msgs);
        let names: Vec<_> = cmds.iter().map(|c| c.name.as_str()).collect();
        assert!(names.starts_with(&["connect"]));
        assert!(names.contains(&"createStream"));
        let play = cmds.iter().find(|c| c.name == "play").unwrap();
        assert_eq!(play.arg_str(0), Some("stream1"));
        assert!(msgs
            .iter()
            .any(|m| matches!(m, Message::UserControl(UserControl::SetBufferLength { .. }))));
    }

    #[test]
    fn control_round_trip() {
        let mut w = Writer::new();
        let mut out = Vec::new();
        w.window_ack_size(&mut out, 2_500_000);
        w.set_peer_bandwidth(&mut out, 2_500_000, 2);
        w.user_control(&mut out, UserControl::StreamBegin(1));
        w.user_control(
            &mut out,
            UserControl::SetBufferLength {
                stream_id: 1,
                ms: 3000,
            },
        );
        w.set_chunk_size(&mut out, 4096);
        w.command(&mut out, csid::COMMAND, 0, &connect_result(1.0, 0.0))
            .unwrap();
        w.ack(&mut out, 12345);
        let mut d = ChunkDecoder::new();
        d.feed(&out);
        let msgs: Vec<_> = std::iter::from_fn(|| d.next_message().unwrap())
            .map(|m| Message::parse(&m).unwrap())
            .collect();
        assert_eq!(msgs[0], Message::WindowAckSize(2_500_000));
        assert_eq!(
            msgs[1],
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit: 2
            }
        );
        assert_eq!(msgs[2], Message::UserControl(UserControl::StreamBegin(1)));
        assert_eq!(
            msgs[3],
            Message::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                ms: 3000
            })
        );
        assert_eq!(msgs[4], Message::SetChunkSize(4096));
        assert!(matches!(&msgs[5], Message::Command(c) if c.name == "_result"));
        assert_eq!(msgs[6], Message::Ack(12345));
        assert!(UserControl::parse(&[0, 3, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn aggregate_split() {
        let mut agg = crate::flv::tag_bytes(9, 1000, &[0x17, 1, 0, 0, 0]).unwrap();
        agg.extend(crate::flv::tag_bytes(8, 1020, &[0xaf, 1, 9]).unwrap());
        let parts = split_aggregate(&Bytes::from(agg.clone()), 50).unwrap();
        assert_eq!(
            parts
                .iter()
                .map(|p| (p.0, p.1, p.2.len()))
                .collect::<Vec<_>>(),
            vec![(9, 50, 5), (8, 70, 3)]
        );
        agg.truncate(25);
        assert!(split_aggregate(&Bytes::from(agg), 0).is_err());
    }
}
