//! End to end: RTSP credentials of a stream (`rtsp_user`, `rtsp_password`, `rtsp_basic`) in
//! MistOutRTSP, started by the controller. ffprobe, ffmpeg and GStreamer play a protected stream
//! with the password and are refused without it or with a wrong one; ffmpeg publishes into a
//! protected stream with the password and is refused with a wrong one; Basic is taken only where
//! the stream allows it; a stream without the keys stays open. Hand-written requests check the
//! 401 answers themselves (challenges, no SDP), Digest answers bound to the request URI and
//! counted (qop=auth), that a 401 starts nothing (no input, no STREAM_LOAD or STREAM_PUSH), and
//! the controller's log the refusal's address.

mod common;

use common::ctl::md5hex;
use common::rtsp::{connect, controller, controller_edited, request};
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

const USER: &str = "viewer";
const PASS: &str = "s3cret";

/// A quoted parameter of a challenge.
fn param(challenge: &str, key: &str) -> String {
    let at = challenge
        .find(&format!("{key}=\""))
        .unwrap_or_else(|| panic!("no {key} in {challenge}"));
    let rest = &challenge[at + key.len() + 2..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The Digest `Authorization` of RFC 2617 without qop (computed here, independently of the
/// server's code).
fn digest(challenge: &str, user: &str, pass: &str, method: &str, uri: &str) -> String {
    let (realm, nonce) = (param(challenge, "realm"), param(challenge, "nonce"));
    let ha1 = md5hex(&format!("{user}:{realm}:{pass}"));
    let ha2 = md5hex(&format!("{method}:{uri}"));
    let response = md5hex(&format!("{ha1}:{nonce}:{ha2}"));
    format!("Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"\r\n")
}

/// The same with `qop=auth`, nonce count `nc` and a client nonce (what ffmpeg sends).
fn digest_qop(challenge: &str, user: &str, pass: &str, method: &str, uri: &str, nc: u32) -> String {
    let (realm, nonce) = (param(challenge, "realm"), param(challenge, "nonce"));
    let ha1 = md5hex(&format!("{user}:{realm}:{pass}"));
    let ha2 = md5hex(&format!("{method}:{uri}"));
    let (nc, cnonce) = (format!("{nc:08x}"), "0a4f113b");
    let response = md5hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!("Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\"\r\n")
}

fn basic(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(raw.as_bytes())?;
            c.wait_with_output()
        })
        .expect("run base64");
    format!(
        "Authorization: Basic {}\r\n",
        String::from_utf8_lossy(&out.stdout).trim()
    )
}

/// ffprobe of `url` over TCP: (success, streams, stderr).
fn ffprobe(url: &str) -> (bool, Vec<serde_json::Value>, String) {
    rtsp::ffprobe(url, "tcp")
}

/// The WARN lines of the controller's log (its children's stderr included).
fn warnings(ctl: &Controller) -> Vec<String> {
    let v = ctl.api(&serde_json::json!({"log": true}));
    v["log"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|l| l[1] == "WARN")
        .filter_map(|l| l[2].as_str().map(str::to_string))
        .collect()
}

#[test]
fn play_needs_the_password() {
    let dir = TempDir::new("rtsp-auth");
    let file = dir.path().join("clip.mp4");
    make_mp4(&file, "320x240", 6);
    let src = file.to_str().unwrap();
    let (ctl, port) = controller(serde_json::json!({
        "sec": {"name": "sec", "source": src, "rtsp_user": USER, "rtsp_password": PASS},
        "bas": {"name": "bas", "source": src, "rtsp_user": USER, "rtsp_password": PASS, "rtsp_basic": true},
        "open": {"name": "open", "source": src}
    }));
    let uri = format!("rtsp://127.0.0.1:{port}/sec");

    // By hand: no credentials, then wrong ones, then Basic (not allowed here), on one
    // connection; all 401 without a description; then the right Digest answer.
    let mut s = connect(port);
    let r = request(&mut s, "DESCRIBE", &uri, 1, "");
    assert_eq!(r.status, 401);
    let ch = r.all("WWW-Authenticate");
    assert_eq!(ch.len(), 1, "Basic is not offered: {ch:?}");
    assert!(
        ch[0].starts_with("Digest ") && ch[0].contains("algorithm=MD5"),
        "{ch:?}"
    );
    let ch = ch[0].to_string();
    assert!(r.body.is_empty() && r.header("Content-Type").is_none());
    let r = request(
        &mut s,
        "DESCRIBE",
        &uri,
        2,
        &digest(&ch, USER, "wrong", "DESCRIBE", &uri),
    );
    assert_eq!(r.status, 401);
    assert!(r.body.is_empty(), "a description for a wrong password");
    let r = request(
        &mut s,
        "DESCRIBE",
        &uri,
        3,
        &digest(&ch, "eve", PASS, "DESCRIBE", &uri),
    );
    assert_eq!(r.status, 401, "another user with the password");
    let r = request(&mut s, "DESCRIBE", &uri, 4, &basic(USER, PASS));
    assert_eq!(r.status, 401, "Basic where the stream does not allow it");
    let r = request(
        &mut s,
        "DESCRIBE",
        &uri,
        5,
        &digest(&ch, USER, PASS, "DESCRIBE", &uri),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/sdp"));
    assert!(String::from_utf8_lossy(&r.body).contains("H264/90000"));
    // Later requests of the session need the credentials too.
    let setup = format!("{uri}/trackID=1");
    let r = request(
        &mut s,
        "SETUP",
        &setup,
        6,
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
    );
    assert_eq!(r.status, 401, "SETUP without credentials");
    drop(s);

    // Digest answers are bound to the request's URI, and qop=auth answers (offered in the
    // challenge) are counted: the same one twice is a replay.
    let mut s = connect(port);
    let r = request(&mut s, "DESCRIBE", &uri, 1, "");
    let ch = r.header("WWW-Authenticate").unwrap().to_string();
    assert!(ch.contains("qop=\"auth\""), "{ch}");
    let open = format!("rtsp://127.0.0.1:{port}/open");
    let r = request(
        &mut s,
        "DESCRIBE",
        &uri,
        2,
        &digest(&ch, USER, PASS, "DESCRIBE", &open),
    );
    assert_eq!(r.status, 401, "an answer signed for another URI");
    let first = digest_qop(&ch, USER, PASS, "DESCRIBE", &uri, 1);
    let r = request(&mut s, "DESCRIBE", &uri, 3, &first);
    assert_eq!(r.status, 200, "qop=auth, nc=1");
    let r = request(&mut s, "DESCRIBE", &uri, 4, &first);
    assert_eq!(r.status, 401, "the same nonce count again");
    let r = request(
        &mut s,
        "DESCRIBE",
        &uri,
        5,
        &digest_qop(&ch, USER, PASS, "DESCRIBE", &uri, 2),
    );
    assert_eq!(r.status, 200, "qop=auth, nc=2");
    drop(s);

    // The refusal is in the log with the client's address.
    wait_until("the wrong password logged", Duration::from_secs(5), || {
        warnings(&ctl).iter().any(|l| {
            l.contains("wrong credentials") && l.contains("127.0.0.1") && l.contains("sec")
        })
    });

    // ffprobe: refused without credentials and with a wrong password, plays with the right one.
    let (ok, streams, err) = ffprobe(&uri);
    assert!(!ok && streams.is_empty(), "no credentials: {streams:?}");
    assert!(err.contains("401"), "{err}");
    let (ok, streams, err) = ffprobe(&format!("rtsp://{USER}:wrong@127.0.0.1:{port}/sec"));
    assert!(!ok && streams.is_empty(), "wrong password: {streams:?}");
    assert!(err.contains("401"), "{err}");
    let with = format!("rtsp://{USER}:{PASS}@127.0.0.1:{port}/sec");
    let (ok, streams, err) = ffprobe(&with);
    assert!(ok, "{err}");
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 320),
        "{streams:?}"
    );
    // ffmpeg decodes it over TCP and UDP.
    for transport in ["tcp", "udp"] {
        let frames = rtsp::decode(&with, transport, "0:v:0", 2);
        assert!(frames >= 40, "{transport}: {frames} frames of 2 s");
    }
    // GStreamer's rtspsrc with user-id / user-pw.
    let gst = |pw: &str| {
        Command::new("timeout")
            .args(["30", "gst-launch-1.0", "-q"])
            .arg("rtspsrc")
            .arg(format!("location={uri}"))
            .args([
                "protocols=tcp",
                &format!("user-id={USER}"),
                &format!("user-pw={pw}"),
            ])
            .args(["!", "rtph264depay", "!", "h264parse", "!"])
            .args(["fakesink", "num-buffers=25"])
            .stdin(Stdio::null())
            .output()
            .expect("run gst-launch-1.0 (scripts/test installs gstreamer1.0-tools)")
    };
    let out = gst(PASS);
    assert!(
        out.status.success(),
        "gst-launch-1.0 rtspsrc user-id user-pw: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gst("wrong");
    assert!(
        !out.status.success(),
        "GStreamer played with a wrong password"
    );

    // Basic where the stream allows it: offered after Digest, right password plays, wrong not.
    let uri = format!("rtsp://127.0.0.1:{port}/bas");
    let mut s = connect(port);
    let r = request(&mut s, "DESCRIBE", &uri, 1, "");
    assert_eq!(r.status, 401);
    let ch = r.all("WWW-Authenticate");
    assert!(
        ch.len() == 2 && ch[0].starts_with("Digest ") && ch[1].starts_with("Basic realm="),
        "{ch:?}"
    );
    let r = request(&mut s, "DESCRIBE", &uri, 2, &basic(USER, "wrong"));
    assert_eq!(r.status, 401);
    let r = request(&mut s, "DESCRIBE", &uri, 3, &basic(USER, PASS));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/sdp"));

    // A stream without the keys is open, as before.
    let mut s = connect(port);
    let uri = format!("rtsp://127.0.0.1:{port}/open");
    let r = request(&mut s, "DESCRIBE", &uri, 1, "");
    assert_eq!(r.status, 200, "{:?}", r.headers);
}

/// Sends an ANNOUNCE of one PCMA track to `uri` with the header lines `auth`.
fn announce(s: &mut TcpStream, uri: &str, cseq: u32, auth: &str) -> rtsp::Reply {
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\na=control:trackID=0\r\n";
    rtsp::exchange(
        s,
        &format!(
            "ANNOUNCE {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
    )
}

/// Credentials come first: a DESCRIBE of a protected VoD stream without them (or with a wrong
/// password) starts no input (no STREAM_LOAD, no MistIn* process), and an ANNOUNCE without
/// them fires no STREAM_PUSH; with the password both happen (so the checks can fail).
#[test]
fn unauthenticated_requests_start_nothing() {
    let dir = TempDir::new("rtsp-auth-first");
    let file = dir.path().join("clip.mp4");
    make_mp4(&file, "320x240", 4);
    let load = handler_script(dir.path(), "load", "echo true");
    let push = handler_script(dir.path(), "push", "echo true");
    let (ctl, port) = controller_edited(
        serde_json::json!({
            "secvod": {"name": "secvod", "source": file.to_str().unwrap(), "rtsp_user": USER, "rtsp_password": PASS},
            "secpub": {"name": "secpub", "source": "push://", "rtsp_user": USER, "rtsp_password": PASS}
        }),
        |c| {
            c["config"]["triggers"] = serde_json::json!({
                "STREAM_LOAD": [{"handler": load, "sync": true, "streams": ["secvod"]}],
                "STREAM_PUSH": [{"handler": push, "sync": true, "streams": ["secpub"]}]
            });
        },
    );
    let fired = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("{name}.log")))
            .map(|t| handler_records(&t).len())
            .unwrap_or(0)
    };
    let inputs = || {
        children(ctl.proc.pid())
            .into_iter()
            .filter(|(_, n)| n.starts_with("MistIn"))
            .collect::<Vec<_>>()
    };

    let uri = rtsp::url(port, "secvod");
    let mut s = connect(port);
    let r = request(&mut s, "DESCRIBE", &uri, 1, "");
    assert_eq!(r.status, 401);
    let ch = r.header("WWW-Authenticate").unwrap().to_string();
    let r = request(
        &mut s,
        "DESCRIBE",
        &uri,
        2,
        &digest(&ch, USER, "wrong", "DESCRIBE", &uri),
    );
    assert_eq!(r.status, 401);
    // The 401s came without the stream being asked for: nothing loaded, no input runs.
    assert_eq!(
        fired("load"),
        0,
        "STREAM_LOAD fired for a DESCRIBE answered 401"
    );
    assert!(
        inputs().is_empty(),
        "an input started for a DESCRIBE answered 401: {:?}",
        inputs()
    );
    let r = request(
        &mut s,
        "DESCRIBE",
        &uri,
        3,
        &digest(&ch, USER, PASS, "DESCRIBE", &uri),
    );
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(fired("load"), 1, "STREAM_LOAD once the password was right");
    assert!(!inputs().is_empty(), "no input for the authorised DESCRIBE");
    drop(s);

    let uri = rtsp::url(port, "secpub");
    let mut s = connect(port);
    let r = announce(&mut s, &uri, 1, "");
    assert_eq!(r.status, 401);
    let ch = r.header("WWW-Authenticate").unwrap().to_string();
    let r = announce(
        &mut s,
        &uri,
        2,
        &digest(&ch, USER, "wrong", "ANNOUNCE", &uri),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        fired("push"),
        0,
        "STREAM_PUSH fired for an ANNOUNCE answered 401"
    );
    assert!(!ctl.active_streams().iter().any(|n| n == "secpub"));
    let r = announce(&mut s, &uri, 3, &digest(&ch, USER, PASS, "ANNOUNCE", &uri));
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(fired("push"), 1, "STREAM_PUSH once the password was right");
}

