//! MistOutRTMP run alone (no controller, or a fake one): ffmpeg publishes, ffprobe plays (two viewers, one joining
//! late for the GOP burst), a hostile peer sends garbage meanwhile.

mod common;

use common::{free_port, serial, wait_port, Proc, TempDir};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

// The ffmpeg tests run one at a time (`common::serial`): several real-time x264 encoders at once
// on a small machine would make their timing assumptions flaky.

/// Whether `tool -version` runs.
fn have(tool: &str) -> bool {
    common::tool_runs(tool, "-version")
}

fn wait_listening(port: u16) {
    assert!(
        wait_port(port, Duration::from_secs(10)),
        "MistOutRTMP did not listen"
    );
}

fn probe(url: &str) -> Output {
    Command::new("timeout")
        .args([
            "30",
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "compact",
            url,
        ])
        .output()
        .unwrap()
}

/// ffmpeg pushing `secs` s of testsrc2 (`size`, a keyframe every `gop` frames; with a sine
/// as AAC when `audio`) to `url` in real time, its stdin closed; the caller spawns it.
fn ffmpeg_push(size: &str, gop: &str, secs: &str, audio: bool, url: &str) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
    ])
    .arg(format!("testsrc2=size={size}:rate=25"));
    if audio {
        c.args(["-f", "lavfi", "-i", "sine"]);
    }
    c.args(["-c:v", "libx264", "-g", gop]);
    if audio {
        c.args(["-c:a", "aac"]);
    }
    c.args(["-t", secs, "-f", "flv", url]).stdin(Stdio::null());
    c
}

/// MistOutRTMP standalone on loopback `port`, its shared memory in `dir`, no controller.
fn rtmp_server(port: u16, dir: &Path) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_MistOutRTMP"))
            .args(["-p", &port.to_string(), "-i", "127.0.0.1"])
            .env("MIST_SHM_DIR", dir)
            .env_remove("MIST_CONTROL")
            .spawn()
            .unwrap(),
    )
}

/// ffprobe reading the first 2 s of `url` (killed after `limit` s): `entries` of each stream,
/// one compact line each.
fn probe_2s(url: &str, limit: &str, entries: &str) -> Output {
    Command::new("timeout")
        .args([limit, "ffprobe", "-v", "error", "-read_intervals", "%+2"])
        .args([
            "-count_frames",
            "-show_entries",
            entries,
            "-of",
            "compact",
            url,
        ])
        .output()
        .unwrap()
}

