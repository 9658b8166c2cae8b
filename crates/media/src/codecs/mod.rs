//! Codecs: the parameter sets, init records and framing of each elementary stream format, as the
//! containers and wire protocols carry them.

pub mod aac;
pub mod av1;
pub mod h264;
pub mod hevc;
pub mod mp3;
pub mod opus;
