//! MP4 reader and writers against files made by ffmpeg, checked with ffprobe at test time.
//!
//! ffprobe/ffmpeg must be installed (the test script installs them); the expectations are not
//! committed but captured from ffprobe on each run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use mist_media::mp4::{read_all, FragmentOptions, FragmentWriter, Mp4Reader, Mp4Writer, Need};
use mist_media::{Codec, Frame, MediaError, Track, TrackKind};

fn fixture(name: &str) -> PathBuf {
    common::fixture("mp4").join(name)
}

fn tmp(name: &str) -> PathBuf {
    common::tmp_dir("mp4-test").join(name)
}

#[derive(Debug, Clone, PartialEq)]
struct Pkt {
    stream: usize,
    pts: Option<f64>,
    dts: Option<f64>,
    size: usize,
    key: bool,
}

fn ffprobe(path: &Path) -> Vec<Pkt> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts_time,dts_time,flags,size",
            "-of",
            "compact=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if !line.starts_with("stream_index=") {
            continue;
        }
        let mut p = Pkt {
            stream: 0,
            pts: None,
            dts: None,
            size: 0,
            key: false,
        };
        for kv in line.split('|') {
            let Some((k, val)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "stream_index" => p.stream = val.parse().unwrap(),
                "pts_time" => p.pts = val.parse().ok(),
                "dts_time" => p.dts = val.parse().ok(),
                "size" => p.size = val.parse().unwrap(),
                "flags" => p.key = val.starts_with('K'),
                _ => {}
            }
        }
        v.push(p);
    }
    v
}

fn ffmpeg_decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn per_track<'a>(tracks: &[Track], frames: &'a [Frame]) -> Vec<Vec<&'a Frame>> {
    tracks
        .iter()
        .map(|t| frames.iter().filter(|f| f.track == t.id).collect())
        .collect()
}

/// Compares our frames with ffprobe's packets, per stream in decode order; `offset_ms` is added to
/// our times.
fn compare(tracks: &[Track], frames: &[Frame], pkts: &[Pkt], offset_ms: i64, what: &str) {
    let ours = per_track(tracks, frames);
    let streams = pkts
        .iter()
        .map(|p| p.stream)
        .max()
        .map(|m| m + 1)
        .unwrap_or(0);
    assert_eq!(streams, tracks.len(), "{what}: stream count");
    for (s, fr) in ours.iter().enumerate() {
        let theirs: Vec<&Pkt> = pkts.iter().filter(|p| p.stream == s).collect();
        assert_eq!(fr.len(), theirs.len(), "{what}: packet count of stream {s}");
        for (k, (f, p)) in fr.iter().zip(&theirs).enumerate() {
            assert_eq!(
                f.data.len(),
                p.size,
                "{what}: size of stream {s} packet {k}"
            );
            assert_eq!(
                f.keyframe, p.key,
                "{what}: keyframe flag of stream {s} packet {k}"
            );
            let dts = (p.dts.unwrap() * 1000.0).round() as i64;
            let pts = (p.pts.unwrap() * 1000.0).round() as i64;
            assert!(
                (f.dts + offset_ms - dts).abs() <= 1,
                "{what}: dts of stream {s} packet {k}: ours {} theirs {dts}",
                f.dts + offset_ms
            );
            assert!(
                (f.pts() + offset_ms - pts).abs() <= 1,
                "{what}: pts of stream {s} packet {k}: ours {} theirs {pts}",
                f.pts() + offset_ms
            );
        }
    }
}

