//! MP4 read/write throughput: `cargo run --release -p mist-media --example mp4_bench [seconds]`.
//!
//! Builds a long file in memory from the frames of the H.264+AAC fixture repeated (default 600 s of
//! media), then times: progressive write (moov at the end), moov-first header, fragmented write
//! (one fragment per second), progressive read (moov parse + every sample through the sans-IO
//! reader), fragmented read. Prints MB/s of payload and the sample index size.

use std::time::Instant;

use mist_media::mp4::{read_all, FragmentOptions, FragmentWriter, Mp4Reader, Mp4Writer, Need};
use mist_media::Frame;

fn main() {
    let secs: i64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mp4/h264_aac.mp4"
    );
    let (tracks, base) = read_all(&std::fs::read(fixture).unwrap()).unwrap();
    let span = 2100i64;
    let mut frames: Vec<Frame> = Vec::new();
    for k in 0..secs * 1000 / span {
        frames.extend(base.iter().map(|f| Frame {
            dts: f.dts + k * span,
            ..f.clone()
        }));
    }
    let payload: u64 = frames.iter().map(|f| f.data.len() as u64).sum();
    let mb = payload as f64 / 1e6;
    println!(
        "{} frames, {:.1} MB payload, {} s of media",
        frames.len(),
        mb,
        secs
    );

    let t = Instant::now();
    let mut w = Mp4Writer::new(tracks.clone()).unwrap();
    let mut file = w.start();
    file.reserve(payload as usize + (1 << 20));
    for f in &frames {
        w.add(f).unwrap();
        file.extend_from_slice(&f.data);
    }
    let t_add = t.elapsed().as_secs_f64();
    let (moov, patch) = w.finish().unwrap();
    file.extend_from_slice(&moov);
    let at = patch.offset as usize;
    file[at..at + 8].copy_from_slice(&patch.bytes);
    let dt = t.elapsed().as_secs_f64();
    println!(
        "write progressive (moov at end): {:8.0} MB/s  (moov {} KB; {:.0} ns/sample to index+copy, {:.2} ms to build moov)",
        mb / dt,
        moov.len() / 1024,
        t_add * 1e9 / frames.len() as f64,
        (dt - t_add) * 1e3
    );

    let t = Instant::now();
    let head = w.header_moov_first().unwrap();
    println!(
        "moov-first header:               {:8.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(head);

    let t = Instant::now();
    let mut fw = FragmentWriter::new(
        tracks.clone(),
        FragmentOptions {
            styp: false,
            time_offset_ms: 100,
        },
    )
    .unwrap();
    let mut frag = fw.init_segment().unwrap();
    let mut seg = Vec::new();
    let mut next = 1000;
    for f in &frames {
        if f.track == 1 && f.keyframe && f.dts >= next && !seg.is_empty() {
            frag.extend(fw.media_segment(&seg, Some(f.dts)).unwrap());
            seg.clear();
            next = f.dts + 1000;
        }
        seg.push(f.clone());
    }
    frag.extend(fw.media_segment(&seg, None).unwrap());
    let dt = t.elapsed().as_secs_f64();
    println!("write fragmented (1 s fragments): {:7.0} MB/s", mb / dt);

    let t = Instant::now();
    let mut r = Mp4Reader::new(file.len() as u64);
    let mut n = 0usize;
    let mut moov_at = None;
    while let Need::Read { offset, len } = r.need().unwrap() {
        let f = r
            .feed(offset, &file[offset as usize..(offset + len) as usize])
            .unwrap();
        if moov_at.is_none() && r.has_moov() {
            moov_at = Some(t.elapsed().as_secs_f64());
        }
        n += f.is_some() as usize;
    }
    let dt = t.elapsed().as_secs_f64();
    assert_eq!(n, frames.len());
    let idx: usize = r
        .movie()
        .unwrap()
        .tracks
        .iter()
        .map(|t| t.table.heap_bytes())
        .sum();
    println!(
        "read progressive:                {:8.0} MB/s  (moov parse {:.2} ms, index {} KB = {:.1} B/sample)",
        mb / dt,
        moov_at.unwrap() * 1e3,
        idx / 1024,
        idx as f64 / n as f64
    );

    let t = Instant::now();
    let (_, ff) = read_all(&frag).unwrap();
    let dt = t.elapsed().as_secs_f64();
    assert_eq!(ff.len(), frames.len());
    println!("read fragmented:                 {:8.0} MB/s", mb / dt);
}
