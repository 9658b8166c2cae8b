//! Security tests (issue 10): each one is an attack tried against the real MistController (and
//! the other binaries where the attack needs them), with what the server must answer.

mod common;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ctl::{exchange, md5hex, Answer, CtlDir as Ctl, CONTROLLER};
use common::free_port;

/// Kills a child process when dropped (also when a test fails half-way).
use common::Proc as Guard;

/// Starts MistController (no children: its directory has no other binaries) with `config`;
/// dropping it sends SIGTERM first (the controller stops the buffers it started).
fn start(config: Value) -> Ctl {
    let mut ctl = Ctl::new(Some(&config));
    ctl.term_on_drop = true;
    ctl.start(&["-c", "mist.conf"], &[])
}

fn admin_config() -> Value {
    json!({"account": {"admin": {"password": md5hex("secret")}}, "config": {"protocols": []},
           "streams": {"live": {"source": "push://"}}})
}

trait Challenge {
    fn is_challenge(&self) -> bool;
}

impl Challenge for Answer {
    fn is_challenge(&self) -> bool {
        self.json()["authorize"]["status"] == "CHALL"
    }
}

/// POSTs an API command with `headers` (Host is given among them, or defaults to the API's own).
fn api(ctl: &Ctl, conn: &mut TcpStream, cmd: &Value, headers: &[(&str, &str)]) -> Answer {
    api_target(ctl, conn, "/api", cmd, headers)
}

