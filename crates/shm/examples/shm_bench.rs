//! Rough throughput numbers: `cargo run --release -p mist-shm --example shm_bench [frames] [size] [readers]`.
//! One writer thread pushes frames; `readers` threads read every frame (same process, so they share
//! page mappings like viewers of one output process do).

use mist_media::{Codec, Track};
use mist_shm::*;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (frames, size, readers) = (
        args.first().copied().unwrap_or(200_000),
        args.get(1).copied().unwrap_or(4096),
        args.get(2).copied().unwrap_or(4),
    );
    // tmpfs as in production (a disk-backed /tmp measures the file system instead).
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("mist-shm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_var("MIST_SHM_DIR", &dir);
    let mut w = StreamWriter::create(
        "bench",
        WriterOptions {
            live: true,
            dvr_ms: 60_000,
        },
    )
    .unwrap();
    w.set_track(&Track::new(1, Codec::H264)).unwrap();
    w.push_parts(1, 0, 0, true, &vec![1; size]).unwrap();
    let handles: Vec<_> = (0..readers)
        .map(|_| {
            std::thread::spawn(move || {
                let mut r = StreamReader::open("bench", ReaderInfo::default()).unwrap();
                let (mut n, mut bytes) = (0usize, 0usize);
                let t0 = Instant::now();
                loop {
                    match r.next() {
                        ReadEvent::Frame(f) => {
                            n += 1;
                            bytes += f.data.len();
                        }
                        ReadEvent::Pending => r.wait(Duration::from_millis(100)),
                        ReadEvent::Ended => break,
                        _ => {}
                    }
                }
                (n, bytes, t0.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let data = vec![7u8; size];
    let t0 = Instant::now();
    for i in 1..frames as i64 {
        w.push_parts(1, i * 10, 0, i % 250 == 0, &data).unwrap();
    }
    let el = t0.elapsed();
    println!(
        "push: {frames} frames of {size} B in {el:?}: {:.0} frames/s, {:.0} MB/s",
        frames as f64 / el.as_secs_f64(),
        (frames * size) as f64 / el.as_secs_f64() / 1e6
    );
    w.close();
    for h in handles {
        let (n, bytes, el) = h.join().unwrap();
        println!(
            "read: {n} frames, {:.0} frames/s, {:.0} MB/s (wall time incl. waiting for the writer)",
            n as f64 / el.as_secs_f64(),
            bytes as f64 / el.as_secs_f64() / 1e6
        );
    }
    let _ = remove_stream("bench");
    let _ = std::fs::remove_dir_all(&dir);
}
