//! End to end: ffmpeg publishes over RTMP into MistController, MistOutRTSP (started by the
//! controller from its `RTSP` protocol entry) serves the stream; ffprobe, ffmpeg and GStreamer
//! play it over interleaved TCP and UDP; hostile requests lose their own connection only;
//! ffmpeg publishes over RTSP (TCP and UDP; over TCP it gets receiver reports).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A controller with an RTSP protocol entry on a free port, and a 640x360 H.264 + AAC publish
/// into `live+STREAM` running for `seconds`.
fn setup(stream: &str, seconds: u32) -> (Controller, u16, Proc) {
    let (ctl, rtsp) = rtsp::controller(serde_json::json!({}));
    let p = publish(&ctl.publish_url(stream), "640x360", seconds);
    wait_for_stream(&ctl, stream);
    (ctl, rtsp, p)
}

fn wait_for_stream(ctl: &Controller, name: &str) {
    ctl.wait_active(name, Duration::from_secs(15));
}

fn rtsp_url(port: u16, stream: &str) -> String {
    rtsp::url(port, stream)
}

/// ffprobe's streams of an RTSP URL over `transport`.
fn probe(url: &str, transport: &str) -> Vec<serde_json::Value> {
    let (ok, streams, err) = rtsp::ffprobe(url, transport);
    assert!(
        ok,
        "ffprobe -rtsp_transport {transport} {url} failed: {err}"
    );
    streams
}

/// Decodes 4 s of media of `url` over `transport` with ffmpeg; returns (video frames, audio
/// frames) decoded.
fn decode(url: &str, transport: &str) -> (usize, usize) {
    (
        rtsp::decode(url, transport, "0:v:0", 4),
        rtsp::decode(url, transport, "0:a:0", 4),
    )
}

fn check_tracks(streams: &[serde_json::Value]) {
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream in {streams:?}"));
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .unwrap_or_else(|| panic!("no audio stream in {streams:?}"));
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["width"], 640);
    assert_eq!(video["height"], 360);
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "44100");
}

#[test]
fn play_over_tcp_and_udp() {
    let (_ctl, port, _pub) = setup("live+rtsp", 60);
    let url = rtsp_url(port, "live+rtsp");
    for transport in ["tcp", "udp"] {
        check_tracks(&probe(&url, transport));
        let (video, audio) = decode(&url, transport);
        // 4 s of 25 fps video and 44.1 kHz AAC (43 frames/s).
        assert!(
            video >= 90,
            "{transport}: decoded only {video} video frames of 4 s"
        );
        assert!(
            audio >= 150,
            "{transport}: decoded only {audio} audio frames of 4 s"
        );
    }
}

