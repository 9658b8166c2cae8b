//! MistInTS as a live input, end to end: ffmpeg sends MPEG-TS over UDP (unicast and multicast on
//! `lo`) or runs as a `ts-exec:` child; the controller starts MistInTS for the stream's source;
//! ffmpeg/ffprobe play it back over HLS and HTTP-TS.
//!
//! Run: `cargo test -p mist-bins --test ts_live`
mod common;

use common::*;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// ffmpeg sending testsrc2 + sine (H.264 + AAC) as TS over UDP in real time.
fn send_udp(target: &str, size: &str, seconds: u32) -> Proc {
    let child = ffmpeg_testsrc(&["-re"], size, seconds)
        .args(["-tune", "zerolatency", "-f", "mpegts", target])
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg (scripts/test installs it)");
    Proc(child)
}

/// Decodes video from `url`, retrying for up to 40 s while the input starts (the first request
/// starts MistInTS; the stream exists once its tracks are known).
fn decode_when_up(url: &str) -> (usize, String) {
    common::decode_when_up(url, Duration::from_secs(40))
}

fn protocols() -> serde_json::Value {
    serde_json::json!([{"connector": "HTTPTS"}, {"connector": "HLS"}])
}

#[test]
fn udp_unicast_plays_over_http_ts_and_hls_despite_a_flood() {
    let udp = free_udp_port();
    let ctl = Controller::start_http(
        serde_json::json!({"udpin": {"name": "udpin", "source": format!("tsudp://127.0.0.1:{udp}")}}),
        protocols(),
        None,
    );
    let _ff = send_udp(
        &format!("udp://127.0.0.1:{udp}?pkt_size=1316"),
        "320x240",
        90,
    );
    let (frames, size) = decode_when_up(&url(ctl.http, "/udpin.ts"));
    assert!(frames >= 50, "HTTP-TS decoded only {frames} frames");
    assert_eq!(size, "320x240");

    // Random datagrams next to the real source: playback goes on.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let flood = std::thread::spawn(move || {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut x = 0x1234_5678u32;
        let mut sent = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let mut d = vec![0u8; 1316];
            for b in d.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            // Every other datagram looks like TS (sync bytes in place, random everything else).
            if sent.is_multiple_of(2) {
                for p in d.chunks_mut(188) {
                    p[0] = 0x47;
                }
            }
            let _ = tx.send_to(&d, ("127.0.0.1", udp));
            sent += 1;
            if sent.is_multiple_of(64) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        sent
    });
    let hls = url(ctl.http, "/hls/udpin/index.m3u8");
    let (frames, size) = decode_when_up(&hls);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.join().unwrap();
    assert!(sent > 1000, "the flood sent only {sent} datagrams");
    assert!(
        frames >= 50,
        "HLS decoded only {frames} frames during the flood"
    );
    assert_eq!(size, "320x240");
    let (frames, _) = decode_when_up(&url(ctl.http, "/udpin.ts"));
    assert!(frames >= 50, "HTTP-TS after the flood: {frames} frames");
}

#[test]
fn udp_multicast_on_lo_plays_over_hls() {
    let group = "239.1.1.1";
    ensure_lo_multicast(group);
    let udp = free_udp_port();
    let ctl = Controller::start_http(
        serde_json::json!({"mc": {"name": "mc", "source": format!("tsudp://{group}:{udp}/lo")}}),
        protocols(),
        None,
    );
    let _ff = send_udp(
        &format!("udp://{group}:{udp}?pkt_size=1316&localaddr=127.0.0.1&ttl=1"),
        "320x240",
        60,
    );
    let (frames, size) = decode_when_up(&url(ctl.http, "/hls/mc/index.m3u8"));
    assert!(frames >= 50, "HLS of the multicast source: {frames} frames");
    assert_eq!(size, "320x240");
    let (frames, _) = decode_when_up(&url(ctl.http, "/mc.ts"));
    assert!(
        frames >= 50,
        "HTTP-TS of the multicast source: {frames} frames"
    );
}

