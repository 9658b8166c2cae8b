//! The operator utilities end to end: MistUtilCertbot's hooks against a running controller (port
//! 80 itself is in certbot_pebble.rs), MistUtilHealth, MistUtilNuke, MistUtilLog, MistUtilWriter
//! (HTTP PUT into nginx's DAV module), and the controller's log styles (-L FILE, journald).

mod common;

use common::{alive, free_port, wait_port, Controller, Proc, TempDir};
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_MistController"))
        .parent()
        .unwrap()
        .join(name)
}

fn out_text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn certbot_hook(ctl: &Controller, envs: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(bin("MistUtilCertbot"))
        .args(args)
        .env_remove("CERTBOT_TOKEN")
        .env_remove("CERTBOT_VALIDATION")
        .env_remove("RENEWED_LINEAGE")
        .env("MIST_CONTROL", ctl.dir.path().join("control.sock"))
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn saved_protocols(ctl: &Controller) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(&ctl.config).unwrap()).unwrap();
    v["config"]["protocols"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn curl(url: &str) -> (String, String) {
    let o = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = t.rsplit_once('\n').unwrap_or((&t, ""));
    (body.to_string(), code.to_string())
}

#[test]
fn certbot_without_hook_environment_prints_usage() {
    let o = Command::new(bin("MistUtilCertbot"))
        .env_remove("CERTBOT_TOKEN")
        .env_remove("CERTBOT_VALIDATION")
        .env_remove("RENEWED_LINEAGE")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--manual-auth-hook MistUtilCertbot"));
    // A token without its validation is not a hook call either.
    let o = Command::new(bin("MistUtilCertbot"))
        .env("CERTBOT_TOKEN", "x")
        .env_remove("CERTBOT_VALIDATION")
        .env_remove("RENEWED_LINEAGE")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
}

#[test]
fn certbot_auth_hook_adds_http_and_serves_every_challenge() {
    let ctl = Controller::start(json!({}));
    let port = free_port().to_string();
    // Through the HTTP API from localhost (no password) for the first name ...
    let api = format!("127.0.0.1:{}", ctl.api);
    let o = certbot_hook(
        &ctl,
        &[
            ("CERTBOT_TOKEN", "tokA"),
            ("CERTBOT_VALIDATION", "tokA.valA"),
        ],
        &["--port", &port, "--api", &api],
    );
    assert!(o.status.success(), "{}", out_text(&o));
    // ... and the control socket for the second, which keeps the first.
    let o = certbot_hook(
        &ctl,
        &[
            ("CERTBOT_TOKEN", "tokB"),
            ("CERTBOT_VALIDATION", "tokB.valB"),
        ],
        &["--port", &port],
    );
    assert!(o.status.success(), "{}", out_text(&o));
    let base = format!("http://127.0.0.1:{port}/.well-known/acme-challenge");
    assert_eq!(
        curl(&format!("{base}/tokA")),
        ("tokA.valA".into(), "200".into())
    );
    assert_eq!(
        curl(&format!("{base}/tokB")),
        ("tokB.valB".into(), "200".into())
    );
    assert_eq!(curl(&format!("{base}/tokC")).1, "404");
    let protos = saved_protocols(&ctl);
    let http: Vec<&Value> = protos.iter().filter(|p| p["connector"] == "HTTP").collect();
    assert_eq!(http.len(), 1, "{protos:?}");
    assert_eq!(http[0]["port"].to_string().trim_matches('"'), port);
    assert_eq!(http[0]["certbot"], "tokA:tokA.valA tokB:tokB.valB");
    // Asked again for a challenge already served: nothing changes, exit 0 at once.
    let o = certbot_hook(
        &ctl,
        &[
            ("CERTBOT_TOKEN", "tokB"),
            ("CERTBOT_VALIDATION", "tokB.valB"),
        ],
        &["--port", &port],
    );
    assert!(o.status.success(), "{}", out_text(&o));
}

#[test]
fn certbot_auth_hook_refuses_a_port_of_another_connector() {
    // RTMP owns the port: the hook fails and changes nothing.
    let ctl = Controller::start(json!({}));
    let before = saved_protocols(&ctl);
    let rtmp = ctl.rtmp.to_string();
    let o = certbot_hook(
        &ctl,
        &[("CERTBOT_TOKEN", "t"), ("CERTBOT_VALIDATION", "t.v")],
        &["--port", &rtmp],
    );
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("RTMP") && err.contains(&rtmp), "{err}");
    assert_eq!(saved_protocols(&ctl), before);
    let cfg = ctl.api(&json!({"config": true}));
    assert!(
        !cfg.to_string().contains("certbot"),
        "the running config was changed: {cfg}"
    );
}

