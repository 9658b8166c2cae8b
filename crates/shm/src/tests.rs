//! In-process unit tests (the multi-process ones are in tests/).

use super::*;
use bytes::Bytes;
use mist_media::Codec;
use std::sync::atomic::AtomicBool;

/// All unit tests share one temp directory (the env var is process-wide) and use unique names.
pub(crate) fn setup() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        // Directories of earlier runs whose process is gone.
        if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = n
                    .strip_prefix("mist-shm-unit-")
                    .and_then(|p| p.parse::<u32>().ok())
                {
                    if !seg::pid_alive(pid) {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let d = std::env::temp_dir().join(format!("mist-shm-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::env::set_var("MIST_SHM_DIR", &d);
    });
}

fn video(id: u32) -> Track {
    let mut t = Track::new(id, Codec::H264);
    t.init = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff]);
    t.width = 1280;
    t.height = 720;
    t
}
fn audio(id: u32) -> Track {
    let mut t = Track::new(id, Codec::Aac);
    t.init = Bytes::from_static(&[0x12, 0x10]);
    t.rate = 44100;
    t.channels = 2;
    t
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

fn read_all(r: &mut StreamReader) -> Vec<Frame> {
    let mut out = Vec::new();
    loop {
        match r.next() {
            ReadEvent::Frame(f) => out.push(f),
            ReadEvent::TracksChanged | ReadEvent::Restarted => {}
            ReadEvent::Pending | ReadEvent::Ended => return out,
        }
    }
}

#[test]
fn sanitise_names() {
    assert_eq!(seg::sanitise("live+cam1"), "live+cam1");
    assert_eq!(seg::sanitise("a/b c"), "a_b_c");
    assert_eq!(seg::sanitise("../x"), "_._x");
    assert!(seg::sanitise(&"x".repeat(500)).len() < 120);
    assert_ne!(
        seg::sanitise(&"x".repeat(500)),
        seg::sanitise(&"x".repeat(501))
    );
    assert!(
        belongs("mist-a-meta", "a") && belongs("mist-a-p12", "a") && belongs("mist-a-users", "a")
    );
    assert!(
        !belongs("mist-a-b-meta", "a")
            && !belongs("mist-x-p1-meta", "x")
            && !belongs("mist-a-p", "a")
    );
}

#[test]
fn track_blob_roundtrip_and_corrupt() {
    let mut a = audio(2);
    a.lang = "eng".into();
    let t = vec![video(1), a];
    let b = meta::encode_tracks(&t);
    assert_eq!(meta::decode_tracks(&b).unwrap(), t);
    for cut in 0..b.len() {
        assert!(meta::decode_tracks(&b[..cut]).is_err() || cut == 0);
    }
    let mut bad = b.clone();
    bad[0] = 200;
    assert!(meta::decode_tracks(&bad).is_err());
}

#[test]
fn write_read_roundtrip() {
    setup();
    let name = "unit_roundtrip";
    let mut w = StreamWriter::create(
        name,
        WriterOptions {
            live: true,
            dvr_ms: 60_000,
        },
    )
    .unwrap();
    w.set_track(&video(1)).unwrap();
    w.set_track(&audio(2)).unwrap();
    // Video before its first keyframe is dropped.
    w.push_parts(1, 0, 0, false, b"junk").unwrap();
    for i in 0..100i64 {
        w.push_parts(
            1,
            i * 40,
            80,
            i % 25 == 0,
            &payload(1, i * 40, 1000 + i as usize),
        )
        .unwrap();
        w.push_parts(2, i * 40 + 3, 0, true, &payload(2, i * 40 + 3, 200))
            .unwrap();
    }
    let mut r = StreamReader::open(
        name,
        ReaderInfo {
            connector: "TEST".into(),
            host: "::1".into(),
        },
    )
    .unwrap();
    assert_eq!(r.tracks(), vec![video(1), audio(2)]);
    let frames = read_all(&mut r);
    // Live start: the newest video keyframe (frame 75).
    assert_eq!(frames[0].track, 1);
    assert!(frames[0].keyframe);
    assert_eq!(frames[0].dts, 75 * 40);
    assert_eq!(frames.len(), 50);
    for f in &frames {
        assert_eq!(&f.data[..], &payload(f.track, f.dts, f.data.len())[..]);
    }
    assert_eq!(frames[0].pts_offset, 80);
    // Seek back.
    r.seek_ms(1100);
    let frames = read_all(&mut r);
    assert_eq!(frames[0].dts, 1000);
    assert_eq!(frames.len(), 150);
    assert!(matches!(r.next(), ReadEvent::Pending));
    w.push_parts(1, 4000, 0, false, &payload(1, 4000, 10))
        .unwrap();
    match r.next() {
        ReadEvent::Frame(f) => assert_eq!(f.dts, 4000),
        e => panic!("{e:?}"),
    }
    assert_eq!(r.payload(), &payload(1, 4000, 10)[..]);
    let u = users(name);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].connector, "TEST");
    assert_eq!(u[0].host, "::1");
    assert_eq!(u[0].position_ms, 4000);
    r.report(123, 4);
    assert_eq!(users(name)[0].bytes_down, 123);
    // A second writer is refused while the first lives.
    assert!(matches!(
        StreamWriter::create(name, WriterOptions::default()),
        Err(ShmError::WriterAlive(_, _))
    ));
    w.close();
    assert!(matches!(r.next(), ReadEvent::Ended));
    drop(r);
    assert!(users(name).is_empty());
    let st = stream_status(name).unwrap();
    assert!(st.ended && st.tracks.len() == 2 && st.last_ms == 4000);
    assert!(list_streams().iter().any(|s| s.name == name));
    remove_stream(name).unwrap();
    assert!(matches!(
        StreamReader::open(name, ReaderInfo::default()),
        Err(ShmError::NoStream(_))
    ));
    assert!(!list_streams().iter().any(|s| s.name == name));
}

