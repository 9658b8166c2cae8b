//! End to end, with real players (ffmpeg, ffprobe) and handler scripts: the session id modes and
//! token propagation (an HLS/DASH player given `?tkn=` is one session: its playlists carry the
//! token), stopping RTMP sessions (`stop_sessid`, `kill`) closes the player's connection, the
//! HTTP connection triggers (CONN_OPEN, CONN_PLAY, CONN_CLOSE), and `clients`/`totals` history.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Sessions end this many seconds after their last activity in these tests.
const TIMEOUT: &str = "3";

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A controller with HTTP (HLS, CMAF, HTTP-TS) and the given triggers; `edit` may change more.
fn start(triggers: Value, edit: impl FnOnce(&mut Value)) -> Controller {
    // The controller (and its children) inherit it; every test here sets the same value.
    std::env::set_var("MIST_SESSION_TIMEOUT", TIMEOUT);
    let ctl = Controller::start_full(
        json!({}),
        Some(json!([{"connector": "HLS"}, {"connector": "CMAF"}, {"connector": "HTTPTS"}])),
        None,
        |c| {
            c["config"]["triggers"] = triggers;
            edit(c);
        },
    );
    assert!(wait_port(ctl.http, Duration::from_secs(10)));
    ctl
}

fn trig(handler: &str, sync: bool) -> Value {
    json!({"handler": handler, "sync": sync, "streams": [], "default": "true"})
}

/// The records of handler log `NAME`: (argv[1], payload lines).
fn records(dir: &Path, name: &str) -> Vec<(String, Vec<String>)> {
    handler_records(&std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default())
}

/// A player: ffmpeg decoding `url` for `secs` seconds of media (killed after 40 s of wall time,
/// status 124).
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

/// `clients` rows as objects (`time`: none = now).
fn clients_at(ctl: &Controller, stream: &str, time: Option<u64>) -> (Value, Vec<Value>) {
    let fields = ["sessid", "stream", "protocol", "host", "token", "up"];
    let mut req = json!({"streams": [stream], "fields": fields});
    if let Some(t) = time {
        req["time"] = json!(t);
    }
    let v = ctl.api(&json!({ "clients": req }));
    let rows = v["clients"]["data"]
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
        .collect();
    (v, rows)
}

fn clients(ctl: &Controller, stream: &str) -> Vec<Value> {
    clients_at(ctl, stream, None).1
}

