//! MistOutHTTP: the HTTP connector (logic in `http_out/`).

use mist_bins::http_out;

use clap::{ArgAction, Parser};

#[derive(Parser, Debug)]
#[command(
    name = "MistOutHTTP",
    about = "HTTP connector: progressive formats, stream info, static files",
    disable_version_flag = true
)]
struct Args {
    /// TCP port to listen on
    #[arg(short = 'p', long = "port", default_value_t = 8080)]
    port: u16,
    /// Address to listen on
    #[arg(short = 'i', long = "interface", default_value = "0.0.0.0")]
    interface: String,
    /// ACME http-01 answer, TOKEN:VALIDATION
    #[arg(long = "certbot")]
    certbot: Option<String>,
    /// Connectors to serve, comma-separated (HTTPTS,FLV,MP4,EBML,HLS,CMAF); default: the
    /// controller's protocol list, or all when standalone
    #[arg(long = "formats")]
    formats: Option<String>,
    /// Accepted for compatibility (privileges are not dropped)
    #[arg(short = 'u', long = "username")]
    username: Option<String>,
    /// Merged writes: write each progressive viewer at most every MS milliseconds (0: every frame)
    #[arg(long = "merge-ms", default_value_t = 100)]
    merge_ms: u64,
    /// Most simultaneous connections from one remote IP address, 0 for no cap [default:
    /// $MIST_HTTP_MAX_PER_IP, else 1024]
    #[arg(long = "max-conns-per-ip")]
    max_conns_per_ip: Option<usize>,
    /// Debug level (0-10)
    #[arg(short = 'g', long = "debug", default_value_t = 4)]
    debug: u8,
    /// Print the capabilities JSON and exit
    #[arg(short = 'j', long = "json")]
    json: bool,
    /// Print the version and exit
    #[arg(short = 'v', long = "version", action = ArgAction::SetTrue)]
    version: bool,
}

fn main() {
    let args = Args::parse();
    if args.json {
        println!("{}", http_out::capabilities());
        return;
    }
    if args.version {
        println!("MistOutHTTP mist-rs {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    mist_core::log::init("MistOutHTTP", args.debug);
    let opts = http_out::Options {
        port: args.port,
        interface: args.interface,
        certbot: args.certbot.filter(|c| !c.is_empty()),
        formats: args.formats.map(|f| {
            f.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        merge: std::time::Duration::from_millis(args.merge_ms),
        max_per_ip: args.max_conns_per_ip.unwrap_or_else(|| {
            std::env::var("MIST_HTTP_MAX_PER_IP")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(mist_net::server::DEFAULT_MAX_PER_IP)
        }),
        tls: None,
    };
    std::process::exit(http_out::run(opts));
}
