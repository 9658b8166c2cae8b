//! End to end: MistOutRTMP standalone, ffmpeg publishes, ffprobe plays (two viewers, one joining
//! late for the GOP burst), a hostile peer sends garbage meanwhile.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "MistOutRTMP did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn probe(url: &str) -> Output {
    Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "compact", url])
        .output()
        .unwrap()
}

fn field(line: &str, key: &str) -> Option<String> {
    line.split('|').find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn ffmpeg_publish_ffprobe_play() {
    if !have("ffmpeg") || !have("ffprobe") {
        eprintln!("SKIP: ffmpeg/ffprobe not installed");
        return;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("mist-rtmp-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let server = Killed(
        Command::new(env!("CARGO_BIN_EXE_MistOutRTMP"))
            .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-g", "4"])
            .env("MIST_SHM_DIR", &dir)
            .env_remove("MIST_CONTROL")
            .spawn()
            .unwrap(),
    );
    wait_listening(port);

    let publisher = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine"])
        .args(["-c:v", "libx264", "-g", "50", "-c:a", "aac", "-t", "6", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/live+alice"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut publisher = Killed(publisher);

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
        let video = lines.iter().find(|l| field(l, "codec_name").as_deref() == Some("h264")).unwrap_or_else(|| panic!("{who}: no h264 stream"));
        assert_eq!(field(video, "width").as_deref(), Some("640"), "{who}");
        assert_eq!(field(video, "height").as_deref(), Some("360"), "{who}");
        let frames: u32 = field(video, "nb_read_frames").and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(frames >= 50, "{who}: only {frames} video frames decoded");
        counts.push(frames);
        assert!(lines.iter().any(|l| field(l, "codec_name").as_deref() == Some("aac")), "{who}: no aac stream");
    }
    // The late viewer starts at the newest keyframe, not at the beginning of the stream.
    assert!(counts[1] < counts[0], "late viewer got {} frames, first {}", counts[1], counts[0]);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