#[test]
fn ts_exec_multivideogen_gives_two_variants_and_two_audio_tracks() {
    let gen = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/multivideogen");
    let ctl = Controller::start_http(
        serde_json::json!({"multi": {"name": "multi", "source": format!("ts-exec:{gen} -t 120 -f mpegts -")}}),
        protocols(),
        None,
    );
    let hls = url(ctl.http, "/hls/multi/index.m3u8");
    // The first request starts the input; the master lists both renditions once the stream is up.
    let master = wait_master(
        ctl.http,
        "/hls/multi/index.m3u8",
        2,
        Duration::from_secs(40),
    );
    assert!(master.contains("RESOLUTION=1280x720"), "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    let audio = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA") && l.contains("TYPE=AUDIO"))
        .count();
    assert!(audio >= 2, "two audio renditions expected:\n{master}");
    // Each variant decodes at its own size.
    let variants: Vec<String> = master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(String::from)
        .collect();
    let mut sizes = Vec::new();
    for v in &variants {
        let (frames, size) = decode_when_up(&url(ctl.http, &format!("/hls/multi/{v}")));
        assert!(frames >= 25, "variant {v}: {frames} frames");
        sizes.push(size);
    }
    sizes.sort();
    sizes.dedup();
    assert!(
        sizes.contains(&"1280x720".to_string()) && sizes.contains(&"640x360".to_string()),
        "variant sizes {sizes:?}"
    );
    let (frames, _) = decode_when_up(&hls);
    assert!(frames >= 25);
    // Stream info: two video and two audio tracks.
    let (video, audio, info) = track_counts(ctl.http, "multi");
    assert_eq!((video, audio), (2, 2), "{info}");
}

