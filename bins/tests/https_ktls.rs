//! End to end: kTLS in MistOutHTTPS. A VoD stream (ffmpeg-made MP4 loaded into shared memory)
//! is fetched with curl over https:// from MistOutHTTPS and over http:// from MistOutHTTP: the
//! bodies (progressive FLV and MP4, an HLS segment) must be the same bytes, and ffmpeg decodes
//! the HTTPS-FLV. Where this machine's kernel takes the `tls` upper layer protocol, MistOutHTTPS
//! must say that kTLS is on (a silent fall back to rustls fails the test); where it does not, it
//! must say that kTLS is not available. With `MIST_KTLS=0` it tries nothing and says neither.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn shm() -> &'static PathBuf {
    shared_shm("ktls")
}

fn media() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let p = binary_dir("ktls").join("vod.mp4");
        make_mp4(&p, "320x240", 6);
        p
    })
}

/// MistOutHTTPS alone on a free port with `cert`/`key`, its log in `log`, `env` added.
fn https_out(cert: &Path, key: &Path, log: &Path, env: &[(&str, &str)]) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_MistOutHTTPS"))
        .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-g", "4"])
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .env("MIST_SHM_DIR", shm())
        .env_remove("MIST_CONTROL")
        .env_remove("MIST_KTLS")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start MistOutHTTPS");
    let p = Proc(child);
    assert!(
        wait_port(port, Duration::from_secs(10)),
        "MistOutHTTPS never listened"
    );
    (p, port)
}

fn curl(url: &str, ca: &Path) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "60", "--cacert"])
        .arg(ca)
        .arg(url)
        .output()
        .expect("run curl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The same bodies over https:// (port `tls`) as over http:// (port `plain`).
fn same_bytes(tls: u16, plain: u16, ca: &Path) {
    let playlist = String::from_utf8(curl(&url(plain, "/hls/ktlsvod/index.m3u8"), ca)).unwrap();
    let variant = playlist
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("a variant playlist")
        .to_string();
    let media_pl =
        String::from_utf8(curl(&url(plain, &format!("/hls/ktlsvod/{variant}")), ca)).unwrap();
    let seg = media_pl
        .lines()
        .find(|l| l.contains(".ts"))
        .expect("a segment")
        .to_string();
    let dir = variant.rsplit_once('/').map_or("", |(d, _)| d);
    let seg_path = if dir.is_empty() {
        format!("/hls/ktlsvod/{seg}")
    } else {
        format!("/hls/ktlsvod/{dir}/{seg}")
    };
    for path in ["/ktlsvod.flv", "/ktlsvod.mp4", seg_path.as_str()] {
        let want = curl(&url(plain, path), ca);
        assert!(
            want.len() > 10_000,
            "{path}: only {} bytes over HTTP",
            want.len()
        );
        let got = curl(&format!("https://127.0.0.1:{tls}{path}"), ca);
        assert!(
            got == want,
            "{path}: {} bytes over HTTPS differ from the {} over HTTP",
            got.len(),
            want.len()
        );
    }
    // ffmpeg decodes the HTTPS-FLV to its end.
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-hide_banner", "-nostdin", "-v", "error"])
        .args(["-ca_file"])
        .arg(ca)
        .args(["-i", &format!("https://127.0.0.1:{tls}/ktlsvod.flv")])
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert!(
        out.status.success() && frames >= 140,
        "ffmpeg over HTTPS-FLV: {frames} frames; {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The log of a process, after waiting up to 5 s for `line` to show up.
fn log_with(log: &Path, line: &str) -> String {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(line) || Instant::now() > end {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn https_bodies_are_right_with_ktls_where_the_kernel_has_it() {
    shm();
    let _vod = load_vod("ktlsvod", media());
    let certs = TempDir::new("ktls-cert");
    let (cert, key) = self_signed(certs.path());
    let (_plain, plain) = http_out(shm(), &[]);
    let has = mist_connector::ktls::kernel_has_ktls();
    eprintln!("this kernel {} kTLS", if has { "has" } else { "has no" });

    let log = certs.path().join("on.log");
    let (tls_proc, tls) = https_out(&cert, &key, &log, &[]);
    same_bytes(tls, plain, &cert);
    if has {
        let text = log_with(&log, "kTLS on");
        assert!(
            text.contains("kTLS on") && !text.contains("kTLS not available"),
            "the kernel has kTLS but MistOutHTTPS did not use it:\n{text}"
        );
    } else {
        let text = log_with(&log, "kTLS not available");
        assert!(
            text.contains("kTLS not available") && !text.contains("kTLS on"),
            "no kTLS in this kernel: MistOutHTTPS should say so once:\n{text}"
        );
        assert_eq!(text.matches("kTLS not available").count(), 1, "{text}");
    }
    drop(tls_proc);

    // Turned off: rustls does the records, and no attempt is made.
    let log = certs.path().join("off.log");
    let (off_proc, tls) = https_out(&cert, &key, &log, &[("MIST_KTLS", "0")]);
    same_bytes(tls, plain, &cert);
    drop(off_proc);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("kTLS on") && !text.contains("kTLS not available"),
        "MIST_KTLS=0 and still a kTLS attempt:\n{text}"
    );
}
