//! MistOutHLS and MistOutCMAF alone: a live stream's playlists and segments written to a
//! directory, played from the files by ffmpeg (no HTTP server involved); the window slides, and
//! the playlists are closed (`#EXT-X-ENDLIST`) when the stream ends or the program is stopped.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn shm() -> &'static PathBuf {
    shared_shm("segdir")
}

fn run(bin: &str, stream: &str, target: &Path) -> Proc {
    Proc(
        Command::new(bin)
            .args(["-s", stream, "-g", "3"])
            .arg(target)
            .env("MIST_SHM_DIR", shm())
            .env_remove("MIST_CONTROL")
            .stdin(Stdio::null())
            .spawn()
            .expect("start"),
    )
}

/// Video frames ffmpeg decodes from a local playlist or MPD, and the picture size; panics on any
/// error ffmpeg reports.
fn decode_file(path: &Path, seconds: Option<u32>) -> (usize, String) {
    let limit: Vec<String> = seconds
        .map(|s| vec!["-t".to_string(), s.to_string()])
        .unwrap_or_default();
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-hide_banner", "-v", "error"])
        .args(["-allowed_extensions", "ALL"])
        .arg("-i")
        .arg(path)
        .args(&limit)
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{}: ffmpeg: {err}",
        path.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let frames = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    let size = text
        .lines()
        .find(|l| l.starts_with("#dimensions 0:"))
        .map(|l| l["#dimensions 0:".len()..].trim().replace(' ', ""))
        .unwrap_or_default();
    (frames, size)
}

fn wait_for(path: &Path, timeout: Duration) {
    let end = Instant::now() + timeout;
    while !path.exists() {
        assert!(Instant::now() < end, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The media playlists a master playlist lists (paths relative to it).
fn media_playlists(master: &str) -> Vec<String> {
    let mut v: Vec<String> = master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    for l in master.lines().filter(|l| l.starts_with("#EXT-X-MEDIA")) {
        if let Some(i) = l.find("URI=\"") {
            v.push(l[i + 5..].split('"').next().unwrap().to_string());
        }
    }
    v
}

#[test]
fn hls_to_a_directory_plays_and_closes_on_sigterm() {
    shm();
    let src = shm().join("hls_src.flv");
    make_flv(&src, "320x240", 30);
    let _pub = ShmPublisher::start("dirlive", &src);
    let out = TempDir::new("hlsdir");
    let master = out.path().join("live/index.m3u8");
    let mut p = run(env!("CARGO_BIN_EXE_MistOutHLS"), "dirlive", &master);
    wait_for(&master, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(4));
    // Every listed segment exists, and the live playlists are open.
    let text = read(&master);
    for media in media_playlists(&text) {
        let mp = master.parent().unwrap().join(&media);
        let body = read(&mp);
        assert!(
            !body.contains("#EXT-X-ENDLIST"),
            "live playlist closed early"
        );
        for seg in body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(mp.parent().unwrap().join(seg).exists(), "{seg} missing");
        }
    }
    // The files play as they are, from disk (3 s of the live playlist).
    let (frames, size) = decode_file(&master, Some(3));
    assert_eq!(size, "320x240");
    assert!(
        frames >= 60,
        "only {frames} frames in 3 s of the live window"
    );
    let leftovers: Vec<_> = walk(out.path())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // SIGTERM: exit 0, and the media playlists are closed so the window plays as a recording.
    unsafe { libc::kill(p.pid() as i32, libc::SIGTERM) };
    assert_eq!(p.0.wait().unwrap().code(), Some(0));
    for media in media_playlists(&read(&master)) {
        let body = read(&master.parent().unwrap().join(&media));
        assert!(body.trim_end().ends_with("#EXT-X-ENDLIST"), "{body}");
    }
    let (frames, _) = decode_file(&master, None);
    assert!(frames >= 100, "only {frames} frames after closing");
}

#[test]
fn cmaf_to_a_directory_writes_mpd_and_hls_and_ends_with_the_stream() {
    shm();
    let src = shm().join("cmaf_src.flv");
    make_flv(&src, "320x240", 10);
    let publisher = ShmPublisher::start("dircmaf", &src);
    let out = TempDir::new("cmafdir");
    let mpd = out.path().join("index.mpd");
    let mut p = run(env!("CARGO_BIN_EXE_MistOutCMAF"), "dircmaf", &mpd);
    wait_for(&mpd, Duration::from_secs(20));
    // The stream ends: the program writes the final manifests and exits 0 by itself.
    publisher.join();
    let end = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(st) = p.0.try_wait().unwrap() {
            break st.code();
        }
        assert!(
            Instant::now() < end,
            "MistOutCMAF did not exit after the stream ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(0));
    let m3u8 = out.path().join("index.m3u8");
    assert!(read(&mpd).contains("type=\"static\""), "{}", read(&mpd));
    for media in media_playlists(&read(&m3u8)) {
        let body = read(&out.path().join(&media));
        assert!(body.contains("#EXT-X-ENDLIST"), "{body}");
    }
    // Both manifests play from the same files; the whole 10 s is there.
    for manifest in [&mpd, &m3u8] {
        let (frames, size) = decode_file(manifest, None);
        assert_eq!(size, "320x240", "{}", manifest.display());
        assert!(
            frames >= 200,
            "{}: only {frames} frames",
            manifest.display()
        );
    }
}

#[test]
fn usage_and_missing_stream() {
    shm();
    let st = Command::new(env!("CARGO_BIN_EXE_MistOutHLS"))
        .args(["-s", "x"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
    let out = TempDir::new("hlsnone");
    let st = Command::new(env!("CARGO_BIN_EXE_MistOutHLS"))
        .args(["-s", "nothing_here", "--wait", "1"])
        .arg(out.path().join("index.m3u8"))
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
    let caps = Command::new(env!("CARGO_BIN_EXE_MistOutCMAF"))
        .arg("-j")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&caps.stdout).unwrap();
    assert_eq!(v["deps"], "HTTP");
    assert_eq!(v["push_urls"][0], "/*.mpd");
}

#[test]
fn vod_file_written_whole_then_exit() {
    shm();
    let file = shm().join("vod_src.mp4");
    make_mp4(&file, "320x240", 10);
    let _input = Proc(
        Command::new(env!("CARGO_BIN_EXE_MistInMP4"))
            .args(["-s", "dirvod", "-i", "5", "-g", "3"])
            .arg(&file)
            .env("MIST_SHM_DIR", shm())
            .env_remove("MIST_CONTROL")
            .spawn()
            .unwrap(),
    );
    let want = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let want: usize = String::from_utf8_lossy(&want.stdout)
        .trim()
        .parse()
        .unwrap();
    for (bin, target) in [
        (env!("CARGO_BIN_EXE_MistOutHLS"), "hls/index.m3u8"),
        (env!("CARGO_BIN_EXE_MistOutCMAF"), "cmaf/index.mpd"),
    ] {
        let out = TempDir::new("voddir");
        let manifest = out.path().join(target);
        let st = Command::new(bin)
            .args(["-s", "dirvod", "-g", "3"])
            .arg(&manifest)
            .env("MIST_SHM_DIR", shm())
            .env_remove("MIST_CONTROL")
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(0), "{bin}");
        let (frames, size) = decode_file(&manifest, None);
        assert_eq!(size, "320x240", "{target}");
        assert_eq!(frames, want, "{target}: every frame of the file");
    }
}
