//! End to end: triggers fired by the processes that own the events, with real handler scripts
//! (which write their argv and stdin to files) and ffmpeg publishing over RTMP.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn active(ctl: &Controller) -> Vec<String> {
    ctl.active_streams()
}

fn wait_for_stream(ctl: &Controller, name: &str) {
    ctl.wait_active(name, Duration::from_secs(20));
}

/// A handler script: records `argv[1]` and the payload (one record per call, ended by a line
/// `--`) in `DIR/NAME.log`, then runs `answer` (shell, with the payload in `$p`).
fn handler(dir: &Path, name: &str, answer: &str) -> String {
    handler_script(dir, name, answer)
}

fn log_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

/// The records of a handler log: (argv[1], payload lines).
fn records(text: &str) -> Vec<(String, Vec<String>)> {
    handler_records(text)
}

fn trig(handler: &str, sync: bool) -> serde_json::Value {
    serde_json::json!({"handler": handler, "sync": sync, "streams": [], "default": ""})
}

#[test]
fn stream_key_is_rewritten_to_a_wildcard_stream_and_wrong_keys_are_refused() {
    let dir = TempDir::new("trig-rw");
    let d = dir.path();
    // The seed's Twitch-like setup: the key in the URL is looked up, the push goes to live+USER.
    let rtmp_rw = handler(
        d,
        "rtmp_rw",
        "case \"$p\" in *'/live/SECRETKEY'*) printf 'rtmp://127.0.0.1/live/live+alice' ;; esac",
    );
    let push_rw = handler(d, "push_rw", "printf '%s' \"$p\" | sed -n 3p | tr -d '\\n'");
    let ctl = Controller::start_edited(serde_json::json!({}), |c| {
        c["config"]["triggers"] = serde_json::json!({
            "RTMP_PUSH_REWRITE": [trig(&rtmp_rw, true)],
            "PUSH_REWRITE": [trig(&push_rw, true)],
        });
        c["streamkeys"] = serde_json::json!({"BOBSKEY": "live+bob"});
    });

    let _alice = publish(&ctl.publish_url("SECRETKEY"), "320x240", 30);
    wait_for_stream(&ctl, "live+alice");
    let streams = probe_streams(&ctl.play_url("live+alice"));
    assert!(
        streams.iter().any(|s| s["codec_name"] == "h264"),
        "{streams:?}"
    );

    let rtmp_log = wait_file(&log_of(d, "rtmp_rw"), |t| t.contains("SECRETKEY"));
    let recs = records(&rtmp_log);
    let url = format!("rtmp://127.0.0.1:{}/live/SECRETKEY", ctl.rtmp);
    let r = recs
        .iter()
        .find(|r| r.1[0] == url)
        .expect("RTMP_PUSH_REWRITE record");
    assert_eq!(r.0, "RTMP_PUSH_REWRITE");
    assert_eq!(r.1, [url.as_str(), "127.0.0.1"], "RTMP URL, peer");
    // PUSH_REWRITE sees the rewritten URL and the stream it names.
    let push_log = wait_file(&log_of(d, "push_rw"), |t| t.contains("live+alice"));
    let recs = records(&push_log);
    assert_eq!(recs[0].0, "PUSH_REWRITE");
    assert_eq!(
        recs[0].1,
        [
            "rtmp://127.0.0.1/live/live+alice",
            "127.0.0.1",
            "live+alice"
        ],
        "URL, peer, stream"
    );

    // A wrong key: RTMP_PUSH_REWRITE answers nothing, the publisher is refused.
    let mut wrong = publish(&ctl.publish_url("WRONGKEY"), "320x240", 5);
    let status = wrong.0.wait().unwrap();
    assert!(!status.success(), "a push with a wrong key was accepted");
    assert!(!active(&ctl).iter().any(|s| s.contains("WRONGKEY")));

    // A `streamkeys` entry maps without any trigger.
    let _bob = publish(&ctl.publish_url("BOBSKEY"), "320x240", 30);
    wait_for_stream(&ctl, "live+bob");
    let all = std::fs::read_to_string(log_of(d, "rtmp_rw")).unwrap();
    assert!(
        !all.contains("BOBSKEY"),
        "stream key went through the rewrite: {all}"
    );
}

