//! End to end: MistInRTSP pulls a camera simulated by GStreamer's RTSP server
//! (`scripts/gst-rtsp-cam`: gst-rtsp-server with openh264 video and PCMA or Opus audio, Digest
//! auth, optionally TCP only). The controller starts MistInRTSP for the pulled stream; ffprobe
//! and ffmpeg play it back from MistOutRTSP. The camera prints each SETUP's Transport and each
//! keep-alive, so the tests see which transport was used and that the session was kept alive.

mod common;

use common::rtsp::controller;
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
        Cam { _proc: proc, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// ffprobe's streams of an RTSP URL (interleaved TCP), retried while the pull starts.
fn probe(url: &str) -> Vec<serde_json::Value> {
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, streams, err) = rtsp::ffprobe(url, "tcp");
        if streams.len() >= 2 {
            return streams;
        }
        assert!(Instant::now() < end, "ffprobe {url}: {streams:?} {err}");
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
    rtsp::decode(url, "tcp", map, 4)
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
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
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

/// Over UDP, MistInRTSP sends RTCP receiver reports (RFC 3550) to the camera's RTCP ports: the
/// camera sees a receiver's RTCP arrive.
#[test]
fn sends_receiver_reports_over_udp() {
    let port = free_port();
    let cam = Cam::start(port, &["--audio", "pcma"]);
    let src = format!("rtsp://127.0.0.1:{port}/cam");
    let (_ctl, rtsp) = controller(serde_json::json!({
        "rr": {"name": "rr", "source": src, "transport": "udp"}
    }));
    // The pull is up once the stream plays.
    probe(&format!("rtsp://127.0.0.1:{rtsp}/rr"));
    // The first reports go out half an interval after PLAY, then every 5 s.
    let end = Instant::now() + Duration::from_secs(20);
    while !cam.lines().iter().any(|l| l.starts_with("RTCP from ")) {
        assert!(
            Instant::now() < end,
            "no receiver report reached the camera: {:?}",
            cam.lines()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Over interleaved TCP too, MistInRTSP sends RTCP receiver reports (on each track's RTCP
/// channel): a camera that takes RTP over TCP only sees a receiver's RTCP arrive.
#[test]
fn sends_receiver_reports_over_tcp() {
    let port = free_port();
    let cam = Cam::start(port, &["--audio", "pcma", "--tcp-only"]);
    let src = format!("rtsp://127.0.0.1:{port}/cam");
    let (_ctl, rtsp) = controller(serde_json::json!({
        "rrtcp": {"name": "rrtcp", "source": src, "transport": "tcp"}
    }));
    probe(&format!("rtsp://127.0.0.1:{rtsp}/rrtcp"));
    let end = Instant::now() + Duration::from_secs(20);
    while !cam.lines().iter().any(|l| l.starts_with("RTCP from ")) {
        assert!(
            Instant::now() < end,
            "no receiver report reached the camera over TCP: {:?}",
            cam.lines()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let lines = cam.lines();
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("SETUP "))
            .all(|l| l.contains("interleaved=")),
        "not interleaved: {lines:?}"
    );
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
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
        ])
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

/// Reads one RTSP response head (and nothing after it) from `s`.
fn read_head(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// An RTSP publisher sending hostile RTP (sequence jumps, bogus header extensions, CSRC counts
/// beyond the packet, FU-A fragments of nothing, lying interleaved lengths at the end) into
/// MistOutRTSP: nothing panics, the process's memory stays bounded, and a viewer of another
/// stream keeps playing.
#[test]
fn hostile_rtp_from_a_publisher_costs_only_that_publisher() {
    use std::io::Write;
    let (ctl, rtsp) = controller(serde_json::json!({}));
    let _good = publish(&ctl.publish_url("live+ok"), "320x240", 40);
    let ok = format!("rtsp://127.0.0.1:{rtsp}/live+ok");
    probe(&ok);
    let viewer = {
        let ok = ok.clone();
        std::thread::spawn(move || {
            let out = Command::new("timeout")
                .args(["60", "ffmpeg", "-hide_banner", "-loglevel", "error"])
                .args(["-rtsp_transport", "tcp", "-i", &ok, "-t", "15"])
                .args(["-map", "0:v:0", "-f", "framemd5", "-"])
                .stdin(Stdio::null())
                .output()
                .expect("run ffmpeg");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .count()
        })
    };
    let out_pid = find_child(ctl.proc.pid(), "MistOutRTSP").expect("MistOutRTSP runs");
    let rss_before = rss_kib(out_pid);

    let bad = format!("rtsp://127.0.0.1:{rtsp}/live+bad");
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=1\r\n\
m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=2\r\n";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", rtsp)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let reqs = [
        format!(
            "ANNOUNCE {bad} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
        format!("SETUP {bad}/trackID=1 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n"),
        format!("SETUP {bad}/trackID=2 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3;mode=record\r\n\r\n"),
        format!("RECORD {bad} RTSP/1.0\r\nCSeq: 4\r\nRange: npt=0.000-\r\n\r\n"),
    ];
    let mut session = None;
    for r in reqs {
        let r = match &session {
            Some(id) => r.replacen("\r\n\r\n", &format!("\r\nSession: {id}\r\n\r\n"), 1),
            None => r,
        };
        s.write_all(r.as_bytes()).unwrap();
        let head = read_head(&mut s);
        assert!(head.starts_with("RTSP/1.0 200"), "{r}\n→ {head}");
        if session.is_none() {
            session = head
                .lines()
                .find_map(|l| l.strip_prefix("Session: "))
                .map(|v| v.split(';').next().unwrap().trim().to_string());
        }
    }
    // 30 000 hostile packets.
    let mut seed = 0x1234_5678u32;
    let mut rnd = || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        seed >> 8
    };
    let mut sent = 0usize;
    for i in 0..30_000u32 {
        let r = rnd();
        let audio = r & 1 == 1;
        let mut p = vec![0x80u8, if audio { 8 } else { 96 }];
        // Sequence numbers: jumps of up to ±32 768, repeats, and runs.
        let seq = match r % 5 {
            0 => rnd() as u16,
            1 => (i / 3) as u16,
            _ => i as u16,
        };
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(rnd().wrapping_mul(90)).to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        match rnd() % 6 {
            // Extension bit with a length far beyond the packet.
            0 => {
                p[0] |= 0x10;
                p.extend_from_slice(&[0xBE, 0xDE, 0xFF, 0xFF, 1, 2, 3]);
            }
            // 15 CSRCs announced, 2 present.
            1 => {
                p[0] |= 0x0F;
                p.extend_from_slice(&[0; 8]);
            }
            // Padding longer than the packet.
            2 => {
                p[0] |= 0x20;
                p.extend_from_slice(&[0x65, 1, 2, 0xFF]);
            }
            // FU-A start/middle/end fragments of random types, huge marker-less units.
            3 => {
                p.extend_from_slice(&[0x7C, (rnd() as u8) & 0xDF]);
                p.extend(std::iter::repeat_n(0xAB, 1200));
            }
            // STAP-A with lying sizes.
            4 => p.extend_from_slice(&[0x78, 0xFF, 0xFF, 0x67, 0x00, 0x03, 0x68]),
            _ => {
                p.extend(std::iter::repeat_n(rnd() as u8, (rnd() % 1400) as usize));
                if rnd() % 2 == 0 {
                    p[1] |= 0x80;
                }
            }
        }
        let ch = if audio { 2 } else { 0 };
        let mut frame = vec![b'$', ch];
        frame.extend_from_slice(&(p.len() as u16).to_be_bytes());
        frame.extend_from_slice(&p);
        if s.write_all(&frame).is_err() {
            break;
        }
        sent += 1;
    }
    // Last, a frame whose length lies.
    let _ = s.write_all(b"$\x00\xff\xff\x80\x60\x00\x01");
    drop(s);

    let decoded = viewer.join().unwrap();
    assert!(
        sent > 1000,
        "the hostile publisher was cut after {sent} packets"
    );
    assert!(
        decoded >= 250,
        "the viewer of another stream decoded only {decoded} frames of 15 s"
    );
    assert!(
        std::fs::metadata(format!("/proc/{out_pid}")).is_ok(),
        "MistOutRTSP died"
    );
    let grown = rss_kib(out_pid).saturating_sub(rss_before);
    assert!(grown < 64 << 10, "MistOutRTSP grew by {grown} KiB");
}

/// AAC as MP4A-LATM (RFC 3016, GStreamer's rtpmp4apay, `cpresent=0` with the StreamMuxConfig in
/// the SDP) pulled over TCP: the audio decodes as AAC.
#[test]
fn pulls_latm_aac_from_gstreamer() {
    let port = free_port();
    let _cam = Cam::start(port, &["--audio", "latm"]);
    let src = format!("rtsp://127.0.0.1:{port}/cam");
    let (_ctl, rtsp) = controller(serde_json::json!({
        "cam": {"name": "cam", "source": src, "transport": "tcp"}
    }));
    let url = format!("rtsp://127.0.0.1:{rtsp}/cam");
    let streams = probe(&url);
    let a = codec(&streams, "audio");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["sample_rate"], "44100");
    let audio = decode(&url, "0:a:0");
    assert!(audio >= 120, "decoded {audio} AAC frames of 4 s");
}