#[test]
fn limits() {
    setup();
    let name = "unit_limits";
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    assert!(matches!(
        w.push_parts(1, 0, 0, true, b"x"),
        Err(ShmError::UnknownTrack(1))
    ));
    for i in 1..=MAX_TRACKS as u32 {
        w.set_track(&audio(i)).unwrap();
    }
    assert!(matches!(
        w.set_track(&audio(99)),
        Err(ShmError::TooManyTracks)
    ));
    let mut big = audio(1);
    big.init = Bytes::from(vec![0; MAX_INIT + 1]);
    assert!(matches!(w.set_track(&big), Err(ShmError::InitTooLarge(_))));
    assert!(matches!(
        w.push_parts(1, 0, 0, true, &vec![0; MAX_FRAME + 1]),
        Err(ShmError::FrameTooLarge(_))
    ));
    // A frame larger than the default page capacity gets a page of its own.
    let huge = payload(1, 7, 20 << 20);
    w.push_parts(1, 7, 0, true, &huge).unwrap();
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    r.seek_ms(0);
    match r.next() {
        ReadEvent::Frame(f) => assert!(f.data[..] == huge[..]),
        e => panic!("{e:?}"),
    }
    drop(w);
    remove_stream(name).unwrap();
}

#[test]
fn eviction_keeps_mapped_pages_valid() {
    setup();
    let name = "unit_evict";
    let mut w = StreamWriter::create(
        name,
        WriterOptions {
            live: true,
            dvr_ms: 3000,
        },
    )
    .unwrap();
    w.set_track(&video(1)).unwrap();
    w.push_parts(1, 0, 0, true, &payload(1, 0, 5000)).unwrap();
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    let held = match r.next() {
        ReadEvent::Frame(f) => f,
        e => panic!("{e:?}"),
    };
    let page0 = shm_dir().join(seg::page_name(name, 0));
    assert!(page0.exists());
    for i in 1..500i64 {
        w.push_parts(1, i * 40, 0, i % 10 == 0, &payload(1, i * 40, 5000))
            .unwrap();
    }
    assert!(!page0.exists(), "page 0 should be evicted");
    // The held frame still reads correctly from the unlinked page.
    assert_eq!(&held.data[..], &payload(1, 0, 5000)[..]);
    // The reader finishes its mapped page, then jumps to the oldest kept keyframe.
    let frames = read_all(&mut r);
    let st = stream_status(name).unwrap();
    let jump = frames
        .windows(2)
        .find(|p| p[1].dts - p[0].dts > 40)
        .expect("a jump");
    assert!(jump[1].keyframe);
    assert!(
        jump[1].dts >= st.first_ms && jump[1].dts >= 499 * 40 - 3000 - 2000 - 400,
        "{} {}",
        jump[1].dts,
        st.first_ms
    );
    assert_eq!(frames.last().unwrap().dts, 499 * 40);
    for f in &frames {
        assert_eq!(&f.data[..], &payload(1, f.dts, 5000)[..]);
    }
    drop(w);
    remove_stream(name).unwrap();
}

#[test]
fn takeover_in_process() {
    setup();
    let name = "unit_takeover";
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    assert_eq!(w.epoch(), 1);
    w.set_track(&video(1)).unwrap();
    for i in 0..10 {
        w.push_parts(1, i * 40, 0, i == 0, b"abc").unwrap();
    }
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    assert_eq!(read_all(&mut r).len(), 10);
    w.detach(); // publisher gone, stream stays
    assert!(matches!(r.next(), ReadEvent::Pending));
    let mut w2 = StreamWriter::create(name, WriterOptions::default()).unwrap();
    assert_eq!(w2.epoch(), 2);
    assert!(matches!(r.next(), ReadEvent::Restarted));
    w2.set_track(&video(1)).unwrap();
    assert!(matches!(r.next(), ReadEvent::TracksChanged));
    // The new publisher restarts its clock at 0: times continue after the old epoch.
    w2.push_parts(1, 0, 0, true, b"new").unwrap();
    match r.next() {
        ReadEvent::Frame(f) => {
            assert_eq!(&f.data[..], b"new");
            assert!(f.dts > 9 * 40, "{}", f.dts);
        }
        e => panic!("{e:?}"),
    }
    drop(w2);
    remove_stream(name).unwrap();
}

#[test]
fn seqlock_consistent_under_concurrent_writer() {
    setup();
    let name = "unit_seqlock";
    let w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    let meta = w.st.meta.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let m2 = meta.clone();
    let writer = std::thread::spawn(move || {
        let mut i = 0u32;
        while !stop2.load(Relaxed) {
            i = i.wrapping_add(1);
            let tracks: Vec<Track> = (1..=(1 + i % 4))
                .map(|id| {
                    let mut t = video(id);
                    t.width = i;
                    t.height = i;
                    t.fpks = i;
                    t.init = Bytes::from(vec![i as u8; (i % 3000) as usize]);
                    t
                })
                .collect();
            m2.write_tracks(&meta::TrackTable { tracks });
            for _ in 0..500 {
                std::hint::spin_loop(); // a breather, so the reader is not starved outright
            }
        }
        i
    });
    let (mut reads, mut starved) = (0, 0);
    let mut last_gen = 0;
    let deadline = std::time::Instant::now() + Duration::from_millis(700);
    while std::time::Instant::now() < deadline {
        // A writer updating without pause can starve a reader (it then gives up after 500 ms
        // with an error, which real readers retry); what must never happen is a torn result.
        let Ok((t, g)) = meta.read_tracks() else {
            starved += 1;
            continue;
        };
        assert!(g >= last_gen && g % 2 == 0);
        last_gen = g;
        if let Some(first) = t.tracks.first() {
            let i = first.width;
            assert_eq!(t.tracks.len() as u32, 1 + i % 4);
            for tr in &t.tracks {
                assert!(tr.width == i && tr.height == i && tr.fpks == i, "torn read");
                assert_eq!(tr.init.len() as u32, i % 3000);
                assert!(tr.init.iter().all(|&b| b == i as u8), "torn init");
            }
        }
        reads += 1;
    }
    stop.store(true, Relaxed);
    let writes = writer.join().unwrap();
    eprintln!("seqlock: reads {reads} writes {writes} starved {starved}");
    assert!(
        reads > 10 && writes > 10,
        "reads {reads} writes {writes} starved {starved}"
    );
    drop(w);
    remove_stream(name).unwrap();
}

