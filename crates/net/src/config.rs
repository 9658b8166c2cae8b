//! The bounds and timers of the HTTP server and its sessions.

use std::time::Duration;

/// Bounds and timers of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Maximum request line plus headers (431 beyond).
    pub max_head: usize,
    /// Maximum request line (414 beyond).
    pub max_line: usize,
    /// Maximum request body (413 beyond).
    pub max_body: usize,
    /// Queued output per connection beyond which the client is dropped.
    pub max_backlog: usize,
    /// Keep-alive idle time between requests.
    pub idle_timeout: Duration,
    /// Time allowed to finish sending a request head/body once started.
    pub request_timeout: Duration,
    /// Time a connection with queued output may make no write progress.
    pub write_timeout: Duration,
    /// Maximum simultaneous connections (further ones are accepted and closed at once).
    pub max_conns: usize,
    /// Maximum simultaneous connections from one remote IP address (0: no per-address cap).
    pub max_per_ip: usize,
    /// How often [`Handler::tick`](crate::http_session::Handler::tick) runs.
    pub tick: Duration,
    /// Merged writes for fan-out ([`Io::send_all`](crate::http_session::Io::send_all)): a
    /// connection is written at most this often unless [`MERGE_BYTES`] are queued for it (zero:
    /// at once). Fewer, larger writes cost much less CPU per delivered byte, at the price of up
    /// to this much latency.
    pub merge: Duration,
}

/// Queued bytes at which a fan-out connection is written without waiting for the merge interval.
pub const MERGE_BYTES: usize = 256 << 10;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_head: 16 * 1024,
            max_line: 8 * 1024,
            max_body: 64 * 1024,
            max_backlog: 8 << 20,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_conns: 10_000,
            max_per_ip: DEFAULT_MAX_PER_IP,
            tick: Duration::from_millis(100),
            merge: Duration::from_millis(100),
        }
    }
}

/// Default of [`ServerConfig::max_per_ip`].
pub const DEFAULT_MAX_PER_IP: usize = 1024;
