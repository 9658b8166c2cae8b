//! mist-media: the containers and codecs of mist-rs as sans-IO state machines.
//!
//! Every parser here takes bytes and returns frames, events or typed errors; none of them touches a
//! socket, a file or a clock. Memory a parser allocates is bounded by the bytes it was given, never by a
//! length field a peer sent.

pub mod error;
pub mod frame;
pub mod mp4;
pub mod time;
pub mod segment;
pub mod hls;
pub mod dash;
pub mod info;

pub use error::MediaError;
pub use frame::{Codec, Frame, Track, TrackKind};
pub mod aac;
pub mod h264;
pub mod amf0;
pub mod flv;
pub mod rtmp;
pub mod av1;
pub mod hevc;
pub mod mp3;
pub mod mpegts;
pub mod opus;
pub mod remux;
