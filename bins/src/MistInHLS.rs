//! MistInHLS: pulls an HLS source (`http(s)://…m3u8`, live or VoD, MPEG-TS or fMP4 segments, a
//! master playlist's variants and renditions as tracks) into a live stream (`mist_bins::hls_in`).
//!
//! Exit codes: 0 after the source ended, nothing came for the input timeout, or SIGINT/SIGTERM;
//! 1 when the stream cannot be written; 2 on bad arguments.

use clap::Parser;
use mist_bins::hls_in;
use mist_bins::util::cli::ProcessArgs;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "MistInHLS",
    version,
    disable_version_flag = true,
    about = "HLS pull input of mist-rs: follows an http(s)://…m3u8 playlist (live or VoD; MPEG-TS or fMP4/CMAF segments; every variant and rendition of a master playlist becomes tracks) into a live stream.",
    after_help = "Example: MistInHLS -s relay https://origin.example/live/master.m3u8\n\
                  Exit codes: 0 source ended / input timeout / signal, 1 stream not writable, 2 bad arguments.\n\
                  Environment: MIST_SHM_DIR."
)]
struct Args {
    /// Stream name to write
    #[arg(short = 's', long = "stream", required_unless_present = "json")]
    stream: Option<String>,
    /// Source: http(s)://…m3u8 (master or media playlist)
    #[arg(required_unless_present = "json")]
    source: Option<String>,
    /// Seconds the input keeps trying while no stream is up before it exits
    #[arg(short = 'i', long = "inputtimeout", default_value_t = 60)]
    inputtimeout: u64,
    /// Milliseconds without media before the stream is ended
    #[arg(long = "timeout", default_value_t = hls_in::DEFAULT_IDLE_MS)]
    timeout: u64,
    /// DVR window in milliseconds
    #[arg(long = "dvr", default_value_t = hls_in::DEFAULT_DVR_MS)]
    dvr: u64,
    /// DVR bytes kept at most (stream option dvr_bytes; 0 = no limit; default MIST_DVR_MAX_BYTES,
    /// else 1 GiB)
    #[arg(long = "dvr-bytes")]
    dvr_bytes: Option<u64>,
    #[command(flatten)]
    common: ProcessArgs,
}

fn main() {
    let args = Args::parse();
    if args.common.printed_json(hls_in::capabilities) {
        return;
    }
    mist_bins::access::apply_dvr_bytes(args.dvr_bytes);
    mist_core::log::init("MistInHLS", args.common.debug);
    let (Some(stream), Some(url)) = (args.stream, args.source) else {
        std::process::exit(2);
    };
    let name = mist_core::names::sanitize(&stream);
    if !mist_core::names::is_valid(&name) {
        mist_core::error!("invalid stream name {stream:?}");
        std::process::exit(2);
    }
    let url = url.strip_prefix("hls:").unwrap_or(&url).to_string();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        mist_core::error!("{url:?}: not an http(s):// playlist URL");
        std::process::exit(2);
    }
    let stop = mist_bins::util::cli::stop_on_signals();
    let opts = hls_in::Options {
        stream: name,
        url,
        idle: Duration::from_millis(args.timeout.max(1)),
        input_timeout: Duration::from_secs(args.inputtimeout),
        dvr_ms: args.dvr,
    };
    std::process::exit(hls_in::run(opts, stop));
}
