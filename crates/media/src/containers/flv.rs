//! FLV: file header, tags, and the conversion between tag bodies and the media model.
//!
//! RTMP audio/video/data messages carry exactly FLV tag bodies, so [`TagConverter`] serves both the
//! FLV demuxer here and the RTMP session. Video may use legacy codec ids (7 = AVC) or enhanced RTMP
//! FourCC headers (`avc1`, `hvc1`, `av01`, `vp09`).
//!
//! The muxer side builds the small per-frame prefix (codec bytes, composition time) and the 11-byte tag
//! header separately from the payload, so callers can write `[head, payload, trailer]` with vectored
//! I/O and share the payload `Bytes` between many viewers.

use bytes::{Buf, Bytes, BytesMut};

use crate::aac::AudioSpecificConfig;
use crate::amf0::{self, Amf0};
use crate::error::MediaError;
use crate::frame::{Codec, Frame, Track};
use crate::h264;
use crate::time::Unwrapper;

/// Tag type of audio (RTMP message type 8 carries the same body).
pub const TAG_AUDIO: u8 = 8;
/// Tag type of video (RTMP message type 9).
pub const TAG_VIDEO: u8 = 9;
/// Tag type of script data (AMF0 `onMetaData`; RTMP message type 18).
pub const TAG_SCRIPT: u8 = 18;

/// The file header without the first PreviousTagSize.
pub const FILE_HEADER_LEN: usize = 9;
/// Every tag header: type, size, timestamp, stream id.
pub const TAG_HEADER_LEN: usize = 11;

/// Track ids the converter assigns.
pub const VIDEO_TRACK: u32 = 1;
/// Track id the converter gives audio (video is [`VIDEO_TRACK`]): FLV has at most one of each.
pub const AUDIO_TRACK: u32 = 2;

/// FLV signature + version + flags + header size, then PreviousTagSize0 (13 bytes).
pub fn file_header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let flags = (has_audio as u8) << 2 | has_video as u8;
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// The 11-byte tag header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagHeader {
    /// [`TAG_AUDIO`], [`TAG_VIDEO`], [`TAG_SCRIPT`], or another type, which converts to nothing.
    pub tag_type: u8,
    /// The body length that follows the header (24 bits on the wire).
    pub data_size: u32,
    /// 32-bit timestamp (24 bits + extension byte) in ms.
    pub timestamp: u32,
    /// Always 0 in valid files.
    pub stream_id: u32,
}

impl TagHeader {
    /// Parses the first [`TAG_HEADER_LEN`] bytes; `NeedMore` when fewer are there. Encrypted tags
    /// are refused: nothing here could decode them.
    pub fn parse(b: &[u8]) -> Result<TagHeader, MediaError> {
        if b.len() < TAG_HEADER_LEN {
            return Err(MediaError::NeedMore);
        }
        if b[0] & 0x20 != 0 {
            return Err(MediaError::unsupported(
                "FLV tag",
                "encrypted (filter) tags",
            ));
        }
        Ok(TagHeader {
            tag_type: b[0] & 0x1f,
            data_size: u32::from_be_bytes([0, b[1], b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[7], b[4], b[5], b[6]]),
            stream_id: u32::from_be_bytes([0, b[8], b[9], b[10]]),
        })
    }

    /// The header bytes. `data_size` above 2^24 - 1 cannot be expressed: an error.
    pub fn build(tag_type: u8, data_size: usize, timestamp: u32) -> Result<[u8; 11], MediaError> {
        if data_size >= 1 << 24 {
            return Err(MediaError::TooLarge {
                what: "FLV tag",
                size: data_size as u64,
                limit: (1 << 24) - 1,
            });
        }
        let s = (data_size as u32).to_be_bytes();
        let t = timestamp.to_be_bytes();
        Ok([tag_type, s[1], s[2], s[3], t[1], t[2], t[3], t[0], 0, 0, 0])
    }
}

/// The PreviousTagSize that follows a tag of `body_len` bytes (header included), which players
/// use to walk backwards.
pub fn prev_tag_size(body_len: usize) -> [u8; 4] {
    ((body_len + TAG_HEADER_LEN) as u32).to_be_bytes()
}

