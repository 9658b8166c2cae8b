//! MistInRTSP: pulls an RTSP camera into a live stream (see `mist_bins::rtsp_in`).
//!
//! Exit codes: 0 after SIGINT/SIGTERM or after `-j`/`--version`/`--help`; 1 when the URL is bad
//! or the event loop fails; 2 on bad arguments.

use clap::Parser;
use mist_bins::util::cli::ProcessArgs;

#[derive(Parser)]
#[command(
    name = "MistInRTSP",
    version,
    disable_version_flag = true,
    args_override_self = true,
    about = "RTSP pull input of mist-rs: plays rtsp://[user[:pass]@]host[:port]/path (RTP over UDP with fallback to interleaved TCP, Digest/Basic auth, keep-alive) into a live stream, reconnecting with backoff while the stream stays up for its timeout.",
    after_help = "Example: MistInRTSP -s cam rtsp://admin:secret@192.168.1.20/stream1\n\
                  Exit codes: 0 clean shutdown, 1 bad URL / loop failure, 2 bad arguments.\n\
                  Environment: MIST_SHM_DIR."
)]
struct Args {
    /// Stream name to write
    #[arg(short = 's', long = "stream", required_unless_present = "json")]
    stream: Option<String>,
    /// Source URL: rtsp://[user[:pass]@]host[:port]/path
    #[arg(required_unless_present = "json")]
    source: Option<String>,
    /// Live buffer (DVR window) in milliseconds
    #[arg(long = "buffer", default_value_t = 50_000)]
    buffer: u64,
    /// DVR bytes kept at most (stream option dvr_bytes; 0 = no limit; default MIST_DVR_MAX_BYTES,
    /// else 1 GiB)
    #[arg(long = "dvr-bytes")]
    dvr_bytes: Option<u64>,
    /// Stream timeout in milliseconds: no media for this long ends the stream; while the camera
    /// reconnects within it, the stream stays up for its viewers
    #[arg(long = "timeout", default_value_t = mist_bins::rtsp_in::DEFAULT_TIMEOUT_MS)]
    timeout: u64,
    /// RTP transport: auto (UDP, falling back to interleaved TCP), tcp or udp
    #[arg(long = "transport", value_enum, default_value_t = mist_bins::rtsp_in::TransportPref::Auto)]
    transport: mist_bins::rtsp_in::TransportPref,
    #[command(flatten)]
    common: ProcessArgs,
}

fn main() {
    let args = Args::parse();
    if args.common.printed_json(mist_bins::rtsp_in::capabilities) {
        return;
    }
    mist_bins::access::apply_dvr_bytes(args.dvr_bytes);
    mist_core::log::init("MistInRTSP", args.common.debug);
    let (Some(stream), Some(url)) = (args.stream, args.source) else {
        std::process::exit(2);
    };
    let opts = mist_bins::rtsp_in::Options {
        stream: stream.clone(),
        url,
        dvr_ms: args.buffer,
        // This process is the stream's input: nothing else keeps the buffer, so a lost camera
        // ends the stream and the reconnect starts it again.
        controlled: false,
        timeout: std::time::Duration::from_millis(args.timeout.max(1)),
        transport: args.transport,
    };
    if let Err(e) = mist_bins::rtsp_in::run(opts) {
        mist_core::fail!("RTSP pull of {stream}: {e}");
        std::process::exit(1);
    }
}
