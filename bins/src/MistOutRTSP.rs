//! MistOutRTSP: RTSP play for mist-rs (see `mist_bins::rtsp_out`).
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM) or after `-j`/`--version`/`--help`;
//! 1 when the listening socket cannot be opened or the event loop fails; 2 on bad arguments.

use clap::Parser;
use mist_bins::util::cli::ProcessArgs;
use std::net::{IpAddr, SocketAddr};

#[derive(Parser)]
#[command(
    name = "MistOutRTSP",
    version,
    disable_version_flag = true,
    // The controller may pass -g twice (its own and the protocol's `debug`): the last one wins.
    args_override_self = true,
    about = "RTSP connector of mist-rs: serves streams to RTSP players over RTP (interleaved TCP or UDP unicast) and accepts RTSP pushes (ANNOUNCE/RECORD).",
    after_help = "Play URL: rtsp://HOST:PORT/STREAM\n\
                  Exit codes: 0 clean shutdown, 1 cannot listen / loop failure, 2 bad arguments.\n\
                  Environment: MIST_CONTROL (controller socket; without it every stream may be played), MIST_SHM_DIR."
)]
struct Args {
    /// TCP port to listen on
    #[arg(short = 'p', long, default_value_t = 5554)]
    port: u16,
    /// Address to listen on (0.0.0.0 for all interfaces)
    #[arg(short = 'i', long, default_value = "0.0.0.0")]
    interface: IpAddr,
    /// First of the two UDP ports (RTP, RTCP) media is sent from; 0 picks a free pair
    #[arg(long = "udp-port", default_value_t = 0)]
    udp_port: u16,
    /// Merged writes: write each interleaved-TCP viewer at most every MS milliseconds (0: every
    /// frame at once); UDP packets leave at once
    #[arg(long = "merge-ms", default_value_t = mist_bins::rtsp_out::DEFAULT_MERGE_MS)]
    merge_ms: u64,
    /// Most connections from one remote address at once (0: no cap)
    #[arg(long = "max-per-ip", default_value_t = mist_bins::rtsp_out::DEFAULT_MAX_PER_IP)]
    max_per_ip: usize,
    #[command(flatten)]
    common: ProcessArgs,
}

fn main() {
    let args = Args::parse();
    if args.common.printed_json(mist_bins::rtsp_out::capabilities) {
        return;
    }
    mist_core::log::init("MistOutRTSP", args.common.debug);
    let cfg = mist_bins::rtsp_out::Config {
        addr: SocketAddr::new(args.interface, args.port),
        udp_port: args.udp_port,
        max_per_ip: args.max_per_ip,
        merge: std::time::Duration::from_millis(args.merge_ms),
    };
    if let Err(e) = mist_bins::rtsp_out::run(cfg) {
        mist_core::fail!("RTSP on {}:{}: {e}", args.interface, args.port);
        std::process::exit(1);
    }
    // Queued CONN_CLOSE handlers still run (bounded).
    mist_core::triggers::Engine::global().flush(std::time::Duration::from_secs(5));
}
