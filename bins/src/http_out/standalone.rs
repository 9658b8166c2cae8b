//! The standalone front end: `MistOutTS -s STREAM -` writes one stream to stdout (or a file)
//! with the same muxing code MistOutHTTP shares among its viewers.
//!
//! Targets: a file, `-` for stdout, `ts-exec:COMMAND`/`mkv-exec:COMMAND` (the stream goes to
//! the command's stdin; no shell), or a network target of [`crate::push_out`] (`tsudp://`,
//! `tstcp://`, `http(s)://` PUT). A `.webm` file target of MistOutEBML gets the WebM DocType.
//! Commands and network targets take `$variables` and Mist parameters after the last `?`
//! (`video=`/`audio=` track selectors); under a controller they report to `push_list`, and a
//! network push that ends fires OUTPUT_END.
//!
//! Exit codes: 0 the stream ended, the reader went away (EPIPE) or SIGINT/SIGTERM; 1 the stream
//! does not exist or cannot be muxed in this format, or a network target cannot be reached or
//! failed; 2 usage error.

use super::mux::Format;
use super::source::{Source, Step};
use crate::push_out;
use crate::util::cli::InfoArgs;
use clap::Parser;
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
    #[command(flatten)]
    info: InfoArgs,
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
    pub info: InfoArgs,
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
    if a.info.answered_caps(bin, caps) {
        return Err(0);
    }
    mist_core::log::init(bin, a.debug);
    let (Some(stream), Some(target)) = (a.stream.filter(|s| !s.is_empty()), a.target) else {
        mist_core::error!("usage: {bin} -s STREAM TARGET ({usage})");
        return Err(2);
    };
    let name = mist_core::names::sanitize(&stream);
    let stop = crate::util::cli::stop_on_signals();
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
        info: args.info,
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
    // Network targets and commands: `$variables` evaluated, Mist parameters (after the last
    // `?`) taken off; their track selectors win over the command line (INTERFACES §4.3/§4.4).
    let pushing =
        target != "-" && (exec_command(&target).is_some() || push_out::is_network_target(&target));
    let (target, video, audio, realtime) = if pushing {
        let (t, p) = mist_core::push::split_target(&target, unix_now());
        let custom = std::env::var("MIST_VARIABLES")
            .ok()
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        let vars = mist_core::push::Vars {
            stream: &name,
            custom,
            ..Default::default()
        };
        let t = mist_core::push::expand(&t, &vars, &mist_core::push::LocalTime::now());
        (t, p.video.or(video), p.audio.or(audio), p.realtime)
    } else {
        (target, video, audio, false)
    };
    let network = push_out::parse(&target).transpose();
    let network = match network {
        Ok(n) => n,
        Err(e) => {
            mist_core::error!("{e}");
            return 2;
        }
    };
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
    let connector = bin.trim_start_matches("MistOut");
    let start_unix = unix_now();
    let started_at = Instant::now();
    // A network push that ends tells the controller (OUTPUT_END) with the RECORDING_END lines.
    let network_end = |bytes: u64, code: i32, text: &str, media: (i64, i64)| {
        if network.is_some() {
            let payload = crate::record::recording_end_payload(
                &name,
                &target,
                connector,
                bytes,
                started_at.elapsed().as_secs(),
                start_unix,
                unix_now(),
                media.0,
                media.1,
                code,
                text,
            );
            push_out::report_network_end(&name, &payload, stop.load(Ordering::Relaxed));
        }
    };
    let mut child = None;
    let mut out: Box<dyn push_out::Sink> = if let Some(cmd) = exec_command(&target) {
        // ts-exec:/mkv-exec: the stream goes to the command's stdin. As MistServer does, the
        // command is split into arguments and run without a shell (`sh -c '…'` for one); its
        // stdout and stderr stay ours.
        let args = push_out::split_command(cmd);
        let Some((prog, rest)) = args.split_first() else {
            mist_core::error!("{target}: no command");
            return 2;
        };
        match std::process::Command::new(prog)
            .args(rest)
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
    } else if let Some(t) = &network {
        match push_out::connect(t, format.mime()) {
            Ok(s) => s,
            Err(e) => {
                mist_core::error!("stream {name}: push to {target}: {e}");
                network_end(0, 1, &e.to_string(), (0, 0));
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
    if network.is_some() {
        mist_core::info!("stream {name}: pushing to {target}");
    }
    if pushing {
        push_out::report_status(&target, 0, 0);
    }
    let mut started = false;
    let mut total = 0u64;
    let mut failure = String::new();
    let mut last_status = Instant::now();
    // `realtime`: when the first data went out.
    let mut paced: Option<Instant> = None;
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
                if let Err(e) = out.flush() {
                    failure = e.to_string();
                    break 0;
                }
                src.wait(Duration::from_millis(500));
                continue;
            }
            Step::Ended => break 0,
            Step::Error(e) => {
                mist_core::error!("stream {name}: {e}");
                failure = e;
                break 1;
            }
        };
        let mut failed = None;
        for c in &chunks {
            if let Err(e) = out.write_all(c) {
                failed = Some(e);
                break;
            }
            total += c.len() as u64;
        }
        if let Some(e) = failed {
            failure = e.to_string();
            // A network target that fails is an error (retried by the controller); the reader
            // of stdout or of a command going away (EPIPE) is the end.
            break 0;
        }
        src.report(total);
        // `realtime`: no faster than playback speed (a VoD stream is otherwise sent at once).
        if realtime {
            let due = *paced.get_or_insert_with(Instant::now)
                + Duration::from_millis(src.media_ms().max(0) as u64);
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(100)));
            }
        }
        if pushing && last_status.elapsed() >= Duration::from_secs(5) {
            last_status = Instant::now();
            push_out::report_status(&target, total, src.media_ms());
        }
    };
    let mut code = code;
    if failure.is_empty() {
        if let Err(e) = out.finish() {
            failure = e.to_string();
        }
    }
    drop(out); // closes the command's stdin: its end of input
    if network.is_some() && !failure.is_empty() && code == 0 {
        mist_core::error!("stream {name}: push to {target} failed: {failure}");
        code = 1;
    }
    mist_core::info!("stream {name}: wrote {total} bytes");
    network_end(
        total,
        code,
        if failure.is_empty() {
            "completed"
        } else {
            &failure
        },
        src.media_range(),
    );
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The command of a `ts-exec:COMMAND` or `mkv-exec:COMMAND` target.
fn exec_command(target: &str) -> Option<&str> {
    ["ts-exec:", "mkv-exec:"]
        .iter()
        .find_map(|p| target.strip_prefix(p))
        .map(str::trim)
        .filter(|c| !c.is_empty())
}
