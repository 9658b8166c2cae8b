//! Integration tests for MistController: the real binary (built by cargo) is started on free ports
//! with a temporary config, control socket and MIST_SHM_DIR.
//!
//! Most tests copy MistController into a fresh directory, because it finds its children in its own
//! directory: there the test decides which siblings exist. Where a child must stay up (restart and
//! SIGTERM tests) a tiny shell stand-in `MistOutFAKE` is used. The launcher is
//! `common::ctl::CtlDir`.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::ctl::{exchange, md5hex, CtlDir as Ctl, CONTROLLER};
use common::{alive, free_port, wait_for};

/// A directory with `bin/MistController` (a copy) and optional stand-ins.
fn prepare(config: Option<Value>, standins: &[(&str, &str)]) -> Ctl {
    Ctl::with_bin(config.as_ref(), standins)
}

fn start(ctl: Ctl, args: &[&str]) -> Ctl {
    start_env(ctl, args, &[])
}

fn start_env(ctl: Ctl, args: &[&str], envs: &[(&str, &str)]) -> Ctl {
    let mut all = vec![("MIST_INPUT_WAIT_MS", "1000")];
    all.extend_from_slice(envs);
    ctl.start(args, &all)
}

/// One HTTP exchange on an existing connection; returns (status, body).
fn http(
    conn: &mut TcpStream,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let a = exchange(conn, req.as_bytes());
    (a.status, a.body)
}