#[test]
fn waiter_wakes_on_push() {
    setup();
    let name = "unit_waiter";
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    w.set_track(&audio(1)).unwrap();
    let waiter = Waiter::new();
    waiter.add(name).unwrap();
    assert!(waiter.wait(Duration::from_millis(1)).is_empty());
    let w2 = waiter.clone();
    let t = std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        let r = w2.wait(Duration::from_secs(10));
        (r, t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    w.push_parts(1, 0, 0, true, b"a").unwrap();
    let (r, el) = t.join().unwrap();
    assert_eq!(r, vec![name.to_string()]);
    assert!(el < Duration::from_secs(5));
    // kick interrupts a wait
    let w3 = waiter.clone();
    let t = std::thread::spawn(move || w3.wait(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(50));
    waiter.kick();
    assert!(t.join().unwrap().is_empty());
    drop(w);
    remove_stream(name).unwrap();
}

#[test]
fn corrupt_meta_is_an_error() {
    setup();
    let p = shm_dir().join(seg::meta_name("unit_corrupt"));
    std::fs::write(&p, vec![0u8; 100]).unwrap();
    assert!(matches!(
        StreamReader::open("unit_corrupt", ReaderInfo::default()),
        Err(ShmError::Corrupt(..))
    ));
    std::fs::write(&p, vec![7u8; META_SIZE]).unwrap();
    assert!(matches!(
        StreamReader::open("unit_corrupt", ReaderInfo::default()),
        Err(ShmError::Corrupt(..))
    ));
    assert!(matches!(
        StreamWriter::create("unit_corrupt", WriterOptions::default()),
        Err(ShmError::Corrupt(..))
    ));
    remove_stream("unit_corrupt").unwrap();
}

#[test]
fn handles_are_send_and_sync() {
    fn is_send<T: Send>() {}
    fn is_sync<T: Sync>() {}
    is_send::<StreamWriter>();
    is_send::<StreamReader>();
    is_sync::<StreamReader>();
    is_send::<Waiter>();
    is_sync::<Waiter>();
    is_send::<StreamBuffer>();
}

#[test]
fn keyframes_and_ended_writer() {
    setup();
    let name = "unit_keys";
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    w.set_track(&video(1)).unwrap();
    w.set_track(&audio(2)).unwrap();
    for i in 0..100i64 {
        w.push_parts(1, i * 40, 0, i % 25 == 0, b"v").unwrap();
        w.push_parts(2, i * 40, 0, true, b"a").unwrap();
    }
    let r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    let k = r.keyframes(1);
    assert_eq!(
        k.iter().map(|k| k.dts).collect::<Vec<_>>(),
        vec![0, 1000, 2000, 3000]
    );
    assert!(k.iter().all(|k| k.frames == 25));
    let a = r.keyframes(2);
    assert!(a.len() >= 4 && a[0].dts == 0, "{a:?}");
    assert_eq!(a.iter().map(|k| k.frames).sum::<u32>(), 100);
    assert!(r.keyframes(9).is_empty());
    // Ended under the writer (buffer or remove_stream): push fails with NoStream.
    remove_stream(name).unwrap();
    assert!(matches!(
        w.push_parts(1, 5000, 0, true, b"v"),
        Err(ShmError::NoStream(_))
    ));
    drop(w);
    drop(r);
    assert!(!shm_dir()
        .read_dir()
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(name)));
}

#[test]
fn corrupt_pages_and_keys_do_not_panic() {
    setup();
    let name = "unit_corrupt_page";
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    w.set_track(&video(1)).unwrap();
    for i in 0..200i64 {
        w.push_parts(1, i * 40, 0, i % 10 == 0, &payload(1, i * 40, 3000))
            .unwrap();
    }
    let page1 = shm_dir().join(seg::page_name(name, 1));
    // Scribble over records of page 1 (not its header), as a buggy or hostile process might.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&page1)
            .unwrap();
        f.seek(SeekFrom::Start(PAGE_HDR as u64 + 16)).unwrap();
        f.write_all(&[0xff; 64]).unwrap();
        f.seek(SeekFrom::Start(PAGE_HDR as u64 + 6000)).unwrap();
        f.write_all(&[0x7f; 4000]).unwrap();
    }
    // Also corrupt key entries of the video track.
    let meta = open_meta(&shm_dir(), name).unwrap();
    meta.seg.u64(KEYS_OFF + 64 + 16).store(u64::MAX, Relaxed); // key 0: absurd page
    meta.seg.u32(KEYS_OFF + 64 + 32 + 24).store(12345, Relaxed); // key 1: odd offset
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    for ms in [-5, 0, 400, 3000, 7000, 100_000] {
        r.seek_ms(ms);
        let frames = read_all(&mut r);
        assert!(!frames.is_empty() || ms >= 0);
    }
    r.seek_ms(0);
    let frames = read_all(&mut r);
    assert!(frames.last().is_some_and(|f| f.dts == 199 * 40));
    // The scribbled records: the rest of page 1 skipped, and said so.
    assert!(
        matches!(
            r.last_error(),
            Some(ShmError::CorruptRecord { page: 1, .. })
        ),
        "{:?}",
        r.last_error()
    );
    // Garbage in a whole page file: skipped with an error noted.
    std::fs::write(
        shm_dir().join(seg::page_name(name, 2)),
        vec![0x55u8; 10_000],
    )
    .unwrap();
    r.seek_ms(0);
    let _ = read_all(&mut r);
    assert!(
        matches!(r.last_error(), Some(ShmError::Corrupt(..))),
        "{:?}",
        r.last_error()
    );
    drop(w);
    remove_stream(name).unwrap();
}

#[test]
fn writer_notices_its_metadata_was_unlinked() {
    setup();
    let name = "unit_unlinked";
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    w.set_track(&audio(1)).unwrap();
    w.push_parts(1, 0, 0, true, b"a").unwrap();
    std::fs::remove_file(shm_dir().join(seg::meta_name(name))).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(matches!(
        w.push_parts(1, 20, 0, true, b"a"),
        Err(ShmError::NoStream(_))
    ));
    drop(w);
    let _ = remove_stream(name);
}

#[test]
fn live_start_without_video_key_uses_other_tracks() {
    setup();
    let name = "unit_nokey";
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    w.set_track(&video(1)).unwrap();
    w.set_track(&audio(2)).unwrap();
    for i in 0..300i64 {
        w.push_parts(2, i * 20, 0, true, b"a").unwrap();
    }
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    let f = read_all(&mut r);
    assert!(
        !f.is_empty() && f[0].dts >= 299 * 20 - 1000,
        "starts near the live edge: {}",
        f[0].dts
    );
    r.seek_ms(2000);
    let f = read_all(&mut r);
    assert!(f[0].dts <= 2000 && f[0].dts > 800, "{}", f[0].dts);
    drop(w);
    remove_stream(name).unwrap();
}

