//! MistInBuffer: the live buffer of one pushed stream (logic in `in_buffer.rs`).

mod in_buffer;

use clap::Parser;
use mist_bins::util::cli::ProcessArgs;

#[derive(Parser, Debug)]
#[command(
    name = "MistInBuffer",
    about = "Live buffer for a pushed stream",
    version,
    disable_version_flag = true
)]
struct Args {
    /// Stream name
    #[arg(short = 's', long = "stream")]
    stream: Option<String>,
    /// Source (push://)
    #[arg(default_value = "push://")]
    source: String,
    /// DVR window in ms
    #[arg(long = "dvr", default_value_t = in_buffer::DEFAULT_DVR_MS)]
    dvr: u64,
    /// DVR bytes kept at most (stream option dvr_bytes; 0 = no limit; default: MIST_DVR_MAX_BYTES, else 1 GiB)
    #[arg(long = "dvr-bytes")]
    dvr_bytes: Option<u64>,
    /// Publisher timeout in ms (stream option idleTime)
    #[arg(long = "timeout", alias = "idletime")]
    timeout: Option<u64>,
    /// Publisher timeout in seconds (used when --timeout is not given)
    #[arg(short = 'i', long = "inputtimeout")]
    inputtimeout: Option<u64>,
    #[command(flatten)]
    common: ProcessArgs,
}

fn main() {
    let args = Args::parse();
    if args.common.printed_json(in_buffer::capabilities) {
        return;
    }
    in_buffer::set_debug(args.common.debug);
    let Some(stream) = args.stream.filter(|s| !s.is_empty()) else {
        mist_core::error!("no stream name given (-s)");
        std::process::exit(1);
    };
    let timeout_ms = args
        .timeout
        .or(args.inputtimeout.map(|s| s * 1000))
        .unwrap_or(in_buffer::DEFAULT_TIMEOUT_MS);
    let stop = mist_bins::util::cli::stop_on_signals();
    let opts = in_buffer::Options {
        stream,
        source: args.source,
        dvr_ms: args.dvr,
        dvr_bytes: args.dvr_bytes,
        timeout_ms,
    };
    std::process::exit(in_buffer::run(&opts, stop));
}
