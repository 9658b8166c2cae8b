//! VoD inputs end to end: MistInMP4, MistInTS, MistInFLV and MistInEBML run on ffmpeg-made files,
//! their streams read back with mist_shm and compared with ffprobe's view of the file, and played
//! through MistController + MistOutHTTP with ffmpeg.

mod common;

use common::*;
use mist_media::TrackKind;
use mist_shm::{ReadEvent, ReaderInfo, StreamReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MP4: &str = env!("CARGO_BIN_EXE_MistInMP4");
const TS: &str = env!("CARGO_BIN_EXE_MistInTS");
const FLV: &str = env!("CARGO_BIN_EXE_MistInFLV");
const EBML: &str = env!("CARGO_BIN_EXE_MistInEBML");

/// Removes the scratch directories (`mist-test-vodin-*-PID`) of earlier runs whose process is gone
/// (killed before it could remove them at exit).
fn remove_stale_dirs() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("mist-test-vodin-") else {
            continue;
        };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// One shared-memory directory for this test binary (the in-process readers use
/// `MIST_SHM_DIR`); every test uses its own stream names.
fn shm() -> &'static PathBuf {
    static STALE: std::sync::Once = std::sync::Once::new();
    STALE.call_once(remove_stale_dirs);
    shared_shm("vodin")
}

/// The test files, made once: `src.mp4` (6 s testsrc2 + sine, H.264 with B-frames + AAC,
/// 320x240, keyframe every 2 s), the same remuxed to `src.ts`, `src.flv`, `src.mkv`, and
/// `src.webm` (VP9 + Opus).
fn media() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_dirs();
        let d = binary_dir("vodin-media");
        let mp4 = d.join("src.mp4");
        let st = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args([
                "-t",
                "6",
                "-c:v",
                "libx264",
                "-preset",
                "superfast",
                "-g",
                "50",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac"])
            .arg(&mp4)
            .status()
            .expect("run ffmpeg (is it installed? scripts/test installs it)");
        assert!(st.success(), "ffmpeg could not make {}", mp4.display());
        for ext in ["ts", "flv", "mkv"] {
            let out = d.join(format!("src.{ext}"));
            let st = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
                .arg(&mp4)
                .args(["-c", "copy"])
                .arg(&out)
                .status()
                .expect("run ffmpeg");
            assert!(st.success(), "ffmpeg could not make {}", out.display());
        }
        make_webm(&d.join("src.webm"), "320x240", 6);
        d
    })
}

fn file(name: &str) -> PathBuf {
    media().join(name)
}

/// Starts an input standalone on `file` as stream `stream`.
fn spawn_input(bin: &str, stream: &str, file: &Path, timeout_s: u32) -> Child {
    Command::new(bin)
        .args(["-s", stream, "-i", &timeout_s.to_string(), "-g", "4"])
        .arg(file)
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .stdin(Stdio::null())
        .spawn()
        .expect("start input")
}

/// The exit code of `c` once it exits within `timeout` (-1: killed by a signal).
fn wait_exit(c: &mut Child, timeout: Duration) -> Option<i32> {
    common::wait_exit(c, timeout).map(|st| st.code().unwrap_or(-1))
}

