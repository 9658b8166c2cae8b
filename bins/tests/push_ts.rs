//! Pushes of MPEG-TS (and Matroska) to the network and to commands (INTERFACES §4.3):
//! `tsudp://` unicast and multicast, `tstcp://`, `http://…/x.ts` with PUT, `ts-exec:` and
//! `mkv-exec:`. ffmpeg publishes into mist-rs over RTMP; the controller (or MistOutTS by hand)
//! pushes the stream out; ffmpeg/ffprobe receive it as independent peers and judge it. Also the
//! track selectors of a push target (`?video=…&audio=…`).

mod common;

use common::{
    ca_and_leaf, collector, ensure_lo_multicast, free_port, free_udp_port, listening,
    packet_counts, publish, rtmp_receiver, serial, wait_stream, wait_until, Controller, Proc,
    TempDir,
};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Starts a push and waits until push_list shows bytes sent; returns its id.
fn push_start(c: &Controller, stream: &str, target: &str) -> serde_json::Value {
    let v = c.api(&serde_json::json!({"push_start": [stream, target]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    let mut id = serde_json::Value::Null;
    wait_until(
        &format!("bytes to {target} in push_list"),
        Duration::from_secs(30),
        || {
            c.push_list().iter().any(|p| {
                let hit = p[2] == target && p[5]["bytes"].as_u64().unwrap_or(0) > 0;
                if hit {
                    id = p[0].clone();
                }
                hit
            })
        },
    );
    id
}

/// Waits for a process to exit by itself: its exit code (-1 for a signal).
fn wait_exit(p: &mut Proc, within: Duration) -> Option<i32> {
    common::wait_exit(&mut p.0, within).map(|st| st.code().unwrap_or(-1))
}

/// ffmpeg decoding a whole file: its errors (empty when it decodes cleanly).
fn decode_errors(file: &Path) -> String {
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An ffmpeg receiver: reads `input` (with `in_args` before it) and copies it into `out`.
fn ffmpeg_receiver(in_args: &[&str], input: &str, out: &Path) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(in_args)
        .args(["-i", input, "-c", "copy", "-f", "mpegts"])
        .arg(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg (scripts/test installs it)");
    Proc(child)
}

fn payloads(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `ffprobe udp://239.…` (no file in between) reads a `tsudp://` multicast push started with
/// push_start: H.264 320x240 and AAC. An ffmpeg receiver of the same group then gets frames
/// of both (at least 1 s: UDP may drop datagrams on a loaded machine).
#[test]
fn tsudp_multicast_push_is_read_by_ffprobe() {
    let _g = serial();
    let group = "239.1.1.7";
    ensure_lo_multicast(group);
    let dir = TempDir::new("pushts-mc");
    let c = Controller::start(serde_json::json!({}));
    let _pub = publish(&c.publish_url("live+mc"), "320x240", 60);
    wait_stream(&c, "live+mc");
    let port = free_udp_port();
    let target = format!("tsudp://{group}:{port}/lo");
    push_start(&c, "live+mc", &target);
    let url = format!("udp://{group}:{port}?localaddr=127.0.0.1&timeout=10000000");
    let out = Command::new("timeout")
        .args([
            "30",
            "ffprobe",
            "-v",
            "error",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 320 && s["height"] == 240),
        "{streams:?}"
    );
    assert!(
        streams.iter().any(|s| s["codec_name"] == "aac"),
        "{streams:?}"
    );
    // Frames, not just headers: 4 s copied by an ffmpeg member of the group.
    let file = dir.path().join("mc.ts");
    let mut rx = ffmpeg_receiver(&["-t", "4"], &url, &file);
    assert_eq!(wait_exit(&mut rx, Duration::from_secs(40)), Some(0));
    // UDP may lose datagrams on a loaded machine: at least 1 s of each, not a clean decode.
    let (video, audio, _) = packet_counts(&file);
    assert!(video >= 25, "{video} video packets in 4 s");
    assert!(audio >= 40, "{audio} audio packets in 4 s");
}

/// `MistOutTS -s STREAM tsudp://127.0.0.1:PORT` by hand (no controller): ffmpeg reading the
/// unicast port gets video and audio; SIGTERM ends the push with exit 0. With nobody
/// listening at first, the push goes on (a receiver may come later).
#[test]
fn tsudp_unicast_standalone() {
    let _g = serial();
    let dir = TempDir::new("pushts-uc");
    let c = Controller::start(serde_json::json!({}));
    let _pub = publish(&c.publish_url("live+uc"), "320x240", 60);
    wait_stream(&c, "live+uc");
    let port = free_udp_port();
    let mut push = Proc(
        Command::new(env!("CARGO_BIN_EXE_MistOutTS"))
            .args(["-s", "live+uc"])
            .arg(format!("tsudp://127.0.0.1:{port}"))
            .env("MIST_SHM_DIR", &c.shm)
            .env_remove("MIST_CONTROL")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Nobody listens for 2 s: ICMP port unreachable must not end the push.
    std::thread::sleep(Duration::from_secs(2));
    assert!(push.0.try_wait().unwrap().is_none(), "the push gave up");
    let file = dir.path().join("uc.ts");
    let url = format!("udp://127.0.0.1:{port}?timeout=10000000");
    let mut rx = ffmpeg_receiver(&["-t", "4"], &url, &file);
    assert_eq!(wait_exit(&mut rx, Duration::from_secs(40)), Some(0));
    let (video, audio, codecs) = packet_counts(&file);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(video >= 75 && audio >= 100, "{video} / {audio}");
    unsafe { libc::kill(push.pid() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut push, Duration::from_secs(10)), Some(0));
}

/// push_start to `tstcp://` of an ffmpeg TCP listener: push_stop ends the connection cleanly
/// (the receiver exits by itself), OUTPUT_END (connector TS, exit 0) fires and no
/// RECORDING_END; the received file has ≥ 3 s of H.264 + AAC that decode without errors.
#[test]
fn tstcp_push_to_ffmpeg_listener() {
    let _g = serial();
    let dir = TempDir::new("pushts-tcp");
    let (oh, output_ends) = collector(dir.path(), "output_end");
    let (rh, rec_ends) = collector(dir.path(), "recording_end");
    let c = Controller::start(serde_json::json!({}));
    c.api(&serde_json::json!({"config": {"triggers": {
        "OUTPUT_END": [{"handler": oh.to_str().unwrap(), "sync": false}],
        "RECORDING_END": [{"handler": rh.to_str().unwrap(), "sync": false}]
    }}}));
    let _pub = publish(&c.publish_url("live+tcp"), "320x240", 60);
    wait_stream(&c, "live+tcp");
    let port = free_port();
    let file = dir.path().join("tcp.ts");
    let mut rx = ffmpeg_receiver(
        &["-f", "mpegts"],
        &format!("tcp://127.0.0.1:{port}?listen=1"),
        &file,
    );
    wait_until("the receiver to listen", Duration::from_secs(10), || {
        listening(port)
    });
    let target = format!("tstcp://127.0.0.1:{port}");
    let id = push_start(&c, "live+tcp", &target);
    std::thread::sleep(Duration::from_secs(4));
    c.api(&serde_json::json!({"push_stop": [id]}));
    assert_eq!(
        wait_exit(&mut rx, Duration::from_secs(20)),
        Some(0),
        "the receiver did not see the end of the push"
    );
    wait_until("OUTPUT_END", Duration::from_secs(20), || {
        !payloads(&output_ends).is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let p = &payloads(&output_ends)[0];
    let lines: Vec<&str> = p.split('\n').collect();
    assert_eq!(lines.len(), 13, "{p:?}");
    assert_eq!(&lines[..3], &["live+tcp", target.as_str(), "TS"], "{p:?}");
    assert!(lines[3].parse::<u64>().unwrap() > 10_000, "{p:?}");
    assert!(lines[7].parse::<u64>().unwrap() >= 3000, "{p:?}");
    assert_eq!(lines[10], "0", "{p:?}");
    assert!(payloads(&rec_ends).is_empty());
    let (video, audio, _) = packet_counts(&file);
    assert!(video >= 75 && audio >= 100, "{video} / {audio}");
    assert_eq!(decode_errors(&file), "");
}

/// push_start to `http://127.0.0.1:PORT/up/live.ts`: an ffmpeg HTTP server taking one PUT
/// (`-listen 1 -method PUT`) gets the chunked body; push_stop sends the last chunk and the
/// receiver ends by itself with a file that decodes. A target nobody listens on is an error in
/// push_list (exit 1), not a crash loop.
#[test]
fn http_put_push_to_ffmpeg_server() {
    let _g = serial();
    let dir = TempDir::new("pushts-put");
    let c = Controller::start(serde_json::json!({}));
    let _pub = publish(&c.publish_url("live+put"), "320x240", 60);
    wait_stream(&c, "live+put");
    let port = free_port();
    let file = dir.path().join("put.ts");
    let mut rx = ffmpeg_receiver(
        &["-listen", "1", "-method", "PUT", "-f", "mpegts"],
        &format!("http://127.0.0.1:{port}/up/live.ts"),
        &file,
    );
    wait_until("the receiver to listen", Duration::from_secs(10), || {
        listening(port)
    });
    let target = format!("http://127.0.0.1:{port}/up/$stream.ts");
    let id = push_start(&c, "live+put", &target);
    let l = c.push_list();
    let p = l.iter().find(|p| p[0] == id).unwrap();
    // The variables are evaluated in what push_list shows as written to.
    assert_eq!(
        p[3],
        format!("http://127.0.0.1:{port}/up/live+put.ts"),
        "{p}"
    );
    std::thread::sleep(Duration::from_secs(4));
    c.api(&serde_json::json!({"push_stop": [id]}));
    assert_eq!(
        wait_exit(&mut rx, Duration::from_secs(20)),
        Some(0),
        "the receiver did not see the end of the body"
    );
    let (video, audio, codecs) = packet_counts(&file);
    assert!(codecs.contains(&"aac".to_string()), "{codecs:?}");
    assert!(video >= 75 && audio >= 100, "{video} / {audio}");
    assert_eq!(decode_errors(&file), "");
    // Nobody at this address: the push ends with an error in push_list.
    let dead = format!("http://127.0.0.1:{}/x.ts", free_port());
    let v = c.api(&serde_json::json!({"push_start": ["live+put", dead]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    wait_until(
        "the failed push in push_list",
        Duration::from_secs(20),
        || {
            c.push_list().iter().any(|p| {
                p[2] == dead.as_str()
                    && p[5]["state"] == "error"
                    && p[5]["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("connect"))
            })
        },
    );
}

/// `ts-exec:` and `mkv-exec:` pushes pipe into ffmpeg children (run without a shell: the
/// quoted path with a space stays one argument); push_stop closes their stdin and they write
/// files that decode.
#[test]
fn exec_pushes_pipe_into_ffmpeg() {
    let _g = serial();
    let dir = TempDir::new("pushts-exec");
    let c = Controller::start(serde_json::json!({}));
    let _pub = publish(&c.publish_url("live+ex"), "320x240", 60);
    wait_stream(&c, "live+ex");
    let mut ids = Vec::new();
    let mut files = Vec::new();
    for (scheme, fmt) in [("ts-exec", "mpegts"), ("mkv-exec", "matroska")] {
        let file = dir.path().join(format!("from {scheme}.ts"));
        let target = format!(
            "{scheme}:ffmpeg -hide_banner -loglevel error -y -f {fmt} -i - -c copy -f mpegts '{}'",
            file.display()
        );
        ids.push(push_start(&c, "live+ex", &target));
        files.push(file);
    }
    std::thread::sleep(Duration::from_secs(4));
    for id in ids {
        c.api(&serde_json::json!({"push_stop": [id]}));
    }
    wait_until("the pushes to end", Duration::from_secs(20), || {
        c.push_list().iter().all(|p| p[5]["state"] != "active")
    });
    for f in files {
        assert!(f.exists(), "{f:?} not written");
        let (video, audio, codecs) = packet_counts(&f);
        assert!(
            codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
            "{f:?}: {codecs:?}"
        );
        assert!(video >= 75 && audio >= 100, "{f:?}: {video} / {audio}");
        assert_eq!(decode_errors(&f), "", "{f:?}");
    }
}

/// Track selectors on push targets (INTERFACES §4.4, the rules of HTTP and RTMP viewers):
/// `tstcp://…?audio=none` sends only the video, and an `rtmp://…/app/key?video=none` restream
/// (to an `ffmpeg -listen 1` RTMP receiver) only the audio.
#[test]
fn push_track_selectors() {
    let _g = serial();
    let dir = TempDir::new("pushts-sel");
    let c = Controller::start(serde_json::json!({}));
    let _pub = publish(&c.publish_url("live+sel"), "320x240", 60);
    wait_stream(&c, "live+sel");
    // TS over TCP without audio.
    let port = free_port();
    let ts = dir.path().join("video.ts");
    let mut rx = ffmpeg_receiver(
        &["-f", "mpegts"],
        &format!("tcp://127.0.0.1:{port}?listen=1"),
        &ts,
    );
    wait_until("the TCP receiver", Duration::from_secs(10), || {
        listening(port)
    });
    let target = format!("tstcp://127.0.0.1:{port}?audio=none");
    let id = push_start(&c, "live+sel", &target);
    // RTMP without video.
    let rport = free_port();
    let flv = dir.path().join("audio.flv");
    let mut rrx = rtmp_receiver(rport, &flv);
    let rtarget = format!("rtmp://127.0.0.1:{rport}/app/key?video=none");
    let rid = push_start(&c, "live+sel", &rtarget);
    std::thread::sleep(Duration::from_secs(4));
    c.api(&serde_json::json!({"push_stop": [id, rid]}));
    assert_eq!(wait_exit(&mut rx, Duration::from_secs(20)), Some(0));
    assert_eq!(wait_exit(&mut rrx, Duration::from_secs(20)), Some(0));
    let (video, audio, codecs) = packet_counts(&ts);
    assert_eq!(codecs, ["h264"], "tstcp ?audio=none");
    assert!(video >= 75 && audio == 0, "{video} / {audio}");
    let (video, audio, codecs) = packet_counts(&flv);
    assert_eq!(codecs, ["aac"], "rtmp ?video=none");
    assert!(audio >= 100 && video == 0, "{video} / {audio}");
}

/// An HTTPS server (python3's http.server in TLS) that takes PUTs with a chunked body and
/// stores the body of the first complete one in `out` (its path in `out.path`), answering 201.
/// Handshakes that fail (an untrusted client) are skipped.
const PUT_SERVER: &str = r#"
import http.server, os, ssl, sys
port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_PUT(self):
        with open(out + ".part", "wb") as f:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                self.send_response(411); self.send_header("Content-Length", "0"); self.end_headers()
                return
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                f.write(self.rfile.read(size))
                self.rfile.readline()
        with open(out + ".path", "w") as p:
            p.write(self.path)
        os.rename(out + ".part", out)
        self.send_response(201); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
while not os.path.exists(out):
    srv.handle_request()
"#;

/// `MistOutTS -s STREAM https://localhost:PORT/up/$stream.ts` against a local TLS server: with
/// the server's CA unknown the push fails (exit 1, nothing stored); trusted through
/// MIST_TLS_CA_FILE the chunked PUT arrives whole after SIGTERM (exit 0) and ffprobe reads
/// the uploaded file: H.264 and AAC, 3 s or more, no decode errors.
#[test]
fn https_put_push_to_tls_server() {
    let _g = serial();
    let dir = TempDir::new("pushts-https");
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let c = Controller::start(serde_json::json!({}));
    let _pub = publish(&c.publish_url("live+tls"), "320x240", 60);
    wait_stream(&c, "live+tls");
    let port = free_port();
    let file = dir.path().join("up.ts");
    let script = dir.path().join("put_server.py");
    std::fs::write(&script, PUT_SERVER).unwrap();
    let _srv = Proc(
        Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .args([&cert, &key, &file])
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 (scripts/test installs it)"),
    );
    wait_until(
        "the HTTPS server to listen",
        Duration::from_secs(10),
        || listening(port),
    );
    let pusher = |ca: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_MistOutTS"));
        cmd.args(["-s", "live+tls"])
            .arg(format!("https://localhost:{port}/up/$stream.ts"))
            .env("MIST_SHM_DIR", &c.shm)
            .env_remove("MIST_CONTROL")
            .env_remove("MIST_TLS_CA_FILE")
            .stdin(Stdio::null());
        if let Some(ca) = ca {
            cmd.env("MIST_TLS_CA_FILE", ca);
        }
        Proc(cmd.spawn().unwrap())
    };
    // Not trusted: refused, nothing uploaded.
    let mut bad = pusher(None);
    assert_eq!(wait_exit(&mut bad, Duration::from_secs(30)), Some(1));
    assert!(!file.exists());
    // Trusted through the private CA.
    let mut push = pusher(Some(&ca));
    std::thread::sleep(Duration::from_secs(4));
    assert!(push.0.try_wait().unwrap().is_none(), "the push ended early");
    unsafe { libc::kill(push.pid() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut push, Duration::from_secs(20)), Some(0));
    wait_until("the upload", Duration::from_secs(10), || file.exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("up.ts.path")).unwrap(),
        "/up/live+tls.ts"
    );
    let (video, audio, codecs) = packet_counts(&file);
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );
    assert!(video >= 75 && audio >= 100, "{video} / {audio}");
    assert_eq!(decode_errors(&file), "");
}