#[test]
fn a_hung_rewrite_handler_delays_only_its_own_publish() {
    let dir = TempDir::new("trig-hung");
    let d = dir.path();
    let started = d.join("slow-started");
    let rw = handler(
        d,
        "rw",
        &format!(
            "case \"$p\" in *slow*) touch '{}'; sleep 60 ;; esac\nprintf '%s' \"$p\" | head -n 1 | tr -d '\\n'",
            started.display()
        ),
    );
    let ctl = Controller::start_edited(serde_json::json!({}), |c| {
        c["config"]["triggers"] = serde_json::json!({"RTMP_PUSH_REWRITE": [trig(&rw, true)]});
    });
    let _slow = publish(&ctl.publish_url("live+slow"), "320x240", 60);
    wait_file(&started, |_| true);
    // While that handler hangs, another stream publishes and plays.
    let _fast = publish(&ctl.publish_url("live+fast"), "320x240", 30);
    wait_for_stream(&ctl, "live+fast");
    let (frames, size) = decode_video_frames(&ctl.play_url("live+fast"), Duration::from_secs(3));
    assert!(frames > 0, "no frames from live+fast");
    assert_eq!(size, "320x240");
    assert!(
        !active(&ctl).iter().any(|s| s == "live+slow"),
        "the hung handler's publish went through"
    );
    // The API (the controller's event loop) answers meanwhile.
    assert!(ctl.api(&serde_json::json!({"config": true}))["config"].is_object());
}