/// The shared-memory files of `stream` in `dir`.
fn stream_files(dir: &Path, stream: &str) -> Vec<String> {
    let prefix = format!("mist-{stream}-");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// One frame as read from shared memory: track kind, dts (ms), keyframe.
#[derive(Debug, Clone, Copy)]
struct Got {
    video: bool,
    dts: i64,
    key: bool,
}

/// Reads the whole stream once it has its tracks, until `Ended`; checks that it is a complete VoD.
fn read_stream(stream: &str) -> Vec<Got> {
    let t0 = Instant::now();
    loop {
        match mist_shm::stream_status(stream) {
            Ok(s) if !s.tracks.is_empty() => break,
            _ => {}
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "stream {stream} never got its tracks"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut r = StreamReader::open(
        stream,
        ReaderInfo {
            connector: "test".into(),
            host: "127.0.0.1".into(),
        },
    )
    .expect("open reader");
    assert!(
        !r.is_live(),
        "{stream}: a file input must make a VoD stream"
    );
    let mut out = Vec::new();
    loop {
        match r.next() {
            ReadEvent::Frame(f) => {
                let video = r
                    .tracks()
                    .iter()
                    .find(|t| t.id == f.track)
                    .map(|t| t.kind() == TrackKind::Video)
                    .expect("frame of a known track");
                out.push(Got {
                    video,
                    dts: f.dts,
                    key: f.keyframe,
                });
            }
            ReadEvent::TracksChanged => {}
            ReadEvent::Pending => {
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "{stream}: no end after {} frames",
                    out.len()
                );
                r.wait(Duration::from_millis(100));
            }
            ReadEvent::Restarted => panic!("{stream}: restarted"),
            ReadEvent::Ended => break,
        }
    }
    assert!(r.is_complete(), "{stream}: Ended before complete");
    assert!(
        matches!(r.next(), ReadEvent::Ended),
        "{stream}: Ended again"
    );
    let (first, last) = r.range_ms();
    assert!(
        first >= 0 && last >= first,
        "{stream}: range {first}..{last}"
    );
    out
}

/// ffprobe's packets of a file: (is video, dts in ms if known, keyframe).
fn probe_packets(file: &Path) -> Vec<(bool, Option<f64>, bool)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["packet=stream_index,dts_time,flags:stream=index,codec_type"])
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {}", file.display());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<(i64, String)> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["index"].as_i64().unwrap(),
                s["codec_type"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let idx = p["stream_index"].as_i64().unwrap();
            let video = kinds.iter().any(|(i, k)| *i == idx && k == "video");
            let dts = p["dts_time"]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .map(|s| s * 1000.0);
            let key = p["flags"].as_str().unwrap_or("").starts_with('K');
            (video, dts, key)
        })
        .collect()
}

/// Runs `bin` standalone on `name`, reads the stream and compares it with ffprobe; then checks
/// that the input exits 0 and removes the stream after its idle timeout.
fn check_file(bin: &str, name: &str, stream: &str) {
    shm();
    let path = file(name);
    let mut input = spawn_input(bin, stream, &path, 2);
    let got = read_stream(stream);
    let want = probe_packets(&path);
    for video in [true, false] {
        let what = if video { "video" } else { "audio" };
        let g: Vec<&Got> = got.iter().filter(|f| f.video == video).collect();
        let w: Vec<_> = want.iter().filter(|p| p.0 == video).collect();
        assert!(!w.is_empty(), "{name}: ffprobe sees no {what}");
        assert_eq!(g.len(), w.len(), "{name}: {what} frame count");
        if video {
            let gk = g.iter().filter(|f| f.key).count();
            let wk = w.iter().filter(|p| p.2).count();
            assert_eq!(gk, wk, "{name}: keyframe count");
            assert!(g[0].key, "{name}: starts with a keyframe");
        }
        // Spans from the first packet whose dts ffprobe knows (Matroska leaves the first video
        // dts unset) to the last.
        let i = w.iter().position(|p| p.1.is_some()).expect("some dts");
        let (w0, wl) = (w[i].1.unwrap(), w.last().unwrap().1.unwrap());
        let (g0, gl) = (g[i].dts as f64, g.last().unwrap().dts as f64);
        assert!(
            ((gl - g0) - (wl - w0)).abs() <= 2.0,
            "{name}: {what} dts {g0}..{gl} ms, file {w0}..{wl} ms"
        );
    }
    // Audio/video alignment as in the file.
    let first = |v: bool| {
        let wi = want
            .iter()
            .filter(|p| p.0 == v)
            .position(|p| p.1.is_some())
            .unwrap();
        let w = want.iter().filter(|p| p.0 == v).nth(wi).unwrap().1.unwrap();
        let g = got.iter().filter(|f| f.video == v).nth(wi).unwrap().dts as f64;
        (g, w)
    };
    let ((gv, wv), (ga, wa)) = (first(true), first(false));
    assert!(
        ((ga - gv) - (wa - wv)).abs() <= 2.0,
        "{name}: audio-video offset {} ms, file {} ms",
        ga - gv,
        wa - wv
    );
    // Decode-time order across tracks, nothing below 0.
    assert!(got[0].dts >= 0, "{name}: first dts {}", got[0].dts);
    assert!(
        got.windows(2).all(|w| w[0].dts <= w[1].dts),
        "{name}: frames not in decode-time order"
    );
    // No viewer now: the input ends the stream after its 2 s timeout and exits 0.
    assert_eq!(
        wait_exit(&mut input, Duration::from_secs(15)),
        Some(0),
        "{name}: input did not exit 0"
    );
    assert!(stream_files(shm(), stream).is_empty(), "{name}: files left");
}

