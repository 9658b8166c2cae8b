//! Recordings (crate::record) end to end: ffmpeg publishes over RTMP to the controller, the
//! MistOut* binaries record the stream's shared memory to files standalone, ffprobe judges.

mod common;

use common::recording::{probe, Tmpfs};
use common::{
    publish, serial, signal, wait_stream, wait_until, walk_sorted, Controller, Proc, TempDir,
};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin(name: &str) -> &'static str {
    match name {
        "MistOutEBML" => env!("CARGO_BIN_EXE_MistOutEBML"),
        "MistOutTS" => env!("CARGO_BIN_EXE_MistOutTS"),
        "MistOutFLV" => env!("CARGO_BIN_EXE_MistOutFLV"),
        "MistOutMP4" => env!("CARGO_BIN_EXE_MistOutMP4"),
        _ => panic!("{name}"),
    }
}

/// A recorder of `stream` to `target` with extra arguments, in the controller's shm.
fn recorder(c: &Controller, out: &str, stream: &str, target: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin(out));
    cmd.args(["-s", stream])
        .args(extra)
        .arg(target)
        .env("MIST_SHM_DIR", &c.shm)
        .env_remove("MIST_CONTROL")
        .stdin(Stdio::null());
    cmd
}

/// The exit code of a recorder, which must exit within `within`.
fn wait_exit(p: &mut Proc, within: Duration) -> Option<i32> {
    common::wait_exit(&mut p.0, within)
        .expect("recorder did not exit")
        .code()
}

/// Two wildcard streams recorded by every file output to `$wildcard/$datetime.EXT` for 6 s:
/// each file exits 0 with a Duration within 1 s of 6 s and decodes without errors.
#[test]
fn duration_recordings_in_every_format() {
    let _g = serial();
    let c = Controller::start(serde_json::json!({}));
    let dir = TempDir::new("rec");
    let _a = publish(&c.publish_url("live+alice"), "320x240", 30);
    let _b = publish(&c.publish_url("live+bob"), "320x240", 30);
    wait_stream(&c, "live+alice");
    wait_stream(&c, "live+bob");
    let mut procs = Vec::new();
    for stream in ["live+alice", "live+bob"] {
        for (out, ext) in [
            ("MistOutEBML", "mkv"),
            ("MistOutTS", "ts"),
            ("MistOutFLV", "flv"),
            ("MistOutMP4", "mp4"),
            ("MistOutMP4", "fmp4"),
        ] {
            let target = format!("{}/$wildcard/$datetime.{ext}", dir.path().display());
            let child = recorder(&c, out, stream, &target, &["--duration", "6"])
                .spawn()
                .unwrap();
            procs.push((out, stream, Proc(child)));
        }
    }
    for (out, stream, p) in &mut procs {
        assert_eq!(
            wait_exit(p, Duration::from_secs(40)),
            Some(0),
            "{out} {stream}"
        );
    }
    let files = walk_sorted(dir.path());
    assert_eq!(files.len(), 10, "{files:?}");
    for who in ["alice", "bob"] {
        assert_eq!(
            files
                .iter()
                .filter(|f| f.parent().unwrap().ends_with(who))
                .count(),
            5
        );
    }
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        // $datetime: YYYY.MM.DD.hh.mm.ss
        assert_eq!(name.split('.').count(), 7, "{name}");
        let p = probe(f);
        assert!(
            (p.duration - 6.0).abs() <= 1.0,
            "{}: duration {}",
            f.display(),
            p.duration
        );
        assert!(
            p.streams.contains(&"h264".to_string()),
            "{f:?} {:?}",
            p.streams
        );
        assert!(
            p.streams.contains(&"aac".to_string()),
            "{f:?} {:?}",
            p.streams
        );
        assert!(p.decode_errors.is_empty(), "{f:?}: {}", p.decode_errors);
        assert!(
            p.first_video.is_some_and(|v| v.1),
            "{f:?} starts without a keyframe"
        );
    }
}

