//! Headless Chromium for the browser tests: Debian `chromium` (apt-get, as root; scripts/test
//! installs it too) and the npm packages pinned in tests/browser/package-lock.json (`npm ci` into
//! target/browser-node_modules). Missing tools fail the tests (never skip).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn ensure_chromium() {
    if Path::new(CHROMIUM).exists() {
        return;
    }
    let st = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "chromium"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        st.is_ok_and(|s| s.success()) && Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing and apt-get could not install it (run scripts/test as root)"
    );
}

/// The pinned npm packages (playwright-core, hls.js, dashjs); returns the node_modules path.
pub fn ensure_node_modules() -> PathBuf {
    let src = root().join("tests/browser");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("browser-node_modules");
    std::fs::create_dir_all(&dir).unwrap();
    let lock =
        std::fs::read(src.join("package-lock.json")).expect("tests/browser/package-lock.json");
    let installed = std::fs::read(dir.join("package-lock.json")).ok();
    let modules = dir.join("node_modules");
    if installed.as_deref() != Some(&lock[..]) || !modules.join("playwright-core").exists() {
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .current_dir(&dir)
            .status()
            .expect("run npm (is nodejs installed? scripts/test installs it)");
        assert!(st.success(), "npm ci failed in {}", dir.display());
    }
    modules
}

/// Runs tests/browser/play.js with these `player=url` jobs, watching each for `secs` seconds;
/// returns its JSON lines (one per job). Panics when it fails or reports fewer lines.
pub fn play_js(modules: &Path, secs: u32, jobs: &[String]) -> Vec<serde_json::Value> {
    play_js_at(modules, secs, jobs, None)
}

/// [`play_js`], with the hls/dash players started at `at` (the browser is launched before).
pub fn play_js_at(
    modules: &Path,
    secs: u32,
    jobs: &[String],
    at: Option<std::time::SystemTime>,
) -> Vec<serde_json::Value> {
    let mut cmd = Command::new("timeout");
    if let Some(at) = at {
        let ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        cmd.env("PLAY_AT", ms.to_string());
    }
    let out = cmd
        .arg("120")
        .arg("node")
        .arg(root().join("tests/browser/play.js"))
        .arg(modules)
        .arg(secs.to_string())
        .args(jobs)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "play.js failed:\n{stdout}\n{stderr}");
    if std::env::var_os("PLAY_DEBUG").is_some() {
        eprintln!("{stderr}");
    }
    let results: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(results.len(), jobs.len(), "{stdout}\n{stderr}");
    for r in &results {
        eprintln!("{r}");
    }
    results
}