#[test]
fn mp4_file_matches_ffprobe() {
    check_file(MP4, "src.mp4", "vodmp4");
    // The MP4's times start below 0 (B-frames, AAC priming): shifted to start at 0.
}

#[test]
fn ts_file_matches_ffprobe() {
    check_file(TS, "src.ts", "vodts");
}

#[test]
fn flv_file_matches_ffprobe() {
    check_file(FLV, "src.flv", "vodflv");
}

#[test]
fn mkv_file_matches_ffprobe() {
    check_file(EBML, "src.mkv", "vodmkv");
}

#[test]
fn webm_vp9_opus_file_matches_ffprobe() {
    check_file(EBML, "src.webm", "vodwebm");
}

#[test]
fn mp4_starts_at_zero() {
    shm();
    let mut input = spawn_input(MP4, "vodzero", &file("src.mp4"), 1);
    let got = read_stream("vodzero");
    assert_eq!(got.iter().map(|f| f.dts).min(), Some(0));
    assert_eq!(wait_exit(&mut input, Duration::from_secs(15)), Some(0));
}

#[test]
fn stays_while_watched_then_exits_when_idle() {
    shm();
    let mut input = spawn_input(FLV, "vodidle", &file("src.flv"), 2);
    let t0 = Instant::now();
    while !matches!(mist_shm::stream_status("vodidle"), Ok(s) if s.complete) {
        assert!(t0.elapsed() < Duration::from_secs(20), "never complete");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reader = StreamReader::open("vodidle", ReaderInfo::default()).unwrap();
    // Watched for longer than the timeout: it stays.
    assert_eq!(wait_exit(&mut input, Duration::from_secs(4)), None);
    assert!(!stream_files(shm(), "vodidle").is_empty());
    drop(reader);
    let left = Instant::now();
    assert_eq!(wait_exit(&mut input, Duration::from_secs(10)), Some(0));
    assert!(
        left.elapsed() >= Duration::from_millis(1500),
        "exited {:?} after the viewer left",
        left.elapsed()
    );
    assert!(stream_files(shm(), "vodidle").is_empty());
}

/// VoD viewers per stream are capped (`max_viewers`, here 2): a third reader is refused with
/// `ViewerLimit` (logged by the refused viewer's process) while the others go on; a slot freed by a viewer that
/// left admits the next one.
#[test]
fn viewers_per_vod_stream_are_capped() {
    shm();
    let mut input = Command::new(MP4)
        .args(["-s", "vodcap", "-i", "60", "--max-viewers", "2", "-g", "4"])
        .arg(file("src.mp4"))
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .stdin(Stdio::null())
        .spawn()
        .expect("start input");
    let t0 = Instant::now();
    while !matches!(mist_shm::stream_status("vodcap"), Ok(s) if s.complete) {
        assert!(t0.elapsed() < Duration::from_secs(20), "never complete");
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = StreamReader::open("vodcap", ReaderInfo::default()).unwrap();
    let _b = StreamReader::open("vodcap", ReaderInfo::default()).unwrap();
    match StreamReader::open("vodcap", ReaderInfo::default()) {
        Err(mist_shm::ShmError::ViewerLimit(s, 2)) => assert_eq!(s, "vodcap"),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a third viewer was admitted"),
    }
    drop(a);
    let _c = StreamReader::open("vodcap", ReaderInfo::default()).expect("a freed slot admits one");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(input.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut input, Duration::from_secs(10)), Some(0));
}

#[test]
fn sigterm_ends_the_stream() {
    shm();
    let mut input = spawn_input(MP4, "vodterm", &file("src.mp4"), 60);
    let t0 = Instant::now();
    while !matches!(mist_shm::stream_status("vodterm"), Ok(s) if s.complete) {
        assert!(t0.elapsed() < Duration::from_secs(20), "never complete");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(input.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut input, Duration::from_secs(10)), Some(0));
    assert!(stream_files(shm(), "vodterm").is_empty());
}

/// Runs an input that must fail; returns (exit code, stderr).
fn run_failing(bin: &str, stream: &str, source: &Path) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .args(["20", bin, "-s", stream])
        .arg(source)
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .stdin(Stdio::null())
        .output()
        .expect("run input");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn errors_are_one_line_and_leave_nothing() {
    shm();
    let tmp = TempDir::new("vod-err");
    // Missing file: exit 3, one line naming the path.
    let missing = tmp.path().join("no such movie.mp4");
    let (code, err) = run_failing(MP4, "voderr", &missing);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("ERROR") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    // A directory is not a file either.
    let (code, err) = run_failing(TS, "voderr", tmp.path());
    assert_eq!(code, Some(3), "{err}");
    // Not that container: exit 4.
    let junk = tmp.path().join("junk.mp4");
    std::fs::write(&junk, vec![0x47u8; 100_000]).unwrap();
    for bin in [MP4, TS, FLV, EBML] {
        let (code, err) = run_failing(bin, "voderr", &junk);
        assert_eq!(code, Some(4), "{bin}: {err}");
        assert!(err.contains("ERROR") && err.contains("junk.mp4"), "{err}");
    }
    let (code, err) = run_failing(MP4, "voderr", &file("src.flv"));
    assert_eq!(code, Some(4), "flv given to MistInMP4: {err}");
    let (code, err) = run_failing(FLV, "voderr", &file("src.mkv"));
    assert_eq!(code, Some(4), "mkv given to MistInFLV: {err}");
    assert!(stream_files(shm(), "voderr").is_empty());
    // No stream name: usage error.
    let out = Command::new(MP4).arg(file("src.mp4")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A file cut short (a recording that was interrupted) is served up to the damage; an MP4 whose
/// index (`moov`, at the end as ffmpeg writes it) is missing is not an MP4 file.
#[test]
fn damaged_tail_is_served() {
    shm();
    let tmp = TempDir::new("vod-cut");
    for (bin, name, stream) in [(TS, "src.ts", "vodcutts"), (EBML, "src.mkv", "vodcutmkv")] {
        let data = std::fs::read(file(name)).unwrap();
        let cut = tmp.path().join(name);
        std::fs::write(&cut, &data[..data.len() * 2 / 3]).unwrap();
        let mut input = spawn_input(bin, stream, &cut, 1);
        let got = read_stream(stream);
        let video = got.iter().filter(|f| f.video).count();
        assert!((60..150).contains(&video), "{name}: {video} video frames");
        assert_eq!(wait_exit(&mut input, Duration::from_secs(15)), Some(0));
    }
    let data = std::fs::read(file("src.mp4")).unwrap();
    let cut = tmp.path().join("cut.mp4");
    std::fs::write(&cut, &data[..data.len() * 2 / 3]).unwrap();
    let (code, err) = run_failing(MP4, "vodcutmp4", &cut);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("moov"), "{err}");
}

/// A write error into shared memory while loading (here the file-size limit, standing in for a
/// full tmpfs: both fail the page reservation): one error line, the stream removed, exit 5.
#[test]
fn shm_write_failure_is_one_error_and_removes_the_stream() {
    use std::os::unix::process::CommandExt;
    shm();
    let mut cmd = Command::new(MP4);
    cmd.args(["-s", "vodfull", "-i", "1"])
        .arg(file("src.mp4"))
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec. The
    // metadata segment (about 5 MiB) fits under 8 MiB; a data page (16 MiB capacity) does not.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 8 << 20,
                rlim_max: 8 << 20,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start input");
    let code = wait_exit(&mut child, Duration::from_secs(20));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(5), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("shared memory"), "{err}");
    assert!(stream_files(shm(), "vodfull").is_empty());
}

#[test]
fn capabilities_json() {
    for (bin, name, first) in [
        (MP4, "MP4", "/*.mp4"),
        (TS, "TS", "/*.ts"),
        (FLV, "FLV", "/*.flv"),
        (EBML, "EBML", "/*.mkv"),
    ] {
        let out = Command::new(bin).arg("-j").output().unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["name"], name);
        assert_eq!(v["source_match"][0], first);
        assert!(v["priority"].is_number());
        assert_eq!(v["optional"]["inputtimeout"]["option"], "--inputtimeout");
        assert_eq!(v["optional"]["max_viewers"]["option"], "--max-viewers");
        let out = Command::new(bin).arg("--help").output().unwrap();
        assert!(out.status.success());
        let out = Command::new(bin).arg("-v").output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains(bin.rsplit('/').next().unwrap()));
    }
}

