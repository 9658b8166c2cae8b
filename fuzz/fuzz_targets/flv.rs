//! FLV demuxer and tag conversion; every converted frame can be muxed again.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mist_media::flv::{self, Demuxer, TagConverter};

fuzz_target!(|data: &[u8]| {
    let mut d = Demuxer::new();
    d.feed(data);
    let mut tracks = std::collections::HashMap::new();
    while let Ok(Some(tag)) = d.next_tag() {
        if let Some(t) = tag.converted.track {
            let _ = flv::sequence_header_body(&t);
            tracks.insert(t.id, t);
        }
        if let Some(f) = tag.converted.frame {
            if let Some(t) = tracks.get(&f.track) {
                let _ = flv::frame_tag_head(t, &f);
                let _ = mist_media::rtmp::media_message(128, 1, t, &f);
            }
        }
    }
    // Raw tag bodies as RTMP would deliver them: first byte picks the tag type.
    if let Some((&k, rest)) = data.split_first() {
        let ty = [flv::TAG_AUDIO, flv::TAG_VIDEO, flv::TAG_SCRIPT][k as usize % 3];
        let mut c = TagConverter::new();
        for body in rest.split(|&b| b == 0xfe) {
            let _ = c.convert(ty, k as u32, Bytes::copy_from_slice(body));
        }
    }
});
