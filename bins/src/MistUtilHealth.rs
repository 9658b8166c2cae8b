//! MistUtilHealth: checks the local server for monitoring and the unit's watchdog (logic in
//! `util/health.rs`).
//!
//! Exit codes: 0 healthy; 1 degraded (the controller does not answer, a listener is not running,
//! or memory, shared memory or CPU use is over its limit); 2 usage.

use clap::Parser;
use mist_bins::util::cli::InfoArgs;
use mist_bins::util::health;

#[derive(Parser, Debug)]
#[command(
    name = "MistUtilHealth",
    about = "Check the local mist-rs server: exit 0 healthy, 1 degraded",
    disable_version_flag = true
)]
struct Args {
    /// The HTTP API to ask (HOST:PORT) instead of the control socket
    #[arg(short = 'a', long = "api")]
    api: Option<String>,
    /// Memory use limit in percent (0: not checked)
    #[arg(long = "max-mem", default_value_t = 90.0)]
    max_mem: f64,
    /// Shared-memory (tmpfs) use limit in percent (0: not checked)
    #[arg(long = "max-shm", default_value_t = 90.0)]
    max_shm: f64,
    /// CPU limit: one-minute load average per CPU in percent (0: not checked)
    #[arg(long = "max-cpu", default_value_t = 90.0)]
    max_cpu: f64,
    /// Print nothing; only the exit code tells
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    #[command(flatten)]
    info: InfoArgs,
}

fn main() {
    let args = Args::parse();
    if args.info.answered(
        "MistUtilHealth",
        "Health",
        "Exit 0 when the server is healthy, 1 when degraded",
    ) {
        return;
    }
    let checks = health::run(
        args.api.as_deref(),
        health::Limits {
            mem: args.max_mem,
            shm: args.max_shm,
            cpu: args.max_cpu,
        },
    );
    let healthy = checks.iter().all(|c| c.ok);
    if !args.quiet {
        for c in &checks {
            println!(
                "{} {}: {}",
                if c.ok { "OK      " } else { "DEGRADED" },
                c.what,
                c.detail
            );
        }
        println!("{}", if healthy { "healthy" } else { "degraded" });
    }
    std::process::exit(if healthy { 0 } else { 1 });
}
