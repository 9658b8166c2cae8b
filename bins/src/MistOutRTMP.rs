//! MistOutRTMP: RTMP publish and play for mist-rs. See `rtmp_server` for the design.
//!
//! Server mode (default) listens for RTMP clients; push mode (`-s STREAM rtmp://…`) publishes a
//! stream to another RTMP server.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), after `-j`/`--version`/`--help`, or when a
//! pushed stream ended; 1 when the listening socket cannot be opened, the event loop fails or a
//! push fails; 2 on bad command-line arguments.
//!
//! RTMPS (`--cert`/`--key`, the protocol entry's `cert`/`key`): the listener speaks TLS and
//! nothing else, as MistServer's RTMP connector with a certificate; a second RTMP protocol entry
//! on another port serves plain RTMP beside it.

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
    /// RTMPS: certificate chain (PEM, leaf first); repeat, or a JSON list, for several
    /// certificates chosen by SNI. With --key, this port speaks RTMPS only.
    #[arg(short = 'C', long = "cert", requires = "key")]
    cert: Vec<String>,
    /// RTMPS: private key (PEM) of each certificate, in the same order
    #[arg(long = "key", requires = "cert")]
    key: Vec<String>,
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
    // MistServer passes empty strings for unset options: no certificate at all is plain RTMP.
    let tls = if args
        .cert
        .iter()
        .chain(&args.key)
        .all(|s| s.trim().is_empty())
    {
        None
    } else {
        let tls = mist_bins::http_out::https::pairs(&args.cert, &args.key)
            .map_err(|e| e.to_string())
            .and_then(|pairs| {
                mist_connector::TlsConfigHandle::new(mist_connector::TlsSettings {
                    pairs,
                    // RTMP clients offer no ALPN; one that does is not refused.
                    alpn: Vec::new(),
                    ..mist_connector::TlsSettings::default()
                })
                .map_err(|e| e.to_string())
            });
        match tls {
            Ok(h) => {
                // New cert/key paths from the controller arrive with SIGHUP.
                mist_bins::tls_reload::follow_hangups("RTMP", args.port, 1935, h.clone());
                Some(h)
            }
            Err(e) => {
                log!(FAIL, "RTMPS certificate: {e}");
                std::process::exit(1);
            }
        }
    };
    let cfg = rtmp_server::Config {
        addr: SocketAddr::new(args.interface, args.port),
        controlled: mist_core::control::socket_path().is_some(),
        merge: std::time::Duration::from_millis(args.merge_ms),
        max_conns: args.max_conns,
        max_per_ip: args.max_per_ip,
        tls,
    };
    let cfg_tls = cfg.tls.is_some();
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
        "listening on {}{}",
        if cfg_tls { "rtmps://" } else { "" },
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
