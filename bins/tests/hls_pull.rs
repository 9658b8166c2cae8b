//! Pull inputs over HTTP, end to end: ffmpeg writes a live HLS (TS segments, fMP4 segments, a
//! master playlist with two variants) that `python3 -m http.server` serves; a stream whose source
//! is that playlist is pulled by MistInHLS and played back over HTTP-TS and HLS by ffmpeg. And
//! MistInTS pulls `http://…ts` from ffmpeg's own HTTP server (`-listen 1`).
//!
//! Run: `cargo test -p mist-bins --test hls_pull`
mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `python3 -m http.server` serving `dir` on a free port.
fn serve_dir(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .arg("--directory")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 -m http.server (scripts/test installs python3)");
    assert!(
        wait_port(port, Duration::from_secs(10)),
        "http.server did not open"
    );
    (Proc(child), port)
}

/// ffmpeg writing a live HLS of testsrc2 + sine (H.264 + AAC, 1 s segments, 5 in the playlist)
/// into `dir`; `extra` goes before the output (segment type, variant maps).
fn live_hls(dir: &Path, inputs_and_maps: &[&str], extra: &[&str], out: &str) -> Proc {
    let child = ffmpeg_testsrc(&["-re"], "320x240", 120)
        .current_dir(dir)
        .args(inputs_and_maps)
        .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "5"])
        .args(["-hls_flags", "delete_segments"])
        .args(extra)
        .arg(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg (scripts/test installs it)");
    Proc(child)
}

/// Waits until ffmpeg wrote `file` in `dir`.
fn wait_file(dir: &Path, file: &str) {
    let t = Instant::now();
    while !dir.join(file).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "ffmpeg never wrote {file}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Decodes video from `url`, retrying for up to 60 s while the input starts (the first request
/// starts it).
fn decode_when_up(url: &str) -> (usize, String) {
    common::decode_when_up(url, Duration::from_secs(60))
}

fn protocols() -> serde_json::Value {
    serde_json::json!([{"connector": "HTTPTS"}, {"connector": "HLS"}])
}

/// The codec names ffprobe sees at `url`, sorted.
fn codecs(url: &str) -> Vec<String> {
    let mut c: Vec<String> = probe_streams(url)
        .iter()
        .filter_map(|s| s["codec_name"].as_str().map(String::from))
        .collect();
    c.sort();
    c
}

/// A live HLS with segments of `segment_type` ("mpegts" or "fmp4") plays back from mist-rs over
/// HTTP-TS and HLS with H.264 + AAC at the source's size, pulled by MistInHLS.
fn live_pull(segment_type: &str) {
    let src = TempDir::new(&format!("hlssrc-{segment_type}"));
    let _ff = live_hls(
        src.path(),
        &[],
        &["-hls_segment_type", segment_type],
        "live.m3u8",
    );
    wait_file(src.path(), "live.m3u8");
    let (_srv, port) = serve_dir(src.path());
    let ctl = Controller::start_http(
        serde_json::json!({"relay": {"name": "relay", "source": url(port, "/live.m3u8")}}),
        protocols(),
        None,
    );
    let (frames, size) = decode_when_up(&url(ctl.http, "/relay.ts"));
    assert!(frames >= 50, "HTTP-TS decoded only {frames} frames");
    assert_eq!(size, "320x240");
    assert!(
        find_child(ctl.proc.pid(), "MistInHLS").is_some(),
        "the controller did not start MistInHLS for an .m3u8 source"
    );
    assert_eq!(codecs(&url(ctl.http, "/relay.ts")), vec!["aac", "h264"]);
    let (frames, size) = decode_when_up(&url(ctl.http, "/hls/relay/index.m3u8"));
    assert!(frames >= 50, "HLS decoded only {frames} frames");
    assert_eq!(size, "320x240");
    let (v, a, info) = track_counts(ctl.http, "relay");
    assert_eq!((v, a), (1, 1), "{info}");
}

#[test]
fn live_hls_with_ts_segments_is_pulled_and_played() {
    live_pull("mpegts");
}

#[test]
fn live_hls_with_fmp4_segments_is_pulled_and_played() {
    live_pull("fmp4");
}

#[test]
fn master_playlist_with_two_variants_gives_two_video_tracks() {
    let src = TempDir::new("hlssrc-master");
    let _ff = live_hls(
        src.path(),
        &[
            "-filter_complex",
            "[0:v]split=2[a][b];[b]scale=160:120[c]",
            "-map",
            "[a]",
            "-map",
            "[c]",
            "-map",
            "1:a",
            "-map",
            "1:a",
        ],
        &[
            "-master_pl_name",
            "master.m3u8",
            "-var_stream_map",
            "v:0,a:0 v:1,a:1",
        ],
        "out_%v.m3u8",
    );
    wait_file(src.path(), "master.m3u8");
    let (_srv, port) = serve_dir(src.path());
    let ctl = Controller::start_http(
        serde_json::json!({"multi": {"name": "multi", "source": url(port, "/master.m3u8")}}),
        protocols(),
        None,
    );
    // The first request starts the input; the master lists both sizes once the stream is up.
    let master = wait_master(
        ctl.http,
        "/hls/multi/index.m3u8",
        2,
        Duration::from_secs(60),
    );
    assert!(master.contains("RESOLUTION=320x240"), "{master}");
    assert!(master.contains("RESOLUTION=160x120"), "{master}");
    let (v, a, info) = track_counts(ctl.http, "multi");
    assert_eq!((v, a), (2, 2), "{info}");
    // Each variant decodes at its own size.
    let mut sizes = Vec::new();
    for var in master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (frames, size) = decode_when_up(&url(ctl.http, &format!("/hls/multi/{var}")));
        assert!(frames >= 25, "variant {var}: {frames} frames");
        sizes.push(size);
    }
    sizes.sort();
    assert_eq!(sizes, vec!["160x120", "320x240"]);
}