/// A tiny HTTP handler server: answers each request from `answers` in turn (status, body) and
/// keeps the raw requests.
fn http_handler(answers: Vec<(u16, &'static str)>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            // Read the head, then Content-Length bytes of body.
            loop {
                let n = c.read(&mut tmp).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..n]);
                let t = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = t.find("\r\n\r\n") {
                    let len = t[..i]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        break;
                    }
                }
            }
            s.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).to_string());
            let (code, body) = answers.next().unwrap_or((200, ""));
            let _ = write!(
                c,
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn http_handler_gets_the_headers_and_is_retried() {
    // First attempt fails (503), the second renames the push.
    let (port, seen) = http_handler(vec![(503, "busy"), (200, "live+carol")]);
    let ctl = Controller::start_edited(serde_json::json!({}), |c| {
        c["config"]["serverid"] = serde_json::json!("mist-test");
        c["config"]["triggers"] = serde_json::json!({
            "PUSH_REWRITE": [trig(&format!("http://127.0.0.1:{port}/hook"), true)],
        });
    });
    let _p = publish(&ctl.publish_url("anything"), "320x240", 30);
    wait_for_stream(&ctl, "live+carol");
    let reqs = seen.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for (i, r) in reqs.iter().enumerate() {
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        let head_l = head.to_ascii_lowercase();
        assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
        for h in [
            "x-trigger: push_rewrite",
            "x-name: mist-test",
            "content-type: text/plain",
            &format!("x-attempt: {}", i + 1),
        ] {
            assert!(head_l.contains(h), "{h} missing in {head}");
        }
        for h in [
            "x-instance: ",
            "x-pid: ",
            "x-trigger-uuid: ",
            "x-trigger-unixmillis: ",
            "date: ",
        ] {
            assert!(head_l.contains(h), "{h} missing in {head}");
        }
        assert_eq!(
            body,
            format!(
                "rtmp://127.0.0.1:{}/live/anything\n127.0.0.1\nanything",
                ctl.rtmp
            )
        );
    }
}

/// The live buffer's life as handlers see it, in order per stream: STREAM_READY, LIVE_TRACK_LIST,
/// STREAM_BUFFER FULL … DRY … EMPTY, STREAM_UNLOAD, STREAM_END; payload lines per §5.3.
#[test]
fn buffer_lifecycle_triggers_fire_in_order_with_their_payloads() {
    let dir = TempDir::new("trig-life");
    let d = dir.path();
    let h = handler(d, "life", "echo true");
    let names = [
        "STREAM_READY",
        "LIVE_TRACK_LIST",
        "STREAM_BUFFER",
        "STREAM_UNLOAD",
        "STREAM_END",
    ];
    let ctl = Controller::start_edited(
        serde_json::json!({"live": {"name": "live", "source": "push://", "idleTime": 2000}}),
        |c| {
            let mut t = serde_json::Map::new();
            for n in names {
                t.insert(
                    n.into(),
                    serde_json::json!([{"handler": h, "sync": n == "STREAM_READY", "streams": ["live"]}]),
                );
            }
            c["config"]["triggers"] = serde_json::Value::Object(t);
        },
    );
    let mut p = publish(&ctl.publish_url("live+life"), "320x240", 4);
    let _ = p.0.wait();
    let text = wait_file(&log_of(d, "life"), |t| t.contains("STREAM_END\n"));
    let recs = records(&text);
    let order: Vec<String> = recs
        .iter()
        .map(|(n, l)| {
            if n == "STREAM_BUFFER" {
                format!("{n} {}", l[1])
            } else {
                n.clone()
            }
        })
        .collect();
    let pos = |x: &str| {
        order
            .iter()
            .position(|o| o == x)
            .unwrap_or_else(|| panic!("{x} missing in {order:?}"))
    };
    assert!(pos("STREAM_READY") < pos("STREAM_BUFFER FULL"), "{order:?}");
    assert!(
        pos("STREAM_BUFFER FULL") < pos("STREAM_BUFFER EMPTY"),
        "{order:?}"
    );
    assert!(
        pos("STREAM_BUFFER EMPTY") < pos("STREAM_UNLOAD"),
        "{order:?}"
    );
    assert!(pos("STREAM_UNLOAD") < pos("STREAM_END"), "{order:?}");
    for (n, l) in &recs {
        assert_eq!(l[0], "live+life", "{n}: first line is the stream");
        match n.as_str() {
            "STREAM_READY" => assert_eq!(l[1..], ["Buffer"]),
            "STREAM_BUFFER" if l[1] == "EMPTY" => assert_eq!(l.len(), 2, "{l:?}"),
            "STREAM_BUFFER" => {
                assert!(["FULL", "DRY", "RECOVER"].contains(&l[1].as_str()), "{l:?}");
                let health: serde_json::Value = serde_json::from_str(&l[2]).unwrap();
                assert!(health["buffer"].is_i64(), "{health}");
                assert_eq!(l.len(), 3);
            }
            "LIVE_TRACK_LIST" => {
                let tracks: serde_json::Value = serde_json::from_str(&l[1]).unwrap();
                let codecs: Vec<&str> = tracks
                    .as_object()
                    .unwrap()
                    .values()
                    .filter_map(|t| t["codec"].as_str())
                    .collect();
                assert!(
                    codecs.contains(&"H264") && codecs.contains(&"AAC"),
                    "{tracks}"
                );
            }
            "STREAM_UNLOAD" => {
                assert_eq!(l[1], "Buffer");
                assert!(l[2].starts_with("uncancelable"), "{l:?}");
            }
            "STREAM_END" => {
                assert_eq!(l.len(), 7, "{l:?}");
                for x in &l[1..] {
                    assert!(x.parse::<u64>().is_ok(), "{l:?}");
                }
            }
            _ => {}
        }
    }
}

#[test]
fn default_stream_trigger_gives_a_fallback_and_input_abort_fires() {
    let dir = TempDir::new("trig-def");
    let d = dir.path();
    let def = handler(
        d,
        "def",
        "case \"$p\" in *refuse*) ;; *) printf 'live+main' ;; esac",
    );
    let abort = handler(d, "abort", "");
    let ctl = Controller::start_edited(serde_json::json!({}), |c| {
        c["config"]["defaultStream"] = serde_json::json!("live+main");
        c["config"]["triggers"] = serde_json::json!({
            "DEFAULT_STREAM": [trig(&def, true)],
            "INPUT_ABORT": [trig(&abort, false)],
        });
    });
    let _p = publish(&ctl.publish_url("live+main"), "320x240", 60);
    wait_for_stream(&ctl, "live+main");
    let streams = probe_streams(&ctl.play_url("nosuchstream"));
    assert!(
        streams.iter().any(|s| s["codec_name"] == "h264"),
        "the fallback did not play: {streams:?}"
    );
    let text = wait_file(&log_of(d, "def"), |t| t.contains("nosuchstream"));
    let r = &records(&text)[0];
    assert_eq!(r.0, "DEFAULT_STREAM");
    assert_eq!(r.1[0], "live+main", "defaultStream");
    assert_eq!(r.1[1], "nosuchstream", "requested");
    assert_eq!(r.1[2], "127.0.0.1", "peer");
    assert_eq!(r.1[3], "RTMP", "connector");
    assert!(r.1[4].starts_with("rtmp://127.0.0.1:"), "{:?}", r.1);
    // An empty answer is an error for the viewer.
    let out = std::process::Command::new("timeout")
        .args(["15", "ffprobe", "-v", "error", &ctl.play_url("refuseme")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEFAULT_STREAM gave no fallback"), "{err}");

    // A buffer killed by SIGABRT: INPUT_ABORT (a SIGSEGV sent with kill(1) is ignored by Rust's
    // stack-overflow handler, so it cannot stand in for a crash here).
    let buf = find_child(ctl.proc.pid(), "MistInBuffer").expect("MistInBuffer child");
    assert!(std::process::Command::new("kill")
        .args(["-ABRT", &buf.to_string()])
        .status()
        .unwrap()
        .success());
    let text = wait_file(&log_of(d, "abort"), |t| t.contains("ABORT"));
    let r = &records(&text)[0];
    assert_eq!(r.0, "INPUT_ABORT");
    assert_eq!(
        r.1,
        [
            "live+main",
            "push://",
            "MistInBuffer",
            &buf.to_string(),
            "ABORT",
            "killed by signal 6"
        ]
    );
}

/// Controller-owned triggers: SYSTEM_START (version), OUTPUT_START (protocol JSON), STREAM_ADD /
/// STREAM_CONFIG (name, config JSON; false rejects), STREAM_REMOVE (name; false keeps).
#[test]
fn controller_triggers_system_output_and_stream_changes() {
    let dir = TempDir::new("trig-ctl");
    let d = dir.path();
    let note = handler(d, "note", "echo true");
    let keep = handler(d, "keep", "echo false");
    let ctl = Controller::start_edited(serde_json::json!({}), |c| {
        c["config"]["triggers"] = serde_json::json!({
            "SYSTEM_START": [trig(&note, true)],
            "OUTPUT_START": [trig(&note, false)],
            "STREAM_ADD": [trig(&note, true)],
            "STREAM_CONFIG": [trig(&note, true)],
            "STREAM_REMOVE": [trig(&keep, true)],
        });
    });
    ctl.api(&serde_json::json!({"addstream": {"cam": {"source": "push://"}}}));
    ctl.api(&serde_json::json!({"addstream": {"cam": {"source": "push://10.0.0.1"}}}));
    ctl.api(&serde_json::json!({"deletestream": "cam"}));
    let text = wait_file(&log_of(d, "note"), |t| {
        t.contains("STREAM_CONFIG\n") && t.contains("OUTPUT_START\n")
    });
    let recs = records(&text);
    let get = |n: &str| {
        recs.iter()
            .find(|r| r.0 == n)
            .unwrap_or_else(|| panic!("{n} missing: {recs:?}"))
            .1
            .clone()
    };
    assert_eq!(get("SYSTEM_START"), [env!("CARGO_PKG_VERSION")]);
    let proto: serde_json::Value = serde_json::from_str(&get("OUTPUT_START")[0]).unwrap();
    assert_eq!(proto["connector"], "RTMP");
    let add = get("STREAM_ADD");
    assert_eq!(add[0], "cam");
    let cfg: serde_json::Value = serde_json::from_str(&add[1]).unwrap();
    assert_eq!(cfg["source"], "push://");
    let change = get("STREAM_CONFIG");
    let cfg: serde_json::Value = serde_json::from_str(&change[1]).unwrap();
    assert_eq!(cfg["source"], "push://10.0.0.1");
    // STREAM_REMOVE answered false: the stream stays.
    let keep_log = wait_file(&log_of(d, "keep"), |t| t.contains("STREAM_REMOVE"));
    assert_eq!(records(&keep_log)[0].1, ["cam"]);
    let streams = ctl.api(&serde_json::json!({"streams": true}));
    assert!(streams["streams"]["cam"].is_object(), "{streams}");
}

/// RTMP viewers: CONN_OPEN, USER_NEW (once per session; false refuses), CONN_PLAY, CONN_CLOSE.
#[test]
fn rtmp_viewer_triggers_play_rewrite_and_user_new_refusal() {
    let dir = TempDir::new("trig-view");
    let d = dir.path();
    let conn = handler(d, "conn", "echo true");
    let user = handler(
        d,
        "user",
        "case \"$p\" in live+secret*) echo false ;; *) echo true ;; esac",
    );
    // PLAY_REWRITE: `alias` plays live+open, `gone` is refused, other names stay.
    let rewrite = handler(
        d,
        "rewrite",
        "case \"$p\" in alias*) printf 'live+open' ;; gone*) ;; *) printf '%s' \"$p\" | head -n 1 ;; esac",
    );
    let ctl = Controller::start_edited(serde_json::json!({}), |c| {
        c["config"]["triggers"] = serde_json::json!({
            "CONN_OPEN": [trig(&conn, true)],
            "CONN_PLAY": [trig(&conn, true)],
            "CONN_CLOSE": [trig(&conn, false)],
            "USER_NEW": [trig(&user, true)],
            "PLAY_REWRITE": [trig(&rewrite, true)],
        });
    });
    let _a = publish(&ctl.publish_url("live+open"), "320x240", 60);
    let _b = publish(&ctl.publish_url("live+secret"), "320x240", 60);
    wait_for_stream(&ctl, "live+open");
    wait_for_stream(&ctl, "live+secret");
    for _ in 0..2 {
        let streams = probe_streams(&ctl.play_url("live+open"));
        assert!(
            streams.iter().any(|s| s["codec_name"] == "h264"),
            "{streams:?}"
        );
    }
    let out = std::process::Command::new("timeout")
        .args(["15", "ffprobe", "-v", "error", &ctl.play_url("live+secret")])
        .output()
        .unwrap();
    assert!(!out.status.success(), "USER_NEW false did not refuse");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("USER_NEW"), "{err}");

    let aliased = probe_streams(&ctl.play_url("alias"));
    assert!(
        aliased.iter().any(|s| s["codec_name"] == "h264"),
        "{aliased:?}"
    );
    let out = std::process::Command::new("timeout")
        .args(["15", "ffprobe", "-v", "error", &ctl.play_url("gone")])
        .output()
        .unwrap();
    assert!(!out.status.success(), "PLAY_REWRITE empty did not refuse");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PLAY_REWRITE"));
    let rw = records(&std::fs::read_to_string(log_of(d, "rewrite")).unwrap());
    let alias_url = format!("rtmp://127.0.0.1:{}/play/alias", ctl.rtmp);
    assert!(
        rw.iter()
            .any(|r| r.0 == "PLAY_REWRITE"
                && r.1 == ["alias", "127.0.0.1", "RTMP", alias_url.as_str()]),
        "{rw:?}"
    );
    let closes = |t: &str, stream: &str| {
        records(t)
            .iter()
            .filter(|r| r.0 == "CONN_CLOSE" && r.1[0] == stream)
            .count()
    };
    let text = wait_file(&log_of(d, "conn"), |t| {
        closes(t, "live+open") == 3 && closes(t, "live+secret") == 1
    });
    let recs = records(&text);
    // The viewer USER_NEW refused after its CONN_OPEN got its CONN_CLOSE (and no CONN_PLAY).
    let secret_url = format!("rtmp://127.0.0.1:{}/play/live+secret", ctl.rtmp);
    for (n, count) in [("CONN_OPEN", 1), ("CONN_PLAY", 0), ("CONN_CLOSE", 1)] {
        let of: Vec<_> = recs
            .iter()
            .filter(|r| r.0 == n && r.1[0] == "live+secret")
            .collect();
        assert_eq!(of.len(), count, "{n}: {recs:?}");
        for r in of {
            assert_eq!(
                r.1,
                ["live+secret", "127.0.0.1", "RTMP", secret_url.as_str()]
            );
        }
    }
    let url = format!("rtmp://127.0.0.1:{}/play/live+open", ctl.rtmp);
    for n in ["CONN_OPEN", "CONN_PLAY", "CONN_CLOSE"] {
        let of: Vec<_> = recs
            .iter()
            .filter(|r| r.0 == n && r.1[0] == "live+open")
            .collect();
        assert_eq!(of.len(), 3, "{n}: {recs:?}");
        assert_eq!(
            of[0].1,
            ["live+open", "127.0.0.1", "RTMP", url.as_str()],
            "{n}"
        );
    }
    // USER_NEW: once for the two plays of live+open (same session), once for live+secret.
    let urecs = records(&std::fs::read_to_string(log_of(d, "user")).unwrap());
    let open: Vec<_> = urecs.iter().filter(|r| r.1[0] == "live+open").collect();
    assert_eq!(open.len(), 1, "{urecs:?}");
    let l = &open[0].1;
    assert_eq!(l[..5], ["live+open", "127.0.0.1", "", "RTMP", url.as_str()]);
    // MistServer's session id: the SHA-256 of the fields sessionViewerMode selects.
    assert_eq!(l[5].len(), 64, "session id {l:?}");
    assert!(
        l[5].bytes().all(|b| b.is_ascii_hexdigit()),
        "session id {l:?}"
    );
    assert!(urecs.iter().any(|r| r.1[0] == "live+secret"));
}

/// HTTP players: USER_NEW once per session (an HLS player's playlist and segment requests are
/// one session), false refuses with 403 (HTTP-TS and HLS alike).
#[test]
fn http_user_new_once_per_session_and_refusal() {
    let dir = TempDir::new("trig-http");
    let d = dir.path();
    let user = handler(
        d,
        "user",
        "case \"$p\" in live+secret*) echo false ;; *) echo true ;; esac",
    );
    let ctl = Controller::start_full(
        serde_json::json!({}),
        Some(serde_json::json!([{"connector": "HTTPTS"}, {"connector": "HLS"}])),
        None,
        |c| {
            c["config"]["triggers"] = serde_json::json!({"USER_NEW": [trig(&user, true)]});
        },
    );
    assert!(wait_port(ctl.http, Duration::from_secs(10)));
    let _a = publish(&ctl.publish_url("live+open"), "320x240", 60);
    let _b = publish(&ctl.publish_url("live+secret"), "320x240", 60);
    wait_for_stream(&ctl, "live+open");
    wait_for_stream(&ctl, "live+secret");
    let hls = url(ctl.http, "/hls/live+open/index.m3u8");
    let (frames, _) = decode_video_frames(&hls, Duration::from_secs(4));
    assert!(frames > 0, "no frames over HLS");
    let ts = url(ctl.http, "/live+open.ts");
    assert!(probe_streams(&ts).iter().any(|s| s["codec_name"] == "h264"));
    for path in ["/live+secret.ts", "/hls/live+secret/index.m3u8"] {
        let raw = http_raw(
            ctl.http,
            format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes(),
            Duration::from_secs(20),
        );
        let head = String::from_utf8_lossy(&raw);
        assert!(head.starts_with("HTTP/1.1 403"), "{path}: {head}");
    }
    let recs = records(&std::fs::read_to_string(log_of(d, "user")).unwrap());
    let hls_open: Vec<_> = recs
        .iter()
        .filter(|r| r.1[0] == "live+open" && r.1[3] == "HLS")
        .collect();
    assert_eq!(hls_open.len(), 1, "USER_NEW per HLS request: {recs:?}");
    // The HTTP-TS probe from the same address without a token is the same session under the
    // default sessionViewerMode 14 (the connector is not part of the id): its USER_NEW answer
    // was reused.
    assert!(
        !recs
            .iter()
            .any(|r| r.1[0] == "live+open" && r.1[3] == "HTTP"),
        "{recs:?}"
    );
    assert!(recs.iter().all(|r| r.0 == "USER_NEW" && r.1.len() == 6));
}

/// `#tag` entries of a handler's `streams` (§5.1): a handler limited to `#vip` fires for a
/// wildcard stream of a config tagged `vip` (`tags`), for a stream tagged with `tag_stream`
/// before it started and for one tagged while it plays, and not for an untagged stream; fired by
/// the controller (STREAM_PUSH), the buffer (STREAM_BUFFER) and the RTMP output (CONN_PLAY).
#[test]
fn tag_entries_match_config_and_runtime_tags() {
    let dir = TempDir::new("trig-tags");
    let d = dir.path();
    let vip = handler(d, "vip", "echo true");
    let all = handler(d, "all", "echo true");
    let ctl = Controller::start_edited(
        serde_json::json!({"vip": {"name": "vip", "source": "push://", "tags": ["vip"]}}),
        |c| {
            let only_vip =
                |sync: bool| serde_json::json!({"handler": vip, "sync": sync, "streams": ["#vip"]});
            // The unrestricted handler runs after the `#vip` one for the same event: once it
            // has seen an event of a stream, the `#vip` one would have too.
            c["config"]["triggers"] = serde_json::json!({
                "STREAM_PUSH": [only_vip(true), trig(&all, true)],
                "STREAM_BUFFER": [only_vip(false), trig(&all, false)],
                "CONN_PLAY": [only_vip(true), trig(&all, true)],
            });
        },
    );
    // Tagged before it starts: the tag waits for the stream.
    ctl.api(&serde_json::json!({"tag_stream": {"live+b": "vip"}}));
    let _a = publish(&ctl.publish_url("vip+a"), "320x240", 60);
    let _b = publish(&ctl.publish_url("live+b"), "320x240", 60);
    let _c = publish(&ctl.publish_url("live+c"), "320x240", 60);
    for s in ["vip+a", "live+b", "live+c"] {
        wait_for_stream(&ctl, s);
    }
    let fired = |text: &str, trigger: &str, stream: &str| {
        records(text).iter().any(|(n, l)| {
            n == trigger
                && l.first().is_some_and(|s| s == stream)
                && (n != "STREAM_BUFFER" || l.get(1).is_some_and(|s| s == "FULL"))
        })
    };
    let seen_by = |name: &str, trigger: &str, streams: &[&str]| {
        wait_file(&log_of(d, name), |t| {
            streams.iter().all(|s| fired(t, trigger, s))
        })
    };
    let streams = ["vip+a", "live+b", "live+c"];
    for trigger in ["STREAM_PUSH", "STREAM_BUFFER"] {
        seen_by("all", trigger, &streams);
        let text = seen_by("vip", trigger, &["vip+a", "live+b"]);
        assert!(!fired(&text, trigger, "live+c"), "{trigger}: {text}");
    }
    for s in streams {
        let st = probe_streams(&ctl.play_url(s));
        assert!(st.iter().any(|x| x["codec_name"] == "h264"), "{s}: {st:?}");
    }
    seen_by("all", "CONN_PLAY", &streams);
    let text = seen_by("vip", "CONN_PLAY", &["vip+a", "live+b"]);
    assert!(!fired(&text, "CONN_PLAY", "live+c"), "{text}");

    // Tagged while it plays: the output sees the tag once it re-reads the trigger file (it
    // checks it twice a second), so a viewer after that fires the handler.
    ctl.api(&serde_json::json!({"tag_stream": {"live+c": "vip"}}));
    let tags = ctl.api(&serde_json::json!({"stream_tags": "live+c"}));
    assert_eq!(
        tags["stream_tags"]["live+c"],
        serde_json::json!(["vip"]),
        "{tags}"
    );
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = probe_streams(&ctl.play_url("live+c"));
        assert!(st.iter().any(|x| x["codec_name"] == "h264"), "{st:?}");
        let text = std::fs::read_to_string(log_of(d, "vip")).unwrap_or_default();
        if fired(&text, "CONN_PLAY", "live+c") {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "CONN_PLAY never fired for live+c tagged at run time: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