#[test]
fn unknown_stream_is_not_found() {
    let (_ctl, rtsp) = rtsp::controller(serde_json::json!({}));
    let mut s = rtsp::connect(rtsp);
    s.write_all(
        format!("DESCRIBE rtsp://127.0.0.1:{rtsp}/nosuchstream RTSP/1.0\r\nCSeq: 2\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("RTSP/1.0 403") || text.starts_with("RTSP/1.0 404"),
        "{text}"
    );
    assert!(text.contains("CSeq: 2"), "{text}");
}

#[test]
fn gstreamer_plays() {
    let (_ctl, port, _pub) = setup("live+gst", 60);
    let url = rtsp_url(port, "live+gst");
    for protocols in ["tcp", "udp"] {
        let out = Command::new("timeout")
            .args(["40", "gst-launch-1.0", "-q"])
            .arg("rtspsrc")
            .arg(format!("location={url}"))
            .arg(format!("protocols={protocols}"))
            .args(["!", "rtph264depay", "!", "h264parse", "!"])
            .args(["fakesink", "num-buffers=50"])
            .output()
            .expect("run gst-launch-1.0 (scripts/test installs gstreamer1.0-tools)");
        assert!(
            out.status.success(),
            "gst-launch-1.0 rtspsrc protocols={protocols} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Sends `data` on a new connection and reads until the server closes it (or 30 s pass).
fn send_and_read_to_close(port: u16, data: &[u8]) -> (Vec<u8>, bool) {
    let mut s = rtsp::connect(port);
    // The server may close before it has read everything: a reset is a close too.
    let _ = s.write_all(data);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (got, false)
            }
            Err(_) => return (got, true),
        }
    }
}

#[test]
fn hostile_input_closes_only_that_connection() {
    let (ctl, port, _pub) = setup("live+hostile", 60);
    let url = rtsp_url(port, "live+hostile");
    // A viewer plays the whole time.
    let viewer = {
        let url = url.clone();
        std::thread::spawn(move || {
            let out = Command::new("timeout")
                .args(["60", "ffmpeg", "-hide_banner", "-loglevel", "error"])
                .args(["-rtsp_transport", "tcp", "-i", &url, "-t", "15"])
                .args(["-map", "0:v:0", "-f", "framemd5", "-"])
                .stdin(Stdio::null())
                .output()
                .expect("run ffmpeg");
            rtsp::framemd5_lines(&out.stdout)
        })
    };
    std::thread::sleep(Duration::from_secs(2));

    // A body far beyond any limit.
    let (got, closed) = send_and_read_to_close(
        port,
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999999\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&got);
    assert!(closed, "huge Content-Length: connection left open");
    assert!(text.starts_with("RTSP/1.0 413"), "{text}");

    // 10 000 headers.
    let mut many = String::from("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n");
    for i in 0..10_000 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    let (got, closed) = send_and_read_to_close(port, many.as_bytes());
    let text = String::from_utf8_lossy(&got);
    assert!(closed, "10 000 headers: connection left open");
    // The server closes with most of the headers unread, which may reset the connection before
    // the answer is read; when it arrives it must be the error.
    assert!(
        text.is_empty() || text.starts_with("RTSP/1.0 400") || text.starts_with("RTSP/1.0 414"),
        "{text}"
    );

    // An interleaved frame on a channel nobody set up.
    let (_, closed) = send_and_read_to_close(port, b"$\x07\x00\x04abcdOPTIONS * RTSP/1.0\r\n\r\n");
    assert!(
        closed,
        "frame on a channel not set up: connection left open"
    );

    // A frame whose length lies (longer than what follows): the requests after it are swallowed
    // as frame data and the connection is closed when the frame never completes.
    let describe = format!(
        "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\nSETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    );
    let mut lying = TcpStream::connect(("127.0.0.1", port)).unwrap();
    lying
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    lying.write_all(describe.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&head).contains("CSeq: 2") {
        let n = lying.read(&mut buf).unwrap();
        assert!(n > 0, "closed before SETUP was answered");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&head).matches("200 OK").count() >= 2,
        "{}",
        String::from_utf8_lossy(&head)
    );
    lying
        .write_all(b"$\x01\xff\xff\x80\xc9\x00\x01PLAY x RTSP/1.0\r\nCSeq: 3\r\n\r\n")
        .unwrap();
    let closed = loop {
        match lying.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false
            }
            Err(_) => break true,
        }
    };
    assert!(closed, "lying interleaved length: connection left open");

    let decoded = viewer.join().unwrap();
    assert!(
        decoded >= 200,
        "the other viewer decoded only {decoded} frames of 15 s"
    );

    // Each closed connection left a warning in the log.
    let v = ctl.api(&serde_json::json!({"log": true}));
    let lines: Vec<String> = v["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l[1] == "WARN")
        .filter_map(|l| l[2].as_str().map(str::to_string))
        .filter(|m| m.contains("connection closed"))
        .collect();
    for what in [
        "exceeds the limit",
        "head",
        "not set up",
        "stayed incomplete",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(what)),
            "no log line about {what:?} in {lines:#?}"
        );
    }
}

/// ffmpeg publishing testsrc2 + sine (H.264 + AAC) over RTSP (`transport` tcp or udp).
fn publish_rtsp(url: &str, seconds: u32, transport: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"])
        .args(["-tune", "zerolatency", "-pix_fmt", "yuv420p", "-c:a", "aac"])
        .args(["-f", "rtsp", "-rtsp_transport", transport, url])
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    Proc(child)
}

#[test]
fn publish_over_tcp_plays_over_rtmp_and_rtsp() {
    publish_plays("tcp");
}

#[test]
fn publish_over_udp_plays_over_rtmp_and_rtsp() {
    publish_plays("udp");
}

fn publish_plays(transport: &str) {
    let (ctl, rtsp) = rtsp::controller(serde_json::json!({}));
    let _pub = publish_rtsp(&rtsp_url(rtsp, "live+pub"), 60, transport);
    wait_for_stream(&ctl, "live+pub");
    check_tracks(&probe_streams(&ctl.play_url("live+pub")));
    let (frames, size) = decode_video_frames(&ctl.play_url("live+pub"), Duration::from_secs(4));
    assert!(
        frames >= 90,
        "{transport}: decoded only {frames} video frames of 4 s"
    );
    assert_eq!(size, "640x360");
    let (video, audio) = decode(&rtsp_url(rtsp, "live+pub"), transport);
    assert!(
        video >= 90 && audio >= 150,
        "{transport}: {video} / {audio} frames"
    );

    // The same push acceptance as RTMP: a stream that is not configured is refused.
    let mut refused = publish_rtsp(&rtsp_url(rtsp, "nosuchstream"), 3, transport);
    let status = refused.0.wait().unwrap();
    assert!(!status.success(), "push to nosuchstream was accepted");
}

