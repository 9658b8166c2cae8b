//! Pushes to the network (INTERFACES §4.3 `rtmp://host/app/key`): ffmpeg publishes into
//! mist-rs, the controller pushes the stream out with MistOutRTMP to an independent RTMP
//! receiver (`ffmpeg -listen 1`), ffprobe judges what arrived. Also an auto-push rule to a
//! second mist-rs stream, and the receiver going away: PUSH_END, retry, a new receiver gets it.

mod common;

use common::{
    ca_and_leaf, collector, files_in, free_port, packet_counts, publish, rtmp_receiver, serial,
    wait_stream, wait_until, Controller, Proc, TempDir,
};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Waits for a receiver to exit on its own (the push closed the connection).
fn wait_exit(p: &mut Proc, within: Duration) -> bool {
    common::wait_exit(&mut p.0, within).is_some()
}

/// push_start to `rtmp://…/app/key` of an ffmpeg receiver: push_list shows it with bytes; on
/// push_stop the connection ends cleanly (the receiver exits by itself), PUSH_END fires, and the
/// receiver's file has H.264 video and AAC audio frames.
#[test]
fn push_start_to_ffmpeg_receiver() {
    let _g = serial();
    let dir = TempDir::new("pushnet");
    let (h, ends) = collector(dir.path(), "push_end");
    let (oh, output_ends) = collector(dir.path(), "output_end");
    let (rh, rec_ends) = collector(dir.path(), "recording_end");
    let c = Controller::start(serde_json::json!({}));
    c.api(&serde_json::json!({"config": {"triggers": {
        "PUSH_END": [{"handler": h.to_str().unwrap(), "sync": false}],
        "OUTPUT_END": [{"handler": oh.to_str().unwrap(), "sync": false}],
        "RECORDING_END": [{"handler": rh.to_str().unwrap(), "sync": false}]
    }}}));
    let _pub = publish(&c.publish_url("live+a"), "320x240", 60);
    wait_stream(&c, "live+a");
    let port = free_port();
    let out = dir.path().join("got.flv");
    let mut rx = rtmp_receiver(port, &out);
    let target = format!("rtmp://127.0.0.1:{port}/app/key");
    let v = c.api(&serde_json::json!({"push_start": ["live+a", target]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    wait_until("bytes in push_list", Duration::from_secs(30), || {
        c.push_list()
            .iter()
            .any(|p| p[2] == target.as_str() && p[5]["bytes"].as_u64().unwrap_or(0) > 0)
    });
    std::thread::sleep(Duration::from_secs(4));
    let l = c.push_list();
    let p = l.iter().find(|p| p[2] == target.as_str()).unwrap().clone();
    assert_eq!(p[1], "live+a");
    assert_eq!(p[3], target.as_str(), "{p}");
    assert_eq!(p[5]["state"], "active", "{p}");
    c.api(&serde_json::json!({"push_stop": [p[0].clone()]}));
    assert!(
        wait_exit(&mut rx, Duration::from_secs(20)),
        "the receiver did not see the end of the push"
    );
    wait_until("PUSH_END", Duration::from_secs(20), || {
        !files_in(&ends).is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let payload = std::fs::read_to_string(&files_in(&ends)[0]).unwrap();
    let lines: Vec<&str> = payload.split('\n').collect();
    assert_eq!(lines.len(), 6, "{payload:?}");
    assert_eq!(lines[1], "live+a");
    assert_eq!(lines[2], target);
    let status: serde_json::Value = serde_json::from_str(lines[5]).unwrap();
    assert_eq!(status["state"], "finished", "{payload:?}");
    // OUTPUT_END (§5.3 lines, each ending in \n), and no RECORDING_END: this is no file.
    wait_until("OUTPUT_END", Duration::from_secs(20), || {
        !files_in(&output_ends).is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let payload = std::fs::read_to_string(&files_in(&output_ends)[0]).unwrap();
    let lines: Vec<&str> = payload.split('\n').collect();
    assert_eq!(lines.len(), 13, "{payload:?}");
    assert_eq!(
        &lines[..3],
        &["live+a", target.as_str(), "RTMP"],
        "{payload:?}"
    );
    assert!(lines[3].parse::<u64>().unwrap() > 10_000, "{payload:?}");
    assert!(lines[7].parse::<u64>().unwrap() >= 3000, "{payload:?}");
    assert_eq!(lines[10], "0", "{payload:?}");
    assert!(files_in(&rec_ends).is_empty());
    let (video, audio, codecs) = packet_counts(&out);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(codecs.contains(&"aac".to_string()), "{codecs:?}");
    // About 5 s at 30 fps and 44.1/48 kHz AAC.
    assert!(video >= 60, "{video} video frames arrived");
    assert!(audio >= 100, "{audio} audio frames arrived");
}

/// An auto-push rule to a receiver that goes away: PUSH_END with an error, a retry, and a new
/// receiver on the same address gets the stream again. A second rule pushes to another stream
/// of the same mist-rs, which becomes active and plays.
#[test]
fn auto_push_retries_and_restreams_to_mist() {
    let _g = serial();
    let dir = TempDir::new("pushnet-auto");
    let (h, ends) = collector(dir.path(), "push_end");
    let c = Controller::start(serde_json::json!({"copy": {"name": "copy", "source": "push://"}}));
    c.api(&serde_json::json!({
        "config": {"triggers": {"PUSH_END": [{"handler": h.to_str().unwrap(), "sync": false}]}},
        "push_settings": {"wait": 1, "maxspeed": 0}
    }));
    let port = free_port();
    let target = format!("rtmp://127.0.0.1:{port}/app/key");
    let first = dir.path().join("first.flv");
    let mut rx = rtmp_receiver(port, &first);
    c.api(&serde_json::json!({"push_auto_add": {"stream": "live+r", "target": target}}));
    let to_mist = format!("rtmp://127.0.0.1:{}/live/copy", c.rtmp);
    c.api(&serde_json::json!({"push_auto_add": {"stream": "live+r", "target": to_mist}}));
    let _pub = publish(&c.publish_url("live+r"), "320x240", 90);
    wait_stream(&c, "live+r");
    // The restream into mist-rs itself.
    wait_stream(&c, "copy");
    let streams = common::probe_streams(&c.play_url("copy"));
    assert!(
        streams.iter().any(|s| s["codec_name"] == "h264")
            && streams.iter().any(|s| s["codec_name"] == "aac"),
        "{streams:?}"
    );
    wait_until("bytes to the receiver", Duration::from_secs(30), || {
        c.push_list()
            .iter()
            .any(|p| p[2] == target.as_str() && p[5]["bytes"].as_u64().unwrap_or(0) > 0)
    });
    std::thread::sleep(Duration::from_secs(3));
    // The receiver goes away.
    rx.0.kill().unwrap();
    let _ = rx.0.wait();
    wait_until("PUSH_END of the lost push", Duration::from_secs(30), || {
        files_in(&ends).iter().any(|f| {
            std::fs::read_to_string(f).is_ok_and(|p| p.contains(&target) && p.contains("error"))
        })
    });
    let (video, audio, _) = packet_counts(&first);
    assert!(video > 0 && audio > 0, "{video} / {audio}");
    // The rule retries: a new receiver at the same address gets the stream.
    let second = dir.path().join("second.flv");
    let mut rx2 = rtmp_receiver(port, &second);
    wait_until("the retried push", Duration::from_secs(60), || {
        c.push_list().iter().any(|p| {
            p[2] == target.as_str()
                && p[5]["state"] == "active"
                && p[5]["bytes"].as_u64().unwrap_or(0) > 0
        })
    });
    std::thread::sleep(Duration::from_secs(3));
    // Removing the rule ends the push cleanly.
    c.api(&serde_json::json!({"push_auto_remove": ["live+r", target]}));
    let l = c.push_list();
    if let Some(p) = l.iter().find(|p| p[2] == target.as_str()) {
        c.api(&serde_json::json!({"push_stop": [p[0].clone()]}));
    }
    assert!(
        wait_exit(&mut rx2, Duration::from_secs(20)),
        "the second receiver did not see the end of the push"
    );
    let (video, audio, codecs) = packet_counts(&second);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(video >= 30 && audio >= 50, "{video} / {audio}");
}

/// A TLS terminator in front of a plain RTMP receiver (ffmpeg cannot listen on rtmps://):
/// accepts one connection on `port` with `cert`/`key` and relays it to `to`.
fn tls_relay(port: u16, cert: &Path, key: &Path, to: u16) -> std::thread::JoinHandle<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        let (mut tcp, _) = l.accept().unwrap();
        let mut conn = rustls::ServerConnection::new(std::sync::Arc::new(cfg)).unwrap();
        while conn.is_handshaking() {
            if conn.complete_io(&mut tcp).is_err() {
                return;
            }
        }
        tcp.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut plain = std::net::TcpStream::connect(("127.0.0.1", to)).unwrap();
        plain
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let quiet = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        };
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if plain.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if quiet(&e) => {}
                Err(_) => break,
            }
            match plain.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                        break;
                    }
                }
                Err(e) if quiet(&e) => {}
                Err(_) => break,
            }
        }
    })
}