fn field(line: &str, key: &str) -> Option<String> {
    line.split('|')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn ffmpeg_publish_ffprobe_play() {
    assert!(
        have("ffmpeg") && have("ffprobe"),
        "ffmpeg/ffprobe not installed (scripts/test installs it)"
    );
    let _serial = serial();
    let scratch = TempDir::new("rtmp-e2e");
    let dir: PathBuf = scratch.path().to_path_buf();
    let port = free_port();
    let server = Proc(
        Command::new(env!("CARGO_BIN_EXE_MistOutRTMP"))
            .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-g", "4"])
            .env("MIST_SHM_DIR", &dir)
            .env_remove("MIST_CONTROL")
            .spawn()
            .unwrap(),
    );
    wait_listening(port);

    let publisher = ffmpeg_push(
        "640x360",
        "50",
        "6",
        true,
        &format!("rtmp://127.0.0.1:{port}/live/live+alice"),
    )
    .spawn()
    .unwrap();
    let mut publisher = Proc(publisher);

    // A hostile peer: a valid C0 then garbage. It must cost only its own connection.
    let mut evil = TcpStream::connect(("127.0.0.1", port)).unwrap();
    evil.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    evil.write_all(&[3u8; 1537]).unwrap();
    evil.write_all(&[0xa5u8; 1536 + 4096]).unwrap();
    let mut sink = Vec::new();
    let _ = evil.read_to_end(&mut sink); // the server answers S0S1S2 and then closes on the garbage
    assert!(sink.len() >= 3073, "server answered the handshake");

    std::thread::sleep(Duration::from_millis(1500));
    let url = format!("rtmp://127.0.0.1:{port}/play/live+alice");
    let late = {
        let url = url.clone();
        std::thread::spawn(move || {
            // ffmpeg -re with x264's lookahead runs about 1.5 s behind the wall clock: at 4.5 s the
            // 2 s keyframe exists, so this viewer starts there.
            std::thread::sleep(Duration::from_millis(3000));
            probe(&url)
        })
    };
    let first = probe(&url);
    let late = late.join().unwrap();
    let status = publisher.0.wait().unwrap();
    assert!(status.success(), "ffmpeg publish failed: {status}");

    let mut counts = Vec::new();
    for (who, out) in [("first viewer", &first), ("late viewer", &late)] {
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("{who}: {text}{}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = text.lines().collect();
        let video = lines
            .iter()
            .find(|l| field(l, "codec_name").as_deref() == Some("h264"))
            .unwrap_or_else(|| panic!("{who}: no h264 stream"));
        assert_eq!(field(video, "width").as_deref(), Some("640"), "{who}");
        assert_eq!(field(video, "height").as_deref(), Some("360"), "{who}");
        let frames: u32 = field(video, "nb_read_frames")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(frames >= 50, "{who}: only {frames} video frames decoded");
        counts.push(frames);
        assert!(
            lines
                .iter()
                .any(|l| field(l, "codec_name").as_deref() == Some("aac")),
            "{who}: no aac stream"
        );
    }
    // The late viewer starts at the newest keyframe, not at the beginning of the stream.
    assert!(
        counts[1] < counts[0],
        "late viewer got {} frames, first {}",
        counts[1],
        counts[0]
    );
    drop(server);
}

/// With MIST_CONTROL set, MistOutRTMP asks the controller before accepting a push or a play and
/// uses the stream name it answers. A fake controller answers here: pushes need app "secret".
#[test]
fn controller_decides_push_and_play() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    assert!(
        have("ffmpeg") && have("ffprobe"),
        "ffmpeg/ffprobe not installed (scripts/test installs it)"
    );
    let _serial = serial();
    let scratch = TempDir::new("rtmp-ctl");
    let dir: PathBuf = scratch.path().to_path_buf();
    let sock_path = dir.join("control.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    {
        let requests = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let mut line = String::new();
                if BufReader::new(&conn).read_line(&mut line).is_err() {
                    continue;
                }
                let req: serde_json::Value = serde_json::from_str(&line).unwrap();
                let answer = match (req["cmd"].as_str(), req["app"].as_str()) {
                    (Some("push"), Some("secret")) | (Some("play"), _) => {
                        serde_json::json!({"ok": true, "stream": "renamed+x"})
                    }
                    _ => serde_json::json!({"ok": false, "error": "bad push password"}),
                };
                requests.lock().unwrap().push(req);
                let _ = conn.write_all(format!("{answer}\n").as_bytes());
            }
        });
    }
    let port = free_port();
    let server = Proc(
        Command::new(env!("CARGO_BIN_EXE_MistOutRTMP"))
            .args(["-p", &port.to_string(), "-i", "127.0.0.1"])
            .env("MIST_SHM_DIR", &dir)
            .env("MIST_CONTROL", &sock_path)
            .spawn()
            .unwrap(),
    );
    wait_listening(port);
    let publish = |app: &str| {
        ffmpeg_push(
            "320x240",
            "25",
            "5",
            true,
            &format!("rtmp://127.0.0.1:{port}/{app}/cam1"),
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
    };
    // Wrong password: refused, ffmpeg fails.
    let mut wrong = Proc(publish("wrong"));
    let st = wrong.0.wait().unwrap();
    assert!(!st.success(), "push with a wrong password must fail");
    let mut good = Proc(publish("secret"));
    std::thread::sleep(Duration::from_millis(2000));
    let out = probe_2s(
        &format!("rtmp://127.0.0.1:{port}/play/whatever"),
        "20",
        "stream=codec_name,width,height,nb_read_frames",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("viewer: {text}");
    assert!(
        text.contains("codec_name=h264|width=320|height=240"),
        "viewer got the renamed stream"
    );
    assert!(good.0.wait().unwrap().success());
    let reqs = requests.lock().unwrap().clone();
    assert!(reqs.iter().any(|r| r["cmd"] == "push"
        && r["app"] == "wrong"
        && r["stream"] == "cam1"
        && r["connector"] == "RTMP"));
    assert!(reqs.iter().any(|r| r["cmd"] == "push"
        && r["app"] == "secret"
        && r["url"].as_str() == Some(&format!("rtmp://127.0.0.1:{port}/secret/cam1")[..])));
    assert!(reqs
        .iter()
        .any(|r| r["cmd"] == "play" && r["stream"] == "whatever"));
    drop(server);
}

#[test]
fn capabilities_version_and_bad_arguments() {
    let bin = env!("CARGO_BIN_EXE_MistOutRTMP");
    let out = Command::new(bin).arg("-j").output().unwrap();
    assert!(out.status.success());
    let caps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(caps["name"], "RTMP");
    for k in ["desc", "codecs", "methods", "push_urls", "priority"] {
        assert!(caps.get(k).is_some(), "capabilities lack {k}");
    }
    let port = &caps["optional"]["port"];
    assert_eq!(
        (
            port["option"].as_str(),
            port["short"].as_str(),
            port["default"].as_u64()
        ),
        (Some("--port"), Some("p"), Some(1935))
    );
    assert_eq!(caps["optional"]["interface"]["default"], "0.0.0.0");
    let v = Command::new(bin).arg("--version").output().unwrap();
    assert!(v.status.success() && String::from_utf8_lossy(&v.stdout).contains("MistOutRTMP"));
    assert_eq!(
        Command::new(bin)
            .arg("--bogus")
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code(),
        Some(2)
    );
    // A port that is taken: exit code 1.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(bin)
        .args(["-p", &p, "-i", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("FAIL MistOutRTMP: cannot listen"));
}

/// Drives a ClientSession over a blocking socket until `done` says so.
fn drive(
    sock: &mut TcpStream,
    c: &mut mist_media::rtmp::ClientSession,
    mut done: impl FnMut(&mist_media::rtmp::ClientEvent) -> bool,
) {
    let t = Instant::now();
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(e) = c.poll().unwrap() {
            if let mist_media::rtmp::ClientEvent::Refused(r) = &e {
                panic!("refused: {r}");
            }
            if done(&e) {
                sock.write_all(&c.take_output()).unwrap();
                return;
            }
        }
        sock.write_all(&c.take_output()).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "session did not get ready"
        );
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "server closed");
        c.feed(&buf[..n]);
    }
}

