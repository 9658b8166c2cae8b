//! MistInTS: MPEG-TS input. A file is served as VoD (`mist_bins::vod_input`); a live source
//! (`tsudp://`, `tstcp://`, `ts-exec:`, `stream://`, `http(s)://`, `-` for stdin) is ingested as a live stream
//! (`mist_bins::ts_live`).

use clap::Parser;
use mist_bins::util::cli::ProcessArgs;
use mist_bins::{ts_live, vod_input};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "MistInTS",
    version,
    disable_version_flag = true,
    about = "MPEG-TS input: serves a TS file as VoD, or ingests live TS from UDP (unicast or multicast), TCP, a command (ts-exec:), a named pipe (stream://), an HTTP(S) pull (http(s)://…ts) or stdin (-)"
)]
struct Args {
    /// Stream name
    #[arg(short = 's', long = "stream")]
    stream: Option<String>,
    /// Source: a .ts file, tsudp://[host:]port[/iface,...], tstcp://host:port, tstcp://:port,
    /// ts-exec:COMMAND, stream://FIFO, http(s)://URL (a TS body pulled over HTTP) or - (stdin)
    source: Option<String>,
    /// VoD: seconds without viewers before the stream is ended. Live: seconds the input waits
    /// for its source (at start, and after the stream ended) before it exits
    #[arg(short = 'i', long = "inputtimeout", default_value_t = vod_input::DEFAULT_TIMEOUT_S)]
    inputtimeout: u64,
    /// VoD: viewers of the stream at once (stream option max_viewers; 0 = as many as there are slots)
    #[arg(long = "max-viewers", default_value_t = vod_input::DEFAULT_MAX_VIEWERS)]
    max_viewers: u32,
    /// Live: milliseconds without media before the stream is ended
    #[arg(long = "timeout", default_value_t = ts_live::DEFAULT_IDLE_MS)]
    timeout: u64,
    /// Live: DVR window in milliseconds
    #[arg(long = "dvr", default_value_t = ts_live::DEFAULT_DVR_MS)]
    dvr: u64,
    /// Live: DVR bytes kept at most (stream option dvr_bytes; 0 = no limit; default
    /// MIST_DVR_MAX_BYTES, else 1 GiB)
    #[arg(long = "dvr-bytes")]
    dvr_bytes: Option<u64>,
    /// Live ts-exec: when the command is started again after it exits (always, onfail, never)
    #[arg(long = "restart", default_value = "always")]
    restart: ts_live::Restart,
    #[command(flatten)]
    common: ProcessArgs,
}

/// The `-j` capabilities: the VoD input's, plus the live sources and their options.
fn capabilities() -> serde_json::Value {
    let mut c = vod_input::capabilities(vod_input::Kind::Ts);
    c["desc"] = "MPEG-TS input: TS files as VoD; live TS from UDP unicast/multicast (tsudp://[host:]port[/iface,...]), TCP (tstcp://), a command (ts-exec:), a named pipe (stream://), an HTTP(S) pull (http(s)://…ts) or stdin. Every elementary stream becomes a track.".into();
    if let Some(a) = c["source_match"].as_array_mut() {
        for p in [
            "tsudp://*",
            "tstcp://*",
            "ts-exec:*",
            "stream://*",
            "http://*.ts",
            "https://*.ts",
            "http://*.ts?*",
            "https://*.ts?*",
        ] {
            a.push(p.into());
        }
    }
    c["optional"]["DVR"] = serde_json::json!({
        "name": "Buffer time (ms)",
        "help": "Live sources: how much of the stream is kept for viewers to seek back in, in milliseconds.",
        "type": "uint",
        "default": ts_live::DEFAULT_DVR_MS,
        "option": "--dvr"
    });
    c["optional"]["dvr_bytes"] = mist_bins::access::dvr_bytes_capability();
    c["optional"]["idleTime"] = serde_json::json!({
        "name": "Source timeout (ms)",
        "help": "Live sources: the stream ends after this long without media; a source that comes back starts it again.",
        "type": "uint",
        "default": ts_live::DEFAULT_IDLE_MS,
        "option": "--timeout"
    });
    c["optional"]["restart"] = serde_json::json!({
        "name": "Restart ts-exec command",
        "help": "ts-exec: sources: start the command again when it exits: always, onfail (non-zero exit) or never.",
        "type": "select",
        "select": ["always", "onfail", "never"],
        "default": "always",
        "option": "--restart"
    });
    c
}

fn main() {
    let args = Args::parse();
    if args.common.printed_json(capabilities) {
        std::process::exit(vod_input::EXIT_OK);
    }
    mist_bins::access::apply_dvr_bytes(args.dvr_bytes);
    mist_core::log::init("MistInTS", args.common.debug);
    let name = mist_bins::util::cli::stream_arg(args.stream, vod_input::EXIT_USAGE);
    let Some(source) = args.source else {
        mist_core::error!("no source given");
        std::process::exit(vod_input::EXIT_USAGE);
    };
    let stop = mist_bins::util::cli::stop_on_signals();
    if !ts_live::is_live(&source) {
        let opts = vod_input::Options {
            kind: vod_input::Kind::Ts,
            stream: name,
            source: source.into(),
            timeout: Duration::from_secs(args.inputtimeout),
            max_viewers: args.max_viewers,
        };
        std::process::exit(vod_input::run(&opts, stop));
    }
    let src = match ts_live::parse(&source) {
        Ok(s) => s,
        Err(e) => {
            mist_core::error!("{e}");
            std::process::exit(vod_input::EXIT_USAGE);
        }
    };
    let opts = ts_live::Options {
        stream: name,
        source: src,
        idle: Duration::from_millis(args.timeout.max(1)),
        input_timeout: Duration::from_secs(args.inputtimeout),
        dvr_ms: args.dvr,
        restart: args.restart,
    };
    std::process::exit(ts_live::run(opts, stop));
}
