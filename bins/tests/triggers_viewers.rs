//! End to end: what the viewer triggers promise beyond their payloads (issue 11). Every
//! CONN_OPEN gets its CONN_CLOSE and every USER_NEW its USER_END, exactly once, even when the
//! output serving the viewer is SIGKILLed (the controller fires them); PLAY_REWRITE renames or
//! refuses HTTP players too; CONN_STOP fires when playback reaches the end of the data (RTMP,
//! RTSP, HTTP progressive; HLS when its session ends); an RTSP viewer that leaves while its play
//! is decided gets its CONN_CLOSE; one hls.js player in headless Chromium is one USER_NEW. Real
//! players (ffmpeg, ffprobe, curl, Chromium), real handler scripts.

mod common;

use common::browser::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Sessions end this many seconds after their last activity in these tests (the controller and
/// its children inherit it; every test here sets the same value).
const TIMEOUT: &str = "3";

fn trig(handler: &str, sync: bool) -> Value {
    json!({"handler": handler, "sync": sync, "streams": [], "default": "true"})
}

/// A controller with `streams` (besides `live`), the HTTP `protocols` and `triggers`, its HTTP
/// port listening.
fn start(streams: Value, protocols: Value, triggers: Value) -> Controller {
    let ctl = Controller::start_full(streams, Some(protocols), None, |c| {
        c["config"]["triggers"] = triggers;
    });
    assert!(wait_port(ctl.http, Duration::from_secs(10)));
    ctl
}

/// ffmpeg publishing `secs` of `size` video to `stream`, which is active when this returns.
fn live(ctl: &Controller, stream: &str, size: &str, secs: u32) -> Proc {
    let p = publish(&ctl.publish_url(stream), size, secs);
    ctl.wait_active(stream, Duration::from_secs(20));
    p
}

/// The records of `DIR/NAME.log`: (trigger, payload lines).
fn records(d: &Path, name: &str) -> Vec<(String, Vec<String>)> {
    handler_records(&std::fs::read_to_string(d.join(format!("{name}.log"))).unwrap_or_default())
}

/// The payloads of trigger `name` whose line `at` is `value`.
fn payloads(
    recs: &[(String, Vec<String>)],
    name: &str,
    at: usize,
    value: &str,
) -> Vec<Vec<String>> {
    recs.iter()
        .filter(|r| r.0 == name && r.1.get(at).map(String::as_str) == Some(value))
        .map(|r| r.1.clone())
        .collect()
}

/// ffmpeg decoding `url` until it ends (its own process: a test may stop or kill it).
fn player(url: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i", url])
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg (scripts/test installs it)");
    Proc(child)
}

/// (protocol, bytes up) of the `clients` rows of `stream`.
fn clients(ctl: &Controller, stream: &str) -> Vec<(String, u64)> {
    let v = ctl.api(&json!({"clients": {"streams": [stream], "fields": ["protocol", "up"]}}));
    v["clients"]["data"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r[0].as_str().unwrap_or("").to_string(),
                        r[1].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How many times each payload occurs.
fn counted(list: Vec<Vec<String>>) -> BTreeMap<Vec<String>, usize> {
    let mut m = BTreeMap::new();
    for p in list {
        *m.entry(p).or_default() += 1;
    }
    m
}

#[test]
fn killed_outputs_still_get_every_conn_close_and_user_end_once() {
    let _g = serial();
    std::env::set_var("MIST_SESSION_TIMEOUT", TIMEOUT);
    let dir = TempDir::new("trigv-kill");
    let d = dir.path();
    let ev = handler_script(d, "ev", "echo true");
    let ctl = start(
        json!({}),
        json!([{"connector": "HLS"}, {"connector": "HTTPTS"}]),
        json!({
            "CONN_OPEN": [trig(&ev, true)],
            "CONN_CLOSE": [trig(&ev, false)],
            "USER_NEW": [trig(&ev, true)],
            "USER_END": [trig(&ev, false)],
        }),
    );
    let _pub = live(&ctl, "live+k", "320x240", 120);
    // Three viewers, three sessions (the tokens tell the HTTP ones apart).
    let players = [
        player(&ctl.play_url("live+k")),
        player(&url(ctl.http, "/live+k.ts?tkn=ts")),
        player(&url(ctl.http, "/hls/live+k/index.m3u8?tkn=hls")),
    ];
    wait_until("the three players playing", Duration::from_secs(40), || {
        let rows = clients(&ctl, "live+k");
        ["RTMP", "HTTP", "HLS"]
            .iter()
            .all(|p| rows.iter().any(|(c, up)| c == p && *up > 0))
    });
    // The players freeze with their connections open; the outputs serving them die.
    for p in &players {
        assert!(signal(p.pid(), "STOP"));
    }
    for bin in ["MistOutRTMP", "MistOutHTTP"] {
        let pid = find_child(ctl.proc.pid(), bin).unwrap_or_else(|| panic!("{bin} child"));
        assert!(signal(pid, "KILL"), "kill {bin}");
    }
    drop(players);

    let connectors = ["RTMP", "HTTP", "HLS"];
    let closed_all = || {
        let recs = records(d, "ev");
        connectors.iter().all(|c| {
            let open = payloads(&recs, "CONN_OPEN", 2, c);
            !open.is_empty() && counted(open) == counted(payloads(&recs, "CONN_CLOSE", 2, c))
        })
    };
    let sids = || -> Vec<String> {
        records(d, "ev")
            .into_iter()
            .filter(|r| r.0 == "USER_NEW")
            .filter_map(|r| r.1.get(5).cloned())
            .collect()
    };
    let ended = |sid: &str| {
        records(d, "ev")
            .iter()
            .filter(|r| r.0 == "USER_END" && r.1.last().map(String::as_str) == Some(sid))
            .count()
    };
    wait_until(
        "a CONN_CLOSE for every CONN_OPEN",
        Duration::from_secs(30),
        closed_all,
    );
    wait_until(
        "a USER_END for every USER_NEW",
        Duration::from_secs(40),
        || sids().iter().all(|s| ended(s) > 0),
    );
    // Nothing more comes: once each.
    std::thread::sleep(Duration::from_secs(8));
    let recs = records(d, "ev");
    assert!(closed_all(), "{recs:?}");
    let sids = sids();
    assert_eq!(sids.len(), 3, "one USER_NEW per player: {recs:?}");
    for s in &sids {
        assert_eq!(ended(s), 1, "USER_END of {s}: {recs:?}");
    }
    for c in connectors {
        for p in payloads(&recs, "CONN_CLOSE", 2, c) {
            assert_eq!(p.len(), 4, "{p:?}");
            assert_eq!(p[..3], ["live+k", "127.0.0.1", c], "{p:?}");
        }
    }
}

#[test]
fn play_rewrite_renames_or_refuses_http_players() {
    let _g = serial();
    std::env::set_var("MIST_SESSION_TIMEOUT", TIMEOUT);
    let dir = TempDir::new("trigv-rw");
    let d = dir.path();
    // `alias` plays live+open, `gone` is refused (empty answer), other names stay.
    let rw = handler_script(
        d,
        "rw",
        "case \"$p\" in alias*) printf 'live+open' ;; gone*) ;; *) printf '%s' \"$p\" | head -n 1 ;; esac",
    );
    let conn = handler_script(d, "conn", "echo true");
    let ctl = start(
        json!({}),
        json!([{"connector": "HLS"}, {"connector": "HTTPTS"}]),
        json!({
            "PLAY_REWRITE": [trig(&rw, true)],
            "CONN_OPEN": [trig(&conn, true)],
            "USER_NEW": [trig(&conn, true)],
        }),
    );
    let _pub = live(&ctl, "live+open", "320x240", 90);

    let ts = probe_streams(&url(ctl.http, "/alias.ts"));
    assert!(ts.iter().any(|s| s["codec_name"] == "h264"), "{ts:?}");
    let (frames, _) = decode_video_frames(
        &url(ctl.http, "/hls/alias/index.m3u8"),
        Duration::from_secs(4),
    );
    assert!(frames > 0, "no frames from the rewritten HLS stream");
    for path in ["/gone.ts", "/hls/gone/index.m3u8"] {
        let (head, body) = http_get_text(ctl.http, path);
        assert_eq!(status_of(&head), 403, "{path}: {head}");
        assert!(body.contains("PLAY_REWRITE"), "{path}: {body}");
    }

    let rws = records(d, "rw");
    let alias_url = format!("http://127.0.0.1:{}/alias.ts", ctl.http);
    assert!(
        rws.iter()
            .any(|r| r.0 == "PLAY_REWRITE"
                && r.1 == ["alias", "127.0.0.1", "HTTP", alias_url.as_str()]),
        "{rws:?}"
    );
    assert!(
        rws.iter()
            .any(|r| r.1.first().map(String::as_str) == Some("alias") && r.1[2] == "HLS"),
        "{rws:?}"
    );
    // The viewer triggers after it name the stream played; the refused ones fire none.
    let recs = records(d, "conn");
    let opens: Vec<_> = recs.iter().filter(|r| r.0 == "CONN_OPEN").collect();
    assert!(
        opens
            .iter()
            .any(|r| r.1 == ["live+open", "127.0.0.1", "HTTP", alias_url.as_str()]),
        "{recs:?}"
    );
    assert!(
        recs.iter()
            .all(|r| r.1.first().map(String::as_str) == Some("live+open")),
        "{recs:?}"
    );
    let users: Vec<_> = recs.iter().filter(|r| r.0 == "USER_NEW").collect();
    assert!(!users.is_empty(), "{recs:?}");
}

/// A client run to its end (`timeout 40` bounds it): whether it exited 0.
fn run_client(args: &[&str]) -> bool {
    Command::new("timeout")
        .arg("40")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run a client (scripts/test installs ffmpeg and curl)")
        .success()
}

/// ffmpeg decoding `url` to its end, as its own process.
fn play_to_end(url: &str, extra: &[&str]) -> Proc {
    let child = Command::new("timeout")
        .args(["40", "ffmpeg", "-hide_banner", "-loglevel", "error"])
        .args(extra)
        .args(["-i", url, "-f", "null", "-"])
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    Proc(child)
}

#[test]
fn conn_stop_fires_when_playback_reaches_the_end_of_the_data() {
    let _g = serial();
    std::env::set_var("MIST_SESSION_TIMEOUT", TIMEOUT);
    let dir = TempDir::new("trigv-stop");
    let d = dir.path();
    let file = d.join("short.mp4");
    make_mp4(&file, "320x240", 3);
    let ev = handler_script(d, "ev", "");
    let rtsp = free_port();
    let ctl = start(
        json!({"vodstop": {"name": "vodstop", "source": file.display().to_string()}}),
        json!([
            {"connector": "HTTPTS"}, {"connector": "FLV"}, {"connector": "MP4"},
            {"connector": "HLS"},
            {"connector": "RTSP", "port": rtsp, "interface": "127.0.0.1"},
        ]),
        json!({"CONN_STOP": [trig(&ev, false)]}),
    );
    assert!(wait_port(rtsp, Duration::from_secs(10)), "no MistOutRTSP");
    // Real time (RTMP, RTSP: 3 s of media) and an HLS session (it ends TIMEOUT s after its
    // last request) at once; the HTTP progressive players meanwhile, one after the other.
    let paced = [
        play_to_end(&ctl.play_url("vodstop"), &[]),
        play_to_end(
            &format!("rtsp://127.0.0.1:{rtsp}/vodstop"),
            &["-rtsp_transport", "tcp"],
        ),
        play_to_end(&url(ctl.http, "/hls/vodstop/index.m3u8?tkn=hls"), &[]),
    ];
    // Progressive files of the VoD stream, each played to its end: the shared feed (TS, FLV)
    // and the moov-first MP4 (curl: one GET of the whole file).
    let ffmpeg = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i"];
    for ext in ["ts", "flv"] {
        let u = url(ctl.http, &format!("/vodstop.{ext}"));
        let args: Vec<&str> = ffmpeg
            .iter()
            .copied()
            .chain([u.as_str(), "-f", "null", "-"])
            .collect();
        assert!(run_client(&args), "{u} did not play to its end");
    }
    let mp4 = url(ctl.http, "/vodstop.mp4");
    assert!(run_client(&[
        "curl",
        "-sSf",
        "-o",
        "/dev/null",
        mp4.as_str()
    ]));
    // A client that stops before the end (a Range short of it) reached no end of data.
    assert!(run_client(&[
        "curl",
        "-sSf",
        "-r",
        "0-9999",
        "-o",
        "/dev/null",
        mp4.as_str()
    ]));
    for mut p in paced {
        // (ffmpeg may call the server closing after the end an error: not asserted.)
        let _ = wait_exit(&mut p.0, Duration::from_secs(40));
    }
    let want = [("HTTP", 3), ("RTMP", 1), ("RTSP", 1), ("HLS", 1)];
    let count = |c: &str| payloads(&records(d, "ev"), "CONN_STOP", 2, c).len();
    wait_until("CONN_STOP of every player", Duration::from_secs(20), || {
        want.iter().all(|(c, n)| count(c) >= *n)
    });
    std::thread::sleep(Duration::from_millis(1500));
    let recs = records(d, "ev");
    for (c, n) in want {
        let p = payloads(&recs, "CONN_STOP", 2, c);
        assert_eq!(p.len(), n, "{c}: {recs:?}");
        for p in p {
            // stream, peer, connector and an empty line (the handler's `$(cat)` drops it).
            assert_eq!(p, ["vodstop", "127.0.0.1", c], "{recs:?}");
        }
    }
    assert_eq!(recs.len(), 6, "only these CONN_STOPs: {recs:?}");
}

/// An RTSP viewer that leaves while its play is decided (a slow USER_NEW) still gets the
/// CONN_CLOSE its CONN_OPEN owes, with the same payload; one that plays (here: ffprobe) gets
/// its pair too.
#[test]
fn rtsp_viewer_leaving_while_decided_gets_its_conn_close() {
    let _g = serial();
    std::env::set_var("MIST_SESSION_TIMEOUT", TIMEOUT);
    let dir = TempDir::new("trigv-rtsp");
    let d = dir.path();
    let file = d.join("short.mp4");
    make_mp4(&file, "320x240", 3);
    let ev = handler_script(d, "ev", "echo true");
    let slow = handler_script(d, "slow", "sleep 3; echo true");
    let rtsp = free_port();
    let _ctl = Controller::start_full(
        json!({"vodr": {"name": "vodr", "source": file.display().to_string()}}),
        Some(json!([{"connector": "RTSP", "port": rtsp, "interface": "127.0.0.1"}])),
        None,
        |c| {
            c["config"]["triggers"] = json!({
                "CONN_OPEN": [trig(&ev, true)],
                "USER_NEW": [trig(&slow, true)],
                "CONN_CLOSE": [trig(&ev, false)],
            });
        },
    );
    assert!(wait_port(rtsp, Duration::from_secs(10)), "no MistOutRTSP");
    let u = format!("rtsp://127.0.0.1:{rtsp}/vodr");
    // Gone after 1.5 s: while USER_NEW (3 s) decides.
    let probe = [
        "ffprobe",
        "-v",
        "error",
        "-rtsp_transport",
        "tcp",
        u.as_str(),
    ];
    let st = Command::new("timeout")
        .arg("1.5")
        .args(probe)
        .stdin(Stdio::null())
        .status()
        .expect("run ffprobe");
    assert!(!st.success(), "ffprobe was not cut while USER_NEW decided");
    let expected = ["vodr", "127.0.0.1", "RTSP", u.as_str()];
    let of = |name: &str| {
        records(d, "ev")
            .into_iter()
            .filter(|r| r.0 == name)
            .map(|r| r.1)
            .collect::<Vec<_>>()
    };
    wait_until(
        "the CONN_CLOSE of the viewer that left",
        Duration::from_secs(20),
        || !of("CONN_CLOSE").is_empty(),
    );
    assert_eq!(of("CONN_OPEN"), [expected], "{:?}", records(d, "ev"));
    assert_eq!(of("CONN_CLOSE"), [expected], "{:?}", records(d, "ev"));
    assert_eq!(
        payloads(&records(d, "slow"), "USER_NEW", 0, "vodr").len(),
        1,
        "{:?}",
        records(d, "slow")
    );
    // A viewer that stays (the session's USER_NEW answer is cached now): its pair as well.
    let streams = probe_streams_rtsp(&u);
    assert!(
        streams.iter().any(|s| s["codec_name"] == "h264"),
        "{streams:?}"
    );
    wait_until("the second CONN_CLOSE", Duration::from_secs(20), || {
        of("CONN_CLOSE").len() == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(of("CONN_OPEN"), [expected, expected]);
    assert_eq!(of("CONN_CLOSE"), [expected, expected]);
}

/// ffprobe's streams of an RTSP URL, over interleaved TCP.
fn probe_streams_rtsp(u: &str) -> Vec<Value> {
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-rtsp_transport", "tcp"])
        .args(["-show_streams", "-of", "json", u])
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {u}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["streams"].as_array().cloned().unwrap_or_default()
}

/// Every trigger the code names (string literals of the trigger families in bins/src and the
/// library crates) has its entry in man/mistserver.conf.5 (a `.B`/`.BR` line) and in
/// docs/triggers.md.
#[test]
fn man_page_and_docs_list_every_trigger_the_code_fires() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let man = std::fs::read_to_string(root.join("man/mistserver.conf.5")).unwrap();
    let docs = std::fs::read_to_string(root.join("docs/triggers.md")).unwrap();
    const FAMILIES: &[&str] = &[
        "SYSTEM",
        "OUTPUT",
        "STREAM",
        "LIVE",
        "INPUT",
        "RTMP",
        "PUSH",
        "RECORDING",
        "CONN",
        "DEFAULT",
        "USER",
        "PLAY",
    ];
    let mut files = Vec::new();
    let mut dirs = vec![root.join("bins/src"), root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for lit in text.split('"').skip(1).step_by(2) {
            let family = lit.split('_').next().unwrap_or("");
            if lit.contains('_')
                && lit.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                && FAMILIES.contains(&family)
            {
                names.insert(lit.to_string());
            }
        }
    }
    assert!(names.len() >= 30, "{names:?}");
    let in_man = |n: &str| {
        man.lines().any(|l| {
            (l.starts_with(".B ") || l.starts_with(".BR "))
                && l.split([' ', '"', ',']).any(|w| w == n)
        })
    };
    for n in &names {
        assert!(in_man(n), "{n} is not in man/mistserver.conf.5");
        assert!(
            docs.contains(&format!("`{n}`")),
            "{n} is not in docs/triggers.md"
        );
    }
}

#[test]
fn one_hls_js_player_in_chromium_is_one_user_new() {
    let _g = serial();
    std::env::set_var("MIST_SESSION_TIMEOUT", TIMEOUT);
    ensure_chromium();
    let modules = ensure_node_modules();
    let dir = TempDir::new("trigv-hlsjs");
    let d = dir.path();
    let user = handler_script(d, "user", "echo true");
    let ctl = start(
        json!({}),
        json!([{"connector": "HLS"}]),
        json!({"USER_NEW": [trig(&user, true)]}),
    );
    let _pub = live(&ctl, "live+web", "640x360", 90);
    // No request of ours before the player's: its first one decides the session.
    std::thread::sleep(Duration::from_secs(8));
    let job = format!("hls=http://127.0.0.1:{}/hls/live+web/index.m3u8", ctl.http);
    let results = play_js(&modules, 8, &[job]);
    let r = &results[0];
    assert_eq!(r["started"], true, "never started playing: {r}");
    assert!(
        r["advanced"].as_f64().unwrap_or(0.0) >= 4.0,
        "currentTime advanced too little: {r}"
    );
    let recs = records(d, "user");
    let of: Vec<_> = recs
        .iter()
        .filter(|r| r.0 == "USER_NEW" && r.1.first().map(String::as_str) == Some("live+web"))
        .collect();
    assert_eq!(of.len(), 1, "USER_NEW per hls.js player: {recs:?}");
    assert_eq!(of[0].1[1], "127.0.0.1", "{of:?}");
    assert_eq!(of[0].1[3], "HLS", "{of:?}");
}

/// The controller's stop triggers and MistInBuffer's LIVE_BANDWIDTH (no other test fires them):
/// SYSTEM_STOP answered false cancels an API shutdown and is told `signal` on SIGTERM;
/// OUTPUT_STOP for a deleted protocol and for each protocol left at shutdown; LIVE_BANDWIDTH only for
/// the handlers whose `params` threshold the stream's rate reaches, and a blocking one answering
/// false ends the stream.
#[test]
fn system_stop_output_stop_and_live_bandwidth_fire() {
    let _g = serial();
    std::env::set_var("MIST_SESSION_TIMEOUT", TIMEOUT);
    let dir = TempDir::new("trigv-stop-ctl");
    let d = dir.path();
    let note = handler_script(d, "note", "echo true");
    let keep = handler_script(d, "keep", "echo false");
    let huge = handler_script(d, "huge", "echo true");
    let cut = handler_script(d, "cut", "echo false");
    let rtsp = free_port();
    let mut ctl = Controller::start_full(
        json!({}),
        Some(json!([{"connector": "RTSP", "port": rtsp, "interface": "127.0.0.1"}])),
        None,
        |c| {
            c["config"]["triggers"] = json!({
                "SYSTEM_STOP": [trig(&keep, true)],
                "OUTPUT_STOP": [trig(&note, false)],
                "LIVE_BANDWIDTH": [
                    {"handler": note, "sync": false, "streams": ["live"], "params": "1000"},
                    {"handler": huge, "sync": false, "streams": [], "params": "1000000000000"},
                    {"handler": cut, "sync": true, "streams": ["live+cut"], "params": "1000"},
                ],
            });
        },
    );
    let _pub = live(&ctl, "live+bw", "320x240", 60);
    let bw = || payloads(&records(d, "note"), "LIVE_BANDWIDTH", 0, "live+bw");
    wait_until("LIVE_BANDWIDTH", Duration::from_secs(30), || {
        !bw().is_empty()
    });
    let p = &bw()[0];
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[1].parse::<u64>().is_ok_and(|b| b >= 1000),
        "bytes/s {p:?}"
    );
    assert!(records(d, "huge").is_empty(), "{:?}", records(d, "huge"));
    // A blocking handler answering false ends the stream.
    let _cut = live(&ctl, "live+cut", "320x240", 60);
    wait_until(
        "live+cut ended by LIVE_BANDWIDTH",
        Duration::from_secs(40),
        || !ctl.active_streams().iter().any(|s| s == "live+cut"),
    );
    let c = payloads(&records(d, "cut"), "LIVE_BANDWIDTH", 0, "live+cut");
    assert!(!c.is_empty());
    assert!(ctl.active_streams().iter().any(|s| s == "live+bw"));

    let v = ctl.api(&json!({"shutdown": true}));
    assert_eq!(v["shutdown"], "Aborted by SYSTEM_STOP trigger", "{v}");
    assert_eq!(
        payloads(&records(d, "keep"), "SYSTEM_STOP", 0, "API shutdown").len(),
        1
    );
    assert!(ctl.active_streams().iter().any(|s| s == "live+bw"));

    assert!(
        wait_port(rtsp, Duration::from_secs(10)),
        "MistOutRTSP never listened"
    );
    ctl.api(&json!({"deleteprotocol": {"connector": "RTSP"}}));
    let stops = |connector: &str| {
        records(d, "note")
            .into_iter()
            .filter(|r| r.0 == "OUTPUT_STOP")
            .filter(|r| {
                serde_json::from_str::<Value>(&r.1[0]).is_ok_and(|j| j["connector"] == connector)
            })
            .count()
    };
    wait_until("OUTPUT_STOP of RTSP", Duration::from_secs(20), || {
        stops("RTSP") == 1
    });

    assert!(signal(ctl.proc.pid(), "TERM"));
    let st = wait_exit(&mut ctl.proc.0, Duration::from_secs(40));
    assert!(st.is_some(), "the controller did not stop");
    let keep_recs = records(d, "keep");
    assert_eq!(
        payloads(&keep_recs, "SYSTEM_STOP", 0, "signal").len(),
        1,
        "{keep_recs:?}"
    );
    // The non-blocking OUTPUT_STOP handlers ran before the controller exited.
    assert_eq!(stops("RTMP"), 1, "{:?}", records(d, "note"));
    assert_eq!(stops("HTTP"), 1, "{:?}", records(d, "note"));
    assert_eq!(stops("RTSP"), 1, "{:?}", records(d, "note"));
}
