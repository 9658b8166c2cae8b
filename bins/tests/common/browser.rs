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
    play_js_go(modules, secs, jobs, None)
}

/// [`play_js`] whose hls/dash players wait for `go` (play.js `PLAY_GO`): once the browser and
/// its pages are up, `go`.ready appears; the players start at the Unix ms then written to `go`
/// (see [`PlayGo`]).
pub fn play_js_go(
    modules: &Path,
    secs: u32,
    jobs: &[String],
    go: Option<&Path>,
) -> Vec<serde_json::Value> {
    play_js_env(modules, secs, jobs, go, &[])
}

/// [`play_js_go`] with environment variables for play.js (`SPKI`: a certificate key Chromium
/// trusts).
pub fn play_js_env(
    modules: &Path,
    secs: u32,
    jobs: &[String],
    go: Option<&Path>,
    env: &[(&str, &str)],
) -> Vec<serde_json::Value> {
    let mut cmd = Command::new("timeout");
    cmd.envs(env.iter().copied());
    if let Some(go) = go {
        cmd.env("PLAY_GO", go);
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

/// The go signal of [`play_js_go`].
pub struct PlayGo(pub PathBuf);

impl PlayGo {
    /// Waits (up to 90 s) until play.js has its pages loaded.
    pub fn wait_ready(&self) {
        let ready = self.0.with_extension("ready");
        let end = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while !ready.exists() {
            assert!(
                std::time::Instant::now() < end,
                "play.js never loaded its pages"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Starts player `i` at `at[i]` (the last time for the players after it).
    pub fn go(&self, at: &[std::time::SystemTime]) {
        let ms: Vec<String> = at
            .iter()
            .map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
                    .to_string()
            })
            .collect();
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, ms.join("\n")).unwrap();
        std::fs::rename(&tmp, &self.0).unwrap();
    }
}

/// `player=URL` jobs for [`play_js`]: each (player, path) on `base`.
pub fn jobs_at(base: &str, jobs: &[(&str, &str)]) -> Vec<String> {
    jobs.iter()
        .map(|(p, path)| format!("{p}={base}{path}"))
        .collect()
}

/// A player of play.js reported no error, fatal or not.
pub fn assert_no_player_errors(r: &serde_json::Value) {
    assert!(
        r["fatal"].as_array().is_some_and(|a| a.is_empty()),
        "player errors: {r}"
    );
    assert!(
        r["errors"].as_array().is_some_and(|a| a.is_empty()),
        "non-fatal player errors: {r}"
    );
}

/// A player of play.js played the 640x360 test picture: it started, its currentTime advanced
/// at least `advanced` s, and it reported no error.
pub fn assert_played_640x360(r: &serde_json::Value, advanced: f64) {
    assert_eq!(r["started"], true, "never started playing: {r}");
    assert!(
        r["advanced"].as_f64().unwrap_or(0.0) >= advanced,
        "currentTime advanced less than {advanced} s: {r}"
    );
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{r}"
    );
    assert_no_player_errors(r);
}
