#![no_main]
//! The m3u8 parser on arbitrary bytes; whatever media playlist it accepts is rebuilt through the
//! segment timeline and the media playlist writer, whose output must parse again.

use libfuzzer_sys::fuzz_target;
use mist_media::hls::{self, MediaOptions, Playlist};
use mist_media::segment::{Timeline, TimelineConfig};
use mist_media::{Codec, Track};

fuzz_target!(|data: &[u8]| {
    let Ok(Playlist::Media(m)) = hls::parse(data) else { return };
    let mut tl = Timeline::new(TimelineConfig::vod(), &[Track::new(1, Codec::Aac)]);
    let mut t: i64 = 0;
    for s in m.segments.iter().take(1000) {
        tl.push(1, t, true, 100);
        t = t.saturating_add(s.duration_ms);
    }
    tl.finish();
    let mut o = MediaOptions::ts(&[1]);
    o.segment_uri = m.segments.first().map(|s| s.uri.clone()).unwrap_or_default() + "{seq}";
    let text = hls::media_playlist(&tl, &o);
    if let Err(e) = hls::parse(text.as_bytes()) {
        panic!("our own playlist does not parse: {e}\n{text}");
    }
});