/// Decodes the video of `url` to the end with ffmpeg; returns (frames, duration in s, WxH).
fn decode_all(url: &str) -> (usize, f64, String) {
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-hide_banner", "-v", "error", "-i", url])
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg {url}: {err}");
    assert!(err.trim().is_empty(), "ffmpeg {url} complained: {err}");
    let text = String::from_utf8_lossy(&out.stdout);
    let tb = text
        .lines()
        .find_map(|l| l.strip_prefix("#tb 0:"))
        .and_then(|t| {
            let (n, d) = t.trim().split_once('/')?;
            Some(n.parse::<f64>().ok()? / d.parse::<f64>().ok()?)
        })
        .expect("time base");
    let size = text
        .lines()
        .find_map(|l| l.strip_prefix("#dimensions 0:"))
        .map(|s| s.trim().replace(' ', ""))
        .unwrap_or_default();
    let rows: Vec<(i64, i64)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect();
    let first = rows.iter().map(|r| r.0).min().unwrap_or(0);
    let end = rows.iter().map(|r| r.0 + r.1).max().unwrap_or(0);
    (rows.len(), (end - first) as f64 * tb, size)
}

/// The video frame count of a file and its duration (frames × frame duration), by ffprobe.
fn file_video_duration(file: &Path) -> (usize, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets,r_frame_rate"])
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    let n: f64 = s["nb_read_packets"].as_str().unwrap().parse().unwrap();
    let (a, b) = s["r_frame_rate"].as_str().unwrap().split_once('/').unwrap();
    let dur = n * b.parse::<f64>().unwrap() / a.parse::<f64>().unwrap();
    (n as usize, dur)
}

