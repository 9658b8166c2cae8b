//! Matroska/WebM reader and writer against ffmpeg-made fixtures and ffprobe.
//!
//! Expectations come from running `ffprobe` at test time (Debian's ffmpeg is installed by the
//! test script); without ffprobe on PATH the ffprobe comparisons are skipped with a message and
//! only the self-contained checks run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use mist_media::ebml::element::Limits;
use mist_media::ebml::{Demuxer, DocType, MkvEvent, WriteMode, Writer, WriterOptions};
use mist_media::{Codec, Frame, MediaError, Track};

const FIXTURES: [&str; 4] = [
    "h264_aac.mkv",
    "vp9_opus.webm",
    "hevc_opus.mkv",
    "live_h264_aac.mkv",
];

fn fixture(name: &str) -> PathBuf {
    common::fixture("mkv").join(name)
}

/// ffprobe and ffmpeg must run: the comparisons with them fail instead of being skipped.
fn require_ffprobe() {
    common::require_ffmpeg();
}

#[derive(Default, Debug)]
struct Demuxed {
    doc_type: Option<DocType>,
    tracks: Vec<Track>,
    frames: Vec<Frame>,
    clusters: Vec<u64>,
    cues: usize,
    duration_ms: Option<f64>,
}

fn demux(data: &[u8], chunk: usize) -> Result<Demuxed, MediaError> {
    let mut d = Demuxer::new();
    let mut out = Demuxed::default();
    let drain = |d: &mut Demuxer, out: &mut Demuxed| -> Result<(), MediaError> {
        while let Some(ev) = d.poll()? {
            match ev {
                MkvEvent::Header { doc_type } => out.doc_type = Some(doc_type),
                MkvEvent::Tracks(t) => out.tracks = t,
                MkvEvent::Frame(f) => out.frames.push(f),
                MkvEvent::Cluster { offset } => out.clusters.push(offset),
                MkvEvent::Cues(c) => out.cues = c.len(),
                MkvEvent::Info { duration_ms, .. } => out.duration_ms = duration_ms,
                _ => {}
            }
        }
        Ok(())
    };
    for c in data.chunks(chunk.max(1)) {
        d.push(c);
        drain(&mut d, &mut out)?;
        assert!(
            d.buffered() <= 1 << 20 || d.buffered() <= c.len() * 2,
            "buffered {}",
            d.buffered()
        );
    }
    d.finish();
    drain(&mut d, &mut out)?;
    Ok(out)
}

/// (stream index, pts ms, keyframe) per packet, in file order.
fn ffprobe_packets(path: &Path) -> Vec<(usize, i64, bool)> {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_packets",
            "-show_entries",
            "packet=stream_index,pts,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(
        o.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.trim().split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].contains('K'),
            )
        })
        .collect()
}

fn ours(d: &Demuxed) -> Vec<(usize, i64, bool)> {
    d.frames
        .iter()
        .map(|f| {
            (
                d.tracks.iter().position(|t| t.id == f.track).unwrap(),
                f.pts(),
                f.keyframe,
            )
        })
        .collect()
}

fn per_stream(v: &[(usize, i64, bool)]) -> Vec<Vec<(i64, bool)>> {
    let n = v.iter().map(|p| p.0 + 1).max().unwrap_or(0);
    let mut out = vec![Vec::new(); n];
    for &(s, t, k) in v {
        out[s].push((t, k));
    }
    out
}

#[test]
fn fixtures_parse_in_any_chunking() {
    for name in FIXTURES {
        let data = std::fs::read(fixture(name)).unwrap();
        let whole = demux(&data, data.len()).unwrap();
        assert_eq!(whole.tracks.len(), 2, "{name}");
        assert!(
            whole.frames.len() > 100,
            "{name}: {} frames",
            whole.frames.len()
        );
        for chunk in [1, 3, 188, 4096] {
            let d = demux(&data, chunk).unwrap();
            assert_eq!(d.frames, whole.frames, "{name} chunk {chunk}");
            assert_eq!(d.tracks, whole.tracks, "{name} chunk {chunk}");
        }
    }
}

#[test]
fn fixtures_match_ffprobe() {
    require_ffprobe();
    for name in FIXTURES {
        let path = fixture(name);
        let data = std::fs::read(&path).unwrap();
        let d = demux(&data, 1000).unwrap();
        let expect = ffprobe_packets(&path);
        assert_eq!(per_stream(&ours(&d)), per_stream(&expect), "{name}");
        assert_eq!(d.frames.len(), expect.len(), "{name}");
    }
}

