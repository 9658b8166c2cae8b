//! Small helpers every end-to-end test file used to copy: waiting for a condition, a process or a
//! stream, serialising the heavy tests of one binary, listing files, signals, raw HTTP GETs,
//! trigger handler scripts, a required tool.

use super::{http_raw, Controller};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Held by the tests of one test binary that must not run at once (several real-time encoders on
/// a small machine); a test that panicked does not poison it for the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Polls `f` until it holds; panics naming `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `f` until it gives a value; panics naming `what` after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to `within` for `child` to exit; None when it still runs.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if t.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `path` exists and `pred` holds for its text (up to 30 s); returns the text.
pub fn wait_file(path: &Path, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let t = std::fs::read_to_string(path).unwrap_or_default();
        if pred(&t) {
            return t;
        }
        assert!(
            Instant::now() < end,
            "{} never matched; it holds {t:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether process `pid` runs (a zombie, waiting to be reaped, does not).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty()
        && !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
}

/// Sends signal `sig` (a name or number, as `kill -SIG` takes it) to `pid`; true when delivered.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill")
        .success()
}

/// The entries of `dir` (not recursive), sorted; empty when it cannot be read.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Every file under `dir` (recursive), in directory order; empty when it cannot be read.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every file under `dir` (recursive), sorted.
pub fn walk_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v = walk(dir);
    v.sort();
    v
}

/// A free UDP port on loopback.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One shared-memory directory for this whole test binary (`mist-test-TAG-shm-PID`), also set
/// as this process's `MIST_SHM_DIR` for the in-process publishers and readers, removed when the
/// test binary exits. The first call names it.
pub fn shared_shm(tag: &str) -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = super::binary_dir(&format!("{tag}-shm"));
        std::env::set_var("MIST_SHM_DIR", &d);
        d
    })
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

/// Panics with a clear message unless `tool` runs (`tool ARG` exits 0): a test must never pass
/// by skipping its check. scripts/test installs every tool the tests use.
pub fn require_tool(tool: &str, arg: &str) {
    assert!(
        tool_runs(tool, arg),
        "`{tool} {arg}` does not run: {tool} is missing (scripts/test installs it)"
    );
}

/// One GET on a fresh connection (`Connection: close`, extra header lines in `extra`, each ended
/// by CRLF): (status line + headers, body). Panics when no HTTP head arrives within `timeout`.
pub fn http_get_with(port: u16, path: &str, extra: &str, timeout: Duration) -> (String, Vec<u8>) {
    let raw = http_raw(
        port,
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n"
        )
        .as_bytes(),
        timeout,
    );
    let p = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer for {path}"));
    (
        String::from_utf8_lossy(&raw[..p]).into_owned(),
        raw[p + 4..].to_vec(),
    )
}

/// [`http_get_with`] without extra headers, 30 s at most.
pub fn http_get(port: u16, path: &str) -> (String, Vec<u8>) {
    http_get_with(port, path, "", Duration::from_secs(30))
}

/// One GET as text: (status line + headers, body); an answer without a head is all head.
pub fn http_get_text(port: u16, path: &str) -> (String, String) {
    let raw = http_raw(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (h, b) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (h.to_string(), b.to_string())
}

/// The status code of an HTTP head (0 when there is none).
pub fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The value of header `name` in an HTTP head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A trigger handler script `DIR/NAME.sh`: appends its argv[1], its payload and a line `--` to
/// `DIR/NAME.log`, then runs `answer` (shell, with the payload in `$p`). Returns its path.
pub fn handler_script(dir: &Path, name: &str, answer: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("{name}.sh"));
    let log = dir.join(format!("{name}.log"));
    let body = format!(
        "#!/bin/sh\np=$(cat)\nprintf '%s\\n%s\\n--\\n' \"$1\" \"$p\" >> '{}'\n{answer}\n",
        log.display()
    );
    // Written to a temporary name and renamed: never exec a file still open for writing.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path.display().to_string()
}

/// The records of a [`handler_script`] log text: (argv[1], payload lines) per call.
pub fn handler_records(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    for l in text.lines() {
        if l == "--" {
            if !cur.is_empty() {
                let name = cur.remove(0);
                out.push((name, std::mem::take(&mut cur)));
            }
        } else {
            cur.push(l.to_string());
        }
    }
    out
}

/// Waits until the controller lists `stream` as active (up to 20 s), then a second more for a
/// keyframe or two in the buffer.
pub fn wait_stream(c: &Controller, stream: &str) {
    c.wait_active(stream, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
}

impl Controller {
    /// The names `active_streams` lists.
    pub fn active_streams(&self) -> Vec<String> {
        let a = self.api(&serde_json::json!({"active_streams": true}));
        a["active_streams"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `active_streams` lists `name`; panics after `within`.
    pub fn wait_active(&self, name: &str, within: Duration) {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.active_streams().iter().any(|s| s == name) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "stream {name} never became active (active: {:?})",
            self.active_streams()
        );
    }
}

/// Whether some socket listens on TCP `port` (from /proc/net/tcp and tcp6, state 0A), found
/// without connecting (`ffmpeg -listen 1` takes one connection only).
pub fn listening(port: u16) -> bool {
    let hex = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.len() > 3 && c[1].ends_with(&hex) && c[3] == "0A"
            })
        })
    })
}