#[test]
fn file_modes() {
    setup();
    use std::os::unix::fs::PermissionsExt;
    let w = StreamWriter::create("unit_mode", WriterOptions::default()).unwrap();
    for n in [seg::meta_name("unit_mode"), seg::users_name("unit_mode")] {
        let m = std::fs::metadata(shm_dir().join(n))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, 0o600);
    }
    assert_eq!(seg::shm_group_for_test("0"), Some(0));
    assert_eq!(seg::shm_group_for_test("root"), Some(0));
    assert_eq!(seg::shm_group_for_test("no-such-group-xyz"), None);
    drop(w);
    remove_stream("unit_mode").unwrap();
}

#[test]
fn buffer_restarts_an_ended_stream() {
    setup();
    let name = "unit_buffer";
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    w.set_track(&audio(1)).unwrap();
    w.push_parts(1, 0, 0, true, b"a").unwrap();
    w.close();
    assert!(stream_status(name).unwrap().ended);
    let b = StreamBuffer::open(
        name,
        WriterOptions {
            live: true,
            dvr_ms: 1234,
        },
        5000,
    )
    .unwrap();
    let st = b.status();
    assert!(!st.ended && st.tracks.is_empty() && st.epoch == 0, "{st:?}");
    assert!(!b.writer_alive());
    let mut w = StreamWriter::create(
        name,
        WriterOptions {
            live: true,
            dvr_ms: 99,
        },
    )
    .unwrap();
    assert!(b.writer_alive());
    w.set_track(&audio(1)).unwrap();
    // DVR from the buffer wins while it is alive.
    assert_eq!(
        open_meta(&shm_dir(), name)
            .unwrap()
            .seg
            .u64(M_DVR)
            .load(Relaxed),
        1234
    );
    assert_eq!(b.viewers(), 0);
    let _r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    assert_eq!(b.viewers(), 1);
    b.end().unwrap();
    assert!(matches!(
        w.push_parts(1, 0, 0, true, b"a"),
        Err(ShmError::NoStream(_))
    ));
    assert!(stream_status(name).is_err());
}

#[test]
fn random_metadata_never_panics() {
    setup();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rounds: u32 = std::env::var("SHM_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    for round in 0..rounds {
        let name = format!("unit_fuzz{round}");
        {
            let mut w = StreamWriter::create(&name, WriterOptions::default()).unwrap();
            w.set_track(&video(1)).unwrap();
            w.set_track(&audio(2)).unwrap();
            for i in 0..60i64 {
                w.push_parts(1, i * 40, 0, i % 10 == 0, b"vvvv").unwrap();
                w.push_parts(2, i * 40, 0, true, b"aa").unwrap();
            }
            w.detach();
        }
        let meta = open_meta(&shm_dir(), &name).unwrap();
        // Scribble random words over the header (keeping magic/version/size), the track table,
        // the page ring and the key rings.
        for _ in 0..200 {
            let region = rnd() % 4;
            let off = match region {
                0 => 16 + (rnd() as usize % (META_HEADER - 16)),
                1 => TRACK_BLOB + (rnd() as usize % 4096),
                2 => PAGE_RING_OFF + (rnd() as usize % 4096),
                _ => KEYS_OFF + (rnd() as usize % (2 * KEY_TRACK_SIZE)),
            } & !7;
            let v = match rnd() % 4 {
                0 => 0,
                1 => u64::MAX,
                2 => rnd() % 8,
                _ => rnd(),
            };
            if off != M_WRITER_PID - 4 && off != M_WRITER_PID {
                meta.seg.u64(off).store(v, Relaxed);
            }
        }
        meta.seg.u32(M_WRITER_PID).store(0, Relaxed);
        meta.seg.u64(M_TRACKS_GEN).store(rnd() & !1, Relaxed);
        // And over the first page, header included.
        if let Ok(p) = page::Page::open_rw(&shm_dir().join(seg::page_name(&name, 0))) {
            for _ in 0..20 {
                let off = (rnd() as usize % 2048) & !7;
                let v = if rnd() % 2 == 0 { rnd() } else { rnd() % 4096 };
                if off != P_MAGIC && off != P_ID && off != P_NONCE {
                    p.seg.u64(off).store(v, Relaxed);
                }
            }
        }
        if let Ok(mut r) = StreamReader::open(&name, ReaderInfo::default()) {
            for ms in [0, 1000, -1, i64::MAX, i64::MIN] {
                r.seek_ms(ms);
                for _ in 0..200 {
                    if matches!(r.next(), ReadEvent::Pending | ReadEvent::Ended) {
                        break;
                    }
                }
            }
            r.seek_live();
            let _ = r.next();
            let _ = r.keyframes(1);
        }
        let _ = stream_status(&name);
        let _ = list_streams();
        if let Ok(mut w) = StreamWriter::create(&name, WriterOptions::default()) {
            let _ = w.set_track(&video(1));
            for i in 0..30i64 {
                let _ = w.push_parts(1, i * 40, 0, i % 10 == 0, b"v");
            }
        }
        let _ = remove_stream(&name);
    }
}

#[test]
fn odd_generation_does_not_block_readers() {
    setup();
    let name = "unit_oddgen";
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    w.set_track(&audio(1)).unwrap();
    w.push_parts(1, 0, 0, true, b"a").unwrap();
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    // Simulate a writer that died inside the seqlock.
    w.detach();
    let meta = open_meta(&shm_dir(), name).unwrap();
    meta.seg.u64(M_TRACKS_GEN).fetch_add(1, Relaxed);
    let t0 = std::time::Instant::now();
    let mut r2 = StreamReader::open(name, ReaderInfo::default()).unwrap();
    assert!(r2.tracks().is_empty() && r2.last_error().is_some());
    assert!(matches!(r2.next(), ReadEvent::Frame(_)));
    assert!(matches!(r.next(), ReadEvent::Frame(_)));
    assert!(matches!(r.next(), ReadEvent::Pending));
    assert!(t0.elapsed() < Duration::from_millis(200));
    // The next writer repairs it.
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    assert!(matches!(r.next(), ReadEvent::Restarted));
    w.set_track(&audio(2)).unwrap();
    assert!(matches!(r.next(), ReadEvent::TracksChanged));
    assert_eq!(r.tracks().len(), 1);
    drop(w);
    remove_stream(name).unwrap();
}

