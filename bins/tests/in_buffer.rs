//! MistInBuffer end to end: the real binary with writers and readers from this process.

mod common;

use common::{wait_until, TempDir};
use mist_media::{Codec, Track};
use mist_shm::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_MistInBuffer");

fn spawn(dir: &std::path::Path, stream: &str, timeout_ms: u64) -> Child {
    Command::new(BIN)
        .args([
            "-s",
            stream,
            "--timeout",
            &timeout_ms.to_string(),
            "--dvr",
            "5000",
            "-g",
            "5",
            "push://",
        ])
        .env("MIST_SHM_DIR", dir)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The exit code of `c` once it exits within `secs` (None: still running, or killed by a signal).
fn wait_exit(c: &mut Child, secs: u64) -> Option<i32> {
    common::wait_exit(c, Duration::from_secs(secs)).and_then(|st| st.code())
}

fn writer(stream: &str) -> StreamWriter {
    let mut w = StreamWriter::create(
        stream,
        WriterOptions {
            live: true,
            dvr_ms: 5000,
        },
    )
    .unwrap();
    w.set_track(&Track::new(1, Codec::Aac)).unwrap();
    w
}

#[test]
fn capabilities_json() {
    let out = Command::new(BIN).arg("-j").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "Buffer");
    assert_eq!(v["source_match"][0], "push://*");
    assert_eq!(v["optional"]["DVR"]["option"], "--dvr");
    assert_eq!(v["optional"]["dvr_bytes"]["option"], "--dvr-bytes");
}

/// One test for the lifecycle (the shm directory is set process-wide).
#[test]
fn lifecycle() {
    let tmp = TempDir::new("inbuffer-life");
    let dir = tmp.path().to_path_buf();
    std::env::set_var("MIST_SHM_DIR", &dir);
    let meta = dir.join("mist-live-meta");

    // 1. The buffer creates the stream; a second buffer for it is refused.
    let mut b = spawn(&dir, "live", 1500);
    wait_until("the stream's metadata", Duration::from_secs(10), || {
        meta.exists()
    });
    let mut b2 = spawn(&dir, "live", 1500);
    assert_eq!(wait_exit(&mut b2, 10), Some(1));

    // 2. A publisher pushes, a viewer watches, the publisher leaves and returns within the timeout.
    let mut w = writer("live");
    for i in 0..20 {
        w.push_parts(1, i * 20, 0, true, b"aaaa").unwrap();
    }
    let mut r = StreamReader::open("live", ReaderInfo::default()).unwrap();
    drop(w); // publisher gone (not closed)
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        b.try_wait().unwrap().is_none(),
        "buffer must wait for the publisher"
    );
    assert!(matches!(r.next(), ReadEvent::Frame(_) | ReadEvent::Pending));
    let mut w = writer("live");
    assert_eq!(w.epoch(), 2);
    let t0 = Instant::now();
    let mut i = 0;
    while t0.elapsed() < Duration::from_millis(2500) {
        w.push_parts(1, i * 20, 0, true, b"bbbb").unwrap();
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        b.try_wait().unwrap().is_none(),
        "publisher is back: buffer keeps running"
    );
    let mut restarted = false;
    loop {
        match r.next() {
            ReadEvent::Restarted => restarted = true,
            ReadEvent::Frame(_) | ReadEvent::TracksChanged => {}
            e => {
                assert!(matches!(e, ReadEvent::Pending));
                break;
            }
        }
    }
    assert!(restarted);

    // 3. The publisher leaves for good: the stream ends after the timeout, files are removed.
    drop(w);
    let t0 = Instant::now();
    assert_eq!(wait_exit(&mut b, 10), Some(0));
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(1300) && el < Duration::from_secs(5),
        "{el:?}"
    );
    assert!(!meta.exists());
    assert!(matches!(r.next(), ReadEvent::Ended));
    drop(r);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "all files removed"
    );

    // 4. Writer first, then buffer; closing the stream ends it at once.
    let mut w = writer("second");
    w.push_parts(1, 0, 0, true, b"x").unwrap();
    let mut b = spawn(&dir, "second", 60_000);
    wait_until("stream second", Duration::from_secs(10), || {
        stream_status("second").is_ok()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(b.try_wait().unwrap().is_none());
    w.close();
    assert_eq!(wait_exit(&mut b, 10), Some(0));
    assert!(stream_status("second").is_err());

    // 5. Nobody ever publishes: ends after the timeout; SIGTERM ends at once.
    let mut b = spawn(&dir, "never", 500);
    assert_eq!(wait_exit(&mut b, 10), Some(0));
    let mut b = spawn(&dir, "term", 60_000);
    wait_until("stream term", Duration::from_secs(10), || {
        dir.join("mist-term-meta").exists()
    });
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut b, 10), Some(0));
    assert!(!dir.join("mist-term-meta").exists());

    // 6. The stream's DVR byte cap (`dvr_bytes` → `--dvr-bytes`) binds the writer, another
    // process: a publisher with frozen timestamps (never leaving the DVR window in time) pushing
    // 64 MiB keeps 3 or 4 pages of 4 MiB under a 16 MiB cap, not 16.
    let mut b = Command::new(BIN)
        .args([
            "-s",
            "capped",
            "--dvr-bytes",
            "16777216",
            "-g",
            "5",
            "push://",
        ])
        .env("MIST_SHM_DIR", &dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("stream capped", Duration::from_secs(10), || {
        dir.join("mist-capped-meta").exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut w = writer("capped");
    let frame = vec![7u8; 1 << 20];
    for _ in 0..64 {
        w.push_parts(1, 1000, 0, true, &frame).unwrap();
    }
    let pages = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("mist-capped-p"))
        .count();
    assert!((3..=5).contains(&pages), "{pages} pages kept");
    w.close();
    assert_eq!(wait_exit(&mut b, 10), Some(0));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut b.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains("at most 16777216 bytes"), "{log}");
}
