//! The `/info_STREAM.js` body evaluated by a real JavaScript engine (node; scripts/test installs it): it
//! must define `mistvideo[NAME]` equal to the JSON body of `/json_STREAM.js`.

use std::io::Write;
use std::process::{Command, Stdio};

use mist_media::info::{info_js, offline_info, stream_info, Protocol, Source, TrackInfo};
use mist_media::{Codec, Track};

fn node(script: &str) -> Option<String> {
    let mut c = Command::new("node")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    c.stdin.take()?.write_all(script.as_bytes()).ok()?;
    let o = c.wait_with_output().ok()?;
    assert!(
        o.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn info_js_evaluates_to_the_json() {
    let mut v = Track::new(1, Codec::H264);
    v.width = 1920;
    v.height = 1080;
    v.fpks = 30_000;
    let mut a = Track::new(2, Codec::Opus);
    a.rate = 48000;
    a.channels = 2;
    let tracks = [
        TrackInfo {
            track: v,
            firstms: 1000,
            lastms: 61_000,
        },
        TrackInfo {
            track: a,
            firstms: 1000,
            lastms: 61_010,
        },
    ];
    let srcs: Vec<Source> = [
        Protocol::Hls,
        Protocol::CmafHls,
        Protocol::Dash,
        Protocol::WebM,
        Protocol::WebRtc,
        Protocol::Flv,
    ]
    .into_iter()
    .map(|p| Source {
        protocol: p,
        base_url: "https://example.test:4433".into(),
    })
    .collect();
    for (name, info) in [
        (
            "live+it's </script>",
            stream_info("live+it's </script>", false, &tracks, &srcs),
        ),
        ("gone", offline_info("Stream is offline")),
    ] {
        let js = info_js(name, &info);
        let script = format!(
            "var mistvideo;\n{js}console.log(JSON.stringify(mistvideo[{}]));",
            serde_json::to_string(name).unwrap()
        );
        let out = node(&script).expect("node not found (scripts/test installs nodejs)");
        let back: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(back, info);
    }
    let info = stream_info("x", false, &tracks, &srcs);
    assert_eq!(info["type"], "vod");
    // H.264 + Opus: CMAF, DASH and WebRTC carry both; HLS (TS) and FLV only the video.
    let simul: Vec<(String, u64)> = info["source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["type"].as_str().unwrap().to_string(),
                s["simul_tracks"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(simul[0].1, 2);
    assert!(simul
        .iter()
        .any(|(t, n)| t == "html5/application/vnd.apple.mpegurl" && *n == 1));
    assert!(simul.iter().any(|(t, n)| t == "webrtc" && *n == 2));
}