fn api_on(conn: &mut TcpStream, cmd: &Value, headers: &[(&str, &str)]) -> Value {
    let (code, body) = http(conn, "POST", "/api", headers, &cmd.to_string());
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn api(ctl: &Ctl, cmd: &Value) -> Value {
    api_on(&mut ctl.connect(), cmd, &[])
}

fn control(ctl: &Ctl, req: &Value) -> Value {
    ctl.control(req)
}

fn wait_exit(ctl: &mut Ctl, within: Duration) -> std::process::ExitStatus {
    ctl.wait_exit(within)
}

/// A stand-in output: answers -j with capabilities, otherwise records its pid and args and sleeps.
fn fake_output(dir: &Path) -> String {
    format!(
        r#"#!/bin/sh
if [ "$1" = "-j" ]; then
  echo '{{"name":"FAKE","desc":"stand-in","optional":{{"port":{{"name":"Port","option":"--port","short":"p","type":"uint","default":1234}}}}}}'
  exit 0
fi
echo "$*" > {d}/fake.args
echo "$MIST_CONTROL" > {d}/fake.env
echo "WARN MistOutFAKE: stand-in up as $$" >&2
echo $$ > {d}/fake.pid.tmp && mv {d}/fake.pid.tmp {d}/fake.pid
exec sleep 600
"#,
        d = dir.display()
    )
}

fn fake_input(dir: &Path) -> String {
    format!(
        "#!/bin/sh\n[ \"$1\" = \"-j\" ] && exit 1\necho \"$*\" >> {d}/input.args\nexec sleep 600\n",
        d = dir.display()
    )
}

fn read_pid(p: &Path) -> Option<u32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[test]
fn default_config_when_none() {
    let ctl = start(prepare(None, &[]), &[]);
    let v = api(
        &ctl,
        &json!({"config": true, "streams": true, "version": true}),
    );
    assert_eq!(v["streams"]["live"]["source"], "push://");
    let protos: Vec<&str> = v["config"]["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["connector"].as_str().unwrap())
        .collect();
    assert_eq!(
        protos,
        ["RTMP", "HTTP", "HLS", "CMAF", "HTTPTS", "FLV", "MP4", "EBML", "MP3", "AAC"]
    );
    assert_eq!(v["config"]["protocols"][0]["port"], 1935);
    assert!(v["version"].as_str().unwrap().starts_with("mist-rs"));
    assert_eq!(
        v["config"]["protocols"][0]["online"], "Not installed",
        "{v}"
    );
    // No config file was written just by starting.
    assert!(!ctl.dir.path().join("config.json").exists());
    // GET with ?command= works too, and /api2 answers the same.
    let mut c = TcpStream::connect(("127.0.0.1", ctl.port)).unwrap();
    let (code, body) = http(
        &mut c,
        "GET",
        "/api2?command=%7B%22streams%22%3Atrue%7D",
        &[],
        "",
    );
    assert_eq!(code, 200);
    assert!(body.contains("\"live\""), "{body}");
    // Form-encoded POST.
    let (code, body) = http(
        &mut c,
        "POST",
        "/api",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "command=%7B%22version%22%3A1%7D",
    );
    assert_eq!(code, 200);
    assert!(body.contains("mist-rs"), "{body}");
}

#[test]
fn remote_login_challenge() {
    let cfg = json!({"account": {"admin": {"password": md5hex("secret")}}, "config": {"protocols": []},
                     "streams": {"live": {"source": "push://"}}});
    let ctl = start(prepare(Some(cfg), &[]), &["-c", "mist.conf"]);
    let remote = [("X-Forwarded-For", "203.0.113.5")];
    let mut c = TcpStream::connect(("127.0.0.1", ctl.port)).unwrap();
    // No data without login.
    let v = api_on(&mut c, &json!({"streams": true, "config": true}), &remote);
    assert_eq!(v["authorize"]["status"], "CHALL");
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    let chall = v["authorize"]["challenge"].as_str().unwrap().to_string();
    assert!(!chall.is_empty());
    // Wrong answer: still CHALL, no data.
    let wrong = md5hex(&format!("{}{}", md5hex("nope"), chall));
    let v = api_on(
        &mut c,
        &json!({"authorize": {"username": "admin", "password": wrong}, "streams": true}),
        &remote,
    );
    assert_eq!(v["authorize"]["status"], "CHALL");
    assert!(v.get("streams").is_none());
    // X-Real-IP is judged the same way.
    let v = api_on(
        &mut c,
        &json!({"streams": true}),
        &[("X-Real-IP", "198.51.100.7")],
    );
    assert_eq!(v["authorize"]["status"], "CHALL");
    assert!(v.get("streams").is_none());
    // Right answer: OK and data.
    let right = md5hex(&format!("{}{}", md5hex("secret"), chall));
    let v = api_on(
        &mut c,
        &json!({"authorize": {"username": "admin", "password": right}, "streams": true}),
        &remote,
    );
    assert_eq!(v["authorize"]["status"], "OK", "{v}");
    assert_eq!(v["streams"]["live"]["source"], "push://");
    // The session stays authorised on this connection.
    let v = api_on(&mut c, &json!({"config": true}), &remote);
    assert!(v["config"]["protocols"].is_array(), "{v}");
    // A new connection starts unauthorised, with the same challenge for the same host.
    let mut c2 = TcpStream::connect(("127.0.0.1", ctl.port)).unwrap();
    let v = api_on(&mut c2, &json!({"streams": true}), &remote);
    assert_eq!(v["authorize"]["status"], "CHALL");
    assert_eq!(v["authorize"]["challenge"], chall.as_str());
    // ... and the same answer logs it in (the web UI resends it on every request).
    let v = api_on(
        &mut c2,
        &json!({"authorize": {"username": "admin", "password": right}, "streams": true}),
        &remote,
    );
    assert_eq!(v["authorize"]["status"], "OK");
    // Local without proxy headers: authorised automatically.
    let v = api(&ctl, &json!({"streams": true}));
    assert!(v.get("authorize").is_none());
    assert_eq!(v["streams"]["live"]["source"], "push://");
}

/// The reverse-proxy attack of the security issue: nginx's `$proxy_add_x_forwarded_for` appends the
/// real client to whatever the client sent, so a spoofed `127.0.0.1` arrives first in the list.
#[test]
fn forwarded_requests_are_never_local() {
    let cfg = json!({"account": {"admin": {"password": md5hex("secret")}}, "config": {"protocols": []},
                     "streams": {"live": {"source": "push://"}}});
    let ctl = start(prepare(Some(cfg), &[]), &["-c", "mist.conf"]);
    let mut c = TcpStream::connect(("127.0.0.1", ctl.port)).unwrap();
    for h in [
        ("X-Forwarded-For", "127.0.0.1, 1.2.3.4"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Real-IP", "127.0.0.1"),
        ("Forwarded", "for=127.0.0.1"),
        ("X-Forwarded-For", ""),
    ] {
        let v = api_on(&mut c, &json!({"config": true}), &[h]);
        assert_eq!(v["authorize"]["status"], "CHALL", "{h:?}: {v}");
        assert!(v.get("config").is_none(), "{h:?}: {v}");
    }
    // The client named last (the one nginx appended) is the one the challenge is for.
    let v = api_on(
        &mut c,
        &json!({"config": true}),
        &[("X-Forwarded-For", "127.0.0.1, 1.2.3.4")],
    );
    let spoofed = v["authorize"]["challenge"].as_str().unwrap().to_string();
    let v = api_on(
        &mut c,
        &json!({"config": true}),
        &[("X-Forwarded-For", "1.2.3.4")],
    );
    assert_eq!(v["authorize"]["challenge"], spoofed.as_str());
    // Two X-Forwarded-For headers are one list: the last entry of the last header is the client.
    let (code, body) = http(
        &mut c,
        "POST",
        "/api",
        &[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-For", "127.0.0.1"),
        ],
        &json!({"config": true}).to_string(),
    );
    assert_eq!(code, 200);
    assert!(
        body.contains("CHALL") && !body.contains("protocols"),
        "{body}"
    );

    // A proxy reusing one upstream connection for two clients: the first logs in, the second
    // gets no admin from that login.
    let alice = [("X-Forwarded-For", "203.0.113.5")];
    let mallory = [("X-Forwarded-For", "198.51.100.66")];
    let mut up = TcpStream::connect(("127.0.0.1", ctl.port)).unwrap();
    let v = api_on(&mut up, &json!({"config": true}), &alice);
    let chall = v["authorize"]["challenge"].as_str().unwrap().to_string();
    let right = md5hex(&format!("{}{}", md5hex("secret"), chall));
    let v = api_on(
        &mut up,
        &json!({"authorize": {"username": "admin", "password": right}, "config": true}),
        &alice,
    );
    assert_eq!(v["authorize"]["status"], "OK", "{v}");
    let v = api_on(&mut up, &json!({"config": true}), &mallory);
    assert_eq!(v["authorize"]["status"], "CHALL", "{v}");
    assert!(v.get("config").is_none(), "{v}");
    // Alice's next request on the same upstream connection is still logged in.
    let v = api_on(&mut up, &json!({"config": true}), &alice);
    assert!(v["config"]["protocols"].is_array(), "{v}");
}

#[test]
fn account_option_and_bad_json() {
    let cfg = json!({"config": {"protocols": []}});
    let ctl = start(
        prepare(Some(cfg), &[]),
        &["-c", "mist.conf", "-a", "bob:pw1"],
    );
    let remote = [("X-Forwarded-For", "192.0.2.1")];
    let mut c = TcpStream::connect(("127.0.0.1", ctl.port)).unwrap();
    let chall = api_on(&mut c, &json!({}), &remote)["authorize"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    let right = md5hex(&format!("{}{}", md5hex("pw1"), chall));
    let v = api_on(
        &mut c,
        &json!({"authorize": {"username": "bob", "password": right}}),
        &remote,
    );
    assert_eq!(v["authorize"]["status"], "OK");
    let (code, body) = http(&mut c, "POST", "/api", &remote, "{broken");
    assert_eq!(code, 400, "{body}");
    let (code, _) = http(&mut c, "GET", "/nothing", &[], "");
    assert_eq!(code, 404);
}

#[test]
fn streams_round_trip_and_save() {
    let cfg = json!({"config": {"protocols": [], "custom_key": [1, 2]}, "streams": {"live": {"source": "push://"}},
                     "ui_settings": {"x": true}, "something_new": {"kept": 1}});
    let mut ctl = start(prepare(Some(cfg), &[]), &["-c", "mist.conf"]);
    let v = api(
        &ctl,
        &json!({"addstream": {"Cam1": {"source": "push://@pw", "DVR": 20000}}}),
    );
    assert_eq!(v["streams"]["cam1"]["source"], "push://@pw");
    assert_eq!(v["streams"]["cam1"]["name"], "cam1");
    assert_eq!(v["streams"]["live"]["source"], "push://");
    let v = api(&ctl, &json!({"deletestream": ["live"]}));
    assert!(v["streams"].get("live").is_none());
    assert!(v["streams"].get("cam1").is_some());
    let v = api(&ctl, &json!({"save": true}));
    assert_eq!(v["save"], "OK");
    let text = std::fs::read_to_string(ctl.config_path()).unwrap();
    let disk: Value = serde_json::from_str(&text).expect("saved config is valid JSON");
    assert_eq!(disk["streams"]["cam1"]["DVR"], 20000);
    assert!(disk["streams"].get("live").is_none());
    assert_eq!(disk["ui_settings"]["x"], true);
    assert_eq!(disk["something_new"]["kept"], 1);
    assert_eq!(disk["config"]["custom_key"], json!([1, 2]));
    // No temp files left beside it.
    let names: Vec<String> = std::fs::read_dir(ctl.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
    // "streams" replaces the whole set.
    let v = api(
        &ctl,
        &json!({"streams": {"a": {"source": "push://"}, "b": {"source": "/x.mp4"}}}),
    );
    let keys: Vec<&String> = v["streams"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["a", "b"]);
    // SIGHUP reloads the file (which still has cam1 only).
    unsafe { libc::kill(ctl.pid() as i32, libc::SIGHUP) };
    wait_for("reload", Duration::from_secs(5), || {
        let v = api(&ctl, &json!({"streams": true}));
        v["streams"].get("cam1").map(|_| ())
    });
    // Restarting from the saved file gives the same streams.
    unsafe { libc::kill(ctl.pid() as i32, libc::SIGTERM) };
    assert!(wait_exit(&mut ctl, Duration::from_secs(10)).success());
    let ctl2 = start(
        Ctl {
            dir: std::mem::replace(&mut ctl.dir, tempfile::tempdir().unwrap()),
            child: None,
            port: free_port(),
            term_on_drop: false,
        },
        &["-c", "mist.conf"],
    );
    let v = api(&ctl2, &json!({"streams": true}));
    assert_eq!(v["streams"]["cam1"]["source"], "push://@pw");
}

#[test]
fn config_set_and_log() {
    let cfg = json!({"config": {"protocols": [], "serverid": "one"}});
    let ctl = start(prepare(Some(cfg), &[]), &["-c", "mist.conf", "-C", "r"]);
    let v = api(&ctl, &json!({"config": {"serverid": "two", "debug": 4}}));
    assert_eq!(v["config"]["serverid"], "two");
    let v = api(
        &ctl,
        &json!({"log": true, "capabilities": true, "active_streams": true, "clients": {}, "totals": {}, "push_list": true}),
    );
    let log = v["log"].as_array().unwrap();
    assert!(
        log.iter()
            .any(|l| l[2].as_str().unwrap_or("").contains("API listening")),
        "{log:?}"
    );
    assert!(log.iter().all(|l| l[0].is_u64() && l[1].is_string()));
    assert!(v["capabilities"]["connectors"].is_object());
    assert_eq!(v["active_streams"], json!([]));
    assert_eq!(v["push_list"], json!([]));
    assert!(v["clients"]["data"].is_array());
    assert!(v["totals"]["data"].is_array());
}

#[test]
fn child_restarted_quickly_after_kill9_and_stopped_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let script = fake_output(tmp.path());
    let port = free_port();
    let cfg =
        json!({"config": {"protocols": [{"connector": "FAKE", "port": port}]}, "streams": {}});
    let mut ctl = start(
        prepare(Some(cfg), &[("MistOutFAKE", &script)]),
        &["-c", "mist.conf", "-S", "metrics"],
    );
    let pidfile = tmp.path().join("fake.pid");
    let pid1 = wait_for("first start", Duration::from_secs(10), || {
        read_pid(&pidfile)
    });
    // Options come from the capabilities (-j): port → --port; the control socket is in the env.
    let args = std::fs::read_to_string(tmp.path().join("fake.args")).unwrap();
    assert!(args.contains(&format!("--port {port}")), "{args}");
    let env = std::fs::read_to_string(tmp.path().join("fake.env")).unwrap();
    assert_eq!(env.trim(), ctl.sock().display().to_string());
    let v = api(&ctl, &json!({"capabilities": true}));
    assert_eq!(v["capabilities"]["connectors"]["FAKE"]["name"], "FAKE");
    // The API shows each protocol's state.
    let v = api(&ctl, &json!({"config": true}));
    assert_eq!(v["config"]["protocols"][0]["online"], 1, "{v}");
    // Prometheus metrics (-S) on the API port.
    let mut c = TcpStream::connect(("127.0.0.1", ctl.port)).unwrap();
    let (code, body) = http(&mut c, "GET", "/metrics", &[], "");
    assert_eq!(code, 200);
    assert!(
        body.contains("mist_children{binary=\"MistOutFAKE\"} 1"),
        "{body}"
    );
    // The child's stderr is collected into the log with its name.
    wait_for("child log line", Duration::from_secs(5), || {
        let v = api(&ctl, &json!({"log": true}));
        v["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l[1] == "WARN" && l[2].as_str().unwrap().contains("MistOutFAKE"))
            .then_some(())
    });
    // Let it be up long enough to count as a normal start, then kill -9.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    unsafe { libc::kill(pid1 as i32, libc::SIGKILL) };
    let pid2 = wait_for("restart", Duration::from_secs(5), || {
        read_pid(&pidfile).filter(|&p| p != pid1 && alive(p))
    });
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "restart took {took:?}");
    eprintln!("restart after kill -9 took {took:?}");
    // SIGTERM: the controller stops its children and exits 0.
    unsafe { libc::kill(ctl.pid() as i32, libc::SIGTERM) };
    let st = wait_exit(&mut ctl, Duration::from_secs(10));
    assert!(st.success(), "{st}");
    assert!(
        !alive(pid2),
        "child {pid2} still alive after controller stopped"
    );
    assert!(!ctl.sock().exists(), "control socket left behind");
    assert!(
        ctl.stderr().contains("killed by signal 9"),
        "{}",
        ctl.stderr()
    );
}

#[test]
fn control_socket_push_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = json!({"config": {"protocols": []}, "streams": {
        "live": {"source": "push://"},
        "secret": {"source": "push://@pw"},
        "lan": {"source": "push://10.1.0.0/16"},
        "vod": {"source": "/nonexistent/file.mp4"}
    }});
    let ctl = prepare(Some(cfg), &[("MistInBuffer", &fake_input(tmp.path()))]);
    // This test (only) uses mist-shm in-process, on the controller's shm directory.
    std::env::set_var("MIST_SHM_DIR", ctl.dir.path().join("shm"));
    let ctl = start(ctl, &["-c", "mist.conf"]);
    let push = |stream: &str, app: &str, host: &str| {
        control(
            &ctl,
            &json!({"cmd": "push", "stream": stream, "app": app, "host": host, "connector": "RTMP", "url": "rtmp://x/"}),
        )
    };
    let r = push("nope", "live", "127.0.0.1");
    assert_eq!(r["ok"], false);
    assert!(
        r["error"].as_str().unwrap().contains("not configured"),
        "{r}"
    );
    assert_eq!(push("vod", "x", "127.0.0.1")["ok"], false);
    assert_eq!(push("secret", "wrong", "127.0.0.1")["ok"], false);
    assert_eq!(push("lan", "x", "10.2.0.1")["ok"], false);
    // Accepted pushes start MistInBuffer -s NAME push://... and are answered once the stream's
    // buffer exists (the stand-in input does not create it: this test does, 400 ms later).
    let creator = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(400));
        mist_shm::StreamWriter::create(
            "secret",
            mist_shm::WriterOptions {
                live: true,
                dvr_ms: 50_000,
            },
        )
        .unwrap()
    });
    let t0 = Instant::now();
    let r = push("Secret", "pw", "127.0.0.1");
    let waited = t0.elapsed();
    let _writer = creator.join().unwrap();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(4),
        "answered after {waited:?}"
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["stream"], "secret");
    assert_eq!(r["config"]["source"], "push://@pw");
    // Buffer already there: immediate answer.
    let _w2 = mist_shm::StreamWriter::create(
        "live+cam+1",
        mist_shm::WriterOptions {
            live: true,
            dvr_ms: 50_000,
        },
    )
    .unwrap();
    let r = push("live+cam 1?x=y", "live", "::1");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["stream"], "live+cam+1"); // the first space acts as +
                                           // No buffer ever: answered ok after MIST_INPUT_WAIT_MS while the input runs.
    let t0 = Instant::now();
    assert_eq!(push("lan", "", "10.1.200.3")["ok"], true);
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    let args = std::fs::read_to_string(tmp.path().join("input.args")).unwrap();
    assert!(args.contains("-s secret push://@pw"), "{args}");
    assert!(args.contains("-s live+cam+1 push://"), "{args}");
    // A second push to a running stream does not start another input.
    assert_eq!(push("secret", "pw", "127.0.0.1")["ok"], true);
    let args = std::fs::read_to_string(tmp.path().join("input.args")).unwrap();
    assert_eq!(args.matches("-s secret").count(), 1, "{args}");
    let v = api(&ctl, &json!({"active_streams": true}));
    let act = v["active_streams"].as_array().unwrap();
    assert!(
        act.contains(&json!("secret"))
            && act.contains(&json!("lan"))
            && act.contains(&json!("live+cam+1")),
        "{v}"
    );
    let v = api(
        &ctl,
        &json!({"active_streams": {"fields": ["status", "inputs", "tracks"]}}),
    );
    assert_eq!(
        v["active_streams"]["data"]["secret"],
        json!(["Online", 1, 0]),
        "{v}"
    );
    assert_eq!(v["active_streams"]["data"]["lan"][0], "Booting", "{v}");
    // A viewer registered in the users table shows up in clients and totals.
    let _viewer = mist_shm::StreamReader::open(
        "secret",
        mist_shm::ReaderInfo {
            connector: "HLS".into(),
            host: "192.0.2.9".into(),
        },
    )
    .unwrap();
    let v = api(
        &ctl,
        &json!({"clients": {"fields": ["host", "stream", "protocol"]}, "totals": {"fields": ["clients"]}}),
    );
    assert_eq!(
        v["clients"]["data"],
        json!([["192.0.2.9", "secret", "HLS"]]),
        "{v}"
    );
    // totals answers from the controller's once-a-second history: the newest row counts the
    // viewer once the next poll has seen it.
    let mut v = v;
    common::wait_until(
        "the viewer in the newest totals row",
        Duration::from_secs(5),
        || {
            let newest = v["totals"]["data"]
                .as_array()
                .and_then(|rows| rows.last().cloned());
            if newest.is_some_and(|r| r[0] == 1) {
                return true;
            }
            v = api(&ctl, &json!({"totals": {"fields": ["clients"]}}));
            false
        },
    );
    // Play of a known live stream is fine; of an unknown one is refused.
    let play = |s: &str| {
        control(
            &ctl,
            &json!({"cmd": "play", "stream": s, "host": "1.2.3.4", "connector": "HLS", "url": "/x"}),
        )
    };
    assert_eq!(play("live+other")["ok"], true);
    assert_eq!(play("unknown")["ok"], false);
    // API commands over the control socket (for local utilities), authorised by file mode.
    let r = control(
        &ctl,
        &json!({"cmd": "api", "command": {"addprotocol": {"connector": "NOPE", "port": 1}, "streams": true}}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["config"]["config"]["protocols"][0]["connector"], "NOPE",
        "{r}"
    );
    assert!(r["config"]["streams"]["secret"].is_object(), "{r}");
    // Garbage on the socket gets an error answer, not a crash.
    let mut s = std::os::unix::net::UnixStream::connect(ctl.sock()).unwrap();
    s.write_all(b"{\"cmd\":\"bogus\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":false"), "{line}");
    // Socket mode 0660.
    let mode = std::fs::metadata(ctl.sock()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // Deleting a stream stops its input.
    api(&ctl, &json!({"deletestream": "lan"}));
    wait_for("input stopped", Duration::from_secs(8), || {
        let v = api(&ctl, &json!({"active_streams": true}));
        (!v["active_streams"]
            .as_array()
            .unwrap()
            .contains(&json!("lan")))
        .then_some(())
    });
    // SIGTERM: children stopped, the streams' shared memory removed.
    let mut ctl = ctl;
    unsafe { libc::kill(ctl.pid() as i32, libc::SIGTERM) };
    assert!(wait_exit(&mut ctl, Duration::from_secs(10)).success());
    let left: Vec<String> = std::fs::read_dir(ctl.dir.path().join("shm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter()
            .all(|f| !f.contains("secret") && !f.contains("live")),
        "{left:?}"
    );
}

#[test]
fn exit_codes() {
    // Invalid config file → 1.
    let ctl = prepare(None, &[]);
    std::fs::write(ctl.config_path(), "{not json").unwrap();
    let st = Command::new(ctl.bin_dir().join("MistController"))
        .args(["-c", "mist.conf", "-p", &free_port().to_string()])
        .current_dir(ctl.dir.path())
        .env("MIST_CONTROL", ctl.sock())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
    // Usage error → 2.
    let st = Command::new(CONTROLLER)
        .arg("--bogus")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
    let st = Command::new(CONTROLLER)
        .args(["-g", "11"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
    // API port in use → 3.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let st = Command::new(CONTROLLER)
        .args(["-p", &port, "-i", "127.0.0.1", "-c", "/nonexistent/x.conf"])
        .env("MIST_CONTROL", ctl.sock())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(3));
    // --version, -j.
    let out = Command::new(CONTROLLER).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("mist-rs"));
    let out = Command::new(CONTROLLER).arg("-j").output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "Controller");
}

#[test]
fn udp_api_opt_in() {
    let udp_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{udp_port}");
    let cfg = json!({"config": {"protocols": []}, "streams": {"live": {"source": "push://"}}});
    let ctl = start_env(
        prepare(Some(cfg), &[]),
        &["-c", "mist.conf"],
        &[("MIST_UDP_API", &addr)],
    );
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    u.send_to(br#"{"streams": true}"#, ("127.0.0.1", udp_port))
        .unwrap();
    let mut buf = [0u8; 65536];
    let (n, _) = u.recv_from(&mut buf).unwrap();
    let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(v["streams"]["live"]["source"], "push://", "{v}");
    drop(ctl);
}

#[test]
fn api_shutdown_command() {
    let mut ctl = start(
        prepare(Some(json!({"config": {"protocols": []}})), &[]),
        &["-c", "mist.conf"],
    );
    let v = api(&ctl, &json!({"shutdown": true}));
    assert!(v.get("shutdown").is_some());
    assert!(wait_exit(&mut ctl, Duration::from_secs(10)).success());
}

#[test]
fn triggers_fire() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display().to_string();
    let script = |name: &str, body: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    };
    let push_no = script(
        "push.sh",
        &format!("cat > {d}/push.payload; echo $1 > {d}/push.name; echo false"),
    );
    let add_no = script("add.sh", &format!("cat > {d}/add.payload; echo no"));
    let start = script("start.sh", &format!("echo started > {d}/start.ran"));
    let source = script("source.sh", "echo push://");
    let noload = script("noload.sh", "echo 0");
    let cfg = json!({"config": {"protocols": [], "triggers": {
        "STREAM_PUSH": [{"handler": push_no, "sync": true, "streams": ["blocked"]}],
        "STREAM_ADD": [{"handler": add_no, "sync": true}],
        "SYSTEM_START": [{"handler": start, "sync": false}],
        "STREAM_SOURCE": [{"handler": source, "sync": true, "streams": ["vod"]}],
        "STREAM_LOAD": [{"handler": noload, "sync": true, "streams": ["noload"]}]
    }}, "streams": {"blocked": {"source": "push://"}, "open": {"source": "push://"},
                   "vod": {"source": "/nonexistent/a.mp4"}, "noload": {"source": "push://"}}});
    let ctl = start_ctl(prepare(
        Some(cfg),
        &[("MistInBuffer", &fake_input(tmp.path()))],
    ));
    wait_for("SYSTEM_START handler", Duration::from_secs(5), || {
        tmp.path().join("start.ran").exists().then_some(())
    });
    // A stream's config alone (MistOutRTSP asks it to check credentials first): the base
    // stream's for a wildcard name, no trigger fired (STREAM_PUSH would write push.name), no
    // input started (one would write input.args).
    let config_of = |stream: &str, push: bool| {
        control(
            &ctl,
            &json!({"cmd": "stream_config", "stream": stream, "push": push}),
        )
    };
    let r = config_of("blocked+cam", true);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["stream"], "blocked+cam", "{r}");
    assert_eq!(r["config"]["source"], "push://", "{r}");
    let r = config_of("vod", false);
    assert_eq!(r["config"]["source"], "/nonexistent/a.mp4", "{r}");
    assert_eq!(config_of("nosuch", false)["ok"], false);
    assert!(!tmp.path().join("push.name").exists(), "STREAM_PUSH fired");
    assert!(!tmp.path().join("input.args").exists(), "an input started");
    let push = |stream: &str| {
        control(
            &ctl,
            &json!({"cmd": "push", "stream": stream, "app": "live", "host": "127.0.0.1", "connector": "RTMP", "url": "rtmp://h/live/x"}),
        )
    };
    let r = push("blocked+cam");
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("STREAM_PUSH"), "{r}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("push.payload")).unwrap(),
        "blocked+cam\n127.0.0.1\nRTMP\nrtmp://h/live/x"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("push.name"))
            .unwrap()
            .trim(),
        "STREAM_PUSH"
    );
    // The trigger is limited to "blocked": other streams are not asked.
    assert_eq!(push("open")["ok"], true);
    let v = api(&ctl, &json!({"addstream": {"new": {"source": "push://"}}}));
    assert!(v["streams"].get("new").is_none(), "STREAM_ADD said no: {v}");
    // STREAM_SOURCE replaces the source of an input about to start; STREAM_LOAD can refuse it.
    let play = |s: &str| {
        control(
            &ctl,
            &json!({"cmd": "play", "stream": s, "host": "1.2.3.4", "connector": "HLS", "url": "/x"}),
        )
    };
    assert_eq!(play("vod")["ok"], true);
    let args = std::fs::read_to_string(tmp.path().join("input.args")).unwrap();
    assert!(args.contains("-s vod push://"), "{args}");
    let r = push("noload");
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("STREAM_LOAD"), "{r}");
    let payload = std::fs::read_to_string(tmp.path().join("add.payload")).unwrap();
    assert!(payload.starts_with("new\n{"), "{payload}");
}

