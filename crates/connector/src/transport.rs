//! The transport level: a byte stream under a connection, and its output queue.
//!
//! [`Stream`] is the seam where TLS plugs in: a rustls stream wrapping a `TcpStream` implements
//! it (reads and writes go through the TLS session), and a listener flag picks it. Everything above
//! (sessions, the output queue, limits) sees plain bytes either way.

use crate::file::FileRange;
use bytes::Bytes;
use mio::event::Source;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};

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
    /// The socket descriptor file ranges can be sent to with `sendfile(2)`; None (the default)
    /// when the bytes must pass through [`Write`] (TLS).
    fn send_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Whether a read that fills less than the buffer proves the socket empty, so that the
    /// edge-triggered poll reports the next bytes and the read loop can stop without a last
    /// read that only answers `WouldBlock` (one system call per request saved). True for
    /// plain stream sockets; false (the default) where the stream buffers bytes itself (TLS).
    fn short_read_drains(&self) -> bool {
        false
    }
}

impl Stream for mio::net::TcpStream {
    fn shutdown(&self) {
        let _ = mio::net::TcpStream::shutdown(self, std::net::Shutdown::Both);
    }
    fn send_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
    fn short_read_drains(&self) -> bool {
        true
    }
}

impl Stream for mio::net::UnixStream {
    fn shutdown(&self) {
        let _ = mio::net::UnixStream::shutdown(self, std::net::Shutdown::Both);
    }
    fn short_read_drains(&self) -> bool {
        true
    }
}

/// Most slices handed to one `writev`.
const MAX_SLICES: usize = 64;
/// Queue slots kept by an empty queue ([`OutQueue::release_idle`]).
const IDLE_ITEMS: usize = 64;
/// Bytes read at once from a file range for a stream without a descriptor.
const FILE_READ: usize = 256 << 10;

enum Item {
    Mem(Bytes),
    File(FileRange),
}

/// A connection's output: shared chunks written with vectored writes, so that many small
/// messages (or one chunk shared by many viewers) leave in one system call; and file ranges
/// ([`FileRange`]) sent by the kernel from the file.
#[derive(Default)]
pub struct OutQueue {
    items: VecDeque<Item>,
    /// Bytes of `items[0]` (in memory) already written.
    off: usize,
    /// Bytes in memory waiting (file ranges are not counted: they cost no memory).
    len: usize,
}