fn read_fixture(name: &str) -> (Vec<Track>, Vec<Frame>) {
    let data = std::fs::read(fixture(name)).unwrap();
    read_all(&data).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const FIXTURES: [&str; 7] = [
    "h264_aac.mp4",
    "h264_aac_faststart.mp4",
    "h264_aac_frag.mp4",
    "hevc_aac.mp4",
    "opus.mp4",
    "h264_negcts.mp4",
    "av1.mp4",
];

#[test]
fn fixtures_match_ffprobe() {
    for name in FIXTURES {
        let (tracks, frames) = read_fixture(name);
        compare(&tracks, &frames, &ffprobe(&fixture(name)), 0, name);
        // interleaved by decode time
        assert!(
            frames.windows(2).all(|w| w[0].dts <= w[1].dts + 50),
            "{name}: not interleaved"
        );
    }
}

#[test]
fn fixture_tracks() {
    let (t, f) = read_fixture("h264_aac.mp4");
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].codec, t[0].width, t[0].height),
        (Codec::H264, 320, 240)
    );
    assert_eq!(t[0].init[0], 1, "avcC version");
    assert_eq!(t[0].fpks, 25_000);
    assert_eq!(
        (t[1].codec, t[1].rate, t[1].channels),
        (Codec::Aac, 44100, 1)
    );
    assert!(t[1].init.len() >= 2);
    assert!(f.iter().any(|f| f.pts_offset > 0), "B-frames give ctts");
    // payload is 4-byte length-prefixed NAL units
    let v = &f.iter().find(|f| f.track == t[0].id).unwrap().data;
    let len = u32::from_be_bytes(v[..4].try_into().unwrap()) as usize;
    assert!(len + 4 <= v.len());

    let (t, _) = read_fixture("hevc_aac.mp4");
    assert_eq!(
        (t[0].codec, t[0].width, t[0].height),
        (Codec::Hevc, 320, 240)
    );
    let (t, _) = read_fixture("opus.mp4");
    assert_eq!(
        (t[0].codec, t[0].rate, t[0].channels),
        (Codec::Opus, 48000, 1)
    );
    assert_eq!(&t[0].init[..8], b"OpusHead");
    let (t, f) = read_fixture("h264_negcts.mp4");
    // ctts v1 with negative offsets: decode times shift down, as ffmpeg shows them
    assert!(f.iter().all(|f| f.pts_offset >= 0));
    assert_eq!(f[0].dts, -40);
    assert_eq!(t[0].codec, Codec::H264);
    let (t, _) = read_fixture("av1.mp4");
    assert_eq!(
        (t[0].codec, t[0].width, t[0].height),
        (Codec::Av1, 160, 120)
    );
    assert_eq!(t[0].init[0], 0x81, "av1C marker/version");
    let (t, _) = read_fixture("h264_aac_frag.mp4");
    assert_eq!((t[0].codec, t[1].codec), (Codec::H264, Codec::Aac));
}

fn write_progressive(tracks: &[Track], frames: &[Frame], moov_first: bool) -> Vec<u8> {
    let mut w = Mp4Writer::new(tracks.to_vec()).unwrap();
    if moov_first {
        for f in frames {
            w.add(f).unwrap();
        }
        let mut out = w.header_moov_first().unwrap();
        for f in frames {
            out.extend_from_slice(&f.data);
        }
        out
    } else {
        let mut out = w.start();
        for f in frames {
            w.add(f).unwrap();
            out.extend_from_slice(&f.data);
        }
        let (moov, patch) = w.finish().unwrap();
        out.extend_from_slice(&moov);
        let at = patch.offset as usize;
        out[at..at + 8].copy_from_slice(&patch.bytes);
        out
    }
}

/// Fragments at every video keyframe (or every 50 frames for audio only).
fn write_fragmented(tracks: &[Track], frames: &[Frame], offset_ms: i64, styp: bool) -> Vec<u8> {
    let mut w = FragmentWriter::new(
        tracks.to_vec(),
        FragmentOptions {
            styp,
            time_offset_ms: offset_ms,
        },
    )
    .unwrap();
    let mut out = w.init_segment().unwrap();
    let has_video = tracks.iter().any(|t| t.kind() == TrackKind::Video);
    let mut seg: Vec<Frame> = Vec::new();
    for f in frames {
        let video = tracks.iter().find(|t| t.id == f.track).unwrap().kind() == TrackKind::Video;
        let cut = if has_video {
            video && f.keyframe
        } else {
            seg.len() >= 50
        };
        if cut && !seg.is_empty() {
            out.extend(w.media_segment(&seg, Some(f.dts)).unwrap());
            seg.clear();
        }
        seg.push(f.clone());
    }
    out.extend(w.media_segment(&seg, None).unwrap());
    out
}

