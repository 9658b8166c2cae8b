//! The `-j`/`--json` and `-v`/`--version` flags every utility has (`#[command(flatten)]` into its
//! arguments, which then set `disable_version_flag = true`).

use clap::ArgAction;

/// `-j`: print the capabilities JSON; `-v`: print the version. Either ends the process.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Print the capabilities JSON and exit
    #[arg(short = 'j', long = "json")]
    pub json: bool,
    /// Print the version and exit
    #[arg(short = 'v', long = "version", action = ArgAction::SetTrue)]
    pub version: bool,
}

impl InfoArgs {
    /// Prints the capabilities (`name` and `desc`, as the controller lists utilities) or the
    /// version of `bin` when asked. True: that was all to do.
    pub fn answered(&self, bin: &str, name: &str, desc: &str) -> bool {
        self.answered_caps(bin, &serde_json::json!({"name": name, "desc": desc}))
    }

    /// Prints the capabilities `caps` or the version of `bin` when asked. True: that was all to
    /// do.
    pub fn answered_caps(&self, bin: &str, caps: &serde_json::Value) -> bool {
        if self.json {
            println!("{caps}");
            return true;
        }
        if self.version {
            println!("{bin} mist-rs {}", env!("CARGO_PKG_VERSION"));
            return true;
        }
        false
    }
}

/// `-g`, `-j` and `-v` of the inputs and connectors the controller starts (`#[command(flatten)]`
/// last into their arguments, which then set `version` and `disable_version_flag = true`).
#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    /// Debug level 0-10 (3 production, 4 default)
    #[arg(short = 'g', long = "debug", default_value_t = 4)]
    pub debug: u8,
    /// Print the capabilities JSON and exit
    #[arg(short = 'j', long = "json")]
    pub json: bool,
    /// Print the version and exit
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,
}

impl ProcessArgs {
    /// Prints the capabilities `caps` makes when `-j` was given. True: that was all to do.
    pub fn printed_json(&self, caps: impl FnOnce() -> serde_json::Value) -> bool {
        if self.json {
            println!("{}", caps());
        }
        self.json
    }
}

/// A flag SIGINT and SIGTERM set: the process ends cleanly when it sees it.
pub fn stop_on_signals() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}

/// The stream name of `-s`, sanitized. Logs why and exits with `usage` when none was given or it
/// is not a valid name.
pub fn stream_arg(stream: Option<String>, usage: i32) -> String {
    let Some(stream) = stream.filter(|s| !s.is_empty()) else {
        mist_core::error!("no stream name given (-s)");
        std::process::exit(usage);
    };
    let name = mist_core::names::sanitize(&stream);
    if !mist_core::names::is_valid(&name) {
        mist_core::error!("invalid stream name {stream:?}");
        std::process::exit(usage);
    }
    name
}
