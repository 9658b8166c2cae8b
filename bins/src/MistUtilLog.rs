//! MistUtilLog: pretty-prints mist-rs log lines from stdin, or runs a command and turns its
//! output into log lines (logic in `util/logtool.rs`).

use clap::Parser;
use mist_bins::util::cli::InfoArgs;
use mist_bins::util::logtool;
use std::io::IsTerminal;

#[derive(Parser, Debug)]
#[command(
    name = "MistUtilLog",
    about = "Pretty-print mist-rs log lines from stdin, or run COMMAND and turn its output into log lines",
    disable_version_flag = true
)]
struct Args {
    /// Name shown in the log lines of COMMAND (default: its file name)
    #[arg(short = 'n', long = "name")]
    name: Option<String>,
    /// Colour by level: auto (when stdout is a terminal), always or never
    #[arg(long = "color", default_value = "auto", value_parser = ["auto", "always", "never"])]
    color: String,
    #[command(flatten)]
    info: InfoArgs,
    /// Command to run (with its arguments) instead of reading stdin
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() {
    let args = Args::parse();
    if args.info.answered(
        "MistUtilLog",
        "Log",
        "Pretty-print log lines, or run a command and log its output",
    ) {
        return;
    }
    if args.command.is_empty() {
        let colour = match args.color.as_str() {
            "always" => true,
            "never" => false,
            _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        let stdin = std::io::stdin();
        if let Err(e) = logtool::pretty_stream(stdin.lock(), std::io::stdout().lock(), colour) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("MistUtilLog: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let name = args.name.unwrap_or_else(|| {
        std::path::Path::new(&args.command[0])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| args.command[0].clone())
    });
    std::process::exit(logtool::run_command(&args.command, &name));
}
