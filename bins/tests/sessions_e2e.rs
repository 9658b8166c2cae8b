//! End to end: viewer sessions across processes and requests. Real players (ffmpeg pulling HLS
//! and RTMP from a publish) are one session each in `clients`, USER_END fires once per player
//! after it stopped, with plausible byte counts; the session commands; the Prometheus metrics on
//! the API port only under the configured path, in a format prometheus_client parses.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sessions end this many seconds after their last activity in these tests.
const TIMEOUT: &str = "3";

fn start(d: &Path, prometheus: Option<&str>) -> Controller {
    start_mode(d, prometheus, None)
}

/// [`start`] with a `sessionViewerMode`.
fn start_mode(d: &Path, prometheus: Option<&str>, mode: Option<u8>) -> Controller {
    // The controller (and its children) inherit it; every test here sets the same value.
    std::env::set_var("MIST_SESSION_TIMEOUT", TIMEOUT);
    let end = handler(d, "user_end");
    let ctl = Controller::start_full(
        json!({}),
        Some(json!([{"connector": "HLS"}, {"connector": "HTTPTS"}])),
        None,
        |c| {
            c["config"]["triggers"] = json!({"USER_END": [
                {"handler": end, "sync": false, "streams": [], "default": ""}
            ]});
            if let Some(p) = prometheus {
                c["config"]["prometheus"] = json!(p);
            }
            if let Some(m) = mode {
                c["config"]["sessionViewerMode"] = json!(m);
            }
        },
    );
    assert!(wait_port(ctl.http, Duration::from_secs(10)));
    ctl
}

/// A handler script appending its argv[1] and payload, then a line `--`, to `DIR/NAME.log`.
fn handler(dir: &Path, name: &str) -> String {
    handler_answering(dir, name, "")
}

/// [`handler`] that then prints `answer`.
fn handler_answering(dir: &Path, name: &str, answer: &str) -> String {
    handler_script(dir, name, answer)
}

/// The records of a handler log: (argv[1], payload lines).
fn records(dir: &Path, name: &str) -> Vec<(String, Vec<String>)> {
    handler_records(&std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default())
}

fn wait_stream(ctl: &Controller, name: &str) {
    ctl.wait_active(name, Duration::from_secs(20));
}

