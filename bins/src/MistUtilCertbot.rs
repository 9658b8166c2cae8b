//! MistUtilCertbot: certbot's `--manual-auth-hook` and `--deploy-hook` for mist-rs
//! (logic in `util/certbot.rs`).
//!
//! Exit codes: 0 done; 1 usage (neither hook's environment set) or the hook failed.

use clap::Parser;
use mist_bins::util::cli::InfoArgs;
use mist_bins::util::{certbot, client::Client};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "MistUtilCertbot",
    about = "certbot hook: serves http-01 challenges on the HTTP listener (auth hook) and installs the certificate in every HTTPS protocol (deploy hook)",
    after_help = "Environment (set by certbot):\n  CERTBOT_TOKEN, CERTBOT_VALIDATION  auth hook: answer /.well-known/acme-challenge/TOKEN\n  RENEWED_LINEAGE                    deploy hook: use RENEWED_LINEAGE/fullchain.pem and privkey.pem\n\nExample:\n  certbot certonly --manual --preferred-challenges=http --manual-auth-hook MistUtilCertbot --deploy-hook MistUtilCertbot -d example.com",
    disable_version_flag = true
)]
struct Args {
    /// The HTTP API to use (HOST:PORT) instead of the control socket
    #[arg(short = 'a', long = "api")]
    api: Option<String>,
    /// Port the ACME server's http-01 validation reaches
    #[arg(short = 'p', long = "port", default_value_t = 80)]
    port: u16,
    /// Debug level (0-10; 3 prints only problems, which certbot shows as the hook's error output)
    #[arg(short = 'g', long = "debug", default_value_t = 3)]
    debug: u8,
    #[command(flatten)]
    info: InfoArgs,
}

const USAGE: &str = "MistUtilCertbot is run by certbot as a hook, which sets its environment:\n  certbot certonly --manual --preferred-challenges=http --manual-auth-hook MistUtilCertbot --deploy-hook MistUtilCertbot -d example.com\nNeither CERTBOT_TOKEN+CERTBOT_VALIDATION (auth hook) nor RENEWED_LINEAGE (deploy hook) is set.";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

fn main() {
    let args = Args::parse();
    if args.info.answered(
        "MistUtilCertbot",
        "Certbot",
        "certbot auth and deploy hook (CERTBOT_TOKEN/CERTBOT_VALIDATION, RENEWED_LINEAGE)",
    ) {
        return;
    }
    mist_core::log::init("MistUtilCertbot", args.debug);
    let auth = env("CERTBOT_TOKEN").zip(env("CERTBOT_VALIDATION"));
    let deploy = env("RENEWED_LINEAGE").map(PathBuf::from);
    if auth.is_none() && deploy.is_none() {
        eprintln!("{USAGE}");
        std::process::exit(1);
    }
    let client = match Client::discover(args.api.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            mist_core::fail!("{e}");
            std::process::exit(1);
        }
    };
    mist_core::debug!("using the {}", client.describe());
    // certbot keeps CERTBOT_TOKEN/CERTBOT_VALIDATION of the last challenge in the environment of
    // the deploy hook, so RENEWED_LINEAGE decides.
    let res = if let Some(lineage) = deploy {
        certbot::deploy_hook(&client, &lineage).map(|()| {
            mist_core::info!("HTTPS protocols use {}", lineage.display());
        })
    } else {
        let (token, validation) = auth.expect("checked above");
        certbot::auth_hook(&client, args.port, &token, &validation)
    };
    if let Err(e) = res {
        mist_core::fail!("{e} (through the {})", client.describe());
        std::process::exit(1);
    }
}