#[test]
fn a_player_given_a_token_is_one_session_and_its_playlists_carry_it() {
    let _g = serial();
    let dir = TempDir::new("sess-tkn");
    let d = dir.path();
    let user_new = handler_script(d, "user_new", "echo true");
    let ctl = start(json!({"USER_NEW": [trig(&user_new, true)]}), |_| {});
    let _pub = publish(&ctl.publish_url("live+t"), "320x240", 90);
    wait_stream(&ctl, "live+t");

    // An HLS player given ?tkn=abc: master, media playlists and segments all in its session.
    let mut hls = player(&url(ctl.http, "/hls/live+t/index.m3u8?tkn=abc"), 6);
    let st = hls.0.wait().unwrap();
    assert!(st.success(), "the HLS player failed: {st:?}");
    let rows = clients(&ctl, "live+t");
    assert_eq!(rows.len(), 1, "one session, one row: {rows:?}");
    assert_eq!(rows[0]["protocol"], "HLS", "{rows:?}");
    assert_eq!(rows[0]["token"], "abc", "{rows:?}");
    assert!(
        rows[0]["up"].as_u64() > Some(20_000),
        "segments counted: {rows:?}"
    );
    let sid = rows[0]["sessid"].as_str().unwrap().to_string();
    assert_eq!(sid.len(), 64, "MistServer's session id (SHA-256): {sid}");
    let user_new_of = |token: &str| {
        records(d, "user_new")
            .into_iter()
            .filter(|r| r.1[0] == "live+t" && r.1[2] == token)
            .count()
    };
    assert_eq!(user_new_of("abc"), 1, "{:?}", records(d, "user_new"));
    assert_eq!(
        user_new_of(""),
        0,
        "a request without the token: {:?}",
        records(d, "user_new")
    );

    // What the player was given: every URL carries the token, and a tkn cookie comes along.
    let (head, master) = http_get_text(ctl.http, "/hls/live+t/index.m3u8?tkn=abc");
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(header(&head, "set-cookie"), Some("tkn=abc; Max-Age=600"));
    let media = master
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap_or_else(|| panic!("no variant in {master}"));
    assert!(media.ends_with("index.m3u8?tkn=abc"), "{master}");
    let (_, list) = http_get_text(ctl.http, &format!("/hls/live+t/{media}"));
    let segs: Vec<&str> = list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(!segs.is_empty(), "{list}");
    assert!(segs.iter().all(|s| s.ends_with(".ts?tkn=abc")), "{list}");
    let (_, mpd) = http_get_text(ctl.http, "/cmaf/live+t/index.mpd?tkn=abc");
    assert!(mpd.contains(".m4s?tkn=abc\""), "{mpd}");
    assert!(mpd.contains("?tkn=abc\""), "{mpd}");

    // Under the default sessionViewerMode 14 the connector is not part of the id: an HTTP-TS
    // player with the same token from the same address joins that session.
    let ts = probe_streams(&url(ctl.http, "/live+t.ts?tkn=abc"));
    assert!(ts.iter().any(|s| s["codec_name"] == "h264"), "{ts:?}");
    // (One output process reports a session under the connector it first saw, so `clients`
    // shows the session's HLS row only; USER_NEW below tells that it was the same session.)
    let rows = clients(&ctl, "live+t");
    let abc: Vec<&Value> = rows.iter().filter(|r| r["token"] == "abc").collect();
    assert!(!abc.is_empty(), "{rows:?}");
    assert!(
        abc.iter().all(|r| r["sessid"] == sid.as_str()),
        "one session: {rows:?}"
    );
    assert_eq!(user_new_of("abc"), 1, "{:?}", records(d, "user_new"));

    // A DASH client given another token (ffprobe reads the manifest, the init segments and
    // media segments by the URLs the manifest gave): its own session, one USER_NEW.
    let dash = probe_streams(&url(ctl.http, "/cmaf/live+t/index.mpd?tkn=def"));
    assert!(dash.iter().any(|s| s["codec_name"] == "h264"), "{dash:?}");
    assert_eq!(user_new_of("def"), 1, "{:?}", records(d, "user_new"));
    assert_eq!(user_new_of(""), 0, "{:?}", records(d, "user_new"));
    let rows = wait_for(
        "the DASH session in clients",
        Duration::from_secs(10),
        || {
            let rows = clients(&ctl, "live+t");
            rows.iter().any(|r| r["token"] == "def").then_some(rows)
        },
    );
    let def: Vec<&Value> = rows.iter().filter(|r| r["token"] == "def").collect();
    assert_eq!(def.len(), 1, "{rows:?}");
    assert_eq!(def[0]["protocol"], "CMAF");
    assert_ne!(def[0]["sessid"], sid.as_str());

    // Without a token nothing is appended.
    let (_, plain) = http_get_text(ctl.http, "/hls/live+t/index.m3u8");
    assert!(!plain.contains("tkn="), "{plain}");
}

#[test]
fn without_the_token_mode_bits_nothing_is_appended_and_connectors_count_apart() {
    let _g = serial();
    let dir = TempDir::new("sess-mode");
    let d = dir.path();
    let user_new = handler_script(d, "user_new", "echo true");
    let ctl = start(json!({"USER_NEW": [trig(&user_new, true)]}), |c| {
        c["config"]["tknMode"] = json!(3);
        c["config"]["sessionViewerMode"] = json!(15);
    });
    let _pub = publish(&ctl.publish_url("live+m"), "320x240", 60);
    wait_stream(&ctl, "live+m");
    let (head, master) = http_get_text(ctl.http, "/hls/live+m/index.m3u8?tkn=abc");
    assert_eq!(status_of(&head), 200, "{head}");
    assert!(!master.contains("tkn="), "{master}");
    assert_eq!(header(&head, "set-cookie"), None);
    // The token is still read (bit 1), and with mode 15 HTTP-TS is a session of its own.
    let ts = probe_streams(&url(ctl.http, "/live+m.ts?tkn=abc"));
    assert!(ts.iter().any(|s| s["codec_name"] == "h264"), "{ts:?}");
    let recs = records(d, "user_new");
    let of = |c: &str| {
        recs.iter()
            .filter(|r| r.1[0] == "live+m" && r.1[2] == "abc" && r.1[3] == c)
            .count()
    };
    assert_eq!((of("HLS"), of("HTTP")), (1, 1), "{recs:?}");
    let ids: Vec<&String> = recs.iter().map(|r| &r.1[5]).collect();
    assert_ne!(ids[0], ids[1], "{recs:?}");
}

