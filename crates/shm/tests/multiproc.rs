//! Multi-process tests: writers and readers run as separate processes (this test binary re-executed
//! with `SHM_TEST_ROLE` set, running only the `child` test). Children report on stdout with lines
//! starting with `@`.

use mist_media::{Codec, Track};
use mist_shm::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn env(k: &str, d: i64) -> i64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn payload(track: u32, dts: i64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (dts as usize)
                .wrapping_mul(31)
                .wrapping_add(i)
                .wrapping_add(track as usize) as u8
        })
        .collect()
}

fn check(track: u32, dts: i64, data: &[u8]) -> bool {
    // The writer may shift times of a later epoch; the payload carries the original dts.
    data.len() >= 8
        && {
            let orig = i64::from_le_bytes(data[..8].try_into().unwrap());
            data[8..] == payload(track, orig, data.len())[8..]
        }
        && dts >= 0
}

fn frame_bytes(track: u32, dts: i64, len: usize) -> Vec<u8> {
    let mut p = payload(track, dts, len.max(8));
    p[..8].copy_from_slice(&dts.to_le_bytes());
    p
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Child roles. Parameters come from the environment.
fn run_role(role: &str) {
    let stream = std::env::var("SHM_STREAM").unwrap();
    match role {
        // Pushes a video track (keyframe every GOP frames) and an audio track, FRAME_MS apart
        // in media time, sleeping SLEEP_MS between frames, COUNT frames (forever if 0).
        "writer" => {
            let mut w = match StreamWriter::create(
                &stream,
                WriterOptions {
                    live: true,
                    dvr_ms: env("DVR", 50_000) as u64,
                },
            ) {
                Ok(w) => w,
                Err(e) => {
                    println!("@error {e}");
                    return;
                }
            };
            let mut v = Track::new(1, Codec::H264);
            v.width = 640;
            v.height = 360;
            w.set_track(&v).unwrap();
            w.set_track(&Track::new(2, Codec::Aac)).unwrap();
            println!("@started {}", w.epoch());
            // Optionally hold the first frame back until a reader is registered.
            let t0 = Instant::now();
            while env("WAIT_READER", 0) == 1
                && users(&stream).is_empty()
                && t0.elapsed() < Duration::from_secs(20)
            {
                w.heartbeat();
                std::thread::sleep(Duration::from_millis(5));
            }
            let (gop, count, sleep, fms, size) = (
                env("GOP", 10),
                env("COUNT", 0),
                env("SLEEP_MS", 5),
                env("FRAME_MS", 40),
                env("SIZE", 3000) as usize,
            );
            let mut i = 0i64;
            while count == 0 || i < count {
                let dts = i * fms;
                w.push_parts(
                    1,
                    dts,
                    0,
                    i % gop == 0,
                    &frame_bytes(1, dts, size + (i as usize % 500)),
                )
                .unwrap();
                w.push_parts(2, dts + 1, 0, true, &frame_bytes(2, dts + 1, 300))
                    .unwrap();
                i += 1;
                if sleep > 0 {
                    std::thread::sleep(Duration::from_millis(sleep as u64));
                }
            }
            println!("@done {i}");
            if env("CLOSE", 1) == 1 {
                w.close();
            }
        }
        // Reads: reports the first frame, restarts, bad payloads; exits after FRAMES frames in epoch
        // WANT_EPOCH (or on Ended).
        "reader" => {
            let mut r = StreamReader::open(
                &stream,
                ReaderInfo {
                    connector: "TEST".into(),
                    host: "child".into(),
                },
            )
            .unwrap();
            println!("@open");
            let (want_frames, want_epoch) = (env("FRAMES", 50), env("WANT_EPOCH", 1) as u32);
            let mut n = 0;
            let mut first = true;
            let mut last_dts = [i64::MIN; 3];
            loop {
                match r.next() {
                    ReadEvent::Frame(f) => {
                        if first {
                            println!("@first {} {} {}", f.track, f.keyframe, f.dts);
                            first = false;
                        }
                        if !check(f.track, f.dts, &f.data) || r.payload() != &f.data[..] {
                            println!("@bad {} {}", f.track, f.dts);
                        }
                        let t = f.track as usize % 3;
                        if f.dts < last_dts[t] {
                            println!("@backwards {} {} {}", f.track, last_dts[t], f.dts);
                        }
                        last_dts[t] = f.dts;
                        if r.epoch() == want_epoch {
                            n += 1;
                            if n >= want_frames {
                                println!("@done {n}");
                                return;
                            }
                        }
                    }
                    ReadEvent::Restarted => {
                        println!("@restarted {}", r.epoch());
                        first = true;
                        last_dts = [i64::MIN; 3];
                    }
                    ReadEvent::TracksChanged => println!("@tracks {}", r.tracks().len()),
                    ReadEvent::Pending => r.wait(Duration::from_secs(1)),
                    ReadEvent::Ended => {
                        println!("@ended {n}");
                        return;
                    }
                }
            }
        }
        // Holds the first frame of page 0 until that page is evicted, then checks it.
        "holder" => {
            let mut r = StreamReader::open(&stream, ReaderInfo::default()).unwrap();
            r.seek_ms(0);
            let held = loop {
                match r.next() {
                    ReadEvent::Frame(f) => break f,
                    ReadEvent::Pending => r.wait(Duration::from_millis(100)),
                    _ => {}
                }
            };
            println!("@held {} {}", held.track, held.dts);
            let page0 = shm_dir().join(format!("mist-{stream}-p0"));
            let t0 = Instant::now();
            while page0.exists() && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(10));
            }
            println!("@evicted {}", !page0.exists());
            // Fall further behind, until the kept window starts 10 s (media) after us.
            let t0 = Instant::now();
            while stream_status(&stream).map(|s| s.first_ms).unwrap_or(0) < 10_000
                && t0.elapsed() < Duration::from_secs(20)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            println!("@held_ok {}", check(held.track, held.dts, &held.data));
            // Keep reading: the reader finishes its page and jumps ahead.
            let mut jumped = false;
            let mut prev = held.dts;
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                match r.next() {
                    ReadEvent::Frame(f) => {
                        if !check(f.track, f.dts, &f.data) {
                            println!("@bad {}", f.dts);
                        }
                        if f.track == 1 && f.dts > prev + 1000 {
                            println!("@jump {} {} {}", prev, f.dts, f.keyframe);
                            jumped = true;
                            break;
                        }
                        if f.track == 1 {
                            prev = f.dts;
                        }
                    }
                    ReadEvent::Pending => r.wait(Duration::from_millis(100)),
                    ReadEvent::Ended => break,
                    _ => {}
                }
            }
            println!("@jumped {jumped} prev {prev} err {:?}", r.last_error());
        }
        // Registers and sleeps forever (to be killed).
        "sleeper" => {
            let _r = StreamReader::open(
                &stream,
                ReaderInfo {
                    connector: "SLEEP".into(),
                    host: "x".into(),
                },
            )
            .unwrap();
            println!("@open");
            std::thread::sleep(Duration::from_secs(60));
        }
        // Waits on the futex and reports the latency of frames that carry their push time.
        "latency" => {
            let mut r = StreamReader::open(&stream, ReaderInfo::default()).unwrap();
            println!("@open");
            let mut lat = Vec::new();
            while lat.len() < 10 {
                match r.next() {
                    ReadEvent::Frame(f) if f.data.len() == 8 => {
                        let sent = i64::from_le_bytes(f.data[..8].try_into().unwrap());
                        lat.push(now_us() - sent);
                    }
                    ReadEvent::Pending => r.wait(Duration::from_secs(30)),
                    ReadEvent::Ended => break,
                    _ => {}
                }
            }
            lat.sort();
            println!(
                "@latency_us {} {} {:?}",
                lat[lat.len() / 2],
                lat[lat.len() - 1],
                lat
            );
        }
        // Rewrites the track table as fast as it can for RUN_MS; every field of every track
        // carries the same counter, so a torn read is visible.
        "tracks" => {
            let mut w = StreamWriter::create(&stream, WriterOptions::default()).unwrap();
            println!("@started");
            let t0 = Instant::now();
            while users(&stream).is_empty() && t0.elapsed() < Duration::from_secs(30) {
                w.heartbeat();
                std::thread::sleep(Duration::from_millis(5));
            }
            let t0 = Instant::now();
            let mut i = 0u32;
            while t0.elapsed() < Duration::from_millis(env("RUN_MS", 1000) as u64) {
                i += 1;
                for id in 1..=3 {
                    let mut t = Track::new(id, Codec::H264);
                    t.width = i;
                    t.height = i;
                    t.bps = i;
                    t.init = vec![i as u8; (i % 2000) as usize].into();
                    w.set_track(&t).unwrap();
                }
            }
            println!("@done {i}");
            w.close();
        }
        r => panic!("unknown role {r}"),
    }
}

