//! EBML, Matroska and WebM: an incremental element reader ([`element`]), a demuxer ([`reader`])
//! and a muxer for live streams and finalised recordings ([`writer`]).
//!
//! Times are milliseconds (Matroska's default TimecodeScale of 1 ms is what the writer uses; the
//! reader converts any scale). H.264/HEVC payloads are 4-byte length-prefixed NAL units, which is
//! Matroska's block format too, and `Track::init` is the track's CodecPrivate.
//!
//! Matroska stores presentation times only; the demuxer rebuilds H.264/HEVC decode times with a
//! 2-frame reorder window (as ffmpeg does), so those tracks' frames come out 2 frames late and
//! the last ones at the end of the Segment or input. Opus CodecDelay is taken off block times on
//! reading and added back on writing, so times match what ffprobe reports.

pub mod element;
pub mod ids;
pub mod reader;
pub mod vint;
pub mod writer;

pub use element::Limits;
pub use reader::{CuePoint, Demuxer, MkvEvent};
pub use writer::{Finished, Patch, WriteMode, Writer, WriterOptions};

/// The EBML DocType of a Matroska file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocType {
    /// Matroska: any codec with a Matroska codec ID.
    Matroska,
    /// WebM: Matroska restricted to VP8/VP9/AV1 video and Opus/Vorbis audio.
    Webm,
}

impl DocType {
    /// The DocType string of the EBML header.
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::Matroska => "matroska",
            DocType::Webm => "webm",
        }
    }
}
