//! End to end: MistInRTSP pulls an RTSP source into a live stream. The camera is mist-rs itself:
//! ffmpeg publishes H.264 + AAC over RTMP into `live+cam`, MistOutRTSP serves it, and stream
//! `pulled` (source `rtsp://127.0.0.1:PORT/live+cam`) is started by the controller with
//! MistInRTSP; ffprobe and ffmpeg then play `pulled` over RTMP and decode video and audio.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn help_and_version() {
    let bin = env!("CARGO_BIN_EXE_MistInRTSP");
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("rtsp://"));
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    let out = Command::new(bin).arg("-j").output().unwrap();
    let caps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(caps["source_match"][0], "rtsp://*");
    let out = Command::new(bin)
        .args(["-s", "x", "http://not-rtsp/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// Decoded audio frames of `wall` of `url`.
fn decode_audio_frames(url: &str, wall: Duration) -> usize {
    let out = Command::new("timeout")
        .args([
            "40",
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            url,
        ])
        .args([
            "-t",
            &wall.as_secs().to_string(),
            "-map",
            "0:a:0",
            "-f",
            "framemd5",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

#[test]
fn pulls_an_rtsp_source_and_plays_it_over_rtmp() {
    let rtsp = free_port();
    let src = format!("rtsp://127.0.0.1:{rtsp}/live+cam");
    let ctl = Controller::start_edited(
        serde_json::json!({"pulled": {"name": "pulled", "source": src}}),
        |c| {
            c["config"]["protocols"].as_array_mut().unwrap().push(
                serde_json::json!({"connector": "RTSP", "port": rtsp, "interface": "127.0.0.1"}),
            );
        },
    );
    assert!(wait_port(rtsp, Duration::from_secs(10)), "no RTSP port");
    let _cam = publish(&ctl.publish_url("live+cam"), "640x360", 120);
    // The camera's stream must exist before the pull can describe it.
    let end = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let a = ctl.api(&serde_json::json!({"active_streams": true}));
        if a["active_streams"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "live+cam"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "live+cam never became active"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let streams = probe_streams(&ctl.play_url("pulled"));
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video in the pulled stream: {streams:?}"));
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["width"], 640);
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .unwrap_or_else(|| panic!("no audio in the pulled stream: {streams:?}"));
    assert_eq!(audio["codec_name"], "aac");

    let (frames, size) = decode_video_frames(&ctl.play_url("pulled"), Duration::from_secs(4));
    assert!(frames >= 75, "decoded only {frames} video frames of 4 s");
    assert_eq!(size, "640x360");
    let audio = decode_audio_frames(&ctl.play_url("pulled"), Duration::from_secs(4));
    assert!(audio >= 120, "decoded only {audio} audio frames of 4 s");
}

/// The camera goes away and comes back: MistInRTSP reconnects and the pulled stream plays again.
#[test]
fn reconnects_when_the_camera_comes_back() {
    let rtsp = free_port();
    let src = format!("rtsp://127.0.0.1:{rtsp}/live+cam");
    let ctl = Controller::start_edited(
        serde_json::json!({"pulled": {"name": "pulled", "source": src}}),
        |c| {
            c["config"]["protocols"].as_array_mut().unwrap().push(
                serde_json::json!({"connector": "RTSP", "port": rtsp, "interface": "127.0.0.1"}),
            );
        },
    );
    assert!(wait_port(rtsp, Duration::from_secs(10)), "no RTSP port");
    let mut first = publish(&ctl.publish_url("live+cam"), "320x240", 8);
    let (frames, size) = decode_video_frames(&ctl.play_url("pulled"), Duration::from_secs(2));
    assert!(frames >= 30, "first camera: {frames} frames");
    assert_eq!(size, "320x240");
    first.0.wait().unwrap();
    // Past the buffer's publisher timeout (10 s) the camera's stream ends, and the pull with it.
    std::thread::sleep(Duration::from_secs(13));
    // The camera is back, with another picture size.
    let _second = publish(&ctl.publish_url("live+cam"), "640x360", 90);
    let end = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let streams = Command::new("timeout")
            .args([
                "10",
                "ffprobe",
                "-v",
                "error",
                "-show_streams",
                "-of",
                "json",
            ])
            .arg(ctl.play_url("pulled"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&streams.stdout).unwrap_or_default();
        let w = v["streams"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["codec_type"] == "video").cloned());
        if w.is_some_and(|s| s["width"] == 640) {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "the pull never came back with the new camera"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (frames, size) = decode_video_frames(&ctl.play_url("pulled"), Duration::from_secs(3));
    assert!(frames >= 50, "second camera: {frames} frames");
    assert_eq!(size, "640x360");
}
