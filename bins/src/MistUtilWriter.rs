//! MistUtilWriter: copies stdin to a file or an HTTP PUT (logic in `util/writer.rs`).
//!
//! Exit codes: 0 written (the file complete, or the HTTP server answered 2xx); 1 bad or
//! unsupported URL; 2 the write failed (I/O error, no connection, or an HTTP answer other than 2xx).

use clap::Parser;
use mist_bins::util::cli::InfoArgs;
use mist_bins::util::writer::{self, Target};

#[derive(Parser, Debug)]
#[command(
    name = "MistUtilWriter",
    about = "Copy stdin to a file or an HTTP PUT (exit 0 written, 1 bad URL, 2 write failed)",
    disable_version_flag = true
)]
struct Args {
    /// Where to write: a path, file://PATH or http://HOST[:PORT]/PATH
    #[arg(required_unless_present_any = ["json", "version"])]
    url: Option<String>,
    /// Append to a file instead of truncating it
    #[arg(short = 'a', long = "append")]
    append: bool,
    /// Debug level (0-10)
    #[arg(short = 'g', long = "debug", default_value_t = 4)]
    debug: u8,
    #[command(flatten)]
    info: InfoArgs,
}

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                writer::EXIT_USAGE
            } else {
                0
            });
        }
    };
    if args.info.answered(
        "MistUtilWriter",
        "Writer",
        "Copy stdin to a file or an HTTP PUT",
    ) {
        return;
    }
    mist_core::log::init("MistUtilWriter", args.debug);
    let url = args.url.unwrap_or_default();
    let stdin = std::io::stdin().lock();
    let res = writer::parse_target(&url).and_then(|t| match t {
        Target::File(p) => writer::write_file(stdin, &p, args.append),
        Target::Http { host, port, path } => writer::put(stdin, &host, port, &path),
    });
    match res {
        Ok(n) => mist_core::debug!("{n} bytes written to {url}"),
        Err(e) => {
            mist_core::error!("{url}: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
