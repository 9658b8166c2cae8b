//! mist-media: the containers and codecs of mist-rs as sans-IO state machines.
//!
//! Every parser here takes bytes and returns frames, events or typed errors; none of them touches a
//! socket, a file or a clock. Memory a parser allocates is bounded by the bytes it was given, never by a
//! length field a peer sent.
//!
//! The crate's shape:
//! * the media model and its helpers: [`frame`], [`time`], [`error`], [`info`], [`remux`];
//! * [`codecs`]: AAC, AV1, H.264, HEVC, MP3, Opus;
//! * [`containers`]: FLV, MP4/CMAF, MPEG-TS, Matroska/WebM (EBML);
//! * [`manifests`]: the segment timeline, HLS and DASH;
//! * protocols: [`rtmp`] (with its AMF0 values), [`rtsp`] with [`sdp`], and [`rtp`].
//!
//! Every module is also reachable at the crate root (`mist_media::flv`, `mist_media::h264` …).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codecs;
pub mod containers;
pub mod error;
pub mod frame;
pub mod info;
pub mod manifests;
pub mod remux;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub mod sdp;
pub mod time;

pub use codecs::{aac, av1, h264, hevc, mp3, opus};
pub use containers::{ebml, flv, mp4, mpegts};
pub use error::MediaError;
pub use frame::{Codec, Frame, Track, TrackKind};
pub use manifests::{dash, hls, segment};
pub use rtmp::amf0;
