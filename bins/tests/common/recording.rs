//! What the recording tests (record, record_ends, record_params) ask of a recorded file and of
//! the RECORDING_END payloads: ffprobe's and ffmpeg's view of the file, the payload lines, a
//! small tmpfs to fill, the VoD source they record from.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::files_in;

/// What ffprobe and ffmpeg find in a recorded file.
pub struct Probe {
    pub duration: f64,
    pub streams: Vec<String>,
    /// ffmpeg decoding the whole file: stderr at level error.
    pub decode_errors: String,
    /// Pts (s) of the first video frame (in file order) and whether it is a keyframe.
    pub first_video: Option<(f64, bool)>,
    /// The highest video pts (s).
    pub last_video: Option<f64>,
}

/// Duration, codecs, video packets and decode errors of `file`.
pub fn probe(file: &Path) -> Probe {
    let (duration, streams) = format_probe(file);
    let mut pk = video_packets(file);
    let first_in_file = pk.first().copied();
    pk.sort_by(|a, b| a.0.total_cmp(&b.0));
    Probe {
        duration,
        streams,
        decode_errors: decode_errors(file),
        first_video: first_in_file,
        last_video: pk.last().map(|p| p.0),
    }
}

/// `format.duration` (-1 without one) and the codec names ffprobe finds; ffprobe must read it.
pub fn format_probe(file: &Path) -> (f64, Vec<String>) {
    let out = Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error", "-of", "json"])
        .args(["-show_entries", "format=duration:stream=codec_name"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(-1.0);
    let streams = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap_or("").to_string())
        .collect();
    (duration, streams)
}

/// Video packets of a file as ffprobe reads them: (pts s, keyframe), in file order.
pub fn video_packets(file: &Path) -> Vec<(f64, bool)> {
    let out = Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {file:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (t, f) = l.split_once(',')?;
            Some((t.parse().ok()?, f.contains('K')))
        })
        .collect()
}

/// ffmpeg decoding the whole file: its errors (empty when clean).
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The container duration ffprobe reports (-1 without one).
pub fn duration(file: &Path) -> f64 {
    let out = Command::new("timeout")
        .args([
            "30",
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(-1.0)
}

/// One RECORDING_END payload: its 12 lines, checked to each end in `\n`.
pub fn payload_lines(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    assert_eq!(lines.len(), 13, "{text:?}");
    assert_eq!(lines.pop().as_deref(), Some(""), "{text:?}");
    lines
}

/// Every payload in `dir` (complete ones: the handler may still be writing the newest).
pub fn payloads(dir: &Path) -> Vec<Vec<String>> {
    std::thread::sleep(Duration::from_millis(300));
    files_in(dir).iter().map(|f| payload_lines(f)).collect()
}

/// Makes the VoD source of the recording tests: 6 s of testsrc2 + sine in MP4, H.264 without
/// B-frames (ultrafast) with a keyframe every 2 s, and AAC.
pub fn vod_source(path: &Path) {
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac"])
        .arg(path)
        .status()
        .expect("ffmpeg (scripts/test installs it)");
    assert!(st.success());
}

/// Mounts a 5 MB tmpfs on `dir` (root, or passwordless sudo); unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path) -> Tmpfs {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = if root {
            Command::new("mount")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "mount"]);
            c
        };
        let st = cmd
            .args(["-t", "tmpfs", "-o", "size=5m,mode=0777", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "this test mounts a 5 MB tmpfs: it needs root or passwordless sudo"
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = Command::new("sudo")
            .args(["-n", "umount"])
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}
