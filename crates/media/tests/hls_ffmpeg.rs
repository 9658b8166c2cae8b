//! Our HLS writer against ffmpeg: segments that ffmpeg's HLS muxer cut are fed (as ffprobe sees their
//! packets) through our Timeline, which must find the same boundaries, and ffmpeg must decode OUR
//! playlists (media and master) over ffmpeg's segments with the same frame count as its own.
//! Fails when ffmpeg/ffprobe are not installed (scripts/test installs them).

mod common;

use common::{require_ffmpeg, video_frames};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use mist_media::hls::{self, MasterOptions, MediaOptions, Playlist, PlaylistType};
use mist_media::segment::{Timeline, TimelineConfig};
use mist_media::{Codec, Track};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mist-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    common::run_in(dir, args)
}

/// Packets of `input` as (stream index, dts ms, keyframe, size), with dts relative to the first
/// video packet.
fn packets(dir: &Path, input: &str) -> Vec<(u32, i64, bool, u32)> {
    let (ok, out, err) = run(
        dir,
        &[
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,dts_time,size,flags",
            "-of",
            "json",
            input,
        ],
    );
    assert!(ok, "ffprobe packets: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut r: Vec<(u32, f64, bool, u32)> = Vec::new();
    for p in v["packets"].as_array().unwrap() {
        let Some(dts) = p["dts_time"].as_str().and_then(|s| s.parse::<f64>().ok()) else {
            continue;
        };
        r.push((
            p["stream_index"].as_u64().unwrap() as u32,
            dts,
            p["flags"].as_str().unwrap_or("").contains('K'),
            p["size"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0),
        ));
    }
    let origin = r.iter().find(|p| p.0 == 0).map(|p| p.1).unwrap();
    r.into_iter()
        .map(|(s, d, k, z)| (s, ((d - origin) * 1000.0).round() as i64, k, z))
        .collect()
}

fn tracks() -> Vec<Track> {
    let mut v = Track::new(1, Codec::H264);
    v.init = Bytes::from_static(&[1, 0x64, 0, 0x1f]);
    v.width = 320;
    v.height = 180;
    v.fpks = 25_000;
    let mut a = Track::new(2, Codec::Aac);
    a.init = Bytes::from_static(&[0x11, 0x88]);
    a.rate = 48000;
    a.channels = 1;
    vec![v, a]
}

fn check(fmp4: bool) {
    require_ffmpeg();
    let dir = tmpdir(if fmp4 { "hls-fmp4" } else { "hls-ts" });
    let mut args = vec![
        "ffmpeg",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-profile:v",
        "high",
        "-level",
        "3.1",
        "-g",
        "12",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
    ];
    if fmp4 {
        args.extend(["-hls_segment_type", "fmp4"]);
    }
    args.push("out.m3u8");
    let (ok, _, err) = run(&dir, &args);
    assert!(ok, "ffmpeg: {err}");

    // Feed our timeline the packets ffmpeg segmented.
    let tr = tracks();
    let mut tl = Timeline::new(
        TimelineConfig {
            target_ms: 1000,
            ..TimelineConfig::vod()
        },
        &tr,
    );
    for (stream, dts, key, size) in packets(&dir, "out.m3u8") {
        tl.push(stream + 1, dts, key, size);
    }
    tl.finish();

    // Same boundaries as ffmpeg's own playlist.
    let theirs = match hls::parse(&std::fs::read(dir.join("out.m3u8")).unwrap()).unwrap() {
        Playlist::Media(m) => m,
        _ => panic!("master?"),
    };
    let ours: Vec<i64> = tl.segments().map(|s| s.duration_ms()).collect();
    let theirs_d: Vec<i64> = theirs.segments.iter().map(|s| s.duration_ms).collect();
    assert_eq!(
        ours.len(),
        theirs_d.len(),
        "ours {ours:?} theirs {theirs_d:?}"
    );
    let n = ours.len();
    assert_eq!(ours[..n - 1], theirs_d[..n - 1]);
    assert!(
        (ours[n - 1] - theirs_d[n - 1]).abs() <= 40,
        "ours {ours:?} theirs {theirs_d:?}"
    );

    // Our playlists over ffmpeg's segments.
    let mut mo = if fmp4 {
        MediaOptions::cmaf(&[1, 2])
    } else {
        MediaOptions::ts(&[1, 2])
    };
    mo.segment_uri = if fmp4 {
        "out{seq}.m4s".into()
    } else {
        "out{seq}.ts".into()
    };
    mo.playlist_type = Some(PlaylistType::Vod);
    let media = hls::media_playlist(&tl, &mo);
    std::fs::write(dir.join("ours.m3u8"), &media).unwrap();
    let mut ma = if fmp4 {
        MasterOptions::cmaf()
    } else {
        MasterOptions::ts()
    };
    ma.audio = hls::AudioMode::Muxed;
    ma.variant_uri = "ours.m3u8".into();
    let master = hls::master_playlist(&tr, &tl, &ma);
    assert!(
        master.contains("CODECS=\"avc1.64001f,mp4a.40.2\""),
        "{master}"
    );
    std::fs::write(dir.join("master.m3u8"), &master).unwrap();

    for pl in ["ours.m3u8", "master.m3u8"] {
        let (ok, _, err) = run(
            &dir,
            &["ffmpeg", "-v", "error", "-i", pl, "-f", "null", "-"],
        );
        assert!(
            ok && err.trim().is_empty(),
            "ffmpeg decoding {pl}:\n{err}\n{media}"
        );
    }
    let want = video_frames(&dir, "out.m3u8");
    assert_eq!(want, 100);
    assert_eq!(video_frames(&dir, "ours.m3u8"), want);
    assert_eq!(video_frames(&dir, "master.m3u8"), want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffmpeg_decodes_our_ts_playlists() {
    check(false);
}

#[test]
fn ffmpeg_decodes_our_fmp4_playlists() {
    check(true);
}