#[test]
fn vod_complete_ends_readers_at_the_end() {
    setup();
    let name = "unit_vod_complete";
    let mut w = StreamWriter::create(
        name,
        WriterOptions {
            live: false,
            dvr_ms: 1000,
        },
    )
    .unwrap();
    w.set_track(&video(1)).unwrap();
    // 40 s of 1 s GOPs: far past the DVR window, which VoD ignores.
    for i in 0..400 {
        let dts = i * 100;
        w.push_parts(1, dts, 0, i % 10 == 0, &payload(1, dts, 300))
            .unwrap();
    }
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    assert!(!r.is_live() && !r.is_complete());
    // 300 bytes every 100 ms: measured over 5 s windows while loading.
    assert_eq!(r.tracks_with_rates()[0].bps, 3000);
    assert_eq!(r.tracks()[0].bps, 0);
    // Before completion the end of the data is Pending (the input is still loading).
    let first = read_all(&mut r);
    assert_eq!(first.len(), 400);
    assert_eq!(first[0].dts, 0);
    assert!(matches!(r.next(), ReadEvent::Pending));
    w.complete();
    assert!(r.is_complete());
    assert!(matches!(r.next(), ReadEvent::Ended));
    assert_eq!(r.range_ms(), (0, 39_900));
    // Complete: the whole-stream average (400 × 300 bytes over 39.9 s).
    assert_eq!(r.tracks_with_rates()[0].bps, 120_000 * 1000 / 39_900);
    assert_eq!(stream_status(name).unwrap().tracks[0].bps, 3007);
    // A new reader starts at the first frame and also ends after the last.
    let mut r2 = StreamReader::open(name, ReaderInfo::default()).unwrap();
    let all = read_all(&mut r2);
    assert_eq!(all.len(), 400);
    assert!(matches!(r2.next(), ReadEvent::Ended));
    assert_eq!(r2.keyframes(1).len(), 40);
    assert!(stream_status(name).unwrap().complete);
    drop(w);
    remove_stream(name).unwrap();
}

#[test]
fn vod_reader_starts_at_the_first_frame_of_any_track() {
    setup();
    let name = "unit_vod_first_frame";
    let mut w = StreamWriter::create(
        name,
        WriterOptions {
            live: false,
            dvr_ms: 0,
        },
    )
    .unwrap();
    w.set_track(&video(1)).unwrap();
    w.set_track(&audio(2)).unwrap();
    // Audio (Opus codec delay) decodes before the first video keyframe.
    w.push_parts(2, 0, 0, true, &payload(2, 0, 100)).unwrap();
    w.push_parts(1, 7, 0, true, &payload(1, 7, 300)).unwrap();
    w.push_parts(2, 20, 0, true, &payload(2, 20, 100)).unwrap();
    w.complete();
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    let all = read_all(&mut r);
    assert_eq!(
        all.iter().map(|f| (f.track, f.dts)).collect::<Vec<_>>(),
        vec![(2, 0), (1, 7), (2, 20)]
    );
    assert!(matches!(r.next(), ReadEvent::Ended));
    drop(w);
    remove_stream(name).unwrap();
}

fn vod_writer(name: &str) -> StreamWriter {
    StreamWriter::create(
        name,
        WriterOptions {
            live: false,
            dvr_ms: 0,
        },
    )
    .unwrap()
}

/// A source file of `n` frames of 1000 + 37 i bytes each (frame i at offset `offs[i]`).
fn source_file(name: &str, n: usize) -> (PathBuf, Vec<(u64, Vec<u8>)>) {
    let path = shm_dir().join(format!("{name}.src"));
    let mut all = Vec::new();
    let mut frames = Vec::new();
    for i in 0..n {
        let data = payload(1, i as i64 * 40, 1000 + 37 * i);
        frames.push((all.len() as u64 + 5, data.clone()));
        all.extend_from_slice(&[0xee; 5]);
        all.extend_from_slice(&data);
    }
    std::fs::write(&path, &all).unwrap();
    (path, frames)
}

#[test]
fn external_records_round_trip_mixed_with_inline() {
    setup();
    let name = "unit_external";
    let (path, src) = source_file(name, 300);
    let mut w = vod_writer(name);
    w.set_track(&video(1)).unwrap();
    w.set_track(&audio(2)).unwrap();
    // Without a source file, external records are refused.
    assert!(matches!(
        w.push_external(1, 0, 0, true, 0, 10),
        Err(ShmError::SourcePath(_))
    ));
    w.set_source_file(&path).unwrap();
    let mut want = Vec::new();
    for (i, (off, data)) in src.iter().enumerate() {
        let dts = i as i64 * 40;
        let key = i % 25 == 0;
        w.push_external(1, dts, 80, key, *off, data.len() as u32)
            .unwrap();
        want.push((1u32, dts, 80, key, data.clone()));
        // Inline audio frames between the external video ones.
        let a = payload(2, dts, 200 + i);
        w.push_parts(2, dts + 1, 0, true, &a).unwrap();
        want.push((2, dts + 1, 0, true, a));
    }
    assert!(matches!(
        w.push_external(1, 20_000, 0, false, 0, (MAX_FRAME + 1) as u32),
        Err(ShmError::FrameTooLarge(_))
    ));
    w.complete();
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    let got: Vec<_> = read_all(&mut r)
        .into_iter()
        .map(|f| (f.track, f.dts, f.pts_offset, f.keyframe, f.data.to_vec()))
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "frames differ");
    assert!(r.last_error().is_none(), "{:?}", r.last_error());
    // Rates count external payloads as well.
    let total: usize = want.iter().map(|f| f.4.len()).sum();
    let st = stream_status(name).unwrap();
    assert!(st.tracks[0].bps > 0);
    assert_eq!(
        meta_bytes(name),
        total as u64,
        "payload bytes pushed count external ones"
    );
    // Records without the payloads: offsets of external ones, bytes of inline ones.
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    let mut n = 0;
    loop {
        match r.next_record() {
            RecordEvent::Record(rec) => {
                let w = &want[n];
                assert_eq!((rec.track, rec.dts, rec.keyframe), (w.0, w.1, w.3));
                match rec.payload {
                    Payload::External { offset, len } => {
                        assert_eq!(rec.track, 1);
                        assert_eq!(offset, src[n / 2].0);
                        assert_eq!(len as usize, w.4.len());
                        let f = r.source_file().unwrap();
                        assert_eq!(f.read(offset, len as usize).unwrap(), w.4);
                    }
                    Payload::Inline(b) => {
                        assert_eq!(rec.track, 2);
                        assert_eq!(b, w.4);
                    }
                }
                n += 1;
            }
            RecordEvent::Event(ReadEvent::Ended) => break,
            RecordEvent::Event(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(n, want.len());
    // The pages hold records, not the external payloads.
    let pages: u64 = std::fs::read_dir(shm_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("mist-{name}-p"))
        })
        .map(|e| {
            use std::os::unix::fs::MetadataExt;
            e.metadata().unwrap().blocks() * 512
        })
        .sum();
    assert!(pages < 1 << 20, "{pages} bytes of pages");
    drop(w);
    remove_stream(name).unwrap();
    let _ = std::fs::remove_file(path);
}