fn start_ctl(ctl: Ctl) -> Ctl {
    start(ctl, &["-c", "mist.conf"])
}

#[test]
fn real_buffer_push() {
    // The workspace's real MistInBuffer, started by a push request on the control socket.
    let cfg = json!({"config": {"protocols": []}, "streams": {"live": {"source": "push://", "DVR": 20000}}});
    let ctl = prepare(Some(cfg), &[]);
    std::fs::copy(
        env!("CARGO_BIN_EXE_MistInBuffer"),
        ctl.bin_dir().join("MistInBuffer"),
    )
    .unwrap();
    let mut ctl = start(ctl, &["-c", "mist.conf"]);
    let v = api(&ctl, &json!({"capabilities": true}));
    assert_eq!(
        v["capabilities"]["inputs"]["Buffer"]["name"], "Buffer",
        "{v}"
    );
    let t0 = Instant::now();
    let r = control(
        &ctl,
        &json!({"cmd": "push", "stream": "live+one", "app": "live", "host": "127.0.0.1", "connector": "RTMP", "url": "rtmp://h/live/live+one"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["stream"], "live+one");
    assert_eq!(r["config"]["DVR"], 20000);
    eprintln!("push answered after {:?}", t0.elapsed());
    let v = api(
        &ctl,
        &json!({"active_streams": {"fields": ["status", "inputs"]}}),
    );
    assert_eq!(
        v["active_streams"]["data"]["live+one"],
        json!(["Online", 1]),
        "{v}"
    );
    unsafe { libc::kill(ctl.pid() as i32, libc::SIGTERM) };
    assert!(wait_exit(&mut ctl, Duration::from_secs(10)).success());
    let left: Vec<String> = std::fs::read_dir(ctl.dir.path().join("shm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(ctl.stderr().contains("MistInBuffer"), "{}", ctl.stderr());
}
