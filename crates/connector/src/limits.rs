//! Per-listener limits: connection caps, buffer sizes, timeouts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What one listener allows. Each listener has its own, so a flood on one (the public API) can
/// never use up what another (the control socket) needs.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections on this listener.
    pub max_conns: usize,
    /// Open connections from one remote IP address on this listener (TCP only).
    pub max_per_ip: usize,
    /// Unconsumed input a session may leave buffered; more closes the connection.
    pub max_input: usize,
    /// Input read from one connection per loop turn, so one flooding peer cannot stall the loop.
    pub read_budget: usize,
    /// Queued output above which the connection is cut (a slow viewer).
    pub max_output: usize,
    /// Queued output above which no more input is read (backpressure) until it drains.
    pub pause_output: usize,
    /// Longest a partial message (unconsumed input) may take to complete (slowloris cut).
    pub header_timeout: Option<Duration>,
    /// Longest a connection may go without reading or writing a byte.
    pub idle_timeout: Option<Duration>,
    /// Longest queued output may wait without any write progress.
    pub write_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 1024,
            max_per_ip: 256,
            max_input: 1 << 20,
            read_budget: 256 << 10,
            max_output: 32 << 20,
            pause_output: 4 << 20,
            header_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Counts a listener's connections, in total and per remote address.
#[derive(Debug, Default)]
pub(crate) struct Caps {
    pub total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Last time a refusal was logged (one line per second at most).
    last_log: Option<Instant>,
    /// Refusals since the last log line.
    refused: u64,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Listener,
    Address,
}

impl Caps {
    /// Admits a connection from `ip`, or says which cap it hit.
    pub fn admit(&mut self, l: &Limits, ip: Option<IpAddr>) -> Result<(), Refusal> {
        if self.total >= l.max_conns {
            return Err(Refusal::Listener);
        }
        if let Some(ip) = ip {
            let n = self.per_ip.entry(ip).or_default();
            if *n >= l.max_per_ip {
                return Err(Refusal::Address);
            }
            *n += 1;
        }
        self.total += 1;
        Ok(())
    }

    /// A connection from `ip` closed.
    pub fn release(&mut self, ip: Option<IpAddr>) {
        self.total = self.total.saturating_sub(1);
        if let Some(ip) = ip {
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
    }

    /// Counts a refusal; returns the number to log when a log line is due (once a second).
    pub fn refused(&mut self, now: Instant) -> Option<u64> {
        self.refused += 1;
        if self
            .last_log
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.last_log = Some(now);
        Some(std::mem::take(&mut self.refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_listener_and_per_address() {
        let l = Limits {
            max_conns: 3,
            max_per_ip: 2,
            ..Limits::default()
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut c = Caps::default();
        assert_eq!(c.admit(&l, Some(a)), Ok(()));
        assert_eq!(c.admit(&l, Some(a)), Ok(()));
        assert_eq!(c.admit(&l, Some(a)), Err(Refusal::Address));
        assert_eq!(c.admit(&l, Some(b)), Ok(()));
        assert_eq!(c.admit(&l, Some(b)), Err(Refusal::Listener));
        c.release(Some(a));
        assert_eq!(c.admit(&l, None), Ok(()));
        let now = Instant::now();
        assert_eq!(c.refused(now), Some(1));
        assert_eq!(c.refused(now), None);
        assert_eq!(c.refused(now + Duration::from_secs(2)), Some(2));
    }
}