fn meta_bytes(name: &str) -> u64 {
    let m = open_meta(&shm_dir(), name).unwrap();
    m.seg.u64(M_BYTES).load(Relaxed)
}

#[test]
fn truncated_or_missing_source_file_skips_frames() {
    setup();
    let name = "unit_external_trunc";
    let (path, src) = source_file(name, 100);
    let mut w = vod_writer(name);
    w.set_track(&video(1)).unwrap();
    w.set_source_file(&path).unwrap();
    for (i, (off, data)) in src.iter().enumerate() {
        w.push_external(1, i as i64 * 40, 0, i % 10 == 0, *off, data.len() as u32)
            .unwrap();
    }
    w.complete();
    // Cut the file in the middle of frame 60: frames 60.. are skipped, with an error.
    let cut = src[60].0 + 10;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    let got = read_all(&mut r);
    assert_eq!(got.len(), 60);
    for (f, (_, d)) in got.iter().zip(&src) {
        assert_eq!(&f.data[..], &d[..]);
    }
    assert!(matches!(r.next(), ReadEvent::Ended));
    assert!(
        matches!(r.last_error(), Some(ShmError::PayloadUnreadable { .. })),
        "{:?}",
        r.last_error()
    );
    // A missing file: every frame skipped, no panic.
    std::fs::remove_file(&path).unwrap();
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    assert!(read_all(&mut r).is_empty());
    assert!(
        matches!(r.last_error(), Some(ShmError::PayloadUnreadable { .. })),
        "{:?}",
        r.last_error()
    );
    assert!(r.source_file().is_err());
    // A different file under the same name is not read (records point into the old one).
    std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
    let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
    assert!(read_all(&mut r).is_empty());
    drop(w);
    remove_stream(name).unwrap();
    let _ = std::fs::remove_file(path);
}

/// A process that is not a child of this one: a child of a `sh` we start (the pair is killed on
/// drop).
struct Stranger(std::process::Child, u32);

