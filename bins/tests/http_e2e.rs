//! End to end: MistOutHTTP (standalone and under MistController) and the per-format binaries,
//! played with ffprobe/ffmpeg and raw sockets.
//!
//! The stream comes from [`ShmPublisher`]: an ffmpeg-made FLV file written into shared memory in
//! real time through mist_media::flv and mist_shm, as MistOutRTMP does for an RTMP publish.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One shared-memory directory for this test binary (the in-process publisher reads
/// `MIST_SHM_DIR`, so every test uses the same one, with its own stream names).
fn shm() -> &'static PathBuf {
    shared_shm("http")
}

/// The test video (20 s, 320x240), made once.
fn flv20() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let p = shm().join("src20.flv");
        make_flv(&p, "320x240", 20);
        p
    })
}

/// MistOutHTTP alone on a free port.
fn http_server(extra: &[&str]) -> (Proc, u16) {
    http_out(shm(), extra)
}

fn assert_h264_aac(streams: &[serde_json::Value], what: &str) {
    let v = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("{what}: no video in {streams:?}"));
    assert_eq!(v["codec_name"], "h264", "{what}");
    assert_eq!(v["width"], 320, "{what}");
    assert_eq!(v["height"], 240, "{what}");
    let a = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .unwrap_or_else(|| panic!("{what}: no audio in {streams:?}"));
    assert_eq!(a["codec_name"], "aac", "{what}");
}

#[test]
fn progressive_forms_decode() {
    shm();
    let long = shm().join("src60.flv");
    make_flv(&long, "320x240", 60);
    let _pub = ShmPublisher::start("prog", &long);
    let (_srv, port) = http_server(&[]);
    for ext in ["ts", "flv", "mp4", "fmp4", "mkv"] {
        let u = url(port, &format!("/prog.{ext}"));
        assert_h264_aac(&probe_streams(&u), &u);
        let (frames, size) = decode_video_frames(&u, Duration::from_secs(5));
        assert!(frames >= 100, "{u}: decoded only {frames} frames in 5 s");
        assert_eq!(size, "320x240", "{u}");
    }
}

#[test]
fn track_selection() {
    shm();
    let _pub = ShmPublisher::start("sel", flv20());
    let (_srv, port) = http_server(&[]);
    let s = probe_streams(&url(port, "/sel.flv?audio=none"));
    assert!(s.iter().all(|s| s["codec_type"] != "audio"), "{s:?}");
    assert!(s.iter().any(|s| s["codec_type"] == "video"), "{s:?}");
    let s = probe_streams(&url(port, "/sel.mp4?video=none"));
    assert!(s.iter().all(|s| s["codec_type"] != "video"), "{s:?}");
    assert!(s.iter().any(|s| s["codec_name"] == "aac"), "{s:?}");
    let s = probe_streams(&url(port, "/sel.flv?video=h264&audio=aac"));
    assert_h264_aac(&s, "by codec");
    // HEAD of a live route: the head only, and the connection stays usable.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"HEAD /sel.flv HTTP/1.1\r\n\r\nGET /crossdomain.xml HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("Content-Type: video/x-flv"),
        "{text}"
    );
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert!(!text.contains("FLV\x01"), "HEAD got a body");
    // HTTP/1.0: a close-delimited body (no chunk framing), starting with the FLV header.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /sel.flv HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let complete = |got: &[u8]| {
        let p = got.windows(4).position(|w| w == b"\r\n\r\n");
        matches!(p, Some(p) if got.len() >= p + 7)
    };
    while !complete(&got) {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let p = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&got[..p]);
    assert!(
        !head.contains("chunked") && head.contains("Connection: close"),
        "{head}"
    );
    assert_eq!(&got[p + 4..p + 7], b"FLV");
}