#[test]
fn controller_starts_the_input_and_http_plays_it() {
    let mp4 = file("src.mp4");
    let ts = file("src.ts");
    let ctl = Controller::start_http(
        serde_json::json!({
            "vod": {"name": "vod", "source": mp4.to_str().unwrap(), "inputtimeout": 2},
            "vodts": {"name": "vodts", "source": ts.to_str().unwrap(), "inputtimeout": 2},
        }),
        serde_json::json!([{"connector": "HTTPTS"}, {"connector": "FLV"}, {"connector": "EBML"}]),
        None,
    );
    let caps = ctl.api(&serde_json::json!({"capabilities": true}));
    for (name, m) in [
        ("MP4", "/*.mp4"),
        ("TS", "/*.ts"),
        ("FLV", "/*.flv"),
        ("EBML", "/*.webm"),
    ] {
        let sm = &caps["capabilities"]["inputs"][name]["source_match"];
        assert!(
            sm.as_array().is_some_and(|a| a.iter().any(|p| p == m)),
            "{name}: {caps}"
        );
    }
    let (want_frames, want) = file_video_duration(&mp4);
    for (stream, ext) in [("vod", "ts"), ("vodts", "flv"), ("vodts", "mkv")] {
        let url = format!("http://127.0.0.1:{}/{stream}.{ext}", ctl.http);
        let (frames, dur, size) = decode_all(&url);
        assert_eq!(size, "320x240", "{url}");
        assert_eq!(frames, want_frames, "{url}: every frame decoded");
        assert!(
            (dur - want).abs() <= 0.2,
            "{url}: {frames} frames, {dur} s of video, file {want} s"
        );
        // The stream info (still loaded: the timeout is 2 s) says VoD.
        let raw = http_raw(
            ctl.http,
            format!("GET /json_{stream}.js HTTP/1.0\r\n\r\n").as_bytes(),
            Duration::from_secs(10),
        );
        let text = String::from_utf8_lossy(&raw);
        let (_, body) = text.split_once("\r\n\r\n").expect("HTTP answer");
        let info: serde_json::Value = serde_json::from_str(body).expect("info JSON");
        assert_eq!(info["type"], "vod", "{info}");
        assert_eq!(info["width"], 320, "{info}");
    }
    // RTMP plays it too (the input is still loaded from the HTTP viewers).
    let url = ctl.play_url("vodts");
    let (frames, dur, size) = decode_all(&url);
    assert_eq!((frames, size.as_str()), (want_frames, "320x240"), "{url}");
    assert!((dur - want).abs() <= 0.2, "{url}: {dur} s");
    // Nobody watches now: both inputs end their streams after 2 s.
    let t0 = Instant::now();
    while !(stream_files(&ctl.shm, "vod").is_empty() && stream_files(&ctl.shm, "vodts").is_empty())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "streams not removed: {:?} {:?}",
            stream_files(&ctl.shm, "vod"),
            stream_files(&ctl.shm, "vodts")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Asked again: the input is started again.
    let url = format!("http://127.0.0.1:{}/vod.flv", ctl.http);
    let (_, dur, _) = decode_all(&url);
    assert!((dur - want).abs() <= 0.2, "{url}: {dur} s");
    // The stream info of a configured VoD stream that is not loaded starts its input (the player
    // polls it): the first answer may be offline, a later one says vod.
    while !stream_files(&ctl.shm, "vodts").is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(40), "vodts not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t1 = Instant::now();
    loop {
        let raw = http_raw(
            ctl.http,
            b"GET /json_vodts.js HTTP/1.0\r\n\r\n",
            Duration::from_secs(10),
        );
        let text = String::from_utf8_lossy(&raw);
        let (_, body) = text.split_once("\r\n\r\n").expect("HTTP answer");
        let info: serde_json::Value = serde_json::from_str(body).expect("info JSON");
        if info["type"] == "vod" {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "the info request did not start the input: {info}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every frame of a stream with its payload, until `Ended`.
fn read_frames(stream: &str) -> Vec<mist_media::Frame> {
    let t0 = Instant::now();
    while !mist_shm::stream_status(stream).is_ok_and(|s| s.complete) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{stream} never complete"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut r = StreamReader::open(stream, ReaderInfo::default()).expect("open reader");
    let mut out = Vec::new();
    loop {
        match r.next() {
            ReadEvent::Frame(f) => out.push(f),
            ReadEvent::Ended => break,
            ReadEvent::Pending => r.wait(Duration::from_millis(100)),
            ReadEvent::TracksChanged | ReadEvent::Restarted => {}
        }
    }
    assert!(r.last_error().is_none(), "{:?}", r.last_error());
    out
}

/// MistInMP4 leaves the payloads in the file (external records: shared memory holds the frame
/// records only), and readers get exactly what the copying path (the demuxer's frames, shifted to
/// start at 0, pushed inline) gave: same frames, same times, same payload bytes.
#[test]
fn mp4_payloads_stay_in_the_file_and_read_back_identical() {
    use mist_media::remux::{Demux, Event, Input};
    shm();
    let src = file("src.mp4");
    let mut input = spawn_input(MP4, "vodext", &src, 1);
    let got = read_frames("vodext");
    // The pages hold ~40 bytes per frame: nothing near the file's payload size.
    let pages: u64 = stream_files(shm(), "vodext")
        .iter()
        .filter(|n| n.contains("-p"))
        .map(|n| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(shm().join(n)).map_or(0, |m| m.blocks() * 512)
        })
        .sum();
    let payload: usize = got.iter().map(|f| f.data.len()).sum();
    assert!(payload > 200_000, "{payload} payload bytes");
    assert!(
        pages < (payload / 4) as u64,
        "{pages} bytes of pages for {payload} payload bytes"
    );
    let f = std::fs::File::open(&src).unwrap();
    let len = f.metadata().unwrap().len();
    let mut d = Demux::new(f, len, Input::Mp4);
    let mut want = Vec::new();
    while let Some(ev) = d.next_event().unwrap() {
        if let Event::Frame(f) = ev {
            want.push(f);
        }
    }
    let shift = (-want.iter().map(|f| f.dts).min().unwrap()).max(0);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            (g.track, g.dts, g.pts_offset, g.keyframe),
            (w.track, w.dts + shift, w.pts_offset, w.keyframe),
            "frame {i}"
        );
        assert!(g.data == w.data, "frame {i}: payload differs");
    }
    assert_eq!(wait_exit(&mut input, Duration::from_secs(15)), Some(0));
}