/// What a video tag body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoBody {
    /// Decoder configuration (avcC, hvcC, av1C, vpcC).
    SequenceHeader {
        /// The codec the configuration is for.
        codec: Codec,
        /// The configuration record's bytes, as the track's init data.
        config: Bytes,
    },
    /// Coded frame data: for AVC/HEVC NAL units with length prefixes.
    Frame {
        /// The codec of the frame.
        codec: Codec,
        /// A frame a decoder can start at.
        keyframe: bool,
        /// Composition time offset (ms): presentation minus decode time, for B-frames.
        cts: i32,
        /// The frame's payload.
        data: Bytes,
    },
    /// The end of the stream for a decoder (AVC end of sequence): no media.
    SequenceEnd {
        /// The codec that ended.
        codec: Codec,
    },
    /// Video info/command frames, metadata packets and other things with no media.
    Other,
}

/// What an audio tag body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioBody {
    /// Decoder configuration (AAC AudioSpecificConfig).
    SequenceHeader {
        /// The codec the configuration is for.
        codec: Codec,
        /// The configuration's bytes.
        config: Bytes,
    },
    /// One coded audio frame.
    Frame {
        /// The codec of the frame.
        codec: Codec,
        /// Sample rate from the tag's flags; only a hint for AAC (the configuration is authoritative).
        rate: u32,
        /// Channels from the tag's flags (1 or 2), again a hint for AAC.
        channels: u32,
        /// The frame's payload.
        data: Bytes,
    },
}

fn fourcc_codec(f: &[u8]) -> Result<Codec, MediaError> {
    Ok(match f {
        b"avc1" => Codec::H264,
        b"hvc1" => Codec::Hevc,
        b"av01" => Codec::Av1,
        b"vp09" => Codec::Vp9,
        b"vp08" => Codec::Vp8,
        _ => {
            return Err(MediaError::unsupported(
                "FLV video",
                format!("FourCC {:?}", String::from_utf8_lossy(f)),
            ))
        }
    })
}

/// The enhanced-RTMP FourCC of a video codec; `None` for codecs FLV carries by legacy id or
/// not at all.
pub fn codec_fourcc(c: Codec) -> Option<&'static [u8; 4]> {
    Some(match c {
        Codec::H264 => b"avc1",
        Codec::Hevc => b"hvc1",
        Codec::Av1 => b"av01",
        Codec::Vp9 => b"vp09",
        Codec::Vp8 => b"vp08",
        _ => return None,
    })
}