/// ffmpeg `-f rtsp` with credentials in the URL publishes into a protected stream (Digest on
/// ANNOUNCE and the requests after it); a wrong password is refused (401, logged).
#[test]
fn publish_needs_the_password() {
    let (ctl, port) = controller(serde_json::json!({
        "pub": {"name": "pub", "source": "push://", "rtsp_user": "cam", "rtsp_password": "pw"}
    }));
    let push = |pass: &str, seconds: u32| {
        ffmpeg_testsrc(&["-re"], "320x240", seconds)
            .args([
                "-tune",
                "zerolatency",
                "-f",
                "rtsp",
                "-rtsp_transport",
                "tcp",
            ])
            .arg(format!("rtsp://cam:{pass}@127.0.0.1:{port}/pub"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ffmpeg")
    };
    let wrong = push("nope", 3).wait_with_output().unwrap();
    assert!(
        !wrong.status.success(),
        "a push with a wrong password went on"
    );
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("401"), "{err}");
    wait_until(
        "the wrong push password logged",
        Duration::from_secs(5),
        || {
            warnings(&ctl).iter().any(|l| {
                l.contains("wrong credentials") && l.contains("ANNOUNCE") && l.contains("127.0.0.1")
            })
        },
    );
    let _good = Proc(push("pw", 30));
    ctl.wait_active("pub", Duration::from_secs(15));
    let streams = probe_streams(&ctl.play_url("pub"));
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 320),
        "{streams:?}"
    );
    // Playing it back over RTSP needs the same credentials.
    let (ok, _, err) = ffprobe(&format!("rtsp://127.0.0.1:{port}/pub"));
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, streams, err) = ffprobe(&format!("rtsp://cam:pw@127.0.0.1:{port}/pub"));
    assert!(ok && !streams.is_empty(), "{err}");
}
