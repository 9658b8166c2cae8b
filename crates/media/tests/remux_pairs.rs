//! Every (input container, output container) pair through `mist_media::remux`, checked with the real
//! tools: ffprobe must see the same codecs, sizes, packet and keyframe counts per stream type and the
//! same duration as in the ffmpeg-made input, `ffmpeg -v error -i OUT -f null -` must print
//! nothing, and the decoded video frames must be identical (framemd5 of input and output).
//!
//! Fails (never skips) when ffmpeg/ffprobe are missing: scripts/test installs them.

mod common;

use common::{fixture, require_ffmpeg};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mist_media::remux::{remux, Input, Output, Stats};

/// Remuxes the file `input` into the file `output` (the crate touches no file: opening them is ours).
fn remux_file(input: &Path, i: Input, output: &Path, o: Output) -> std::io::Result<Stats> {
    let file = std::fs::File::open(input)?;
    let len = file.metadata()?.len();
    let out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(output)?);
    remux(file, len, i, out, o)
}

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mist-remux-pairs-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What ffprobe says about one stream type of a file.
#[derive(Debug, Clone)]
struct StreamInfo {
    codec: String,
    width: u32,
    height: u32,
    packets: usize,
    keyframes: usize,
    /// Last pts minus first pts, ms (compared within a tolerance, not with `==`).
    span_ms: f64,
}

#[derive(Debug)]
struct Probe {
    /// by codec_type ("video", "audio")
    streams: BTreeMap<String, StreamInfo>,
}

impl StreamInfo {
    fn same(&self, o: &StreamInfo) -> bool {
        // times in the model are whole milliseconds: allow 2 ms of rounding at either end
        (
            self.codec.as_str(),
            self.width,
            self.height,
            self.packets,
            self.keyframes,
        ) == (o.codec.as_str(), o.width, o.height, o.packets, o.keyframes)
            && (self.span_ms - o.span_ms).abs() <= 2.5
    }
}

fn run(cmd: &mut Command) -> (String, String) {
    let o = cmd.output().expect("run ffmpeg/ffprobe");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{cmd:?} failed: {err}");
    (out, err)
}

fn probe(path: &Path) -> Probe {
    let (out, err) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=index,codec_type,codec_name,width,height",
            "-of",
            "default=nw=0",
        ])
        .arg(path));
    assert_eq!(err, "", "ffprobe errors on {}", path.display());
    let mut by_index: BTreeMap<usize, (String, StreamInfo)> = BTreeMap::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    for line in out.lines() {
        match line {
            "[STREAM]" => cur.clear(),
            "[/STREAM]" => {
                let idx: usize = cur["index"].parse().unwrap();
                let num = |k: &str| cur.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
                by_index.insert(
                    idx,
                    (
                        cur["codec_type"].clone(),
                        StreamInfo {
                            codec: cur["codec_name"].clone(),
                            width: num("width"),
                            height: num("height"),
                            packets: 0,
                            keyframes: 0,
                            span_ms: 0.0,
                        },
                    ),
                );
            }
            l => {
                if let Some((k, v)) = l.split_once('=') {
                    cur.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    let (out, _) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    let mut spans: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split(',');
        let idx: usize = it
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("ffprobe packet line {line:?}"));
        let pts: f64 = it
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or_else(|_| panic!("no pts: {line:?}"));
        let flags = it.next().unwrap_or("");
        let s = &mut by_index.get_mut(&idx).unwrap().1;
        s.packets += 1;
        s.keyframes += flags.starts_with('K') as usize;
        let r = spans.entry(idx).or_insert((pts, pts));
        r.0 = r.0.min(pts);
        r.1 = r.1.max(pts);
    }
    for (idx, (lo, hi)) in spans {
        by_index.get_mut(&idx).unwrap().1.span_ms = (hi - lo) * 1000.0;
    }
    let mut streams = BTreeMap::new();
    for (_, (kind, s)) in by_index {
        assert!(
            streams.insert(kind.clone(), s).is_none(),
            "two {kind} streams in {}",
            path.display()
        );
    }
    Probe { streams }
}

fn decode_errors(path: &Path) -> String {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(o.status.success(), "ffmpeg failed on {}", path.display());
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The md5 of every decoded video frame, in order (timestamps left out).
fn video_md5s(path: &Path) -> Vec<String> {
    let (out, _) = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "framemd5", "-"]));
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

struct Case {
    fixture: &'static str,
    input: Input,
    /// The outputs that can carry every track of the fixture, and that Debian's ffmpeg 5.1 reads:
    /// it cannot read HEVC/VP9 in (enhanced) FLV, FLV has no Opus, VP9 is neither in our TS nor in
    /// our MP4 writer, our MP4 writer has no MP3, and WebM takes only VP8/VP9/AV1 and Opus.
    outputs: &'static [Output],
}