#[test]
fn decode_times_match_ffprobe() {
    for name in FIXTURES {
        let path = fixture(name);
        let d = demux(&std::fs::read(&path).unwrap(), 4096).unwrap();
        for t in &d.tracks {
            let mut last = i64::MIN;
            for f in d.frames.iter().filter(|f| f.track == t.id) {
                assert!(
                    f.dts >= last && f.pts_offset >= 0,
                    "{name} track {}: {f:?}",
                    t.id
                );
                last = f.dts;
            }
        }
        require_ffprobe();
        let o = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v",
                "-show_entries",
                "packet=pts,dts",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let theirs: Vec<(i64, Option<i64>)> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let mut it = l.trim().split(',');
                (
                    it.next().unwrap().parse().unwrap(),
                    it.next().unwrap().parse().ok(),
                )
            })
            .collect();
        let mine: Vec<&Frame> = d
            .frames
            .iter()
            .filter(|f| f.track == d.tracks[0].id)
            .collect();
        assert_eq!(mine.len(), theirs.len());
        let mut compared = 0;
        for (f, (pts, dts)) in mine.iter().zip(&theirs) {
            assert_eq!(f.pts(), *pts, "{name}");
            if let Some(dts) = dts {
                assert_eq!(f.dts, *dts, "{name} pts {pts}");
                compared += 1;
            }
        }
        assert!(compared + 2 >= mine.len(), "{name}: {compared}");
    }
}

#[test]
fn track_metadata() {
    let d = demux(&std::fs::read(fixture("h264_aac.mkv")).unwrap(), 4096).unwrap();
    assert_eq!(d.doc_type, Some(DocType::Matroska));
    let v = &d.tracks[0];
    assert_eq!(
        (v.codec, v.width, v.height, v.fpks),
        (Codec::H264, 320, 240, 25_000)
    );
    assert_eq!(v.init[0], 1, "avcC");
    let a = &d.tracks[1];
    assert_eq!((a.codec, a.rate, a.channels), (Codec::Aac, 48000, 1));
    assert!(!a.init.is_empty());
    assert!((d.duration_ms.unwrap() - 2000.0).abs() < 100.0);
    // H.264 payloads are 4-byte length-prefixed NAL units that fill the frame exactly.
    for f in d.frames.iter().filter(|f| f.track == v.id) {
        let mut i = 0;
        while i < f.data.len() {
            let n = u32::from_be_bytes(f.data[i..i + 4].try_into().unwrap()) as usize;
            i += 4 + n;
        }
        assert_eq!(i, f.data.len());
    }

    let d = demux(&std::fs::read(fixture("vp9_opus.webm")).unwrap(), 4096).unwrap();
    assert_eq!(d.doc_type, Some(DocType::Webm));
    assert_eq!(d.tracks[0].codec, Codec::Vp9);
    assert_eq!(d.tracks[1].codec, Codec::Opus);
    assert_eq!(&d.tracks[1].init[..8], b"OpusHead");

    let d = demux(&std::fs::read(fixture("hevc_opus.mkv")).unwrap(), 4096).unwrap();
    assert_eq!(d.tracks[0].codec, Codec::Hevc);
    assert_eq!((d.tracks[0].width, d.tracks[0].height), (320, 240));
}

#[test]
fn unknown_size_clusters() {
    let data = std::fs::read(fixture("live_h264_aac.mkv")).unwrap();
    let live = demux(&data, 500).unwrap();
    let known = demux(&std::fs::read(fixture("h264_aac.mkv")).unwrap(), 500).unwrap();
    assert!(live.clusters.len() >= 2);
    assert_eq!(live.frames.len(), known.frames.len());
    // Without finish(), everything but the last (still open) cluster's tail is already out.
    let mut d = Demuxer::new();
    d.push(&data);
    let mut n = 0;
    while let Some(ev) = d.poll().unwrap() {
        n += matches!(ev, MkvEvent::Frame(_)) as usize;
    }
    // (H.264 decode times need 2 frames of look-ahead, released at the end of input.)
    assert_eq!(
        n,
        live.frames.len() - 2,
        "blocks are handed out as soon as they are complete"
    );
}

