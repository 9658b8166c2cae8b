//! MPEG-TS demux/mux tests against ffmpeg-made fixtures (tests/fixtures/ts, see its README.md).
//!
//! The demux comparison uses the ffprobe packet lists captured into `X.csv` when the fixtures were
//! made, so it needs no ffprobe at run time. The mux round-trip and segment tests run
//! `ffprobe`/`ffmpeg` on our output and fail when those are not installed (scripts/test installs
//! them).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use mist_media::mpegts::{DemuxEvent, Demuxer};
use mist_media::{Codec, Frame, Track};

fn fixture(name: &str) -> (Vec<u8>, String) {
    let dir = common::fixture("ts");
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
    Demuxed {
        tracks,
        frames,
        stats: d.stats().clone(),
    }
}

type Packets = BTreeMap<u32, Vec<(i64, i64, bool)>>;

/// ffprobe's packets per PID: (pts, dts, keyframe) in 90 kHz ticks.
fn expected(csv: &str) -> Packets {
    let mut m: Packets = BTreeMap::new();
    for line in csv.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let idx = u32::from_str_radix(f[0].trim_start_matches("0x"), 16).unwrap();
        let pts: i64 = f[1].parse().unwrap();
        let dts: i64 = f[2].parse().unwrap_or(pts);
        m.entry(idx)
            .or_default()
            .push((pts, dts, f[3].starts_with('K')));
    }
    m
}