fn si24(b: &[u8]) -> i32 {
    (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8
}

/// Parses a video tag body (zero-copy: the returned `Bytes` are slices of `body`).
pub fn parse_video(body: &Bytes) -> Result<VideoBody, MediaError> {
    let short = || MediaError::malformed("FLV video", "truncated body");
    let b0 = *body.first().ok_or_else(short)?;
    if b0 & 0x80 != 0 {
        // Enhanced RTMP: [IsExHeader:1][FrameType:3][PacketType:4][FourCC:4]
        let frame_type = (b0 >> 4) & 7;
        let packet_type = b0 & 0x0f;
        if body.len() < 5 {
            return Err(short());
        }
        if frame_type == 5 {
            return Ok(VideoBody::Other);
        }
        let codec = fourcc_codec(&body[1..5])?;
        let keyframe = frame_type == 1;
        return Ok(match packet_type {
            0 => VideoBody::SequenceHeader {
                codec,
                config: body.slice(5..),
            },
            1 => {
                // CodedFrames: AVC and HEVC carry a composition time, the others do not.
                if matches!(codec, Codec::H264 | Codec::Hevc) {
                    if body.len() < 8 {
                        return Err(short());
                    }
                    VideoBody::Frame {
                        codec,
                        keyframe,
                        cts: si24(&body[5..8]),
                        data: body.slice(8..),
                    }
                } else {
                    VideoBody::Frame {
                        codec,
                        keyframe,
                        cts: 0,
                        data: body.slice(5..),
                    }
                }
            }
            2 => VideoBody::SequenceEnd { codec },
            3 => VideoBody::Frame {
                codec,
                keyframe,
                cts: 0,
                data: body.slice(5..),
            },
            4 | 5 => VideoBody::Other,
            _ => {
                return Err(MediaError::unsupported(
                    "FLV video",
                    format!("enhanced packet type {packet_type}"),
                ))
            }
        });
    }
    let frame_type = b0 >> 4;
    let codec_id = b0 & 0x0f;
    if frame_type == 5 {
        return Ok(VideoBody::Other);
    }
    let codec = match codec_id {
        7 => Codec::H264,
        12 => Codec::Hevc, // the widespread pre-enhanced-RTMP extension
        _ => {
            return Err(MediaError::unsupported(
                "FLV video",
                format!("codec id {codec_id}"),
            ))
        }
    };
    if body.len() < 5 {
        return Err(short());
    }
    let cts = si24(&body[2..5]);
    Ok(match body[1] {
        0 => VideoBody::SequenceHeader {
            codec,
            config: body.slice(5..),
        },
        1 => VideoBody::Frame {
            codec,
            keyframe: frame_type == 1,
            cts,
            data: body.slice(5..),
        },
        2 => VideoBody::SequenceEnd { codec },
        t => {
            return Err(MediaError::malformed(
                "FLV video",
                format!("AVC packet type {t}"),
            ))
        }
    })
}

const FLV_RATES: [u32; 4] = [5512, 11025, 22050, 44100];

/// Reads an audio tag body (AAC or MP3; other sound formats are refused as unsupported).
pub fn parse_audio(body: &Bytes) -> Result<AudioBody, MediaError> {
    let short = || MediaError::malformed("FLV audio", "truncated body");
    let b0 = *body.first().ok_or_else(short)?;
    let format = b0 >> 4;
    let rate = FLV_RATES[((b0 >> 2) & 3) as usize];
    let channels = if b0 & 1 == 1 { 2 } else { 1 };
    match format {
        10 => {
            let pt = *body.get(1).ok_or_else(short)?;
            Ok(match pt {
                0 => AudioBody::SequenceHeader {
                    codec: Codec::Aac,
                    config: body.slice(2..),
                },
                1 => AudioBody::Frame {
                    codec: Codec::Aac,
                    rate,
                    channels,
                    data: body.slice(2..),
                },
                t => {
                    return Err(MediaError::malformed(
                        "FLV audio",
                        format!("AAC packet type {t}"),
                    ))
                }
            })
        }
        2 | 14 => {
            let rate = if format == 14 { 8000 } else { rate };
            Ok(AudioBody::Frame {
                codec: Codec::Mp3,
                rate,
                channels,
                data: body.slice(1..),
            })
        }
        _ => Err(MediaError::unsupported(
            "FLV audio",
            format!("sound format {format}"),
        )),
    }
}

/// Output of converting one tag.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Converted {
    /// A track that is new or whose description changed (new init data): announce it before the frame.
    pub track: Option<Track>,
    /// The frame the tag carried, stamped with the unwrapped timestamp, on its track.
    pub frame: Option<Frame>,
    /// Script data (`onMetaData` and friends, with `@setDataFrame` removed).
    pub metadata: Option<Vec<Amf0>>,
}

/// Turns FLV tag bodies (or RTMP media messages) into tracks and frames.
#[derive(Debug, Clone)]
pub struct TagConverter {
    video: Option<Track>,
    video_length_size: usize,
    audio: Option<Track>,
    clock: Unwrapper,
    scratch: Vec<u8>,
}

impl Default for TagConverter {
    fn default() -> Self {
        Self::new()
    }
}

impl TagConverter {
    /// A converter that has seen no tag yet: tracks appear with their first configuration.
    pub fn new() -> TagConverter {
        TagConverter {
            video: None,
            video_length_size: 4,
            audio: None,
            clock: Unwrapper::new(32),
            scratch: Vec::new(),
        }
    }