fn check_written(name: &str, bytes: &[u8], tracks: &[Track], frames: &[Frame], offset_ms: i64) {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    let pkts = ffprobe(&p);
    compare(tracks, frames, &pkts, offset_ms, name);
    let errs = ffmpeg_decode_errors(&p);
    assert!(errs.trim().is_empty(), "{name}: ffmpeg errors: {errs}");
    // and our own reader reads back what we wrote
    let (t2, f2) = read_all(bytes).unwrap();
    assert_eq!(t2.len(), tracks.len());
    for (a, b) in tracks.iter().zip(&t2) {
        assert_eq!(
            (a.codec, &a.init, a.width, a.height),
            (b.codec, &b.init, b.width, b.height),
            "{name}"
        );
    }
    let mut f2: Vec<Frame> = f2
        .into_iter()
        .map(|mut f| {
            f.dts -= offset_ms;
            f
        })
        .collect();
    let mut f1 = frames.to_vec();
    let key = |f: &Frame| (f.track, f.dts);
    f1.sort_by_key(key);
    f2.sort_by_key(key);
    assert_eq!(f1.len(), f2.len());
    for (a, b) in f1.iter().zip(&f2) {
        assert_eq!(
            (a.track, a.keyframe, &a.data),
            (b.track, b.keyframe, &b.data),
            "{name}"
        );
        assert!(
            (a.dts - b.dts).abs() <= 1 && (a.pts() - b.pts()).abs() <= 1,
            "{name}: {a:?} vs {b:?}"
        );
    }
    let _ = std::fs::remove_file(&p);
}

#[test]
fn write_progressive_both_layouts() {
    for name in FIXTURES {
        let (tracks, frames) = read_fixture(name);
        let stem = name.trim_end_matches(".mp4");
        check_written(
            &format!("{stem}_moov_end.mp4"),
            &write_progressive(&tracks, &frames, false),
            &tracks,
            &frames,
            0,
        );
        check_written(
            &format!("{stem}_moov_first.mp4"),
            &write_progressive(&tracks, &frames, true),
            &tracks,
            &frames,
            0,
        );
    }
}

#[test]
fn write_fragmented_multiplexed_and_per_track() {
    for name in FIXTURES {
        let (tracks, frames) = read_fixture(name);
        let stem = name.trim_end_matches(".mp4");
        let off = -frames.iter().map(|f| f.dts).min().unwrap().min(0);
        check_written(
            &format!("{stem}_frag.mp4"),
            &write_fragmented(&tracks, &frames, off, false),
            &tracks,
            &frames,
            off,
        );
        // CMAF: one track per file, with styp
        for t in &tracks {
            let one: Vec<Frame> = frames.iter().filter(|f| f.track == t.id).cloned().collect();
            let tr = vec![t.clone()];
            let bytes = write_fragmented(&tr, &one, off, true);
            check_written(&format!("{stem}_cmaf_{}.mp4", t.id), &bytes, &tr, &one, off);
        }
    }
}

#[test]
fn fragment_times_do_not_drift() {
    // 30 fps video in a 90 kHz track: 33/34 ms steps, 3000-tick durations
    let mut t = Track::new(1, Codec::H264);
    t.init = bytes::Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]);
    let mut w = FragmentWriter::new(vec![t], FragmentOptions::default()).unwrap();
    let mut total = 0u64;
    for seg in 0..100 {
        let frames: Vec<Frame> = (0..30)
            .map(|i| {
                let n = seg * 30 + i;
                Frame {
                    track: 1,
                    dts: n * 1000 / 30,
                    pts_offset: 0,
                    keyframe: i == 0,
                    data: bytes::Bytes::from_static(&[0, 0, 0, 1, 0x65]),
                }
            })
            .collect();
        let b = w.media_segment(&frames, Some((seg + 1) * 1000)).unwrap();
        // tfdt of segment `seg` is exactly seg * 90000
        let i = b.windows(4).position(|x| x == b"tfdt").unwrap();
        let tfdt = u64::from_be_bytes(b[i + 8..i + 16].try_into().unwrap());
        assert_eq!(tfdt, seg as u64 * 90000);
        total = tfdt;
    }
    assert_eq!(total, 99 * 90000);
}

#[test]
fn seek_to_keyframe() {
    for name in ["h264_aac.mp4", "h264_aac_frag.mp4"] {
        seek_in(name);
    }
}