/// A viewer that stops reading is disconnected once its backlog passes the bound, and the publisher
/// and the stream carry on.
#[test]
fn slow_viewer_is_disconnected() {
    let _serial = serial();
    use bytes::Bytes;
    use mist_media::rtmp::{ClientEvent, ClientMode, ClientSession};
    use mist_media::{Codec, Frame, Track};
    const FLV: &[u8] =
        include_bytes!("../../crates/media/tests/fixtures/flv/testsrc_320x240_1s.flv");

    let scratch = TempDir::new("rtmp-slow");
    let dir: PathBuf = scratch.path().to_path_buf();
    let port = free_port();
    let server = Proc(
        Command::new(env!("CARGO_BIN_EXE_MistOutRTMP"))
            .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-g", "5"])
            .env("MIST_SHM_DIR", &dir)
            .env_remove("MIST_CONTROL")
            .spawn()
            .unwrap(),
    );
    wait_listening(port);

    // The avcC of the ffmpeg fixture describes the track; the frames are 1 MiB of filler NAL units.
    let mut d = mist_media::flv::Demuxer::new();
    d.feed(FLV);
    let mut video: Option<Track> = None;
    while let Some(t) = d.next_tag().unwrap() {
        if let Some(tr) = t.converted.track.filter(|t| t.codec == Codec::H264) {
            video = Some(tr);
        }
    }
    let video = video.unwrap();
    let mut payload = vec![0u8; 1 << 20];
    payload[..4].copy_from_slice(&((1u32 << 20) - 4).to_be_bytes());
    payload[4] = 0x65; // IDR slice header byte
    let payload = Bytes::from(payload);

    let mut pubsock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut publisher = ClientSession::new(
        "live",
        &format!("rtmp://127.0.0.1:{port}/live"),
        "big",
        ClientMode::Publish,
        1,
    );
    drive(&mut pubsock, &mut publisher, |e| {
        matches!(e, ClientEvent::Ready { .. })
    });
    publisher.send_tracks(std::slice::from_ref(&video)).unwrap();
    let frame = |i: i64| Frame {
        track: video.id,
        dts: i * 40,
        pts_offset: 0,
        keyframe: i % 10 == 0,
        data: payload.clone(),
    };
    publisher.send_frame(&video, &frame(0)).unwrap();
    pubsock.write_all(&publisher.take_output()).unwrap();

    let mut viewsock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    viewsock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut viewer = ClientSession::new(
        "play",
        &format!("rtmp://127.0.0.1:{port}/play"),
        "big",
        ClientMode::Play,
        2,
    );
    drive(&mut viewsock, &mut viewer, |e| {
        matches!(e, ClientEvent::Ready { .. })
    });
    // The viewer stops reading; the publisher sends 60 MiB more.
    for i in 1..=60 {
        publisher.send_frame(&video, &frame(i)).unwrap();
        pubsock.write_all(&publisher.take_output()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    // The server closed the viewer: reading drains what was buffered and then hits the end.
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0usize;
    let closed = loop {
        match viewsock.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(closed, "slow viewer still connected after {total} bytes");
    assert!(
        total < 60 << 20,
        "the viewer got everything ({total} bytes): no backlog bound"
    );
    // The publisher is still connected and a fresh viewer still gets the stream.
    publisher.send_frame(&video, &frame(61)).unwrap();
    pubsock.write_all(&publisher.take_output()).unwrap();
    let mut v2 = TcpStream::connect(("127.0.0.1", port)).unwrap();
    v2.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut viewer2 = ClientSession::new(
        "play",
        &format!("rtmp://127.0.0.1:{port}/play"),
        "big",
        ClientMode::Play,
        3,
    );
    drive(
        &mut v2,
        &mut viewer2,
        |e| matches!(e, ClientEvent::Track(t) if t.width == 320),
    );
    drop(server);
}

/// The publisher is killed mid-stream and a new one (another picture size) takes the same name: a
/// viewer that stays connected sees the new picture, and a new viewer gets it at once.
#[test]
fn killed_publisher_replaced_while_viewer_watches() {
    assert!(
        have("ffmpeg") && have("ffprobe"),
        "ffmpeg/ffprobe not installed (scripts/test installs it)"
    );
    let _serial = serial();
    let scratch = TempDir::new("rtmp-kill");
    let dir: PathBuf = scratch.path().to_path_buf();
    let port = free_port();
    let server = rtmp_server(port, &dir);
    wait_listening(port);
    let publish = |size: &str| {
        Proc(
            ffmpeg_push(
                size,
                "25",
                "20",
                false,
                &format!("rtmp://127.0.0.1:{port}/live/live+k"),
            )
            .spawn()
            .unwrap(),
        )
    };
    let url = format!("rtmp://127.0.0.1:{port}/play/live+k");
    let mut first = publish("320x240");
    std::thread::sleep(Duration::from_millis(2500));
    // A viewer that stays through the switch: it writes the frame sizes it decodes.
    let watcher = Command::new("timeout")
        .args([
            "12",
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "frame=width",
            "-select_streams",
            "v",
            "-of",
            "csv=p=0",
            &url,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let _second = publish("640x360");
    std::thread::sleep(Duration::from_millis(3500));
    let late = probe_2s(&url, "20", "stream=width,height,nb_read_frames");
    let text = String::from_utf8_lossy(&late.stdout);
    assert!(
        text.contains("width=640|height=360"),
        "new viewer got {text}"
    );
    let out = watcher.wait_with_output_fix();
    let widths: Vec<&str> = out.lines().collect();
    assert!(
        widths.contains(&"320"),
        "watcher never saw the first publisher: {widths:?}"
    );
    assert!(
        widths.contains(&"640"),
        "watcher never saw the second publisher: {:?}",
        &widths[widths.len().saturating_sub(5)..]
    );
    drop(server);
}

trait WaitOutput {
    fn wait_with_output_fix(self) -> String;
}
impl WaitOutput for Child {
    fn wait_with_output_fix(mut self) -> String {
        let mut s = String::new();
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        let _ = self.wait();
        s
    }
}

/// A viewer that connects before the publisher waits for the stream (up to 10 s) instead of being
/// refused.
#[test]
fn viewer_waits_for_the_publisher() {
    assert!(
        have("ffmpeg") && have("ffprobe"),
        "ffmpeg/ffprobe not installed (scripts/test installs it)"
    );
    let _serial = serial();
    let scratch = TempDir::new("rtmp-wait");
    let dir: PathBuf = scratch.path().to_path_buf();
    let port = free_port();
    let server = rtmp_server(port, &dir);
    wait_listening(port);
    let url = format!("rtmp://127.0.0.1:{port}/play/early");
    let viewer = std::thread::spawn(move || {
        probe_2s(&url, "25", "stream=codec_name,width,height,nb_read_frames")
    });
    std::thread::sleep(Duration::from_millis(2000));
    let mut publisher = Proc(
        ffmpeg_push(
            "320x240",
            "25",
            "5",
            false,
            &format!("rtmp://127.0.0.1:{port}/live/early"),
        )
        .spawn()
        .unwrap(),
    );
    let out = viewer.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("codec_name=h264|width=320|height=240"),
        "early viewer got {text:?}"
    );
    assert!(publisher.0.wait().unwrap().success());
    drop(server);
}

/// Forty viewers of one stream: each receives, from a keyframe on, exactly the frames that were
/// published (same order, times and bytes), through the per-process shared encodings.
#[test]
fn many_viewers_get_exactly_the_published_frames() {
    use mist_media::rtmp::{ClientEvent, ClientMode, ClientSession};
    use mist_media::{Frame, Track};
    const FLV: &[u8] =
        include_bytes!("../../crates/media/tests/fixtures/flv/testsrc_320x240_1s.flv");
    const VIEWERS: usize = 40;
    const LOOPS: i64 = 6;
    let _serial = serial();

    let scratch = TempDir::new("rtmp-many");
    let dir: PathBuf = scratch.path().to_path_buf();
    let port = free_port();
    let server = rtmp_server(port, &dir);
    wait_listening(port);

    // ffmpeg's 1 s of H.264 + AAC, repeated LOOPS times with shifted times.
    let mut d = mist_media::flv::Demuxer::new();
    d.feed(FLV);
    let (mut tracks, mut frames): (Vec<Track>, Vec<Frame>) = (Vec::new(), Vec::new());
    while let Some(t) = d.next_tag().unwrap() {
        tracks.extend(t.converted.track);
        frames.extend(t.converted.frame);
    }
    let published: Vec<Frame> = (0..LOOPS)
        .flat_map(|i| {
            frames.iter().map(move |f| Frame {
                dts: f.dts + 1000 * i,
                ..f.clone()
            })
        })
        .collect();

    let mut pubsock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut publisher = ClientSession::new(
        "live",
        &format!("rtmp://127.0.0.1:{port}/live"),
        "many",
        ClientMode::Publish,
        9,
    );
    drive(&mut pubsock, &mut publisher, |e| {
        matches!(e, ClientEvent::Ready { .. })
    });
    publisher.send_tracks(&tracks).unwrap();
    let per_loop = frames.len();
    let mut send = |range: std::ops::Range<usize>, publisher: &mut ClientSession| {
        for f in &published[range] {
            let t = tracks.iter().find(|t| t.id == f.track).unwrap();
            publisher.send_frame(t, f).unwrap();
        }
        pubsock.write_all(&publisher.take_output()).unwrap();
    };
    send(0..per_loop / 2, &mut publisher);
    std::thread::sleep(Duration::from_millis(300));

    let viewers: Vec<_> = (0..VIEWERS)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut c = ClientSession::new(
                    "play",
                    &format!("rtmp://127.0.0.1:{port}/play"),
                    "many",
                    ClientMode::Play,
                    100 + i as u64,
                );
                let mut got: Vec<Frame> = Vec::new();
                let last_dts = 1000 * (LOOPS - 1) + 960;
                drive(&mut s, &mut c, |e| {
                    if let ClientEvent::Frame(f) = e {
                        got.push(f.clone());
                        return f.track == 1 && f.dts == last_dts;
                    }
                    false
                });
                got
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    for l in 0..(2 * LOOPS as usize - 1) {
        let start = per_loop / 2 + l * per_loop / 2;
        let end = (start + per_loop / 2).min(published.len());
        send(start..end, &mut publisher);
        std::thread::sleep(Duration::from_millis(100));
    }
    for v in viewers {
        let got = v.join().unwrap();
        assert!(
            got[0].keyframe && got[0].track == 1,
            "viewer starts at a video keyframe"
        );
        let at = published
            .iter()
            .position(|f| f == &got[0])
            .expect("first frame was published");
        assert_eq!(
            &published[at..at + got.len()],
            &got[..],
            "viewer frames differ from the published ones"
        );
        // ... up to the last video frame published.
        assert_eq!(got.last(), published.iter().rev().find(|f| f.track == 1));
    }
    drop(server);
}

/// Push mode against a real third-party server (nginx-rtmp from Debian): ffmpeg publishes into
/// MistOutRTMP, `MistOutRTMP -s src rtmp://nginx/live/dst` pushes it on, ffprobe and our own
/// ClientSession play it back from nginx.
#[test]
fn push_to_nginx_rtmp() {
    use mist_media::rtmp::{ClientEvent, ClientMode, ClientSession};
    let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
    assert!(
        have("ffmpeg") && have("ffprobe") && std::path::Path::new(module).exists(),
        "ffmpeg/ffprobe or nginx-rtmp (libnginx-mod-rtmp) not installed (scripts/test installs it)"
    );
    let _serial = serial();
    let scratch = TempDir::new("rtmp-nginx");
    let dir: PathBuf = scratch.path().to_path_buf();
    let (pa, pn) = (free_port(), free_port());
    let conf = format!(
        "load_module {module};\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{pn}; chunk_size 4096; application live {{ live on; record off; }} }} }}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let _nginx = Proc(
        Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let server = rtmp_server(pa, &dir);
    wait_listening(pa);
    wait_listening(pn);
    let mut publisher = Proc(
        ffmpeg_push(
            "640x360",
            "25",
            "8",
            true,
            &format!("rtmp://127.0.0.1:{pa}/live/src"),
        )
        .spawn()
        .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut pusher = Proc(
        Command::new(env!("CARGO_BIN_EXE_MistOutRTMP"))
            .args(["-s", "src", &format!("rtmp://127.0.0.1:{pn}/live/dst")])
            .env("MIST_SHM_DIR", &dir)
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(2500));
    let out = probe_2s(
        &format!("rtmp://127.0.0.1:{pn}/live/dst"),
        "20",
        "stream=codec_name,width,height,nb_read_frames",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("ffprobe via nginx: {text}");
    assert!(
        text.contains("codec_name=h264|width=640|height=360"),
        "no h264 640x360 via nginx"
    );
    assert!(text.contains("codec_name=aac"), "no aac via nginx");

    // Our client session playing from nginx.
    let mut s = TcpStream::connect(("127.0.0.1", pn)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut c = ClientSession::new(
        "live",
        &format!("rtmp://127.0.0.1:{pn}/live"),
        "dst",
        ClientMode::Play,
        4,
    );
    let (mut video, mut frames) = (None, 0);
    drive(&mut s, &mut c, |e| {
        match e {
            ClientEvent::Track(t) if t.codec == mist_media::Codec::H264 => {
                video = Some((t.width, t.height))
            }
            ClientEvent::Frame(f) if f.track == 1 => frames += 1,
            _ => {}
        }
        frames >= 25
    });
    assert_eq!(video, Some((640, 360)));

    assert!(publisher.0.wait().unwrap().success());
    // The source stream ends with the publisher's unpublish; the pusher then exits 0.
    let t = Instant::now();
    let status = loop {
        if let Some(st) = pusher.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "pusher did not exit after the stream ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "pusher exit status {status}");
    drop(server);
}

/// rtmpdump (librtmp, a different client implementation than ffmpeg's) records a live stream.
#[test]
fn rtmpdump_records_a_live_stream() {
    assert!(
        have("ffmpeg") && have("ffprobe") && Command::new("rtmpdump").arg("-h").output().is_ok(),
        "ffmpeg/ffprobe/rtmpdump not installed (scripts/test installs it)"
    );
    let _serial = serial();
    let scratch = TempDir::new("rtmp-rd");
    let dir: PathBuf = scratch.path().to_path_buf();
    let port = free_port();
    let server = rtmp_server(port, &dir);
    wait_listening(port);
    let mut publisher = Proc(
        ffmpeg_push(
            "320x240",
            "25",
            "5",
            true,
            &format!("rtmp://127.0.0.1:{port}/live/rd"),
        )
        .spawn()
        .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let file = dir.join("rd.flv");
    let st = Command::new("timeout")
        .args([
            "20",
            "rtmpdump",
            "-q",
            "-v",
            "-r",
            &format!("rtmp://127.0.0.1:{port}/play/rd"),
            "-o",
        ])
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success(), "rtmpdump: {st}");
    assert!(publisher.0.wait().unwrap().success());
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "compact",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("rtmpdump recording: {text}");
    let video = text
        .lines()
        .find(|l| l.contains("codec_name=h264"))
        .expect("h264 in the recording");
    assert!(video.contains("width=320|height=240"));
    let frames: u32 = field(video, "nb_read_frames")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(frames >= 50, "only {frames} frames recorded");
    assert!(text.contains("codec_name=aac"));
    drop(server);
}
