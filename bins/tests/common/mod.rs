//! Helpers for end-to-end tests: start real binaries on free ports with their own shared-memory
//! directory, drive them with ffmpeg/ffprobe, and clean up on drop.
#![allow(dead_code)]

pub mod browser;
pub mod ctl;
mod helpers;
pub mod recording;
pub mod rtsp;

pub use helpers::*;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mist-test-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        remove_dir(&self.0);
    }
}

/// Removes `dir` and everything in it, retrying a few times while a process that is going away
/// still adds files (remove_dir_all then fails with "directory not empty").
pub fn remove_dir(dir: &Path) {
    for _ in 0..5 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A scratch directory for the whole test binary, `mist-test-TAG-PID`, created, and removed when
/// the test binary exits (a static is never dropped; [`remove_at_exit`]).
pub fn binary_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mist-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    remove_at_exit(&d);
    d
}

/// Removes `dir` when this process exits (libtest ends with `exit`, also after a failed test,
/// which runs the `atexit` handlers). The spawned binaries exec, so they never run it.
pub fn remove_at_exit(dir: &Path) {
    static DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    static HOOK: std::sync::Once = std::sync::Once::new();
    extern "C" fn remove_all() {
        let dirs = std::mem::take(&mut *DIRS.lock().unwrap_or_else(|p| p.into_inner()));
        for d in dirs {
            remove_dir(&d);
        }
    }
    DIRS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(dir.to_path_buf());
    HOOK.call_once(|| {
        // SAFETY: registers a plain function with no arguments, as atexit requires.
        unsafe { libc::atexit(remove_all) };
    });
}

/// A child process killed (and reaped) on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A controller on free ports with its own config and shared-memory directory. On drop, the
/// controller and every process it started are stopped ([`stop_tree`]) before its directory is
/// removed.
pub struct Controller {
    pub dir: TempDir,
    pub api: u16,
    pub rtmp: u16,
    pub http: u16,
    pub config: PathBuf,
    pub shm: PathBuf,
    pub proc: Proc,
}

impl Controller {
    /// Starts MistController with stream `live` (source `push://`) plus `extra_streams`.
    pub fn start(extra_streams: serde_json::Value) -> Controller {
        Controller::start_with(extra_streams, None, None)
    }

    /// Like [`Controller::start`], with `edit` applied to the config JSON before it is written
    /// (to add `config.triggers`, `streamkeys`, …).
    pub fn start_edited(
        extra_streams: serde_json::Value,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> Controller {
        Controller::start_full(extra_streams, None, None, edit)
    }

    /// Like [`Controller::start`], plus an HTTP protocol entry on the free port `self.http`
    /// (`{"connector": "HTTP", "port": …}`) and the given extra protocol entries (e.g.
    /// `{"connector": "HTTPTS"}`); `shm` overrides the shared-memory directory.
    pub fn start_http(
        extra_streams: serde_json::Value,
        extra_protocols: serde_json::Value,
        shm: Option<&Path>,
    ) -> Controller {
        let c = Controller::start_with(extra_streams, Some(extra_protocols), shm);
        assert!(
            wait_port(c.http, Duration::from_secs(10)),
            "HTTP port never opened"
        );
        c
    }

    /// `http`: None = no HTTP entry; Some(extra protocol entries) = an HTTP entry plus those.
    fn start_with(
        extra_streams: serde_json::Value,
        http: Option<serde_json::Value>,
        shm_dir: Option<&Path>,
    ) -> Controller {
        Controller::start_full(extra_streams, http, shm_dir, |_| {})
    }

    pub fn start_full(
        extra_streams: serde_json::Value,
        http: Option<serde_json::Value>,
        shm_dir: Option<&Path>,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> Controller {
        let dir = TempDir::new("ctl");
        let (api, rtmp, http_port) = (free_port(), free_port(), free_port());
        let mut streams = serde_json::json!({"live": {"name": "live", "source": "push://"}});
        if let serde_json::Value::Object(extra) = extra_streams {
            for (k, v) in extra {
                streams[k] = v;
            }
        }
        let mut protocols =
            vec![serde_json::json!({"connector": "RTMP", "port": rtmp, "interface": "127.0.0.1"})];
        if let Some(extra) = http {
            protocols.push(serde_json::json!({"connector": "HTTP", "port": http_port, "interface": "127.0.0.1"}));
            if let serde_json::Value::Array(extra) = extra {
                protocols.extend(extra);
            }
        }
        let mut config = serde_json::json!({
            "config": {
                "controller": {"port": api, "interface": "127.0.0.1"},
                "protocols": protocols,
            },
            "streams": streams,
        });
        edit(&mut config);
        let path = dir.path().join("mistserver.conf");
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let shm = shm_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("shm"));
        std::fs::create_dir_all(&shm).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_MistController"))
            .arg("-c")
            .arg(&path)
            .env("MIST_SHM_DIR", &shm)
            .env("MIST_CONTROL", dir.path().join("control.sock"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start MistController");
        let proc = Proc(child);
        assert!(
            wait_port(api, Duration::from_secs(10)),
            "API port never opened"
        );
        assert!(
            wait_port(rtmp, Duration::from_secs(10)),
            "RTMP port never opened"
        );
        Controller {
            dir,
            api,
            rtmp,
            http: http_port,
            config: path,
            shm,
            proc,
        }
    }

    pub fn publish_url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.rtmp)
    }

    pub fn play_url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/play/{stream}", self.rtmp)
    }

