//! The m3u8 parser against playlists ffmpeg wrote (see fixtures/hls/README.md).

mod common;

use mist_media::hls::{parse, MasterPlaylist, MediaPlaylist, Playlist, PlaylistType};
use mist_media::MediaError;

fn fixture(name: &str) -> Vec<u8> {
    common::fixture_bytes(&format!("hls/{name}"))
}

fn media(name: &str) -> MediaPlaylist {
    match parse(&fixture(name)).unwrap() {
        Playlist::Media(m) => m,
        Playlist::Master(_) => panic!("{name} parsed as master"),
    }
}

fn master(name: &str) -> MasterPlaylist {
    match parse(&fixture(name)).unwrap() {
        Playlist::Master(m) => m,
        Playlist::Media(_) => panic!("{name} parsed as media"),
    }
}

#[test]
fn ts_vod() {
    let m = media("ts_vod.m3u8");
    assert_eq!(m.version, Some(3));
    assert_eq!(m.target_duration, 1);
    assert_eq!(m.playlist_type, Some(PlaylistType::Vod));
    assert!(m.endlist);
    let d: Vec<i64> = m.segments.iter().map(|s| s.duration_ms).collect();
    assert_eq!(d, [1440, 960, 960, 640]);
    assert_eq!(m.segments[3].uri, "out3.ts");
    assert_eq!(m.segments[3].seq, 3);
    assert!(m.segments.iter().all(|s| s.map.is_none()));
}

#[test]
fn ts_live_window() {
    let m = media("ts_live.m3u8");
    assert!(!m.endlist);
    assert!(m.independent_segments);
    assert_eq!(m.media_sequence, 3);
    assert_eq!(m.segments.len(), 3);
    assert_eq!(m.segments[0].seq, 3);
    assert_eq!(m.segments[2].uri, "live5.ts");
    assert!(m.segments[0]
        .program_date_time
        .as_deref()
        .unwrap()
        .ends_with("+0000"));
}

#[test]
fn variants() {
    let m = master("variants_master.m3u8");
    assert_eq!(m.variants.len(), 2);
    assert_eq!(m.variants[0].uri, "out_0.m3u8");
    assert_eq!(m.variants[0].bandwidth, 70400);
    assert_eq!(m.variants[0].resolution, Some((320, 180)));
    assert_eq!(m.variants[1].resolution, Some((160, 90)));
    assert_eq!(
        m.variants[1].codecs.as_deref(),
        Some("avc1.64000b,mp4a.40.2")
    );
    let v = media("variants_out_0.m3u8");
    assert_eq!(v.segments.len(), 3);
    assert!(v.endlist);
}

#[test]
fn fmp4_and_cmaf() {
    let m = media("fmp4_vod.m3u8");
    assert_eq!(m.version, Some(7));
    assert_eq!(m.segments.len(), 4);
    assert!(m
        .segments
        .iter()
        .all(|s| s.map.as_ref().unwrap().uri == "init.mp4"));
    let m = master("cmaf_master.m3u8");
    assert_eq!(m.renditions.len(), 1);
    let r = &m.renditions[0];
    assert_eq!(r.media_type, "AUDIO");
    assert_eq!(r.group_id, "group_aud");
    assert_eq!(r.language.as_deref(), Some("eng"));
    assert_eq!(r.uri.as_deref(), Some("out_english.m3u8"));
    assert!(r.default);
    assert_eq!(m.variants.len(), 3);
    assert!(m
        .variants
        .iter()
        .all(|v| v.audio.as_deref() == Some("group_aud")));
    let a = media("cmaf_audio.m3u8");
    assert_eq!(a.segments[0].duration_ms, 1003);
    assert_eq!(a.segments[3].duration_ms, 21);
    assert_eq!(a.segments[0].map.as_ref().unwrap().uri, "init_2.mp4");
}

#[test]
fn truncations_never_panic() {
    for name in [
        "ts_vod.m3u8",
        "ts_live.m3u8",
        "variants_master.m3u8",
        "fmp4_vod.m3u8",
        "cmaf_master.m3u8",
        "cmaf_audio.m3u8",
    ] {
        let data = fixture(name);
        // What is refused is refused as malformed (the fixtures are far below the size limit).
        let refused = |r: Result<Playlist, MediaError>, what: &str| {
            if let Err(e) = r {
                assert!(
                    matches!(e, MediaError::Malformed { what: "m3u8", .. }),
                    "{name} {what}: {e:?}"
                );
            }
        };
        assert!(parse(&data[..0]).is_err(), "{name}: empty");
        for n in 0..data.len() {
            refused(parse(&data[..n]), &format!("cut at {n}"));
            let mut flipped = data.clone();
            flipped[n] ^= 0x55;
            refused(parse(&flipped), &format!("byte {n} flipped"));
        }
    }
}
