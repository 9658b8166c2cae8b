#![no_main]
//! The HLS pull follower (`hls::pull`) on arbitrary bytes. The input is split at the first NUL:
//! a playlist loaded first and a second load of the same URL. A master playlist's media playlists
//! are resolved; a media playlist goes through two `Follower::update`s. Invariants: sequence
//! numbers handed out only grow (except after a counted restart), no job is handed out twice,
//! byte ranges are well-formed, every URL resolves to an absolute one, the reload delay is
//! bounded.

use libfuzzer_sys::fuzz_target;
use mist_media::hls::pull::{self, Follower};
use mist_media::hls::{self, Playlist};

const BASE: &str = "https://origin.example:8443/live/a/index.m3u8?tok=1";

fuzz_target!(|data: &[u8]| {
    let (first, second) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let _ = pull::segment_kind(data);
    if let Ok(s) = std::str::from_utf8(first) {
        for line in s.lines().take(64) {
            let u = pull::resolve(BASE, line);
            assert!(
                u.contains("://") || line.trim().contains(':'),
                "{line:?} resolved to {u:?}"
            );
        }
    }
    let mut f = Follower::new(BASE);
    let mut last: Option<u64> = None;
    for load in [first, second, first] {
        match hls::parse(load) {
            Ok(Playlist::Master(m)) => {
                let urls = pull::media_playlists(&m, BASE);
                assert!(urls.len() <= pull::MAX_FEEDS);
                for (i, u) in urls.iter().enumerate() {
                    assert!(!urls[..i].contains(u), "duplicate {u}");
                }
            }
            Ok(Playlist::Media(m)) => {
                let restarts = f.stats().restarts;
                let jobs = f.update(&m);
                assert!(jobs.len() <= pull::MAX_NEW_SEGMENTS);
                let restarted = f.stats().restarts > restarts;
                for j in &jobs {
                    if let Some(l) = last {
                        assert!(restarted || j.seq > l, "seq {} after {l}", j.seq);
                    }
                    last = Some(j.seq);
                    if let Some((a, b)) = j.range {
                        assert!(a <= b);
                    }
                    if let Some((_, Some((a, b)))) = &j.map {
                        assert!(a <= b);
                    }
                }
                if let Some(ms) = f.reload_in_ms() {
                    assert!((pull::MIN_RELOAD_MS..=pull::MAX_RELOAD_MS).contains(&ms));
                }
            }
            Err(_) => {}
        }
    }
});