    /// The video track as last described (None before its first configuration).
    pub fn video_track(&self) -> Option<&Track> {
        self.video.as_ref()
    }
    /// The audio track as last described.
    pub fn audio_track(&self) -> Option<&Track> {
        self.audio.as_ref()
    }
    /// Every track known so far, video first.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.video.iter().chain(self.audio.iter())
    }

    /// Converts one tag. `timestamp` is the tag's 32-bit wire timestamp (ms); it is unwrapped.
    /// Media with no track description yet (AVC frames before the sequence header) is dropped.
    pub fn convert(
        &mut self,
        tag_type: u8,
        timestamp: u32,
        body: Bytes,
    ) -> Result<Converted, MediaError> {
        let mut out = Converted::default();
        match tag_type {
            TAG_VIDEO => match parse_video(&body)? {
                VideoBody::SequenceHeader { codec, config } => {
                    let mut t = Track::new(VIDEO_TRACK, codec);
                    if codec == Codec::H264 {
                        let avcc = h264::AvcC::parse(&config)?;
                        self.video_length_size = avcc.length_size as usize;
                        if let Ok(sps) = avcc.parse_sps() {
                            t.width = sps.width;
                            t.height = sps.height;
                            t.fpks = sps.fpks();
                        }
                        // Normalise to 4-byte lengths (the model's canonical form).
                        t.init = if avcc.length_size == 4 {
                            config
                        } else {
                            Bytes::from(AvcC4(avcc).build()?)
                        };
                    } else {
                        self.video_length_size = 4;
                        t.init = config;
                    }
                    if let Some(old) = &self.video {
                        t.width = if t.width == 0 { old.width } else { t.width };
                        t.height = if t.height == 0 { old.height } else { t.height };
                    }
                    if self.video.as_ref() != Some(&t) {
                        self.video = Some(t.clone());
                        out.track = Some(t);
                    }
                }
                VideoBody::Frame {
                    codec,
                    keyframe,
                    cts,
                    data,
                } => {
                    let Some(track) = &self.video else {
                        return Ok(out);
                    };
                    if track.codec != codec {
                        return Err(MediaError::malformed(
                            "FLV video",
                            "codec changed without a sequence header",
                        ));
                    }
                    let data = if matches!(codec, Codec::H264 | Codec::Hevc)
                        && self.video_length_size != 4
                    {
                        self.scratch.clear();
                        for n in h264::length_nals(&data, self.video_length_size) {
                            let n = n?;
                            self.scratch
                                .extend_from_slice(&(n.len() as u32).to_be_bytes());
                            self.scratch.extend_from_slice(n);
                        }
                        Bytes::copy_from_slice(&self.scratch)
                    } else {
                        data
                    };
                    let dts = self.clock.unwrap(timestamp as u64);
                    out.frame = Some(Frame {
                        track: VIDEO_TRACK,
                        dts,
                        pts_offset: cts,
                        keyframe,
                        data,
                    });
                }
                VideoBody::SequenceEnd { .. } | VideoBody::Other => {}
            },
            TAG_AUDIO => match parse_audio(&body)? {
                // An AAC sequence header without its AudioSpecificConfig: ffmpeg's FLV muxer
                // writes one when the config is known only from the first packet (`-c copy` from
                // ADTS, e.g. MPEG-TS) and sends the complete one after it; the track waits for
                // that one (frames before it are dropped, as before any sequence header).
                AudioBody::SequenceHeader { config, .. } if config.is_empty() => {}
                AudioBody::SequenceHeader { codec, config } => {
                    let asc = AudioSpecificConfig::parse(&config)?;
                    let mut t = Track::new(AUDIO_TRACK, codec);
                    t.rate = asc.output_rate();
                    t.channels = asc.channels();
                    t.sample_size = 16;
                    t.init = config;
                    if self.audio.as_ref() != Some(&t) {
                        self.audio = Some(t.clone());
                        out.track = Some(t);
                    }
                }
                AudioBody::Frame {
                    codec,
                    rate,
                    channels,
                    data,
                } => {
                    match &self.audio {
                        Some(t) if t.codec == codec => {}
                        Some(_) if codec == Codec::Aac => {
                            return Err(MediaError::malformed(
                                "FLV audio",
                                "codec changed without a sequence header",
                            ))
                        }
                        None if codec == Codec::Aac => return Ok(out),
                        _ => {
                            let mut t = Track::new(AUDIO_TRACK, codec);
                            t.rate = rate;
                            t.channels = channels;
                            t.sample_size = 16;
                            self.audio = Some(t.clone());
                            out.track = Some(t);
                        }
                    }
                    let dts = self.clock.unwrap(timestamp as u64);
                    out.frame = Some(Frame {
                        track: AUDIO_TRACK,
                        dts,
                        pts_offset: 0,
                        keyframe: true,
                        data,
                    });
                }
            },
            TAG_SCRIPT => {
                let mut vals = amf0::decode_all(&body)?;
                if vals.first().and_then(Amf0::as_str) == Some("@setDataFrame") {
                    vals.remove(0);
                }
                out.metadata = Some(vals);
            }
            t => return Err(MediaError::unsupported("FLV tag", format!("type {t}"))),
        }
        Ok(out)
    }
}