/// `MistOutRTMP -s STREAM rtmps://…` standalone: TLS to the receiver (its certificate checked
/// against MIST_TLS_CA_FILE; without it, refused), video and audio arrive; SIGTERM ends it with
/// exit 0 and a clean end for the receiver.
#[test]
fn rtmps_push_standalone() {
    let _g = serial();
    let dir = TempDir::new("pushnet-tls");
    // A private CA and a certificate it signed for localhost.
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let c = Controller::start(serde_json::json!({}));
    let _pub = publish(&c.publish_url("live+t"), "320x240", 60);
    wait_stream(&c, "live+t");
    let pusher = |port: u16, ca: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_MistOutRTMP"));
        cmd.args(["-s", "live+t"])
            .arg(format!("rtmps://localhost:{port}/app/key"))
            .env("MIST_SHM_DIR", &c.shm)
            .env_remove("MIST_CONTROL")
            .env_remove("MIST_TLS_CA_FILE")
            .stdin(Stdio::null());
        if let Some(ca) = ca {
            cmd.env("MIST_TLS_CA_FILE", ca);
        }
        Proc(cmd.spawn().unwrap())
    };
    // An unknown certificate authority: refused.
    let tls_port = free_port();
    let _relay = tls_relay(tls_port, &cert, &key, free_port());
    let mut bad = pusher(tls_port, None);
    assert!(wait_exit(&mut bad, Duration::from_secs(20)));
    assert_eq!(bad.0.wait().unwrap().code(), Some(1));
    // Trusted: the receiver gets the stream.
    let (rx_port, tls_port) = (free_port(), free_port());
    let out = dir.path().join("tls.flv");
    let mut rx = rtmp_receiver(rx_port, &out);
    let _relay = tls_relay(tls_port, &cert, &key, rx_port);
    let mut p = pusher(tls_port, Some(&ca));
    std::thread::sleep(Duration::from_secs(5));
    assert!(matches!(p.0.try_wait(), Ok(None)), "the push ended early");
    Command::new("kill")
        .args(["-TERM", &p.pid().to_string()])
        .status()
        .unwrap();
    assert!(wait_exit(&mut p, Duration::from_secs(20)));
    assert_eq!(p.0.wait().unwrap().code(), Some(0));
    assert!(
        wait_exit(&mut rx, Duration::from_secs(20)),
        "the receiver did not see the end of the push"
    );
    let (video, audio, codecs) = packet_counts(&out);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(video >= 30 && audio >= 50, "{video} / {audio}");
}