#[test]
fn child() {
    if let Ok(role) = std::env::var("SHM_TEST_ROLE") {
        run_role(&role);
    }
}

struct Proc {
    child: Child,
    rx: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Proc {
    fn spawn(dir: &std::path::Path, role: &str, stream: &str, vars: &[(&str, String)]) -> Proc {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["child", "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env("SHM_TEST_ROLE", role)
            .env("SHM_STREAM", stream)
            .env("MIST_SHM_DIR", dir)
            .stdout(Stdio::piped());
        for (k, v) in vars {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let out: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if l.starts_with('@') && tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            rx,
            log: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`; panics after `secs`.
    fn expect(&mut self, prefix: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!("no {prefix:?} within {secs}s; got {:?}", self.log),
            }
        }
    }

    fn finish(mut self, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "child failed: {st:?} {:?}", self.log);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "child did not exit: {:?}",
                self.log
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.log.extend(self.rx.try_iter());
        std::mem::take(&mut self.log)
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap(); // reap, so the pid is really gone
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mist-shm-mp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `f` with MIST_SHM_DIR set for this process (tests in this file that touch the env run
/// serially through this lock).
fn with_dir<T>(dir: &std::path::Path, f: impl FnOnce() -> T) -> T {
    static L: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = L.lock().unwrap_or_else(|p| p.into_inner());
    std::env::set_var("MIST_SHM_DIR", dir);
    f()
}

fn no_bad(log: &[String]) {
    assert!(
        !log.iter()
            .any(|l| l.starts_with("@bad") || l.starts_with("@backwards")),
        "{log:?}"
    );
}

#[test]
fn reader_joining_mid_stream_starts_at_keyframe() {
    let dir = tmpdir("join");
    let mut w = Proc::spawn(
        &dir,
        "writer",
        "join",
        &[
            ("GOP", "12".into()),
            ("SLEEP_MS", "5".into()),
            ("COUNT", "1200".into()),
        ],
    );
    w.expect("@started", 20);
    std::thread::sleep(Duration::from_millis(300));
    let mut r = Proc::spawn(&dir, "reader", "join", &[("FRAMES", "200".into())]);
    let first = r.expect("@first", 20);
    let f: Vec<&str> = first.split(' ').collect();
    assert_eq!(f[1], "1", "first frame is video: {first}");
    assert_eq!(f[2], "true", "first frame is a keyframe: {first}");
    assert!(
        f[3].parse::<i64>().unwrap() > 0,
        "joined mid-stream: {first}"
    );
    let log = r.finish(30);
    assert!(log.iter().any(|l| l.starts_with("@done")), "{log:?}");
    no_bad(&log);
    w.finish(30);
    // After the writer closed, a new reader sees the end.
    let r2 = Proc::spawn(&dir, "reader", "join", &[]);
    let log = r2.finish(20);
    assert!(log.iter().any(|l| l.starts_with("@ended")), "{log:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn evicted_page_stays_valid_under_reader() {
    let dir = tmpdir("evict");
    // Fast media time, small DVR: page 0 is evicted within a second or so.
    let mut w = Proc::spawn(
        &dir,
        "writer",
        "evict",
        &[
            ("DVR", "2000".into()),
            ("SLEEP_MS", "1".into()),
            ("GOP", "10".into()),
            ("COUNT", "3000".into()),
            ("WAIT_READER", "1".into()),
        ],
    );
    w.expect("@started", 20);
    let mut h = Proc::spawn(&dir, "holder", "evict", &[]);
    h.expect("@held 1 0", 20);
    assert_eq!(h.expect("@evicted", 30), "@evicted true");
    assert_eq!(h.expect("@held_ok", 5), "@held_ok true");
    let j = h.expect("@jump ", 20);
    assert!(j.ends_with("true"), "jumped to a keyframe: {j} {:?}", h.log);
    let log = h.finish(20);
    no_bad(&log);
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn killed_writer_is_taken_over_and_readers_restart() {
    let dir = tmpdir("kill");
    let mut w1 = Proc::spawn(&dir, "writer", "kill", &[("SLEEP_MS", "10".into())]);
    assert_eq!(w1.expect("@started", 20), "@started 1");
    let mut r = Proc::spawn(
        &dir,
        "reader",
        "kill",
        &[("WANT_EPOCH", "2".into()), ("FRAMES", "40".into())],
    );
    r.expect("@first", 20);
    // A second writer is refused while the first lives.
    let mut w_no = Proc::spawn(&dir, "writer", "kill", &[]);
    assert!(w_no.expect("@error", 20).contains("live writer"));
    w1.kill9();
    let mut w2 = Proc::spawn(&dir, "writer", "kill", &[("SLEEP_MS", "10".into())]);
    assert_eq!(w2.expect("@started", 20), "@started 2");
    assert_eq!(r.expect("@restarted", 20), "@restarted 2");
    let first = r.expect("@first", 20);
    assert!(first.starts_with("@first 1 true"), "{first}");
    let log = r.finish(30);
    assert!(log.iter().any(|l| l.starts_with("@done 40")), "{log:?}");
    no_bad(&log);
    with_dir(&dir, || {
        let st = stream_status("kill").unwrap();
        assert_eq!(st.epoch, 2);
        assert!(st.writer_alive);
    });
    drop(w2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dead_reader_slot_is_reclaimed_and_stale_cleaned() {
    let dir = tmpdir("slots");
    let mut w = Proc::spawn(
        &dir,
        "writer",
        "slots",
        &[("COUNT", "20".into()), ("CLOSE", "0".into())],
    );
    w.expect("@done", 20);
    w.finish(10);
    let mut s = Proc::spawn(&dir, "sleeper", "slots", &[]);
    s.expect("@open", 20);
    with_dir(&dir, || {
        let u = users("slots");
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].connector, "SLEEP");
        // The stream is in use: cleanup keeps it.
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(cleanup_stale(), 0);
    });
    s.kill9();
    with_dir(&dir, || {
        assert!(users("slots").is_empty());
        assert!(cleanup_stale() >= 3, "meta, users and pages removed");
        assert!(list_streams().is_empty());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn futex_wakes_reader_promptly() {
    let dir = tmpdir("futex");
    let mut r = None;
    with_dir(&dir, || {
        let mut w = StreamWriter::create("futex", WriterOptions::default()).unwrap();
        w.set_track(&Track::new(1, Codec::Aac)).unwrap();
        let mut p = Proc::spawn(&dir, "latency", "futex", &[]);
        p.expect("@open", 20);
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        for i in 0..10 {
            std::thread::sleep(Duration::from_millis(50));
            w.push_parts(1, i * 20, 0, true, &now_us().to_le_bytes())
                .unwrap();
        }
        let l = p.expect("@latency_us", 20);
        // The reader waits with a 30 s timeout: finishing quickly means the futex woke it.
        assert!(t0.elapsed() < Duration::from_secs(10));
        let v: Vec<i64> = l
            .split(' ')
            .skip(1)
            .take(2)
            .map(|x| x.parse().unwrap())
            .collect();
        eprintln!("futex wake latency: {l}");
        assert!(v[0] < 200_000, "{l}");
        w.close();
        r = Some(p);
    });
    r.unwrap().finish(10);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn track_table_seqlock_across_processes() {
    let dir = tmpdir("seqlock");
    let mut w = Proc::spawn(&dir, "tracks", "seqlock", &[("RUN_MS", "1500".into())]);
    w.expect("@started", 20);
    let (mut changes, mut checked) = (0, 0);
    with_dir(&dir, || {
        let mut r = StreamReader::open("seqlock", ReaderInfo::default()).unwrap();
        let t0 = Instant::now();
        loop {
            match r.next() {
                ReadEvent::TracksChanged => {
                    changes += 1;
                    for t in r.tracks() {
                        assert!(t.width == t.height && t.width == t.bps, "torn track {t:?}");
                        assert_eq!(t.init.len() as u32, t.width % 2000);
                        assert!(t.init.iter().all(|&b| b == t.width as u8), "torn init");
                        checked += 1;
                    }
                }
                ReadEvent::Ended => break,
                _ => r.wait(Duration::from_millis(50)),
            }
            assert!(t0.elapsed() < Duration::from_secs(30));
        }
    });
    let log = w.finish(20);
    assert!(
        changes > 10 && checked > 10,
        "changes {changes} checked {checked} {log:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn waiter_watches_streams_of_other_processes() {
    let dir = tmpdir("waiter");
    let mut a = Proc::spawn(
        &dir,
        "writer",
        "wa",
        &[("SLEEP_MS", "300".into()), ("COUNT", "20".into())],
    );
    let mut b = Proc::spawn(
        &dir,
        "writer",
        "wb",
        &[("SLEEP_MS", "300".into()), ("COUNT", "20".into())],
    );
    a.expect("@started", 20);
    b.expect("@started", 20);
    with_dir(&dir, || {
        let waiter = Waiter::new();
        waiter.add("wa").unwrap();
        waiter.add("wb").unwrap();
        let mut seen = std::collections::HashSet::new();
        let t0 = Instant::now();
        while seen.len() < 2 && t0.elapsed() < Duration::from_secs(20) {
            for s in waiter.wait(Duration::from_secs(5)) {
                seen.insert(s);
            }
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(waiter.add("nope").is_err());
    });
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_writers_exactly_one_wins() {
    let dir = tmpdir("race");
    let mut ps: Vec<Proc> = (0..4)
        .map(|_| {
            Proc::spawn(
                &dir,
                "writer",
                "race",
                &[("SLEEP_MS", "20".into()), ("COUNT", "100".into())],
            )
        })
        .collect();
    let mut started = 0;
    let mut refused = 0;
    for p in &mut ps {
        let l = p.expect("@", 30);
        if l.starts_with("@started") {
            started += 1;
        } else if l.starts_with("@error") {
            refused += 1;
        }
    }
    assert_eq!((started, refused), (1, 3));
    with_dir(&dir, || assert_eq!(stream_status("race").unwrap().epoch, 1));
    drop(ps);
    let _ = std::fs::remove_dir_all(&dir);
}