use Output::{Flv, Fmp4, Mkv, Mp4, Ts, Webm};

const INPUTS: &[Case] = &[
    Case {
        fixture: "ts/h264_aac.ts",
        input: Input::Ts,
        outputs: &[Ts, Flv, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "ts/hevc_aac.ts",
        input: Input::Ts,
        outputs: &[Ts, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "ts/h264_opus.ts",
        input: Input::Ts,
        outputs: &[Ts, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "ts/h264_mp3.ts",
        input: Input::Ts,
        outputs: &[Ts, Flv, Mkv],
    },
    Case {
        fixture: "flv/testsrc_320x240_1s.flv",
        input: Input::Flv,
        outputs: &[Ts, Flv, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "mp4/h264_aac.mp4",
        input: Input::Mp4,
        outputs: &[Ts, Flv, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "mp4/h264_aac_frag.mp4",
        input: Input::Mp4,
        outputs: &[Ts, Flv, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "mp4/hevc_aac.mp4",
        input: Input::Mp4,
        outputs: &[Ts, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "mkv/h264_aac.mkv",
        input: Input::Mkv,
        outputs: &[Ts, Flv, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "mkv/live_h264_aac.mkv",
        input: Input::Mkv,
        outputs: &[Ts, Flv, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "mkv/hevc_opus.mkv",
        input: Input::Mkv,
        outputs: &[Ts, Mp4, Fmp4, Mkv],
    },
    Case {
        fixture: "mkv/vp9_opus.webm",
        input: Input::Mkv,
        outputs: &[Mkv, Webm],
    },
];

fn ext(o: Output) -> &'static str {
    match o {
        Ts => "ts",
        Flv => "flv",
        Mp4 | Fmp4 => "mp4",
        Mkv => "mkv",
        Webm => "webm",
    }
}

fn check_pair(
    case: &Case,
    o: Output,
    dir: &Path,
    reference: &Probe,
    ref_md5: &[String],
) -> Result<(), String> {
    let name = format!(
        "{}-{:?}.{}",
        case.fixture.replace(['/', '.'], "_"),
        o,
        ext(o)
    );
    let out = dir.join(&name);
    let stats = remux_file(&fixture(case.fixture), case.input, &out, o)
        .map_err(|e| format!("{name}: remux: {e}"))?;
    let mut errs = Vec::new();
    if stats.frames_dropped != 0 || !stats.tracks_dropped.is_empty() {
        errs.push(format!(
            "dropped {} frames, tracks {:?}",
            stats.frames_dropped, stats.tracks_dropped
        ));
    }
    let e = decode_errors(&out);
    if !e.is_empty() {
        errs.push(format!("ffmpeg -v error: {e}"));
    }
    let p = probe(&out);
    let same = p.streams.len() == reference.streams.len()
        && p.streams
            .iter()
            .zip(&reference.streams)
            .all(|((k, a), (l, b))| k == l && a.same(b));
    if !same {
        errs.push(format!(
            "streams {:?} != input {:?}",
            p.streams, reference.streams
        ));
    }
    let md5 = video_md5s(&out);
    if md5 != ref_md5 {
        errs.push(format!(
            "decoded video differs: {} frames vs {} in the input",
            md5.len(),
            ref_md5.len()
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{} -> {name}: {}", case.fixture, errs.join("; ")))
    }
}

#[test]
fn every_pair_decodes_with_ffmpeg_to_the_same_frames() {
    require_ffmpeg();
    let dir = tmpdir();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in INPUTS {
        let input = fixture(case.fixture);
        let reference = probe(&input);
        assert!(
            reference.streams.contains_key("video") && reference.streams.contains_key("audio"),
            "{}",
            case.fixture
        );
        let ref_md5 = video_md5s(&input);
        assert!(!ref_md5.is_empty());
        for &o in case.outputs {
            checked += 1;
            if let Err(e) = check_pair(case, o, &dir, &reference, &ref_md5) {
                failures.push(e);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {checked} pairs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{checked} pairs checked");
}

/// Outputs that cannot carry a codec drop its track and say so, and the rest still decodes.
#[test]
fn uncarried_tracks_are_dropped_and_reported() {
    require_ffmpeg();
    let dir = tmpdir();
    let out = dir.join("opus.flv");
    let stats = remux_file(&fixture("ts/h264_opus.ts"), Input::Ts, &out, Output::Flv).unwrap();
    assert_eq!(stats.tracks_dropped.len(), 1);
    assert_eq!(stats.tracks_dropped[0].codec, mist_media::Codec::Opus);
    assert!(stats.frames_dropped > 0);
    assert_eq!(decode_errors(&out), "");
    let p = probe(&out);
    assert_eq!(p.streams.keys().collect::<Vec<_>>(), ["video"]);
    let _ = std::fs::remove_file(out);
}
