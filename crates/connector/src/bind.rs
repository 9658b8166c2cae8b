//! Binding the runtime's TCP listeners: with a backlog for a burst of joins.
//!
//! mio's `TcpListener::bind` listens with the standard library's backlog of 128: when more
//! viewers than that connect at once (a popular stream going live, a player page opened by a
//! crowd), the kernel drops the SYNs beyond it and each of those clients waits a second or more
//! for its SYN retry. Every listener of the runtime (HTTP, RTMP, RTSP, the controller's API,
//! TS over TCP) is bound here instead.

use mio::net::TcpListener;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Connections the kernel completes and queues for a listener before `accept` takes them. The
/// kernel caps it at `net.core.somaxconn` (4096 by default since Linux 5.4).
pub const BACKLOG: i32 = 4096;

/// Binds a TCP listener as mio does (`SO_REUSEADDR`, non-blocking), with a backlog of
/// [`BACKLOG`].
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    set_backlog(&l, BACKLOG)?;
    Ok(l)
}

/// Listens again with `backlog`: Linux takes a new backlog from a second listen(2).
#[allow(unsafe_code)]
fn set_backlog(l: &TcpListener, backlog: i32) -> io::Result<()> {
    // SAFETY: listen(2) on the listener's own open descriptor, which outlives the call.
    if unsafe { libc::listen(l.as_raw_fd(), backlog) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How many of `n` clients connecting at once the listener's queue holds while nobody
    /// accepts (then taken with `accept`): the SYNs beyond it are dropped, and those clients
    /// wait for their retry a second later.
    fn queued(l: &TcpListener, n: usize) -> usize {
        let addr = l.local_addr().unwrap();
        let clients: Vec<_> = (0..n)
            .map(|_| mio::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let mut got = 0;
        while l.accept().is_ok() {
            got += 1;
        }
        drop(clients);
        got
    }

    #[test]
    fn a_burst_of_joins_is_queued_whole() {
        let n = 400;
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let l = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        // The kernel lets a queue hold one more than its backlog.
        let cap = somaxconn.min(BACKLOG as usize) + 1;
        assert_eq!(queued(&l, n), n.min(cap), "somaxconn {somaxconn}");
        // mio's own bind (128): most of the burst waits on SYN retries, so the test can tell
        // the two apart.
        let m = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let small = queued(&m, n);
        assert!(small < n / 2, "{small} of {n} queued with mio's backlog");
    }
}