fn seek_in(name: &str) {
    let data = std::fs::read(fixture(name)).unwrap();
    let (_, all) = read_all(&data).unwrap();
    for target in [0i64, 500, 1000, 1300, 1999, 5000] {
        let mut r = Mp4Reader::new(data.len() as u64);
        let mut got = Vec::new();
        let mut seeked = None;
        while let Need::Read { offset, len } = r.need().unwrap() {
            let f = r
                .feed(offset, &data[offset as usize..(offset + len) as usize])
                .unwrap();
            if r.has_moov() && seeked.is_none() {
                seeked = Some(r.seek(target).unwrap());
                continue;
            }
            got.extend(f);
        }
        let first_video = got.iter().find(|f| f.track == 1).unwrap();
        let t = first_video.dts;
        if name == "h264_aac.mp4" {
            assert_eq!(seeked.unwrap(), t);
        }
        assert!(first_video.keyframe);
        // the last keyframe at or before the target, or the first one
        let keys: Vec<i64> = all
            .iter()
            .filter(|f| f.track == 1 && f.keyframe)
            .map(|f| f.pts())
            .collect();
        let want = keys
            .iter()
            .rev()
            .find(|&&p| p <= target)
            .unwrap_or(&keys[0]);
        assert_eq!(first_video.pts(), *want, "{name} target {target}");
        // the next keyframe is after the target
        let next_key = all
            .iter()
            .filter(|f| f.track == 1 && f.keyframe && f.pts() > first_video.pts())
            .map(|f| f.pts())
            .next();
        if let Some(n) = next_key {
            assert!(
                n > target,
                "target {target}: a later keyframe at {n} was not taken"
            );
        }
        // from there on, the same frames as a full read
        let tail: Vec<&Frame> = all
            .iter()
            .filter(|f| f.track != 1 || f.dts >= t)
            .filter(|f| f.track == 1 || f.dts >= t)
            .collect();
        assert_eq!(got.len(), tail.len(), "{name} target {target}");
        assert!(got.iter().all(|f| f.dts >= t), "{name} target {target}");
    }
}

#[test]
fn index_is_compact() {
    let data = std::fs::read(fixture("h264_aac.mp4")).unwrap();
    let mut r = Mp4Reader::new(data.len() as u64);
    while !r.has_moov() {
        let Need::Read { offset, len } = r.need().unwrap() else {
            panic!()
        };
        r.feed(offset, &data[offset as usize..(offset + len) as usize])
            .unwrap();
    }
    for t in &r.movie().unwrap().tracks {
        let n = t.table.len() as usize;
        assert!(
            t.table.heap_bytes() <= n * 24 + 256,
            "{} bytes for {} samples",
            t.table.heap_bytes(),
            n
        );
    }
}

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[test]
fn hostile_truncated_and_mutated() {
    let mut seed = 7u64;
    for name in FIXTURES {
        let data = std::fs::read(fixture(name)).unwrap();
        // Refused as damage, never as "need more" (the whole file is there).
        let refused = |r: Result<_, MediaError>| {
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        MediaError::Malformed { .. }
                            | MediaError::TooLarge { .. }
                            | MediaError::Unsupported { .. }
                    ),
                    "{name}: {e:?}"
                );
            }
        };
        for cut in (0..data.len()).step_by(173) {
            refused(read_all(&data[..cut]).map(|_| ()));
        }
        for _ in 0..300 {
            let mut d = data.clone();
            for _ in 0..1 + lcg(&mut seed) % 8 {
                let i = (lcg(&mut seed) as usize) % d.len().min(4096);
                d[i] = lcg(&mut seed) as u8;
            }
            refused(read_all(&d).map(|_| ()));
        }
    }
}

fn bx(typ: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(body);
    v
}

