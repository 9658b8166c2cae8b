//! End to end: an RTMP protocol entry with `cert`/`key` makes its port RTMPS (as MistServer).
//! ffmpeg publishes to `rtmps://` checking the certificate, ffprobe and ffmpeg play `rtmps://`
//! back, and a plain RTMP viewer on the plain RTMP entry's port plays the same stream meanwhile.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// ffprobe of an rtmps:// URL with extra input options; (success, stdout JSON streams, stderr).
fn probe(url: &str, opts: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error"])
        .args(opts)
        .args(["-show_streams", "-of", "json", url])
        .output()
        .expect("run ffprobe (scripts/test installs it)");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.success(),
        v["streams"].as_array().cloned().unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rtmps_publish_and_play_beside_plain_rtmp() {
    let certs = TempDir::new("rtmps-cert");
    let (cert, key) = self_signed(certs.path());
    let ca = cert.to_str().unwrap().to_string();
    let tls = free_port();
    let ctl = Controller::start_edited(serde_json::json!({}), |c| {
        c["config"]["protocols"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "connector": "RTMP", "port": tls, "interface": "127.0.0.1",
                "cert": cert.to_str().unwrap(), "key": key.to_str().unwrap()
            }));
    });
    assert!(
        wait_port(tls, Duration::from_secs(10)),
        "the RTMPS port never opened"
    );
    let verify = ["-tls_verify", "1", "-ca_file", ca.as_str()];

    // Publish over TLS, ffmpeg checking the server certificate against the self-signed CA.
    let publisher = publish_with(
        &format!("rtmps://127.0.0.1:{tls}/live/live"),
        "320x240",
        40,
        &verify,
    );
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let a = ctl.api(&serde_json::json!({"active_streams": true}));
        if a["active_streams"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "live"))
        {
            break;
        }
        assert!(Instant::now() < end, "the RTMPS push never became active");
        std::thread::sleep(Duration::from_millis(100));
    }

    let play_tls = format!("rtmps://127.0.0.1:{tls}/play/live");
    // ffprobe over TLS with verification: H.264 and AAC.
    let (ok, streams, err) = probe(&play_tls, &verify);
    assert!(ok, "ffprobe {play_tls}: {err}");
    let codecs: Vec<&str> = streams
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "{codecs:?}"
    );
    // Verification really happens: without the CA the self-signed certificate is refused.
    let (ok, _, _) = probe(&play_tls, &["-tls_verify", "1"]);
    assert!(
        !ok,
        "ffprobe accepted the self-signed certificate without its CA"
    );
    // Plain RTMP to the RTMPS port gets no stream.
    let (ok, streams, _) = probe(&format!("rtmp://127.0.0.1:{tls}/play/live"), &[]);
    assert!(
        !ok || streams.is_empty(),
        "plain RTMP was served on the RTMPS port"
    );

    // ffmpeg decodes over rtmps while a plain RTMP viewer plays from the plain port.
    let plain = ctl.play_url("live");
    let plain_viewer =
        std::thread::spawn(move || decode_video_frames(&plain, Duration::from_secs(6)));
    let (frames, size) = decode_video_frames_with(&play_tls, &verify, Duration::from_secs(6));
    assert_eq!(size, "320x240", "{play_tls}");
    assert!(frames >= 75, "decoded only {frames} frames over rtmps");
    let (frames, size) = plain_viewer.join().unwrap();
    assert_eq!(size, "320x240", "plain RTMP viewer");
    assert!(
        frames >= 75,
        "the plain RTMP viewer decoded only {frames} frames"
    );
    drop(publisher);
}