/// A player: ffmpeg decoding `url` for `secs` seconds of media.
fn player(url: &str, secs: u32) -> Proc {
    let child = Command::new("timeout")
        .args(["40", "ffmpeg", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(url)
        .args(["-t", &secs.to_string(), "-f", "null", "-"])
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg (scripts/test installs it)");
    Proc(child)
}

/// `clients` rows of `stream` as objects.
fn clients(ctl: &Controller, stream: &str) -> Vec<Value> {
    let fields = [
        "sessid", "stream", "protocol", "host", "up", "down", "conntime",
    ];
    let v = ctl.api(&json!({"clients": {"streams": [stream], "fields": fields}}));
    assert_eq!(v["clients"]["fields"], json!(fields), "{v}");
    v["clients"]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("clients: {v}"))
        .iter()
        .map(|r| {
            let o: serde_json::Map<String, Value> = fields
                .iter()
                .zip(r.as_array().unwrap())
                .map(|(f, x)| (f.to_string(), x.clone()))
                .collect();
            Value::Object(o)
        })
        .collect()
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let (head, body) = http_get_text(port, path);
    (status_of(&head), body)
}

/// Parses Prometheus text with prometheus_client (python3-prometheus-client); returns
/// `name{labels} value` per sample as it understood them. Also checks every line strictly.
fn parse_metrics(dir: &Path, text: &str) -> Vec<String> {
    for l in text.lines() {
        if l.starts_with("# HELP ") || l.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
        assert!(value.parse::<f64>().is_ok(), "value of {l:?}");
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "metric name in {l:?}"
        );
        assert!(
            !series.contains('{') || series.ends_with('}'),
            "labels of {l:?}"
        );
    }
    let f = dir.join("metrics.txt");
    std::fs::write(&f, text).unwrap();
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
             for fam in p(open(sys.argv[1]).read()):\n\
             \x20   for s in fam.samples:\n\
             \x20       print(s.name + '{' + ','.join(k + '=' + v for k, v in sorted(s.labels.items())) + '} ' + repr(s.value))\n",
        ])
        .arg(&f)
        .output()
        .expect("run python3 (scripts/test installs python3-prometheus-client)");
    assert!(
        out.status.success(),
        "prometheus_client could not parse the metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn hls_and_rtmp_players_are_one_session_each_and_end_once() {
    let dir = TempDir::new("sess-e2e");
    let d = dir.path();
    // Mode 15: the connector is part of the session id, so the two tokenless players from one
    // address are two sessions (under the default 14 they would be one).
    let ctl = start_mode(d, Some("s3cret"), Some(15));
    let _pub = publish(&ctl.publish_url("live+a"), "320x240", 90);
    wait_stream(&ctl, "live+a");
    let mut hls = player(&url(ctl.http, "/hls/live+a/index.m3u8"), 8);
    let mut rtmp = player(&ctl.play_url("live+a"), 8);

    // While they play: one session per player, whatever the number of HLS requests.
    let end = Instant::now() + Duration::from_secs(30);
    let (hls_sid, rtmp_sid) = loop {
        let rows = clients(&ctl, "live+a");
        let of = |p: &str| -> Vec<&Value> { rows.iter().filter(|r| r["protocol"] == p).collect() };
        let (h, r) = (of("HLS"), of("RTMP"));
        if !h.is_empty()
            && !r.is_empty()
            && h[0]["up"].as_u64() > Some(0)
            && r[0]["up"].as_u64() > Some(0)
        {
            assert_eq!(h.len(), 1, "one HLS session: {rows:?}");
            assert_eq!(r.len(), 1, "one RTMP session: {rows:?}");
            assert_eq!(h[0]["host"], "127.0.0.1");
            assert_ne!(h[0]["sessid"], r[0]["sessid"]);
            break (
                h[0]["sessid"].as_str().unwrap().to_string(),
                r[0]["sessid"].as_str().unwrap().to_string(),
            );
        }
        assert!(Instant::now() < end, "players never showed up: {rows:?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let t = ctl.api(&json!({"totals": {"streams": ["live+a"], "fields": ["clients", "upbps"]}}));
    // One row per second of the last ten minutes; the newest counts the two players.
    let rows = t["totals"]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{t}"));
    assert!(rows.last().unwrap()[0].as_u64() >= Some(2), "{t}");
    // `interval` counts the steps between the rows: [[count, seconds], …].
    let steps: u64 = t["totals"]["interval"]
        .as_array()
        .unwrap_or_else(|| panic!("{t}"))
        .iter()
        .map(|i| i[0].as_u64().unwrap())
        .sum();
    assert!(rows.len() == 1 || steps + 1 == rows.len() as u64, "{t}");
    let a = ctl.api(
        &json!({"active_streams": {"streams": ["live+a"], "fields": ["viewers", "views", "upbytes"]}}),
    );
    let row = &a["active_streams"]["data"]["live+a"];
    assert_eq!(
        row[0], 2,
        "viewers = the two sessions, not the shared readers: {a}"
    );
    assert_eq!(row[1], 2, "{a}");
    assert!(row[2].as_u64() > Some(0), "{a}");

    // The metrics count them, under the configured path only.
    let (status, text) = http_get(ctl.api, "/s3cret");
    assert_eq!(status, 200, "{text}");
    let samples = parse_metrics(d, &text);
    for p in ["HLS", "RTMP"] {
        let want = format!("mist_sessions{{protocol={p},sessType=viewers,stream=live+a}} 1.0");
        assert!(samples.contains(&want), "{want} not in {samples:?}");
    }
    // prometheus_client names counter samples `…_total`.
    assert!(
        samples
            .iter()
            .any(|s| s.starts_with("mist_viewcount_total{stream=live+a}")),
        "{samples:?}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.starts_with("mist_bw_total{direction=up,stream=live+a}")),
        "{samples:?}"
    );
    let (status, json_text) = http_get(ctl.api, "/s3cret.json");
    assert_eq!(status, 200);
    let j: Value = serde_json::from_str(&json_text).unwrap();
    assert!(
        j["streams"]["live+a"]["sessions"].as_u64() >= Some(2),
        "{j}"
    );
    for wrong in ["/metrics", "/s3cre", "/s3cret2", "/S3CRET"] {
        let (status, body) = http_get(ctl.api, wrong);
        assert_ne!(status, 200, "{wrong} answered: {body}");
        assert!(!body.contains("mist_sessions"), "{wrong}: {body}");
    }

    // The players stop; each session ends once, after its timeout, with its numbers.
    hls.0.wait().unwrap();
    rtmp.0.wait().unwrap();
    let end = Instant::now() + Duration::from_secs(40);
    while records(d, "user_end").len() < 2 {
        assert!(
            Instant::now() < end,
            "USER_END never fired twice: {:?}",
            records(d, "user_end")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Twice the timeout more: nothing fires again (lingering rows do not revive a session).
    std::thread::sleep(Duration::from_secs(7));
    let recs = records(d, "user_end");
    assert_eq!(recs.len(), 2, "{recs:?}");
    for (sid, proto) in [(&hls_sid, "HLS"), (&rtmp_sid, "RTMP")] {
        let r = recs
            .iter()
            .find(|r| r.1.last() == Some(sid))
            .unwrap_or_else(|| panic!("no USER_END for {proto} session {sid}: {recs:?}"));
        assert_eq!(r.0, "USER_END");
        let l = &r.1;
        assert_eq!(l.len(), 12, "USER_END has 12 lines: {l:?}");
        assert_eq!(l[0], "", "token");
        assert_eq!(l[1], "live+a", "streams");
        assert_eq!(l[2], proto, "connectors");
        assert_eq!(l[3], "127.0.0.1", "hosts");
        let secs: u64 = l[4].parse().unwrap();
        assert!(secs <= 60, "duration {secs}");
        let up: u64 = l[5].parse().unwrap();
        let down: u64 = l[6].parse().unwrap();
        // Several seconds of 320x240 H.264 + AAC went to the player; it sent little.
        assert!(up > 20_000, "{proto} up bytes {up}: {l:?}");
        assert!(down < up, "{proto} down bytes {down}: {l:?}");
        for per in [8, 9, 10] {
            assert!(l[per].parse::<u64>().is_ok(), "per-x seconds {l:?}");
        }
    }
    // Gone from clients.
    let rows = clients(&ctl, "live+a");
    assert!(
        !rows
            .iter()
            .any(|r| r["sessid"] == hls_sid.as_str() || r["sessid"] == rtmp_sid.as_str()),
        "{rows:?}"
    );
}

#[test]
fn tagged_sessions_are_stopped_and_metrics_are_off_without_a_path() {
    let dir = TempDir::new("sess-stop");
    let d = dir.path();
    let ctl = start(d, None);
    let _pub = publish(&ctl.publish_url("live+b"), "320x240", 90);
    wait_stream(&ctl, "live+b");
    // HTTP-TS: one connection carrying the token (an HLS player would not repeat it on segments).
    let mut p = player(&url(ctl.http, "/live+b.ts?tkn=viewer1"), 60);
    let end = Instant::now() + Duration::from_secs(30);
    let sid = loop {
        let rows = clients(&ctl, "live+b");
        // Progressive bytes are counted too.
        if let Some(r) = rows
            .iter()
            .find(|r| r["protocol"] == "HTTP" && r["up"].as_u64() > Some(0))
        {
            break r["sessid"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < end, "the player never showed up: {rows:?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut tag = serde_json::Map::new();
    tag.insert(sid.clone(), json!("vip"));
    let v = ctl.api(&json!({ "tag_sessid": tag }));
    assert_eq!(v["tag_sessid"], 1, "{v}");
    let v = ctl.api(&json!({"stop_tag": "nobody"}));
    assert_eq!(v["stop_tag"], 0, "{v}");
    let v = ctl.api(&json!({"stop_tag": "vip"}));
    assert_eq!(v["stop_tag"], 1, "{v}");
    // USER_END at once, with the tag and the token.
    let end = Instant::now() + Duration::from_secs(20);
    let rec = loop {
        if let Some(r) = records(d, "user_end").into_iter().next() {
            break r;
        }
        assert!(Instant::now() < end, "no USER_END after stop_tag");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(rec.1[0], "viewer1", "token: {rec:?}");
    assert_eq!(rec.1[7], "vip", "tags: {rec:?}");
    assert_eq!(rec.1[11], sid);
    assert!(rec.1[5].parse::<u64>().unwrap() > 0, "up bytes: {rec:?}");
    // Its connection was closed: the player ends long before its 60 s (`timeout 40` would
    // end it with status 124).
    let st = p.0.wait().unwrap();
    assert_ne!(
        st.code(),
        Some(124),
        "the stopped session's player kept playing"
    );
    // No prometheus path configured: nothing answers metrics.
    for path in ["/metrics", "/", "/koekjes"] {
        let (_, body) = http_get(ctl.api, path);
        assert!(!body.contains("mist_"), "{path}: {body}");
    }
}

#[test]
fn a_session_whose_output_was_killed_still_ends_once() {
    let dir = TempDir::new("sess-kill");
    let d = dir.path();
    let ctl = start(d, None);
    let _pub = publish(&ctl.publish_url("live+c"), "320x240", 90);
    wait_stream(&ctl, "live+c");
    let mut p = player(&url(ctl.http, "/live+c.ts?tkn=gone"), 60);
    let end = Instant::now() + Duration::from_secs(30);
    let sid = loop {
        let rows = clients(&ctl, "live+c");
        // Progressive bytes are counted too.
        if let Some(r) = rows
            .iter()
            .find(|r| r["protocol"] == "HTTP" && r["up"].as_u64() > Some(0))
        {
            break r["sessid"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < end, "the player never showed up: {rows:?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    // The output dies with the connection open: its row still says one connection.
    let http = find_child(ctl.proc.pid(), "MistOutHTTP").expect("MistOutHTTP child");
    // SAFETY: kill(2) on a pid we just found as our controller's child.
    assert_eq!(unsafe { libc::kill(http as i32, libc::SIGKILL) }, 0);
    let _ = p.0.wait();
    let end = Instant::now() + Duration::from_secs(40);
    let rec = loop {
        if let Some(r) = records(d, "user_end")
            .into_iter()
            .find(|r| r.1.last() == Some(&sid))
        {
            break r;
        }
        assert!(
            Instant::now() < end,
            "no USER_END for the killed output's session {sid}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(rec.1[0], "gone", "{rec:?}");
    assert_eq!(rec.1[2], "HTTP", "{rec:?}");
    std::thread::sleep(Duration::from_secs(7));
    let n = records(d, "user_end")
        .iter()
        .filter(|r| r.1.last() == Some(&sid))
        .count();
    assert_eq!(n, 1, "USER_END once");
}

#[test]
fn invalidated_sessions_run_user_new_again() {
    let dir = TempDir::new("sess-inval");
    let d = dir.path();
    std::env::set_var("MIST_SESSION_TIMEOUT", TIMEOUT);
    let user_new = handler_answering(d, "user_new", "echo true");
    let ctl = Controller::start_full(json!({}), Some(json!([{"connector": "HLS"}])), None, |c| {
        c["config"]["triggers"] = json!({"USER_NEW": [
            {"handler": user_new, "sync": true, "streams": [], "default": "true"}
        ]});
    });
    assert!(wait_port(ctl.http, Duration::from_secs(10)));
    let _pub = publish(&ctl.publish_url("live+d"), "320x240", 90);
    wait_stream(&ctl, "live+d");
    let _p = player(&url(ctl.http, "/hls/live+d/index.m3u8"), 60);
    let hls_user_new = || {
        records(d, "user_new")
            .into_iter()
            .filter(|r| r.1.first().map(String::as_str) == Some("live+d") && r.1[3] == "HLS")
            .count()
    };
    let end = Instant::now() + Duration::from_secs(30);
    while clients(&ctl, "live+d")
        .iter()
        .all(|r| r["protocol"] != "HLS")
    {
        assert!(Instant::now() < end, "the player never showed up");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(hls_user_new(), 1, "once per session");
    let v = ctl.api(&json!({"invalidate_sessions": "live+d"}));
    assert_eq!(v["invalidate_sessions"], 1, "{v}");
    // The player's next playlist request decides the session again.
    let end = Instant::now() + Duration::from_secs(30);
    while hls_user_new() < 2 {
        assert!(
            Instant::now() < end,
            "USER_NEW did not run again: {:?}",
            records(d, "user_new")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
