//! MistOutRTMP: RTMP publish and play for mist-rs. See `rtmp_server` for the design.
//!
//! Server mode (default) listens for RTMP clients; push mode (`-s STREAM rtmp://…`) publishes a
//! stream to another RTMP server.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), after `-j`/`--version`/`--help`, or when a
//! pushed stream ended; 1 when the listening socket cannot be opened, the event loop fails or a
//! push fails; 2 on bad command-line arguments.

#[macro_use]
mod rtmp_server;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{ArgAction, Parser};
use rtmp_server::log::{FAIL, INFO};

#[derive(Parser)]
#[command(
    name = "MistOutRTMP",
    version,
    disable_version_flag = true,
    // The controller may pass -g twice (its own and the protocol's `debug`): the last one wins.
    args_override_self = true,
    about = "RTMP connector of mist-rs: accepts pushes (publish) and serves viewers (play).",
    after_help = "Push mode: MistOutRTMP -s STREAM rtmp://HOST[:PORT]/APP/KEY\n\
                  Exit codes: 0 clean shutdown or pushed stream ended, 1 cannot listen / loop failure / push failed, 2 bad arguments.\n\
                  Environment: MIST_CONTROL (controller socket; without it any push is accepted), MIST_SHM_DIR."
)]
struct Args {
    /// TCP port to listen on
    #[arg(short = 'p', long, default_value_t = 1935)]
    port: u16,
    /// Address to listen on (0.0.0.0 for all interfaces)
    #[arg(short = 'i', long, default_value = "0.0.0.0")]
    interface: IpAddr,
    /// Debug level 0-10 (3 production, 4 default)
    #[arg(short = 'g', long, default_value_t = 4)]
    debug: u8,
    /// Merged writes: write each viewer at most every MS milliseconds (0: every frame at once)
    #[arg(long = "merge-ms", default_value_t = rtmp_server::DEFAULT_MERGE_MS)]
    merge_ms: u64,
    /// Most connections to the RTMP port at once (0: no cap)
    #[arg(long = "max-conns", default_value_t = rtmp_server::DEFAULT_MAX_CONNS)]
    max_conns: usize,
    /// Most connections from one remote address at once (0: no cap)
    #[arg(long = "max-per-ip", default_value_t = rtmp_server::DEFAULT_MAX_PER_IP)]
    max_per_ip: usize,
    /// Print the capabilities JSON and exit
    #[arg(short = 'j', long)]
    json: bool,
    /// Push mode: the stream to read from shared memory and publish to TARGET
    #[arg(short = 's', long, requires = "target")]
    stream: Option<String>,
    /// Push mode: rtmp://HOST[:PORT]/APP/KEY to publish the stream to
    #[arg(requires = "stream")]
    target: Option<String>,
    /// Print the version and exit
    #[arg(short = 'v', long, action = ArgAction::Version)]
    version: Option<bool>,
}

fn main() {
    let args = Args::parse();
    if args.json {
        println!("{}", rtmp_server::capabilities());
        return;
    }
    rtmp_server::log::set_level(args.debug);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            log!(FAIL, "cannot handle signal {sig}: {e}");
            std::process::exit(1);
        }
    }
    if let (Some(stream), Some(target)) = (&args.stream, &args.target) {
        match rtmp_server::push::run(stream, target, stop) {
            Ok(()) => return,
            Err(e) => {
                log!(FAIL, "push of {stream} to {target} failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let cfg = rtmp_server::Config {
        addr: SocketAddr::new(args.interface, args.port),
        controlled: mist_core::control::socket_path().is_some(),
        merge: std::time::Duration::from_millis(args.merge_ms),
        max_conns: args.max_conns,
        max_per_ip: args.max_per_ip,
    };
    let mut server = match rtmp_server::Server::bind(cfg) {
        Ok(s) => s,
        Err(e) => {
            log!(
                FAIL,
                "cannot listen on {}:{}: {e}",
                args.interface,
                args.port
            );
            std::process::exit(1);
        }
    };
    log!(
        INFO,
        "listening on {}",
        server
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    if let Err(e) = server.run(stop) {
        log!(FAIL, "event loop failed: {e}");
        std::process::exit(1);
    }
    // Queued CONN_CLOSE handlers still run (bounded).
    mist_core::triggers::Engine::global().flush(std::time::Duration::from_secs(5));
}
