//! Every command in README.md's code blocks, run as a new user would run it (issue 9).
//!
//! The commands run in README order inside a private network namespace (`unshare --net`, as root),
//! so the README's fixed ports (API 4242, RTMP 1935, HTTP 8080) are free whatever else runs on the
//! machine. What differs from a terminal: `ffplay URL` becomes `ffprobe URL` (no display in CI),
//! paths under `/tmp` and `/var/www` move into a scratch directory, the shared memory and control
//! socket live there too (`MIST_SHM_DIR`, `MIST_CONTROL`), and commands that run until stopped are
//! started, checked and stopped. The binaries are this test's own (the debug build cargo made for
//! it), not a second, release build: they are on `PATH` (as after `scripts/install`), the scratch
//! directory stands in for the repository root (`scripts/` links to the real one and
//! `target/release/` to this test's binaries) and a `cargo` stand-in there answers
//! `cargo build --release` at once, so the README's first command runs as written. JSON config
//! snippets must parse. Commands that cannot run in CI are in [`steps`] as
//! `Skip` with the test that covers them instead; a README command missing from [`steps`] fails
//! this test, so a new README command comes with its check.

mod common;

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the re-executed test binary that runs inside the network namespace.
const INSIDE: &str = "MIST_README_NETNS";

#[test]
fn readme_commands_run() {
    if std::env::var_os(INSIDE).is_some() {
        return run_readme();
    }
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "run the tests as root (a network namespace of its own)"
    );
    let st = Command::new("unshare")
        .args(["--net", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "readme_commands_run", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(INSIDE, "1")
        .status()
        .expect("run unshare (util-linux; scripts/test installs it)");
    assert!(st.success(), "a README command failed (see above)");
}

/// What the test does with one README command (its text with comments stripped and `\`
/// continuations joined).
enum Step {
    /// Runs to completion, must exit 0 and print `expect` on stdout.
    Run { expect: &'static str },
    /// Started in the background and kept until the end; `ready` is waited for.
    Start { ready: Ready },
    /// Runs for a few seconds, is stopped with SIGTERM, must exit 0 and leave `file` (relative
    /// to the scratch directory) that ffprobe reads.
    RunThenStop { file: &'static str },
    /// Not run here, for the given reason (which names the test that covers it).
    Skip(&'static str),
}

enum Ready {
    /// The controller's API answers.
    Api,
    /// The controller lists the stream as active.
    Stream(&'static str),
    /// The stream's metadata page exists in shared memory.
    Shm(&'static str),
    /// The stream is active and plays over RTMP with H.264 and AAC.
    Plays(&'static str),
}

/// Every README command and what to do with it.
fn steps() -> HashMap<&'static str, Step> {
    use Step::*;
    let probe = |expect| Run { expect };
    HashMap::from([
        (
            "cargo build --release && ./target/release/MistController",
            Start { ready: Ready::Api },
        ),
        ("scripts/test", Skip("the test runner that runs this test")),
        (
            "sudo PREFIX=/usr scripts/install",
            Skip("bins/tests/install.rs runs scripts/install into a DESTDIR"),
        ),
        (
            "sudo systemctl daemon-reload && sudo systemctl enable --now mistserver",
            Skip("needs a systemd host; scripts/systemd-security and bins/tests/package.rs check the unit"),
        ),
        (
            "certbot certonly --manual --preferred-challenges=http --manual-auth-hook MistUtilCertbot --deploy-hook MistUtilCertbot -d example.com",
            Skip("needs a public domain; bins/tests/certbot_pebble.rs runs certbot with these hooks against a local ACME server"),
        ),
        (
            "scripts/videogen -f flv rtmp://127.0.0.1/live/live+alice",
            Start { ready: Ready::Stream("live+alice") },
        ),
        ("ffplay rtmp://127.0.0.1/play/live+alice", probe("h264")),
        (
            r#"curl -g 'http://127.0.0.1:4242/api?command={"active_streams":true}'"#,
            probe("live+alice"),
        ),
        ("ffplay http://127.0.0.1:8080/live+alice.ts", probe("h264")),
        ("ffplay http://127.0.0.1:8080/hls/live+alice/index.m3u8", probe("h264")),
        ("ffplay http://127.0.0.1:8080/cmaf/live+alice/index.mpd", probe("h264")),
        ("ffplay http://127.0.0.1:8080/live+alice.aac", probe("aac")),
        ("curl http://127.0.0.1:8080/json_live+alice.js", probe("live+alice")),
        ("MistOutTS -s live+alice - | ffprobe -", probe("")),
        ("MistOutMP4 -s live+alice rec.mp4", RunThenStop { file: "rec.mp4" }),
        ("MistOutEBML -s live+alice rec.mkv", RunThenStop { file: "rec.mkv" }),
        (
            "MistOutTS -s live+alice 'ts-exec:ffmpeg -v error -i - -c copy -f flv rtmp://example.com/app/key'",
            Start { ready: Ready::Plays("live+copy") },
        ),
        (
            "MistOutHLS -s live+alice /var/www/alice/index.m3u8",
            RunThenStop { file: "www/alice/index.m3u8" },
        ),
        (
            "MistOutCMAF -s live+alice /var/www/alice/index.mpd",
            RunThenStop { file: "www/alice/index.mpd" },
        ),
        (
            "ffmpeg -re -i in.mp4 -c copy -f mpegts 'udp://239.1.1.1:5000?pkt_size=1316&ttl=4'",
            Skip("an encoder's feed to a multicast group on eth1; bins/tests/ts_live.rs plays a tsudp:// multicast source"),
        ),
        ("ffplay http://127.0.0.1:8080/hls/multi/index.m3u8", probe("h264")),
        (
            "scripts/multivideogen -f mpegts - | MistInTS -s multi -",
            Start { ready: Ready::Shm("multi2") },
        ),
        (
            "ffmpeg -v error -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine -t 30 -c:v libx264 -c:a aac /tmp/movie.mp4",
            probe(""),
        ),
        (
            "MistInMP4 -s movie -i 5 /tmp/movie.mp4 &",
            Start { ready: Ready::Shm("movie") },
        ),
        ("MistOutMP4 -s movie /tmp/copy.mp4", probe("")),
        (
            "ffprobe -v error -show_entries format=duration /tmp/copy.mp4",
            probe("duration=30"),
        ),
    ])
}

/// Blocks that show output, not commands (by their first line).
const OUTPUT_BLOCKS: &[&str] = &["Segment requests:", " viewers | server"];

/// One item of a README code block.
#[derive(Debug)]
enum Item {
    Command(String),
    /// A JSON snippet (a config): must parse.
    Json(String),
    /// A block of output.
    Output(String),
}

/// The commands and JSON snippets of README.md's code blocks, in order.
fn readme_items(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in text.lines() {
        if line.starts_with("```") {
            match block.take() {
                Some(lines) => items.extend(block_items(&lines)),
                None => block = Some(Vec::new()),
            }
        } else if let Some(b) = block.as_mut() {
            b.push(line);
        }
    }
    assert!(block.is_none(), "README.md: unterminated code block");
    items
}

fn block_items(lines: &[&str]) -> Vec<Item> {
    let Some(first) = lines.first() else {
        return Vec::new();
    };
    if OUTPUT_BLOCKS.iter().any(|p| first.starts_with(p)) {
        return vec![Item::Output(first.to_string())];
    }
    let mut out = Vec::new();
    let mut json = String::new();
    let mut cmd = String::new();
    for line in lines {
        if !json.is_empty() || line.trim_start().starts_with('{') {
            json.push_str(line);
            json.push('\n');
            if serde_json::from_str::<serde_json::Value>(&json).is_ok() {
                out.push(Item::Json(std::mem::take(&mut json)));
            }
            continue;
        }
        let line = strip_comment(line);
        if let Some(head) = line.strip_suffix('\\') {
            cmd.push_str(head.trim());
            cmd.push(' ');
            continue;
        }
        cmd.push_str(line.trim());
        let c = std::mem::take(&mut cmd);
        if !c.is_empty() {
            out.push(Item::Command(c));
        }
    }
    assert!(
        json.is_empty(),
        "README.md: a JSON snippet that does not parse:\n{json}"
    );
    out
}

/// The line without a trailing `   # comment` (a `#` after two spaces).
fn strip_comment(line: &str) -> &str {
    match line.find("  #") {
        Some(i) => line[..i].trim_end(),
        None => line.trim_end(),
    }
}

/// A process group started by `sh -c`, killed (the whole group) on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pid = self.0.id() as i32;
        // SAFETY: signalling the process group we created.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

struct Session {
    /// The scratch directory: the commands' working directory, standing in for the repository.
    work: PathBuf,
    /// This test's binaries.
    bin: PathBuf,
    background: Vec<Group>,
}

impl Session {
    /// The command as this test runs it: `ffplay` probes, scratch paths, the local RTMP target.
    fn rewrite(&self, cmd: &str) -> String {
        let w = self.work.display().to_string();
        let mut c = cmd
            .replace("/tmp/", &format!("{w}/tmp/"))
            .replace("/var/www/", &format!("{w}/www/"))
            .replace(
                "rtmp://example.com/app/key",
                "rtmp://127.0.0.1/live/live+copy",
            );
        if let Some(url) = c.strip_prefix("ffplay ") {
            c = format!("ffprobe -v error -show_entries stream=codec_name -of csv=p=0 {url}");
        }
        if c.starts_with("scripts/multivideogen") {
            // `multi` is the controller's ts-exec stream of the block above; by hand it is
            // another name, so both can run.
            c = c.replace("MistInTS -s multi -", "MistInTS -s multi2 -");
        }
        c.trim_end_matches('&').trim().to_string()
    }

    /// `sh -c CMD` (a simple command is exec'd, so that signals reach it), in a process group
    /// of its own.
    fn command(&self, cmd: &str) -> Command {
        let simple = !["|", "&&", ";"].iter().any(|op| cmd.contains(op));
        let mut c = Command::new("sh");
        c.arg("-c").arg(if simple {
            format!("exec {cmd}")
        } else {
            cmd.to_string()
        });
        // The `cargo` stand-in first, then this test's binaries.
        let path = format!(
            "{}:{}:{}",
            self.work.join("stand-in").display(),
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path)
            .env("MIST_SHM_DIR", self.work.join("shm"))
            .env_remove("CARGO_TARGET_DIR")
            .stdin(Stdio::null())
            .current_dir(&self.work)
            .process_group(0);
        if cmd.contains("MistController") {
            c.env("MIST_CONTROL", self.work.join("control.sock"));
        }
        c
    }

    fn run(&self, cmd: &str, expect: &str) {
        let mut c = self.command(cmd);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if common::wait_exit(&mut child, Duration::from_secs(120)).is_none() {
            // SAFETY: signalling the process group we created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            panic!("`{cmd}` still runs after 120 s");
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "`{cmd}`: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(expect), "`{cmd}` printed {stdout:?}");
    }

    fn start(&mut self, cmd: &str, ready: &Ready) {
        let mut g = Group(self.command(cmd).spawn().unwrap());
        let within = Duration::from_secs(60);
        let end = Instant::now() + within;
        while !self.ready(ready) {
            if let Ok(Some(st)) = g.0.try_wait() {
                panic!("`{cmd}` exited ({st}) before it was ready");
            }
            assert!(Instant::now() < end, "`{cmd}`: not ready after {within:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
        self.background.push(g);
    }

    fn ready(&self, ready: &Ready) -> bool {
        match ready {
            Ready::Api => common::wait_port(4242, Duration::from_millis(10)),
            Ready::Stream(name) => {
                let a = common::api_call(4242, &serde_json::json!({"active_streams": true}), &[]);
                a["active_streams"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|s| s == name))
            }
            Ready::Shm(name) => self.work.join(format!("shm/mist-{name}-meta")).exists(),
            Ready::Plays(name) => {
                self.ready(&Ready::Stream(name)) && {
                    let out = Command::new("timeout")
                        .args(["20", "ffprobe", "-v", "error", "-show_entries"])
                        .args(["stream=codec_name", "-of", "csv=p=0"])
                        .arg(format!("rtmp://127.0.0.1/play/{name}"))
                        .output()
                        .expect("run ffprobe");
                    let codecs = String::from_utf8_lossy(&out.stdout);
                    codecs.contains("h264") && codecs.contains("aac")
                }
            }
        }
    }

    fn run_then_stop(&self, cmd: &str, file: &str) {
        let path = self.work.join(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        let mut child = self.command(cmd).spawn().unwrap();
        std::thread::sleep(Duration::from_secs(8));
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "`{cmd}` ended before it was stopped"
        );
        assert!(common::signal(child.id(), "TERM"));
        let st = common::wait_exit(&mut child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("`{cmd}` did not stop on SIGTERM"));
        assert!(st.success(), "`{cmd}` stopped with {st}");
        let out = Command::new("timeout")
            .args(["60", "ffprobe", "-v", "error", "-show_entries"])
            .args(["stream=codec_name", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("run ffprobe");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !text.trim().is_empty(),
            "`{cmd}` left {}: ffprobe {}: {text}{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A config snippet with `ts-exec:` streams: they are added to the running controller, as an
    /// operator puts them in the config.
    fn add_streams(&self, json: &serde_json::Value) {
        let Some(streams) = json["streams"].as_object() else {
            return;
        };
        for (name, cfg) in streams {
            if cfg["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("ts-exec:"))
            {
                let r = common::api_call(
                    4242,
                    &serde_json::json!({"addstream": {name.as_str(): cfg}}),
                    &[],
                );
                assert!(r["streams"][name].is_object(), "addstream {name}: {r}");
            }
        }
    }
}

fn run_readme() {
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("run ip (iproute2)");
    assert!(st.success(), "ip link set lo up");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let items = readme_items(&text);
    let mut steps = steps();
    let unknown: Vec<&String> = items
        .iter()
        .filter_map(|i| match i {
            Item::Command(c) if !steps.contains_key(c.as_str()) => Some(c),
            _ => None,
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "README commands this test does not know (add them to steps() in bins/tests/readme.rs): {unknown:#?}"
    );
    let scratch = common::TempDir::new("readme");
    let work = scratch.path().to_path_buf();
    for d in ["shm", "tmp", "www"] {
        std::fs::create_dir_all(work.join(d)).unwrap();
    }
    // The scratch directory as the repository root: the README's relative paths (`scripts/…`,
    // `./target/release/…`) lead to the real scripts and to this test's own binaries, and
    // `cargo build --release` is answered by a stand-in (cargo built the binaries for this test).
    let bin = Path::new(env!("CARGO_BIN_EXE_MistController"))
        .parent()
        .unwrap()
        .to_path_buf();
    std::os::unix::fs::symlink(repo.join("scripts"), work.join("scripts")).unwrap();
    std::fs::create_dir_all(work.join("target")).unwrap();
    std::os::unix::fs::symlink(&bin, work.join("target/release")).unwrap();
    stand_in_cargo(&work.join("stand-in"));
    let mut s = Session {
        work,
        bin,
        background: Vec::new(),
    };
    for item in &items {
        match item {
            Item::Output(first) => eprintln!("readme: output block {first:?}"),
            Item::Json(j) => {
                let v: serde_json::Value = serde_json::from_str(j).unwrap();
                eprintln!("readme: config snippet parses");
                s.add_streams(&v);
            }
            Item::Command(c) => {
                let step = steps.remove(c.as_str()).expect("listed above");
                let cmd = s.rewrite(c);
                eprintln!("readme: {cmd}");
                match step {
                    Step::Run { expect } => s.run(&cmd, expect),
                    Step::Start { ready } => s.start(&cmd, &ready),
                    Step::RunThenStop { file } => s.run_then_stop(&cmd, file),
                    Step::Skip(why) => eprintln!("readme: not run here: {why}"),
                }
            }
        }
    }
    let stale: Vec<&&str> = steps.keys().collect();
    assert!(
        stale.is_empty(),
        "steps() lists commands the README no longer has: {stale:#?}"
    );
    // Stop in reverse order: the controller (started first) last.
    while s.background.pop().is_some() {}
}

/// `DIR/cargo`: accepts `cargo build --release` only (any other use fails the command) and
/// does nothing, the binaries being built already.
fn stand_in_cargo(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("cargo");
    std::fs::write(
        &p,
        "#!/bin/sh\n[ \"$*\" = 'build --release' ] || { echo \"readme test: cargo $* not expected\" >&2; exit 2; }\necho 'readme test: binaries built by the test run' >&2\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}