impl Stranger {
    fn start() -> Stranger {
        use std::io::BufRead;
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sleep 60 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(sh.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid = line.trim().parse().unwrap();
        Stranger(sh, pid)
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the sleep we started.
        unsafe { libc::kill(self.1 as i32, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// A source path in shared memory makes readers open a file, so it is honoured only for a VoD
/// stream whose writer this process trusts (under a controller: a child of that controller), and
/// only if the file has the device and inode the writer recorded. Neither a live stream nor a
/// writer started by someone else can make a reader open a path.
#[test]
fn source_file_is_honoured_only_for_trusted_vod_writers() {
    setup();
    let name = "unit_src_trust";
    let (path, src) = source_file(name, 10);
    let mut w = vod_writer(name);
    w.set_track(&video(1)).unwrap();
    w.set_source_file(&path).unwrap();
    for (i, (off, data)) in src.iter().enumerate() {
        w.push_external(1, i as i64 * 40, 0, i == 0, *off, data.len() as u32)
            .unwrap();
    }
    w.complete();
    let meta = open_meta(&shm_dir(), name).unwrap();
    // Our own writer: honoured, with or without a controller.
    assert!(source::open_source_as(&meta, None).is_ok());
    assert!(source::open_source_as(&meta, Some(1)).is_ok());
    // The same file under another device number: refused, not opened.
    let dev = meta.seg.u64(M_SRC_DEV).load(Relaxed);
    meta.seg.u64(M_SRC_DEV).store(dev ^ 1, Relaxed);
    assert!(
        matches!(
            source::open_source_as(&meta, None),
            Err(SourceError::Replaced(_))
        ),
        "a device mismatch was accepted"
    );
    meta.seg.u64(M_SRC_DEV).store(dev, Relaxed);
    // A writer the controller did not start (a child of another process): refused under a
    // controller, honoured by a tool run by hand (no controller; same uid as the writer).
    let stranger = Stranger::start();
    let pid = meta.seg.u32(M_WRITER_PID).load(Relaxed);
    meta.seg.u32(M_WRITER_PID).store(stranger.1, Relaxed);
    for controller in [Some(u32::MAX - 1), Some(std::process::id())] {
        let e = source::open_source_as(&meta, controller).err();
        assert!(
            matches!(e, Some(SourceError::Untrusted { .. })),
            "writer {} honoured under {controller:?}: {e:?}",
            stranger.1
        );
    }
    assert!(source::open_source_as(&meta, None).is_ok());
    // Under the controller that is its parent, it is honoured.
    assert!(source::open_source_as(&meta, Some(stranger.0.id())).is_ok());
    // A writer that is gone: refused, controller or not.
    drop(stranger);
    for controller in [None, Some(std::process::id())] {
        let e = source::open_source_as(&meta, controller).err();
        assert!(matches!(e, Some(SourceError::Untrusted { .. })), "{e:?}");
    }
    meta.seg.u32(M_WRITER_PID).store(pid, Relaxed);
    // A child of the controller is trusted; of another process not.
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    assert!(source::writer_trusted(child.id(), Some(std::process::id())).is_ok());
    assert!(source::writer_trusted(child.id(), Some(u32::MAX - 1)).is_err());
    let _ = child.kill();
    let _ = child.wait();
    // A live stream names no source file, whoever writes it.
    meta.seg.u32(M_LIVE).store(1, Relaxed);
    let e = source::open_source_as(&meta, None).err();
    assert!(matches!(e, Some(SourceError::Untrusted { .. })), "{e:?}");
    meta.seg.u32(M_LIVE).store(0, Relaxed);
    drop(meta);
    drop(w);
    remove_stream(name).unwrap();
    let _ = std::fs::remove_file(path);
}

/// A segment file owned by another user (planted in the shared directory) is refused, never
/// mapped: whoever owns it could change what we read at any time.
#[test]
fn foreign_owned_segment_is_refused() {
    setup();
    let dir = shm_dir();
    let path = dir.join("foreign-seg-test");
    let _ = std::fs::remove_file(&path);
    let seg = seg::Seg::create(&path, 8192).unwrap();
    drop(seg);
    assert!(seg::Seg::open(&path, 4096, false).is_ok());
    // The sandbox runs as root: hand the file to `nobody`. As another user, chown is refused;
    // the test then cannot create the situation and says so loudly.
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
    assert_eq!(
        r,
        0,
        "chown to nobody failed (run as root): {}",
        std::io::Error::last_os_error()
    );
    let err = seg::Seg::open(&path, 4096, false)
        .err()
        .expect("foreign file was opened");
    assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    // A whole stream whose metadata file another user planted (a valid copy of a real one): no
    // status, no reader.
    let mut w = StreamWriter::create("foreign-meta", WriterOptions::default()).unwrap();
    w.set_track(&video(1)).unwrap();
    let meta = dir.join(seg::meta_name("foreign-planted"));
    std::fs::copy(dir.join(seg::meta_name("foreign-meta")), &meta).unwrap();
    assert!(stream_status("foreign-planted").is_ok());
    std::fs::remove_file(&meta).unwrap();
    std::fs::copy(dir.join(seg::meta_name("foreign-meta")), &meta).unwrap();
    let c = std::ffi::CString::new(meta.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    assert!(stream_status("foreign-planted").is_err());
    assert!(StreamReader::open("foreign-planted", ReaderInfo::default()).is_err());
    let _ = std::fs::remove_file(&meta);
    let _ = std::fs::remove_file(&path);
}

/// A mapped segment truncated under a reader: reading past the new end gives zeros, counted by
/// `truncation_faults`, instead of killing the process with SIGBUS.
#[test]
fn truncated_mapping_does_not_sigbus() {
    setup();
    let path = shm_dir().join("truncated-seg-test");
    let _ = std::fs::remove_file(&path);
    let w = seg::Seg::create(&path, 65536).unwrap();
    w.u64(40960)
        .store(0x1234_5678, std::sync::atomic::Ordering::Relaxed);
    let r = seg::Seg::open(&path, 4096, false).unwrap();
    assert_eq!(
        r.u64(40960).load(std::sync::atomic::Ordering::Relaxed),
        0x1234_5678
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let before = truncation_faults();
    assert_eq!(r.u64(49152).load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(r.u64(40960).load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(truncation_faults() > before);
    drop(r);
    drop(w);
    let _ = std::fs::remove_file(&path);
}

/// Frozen timestamps never leave the DVR window in time; the byte cap still drops the oldest
/// pages, so a publisher cannot pin the whole page ring in shared memory.
#[test]
fn dvr_bytes_are_capped_with_frozen_timestamps() {
    setup();
    let name = "dvr-frozen";
    let mut w = StreamWriter::create(
        name,
        WriterOptions {
            live: true,
            dvr_ms: 50_000,
        },
    )
    .unwrap();
    w.set_max_dvr_bytes(10 << 20);
    w.set_track(&video(1)).unwrap();
    let frame = vec![7u8; 1 << 20];
    for _ in 0..100 {
        w.push_parts(1, 1000, 0, true, &frame).unwrap();
    }
    let pages = std::fs::read_dir(shm_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!("mist-{name}-p"))
        })
        .count();
    // 100 MiB pushed; at most the cap (10 MiB) behind the current page plus that page (< 16 MiB)
    // are kept: pages of 4-5 MiB, so a handful.
    assert!(pages <= 5, "{pages} page files kept");
    let st = stream_status(name).unwrap();
    assert!(!st.ended);
    w.close();
    let _ = remove_stream(name);
}

/// The stream's own DVR byte cap (`dvr_bytes`, stored by its buffer process) applies to a writer
/// in another process whatever that writer's own cap says; 0 there means no cap at all.
#[test]
fn stream_dvr_byte_cap_from_the_buffer_wins() {
    setup();
    let count_pages = |name: &str| {
        std::fs::read_dir(shm_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&format!("mist-{name}-p"))
            })
            .count()
    };
    let frame = vec![7u8; 1 << 20];
    for (name, stream_cap, pages_at_most, pages_at_least) in [
        ("dvr-buf-cap", 16u64 << 20, 5usize, 3usize),
        ("dvr-buf-none", 0, usize::MAX, 12),
    ] {
        let b = StreamBuffer::open(
            name,
            WriterOptions {
                live: true,
                dvr_ms: 50_000,
            },
            5000,
        )
        .unwrap();
        b.set_max_dvr_bytes(stream_cap);
        let mut w = StreamWriter::create(
            name,
            WriterOptions {
                live: true,
                dvr_ms: 50_000,
            },
        )
        .unwrap();
        // The writer's own cap (1 MiB) is overridden by the stream's. Pages close at 4 MiB: a
        // 16 MiB cap keeps 3 or 4 of them, 1 MiB would keep the current one only, none all 16.
        w.set_max_dvr_bytes(1 << 20);
        w.set_track(&video(1)).unwrap();
        for _ in 0..64 {
            w.push_parts(1, 1000, 0, true, &frame).unwrap();
        }
        assert_eq!(
            w.st.dvr_bytes_cap(),
            if stream_cap == 0 {
                u64::MAX
            } else {
                stream_cap
            }
        );
        let pages = count_pages(name);
        assert!(
            pages <= pages_at_most && pages >= pages_at_least,
            "{name}: {pages} page files kept"
        );
        drop(w);
        b.end().unwrap();
        let _ = remove_stream(name);
    }
}

/// The byte cap must be inert for a short stream far below it (issue 10: with a 1 GiB default,
/// an RTMP push of a few MiB was suspected of losing its pages). A stream shaped like that push
/// (25 fps video keyed every 2 s, audio, several pages) under a 1 GiB cap keeps every page; a
/// reader from the start and a live reader get every frame, starting on a video keyframe.
/// With a cap below one page, the page being written is never dropped and a reader that follows
/// the stream still gets every frame of it.
#[test]
fn dvr_byte_cap_is_inert_below_the_cap_and_never_drops_the_current_page() {
    setup();
    for (name, cap) in [
        ("dvr-cap-default", writer::DEFAULT_MAX_DVR_BYTES),
        ("dvr-cap-tiny", 1u64),
    ] {
        let mut w = StreamWriter::create(
            name,
            WriterOptions {
                live: true,
                dvr_ms: 50_000,
            },
        )
        .unwrap();
        w.set_max_dvr_bytes(cap);
        w.set_track(&video(1)).unwrap();
        w.set_track(&audio(2)).unwrap();
        let mut live = StreamReader::open(name, ReaderInfo::default()).unwrap();
        live.seek_live();
        let mut got = Vec::new();
        let mut pushed = 0usize;
        // 12 s: 300 video frames of 20 KiB, 6 keyframes, audio every 23 ms.
        for i in 0..300i64 {
            let dts = i * 40;
            w.push_parts(1, dts, 0, i % 50 == 0, &payload(1, dts, 20 << 10))
                .unwrap();
            w.push_parts(2, dts + 1, 0, true, &payload(2, dts + 1, 300))
                .unwrap();
            pushed += 2;
            got.extend(read_all(&mut live));
        }
        assert_eq!(got.len(), pushed, "{name}: the live reader lost frames");
        assert!(got[0].keyframe && got[0].track == 1, "{name}");
        let cur = w.st.meta.cur_page().unwrap();
        assert!(cur >= 5, "{name}: only {cur} pages");
        let first = w.st.meta.first_page();
        if cap == writer::DEFAULT_MAX_DVR_BYTES {
            assert_eq!(first, 0, "{name}: pages dropped under a 1 GiB cap");
            let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
            r.seek_ms(0);
            let all = read_all(&mut r);
            assert_eq!(all.len(), pushed, "{name}");
            assert!(all[0].keyframe && all[0].dts == 0, "{name}");
        } else {
            // Only the page being written is kept, and it starts on a video key.
            assert_eq!(first, cur, "{name}");
            assert!(shm_dir().join(seg::page_name(name, cur)).exists());
            let mut r = StreamReader::open(name, ReaderInfo::default()).unwrap();
            r.seek_ms(0);
            let all = read_all(&mut r);
            assert!(!all.is_empty(), "{name}");
            assert!(all[0].keyframe && all[0].track == 1, "{name}: {:?}", all[0]);
        }
        w.close();
        let _ = remove_stream(name);
    }
}

#[test]
fn sessions_requests_and_connections_add_up_in_one_row() {
    use sessions::*;
    setup();
    let k = SessionKey {
        sid: "abc".into(),
        stream: "live".into(),
        connector: "HLS".into(),
        host: "::1".into(),
        token: "t".repeat(200),
    };
    hit(&k, 10, 1000);
    hit(&k, 10, 2000);
    let c = conn_open(&k);
    conn_bytes(c, 5, 500);
    let r: Vec<SessionRow> = rows().into_iter().filter(|r| r.sid == "abc").collect();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].bytes_down, r[0].bytes_up, r[0].conns), (25, 3500, 1));
    assert_eq!(r[0].token.len(), 128, "token truncated to its capacity");
    assert_eq!(r[0].connector, "HLS");
    assert_eq!(conn_session(c).as_deref(), Some("abc"));
    conn_close(c);
    let r = rows().into_iter().find(|r| r.sid == "abc").unwrap();
    assert_eq!((r.bytes_up, r.conns), (3500, 0));
    assert_eq!(invalidate("live"), 1);
    assert_eq!(kill("abc"), 1);
    let a = tick();
    assert_eq!(a.killed, vec!["abc".to_string()]);
    assert_eq!(a.invalidated, vec!["abc".to_string()]);
    assert!(tick().invalidated.is_empty(), "reported once");
}

#[test]
fn stream_cache_keeps_mappings_and_follows_replaced_streams() {
    setup();
    let name = "unit_stream_cache";
    let file: std::ffi::OsString = seg::meta_name(name).into();
    let mut c = StreamCache::new();
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    w.set_track(&video(1)).unwrap();
    w.push_parts(1, 0, 0, true, b"abc").unwrap();
    let mut r = StreamReader::open(
        name,
        ReaderInfo {
            connector: "TEST".into(),
            host: "::2".into(),
        },
    )
    .unwrap();
    let find = |l: Vec<StreamStatus>| l.into_iter().find(|s| s.name == name);
    let st = find(c.list_streams()).unwrap();
    assert!(st.writer_alive && !st.ended);
    let codecs = |st: &StreamStatus| st.tracks.iter().map(|t| t.codec).collect::<Vec<_>>();
    assert_eq!(codecs(&st), vec![Codec::H264]);
    let first = c.metas.get(&file).cloned().unwrap();
    // Nothing replaced: the same mapping answers, and it sees new data.
    w.push_parts(1, 40, 0, false, b"def").unwrap();
    let st = find(c.list_streams()).unwrap();
    assert!(Arc::ptr_eq(&first, c.metas.get(&file).unwrap()));
    assert_eq!(st.last_ms, find(list_streams()).unwrap().last_ms);
    assert_eq!(st.last_ms, 40);
    let u = c.users(name);
    assert_eq!((u.len(), u[0].host.as_str()), (1, "::2"));
    let users_file = seg::users_name(name);
    let table = c.users.get(&users_file).cloned().unwrap();
    r.report(77, 1);
    assert_eq!(c.users(name)[0].bytes_down, 77);
    assert!(Arc::ptr_eq(&table, c.users.get(&users_file).unwrap()));
    // Removed: gone from the list, mappings dropped.
    drop(r);
    w.close();
    remove_stream(name).unwrap();
    assert!(find(c.list_streams()).is_none());
    assert!(!c.metas.contains_key(&file) && !c.users.contains_key(&users_file));
    assert!(c.users(name).is_empty());
    drop((first, table));
    // Created again (new files): the new stream is read, not the old mapping.
    let mut w = StreamWriter::create(name, WriterOptions::default()).unwrap();
    w.set_track(&audio(2)).unwrap();
    let st = find(c.list_streams()).unwrap();
    assert_eq!(codecs(&st), vec![Codec::Aac]);
    assert!(!st.ended);
    w.close();
    remove_stream(name).unwrap();
    assert!(find(c.list_streams()).is_none());
}
