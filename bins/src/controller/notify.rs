//! systemd readiness (`Type=notify`): `READY=1` to `$NOTIFY_SOCKET` once the API listens and
//! every protocol listener the controller started accepts connections (or after [`READY_MAX`],
//! with a STATUS naming the ones that do not, so a broken protocol does not fail the start).
//! Under `WatchdogSec=` (`$WATCHDOG_USEC`), `WATCHDOG=1` every half period while the controller's
//! loop turns: a wedged loop gets the service restarted.

use super::children::Role;
use super::Controller;
use serde_json::Value;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Longest wait for the listeners before READY=1 is sent anyway.
pub const READY_MAX: Duration = Duration::from_secs(30);

/// Sends one notification (`KEY=VALUE` lines) to `$NOTIFY_SOCKET`; false when there is none or it
/// fails. A leading `@` is Linux's abstract namespace.
pub fn sd_notify(msg: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
        return false;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        match std::os::unix::net::SocketAddr::from_abstract_name(name) {
            Ok(a) => sock.send_to_addr(msg.as_bytes(), &a).is_ok(),
            Err(_) => false,
        }
    } else {
        sock.send_to(msg.as_bytes(), &path).is_ok()
    }
}

/// Tracks whether READY=1 was sent, and when the watchdog wants its next `WATCHDOG=1`.
pub struct Readiness {
    done: bool,
    since: Instant,
    watchdog: Option<Duration>,
    next_ping: Instant,
}

/// The watchdog period systemd asks for (`WATCHDOG_USEC`, for this process: `WATCHDOG_PID`
/// unset or ours), None without one.
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(std::process::id())) {
        return None;
    }
    let us: u64 = usec?.trim().parse().ok()?;
    (us > 0).then(|| Duration::from_micros(us))
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new()
    }
}

impl Readiness {
    pub fn new() -> Readiness {
        let socket = std::env::var_os("NOTIFY_SOCKET").is_some_and(|p| !p.is_empty());
        let watchdog = socket
            .then(|| {
                watchdog_period(
                    std::env::var("WATCHDOG_USEC").ok().as_deref(),
                    std::env::var("WATCHDOG_PID").ok().as_deref(),
                )
            })
            .flatten();
        Readiness {
            done: !socket,
            since: Instant::now(),
            watchdog,
            next_ping: Instant::now(),
        }
    }

    /// Called from the loop: sends READY=1 once every started listener accepts connections.
    pub fn tick(&mut self, ctl: &Controller) {
        if let Some(period) = self.watchdog {
            let now = Instant::now();
            if now >= self.next_ping {
                sd_notify("WATCHDOG=1");
                self.next_ping = now + period / 2;
            }
        }
        if self.done {
            return;
        }
        let waiting = waiting_listeners(ctl);
        if waiting.is_empty() {
            sd_notify("READY=1\nSTATUS=API and every protocol listening");
        } else if self.since.elapsed() >= READY_MAX {
            let names = waiting.join(", ");
            sd_notify(&format!("READY=1\nSTATUS=not listening: {names}"));
            mist_core::warn!("told systemd we are ready; still not listening: {names}");
        } else {
            return;
        }
        self.done = true;
    }
}

/// Where a protocol entry's listener can be reached from here.
fn listen_addr(ctl: &Controller, p: &mist_core::config::Protocol) -> Option<SocketAddr> {
    let default = ctl
        .caps
        .connectors
        .get(&p.connector)
        .and_then(|c| {
            c.pointer("/optional/port/default")
                .or(c.pointer("/required/port/default"))
        })
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok());
    let port = p.port().or(default)?;
    let iface = p
        .options
        .get("interface")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let host = match iface {
        None | Some("0.0.0.0") => "127.0.0.1".to_string(),
        Some("::") => "[::1]".to_string(),
        Some(i) if i.contains(':') && !i.starts_with('[') => format!("[{i}]"),
        Some(i) => i.to_string(),
    };
    format!("{host}:{port}").to_socket_addrs().ok()?.next()
}

/// The started protocol listeners that do not accept connections yet.
fn waiting_listeners(ctl: &Controller) -> Vec<String> {
    ctl.cfg
        .config
        .protocols
        .iter()
        .filter(|p| {
            let key = serde_json::to_string(p).unwrap_or_default();
            ctl.sup.find(&Role::Protocol(key)).is_some()
        })
        .filter_map(|p| {
            let addr = listen_addr(ctl, p)?;
            TcpStream::connect_timeout(&addr, Duration::from_millis(100))
                .is_err()
                .then(|| format!("{} on {addr}", p.connector))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::watchdog_period;
    use std::time::Duration;

    #[test]
    fn watchdog_period_for_this_process_only() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_period(Some("30000000"), Some(&me)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_period(Some("500000"), None),
            Some(Duration::from_millis(500))
        );
        assert_eq!(watchdog_period(Some("30000000"), Some("1")), None);
        assert_eq!(watchdog_period(None, None), None);
        assert_eq!(watchdog_period(Some("0"), None), None);
        assert_eq!(watchdog_period(Some("x"), None), None);
    }
}