fn check_against_ffprobe(name: &str, d: &Demuxed) {
    let (_, csv) = fixture(name);
    let exp = expected(&csv);
    // our track ids are the PIDs
    let ids: Vec<u32> = d.tracks.keys().copied().collect();
    assert_eq!(
        ids,
        exp.keys().copied().collect::<Vec<_>>(),
        "{name}: tracks"
    );
    for (idx, packets) in &exp {
        let id = *idx;
        let mine: Vec<&Frame> = d.frames.iter().filter(|f| f.track == id).collect();
        assert_eq!(
            mine.len(),
            packets.len(),
            "{name}: frame count of stream {idx}"
        );
        for (n, (f, &(pts, dts, key))) in mine.iter().zip(packets).enumerate() {
            assert!(
                (f.dts - dts / 90).abs() <= 1,
                "{name} s{idx} #{n}: dts {} vs {}",
                f.dts,
                dts / 90
            );
            assert!(
                (f.pts() - pts / 90).abs() <= 1,
                "{name} s{idx} #{n}: pts {} vs {}",
                f.pts(),
                pts / 90
            );
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
fn two_programs_match_ffprobe() {
    let (ts, _) = fixture("programs");
    let d = demux(&ts, 4096);
    check_against_ffprobe("programs", &d);
    let sizes: Vec<(u32, u32)> = d.tracks.values().map(|t| (t.width, t.height)).collect();
    assert_eq!(sizes, vec![(160, 120), (96, 64), (0, 0), (0, 0)]);
    let mut dm = Demuxer::new();
    dm.push(&ts);
    dm.flush();
    assert_eq!(
        dm.programs().collect::<Vec<_>>(),
        vec![(1, 0x1000), (2, 0x1001)]
    );
    assert_eq!(
        [0x100, 0x101, 0x102, 0x103].map(|t| dm.program_of(t)),
        [Some(1), Some(2), Some(1), Some(2)]
    );
    assert!(dm.pcr(1).is_some() && dm.pcr(2).is_some());
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

// ---- muxing, checked with our demuxer and with ffmpeg/ffprobe ----

use common::require_ffmpeg;
use mist_media::mpegts::{Muxer, MuxerOptions};

fn tmp(name: &str) -> PathBuf {
    common::tmp_dir("ts-test").join(name)
}

/// `ffmpeg -v error -i FILE -f null -`: returns stderr (empty when the file decodes cleanly).
fn ffmpeg_errors(path: &PathBuf) -> String {
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let mut s = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        s.push_str(&format!("\nexit status {}", o.status));
    }
    s
}

/// ffprobe's packets of a file we wrote, per stream index (which is our track order).
fn ffprobe_packets(path: &PathBuf) -> BTreeMap<usize, Vec<(i64, i64, bool)>> {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts,dts,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut m: BTreeMap<usize, Vec<_>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split(',').collect();
        let pts: i64 = f[1].parse().unwrap();
        m.entry(f[0].parse().unwrap()).or_default().push((
            pts,
            f[2].parse().unwrap_or(pts),
            f[3].starts_with('K'),
        ));
    }
    m
}

fn opts(audio_frames_per_pes: usize) -> MuxerOptions {
    MuxerOptions {
        audio_frames_per_pes,
        ..MuxerOptions::default()
    }
}

fn mux_all(d: &Demuxed, audio_frames_per_pes: usize) -> (Vec<u8>, Muxer) {
    let tracks: Vec<Track> = d.tracks.values().cloned().collect();
    let mut mux = Muxer::new(&tracks, opts(audio_frames_per_pes)).unwrap();
    let mut out = Vec::new();
    mux.write_tables(&mut out);
    for f in &d.frames {
        mux.write_frame(f, &mut out).unwrap();
    }
    mux.flush(&mut out);
    assert_eq!(out.len() % 188, 0);
    (out, mux)
}

fn round_trip(name: &str) {
    round_trip_with(name, 1);
    round_trip_with(name, 6);
}

fn round_trip_with(name: &str, audio_frames_per_pes: usize) {
    let (ts, _) = fixture(name);
    let d = demux(&ts, 65536);
    let (out, _) = mux_all(&d, audio_frames_per_pes);
    // our own demuxer gives the same frames back (track ids become the new PIDs 0x100…)
    let back = demux(&out, 65536);
    assert_eq!(back.stats.continuity_errors, 0);
    assert_eq!(
        back.frames.len(),
        d.frames.len(),
        "{name}: frame count after round trip"
    );
    let id_map: BTreeMap<u32, u32> = d
        .tracks
        .keys()
        .zip(back.tracks.keys())
        .map(|(a, b)| (*a, *b))
        .collect();
    // frames are compared per track: across tracks the demuxer's output order follows PES ends
    let mut a_sorted: Vec<&Frame> = d.frames.iter().collect();
    a_sorted.sort_by_key(|f| id_map[&f.track]);
    let mut b_sorted: Vec<&Frame> = back.frames.iter().collect();
    b_sorted.sort_by_key(|f| f.track);
    for (a, b) in a_sorted.into_iter().zip(b_sorted) {
        assert_eq!(
            (id_map[&a.track], a.pts_offset, a.keyframe),
            (b.track, b.pts_offset, b.keyframe)
        );
        if audio_frames_per_pes == 1 {
            assert_eq!(a.dts, b.dts);
        } else {
            // frames after the first of a PES get times interpolated from the sample rate
            assert!((a.dts - b.dts).abs() <= 1, "{name}: {} vs {}", a.dts, b.dts);
        }
        assert_eq!(
            a.data, b.data,
            "{name}: payload of track {} at {}",
            a.track, a.dts
        );
    }
    for (a, b) in d.tracks.values().zip(back.tracks.values()) {
        assert_eq!(
            (a.codec, &a.init, a.width, a.height, a.rate, a.channels),
            (b.codec, &b.init, b.width, b.height, b.rate, b.channels)
        );
    }
    require_ffmpeg();
    let path = tmp(&format!("{name}-{audio_frames_per_pes}.ts"));
    std::fs::write(&path, &out).unwrap();
    assert_eq!(ffmpeg_errors(&path), "", "{name}: ffmpeg decode errors");
    let (_, csv) = fixture(name);
    let orig = expected(&csv);
    let got = ffprobe_packets(&path);
    assert_eq!(got.len(), orig.len(), "{name}: ffprobe stream count");
    // we mux the tracks in PID order into one program, so stream index n is the n-th PID
    for (idx, packets) in orig.values().enumerate() {
        let g = &got[&idx];
        assert_eq!(
            g.len(),
            packets.len(),
            "{name}: ffprobe packet count of stream {idx}"
        );
        let keys = |v: &[(i64, i64, bool)]| v.iter().filter(|p| p.2).count();
        assert_eq!(keys(g), keys(packets), "{name}: keyframes of stream {idx}");
        for (a, b) in g.iter().zip(packets) {
            assert!(
                (a.1 - b.1).abs() <= 90 && (a.0 - b.0).abs() <= 90,
                "{name}: timestamps {a:?} vs {b:?}"
            );
        }
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn mux_round_trip_h264_aac() {
    round_trip("h264_aac");
}

#[test]
fn mux_round_trip_hevc_aac() {
    round_trip("hevc_aac");
}

#[test]
fn mux_round_trip_h264_mp3() {
    round_trip("h264_mp3");
}

#[test]
fn mux_round_trip_multi() {
    round_trip("multi");
}

#[test]
fn mux_round_trip_two_programs_into_one() {
    round_trip("programs");
}

#[test]
fn mux_round_trip_opus() {
    round_trip("h264_opus");
}

#[test]
fn mux_round_trip_ac3() {
    round_trip("ac3");
}

/// Cuts at every keyframe of the PCR track; each segment must decode alone.
fn segments(name: &str) {
    segments_with(name, 1);
    segments_with(name, 5);
}

fn segments_with(name: &str, audio_frames_per_pes: usize) {
    let (ts, _) = fixture(name);
    let d = demux(&ts, 65536);
    let tracks: Vec<Track> = d.tracks.values().cloned().collect();
    let mut mux = Muxer::new(&tracks, opts(audio_frames_per_pes)).unwrap();
    let pcr = mux.pcr_track().unwrap();
    let mut segs: Vec<(Vec<u8>, usize)> = Vec::new();
    for f in &d.frames {
        if segs.is_empty() || mux.is_segment_start(f) {
            assert!(f.keyframe, "{name}: stream does not start with a keyframe");
            if let Some((prev, _)) = segs.last_mut() {
                mux.flush(prev);
            }
            let mut out = Vec::new();
            mux.start_segment(&mut out);
            segs.push((out, 0));
        }
        let (out, n) = segs.last_mut().unwrap();
        mux.write_frame(f, out).unwrap();
        if f.track == pcr {
            *n += 1;
        }
    }
    mux.flush(&mut segs.last_mut().unwrap().0);
    assert!(segs.len() >= 2, "{name}: only {} segment(s)", segs.len());
    // each segment alone, through our demuxer: starts with tracks and a keyframe
    for (seg, n) in &segs {
        let back = demux(seg, 65536);
        let first = back.frames.iter().find(|f| f.track == 0x100).unwrap();
        assert!(first.keyframe);
        assert_eq!(back.frames.iter().filter(|f| f.track == 0x100).count(), *n);
    }
    require_ffmpeg();
    for (i, (seg, n)) in segs.iter().enumerate() {
        let path = tmp(&format!("{name}-{audio_frames_per_pes}-seg{i}.ts"));
        std::fs::write(&path, seg).unwrap();
        assert_eq!(
            ffmpeg_errors(&path),
            "",
            "{name}: segment {i} does not decode alone"
        );
        let o = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "0",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let decoded: usize = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap()
            .trim()
            .trim_end_matches(',')
            .parse()
            .unwrap();
        assert_eq!(decoded, *n, "{name}: segment {i} decoded frames");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn segments_h264_aac() {
    segments("h264_aac");
}

#[test]
fn segments_hevc_aac() {
    segments("hevc_aac");
}

#[test]
fn segments_multi() {
    segments("multi");
}

// ---- damaged input ----

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn damaged_input_is_survived_and_counted() {
    for name in [
        "h264_aac",
        "hevc_aac",
        "h264_mp3",
        "multi",
        "h264_opus",
        "ac3",
        "programs",
    ] {
        let (ts, _) = fixture(name);
        let clean = demux(&ts, 65536);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut bad = Vec::with_capacity(ts.len());
        for (i, p) in ts.chunks(188).enumerate() {
            match rng.next() % 50 {
                0 => continue, // dropped packet
                1 => {
                    // flipped bytes
                    let mut p = p.to_vec();
                    for _ in 0..4 {
                        let at = (rng.next() % 188) as usize;
                        p[at] ^= 1 << (rng.next() % 8);
                    }
                    bad.extend_from_slice(&p);
                }
                2 => {
                    // garbage between packets
                    bad.extend_from_slice(&p[..100]);
                    bad.extend((0..(rng.next() % 300)).map(|_| rng.next() as u8));
                }
                _ => bad.extend_from_slice(p),
            }
            if i == 10 {
                bad.extend_from_slice(b"\x47garbage\x47\x47");
            }
        }
        let d = demux(&bad, 1 + (rng.next() % 5000) as usize);
        assert!(d.stats.continuity_errors > 0, "{name}: {:?}", d.stats);
        assert!(d.stats.bytes_skipped > 0, "{name}: {:?}", d.stats);
        eprintln!(
            "{name}: {} of {} frames, {:?}",
            d.frames.len(),
            clean.frames.len(),
            d.stats
        );
        assert!(
            d.frames.len() >= clean.frames.len() / 4 && d.frames.len() <= clean.frames.len(),
            "{name}: {} of {} frames",
            d.frames.len(),
            clean.frames.len()
        );
        // what survives still muxes
        if !d.tracks.is_empty() {
            let _ = mux_all(&d, 4);
        }
        // and truncated files of every length do not panic: the cut packet is the only damage
        assert_eq!(clean.stats.bytes_skipped, 0, "{name}: {:?}", clean.stats);
        for cut in (0..ts.len()).step_by(997) {
            let t = demux(&ts[..cut], 4096);
            assert_eq!(
                (t.stats.bytes_skipped, t.stats.sync_losses),
                ((cut % 188) as u64, 0),
                "{name} cut at {cut}: {:?}",
                t.stats
            );
            assert!(t.frames.len() <= clean.frames.len(), "{name} cut at {cut}");
        }
    }
}

#[test]
fn timestamps_unwrap_across_the_33_bit_wrap() {
    use bytes::Bytes;
    let wrap_ms = (1i64 << 33) / 90; // 95443717.68 ms
    let mut v = Track::new(1, Codec::H264);
    let (ts, _) = fixture("h264_aac");
    let d = demux(&ts, 65536);
    v.init = d.tracks[&0x100].init.clone();
    let mut a = Track::new(2, Codec::Aac);
    a.init = Bytes::from_static(&[0x11, 0x88]);
    let mut mux = Muxer::new(&[v, a], MuxerOptions::default()).unwrap();
    let mut out = Vec::new();
    let video: Vec<&Frame> = d.frames.iter().filter(|f| f.track == 0x100).collect();
    let start = wrap_ms - 1000;
    let mut sent = Vec::new();
    for (n, f) in video.iter().enumerate() {
        let mut f = (*f).clone();
        f.track = 1;
        f.dts = start + n as i64 * 40;
        mux.write_frame(&f, &mut out).unwrap();
        sent.push(f.dts);
        let af = Frame {
            track: 2,
            dts: f.dts,
            pts_offset: 0,
            keyframe: true,
            data: Bytes::from_static(&[0x21, 0x10, 0x04]),
        };
        mux.write_frame(&af, &mut out).unwrap();
    }
    let back = demux(&out, 65536);
    let got: Vec<i64> = back
        .frames
        .iter()
        .filter(|f| f.track == 0x100)
        .map(|f| f.dts)
        .collect();
    assert_eq!(got.len(), sent.len());
    for (g, s) in got.iter().zip(&sent) {
        assert!((g - s).abs() <= 1, "{g} vs {s}");
    }
    assert!(got.windows(2).all(|w| w[1] > w[0]));
    let audio: Vec<i64> = back
        .frames
        .iter()
        .filter(|f| f.track == 0x101)
        .map(|f| f.dts)
        .collect();
    assert!(audio.windows(2).all(|w| w[1] > w[0]) && *audio.last().unwrap() > wrap_ms);
}

#[test]
fn random_access_indicator_with_sps_is_a_keyframe() {
    // A non-IDR picture muxed as a keyframe gets RAI + SPS/PPS: the demuxer takes it as one.
    let (ts, _) = fixture("h264_mp3");
    let d = demux(&ts, 65536);
    let v = d.tracks[&0x100].clone();
    let mut mux = Muxer::new(&[v], MuxerOptions::default()).unwrap();
    let mut out = Vec::new();
    mux.write_tables(&mut out);
    let frames: Vec<Frame> = d
        .frames
        .iter()
        .filter(|f| f.track == 0x100)
        .take(5)
        .cloned()
        .collect();
    assert!(!frames[3].keyframe);
    for (n, f) in frames.iter().enumerate() {
        let mut f = f.clone();
        f.keyframe = n == 0 || n == 3;
        mux.write_frame(&f, &mut out).unwrap();
    }
    let back = demux(&out, 65536);
    let keys: Vec<bool> = back.frames.iter().map(|f| f.keyframe).collect();
    assert_eq!(keys, vec![true, false, false, true, false]);
}