fn api_target(
    ctl: &Ctl,
    conn: &mut TcpStream,
    target: &str,
    cmd: &Value,
    headers: &[(&str, &str)],
) -> Answer {
    let body = cmd.to_string();
    let mut req = format!("POST {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {}\r\n", ctl.host()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    exchange(conn, req.as_bytes())
}

fn connect(ctl: &Ctl) -> TcpStream {
    ctl.connect()
}

fn login_answer(chall: &str, password: &str) -> String {
    md5hex(&format!("{}{}", md5hex(password), chall))
}

/// A page on another site, loaded in a browser on the server's host, must not drive the API; a
/// valid challenge answer still logs it in.
#[test]
fn cross_origin_requests_get_no_auto_login() {
    let ctl = start(admin_config());
    let mut c = connect(&ctl);
    let cfg = json!({"config": true});
    // Control: a plain local request is auto-authorised, and its answer names no origin at all.
    let a = api(&ctl, &mut c, &cfg, &[]);
    assert!(a.json()["config"]["protocols"].is_array(), "{}", a.body);
    assert_eq!(a.header("Access-Control-Allow-Origin"), None);
    // The API's own origin is fine.
    let own = format!("http://{}", ctl.host());
    let a = api(&ctl, &mut c, &cfg, &[("Origin", &own)]);
    assert!(a.json().get("config").is_some(), "{}", a.body);
    // Cross-origin in every way a browser says it.
    for h in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Referer", "http://evil.example/attack.html"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let a = api(&ctl, &mut c, &cfg, &[h]);
        assert!(a.is_challenge(), "{h:?}: {}", a.body);
        assert!(a.json().get("config").is_none(), "{h:?}: {}", a.body);
    }
    // A cross-origin GET (what an <img> or a link sends) is no different.
    let a = exchange(
        &mut c,
        format!(
            "GET /api?command=%7B%22config%22%3Atrue%7D HTTP/1.1\r\nHost: {}\r\nOrigin: http://evil.example\r\n\r\n",
            ctl.host()
        )
        .as_bytes(),
    );
    assert!(a.is_challenge(), "cross-origin GET: {}", a.body);
    assert!(!a.body.contains("protocols"), "{}", a.body);
    // DNS rebinding: evil.example resolves to 127.0.0.1; same origin, but not our name.
    let rebound = format!("evil.example:{}", ctl.port);
    let a = api(
        &ctl,
        &mut c,
        &cfg,
        &[("Host", &rebound), ("Origin", &format!("http://{rebound}"))],
    );
    assert!(a.is_challenge(), "{}", a.body);
    let a = api(&ctl, &mut c, &cfg, &[("Host", &rebound)]);
    assert!(a.is_challenge(), "{}", a.body);
    // JSONP (a <script> tag sends no Origin) needs a login.
    let target = "/api?callback=steal";
    let a = api_target(&ctl, &mut c, target, &cfg, &[]);
    assert!(!a.body.starts_with("steal("), "{}", a.body);
    assert!(a.is_challenge(), "{}", a.body);
    // A valid challenge answer from the other origin logs in; the answer names that origin only.
    let evil = [("Origin", "http://ui.example")];
    let a = api(&ctl, &mut c, &cfg, &evil);
    let chall = a.json()["authorize"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    let login = json!({"authorize": {"username": "admin", "password": login_answer(&chall, "secret")},
                       "config": true});
    let a = api(&ctl, &mut c, &login, &evil);
    assert!(a.json()["config"]["protocols"].is_array(), "{}", a.body);
    assert_eq!(
        a.header("Access-Control-Allow-Origin"),
        Some("http://ui.example")
    );
    // The login holds for that origin on this connection, not for another page's.
    let a = api(&ctl, &mut c, &cfg, &evil);
    assert!(a.json().get("config").is_some(), "{}", a.body);
    let a = api(&ctl, &mut c, &cfg, &[("Origin", "http://evil.example")]);
    assert!(a.is_challenge(), "{}", a.body);
    // JSONP after a password login is answered as JSONP.
    let a = api_target(&ctl, &mut c, "/api?callback=cb", &login, &evil);
    assert!(a.body.starts_with("cb("), "{}", a.body);
}

/// Guessing passwords: after a few failures an address's logins are refused (even the right one)
/// for a while, while other addresses still log in.
#[test]
fn repeated_bad_logins_are_rate_limited() {
    let ctl = start(admin_config());
    let mut c = connect(&ctl);
    let me = [("X-Forwarded-For", "203.0.113.5")];
    let a = api(&ctl, &mut c, &json!({}), &me);
    let chall = a.json()["authorize"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..5 {
        let wrong = json!({"authorize": {"username": "admin",
                                         "password": login_answer(&chall, &format!("guess{i}"))}});
        assert!(api(&ctl, &mut c, &wrong, &me).is_challenge());
    }
    let right = json!({"authorize": {"username": "admin", "password": login_answer(&chall, "secret")},
                       "config": true});
    let a = api(&ctl, &mut c, &right, &me);
    assert!(a.is_challenge(), "the limit must hold: {}", a.body);
    assert!(a.json().get("config").is_none());
    assert!(ctl.stderr().contains("failed logins"), "{}", ctl.stderr());
    // Another address is not affected (its challenge differs: it is bound to the address).
    let other = [("X-Forwarded-For", "198.51.100.7")];
    let a = api(&ctl, &mut c, &json!({}), &other);
    let chall2 = a.json()["authorize"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(chall, chall2);
    // The first address's answer is no good for the second one.
    let a = api(&ctl, &mut c, &right, &other);
    assert!(a.is_challenge(), "{}", a.body);
    let right2 = json!({"authorize": {"username": "admin", "password": login_answer(&chall2, "secret")},
                        "config": true});
    let a = api(&ctl, &mut c, &right2, &other);
    assert!(a.json()["config"].is_object(), "{}", a.body);
}

/// An account stored without a password: the answer md5(md5("") ...) is computable by anyone, so
/// it must not log in; neither may an empty stored hash.
#[test]
fn account_without_password_cannot_log_in() {
    let ctl = start(json!({"account": {"nopass": {"password": ""}}, "config": {"protocols": []}}));
    let mut c = connect(&ctl);
    let me = [("X-Forwarded-For", "203.0.113.9")];
    let a = api(&ctl, &mut c, &json!({}), &me);
    let chall = a.json()["authorize"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    for answer in [md5hex(&chall), login_answer(&chall, "")] {
        let a = api(
            &ctl,
            &mut c,
            &json!({"authorize": {"username": "nopass", "password": answer}, "config": true}),
            &me,
        );
        assert!(a.is_challenge(), "{}", a.body);
    }
    let _ = ctl.config_path();
}

fn control(ctl: &Ctl, req: &Value) -> Value {
    ctl.control(req)
}

/// A stream name with a line break (from an RTMP publish, an HTTP path or the API) would inject
/// lines into trigger payloads and logs: it names no stream anywhere.
#[test]
fn control_characters_in_stream_names_are_refused() {
    let ctl = start(admin_config());
    // What MistOutRTMP asks the controller when a peer publishes to `live+a\nb`.
    for name in [
        "live+a\nb",
        "live+x\r\nSTREAM_END",
        "li\u{0}ve",
        "live+\u{7f}",
    ] {
        let r = control(
            &ctl,
            &json!({"cmd": "push", "stream": name, "app": "live", "host": "127.0.0.1",
                    "connector": "RTMP", "url": format!("rtmp://127.0.0.1/live/{name}")}),
        );
        assert_eq!(r["ok"], false, "{name:?}: {r}");
        assert!(
            r["error"].as_str().unwrap().contains("invalid"),
            "{name:?}: {r}"
        );
    }
    // The API refuses to add one.
    let mut c = connect(&ctl);
    let a = api(
        &ctl,
        &mut c,
        &json!({"addstream": {"bad\nname": {"source": "push://"}}}),
        &[],
    );
    let streams = a.json()["streams"].clone();
    assert!(
        streams
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains('\n'))
            && streams.get("badname").is_none(),
        "{streams}"
    );
}

/// The same name in an HTTP path of MistOutHTTP: refused as an invalid name, not looked up.
#[test]
fn control_characters_in_http_stream_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, port) = common::http_out(dir.path(), &[]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for path in ["/hls/live+a%0Ab/index.m3u8", "/live+a%0D%0Ab.ts"] {
        let a = exchange(
            &mut c,
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert!(a.body.contains("invalid stream name"), "{path}: {}", a.body);
    }
}

/// Request smuggling: two Content-Length headers (or a signed one) are refused with 400 and the
/// connection is closed, so the "second request" hidden in the body is never run.
#[test]
fn conflicting_content_lengths_are_refused() {
    let ctl = start(admin_config());
    for (cl, body) in [
        ("Content-Length: 2\r\nContent-Length: 40", "{}"),
        ("Content-Length: 2\r\nContent-Length: 2", "{}"),
        ("Content-Length: +2", "{}"),
    ] {
        let mut c = connect(&ctl);
        let raw = format!(
            "POST /api HTTP/1.1\r\nHost: {}\r\n{cl}\r\n\r\n{body}",
            ctl.host()
        );
        let a = exchange(&mut c, raw.as_bytes());
        assert_eq!(a.status, 400, "{cl}: {}", a.body);
        // Closed: nothing more is read from this connection.
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
}

/// Two `Host` headers (a local name first, another site second): which one a hop believes decides
/// auto-authorisation (DNS rebinding) and routing, so the request is refused with 400 and the
/// connection closed, on the API and on MistOutHTTP (which also refuses two Content-Length).
#[test]
fn two_host_headers_are_refused() {
    let ctl = start(admin_config());
    let dir = tempfile::tempdir().unwrap();
    let (_http, http_port) = common::http_out(dir.path(), &[]);
    let cmd = "command=%7B%22config%22%3Atrue%7D";
    for (what, port, raw) in [
        (
            "API, two Host",
            ctl.port,
            format!("GET /api?{cmd} HTTP/1.1\r\nHost: {}\r\nHost: evil.example\r\n\r\n", ctl.host()),
        ),
        (
            "API, two Host, other case and order",
            ctl.port,
            format!("GET /api?{cmd} HTTP/1.1\r\nhost: evil.example\r\nX-A: 1\r\nHOST: {}\r\n\r\n", ctl.host()),
        ),
        (
            "MistOutHTTP, two Host",
            http_port,
            "GET /live.ts HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n".to_string(),
        ),
        (
            "MistOutHTTP, two Content-Length",
            http_port,
            "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}".to_string(),
        ),
    ] {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let a = exchange(&mut c, raw.as_bytes());
        assert_eq!(a.status, 400, "{what}: {}", a.body);
        assert!(!a.body.contains("protocols"), "{what}: config given: {}", a.body);
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{what}: more after the 400");
    }
    // One Host still works.
    let mut c = connect(&ctl);
    let a = exchange(
        &mut c,
        format!("GET /api?{cmd} HTTP/1.1\r\nHost: {}\r\n\r\n", ctl.host()).as_bytes(),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.json()["config"].is_object(), "{}", a.body);
}

/// Before login an API connection may buffer 64 KiB only, also when the request comes through a
/// reverse proxy on this machine (a loopback peer with a forwarding header: someone else's
/// request); a local request (no forwarding header) may still send a large body.
#[test]
fn api_input_before_login_is_small_also_through_a_local_proxy() {
    let ctl = start(admin_config());
    let cmd = r#"{"config": true}"#;
    let big = 200 * 1024;
    let body = format!("{cmd}{}", " ".repeat(big - cmd.len()));
    let mut c = connect(&ctl);
    let head = format!(
        "POST /api HTTP/1.1\r\nHost: {}\r\nX-Forwarded-For: 203.0.113.8\r\nContent-Length: {big}\r\n\r\n",
        ctl.host()
    );
    c.write_all(head.as_bytes()).unwrap();
    // 100 KiB of the body: more than a request before login may buffer.
    let _ = c.write_all(&body.as_bytes()[..100 * 1024]);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 413") && text.contains("before login"),
        "proxied request: {text:?}"
    );
    // The same body from the machine itself (no forwarding header) is read whole.
    let mut c = connect(&ctl);
    let raw = format!(
        "POST /api HTTP/1.1\r\nHost: {}\r\nContent-Length: {big}\r\n\r\n{body}",
        ctl.host()
    );
    let a = exchange(&mut c, raw.as_bytes());
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.json()["config"].is_object(), "{}", a.body);
}

/// The control socket's directory: created 0700, and one owned by another user is refused (the
/// controller exits with the bind error code instead of listening where someone else can swap
/// the socket).
#[test]
fn control_socket_directory_is_ours_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut ctl = start(admin_config());
    ctl.kill();
    // A fresh directory is created 0700 (outside /tmp, where the old code used 0750).
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fresh = scratch.path().join("run/sub");
    let spawn = |sock: &std::path::Path, log: &str| {
        let err = std::fs::File::create(ctl.dir.path().join(log)).unwrap();
        Guard(
            Command::new(CONTROLLER)
                .args(["-p", &free_port().to_string(), "-i", "127.0.0.1"])
                .args(["-c", "mist.conf"])
                .current_dir(ctl.dir.path())
                .env("MIST_CONTROL", sock)
                .env("MIST_SHM_DIR", ctl.dir.path().join("shm"))
                .stdin(Stdio::null())
                .stderr(err)
                .spawn()
                .unwrap(),
        )
    };
    let child = spawn(&fresh.join("control.sock"), "stderr2.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fresh.join("control.sock").exists() {
        assert!(Instant::now() < deadline, "no control socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    drop(child);
    // A directory owned by `nobody` (the sandbox runs as root and can hand it over).
    let foreign = ctl.dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = std::ffi::CString::new(foreign.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
    assert_eq!(r, 0, "chown to nobody (run the tests as root)");
    let mut child = spawn(&foreign.join("control.sock"), "stderr3.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the controller took the foreign directory and runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(3), "{status:?}");
    let log = std::fs::read_to_string(ctl.dir.path().join("stderr3.log")).unwrap();
    assert!(log.contains("owned by uid 65534"), "{log}");
    assert!(!foreign.join("control.sock").exists());
}

/// `-u nobody` as root: once bound, the controller runs as nobody (and still answers), and the
/// control socket was handed to that user.
#[test]
fn user_option_drops_root() {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "run the tests as root");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mist.conf"), admin_config().to_string()).unwrap();
    let sockdir = dir.path().join("run");
    let port = free_port();
    let mut child = Guard(
        Command::new(CONTROLLER)
            .args([
                "-p",
                &port.to_string(),
                "-i",
                "127.0.0.1",
                "-c",
                "mist.conf",
                "-C",
                "none",
                "-u",
                "nobody",
            ])
            .current_dir(dir.path())
            .env("MIST_CONTROL", sockdir.join("control.sock"))
            .env("MIST_SHM_DIR", dir.path().join("shm"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.0.try_wait().unwrap().is_none(), "controller exited");
        assert!(Instant::now() < deadline, "no start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap();
    let uids = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65534"; 4],
        "{uids}"
    );
    assert_eq!(std::fs::metadata(&sockdir).unwrap().uid(), 65534);
    assert_eq!(
        std::fs::symlink_metadata(sockdir.join("control.sock"))
            .unwrap()
            .uid(),
        65534
    );
    // Still serving: a local request gets its answer.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let a = exchange(
        &mut c,
        format!(
            "GET /api?command=%7B%22config%22%3Atrue%7D HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(a.body.contains("protocols"), "{}", a.body);
}

/// Wildcard children per base stream are capped: a publisher inventing `live+1`, `live+2`, …
/// gets a buffer for the first ones only (here the limit is 2), with a log line.
#[test]
fn wildcard_children_are_capped() {
    let mut cfg = admin_config();
    cfg["config"]["limits"] = json!({"wildcard_children": 2});
    let ctl = start(cfg);
    let push = |name: &str| {
        control(
            &ctl,
            &json!({"cmd": "push", "stream": name, "app": "live", "host": "127.0.0.1",
                    "connector": "RTMP", "url": format!("rtmp://127.0.0.1/live/{name}")}),
        )
    };
    for n in ["live+1", "live+2"] {
        let r = push(n);
        assert_eq!(r["ok"], true, "{n}: {r} {}", ctl.stderr());
    }
    let r = push("live+3");
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("limit"), "{r}");
    assert!(
        ctl.stderr().contains("wildcard stream limit"),
        "{}",
        ctl.stderr()
    );
    // The base stream itself is not a child.
    let r = push("live");
    assert_eq!(r["ok"], true, "{r}");
}

/// Live streams at once are capped (`limits.live_streams`, here 2): the third publisher's stream
/// gets no buffer, with a log line.
#[test]
fn live_streams_are_capped() {
    let mut cfg = admin_config();
    cfg["config"]["limits"] = json!({"live_streams": 2});
    for n in ["one", "two", "three"] {
        cfg["streams"][n] = json!({"source": "push://"});
    }
    let ctl = start(cfg);
    let push = |name: &str| {
        control(
            &ctl,
            &json!({"cmd": "push", "stream": name, "app": "live", "host": "127.0.0.1",
                    "connector": "RTMP", "url": format!("rtmp://127.0.0.1/live/{name}")}),
        )
    };
    for n in ["one", "two"] {
        let r = push(n);
        assert_eq!(r["ok"], true, "{n}: {r} {}", ctl.stderr());
    }
    let r = push("three");
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("limits.live_streams"),
        "{r}"
    );
    assert!(
        ctl.stderr().contains("live stream limit"),
        "{}",
        ctl.stderr()
    );
}

/// Inputs per file stream are capped (`limits.file_inputs`, here 1): `vod+x` of a file stream
/// would load the same file again; it is refused, with a log line, while `vod` plays.
#[test]
fn inputs_per_file_stream_are_capped() {
    let media = tempfile::tempdir().unwrap();
    let mp4 = media.path().join("film.mp4");
    common::make_mp4(&mp4, "160x120", 2);
    let mut cfg = admin_config();
    cfg["config"]["limits"] = json!({"file_inputs": 1});
    cfg["streams"]["vod"] = json!({"source": mp4.to_str().unwrap()});
    let ctl = start(cfg);
    let play = |name: &str| {
        control(
            &ctl,
            &json!({"cmd": "play", "stream": name, "host": "127.0.0.1", "connector": "HTTP",
                    "url": format!("/{name}.mp4")}),
        )
    };
    let r = play("vod");
    assert_eq!(r["ok"], true, "{r} {}", ctl.stderr());
    let r = play("vod+again");
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("limits.file_inputs"),
        "{r}"
    );
    assert!(
        ctl.stderr().contains("input limit of file stream vod"),
        "{}",
        ctl.stderr()
    );
    // The running one is still served.
    let r = play("vod");
    assert_eq!(r["ok"], true, "{r}");
}

/// Reads an answer's status line and head only (the body of a live stream never ends).
fn head_of(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Each distinct `?video=`/`?audio=` selection of a live stream is a feed with a reader slot of
/// its own; a peer inventing selections gets 503 past 16 of them per stream instead of using up
/// the stream's reader slots. The same selection spelled differently shares one feed.
#[test]
fn distinct_selections_per_stream_are_capped() {
    let shm = common::shared_shm("security");
    let media = tempfile::tempdir().unwrap();
    let flv = media.path().join("src.flv");
    common::make_flv(&flv, "160x120", 20);
    let _publisher = common::ShmPublisher::start("selcap", &flv);
    let (_http, port) = common::http_out(shm, &[]);
    let get = |q: &str| {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(format!("GET /selcap.ts?{q} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .unwrap();
        let h = head_of(&mut c);
        (c, h)
    };
    let mut open = Vec::new();
    for i in 1..=16 {
        let (c, h) = get(&format!("audio={i}"));
        assert!(h.starts_with("HTTP/1.1 200"), "selection {i}: {h}");
        open.push(c);
    }
    let (_c, h) = get("audio=17");
    assert!(h.starts_with("HTTP/1.1 503"), "{h}");
    // `audio=0001, 1` is `audio=1`: the existing feed.
    let (_c2, h) = get("audio=0001,%201");
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
}

/// Resident memory of a process (VmRSS, KiB).
fn rss_kib(pid: u32) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {st}"))
}

/// Selector flood: 10 000 distinct `?video=`/`?audio=` selectors against one MistOutHTTP leave its
/// memory bounded. Half go to a VoD stream's progressive MP4 on one keep-alive connection (each a
/// small Range; plans are keyed by the tracks picked and bounded in number and bytes), half to a
/// live stream, each on a new connection that is dropped after the answer's head (a feed per
/// selection while it is watched, at most 16 per stream, freed with its viewer). Unbounded
/// caches of plans or feeds would grow by hundreds of MiB; the bound allows 64 MiB.
#[test]
fn selector_flood_keeps_memory_bounded() {
    let shm = common::shared_shm("security");
    let media = tempfile::tempdir().unwrap();
    let flv = media.path().join("flood.flv");
    common::make_flv(&flv, "160x120", 120);
    let mp4 = media.path().join("flood.mp4");
    common::make_mp4(&mp4, "160x120", 10);
    let _publisher = common::ShmPublisher::start("flood", &flv);
    let mut vod_stream = common::load_vod_external("floodvod", &mp4);
    let (http, port) = common::http_out(shm, &[]);
    let pid = http.pid();
    let mut keep = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let vod = |c: &mut TcpStream, i: usize| {
        let raw = format!(
            "GET /floodvod.mp4?video=1,{i}&audio=ALL,{} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-99\r\n\r\n",
            i + 7
        );
        let a = exchange(c, raw.as_bytes());
        assert_eq!(a.status, 206, "selector {i}: {}", a.body);
    };
    let live = |i: usize| {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(
            format!(
                "GET /flood.ts?video=ALL,{i}&audio={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                i + 3
            )
            .as_bytes(),
        )
        .unwrap();
        let h = head_of(&mut c);
        assert!(
            h.starts_with("HTTP/1.1 200") || h.starts_with("HTTP/1.1 503"),
            "selector {i}: {h}"
        );
    };
    // Warm up (first plan, first feeds, allocator arenas), then measure.
    for i in 0..50 {
        vod(&mut keep, i);
        live(i);
    }
    let before = rss_kib(pid);
    for i in 50..5000 {
        // The test process is the VoD stream's writer: it must look alive to the output
        // however long the flood takes on a loaded machine.
        if i % 100 == 0 {
            vod_stream.writer.heartbeat();
        }
        vod(&mut keep, i);
        live(i);
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 64 * 1024,
        "MistOutHTTP grew from {before} KiB to {after} KiB over 10 000 selectors"
    );
    // Still serving.
    vod_stream.writer.heartbeat();
    vod(&mut keep, 0);
}

/// MistOutHTTP (no controller) on `shm`, its stderr into `log`.
fn http_out_logged(shm: &std::path::Path, log: &std::path::Path) -> (Guard, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_MistOutHTTP"))
        .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-g", "4"])
        .env("MIST_SHM_DIR", shm)
        .env_remove("MIST_CONTROL")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let g = Guard(child);
    assert!(
        common::wait_port(port, Duration::from_secs(10)),
        "MistOutHTTP never listened"
    );
    (g, port)
}

/// A local user plants a stream's metadata file (owned by another uid) in the shared-memory
/// directory before the stream exists: a viewer's output refuses it with a log line instead of
/// reading it, and it is never adopted (still the other user's file, unchanged).
#[test]
fn foreign_owned_shm_file_is_refused() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "run the tests as root");
    let dir = tempfile::tempdir().unwrap();
    let shm = dir.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    let planted = shm.join("mist-planted-meta");
    std::fs::write(&planted, vec![0u8; 1 << 20]).unwrap();
    let c = std::ffi::CString::new(planted.to_str().unwrap()).unwrap();
    // SAFETY: chown(2) of a path we made.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    let log = dir.path().join("http.log");
    let (_http, port) = http_out_logged(&shm, &log);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET /planted.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let h = head_of(&mut conn);
    assert!(!h.starts_with("HTTP/1.1 200"), "served a foreign file: {h}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("refusing shared-memory file") && text.contains("owned by uid 65534"),
        "{text}"
    );
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(&planted).unwrap();
    assert_eq!((md.uid(), md.len()), (65534, 1 << 20));
}

/// Every page file of a live stream is truncated to nothing while MistOutHTTP has them mapped for
/// a viewer: the process survives (no SIGBUS), and a new viewer is served.
#[test]
fn truncated_pages_do_not_kill_the_output() {
    let shm = common::shared_shm("security");
    let media = tempfile::tempdir().unwrap();
    let flv = media.path().join("trunc.flv");
    common::make_flv(&flv, "160x120", 30);
    let _publisher = common::ShmPublisher::start("truncated", &flv);
    let (mut http, port) = common::http_out(shm, &[]);
    let mut viewer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    viewer
        .write_all(b"GET /truncated.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let h = head_of(&mut viewer);
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    let mut buf = vec![0u8; 65536];
    let _ = viewer.read(&mut buf);
    let pages: Vec<_> = std::fs::read_dir(shm)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("mist-truncated-p")
        })
        .map(|e| e.path())
        .collect();
    assert!(!pages.is_empty());
    for p in &pages {
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(0)
            .unwrap();
    }
    // The viewer's reader meets the truncated pages (zeros, nothing that validates).
    viewer
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok(0) = viewer.read(&mut buf) {
            break;
        }
    }
    assert!(
        http.0.try_wait().unwrap().is_none(),
        "MistOutHTTP died after the pages were truncated"
    );
    let mut again = TcpStream::connect(("127.0.0.1", port)).unwrap();
    again
        .write_all(b"GET /truncated.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let h = head_of(&mut again);
    assert!(
        h.starts_with("HTTP/1.1"),
        "no answer after the truncation: {h:?}"
    );
}

/// MistOutRTMP on `shm` (no controller) with `args`, its stderr into `log`.
fn rtmp_out_logged(shm: &std::path::Path, log: &std::path::Path, args: &[&str]) -> (Guard, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_MistOutRTMP"))
        .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-g", "4"])
        .args(args)
        .env("MIST_SHM_DIR", shm)
        .env_remove("MIST_CONTROL")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let g = Guard(child);
    assert!(
        common::wait_port(port, Duration::from_secs(10)),
        "MistOutRTMP never listened"
    );
    (g, port)
}

/// Drives a [`mist_media::rtmp::ClientSession`] over a blocking socket until the server refuses,
/// is ready, or closes; returns what happened.
fn rtmp_until_answer(
    port: u16,
    app: &str,
    stream: &str,
    mode: mist_media::rtmp::ClientMode,
) -> String {
    use mist_media::rtmp::{ClientEvent, ClientSession};
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut s = ClientSession::new(
        app,
        &format!("rtmp://127.0.0.1:{port}/{app}"),
        stream,
        mode,
        7,
    );
    let mut buf = vec![0u8; 65536];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        loop {
            match s.poll() {
                Ok(Some(ClientEvent::Refused(why))) => return format!("refused: {why}"),
                Ok(Some(ClientEvent::Ready { .. })) => return "ready".into(),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return format!("error: {e}"),
            }
        }
        let out = s.take_output();
        if !out.is_empty() && sock.write_all(&out).is_err() {
            return "closed".into();
        }
        match sock.read(&mut buf) {
            Ok(0) => return "closed".into(),
            Ok(n) => s.feed(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return "closed".into(),
        }
    }
    "no answer".into()
}

/// An RTMP publish to a name with a line break (the real protocol, not the controller request):
/// refused, and no shared-memory file of such a name is made. A plain name is accepted, as a
/// control.
#[test]
fn newline_in_an_rtmp_publish_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shm = dir.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    let log = dir.path().join("rtmp.log");
    let (_rtmp, port) = rtmp_out_logged(&shm, &log, &[]);
    let publish = mist_media::rtmp::ClientMode::Publish;
    let r = rtmp_until_answer(port, "live", "live+a\nb", publish);
    assert!(r.starts_with("refused") || r == "closed", "{r}");
    let names: Vec<String> = std::fs::read_dir(&shm)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains('\n') && !n.contains("a_b")),
        "{names:?}"
    );
    assert_eq!(rtmp_until_answer(port, "live", "live+ab", publish), "ready");
}