/// Packets per codec type in a media file as ffprobe counts them (30 s at most), and the codec
/// names: (video packets, audio packets, codec names).
pub fn packet_counts(file: &Path) -> (u64, u64, Vec<String>) {
    let out = Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error", "-count_packets"])
        .args(["-show_streams", "-of", "json"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {file:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (mut video, mut audio, mut codecs) = (0, 0, Vec::new());
    for s in v["streams"].as_array().cloned().unwrap_or_default() {
        let n: u64 = s["nb_read_packets"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        codecs.push(s["codec_name"].as_str().unwrap_or("").to_string());
        match s["codec_type"].as_str() {
            Some("video") => video += n,
            Some("audio") => audio += n,
            _ => {}
        }
    }
    (video, audio, codecs)
}

/// A trigger handler `DIR/NAME.sh` that stores each payload in a file of its own in
/// `DIR/NAME/`: (the handler, that directory).
pub fn collector(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let h = dir.join(format!("{name}.sh"));
    // Written to a temporary name and renamed: never exec a file still open for writing.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, format!("#!/bin/sh\ncat > '{}/p.'$$\n", out.display())).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &h).unwrap();
    (h, out)
}

/// An independent RTMP receiver: `ffmpeg -listen 1` on `rtmp://127.0.0.1:PORT/app/key`, copying
/// what is published to it into `out` (FLV). Returns once it listens.
pub fn rtmp_receiver(port: u16, out: &Path) -> super::Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-listen", "1"])
        .args(["-f", "flv", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/app/key"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg (scripts/test installs it)");
    let p = super::Proc(child);
    wait_until("the receiver to listen", Duration::from_secs(10), || {
        listening(port)
    });
    p
}

/// Polls `f` every `every` until `done` holds for what it gives or `within` has passed; returns
/// the last value (the caller asserts on it).
pub fn poll_until<T>(
    within: Duration,
    every: Duration,
    mut f: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let end = Instant::now() + within;
    let mut v = f();
    while !done(&v) && Instant::now() < end {
        std::thread::sleep(every);
        v = f();
    }
    v
}

/// Decodes video from `url` for 4 s at a time, again while nothing decodes (the first request
/// starts the stream's input) for up to `within`: (frames, WxH) of the last try.
pub fn decode_when_up(url: &str, within: Duration) -> (usize, String) {
    let t = Instant::now();
    loop {
        let (frames, size) = super::decode_video_frames(url, Duration::from_secs(4));
        if frames > 0 || t.elapsed() > within {
            return (frames, size);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// GETs `path` until it answers 200 (the stream's first segments exist); panics with the last
/// answer after `within`.
pub fn wait_ok(port: u16, path: &str, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let (head, body) = http_get_text(port, path);
        if status_of(&head) == 200 {
            return;
        }
        assert!(
            Instant::now() < end,
            "{path} never became ready: {head}\r\n\r\n{body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// GETs the HLS master playlist `path` until it lists `variants` variants or more (the first
/// request starts the input); returns it, or panics with the last answer after `within`.
pub fn wait_master(port: u16, path: &str, variants: usize, within: Duration) -> String {
    let t = Instant::now();
    loop {
        let (head, body) = http_get_text(port, path);
        if head.starts_with("HTTP/1.1 200") && body.matches("#EXT-X-STREAM-INF").count() >= variants
        {
            return body;
        }
        assert!(
            t.elapsed() < within,
            "no master playlist with {variants} variants: {head}\n{body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The video and audio tracks of `stream` in `/json_STREAM.js`, and that answer.
pub fn track_counts(port: u16, stream: &str) -> (usize, usize, String) {
    let (_, info) = http_get_text(port, &format!("/json_{stream}.js"));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
    let tracks = v["meta"]["tracks"].as_object().cloned().unwrap_or_default();
    let count = |ty: &str| tracks.values().filter(|t| t["type"] == ty).count();
    (count("video"), count("audio"), info)
}

/// Whether a multicast datagram sent on `lo` comes back to a member on `lo`.
fn lo_multicast_works(group: &str) -> bool {
    use std::net::{Ipv4Addr, UdpSocket};
    let port = free_udp_port();
    let Ok(rx) = UdpSocket::bind((group, port)) else {
        return false;
    };
    let g: Ipv4Addr = group.parse().unwrap();
    if rx.join_multicast_v4(&g, &Ipv4Addr::LOCALHOST).is_err() {
        return false;
    }
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    {
        use std::os::fd::AsRawFd;
        let lo = libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        };
        // SAFETY: IP_MULTICAST_IF with a live in_addr of the size passed, on our own socket.
        unsafe {
            libc::setsockopt(
                tx.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_IF,
                (&lo as *const libc::in_addr).cast(),
                std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
            );
        }
    }
    let _ = tx.set_multicast_loop_v4(true);
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let _ = tx.send_to(b"ping", (group, port));
    let mut b = [0u8; 8];
    rx.recv(&mut b).is_ok()
}

/// Makes multicast to `group` work on `lo` (loopback has no MULTICAST flag by default; as root
/// this turns it on and routes 239.0.0.0/8 there); panics when it still does not.
pub fn ensure_lo_multicast(group: &str) {
    if !lo_multicast_works(group) {
        let _ = Command::new("ip")
            .args(["link", "set", "lo", "multicast", "on"])
            .status();
        let _ = Command::new("ip")
            .args(["route", "add", "239.0.0.0/8", "dev", "lo"])
            .status();
    }
    assert!(
        lo_multicast_works(group),
        "multicast on lo does not work here (needs `ip link set lo multicast on` as root)"
    );
}

impl Controller {
    /// The rows of `push_list`.
    pub fn push_list(&self) -> Vec<serde_json::Value> {
        self.api(&serde_json::json!({"push_list": true}))["push_list"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `active_streams` row of `stream` (longform: status, loss, health).
    pub fn stream_row(&self, stream: &str) -> serde_json::Value {
        let a = self.api(&serde_json::json!({"active_streams": {
            "fields": ["status", "loss", "health"], "longform": true}}));
        a["active_streams"][stream].clone()
    }
}
