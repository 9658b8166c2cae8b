//! End to end: an `HTTPS` protocol entry makes the controller run MistOutHTTPS with the
//! configured certificate; an RTMP publish by ffmpeg is then fetched with curl (verifying the
//! certificate) and decoded by ffmpeg over https://, and a plain-HTTP request to the TLS port
//! is closed without disturbing a TLS viewer. Renewed files, and new paths set through the API
//! or a config reload, are served to new connections by the same process while a viewer plays.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn curl(args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "15"])
        .args(args)
        .output()
        .expect("run curl (scripts/test installs it)");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rtmp_publish_played_over_https() {
    let certs = TempDir::new("https-cert");
    let (cert, key) = self_signed(certs.path());
    let https = free_port();
    let ctl = Controller::start_http(
        serde_json::json!({}),
        serde_json::json!([
            {"connector": "HTTPS", "port": https, "interface": "127.0.0.1",
             "cert": cert.to_str().unwrap(), "key": key.to_str().unwrap()},
            {"connector": "HLS"},
            {"connector": "HTTPTS"}
        ]),
        None,
    );
    assert!(
        wait_port(https, Duration::from_secs(10)),
        "the HTTPS port never opened"
    );
    let _pub = publish(&ctl.publish_url("live+tls"), "320x240", 60);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let a = ctl.api(&serde_json::json!({"active_streams": true}));
        if a["active_streams"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "live+tls"))
        {
            break;
        }
        assert!(Instant::now() < end, "the RTMP push never became active");
        std::thread::sleep(Duration::from_millis(100));
    }
    let base = format!("https://127.0.0.1:{https}");
    let playlist = format!("{base}/hls/live+tls/index.m3u8");

    // curl verifies the chain against the self-signed CA and the IP address.
    let (ok, body, err) = curl(&["--cacert", cert.to_str().unwrap(), &playlist]);
    assert!(ok, "curl --cacert {playlist}: {err}");
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("#EXTM3U"), "{text}");
    // Without the CA the handshake is refused: the certificate really is the configured one.
    let (ok, _, _) = curl(&[&playlist]);
    assert!(
        !ok,
        "curl without --cacert accepted a self-signed certificate"
    );

    // ffmpeg decodes the HLS stream over TLS.
    let (frames, size) = decode_video_frames(&playlist, Duration::from_secs(5));
    assert_eq!(size, "320x240", "{playlist}");
    assert!(frames >= 50, "decoded only {frames} frames over HTTPS HLS");

    // A TLS viewer of the progressive TS keeps receiving while a plain-HTTP client talks to
    // the TLS port and is closed.
    let ts = format!("{base}/live+tls.ts");
    let ca = cert.to_str().unwrap().to_string();
    let viewer = std::thread::spawn(move || {
        Command::new("curl")
            .args(["-sS", "--max-time", "6", "--cacert", &ca, &ts])
            .output()
            .expect("run curl")
    });
    std::thread::sleep(Duration::from_secs(1));
    let mut plain = TcpStream::connect(("127.0.0.1", https)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain
        .write_all(b"GET /hls/live+tls/index.m3u8 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let closed = match plain.read_to_end(&mut got) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the plain-HTTP connection was not closed");
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP answered on the TLS port: {}",
        String::from_utf8_lossy(&got)
    );
    let out = viewer.join().unwrap();
    // 28: curl's own --max-time ended the live body, i.e. the stream was still flowing.
    assert_eq!(
        out.status.code(),
        Some(28),
        "TLS viewer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.len() > 100 * 188 && out.stdout[0] == 0x47,
        "TLS viewer got {} bytes of TS",
        out.stdout.len()
    );

    // A renewal (new files moved over the configured paths, as certbot's links switch) is used
    // by the next handshake, with no restart and no config change.
    let renewed = TempDir::new("https-renew");
    let (new_cert, new_key) = self_signed(renewed.path());
    let old_ca = renewed.path().join("old-ca.pem");
    std::fs::copy(&cert, &old_ca).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    let (ok, body, err) = curl(&["--cacert", cert.to_str().unwrap(), &playlist]);
    assert!(ok, "curl with the renewed certificate: {err}");
    assert!(body.starts_with(b"#EXTM3U"));
    let (ok, _, _) = curl(&["--cacert", old_ca.to_str().unwrap(), &playlist]);
    assert!(!ok, "the old certificate is still served after the renewal");

    // Other paths, through the API (`updateprotocol`) and then a config reload: the same
    // MistOutHTTPS process serves the new certificate to new connections, and a viewer that
    // was playing before keeps playing.
    let pid = find_child(ctl.proc.pid(), "MistOutHTTPS").expect("MistOutHTTPS runs");
    let ts = format!("{base}/live+tls.ts");
    let ca = cert.to_str().unwrap().to_string();
    let viewer = std::thread::spawn(move || {
        Command::new("curl")
            .args(["-sS", "--max-time", "15", "--cacert", &ca, &ts])
            .output()
            .expect("run curl")
    });
    std::thread::sleep(Duration::from_secs(1));
    let https_entry = |ctl: &Controller| {
        ctl.api(&serde_json::json!({"config": true}))["config"]["protocols"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["connector"] == "HTTPS")
            .cloned()
            .expect("the HTTPS entry")
    };
    let moved = TempDir::new("https-moved");
    let (api_cert, api_key) = self_signed(moved.path());
    let old = https_entry(&ctl);
    let mut new = old.clone();
    new["cert"] = api_cert.to_str().unwrap().into();
    new["key"] = api_key.to_str().unwrap().into();
    new.as_object_mut().unwrap().remove("online");
    ctl.api(&serde_json::json!({"updateprotocol": [old, new]}));
    assert!(
        served_soon(&playlist, &api_cert),
        "the certificate set through updateprotocol was never served"
    );
    assert_eq!(
        find_child(ctl.proc.pid(), "MistOutHTTPS"),
        Some(pid),
        "MistOutHTTPS was restarted for new certificate paths"
    );

    let reloaded = TempDir::new("https-reload");
    let (file_cert, file_key) = self_signed(reloaded.path());
    let saved = ctl.api(&serde_json::json!({"save": true}));
    assert_eq!(saved["save"], "OK", "{saved}");
    let mut conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ctl.config).unwrap()).unwrap();
    for p in conf["config"]["protocols"].as_array_mut().unwrap() {
        if p["connector"] == "HTTPS" {
            p["cert"] = file_cert.to_str().unwrap().into();
            p["key"] = file_key.to_str().unwrap().into();
        }
    }
    std::fs::write(&ctl.config, serde_json::to_vec(&conf).unwrap()).unwrap();
    let st = Command::new("kill")
        .args(["-HUP", &ctl.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        served_soon(&playlist, &file_cert),
        "the certificate of the reloaded config was never served"
    );
    assert_eq!(
        find_child(ctl.proc.pid(), "MistOutHTTPS"),
        Some(pid),
        "MistOutHTTPS was restarted by the config reload"
    );

    let out = viewer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(28),
        "the viewer playing across the changes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.len() > 300 * 188 && out.stdout[0] == 0x47,
        "the viewer playing across the changes got {} bytes of TS",
        out.stdout.len()
    );
}

/// Whether `url` is served with a certificate `ca` verifies, trying for up to 10 s.
fn served_soon(url: &str, ca: &Path) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if curl(&["--cacert", ca.to_str().unwrap(), url]).0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
