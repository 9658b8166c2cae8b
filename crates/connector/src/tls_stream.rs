//! A TLS transport generic over the rustls side: a rustls connection over a non-blocking TCP
//! socket, as a [`Stream`] whose reads and writes carry plaintext.
//!
//! The client side (`TlsClientStream` in `tls_client.rs`, for pushes to `rtmps://`) uses it; a
//! side differs only in where a failure is told (a log line naming the peer, or a slot the
//! session reads after the close), which is a [`TlsSide`]. The server side (`TlsStream` in
//! `tls.rs`) has its own stream since it hands established connections to the kernel (kTLS),
//! reading the handshake one record at a time; the two were one before kTLS landed.
//!
//! The handshake runs inside the runtime's reads and writes: records leave on writable events,
//! plaintext queued meanwhile is held by rustls until the handshake is over, and a handshake not
//! done by the deadline is closed by the runtime's sweep ([`Stream::deadline`]).

use crate::transport::Stream;
use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::ConnectionCommon;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::ops::DerefMut;
use std::time::Instant;

/// TLS records rustls may hold unsent per connection; more makes writes answer `WouldBlock`,
/// so the runtime's output queue (and its slow-viewer cut) still sees the backlog.
const TLS_BUFFER: usize = 64 << 10;

/// What differs between the server and the client side of a [`TlsTransport`]: the rustls
/// connection type and where a failure is reported (the session only sees the close).
pub trait TlsSide {
    /// rustls' per-side data (`ServerConnectionData` or `ClientConnectionData`).
    type Data;
    /// The rustls connection (`ServerConnection` or `ClientConnection`).
    type Conn: DerefMut<Target = ConnectionCommon<Self::Data>>;

    /// The peer sent something rustls refused (`handshaking`: before the handshake was over).
    fn refused(&mut self, handshaking: bool, e: &rustls::Error);

    /// The peer closed TCP before the handshake was over.
    fn closed_in_handshake(&mut self) {}

    /// The stream is dropped with the handshake still running past its deadline.
    fn timed_out(&mut self) {}
}

/// A TLS connection over TCP: reads and writes carry plaintext. See the module documentation.
pub struct TlsTransport<S: TlsSide> {
    tcp: TcpStream,
    pub(crate) conn: S::Conn,
    deadline: Instant,
    pub(crate) side: S,
    /// The peer sent something that is not TLS (or broke the protocol); the alert is out.
    failed: bool,
}

impl<S: TlsSide> TlsTransport<S> {
    /// Wraps a connected non-blocking socket; the handshake must be over by `deadline`.
    pub(crate) fn with_side(
        tcp: TcpStream,
        mut conn: S::Conn,
        deadline: Instant,
        side: S,
    ) -> TlsTransport<S> {
        conn.set_buffer_limit(Some(TLS_BUFFER));
        TlsTransport {
            tcp,
            conn,
            deadline,
            side,
            failed: false,
        }
    }

    /// Writes pending TLS records. `WouldBlock` if some are left.
    fn push_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.tcp) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `push_tls` where `WouldBlock` is fine (the rest leaves on the next writable event).
    fn push_tls_soft(&mut self) -> io::Result<()> {
        match self.push_tls() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }
}

impl<S: TlsSide> Read for TlsTransport<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Ok(0);
        }
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: close_notify
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.tcp) {
                Ok(0) => {
                    if self.conn.is_handshaking() {
                        self.side.closed_in_handshake();
                    }
                    return Ok(0);
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let handshaking = self.conn.is_handshaking();
            if let Err(e) = self.conn.process_new_packets() {
                self.side.refused(handshaking, &e);
                self.failed = true;
                let _ = self.push_tls(); // the alert
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
            self.push_tls_soft()?;
        }
    }
}

impl<S: TlsSide> Write for TlsTransport<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.failed {
            return Err(ErrorKind::BrokenPipe.into());
        }
        // Records from the last call first: until they are out, take nothing new.
        self.push_tls()?;
        let n = self.conn.writer().write_vectored(bufs)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(ErrorKind::WouldBlock.into());
        }
        self.push_tls_soft()?;
        Ok(n)
    }

    /// Writes the records rustls still holds; `WouldBlock` while some are left.
    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Ok(());
        }
        self.push_tls()
    }
}

impl<S: TlsSide> Source for TlsTransport<S> {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.tcp.deregister(r)
    }
}

impl<S: TlsSide + Send> Stream for TlsTransport<S>
where
    S::Conn: Send,
{
    /// The close happens on drop, which first sends `close_notify` (needs `&mut`).
    fn shutdown(&self) {}

    fn deadline(&self) -> Option<Instant> {
        self.conn.is_handshaking().then_some(self.deadline)
    }
}

impl<S: TlsSide> Drop for TlsTransport<S> {
    fn drop(&mut self) {
        if self.conn.is_handshaking() {
            if Instant::now() >= self.deadline {
                self.side.timed_out();
            }
        } else if !self.failed {
            self.conn.send_close_notify();
            let _ = self.push_tls();
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }
}