/// RTMP connections per remote address are capped (`--max-per-ip 2`): the third from 127.0.0.1
/// is closed at once with a log line; the two others are served.
#[test]
fn rtmp_connections_per_address_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let shm = dir.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    let log = dir.path().join("rtmp.log");
    let (_rtmp, port) = rtmp_out_logged(&shm, &log, &["--max-per-ip", "2"]);
    // The probe connection of rtmp_out_logged must be gone first.
    std::thread::sleep(Duration::from_millis(500));
    // Each sends the first handshake byte.
    let connect = || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&[3]).unwrap();
        c
    };
    let held: Vec<TcpStream> = (0..2).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 1];
    let closed = match third.read(&mut b) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(closed, "the third connection was kept: {text}");
    assert!(text.contains("per-address cap (2) reached"), "{text}");
    // Once the two leave, a new connection is served.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let publish = mist_media::rtmp::ClientMode::Publish;
    assert_eq!(rtmp_until_answer(port, "live", "capped", publish), "ready");
}

/// A stream the controller did not start names a source file: here the test process (any process
/// of the server's uid could) writes a VoD stream with external records into the controller's
/// shared memory, under a configured live name. The controller's MistOutHTTP does not open the
/// file the stream names (503 saying why), while a VoD stream the controller started itself from
/// the same file plays.
#[test]
fn source_file_of_a_stream_the_controller_did_not_start_is_not_opened() {
    let shm = common::shared_shm("security");
    let media = tempfile::tempdir().unwrap();
    let mp4 = media.path().join("planted.mp4");
    common::make_mp4(&mp4, "160x120", 3);
    let ctl = common::Controller::start_http(
        json!({"planted": {"source": "push://"},
               "owned": {"source": mp4.to_str().unwrap(), "inputtimeout": 5}}),
        json!([{"connector": "MP4"}]),
        Some(shm.as_path()),
    );
    let _planted = common::load_vod_external("planted", &mp4);
    let (head, body) = common::http_get(ctl.http, "/planted.mp4");
    let text = String::from_utf8_lossy(&body);
    assert!(
        !head.starts_with("HTTP/1.1 200") && text.contains("not started by the controller"),
        "a stream written outside the controller had its source file opened: {head}\n{}",
        &text[..text.len().min(300)]
    );
    let (head, body) = common::http_get(ctl.http, "/owned.mp4");
    assert!(
        head.starts_with("HTTP/1.1 200") && body.len() > 10_000,
        "the controller's own VoD stream: {head}, {} bytes",
        body.len()
    );
}

