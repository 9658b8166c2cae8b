//! RTMP as sans-IO state machines: [`ServerSession`] for a connection a server accepted and
//! [`ClientSession`] for a connection a client opens (publish or play). Both take received bytes
//! with `feed`, yield events from `poll`, and queue what to send in an output buffer the caller
//! drains with `take_output`.
//!
//! Media messages are FLV tag bodies; sessions convert them into [`Track`]s and [`Frame`]s with
//! [`crate::flv::TagConverter`]. For sending media, [`media_message`] encodes a frame into chunk bytes
//! that depend only on the chunk size and stream id, so a server can encode a frame once and hand the
//! same bytes to every viewer.

pub mod amf0;
pub mod chunk;
pub mod handshake;
pub mod message;

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::amf0::Amf0;
use crate::error::MediaError;
use crate::flv::{self, TagConverter};
use crate::frame::{Frame, Track};
use chunk::{msg_type, ChunkDecoder};
use message::{csid, Command, Message, UserControl, Writer};

/// The chunk size a server and client switch to after connecting.
pub const OUT_CHUNK_SIZE: usize = 4096;
/// Streams a connection may create.
pub const MAX_STREAMS: u32 = 16;

const HS_C0C1: usize = 1 + handshake::PACKET;

/// What a server session reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect`: call [`ServerSession::accept_connect`] or [`ServerSession::reject_connect`].
    Connect {
        /// The application (the first path part of the URL: `live`).
        app: String,
        /// The URL the client connected to, as it sent it.
        tc_url: String,
    },
    /// `publish`: call [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`].
    Publish {
        /// The message stream the client publishes on.
        stream_id: u32,
        /// The stream name (the stream key, with any `?query`).
        name: String,
        /// `live`, `record` or `append`, as the client asked.
        kind: String,
    },
    /// `play`: call [`ServerSession::accept_play`] or [`ServerSession::reject_play`].
    Play {
        /// The message stream the client plays on.
        stream_id: u32,
        /// The stream name asked for (with any `?query`).
        name: String,
    },
    /// A published track appeared or changed.
    Track(Track),
    /// A published frame, on a track announced before.
    Frame(Frame),
    /// `@setDataFrame`/`onMetaData` from the publisher.
    Metadata(Vec<Amf0>),
    /// `deleteStream`, `closeStream` or `FCUnpublish`: the stream is over.
    StreamClosed {
        /// The message stream that ended.
        stream_id: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    C0C1,
    C2,
    Chunks,
}

/// What a server session knows about its peer after `connect`.
#[derive(Debug, Clone, Default)]
pub struct ConnectInfo {
    /// The application named in `connect`.
    pub app: String,
    /// The URL the client says it connected to.
    pub tc_url: String,
    /// 0 (AMF0) or 3 (AMF3): echoed in the reply, as Flash clients expect.
    pub object_encoding: f64,
}

/// A server-side RTMP connection.
pub struct ServerSession {
    phase: Phase,
    inbuf: BytesMut,
    decoder: ChunkDecoder,
    writer: Writer,
    out: Vec<u8>,
    events: VecDeque<ServerEvent>,
    seed: u64,
    /// What the peer's `connect` said (default before it came).
    pub connect: ConnectInfo,
    connect_txn: Option<f64>,
    next_stream: u32,
    publishing: Option<u32>,
    pending_publish: Option<u32>,
    conv: TagConverter,
    /// Window the peer asked us to acknowledge in.
    peer_window: u32,
    last_ack: u64,
    chunk_size_out: usize,
}

impl ServerSession {
    /// `seed` varies the handshake filler bytes (not a secret).
    pub fn new(seed: u64) -> ServerSession {
        ServerSession {
            phase: Phase::C0C1,
            inbuf: BytesMut::new(),
            decoder: ChunkDecoder::new(),
            writer: Writer::new(),
            out: Vec::new(),
            events: VecDeque::new(),
            seed,
            connect: ConnectInfo::default(),
            connect_txn: None,
            next_stream: 1,
            publishing: None,
            pending_publish: None,
            conv: TagConverter::new(),
            peer_window: 0,
            last_ack: 0,
            chunk_size_out: OUT_CHUNK_SIZE,
        }
    }

