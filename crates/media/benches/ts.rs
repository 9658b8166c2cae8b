//! MPEG-TS demux and mux throughput on a fixture looped in memory.
//!
//! `cargo bench -p mist-media --bench ts [-- FIXTURE [MB]]` (default: h264_aac, 200 MB).
//! Prints MB/s of TS bytes for demuxing and for muxing the demuxed frames.

use std::time::Instant;

use mist_media::mpegts::{DemuxEvent, Demuxer, Muxer, MuxerOptions};
use mist_media::{Frame, Track};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let name = args.first().map_or("h264_aac", |s| s.as_str());
    let megabytes: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let path = format!("{}/tests/fixtures/ts/{name}.ts", env!("CARGO_MANIFEST_DIR"));
    let ts = std::fs::read(&path).expect("fixture");
    let loops = (megabytes << 20) / ts.len() + 1;

    // demux: a fresh demuxer per loop (timestamps would otherwise jump backwards), 64 KiB reads
    let mut frames_total = 0u64;
    let mut tracks: Vec<Track> = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let start = Instant::now();
    for i in 0..loops {
        let mut d = Demuxer::new();
        for c in ts.chunks(65536) {
            d.push(c);
            while let Some(ev) = d.poll() {
                if let DemuxEvent::Frame(f) = ev {
                    frames_total += 1;
                    if i == 0 {
                        frames.push(f);
                    }
                } else if let (DemuxEvent::Track(t), 0) = (ev, i) {
                    tracks.retain(|x| x.id != t.id);
                    tracks.push(t);
                }
            }
        }
        d.flush();
        while let Some(ev) = d.poll() {
            match ev {
                DemuxEvent::Frame(f) => {
                    frames_total += 1;
                    if i == 0 {
                        frames.push(f);
                    }
                }
                DemuxEvent::Track(t) if i == 0 => {
                    tracks.retain(|x| x.id != t.id);
                    tracks.push(t);
                }
                _ => {}
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = (ts.len() * loops) as f64;
    println!(
        "demux {name}: {:.1} MB in {:.3} s = {:.1} MB/s ({:.0} frames/s)",
        bytes / 1e6,
        secs,
        bytes / 1e6 / secs,
        frames_total as f64 / secs
    );

    // mux: the frames of one pass, again and again, into one reused buffer
    tracks.sort_by_key(|t| t.id);
    let mut mux = Muxer::new(&tracks, MuxerOptions::default()).expect("muxer");
    let mut out = Vec::with_capacity(ts.len() * 2);
    let mut written = 0usize;
    let start = Instant::now();
    for _ in 0..loops {
        out.clear();
        mux.start_segment(&mut out);
        for f in &frames {
            mux.write_frame(f, &mut out).expect("mux");
        }
        written += out.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "mux   {name}: {:.1} MB in {:.3} s = {:.1} MB/s ({:.0} frames/s)",
        written as f64 / 1e6,
        secs,
        written as f64 / 1e6 / secs,
        (frames.len() * loops) as f64 / secs
    );
}