/// An avcC rewritten to 4-byte NAL lengths.
struct AvcC4(h264::AvcC);
impl AvcC4 {
    fn build(mut self) -> Result<Vec<u8>, MediaError> {
        self.0.length_size = 4;
        self.0.build()
    }
}

/// Reads an FLV byte stream (file or HTTP body) and yields converted tags.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: BytesMut,
    header_done: bool,
    /// The file header's audio flag (a hint: many files lie; the tags decide).
    pub has_audio: bool,
    /// The file header's video flag (a hint, as above).
    pub has_video: bool,
    conv: TagConverter,
}

/// One step of the demuxer: the raw tag and what it converted to.
#[derive(Debug, Clone, PartialEq)]
pub struct DemuxedTag {
    /// The tag header as read.
    pub header: TagHeader,
    /// The tag body as read (shared, not copied).
    pub body: Bytes,
    /// What the body converted to.
    pub converted: Converted,
}

impl Demuxer {
    /// A demuxer waiting for the file header.
    pub fn new() -> Demuxer {
        Demuxer::default()
    }

    /// Appends bytes read from the file or connection; [`Demuxer::next_tag`] takes tags out.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The converter, for the tracks found so far.
    pub fn converter(&self) -> &TagConverter {
        &self.conv
    }

    /// The next tag, `Ok(None)` when more bytes are needed.
    pub fn next_tag(&mut self) -> Result<Option<DemuxedTag>, MediaError> {
        if !self.header_done {
            if self.buf.len() < FILE_HEADER_LEN {
                return Ok(None);
            }
            if &self.buf[..3] != b"FLV" {
                return Err(MediaError::malformed("FLV", "no FLV signature"));
            }
            let off =
                u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) as usize;
            if !(FILE_HEADER_LEN..=1024).contains(&off) {
                return Err(MediaError::malformed("FLV", format!("header size {off}")));
            }
            // Header, then PreviousTagSize0.
            if self.buf.len() < off + 4 {
                return Ok(None);
            }
            self.has_audio = self.buf[4] & 4 != 0;
            self.has_video = self.buf[4] & 1 != 0;
            self.buf.advance(off + 4);
            self.header_done = true;
        }
        loop {
            let header = match TagHeader::parse(&self.buf) {
                Ok(h) => h,
                Err(MediaError::NeedMore) => return Ok(None),
                Err(e) => return Err(e),
            };
            let total = TAG_HEADER_LEN + header.data_size as usize + 4;
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            let mut tag = self.buf.split_to(total).freeze();
            tag.advance(TAG_HEADER_LEN);
            let body = tag.slice(..header.data_size as usize);
            if header.data_size == 0 {
                continue;
            }
            let converted = match header.tag_type {
                TAG_AUDIO | TAG_VIDEO | TAG_SCRIPT => {
                    self.conv
                        .convert(header.tag_type, header.timestamp, body.clone())?
                }
                _ => Converted::default(),
            };
            return Ok(Some(DemuxedTag {
                header,
                body,
                converted,
            }));
        }
    }
}

/// A small fixed buffer for a tag header and/or a codec prefix (at most 11 + 8 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Head {
    buf: [u8; 24],
    len: u8,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Head({:02x?})", self.as_ref())
    }
}

