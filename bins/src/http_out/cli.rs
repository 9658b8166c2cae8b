//! The command-line options MistOutHTTP and MistOutHTTPS share (each adds its port and, for
//! HTTPS, the certificates).

use super::Options;

/// Options common to the plain and TLS HTTP connectors (`#[command(flatten)]` into each binary).
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Address to listen on
    #[arg(short = 'i', long = "interface", default_value = "0.0.0.0")]
    pub interface: String,
    /// ACME http-01 answer, TOKEN:VALIDATION
    #[arg(long = "certbot")]
    pub certbot: Option<String>,
    /// Connectors to serve, comma-separated (HTTPTS,FLV,MP4,EBML,HLS,CMAF); default: the
    /// controller's protocol list, or all when standalone
    #[arg(long = "formats")]
    pub formats: Option<String>,
    /// Accepted for compatibility (privileges are not dropped)
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    /// Merged writes: write each progressive viewer at most every MS milliseconds (0: every frame)
    #[arg(long = "merge-ms", default_value_t = 100)]
    pub merge_ms: u64,
    /// Most simultaneous connections from one remote IP address, 0 for no cap [default:
    /// $MIST_HTTP_MAX_PER_IP, else 1024]
    #[arg(long = "max-conns-per-ip")]
    pub max_conns_per_ip: Option<usize>,
    /// Debug level (0-10)
    #[arg(short = 'g', long = "debug", default_value_t = 4)]
    pub debug: u8,
    /// `-j` and `-v`: what the controller asks of a connector before it runs one.
    #[command(flatten)]
    pub info: crate::util::cli::InfoArgs,
}

impl CommonArgs {
    /// The server options for `port`, plain (`tls` None) or TLS.
    pub fn options(self, port: u16, tls: Option<Vec<mist_connector::PemPair>>) -> Options {
        Options {
            port,
            interface: self.interface,
            certbot: self.certbot.filter(|c| !c.is_empty()),
            formats: self.formats.map(|f| {
                f.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            merge: std::time::Duration::from_millis(self.merge_ms),
            max_per_ip: self.max_conns_per_ip.unwrap_or_else(|| {
                std::env::var("MIST_HTTP_MAX_PER_IP")
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(mist_net::server::DEFAULT_MAX_PER_IP)
            }),
            tls,
        }
    }
}
