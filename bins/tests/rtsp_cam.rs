//! End to end: MistInRTSP pulls a camera simulated by GStreamer's RTSP server
//! (`scripts/gst-rtsp-cam`: gst-rtsp-server with openh264 video and PCMA or Opus audio, Digest
//! auth, optionally TCP only). The controller starts MistInRTSP for the pulled stream; ffprobe
//! and ffmpeg play it back from MistOutRTSP. The camera prints each SETUP's Transport and each
//! keep-alive, so the tests see which transport was used and that the session was kept alive.

mod common;

use common::*;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running simulated camera and the lines it printed.
struct Cam {
    _proc: Proc,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Cam {
    fn start(port: u16, args: &[&str]) -> Cam {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/gst-rtsp-cam");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run scripts/gst-rtsp-cam (scripts/test installs its packages)");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        let proc = Proc(child);
        assert!(
            wait_port(port, Duration::from_secs(15)),
            "the GStreamer camera never listened"
        );
        Cam {
            _proc: proc,
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// A controller with an RTSP listener for viewers and `streams`.
fn controller(streams: serde_json::Value) -> (Controller, u16) {
    let rtsp = free_port();
    let ctl = Controller::start_edited(streams, |c| {
        c["config"]["protocols"].as_array_mut().unwrap().push(
            serde_json::json!({"connector": "RTSP", "port": rtsp, "interface": "127.0.0.1"}),
        );
    });
    assert!(wait_port(rtsp, Duration::from_secs(10)), "no RTSP port");
    (ctl, rtsp)
}

/// ffprobe's streams of an RTSP URL (interleaved TCP), retried while the pull starts.
fn probe(url: &str) -> Vec<serde_json::Value> {
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let out = Command::new("timeout")
            .args(["20", "ffprobe", "-v", "error", "-rtsp_transport", "tcp"])
            .args(["-show_streams", "-of", "json", url])
            .stdin(Stdio::null())
            .output()
            .expect("run ffprobe");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let streams = v["streams"].as_array().cloned().unwrap_or_default();
        if streams.len() >= 2 {
            return streams;
        }
        assert!(
            Instant::now() < end,
            "ffprobe {url}: {streams:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn codec(streams: &[serde_json::Value], kind: &str) -> serde_json::Value {
    streams
        .iter()
        .find(|s| s["codec_type"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} in {streams:?}"))
}

/// Frames of 4 s of `map` (`0:v:0`, `0:a:0`) of `url` decoded by ffmpeg over TCP.
fn decode(url: &str, map: &str) -> usize {
    let out = Command::new("timeout")
        .args(["40", "ffmpeg", "-hide_banner", "-loglevel", "error"])
        .args(["-rtsp_transport", "tcp", "-i", url, "-t", "4"])
        .args(["-map", map, "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

/// Digest auth against gst-rtsp-server, RTP over UDP, keep-alive at half the session timeout,
/// H.264 + PCMA depacketised and played back.
#[test]
fn pulls_a_digest_camera_over_udp_with_keepalives() {
    let port = free_port();
    let cam = Cam::start(
        port,
        &[
            "--audio",
            "pcma",
            "--digest",
            "viewer:s3cret",
            "--session-timeout",
            "4",
        ],
    );
    let src = format!("rtsp://viewer:s3cret@127.0.0.1:{port}/cam");
    let (_ctl, rtsp) = controller(serde_json::json!({
        "cam": {"name": "cam", "source": src, "transport": "udp"}
    }));
    let url = format!("rtsp://127.0.0.1:{rtsp}/cam");
    let streams = probe(&url);
    let v = codec(&streams, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(320), Some(240)));
    assert_eq!(codec(&streams, "audio")["codec_name"], "pcm_alaw");
    let video = decode(&url, "0:v:0");
    assert!(video >= 75, "decoded {video} video frames of 4 s");
    let audio = decode(&url, "0:a:0");
    assert!(audio >= 20, "decoded {audio} audio frames of 4 s");
    let lines = cam.lines();
    let setups: Vec<_> = lines.iter().filter(|l| l.starts_with("SETUP ")).collect();
    assert!(setups.len() >= 2, "{lines:?}");
    assert!(
        setups
            .iter()
            .all(|l| l.contains("client_port=") && !l.contains("TCP")),
        "not UDP: {setups:?}"
    );
    // The session times out after 4 s: 8+ s of playing took keep-alives every 2 s.
    let keepalives = lines
        .iter()
        .filter(|l| *l == "GET_PARAMETER" || *l == "OPTIONS")
        .count();
    assert!(keepalives >= 4, "{keepalives} keep-alives: {lines:?}");
}

/// A wrong password is refused and the pull says so (no stream is made).
#[test]
fn a_wrong_digest_password_is_refused() {
    let port = free_port();
    let _cam = Cam::start(port, &["--audio", "none", "--digest", "viewer:s3cret"]);
    let dir = TempDir::new("rtspcam");
    let out = Command::new("timeout")
        .args(["-s", "INT", "4"])
        .arg(env!("CARGO_BIN_EXE_MistInRTSP"))
        .args(["-s", "wrong"])
        .arg(format!("rtsp://viewer:nope@127.0.0.1:{port}/cam"))
        .env("MIST_SHM_DIR", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("authentication refused"), "{err}");
    assert!(!err.contains("playing"), "{err}");
}

/// A camera that refuses UDP is pulled over TCP; when it restarts within the stream timeout, a
/// viewer watching all along keeps playing the same stream (H.264 + Opus).
#[test]
fn falls_back_to_tcp_and_keeps_viewers_across_a_camera_restart() {
    let port = free_port();
    let args = ["--audio", "opus", "--tcp-only"];
    let cam = Cam::start(port, &args);
    let src = format!("rtsp://127.0.0.1:{port}/cam");
    let (_ctl, rtsp) = controller(serde_json::json!({
        "cam": {"name": "cam", "source": src}
    }));
    let url = format!("rtsp://127.0.0.1:{rtsp}/cam");
    let streams = probe(&url);
    assert_eq!(codec(&streams, "video")["codec_name"], "h264");
    assert_eq!(codec(&streams, "audio")["codec_name"], "opus");
    let lines = cam.lines();
    let setups: Vec<_> = lines.iter().filter(|l| l.starts_with("SETUP ")).collect();
    assert!(
        setups.first().is_some_and(|l| l.contains("client_port=")),
        "UDP was not tried first: {lines:?}"
    );
    assert!(
        setups.last().is_some_and(|l| l.contains("interleaved=")),
        "no fallback to TCP: {lines:?}"
    );

    // A viewer plays along while the camera goes away for 3 s and comes back.
    let mut viewer = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp"])
        .args(["-i", &url, "-map", "0:v:0", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = viewer.stdout.take().unwrap();
    let viewer = Proc(viewer);
    let frames = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let f = frames.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if !line.starts_with('#') && !line.trim().is_empty() {
                f.lock().unwrap().push(Instant::now());
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(30);
    while frames.lock().unwrap().len() < 50 {
        assert!(Instant::now() < end, "the viewer got no frames");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(cam);
    std::thread::sleep(Duration::from_secs(3));
    let back = Instant::now();
    let _cam = Cam::start(port, &args);
    let end = back + Duration::from_secs(30);
    loop {
        let after = frames.lock().unwrap().iter().filter(|t| **t > back).count();
        if after >= 100 {
            break;
        }
        assert!(
            !reader.is_finished(),
            "the viewer's stream ended while the camera was away ({after} frames after it came back)"
        );
        assert!(
            Instant::now() < end,
            "only {after} frames after the camera came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(viewer);
}