#[test]
fn hostile_huge_sizes() {
    // a moov claiming 2^60 bytes in a small file
    let mut d = vec![0, 0, 0, 1, b'm', b'o', b'o', b'v'];
    d.extend_from_slice(&(1u64 << 60).to_be_bytes());
    d.extend_from_slice(&[0; 64]);
    assert!(read_all(&d).is_err());
    // a moov claiming more than the reader's limit, in a file that claims to be huge
    let mut r = Mp4Reader::new(1 << 40);
    let mut h = vec![0, 0, 0, 1, b'm', b'o', b'o', b'v'];
    h.extend_from_slice(&(1u64 << 39).to_be_bytes());
    assert!(matches!(r.feed(0, &h), Err(MediaError::TooLarge { .. })));
    // stsz / trun counts of 2^32-1 with no entries behind them
    let (_, frames) = read_fixture("h264_aac.mp4");
    assert!(!frames.is_empty());
    let data = std::fs::read(fixture("h264_aac.mp4")).unwrap();
    let mut d = data.clone();
    let i = d.windows(4).position(|w| w == b"stsz").unwrap();
    d[i + 12..i + 16].copy_from_slice(&[0xff; 4]);
    assert!(read_all(&d).is_err());
    let data = std::fs::read(fixture("h264_aac_frag.mp4")).unwrap();
    let mut d = data.clone();
    let i = d.windows(4).position(|w| w == b"trun").unwrap();
    d[i + 8..i + 12].copy_from_slice(&[0xff; 4]);
    assert!(read_all(&d).is_err());
    // a trun with no per-sample fields and 2^32-1 samples: bounded, not allocated
    let mut m = Vec::new();
    m.extend(bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]));
    let mut traf = bx(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]);
    traf.extend(bx(b"trun", &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]));
    m.extend(bx(b"traf", &traf));
    let moov_end = data.windows(4).position(|w| w == b"moof").unwrap() - 4;
    let mut d = data[..moov_end].to_vec();
    d.extend(bx(b"moof", &m));
    assert!(matches!(read_all(&d), Err(MediaError::TooLarge { .. })));
}

#[test]
fn write_with_late_start_uses_empty_edit() {
    let (tracks, frames) = read_fixture("h264_aac.mp4");
    let late: Vec<Frame> = frames
        .iter()
        .cloned()
        .map(|mut f| {
            f.dts += 500;
            f
        })
        .collect();
    check_written(
        "late_start.mp4",
        &write_progressive(&tracks, &late, false),
        &tracks,
        &late,
        0,
    );
}

/// Builds a moof by hand with the trun/tfhd flag combinations ffmpeg does not write.
#[test]
fn trun_flag_combinations() {
    use mist_media::mp4::{parse_moof, parse_moov};
    let data = std::fs::read(fixture("h264_aac_frag.mp4")).unwrap();
    let i = data.windows(4).position(|w| w == b"moov").unwrap() - 4;
    let len = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
    let movie = parse_moov(&data[i + 8..i + len]).unwrap();
    let full = |v: u8, f: u32| -> Vec<u8> {
        let mut x = f.to_be_bytes().to_vec();
        x[0] = v;
        x
    };
    // traf 1 (track 1): base-data-offset 1000, default duration 512, default size 10, default flags
    // non-sync, first-sample-flags sync; trun without data offset, no per-sample fields, 3 samples
    let mut tfhd = full(0, 0x1 | 0x8 | 0x10 | 0x20);
    tfhd.extend(1u32.to_be_bytes());
    tfhd.extend(1000u64.to_be_bytes());
    tfhd.extend(512u32.to_be_bytes());
    tfhd.extend(10u32.to_be_bytes());
    tfhd.extend(0x0101_0000u32.to_be_bytes());
    let mut trun = full(0, 0x4);
    trun.extend(3u32.to_be_bytes());
    trun.extend(0x0200_0000u32.to_be_bytes());
    let mut tfdt = full(0, 0);
    tfdt.extend(5000u32.to_be_bytes());
    let mut traf1 = bx(b"tfhd", &tfhd);
    traf1.extend(bx(b"tfdt", &tfdt));
    traf1.extend(bx(b"trun", &trun));
    // second trun in the same traf: continues after the first one's data, v1 negative cts
    let mut trun2 = full(1, 0x200 | 0x800);
    trun2.extend(2u32.to_be_bytes());
    for (sz, cts) in [(7u32, -512i32), (9, 1024)] {
        trun2.extend(sz.to_be_bytes());
        trun2.extend(cts.to_be_bytes());
    }
    traf1.extend(bx(b"trun", &trun2));
    // traf 2 (track 2): no base offset, no default-base-is-moof: continues after traf 1's data;
    // no tfdt: continues from where the track was (passed in); duration from trex (0) overridden
    // per sample
    let mut tfhd2 = full(0, 0);
    tfhd2.extend(2u32.to_be_bytes());
    let mut trun3 = full(0, 0x100 | 0x200 | 0x400);
    trun3.extend(2u32.to_be_bytes());
    for (d, sz) in [(1024u32, 5u32), (1024, 6)] {
        trun3.extend(d.to_be_bytes());
        trun3.extend(sz.to_be_bytes());
        trun3.extend(0u32.to_be_bytes());
    }
    let mut traf2 = bx(b"tfhd", &tfhd2);
    traf2.extend(bx(b"trun", &trun3));
    let mut moof = bx(b"traf", &traf1);
    moof.extend(bx(b"traf", &traf2));
    let mut next = vec![0i64, 777];
    let mut out = Vec::new();
    parse_moof(&moof, 100, &movie, &mut next, &mut out).unwrap();
    let got: Vec<(usize, u64, u32, i64, i32, bool)> = out
        .iter()
        .map(|s| (s.track, s.offset, s.size, s.dts, s.cts, s.keyframe))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 1000, 10, 5000, 0, true),
            (0, 1010, 10, 5512, 0, false),
            (0, 1020, 10, 6024, 0, false),
            (0, 1030, 7, 6536, -512, false),
            (0, 1037, 9, 7048, 1024, false),
            (1, 1046, 5, 777, 0, true),
            (1, 1051, 6, 1801, 0, true),
        ]
    );
    assert_eq!(next, vec![7560, 2825]);
}

