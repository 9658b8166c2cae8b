//! Pushes of issue 12 beyond files: an auto-push rule restreaming every `live+` stream to
//! nginx-rtmp (played back from nginx by ffprobe), a `tsrtp://` push read by `ffprobe rtp://`,
//! custom `$variables` whose value comes from a command or a URL (INTERFACES §2 `variables`),
//! and `tag_stream` tags that `#tag` pushes see (§3.4). ffmpeg publishes into the controller.

mod common;

use common::{
    free_port, free_udp_port, packet_counts, publish, serial, wait_stream, wait_until, Controller,
    Proc, TempDir,
};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Waits until push_list shows a push to `target` (as given) with bytes sent.
fn wait_bytes(c: &Controller, target: &str) {
    wait_until(
        &format!("bytes to {target} in push_list"),
        Duration::from_secs(30),
        || {
            c.push_list()
                .iter()
                .any(|p| p[2] == target && p[5]["bytes"].as_u64().unwrap_or(0) > 0)
        },
    );
}

/// ffprobe reading `url` for 5 s (a player joining nginx waits for the next keyframe):
/// `codec_name|width|height|nb_read_frames` per stream.
fn probe_frames(url: &str, input: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error"])
        .args(input)
        .args(["-read_intervals", "%+5", "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "compact=p=0"])
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Frames ffprobe decoded of `codec` in [`probe_frames`] output.
fn frames_of(text: &str, codec: &str) -> u64 {
    text.lines()
        .filter(|l| l.contains(&format!("codec_name={codec}")))
        .filter_map(|l| l.rsplit_once("nb_read_frames=")?.1.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

/// nginx with its RTMP module (Debian's libnginx-mod-rtmp), application `live` on `port`.
fn nginx_rtmp(dir: &Path, port: u16) -> Proc {
    let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
    assert!(
        Path::new(module).exists(),
        "nginx-rtmp (libnginx-mod-rtmp) is not installed (scripts/test installs it)"
    );
    let conf = format!(
        "load_module {module};\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; \
         application live {{ live on; record off; }} }} }}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let p = Proc(
        Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (scripts/test installs it)"),
    );
    assert!(common::wait_port(port, Duration::from_secs(10)));
    p
}

/// An auto-push rule `["live+", "rtmp://nginx/live/$wildcard"]`: two wildcard streams are
/// restreamed to nginx-rtmp under their wildcard names, and ffprobe plays each from nginx
/// (H.264 at the published size and AAC, frames decoded).
#[test]
fn auto_restream_to_nginx_rtmp_plays_from_nginx() {
    let _g = serial();
    let dir = TempDir::new("nginx-restream");
    let port = free_port();
    let _nginx = nginx_rtmp(dir.path(), port);
    let c = Controller::start(json!({}));
    let target = format!("rtmp://127.0.0.1:{port}/live/$wildcard");
    c.api(&json!({"push_settings": {"wait": 1}}));
    c.api(&json!({"push_auto_add": ["live+", target]}));
    let _a = publish(&c.publish_url("live+ann"), "320x240", 60);
    let _b = publish(&c.publish_url("live+ben"), "352x288", 60);
    wait_stream(&c, "live+ann");
    wait_stream(&c, "live+ben");
    wait_until("both restreams sending", Duration::from_secs(30), || {
        let l = c.push_list();
        l.len() == 2
            && l.iter()
                .all(|p| p[2] == target.as_str() && p[5]["bytes"].as_u64().unwrap_or(0) > 0)
    });
    std::thread::sleep(Duration::from_secs(2));
    for (who, size) in [("ann", "320|height=240"), ("ben", "352|height=288")] {
        let text = probe_frames(&format!("rtmp://127.0.0.1:{port}/live/{who}"), &[]);
        assert!(
            text.contains(&format!("codec_name=h264|width={size}")),
            "{who} via nginx: {text}"
        );
        assert!(frames_of(&text, "h264") >= 10, "{who} via nginx: {text}");
        assert!(frames_of(&text, "aac") >= 10, "{who} via nginx: {text}");
    }
}

/// push_start to `tsrtp://127.0.0.1:PORT`: `ffprobe rtp://…` (MP2T in RTP, payload type 33,
/// no SDP needed) finds H.264 320x240 and AAC, and an ffmpeg receiver gets frames of both.
#[test]
fn tsrtp_push_is_read_by_ffprobe() {
    let _g = serial();
    let dir = TempDir::new("tsrtp");
    let c = Controller::start(json!({}));
    let _pub = publish(&c.publish_url("live+rtp"), "320x240", 60);
    wait_stream(&c, "live+rtp");
    // An even port (RTCP would take the next one).
    let port = loop {
        let p = free_udp_port();
        if p.is_multiple_of(2) && p < 65534 {
            break p;
        }
    };
    let target = format!("tsrtp://127.0.0.1:{port}");
    let v = c.api(&json!({"push_start": ["live+rtp", target]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    wait_bytes(&c, &target);
    let url = format!("rtp://127.0.0.1:{port}?timeout=10000000");
    let text = probe_frames(&url, &[]);
    assert!(
        text.contains("codec_name=h264|width=320|height=240"),
        "{text}"
    );
    assert!(text.contains("codec_name=aac"), "{text}");
    let file = dir.path().join("rtp.ts");
    let st = Command::new("timeout")
        .args(["40", "ffmpeg", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-i", &url, "-t", "4", "-c", "copy", "-f", "mpegts"])
        .arg(&file)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg reading {url}");
    // UDP may lose datagrams on a loaded machine: at least 1 s of each.
    let (video, audio, codecs) = packet_counts(&file);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(video >= 25 && audio >= 40, "{video} / {audio}");
}

/// A one-request-at-a-time HTTP server for variable targets: answers every POST with `body`
/// and records the request heads in `heads`.
fn variable_server(body: &'static str) -> (u16, std::sync::mpsc::Receiver<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf).into_owned();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if tx.send(head).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn variable(c: &Controller, name: &str) -> Value {
    c.api(&json!({"variable_list": true}))["variable_list"][name].clone()
}

/// Custom variables whose value comes from their target: a command (run without a shell,
/// `MIST_CUSTOM_VARIABLE` in its environment, its stdout trimmed) re-run every `interval`
/// seconds, and a URL POSTed to with `X-Custom-Variable`. A push target made of them (one
/// through a fixed variable naming another: recursion) records to the file they name.
#[test]
fn variables_from_commands_and_urls_name_recordings() {
    let _g = serial();
    let dir = TempDir::new("vartargets");
    let c = Controller::start(json!({}));
    // A command whose answer changes: a counter in a file.
    let script = dir.path().join("var.sh");
    let count = dir.path().join("count");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat '{c}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{c}'\n\
             printf '  %s-%s\\n\\n' \"$MIST_CUSTOM_VARIABLE\" \"$n\"\n",
            c = count.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let (port, heads) = variable_server(" from-url\n");
    c.api(&json!({"variable_add": ["cmdv", script.to_str().unwrap(), 1]}));
    c.api(
        &json!({"variable_add": {"name": "urlv", "target": format!("http://127.0.0.1:{port}/v"),
        "interval": 0}}),
    );
    c.api(&json!({"variable_add": ["nest", "$urlv/$cmdv"]}));
    // The command runs at once and again every second: its value counts up.
    wait_until("cmdv from its command", Duration::from_secs(20), || {
        variable(&c, "cmdv")["value"]
            .as_str()
            .is_some_and(|v| v.starts_with("cmdv-") && v != "cmdv-1")
    });
    let v = variable(&c, "cmdv");
    assert!(v["lastunix"].as_u64().unwrap_or(0) > 1_600_000_000, "{v}");
    wait_until("urlv from its URL", Duration::from_secs(20), || {
        variable(&c, "urlv")["value"] == "from-url"
    });
    let head = heads.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(head.starts_with("POST /v HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-custom-variable: urlv\r\n"),
        "{head}"
    );
    // Interval 0: fetched once only.
    std::thread::sleep(Duration::from_secs(3));
    assert!(heads.try_recv().is_err(), "an interval-0 target ran again");

    let _pub = publish(&c.publish_url("live+var"), "320x240", 30);
    wait_stream(&c, "live+var");
    let target = format!("{}/$nest.ts?duration=2", dir.path().display());
    let v = c.api(&json!({"push_start": ["live+var", target]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    let rec = dir.path().join("from-url");
    wait_until(
        "the recording named by the variables",
        Duration::from_secs(30),
        || {
            common::files_in(&rec).iter().any(|f| {
                f.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("cmdv-") && n.ends_with(".ts"))
            }) && c.push_list().iter().all(|p| p[5]["state"] == "finished")
        },
    );
    let files: Vec<PathBuf> = common::files_in(&rec);
    assert_eq!(files.len(), 1, "{files:?}");
    let (video, audio, _) = packet_counts(&files[0]);
    assert!(video > 25 && audio > 40, "{video} / {audio}");
    // Removing the variable stops its runs.
    c.api(&json!({"variable_remove": "cmdv"}));
    assert!(variable(&c, "cmdv").is_null());
}

/// A variable whose command fails (exits 1) is run again even with interval 0, 2 s and then
/// 4 s later, until it gives a value once; a failed run keeps the value the variable had, and
/// once it succeeded it is not run again.
#[test]
fn failed_variable_command_is_retried_until_it_succeeds() {
    let _g = serial();
    let dir = TempDir::new("varretry");
    let c = Controller::start(json!({}));
    // Fails twice, then answers: a counter in a file.
    let script = dir.path().join("flaky.sh");
    let count = dir.path().join("count");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat '{c}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{c}'\n\
             [ \"$n\" -ge 3 ] || exit 1\necho ready\n",
            c = count.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let runs = || {
        std::fs::read_to_string(&count)
            .ok()
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    c.api(&json!({"variable_add": ["flaky", script.to_str().unwrap(), 0, "before"]}));
    wait_until("the first run", Duration::from_secs(20), || runs() >= 1);
    std::thread::sleep(Duration::from_millis(500));
    if runs() == 1 {
        assert_eq!(variable(&c, "flaky")["value"], "before", "a failed run");
    }
    wait_until(
        "the value once a run succeeds",
        Duration::from_secs(40),
        || variable(&c, "flaky")["value"] == "ready",
    );
    assert_eq!(runs(), 3);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        runs(),
        3,
        "an interval-0 variable ran again after it got its value"
    );
}

/// `tag_stream` gives an active stream a tag (and one that is not active yet when it starts):
/// `stream_tags` lists them beside the config's `tags`, `push_start` to `#tag` and an
/// auto-push rule for `#tag` record the tagged streams only; `untag_stream` takes a tag away.
#[test]
fn tag_stream_tags_are_seen_by_tag_pushes() {
    let _g = serial();
    let dir = TempDir::new("tagstream");
    let c = Controller::start_edited(json!({}), |cfg| {
        cfg["streams"]["live"]["tags"] = json!(["cfgtag"]);
    });
    let _a = publish(&c.publish_url("live+a"), "320x240", 60);
    let _b = publish(&c.publish_url("live+b"), "320x240", 60);
    wait_stream(&c, "live+a");
    wait_stream(&c, "live+b");
    // `live+c` is not active yet: its tag waits for it.
    c.api(&json!({"tag_stream": {"live+a": "vip", "live+c": ["vip", "late"]}}));
    let t = c.api(&json!({"stream_tags": ["live+a", "live+b"]}));
    assert_eq!(
        t["stream_tags"],
        json!({"live+a": ["cfgtag", "vip"], "live+b": ["cfgtag"]}),
        "{t}"
    );
    let a = c.api(&json!({"active_streams": {"fields": ["tags"], "longform": true}}));
    assert_eq!(
        a["active_streams"]["live+a"]["tags"],
        json!(["cfgtag", "vip"]),
        "{a}"
    );
    let manual = format!("{}/manual/$stream.mkv?duration=3", dir.path().display());
    let v = c.api(&json!({"push_start": ["#vip", manual]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    let l = c.push_list();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0][1], "live+a");
    // An auto-push rule for #late starts when live+c comes with its queued tags.
    let auto = format!("{}/auto/$stream.mkv?duration=3", dir.path().display());
    c.api(&json!({"push_auto_add": ["#late", auto]}));
    let _c = publish(&c.publish_url("live+c"), "320x240", 60);
    wait_stream(&c, "live+c");
    wait_until("the #late push of live+c", Duration::from_secs(20), || {
        c.push_list()
            .iter()
            .any(|p| p[1] == "live+c" && p[2] == auto.as_str())
    });
    // Once is enough (a rule starts its push again when it ends).
    c.api(&json!({"push_auto_remove": ["#late", auto]}));
    let t = c.api(&json!({"stream_tags": "live+c"}));
    assert_eq!(
        t["stream_tags"],
        json!({"live+c": ["cfgtag", "late", "vip"]}),
        "{t}"
    );
    assert!(
        !c.push_list()
            .iter()
            .any(|p| p[2] == auto.as_str() && p[1] != "live+c"),
        "an untagged stream got the #late push"
    );
    // Without an argument: every active stream.
    let t = c.api(&json!({"stream_tags": true}));
    assert_eq!(t["stream_tags"].as_object().unwrap().len(), 3, "{t}");
    c.api(&json!({"untag_stream": {"live+a": "vip"}}));
    let t = c.api(&json!({"stream_tags": "live+a"}));
    assert_eq!(t["stream_tags"], json!({"live+a": ["cfgtag"]}), "{t}");
    wait_until("the recordings finish", Duration::from_secs(30), || {
        common::files_in(&dir.path().join("auto")).len() == 1
            && common::files_in(&dir.path().join("manual")).len() == 1
            && c.push_list().iter().all(|p| p[5]["state"] != "active")
    });
    assert!(dir.path().join("manual/live+a.mkv").exists());
    assert!(dir.path().join("auto/live+c.mkv").exists());
}