impl Head {
    fn new() -> Head {
        Head {
            buf: [0; 24],
            len: 0,
        }
    }
    fn push(&mut self, b: &[u8]) {
        let l = self.len as usize;
        self.buf[l..l + b.len()].copy_from_slice(b);
        self.len += b.len() as u8;
    }
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for Head {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

impl std::ops::Deref for Head {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

/// FLV tag type for a track.
pub fn tag_type(track: &Track) -> Result<u8, MediaError> {
    match track.codec {
        Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9 | Codec::Vp8 => Ok(TAG_VIDEO),
        Codec::Aac | Codec::Mp3 => Ok(TAG_AUDIO),
        c => Err(MediaError::unsupported(
            "FLV mux",
            format!("codec {}", c.mist_name()),
        )),
    }
}

fn mp3_flags(track: &Track) -> u8 {
    let r = match track.rate {
        0..=8000 => 0,
        8001..=11025 => 1,
        11026..=22050 => 2,
        _ => 3,
    };
    (2 << 4) | (r << 2) | 2 | (track.channels >= 2) as u8
}

/// The codec bytes that precede a frame's payload in a tag body / RTMP media message.
pub fn frame_prefix(track: &Track, frame: &Frame) -> Result<Head, MediaError> {
    let mut h = Head::new();
    let cts = frame
        .pts_offset
        .clamp(-(1 << 23), (1 << 23) - 1)
        .to_be_bytes();
    match track.codec {
        Codec::H264 => h.push(&[
            if frame.keyframe { 0x17 } else { 0x27 },
            1,
            cts[1],
            cts[2],
            cts[3],
        ]),
        Codec::Hevc | Codec::Av1 | Codec::Vp9 | Codec::Vp8 => {
            let ft = if frame.keyframe { 1 } else { 2 };
            let four = codec_fourcc(track.codec).unwrap_or(b"    ");
            if track.codec == Codec::Hevc && frame.pts_offset != 0 {
                h.push(&[0x80 | ft << 4 | 1]);
                h.push(four);
                h.push(&cts[1..]);
            } else {
                // HEVC without composition offset: CodedFramesX; others: CodedFrames (no CT).
                let pt = if track.codec == Codec::Hevc { 3 } else { 1 };
                h.push(&[0x80 | ft << 4 | pt]);
                h.push(four);
            }
        }
        Codec::Aac => h.push(&[0xaf, 1]),
        Codec::Mp3 => h.push(&[mp3_flags(track)]),
        c => {
            return Err(MediaError::unsupported(
                "FLV mux",
                format!("codec {}", c.mist_name()),
            ))
        }
    }
    Ok(h)
}

/// The whole body of a track's sequence header tag, or `None` for codecs without one (MP3).
pub fn sequence_header_body(track: &Track) -> Result<Option<Vec<u8>>, MediaError> {
    let mut b = Vec::with_capacity(track.init.len() + 8);
    match track.codec {
        Codec::H264 => b.extend_from_slice(&[0x17, 0, 0, 0, 0]),
        Codec::Hevc | Codec::Av1 | Codec::Vp9 | Codec::Vp8 => {
            b.push(0x90);
            b.extend_from_slice(codec_fourcc(track.codec).unwrap_or(b"    "));
        }
        Codec::Aac => b.extend_from_slice(&[0xaf, 0]),
        Codec::Mp3 => return Ok(None),
        c => {
            return Err(MediaError::unsupported(
                "FLV mux",
                format!("codec {}", c.mist_name()),
            ))
        }
    }
    b.extend_from_slice(&track.init);
    Ok(Some(b))
}

/// Wire timestamp for a model time (ms), wrapping at 32 bits.
pub fn wire_time(ms: i64) -> u32 {
    ms as u64 as u32
}

/// Tag header + codec prefix for a frame: write `head`, then `frame.data`, then
/// `prev_tag_size(body_len)`.
pub fn frame_tag_head(track: &Track, frame: &Frame) -> Result<(Head, usize), MediaError> {
    let prefix = frame_prefix(track, frame)?;
    let body_len = prefix.len() + frame.data.len();
    let th = TagHeader::build(tag_type(track)?, body_len, wire_time(frame.dts))?;
    let mut h = Head::new();
    h.push(&th);
    h.push(&prefix);
    Ok((h, body_len))
}

/// A complete tag (header, body, trailer) in one buffer, for small tags.
pub fn tag_bytes(tag_type: u8, timestamp: u32, body: &[u8]) -> Result<Vec<u8>, MediaError> {
    let mut v = Vec::with_capacity(body.len() + 15);
    v.extend_from_slice(&TagHeader::build(tag_type, body.len(), timestamp)?);
    v.extend_from_slice(body);
    v.extend_from_slice(&prev_tag_size(body.len()));
    Ok(v)
}

/// An `onMetaData` script body describing the tracks (for FLV files and RTMP play).
pub fn metadata_body(tracks: &[Track]) -> Vec<u8> {
    let mut props: Vec<(String, Amf0)> = Vec::new();
    for t in tracks {
        match t.codec {
            Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9 | Codec::Vp8 => {
                props.push(("width".into(), Amf0::Number(t.width as f64)));
                props.push(("height".into(), Amf0::Number(t.height as f64)));
                if t.fpks > 0 {
                    props.push(("framerate".into(), Amf0::Number(t.fpks as f64 / 1000.0)));
                }
                let id = match t.codec {
                    Codec::H264 => Amf0::Number(7.0),
                    c => {
                        Amf0::Number(u32::from_be_bytes(*codec_fourcc(c).unwrap_or(b"    ")) as f64)
                    }
                };
                props.push(("videocodecid".into(), id));
            }
            Codec::Aac | Codec::Mp3 => {
                props.push(("audiosamplerate".into(), Amf0::Number(t.rate as f64)));
                props.push(("audiosamplesize".into(), Amf0::Number(16.0)));
                props.push(("stereo".into(), Amf0::Bool(t.channels >= 2)));
                props.push((
                    "audiocodecid".into(),
                    Amf0::Number(if t.codec == Codec::Aac { 10.0 } else { 2.0 }),
                ));
            }
            _ => {}
        }
    }
    props.push(("encoder".into(), Amf0::str("mist-rs")));
    amf0::encode_all(&[Amf0::str("onMetaData"), Amf0::EcmaArray(props)])
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLV: &[u8] = include_bytes!("../../tests/fixtures/flv/testsrc_320x240_1s.flv");

    fn demux_all(data: &[u8], chunk: usize) -> Vec<DemuxedTag> {
        let mut d = Demuxer::new();
        let mut out = Vec::new();
        for c in data.chunks(chunk) {
            d.feed(c);
            while let Some(t) = d.next_tag().unwrap() {
                out.push(t);
            }
        }
        out
    }

    #[test]
    fn ffmpeg_flv_matches_ffprobe() {
        let tags = demux_all(FLV, 977);
        let tracks: Vec<_> = tags
            .iter()
            .filter_map(|t| t.converted.track.clone())
            .collect();
        assert_eq!(tracks.len(), 2);
        let v = tracks.iter().find(|t| t.codec == Codec::H264).unwrap();
        assert_eq!((v.width, v.height), (320, 240));
        let a = tracks.iter().find(|t| t.codec == Codec::Aac).unwrap();
        assert_eq!((a.rate, a.channels), (44100, 1));
        let frames: Vec<_> = tags
            .iter()
            .filter_map(|t| t.converted.frame.clone())
            .collect();
        let video: Vec<_> = frames.iter().filter(|f| f.track == VIDEO_TRACK).collect();
        let audio: Vec<_> = frames.iter().filter(|f| f.track == AUDIO_TRACK).collect();
        // ffprobe -show_packets: 25 video packets (one keyframe, at 0) and 45 audio packets.
        assert_eq!(video.len(), 25);
        assert_eq!(audio.len(), 45);
        assert_eq!(video.iter().filter(|f| f.keyframe).count(), 1);
        assert!(video[0].keyframe);
        assert!(video
            .iter()
            .all(|f| h264::is_keyframe(&f.data, 4) == f.keyframe));
        // ffprobe: video dts 0,40,80...; pts 80, 240, 160 (B-frames).
        assert_eq!(
            video.iter().map(|f| f.dts).take(3).collect::<Vec<_>>(),
            vec![0, 40, 80]
        );
        assert_eq!(video[1].pts(), 240);
        assert_eq!(video[2].pts(), 160);
        assert_eq!(video[0].pts(), 80);
        assert!(tags.iter().any(|t| t.converted.metadata.is_some()));
    }

    #[test]
    fn remux_reproduces_ffmpeg_tags() {
        // Muxing the demuxed tracks and frames gives ffmpeg's tag bytes back.
        let tags = demux_all(FLV, 1 << 20);
        let mut tracks = std::collections::HashMap::new();
        for t in &tags {
            if let Some(tr) = &t.converted.track {
                let body = sequence_header_body(tr).unwrap().unwrap();
                assert_eq!(body, &t.body[..]);
                tracks.insert(tr.id, tr.clone());
            }
            if let Some(f) = &t.converted.frame {
                let tr = &tracks[&f.track];
                let (head, body_len) = frame_tag_head(tr, f).unwrap();
                assert_eq!(body_len, t.body.len());
                assert_eq!(
                    &head[..11],
                    &TagHeader::build(t.header.tag_type, body_len, t.header.timestamp).unwrap()
                );
                let mut body = head[11..].to_vec();
                body.extend_from_slice(&f.data);
                assert_eq!(body, &t.body[..]);
            }
        }
    }

    #[test]
    fn enhanced_rtmp_bodies() {
        // Enhanced RTMP hvc1 sequence start, coded frames (with CT) and av01 coded frames (no CT).
        let hv = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 1, 2, 3]);
        assert_eq!(
            parse_video(&hv).unwrap(),
            VideoBody::SequenceHeader {
                codec: Codec::Hevc,
                config: Bytes::from_static(&[1, 2, 3])
            }
        );
        let f = Bytes::from_static(&[0xa1, b'h', b'v', b'c', b'1', 0xff, 0xff, 0xd8, 9]);
        assert_eq!(
            parse_video(&f).unwrap(),
            VideoBody::Frame {
                codec: Codec::Hevc,
                keyframe: false,
                cts: -40,
                data: Bytes::from_static(&[9])
            }
        );
        let av = Bytes::from_static(&[0x91, b'a', b'v', b'0', b'1', 7]);
        assert_eq!(
            parse_video(&av).unwrap(),
            VideoBody::Frame {
                codec: Codec::Av1,
                keyframe: true,
                cts: 0,
                data: Bytes::from_static(&[7])
            }
        );
        assert!(parse_video(&Bytes::from_static(&[0x91, b'x', b'x', b'x', b'x'])).is_err());
        assert!(parse_video(&Bytes::from_static(&[0x91, b'a'])).is_err());
        // And the muxer's prefix parses back.
        let mut t = Track::new(1, Codec::Hevc);
        t.init = Bytes::from_static(&[1, 2, 3]);
        let fr = Frame {
            track: 1,
            dts: 0,
            pts_offset: -40,
            keyframe: false,
            data: Bytes::from_static(&[9]),
        };
        let p = frame_prefix(&t, &fr).unwrap();
        assert_eq!(&p[..], &f[..8]);
        assert_eq!(sequence_header_body(&t).unwrap().unwrap(), &hv[..]);
    }

    #[test]
    fn truncated_and_hostile_input() {
        for cut in 0..FLV.len().min(3000) {
            let mut d = Demuxer::new();
            d.feed(&FLV[..cut]);
            while let Ok(Some(_)) = d.next_tag() {}
        }
        let mut d = Demuxer::new();
        d.feed(b"FLV\x01\x05\xff\xff\xff\xff");
        assert!(d.next_tag().is_err());
        let mut c = TagConverter::new();
        assert!(c
            .convert(TAG_VIDEO, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]))
            .is_err());
        // AVC frames before any sequence header are dropped, not an error.
        assert_eq!(
            c.convert(TAG_VIDEO, 0, Bytes::from_static(&[0x27, 1, 0, 0, 0, 0]))
                .unwrap(),
            Converted::default()
        );
        // An empty AAC sequence header (ffmpeg `-c copy` from ADTS) waits for the complete one.
        let mut c = TagConverter::new();
        assert_eq!(
            c.convert(TAG_AUDIO, 0, Bytes::from_static(&[0xAF, 0]))
                .unwrap(),
            Converted::default()
        );
        let out = c
            .convert(TAG_AUDIO, 0, Bytes::from_static(&[0xAF, 0, 0x12, 0x10]))
            .unwrap();
        assert!(
            out.track
                .as_ref()
                .is_some_and(|t| t.codec == Codec::Aac && t.rate == 44100 && t.channels == 2),
            "{out:?}"
        );
    }
}
