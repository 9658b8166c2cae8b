//! Our static MPD against ffmpeg: ffmpeg's DASH muxer writes init and media segments (video only:
//! ffmpeg cuts audio on its own boundaries, while our MPD shares one timeline between adaptation
//! sets); our Timeline, fed the packets, must find the same segment durations, and ffmpeg must decode
//! OUR manifest over ffmpeg's segments with the same frame count as its own manifest.
//! Fails when ffmpeg/ffprobe are not installed (scripts/test installs them).

mod common;

use common::{require_ffmpeg, video_frames};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use mist_media::dash::{self, MpdOptions};
use mist_media::segment::{Timeline, TimelineConfig};
use mist_media::{Codec, Track};

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    common::run_in(dir, args)
}

#[test]
fn ffmpeg_decodes_our_static_mpd() {
    require_ffmpeg();
    let dir: PathBuf = std::env::temp_dir().join(format!("mist-dash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, _, err) = run(
        &dir,
        &[
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25",
            "-t",
            "5",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-level",
            "3.1",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "dash",
            "-seg_duration",
            "1",
            "out.mpd",
        ],
    );
    assert!(ok, "ffmpeg: {err}");

    let (ok, out, err) = run(
        &dir,
        &[
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "packet=dts_time,size,flags",
            "-of",
            "json",
            "out.mpd",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pk = v["packets"].as_array().unwrap();
    let mut v = Track::new(0, Codec::H264); // ffmpeg's representation id
    v.init = Bytes::from_static(&[1, 0x64, 0, 0x1f]);
    v.width = 320;
    v.height = 180;
    v.fpks = 25_000;
    let tracks = [v];
    let mut tl = Timeline::new(
        TimelineConfig {
            target_ms: 1000,
            first_seq: 1,
            ..TimelineConfig::vod()
        },
        &tracks,
    );
    let mut origin = None;
    for p in pk {
        let Some(d) = p["dts_time"].as_str().and_then(|s| s.parse::<f64>().ok()) else {
            continue;
        };
        let o = *origin.get_or_insert(d);
        let size = p["size"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        tl.push(
            0,
            ((d - o) * 1000.0).round() as i64,
            p["flags"].as_str().unwrap_or("").contains('K'),
            size,
        );
    }
    tl.finish();
    let d: Vec<i64> = tl.segments().map(|s| s.duration_ms()).collect();
    // 1 s GOPs: one GOP per segment, as in ffmpeg's own MPD (its DASH muxer cuts greedily relative
    // to the previous cut, so with GOPs that do not divide the target its boundaries differ from
    // ours, which follow fixed target buckets like its HLS muxer).
    assert_eq!(d, [1000; 5]);
    let theirs = std::fs::read_to_string(dir.join("out.mpd")).unwrap();
    assert!(
        theirs.contains("<S t=\"0\" d=\"12800\" r=\"4\" />"),
        "{theirs}"
    );

    let mut o = MpdOptions::vod();
    o.init_template = "init-stream$RepresentationID$.m4s".into();
    o.media_template = "chunk-stream$RepresentationID$-$Number%05d$.m4s".into();
    let mpd = dash::mpd(&tracks, &tl, &o);
    std::fs::write(dir.join("ours.mpd"), &mpd).unwrap();
    let (ok, _, err) = run(
        &dir,
        &["ffmpeg", "-v", "error", "-i", "ours.mpd", "-f", "null", "-"],
    );
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg decoding ours.mpd:\n{err}\n{mpd}"
    );
    let want = video_frames(&dir, "out.mpd");
    assert_eq!(want, 125);
    assert_eq!(video_frames(&dir, "ours.mpd"), want);
    let _ = std::fs::remove_dir_all(&dir);
}
