//! Matroska read/write throughput: `cargo run --release -p mist-media --example ebml_bench [MB]`.
//!
//! Writes a synthetic H.264+AAC stream (25 fps, 12 KB video frames, 48 kHz AAC) in live and in
//! finalised mode, then demuxes the result pushed in 64 KB chunks, and prints MB/s for each.

use std::time::Instant;

use bytes::Bytes;
use mist_media::ebml::{Demuxer, MkvEvent, WriteMode, Writer, WriterOptions};
use mist_media::{Codec, Frame, Track};

fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let mut v = Track::new(1, Codec::H264);
    v.width = 1280;
    v.height = 720;
    v.fpks = 25_000;
    v.init = Bytes::from_static(&[1, 0x64, 0, 0x1F, 0xFF, 0xE0, 0]);
    let mut a = Track::new(2, Codec::Aac);
    a.rate = 48000;
    a.channels = 2;
    a.init = Bytes::from_static(&[0x11, 0x90]);
    let tracks = [v, a];

    let vdata = Bytes::from(vec![0x55u8; 12_000]);
    let adata = Bytes::from(vec![0x21u8; 300]);
    let mut frames = Vec::new();
    let mut total = 0usize;
    let mut i = 0i64;
    while total < mb << 20 {
        frames.push(Frame {
            track: 1,
            dts: i * 40,
            pts_offset: 0,
            keyframe: i % 50 == 0,
            data: vdata.clone(),
        });
        total += vdata.len();
        for k in 0..2 {
            frames.push(Frame {
                track: 2,
                dts: i * 40 + k * 20,
                pts_offset: 0,
                keyframe: true,
                data: adata.clone(),
            });
            total += adata.len();
        }
        i += 1;
    }

    let mut out = Vec::new();
    for mode in [WriteMode::Live, WriteMode::Finalised] {
        out = Vec::with_capacity(total + total / 10);
        let t = Instant::now();
        let mut w = Writer::new(
            &tracks,
            WriterOptions {
                mode,
                ..Default::default()
            },
        )
        .unwrap();
        for f in &frames {
            w.write_frame(f, &mut out).unwrap();
        }
        let fin = w.finish();
        out.extend_from_slice(&fin.tail);
        for p in fin.patches {
            out[p.offset as usize..p.offset as usize + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "write {mode:?}: {:.1} MB in {s:.3} s = {:.0} MB/s",
            out.len() as f64 / 1e6,
            out.len() as f64 / 1e6 / s
        );
    }

    let t = Instant::now();
    let mut d = Demuxer::new();
    let mut n = 0usize;
    for c in out.chunks(64 << 10) {
        d.push(c);
        while let Some(ev) = d.poll().unwrap() {
            n += matches!(ev, MkvEvent::Frame(_)) as usize;
        }
    }
    d.finish();
    while let Some(ev) = d.poll().unwrap() {
        n += matches!(ev, MkvEvent::Frame(_)) as usize;
    }
    let s = t.elapsed().as_secs_f64();
    assert_eq!(n, frames.len());
    println!(
        "read (64 KB chunks): {:.1} MB, {n} frames in {s:.3} s = {:.0} MB/s",
        out.len() as f64 / 1e6,
        out.len() as f64 / 1e6 / s
    );
}
