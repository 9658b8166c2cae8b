//! How controller-run recordings end (issue 12): `split=10` gives files that start at keyframes
//! and follow on without gap or overlap, each closed with a RECORDING_END whose lines say so;
//! a 5 MB tmpfs filling up mid-recording leaves valid files and a RECORDING_END (and PUSH_END)
//! with the error. ffmpeg publishes over RTMP, the controller runs the recorders, ffprobe judges.

mod common;

use common::recording::{decode_errors, duration, payloads, video_packets, vod_source, Tmpfs};
use common::{collector, files_in, publish, serial, wait_stream, wait_until, Controller, TempDir};
use std::path::PathBuf;
use std::time::Duration;

/// `?split=10&duration=30` pushes (Matroska, FLV, MP4) of a stream with a keyframe every 2 s:
/// three files each, every one starting at a keyframe. RECORDING_END says `split` for all but
/// the last (`completed`); the first media ms of a file is the keyframe right after the last
/// frame of the previous one (no overlap, no gap of more than one 40 ms frame); and what
/// ffprobe finds in each file spans exactly the media time between the two starts.
#[test]
fn split_files_follow_on_without_gap_or_overlap() {
    let _g = serial();
    let dir = TempDir::new("split10");
    let (h, ends) = collector(dir.path(), "recording_end");
    let c = Controller::start(serde_json::json!({}));
    c.api(&serde_json::json!({"config": {"triggers": {
        "RECORDING_END": [{"handler": h.to_str().unwrap(), "sync": false}]
    }}}));
    let _pub = publish(&c.publish_url("live+s"), "320x240", 60);
    wait_stream(&c, "live+s");
    let exts = ["mkv", "flv", "mp4"];
    for ext in exts {
        let target = format!(
            "{}/{ext}/$wildcard-$hour$minute$second.{ext}?split=10&duration=30",
            dir.path().display()
        );
        let v = c.api(&serde_json::json!({"push_start": ["live+s", target]}));
        assert!(v.get("push_start_error").is_none(), "{v}");
    }
    wait_until("9 RECORDING_END", Duration::from_secs(90), || {
        files_in(&ends).len() >= 9
    });
    let all = payloads(&ends);
    assert_eq!(all.len(), 9, "{all:?}");
    for ext in exts {
        let mut files: Vec<Vec<String>> = all
            .iter()
            .filter(|p| p[1].ends_with(&format!(".{ext}")))
            .cloned()
            .collect();
        assert_eq!(files.len(), 3, "{ext}: {files:?}");
        let num = |p: &Vec<String>, i: usize| p[i].parse::<i64>().unwrap();
        files.sort_by_key(|p| num(p, 8));
        for (i, p) in files.iter().enumerate() {
            assert_eq!(p[0], "live+s");
            assert_eq!(p[10], "0", "{p:?}");
            let last = i == files.len() - 1;
            assert_eq!(p[11], if last { "completed" } else { "split" }, "{p:?}");
            let file = PathBuf::from(&p[1]);
            assert_eq!(
                std::fs::metadata(&file).unwrap().len(),
                num(p, 3) as u64,
                "{p:?}"
            );
            assert!(decode_errors(&file).is_empty(), "{file:?}");
            let pk = video_packets(&file);
            assert!(
                pk.first().is_some_and(|k| k.1),
                "{file:?} starts without a keyframe"
            );
            let mut pts: Vec<f64> = pk.iter().map(|k| k.0).collect();
            pts.sort_by(f64::total_cmp);
            let span = pts.last().unwrap() - pts.first().unwrap() + 0.04;
            if let Some(next) = files.get(i + 1) {
                let (end, start) = (num(p, 9), num(next, 8));
                assert!(
                    start > end - 1 && start - end <= 40,
                    "{ext}: file {i} ends at {end} ms, the next starts at {start} ms"
                );
                // Keyframes every 2 s and split=10: each full file holds 10 s.
                let media = (start - num(p, 8)) as f64 / 1000.0;
                assert!((media - 10.0).abs() < 0.05, "{p:?}");
                assert!(
                    (span - media).abs() < 0.05,
                    "{file:?}: {span} s of video, {media} s of media"
                );
            }
            // The container's duration covers the frames (Duration / moov / metadata).
            let d = duration(&file);
            assert!(
                (d - span).abs() < 0.15,
                "{file:?}: duration {d}, frames {span}"
            );
        }
        let total = (num(&files[2], 9) - num(&files[0], 8)) as f64 / 1000.0;
        assert!((total - 30.0).abs() < 0.5, "{ext}: {total} s in all");
    }
}

