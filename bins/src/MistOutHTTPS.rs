//! MistOutHTTPS: MistOutHTTP over TLS (logic in `http_out/`, TLS options in `http_out/https.rs`).

use mist_bins::http_out;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "MistOutHTTPS",
    about = "HTTPS connector: everything MistOutHTTP serves, over TLS (certificates reloaded when their files change)",
    disable_version_flag = true
)]
struct Args {
    /// TCP port to listen on
    #[arg(short = 'p', long = "port", default_value_t = http_out::https::DEFAULT_PORT)]
    port: u16,
    /// Certificate chain (PEM, leaf first, e.g. fullchain.pem); repeat, or a JSON list, for
    /// several certificates chosen by SNI (the first is the default)
    #[arg(short = 'C', long = "cert", required_unless_present_any = ["json", "version"])]
    cert: Vec<String>,
    /// Private key (PEM) of each certificate, in the same order
    #[arg(short = 'K', long = "key", required_unless_present_any = ["json", "version"])]
    key: Vec<String>,
    #[command(flatten)]
    common: http_out::cli::CommonArgs,
}

fn main() {
    let args = Args::parse();
    if args
        .common
        .info
        .answered_caps("MistOutHTTPS", &http_out::https::capabilities())
    {
        return;
    }
    mist_core::log::init("MistOutHTTPS", args.common.debug);
    let pairs = match http_out::https::pairs(&args.cert, &args.key) {
        Ok(p) => p,
        Err(e) => {
            mist_core::error!("{e}");
            std::process::exit(1);
        }
    };
    let opts = args.common.options(args.port, Some(pairs));
    std::process::exit(http_out::run(opts));
}