    /// Bytes received from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        match self.phase {
            Phase::Chunks => self.decoder.feed(data),
            _ => self.inbuf.extend_from_slice(data),
        }
    }

    /// Bytes to send to the peer (queued replies).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Replies are queued: the edge should write.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// The chunk size this session tells the peer it sends with (for shared media encodings).
    pub fn out_chunk_size(&self) -> usize {
        self.chunk_size_out
    }

    /// Bytes read from the peer as chunks so far.
    pub fn bytes_in(&self) -> u64 {
        self.decoder.bytes_in
    }

    /// The tracks a publisher has sent so far.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.conv.tracks()
    }

    /// The next event; `Ok(None)` when more input is needed. An error means the peer broke the
    /// protocol: close the connection.
    pub fn poll(&mut self) -> Result<Option<ServerEvent>, MediaError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            match self.phase {
                Phase::C0C1 => {
                    if self.inbuf.len() < HS_C0C1 {
                        return Ok(None);
                    }
                    let resp = handshake::server_response(&self.inbuf[..HS_C0C1], 0, self.seed)?;
                    self.out.extend_from_slice(&resp);
                    self.inbuf.advance(HS_C0C1);
                    self.phase = Phase::C2;
                }
                Phase::C2 => {
                    if self.inbuf.len() < handshake::PACKET {
                        return Ok(None);
                    }
                    // C2 is not checked: no client relies on it and Flash's own varies.
                    self.inbuf.advance(handshake::PACKET);
                    self.decoder.feed(&self.inbuf);
                    self.inbuf = BytesMut::new();
                    self.phase = Phase::Chunks;
                }
                Phase::Chunks => {
                    let Some(raw) = self.decoder.next_message()? else {
                        return Ok(None);
                    };
                    self.maybe_ack();
                    let msg = Message::parse(&raw)?;
                    self.handle(msg, raw.timestamp, raw.stream_id)?;
                }
            }
        }
    }

    fn maybe_ack(&mut self) {
        if self.peer_window > 0
            && self.decoder.bytes_in.wrapping_sub(self.last_ack) >= self.peer_window as u64
        {
            self.last_ack = self.decoder.bytes_in;
            self.writer.ack(&mut self.out, self.decoder.bytes_in as u32);
        }
    }

    fn media(&mut self, tag_type: u8, ts: u32, body: Bytes) -> Result<(), MediaError> {
        let c = self.conv.convert(tag_type, ts, body)?;
        if let Some(t) = c.track {
            self.events.push_back(ServerEvent::Track(t));
        }
        if let Some(f) = c.frame {
            self.events.push_back(ServerEvent::Frame(f));
        }
        if let Some(m) = c.metadata {
            self.events.push_back(ServerEvent::Metadata(m));
        }
        Ok(())
    }

    fn handle(&mut self, msg: Message, ts: u32, stream_id: u32) -> Result<(), MediaError> {
        let publishing = self.publishing == Some(stream_id) && stream_id != 0;
        match msg {
            Message::WindowAckSize(w) => self.peer_window = w,
            Message::UserControl(UserControl::PingRequest(t)) => self
                .writer
                .user_control(&mut self.out, UserControl::PingResponse(t)),
            Message::Audio(b) if publishing => self.media(flv::TAG_AUDIO, ts, b)?,
            Message::Video(b) if publishing => self.media(flv::TAG_VIDEO, ts, b)?,
            Message::Data { raw, .. } if publishing => self.media(flv::TAG_SCRIPT, ts, raw)?,
            Message::Aggregate(b) if publishing => {
                for (t, ts, body) in message::split_aggregate(&b, ts)? {
                    if matches!(t, flv::TAG_AUDIO | flv::TAG_VIDEO | flv::TAG_SCRIPT) {
                        self.media(t, ts, body)?;
                    }
                }
            }
            Message::Command(c) => self.command(c, stream_id)?,
            _ => {}
        }
        Ok(())
    }

    fn command(&mut self, c: Command, stream_id: u32) -> Result<(), MediaError> {
        match c.name.as_str() {
            "connect" => {
                if self.connect_txn.is_some() {
                    return Err(MediaError::malformed("RTMP connect", "second connect"));
                }
                let s = |k: &str| {
                    c.object
                        .get(k)
                        .and_then(Amf0::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                self.connect = ConnectInfo {
                    app: s("app"),
                    tc_url: s("tcUrl"),
                    object_encoding: c
                        .object
                        .get("objectEncoding")
                        .and_then(Amf0::as_f64)
                        .unwrap_or(0.0),
                };
                self.connect_txn = Some(c.transaction);
                self.events.push_back(ServerEvent::Connect {
                    app: self.connect.app.clone(),
                    tc_url: self.connect.tc_url.clone(),
                });
            }
            "createStream" => {
                if self.next_stream > MAX_STREAMS {
                    self.writer.command(
                        &mut self.out,
                        csid::COMMAND,
                        0,
                        &message::error_result(
                            c.transaction,
                            "NetConnection.Call.Failed",
                            "too many streams",
                        ),
                    )?;
                } else {
                    let id = self.next_stream;
                    self.next_stream += 1;
                    self.writer.command(
                        &mut self.out,
                        csid::COMMAND,
                        0,
                        &message::create_stream_result(c.transaction, id),
                    )?;
                }
            }
            "publish" => {
                let name = c.arg_str(0).unwrap_or("").to_string();
                let kind = c.arg_str(1).unwrap_or("live").to_string();
                if stream_id == 0
                    || stream_id >= self.next_stream
                    || self.publishing.is_some()
                    || self.pending_publish.is_some()
                {
                    let st = message::on_status(
                        "error",
                        "NetStream.Publish.BadName",
                        "cannot publish here",
                    );
                    self.writer
                        .command(&mut self.out, csid::STREAM, stream_id, &st)?;
                } else {
                    self.pending_publish = Some(stream_id);
                    self.events.push_back(ServerEvent::Publish {
                        stream_id,
                        name,
                        kind,
                    });
                }
            }
            "play" => {
                let name = c.arg_str(0).unwrap_or("").to_string();
                if stream_id == 0 || stream_id >= self.next_stream {
                    let st = message::on_status(
                        "error",
                        "NetStream.Play.Failed",
                        "play on an unknown stream",
                    );
                    self.writer
                        .command(&mut self.out, csid::STREAM, stream_id, &st)?;
                } else {
                    self.events.push_back(ServerEvent::Play { stream_id, name });
                }
            }
            "deleteStream" => {
                let id = c.args.first().and_then(Amf0::as_f64).unwrap_or(0.0) as u32;
                self.close_stream(id);
            }
            "closeStream" => self.close_stream(stream_id),
            "FCUnpublish" => {
                if let Some(id) = self.publishing {
                    self.close_stream(id);
                }
            }
            "FCPublish" => {
                let name = c.arg_str(0).unwrap_or("").to_string();
                let st = Command::new(
                    "onFCPublish",
                    0.0,
                    Amf0::Null,
                    vec![message::status("status", "NetStream.Publish.Start", &name)],
                );
                self.writer.command(&mut self.out, csid::COMMAND, 0, &st)?;
            }
            // releaseStream, getStreamLength, _checkbw, pause, receiveAudio …: nothing to do.
            _ => {}
        }
        Ok(())
    }

    fn close_stream(&mut self, id: u32) {
        if self.publishing == Some(id) {
            self.publishing = None;
        }
        if self.pending_publish == Some(id) {
            self.pending_publish = None;
        }
        if id != 0 {
            self.events
                .push_back(ServerEvent::StreamClosed { stream_id: id });
        }
    }

    /// Answers `connect` with the window, bandwidth, chunk size and `_result`.
    pub fn accept_connect(&mut self) -> Result<(), MediaError> {
        let txn = self.connect_txn.unwrap_or(1.0);
        self.writer.window_ack_size(&mut self.out, 2_500_000);
        self.writer.set_peer_bandwidth(&mut self.out, 2_500_000, 2);
        self.writer
            .set_chunk_size(&mut self.out, self.chunk_size_out);
        self.writer.command(
            &mut self.out,
            csid::COMMAND,
            0,
            &message::connect_result(txn, self.connect.object_encoding),
        )?;
        Ok(())
    }

    /// Answers `connect` with `NetConnection.Connect.Rejected` and `reason`; the edge closes
    /// once it is sent.
    pub fn reject_connect(&mut self, reason: &str) -> Result<(), MediaError> {
        let txn = self.connect_txn.unwrap_or(1.0);
        self.writer.command(
            &mut self.out,
            csid::COMMAND,
            0,
            &message::error_result(txn, "NetConnection.Connect.Rejected", reason),
        )
    }

    /// Answers `publish` with Stream Begin and `NetStream.Publish.Start`: media that follows
    /// comes out as tracks and frames.
    pub fn accept_publish(&mut self, stream_id: u32, name: &str) -> Result<(), MediaError> {
        self.pending_publish = None;
        self.publishing = Some(stream_id);
        self.writer
            .user_control(&mut self.out, UserControl::StreamBegin(stream_id));
        let st = message::on_status(
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
        );
        self.writer
            .command(&mut self.out, csid::STREAM, stream_id, &st)
    }

    /// Answers `publish` with `NetStream.Publish.BadName` and `reason` (what OBS and ffmpeg
    /// show the user).
    pub fn reject_publish(&mut self, stream_id: u32, reason: &str) -> Result<(), MediaError> {
        self.pending_publish = None;
        let st = message::on_status("error", "NetStream.Publish.BadName", reason);
        self.writer
            .command(&mut self.out, csid::STREAM, stream_id, &st)
    }

    /// Answers `play` of a live stream: Stream Begin, `Play.Reset`, `Play.Start`,
    /// `|RtmpSampleAccess`.
    pub fn accept_play(&mut self, stream_id: u32, name: &str) -> Result<(), MediaError> {
        self.writer
            .user_control(&mut self.out, UserControl::StreamBegin(stream_id));
        let w = &self.writer;
        w.command(
            &mut self.out,
            csid::STREAM,
            stream_id,
            &message::on_status(
                "status",
                "NetStream.Play.Reset",
                &format!("Playing and resetting {name}."),
            ),
        )?;
        w.command(
            &mut self.out,
            csid::STREAM,
            stream_id,
            &message::on_status(
                "status",
                "NetStream.Play.Start",
                &format!("Started playing {name}."),
            ),
        )?;
        w.data(
            &mut self.out,
            stream_id,
            0,
            &[
                Amf0::str("|RtmpSampleAccess"),
                Amf0::Bool(true),
                Amf0::Bool(true),
            ],
        )
    }

    /// Answers `play` with `NetStream.Play.StreamNotFound` and `reason`.
    pub fn reject_play(&mut self, stream_id: u32, reason: &str) -> Result<(), MediaError> {
        let st = message::on_status("error", "NetStream.Play.StreamNotFound", reason);
        self.writer
            .command(&mut self.out, csid::STREAM, stream_id, &st)
    }

    /// Queues `onMetaData` and the sequence headers of `tracks` at time `ts` (ms).
    pub fn send_tracks(
        &mut self,
        stream_id: u32,
        tracks: &[Track],
        ts: i64,
    ) -> Result<(), MediaError> {
        queue_tracks(&self.writer, &mut self.out, stream_id, tracks, ts)
    }

    /// Queues a frame (per-session encoding; servers with many viewers use [`media_message`]).
    pub fn send_frame(
        &mut self,
        stream_id: u32,
        track: &Track,
        frame: &Frame,
    ) -> Result<(), MediaError> {
        let m = media_message(self.writer.chunk_size, stream_id, track, frame)?;
        self.out.extend_from_slice(&m);
        Ok(())
    }

    /// Queues Stream EOF and `Play.Stop`/`Unpublish` status for a stream that ended.
    pub fn end_stream(&mut self, stream_id: u32) -> Result<(), MediaError> {
        queue_end(&self.writer, &mut self.out, stream_id)
    }
}

fn queue_end(w: &Writer, out: &mut Vec<u8>, stream_id: u32) -> Result<(), MediaError> {
    w.user_control(out, UserControl::StreamEof(stream_id));
    w.command(
        out,
        csid::STREAM,
        stream_id,
        &message::on_status("status", "NetStream.Play.UnpublishNotify", "stream ended"),
    )
}

/// What [`ServerSession::send_tracks`] queues, as one buffer that many viewers can share: the
/// bytes depend only on (chunk size, stream id, tracks, time), as [`media_message`]'s do.
pub fn tracks_message(
    chunk_size: usize,
    stream_id: u32,
    tracks: &[Track],
    ts: i64,
) -> Result<Bytes, MediaError> {
    let mut out = Vec::new();
    queue_tracks(&Writer { chunk_size }, &mut out, stream_id, tracks, ts)?;
    Ok(Bytes::from(out))
}

/// What [`ServerSession::end_stream`] queues, as one shareable buffer.
pub fn end_message(chunk_size: usize, stream_id: u32) -> Result<Bytes, MediaError> {
    let mut out = Vec::new();
    queue_end(&Writer { chunk_size }, &mut out, stream_id)?;
    Ok(Bytes::from(out))
}

fn queue_tracks(
    w: &Writer,
    out: &mut Vec<u8>,
    stream_id: u32,
    tracks: &[Track],
    ts: i64,
) -> Result<(), MediaError> {
    let meta = flv::metadata_body(tracks);
    w.raw(
        out,
        csid::STREAM,
        0,
        msg_type::DATA_AMF0,
        stream_id,
        &[&meta],
    )?;
    for t in tracks {
        if let Some(body) = flv::sequence_header_body(t)? {
            let (c, ty) = if flv::tag_type(t)? == flv::TAG_VIDEO {
                (csid::VIDEO, msg_type::VIDEO)
            } else {
                (csid::AUDIO, msg_type::AUDIO)
            };
            w.raw(out, c, flv::wire_time(ts), ty, stream_id, &[&body])?;
        }
    }
    Ok(())
}

/// Encodes a frame as an RTMP audio/video message in chunks of `chunk_size` with a format-0 header:
/// the bytes depend only on (chunk size, stream id, track, frame), so they can be shared.
pub fn media_message(
    chunk_size: usize,
    stream_id: u32,
    track: &Track,
    frame: &Frame,
) -> Result<Bytes, MediaError> {
    let prefix = flv::frame_prefix(track, frame)?;
    let (c, ty) = if flv::tag_type(track)? == flv::TAG_VIDEO {
        (csid::VIDEO, msg_type::VIDEO)
    } else {
        (csid::AUDIO, msg_type::AUDIO)
    };
    let mut out = Vec::with_capacity(chunk::encoded_len(
        c,
        flv::wire_time(frame.dts),
        prefix.len() + frame.data.len(),
        chunk_size,
    ));
    chunk::encode_message(
        &mut out,
        chunk_size,
        c,
        flv::wire_time(frame.dts),
        ty,
        stream_id,
        &[&prefix, &frame.data],
    )?;
    Ok(Bytes::from(out))
}

/// Publish or play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    /// Send media (pushes to another server).
    Publish,
    /// Receive media.
    Play,
}

