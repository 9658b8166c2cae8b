//! Containers: demuxers and muxers of the file and stream formats (FLV, MP4/CMAF, MPEG-TS,
//! Matroska/WebM over EBML).

pub mod ebml;
pub mod flv;
pub mod mp4;
pub mod mpegts;
