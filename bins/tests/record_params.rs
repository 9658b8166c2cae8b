//! Recording parameters and rule options of issue 12 end to end (INTERFACES §2 `auto_push`,
//! §4.4): `.aac` files and `append` to a `.ts`, `recstart`/`recstop` on a VoD stream, an
//! auto-push rule's `scheduletime`/`completetime` window, and PUSH_OUT_START aborting a push
//! with an empty answer. ffmpeg publishes, the controller records, ffprobe judges.

mod common;

use common::recording::{decode_errors, format_probe, payloads, vod_source};
use common::{
    collector, files_in, packet_counts, publish, serial, wait_stream, wait_until, Controller,
    TempDir,
};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
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
