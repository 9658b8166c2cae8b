//! mist-media: the containers and codecs of mist-rs as sans-IO state machines.
//!
//! Every parser here takes bytes and returns frames, events or typed errors; none of them touches a
//! socket, a file or a clock. Memory a parser allocates is bounded by the bytes it was given, never by a
//! length field a peer sent.

pub mod aac;
pub mod amf0;
pub mod av1;
pub mod dash;
pub mod ebml;
pub mod error;
pub mod flv;
pub mod frame;
pub mod h264;
pub mod hevc;
pub mod hls;
pub mod info;
pub mod mp3;
pub mod mp4;
pub mod mpegts;
pub mod opus;
pub mod remux;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub mod sdp;
pub mod segment;
pub mod time;

pub use error::MediaError;
pub use frame::{Codec, Frame, Track, TrackKind};