/// Bytes of memory the files of `stream` in the shared-memory directory use (allocated blocks).
fn shm_bytes(stream: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    stream_files(shm(), stream)
        .iter()
        .map(|n| std::fs::metadata(shm().join(n)).map_or(0, |m| m.blocks() * 512))
        .sum()
}

/// Peak resident set size of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Decodes the video of `url` (`-v error`: nothing may be printed); returns the frames decoded.
fn decode_count(url: &str) -> usize {
    let out = Command::new("timeout")
        .args(["180", "ffmpeg", "-hide_banner", "-nostdin", "-v", "error"])
        .args(["-i", url, "-map", "0:v:0", "-f", "framecrc", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg {url}: {err}");
    assert!(err.trim().is_empty(), "ffmpeg {url} complained: {err}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

/// A big MP4 (~150 MB: 80 s of 720p at 20 Mbit/s) served by MistInMP4 + MistOutHTTP: shared
/// memory holds the frame records only (< 10 MB), and MistOutHTTP, while ffmpeg reads the whole
/// progressive MP4 and the whole HLS presentation, stays below 150 MB resident at its peak.
#[test]
fn big_mp4_is_served_without_its_payload_in_memory() {
    shm();
    let tmp = TempDir::new("vod-big");
    let src = tmp.path().join("big.mp4");
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "80", "-c:v", "libx264", "-preset", "ultrafast"])
        .args([
            "-b:v", "20M", "-maxrate", "20M", "-bufsize", "20M", "-g", "50",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac"])
        .arg(&src)
        .status()
        .expect("run ffmpeg");
    assert!(st.success());
    let size = std::fs::metadata(&src).unwrap().len();
    assert!(size > 120 << 20, "test file of {size} bytes");
    // ffprobe's video frame count (packets, without decoding).
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(&src)
        .output()
        .unwrap();
    let want: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .expect("frame count");

    let mut input = spawn_input(MP4, "vodbig", &src, 5);
    let t0 = Instant::now();
    while !mist_shm::stream_status("vodbig").is_ok_and(|s| s.complete) {
        assert!(t0.elapsed() < Duration::from_secs(30), "never loaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    let shm_used = shm_bytes("vodbig");
    eprintln!("big MP4: {size} bytes, {want} video frames; shared memory used: {shm_used} bytes");
    assert!(shm_used < 10 << 20, "{shm_used} bytes of shared memory");

    let port = free_port();
    let http = Proc(
        Command::new(env!("CARGO_BIN_EXE_MistOutHTTP"))
            .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-g", "3"])
            .env("MIST_SHM_DIR", shm())
            .env_remove("MIST_CONTROL")
            .stdin(Stdio::null())
            .spawn()
            .expect("start MistOutHTTP"),
    );
    assert!(wait_port(port, Duration::from_secs(10)));
    let base = format!("http://127.0.0.1:{port}");
    let mp4 = decode_count(&format!("{base}/vodbig.mp4"));
    let rss_mp4 = peak_rss(http.pid());
    let hls = decode_count(&format!("{base}/hls/vodbig/index.m3u8"));
    let rss = peak_rss(http.pid());
    eprintln!(
        "MistOutHTTP peak RSS: {rss_mp4} bytes after /vodbig.mp4, {rss} bytes after HLS too; \
         decoded {mp4} (MP4) and {hls} (HLS) frames"
    );
    assert_eq!(mp4, want, "progressive MP4 frames");
    assert_eq!(hls, want, "HLS frames");
    assert!(
        rss > 0 && rss < 150 << 20,
        "MistOutHTTP peak RSS {rss} bytes"
    );
    assert!(shm_bytes("vodbig") < 10 << 20);
    drop(http);
    assert_eq!(wait_exit(&mut input, Duration::from_secs(30)), Some(0));
}
