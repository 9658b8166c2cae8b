//! The transport level: a byte stream under a connection, and its output queue.
//!
//! [`Stream`] is the seam where TLS plugs in: a rustls stream wrapping a `TcpStream` implements
//! it (reads and writes go through the TLS session), and a listener flag picks it. Everything above
//! (sessions, the output queue, limits) sees plain bytes either way.

use bytes::Bytes;
use mio::event::Source;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP (or TLS over TCP) peer.
    Tcp(SocketAddr),
    /// A local Unix-socket peer.
    Unix,
}

impl Peer {
    /// The remote IP address, for per-address caps. None for Unix sockets.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Peer::Tcp(a) => Some(a.ip()),
            Peer::Unix => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => write!(f, "{a}"),
            Peer::Unix => f.write_str("unix socket"),
        }
    }
}

/// A non-blocking byte stream the runtime can poll: TCP, Unix, TLS over TCP ([`crate::tls`]).
///
/// `flush` writes what the stream itself still holds (TLS records) and answers `WouldBlock`
/// while some is left; the runtime calls it after each write of the output queue.
pub trait Stream: Read + Write + Source + Send {
    /// Closes both directions (best effort).
    fn shutdown(&self);
    /// A setup phase (the TLS handshake) must be over by then, or the runtime closes the
    /// connection. None: no such phase, or it is over.
    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }
}

impl Stream for mio::net::TcpStream {
    fn shutdown(&self) {
        let _ = mio::net::TcpStream::shutdown(self, std::net::Shutdown::Both);
    }
}

impl Stream for mio::net::UnixStream {
    fn shutdown(&self) {
        let _ = mio::net::UnixStream::shutdown(self, std::net::Shutdown::Both);
    }
}

/// Most slices handed to one `writev`.
const MAX_SLICES: usize = 64;

/// A connection's output: shared chunks written with vectored writes, so that many small
/// messages (or one chunk shared by many viewers) leave in one system call.
#[derive(Default)]
pub struct OutQueue {
    chunks: VecDeque<Bytes>,
    /// Bytes of `chunks[0]` already written.
    off: usize,
    len: usize,
}

impl OutQueue {
    /// Queues a chunk (shared, not copied).
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.chunks.push_back(b);
        }
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.off = 0;
        self.len = 0;
    }

    /// Takes everything queued as one buffer (for tests and in-memory harnesses).
    pub fn take_all(&mut self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for (i, c) in self.chunks.iter().enumerate() {
            v.extend_from_slice(if i == 0 { &c[self.off..] } else { &c[..] });
        }
        self.clear();
        v
    }

    /// Marks `n` bytes as written.
    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let left = self.chunks[0].len() - self.off;
            if n >= left {
                n -= left;
                self.chunks.pop_front();
                self.off = 0;
            } else {
                self.off += n;
                n = 0;
            }
        }
    }

    /// One vectored write of the queue's head through `write` (which gets up to 64 slices and
    /// returns what it wrote, like `writev`); the written bytes leave the queue. Errors,
    /// including `WouldBlock`, are returned as they come.
    pub fn write_with<F>(&mut self, write: F) -> io::Result<usize>
    where
        F: FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
    {
        let mut slices: [IoSlice; MAX_SLICES] = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = 0;
        for (i, c) in self.chunks.iter().take(MAX_SLICES).enumerate() {
            slices[n] = IoSlice::new(if i == 0 { &c[self.off..] } else { &c[..] });
            n += 1;
        }
        let k = write(&slices[..n])?;
        self.advance(k.min(self.len));
        Ok(k)
    }

    /// Writes as much as `w` takes, merged into vectored writes. Returns the bytes written;
    /// `Ok` with the queue non-empty means the writer would block. Err: the peer is gone.
    pub fn flush_to<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut total = 0;
        while !self.is_empty() {
            match self.write_with(|sl| w.write_vectored(sl)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => total += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then would block after `calls` calls.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(b)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls -= 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.cap - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.cap {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_vectored_writes_keep_order() {
        let mut q = OutQueue::default();
        for i in 0..100u8 {
            q.push(Bytes::from(vec![i; (i as usize % 7) + 1]));
        }
        let want: Vec<u8> = (0..100u8)
            .flat_map(|i| vec![i; (i as usize % 7) + 1])
            .collect();
        let mut w = Trickle {
            got: Vec::new(),
            cap: 5,
            calls: 3,
        };
        assert_eq!(q.flush_to(&mut w).unwrap(), 15);
        assert_eq!(q.len(), want.len() - 15);
        w.calls = usize::MAX;
        q.flush_to(&mut w).unwrap();
        assert!(q.is_empty());
        assert_eq!(w.got, want);
    }
}
