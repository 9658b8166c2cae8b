#![no_main]
//! The m3u8 parser on arbitrary bytes. A media playlist it accepts drives the segment timeline (its
//! durations as frame times, its discontinuities as clock resets, its part target as LL parts), and
//! the HLS and DASH writers must then produce output that our parser accepts again.

use libfuzzer_sys::fuzz_target;
use mist_media::dash::{self, MpdOptions};
use mist_media::hls::{self, MediaOptions, Playlist};
use mist_media::segment::{Timeline, TimelineConfig, Window};
use mist_media::{Codec, Track};

fuzz_target!(|data: &[u8]| {
    let Ok(Playlist::Media(m)) = hls::parse(data) else { return };
    let cfg = TimelineConfig {
        target_ms: m.target_duration.clamp(1, 60).saturating_mul(1000) as u32,
        part_target_ms: m.part_target_ms.map(|p| p.clamp(1, 10_000) as u32),
        window: if m.endlist { Window::Unbounded } else { Window::Segments(5) },
        ..Default::default()
    };
    let tracks = [Track::new(1, Codec::H264), Track::new(2, Codec::Aac)];
    let mut tl = Timeline::new(cfg, &tracks);
    let mut t: i64 = 0;
    for s in m.segments.iter().take(1000) {
        if s.discontinuity {
            t = 0;
        }
        tl.push(1, t, true, s.uri.len() as u32);
        tl.push(2, t, true, 1);
        tl.push(1, t.saturating_add(s.duration_ms / 2), false, 1);
        t = t.saturating_add(s.duration_ms);
    }
    if m.endlist {
        tl.finish();
    }
    let mut o = MediaOptions::cmaf(&[1, 2]);
    o.segment_uri = m.segments.first().map(|s| s.uri.clone()).unwrap_or_default() + "{seq}";
    o.part_uri = Some("p{seq}.{part}".into());
    o.program_date_time = Some(1_700_000_000_000);
    let text = hls::media_playlist(&tl, &o);
    if let Err(e) = hls::parse(text.as_bytes()) {
        panic!("our own playlist does not parse: {e}\n{text}");
    }
    let master = hls::master_playlist(&tracks, &tl, &hls::MasterOptions::cmaf());
    if !matches!(hls::parse(master.as_bytes()), Ok(Playlist::Master(_))) {
        panic!("our own master playlist does not parse:\n{master}");
    }
    let mpd = dash::mpd(&tracks, &tl, &MpdOptions::vod());
    assert!(mpd.ends_with("</MPD>\n"));
});