#[test]
fn cues_and_seek() {
    let data = std::fs::read(fixture("h264_aac.mkv")).unwrap();
    let mut d = Demuxer::new();
    d.push(&data);
    d.finish();
    let mut all = Vec::new();
    while let Some(ev) = d.poll().unwrap() {
        if let MkvEvent::Frame(f) = ev {
            all.push(f);
        }
    }
    assert!(d.cues_offset().is_some());
    assert!(!d.cue_points().is_empty());
    let off = d.seek_offset(1500).unwrap();
    d.seek(off);
    d.push(&data[off as usize..]);
    d.finish();
    let mut first = None;
    while let Some(ev) = d.poll().unwrap() {
        match ev {
            MkvEvent::Frame(f) if f.track == 1 => {
                first.get_or_insert(f);
            }
            _ => {}
        }
    }
    let first = first.unwrap();
    assert!(first.keyframe && first.track == 1);
    assert!(first.pts() <= 1500 && first.pts() >= 900, "{}", first.pts());
    let pos = all
        .iter()
        .position(|f| *f == first)
        .expect("same frame as in a linear read");
    assert!(pos > 0);

    // Cues reached through the SeekHead, without reading the clusters.
    let mut d = Demuxer::new();
    let head = 4096.min(data.len());
    d.push(&data[..head]);
    let mut tracks = false;
    while let Some(ev) = d.poll().unwrap() {
        if let MkvEvent::Tracks(_) = ev {
            tracks = true;
            break;
        }
    }
    assert!(tracks);
    let cues = d.cues_offset().unwrap();
    d.seek(cues);
    d.push(&data[cues as usize..]);
    d.finish();
    let mut got = 0;
    while let Some(ev) = d.poll().unwrap() {
        if let MkvEvent::Cues(c) = ev {
            got = c.len();
        }
    }
    assert!(got >= 2);
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mist-ebml-{}-{name}", std::process::id()))
}

fn write(tracks: &[Track], frames: &[Frame], doc_type: DocType, mode: WriteMode) -> Vec<u8> {
    let opts = WriterOptions {
        doc_type,
        mode,
        ..Default::default()
    };
    let mut w = Writer::new(tracks, opts).unwrap();
    let mut out = Vec::new();
    for f in frames {
        w.write_frame(f, &mut out).unwrap();
    }
    let fin = w.finish();
    out.extend_from_slice(&fin.tail);
    if mode == WriteMode::Live {
        assert!(fin.patches.is_empty());
    }
    for p in fin.patches {
        let o = p.offset as usize;
        out[o..o + p.bytes.len()].copy_from_slice(&p.bytes);
    }
    out
}

/// Same frames per track (the interleaving of tracks may differ: video waits for decode times).
fn assert_same_frames(a: &[Frame], b: &[Frame], what: &str) {
    let short = |f: &Frame| (f.track, f.dts, f.pts_offset, f.keyframe, f.data.len());
    assert_eq!(a.len(), b.len(), "{what}: frame count");
    let mut ids: Vec<u32> = b.iter().map(|f| f.track).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let x: Vec<&Frame> = a.iter().filter(|f| f.track == id).collect();
        let y: Vec<&Frame> = b.iter().filter(|f| f.track == id).collect();
        assert_eq!(x.len(), y.len(), "{what}: track {id} frame count");
        for (i, (x, y)) in x.iter().zip(&y).enumerate() {
            assert!(
                x == y,
                "{what}: track {id} frame {i}: {:?} != {:?}",
                short(x),
                short(y)
            );
        }
    }
}

