//! The segmented formats this build serves, and opening one for a stream: a live stream is read
//! by hls.rs or cmaf.rs, a VoD one is served from its index by vod.rs (same URLs). The formats
//! implement [`SegmentedStream`] (segmented.rs) and know nothing of this list.

use super::segmented::SegmentedStream;
use super::{cmaf, hls, vod};

/// Whether this build implements `kind`.
pub fn has(kind: &str) -> bool {
    kind == "hls" || kind == "cmaf"
}

/// Opens `kind` for a stream; `None` when this build has no such format.
pub fn open(
    kind: &str,
    stream: &str,
    host: &str,
) -> Option<Result<Box<dyn SegmentedStream>, mist_shm::ShmError>> {
    // A VoD stream is served from its index (vod.rs), a live one from a reader.
    if vod::is_vod(stream) {
        return match kind {
            "hls" => Some(Ok(
                Box::new(vod::VodHls::open(stream, host)) as Box<dyn SegmentedStream>
            )),
            "cmaf" => Some(Ok(
                Box::new(vod::VodCmaf::open(stream, host)) as Box<dyn SegmentedStream>
            )),
            _ => None,
        };
    }
    match kind {
        "hls" => Some(
            hls::HlsStream::open(stream, host).map(|h| Box::new(h) as Box<dyn SegmentedStream>),
        ),
        "cmaf" => Some(
            cmaf::CmafStream::open(stream, host).map(|c| Box::new(c) as Box<dyn SegmentedStream>),
        ),
        _ => None,
    }
}