    /// One API call from the local machine; returns the parsed answer.
    pub fn api(&self, command: &serde_json::Value) -> serde_json::Value {
        api_call(self.api, command, &[])
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        // Before the fields drop: the children would otherwise go on writing into `dir`. (Not
        // when the test reaped it already: its pid may be another process's now.)
        if matches!(self.proc.0.try_wait(), Ok(None)) {
            stop_tree(self.proc.pid(), Duration::from_secs(1));
        }
    }
}

/// POSTs `command` to /api with extra headers; returns the JSON answer.
pub fn api_call(
    port: u16,
    command: &serde_json::Value,
    headers: &[(&str, &str)],
) -> serde_json::Value {
    let body = serde_json::to_vec(command).unwrap();
    let mut req = format!(
        "POST /api HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp);
    let (_, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("API answer {body:?}: {e}"))
}

/// ffmpeg encoding testsrc2 + sine as H.264 (keyframe every 2 s) + AAC in FLV to `out`;
/// `extra` goes before the inputs (`-re`, `-y`), `encoder` before the output (`-tune …`).
fn testsrc_flv(
    extra: &[&str],
    encoder: &[&str],
    size: &str,
    seconds: u32,
    out: &std::ffi::OsStr,
) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error"])
        .args(extra)
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"])
        .args(encoder)
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv"])
        .arg(out);
    c
}

/// ffmpeg encoding testsrc2 (`size` at 25 fps) and a 440 Hz sine (48 kHz) for `seconds` as H.264
/// (ultrafast, a keyframe every second, yuv420p) and AAC. `pre` goes before the inputs (`-re`,
/// `-y`); the caller adds output options (`-f mpegts`, maps) and the output.
pub fn ffmpeg_testsrc(pre: &[&str], size: &str, seconds: u32) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error"])
        .args(pre)
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac"]);
    c
}

/// Publishes testsrc2 + sine as H.264 + AAC to `url` in real time.
pub fn publish(url: &str, size: &str, seconds: u32) -> Proc {
    let child = testsrc_flv(
        &["-re"],
        &["-tune", "zerolatency"],
        size,
        seconds,
        url.as_ref(),
    )
    .stdin(Stdio::null())
    .spawn()
    .expect("start ffmpeg (is it installed? scripts/test installs it)");
    Proc(child)
}

/// [`publish`] with output options before the URL (e.g. `-tls_verify 1 -ca_file CA`).
pub fn publish_with(url: &str, size: &str, seconds: u32, output: &[&str]) -> Proc {
    let mut encoder = vec!["-tune", "zerolatency"];
    encoder.extend_from_slice(output);
    let child = testsrc_flv(&["-re"], &encoder, size, seconds, url.as_ref())
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg (is it installed? scripts/test installs it)");
    Proc(child)
}

/// A self-signed certificate for 127.0.0.1 and localhost (`openssl req -x509`, RSA 2048), as
/// (`fullchain.pem`, `privkey.pem`) in `dir`. The certificate is its own CA file.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl (scripts/test installs it)");
    assert!(st.success(), "openssl req -x509 failed");
    (cert, key)
}

