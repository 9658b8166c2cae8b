//! End to end: CMAF (DASH + fMP4 HLS) and multi-variant HLS from MistOutHTTP, played with
//! ffmpeg/ffprobe. A live RTMP push through MistController, and a two-resolution stream written
//! into shared memory by the stand-in publisher (an ffmpeg-made Matroska file with two H.264
//! tracks).

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One shared-memory directory for this test binary (the in-process publisher reads
/// `MIST_SHM_DIR`).
fn shm() -> &'static PathBuf {
    shared_shm("cmaf")
}

/// MistOutHTTP alone on a free port.
fn http_server() -> (Proc, u16) {
    http_out(shm(), &[])
}

/// GET `path`: (status line + headers, body).
fn get(port: u16, path: &str) -> (String, Vec<u8>) {
    http_get_with(port, path, "", Duration::from_secs(20))
}

/// `ffmpeg -v error -i URL -t SECS` decoding the first video stream: (frames, WxH, stderr).
fn decode(url: &str, secs: u32) -> (usize, String, String) {
    let out = Command::new("timeout")
        .args(["40", "ffmpeg", "-hide_banner", "-v", "error", "-i", url])
        .args([
            "-t",
            &secs.to_string(),
            "-map",
            "0:v:0",
            "-f",
            "framemd5",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let text = String::from_utf8_lossy(&out.stdout);
    let (frames, size) = common::framemd5_summary(&text);
    (
        frames,
        size,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The variants of a master playlist: (BANDWIDTH, RESOLUTION, CODECS, URI).
fn variants(master: &str) -> Vec<(u64, String, String, String)> {
    let mut out = Vec::new();
    let mut lines = master.lines();
    while let Some(l) = lines.next() {
        let Some(attrs) = l.strip_prefix("#EXT-X-STREAM-INF:") else {
            continue;
        };
        let attr = |name: &str| {
            mist_media::hls::parse_attributes(attrs)
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .unwrap_or_default()
        };
        let uri = lines.next().unwrap_or_default().to_string();
        out.push((
            attr("BANDWIDTH").parse().unwrap_or(0),
            attr("RESOLUTION"),
            attr("CODECS"),
            uri,
        ));
    }
    out
}

#[test]
fn rtmp_push_played_as_dash_and_fmp4_hls() {
    let ctl = Controller::start_http(
        serde_json::json!({}),
        serde_json::json!([{"connector": "CMAF"}, {"connector": "HLS"}]),
        None,
    );
    let _pub = publish(&ctl.publish_url("live+cmaf"), "640x360", 60);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let a = ctl.api(&serde_json::json!({"active_streams": true}));
        if a["active_streams"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "live+cmaf"))
        {
            break;
        }
        assert!(Instant::now() < end, "the RTMP push never became active");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = ctl.http;

    // The MPD: dynamic, with a SegmentTimeline and a UTCTiming URL the server answers.
    let (head, body) = get(port, "/cmaf/live+cmaf/index.mpd");
    let mpd = String::from_utf8_lossy(&body).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{mpd}");
    assert!(
        head.contains("application/dash+xml") && head.contains("no-cache"),
        "{head}"
    );
    for want in [
        "type=\"dynamic\"",
        "availabilityStartTime=",
        "<SegmentTimeline>",
        "UTCTiming",
        "avc1.",
        "mp4a.40.2",
    ] {
        assert!(mpd.contains(want), "MPD lacks {want}:\n{mpd}");
    }
    let time_url = mpd
        .split("utc:http-iso:2014\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(time_url, format!("http://127.0.0.1:{port}/time"), "{mpd}");
    let (head, body) = get(port, "/time");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let t = String::from_utf8_lossy(&body);
    assert!(
        t.len() == 24 && t.ends_with('Z') && t.starts_with("20"),
        "{t}"
    );

    // fMP4 HLS master: one variant with CODECS/RESOLUTION/BANDWIDTH and an audio rendition.
    let (head, body) = get(port, "/cmaf/live+cmaf/index.m3u8");
    let master = String::from_utf8_lossy(&body).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("no-cache"),
        "{head}"
    );
    let v = variants(&master);
    assert_eq!(v.len(), 1, "{master}");
    assert_eq!(v[0].1, "640x360", "{master}");
    assert!(
        v[0].0 > 0 && v[0].2.contains("avc1.") && v[0].2.contains("mp4a.40.2"),
        "{master}"
    );
    assert!(master.contains("#EXT-X-MEDIA:TYPE=AUDIO"), "{master}");
    let (_, body) = get(port, &format!("/cmaf/live+cmaf/{}", v[0].3));
    let media = String::from_utf8_lossy(&body).into_owned();
    assert!(media.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{media}");
    // Segments: shared URL, long-lived caching, identical bytes on every request.
    let seg = media
        .lines()
        .rfind(|l| l.ends_with(".m4s"))
        .expect("a segment")
        .to_string();
    let track = v[0].3.split('/').next().unwrap();
    let (h1, b1) = get(port, &format!("/cmaf/live+cmaf/{track}/{seg}"));
    let (_, b2) = get(port, &format!("/cmaf/live+cmaf/{track}/{seg}"));
    assert!(
        h1.starts_with("HTTP/1.1 200") && h1.contains("max-age=3600"),
        "{h1}"
    );
    assert!(b1.len() > 1000 && b1 == b2);
    // The DASH template names the same file.
    assert!(
        mpd.contains("media=\"$RepresentationID$/$Time$.m4s\""),
        "{mpd}"
    );

    for path in ["/cmaf/live+cmaf/index.mpd", "/cmaf/live+cmaf/index.m3u8"] {
        let u = url(port, path);
        let s = probe_streams(&u);
        let vs = s
            .iter()
            .find(|s| s["codec_type"] == "video")
            .unwrap_or_else(|| panic!("{u}: {s:?}"));
        assert_eq!(
            (
                vs["codec_name"].as_str(),
                vs["width"].as_u64(),
                vs["height"].as_u64()
            ),
            (Some("h264"), Some(640), Some(360)),
            "{u}"
        );
        assert!(s.iter().any(|s| s["codec_name"] == "aac"), "{u}: {s:?}");
        let (frames, size, err) = decode(&u, 4);
        assert!(err.trim().is_empty(), "{u}: ffmpeg reported errors:\n{err}");
        assert_eq!(size, "640x360", "{u}");
        assert!(frames >= 98, "{u}: only {frames} video frames in 4 s");
    }
}

/// Two H.264 tracks (640x360 at 800 kbit/s, 320x180 at 150 kbit/s, aligned 2 s GOPs) + AAC,
/// as Matroska.
fn make_two_resolutions(path: &std::path::Path, seconds: u32) {
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            &seconds.to_string(),
            "-map",
            "0:v",
            "-map",
            "0:v",
            "-map",
            "1:a",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-keyint_min",
            "50",
        ])
        .args(["-sc_threshold", "0", "-pix_fmt", "yuv420p"])
        .args([
            "-s:v:0", "640x360", "-b:v:0", "800k", "-s:v:1", "320x180", "-b:v:1", "150k",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "matroska"])
        .arg(path)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg could not make {}", path.display());
}

#[test]
fn two_resolutions_give_two_variants() {
    shm();
    let file = shm().join("two.mkv");
    make_two_resolutions(&file, 60);
    let _pub = ShmPublisher::start("two", &file);
    let (_srv, port) = http_server();
    for kind in ["cmaf", "hls"] {
        let (head, body) = get(port, &format!("/{kind}/two/index.m3u8"));
        let master = String::from_utf8_lossy(&body).into_owned();
        assert!(head.starts_with("HTTP/1.1 200"), "{kind}: {head}\n{master}");
        let mut v = variants(&master);
        assert_eq!(v.len(), 2, "{kind}: {master}");
        v.sort_by_key(|v| v.0);
        assert_eq!(
            (v[0].1.as_str(), v[1].1.as_str()),
            ("320x180", "640x360"),
            "{kind}: larger BANDWIDTH must be the larger RESOLUTION:\n{master}"
        );
        for (_, res, codecs, uri) in &v {
            assert!(
                codecs.contains("avc1.") && codecs.contains("mp4a.40.2"),
                "{kind}: {master}"
            );
            let u = url(port, &format!("/{kind}/two/{uri}"));
            let (frames, size, err) = decode(&u, 3);
            assert!(err.trim().is_empty(), "{u}: ffmpeg reported errors:\n{err}");
            assert_eq!(&size, res, "{u}");
            assert!(frames >= 70, "{u}: only {frames} video frames in 3 s");
        }
    }
    // Track selectors by measured bit rate and by size pick the right picture.
    for (query, want) in [
        ("video=maxbps", "640x360"),
        ("video=minbps", "320x180"),
        ("video=~300x170", "320x180"),
        ("video=%3E400kbps", "640x360"),
    ] {
        let u = url(port, &format!("/two.ts?{query}"));
        let (frames, size, err) = decode(&u, 2);
        assert!(err.trim().is_empty(), "{u}: ffmpeg reported errors:\n{err}");
        assert_eq!(size, want, "{u}");
        assert!(frames >= 40, "{u}: only {frames} video frames in 2 s");
    }
    // The stream info carries the measured rates (bytes per second).
    let (_, body) = get(port, "/json_two.js");
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let tracks = info["meta"]["tracks"].as_object().unwrap();
    assert_eq!(tracks.len(), 3, "{info}");
    assert!(
        tracks
            .values()
            .all(|t| t["bps"].as_u64().unwrap_or(0) > 1000),
        "{info}"
    );
    // DASH: both representations in one video AdaptationSet.
    let (_, body) = get(port, "/cmaf/two/index.mpd");
    let mpd = String::from_utf8_lossy(&body).into_owned();
    assert!(
        mpd.contains("width=\"640\" height=\"360\"")
            && mpd.contains("width=\"320\" height=\"180\""),
        "{mpd}"
    );
    // The file starts at a slightly negative time; MPD times are unsigned.
    assert!(!mpd.contains("=\"-"), "{mpd}");
}

#[test]
fn ended_stream_gets_static_answers() {
    shm();
    let file = shm().join("short.flv");
    make_flv(&file, "320x240", 8);
    let publisher = ShmPublisher::start("short", &file);
    let (_srv, port) = http_server();
    let (head, _) = get(port, "/cmaf/short/index.mpd");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    publisher.join();
    std::thread::sleep(Duration::from_millis(1500));
    let (head, body) = get(port, "/cmaf/short/index.mpd");
    let mpd = String::from_utf8_lossy(&body).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 200") && mpd.contains("type=\"static\""),
        "{head}\n{mpd}"
    );
    let (_, body) = get(port, "/cmaf/short/index.m3u8");
    let master = String::from_utf8_lossy(&body).into_owned();
    let v = variants(&master);
    let (_, body) = get(port, &format!("/cmaf/short/{}", v[0].3));
    let media = String::from_utf8_lossy(&body).into_owned();
    assert!(media.contains("#EXT-X-ENDLIST"), "{media}");
}