#[test]
fn feed_bytes_is_zero_copy() {
    let data = bytes::Bytes::from(std::fs::read(fixture("h264_aac_faststart.mp4")).unwrap());
    let (_, all) = read_all(&data).unwrap();
    let mut r = Mp4Reader::new(data.len() as u64);
    let mut got = Vec::new();
    while let Need::Read { offset, len } = r.need().unwrap() {
        let chunk = data.slice(offset as usize..(offset + len) as usize);
        if let Some(f) = r.feed_bytes(offset, chunk).unwrap() {
            let p = f.data.as_ptr() as usize;
            assert!(p >= data.as_ptr() as usize && p < data.as_ptr() as usize + data.len());
            got.push(f);
        }
    }
    assert_eq!(got, all);
}

fn ffprobe_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN)
}

#[test]
fn written_durations_match_source() {
    for name in ["h264_aac.mp4", "hevc_aac.mp4", "opus.mp4", "av1.mp4"] {
        let (tracks, frames) = read_fixture(name);
        let src = ffprobe_duration(&fixture(name));
        for (suffix, bytes) in [
            ("end", write_progressive(&tracks, &frames, false)),
            ("first", write_progressive(&tracks, &frames, true)),
        ] {
            let p = tmp(&format!("dur_{suffix}_{name}"));
            std::fs::write(&p, bytes).unwrap();
            let d = ffprobe_duration(&p);
            assert!(
                (d - src).abs() < 0.05,
                "{name} {suffix}: duration {d} vs source {src}"
            );
            let _ = std::fs::remove_file(&p);
        }
    }
}

#[test]
fn moov_first_over_4gb_uses_co64() {
    use mist_media::mp4::parse_moov;
    let (tracks, _) = read_fixture("h264_aac.mp4");
    let mut w = Mp4Writer::new(tracks.clone()).unwrap();
    // 3000 video samples of 2 MB: 6 GB of mdat, metadata only
    for i in 0..3000i64 {
        w.add_sample(1, i * 40, 0, i % 25 == 0, 2 << 20).unwrap();
        w.add_sample(2, i * 40, 0, true, 100).unwrap();
    }
    let head = w.header_moov_first().unwrap();
    assert!(head.windows(4).any(|x| x == b"co64"));
    let i = head.windows(4).position(|x| x == b"moov").unwrap() - 4;
    let len = u32::from_be_bytes(head[i..i + 4].try_into().unwrap()) as usize;
    let movie = parse_moov(&head[i + 8..i + len]).unwrap();
    let v = &movie.tracks[0].table;
    let a = &movie.tracks[1].table;
    assert_eq!((v.len(), a.len()), (3000, 3000));
    let last = v.sample(&v.cursor_at(2999).unwrap());
    // each pair (video, audio) is 2 MB + 100 bytes; the header comes first
    assert_eq!(last.offset, head.len() as u64 + 2999 * ((2 << 20) + 100));
    assert!(last.offset > u32::MAX as u64);
    assert!(v.is_sync(2975) && !v.is_sync(2976));
    // and the same layout at the end
    let (moov, patch) = w.finish().unwrap();
    assert!(moov.windows(4).any(|x| x == b"co64"));
    assert_eq!(
        u64::from_be_bytes(patch.bytes),
        16 + 3000 * ((2 << 20) + 100)
    );
}