/// `--split 4` with a keyframe every 2 s: files of 4 s each starting at a keyframe, their
/// timestamps following on without gap or overlap.
#[test]
fn split_files_start_at_keyframes() {
    let _g = serial();
    let c = Controller::start(serde_json::json!({}));
    let dir = TempDir::new("split");
    let _a = publish(&c.publish_url("live+s"), "320x240", 30);
    wait_stream(&c, "live+s");
    for (out, ext) in [("MistOutEBML", "mkv"), ("MistOutTS", "ts")] {
        let target = format!(
            "{}/{ext}/$stream-$hour$minute$second.{ext}?split=4",
            dir.path().display()
        );
        let mut p = Proc(
            recorder(&c, out, "live+s", &target, &["--duration", "12"])
                .spawn()
                .unwrap(),
        );
        assert_eq!(wait_exit(&mut p, Duration::from_secs(40)), Some(0));
        let files = walk_sorted(&dir.path().join(ext));
        assert!(files.len() >= 3, "{ext}: {files:?}");
        let mut prev_end: Option<f64> = None;
        let mut total = 0.0;
        for f in &files {
            let p = probe(f);
            assert!(p.decode_errors.is_empty(), "{f:?}: {}", p.decode_errors);
            let (start, key) = p.first_video.unwrap();
            assert!(key, "{f:?} starts without a keyframe");
            let end = p.last_video.unwrap();
            if ext == "ts" {
                // TS keeps the stream's times: the next file starts one frame (40 ms) after
                // the last frame of the previous one.
                if let Some(prev) = prev_end {
                    assert!(
                        (start - prev - 0.04).abs() < 0.021,
                        "{f:?}: starts at {start}, previous ended at {prev}"
                    );
                }
            } else {
                // Matroska files start at 0 and each covers its frames.
                assert!(start.abs() < 0.001, "{f:?} starts at {start}");
                assert!(
                    (p.duration - (end + 0.04)).abs() < 0.1,
                    "{f:?}: {} vs {end}",
                    p.duration
                );
            }
            if f != files.last().unwrap() {
                // Full files are one split long (keyframes every 2 s, split=4).
                assert!(
                    (end - start + 0.04 - 4.0).abs() < 0.05,
                    "{f:?}: {start}..{end}"
                );
            }
            total += end - start + 0.04;
            prev_end = Some(end);
        }
        assert!((total - 12.0).abs() < 1.0, "{ext}: {total} s in all");
    }
}

/// SIGTERM: exit 0 with a complete file; SIGKILL: a file ffprobe reads up to the last flushed
/// Cluster / tag / packet.
#[test]
fn signals_leave_playable_files() {
    let _g = serial();
    let c = Controller::start(serde_json::json!({}));
    let dir = TempDir::new("sig");
    let _a = publish(&c.publish_url("live+k"), "320x240", 30);
    wait_stream(&c, "live+k");
    let mut procs = Vec::new();
    for (out, ext) in [
        ("MistOutEBML", "mkv"),
        ("MistOutTS", "ts"),
        ("MistOutFLV", "flv"),
        ("MistOutMP4", "mp4"),
    ] {
        for s in ["TERM", "KILL"] {
            if s == "KILL" && ext == "mp4" {
                continue; // progressive MP4 needs its moov; .mkv/.ts/.flv/.fmp4 survive SIGKILL
            }
            let target = format!("{}/{s}.{ext}", dir.path().display());
            let child = recorder(&c, out, "live+k", &target, &[]).spawn().unwrap();
            procs.push((s, ext, target, Proc(child)));
        }
    }
    std::thread::sleep(Duration::from_secs(7));
    for (s, _, _, p) in &procs {
        signal(p.pid(), s);
    }
    // The last video frame of each SIGTERM'd file, for its SIGKILL'd twin.
    let mut term_last = std::collections::HashMap::new();
    for (s, ext, target, p) in &mut procs {
        let code = wait_exit(p, Duration::from_secs(20));
        if *s == "TERM" {
            assert_eq!(code, Some(0), "{ext}");
        }
        let pr = probe(Path::new(target));
        assert!(pr.streams.contains(&"h264".to_string()), "{target}");
        assert!(
            pr.decode_errors.is_empty(),
            "{target}: {}",
            pr.decode_errors
        );
        if *s == "TERM" {
            let last = pr.last_video.unwrap();
            assert!(
                (pr.duration - last).abs() < 1.0 && last > 4.0,
                "{target}: duration {} last frame {last}",
                pr.duration
            );
            term_last.insert(*ext, last);
        } else {
            // Up to the last flushed second or GOP (keyframes every 2 s): at most a GOP and a
            // bit less than the twin that was stopped at the same moment with SIGTERM (TERM
            // comes first in `procs`).
            let last = pr.last_video.unwrap();
            assert!(last > 3.0, "{target}");
            let term = term_last[&*ext];
            assert!(
                last >= term - 2.5,
                "{target}: last frame at {last} s, the SIGTERM'd file's at {term} s"
            );
        }
    }
}