#[test]
fn certbot_deploy_hook_installs_the_certificate() {
    let ctl = Controller::start(json!({}));
    let lineage = ctl.dir.path().join("letsencrypt/live/example.com");
    std::fs::create_dir_all(&lineage).unwrap();
    // Missing files: refused.
    let lin = lineage.to_string_lossy().into_owned();
    let o = certbot_hook(&ctl, &[("RENEWED_LINEAGE", &lin)], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fullchain.pem"));
    std::fs::write(lineage.join("fullchain.pem"), "x").unwrap();
    std::fs::write(lineage.join("privkey.pem"), "x").unwrap();
    // No HTTPS protocol: one on 443 is added, and saved. certbot leaves the last challenge in
    // the environment of the deploy hook: RENEWED_LINEAGE decides.
    let o = certbot_hook(
        &ctl,
        &[
            ("RENEWED_LINEAGE", &lin),
            ("CERTBOT_TOKEN", "t"),
            ("CERTBOT_VALIDATION", "t.v"),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", out_text(&o));
    let cert = lineage.join("fullchain.pem").to_string_lossy().into_owned();
    let key = lineage.join("privkey.pem").to_string_lossy().into_owned();
    let want = json!({"connector": "HTTPS", "port": 443, "cert": cert, "key": key});
    let protos = saved_protocols(&ctl);
    assert!(protos.contains(&want), "{protos:?}");
    assert!(
        !protos.iter().any(|p| p.get("certbot").is_some()),
        "{protos:?}"
    );
    // A second HTTPS protocol with its own certificate: both point at the lineage afterwards.
    let own =
        json!({"connector": "HTTPS", "port": 4433, "cert": "/etc/own.pem", "key": "/etc/own.key"});
    ctl.api(&json!({"addprotocol": own}));
    let o = certbot_hook(&ctl, &[("RENEWED_LINEAGE", &lin)], &[]);
    assert!(o.status.success(), "{}", out_text(&o));
    let protos = saved_protocols(&ctl);
    let https: Vec<&Value> = protos
        .iter()
        .filter(|p| p["connector"] == "HTTPS")
        .collect();
    assert_eq!(https.len(), 2, "{protos:?}");
    assert!(
        https.iter().all(|p| p["cert"] == cert && p["key"] == key),
        "{protos:?}"
    );
}

fn health(ctl: Option<&Controller>, args: &[&str]) -> Output {
    let mut c = Command::new(bin("MistUtilHealth"));
    c.args(args);
    match ctl {
        Some(ctl) => c.env("MIST_CONTROL", ctl.dir.path().join("control.sock")),
        None => c.env("MIST_CONTROL", "/nonexistent/control.sock"),
    };
    c.output().unwrap()
}

#[test]
fn health_healthy_and_degraded() {
    let ctl = Controller::start_http(json!({}), json!([{"connector": "HLS"}]), None);
    // CPU is left out: the test machine's load is not ours to judge.
    let o = health(Some(&ctl), &["--max-cpu", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", out_text(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("OK       protocol RTMP:{}", ctl.rtmp)),
        "{text}"
    );
    assert!(
        text.contains(&format!("OK       protocol HTTP:{}", ctl.http)),
        "{text}"
    );
    assert!(text.trim_end().ends_with("healthy"), "{text}");
    // Over a limit.
    let o = health(Some(&ctl), &["--max-cpu", "0", "--max-mem", "0.001"]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("DEGRADED memory"));
    // A listener that cannot run (its port is taken).
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    ctl.api(
        &json!({"addprotocol": {"connector": "RTMP", "port": taken, "interface": "127.0.0.1"}}),
    );
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let o = health(
            Some(&ctl),
            &["--max-cpu", "0", "--max-mem", "0", "--max-shm", "0"],
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.code() == Some(1) && text.contains(&format!("DEGRADED protocol RTMP:{taken}")) {
            break;
        }
        assert!(Instant::now() < end, "never degraded: {}", out_text(&o));
        std::thread::sleep(Duration::from_millis(200));
    }
    // No controller at all.
    let o = health(
        None,
        &["--api", &format!("127.0.0.1:{}", free_port()), "-q"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(o.stdout.is_empty(), "{}", out_text(&o));
}

fn shm_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn nuke_stops_only_the_stream_and_removes_its_shm() {
    let dir = TempDir::new("nuke");
    let shm = dir.path().join("shm");
    std::fs::create_dir_all(&shm).unwrap();
    let stuck = format!("stuck{}", std::process::id());
    let other = format!("other{}", std::process::id());
    let buffer = |s: &str| {
        Proc(
            Command::new(bin("MistInBuffer"))
                .args(["-s", s, "--inputtimeout", "120", "-g", "2", "push://"])
                .env("MIST_SHM_DIR", &shm)
                .env_remove("MIST_CONTROL")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let stuck_buf = buffer(&stuck);
    let other_buf = buffer(&other);
    let end = Instant::now() + Duration::from_secs(10);
    while !shm_files(&shm).contains(&format!("mist-{stuck}-meta"))
        || !shm_files(&shm).contains(&format!("mist-{other}-meta"))
    {
        assert!(
            Instant::now() < end,
            "buffers never created: {:?}",
            shm_files(&shm)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The stuck input no longer reacts to SIGTERM; a push process of the stream ignores it.
    unsafe { libc::kill(stuck_buf.pid() as i32, libc::SIGSTOP) };
    let push = Proc(
        Command::new("/bin/sh")
            .arg0("MistOutFLV")
            .args([
                "-c",
                "trap '' TERM; while :; do sleep 0.2; done",
                "--stream",
                &stuck,
                "/dev/null",
            ])
            .spawn()
            .unwrap(),
    );
    let (listener, _) = common::http_out(&shm, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let o = Command::new(bin("MistUtilNuke"))
        .arg(&stuck)
        .env("MIST_SHM_DIR", &shm)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", out_text(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("killed MistInBuffer (pid {})", stuck_buf.pid())),
        "{text}"
    );
    assert!(
        text.contains(&format!("killed MistOutFLV (pid {})", push.pid())),
        "{text}"
    );
    assert!(text.contains("removed the shared memory"), "{text}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(stuck_buf.pid()) && !alive(push.pid()));
    assert!(alive(other_buf.pid()) && alive(listener.pid()), "{text}");
    let files = shm_files(&shm);
    assert!(!files.iter().any(|f| f.contains(&stuck)), "{files:?}");
    assert!(files.contains(&format!("mist-{other}-meta")), "{files:?}");
    // Nothing left: still fine.
    let o = Command::new(bin("MistUtilNuke"))
        .arg(&stuck)
        .env("MIST_SHM_DIR", &shm)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", out_text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing left"));
}

#[test]
fn log_pretty_prints_and_wraps_commands() {
    let mut c = Command::new(bin("MistUtilLog"))
        .args(["--color", "never"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(b"WARN MistOutRTMP: peer gone\n<3>ERROR MistController: bad\nFAIL|MistInBuffer|12|x.cpp:1|live|died\n")
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("[20") && lines[0].ends_with("] MistOutRTMP WARN: peer gone"),
        "{text}"
    );
    assert!(lines[1].ends_with("] MistController ERROR: bad"), "{text}");
    assert!(lines[2].ends_with("] MistInBuffer FAIL: died"), "{text}");
    // A command: its output lines become INFO lines under its name; its exit code is ours.
    let o = Command::new(bin("MistUtilLog"))
        .args([
            "-n",
            "myjob",
            "sh",
            "-c",
            "echo to-out; echo to-err >&2; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", out_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().any(|l| l == "INFO myjob: to-out"), "{err}");
    assert!(err.lines().any(|l| l == "INFO myjob: to-err"), "{err}");
}

fn writer(url: &str, input: &[u8]) -> Output {
    let mut c = Command::new(bin("MistUtilWriter"))
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    c.wait_with_output().unwrap()
}

#[test]
fn writer_files_and_http_put_to_nginx() {
    let dir = TempDir::new("writer");
    let d = dir.path();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let f = d.join("sub/dir/out.bin");
    let o = writer(&f.to_string_lossy(), &data);
    assert_eq!(o.status.code(), Some(0), "{}", out_text(&o));
    assert_eq!(std::fs::read(&f).unwrap(), data);
    let o = writer(&format!("file://{}", f.display()), b"short");
    assert_eq!(o.status.code(), Some(0), "{}", out_text(&o));
    assert_eq!(std::fs::read(&f).unwrap(), b"short");
    // A file that cannot be written: 2.
    let o = writer("/proc/version/x", b"x");
    assert_eq!(o.status.code(), Some(2), "{}", out_text(&o));
    // Unsupported URL: 1.
    let o = writer("gopher://h/x", b"x");
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));

    // nginx with DAV PUT on /up/, everything else 405.
    let port = free_port();
    std::fs::create_dir_all(d.join("www/up")).unwrap();
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log; events {{}}
http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{ listen 127.0.0.1:{port}; root {d}/www;
    location /up/ {{ dav_methods PUT; create_full_put_path on; client_max_body_size 0; }}
  }} }}",
        d = d.display()
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let nginx = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|n| Command::new(n).arg("-v").output().is_ok())
        .expect("nginx is installed (scripts/test installs it)");
    let _nginx = Proc(
        Command::new(nginx)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-p")
            .arg(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_port(port, Duration::from_secs(10)),
        "nginx never listened"
    );
    let o = writer(&format!("http://127.0.0.1:{port}/up/a/seg.ts"), &data);
    assert_eq!(o.status.code(), Some(0), "{}", out_text(&o));
    assert_eq!(std::fs::read(d.join("www/up/a/seg.ts")).unwrap(), data);
    let o = writer(&format!("http://127.0.0.1:{port}/elsewhere.ts"), &data);
    assert_eq!(o.status.code(), Some(2), "{}", out_text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("405"),
        "{}",
        out_text(&o)
    );
    // Nobody listening: 2.
    let o = writer(&format!("http://127.0.0.1:{}/x", free_port()), b"x");
    assert_eq!(o.status.code(), Some(2), "{}", out_text(&o));
}

/// Starts the controller with stderr into `log`, waits for its API, and stops it.
fn controller_log(dir: &Path, args: &[&str], envs: &[(&str, String)], stderr_file: Option<&Path>) {
    let api = free_port();
    let conf = dir.join("c.conf");
    std::fs::write(
        &conf,
        json!({"config": {"controller": {"port": api, "interface": "127.0.0.1"}, "protocols": []}})
            .to_string(),
    )
    .unwrap();
    let mut c = Command::new(bin("MistController"));
    c.arg("-c")
        .arg(&conf)
        .args(args)
        .env("MIST_CONTROL", dir.join("control.sock"))
        .env("MIST_SHM_DIR", dir)
        .env_remove("JOURNAL_STREAM")
        .env_remove("MIST_LOG_SYSTEMD")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null());
    if let Some(f) = stderr_file {
        c.stderr(std::fs::File::create(f).unwrap());
    }
    let p = Proc(c.spawn().unwrap());
    assert!(wait_port(api, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(200));
    drop(p);
}

#[test]
fn controller_logs_to_a_file_and_to_journald() {
    let dir = TempDir::new("logstyle");
    let d = dir.path();
    // -L FILE: appended, with timestamps.
    let lf = d.join("mist.log");
    std::fs::write(&lf, "old line\n").unwrap();
    controller_log(d, &["-L", &lf.to_string_lossy()], &[], None);
    let text = std::fs::read_to_string(&lf).unwrap();
    assert!(text.starts_with("old line\n"), "{text}");
    let line = text.lines().nth(1).unwrap_or("");
    let b = line.as_bytes();
    assert!(
        b.len() > 22
            && b[0] == b'['
            && b[20] == b']'
            && line[22..].starts_with("INFO MistController: "),
        "{text}"
    );
    // stderr is the journal stream (systemd's JOURNAL_STREAM names its device:inode): priority
    // prefixes, no timestamps.
    use std::os::unix::fs::MetadataExt;
    let jf = d.join("journal");
    std::fs::write(&jf, "").unwrap();
    let m = std::fs::metadata(&jf).unwrap();
    let js = format!("{}:{}", m.dev(), m.ino());
    controller_log(d, &[], &[("JOURNAL_STREAM", js)], Some(&jf));
    let text = std::fs::read_to_string(&jf).unwrap();
    assert!(!text.is_empty());
    for l in text.lines() {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| l.starts_with(p))
                && !l.contains("[20"),
            "{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("<6>INFO MistController: ")),
        "{text}"
    );
}

#[test]
fn controller_tells_systemd_when_every_listener_listens() {
    let dir = TempDir::new("notify");
    let d = dir.path();
    let sock_path = d.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (api, rtmp, http) = (free_port(), free_port(), free_port());
    let conf = d.join("c.conf");
    std::fs::write(
        &conf,
        json!({"config": {"controller": {"port": api, "interface": "127.0.0.1"}, "protocols": [
            {"connector": "RTMP", "port": rtmp, "interface": "127.0.0.1"},
            {"connector": "HTTP", "port": http, "interface": "127.0.0.1"},
            {"connector": "HLS"},
        ]}})
        .to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("shm")).unwrap();
    let _ctl = Proc(
        Command::new(bin("MistController"))
            .arg("-c")
            .arg(&conf)
            .env("MIST_CONTROL", d.join("control.sock"))
            .env("MIST_SHM_DIR", d.join("shm"))
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("no notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // Watchdog pings (every 200 ms) come before, and after, READY=1.
    let mut pings = 0;
    let msg = loop {
        let m = next();
        if m == "WATCHDOG=1" {
            pings += 1;
            continue;
        }
        break m;
    };
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    let after = next();
    assert_eq!(
        after, "WATCHDOG=1",
        "pings go on after READY=1 ({pings} before)"
    );
    assert!(
        msg.contains("STATUS=API and every protocol listening"),
        "{msg}"
    );
    // When it said so, the API and both listeners accept connections.
    for port in [api, rtmp, http] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "port {port} not listening after READY=1"
        );
    }
}
