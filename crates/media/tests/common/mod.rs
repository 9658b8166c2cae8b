//! Helpers shared by the media crate's tests: fixtures, scratch files, running ffmpeg/ffprobe
//! (which must be installed: a test never passes by skipping its check), and a counting
//! allocator for the allocation-bound tests.
#![allow(dead_code)]

pub mod alloc;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `tests/fixtures/REL`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The bytes of `tests/fixtures/REL`.
pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    let p = fixture(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A scratch directory `mist-TAG-PID` in the temporary directory, created (not emptied), and
/// removed when the test binary exits.
pub fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mist-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    remove_at_exit(&d);
    d
}

/// Removes `dir` when this process exits: libtest ends with `exit` (also after a failed test),
/// which runs the C library's `atexit` handlers; a static is never dropped.
fn remove_at_exit(dir: &Path) {
    use std::sync::{Mutex, Once};
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    static HOOK: Once = Once::new();
    extern "C" {
        fn atexit(f: extern "C" fn()) -> i32;
    }
    extern "C" fn remove_all() {
        let dirs = std::mem::take(&mut *DIRS.lock().unwrap_or_else(|p| p.into_inner()));
        for d in dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    let mut dirs = DIRS.lock().unwrap_or_else(|p| p.into_inner());
    if !dirs.iter().any(|d| d == dir) {
        dirs.push(dir.to_path_buf());
    }
    // SAFETY: the C library's atexit, given a function without arguments that does not unwind
    // (it ignores every error).
    HOOK.call_once(|| unsafe {
        atexit(remove_all);
    });
}

/// Whether `tool ARG` runs and exits 0.
pub fn tool_runs(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Panics with a clear message unless `tool ARG` runs: a skipped check would pass silently
/// (scripts/test installs every tool the tests use).
pub fn require_tool(tool: &str, arg: &str) {
    assert!(
        tool_runs(tool, arg),
        "`{tool} {arg}` does not run: {tool} is missing (scripts/test installs it)"
    );
}

/// Panics when ffmpeg or ffprobe is missing.
pub fn require_ffmpeg() {
    assert!(
        tool_runs("ffmpeg", "-version") && tool_runs("ffprobe", "-version"),
        "ffmpeg/ffprobe not installed (scripts/test installs them)"
    );
}

/// Runs `args[0] args[1..]` in `dir`: (success, stdout, stderr).
pub fn run_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {} ({e}; scripts/test installs it)", args[0]));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// The video frames ffprobe decodes from `input` (a manifest or file, relative to `dir`).
pub fn video_frames(dir: &Path, input: &str) -> u64 {
    let (ok, out, err) = run_in(
        dir,
        &[
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            input,
        ],
    );
    assert!(ok, "ffprobe {input}: {err}");
    out.split_whitespace()
        .next()
        .unwrap_or("")
        .parse()
        .unwrap_or_else(|_| panic!("frame count of {input}: {out:?}"))
}

/// `ffmpeg -nostdin -v error PRE… -i INPUT -f null -`: decodes everything, keeps the output.
pub fn ffmpeg_decode(input: &Path, pre: &[&str]) -> Output {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error"])
        .args(pre)
        .arg("-i")
        .arg(input)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg (scripts/test installs it)")
}
