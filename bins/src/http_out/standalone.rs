//! The standalone front end: `MistOutTS -s STREAM -` writes one stream to stdout (or a file)
//! with the same muxing code MistOutHTTP shares among its viewers.
//!
//! Targets: a file, `-` for stdout, or `ts-exec:COMMAND`/`mkv-exec:COMMAND` (the stream goes to
//! the stdin of `sh -c COMMAND`). A `.webm` file target of MistOutEBML gets the WebM DocType.
//!
//! Exit codes: 0 the stream ended, the reader went away (EPIPE) or SIGINT/SIGTERM; 1 the stream
//! does not exist or cannot be muxed in this format; 2 usage error.

use super::mux::Format;
use super::source::{Source, Step};
use clap::{ArgAction, Parser};
use mist_core::control::{self, Request};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(disable_version_flag = true)]
struct Args {
    /// Stream name
    #[arg(short = 's', long = "stream")]
    stream: Option<String>,
    /// Where to write: a file path, or - for stdout
    target: Option<String>,
    /// Video track selection (id, codec, all, none)
    #[arg(long = "video")]
    video: Option<String>,
    /// Audio track selection (id, codec, all, none)
    #[arg(long = "audio")]
    audio: Option<String>,
    /// How long to wait for the stream to appear, in seconds
    #[arg(long = "wait", default_value_t = 10)]
    wait: u64,
    /// Debug level (0-10)
    #[arg(short = 'g', long = "debug", default_value_t = 4)]
    debug: u8,
    /// Print the capabilities JSON and exit
    #[arg(short = 'j', long = "json")]
    json: bool,
    /// Print the version and exit
    #[arg(short = 'v', long = "version", action = ArgAction::SetTrue)]
    version: bool,
    /// Recordings: seconds to record (of media time), then finish the file and exit 0
    #[arg(long = "duration")]
    duration: Option<u64>,
    /// Recordings: start a new file every N seconds, at a keyframe ($variables re-evaluated)
    #[arg(long = "split")]
    split: Option<u64>,
    /// Recordings: media time (ms) to start at
    #[arg(long = "recstart")]
    recstart: Option<i64>,
    /// Recordings: media time (ms) to stop at
    #[arg(long = "recstop")]
    recstop: Option<i64>,
    /// Recordings: append to an existing file (.ts, .aac, .mp3)
    #[arg(long = "append")]
    append: bool,
}

/// The capabilities of a per-format binary: served through MistOutHTTP (`deps: "HTTP"`).
pub fn capabilities(
    name: &str,
    desc: &str,
    url_match: &[&str],
    push_urls: &[&str],
    format: Format,
) -> Value {
    let codecs: Vec<&str> = format.codecs().iter().map(|c| c.mist_name()).collect();
    json!({
        "name": name,
        "desc": desc,
        "deps": "HTTP",
        "url_match": url_match,
        "url_rel": url_match.first().copied().unwrap_or("/$"),
        "push_urls": push_urls,
        "codecs": [[codecs]],
        "methods": [{"handler": "http", "type": format.mime(), "hrn": name, "priority": 5}],
        "optional": {},
    })
}

/// What every standalone output binary is given.
pub(crate) struct Common {
    pub stream: Option<String>,
    pub target: Option<String>,
    pub wait: u64,
    pub debug: u8,
    pub json: bool,
    pub version: bool,
}

/// A standalone output ready to read its stream.
pub(crate) struct Started {
    /// Sanitised stream name.
    pub name: String,
    pub target: String,
    /// Set by SIGINT/SIGTERM.
    pub stop: Arc<AtomicBool>,
}

/// The start every standalone output shares: `-j`, `-v`, logging, the usage check, the stop flag
/// for SIGINT/SIGTERM, and (under the controller) asking it to start the stream's input.
/// `Err(code)`: exit with that code.
pub(crate) fn start(bin: &str, caps: &Value, a: Common, usage: &str) -> Result<Started, i32> {
    if a.json {
        println!("{caps}");
        return Err(0);
    }
    if a.version {
        println!("{bin} mist-rs {}", env!("CARGO_PKG_VERSION"));
        return Err(0);
    }
    mist_core::log::init(bin, a.debug);
    let (Some(stream), Some(target)) = (a.stream.filter(|s| !s.is_empty()), a.target) else {
        mist_core::error!("usage: {bin} -s STREAM TARGET ({usage})");
        return Err(2);
    };
    let name = mist_core::names::sanitize(&stream);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    // The stream may need its input started (controller) or may appear shortly.
    if control::socket_path().is_some() && mist_shm::stream_status(&name).is_err() {
        let req = Request::Play {
            stream: name.clone(),
            host: String::new(),
            connector: bin.trim_start_matches("MistOut").into(),
            url: target.clone(),
        };
        match control::request(&req, Duration::from_secs(a.wait + 5)) {
            Ok(r) if !r.ok => {
                mist_core::error!("stream {name}: {}", r.error);
                return Err(1);
            }
            _ => {}
        }
    }
    Ok(Started { name, target, stop })
}