/// A file size limit (RLIMIT_FSIZE, as a full disk) hit mid-recording: exit code 4 and a
/// file ffprobe reads, with its index.
#[test]
fn file_size_limit_leaves_a_valid_file() {
    let _g = serial();
    let c = Controller::start(serde_json::json!({}));
    let dir = TempDir::new("full");
    let _a = publish(&c.publish_url("live+f"), "640x480", 30);
    wait_stream(&c, "live+f");
    let mut procs = Vec::new();
    for (out, ext) in [
        ("MistOutEBML", "mkv"),
        ("MistOutTS", "ts"),
        ("MistOutFLV", "flv"),
    ] {
        let target = format!("{}/full.{ext}", dir.path().display());
        // 2000 blocks of 512 bytes: about 1 MB.
        let child = Command::new("sh")
            .args([
                "-c",
                &format!("ulimit -f 2000; exec {} -s live+f '{target}'", bin(out)),
            ])
            .env("MIST_SHM_DIR", &c.shm)
            .env_remove("MIST_CONTROL")
            .spawn()
            .unwrap();
        procs.push((ext, target, Proc(child)));
    }
    for (ext, target, p) in &mut procs {
        assert_eq!(wait_exit(p, Duration::from_secs(40)), Some(4), "{ext}");
        let len = std::fs::metadata(&target).unwrap().len();
        assert!(len <= 2000 * 512 && len > 100_000, "{target}: {len} bytes");
        let pr = probe(Path::new(target));
        assert!(
            pr.decode_errors.is_empty(),
            "{target}: {}",
            pr.decode_errors
        );
        assert!(pr.duration > 0.5, "{target}: duration {}", pr.duration);
    }
}

