//! MPEG-TS demux/mux tests against ffmpeg-made fixtures (tests/fixtures/ts, see its README.md).
//!
//! The demux comparison uses the ffprobe packet lists captured into `X.csv` when the fixtures were
//! made, so it needs no ffprobe at run time. The mux round-trip and segment tests run
//! `ffprobe`/`ffmpeg` on our output; they print a notice and pass when those are not installed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use mist_media::mpegts::{DemuxEvent, Demuxer};
use mist_media::{Codec, Frame, Track};

fn fixture(name: &str) -> (Vec<u8>, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ts");
    let ts = std::fs::read(dir.join(format!("{name}.ts"))).unwrap();
    let csv = std::fs::read_to_string(dir.join(format!("{name}.csv"))).unwrap();
    (ts, csv)
}

struct Demuxed {
    tracks: BTreeMap<u32, Track>,
    frames: Vec<Frame>,
    stats: mist_media::mpegts::DemuxStats,
}

fn demux(data: &[u8], chunk: usize) -> Demuxed {
    let mut d = Demuxer::new();
    let mut tracks = BTreeMap::new();
    let mut frames = Vec::new();
    let mut take = |d: &mut Demuxer| {
        while let Some(ev) = d.poll() {
            match ev {
                DemuxEvent::Track(t) => {
                    tracks.insert(t.id, t);
                }
                DemuxEvent::Frame(f) => {
                    assert!(tracks.contains_key(&f.track), "frame before its track");
                    frames.push(f)
                }
            }
        }
    };
    for c in data.chunks(chunk) {
        d.push(c);
        take(&mut d);
    }
    d.flush();
    take(&mut d);
    Demuxed { tracks, frames, stats: d.stats().clone() }
}

/// ffprobe's packets per stream index: (pts, dts, keyframe) in 90 kHz ticks.
fn expected(csv: &str) -> BTreeMap<usize, Vec<(i64, i64, bool)>> {
    let mut m: BTreeMap<usize, Vec<_>> = BTreeMap::new();
    for line in csv.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let idx: usize = f[0].parse().unwrap();
        let pts: i64 = f[1].parse().unwrap();
        let dts: i64 = f[2].parse().unwrap_or(pts);
        m.entry(idx).or_default().push((pts, dts, f[3].starts_with('K')));
    }
    m
}

fn check_against_ffprobe(name: &str, d: &Demuxed) {
    let (_, csv) = fixture(name);
    let exp = expected(&csv);
    // ffmpeg numbers PIDs in stream order, and our track ids are the PIDs
    let ids: Vec<u32> = d.tracks.keys().copied().collect();
    assert_eq!(ids.len(), exp.len(), "{name}: track count");
    for (idx, packets) in &exp {
        let id = ids[*idx];
        let mine: Vec<&Frame> = d.frames.iter().filter(|f| f.track == id).collect();
        assert_eq!(mine.len(), packets.len(), "{name}: frame count of stream {idx}");
        for (n, (f, &(pts, dts, key))) in mine.iter().zip(packets).enumerate() {
            assert!((f.dts - dts / 90).abs() <= 1, "{name} s{idx} #{n}: dts {} vs {}", f.dts, dts / 90);
            assert!((f.pts() - pts / 90).abs() <= 1, "{name} s{idx} #{n}: pts {} vs {}", f.pts(), pts / 90);
            assert_eq!(f.keyframe, key, "{name} s{idx} #{n}: keyframe");
        }
    }
}

#[test]
fn h264_aac_matches_ffprobe() {
    let (ts, _) = fixture("h264_aac");
    let d = demux(&ts, 4096);
    check_against_ffprobe("h264_aac", &d);
    let v = &d.tracks[&0x100];
    assert_eq!((v.codec, v.width, v.height), (Codec::H264, 320, 240));
    assert_eq!(v.init[0], 1, "avcC");
    let a = &d.tracks[&0x101];
    assert_eq!((a.codec, a.rate, a.channels), (Codec::Aac, 48000, 1));
    assert_eq!(&a.init[..], &[0x11, 0x88]);
    assert_eq!(d.stats.continuity_errors, 0);
    // frames are length-prefixed without AUD
    let first = &d.frames.iter().find(|f| f.track == 0x100).unwrap().data;
    let len = u32::from_be_bytes([first[0], first[1], first[2], first[3]]) as usize;
    assert!(len + 4 <= first.len());
    assert_ne!(first[4] & 0x1F, 9);
}

#[test]
fn odd_chunking_gives_the_same_result() {
    let (ts, _) = fixture("h264_aac");
    let a = demux(&ts, 188 * 40);
    let b = demux(&ts, 7);
    assert_eq!(a.frames, b.frames);
    assert_eq!(a.tracks, b.tracks);
}

#[test]
fn hevc_aac_matches_ffprobe() {
    let (ts, _) = fixture("hevc_aac");
    let d = demux(&ts, 1000);
    check_against_ffprobe("hevc_aac", &d);
    let v = &d.tracks[&0x100];
    assert_eq!((v.codec, v.width, v.height), (Codec::Hevc, 320, 240));
    let h = mist_media::hevc::Hvcc::parse(&v.init).unwrap();
    assert_eq!((h.vps.len(), h.sps.len(), h.pps.len()), (1, 1, 1));
}

#[test]
fn h264_mp3_matches_ffprobe() {
    let (ts, _) = fixture("h264_mp3");
    let d = demux(&ts, 4096);
    check_against_ffprobe("h264_mp3", &d);
    let a = &d.tracks[&0x101];
    assert_eq!((a.codec, a.rate, a.channels), (Codec::Mp3, 44100, 1));
}

#[test]
fn multi_video_matches_ffprobe() {
    let (ts, _) = fixture("multi");
    let d = demux(&ts, 4096);
    check_against_ffprobe("multi", &d);
    let sizes: Vec<(u32, u32)> = d.tracks.values().map(|t| (t.width, t.height)).collect();
    assert_eq!(sizes, vec![(320, 180), (160, 90), (0, 0)]);
}

#[test]
fn opus_matches_ffprobe() {
    let (ts, _) = fixture("h264_opus");
    let d = demux(&ts, 4096);
    check_against_ffprobe("h264_opus", &d);
    let a = &d.tracks[&0x101];
    assert_eq!((a.codec, a.rate, a.channels), (Codec::Opus, 48000, 1));
    assert_eq!(&a.init[..8], b"OpusHead");
}

#[test]
fn ac3_matches_ffprobe() {
    let (ts, _) = fixture("ac3");
    let d = demux(&ts, 4096);
    check_against_ffprobe("ac3", &d);
    let a = d.tracks.values().next().unwrap();
    assert_eq!((a.codec, a.rate, a.channels), (Codec::Ac3, 48000, 1));
}