#[test]
fn stopped_rtmp_sessions_close_the_players_connection() {
    let _g = serial();
    let dir = TempDir::new("sess-rtmp");
    let d = dir.path();
    let end = handler_script(d, "user_end", "");
    let ctl = start(json!({"USER_END": [trig(&end, false)]}), |_| {});
    let _pub = publish(&ctl.publish_url("live+r"), "320x240", 120);
    wait_stream(&ctl, "live+r");
    let rtmp_session = || {
        wait_for(
            "the RTMP player in clients",
            Duration::from_secs(30),
            || {
                // Sessions come from the controller's last read (once a second); until then the
                // viewer's users-table reader is listed on its own (no session id of 64 digits).
                clients(&ctl, "live+r")
                    .into_iter()
                    .find(|r| {
                        r["protocol"] == "RTMP"
                            && r["up"].as_u64() > Some(0)
                            && r["sessid"].as_str().is_some_and(|s| s.len() == 64)
                    })
                    .map(|r| r["sessid"].as_str().unwrap().to_string())
            },
        )
    };
    // RTMP viewers have no token: the three players (one after the other, from one address)
    // have the same session id under mode 14; each is a new session that ends once.
    let ends = |sid: &str| {
        records(d, "user_end")
            .iter()
            .filter(|r| r.1.last().map(String::as_str) == Some(sid))
            .count()
    };
    let stops: [(&str, Value); 3] = [
        ("stop_sessid", Value::Null),
        ("kill", json!("live+r")),
        ("stop_sessions", json!({"live+r": "RTMP"})),
    ];
    let mut first_sid = None;
    for (n, (cmd, arg)) in stops.into_iter().enumerate() {
        let mut p = player(&ctl.play_url("live+r"), 60);
        let sid = rtmp_session();
        let first = first_sid.get_or_insert_with(|| sid.clone());
        assert_eq!(&sid, first, "one id for one stream, address and no token");
        let arg = if arg.is_null() { json!(sid) } else { arg };
        let mut req = serde_json::Map::new();
        req.insert(cmd.to_string(), arg);
        let v = ctl.api(&Value::Object(req));
        assert_eq!(v[cmd], 1, "{cmd}: {v}");
        // MistOutRTMP closes the connection: ffmpeg ends long before its 60 s (`timeout 40`
        // would end it with status 124).
        let st = wait_exit(&mut p.0, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{cmd}: the player kept playing"));
        assert_ne!(st.code(), Some(124), "{cmd}: the player ran to its timeout");
        wait_until(
            &format!("USER_END after {cmd}"),
            Duration::from_secs(20),
            || ends(&sid) > n,
        );
    }
    // Each ended once.
    std::thread::sleep(Duration::from_secs(5));
    let sid = first_sid.unwrap();
    assert_eq!(ends(&sid), 3, "{:?}", records(d, "user_end"));
    // A player that comes back is a new session and plays.
    let streams = probe_streams(&ctl.play_url("live+r"));
    assert!(
        streams.iter().any(|s| s["codec_name"] == "h264"),
        "{streams:?}"
    );
}

#[test]
fn http_connection_triggers_fire_with_their_payload() {
    let _g = serial();
    let dir = TempDir::new("sess-conn");
    let d = dir.path();
    let conn = handler_script(
        d,
        "conn",
        "case \"$p\" in live+no*) echo false ;; *) echo true ;; esac",
    );
    let ctl = start(
        json!({
            "CONN_OPEN": [trig(&conn, true)],
            "CONN_PLAY": [trig(&conn, true)],
            "CONN_CLOSE": [trig(&conn, false)],
        }),
        |_| {},
    );
    let _pub = publish(&ctl.publish_url("live+c"), "320x240", 60);
    wait_stream(&ctl, "live+c");
    // Progressive HTTP-TS: one connection.
    let ts = probe_streams(&url(ctl.http, "/live+c.ts"));
    assert!(ts.iter().any(|s| s["codec_name"] == "h264"), "{ts:?}");
    let want_url = format!("http://127.0.0.1:{}/live+c.ts", ctl.http);
    let of = |name: &str, connector: &str| -> Vec<Vec<String>> {
        records(d, "conn")
            .into_iter()
            .filter(|r| r.0 == name && r.1.get(2).map(String::as_str) == Some(connector))
            .map(|r| r.1)
            .collect()
    };
    wait_until(
        "CONN_CLOSE of the HTTP-TS probe",
        Duration::from_secs(20),
        || !of("CONN_CLOSE", "HTTP").is_empty(),
    );
    for n in ["CONN_OPEN", "CONN_PLAY", "CONN_CLOSE"] {
        let r = of(n, "HTTP");
        assert_eq!(r.len(), 1, "{n}: {:?}", records(d, "conn"));
        assert_eq!(
            r[0],
            ["live+c", "127.0.0.1", "HTTP", want_url.as_str()],
            "{n}"
        );
    }

    // CONN_OPEN false refuses (403 naming the trigger); no CONN_PLAY or CONN_CLOSE follow.
    let (head, body) = http_get_text(ctl.http, "/live+no.ts");
    assert_eq!(status_of(&head), 403, "{head}");
    assert!(body.contains("CONN_OPEN"), "{body}");
    let recs = records(d, "conn");
    assert!(recs
        .iter()
        .any(|r| r.0 == "CONN_OPEN" && r.1[0] == "live+no"));
    assert!(
        !recs
            .iter()
            .any(|r| r.0 != "CONN_OPEN" && r.1[0] == "live+no"),
        "{recs:?}"
    );

    // An HLS player: each of its connections opens, plays and closes once, however many
    // playlists and segments it asks for on it.
    let mut hls = player(&url(ctl.http, "/hls/live+c/index.m3u8"), 6);
    assert!(hls.0.wait().unwrap().success());
    wait_until(
        "a CONN_CLOSE per HLS connection",
        Duration::from_secs(20),
        || {
            let open = of("CONN_OPEN", "HLS").len();
            open > 0 && of("CONN_CLOSE", "HLS").len() == open
        },
    );
    let (open, play) = (of("CONN_OPEN", "HLS"), of("CONN_PLAY", "HLS"));
    assert_eq!(open.len(), play.len(), "{:?}", records(d, "conn"));
    for r in open.iter().chain(play.iter()) {
        assert_eq!(r[..3], ["live+c", "127.0.0.1", "HLS"], "{r:?}");
        let prefix = format!("http://127.0.0.1:{}/hls/live+c/", ctl.http);
        assert!(r[3].starts_with(&prefix), "{r:?}");
    }
}

#[test]
fn clients_and_totals_answer_for_earlier_seconds() {
    let _g = serial();
    let dir = TempDir::new("sess-hist");
    let d = dir.path();
    let end = handler_script(d, "user_end", "");
    let ctl = start(json!({"USER_END": [trig(&end, false)]}), |_| {});
    let _pub = publish(&ctl.publish_url("live+h"), "320x240", 60);
    wait_stream(&ctl, "live+h");
    let mut p = player(&url(ctl.http, "/live+h.ts?tkn=hist"), 6);
    let (sid, seen) = wait_for("the player in clients", Duration::from_secs(30), || {
        clients(&ctl, "live+h")
            .into_iter()
            .find(|r| r["up"].as_u64() > Some(0))
            .map(|r| (r["sessid"].as_str().unwrap().to_string(), now_unix()))
    });
    assert!(p.0.wait().unwrap().success());
    wait_until("USER_END of the player", Duration::from_secs(30), || {
        records(d, "user_end")
            .iter()
            .any(|r| r.1.last() == Some(&sid))
    });
    // Now it is gone, but `time` asks for the second it was seen.
    assert!(clients(&ctl, "live+h")
        .iter()
        .all(|r| r["sessid"] != sid.as_str()));
    let (v, rows) = clients_at(&ctl, "live+h", Some(seen));
    assert_eq!(v["clients"]["time"], seen, "{v}");
    let r = rows
        .iter()
        .find(|r| r["sessid"] == sid.as_str())
        .unwrap_or_else(|| panic!("the ended session at {seen}: {v}"));
    assert_eq!(r["protocol"], "HTTP");
    assert_eq!(r["token"], "hist");
    assert!(r["up"].as_u64() > Some(0), "{v}");
    // A negative time is seconds ago.
    let ago = now_unix() - seen;
    let v2 = ctl.api(
        &json!({"clients": {"streams": ["live+h"], "fields": ["sessid"], "time": -(ago as i64)}}),
    );
    let t2 = v2["clients"]["time"].as_u64().unwrap();
    assert!(t2.abs_diff(seen) <= 2, "{v2}");

    // totals: one row per second; the seconds the player played count it.
    let t = ctl.api(&json!({"totals": {"streams": ["live+h"], "fields": ["clients", "upbps", "inputs"], "start": seen - 1, "end": seen + 1}}));
    let tot = &t["totals"];
    let rows = tot["data"].as_array().unwrap_or_else(|| panic!("{t}"));
    assert!(!rows.is_empty() && rows.len() <= 3, "{t}");
    assert!(
        tot["start"].as_u64() >= Some(seen - 1) && tot["end"].as_u64() <= Some(seen + 1),
        "{t}"
    );
    assert!(rows.iter().any(|r| r[0].as_u64() >= Some(1)), "{t}");
    assert!(
        rows.iter().all(|r| r[2] == 1),
        "the publish is an input: {t}"
    );
    let steps: u64 = tot["interval"]
        .as_array()
        .unwrap_or_else(|| panic!("{t}"))
        .iter()
        .map(|i| i[0].as_u64().unwrap())
        .sum();
    assert!(rows.len() == 1 || steps + 1 == rows.len() as u64, "{t}");
    // Long before the controller started: nothing is known.
    let t = ctl.api(&json!({"totals": {"start": 1000, "end": 2000}}));
    assert!(
        t["totals"]["data"].is_null() && t["totals"]["start"].is_null(),
        "{t}"
    );
}
