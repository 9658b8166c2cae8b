//! End to end: ffmpeg publishes over RTMP into MistController's MistOutRTMP, ffmpeg/ffprobe play back.

mod common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn wait_for_stream(ctl: &Controller, name: &str) {
    ctl.wait_active(name, Duration::from_secs(15));
}

#[test]
fn publish_and_play_h264_aac() {
    let ctl = Controller::start(serde_json::json!({}));
    let _pub = publish(&ctl.publish_url("live+alice"), "640x360", 30);
    wait_for_stream(&ctl, "live+alice");

    let streams = probe_streams(&ctl.play_url("live+alice"));
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video stream");
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("audio stream");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["width"], 640);
    assert_eq!(video["height"], 360);
    assert_eq!(audio["codec_name"], "aac");

    let (frames, size) = decode_video_frames(&ctl.play_url("live+alice"), Duration::from_secs(4));
    assert!(frames >= 50, "decoded only {frames} video frames in 4 s");
    assert_eq!(size, "640x360");
}

#[test]
fn two_wildcard_streams_at_once() {
    let ctl = Controller::start(serde_json::json!({}));
    let _a = publish(&ctl.publish_url("live+small"), "320x240", 30);
    let _b = publish(&ctl.publish_url("live+big"), "640x360", 30);
    wait_for_stream(&ctl, "live+small");
    wait_for_stream(&ctl, "live+big");
    let url_small = ctl.play_url("live+small");
    let url_big = ctl.play_url("live+big");
    let small = std::thread::spawn(move || decode_video_frames(&url_small, Duration::from_secs(4)));
    let (big_frames, big_size) = decode_video_frames(&url_big, Duration::from_secs(4));
    let (small_frames, small_size) = small.join().unwrap();
    assert_eq!(small_size, "320x240");
    assert_eq!(big_size, "640x360");
    assert!(
        small_frames >= 50 && big_frames >= 50,
        "{small_frames} / {big_frames} frames"
    );
}

#[test]
fn push_refused_for_unknown_stream_and_non_push_source() {
    let ctl = Controller::start(
        serde_json::json!({"vod": {"name": "vod", "source": "/nonexistent.mp4"}}),
    );
    for stream in ["nosuchstream", "vod"] {
        let mut p = publish(&ctl.publish_url(stream), "320x240", 3);
        let status = p.0.wait().unwrap();
        assert!(!status.success(), "push to {stream} was accepted");
    }
}

#[test]
fn killed_viewer_and_publisher_then_new_publisher() {
    let ctl = Controller::start(serde_json::json!({}));
    let mut first = publish(&ctl.publish_url("live+k"), "320x240", 60);
    wait_for_stream(&ctl, "live+k");

    // A viewer killed with SIGKILL mid-stream.
    let mut viewer = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            &ctl.play_url("live+k"),
            "-f",
            "null",
            "-",
        ])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    viewer.kill().unwrap();
    viewer.wait().unwrap();

    // The publisher killed with SIGKILL, then a new one on the same name.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let _second = publish(&ctl.publish_url("live+k"), "640x360", 60);
    std::thread::sleep(Duration::from_secs(2));
    let (frames, size) = decode_video_frames(&ctl.play_url("live+k"), Duration::from_secs(4));
    assert!(frames >= 50, "after republish decoded only {frames} frames");
    assert_eq!(size, "640x360", "viewer got the old publisher's picture");
}

#[test]
fn garbage_on_rtmp_port_does_not_disturb_a_viewer() {
    let ctl = Controller::start(serde_json::json!({}));
    let _pub = publish(&ctl.publish_url("live+g"), "320x240", 60);
    wait_for_stream(&ctl, "live+g");
    let url = ctl.play_url("live+g");
    let viewer = std::thread::spawn(move || decode_video_frames(&url, Duration::from_secs(6)));

    std::thread::sleep(Duration::from_millis(500));
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut garbage = vec![0u8; 64 * 1024];
    for b in garbage.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    // Raw garbage, and garbage after a valid C0 byte so it reaches the handshake/chunk parsers.
    for prefix in [&[][..], &[3u8][..]] {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", ctl.rtmp)) {
            let _ = s.write_all(prefix);
            let _ = s.write_all(&garbage);
        }
    }
    let (frames, _) = viewer.join().unwrap();
    assert!(
        frames >= 75,
        "viewer decoded only {frames} frames in 6 s while garbage was sent"
    );
}

#[test]
fn killed_rtmp_output_is_restarted_within_a_second() {
    let ctl = Controller::start(serde_json::json!({}));
    let pid = find_child(ctl.proc.pid(), "MistOutRTMP").expect("MistOutRTMP child");
    kill9(pid);
    let start = Instant::now();
    // Wait until the old process is gone, then for the port to answer again.
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && start.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        wait_port(ctl.rtmp, Duration::from_secs(1)),
        "RTMP port not back within 1 s"
    );
    let new_pid = find_child(ctl.proc.pid(), "MistOutRTMP").expect("restarted MistOutRTMP");
    assert_ne!(new_pid, pid);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "restart took {:?}",
        start.elapsed()
    );
}

fn kill9(pid: u32) {
    assert!(signal(pid, "9"));
}

/// A buffer killed with SIGKILL cannot end its stream. While the publisher still sends, the
/// controller starts a new buffer and viewers go on; once the publisher is gone too, a killed
/// buffer's stream is ended and its shared memory removed (before this, it stayed "active" with
/// nobody keeping it, and every HLS request re-muxed it).
#[test]
fn killed_buffer_is_replaced_while_publishing_and_cleaned_up_after() {
    let ctl = Controller::start(serde_json::json!({}));
    let mut publisher = publish(&ctl.publish_url("live+kb"), "320x240", 60);
    wait_for_stream(&ctl, "live+kb");
    let first = find_child(ctl.proc.pid(), "MistInBuffer").expect("MistInBuffer child");
    kill9(first);
    let start = Instant::now();
    let second = loop {
        match find_child(ctl.proc.pid(), "MistInBuffer") {
            Some(p) if p != first => break p,
            _ if start.elapsed() > Duration::from_secs(5) => panic!("no new MistInBuffer"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let (frames, size) = decode_video_frames(&ctl.play_url("live+kb"), Duration::from_secs(3));
    assert!(
        frames >= 40,
        "after the buffer was replaced decoded only {frames} frames"
    );
    assert_eq!(size, "320x240");

    // Publisher gone, then the buffer killed while it waits for the publisher to return.
    publisher.0.kill().unwrap();
    publisher.0.wait().unwrap();
    std::thread::sleep(Duration::from_secs(3)); // the writer counts as gone after 2 s
    kill9(second);
    let start = Instant::now();
    let meta = ctl.shm.join("mist-live+kb-meta");
    while meta.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !meta.exists(),
        "the killed buffer's stream was left in shared memory"
    );
    let a = ctl.api(&serde_json::json!({"active_streams": true}));
    assert!(
        !a["active_streams"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "live+kb")),
        "{a}"
    );
    assert!(find_child(ctl.proc.pid(), "MistInBuffer").is_none());
}