/// What a client session reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// Publishing may start / playback started.
    Ready {
        /// The message stream the server created.
        stream_id: u32,
    },
    /// An `onStatus` (level, code, description).
    Status {
        /// `status`, `warning` or `error`.
        level: String,
        /// The machine-readable code (`NetStream.Play.Start` …).
        code: String,
        /// The server's text for people.
        description: String,
    },
    /// A played track appeared or changed.
    Track(Track),
    /// A played frame.
    Frame(Frame),
    /// `onMetaData` of the played stream.
    Metadata(Vec<Amf0>),
    /// The server refused (an `_error` or an error-level status).
    Refused(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientPhase {
    S0S1S2,
    Connecting,
    Creating,
    Starting,
    Ready,
}

/// A client-side RTMP connection (for pushes to other servers, tests and the load generator).
pub struct ClientSession {
    phase: ClientPhase,
    mode: ClientMode,
    app: String,
    tc_url: String,
    stream: String,
    inbuf: BytesMut,
    decoder: ChunkDecoder,
    writer: Writer,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    stream_id: u32,
    conv: TagConverter,
    peer_window: u32,
    last_ack: u64,
}

impl ClientSession {
    /// Starts a session: the C0 C1 bytes are queued at once.
    pub fn new(
        app: &str,
        tc_url: &str,
        stream: &str,
        mode: ClientMode,
        seed: u64,
    ) -> ClientSession {
        let (hello, _) = handshake::client_hello(true, seed);
        ClientSession {
            phase: ClientPhase::S0S1S2,
            mode,
            app: app.into(),
            tc_url: tc_url.into(),
            stream: stream.into(),
            inbuf: BytesMut::new(),
            decoder: ChunkDecoder::new(),
            writer: Writer::new(),
            out: hello,
            events: VecDeque::new(),
            stream_id: 0,
            conv: TagConverter::new(),
            peer_window: 0,
            last_ack: 0,
        }
    }

    /// Bytes received from the server.
    pub fn feed(&mut self, data: &[u8]) {
        match self.phase {
            ClientPhase::S0S1S2 => self.inbuf.extend_from_slice(data),
            _ => self.decoder.feed(data),
        }
    }

    /// Bytes to send to the server.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The stream is created and publishing or playing has started.
    pub fn is_ready(&self) -> bool {
        self.phase == ClientPhase::Ready
    }

    /// Bytes queued for sending.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// The next event; `Ok(None)` when more input is needed. An error means the server broke
    /// the protocol.
    pub fn poll(&mut self) -> Result<Option<ClientEvent>, MediaError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if self.phase == ClientPhase::S0S1S2 {
                if self.inbuf.len() < 1 + 2 * handshake::PACKET {
                    return Ok(None);
                }
                if self.inbuf[0] != handshake::VERSION {
                    return Err(MediaError::malformed(
                        "RTMP handshake",
                        format!("server version {}", self.inbuf[0]),
                    ));
                }
                // C2 = echo of S1.
                self.out
                    .extend_from_slice(&self.inbuf[1..1 + handshake::PACKET]);
                self.inbuf.advance(1 + 2 * handshake::PACKET);
                self.decoder.feed(&self.inbuf);
                self.inbuf = BytesMut::new();
                self.writer.set_chunk_size(&mut self.out, OUT_CHUNK_SIZE);
                let obj = Amf0::object([
                    ("app", Amf0::str(self.app.clone())),
                    ("type", Amf0::str("nonprivate")),
                    ("flashVer", Amf0::str("FMLE/3.0 (compatible; mist-rs)")),
                    ("tcUrl", Amf0::str(self.tc_url.clone())),
                    ("fpad", Amf0::Bool(false)),
                    ("capabilities", Amf0::Number(15.0)),
                    ("audioCodecs", Amf0::Number(4071.0)),
                    ("videoCodecs", Amf0::Number(252.0)),
                    ("videoFunction", Amf0::Number(1.0)),
                    ("objectEncoding", Amf0::Number(0.0)),
                ]);
                self.writer.command(
                    &mut self.out,
                    csid::COMMAND,
                    0,
                    &Command::new("connect", 1.0, obj, vec![]),
                )?;
                self.phase = ClientPhase::Connecting;
                continue;
            }
            let Some(raw) = self.decoder.next_message()? else {
                return Ok(None);
            };
            if self.peer_window > 0
                && self.decoder.bytes_in.wrapping_sub(self.last_ack) >= self.peer_window as u64
            {
                self.last_ack = self.decoder.bytes_in;
                self.writer.ack(&mut self.out, self.decoder.bytes_in as u32);
            }
            match Message::parse(&raw)? {
                Message::WindowAckSize(w) => self.peer_window = w,
                Message::UserControl(UserControl::PingRequest(t)) => self
                    .writer
                    .user_control(&mut self.out, UserControl::PingResponse(t)),
                Message::Command(c) => self.command(c)?,
                Message::Audio(b) if self.mode == ClientMode::Play => {
                    self.media(flv::TAG_AUDIO, raw.timestamp, b)?
                }
                Message::Video(b) if self.mode == ClientMode::Play => {
                    self.media(flv::TAG_VIDEO, raw.timestamp, b)?
                }
                Message::Data { raw: body, values }
                    if self.mode == ClientMode::Play
                        && values.first().and_then(Amf0::as_str) != Some("|RtmpSampleAccess") =>
                {
                    self.media(flv::TAG_SCRIPT, raw.timestamp, body)?;
                }
                _ => {}
            }
        }
    }

    fn media(&mut self, tag_type: u8, ts: u32, body: Bytes) -> Result<(), MediaError> {
        let c = self.conv.convert(tag_type, ts, body)?;
        if let Some(t) = c.track {
            self.events.push_back(ClientEvent::Track(t));
        }
        if let Some(f) = c.frame {
            self.events.push_back(ClientEvent::Frame(f));
        }
        if let Some(m) = c.metadata {
            self.events.push_back(ClientEvent::Metadata(m));
        }
        Ok(())
    }

    fn command(&mut self, c: Command) -> Result<(), MediaError> {
        match (c.name.as_str(), self.phase) {
            ("_result", ClientPhase::Connecting) if c.transaction == 1.0 => {
                self.events.push_back(ClientEvent::Connected);
                let w = &self.writer;
                if self.mode == ClientMode::Publish {
                    let s = Amf0::str(self.stream.clone());
                    w.command(
                        &mut self.out,
                        csid::COMMAND,
                        0,
                        &Command::new("releaseStream", 2.0, Amf0::Null, vec![s.clone()]),
                    )?;
                    w.command(
                        &mut self.out,
                        csid::COMMAND,
                        0,
                        &Command::new("FCPublish", 3.0, Amf0::Null, vec![s]),
                    )?;
                }
                w.command(
                    &mut self.out,
                    csid::COMMAND,
                    0,
                    &Command::new("createStream", 4.0, Amf0::Null, vec![]),
                )?;
                self.phase = ClientPhase::Creating;
            }
            ("_result", ClientPhase::Creating) if c.transaction == 4.0 => {
                self.stream_id = c.args.first().and_then(Amf0::as_f64).unwrap_or(1.0) as u32;
                let s = Amf0::str(self.stream.clone());
                let cmd = match self.mode {
                    ClientMode::Publish => {
                        Command::new("publish", 5.0, Amf0::Null, vec![s, Amf0::str("live")])
                    }
                    ClientMode::Play => {
                        Command::new("play", 5.0, Amf0::Null, vec![s, Amf0::Number(-2000.0)])
                    }
                };
                self.writer
                    .command(&mut self.out, csid::STREAM, self.stream_id, &cmd)?;
                if self.mode == ClientMode::Play {
                    self.writer.user_control(
                        &mut self.out,
                        UserControl::SetBufferLength {
                            stream_id: self.stream_id,
                            ms: 3000,
                        },
                    );
                }
                self.phase = ClientPhase::Starting;
            }
            ("_error", _) => {
                let d = c
                    .args
                    .first()
                    .and_then(|a| a.get("description"))
                    .and_then(Amf0::as_str)
                    .unwrap_or("refused");
                self.events.push_back(ClientEvent::Refused(d.to_string()));
            }
            ("onStatus", _) => {
                let info = c.args.first().cloned().unwrap_or(Amf0::Null);
                let g = |k: &str| info.get(k).and_then(Amf0::as_str).unwrap_or("").to_string();
                let (level, code, description) = (g("level"), g("code"), g("description"));
                if level == "error" {
                    self.events
                        .push_back(ClientEvent::Refused(format!("{code}: {description}")));
                } else if self.phase == ClientPhase::Starting
                    && (code == "NetStream.Publish.Start" || code == "NetStream.Play.Start")
                {
                    self.phase = ClientPhase::Ready;
                    self.events.push_back(ClientEvent::Ready {
                        stream_id: self.stream_id,
                    });
                }
                self.events.push_back(ClientEvent::Status {
                    level,
                    code,
                    description,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Queues a media message (an FLV tag body) while publishing.
    pub fn send_tag(
        &mut self,
        tag_type: u8,
        timestamp: u32,
        body: &[u8],
    ) -> Result<(), MediaError> {
        let (c, ty) = match tag_type {
            flv::TAG_AUDIO => (csid::AUDIO, msg_type::AUDIO),
            flv::TAG_VIDEO => (csid::VIDEO, msg_type::VIDEO),
            _ => (csid::STREAM, msg_type::DATA_AMF0),
        };
        self.writer
            .raw(&mut self.out, c, timestamp, ty, self.stream_id, &[body])
    }

    /// Queues track headers and frames while publishing.
    pub fn send_tracks(&mut self, tracks: &[Track]) -> Result<(), MediaError> {
        queue_tracks(&self.writer, &mut self.out, self.stream_id, tracks, 0)
    }

    /// Queues one frame of `track` while publishing.
    pub fn send_frame(&mut self, track: &Track, frame: &Frame) -> Result<(), MediaError> {
        let m = media_message(self.writer.chunk_size, self.stream_id, track, frame)?;
        self.out.extend_from_slice(&m);
        Ok(())
    }

    /// Queues FCUnpublish/deleteStream (publish) or deleteStream (play).
    pub fn close(&mut self) -> Result<(), MediaError> {
        let s = Amf0::str(self.stream.clone());
        if self.mode == ClientMode::Publish {
            self.writer.command(
                &mut self.out,
                csid::COMMAND,
                0,
                &Command::new("FCUnpublish", 6.0, Amf0::Null, vec![s]),
            )?;
        }
        let id = Amf0::Number(self.stream_id as f64);
        self.writer.command(
            &mut self.out,
            csid::COMMAND,
            0,
            &Command::new("deleteStream", 7.0, Amf0::Null, vec![id]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Codec;

    const PUBLISH: &[u8] = include_bytes!("../../tests/fixtures/rtmp/ffmpeg_publish.bin");
    const PLAY: &[u8] = include_bytes!("../../tests/fixtures/rtmp/ffprobe_play.bin");
    const RTMPDUMP: &[u8] = include_bytes!("../../tests/fixtures/rtmp/rtmpdump_play.bin");

    /// Runs a server session over a capture, accepting everything; returns the events.
    fn serve(capture: &[u8], step: usize) -> (Vec<ServerEvent>, Vec<u8>) {
        let mut s = ServerSession::new(3);
        let mut events = Vec::new();
        let mut out = Vec::new();
        for c in capture.chunks(step) {
            s.feed(c);
            while let Some(e) = s.poll().unwrap() {
                match &e {
                    ServerEvent::Connect { .. } => s.accept_connect().unwrap(),
                    ServerEvent::Publish {
                        stream_id, name, ..
                    } => s.accept_publish(*stream_id, name).unwrap(),
                    ServerEvent::Play { stream_id, name } => {
                        s.accept_play(*stream_id, name).unwrap()
                    }
                    _ => {}
                }
                events.push(e);
            }
            out.extend(s.take_output());
        }
        (events, out)
    }

    #[test]
    fn server_takes_ffmpeg_publish() {
        let (events, out) = serve(PUBLISH, 1000);
        let (events2, _) = serve(PUBLISH, 1);
        assert_eq!(events, events2);
        assert_eq!(
            events[0],
            ServerEvent::Connect {
                app: "live".into(),
                tc_url: "rtmp://127.0.0.1:19351/live".into()
            }
        );
        assert!(events.contains(&ServerEvent::Publish {
            stream_id: 1,
            name: "stream1".into(),
            kind: "live".into()
        }));
        let tracks: Vec<_> = events
            .iter()
            .filter_map(|e| {
                if let ServerEvent::Track(t) = e {
                    Some(t)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(tracks.len(), 2);
        let v = tracks.iter().find(|t| t.codec == Codec::H264).unwrap();
        assert_eq!((v.width, v.height), (160, 120));
        let a = tracks.iter().find(|t| t.codec == Codec::Aac).unwrap();
        assert_eq!((a.rate, a.channels), (44100, 1));
        let frames: Vec<_> = events
            .iter()
            .filter_map(|e| {
                if let ServerEvent::Frame(f) = e {
                    Some(f)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(
            frames
                .iter()
                .filter(|f| f.track == flv::VIDEO_TRACK)
                .count(),
            25
        );
        assert_eq!(
            frames
                .iter()
                .filter(|f| f.track == flv::AUDIO_TRACK)
                .count(),
            45
        );
        assert_eq!(
            frames
                .iter()
                .filter(|f| f.keyframe && f.track == flv::VIDEO_TRACK)
                .count(),
            1
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, ServerEvent::Metadata(m) if m[0].as_str() == Some("onMetaData"))));
        assert!(events.contains(&ServerEvent::StreamClosed { stream_id: 1 }));
        // Our reply starts with S0 S1 S2 answering ffmpeg's digest, then the connect replies.
        let cd = handshake::find_client_digest(&PUBLISH[1..1537]).unwrap().1;
        assert!(handshake::verify_s2(&out[1537..3073], &cd));
        let mut d = ChunkDecoder::new();
        d.feed(&out[3073..]);
        let msgs: Vec<_> = std::iter::from_fn(|| d.next_message().unwrap())
            .map(|m| Message::parse(&m).unwrap())
            .collect();
        assert!(msgs.iter().any(
            |m| matches!(m, Message::Command(c) if c.name == "_result" && c.transaction == 1.0)
        ));
        assert!(msgs
            .iter()
            .any(|m| matches!(m, Message::Command(c) if c.name == "onStatus"
            && c.args[0].get("code").and_then(Amf0::as_str) == Some("NetStream.Publish.Start"))));
    }

    #[test]
    fn acknowledgements_and_pings() {
        // After the peer announces a window, the session acknowledges once that many bytes came.
        let (hello, _) = handshake::client_hello(false, 1);
        let mut s = ServerSession::new(2);
        s.feed(&hello);
        s.feed(&[0u8; handshake::PACKET]);
        assert_eq!(s.poll().unwrap(), None);
        let _ = s.take_output();
        let w = Writer::new();
        let mut b = Vec::new();
        w.window_ack_size(&mut b, 1000);
        w.user_control(&mut b, UserControl::PingRequest(77));
        for i in 0..10u32 {
            w.raw(
                &mut b,
                3,
                i,
                msg_type::SHARED_OBJECT_AMF0,
                0,
                &[&[0u8; 120]],
            )
            .unwrap();
        }
        s.feed(&b);
        assert_eq!(s.poll().unwrap(), None);
        let mut d = ChunkDecoder::new();
        d.feed(&s.take_output());
        let msgs: Vec<_> = std::iter::from_fn(|| d.next_message().unwrap())
            .map(|m| Message::parse(&m).unwrap())
            .collect();
        assert_eq!(msgs[0], Message::UserControl(UserControl::PingResponse(77)));
        // 16 + 18 + 10 * 132 bytes: one acknowledgement, sent when the total passed 1000.
        let acks: Vec<_> = msgs
            .iter()
            .filter_map(|m| {
                if let Message::Ack(n) = m {
                    Some(*n)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(acks.len(), 1);
        assert!(
            acks[0] >= 1000 && acks[0] < 1000 + 132,
            "ack at {}",
            acks[0]
        );
        assert_eq!(s.bytes_in(), b.len() as u64);
    }

    #[test]
    fn server_takes_rtmpdump_play() {
        // rtmpdump (librtmp) uses the simple handshake (zero version in C1): S2 echoes C1.
        let (events, out) = serve(RTMPDUMP, 100);
        assert_eq!(&out[1537..3073], &RTMPDUMP[1..1537]);
        assert_eq!(
            events[0],
            ServerEvent::Connect {
                app: "play".into(),
                tc_url: "rtmp://127.0.0.1:19353/play".into()
            }
        );
        assert!(events.contains(&ServerEvent::Play {
            stream_id: 1,
            name: "stream1".into()
        }));
    }

    #[test]
    fn server_takes_ffprobe_play() {
        let (events, _) = serve(PLAY, 333);
        assert_eq!(
            events[0],
            ServerEvent::Connect {
                app: "play".into(),
                tc_url: "rtmp://127.0.0.1:19352/play".into()
            }
        );
        assert!(events.contains(&ServerEvent::Play {
            stream_id: 1,
            name: "stream1".into()
        }));
    }

    #[test]
    fn media_before_accept_is_ignored_and_garbage_is_an_error() {
        let mut s = ServerSession::new(1);
        s.feed(PUBLISH);
        let mut n = 0;
        while let Some(e) = s.poll().unwrap() {
            if let ServerEvent::Connect { .. } = e {
                s.accept_connect().unwrap();
            }
            assert!(!matches!(e, ServerEvent::Frame(_) | ServerEvent::Track(_)));
            n += 1;
        }
        assert!(n >= 2);
        let mut s = ServerSession::new(1);
        s.feed(&[6; 1537]);
        assert!(s.poll().is_err());
    }

    #[test]
    fn client_and_server_talk() {
        // Publish the ffmpeg capture's media through ClientSession -> ServerSession, then play it
        // back to a second client.
        let (events, _) = serve(PUBLISH, 4096);
        let tracks: Vec<Track> = events
            .iter()
            .filter_map(|e| {
                if let ServerEvent::Track(t) = e {
                    Some(t.clone())
                } else {
                    None
                }
            })
            .collect();
        let frames: Vec<Frame> = events
            .iter()
            .filter_map(|e| {
                if let ServerEvent::Frame(f) = e {
                    Some(f.clone())
                } else {
                    None
                }
            })
            .collect();

        let mut c = ClientSession::new("live", "rtmp://x/live", "s", ClientMode::Publish, 5);
        let mut s = ServerSession::new(6);
        let mut got = Vec::new();
        let mut sent = false;
        for _ in 0..50 {
            s.feed(&c.take_output());
            while let Some(e) = s.poll().unwrap() {
                match &e {
                    ServerEvent::Connect { .. } => s.accept_connect().unwrap(),
                    ServerEvent::Publish {
                        stream_id, name, ..
                    } => s.accept_publish(*stream_id, name).unwrap(),
                    _ => {}
                }
                got.push(e);
            }
            c.feed(&s.take_output());
            while let Some(e) = c.poll().unwrap() {
                if matches!(e, ClientEvent::Ready { .. }) && !sent {
                    c.send_tracks(&tracks).unwrap();
                    for f in &frames {
                        let t = tracks.iter().find(|t| t.id == f.track).unwrap();
                        c.send_frame(t, f).unwrap();
                    }
                    c.close().unwrap();
                    sent = true;
                }
            }
        }
        assert!(sent);
        let got_frames: Vec<_> = got
            .iter()
            .filter_map(|e| {
                if let ServerEvent::Frame(f) = e {
                    Some(f.clone())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(got_frames, frames);
        assert!(got.contains(&ServerEvent::StreamClosed { stream_id: 1 }));

        // Play: the server sends the shared encodings.
        let mut p = ClientSession::new("play", "rtmp://x/play", "s", ClientMode::Play, 8);
        let mut s = ServerSession::new(9);
        let mut played = Vec::new();
        for _ in 0..20 {
            s.feed(&p.take_output());
            while let Some(e) = s.poll().unwrap() {
                match &e {
                    ServerEvent::Connect { .. } => s.accept_connect().unwrap(),
                    ServerEvent::Play { stream_id, name } => {
                        s.accept_play(*stream_id, name).unwrap();
                        s.send_tracks(*stream_id, &tracks, 0).unwrap();
                        let mut bytes = s.take_output();
                        for f in &frames {
                            let t = tracks.iter().find(|t| t.id == f.track).unwrap();
                            bytes.extend_from_slice(
                                &media_message(s.out_chunk_size(), *stream_id, t, f).unwrap(),
                            );
                        }
                        p.feed(&bytes);
                    }
                    _ => {}
                }
            }
            p.feed(&s.take_output());
            while let Some(e) = p.poll().unwrap() {
                played.push(e);
            }
        }
        assert!(played
            .iter()
            .any(|e| matches!(e, ClientEvent::Ready { stream_id: 1 })));
        let pf: Vec<_> = played
            .iter()
            .filter_map(|e| {
                if let ClientEvent::Frame(f) = e {
                    Some(f.clone())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(pf, frames);
        let pt: Vec<_> = played
            .iter()
            .filter_map(|e| {
                if let ClientEvent::Track(t) = e {
                    Some(t.clone())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(pt, tracks);
    }
}