/// A private CA and a leaf certificate it signed for 127.0.0.1 and localhost (RSA 2048, with
/// openssl), as (CA certificate, leaf certificate, leaf key) in `dir`. Unlike [`self_signed`]
/// (a CA certificate serving as its own leaf), strict verifiers such as webpki accept it.
pub fn ca_and_leaf(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let o = |s: &'static str| std::ffi::OsStr::new(s);
    openssl(&[
        o("req"),
        o("-x509"),
        o("-newkey"),
        o("rsa:2048"),
        o("-nodes"),
        o("-days"),
        o("2"),
        o("-subj"),
        o("/CN=mist-rs test CA"),
        o("-keyout"),
        p("ca.key").as_os_str(),
        o("-out"),
        p("ca.pem").as_os_str(),
    ]);
    openssl(&[
        o("req"),
        o("-newkey"),
        o("rsa:2048"),
        o("-nodes"),
        o("-subj"),
        o("/CN=127.0.0.1"),
        o("-keyout"),
        p("leaf.key").as_os_str(),
        o("-out"),
        p("leaf.csr").as_os_str(),
    ]);
    std::fs::write(
        p("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        o("x509"),
        o("-req"),
        o("-days"),
        o("2"),
        o("-in"),
        p("leaf.csr").as_os_str(),
        o("-CA"),
        p("ca.pem").as_os_str(),
        o("-CAkey"),
        p("ca.key").as_os_str(),
        o("-CAcreateserial"),
        o("-extfile"),
        p("leaf.ext").as_os_str(),
        o("-out"),
        p("leaf.pem").as_os_str(),
    ]);
    (p("ca.pem"), p("leaf.pem"), p("leaf.key"))
}

/// ffprobe's view of a URL's streams (codec_name, width, height, …).
pub fn probe_streams(url: &str) -> Vec<serde_json::Value> {
    let out = Command::new("timeout")
        .args([
            "15",
            "ffprobe",
            "-v",
            "error",
            "-show_streams",
            "-of",
            "json",
            url,
        ])
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"].as_array().cloned().unwrap_or_default()
}

/// Decodes `url` for `wall` seconds of wall-clock time counted from the first decoded frame (at most
/// 30 s of start-up before it) and returns the number of video frames decoded and their size as WxH.
pub fn decode_video_frames(url: &str, wall: Duration) -> (usize, String) {
    decode_video_frames_with(url, &[], wall)
}

