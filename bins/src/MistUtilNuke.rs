//! MistUtilNuke: stops a stuck stream's own processes and removes its shared memory (logic in
//! `util/nuke.rs`).
//!
//! Exit codes: 0 done (also when nothing of the stream was left); 1 a process could not be
//! signalled; 2 usage.

use clap::Parser;
use mist_bins::util::cli::InfoArgs;
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
    #[command(flatten)]
    info: InfoArgs,
}

fn main() {
    let args = Args::parse();
    if args.info.answered(
        "MistUtilNuke",
        "Nuke",
        "Stop a stuck stream's processes and remove its shared memory",
    ) {
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