#[test]
fn info_json_shapes() {
    shm();
    let _pub = ShmPublisher::start("inf", flv20());
    let (_srv, port) = http_server(&["--formats", "FLV,MP4"]);
    let raw = http_raw(
        port,
        b"GET /json_inf.js HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Access-Control-Allow-Origin: *"));
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "live");
    assert_eq!(v["width"], 320);
    assert_eq!(v["height"], 240);
    let tracks = v["meta"]["tracks"].as_object().unwrap();
    assert!(tracks
        .values()
        .any(|t| t["type"] == "video" && t["codec"] == "H264" && t["width"] == 320));
    assert!(tracks
        .values()
        .any(|t| t["type"] == "audio" && t["codec"] == "AAC" && t["rate"] == 44100));
    let src = v["source"].as_array().unwrap();
    let urls: Vec<&str> = src.iter().filter_map(|s| s["url"].as_str()).collect();
    assert!(
        urls.contains(&"http://example.com:8080/inf.flv"),
        "{urls:?}"
    );
    assert!(
        urls.contains(&"http://example.com:8080/inf.mp4"),
        "{urls:?}"
    );
    assert!(
        !urls.iter().any(|u| u.ends_with(".ts")),
        "TS is not enabled: {urls:?}"
    );
    for s in src {
        assert!(
            s["type"].is_string()
                && s["relurl"].is_string()
                && s["priority"].is_number()
                && s["simul_tracks"].is_number()
        );
    }
    let raw = http_raw(
        port,
        b"GET /info_inf.js HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("mistvideo['inf'] = {"), "{text}");
    let raw = http_raw(
        port,
        b"GET /json_nothere.js HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(String::from_utf8_lossy(&raw).contains("\"error\""));
    // A disabled format is a clear 404.
    let raw = http_raw(
        port,
        b"GET /inf.ts HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 404") && text.contains("not enabled"),
        "{text}"
    );
}