/// The controller's auto-push rule for `live+` records two wildcard streams to
/// `$wildcard/$datetime.mkv` (and .ts/.flv/.mp4); push_list shows them with bytes; when the
/// publishers stop the files are complete and RECORDING_END gets the §5.3 payload lines; the
/// rules are saved in the config and survive a restart.
#[test]
fn auto_push_records_wildcard_streams() {
    let _g = serial();
    let c = Controller::start(serde_json::json!({}));
    let dir = TempDir::new("auto");
    let trig = dir.path().join("recording_end.sh");
    let got = dir.path().join("ends");
    std::fs::create_dir_all(&got).unwrap();
    // Handlers run concurrently: one file per payload.
    std::fs::write(
        &trig,
        format!("#!/bin/sh\ncat > '{}/end.'$$\n", got.display()),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&trig).status().unwrap();
    let cfg = c.api(&serde_json::json!({"config": {"triggers": {
        "RECORDING_END": [{"handler": trig.to_str().unwrap(), "sync": false, "streams": []}]
    }}}));
    assert!(
        cfg["config"]["triggers"]["RECORDING_END"].is_array(),
        "{cfg}"
    );
    let rec = dir.path().join("rec");
    let mut rules = Vec::new();
    for ext in ["mkv", "ts", "flv", "mp4"] {
        rules.push(serde_json::json!([
            "live+",
            format!("{}/$wildcard/$datetime.{ext}", rec.display())
        ]));
    }
    // The object form, with its stored extra fields.
    rules.push(serde_json::json!({
        "stream": "other+", "target": "/nonexistent/$stream.mkv",
        "scheduletime": 1, "completetime": 0, "start_rule": ["x", 2, "y"], "inhibit": "z"
    }));
    let v = c.api(&serde_json::json!({"push_auto_add": rules}));
    assert_eq!(v["auto_push"].as_object().unwrap().len(), 5, "{v}");
    assert_eq!(v["push_auto_list"].as_array().unwrap().len(), 5, "{v}");
    let v = c.api(&serde_json::json!({"push_auto_list": true}));
    let other = v["auto_push"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["stream"] == "other+")
        .unwrap()
        .clone();
    assert_eq!(other["inhibit"], "z");
    assert_eq!(other["start_rule"], serde_json::json!(["x", 2, "y"]));

    let a = publish(&c.publish_url("live+alice"), "320x240", 8);
    let b = publish(&c.publish_url("live+bob"), "320x240", 8);
    let started = Instant::now();
    wait_until("8 pushes", Duration::from_secs(20), || {
        let v = c.api(&serde_json::json!({"push_list": true}));
        v["push_list"].as_array().unwrap().len() == 8
    });
    wait_until("bytes in push_list", Duration::from_secs(20), || {
        let v = c.api(&serde_json::json!({"push_list": true}));
        v["push_list"].as_array().unwrap().iter().all(|p| {
            p[5]["bytes"].as_u64().unwrap_or(0) > 0 && !p[3].as_str().unwrap_or("").is_empty()
        })
    });
    let list = c.api(&serde_json::json!({"push_list": true}));
    for p in list["push_list"].as_array().unwrap() {
        assert!(p[0].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p[5]["state"], "active", "{p}");
        let stream = p[1].as_str().unwrap();
        let who = stream.strip_prefix("live+").unwrap();
        assert!(p[3].as_str().unwrap().contains(&format!("/{who}/")), "{p}");
    }
    drop((a, b));
    // The streams end; every recording finishes and RECORDING_END fires once per file.
    wait_until("8 RECORDING_END", Duration::from_secs(40), || {
        walk_sorted(&got).len() == 8
    });
    std::thread::sleep(Duration::from_millis(500));
    let wall = started.elapsed().as_secs_f64();
    for f in walk_sorted(&got) {
        let rec_end = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = rec_end.split('\n').collect();
        // 12 lines, each ending with \n (so the split leaves one empty string).
        assert_eq!(lines.len(), 13, "{rec_end:?}");
        assert_eq!(lines[12], "");
        assert!(
            lines[0] == "live+alice" || lines[0] == "live+bob",
            "{rec_end:?}"
        );
        let file = Path::new(lines[1]);
        assert!(file.exists(), "{rec_end:?}");
        assert!(
            ["EBML", "TS", "FLV", "MP4"].contains(&lines[2]),
            "{rec_end:?}"
        );
        assert_eq!(
            lines[3].parse::<u64>().unwrap(),
            std::fs::metadata(file).unwrap().len(),
            "{rec_end:?}"
        );
        let (start, stop): (u64, u64) = (lines[5].parse().unwrap(), lines[6].parse().unwrap());
        assert!(stop >= start && stop - start <= 30, "{rec_end:?}");
        let media: i64 = lines[7].parse().unwrap();
        let (first, last): (i64, i64) = (lines[8].parse().unwrap(), lines[9].parse().unwrap());
        assert_eq!(media, last - first, "{rec_end:?}");
        assert_eq!(lines[10], "0", "{rec_end:?}");
        assert_eq!(lines[11], "completed", "{rec_end:?}");
        let p = probe(file);
        assert!(p.decode_errors.is_empty(), "{file:?}: {}", p.decode_errors);
        assert!(
            p.duration > 4.0 && p.duration <= wall,
            "{file:?}: duration {} (wall {wall})",
            p.duration
        );
        assert!(
            (p.duration - media as f64 / 1000.0).abs() <= 1.0,
            "{file:?}: duration {} media {media} ms",
            p.duration
        );
    }
    // Saved and restored: the rules survive a restart.
    c.api(&serde_json::json!({"save": true}));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
    assert_eq!(saved["auto_push"].as_object().unwrap().len(), 5, "{saved}");
    let v = c.api(&serde_json::json!({"push_auto_remove": "other+"}));
    assert_eq!(v["auto_push"].as_object().unwrap().len(), 4, "{v}");
}