#[test]
fn sample_index_matches_frames() {
    let data = std::fs::read(fixture("h264_aac.mp4")).unwrap();
    let (_, all) = read_all(&data).unwrap();
    let mut r = Mp4Reader::new(data.len() as u64);
    while !r.has_moov() {
        let Need::Read { offset, len } = r.need().unwrap() else {
            panic!()
        };
        r.feed(offset, &data[offset as usize..(offset + len) as usize])
            .unwrap();
    }
    let idx: Vec<_> = r.movie().unwrap().samples().collect();
    assert_eq!(idx.len(), all.len());
    for (s, f) in idx.iter().zip(&all) {
        assert_eq!(
            (s.track, s.dts, s.pts_offset, s.keyframe),
            (f.track, f.dts, f.pts_offset, f.keyframe)
        );
        assert_eq!(
            &data[s.offset as usize..s.offset as usize + s.size as usize],
            &f.data[..]
        );
    }
}

#[test]
fn demux_segments_in_memory() {
    use mist_media::mp4::{demux_segment, parse_moov};
    // our own CMAF output: init segment + media segments, demuxed segment by segment
    let (tracks, frames) = read_fixture("h264_aac.mp4");
    let mut w = FragmentWriter::new(
        tracks.clone(),
        FragmentOptions {
            styp: true,
            time_offset_ms: 100,
        },
    )
    .unwrap();
    let init = w.init_segment().unwrap();
    let i = init.windows(4).position(|x| x == b"moov").unwrap() - 4;
    let movie = parse_moov(&init[i + 8..]).unwrap();
    let mut next = vec![0; movie.tracks.len()];
    let mut got = Vec::new();
    for chunk in frames.chunks(30) {
        let seg = bytes::Bytes::from(w.media_segment(chunk, None).unwrap());
        got.extend(demux_segment(&movie, seg, &mut next).unwrap());
    }
    assert_eq!(got.len(), frames.len());
    let key = |f: &Frame| (f.track, f.dts);
    let mut a = frames.clone();
    a.sort_by_key(key);
    got.sort_by_key(key);
    for (x, y) in a.iter().zip(&got) {
        assert_eq!(
            (x.track, x.dts + 100, x.pts_offset, x.keyframe, &x.data),
            (y.track, y.dts, y.pts_offset, y.keyframe, &y.data)
        );
    }
    // ffmpeg's fragmented file, whole, as one buffer: the same frames as the sans-IO reader
    let data = bytes::Bytes::from(std::fs::read(fixture("h264_aac_frag.mp4")).unwrap());
    let (_, all) = read_all(&data).unwrap();
    let i = data.windows(4).position(|x| x == b"moov").unwrap() - 4;
    let len = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
    let movie = parse_moov(&data[i + 8..i + len]).unwrap();
    let mut next = vec![0; movie.tracks.len()];
    assert_eq!(demux_segment(&movie, data.clone(), &mut next).unwrap(), all);
    // truncated: an error, no panic
    assert!(demux_segment(&movie, data.slice(..data.len() - 100), &mut next).is_err());
}

#[test]
fn stray_bytes_at_the_end_are_ignored() {
    for name in ["h264_aac.mp4", "h264_aac_frag.mp4"] {
        let mut data = std::fs::read(fixture(name)).unwrap();
        let (_, all) = read_all(&data).unwrap();
        data.extend_from_slice(&[0, 0, 0]);
        assert_eq!(read_all(&data).unwrap().1, all, "{name}");
    }
}
