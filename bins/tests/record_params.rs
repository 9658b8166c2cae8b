//! Recording parameters and rule options of issue 12 end to end (INTERFACES §2 `auto_push`,
//! §4.4): `.aac` and `.mp3` files and `append` to a `.ts`, `recstart`/`recstop` on a VoD
//! stream, `startunix`/`stopunix` (absolute and relative), an auto-push rule's
//! `scheduletime`/`completetime` window, and PUSH_OUT_START aborting a push with an empty
//! answer. ffmpeg publishes, the controller records, ffprobe judges.

mod common;

use common::recording::{decode_errors, format_probe, payloads, vod_source};
use common::{
    collector, files_in, packet_counts, publish, serial, wait_stream, wait_until, Controller, Proc,
    TempDir,
};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until push_list has no push left that is not finished or failed.
fn wait_pushes_done(c: &Controller) {
    wait_until("the pushes to end", Duration::from_secs(40), || {
        c.push_list()
            .iter()
            .all(|p| p[5]["state"] != "active" && p[5]["state"] != "starting")
    });
}

/// A `.aac` recording (MistOutAAC: ADTS audio only) of 3 s; a `.ts` recording of 3 s, then
/// another with `append` to the same file: it holds both (about twice the frames) and decodes.
#[test]
fn aac_file_and_ts_append() {
    let _g = serial();
    let dir = TempDir::new("aacappend");
    let (h, ends) = collector(dir.path(), "recording_end");
    let c = Controller::start(json!({}));
    c.api(&json!({"config": {"triggers": {
        "RECORDING_END": [{"handler": h.to_str().unwrap(), "sync": false}]
    }}}));
    let _pub = publish(&c.publish_url("live+p"), "320x240", 60);
    wait_stream(&c, "live+p");
    let aac = dir.path().join("a.aac");
    let ts = dir.path().join("t.ts");
    for t in [
        format!("{}?duration=3", aac.display()),
        format!("{}?duration=3", ts.display()),
    ] {
        let v = c.api(&json!({"push_start": ["live+p", t]}));
        assert!(v.get("push_start_error").is_none(), "{v}");
    }
    wait_until("2 RECORDING_END", Duration::from_secs(30), || {
        files_in(&ends).len() >= 2
    });
    let (d, codecs) = format_probe(&aac);
    assert_eq!(codecs, ["aac"], "{aac:?}");
    assert!((d - 3.0).abs() < 1.0, "{aac:?}: {d} s");
    assert!(decode_errors(&aac).is_empty(), "{aac:?}");
    let (v1, a1, _) = packet_counts(&ts);
    assert!(v1 >= 60, "{v1} video packets in 3 s");
    let size1 = std::fs::metadata(&ts).unwrap().len();
    let v =
        c.api(&json!({"push_start": ["live+p", format!("{}?duration=3&append", ts.display())]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    wait_until("3 RECORDING_END", Duration::from_secs(30), || {
        files_in(&ends).len() >= 3
    });
    let all = payloads(&ends);
    assert!(all.iter().all(|p| p[10] == "0"), "{all:?}");
    let size2 = std::fs::metadata(&ts).unwrap().len();
    assert!(size2 > size1 * 3 / 2, "append: {size1} → {size2} bytes");
    let (v2, a2, codecs) = packet_counts(&ts);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(
        v2 >= v1 * 2 - 5 && a2 >= a1 * 2 - 10,
        "{v1}/{a1} then {v2}/{a2}"
    );
    assert!(decode_errors(&ts).is_empty(), "{ts:?}");
}

/// `?recstart=2000&recstop=4000` of a 6 s VoD stream: one file from the keyframe at 2 s to the
/// last frame before 4 s (RECORDING_END's first/last ms), 2 s long, starting with a keyframe.
#[test]
fn recstart_recstop_cut_a_vod_stream() {
    let _g = serial();
    let dir = TempDir::new("recstartstop");
    let src = dir.path().join("src.mp4");
    vod_source(&src);
    let (h, ends) = collector(dir.path(), "recording_end");
    let c = Controller::start(json!({
        "vod": {"name": "vod", "source": src.to_str().unwrap(), "inputtimeout": 30}
    }));
    c.api(&json!({"config": {"triggers": {
        "RECORDING_END": [{"handler": h.to_str().unwrap(), "sync": false}]
    }}}));
    let out = dir.path().join("cut.mkv");
    let v = c.api(
        &json!({"push_start": ["vod", format!("{}?recstart=2000&recstop=4000", out.display())]}),
    );
    assert!(v.get("push_start_error").is_none(), "{v}");
    wait_until("RECORDING_END", Duration::from_secs(40), || {
        !files_in(&ends).is_empty()
    });
    let p = &payloads(&ends)[0];
    assert_eq!(p[10], "0", "{p:?}");
    let (first, last): (i64, i64) = (p[8].parse().unwrap(), p[9].parse().unwrap());
    assert!((2000..2100).contains(&first), "{p:?}");
    assert!((3900..=4000).contains(&last), "{p:?}");
    let (d, _) = format_probe(&out);
    assert!((d - 2.0).abs() < 0.2, "{out:?}: {d} s");
    assert!(decode_errors(&out).is_empty(), "{out:?}");
    let k = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=flags",
        ])
        .args(["-of", "csv=p=0", "-read_intervals", "%+#1"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&k.stdout).starts_with('K'),
        "{out:?} starts without a keyframe"
    );
}

/// An auto-push rule with `scheduletime` 4 s ahead and `completetime` 10 s ahead: nothing is
/// recorded before the window, the push starts in it and is stopped (file finalised) at its
/// end, and no push starts again after it.
#[test]
fn rule_time_window() {
    let _g = serial();
    let dir = TempDir::new("window");
    let c = Controller::start(json!({}));
    c.api(&json!({"push_settings": {"wait": 1}}));
    let _pub = publish(&c.publish_url("live+w"), "320x240", 60);
    wait_stream(&c, "live+w");
    let t0 = now_unix();
    let target = format!("{}/$wildcard-$hour$minute$second.mkv", dir.path().display());
    c.api(
        &json!({"push_auto_add": {"stream": "live+w", "target": target,
        "scheduletime": t0 + 4, "completetime": t0 + 10}}),
    );
    // Before the window: nothing.
    while now_unix() < t0 + 3 {
        assert!(c.push_list().is_empty(), "a push before scheduletime");
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_until("the push in the window", Duration::from_secs(20), || {
        c.push_list().iter().any(|p| p[5]["state"] == "active")
    });
    assert!(now_unix() >= t0 + 4, "started before scheduletime");
    // Past the window: the push is stopped and none comes back.
    let until = Instant::now() + Duration::from_secs(30);
    while now_unix() < t0 + 15 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_pushes_done(&c);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !c.push_list().iter().any(|p| p[5]["state"] == "active"),
        "a push after completetime: {:?}",
        c.push_list()
    );
    let files: Vec<PathBuf> = files_in(dir.path())
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "mkv"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let (d, _) = format_probe(&files[0]);
    // At most the window (6 s), plus the GOP before its start (a recording of a live stream
    // starts at its newest keyframe, up to 2 s old) and the stop (twice a second scan).
    assert!(d > 2.0 && d <= 9.5, "{:?}: {d} s", files[0]);
    assert!(decode_errors(&files[0]).is_empty());
}

/// A sync PUSH_OUT_START handler answering nothing aborts the push: `push_list` shows the
/// error, no process runs and no file is written.
#[test]
fn push_out_start_empty_answer_aborts() {
    let _g = serial();
    let dir = TempDir::new("abortpush");
    let h = common::handler_script(dir.path(), "push_out_start", "");
    let c = Controller::start(json!({}));
    c.api(&json!({"config": {"triggers": {
        "PUSH_OUT_START": [{"handler": h, "sync": true}]
    }}}));
    let _pub = publish(&c.publish_url("live+x"), "320x240", 30);
    wait_stream(&c, "live+x");
    let out = dir.path().join("never.mkv");
    c.api(&json!({"push_start": ["live+x", out.to_str().unwrap()]}));
    wait_until("the aborted push", Duration::from_secs(20), || {
        c.push_list().iter().any(|p| {
            p[5]["state"] == "error" && p[5]["error"] == "aborted by PUSH_OUT_START" && p[0] == 0
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(!out.exists());
}

/// ffmpeg publishing testsrc2 (H.264, a keyframe every second) and a 440 Hz sine as MP3
/// (libmp3lame, 128 kbit/s CBR) over RTMP for `secs` seconds.
fn publish_mp3(url: &str, secs: u32) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "25", "-pix_fmt", "yuv420p"])
        .args([
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            "-ar",
            "44100",
            "-f",
            "flv",
        ])
        .arg(url)
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg (scripts/test installs it)");
    Proc(child)
}

/// A `.mp3` recording (MistOutMP3: the MPEG audio frames as they are) of a stream published
/// with MP3 audio over RTMP, `?duration=4`: ffprobe finds one mp3 stream that decodes without
/// errors, about 38 frames a second, and a duration that is the recording's media time and its
/// wall time (RECORDING_END's unix start and stop).
#[test]
fn mp3_file() {
    let _g = serial();
    let dir = TempDir::new("mp3rec");
    let (h, ends) = collector(dir.path(), "recording_end");
    let c = Controller::start(json!({}));
    c.api(&json!({"config": {"triggers": {
        "RECORDING_END": [{"handler": h.to_str().unwrap(), "sync": false}]
    }}}));
    let _pub = publish_mp3(&c.publish_url("live+m"), 40);
    wait_stream(&c, "live+m");
    let out = dir.path().join("m.mp3");
    let v = c.api(&json!({"push_start": ["live+m", format!("{}?duration=4", out.display())]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    wait_until("RECORDING_END", Duration::from_secs(30), || {
        !files_in(&ends).is_empty()
    });
    let p = &payloads(&ends)[0];
    assert_eq!(p[1], out.to_str().unwrap(), "{p:?}");
    assert_eq!(p[2], "MP3", "{p:?}");
    assert_eq!(p[10], "0", "{p:?}");
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        p[3].parse::<u64>().unwrap(),
        "{p:?}"
    );
    let (d, codecs) = format_probe(&out);
    assert_eq!(codecs, ["mp3"], "{out:?}");
    assert!(decode_errors(&out).is_empty(), "{out:?}");
    let media = p[7].parse::<f64>().unwrap() / 1000.0;
    let wall = p[6].parse::<f64>().unwrap() - p[5].parse::<f64>().unwrap();
    assert!((d - 4.0).abs() < 0.5, "{out:?}: {d} s");
    assert!((d - media).abs() < 0.2, "{out:?}: {d} s, media {media} s");
    // Unix seconds: the wall time is known to a second.
    assert!(
        (d - wall).abs() <= 1.5,
        "{out:?}: {d} s in {wall} s of wall time"
    );
    // 1152 samples a frame at 44.1 kHz: 38.3 frames a second.
    let (_, frames, _) = packet_counts(&out);
    assert!(
        (145..=170).contains(&frames),
        "{frames} mp3 frames in {d} s"
    );
}

/// `startunix`/`stopunix` on recording targets (INTERFACES §4.4), in unix seconds
/// (`startunix=T+3&stopunix=T+7`) and relative to the start of the recorder (values ≤ 36000:
/// `startunix=3&stopunix=7`). Each recorder waits for its start, records up to its stop (from
/// the keyframe at or before the start: keyframes are 2 s apart), finishes the file and exits
/// 0: RECORDING_END code 0 with its unix start and stop in the window, PUSH_END `finished`,
/// the file 4 to 6 s long.
#[test]
fn startunix_stopunix_window() {
    let _g = serial();
    let dir = TempDir::new("unixwindow");
    let (h, ends) = collector(dir.path(), "recording_end");
    let (ph, push_ends) = collector(dir.path(), "push_end");
    let c = Controller::start(json!({}));
    c.api(&json!({"config": {"triggers": {
        "RECORDING_END": [{"handler": h.to_str().unwrap(), "sync": false}],
        "PUSH_END": [{"handler": ph.to_str().unwrap(), "sync": false}]
    }}}));
    let _pub = publish(&c.publish_url("live+u"), "320x240", 40);
    wait_stream(&c, "live+u");
    let t0 = now_unix();
    let targets = [
        format!(
            "{}/abs.mkv?startunix={}&stopunix={}",
            dir.path().display(),
            t0 + 3,
            t0 + 7
        ),
        format!("{}/rel.ts?startunix=3&stopunix=7", dir.path().display()),
    ];
    for t in &targets {
        let v = c.api(&json!({"push_start": ["live+u", t]}));
        assert!(v.get("push_start_error").is_none(), "{v}");
    }
    // Nothing is written before the start (t0 + 3 at the earliest).
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !dir.path().join("abs.mkv").exists() && !dir.path().join("rel.ts").exists(),
        "a file before startunix"
    );
    wait_until("2 RECORDING_END", Duration::from_secs(30), || {
        files_in(&ends).len() >= 2
    });
    for p in payloads(&ends) {
        assert_eq!(p[10], "0", "{p:?}");
        let (start, stop): (u64, u64) = (p[5].parse().unwrap(), p[6].parse().unwrap());
        assert!(
            start >= t0 + 3 && start <= t0 + 6,
            "started at {start}, t0 {t0}: {p:?}"
        );
        assert!(
            stop >= t0 + 7 && stop <= t0 + 11,
            "stopped at {stop}, t0 {t0}: {p:?}"
        );
        let file = PathBuf::from(&p[1]);
        assert!(decode_errors(&file).is_empty(), "{file:?}");
        let (d, _) = format_probe(&file);
        assert!((3.5..=6.6).contains(&d), "{file:?}: {d} s");
    }
    wait_until("2 PUSH_END", Duration::from_secs(20), || {
        files_in(&push_ends).len() >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    for f in files_in(&push_ends) {
        let text = std::fs::read_to_string(&f).unwrap();
        let status: serde_json::Value =
            serde_json::from_str(text.split('\n').nth(5).unwrap()).unwrap();
        assert_eq!(status["state"], "finished", "{text:?}");
    }
}