fn ffmpeg_errors(args: &[&str]) -> String {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error"])
        .args(args)
        .output()
        .expect("ffmpeg");
    assert!(
        o.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ffprobe_duration(path: &Path) -> Option<f64> {
    let o = Command::new("ffprobe")
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
        .ok()?;
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

#[test]
fn write_live_and_finalised() {
    require_ffprobe();
    for name in ["h264_aac.mkv", "vp9_opus.webm", "hevc_opus.mkv"] {
        let src = demux(&std::fs::read(fixture(name)).unwrap(), 4096).unwrap();
        let dt = src.doc_type.unwrap();
        for mode in [WriteMode::Live, WriteMode::Finalised] {
            let bytes = write(&src.tracks, &src.frames, dt, mode);
            // Our own reader gets the same frames back.
            let back = demux(&bytes, 777).unwrap();
            assert_same_frames(&back.frames, &src.frames, &format!("{name} {mode:?}"));
            assert_eq!(back.tracks.len(), src.tracks.len());
            assert_eq!(back.doc_type, Some(dt));
            if mode == WriteMode::Finalised {
                assert!(back.cues > 0);
                assert!(
                    (back.duration_ms.unwrap() - 2000.0).abs() < 100.0,
                    "{name}: {:?}",
                    back.duration_ms
                );
            }
            let ext = if dt == DocType::Webm { "webm" } else { "mkv" };
            let path = tmp(&format!("{name}-{mode:?}.{ext}"));
            std::fs::write(&path, &bytes).unwrap();
            let p = path.to_str().unwrap();
            let expect = per_stream(&ours(&src));
            let got = per_stream(&ffprobe_packets(&path));
            assert_eq!(got.len(), expect.len(), "{name} {mode:?}");
            for (g, e) in got.iter().zip(&expect) {
                assert_eq!(g.len(), e.len(), "{name} {mode:?} packet count");
                let gk: Vec<bool> = g.iter().map(|x| x.1).collect();
                let ek: Vec<bool> = e.iter().map(|x| x.1).collect();
                assert_eq!(gk, ek, "{name} {mode:?} keyframes");
                assert_eq!(g, e, "{name} {mode:?} timestamps");
            }
            assert_eq!(
                ffmpeg_errors(&["-i", p, "-f", "null", "-"]),
                "",
                "{name} {mode:?} decode"
            );
            if mode == WriteMode::Finalised {
                let dur = ffprobe_duration(&path).expect("finalised file has a duration");
                assert!((dur - 2.0).abs() < 0.1, "{name} duration {dur}");
                assert_eq!(
                    ffmpeg_errors(&["-ss", "1", "-i", p, "-frames:v", "1", "-f", "null", "-"]),
                    "",
                    "{name} seek"
                );
            }
            std::fs::remove_file(&path).ok();
        }
    }
}

#[test]
fn live_output_readable_while_growing() {
    let src = demux(&std::fs::read(fixture("h264_aac.mkv")).unwrap(), 4096).unwrap();
    let mut w = Writer::new(&src.tracks, WriterOptions::default()).unwrap();
    let mut out = Vec::new();
    let half = src.frames.len() / 2;
    for f in &src.frames[..half] {
        w.write_frame(f, &mut out).unwrap();
    }
    // Every frame written so far is readable from the bytes written so far.
    let mut d = Demuxer::new();
    d.push(&out);
    let mut n = 0;
    while let Some(ev) = d.poll().unwrap() {
        n += matches!(ev, MkvEvent::Frame(_)) as usize;
    }
    assert_eq!(
        n,
        half - 2,
        "all but the 2 frames H.264 decode times wait for"
    );
    // ffmpeg reads the unfinished file too: every packet, no errors.
    require_ffprobe();
    let path = tmp("growing.mkv");
    std::fs::write(&path, &out).unwrap();
    assert_eq!(ffprobe_packets(&path).len(), half);
    assert_eq!(
        ffmpeg_errors(&["-i", path.to_str().unwrap(), "-f", "null", "-"]),
        ""
    );
    std::fs::remove_file(&path).ok();
}

#[test]
fn webm_rejects_other_codecs() {
    let t = Track::new(1, Codec::H264);
    let opts = WriterOptions {
        doc_type: DocType::Webm,
        ..Default::default()
    };
    assert!(matches!(
        Writer::new(&[t], opts),
        Err(MediaError::Unsupported { .. })
    ));
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// What damaged Matroska may be refused with: never `NeedMore` (the demuxer waits for more
/// bytes itself, and says so with `Ok(None)`).
fn refused_as_damage(e: &MediaError) -> bool {
    matches!(
        e,
        MediaError::Malformed { .. } | MediaError::TooLarge { .. } | MediaError::Unsupported { .. }
    )
}

fn hostile_run(data: &[u8], chunk: usize) {
    let mut d = Demuxer::with_limits(Limits {
        max_leaf: 1 << 20,
        max_depth: 16,
    });
    for c in data.chunks(chunk) {
        d.push(c);
        loop {
            match d.poll() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(refused_as_damage(&e), "{e:?}");
                    return;
                }
            }
        }
        assert!(
            d.buffered() <= (1 << 20) + 64 + chunk,
            "buffered {}",
            d.buffered()
        );
    }
    d.finish();
    loop {
        match d.poll() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                assert!(refused_as_damage(&e), "{e:?}");
                break;
            }
        }
    }
}

#[test]
fn hostile_input_no_panic_bounded() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for name in FIXTURES {
        let data = std::fs::read(fixture(name)).unwrap();
        for len in (0..data.len()).step_by(997) {
            hostile_run(&data[..len], 4096);
        }
        for _ in 0..150 {
            let mut m = data.clone();
            for _ in 0..1 + xorshift(&mut seed) % 8 {
                let i = (xorshift(&mut seed) % m.len() as u64) as usize;
                m[i] = xorshift(&mut seed) as u8;
            }
            hostile_run(&m, 1 + (xorshift(&mut seed) % 5000) as usize);
        }
    }
    // Huge declared sizes: nothing is allocated for them.
    let mut evil = vec![
        0x1A, 0x45, 0xDF, 0xA3, 0x80, 0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xFF,
    ];
    evil.extend_from_slice(&[
        0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xA3, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0x81,
    ]);
    let mut d = Demuxer::new();
    d.push(&evil);
    let r = loop {
        match d.poll() {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(matches!(r, Err(MediaError::TooLarge { .. })), "{r:?}");
    // Deep nesting of unknown-size masters.
    let mut deep = Vec::new();
    for _ in 0..100 {
        deep.extend_from_slice(&[0xA0, 0xFF]);
    }
    let mut d = Demuxer::new();
    d.push(&deep);
    let mut r = Ok(None);
    for _ in 0..200 {
        r = d.poll();
        if !matches!(r, Ok(Some(_))) {
            break;
        }
    }
    assert!(
        r.is_ok() || matches!(r, Err(MediaError::TooLarge { .. })),
        "{r:?}"
    );
}