/// push_start of a stream to a 5 MB tmpfs (.mkv, .mp4 and .fmp4 side by side) until it is
/// full: each recording ends with RECORDING_END code 4 and the OS's error, its byte count the
/// file's size, the file decodes and has its index; PUSH_END and push_list show the push failed
/// with that error, push_list's bytes and media ms those of the file. The media time reported
/// for `.fmp4` (whose last fragment is lost with the failed write, along with the frames
/// buffered for it) is that of the fragments on disk: what ffprobe finds in the file.
#[test]
fn full_disk_ends_with_the_error() {
    let _g = serial();
    let dir = TempDir::new("enospc");
    let (h, ends) = collector(dir.path(), "recording_end");
    let (ph, push_ends) = collector(dir.path(), "push_end");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let _fs = Tmpfs::mount(&mnt);
    let c = Controller::start(serde_json::json!({}));
    c.api(&serde_json::json!({"config": {"triggers": {
        "RECORDING_END": [{"handler": h.to_str().unwrap(), "sync": false}],
        "PUSH_END": [{"handler": ph.to_str().unwrap(), "sync": false}]
    }}}));
    let _pub = publish(&c.publish_url("live+d"), "640x480", 90);
    wait_stream(&c, "live+d");
    for ext in ["mkv", "mp4", "fmp4"] {
        let target = format!("{}/$wildcard.{ext}", mnt.display());
        let v = c.api(&serde_json::json!({"push_start": ["live+d", target]}));
        assert!(v.get("push_start_error").is_none(), "{v}");
    }
    wait_until("3 RECORDING_END", Duration::from_secs(80), || {
        files_in(&ends).len() >= 3
    });
    let all = payloads(&ends);
    assert_eq!(all.len(), 3, "{all:?}");
    for p in all {
        assert_eq!(p[0], "live+d");
        assert_eq!(p[10], "4", "{p:?}");
        assert!(
            p[11].contains("No space left on device"),
            "the error is not in RECORDING_END: {p:?}"
        );
        let file = PathBuf::from(&p[1]);
        assert!(file.starts_with(&mnt), "{p:?}");
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            p[3].parse::<u64>().unwrap(),
            "{p:?}"
        );
        assert!(decode_errors(&file).is_empty(), "{file:?}");
        let d = duration(&file);
        assert!(d > 1.0, "{file:?}: duration {d}");
        let media = p[7].parse::<f64>().unwrap() / 1000.0;
        assert!(
            (d - media).abs() < 1.0,
            "{file:?}: duration {d}, media {media}"
        );
        if p[1].ends_with(".fmp4") {
            // The video frames in the file span the media time reported (to a frame or two);
            // counting the frames of the lost fragment would add up to a second.
            let mut pts: Vec<f64> = video_packets(&file).iter().map(|k| k.0).collect();
            pts.sort_by(f64::total_cmp);
            let span = pts.last().unwrap() - pts.first().unwrap() + 0.04;
            assert!(
                (span - media).abs() < 0.2,
                "{file:?}: {span} s of video, RECORDING_END says {media} s"
            );
        }
    }
    wait_until("3 PUSH_END", Duration::from_secs(20), || {
        files_in(&push_ends).len() >= 3
    });
    std::thread::sleep(Duration::from_millis(300));
    for f in files_in(&push_ends) {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 6, "{text:?}");
        let status: serde_json::Value = serde_json::from_str(lines[5]).unwrap();
        assert_eq!(status["state"], "error", "{text:?}");
        assert!(
            status["error"]
                .as_str()
                .is_some_and(|e| e.contains("No space left on device")),
            "{text:?}"
        );
    }
    let l = c.push_list();
    assert_eq!(l.len(), 3, "{l:?}");
    assert!(
        l.iter().all(|p| p[5]["state"] == "error"
            && p[5]["error"]
                .as_str()
                .is_some_and(|e| e.contains("No space left on device"))),
        "{l:?}"
    );
    // push_list says what is on disk.
    for p in &l {
        let file = PathBuf::from(p[3].as_str().unwrap());
        assert_eq!(
            p[5]["bytes"].as_u64(),
            Some(std::fs::metadata(&file).unwrap().len()),
            "{p}"
        );
        let media = p[5]["media_ms"].as_f64().unwrap() / 1000.0;
        let d = duration(&file);
        assert!((d - media).abs() < 1.0, "{p}: duration {d}");
    }
}

/// `?realtime` on a VoD stream (a 6 s MP4 file): the recording takes at least the media's
/// length of wall time (RECORDING_END's seconds and unix start/stop), where without it the file
/// is read as fast as it can be; both files are complete.
#[test]
fn realtime_records_vod_at_playback_speed() {
    let _g = serial();
    let dir = TempDir::new("realtime");
    let src = dir.path().join("src.mp4");
    vod_source(&src);
    let (h, ends) = collector(dir.path(), "recording_end");
    let c = Controller::start(serde_json::json!({
        "vod": {"name": "vod", "source": src.to_str().unwrap(), "inputtimeout": 30}
    }));
    c.api(&serde_json::json!({"config": {"triggers": {
        "RECORDING_END": [{"handler": h.to_str().unwrap(), "sync": false}]
    }}}));
    for name in ["rt.mkv?realtime", "fast.mkv"] {
        let target = format!("{}/{name}", dir.path().display());
        let v = c.api(&serde_json::json!({"push_start": ["vod", target]}));
        assert!(v.get("push_start_error").is_none(), "{v}");
    }
    wait_until("2 RECORDING_END", Duration::from_secs(60), || {
        files_in(&ends).len() >= 2
    });
    for p in payloads(&ends) {
        assert_eq!(p[10], "0", "{p:?}");
        let media: i64 = p[7].parse().unwrap();
        assert!(media >= 5500, "{p:?}");
        let file = PathBuf::from(&p[1]);
        assert!(decode_errors(&file).is_empty(), "{file:?}");
        assert!(
            (duration(&file) - media as f64 / 1000.0).abs() < 0.5,
            "{p:?}"
        );
        if p[1].ends_with("rt.mkv") {
            let secs: u64 = p[4].parse().unwrap();
            let wall = p[6].parse::<u64>().unwrap() - p[5].parse::<u64>().unwrap();
            assert!(
                secs >= 5 && wall >= 5,
                "a realtime recording of {media} ms took {secs} s: {p:?}"
            );
        }
    }
}
