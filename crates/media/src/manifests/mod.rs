//! Manifests: the segment timeline of a stream, and the HLS playlists and DASH MPDs written from it.

pub mod dash;
pub mod hls;
pub mod segment;