/// A publisher over interleaved TCP gets RTCP receiver reports on its tracks' RTCP channels:
/// ffmpeg's RTSP muxer reads them off the connection and says so at trace level ("skipping RTP
/// packet len=": it skips whatever arrives interleaved). Nothing else is sent to a publisher
/// interleaved.
#[test]
fn tcp_publisher_gets_receiver_reports() {
    let (ctl, rtsp) = rtsp::controller(serde_json::json!({}));
    let dir = TempDir::new("rtsp-rr");
    let log = dir.path().join("ffmpeg.log");
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "trace", "-re"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"])
        .args(["-t", "30", "-c:a", "pcm_alaw"])
        .args(["-f", "rtsp", "-rtsp_transport", "tcp"])
        .arg(rtsp_url(rtsp, "live+rrtcp"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start ffmpeg");
    let _pub = Proc(child);
    wait_for_stream(&ctl, "live+rrtcp");
    // The first reports go 2.5 s after RECORD, then every 5 s.
    wait_until(
        "ffmpeg reading a receiver report",
        Duration::from_secs(20),
        || {
            let text = std::fs::read(&log).unwrap_or_default();
            String::from_utf8_lossy(&text).contains("skipping RTP packet len=")
        },
    );
}

/// A VoD file plays from its start over TCP and UDP; a PLAY with a Range starts at the keyframe
/// at or before it (hand-written and ffprobe's seek).
#[test]
fn vod_file_plays_from_the_start() {
    let dir = TempDir::new("rtsp-vod");
    let file = dir.path().join("clip.mp4");
    // veryfast: B-frames, so RTP times (presentation) and decode order differ.
    make_mp4(&file, "320x240", 8);
    let (_ctl, rtsp) = rtsp::controller(
        serde_json::json!({"clip": {"name": "clip", "source": file.to_str().unwrap()}}),
    );
    let url = rtsp_url(rtsp, "clip");
    let streams = probe(&url, "tcp");
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 320),
        "{streams:?}"
    );
    for transport in ["tcp", "udp"] {
        let (video, audio) = decode(&url, transport);
        assert!(
            video >= 90 && audio >= 150,
            "{transport}: {video} video / {audio} audio frames of 4 s"
        );
    }

    // PLAY with a Range (keyframes every 2 s): playback starts at the keyframe at or before
    // 5.5 s; the answer's Range names it, and RTP-Info the first packet of each track.
    let (start, info, first) = range_play(rtsp, "clip", "npt=5.5-");
    assert!((3.4..=5.5).contains(&start), "Range answered npt={start}");
    // Set up in SDP order, video first: channels 0 and 2.
    let (vseq, vtime) = info[0];
    let video = first[&0];
    assert_eq!(video, (vseq, vtime), "first video packet vs RTP-Info");
    assert!(
        (f64::from(vtime) / 90_000.0 - start).abs() < 0.002,
        "video rtptime {vtime} is not npt {start}"
    );
    let (aseq, atime) = info[1];
    let audio = first[&2];
    assert_eq!(audio.0, aseq, "first audio packet vs RTP-Info");
    let skew = (f64::from(audio.1) - f64::from(atime)) / 44_100.0;
    assert!(
        (-0.3..0.5).contains(&skew),
        "audio starts {skew} s off its rtptime"
    );
    // A Range that does not parse is refused; a live-only unit too.
    let (status, _) = range_status(rtsp, "clip", "smpte=0:10:00-");
    assert_eq!(status, 457);

    // ffprobe seeking (PAUSE, then PLAY with Range) sees media from the keyframe before 5.5 s
    // (read to the end: ffprobe 5.1 stops an interval with an end at a first packet without a
    // time, which its RTP depacketiser gives; those are skipped).
    let out = Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error", "-rtsp_transport", "tcp"])
        .args(["-read_intervals", "5.5%", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0", &url])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    let first = times.first().copied().unwrap_or_else(|| {
        panic!(
            "ffprobe -read_intervals got no packets: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        (start - 0.05..=start + 0.3).contains(&first),
        "ffprobe's first packet at {first} s, the keyframe at {start} s"
    );
}

/// (sequence number, RTP time) of a packet.
type SeqTime = (u16, u32);
/// What [`range_play`] saw: the answered start (s), RTP-Info of video and audio, the first
/// packet by channel.
type RangePlay = (f64, [SeqTime; 2], std::collections::HashMap<u8, SeqTime>);

/// A hand-written play of `stream` (one video and one audio track) over interleaved TCP with
/// `Range: {range}`, the video set up on channels 0-1 and the audio on 2-3: the start the
/// answer's Range names (s), the RTP-Info (seq, rtptime) of video and audio, and the (seq, RTP
/// time) of the first RTP packet on each RTP channel.
fn range_play(port: u16, stream: &str, range: &str) -> RangePlay {
    let uri = rtsp_url(port, stream);
    let mut s = rtsp::connect(port);
    let (status, _, body) = rtsp_exchange(
        &mut s,
        &format!("DESCRIBE {uri} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert_eq!(status, 200);
    // (kind, control) of each media section.
    let mut sections: Vec<(String, String)> = Vec::new();
    for l in body.lines() {
        if let Some(m) = l.strip_prefix("m=") {
            sections.push((m.split(' ').next().unwrap().to_string(), String::new()));
        } else if let (Some(c), Some(last)) = (l.strip_prefix("a=control:"), sections.last_mut()) {
            last.1 = c.trim().to_string();
        }
    }
    sections.sort_by_key(|(kind, _)| kind != "video");
    let controls: Vec<String> = sections.into_iter().map(|(_, c)| c).collect();
    assert_eq!(controls.len(), 2, "{body}");
    let mut session = String::new();
    for (i, c) in controls.iter().enumerate() {
        let extra = if session.is_empty() {
            String::new()
        } else {
            format!("Session: {session}\r\n")
        };
        let (status, head, _) = rtsp_exchange(
            &mut s,
            &format!(
                "SETUP {uri}/{c} RTSP/1.0\r\nCSeq: {}\r\n{extra}Transport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n\r\n",
                2 + i,
                2 * i,
                2 * i + 1
            ),
        );
        assert_eq!(status, 200, "{head}");
        session = header_of(&head, "Session")
            .split(';')
            .next()
            .unwrap()
            .to_string();
    }
    let (status, head, _) = rtsp_exchange(
        &mut s,
        &format!("PLAY {uri}/ RTSP/1.0\r\nCSeq: 9\r\nSession: {session}\r\nRange: {range}\r\n\r\n"),
    );
    assert_eq!(status, 200, "{head}");
    let answered = header_of(&head, "Range");
    let start: f64 = answered
        .strip_prefix("npt=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("Range: {answered}"));
    let mut info = [(0u16, 0u32); 2];
    for part in header_of(&head, "RTP-Info").split(',') {
        let mut url = "";
        let (mut seq, mut time) = (None, None);
        for kv in part.trim().split(';') {
            match kv.split_once('=') {
                Some(("url", v)) => url = v,
                Some(("seq", v)) => seq = v.parse().ok(),
                Some(("rtptime", v)) => time = v.parse().ok(),
                _ => {}
            }
        }
        let control = url.rsplit('/').next().unwrap();
        let i = controls
            .iter()
            .position(|c| c == control)
            .expect("RTP-Info url");
        info[i] = (seq.unwrap(), time.unwrap());
    }
    let mut first = std::collections::HashMap::new();
    while first.len() < 2 {
        let mut h = [0u8; 4];
        s.read_exact(&mut h).unwrap();
        assert_eq!(h[0], b'$', "not an interleaved frame");
        let mut p = vec![0u8; u16::from_be_bytes([h[2], h[3]]) as usize];
        s.read_exact(&mut p).unwrap();
        if h[1] % 2 == 0 && p.len() >= 12 {
            first.entry(h[1]).or_insert((
                u16::from_be_bytes([p[2], p[3]]),
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            ));
        }
    }
    (start, info, first)
}

/// The status of a PLAY with `Range: {range}` after DESCRIBE and one SETUP.
fn range_status(port: u16, stream: &str, range: &str) -> (u16, String) {
    let uri = rtsp_url(port, stream);
    let mut s = rtsp::connect(port);
    let (status, _, body) = rtsp_exchange(
        &mut s,
        &format!("DESCRIBE {uri} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert_eq!(status, 200);
    let control = body
        .lines()
        .find_map(|l| l.strip_prefix("a=control:trackID="))
        .map(|c| format!("trackID={}", c.trim()))
        .expect("a track control");
    let (status, head, _) = rtsp_exchange(
        &mut s,
        &format!("SETUP {uri}/{control} RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
    );
    assert_eq!(status, 200, "{head}");
    let session = header_of(&head, "Session")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, head, _) = rtsp_exchange(
        &mut s,
        &format!("PLAY {uri}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\nRange: {range}\r\n\r\n"),
    );
    (status, head)
}

/// Sends `req` and reads the answer: (status, head, body).
fn rtsp_exchange(s: &mut TcpStream, req: &str) -> (u16, String, String) {
    let r = rtsp::exchange(s, req);
    let body = r.text();
    (r.status, r.head, body)
}

fn header_of<'a>(head: &'a str, name: &str) -> &'a str {
    header(head, name).unwrap_or("")
}

#[test]
fn udp_flood_does_not_disturb_a_udp_viewer() {
    let (_ctl, port, _pub) = setup("live+flood", 60);
    let url = rtsp_url(port, "live+flood");
    // The server's UDP ports, from a SETUP of our own.
    let mut s = rtsp::connect(port);
    s.write_all(format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\nSETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=40000-40001\r\n\r\n").as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let server_port: u16 = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before SETUP was answered");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(i) = text.find("server_port=") {
            let rest = &text[i + 12..];
            if let Some(end) = rest.find(|c: char| !c.is_ascii_digit()) {
                break rest[..end].parse().unwrap();
            }
        }
    };
    let viewer = {
        let url = url.clone();
        std::thread::spawn(move || decode(&url, "udp"))
    };
    // Random datagrams (and RTP-looking ones) at both server ports while the viewer plays.
    let flood = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x: u32 = 12345;
    let end = Instant::now() + Duration::from_secs(6);
    while Instant::now() < end {
        for _ in 0..200 {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            let mut d = vec![0u8; 20 + (x % 1200) as usize];
            for (i, b) in d.iter_mut().enumerate() {
                *b = (x >> (i % 24)) as u8;
            }
            d[0] = 0x80 | (x as u8 & 0x3f);
            let _ = flood.send_to(&d, ("127.0.0.1", server_port + (x % 2) as u16));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (video, audio) = viewer.join().unwrap();
    assert!(
        video >= 90 && audio >= 150,
        "under a UDP flood: {video} video / {audio} audio frames of 4 s"
    );
}

/// Stream, ffmpeg video arguments, audio arguments, expected video and audio codec names.
type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, &'a str);

/// Other codecs through RTSP both ways: ffmpeg publishes each pair over RTSP, ffprobe and ffmpeg
/// play it back over RTSP (packetisers and depacketisers of HEVC, Opus, G.711 and MP3).
#[test]
fn hevc_opus_pcma_mp3_round_trip() {
    let (ctl, rtsp) = rtsp::controller(serde_json::json!({}));
    let cases: [Case; 3] = [
        (
            "live+hevc",
            &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error:keyint=50:bframes=0",
            ],
            &["-ar", "48000", "-c:a", "libopus"],
            "hevc",
            "opus",
        ),
        (
            "live+alaw",
            &[
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "50",
                "-tune",
                "zerolatency",
            ],
            &["-ar", "8000", "-c:a", "pcm_alaw"],
            "h264",
            "pcm_alaw",
        ),
        (
            "live+mp3",
            &[
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "50",
                "-tune",
                "zerolatency",
            ],
            &["-ar", "44100", "-c:a", "libmp3lame"],
            "h264",
            "mp3",
        ),
    ];
    for (stream, video, audio, vname, aname) in cases {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440"])
            .args(["-t", "30", "-pix_fmt", "yuv420p"])
            .args(video)
            .args(audio)
            .args(["-f", "rtsp", "-rtsp_transport", "tcp"])
            .arg(rtsp_url(rtsp, stream))
            .stdin(Stdio::null())
            .spawn()
            .expect("start ffmpeg");
        let _p = Proc(child);
        wait_for_stream(&ctl, stream);
        let url = rtsp_url(rtsp, stream);
        let streams = probe(&url, "tcp");
        let names: Vec<&str> = streams
            .iter()
            .filter_map(|s| s["codec_name"].as_str())
            .collect();
        assert!(
            names.contains(&vname) && names.contains(&aname),
            "{stream}: {names:?}"
        );
        let (v, a) = decode(&url, "tcp");
        assert!(
            v >= 90 && a >= 20,
            "{stream}: {v} video / {a} audio frames of 4 s"
        );
    }
}