/// Bytes buffered per RTMP connection while the controller decides a publish: a publisher whose
/// STREAM_PUSH handler hangs floods valid audio messages. MistOutRTMP reads nothing from that
/// connection until the answer (at most one read turn, 256 KiB, was taken before), so the flooder
/// only fills the kernel's socket buffers (TCP backpressure) and MistOutRTMP's memory stays
/// flat; meanwhile another publisher and its viewer are served.
#[test]
fn rtmp_bytes_buffered_while_a_publish_is_decided_are_bounded() {
    use mist_media::rtmp::{ClientMode, ClientSession};
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("deciding");
    let handler = scratch.path().join("hang.sh");
    std::fs::write(
        &handler,
        format!(
            "#!/bin/sh\ntouch '{}'\ncat >/dev/null\nsleep 60\necho true\n",
            marker.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&handler, std::fs::Permissions::from_mode(0o755)).unwrap();
    let h = handler.to_str().unwrap().to_string();
    let ctl = common::Controller::start_edited(
        json!({"slow": {"source": "push://"}, "other": {"source": "push://"}}),
        move |c| {
            c["config"]["triggers"] =
                json!({"STREAM_PUSH": [{"handler": h, "sync": true, "streams": ["slow"]}]});
        },
    );
    let rtmp_pid = common::wait_for("MistOutRTMP", Duration::from_secs(10), || {
        common::find_child(ctl.proc.pid(), "MistOutRTMP")
    });
    // Connect and publish `slow` until the hung handler runs.
    let mut sock = TcpStream::connect(("127.0.0.1", ctl.rtmp)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let url = format!("rtmp://127.0.0.1:{}/live", ctl.rtmp);
    let mut s = ClientSession::new("live", &url, "slow", ClientMode::Publish, 9);
    let mut buf = vec![0u8; 65536];
    let t0 = Instant::now();
    while !marker.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the STREAM_PUSH handler never ran"
        );
        while let Ok(Some(ev)) = s.poll() {
            assert!(
                !matches!(ev, mist_media::rtmp::ClientEvent::Ready { .. }),
                "published before the handler answered"
            );
        }
        let out = s.take_output();
        if !out.is_empty() {
            sock.write_all(&out).unwrap();
        }
        if let Ok(n) = sock.read(&mut buf) {
            assert!(n > 0, "closed before the decision");
            s.feed(&buf[..n]);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(rtmp_pid);
    // Flood: a Set Chunk Size of 65536, then 60 KB audio messages (AAC raw) on stream 1.
    let mut flood = vec![2u8, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
    flood.extend_from_slice(&65536u32.to_be_bytes());
    let mut msg = vec![4u8, 0, 0, 0];
    let body_len = 60_002usize;
    msg.extend_from_slice(&(body_len as u32).to_be_bytes()[1..]);
    msg.push(8);
    msg.extend_from_slice(&1u32.to_le_bytes());
    msg.extend_from_slice(&[0xaf, 0x01]);
    msg.resize(msg.len() + body_len - 2, 0);
    sock.set_nonblocking(true).unwrap();
    let mut sent = 0usize;
    let mut pending: Vec<u8> = flood;
    let mut off = 0usize;
    let mut closed = false;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        if off == pending.len() {
            pending = msg.clone();
            off = 0;
        }
        match sock.write(&pending[off..]) {
            Ok(n) => {
                off += n;
                sent += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let after = rss_kib(rtmp_pid);
    assert!(
        !closed,
        "the flooder was cut while its publish was being decided"
    );
    // Socket buffers of one loopback connection hold a few MiB; a server that read the flood
    // would have taken hundreds of MiB in 4 s.
    assert!(
        sent < 48 << 20,
        "MistOutRTMP read {} MiB from a connection whose publish was not decided yet",
        sent >> 20
    );
    assert!(
        after < before + 16 * 1024,
        "MistOutRTMP grew from {before} KiB to {after} KiB during the flood"
    );
    // Everyone else is served meanwhile: another publisher and its viewer.
    let _publisher = common::publish(&ctl.publish_url("other"), "160x120", 30);
    let (frames, size) =
        common::decode_video_frames(&ctl.play_url("other"), Duration::from_secs(2));
    assert!(
        frames > 10,
        "{frames} frames of {size} for the other stream's viewer"
    );
    assert!(
        rss_kib(rtmp_pid) < before + 32 * 1024,
        "MistOutRTMP memory while the flooder waits"
    );
    drop(sock);
}