#[test]
fn vod_hls_is_pulled_whole_and_then_ends() {
    let src = TempDir::new("hlssrc-vod");
    let st = ffmpeg_testsrc(&[], "320x240", 8)
        .current_dir(src.path())
        .args(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"])
        .args(["-hls_segment_type", "fmp4", "vod.m3u8"])
        .status()
        .expect("run ffmpeg");
    assert!(st.success());
    let (_srv, port) = serve_dir(src.path());
    let shm = TempDir::new("hlsvod-shm");
    let mut child = Command::new(env!("CARGO_BIN_EXE_MistInHLS"))
        .args(["-s", "vod", &url(port, "/vod.m3u8")])
        .env("MIST_SHM_DIR", shm.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("MistInHLS did not end after its VoD source");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = log.join().unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("VoD playlist, 4 segments"), "{log}");
    assert!(log.contains("is up with 2 tracks"), "{log}");
    assert!(log.contains("the source ended"), "{log}");
}

/// ffmpeg serving live TS over its own HTTP server (one client) at `port`.
fn ts_over_http(port: u16) -> Proc {
    let child = ffmpeg_testsrc(&["-re"], "320x240", 120)
        .args(["-f", "mpegts"])
        .args(["-listen", "1", &format!("http://127.0.0.1:{port}/live.ts")])
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    Proc(child)
}

#[test]
fn mistints_pulls_live_ts_over_http() {
    let port = free_port();
    // No probe of the port: ffmpeg -listen 1 serves the first connection only. MistInTS retries
    // with back-off until ffmpeg listens.
    let _ff = ts_over_http(port);
    let ctl = Controller::start_http(
        serde_json::json!({"tshttp": {"name": "tshttp", "source": url(port, "/live.ts")}}),
        protocols(),
        None,
    );
    let (frames, size) = decode_when_up(&url(ctl.http, "/tshttp.ts"));
    assert!(frames >= 50, "HTTP-TS decoded only {frames} frames");
    assert_eq!(size, "320x240");
    assert!(
        find_child(ctl.proc.pid(), "MistInTS").is_some(),
        "the controller did not start MistInTS for an http://…ts source"
    );
    let (frames, _) = decode_when_up(&url(ctl.http, "/hls/tshttp/index.m3u8"));
    assert!(frames >= 50, "HLS decoded only {frames} frames");
    assert_eq!(codecs(&url(ctl.http, "/tshttp.ts")), vec!["aac", "h264"]);
}

/// The origin restarts (a new ffmpeg writes the playlist again from sequence 0): the same
/// MistInHLS follows the new playlist, the stream keeps playing, and the restart shows in the
/// stream's health.
#[test]
fn origin_restart_is_followed_without_ending_the_stream() {
    let src = TempDir::new("hlssrc-restart");
    let ff = live_hls(src.path(), &[], &[], "live.m3u8");
    wait_file(src.path(), "live.m3u8");
    let (_srv, port) = serve_dir(src.path());
    let ctl = Controller::start_http(
        serde_json::json!({"rs": {"name": "rs", "source": url(port, "/live.m3u8")}}),
        protocols(),
        None,
    );
    let (frames, _) = decode_when_up(&url(ctl.http, "/rs.ts"));
    assert!(frames >= 50, "before the restart: {frames} frames");
    let input = find_child(ctl.proc.pid(), "MistInHLS").expect("MistInHLS runs");
    // Let the sequence grow well past a fresh playlist's, then restart the origin.
    std::thread::sleep(Duration::from_secs(8));
    drop(ff);
    let _ = std::fs::remove_file(src.path().join("live.m3u8"));
    let _ff2 = live_hls(src.path(), &[], &[], "live.m3u8");
    wait_file(src.path(), "live.m3u8");
    let row = poll_until(
        Duration::from_secs(40),
        Duration::from_millis(500),
        || ctl.stream_row("rs"),
        |row| row["health"]["restarts"].as_u64().unwrap_or(0) > 0,
    );
    assert!(
        row["health"]["restarts"].as_u64().unwrap_or(0) >= 1,
        "no restart seen: {row}"
    );
    let (frames, size) = decode_when_up(&url(ctl.http, "/rs.ts"));
    assert!(frames >= 50, "after the restart: {frames} frames");
    assert_eq!(size, "320x240");
    assert_eq!(
        find_child(ctl.proc.pid(), "MistInHLS"),
        Some(input),
        "the input was restarted instead of following the new playlist"
    );
}
