//! MistUtilNuke: stops a stuck stream's own processes and removes its shared memory (logic in
//! `util/nuke.rs`).
//!
//! Exit codes: 0 done (also when nothing of the stream was left); 1 a process could not be
//! signalled; 2 usage.

use clap::{ArgAction, Parser};
use mist_bins::util::nuke;

#[derive(Parser, Debug)]
#[command(
    name = "MistUtilNuke",
    about = "Stop a stuck stream's processes (its input, pushes, recordings) and remove its shared memory; listeners and other streams are left alone",
    disable_version_flag = true
)]
struct Args {
    /// The stream (full name, e.g. live or live+cam1)
    #[arg(required_unless_present_any = ["json", "version"])]
    stream: Option<String>,
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
        println!(
            "{}",
            serde_json::json!({"name": "Nuke", "desc": "Stop a stuck stream's processes and remove its shared memory"})
        );
        return;
    }
    if args.version {
        println!("MistUtilNuke mist-rs {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let stream = args.stream.unwrap_or_default();
    let r = nuke::nuke(&stream);
    for (pid, name) in &r.stopped {
        println!("stopped {name} (pid {pid})");
    }
    for (pid, name) in &r.killed {
        println!("killed {name} (pid {pid}) after {:?}", nuke::GRACE);
    }
    for (pid, name, e) in &r.failed {
        eprintln!("MistUtilNuke: cannot stop {name} (pid {pid}): {e}");
    }
    if r.removed_shm {
        println!("removed the shared memory of {stream}");
    }
    if r.stopped.is_empty() && r.failed.is_empty() && !r.removed_shm {
        println!("nothing left of stream {stream}");
    }
    if !r.failed.is_empty() {
        std::process::exit(1);
    }
}