/// [`decode_video_frames`] with input options before `-i` (e.g. `-tls_verify 1 -ca_file CA`).
pub fn decode_video_frames_with(url: &str, input: &[&str], wall: Duration) -> (usize, String) {
    // The window starts at the first decoded frame, not at the spawn: ffmpeg's own start-up and
    // probing can take seconds on a loaded machine, and that is not what the tests measure.
    const START_UP: Duration = Duration::from_secs(30);
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(input)
        .args(["-i", url, "-map", "0:v:0"])
        .args(["-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ffmpeg");
    let stdout = child.stdout.take().unwrap();
    let first_frame = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    let seen = first_frame.clone();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if !line.starts_with('#') && !line.trim().is_empty() {
                let _ = seen.set(Instant::now());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let spawned = Instant::now();
    loop {
        let done = match first_frame.get() {
            Some(t) => t.elapsed() >= wall,
            None => spawned.elapsed() >= START_UP,
        };
        if done || matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = reader.join().unwrap();
    let (frames, size) = framemd5_summary(&text);
    (frames, size)
}

/// Frames and the picture size (`WxH`, empty when not said) of ffmpeg's `framemd5` output for
/// its first stream.
pub fn framemd5_summary(text: &str) -> (usize, String) {
    let frames = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    let size = text
        .lines()
        .find(|l| l.starts_with("#dimensions 0:"))
        .map(|l| {
            l.trim_start_matches("#dimensions 0:")
                .trim()
                .replace(' ', "")
        })
        .unwrap_or_default();
    (frames, size)
}

/// Makes an FLV file (testsrc2 + sine, H.264 + AAC, keyframe every 2 s) with ffmpeg, as fast as
/// it can encode (no `-re`).
pub fn make_flv(path: &Path, size: &str, seconds: u32) {
    let st = testsrc_flv(&["-y"], &[], size, seconds, path.as_os_str())
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg could not make {}", path.display());
}

pub enum MediaEvent {
    Track(mist_media::Track),
    Frame(mist_media::Frame),
}

/// The tracks and frames of an FLV or Matroska/WebM file, in file order.
pub fn media_events(file: &Path) -> Vec<MediaEvent> {
    let data = std::fs::read(file).expect("read media file");
    let mut out = Vec::new();
    if data.starts_with(b"FLV") {
        let mut d = mist_media::flv::Demuxer::new();
        d.feed(&data);
        while let Ok(Some(tag)) = d.next_tag() {
            out.extend(tag.converted.track.map(MediaEvent::Track));
            out.extend(tag.converted.frame.map(MediaEvent::Frame));
        }
    } else {
        let mut d = mist_media::ebml::Demuxer::new();
        d.push(&data);
        d.finish();
        while let Ok(Some(ev)) = d.poll() {
            match ev {
                mist_media::ebml::MkvEvent::Tracks(ts) => {
                    out.extend(ts.into_iter().map(MediaEvent::Track))
                }
                mist_media::ebml::MkvEvent::Frame(f) => out.push(MediaEvent::Frame(f)),
                _ => {}
            }
        }
    }
    out
}

/// Makes a WebM file (testsrc2 + sine, VP9 + Opus, keyframe every 2 s) with ffmpeg.
pub fn make_webm(path: &Path, size: &str, seconds: u32) {
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "300k",
            "-g",
            "50",
        ])
        .args(["-c:a", "libopus", "-f", "webm"])
        .arg(path)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg could not make {}", path.display());
}

/// A stand-in publisher: writes the frames of an FLV or WebM file into the stream's shared-memory
/// buffer in real time (as MistOutRTMP does for an RTMP publish), through mist_media::flv and
/// mist_shm. Uses the process's `MIST_SHM_DIR`. Closes the stream at the end of the file
/// (or on drop).
pub struct ShmPublisher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ShmPublisher {
    /// `file`: FLV (`.flv`) or Matroska/WebM (`.mkv`, `.webm`).
    pub fn start(stream: &str, file: &Path) -> ShmPublisher {
        use std::sync::atomic::AtomicBool;
        let events = media_events(file);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let stream = stream.to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut w = mist_shm::StreamWriter::create(&stream, mist_shm::WriterOptions::default())
                .expect("create stream");
            let start = Instant::now();
            let mut first_dts = None;
            let mut ready = Some(ready_tx);
            for ev in events {
                if stop2.load(Ordering::Relaxed) {
                    return; // drop = detach
                }
                match ev {
                    MediaEvent::Track(t) => w.set_track(&t).expect("set track"),
                    MediaEvent::Frame(f) => {
                        let base = *first_dts.get_or_insert(f.dts);
                        let due = start + Duration::from_millis((f.dts - base).max(0) as u64);
                        while Instant::now() < due {
                            if stop2.load(Ordering::Relaxed) {
                                return;
                            }
                            w.heartbeat();
                            std::thread::sleep(
                                due.saturating_duration_since(Instant::now())
                                    .min(Duration::from_millis(100)),
                            );
                        }
                        w.push(&f).expect("push");
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
            w.close();
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        ShmPublisher {
            stop,
            thread: Some(thread),
        }
    }

    /// Waits for the end of the file (the stream is then closed).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ShmPublisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One raw HTTP/1.1 exchange on a fresh connection: sends `raw`, reads until the peer closes or
/// `timeout`; returns everything read.
pub fn http_raw(port: u16, raw: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Makes an MP4 file (testsrc2 + sine, H.264 with B-frames + AAC, keyframe every 2 s, 25 fps)
/// with ffmpeg: the kind of file a VoD input serves.
pub fn make_mp4(path: &Path, size: &str, seconds: u32) {
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "50"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mp4"])
        .arg(path)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg could not make {}", path.display());
}

/// A VoD stream in shared memory, made as a VoD input makes one (see [`load_vod`]). Holds the
/// writer: the stream stays (complete) until this is dropped.
pub struct VodStream {
    pub writer: mist_shm::StreamWriter,
    pub tracks: Vec<mist_media::Track>,
    /// Frames written per track id.
    pub frames: std::collections::HashMap<u32, usize>,
}

/// The tracks and frames of `file` (any container `mist_media::remux::Demux` reads), frames in
/// decode order across tracks.
pub fn vod_media(file: &Path) -> (Vec<mist_media::Track>, Vec<mist_media::Frame>) {
    use mist_media::remux::{Demux, Event, Input};
    let input = Input::from_path(file).expect("a container remux reads");
    let f = std::fs::File::open(file).expect("open media file");
    let len = f.metadata().unwrap().len();
    let mut d = Demux::new(f, len, input);
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    while let Some(ev) = d.next_event().expect("demux") {
        match ev {
            Event::Track(t) => tracks.push(t),
            Event::Frame(f) => frames.push(f),
            Event::TracksComplete => {}
        }
    }
    frames.sort_by_key(|f| f.dts); // stable: each track keeps its order
    (tracks, frames)
}

/// Loads `file` (any container `mist_media::remux::Demux` reads) into shared memory as the VoD
/// stream `stream`, the way a VoD input does: `WriterOptions { live: false }`, every frame in
/// decode order across tracks in one go, then `complete()`. Uses the process's `MIST_SHM_DIR`.
pub fn load_vod(stream: &str, file: &Path) -> VodStream {
    let (tracks, frames) = vod_media(file);
    let mut w = mist_shm::StreamWriter::create(
        stream,
        mist_shm::WriterOptions {
            live: false,
            ..Default::default()
        },
    )
    .expect("create VoD stream");
    for t in &tracks {
        w.set_track(t).expect("set track");
    }
    let mut count = std::collections::HashMap::new();
    for f in &frames {
        w.push(f).expect("push");
        *count.entry(f.track).or_insert(0) += 1;
    }
    w.complete();
    VodStream {
        writer: w,
        tracks,
        frames: count,
    }
}

/// Like [`load_vod`] for a progressive MP4 file, as MistInMP4 loads it: the moov only is read and
/// every sample becomes an *external* record (the payload stays in the file).
pub fn load_vod_external(stream: &str, file: &Path) -> VodStream {
    use mist_media::mp4::{Mp4Reader, Need};
    use std::os::unix::fs::FileExt;
    let file = std::fs::canonicalize(file).expect("canonical path");
    let f = std::fs::File::open(&file).expect("open media file");
    let len = f.metadata().unwrap().len();
    let mut r = Mp4Reader::new(len);
    while !r.has_moov() {
        match r.need().expect("mp4") {
            Need::Read { offset, len } => {
                let mut v = vec![0u8; len as usize];
                f.read_exact_at(&mut v, offset).expect("read");
                r.feed(offset, &v).expect("mp4 feed");
            }
            Need::Done => panic!("no moov"),
        }
    }
    let movie = r.movie().unwrap().clone();
    let tracks = movie.tracks();
    let mut w = mist_shm::StreamWriter::create(
        stream,
        mist_shm::WriterOptions {
            live: false,
            ..Default::default()
        },
    )
    .expect("create VoD stream");
    for t in &tracks {
        w.set_track(t).expect("set track");
    }
    w.set_source_file(&file).expect("source file");
    let mut count = std::collections::HashMap::new();
    for s in movie.samples() {
        w.push_external(s.track, s.dts, s.pts_offset, s.keyframe, s.offset, s.size)
            .expect("push");
        *count.entry(s.track).or_insert(0) += 1;
    }
    w.complete();
    VodStream {
        writer: w,
        tracks,
        frames: count,
    }
}

/// MistOutHTTP alone (no controller) on a free loopback port, reading `shm`; `extra` arguments
/// are appended. Killed on drop.
pub fn http_out(shm: &Path, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_MistOutHTTP"))
        .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-g", "3"])
        .args(extra)
        .env("MIST_SHM_DIR", shm)
        .env_remove("MIST_CONTROL")
        .stdin(Stdio::null())
        .spawn()
        .expect("start MistOutHTTP");
    let p = Proc(child);
    assert!(
        wait_port(port, Duration::from_secs(10)),
        "MistOutHTTP never listened"
    );
    (p, port)
}

/// `http://127.0.0.1:PORT/PATH`.
pub fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

/// The children of `parent` as (pid, command name) (the kernel cuts the name to 15 characters).
pub fn children(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in rd.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((left, right)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = left.split_once('(').map(|x| x.1).unwrap_or("");
        let ppid: u32 = right
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == parent {
            out.push((pid, comm.to_string()));
        }
    }
    out
}

/// The child of `parent` running the binary `name` (exactly: `MistOutHTTP` does not match
/// `MistOutHTTPS`; names longer than the kernel's 15 characters are compared on those).
pub fn find_child(parent: u32, name: &str) -> Option<u32> {
    let want = name.get(..15).unwrap_or(name);
    children(parent)
        .into_iter()
        .find(|(_, comm)| comm == want)
        .map(|(pid, _)| pid)
}

/// Every process under `pid` (children, their children, …).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for (c, _) in children(p) {
            if !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// Stops `pid` (our child) and every process under it: SIGSTOP so that it starts no more,
/// SIGTERM to the processes under it (they remove their shared memory), SIGKILL to `pid`, and
/// after up to `grace` SIGKILL to those still running. `pid` is left for its owner to reap.
pub fn stop_tree(pid: u32, grace: Duration) {
    // SAFETY: signals to our own child and to the processes it started (pids read just before).
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let under = descendants(pid);
    for &p in &under {
        // SAFETY: as above.
        unsafe { libc::kill(p as i32, libc::SIGTERM) };
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let end = Instant::now() + grace;
    while under.iter().any(|&p| alive(p)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &p in &under {
        if alive(p) {
            // SAFETY: as above.
            unsafe { libc::kill(p as i32, libc::SIGKILL) };
        }
    }
}