#[test]
fn static_head_keepalive_range_and_acme() {
    shm();
    let (_srv, port) = http_server(&["--certbot", "tok123:validation-abc"]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Three requests on one connection, pipelined; the last closes.
    s.write_all(b"HEAD /crossdomain.xml HTTP/1.1\r\nHost: x\r\n\r\nGET /crossdomain.xml HTTP/1.1\r\nRange: bytes=0-4\r\n\r\nGET /.well-known/acme-challenge/tok123 HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let parts: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(parts.len(), 3, "{text}");
    assert!(
        parts[0].starts_with("200")
            && parts[0].contains("Content-Type: text/xml")
            && parts[0].ends_with("\r\n\r\n"),
        "{}",
        parts[0]
    );
    assert!(parts[0].contains("Connection: keep-alive"));
    assert!(
        parts[1].starts_with("206")
            && parts[1].contains("Content-Range: bytes 0-4/")
            && parts[1].ends_with("\r\n\r\n<?xml"),
        "{}",
        parts[1]
    );
    assert!(
        parts[2].starts_with("200") && parts[2].ends_with("\r\n\r\nvalidation-abc"),
        "{}",
        parts[2]
    );
    let raw = http_raw(
        port,
        b"GET /.well-known/acme-challenge/other HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(raw.starts_with(b"HTTP/1.1 404"));
    let raw = http_raw(
        port,
        b"GET /clientaccesspolicy.xml HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(
        raw.starts_with(b"HTTP/1.1 200")
            && String::from_utf8_lossy(&raw).contains("<access-policy>")
    );
}

#[test]
fn unknown_stream_and_unsupported_codec() {
    shm();
    let _pub = ShmPublisher::start("codecs", flv20());
    let (_srv, port) = http_server(&[]);
    let t0 = Instant::now();
    let raw = http_raw(
        port,
        b"GET /nosuchstream.flv HTTP/1.0\r\n\r\n",
        Duration::from_secs(15),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 404") && text.contains("stream not found"),
        "{text}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    // H.264 + AAC cannot go into WebM.
    let raw = http_raw(
        port,
        b"GET /codecs.webm HTTP/1.0\r\n\r\n",
        Duration::from_secs(15),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 415") && text.contains("WebM"),
        "{text}"
    );
}

/// Reads an HTTP/1.1 chunked body until its terminator; returns the body length.
fn read_chunked_to_end(s: &mut TcpStream) -> (usize, bool) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    loop {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
        if buf.ends_with(b"\r\n0\r\n\r\n") {
            return (buf.len(), true);
        }
    }
    (buf.len(), false)
}

#[test]
fn viewer_of_ending_stream_gets_clean_end() {
    shm();
    let short = shm().join("src4.flv");
    make_flv(&short, "320x240", 4);
    let publisher = ShmPublisher::start("ending", &short);
    let (_srv, port) = http_server(&[]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /ending.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    publisher.join();
    let (n, clean) = read_chunked_to_end(&mut s);
    assert!(clean, "no chunked terminator after {n} bytes");
    assert!(n > 10_000, "only {n} bytes");
}

#[test]
fn hostile_clients_cost_only_their_connection() {
    shm();
    let _pub = ShmPublisher::start("hostile", flv20());
    let (_srv, port) = http_server(&[]);
    let u = url(port, "/hostile.ts");
    let viewer = std::thread::spawn(move || decode_video_frames(&u, Duration::from_secs(6)));
    std::thread::sleep(Duration::from_millis(500));
    // Huge headers → 431.
    let mut big = b"GET /hostile.flv HTTP/1.1\r\n".to_vec();
    for i in 0..3000 {
        big.extend_from_slice(format!("X-Junk-{i}: {}\r\n", "y".repeat(20)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    assert!(http_raw(port, &big, Duration::from_secs(5)).starts_with(b"HTTP/1.1 431"));
    // 100 KB URL → 414.
    let mut long = b"GET /".to_vec();
    long.extend(vec![b'a'; 100_000]);
    long.extend_from_slice(b".flv HTTP/1.1\r\n\r\n");
    assert!(http_raw(port, &long, Duration::from_secs(5)).starts_with(b"HTTP/1.1 414"));
    // Binary garbage → 400 and close.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(http_raw(port, &garbage, Duration::from_secs(5)).starts_with(b"HTTP/1.1 400"));
    // A bogus chunked POST → refused, closed.
    let r = http_raw(
        port,
        b"POST /hostile.flv HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\nnot a chunk\r\n",
        Duration::from_secs(5),
    );
    assert!(
        r.starts_with(b"HTTP/1.1 501") || r.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    // A client that never finishes its request, and one that connects and says nothing.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /hostile.flv HTTP/1.1\r\nHost")
        .unwrap();
    let _idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A viewer that never reads.
    let mut stuck = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stuck
        .write_all(b"GET /hostile.flv HTTP/1.1\r\n\r\n")
        .unwrap();
    let (frames, size) = viewer.join().unwrap();
    assert_eq!(size, "320x240");
    assert!(
        frames >= 125,
        "the viewer decoded only {frames} frames in 6 s"
    );
    // The server still answers.
    assert!(http_raw(
        port,
        b"GET /crossdomain.xml HTTP/1.0\r\n\r\n",
        Duration::from_secs(5)
    )
    .starts_with(b"HTTP/1.1 200"));
}

#[test]
fn standalone_ts_flv_to_stdout_and_mp4_file() {
    shm();
    let _pub = ShmPublisher::start("alone", flv20());
    // MistOutTS -s alone - | ffprobe -, then the same with MistOutFLV.
    for bin in [
        env!("CARGO_BIN_EXE_MistOutTS"),
        env!("CARGO_BIN_EXE_MistOutFLV"),
        env!("CARGO_BIN_EXE_MistOutEBML"),
    ] {
        let mut out = Command::new(bin)
            .args(["-s", "alone", "-"])
            .env("MIST_SHM_DIR", shm())
            .env_remove("MIST_CONTROL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let probe = Command::new("timeout")
            .args([
                "15",
                "ffprobe",
                "-v",
                "error",
                "-show_streams",
                "-of",
                "json",
                "-",
            ])
            .stdin(out.stdout.take().unwrap())
            .output()
            .unwrap();
        let _ = out.kill();
        let _ = out.wait();
        let v: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
        assert_h264_aac(v["streams"].as_array().unwrap(), bin);
    }
    // MistOutMP4 -s alone file.mp4, stopped with SIGTERM after 3 s.
    let file = shm().join("rec.mp4");
    let child = Command::new(env!("CARGO_BIN_EXE_MistOutMP4"))
        .args(["-s", "alone"])
        .arg(&file)
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut child = Proc(child);
    let st = child.0.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    assert_h264_aac(&probe_streams(file.to_str().unwrap()), "MistOutMP4 file");
    // ts-exec:COMMAND pipes the stream into a command, run without a shell as MistServer does
    // (here a shell the command names, copying to a file); it gets end of input when the
    // output stops.
    let piped = shm().join("piped.ts");
    let child = Command::new(env!("CARGO_BIN_EXE_MistOutTS"))
        .args(["-s", "alone"])
        .arg(format!("ts-exec:sh -c 'cat > \"{}\"'", piped.display()))
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut child = Proc(child);
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    assert_h264_aac(&probe_streams(piped.to_str().unwrap()), "ts-exec:cat");
    // An unknown stream: exit 1 quickly.
    let st = Command::new(env!("CARGO_BIN_EXE_MistOutFLV"))
        .args(["-s", "nothing", "--wait", "1", "-"])
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
}

#[test]
fn capabilities_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_MistOutHTTP"))
        .arg("-j")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "HTTP");
    assert_eq!(v["optional"]["port"]["default"], 8080);
    assert_eq!(v["optional"]["port"]["option"], "--port");
    assert!(v["optional"]["certbot"]["option"].is_string());
    assert!(v.get("deps").is_none());
    for bin in [
        env!("CARGO_BIN_EXE_MistOutFLV"),
        env!("CARGO_BIN_EXE_MistOutTS"),
        env!("CARGO_BIN_EXE_MistOutMP4"),
        env!("CARGO_BIN_EXE_MistOutEBML"),
    ] {
        let out = Command::new(bin).arg("-j").output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["deps"], "HTTP", "{bin}");
        assert!(
            v["url_match"].as_array().is_some_and(|a| !a.is_empty()),
            "{bin}"
        );
    }
}

#[test]
fn under_controller_formats_follow_the_config() {
    shm();
    let ctl = Controller::start_http(
        serde_json::json!({"ctlhttp": {"name": "ctlhttp", "source": "push://"}}),
        serde_json::json!([{"connector": "FLV"}, {"connector": "MP4"}]),
        Some(shm()),
    );
    let port = ctl.http;
    // Not configured: refused by the controller at once.
    let t0 = Instant::now();
    let raw = http_raw(
        port,
        b"GET /unconfigured.flv HTTP/1.0\r\n\r\n",
        Duration::from_secs(15),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 404") && text.contains("not configured"),
        "{text}"
    );
    assert!(t0.elapsed() < Duration::from_secs(4));
    // Configured but nobody publishes: 503 after the wait.
    let raw = http_raw(
        port,
        b"GET /ctlhttp.flv HTTP/1.0\r\n\r\n",
        Duration::from_secs(15),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 503") && text.contains("offline"),
        "{text}"
    );
    // HTTPTS is not in the protocol list: /$.ts is not served.
    let raw = http_raw(
        port,
        b"GET /ctlhttp.ts HTTP/1.0\r\n\r\n",
        Duration::from_secs(15),
    );
    assert!(
        String::from_utf8_lossy(&raw).contains("not enabled"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // A viewer that asks before the publisher starts gets the stream once it does.
    let u = url(port, "/ctlhttp.flv");
    let viewer = std::thread::spawn(move || decode_video_frames(&u, Duration::from_secs(7)));
    std::thread::sleep(Duration::from_millis(300));
    let _pub = ShmPublisher::start("ctlhttp", flv20());
    let (frames, size) = viewer.join().unwrap();
    assert_eq!(size, "320x240");
    assert!(frames >= 100, "decoded only {frames} frames");
    assert_h264_aac(
        &probe_streams(&url(port, "/ctlhttp.mp4")),
        "mp4 under the controller",
    );
    // The per-format binaries got no listener of their own.
    let caps = ctl.api(&serde_json::json!({"capabilities": true}));
    assert_eq!(caps["capabilities"]["connectors"]["FLV"]["deps"], "HTTP");
    assert_eq!(caps["capabilities"]["connectors"]["HTTP"]["name"], "HTTP");
}

fn http_get_body(port: u16, path: &str) -> (String, Vec<u8>) {
    http_get_with(port, path, "", Duration::from_secs(20))
}

#[test]
fn hls_ts_segments_shared_and_decodable() {
    shm();
    let long = shm().join("src30.flv");
    make_flv(&long, "320x240", 30);
    let _pub = ShmPublisher::start("hlsx", &long);
    let (_srv, port) = http_server(&[]);
    let (head, master) = http_get_body(port, "/hls/hlsx/index.m3u8");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("application/vnd.apple.mpegurl"),
        "{head}"
    );
    let master = String::from_utf8(master).unwrap();
    assert!(
        master.starts_with("#EXTM3U") && master.contains("#EXT-X-STREAM-INF"),
        "{master}"
    );
    let variant = master
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap()
        .to_string();
    let (_, media) = http_get_body(port, &format!("/hls/hlsx/{variant}"));
    let media = String::from_utf8(media).unwrap();
    let seg = media
        .lines()
        .find(|l| l.ends_with(".ts"))
        .unwrap_or_else(|| panic!("{media}"))
        .to_string();
    let dir = variant.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let (h1, a) = http_get_body(port, &format!("/hls/hlsx/{dir}/{seg}"));
    let (_, b) = http_get_body(port, &format!("/hls/hlsx/{dir}/{seg}"));
    assert!(
        h1.starts_with("HTTP/1.1 200") && h1.contains("video/mp2t"),
        "{h1}"
    );
    assert!(
        a.len() > 10_000 && a == b,
        "segment muxed once, same bytes for everyone"
    );
    let u = url(port, "/hls/hlsx/index.m3u8");
    assert_h264_aac(&probe_streams(&u), &u);
    let (frames, size) = decode_video_frames(&u, Duration::from_secs(5));
    assert_eq!(size, "320x240");
    assert!(frames >= 100, "decoded only {frames} frames from HLS");
}

#[test]
fn rtmp_push_played_over_http() {
    let ctl = Controller::start_http(
        serde_json::json!({}),
        serde_json::json!([{"connector": "HTTPTS"}, {"connector": "FLV"}, {"connector": "MP4"}, {"connector": "HLS"}]),
        None,
    );
    let _pub = publish(&ctl.publish_url("live+rtmp"), "640x360", 40);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let a = ctl.api(&serde_json::json!({"active_streams": true}));
        if a["active_streams"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "live+rtmp"))
        {
            break;
        }
        assert!(Instant::now() < end, "the RTMP push never became active");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = ctl.http;
    for path in ["/live+rtmp.ts", "/live+rtmp.flv", "/live+rtmp.mp4"] {
        let u = url(port, path);
        let s = probe_streams(&u);
        let v = s
            .iter()
            .find(|s| s["codec_type"] == "video")
            .unwrap_or_else(|| panic!("{u}: {s:?}"));
        assert_eq!(
            (
                v["codec_name"].as_str(),
                v["width"].as_u64(),
                v["height"].as_u64()
            ),
            (Some("h264"), Some(640), Some(360)),
            "{u}"
        );
        assert!(s.iter().any(|s| s["codec_name"] == "aac"), "{u}: {s:?}");
    }
    let (frames, size) = decode_video_frames(&url(port, "/live+rtmp.ts"), Duration::from_secs(5));
    assert_eq!(size, "640x360");
    assert!(
        frames >= 100,
        "decoded only {frames} frames of the RTMP push over HTTP-TS"
    );
    let s = probe_streams(&url(port, "/live+rtmp.ts?audio=none"));
    assert!(s.iter().all(|s| s["codec_type"] != "audio"), "{s:?}");
    // The info JSON lists the RTMP play URL from the config.
    let (_, body) = http_get_body(port, "/json_live+rtmp.js");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let urls: Vec<&str> = v["source"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["url"].as_str())
        .collect();
    assert!(
        urls.iter()
            .any(|u| u.starts_with("rtmp://")
                && u.ends_with(&format!(":{}/play/live+rtmp", ctl.rtmp))),
        "{urls:?}"
    );
    assert!(
        urls.iter()
            .any(|u| u.ends_with("/hls/live+rtmp/index.m3u8")),
        "{urls:?}"
    );
}

#[test]
fn certbot_option_through_the_controller() {
    let ctl = Controller::start_http(serde_json::json!({}), serde_json::json!([]), None);
    let port = ctl.http;
    let old = serde_json::json!({"connector": "HTTP", "port": port, "interface": "127.0.0.1"});
    let new = serde_json::json!({"connector": "HTTP", "port": port, "interface": "127.0.0.1", "certbot": "tokTOK:valVAL"});
    ctl.api(&serde_json::json!({"updateprotocol": [old, new]}));
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let raw = std::panic::catch_unwind(|| {
            http_raw(
                port,
                b"GET /.well-known/acme-challenge/tokTOK HTTP/1.0\r\n\r\n",
                Duration::from_secs(3),
            )
        })
        .unwrap_or_default();
        if raw.starts_with(b"HTTP/1.1 200") && raw.ends_with(b"\r\n\r\nvalVAL") {
            break;
        }
        assert!(
            Instant::now() < end,
            "the challenge never answered: {}",
            String::from_utf8_lossy(&raw)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn viewer_continues_across_a_publisher_restart() {
    shm();
    let a = ShmPublisher::start("restart", flv20());
    let (_srv, port) = http_server(&[]);
    let u = url(port, "/restart.ts");
    let viewer = std::thread::spawn(move || decode_video_frames(&u, Duration::from_secs(8)));
    std::thread::sleep(Duration::from_secs(3));
    drop(a); // detach: the stream waits for a returning publisher
    let _b = ShmPublisher::start("restart", flv20());
    let (frames, size) = viewer.join().unwrap();
    assert_eq!(size, "320x240");
    assert!(
        frames >= 150,
        "decoded only {frames} frames across the restart"
    );
}

#[test]
fn users_table_counts_every_http_viewer() {
    shm();
    let _pub = ShmPublisher::start("count", flv20());
    let (_srv, port) = http_server(&[]);
    let open = || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET /count.ts HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        assert!(c.read(&mut buf).unwrap() > 0);
        c
    };
    let http_users = || {
        mist_shm::users("count")
            .iter()
            .filter(|u| u.connector == "HTTPTS")
            .count()
    };
    let viewers: Vec<TcpStream> = (0..3).map(|_| open()).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(http_users(), 3, "one users-table slot per viewer");
    let hosts: Vec<String> = mist_shm::users("count")
        .into_iter()
        .filter(|u| u.connector == "HTTPTS")
        .map(|u| u.host)
        .collect();
    assert!(hosts.iter().all(|h| h == "127.0.0.1"), "{hosts:?}");
    drop(viewers);
    let end = Instant::now() + Duration::from_secs(5);
    while http_users() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http_users(), 0, "slots are released when viewers leave");
}

#[test]
fn webm_and_mkv_of_a_vp9_opus_stream() {
    shm();
    let src = shm().join("src_vp9.webm");
    make_webm(&src, "320x240", 30);
    let _pub = ShmPublisher::start("vp9", &src);
    let (_srv, port) = http_server(&[]);
    for ext in ["webm", "mkv"] {
        let u = url(port, &format!("/vp9.{ext}"));
        let s = probe_streams(&u);
        let v = s
            .iter()
            .find(|s| s["codec_type"] == "video")
            .unwrap_or_else(|| panic!("{u}: {s:?}"));
        assert_eq!(
            (v["codec_name"].as_str(), v["width"].as_u64()),
            (Some("vp9"), Some(320)),
            "{u}"
        );
        assert!(s.iter().any(|s| s["codec_name"] == "opus"), "{u}: {s:?}");
        let (frames, size) = decode_video_frames(&u, Duration::from_secs(5));
        assert_eq!(size, "320x240", "{u}");
        assert!(frames >= 100, "{u}: decoded only {frames} frames");
    }
    // MistOutEBML to a .webm file writes the WebM DocType, to .mkv Matroska.
    for ext in ["webm", "mkv"] {
        let file = shm().join(format!("rec_vp9.{ext}"));
        let child = Command::new(env!("CARGO_BIN_EXE_MistOutEBML"))
            .args(["-s", "vp9"])
            .arg(&file)
            .env("MIST_SHM_DIR", shm())
            .env_remove("MIST_CONTROL")
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let mut child = Proc(child);
        assert_eq!(child.0.wait().unwrap().code(), Some(0));
        let head = std::fs::read(&file).unwrap();
        let doc = if ext == "webm" {
            &b"webm"[..]
        } else {
            &b"matroska"[..]
        };
        assert!(
            head[..64.min(head.len())]
                .windows(doc.len())
                .any(|w| w == doc),
            "{ext}: DocType missing"
        );
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=format_name",
                "-of",
                "csv=p=0",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("webm"),
            "{ext}"
        );
    }
    // TS cannot carry VP9: only the Opus track goes out.
    let s = probe_streams(&url(port, "/vp9.ts"));
    assert!(s.iter().all(|s| s["codec_type"] != "video"), "{s:?}");
}

/// Audio frames ffmpeg decodes from `url` in `secs` seconds of media; panics on any error.
fn decode_audio(url: &str, secs: u32) -> usize {
    let out = Command::new("timeout")
        .args(["30", "ffmpeg", "-hide_banner", "-v", "error", "-i", url])
        .args([
            "-t",
            &secs.to_string(),
            "-map",
            "0:a:0",
            "-f",
            "framemd5",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim().is_empty(),
        "{url}: ffmpeg reported errors:\n{err}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

#[test]
fn audio_only_mp3_and_aac() {
    shm();
    // H.264 + MP3 in FLV, made by ffmpeg's libmp3lame.
    let mp3src = shm().join("src_mp3.flv");
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "libmp3lame", "-b:a", "128k"])
        .args(["-f", "flv"])
        .arg(&mp3src)
        .status()
        .unwrap();
    assert!(st.success());
    let _p1 = ShmPublisher::start("withmp3", &mp3src);
    let _p2 = ShmPublisher::start("withaac", flv20());
    let (_srv, port) = http_server(&[]);
    for (path, codec, per_s) in [("/withmp3.mp3", "mp3", 38), ("/withaac.aac", "aac", 43)] {
        let u = url(port, path);
        let s = probe_streams(&u);
        assert_eq!(s.len(), 1, "{u}: {s:?}");
        assert_eq!(s[0]["codec_name"], codec, "{u}: {s:?}");
        assert_eq!(s[0]["sample_rate"], "44100", "{u}: {s:?}");
        // 4 s of media, every frame decodable (MP3: 1152 samples a frame, AAC: 1024).
        let frames = decode_audio(&u, 4);
        assert!(frames >= per_s * 4 - 10, "{u}: only {frames} frames in 4 s");
    }
    // The standalone binary writes the same to stdout.
    let out = Command::new("timeout")
        .args(["5", env!("CARGO_BIN_EXE_MistOutAAC"), "-s", "withaac", "-"])
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .output()
        .unwrap();
    assert!(out.stdout.len() > 10_000, "{} bytes", out.stdout.len());
    assert_eq!(out.stdout[0], 0xFF, "ADTS sync word");
    assert_eq!(out.stdout[1] & 0xF6, 0xF0, "ADTS sync word");
    // The stream info lists the audio-only URL for players (after the audio+video sources).
    let (_, body) = http_get_body(port, "/json_withaac.js");
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let src = info["source"].as_array().unwrap();
    let aac = src
        .iter()
        .position(|s| s["type"] == "html5/audio/aac")
        .unwrap_or_else(|| panic!("{info}"));
    assert!(src[aac]["relurl"] == "/withaac.aac" && aac > 0, "{info}");
    assert!(
        !src.iter().any(|s| s["type"] == "html5/audio/mpeg"),
        "{info}"
    );
    // A stream without MP3 audio cannot be sent as MP3.
    let raw = http_raw(
        port,
        b"GET /withaac.mp3 HTTP/1.0\r\n\r\n",
        Duration::from_secs(15),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 415") && text.contains("MP3"),
        "{text}"
    );
}