/// A target that cannot be opened: one error in the log and in push_list, retried with a
/// backoff (no crash loop), and the controller keeps serving.
#[test]
fn unopenable_target_is_one_error() {
    let _g = serial();
    let c = Controller::start(serde_json::json!({}));
    c.api(&serde_json::json!({"push_settings": {"wait": 2}}));
    c.api(&serde_json::json!({"push_auto_add": ["live+", "/proc/nope/$wildcard.mkv"]}));
    let _a = publish(&c.publish_url("live+x"), "320x240", 20);
    wait_until("an error in push_list", Duration::from_secs(20), || {
        let v = c.api(&serde_json::json!({"push_list": true}));
        v["push_list"].as_array().unwrap().iter().any(|p| {
            p[5]["state"] == "error"
                && p[5]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("cannot open the target"))
        })
    });
    std::thread::sleep(Duration::from_secs(8));
    let v = c.api(&serde_json::json!({"log": true, "push_list": true}));
    let errors = v["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l[2].as_str().is_some_and(|m| {
                m.starts_with("MistController: push ") && m.contains("cannot open the target")
            })
        })
        .count();
    assert_eq!(errors, 1, "{}", v["log"]);
    assert_eq!(v["push_list"].as_array().unwrap().len(), 1, "{v}");
}

/// A 5 MB tmpfs filling up mid-recording (ENOSPC): every recorder exits with code 4 and leaves
/// a file ffprobe reads; the progressive MP4 still gets its moov (kept room past the end).
#[test]
fn full_disk_leaves_valid_files() {
    let _g = serial();
    let c = Controller::start(serde_json::json!({}));
    let dir = TempDir::new("tmpfs");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let _fs = Tmpfs::mount(&mnt);
    let _a = publish(&c.publish_url("live+d"), "640x480", 60);
    wait_stream(&c, "live+d");
    let mut procs = Vec::new();
    for (out, ext) in [
        ("MistOutEBML", "mkv"),
        ("MistOutTS", "ts"),
        ("MistOutFLV", "flv"),
        ("MistOutMP4", "mp4"),
    ] {
        let target = format!("{}/d.{ext}", mnt.display());
        let child = recorder(&c, out, "live+d", &target, &[]).spawn().unwrap();
        procs.push((ext, target, Proc(child)));
    }
    for (ext, target, p) in &mut procs {
        assert_eq!(wait_exit(p, Duration::from_secs(60)), Some(4), "{ext}");
        let pr = probe(Path::new(target));
        assert!(
            pr.decode_errors.is_empty(),
            "{target}: {}",
            pr.decode_errors
        );
        assert!(pr.duration > 1.0, "{target}: duration {}", pr.duration);
        assert!(pr.streams.contains(&"h264".to_string()), "{target}");
    }
}