impl OutQueue {
    /// Queues a chunk (shared, not copied).
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.items.push_back(Item::Mem(b));
        }
    }

    /// Queues a file range, sent with `sendfile(2)` where the stream allows it.
    pub fn push_file(&mut self, f: FileRange) {
        if f.pos < f.end {
            self.items.push_back(Item::File(f));
        }
    }

    /// Moves everything queued in `other` to the end of this queue.
    pub fn append(&mut self, other: &mut OutQueue) {
        if other.off > 0 {
            if let Some(Item::Mem(b)) = other.items.front_mut() {
                *b = b.slice(other.off..);
            }
            other.off = 0;
        }
        self.len += other.len;
        other.len = 0;
        self.items.append(&mut other.items);
    }

    /// Bytes in memory waiting to be written (queued file ranges are not counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing waits (neither bytes nor file ranges).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Gives back the room a burst left behind (a viewer's first GOP is a few hundred items)
    /// once everything is written: thousands of idle-between-frames viewers should not each
    /// hold a burst-sized ring. Steady fan-out stays below the threshold: no allocation per frame.
    pub fn release_idle(&mut self) {
        if self.items.is_empty() && self.items.capacity() > IDLE_ITEMS {
            self.items = VecDeque::new();
        }
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        self.items.clear();
        self.off = 0;
        self.len = 0;
    }

    /// Takes everything queued as one buffer (for tests and in-memory harnesses); file ranges
    /// are read.
    pub fn take_all(&mut self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for (i, c) in self.items.iter().enumerate() {
            match c {
                Item::Mem(c) => v.extend_from_slice(if i == 0 { &c[self.off..] } else { &c[..] }),
                Item::File(f) => {
                    let mut pos = f.pos;
                    while pos < f.end {
                        let want = (f.end - pos).min(FILE_READ as u64) as usize;
                        match f.src.read(pos, want) {
                            Ok(b) if !b.is_empty() => {
                                pos += b.len() as u64;
                                v.extend_from_slice(&b);
                            }
                            _ => break,
                        }
                    }
                }
            }
        }
        self.clear();
        v
    }

    /// Marks `n` bytes of the in-memory head as written.
    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(Item::Mem(head)) = self.items.front() else {
                return;
            };
            let left = head.len() - self.off;
            if n >= left {
                n -= left;
                self.items.pop_front();
                self.off = 0;
            } else {
                self.off += n;
                n = 0;
            }
        }
    }

    /// The in-memory head as slices (up to 64), and whether a file range follows them.
    fn head_slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_SLICES]) -> (usize, bool) {
        let mut n = 0;
        for (i, c) in self.items.iter().enumerate() {
            match c {
                Item::Mem(c) => {
                    if n == MAX_SLICES {
                        return (n, false);
                    }
                    slices[n] = IoSlice::new(if i == 0 { &c[self.off..] } else { &c[..] });
                    n += 1;
                }
                Item::File(_) => return (n, true),
            }
        }
        (n, false)
    }

    /// One vectored write of the queue's in-memory head through `write` (which gets up to 64
    /// slices and returns what it wrote, like `writev`); the written bytes leave the queue.
    /// Errors, including `WouldBlock`, are returned as they come. A file range at the head is
    /// not written here (see [`OutQueue::flush_stream`]).
    pub fn write_with<F>(&mut self, write: F) -> io::Result<usize>
    where
        F: FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
    {
        let mut slices: [IoSlice; MAX_SLICES] = [IoSlice::new(&[]); MAX_SLICES];
        let (n, _) = self.head_slices(&mut slices);
        let k = write(&slices[..n])?;
        self.advance(k.min(self.len));
        Ok(k)
    }

    /// Turns the head of a file range at the queue's head into bytes in memory (for writers
    /// without a descriptor). Err: the file is shorter than promised.
    fn read_file_head(&mut self) -> io::Result<()> {
        let Some(Item::File(f)) = self.items.front_mut() else {
            return Ok(());
        };
        let want = f.remaining().min(FILE_READ as u64) as usize;
        let b = f.src.read(f.pos, want)?;
        if b.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let b = b.slice(..b.len().min(want));
        f.pos += b.len() as u64;
        if f.pos >= f.end {
            self.items.pop_front();
        }
        self.len += b.len();
        self.items.push_front(Item::Mem(b));
        Ok(())
    }

    /// Writes as much as `w` takes, merged into vectored writes; file ranges are read into
    /// memory first. Returns the bytes written; `Ok` with the queue non-empty means the writer
    /// would block. Err: the peer is gone (or a file is shorter than promised).
    pub fn flush_to<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut total = 0;
        while !self.is_empty() {
            if matches!(self.items.front(), Some(Item::File(_))) {
                self.read_file_head()?;
            }
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

    /// Writes as much as the stream takes: bytes in memory with vectored writes, file ranges
    /// with `sendfile(2)` when the stream has a descriptor ([`Stream::send_fd`]), else through
    /// [`OutQueue::flush_to`]'s reads. Same answers as [`OutQueue::flush_to`].
    pub fn flush_stream<S: Stream + ?Sized>(&mut self, s: &mut S) -> io::Result<usize> {
        if s.send_fd().is_none() {
            return self.flush_to(s);
        }
        let mut total = 0;
        while let Some(head) = self.items.front_mut() {
            let res = match head {
                Item::File(f) => {
                    let Some(fd) = s.send_fd() else { break };
                    match f.src.send(fd, f.pos, f.end) {
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(n) => {
                            f.pos += n as u64;
                            if f.pos >= f.end {
                                self.items.pop_front();
                            }
                            Ok(n)
                        }
                        Err(e) => Err(e),
                    }
                }
                Item::Mem(_) => {
                    let mut slices: [IoSlice; MAX_SLICES] = [IoSlice::new(&[]); MAX_SLICES];
                    let (n, file_next) = self.head_slices(&mut slices);
                    let src = if file_next {
                        self.items.iter().find_map(|i| match i {
                            Item::File(f) => Some(f.src.clone()),
                            Item::Mem(_) => None,
                        })
                    } else {
                        None
                    };
                    let r = match src {
                        Some(src) => match s.send_fd() {
                            Some(fd) => src.send_before(fd, &slices[..n]),
                            None => Err(io::ErrorKind::Unsupported.into()),
                        },
                        None => s.write_vectored(&slices[..n]),
                    };
                    match r {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(k) => {
                            self.advance(k.min(self.len));
                            Ok(k)
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match res {
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

    struct MemFile(Vec<u8>);

    impl crate::file::FileSource for MemFile {
        fn send(&self, _: BorrowedFd<'_>, _: u64, _: u64) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn send_before(&self, _: BorrowedFd<'_>, _: &[IoSlice<'_>]) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn read(&self, pos: u64, max: usize) -> io::Result<Bytes> {
            let a = (pos as usize).min(self.0.len());
            let b = (a + max).min(self.0.len());
            Ok(Bytes::copy_from_slice(&self.0[a..b]))
        }
    }

    /// File ranges between chunks keep their place; without a descriptor they are read.
    #[test]
    fn file_ranges_in_order_through_a_plain_writer() {
        let file: std::sync::Arc<dyn crate::file::FileSource> =
            std::sync::Arc::new(MemFile((0..=255u8).cycle().take(1 << 20).collect()));
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"head"));
        q.push_file(FileRange {
            src: file.clone(),
            pos: 10,
            end: 700_010,
        });
        q.push(Bytes::from_static(b"tail"));
        assert_eq!(q.len(), 8, "file ranges cost no memory");
        let mut want = b"head".to_vec();
        want.extend((0..=255u8).cycle().skip(10).take(700_000));
        want.extend_from_slice(b"tail");
        let mut w = Trickle {
            got: Vec::new(),
            cap: 100_000,
            calls: usize::MAX,
        };
        q.flush_to(&mut w).unwrap();
        assert!(q.is_empty());
        assert_eq!(w.got, want);
        // A file shorter than promised is an error, not a silent short answer.
        q.push_file(FileRange {
            src: file,
            pos: (1 << 20) - 5,
            end: (1 << 20) + 5,
        });
        assert!(q.flush_to(&mut w).is_err());
    }
}