/// MistInTS run by hand; its log lines come through a channel.
fn mistints(shm: &std::path::Path, args: &[&str]) -> (Proc, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_MistInTS"))
        .args(args)
        .env("MIST_SHM_DIR", shm)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start MistInTS");
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(err)).map_while(Result::ok) {
            eprintln!("{line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Proc(child), rx)
}

/// Waits (at most 40 s) for a log line containing `what`.
fn wait_line(rx: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    let end = Instant::now() + Duration::from_secs(40);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(what) => return l,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no log line with {what:?}");
}

#[test]
fn quiet_source_ends_the_stream_and_a_returning_one_resumes_it() {
    let dir = TempDir::new("tsq");
    let udp = free_udp_port();
    let src = format!("tsudp://127.0.0.1:{udp}");
    let (_p, rx) = mistints(
        dir.path(),
        &["-s", "q", "--timeout", "1500", "-i", "30", &src],
    );
    let target = format!("udp://127.0.0.1:{udp}?pkt_size=1316");
    let ff = send_udp(&target, "160x120", 4);
    let l = wait_line(&rx, "stream q is live");
    assert!(l.contains("H264 160x120") && l.contains("AAC"), "{l}");
    drop(ff);
    wait_line(&rx, "no media for 1500 ms; ending it");
    let _ff = send_udp(&target, "160x120", 4);
    wait_line(&rx, "stream q is live");
}

#[test]
fn stdin_source_is_ingested_until_it_ends() {
    let dir = TempDir::new("tsstdin");
    let (mut p, rx) = mistints(dir.path(), &["-s", "piped", "-"]);
    let mut stdin = p.0.stdin.take().unwrap();
    let ts = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"])
        .args(["-f", "lavfi", "-i", "sine", "-t", "3"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
        .args(["-f", "mpegts", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(ts.status.success() && ts.stdout.len() > 10_000);
    std::io::Write::write_all(&mut stdin, &ts.stdout).unwrap();
    drop(stdin);
    wait_line(&rx, "stream piped is live");
    let l = wait_line(&rx, "the source ended; ending it");
    // 3 s at 25 fps, plus the audio frames.
    let frames: u64 = l
        .split('(')
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(frames >= 75 + 100, "{l}");
    assert_eq!(p.0.wait().unwrap().code(), Some(0));
}

#[test]
fn tstcp_listen_and_connect() {
    let dir = TempDir::new("tstcp");
    // Listening: ffmpeg connects to us.
    let port = free_port();
    let src = format!("tstcp://:{port}");
    let (_p, rx) = mistints(dir.path(), &["-s", "tcpl", &src]);
    wait_line(&rx, "waiting for a TS sender");
    let _ff = send_udp(&format!("tcp://127.0.0.1:{port}"), "160x120", 5);
    let l = wait_line(&rx, "stream tcpl is live");
    assert!(l.contains("H264 160x120") && l.contains("AAC"), "{l}");
    // Connecting: ffmpeg listens, we connect (and retry until it does). By name: the name is
    // resolved (every address tried) on a thread of its own, off the event loop.
    let port = free_port();
    let _ff = send_udp(&format!("tcp://127.0.0.1:{port}?listen=1"), "160x120", 5);
    let src = format!("tstcp://localhost:{port}");
    let (_p2, rx) = mistints(dir.path(), &["-s", "tcpc", &src]);
    let l = wait_line(&rx, "stream tcpc is live");
    assert!(l.contains("H264 160x120"), "{l}");
}

/// An ffmpeg-made TS file (H.264 + AAC) of `seconds`.
fn ts_file(dir: &std::path::Path, name: &str, seconds: u32) -> Vec<u8> {
    let path = dir.join(name);
    let st = ffmpeg_testsrc(&["-y"], "160x120", seconds)
        .args(["-f", "mpegts"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(st.success());
    std::fs::read(&path).unwrap()
}

/// Sends `ts` over UDP in 7-packet datagrams spread over `seconds`, skipping every `skip`th
/// datagram (0: none) and, when `corrupt`, breaking every PES header. Runs on a thread.
fn send_ts_file(
    ts: Vec<u8>,
    port: u16,
    seconds: u32,
    skip: usize,
    corrupt: bool,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let chunks: Vec<Vec<u8>> = ts
            .chunks(1316)
            .map(|c| {
                let mut c = c.to_vec();
                if corrupt {
                    for p in c.chunks_mut(188) {
                        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
                        // Payload unit start on an elementary stream: a lying PES header.
                        if p.len() == 188 && p[1] & 0x40 != 0 && (0x100..0x1FFF).contains(&pid) {
                            let at = if p[3] & 0x20 != 0 {
                                5 + usize::from(p[4])
                            } else {
                                4
                            };
                            for b in p.iter_mut().skip(at).take(14) {
                                *b ^= 0xA5;
                            }
                        }
                    }
                }
                c
            })
            .collect();
        let pause = Duration::from_secs(u64::from(seconds)) / chunks.len().max(1) as u32;
        let mut sent = 0;
        for (i, c) in chunks.iter().enumerate() {
            if skip == 0 || (i + 1) % skip != 0 {
                let _ = tx.send_to(c, ("127.0.0.1", port));
                sent += 1;
            }
            std::thread::sleep(pause);
        }
        sent
    })
}

#[test]
fn udp_loss_is_reported_in_active_streams_and_a_clean_feed_shows_none() {
    let dir = TempDir::new("tsloss");
    let ts = ts_file(dir.path(), "a.ts", 40);
    let (lossy, clean) = (free_udp_port(), free_udp_port());
    // `ts:` forces MistInTS (INTERFACES §4.2); the input gets the source without it.
    let ctl = Controller::start_http(
        serde_json::json!({
            "lossy": {"name": "lossy", "source": format!("ts:tsudp://127.0.0.1:{lossy}")},
            "clean": {"name": "clean", "source": format!("tsudp://127.0.0.1:{clean}")},
        }),
        protocols(),
        None,
    );
    let a = send_ts_file(ts.clone(), lossy, 40, 50, false);
    let b = send_ts_file(ts, clean, 40, 0, false);
    let (frames, size) = decode_when_up(&url(ctl.http, "/lossy.ts"));
    assert!(frames >= 25, "lossy feed decoded only {frames} frames");
    assert_eq!(size, "160x120");
    let (frames, _) = decode_when_up(&url(ctl.http, "/clean.ts"));
    assert!(frames >= 25, "clean feed decoded only {frames} frames");
    // Counters are published every half second; wait for some loss to show.
    let row = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(500),
        || ctl.stream_row("lossy"),
        |row| row["loss"].as_u64().unwrap_or(0) > 0,
    );
    assert!(row["loss"].as_u64().unwrap_or(0) > 0, "lossy: {row}");
    assert!(row["health"]["packets"].as_u64().unwrap_or(0) > 0, "{row}");
    let row = ctl.stream_row("clean");
    assert_eq!(row["loss"], serde_json::json!(0), "clean: {row}");
    assert!(row["health"]["packets"].as_u64().unwrap_or(0) > 0, "{row}");
    assert!(row["health"]["frames"].as_u64().unwrap_or(0) > 0, "{row}");
    drop(ctl);
    let _ = (a.join(), b.join());
}

/// The stream's input health file (`mist_shm::health`) in `shm`.
fn health_file(shm: &std::path::Path, stream: &str) -> std::collections::BTreeMap<String, u64> {
    std::fs::read_to_string(shm.join(format!("mist-{stream}-health")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn ts_exec_restarts_are_not_counted_as_loss() {
    let dir = TempDir::new("tsrestart");
    let cmd = "ts-exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=160x120:rate=25 \
               -t 2 -c:v libx264 -preset ultrafast -g 25 -pix_fmt yuv420p -f mpegts -";
    let (_p, rx) = mistints(dir.path(), &["-s", "rs", "--timeout", "8000", cmd]);
    wait_line(&rx, "stream rs is live");
    let mut restarts = 0;
    let end = Instant::now() + Duration::from_secs(60);
    while restarts < 2 {
        let l = rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .expect("two ts-exec restarts");
        assert!(!l.contains("ending it"), "the stream ended: {l}");
        if l.contains("started ts-exec child") {
            restarts += 1;
        }
    }
    // The third run delivers frames: the stream went on across the restarts.
    let h = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(300),
        || health_file(dir.path(), "rs"),
        |h| h.get("frames").copied().unwrap_or(0) >= 120,
    );
    assert!(h.get("frames").copied().unwrap_or(0) >= 120, "{h:?}");
    assert_eq!(h.get("loss"), Some(&0), "restarts counted as loss: {h:?}");
}

#[test]
fn corrupt_pes_headers_next_to_a_real_source_do_not_stop_playback() {
    let dir = TempDir::new("tscorrupt");
    let bad = ts_file(dir.path(), "bad.ts", 30);
    let udp = free_udp_port();
    let ctl = Controller::start_http(
        serde_json::json!({"mix": {"name": "mix", "source": format!("tsudp://127.0.0.1:{udp}")}}),
        protocols(),
        None,
    );
    let _ff = send_udp(
        &format!("udp://127.0.0.1:{udp}?pkt_size=1316"),
        "320x240",
        90,
    );
    let (frames, _) = decode_when_up(&url(ctl.http, "/mix.ts"));
    assert!(frames >= 50, "before: {frames} frames");
    let junk = send_ts_file(bad, udp, 25, 0, true);
    let (frames, size) = decode_when_up(&url(ctl.http, "/hls/mix/index.m3u8"));
    assert!(frames >= 50, "HLS during the corrupt feed: {frames} frames");
    assert_eq!(size, "320x240");
    // The junk shares the real source's PIDs, so while it runs most PES packets break on
    // continuity errors; once it stops the stream is whole again.
    assert!(junk.join().unwrap() > 100);
    let (frames, _) = decode_when_up(&url(ctl.http, "/mix.ts"));
    assert!(
        frames >= 50,
        "HTTP-TS after the corrupt feed: {frames} frames"
    );
    // MistInTS is still the same process: nothing panicked.
    let row = ctl.stream_row("mix");
    assert_eq!(row["status"], "Online", "{row}");
}

#[test]
fn fifo_writer_that_leaves_and_returns_continues_the_stream() {
    let dir = TempDir::new("tsfifo");
    let ts = ts_file(dir.path(), "a.ts", 3);
    let fifo = dir.path().join("in.ts");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let src = format!("stream://{}", fifo.display());
    let (_p, rx) = mistints(dir.path(), &["-s", "ff", "--timeout", "20000", &src]);
    let write = |ts: &[u8]| {
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        std::io::Write::write_all(&mut w, ts).unwrap();
    };
    write(&ts);
    wait_line(&rx, "stream ff is live");
    let frames =
        |h: &std::collections::BTreeMap<String, u64>| h.get("frames").copied().unwrap_or(0);
    let first = poll_until(
        Duration::from_secs(20),
        Duration::from_millis(300),
        || health_file(dir.path(), "ff"),
        |h| frames(h) >= 100,
    );
    assert!(frames(&first) >= 100, "first writer: {first:?}");
    // The writer left (closed the FIFO); a new one comes back with more.
    std::thread::sleep(Duration::from_secs(1));
    write(&ts);
    let h = poll_until(
        Duration::from_secs(20),
        Duration::from_millis(300),
        || health_file(dir.path(), "ff"),
        |h| frames(h) >= frames(&first) + 100,
    );
    assert!(
        frames(&h) >= frames(&first) + 100,
        "second writer: {h:?} after {first:?}"
    );
    while let Ok(l) = rx.try_recv() {
        assert!(
            !l.contains("ending it"),
            "the stream ended between writers: {l}"
        );
    }
}
