//! The media model every container speaks: a `Track` describes a stream of `Frame`s.

use bytes::Bytes;

/// A codec, named as MistServer names it in stream info (`H264`, `AAC`, `opus` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    Hevc,
    /// AV1.
    Av1,
    /// VP8.
    Vp8,
    /// VP9.
    Vp9,
    /// AAC.
    Aac,
    /// MPEG audio (MP3).
    Mp3,
    /// Opus.
    Opus,
    /// AC-3.
    Ac3,
    /// Linear PCM.
    Pcm,
    /// G.711 A-law (RTP payload type 8, `PCMA`).
    Alaw,
    /// G.711 µ-law (RTP payload type 0, `PCMU`).
    Ulaw,
    /// Timed metadata or subtitles carried as opaque bytes.
    Meta,
}

impl Codec {
    /// The name used in MistServer's stream info and capabilities.
    pub fn mist_name(self) -> &'static str {
        match self {
            Codec::H264 => "H264",
            Codec::Hevc => "HEVC",
            Codec::Av1 => "AV1",
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::Aac => "AAC",
            Codec::Mp3 => "MP3",
            Codec::Opus => "opus",
            Codec::Ac3 => "AC3",
            Codec::Pcm => "PCM",
            Codec::Alaw => "ALAW",
            Codec::Ulaw => "ULAW",
            Codec::Meta => "JSON",
        }
    }

    /// The codec MistServer names `name` (the inverse of `mist_name`).
    pub fn from_mist_name(name: &str) -> Option<Codec> {
        Some(match name {
            "H264" => Codec::H264,
            "HEVC" => Codec::Hevc,
            "AV1" => Codec::Av1,
            "VP8" => Codec::Vp8,
            "VP9" => Codec::Vp9,
            "AAC" => Codec::Aac,
            "MP3" => Codec::Mp3,
            "opus" => Codec::Opus,
            "AC3" => Codec::Ac3,
            "PCM" => Codec::Pcm,
            "ALAW" => Codec::Alaw,
            "ULAW" => Codec::Ulaw,
            "JSON" => Codec::Meta,
            _ => return None,
        })
    }

    /// Video, audio or metadata.
    pub fn kind(self) -> TrackKind {
        match self {
            Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp8 | Codec::Vp9 => TrackKind::Video,
            Codec::Aac
            | Codec::Mp3
            | Codec::Opus
            | Codec::Ac3
            | Codec::Pcm
            | Codec::Alaw
            | Codec::Ulaw => TrackKind::Audio,
            Codec::Meta => TrackKind::Meta,
        }
    }
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// Pictures.
    Video,
    /// Sound.
    Audio,
    /// Timed metadata.
    Meta,
}

impl TrackKind {
    /// `video`, `audio` or `meta`, as MistServer's track keys start.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Meta => "meta",
        }
    }
}

/// One elementary stream.
///
/// `init` holds the codec's out-of-band configuration in the form MP4 and FLV carry it: the
/// AVCDecoderConfigurationRecord (avcC) for H.264, hvcC for HEVC, av1C for AV1, the
/// AudioSpecificConfig for AAC, the OpusHead for Opus; empty where the codec has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// Track id, unique within a stream; starts at 1.
    pub id: u32,
    /// The codec.
    pub codec: Codec,
    /// The codec's configuration (see above); empty where it has none.
    pub init: Bytes,
    /// Ticks per second of the track's native clock (90000 for video from TS, the sample rate for
    /// audio). Frame times in the model are always milliseconds; this is kept for muxers that want
    /// the native clock.
    pub timescale: u32,
    /// Picture width in pixels (video); 0 when unknown.
    pub width: u32,
    /// Picture height in pixels (video); 0 when unknown.
    pub height: u32,
    /// Frames per 1000 seconds (MistServer's `fpks`); 0 when unknown.
    pub fpks: u32,
    /// Sample rate in Hz (audio); 0 when unknown.
    pub rate: u32,
    /// Channels (audio); 0 when unknown.
    pub channels: u32,
    /// Bits per sample for audio (16 for AAC as MistServer reports it); 0 when unknown.
    pub sample_size: u32,
    /// Bytes per second, measured or announced; 0 when unknown.
    pub bps: u32,
    /// ISO 639-2 language code, or empty.
    pub lang: String,
}

impl Track {
    /// A track with nothing known beyond its codec (timescale 90000 for video, 1000 otherwise).
    pub fn new(id: u32, codec: Codec) -> Track {
        let timescale = match codec.kind() {
            TrackKind::Video => 90_000,
            _ => 1000,
        };
        Track {
            id,
            codec,
            init: Bytes::new(),
            timescale,
            width: 0,
            height: 0,
            fpks: 0,
            rate: 0,
            channels: 0,
            sample_size: 0,
            bps: 0,
            lang: String::new(),
        }
    }

    /// Video, audio or metadata.
    pub fn kind(&self) -> TrackKind {
        self.codec.kind()
    }
}

/// One access unit of one track.
///
/// Times are in milliseconds on the stream's clock: `dts` is the decode time, `dts + pts_offset`
/// the presentation time. The payload is in the track's canonical form: length-prefixed NAL units
/// (4-byte lengths) for H.264/HEVC, raw access units (no ADTS header) for AAC. `data` is a
/// reference-counted slice, so handing a frame to many consumers copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The id of its [`Track`].
    pub track: u32,
    /// Decode time (ms).
    pub dts: i64,
    /// Presentation time minus decode time (ms).
    pub pts_offset: i32,
    /// A random access point (for video: a frame a decoder can start at).
    pub keyframe: bool,
    /// The payload.
    pub data: Bytes,
}

impl Frame {
    /// Presentation time (ms).
    pub fn pts(&self) -> i64 {
        self.dts + self.pts_offset as i64
    }
}