/// push_start/push_stop with PUSH_END's payload lines, PUSH_OUT_START rewriting a target; SIGTERM of the controller finishes the
/// recordings it runs; the auto-push rules are back after a restart.
#[test]
fn push_start_stop_push_end_and_restart() {
    let _g = serial();
    let mut c = Controller::start(serde_json::json!({}));
    let dir = TempDir::new("pstart");
    let ends = dir.path().join("ends");
    std::fs::create_dir_all(&ends).unwrap();
    let trig = dir.path().join("push_end.sh");
    std::fs::write(
        &trig,
        format!("#!/bin/sh\ncat > '{}/end.'$$\n", ends.display()),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&trig).status().unwrap();
    // PUSH_OUT_START rewrites .mkv targets to …-rw.mkv.
    let rw = dir.path().join("push_out_start.sh");
    std::fs::write(
        &rw,
        "#!/bin/sh\nread s; read t\ncase \"$t\" in *.mkv) echo \"${t%.mkv}-rw.mkv\";; *) printf '%s' \"$t\";; esac\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&rw).status().unwrap();
    c.api(&serde_json::json!({"config": {"triggers": {
        "PUSH_END": [{"handler": trig.to_str().unwrap(), "sync": false}],
        "PUSH_OUT_START": [{"handler": rw.to_str().unwrap(), "sync": true}]
    }}}));
    let auto = format!("{}/auto/$wildcard.ts", dir.path().display());
    c.api(&serde_json::json!({"push_auto_add": {"stream": "live+", "target": auto}}));
    let _a = publish(&c.publish_url("live+p"), "320x240", 60);
    wait_stream(&c, "live+p");
    let manual = format!("{}/manual.mkv", dir.path().display());
    let v = c.api(&serde_json::json!({"push_start": ["live+p", manual]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    wait_until("two pushes writing", Duration::from_secs(20), || {
        let v = c.api(&serde_json::json!({"push_list": true}));
        let l = v["push_list"].as_array().unwrap();
        l.len() == 2 && l.iter().all(|p| p[5]["bytes"].as_u64().unwrap_or(0) > 0)
    });
    std::thread::sleep(Duration::from_secs(3));
    let v = c.api(&serde_json::json!({"push_list": true}));
    let m = v["push_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[2] == manual.as_str())
        .unwrap()
        .clone();
    c.api(&serde_json::json!({"push_stop": [m[0].clone()]}));
    wait_until("PUSH_END", Duration::from_secs(20), || {
        walk_sorted(&ends).len() == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    let payload = std::fs::read_to_string(&walk_sorted(&ends)[0]).unwrap();
    let lines: Vec<&str> = payload.split('\n').collect();
    assert_eq!(lines.len(), 6, "{payload:?}");
    assert_eq!(lines[0], m[5]["id"].to_string(), "{payload:?}");
    assert_eq!(lines[1], "live+p");
    let used = format!("{}/manual-rw.mkv", dir.path().display());
    assert_eq!(lines[2], manual);
    assert_eq!(lines[3], used);
    assert_eq!(m[3], used.as_str());
    let logs: serde_json::Value = serde_json::from_str(lines[4]).unwrap();
    assert!(logs.is_array(), "{payload:?}");
    let status: serde_json::Value = serde_json::from_str(lines[5]).unwrap();
    assert_eq!(status["state"], "finished", "{payload:?}");
    assert!(status["bytes"].as_u64().unwrap() > 0, "{payload:?}");
    assert!(!Path::new(&manual).exists());
    let p = probe(Path::new(&used));
    assert!(p.duration > 2.0 && p.decode_errors.is_empty(), "{used}");

    // SIGTERM of the controller: the auto recording is finished, the rule is saved.
    c.api(&serde_json::json!({"save": true}));
    signal(c.proc.pid(), "TERM");
    wait_exit(&mut c.proc, Duration::from_secs(30));
    let ts = dir.path().join("auto/p.ts");
    let p = probe(&ts);
    assert!(p.duration > 2.0 && p.decode_errors.is_empty(), "{ts:?}");
    let child = Command::new(env!("CARGO_BIN_EXE_MistController"))
        .arg("-c")
        .arg(&c.config)
        .env("MIST_SHM_DIR", &c.shm)
        .env("MIST_CONTROL", c.dir.path().join("control.sock"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    c.proc = Proc(child);
    assert!(common::wait_port(c.api, Duration::from_secs(10)));
    let v = c.api(&serde_json::json!({"push_auto_list": true}));
    let rules = v["auto_push"].as_object().unwrap();
    assert_eq!(rules.len(), 1, "{v}");
    assert_eq!(rules.values().next().unwrap()["target"], auto.as_str());
}