/// Parses the arguments; `Err(code)` after clap printed help (0) or a usage error (2).
pub(crate) fn parse<A: Parser>() -> Result<A, i32> {
    A::try_parse().map_err(|e| {
        let code = if e.use_stderr() { 2 } else { 0 };
        let _ = e.print();
        code
    })
}

/// Runs a per-format binary. Returns the exit code.
pub fn main(bin: &str, format: Format, caps: Value) -> i32 {
    let args: Args = match parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let wait = args.wait;
    let (video, audio) = (args.video, args.audio);
    let rec_params = mist_core::push::PushParams {
        video: video.clone(),
        audio: audio.clone(),
        duration: args.duration,
        split: args.split,
        recstart: args.recstart,
        recstop: args.recstop,
        append: args.append,
        ..Default::default()
    };
    let common = Common {
        stream: args.stream,
        target: args.target,
        wait,
        debug: args.debug,
        json: args.json,
        version: args.version,
    };
    let Started { name, target, stop } = match start(
        bin,
        &caps,
        common,
        "a file, - for stdout, or ts-exec:COMMAND",
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    // Files of a recording format: complete files whatever happens (crate::record).
    if crate::record::is_file_target(&target) {
        return crate::record::run(crate::record::RecArgs {
            bin: bin.to_string(),
            stream: name,
            target,
            params: rec_params,
            wait,
            stop,
        });
    }
    // A .webm target gets the WebM DocType (and only WebM codecs); .mkv stays Matroska.
    let format = match (format, target.rsplit('.').next()) {
        (Format::Mkv, Some(ext)) if ext.eq_ignore_ascii_case("webm") => Format::Webm,
        _ => format,
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut src = loop {
        match mist_shm::stream_status(&name) {
            Ok(s) if !s.ended => match Source::open(
                &name,
                format,
                video.clone(),
                audio.clone(),
                bin.trim_start_matches("MistOut"),
                "local",
            ) {
                Ok(s) => break s,
                Err(e) => mist_core::debug!("open {name}: {e}"),
            },
            _ => {}
        }
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            mist_core::error!("stream {name} not found");
            return 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut child = None;
    let mut out: Box<dyn Write> = if let Some(cmd) = exec_command(&target) {
        // ts-exec:/mkv-exec: the stream goes to the command's stdin (run by sh, as MistServer
        // does); its stdout and stderr stay ours.
        match std::process::Command::new("/bin/sh")
            .args(["-c", cmd])
            .stdin(std::process::Stdio::piped())
            .spawn()
        {
            Ok(mut c) => {
                let stdin = c.stdin.take().expect("piped stdin");
                child = Some(c);
                Box::new(std::io::BufWriter::with_capacity(1 << 16, stdin))
            }
            Err(e) => {
                mist_core::error!("cannot run {cmd:?}: {e}");
                return 1;
            }
        }
    } else if target == "-" {
        Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        ))
    } else {
        if let Some(dir) = std::path::Path::new(&target).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::File::create(&target) {
            Ok(f) => Box::new(std::io::BufWriter::with_capacity(1 << 16, f)),
            Err(e) => {
                mist_core::error!("cannot create {target}: {e}");
                return 1;
            }
        }
    };
    let mut started = false;
    let mut total = 0u64;
    let code = loop {
        if stop.load(Ordering::Relaxed) {
            break 0;
        }
        let chunks = match src.step() {
            Step::Header(h) if !started => {
                started = true;
                h
            }
            Step::Header(_) | Step::Reset => {
                mist_core::info!("stream {name}: tracks changed; ending the output");
                break 0;
            }
            Step::Data(d) => d.chunks,
            Step::Pending => {
                if out.flush().is_err() {
                    break 0;
                }
                src.wait(Duration::from_millis(500));
                continue;
            }
            Step::Ended => break 0,
            Step::Error(e) => {
                mist_core::error!("stream {name}: {e}");
                break 1;
            }
        };
        let mut failed = false;
        for c in &chunks {
            if out.write_all(c).is_err() {
                failed = true;
                break;
            }
            total += c.len() as u64;
        }
        if failed {
            break 0; // the reader went away (EPIPE)
        }
        src.report(total);
    };
    let _ = out.flush();
    drop(out); // closes the command's stdin: its end of input
    mist_core::info!("stream {name}: wrote {total} bytes");
    if let Some(mut c) = child {
        match c.wait() {
            Ok(st) if !st.success() => {
                mist_core::warn!("stream {name}: {target:?} exited with {st}")
            }
            Err(e) => mist_core::warn!("stream {name}: waiting for {target:?}: {e}"),
            Ok(_) => {}
        }
    }
    code
}

/// The command of a `ts-exec:COMMAND` or `mkv-exec:COMMAND` target.
fn exec_command(target: &str) -> Option<&str> {
    ["ts-exec:", "mkv-exec:"]
        .iter()
        .find_map(|p| target.strip_prefix(p))
        .map(str::trim)
        .filter(|c| !c.is_empty())
}
