//! Segmented HLS recordings (INTERFACES §4.4 `m3u8`, `segment`, `split`, `maxEntries`,
//! `noendlist`, `append`): ffmpeg publishes over RTMP, MistOutTS / MistOutHLS (by hand or
//! started by the controller) write segments and a playlist, ffprobe and ffmpeg read the
//! playlist and decode the segments.

mod common;

use common::{publish, serial, wait_stream, wait_until, Controller, Proc, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A recorder run by hand in the controller's shm (no controller link).
fn record(c: &Controller, bin: &str, stream: &str, target: &str, secs: u32) -> Option<i32> {
    let mut p = Proc(
        Command::new(bin)
            .args(["-s", stream, "--duration", &secs.to_string()])
            .arg(target)
            .env("MIST_SHM_DIR", &c.shm)
            .env_remove("MIST_CONTROL")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs as u64 + 40) {
        if let Some(st) = p.0.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{bin} {target} did not exit");
}

/// The MistOutHLS binary does not take --duration: run it until `secs` have passed, then
/// SIGTERM (a clean end: the playlist is finished).
fn record_hls_for(c: &Controller, stream: &str, target: &str, secs: u64) -> Option<i32> {
    let mut p = Proc(
        Command::new(env!("CARGO_BIN_EXE_MistOutHLS"))
            .args(["-s", stream])
            .arg(target)
            .env("MIST_SHM_DIR", &c.shm)
            .env_remove("MIST_CONTROL")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    unsafe { libc::kill(p.pid() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if let Some(st) = p.0.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("MistOutHLS {target} did not exit");
}

/// The segment URIs of a media playlist.
fn segments(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// ffprobe's duration of a file or playlist.
fn duration(p: &Path) -> f64 {
    let out = Command::new("timeout")
        .args([
            "30",
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
        ])
        .args(["-of", "csv=p=0"])
        .arg(p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {p:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(-1.0)
}

/// ffmpeg decoding all of `p` (a playlist: every segment): its errors and the number of video
/// frames decoded.
fn decode(p: &Path) -> (String, u64) {
    let out = Command::new("timeout")
        .args([
            "90",
            "ffmpeg",
            "-v",
            "error",
            "-allowed_extensions",
            "ALL",
            "-i",
        ])
        .arg(p)
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count() as u64;
    (String::from_utf8_lossy(&out.stderr).into_owned(), frames)
}

/// Codec names and whether the first video packet is a keyframe.
fn first_video_key(p: &Path) -> (Vec<String>, bool) {
    let out = Command::new("timeout")
        .args([
            "30",
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
        ])
        .args(["-of", "csv=p=0"])
        .arg(p)
        .output()
        .unwrap();
    let codecs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    let out = Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=flags", "-read_intervals", "%+#1"])
        .args(["-of", "csv=p=0"])
        .arg(p)
        .output()
        .unwrap();
    let key = String::from_utf8_lossy(&out.stdout).contains('K');
    (codecs, key)
}

fn ts_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "ts"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// MistServer's form (`seg_$segmentCounter.ts?m3u8=index.m3u8&split=2`) for 8 s: segments
/// seg_0.ts… of 2 s that each start at a keyframe, an EVENT playlist with ENDLIST that ffprobe
/// reads as 8 ± 1 s and ffmpeg decodes without errors. Then MistOutHLS with the `.m3u8` form
/// and `append`: the playlist goes on after one `#EXT-X-DISCONTINUITY`, the counter continues
/// (no segment overwritten), one ENDLIST at the end, and the whole playlist still decodes.
#[test]
fn hls_recording_plays_and_appends() {
    let _g = serial();
    let dir = TempDir::new("rechls");
    let c = Controller::start(serde_json::json!({}));
    let _pub = publish(&c.publish_url("live+h"), "320x240", 90);
    wait_stream(&c, "live+h");
    let out = dir.path().join("h");
    let target = format!(
        "{}/seg_$segmentCounter.ts?m3u8=index.m3u8&split=2",
        out.display()
    );
    assert_eq!(
        record(&c, env!("CARGO_BIN_EXE_MistOutTS"), "live+h", &target, 8),
        Some(0)
    );
    let pl = out.join("index.m3u8");
    let text = std::fs::read_to_string(&pl).unwrap();
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{text}");
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{text}");
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let segs = segments(&text);
    assert!(segs.len() >= 3, "{text}");
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s, &format!("seg_{i}.ts"), "{text}");
        let (codecs, key) = first_video_key(&out.join(s));
        assert!(
            codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
            "{s}: {codecs:?}"
        );
        assert!(key, "{s} does not start with a keyframe");
    }
    assert_eq!(ts_files(&out).len(), segs.len());
    let d = duration(&pl);
    assert!((d - 8.0).abs() <= 1.0, "playlist duration {d}");
    let (errors, frames) = decode(&pl);
    assert!(errors.is_empty(), "{errors}");
    assert!(frames >= 175, "{frames} frames decoded from the playlist");

    // Append with the .m3u8 form through MistOutHLS.
    let target2 = format!(
        "{}?segment=seg_$segmentCounter.ts&split=2&append",
        pl.display()
    );
    assert_eq!(record_hls_for(&c, "live+h", &target2, 6), Some(0));
    let text2 = std::fs::read_to_string(&pl).unwrap();
    assert!(
        text2.starts_with(&text.replace("#EXT-X-ENDLIST\n", "")),
        "{text2}"
    );
    assert_eq!(
        text2.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{text2}"
    );
    assert_eq!(text2.matches("#EXT-X-ENDLIST").count(), 1, "{text2}");
    assert!(text2.ends_with("#EXT-X-ENDLIST\n"), "{text2}");
    let segs2 = segments(&text2);
    assert!(segs2.len() > segs.len(), "{text2}");
    for (i, s) in segs2.iter().enumerate() {
        assert_eq!(s, &format!("seg_{i}.ts"), "{text2}");
        assert!(out.join(s).exists(), "{s}");
    }
    let (errors, frames2) = decode(&pl);
    assert!(errors.is_empty(), "{errors}");
    assert!(frames2 > frames + 50, "{frames2} frames after the append");
}

/// push_start of `…/index.m3u8?split=2&maxEntries=3&segment=$currentMediaTime.ts`: the
/// controller runs MistOutHLS as a recording; while live the playlist is a 3-entry window
/// (no ENDLIST, no PLAYLIST-TYPE, the media sequence moving on) and the segments that left it
/// are deleted; after push_stop it has ENDLIST and ffmpeg decodes its 3 segments.
#[test]
fn live_hls_recording_trims_at_max_entries() {
    let _g = serial();
    let dir = TempDir::new("rechls-live");
    let c = Controller::start(serde_json::json!({}));
    let _pub = publish(&c.publish_url("live+w"), "320x240", 90);
    wait_stream(&c, "live+w");
    let out = dir.path().join("w");
    let target = format!(
        "{}/$wildcard/index.m3u8?split=2&maxEntries=3&segment=$currentMediaTime.ts",
        dir.path().display()
    );
    let v = c.api(&serde_json::json!({"push_start": ["live+w", target]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    let pl = out.join("index.m3u8");
    let seq = |t: &str| -> u64 {
        t.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_until("the window to slide", Duration::from_secs(60), || {
        std::fs::read_to_string(&pl).is_ok_and(|t| seq(&t) >= 2)
    });
    let text = std::fs::read_to_string(&pl).unwrap();
    let segs = segments(&text);
    assert_eq!(segs.len(), 3, "{text}");
    assert!(!text.contains("ENDLIST"), "{text}");
    assert!(!text.contains("PLAYLIST-TYPE"), "{text}");
    // Listed segments exist; every other .ts file is newer (the one being written).
    let newest: u64 = segs[2].trim_end_matches(".ts").parse().unwrap();
    let oldest: u64 = segs[0].trim_end_matches(".ts").parse().unwrap();
    for s in &segs {
        assert!(out.join(s).exists(), "{s} listed but missing");
    }
    for f in ts_files(&out) {
        let n: u64 = f
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .parse()
            .unwrap_or_else(|_| panic!("{f:?}"));
        assert!(
            n >= oldest,
            "{f:?} left the playlist but was not deleted: {text}"
        );
        assert!(segs.contains(&format!("{n}.ts")) || n > newest, "{f:?}");
    }
    let l = c.api(&serde_json::json!({"push_list": true}));
    let id = l["push_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[2] == target.as_str())
        .map(|p| p[0].clone())
        .unwrap_or_else(|| panic!("{l}"));
    c.api(&serde_json::json!({"push_stop": [id]}));
    wait_until("ENDLIST", Duration::from_secs(20), || {
        std::fs::read_to_string(&pl).is_ok_and(|t| t.ends_with("#EXT-X-ENDLIST\n"))
    });
    let text = std::fs::read_to_string(&pl).unwrap();
    assert_eq!(segments(&text).len(), 3, "{text}");
    assert!(seq(&text) >= 2, "{text}");
    assert_eq!(ts_files(&out).len(), 3, "{:?}", ts_files(&out));
    let (errors, frames) = decode(&pl);
    assert!(errors.is_empty(), "{errors}");
    assert!(frames >= 100, "{frames} frames in the last 3 segments");
}

/// Width and height of the first video stream of a file, as ffprobe sees them.
fn video_size(p: &Path) -> (u64, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height", "-of", "json"])
        .arg(p)
        .output()
        .expect("run ffprobe");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let s = &v["streams"][0];
    (
        s["width"].as_u64().unwrap_or(0),
        s["height"].as_u64().unwrap_or(0),
    )
}

/// A new publisher at another resolution takes the stream over while a segmented recording
/// runs: the segment in progress ends, the next one (of the new resolution) follows one
/// `#EXT-X-DISCONTINUITY`, the segments before it are of the old resolution, and ffprobe reads
/// the whole playlist.
#[test]
fn track_change_mid_hls_recording_is_a_discontinuity() {
    let _g = serial();
    let dir = TempDir::new("rechls-disc");
    let c = Controller::start(serde_json::json!({}));
    let mut first = publish(&c.publish_url("live+d"), "320x240", 7);
    wait_stream(&c, "live+d");
    let out = dir.path().join("d");
    let target = format!(
        "{}/seg_$segmentCounter.ts?m3u8=index.m3u8&split=2",
        out.display()
    );
    let c2 = (c.shm.clone(), target.clone());
    let rec = std::thread::spawn(move || {
        let mut p = Proc(
            Command::new(env!("CARGO_BIN_EXE_MistOutTS"))
                .args(["-s", "live+d", "--duration", "12"])
                .arg(&c2.1)
                .env("MIST_SHM_DIR", &c2.0)
                .env_remove("MIST_CONTROL")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        common::wait_exit(&mut p.0, Duration::from_secs(90)).and_then(|s| s.code())
    });
    // The first publisher ends; the second takes the stream over within its timeout.
    assert!(common::wait_exit(&mut first.0, Duration::from_secs(30)).is_some());
    let _second = publish(&c.publish_url("live+d"), "640x360", 30);
    assert_eq!(rec.join().unwrap(), Some(0));
    let pl = out.join("index.m3u8");
    let text = std::fs::read_to_string(&pl).unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let at = text.find("#EXT-X-DISCONTINUITY\n").unwrap();
    let (before, after) = (segments(&text[..at]), segments(&text[at..]));
    assert!(!before.is_empty() && !after.is_empty(), "{text}");
    for s in &before {
        assert_eq!(video_size(&out.join(s)), (320, 240), "{s}: {text}");
    }
    for s in &after {
        assert_eq!(video_size(&out.join(s)), (640, 360), "{s}: {text}");
        assert!(
            first_video_key(&out.join(s)).1,
            "{s} does not start with a keyframe"
        );
    }
    assert!(duration(&pl) > 6.0, "{text}");
}
