//! MistOutHTTP: the HTTP connector (logic in `http_out/`).

use mist_bins::http_out;

use clap::Parser;

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
    #[command(flatten)]
    common: http_out::cli::CommonArgs,
}

fn main() {
    let args = Args::parse();
    if args
        .common
        .info
        .answered_caps("MistOutHTTP", &http_out::capabilities())
    {
        return;
    }
    mist_core::log::init("MistOutHTTP", args.common.debug);
    std::process::exit(http_out::run(args.common.options(args.port, None)));
}
