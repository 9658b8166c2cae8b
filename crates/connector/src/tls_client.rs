//! The client side of TLS as a [`Stream`]: a rustls client connection over a non-blocking TCP
//! socket this process connected, for [`crate::Runtime::adopt`] (pushes to `rtmps://`).
//!
//! The handshake runs inside the runtime's reads and writes like everything else: the
//! ClientHello leaves on the first writable event, plaintext the session queues meanwhile is
//! held by rustls and leaves once the handshake is done. A handshake not done by the deadline
//! is closed by the runtime's sweep ([`Stream::deadline`]). Why a connection failed (a
//! certificate that is not trusted, an alert) is kept in [`TlsClientStream::error_slot`] for
//! the session's `on_close`, which sees only that the connection is gone.

use crate::transport::Stream;
use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::ClientConnection;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// TLS records rustls may hold unsent; more makes writes answer `WouldBlock`.
const TLS_BUFFER: usize = 64 << 10;

/// Where a client stream leaves the reason it failed.
pub type ErrorSlot = Arc<Mutex<Option<String>>>;

/// A client-side TLS connection over TCP: reads and writes carry plaintext.
pub struct TlsClientStream {
    tcp: TcpStream,
    conn: ClientConnection,
    deadline: Instant,
    failed: bool,
    error: ErrorSlot,
}

impl TlsClientStream {
    /// Wraps a connected non-blocking socket; the handshake must be over by `deadline`.
    pub fn new(tcp: TcpStream, mut conn: ClientConnection, deadline: Instant) -> TlsClientStream {
        conn.set_buffer_limit(Some(TLS_BUFFER));
        TlsClientStream {
            tcp,
            conn,
            deadline,
            failed: false,
            error: Arc::new(Mutex::new(None)),
        }
    }

    /// Where the reason of a TLS failure is left (read it after the connection closed).
    pub fn error_slot(&self) -> ErrorSlot {
        self.error.clone()
    }

    fn fail(&mut self, why: String) {
        if let Ok(mut e) = self.error.lock() {
            e.get_or_insert(why);
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

    fn push_tls_soft(&mut self) -> io::Result<()> {
        match self.push_tls() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }
}

impl Read for TlsClientStream {
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
                        self.fail(
                            "TLS: the server closed the connection during the handshake".into(),
                        );
                    }
                    return Ok(0);
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                self.fail(format!("TLS: {e}"));
                self.failed = true;
                let _ = self.push_tls(); // the alert
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
            self.push_tls_soft()?;
        }
    }
}

impl Write for TlsClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.failed {
            return Err(ErrorKind::BrokenPipe.into());
        }
        self.push_tls()?;
        let n = self.conn.writer().write_vectored(bufs)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(ErrorKind::WouldBlock.into());
        }
        self.push_tls_soft()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Ok(());
        }
        self.push_tls()
    }
}

impl Source for TlsClientStream {
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

impl Stream for TlsClientStream {
    /// The close happens on drop, which first sends `close_notify` (needs `&mut`).
    fn shutdown(&self) {}

    fn deadline(&self) -> Option<Instant> {
        self.conn.is_handshaking().then_some(self.deadline)
    }
}

impl Drop for TlsClientStream {
    fn drop(&mut self) {
        if self.conn.is_handshaking() && Instant::now() >= self.deadline {
            self.fail("TLS handshake timeout".into());
        }
        if !self.failed && !self.conn.is_handshaking() {
            self.conn.send_close_notify();
            let _ = self.push_tls();
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }
}
